"""fastcorr.dask: results equal the in-memory calls, for every mode, boundary and layer option,
on dask's threaded scheduler and on a dask.distributed cluster of worker processes; the
threads rule; chunking; errors at graph construction.

Exactness: with ``method="direct"`` an image result is bitwise the in-memory one, and so is a
layer result whose implementation sums taps in order (every implementation but "gemm", whose
BLAS groups sums by the matrix sizes); weight and bias gradients add one partial sum per chunk
of images. Those are checked against torch in float64 with the error bounds of
tests/test_conv2d.py and tests/test_gradients.py, as the in-memory results are.
"""

import itertools
import logging
import threading

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

import fastcorr  # noqa: E402
import fastcorr.dask as fd  # noqa: E402
from fastcorr.cpu import _pool  # noqa: E402
from helpers import assert_within, grad_bounds, torch_conv2d, torch_grads  # noqa: E402
from helpers import conv2d_error_bound as error_bound  # noqa: E402

DTYPES = (np.float32, np.float64)

# (image shape, kernel shape, chunks): chunks smaller than the kernel, uneven chunks, one
# chunk, a kernel larger than the image (its boundary repeats beyond the image) and a 1-wide one
IMAGE_CASES = [
    ((97, 130), (3, 3), 32),
    ((97, 130), (5, 4), (20, 50)),
    ((40, 30), (7, 9), 4),
    ((10, 12), (15, 13), 4),
    ((61, 53), (2, 1), 60),
    ((33, 35), (1, 6), (33, 7)),
]


def _image_pair(rng, image_shape, kernel_shape, dtype):
    return (rng.standard_normal(image_shape).astype(dtype),
            rng.standard_normal(kernel_shape).astype(dtype))


@pytest.mark.parametrize("convolve", [False, True], ids=["correlate", "convolve"])
@pytest.mark.parametrize("image_shape,kernel_shape,chunks", IMAGE_CASES)
def test_images_bitwise_equal_in_memory(image_shape, kernel_shape, chunks, convolve):
    rng = np.random.default_rng(hash((image_shape, kernel_shape)) % 2**32)
    memory = fastcorr.convolve2d if convolve else fastcorr.correlate2d
    lazy = fd.convolve2d if convolve else fd.correlate2d
    compared = 0
    for dtype, mode, boundary in itertools.product(DTYPES, ("full", "same", "valid"),
                                                   ("fill", "wrap", "symm")):
        image, kernel = _image_pair(rng, image_shape, kernel_shape, dtype)
        if mode == "valid" and any(k > i for i, k in zip(image_shape, kernel_shape)):
            continue  # neither contains the other here: both raise (see test_errors)
        expected = memory(image, kernel, mode, boundary, 1.5, method="direct")
        result = lazy(da.from_array(image, chunks=chunks), kernel, mode, boundary, 1.5,
                      method="direct")
        assert isinstance(result, da.Array)
        got = result.compute(scheduler="threads")
        what = f"{dtype.__name__} {mode} {boundary}"
        assert got.dtype == expected.dtype, what
        assert got.shape == expected.shape, what
        assert np.array_equal(got, expected), what
        compared += 1
    assert compared >= 12


def test_swapped_valid_and_dask_kernel():
    # "valid" with the larger array second: it is the one tiled; the kernel may be lazy too
    rng = np.random.default_rng(3)
    small, large = rng.standard_normal((5, 6)), rng.standard_normal((50, 41))
    for memory, lazy in ((fastcorr.correlate2d, fd.correlate2d),
                         (fastcorr.convolve2d, fd.convolve2d)):
        expected = memory(small, large, "valid", method="direct")
        got = lazy(da.from_array(small, chunks=3), da.from_array(large, chunks=16), "valid",
                   method="direct")
        assert np.array_equal(got.compute(), expected)
        got = lazy(large, da.from_array(small, chunks=2), "full", method="direct")
        assert np.array_equal(got.compute(), memory(large, small, "full", method="direct"))


def test_integer_input_and_chunks_follow_the_image():
    image = np.arange(120 * 90).reshape(120, 90) % 7
    kernel = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
    result = fd.correlate2d(da.from_array(image, chunks=(50, 30)), kernel, "same", "fill", 0.5)
    assert result.dtype == np.float64
    assert result.chunks == ((50, 50, 20), (30, 30, 30))
    expected = fastcorr.correlate2d(image, kernel, "same", "fill", 0.5, method="direct")
    assert np.array_equal(result.compute(), expected)


def test_fft_blocks_within_the_fft_bound():
    rng = np.random.default_rng(4)
    image, kernel = _image_pair(rng, (300, 280), (31, 31), np.float64)
    scale = np.abs(image).max() * np.abs(kernel).sum()
    direct = fastcorr.correlate2d(image, kernel, "same", "symm", method="direct")
    for method in ("fft", "auto"):
        with fastcorr.trace() as ran:
            got = fd.correlate2d(da.from_array(image, chunks=150), kernel, "same", "symm",
                                 method=method).compute(scheduler="sync")
        assert {r.method for r in ran} == {"fft"}, ran  # every block took the FFT
        assert_within(got, direct, 1e-12 * scale, f"method={method}")


# --------------------------------------------------------------------------- layers

# (N, C_in, C_out, kernel, layer arguments, input chunks along N and C)
LAYER_CASES = [
    (7, 6, 4, (3, 3), dict(padding=1), (3, 6)),
    (5, 8, 12, (3, 2), dict(groups=4, stride=2, padding=(1, 2), padding_mode="reflect"), (2, 3)),
    (4, 6, 6, (5, 5), dict(groups=6, padding="same", dilation=2, padding_mode="circular"),
     (1, 4)),
    (3, 4, 8, (4, 4), dict(groups=2, padding="same", padding_mode="replicate"), (2, 1)),
    (6, 3, 6, (3, 3), dict(groups=3, stride=(2, 1), padding="valid"), (4, 2)),
]


def _layer(rng, n, c_in, c_out, kernel, kwargs, dtype):
    groups = kwargs.get("groups", 1)
    x = rng.standard_normal((n, c_in, 13, 11)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n,c_in,c_out,kernel,kwargs,chunks", LAYER_CASES)
def test_conv2d_equals_in_memory(n, c_in, c_out, kernel, kwargs, chunks, dtype):
    rng = np.random.default_rng(n * 100 + c_out)
    x, w, b = _layer(rng, n, c_in, c_out, kernel, kwargs, dtype)
    with fastcorr.trace() as ran_memory:
        expected = fastcorr.conv2d(x, w, b, method="direct", **kwargs)
    lazy = fd.conv2d(da.from_array(x, chunks=(*chunks, 13, 11)), w, b, method="direct",
                     **kwargs)
    assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
    with fastcorr.trace() as ran:
        got = lazy.compute(scheduler="sync")  # (the trace is the calling thread's)
    implementations = {r.implementation for r in ran} | {r.implementation for r in ran_memory}
    assert len(ran) == lazy.numblocks[0] * lazy.numblocks[1]
    # a block holds whole groups but maybe not all of them, so it may take another kernel
    # than the whole layer (a group's chunk is a dense layer); these sum in the taps' order
    if implementations <= {"rows", "taps", "flat"}:
        assert np.array_equal(got, expected)
    assert_within(got, torch_conv2d(x, w, b, **kwargs), error_bound(x, w, b, dtype, **kwargs),
                  f"{kwargs}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n,c_in,c_out,kernel,kwargs,chunks", LAYER_CASES)
def test_conv2d_backward_equals_in_memory(n, c_in, c_out, kernel, kwargs, chunks, dtype):
    rng = np.random.default_rng(n * 10 + c_in)
    x, w, _ = _layer(rng, n, c_in, c_out, kernel, kwargs, dtype)
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape).astype(dtype)
    with fastcorr.trace() as ran:
        in_memory = fastcorr.conv2d_backward(g, x, w, method="direct", **kwargs)
    lazy = fd.conv2d_backward(da.from_array(g, chunks=(2, 1, -1, -1)),
                              da.from_array(x, chunks=(*chunks, 13, 11)), w, method="direct",
                              **kwargs)
    assert all(isinstance(a, da.Array) for a in lazy)
    got = dask.compute(*lazy, scheduler="threads")
    with fastcorr.trace() as ran_blocks:  # (the trace is the calling thread's)
        dask.compute(lazy[0], scheduler="sync")
    grad_input_impl = {r.implementation for r in ran if r.operation == "grad_input"}
    # a block holds whole groups but maybe not all of them, so it may take another kernel
    # than the whole layer (one group is a dense layer); the same kernel, other than im2col
    # (whose BLAS products differ with the block), gives the same sums
    if {r.implementation for r in ran_blocks
            if r.operation == "grad_input"} == grad_input_impl != {"gemm"}:
        assert np.array_equal(got[0], in_memory[0])
    for name, a, m, expected, bound in zip(("input", "weight", "bias"), got, in_memory,
                                           torch_grads(x, w, g, **kwargs),
                                           grad_bounds(x, w, g, dtype, **kwargs)):
        assert a.dtype == m.dtype and a.shape == m.shape, name
        assert_within(a, expected, bound, f"grad_{name} {kwargs}")


def test_output_mask_and_unbatched():
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((3, 9, 9)), rng.standard_normal((2, 3, 3, 3)), np.ones(2)
    y = fd.conv2d(da.from_array(x), w, b, padding=1)
    assert y.shape == (2, 9, 9)
    assert np.array_equal(y.compute(), fastcorr.conv2d(x, w, b, padding=1))
    g = rng.standard_normal((2, 9, 9))
    grad_x, grad_w, grad_b = fd.conv2d_backward(g, x, w, padding=1,
                                                output_mask=(True, False, False))
    assert grad_w is None and grad_b is None and grad_x.shape == x.shape
    assert np.array_equal(grad_x.compute(),
                          fastcorr.conv2d_input(x.shape, w, g, padding=1))


def test_channels_rechunked_at_group_boundaries():
    x = da.zeros((8, 12, 6, 6), chunks=(3, 5, 2, 2))  # channel chunks 5, 5, 2 split groups
    w = np.ones((8, 3, 3, 3))
    y = fd.conv2d(x, w, groups=4)  # 4 groups of 3 channels, 2 outputs each
    assert y.chunks[0] == (3, 3, 2)
    assert y.chunks[1] == (4, 2, 2)  # channel chunks 6, 3, 3: whole groups
    assert y.chunks[2:] == ((4,), (4,))
    dense = fd.conv2d(x, np.ones((5, 12, 3, 3)))
    assert dense.chunks[1] == (5,)  # groups=1: the channels are one chunk


def test_lazy_weight_and_bias():
    rng = np.random.default_rng(6)
    x, w, b = _layer(rng, 4, 4, 4, (3, 3), dict(groups=2), np.float64)
    got = fd.conv2d(da.from_array(x, chunks=(2, 2, 13, 11)), da.from_array(w, chunks=1),
                    da.from_array(b, chunks=1), groups=2)
    assert np.array_equal(got.compute(), fastcorr.conv2d(x, w, b, groups=2))


# --------------------------------------------------------------------------- threads and backends

def _record_thread_counts(monkeypatch):
    counts = []
    lock = threading.Lock()
    original = _pool.thread_count

    def spy(n_tasks, work=None):
        with lock:
            counts.append(fastcorr.get_num_threads())
        return original(n_tasks, work)

    monkeypatch.setattr(_pool, "thread_count", spy)
    return counts


@pytest.mark.parametrize("per_block", [1, 2])
def test_each_block_uses_threads_per_block(per_block, monkeypatch):
    counts = _record_thread_counts(monkeypatch)
    image = da.ones((512, 512), chunks=128)
    fd.correlate2d(image, np.ones((3, 3)), "same", method="direct",
                   threads_per_block=per_block).compute(scheduler="threads", num_workers=2)
    top = fastcorr.threads.max_threads()
    assert len(counts) >= 16
    assert set(counts) == {min(per_block, top)}
    assert fastcorr.get_num_threads() == top  # the caller's setting is untouched


def test_blocks_follow_the_backend_argument():
    image = np.random.default_rng(7).standard_normal((40, 30))
    with fastcorr.trace() as ran:
        got = fd.correlate2d(da.from_array(image, chunks=20), np.ones((3, 3)), "same",
                             backend="reference").compute(scheduler="sync")
    assert {r.backend for r in ran} == {"reference"} and len(ran) == 4
    assert np.allclose(got, fastcorr.correlate2d(image, np.ones((3, 3)), "same"))


# --------------------------------------------------------------------------- errors

def test_errors_at_graph_construction():
    image = da.ones((20, 20), chunks=10)
    with pytest.raises(ValueError, match="mode"):
        fd.correlate2d(image, np.ones((3, 3)), "middle")
    with pytest.raises(ValueError, match="boundary"):
        fd.convolve2d(image, np.ones((3, 3)), boundary="mirror")
    with pytest.raises(ValueError, match="method"):
        fd.correlate2d(image, np.ones((3, 3)), method="winograd")
    with pytest.raises(ValueError, match="backend"):
        fd.correlate2d(image, np.ones((3, 3)), backend="tpu")
    with pytest.raises(ValueError, match="threads_per_block"):
        fd.correlate2d(image, np.ones((3, 3)), threads_per_block=0)
    with pytest.raises(TypeError, match="threads_per_block"):
        fd.conv2d(da.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), threads_per_block=1.5)
    with pytest.raises(TypeError, match="in2"):
        fd.correlate2d(image, np.ones((3, 3), dtype=complex))
    with pytest.raises(ValueError, match="in1"):
        fd.correlate2d(da.ones((4, 4, 4)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="valid"):
        fd.correlate2d(da.ones((5, 20)), np.ones((9, 3)), "valid")
    x = da.ones((2, 4, 8, 8))
    with pytest.raises(ValueError, match="groups"):
        fd.conv2d(x, np.ones((3, 2, 3, 3)), groups=3)
    with pytest.raises(ValueError, match="grad_output"):
        fd.conv2d_backward(da.ones((2, 3, 5, 5)), x, np.ones((3, 4, 3, 3)))
    with pytest.raises(ValueError, match="output_mask"):
        fd.conv2d_backward(da.ones((2, 3, 6, 6)), x, np.ones((3, 4, 3, 3)),
                           output_mask=(True,))


def test_attribute_of_the_package():
    assert fastcorr.dask is fd


# --------------------------------------------------------------------------- distributed

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as client:
        yield client


def test_distributed_workers_give_the_same_numbers(client):
    rng = np.random.default_rng(8)
    image, kernel = _image_pair(rng, (300, 257), (7, 5), np.float32)
    lazy = fd.correlate2d(da.from_array(image, chunks=100), kernel, "same", "wrap",
                          method="direct")
    assert np.array_equal(client.compute(lazy).result(),
                          fastcorr.correlate2d(image, kernel, "same", "wrap", method="direct"))
    x, w, b = _layer(rng, 8, 6, 6, (3, 3), dict(groups=6), np.float32)
    kwargs = dict(groups=6, padding=1, padding_mode="reflect")
    xd = da.from_array(x, chunks=(2, 3, 13, 11))
    y = fd.conv2d(xd, w, b, **kwargs)
    assert np.array_equal(client.compute(y).result(), fastcorr.conv2d(x, w, b, **kwargs))
    g = rng.standard_normal(y.shape).astype(np.float32)
    grads = client.gather(client.compute(list(fd.conv2d_backward(g, xd, w, **kwargs))))
    in_memory = fastcorr.conv2d_backward(g, x, w, **kwargs)
    assert np.array_equal(grads[0], in_memory[0])
    for name, a, expected, bound in zip(("weight", "bias"), grads[1:],
                                        torch_grads(x, w, g, **kwargs)[1:],
                                        grad_bounds(x, w, g, np.float32, **kwargs)[1:]):
        assert_within(a, expected, bound, f"grad_{name}")


def test_import_fastcorr_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, fastcorr; assert 'dask' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_dask_the_package_still_works():
    """Without dask, ``from fastcorr import *`` and ``help(fastcorr)`` work, and
    ``fastcorr.dask`` is an ImportError saying what to install."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['dask'] = None; sys.modules['dask.array'] = None\n"
        "import pydoc, fastcorr\n"
        "from fastcorr import *\n"
        "pydoc.render_doc(fastcorr)\n"
        "try:\n"
        "    fastcorr.dask\n"
        "except ImportError as exc:\n"
        "    assert 'fastcorr[dask]' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('fastcorr.dask imported without dask')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
