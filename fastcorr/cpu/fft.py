"""The "fft" implementation: correlation through NumPy's FFT (pocketfft), tile by tile.

Stride-1 plans (any padding, boundary rule, dilation and groups):

- forward and input gradient by **overlap-save**: the padded input (padding copied through the
  boundary rule) is cut into tiles of an FFT size ``T`` that overlap by the kernel's extent
  less one; each tile's transform is multiplied by the conjugate transform of the (dilated)
  kernel, computed once per call at size ``T`` and reused by every tile and image, and the
  tile's valid part is kept. The input gradient is the output gradient, framed with zeros,
  correlated with the rotated kernel (channels transposed), folded back through the boundary
  rule;
- weight gradient: the padded input correlated with the output gradient at one FFT size
  covering the plane, summed over the batch in the Fourier domain, in image order.

Tiles (and images) are spread over fastcorr's threads (:func:`fastcorr.cpu._pool.map_calls`):
NumPy's FFTs release the GIL. The tiling depends on the shape only, each output is computed by
one tile, so results are bitwise the same at any thread count.

**Accuracy.** The FFT's error is not tied to each output's own terms: it is bounded relative
to the whole input's scale, about ``eps * log2(T) * max|x| * sum|w|`` (``eps`` of the
computation's dtype). fastcorr's tests hold it to ``1e-5`` (float32) and ``1e-12``
(float64) of ``max|in1| * sum|in2|``. A non-finite input spreads through every output of its
tile, so ``method="fft"`` refuses inputs with NaN or infinity and ``"auto"`` computes them
directly.
"""

import functools
import threading

import numpy as np

from .. import _memory
from .. import _validate as v
from . import _pool
from .rows import fold_planes, pad_planes

#: FFT tile edges: at least four kernel extents and TILE, at most MAX_TILE unless the kernel
#: needs more. NumPy's 2-D transforms slow down past a few hundred samples an edge (measured:
#: a 2048^2 image with a 31x31 kernel takes 30 ms in tiles of 256-512, 80 ms in tiles of
#: 1024, 130 ms in one transform), so tiles stay small and many.
TILE = 256
MAX_TILE = 512
#: Bytes of Fourier-domain operands (kernel transforms, one tile's planes) the path may hold.
MEMORY_BUDGET = 1 << 30


@functools.lru_cache(maxsize=4096)
def next_fast_len(n):
    """The smallest even ``m >= n`` whose prime factors are 2, 3 and 5 (fast for pocketfft)."""
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


def tile_size(extent, padded):
    """FFT tile edge for a kernel of ``extent`` samples over ``padded`` samples: the whole
    axis when it is no longer than a tile, else about four extents (overlap-save)."""
    edge = next_fast_len(max(TILE, 4 * extent))
    if edge > MAX_TILE:
        edge = max(next_fast_len(MAX_TILE), next_fast_len(2 * extent))
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
        if a is not None and not np.isfinite(a).all():
            raise ValueError("method='fft': an input holds NaN or infinity, which the FFT would "
                             "spread over whole tiles of the result; use method='direct' (or "
                             "'auto', which computes such inputs directly)")


_local = threading.local()
#: numpy.fft takes ``out=`` from NumPy 2.0
_FFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


def _scratch(slot, shape, dtype):
    """A per-thread array for ``slot``, reused by every tile and call of the same shape.

    A tile's arrays are a few MiB; allocated afresh for every tile, each costs the allocator
    an ``mmap``, page faults and an ``munmap`` wherever the process returns memory to the
    system eagerly (dask.distributed's workers set ``MALLOC_TRIM_THRESHOLD_``: a 4096^2
    block with a 31x31 kernel took 0.83 s there against 0.23 s, now the same).
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get(slot)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = _memory.empty(shape, dtype)
        # (arrays too large to keep between calls are allocated per use: a thread holds at
        # most SCRATCH_BYTES per slot once the call is over)
        buffers[slot] = buf if buf.nbytes <= SCRATCH_BYTES else None
    return buf


#: The largest array :func:`_scratch` keeps for reuse (per thread and slot).
SCRATCH_BYTES = 32 << 20


def _rfft2(a, out):
    """``np.fft.rfft2(a)`` by its own steps (the real transform along the rows, then the
    transform along the columns), into ``out`` through a second scratch array: NumPy copies
    an input that overlaps its output, so neither step runs in place."""
    if not _FFT_OUT or out.dtype != np.result_type(a.dtype, np.complex64):
        return np.fft.rfft2(a)
    rows = np.fft.rfft(a, axis=-1, out=_scratch("rfft rows", out.shape, out.dtype))
    return np.fft.fft(rows, axis=-2, out=out)


def _irfft2(a, s, out):
    """``np.fft.irfft2(a, s)`` by its own steps (the inverse along the columns, then the real
    inverse along the rows), into ``out`` through a second scratch array."""
    if not _FFT_OUT or out.dtype != np.result_type(a.real.dtype, np.float32):
        return np.fft.irfft2(a, s=s)
    cols = np.fft.ifft(a, s[0], axis=-2, out=_scratch("irfft cols", a.shape, a.dtype))
    return np.fft.irfft(cols, s[1], axis=-1, out=out)


def _dilated(weight, dilation):
    """The kernel with ``dilation - 1`` zeros between taps: (C_out, C_in_g, kHe, kWe)."""
    dh, dw = dilation
    if (dh, dw) == (1, 1):
        return weight
    c_out, c_in_g, kh, kw = weight.shape
    out = np.zeros((c_out, c_in_g, (kh - 1) * dh + 1, (kw - 1) * dw + 1), dtype=weight.dtype)
    out[:, :, ::dh, ::dw] = weight
    return out


def _padded(x, plan, rows, cols, row0, col0, pad_mode, fill):
    """``x`` (N, C, H, W) seen through the boundary rule over ``rows x cols`` from virtual
    ``(row0, col0)``: a new (N, C, rows, cols) array."""
    n, c, h, w = x.shape
    out = _memory.empty((n * c, rows, cols), dtype=plan.dtype)
    _pool.run(pad_planes, n * c * rows, x.reshape(n * c, h, w), out, row0, col0, pad_mode,
              plan.dtype.type(fill), work=out.size)
    return out.reshape(n, c, rows, cols)


def _valid_correlation(xpad, weight, groups, out, bias=None):
    """``out[n, co] = bias[co] + sum_ci valid_corr(xpad[n, g * Cig + ci], weight[co, ci])``
    by overlap-save; ``weight`` is (C_out, C_in_g, kHe, kWe), ``out`` (N, C_out, oh, ow)."""
    n_batch, c_in, hp, wp = xpad.shape
    c_out, c_in_g, keh, kew = weight.shape
    out_h, out_w = out.shape[2:]
    th, tw = tile_size(keh, hp), tile_size(kew, wp)
    step_h, step_w = th - keh + 1, tw - kew + 1
    c_out_g = c_out // groups
    # The Fourier domain is float64 for float32 plans too: NumPy 2.4's single-precision
    # forward transforms rebuild their plan on every call (two allocations each, and 4.7 ms
    # against 1.0 ms in float64 for a 512^2 tile here), and the error bound only improves.
    real = np.float64
    k_f = np.conj(np.fft.rfft2(weight.astype(real), s=(th, tw)))  # (C_out, C_in_g, th, tw/2+1)
    k_f = k_f.reshape(groups, c_out_g, c_in_g, th, tw // 2 + 1)
    tiles = [(n, a, b) for n in range(n_batch) for a in range(0, out_h, step_h)
             for b in range(0, out_w, step_w)]

    spectrum = np.result_type(real, np.complex64)
    half = tw // 2 + 1

    def tile(job):
        n, a, b = job
        src = xpad[n, :, a:a + th, b:b + tw]
        block = _scratch("block", (c_in, th, tw), real)
        rows_in, cols_in = src.shape[1:]
        block[:, :rows_in, :cols_in] = src
        block[:, rows_in:, :] = 0  # (an edge tile: zeros past the input)
        block[:, :rows_in, cols_in:] = 0
        x_f = _rfft2(block, _scratch("x_f", (c_in, th, half), spectrum))
        x_f = x_f.reshape(groups, c_in_g, th, half)
        y_f = _scratch("y_f", (groups, c_out_g, th, half), spectrum)
        if c_in_g == 1:
            np.multiply(k_f[:, :, 0], x_f, out=y_f)  # each group's plane times its kernels
        else:
            np.einsum("goif,gif->gof", k_f.reshape(groups, c_out_g, c_in_g, -1),
                      x_f.reshape(groups, c_in_g, -1), out=y_f.reshape(groups, c_out_g, -1))
        y = _irfft2(y_f.reshape(c_out, th, half), (th, tw),
                    _scratch("y", (c_out, th, tw), real))
        rows, cols = min(step_h, out_h - a), min(step_w, out_w - b)
        target = out[n, :, a:a + rows, b:b + cols]
        target[...] = y[:, :rows, :cols]
        if bias is not None:
            target += bias[:, None, None]

    _pool.map_calls(tile, tiles)
    return out


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` (stride 1) into ``out``."""
    kh, kw = plan.weight_shape[2:]
    dh, dw = plan.dilation
    out_h, out_w = plan.out_shape[2:]
    xpad = _padded(x, plan, out_h + (kh - 1) * dh, out_w + (kw - 1) * dw, -plan.pad_top,
                   -plan.pad_left, plan.pad_mode, plan.fill)
    return _valid_correlation(xpad, _dilated(weight, plan.dilation), plan.groups, out, bias)


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
    framed = _padded(grad_out, plan, out_h + 2 * (keh - 1), out_w + 2 * (kew - 1),
                     -(keh - 1), -(kew - 1), v.ZEROS, 0.0)
    padded = _memory.empty((n, c_in, hp, wp), dtype=plan.dtype)
    _valid_correlation(framed, w_t, groups, padded)
    _pool.run(fold_planes, n * c_in, padded.reshape(n * c_in, hp, wp),
              grad_x.reshape(n * c_in, h, w), -plan.pad_top, -plan.pad_left, plan.pad_mode,
              work=padded.size)
    return grad_x


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten)."""
    n_batch = plan.input_shape[0]
    c_out, c_in_g, kh, kw = plan.weight_shape
    dh, dw = plan.dilation
    groups = plan.groups
    out_h, out_w = plan.out_shape[2:]
    keh, kew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    hp, wp = out_h + keh - 1, out_w + kew - 1
    xpad = _padded(x, plan, hp, wp, -plan.pad_top, -plan.pad_left, plan.pad_mode, plan.fill)
    fh, fw = next_fast_len(hp), next_fast_len(wp)
    c_out_g = c_out // groups

    def image(n):
        x_f = np.fft.rfft2(xpad[n], s=(fh, fw)).reshape(groups, c_in_g, -1)
        g_f = np.conj(np.fft.rfft2(grad_out[n], s=(fh, fw))).reshape(groups, c_out_g, -1)
        return np.einsum("goF,giF->goiF", g_f, x_f)

    total = None
    per_round = max(1, _pool.thread_count(n_batch))
    for first in range(0, n_batch, per_round):  # a few images at a time, added in order
        for product in _pool.map_calls(image, range(first, min(n_batch, first + per_round))):
            total = product if total is None else total + product
    full = np.fft.irfft2(total.reshape(c_out, c_in_g, fh, fw // 2 + 1), s=(fh, fw))
    grad_w[...] = full[:, :, :keh:dh, :kew:dw]
    return grad_w
