"""Gradients of the public functions: conv2d as torch autograd and ``torch.nn.grad`` give them,
and correlate2d/convolve2d with respect to both arguments.

The same plans as the forward functions (so the same checks and shapes), then the backend's
``grad_input`` / ``grad_weight``; the bias gradient is a sum over batch and space.
"""

from . import _validate as v
from .dispatch import check_stream, resolve
from .functional import ImageOperands, LayerOperands, finish


def _output_mask(mask, size):
    if not isinstance(mask, (tuple, list)) or len(mask) != size:
        raise ValueError(f"output_mask: expected {size} booleans, got {mask!r}")
    return tuple(bool(m) for m in mask)


def _grad_output(g, shape):
    if tuple(g.shape) != tuple(shape):
        raise ValueError(f"grad_output: expected shape {tuple(shape)}, got {tuple(g.shape)}")
    return g


def run_backward(backend, plan, grad_out, x, weight, mask, stream=None, method="auto"):
    """``(grad_x, grad_weight, grad_bias)`` of one plan on ``backend``; NCHW operands as
    ``backend.read`` returned them, None where ``mask`` does not ask for a gradient. Each
    gradient is computed by the implementation the backend's table chooses."""
    call = backend.Call(stream, (grad_out, x, weight))
    dtype = plan.dtype
    g = call.prepare(grad_out, dtype)
    empty = g.size == 0
    tables = backend.TABLES
    extra = getattr(call, "kernel_args", ())
    results = [None, None, None]
    if mask[0]:
        w = call.prepare(weight, dtype)
        results[0] = call.new(plan.input_shape, dtype, zero=empty)
        if not empty:
            tables["grad_input"].select(plan, method, call.operands(g, w)).run(
                g, w, results[0], plan, *extra)
    if mask[1]:
        xc = call.prepare(x, dtype)
        results[1] = call.new(plan.weight_shape, dtype, zero=empty)
        if not empty:
            tables["grad_weight"].select(plan, method, call.operands(xc, g)).run(
                g, xc, results[1], plan, *extra)
    if mask[2]:
        results[2] = call.new((plan.weight_shape[0],), dtype, zero=empty)
        if not empty:
            tables["grad_bias"].select(plan, "auto", None).run(g, results[2], plan, *extra)
    return tuple(None if r is None else call.finish(r) for r in results)


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", *, output_mask=(True, True, True), method="auto",
                    backend=None, stream=None):
    """Gradients of :func:`fastcorr.conv2d` with respect to input, weight and bias.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        The gradient of the loss with respect to conv2d's output.
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, shape (C_out, C_in / groups, kH, kW)
    stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`. With reflect/replicate/circular padding, gradients
        that land on the padding are folded back onto the samples it copies.
    output_mask : (bool, bool, bool)
        Which of the three gradients to compute; the others are returned as None.
    method : {"auto", "direct", "fft"}
        As in :func:`fastcorr.conv2d`, for each gradient (the bias gradient is a sum).
    backend : {None, "auto", "cpu", "cuda", "reference"}
        None and "auto" follow the data (device arrays go to "cuda").
    stream : CUDA stream, optional
        ``backend="cuda"`` only (see :func:`fastcorr.correlate2d`).

    Returns
    -------
    grad_input : ndarray, the input's shape, or None
    grad_weight : ndarray, shape (C_out, C_in / groups, kH, kW), or None
    grad_bias : ndarray, shape (C_out,), or None
        On the GPU path, device arrays of the inputs' library unless every input was NumPy.
    """
    backend = resolve(backend, grad_output, input, weight)
    check_stream(backend, stream)
    method = v.check_method(method)
    mask = _output_mask(output_mask, 3)
    read = backend.read
    g = read(grad_output, "grad_output")
    ops = LayerOperands(input, weight, None, stride, padding, dilation, groups, padding_mode,
                        extra_dtypes=[g.dtype], read=read)
    plan = ops.plan
    g = _grad_output(g, plan.out_shape[1:] if ops.unbatched else plan.out_shape)
    grad_x, grad_w, grad_b = run_backward(backend, plan, ops.batched(g), ops.batched(ops.input),
                                          ops.weight, mask, stream, method)
    return finish(ops.unbatch(grad_x)), finish(grad_w), finish(grad_b)


def conv2d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", *, method="auto", backend=None, stream=None):
    """The gradient of :func:`fastcorr.conv2d` with respect to its input, as
    :func:`torch.nn.grad.conv2d_input`.

    Parameters
    ----------
    input_shape : sequence of int
        ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
    weight : array_like, shape (C_out, C_in / groups, kH, kW)
    grad_output : array_like, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)

    method, backend, stream
        As in :func:`conv2d_backward`.

    Returns
    -------
    ndarray (or a device array, as in :func:`conv2d_backward`), shape ``input_shape``
    """
    backend = resolve(backend, weight, grad_output)
    check_stream(backend, stream)
    method = v.check_method(method)
    read = backend.read
    g = read(grad_output, "grad_output")
    ops = LayerOperands(None, weight, None, stride, padding, dilation, groups, padding_mode,
                        input_shape=input_shape, extra_dtypes=[g.dtype], read=read)
    g = _grad_output(g, ops.plan.out_shape[1:] if ops.unbatched else ops.plan.out_shape)
    grad_x, _, _ = run_backward(backend, ops.plan, ops.batched(g), None, ops.weight,
                                (True, False, False), stream, method)
    return finish(ops.unbatch(grad_x))


def conv2d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", *, method="auto", backend=None, stream=None):
    """The gradient of :func:`fastcorr.conv2d` with respect to its weight, as
    :func:`torch.nn.grad.conv2d_weight`.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
    weight_shape : sequence of int
        ``(C_out, C_in / groups, kH, kW)``.
    grad_output : array_like, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)

    method, backend, stream
        As in :func:`conv2d_backward`.

    Returns
    -------
    ndarray (or a device array, as in :func:`conv2d_backward`), shape ``weight_shape``
    """
    backend = resolve(backend, input, grad_output)
    check_stream(backend, stream)
    method = v.check_method(method)
    read = backend.read
    g = read(grad_output, "grad_output")
    ops = LayerOperands(input, None, None, stride, padding, dilation, groups, padding_mode,
                        weight_shape=weight_shape, extra_dtypes=[g.dtype], read=read)
    g = _grad_output(g, ops.plan.out_shape[1:] if ops.unbatched else ops.plan.out_shape)
    _, grad_w, _ = run_backward(backend, ops.plan, ops.batched(g), ops.batched(ops.input), None,
                                (False, True, False), stream, method)
    return finish(grad_w)


def _image_backward(grad_output, in1, in2, mode, boundary, fillvalue, output_mask, method,
                    backend, stream, convolve):
    backend = resolve(backend, grad_output, in1, in2)
    check_stream(backend, stream)
    method = v.check_method(method)
    mask = _output_mask(output_mask, 2)
    read = backend.read
    g = read(grad_output, "grad_output")
    ops = ImageOperands(in1, in2, mode, boundary, fillvalue, convolve=convolve,
                        extra_dtypes=[g.dtype], read=read)
    g = _grad_output(g, ops.plan.out_shape[2:])
    # which of the plan's image and kernel each wanted argument needs
    want_image = mask[ops.sources[0][0]]
    want_kernel = mask[ops.sources[1][0]]
    grad_image, grad_kernel, _ = run_backward(backend, ops.plan, g[None, None],
                                              ops.image[None, None], ops.kernel[None, None],
                                              (want_image, want_kernel, False), stream, method)
    grads = ops.to_arguments(None if grad_image is None else grad_image[0, 0],
                             None if grad_kernel is None else grad_kernel[0, 0])
    return tuple(finish(grad) for grad in grads)


def correlate2d_backward(grad_output, in1, in2, mode="full", boundary="fill", fillvalue=0, *,
                         output_mask=(True, True), method="auto", backend=None, stream=None):
    """Gradients of :func:`fastcorr.correlate2d` with respect to ``in1`` and ``in2``.

    Parameters
    ----------
    grad_output : array_like
        The gradient of the loss with respect to correlate2d's result (its shape).
    in1, in2, mode, boundary, fillvalue
        As in :func:`fastcorr.correlate2d`. The fill value is a constant: it has no gradient,
        and samples that ``wrap`` / ``symm`` copy receive the gradient of every copy.
    output_mask : (bool, bool)
        Which gradients to compute; the other is returned as None.
    method, backend, stream
        As in :func:`conv2d_backward`.

    Returns
    -------
    grad_in1 : ndarray, shape of ``in1``, or None
    grad_in2 : ndarray, shape of ``in2``, or None
    """
    return _image_backward(grad_output, in1, in2, mode, boundary, fillvalue, output_mask,
                           method, backend, stream, convolve=False)


def convolve2d_backward(grad_output, in1, in2, mode="full", boundary="fill", fillvalue=0, *,
                        output_mask=(True, True), method="auto", backend=None, stream=None):
    """Gradients of :func:`fastcorr.convolve2d` with respect to ``in1`` and ``in2``; arguments
    and results as in :func:`correlate2d_backward`."""
    return _image_backward(grad_output, in1, in2, mode, boundary, fillvalue, output_mask,
                           method, backend, stream, convolve=True)
