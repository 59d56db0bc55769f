"""The streaming path of fastcorr.batch on the CUDA backend against the CPU backend."""

import numpy as np
import pytest
from cuda_helpers import to_host, tolerance
from numba import cuda

import fastcorr
from fastcorr import batch


@pytest.mark.parametrize("streams", [1, 2, 3])
def test_correlate_stack_streams_host_data(streams, rng):
    images = rng.standard_normal((5, 5, 6)).astype(np.float32)
    kernel = rng.standard_normal((3, 2)).astype(np.float32)
    seen = []
    got = batch.correlate_stack(images, kernel, "same", "symm", convolve=True, backend="cuda",
                                chunk=2, streams=streams,
                                progress=lambda done, total: seen.append(done))
    assert isinstance(got, np.ndarray)
    assert seen == [2, 4, 5]
    expected = batch.correlate_stack(images, kernel, "same", "symm", convolve=True)
    np.testing.assert_allclose(got, expected, **tolerance(np.float32))


def test_conv2d_stream_host_data_default_chunks(rng):
    x = rng.standard_normal((3, 2, 5, 6))  # the test budget holds one image per chunk
    w = rng.standard_normal((3, 2, 2, 3))
    b = rng.standard_normal(3)
    kwargs = dict(padding=1, padding_mode="circular")
    out = np.empty((3, 3, 6, 6))
    assert batch.conv2d_stream(x, w, b, backend="cuda", out=out, **kwargs) is out
    np.testing.assert_allclose(out, fastcorr.conv2d(x, w, b, **kwargs), **tolerance(np.float64))


def test_device_data_stays_on_the_device(rng):
    images = rng.standard_normal((3, 5, 6))
    kernel = rng.standard_normal((2, 2))
    got = batch.correlate_stack(cuda.to_device(images), cuda.to_device(kernel), "valid")
    assert hasattr(got, "__cuda_ndarray__")
    np.testing.assert_allclose(to_host(got), batch.correlate_stack(images, kernel, "valid"),
                               **tolerance(np.float64))
    x = rng.standard_normal((2, 2, 5, 6))
    w = rng.standard_normal((2, 2, 3, 3))
    got = batch.conv2d_stream(cuda.to_device(x), w, padding=1)
    np.testing.assert_allclose(to_host(got), fastcorr.conv2d(x, w, padding=1),
                               **tolerance(np.float64))


def test_device_kernel_with_host_stack(rng):
    images = rng.standard_normal((3, 5, 6)).astype(np.float32)
    kernel = rng.standard_normal((2, 3))  # float64 on the device: cast and flipped there
    got = batch.correlate_stack(images, cuda.to_device(kernel), "full", "wrap", convolve=True,
                                chunk=2)
    expected = batch.correlate_stack(images, kernel, "full", "wrap", convolve=True)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, **tolerance(np.float64))
