"""Helpers of the CUDA tests (those they share with the CPU tests are in ``tests/helpers.py``,
the cases in ``tests/cases.py``)."""

import numpy as np
from helpers import cross_backend_tolerance

#: Comparison tolerances for results of a dtype computed in a different order (the shared
#: test bodies compare the CUDA backend with the CPU one within them too).
tolerance = cross_backend_tolerance


def to_host(a):
    """A device result as NumPy (the tests' own copy)."""
    if hasattr(a, "copy_to_host"):  # Numba device arrays (and the simulator's)
        return a.copy_to_host()
    if type(a).__module__.startswith("cupy"):
        return a.get()
    if type(a).__module__.startswith("torch"):
        return a.cpu().numpy()
    return np.asarray(a)


def operands(rng, x_shape, w_shape, bias, dtype):
    """Random conv2d operands ``(x, w, b)`` of ``dtype`` (``b`` None without a bias)."""
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b
