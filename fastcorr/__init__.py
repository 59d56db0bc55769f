"""fastcorr: fast, trustworthy 2-D cross-correlation and convolution layers.

Importing fastcorr compiles nothing and never imports CUDA: kernels compile on first use
(and are cached on disk). The submodules ``nn``, ``train``, ``kernels``, ``batch``,
``reference``, ``threads`` and ``dask`` (which needs the ``dask`` extra) are attributes of the
package, loaded on first use.
"""

import importlib

from ._select import trace
from .dispatch import BackendUnavailableError
from .functional import choose_method, conv2d, convolve2d, corr2d, correlate2d
from .gradients import (conv2d_backward, conv2d_input, conv2d_weight, convolve2d_backward,
                        correlate2d_backward)
from .threads import get_num_threads, num_threads, set_num_threads

__version__ = "0.1.0"

_SUBMODULES = ("batch", "dask", "kernels", "nn", "reference", "threads", "train")

__all__ = [
    "BackendUnavailableError",
    "choose_method",
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
    "set_num_threads",
    "trace",
    *_SUBMODULES,
]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastcorr' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
