"""The public functions: SciPy's 2-D correlate/convolve and torch's conv2d, one contract for
every backend.

Data flows one way: arguments are checked and planned in :mod:`fastcorr._validate`, the backend
is chosen in :mod:`fastcorr.dispatch`, and the backend's kernel fills the result.
"""

import numpy as np

from . import _validate as v
from .dispatch import resolve


def _run(backend, plan, x, weight, bias, out):
    """Allocate or check the result, make the operands C-contiguous in ``plan.dtype``, compute.

    ``x`` and ``weight`` are NCHW-shaped views; ``out`` is the caller's array (any shape with
    ``plan.out_shape``'s size) or None. Returns the 4-D result.
    """
    result = np.empty(plan.out_shape, dtype=plan.dtype) if out is None else out.reshape(plan.out_shape)
    if result.size == 0:
        return result
    x = np.ascontiguousarray(x, dtype=plan.dtype)
    weight = np.ascontiguousarray(weight, dtype=plan.dtype)
    if bias is not None:
        bias = np.ascontiguousarray(bias, dtype=plan.dtype)
    backend.forward(x, weight, bias, result, plan)
    return result


def _image_correlation(in1, in2, mode, boundary, fillvalue, backend, out, *, convolve):
    backend = resolve(backend, in1, in2, out)
    image = v.as_real_array(in1, "in1")
    kernel = v.as_real_array(in2, "in2")
    v.check_ndim(image, "in1", (2,), "a 2-D array (H, W)")
    v.check_ndim(kernel, "in2", (2,), "a 2-D array (kH, kW)")
    dtype = v.result_dtype(image.dtype, kernel.dtype)
    plan, swapped = v.plan_correlate2d(image.shape, kernel.shape, mode, boundary, fillvalue,
                                       dtype, convolve=convolve)
    if swapped:
        # SciPy's "valid" mode with the larger array second: convolution commutes, and the
        # correlation is the swapped one reversed, which is the correlation of the reversed pair.
        image, kernel = (kernel, image) if convolve else (kernel[::-1, ::-1], image[::-1, ::-1])
    if convolve:
        kernel = kernel[::-1, ::-1]
    out = v.check_out(out, plan.out_shape[2:], plan.dtype, (image, kernel))
    result = _run(backend, plan, image[None, None], kernel[None, None], None, out)
    return result[0, 0]


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None, out=None):
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
    backend : {None, "auto", "cpu", "cuda", "reference"}
        Where to compute; None and "auto" follow the data.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.

    Returns
    -------
    ndarray
        float32 if both inputs are at most float32, else float64 (integers count as float64).
    """
    return _image_correlation(in1, in2, mode, boundary, fillvalue, backend, out, convolve=False)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None, out=None):
    """Convolve two 2-D arrays, as :func:`scipy.signal.convolve2d` does for real input.

    Convolution is correlation with ``in2`` flipped in both axes; ``mode`` centres "same" on
    the full convolution as SciPy does. Arguments and result as in :func:`correlate2d`.
    """
    return _image_correlation(in1, in2, mode, boundary, fillvalue, backend, out, convolve=True)


def corr2d(X, K, *, backend=None, out=None):
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
    shapes = [np.shape(X), np.shape(K)]
    if len(shapes[0]) == 2 and len(shapes[1]) == 2 and any(k > x for x, k in zip(*shapes)):
        raise ValueError(f"K: kernel of shape {shapes[1]} is larger than X of shape {shapes[0]}")
    return correlate2d(X, K, "valid", backend=backend, out=out)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, backend=None, out=None):
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
    backend : {None, "auto", "cpu", "cuda", "reference"}
        Where to compute; None and "auto" follow the data.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        ``H_out = (H + pad_top + pad_bottom - dilation * (kH - 1) - 1) // stride + 1``, and
        likewise ``W_out``.
    """
    backend = resolve(backend, input, weight, bias, out)
    x = v.as_real_array(input, "input")
    w = v.as_real_array(weight, "weight")
    v.check_ndim(x, "input", (3, 4), "(N, C_in, H, W) or unbatched (C_in, H, W)")
    v.check_ndim(w, "weight", (4,), "(C_out, C_in / groups, kH, kW)")
    dtypes = [x.dtype, w.dtype]
    if bias is not None:
        bias = v.as_real_array(bias, "bias")
        v.check_ndim(bias, "bias", (1,), "(C_out,)")
        dtypes.append(bias.dtype)
    unbatched = x.ndim == 3
    x4 = x[None] if unbatched else x
    plan = v.plan_conv2d(x4.shape, w.shape, None if bias is None else bias.shape, stride,
                         padding, dilation, groups, padding_mode, v.result_dtype(*dtypes))
    out_shape = plan.out_shape[1:] if unbatched else plan.out_shape
    out = v.check_out(out, out_shape, plan.dtype, [a for a in (x, w, bias) if a is not None])
    result = _run(backend, plan, x4, w, bias, out)
    return result[0] if unbatched else result
