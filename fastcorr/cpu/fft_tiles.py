"""Kernels of the "fft" implementation: real 2-D transforms by DUCC0 (the C++ library behind
``scipy.fft``) called from Numba through rocket-fft's low-level interface.

Every transform here is single-threaded and runs inside a fastcorr kernel that releases the
GIL; the pool (:mod:`fastcorr.cpu._pool`) spreads tiles or planes over threads. A 2-D
transform of a 512^2 float32 tile took 1.1 ms here against 6.2 ms for NumPy's float64
``rfft2`` (NumPy's float32 transforms are no faster than its float64 ones), and the
transforms run in the plan's precision (complex64 for float32 plans).

The kernels read their planes through the boundary rule themselves, from maps the host
computes once (:func:`fastcorr.cpu._indexing.axis_map`): there is no padded copy of the input, and
no kernel compiles the rule's branches (a padding kernel took 2 s of a cold first call).
Correlation with a kernel is computed as convolution with the rotated kernel, whose
transform needs no conjugation.
"""

import numpy as np
from rocket_fft import c2c, c2r, r2c

from ._jit import helper, kernel

#: the axes of a stack of planes (P, rows, cols) that the 2-D transforms run over
_AXES_2D = (1, 2)
#: reals (interleaved real and imaginary parts) of the frequency products' chunks: 2 KiB
#: of float32 sums, which stay in L1 while every input channel is added in
PRODUCT_CHUNK = 512


@helper
def _frame(plane, block, row_map, col_map, lo, hi, a, b, rows, cols, fill):
    """Frame a tile: ``block[i, j] = padded[a + i, b + j]`` for ``i < rows`` and ``j < cols``,
    zeros elsewhere, where ``padded[r, c]`` is ``plane[row_map[r], col_map[c]]``, or ``fill``
    where either map holds -1; columns ``lo <= c < hi`` read ``plane[.., c + col_map[lo] -
    lo]`` (a plain copy). Explicit loops: Numba compiles slice assignments many times
    slower."""
    shift = col_map[lo] - lo if lo < hi else 0
    j_lo = min(max(lo - b, 0), cols)
    inner = max(0, min(hi - b, cols) - j_lo)
    for i in range(block.shape[0]):
        dst = block[i]
        width = cols if i < rows else 0
        r = row_map[a + i] if i < rows else -1
        if r >= 0:
            src = plane[r]
            start = np.uintp(b + j_lo + shift)
            for t in range(np.uintp(inner)):
                dst[np.uintp(j_lo) + t] = src[start + t]
            for t in range(cols - inner):  # the columns through the rule
                j = t if t < j_lo else t + inner
                c = col_map[b + j]
                dst[j] = src[c] if c >= 0 else fill
        else:
            for j in range(width):
                dst[j] = fill
        for j in range(width, block.shape[1]):
            dst[j] = 0


@kernel
def inverse_planes(spectrum, planes, task_lo, task_hi):
    """``planes[p] = irfft2(spectrum[p], s=planes.shape[1:])`` for ``p`` in the task range.

    spectrum (P, rows, cols // 2 + 1) complex; planes (P, rows, cols) real.
    """
    axes = np.array(_AXES_2D)
    scale = 1.0 / (planes.shape[1] * planes.shape[2])
    for p in range(task_lo, task_hi):
        c2r(spectrum[p:p + 1], planes[p:p + 1], axes, False, scale, 1)


@kernel(noalias=False)
def overlap_save(x, row_map, col_map, lo, hi, fill, k_flat, groups, bias, out, step_h, step_w,
                 tiles_w, tiles_per_image, spectra, block, x_f, x_flat, y_f, y_flat, y,
                 task_lo, task_hi):
    """Overlap-save correlation, one tile per task: for tile ``t`` of image ``n``,
    ``out[n, co, tile] = bias[co] + valid part of irfft2(sum_ci k_f[co, ci] * rfft2(x tile))``
    over the input channels ``g * C_in_g + ci`` of ``co``'s group ``g``.

    Or, where ``spectra`` (P, th, tw // 2 + 1) is not empty, the transforms of whole planes
    only (:func:`fastcorr.cpu.fft._spectra`): ``spectra[n] = rfft2(x[n, 0] framed at the
    origin)``, one plane a task (x (P, 1, h, w), one tile an image). One kernel for both jobs
    compiles once: a kernel of its own for the planes' transforms took 0.8-1.2 s of a cold
    first call, most of it compiling the framing again.

    x (N, C_in, H, W), seen padded through the maps (``len(row_map) x len(col_map)``, see
    :func:`_frame`); k_f (C_out, C_in_g, th, tw // 2 + 1) the spectra of the rotated kernels,
    passed as ``k_flat``, their flat (real, imaginary) pairs; bias (C_out,); out (N, C_out,
    out_h, out_w). A tile covers ``th x tw`` padded inputs (zeros past their end) and yields
    ``step_h x step_w`` outputs (``th - kHe + 1`` by ``tw - kWe + 1``): its circular
    convolution from ``(kHe - 1, kWe - 1)`` on. Scratch: block (C_in, th, tw), x_f (C_in, th,
    tw // 2 + 1), y_f (C_out, th, tw // 2 + 1), y (C_out, th, tw); ``x_flat`` and ``y_flat``
    are x_f and y_f seen as flat real arrays (pairs), made by the host: Numba's complex-to-real
    ``view`` took 0.8 s of this kernel's compilation. Two views of one buffer: compiled
    without the non-aliasing flag (its loops read and write two or three arrays, which LLVM
    vectorises with run-time overlap checks).
    """
    hp, wp = row_map.size, col_map.size
    out_h, out_w = out.shape[2], out.shape[3]
    c_out, th, tw = y.shape[0], block.shape[1], block.shape[2]
    c_out_g = c_out // groups
    size = 2 * th * x_f.shape[2]  # reals a plane of a spectrum
    c_in_g = k_flat.size // (c_out * size)
    one, two = np.uintp(1), np.uintp(2)
    axes = np.array(_AXES_2D)
    scale = 1.0 / (th * tw)
    for task in range(task_lo, task_hi):
        n = task // tiles_per_image
        tile = task % tiles_per_image
        a = (tile // tiles_w) * step_h
        b = (tile % tiles_w) * step_w
        rows_in, cols_in = min(th, hp - a), min(tw, wp - b)
        for c in range(block.shape[0]):
            _frame(x[n, c], block[c], row_map, col_map, lo, hi, a, b, rows_in, cols_in, fill)
        if spectra.shape[0] > 0:  # a plane's transform only
            r2c(block, spectra[n:n + 1], axes, True, 1.0, 1)
            continue
        r2c(block, x_f, axes, True, 1.0, 1)
        # y[co] = sum_ci k[co, ci] * x[g * C_in_g + ci], channel by channel over chunks of
        # frequencies: the innermost loop runs over frequencies and vectorises (over channels
        # it ran once per frequency at C_in_g = 1, 5x slower), the chunk of y stays in L1;
        # flat indices: fewer statements for Numba to type and lower than 3-D ones
        for co in range(c_out):
            first = (co // c_out_g) * c_in_g  # the group's first input channel
            for start in range(0, size, PRODUCT_CHUNK):
                count = np.uintp(min(PRODUCT_CHUNK, size - start) // 2)
                y_at = y_flat[np.uintp(co * size + start):]
                for ci in range(c_in_g):
                    k_at = k_flat[np.uintp((co * c_in_g + ci) * size + start):]
                    x_at = x_flat[np.uintp((first + ci) * size + start):]
                    if ci == 0:
                        for f in range(count):
                            kr, ki = k_at[two * f], k_at[two * f + one]
                            xr, xi = x_at[two * f], x_at[two * f + one]
                            y_at[two * f] = kr * xr - ki * xi
                            y_at[two * f + one] = kr * xi + ki * xr
                    else:
                        for f in range(count):
                            kr, ki = k_at[two * f], k_at[two * f + one]
                            xr, xi = x_at[two * f], x_at[two * f + one]
                            y_at[two * f] += kr * xr - ki * xi
                            y_at[two * f + one] += kr * xi + ki * xr
        # the inverse by columns (in place), then by rows for the rows kept only: a 2-D
        # inverse transformed all th rows (1.07-1.16x slower overall, 15x15 to 63x63 kernels)
        rows, cols = min(step_h, out_h - a), min(step_w, out_w - b)
        top, left = th - step_h, tw - step_w
        c2c(y_f, y_f, axes[:1], False, 1.0, 1)
        c2r(y_f[:, top:top + rows], y[:, top:top + rows], axes[1:], False, scale, 1)
        for co in range(c_out):
            for i in range(rows):
                dst, src, shift = out[n, co, a + i], y[co, top + i], bias[co]
                for j in range(np.uintp(cols)):
                    dst[np.uintp(b) + j] = src[np.uintp(left) + j] + shift
