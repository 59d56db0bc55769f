"""The CUDA backend: numba-cuda kernels behind the backend contract of :mod:`fastcorr._host`.

Imported only when ``backend="cuda"`` is asked for or a device array is passed (never by
``import fastcorr``); :func:`unavailable_reason` says why it cannot run here.

=============  ==========================================================================
operation      implementations (in :data:`TABLES`)
=============  ==========================================================================
forward        ``tiled`` (shared-memory tiles, when they fit), ``direct`` (any plan)
grad_input     ``tiled``, ``direct``
grad_weight    ``splitk`` (fixed split-K chunks, added in order)
grad_bias      ``sums``
=============  ==========================================================================

The implementations take C-contiguous Numba device arrays of ``plan.dtype`` and a stream:
``run(x, weight, bias, out, plan, stream)`` and so on. ``method="fft"`` is refused with the
reason; ``"auto"`` computes directly. The public functions reach them through ``read``,
``check_out`` and :class:`Call` (see :mod:`fastcorr.cuda._arrays`), which take the operands
where the caller keeps them.
"""

import sys

from numba import cuda

from .. import _validate as v
from .. import config
from .._select import Implementation, Table, first_supported, unsupported
from . import _caller
from ._arrays import Call, DeviceView, check_out, launch_1d, read
from ._workspace import scratch

NAME = "cuda"

__all__ = ["Call", "DeviceView", "NAME", "TABLES", "check_out", "direct_forward",
           "direct_grad_input", "forward", "grad_bias", "grad_input", "grad_weight", "read",
           "stream_forward", "tiled_forward", "tiled_grad_input", "unavailable_reason"]

_MAX_GRID_YZ = 65535
WARP = 32


def unavailable_reason():
    """None when a CUDA device can run the kernels (or the simulator is on), else why not."""
    reason = _reason()
    return None if reason is None else " ".join(reason.split())


def _reason():
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # a broken driver installation
        return f"the CUDA driver could not be initialised ({exc})"
    try:
        from numba.cuda.cudadrv.driver import driver

        driver.get_device_count()
    except Exception as exc:
        return f"no usable CUDA driver ({exc})"
    return "no CUDA device found"


# --------------------------------------------------------------------------- tiling


def _tile(plan, outputs):
    """Block shape and outputs per thread for an output of ``plan.out_shape``: the configured
    block, narrowed (threads moved to rows, then dropped) when the output is much smaller,
    but never below one warp (32 threads, or the configured block if smaller): a block of
    fewer threads leaves lanes of its warp idle."""
    bx, by = config.CUDA_BLOCK
    rc, ry, rx = outputs
    out_h, out_w = plan.out_shape[2], plan.out_shape[3]
    least = min(WARP, bx * by)
    while bx > 1 and bx * rx >= 2 * out_w:
        bx //= 2
        by *= 2
    while by > 1 and bx * (by // 2) >= least and by * ry >= 2 * out_h:
        by //= 2
    return bx, by, rc, ry, rx


def _launch_batched(n_batch, launch):
    """Call ``launch(lo, hi)`` for image ranges small enough for the grid's z dimension."""
    for lo in range(0, n_batch, _MAX_GRID_YZ):
        launch(lo, min(n_batch, lo + _MAX_GRID_YZ))


def _stream(stream):
    return _caller.default_stream() if stream is None else stream


# --------------------------------------------------------------------------- forward


def _forward_tiling(plan):
    """The tiled forward kernel's tile for ``plan``: ``(bx, by, rc, ry, rx, tile_in_h,
    tile_in_w, shared bytes, output-channel blocks)``."""
    from ._forward import forward_shared_bytes

    c_out, c_in_g, kh, kw = plan.weight_shape
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    c_out_g = c_out // plan.groups
    outputs = config.CUDA_DEPTHWISE_OUTPUTS if c_in_g == 1 else config.CUDA_DENSE_OUTPUTS
    bx, by, rc, ry, rx = _tile(plan, (min(outputs[0], c_out_g),) + tuple(outputs[1:]))
    tile_in_h = (by * ry - 1) * sh + (kh - 1) * dh + 1
    tile_in_w = (bx * rx - 1) * sw + (kw - 1) * dw + 1
    shared = forward_shared_bytes(plan.dtype, tile_in_h, tile_in_w, rc, kh, kw)
    co_blocks = plan.groups * ((c_out_g + rc - 1) // rc)
    return bx, by, rc, ry, rx, tile_in_h, tile_in_w, shared, co_blocks


def _tile_fits(shared, blocks, tile, channels):
    """None when a tiled kernel's tile fits shared memory and its channel blocks the grid,
    else why not."""
    if shared > config.CUDA_MAX_SHARED_BYTES:
        return (f"its {tile} tile needs {shared} bytes of shared memory (more than "
                f"config.CUDA_MAX_SHARED_BYTES = {config.CUDA_MAX_SHARED_BYTES})")
    if blocks > _MAX_GRID_YZ:
        return f"{blocks} blocks of {channels} channels exceed the grid's {_MAX_GRID_YZ}"
    return None


def _tiled_why_not(plan):
    *_, shared, co_blocks = _forward_tiling(plan)
    return _tile_fits(shared, co_blocks, "input", "output")


def _forward_geometry(plan):
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    return (sh, sw, dh, dw, plan.pad_top, plan.pad_left, plan.pad_mode,
            plan.dtype.type(plan.fill), plan.groups)


def _bias_or_dummy(bias, plan, stream):
    if bias is not None:
        return bias, True
    return scratch("dummy bias", (1,), plan.dtype, stream), False  # never read


def tiled_forward(x, weight, bias, out, plan, stream=None):
    """Compute ``plan`` into ``out`` with the shared-memory tiled kernel; C-contiguous NCHW
    device arrays of ``plan.dtype`` (``bias`` may be None)."""
    from ._forward import tiled_kernel

    stream = _stream(stream)
    bx, by, rc, ry, rx, tile_in_h, tile_in_w, shared, co_blocks = _forward_tiling(plan)
    bias, has_bias = _bias_or_dummy(bias, plan, stream)
    kernel = tiled_kernel(plan.dtype.name, bx, by, rc, ry, rx)
    out_h, out_w = plan.out_shape[2], plan.out_shape[3]
    tiles_w = (out_w + bx * rx - 1) // (bx * rx)
    tiles = ((out_h + by * ry - 1) // (by * ry)) * tiles_w
    geometry = _forward_geometry(plan)

    def launch(lo, hi):
        kernel[(tiles, co_blocks, hi - lo), (bx, by), stream, shared](
            x[lo:hi], weight, bias, has_bias, out[lo:hi], *geometry, tiles_w, tile_in_h,
            tile_in_w)

    _launch_batched(plan.out_shape[0], launch)
    return out


def direct_forward(x, weight, bias, out, plan, stream=None):
    """Compute ``plan`` into ``out`` with the direct kernel (one thread per output, reading
    global memory): any plan."""
    from ._forward import direct_kernel

    stream = _stream(stream)
    bias, has_bias = _bias_or_dummy(bias, plan, stream)
    launch_1d(direct_kernel(plan.dtype.name), out.size, stream, x, weight, bias, has_bias, out,
              *_forward_geometry(plan))
    return out


def forward(x, weight, bias, out, plan, stream=None):
    """Compute ``plan`` into ``out`` with the implementation the forward table chooses."""
    return TABLES["forward"].select(plan).run(x, weight, bias, out, plan, stream)


# --------------------------------------------------------------------------- gradients


def _grad_input_layout(plan, like):
    """Where the input gradient is gathered: ``(direct, padded shape, r_off, c_off)``."""
    n_batch, c_in, h, w = plan.input_shape
    c_out, c_in_g, kh, kw = plan.weight_shape
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    out_h, out_w = plan.out_shape[2], plan.out_shape[3]
    hp = (out_h - 1) * sh + (kh - 1) * dh + 1  # the padded extent the outputs read
    wp = (out_w - 1) * sw + (kw - 1) * dw + 1
    direct = plan.pad_mode == v.ZEROS or (plan.pad_top == 0 and plan.pad_left == 0
                                          and hp <= h and wp <= w)
    if direct:  # gather straight into the input's positions; the padding is dropped
        return True, plan.input_shape, plan.pad_top, plan.pad_left
    return False, (n_batch, c_in, hp, wp), 0, 0


def _grad_input_tiling(plan):
    c_out, c_in_g, kh, kw = plan.weight_shape
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    _, dest_shape, _, _ = _grad_input_layout(plan, None)
    outputs = config.CUDA_DEPTHWISE_OUTPUTS if c_in_g == 1 else config.CUDA_DENSE_OUTPUTS
    fake = v.Plan(plan.input_shape, plan.weight_shape, dest_shape, plan.stride, plan.dilation,
                  0, 0, 0, 0, plan.pad_mode, plan.fill, plan.groups, plan.dtype)
    bx, by, rc, ry, rx = _tile(fake, (min(outputs[0], c_in_g),) + tuple(outputs[1:]))
    g_h = (by * ry - 1 + (kh - 1) * dh) // sh + 2
    g_w = (bx * rx - 1 + (kw - 1) * dw) // sw + 2
    shared = (g_h * g_w + rc * kh * kw) * plan.dtype.itemsize
    ci_blocks = plan.groups * ((c_in_g + rc - 1) // rc)
    return bx, by, rc, ry, rx, g_h, g_w, shared, ci_blocks


def _tiled_grad_input_why_not(plan):
    *_, shared, ci_blocks = _grad_input_tiling(plan)
    return _tile_fits(shared, ci_blocks, "output-gradient", "input")


def _grad_input(grad_out, weight, grad_x, plan, stream, tiled):
    from ._backward import fold_kernel, grad_padded_direct_kernel, grad_padded_kernel

    stream = _stream(stream)
    dtype = plan.dtype
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    direct, dest_shape, r_off, c_off = _grad_input_layout(plan, grad_x)
    dest = grad_x if direct else scratch("padded input gradient", dest_shape, dtype, stream)
    geometry = (sh, sw, dh, dw, r_off, c_off, plan.groups)
    if tiled:
        bx, by, rc, ry, rx, g_h, g_w, shared, ci_blocks = _grad_input_tiling(plan)
        kernel = grad_padded_kernel(dtype.name, bx, by, rc, ry, rx)
        tiles_w = (dest.shape[3] + bx * rx - 1) // (bx * rx)
        tiles = ((dest.shape[2] + by * ry - 1) // (by * ry)) * tiles_w

        def launch(lo, hi):
            kernel[(tiles, ci_blocks, hi - lo), (bx, by), stream, shared](
                grad_out[lo:hi], weight, dest[lo:hi], *geometry, tiles_w, g_h, g_w)

        _launch_batched(plan.input_shape[0], launch)
    else:
        launch_1d(grad_padded_direct_kernel(dtype.name), dest.size, stream, grad_out, weight,
                  dest, *geometry)
    if not direct:
        launch_1d(fold_kernel(dtype.name), grad_x.size, stream, dest, grad_x, plan.pad_top,
                  plan.pad_left, plan.pad_mode)
    return grad_x


def tiled_grad_input(grad_out, weight, grad_x, plan, stream=None):
    """The input gradient by the tiled gather kernel (overwrites ``grad_x``)."""
    return _grad_input(grad_out, weight, grad_x, plan, stream, True)


def direct_grad_input(grad_out, weight, grad_x, plan, stream=None):
    """The input gradient by the direct gather kernel: any plan (overwrites ``grad_x``)."""
    return _grad_input(grad_out, weight, grad_x, plan, stream, False)


def grad_input(grad_out, weight, grad_x, plan, stream=None):
    """Write the gradient of ``plan``'s output with respect to its input into ``grad_x``
    (overwritten), with the implementation the table chooses."""
    return TABLES["grad_input"].select(plan).run(grad_out, weight, grad_x, plan, stream)


def _power_of_two(value, name):
    if value < 1 or value & (value - 1):
        raise ValueError(f"config.{name}: expected a power of two, got {value}")
    return value


def _split_k(plan):
    """``(threads, rows_per_chunk, n_chunks)`` of the split-K gradients (weights and bias):
    chunks of output rows fixed by the shape and the config alone, so sums are repeatable."""
    rows = plan.out_shape[0] * plan.out_shape[2]
    threads = _power_of_two(config.CUDA_GRAD_WEIGHT_THREADS, "CUDA_GRAD_WEIGHT_THREADS")
    per_chunk = config.CUDA_GRAD_WEIGHT_CHUNK_ROWS
    if per_chunk <= 0:
        positions = threads * max(1, config.CUDA_GRAD_WEIGHT_POSITIONS)
        per_chunk = -(-positions // plan.out_shape[3])
    return threads, per_chunk, (rows + per_chunk - 1) // per_chunk


def _add_chunks(partial, result, stream):
    """``result = partial[0] + partial[1] + ...`` in order (nothing to do for one chunk, whose
    partial is ``result`` itself)."""
    from ._backward import chunk_sum_kernel

    n_chunks = partial.shape[0]
    if n_chunks > 1:
        size = result.size
        launch_1d(chunk_sum_kernel(result.dtype.name), size, stream,
                  partial.reshape(n_chunks, size), result.reshape(size))


def _partials(n_chunks, result, stream):
    if n_chunks == 1:
        return result.reshape((1,) + tuple(result.shape))
    return scratch("split-K partials", (n_chunks,) + tuple(result.shape), result.dtype, stream)


def grad_weight(grad_out, x, grad_w, plan, stream=None):
    """Write the gradient of ``plan``'s output with respect to the weights into ``grad_w``
    (overwritten): split-K partial sums over fixed chunks of output rows, added in order."""
    from ._backward import grad_weight_kernel

    stream = _stream(stream)
    dtype = plan.dtype
    c_out, c_in_g, kh, kw = plan.weight_shape
    threads, per_chunk, n_chunks = _split_k(plan)
    taps = max(1, min(config.CUDA_GRAD_WEIGHT_TAPS, kh * kw))
    partial = _partials(n_chunks, grad_w, stream)
    kernel = grad_weight_kernel(dtype.name, threads, taps)
    kernel[(n_chunks, c_in_g, c_out), threads, stream, taps * threads * dtype.itemsize](
        grad_out, x, partial, plan.stride[0], plan.stride[1], plan.dilation[0],
        plan.dilation[1], plan.pad_top, plan.pad_left, plan.pad_mode, dtype.type(plan.fill),
        plan.groups, per_chunk)
    _add_chunks(partial, grad_w, stream)
    return grad_w


def grad_bias(grad_out, grad_b, plan, stream=None):
    """``grad_b[co] = grad_out[:, co].sum()``: split-K over the same fixed chunks of output
    rows as the weight gradient (one block per chunk and channel), added in order."""
    from ._backward import bias_kernel

    stream = _stream(stream)
    threads, per_chunk, n_chunks = _split_k(plan)
    partial = _partials(n_chunks, grad_b, stream)
    bias_kernel(plan.dtype.name, threads)[(n_chunks, grad_b.shape[0]), threads, stream,
                                          threads * plan.dtype.itemsize](
        grad_out, partial, per_chunk)
    _add_chunks(partial, grad_b, stream)
    return grad_b


# --------------------------------------------------------------------------- the tables


def _fft_why_not(plan):
    return ("the CUDA backend's FFT path is not written yet (cuFFT through CuPy is planned); "
            "use method='direct' or 'auto'")


def _choose(direct_names, operation):
    def choose(plan, method, operands):
        if method == "fft":
            raise unsupported(method, NAME, operation, _fft_why_not(plan))
        return first_supported(TABLES[operation], direct_names, plan)

    return choose


TABLES = {
    "forward": Table(NAME, "forward", [
        Implementation("tiled", tiled_forward, why_not=_tiled_why_not),
        Implementation("direct", direct_forward),
    ], _choose(("tiled", "direct"), "forward")),
    "grad_input": Table(NAME, "grad_input", [
        Implementation("tiled", tiled_grad_input, why_not=_tiled_grad_input_why_not),
        Implementation("direct", direct_grad_input),
    ], _choose(("tiled", "direct"), "grad_input")),
    "grad_weight": Table(NAME, "grad_weight", [Implementation("splitk", grad_weight)],
                         _choose(("splitk",), "grad_weight")),
    "grad_bias": Table(NAME, "grad_bias", [Implementation("sums", grad_bias)],
                       _choose(("sums",), "grad_bias")),
}


def stream_forward(call, plan, x, weight, bias, out, per_chunk, streams, update, method):
    """The forward pass of a batch for :mod:`fastcorr.batch`: host data streamed through
    pinned buffers on ``streams`` CUDA streams (see :mod:`fastcorr.cuda.stream`); device data
    computed in one pass on the call's stream."""
    from . import stream as gpu_stream
    from ..functional import run_forward

    if gpu_stream.is_host(x):
        if method == "fft":
            raise unsupported(method, NAME, "forward", _fft_why_not(plan))
        return gpu_stream.run(plan, x, weight, bias, out, per_chunk, streams, update,
                              call.stream)
    result = run_forward(sys.modules[__name__], plan, x, weight, bias, out, call.stream, method)
    update(plan.input_shape[0])
    return result
