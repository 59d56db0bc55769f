"""Dense and grouped layers as im2col blocks times the weight matrix (NumPy's BLAS)."""

import numpy as np

from .. import config
from .im2col_kernel import im2col_rows


def correlate_gemm(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out`` block by block: gather patches, multiply by the weights.

    The patch buffer holds at most ``config.CPU_IM2COL_BLOCK_ELEMENTS`` elements, and never
    more than the output, whatever the layer's size.
    """
    n_batch, c_out, out_h, out_w = plan.out_shape
    c_in_g, kh, kw = plan.weight_shape[1:]
    groups = plan.groups
    c_out_g = c_out // groups
    depth = c_in_g * kh * kw
    budget = min(config.CPU_IM2COL_BLOCK_ELEMENTS, out.size)
    rows_per_block = max(1, min(out_h, budget // (depth * out_w)))
    w_mat = weight.reshape(groups, c_out_g, depth)
    cols_buffer = np.empty(depth * rows_per_block * out_w, dtype=plan.dtype)
    fill = plan.dtype.type(plan.fill)
    out_mat = out.reshape(n_batch, c_out, out_h * out_w)  # a view: out is C-contiguous
    for n in range(n_batch):
        for g in range(groups):
            for row_first in range(0, out_h, rows_per_block):
                n_rows = min(rows_per_block, out_h - row_first)
                cols = cols_buffer[:depth * n_rows * out_w].reshape(depth, n_rows * out_w)
                im2col_rows(x[n], g * c_in_g, c_in_g, kh, kw, row_first, out_w,
                            plan.stride[0], plan.stride[1], plan.dilation[0], plan.dilation[1],
                            plan.pad_top, plan.pad_left, plan.pad_mode, fill, cols)
                # a view of the block: each channel's rows are contiguous (BLAS's ldc does the rest)
                block = out_mat[n, g * c_out_g:(g + 1) * c_out_g,
                                row_first * out_w:(row_first + n_rows) * out_w]
                np.matmul(w_mat[g], cols, out=block)
    if bias is not None:
        out += bias[:, None, None]
    return out
