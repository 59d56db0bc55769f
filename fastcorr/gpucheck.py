"""``python -m fastcorr.gpucheck``: prove (or disprove) the CUDA backend on a real GPU in one run.

On a machine with an NVIDIA GPU (written for H100/H200), from a checkout
(``PYTHONPATH=. python -m fastcorr.gpucheck --out report``), within about 8 minutes:

1. the device and the software found (driver, numba-cuda, CuPy, torch);
2. a correctness workload: every CUDA implementation (tiled and direct forward, tiled and
   direct input gradient with folding, split-K weight gradient, bias gradient, strided and
   padded layers, images in every boundary) at the production tunables, on random data,
   compared with the CPU backend in float64 and float32, outputs poisoned before each run;
3. the caller's device and stream with the real libraries: torch tensors computed on torch's
   current (side) stream and on an explicit ``stream=``, CuPy arrays on CuPy's, a parameter
   that requires grad and a bfloat16 tensor refused by name, a version-3 interface naming a
   real stream, a second device when there is one, the streaming path twice;
4. ``compute-sanitizer`` ``memcheck`` and ``racecheck`` over a small copy of that workload;
5. the CUDA test suite on the device (``tests/cuda``, shrunk tunables), then again at the
   production tunables (``FASTCORR_CUDA_TUNABLES=production``);
6. the GPU benchmark table (``asv_benchmarks/gpu_compare.py``: image 4096² k3/k7 against
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


# --------------------------------------------------------------------------- devices, streams

def run_semantics():
    """The caller's device and stream with torch and CuPy on the GPU; returns rows
    ``(check, ok, detail)`` (a check whose library is missing says so and passes)."""
    import fastcorr
    from fastcorr import batch

    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 32, 96, 96)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    expected = fastcorr.conv2d(x, w, padding=1)
    rows = []

    def close(got, scale=1.0):
        got = np.asarray(got, np.float64) / scale
        error = float(np.linalg.norm(got - expected) / np.linalg.norm(expected))
        if not error <= 1e-5:
            raise AssertionError(f"relative error {error:.1e}")
        return f"relative error {error:.1e}"

    def check(name, function):
        try:
            rows.append((name, True, function() or ""))
        except Exception as exc:  # a failed check is a result
            rows.append((name, False, f"{type(exc).__name__}: {exc}"))

    def refused(function, pattern):
        try:
            function()
        except TypeError as exc:
            if pattern not in str(exc):
                raise
            return f"TypeError: {exc}"
        raise AssertionError("no TypeError")

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        tx, tw = torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda()

        def late(value):
            """``value`` written on torch's current stream behind a tenth of a second of
            sleep (NaN until then): a kernel that does not wait for that stream reads NaN."""
            fresh = torch.full_like(value, float("nan"))
            torch.cuda._sleep(200_000_000)
            return fresh.copy_(value)

        def on_torchs_side_stream():
            side = torch.cuda.Stream()
            with torch.cuda.stream(side):
                doubled = fastcorr.conv2d(late(tx), tw, padding=1) * 2.0
                pending = not side.query()  # the host did not wait for the sleep
            side.synchronize()
            assert pending, "the call blocked the host until the side stream finished"
            return close(doubled.cpu().numpy(), 2.0)

        def on_an_explicit_stream():
            side, other = torch.cuda.Stream(), torch.cuda.Stream()
            with torch.cuda.stream(side):
                got = fastcorr.conv2d(late(tx), tw, padding=1, stream=other) + 0.0
                pending = not other.query()  # `other` waits for the side stream's sleep
            torch.cuda.synchronize()
            assert pending, "the call blocked the host"
            return close(got.cpu().numpy())

        def on_the_default_stream():
            side = torch.cuda.Stream()
            with torch.cuda.stream(side):
                got = fastcorr.conv2d(late(tx), tw, padding=1, stream=0) + 0.0
            torch.cuda.synchronize()
            return close(got.cpu().numpy())

        def streaming_after_a_torch_weight():
            side = torch.cuda.Stream()
            with torch.cuda.stream(side):
                got = batch.conv2d_stream(x, late(tw), padding=1, chunk=3, streams=2)
            return close(got)

        def on_a_second_device():
            if torch.cuda.device_count() < 2:
                return "one device here: not run"
            got = fastcorr.conv2d(tx.to("cuda:1"), tw.to("cuda:1"), padding=1)
            assert got.device.index == 1, got.device
            try:
                fastcorr.conv2d(tx, tw.to("cuda:1"))
            except ValueError as exc:
                return close(got.cpu().numpy()) + f"; mixed devices: {exc}"
            raise AssertionError("mixed devices were not refused")

        check("torch: torch's current (side) stream", on_torchs_side_stream)
        check("torch: explicit stream=", on_an_explicit_stream)
        check("torch: stream=0 inside a side stream", on_the_default_stream)
        check("torch: streaming after a weight from a side stream",
              streaming_after_a_torch_weight)
        check("torch: a parameter that requires grad", lambda: refused(
            lambda: fastcorr.conv2d(tx, torch.nn.Parameter(tw.clone())), "detach"))
        check("torch: bfloat16", lambda: refused(
            lambda: fastcorr.conv2d(tx.to(torch.bfloat16), tw), "bfloat16"))
        check("torch: cuda:1", on_a_second_device)
    else:
        rows.append(("torch", True, "torch with CUDA is not installed: not run"))
    try:
        import cupy
    except ImportError:
        cupy = None
    if cupy is not None:
        def on_cupys_stream():
            with cupy.cuda.Stream(non_blocking=True) as side:
                fresh = cupy.full(x.shape, cupy.nan, cupy.float32)
                busy = cupy.ones((4096, 4096), cupy.float32)
                for _ in range(30):  # tens of milliseconds of work before the input is written
                    busy = busy @ busy / 4096
                fresh[...] = cupy.asarray(x)
                doubled = fastcorr.conv2d(fresh, cupy.asarray(w), padding=1) * 2.0
                pending = not side.done
            side.synchronize()
            assert pending, "the call blocked the host until CuPy's stream finished"
            return close(cupy.asnumpy(doubled), 2.0)

        check("CuPy: CuPy's current stream", on_cupys_stream)
    else:
        rows.append(("CuPy", True, "CuPy is not installed: not run"))

    def version_3_interface():
        from numba import cuda

        produced_on = cuda.stream()
        dx, dw = cuda.to_device(x, stream=produced_on), cuda.to_device(w, stream=produced_on)
        got = fastcorr.conv2d(dx, dw, padding=1)  # on the stream dx's interface names
        image = fastcorr.correlate2d(cuda.to_device(x[0, 0], stream=produced_on),
                                     cuda.to_device(w[0, 0], stream=produced_on), "same")
        streams = [a.__cuda_array_interface__["stream"] for a in (got, image)]
        assert streams == [int(produced_on)] * 2, (streams, int(produced_on))
        return close(got.copy_to_host()) + f"; stream {streams[0]}"

    def streaming_twice():
        from fastcorr.cuda import _workspace

        got = batch.conv2d_stream(x, w, padding=1, backend="cuda", chunk=3, streams=2)
        pinned = _workspace.held_pinned_bytes()
        got = batch.conv2d_stream(x, w, padding=1, backend="cuda", chunk=3, streams=2)
        assert pinned > 0 and _workspace.held_pinned_bytes() == pinned, pinned
        return close(got) + f"; {pinned} pinned bytes kept"

    check("Numba: a version-3 interface", version_3_interface)
    check("streaming: host data twice", streaming_twice)
    return rows


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


def _in_process(label, function, passed, report):
    """Run a step in this process; its rows go into ``report[label]``, ``passed(rows)`` says
    whether it passed (a crash fails it)."""
    start = time.perf_counter()
    try:
        rows = function()
        status, tail = (0 if passed(rows) else 1), ""
    except Exception as exc:  # a crash is a result too
        rows, status, tail = [], 1, f"{type(exc).__name__}: {exc}"
    report[label] = rows
    report["steps"].append(dict(label=label, command=f"{function.__name__}()", status=status,
                                seconds=round(time.perf_counter() - start, 1), tail=tail))
    print(f"[gpucheck] {label}: {status}", flush=True)


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
    checks = report.get("semantics") or []
    if checks:
        lines += ["", "## Devices and streams", "", "| check | ok | detail |", "|---|---|---|"]
        lines += [f"| {c} | {'yes' if ok else '**NO**'} | {d} |" for c, ok, d in checks]
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
        _in_process("workload", run_workload, lambda rows: all(r[3] for r in rows), report)
    if "semantics" not in skip:
        _in_process("semantics", run_semantics, lambda rows: all(r[1] for r in rows), report)
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
