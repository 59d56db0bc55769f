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


def corr2d(X, K, *, out=None):
    """:func:`fastcorr.corr2d` computed by the reference loops."""
    from .functional import corr2d

    return corr2d(X, K, backend="reference", out=out)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, out=None):
    """:func:`fastcorr.correlate2d` computed by the reference loops."""
    from .functional import correlate2d

    return correlate2d(in1, in2, mode, boundary, fillvalue, backend="reference", out=out)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, out=None):
    """:func:`fastcorr.convolve2d` computed by the reference loops."""
    from .functional import convolve2d

    return convolve2d(in1, in2, mode, boundary, fillvalue, backend="reference", out=out)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, out=None):
    """:func:`fastcorr.conv2d` computed by the reference loops."""
    from .functional import conv2d

    return conv2d(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                  backend="reference", out=out)
