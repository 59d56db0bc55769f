"""fastcorr on dask arrays: images larger than memory tiled with overlaps, NCHW stacks chunked
by images and channel groups, every block computed by the in-memory function.

Install with ``pip install "fastcorr[dask]"``. Each function takes the arguments of its
in-memory twin and returns a lazy dask array (nothing runs until ``.compute()``); the blocks
are computed by :func:`fastcorr.correlate2d`, :func:`fastcorr.conv2d` and the gradient
functions, on the backend the blocks' type selects (NumPy blocks: the CPU; CuPy blocks: the
GPU), so a dask result has the in-memory call's numbers:

- :func:`correlate2d` / :func:`convolve2d`: each block of the result is the "valid"
  correlation of its region of the extended image: the image's block with a halo of
  ``kernel - 1`` rows and columns taken from its neighbours, and beyond the image's edges the
  boundary rule (``fill``/``wrap``/``symm``, exactly as the in-memory call extends it, however
  far), assembled in one copy. The result is chunked as the image (in "same" mode exactly). With
  ``method="direct"`` every sum runs in the in-memory call's order: the result is bitwise the
  in-memory one (computed on the same kind of CPU). With "auto" each block picks its own
  method, and a block that takes the FFT differs from a direct in-memory result within the
  FFT's bound.
- :func:`conv2d` and :func:`conv2d_backward`: chunks along N as they come, along C only at
  group boundaries (a chunk holds whole groups; with ``groups=1`` the channels are one chunk),
  height and width whole. The weight gradient and the bias gradient are sums of one partial
  sum per chunk of images, added by dask's tree reduction (not bitwise the in-memory sums: the
  terms are grouped differently; within the same rounding bound).

The kernel, weight and bias must fit in memory (dask arrays among them are computed as one
block).

Threads
-------
Dask runs blocks in parallel, so each block's call uses ``threads_per_block`` fastcorr threads
(default 1). The rule: dask's threads (its thread pool, or all workers' threads on a machine)
times ``threads_per_block`` should not exceed the cores. Dask's threaded scheduler and
``dask.distributed``'s ``LocalCluster`` start as many threads as cores by default, so the
default of 1 keeps every core busy once. Raise it when fewer blocks than cores run at once.
fastcorr never changes NumPy's BLAS threads (used by dense layers): ``dask.distributed``
workers set them to 1 by default; with the threaded scheduler, limit them with
``threadpoolctl`` if the layers are dense.

Workers compile kernels on first use unless the cache is warm: run ``fastcorr warmup`` once
on each machine first (workers share the machine's cache, see ``fastcorr info``).

Examples
--------
>>> import numpy as np, dask.array as da, fastcorr
>>> image = da.random.default_rng(0).random((4096, 4096), chunks=1024).astype(np.float32)
>>> sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float32)
>>> edges = fastcorr.dask.correlate2d(image, sobel, mode="same", boundary="symm")
>>> edges.chunks[0]
(1024, 1024, 1024, 1024)
>>> np.array_equal(edges.compute(), fastcorr.correlate2d(image.compute(), sobel, "same",
...                                                      boundary="symm", method="direct"))
True
"""

import itertools
import operator

import numpy as np

try:
    import dask.array as da
    from dask.array.utils import meta_from_array
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fastcorr.dask needs dask: pip install 'fastcorr[dask]'") from exc

from . import _boundary
from . import _validate as v
from . import functional, gradients, threads
from ._docs import fill_doc
from .functional import ImageOperands, LayerOperands

__all__ = ["correlate2d", "convolve2d", "conv2d", "conv2d_backward"]


@fill_doc
def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
                backend=None, threads_per_block=1):
    """:func:`fastcorr.correlate2d` of a dask array: a lazy dask array of the same numbers.

    Parameters
    ----------
    in1 : dask array or array_like, shape (H, W)
        The image, in any chunks (a halo may span several). Array-likes are wrapped with
        :func:`dask.array.asarray`.
    in2 : array_like or dask array, shape (kH, kW)
        The kernel (computed into memory if it is a dask array). In "valid" mode with ``in2``
        the larger, the two swap roles as in SciPy: ``in2`` is tiled and ``in1`` is the kernel.
    mode, boundary, fillvalue
        As in :func:`fastcorr.correlate2d`.
    {{method}}
        Used for every block; with "auto" each block picks its own.
    {{backend}}
        Checked when the graph is built and used for every block, which follows its own
        type when None (NumPy blocks: "cpu"; CuPy blocks: "cuda").
    {{threads_per_block}}

    Returns
    -------
    dask array, shape as :func:`fastcorr.correlate2d` returns
        Chunked like the image, in the result's dtype; blocks of the image's array type.

    Raises
    ------
    ValueError, TypeError
        As :func:`fastcorr.correlate2d` raises them, when the graph is built; also for a
        ``threads_per_block`` that is not positive (ValueError) or not an int (TypeError).
        What only the numbers reveal (``method="fft"`` with NaN or infinity, an unusable
        CUDA backend) is raised by ``.compute()``.

    See Also
    --------
    fastcorr.correlate2d : the in-memory call every block runs.
    convolve2d : the convolution.
    fastcorr.batch.correlate_stack : a stack of images, chunk by chunk.
    scipy.signal.correlate2d : SciPy's, in memory, with the same arguments.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastcorr
    >>> image = np.arange(36.0).reshape(6, 6)
    >>> x = da.from_array(image, chunks=3)
    >>> y = fastcorr.dask.correlate2d(x, np.ones((2, 2)), "same", boundary="wrap")
    >>> y.chunks
    ((3, 3), (3, 3))
    >>> np.array_equal(y.compute(), fastcorr.correlate2d(image, np.ones((2, 2)), "same",
    ...                                                  boundary="wrap"))
    True
    >>> fastcorr.dask.correlate2d(x, np.ones((2, 2)), "valid").compute()[0]
    array([14., 18., 22., 26., 30.])
    """
    return _image_correlation(in1, in2, mode, boundary, fillvalue, method, backend,
                              threads_per_block, convolve=False)


@fill_doc
def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
               backend=None, threads_per_block=1):
    """:func:`fastcorr.convolve2d` of a dask array; arguments and result as in
    :func:`correlate2d`.

    Parameters
    ----------
    in1 : dask array or array_like, shape (H, W)
        The image, in any chunks.
    in2 : array_like or dask array, shape (kH, kW)
        The kernel (computed into memory if it is a dask array).
    mode, boundary, fillvalue
        As in :func:`fastcorr.convolve2d`.
    {{method}}
        Used for every block; with "auto" each block picks its own.
    {{backend}}
        Checked when the graph is built and used for every block, which follows its own
        type when None (NumPy blocks: "cpu"; CuPy blocks: "cuda").
    {{threads_per_block}}

    Returns
    -------
    dask array, shape as :func:`fastcorr.convolve2d` returns
        Chunked like the image, in the result's dtype.

    Raises
    ------
    ValueError, TypeError
        As :func:`correlate2d` raises them.

    See Also
    --------
    fastcorr.convolve2d : the in-memory call every block runs.
    correlate2d : the correlation, and the notes on chunks.
    scipy.signal.convolve2d : SciPy's, in memory, with the same arguments.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastcorr
    >>> image = da.ones((300, 200), chunks=100)
    >>> fastcorr.dask.convolve2d(image, np.ones((3, 3)), "valid").compute()[0, :3]
    array([9., 9., 9.])
    """
    return _image_correlation(in1, in2, mode, boundary, fillvalue, method, backend,
                              threads_per_block, convolve=True)


@fill_doc
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, method="auto", backend=None, threads_per_block=1):
    """:func:`fastcorr.conv2d` of a dask NCHW stack: a lazy dask array of the same numbers.

    Parameters
    ----------
    input : dask array or array_like, shape (N, C_in, H, W) or (C_in, H, W)
        Chunked along N as given; along C_in at whole groups (rechunked where a chunk would
        split a group; one chunk when ``groups=1``); H and W are made whole.
    weight : array_like or dask array, shape (C_out, C_in / groups, kH, kW)
    bias : array_like or dask array, shape (C_out,), optional
    stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`.
    {{method}}
        Used for every block; with "auto" each block picks its own.
    {{backend}}
        Checked when the graph is built and used for every block, which follows its own
        type when None (NumPy blocks: "cpu"; CuPy blocks: "cuda").
    {{threads_per_block}}

    Returns
    -------
    dask array, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        Chunked like the input along N; along C_out one chunk per chunk of input groups.

    Raises
    ------
    ValueError, TypeError
        As :func:`fastcorr.conv2d` raises them, when the graph is built; also for a
        ``threads_per_block`` that is not positive (ValueError) or not an int (TypeError).
        What only the numbers reveal is raised by ``.compute()``.

    See Also
    --------
    fastcorr.conv2d : the in-memory call every block runs.
    conv2d_backward : its gradients.
    fastcorr.batch.conv2d_stream : an in-memory batch, chunk by chunk.
    torch.nn.functional.conv2d : torch's, with the same arguments.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastcorr
    >>> x = da.ones((64, 8, 16, 16), chunks=(16, 4, 16, 16), dtype=np.float32)
    >>> y = fastcorr.dask.conv2d(x, np.ones((8, 2, 3, 3), np.float32), groups=4, padding=1)
    >>> y.shape, y.chunks[:2]
    ((64, 8, 16, 16), ((16, 16, 16, 16), (4, 4)))
    >>> float(y[0, 0, 5, 5].compute())
    18.0
    """
    count = _threads(threads_per_block)
    method = v.check_method(method)
    v.check_backend(backend)
    x, w, b = _read(input, "input"), _read(weight, "weight"), _read(bias, "bias")
    ops = LayerOperands(x, w, b, stride, padding, dilation, groups, padding_mode, read=_same)
    layout = _Layout(ops.plan, ops.batched(x).chunks)
    blocks = da.blockwise(
        _conv2d_block, "ncij",
        layout.input(ops.batched(x)), "ncij",
        layout.weight(w), "cpqr",
        None if b is None else layout.bias(b), None if b is None else "c",
        adjust_chunks={"c": layout.out_channels, "i": (ops.plan.out_shape[2],),
                       "j": (ops.plan.out_shape[3],)},
        align_arrays=False, concatenate=True, dtype=ops.plan.dtype,
        meta=meta_from_array(x, 4, dtype=ops.plan.dtype),
        options=_layer_options(ops.plan, (stride, padding, dilation, padding_mode), method,
                                      backend, count),
    )
    return ops.unbatch(blocks)


@fill_doc
def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", *, output_mask=(True, True, True), method="auto",
                    backend=None, threads_per_block=1):
    """:func:`fastcorr.conv2d_backward` of dask NCHW stacks: lazy gradients.

    Parameters
    ----------
    grad_output : dask array or array_like, shape (N, C_out, H_out, W_out) or unbatched
        Rechunked to the input's chunks along N and to its groups along C_out.
    input : dask array or array_like, shape (N, C_in, H, W) or (C_in, H, W)
        Chunked as in :func:`conv2d`.
    weight : array_like or dask array, shape (C_out, C_in / groups, kH, kW)
    stride, padding, dilation, groups, padding_mode, output_mask
        As in :func:`fastcorr.conv2d_backward`.
    {{method}}
        Used for every block; with "auto" each block picks its own.
    {{backend}}
        Checked when the graph is built and used for every block, which follows its own
        type when None (NumPy blocks: "cpu"; CuPy blocks: "cuda").
    {{threads_per_block}}

    Returns
    -------
    grad_input : dask array, the input's shape and chunks (as :func:`conv2d` rechunks them), or None
    grad_weight : dask array, shape (C_out, C_in / groups, kH, kW), one chunk per group chunk, or None
        The sum over chunks of images of each chunk's weight gradient.
    grad_bias : dask array, shape (C_out,), or None
        ``grad_output`` summed over N, H and W.

    Raises
    ------
    ValueError, TypeError
        As :func:`fastcorr.conv2d_backward` raises them (among them a ``grad_output`` of the
        wrong shape, a bad ``output_mask``), when the graph is built; also for a
        ``threads_per_block`` that is not positive (ValueError) or not an int (TypeError).

    See Also
    --------
    fastcorr.conv2d_backward : the in-memory gradients every block computes.
    conv2d : the forward pass.
    torch.nn.grad.conv2d_input, torch.nn.grad.conv2d_weight : torch's gradients.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastcorr
    >>> x = da.ones((32, 3, 8, 8), chunks=(8, 3, 8, 8))
    >>> g = da.ones((32, 4, 6, 6), chunks=(8, 4, 6, 6))
    >>> gx, gw, gb = fastcorr.dask.conv2d_backward(g, x, np.ones((4, 3, 3, 3)))
    >>> float(gw[0, 0, 0, 0].compute()), float(gb[0].compute())
    (1152.0, 1152.0)
    """
    count = _threads(threads_per_block)
    method = v.check_method(method)
    v.check_backend(backend)
    mask = gradients._output_mask(output_mask, 3)
    g, x, w = _read(grad_output, "grad_output"), _read(input, "input"), _read(weight, "weight")
    ops = LayerOperands(x, w, None, stride, padding, dilation, groups, padding_mode,
                        extra_dtypes=[g.dtype], read=_same)
    plan = ops.plan
    gradients._grad_output(g, plan.out_shape[1:] if ops.unbatched else plan.out_shape)
    layout = _Layout(plan, ops.batched(x).chunks)
    gb4 = layout.grad_output(ops.batched(g))
    xb4 = layout.input(ops.batched(x))
    options = _layer_options(plan, (stride, padding, dilation, padding_mode), method, backend,
                             count)
    meta = meta_from_array(x, 4, dtype=plan.dtype)
    grad_x = grad_w = grad_b = None
    if mask[0]:
        grad_x = ops.unbatch(da.blockwise(
            _grad_input_block, "ncij", gb4, "ncab", layout.weight(w), "cpqr",
            new_axes={"i": plan.input_shape[2], "j": plan.input_shape[3]},
            adjust_chunks={"c": layout.in_channels},
            align_arrays=False, concatenate=True, dtype=plan.dtype, meta=meta,
            options=options))
    if mask[1]:
        # one weight gradient per chunk of images (axis n), then their sum
        partial = da.blockwise(
            _grad_weight_block, "ncpqr", xb4, "ncij", gb4, "ncab",
            new_axes={"p": plan.weight_shape[1], "q": plan.weight_shape[2],
                      "r": plan.weight_shape[3]},
            adjust_chunks={"n": 1, "c": layout.out_channels},
            align_arrays=False, concatenate=True, dtype=plan.dtype,
            meta=meta_from_array(x, 5, dtype=plan.dtype), options=options)
        grad_w = partial.sum(axis=0, dtype=plan.dtype)
    if mask[2]:
        grad_b = gb4.astype(plan.dtype).sum(axis=(0, 2, 3), dtype=plan.dtype)
    return grad_x, grad_w, grad_b


# -- images ------------------------------------------------------------------------------------

def _image_correlation(in1, in2, mode, boundary, fillvalue, method, backend, threads_per_block,
                       *, convolve):
    count = _threads(threads_per_block)
    method = v.check_method(method)
    v.check_backend(backend)
    a, b = _read(in1, "in1"), _read(in2, "in2")
    ops = ImageOperands(a, b, mode, boundary, fillvalue, convolve=convolve, read=_same)
    plan = ops.plan
    image = ops.image.astype(plan.dtype)
    kernel = _one_block(ops.kernel)
    axes = [_Axis(n, chunks, before, after, k - 1, plan.pad_mode)
            for n, chunks, before, after, k in zip(
                image.shape, image.chunks, (plan.pad_top, plan.pad_left),
                (plan.pad_bottom, plan.pad_right), plan.weight_shape[2:])]
    name = "fastcorr-" + ("convolve2d-" if convolve else "correlate2d-") + tokenize(
        image, kernel, plan, method, backend, count)
    graph = {}
    for i, rows in enumerate(axes[0].regions):
        for j, cols in enumerate(axes[1].regions):
            pieces, places = [], []
            for (r_dest, r_src), (c_dest, c_src) in itertools.product(rows, cols):
                places.append((r_dest, c_dest))
                if r_src is None or c_src is None:
                    pieces.append(None)  # the fill value
                    continue
                (bi, r_slice), (bj, c_slice) = r_src, c_src
                key = (image.name, bi, bj)
                if r_slice == axes[0].whole(bi) and c_slice == axes[1].whole(bj):
                    pieces.append(key)
                else:
                    piece = (name + "-piece", i, j, len(pieces))
                    graph[piece] = (operator.getitem, key, (r_slice, c_slice))
                    pieces.append(piece)
            shape = (axes[0].region_size(i), axes[1].region_size(j))
            graph[(name, i, j)] = (_correlate_region, pieces, places, shape, plan.fill,
                                   (kernel.name, 0, 0), method, backend, count)
    graph = HighLevelGraph.from_collections(name, graph, dependencies=[image, kernel])
    return da.Array(graph, name, chunks=(axes[0].out_chunks, axes[1].out_chunks),
                    meta=meta_from_array(image, 2, dtype=plan.dtype))


def _correlate_region(pieces, places, shape, fill, kernel, method, backend, count):
    """One block of the result: its region of the extended image assembled from the pieces
    (views of the image's blocks, or None for the fill value) in one copy, then its "valid"
    correlation with the kernel (every region is at least the kernel's size)."""
    like = next((p for p in pieces if p is not None), kernel)
    region = np.empty_like(like, shape=shape)  # (CuPy blocks make a CuPy region)
    for piece, (rows, cols) in zip(pieces, places):
        region[rows, cols] = fill if piece is None else piece
    with threads.num_threads(min(count, threads.max_threads())):
        return functional.correlate2d(region, kernel, "valid", method=method, backend=backend)


class _Axis:
    """One axis of an image correlation on blocks: the result's chunks and, for each, where
    the rows (or columns) of its region of the extended image come from.

    The result's chunk boundaries are the image's (the last moved to the result's end), so a
    "same" result is chunked as the image is. Output ``o`` reads the extended image's virtual
    rows ``o - before`` to ``o - before + span`` (``span`` = kernel - 1); a virtual row maps
    to a real one by the boundary rule the kernels compile
    (:func:`fastcorr._boundary.source_index`), at any distance (``da.pad`` repeats a periodic
    or mirrored boundary only up to the axis length). ``regions[b]`` lists the runs of block
    ``b``'s region as ``(destination slice, source)``, ``source`` being
    ``(image chunk, slice)`` or None for the fill value.
    """

    def __init__(self, n, chunks, before, after, span, pad_mode):
        self.n, self.span, self.pad_mode = n, span, pad_mode
        self.chunks = tuple(chunks)
        self.starts = np.cumsum((0,) + self.chunks)
        out_len = n + before + after - span
        ends = [int(e) for e in self.starts[1:-1] if e < out_len] + [out_len]
        self.out_chunks = tuple(int(c) for c in np.diff([0] + ends))
        self.regions = [self._runs(lo - before, lo - before + size + span)
                        for lo, size in zip([0] + ends[:-1], self.out_chunks)]

    def region_size(self, b):
        return self.out_chunks[b] + self.span

    def whole(self, chunk):
        return slice(0, self.chunks[chunk], 1)

    def _chunk(self, s):
        return int(np.searchsorted(self.starts, s, side="right") - 1)

    def _runs(self, lo, hi):
        sources = [_boundary.source_index(v, self.n, self.pad_mode) for v in range(lo, hi)]
        runs, start = [], 0
        for k in range(1, len(sources) + 1):
            if k < len(sources) and self._continues(sources[k - 1], sources[k],
                                                    sources[start]):
                continue
            runs.append((slice(start, k), self._source(sources[start], sources[k - 1])))
            start = k
        return runs

    def _continues(self, prev, s, first):
        if prev < 0 or s < 0:
            return prev < 0 and s < 0
        step = s - prev
        if abs(step) != 1 or self._chunk(s) != self._chunk(prev):
            return False
        return first == prev or (prev - first) * step > 0  # one direction per run

    def _source(self, first, last):
        if first < 0:
            return None
        chunk = self._chunk(first)
        a, b = first - int(self.starts[chunk]), last - int(self.starts[chunk])
        if b >= a:
            return chunk, slice(a, b + 1, 1)
        return chunk, slice(a, b - 1 if b > 0 else None, -1)


# -- layers ------------------------------------------------------------------------------------

class _Layout:
    """How a layer's operands are chunked: N as the input has it, channels at whole groups.

    ``groups_per_chunk`` holds the number of groups of each channel chunk; ``in_channels`` and
    ``out_channels`` the chunk sizes along C_in and C_out.
    """

    def __init__(self, plan, input_chunks):
        self.batch = input_chunks[0]
        groups = plan.groups
        c_in_g = plan.weight_shape[1]
        c_out_g = plan.weight_shape[0] // groups
        if groups == 1:
            per_chunk = (1,)
        else:  # the input's channel chunks, each cut back or grown to whole groups
            per_chunk, start = [], 0
            for size in input_chunks[1]:
                end = start + size
                count = round(end / c_in_g) - sum(per_chunk)
                if count > 0:
                    per_chunk.append(count)
                start = end
            per_chunk[-1] += groups - sum(per_chunk)
            per_chunk = tuple(per_chunk)
        self.groups_per_chunk = per_chunk
        self.in_channels = tuple(g * c_in_g for g in per_chunk)
        self.out_channels = tuple(g * c_out_g for g in per_chunk)

    def input(self, x):
        return x.rechunk((self.batch, self.in_channels, -1, -1))

    def grad_output(self, g):
        return g.rechunk((self.batch, self.out_channels, -1, -1))

    def weight(self, w):
        return _as_dask(w).rechunk((self.out_channels, -1, -1, -1))

    def bias(self, b):
        return _as_dask(b).rechunk((self.out_channels,))


def _layer_options(plan, arguments, method, backend, count):
    """What every block's call needs besides its operands: the caller's layer arguments
    (already checked; the spatial dimensions are whole, so they mean the same on a block)."""
    return dict(arguments=arguments, c_in_g=plan.weight_shape[1],
                c_out_g=plan.weight_shape[0] // plan.groups, input_hw=plan.input_shape[2:],
                kernel_hw=plan.weight_shape[2:], method=method, backend=backend, count=count)


def _layer_call(function, *operands, options, groups):
    stride, padding, dilation, padding_mode = options["arguments"]
    with threads.num_threads(min(options["count"], threads.max_threads())):
        return function(*operands, stride=stride, padding=padding, dilation=dilation,
                        groups=groups, padding_mode=padding_mode, method=options["method"],
                        backend=options["backend"])


def _conv2d_block(x, w, b=None, *, options):
    return _layer_call(functional.conv2d, x, w, b, options=options,
                       groups=x.shape[1] // options["c_in_g"])


def _grad_input_block(g, w, *, options):
    groups = w.shape[0] // options["c_out_g"]
    input_shape = (g.shape[0], groups * options["c_in_g"], *options["input_hw"])
    return _layer_call(gradients.conv2d_input, input_shape, w, g, options=options,
                       groups=groups)


def _grad_weight_block(x, g, *, options):
    weight_shape = (g.shape[1], options["c_in_g"], *options["kernel_hw"])
    return _layer_call(gradients.conv2d_weight, x, weight_shape, g, options=options,
                       groups=x.shape[1] // options["c_in_g"])[None]


# -- operands ----------------------------------------------------------------------------------

def _read(a, name):
    """``a`` as a dask array of a real dtype (None stays None), or TypeError naming it."""
    if a is None:
        return None
    if not isinstance(a, da.Array):
        if not hasattr(a, "__array_function__") and not hasattr(a, "__cuda_array_interface__"):
            a = v.as_real_array(a, name)
        a = da.asarray(a)
    v.check_real_dtype(a.dtype, name)
    return a


def _same(a, name):
    return a


def _as_dask(a):
    return a if isinstance(a, da.Array) else da.asarray(a)


def _one_block(a):
    return a.rechunk(a.shape)


def _threads(count):
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"threads_per_block: expected a positive int, got {count!r}")
    if count < 1:
        raise ValueError(f"threads_per_block: expected a positive int, got {count!r}")
    return int(count)
