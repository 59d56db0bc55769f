"""Device-side copies: any strided device array of any real dtype into a C-contiguous array of
the computation's dtype, optionally reversed in its last two axes (convolution's flipped
kernel). Data that is already C-contiguous in the right dtype is never copied."""

import functools

from numba import cuda


@functools.lru_cache(maxsize=None)
def copy_kernel(ndim):
    """``dst[...] = src[...]`` (cast to ``dst``'s dtype), ``src`` read reversed in its last two
    axes when ``flip``; one thread per element (1-D launch over ``dst.size``)."""
    if ndim == 1:
        @cuda.jit(cache=True)
        def kernel(src, dst, flip):
            k = cuda.grid(1)
            if k < dst.shape[0]:
                dst[k] = src[k]
    elif ndim == 2:
        @cuda.jit(cache=True)
        def kernel(src, dst, flip):
            h, w = dst.shape
            k = cuda.grid(1)
            if k < h * w:
                i = k // w
                j = k % w
                if flip:
                    dst[i, j] = src[h - 1 - i, w - 1 - j]
                else:
                    dst[i, j] = src[i, j]
    elif ndim == 3:
        @cuda.jit(cache=True)
        def kernel(src, dst, flip):
            a, h, w = dst.shape
            k = cuda.grid(1)
            if k < a * h * w:
                j = k % w
                i = (k // w) % h
                m = k // (w * h)
                if flip:
                    dst[m, i, j] = src[m, h - 1 - i, w - 1 - j]
                else:
                    dst[m, i, j] = src[m, i, j]
    elif ndim == 4:
        @cuda.jit(cache=True)
        def kernel(src, dst, flip):
            b, a, h, w = dst.shape
            k = cuda.grid(1)
            if k < b * a * h * w:
                j = k % w
                i = (k // w) % h
                m = (k // (w * h)) % a
                l = k // (w * h * a)
                if flip:
                    dst[l, m, i, j] = src[l, m, h - 1 - i, w - 1 - j]
                else:
                    dst[l, m, i, j] = src[l, m, i, j]
    else:
        raise ValueError(f"copy_kernel: ndim {ndim} is not supported")
    return kernel


@functools.lru_cache(maxsize=None)
def zero_kernel():
    """``a[:] = 0`` on a 1-D device array (results of empty reductions)."""

    @cuda.jit(cache=True)
    def kernel(a):
        k = cuda.grid(1)
        if k < a.shape[0]:
            a[k] = 0

    return kernel
