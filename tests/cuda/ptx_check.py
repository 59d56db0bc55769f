"""Compile every CUDA kernel of fastcorr to PTX for a real GPU architecture, without a GPU.

Run by ``tests/test_cuda_simulator.py`` (not under the simulator): it checks that the kernels
type and lower for the device target, which the simulator (plain Python) cannot. Needs
NVVM and NVRTC (the CUDA toolkit, or ``pip install nvidia-cuda-nvcc-cu12
nvidia-cuda-nvrtc-cu12`` with their ``lib`` folders on ``LD_LIBRARY_PATH``); exits with status
77 when they cannot be found. Prints one line per kernel; exit status 1 if any failed.

Usage: ``PYTHONPATH=. python tests/cuda/ptx_check.py [major minor]`` (default 9 0, H100).
"""

import sys

import numpy as np


def main(argv):
    cc = tuple(int(a) for a in argv[:2]) if len(argv) >= 2 else (9, 0)
    import numba
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda, types

    class _Device:  # device functions ask the current device for its architecture
        compute_capability = cc

    dispatcher.get_current_device = lambda: _Device()
    from fastcorr.cuda import _backward, _copy, _forward

    def arr(dt, nd, layout="C"):
        return types.Array(dt, nd, layout)

    try:
        cuda.compile_ptx(_copy.zero_kernel().py_func, (arr(types.float32, 1),), cc=cc)
    except Exception as exc:  # no NVVM / NVRTC here
        print(f"ptx_check: cannot compile PTX here ({type(exc).__name__}: "
              f"{' '.join(str(exc).split())[:300]})")
        return 77
    i64, b1 = types.int64, types.boolean
    failed = 0
    for name in ("float32", "float64"):
        dt = numba.from_dtype(np.dtype(name))
        a1, a2, a4, a5 = arr(dt, 1), arr(dt, 2), arr(dt, 4), arr(dt, 5)
        forward_sig = (a4, a4, a1, b1, a4) + (i64,) * 7 + (dt, i64)
        jobs = [
            ("forward tiled dense", _forward.tiled_kernel(name, 32, 8, 4, 1, 4),
             forward_sig + (i64,) * 3),
            ("forward tiled depthwise", _forward.tiled_kernel(name, 32, 8, 1, 2, 4),
             forward_sig + (i64,) * 3),
            ("forward direct", _forward.direct_kernel(name), forward_sig),
            ("grad input tiled", _backward.grad_padded_kernel(name, 32, 8, 4, 1, 4),
             (a4, a4, a4) + (i64,) * 10),
            ("grad input direct", _backward.grad_padded_direct_kernel(name),
             (a4, a4, a4) + (i64,) * 7),
            ("grad input fold", _backward.fold_kernel(name), (a4, a4, i64, i64, i64)),
            ("grad weight split-K", _backward.grad_weight_kernel(name, 256, 16),
             (a4, a4, a5) + (i64,) * 7 + (dt, i64, i64)),
            ("grad weight chunk sum", _backward.chunk_sum_kernel(name), (a2, a1)),
            ("grad bias", _backward.bias_kernel(name, 256), (a4, a1)),
            ("copy 1-D", _copy.copy_kernel(1), (arr(types.int32, 1, "A"), a1, b1)),
            ("copy 2-D", _copy.copy_kernel(2), (arr(types.int64, 2, "A"), a2, b1)),
            ("copy 3-D", _copy.copy_kernel(3), (arr(types.float32, 3, "A"), arr(dt, 3), b1)),
            ("copy 4-D", _copy.copy_kernel(4), (arr(types.float64, 4, "A"), a4, b1)),
        ]
        for label, kernel, sig in jobs:
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
            except Exception as exc:
                failed += 1
                print(f"{name} {label}: FAILED {type(exc).__name__}: {exc}")
                continue
            spills = " (uses local memory)" if ".local" in ptx else ""
            print(f"{name} {label}: ok{spills}{_resources(ptx, cc)}")
    return 1 if failed else 0


def _resources(ptx, cc):
    """``ptxas -v``'s registers, stack, spills and shared memory of the kernel, when ptxas
    (the CUDA toolkit's assembler) is on the PATH; empty otherwise."""
    import re
    import shutil
    import subprocess
    import tempfile

    ptxas = shutil.which("ptxas")
    if ptxas is None:
        return ""
    with tempfile.TemporaryDirectory() as folder:
        source = f"{folder}/kernel.ptx"
        with open(source, "w") as f:
            f.write(ptx)
        done = subprocess.run([ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", source, "-o",
                               f"{folder}/kernel.cubin"], capture_output=True, text=True)
    report = done.stdout + done.stderr
    if done.returncode != 0:
        return f"; ptxas failed: {report.strip()[-200:]}"
    found = {key: re.search(pattern, report) for key, pattern in (
        ("registers", r"Used (\d+) registers"), ("stack", r"(\d+) bytes stack frame"),
        ("spill stores", r"(\d+) bytes spill stores"), ("spill loads", r"(\d+) bytes spill loads"),
        ("shared", r"(\d+) bytes smem"))}
    return "; " + ", ".join(f"{key} {m.group(1)}" for key, m in found.items() if m)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
