"""The general CPU kernels: any plan, row by row; and folding padded planes back.

:func:`correlate_rows` computes every plan (any stride, dilation, groups and boundary rule):
the "rows" implementation, and the order every direct kernel sums in. One task computes one
output row for a block of output channels; its loops run input channel, kernel row, kernel
column (taps outer) and output column innermost, so the innermost loop streams contiguous
memory and vectorises, and each input row, once in cache, serves the whole block of output
channels. Padding is virtual: each tap's span of columns inside the input is a plain vector
loop, the few columns outside go through the boundary rule one by one.

:func:`fold_planes` adds a padded copy of every plane back onto the planes through the
boundary rule (the adjoint of padding), for the gradients of the kernels that work on padded
planes (the FFT path, Winograd, depthwise).
"""

import numpy as np

from . import _pool
from ._indexing import in_range_span, plane_maps, sample, source_index
from ._jit import kernel


@kernel
def correlate_rows(x, weight, bias, out, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                   pad_mode, fill, groups, co_block, fill_row, task_lo, task_hi):
    """Write the correlation of ``x`` with ``weight`` plus ``bias`` into ``out``.

    Tasks are ``(n, group, block of co_block output channels, output row)``.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W), C-contiguous
    weight : ndarray, shape (C_out, C_in // groups, kH, kW), C-contiguous
    bias : ndarray, shape (C_out,)
    out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous; overwritten
    fill_row : ndarray, shape (W,): the fill value, read as the padded rows (a product with
        the fill itself would be hoisted out of the loop and added without the fused
        multiply-add the other direct kernels make of it: their sums would differ)
    """
    h, w = x.shape[2], x.shape[3]
    c_out, c_in_g, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    c_out_g = c_out // groups
    n_blocks = (c_out_g + co_block - 1) // co_block
    width = np.uintp(out_w)
    for task in range(task_lo, task_hi):
        i = task % out_h
        rest = task // out_h
        block = rest % n_blocks
        rest //= n_blocks
        g = rest % groups
        n = rest // groups
        co_first = g * c_out_g + block * co_block
        co_stop = min(co_first + co_block, (g + 1) * c_out_g)
        for co in range(co_first, co_stop):
            out_row = out[n, co, i]
            b = bias[co]
            for j in range(width):
                out_row[j] = b
        for ci in range(c_in_g):
            plane = x[n, g * c_in_g + ci]
            for p in range(kh):
                r = source_index(i * stride_h + p * dil_h - pad_top, h, pad_mode)
                for q in range(kw):
                    offset = q * dil_w - pad_left
                    lo, hi = in_range_span(out_w, stride_w, offset, w)
                    for co in range(co_first, co_stop):
                        tap = weight[co, ci, p, q]
                        out_row = out[n, co, i]
                        x_row = fill_row if r < 0 else plane[r]  # (r < 0: a padded row)
                        for j in range(lo):
                            out_row[j] += tap * sample(x_row, j * stride_w + offset, w, pad_mode,
                                                       fill)
                        if stride_w == 1:
                            first, start = np.uintp(lo), np.uintp(lo + offset)
                            for t in range(np.uintp(hi - lo)):
                                out_row[first + t] += tap * x_row[start + t]
                        else:
                            for j in range(lo, hi):
                                out_row[j] += tap * x_row[j * stride_w + offset]
                        for j in range(hi, out_w):
                            out_row[j] += tap * sample(x_row, j * stride_w + offset, w, pad_mode,
                                                       fill)


@kernel
def fold_planes(padded, grad_x, row_map, col_map, lo, hi, task_lo, task_hi):
    """The adjoint of padding: ``grad_x`` (overwritten) receives every entry of ``padded``
    (a ``R x Cols`` rectangle of the padded planes) at the sample the boundary rule copied it
    from, ``grad_x[row_map[i], col_map[j]] += padded[i, j]`` (entries where a map holds -1,
    the fill, dropped), row after row of ``padded`` in order, so the sums are repeatable.
    Columns ``lo <= j < hi`` are a plain span (``col_map[j] = j + col_map[lo] - lo``).

    The maps come from the host (:func:`fold`): the boundary rule inlined here three times
    had been most of this kernel's compilation (1.35 s of a cold ``conv2d_backward``).
    Tasks are planes.

    Parameters
    ----------
    padded : ndarray, shape (P, R, Cols), C-contiguous
    grad_x : ndarray, shape (P, H, W), C-contiguous; overwritten
    row_map : ndarray, shape (R,), int64
    col_map : ndarray, shape (Cols,), int64
    """
    h, w = grad_x.shape[1], grad_x.shape[2]
    rows, cols = padded.shape[1], padded.shape[2]
    first, inner = np.uintp(lo), np.uintp(hi - lo)
    start = np.uintp(col_map[lo] if lo < hi else 0)
    for k in range(task_lo, task_hi):
        plane = grad_x[k]
        for r in range(h):
            row = plane[r]
            for j in range(np.uintp(w)):
                row[j] = 0
        for i in range(rows):
            r = row_map[i]
            if r < 0:
                continue
            src = padded[k, i]
            row = plane[r]
            for t in range(inner):
                row[start + t] += src[first + t]
            for j in range(cols - (hi - lo)):  # the columns through the rule
                jj = j if j < lo else j + hi - lo
                c = col_map[jj]
                if c >= 0:
                    row[c] += src[jj]


def fold(padded, grad_x, row0, col0, pad_mode):
    """Run :func:`fold_planes` over planes: ``padded`` (N, C, R, Cols) is a rectangle of the
    padded planes from virtual ``(row0, col0)`` under ``pad_mode``; ``grad_x`` (N, C, H, W)
    is overwritten with its fold."""
    h, w = grad_x.shape[2:]
    rows, cols = padded.shape[2:]
    planes = padded.shape[0] * padded.shape[1]
    _pool.run(fold_planes, planes, padded.reshape(planes, rows, cols),
              grad_x.reshape(planes, h, w), *plane_maps(rows, cols, row0, col0, h, w, pad_mode),
              work=padded.size)
    return grad_x
