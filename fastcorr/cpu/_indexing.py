"""Helpers shared by the compiled CPU kernels: boundary rules, in-range spans, row updates."""

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


@njit(cache=True, inline="always")
def sample(row, k, n, pad_mode, fill):
    """``row`` (of length ``n``) at virtual index ``k`` under the boundary rule."""
    c = source_index(k, n, pad_mode)
    return row[c] if c >= 0 else fill


@njit(cache=True)
def edge_columns(plane, taps, bias, out_row, first, stop, top, dil_h, dil_w, pad_left, pad_mode,
                 fill):
    """``out_row[first:stop]`` of a one-channel correlation at unit column stride, each column
    summed tap by tap through the boundary rule, in the taps' row-major order.

    For the few columns next to the edges whose taps reach past the input; ``plane`` is the
    input (H, W), ``taps`` the kernel (kH, kW), ``top`` the virtual input row of tap row 0.
    """
    h, w = plane.shape
    kh, kw = taps.shape
    for j in range(first, stop):
        total = bias
        for p in range(kh):
            r = source_index(top + p * dil_h, h, pad_mode)
            for q in range(kw):
                value = sample(plane[r], j - pad_left + q * dil_w, w, pad_mode, fill) if r >= 0 else fill
                total += taps[p, q] * value
        out_row[j] = total


@njit(cache=True)
def gather_row(src, dst, step, offset, pad_mode, fill):
    """``dst[j] = src[j * step + offset]`` for every ``j``, through the boundary rule."""
    count, n = dst.shape[0], src.shape[0]
    lo, hi = in_range_span(count, step, offset, n)
    if step == 1:
        dst[lo:hi] = src[lo + offset:hi + offset]
    else:
        for j in range(lo, hi):
            dst[j] = src[j * step + offset]
    for j in range(lo):
        dst[j] = sample(src, j * step + offset, n, pad_mode, fill)
    for j in range(hi, count):
        dst[j] = sample(src, j * step + offset, n, pad_mode, fill)


@njit(cache=True)
def axpy(a, x, y):
    """``y += a * x`` on 1-D arrays of equal length.

    A function of its own so that LLVM vectorises it alone; the same loop written inline in a
    large parallel kernel was left scalar.
    """
    for j in range(y.shape[0]):
        y[j] += a * x[j]


@njit(cache=True)
def accumulate(x, y):
    """``y += x`` on 1-D arrays of equal length (vectorised, like :func:`axpy`)."""
    for j in range(y.shape[0]):
        y[j] += x[j]


@njit(cache=True)
def multiply_accumulate(a, b, y):
    """``y += a * b`` elementwise on 1-D arrays of equal length (vectorised, like :func:`axpy`)."""
    for j in range(y.shape[0]):
        y[j] += a[j] * b[j]


@njit(cache=True)
def scatter_row(src, dst, step, offset, pad_mode):
    """The adjoint of :func:`gather_row`: ``dst[j * step + offset] += src[j]`` for every ``j``,
    with out-of-range targets folded back through the boundary rule (dropped for the fill)."""
    count, n = src.shape[0], dst.shape[0]
    lo, hi = in_range_span(count, step, offset, n)
    if step == 1:
        accumulate(src[lo:hi], dst[lo + offset:hi + offset])
    else:
        for j in range(lo, hi):
            dst[j * step + offset] += src[j]
    for j in range(lo):
        c = source_index(j * step + offset, n, pad_mode)
        if c >= 0:
            dst[c] += src[j]
    for j in range(hi, count):
        c = source_index(j * step + offset, n, pad_mode)
        if c >= 0:
            dst[c] += src[j]
