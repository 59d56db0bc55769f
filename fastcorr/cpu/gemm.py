"""Dense and grouped layers as im2col blocks and matrix products (NumPy's BLAS): "gemm".

Forward: ``out_block = W_g @ cols``. Gradients: ``grad_W_g += grad_out_block @ cols.T`` and
``grad_cols = W_g.T @ grad_out_block``, scattered back by col2im.

Block after block, fastcorr's threads gather the patches (one task per input channel, see
:mod:`fastcorr.cpu.im2col`) and the calling thread multiplies them with NumPy's ``matmul``,
whose BLAS runs at the thread count the program gave it: fastcorr never changes it, so no
other thread's matrix products change behind its back.

Results do not depend on fastcorr's number of threads: the block shape depends on the layer
only, every product is one BLAS call of the same shape, input gradients are scattered block
by block in order (each plane by one task), and the weight gradient's block products are
added in block order.
"""

import numpy as np

from .. import _memory
from .. import config
from . import _pool
from .im2col import col2im_rows, im2col_rows


#: A gathered (or scattered) patch element counts as this many multiply-adds of work when the
#: pool decides how many threads a gather deserves (each goes through the boundary rule).
COPY_WORK = 4


def why_not(plan):
    """None: the im2col path computes every plan (it pays for dense and grouped layers)."""
    return None


class _Blocks:
    """The block decomposition of one plan: which output rows each patch buffer holds.

    ``all_groups=True`` gathers every group's patches into one buffer per block,
    ``(groups * depth, positions)``, for one batched product over the groups; otherwise a
    block belongs to one image and one group.
    """

    def __init__(self, plan, all_groups=False):
        self.plan = plan
        n_batch, c_out, out_h, out_w = plan.out_shape
        c_in_g, kh, kw = plan.weight_shape[1:]
        self.c_in_g, self.c_out_g = c_in_g, c_out // plan.groups
        self.depth = c_in_g * kh * kw
        self.gathered = plan.groups if all_groups else 1  # groups per buffer
        # a buffer within the budget and no larger than the output (the shape alone decides)
        budget = min(config.CPU_IM2COL_BLOCK_ELEMENTS, n_batch * c_out * out_h * out_w)
        self.rows = max(1, min(out_h, budget // (self.gathered * self.depth * out_w)))
        groups = [None] if all_groups else range(plan.groups)
        #: ``(n, g, first row, slice of the block in a flattened plane)`` in a fixed order
        self.blocks = [(n, g, row_first, slice(row_first * out_w,
                                                min(out_h, row_first + self.rows) * out_w))
                       for n in range(n_batch) for g in groups
                       for row_first in range(0, out_h, self.rows)]
        self.buffer = _memory.empty(self.gathered * self.depth * self.rows * out_w,
                                    dtype=plan.dtype)

    def cols(self, span):
        """The patch matrix of a block of ``span``: (gathered groups * depth, positions)."""
        rows = self.gathered * self.depth
        return self.buffer[:rows * (span.stop - span.start)].reshape(rows, -1)

    def _geometry(self, row_first):
        plan = self.plan
        return (plan.weight_shape[2], plan.weight_shape[3], row_first, plan.out_shape[3],
                plan.stride[0], plan.stride[1], plan.dilation[0], plan.dilation[1],
                plan.pad_top, plan.pad_left, plan.pad_mode)

    def gather(self, x_n, g, row_first, cols):
        """Fill ``cols`` with the patches of image ``x_n`` (C_in, H, W) for group ``g`` (every
        group for ``g=None``)."""
        first, count = (0, x_n.shape[0]) if g is None else (g * self.c_in_g, self.c_in_g)
        _pool.run(im2col_rows, count * self.plan.weight_shape[2], x_n, first,
                  *self._geometry(row_first),
                  self.plan.dtype.type(self.plan.fill), cols, work=COPY_WORK * cols.size)

    def scatter(self, cols, g, row_first, grad_x_n):
        """Add ``cols`` back into ``grad_x_n`` (C_in, H, W) for group ``g``."""
        _pool.run(col2im_rows, self.c_in_g, cols, g * self.c_in_g, *self._geometry(row_first),
                  grad_x_n, work=COPY_WORK * cols.size)


def _flat(a):
    """A view of a C-contiguous NCHW array as (N, C, H * W)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``: gather patches, multiply by the weights."""
    if plan.groups > 1:
        return _correlate_groups(x, weight, bias, out, plan)
    blocks = _Blocks(plan)
    c_out_g = blocks.c_out_g
    w_mat = weight.reshape(plan.groups, c_out_g, blocks.depth)
    out_mat = _flat(out)
    for n, g, row_first, span in blocks.blocks:
        cols = blocks.cols(span)
        blocks.gather(x[n], g, row_first, cols)
        # a view: each channel's rows are contiguous, BLAS's leading dimension does the rest
        target = out_mat[n, g * c_out_g:(g + 1) * c_out_g, span]
        np.matmul(w_mat[g], cols, out=target)
        if bias is not None:
            target += bias[g * c_out_g:(g + 1) * c_out_g, None]
    return out


def _correlate_groups(x, weight, bias, out, plan):
    """A grouped layer's forward: each block of output rows gathers every channel's patches
    at once and one batched ``matmul`` multiplies every group's weights with its patches. A
    block per image and group, each with its own gather and product, cost grouped layers more
    in calls than in arithmetic (Zen 4, float32, batch 8, 3x3, ms, before -> after: 64
    channels on 56^2 in 8 groups 28.2 -> 7.9; 256 on 56^2, 32 groups, stride 2: 28.9 -> 22.4;
    128 on 56^2, 32 groups 11.6 -> 11.4; 256 on 14^2 in 16 groups 4.4 -> 5.1)."""
    blocks = _Blocks(plan, all_groups=True)
    groups, c_out_g, depth = plan.groups, blocks.c_out_g, blocks.depth
    w_mat = weight.reshape(groups, c_out_g, depth)
    out_mat = _flat(out).reshape(plan.out_shape[0], groups, c_out_g, -1)
    for n, _, row_first, span in blocks.blocks:
        cols = blocks.cols(span)
        blocks.gather(x[n], None, row_first, cols)
        target = out_mat[n, :, :, span]
        np.matmul(w_mat, cols.reshape(groups, depth, -1), out=target)
        if bias is not None:
            target += bias.reshape(groups, c_out_g, 1)
    return out


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    blocks = _Blocks(plan)
    c_out_g = blocks.c_out_g
    w_mat_t = weight.reshape(plan.groups, c_out_g, blocks.depth).transpose(0, 2, 1)
    g_mat = _flat(grad_out)
    grad_x[...] = 0
    for n, g, row_first, span in blocks.blocks:
        cols = blocks.cols(span)
        np.matmul(w_mat_t[g], g_mat[n, g * c_out_g:(g + 1) * c_out_g, span], out=cols)
        blocks.scatter(cols, g, row_first, grad_x[n])
    return grad_x


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten).

    Grouped layers gather every group's patches per block and make one batched product, as
    the forward does (Zen 4, float32, batch 8, 3x3, ms, before -> after: 128 channels on
    56^2 in 32 groups 12.5-13.2 -> 11.1-11.8, 64 in 8 groups 13.2-15.3 -> 11.5-11.9, 256 on
    14^2 in 16 groups 6.0-6.2 -> 5.4). The input gradient keeps a block per group: batched,
    it was no faster (32 groups: 12.7 -> 16.1-16.8 ms)."""
    blocks = _Blocks(plan, all_groups=plan.groups > 1)
    groups, c_out_g, depth = plan.groups, blocks.c_out_g, blocks.depth
    gw_mat = grad_w.reshape(groups, c_out_g, depth)
    g_mat = _flat(grad_out).reshape(plan.out_shape[0], groups, c_out_g, -1)
    product = _memory.empty((groups, c_out_g, depth), dtype=plan.dtype)
    grad_w[...] = 0
    for n, g, row_first, span in blocks.blocks:  # products added in block order
        cols = blocks.cols(span)
        blocks.gather(x[n], g, row_first, cols)
        if g is None:  # every group at once: one batched product
            np.matmul(g_mat[n, :, :, span], cols.reshape(groups, depth, -1).transpose(0, 2, 1),
                      out=product)
            gw_mat += product
            continue
        np.matmul(g_mat[n, g, :, span], cols.T, out=product[g])
        gw_mat[g] += product[g]
    return grad_w
