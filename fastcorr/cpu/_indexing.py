"""Index arithmetic shared by the compiled CPU kernels: boundary rules and in-range spans."""

from numba import njit

from .._validate import CIRCULAR, REFLECT, REPLICATE, SYMMETRIC


@njit(cache=True, inline="always")
def source_index(k, n, pad_mode):
    """Map a virtual index ``k`` of an axis of length ``n`` to a real one, or -1 for the fill.

    ``pad_mode`` is one of the boundary rules of :mod:`fastcorr._validate`; indices any distance
    outside the axis are mapped (periodic and mirrored rules repeat indefinitely, as NumPy's pad
    and SciPy's boundaries do).
    """
    if 0 <= k < n:
        return k
    if pad_mode == CIRCULAR:
        return k % n
    if pad_mode == REPLICATE:
        return 0 if k < 0 else n - 1
    if pad_mode == SYMMETRIC:
        m = k % (2 * n)
        return m if m < n else 2 * n - 1 - m
    if pad_mode == REFLECT:
        if n == 1:
            return 0
        m = k % (2 * n - 2)
        return m if m < n else 2 * n - 2 - m
    return -1  # ZEROS: the fill value


@njit(cache=True, inline="always")
def in_range_span(count, step, offset, n):
    """The span ``lo <= j < hi`` of ``j in range(count)`` with ``0 <= j * step + offset < n``."""
    lo = 0 if offset >= 0 else (step - 1 - offset) // step
    hi = (n - 1 - offset) // step + 1
    lo = min(lo, count)
    hi = max(lo, min(hi, count))
    return lo, hi
