"""The CUDA kernels at the shipped tunables (``config.CUDA_*``: 32 x 8 blocks, 4 x 1 x 4 or
1 x 2 x 4 outputs per thread, 256-thread split-K), on shapes small enough for the simulator:
the other tests shrink the tunables so that tiny shapes cover many tiles, which leaves the
production block shapes themselves untested there."""

import numpy as np
import pytest
from cuda_helpers import tolerance
from conftest import DEFAULTS

import fastcorr
from fastcorr import config


@pytest.fixture(autouse=True)
def production(small_tiles, monkeypatch):
    for name, value in DEFAULTS.items():
        monkeypatch.setattr(config, name, value)


CASES = [
    ("dense", (1, 4, 5, 6), (8, 4, 3, 3), dict(padding=1, padding_mode="reflect")),
    ("depthwise strided", (1, 3, 7, 6), (3, 1, 3, 3), dict(groups=3, stride=2, padding=1)),
]


@pytest.mark.parametrize("label, x_shape, w_shape, kwargs", CASES, ids=[c[0] for c in CASES])
def test_layer_at_production_tunables(label, x_shape, w_shape, kwargs, rng):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    with fastcorr.trace() as ran:
        y = fastcorr.conv2d(x, w, b, backend="cuda", **kwargs)
        g = rng.standard_normal(y.shape).astype(np.float32)
        grads = fastcorr.conv2d_backward(g, x, w, backend="cuda", **kwargs)
    assert {r.implementation for r in ran} == {"tiled", "splitk", "sums"}
    np.testing.assert_allclose(y, fastcorr.conv2d(x, w, b, **kwargs), **tolerance(np.float32))
    for got, expected in zip(grads, fastcorr.conv2d_backward(g, x, w, **kwargs)):
        np.testing.assert_allclose(got, expected, **tolerance(np.float32))


def test_image_at_production_tunables(rng):
    image = rng.standard_normal((9, 11))
    kernel = rng.standard_normal((3, 4))
    got = fastcorr.correlate2d(image, kernel, "same", "symm", backend="cuda")
    np.testing.assert_allclose(got, fastcorr.correlate2d(image, kernel, "same", "symm"),
                               **tolerance(np.float64))
