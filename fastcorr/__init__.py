"""fastcorr: fast, trustworthy 2-D cross-correlation and convolution layers.

Importing fastcorr compiles nothing and never imports CUDA: kernels compile on first use
(and are cached on disk).
"""

from . import reference
from .dispatch import BackendUnavailableError
from .functional import conv2d, convolve2d, corr2d, correlate2d

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "conv2d",
    "convolve2d",
    "corr2d",
    "correlate2d",
    "reference",
]
