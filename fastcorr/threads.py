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

from ._docs import fill_doc

__all__ = ["blas_info", "get_num_threads", "max_threads", "num_threads", "set_num_threads"]

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
    else the cores this process may run on (read once per process).

    Returns
    -------
    int
        At least 1: the upper bound of :func:`set_num_threads` and :func:`num_threads`, and
        the count :func:`get_num_threads` gives until one of them is used. The cores are
        those of the process's CPU affinity mask (``os.sched_getaffinity``) where there is
        one, else ``os.cpu_count()``.

    Raises
    ------
    ValueError
        If ``FASTCORR_NUM_THREADS`` (or, when that is unset or empty, ``NUMBA_NUM_THREADS``)
        is set to something other than a positive integer.

    See Also
    --------
    get_num_threads : The count in use now.
    set_num_threads, num_threads : Choose a count up to this one.
    numba.config.NUMBA_NUM_THREADS : Numba's own bound, read here when
        ``FASTCORR_NUM_THREADS`` is unset.

    Notes
    -----
    The value is read on the first call and kept for the life of the process: changing
    the environment variables afterwards has no effect (a failed read is not kept).

    Examples
    --------
    >>> import fastcorr
    >>> top = fastcorr.threads.max_threads()
    >>> isinstance(top, int) and top >= 1
    True
    """
    for name in ("FASTCORR_NUM_THREADS", "NUMBA_NUM_THREADS"):
        count = _read_count(name)
        if count is not None:
            return count
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads():
    """The number of threads fastcorr's CPU kernels use in the calling thread now.

    Returns
    -------
    int
        The calling thread's :func:`num_threads` setting if it is inside such a block, else
        the process's :func:`set_num_threads` setting if one was made, else
        :func:`max_threads`.

    Raises
    ------
    ValueError
        As :func:`max_threads` raises, when neither setting was made and a thread-count
        environment variable is not a positive integer.

    See Also
    --------
    set_num_threads, num_threads : Change it.
    max_threads : The most it can be.
    torch.get_num_threads, numba.get_num_threads : The counterparts of torch and Numba
        (which fastcorr neither reads nor changes).

    Examples
    --------
    >>> import fastcorr
    >>> with fastcorr.num_threads(1):
    ...     fastcorr.get_num_threads()
    1
    >>> fastcorr.get_num_threads() <= fastcorr.threads.max_threads()
    True
    """
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


@fill_doc
def set_num_threads(n):
    """Use ``n`` threads in fastcorr's CPU kernels, in every thread of the process that has no
    :func:`num_threads` context of its own.

    Parameters
    ----------
    n : int
        From 1 to :func:`max_threads`.

    Returns
    -------
    None

    Raises
    ------
    {{thread_count_errors}}

    See Also
    --------
    num_threads : The same for the calling thread only, within a block.
    get_num_threads : The count in use.
    max_threads : The most threads allowed.
    torch.set_num_threads, numba.set_num_threads : The counterparts of torch and Numba
        (neither is affected, nor is NumPy's BLAS).

    Notes
    -----
    Results do not depend on the thread count: every output is summed by one task in a
    fixed order, so they are bitwise the same at any count.

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
@fill_doc
def num_threads(n):
    """A block in which the calling thread's fastcorr calls use ``n`` threads; the thread's
    previous setting is restored when the block ends (other threads are never affected).

    Parameters
    ----------
    n : int
        From 1 to :func:`max_threads`; checked when the call is made, before the block.

    Returns
    -------
    context manager
        Use it in a ``with`` statement; it yields None. Blocks may nest, and blocks of
        different threads may be entered and left in any order: each restores exactly what
        its own thread had.

    Raises
    ------
    {{thread_count_errors}}

    See Also
    --------
    set_num_threads : The process-wide setting (used outside such blocks).
    get_num_threads : The count in use.
    threadpoolctl.threadpool_limits : The like for BLAS and OpenMP libraries (which fastcorr
        never changes).

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> with fastcorr.num_threads(1):
    ...     y = fastcorr.correlate2d(np.ones((64, 64)), np.ones((3, 3)), "same")
    >>> y.shape
    (64, 64)
    >>> with fastcorr.num_threads(1):
    ...     with fastcorr.num_threads(2 if fastcorr.threads.max_threads() > 1 else 1):
    ...         pass
    ...     fastcorr.get_num_threads()
    1
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
    when threadpoolctl is not installed. Informational: fastcorr never changes them.

    Returns
    -------
    list of dict, or None
        One entry of :func:`threadpoolctl.threadpool_info` per BLAS library loaded in the
        process (keys such as ``"internal_api"``, ``"num_threads"``, ``"version"``), in its
        order; None when threadpoolctl cannot be imported.

    See Also
    --------
    threadpoolctl.threadpool_info : Every thread pool, BLAS and OpenMP alike.
    threadpoolctl.threadpool_limits : How a program sets BLAS's thread count.
    get_num_threads : fastcorr's own count.

    Notes
    -----
    The dense paths (im2col + matrix products) multiply through NumPy's ``matmul``, at
    whatever thread count BLAS has.

    Examples
    --------
    >>> import fastcorr
    >>> info = fastcorr.threads.blas_info()
    >>> info is None or all(entry["user_api"] == "blas" for entry in info)
    True
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [entry for entry in threadpool_info() if entry.get("user_api") == "blas"]
