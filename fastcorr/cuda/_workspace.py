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
queued between two of this call's on a shared stream). A buffer grows to the largest size
asked for; the buffers of the :data:`MAX_STREAMS` most recently used streams are kept, older
ones released.

The streaming path (:mod:`fastcorr.cuda.stream`) keeps its streams, pinned host buffers and
device buffers the same way, per device and calling thread (:func:`lanes`): a slot holds
about ``config.CUDA_STREAM_CHUNK_BYTES`` of pinned and of device memory. :func:`release`
frees them all.

A stream handle that its library destroys and hands out again for a new stream would find
that stream's buffers: the streams Numba owns are held here (so their handles stay theirs),
torch's are pooled and never destroyed; a CuPy stream destroyed with work still queued and
replaced by one with the same handle is the one case not covered.
"""

import collections
import threading

import numpy as np
from numba import cuda

from . import _caller

#: (stream, thread) pairs whose buffers are kept (the least recently used are released first).
MAX_STREAMS = 8

_lock = threading.Lock()
_streams = collections.OrderedDict()  # (device, stream, thread) -> {slot: device array}
_lanes = collections.OrderedDict()  # (device, thread) -> Lanes


def _device():
    try:
        return cuda.get_current_device().id
    except Exception:  # the simulator's device has no id
        return 0


def _stream_key(stream):
    return _device(), _caller.handle(stream), threading.get_ident()


def _grown(held, size, make):
    """``held`` if it holds ``size`` elements, else a new buffer from ``make(size)``."""
    return held if held is not None and held.size >= size else make(max(size, 1))


def _view(held, shape):
    size = int(np.prod(shape, dtype=np.int64))
    return held[:size].reshape(shape)


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
        held = buffers[(slot, dtype)] = _grown(
            buffers.get((slot, dtype)), size,
            lambda n: cuda.device_array(n, dtype=dtype, stream=stream))
    return _view(held, shape)


class Lanes:
    """The streaming path's streams and buffers for one device and calling thread: slot
    ``k`` has a stream, pinned input and output buffers and device input and output buffers,
    each grown to the largest chunk asked for and kept for the next call."""

    def __init__(self):
        self._streams = []
        self._buffers = {}  # (kind, slot, dtype) -> flat array

    def stream(self, k):
        """Slot ``k``'s stream."""
        while len(self._streams) <= k:
            self._streams.append(cuda.stream())
        return self._streams[k]

    def buffer(self, kind, k, shape, dtype):
        """Slot ``k``'s ``kind`` buffer ("pinned in", "pinned out", "device in", "device
        out") as an array of ``shape`` and ``dtype`` (contents undefined)."""
        dtype = np.dtype(dtype)
        make = cuda.pinned_array if kind.startswith("pinned") else cuda.device_array
        key = (kind, k, dtype)
        self._buffers[key] = held = _grown(self._buffers.get(key),
                                           int(np.prod(shape, dtype=np.int64)),
                                           lambda n: make(n, dtype=dtype))
        return _view(held, tuple(shape))

    def nbytes(self, pinned):
        return sum(a.size * a.dtype.itemsize for (kind, _, _), a in self._buffers.items()
                   if kind.startswith("pinned") == pinned)


def lanes():
    """The :class:`Lanes` of the current device and calling thread (those of the
    :data:`MAX_STREAMS` most recently used pairs are kept)."""
    key = (_device(), threading.get_ident())
    with _lock:
        kept = _lanes.pop(key, None) or Lanes()
        _lanes[key] = kept
        while len(_lanes) > MAX_STREAMS:
            _lanes.popitem(last=False)
    return kept


def held_bytes():
    """Bytes of device memory the scratch buffers and the streaming path's buffers hold now."""
    with _lock:
        return (sum(a.size * a.dtype.itemsize for buffers in _streams.values()
                    for slot, a in buffers.items() if slot != "stream")
                + sum(kept.nbytes(pinned=False) for kept in _lanes.values()))


def held_pinned_bytes():
    """Bytes of pinned host memory the streaming path's buffers hold now."""
    with _lock:
        return sum(kept.nbytes(pinned=True) for kept in _lanes.values())


def release():
    """Free every scratch and streaming buffer (they are made again when next needed); returns
    ``(device bytes, pinned host bytes)`` freed."""
    freed = held_bytes(), held_pinned_bytes()
    with _lock:
        _streams.clear()
        _lanes.clear()
    return freed
