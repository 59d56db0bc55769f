"""Numba CPU gradient kernels for single-channel images, depthwise and thin layers.

Both gather: every element of a result is written by exactly one task, and every sum runs in
one fixed order that does not depend on the number of threads, so results are bitwise
repeatable. (Dense and grouped layers take the im2col + BLAS path of ``gemm.py``.)
"""

import numpy as np
from numba import njit, prange

from ._indexing import axpy, fold_row, gather_row, multiply_accumulate, source_index


@njit(parallel=True, cache=True)
def grad_input_planes(grad_out, weight, grad_x, stride_h, stride_w, dil_h, dil_w, pad_top,
                      pad_left, pad_mode, groups):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten).

    One task per input plane ``(n, c)``: it correlates the output gradient with the rotated
    kernel into a buffer of the padded plane, placing each output row at its strided position
    (no dilated copy of the gradient is made), then folds the padding back onto the samples
    the boundary rule copied.

    Parameters
    ----------
    grad_out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous
    weight : ndarray, shape (C_out, C_in // groups, kH, kW), C-contiguous
    grad_x : ndarray, shape (N, C_in, H, W), C-contiguous; overwritten
    """
    n_batch, c_in, h, w = grad_x.shape
    c_out, c_in_g, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    c_out_g = c_out // groups
    padded_h = (out_h - 1) * stride_h + (kh - 1) * dil_h + 1
    padded_w = (out_w - 1) * stride_w + (kw - 1) * dil_w + 1
    row_extent = (out_w - 1) * stride_w + 1
    for task in prange(n_batch * c_in):
        n = task // c_in
        c = task % c_in
        g = c // c_in_g
        ci = c % c_in_g
        padded = np.zeros((padded_h, padded_w), dtype=grad_x.dtype)
        for co in range(g * c_out_g, (g + 1) * c_out_g):
            for p in range(kh):
                for q in range(kw):
                    tap = weight[co, ci, p, q]
                    first = q * dil_w
                    for i in range(out_h):
                        row = padded[i * stride_h + p * dil_h]
                        if stride_w == 1:
                            axpy(tap, grad_out[n, co, i], row[first:first + row_extent])
                        else:
                            axpy(tap, grad_out[n, co, i], row[first:first + row_extent:stride_w])
        plane = grad_x[n, c]
        plane[:, :] = 0
        for r in range(padded_h):
            src_r = source_index(r - pad_top, h, pad_mode)
            if src_r >= 0:
                fold_row(padded[r], plane[src_r], pad_left, pad_mode)


@njit(parallel=True, cache=True)
def grad_weight_rows(grad_out, x, partial, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                     pad_mode, fill, groups, rows_per_chunk):
    """Partial sums of the gradient with respect to the weights, one per chunk of output rows.

    ``partial[chunk, co, ci, p, q]`` sums ``grad_out[n, co, i, j] * xpad[n, c, ...]`` over the
    output rows ``(n, i)`` of chunk ``chunk`` (``rows_per_chunk`` of them, in order). The
    caller adds the chunks in order; the chunking is fixed by the shape, not by the number of
    threads. Within a task each tap keeps a row of lane sums that the vector loop fills, and
    reduces it in order at the end.

    Parameters
    ----------
    grad_out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous
    x : ndarray, shape (N, C_in, H, W), C-contiguous
    partial : ndarray, shape (n_chunks, C_out, C_in // groups, kH, kW); overwritten
    """
    n_batch, _, h, w = x.shape
    n_chunks, c_out, c_in_g, kh, kw = partial.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    c_out_g = c_out // groups
    total_rows = n_batch * out_h
    for task in prange(n_chunks * c_out * c_in_g):
        chunk = task // (c_out * c_in_g)
        co = (task // c_in_g) % c_out
        ci = task % c_in_g
        c = (co // c_out_g) * c_in_g + ci
        lanes = np.zeros((kh, kw, out_w), dtype=x.dtype)
        patch = np.empty(out_w, dtype=x.dtype)
        for row in range(chunk * rows_per_chunk, min(total_rows, (chunk + 1) * rows_per_chunk)):
            n = row // out_h
            i = row % out_h
            g_row = grad_out[n, co, i]
            for p in range(kh):
                r = source_index(i * stride_h + p * dil_h - pad_top, h, pad_mode)
                for q in range(kw):
                    if r < 0:
                        patch[:] = fill
                    else:
                        gather_row(x[n, c, r], patch, stride_w, q * dil_w - pad_left, pad_mode, fill)
                    multiply_accumulate(g_row, patch, lanes[p, q])
        for p in range(kh):
            for q in range(kw):
                total = lanes[p, q, 0]
                for j in range(1, out_w):
                    total += lanes[p, q, j]
                partial[chunk, co, ci, p, q] = total


@njit(parallel=True, cache=True)
def channel_sums(grad_out, grad_b):
    """``grad_b[c] = grad_out[:, c].sum()``: the bias gradient.

    One task per channel keeps a row of sums, one per column, that a vector loop adds each
    row of every image to, in order; the row is then summed left to right.

    Parameters
    ----------
    grad_out : ndarray, shape (N, C, H, W), C-contiguous
    grad_b : ndarray, shape (C,); overwritten
    """
    n_batch, c_count, h, w = grad_out.shape
    width = np.uintp(w)
    for c in prange(c_count):
        acc = np.zeros(w, dtype=grad_out.dtype)
        for n in range(n_batch):
            plane = grad_out[n, c]
            for i in range(h):
                row = plane[i]
                for j in range(width):
                    acc[j] += row[j]
        total = acc[0]
        for j in range(1, w):
            total += acc[j]
        grad_b[c] = total
