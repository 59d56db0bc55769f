"""The "taps" implementation: single-channel images and depthwise layers, by width class.

The kernels of :mod:`fastcorr.cpu._taps_generated` cut the output of every input plane into
bands of rows. A task copies its band's input, padding included, through the boundary rule
(its maps, planned once a plan) into a buffer of its own (a few hundred kilobytes: it stays
in the second-level cache, and small planes are copied whole), then sums blocks of four
output rows over it pass by pass,
one or two kernel rows at a time, in a second buffer whose rows never share a cache set, and
stores each block once. Every kernel height, row stride, row dilation and column dilation runs
this way (a column stride by computing unit-stride columns and keeping every s-th); the kernel
width picks one of nine kernels (its width up to 8, or the wide class), so at most nine
compile per float type.

A band has at least four rows (the last block of a band is moved up to end at its end); an
output with fewer rows is computed into a taller buffer and copied. Sums run in the taps'
order, so the result is bitwise that of :func:`fastcorr.cpu.rows.correlate_rows`.
"""

from dataclasses import replace

import numpy as np

from .. import _memory
from . import _pool
from ._indexing import boundary_maps
from ._taps_generated import ACC_PITCH, KERNELS, NARROW, ROWS

#: Samples of a band's padded input buffer the band's rows are chosen to fit in.
BAND_SAMPLES = 1 << 16
#: The most output rows a band has (its last band takes the remainder, up to twice this).
MAX_BAND_ROWS = 64


def why_not(plan):
    """None when the taps kernels compute ``plan``, else why not."""
    if plan.weight_shape[1] != 1:
        return "they need one input channel per group (single-channel images, depthwise layers)"
    return None


def width_class(kw):
    """The width class of a kernel ``kw`` taps wide: its width up to NARROW, else 0 (wide)."""
    return kw if kw <= NARROW else 0


def band_rows(plan):
    """Output rows per band: as many as keep the band's padded input near
    :data:`BAND_SAMPLES` (at least ROWS, at most MAX_BAND_ROWS); the shape alone decides."""
    kh, kw = plan.weight_shape[2:]
    (sh, _), (dh, dw) = plan.stride, plan.dilation
    width = plan.out_shape[3] + (kw - 1) * dw
    fit = (BAND_SAMPLES // width - (kh - 1) * dh - 1) // sh + 1
    fit -= fit % ROWS  # whole blocks
    return max(ROWS, min(MAX_BAND_ROWS, plan.out_shape[2], fit))


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out`` (C-contiguous NCHW arrays of ``plan.dtype``).

    A column stride ``s > 1`` is computed at unit column stride over the same input columns
    (``s`` times the columns) and every ``s``-th column kept: the kernels' vector loops run
    along unit-stride columns, and even so this beats the general row kernel, whose per-tap
    overhead dominates short strided rows (measured, Zen 4, float32, stride 2, rows -> taps:
    depthwise 5x5 (8,672,14^2) 14.9 -> 2.6 ms, 3x3 (8,96,112^2) 15.1 -> 6.3 ms, 7x7
    (8,384,28^2) 31.2 -> 4.4 ms; a 2048^2 image 3x3 4.7 -> 2.0 ms). Every output keeps its
    sums' order: the result is bitwise the row kernel's.
    """
    sw = plan.stride[1]
    if sw > 1:
        n, c_out, out_h, out_w = plan.out_shape
        wide = replace(plan, stride=(plan.stride[0], 1),
                       out_shape=(n, c_out, out_h, (out_w - 1) * sw + 1))
        full = _memory.empty(wide.out_shape, dtype=plan.dtype)
        correlate(x, weight, bias, full, wide)
        out[...] = full[:, :, :, ::sw]
        return out
    n_batch, c_in = x.shape[:2]
    c_out, _, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    if bias is None:
        bias = np.zeros(c_out, dtype=plan.dtype)
    target = out
    if out_h < ROWS:  # too short for a block: a taller output, copied back
        plan = _taller(plan, ROWS)
        target = _memory.empty(plan.out_shape, dtype=plan.dtype)
    (sh, _), (dh, dw) = plan.stride, plan.dilation
    rows = band_rows(plan)
    n_bands = max(1, plan.out_shape[2] // rows)
    longest = plan.out_shape[2] - (n_bands - 1) * rows
    buffer_size = ((longest - 1) * sh + (kh - 1) * dh + 1) * (out_w + (kw - 1) * dw)

    def scratch():
        return (_memory.empty(buffer_size, dtype=plan.dtype),
                _memory.empty(ROWS * ACC_PITCH, dtype=plan.dtype))

    _pool.run(KERNELS[width_class(kw)], n_batch * c_in * n_bands, x, weight.reshape(-1), bias,
              target.reshape(-1), c_out, plan.out_shape[2], out_w, plan.pad_left, *_maps(plan),
              plan.dtype.type(plan.fill), kh, kw, sh, dh, dw, c_out // plan.groups, rows,
              n_bands, work=target.size * kh * kw, scratch=scratch)
    if target is not out:
        out[...] = target[:, :, :out_h]
    return out


def _maps(plan):
    """The boundary maps of the padded input the outputs of ``plan`` read (at unit column
    stride), :func:`fastcorr.cpu._indexing.boundary_maps` (remembered there): the kernels
    copy through them instead of evaluating the boundary rule, which had been a third of
    each width-class kernel's compilation (the 3-tap kernel compiled in 3.1 s, 1.7 s without
    it)."""
    kh, kw = plan.weight_shape[2:]
    (sh, _), (dh, dw) = plan.stride, plan.dilation
    rows = (plan.out_shape[2] - 1) * sh + (kh - 1) * dh + 1
    return boundary_maps(plan, rows, plan.out_shape[3] + (kw - 1) * dw)


def _taller(plan, rows):
    """``plan`` with an output ``rows`` tall (the extra rows read the padding or past the
    input through the boundary rule; computed and discarded)."""
    n, c_out, out_h, out_w = plan.out_shape
    return replace(plan, out_shape=(n, c_out, rows, out_w),
                   pad_bottom=plan.pad_bottom + (rows - out_h) * plan.stride[0])
