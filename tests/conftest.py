"""Shared pytest configuration.

The CUDA tests in ``tests/cuda`` run in their own pytest process (``tests/test_cuda_simulator.py``
starts it with ``NUMBA_ENABLE_CUDASIM=1``, which must be set before Numba is imported); a plain
``python -m pytest`` leaves that folder to it. Asking for it explicitly
(``python -m pytest tests/cuda``) runs those tests in this process: on a real GPU, or under the
simulator when the variable is set.
"""

from pathlib import Path

_CUDA_TESTS = Path(__file__).resolve().parent / "cuda"


def _inside(path, folder):
    return path == folder or folder in path.parents


def pytest_ignore_collect(collection_path, config):
    path = Path(collection_path).resolve()
    if not _inside(path, _CUDA_TESTS):
        return None
    requested = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    return not any(_inside(r, _CUDA_TESTS) for r in requested)
