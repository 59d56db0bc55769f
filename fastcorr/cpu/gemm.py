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
        self.c_in_g, self.c_out_g = plan.weight_shape[1], c_out // plan.groups
        self.depth = _depth(plan)
        self.gathered = plan.groups if all_groups else 1  # groups per buffer
        self.rows = _block_rows(plan, self.gathered)
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

    def gather(self, x, n, g, row_first, cols):
        """Fill ``cols`` with the patches of image ``n`` of ``x`` (N, C_in, H, W) for group
        ``g`` (every group for ``g=None``)."""
        first, count = (0, x.shape[1]) if g is None else (g * self.c_in_g, self.c_in_g)
        _gather(self.plan, x, n, 1, first, count, row_first, cols)

    def scatter(self, cols, n, g, row_first, grad_x):
        """Add ``cols`` back into image ``n`` of ``grad_x`` (N, C_in, H, W) for group ``g``."""
        _scatter(self.plan, cols, n, 1, g * self.c_in_g, self.c_in_g, row_first, grad_x)


def _block_rows(plan, gathered=1):
    """Output rows a block of one image holds: a buffer within the budget and no larger than
    the output (the shape alone decides)."""
    n_batch, c_out, out_h, out_w = plan.out_shape
    budget = min(config.CPU_IM2COL_BLOCK_ELEMENTS, n_batch * c_out * out_h * out_w)
    return max(1, min(out_h, budget // (gathered * _depth(plan) * out_w)))


def _geometry(plan, row_first):
    """The arguments of the im2col kernels after the block's first output row."""
    return (plan.weight_shape[2], plan.weight_shape[3], row_first, plan.out_shape[3],
            plan.stride[0], plan.stride[1], plan.dilation[0], plan.dilation[1], plan.pad_top,
            plan.pad_left, plan.pad_mode)


def _gather(plan, x, n, images, c_first, c_count, row_first, cols):
    """Fill ``cols`` with the patches of channels ``c_first ...`` (``c_count``) of images
    ``n ... n + images - 1`` of ``x`` (N, C_in, H, W), from output row ``row_first`` on."""
    _pool.run(im2col_rows, c_count * plan.weight_shape[2], x, n, images, c_first,
              *_geometry(plan, row_first), plan.dtype.type(plan.fill), cols,
              work=COPY_WORK * cols.size)


def _scatter(plan, cols, n, images, c_first, c_count, row_first, grad_x):
    """Add ``cols`` back into channels ``c_first ...`` (``c_count``) of images ``n ... n +
    images - 1`` of ``grad_x`` (N, C_in, H, W), from output row ``row_first`` on."""
    _pool.run(col2im_rows, images * c_count, cols, n, images, c_first,
              *_geometry(plan, row_first), grad_x, work=COPY_WORK * cols.size)


def _flat(a):
    """A view of a C-contiguous NCHW array as (N, C, H * W)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``: gather patches, multiply by the weights."""
    if plan.groups > 1:
        return _correlate_groups(x, weight, bias, out, plan)
    if _by_images(plan, MIN_POSITIONS_FORWARD):
        return _correlate_images(x, weight, bias, out, plan)
    blocks = _Blocks(plan)
    c_out_g = blocks.c_out_g
    w_mat = weight.reshape(plan.groups, c_out_g, blocks.depth)
    out_mat = _flat(out)
    for n, g, row_first, span in blocks.blocks:
        cols = blocks.cols(span)
        blocks.gather(x, n, g, row_first, cols)
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
        blocks.gather(x, n, None, row_first, cols)
        target = out_mat[n, :, :, span]
        np.matmul(w_mat, cols.reshape(groups, depth, -1), out=target)
        if bias is not None:
            target += bias.reshape(groups, c_out_g, 1)
    return out


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    if _by_images(plan, MIN_POSITIONS_FORWARD):
        return _grad_input_images(grad_out, weight, grad_x, plan)
    blocks = _Blocks(plan)
    c_out_g = blocks.c_out_g
    w_mat_t = weight.reshape(plan.groups, c_out_g, blocks.depth).transpose(0, 2, 1)
    g_mat = _flat(grad_out)
    grad_x[...] = 0
    for n, g, row_first, span in blocks.blocks:
        cols = blocks.cols(span)
        np.matmul(w_mat_t[g], g_mat[n, g * c_out_g:(g + 1) * c_out_g, span], out=cols)
        blocks.scatter(cols, n, g, row_first, grad_x)
    return grad_x


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten).

    Grouped layers gather every group's patches per block and make one batched product, as
    the forward does (Zen 4, float32, batch 8, 3x3, ms, before -> after: 128 channels on
    56^2 in 32 groups 12.5-13.2 -> 11.1-11.8, 64 in 8 groups 13.2-15.3 -> 11.5-11.9, 256 on
    14^2 in 16 groups 6.0-6.2 -> 5.4). The input gradient keeps a block per group: batched,
    it was no faster (32 groups: 12.7 -> 16.1-16.8 ms)."""
    if _by_images(plan, MIN_POSITIONS):
        return _grad_weight_images(grad_out, x, grad_w, plan)
    blocks = _Blocks(plan, all_groups=plan.groups > 1)
    groups, c_out_g, depth = plan.groups, blocks.c_out_g, blocks.depth
    gw_mat = grad_w.reshape(groups, c_out_g, depth)
    g_mat = _flat(grad_out).reshape(plan.out_shape[0], groups, c_out_g, -1)
    product = _memory.empty((groups, c_out_g, depth), dtype=plan.dtype)
    grad_w[...] = 0
    for n, g, row_first, span in blocks.blocks:  # products added in block order
        cols = blocks.cols(span)
        blocks.gather(x, n, g, row_first, cols)
        if g is None:  # every group at once: one batched product
            np.matmul(g_mat[n, :, :, span], cols.reshape(groups, depth, -1).transpose(0, 2, 1),
                      out=product)
            gw_mat += product
            continue
        np.matmul(g_mat[n, g, :, span], cols.T, out=product[g])
        gw_mat[g] += product[g]
    return grad_w


#: A dense layer's weight gradient takes several whole images a block where a block of one
#: image would hold fewer output positions than this: its products had been short
#: reductions (49 positions on 7x7 outputs) and the gradient was summed once per image (Zen 4,
#: float32, batch 8, ms, one image a block -> several: 256 -> 512 channels 3x3/2 on 14^2
#: 8.2-20 -> 6.3-8.2, 16 -> 32 5x5 on 28^2 (blocks of 17 rows) 4.0-4.5 -> 3.1-3.8, 128 ->
#: 256 3x3/2 on 28^2 (196 positions) 8.0-15 -> 7.8-9.0; 784 positions, 64 -> 128 3x3/2 on
#: 56^2: 8.6 -> 10.3, so one image a block there).
MIN_POSITIONS = 512

#: The same for the forward and the input gradient, whose products gain less from longer
#: rows (the same machine: 256 -> 512 3x3/2 on 14^2, 49 positions, forward 1.06-1.24x, input
#: gradient 1.13-1.42x; 128 -> 256 3x3/2 on 28^2, 196 positions, 0.95-0.99x; 16 -> 32 5x5 on
#: 28^2 0.88-1.06x).
MIN_POSITIONS_FORWARD = 128


class _ImageBlocks:
    """Blocks of whole images for a dense layer (one group): patches (depth, images *
    positions), and a matching (C_out, images * positions) buffer for the output side."""

    def __init__(self, plan):
        self.plan = plan
        self.c_out, self.depth = plan.weight_shape[0], _depth(plan)
        self.n_batch, self.positions = plan.out_shape[0], plan.out_shape[2] * plan.out_shape[3]
        self.per_block = _images_per_block(plan)
        width = self.per_block * self.positions
        self._cols = _memory.empty(self.depth * width, dtype=plan.dtype)
        self._rows = _memory.empty(self.c_out * width, dtype=plan.dtype)

    def __iter__(self):
        """``(first image, images)`` of each block, in order."""
        for n in range(0, self.n_batch, self.per_block):
            yield n, min(self.per_block, self.n_batch - n)

    def cols(self, images):
        return self._cols[:self.depth * images * self.positions].reshape(self.depth, -1)

    def rows(self, images):
        """The output side's buffer: (C_out, images, positions)."""
        return self._rows[:self.c_out * images * self.positions].reshape(
            self.c_out, images, self.positions)

    def gradient_rows(self, grad_out, n, images):
        """The output gradient of images ``n ... n + images - 1`` in the output side's
        buffer, as a (C_out, images * positions) matrix."""
        rows = self.rows(images)
        np.copyto(rows, _flat(grad_out)[n:n + images].transpose(1, 0, 2))
        return rows.reshape(self.c_out, -1)


def _depth(plan):
    """The reduction depth of a patch: ``C_in/groups * kH * kW``."""
    return plan.weight_shape[1] * plan.weight_shape[2] * plan.weight_shape[3]


def _by_images(plan, min_positions):
    """Whether a dense layer computes in blocks of whole images (see MIN_POSITIONS)."""
    return (plan.groups == 1 and _images_per_block(plan) > 1
            and _block_rows(plan) * plan.out_shape[3] < min_positions)


def _images_per_block(plan):
    """How many whole images' patches fit a block (the budget of :class:`_Blocks`)."""
    n, _, out_h, out_w = plan.out_shape
    return min(n, config.CPU_IM2COL_BLOCK_ELEMENTS // (_depth(plan) * out_h * out_w))


def _correlate_images(x, weight, bias, out, plan):
    """The forward in blocks of whole images: ``W (C_out, depth) @ cols``, each block's
    result transposed into the images' planes."""
    blocks = _ImageBlocks(plan)
    w_mat = weight.reshape(blocks.c_out, blocks.depth)
    out_mat = _flat(out)
    for n, images in blocks:
        cols = blocks.cols(images)
        _gather(plan, x, n, images, 0, x.shape[1], 0, cols)
        rows = blocks.rows(images)
        np.matmul(w_mat, cols, out=rows.reshape(blocks.c_out, -1))
        target = out_mat[n:n + images]
        np.copyto(target, rows.transpose(1, 0, 2))
        if bias is not None:
            target += bias[:, None]
    return out


def _grad_input_images(grad_out, weight, grad_x, plan):
    """The input gradient in blocks of whole images: ``W^T @ grad_out_block``, scattered back
    image by image, plane by plane."""
    blocks = _ImageBlocks(plan)
    w_mat_t = weight.reshape(blocks.c_out, blocks.depth).T
    grad_x[...] = 0
    for n, images in blocks:
        cols = blocks.cols(images)
        np.matmul(w_mat_t, blocks.gradient_rows(grad_out, n, images), out=cols)
        _scatter(plan, cols, n, images, 0, grad_x.shape[1], 0, grad_x)
    return grad_x


def _grad_weight_images(grad_out, x, grad_w, plan):
    """The weight gradient in blocks of whole images: one product ``grad_out_block (C_out,
    images * positions) @ cols.T`` a block, its reduction over every position of the block's
    images; the blocks' products added in block order."""
    blocks = _ImageBlocks(plan)
    gw_mat = grad_w.reshape(blocks.c_out, blocks.depth)
    product = None  # the sums of the blocks after the first (one block: none)
    for index, (n, images) in enumerate(blocks):
        cols = blocks.cols(images)
        _gather(plan, x, n, images, 0, x.shape[1], 0, cols)
        if index and product is None:
            product = _memory.empty(gw_mat.shape, dtype=plan.dtype)
        np.matmul(blocks.gradient_rows(grad_out, n, images), cols.T,
                  out=product if index else gw_mat)
        if index:
            gw_mat += product
    return grad_w
