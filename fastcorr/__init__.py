"""fastcorr: fast, trustworthy 2-D cross-correlation and convolution layers.

Importing fastcorr compiles nothing and never imports CUDA: kernels compile on first use
(and are cached on disk).
"""

from . import reference
from .dispatch import BackendUnavailableError
from .functional import conv2d, convolve2d, corr2d, correlate2d
from .gradients import (conv2d_backward, conv2d_input, conv2d_weight, convolve2d_backward,
                        correlate2d_backward)
from .threads import get_num_threads, num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "conv2d",
    "conv2d_backward",
    "conv2d_input",
    "conv2d_weight",
    "convolve2d_backward",
    "correlate2d_backward",
    "convolve2d",
    "corr2d",
    "correlate2d",
    "get_num_threads",
    "num_threads",
    "reference",
    "set_num_threads",
]
