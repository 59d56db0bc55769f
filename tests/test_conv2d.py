"""Numerical agreement of ``fastcorr.conv2d`` with torch (float64) and between backends.

Every result is compared with ``torch.nn.Conv2d`` (the layer applies ``padding_mode``) run in
float64 on the same (already rounded) inputs. The tolerance is a forward error bound, not a
guess: a sum of ``m`` products computed in a precision with unit roundoff ``u = eps / 2`` is off
by at most about ``m * u * sum(|w| * |x|)``, so we allow ``(m + 2) * eps * (|w| (*) |x| + |b|)``
element by element, where ``(*)`` is the same correlation of the absolute values (computed by
torch with the same padding). In float64 this also covers torch's own rounding.

The hand-picked layers are those of ``tests/cases.py``, checked by the test body the CUDA tests
share (``helpers.check_layer_forward``).
"""

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcorr
from fastcorr import config
from cases import DTYPES, PADDING_MODES, layer_params
from helpers import assert_within, check_layer_forward, forced, torch_conv2d
from helpers import conv2d_error_bound as error_bound


# Each direct CPU forward implementation forced in turn (plans it cannot compute take the
# usual choice; tests/test_implementations.py proves each runs on the plans it supports).
CPU_PATHS = ("cpu",) + tuple(f"cpu:{name}" for name in ("rows", "taps", "flat", "gemm"))
BACKENDS = ("reference",) + CPU_PATHS


@contextlib.contextmanager
def cpu_path(name):
    """Force the CPU implementation of ``name`` ("cpu:<implementation>", or "cpu" and
    "reference" as they are); yields the backend to pass."""
    if not name.startswith("cpu:"):
        yield name
        return
    with forced("cpu", "forward", name[4:], require_run=False):
        yield "cpu"


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The backend to pass: "reference", or "cpu" with one of its implementations forced."""
    with cpu_path(request.param) as name:
        yield name


# --------------------------------------------------------------------------- helpers


def check_against_torch(x, w, b, dtype, backend, **kwargs):
    """Run fastcorr in ``dtype`` and compare with torch float64 on the rounded inputs."""
    x = np.asarray(x, dtype)
    w = np.asarray(w, dtype)
    b = None if b is None else np.asarray(b, dtype)
    got = fastcorr.conv2d(x, w, b, backend=backend, **kwargs)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.dtype(dtype)
    expected = torch_conv2d(x, w, b, **kwargs)
    assert_within(got, expected, error_bound(x, w, b, dtype, **kwargs),
                  f"{backend} {np.dtype(dtype).name} {kwargs}")
    return got


def make_operands(seed, input_shape, weight_shape, bias=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(input_shape)
    w = rng.standard_normal(weight_shape)
    b = rng.standard_normal(weight_shape[0]) if bias else None
    return x, w, b


def build_config(pick, choose, *, max_c=3, max_k=3, max_extra=4, max_batch=2):
    """A random valid conv2d configuration (torch's rules), drawn with ``pick(lo, hi)`` (an int
    in [lo, hi]) and ``choose(seq)``; the input size is derived so that it is always valid."""
    groups = choose((1, 1, 2, 3))
    c_in_g, c_out_g = pick(1, max_c), pick(1, max_c)
    kh, kw = pick(1, max_k), pick(1, max_k)
    dh, dw = pick(1, 2), pick(1, 2)
    mode = choose(PADDING_MODES)
    kind = choose(("pair", "pair", "same", "valid"))
    if kind == "same":
        padding, stride = "same", (1, 1)
        pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in ((kh, dh), (kw, dw))]
    else:
        stride = (pick(1, 3), pick(1, 3))
        padding = (pick(0, 3), pick(0, 3)) if kind == "pair" else "valid"
        pads = [(p, p) for p in (padding if kind == "pair" else (0, 0))]
    sizes = []
    for (before, after), k, d in zip(pads, (kh, kw), (dh, dw)):
        low = max(1, d * (k - 1) + 1 - before - after)
        if mode == "reflect":
            low = max(low, max(before, after) + 1)
        elif mode == "circular":
            low = max(low, max(before, after))
        sizes.append(pick(low, low + max_extra))
    batch = pick(0, max_batch) if max_batch else None
    input_shape = ((batch,) if batch is not None else ()) + (c_in_g * groups, *sizes)
    weight_shape = (c_out_g * groups, c_in_g, kh, kw)
    kwargs = dict(stride=stride, padding=padding, dilation=(dh, dw), groups=groups,
                  padding_mode=mode)
    return input_shape, weight_shape, kwargs


def rng_config(seed, **limits):
    rng = np.random.default_rng(seed)
    return build_config(lambda lo, hi: int(rng.integers(lo, hi + 1)),
                        lambda seq: seq[int(rng.integers(len(seq)))], **limits)


# --------------------------------------------------------------------------- hand-picked cases


@pytest.mark.parametrize("case", layer_params())
def test_layer_cases_match_torch(case, backend):
    """Every layer of tests/cases.py (the CUDA tests run a selection of them through the same
    body), with and without a bias, in both dtypes: see ``helpers.check_layer_forward``."""
    for bias in (True, False):
        for dtype in DTYPES:
            check_layer_forward(backend, case, dtype, bias=bias)


def test_padding_modes_differ():
    """Guard against a helper that ignores padding_mode: the modes give different results."""
    x, w, _ = make_operands(3, (1, 2, 5, 6), (2, 2, 3, 3), bias=False)
    results = [fastcorr.conv2d(x, w, padding=2, padding_mode=m, backend="cpu")
               for m in PADDING_MODES]
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            assert not np.allclose(results[i], results[j]), (PADDING_MODES[i], PADDING_MODES[j])


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_unbatched_input(padding_mode, backend):
    x, w, b = make_operands(5, (3, 5, 6), (4, 3, 3, 2), bias=True)
    kwargs = dict(padding=(1, 1), stride=(1, 2), padding_mode=padding_mode)
    for dtype in DTYPES:
        got = check_against_torch(x, w, b, dtype, backend, **kwargs)
        assert got.ndim == 3
        batched = fastcorr.conv2d(np.asarray(x[None], dtype), np.asarray(w, dtype),
                                  np.asarray(b, dtype), backend=backend, **kwargs)
        np.testing.assert_array_equal(got, batched[0])


@pytest.mark.parametrize("kwargs", [
    {}, dict(padding=1, stride=2), dict(padding="same", padding_mode="reflect"),
    dict(groups=2, padding=(1, 0), padding_mode="circular"),
], ids=["plain", "pad_stride", "same_reflect", "groups_circular"])
def test_empty_batch(kwargs, backend):
    for dtype in DTYPES:
        x = np.zeros((0, 4, 5, 6), dtype)
        w = np.ones((6, 4 // kwargs.get("groups", 1), 3, 2), dtype)
        got = fastcorr.conv2d(x, w, np.ones(6, dtype), backend=backend, **kwargs)
        expected = torch_conv2d(x, w, np.ones(6), **kwargs)
        assert got.shape == expected.shape
        assert got.shape[0] == 0
        assert got.dtype == np.dtype(dtype)


# --------------------------------------------------------------------------- random configurations


@pytest.mark.parametrize("seed", range(40))
def test_random_configs_match_torch(seed, backend):
    input_shape, weight_shape, kwargs = rng_config(seed)
    x, w, b = make_operands(1000 + seed, input_shape, weight_shape, bias=seed % 2 == 0)
    dtype = DTYPES[seed % 4 // 2]
    check_against_torch(x, w, b, dtype, backend, **kwargs)


@pytest.mark.parametrize("seed", range(40, 70))
def test_random_configs_cpu_matches_reference(seed):
    input_shape, weight_shape, kwargs = rng_config(seed)
    x, w, b = make_operands(2000 + seed, input_shape, weight_shape, bias=seed % 3 != 0)
    for dtype in DTYPES:
        xd, wd, bd = (None if a is None else a.astype(dtype) for a in (x, w, b))
        ref = fastcorr.conv2d(xd, wd, bd, backend="reference", **kwargs)
        bound = error_bound(xd, wd, bd, dtype, **kwargs)
        for path in CPU_PATHS:
            with cpu_path(path):
                cpu = fastcorr.conv2d(xd, wd, bd, backend="cpu", **kwargs)
            assert cpu.dtype == ref.dtype == np.dtype(dtype)
            assert_within(cpu, ref.astype(np.float64), bound,
                          f"{path} vs reference {np.dtype(dtype).name} {kwargs}")


@st.composite
def small_configs(draw):
    input_shape, weight_shape, kwargs = build_config(
        lambda lo, hi: draw(st.integers(lo, hi)), lambda seq: draw(st.sampled_from(seq)),
        max_c=2, max_k=3, max_extra=3, max_batch=2,
    )
    unbatched = draw(st.booleans())
    if unbatched:
        input_shape = input_shape[1:]
    bias = draw(st.booleans())
    dtype = draw(st.sampled_from(DTYPES))
    path = draw(st.sampled_from(sorted(CPU_PATHS)))
    seed = draw(st.integers(0, 2**32 - 1))
    return input_shape, weight_shape, kwargs, bias, dtype, path, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_configs())
def test_property_cpu_matches_reference(config_):
    input_shape, weight_shape, kwargs, bias, dtype, path, seed = config_
    x, w, b = make_operands(seed, input_shape, weight_shape, bias)
    x, w = x.astype(dtype), w.astype(dtype)
    b = None if b is None else b.astype(dtype)
    with cpu_path(path):
        cpu = fastcorr.conv2d(x, w, b, backend="cpu", **kwargs)
    ref = fastcorr.conv2d(x, w, b, backend="reference", **kwargs)
    assert cpu.dtype == ref.dtype == np.dtype(dtype)
    assert cpu.shape == ref.shape
    if cpu.size:
        assert_within(cpu, ref.astype(np.float64), error_bound(x, w, b, dtype, **kwargs),
                      f"{path} vs reference {kwargs}")


# --------------------------------------------------------------------------- larger cpu-only cases


@pytest.mark.parametrize("path", ["cpu", "cpu:rows", "cpu:gemm"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c_out, groups", [(24, 1), (13, 1), (20, 2), (8, 4)],
                         ids=["dense_24", "dense_13", "groups2_cout_g10", "groups4_cout_g2"])
def test_dense_matches_torch(c_out, groups, dtype, path):
    """A dense/grouped layer big enough for several output-channel blocks (C_out a multiple of
    the block and not) under the rows kernel, and for im2col + BLAS by default."""
    x, w, b = make_operands(21, (2, 16, 19, 17), (c_out, 16 // groups, 3, 3), bias=True)
    with cpu_path(path):
        check_against_torch(x, w, b, dtype, "cpu", padding=1, groups=groups)
        check_against_torch(x, w, b, dtype, "cpu", stride=2, padding=(2, 0), dilation=(1, 2),
                            groups=groups, padding_mode="reflect")


@pytest.mark.parametrize("block", [1, 3, 5, 8, 16])
def test_output_channel_block_size_does_not_matter(block, monkeypatch):
    """The blocking tunable only reorganises the rows kernel: any block gives torch's result."""
    monkeypatch.setattr(config, "CPU_OUT_CHANNEL_BLOCK", block)
    with cpu_path("cpu:rows"):
        x, w, b = make_operands(22, (2, 6, 9, 8), (13, 6, 3, 3), bias=True)
        check_against_torch(x, w, b, np.float64, "cpu", padding=1)
        x, w, b = make_operands(23, (2, 6, 9, 8), (14, 3, 3, 3), bias=True)
        check_against_torch(x, w, b, np.float32, "cpu", padding=(0, 2), padding_mode="circular",
                            groups=2, stride=(2, 1))


@pytest.mark.parametrize("path", ["cpu", "cpu:taps", "cpu:rows"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("kwargs", [
    dict(padding=2), dict(padding=1, stride=2), dict(padding="same", padding_mode="reflect"),
    dict(padding=(2, 3), dilation=(2, 3), padding_mode="replicate"),
    dict(padding=(4, 1), stride=(3, 2), padding_mode="circular"),
], ids=["pad2", "stride2", "same_reflect", "dilated_replicate", "circular_stride"])
def test_depthwise_matches_torch(kwargs, multiplier, dtype, path):
    channels = 32
    x, w, b = make_operands(23, (2, channels, 24, 21), (channels * multiplier, 1, 5, 5), bias=True)
    with cpu_path(path):
        check_against_torch(x, w, b, dtype, "cpu", groups=channels, **kwargs)


def test_single_channel_large_image_matches_torch():
    x, w, b = make_operands(24, (1, 1, 64, 80), (1, 1, 7, 5), bias=True)
    for dtype in DTYPES:
        check_against_torch(x, w, b, dtype, "cpu", padding=(3, 2))
        check_against_torch(x, w, b, dtype, "cpu", padding="same", padding_mode="replicate",
                            dilation=2)


# --------------------------------------------------------------------------- NaN and Inf


def _assert_same_nonfinite(got, expected):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg="NaN positions")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected), err_msg="+Inf positions")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected), err_msg="-Inf positions")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_nan_inf_in_input_propagate_like_torch(padding_mode, dtype, backend):
    x, w, b = make_operands(31, (1, 2, 7, 8), (3, 2, 3, 3), bias=True)
    x[0, 0, 2, 3] = np.nan
    x[0, 1, 5, 7] = np.inf  # at the border: also reaches the padding under non-zero modes
    x[0, 0, 0, 0] = -np.inf
    x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    kwargs = dict(padding=(1, 2), padding_mode=padding_mode)
    got = fastcorr.conv2d(x, w, b, backend=backend, **kwargs)
    expected = torch_conv2d(x, w, b, **kwargs)
    assert np.isnan(expected).any() and np.isinf(expected).any()  # the test's premise
    _assert_same_nonfinite(got, expected)
    finite = np.isfinite(expected)
    assert_within(got[finite], expected[finite], error_bound(
        np.nan_to_num(x, nan=0, posinf=0, neginf=0), w, b, dtype, **kwargs)[finite])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_nonfinite_weight_propagates_like_torch(bad, padding_mode, dtype, backend):
    """With zero padding a NaN (or Inf) tap meets the padded zeros: 0 * NaN = NaN, so torch
    gives NaN at the borders too; every output the tap touches is NaN/Inf."""
    x, w, b = make_operands(32, (2, 2, 6, 7), (3, 2, 3, 3), bias=True)
    w[1, 0, 0, 2] = bad
    x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    kwargs = dict(padding=(2, 1), stride=(1, 2), padding_mode=padding_mode)
    got = fastcorr.conv2d(x, w, b, backend=backend, **kwargs)
    expected = torch_conv2d(x, w, b, **kwargs)
    if padding_mode == "zeros" and bad != bad:
        assert np.isnan(expected[:, 1]).all()  # premise: NaN everywhere, borders included
    _assert_same_nonfinite(got, expected)
    finite = np.isfinite(expected)
    assert finite[:, [0, 2]].all()
    assert_within(got[finite], expected[finite], error_bound(
        x, np.nan_to_num(w, nan=0, posinf=0), b, dtype, **kwargs)[finite])
