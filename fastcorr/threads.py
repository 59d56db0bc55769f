"""How many threads fastcorr's CPU kernels use, and NumPy's BLAS with them.

The CPU backend runs Numba parallel kernels and, for dense layers, NumPy's matrix products
(OpenBLAS). The two never run at the same time, so each may use every core; but a program that
limits one must limit both, or the other still takes every core. :func:`set_num_threads` and
:func:`num_threads` set both. Numba's pool has ``NUMBA_NUM_THREADS`` threads (by default one
per core): that is the most either function accepts.

Like :func:`numba.set_num_threads`, the setting belongs to the calling thread for the Numba
kernels; OpenBLAS has a single, process-wide setting.
"""

import contextlib
import ctypes
import functools
import threading
from pathlib import Path

_OPENBLAS_SYMBOLS = (  # NumPy's own wheels (scipy-openblas, 64-bit ints), then plain OpenBLAS
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


@functools.lru_cache(maxsize=None)
def _openblas():
    """``(set, get)`` of the OpenBLAS that NumPy loaded, or None when it cannot be found."""
    import numpy as np

    root = Path(np.__file__).parent
    candidates = []  # the copy bundled in NumPy's wheels, else one linked into the process
    for folder in (root.parent / "numpy.libs", root / ".dylibs"):
        candidates += sorted(folder.glob("*openblas*"))
    for path in candidates + [None]:
        try:
            lib = ctypes.CDLL(None if path is None else str(path))
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


def max_threads():
    """The size of Numba's thread pool: ``NUMBA_NUM_THREADS``, by default the number of cores."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


def get_num_threads():
    """The number of threads the CPU kernels use now (in the calling thread)."""
    import numba

    return numba.get_num_threads()


def blas_threads():
    """The number of threads NumPy's OpenBLAS uses now, or None when it cannot be found."""
    blas = _openblas()
    return None if blas is None else blas[1]()


def set_num_threads(n):
    """Use ``n`` threads in the CPU kernels and in NumPy's BLAS.

    Parameters
    ----------
    n : int
        From 1 to :func:`max_threads`.
    """
    import numba

    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int, got {n!r}")
    if not 1 <= n <= max_threads():
        raise ValueError(f"n: expected 1 to {max_threads()} threads (NUMBA_NUM_THREADS), got {n}")
    numba.set_num_threads(n)
    blas = _openblas()
    if blas is not None:
        blas[0](n)


@contextlib.contextmanager
def num_threads(n):
    """A context in which the CPU kernels and NumPy's BLAS use ``n`` threads; the previous
    numbers are restored on leaving it.

    Examples
    --------
    >>> with fastcorr.num_threads(1):
    ...     y = fastcorr.conv2d(x, w)
    """
    import numba

    previous, previous_blas = numba.get_num_threads(), blas_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
        if previous_blas is not None:
            _openblas()[0](previous_blas)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved = None


@contextlib.contextmanager
def single_threaded_blas():
    """A context in which NumPy's OpenBLAS runs each call on the calling thread alone, for
    code that runs several BLAS calls side by side on threads of its own; the previous
    number is restored when the last such context (of any thread) ends. Does nothing where
    OpenBLAS cannot be found (see :func:`blas_threads`)."""
    global _blas_users, _blas_saved
    blas = _openblas()
    if blas is None:
        yield
        return
    with _blas_lock:
        if _blas_users == 0:
            _blas_saved = blas[1]()
            blas[0](1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                blas[0](_blas_saved)
