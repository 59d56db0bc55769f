"""The "fft" implementation: correlation through DUCC0's FFT (the C++ library behind
``scipy.fft``, called from Numba through rocket-fft: :mod:`fastcorr.cpu.fft_tiles`), tile by
tile, in the plan's precision.

Stride-1 plans (any padding, boundary rule, dilation and groups):

- forward and input gradient by **overlap-save**: the padded input (seen through the
  boundary rule by maps of its rows and columns,
  :func:`fastcorr.cpu._indexing.axis_map`: no padded copy) is cut
  into tiles of an FFT size ``T`` that overlap by the kernel's extent less one; each tile's
  transform is multiplied by the transform of the rotated (dilated) kernel, computed once
  per call at size ``T`` and reused by every tile and image, and the tile's valid part of
  the circular convolution is kept. The input gradient is the output gradient, framed with zeros,
  correlated with the rotated kernel (channels transposed), folded back through the boundary
  rule;
- weight gradient: the padded input correlated with the output gradient at one FFT size
  covering the plane, summed over the batch in the Fourier domain, in image order.

Tiles (and images, and the planes of whole-plane transforms) are spread over fastcorr's
threads (:func:`fastcorr.cpu._pool.run`), each transform single-threaded inside a kernel that
releases the GIL. The tiling depends on the shape only, each output is computed by one tile,
and the weight gradient's sum runs in image order, so results are bitwise the same at any
thread count.

**Accuracy.** The FFT's error is not tied to each output's own terms: it is bounded relative
to the whole input's scale, about ``eps * log2(T) * max|x| * sum|w|`` (``eps`` of the
plan's dtype: float32 plans transform in single precision, measured 2-4e-7 of that scale on
2048^2 images with 31x31 and 63x63 kernels). fastcorr's tests hold it to ``1e-5`` (float32)
and ``1e-12`` (float64) of ``max|in1| * sum|in2|``. A non-finite input spreads through every output of its
tile, so ``method="fft"`` refuses inputs with NaN or infinity and ``"auto"`` computes them
directly.
"""

import functools
import itertools
import threading

import numpy as np

from .. import _memory
from .. import _validate as v
from .._host import all_finite
from . import _pool
from ._indexing import plane_maps
from .rows import fold

#: FFT tile edges: at least five kernel extents and TILE, at most MAX_TILE unless the kernel
#: needs more, and of the form 2^a, 3 * 2^a or 5 * 2^a (:func:`tile_edge`). Tiles that stay in
#: L2 are fastest (measured, float32 2048^2 and 4096^2 images, 15x15 to 63x63 kernels: edges of
#: 256-384 within 10% of the best, 512 10-40% slower, 640-768 25-60% slower on an AVX-512 Xeon
#: with 2 MiB of L2 a core), so tiles stay small and many; five extents rather than four
#: (320 instead of 256 for 52x52-64x64 kernels, 384 instead of 300 for 75x75) measured 1.0-1.4x
#: faster there from 45x45 to 95x95, six extents 0.87-1.05x.
TILE = 256
MAX_TILE = 512
#: kernel extents per tile edge (at least)
TILE_REACH = 5
#: Bytes of Fourier-domain operands (kernel transforms, one tile's planes) the path may hold.
MEMORY_BUDGET = 1 << 30


@functools.lru_cache(maxsize=4096)
def next_fast_len(n):
    """The smallest even ``m >= n`` whose prime factors are 2, 3 and 5 (fast for DUCC0)."""
    best = None
    p5 = 1
    while p5 < 2 * n:
        p35 = p5
        while p35 < 2 * n:
            m = p35
            while m < n:
                m *= 2
            if m % 2:
                m *= 2
            if best is None or m < best:
                best = m
            p35 *= 3
        p5 *= 5
    return max(2, best)


def tile_edge(n):
    """The smallest ``m >= n`` of the form ``2^a``, ``3 * 2^a`` or ``5 * 2^a``: DUCC0's
    fastest transform sizes (a 2-D transform of 270^2 = (2 * 3^3 * 5)^2 took 1.7x as long as
    one of 256^2 here, 288^2 1.3x, 320^2 1.6x)."""
    edges = []
    for odd in (1, 3, 5):
        m = odd
        while m < n:
            m *= 2
        edges.append(m)
    return min(edges)


def tile_size(extent, padded):
    """FFT tile edge for a kernel of ``extent`` samples over ``padded`` samples: the whole
    axis when it is no longer than a tile, else about five extents (overlap-save)."""
    edge = tile_edge(max(TILE, TILE_REACH * extent))
    if edge > MAX_TILE:
        edge = max(MAX_TILE, tile_edge(2 * extent))
    return min(edge, next_fast_len(padded))


def why_not(plan):
    """None when the FFT path computes ``plan``, else why not."""
    if plan.stride != (1, 1):
        return f"it needs stride 1 (got stride {plan.stride})"
    c_out, c_in_g, kh, kw = plan.weight_shape
    ke = ((kh - 1) * plan.dilation[0] + 1, (kw - 1) * plan.dilation[1] + 1)
    padded = (plan.input_shape[2] + plan.pad_top + plan.pad_bottom,
              plan.input_shape[3] + plan.pad_left + plan.pad_right)
    t = [tile_size(e, p) for e, p in zip(ke, padded)]
    complex_size = 2 * plan.dtype.itemsize
    need = c_out * c_in_g * t[0] * (t[1] // 2 + 1) * complex_size
    if need > MEMORY_BUDGET:
        return (f"the kernel's transforms would take {need / 2**30:.1f} GiB (more than "
                f"{MEMORY_BUDGET / 2**30:.0f} GiB)")
    return None


def check_finite(*arrays):
    """Raise ValueError unless every array is finite (the FFT would spread a NaN or an
    infinity over whole tiles)."""
    for a in arrays:
        if a is not None and not all_finite(a):
            raise ValueError("method='fft': an input holds NaN or infinity, which the FFT would "
                             "spread over whole tiles of the result; use method='direct' (or "
                             "'auto', which computes such inputs directly)")


def _buffers(*shapes_and_dtypes):
    """A ``scratch`` maker for :func:`fastcorr.cpu._pool.run`: each call makes the next
    range's arrays of the given ``(shape, dtype)``s, kept per calling thread and range and
    reused by later calls of the same shapes.

    A tile's arrays are a few MiB; allocated afresh for every call, each costs the allocator
    an ``mmap``, page faults and an ``munmap`` wherever the process returns memory to the
    system eagerly (dask.distributed's workers set ``MALLOC_TRIM_THRESHOLD_``: a 4096^2
    block with a 31x31 kernel took 0.83 s there against 0.23 s, now the same). The ranges of
    one call are made on the calling thread, which waits for all of them, so two calls never
    share an array.
    """
    kept = _local.__dict__.setdefault("buffers", {})  # range index -> (shapes, arrays)
    made = itertools.count()

    def scratch():
        index = next(made)
        shapes, arrays = kept.get(index, (None, None))
        if shapes != shapes_and_dtypes:
            arrays = tuple(_memory.empty(shape, dtype) for shape, dtype in shapes_and_dtypes)
            # (only the latest shapes are kept, and only up to SCRATCH_BYTES a range)
            kept.pop(index, None)
            if sum(a.nbytes for a in arrays) <= SCRATCH_BYTES:
                kept[index] = (shapes_and_dtypes, arrays)
        return arrays

    return scratch


_local = threading.local()
#: The most bytes of one range's arrays :func:`_buffers` keeps for reuse (per thread).
SCRATCH_BYTES = 64 << 20


def _complex(dtype):
    return np.result_type(dtype, np.complex64)


def _pairs(spectrum):
    """A C-contiguous complex array as a flat real array of its (real, imaginary) pairs (a
    view). The kernels' loops of real arithmetic compile several times faster than the same
    loops over complex numbers (0.4 s against 0.9-1.0 s)."""
    return spectrum.reshape(-1).view(spectrum.real.dtype)


def _through(planes, rows, cols, row0, col0, pad_mode, fill):
    """The kernels' view of ``planes`` (..., h, w) through the boundary rule over ``rows x
    cols`` from virtual ``(row0, col0)``: the arguments ``(planes, row_map, col_map, lo,
    hi, fill)`` of :func:`fastcorr.cpu.fft_tiles.overlap_save`."""
    maps = plane_maps(rows, cols, row0, col0, *planes.shape[-2:], pad_mode)
    return np.ascontiguousarray(planes), *maps, planes.dtype.type(fill)


def _spectra(planes, shape, through=None):
    """``rfft2`` of every plane of ``planes`` (P, h, w) (seen ``through`` the boundary rule,
    a :func:`_through` of it; as they are by default), zero-padded to ``shape`` (rows,
    cols): (P, rows, cols // 2 + 1), in the planes' precision. Computed by the tile kernel
    with one tile a plane (see :func:`fastcorr.cpu.fft_tiles.overlap_save`; its other
    operands empty)."""
    from . import fft_tiles

    if through is None:
        through = _through(planes, *planes.shape[1:], 0, 0, v.ZEROS, 0)
    x, maps = through[0], through[1:]
    real = x.dtype
    rows, cols = shape
    half = cols // 2 + 1
    out = _memory.empty((planes.shape[0], rows, half), _complex(real))
    unused = np.empty(0, real)
    buffers = _buffers(((1, rows, cols), real))

    def scratch():
        no_spectrum = np.empty((0, rows, half), out.dtype)
        return (buffers()[0], no_spectrum, unused, no_spectrum, unused,
                np.empty((1, 0, 0), real))

    _pool.run(fft_tiles.overlap_save, planes.shape[0], x[:, None], *maps, unused, 1, unused,
              np.empty((0, 1, 0, 0), real), rows, cols, 1, 1, out,
              work=planes.shape[0] * rows * cols * 20, scratch=scratch)
    return out


def _inverse(spectrum, shape, dtype):
    """``irfft2`` of every plane of ``spectrum`` (P, rows, cols // 2 + 1) at ``shape``."""
    from . import fft_tiles

    planes = _memory.empty((spectrum.shape[0],) + tuple(shape), dtype)
    _pool.run(fft_tiles.inverse_planes, spectrum.shape[0], np.ascontiguousarray(spectrum),
              planes, work=planes.size * 20)
    return planes


def _dilated(weight, dilation):
    """The kernel with ``dilation - 1`` zeros between taps: (C_out, C_in_g, kHe, kWe)."""
    dh, dw = dilation
    if (dh, dw) == (1, 1):
        return weight
    c_out, c_in_g, kh, kw = weight.shape
    out = np.zeros((c_out, c_in_g, (kh - 1) * dh + 1, (kw - 1) * dw + 1), dtype=weight.dtype)
    out[:, :, ::dh, ::dw] = weight
    return out


def _rotated(planes):
    """``planes`` (..., h, w) turned by 180 degrees, C-contiguous: correlation with a plane
    is convolution with its rotation, whose transform needs no conjugation."""
    return np.ascontiguousarray(planes[..., ::-1, ::-1])


def _valid_correlation(through, weight, groups, out, bias=None):
    """``out[n, co] = bias[co] + sum_ci valid_corr(xpad[n, g * Cig + ci], weight[co, ci])``
    by overlap-save, where ``xpad`` is the input seen ``through`` the boundary rule (a
    :func:`_through` of it); ``weight`` is (C_out, C_in_g, kHe, kWe), ``out`` (N, C_out, oh,
    ow)."""
    from . import fft_tiles

    x, row_map, col_map = through[:3]
    n_batch, c_in = x.shape[:2]
    hp, wp = row_map.size, col_map.size
    c_out, c_in_g, keh, kew = weight.shape
    out_h, out_w = out.shape[2:]
    th, tw = tile_size(keh, hp), tile_size(kew, wp)
    step_h, step_w = th - keh + 1, tw - kew + 1
    real, spectrum = x.dtype, _complex(x.dtype)
    half = tw // 2 + 1
    # the rotated kernels' transforms, once per call for every tile and image
    k_f = _spectra(_rotated(weight.astype(real, copy=False)).reshape(c_out * c_in_g, keh, kew),
                   (th, tw))
    k_f = k_f.reshape(c_out, c_in_g, th, half)
    tiles_h, tiles_w = -(-out_h // step_h), -(-out_w // step_w)
    bias = np.zeros(c_out, real) if bias is None else bias.astype(real, copy=False)
    tasks = n_batch * tiles_h * tiles_w
    per_tile = (c_in + c_out) * th * tw * 20 + c_out * c_in_g * th * half * 4
    buffers = _buffers(((c_in, th, tw), real), ((c_in, th, half), spectrum),
                       ((c_out, th, half), spectrum), ((c_out, th, tw), real))

    def scratch():
        block, x_f, y_f, y = buffers()
        return block, x_f, _pairs(x_f), y_f, _pairs(y_f), y

    _pool.run(fft_tiles.overlap_save, tasks, *through, _pairs(k_f), groups, bias, out,
              step_h, step_w, tiles_w, tiles_h * tiles_w, np.empty((0, th, half), spectrum),
              work=tasks * per_tile, scratch=scratch)
    return out


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` (stride 1) into ``out``."""
    kh, kw = plan.weight_shape[2:]
    dh, dw = plan.dilation
    out_h, out_w = plan.out_shape[2:]
    through = _through(x, out_h + (kh - 1) * dh, out_w + (kw - 1) * dw, -plan.pad_top,
                       -plan.pad_left, plan.pad_mode, plan.fill)
    return _valid_correlation(through, _dilated(weight, plan.dilation), plan.groups, out, bias)


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    n, c_in, h, w = plan.input_shape
    c_out, c_in_g, kh, kw = plan.weight_shape
    groups = plan.groups
    w_e = _dilated(weight, plan.dilation)
    keh, kew = w_e.shape[2:]
    # channels transposed, taps rotated: (groups * C_in_g, C_out_g, kHe, kWe)
    w_t = w_e.reshape(groups, c_out // groups, c_in_g, keh, kew).transpose(0, 2, 1, 3, 4)
    w_t = np.ascontiguousarray(w_t.reshape(c_in, c_out // groups, keh, kew)[:, :, ::-1, ::-1])
    out_h, out_w = plan.out_shape[2:]
    hp, wp = out_h + keh - 1, out_w + kew - 1  # the padded input's extent
    framed = _through(grad_out, out_h + 2 * (keh - 1), out_w + 2 * (kew - 1), -(keh - 1),
                      -(kew - 1), v.ZEROS, 0)
    padded = _memory.empty((n, c_in, hp, wp), dtype=plan.dtype)
    _valid_correlation(framed, w_t, groups, padded)
    return fold(padded, grad_x, -plan.pad_top, -plan.pad_left, plan.pad_mode)


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten)."""
    n_batch, c_in = plan.input_shape[:2]
    c_out, c_in_g, kh, kw = plan.weight_shape
    dh, dw = plan.dilation
    groups = plan.groups
    out_h, out_w = plan.out_shape[2:]
    keh, kew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    hp, wp = out_h + keh - 1, out_w + kew - 1
    fh, fw = next_fast_len(hp), next_fast_len(wp)
    c_out_g = c_out // groups
    half = fw // 2 + 1
    total = np.zeros((groups, c_out_g, c_in_g, fh * half), _complex(plan.dtype))
    product = np.empty_like(total)
    # a few images at a time (their spectra within MEMORY_BUDGET), summed in image order:
    # the same bits at any thread count
    per_image = (c_in + c_out) * fh * half * total.itemsize
    chunk = max(1, min(n_batch, MEMORY_BUDGET // (4 * per_image)))
    for first in range(0, n_batch, chunk):
        last = min(n_batch, first + chunk)
        planes = x[first:last].reshape(-1, *x.shape[2:])
        x_f = _spectra(planes, (fh, fw), _through(planes, hp, wp, -plan.pad_top, -plan.pad_left,
                                                  plan.pad_mode, plan.fill))
        g_f = _spectra(_rotated(grad_out[first:last]).reshape(-1, out_h, out_w), (fh, fw))
        x_f = x_f.reshape(last - first, groups, c_in_g, -1)
        g_f = g_f.reshape(last - first, groups, c_out_g, -1)
        for n in range(last - first):
            # (a broadcast product into one buffer, then the sum: einsum's complex products
            # and a temporary each image took twice as long)
            np.multiply(g_f[n][:, :, None, :], x_f[n][:, None, :, :], out=product)
            total += product
    full = _inverse(total.reshape(c_out * c_in_g, fh, half), (fh, fw), plan.dtype)
    # the circular convolution with the rotated gradient, from (out_h - 1, out_w - 1) on
    grad_w[...] = full.reshape(c_out, c_in_g, fh, fw)[:, :, out_h - 1:out_h - 1 + keh:dh,
                                                      out_w - 1:out_w - 1 + kew:dw]
    return grad_w
