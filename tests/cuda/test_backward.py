"""CUDA gradient kernels against the CPU backend, the reference and the float64 oracles:
conv2d_backward with every option, conv2d_input/conv2d_weight, correlate2d/convolve2d backward
in every mode and boundary; bitwise repeatability.

The layers and images are selections of the cases every backend's tests share
(``tests/cases.py``), run through the same test bodies as the CPU tests (``tests/helpers.py``).
"""

import numpy as np
import pytest
from cases import (BOUNDARIES, CUDA_FLOAT32_GRADIENT_LAYERS, CUDA_GRADIENT_LAYERS,
                   CUDA_IMAGE_GRADIENT_SHAPES, IMAGE_GRADIENT_FILLVALUE, LAYERS, MODES,
                   shape_id)
from cuda_helpers import operands, tolerance
from helpers import check_image_gradients, check_layer_gradients

import fastcorr
from fastcorr import config


def _grads(x, w, g, backend, kwargs, mask=(True, True, True)):
    return fastcorr.conv2d_backward(g, x, w, backend=backend, output_mask=mask, **kwargs)


# every selected case in float64, a few in float32 (the simulator is slow)
GRADIENT_CASES = ([pytest.param(c, np.float64, id=c.id + "-float64") for c in CUDA_GRADIENT_LAYERS]
                  + [pytest.param(c, np.float32, id=c.id + "-float32")
                     for c in CUDA_FLOAT32_GRADIENT_LAYERS])


@pytest.mark.parametrize("case, dtype", GRADIENT_CASES)
def test_layer_cases(case, dtype):
    check_layer_gradients("cuda", case, dtype)


def test_output_mask_and_gradient_functions(rng):
    x, w, _ = operands(rng, (2, 3, 5, 6), (4, 3, 3, 3), False, np.float32)
    kwargs = dict(padding=1, stride=2, dilation=(1, 2))
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape).astype(np.float32)
    gx, gw, gb = _grads(x, w, g, "cuda", kwargs, mask=(False, True, False))
    assert gx is None and gb is None
    np.testing.assert_allclose(gw, fastcorr.conv2d_weight(x, w.shape, g, **kwargs),
                               **tolerance(np.float32))
    np.testing.assert_allclose(fastcorr.conv2d_weight(x, w.shape, g, backend="cuda", **kwargs),
                               gw, **tolerance(np.float32))
    np.testing.assert_allclose(fastcorr.conv2d_input(x.shape, w, g, backend="cuda", **kwargs),
                               fastcorr.conv2d_input(x.shape, w, g, **kwargs),
                               **tolerance(np.float32))


def test_direct_kernels_when_tiles_do_not_fit(monkeypatch):
    monkeypatch.setattr(config, "CUDA_MAX_SHARED_BYTES", 8)
    with fastcorr.trace() as ran:
        check_layer_gradients("cuda", LAYERS["grouped_everything"], np.float64)
    assert [(r.operation, r.implementation) for r in ran if r.backend == "cuda"] == [
        ("grad_input", "direct"), ("grad_weight", "splitk"), ("grad_bias", "sums")]


def test_weight_gradient_in_several_chunks_and_tap_batches(rng, monkeypatch):
    monkeypatch.setattr(config, "CUDA_GRAD_WEIGHT_TAPS", 4)  # 9 taps: batches of 4, 4, 1
    monkeypatch.setattr(config, "CUDA_GRAD_WEIGHT_CHUNK_ROWS", 3)  # 10 rows: 4 chunks
    x, w, _ = operands(rng, (2, 2, 5, 6), (2, 2, 3, 3), False, np.float64)
    kwargs = dict(padding=1, padding_mode="circular")
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape)
    np.testing.assert_allclose(fastcorr.conv2d_weight(x, w.shape, g, backend="cuda", **kwargs),
                               fastcorr.conv2d_weight(x, w.shape, g, backend="reference",
                                                      **kwargs), **tolerance(np.float64))


def test_empty_batch_gives_zero_gradients():
    x = np.ones((0, 2, 4, 4))
    w = np.ones((3, 2, 2, 2))
    g = np.ones((0, 3, 3, 3))
    gx, gw, gb = fastcorr.conv2d_backward(g, x, w, backend="cuda")
    assert gx.shape == (0, 2, 4, 4)
    np.testing.assert_array_equal(gw, np.zeros((3, 2, 2, 2)))
    np.testing.assert_array_equal(gb, np.zeros(3))


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", CUDA_IMAGE_GRADIENT_SHAPES, ids=shape_id)
@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
def test_image_cases(op, shapes, mode, boundary):
    check_image_gradients("cuda", op, shapes, mode, boundary, IMAGE_GRADIENT_FILLVALUE)


def test_image_backward_swapped_valid(rng):
    small = rng.standard_normal((2, 3))
    large = rng.standard_normal((4, 5))
    g = rng.standard_normal((3, 3))
    for fn in (fastcorr.correlate2d_backward, fastcorr.convolve2d_backward):
        for e, r in zip(fn(g, small, large, "valid"), fn(g, small, large, "valid", backend="cuda")):
            np.testing.assert_allclose(r, e, **tolerance(np.float64))


def test_gradients_are_bitwise_repeatable(rng):
    x, w, _ = operands(rng, (2, 3, 6, 5), (4, 3, 3, 3), False, np.float32)
    kwargs = dict(padding=1, padding_mode="reflect")
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape).astype(np.float32)
    first = _grads(x, w, g, "cuda", kwargs)
    second = _grads(x, w, g, "cuda", kwargs)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_automatic_weight_gradient_chunks(rng, monkeypatch):
    monkeypatch.setattr(config, "CUDA_GRAD_WEIGHT_CHUNK_ROWS", 0)
    monkeypatch.setattr(config, "CUDA_GRAD_WEIGHT_POSITIONS", 3)  # 4 threads x 3 / 6 columns: 2 rows
    x, w, _ = operands(rng, (2, 2, 5, 6), (3, 2, 2, 3), False, np.float32)
    kwargs = dict(padding=1, padding_mode="replicate")
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape).astype(np.float32)
    got = fastcorr.conv2d_weight(x, w.shape, g, backend="cuda", **kwargs)
    np.testing.assert_allclose(got, fastcorr.conv2d_weight(x, w.shape, g, **kwargs),
                               **tolerance(np.float32))
    np.testing.assert_array_equal(fastcorr.conv2d_weight(x, w.shape, g, backend="cuda", **kwargs),
                                  got)


def test_bias_gradient_is_split_over_chunks_of_rows(rng):
    """The bias gradient sums fixed chunks of output rows in parallel, then adds them in
    order: right, and bitwise the same on a second run."""
    from fastcorr import cuda as backend

    x, w, _ = operands(rng, (3, 2, 9, 7), (4, 2, 3, 3), False, np.float64)
    g = rng.standard_normal(fastcorr.conv2d(x, w).shape)
    plan = fastcorr.functional.LayerOperands(x, w, None, 1, 0, 1, 1, "zeros").plan
    assert backend._split_k(plan)[2] > 1  # several chunks with the shrunk tunables
    got = _grads(x, w, g, "cuda", {}, (False, False, True))[2]
    np.testing.assert_allclose(got, g.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
    again = _grads(x, w, g, "cuda", {}, (False, False, True))[2]
    assert np.array_equal(got, again)
