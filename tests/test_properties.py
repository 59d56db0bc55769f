"""Property runs against the reference and argument fuzzing.

- ``slow`` (run by ``.ci/run``, not by a plain ``python -m pytest``): hypothesis draws layers
  and images, forward and backward, every method and every implementation of the CPU tables,
  and compares each with the reference: over 10,000 comparisons in all (``COUNTS`` proves the
  number at the end of the run).
- argument fuzzing: random types, shapes and values for every public function get a
  ``ValueError`` or ``TypeError`` (or a correct result), never another exception, a crash or a
  hang, and never a mutated input.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcorr
from fastcorr import _select
from fastcorr.cpu import TABLES

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
COUNTS = {"comparisons": 0}


@st.composite
def layers(draw):
    groups = draw(st.integers(1, 3))
    c_in_g = draw(st.sampled_from([1, 1, 2, 3]))
    c_out_g = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    kwargs = dict(stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                  dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                  padding=(draw(st.integers(0, 4)), draw(st.integers(0, 4))), groups=groups,
                  padding_mode=draw(st.sampled_from(PADDING_MODES)))
    if draw(st.booleans()):
        kwargs["stride"] = (1, 1)
    n = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**31))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (n, groups * c_in_g, h, w), (groups * c_out_g, c_in_g, kh, kw), kwargs, seed, dtype


def _tolerance(dtype, method, scale, terms):
    eps = np.finfo(dtype).eps
    return (terms + 2) * eps * scale * (64 if method == "fft" else 1) + np.finfo(dtype).tiny


def _compare(got, expected, dtype, method, scale, terms, what):
    assert got.shape == expected.shape and got.dtype == np.dtype(dtype), what
    tol = _tolerance(dtype, method, scale, terms)
    assert np.all(np.abs(got.astype(np.float64) - expected) <= tol), what
    COUNTS["comparisons"] += 1


def _check_layer(layer, implementation=None):
    x_shape, w_shape, kwargs, seed, dtype = layer
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    try:
        ref = fastcorr.conv2d(x, w, backend="reference", **kwargs)
    except ValueError:
        return
    g = rng.standard_normal(ref.shape).astype(dtype)
    ref_grads = fastcorr.conv2d_backward(g, x, w, backend="reference", **kwargs)
    scale = float(np.abs(x).max() * np.abs(w).sum() + 1) * max(1.0, float(np.abs(g).max()))
    terms = int(np.prod(w_shape[1:])) * max(1, ref.shape[0] * ref.shape[2] * ref.shape[3])
    methods = ["direct", "auto"] + (["fft"] if kwargs["stride"] == (1, 1) else [])
    for method in methods:
        got = fastcorr.conv2d(x, w, method=method, **kwargs)
        _compare(got, ref, dtype, method, scale, terms, (method, "forward", kwargs))
        grads = fastcorr.conv2d_backward(g, x, w, method=method, **kwargs)
        for got_g, exp_g, name in zip(grads, ref_grads, ("input", "weight", "bias")):
            _compare(got_g, exp_g, dtype, method, scale, terms, (method, name, kwargs))


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(layers())
def test_property_conv2d_every_method_matches_the_reference(layer):
    _check_layer(layer)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(layers(), st.data())
def test_property_every_implementation_matches_the_reference(layer, data):
    operation = data.draw(st.sampled_from(["forward", "grad_input", "grad_weight"]))
    name = data.draw(st.sampled_from(TABLES[operation].names()))
    with _select.force("cpu", strict=False, **{operation: name}):
        _check_layer(layer)


@st.composite
def images(draw):
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    kh, kw = draw(st.integers(1, 15)), draw(st.integers(1, 15))
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    boundary = draw(st.sampled_from(["fill", "wrap", "symm"]))
    fill = draw(st.sampled_from([0.0, 1.5, -2.0]))
    return (h, w), (kh, kw), mode, boundary, fill, draw(st.integers(0, 2**31)), draw(
        st.sampled_from([np.float32, np.float64])), draw(st.booleans())


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(images())
def test_property_images_every_method_matches_scipy_and_the_reference(case):
    signal = pytest.importorskip("scipy.signal")
    shape, kshape, mode, boundary, fill, seed, dtype, convolve = case
    rng = np.random.default_rng(seed)
    a, k = rng.standard_normal(shape).astype(dtype), rng.standard_normal(kshape).astype(dtype)
    if mode == "valid" and not (all(i >= j for i, j in zip(shape, kshape))
                                or all(j >= i for i, j in zip(shape, kshape))):
        return
    fn = fastcorr.convolve2d if convolve else fastcorr.correlate2d
    bfn = fastcorr.convolve2d_backward if convolve else fastcorr.correlate2d_backward
    sp = signal.convolve2d if convolve else signal.correlate2d
    expected = sp(a.astype(np.float64), k.astype(np.float64), mode, boundary, fill)
    g = rng.standard_normal(expected.shape).astype(dtype)
    ref_grads = bfn(g, a, k, mode, boundary, fill, backend="reference")
    scale = float((np.abs(a).max() + abs(fill)) * np.abs(k).sum() + 1) * max(
        1.0, float(np.abs(g).max()))
    terms = k.size * max(1, g.size)
    for method in ("direct", "fft", "auto"):
        got = fn(a, k, mode, boundary, fill, method=method)
        _compare(got, expected, dtype, method, scale, terms, (method, case))
        for got_g, exp_g in zip(bfn(g, a, k, mode, boundary, fill, method=method), ref_grads):
            _compare(got_g, exp_g, dtype, method, scale, terms, (method, "grad", case))


@pytest.mark.slow
def test_the_property_runs_made_over_ten_thousand_comparisons():
    """Runs after the property tests above (same module, in order)."""
    assert COUNTS["comparisons"] >= 10_000, COUNTS


# --------------------------------------------------------------------------- fuzzing

JUNK = [None, 0, -1, 1, 2**70, -(2**70), 1.5, float("nan"), float("inf"), "x", "", b"",
        [], [1], [[1, 2], [3]], (1, 2, 3), {"a": 1}, object(), np.ones(3), np.ones((2, 2)),
        np.ones((0, 3)), np.ones((1, 1, 1, 1)), np.array(["a"]), np.ones(2, complex), True,
        np.int64(3), np.float32(2), slice(1)]


def _arrays(rng):
    choices = [np.ones((5, 6)), rng.standard_normal((3, 4, 7, 6)), np.ones((2, 2)),
               rng.standard_normal((4, 2, 3, 3)), np.ones((3,)), np.ones((0, 0)),
               np.ones((4, 4), np.float32), np.arange(12).reshape(3, 4),
               np.ones((3, 4, 7, 6))[:, :, ::2], np.ones((2, 2), bool)]
    return choices


def _fuzz_calls(rng):
    arrays = _arrays(rng)
    pool = JUNK + arrays

    def pick():
        return pool[int(rng.integers(len(pool)))]

    def arr():
        return arrays[int(rng.integers(len(arrays)))]

    calls = [
        lambda: fastcorr.correlate2d(arr(), arr(), pick()),
        lambda: fastcorr.correlate2d(arr(), arr(), "same", pick(), pick()),
        lambda: fastcorr.convolve2d(arr(), pick(), method=pick()),
        lambda: fastcorr.corr2d(arr(), arr(), backend=pick()),
        lambda: fastcorr.conv2d(arr(), arr(), pick(), stride=pick()),
        lambda: fastcorr.conv2d(arr(), arr(), padding=pick(), dilation=pick(), groups=pick()),
        lambda: fastcorr.conv2d(arr(), arr(), padding_mode=pick(), out=pick()),
        lambda: fastcorr.conv2d_backward(arr(), arr(), arr(), output_mask=pick()),
        lambda: fastcorr.conv2d_input(pick(), arr(), arr(), stride=pick()),
        lambda: fastcorr.conv2d_weight(arr(), pick(), arr(), padding=pick()),
        lambda: fastcorr.correlate2d_backward(arr(), arr(), arr(), pick(), pick()),
        lambda: fastcorr.batch.correlate_stack(arr(), arr(), chunk=pick(), streams=pick()),
        lambda: fastcorr.batch.conv2d_stream(arr(), arr(), progress=pick(), chunk=pick()),
        lambda: fastcorr.choose_method(arr(), arr(), pick()),
        lambda: fastcorr.set_num_threads(pick()),
    ]
    return calls, arrays


def _fuzz(cases, seed):
    rng = np.random.default_rng(seed)
    calls, arrays = _fuzz_calls(rng)
    snapshots = [a.copy() for a in arrays]
    outcomes = {"ok": 0, "refused": 0}
    top = fastcorr.threads.max_threads()
    try:
        for _ in range(cases):
            call = calls[int(rng.integers(len(calls)))]
            try:
                call()
                outcomes["ok"] += 1
            except (ValueError, TypeError):
                outcomes["refused"] += 1
    finally:
        fastcorr.set_num_threads(top)
    for a, before in zip(arrays, snapshots):
        np.testing.assert_array_equal(a, before)  # no input mutated
    return outcomes


def test_argument_fuzzing_gives_value_or_type_errors_only():
    outcomes = _fuzz(1500, seed=1)
    assert outcomes["refused"] > 100 and outcomes["ok"] >= 1, outcomes


@pytest.mark.slow
def test_argument_fuzzing_long():
    outcomes = _fuzz(20000, seed=2)
    assert sum(outcomes.values()) == 20000
