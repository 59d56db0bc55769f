"""The boundary rules as plain Python, compiled by each backend for its own target.

:func:`source_index` is wrapped by ``numba.njit`` in :mod:`fastcorr.cpu._indexing` and by
``numba.cuda.jit(device=True)`` in :mod:`fastcorr.cuda._device`, so the CPU and GPU kernels
map virtual (padded) indices to real ones with one and the same code. Importing this module
imports neither Numba nor CUDA.
"""

from ._validate import CIRCULAR, REFLECT, REPLICATE, SYMMETRIC


def source_index(k, n, pad_mode):
    """Map a virtual index ``k`` of an axis of length ``n`` to a real one, or -1 for the fill.

    ``pad_mode`` is one of the boundary rules of :mod:`fastcorr._validate`; indices any distance
    outside the axis are mapped (periodic and mirrored rules repeat indefinitely, as NumPy's pad
    and SciPy's boundaries do).
    """
    if 0 <= k < n:
        return k
    if pad_mode == CIRCULAR:
        return k % n
    if pad_mode == REPLICATE:
        return 0 if k < 0 else n - 1
    if pad_mode == SYMMETRIC:
        m = k % (2 * n)
        return m if m < n else 2 * n - 1 - m
    if pad_mode == REFLECT:
        if n == 1:
            return 0
        m = k % (2 * n - 2)
        return m if m < n else 2 * n - 2 - m
    return -1  # ZEROS: the fill value
