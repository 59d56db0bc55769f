"""The naive reference: plain loops, obviously right, no Numba. Every fast kernel is tested
against it.

The low-level :func:`forward` computes a :class:`~fastcorr._validate.Plan` by padding the input
explicitly with :func:`numpy.pad` and summing one window per output element, in float64;
:func:`grad_input` and :func:`grad_weight` visit the same windows and add each product where
it belongs.
The public functions here are the package's functions with ``backend="reference"``.
"""

from dataclasses import replace

import numpy as np

from . import _validate as v
from ._docs import fill_doc

# pad, forward, grad_input and grad_weight compute a Plan for the reference backend
# (fastcorr._reference_backend); they are not part of the public API.
__all__ = ["corr2d", "correlate2d", "convolve2d", "conv2d"]


# How numpy.pad names each boundary rule.
_NUMPY_PAD_MODE = {
    v.ZEROS: "constant",
    v.CIRCULAR: "wrap",
    v.SYMMETRIC: "symmetric",
    v.REFLECT: "reflect",
    v.REPLICATE: "edge",
}


def pad(x, plan):
    """Pad an ``(N, C, H, W)`` array as ``plan`` describes; returns a new float64 array."""
    widths = ((0, 0), (0, 0), (plan.pad_top, plan.pad_bottom), (plan.pad_left, plan.pad_right))
    x = x.astype(np.float64)
    mode = _NUMPY_PAD_MODE[plan.pad_mode]
    if mode == "constant":
        return np.pad(x, widths, mode=mode, constant_values=plan.fill)
    return np.pad(x, widths, mode=mode)


def forward(x, weight, bias, plan):
    """Compute ``plan`` with loops over every output element.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight : ndarray, shape (C_out, C_in // groups, kH, kW)
    bias : ndarray, shape (C_out,), or None
    plan : Plan

    Returns
    -------
    ndarray, shape plan.out_shape, dtype plan.dtype
    """
    xp = pad(x, plan)
    w = weight.astype(np.float64)
    n_batch, c_out, out_h, out_w = plan.out_shape
    c_in_g, kh, kw = plan.weight_shape[1:]
    c_out_g = c_out // plan.groups
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    out = np.zeros(plan.out_shape, dtype=np.float64)
    for n in range(n_batch):
        for co in range(c_out):
            first = (co // c_out_g) * c_in_g  # first input channel of this output's group
            for i in range(out_h):
                for j in range(out_w):
                    total = 0.0 if bias is None else float(bias[co])
                    for ci in range(c_in_g):
                        for p in range(kh):
                            for q in range(kw):
                                total += w[co, ci, p, q] * xp[n, first + ci, i * sh + p * dh, j * sw + q * dw]
                    out[n, co, i, j] = total
    return out.astype(plan.dtype)


def _windows(plan):
    """Yield ``(n, co, ci, c, i, j, p, q, row, col)`` for every product of ``plan``: output
    ``(n, co, i, j)`` takes weight tap ``(co, ci, p, q)`` times the padded input at
    ``(n, c, row, col)``, ``c`` being input channel ``ci`` of the output's group."""
    n_batch, c_out, out_h, out_w = plan.out_shape
    c_in_g, kh, kw = plan.weight_shape[1:]
    c_out_g = c_out // plan.groups
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    for n in range(n_batch):
        for co in range(c_out):
            first = (co // c_out_g) * c_in_g
            for i in range(out_h):
                for j in range(out_w):
                    for ci in range(c_in_g):
                        for p in range(kh):
                            for q in range(kw):
                                yield n, co, ci, first + ci, i, j, p, q, i * sh + p * dh, j * sw + q * dw


def grad_input(grad_out, weight, plan):
    """The gradient of ``plan``'s output with respect to its input, by loops.

    Each product is added at its padded position; the padding is then folded back onto the
    samples that :func:`numpy.pad` copied it from (found by padding an array of indices).
    """
    n_batch, c_in, h, w = plan.input_shape
    padded_shape = (n_batch, c_in, h + plan.pad_top + plan.pad_bottom,
                    w + plan.pad_left + plan.pad_right)
    grad_padded = np.zeros(padded_shape)
    for n, co, ci, c, i, j, p, q, row, col in _windows(plan):
        grad_padded[n, c, row, col] += float(grad_out[n, co, i, j]) * float(weight[co, ci, p, q])
    index = np.arange(h * w, dtype=np.float64).reshape(1, 1, h, w)
    fold_plan = replace(plan, input_shape=(1, 1, h, w), fill=-1.0)
    source = pad(index, fold_plan)[0, 0].astype(np.int64)  # -1 marks the fill
    grad = np.zeros((n_batch, c_in, h * w))
    for r in range(source.shape[0]):
        for s in range(source.shape[1]):
            if source[r, s] >= 0:
                grad[:, :, source[r, s]] += grad_padded[:, :, r, s]
    return grad.reshape(plan.input_shape).astype(plan.dtype)


def grad_weight(grad_out, x, plan):
    """The gradient of ``plan``'s output with respect to the weights, by loops."""
    xp = pad(x, plan)
    grad = np.zeros(plan.weight_shape)
    for n, co, ci, c, i, j, p, q, row, col in _windows(plan):
        grad[co, ci, p, q] += float(grad_out[n, co, i, j]) * xp[n, c, row, col]
    return grad.astype(plan.dtype)


@fill_doc
def corr2d(X, K, *, out=None):
    """:func:`fastcorr.corr2d` computed by the reference loops.

    The source material's ``corr2d``: the "valid" 2-D cross-correlation
    ``Y[i, j] = sum_{p, q} X[i + p, j + q] * K[p, q]``.

    Parameters
    ----------
    X : array_like, shape (H, W)
        The image.
    K : array_like, shape (kH, kW)
        The kernel, no larger than ``X`` in either dimension.
    {{out}}
        Here a NumPy array: the reference computes on the host.

    Returns
    -------
    ndarray, shape (H - kH + 1, W - kW + 1)
        float32 if both inputs are at most float32, else float64.

    Raises
    ------
    ValueError
        If ``X`` or ``K`` is not 2-D or is empty, ``K`` is larger than ``X``, or ``out`` has
        the wrong shape, dtype or layout or overlaps an input.
    TypeError
        If an input is not a real numeric array (or is a CUDA device array), or ``out`` is
        not a NumPy array.

    See Also
    --------
    fastcorr.corr2d : the same on the fast backends.
    correlate2d : every mode and boundary.
    scipy.signal.correlate2d : ``correlate2d(X, K, "valid")`` computes the same.

    Notes
    -----
    Every sum runs in float64 in plain Python loops, one window per output element, and is
    cast to the result's dtype: slow, and obviously right.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr import reference
    >>> X = np.arange(9.0).reshape(3, 3)
    >>> K = np.arange(4.0).reshape(2, 2)
    >>> reference.corr2d(X, K)
    array([[19., 25.],
           [37., 43.]])
    """
    from .functional import corr2d

    return corr2d(X, K, backend="reference", out=out)


@fill_doc
def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, out=None):
    """:func:`fastcorr.correlate2d` computed by the reference loops.

    Parameters
    ----------
    in1 : array_like, shape (H, W)
        The image.
    in2 : array_like, shape (kH, kW)
        The kernel.
    mode : {"full", "valid", "same"}, optional
        Output shape ``(H + kH - 1, W + kW - 1)``, ``(H - kH + 1, W - kW + 1)`` or ``(H, W)``
        (centred as SciPy centres it). In "valid" mode one array must be at least as large as
        the other in every dimension; if ``in2`` is the larger, the two are swapped as in SciPy.
    boundary : {"fill", "wrap", "symm"}, optional
        Samples outside ``in1``: ``fillvalue``, periodic, or mirrored with the edge repeated.
    fillvalue : float, optional
        The value outside ``in1`` with ``boundary="fill"``.
    {{out}}
        Here a NumPy array: the reference computes on the host.

    Returns
    -------
    ndarray, shape as ``mode`` gives it
        float32 if both inputs are at most float32, else float64.

    Raises
    ------
    ValueError
        If an input is not 2-D or is empty, ``mode``, ``boundary`` or ``fillvalue`` is not
        one of the accepted values, neither input is at least as large as the other in
        "valid" mode, or ``out`` has the wrong shape, dtype or layout or overlaps an input.
    TypeError
        If an input is not a real numeric array (or is a CUDA device array), or ``out`` is
        not a NumPy array.

    See Also
    --------
    fastcorr.correlate2d : the same on the fast backends.
    convolve2d : the convolution.
    scipy.signal.correlate2d : SciPy's, with the same arguments.

    Notes
    -----
    Every sum runs in float64 in plain Python loops over the input padded with
    :func:`numpy.pad`, and is cast to the result's dtype: slow, and obviously right.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr import reference
    >>> X = np.arange(9.0).reshape(3, 3)
    >>> K = np.arange(4.0).reshape(2, 2)
    >>> reference.correlate2d(X, K)
    array([[ 0.,  3.,  8.,  4.],
           [ 9., 19., 25., 10.],
           [21., 37., 43., 16.],
           [ 6.,  7.,  8.,  0.]])
    >>> reference.correlate2d(X, K, "same", boundary="wrap")
    array([[19., 25., 19.],
           [37., 43., 37.],
           [10., 16., 10.]])
    """
    from .functional import correlate2d

    return correlate2d(in1, in2, mode, boundary, fillvalue, backend="reference", out=out)


@fill_doc
def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, out=None):
    """:func:`fastcorr.convolve2d` computed by the reference loops.

    Convolution is correlation with ``in2`` flipped in both axes; ``mode`` centres "same" on
    the full convolution as SciPy does.

    Parameters
    ----------
    in1 : array_like, shape (H, W)
        The image.
    in2 : array_like, shape (kH, kW)
        The kernel.
    mode, boundary, fillvalue
        As in :func:`correlate2d`.
    {{out}}
        Here a NumPy array: the reference computes on the host.

    Returns
    -------
    ndarray, shape as ``mode`` gives it
        float32 if both inputs are at most float32, else float64.

    Raises
    ------
    ValueError, TypeError
        As :func:`correlate2d` raises them.

    See Also
    --------
    fastcorr.convolve2d : the same on the fast backends.
    correlate2d : the correlation.
    scipy.signal.convolve2d : SciPy's, with the same arguments.

    Notes
    -----
    Every sum runs in float64 in plain Python loops, and is cast to the result's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr import reference
    >>> X = np.arange(9.0).reshape(3, 3)
    >>> K = np.arange(4.0).reshape(2, 2)
    >>> reference.convolve2d(X, K)
    array([[ 0.,  0.,  1.,  2.],
           [ 0.,  5., 11., 11.],
           [ 6., 23., 29., 23.],
           [12., 32., 37., 24.]])
    >>> np.array_equal(reference.convolve2d(X, K, "valid"),
    ...                reference.correlate2d(X, K[::-1, ::-1], "valid"))
    True
    """
    from .functional import convolve2d

    return convolve2d(in1, in2, mode, boundary, fillvalue, backend="reference", out=out)


@fill_doc
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, out=None):
    """:func:`fastcorr.conv2d` computed by the reference loops.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, shape (C_out, C_in / groups, kH, kW)
    bias : array_like, shape (C_out,), optional
    stride, dilation : int or (int, int), optional
        Positive.
    padding : int, (int, int), "valid" or "same", optional
        Non-negative; "same" needs stride 1 and, when the total is odd, pads one more at the
        bottom and right, as torch does.
    groups : int, optional
        Divides ``C_in`` and ``C_out``.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, optional
        How the padding is filled, as :class:`torch.nn.Conv2d` fills it.
    {{out}}
        Here a NumPy array: the reference computes on the host.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        ``H_out = (H + pad_top + pad_bottom - dilation * (kH - 1) - 1) // stride + 1``, and
        likewise ``W_out``.

    Raises
    ------
    ValueError
        If a shape, the channel counts and ``groups``, ``stride``, ``padding``, ``dilation``
        or ``padding_mode`` is out of range (as :func:`fastcorr.conv2d` checks them), the
        kernel is larger than the padded input, or ``out`` has the wrong shape, dtype or
        layout or overlaps an input.
    TypeError
        If an operand is not a real numeric array (or is a CUDA device array), an int
        argument is not an int, or ``out`` is not a NumPy array.

    See Also
    --------
    fastcorr.conv2d : the same on the fast backends.
    torch.nn.functional.conv2d : torch's, with the same arguments.

    Notes
    -----
    Every sum runs in float64 in plain Python loops over the input padded with
    :func:`numpy.pad`, and is cast to the result's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr import reference
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> w = np.ones((2, 1, 2, 2))
    >>> reference.conv2d(x, w, np.array([0.0, 10.0]))
    array([[[[ 8., 12.],
             [20., 24.]],
    <BLANKLINE>
            [[18., 22.],
             [30., 34.]]]])
    >>> reference.conv2d(x, w, padding=1, stride=2).shape
    (1, 2, 2, 2)
    """
    from .functional import conv2d

    return conv2d(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                  backend="reference", out=out)
