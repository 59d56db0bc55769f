"""Streaming host data through the GPU: chunks in pinned buffers, copies overlapped with
computation on several CUDA streams (used by :mod:`fastcorr.batch`)."""

from dataclasses import replace

import numpy as np
from numba import cuda

from . import forward
from ._arrays import DeviceView


def is_host(x):
    """True when ``x`` (an operand as read for the CUDA backend) lives on the host."""
    return not isinstance(x, DeviceView)


def run(plan, x, weight, bias, out, per_chunk, n_streams, update):
    """Compute ``plan`` for the host batch ``x`` (NCHW) chunk by chunk; returns NumPy.

    Slot ``k % n_streams`` serves chunk ``k``: the host copies the chunk into the slot's
    pinned input buffer (converting it to ``plan.dtype``), the slot's stream copies it to the
    device, computes, and copies the result into the slot's pinned output buffer. Before a
    slot is reused its stream is synchronised and its previous result moved out, so while one
    stream computes, another copies. ``weight`` and ``bias`` go to the device once.
    """
    dtype = plan.dtype
    n = plan.input_shape[0]
    streams = [cuda.stream() for _ in range(n_streams)]
    first = streams[0]
    def upload(a):
        if isinstance(a, DeviceView):
            return DeviceView(a.base, first, a.like, a.shape, a.flipped).materialize(dtype)
        return cuda.to_device(np.ascontiguousarray(a, dtype=dtype), stream=first)

    w_dev = upload(weight)
    b_dev = None if bias is None else upload(bias)
    first.synchronize()  # the weights are read by every stream
    result = np.empty(plan.out_shape, dtype) if out is None else out.reshape(plan.out_shape)
    in_shape, out_shape = (per_chunk,) + plan.input_shape[1:], (per_chunk,) + plan.out_shape[1:]
    slots = min(n_streams, (n + per_chunk - 1) // per_chunk)
    pinned_in = [cuda.pinned_array(in_shape, dtype) for _ in range(slots)]
    pinned_out = [cuda.pinned_array(out_shape, dtype) for _ in range(slots)]
    dev_in = [cuda.device_array(in_shape, dtype) for _ in range(slots)]
    dev_out = [cuda.device_array(out_shape, dtype) for _ in range(slots)]
    pending = [None] * slots

    def retire(slot):
        streams[slot].synchronize()
        if pending[slot] is not None:
            lo, hi = pending[slot]
            result[lo:hi] = pinned_out[slot][:hi - lo]
            pending[slot] = None
            update(hi)

    order = []
    for k, lo in enumerate(range(0, n, per_chunk)):
        hi = min(n, lo + per_chunk)
        m = hi - lo
        slot = k % slots
        retire(slot)
        stream = streams[slot]
        pinned_in[slot][:m] = x[lo:hi]
        dev_in[slot][:m].copy_to_device(pinned_in[slot][:m], stream=stream)
        part = replace(plan, input_shape=(m,) + plan.input_shape[1:],
                       out_shape=(m,) + plan.out_shape[1:])
        forward(dev_in[slot][:m], w_dev, b_dev, dev_out[slot][:m], part, stream)
        dev_out[slot][:m].copy_to_host(pinned_out[slot][:m], stream=stream)
        pending[slot] = (lo, hi)
        order.append(slot)
    for slot in sorted(range(slots), key=lambda s: (pending[s] or (n, n))[0]):
        retire(slot)
    return result
