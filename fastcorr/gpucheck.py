"""``python -m fastcorr.gpucheck``: prove (or disprove) the CUDA backend on a real GPU in one run.

On a machine with an NVIDIA GPU (written for H100/H200), from a checkout
(``PYTHONPATH=. python -m fastcorr.gpucheck --out report``), within about 8 minutes:

1. the device and the software found (driver, numba-cuda, CuPy, torch);
2. a correctness workload: every CUDA implementation (tiled and direct forward, tiled and
   direct input gradient with folding, split-K weight gradient, bias gradient, strided and
   padded layers, images in every boundary) at the production tunables, on random data,
   compared with the CPU backend in float64 and float32, outputs poisoned before each run;
3. ``compute-sanitizer`` ``memcheck`` and ``racecheck`` over a small copy of that workload;
4. the CUDA test suite on the device (``tests/cuda``, shrunk tunables), then again at the
   production tunables (``FASTCORR_CUDA_TUNABLES=production``);
5. the GPU benchmark table (``asv_benchmarks/gpu_compare.py``: image 4096² k3/k7 against
   cuDNN and CuPy, depthwise and dense layers against torch, GB/s against HBM, streaming
   against PCIe).

It writes ``report.json`` (every step: command, status, seconds, output tail, parsed
results) and ``report.md`` (the same as tables) into ``--out``, and prints the Markdown last.
Exit status 0 when every step passed, 1 when one failed, 2 without a usable GPU. Each step
has its own time limit; a step that runs out is reported as such and the rest still run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

#: seconds per step (the whole run stays within about 8 minutes)
LIMITS = {"workload": 90, "memcheck": 60, "racecheck": 60, "tests": 150,
          "tests at production tunables": 90, "benchmark": 150}


# --------------------------------------------------------------------------- the workload

def _cases(rng, scale):
    """``(label, function)`` pairs: each function runs one public call on the "cuda" and
    the "cpu" backend and returns ``(gpu_result, cpu_result)`` as NumPy arrays."""
    import fastcorr

    def arr(*shape):
        return rng.standard_normal(shape)

    cases = []
    s = scale
    image, kernel = arr(96 * s, 80 * s), arr(7, 5)
    for boundary in ("fill", "wrap", "symm"):
        for mode in ("full", "same", "valid"):
            cases.append((f"image {mode} {boundary}", lambda m=mode, b=boundary: tuple(
                fastcorr.correlate2d(image, kernel, m, b, 0.5, backend=be)
                for be in ("cuda", "cpu"))))
    big_kernel = arr(41, 41)  # a tile too large for shared memory in float64: the direct path
    cases.append(("image, direct kernel", lambda: tuple(
        fastcorr.correlate2d(image, big_kernel, "same", backend=be) for be in ("cuda", "cpu"))))
    layers = [
        ("dense 3x3 pad 1", (4, 16, 20 * s, 18 * s), (24, 16, 3, 3), dict(padding=1)),
        ("grouped 3x3 stride 2 reflect", (3, 8, 21, 19), (12, 2, 3, 3),
         dict(groups=4, stride=2, padding=1, padding_mode="reflect")),
        ("depthwise 5x5 dilation 2 circular", (2, 6, 23, 17), (6, 1, 5, 5),
         dict(groups=6, padding=4, dilation=2, padding_mode="circular")),
        ("depthwise 3x3 stride 2 replicate", (2, 8, 16, 15), (16, 1, 3, 3),
         dict(groups=8, stride=2, padding=1, padding_mode="replicate")),
        ("1x1", (2, 32, 9, 9), (16, 32, 1, 1), {}),
    ]
    for label, x_shape, w_shape, kwargs in layers:
        x, w, b = arr(*x_shape), arr(*w_shape), arr(w_shape[0])

        def forward(x=x, w=w, b=b, kwargs=kwargs):
            return tuple(fastcorr.conv2d(x, w, b, backend=be, **kwargs) for be in ("cuda", "cpu"))

        def backward(x=x, w=w, kwargs=kwargs):
            g = arr(*fastcorr.conv2d(x, w, **kwargs).shape)
            grads = [fastcorr.conv2d_backward(g, x, w, backend=be, **kwargs)
                     for be in ("cuda", "cpu")]
            return (np.concatenate([a.ravel() for a in grads[0]]),
                    np.concatenate([a.ravel() for a in grads[1]]))

        cases += [(f"{label} forward", forward), (f"{label} backward", backward)]
    return cases


def run_workload(scale=1, dtypes=("float64", "float32")):
    """Run every case in each dtype; returns rows ``(dtype, label, relative error, ok)``."""
    import fastcorr

    rows = []
    for dtype in dtypes:
        rng = np.random.default_rng(0)
        tolerance = 1e-12 if dtype == "float64" else 1e-5
        for label, case in _cases(_Cast(rng, dtype), scale):
            with fastcorr.trace() as ran:
                gpu, cpu = case()
            gpu, cpu = np.asarray(gpu, np.float64), np.asarray(cpu, np.float64)
            error = float(np.linalg.norm(gpu - cpu) / max(np.linalg.norm(cpu), 1e-300))
            ok = bool(np.isfinite(gpu).all() and error <= tolerance)
            impls = sorted({r.implementation for r in ran if r.backend == "cuda"})
            rows.append((dtype, label, error, ok, ",".join(impls)))
    return rows


class _Cast:
    """A generator whose ``standard_normal`` returns ``dtype`` arrays of int-rounded shapes."""

    def __init__(self, rng, dtype):
        self.rng, self.dtype = rng, dtype

    def standard_normal(self, shape):
        return self.rng.standard_normal(tuple(int(n) for n in shape)).astype(self.dtype)


# --------------------------------------------------------------------------- the steps

def _run(label, command, report, env=None, limit=None):
    """Run one step as a subprocess; record status, seconds and the output's tail."""
    limit = limit or LIMITS[label]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=limit)
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        status = "timeout"
        output = (exc.stdout or b"").decode(errors="replace") if isinstance(
            exc.stdout, bytes) else (exc.stdout or "")
    except OSError as exc:
        status, output = "not run", str(exc)
    seconds = time.perf_counter() - start
    step = dict(label=label, command=" ".join(map(str, command)), status=status,
                seconds=round(seconds, 1), tail=output[-4000:])
    report["steps"].append(step)
    print(f"[gpucheck] {label}: {status} in {seconds:.0f} s", flush=True)
    return step


def _environment():
    info = {"python": sys.version.split()[0]}
    for module in ("numpy", "numba", "numba_cuda", "cupy", "torch"):
        try:
            info[module] = __import__(module).__version__
        except Exception as exc:  # not installed, or broken
            info[module] = f"missing ({type(exc).__name__})"
    smi = shutil.which("nvidia-smi")
    if smi:
        done = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.sm",
                               "--format=csv,noheader"], capture_output=True, text=True)
        info["nvidia-smi"] = done.stdout.strip()
    info["compute-sanitizer"] = shutil.which("compute-sanitizer")
    return info


def _markdown(report):
    lines = ["# fastcorr GPU check", "", f"- device: {report['environment'].get('nvidia-smi')}"]
    lines += [f"- {k}: {v}" for k, v in report["environment"].items() if k != "nvidia-smi"]
    lines += ["", "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {s['label']} | {s['status']} | {s['seconds']} |" for s in report["steps"]]
    rows = report.get("workload") or []
    if rows:
        lines += ["", "## Correctness against the CPU backend", "",
                  "| dtype | case | relative error | ok | implementations |", "|---|---|---|---|---|"]
        lines += [f"| {d} | {c} | {e:.2e} | {'yes' if ok else '**NO**'} | {i} |"
                  for d, c, e, ok, i in rows]
    bench = report.get("benchmark")
    if bench:
        lines += ["", "## Benchmark (asv_benchmarks/gpu_compare.py)", "", "```json",
                  json.dumps(bench, indent=1)[:6000], "```"]
    failed = [s for s in report["steps"] if s["status"] != 0]
    for s in failed:
        lines += ["", f"## {s['label']}: {s['status']}", "", "```text", s["tail"][-2500:],
                  "```"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpucheck-report", help="folder for the reports")
    parser.add_argument("--skip", default="", help="comma-separated steps to leave out")
    parser.add_argument("--workload", action="store_true",
                        help="(internal) run the small correctness workload and exit")
    args = parser.parse_args(argv)
    if args.workload:  # the process compute-sanitizer watches
        rows = run_workload(scale=0.25, dtypes=("float32",))
        bad = [r for r in rows if not r[3]]
        print(f"workload: {len(rows)} cases, {len(bad)} wrong")
        return 1 if bad else 0

    from .dispatch import BackendUnavailableError, cuda_backend

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"environment": _environment(), "steps": []}
    try:
        cuda_backend()
    except BackendUnavailableError as exc:
        report["steps"].append(dict(label="device", command="", status="unavailable",
                                    seconds=0, tail=str(exc)))
        _write(report, out)
        print(f"gpucheck: no usable GPU here ({exc})", file=sys.stderr)
        return 2
    skip = set(filter(None, args.skip.split(",")))
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)

    if "workload" not in skip:
        start = time.perf_counter()
        try:
            rows = run_workload()
            status = 0 if all(r[3] for r in rows) else 1
            tail = ""
        except Exception as exc:  # a crash is a result too
            rows, status, tail = [], 1, f"{type(exc).__name__}: {exc}"
        report["workload"] = rows
        report["steps"].append(dict(label="workload", command="run_workload()", status=status,
                                    seconds=round(time.perf_counter() - start, 1), tail=tail))
        print(f"[gpucheck] workload: {status}", flush=True)
    sanitizer = shutil.which("compute-sanitizer")
    for tool in ("memcheck", "racecheck"):
        if tool in skip:
            continue
        if sanitizer is None:
            report["steps"].append(dict(label=tool, command="", status="not run", seconds=0,
                                        tail="compute-sanitizer is not on the PATH"))
            continue
        _run(tool, [sanitizer, "--tool", tool, "--error-exitcode", "1", sys.executable, "-m",
                    "fastcorr.gpucheck", "--workload"], report, env)
    if "tests" not in skip:
        _run("tests", [sys.executable, "-m", "pytest", "tests/cuda", "-q", "-x",
                       "-p", "no:cacheprovider"], report, env)
    if "production" not in skip:
        production = dict(env, FASTCORR_CUDA_TUNABLES="production")
        _run("tests at production tunables",
             [sys.executable, "-m", "pytest", "tests/cuda/test_forward.py",
              "tests/cuda/test_backward.py", "-q", "-x", "-p", "no:cacheprovider"],
             report, production)
    if "benchmark" not in skip:
        bench_json = out / "benchmark.json"
        _run("benchmark", [sys.executable, "asv_benchmarks/gpu_compare.py", "--repeat", "10",
                           "--json", str(bench_json.resolve())], report, env)
        if bench_json.exists():
            report["benchmark"] = json.loads(bench_json.read_text())
    _write(report, out)
    return 0 if all(s["status"] == 0 for s in report["steps"]) else 1


def _write(report, out):
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    text = _markdown(report)
    (out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
