"""Thread control: fastcorr.set_num_threads / num_threads set Numba's and BLAS's threads."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastcorr
from fastcorr import threads


def test_set_num_threads_sets_numba_and_blas_and_the_context_restores_both():
    before, before_blas = fastcorr.get_num_threads(), threads.blas_threads()
    with fastcorr.num_threads(1):
        assert fastcorr.get_num_threads() == numba.get_num_threads() == 1
        if before_blas is not None:
            assert threads.blas_threads() == 1
    assert fastcorr.get_num_threads() == before
    assert threads.blas_threads() == before_blas


def test_numpy_blas_is_found_on_numpy_wheels():
    # NumPy's wheels bundle OpenBLAS; if this fails, BLAS threads are not being controlled
    assert threads.blas_threads() is not None


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
    assert fastcorr.get_num_threads() == before


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((40, 33)).astype(np.float32)
    x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 8, 3, 3)).astype(np.float32)
    results = []
    for n in sorted({1, threads.max_threads()}):
        with fastcorr.num_threads(n):
            results.append((fastcorr.correlate2d(image, image[:5, :4], "same"),
                            fastcorr.conv2d(x, w, padding=1)))
    for got in results[1:]:
        for a, b in zip(results[0], got):
            np.testing.assert_array_equal(a, b)


def test_numba_num_threads_bounds_the_choice():
    code = ("import fastcorr; assert fastcorr.threads.max_threads() == 1\n"
            "fastcorr.set_num_threads(1)\n"
            "try:\n    fastcorr.set_num_threads(2)\nexcept ValueError as e:\n"
            "    assert 'NUMBA_NUM_THREADS' in str(e)\nelse:\n    raise SystemExit('no error')\n")
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_dense_layers_share_blocks_between_threads_and_leave_blas_as_it_was(monkeypatch):
    # dense layers hold BLAS to one thread a call while their own threads share the blocks
    import threading

    from fastcorr.cpu import gemm

    seen = set()
    original = gemm.im2col_rows

    def recording(*args):
        seen.add(threading.current_thread().name)
        original(*args)

    monkeypatch.setattr(gemm, "im2col_rows", recording)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 16, 8, 8)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    before = threads.blas_threads()
    y = fastcorr.conv2d(x, w)
    fastcorr.conv2d_backward(np.ones_like(y), x, w)
    assert threads.blas_threads() == before
    if fastcorr.get_num_threads() > 1 and before is not None:
        assert len(seen) > 1 and all(name.startswith("fastcorr-gemm") for name in seen)
    expected = fastcorr.conv2d(x.astype(np.float64), w.astype(np.float64), backend="reference")
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_single_threaded_blas_nests_and_restores_once_the_last_user_leaves():
    before = threads.blas_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS fastcorr can find")
    with threads.single_threaded_blas():
        assert threads.blas_threads() == 1
        with threads.single_threaded_blas():
            assert threads.blas_threads() == 1
        assert threads.blas_threads() == 1
    assert threads.blas_threads() == before


def test_an_error_in_a_gemm_thread_reaches_the_caller(monkeypatch):
    from fastcorr.cpu import gemm

    def broken(*args):
        raise RuntimeError("gather failed")

    monkeypatch.setattr(gemm, "im2col_rows", broken)
    x = np.ones((4, 16, 8, 8), dtype=np.float32)
    w = np.ones((32, 16, 3, 3), dtype=np.float32)
    before = threads.blas_threads()
    with pytest.raises(RuntimeError, match="gather failed"):
        fastcorr.conv2d(x, w)
    assert threads.blas_threads() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_dense_layers_run_in_a_forked_child_after_the_parent_used_its_threads():
    # the child inherits the parent's gemm thread pool object but none of its threads
    code = (
        "import multiprocessing as mp, numpy as np, fastcorr\n"
        "x = np.ones((4, 16, 8, 8), np.float32); w = np.ones((32, 16, 3, 3), np.float32)\n"
        "fastcorr.conv2d(x, w)\n"
        "def child(_):\n    return float(fastcorr.conv2d(x, w).sum())\n"
        "if __name__ == '__main__':\n"
        "    with mp.get_context('fork').Pool(1) as pool:\n"
        "        print(pool.map(child, [0])[0])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout) == 4 * 32 * 6 * 6 * 16 * 9


@pytest.mark.parametrize("shape, weight_shape, kwargs", [
    ((1, 16, 22, 22), (128, 16, 1, 1), {}),  # one block: a single thread does the work
    ((1, 3, 40, 40), (64, 3, 7, 7), dict(stride=2, padding=3)),
    ((3, 8, 12, 12), (16, 4, 3, 3), dict(padding=1, groups=2)),
])
def test_dense_results_do_not_depend_on_the_thread_count(shape, weight_shape, kwargs):
    # OpenBLAS's sums differ in the last bits between one and two BLAS threads: the dense
    # path must hold BLAS to one thread even where it keeps only one thread busy
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(weight_shape).astype(np.float32)
    results = []
    for n in sorted({1, threads.max_threads()}):
        with fastcorr.num_threads(n):
            y = fastcorr.conv2d(x, w, **kwargs)
            g = rng.standard_normal(y.shape).astype(np.float32) if not results else results[0][3]
            gx, gw, gb = fastcorr.conv2d_backward(g, x, w, **kwargs)
            results.append((y, gx, gw, g))
    for got in results[1:]:
        for a, b in zip(results[0][:3], got[:3]):
            np.testing.assert_array_equal(a, b)
