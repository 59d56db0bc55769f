"""The "flat" implementation: depthwise and grouped layers, one vector loop per tap.

On a 7x7 or 14x14 plane the "taps" kernels spend more on each plane's set-up (bands, blocks
of four rows, a taller buffer for short outputs) than on its few hundred multiply-adds. Here a
task copies the padded planes of one channel in a few images (up to STACK_SAMPLES samples),
one after the other, into a buffer (the boundary rule; with zero padding the frame is written
once and only the samples inside are copied), and computes the correlation over the
flattened buffer: output ``(i, j)`` of the ``k``-th plane sits at ``t = k * plane + i * pitch +
j``, and tap ``(p, q)`` adds ``w[p, q] * padded[t + shift(p, q)]`` for every ``t`` at once, one
long vector loop, four taps a pass (the columns between rows and the rows between planes are
computed and dropped; with zero padding at unit strides, rows and planes share their padding,
:func:`fastcorr.cpu._indexing.shared_frame`, so that fewer are). With strides, each plane
is stored as its ``sh * sw`` stride phases (sample ``(r, c)`` in phase ``(r % sh, c % sw)``
at ``(r // sh, c // sw)``), so that the outputs are again consecutive and each tap reads one
phase: no sample is computed in vain.
The stack keeps each phase of all its images together, so the taps' loops run over the
images' first phases only (they had run over every phase of every image but the last, 4x the
work on a stack of 14x14 planes at stride 2).

Zero padding at unit strides, the commonest layer, has a kernel of its own
(:func:`correlate_flat_framed`): Numba compiles every branch of a kernel whether it runs or
not, and without the stride phases' and the other boundary rules' copies the kernel compiles
in about half the time (a cold first depthwise ``conv2d`` 2.9-3.4 -> 1.6-1.7 s, Zen 4); the
sums are the same.

Each output sums the bias, then the taps row by row, the order of
:func:`fastcorr.cpu.rows.correlate_rows`, with the same products: the result is bitwise the
row kernel's (and so the "taps" kernels'). The input gradient at unit strides is the forward
of the output gradient with the rotated kernel (:func:`fastcorr.cpu.depthwise.grad_input`).

With several input channels per group, a task takes one group: it copies the group's planes
(each channel's stack one after the other) and adds, for each output channel, the taps of
every input channel in turn (the rows kernel's order again). Any plan computes this way;
"direct" takes it for grouped layers with 2 to ``config.CPU_FLAT_MAX_GROUP_CHANNELS`` input
channels per group (ResNeXt's, see ``fastcorr.cpu._flat_groups``), and for one input channel
per group (depthwise layers, any channel multiplier, single-channel images) over "taps" at
unit strides for planes of at most
``fastcorr.config.CPU_FLAT_MAX_PLANE`` pixels, and at a column stride of 2 on any plane (see
``fastcorr.cpu._flat_pays``). Measured, Zen 4, float32, batch 8, forward, taps -> flat, ms,
in one process: 3x3 at 960 channels on 7^2 1.6 -> 0.5-0.6; 7x7 at 384 on 14^2 3.9-4.8 ->
1.4-1.7; 3x3 at 32 on 28^2 0.26-0.40 -> 0.17-0.25; 5x5/2 at 672 on 14^2 2.6-2.8 -> 2.2;
3x3/2 at 96 on 112^2 5.9-6.3 -> 4.3. Stacks by phase, with the column phases planned once a
call (Zen 4, float32, batch 8, one thread, best of 75): 5x5/2 at 672 on 14^2 2.70 -> 1.14,
at 240 on 28^2 1.83 -> 1.25; unit strides unchanged.
"""

import functools
from dataclasses import replace

import numpy as np

from .. import _memory
from .._validate import ZEROS
from . import _pool, depthwise
from ._indexing import (boundary_maps, column_phases, copy_inside, copy_with_maps,
                        in_range_span, phase_extent, phase_row, phase_row_starts,
                        phase_taps, shared_frame, tap_shifts)
from ._jit import helper, kernel

#: The vector loops run over a multiple of this many samples (the samples past the span are
#: computed and dropped): LLVM vectorises them 16 float32 lanes wide, four vectors an
#: iteration, and a remainder would run one sample at a time (on a 7x7 plane, all of it).
LANES = 64

#: A task stacks the planes of as many images (of one channel) as fill this many output
#: samples (a phase block of each), one under the other, and runs each tap's vector loop over
#: all of them at once (Zen 4, float32, batch 8, one plane -> stacked: 960 channels on 7^2
#: 0.59-0.87 -> 0.40-0.69 ms, 576 on 14^2 0.71-1.23 -> 0.57-0.59 ms; 2048-8192 samples were
#: no better).
STACK_SAMPLES = 1024

#: At strides, planes at most this wide (inside a zero frame) go into their stride phases by
#: a map of each sample's place, planned once a call, instead of row by row (Zen 4, float32,
#: batch 8, one process: 5x5/2 at 672 channels on 14^2 1.27x faster; 28^2 planes and wider
#: within 1-4%, 112^2 either way; at unit strides the map was 4-32% slower than row copies).
PHASE_MAP_MAX_WIDTH = 16

#: A plane's padding and copying out count as this many multiply-adds when the pool decides
#: how many threads a call deserves (they cost about as much as a 3x3 plane's taps).
PLANE_WORK = 512

def why_not(plan):
    """None: the forward computes every plan (it pays for few input channels per group)."""
    return None


def input_why_not(plan):
    """None when the "flat" input gradient computes ``plan``, else why not: any plan at unit
    strides (the forward with the transposed, rotated kernel), and one output channel per
    input channel at any stride with zero padding and unit dilations (one sum of taps per
    stride phase of the input, :func:`grad_input`)."""
    if plan.stride == (1, 1):
        return None
    reason = depthwise.input_why_not(replace(plan, stride=(1, 1)))
    if reason is None and (plan.pad_mode != ZEROS or plan.dilation != (1, 1)):
        reason = "at strides it needs zero padding and unit dilations"
    return reason


@helper
def _add_taps(acc, padded, weights, shifts, first, last, length):
    """``acc[t] += weights[m] * padded[shifts[m] + t]`` for ``t < length`` and the taps
    ``first <= m < last`` in order, each added on its own (the rows kernel's sums), four taps
    a pass: that halves the passes' loads and stores of the sums."""
    quads = last - (last - first) % 4
    for m in range(first, quads, 4):
        w0, w1, w2, w3 = weights[m], weights[m + 1], weights[m + 2], weights[m + 3]
        s0, s1, s2, s3 = shifts[m], shifts[m + 1], shifts[m + 2], shifts[m + 3]
        for t in range(length):
            acc[t] = (acc[t] + w0 * padded[s0 + t] + w1 * padded[s1 + t]
                      + w2 * padded[s2 + t] + w3 * padded[s3 + t])
    for m in range(quads, last):
        w0, s0 = weights[m], shifts[m]
        for t in range(length):
            acc[t] += w0 * padded[s0 + t]


@helper
def _sum_and_store(acc, padded, weight, bias, shifts, out_planes, g, c_out_g, first, count,
                   block, phase_cols, out_h, out_w):
    """The sums of a task's output channels (those of group ``g``) over its stack of
    ``count`` images from ``first``, each stored into its output plane."""
    c_out, n_taps = weight.shape
    span = (count - 1) * block + (out_h - 1) * phase_cols + out_w
    length = np.uintp((span + LANES - 1) // LANES * LANES)  # whole blocks: no remainder
    for co in range(g * c_out_g, (g + 1) * c_out_g):
        b = bias[co]
        for t in range(length):
            acc[t] = b
        _add_taps(acc, padded, weight[co], shifts, 0, n_taps, length)
        for k in range(count):
            dst = out_planes[(first + k) * c_out + co]
            for i in range(out_h):
                at = np.uintp(i * out_w)
                base = np.uintp(k * block + i * phase_cols)
                for j in range(np.uintp(out_w)):
                    dst[at + j] = acc[base + j]


@kernel
def correlate_flat_framed(planes, weight, bias, out_planes, h, w, out_h, out_w, pad_top,
                          pad_left, fill, c_out_g, rows, cols, stack, shifts, lo, hi, padded,
                          acc, task_lo, task_hi):
    """:func:`correlate_flat` at unit strides with zero padding, the commonest layer: the same
    sums in the same order, from a kernel without the other boundary rules' and the stride
    phases' copies (which Numba compiles whether they run or not). ``rows x cols`` is the
    shared frame (:func:`fastcorr.cpu._indexing.shared_frame`), ``lo, hi`` the padded
    columns inside. ``planes`` (N * C_in, H * W) and ``out_planes`` (N * C_out, H_out *
    W_out) are the input and the result flattened by the host (a reshape in the kernel cost
    its compilation 0.15-0.3 s)."""
    c_out = weight.shape[0]
    n_batch = out_planes.shape[0] // c_out
    c_in = planes.shape[0] // n_batch
    c_in_g = c_in // (c_out // c_out_g)
    n_stacks = (n_batch + stack - 1) // stack
    block = rows * cols
    for t in range(padded.shape[0]):  # the frame, once: the planes copy only their samples
        padded[t] = fill
    top, bottom = in_range_span(rows, 1, -pad_top, h)
    for task in range(task_lo, task_hi):
        g = task // n_stacks
        first = (task % n_stacks) * stack
        count = min(n_batch, first + stack) - first
        for ci in range(c_in_g):
            for k in range(count):
                copy_inside(planes[(first + k) * c_in + g * c_in_g + ci], padded,
                             ci * stack * block + k * block, top, bottom, pad_top, pad_left,
                             w, cols, lo, hi)
        _sum_and_store(acc, padded, weight, bias, shifts, out_planes, g, c_out_g, first, count,
                       block, cols, out_h, out_w)


@kernel
def correlate_flat(x, weight, bias, out, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                   pad_mode, fill, c_out_g, rows, cols, phase_rows, phase_cols, stack, shifts,
                   row_map, col_map, lo, hi, padded, line, acc, task_lo, task_hi):
    """``out[n, co]`` for tasks ``(co, group of stack images)``: copy the images' padded
    planes one after the other, each split into its stride phases; sum the taps over the
    flat span of them all.

    A padded plane's sample ``(r, c)`` goes to phase ``(r % sh, c % sw)``, at row ``r // sh``
    and column ``c // sw`` of a ``phase_rows x phase_cols`` block. The buffer holds each input
    channel's phases one after the other, and each phase the blocks of the stack's images
    one after the other (``[channel][phase][image][block]``). Output ``(i, j)`` of the
    stack's ``k``-th image then sits at ``t = k * block + i * phase_cols + j``, and tap
    ``(p, q)`` reads the phase of ``(p*dh, q*dw)`` at ``t`` plus a fixed offset, for every
    output at once; the span runs over phase ``(0, 0)`` alone (at unit strides there is one
    phase, the padded plane itself).

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W), C-contiguous
    weight : ndarray, shape (C_out, kH * kW), C-contiguous: each kernel's taps, row-major
    bias : ndarray, shape (C_out,)
    out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous; written
    padded : ndarray, shape (C_in/groups * stack * plane + reach,) with ``plane = sh * sw *
        phase_rows * phase_cols``: the task's planes, then zeros (the fill with zero padding)
        as far as the farthest tap reads from the last block of a vector loop (with a shared
        frame, :func:`fastcorr.cpu._indexing.shared_frame`, the last plane's bottom padding
        lies there)
    acc : ndarray, shape (stack * phase_rows * phase_cols + LANES,): the sums
    shifts : ndarray of uintp, shape (kH * kW,): where each tap's samples start in a plane's
        buffer (:func:`tap_shifts`)
    row_map, col_map, lo, hi : the input row and column each padded one reads, and the
        padded columns that read the input directly
        (:func:`fastcorr.cpu._indexing.boundary_maps`)
    line : ndarray, shape (rows * cols,): a padded plane before it is split into phases (at
        strides, for the boundary rules other than zeros)
    """
    n_batch, c_in = x.shape[0], x.shape[1]
    c_out = weight.shape[0]
    groups = c_out // c_out_g
    c_in_g = c_in // groups
    out_h, out_w = out.shape[2], out.shape[3]
    h, w = x.shape[2], x.shape[3]
    planes = x.reshape(n_batch * c_in, h * w)  # rows found by index arithmetic, no view each
    out_planes = out.reshape(n_batch * c_out, out_h * out_w)
    n_stacks = (n_batch + stack - 1) // stack
    block = phase_rows * phase_cols
    plane = stride_h * stride_w * block
    phase_pitch = stack * block  # between the phases of one channel's planes
    # zero padding: the samples outside the planes are the fill for every plane, so the
    # buffer is filled once and each plane copies only its samples inside (the per-row
    # boundary rule cost a 7x7 plane as much as its taps)
    frame = pad_mode == ZEROS
    if frame:  # the tail too: the last plane's padding may reach past its block
        for t in range(padded.shape[0]):
            padded[t] = fill
    top, bottom = in_range_span(rows, 1, -pad_top, h)
    unit = stride_h == 1 and stride_w == 1
    # where each padded row starts in its phase, and the column phases of the samples inside
    # (the frame) and of whole rows
    row_base = phase_row_starts(rows, stride_h, stride_w, phase_cols, phase_pitch)
    inside = column_phases(lo, hi, -pad_left, stride_w, phase_pitch)
    whole = column_phases(0, cols, 0, stride_w, phase_pitch)
    # at strides on narrow planes inside the frame: where each sample goes, planned once
    # (splitting a short row into its column phases cost more than moving its samples)
    by_map = (frame and not unit and w <= PHASE_MAP_MAX_WIDTH and top == pad_top
              and bottom == pad_top + h and lo == pad_left and hi == pad_left + w)
    place = np.empty(h * w if by_map else 0, dtype=np.uintp)
    for i in range(h if by_map else 0):
        for j in range(w):
            c = j + pad_left
            place[i * w + j] = row_base[i + pad_top] + (c % stride_w) * phase_pitch + c // stride_w
    for task in range(task_lo, task_hi):
        g = task // n_stacks
        first = (task % n_stacks) * stack
        count = min(n_batch, first + stack) - first
        for ci in range(c_in_g):  # each input channel's planes one after the other
            for k in range(count):
                src = x[first + k, g * c_in_g + ci]
                slot = ci * stack * plane + k * block  # phase (0, 0) of the plane
                if by_map:
                    flat_src = planes[(first + k) * c_in + g * c_in_g + ci]
                    at = np.uintp(slot)
                    for t in range(np.uintp(h * w)):
                        padded[at + place[t]] = flat_src[t]
                    continue
                if frame:  # only the plane's samples inside: the frame holds the fill
                    flat_src = planes[(first + k) * c_in + g * c_in_g + ci]
                    if unit:
                        copy_inside(flat_src, padded, slot, top, bottom, pad_top, pad_left,
                                     w, cols, lo, hi)
                        continue
                    for i in range(top, bottom):
                        phase_row(flat_src, (i - pad_top) * w, padded, slot + row_base[i],
                                  inside, stride_w)
                    continue
                # the whole padded plane through the boundary rule: in place at unit
                # strides, else into ``line`` and from there into its phases
                target = padded[slot:slot + plane] if unit else line
                copy_with_maps(src, target, rows, cols, row_map, col_map, lo, hi, pad_left,
                               fill)
                if not unit:
                    for i in range(rows):
                        phase_row(line, i * cols, padded, slot + row_base[i], whole, stride_w)
        _sum_and_store(acc, padded, weight, bias, shifts, out_planes, g, c_out_g, first, count,
                       block, phase_cols, out_h, out_w)


@functools.lru_cache(maxsize=256)
def _layout(plan):
    """``(rows, cols, phase_rows, phase_cols, stack, shifts, maps)`` of a plan: the extent
    (:func:`fastcorr.cpu._indexing.phase_extent`), the images a task stacks, the taps' shifts
    and the boundary maps (remembered per plan: a layer is called again and again, and
    computing them cost a small call 15 us). The arrays are shared: never written."""
    rows, cols, phase_rows, phase_cols = phase_extent(plan)
    if plan.stride == (1, 1) and plan.pad_mode == ZEROS:
        rows, cols = shared_frame(plan)
        phase_rows, phase_cols = rows, cols
    block = phase_rows * phase_cols
    plane = plan.stride[0] * plan.stride[1] * block
    # images a task stacks: as many as fill STACK_SAMPLES outputs, a block each (the shape
    # alone decides)
    stack = max(1, min(plan.out_shape[0], STACK_SAMPLES // block))
    shifts = tap_shifts(plan, phase_rows, phase_cols, stack * plane, stack * block)
    return rows, cols, phase_rows, phase_cols, stack, shifts, boundary_maps(plan, rows, cols)


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``."""
    c_out, c_in_g, kh, kw = plan.weight_shape
    if bias is None:
        bias = np.zeros(c_out, dtype=plan.dtype)
    rows, cols, phase_rows, phase_cols, stack, shifts, maps = _layout(plan)
    block = phase_rows * phase_cols
    plane = plan.stride[0] * plan.stride[1] * block
    n = plan.out_shape[0]

    # past the last block, the vector loops read as far as the farthest tap reaches
    reach = (kh - 1) * plan.dilation[0] * phase_cols + (kw - 1) * plan.dilation[1] + LANES

    def scratch():
        return (_memory.zeros(c_in_g * stack * plane + reach, dtype=plan.dtype),
                _memory.empty(rows * cols if plan.stride != (1, 1) else 1, dtype=plan.dtype),
                _memory.empty(stack * block + LANES, dtype=plan.dtype))

    work = out.size * c_in_g * kh * kw + PLANE_WORK * n * c_out
    tasks = plan.groups * -(-n // stack)
    if plan.stride == (1, 1) and plan.pad_mode == ZEROS:
        _, _, lo, hi = maps  # (the columns inside the frame)

        def framed_scratch():
            padded, _, acc = scratch()
            return padded, acc

        h, w = plan.input_shape[2:]
        out_h, out_w = plan.out_shape[2:]
        _pool.run(correlate_flat_framed, tasks, x.reshape(n * plan.input_shape[1], h * w),
                  weight.reshape(c_out, c_in_g * kh * kw), bias,
                  out.reshape(n * c_out, out_h * out_w), h, w, out_h, out_w, plan.pad_top,
                  plan.pad_left, plan.dtype.type(plan.fill), c_out // plan.groups, rows, cols,
                  stack, shifts, lo, hi, work=work, scratch=framed_scratch)
        return out

    _pool.run(correlate_flat, tasks, x,
              weight.reshape(c_out, c_in_g * kh * kw), bias, out, *plan.stride,
              *plan.dilation, plan.pad_top, plan.pad_left, plan.pad_mode,
              plan.dtype.type(plan.fill), c_out // plan.groups, rows, cols, phase_rows,
              phase_cols, stack, shifts, *maps, work=work, scratch=scratch)
    return out


@kernel
def grad_input_phases(grad_out, weight, grad_x, stride_h, stride_w, top, left, rows, cols,
                      stack, phase_geometry, phase_first, shifts, padded, acc, task_lo,
                      task_hi):
    """The input gradient of a strided depthwise layer, tasks ``(c, stack of images)``: copy
    the output gradient's planes into a zero frame (``rows x cols`` a plane, the plane at
    ``(top, left)``), then for each stride phase ``(a, b)`` of the input sum its taps over
    the flat span of the stack, as :func:`correlate_flat` does, and store the sums at input
    rows ``a + sh * u``, columns ``b + sw * v``.

    Parameters
    ----------
    grad_out : ndarray, shape (N, C, H_out, W_out), C-contiguous
    weight : ndarray, shape (C, taps), C-contiguous: each phase's taps of each kernel, in the
        order they are summed (:func:`_phases`)
    grad_x : ndarray, shape (N, C, H, W), C-contiguous; written
    phase_geometry : ndarray of int64, shape (sh * sw, 4): each phase's ``(a, b, rows,
        columns)``
    phase_first : ndarray of int64, shape (sh * sw + 1,): where each phase's taps start in
        ``weight``'s rows and ``shifts``
    shifts : ndarray of uintp: where each tap reads in a plane's buffer
    padded : ndarray, shape (stack * rows * cols + LANES,): zeros around the planes
    acc : ndarray, shape (stack * rows * cols + LANES,): the sums
    """
    n_batch, c = grad_out.shape[0], grad_out.shape[1]
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    h, w = grad_x.shape[2], grad_x.shape[3]
    plane = rows * cols
    sources = grad_out.reshape(n_batch * c, out_h * out_w)
    targets = grad_x.reshape(n_batch * c, h * w)
    n_stacks = (n_batch + stack - 1) // stack
    for t in range(padded.shape[0]):  # the frame: written once, the planes only inside
        padded[t] = 0
    step = np.uintp(stride_w)
    for task in range(task_lo, task_hi):
        ch = task // n_stacks
        first = (task % n_stacks) * stack
        count = min(n_batch, first + stack) - first
        for k in range(count):
            src = sources[(first + k) * c + ch]
            for i in range(out_h):
                at = np.uintp(k * plane + (i + top) * cols + left)
                start = np.uintp(i * out_w)
                for j in range(np.uintp(out_w)):
                    padded[at + j] = src[start + j]
        for phase in range(phase_geometry.shape[0]):
            a, b = phase_geometry[phase, 0], phase_geometry[phase, 1]
            height, width = phase_geometry[phase, 2], phase_geometry[phase, 3]
            if height == 0 or width == 0:
                continue
            span = (count - 1) * plane + (height - 1) * cols + width
            length = np.uintp((span + LANES - 1) // LANES * LANES)
            for t in range(length):
                acc[t] = 0
            _add_taps(acc, padded, weight[ch], shifts, phase_first[phase],
                      phase_first[phase + 1], length)
            for k in range(count):
                dst = targets[(first + k) * c + ch]
                for u in range(height):
                    at = np.uintp((a + stride_h * u) * w + b)
                    base = np.uintp(k * plane + u * cols)
                    for v in range(np.uintp(width)):
                        dst[at + v * step] = acc[base + v]


@functools.lru_cache(maxsize=256)
def _phases(plan):
    """What :func:`grad_input_phases` needs of the plan alone: ``(top, left, rows, cols,
    stack, phase_geometry, phase_first, taps, shifts)``, ``taps`` being each phase's taps
    (indices into a kernel's ``kH * kW``) in the order they are summed."""
    n, c, h, w = plan.input_shape
    out_h, out_w = plan.out_shape[2:]
    (sh, sw), (kh, kw) = plan.stride, plan.weight_shape[2:]
    row_phases = [phase_taps(a, kh, plan.pad_top, sh, h) for a in range(sh)]
    col_phases = [phase_taps(b, kw, plan.pad_left, sw, w) for b in range(sw)]
    # the frame: room for every phase's first and last offsets
    top = max([0] + [-first for reach, first, _ in row_phases if reach])
    left = max([0] + [-first for reach, first, _ in col_phases if reach])
    rows = top + max([out_h] + [first + len(reach) - 1 + size for reach, first, size
                                in row_phases if reach])
    cols = left + max([out_w] + [first + len(reach) - 1 + size for reach, first, size
                                 in col_phases if reach])
    stack = max(1, min(n, STACK_SAMPLES // (rows * cols)))
    geometry, starts, taps, shifts = [], [0], [], []
    for a, (row_reach, row_first, height) in enumerate(row_phases):
        for b, (col_reach, col_first, width) in enumerate(col_phases):
            geometry.append((a, b, height, width))
            for mr, p in enumerate(row_reach):
                for mc, q in enumerate(col_reach):
                    taps.append(p * kw + q)
                    shifts.append((row_first + mr + top) * cols + col_first + mc + left)
            starts.append(len(taps))
    return (top, left, rows, cols, stack, np.array(geometry, dtype=np.int64).reshape(-1, 4),
            np.array(starts, dtype=np.int64), np.array(taps, dtype=np.int64),
            np.array(shifts, dtype=np.uintp))


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten).

    At unit strides, the forward of the output gradient with each group's kernels
    transposed and rotated (:func:`fastcorr.cpu.depthwise.grad_input`). At strides, input
    row ``r = a + sh * u`` (of row phase ``a``) receives ``g[u + e] * w[p]`` from the taps
    ``p`` with ``(a + pad_top - p) % sh == 0``, ``e = (a + pad_top - p) // sh``, and the same
    for the columns: each of the ``sh * sw`` phases of the input gradient is a stride-1
    correlation of the output gradient with those taps of the kernel, rotated
    (:func:`fastcorr.cpu._indexing.phase_taps`). One task computes every phase of one channel
    from one copy of its output gradient planes (:func:`grad_input_phases`).
    """
    if plan.stride == (1, 1):
        return depthwise.grad_input(grad_out, weight, grad_x, plan, forward=correlate)
    top, left, rows, cols, stack, geometry, starts, taps, shifts = _phases(plan)
    n, c = plan.input_shape[:2]
    kh, kw = plan.weight_shape[2:]
    # each phase's taps of every kernel, in the order they are summed
    phase_weights = np.ascontiguousarray(weight.reshape(c, kh * kw)[:, taps])

    def scratch():
        return (_memory.empty(stack * rows * cols + LANES, dtype=plan.dtype),
                _memory.empty(stack * rows * cols + LANES, dtype=plan.dtype))

    _pool.run(grad_input_phases, c * -(-n // stack), grad_out, phase_weights, grad_x,
              *plan.stride, top, left, rows, cols, stack, geometry, starts, shifts,
              work=grad_out.size * kh * kw + PLANE_WORK * n * c, scratch=scratch)
    return grad_x
