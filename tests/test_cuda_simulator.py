"""Run the CUDA tests (``tests/cuda``) under Numba's CUDA simulator, in their own process.

The simulator is switched on by ``NUMBA_ENABLE_CUDASIM=1`` before Numba is imported, so it
cannot share this process with the CPU tests. The kernels, the device-array handling and the
streaming path are checked there against the CPU backend and the reference. A second test
compiles every kernel to PTX for sm_90 (``tests/cuda/ptx_check.py``), which checks typing and
lowering for the real device target; it is skipped where NVVM/NVRTC are not installed.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_simulator_run():
    """Start the CUDA tests under the simulator in a process of their own; returns it (a
    ``subprocess.Popen`` writing to temporary files). ``tests/conftest.py`` starts it as soon
    as collection ends, so it runs beside the rest of the suite (it is one single-threaded
    Python process: the simulator interprets every GPU thread)."""
    import tempfile

    env = dict(os.environ)
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", os.path.join("tests", "cuda"), "-q", "-p",
         "no:cacheprovider"], cwd=REPO_ROOT, env=env, stdout=out, stderr=err, text=True)
    proc.outputs = (out, err)
    return proc


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                    reason="numba-cuda is not installed (it is in the test extra)")
def test_cuda_kernels_under_the_simulator(request):
    proc = getattr(request.config, "cuda_simulator_run", None) or start_simulator_run()
    proc.wait(timeout=1800)
    for f in proc.outputs:
        f.seek(0)
    proc.stdout, proc.stderr = (f.read() for f in proc.outputs)
    report = proc.stdout[-30000:] + "\n" + proc.stderr[-5000:]
    assert proc.returncode == 0, report
    assert " passed" in proc.stdout, report


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                    reason="numba-cuda is not installed (it is in the test extra)")
def test_cuda_kernels_compile_to_ptx():
    """Type and lower every kernel for the device (sm_90), when NVVM and NVRTC are installed."""
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, os.path.join("tests", "cuda", "ptx_check.py")],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode == 77:
        pytest.skip(proc.stdout.strip() or "NVVM/NVRTC not available")
    assert proc.returncode == 0, proc.stdout[-10000:] + proc.stderr[-5000:]
