"""The general CPU gradient kernels: any plan ("scatter" input gradient, "rows" weight
gradient) and the bias gradient.

Both gather: every element of a result is written by exactly one task, and every sum runs in
one fixed order that does not depend on the number of threads, so results are bitwise
repeatable. Only the terms of the sums are multiplied: an input gradient never multiplies a
weight by a sample of padding, so infinite weights give torch's numbers.
"""

import numpy as np

from ._indexing import in_range_span, sample, source_index
from ._jit import kernel


@kernel
def grad_input_planes(grad_out, weight, grad_x, stride_h, stride_w, dil_h, dil_w, pad_top,
                      pad_left, pad_mode, groups, task_lo, task_hi):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten).

    One task per input plane ``(n, c)``: it adds every output gradient row, times each tap,
    at its strided position in a buffer of the padded plane (no dilated copy of the gradient
    is made), then folds the padding back onto the samples the boundary rule copied.

    Parameters
    ----------
    grad_out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous
    weight : ndarray, shape (C_out, C_in // groups, kH, kW), C-contiguous
    grad_x : ndarray, shape (N, C_in, H, W), C-contiguous; overwritten
    """
    c_in, h, w = grad_x.shape[1], grad_x.shape[2], grad_x.shape[3]
    c_out, c_in_g, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    c_out_g = c_out // groups
    padded_h = (out_h - 1) * stride_h + (kh - 1) * dil_h + 1
    padded_w = (out_w - 1) * stride_w + (kw - 1) * dil_w + 1
    width = np.uintp(out_w)
    lo, hi = in_range_span(padded_w, 1, -pad_left, w)
    for task in range(task_lo, task_hi):
        n = task // c_in
        c = task % c_in
        g = c // c_in_g
        ci = c % c_in_g
        padded = np.zeros((padded_h, padded_w), dtype=grad_x.dtype)
        for co in range(g * c_out_g, (g + 1) * c_out_g):
            for p in range(kh):
                for q in range(kw):
                    tap = weight[co, ci, p, q]
                    first = np.uintp(q * dil_w)
                    step = np.uintp(stride_w)
                    for i in range(out_h):
                        row = padded[i * stride_h + p * dil_h]
                        g_row = grad_out[n, co, i]
                        if stride_w == 1:
                            for j in range(width):
                                row[first + j] += tap * g_row[j]
                        else:
                            for j in range(width):
                                row[first + j * step] += tap * g_row[j]
        plane = grad_x[n, c]
        for r in range(h):
            for k in range(np.uintp(w)):
                plane[r, k] = 0
        for r in range(padded_h):
            src_r = source_index(r - pad_top, h, pad_mode)
            if src_r < 0:
                continue
            row, target = padded[r], plane[src_r]
            for k in range(np.uintp(hi - lo)):
                target[np.uintp(lo - pad_left) + k] += row[np.uintp(lo) + k]
            for k in range(lo):
                col = source_index(k - pad_left, w, pad_mode)
                if col >= 0:
                    target[col] += row[k]
            for k in range(hi, padded_w):
                col = source_index(k - pad_left, w, pad_mode)
                if col >= 0:
                    target[col] += row[k]


@kernel
def grad_weight_rows(grad_out, x, partial, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                     pad_mode, fill, groups, rows_per_chunk, task_lo, task_hi):
    """Partial sums of the gradient with respect to the weights, one per chunk of output rows.

    ``partial[chunk, co, ci, p, q]`` sums ``grad_out[n, co, i, j] * xpad[n, c, ...]`` over the
    output rows ``(n, i)`` of chunk ``chunk`` (``rows_per_chunk`` of them, in order). The
    caller adds the chunks in order; the chunking is fixed by the shape, not by the number of
    threads. Within a task each tap keeps a row of lane sums that the vector loop fills, and
    reduces it in order at the end. Tasks are ``(chunk, co, ci)``.

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
    width = np.uintp(out_w)
    for task in range(task_lo, task_hi):
        co = (task // c_in_g) % c_out
        ci = task % c_in_g
        chunk = task // (c_out * c_in_g)
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
                    offset = q * dil_w - pad_left
                    if r < 0:
                        for j in range(width):
                            patch[j] = fill
                    else:
                        x_row = x[n, c, r]
                        lo, hi = in_range_span(out_w, stride_w, offset, w)
                        for j in range(lo):
                            patch[j] = sample(x_row, j * stride_w + offset, w, pad_mode, fill)
                        for j in range(lo, hi):
                            patch[j] = x_row[j * stride_w + offset]
                        for j in range(hi, out_w):
                            patch[j] = sample(x_row, j * stride_w + offset, w, pad_mode, fill)
                    lane = lanes[p, q]
                    for j in range(width):
                        lane[j] += g_row[j] * patch[j]
        for p in range(kh):
            for q in range(kw):
                total = lanes[p, q, 0]
                for j in range(1, out_w):
                    total += lanes[p, q, j]
                partial[chunk, co, ci, p, q] = total


@kernel
def channel_sums(planes, grad_b, acc, task_lo, task_hi):
    """``grad_b[c] = grad_out[:, c].sum()``: the bias gradient. Tasks are channels.

    A task keeps ``len(acc)`` partial sums: a vector loop adds each image's flattened plane
    to them block by block, in order (the plane's last, partial block onto the first sums),
    and the sums are then added left to right. Row by row, with a row of sums allocated per
    channel, a 7x7 plane's channel had cost more than its 392 additions: 960 channels took
    0.60 ms, 2.7x NumPy's ``sum``.

    Parameters
    ----------
    planes : ndarray, shape (N * C, H * W), C-contiguous: ``grad_out`` (N, C, H, W) flattened
        by the host (a reshape inside the kernel cost 0.3 s of its compilation)
    grad_b : ndarray, shape (C,); overwritten
    acc : ndarray, shape (lanes,): the task's sums
    """
    c_all = grad_b.shape[0]
    n_batch = planes.shape[0] // c_all
    lanes = np.uintp(acc.shape[0])
    size = np.uintp(planes.shape[1])
    whole = size // lanes * lanes
    for c in range(task_lo, task_hi):
        for j in range(lanes):
            acc[j] = 0
        for n in range(n_batch):
            plane = planes[n * c_all + c]
            for b in range(0, whole, lanes):
                for j in range(lanes):
                    acc[j] += plane[b + j]
            for j in range(size - whole):
                acc[j] += plane[whole + j]
        total = acc[0]
        for j in range(1, lanes):
            total += acc[j]
        grad_b[c] = total
