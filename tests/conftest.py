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


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long property runs (many random comparisons); "
                            "not run by a plain `python -m pytest`, .ci/run runs them")
    config.addinivalue_line("markers", "huge: arrays beyond 2**31 elements (16 GiB of memory); "
                            "run once by .ci/run")
    config.addinivalue_line(
        "markers", "no_cuda_device: expects the CUDA backend to be unusable (no driver or GPU); "
        "skipped where a GPU is usable, since the call then runs instead of raising")


def pytest_collection_modifyitems(config, items):
    # the simulator's run starts when collection ends and runs beside every other test: wait
    # for it last
    items.sort(key=lambda item: item.name == "test_cuda_kernels_under_the_simulator")
    marked = [item for item in items if item.get_closest_marker("no_cuda_device")]
    if not marked:
        return
    import pytest

    from fastcorr import BackendUnavailableError
    from fastcorr.dispatch import cuda_backend

    try:
        cuda_backend()
    except BackendUnavailableError:
        return
    skip = pytest.mark.skip(reason="a CUDA device is usable here")
    for item in marked:
        item.add_marker(skip)


def pytest_collection_finish(session):
    """Start the simulator's run of the CUDA tests now, beside the rest of the suite, when its
    test is selected (see tests/test_cuda_simulator.py)."""
    import importlib.util

    wanted = [item for item in session.items
              if item.name == "test_cuda_kernels_under_the_simulator"]
    if wanted and importlib.util.find_spec("numba_cuda") is not None:
        from test_cuda_simulator import start_simulator_run

        session.config.cuda_simulator_run = start_simulator_run()


def pytest_sessionfinish(session):
    proc = getattr(session.config, "cuda_simulator_run", None)
    if proc is not None and proc.poll() is None:  # the session ended before its test ran
        proc.kill()
        proc.wait()
