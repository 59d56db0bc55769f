"""fastcorr.batch on the host backends: chunked results equal the one-shot functions."""

import numpy as np
import pytest

import fastcorr
from fastcorr import batch, config


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("convolve", [False, True])
@pytest.mark.parametrize("mode, boundary", [("full", "fill"), ("same", "symm"), ("valid", "wrap")])
def test_correlate_stack_matches_image_by_image(mode, boundary, convolve, backend, rng):
    images = rng.standard_normal((5, 7, 6)).astype(np.float32)
    kernel = rng.standard_normal((3, 2)).astype(np.float32)
    fn = fastcorr.convolve2d if convolve else fastcorr.correlate2d
    expected = np.stack([fn(im, kernel, mode, boundary, 0.25) for im in images])
    got = batch.correlate_stack(images, kernel, mode, boundary, 0.25, convolve=convolve,
                                backend=backend, chunk=2)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", [None, 1, 3, 100])
def test_conv2d_stream_matches_conv2d(chunk, rng):
    x = rng.standard_normal((5, 3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    kwargs = dict(stride=(1, 2), padding=1, padding_mode="reflect")
    expected = fastcorr.conv2d(x, w, b, **kwargs)
    np.testing.assert_allclose(batch.conv2d_stream(x, w, b, chunk=chunk, **kwargs), expected,
                               rtol=1e-12, atol=1e-12)


def test_default_chunk_follows_the_byte_budget(rng, monkeypatch):
    monkeypatch.setattr(config, "CUDA_STREAM_CHUNK_BYTES", 2 * (5 * 6 + 4 * 5) * 8)  # 2 images
    calls = []
    images = rng.standard_normal((5, 5, 6))
    got = batch.correlate_stack(images, np.ones((2, 2)), "valid",
                                progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    np.testing.assert_allclose(got, [fastcorr.correlate2d(im, np.ones((2, 2)), "valid")
                                     for im in images], rtol=1e-12, atol=1e-12)


def test_out_and_progress_bar(rng, capsys):
    x = rng.standard_normal((3, 2, 5, 5))
    w = rng.standard_normal((2, 2, 2, 2))
    out = np.empty((3, 2, 4, 4))
    assert batch.conv2d_stream(x, w, out=out, chunk=2, progress=True) is out
    np.testing.assert_allclose(out, fastcorr.conv2d(x, w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: batch.correlate_stack(np.ones((4, 4)), np.ones((2, 2))), ValueError, "images"),
    (lambda: batch.correlate_stack(np.ones((0, 4, 4)), np.ones((2, 2))), ValueError, "images"),
    (lambda: batch.correlate_stack(np.ones((2, 4, 4)), np.ones((2, 2, 1))), ValueError, "kernel"),
    (lambda: batch.correlate_stack(np.ones((2, 2, 2)), np.ones((3, 3)), "valid"), ValueError,
     "kernel"),
    (lambda: batch.correlate_stack(np.ones((2, 4, 4)), np.ones((2, 2)), chunk=0), ValueError,
     "chunk"),
    (lambda: batch.correlate_stack(np.ones((2, 4, 4)), np.ones((2, 2)), chunk=1.5), TypeError,
     "chunk"),
    (lambda: batch.conv2d_stream(np.ones((2, 4, 4)), np.ones((1, 2, 2, 2))), ValueError, "input"),
    (lambda: batch.conv2d_stream(np.ones((1, 2, 4, 4)), np.ones((1, 2, 2, 2)), streams=0),
     ValueError, "streams"),
    (lambda: batch.conv2d_stream(np.ones((1, 2, 4, 4)), np.ones((1, 2, 2, 2)), stream=1),
     ValueError, "stream"),
])
def test_bad_arguments(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
