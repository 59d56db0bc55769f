"""fastcorr: fast, trustworthy 2-D cross-correlation and convolution layers.

Importing fastcorr compiles nothing and never imports CUDA: kernels compile on first use
(and are cached on disk). The submodules ``nn``, ``train``, ``kernels``, ``batch``,
``reference``, ``threads`` and ``dask`` (which needs the ``dask`` extra) are attributes of the
package, loaded on first use.
"""

import importlib

from ._select import trace
from .dispatch import BackendUnavailableError, release_gpu_memory
from .functional import choose_method, conv2d, convolve2d, corr2d, correlate2d
from .gradients import (conv2d_backward, conv2d_input, conv2d_weight, convolve2d_backward,
                        correlate2d_backward)
from .threads import get_num_threads, num_threads, set_num_threads

__version__ = "0.1.0"

_SUBMODULES = ("batch", "dask", "kernels", "nn", "reference", "threads", "train")
#: Submodules that need an optional extra: reachable as attributes, but left out of
#: ``__all__`` so that ``from fastcorr import *`` and ``help(fastcorr)`` work without it.
_OPTIONAL = {"dask": "dask"}  # submodule: the package it needs

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
    "release_gpu_memory",
    "set_num_threads",
    "trace",
    *(name for name in _SUBMODULES if name not in _OPTIONAL),
]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastcorr' has no attribute {name!r}")


def __dir__():
    # an optional submodule whose package is missing is not listed, so that tools walking
    # dir() (help(), inspect.getmembers) do not trip over its ImportError
    return sorted(set(globals()) | {name for name in _SUBMODULES
                                    if name not in _OPTIONAL or _installed(_OPTIONAL[name])})


def _installed(package):
    import importlib.util

    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # e.g. a module set to None in sys.modules
        return False
