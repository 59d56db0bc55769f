"""Filtering stacks and batches chunk by chunk: data larger than GPU memory, streamed.

:func:`correlate_stack` applies one 2-D kernel to every image of a stack ``(S, H, W)``, as
:func:`fastcorr.correlate2d` (or :func:`~fastcorr.convolve2d`) would image by image;
:func:`conv2d_stream` runs :func:`fastcorr.conv2d` over a batch ``(N, C, H, W)``. Both cut
the leading axis into chunks:

- on the CUDA backend with host (NumPy) data, each chunk is copied into a pinned host buffer,
  sent to the device, computed and brought back on one of ``streams`` CUDA streams, so the
  copies of one chunk overlap the computation of another; only ``streams`` chunks live on the
  device at a time, so the stack may be larger than GPU memory. The result is NumPy. Device
  data (already on the GPU) is computed in place in one pass, the result on the device;
- on the CPU and reference backends the chunks run one after another (the operands are
  converted to the computation's dtype one chunk at a time).

The chunk size is ``chunk`` items, or as many as fit in ``config.CUDA_STREAM_CHUNK_BYTES``
(input plus output of one chunk). ``progress=True`` shows a progress bar (tqdm if installed,
else a line on stderr); a callable is called as ``progress(done, total)`` after each chunk.
"""

import sys
from dataclasses import replace

import numpy as np

from . import _validate as v
from . import config
from ._docs import fill_doc
from .dispatch import check_stream, resolve
from .functional import LayerOperands, finish

__all__ = ["correlate_stack", "conv2d_stream"]


@fill_doc
def correlate_stack(images, kernel, mode="full", boundary="fill", fillvalue=0, *,
                    convolve=False, method="auto", backend=None, out=None, chunk=None,
                    streams=2, progress=False, stream=None):
    """Correlate (or convolve) every image of a stack with one kernel.

    Parameters
    ----------
    images : array_like or device array, shape (S, H, W)
        A stack of ``S >= 1`` images.
    kernel : array_like or device array, shape (kH, kW)
        In "valid" mode no larger than the images (the stack does not swap its arguments).
    mode, boundary, fillvalue
        As in :func:`fastcorr.correlate2d`: ``mode`` gives ``(H_out, W_out)`` = ``(H + kH - 1,
        W + kW - 1)`` ("full"), ``(H - kH + 1, W - kW + 1)`` ("valid") or ``(H, W)``
        ("same").
    convolve : bool, optional
        Convolve (flip the kernel, centre "same" as :func:`fastcorr.convolve2d`) instead.
    {{method}}
    {{backend}}
    {{out}}
        Here of shape (S, H_out, W_out).
    chunk : int, optional
        Images per chunk, positive (default: as many as fit in
        ``config.CUDA_STREAM_CHUNK_BYTES``, input plus output).
    streams : int, optional
        CUDA streams (and pinned buffer pairs) that host data is streamed through, from 1 to
        64 (default 2).
    progress : bool or callable, optional
        True: a progress bar on standard error (tqdm if installed); a callable:
        ``progress(done, total)`` after each chunk, counting images.
    {{stream}}
        With host data on the CUDA backend the chunks run on ``streams`` streams of their
        own, and ``stream`` is not used.

    Returns
    -------
    ndarray (or a device array for device input), shape (S, H_out, W_out)
        ``result[s] == correlate2d(images[s], kernel, mode, boundary, fillvalue)`` (or
        ``convolve2d``); ``out`` itself when it is given.

    Raises
    ------
    ValueError
        If ``images`` is not 3-D or holds no image, ``kernel`` is not 2-D, either is empty,
        the kernel is larger than the images in "valid" mode, ``mode``, ``boundary``,
        ``fillvalue``, ``method``, ``backend``, ``chunk`` or ``streams`` is out of range,
        ``stream`` is given to a host backend, ``method="fft"`` cannot compute the call
        (non-finite input, the reference backend), or ``out`` has the wrong shape, dtype or
        layout or overlaps an input.
    TypeError
        If an operand is not a real numeric array, ``chunk`` or ``streams`` is not an int,
        ``out`` is not an array of the backend's kind, or a device array is given to a host
        backend.
    fastcorr.BackendUnavailableError
        If ``backend="cuda"`` (or device data) cannot run here.

    See Also
    --------
    conv2d_stream : the same for NCHW batches and :func:`fastcorr.conv2d`.
    fastcorr.correlate2d, fastcorr.convolve2d : one image at a time.
    fastcorr.dask.correlate2d : one image larger than memory, tiled.
    scipy.signal.correlate2d, scipy.signal.convolve2d : SciPy's, one image at a time.

    Notes
    -----
    {{dtypes}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> from fastcorr import batch
    >>> images = np.arange(18.0).reshape(2, 3, 3)
    >>> batch.correlate_stack(images, np.ones((2, 2)), "valid", chunk=1)
    array([[[ 8., 12.],
            [20., 24.]],
    <BLANKLINE>
           [[44., 48.],
            [56., 60.]]])
    >>> kernel = np.array([[1.0, 2.0]])
    >>> stack = batch.correlate_stack(images, kernel, "same", convolve=True)
    >>> stack.shape
    (2, 3, 3)
    >>> np.array_equal(stack[1], fastcorr.convolve2d(images[1], kernel, "same"))
    True
    """
    backend = resolve(backend, images, kernel, out)
    check_stream(backend, stream)
    method = v.check_method(method)
    read = backend.read
    x = read(images, "images")
    k = read(kernel, "kernel")
    v.check_ndim(x.shape, "images", (3,), "a stack of 2-D images (S, H, W)")
    v.check_ndim(k.shape, "kernel", (2,), "a 2-D array (kH, kW)")
    s, h, w = x.shape
    if s == 0:
        raise ValueError(f"images: expected at least one image, got shape {tuple(x.shape)}")
    plan, swapped = v.plan_correlate2d((h, w), k.shape, mode, boundary, fillvalue,
                                       v.result_dtype(x.dtype, k.dtype), convolve=convolve)
    if swapped:
        raise ValueError(f"kernel: in 'valid' mode the kernel {tuple(k.shape)} must not be larger "
                         f"than the images ({h}, {w})")
    out_hw = plan.out_shape[2:]
    plan = replace(plan, input_shape=(s, 1, h, w), out_shape=(s, 1) + out_hw)
    out = backend.check_out(out, (s,) + out_hw, plan.dtype, (x, k))
    kernel4 = (k[::-1, ::-1] if convolve else k)[None, None]
    x4 = x.reshape((s, 1, h, w))
    result = _run_chunked(backend, plan, x4, kernel4, None, out, chunk, streams, progress, stream,
                          method)
    return finish(result.reshape((s,) + out_hw)) if out is None else out


@fill_doc
def conv2d_stream(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", *, method="auto", backend=None, out=None, chunk=None,
                  streams=2, progress=False, stream=None):
    """:func:`fastcorr.conv2d` over a batch, chunk by chunk (streamed through the GPU for host
    data on the CUDA backend).

    Parameters
    ----------
    input : array_like or device array, shape (N, C_in, H, W)
        A batch (an unbatched ``(C_in, H, W)`` is refused: there is nothing to chunk).
    weight : array_like or device array, shape (C_out, C_in / groups, kH, kW)
    bias : array_like or device array, shape (C_out,), optional
    stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`.
    {{method}}
    {{backend}}
    {{out}}
        Here of shape (N, C_out, H_out, W_out).
    chunk : int, optional
        Samples of the batch per chunk, positive (default: as many as fit in
        ``config.CUDA_STREAM_CHUNK_BYTES``, input plus output).
    streams : int, optional
        CUDA streams (and pinned buffer pairs) that host data is streamed through, from 1 to
        64 (default 2).
    progress : bool or callable, optional
        True: a progress bar on standard error (tqdm if installed); a callable:
        ``progress(done, total)`` after each chunk, counting samples.
    {{stream}}
        With host data on the CUDA backend the chunks run on ``streams`` streams of their
        own, and ``stream`` is not used.

    Returns
    -------
    ndarray (or a device array for device input), shape (N, C_out, H_out, W_out)
        ``conv2d(input, weight, bias, ...)``, as :func:`fastcorr.conv2d` computes it;
        ``out`` itself when it is given.

    Raises
    ------
    ValueError
        If ``input`` is not 4-D, an argument is out of range as :func:`fastcorr.conv2d` checks
        it (shapes, channels and groups, stride, padding, dilation, padding_mode, a kernel
        larger than the padded input), ``method``, ``backend``, ``chunk`` or ``streams`` is
        out of range, ``stream`` is given to a host backend, ``method="fft"`` cannot compute
        the call (a stride, non-finite input, the reference backend), or ``out`` has the
        wrong shape, dtype or layout or overlaps an input.
    TypeError
        If an operand is not a real numeric array, ``stride``, ``padding``, ``dilation``,
        ``groups``, ``chunk`` or ``streams`` is not an int (or pair), ``out`` is not an array
        of the backend's kind, or a device array is given to a host backend.
    fastcorr.BackendUnavailableError
        If ``backend="cuda"`` (or device data) cannot run here.

    See Also
    --------
    correlate_stack : one 2-D kernel over a stack of images.
    fastcorr.conv2d : the whole batch in one call.
    fastcorr.dask.conv2d : a dask NCHW stack, chunk by chunk.
    torch.nn.functional.conv2d : torch's, with the same arguments.

    Notes
    -----
    {{dtypes}}

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> from fastcorr import batch
    >>> x = np.arange(64, dtype=np.float32).reshape(2, 2, 4, 4)
    >>> w = np.ones((3, 2, 3, 3), dtype=np.float32)
    >>> done = []
    >>> y = batch.conv2d_stream(x, w, chunk=1, progress=lambda n, total: done.append(n))
    >>> y.shape, y.dtype, done
    ((2, 3, 2, 2), dtype('float32'), [1, 2])
    >>> np.array_equal(y, fastcorr.conv2d(x, w))
    True
    """
    backend = resolve(backend, input, weight, bias, out)
    check_stream(backend, stream)
    method = v.check_method(method)
    ops = LayerOperands(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                        read=backend.read)
    if ops.unbatched:
        raise ValueError(f"input: expected a batch (N, C_in, H, W), got shape {tuple(ops.input.shape)}")
    out = backend.check_out(out, ops.plan.out_shape, ops.plan.dtype, ops.arrays)
    result = _run_chunked(backend, ops.plan, ops.input, ops.weight, ops.bias, out, chunk,
                          streams, progress, stream, method)
    return finish(result) if out is None else out


# --------------------------------------------------------------------------- the chunk loop

#: The most CUDA streams (each with its pinned buffers) a streaming call may use.
MAX_STREAMS = 64


def _chunk_items(plan, chunk):
    n = plan.input_shape[0]
    if chunk is None:
        per_item = (int(np.prod(plan.input_shape[1:])) + int(np.prod(plan.out_shape[1:]))) \
            * plan.dtype.itemsize
        return max(1, min(n, config.CUDA_STREAM_CHUNK_BYTES // max(1, per_item)))
    chunk = v._int(chunk, "chunk")
    if chunk < 1:
        raise ValueError(f"chunk: expected a positive number of items, got {chunk}")
    return min(chunk, n)


def _progress(progress, total):
    """An ``update(done)`` callback and a ``close()`` for ``progress``."""
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    if not progress:
        return (lambda done: None), (lambda: None)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        def update(done):
            print(f"\rfastcorr: {done}/{total}", end="", file=sys.stderr, flush=True)

        return update, (lambda: print(file=sys.stderr))
    bar = tqdm(total=total, unit="item")

    def update(done):
        bar.update(done - bar.n)

    return update, bar.close


def _run_chunked(backend, plan, x, weight, bias, out, chunk, streams, progress, stream, method):
    """Compute ``plan`` (batch ``x`` of NCHW) chunk by chunk on ``backend``; returns the 4-D
    result (as the backend's ``Call.finish`` gives it, or ``out``)."""
    streams = v._int(streams, "streams")
    if not 1 <= streams <= MAX_STREAMS:
        raise ValueError(f"streams: expected 1 to {MAX_STREAMS}, got {streams}")
    per_chunk = _chunk_items(plan, chunk)
    update, close = _progress(progress, plan.input_shape[0])
    try:
        with backend.Call(stream, (x, weight, bias, out)) as call:
            return backend.stream_forward(call, plan, x, weight, bias, out, per_chunk, streams,
                                          update, method)
    finally:
        close()
