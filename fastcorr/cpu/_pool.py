"""fastcorr's CPU thread pool: a kernel's tasks split between the calling thread and workers.

Every CPU kernel takes a range of tasks ``[task_lo, task_hi)`` as its last two arguments and
releases the GIL; :func:`run` cuts ``range(n_tasks)`` into one contiguous range per thread
(:func:`fastcorr.get_num_threads`), runs the first on the calling thread and the others on
the pool's workers, and returns when all are done (raising the first error, after every range
has finished). Which task computes which output never depends on the number of threads, and
every output is written by one task, so results are bitwise the same at any thread count.

The pool is fastcorr's own (not Numba's threading layer): it has nothing a ``fork()`` could
break (a child makes a fresh pool on first use), calls from any number of Python threads
share its workers without aborting or deadlocking, and idle workers sleep instead of spinning
on cores that NumPy's BLAS or the caller's own threads need.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from .. import threads

#: Below this much work per thread (multiply-adds, copies: the caller's estimate) a call uses
#: fewer threads: waking a worker cost 80-100 microseconds here (a 512^2 3x3 correlation took
#: 243 us on two threads, 154 us on one; at 2^17 a thread, 128^2 7x7 took 122 us, now 63 us).
MIN_WORK_PER_THREAD = 1 << 21

_lock = threading.Lock()
_executor = None
_executor_pid = None
_worker = threading.local()


def _mark_worker():
    _worker.inside = True


def _pool():
    global _executor, _executor_pid
    with _lock:
        if _executor is None or _executor_pid != os.getpid():
            # (a forked child inherits the object but none of its threads: a new pool)
            _executor = ThreadPoolExecutor(max_workers=max(1, threads.max_threads() - 1),
                                           thread_name_prefix="fastcorr",
                                           initializer=_mark_worker)
            _executor_pid = os.getpid()
        return _executor


def _forget_pool_in_child():
    global _executor, _executor_pid, _lock
    _lock = threading.Lock()  # the parent's may have been held at fork time
    _executor, _executor_pid = None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def thread_count(n_tasks, work=None):
    """How many threads :func:`run` uses for ``n_tasks`` tasks and ``work`` units of work."""
    count = min(threads.get_num_threads(), n_tasks)
    if work is not None:
        count = min(count, max(1, int(work // MIN_WORK_PER_THREAD)))
    if getattr(_worker, "inside", False):  # a kernel started from a worker: stay on it
        count = 1
    return max(1, count)


def ranges(n_tasks, count):
    """``count`` contiguous ``(lo, hi)`` ranges covering ``range(n_tasks)``, sizes differing by
    at most one."""
    return [(n_tasks * k // count, n_tasks * (k + 1) // count) for k in range(count)]


def run(kernel, n_tasks, *args, work=None, scratch=None):
    """Call ``kernel(*args, [buffer,] lo, hi)`` over ``range(n_tasks)`` split between threads.

    Parameters
    ----------
    kernel : callable
        A compiled kernel whose last two arguments are a task range (it releases the GIL).
    n_tasks : int
    *args
        The kernel's other arguments.
    work : float, optional
        The call's work (multiply-adds or elements moved): small calls stay on one thread.
    scratch : callable, optional
        ``scratch()`` makes a buffer (or a tuple of buffers) for one range, each thread its
        own, passed before the range: a kernel's working memory as arguments, which the
        compiler knows overlap no other argument.
    """
    if n_tasks <= 0:
        return
    count = thread_count(n_tasks, work)
    if scratch is None:
        extra = tuple
    else:
        def extra():
            made = scratch()
            return made if isinstance(made, tuple) else (made,)
    if count == 1:
        kernel(*args, *extra(), 0, n_tasks)
        return
    parts = ranges(n_tasks, count)
    pool = _pool()
    futures = [pool.submit(kernel, *args, *extra(), lo, hi) for lo, hi in parts[1:]]
    try:
        kernel(*args, *extra(), *parts[0])
    finally:
        wait(futures)  # every range done before an error is raised or the arrays are freed
    for future in futures:
        future.result()
