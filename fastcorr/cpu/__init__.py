"""The CPU backend: Numba kernels (and NumPy's BLAS for dense layers) behind one entry point.

Each layer shape gets the loop that suits it: dense and grouped layers an im2col block times
the weights; depthwise layers at stride 1 whole padded planes; everything else, single-channel
images included, output rows with the taps outer and the columns innermost.
"""

import numba
import numpy as np

from .. import config


def forward(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``; arrays are C-contiguous NCHW of ``plan.dtype``.

    ``bias`` is an array of shape (C_out,) or None.
    """
    # kernels compile on first use, not at import
    c_out, c_in_g, kh, kw = plan.weight_shape
    n_batch, c_out_g = plan.out_shape[0], c_out // plan.groups
    fill = plan.dtype.type(plan.fill)
    if c_in_g * kh * kw >= config.CPU_GEMM_MIN_DEPTH and c_out_g >= config.CPU_GEMM_MIN_OUT_CHANNELS:
        from .gemm import correlate_gemm

        return correlate_gemm(x, weight, bias, out, plan)
    if bias is None:
        bias = np.zeros(c_out, dtype=plan.dtype)
    padded_size = (plan.out_shape[2] + plan.dilation[0] * (kh - 1)) * (
        plan.out_shape[3] + plan.dilation[1] * (kw - 1))
    if (c_in_g == 1 and plan.stride == (1, 1) and padded_size <= config.CPU_PLANE_MAX_ELEMENTS
            and n_batch * plan.groups >= numba.get_num_threads()):
        from .forward_kernel import correlate_planes

        correlate_planes(x, weight, bias, out, plan.dilation[0], plan.dilation[1],
                         plan.pad_top, plan.pad_left, plan.pad_mode, fill, plan.groups)
        return out
    from .forward_kernel import correlate_rows

    co_block = config.CPU_OUT_CHANNEL_BLOCK if c_in_g > 1 else 1
    correlate_rows(
        x, weight, bias, out,
        plan.stride[0], plan.stride[1], plan.dilation[0], plan.dilation[1],
        plan.pad_top, plan.pad_left, plan.pad_mode, fill,
        plan.groups, min(co_block, c_out_g),
    )
    return out
