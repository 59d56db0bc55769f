"""The public functions: SciPy's 2-D correlate/convolve and torch's conv2d, one contract for
every backend.

Data flows one way: arguments are checked and planned in :mod:`fastcorr._validate`, the backend
is chosen in :mod:`fastcorr.dispatch`, and the backend's kernel fills the result.
"""

import numpy as np

from . import _validate as v
from ._docs import fill_doc
from .dispatch import check_stream, resolve


def finish(result):
    """A result as the caller receives it: host results as they are; GPU results exported
    (CuPy in: CuPy out, torch in: torch out, NumPy in: NumPy out)."""
    export = getattr(result, "_fastcorr_export", None)
    return result if export is None else export()


def run_forward(backend, plan, x, weight, bias, out, stream=None, method="auto"):
    """The forward pass of ``plan`` on ``backend``: the result allocated (or the caller's
    ``out=`` used), the operands made C-contiguous in ``plan.dtype``, the implementation
    chosen by the backend's table (:mod:`fastcorr._select`), the result returned.

    ``x`` and ``weight`` are NCHW-shaped operands as ``backend.read`` returned them; ``out`` is
    the caller's checked array (any shape with ``plan.out_shape``'s size) or None.
    """
    with backend.Call(stream, (x, weight, bias, out)) as call:
        result = call.output(out, plan.out_shape, plan.dtype)
        if result.size:
            x, weight, bias = (call.prepare(a, plan.dtype) for a in (x, weight, bias))
            impl = backend.TABLES["forward"].select(plan, method, call.operands(x, weight))
            impl.run(x, weight, bias, result, plan, *getattr(call, "kernel_args", ()))
        return call.finish(result)


class ImageOperands:
    """The 2-D arguments of correlate2d/convolve2d as the plan's image and kernel.

    In "valid" mode with the larger array second, SciPy swaps the arguments: convolution
    commutes, and the correlation is the swapped one reversed, which is the correlation of the
    reversed pair. Convolution flips the kernel. ``sources`` records, for the image and the
    kernel, which argument (0 or 1) each came from and whether it was reversed, so that
    gradients can be returned to the arguments.
    """

    def __init__(self, in1, in2, mode, boundary, fillvalue, *, convolve, extra_dtypes=(),
                 read=v.as_real_array):
        a = read(in1, "in1")
        b = read(in2, "in2")
        v.check_ndim(a.shape, "in1", (2,), "a 2-D array (H, W)")
        v.check_ndim(b.shape, "in2", (2,), "a 2-D array (kH, kW)")
        self.inputs = (a, b)
        self.plan, swapped = v.plan_correlate2d(a.shape, b.shape, mode, boundary, fillvalue,
                                                v.result_dtype(a.dtype, b.dtype,
                                                               *extra_dtypes),
                                                convolve=convolve)
        image, kernel = ((1, not convolve), (0, True)) if swapped else ((0, False), (1, convolve))
        self.sources = (image, kernel)
        self.image, self.kernel = (_reversed(self.inputs[k], rev) for k, rev in self.sources)

    def to_arguments(self, grad_image, grad_kernel):
        """Map gradients with respect to the image and kernel onto ``(in1, in2)``."""
        grads = [None, None]
        for grad, (k, rev) in zip((grad_image, grad_kernel), self.sources):
            grads[k] = None if grad is None else _reversed(grad, rev)
        return tuple(grads)


def _reversed(a, flag):
    return a[::-1, ::-1] if flag else a


def _image_correlation(in1, in2, mode, boundary, fillvalue, backend, out, stream, method, *,
                       convolve):
    backend = resolve(backend, in1, in2, out)
    check_stream(backend, stream)
    method = v.check_method(method)
    ops = ImageOperands(in1, in2, mode, boundary, fillvalue, convolve=convolve,
                        read=backend.read)
    out = backend.check_out(out, ops.plan.out_shape[2:], ops.plan.dtype, ops.inputs)
    result = run_forward(backend, ops.plan, ops.image[None, None], ops.kernel[None, None], None,
                         out, stream, method)
    return finish(result[0, 0]) if out is None else out


@fill_doc
def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
                backend=None, out=None, stream=None):
    """Cross-correlate two 2-D arrays, as :func:`scipy.signal.correlate2d` does for real input.

    ``out[i, j] = sum_{p, q} in1[i + p - o_h, j + q - o_w] * in2[p, q]`` with the offsets
    ``o`` set by ``mode`` and samples outside ``in1`` given by ``boundary``.

    Parameters
    ----------
    in1 : array_like, shape (H, W)
        The image: real numbers (bool, integer, float32 or float64; float16 is computed in
        float32).
    in2 : array_like, shape (kH, kW)
        The kernel, likewise real.
    mode : {"full", "valid", "same"}
        Output shape ``(H + kH - 1, W + kW - 1)``, ``(H - kH + 1, W - kW + 1)`` or ``(H, W)``
        (centred as SciPy centres it). In "valid" mode one array must be at least as large as
        the other in every dimension; if ``in2`` is the larger, the two are swapped as in SciPy.
    boundary : {"fill", "wrap", "symm"}
        Samples outside ``in1``: ``fillvalue``, periodic, or mirrored with the edge repeated.
        SciPy's other names ``"pad"``, ``"circular"`` and ``"symmetric"`` are accepted too.
    fillvalue : float
        The value outside ``in1`` with ``boundary="fill"`` (a real scalar).
    {{method}}
    {{backend}}
    {{out}}
    {{stream}}

    Returns
    -------
    ndarray, or a device array of the inputs' library
        Shape as ``mode`` says; dtype float32 or float64, the promotion of the inputs' dtypes
        (see Notes). On the GPU path: NumPy when every input was NumPy (one copy each way),
        else on the device (CuPy in: CuPy out; torch in: torch out; otherwise a Numba device
        array). With ``out=``, ``out`` itself.

    Raises
    ------
    ValueError
        If ``mode``, ``boundary``, ``method`` or ``backend`` is not one of its choices;
        ``fillvalue`` is not a real scalar (or is beyond float64's range); ``in1`` or ``in2``
        is not 2-D or is empty; in "valid" mode neither array is at least as large as the
        other in every dimension; ``out`` has the wrong shape or dtype, is not a writeable
        C-contiguous array, or shares memory with an input; ``stream`` is given to a host
        backend; or ``method="fft"`` cannot compute the call (an input holds NaN or
        infinity, or the transforms would not fit in memory).
    TypeError
        If ``in1`` or ``in2`` cannot be read as a real numeric array (complex, object or
        string data, ragged lists); ``out`` is not a ``numpy.ndarray`` on a host backend; or
        an input is a CUDA device array and ``backend`` is a host backend.
    {{unavailable}}

    See Also
    --------
    convolve2d : The same with ``in2`` flipped.
    corr2d : The "valid" correlation only.
    conv2d : Batched, multi-channel correlation (torch's layer).
    correlate2d_backward : The gradients with respect to ``in1`` and ``in2``.
    choose_method : Which method ``method="auto"`` takes.
    scipy.signal.correlate2d : SciPy's counterpart (which also takes complex input).

    Notes
    -----
    In "valid" mode with the larger array second, SciPy swaps the arguments; so does this
    function: the result is the correlation of the larger with the smaller, reversed in both
    axes, of shape ``(kH - H + 1, kW - W + 1)``.

    {{determinism}}

    {{dtypes}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> image = np.arange(9.0).reshape(3, 3)
    >>> kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    >>> fastcorr.correlate2d(image, kernel)
    array([[ 0., -1., -2.,  0.],
           [-3., -4., -4.,  2.],
           [-6., -4., -4.,  5.],
           [ 0.,  6.,  7.,  8.]])
    >>> fastcorr.correlate2d(image, kernel, "valid")
    array([[-4., -4.],
           [-4., -4.]])
    >>> fastcorr.correlate2d(image, kernel, "same", boundary="wrap")
    array([[-4., -4., -1.],
           [-4., -4., -1.],
           [ 5.,  5.,  8.]])

    The larger array second, in "valid" mode: swapped, as SciPy swaps it.

    >>> fastcorr.correlate2d(kernel, image, "valid")
    array([[-4., -4.],
           [-4., -4.]])

    float32 inputs give a float32 result; ``out=`` receives it:

    >>> out = np.empty((2, 2), dtype=np.float32)
    >>> y = fastcorr.correlate2d(image.astype(np.float32), kernel.astype(np.float32),
    ...                          "valid", out=out)
    >>> y is out, y.dtype
    (True, dtype('float32'))
    """
    return _image_correlation(in1, in2, mode, boundary, fillvalue, backend, out, stream,
                              method, convolve=False)


@fill_doc
def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
               backend=None, out=None, stream=None):
    """Convolve two 2-D arrays, as :func:`scipy.signal.convolve2d` does for real input.

    ``out[i, j] = sum_{p, q} in1[i - p + o_h, j - q + o_w] * in2[p, q]``: convolution is
    correlation with ``in2`` flipped in both axes, and ``mode`` centres "same" on the full
    convolution as SciPy does.

    Parameters
    ----------
    in1 : array_like, shape (H, W)
        The image: real numbers.
    in2 : array_like, shape (kH, kW)
        The kernel, likewise real.
    mode : {"full", "valid", "same"}
        Output shape ``(H + kH - 1, W + kW - 1)``, ``(H - kH + 1, W - kW + 1)`` or ``(H, W)``.
        In "valid" mode one array must be at least as large as the other in every dimension;
        if ``in2`` is the larger, the two are swapped (convolution commutes).
    boundary : {"fill", "wrap", "symm"}
        Samples outside ``in1``: ``fillvalue``, periodic, or mirrored with the edge repeated.
        SciPy's other names ``"pad"``, ``"circular"`` and ``"symmetric"`` are accepted too.
    fillvalue : float
        The value outside ``in1`` with ``boundary="fill"`` (a real scalar).
    {{method}}
    {{backend}}
    {{out}}
    {{stream}}

    Returns
    -------
    ndarray, or a device array of the inputs' library
        Shape as ``mode`` says; dtype float32 or float64, as in :func:`correlate2d`.

    Raises
    ------
    ValueError, TypeError, BackendUnavailableError
        For the arguments and reasons listed in :func:`correlate2d`.

    See Also
    --------
    correlate2d : The same without the flip (its Raises lists every check).
    convolve2d_backward : The gradients with respect to ``in1`` and ``in2``.
    conv2d : Batched, multi-channel correlation (torch's layer).
    scipy.signal.convolve2d : SciPy's counterpart (which also takes complex input).

    Notes
    -----
    {{determinism}}

    {{dtypes}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> image = np.arange(9.0).reshape(3, 3)
    >>> kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    >>> fastcorr.convolve2d(image, kernel, "valid")
    array([[4., 4.],
           [4., 4.]])
    >>> fastcorr.convolve2d(image, kernel).shape
    (4, 4)

    It is the correlation with the kernel flipped in both axes (in "same" mode, centred on
    the full convolution, which for an even kernel is not the flipped correlation's centre):

    >>> np.array_equal(fastcorr.convolve2d(image, kernel),
    ...                fastcorr.correlate2d(image, kernel[::-1, ::-1]))
    True
    """
    return _image_correlation(in1, in2, mode, boundary, fillvalue, backend, out, stream,
                              method, convolve=True)


@fill_doc
def corr2d(X, K, *, method="auto", backend=None, out=None, stream=None):
    """The source material's ``corr2d``: the valid 2-D cross-correlation of ``X`` with ``K``.

    ``Y[i, j] = sum_{p, q} X[i + p, j + q] * K[p, q]``, as
    ``correlate2d(X, K, "valid")`` computes it, but the kernel is never swapped: ``K`` must
    fit inside ``X``.

    Parameters
    ----------
    X : array_like, shape (H, W)
        The image: real numbers, non-empty.
    K : array_like, shape (kH, kW)
        The kernel: non-empty, no larger than ``X`` in either dimension.
    {{method}}
    {{backend}}
    {{out}}
    {{stream}}

    Returns
    -------
    ndarray, shape (H - kH + 1, W - kW + 1)
        float32 or float64, as in :func:`correlate2d` (a device array on the GPU path, as
        there).

    Raises
    ------
    ValueError
        If ``backend`` is not one of its choices (reported first); ``X`` or ``K`` is not 2-D
        or is empty; ``K`` is larger than ``X`` in either dimension; or ``method``, ``out`` or
        ``stream`` is refused, as in :func:`correlate2d`.
    TypeError
        If ``X`` or ``K`` cannot be read as a real numeric array, or as in
        :func:`correlate2d`.
    {{unavailable}}

    See Also
    --------
    correlate2d : Every mode and boundary.
    conv2d : Batched, multi-channel correlation.
    scipy.signal.correlate2d : ``correlate2d(X, K, "valid")`` for real input.

    Notes
    -----
    {{determinism}}

    {{dtypes}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.corr2d(np.arange(9.0).reshape(3, 3), np.arange(4.0).reshape(2, 2))
    array([[19., 25.],
           [37., 43.]])

    Integers are computed in float64:

    >>> fastcorr.corr2d(np.arange(9).reshape(3, 3), [[1, 1]])
    array([[ 1.,  3.],
           [ 7.,  9.],
           [13., 15.]])
    """
    read = resolve(backend, X, K, out).read  # a bad backend is reported first
    shapes = []
    for a, name, what in ((X, "X", "(H, W)"), (K, "K", "(kH, kW)")):
        shape = tuple(read(a, name).shape)
        v.check_ndim(shape, name, (2,), f"a 2-D array {what}")
        if min(shape) == 0:
            raise ValueError(f"{name}: expected a non-empty 2-D array, got shape {shape}")
        shapes.append(shape)
    if any(k > x for x, k in zip(*shapes)):
        raise ValueError(f"K: kernel of shape {shapes[1]} is larger than X of shape {shapes[0]}")
    return correlate2d(X, K, "valid", method=method, backend=backend, out=out, stream=stream)


class LayerOperands:
    """The arguments of conv2d read and checked, with their plan.

    ``input_shape``, when given, stands in for ``input`` (the gradient functions know only the
    shape of one operand); likewise ``weight_shape`` for ``weight``.
    """

    def __init__(self, input, weight, bias, stride, padding, dilation, groups, padding_mode, *,
                 input_shape=None, weight_shape=None, extra_dtypes=(), read=v.as_real_array):
        self.input = None if input_shape is not None else read(input, "input")
        self.weight = None if weight_shape is not None else read(weight, "weight")
        self.bias = None if bias is None else read(bias, "bias")
        if self.input is None:
            x_name, x_shape = "input_shape", v.shape_tuple(input_shape, "input_shape")
        else:
            x_name, x_shape = "input", self.input.shape
        if self.weight is None:
            w_name, w_shape = "weight_shape", v.shape_tuple(weight_shape, "weight_shape")
        else:
            w_name, w_shape = "weight", self.weight.shape
        v.check_ndim(x_shape, x_name, (3, 4), "(N, C_in, H, W) or unbatched (C_in, H, W)")
        v.check_ndim(w_shape, w_name, (4,), "(C_out, C_in / groups, kH, kW)")
        if self.bias is not None:
            v.check_ndim(self.bias.shape, "bias", (1,), "(C_out,)")
        present = [a for a in (self.input, self.weight, self.bias) if a is not None]
        dtypes = [a.dtype for a in present] + list(extra_dtypes)
        self.arrays = present
        self.unbatched = len(x_shape) == 3
        self.plan = v.plan_conv2d((1,) + tuple(x_shape) if self.unbatched else tuple(x_shape),
                                  w_shape, None if bias is None else self.bias.shape, stride,
                                  padding, dilation, groups, padding_mode,
                                  v.result_dtype(*dtypes))

    def batched(self, a):
        """``a`` with the batch axis the plan has (added for unbatched input)."""
        return a[None] if self.unbatched else a

    def unbatch(self, a):
        """Undo :meth:`batched` on a result."""
        return a[0] if self.unbatched and a is not None else a


@fill_doc
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, method="auto", backend=None, out=None, stream=None):
    """2-D correlation layer with the semantics of :func:`torch.nn.functional.conv2d`.

    ``out[n, co, i, j] = bias[co] + sum_{ci, p, q} weight[co, ci, p, q]
    * xpad[n, g * C_in / groups + ci, i * sh + p * dh, j * sw + q * dw]``, where ``g`` is the
    group of output channel ``co`` and ``xpad`` is the input padded as ``padding`` and
    ``padding_mode`` say (a cross-correlation, as in torch).

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
        The batch (or one unbatched sample): real numbers.
    weight : array_like, shape (C_out, C_in / groups, kH, kW)
        The filters.
    bias : array_like, shape (C_out,), optional
        Added to each output channel.
    stride, dilation : int or (int, int)
        Positive: the step between outputs and between the kernel's taps, as ``(sh, sw)`` and
        ``(dh, dw)``.
    padding : int, (int, int), "valid" or "same"
        Non-negative: rows on top and bottom, columns on left and right. "valid" is no
        padding; "same" needs stride 1 and, when the total is odd, pads one more at the bottom
        and right, as torch does.
    groups : int
        Positive; divides ``C_in`` and ``C_out``. ``groups == C_in`` is a depthwise layer.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        How the padding is filled, as :class:`torch.nn.Conv2d` fills it. "reflect" padding
        must be smaller than ``H`` and ``W``, "circular" padding at most ``H`` and ``W``.
    {{method}}
    {{backend}}
    {{out}}
    {{stream}}

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        Unbatched for unbatched ``input``; a device array on the GPU path, as in
        :func:`correlate2d`. ``H_out = (H + pad_top + pad_bottom - dilation *
        (kH - 1) - 1) // stride + 1``, and likewise ``W_out``. dtype float32 or float64: the
        promotion of the dtypes of ``input``, ``weight`` and ``bias`` (see Notes). With
        ``out=``, ``out`` itself.

    Raises
    ------
    ValueError
        If ``input`` is not 3-D or 4-D, ``weight`` not 4-D or ``bias`` not 1-D; ``input`` or
        ``weight`` is empty; ``groups`` is below 1 or does not divide ``C_in`` and ``C_out``,
        or ``weight.shape[1] * groups != C_in``; ``bias`` is not of shape ``(C_out,)``;
        ``stride`` or ``dilation`` is below 1, ``padding`` below 0, a pair is not of length 2,
        or a value exceeds ``2**31 - 1``; ``padding`` is a string other than "valid" or
        "same", or "same" with a stride other than 1; ``padding_mode``, ``method`` or
        ``backend`` is not one of its choices; reflect or circular padding is too large for
        the input; the dilated kernel is larger than the padded input; the result would have
        more than ``2**47`` elements; ``out`` has the wrong shape or dtype, is not a writeable
        C-contiguous array, or shares memory with an input; ``stream`` is given to a host
        backend; or ``method="fft"`` cannot compute the call (a stride other than 1, an input
        with NaN or infinity, transforms too large for memory).
    TypeError
        If ``input``, ``weight`` or ``bias`` cannot be read as a real numeric array (complex,
        object or string data); ``stride``, ``padding``, ``dilation`` or ``groups`` holds
        something other than an int (bools included); ``out`` is not a ``numpy.ndarray`` on a
        host backend; or an input is a CUDA device array and ``backend`` is a host backend.
    {{unavailable}}

    See Also
    --------
    conv2d_backward : The gradients with respect to input, weight and bias.
    conv2d_input, conv2d_weight : One gradient each, as ``torch.nn.grad`` computes them.
    correlate2d : One image and one kernel, SciPy's modes and boundaries.
    fastcorr.nn.Conv2d : The layer as a module.
    torch.nn.functional.conv2d : torch's counterpart.
    torch.nn.Conv2d : torch's layer, whose ``padding_mode`` this function takes.

    Notes
    -----
    With ``method="fft"`` a dilated kernel is transformed as the kernel with zeros between
    its taps.

    {{determinism}}

    {{dtypes}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((2, 1, 2, 2))
    >>> fastcorr.conv2d(x, w, bias=np.array([0.0, 100.0]))
    array([[[[ 10.,  14.,  18.],
             [ 26.,  30.,  34.],
             [ 42.,  46.,  50.]],
    <BLANKLINE>
            [[110., 114., 118.],
             [126., 130., 134.],
             [142., 146., 150.]]]])

    Stride and padding: ``(8 + 2 * 1 - 3) // 2 + 1 = 4``.

    >>> fastcorr.conv2d(np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3)), stride=2, padding=1).shape
    (2, 4, 4, 4)

    An unbatched float32 depthwise layer (two filters per channel) keeps its size with
    ``padding="same"``:

    >>> y = fastcorr.conv2d(np.ones((3, 8, 8), np.float32), np.ones((6, 1, 3, 3), np.float32),
    ...                     groups=3, padding="same")
    >>> y.shape, y.dtype
    ((6, 8, 8), dtype('float32'))
    """
    backend = resolve(backend, input, weight, bias, out)
    check_stream(backend, stream)
    method = v.check_method(method)
    ops = LayerOperands(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                        read=backend.read)
    out_shape = ops.plan.out_shape[1:] if ops.unbatched else ops.plan.out_shape
    out = backend.check_out(out, out_shape, ops.plan.dtype, ops.arrays)
    result = run_forward(backend, ops.plan, ops.batched(ops.input), ops.weight, ops.bias, out,
                         stream, method)
    return finish(ops.unbatch(result)) if out is None else out


@fill_doc
def choose_method(in1, in2, mode="full", *, measure=False, backend=None):
    """The method ``method="auto"`` uses for ``correlate2d(in1, in2, mode)``: "direct" or
    "fft", as :func:`scipy.signal.choose_conv_method` answers for SciPy.

    Parameters
    ----------
    in1 : array_like, shape (H, W)
        The image, as in :func:`correlate2d`. Its values matter: inputs with NaN or infinity
        are always computed directly.
    in2 : array_like, shape (kH, kW)
        The kernel, likewise.
    mode : {"full", "valid", "same"}
        As in :func:`correlate2d`.
    measure : bool
        Time both methods on these inputs (medians of a few calls, after one untimed call of
        each) and answer with the faster, instead of the prediction of the cost model
        (:mod:`fastcorr.cpu.cost`). A method the backend or the inputs refuse is left out.
    {{backend}}

    Returns
    -------
    method : str
        "direct" or "fft".
    times : dict of str to float
        Only with ``measure=True`` (the result is then the pair ``(method, times)``): seconds
        per call of each method that ran.

    Raises
    ------
    ValueError
        If ``mode`` or ``backend`` is not one of its choices, ``in1`` or ``in2`` is not 2-D
        or is empty, or in "valid" mode neither is at least as large as the other.
    TypeError
        If ``in1`` or ``in2`` cannot be read as a real numeric array, or is a CUDA device
        array and ``backend`` is a host backend.
    {{unavailable}}

    See Also
    --------
    correlate2d, convolve2d, conv2d : Their ``method="auto"`` makes this choice.
    trace : Which implementation (and method) a call did run.
    scipy.signal.choose_conv_method : SciPy's counterpart.

    Notes
    -----
    The answer without ``measure`` depends on the shapes, the dtype, the number of threads
    (:func:`fastcorr.get_num_threads`) and whether the inputs are finite; the "reference"
    backend always answers "direct".

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.choose_method(np.ones((64, 64)), np.ones((3, 3)))
    'direct'
    >>> fastcorr.choose_method(np.ones((2048, 2048)), np.ones((63, 63)), "same")
    'fft'
    >>> image = np.ones((64, 64))
    >>> image[0, 0] = np.nan
    >>> fastcorr.choose_method(image, np.ones((63, 63)))
    'direct'
    >>> method, times = fastcorr.choose_method(np.ones((32, 32)), np.ones((5, 5)), measure=True)
    >>> sorted(times), method in times
    (['direct', 'fft'], True)
    """
    resolved = resolve(backend, in1, in2)
    ops = ImageOperands(in1, in2, mode, "fill", 0, convolve=False, read=resolved.read)
    table = resolved.TABLES["forward"]
    if not measure:
        with resolved.Call(None, ops.inputs) as call:
            operands = call.operands(ops.image, ops.kernel)
            return table.select(ops.plan, "auto", operands).method
    import time

    times = {}
    for method in ("direct", "fft"):
        try:
            correlate2d(in1, in2, mode, method=method, backend=backend)
        except ValueError:  # the backend (or the inputs) cannot take this method
            continue
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            correlate2d(in1, in2, mode, method=method, backend=backend)
            samples.append(time.perf_counter() - start)
        times[method] = sorted(samples)[1]
    return min(times, key=times.get), times
