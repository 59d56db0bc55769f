"""GPU gradient kernels. All of them gather: every result element is written by one thread
(or one block's fixed-order reduction), no float atomics, so gradients are bitwise repeatable.

- grad input (:func:`grad_padded_kernel`): each thread gathers, for its padded positions
  ``(r, c)``, the products ``grad_out[n, co, i, j] * weight[co, ci, p, q]`` with
  ``i * sh + p * dh == r`` and ``j * sw + q * dw == c``: a transposed correlation, tiled like
  the forward kernel (a tile of the output gradient and ``rc * kH * kW`` weights in shared
  memory per output channel, ``rc * ry * rx`` sums per thread in registers). With zero padding
  it writes the input gradient directly; with the other rules it writes the gradient of the
  padded plane and :func:`fold_kernel` adds the padding back onto the samples it copies.
- grad weight (:func:`grad_weight_kernel`): split-K. The ``(image, row)`` pairs are cut into
  chunks fixed by the shape (``config.CUDA_GRAD_WEIGHT_CHUNK_ROWS`` rows, or by default
  enough rows for ``config.CUDA_GRAD_WEIGHT_POSITIONS`` positions per thread); one block per (chunk,
  output channel, input channel) sums its products per tap (in shared memory), reduces over its
  threads in a fixed tree, and writes one partial sum per tap; :func:`chunk_sum_kernel` adds
  the chunks in order.
- grad bias (:func:`bias_kernel`): split-K too (the same chunks of rows), one block per
  (chunk, output channel), a fixed tree, the chunks added in order.
"""

import functools

import numba
import numpy as np
from numba import cuda

from ._device import source_index
from ._forward import advance, i32, i64, retreat, u32

uintp = numba.uintp


@functools.lru_cache(maxsize=None)
def grad_padded_kernel(dtype, bx, by, rc, ry, rx):
    """The gather of the gradient with respect to the (padded) input.

    ``dest[n, c, y, x]`` receives the gradient at padded position ``(y + r_off, x + c_off)``.
    Launch with grid ``(tiles_h * tiles_w, groups * ceil(C_in_g / rc), N)``, block
    ``(bx, by)`` and dynamic shared memory ``g_h * g_w + rc * kH * kW`` items, where
    ``g_h = (by * ry - 1 + (kH - 1) * dh) // sh + 2`` (likewise ``g_w``).

    Its offsets in the tile are 32-bit and its loops division-free, as in the tiled forward
    kernel (see :mod:`fastcorr.cuda._forward`).
    """
    item = numba.from_dtype(np.dtype(dtype))
    tile_h, tile_w = by * ry, bx * rx
    threads = bx * by

    @cuda.jit(cache=True)
    def kernel(grad_out, weight, dest, sh, sw, dh, dw, r_off, c_off, groups, tiles_w, g_h, g_w):
        c_in, dest_h, dest_w = dest.shape[1], dest.shape[2], dest.shape[3]
        c_out, c_in_g, kh, kw = weight.shape
        out_h, out_w = grad_out.shape[2], grad_out.shape[3]
        c_out_g = c_out // groups
        ci_blocks = (c_in_g + rc - 1) // rc
        n_threads = i32(threads)
        tx = i32(cuda.threadIdx.x)
        ty = i32(cuda.threadIdx.y)
        tid = i32(ty * bx + tx)
        tile_row = i64(u32(cuda.blockIdx.x) // u32(tiles_w))
        y0 = tile_row * tile_h
        x0 = (cuda.blockIdx.x - tile_row * tiles_w) * tile_w
        g = i64(u32(cuda.blockIdx.y) // u32(ci_blocks))
        ci0 = (cuda.blockIdx.y - g * ci_blocks) * rc
        n = cuda.blockIdx.z
        kh32, kw32 = i32(kh), i32(kw)
        n_taps = i32(kh * kw)
        g_rows, g_cols = i32(g_h), i32(g_w)
        n_g = i32(g_rows * g_cols)
        # the output rows/columns that can reach this tile start here (floor division); the
        # tile's rows [row_lo, row_hi) and columns [col_lo, col_hi) lie inside grad_out
        ia = (y0 + r_off - (kh - 1) * dh) // sh
        ja = (x0 + c_off - (kw - 1) * dw) // sw
        row_lo, row_hi = i32(min(max(-ia, 0), g_h)), i32(min(max(out_h - ia, 0), g_h))
        col_lo, col_hi = i32(min(max(-ja, 0), g_w)), i32(min(max(out_w - ja, 0), g_w))
        # A padded position's distance from the first output row (column) that reaches the
        # tile (never negative: ``ia`` is its floor), as a quotient and a remainder by the
        # stride: the output row of tap p reaches it when the remainder of the distance less
        # p * dh is 0, and lies at row ``quotient`` of the staged tile. Quotient and remainder
        # fit in 32 bits (a tile's extent, a stride), though the distance need not. They are
        # divided once, for the thread's first row (column), then stepped: by (by_q, by_r)
        # to its next row, back by (dh_q, dh_r) to the next tap row (columns likewise).
        sh32, sw32 = i32(sh), i32(sw)
        dist = y0 + ty + r_off - ia * sh
        quotient = dist // sh
        first_uq, first_ur = i32(quotient), i32(dist - quotient * sh)
        dist = x0 + tx + c_off - ja * sw
        quotient = dist // sw
        first_vq, first_vr = i32(quotient), i32(dist - quotient * sw)
        dh_q = i32(u32(dh) // u32(sh))
        dh_r = i32(dh - dh_q * sh32)
        dw_q = i32(u32(dw) // u32(sw))
        dw_r = i32(dw - dw_q * sw32)
        by_q = i32(u32(by) // u32(sh))
        by_r = i32(by - by_q * sh32)
        bx_q = i32(u32(bx) // u32(sw))
        bx_r = i32(bx - bx_q * sw32)
        # each thread's first staged element and the step between them (see _forward)
        first_row = i32(u32(tid) // u32(g_cols))
        first_col = i32(tid - first_row * g_cols)
        step_rows = i32(u32(n_threads) // u32(g_cols))
        step_cols = i32(n_threads - step_rows * g_cols)
        first_a = i32(u32(tid) // u32(n_taps))
        first_t = i32(tid - first_a * n_taps)
        first_p = i32(u32(first_t) // u32(kw32))
        first_q = i32(first_t - first_p * kw32)
        step_a = i32(u32(n_threads) // u32(n_taps))
        step_t = i32(n_threads - step_a * n_taps)
        step_p = i32(u32(step_t) // u32(kw32))
        step_q = i32(step_t - step_p * kw32)
        smem = cuda.shared.array(0, item)
        acc = cuda.local.array((rc, ry, rx), item)
        for a in range(rc):
            for r in range(ry):
                for s in range(rx):
                    acc[a, r, s] = 0
        for co in range(g * c_out_g, (g + 1) * c_out_g):
            cuda.syncthreads()
            idx = tid
            row = first_row
            col = first_col
            while row < g_rows:
                if row_lo <= row < row_hi and col_lo <= col < col_hi:
                    smem[u32(idx)] = grad_out[n, co, uintp(ia + row), uintp(ja + col)]
                else:
                    smem[u32(idx)] = 0
                idx = i32(idx + n_threads)
                row, col = advance(row, col, step_rows, step_cols, g_cols)
            idx = i32(n_g + tid)
            a = first_a
            p = first_p
            q = first_q
            while a < rc:
                if ci0 + a < c_in_g:
                    smem[u32(idx)] = weight[uintp(co), uintp(ci0 + a), uintp(p), uintp(q)]
                else:
                    smem[u32(idx)] = 0
                idx = i32(idx + n_threads)
                p, q = advance(p, q, step_p, step_q, kw32)
                a, p = advance(a, p, step_a, 0, kh32)
            cuda.syncthreads()
            uq, ur = first_uq, first_ur
            tap = n_g  # where the weights of tap (p, q) of the first channel lie
            for p in range(kh32):
                vq, vr = first_vq, first_vr
                for q in range(kw32):
                    rq, rr = uq, ur
                    for r in range(ry):
                        if rr == 0:
                            g_row = i32(rq * g_cols)
                            sq, sr = vq, vr
                            for s in range(rx):
                                if sr == 0:
                                    gv = smem[u32(g_row + sq)]
                                    for a in range(rc):
                                        acc[a, r, s] += gv * smem[u32(tap + a * n_taps)]
                                if s + 1 < rx:
                                    sq, sr = advance(sq, sr, bx_q, bx_r, sw32)
                        if r + 1 < ry:
                            rq, rr = advance(rq, rr, by_q, by_r, sh32)
                    tap = i32(tap + 1)
                    vq, vr = retreat(vq, vr, dw_q, dw_r, sw32)
                uq, ur = retreat(uq, ur, dh_q, dh_r, sh32)
        for a in range(rc):
            ci = ci0 + a
            if ci < c_in_g:
                c = g * c_in_g + ci
                for r in range(ry):
                    y = y0 + ty + r * by
                    if y < dest_h:
                        for s in range(rx):
                            x = x0 + tx + s * bx
                            if x < dest_w:
                                dest[n, c, y, x] = acc[a, r, s]

    return kernel


@functools.lru_cache(maxsize=None)
def grad_padded_direct_kernel(dtype):
    """The same gather as :func:`grad_padded_kernel`, one thread per element of ``dest``,
    reading global memory: the fallback when the tiles do not fit in shared memory. Launch over
    ``dest.size`` threads (1-D)."""
    item = numba.from_dtype(np.dtype(dtype))

    @cuda.jit(cache=True)
    def kernel(grad_out, weight, dest, sh, sw, dh, dw, r_off, c_off, groups):
        n_batch, c_in, dest_h, dest_w = dest.shape
        c_out, c_in_g, kh, kw = weight.shape
        out_h, out_w = grad_out.shape[2], grad_out.shape[3]
        c_out_g = c_out // groups
        k = cuda.grid(1)
        if k >= n_batch * c_in * dest_h * dest_w:
            return
        x = k % dest_w
        y = (k // dest_w) % dest_h
        c = (k // (dest_w * dest_h)) % c_in
        n = k // (dest_w * dest_h * c_in)
        g = c // c_in_g
        ci = c % c_in_g
        total = item(0)
        for co in range(g * c_out_g, (g + 1) * c_out_g):
            for p in range(kh):
                ii = y + r_off - p * dh
                if ii % sh == 0 and 0 <= ii // sh < out_h:
                    for q in range(kw):
                        jj = x + c_off - q * dw
                        if jj % sw == 0 and 0 <= jj // sw < out_w:
                            total += grad_out[n, co, ii // sh, jj // sw] * weight[co, ci, p, q]
        dest[n, c, y, x] = total

    return kernel


@functools.lru_cache(maxsize=None)
def fold_kernel(dtype):
    """``grad_x[n, c, y, x] = sum of grad_padded[n, c, r, s]`` over the padded positions that
    the boundary rule copies from ``(y, x)``, in a fixed order. One thread per element of
    ``grad_x``; launch over ``grad_x.size`` threads (1-D)."""
    item = numba.from_dtype(np.dtype(dtype))

    @cuda.jit(cache=True)
    def kernel(padded, grad_x, pad_top, pad_left, pad_mode):
        n_batch, c_in, h, w = grad_x.shape
        hp, wp = padded.shape[2], padded.shape[3]
        k = cuda.grid(1)
        if k >= n_batch * c_in * h * w:
            return
        x = k % w
        y = (k // w) % h
        c = (k // (w * h)) % c_in
        n = k // (w * h * c_in)
        top = min(pad_top, hp)
        bottom = max(0, hp - pad_top - h)
        left = min(pad_left, wp)
        right = max(0, wp - pad_left - w)
        total = item(0)
        for kr in range(top + 1 + bottom):
            if kr < top:
                r = kr
            elif kr == top:
                r = y + pad_top
            else:
                r = pad_top + h + kr - top - 1
            if r < hp and source_index(r - pad_top, h, pad_mode) == y:
                for kc in range(left + 1 + right):
                    if kc < left:
                        s = kc
                    elif kc == left:
                        s = x + pad_left
                    else:
                        s = pad_left + w + kc - left - 1
                    if s < wp and source_index(s - pad_left, w, pad_mode) == x:
                        total += padded[n, c, r, s]
        grad_x[n, c, y, x] = total

    return kernel


@functools.lru_cache(maxsize=None)
def grad_weight_kernel(dtype, threads, taps):
    """Split-K partial sums of the weight gradient.

    ``partial[chunk, co, ci, p, q]`` sums ``grad_out[n, co, i, j] * xpad[n, c, i*sh + p*dh,
    j*sw + q*dw]`` over the output rows ``(n, i)`` of chunk ``chunk`` and all columns ``j``.
    Launch with grid ``(n_chunks, C_in_g, C_out)``, ``threads`` threads (a power of two) and
    dynamic shared memory ``taps * threads`` items. Each thread keeps ``taps`` sums in its
    column of that array; the block reduces them in a fixed tree.
    """
    item = numba.from_dtype(np.dtype(dtype))

    @cuda.jit(cache=True)
    def kernel(grad_out, x, partial, sh, sw, dh, dw, pad_top, pad_left, pad_mode, fill, groups,
               rows_per_chunk):
        n_batch, _, h, w = x.shape
        c_out, c_in_g, kh, kw = partial.shape[1], partial.shape[2], partial.shape[3], partial.shape[4]
        out_h, out_w = grad_out.shape[2], grad_out.shape[3]
        tid = cuda.threadIdx.x
        chunk = cuda.blockIdx.x
        ci = cuda.blockIdx.y
        co = cuda.blockIdx.z
        c = (co // (c_out // groups)) * c_in_g + ci
        row_lo = chunk * rows_per_chunk
        row_hi = min(n_batch * out_h, row_lo + rows_per_chunk)
        n_pos = (row_hi - row_lo) * out_w
        n_taps = kh * kw
        # Each thread's ``taps`` sums live in its own column of the reduction's shared array
        # (``red[t * threads + tid]``: consecutive threads, consecutive banks): a per-thread
        # array indexed in a loop the compiler does not unroll would go to local memory.
        red = cuda.shared.array(0, item)
        for t0 in range(0, n_taps, taps):
            for t in range(taps):
                red[t * threads + tid] = 0
            for pos in range(tid, n_pos, threads):
                row = row_lo + pos // out_w
                j = pos % out_w
                n = row // out_h
                i = row % out_h
                gv = grad_out[n, co, i, j]
                for t in range(taps):
                    if t0 + t < n_taps:
                        p = (t0 + t) // kw
                        q = (t0 + t) % kw
                        sr = source_index(i * sh + p * dh - pad_top, h, pad_mode)
                        sc = source_index(j * sw + q * dw - pad_left, w, pad_mode)
                        if sr >= 0 and sc >= 0:
                            red[t * threads + tid] += gv * x[n, c, sr, sc]
                        else:
                            red[t * threads + tid] += gv * fill
            cuda.syncthreads()
            half = threads // 2
            while half > 0:
                if tid < half:
                    for t in range(taps):
                        red[t * threads + tid] += red[t * threads + tid + half]
                cuda.syncthreads()
                half //= 2
            for t in range(tid, min(taps, n_taps - t0), threads):
                partial[chunk, co, ci, (t0 + t) // kw, (t0 + t) % kw] = red[t * threads]
            cuda.syncthreads()

    return kernel


@functools.lru_cache(maxsize=None)
def chunk_sum_kernel(dtype):
    """``total[e] = partial[0, e] + partial[1, e] + ...`` in order; one thread per element."""
    item = numba.from_dtype(np.dtype(dtype))

    @cuda.jit(cache=True)
    def kernel(partial, total):
        e = cuda.grid(1)
        if e >= total.shape[0]:
            return
        s = item(0)
        for k in range(partial.shape[0]):
            s += partial[k, e]
        total[e] = s

    return kernel


@functools.lru_cache(maxsize=None)
def bias_kernel(dtype, threads):
    """Split-K partial sums of the bias gradient: ``partial[chunk, co]`` sums
    ``grad_out[n, co, i, j]`` over the output rows ``(n, i)`` of chunk ``chunk``
    (``rows_per_chunk`` of them) and all columns, in a fixed tree. Launch with grid
    ``(n_chunks, C_out)``, ``threads`` threads (a power of two) and dynamic shared memory
    ``threads`` items; :func:`chunk_sum_kernel` adds the chunks in order (one block per
    channel would leave all but one multiprocessor idle for a single image)."""
    item = numba.from_dtype(np.dtype(dtype))

    @cuda.jit(cache=True)
    def kernel(grad_out, partial, rows_per_chunk):
        n_batch, _, out_h, out_w = grad_out.shape
        chunk = cuda.blockIdx.x
        co = cuda.blockIdx.y
        tid = cuda.threadIdx.x
        row_lo = chunk * rows_per_chunk
        row_hi = min(n_batch * out_h, row_lo + rows_per_chunk)
        red = cuda.shared.array(0, item)
        s = item(0)
        for pos in range(tid, (row_hi - row_lo) * out_w, threads):
            row = row_lo + pos // out_w
            s += grad_out[row // out_h, co, row % out_h, pos % out_w]
        red[tid] = s
        cuda.syncthreads()
        half = threads // 2
        while half > 0:
            if tid < half:
                red[tid] += red[tid + half]
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            partial[chunk, co] = red[0]

    return kernel
