"""The CUDA backend: numba-cuda kernels behind the same entry points as the CPU backend.

Imported only when ``backend="cuda"`` is asked for or a device array is passed (never by
``import fastcorr``); :func:`unavailable_reason` says why it cannot run here. The low-level
entry points take C-contiguous Numba device arrays of ``plan.dtype``:

- ``forward(x, weight, bias, out, plan, stream=None)``
- ``grad_input(grad_out, weight, grad_x, plan, stream=None)``
- ``grad_weight(grad_out, x, grad_w, plan, stream=None)``
- ``grad_bias(grad_out, grad_b, plan, stream=None)``

The public functions go through :func:`run_forward` / :func:`run_backward`, which take the
operands where the caller keeps them (see :mod:`fastcorr.cuda._arrays`).
"""

from numba import cuda

from .. import _validate as v
from .. import config
from ._arrays import Call, DeviceView, as_numba, check_out, is_device_array, launch_1d, read_operand

#: The public functions ask backends with this flag for device-aware operand handling.
DEVICE = True

__all__ = ["DEVICE", "DeviceView", "check_out", "forward", "grad_bias", "grad_input",
           "grad_weight", "read_operand", "run_backward", "run_forward", "unavailable_reason"]

_MAX_GRID_YZ = 65535


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
    block, narrowed (threads moved to rows, then dropped) when the output is much smaller."""
    bx, by = config.CUDA_BLOCK
    rc, ry, rx = outputs
    out_h, out_w = plan.out_shape[2], plan.out_shape[3]
    while bx > 1 and bx * rx >= 2 * out_w:
        bx //= 2
        by *= 2
    while by > 1 and by * ry >= 2 * out_h:
        by //= 2
    return bx, by, rc, ry, rx


def _launch_batched(n_batch, launch):
    """Call ``launch(lo, hi)`` for image ranges small enough for the grid's z dimension."""
    for lo in range(0, n_batch, _MAX_GRID_YZ):
        launch(lo, min(n_batch, lo + _MAX_GRID_YZ))


def _stream(stream):
    return cuda.default_stream() if stream is None else stream


# --------------------------------------------------------------------------- forward


def forward(x, weight, bias, out, plan, stream=None):
    """Compute ``plan`` into ``out``; C-contiguous NCHW device arrays of ``plan.dtype``.

    Parameters
    ----------
    x : device array, shape (N, C_in, H, W)
    weight : device array, shape (C_out, C_in // groups, kH, kW)
    bias : device array, shape (C_out,), or None
    out : device array, shape plan.out_shape; overwritten
    """
    from ._forward import direct_kernel, tiled_kernel

    stream = _stream(stream)
    dtype = plan.dtype
    c_out, c_in_g, kh, kw = plan.weight_shape
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    fill = dtype.type(plan.fill)
    has_bias = bias is not None
    if bias is None:
        bias = cuda.device_array(1, dtype=dtype, stream=stream)  # never read
    groups = plan.groups
    c_out_g = c_out // groups
    outputs = config.CUDA_DEPTHWISE_OUTPUTS if c_in_g == 1 else config.CUDA_DENSE_OUTPUTS
    bx, by, rc, ry, rx = _tile(plan, (min(outputs[0], c_out_g),) + tuple(outputs[1:]))
    tile_in_h = (by * ry - 1) * sh + (kh - 1) * dh + 1
    tile_in_w = (bx * rx - 1) * sw + (kw - 1) * dw + 1
    shared = (tile_in_h * tile_in_w + rc * kh * kw) * dtype.itemsize
    out_h, out_w = plan.out_shape[2], plan.out_shape[3]
    co_blocks = groups * ((c_out_g + rc - 1) // rc)
    geometry = (sh, sw, dh, dw, plan.pad_top, plan.pad_left, plan.pad_mode, fill, groups)
    if shared <= config.CUDA_MAX_SHARED_BYTES and co_blocks <= _MAX_GRID_YZ:
        kernel = tiled_kernel(dtype.name, bx, by, rc, ry, rx)
        tiles_w = (out_w + bx * rx - 1) // (bx * rx)
        tiles = ((out_h + by * ry - 1) // (by * ry)) * tiles_w

        def launch(lo, hi):
            kernel[(tiles, co_blocks, hi - lo), (bx, by), stream, shared](
                x[lo:hi], weight, bias, has_bias, out[lo:hi], *geometry, tiles_w, tile_in_h,
                tile_in_w)

        _launch_batched(plan.out_shape[0], launch)
    else:
        launch_1d(direct_kernel(dtype.name), out.size, stream, x, weight, bias, has_bias, out,
                  *geometry)
    return out


# --------------------------------------------------------------------------- gradients


def grad_input(grad_out, weight, grad_x, plan, stream=None):
    """Write the gradient of ``plan``'s output with respect to its input into ``grad_x``
    (overwritten); C-contiguous device arrays, ``grad_out`` of ``plan.out_shape``."""
    from ._backward import fold_kernel, grad_padded_direct_kernel, grad_padded_kernel

    stream = _stream(stream)
    dtype = plan.dtype
    c_out, c_in_g, kh, kw = plan.weight_shape
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    n_batch, c_in, h, w = plan.input_shape
    out_h, out_w = plan.out_shape[2], plan.out_shape[3]
    hp = (out_h - 1) * sh + (kh - 1) * dh + 1  # the padded extent the outputs read
    wp = (out_w - 1) * sw + (kw - 1) * dw + 1
    direct = plan.pad_mode == v.ZEROS or (plan.pad_top == 0 and plan.pad_left == 0
                                          and hp <= h and wp <= w)
    if direct:  # gather straight into the input's positions; the padding is dropped
        dest, r_off, c_off = grad_x, plan.pad_top, plan.pad_left
    else:  # gather the padded plane, then fold the padding back
        dest, r_off, c_off = cuda.device_array((n_batch, c_in, hp, wp), dtype, stream=stream), 0, 0
    outputs = config.CUDA_DEPTHWISE_OUTPUTS if c_in_g == 1 else config.CUDA_DENSE_OUTPUTS
    fake = v.Plan(plan.input_shape, plan.weight_shape, dest.shape, plan.stride, plan.dilation,
                  0, 0, 0, 0, plan.pad_mode, plan.fill, plan.groups, dtype)
    bx, by, rc, ry, rx = _tile(fake, (min(outputs[0], c_in_g),) + tuple(outputs[1:]))
    g_h = (by * ry - 1 + (kh - 1) * dh) // sh + 2
    g_w = (bx * rx - 1 + (kw - 1) * dw) // sw + 2
    shared = (g_h * g_w + rc * kh * kw) * dtype.itemsize
    ci_blocks = plan.groups * ((c_in_g + rc - 1) // rc)
    geometry = (sh, sw, dh, dw, r_off, c_off, plan.groups)
    if shared <= config.CUDA_MAX_SHARED_BYTES and ci_blocks <= _MAX_GRID_YZ:
        kernel = grad_padded_kernel(dtype.name, bx, by, rc, ry, rx)
        tiles_w = (dest.shape[3] + bx * rx - 1) // (bx * rx)
        tiles = ((dest.shape[2] + by * ry - 1) // (by * ry)) * tiles_w

        def launch(lo, hi):
            kernel[(tiles, ci_blocks, hi - lo), (bx, by), stream, shared](
                grad_out[lo:hi], weight, dest[lo:hi], *geometry, tiles_w, g_h, g_w)

        _launch_batched(n_batch, launch)
    else:
        launch_1d(grad_padded_direct_kernel(dtype.name), dest.size, stream, grad_out, weight,
                  dest, *geometry)
    if not direct:
        launch_1d(fold_kernel(dtype.name), grad_x.size, stream, dest, grad_x, plan.pad_top,
                  plan.pad_left, plan.pad_mode)
    return grad_x


def _power_of_two(value, name):
    if value < 1 or value & (value - 1):
        raise ValueError(f"config.{name}: expected a power of two, got {value}")
    return value


def grad_weight(grad_out, x, grad_w, plan, stream=None):
    """Write the gradient of ``plan``'s output with respect to the weights into ``grad_w``
    (overwritten): split-K partial sums over fixed chunks of output rows, added in order."""
    from ._backward import chunk_sum_kernel, grad_weight_kernel

    stream = _stream(stream)
    dtype = plan.dtype
    c_out, c_in_g, kh, kw = plan.weight_shape
    rows = plan.out_shape[0] * plan.out_shape[2]
    threads = _power_of_two(config.CUDA_GRAD_WEIGHT_THREADS, "CUDA_GRAD_WEIGHT_THREADS")
    per_chunk = config.CUDA_GRAD_WEIGHT_CHUNK_ROWS
    if per_chunk <= 0:  # a function of the shape and the config only: repeatable
        positions = threads * max(1, config.CUDA_GRAD_WEIGHT_POSITIONS)
        per_chunk = -(-positions // plan.out_shape[3])
    n_chunks = (rows + per_chunk - 1) // per_chunk
    taps = max(1, min(config.CUDA_GRAD_WEIGHT_TAPS, kh * kw))
    if n_chunks == 1:
        partial = grad_w.reshape((1,) + tuple(grad_w.shape))
    else:
        partial = cuda.device_array((n_chunks,) + tuple(grad_w.shape), dtype, stream=stream)
    kernel = grad_weight_kernel(dtype.name, threads, taps)
    kernel[(n_chunks, c_in_g, c_out), threads, stream, taps * threads * dtype.itemsize](
        grad_out, x, partial, plan.stride[0], plan.stride[1], plan.dilation[0],
        plan.dilation[1], plan.pad_top, plan.pad_left, plan.pad_mode, dtype.type(plan.fill),
        plan.groups, per_chunk)
    if n_chunks > 1:
        size = grad_w.size
        launch_1d(chunk_sum_kernel(dtype.name), size, stream, partial.reshape(n_chunks, size),
                  grad_w.reshape(size))
    return grad_w


def grad_bias(grad_out, grad_b, plan, stream=None):
    """``grad_b[co] = grad_out[:, co].sum()`` in a fixed order (one block per channel)."""
    from ._backward import bias_kernel

    stream = _stream(stream)
    threads = _power_of_two(config.CUDA_GRAD_WEIGHT_THREADS, "CUDA_GRAD_WEIGHT_THREADS")
    bias_kernel(plan.dtype.name, threads)[grad_b.shape[0], threads, stream,
                                          threads * plan.dtype.itemsize](grad_out, grad_b)
    return grad_b


# --------------------------------------------------------------------------- public-function glue


def run_forward(plan, x, weight, bias, out, stream=None):
    """The forward pass of a public function on the GPU.

    ``x``, ``weight``, ``bias`` are what :func:`read_operand` returned (device views or host
    arrays) in the plan's NCHW shapes; ``out`` is the caller's ``out=`` (checked by
    :func:`check_out`) or None. Returns a :class:`DeviceView` of the 4-D result, or ``out``
    reshaped, written in place (device) or copied into (host).
    """
    call = Call(stream, (x, weight, bias))
    dtype = plan.dtype
    host_out = out is not None and not is_device_array(out)
    if out is not None and not host_out:
        result = as_numba(out).reshape(plan.out_shape)
    else:
        result = call.empty(plan.out_shape, dtype)
    if result.size:
        forward(call.upload(x, dtype), call.upload(weight, dtype), call.upload(bias, dtype),
                result, plan, call.stream)
    if out is None:
        return call.result(result)
    if host_out:
        result.copy_to_host(out.reshape(plan.out_shape), stream=call.stream)
        call.stream.synchronize()
    return out


def run_backward(plan, grad_out, x, weight, mask, stream=None):
    """``(grad_x, grad_weight, grad_bias)`` of one plan on the GPU, as :class:`DeviceView` s
    (None where ``mask`` says so); operands as in :func:`run_forward`, NCHW."""
    call = Call(stream, (grad_out, x, weight))
    dtype = plan.dtype
    g = call.upload(grad_out, dtype)
    empty = g.size == 0
    grad_x = grad_w = grad_b = None
    if mask[0]:
        grad_x = call.zeros(plan.input_shape, dtype) if empty else call.empty(plan.input_shape, dtype)
        if not empty:
            grad_input(g, call.upload(weight, dtype), grad_x, plan, call.stream)
    if mask[1]:
        grad_w = call.zeros(plan.weight_shape, dtype) if empty else call.empty(plan.weight_shape, dtype)
        if not empty:
            grad_weight(g, call.upload(x, dtype), grad_w, plan, call.stream)
    if mask[2]:
        c_out = plan.weight_shape[0]
        grad_b = call.zeros((c_out,), dtype) if empty else call.empty((c_out,), dtype)
        if not empty:
            grad_bias(g, grad_b, plan, call.stream)
    return tuple(None if a is None else call.result(a) for a in (grad_x, grad_w, grad_b))
