"""The CUDA tests: under the simulator (``NUMBA_ENABLE_CUDASIM=1``) or on a real GPU.

Every test here is skipped when the CUDA backend cannot run. The kernels' tunables are shrunk
(tiny blocks and tiles) so that the tiny shapes the simulator can afford still cover several
tiles, their edges, split-K chunks and tap batches. ``FASTCORR_CUDA_TUNABLES=production``
keeps the shipped tunables instead (``python -m fastcorr.gpucheck`` runs the tests both ways
on a GPU).
"""

import os

import numpy as np
import pytest

from fastcorr import config
from fastcorr.dispatch import BackendUnavailableError, cuda_backend

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

try:
    cuda_backend()
    UNAVAILABLE = None
except BackendUnavailableError as exc:
    UNAVAILABLE = str(exc)

SMALL = dict(
    CUDA_BLOCK=(4, 2),
    CUDA_DENSE_OUTPUTS=(2, 1, 2),
    CUDA_DEPTHWISE_OUTPUTS=(1, 2, 2),
    CUDA_GRAD_WEIGHT_THREADS=4,
    CUDA_GRAD_WEIGHT_CHUNK_ROWS=4,
    CUDA_GRAD_WEIGHT_TAPS=16,
    CUDA_STREAM_CHUNK_BYTES=3 * 5 * 6 * 8,
)

#: The shipped values of the shrunk tunables.
DEFAULTS = {name: getattr(config, name) for name in SMALL}


def pytest_collection_modifyitems(config, items):
    if UNAVAILABLE:
        skip = pytest.mark.skip(reason=UNAVAILABLE)
        for item in items:
            item.add_marker(skip)


PRODUCTION = os.environ.get("FASTCORR_CUDA_TUNABLES") == "production"


@pytest.fixture(autouse=True)
def small_tiles(monkeypatch):
    if PRODUCTION:
        return
    for name, value in SMALL.items():
        monkeypatch.setattr(config, name, value)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

