"""Helpers shared by the compiled CPU kernels: boundary rules, in-range spans, row updates."""

import numpy as np
from numba import njit

from .. import _boundary


#: The boundary rule (:func:`fastcorr._boundary.source_index`), shared with the GPU kernels.
source_index = njit(cache=True, inline="always")(_boundary.source_index)


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
                column = j - pad_left + q * dil_w
                value = sample(plane[r], column, w, pad_mode, fill) if r >= 0 else fill
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
def pad_plane(plane, padded, padded_w, pad_top, pad_left, pad_mode, fill):
    """Copy ``plane`` (H, W) into the flat buffer ``padded`` of rows ``padded_w`` long, framed
    by ``pad_top`` rows and ``pad_left`` columns through the boundary rule."""
    h, w = plane.shape
    lo, hi = in_range_span(padded_w, 1, -pad_left, w)
    # unsigned indices and no row views: the copy is a plain vector loop (a row view and a
    # slice assignment per row cost more than copying a short row)
    first, inner = np.uintp(lo), np.uintp(hi - lo)
    start = np.uintp(lo - pad_left)
    for r in range(padded.shape[0] // padded_w):
        base = np.uintp(r * padded_w)
        src_r = source_index(r - pad_top, h, pad_mode)
        if src_r < 0:
            for k in range(np.uintp(padded_w)):
                padded[base + k] = fill
            continue
        for k in range(inner):
            padded[base + first + k] = plane[src_r, start + k]
        for k in range(lo):
            c = source_index(k - pad_left, w, pad_mode)
            padded[base + k] = plane[src_r, c] if c >= 0 else fill
        for k in range(hi, padded_w):
            c = source_index(k - pad_left, w, pad_mode)
            padded[base + k] = plane[src_r, c] if c >= 0 else fill


@njit(cache=True)
def fold_row(padded_row, row, pad_left, pad_mode):
    """Add a padded row back onto the real row it was copied from."""
    n = row.shape[0]
    lo, hi = in_range_span(padded_row.shape[0], 1, -pad_left, n)
    accumulate(padded_row[lo:hi], row[lo - pad_left:hi - pad_left])
    for k in range(lo):
        c = source_index(k - pad_left, n, pad_mode)
        if c >= 0:
            row[c] += padded_row[k]
    for k in range(hi, padded_row.shape[0]):
        c = source_index(k - pad_left, n, pad_mode)
        if c >= 0:
            row[c] += padded_row[k]


@njit(cache=True)
def fold_plane(acc, acc_w, padded_h, padded_w, plane, pad_top, pad_left, pad_mode):
    """Set ``plane`` (H, W) to the gradient of the padded plane held in the flat ``acc`` (rows
    ``acc_w`` long, the first ``padded_h`` x ``padded_w`` of them used) folded back through the
    boundary rule: row by row, the same additions in the same order as :func:`fold_row`."""
    h, w = plane.shape
    for r in range(h):
        for k in range(np.uintp(w)):
            plane[r, k] = 0
    lo, hi = in_range_span(padded_w, 1, -pad_left, w)
    first, inner = np.uintp(lo), np.uintp(hi - lo)
    start = np.uintp(lo - pad_left)
    for r in range(padded_h):
        src_r = source_index(r - pad_top, h, pad_mode)
        if src_r < 0:
            continue
        base = np.uintp(r * acc_w)
        for k in range(inner):
            plane[src_r, start + k] += acc[base + first + k]
        for k in range(lo):
            c = source_index(k - pad_left, w, pad_mode)
            if c >= 0:
                plane[src_r, c] += acc[base + k]
        for k in range(hi, padded_w):
            c = source_index(k - pad_left, w, pad_mode)
            if c >= 0:
                plane[src_r, c] += acc[base + k]


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
