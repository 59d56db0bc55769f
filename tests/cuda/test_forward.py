"""CUDA forward kernels against the CPU backend, the reference and the float64 oracles: conv2d
with every option, correlate2d/convolve2d in every mode and boundary, corr2d; tiled and direct
kernels.

The layers and images are selections of the cases every backend's tests share
(``tests/cases.py``), run through the same test bodies as the CPU tests (``tests/helpers.py``).
"""

import numpy as np
import pytest
from cases import (CUDA_BOUNDARY_CASES, CUDA_FORWARD_LAYERS, CUDA_IMAGE_SHAPES, DTYPES, LAYERS,
                   MODES, layer_params, shape_id)
from cuda_helpers import operands, to_host, tolerance
from helpers import check_image_forward, check_layer_forward

import fastcorr
from fastcorr import config


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", layer_params(CUDA_FORWARD_LAYERS))
def test_layer_cases(case, dtype):
    check_layer_forward("cuda", case, dtype)


def test_direct_kernel_when_tiles_do_not_fit(monkeypatch):
    monkeypatch.setattr(config, "CUDA_MAX_SHARED_BYTES", 8)
    with fastcorr.trace() as ran:
        check_layer_forward("cuda", LAYERS["grouped_everything_reflect"], np.float64)
    assert [r.implementation for r in ran if r.backend == "cuda"] == ["direct"]


@pytest.mark.parametrize("boundary, fillvalue", CUDA_BOUNDARY_CASES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", CUDA_IMAGE_SHAPES, ids=shape_id)
@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
def test_image_cases(op, shapes, mode, boundary, fillvalue):
    check_image_forward("cuda", op, shapes, mode, boundary, fillvalue, np.float64)


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
    x, w, b = operands(rng, (1, 2, 5, 6), (3, 2, 3, 3), True, np.float32)
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
