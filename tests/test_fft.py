"""The FFT path: its accuracy bound against SciPy's direct sums, tiling, every mode and
boundary, layers and gradients, and its refusals."""

import numpy as np
import pytest

import fastcorr
from fastcorr.cpu import fft

signal = pytest.importorskip("scipy.signal")

#: The bound the docstrings state, relative to max|in1| * sum|in2|.
BOUND = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("convolve", [False, True], ids=["correlate", "convolve"])
def test_fft_within_the_stated_bound_of_scipy(dtype, mode, boundary, convolve):
    rng = np.random.default_rng(11)
    a = rng.standard_normal((301, 277)).astype(dtype)  # several overlap-save tiles
    k = rng.standard_normal((21, 17)).astype(dtype)
    fn = fastcorr.convolve2d if convolve else fastcorr.correlate2d
    sp = signal.convolve2d if convolve else signal.correlate2d
    with fastcorr.trace() as ran:
        got = fn(a, k, mode, boundary, 0.75, method="fft")
    assert [r.implementation for r in ran] == ["fft"]
    expected = sp(a.astype(np.float64), k.astype(np.float64), mode, boundary, 0.75)
    scale = (np.abs(a).max() + 0.75) * np.abs(k).sum()
    assert got.dtype == dtype
    assert np.abs(got - expected).max() <= BOUND[dtype] * scale


def test_the_swapped_valid_case():
    rng = np.random.default_rng(12)
    small, big = rng.standard_normal((9, 11)), rng.standard_normal((40, 50))
    got = fastcorr.correlate2d(small, big, "valid", method="fft")
    expected = signal.correlate2d(small, big, "valid")
    assert np.abs(got - expected).max() <= 1e-12 * np.abs(big).max() * np.abs(small).sum()


def test_tiles_cover_large_images_and_kernels():
    assert fft.tile_size(15, 2000) == 256 and fft.tile_size(200, 2000) >= 400
    assert fft.tile_size(63, 2000) == 320 and fft.tile_size(75, 2000) == 384  # five extents
    assert fft.tile_size(7, 100) == fft.next_fast_len(100)  # one tile when the image fits
    rng = np.random.default_rng(13)
    a, k = rng.standard_normal((700, 650)), rng.standard_normal((63, 63))
    got = fastcorr.correlate2d(a, k, "same", method="fft")
    expected = fastcorr.correlate2d(a, k, "same", method="direct")
    assert np.abs(got - expected).max() <= 1e-12 * np.abs(a).max() * np.abs(k).sum()


def test_tile_edges_are_fast_transform_sizes():
    for n in range(200, 1100):
        m = fft.tile_edge(n)
        odd = m
        while odd % 2 == 0:
            odd //= 2
        assert m >= n and odd in (1, 3, 5)
        assert not any(n <= e < m for e in (2 ** a * o for a in range(12) for o in (1, 3, 5)))


def test_next_fast_len():
    for n in (1, 2, 3, 7, 97, 100, 1000, 4097):
        m = fft.next_fast_len(n)
        assert m >= n and m % 2 == 0
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
    assert fft.next_fast_len(97) == 100


@pytest.mark.parametrize("kwargs", [
    dict(padding=3), dict(padding="same", dilation=2, padding_mode="reflect"),
    dict(padding=(1, 4), groups=2, padding_mode="circular"),
    dict(padding=(2, 6), padding_mode="replicate"),
])
def test_layers_and_their_gradients_by_fft(kwargs, shape=(2, 4, 30, 26)):
    rng = np.random.default_rng(14)
    x, w = rng.standard_normal(shape), rng.standard_normal((6, shape[1] // kwargs.get(
        "groups", 1), 7, 5))
    b = rng.standard_normal(6)
    y = fastcorr.conv2d(x, w, b, method="fft", **kwargs)
    ref = fastcorr.conv2d(x, w, b, backend="reference", **kwargs)
    scale = np.abs(x).max() * np.abs(w).sum() + np.abs(b).max()
    assert np.abs(y - ref).max() <= 1e-12 * scale
    g = rng.standard_normal(y.shape)
    with fastcorr.trace() as ran:
        got = fastcorr.conv2d_backward(g, x, w, method="fft", **kwargs)
    assert [r.implementation for r in ran] == ["fft", "fft", "sums"]
    expected = fastcorr.conv2d_backward(g, x, w, backend="reference", **kwargs)
    for a, e in zip(got, expected):
        assert np.abs(a - e).max() <= 1e-11 * np.abs(g).max() * max(np.abs(w).sum(),
                                                                    np.abs(x).sum())


@pytest.mark.parametrize("kwargs", [
    dict(padding=(8, 6), padding_mode="circular"), dict(padding=(8, 6), padding_mode="reflect"),
    dict(padding=(12, 10), padding_mode="replicate"), dict(padding=(12, 10)),
])
def test_padding_wider_than_the_kernel_by_fft(kwargs):
    """Padding as wide as each rule allows (to the planes' size; beyond it for replicate and
    zeros): the tiles read it through the boundary maps, never from a padded copy."""
    test_layers_and_their_gradients_by_fft(kwargs, shape=(1, 2, 9, 7))


def test_fft_needs_stride_one():
    with pytest.raises(ValueError, match="method='fft'.*stride 1"):
        fastcorr.conv2d(np.ones((1, 1, 9, 9)), np.ones((1, 1, 3, 3)), stride=2, method="fft")
    with fastcorr.trace() as ran:
        fastcorr.conv2d(np.ones((1, 1, 9, 9)), np.ones((1, 1, 3, 3)), stride=2)
    assert ran[0].method == "direct"


def test_reference_backend_refuses_fft():
    with pytest.raises(ValueError, match="method='fft': reference"):
        fastcorr.correlate2d(np.ones((4, 4)), np.ones((2, 2)), method="fft",
                             backend="reference")


@pytest.mark.parametrize("bad", ["FFT", "fast", None, 1])
def test_bad_methods(bad):
    with pytest.raises(ValueError, match="method: expected one of 'auto', 'direct', 'fft'"):
        fastcorr.correlate2d(np.ones((4, 4)), np.ones((2, 2)), method=bad)


def test_auto_follows_the_cost_model_and_choose_method():
    small = (np.ones((64, 64)), np.ones((3, 3)))
    large = (np.ones((1024, 1024)), np.ones((63, 63)))
    assert fastcorr.choose_method(*small) == "direct"
    assert fastcorr.choose_method(*large, "same") == "fft"
    for (a, k), method in ((small, "direct"), (large, "fft")):
        with fastcorr.trace() as ran:
            fastcorr.correlate2d(a, k, "same")
        assert ran[0].method == method
    method, times = fastcorr.choose_method(*small, measure=True)
    assert method in times and set(times) == {"direct", "fft"}


def test_auto_gradients_follow_the_cost_model():
    """The "planes" weight gradient's cost grows with the input it sums over past PLANES_KNEE
    pixels (its sums leave the first-level cache): a whole padded plane, or a band's rows for
    planes cut into bands; it runs tap by tap at every width (the taps' narrow rate). The
    FFT input gradient costs FFT_GRAD_INPUT_FACTOR times the forward's prediction. So a
    depthwise 11x11 weight gradient on 256^2 planes takes the FFT, a 5x5 one on 48^2 planes
    and a 7x7 one on a single 1024^2 plane (in bands) the direct sums."""
    from fastcorr import _validate as v
    from fastcorr.cpu import cost, depthwise

    def plan(shape, k):
        return v.plan_conv2d(shape, (shape[1], 1, k, k), None, 1, k // 2, 1, shape[1],
                             "zeros", np.float32)

    narrow = {**cost.CONSTANTS, "taps_wide": cost.CONSTANTS["taps_narrow"]}
    small, large, single = plan((2, 4, 48, 48), 11), plan((2, 4, 256, 256), 11), plan(
        (1, 1, 1024, 1024), 7)
    assert depthwise.weight_working_pixels(small) == 58 * 58  # the padded plane
    assert depthwise.weight_working_pixels(large) == (depthwise.BAND_ROWS + 10) * 266
    assert depthwise.weight_working_pixels(single) == (depthwise.BAND_ROWS + 6) * 1030
    for p in (small, large, single):
        taps = cost.direct_seconds(p, "taps", 2, narrow) - cost.CONSTANTS["call"]
        planes = cost.direct_seconds(p, "planes", 2) - cost.CONSTANTS["call"]
        grown = max(1.0, depthwise.weight_working_pixels(p) / cost.PLANES_KNEE) \
            ** cost.PLANES_EXPONENT
        assert planes == pytest.approx(3.0 * grown * taps)
    assert cost.direct_seconds(small, "planes", 2) < cost.direct_seconds(large, "planes", 2)
    forward = cost.fft_seconds(large, 2) - cost.CONSTANTS["call"]
    grad_input = cost.fft_seconds(large, 2, operation="grad_input") - cost.CONSTANTS["call"]
    assert grad_input == pytest.approx(cost.FFT_GRAD_INPUT_FACTOR * forward)
    rng = np.random.default_rng(0)
    for shape, k, expected in (((2, 4, 48, 48), 5, "planes"), ((2, 4, 256, 256), 11, "fft"),
                               ((1, 1, 1024, 1024), 7, "planes")):
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        with fastcorr.trace() as ran:
            fastcorr.conv2d_weight(x, (shape[1], 1, k, k), g, padding=k // 2, groups=shape[1])
        assert [r.implementation for r in ran] == [expected]


def test_scratch_is_reused_per_range_and_bounded(monkeypatch):
    """The tiles' scratch: the same shapes get the same arrays back (per range index), new
    shapes replace them, and arrays over SCRATCH_BYTES are never kept."""
    small = (((2, 8, 8), np.float32), ((2, 8, 5), np.complex64))
    first = fft._buffers(*small)
    a0, a1 = first(), first()
    assert a0[0] is not a1[0]  # two ranges of one call never share arrays
    again = fft._buffers(*small)
    assert again()[0] is a0[0] and again()[1] is a1[1]
    other = fft._buffers(((3, 8, 8), np.float32))
    assert other()[0].shape == (3, 8, 8)
    assert fft._buffers(*small)()[0] is not a0[0]  # range 0 now holds the newer shapes only
    monkeypatch.setattr(fft, "SCRATCH_BYTES", 100)
    big = fft._buffers(((64,), np.float64))
    b = big()[0]
    assert fft._buffers(((64,), np.float64))()[0] is not b  # 512 bytes > 100: not kept
