"""CUDA gradient kernels against the CPU backend and the reference: conv2d_backward with every
option, conv2d_input/conv2d_weight, correlate2d/convolve2d backward in every mode and
boundary; bitwise repeatability."""

import numpy as np
import pytest
from cuda_helpers import tolerance
from test_forward import CONV2D_CASES, _operands

import fastcorr
from fastcorr import config


def _grads(x, w, g, backend, kwargs, mask=(True, True, True)):
    return fastcorr.conv2d_backward(g, x, w, backend=backend, output_mask=mask, **kwargs)


# every case in float64, a few in float32 (the simulator is slow)
BACKWARD_CASES = ([pytest.param(c, np.float64, id=c[0] + "-float64") for c in CONV2D_CASES]
                  + [pytest.param(c, np.float32, id=c[0] + "-float32") for c in CONV2D_CASES
                     if c[0] in ("plain", "stride_dilation", "reflect", "depthwise")])


@pytest.mark.parametrize("case, dtype", BACKWARD_CASES)
def test_conv2d_backward_matches_cpu(case, dtype, rng):
    _, x_shape, w_shape, _, kwargs = case
    x, w, _ = _operands(rng, x_shape, w_shape, False, dtype)
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape).astype(dtype)
    expected = _grads(x, w, g, "cpu", kwargs)
    got = _grads(x, w, g, "cuda", kwargs)
    for e, r in zip(expected, got):
        assert isinstance(r, np.ndarray) and r.dtype == e.dtype and r.shape == e.shape
        np.testing.assert_allclose(r, e, **tolerance(dtype))


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_backward_matches_reference(padding_mode, rng):
    x, w, _ = _operands(rng, (2, 2, 5, 6), (2, 2, 3, 2), False, np.float64)
    kwargs = dict(padding=(2, 1), stride=(1, 2), padding_mode=padding_mode)
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape)
    expected = fastcorr.conv2d_backward(g, x, w, backend="reference", **kwargs)
    for e, r in zip(expected, _grads(x, w, g, "cuda", kwargs)):
        np.testing.assert_allclose(r, e, **tolerance(np.float64))


def test_output_mask_and_gradient_functions(rng):
    x, w, _ = _operands(rng, (2, 3, 5, 6), (4, 3, 3, 3), False, np.float32)
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


def test_direct_kernels_when_tiles_do_not_fit(rng, monkeypatch):
    monkeypatch.setattr(config, "CUDA_MAX_SHARED_BYTES", 8)
    x, w, _ = _operands(rng, (1, 4, 5, 6), (4, 2, 3, 2), False, np.float64)
    kwargs = dict(groups=2, stride=(2, 1), dilation=(1, 2), padding=2)
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape)
    for e, r in zip(_grads(x, w, g, "cpu", kwargs), _grads(x, w, g, "cuda", kwargs)):
        np.testing.assert_allclose(r, e, **tolerance(np.float64))


def test_weight_gradient_in_several_chunks_and_tap_batches(rng, monkeypatch):
    monkeypatch.setattr(config, "CUDA_GRAD_WEIGHT_TAPS", 4)  # 9 taps: batches of 4, 4, 1
    monkeypatch.setattr(config, "CUDA_GRAD_WEIGHT_CHUNK_ROWS", 3)  # 10 rows: 4 chunks
    x, w, _ = _operands(rng, (2, 2, 5, 6), (2, 2, 3, 3), False, np.float64)
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


@pytest.mark.parametrize("func", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_image_backward_matches_reference(func, mode, boundary, rng):
    image = rng.standard_normal((5, 6))
    kernel = rng.standard_normal((3, 4))
    forward = getattr(fastcorr, func)
    backward = getattr(fastcorr, func + "_backward")
    g = rng.standard_normal(forward(image, kernel, mode, boundary, 0.5).shape)
    expected = backward(g, image, kernel, mode, boundary, 0.5, backend="reference")
    got = backward(g, image, kernel, mode, boundary, 0.5, backend="cuda")
    for e, r in zip(expected, got):
        np.testing.assert_allclose(r, e, **tolerance(np.float64))


def test_image_backward_swapped_valid(rng):
    small = rng.standard_normal((2, 3))
    large = rng.standard_normal((4, 5))
    g = rng.standard_normal((3, 3))
    for fn in (fastcorr.correlate2d_backward, fastcorr.convolve2d_backward):
        for e, r in zip(fn(g, small, large, "valid"), fn(g, small, large, "valid", backend="cuda")):
            np.testing.assert_allclose(r, e, **tolerance(np.float64))


def test_gradients_are_bitwise_repeatable(rng):
    x, w, _ = _operands(rng, (2, 3, 6, 5), (4, 3, 3, 3), False, np.float32)
    kwargs = dict(padding=1, padding_mode="reflect")
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape).astype(np.float32)
    first = _grads(x, w, g, "cuda", kwargs)
    second = _grads(x, w, g, "cuda", kwargs)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_automatic_weight_gradient_chunks(rng, monkeypatch):
    monkeypatch.setattr(config, "CUDA_GRAD_WEIGHT_CHUNK_ROWS", 0)
    monkeypatch.setattr(config, "CUDA_GRAD_WEIGHT_POSITIONS", 3)  # 4 threads x 3 / 6 columns: 2 rows
    x, w, _ = _operands(rng, (2, 2, 5, 6), (3, 2, 2, 3), False, np.float32)
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

    x, w, _ = _operands(rng, (3, 2, 9, 7), (4, 2, 3, 3), False, np.float64)
    g = rng.standard_normal(fastcorr.conv2d(x, w).shape)
    plan = fastcorr.functional.LayerOperands(x, w, None, 1, 0, 1, 1, "zeros").plan
    assert backend._split_k(plan)[2] > 1  # several chunks with the shrunk tunables
    got = _grads(x, w, g, "cuda", {}, (False, False, True))[2]
    np.testing.assert_allclose(got, g.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
    again = _grads(x, w, g, "cuda", {}, (False, False, True))[2]
    assert np.array_equal(got, again)
