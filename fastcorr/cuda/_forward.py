"""GPU forward kernels: a shared-memory tiled kernel and a direct fallback.

The tiled kernel gives each block a tile of outputs (``by * ry`` rows, ``bx * rx`` columns)
of ``rc`` output channels of one image. For each input channel of the group it stages the
input tile with its halo (through the boundary rule, so padding is virtual) and the
``rc * kH * kW`` weights in shared memory, then every thread accumulates its
``rc * ry * rx`` outputs in registers. Loads are coalesced: consecutive threads read
consecutive columns. Dense and grouped layers use ``rc > 1`` (each staged input value serves
several output channels); depthwise layers and single-channel images (``C_in / groups == 1``)
use ``rc = 1`` and a larger spatial tile per thread (see ``config.CUDA_*_OUTPUTS``).

Kernels are built per (dtype, block shape, outputs per thread) and compiled on first launch.
"""

import functools

import numba
import numpy as np
from numba import cuda

from ._device import source_index

uintp = numba.uintp


@functools.lru_cache(maxsize=None)
def tiled_kernel(dtype, bx, by, rc, ry, rx):
    """The tiled forward kernel for ``dtype`` ('float32' or 'float64') and a tile shape.

    Launch with grid ``(tiles_h * tiles_w, groups * ceil(C_out_g / rc), N)``, block
    ``(bx, by)`` and dynamic shared memory ``(tile_in_h * tile_in_w + rc * kH * kW)`` items,
    where ``tile_in_h = (by * ry - 1) * sh + (kH - 1) * dh + 1`` (likewise the width).

    Kernel arguments: ``x (N, C_in, H, W)``, ``weight (C_out, C_in/g, kH, kW)``,
    ``bias (C_out,)`` (ignored unless ``has_bias``), ``out (N, C_out, H_out, W_out)``, then
    the geometry.
    """
    item = numba.from_dtype(np.dtype(dtype))
    tile_h, tile_w = by * ry, bx * rx
    threads = bx * by

    @cuda.jit(cache=True)
    def kernel(x, weight, bias, has_bias, out, sh, sw, dh, dw, pad_top, pad_left, pad_mode,
               fill, groups, tiles_w, tile_in_h, tile_in_w):
        h, w = x.shape[2], x.shape[3]
        c_out, c_in_g, kh, kw = weight.shape
        out_h, out_w = out.shape[2], out.shape[3]
        c_out_g = c_out // groups
        co_blocks = (c_out_g + rc - 1) // rc
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * bx + tx
        i0 = (cuda.blockIdx.x // tiles_w) * tile_h
        j0 = (cuda.blockIdx.x % tiles_w) * tile_w
        g = cuda.blockIdx.y // co_blocks
        co0 = g * c_out_g + (cuda.blockIdx.y % co_blocks) * rc
        co_end = (g + 1) * c_out_g
        n = cuda.blockIdx.z
        n_in = tile_in_h * tile_in_w
        n_taps = kh * kw
        smem = cuda.shared.array(0, item)
        xs = smem[:n_in]
        ws = smem[n_in:n_in + rc * n_taps]
        acc = cuda.local.array((rc, ry, rx), item)
        xv = cuda.local.array((ry, rx), item)
        for a in range(rc):
            b = item(0)
            if has_bias and co0 + a < co_end:
                b = bias[co0 + a]
            for r in range(ry):
                for s in range(rx):
                    acc[a, r, s] = b
        row0 = i0 * sh - pad_top
        col0 = j0 * sw - pad_left
        # offsets into the staged tile, unsigned: no negative-index wraparound in the hot loop
        row_pitch = uintp(tile_in_w)
        thread_off = uintp(ty * sh) * row_pitch + uintp(tx * sw)
        r_step = uintp(by * sh) * row_pitch
        c_step = uintp(bx * sw)
        taps_u = uintp(n_taps)
        for ci in range(c_in_g):
            c = g * c_in_g + ci
            cuda.syncthreads()  # the previous channel's tiles are no longer read
            for idx in range(tid, n_in, threads):
                r = idx // tile_in_w
                sr = source_index(row0 + r, h, pad_mode)
                sc = source_index(col0 + idx - r * tile_in_w, w, pad_mode)
                if sr >= 0 and sc >= 0:
                    xs[idx] = x[n, c, sr, sc]
                else:
                    xs[idx] = fill
            for idx in range(tid, rc * n_taps, threads):
                a = idx // n_taps
                t = idx - a * n_taps
                if co0 + a < co_end:
                    ws[idx] = weight[co0 + a, ci, t // kw, t % kw]
                else:
                    ws[idx] = 0
            cuda.syncthreads()
            for p in range(kh):
                p_off = uintp(p * dh) * row_pitch
                for q in range(kw):
                    off = thread_off + p_off + uintp(q * dw)
                    tap = uintp(p * kw + q)
                    for r in range(ry):
                        for s in range(rx):
                            xv[r, s] = xs[off + uintp(r) * r_step + uintp(s) * c_step]
                    for a in range(rc):
                        wv = ws[uintp(a) * taps_u + tap]
                        for r in range(ry):
                            for s in range(rx):
                                acc[a, r, s] += wv * xv[r, s]
        for a in range(rc):
            co = co0 + a
            if co < co_end:
                for r in range(ry):
                    i = i0 + ty + r * by
                    if i < out_h:
                        for s in range(rx):
                            j = j0 + tx + s * bx
                            if j < out_w:
                                out[n, co, i, j] = acc[a, r, s]

    return kernel


@functools.lru_cache(maxsize=None)
def direct_kernel(dtype):
    """One thread per output element, reading global memory directly: the fallback for tiles
    that do not fit in shared memory (huge kernels or dilations). Launch over
    ``N * C_out * H_out * W_out`` threads (1-D)."""
    item = numba.from_dtype(np.dtype(dtype))

    @cuda.jit(cache=True)
    def kernel(x, weight, bias, has_bias, out, sh, sw, dh, dw, pad_top, pad_left, pad_mode,
               fill, groups):
        n_batch, c_out, out_h, out_w = out.shape
        h, w = x.shape[2], x.shape[3]
        c_in_g, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
        k = cuda.grid(1)
        if k >= n_batch * c_out * out_h * out_w:
            return
        j = k % out_w
        i = (k // out_w) % out_h
        co = (k // (out_w * out_h)) % c_out
        n = k // (out_w * out_h * c_out)
        first = (co // (c_out // groups)) * c_in_g
        total = item(0)
        if has_bias:
            total = bias[co]
        for ci in range(c_in_g):
            for p in range(kh):
                sr = source_index(i * sh + p * dh - pad_top, h, pad_mode)
                for q in range(kw):
                    sc = source_index(j * sw + q * dw - pad_left, w, pad_mode)
                    if sr >= 0 and sc >= 0:
                        total += weight[co, ci, p, q] * x[n, first + ci, sr, sc]
                    else:
                        total += weight[co, ci, p, q] * fill
        out[n, co, i, j] = total

    return kernel
