"""The CPU backend: Numba kernels behind one entry point per operation."""

import numpy as np

from .. import config


def forward(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``; arrays are C-contiguous NCHW of ``plan.dtype``.

    ``bias`` is an array of shape (C_out,) or None.
    """
    from .forward_kernel import correlate_forward  # compiled on first use, not at import

    if bias is None:
        bias = np.zeros(plan.weight_shape[0], dtype=plan.dtype)
    c_out_g = plan.weight_shape[0] // plan.groups
    co_block = config.CPU_OUT_CHANNEL_BLOCK if plan.weight_shape[1] > 1 else 1
    correlate_forward(
        x, weight, bias, out,
        plan.stride[0], plan.stride[1], plan.dilation[0], plan.dilation[1],
        plan.pad_top, plan.pad_left, plan.pad_mode, plan.dtype.type(plan.fill),
        plan.groups, min(co_block, c_out_g),
    )
    return out
