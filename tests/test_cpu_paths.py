"""Each CPU loop shape (general rows, unrolled rows and planes, im2col + BLAS) forced in turn,
against the reference.

The CPU backend picks a kernel by the layer's shape; small test layers would mostly take one
path, so the tunables in fastcorr.config are patched here to drive every path over the same
random configurations.
"""

import numpy as np
import pytest

import fastcorr
from fastcorr import config

PATHS = {
    # im2col + BLAS for every layer, with blocks of a single output row
    "gemm": dict(CPU_GEMM_MIN_DEPTH=1, CPU_GEMM_MIN_OUT_CHANNELS=1, CPU_IM2COL_BLOCK_ELEMENTS=1),
    # the general row kernel for everything
    "rows": dict(CPU_GEMM_MIN_DEPTH=10**9, CPU_UNROLL_MAX_TAPS=0),
    # the general row kernel computing one output channel per task
    "rows-unblocked": dict(CPU_GEMM_MIN_DEPTH=10**9, CPU_UNROLL_MAX_TAPS=0,
                           CPU_OUT_CHANNEL_BLOCK=1),
    # kernels unrolled for their size, by rows wherever the layer allows (one input channel a
    # group, unit column stride) ...
    "unrolled-rows": dict(CPU_GEMM_MIN_DEPTH=10**9, CPU_PLANE_MAX_ELEMENTS=0),
    # ... and by planes wherever the layer allows (also unit row stride)
    "unrolled-planes": dict(CPU_GEMM_MIN_DEPTH=10**9, CPU_PLANE_MAX_ELEMENTS=10**9),
}


@pytest.fixture(params=sorted(PATHS))
def cpu_path(request, monkeypatch):
    for name, value in PATHS[request.param].items():
        monkeypatch.setattr(config, name, value)
    return request.param


def random_layer(rng, depthwise):
    groups = int(rng.integers(1, 4))
    c_in_g = 1 if depthwise else int(rng.integers(1, 4))
    c_out_g = int(rng.integers(1, 4))
    kh, kw = (int(k) for k in rng.integers(1, 4, 2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
    stride = (1, 1) if depthwise else tuple(int(s) for s in rng.integers(1, 3, 2))
    h, w = (int(s) for s in rng.integers(4, 10, 2))
    padding_mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    n = int(rng.integers(1, 4))
    x = rng.standard_normal((n, groups * c_in_g, h, w))
    weight = rng.standard_normal((groups * c_out_g, c_in_g, kh, kw))
    bias = rng.standard_normal(groups * c_out_g) if rng.random() < 0.5 else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=padding_mode)
    return x, weight, bias, kwargs


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_path_matches_reference(cpu_path, depthwise, dtype):
    rng = np.random.default_rng(1234 + depthwise)
    checked = 0
    for _ in range(25):
        x, weight, bias, kwargs = random_layer(rng, depthwise)
        x, weight = x.astype(dtype), weight.astype(dtype)
        bias = None if bias is None else bias.astype(dtype)
        try:
            expected = fastcorr.conv2d(x, weight, bias, backend="reference", **kwargs)
        except ValueError:
            continue  # e.g. reflect padding as large as the input: checked elsewhere
        got = fastcorr.conv2d(x, weight, bias, backend="cpu", **kwargs)
        assert got.dtype == dtype and got.shape == expected.shape
        # float64: exact up to summation order; float32: eps * taps * magnitude of the terms
        taps = weight.shape[1] * weight.shape[2] * weight.shape[3]
        scale = fastcorr.conv2d(np.abs(x), np.abs(weight), None if bias is None else np.abs(bias),
                                backend="reference", **kwargs)
        tol = np.finfo(dtype).eps * (taps + 1) * scale
        assert np.all(np.abs(got - expected) <= tol), kwargs
        checked += 1
    assert checked >= 15


def test_single_image_paths_match_scipy(cpu_path):
    scipy_signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(7)
    image, kernel = rng.standard_normal((9, 13)), rng.standard_normal((4, 3))
    for mode in ("full", "same", "valid"):
        for boundary in ("fill", "wrap", "symm"):
            expected = scipy_signal.correlate2d(image, kernel, mode, boundary, 0.25)
            got = fastcorr.correlate2d(image, kernel, mode, boundary, 0.25)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_gemm_blocks_cover_the_output(monkeypatch):
    """Blocks of a few rows, not dividing the output height, leave no row unwritten."""
    monkeypatch.setattr(config, "CPU_IM2COL_BLOCK_ELEMENTS", 3 * 9 * 5 * 2 + 1)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 5))
    weight = rng.standard_normal((6, 3, 3, 3))
    out = np.full((2, 6, 7, 5), np.nan)
    fastcorr.conv2d(x, weight, padding=1, out=out)
    expected = fastcorr.conv2d(x, weight, padding=1, backend="reference")
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unrolled_kernels_equal_the_general_kernel_bitwise(monkeypatch, dtype):
    """Unrolled kernels add the taps in the general kernel's order: not close, identical."""
    rng = np.random.default_rng(99)
    for _ in range(12):
        x, weight, bias, kwargs = random_layer(rng, depthwise=True)
        x, weight = x.astype(dtype), weight.astype(dtype)
        kwargs["stride"] = (int(rng.integers(1, 3)), 1)  # unrolled rows take any row stride
        results = []
        for path in ("rows", "unrolled-rows", "unrolled-planes"):
            with monkeypatch.context() as patch:
                for name, value in PATHS[path].items():
                    patch.setattr(config, name, value)
                try:
                    results.append(fastcorr.conv2d(x, weight, bias, **kwargs))
                except ValueError:
                    break
        for other in results[1:]:
            assert np.array_equal(results[0], other, equal_nan=True), kwargs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_blocks_cover_every_row(monkeypatch, dtype):
    """The unrolled rows path computes blocks of rows inside the input in one kernel and the
    rest (edge rows, edge columns) in another: every height, padding and boundary rule, several
    images and channels (the blocks index flat arrays), bitwise equal to the general kernel."""
    from fastcorr.cpu.unrolled import inner_row_blocks

    rng = np.random.default_rng(7)
    blocks_seen = 0
    for h in range(1, 15):
        kh, kw = int(rng.integers(1, min(h, 5) + 1)), int(rng.integers(1, 5))
        w = int(rng.integers(kw, 12))
        pad = (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        if mode == "reflect":
            pad = (min(pad[0], h - 1), min(pad[1], w - 1))
        kwargs = dict(padding=pad, dilation=(1, int(rng.integers(1, 3))), groups=2,
                      padding_mode=mode)
        x = rng.standard_normal((2, 2, h, w)).astype(dtype)
        weight = rng.standard_normal((4, 1, kh, kw)).astype(dtype)
        bias = rng.standard_normal(4).astype(dtype)
        results = []
        for path in ("rows", "unrolled-rows"):
            with monkeypatch.context() as patch:
                for name, value in PATHS[path].items():
                    patch.setattr(config, name, value)
                try:
                    results.append(fastcorr.conv2d(x, weight, bias, **kwargs))
                except ValueError:  # the dilated kernel is wider than the padded input
                    break
        if not results:
            continue
        out_h = results[0].shape[2]
        blocks_seen += inner_row_blocks(out_h, h, kh, pad[0])[1]
        expected = fastcorr.conv2d(x, weight, bias, backend="reference", **kwargs)
        np.testing.assert_allclose(results[-1], expected, rtol=1e-5, atol=1e-5)
        assert np.array_equal(results[0], results[-1]), (h, kh, kw, kwargs)
    assert blocks_seen >= 10  # the block kernel did run


def test_unrolled_source_is_written_once_to_the_cache_folder(monkeypatch, tmp_path):
    from fastcorr.cpu import unrolled

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(unrolled, "_modules", {})
    module = unrolled.kernels(1, 2)
    written = list((tmp_path / "fastcorr" / "unrolled").glob("*.py"))
    assert [p.name for p in written] == [f"{module.__name__}.py"]
    assert written[0].read_text() == unrolled.source(1, 2)
    assert unrolled.kernels(1, 2) is module
    # a kernel of the same size computes the same numbers as the general one
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 6))
    weight = np.random.default_rng(1).standard_normal((1, 1, 1, 2))
    out = np.empty((1, 1, 4, 5))
    module.correlate_rows(x, weight, np.zeros(1), out, 1, 1, 1, 0, 0, 0, 0.0, 1, 0, 0)
    np.testing.assert_allclose(out, fastcorr.conv2d(x, weight, backend="reference"), rtol=1e-14)
