"""Helpers of the CUDA tests."""

import numpy as np


def tolerance(dtype):
    """Comparison tolerances for results of ``dtype`` computed in a different order."""
    return dict(rtol=1e-5, atol=1e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-11,
                                                                                  atol=1e-11)


def to_host(a):
    """A device result as NumPy (the tests' own copy)."""
    if hasattr(a, "copy_to_host"):  # Numba device arrays (and the simulator's)
        return a.copy_to_host()
    if type(a).__module__.startswith("cupy"):
        return a.get()
    if type(a).__module__.startswith("torch"):
        return a.cpu().numpy()
    return np.asarray(a)
