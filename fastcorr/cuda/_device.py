"""Device functions shared by the GPU kernels.

:func:`source_index` is the very function the CPU kernels compile (from
:mod:`fastcorr._boundary`), here compiled for the device.
"""

from numba import cuda

from .. import _boundary

#: Map a virtual (padded) index to a real one under a boundary rule, or -1 for the fill.
source_index = cuda.jit(device=True, cache=True)(_boundary.source_index)
