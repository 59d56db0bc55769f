"""Gradients of layers with one input channel per group (single-channel images, depthwise).

- "taps" input gradient (unit strides, one output channel per input channel, finite weights):
  the output gradient correlated with the rotated kernel is the gradient of the padded input
  (the forward :mod:`fastcorr.cpu.taps` kernels on a plan of its own); for zero padding only
  the input's part of it is computed, for the other boundary rules the padding is folded back
  (:func:`fastcorr.cpu.rows.fold_planes`). The kernels multiply every weight by the zeros
  around the output gradient, so weights with an infinity take the "scatter" kernel instead.
- "planes" weight gradient: a task per (chunk of images, channel) pads each of its input
  planes once, at strides as its stride phases, lays the output gradients out at the same
  row pitch, and sums, for every tap, the output gradient times the shifted plane in one
  vector loop (:func:`grad_weight_spans`); chunks are added in order, so results are
  repeatable. A non-finite result is computed again plane row by plane row
  (:func:`grad_weight_planes`), reading only the samples each tap uses. Zero padding at
  unit strides has a kernel of its own (:func:`grad_weight_spans_framed`, the same sums
  without the other copies, which Numba would compile whether they run or not). Strided
  layers by phases, against the row by row kernel (Zen 4, float32, batch 8, ms): 5x5/2 at 672
  channels on 14^2 2.5 -> 1.8, at 240 on 28^2 3.7 -> 1.9, 7x7/2 at 64 on 112^2 22.5 ->
  10.6, 3x3/2 at 96 on 112^2 8.1 -> 6.3. Planes of more than BAND_MIN_PIXELS padded
  pixels are cut into bands of output rows first (:func:`_grad_weight_in_bands`: a single
  1024^2 image's 7x7 weight gradient 3.3x faster).
"""

from dataclasses import replace

import numpy as np

from .. import _memory
from .. import _validate as v
from .. import config
from . import _pool, taps
from ._indexing import (boundary_maps, column_phases, copy_inside, copy_with_maps,
                        in_range_span, pad_into, phase_extent, phase_row, phase_row_starts,
                        tap_shifts)
from ._jit import helper, kernel
from .rows import fold


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
    """The forward plan that correlates the output gradient with the transposed, rotated
    kernel (:func:`transposed_weight`) into an ``out_hw`` extent (zero padding ``pad_top``,
    ``pad_left``)."""
    n, c_out, out_h, out_w = plan.out_shape
    c_in = plan.input_shape[1]
    kh, kw = plan.weight_shape[2:]
    (dh, dw) = plan.dilation
    return replace(plan, input_shape=(n, c_out, out_h, out_w), out_shape=(n, c_in) + out_hw,
                   weight_shape=(c_in, c_out // plan.groups, kh, kw), stride=(1, 1),
                   pad_top=pad_top, pad_left=pad_left,
                   pad_bottom=out_hw[0] + (kh - 1) * dh - out_h - pad_top,
                   pad_right=out_hw[1] + (kw - 1) * dw - out_w - pad_left,
                   pad_mode=v.ZEROS, fill=0.0)


def transposed_weight(weight, groups):
    """Each group's kernels transposed (input and output channels swapped) and rotated by 180
    degrees: ``(C_in, C_out/groups, kH, kW)``, the kernel whose forward at unit strides is the
    input gradient (for one channel per group, the kernel rotated)."""
    c_out, c_in_g, kh, kw = weight.shape
    per_group = weight.reshape(groups, c_out // groups, c_in_g, kh, kw)
    return np.ascontiguousarray(per_group.transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
                                .reshape(groups * c_in_g, c_out // groups, kh, kw))


def grad_input(grad_out, weight, grad_x, plan, forward=taps.correlate):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten), with
    ``forward`` (a forward implementation of one input channel per group, or of any group
    for "flat") computing the correlations of the output gradient with the transposed,
    rotated kernel."""
    kh, kw = plan.weight_shape[2:]
    dh, dw = plan.dilation
    rotated = transposed_weight(weight, plan.groups)
    n, c, h, w = plan.input_shape
    if plan.pad_mode == v.ZEROS:
        inner = _transposed_plan(plan, (h, w), (kh - 1) * dh - plan.pad_top,
                                 (kw - 1) * dw - plan.pad_left)
        return forward(grad_out, rotated, None, grad_x, inner)
    padded_hw = (h + plan.pad_top + plan.pad_bottom, w + plan.pad_left + plan.pad_right)
    full = _transposed_plan(plan, padded_hw, (kh - 1) * dh, (kw - 1) * dw)
    padded = _memory.empty((n, c) + padded_hw, dtype=plan.dtype)
    forward(grad_out, rotated, None, padded, full)
    return fold(padded, grad_x, -plan.pad_top, -plan.pad_left, plan.pad_mode)


LANES = 32

#: A copied sample counts as this many multiply-adds when the pool decides how many threads a
#: weight gradient deserves.
COPY_WORK = 4


@helper
def _sum_in_lanes(acc, start, count, lanes):
    """``sum(acc[start:start + count])`` in a fixed order: LANES interleaved partial sums (a
    vector loop), then the lanes and the remainder left to right."""
    for j in range(LANES):
        lanes[j] = 0
    blocks = count // LANES
    for b in range(blocks):
        base = np.uintp(start + b * LANES)
        for j in range(np.uintp(LANES)):
            lanes[j] += acc[base + j]
    total = lanes[0]
    for j in range(1, LANES):
        total += lanes[j]
    for t in range(blocks * LANES, count):
        total += acc[start + t]
    return total


@helper
def _lay_out(g, framed, base, out_h, out_w, pitch):
    """An output gradient plane (``g``, flattened) into ``framed`` from ``base``, its rows
    ``pitch`` apart (the zeros between them written beforehand)."""
    for i in range(out_h):
        row = np.uintp(base + i * pitch)
        start = np.uintp(i * out_w)
        for j in range(np.uintp(out_w)):
            framed[row + j] = g[start + j]


@helper
def _span_sums(framed, padded, acc, lanes, partial, chunk, co, shifts, count, length, plane):
    """Every tap's sum over the ``count`` images' spans (``framed`` gradients ``length`` apart,
    padded planes ``plane`` apart) into ``partial[chunk, co, 0]``: two taps a pass (the last
    alone when their number is odd), each pass's sums reduced at one place in the code (each
    place is a copy Numba compiles)."""
    kh, kw = partial.shape[3], partial.shape[4]
    n_taps = kh * kw
    second = np.uintp(length)  # where the second tap's sums start in ``acc``
    m = 0
    while m < n_taps:
        pair = m + 1 < n_taps
        shift0 = np.uintp(shifts[m])
        if pair:
            shift1 = np.uintp(shifts[m + 1])
            for t in range(2 * length):
                acc[t] = 0
            for k in range(count):
                g_base = np.uintp(k * length)
                x_base = np.uintp(k * plane)
                for t in range(length):
                    f = framed[g_base + t]
                    acc[t] += f * padded[x_base + shift0 + t]
                    acc[second + t] += f * padded[x_base + shift1 + t]
        else:
            for t in range(length):
                acc[t] = 0
            for k in range(count):
                g_base = np.uintp(k * length)
                x_base = np.uintp(k * plane) + shift0
                for t in range(length):
                    acc[t] += framed[g_base + t] * padded[x_base + t]
        taps = 2 if pair else 1
        for r in range(taps):
            tap = m + r
            partial[chunk, co, 0, tap // kw, tap % kw] = _sum_in_lanes(acc, r * second, length,
                                                                       lanes)
        m += taps


@kernel
def grad_weight_spans(grad_out, x, partial, stride_h, stride_w, pad_top, pad_left, pad_mode,
                      fill, groups, images_per_chunk, rows, cols, phase_rows, phase_cols, shifts,
                      row_map, col_map, lo, hi, padded, line, framed, acc, lanes, task_lo,
                      task_hi):
    """Partial sums of the weight gradient, one per chunk of images.

    A task ``(chunk, co)`` pads its images' input planes (``rows x cols`` each), stored as
    their ``sh * sw`` stride phases (``phase_rows x phase_cols`` blocks, as in
    :func:`fastcorr.cpu.flat.correlate_flat`; at unit strides the padded plane itself), and
    lays their output gradients out at the phases' row pitch (``framed``): the gradient of
    tap ``(p, q)`` is then one long vector loop, ``sum_t framed[t] * padded[t + shift]`` over
    the flattened plane, ``shift`` being where the tap's samples start in its phase
    (``shifts``; the columns between the gradient's rows are zeros), summed over the chunk's
    images into ``acc`` and reduced in a fixed order. The loops run over whole blocks of
    LANES samples (``framed`` holds zeros past each span): a 7x7 plane's span of 61 samples
    had run one sample at a time, LLVM's vector loop taking 64 an iteration. Taps go two a
    pass (each gradient sample loaded once for both; every tap's sum in its own order, so
    the result is as tap by tap): Zen 4, float32, batch 8, one process, 960 channels on 7^2
    1.36x faster, 5x5/2 at 672 on 14^2 1.30x, 56^2 planes 1.11-1.19x. Four a pass was 2-3x
    slower (LLVM no longer vectorised the loop).

    The zeros of ``framed`` and, with zero padding, the fill around the planes in ``padded``
    are written once a call, then each task copies only the samples inside (padding a 7x7
    plane row by row through the boundary rule cost more than its taps). The other boundary
    rules copy whole padded planes through the boundary maps (``row_map, col_map, lo, hi``,
    :func:`fastcorr.cpu._indexing.boundary_maps`: the kernel compiles without the rule's
    branches), at strides into ``line`` first and from there into the phases.
    """
    n_batch = x.shape[0]
    c_out = partial.shape[1]
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    c_out_g = c_out // groups
    block = phase_rows * phase_cols
    plane = stride_h * stride_w * block
    span = np.uintp((out_h - 1) * phase_cols + out_w)
    length = np.uintp((span + LANES - 1) // LANES * LANES)  # whole blocks, zeros past span
    n_in, h, w = x.shape[1], x.shape[2], x.shape[3]
    planes = x.reshape(n_batch * n_in, h * w)
    gradients = grad_out.reshape(n_batch * c_out, out_h * out_w)
    for t in range(framed.shape[0]):
        framed[t] = 0
    frame = pad_mode == v.ZEROS
    if frame:
        for t in range(padded.shape[0]):
            padded[t] = fill
    unit = stride_h == 1 and stride_w == 1
    top, bottom = in_range_span(rows, 1, -pad_top, h)
    row_base = phase_row_starts(rows, stride_h, stride_w, phase_cols, block)
    inside = column_phases(lo, hi, -pad_left, stride_w, block)
    whole = column_phases(0, cols, 0, stride_w, block)
    for task in range(task_lo, task_hi):
        chunk = task // c_out
        co = task % c_out
        c = co // c_out_g
        first = chunk * images_per_chunk
        count = min(n_batch, first + images_per_chunk) - first
        for k in range(count):
            slot = k * plane
            if frame:  # only the samples inside: the frame holds the fill
                src = planes[(first + k) * n_in + c]
                if unit:
                    copy_inside(src, padded, slot, top, bottom, pad_top, pad_left, w, cols,
                                lo, hi)
                else:  # into the stride phases
                    for i in range(top, bottom):
                        phase_row(src, (i - pad_top) * w, padded, slot + row_base[i], inside,
                                  stride_w)
            else:
                # the whole padded plane through the boundary maps: in place at unit strides,
                # else into ``line`` and from there into its phases
                target = padded[slot:slot + plane] if unit else line
                copy_with_maps(x[first + k, c], target, rows, cols, row_map, col_map, lo, hi,
                               pad_left, fill)
                if not unit:
                    for i in range(rows):
                        phase_row(line, i * cols, padded, slot + row_base[i], whole, stride_w)
            _lay_out(gradients[(first + k) * c_out + co], framed, k * length, out_h, out_w,
                     phase_cols)
        _span_sums(framed, padded, acc, lanes, partial, chunk, co, shifts, count, length, plane)


@kernel
def grad_weight_spans_framed(gradients, planes, partial, h, w, out_h, out_w, pad_top,
                             pad_left, fill, groups, images_per_chunk, rows, cols, shifts, lo,
                             hi, padded, framed, acc, lanes, task_lo, task_hi):
    """:func:`grad_weight_spans` at unit strides with zero padding, the commonest layer: the
    same sums in the same order, from a kernel without the other boundary rules' and the
    stride phases' copies (which Numba compiles whether they run or not). ``gradients`` (N *
    C_out, H_out * W_out) and ``planes`` (N * C_in, H * W) are the output gradient and the
    input flattened by the host (a reshape in the kernel cost its compilation 0.15-0.3 s)."""
    c_out = partial.shape[1]
    n_batch = gradients.shape[0] // c_out
    n_in = planes.shape[0] // n_batch
    c_out_g = c_out // groups
    plane = rows * cols
    span = (out_h - 1) * cols + out_w
    length = np.uintp((span + LANES - 1) // LANES * LANES)  # whole blocks, zeros past span
    for t in range(framed.shape[0]):
        framed[t] = 0
    for t in range(padded.shape[0]):
        padded[t] = fill
    top, bottom = in_range_span(rows, 1, -pad_top, h)
    for task in range(task_lo, task_hi):
        chunk = task // c_out
        co = task % c_out
        first = chunk * images_per_chunk
        count = min(n_batch, first + images_per_chunk) - first
        for k in range(count):
            copy_inside(planes[(first + k) * n_in + co // c_out_g], padded, k * plane, top,
                        bottom, pad_top, pad_left, w, cols, lo, hi)
            _lay_out(gradients[(first + k) * c_out + co], framed, k * length, out_h, out_w,
                     cols)
        _span_sums(framed, padded, acc, lanes, partial, chunk, co, shifts, count, length, plane)


@kernel
def grad_weight_planes(grad_out, x, partial, stride_h, stride_w, dil_h, dil_w, pad_top,
                       pad_left, pad_mode, fill, groups, images_per_chunk, padded, acc, task_lo,
                       task_hi):
    """Partial sums of the weight gradient at any stride, one per chunk of images.

    Tasks are ``(chunk, co)``; ``partial`` has shape (n_chunks, C_out, 1, kH, kW); ``padded``
    (a padded input plane) and ``acc`` (kH * kW rows of out_w sums) are the task's buffers.
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
        for t in range(np.uintp(kh * kw * out_w)):
            acc[t] = 0
        for n in range(chunk * images_per_chunk, min(n_batch, (chunk + 1) * images_per_chunk)):
            pad_into(x[n, c], padded, rows, cols, -pad_top, -pad_left, pad_mode, fill)
            for i in range(out_h):
                g_row = grad_out[n, co, i]
                for p in range(kh):
                    top = np.uintp((i * stride_h + p * dil_h) * cols)
                    for q in range(kw):
                        lane = np.uintp((p * kw + q) * out_w)
                        start = top + np.uintp(q * dil_w)
                        for j in range(width):
                            acc[lane + j] += g_row[j] * padded[start + j * step]
        for t in range(kh * kw):
            base = t * out_w
            total = acc[base]
            for j in range(1, out_w):
                total += acc[base + j]
            partial[chunk, co, 0, t // kw, t % kw] = total


#: A weight gradient whose padded input planes have more pixels than this (and more than
#: BAND_ROWS output rows) is computed over bands of BAND_ROWS output rows
#: (:func:`_grad_weight_in_bands`).
BAND_MIN_PIXELS = 1 << 16
#: Output rows of a band.
BAND_ROWS = 8


def _cut_in_bands(plan):
    """Whether :func:`grad_weight` sums ``plan``'s planes in bands of output rows."""
    rows, cols = phase_extent(plan)[:2]
    return rows * cols > BAND_MIN_PIXELS and plan.out_shape[2] > BAND_ROWS


def weight_working_pixels(plan):
    """Pixels of the input a task of :func:`grad_weight` sums over: a band's, for planes
    cut into bands, else the padded plane's (the cost model's measure of its working set)."""
    rows, cols = phase_extent(plan)[:2]
    return (_band_input_rows(plan) if _cut_in_bands(plan) else rows) * cols


def _band_input_rows(plan):
    return (BAND_ROWS - 1) * plan.stride[0] + (plan.weight_shape[2] - 1) * plan.dilation[0] + 1


#: Bytes of bands (input and output gradient) laid out at a time: larger batches are
#: summed a slab of images at a time, the slabs' sums added in order.
BAND_SLAB_BYTES = 64 << 20


def _grad_weight_in_bands(grad_out, x, grad_w, plan):
    """The weight gradient of large planes as that of a batch of bands: output rows ``b *
    BAND_ROWS ...`` of each plane, with the padded input rows they read (the boundary rule
    applied by :func:`lay_out_bands`), become one image of a plan without padding, and the
    weight gradient sums over the batch, a slab of images at a time. Over whole planes a
    task had summed each tap over the plane, out of the first-level cache, and a single
    image was one task on one thread. Measured (AMD EPYC Zen 4, 2 cores, float32, one
    process, two runs, ms, whole planes -> bands): 1024^2 7x7 20-23 -> 6.1, 2048^2 5x5
    75-85 -> 23, 512^2 11x11 11-12 -> 3-4, depthwise 32 channels on 256^2 7x7 batch 4
    74-78 -> 45-51, 16 channels on 512^2 5x5 batch 2 40-46 -> 31-33; on 128^2 planes (not
    cut) the same time either way. The last band's rows past the output are zeros of the
    output gradient; a non-finite result (an infinity there meets those zeros) is computed
    again over whole planes: returns None for that."""
    n, c_in = plan.input_shape[:2]
    c_out, out_h, out_w = plan.out_shape[1:]
    rows, cols = phase_extent(plan)[:2]
    n_bands = -(-out_h // BAND_ROWS)
    band_rows = _band_input_rows(plan)
    pitch = BAND_ROWS * plan.stride[0]  # between the bands' first rows
    row_map, col_map, lo, hi = boundary_maps(plan, rows, cols)
    extra = (n_bands - 1) * pitch + band_rows - rows  # the last band's rows past the extent
    row_map = np.concatenate((row_map, np.full(max(0, extra), -1, dtype=row_map.dtype)))
    per_image = n_bands * (c_in * band_rows * cols + c_out * BAND_ROWS * out_w) * plan.dtype.itemsize
    slab = max(1, min(n, BAND_SLAB_BYTES // per_image))
    x_bands = _memory.empty((slab * n_bands * c_in, band_rows * cols), dtype=plan.dtype)
    g_bands = _memory.empty((slab * n_bands * c_out, BAND_ROWS * out_w), dtype=plan.dtype)
    sums = np.empty_like(grad_w)
    for first in range(0, n, slab):
        count = min(slab, n - first)
        tasks = count * n_bands
        _pool.run(lay_out_bands, tasks, x[first:first + count], grad_out[first:first + count],
                  x_bands, g_bands, row_map, col_map, lo, hi, plan.pad_left,
                  plan.dtype.type(plan.fill), n_bands, pitch, band_rows,
                  work=COPY_WORK * (x_bands.size + g_bands.size) * count / slab)
        banded = replace(plan, input_shape=(tasks, c_in, band_rows, cols),
                         out_shape=(tasks, c_out, BAND_ROWS, out_w), pad_top=0, pad_bottom=0,
                         pad_left=0, pad_right=0, pad_mode=v.ZEROS, fill=0.0)
        grad_weight(g_bands[:tasks * c_out].reshape(banded.out_shape),
                    x_bands[:tasks * c_in].reshape(banded.input_shape),
                    grad_w if first == 0 else sums, banded)
        if first:
            grad_w += sums
    return grad_w if np.isfinite(grad_w).all() else None


@kernel
def lay_out_bands(x, grad_out, x_bands, g_bands, row_map, col_map, lo, hi, pad_left, fill,
                  n_bands, pitch, band_rows, task_lo, task_hi):
    """Tasks ``(image, band)``: ``x_bands[task * C_in + c]`` is band ``band`` of input plane
    ``x[image, c]`` padded (``band_rows`` rows of the padded extent from row ``band *
    pitch``, by the boundary maps), ``g_bands[task * C_out + c]`` rows ``band * BAND_ROWS``
    on of the output gradient's plane (zeros past its last row)."""
    c_in = x.shape[1]
    c_out, out_h, out_w = grad_out.shape[1:]
    cols = x_bands.shape[1] // band_rows
    for task in range(task_lo, task_hi):
        image = task // n_bands
        band = task % n_bands
        for c in range(c_in):
            copy_with_maps(x[image, c], x_bands[task * c_in + c], band_rows, cols,
                           row_map[band * pitch:], col_map, lo, hi, pad_left, fill)
        for c in range(c_out):
            dst = g_bands[task * c_out + c]
            for r in range(BAND_ROWS):
                row = band * BAND_ROWS + r
                base = r * out_w
                if row < out_h:
                    src = grad_out[image, c, row]
                    for j in range(out_w):
                        dst[base + j] = src[j]
                else:
                    for j in range(out_w):
                        dst[base + j] = 0


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten).

    Planes of more than BAND_MIN_PIXELS padded pixels are summed in bands of output rows
    (:func:`_grad_weight_in_bands`)."""
    if _cut_in_bands(plan) and _grad_weight_in_bands(grad_out, x, grad_w, plan) is not None:
        return grad_w
    kh, kw = plan.weight_shape[2:]
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    out_h, out_w = plan.out_shape[2:]
    rows, cols, phase_rows, phase_cols = phase_extent(plan)
    plane = rows * cols
    # images per chunk: the configured number, fewer for large planes (their buffers stay
    # within a few hundred kilobytes); the shape alone decides, so results are repeatable
    per_chunk = max(1, min(config.CPU_GRAD_WEIGHT_CHUNK_PLANES, (1 << 16) // plane))
    n_chunks = -(-plan.out_shape[0] // per_chunk)
    partial = _memory.empty((n_chunks,) + grad_w.shape, dtype=plan.dtype)
    # the taps' multiply-adds, and each plane's copies in (counted as the gather's copies are
    # in im2col): without them, 960 channels on 7^2 ran on one thread
    work = grad_out.size * kh * kw + COPY_WORK * grad_out.shape[0] * plan.weight_shape[0] * (
        plane + out_h * out_w)
    common = (plan.pad_top, plan.pad_left, plan.pad_mode, plan.dtype.type(plan.fill),
              plan.groups, per_chunk)
    tasks = n_chunks * plan.weight_shape[0]
    span = (out_h - 1) * phase_cols + out_w
    length = -(-span // LANES) * LANES

    def scratch():
        # (the last image's blocks read up to LANES samples past its plane: zeros)
        return (_memory.zeros(per_chunk * sh * sw * phase_rows * phase_cols + LANES,
                              dtype=plan.dtype),
                _memory.empty(plane if (sh, sw) != (1, 1) else 1, dtype=plan.dtype),
                _memory.empty(per_chunk * length, dtype=plan.dtype),
                _memory.empty(2 * length, dtype=plan.dtype),
                _memory.empty(LANES, dtype=plan.dtype))

    shifts = tap_shifts(plan, phase_rows, phase_cols, 0)
    maps = boundary_maps(plan, rows, cols)
    if (sh, sw) == (1, 1) and plan.pad_mode == v.ZEROS:
        _, _, lo, hi = maps  # (the columns inside the frame)

        def framed_scratch():
            padded, _, framed, acc, lanes = scratch()
            return padded, framed, acc, lanes

        n, c_in, h, w = plan.input_shape
        _pool.run(grad_weight_spans_framed, tasks, grad_out.reshape(n * grad_out.shape[1], out_h * out_w),
                  x.reshape(n * c_in, h * w), partial, h, w, out_h, out_w, plan.pad_top,
                  plan.pad_left, plan.dtype.type(plan.fill), plan.groups, per_chunk, rows,
                  cols, shifts, lo, hi, work=work, scratch=framed_scratch)
    else:
        _pool.run(grad_weight_spans, tasks, grad_out, x, partial, sh, sw, *common, rows, cols,
                  phase_rows, phase_cols, shifts, *maps, work=work, scratch=scratch)
    _sum_chunks(partial, grad_w)
    # The spans also multiply the zeros between the output gradient's rows by input samples
    # no output reads through that tap: an infinity there makes a NaN the true sum does not
    # have. A finite result is exact (the spans' other products are the true ones), so only a
    # non-finite one is computed again, reading the true samples only.
    if np.isfinite(grad_w).all():
        return grad_w

    def scratch():
        return (_memory.empty(plane, dtype=plan.dtype),
                _memory.empty(kh * kw * out_w, dtype=plan.dtype))

    _pool.run(grad_weight_planes, tasks, grad_out, x, partial, sh, sw, dh, dw, *common,
              work=work, scratch=scratch)
    return _sum_chunks(partial, grad_w)


def _sum_chunks(partial, grad_w):
    """``grad_w = partial[0] + partial[1] + ...`` in order (repeatable at any thread count)."""
    grad_w[...] = partial[0]
    for chunk in partial[1:]:
        grad_w += chunk
    return grad_w
