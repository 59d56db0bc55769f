"""Where data lives on the GPU path: device arrays in and out, out=, streams, dtype and layout
handled on the device, and no hidden copies between host and device."""

import numpy as np
import pytest
from cuda_helpers import to_host, tolerance
from numba import cuda

import fastcorr


@pytest.fixture
def transfers(monkeypatch):
    """Count host-to-device and device-to-host copies made through Numba."""
    counts = {"to_device": 0, "to_host": 0}
    original_to_device = cuda.to_device
    device_array_type = type(cuda.device_array(1))
    original_to_host = device_array_type.copy_to_host

    def to_device(*args, **kwargs):
        counts["to_device"] += 1
        return original_to_device(*args, **kwargs)

    def copy_to_host(self, *args, **kwargs):
        counts["to_host"] += 1
        return original_to_host(self, *args, **kwargs)

    monkeypatch.setattr(cuda, "to_device", to_device)
    monkeypatch.setattr(device_array_type, "copy_to_host", copy_to_host)
    return counts


def _layer(rng, dtype=np.float64):
    x = rng.standard_normal((2, 3, 5, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    return x, w, b


def test_device_in_device_out_without_transfers(rng, transfers):
    x, w, b = _layer(rng)
    expected = fastcorr.conv2d(x, w, b, padding=1)
    dx, dw, db = cuda.to_device(x), cuda.to_device(w), cuda.to_device(b)
    transfers.update(to_device=0, to_host=0)
    got = fastcorr.conv2d(dx, dw, db, padding=1)  # backend follows the data
    assert hasattr(got, "__cuda_ndarray__")
    assert transfers == {"to_device": 0, "to_host": 0}
    np.testing.assert_allclose(to_host(got), expected, **tolerance(np.float64))


def test_host_in_host_out_one_copy_each_way(rng, transfers):
    x, w, b = _layer(rng)
    got = fastcorr.conv2d(x, w, b, padding=1, backend="cuda")
    assert isinstance(got, np.ndarray)
    assert transfers == {"to_device": 3, "to_host": 1}


def test_backward_device_in_device_out_without_transfers(rng, transfers):
    x, w, _ = _layer(rng, np.float32)
    g = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    expected = fastcorr.conv2d_backward(g, x, w, padding=1, padding_mode="reflect")
    dg, dx, dw = cuda.to_device(g), cuda.to_device(x), cuda.to_device(w)
    transfers.update(to_device=0, to_host=0)
    got = fastcorr.conv2d_backward(dg, dx, dw, padding=1, padding_mode="reflect")
    assert transfers == {"to_device": 0, "to_host": 0}
    for e, r in zip(expected, got):
        assert hasattr(r, "__cuda_ndarray__")
        np.testing.assert_allclose(to_host(r), e, **tolerance(np.float32))


def test_image_functions_on_device_arrays(rng, transfers):
    image = rng.standard_normal((5, 6)).astype(np.float32)
    kernel = rng.standard_normal((2, 3)).astype(np.float32)
    d_image, d_kernel = cuda.to_device(image), cuda.to_device(kernel)
    g = rng.standard_normal((5, 6)).astype(np.float32)
    d_g = cuda.to_device(g)
    transfers.update(to_device=0, to_host=0)
    conv = fastcorr.convolve2d(d_image, d_kernel, "same", "symm")
    corr = fastcorr.corr2d(d_image, d_kernel)
    grads = fastcorr.convolve2d_backward(d_g, d_image, d_kernel, "same", "symm")
    assert transfers == {"to_device": 0, "to_host": 0}
    tol = tolerance(np.float32)
    np.testing.assert_allclose(to_host(conv), fastcorr.convolve2d(image, kernel, "same", "symm"),
                               **tol)
    np.testing.assert_allclose(to_host(corr), fastcorr.corr2d(image, kernel), **tol)
    for e, r in zip(fastcorr.convolve2d_backward(g, image, kernel, "same", "symm"), grads):
        np.testing.assert_allclose(to_host(r), e, **tol)


def test_mixed_host_and_device_operands(rng, transfers):
    x, w, b = _layer(rng)
    dx = cuda.to_device(x)
    transfers.update(to_device=0, to_host=0)
    got = fastcorr.conv2d(dx, w, b)  # weight and bias uploaded once each, result on the device
    assert transfers == {"to_device": 2, "to_host": 0}
    np.testing.assert_allclose(to_host(got), fastcorr.conv2d(x, w, b), **tolerance(np.float64))


def test_dtype_and_layout_are_fixed_on_the_device(rng, transfers):
    x = rng.standard_normal((2, 3, 6, 8))
    w = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    dx = cuda.to_device(x)[:, :, ::2, 1::2]  # float64, not contiguous
    di = cuda.to_device(rng.integers(-2, 3, (4,)))  # integer bias
    dw = cuda.to_device(w)
    transfers.update(to_device=0, to_host=0)
    got = fastcorr.conv2d(dx, dw, di)
    assert transfers == {"to_device": 0, "to_host": 0}
    assert got.dtype == np.float64
    expected = fastcorr.conv2d(x[:, :, ::2, 1::2], w, to_host(di))
    np.testing.assert_allclose(to_host(got), expected, **tolerance(np.float64))


def test_out_on_the_device_is_written_in_place(rng, transfers):
    x, w, _ = _layer(rng, np.float32)
    dx, dw = cuda.to_device(x), cuda.to_device(w)
    out = cuda.device_array((2, 4, 3, 4), np.float32)
    transfers.update(to_device=0, to_host=0)
    assert fastcorr.conv2d(dx, dw, out=out) is out
    assert transfers == {"to_device": 0, "to_host": 0}
    np.testing.assert_allclose(to_host(out), fastcorr.conv2d(x, w), **tolerance(np.float32))


def test_out_on_the_host(rng):
    x, w, _ = _layer(rng)
    out = np.empty((2, 4, 3, 4))
    assert fastcorr.conv2d(cuda.to_device(x), w, out=out) is out
    np.testing.assert_allclose(out, fastcorr.conv2d(x, w), **tolerance(np.float64))


@pytest.mark.parametrize("bad, exc, pattern", [
    (dict(shape=(2, 4, 3, 3)), ValueError, "out"),
    (dict(dtype=np.float32), ValueError, "out"),
])
def test_bad_device_out(rng, bad, exc, pattern):
    x, w, _ = _layer(rng)
    spec = dict(shape=(2, 4, 3, 4), dtype=np.float64)
    spec.update(bad)
    out = cuda.device_array(spec["shape"], spec["dtype"])
    with pytest.raises(exc, match=pattern):
        fastcorr.conv2d(cuda.to_device(x), w, out=out)


def test_out_overlapping_an_input_is_refused(rng):
    x = cuda.to_device(np.ones((1, 1, 4, 4)))
    w = np.ones((1, 1, 1, 1))
    with pytest.raises(ValueError, match="out"):
        fastcorr.conv2d(x, w, out=x)


def test_stream_keyword(rng):
    x, w, b = _layer(rng)
    stream = cuda.stream()
    got = fastcorr.conv2d(cuda.to_device(x, stream=stream), w, b, stream=stream)
    stream.synchronize()
    np.testing.assert_allclose(to_host(got), fastcorr.conv2d(x, w, b), **tolerance(np.float64))
    g = np.ones((2, 4, 3, 4))
    grads = fastcorr.conv2d_backward(g, x, w, backend="cuda", stream=stream)
    for e, r in zip(fastcorr.conv2d_backward(g, x, w), grads):
        np.testing.assert_allclose(r, e, **tolerance(np.float64))


def test_bad_stream_is_a_type_error(rng):
    x, w, _ = _layer(rng)
    with pytest.raises(TypeError, match="stream"):
        fastcorr.conv2d(x, w, backend="cuda", stream="fast")


def test_stream_on_the_host_backend_is_refused(rng):
    x, w, _ = _layer(rng)
    with pytest.raises(ValueError, match="stream"):
        fastcorr.conv2d(x, w, stream=cuda.stream())


def test_device_array_with_host_backend_is_a_type_error():
    with pytest.raises(TypeError):
        fastcorr.conv2d(cuda.to_device(np.ones((1, 1, 4, 4))), np.ones((1, 1, 2, 2)),
                        backend="cpu")


def test_complex_device_array_is_a_type_error():
    with pytest.raises(TypeError, match="input"):
        fastcorr.conv2d(cuda.to_device(np.ones((1, 1, 4, 4), complex)), np.ones((1, 1, 2, 2)))


@pytest.mark.skipif(__import__("os").environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                    reason="CuPy and torch need a real GPU")
def test_cupy_and_torch_stay_on_the_device(rng):
    x, w, b = _layer(rng, np.float32)
    expected = fastcorr.conv2d(x, w, b, padding=1)
    try:
        import cupy
    except ImportError:
        cupy = None
    if cupy is not None:
        got = fastcorr.conv2d(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), padding=1,
                              stream=cupy.cuda.get_current_stream())
        assert isinstance(got, cupy.ndarray)
        np.testing.assert_allclose(got.get(), expected, **tolerance(np.float32))
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        t = [torch.from_numpy(a).cuda() for a in (x, w, b)]
        got = fastcorr.conv2d(*t, padding=1, stream=torch.cuda.current_stream())
        assert isinstance(got, torch.Tensor) and got.is_cuda
        np.testing.assert_allclose(got.cpu().numpy(), expected, **tolerance(np.float32))


@pytest.fixture
def allocations(monkeypatch):
    """Count device allocations made through ``cuda.device_array``."""
    counts = {"device_array": 0}
    original = cuda.device_array

    def device_array(*args, **kwargs):
        counts["device_array"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(cuda, "device_array", device_array)
    return counts


def test_a_steady_state_call_allocates_only_its_results(rng, allocations):
    """The dummy bias, the padded input gradient and the split-K partial sums come from the
    workspace: a repeated call allocates its results and nothing else."""
    from fastcorr.cuda import _workspace

    x, w, _ = _layer(rng, np.float32)
    g = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    dg, dx, dw = cuda.to_device(g), cuda.to_device(x), cuda.to_device(w)
    kwargs = dict(padding=1, padding_mode="reflect")
    for _ in range(2):  # the first call fills the workspace
        allocations["device_array"] = 0
        forward = fastcorr.conv2d(dx, dw, **kwargs)  # no bias: the dummy one
        grads = fastcorr.conv2d_backward(dg, dx, dw, **kwargs)  # padded plane, partials
    assert allocations["device_array"] == 1 + 3  # the output and the three gradients
    assert _workspace.held_bytes() > 0
    expected = fastcorr.conv2d_backward(g, x, w, **kwargs)
    for e, r in zip(expected, grads):
        np.testing.assert_allclose(to_host(r), e, **tolerance(np.float32))
    np.testing.assert_allclose(to_host(forward), fastcorr.conv2d(x, w, **kwargs),
                               **tolerance(np.float32))
    _workspace.release()
    assert _workspace.held_bytes() == 0


def test_converted_device_operands_use_the_workspace(rng, allocations):
    """Device operands copied on the device (another dtype, a reversed kernel) go into the
    workspace too: a repeated call allocates its result only."""
    x, w, _ = _layer(rng, np.float32)
    dx, dw = cuda.to_device(x), cuda.to_device(w.astype(np.float64))  # x becomes float64
    image, kernel = cuda.to_device(x[0, 0]), cuda.to_device(w[0, 0])
    for _ in range(2):
        allocations["device_array"] = 0
        forward = fastcorr.conv2d(dx, dw, padding=1)
        image_result = fastcorr.convolve2d(image, kernel, "same")  # the kernel reversed
    assert allocations["device_array"] == 2
    np.testing.assert_allclose(to_host(forward), fastcorr.conv2d(x.astype(np.float64), w,
                                                                 padding=1),
                               **tolerance(np.float64))
    np.testing.assert_allclose(to_host(image_result),
                               fastcorr.convolve2d(x[0, 0], w[0, 0], "same"),
                               **tolerance(np.float32))
