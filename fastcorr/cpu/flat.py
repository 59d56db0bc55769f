"""The "flat" implementation: depthwise layers on small planes, one vector loop per tap.

On a 7x7 or 14x14 plane the "taps" kernels spend more on each plane's set-up (bands, blocks
of four rows, a taller buffer for short outputs) than on its few hundred multiply-adds. Here a
task pads the planes of one channel in a few images, one under the other, into a buffer of
``rows x pitch`` samples each (the boundary rule, ``fill`` for zeros), and computes the
unit-stride correlation over the flattened buffer: output ``(i, j)`` of the ``k``-th plane
sits at ``t = (k * rows + i) * pitch + j``, and tap ``(p, q)`` adds ``w[p, q] * padded[t + p *
dh * pitch + q * dw]`` for every ``t`` at once, one long vector loop (the columns between rows
and the rows between planes are computed and dropped). A stride keeps every ``sh``-th row and
``sw``-th column of that.

Each output sums the bias, then the taps row by row, the order of
:func:`fastcorr.cpu.rows.correlate_rows`, with the same products: the result is bitwise the
row kernel's (and so the "taps" kernels'). The input gradient at unit strides is the forward
of the output gradient with the rotated kernel (:func:`fastcorr.cpu.depthwise.grad_input`).

One input channel per group (depthwise layers, any channel multiplier, single-channel
images); "direct" takes it over "taps" at unit row stride for planes of at most
``fastcorr.config.CPU_FLAT_MAX_PLANE`` pixels (Zen 4, float32, batch 8, forward, taps ->
flat, ms, in one process: 3x3 at 960 channels on 7^2 1.6 -> 0.9-1.0, 3x3 at 576 on 14^2
1.2-1.7 -> 0.8-1.1, 7x7 at 384 on 14^2 3.9-4.8 -> 2.5-3.1, 3x3 at 32 on 28^2 0.31-0.37 ->
0.23-0.28, 5x5 at 240 on 28^2 about even; at stride 2 it computes every row and loses).
"""

import numpy as np

from . import _pool, depthwise
from .._validate import ZEROS
from ._indexing import in_range_span, pad_into
from ._jit import helper, kernel

#: The vector loops run over a multiple of this many samples (the samples past the span are
#: computed and dropped): LLVM vectorises them 16 float32 lanes wide, four vectors an
#: iteration, and a remainder would run one sample at a time (on a 7x7 plane, all of it).
LANES = 64

#: A task stacks the planes of as many images (of one channel) as fill this many samples,
#: one under the other, and runs each tap's vector loop over all of them at once (Zen 4,
#: float32, batch 8, one plane -> stacked: 960 channels on 7^2 0.59-0.87 -> 0.40-0.69 ms,
#: 576 on 14^2 0.71-1.23 -> 0.57-0.59 ms; 2048-8192 samples were no better).
STACK_SAMPLES = 1024

#: A plane's padding and copying out count as this many multiply-adds when the pool decides
#: how many threads a call deserves (they cost about as much as a 3x3 plane's taps).
PLANE_WORK = 512

def why_not(plan):
    """None for one input channel per group, else why not."""
    if plan.weight_shape[1] != 1:
        return "it needs one input channel per group (single-channel images, depthwise layers)"
    return None


def input_why_not(plan):
    """None when the "flat" input gradient computes ``plan``, else why not."""
    reason = depthwise.input_why_not(plan)
    return reason if reason is not None else why_not(plan)


def _extent(plan):
    """``(rows, pitch, span)``: the padded plane's rows and row pitch, and the flat length of
    the unit-stride output."""
    kh, kw = plan.weight_shape[2:]
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    out_h, out_w = plan.out_shape[2:]
    rows = (out_h - 1) * sh + (kh - 1) * dh + 1
    pitch = (out_w - 1) * sw + (kw - 1) * dw + 1
    return rows, pitch, (out_h - 1) * sh * pitch + (out_w - 1) * sw + 1


@helper
def _tap(taps, index, kw, dil_h, dil_w, pitch):
    """Tap ``index`` (row-major) of a kernel: its weight and its shift in the padded buffer."""
    p, q = index // kw, index % kw
    return taps[p, q], np.uintp(p * dil_h * pitch + q * dil_w)


@kernel
def correlate_flat(x, weight, bias, out, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                   pad_mode, fill, c_out_g, rows, pitch, stack, padded, acc, task_lo, task_hi):
    """``out[n, co]`` for tasks ``(co, group of stack images)``: pad the images' planes one
    under the other, sum the taps over the flat span of them all.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W), C-contiguous
    weight : ndarray, shape (C_out, 1, kH, kW), C-contiguous
    bias : ndarray, shape (C_out,)
    out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous; written
    padded, acc : ndarray, shape (stack * rows * pitch + LANES,): the task's buffers
        (``padded``'s last LANES samples zero: the last block of a vector loop reads them)
    """
    n_batch = x.shape[0]
    c_out, _, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    h, w = x.shape[2], x.shape[3]
    n_stacks = (n_batch + stack - 1) // stack
    plane = rows * pitch
    # zero padding: the samples outside the planes are the fill for every plane, so the
    # buffer is filled once and each plane copies only its rows inside (the per-row boundary
    # rule cost a 7x7 plane as much as its taps)
    frame = pad_mode == ZEROS
    if frame:
        for t in range(stack * plane):
            padded[t] = fill
    lo, hi = in_range_span(pitch, 1, -pad_left, w)
    top, bottom = in_range_span(rows, 1, -pad_top, h)
    for task in range(task_lo, task_hi):
        co = task // n_stacks
        first = (task % n_stacks) * stack
        count = min(n_batch, first + stack) - first
        for k in range(count):
            src = x[first + k, co // c_out_g]
            if frame:
                for i in range(top, bottom):
                    row = src[i - pad_top]
                    base = np.uintp(k * plane + i * pitch + lo)
                    start = np.uintp(lo - pad_left)
                    for j in range(np.uintp(hi - lo)):
                        padded[base + j] = row[start + j]
            else:
                pad_into(src, padded[k * plane:(k + 1) * plane], rows, pitch, -pad_top,
                         -pad_left, pad_mode, fill)
        span = ((count - 1) * rows + (out_h - 1) * stride_h) * pitch \
            + (out_w - 1) * stride_w + 1
        length = np.uintp((span + LANES - 1) // LANES * LANES)  # whole blocks: no remainder
        b = bias[co]
        for t in range(length):
            acc[t] = b
        taps = weight[co, 0]
        # four taps a pass (in order, each added on its own: the rows kernel's sums) halve
        # the passes' loads and stores of the sums
        n_taps = kh * kw
        for first_tap in range(0, n_taps - n_taps % 4, 4):
            w0, s0 = _tap(taps, first_tap, kw, dil_h, dil_w, pitch)
            w1, s1 = _tap(taps, first_tap + 1, kw, dil_h, dil_w, pitch)
            w2, s2 = _tap(taps, first_tap + 2, kw, dil_h, dil_w, pitch)
            w3, s3 = _tap(taps, first_tap + 3, kw, dil_h, dil_w, pitch)
            for t in range(length):
                acc[t] = (acc[t] + w0 * padded[s0 + t] + w1 * padded[s1 + t]
                          + w2 * padded[s2 + t] + w3 * padded[s3 + t])
        for index in range(n_taps - n_taps % 4, n_taps):
            w0, s0 = _tap(taps, index, kw, dil_h, dil_w, pitch)
            for t in range(length):
                acc[t] += w0 * padded[s0 + t]
        for k in range(count):
            dst = out[first + k, co]
            for i in range(out_h):
                row = dst[i]
                base = np.uintp(k * plane + i * stride_h * pitch)
                if stride_w == 1:
                    for j in range(np.uintp(out_w)):
                        row[j] = acc[base + j]
                else:
                    step = np.uintp(stride_w)
                    for j in range(np.uintp(out_w)):
                        row[j] = acc[base + j * step]


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``."""
    c_out = plan.weight_shape[0]
    if bias is None:
        bias = np.zeros(c_out, dtype=plan.dtype)
    rows, pitch, _ = _extent(plan)
    n = plan.out_shape[0]
    # images a task stacks: as many as fill STACK_SAMPLES (the shape alone decides)
    stack = max(1, min(n, STACK_SAMPLES // (rows * pitch)))

    def scratch():
        return (np.zeros(stack * rows * pitch + LANES, dtype=plan.dtype),
                np.empty(stack * rows * pitch + LANES, dtype=plan.dtype))

    kh, kw = plan.weight_shape[2:]
    _pool.run(correlate_flat, c_out * -(-n // stack), x, weight, bias, out, *plan.stride,
              *plan.dilation, plan.pad_top, plan.pad_left, plan.pad_mode,
              plan.dtype.type(plan.fill), c_out // plan.groups, rows, pitch, stack,
              work=out.size * kh * kw + PLANE_WORK * n * c_out, scratch=scratch)
    return out


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    return depthwise.grad_input(grad_out, weight, grad_x, plan, forward=correlate)
