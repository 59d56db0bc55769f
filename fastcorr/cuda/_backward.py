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

uintp = numba.uintp


@functools.lru_cache(maxsize=None)
def grad_padded_kernel(dtype, bx, by, rc, ry, rx):
    """The gather of the gradient with respect to the (padded) input.

    ``dest[n, c, y, x]`` receives the gradient at padded position ``(y + r_off, x + c_off)``.
    Launch with grid ``(tiles_h * tiles_w, groups * ceil(C_in_g / rc), N)``, block
    ``(bx, by)`` and dynamic shared memory ``g_h * g_w + rc * kH * kW`` items, where
    ``g_h = (by * ry - 1 + (kH - 1) * dh) // sh + 2`` (likewise ``g_w``).
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
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * bx + tx
        y0 = (cuda.blockIdx.x // tiles_w) * tile_h
        x0 = (cuda.blockIdx.x % tiles_w) * tile_w
        g = cuda.blockIdx.y // ci_blocks
        ci0 = (cuda.blockIdx.y % ci_blocks) * rc
        n = cuda.blockIdx.z
        n_taps = kh * kw
        # the output rows/columns that can reach this tile start here (floor division)
        ia = (y0 + r_off - (kh - 1) * dh) // sh
        ja = (x0 + c_off - (kw - 1) * dw) // sw
        n_g = g_h * g_w
        # The padded position's distance from the first output row (column) that reaches the
        # tile, in units of rows: never negative (``ia`` is its floor), so the divisibility
        # tests and divisions below are unsigned (no floor-division sign fixups, no
        # negative-index wraparound).
        ui0 = uintp(y0 + ty + r_off - ia * sh)
        uj0 = uintp(x0 + tx + c_off - ja * sw)
        ush, usw, ug_w, taps_u = uintp(sh), uintp(sw), uintp(g_w), uintp(n_taps)
        smem = cuda.shared.array(0, item)
        gs = smem[:n_g]
        ws = smem[n_g:n_g + rc * n_taps]
        acc = cuda.local.array((rc, ry, rx), item)
        for a in range(rc):
            for r in range(ry):
                for s in range(rx):
                    acc[a, r, s] = 0
        for co in range(g * c_out_g, (g + 1) * c_out_g):
            cuda.syncthreads()
            for idx in range(tid, n_g, threads):
                r = idx // g_w
                i = ia + r
                j = ja + idx - r * g_w
                if 0 <= i < out_h and 0 <= j < out_w:
                    gs[idx] = grad_out[n, co, i, j]
                else:
                    gs[idx] = 0
            for idx in range(tid, rc * n_taps, threads):
                a = idx // n_taps
                t = idx - a * n_taps
                if ci0 + a < c_in_g:
                    ws[idx] = weight[co, ci0 + a, t // kw, t % kw]
                else:
                    ws[idx] = 0
            cuda.syncthreads()
            for p in range(kh):
                for q in range(kw):
                    tap = uintp(p * kw + q)
                    for r in range(ry):
                        ui = ui0 + uintp(r * by) - uintp(p * dh)
                        if ui % ush == 0:
                            gr = (ui // ush) * ug_w
                            for s in range(rx):
                                uj = uj0 + uintp(s * bx) - uintp(q * dw)
                                if uj % usw == 0:
                                    gv = gs[gr + uj // usw]
                                    for a in range(rc):
                                        acc[a, r, s] += gv * ws[uintp(a) * taps_u + tap]
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
