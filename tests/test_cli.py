"""The command line: ``python -m fastcorr demo|info`` in subprocesses, ``fastcorr.cli.main``
in process, and the console script's declaration."""

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fastcorr import cli

ROOT = Path(__file__).resolve().parent.parent
EPOCH_LINE = re.compile(r"^\s*epoch\s+(\d+),\s*loss\s+([-+0-9.eE]+)\s*$", re.MULTILINE)
KERNEL_LINE = re.compile(r"learned kernel\s*\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\]")


def run_fastcorr(*args, timeout=120):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "fastcorr", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_run():
    return run_fastcorr("demo")


def check_demo_output(out):
    # 1. the book's corr2d example
    assert "[[19. 25.]\n     [37. 43.]]" in out, out
    # 2. the edges of the 6x8 image: a row 0 1 0 0 0 -1 0
    assert "[[ 0.  1.  0.  0.  0. -1.  0.]" in out
    # 3. the loss of each of the 10 epochs, falling, and the learned kernel
    epochs = EPOCH_LINE.findall(out)
    assert [int(e) for e, _ in epochs] == list(range(1, 11)), out
    losses = [float(v) for _, v in epochs]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] / 50
    kernel = KERNEL_LINE.search(out)
    assert kernel, out
    w0, w1 = float(kernel.group(1)), float(kernel.group(2))
    assert abs(w0 - 1.0) < 0.15 and abs(w1 + 1.0) < 0.15, (w0, w1)
    # 4. convolution is the flipped correlation: [[5, 11], [23, 29]] twice
    assert out.count("[[ 5. 11.]\n     [23. 29.]]") == 2
    # 5. the second difference of the squares
    assert "[[-2. -2. -2. -2. -2. -2.]]" in out
    # 6. the compiled kernels agree with the reference
    assert "agree: True" in out
    return losses, (w0, w1)


def test_demo_subprocess(demo_run):
    assert demo_run.returncode == 0, demo_run.stderr
    check_demo_output(demo_run.stdout)


def test_demo_in_process_matches_subprocess(capsys, demo_run):
    assert cli.main(["demo"]) == 0
    captured = capsys.readouterr()
    losses, kernel = check_demo_output(captured.out)
    # the default seed is fixed: the same run as the subprocess
    assert captured.out == demo_run.stdout
    # another seed learns from other initial weights
    assert cli.main(["demo", "--seed", "3"]) == 0
    losses3, _ = check_demo_output(capsys.readouterr().out)
    assert losses3 != losses


def test_info_subprocess():
    import numba

    result = run_fastcorr("info")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(rf"^numba\s+{re.escape(numba.__version__)}\s*$", out, re.MULTILINE), out
    assert re.search(r"^fastcorr\s+0\.1\.0\s*$", out, re.MULTILINE)
    assert re.search(r"^threads\s+[1-9]\d* of [1-9]\d* ", out, re.MULTILINE)
    assert re.search(r"^cpu\s+\S", out, re.MULTILINE)
    assert re.search(r"^numba target\s+\S+ \((AVX-512|AVX2|SSE|.+)\)", out, re.MULTILINE)
    from fastcorr.cpu._jit import cache_location

    assert re.search(rf"^kernel cache\s+{re.escape(cache_location())}\s*$", out, re.MULTILINE)
    assert re.search(r"^cuda\s+\S", out, re.MULTILINE)


def test_demo_plot(tmp_path):
    target = tmp_path / "out.png"
    result = run_fastcorr("demo", "--plot", str(target))
    if importlib.util.find_spec("matplotlib") is not None:
        assert result.returncode == 0, result.stderr
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert result.returncode != 0
        assert "matplotlib" in result.stderr
        assert "Traceback" not in result.stderr  # a clear message, not a crash
        assert not target.exists()
    # the walk-through itself is printed either way
    check_demo_output(result.stdout)


def test_bad_command_lines(capsys):
    for argv in ([], ["nonsense"], ["demo", "--seed", "x"]):
        with pytest.raises(SystemExit) as excinfo:
            cli.main(argv)
        assert excinfo.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_console_script_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["fastcorr"] == "fastcorr.cli:main"
    module, _, name = project["scripts"]["fastcorr"].partition(":")
    assert getattr(importlib.import_module(module), name) is cli.main
    assert "matplotlib" in " ".join(project["optional-dependencies"]["plot"])


@pytest.mark.no_cuda_device
def test_gpucheck_without_a_gpu_says_so(tmp_path):
    """``python -m fastcorr.gpucheck`` exits 2 without a GPU, with both reports saying why."""
    import json

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-m", "fastcorr.gpucheck", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["steps"][0]["status"] == "unavailable"
    assert "not usable" in (tmp_path / "report.md").read_text()
