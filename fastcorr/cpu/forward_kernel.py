"""Numba CPU forward kernels for :class:`fastcorr._validate.Plan`: by rows, and by planes.

``correlate_rows`` is the general kernel. One parallel task computes one output row for a block
of output channels. Within it the loops
run input channel, kernel row, kernel column (taps outer) and output column innermost, so the
innermost loop streams contiguous memory and vectorises. Padding is virtual: each tap's span of
columns that falls inside the input runs as a plain vector loop; the few columns and rows that
fall outside are mapped through the boundary rule one by one. No padded copy is made.

The task split decides the loop shape: a single-channel image is one task per output row; a
depthwise layer one task per (image, channel, row); a dense or grouped layer one task per
(image, block of output channels, row), so that each input row, once in cache, serves the whole
block of output channels.
"""

import numpy as np
from numba import njit, prange

from ._indexing import axpy, gather_row, in_range_span, sample, source_index


@njit(parallel=True, cache=True)
def correlate_rows(x, weight, bias, out, stride_h, stride_w, dil_h, dil_w, pad_top,
                      pad_left, pad_mode, fill, groups, co_block):
    """Write the correlation of ``x`` with ``weight`` plus ``bias`` into ``out``.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W), C-contiguous
    weight : ndarray, shape (C_out, C_in // groups, kH, kW), C-contiguous
    bias : ndarray, shape (C_out,)
    out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous; overwritten
    co_block : int
        Output channels computed together by one task.
    """
    n_batch, _, h, w = x.shape
    c_out, c_in_g, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    c_out_g = c_out // groups
    n_blocks = (c_out_g + co_block - 1) // co_block
    for task in prange(n_batch * groups * n_blocks * out_h):
        i = task % out_h
        rest = task // out_h
        block = rest % n_blocks
        rest //= n_blocks
        g = rest % groups
        n = rest // groups
        co_first = g * c_out_g + block * co_block
        co_stop = min(co_first + co_block, (g + 1) * c_out_g)
        for co in range(co_first, co_stop):
            out[n, co, i, :] = bias[co]
        for ci in range(c_in_g):
            for p in range(kh):
                r = source_index(i * stride_h + p * dil_h - pad_top, h, pad_mode)
                if r < 0:  # a padded row: every tap sees the fill value
                    for co in range(co_first, co_stop):
                        out_row = out[n, co, i]
                        for q in range(kw):
                            term = weight[co, ci, p, q] * fill
                            for j in range(out_w):
                                out_row[j] += term
                    continue
                x_row = x[n, g * c_in_g + ci, r]
                for q in range(kw):
                    offset = q * dil_w - pad_left
                    lo, hi = in_range_span(out_w, stride_w, offset, w)
                    for co in range(co_first, co_stop):
                        tap = weight[co, ci, p, q]
                        out_row = out[n, co, i]
                        if stride_w == 1:
                            axpy(tap, x_row[lo + offset:hi + offset], out_row[lo:hi])
                        else:
                            for j in range(lo, hi):
                                out_row[j] += tap * x_row[j * stride_w + offset]
                        for j in range(lo):
                            out_row[j] += tap * sample(x_row, j * stride_w + offset, w, pad_mode, fill)
                        for j in range(hi, out_w):
                            out_row[j] += tap * sample(x_row, j * stride_w + offset, w, pad_mode, fill)


@njit(parallel=True, cache=True)
def correlate_planes(x, weight, bias, out, dil_h, dil_w, pad_top, pad_left, pad_mode, fill,
                     groups):
    """Stride-1 correlation of one input channel per group (depthwise layers), plane by plane.

    Each task copies one input plane, padded, into a buffer the size of the padded plane and
    runs every tap as one long vector loop over the flattened plane: output ``(i, j)`` sits at
    ``i * padded_w + j`` and tap ``(p, q)`` reads ``p * dil_h * padded_w + q * dil_w`` further
    on, so rows of a few dozen pixels do not each pay a loop's start-up and tail.

    Parameters
    ----------
    x : ndarray, shape (N, groups, H, W), C-contiguous
    weight : ndarray, shape (C_out, 1, kH, kW), C-contiguous
    bias : ndarray, shape (C_out,)
    out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous; overwritten
    """
    n_batch, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    c_out_g = c_out // groups
    padded_h = out_h + dil_h * (kh - 1)
    padded_w = out_w + dil_w * (kw - 1)
    span = (out_h - 1) * padded_w + out_w
    for task in prange(n_batch * groups):
        n = task // groups
        g = task % groups
        padded = np.empty(padded_h * padded_w, dtype=x.dtype)
        for r in range(padded_h):
            row = padded[r * padded_w:(r + 1) * padded_w]
            src_r = source_index(r - pad_top, h, pad_mode)
            if src_r < 0:
                row[:] = fill
            else:
                gather_row(x[n, g, src_r], row, 1, -pad_left, pad_mode, fill)
        acc = np.empty(span, dtype=x.dtype)
        for co in range(g * c_out_g, (g + 1) * c_out_g):
            acc[:] = bias[co]
            for p in range(kh):
                for q in range(kw):
                    tap = weight[co, 0, p, q]
                    start = p * dil_h * padded_w + q * dil_w
                    axpy(tap, padded[start:start + span], acc)
            for i in range(out_h):
                out[n, co, i, :] = acc[i * padded_w:i * padded_w + out_w]
