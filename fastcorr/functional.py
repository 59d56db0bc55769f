"""The public functions: SciPy's 2-D correlate/convolve and torch's conv2d, one contract for
every backend.

Data flows one way: arguments are checked and planned in :mod:`fastcorr._validate`, the backend
is chosen in :mod:`fastcorr.dispatch`, and the backend's kernel fills the result.
"""

import numpy as np

from . import _validate as v
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
    call = backend.Call(stream, (x, weight, bias))
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


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
                backend=None, out=None, stream=None):
    """Cross-correlate two 2-D arrays, as :func:`scipy.signal.correlate2d` does for real input.

    ``out[i, j] = sum_{p, q} in1[i + p - o_h, j + q - o_w] * in2[p, q]`` with the offsets
    ``o`` set by ``mode`` and samples outside ``in1`` given by ``boundary``.

    Parameters
    ----------
    in1 : array_like, shape (H, W)
        The image.
    in2 : array_like, shape (kH, kW)
        The kernel.
    mode : {"full", "valid", "same"}
        Output shape ``(H + kH - 1, W + kW - 1)``, ``(H - kH + 1, W - kW + 1)`` or ``(H, W)``
        (centred as SciPy centres it). In "valid" mode one array must be at least as large as
        the other in every dimension; if ``in2`` is the larger, the two are swapped as in SciPy.
    boundary : {"fill", "wrap", "symm"}
        Samples outside ``in1``: ``fillvalue``, periodic, or mirrored with the edge repeated.
    fillvalue : float
        The value outside ``in1`` with ``boundary="fill"``.
    method : {"auto", "direct", "fft"}
        "direct" sums each output's terms in the taps' order (deterministic; exact up to the
        rounding of that order); "fft" goes through the Fourier domain (stride 1 only; error
        bounded relative to ``max|in1| * sum|in2|``: about 1e-7 in float32, 1e-15 in float64;
        inputs with NaN or infinity are refused); "auto" takes whichever
        :func:`fastcorr.choose_method` predicts faster (always "direct" for non-finite
        inputs). :func:`fastcorr.trace` shows which implementation ran.
    backend : {None, "auto", "cpu", "cuda", "reference"}
        Where to compute; None and "auto" follow the data (device arrays go to "cuda").
    out : ndarray or device array, optional
        C-contiguous array of the result's shape and dtype to write into.
    stream : CUDA stream, optional
        ``backend="cuda"`` only: the stream to run on (Numba, CuPy or torch stream, or a
        handle); None is the default stream. Host backends raise ValueError if one is given.

    Returns
    -------
    ndarray, or a device array of the inputs' library
        float32 if both inputs are at most float32, else float64 (integers count as float64).
        On the GPU path: NumPy when every input was NumPy (one copy each way), else on the
        device (CuPy in: CuPy out; torch in: torch out; otherwise a Numba device array).
    """
    return _image_correlation(in1, in2, mode, boundary, fillvalue, backend, out, stream,
                              method, convolve=False)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
               backend=None, out=None, stream=None):
    """Convolve two 2-D arrays, as :func:`scipy.signal.convolve2d` does for real input.

    Convolution is correlation with ``in2`` flipped in both axes; ``mode`` centres "same" on
    the full convolution as SciPy does. Arguments and result as in :func:`correlate2d`.
    """
    return _image_correlation(in1, in2, mode, boundary, fillvalue, backend, out, stream,
                              method, convolve=True)


def corr2d(X, K, *, method="auto", backend=None, out=None, stream=None):
    """The source material's ``corr2d``: the valid 2-D cross-correlation of ``X`` with ``K``.

    Parameters
    ----------
    X : array_like, shape (H, W)
    K : array_like, shape (kH, kW), no larger than ``X`` in either dimension

    Returns
    -------
    ndarray, shape (H - kH + 1, W - kW + 1)

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.corr2d(np.arange(9.0).reshape(3, 3), np.arange(4.0).reshape(2, 2))
    array([[19., 25.],
           [37., 43.]])
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


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, method="auto", backend=None, out=None, stream=None):
    """2-D correlation layer with the semantics of :func:`torch.nn.functional.conv2d`.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, shape (C_out, C_in / groups, kH, kW)
    bias : array_like, shape (C_out,), optional
    stride, dilation : int or (int, int)
        Positive.
    padding : int, (int, int), "valid" or "same"
        Non-negative; "same" needs stride 1 and, when the total is odd, pads one more at the
        bottom and right, as torch does.
    groups : int
        Divides ``C_in`` and ``C_out``; ``groups == C_in`` is a depthwise layer.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        How the padding is filled, as :class:`torch.nn.Conv2d` fills it.
    method : {"auto", "direct", "fft"}
        As in :func:`correlate2d` (the FFT needs stride 1; dilation is a dilated kernel).
    backend : {None, "auto", "cpu", "cuda", "reference"}
        Where to compute; None and "auto" follow the data (device arrays go to "cuda").
    out : ndarray or device array, optional
        C-contiguous array of the result's shape and dtype to write into.
    stream : CUDA stream, optional
        ``backend="cuda"`` only, as in :func:`correlate2d`.

    Returns
    -------
    ndarray (or a device array, as in :func:`correlate2d`), shape (N, C_out, H_out, W_out)
    or (C_out, H_out, W_out)
        ``H_out = (H + pad_top + pad_bottom - dilation * (kH - 1) - 1) // stride + 1``, and
        likewise ``W_out``.
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


def choose_method(in1, in2, mode="full", *, measure=False, backend=None):
    """The method ``method="auto"`` uses for ``correlate2d(in1, in2, mode)``: "direct" or
    "fft", as :func:`scipy.signal.choose_conv_method` answers for SciPy.

    Parameters
    ----------
    in1, in2 : array_like, shape (H, W) and (kH, kW)
        As in :func:`correlate2d` (their values matter: inputs with NaN or infinity are
        always computed directly).
    mode : {"full", "valid", "same"}
    measure : bool
        Time both methods on these inputs (medians of a few calls, after one untimed call of
        each) and answer with the faster, instead of the prediction of the cost model
        (:mod:`fastcorr.cpu.cost`).
    backend : {None, "auto", "cpu", "cuda", "reference"}

    Returns
    -------
    method : str
        "direct" or "fft".
    times : dict
        Only with ``measure=True``: seconds per call of each method.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> fastcorr.choose_method(np.ones((64, 64)), np.ones((3, 3)))
    'direct'
    >>> fastcorr.choose_method(np.ones((2048, 2048)), np.ones((63, 63)), "same")
    'fft'
    """
    resolved = resolve(backend, in1, in2)
    ops = ImageOperands(in1, in2, mode, "fill", 0, convolve=False, read=resolved.read)
    table = resolved.TABLES["forward"]
    call = resolved.Call(None, ops.inputs)
    if not measure:
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
