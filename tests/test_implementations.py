"""Every implementation of the CPU backend's tables, forced by name, against the reference.

The tests are parametrised over the tables' names (``fastcorr.cpu.TABLES``), so a new
implementation is tested as soon as it is in a table; each asserts that the implementation it
names ran (``fastcorr.trace``), and forcing an unknown name or a plan an implementation cannot
compute is an error. Which implementations are covered does not depend on the machine.
"""

import zlib

import numpy as np
import pytest

import fastcorr
from fastcorr import _select
from fastcorr.cpu import TABLES
from fastcorr.cpu import _taps_source
from helpers import implementation_params

DTYPES = (np.float64, np.float32)


def random_layer(rng, depthwise, *, max_k=9, pointwise=False):
    """Random conv2d operands and arguments (possibly invalid: callers skip ValueErrors);
    ``pointwise``: 1x1 kernels without padding."""
    groups = int(rng.integers(1, 4))
    c_in_g = 1 if depthwise else int(rng.integers(1, 4))
    c_out_g = 1 if rng.random() < 0.5 else int(rng.integers(1, 4))
    kh, kw = (1, 1) if pointwise else (int(k) for k in rng.integers(1, max_k + 1, 2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
    stride = (1, 1) if rng.random() < 0.5 else tuple(int(s) for s in rng.integers(1, 3, 2))
    h, w = (int(s) for s in rng.integers(3, 24, 2))
    kwargs = dict(stride=stride, dilation=dilation, groups=groups,
                  padding=(0, 0) if pointwise else (int(rng.integers(0, 4)),
                                                    int(rng.integers(0, 4))),
                  padding_mode=str(rng.choice(["zeros", "reflect", "replicate", "circular"])))
    n = int(rng.integers(1, 3))
    x = rng.standard_normal((n, groups * c_in_g, h, w))
    weight = rng.standard_normal((groups * c_out_g, c_in_g, kh, kw))
    bias = rng.standard_normal(groups * c_out_g) if rng.random() < 0.5 else None
    return x, weight, bias, kwargs


def _plan(x, weight, bias, kwargs):
    from fastcorr.functional import LayerOperands

    return LayerOperands(x, weight, bias, kwargs["stride"], kwargs["padding"],
                         kwargs["dilation"], kwargs["groups"], kwargs["padding_mode"]).plan


def _compute(operation, x, weight, bias, g, kwargs):
    if operation == "forward":
        return fastcorr.conv2d(x, weight, bias, **kwargs)
    mask = (operation == "grad_input", operation == "grad_weight", False)
    grads = fastcorr.conv2d_backward(g, x, weight, output_mask=mask, **kwargs)
    return grads[0] if mask[0] else grads[1]


def _bound(operation, name, x, weight, g, expected_abs, dtype):
    """Direct: ``(terms + 2) eps`` times the sum of the terms' magnitudes; FFT: a global
    ``eps * log2 size`` bound on the scale of the inputs (see fastcorr.cpu.fft)."""
    eps = np.finfo(dtype).eps
    terms = {"forward": weight[0].size, "grad_input": weight[:, 0].size * weight.shape[0],
             "grad_weight": g.shape[0] * g.shape[2] * g.shape[3]}[operation] + 2
    if name == "fft":
        scale = {"forward": np.abs(x).max() * np.abs(weight).sum(axis=(1, 2, 3)).max(),
                 "grad_input": np.abs(g).max() * np.abs(weight).sum(),
                 "grad_weight": np.abs(x).max() * np.abs(g).sum()}[operation]
        return 64 * eps * np.log2(4 * x[0, 0].size + 16) * scale + terms * eps * expected_abs
    return terms * eps * expected_abs


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("operation, name", implementation_params())
def test_every_implementation_matches_the_reference(operation, name, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{operation}-{name}".encode()))
    checked = 0
    for trial in range(120):
        # (most plans the pointwise implementation sees are its own: 1x1, no padding)
        x, weight, bias, kwargs = random_layer(rng, depthwise=trial % 2 == 0,
                                               pointwise=name == "pointwise" and trial % 4 > 0)
        try:
            plan = _plan(x, weight, bias, kwargs)
        except ValueError:
            continue  # e.g. reflect padding as large as the input: checked elsewhere
        if TABLES[operation][name].why_not(plan) is not None:
            with pytest.raises(ValueError, match="cannot compute"), \
                    _select.force("cpu", **{operation: name}):
                _compute(operation, x.astype(dtype), weight.astype(dtype), bias,
                         np.zeros(plan.out_shape, dtype), kwargs)
            continue
        g = rng.standard_normal(plan.out_shape)
        x_, w_, g_ = (a.astype(dtype) for a in (x, weight, g))
        b_ = None if bias is None else bias.astype(dtype)
        with _select.force("cpu", **{operation: name}), fastcorr.trace() as ran:
            got = _compute(operation, x_, w_, b_, g_, kwargs)
        assert [r.implementation for r in ran if r.operation == operation] == [name]
        with fastcorr.trace():
            expected = _compute(operation, x_, w_, b_, g_, dict(kwargs, backend="reference"))
            expected_abs = _compute(operation, np.abs(x_), np.abs(w_),
                                    None if b_ is None else np.abs(b_), np.abs(g_),
                                    dict(kwargs, backend="reference"))
        assert got.dtype == np.dtype(dtype) and got.shape == expected.shape
        bound = _bound(operation, name, x_, w_, g_, expected_abs, dtype)
        assert np.all(np.abs(got - expected) <= bound), (operation, name, kwargs)
        checked += 1
    assert checked >= 10


def test_forcing_an_unknown_name_or_operation_is_an_error():
    with pytest.raises(ValueError, match="no implementation named 'unrolled'"):
        with _select.force("cpu", forward="unrolled"):
            pass
    with pytest.raises(ValueError, match="unknown operation"):
        with _select.force("cpu", backward="rows"):
            pass
    with pytest.raises(ValueError, match="backend"):
        with _select.force("gpu", forward="rows"):
            pass


def test_the_tables_name_their_implementations():
    assert TABLES["forward"].names() == ("rows", "taps", "gemm", "pointwise", "fft")
    assert set(TABLES) == {"forward", "grad_input", "grad_weight", "grad_bias"}
    for table in TABLES.values():
        for impl in table.implementations.values():
            assert impl.method in ("direct", "fft")


@pytest.mark.parametrize("layer, expected", [
    (((1, 1, 40, 40), (1, 1, 3, 3), {}), "taps"),          # a single-channel image
    (((2, 8, 20, 20), (8, 1, 5, 5), dict(groups=8)), "taps"),  # depthwise
    (((2, 8, 20, 20), (16, 8, 3, 3), {}), "gemm"),         # dense
    (((2, 2, 20, 20), (2, 2, 1, 1), {}), "rows"),          # too thin for BLAS
    (((2, 32, 9, 9), (64, 32, 1, 1), dict(stride=2)), "pointwise"),  # a 1x1 layer
    (((2, 32, 9, 9), (64, 32, 1, 1), dict(padding=1)), "gemm"),      # padded: im2col
    (((1, 1, 40, 40), (1, 1, 3, 3), dict(stride=(1, 2))), "taps"),  # column stride too
    (((2, 4, 20, 20), (4, 2, 3, 3), dict(groups=2)), "rows"),   # two channels a group
])
def test_direct_choice_by_layer_shape(layer, expected):
    input_shape, weight_shape, kwargs = layer
    x, w = np.ones(input_shape), np.ones(weight_shape)
    with fastcorr.trace() as ran:
        fastcorr.conv2d(x, w, method="direct", **kwargs)
    assert [r.implementation for r in ran] == [expected]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_taps_and_rows_agree_bitwise_on_every_height_and_width(dtype):
    """The width-class kernels sum in the rows kernel's order: identical, not close, at every
    output height (blocks of 4 rows, chunks, the last block moved up), every width class
    (narrow and wide), and every boundary rule and padding (interior, strips, padded copy)."""
    rng = np.random.default_rng(7)
    for h in range(1, 42, 3):
        kh, kw = int(rng.integers(1, min(h, 6) + 1)), int(rng.integers(1, 14))
        w = int(rng.integers(kw, kw + 30))
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        pad = (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
        if mode == "reflect":
            pad = (min(pad[0], h - 1), min(pad[1], w - 1))
        kwargs = dict(padding=pad, dilation=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                      stride=(int(rng.integers(1, 3)), 1), groups=2, padding_mode=mode)
        x = rng.standard_normal((2, 2, h, w)).astype(dtype)
        weight = rng.standard_normal((4, 1, kh, kw)).astype(dtype)
        bias = rng.standard_normal(4).astype(dtype)
        results = []
        for name in ("rows", "taps"):
            try:
                with _select.force("cpu", forward=name):
                    results.append(fastcorr.conv2d(x, weight, bias, **kwargs))
            except ValueError as exc:  # the dilated kernel is larger than the padded input
                assert "larger than the padded input" in str(exc)
                break
        if len(results) == 2:
            assert np.array_equal(results[0], results[1]), (h, kh, kw, kwargs)


def test_the_generated_kernels_are_current():
    """``_taps_generated.py`` is what its generator writes (run ``python -m
    fastcorr.cpu._taps_source`` after changing the generator)."""
    assert _taps_source.TARGET.read_text() == _taps_source.source()


def test_width_classes_are_bounded():
    from fastcorr.cpu import _taps_generated, taps

    assert len(_taps_generated.KERNELS) == _taps_source.NARROW + 1
    assert {taps.width_class(kw) for kw in range(1, 300)} == set(_taps_generated.KERNELS)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kwargs", [{}, dict(stride=2), dict(stride=(1, 3), groups=2),
                                    dict(groups=2, dilation=3, padding_mode="reflect")])
def test_pointwise_matches_torch(kwargs, dtype):
    """1x1 layers as matrix products: forward and both gradients against torch (float64)."""
    from helpers import assert_within, torch_conv2d
    from test_conv2d import error_bound
    from test_gradients import grad_bounds, torch_grads

    rng = np.random.default_rng(7)
    groups = kwargs.get("groups", 1)
    x = rng.standard_normal((3, 32, 11, 10)).astype(dtype)
    w = rng.standard_normal((48, 32 // groups, 1, 1)).astype(dtype)
    b = rng.standard_normal(48).astype(dtype)
    with fastcorr.trace() as ran:
        y = fastcorr.conv2d(x, w, b, **kwargs)
        g = rng.standard_normal(y.shape).astype(dtype)
        grads = fastcorr.conv2d_backward(g, x, w, **kwargs)
    assert {r.implementation for r in ran if r.operation != "grad_bias"} == {"pointwise"}
    assert_within(y, torch_conv2d(x, w, b, **kwargs), error_bound(x, w, b, dtype, **kwargs),
                  "forward")
    for name, got, expected, bound in zip(("input", "weight", "bias"), grads,
                                          torch_grads(x, w, g, **kwargs),
                                          grad_bounds(x, w, g, dtype, **kwargs)):
        assert_within(got, expected, bound, f"grad_{name}")
