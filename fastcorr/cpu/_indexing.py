"""Index helpers the CPU kernels share: the boundary rule and in-range spans (inlined)."""

from .. import _boundary
from ._jit import helper

#: The boundary rule (:func:`fastcorr._boundary.source_index`), shared with the GPU kernels.
source_index = helper(_boundary.source_index)


@helper
def in_range_span(count, step, offset, n):
    """The span ``lo <= j < hi`` of ``j in range(count)`` with ``0 <= j * step + offset < n``."""
    lo = 0 if offset >= 0 else (step - 1 - offset) // step
    hi = (n - 1 - offset) // step + 1
    lo = min(lo, count)
    hi = max(lo, min(hi, count))
    return lo, hi


@helper
def sample(row, k, n, pad_mode, fill):
    """``row`` (of length ``n``) at virtual index ``k`` under the boundary rule."""
    c = source_index(k, n, pad_mode)
    return row[c] if c >= 0 else fill
