"""The "winograd" implementation: stride-1 3x3 dense and grouped layers by F(2x2, 3x3).

Winograd's minimal filtering (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016) computes each 2x2 tile of outputs from its 4x4 tile of inputs with 16
multiplications per input and output channel instead of 36:

    Y = A^T [ (G g G^T) * (B^T d B) ] A

where ``g`` is a 3x3 kernel, ``d`` the input tile, ``*`` the element-wise product, and

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].

Summed over input channels, the element-wise products become 16 matrix products per block
of tiles, ``M[e] = U[e] @ V[e]`` with ``U[e]`` (C_out, C_in) the transformed weights and
``V[e]`` (C_in, tiles) the transformed inputs: 2.25x fewer multiply-adds than the direct sums,
done by NumPy's BLAS (one batched ``matmul`` over the 16 components and the groups).
fastcorr's threads run the transforms (:func:`input_tiles`, :func:`output_tiles`, and the
adjoint :func:`gradient_tiles`); the kernels' transforms are one more BLAS product. F(4x4, 3x3)
(:mod:`fastcorr.cpu.winograd4`) shares the tiling and the host code (:class:`Transforms`).

- forward: transform input tiles, multiply, transform back (plus bias);
- input gradient: the forward of the output gradient with the rotated, transposed kernel
  (zero padding ``2 - pad``); other boundary rules compute the gradient of the padded input
  and fold it back (:func:`fastcorr.cpu.rows.fold_planes`);
- weight gradient: ``dU[e] = sum over blocks of (A dY A^T)[e] @ V[e]^T``, then
  ``dW = G^T dU G``.

Rounding: the transforms add and subtract up to 4 input samples a component and the inverse
9 products an output, and the kernels' transforms halve, so the error can be a few times that
of the direct sums. Tested against the float64 reference: within 4x the im2col path's largest
error on a 32-channel layer (measured: a few 1e-7 of the largest output in float32, as the
direct path's), and within an a-priori bound, ``36 (16 C_in/g + 8) eps max|x| sum|w_k|``
for the forward (see
``tests/test_implementations.py``). Results do not depend on fastcorr's thread count (blocks
have a shape set by the layer, products are summed in block order). Non-finite inputs would
turn into NaNs in the transforms where the direct sums give infinities, so "auto" takes this
path only for finite operands.
"""

import numpy as np

from .. import _memory
from .. import _validate as v
from .. import config
from . import _pool
from ._indexing import boundary_maps, copy_with_maps
from ._jit import helper, kernel

#: Work units a transformed sample counts for when the pool sizes a transform's threads.
TRANSFORM_WORK = 8

def why_not(plan):
    """None for a 3x3 kernel at unit strides and dilations, else why not."""
    if plan.weight_shape[2:] != (3, 3):
        return f"it needs a 3x3 kernel (got {plan.weight_shape[2]}x{plan.weight_shape[3]})"
    if plan.stride != (1, 1) or plan.dilation != (1, 1):
        return "it needs unit strides and dilations"
    return None


def input_why_not(plan):
    """None when the input gradient computes ``plan`` (a padding of at most 2 per side)."""
    reason = why_not(plan)
    if reason is None and max(plan.pad_top, plan.pad_bottom, plan.pad_left,
                              plan.pad_right) > 2:
        return "its input gradient needs a padding of at most 2"
    return reason


@helper
def _task_tile_row(task, block_rows, row_first, tiles_h):
    """Task ``(channel, tile row of the block)``: the channel, the row's index in the block,
    and its image and tile row there (tile row ``r`` is row ``r % tiles_h`` of image
    ``r // tiles_h``)."""
    r = row_first + task % block_rows
    return task // block_rows, task % block_rows, r // tiles_h, r % tiles_h


@kernel
def input_tiles(x, row_first, tiles_h, tiles_w, pad_left, row_map, col_map, lo, hi, fill,
                tiles, strip, task_lo, task_hi):
    """Transform the input tiles of tile rows ``row_first ...`` (tile row ``r`` is row
    ``r % tiles_h`` of image ``r // tiles_h``): ``tiles[e, c, i * tiles_w + b] = (B^T d B)[e]``
    for the 4x4 tile ``d`` of channel ``c`` at tile row ``row_first + i``, column ``b``.

    Tasks are ``(channel, tile row of the block)``; ``strip`` (4 rows of ``2 * tiles_w + 2``)
    is the task's copy of the tile row's input, padding included: padded row ``p`` is input
    row ``row_map[p]`` and padded column ``j`` input column ``col_map[j]`` (-1: the fill), the
    boundary rule evaluated once a call (:func:`fastcorr.cpu._indexing.boundary_maps`), so that the kernel compiles
    without it; columns ``lo <= j < hi`` are the input's ``j - pad_left``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), C-contiguous
    tiles : ndarray, shape (16, C, block_rows * tiles_w), C-contiguous; overwritten
    """
    block_rows = tiles.shape[2] // tiles_w
    cols = 2 * tiles_w + 2
    for task in range(task_lo, task_hi):
        c, i, n, a = _task_tile_row(task, block_rows, row_first, tiles_h)
        copy_with_maps(x[n, c], strip, 4, cols, row_map[2 * a:2 * a + 4], col_map, lo, hi,
                       pad_left, fill)
        # rows of B^T d, for every column of the strip (contiguous vector loops)
        for j in range(np.uintp(cols)):
            s0 = strip[j]
            s1 = strip[np.uintp(cols) + j]
            s2 = strip[np.uintp(2 * cols) + j]
            s3 = strip[np.uintp(3 * cols) + j]
            strip[j] = s0 - s2
            strip[np.uintp(cols) + j] = s1 + s2
            strip[np.uintp(2 * cols) + j] = s2 - s1
            strip[np.uintp(3 * cols) + j] = s1 - s3
        base = np.uintp(i * tiles_w)
        for e in range(4):
            row = strip[e * cols:(e + 1) * cols]
            d0 = tiles[4 * e, c, base:]
            d1 = tiles[4 * e + 1, c, base:]
            d2 = tiles[4 * e + 2, c, base:]
            d3 = tiles[4 * e + 3, c, base:]
            for b in range(np.uintp(tiles_w)):
                j = np.uintp(2) * b
                t0 = row[j]
                t1 = row[j + np.uintp(1)]
                t2 = row[j + np.uintp(2)]
                t3 = row[j + np.uintp(3)]
                d0[b] = t0 - t2
                d1[b] = t1 + t2
                d2[b] = t2 - t1
                d3[b] = t1 - t3


@kernel
def output_tiles(products, bias, row_first, tiles_h, tiles_w, out, pair, task_lo, task_hi):
    """Transform the products back, ``Y = A^T M A`` (plus the bias), into the output rows of
    tile rows ``row_first ...``; the last tile row and column are cut to the output.

    Tasks are ``(output channel, tile row of the block)``; ``pair`` (2 rows of
    ``2 * tiles_w``) is the task's buffer.

    Parameters
    ----------
    products : ndarray, shape (16, C_out, block_rows * tiles_w), C-contiguous
    bias : ndarray, shape (C_out,)
    out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous; written
    """
    out_h, out_w = out.shape[2], out.shape[3]
    block_rows = products.shape[2] // tiles_w
    width = np.uintp(2 * tiles_w)
    for task in range(task_lo, task_hi):
        k, i, n, a = _task_tile_row(task, block_rows, row_first, tiles_h)
        base = np.uintp(i * tiles_w)
        beta = bias[k]
        m0, m1, m2, m3 = (products[0, k, base:], products[1, k, base:], products[2, k, base:],
                          products[3, k, base:])
        m4, m5, m6, m7 = (products[4, k, base:], products[5, k, base:], products[6, k, base:],
                          products[7, k, base:])
        m8, m9, m10, m11 = (products[8, k, base:], products[9, k, base:],
                            products[10, k, base:], products[11, k, base:])
        m12, m13, m14, m15 = (products[12, k, base:], products[13, k, base:],
                              products[14, k, base:], products[15, k, base:])
        for b in range(np.uintp(tiles_w)):
            # A^T M: two rows of four
            u0 = m0[b] + m4[b] + m8[b]
            u1 = m1[b] + m5[b] + m9[b]
            u2 = m2[b] + m6[b] + m10[b]
            u3 = m3[b] + m7[b] + m11[b]
            w0 = m4[b] - m8[b] - m12[b]
            w1 = m5[b] - m9[b] - m13[b]
            w2 = m6[b] - m10[b] - m14[b]
            w3 = m7[b] - m11[b] - m15[b]
            j = np.uintp(2) * b
            pair[j] = beta + (u0 + u1 + u2)
            pair[j + np.uintp(1)] = beta + (u1 - u2 - u3)
            pair[width + j] = beta + (w0 + w1 + w2)
            pair[width + j + np.uintp(1)] = beta + (w1 - w2 - w3)
        target = out[n, k]
        for j in range(np.uintp(out_w)):
            target[2 * a, j] = pair[j]
        if 2 * a + 1 < out_h:
            for j in range(np.uintp(out_w)):
                target[2 * a + 1, j] = pair[width + j]


@kernel
def gradient_tiles(grad_out, row_first, tiles_h, tiles_w, products, pair, task_lo, task_hi):
    """The adjoint of :func:`output_tiles` (without the bias): ``products[e, k, tile] =
    (A dY A^T)[e]`` for the 2x2 tile ``dY`` of the output gradient (zeros past its edges).

    Tasks are ``(output channel, tile row of the block)``; ``pair`` (2 rows of
    ``2 * tiles_w``) is the task's buffer.

    Parameters
    ----------
    grad_out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous
    products : ndarray, shape (16, C_out, block_rows * tiles_w), C-contiguous; overwritten
    """
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    block_rows = products.shape[2] // tiles_w
    width = np.uintp(2 * tiles_w)
    for task in range(task_lo, task_hi):
        k, i, n, a = _task_tile_row(task, block_rows, row_first, tiles_h)
        g = grad_out[n, k]
        for j in range(np.uintp(out_w), width):
            pair[j] = 0
            pair[width + j] = 0
        for j in range(np.uintp(out_w)):
            pair[j] = g[2 * a, j]
        if 2 * a + 1 < out_h:
            for j in range(np.uintp(out_w)):
                pair[width + j] = g[2 * a + 1, j]
        else:
            for j in range(np.uintp(out_w)):
                pair[width + j] = 0
        base = np.uintp(i * tiles_w)
        for b in range(np.uintp(tiles_w)):
            y00 = pair[2 * b]
            y01 = pair[2 * b + 1]
            y10 = pair[width + 2 * b]
            y11 = pair[width + 2 * b + 1]
            # dY A^T: the rows (y0, y0 + y1, y0 - y1, -y1) of each output row
            p0, p1, p2, p3 = y00, y00 + y01, y00 - y01, -y01
            q0, q1, q2, q3 = y10, y10 + y11, y10 - y11, -y11
            products[0, k, base + b] = p0
            products[1, k, base + b] = p1
            products[2, k, base + b] = p2
            products[3, k, base + b] = p3
            products[4, k, base + b] = p0 + q0
            products[5, k, base + b] = p1 + q1
            products[6, k, base + b] = p2 + q2
            products[7, k, base + b] = p3 + q3
            products[8, k, base + b] = p0 - q0
            products[9, k, base + b] = p1 - q1
            products[10, k, base + b] = p2 - q2
            products[11, k, base + b] = p3 - q3
            products[12, k, base + b] = -q0
            products[13, k, base + b] = -q1
            products[14, k, base + b] = -q2
            products[15, k, base + b] = -q3


class Transforms:
    """One Winograd algorithm F(m x m, 3x3): its output tile size ``m``, its kernel matrix
    ``G`` (``m + 2`` rows of 3), its input and output-gradient kernels (with the signatures
    of :func:`input_tiles` and :func:`gradient_tiles`, the latter's scratch buffer
    ``gradient_scratch`` elements a tile of a tile row) and
    ``outputs(tiling, products, bias, first, last, out)``, which transforms a block's
    products back into ``out`` (as :func:`_outputs`)."""

    def __init__(self, m, g, input_tiles, outputs, gradient_tiles, gradient_scratch):
        self.m, self.components = m, (m + 2) ** 2
        self.gradient_tiles, self.gradient_scratch = gradient_tiles, gradient_scratch
        #: ``G (x) G`` (components, 9): ``vec(G g G^T) = (G (x) G) vec(g)``, float64
        self.kernel_product = np.kron(np.asarray(g, dtype=np.float64),
                                      np.asarray(g, dtype=np.float64))
        self.input_tiles, self.outputs = input_tiles, outputs


class _Tiles:
    """The tiling of one plan: m x m output tiles, blocks of whole tile rows (across images)."""

    def __init__(self, plan, transforms, budget=None):
        self.plan, self.transforms = plan, transforms
        m, components = transforms.m, transforms.components
        n, c_out, out_h, out_w = plan.out_shape
        self.tiles_h, self.tiles_w = -(-out_h // m), -(-out_w // m)
        channels = max(plan.input_shape[1], c_out)
        rows = n * self.tiles_h
        # a block's transformed inputs (components x channels x tiles) about twice the
        # transformed weights; the shape alone decides, so results do not depend on the thread
        # count. Measured, Zen 4, float32, batch 8, forward ms for blocks of 2^18 ... 2^22
        # elements: F(4x4) 64 on 56^2 10.8 11.5 15.5 18.4 23.1, 128 on 28^2 9.9 8.4 8.6 8.3
        # 8.2; F(2x2) 256 on 14^2 11.0 10.6 11.0 9.7 9.7 (a fixed 2^20 before). Or ``budget``.
        if budget is None:
            c_in_g = plan.weight_shape[1]
            budget = min(max(2 * components * c_out * c_in_g,
                             config.CPU_WINOGRAD_MIN_BLOCK_ELEMENTS),
                         config.CPU_WINOGRAD_MAX_BLOCK_ELEMENTS)
        fit = budget // (components * channels * self.tiles_w)
        self.block_rows = max(1, min(rows, fit))
        self.blocks = [(first, min(rows, first + self.block_rows))
                       for first in range(0, rows, self.block_rows)]
        self._maps = boundary_maps(plan, m * self.tiles_h + 2, m * self.tiles_w + 2)
        size = components * self.block_rows * self.tiles_w
        self._inputs = _memory.empty(size * plan.input_shape[1], dtype=plan.dtype)
        self._products = _memory.empty(size * c_out, dtype=plan.dtype)

    def _view(self, buffer, channels, first, last):
        count = (last - first) * self.tiles_w
        components = self.transforms.components
        return buffer[:components * channels * count].reshape(components, channels, count)

    def inputs(self, x, first, last):
        """The transformed input tiles of tile rows ``first ... last - 1``:
        (components, C_in, tiles)."""
        plan, m = self.plan, self.transforms.m
        c_in = plan.input_shape[1]
        tiles = self._view(self._inputs, c_in, first, last)
        cols = m * self.tiles_w + 2

        def scratch():
            return _memory.empty((m + 2) * cols, dtype=plan.dtype)

        _pool.run(self.transforms.input_tiles, c_in * (last - first), x, first, self.tiles_h,
                  self.tiles_w, plan.pad_left, *self._maps, plan.dtype.type(plan.fill), tiles,
                  work=TRANSFORM_WORK * tiles.size, scratch=scratch)
        return tiles

    def products(self, first, last):
        """The products' buffer for tile rows ``first ... last - 1``: (components, C_out,
        tiles)."""
        return self._view(self._products, self.plan.out_shape[1], first, last)

    def rows(self):
        """A task's buffer for the output-gradient transform (F(2x2)'s output transform too):
        ``gradient_scratch`` a tile of a tile row."""
        return _memory.empty(self.transforms.gradient_scratch * self.tiles_w,
                             dtype=self.plan.dtype)


def _grouped(a, groups):
    """``(components, C, tiles)`` as ``(components, groups, C / groups, tiles)``."""
    return a.reshape(a.shape[0], groups, a.shape[1] // groups, a.shape[2])


def transformed_weights(weight, plan, transforms, rotate=False):
    """``U[e] = (G g G^T)[e]`` for every kernel ``g`` (rotated by 180 degrees if ``rotate``):
    (components, groups, C_out/g, C_in/g).

    One matrix product, ``U = (G (x) G) vec(g)`` for all kernels at once, by BLAS (the
    kernels as the columns of a transposed view; rotating a kernel reverses ``vec(g)``, so
    it reverses the columns of ``G (x) G``): it writes each component's plane in order,
    where a loop over the kernels had written all of them at once (512 x 512 kernels: 24 ms
    for F(4x4)'s 36 planes, now a few ms). ``G (x) G`` is rounded to the dtype (F(2x2)'s
    entries are exact; F(4x4)'s sixths and twelfths round, a relative eps per entry).
    """
    c_out, c_in_g = plan.weight_shape[:2]
    product = transforms.kernel_product[:, ::-1] if rotate else transforms.kernel_product
    u = _memory.empty((transforms.components, c_out * c_in_g), dtype=plan.dtype)
    np.matmul(product.astype(plan.dtype), weight.reshape(c_out * c_in_g, 9).T, out=u)
    return u.reshape(transforms.components, plan.groups, c_out // plan.groups, c_in_g)


def correlate(x, weight, bias, out, plan, transforms=None):
    """Compute ``plan`` into ``out`` (by F(2x2, 3x3) unless other ``transforms``)."""
    transforms = transforms or F2X2
    return _correlate(x, transformed_weights(weight, plan, transforms), bias, out, plan,
                      transforms)


def _correlate(x, u, bias, out, plan, transforms):
    """``plan`` into ``out`` with the transformed weights ``u`` (components, groups, C_out/g,
    C_in/g), which may be a view with transposed matrices (BLAS reads them so)."""
    tiling = _Tiles(plan, transforms)
    if bias is None:
        bias = np.zeros(plan.out_shape[1], dtype=plan.dtype)
    for first, last in tiling.blocks:
        tiles = tiling.inputs(x, first, last)
        products = tiling.products(first, last)
        np.matmul(u, _grouped(tiles, plan.groups), out=_grouped(products, plan.groups))
        transforms.outputs(tiling, products, bias, first, last, out)
    return out


def _transposed(plan, out_hw, pad_top, pad_left):
    """The forward plan of the input gradient: the output gradient correlated with the
    rotated, transposed kernel into an ``out_hw`` extent (zero padding)."""
    from dataclasses import replace

    n, c_out, out_h, out_w = plan.out_shape
    c_in = plan.input_shape[1]
    return replace(plan, input_shape=(n, c_out, out_h, out_w), out_shape=(n, c_in) + out_hw,
                   weight_shape=(c_in, c_out // plan.groups, 3, 3), pad_top=pad_top,
                   pad_left=pad_left, pad_bottom=out_hw[0] + 2 - out_h - pad_top,
                   pad_right=out_hw[1] + 2 - out_w - pad_left, pad_mode=v.ZEROS, fill=0.0)


def grad_input(grad_out, weight, grad_x, plan, transforms=None):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten; by
    F(2x2, 3x3) unless other ``transforms``): the forward of the output gradient with each
    group's kernels rotated and transposed, whose transform is the transform of the rotated
    kernels with each group's matrices transposed (a view)."""
    from .rows import fold

    transforms = transforms or F2X2
    u = transformed_weights(weight, plan, transforms, rotate=True).transpose(0, 1, 3, 2)
    n, c, h, w = plan.input_shape
    if plan.pad_mode == v.ZEROS:
        inner = _transposed(plan, (h, w), 2 - plan.pad_top, 2 - plan.pad_left)
        return _correlate(grad_out, u, None, grad_x, inner, transforms)
    padded_hw = (h + plan.pad_top + plan.pad_bottom, w + plan.pad_left + plan.pad_right)
    padded = _memory.empty((n, c) + padded_hw, dtype=plan.dtype)
    _correlate(grad_out, u, None, padded, _transposed(plan, padded_hw, 2, 2), transforms)
    return fold(padded, grad_x, -plan.pad_top, -plan.pad_left, plan.pad_mode)


def grad_weight(grad_out, x, grad_w, plan, transforms=None):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten; by
    F(2x2, 3x3) unless other ``transforms``)."""
    transforms = transforms or F2X2
    tiling = _Tiles(plan, transforms, config.CPU_WINOGRAD_GRAD_WEIGHT_BLOCK_ELEMENTS)
    groups, components = plan.groups, transforms.components
    c_out, c_in_g = plan.weight_shape[:2]
    total = _memory.empty((components, groups, c_out // groups, c_in_g), dtype=plan.dtype)
    product = _memory.empty(total.shape, total.dtype) if len(tiling.blocks) > 1 else None
    for index, (first, last) in enumerate(tiling.blocks):  # products added in block order
        tiles = tiling.inputs(x, first, last)
        grads = tiling.products(first, last)
        _pool.run(transforms.gradient_tiles, c_out * (last - first), grad_out, first,
                  tiling.tiles_h, tiling.tiles_w, grads, work=TRANSFORM_WORK * grads.size,
                  scratch=tiling.rows)
        # the first block's products are the sums so far (with many channels and few tiles,
        # as on 7x7 planes, the (16, C_out, C_in) sums cost as much as the products)
        np.matmul(_grouped(grads, groups), _grouped(tiles, groups).transpose(0, 1, 3, 2),
                  out=product if index else total)
        if index:
            total += product
    # dW = G^T dU G for every kernel: vec(dW) = (G (x) G)^T vec(dU), one matrix product
    np.matmul(total.reshape(components, c_out * c_in_g).T,
              transforms.kernel_product.astype(plan.dtype),
              out=grad_w.reshape(c_out * c_in_g, 9))
    return grad_w


def _outputs(tiling, products, bias, first, last, out):
    """F(2x2)'s output transform of tile rows ``first ... last - 1`` into ``out``."""
    _pool.run(output_tiles, products.shape[1] * (last - first), products, bias, first,
              tiling.tiles_h, tiling.tiles_w, out, work=TRANSFORM_WORK * products.size,
              scratch=tiling.rows)


#: Winograd's F(2x2, 3x3), this module's kernels.
F2X2 = Transforms(2, [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], input_tiles,
                  _outputs, gradient_tiles, gradient_scratch=4)
