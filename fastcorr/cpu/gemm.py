"""Dense and grouped layers as im2col blocks and matrix products (NumPy's BLAS).

Forward: ``out_block = W_g @ cols``. Gradients: ``grad_W_g += grad_out_block @ cols.T`` and
``grad_cols = W_g.T @ grad_out_block``, scattered back by col2im. Blocks are visited in one
fixed order and partial products added in that order, so results are repeatable.
"""

import numpy as np

from .. import config
from .im2col_kernel import col2im_rows, im2col_rows


class _Blocks:
    """The block decomposition of one plan: which rows each patch buffer holds."""

    def __init__(self, plan):
        self.plan = plan
        n_batch, c_out, out_h, out_w = plan.out_shape
        c_in_g, kh, kw = plan.weight_shape[1:]
        self.c_in_g, self.c_out_g = c_in_g, c_out // plan.groups
        self.depth = c_in_g * kh * kw
        out_size = n_batch * c_out * out_h * out_w
        budget = min(config.CPU_IM2COL_BLOCK_ELEMENTS, out_size)
        self.rows = max(1, min(out_h, budget // (self.depth * out_w)))
        self.buffer = np.empty(self.depth * self.rows * out_w, dtype=plan.dtype)

    def __iter__(self):
        """Yield ``(n, g, first row, slice of the block in a flattened plane, patch matrix)``."""
        n_batch, _, out_h, out_w = self.plan.out_shape
        for n in range(n_batch):
            for g in range(self.plan.groups):
                for row_first in range(0, out_h, self.rows):
                    n_rows = min(self.rows, out_h - row_first)
                    cols = self.buffer[:self.depth * n_rows * out_w].reshape(self.depth, -1)
                    yield n, g, row_first, slice(row_first * out_w, (row_first + n_rows) * out_w), cols

    def _geometry(self, row_first):
        plan = self.plan
        return (plan.weight_shape[2], plan.weight_shape[3], row_first, plan.out_shape[3],
                plan.stride[0], plan.stride[1], plan.dilation[0], plan.dilation[1],
                plan.pad_top, plan.pad_left, plan.pad_mode)

    def gather(self, x_n, g, row_first, cols):
        """Fill ``cols`` with the patches of image ``x_n`` (C_in, H, W) for group ``g``."""
        im2col_rows(x_n, g * self.c_in_g, self.c_in_g, *self._geometry(row_first),
                    self.plan.dtype.type(self.plan.fill), cols)

    def scatter(self, cols, g, row_first, grad_x_n):
        """Add ``cols`` back into ``grad_x_n`` (C_in, H, W) for group ``g``."""
        col2im_rows(cols, g * self.c_in_g, self.c_in_g, *self._geometry(row_first), grad_x_n)


def _flat(a):
    """A view of a C-contiguous NCHW array as (N, C, H * W)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def correlate_gemm(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``: gather patches, multiply by the weights."""
    blocks = _Blocks(plan)
    w_mat = weight.reshape(plan.groups, blocks.c_out_g, blocks.depth)
    out_mat = _flat(out)
    c_out_g = blocks.c_out_g
    for n, g, row_first, span, cols in blocks:
        blocks.gather(x[n], g, row_first, cols)
        # a view: each channel's rows are contiguous, BLAS's leading dimension does the rest
        np.matmul(w_mat[g], cols, out=out_mat[n, g * c_out_g:(g + 1) * c_out_g, span])
    if bias is not None:
        out += bias[:, None, None]
    return out


def grad_input_gemm(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    blocks = _Blocks(plan)
    w_mat_t = weight.reshape(plan.groups, blocks.c_out_g, blocks.depth).transpose(0, 2, 1)
    g_mat = _flat(grad_out)
    c_out_g = blocks.c_out_g
    grad_x[...] = 0
    for n, g, row_first, span, cols in blocks:
        np.matmul(w_mat_t[g], g_mat[n, g * c_out_g:(g + 1) * c_out_g, span], out=cols)
        blocks.scatter(cols, g, row_first, grad_x[n])
    return grad_x


def grad_weight_gemm(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten)."""
    blocks = _Blocks(plan)
    gw_mat = grad_w.reshape(plan.groups, blocks.c_out_g, blocks.depth)
    g_mat = _flat(grad_out)
    c_out_g = blocks.c_out_g
    partial = np.empty((c_out_g, blocks.depth), dtype=plan.dtype)
    grad_w[...] = 0
    for n, g, row_first, span, cols in blocks:
        blocks.gather(x[n], g, row_first, cols)
        np.matmul(g_mat[n, g * c_out_g:(g + 1) * c_out_g, span], cols.T, out=partial)
        gw_mat[g] += partial
    return grad_w
