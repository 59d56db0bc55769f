"""Streaming host data through the GPU: chunks in pinned buffers, copies overlapped with
computation on several CUDA streams (used by :mod:`fastcorr.batch`).

The streams and buffers are kept across calls (:func:`fastcorr.cuda._workspace.lanes`), so a
repeated call allocates no pinned or device memory; the host-side copies into and out of the
pinned buffers are split between fastcorr's CPU threads.
"""

from dataclasses import replace

import numpy as np
from numba import cuda

from ..cpu import _pool
from . import _caller, forward
from ._arrays import DeviceView
from ._workspace import lanes


def is_host(x):
    """True when ``x`` (an operand as read for the CUDA backend) lives on the host."""
    return not isinstance(x, DeviceView)


def _copy_range(dst, src, lo, hi):
    dst[lo:hi] = src[lo:hi]


def host_copy(dst, src):
    """``dst[...] = src`` (converting the dtype), split along the first axis longer than one
    between fastcorr's threads (NumPy's copy loops release the GIL)."""
    while dst.ndim > 1 and dst.shape[0] == 1:
        dst, src = dst[0], src[0]
    _pool.run(_copy_range, dst.shape[0], dst, src, work=dst.size)


def run(plan, x, weight, bias, out, per_chunk, n_streams, update, after):
    """Compute ``plan`` for the host batch ``x`` (NCHW) chunk by chunk; returns NumPy.

    Slot ``k % n_streams`` serves chunk ``k``: the host copies the chunk into the slot's
    pinned input buffer (converting it to ``plan.dtype``), the slot's stream copies it to the
    device, computes, and copies the result into the slot's pinned output buffer. Before a
    slot is reused its stream is synchronised and its previous result moved out, so while one
    stream computes, another copies. ``weight`` and ``bias`` go to the device once, after
    the work queued on ``after`` (the call's stream, which waits for their producers).
    """
    dtype = plan.dtype
    n = plan.input_shape[0]
    kept = lanes()
    slots = min(n_streams, (n + per_chunk - 1) // per_chunk)
    streams = [kept.stream(k) for k in range(slots)]
    first = streams[0]

    def upload(a):
        if isinstance(a, DeviceView):
            return a.on(first).materialize(dtype, scratch_slot=f"streamed {a.name}")
        return cuda.to_device(np.ascontiguousarray(a, dtype=dtype), stream=first)

    _caller.wait(first, after)
    w_dev = upload(weight)
    b_dev = None if bias is None else upload(bias)
    first.synchronize()  # the weights are read by every stream (ordered after their producers)
    result = np.empty(plan.out_shape, dtype) if out is None else out.reshape(plan.out_shape)
    in_shape, out_shape = (per_chunk,) + plan.input_shape[1:], (per_chunk,) + plan.out_shape[1:]
    pinned_in = [kept.buffer("pinned in", k, in_shape, dtype) for k in range(slots)]
    pinned_out = [kept.buffer("pinned out", k, out_shape, dtype) for k in range(slots)]
    dev_in = [kept.buffer("device in", k, in_shape, dtype) for k in range(slots)]
    dev_out = [kept.buffer("device out", k, out_shape, dtype) for k in range(slots)]
    pending = [None] * slots

    def retire(slot):
        streams[slot].synchronize()
        if pending[slot] is not None:
            lo, hi = pending[slot]
            host_copy(result[lo:hi], pinned_out[slot][:hi - lo])
            pending[slot] = None
            update(hi)

    try:
        for k, lo in enumerate(range(0, n, per_chunk)):
            hi = min(n, lo + per_chunk)
            m = hi - lo
            slot = k % slots
            retire(slot)
            stream = streams[slot]
            host_copy(pinned_in[slot][:m], x[lo:hi])
            dev_in[slot][:m].copy_to_device(pinned_in[slot][:m], stream=stream)
            part = replace(plan, input_shape=(m,) + plan.input_shape[1:],
                           out_shape=(m,) + plan.out_shape[1:])
            forward(dev_in[slot][:m], w_dev, b_dev, dev_out[slot][:m], part, stream)
            dev_out[slot][:m].copy_to_host(pinned_out[slot][:m], stream=stream)
            pending[slot] = (lo, hi)
        for slot in sorted(range(slots), key=lambda s: (pending[s] or (n, n))[0]):
            retire(slot)
    finally:  # the kept buffers are idle before the next call may take them
        for stream in streams:
            stream.synchronize()
    return result
