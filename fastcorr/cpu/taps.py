"""The "taps" implementation: single-channel images and depthwise layers, by width class.

The kernels of :mod:`fastcorr.cpu._taps_generated` compute a *valid* correlation of a region
(every tap inside its source), one input plane per output plane, for any kernel height, row
stride, row dilation and column dilation, at unit column stride. This module cuts a plan into
such regions:

- the interior of the output, whose taps all fall inside the input, read in place;
- the border strips, whose taps reach into the padding: each strip's input, padding included,
  is copied through the boundary rule into a small buffer (:func:`fastcorr.cpu.rows.pad_planes`),
  and the same kernel runs on it;
- when the interior is a small part of the output (small planes, large kernels), the whole
  padded input is copied once instead.

A region has at least :data:`ROWS` rows (its last block of rows is moved up to end at its
end); an output with fewer rows is computed into a taller buffer and copied. Sums run in the
taps' order, so the result is bitwise that of :func:`fastcorr.cpu.rows.correlate_rows`.
"""

from dataclasses import dataclass

import numpy as np

from . import _pool
from ._taps_generated import CHUNK_ROWS, COLUMNS, KERNELS, NARROW, ROWS
from .rows import pad_planes


def why_not(plan):
    """None when the taps kernels compute ``plan``, else why not."""
    if plan.weight_shape[1] != 1:
        return "they need one input channel per group (single-channel images, depthwise layers)"
    if plan.stride[1] != 1:
        return "they need unit column stride"
    return None


def width_class(kw):
    """The width class of a kernel ``kw`` taps wide: its width up to NARROW, else 0 (wide)."""
    return kw if kw <= NARROW else 0


@dataclass(frozen=True)
class Region:
    """Output rows ``[row0, row0 + rows)`` and columns ``[col0, col0 + cols)``, read from
    ``source`` (None: the input itself) whose plane position ``(src_row, src_col)`` holds the
    first tap of the region's first output."""

    row0: int
    col0: int
    rows: int
    cols: int
    source: object
    src_row: int
    src_col: int


def _extent(count, stride, taps, dilation):
    """Input samples that ``count`` outputs read along an axis."""
    return (count - 1) * stride + (taps - 1) * dilation + 1


def _inside(out_n, n, stride, taps, dilation, pad):
    """The outputs ``[lo, hi)`` along an axis whose taps all lie inside ``n`` samples."""
    lo = -(-pad // stride)
    hi = (n - 1 - (taps - 1) * dilation + pad) // stride + 1
    lo, hi = min(max(lo, 0), out_n), min(max(hi, 0), out_n)
    return lo, max(lo, hi)


def regions(plan, planes):
    """The regions of ``plan``'s output (see the module docstring), their padded copies made
    from ``planes`` (the input as (P, H, W))."""
    _, _, h, w = plan.input_shape
    _, _, kh, kw = plan.weight_shape
    out_h, out_w = plan.out_shape[2:]
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    fill = plan.dtype.type(plan.fill)

    def padded(row0, col0, rows, cols):
        """A region's input rectangle copied through the boundary rule."""
        src_row, src_col = row0 * sh - plan.pad_top, col0 - plan.pad_left
        buffer = np.empty((planes.shape[0], _extent(rows, sh, kh, dh), cols + (kw - 1) * dw),
                          dtype=plan.dtype)
        _pool.run(pad_planes, buffer.shape[0] * buffer.shape[1], planes, buffer, src_row,
                  src_col, plan.pad_mode, fill, work=buffer.size)
        return Region(row0, col0, rows, cols, buffer, 0, 0)

    r_lo, r_hi = _inside(out_h, h, sh, kh, dh, plan.pad_top)
    c_lo, c_hi = _inside(out_w, w, 1, kw, dw, plan.pad_left)
    # border strips at least ROWS rows tall, taken from the interior
    top = min(out_h, max(r_lo, ROWS)) if r_lo > 0 else 0
    bottom = max(0, min(r_hi, out_h - ROWS)) if r_hi < out_h else out_h
    interior = (bottom - top) * (c_hi - c_lo)
    if bottom - top < ROWS or c_hi <= c_lo or 2 * interior < out_h * out_w:
        return [padded(0, 0, out_h, out_w)]
    found = [Region(top, c_lo, bottom - top, c_hi - c_lo, None, top * sh - plan.pad_top,
                    c_lo - plan.pad_left)]
    if top:
        found.append(padded(0, 0, top, out_w))
    if bottom < out_h:
        found.append(padded(bottom, 0, out_h - bottom, out_w))
    if c_lo:
        found.append(padded(top, 0, bottom - top, c_lo))
    if c_hi < out_w:
        found.append(padded(top, c_hi, bottom - top, out_w - c_hi))
    return found


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out`` (C-contiguous NCHW arrays of ``plan.dtype``)."""
    n_batch, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    if bias is None:
        bias = np.zeros(c_out, dtype=plan.dtype)
    target = out
    if out_h < ROWS:  # too short for a block: a taller output, copied back
        target = np.empty((n_batch, c_out, ROWS, out_w), dtype=plan.dtype)
        plan = _taller(plan, ROWS)
    planes = x.reshape(n_batch * c_in, h, w)
    run = KERNELS[width_class(kw)]
    flat_out, flat_w = target.reshape(-1), weight.reshape(-1)
    o_plane = target.shape[2] * out_w
    for region in regions(plan, planes):
        if region.source is None:
            src, s_rows, s_cols = x.reshape(-1), h, w
        else:
            src, (s_rows, s_cols) = region.source.reshape(-1), region.source.shape[1:]
        n_chunks = max(1, region.rows // CHUNK_ROWS)
        n_cblocks = -(-region.cols // COLUMNS)
        tasks = n_batch * c_out * n_chunks * n_cblocks
        _pool.run(run, tasks, src, s_rows * s_cols, region.src_row * s_cols + region.src_col,
                  s_cols, flat_w, bias, flat_out, o_plane, region.row0 * out_w + region.col0,
                  out_w, region.rows, region.cols, kh, kw, plan.stride[0], plan.dilation[0],
                  plan.dilation[1], c_out, c_in, c_out // plan.groups, n_chunks, n_cblocks,
                  work=n_batch * c_out * region.rows * region.cols * kh * kw)
    if target is not out:
        out[...] = target[:, :, :out_h]
    return out


def _taller(plan, rows):
    """``plan`` with an output ``rows`` tall (extra rows read the padding or past the input,
    computed and discarded)."""
    from dataclasses import replace

    n, c_out, out_h, out_w = plan.out_shape
    extra = rows - out_h
    return replace(plan, out_shape=(n, c_out, rows, out_w),
                   pad_bottom=plan.pad_bottom + extra * plan.stride[0])
