"""Gradients of layers with one input channel per group (single-channel images, depthwise).

- "taps" input gradient (unit strides, one output channel per input channel, finite weights):
  the output gradient correlated with the rotated kernel is the gradient of the padded input
  (the forward :mod:`fastcorr.cpu.taps` kernels on a plan of its own); for zero padding only
  the input's part of it is computed, for the other boundary rules the padding is folded back
  (:func:`fastcorr.cpu.rows.fold_planes`). The kernels multiply every weight by the zeros
  around the output gradient, so weights with an infinity take the "scatter" kernel instead.
- "planes" weight gradient: a task per (chunk of images, channel) pads each of its input
  planes once and adds, for every tap, the output gradient times the shifted plane into a row
  of sums per tap; chunks are added in order, so results are repeatable.
"""

from dataclasses import replace

import numpy as np

from .. import _validate as v
from .. import config
from . import _pool, taps
from ._indexing import in_range_span, source_index
from ._jit import helper, kernel
from .rows import fold_planes


def input_why_not(plan):
    """None when the "taps" input gradient computes ``plan``, else why not."""
    c_out, c_in_g = plan.weight_shape[:2]
    if c_in_g != 1 or c_out != plan.groups:
        return "it needs one output channel per input channel (single-channel or depthwise)"
    if plan.stride != (1, 1):
        return "it needs unit strides"
    return None


def weight_why_not(plan):
    """None when the "planes" weight gradient computes ``plan``, else why not."""
    if plan.weight_shape[1] != 1:
        return "it needs one input channel per group (single-channel images, depthwise layers)"
    return None


def _transposed_plan(plan, out_hw, pad_top, pad_left):
    """The forward plan that correlates the output gradient with the rotated kernel into an
    ``out_hw`` extent (zero padding ``pad_top``, ``pad_left``)."""
    n, c_out, out_h, out_w = plan.out_shape
    kh, kw = plan.weight_shape[2:]
    (dh, dw) = plan.dilation
    return replace(plan, input_shape=(n, c_out, out_h, out_w), out_shape=(n, c_out) + out_hw,
                   stride=(1, 1), pad_top=pad_top, pad_left=pad_left,
                   pad_bottom=out_hw[0] + (kh - 1) * dh - out_h - pad_top,
                   pad_right=out_hw[1] + (kw - 1) * dw - out_w - pad_left,
                   pad_mode=v.ZEROS, fill=0.0)


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    kh, kw = plan.weight_shape[2:]
    dh, dw = plan.dilation
    rotated = np.ascontiguousarray(weight[:, :, ::-1, ::-1])
    n, c, h, w = plan.input_shape
    if plan.pad_mode == v.ZEROS:
        inner = _transposed_plan(plan, (h, w), (kh - 1) * dh - plan.pad_top,
                                 (kw - 1) * dw - plan.pad_left)
        return taps.correlate(grad_out, rotated, None, grad_x, inner)
    padded_hw = (h + plan.pad_top + plan.pad_bottom, w + plan.pad_left + plan.pad_right)
    full = _transposed_plan(plan, padded_hw, (kh - 1) * dh, (kw - 1) * dw)
    padded = np.empty((n, c) + padded_hw, dtype=plan.dtype)
    taps.correlate(grad_out, rotated, None, padded, full)
    _pool.run(fold_planes, n * c, padded.reshape(n * c, *padded_hw), grad_x.reshape(n * c, h, w),
              -plan.pad_top, -plan.pad_left, plan.pad_mode, work=padded.size)
    return grad_x


@helper
def _pad_plane(plane, buf, rows, cols, row0, col0, pad_mode, fill):
    """``buf[i * cols + j] = plane_padded[row0 + i, col0 + j]`` through the boundary rule."""
    h, w = plane.shape
    lo, hi = in_range_span(cols, 1, col0, w)
    for i in range(rows):
        base = np.uintp(i * cols)
        r = source_index(row0 + i, h, pad_mode)
        if r < 0:
            for j in range(np.uintp(cols)):
                buf[base + j] = fill
            continue
        src = plane[r]
        for t in range(np.uintp(hi - lo)):
            buf[base + np.uintp(lo) + t] = src[np.uintp(lo + col0) + t]
        for j in range(lo):
            c = source_index(col0 + j, w, pad_mode)
            buf[base + j] = src[c] if c >= 0 else fill
        for j in range(hi, cols):
            c = source_index(col0 + j, w, pad_mode)
            buf[base + j] = src[c] if c >= 0 else fill


@kernel
def grad_weight_planes(grad_out, x, partial, stride_h, stride_w, dil_h, dil_w, pad_top,
                       pad_left, pad_mode, fill, groups, images_per_chunk, task_lo, task_hi):
    """Partial sums of the weight gradient, one per chunk of ``images_per_chunk`` images.

    Tasks are ``(chunk, co)``; ``partial`` has shape (n_chunks, C_out, 1, kH, kW).
    """
    n_batch = x.shape[0]
    n_chunks, c_out, _, kh, kw = partial.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    c_out_g = c_out // groups
    rows = (out_h - 1) * stride_h + (kh - 1) * dil_h + 1
    cols = (out_w - 1) * stride_w + (kw - 1) * dil_w + 1
    width = np.uintp(out_w)
    step = np.uintp(stride_w)
    for task in range(task_lo, task_hi):
        chunk = task // c_out
        co = task % c_out
        c = co // c_out_g
        padded = np.empty(rows * cols, dtype=x.dtype)
        acc = np.zeros((kh * kw, out_w), dtype=x.dtype)
        for n in range(chunk * images_per_chunk, min(n_batch, (chunk + 1) * images_per_chunk)):
            _pad_plane(x[n, c], padded, rows, cols, -pad_top, -pad_left, pad_mode, fill)
            for i in range(out_h):
                g_row = grad_out[n, co, i]
                for p in range(kh):
                    top = np.uintp((i * stride_h + p * dil_h) * cols)
                    for q in range(kw):
                        lane = acc[p * kw + q]
                        start = top + np.uintp(q * dil_w)
                        if stride_w == 1:
                            for j in range(width):
                                lane[j] += g_row[j] * padded[start + j]
                        else:
                            for j in range(width):
                                lane[j] += g_row[j] * padded[start + j * step]
        for t in range(kh * kw):
            total = acc[t, 0]
            for j in range(1, out_w):
                total += acc[t, j]
            partial[chunk, co, 0, t // kw, t % kw] = total


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten)."""
    per_chunk = max(1, config.CPU_GRAD_WEIGHT_CHUNK_PLANES)
    n_chunks = -(-plan.out_shape[0] // per_chunk)
    partial = np.empty((n_chunks,) + grad_w.shape, dtype=plan.dtype)
    work = grad_out.size * plan.weight_shape[2] * plan.weight_shape[3]
    _pool.run(grad_weight_planes, n_chunks * plan.weight_shape[0], grad_out, x, partial,
              plan.stride[0], plan.stride[1], plan.dilation[0], plan.dilation[1], plan.pad_top,
              plan.pad_left, plan.pad_mode, plan.dtype.type(plan.fill), plan.groups, per_chunk,
              work=work)
    return _sum_chunks(partial, grad_w)


def _sum_chunks(partial, grad_w):
    """``grad_w = partial[0] + partial[1] + ...`` in order (repeatable at any thread count)."""
    grad_w[...] = partial[0]
    for chunk in partial[1:]:
        grad_w += chunk
    return grad_w
