"""Threads: fastcorr's own pool, thread-local settings, forked and spawned children, many
calling threads at once under every Numba threading layer, and BLAS left alone."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastcorr
from fastcorr import threads
from fastcorr.cpu import _pool

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, timeout=300, **env):
    """Run ``code`` as a script of its own (spawned children re-import it) in a new process."""
    import tempfile

    environment = dict(os.environ, **env)
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO_ROOT, environment.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as folder:
        script = os.path.join(folder, "script.py")
        with open(script, "w") as f:
            f.write(code)
        return subprocess.run([sys.executable, script], env=environment, capture_output=True,
                              text=True, timeout=timeout, cwd=REPO_ROOT)


def test_the_context_sets_the_calling_thread_only_and_restores_it():
    before = fastcorr.get_num_threads()
    seen = {}
    entered, release = threading.Event(), threading.Event()

    def other():
        with fastcorr.num_threads(1):
            seen["inside"] = fastcorr.get_num_threads()
            entered.set()
            release.wait(10)
        seen["after"] = fastcorr.get_num_threads()

    worker = threading.Thread(target=other)
    worker.start()
    entered.wait(10)
    assert fastcorr.get_num_threads() == before  # the other thread's context is its own
    release.set()
    worker.join()
    assert seen == {"inside": 1, "after": before}


def test_contexts_left_in_any_order_restore_their_own_thread():
    """Thread A enters num_threads(1), B enters, A leaves, B leaves: each thread ends with what
    it had (the reported leak left the count at 1 for everyone)."""
    top = threads.max_threads()
    steps = [threading.Event() for _ in range(4)]
    after = {}

    def a():
        with fastcorr.num_threads(1):
            steps[0].set()
            steps[1].wait(10)
        after["a"] = fastcorr.get_num_threads()
        steps[2].set()

    def b():
        steps[0].wait(10)
        with fastcorr.num_threads(min(2, top)):
            steps[1].set()
            steps[2].wait(10)
        after["b"] = fastcorr.get_num_threads()

    workers = [threading.Thread(target=f) for f in (a, b)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert after == {"a": top, "b": top}
    assert fastcorr.get_num_threads() == top


def test_set_num_threads_is_the_process_default_and_contexts_override_it():
    top = threads.max_threads()
    try:
        fastcorr.set_num_threads(1)
        assert fastcorr.get_num_threads() == 1
        with fastcorr.num_threads(top):
            assert fastcorr.get_num_threads() == top
        assert fastcorr.get_num_threads() == 1
        got = []
        worker = threading.Thread(target=lambda: got.append(fastcorr.get_num_threads()))
        worker.start()
        worker.join()
        assert got == [1]
    finally:
        fastcorr.set_num_threads(top)


def test_the_context_restores_after_an_error():
    before = fastcorr.get_num_threads()
    with pytest.raises(RuntimeError):
        with fastcorr.num_threads(1):
            raise RuntimeError("inside")
    assert fastcorr.get_num_threads() == before


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (10**6, ValueError),
                                        (1.0, TypeError), ("2", TypeError), (True, TypeError)])
def test_bad_thread_counts(bad, error):
    before = fastcorr.get_num_threads()
    with pytest.raises(error, match="n: expected"):
        fastcorr.set_num_threads(bad)
    with pytest.raises(error, match="n: expected"):
        with fastcorr.num_threads(bad):
            pass
    assert fastcorr.get_num_threads() == before


@pytest.mark.parametrize("variable", ["FASTCORR_NUM_THREADS", "NUMBA_NUM_THREADS"])
def test_the_environment_bounds_the_thread_count(variable):
    code = ("import fastcorr; assert fastcorr.threads.max_threads() == 1\n"
            "fastcorr.set_num_threads(1)\n"
            "try:\n    fastcorr.set_num_threads(2)\nexcept ValueError as e:\n"
            "    assert 'max_threads' in str(e)\nelse:\n    raise SystemExit('no error')\n")
    done = run_python(code, **{variable: "1"})
    assert done.returncode == 0, done.stderr


def _workloads(rng):
    """One call of each kind of kernel: image, depthwise, dense forward and gradients."""
    image = rng.standard_normal((97, 130)).astype(np.float32)
    x_dw = rng.standard_normal((3, 6, 21, 19)).astype(np.float32)
    w_dw = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    x = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 24, 12, 12)).astype(np.float32)

    def run():
        return (fastcorr.correlate2d(image, image[:7, :9], "same", "symm"),
                fastcorr.correlate2d(image, image[:15, :15], "same", method="fft"),
                fastcorr.conv2d(x_dw, w_dw, padding=2, groups=6),
                *fastcorr.conv2d_backward(np.ones((3, 6, 21, 19), np.float32), x_dw, w_dw,
                                          padding=2, groups=6),
                fastcorr.conv2d(x, w, padding=1),
                *fastcorr.conv2d_backward(g, x, w, padding=1))

    return run


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    monkeypatch.setattr(_pool, "MIN_WORK_PER_THREAD", 1)  # every kernel split between threads
    run = _workloads(np.random.default_rng(0))
    results = []
    for n in sorted({1, threads.max_threads()}):
        with fastcorr.num_threads(n):
            results.append(run())
    for got in results[1:]:
        for a, b in zip(results[0], got):
            assert np.array_equal(a, b)


def test_results_at_one_and_several_threads_match_bitwise_in_fresh_processes():
    """More threads than this machine's cores, in processes of their own: still bitwise."""
    code = ("import sys, numpy as np; sys.path.insert(0, 'tests')\n"
            "import fastcorr.cpu._pool as pool; pool.MIN_WORK_PER_THREAD = 1\n"
            "from test_threads import _workloads\n"
            "out = _workloads(np.random.default_rng(0))()\n"
            "import hashlib; print(hashlib.sha256(b''.join(a.tobytes() for a in out)).hexdigest())")
    digests = {run_python(code, FASTCORR_NUM_THREADS=str(n)).stdout.strip() for n in (1, 2, 5)}
    assert len(digests) == 1 and len(next(iter(digests))) == 64, digests


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_a_child_process_computes_after_the_parent_used_every_kernel(start_method):
    """The reported failure: once the parent had run a parallel kernel, a fork-started child
    died ("fork() called from a process already using GNU OpenMP") and Pool.map hung."""
    if start_method != "spawn" and not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    code = (
        "import multiprocessing as mp, sys, numpy as np, fastcorr\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_threads import _workloads\n"
        "import fastcorr.cpu._pool as pool; pool.MIN_WORK_PER_THREAD = 1\n"
        "def child(seed):\n"
        "    return [float(a.astype(np.float64).sum()) for a in _workloads(np.random.default_rng(seed))()]\n"
        "if __name__ == '__main__':\n"
        "    parent = child(0)\n"
        f"    with mp.get_context('{start_method}').Pool(2) as pool:\n"
        "        results = pool.map(child, [0, 0, 0])\n"
        "    assert all(r == parent for r in results), (results, parent)\n"
        "    print('ok')\n")
    done = run_python(code, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize("layer", ["omp", "workqueue", "default"])
def test_eight_calling_threads_under_every_threading_layer(layer):
    """The reported failure: NUMBA_THREADING_LAYER=workqueue and two calling threads aborted
    the process. fastcorr uses its own pool, whatever layer Numba would pick."""
    code = (
        "import sys, numpy as np, fastcorr\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_threads import _workloads\n"
        "import fastcorr.cpu._pool as pool; pool.MIN_WORK_PER_THREAD = 1\n"
        "expected = _workloads(np.random.default_rng(0))()\n"
        "def call(i):\n"
        "    got = _workloads(np.random.default_rng(0))()\n"
        "    return all(np.array_equal(a, b) for a, b in zip(got, expected))\n"
        "with ThreadPoolExecutor(8) as pool:\n"
        "    ok = list(pool.map(call, range(48)))\n"
        "assert all(ok), ok\n"
        "print('ok')\n")
    env = {} if layer == "default" else {"NUMBA_THREADING_LAYER": layer}
    done = run_python(code, timeout=600, **env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_dense_layers_leave_the_blas_thread_count_alone():
    """While a dense conv2d runs, other threads see NumPy's BLAS with the count it had (the
    report: a user's matmul beside a dense conv2d ran on 1 BLAS thread)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_counts():
        return [e["num_threads"] for e in threadpoolctl.threadpool_info()
                if e["user_api"] == "blas"]

    before = blas_counts()
    assert before, "NumPy's BLAS should be visible to threadpoolctl"
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            seen.add(tuple(blas_counts()))

    watcher = threading.Thread(target=watch)
    watcher.start()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 32, 20, 20)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    try:
        for _ in range(5):
            y = fastcorr.conv2d(x, w, padding=1)
            fastcorr.conv2d_backward(np.ones_like(y), x, w, padding=1)
    finally:
        stop.set()
        watcher.join()
    assert seen == {tuple(before)}
    assert blas_counts() == before


def test_an_error_in_a_worker_reaches_the_caller_after_every_range_finished():
    if _pool.thread_count(4) < 2:
        pytest.skip("one thread: no worker")
    finished = []

    def kernel(lo, hi):
        if lo > 0:
            raise RuntimeError("worker failed")
        finished.append((lo, hi))

    with pytest.raises(RuntimeError, match="worker failed"):
        _pool.run(kernel, 4)
    assert finished == [(0, 2)]


def test_small_calls_stay_on_the_calling_thread():
    names = []
    _pool.run(lambda lo, hi: names.append(threading.current_thread().name), 8, work=100)
    assert names == [threading.current_thread().name]
