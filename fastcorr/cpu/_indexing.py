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
