"""Compile every CUDA kernel of fastcorr to PTX for a real GPU architecture, without a GPU,
and report what ``ptxas`` makes of it.

Run by ``tests/test_cuda_simulator.py`` (not under the simulator): it checks that the kernels
type and lower for the device target, which the simulator (plain Python) cannot. Needs NVVM
and NVRTC, which the test extra installs (``numba-cuda[cu12]``); exits with status 77 when
they cannot be found. Every kernel is built with the production tunables of
``fastcorr/config.py`` and assembled by ``ptxas -v`` (the CUDA toolkit's on the PATH, or the
pip package's), and one table row per kernel and dtype gives its registers, stack frame,
spills, static shared memory, launch block and theoretical occupancy on sm_90 at that block
(as registers limit it).

Exit status 1 when a kernel fails to compile, uses local memory (a stack frame) or spills;
status 2 when a tiled kernel is below its occupancy budget: :data:`TILED_BUDGET` (25%) for
every tiled kernel, :data:`FORWARD_BUDGET` (50%) for the tiled forward kernels, so that CI
(``tests/test_cuda_simulator.py``) fails when a change makes a kernel use more registers.

Usage: ``PYTHONPATH=. python tests/cuda/ptx_check.py [major minor]`` (default 9 0:
H100/H200).
"""

import sys

import numpy as np


def main(argv):
    if len(argv) not in (0, 2) or not all(a.isdigit() for a in argv):
        print("usage: ptx_check.py [major minor]")
        return 64
    cc = tuple(int(a) for a in argv) if argv else (9, 0)
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
    from fastcorr import config
    from fastcorr.cuda._arrays import ELEMENTWISE_THREADS

    i64, b1 = types.int64, types.boolean
    bx, by = config.CUDA_BLOCK
    block = bx * by
    failed = below = 0
    rows = []
    for name in ("float32", "float64"):
        dt = numba.from_dtype(np.dtype(name))
        a1, a2, a4, a5 = arr(dt, 1), arr(dt, 2), arr(dt, 4), arr(dt, 5)
        forward_sig = (a4, a4, a1, b1, a4) + (i64,) * 7 + (dt, i64)
        dense, depthwise = config.CUDA_DENSE_OUTPUTS, config.CUDA_DEPTHWISE_OUTPUTS
        gw_threads = config.CUDA_GRAD_WEIGHT_THREADS
        # (label, kernel, signature, threads per block at launch, occupancy budget): the
        # production tunables of fastcorr/config.py
        jobs = [
            ("forward tiled dense", _forward.tiled_kernel(name, bx, by, *dense),
             forward_sig + (i64,) * 3, block, FORWARD_BUDGET),
            ("forward tiled depthwise", _forward.tiled_kernel(name, bx, by, *depthwise),
             forward_sig + (i64,) * 3, block, FORWARD_BUDGET),
            ("forward direct", _forward.direct_kernel(name), forward_sig, ELEMENTWISE_THREADS,
             None),
            ("grad input tiled dense", _backward.grad_padded_kernel(name, bx, by, *dense),
             (a4, a4, a4) + (i64,) * 10, block, TILED_BUDGET),
            ("grad input tiled depthwise",
             _backward.grad_padded_kernel(name, bx, by, *depthwise),
             (a4, a4, a4) + (i64,) * 10, block, TILED_BUDGET),
            ("grad input direct", _backward.grad_padded_direct_kernel(name),
             (a4, a4, a4) + (i64,) * 7, ELEMENTWISE_THREADS, None),
            ("grad input fold", _backward.fold_kernel(name), (a4, a4, i64, i64, i64),
             ELEMENTWISE_THREADS, None),
            ("grad weight split-K",
             _backward.grad_weight_kernel(name, gw_threads, config.CUDA_GRAD_WEIGHT_TAPS),
             (a4, a4, a5) + (i64,) * 7 + (dt, i64, i64), gw_threads, None),
            ("grad weight chunk sum", _backward.chunk_sum_kernel(name), (a2, a1),
             ELEMENTWISE_THREADS, None),
            ("grad bias split-K", _backward.bias_kernel(name, gw_threads), (a4, a2, i64), gw_threads,
             None),
            ("copy 1-D", _copy.copy_kernel(1), (arr(types.int32, 1, "A"), a1, b1),
             ELEMENTWISE_THREADS, None),
            ("copy 2-D", _copy.copy_kernel(2), (arr(types.int64, 2, "A"), a2, b1),
             ELEMENTWISE_THREADS, None),
            ("copy 3-D", _copy.copy_kernel(3), (arr(types.float32, 3, "A"), arr(dt, 3), b1),
             ELEMENTWISE_THREADS, None),
            ("copy 4-D", _copy.copy_kernel(4), (arr(types.float64, 4, "A"), a4, b1),
             ELEMENTWISE_THREADS, None),
        ]
        for label, kernel, sig, threads, budget in jobs:
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
            except Exception as exc:
                failed += 1
                print(f"{name} {label}: FAILED {type(exc).__name__}: {exc}")
                continue
            found = _resources(ptx, cc)
            local = ".local" in ptx or found.get("stack", 0) or found.get("spill stores", 0)
            occupancy = _occupancy(found.get("registers"), threads)
            verdict = "ok"
            if local:
                failed += 1
                verdict = "LOCAL MEMORY"
            elif budget is not None and occupancy is not None and occupancy < budget:
                below += 1
                verdict = f"below {budget:.0%}"
            rows.append((f"{name} {label}", found, threads, occupancy, verdict))
    _print_table(rows)
    if failed:
        return 1
    if below:
        return 2
    return 0


#: The least theoretical occupancy a tiled kernel may have at its launch block: 25%, at most
#: 128 registers at 256 threads.
TILED_BUDGET = 0.25

#: The tiled forward kernels' (dense and depthwise, float32 and float64): 50%, at most 64
#: registers at 256 threads (40-56 when this budget was set).
FORWARD_BUDGET = 0.5

#: sm_90 (H100/H200): registers per SM, the allocation unit (registers per warp), threads
#: and blocks per SM.
_SM_REGISTERS, _REG_UNIT, _SM_THREADS, _SM_BLOCKS = 65536, 256, 2048, 32


def _occupancy(registers, threads):
    """Theoretical occupancy (resident threads over 2048) of a kernel using ``registers``
    per thread at ``threads`` per block, as limited by registers and block counts (shared
    memory depends on the plan and is left out)."""
    if registers is None:
        return None
    warps = -(-threads // 32)
    per_warp = -(-registers * 32 // _REG_UNIT) * _REG_UNIT
    blocks = min(_SM_REGISTERS // (per_warp * warps), _SM_BLOCKS, _SM_THREADS // threads)
    return blocks * threads / _SM_THREADS


def _print_table(rows):
    print(f"{'kernel':<36} {'regs':>4} {'stack':>5} {'spills':>6} {'smem':>5} {'block':>5} "
          f"{'occupancy':>9}  verdict")
    for label, found, threads, occupancy, verdict in rows:
        spills = found.get("spill stores", 0) + found.get("spill loads", 0)
        occ = "?" if occupancy is None else f"{occupancy:.1%}"
        print(f"{label:<36} {found.get('registers', '?'):>4} {found.get('stack', '?'):>5} "
              f"{spills:>6} {found.get('shared', 0):>5} {threads:>5} {occ:>9}  {verdict}")


def _resources(ptx, cc):
    """``ptxas -v``'s registers, stack, spills and shared memory of the kernel (a dict; empty
    without ptxas). ptxas comes from the PATH (the CUDA toolkit) or from the pip package
    ``nvidia-cuda-nvcc-cu12`` that ``numba-cuda[cu12]`` installs."""
    import re
    import subprocess
    import tempfile

    ptxas = _ptxas()
    if ptxas is None:
        return {}
    with tempfile.TemporaryDirectory() as folder:
        source = f"{folder}/kernel.ptx"
        with open(source, "w") as f:
            f.write(ptx)
        done = subprocess.run([ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", source, "-o",
                               f"{folder}/kernel.cubin"], capture_output=True, text=True)
    report = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"ptxas failed: {report.strip()[-300:]}")
    found = {}
    for key, pattern in (("registers", r"Used (\d+) registers"),
                         ("stack", r"(\d+) bytes stack frame"),
                         ("spill stores", r"(\d+) bytes spill stores"),
                         ("spill loads", r"(\d+) bytes spill loads"),
                         ("shared", r"(\d+) bytes smem")):
        match = re.search(pattern, report)
        if match:
            found[key] = int(match.group(1))
    return found


def _ptxas():
    import glob
    import os
    import shutil

    found = shutil.which("ptxas")
    if found:
        return found
    import site

    for root in site.getsitepackages():
        for path in glob.glob(os.path.join(root, "nvidia", "cu*", "bin", "ptxas")) + glob.glob(
                os.path.join(root, "nvidia", "cuda_nvcc", "bin", "ptxas")):
            if os.access(path, os.X_OK):
                return path
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
