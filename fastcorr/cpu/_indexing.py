"""Index helpers the CPU kernels share: the boundary rule, in-range spans, and planes stored
as their stride phases (inlined into the kernels; :func:`axis_map`, :func:`boundary_maps` and
:func:`tap_shifts` run on the host)."""

import functools

import numpy as np

from .. import _boundary
from ._jit import helper

#: The boundary rule (:func:`fastcorr._boundary.source_index`), shared with the GPU kernels.
source_index = helper(_boundary.source_index)


@helper
def in_range_span(count, step, offset, n):
    """The span ``lo <= j < hi`` of ``j in range(count)`` with ``0 <= j * step + offset < n``."""
    lo = 0 if offset >= 0 else (step - 1 - offset) // step
    hi = (n - 1 - offset) // step + 1
    lo = min(lo, count)
    hi = max(lo, min(hi, count))
    return lo, hi


@helper
def sample(row, k, n, pad_mode, fill):
    """``row`` (of length ``n``) at virtual index ``k`` under the boundary rule."""
    c = source_index(k, n, pad_mode)
    return row[c] if c >= 0 else fill


@helper
def copy_with_maps(plane, buf, rows, cols, row_map, col_map, lo, hi, pad_left, fill):
    """``pad_into`` with the boundary rule evaluated beforehand (:func:`boundary_maps`): row
    ``i`` of ``buf`` (``cols`` long) is plane row ``row_map[i]`` (-1: the fill), its columns
    ``lo <= j < hi`` the plane's ``j - pad_left``, the others ``col_map[j]``. Kernels that
    use it compile without the boundary rule's branches (a second or more of compilation)."""
    for i in range(rows):
        base = np.uintp(i * cols)
        r = row_map[i]
        if r < 0:
            for j in range(np.uintp(cols)):
                buf[base + j] = fill
            continue
        src = plane[r]
        start = np.uintp(lo - pad_left)
        for t in range(np.uintp(hi - lo)):
            buf[base + np.uintp(lo) + t] = src[start + t]
        for j in range(lo):
            c = col_map[j]
            buf[base + j] = src[c] if c >= 0 else fill
        for j in range(hi, cols):
            c = col_map[j]
            buf[base + j] = src[c] if c >= 0 else fill


@helper
def copy_inside(flat_src, buf, slot, top, bottom, pad_top, pad_left, w, cols, lo, hi):
    """A ``w`` wide plane's samples (``flat_src``, flattened) into the zero frame of its
    padded plane at ``buf[slot]`` (``cols`` a row, unit strides): padded rows ``top <= i <
    bottom``, columns ``lo <= j < hi``; the frame itself is written beforehand."""
    for i in range(top, bottom):
        dst = np.uintp(slot + i * cols + lo)
        start = np.uintp((i - pad_top) * w + lo - pad_left)
        for t in range(np.uintp(hi - lo)):
            buf[dst + t] = flat_src[start + t]


@helper
def pad_into(plane, buf, rows, cols, row0, col0, pad_mode, fill):
    """``buf[i * cols + j] = padded(plane)[row0 + i, col0 + j]`` for ``rows x cols`` samples at
    virtual (padded) coordinates, through the boundary rule (``fill`` for zeros)."""
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


@functools.lru_cache(maxsize=256)
def axis_map(count, start, n, pad_mode):
    """How kernels read ``count`` samples of an axis of ``n`` from virtual index ``start``
    on: ``(index, lo, hi)``, the real index of each (-1 for the fill, by the shared boundary
    rule :func:`fastcorr._boundary.source_index`) and the span ``lo <= k < hi`` that reads
    ``start + k`` directly. Remembered per extent (the arrays are shared by every caller and
    never written)."""
    index = np.array([_boundary.source_index(start + k, n, pad_mode) for k in range(count)],
                     dtype=np.int64)
    lo = min(count, max(0, -start))
    return index, lo, max(lo, min(count, n - start))


def plane_maps(rows, cols, row0, col0, h, w, pad_mode):
    """``(row_map, col_map, lo, hi)`` of a ``rows x cols`` rectangle of an ``h x w`` plane
    padded by ``pad_mode``, from virtual ``(row0, col0)``: :func:`axis_map` of each axis (the
    row map's span is not needed: rows are looked up one by one)."""
    row_map = axis_map(rows, row0, h, pad_mode)[0]
    col_map, lo, hi = axis_map(cols, col0, w, pad_mode)
    return row_map, col_map, lo, hi


@functools.lru_cache(maxsize=256)
def boundary_maps(plan, rows, cols):
    """``(row_map, col_map, lo, hi)`` of a padded ``rows x cols`` input extent starting at
    ``(-pad_top, -pad_left)`` (:func:`plane_maps`): the input row and column each
    padded one reads (-1: the fill), and the span of columns ``lo <= j < hi`` that read ``j -
    pad_left`` directly.

    Remembered per plan and extent (a layer is called again and again; the maps of a 56x56
    plane took 20 us, of a 112x112 one 33 us, every call): the arrays are shared by every
    caller and never written."""
    return plane_maps(rows, cols, -plan.pad_top, -plan.pad_left, *plan.input_shape[2:],
                      plan.pad_mode)


def phase_extent(plan):
    """``(rows, cols, phase_rows, phase_cols)``: the padded input extent the outputs of
    ``plan`` read, and that of each of its ``sh * sw`` stride phases."""
    kh, kw = plan.weight_shape[2:]
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    out_h, out_w = plan.out_shape[2:]
    rows = (out_h - 1) * sh + (kh - 1) * dh + 1
    cols = (out_w - 1) * sw + (kw - 1) * dw + 1
    return rows, cols, -(-rows // sh), -(-cols // sw)


def shared_frame(plan):
    """``(rows, cols)`` of a plane's block when neighbours share their fill (unit strides,
    a constant fill): the plane at ``(pad_top, pad_left)`` of a ``rows x cols`` block, with
    ``cols - W`` fill columns that are both a row's right padding and the next row's left
    padding, and ``rows - H`` fill rows that are both an image's bottom padding and the next
    image's top. A 7x7 plane with a 3x3 kernel takes an 8x8 block instead of 9x9, a 14x14
    plane with a 7x7 kernel 17x17 instead of 20x20: the taps' loops run over that many
    fewer dropped samples. A block still holds its outputs (``rows >= H_out``, ``cols >=
    W_out``: padding wider than the kernel reaches makes it larger), so the sums of a stack
    fit its blocks."""
    h, w = plan.input_shape[2:]
    out_h, out_w = plan.out_shape[2:]
    return (h + max(plan.pad_top, plan.pad_bottom, out_h - h),
            w + max(plan.pad_left, plan.pad_right, out_w - w))


@helper
def column_phases(j_lo, j_hi, offset, stride_w, phase_pitch):
    """How :func:`phase_row` splits padded columns ``j_lo <= j < j_hi`` (``row[j + offset]``)
    into the column phases: for each phase ``psi``, where its samples go (from the row's
    place in phase 0; phases ``phase_pitch`` apart), where they start in ``row``, and how many
    there are. Computed once a call: integer divisions by a stride cost a 14x14 plane more
    than its copy."""
    dst = np.empty(stride_w, dtype=np.intp)
    src = np.empty(stride_w, dtype=np.intp)
    count = np.empty(stride_w, dtype=np.intp)
    for psi in range(stride_w):  # padded columns psi, psi + sw, ...
        jj_lo = max(0, (j_lo - psi + stride_w - 1) // stride_w)
        jj_hi = max(jj_lo, (j_hi - psi + stride_w - 1) // stride_w)
        dst[psi] = psi * phase_pitch + jj_lo
        src[psi] = psi + stride_w * jj_lo + offset
        count[psi] = jj_hi - jj_lo
    return dst, src, count


@helper
def phase_row(row, offset, buf, base, phases, stride_w):
    """A padded row into its column phases, as :func:`column_phases` planned (``phases``),
    from ``buf[base]``: sample ``j`` to phase ``j % sw`` at column ``j // sw``."""
    dst, src, count = phases
    step = np.uintp(stride_w)
    for psi in range(stride_w):
        at = np.uintp(base + dst[psi])
        start = np.uintp(src[psi] + offset)
        for t in range(np.uintp(count[psi])):
            buf[at + t] = row[start + t * step]


@helper
def phase_row_starts(rows, stride_h, stride_w, phase_cols, phase_pitch):
    """Where each of ``rows`` padded rows starts in its row phase, from the plane's place in
    phase ``(0, 0)``: row ``i`` in phase ``(i % sh, 0)``, at row ``i // sh`` (phases
    ``phase_pitch`` apart, ``sw`` column phases a row phase)."""
    starts = np.empty(rows, dtype=np.intp)
    for i in range(rows):
        starts[i] = (i % stride_h) * stride_w * phase_pitch + (i // stride_h) * phase_cols
    return starts


def tap_shifts(plan, phase_rows, phase_cols, channel_pitch, phase_pitch=None):
    """Where each tap's samples start in a task's buffer, in the order of the weights'
    ``(C_in/g, kH, kW)`` taps: the input channel's planes (``channel_pitch`` apart), the stride
    phase of ``(p * dh, q * dw)`` (``phase_pitch`` apart, by default a block of
    ``phase_rows x phase_cols``), then its row and column in the phase."""
    c_in_g, kh, kw = plan.weight_shape[1:]
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    r = np.arange(kh)[:, None] * dh
    c = np.arange(kw)[None, :] * dw
    phase = (r % sh) * sw + c % sw
    if phase_pitch is None:
        phase_pitch = phase_rows * phase_cols
    within = (phase * phase_pitch + (r // sh) * phase_cols + c // sw).ravel()
    channels = np.arange(c_in_g)[:, None] * channel_pitch
    return (channels + within[None, :]).ravel().astype(np.uintp)


def phase_taps(phase, kernel, pad, stride, size):
    """One stride phase of the input along one axis, for the input gradients at strides
    (:func:`fastcorr.cpu.flat.grad_input`, :mod:`fastcorr.cpu.phases`): the taps ``p`` that
    reach input index ``phase + stride * u`` (from output ``u + e``, ``e = (phase + pad - p)
    // stride``), in the order of ``e`` (``p`` decreasing: the kernel rotated), the first
    ``e``, and how many indices the phase has."""
    reach = [p for p in range(kernel - 1, -1, -1) if (phase + pad - p) % stride == 0]
    first = (phase + pad - reach[0]) // stride if reach else 0
    return reach, first, len(range(phase, size, stride))
