"""Dense and grouped layers as im2col blocks and matrix products (NumPy's BLAS).

Forward: ``out_block = W_g @ cols``. Gradients: ``grad_W_g += grad_out_block @ cols.T`` and
``grad_cols = W_g.T @ grad_out_block``, scattered back by col2im.

The blocks are shared by as many Python threads as fastcorr's thread count, each gathering
its own blocks (the gather releases the GIL) and multiplying them with BLAS held to one thread
per call. Alternating a gather with multi-threaded BLAS calls instead leaves BLAS's idle
workers spinning on the core the gather needs: a dense 3x3 layer took twice as long.

Results do not depend on the number of threads: every block is multiplied by a
single-threaded BLAS call of the same shape, input gradients are scattered image by image
(each image by one thread, in a fixed order), and the weight gradient's per-block products
are added in block order.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .. import config, threads
from .im2col_kernel import col2im_rows, im2col_rows


class _Blocks:
    """The block decomposition of one plan: which output rows each patch buffer holds, and
    one patch buffer per thread that works on them."""

    def __init__(self, plan, by_image=False):
        self.plan = plan
        n_batch, c_out, out_h, out_w = plan.out_shape
        c_in_g, kh, kw = plan.weight_shape[1:]
        self.c_in_g, self.c_out_g = c_in_g, c_out // plan.groups
        self.depth = c_in_g * kh * kw
        # the block shape depends on the layer's shape only (never on the thread count, which
        # would change the sums): a buffer within the budget and half the output's size
        out_size = n_batch * c_out * out_h * out_w
        budget = min(config.CPU_IM2COL_BLOCK_ELEMENTS, out_size // 2)
        self.rows = max(1, min(out_h, budget // (self.depth * out_w)))
        if n_batch * plan.groups == 1:  # one plane: two blocks at least, for two threads
            self.rows = min(self.rows, max(1, (out_h + 1) // 2))
        buffer_size = self.depth * self.rows * out_w
        #: ``(n, g, first row, slice of the block in a flattened plane)`` in a fixed order
        self.blocks = [(n, g, row_first, slice(row_first * out_w,
                                                min(out_h, row_first + self.rows) * out_w))
                       for n in range(n_batch) for g in range(plan.groups)
                       for row_first in range(0, out_h, self.rows)]
        # threads: fastcorr's count where BLAS can be held to one thread a call, with as many
        # buffers as fit in the output's size
        wanted = threads.get_num_threads() if threads.blas_threads() is not None else 1
        units = n_batch if by_image else len(self.blocks)
        self.n_threads = max(1, min(wanted, units, out_size // buffer_size))
        self.buffers = [np.empty(buffer_size, dtype=plan.dtype) for _ in range(self.n_threads)]

    def cols(self, slot, span):
        """Thread ``slot``'s patch matrix for a block of ``span``: (depth, positions)."""
        return self.buffers[slot][:self.depth * (span.stop - span.start)].reshape(self.depth, -1)

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

    def run(self, work, units):
        """Call ``work(slot, unit)`` for every unit: thread ``slot`` takes units ``slot``,
        ``slot + n_threads``, ... in order. Exceptions are raised here."""
        # BLAS on one thread even when this layer keeps one thread busy: OpenBLAS's sums
        # differ in the last bits between one and two threads
        with threads.single_threaded_blas():
            if self.n_threads == 1:
                for unit in units:
                    work(0, unit)
                return
            lanes = [_pool().submit(_lane, work, slot, units[slot::self.n_threads])
                     for slot in range(self.n_threads)]
            wait(lanes)  # every thread done before an error is raised or BLAS is restored
            for lane in lanes:
                lane.result()


def _lane(work, slot, units):
    for unit in units:
        work(slot, unit)


_pool_lock = threading.Lock()
_executor = None
_executor_pid = None


def _pool():
    """The threads that share the blocks (created on first use, as many as Numba's pool).

    A forked child inherits the pool object but not its threads: it makes a pool of its own
    (else its work would wait forever for threads that do not exist)."""
    global _executor, _executor_pid
    with _pool_lock:
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(max_workers=threads.max_threads(),
                                           thread_name_prefix="fastcorr-gemm")
            _executor_pid = os.getpid()
        return _executor


def _flat(a):
    """A view of a C-contiguous NCHW array as (N, C, H * W)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def correlate_gemm(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``: gather patches, multiply by the weights."""
    blocks = _Blocks(plan)
    c_out_g = blocks.c_out_g
    w_mat = weight.reshape(plan.groups, c_out_g, blocks.depth)
    out_mat = _flat(out)

    def work(slot, block):
        n, g, row_first, span = block
        cols = blocks.cols(slot, span)
        blocks.gather(x[n], g, row_first, cols)
        # a view: each channel's rows are contiguous, BLAS's leading dimension does the rest
        target = out_mat[n, g * c_out_g:(g + 1) * c_out_g, span]
        np.matmul(w_mat[g], cols, out=target)
        if bias is not None:
            target += bias[g * c_out_g:(g + 1) * c_out_g, None]

    blocks.run(work, blocks.blocks)
    return out


def grad_input_gemm(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    blocks = _Blocks(plan, by_image=True)
    c_out_g = blocks.c_out_g
    w_mat_t = weight.reshape(plan.groups, c_out_g, blocks.depth).transpose(0, 2, 1)
    g_mat = _flat(grad_out)
    per_image = len(blocks.blocks) // plan.out_shape[0]

    def work(slot, n):  # one image per unit: its scatters are one thread's, in order
        grad_x[n] = 0
        for _, g, row_first, span in blocks.blocks[n * per_image:(n + 1) * per_image]:
            cols = blocks.cols(slot, span)
            np.matmul(w_mat_t[g], g_mat[n, g * c_out_g:(g + 1) * c_out_g, span], out=cols)
            blocks.scatter(cols, g, row_first, grad_x[n])

    blocks.run(work, list(range(plan.out_shape[0])))
    return grad_x


def grad_weight_gemm(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten)."""
    blocks = _Blocks(plan)
    c_out_g = blocks.c_out_g
    gw_mat = grad_w.reshape(plan.groups, c_out_g, blocks.depth)
    g_mat = _flat(grad_out)
    partials = np.empty((blocks.n_threads, c_out_g, blocks.depth), dtype=plan.dtype)

    def work(slot, block):
        n, g, row_first, span = block
        cols = blocks.cols(slot, span)
        blocks.gather(x[n], g, row_first, cols)
        np.matmul(g_mat[n, g * c_out_g:(g + 1) * c_out_g, span], cols.T, out=partials[slot])

    grad_w[...] = 0
    # a wave of blocks at a time, one per thread; their products added in block order (BLAS
    # held to one thread across the waves, not set and restored wave by wave)
    with threads.single_threaded_blas():
        for first in range(0, len(blocks.blocks), blocks.n_threads):
            wave = blocks.blocks[first:first + blocks.n_threads]
            blocks.run(work, wave)
            for slot, (_, g, _, _) in enumerate(wave):
                gw_mat[g] += partials[slot]
    return grad_w
