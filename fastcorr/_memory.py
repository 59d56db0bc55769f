"""Arrays that start on a 64-byte boundary, for the kernels' buffers and results.

NumPy aligns its data to 16 bytes only (``malloc``'s alignment; a large array mapped by
``mmap`` starts 16 bytes past a page, after the allocator's header). A vector loop over a
buffer that starts 16 bytes off a 32-byte boundary splits every 256-bit load and store in
two, and an accumulator that is read and written back pays twice: on Zen 4 (AVX-512, each
512-bit access done as two 256-bit halves) a depthwise weight gradient's taps loop took
2.2-3.6x as long with its sums 16 bytes off (0.35 ms -> 0.78-1.26 ms, 960 channels on 7^2),
and where a buffer fell was chance, so the same call ran at either speed from one process to
the next. 32-byte boundaries suffice for those halves; 64 bytes is a cache line.
"""

import math

import numpy as np

#: Where every array made here starts: a multiple of this many bytes.
ALIGNMENT = 64

#: Smaller arrays are NumPy's own (aligning costs a couple of microseconds a call, more than
#: a loop over a few hundred bytes can lose to a split access).
MIN_ALIGNED_BYTES = 1024


def empty(shape, dtype):
    """An uninitialised array of ``shape`` and ``dtype`` starting on an ALIGNMENT boundary
    (from MIN_ALIGNED_BYTES on; smaller ones as NumPy allocates them).

    Parameters
    ----------
    shape : int or tuple of int
    dtype : data-type

    Returns
    -------
    ndarray, C-contiguous, a view of a slightly larger byte buffer

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr import _memory
    >>> a = _memory.empty((30, 50), np.float32)
    >>> a.shape, a.ctypes.data % _memory.ALIGNMENT
    ((30, 50), 0)
    """
    # (a few microseconds a call: the kernels' small calls make four of them)
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_ALIGNED_BYTES:
        return np.empty(shape, dtype=dtype)
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def zeros(shape, dtype):
    """:func:`empty`, filled with zeros."""
    a = empty(shape, dtype)
    a.fill(0)
    return a
