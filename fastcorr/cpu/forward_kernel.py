"""The general Numba CPU forward kernel for :class:`fastcorr._validate.Plan`, by rows.

``correlate_rows`` serves every layer shape (``unrolled.py`` is faster for the kernel sizes it
covers, ``gemm.py`` for dense layers). One parallel task computes one output row for a block
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

from numba import njit, prange

from ._indexing import axpy, in_range_span, sample, source_index


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
