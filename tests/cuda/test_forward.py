"""CUDA forward kernels against the CPU backend and the reference: conv2d with every option,
correlate2d/convolve2d in every mode and boundary, corr2d; tiled and direct kernels."""

import numpy as np
import pytest
from cuda_helpers import to_host, tolerance

import fastcorr
from fastcorr import config

# (id, input shape, weight shape, with bias, conv2d keyword arguments)
CONV2D_CASES = [
    ("plain", (2, 3, 5, 6), (4, 3, 3, 2), False, {}),
    ("bias_padding", (2, 3, 5, 6), (4, 3, 3, 3), True, dict(padding=1)),
    ("stride_dilation", (2, 2, 6, 7), (3, 2, 2, 3), True,
     dict(stride=(2, 1), dilation=(1, 2), padding=(1, 2))),
    ("same", (1, 2, 5, 6), (3, 2, 4, 3), False, dict(padding="same", dilation=(1, 2))),
    ("valid", (1, 2, 5, 6), (2, 2, 3, 3), True, dict(padding="valid")),
    ("reflect", (2, 2, 5, 6), (3, 2, 3, 3), True, dict(padding=(2, 1), padding_mode="reflect")),
    ("replicate", (2, 2, 5, 6), (3, 2, 3, 2), False,
     dict(padding=2, stride=2, padding_mode="replicate")),
    ("circular", (1, 2, 5, 6), (3, 2, 3, 3), True,
     dict(padding=(1, 3), dilation=2, padding_mode="circular")),
    ("grouped", (2, 4, 5, 6), (6, 2, 3, 3), True, dict(groups=2, padding=1)),
    ("depthwise", (2, 3, 5, 6), (3, 1, 3, 3), True, dict(groups=3, padding=1)),
    ("depthwise_multiplier_strided", (1, 2, 6, 7), (4, 1, 3, 2), False,
     dict(groups=2, stride=2, padding=1, padding_mode="reflect")),
    ("pointwise", (2, 3, 5, 6), (5, 3, 1, 1), True, {}),
]


def _operands(rng, x_shape, w_shape, bias, dtype):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV2D_CASES, ids=[c[0] for c in CONV2D_CASES])
def test_conv2d_matches_cpu(case, dtype, rng):
    _, x_shape, w_shape, bias, kwargs = case
    x, w, b = _operands(rng, x_shape, w_shape, bias, dtype)
    expected = fastcorr.conv2d(x, w, b, backend="cpu", **kwargs)
    got = fastcorr.conv2d(x, w, b, backend="cuda", **kwargs)
    assert isinstance(got, np.ndarray) and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, **tolerance(dtype))


def test_conv2d_matches_reference_unbatched(rng):
    x, w, b = _operands(rng, (3, 5, 6), (4, 3, 2, 3), True, np.float64)
    expected = fastcorr.reference.conv2d(x, w, b, padding=1, padding_mode="replicate")
    got = fastcorr.conv2d(x, w, b, padding=1, padding_mode="replicate", backend="cuda")
    assert got.shape == expected.shape == (4, 6, 6)
    np.testing.assert_allclose(got, expected, **tolerance(np.float64))


def test_direct_kernel_when_tiles_do_not_fit(rng, monkeypatch):
    monkeypatch.setattr(config, "CUDA_MAX_SHARED_BYTES", 8)
    x, w, b = _operands(rng, (2, 4, 5, 6), (4, 2, 3, 2), True, np.float64)
    kwargs = dict(groups=2, stride=(1, 2), dilation=(2, 1), padding=2, padding_mode="reflect")
    np.testing.assert_allclose(fastcorr.conv2d(x, w, b, backend="cuda", **kwargs),
                               fastcorr.conv2d(x, w, b, backend="cpu", **kwargs),
                               **tolerance(np.float64))


@pytest.mark.parametrize("func", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_image_functions_match_cpu_and_reference(func, mode, boundary, rng):
    image = rng.standard_normal((5, 6))
    kernel = rng.standard_normal((3, 2))
    fn = getattr(fastcorr, func)
    expected = getattr(fastcorr.reference, func)(image, kernel, mode, boundary, 1.5)
    got = fn(image, kernel, mode, boundary, 1.5, backend="cuda")
    np.testing.assert_allclose(got, expected, **tolerance(np.float64))
    np.testing.assert_allclose(got, fn(image, kernel, mode, boundary, 1.5), **tolerance(np.float64))


@pytest.mark.parametrize("func", ["correlate2d", "convolve2d"])
def test_valid_mode_swaps_the_larger_kernel(func, rng):
    small = rng.standard_normal((2, 3)).astype(np.float32)
    large = rng.standard_normal((4, 5)).astype(np.float32)
    fn = getattr(fastcorr, func)
    np.testing.assert_allclose(fn(small, large, "valid", backend="cuda"),
                               fn(small, large, "valid", backend="cpu"), **tolerance(np.float32))


def test_corr2d_book_example():
    X = np.arange(9.0).reshape(3, 3)
    K = np.arange(4.0).reshape(2, 2)
    np.testing.assert_array_equal(fastcorr.corr2d(X, K, backend="cuda"), [[19, 25], [37, 43]])


def test_integer_and_mixed_dtypes_promote_as_on_cpu(rng):
    x = rng.integers(-3, 4, (1, 2, 5, 6))
    w = rng.standard_normal((2, 2, 2, 2)).astype(np.float32)
    got = fastcorr.conv2d(x, w, backend="cuda")
    expected = fastcorr.conv2d(x, w, backend="cpu")
    assert got.dtype == expected.dtype == np.float64
    np.testing.assert_allclose(got, expected, **tolerance(np.float64))


def test_default_tiles(rng, monkeypatch):
    """The shipped tunables (larger than these shapes): one partial tile per plane."""
    from conftest import DEFAULTS

    for name in ("CUDA_BLOCK", "CUDA_DENSE_OUTPUTS", "CUDA_DEPTHWISE_OUTPUTS"):
        monkeypatch.setattr(config, name, DEFAULTS[name])
    x, w, b = _operands(rng, (1, 2, 5, 6), (3, 2, 3, 3), True, np.float32)
    np.testing.assert_allclose(to_host(fastcorr.conv2d(x, w, b, padding=1, backend="cuda")),
                               fastcorr.conv2d(x, w, b, padding=1), **tolerance(np.float32))


@pytest.mark.parametrize("out_hw", [(1, 1), (3, 3), (7, 2), (2, 40), (14, 14), (300, 300)])
def test_blocks_keep_a_whole_warp_on_small_outputs(out_hw, monkeypatch):
    """The production block (32 x 8) narrows for small outputs, but never below one warp."""
    from fastcorr import cuda as backend

    monkeypatch.setattr(config, "CUDA_BLOCK", (32, 8))
    plan = fastcorr.functional.LayerOperands(np.ones((1, 1) + out_hw), np.ones((1, 1, 1, 1)),
                                             None, 1, 0, 1, 1, "zeros").plan
    for outputs in (config.CUDA_DENSE_OUTPUTS, config.CUDA_DEPTHWISE_OUTPUTS):
        bx, by, rc, ry, rx = backend._tile(plan, outputs)
        assert bx * by >= 32, (out_hw, bx, by)
        assert bx * by <= 256
