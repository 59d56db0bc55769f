"""``fastcorr bench`` (``fastcorr/bench.py``): the floor arithmetic, the timing helpers, the
command on tiny sizes with and without its peers; and a smoke run of the asv benchmarks."""

import importlib
import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastcorr import bench, cli

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^(?P<workload>\S+(?: \S+)?)\s{2,}(?P<impl>\S.*?)\s+(?P<runs>\d+|-)\s+"
                 r"(?P<ms>[0-9.]+|-)\s+(?P<ratio>[0-9.e+-]+|-)\s+(?P<note>.*)$", re.MULTILINE)
WORKLOADS = ["image k3", "image k7", "dense fwd", "dense bwd", "depthwise fwd", "depthwise bwd"]


def rows_of(out):
    """{(workload, impl): match} of the result rows printed by ``fastcorr bench``."""
    return {(m["workload"], m["impl"].strip()): m for m in ROW.finditer(out)
            if m["workload"] != "workload"}


# --- the floors -------------------------------------------------------------------------------


def test_floor_arithmetic_by_hand():
    assert bench.memory_floor(31e9, 31e9) == 1.0
    assert bench.compute_floor(2e9, 1e9) == 2.0
    # a 10x20 image, 3x5 kernel, "same": read 200 + 15 samples, write 200
    assert bench.image_traffic((10, 20), (3, 5), (10, 20), 4) == (200 + 15 + 200) * 4
    assert bench.image_flops((3, 5), (10, 20)) == 2 * 15 * 200
    # a layer (2, 6, 5, 5) -> 4 channels, groups 2, 3x3: each output sums 3 * 9 products
    assert bench.layer_flops((4, 3, 3, 3), (2, 4, 5, 5)) == 2 * (2 * 4 * 5 * 5) * 27
    x, w, y = 2 * 6 * 5 * 5, 4 * 3 * 3 * 3, 2 * 4 * 5 * 5
    assert bench.layer_traffic((2, 6, 5, 5), (4, 3, 3, 3), (2, 4, 5, 5), 8) == (x + w + y) * 8
    assert (bench.layer_traffic((2, 6, 5, 5), (4, 3, 3, 3), (2, 4, 5, 5), 8, backward=True)
            == (y + 2 * x + 2 * w) * 8)
    assert bench.floors(100.0, 50.0, 10.0, 5.0) == (10.0, 10.0)
    assert bench.floor_distance(30.0, 10.0, 5.0) == (3.0, "memory")
    assert bench.floor_distance(30.0, 5.0, 10.0) == (3.0, "compute")


def test_floors_of_the_default_workloads():
    """The floors at the project's measured ceilings (a Zen 5 machine: 31 GB/s copy
    bandwidth, a 160 GF/s sgemm)."""
    image = bench.image_traffic((4096, 4096), (3, 3), (4096, 4096), 4)
    assert bench.memory_floor(image, 31e9) == pytest.approx(4.33e-3, rel=1e-2)  # "4.3 ms"
    shape, c_out, groups = bench.LAYERS["dense"]
    assert bench.layer_flops((c_out, shape[1] // groups, 3, 3), (32, 64, 56, 56)) == 7_398_752_256
    shape, c_out, groups = bench.LAYERS["depthwise"]
    traffic = bench.layer_traffic(shape, (c_out, 1, 3, 3), shape, 4)
    assert bench.memory_floor(traffic, 31e9) == pytest.approx(6.6e-3, rel=1e-2)  # "6.6 ms"
    flops = bench.layer_flops((c_out, 1, 3, 3), shape)
    assert bench.compute_floor(flops, 160e9) == pytest.approx(2.89e-3, rel=1e-2)


def test_max_error():
    a = np.array([[1.0, -4.0], [2.0, 0.5]], dtype=np.float32)
    assert bench.max_error(a, a.copy()) == 0.0
    assert bench.max_error(a, a + np.float32(0.04)) == pytest.approx(0.01, rel=1e-4)
    assert bench.max_error((a, a), (a, a[:1])) == math.inf  # shapes differ
    assert bench.max_error((a, a), (a,)) == math.inf
    assert bench.max_error(np.zeros(3), np.ones(3)) == 1.0  # no scale: absolute


def test_median_time_runs_and_budget():
    calls = []
    seconds, runs = bench.median_time(lambda: calls.append(1), 5)
    assert runs == 5 and len(calls) == 5 and seconds >= 0
    _, runs = bench.median_time(lambda: calls.append(1), 5, budget=0.0)
    assert runs == 1  # at least one run, whatever the budget
    _, runs = bench.median_time(lambda: calls.append(1), 0)
    assert runs == 1


def test_machine_measurements():
    bandwidth = bench.measure_bandwidth(1 << 20, 2)
    assert math.isfinite(bandwidth) and bandwidth > 1e7
    rates = bench.measure_gemm([(8, 16, 32), (4, 4, 4)], np.float32, 2)
    assert set(rates) == {(8, 16, 32), (4, 4, 4)}
    assert all(math.isfinite(r) and r > 0 for r in rates.values())


def test_a_peer_that_disagrees_is_not_timed():
    calls = []
    work = bench.Workload(
        label="toy", description="toy", nbytes=8, flops=2, dtype=np.dtype(np.float64),
        fastcorr=lambda: np.ones(3),
        peers={"right": ("torch", lambda: lambda: np.ones(3)),
               "wrong": ("torch", lambda: lambda: calls.append(1) or np.full(3, 2.0)),
               "absent": ("opencv", lambda: __import__("no_such_module_for_fastcorr")),
               "unselected": ("signal", lambda: lambda: np.ones(3))})
    rows = bench.run_workload(work, repeat=3, budget=10.0, bandwidth=1e9, peak=1e9,
                              peers=("torch", "opencv"))
    by_impl = {row.impl: row for row in rows}
    assert by_impl["fastcorr"].ratio == 1.0 and by_impl["fastcorr"].runs == 3
    assert "floor" in by_impl["fastcorr"].note
    assert by_impl["right"].median_ms is not None and by_impl["right"].runs == 3
    assert "agrees" in by_impl["right"].note
    assert by_impl["wrong"].median_ms is None and "DISAGREES" in by_impl["wrong"].note
    assert calls == [1]  # the checking call only
    assert by_impl["absent"].note.startswith("skipped: not installed")
    assert "not selected" in by_impl["unselected"].note


# --- the command ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "fastcorr", "bench", "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def test_bench_quick_subprocess(quick_run):
    assert quick_run.returncode == 0, quick_run.stderr
    out = quick_run.stdout
    assert re.search(r"^memory bandwidth [0-9.]+ GB/s", out, re.MULTILINE), out
    assert re.search(r"^sgemm peak [0-9.]+ GFLOP/s", out, re.MULTILINE), out
    assert "ratio = peer time / fastcorr time" in out
    floors = re.findall(r"floors: memory ([0-9.]+) ms, compute ([0-9.]+) ms", out)
    assert len(floors) == len(WORKLOADS)
    rows = rows_of(out)
    for workload in WORKLOADS:
        ours = rows[(workload, "fastcorr")]
        assert float(ours["ms"]) > 0 and float(ours["ratio"]) == 1.0
        assert re.match(r"[0-9.e+]+x the (memory|compute) floor", ours["note"]), ours["note"]
        if workload.startswith("image"):  # also timed into a preallocated output, no ratio
            into = rows[(workload, "fastcorr out=")]
            assert float(into["ms"]) > 0 and into["ratio"] == "-"
            assert "into a preallocated output" in into["note"]
    peers = {
        "image k3": ("OpenCV filter2D", "cv2"), "image k7": ("scipy.ndimage.correlate", "scipy"),
        "dense fwd": ("torch F.conv2d", "torch"), "depthwise bwd": ("torch autograd", "torch"),
    }
    for workload, (impl, module) in peers.items():
        row = rows[(workload, impl)]
        if importlib.util.find_spec(module) is None:
            assert row["note"].startswith("skipped: not installed"), row["note"]
        else:  # checked, then timed, with a ratio
            assert row["note"].startswith("agrees with fastcorr"), row["note"]
            assert float(row["ms"]) > 0 and float(row["ratio"]) > 0
    assert "DISAGREES" not in out


def test_bench_without_peers(capsys, monkeypatch, tmp_path):
    for module in ("cv2", "scipy", "scipy.ndimage", "scipy.signal", "torch"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    target = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--kernels", "3", "--repeat", "1",
                     "--json", str(target)]) == 0
    out = capsys.readouterr().out
    rows = rows_of(out)
    assert [w for w, impl in rows if impl == "fastcorr"] == [
        "image k3", "dense fwd", "dense bwd", "depthwise fwd", "depthwise bwd"]
    assert ("image k3", "fastcorr out=") in rows
    peers = [key for key in rows if not key[1].startswith("fastcorr")]
    assert len(peers) == 8
    for key in peers:
        assert rows[key]["note"].startswith("skipped: not installed"), rows[key]["note"]
        assert rows[key]["ms"] == "-"
    assert "pip install opencv-python-headless" in out and "pip install torch" in out
    saved = json.loads(target.read_text())
    assert saved["bandwidth_bytes_per_s"] > 0 and saved["gemm_peak_flops_per_s"] > 0
    assert len(saved["rows"]) == len(rows)
    assert {r["impl"] for r in saved["rows"]} >= {"fastcorr", "torch autograd"}


def test_bench_options(capsys):
    assert cli.main(["bench", "--quick", "--no-layers", "--kernels", "5", "--image-size", "40",
                     "--repeat", "1", "--peers", "ndimage", "--dtype", "float64",
                     "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "dgemm peak" in out and "image 40x40 float64, 5x5 kernel" in out
    rows = rows_of(out)
    assert set(rows) == {("image k5", impl) for impl in (
        "fastcorr", "fastcorr out=", "OpenCV filter2D", "scipy.ndimage.correlate", "scipy.signal.correlate2d",
        "torch F.conv2d")}
    assert "not selected" in rows[("image k5", "torch F.conv2d")]["note"]
    if importlib.util.find_spec("scipy") is not None:
        assert rows[("image k5", "scipy.ndimage.correlate")]["note"].startswith("agrees")
    import fastcorr

    fastcorr.set_num_threads(fastcorr.threads.max_threads())
    for argv in (["bench", "--peers", "matlab"], ["bench", "--kernels", "0"],
                 ["bench", "--kernels", "x"]):
        with pytest.raises(SystemExit) as excinfo:
            cli.main(argv)
        assert excinfo.value.code == 2


# --- the asv benchmarks -----------------------------------------------------------------------


def _benchmark_classes():
    sys.path.insert(0, str(ROOT / "asv_benchmarks"))
    try:
        for name in ("bench_forward", "bench_backward", "bench_train"):
            module = importlib.import_module(f"benchmarks.{name}")
            for value in vars(module).values():
                if isinstance(value, type) and value.__module__ == module.__name__ and any(
                        a.startswith(("time_", "peakmem_")) for a in dir(value)):
                    yield value
    finally:
        sys.path.remove(str(ROOT / "asv_benchmarks"))


@pytest.mark.parametrize("cls", list(_benchmark_classes()), ids=lambda c: c.__name__)
def test_asv_benchmarks_run(cls):
    """Each benchmark class, at its first parameters, as asv runs it: setup, then each method
    (asv's own ``asv check`` in .ci/run checks the signatures of the whole suite)."""
    params = getattr(cls, "params", ())
    if params and not isinstance(params[0], (list, tuple)):
        params = (params,)
    first = next(itertools.product(*params)) if params else ()
    assert len(first) == len(getattr(cls, "param_names", first))
    bench_obj = cls()
    bench_obj.setup(*first)
    for name in dir(cls):
        if name.startswith(("time_", "peakmem_")):
            getattr(bench_obj, name)(*first)


def test_bench_zoo_quick(capsys):
    """``fastcorr bench --zoo``: every zoo layer forward and backward against torch, then the
    table with the geometric mean and the worst ratio."""
    assert cli.main(["bench", "--zoo", "--quick", "--repeat", "1", "--peers", "torch"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("layer zoo:"):]
    labels = [f"{net} {label}" for net, label, *_ in bench.ZOO]
    assert {"ResNet", "ResNet-50", "ResNeXt", "MobileNetV2", "EfficientNet",
            "ConvNeXt"} <= {net for net, *_ in bench.ZOO}
    for label in labels:
        for kind in ("fwd", "bwd"):
            assert re.search(rf"^{re.escape(label)}\s+{kind}\s+[0-9.]+ ", table, re.M), label
    if importlib.util.find_spec("torch") is not None:
        assert re.search(rf"^geometric mean [0-9.]+x over {2 * len(labels)}; worst ", table,
                         re.M), table
