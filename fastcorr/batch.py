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
from .dispatch import check_stream, resolve
from .functional import LayerOperands, finish


def correlate_stack(images, kernel, mode="full", boundary="fill", fillvalue=0, *,
                    convolve=False, method="auto", backend=None, out=None, chunk=None,
                    streams=2, progress=False, stream=None):
    """Correlate (or convolve) every image of a stack with one kernel.

    Parameters
    ----------
    images : array_like or device array, shape (S, H, W)
    kernel : array_like or device array, shape (kH, kW)
        In "valid" mode no larger than the images (the stack does not swap its arguments).
    mode, boundary, fillvalue
        As in :func:`fastcorr.correlate2d`.
    convolve : bool
        Convolve (flip the kernel, centre "same" as :func:`fastcorr.convolve2d`) instead.
    method : {"auto", "direct", "fft"}
        As in :func:`fastcorr.correlate2d`.
    backend : {None, "auto", "cpu", "cuda", "reference"}
    out : ndarray or device array, shape (S, H_out, W_out), optional
    chunk : int, optional
        Images per chunk (default: from ``config.CUDA_STREAM_CHUNK_BYTES``).
    streams : int
        CUDA streams (and pinned buffer pairs) that host data is streamed through; >= 1.
    progress : bool or callable
    stream : CUDA stream, optional
        For device data on the CUDA backend: the stream to run on.

    Returns
    -------
    ndarray (or a device array for device input), shape (S, H_out, W_out)
        ``result[s] == correlate2d(images[s], kernel, mode, boundary, fillvalue)``.
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


def conv2d_stream(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", *, method="auto", backend=None, out=None, chunk=None,
                  streams=2, progress=False, stream=None):
    """:func:`fastcorr.conv2d` over a batch, chunk by chunk (streamed through the GPU for host
    data on the CUDA backend).

    Parameters
    ----------
    input : array_like or device array, shape (N, C_in, H, W)
    weight, bias, stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`.
    method, backend, out, chunk, streams, progress, stream
        As in :func:`correlate_stack` (``chunk`` counts images of the batch).

    Returns
    -------
    ndarray (or a device array for device input), shape (N, C_out, H_out, W_out)
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
        call = backend.Call(stream, (x, weight, bias))
        return backend.stream_forward(call, plan, x, weight, bias, out, per_chunk, streams,
                                      update, method)
    finally:
        close()
