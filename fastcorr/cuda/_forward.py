"""GPU forward kernels: a shared-memory tiled kernel and a direct fallback.

The tiled kernel gives each block a tile of outputs (``by * ry`` rows, ``bx * rx`` columns)
of ``rc`` output channels of one image. For each input channel of the group it stages the
input tile with its halo and the ``rc * kH * kW`` weights in shared memory, then every thread
accumulates its ``rc * ry * rx`` outputs in registers. Loads are coalesced: consecutive
threads read consecutive columns. Dense and grouped layers use ``rc > 1`` (each staged input
value serves several output channels); depthwise layers and single-channel images
(``C_in / groups == 1``) use ``rc = 1`` and a larger spatial tile per thread (see
``config.CUDA_*_OUTPUTS``). The boundary rule is applied once per block: the source row of
every tile row and the source column of every tile column are tabulated in shared memory
(padding is virtual), so staging a channel only looks them up.

Register use sets the kernels' occupancy (``tests/cuda/ptx_check.py`` holds them to a budget),
hence three habits in the tiled kernels here and in :mod:`fastcorr.cuda._backward`:

- offsets inside a tile are 32-bit (Numba's integers are 64-bit: two registers each, and a
  64-bit division is a call whose results stay in ordinary registers); a tile is bounded by
  shared memory, far below ``2**31``, and so are the block indices and their divisors.
  Positions in the arrays stay 64-bit;
- no division inside the channel loop: a thread walks its staged elements by adding a
  precomputed step in (row, column) form (:func:`advance`);
- the staging loops are ``while`` loops on that row, not ``range`` loops: the compiler
  unrolls a counted loop and keeps every unrolled copy's start and trip count in registers
  across the channel loop (95-126 registers in the forward kernel, 136-156 in the
  input-gradient kernel, with 64-bit offsets and counted loops).

Kernels are built per (dtype, block shape, outputs per thread) and compiled on first launch.
"""

import functools

import numba
import numpy as np
from numba import cuda

from ._device import source_index

uintp = numba.uintp
i64 = numba.int64
i32 = numba.int32
u32 = numba.uint32

#: Bytes of one entry of the tiled forward kernel's source-index tables (int64).
INDEX_BYTES = 8


@cuda.jit(device=True, cache=True)
def advance(major, minor, step_major, step_minor, radix):
    """``(major, minor)`` plus ``(step_major, step_minor)`` in a mixed radix (both minor
    parts from 0 to ``radix - 1``), carried: one step of a walk without a division. The
    minor part is compared with ``radix - step_minor`` rather than added first, so that no
    sum exceeds ``radix`` in 32 bits (a radix may be a stride close to ``2**31``)."""
    room = i32(radix - step_minor)
    if minor >= room:
        return i32(major + step_major + 1), i32(minor - room)
    return i32(major + step_major), i32(minor + step_minor)


@cuda.jit(device=True, cache=True)
def retreat(major, minor, step_major, step_minor, radix):
    """``(major, minor)`` minus ``(step_major, step_minor)``, borrowed likewise."""
    minor = i32(minor - step_minor)
    if minor < 0:
        return i32(major - step_major - 1), i32(minor + radix)
    return i32(major - step_major), minor


def forward_shared_bytes(dtype, tile_in_h, tile_in_w, rc, kh, kw):
    """The dynamic shared memory of :func:`tiled_kernel` in bytes: the input tile and the
    weights (items), then the source-row and source-column tables (int64, 8-byte aligned)."""
    items = tile_in_h * tile_in_w + rc * kh * kw
    tables = (tile_in_h + tile_in_w) * INDEX_BYTES
    return -(-items * np.dtype(dtype).itemsize // INDEX_BYTES) * INDEX_BYTES + tables


@functools.lru_cache(maxsize=None)
def tiled_kernel(dtype, bx, by, rc, ry, rx):
    """The tiled forward kernel for ``dtype`` ('float32' or 'float64') and a tile shape.

    Launch with grid ``(tiles_h * tiles_w, groups * ceil(C_out_g / rc), N)``, block
    ``(bx, by)`` and dynamic shared memory ``forward_shared_bytes(dtype, tile_in_h,
    tile_in_w, rc, kH, kW)`` bytes, where ``tile_in_h = (by * ry - 1) * sh + (kH - 1) * dh
    + 1`` (likewise the width).

    Kernel arguments: ``x (N, C_in, H, W)``, ``weight (C_out, C_in/g, kH, kW)``,
    ``bias (C_out,)`` (ignored unless ``has_bias``), ``out (N, C_out, H_out, W_out)``, then
    the geometry.
    """
    item = numba.from_dtype(np.dtype(dtype))
    items_per_index = INDEX_BYTES // np.dtype(dtype).itemsize
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
        n_threads = i32(threads)
        tx = i32(cuda.threadIdx.x)
        ty = i32(cuda.threadIdx.y)
        tid = i32(ty * bx + tx)
        tile_row = i64(u32(cuda.blockIdx.x) // u32(tiles_w))
        i0 = tile_row * tile_h
        j0 = (cuda.blockIdx.x - tile_row * tiles_w) * tile_w
        g = i64(u32(cuda.blockIdx.y) // u32(co_blocks))
        co0 = g * c_out_g + (cuda.blockIdx.y - g * co_blocks) * rc
        co_end = (g + 1) * c_out_g
        n = cuda.blockIdx.z
        # the tile's extent and offsets, in 32 bits
        in_rows = i32(tile_in_h)
        in_cols = i32(tile_in_w)
        n_in = i32(in_rows * in_cols)
        kh32, kw32 = i32(kh), i32(kw)
        n_taps = i32(kh * kw)
        # Shared memory: the input tile (n_in items), the weights (rc * n_taps items), then the
        # tables (int64, through a second view: dynamic shared arrays all alias): the source
        # row of each tile row, then the source column of each tile column (-1: the fill).
        smem = cuda.shared.array(0, item)
        source = cuda.shared.array(0, numba.int64)
        rows_at = i32((n_in + rc * n_taps + items_per_index - 1) // items_per_index)
        row0 = i0 * sh - pad_top
        col0 = j0 * sw - pad_left
        for k in range(tid, in_rows + in_cols, n_threads):
            if k < in_rows:
                source[u32(rows_at + k)] = source_index(row0 + k, h, pad_mode)
            else:
                source[u32(rows_at + k)] = source_index(col0 + (k - in_rows), w, pad_mode)
        acc = cuda.local.array((rc, ry, rx), item)
        xv = cuda.local.array((ry, rx), item)
        for a in range(rc):
            b = item(0)
            if has_bias and co0 + a < co_end:
                b = bias[co0 + a]
            for r in range(ry):
                for s in range(rx):
                    acc[a, r, s] = b
        # Each thread stages the tile's elements tid, tid + threads, ...: the first as
        # (row, column) and the step between them likewise; the weights' as (channel, tap
        # row, tap column).
        first_row = i32(u32(tid) // u32(in_cols))
        first_col = i32(tid - first_row * in_cols)
        step_rows = i32(u32(n_threads) // u32(in_cols))
        step_cols = i32(n_threads - step_rows * in_cols)
        first_a = i32(u32(tid) // u32(n_taps))
        first_t = i32(tid - first_a * n_taps)
        first_p = i32(u32(first_t) // u32(kw32))
        first_q = i32(first_t - first_p * kw32)
        step_a = i32(u32(n_threads) // u32(n_taps))
        step_t = i32(n_threads - step_a * n_taps)
        step_p = i32(u32(step_t) // u32(kw32))
        step_q = i32(step_t - step_p * kw32)
        # the thread's first input of tap (0, 0), and the steps between its inputs and taps
        thread_off = i32(ty * i32(sh) * in_cols + tx * i32(sw))
        r_step = i32(by * i32(sh) * in_cols)
        c_step = i32(bx * i32(sw))
        p_step = i32(i32(dh) * in_cols)
        q_step = i32(dw)
        for ci in range(c_in_g):
            c = g * c_in_g + ci
            cuda.syncthreads()  # the previous channel's tiles are no longer read
            idx = tid
            row = first_row
            col = first_col
            while row < in_rows:
                sr = source[u32(rows_at + row)]
                sc = source[u32(rows_at + in_rows + col)]
                if sr >= 0 and sc >= 0:
                    smem[u32(idx)] = x[n, c, uintp(sr), uintp(sc)]
                else:
                    smem[u32(idx)] = fill
                idx = i32(idx + n_threads)
                row, col = advance(row, col, step_rows, step_cols, in_cols)
            idx = i32(n_in + tid)
            a = first_a
            p = first_p
            q = first_q
            while a < rc:
                if co0 + a < co_end:
                    smem[u32(idx)] = weight[uintp(co0 + a), uintp(ci), uintp(p), uintp(q)]
                else:
                    smem[u32(idx)] = 0
                idx = i32(idx + n_threads)
                p, q = advance(p, q, step_p, step_q, kw32)
                a, p = advance(a, p, step_a, 0, kh32)
            cuda.syncthreads()
            row_off = thread_off
            tap = n_in  # where the weights of tap (p, q) of the first channel lie
            for p in range(kh32):
                off = row_off
                for q in range(kw32):
                    for r in range(ry):
                        for s in range(rx):
                            xv[r, s] = smem[u32(off + r * r_step + s * c_step)]
                    for a in range(rc):
                        wv = smem[u32(tap + a * n_taps)]
                        for r in range(ry):
                            for s in range(rx):
                                acc[a, r, s] += wv * xv[r, s]
                    off = i32(off + q_step)
                    tap = i32(tap + 1)
                row_off = i32(row_off + p_step)
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
