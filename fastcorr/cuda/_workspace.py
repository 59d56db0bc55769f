"""Device scratch memory kept across calls, so that a steady-state call allocates nothing.

The CUDA backend's internal buffers (the dummy bias of a layer without one, the padded
plane of an input gradient, split-K partial sums, operands converted to the plan's dtype)
are taken from :func:`scratch` instead of being allocated and freed per call. A freed Numba
device array is released later, in batches, and the release synchronises the device; the
allocation itself costs a driver call.

Buffers are kept per device, per stream, per calling thread and per use (``slot``): work
queued on one stream runs in order, so a later call on the same stream may reuse a buffer as
soon as it is queued, whatever the earlier call's kernels are still doing; a call on another
stream never touches it, nor does a call from another host thread (whose kernels could be
queued between two of this call's on a shared stream). A buffer grows to the largest size asked for; the buffers of the
:data:`MAX_STREAMS` most recently used streams are kept, older ones released.
:func:`release` frees them all.
"""

import collections
import threading

import numpy as np
from numba import cuda

#: (stream, thread) pairs whose buffers are kept (the least recently used are released first).
MAX_STREAMS = 8

_lock = threading.Lock()
_streams = collections.OrderedDict()  # (device, stream, thread) -> {slot: device array}


def _stream_key(stream):
    handle = getattr(stream, "handle", None)
    value = getattr(handle, "value", handle)
    try:
        device = cuda.get_current_device().id
    except Exception:  # the simulator's device has no id
        device = 0
    if value is None:  # the default stream (a NULL handle), or the simulator's streams
        value = 0
    elif not isinstance(value, int):
        value = id(stream)
    return device, value, threading.get_ident()


def scratch(slot, shape, dtype, stream):
    """A C-contiguous device array of ``shape`` and ``dtype`` for use ``slot`` on ``stream``:
    the same memory on every call with that slot and stream (its contents are undefined)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    size = int(np.prod(shape, dtype=np.int64))
    key = _stream_key(stream)
    with _lock:
        buffers = _streams.pop(key, None) or {"stream": stream}
        # (the entry holds the stream object: a stream Numba owns is not destroyed, and its
        # handle not reused by a new stream, while its buffers are kept)
        _streams[key] = buffers  # most recently used last
        while len(_streams) > MAX_STREAMS:
            _streams.popitem(last=False)
        held = buffers.get((slot, dtype))
        if held is None or held.size < size:
            held = buffers[(slot, dtype)] = cuda.device_array(max(size, 1), dtype=dtype,
                                                              stream=stream)
    return held[:size].reshape(shape) if size else held[:0].reshape(shape)


def held_bytes():
    """Bytes of device memory the scratch buffers hold now."""
    with _lock:
        return sum(a.size * a.dtype.itemsize for buffers in _streams.values()
                   for slot, a in buffers.items() if slot != "stream")


def release():
    """Free every scratch buffer (they are made again when next needed)."""
    with _lock:
        _streams.clear()
