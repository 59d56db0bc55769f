"""The "winograd4" implementation: stride-1 3x3 dense and grouped layers by F(4x4, 3x3).

Winograd's minimal filtering with 4x4 output tiles (Lavin & Gray, 2016): each 4x4 tile of
outputs comes from its 6x6 tile of inputs with 36 multiplications per input and output channel
instead of 144 (the direct sums) or 64 (four tiles of F(2x2, 3x3)):

    Y = A^T [ (G g G^T) * (B^T d B) ] A

at the points 0, 1, -1, 2, -2 and infinity, with

    B^T = [[4,  0, -5,  0, 1, 0],       G = [[ 1/4,     0,    0],
           [0, -4, -4,  1, 1, 0],            [-1/6,  -1/6, -1/6],
           [0,  4, -4, -1, 1, 0],            [-1/6,   1/6, -1/6],
           [0, -2, -1,  2, 1, 0],            [1/24,  1/12,  1/6],
           [0,  2, -1, -2, 1, 0],            [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]            [   0,     0,    1]]

    A^T = [[1, 1,  1, 1,  1, 0],
           [0, 1, -1, 2, -2, 0],
           [0, 1,  1, 4,  4, 0],
           [0, 1, -1, 8, -8, 1]].

The tiling, the 36 matrix products per block (one batched ``matmul``), the input gradient
(the forward of the output gradient with the rotated, transposed kernels) and the weight
gradient (``dU = sum (A dY A^T) V^T``, then ``vec(dW) = (G (x) G)^T vec(dU)``) are
:mod:`fastcorr.cpu.winograd`'s; this module holds the transforms of the inputs, of the
products back and of the output gradient.

Rounding: a transformed input entry sums up to 100 times the largest sample and an output
combines the 36 products with weights up to 8 x 8, so the error is larger than F(2x2)'s:
measured in float32 against the float64 reference on 32 channels, 10x the im2col path's
largest error for the forward and the weight gradient and 43x for the input gradient (6e-6,
2e-6 and 6e-6 of the largest value), 1e-5 of the largest output at 256 channels; float64
2-14x, at its own eps. Within the a-priori bound the tests hold F(2x2) to (see
``tests/test_implementations.py``). "auto" takes it only for finite operands, as F(2x2, 3x3).
"""

import numpy as np

from .. import _memory
from . import _pool, winograd
from ._indexing import copy_with_maps
from ._jit import helper, kernel


def why_not(plan):
    """None for a 3x3 kernel at unit strides and dilations, else why not."""
    return winograd.why_not(plan)


def input_why_not(plan):
    """None when the input gradient computes ``plan`` (a padding of at most 2 per side)."""
    return winograd.input_why_not(plan)


@helper
def _times4(v):
    """``4 v`` in ``v``'s own type (an integer literal would promote float32 to float64)."""
    w = v + v
    return w + w


@helper
def _b_transpose(d0, d1, d2, d3, d4, d5):
    """``B^T d`` for a column of six samples."""
    t0 = d4 - _times4(d2)
    t1 = d3 - _times4(d1)
    t2 = d4 - d2
    t3 = d3 - d1
    t3 = t3 + t3
    return (_times4(d0 - d2) - d2 + d4, t0 + t1, t0 - t1, t2 + t3, t2 - t3,
            _times4(d1 - d3) - d3 + d5)


@helper
def _a_transpose(m0, m1, m2, m3, m4, m5):
    """``A^T m`` for a column of six products."""
    s12 = m1 + m2
    d12 = m1 - m2
    s34 = m3 + m4
    d34 = m3 - m4
    twice = d34 + d34
    return (m0 + s12 + s34, d12 + twice, s12 + _times4(s34), d12 + _times4(twice) + m5)


@helper
def _store_six(a0, a1, a2, a3, a4, a5, j, values):
    """``a_m[j] = values[m]`` for six arrays."""
    a0[j], a1[j], a2[j] = values[0], values[1], values[2]
    a3[j], a4[j], a5[j] = values[3], values[4], values[5]


@kernel
def input_tiles(x, row_first, tiles_h, tiles_w, pad_left, row_map, col_map, lo, hi, fill,
                tiles, strip, task_lo, task_hi):
    """Transform the input tiles of tile rows ``row_first ...`` (tile row ``r`` is row
    ``r % tiles_h`` of image ``r // tiles_h``): ``tiles[e, c, i * tiles_w + b] = (B^T d B)[e]``
    for the 6x6 tile ``d`` of channel ``c`` at tile row ``row_first + i``, column ``b``.

    Tasks are ``(channel, tile row of the block)``; ``strip`` (6 rows of ``4 * tiles_w + 2``)
    is the task's copy of the tile row's input, padding included, through the boundary maps
    (as :func:`fastcorr.cpu.winograd.input_tiles`).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), C-contiguous
    tiles : ndarray, shape (36, C, block_rows * tiles_w), C-contiguous; overwritten
    """
    block_rows = tiles.shape[2] // tiles_w
    cols = 4 * tiles_w + 2
    for task in range(task_lo, task_hi):
        c, i, n, a = winograd._task_tile_row(task, block_rows, row_first, tiles_h)
        copy_with_maps(x[n, c], strip, 6, cols, row_map[4 * a:4 * a + 6], col_map, lo, hi,
                       pad_left, fill)
        # the rows of B^T d, for every column of the strip (contiguous vector loops)
        s0, s1, s2 = strip[:cols], strip[cols:2 * cols], strip[2 * cols:3 * cols]
        s3, s4, s5 = strip[3 * cols:4 * cols], strip[4 * cols:5 * cols], strip[5 * cols:]
        for j in range(np.uintp(cols)):
            _store_six(s0, s1, s2, s3, s4, s5, j,
                       _b_transpose(s0[j], s1[j], s2[j], s3[j], s4[j], s5[j]))
        # then each row times B, tile by tile (columns 4 b ... 4 b + 5)
        base = np.uintp(i * tiles_w)
        for e in range(6):
            row = strip[e * cols:(e + 1) * cols]
            t0, t1, t2 = (tiles[6 * e, c, base:], tiles[6 * e + 1, c, base:],
                          tiles[6 * e + 2, c, base:])
            t3, t4, t5 = (tiles[6 * e + 3, c, base:], tiles[6 * e + 4, c, base:],
                          tiles[6 * e + 5, c, base:])
            for b in range(np.uintp(tiles_w)):
                j = np.uintp(4) * b
                _store_six(t0, t1, t2, t3, t4, t5, b, _b_transpose(
                    row[j], row[j + np.uintp(1)], row[j + np.uintp(2)], row[j + np.uintp(3)],
                    row[j + np.uintp(4)], row[j + np.uintp(5)]))


@helper
def _store_row(quad, at, beta, y):
    """Four outputs of a tile row, plus the bias, at ``quad[at:at + 4]``."""
    quad[at] = beta + y[0]
    quad[at + np.uintp(1)] = beta + y[1]
    quad[at + np.uintp(2)] = beta + y[2]
    quad[at + np.uintp(3)] = beta + y[3]


@kernel
def output_tiles(products, bias, row_first, tiles_h, tiles_w, rows_per_task, out, scratch,
                 task_lo, task_hi):
    """Transform the products back, ``Y = A^T M A`` (plus the bias), into the output rows of
    tile rows ``row_first ...``; the last tile row and column are cut to the output.

    Tasks are ``(output channel, rows_per_task tile rows of the block)``, so that the vector
    loops run over many tiles on small planes; ``scratch`` (``40 * rows_per_task *
    tiles_w``) is the task's buffer: ``A^T M`` (24 rows: row ``6 r + e`` holds row ``r``,
    column ``e`` of every tile), then the outputs (4 rows of 4 a tile).

    Parameters
    ----------
    products : ndarray, shape (36, C_out, block_rows * tiles_w), C-contiguous
    bias : ndarray, shape (C_out,)
    out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous; written
    """
    out_h, out_w = out.shape[2], out.shape[3]
    block_rows = products.shape[2] // tiles_w
    per_channel = -(-block_rows // rows_per_task)
    span = rows_per_task * tiles_w
    width = np.uintp(4 * span)
    half = scratch[:24 * span]
    quad = scratch[24 * span:]
    for task in range(task_lo, task_hi):
        k = task // per_channel
        first = task % per_channel * rows_per_task
        last = min(block_rows, first + rows_per_task)
        count = np.uintp((last - first) * tiles_w)
        base = first * tiles_w
        beta = bias[k]
        for e in range(6):  # A^T M, column e of every tile
            m0, m1, m2 = (products[e, k, base:], products[6 + e, k, base:],
                          products[12 + e, k, base:])
            m3, m4, m5 = (products[18 + e, k, base:], products[24 + e, k, base:],
                          products[30 + e, k, base:])
            h0, h1 = half[e * span:], half[(6 + e) * span:]
            h2, h3 = half[(12 + e) * span:], half[(18 + e) * span:]
            for b in range(count):
                y0, y1, y2, y3 = _a_transpose(m0[b], m1[b], m2[b], m3[b], m4[b], m5[b])
                h0[b] = y0
                h1[b] = y1
                h2[b] = y2
                h3[b] = y3
        for r in range(4):  # (A^T M) A, row r of every tile
            rows = half[6 * r * span:]
            q0, q1, q2 = rows[:span], rows[span:2 * span], rows[2 * span:3 * span]
            q3, q4, q5 = rows[3 * span:4 * span], rows[4 * span:5 * span], rows[5 * span:6 * span]
            at = np.uintp(r) * width
            for b in range(count):
                _store_row(quad, at + np.uintp(4) * b, beta,
                           _a_transpose(q0[b], q1[b], q2[b], q3[b], q4[b], q5[b]))
        for i in range(first, last):  # each tile row into its output rows
            row = row_first + i
            n, a = row // tiles_h, row % tiles_h
            target = out[n, k]
            for r in range(min(4, out_h - 4 * a)):
                source = quad[np.uintp(r) * width + np.uintp(4 * (i - first) * tiles_w):]
                for j in range(np.uintp(out_w)):
                    target[4 * a + r, j] = source[j]


#: Tiles a task of the output transform covers at least (its vector loops' length).
OUTPUT_TILES_PER_TASK = 128


def _outputs(tiling, products, bias, first, last, out):
    """The output transform of tile rows ``first ... last - 1`` into ``out``."""
    rows = last - first
    rows_per_task = max(1, min(rows, -(-OUTPUT_TILES_PER_TASK // tiling.tiles_w)))
    span = rows_per_task * tiling.tiles_w

    def scratch():
        return _memory.empty(40 * span, dtype=tiling.plan.dtype)

    _pool.run(output_tiles, products.shape[1] * -(-rows // rows_per_task), products, bias,
              first, tiling.tiles_h, tiling.tiles_w, rows_per_task, out,
              work=winograd.TRANSFORM_WORK * products.size, scratch=scratch)


@helper
def _a(y0, y1, y2, y3):
    """``A y`` for four output gradients (the adjoint of :func:`_a_transpose`)."""
    s13 = y1 + y3
    s02 = y0 + y2
    twice = y1 + y1
    eight = _times4(y3 + y3)
    four = _times4(y2)
    return (y0, s02 + s13, s02 - s13, (y0 + four) + (twice + eight), (y0 + four) - (twice + eight),
            y3)


@kernel
def gradient_tiles(grad_out, row_first, tiles_h, tiles_w, products, scratch, task_lo,
                   task_hi):
    """The adjoint of :func:`output_tiles` (without the bias): ``products[e, k, tile] =
    (A dY A^T)[e]`` for the 4x4 tile ``dY`` of the output gradient (zeros past its edges).

    Tasks are ``(output channel, tile row of the block)``; ``scratch`` (``40 * tiles_w``) is
    the task's buffer: its copy of the tile row's output gradient (4 rows of ``4 * tiles_w``),
    then ``dY A^T`` (24 rows of ``tiles_w``: row ``6 r + f`` holds row ``r``, column ``f`` of
    every tile).

    Parameters
    ----------
    grad_out : ndarray, shape (N, C_out, H_out, W_out), C-contiguous
    products : ndarray, shape (36, C_out, block_rows * tiles_w), C-contiguous; overwritten
    """
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    block_rows = products.shape[2] // tiles_w
    width = 4 * tiles_w
    rows = scratch[:4 * width]
    half = scratch[4 * width:]
    for task in range(task_lo, task_hi):
        k, i, n, a = winograd._task_tile_row(task, block_rows, row_first, tiles_h)
        g = grad_out[n, k]
        for r in range(4):
            row = rows[r * width:(r + 1) * width]
            if 4 * a + r < out_h:
                source = g[4 * a + r]
                for j in range(np.uintp(out_w)):
                    row[j] = source[j]
                for j in range(np.uintp(out_w), np.uintp(width)):
                    row[j] = 0
            else:
                for j in range(np.uintp(width)):
                    row[j] = 0
        # dY A^T: each row's tiles to six columns, into half[r][f] (tiles_w each)
        for r in range(4):
            row = rows[r * width:(r + 1) * width]
            h = half[6 * r * tiles_w:]
            h0, h1, h2 = h[:tiles_w], h[tiles_w:2 * tiles_w], h[2 * tiles_w:3 * tiles_w]
            h3, h4 = h[3 * tiles_w:4 * tiles_w], h[4 * tiles_w:5 * tiles_w]
            h5 = h[5 * tiles_w:6 * tiles_w]
            for b in range(np.uintp(tiles_w)):
                j = np.uintp(4) * b
                _store_six(h0, h1, h2, h3, h4, h5, b, _a(row[j], row[j + np.uintp(1)],
                                                         row[j + np.uintp(2)],
                                                         row[j + np.uintp(3)]))
        # then A (dY A^T), column f of every tile (contiguous vector loops)
        base = i * tiles_w
        for f in range(6):
            q0, q1 = half[f * tiles_w:], half[(6 + f) * tiles_w:]
            q2, q3 = half[(12 + f) * tiles_w:], half[(18 + f) * tiles_w:]
            p0, p1, p2 = (products[f, k, base:], products[6 + f, k, base:],
                          products[12 + f, k, base:])
            p3, p4, p5 = (products[18 + f, k, base:], products[24 + f, k, base:],
                          products[30 + f, k, base:])
            for b in range(np.uintp(tiles_w)):
                _store_six(p0, p1, p2, p3, p4, p5, b, _a(q0[b], q1[b], q2[b], q3[b]))


#: Winograd's F(4x4, 3x3).
F4X4 = winograd.Transforms(4, [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
                           input_tiles, _outputs, gradient_tiles, gradient_scratch=40)


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``."""
    return winograd.correlate(x, weight, bias, out, plan, F4X4)


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    return winograd.grad_input(grad_out, weight, grad_x, plan, F4X4)


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten)."""
    return winograd.grad_weight(grad_out, x, grad_w, plan, F4X4)
