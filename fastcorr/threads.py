"""How many threads fastcorr's CPU kernels use.

fastcorr runs its CPU kernels on a thread pool of its own (:mod:`fastcorr.cpu._pool`), not on
Numba's threading layer, so that it is safe whatever the process does around it: a forked
child (``multiprocessing``, torch's DataLoader workers) computes as its parent did, calls from
many Python threads at once never abort or deadlock, and no OpenMP thread is left spinning on
the cores NumPy's BLAS needs next.

- :func:`set_num_threads` sets the number for the whole process (every thread that has not
  chosen its own);
- ``with num_threads(n):`` sets it for the calling thread only, until the block ends; other
  threads are not affected, and contexts entered and left in any order restore exactly what
  their own thread had.

Neither touches NumPy's BLAS, whose thread count belongs to the program (``threadpoolctl``
sets it): dense layers multiply through NumPy's ``matmul`` at whatever count BLAS has, and
fastcorr never changes it, so no other thread's matrix products change behind its back.

The most threads fastcorr uses is :func:`max_threads`: ``FASTCORR_NUM_THREADS`` if set, else
``NUMBA_NUM_THREADS`` if set, else the number of cores this process may run on.
"""

import contextlib
import functools
import os
import threading

_local = threading.local()
_process_default = None


def _read_count(name):
    value = os.environ.get(name)
    if not value:
        return None
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}") from None
    if count < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return count


@functools.lru_cache(maxsize=None)
def max_threads():
    """The most threads fastcorr uses: ``FASTCORR_NUM_THREADS``, else ``NUMBA_NUM_THREADS``,
    else the cores this process may run on (read once per process)."""
    for name in ("FASTCORR_NUM_THREADS", "NUMBA_NUM_THREADS"):
        count = _read_count(name)
        if count is not None:
            return count
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads():
    """The number of threads fastcorr's CPU kernels use in the calling thread now."""
    local = getattr(_local, "count", None)
    if local is not None:
        return local
    return _process_default if _process_default is not None else max_threads()


def _check_count(n):
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int, got {n!r}")
    top = max_threads()
    if not 1 <= n <= top:
        raise ValueError(f"n: expected 1 to {top} threads (max_threads(): FASTCORR_NUM_THREADS, "
                         f"NUMBA_NUM_THREADS or the cores available), got {n}")
    return n


def set_num_threads(n):
    """Use ``n`` threads in fastcorr's CPU kernels, in every thread of the process that has no
    :func:`num_threads` context of its own.

    Parameters
    ----------
    n : int
        From 1 to :func:`max_threads`.

    Examples
    --------
    >>> import fastcorr
    >>> fastcorr.set_num_threads(1)
    >>> fastcorr.get_num_threads()
    1
    >>> fastcorr.set_num_threads(fastcorr.threads.max_threads())
    """
    global _process_default
    _process_default = _check_count(n)


@contextlib.contextmanager
def num_threads(n):
    """A block in which the calling thread's fastcorr calls use ``n`` threads; the thread's
    previous setting is restored when the block ends (other threads are never affected).

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> with fastcorr.num_threads(1):
    ...     y = fastcorr.correlate2d(np.ones((64, 64)), np.ones((3, 3)), "same")
    >>> y.shape
    (64, 64)
    """
    count = _check_count(n)
    previous = getattr(_local, "count", None)
    _local.count = count
    try:
        yield
    finally:
        _local.count = previous


def blas_info():
    """What ``threadpoolctl`` reports about the BLAS libraries loaded (their threads), or None
    when threadpoolctl is not installed. Informational: fastcorr never changes them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [entry for entry in threadpool_info() if entry.get("user_api") == "blas"]
