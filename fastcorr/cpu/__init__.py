"""The CPU backend: Numba kernels (and NumPy's BLAS for dense layers) behind one entry point
per computation.

Each layer shape gets the loop that suits it: dense and grouped layers an im2col block times
the weights; depthwise layers at stride 1 whole padded planes; everything else, single-channel
images included, output rows with the taps outer and the columns innermost. Kernels compile on
first use, never at import.
"""

import numba
import numpy as np

from .. import config


def _uses_gemm(plan):
    c_out, c_in_g, kh, kw = plan.weight_shape
    return (c_in_g * kh * kw >= config.CPU_GEMM_MIN_DEPTH
            and c_out // plan.groups >= config.CPU_GEMM_MIN_OUT_CHANNELS)


def _geometry(plan):
    """The stride, dilation and padding arguments every kernel takes, in kernel order."""
    return (plan.stride[0], plan.stride[1], plan.dilation[0], plan.dilation[1], plan.pad_top,
            plan.pad_left, plan.pad_mode)


def forward(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``; arrays are C-contiguous NCHW of ``plan.dtype``.

    ``bias`` is an array of shape (C_out,) or None.
    """
    if _uses_gemm(plan):
        from .gemm import correlate_gemm

        return correlate_gemm(x, weight, bias, out, plan)
    c_out, c_in_g, kh, kw = plan.weight_shape
    if bias is None:
        bias = np.zeros(c_out, dtype=plan.dtype)
    fill = plan.dtype.type(plan.fill)
    if c_in_g == 1 and plan.stride[1] == 1 and _unrolls(kh, kw):
        from .unrolled import inner_row_blocks, kernels

        unrolled = kernels(kh, kw)
        if _plane_by_plane(plan):
            unrolled.correlate_planes(x, weight, bias, out, *_geometry(plan)[2:], fill,
                                      plan.groups)
            return out
        first_row, n_blocks = 0, 0
        if plan.stride[0] == 1 and plan.dilation[0] == 1:
            first_row, n_blocks = inner_row_blocks(plan.out_shape[2], x.shape[2], kh,
                                                   plan.pad_top)
        if n_blocks:
            unrolled.correlate_row_blocks(x, weight, bias, out, plan.dilation[1], plan.pad_top,
                                          plan.pad_left, plan.groups, first_row, n_blocks)
        unrolled.correlate_rows(x, weight, bias, out, plan.stride[0], *_geometry(plan)[2:],
                                fill, plan.groups, first_row,
                                first_row + n_blocks * unrolled.ROWS)
        return out
    from .forward_kernel import correlate_rows

    co_block = config.CPU_OUT_CHANNEL_BLOCK if c_in_g > 1 else 1
    correlate_rows(x, weight, bias, out, *_geometry(plan), fill, plan.groups,
                   min(co_block, c_out // plan.groups))
    return out


def _unrolls(kh, kw):
    """Whether a kernel size has an unrolled kernel: few taps, and at most 8 kernel rows (each
    row is a pointer that LLVM must check against the output before it vectorises)."""
    return kh <= 8 and kh * kw <= config.CPU_UNROLL_MAX_TAPS


def _small_planes(plan):
    """Whether a layer's padded planes are small and its strides 1: whole planes per task then
    beat rows, which are short."""
    _, _, kh, kw = plan.weight_shape
    padded_size = (plan.out_shape[2] + plan.dilation[0] * (kh - 1)) * (
        plan.out_shape[3] + plan.dilation[1] * (kw - 1))
    return plan.stride == (1, 1) and padded_size <= config.CPU_PLANE_MAX_ELEMENTS


def _plane_by_plane(plan):
    """Whether the forward pass of a layer with one input channel per group runs a task per
    plane: small planes, and a plane per thread at least. (Both forward kernels give bitwise
    the same result, so the thread count may decide.)"""
    return _small_planes(plan) and plan.out_shape[0] * plan.groups >= numba.get_num_threads()


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient of ``plan``'s output with respect to its input into ``grad_x``."""
    if _uses_gemm(plan):
        from .gemm import grad_input_gemm

        return grad_input_gemm(grad_out, weight, grad_x, plan)
    c_out, c_in_g, kh, kw = plan.weight_shape
    if c_in_g == 1 and c_out == plan.groups and _unrolls(kh, kw) and _small_planes(plan):
        from .unrolled import kernels

        kernels(kh, kw).grad_input_planes(grad_out, weight, grad_x, *_geometry(plan)[2:],
                                          plan.dtype.type(0))
        return grad_x
    from .backward_kernel import grad_input_planes

    grad_input_planes(grad_out, weight, grad_x, *_geometry(plan), plan.groups)
    return grad_x


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient of ``plan``'s output with respect to the weights into ``grad_w``."""
    if _uses_gemm(plan):
        from .gemm import grad_weight_gemm

        return grad_weight_gemm(grad_out, x, grad_w, plan)
    rows = plan.out_shape[0] * plan.out_shape[2]
    fill = plan.dtype.type(plan.fill)
    _, c_in_g, kh, kw = plan.weight_shape
    # the choice depends on the shape only: the two kernels sum in different orders
    if c_in_g == 1 and _unrolls(kh, kw) and _small_planes(plan):
        from .unrolled import kernels

        per_chunk = max(1, config.CPU_GRAD_WEIGHT_CHUNK_PLANES)
        partial = np.empty((-(-plan.out_shape[0] // per_chunk),) + grad_w.shape, dtype=plan.dtype)
        kernels(kh, kw).grad_weight_planes(grad_out, x, partial, *_geometry(plan)[2:], fill,
                                           plan.groups, per_chunk)
    else:
        from .backward_kernel import grad_weight_rows

        per_chunk = config.CPU_GRAD_WEIGHT_CHUNK_ROWS
        partial = np.empty((-(-rows // per_chunk),) + grad_w.shape, dtype=plan.dtype)
        grad_weight_rows(grad_out, x, partial, *_geometry(plan), fill, plan.groups, per_chunk)
    grad_w[...] = partial[0]
    for chunk in partial[1:]:  # in order: the result does not depend on the thread count
        grad_w += chunk
    return grad_w


def grad_bias(grad_out, grad_b, plan):
    """Write the gradient of ``plan``'s output with respect to the bias into ``grad_b``."""
    from .backward_kernel import channel_sums

    channel_sums(grad_out, grad_b)
    return grad_b
