"""Gradients of the public functions: conv2d as torch autograd and ``torch.nn.grad`` give them,
and correlate2d/convolve2d with respect to both arguments.

The same plans as the forward functions (so the same checks and shapes), then the backend's
``grad_input`` / ``grad_weight``; the bias gradient is a sum over batch and space.
"""

from . import _validate as v
from ._docs import fill_doc
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
    with backend.Call(stream, (grad_out, x, weight)) as call:
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


@fill_doc
def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", *, output_mask=(True, True, True), method="auto",
                    backend=None, stream=None):
    """Gradients of :func:`fastcorr.conv2d` with respect to input, weight and bias.

    Given ``grad_output``, the gradient of a loss with respect to
    ``conv2d(input, weight, bias, stride, padding, dilation, groups, padding_mode)``, returns
    the loss's gradients with respect to ``input``, ``weight`` and ``bias`` (the bias itself
    is not needed: the gradients do not depend on it).

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        The gradient of the loss with respect to conv2d's output (unbatched when ``input``
        is).
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
        The forward pass's input.
    weight : array_like, shape (C_out, C_in / groups, kH, kW)
        The forward pass's weight.
    stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`. With reflect/replicate/circular padding, gradients
        that land on the padding are folded back onto the samples it copies.
    output_mask : (bool, bool, bool)
        Which of the three gradients to compute; the others are returned as None (as
        ``output_mask`` of ``torch.ops.aten.convolution_backward``).
    {{method}}
    {{backend}}
    {{stream}}

    Returns
    -------
    grad_input : ndarray, the shape of ``input``, or None
    grad_weight : ndarray, shape (C_out, C_in / groups, kH, kW), or None
    grad_bias : ndarray, shape (C_out,), or None
        dtype float32 or float64: the promotion of the dtypes of ``grad_output``, ``input``
        and ``weight`` (see Notes). On the GPU path, device arrays of the inputs' library
        unless every input was NumPy.

    Raises
    ------
    ValueError
        If ``grad_output`` does not have the shape of conv2d's result for these arguments;
        ``output_mask`` is not a tuple or list of three values;
        or any argument of :func:`fastcorr.conv2d` is refused as it refuses it (shapes,
        ``groups``, ``stride``, ``padding``, ``dilation``, ``padding_mode``, ``method``,
        ``backend``, ``stream``).
    TypeError
        If ``grad_output``, ``input`` or ``weight`` cannot be read as a real numeric array;
        ``stride``, ``padding``, ``dilation`` or ``groups`` holds something other than an
        int; or an input is a CUDA device array and ``backend`` is a host backend.
    {{unavailable}}

    See Also
    --------
    conv2d : The forward pass.
    conv2d_input, conv2d_weight : One gradient each, from the other operand's shape.
    fastcorr.nn.Conv2d : The layer whose backward pass this is.
    torch.nn.grad.conv2d_input, torch.nn.grad.conv2d_weight : torch's counterparts.

    Notes
    -----
    ``method`` applies to the input and weight gradients each (each chooses on its own); the
    bias gradient is always a sum over batch and space.

    {{determinism}}

    {{dtypes}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 2, 2))
    >>> g = np.ones((1, 1, 3, 3))  # the gradient of sum(conv2d(x, w))
    >>> grad_x, grad_w, grad_b = fastcorr.conv2d_backward(g, x, w)
    >>> grad_x[0, 0]
    array([[1., 2., 2., 1.],
           [2., 4., 4., 2.],
           [2., 4., 4., 2.],
           [1., 2., 2., 1.]])
    >>> grad_w
    array([[[[45., 54.],
             [81., 90.]]]])
    >>> grad_b
    array([9.])
    >>> fastcorr.conv2d_backward(g, x, w, output_mask=(False, False, True))
    (None, None, array([9.]))
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


@fill_doc
def conv2d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", *, method="auto", backend=None, stream=None):
    """The gradient of :func:`fastcorr.conv2d` with respect to its input, as
    :func:`torch.nn.grad.conv2d_input`.

    Parameters
    ----------
    input_shape : sequence of int
        The input's shape, ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
    weight : array_like, shape (C_out, C_in / groups, kH, kW)
        The forward pass's weight.
    grad_output : array_like, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        The gradient of the loss with respect to conv2d's output.
    stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`.
    {{method}}
    {{backend}}
    {{stream}}

    Returns
    -------
    ndarray, shape ``input_shape``
        dtype float32 or float64: the promotion of the dtypes of ``weight`` and
        ``grad_output``. On the GPU path, as in :func:`conv2d_backward`.

    Raises
    ------
    ValueError
        If ``grad_output`` does not have the shape of conv2d's result for these arguments;
        ``input_shape`` has a negative size, more than ``2**47`` elements, or not 3 or 4
        dimensions;
        or any argument of :func:`fastcorr.conv2d` is refused as it refuses it (shapes,
        ``groups``, ``stride``, ``padding``, ``dilation``, ``padding_mode``, ``method``,
        ``backend``, ``stream``).
    TypeError
        If ``weight`` or ``grad_output`` cannot be read as a real numeric array;
        ``input_shape`` is not a sequence of ints;
        ``stride``, ``padding``, ``dilation`` or ``groups`` holds something other than an
        int; or an input is a CUDA device array and ``backend`` is a host backend.
    {{unavailable}}

    See Also
    --------
    conv2d_backward : Every gradient, from both operands.
    conv2d_weight : The gradient with respect to the weight.
    torch.nn.grad.conv2d_input : torch's counterpart (the same argument order).

    Notes
    -----
    {{determinism}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> w = np.ones((1, 1, 2, 2))
    >>> g = np.ones((1, 1, 3, 3))
    >>> fastcorr.conv2d_input((1, 1, 4, 4), w, g)[0, 0]
    array([[1., 2., 2., 1.],
           [2., 4., 4., 2.],
           [2., 4., 4., 2.],
           [1., 2., 2., 1.]])
    >>> fastcorr.conv2d_input((3, 9, 9), np.ones((6, 3, 3, 3)), np.ones((6, 4, 4)), stride=2).shape
    (3, 9, 9)
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


@fill_doc
def conv2d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", *, method="auto", backend=None, stream=None):
    """The gradient of :func:`fastcorr.conv2d` with respect to its weight, as
    :func:`torch.nn.grad.conv2d_weight`.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
        The forward pass's input.
    weight_shape : sequence of int
        The weight's shape, ``(C_out, C_in / groups, kH, kW)``.
    grad_output : array_like, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        The gradient of the loss with respect to conv2d's output.
    stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`.
    {{method}}
    {{backend}}
    {{stream}}

    Returns
    -------
    ndarray, shape ``weight_shape``
        dtype float32 or float64: the promotion of the dtypes of ``input`` and
        ``grad_output``. On the GPU path, as in :func:`conv2d_backward`.

    Raises
    ------
    ValueError
        If ``grad_output`` does not have the shape of conv2d's result for these arguments;
        ``weight_shape`` has a negative size, more than ``2**47`` elements, or not 4
        dimensions;
        or any argument of :func:`fastcorr.conv2d` is refused as it refuses it (shapes,
        ``groups``, ``stride``, ``padding``, ``dilation``, ``padding_mode``, ``method``,
        ``backend``, ``stream``).
    TypeError
        If ``input`` or ``grad_output`` cannot be read as a real numeric array;
        ``weight_shape`` is not a sequence of ints;
        ``stride``, ``padding``, ``dilation`` or ``groups`` holds something other than an
        int; or an input is a CUDA device array and ``backend`` is a host backend.
    {{unavailable}}

    See Also
    --------
    conv2d_backward : Every gradient, from both operands.
    conv2d_input : The gradient with respect to the input.
    torch.nn.grad.conv2d_weight : torch's counterpart (the same argument order).

    Notes
    -----
    {{determinism}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> g = np.ones((1, 1, 3, 3))
    >>> fastcorr.conv2d_weight(x, (1, 1, 2, 2), g)
    array([[[[45., 54.],
             [81., 90.]]]])
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


@fill_doc
def correlate2d_backward(grad_output, in1, in2, mode="full", boundary="fill", fillvalue=0, *,
                         output_mask=(True, True), method="auto", backend=None, stream=None):
    """Gradients of :func:`fastcorr.correlate2d` with respect to ``in1`` and ``in2``.

    Parameters
    ----------
    grad_output : array_like
        The gradient of the loss with respect to correlate2d's result (its shape, as ``mode``
        gives it).
    in1 : array_like, shape (H, W)
        The forward pass's image.
    in2 : array_like, shape (kH, kW)
        The forward pass's kernel.
    mode, boundary, fillvalue
        As in :func:`fastcorr.correlate2d` ("valid" swaps as it does; each gradient is
        returned to its own argument). The fill value is a constant: it has no gradient, and
        samples that ``wrap`` / ``symm`` copy receive the gradient of every copy.
    output_mask : (bool, bool)
        Which gradients to compute; the other is returned as None.
    {{method}}
    {{backend}}
    {{stream}}

    Returns
    -------
    grad_in1 : ndarray, shape (H, W), or None
    grad_in2 : ndarray, shape (kH, kW), or None
        dtype float32 or float64: the promotion of the dtypes of ``grad_output``, ``in1`` and
        ``in2`` (see Notes). On the GPU path, device arrays of the inputs' library unless
        every input was NumPy.

    Raises
    ------
    ValueError
        If ``grad_output`` does not have the shape of the result for these arguments;
        ``output_mask`` is not a tuple or list of two values; or any argument of
        :func:`fastcorr.correlate2d` is refused as it refuses it (``mode``, ``boundary``,
        ``fillvalue``, the arrays' shapes, ``method``, ``backend``, ``stream``).
    TypeError
        If ``grad_output``, ``in1`` or ``in2`` cannot be read as a real numeric array, or is
        a CUDA device array and ``backend`` is a host backend.
    {{unavailable}}

    See Also
    --------
    correlate2d : The forward pass.
    convolve2d_backward : The gradients of :func:`fastcorr.convolve2d`.
    conv2d_backward : The gradients of the batched layer.
    scipy.signal.correlate2d : Whose result these are the gradients of (SciPy has no
        gradient of its own).

    Notes
    -----
    {{determinism}}

    {{dtypes}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> image = np.arange(9.0).reshape(3, 3)
    >>> kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    >>> g = np.ones((2, 2))  # the gradient of sum(correlate2d(image, kernel, "valid"))
    >>> grad_image, grad_kernel = fastcorr.correlate2d_backward(g, image, kernel, "valid")
    >>> grad_image
    array([[ 1.,  1.,  0.],
           [ 1.,  0., -1.],
           [ 0., -1., -1.]])
    >>> grad_kernel
    array([[ 8., 12.],
           [20., 24.]])
    >>> grad_image, grad_kernel = fastcorr.correlate2d_backward(g, image, kernel, "valid",
    ...                                                         output_mask=(False, True))
    >>> grad_image is None, grad_kernel.shape
    (True, (2, 2))
    """
    return _image_backward(grad_output, in1, in2, mode, boundary, fillvalue, output_mask,
                           method, backend, stream, convolve=False)


@fill_doc
def convolve2d_backward(grad_output, in1, in2, mode="full", boundary="fill", fillvalue=0, *,
                        output_mask=(True, True), method="auto", backend=None, stream=None):
    """Gradients of :func:`fastcorr.convolve2d` with respect to ``in1`` and ``in2``.

    Parameters
    ----------
    grad_output : array_like
        The gradient of the loss with respect to convolve2d's result (its shape, as ``mode``
        gives it).
    in1 : array_like, shape (H, W)
        The forward pass's image.
    in2 : array_like, shape (kH, kW)
        The forward pass's kernel.
    mode, boundary, fillvalue
        As in :func:`fastcorr.convolve2d`; the fill value has no gradient, as in
        :func:`correlate2d_backward`.
    output_mask : (bool, bool)
        Which gradients to compute; the other is returned as None.
    {{method}}
    {{backend}}
    {{stream}}

    Returns
    -------
    grad_in1 : ndarray, shape (H, W), or None
    grad_in2 : ndarray, shape (kH, kW), or None
        dtype and GPU results as in :func:`correlate2d_backward`.

    Raises
    ------
    ValueError
        If ``grad_output`` does not have the shape of the result for these arguments;
        ``output_mask`` is not a tuple or list of two values; or any argument of
        :func:`fastcorr.convolve2d` is refused as it refuses it (``mode``, ``boundary``,
        ``fillvalue``, the arrays' shapes, ``method``, ``backend``, ``stream``).
    TypeError
        If ``grad_output``, ``in1`` or ``in2`` cannot be read as a real numeric array, or is
        a CUDA device array and ``backend`` is a host backend.
    {{unavailable}}

    See Also
    --------
    convolve2d : The forward pass.
    correlate2d_backward : The gradients of :func:`fastcorr.correlate2d`.
    scipy.signal.convolve2d : Whose result these are the gradients of.

    Notes
    -----
    {{determinism}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> image = np.arange(9.0).reshape(3, 3)
    >>> kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    >>> grad_image, grad_kernel = fastcorr.convolve2d_backward(np.ones((2, 2)), image, kernel,
    ...                                                        "valid")
    >>> grad_image
    array([[-1., -1.,  0.],
           [-1.,  0.,  1.],
           [ 0.,  1.,  1.]])
    >>> grad_kernel
    array([[24., 20.],
           [12.,  8.]])
    """
    return _image_backward(grad_output, in1, in2, mode, boundary, fillvalue, output_mask,
                           method, backend, stream, convolve=True)
