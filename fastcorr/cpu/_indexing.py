"""Index helpers the CPU kernels share: the boundary rule and in-range spans (inlined)."""

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


def boundary_maps(plan, rows, cols):
    """``(row_map, col_map, lo, hi)`` of a padded ``rows x cols`` input extent starting at
    ``(-pad_top, -pad_left)``: the input row and column each padded one reads (-1: the fill),
    and the span of columns ``lo <= j < hi`` that read ``j - pad_left`` directly."""
    h, w = plan.input_shape[2:]
    rule = _boundary.source_index
    row_map = np.array([rule(i - plan.pad_top, h, plan.pad_mode) for i in range(rows)],
                       dtype=np.int64)
    col_map = np.array([rule(j - plan.pad_left, w, plan.pad_mode) for j in range(cols)],
                       dtype=np.int64)
    lo = min(cols, max(0, plan.pad_left))
    hi = max(lo, min(cols, plan.pad_left + w))
    return row_map, col_map, lo, hi
