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
WINOGRAD = ("winograd", "winograd4")


def random_layer(rng, depthwise, *, max_k=9, pointwise=False, winograd=False, strided=False):
    """Random conv2d operands and arguments (possibly invalid: callers skip ValueErrors);
    ``pointwise``: 1x1 kernels without padding; ``winograd``: 3x3 kernels at unit strides
    and dilations, padding up to 2; ``strided``: strides of 2 or 3 on at least one axis, zero
    padding, unit dilations (the "phases" input gradient's layers)."""
    groups = int(rng.integers(1, 4))
    c_in_g = 1 if depthwise else int(rng.integers(1, 4))
    c_out_g = 1 if rng.random() < 0.5 else int(rng.integers(1, 4))
    kh, kw = (1, 1) if pointwise else (int(k) for k in rng.integers(1, max_k + 1, 2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
    stride = (1, 1) if rng.random() < 0.5 else tuple(int(s) for s in rng.integers(1, 3, 2))
    max_pad = 4
    if winograd:
        kh, kw, dilation, stride, max_pad = 3, 3, (1, 1), (1, 1), 3
    if strided:
        dilation = (1, 1)
        stride = [(2, 2), (2, 1), (1, 2), (3, 2), (2, 3)][int(rng.integers(0, 5))]
    h, w = (int(s) for s in rng.integers(3, 24, 2))
    kwargs = dict(stride=stride, dilation=dilation, groups=groups,
                  padding=(0, 0) if pointwise else (int(rng.integers(0, max_pad)),
                                                    int(rng.integers(0, max_pad))),
                  padding_mode="zeros" if strided else
                  str(rng.choice(["zeros", "reflect", "replicate", "circular"])))
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


def winograd_bound(operation, x, weight, g, groups, dtype):
    """An a-priori bound on the rounding error of Winograd's F(2x2, 3x3) (without the bias).

    A transformed input tile entry sums at most 4 samples (so it is at most 4 max|x|), a
    transformed kernel entry is at most sum|g|, and an output sums 9 of the 16 products: each
    output is at most ``36 max|x| sum|w_k|``, with ``n + 8`` roundings on its way (``n``
    products summed per component). The input gradient is the forward of the output gradient
    with the transposed kernel. For the weight gradient, a transformed output-gradient tile
    entry is at most 4 max|g|, the sums run over the ``T`` tiles, and ``G^T . G`` at most
    quadruples: ``64 * 16 max|g| max|x|`` per tile, ``T + 16`` roundings.

    F(4x4, 3x3) ("winograd4") is held to the same bound, which is what the issue asks of it
    (the tolerance the F(2x2) tests already use): its errors measured at most 0.1% of it on
    32 channels (its own a-priori bound would be hundreds of times looser).
    """
    eps = np.finfo(dtype).eps
    c_out, c_in_g = weight.shape[:2]
    if operation == "grad_weight":
        tiles = g.shape[0] * -(-g.shape[2] // 2) * -(-g.shape[3] // 2)
        return 1024 * (tiles + 16) * eps * np.abs(g).max() * np.abs(x).max()
    if operation == "forward":
        scale = np.abs(x).max() * np.abs(weight).sum(axis=(1, 2, 3))  # per output channel
        n = 16 * c_in_g
        return 36 * (n + 8) * eps * scale[None, :, None, None]
    # input gradient: per input channel, the sum over its group's output channels
    per_group = np.abs(weight).reshape(groups, c_out // groups, c_in_g, 9).sum(axis=(1, 3))
    n = 16 * (c_out // groups)
    return 36 * (n + 8) * eps * np.abs(g).max() * per_group.reshape(-1)[None, :, None, None]


def _bound(operation, name, x, weight, g, expected_abs, dtype, groups):
    """Direct: ``(terms + 2) eps`` times the sum of the terms' magnitudes; FFT: a global
    ``eps * log2 size`` bound on the scale of the inputs (see fastcorr.cpu.fft); Winograd:
    :func:`winograd_bound`."""
    eps = np.finfo(dtype).eps
    terms = {"forward": weight[0].size, "grad_input": weight[:, 0].size * weight.shape[0],
             "grad_weight": g.shape[0] * g.shape[2] * g.shape[3]}[operation] + 2
    if name in WINOGRAD:
        return (winograd_bound(operation, x, weight, g, groups, dtype)
                + terms * eps * expected_abs)
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
                                               pointwise=name == "pointwise" and trial % 4 > 0,
                                               winograd=name in WINOGRAD and trial % 4 > 0,
                                               strided=name == "phases" and trial % 4 > 0)
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
        bound = _bound(operation, name, x_, w_, g_, expected_abs, dtype, kwargs["groups"])
        assert np.all(np.abs(got - expected) <= bound), (operation, name, kwargs)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("operation, function", [("forward", "_correlate_images"),
                                                 ("grad_input", "_grad_input_images"),
                                                 ("grad_weight", "_grad_weight_images")])
def test_gemm_in_blocks_of_whole_images(monkeypatch, operation, function, dtype):
    """A dense layer on small planes: im2col gathers several whole images a block (here two,
    two and one: a budget of two images' patches) and matches the reference; with blocks of
    one image's rows (a smaller MIN_POSITIONS) too."""
    from fastcorr import config
    from fastcorr.cpu import gemm

    calls = []
    original = getattr(gemm, function)
    monkeypatch.setattr(gemm, function, lambda *args: calls.append(1) or original(*args))
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 4, 9, 9))
    w = rng.standard_normal((6, 4, 3, 3))
    b = rng.standard_normal(6)
    g = rng.standard_normal((5, 6, 9, 9))
    kwargs = dict(padding=1, stride=1, dilation=1, groups=1, padding_mode="reflect")
    monkeypatch.setattr(config, "CPU_IM2COL_BLOCK_ELEMENTS", 2 * 36 * 81 + 5)
    plan = _plan(x, w, b, kwargs)
    assert gemm._images_per_block(plan) == 2
    assert gemm._by_images(plan, gemm.MIN_POSITIONS_FORWARD)  # 7 rows of 9: 63 positions
    expected = _compute(operation, x, w, b, g, dict(kwargs, backend="reference"))
    expected_abs = _compute(operation, np.abs(x), np.abs(w), np.abs(b), np.abs(g),
                            dict(kwargs, backend="reference"))
    bound = _bound(operation, "gemm", x, w, g, expected_abs, dtype, 1)
    operands = [a.astype(dtype) for a in (x, w, b, g)]
    with _select.force("cpu", **{operation: "gemm"}), fastcorr.trace() as ran:
        got = _compute(operation, *operands, kwargs)
    assert [r.implementation for r in ran if r.operation == operation] == ["gemm"]
    assert calls == [1] and got.dtype == np.dtype(dtype)
    assert np.all(np.abs(got - expected) <= bound)
    # row blocks of 9 x 9 outputs: 81 positions
    monkeypatch.setattr(gemm, "MIN_POSITIONS", 8)
    monkeypatch.setattr(gemm, "MIN_POSITIONS_FORWARD", 8)
    with _select.force("cpu", **{operation: "gemm"}):
        rows = _compute(operation, *operands, kwargs)
    assert calls == [1] and np.all(np.abs(rows - expected) <= bound)


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
    assert TABLES["forward"].names() == ("rows", "taps", "flat", "gemm", "pointwise",
                                         "winograd", "winograd4", "fft")
    assert set(TABLES) == {"forward", "grad_input", "grad_weight", "grad_bias"}
    for table in TABLES.values():
        for impl in table.implementations.values():
            assert impl.method in ("direct", "fft", "winograd")


@pytest.mark.parametrize("layer, expected", [
    (((1, 1, 60, 60), (1, 1, 3, 3), {}), "taps"),          # a single-channel image
    (((2, 8, 20, 20), (8, 1, 5, 5), dict(groups=8)), "flat"),  # depthwise, small planes
    (((2, 8, 56, 56), (8, 1, 7, 7), dict(groups=8, padding=3)), "flat"),  # up to 56x56
    (((2, 8, 60, 60), (8, 1, 5, 5), dict(groups=8, padding=2)), "taps"),  # larger planes
    (((2, 8, 40, 40), (8, 1, 5, 5), dict(groups=8, stride=2)), "flat"),  # stride 2: phases
    (((2, 8, 20, 20), (8, 1, 5, 5), dict(groups=8, stride=(2, 1))), "taps"),  # rows only
    (((2, 8, 20, 20), (8, 1, 5, 5), dict(groups=8, stride=3)), "taps"),
    (((2, 8, 20, 20), (16, 8, 3, 3), {}), "gemm"),         # dense
    (((2, 2, 20, 20), (2, 2, 1, 1), {}), "rows"),          # too thin for BLAS
    (((2, 32, 9, 9), (64, 32, 1, 1), dict(stride=2)), "pointwise"),  # a 1x1 layer
    (((2, 32, 9, 9), (64, 32, 1, 1), dict(padding=1)), "gemm"),      # padded: im2col
    (((1, 1, 60, 60), (1, 1, 3, 3), dict(stride=(1, 2))), "flat"),  # a column stride of 2
    (((2, 4, 20, 20), (4, 2, 3, 3), dict(groups=2)), "flat"),   # two channels a group
    (((2, 32, 12, 12), (32, 4, 3, 3), dict(groups=8)), "flat"),  # ResNeXt-like groups
    (((2, 32, 12, 12), (32, 4, 3, 3), dict(groups=8, stride=2)), "flat"),
    (((2, 32, 12, 12), (32, 4, 3, 3), dict(groups=8, stride=3)), "gemm"),
    (((2, 64, 10, 10), (64, 32, 3, 3), dict(groups=2)), "gemm"),  # 32 channels a group
    (((2, 4, 20, 20), (4, 2, 1, 1), dict(groups=2)), "rows"),   # 1x1, two channels a group
])
def test_direct_choice_by_layer_shape(layer, expected):
    input_shape, weight_shape, kwargs = layer
    x, w = np.ones(input_shape), np.ones(weight_shape)
    with fastcorr.trace() as ran:
        fastcorr.conv2d(x, w, method="direct", **kwargs)
    assert [r.implementation for r in ran] == [expected]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_taps_flat_and_rows_agree_bitwise_on_every_height_and_width(dtype):
    """The width-class kernels and the flat kernel sum in the rows kernel's order: identical,
    not close, at every output height (blocks of 4 rows, chunks, the last block moved up),
    every width class (narrow and wide), and every boundary rule and padding (interior,
    strips, padded copy)."""
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
        for name in ("rows", "taps", "flat"):
            try:
                with _select.force("cpu", forward=name):
                    results.append(fastcorr.conv2d(x, weight, bias, **kwargs))
            except ValueError as exc:  # the dilated kernel is larger than the padded input
                assert "larger than the padded input" in str(exc)
                break
        if len(results) == 3:
            assert np.array_equal(results[0], results[1]), (h, kh, kw, kwargs)
            assert np.array_equal(results[0], results[2]), (h, kh, kw, kwargs)


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


#: How many times the im2col path's largest error each Winograd algorithm may make (on the
#: layer of the test below; measured: F(2x2) 0.5-1.8x, F(4x4) 2-43x).
ERROR_FACTOR = {"winograd": 4, "winograd4": 64}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("operation, name", [("forward", "winograd"), ("grad_input", "winograd"),
                                             ("grad_weight", "winograd"),
                                             ("forward", "winograd4"),
                                             ("grad_input", "winograd4"),
                                             ("grad_weight", "winograd4")])
def test_winograd_error_is_a_few_times_the_direct_error(operation, name, dtype):
    """On a layer of realistic depth (32 channels), Winograd's error against the float64
    reference stays within ERROR_FACTOR times the im2col path's (the docs state "a few
    times" for F(2x2), "tens of times" for F(4x4)), and the direct path is the one to compare
    with: every tile, row and column of the output is within the a-priori bound too."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 32, 17, 22))
    w = rng.standard_normal((32, 32, 3, 3))
    g = rng.standard_normal((2, 32, 17, 22))
    kwargs = dict(padding=1, stride=1, dilation=1, groups=1, padding_mode="zeros")
    expected = _compute(operation, x, w, None, g, dict(kwargs, backend="reference"))
    errors = {}
    for forced in ("gemm", name):
        with _select.force("cpu", **{operation: forced}), fastcorr.trace() as ran:
            got = _compute(operation, x.astype(dtype), w.astype(dtype), None, g.astype(dtype),
                           kwargs)
        assert [r.implementation for r in ran if r.operation == operation] == [forced]
        errors[forced] = np.abs(got - expected).max()
        if forced == name:
            bound = winograd_bound(operation, x.astype(dtype), w, g, 1, dtype)
            assert np.all(np.abs(got - expected) <= bound)
    assert 0 < errors[name] <= ERROR_FACTOR[name] * errors["gemm"], errors


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_auto_takes_winograd_for_stride_one_3x3_layers(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 16, 16, 16)).astype(dtype)
    w = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
    g = rng.standard_normal((2, 16, 16, 16)).astype(dtype)

    def ran_for(x, w, g, **kwargs):
        with fastcorr.trace() as ran:
            fastcorr.conv2d(x, w, padding=1, **kwargs)
            fastcorr.conv2d_backward(g if kwargs.get("groups", 1) == 1 else g[:, :w.shape[0]],
                                     x, w, padding=1, output_mask=(True, True, False), **kwargs)
        return [r.implementation for r in ran]

    # 4x4 tiles at least as many as the channels (2 x 4 x 4 = 32 for 16): F(4x4); twice as
    # many for the weight gradient
    assert ran_for(x, w, g) == ["winograd4"] * 3
    assert {r.method for r in _trace(x, w)} == {"winograd"}
    assert ran_for(x, w, g, method="direct") == ["gemm"] * 3
    # groups of 4 channels: the forward and the input gradient through "flat", the weight
    # gradient through "shifts"
    w4 = rng.standard_normal((16, 4, 3, 3)).astype(dtype)
    assert ran_for(x, w4, g, groups=4) == ["flat", "flat", "shifts"]
    assert ran_for(x[:, :, :7, :7], w, g[:, :, :7, :7]) == ["winograd"] * 3  # 8 tiles
    assert ran_for(x[:1, :, :13, :13], w, g[:1, :, :13, :13]) == ["winograd4", "winograd4",
                                                                  "winograd"]  # 16 tiles
    # a stride, a 5x5 kernel or a dilation: not Winograd's F(2x2, 3x3)
    with fastcorr.trace() as ran:
        fastcorr.conv2d(x, w, padding=1, stride=2)
        fastcorr.conv2d(x, w, padding=2, dilation=2)
        fastcorr.conv2d(x, rng.standard_normal((16, 16, 5, 5)).astype(dtype), padding=2)
    assert [r.implementation for r in ran] == ["gemm"] * 3
    # non-finite inputs take the direct sums (the transforms would turn infinities into NaN);
    # the input gradient does not read the input
    bad = x.copy()
    bad[0, 3, 5, 5] = np.inf
    assert ran_for(bad, w, g) == ["gemm", "winograd4", "gemm"]
    y = fastcorr.conv2d(bad, w, padding=1)
    assert np.isinf(y[0, :, 4:7, 4:7]).all() and np.isfinite(y[1]).all()


def _trace(x, w):
    with fastcorr.trace() as ran:
        fastcorr.conv2d(x, w, padding=1)
    return ran


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", WINOGRAD)
@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(padding=(0, 2), groups=2),
                                    dict(padding=1, padding_mode="reflect"),
                                    dict(padding=(2, 1), padding_mode="circular", groups=3),
                                    dict(padding=1, padding_mode="replicate")])
def test_winograd_matches_torch(kwargs, name, dtype):
    """Winograd's F(2x2, 3x3) and F(4x4, 3x3): forward and both gradients against torch
    (float64), output sizes of every remainder modulo 4, every boundary rule, groups, a bias,
    within the same bound."""
    from helpers import assert_within, torch_conv2d
    from test_conv2d import error_bound
    from test_gradients import torch_grads

    rng = np.random.default_rng(3)
    groups = kwargs.get("groups", 1)
    x = rng.standard_normal((2, 12 * groups, 18, 13)).astype(dtype)
    w = rng.standard_normal((12 * groups, 12, 3, 3)).astype(dtype)
    b = rng.standard_normal(12 * groups).astype(dtype)
    names = dict(forward=name, grad_input=name, grad_weight=name)
    with _select.force("cpu", **names), fastcorr.trace() as ran:  # (groups: forward "flat")
        y = fastcorr.conv2d(x, w, b, **kwargs)
        g = rng.standard_normal(y.shape).astype(dtype)
        grads = fastcorr.conv2d_backward(g, x, w, output_mask=(True, True, False), **kwargs)
    assert {r.implementation for r in ran} == set(names.values())
    full = dict(dict(stride=1, dilation=1, padding_mode="zeros"), **kwargs)
    assert_within(y, torch_conv2d(x, w, b, **kwargs),
                  winograd_bound("forward", x, w, g, groups, dtype)
                  + error_bound(x, w, b, dtype, **kwargs), "forward")
    expected = torch_grads(x, w, g, **full)
    for operation, got, want in zip(("grad_input", "grad_weight"), grads, expected):
        assert_within(got, want, winograd_bound(operation, x, w, g, groups, dtype), operation)


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_auto_takes_flat_for_depthwise_layers_on_small_planes(kernel):
    """The cost model knows "flat" (it had compared the FFT with the general row kernel's
    cost, and taken the FFT for 5x5 and 7x7 depthwise layers on 14^2-28^2 planes)."""
    x = np.ones((2, 240, 28, 28), np.float32)
    w = np.ones((240, 1, kernel, kernel), np.float32)
    with fastcorr.trace() as ran:
        fastcorr.conv2d(x, w, padding=kernel // 2, groups=240)
    assert [r.implementation for r in ran] == ["flat"]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kernel, stride, padding", [
    (5, 2, 2),          # EfficientNet's 5x5/2
    (3, (1, 2), 1),     # a column stride alone
    (2, 3, (1, 0)),     # phases no tap reaches (stride above the kernel): zeros
    (4, (3, 2), (2, 3)),
])
def test_auto_takes_flat_by_phases_for_strided_depthwise_input_gradients(kernel, stride,
                                                                         padding, dtype):
    """At strides the depthwise input gradient runs "flat" by stride phases (zero padding),
    several images a stack; it agrees with the reference within the direct bound; weights
    with an infinity take "scatter" (the phases multiply them by the frame's zeros)."""
    rng = np.random.default_rng(kernel)
    x = rng.standard_normal((5, 6, 11, 13)).astype(dtype)
    w = rng.standard_normal((6, 1, kernel, kernel)).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, groups=6)
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape).astype(dtype)
    mask = (True, False, False)
    with fastcorr.trace() as ran:
        got = fastcorr.conv2d_backward(g, x, w, output_mask=mask, **kwargs)[0]
    assert [r.implementation for r in ran] == ["flat"]
    with fastcorr.trace():
        expected = fastcorr.conv2d_backward(g, x, w, output_mask=mask, backend="reference",
                                            **kwargs)[0]
        scale = fastcorr.conv2d_backward(np.abs(g), x, np.abs(w), output_mask=mask,
                                         backend="reference", **kwargs)[0]
    terms = w[:, 0].size + 2
    assert np.all(np.abs(got - expected) <= terms * np.finfo(dtype).eps * scale)
    w[0, 0, 0, 0] = np.inf
    with fastcorr.trace() as ran:
        fastcorr.conv2d_backward(g, x, w, output_mask=mask, **kwargs)
    assert [r.implementation for r in ran] == ["scatter"]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("boundary", ["fill", "symm", "wrap"])
def test_flat_and_taps_images_with_a_fill_value_agree_bitwise_with_rows(boundary, dtype):
    """Single-channel images through "flat" and "taps": the fill value frames every plane
    (the frame is written once per range of tasks), any mode, kernels larger than the image
    (in "valid" mode, SciPy swaps them)."""
    rng = np.random.default_rng(9)
    for shape, kernel in [((7, 9), (3, 3)), ((5, 4), (6, 5)), ((12, 3), (2, 2))]:
        image = rng.standard_normal(shape).astype(dtype)
        k = rng.standard_normal(kernel).astype(dtype)
        for mode in ("full", "same", "valid"):
            results = []
            for name in ("rows", "flat", "taps"):
                with _select.force("cpu", forward=name), fastcorr.trace() as ran:
                    results.append(fastcorr.correlate2d(image, k, mode, boundary, 2.5))
                assert [r.implementation for r in ran] == [name]
            # (with a fill other than zero, a product of the fill hoisted out of a loop would
            # be added without the fused multiply-add the others make of it)
            assert np.array_equal(results[0], results[1]), (shape, kernel, mode)
            assert np.array_equal(results[0], results[2]), (shape, kernel, mode)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_flat_shared_frames_agree_bitwise_with_rows(dtype):
    """At unit strides with zero padding, neighbouring rows and stacked images share their
    padding (a smaller block than the padded plane); padding past what the kernel reaches,
    one-sided and uneven padding and dilations must still read zeros only (outputs in the
    padding may share a place), and the last image's bottom padding lies past the stack's
    blocks (with a fill value: ``test_flat_and_taps_images_with_a_fill_value_agree_bitwise_with_rows``)."""
    from fastcorr.cpu import _indexing

    rng = np.random.default_rng(21)
    for h, w, kernel, kwargs in [(7, 7, (3, 3), dict(padding=1)),
                                 (14, 9, (7, 7), dict(padding=3)),
                                 (6, 8, (3, 3), dict(padding=(4, 5))),
                                 (9, 7, (2, 4), dict(padding=(0, 3))),
                                 (8, 10, (3, 3), dict(padding=(2, 1), dilation=(2, 3))),
                                 (5, 5, (5, 1), dict(padding=(4, 0)))]:
        x = rng.standard_normal((5, 3, h, w)).astype(dtype)
        wt = rng.standard_normal((3, 1) + kernel).astype(dtype)
        b = rng.standard_normal(3).astype(dtype)
        plan = _plan(x, wt, b, dict(dict(stride=1, dilation=1, groups=3, padding_mode="zeros"),
                                    **kwargs))
        rows, cols = _indexing.shared_frame(plan)
        padded_rows, padded_cols = _indexing.phase_extent(plan)[:2]
        assert rows * cols <= padded_rows * padded_cols
        results = []
        for name in ("rows", "flat"):
            with _select.force("cpu", forward=name), fastcorr.trace() as ran:
                results.append(fastcorr.conv2d(x, wt, b, groups=3, **kwargs))
            assert [r.implementation for r in ran] == [name]
        assert np.array_equal(results[0], results[1]), (h, w, kernel, kwargs)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
def test_flat_stacks_of_images_agree_bitwise_with_rows(mode):
    """"flat" stacks several images' planes of one channel in a task: stacks of every fill
    (5 images in stacks of 2, 2 and 1, at unit strides and with stride phases; 5 in one stack
    of up to 12), strides and dilations."""
    from fastcorr.cpu import _indexing, flat

    rng = np.random.default_rng(4)
    for h, kwargs in [(20, dict(padding=1)), (7, dict(padding=2, dilation=2)),
                      (9, dict(padding=(1, 2), stride=(1, 2))), (13, dict(padding=2, stride=2)),
                      (14, dict(padding=(0, 3), stride=(3, 2), dilation=(2, 1))),
                      (40, dict(padding=1, stride=2))]:
        x = rng.standard_normal((5, 6, h, h)).astype(np.float32)
        w = rng.standard_normal((12, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(12).astype(np.float32)
        plan = _plan(x, w, b, dict(dict(stride=1, dilation=1, groups=6, padding_mode=mode),
                                   **kwargs))
        _, _, phase_rows, phase_cols = _indexing.phase_extent(plan)
        assert 1 < flat.STACK_SAMPLES // (phase_rows * phase_cols)  # several images a stack
        results = []
        for name in ("rows", "flat"):
            with _select.force("cpu", forward=name):
                results.append(fastcorr.conv2d(x, w, b, groups=6, padding_mode=mode, **kwargs))
        assert np.array_equal(results[0], results[1]), (h, kwargs)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_flat_grouped_layers_agree_bitwise_with_rows(dtype):
    """"flat" with several input channels per group (ResNeXt-like): every group's planes in
    one buffer, the taps of every channel in order, bitwise the rows kernel on random
    layers (groups, channel multipliers, kernels, strides, dilations, boundary rules)."""
    rng = np.random.default_rng(12)
    checked = 0
    for _ in range(40):
        groups, c_in_g, c_out_g = (int(v) for v in rng.integers(1, 5, 3))
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        h, w = (int(v) for v in rng.integers(4, 30, 2))
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        kwargs = dict(groups=groups, padding_mode=mode,
                      padding=(int(rng.integers(0, kh)), int(rng.integers(0, kw))),
                      stride=tuple(int(v) for v in rng.integers(1, 4, 2)),
                      dilation=tuple(int(v) for v in rng.integers(1, 3, 2)))
        x = rng.standard_normal((int(rng.integers(1, 5)), groups * c_in_g, h, w)).astype(dtype)
        wt = rng.standard_normal((groups * c_out_g, c_in_g, kh, kw)).astype(dtype)
        b = rng.standard_normal(groups * c_out_g).astype(dtype)
        results = []
        try:
            for name in ("rows", "flat"):
                with _select.force("cpu", forward=name), fastcorr.trace() as ran:
                    results.append(fastcorr.conv2d(x, wt, b, **kwargs))
                assert [r.implementation for r in ran] == [name]
        except ValueError as exc:  # reflect padding as large as the input, and the like
            assert "padding" in str(exc) or "larger than" in str(exc), exc
            continue
        assert np.array_equal(results[0], results[1]), kwargs
        checked += 1
    assert checked >= 25


def test_buffers_and_results_start_on_64_byte_boundaries(monkeypatch):
    """Every kernel's working buffers (the pool's per-thread scratch) and the results the
    host allocates, from 1 KiB on, start on a cache line (``fastcorr._memory``): NumPy's own
    16-byte alignment had left a vector loop's sums 16 bytes off a 32-byte boundary in some
    processes and not in others (the same weight gradient 1.1-1.2x slower there; 2-3.6x in
    its loop)."""
    from fastcorr import _memory
    from fastcorr.cpu import _pool

    for shape, dtype in [(256, np.float32), ((30, 5), np.float64), ((2, 30, 70), np.uint8),
                         (np.int64(300), "f4"), (3, np.float64), (0, "f4")]:
        a = _memory.empty(shape, dtype)
        if a.nbytes >= _memory.MIN_ALIGNED_BYTES:
            assert a.ctypes.data % 64 == 0
        assert a.dtype == np.dtype(dtype) and a.flags.c_contiguous
        assert a.shape == ((int(shape),) if np.ndim(shape) == 0 else shape)
        assert not _memory.zeros(shape, dtype).any()
    seen = []
    run = _pool.run

    def checked(kernel, n_tasks, *args, scratch=None, **kwargs):
        if scratch is not None:
            made = scratch()
            seen.extend(made if isinstance(made, tuple) else (made,))
        return run(kernel, n_tasks, *args, scratch=scratch, **kwargs)

    monkeypatch.setattr(_pool, "run", checked)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 8, 13, 13)).astype(np.float32)
    results = [fastcorr.correlate2d(x[0, 0], x[0, 1, :5, :5], "same")]
    for w, kwargs, names in [
            (rng.standard_normal((8, 1, 3, 3)), dict(groups=8, padding=1),
             dict(forward="flat", grad_input="flat", grad_weight="planes")),
            (rng.standard_normal((8, 1, 5, 5)), dict(groups=8, padding=2, stride=2),
             dict(forward="flat", grad_input="flat", grad_weight="planes")),
            (rng.standard_normal((8, 8, 3, 3)), dict(padding=1),
             dict(forward="winograd", grad_input="winograd", grad_weight="winograd")),
            (rng.standard_normal((8, 8, 3, 3)), dict(padding=1),
             dict(forward="winograd4", grad_input="winograd4", grad_weight="winograd4")),
            (rng.standard_normal((8, 1, 3, 3)), dict(groups=8, padding=1),
             dict(forward="taps", grad_input="taps", grad_weight="rows")),
            (rng.standard_normal((8, 8, 3, 3)), dict(padding=1),
             dict(forward="gemm", grad_input="gemm", grad_weight="gemm"))]:
        w = w.astype(np.float32)
        with _select.force("cpu", **names), fastcorr.trace() as ran:
            y = fastcorr.conv2d(x, w, **kwargs)
            results += [y] + list(fastcorr.conv2d_backward(
                np.ones_like(y), x, w, output_mask=(True, True, False), **kwargs)[:2])
        assert {r.implementation for r in ran} == set(names.values())
    assert len(seen) > 8
    large = [a for a in seen + results if a.nbytes >= _memory.MIN_ALIGNED_BYTES]
    assert len(large) > 8 and all(a.ctypes.data % 64 == 0 for a in large)


def _check_gradient(name, x, weight, kwargs, rng, dtype, operation="grad_weight"):
    """Implementation ``name``'s gradient (``operation``) of the layer against the reference,
    within the direct sums' bound; returns the plan, or None for an invalid layer or one
    ``name`` cannot compute."""
    try:
        plan = _plan(x, weight, None, kwargs)
    except ValueError:
        return None
    if TABLES[operation][name].why_not(plan) is not None:
        return None
    g = rng.standard_normal(plan.out_shape)
    x_, w_, g_ = (a.astype(dtype) for a in (x, weight, g))
    with _select.force("cpu", **{operation: name}), fastcorr.trace() as ran:
        got = _compute(operation, x_, w_, None, g_, kwargs)
    assert [r.implementation for r in ran if r.operation == operation] == [name]
    reference = dict(kwargs, backend="reference")
    expected = _compute(operation, x_, w_, None, g_, reference)
    expected_abs = _compute(operation, np.abs(x_), np.abs(w_), None, np.abs(g_),
                            reference)
    bound = _bound(operation, name, x_, w_, g_, expected_abs, dtype, kwargs["groups"])
    assert np.all(np.abs(got - expected) <= bound), kwargs
    return plan


def _spy_on_bands(monkeypatch):
    """Record what each call of the banded weight gradient returned (None: it fell back)."""
    from fastcorr.cpu import depthwise

    returned = []
    original = depthwise._grad_weight_in_bands

    def spy(*args):
        returned.append(original(*args))
        return returned[-1]

    monkeypatch.setattr(depthwise, "_grad_weight_in_bands", spy)
    return returned


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_planes_weight_gradient_in_bands_matches_the_reference(monkeypatch, dtype):
    """The "planes" weight gradient of large planes sums bands of BAND_ROWS output rows laid
    out with their padded input rows (depthwise.lay_out_bands): here every plane of more than
    BAND_ROWS output rows is cut into bands, and each image is a slab of its own (the slabs'
    sums added), on random depthwise layers of every boundary rule, stride and dilation."""
    from fastcorr.cpu import depthwise

    monkeypatch.setattr(depthwise, "BAND_MIN_PIXELS", 0)
    monkeypatch.setattr(depthwise, "BAND_SLAB_BYTES", 1)
    returned = _spy_on_bands(monkeypatch)
    rng = np.random.default_rng(31)
    checked = 0
    for _ in range(60):
        x, weight, _, kwargs = random_layer(rng, depthwise=True)
        try:
            if _plan(x, weight, None, kwargs).out_shape[2] <= depthwise.BAND_ROWS:
                continue  # not cut
        except ValueError:
            continue
        del returned[:]
        _check_gradient("planes", x, weight, kwargs, rng, dtype)
        assert len(returned) == 1 and returned[0] is not None
        checked += 1
    assert checked >= 10


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("stride", [1, 2])
def test_planes_weight_gradient_in_bands_falls_back_on_infinities(monkeypatch, stride):
    """An infinity in the input rows the last band reads past the output (where the band's
    output gradient is zeros) makes a NaN the true sums do not have: that result is computed
    again over whole planes, which gives the reference's sums."""
    from fastcorr.cpu import depthwise

    monkeypatch.setattr(depthwise, "BAND_MIN_PIXELS", 0)
    returned = _spy_on_bands(monkeypatch)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 21, 19))
    x[1, 2, 20, 5] = np.inf  # the last row: past the last band's outputs at both strides
    w = rng.standard_normal((3, 1, 3, 3))
    size = ((21 - 3) // stride + 1, (19 - 3) // stride + 1)
    g = rng.standard_normal((2, 3) + size)
    expected = fastcorr.conv2d_backward(g, x, w, groups=3, stride=stride, backend="reference")[1]
    with _select.force("cpu", grad_weight="planes"), fastcorr.trace() as ran:
        got = fastcorr.conv2d_backward(g, x, w, groups=3, stride=stride)[1]
    assert [r.implementation for r in ran if r.operation == "grad_weight"] == ["planes"]
    assert returned == [None]  # the bands' result had a NaN: whole planes computed it
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_planes_weight_gradient_of_a_large_plane_runs_in_bands(monkeypatch, dtype):
    """At the shipped threshold: planes of more than BAND_MIN_PIXELS padded pixels, a single
    image (as correlate2d_backward has) and a strided, reflect-padded layer with a channel
    multiplier."""
    returned = _spy_on_bands(monkeypatch)
    rng = np.random.default_rng(5)
    for shape, kernel, kwargs in [((1, 1, 300, 290), (1, 1, 5, 5), dict(padding=(2, 2))),
                                  ((2, 2, 270, 275), (4, 1, 3, 3),
                                   dict(stride=(2, 2), padding=(1, 1), groups=2,
                                        padding_mode="reflect"))]:
        kwargs = dict(dict(stride=(1, 1), dilation=(1, 1), groups=1, padding_mode="zeros"),
                      **kwargs)
        del returned[:]
        assert _check_gradient("planes", rng.standard_normal(shape),
                                      rng.standard_normal(kernel), kwargs, rng, dtype)
        assert len(returned) == 1 and returned[0] is not None


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_shifts_weight_gradient_in_slabs_matches_the_reference(monkeypatch, dtype):
    """"shifts" lays a slab of images out at a time (here one image a slab, the slabs' sums
    added in order), on random dense and grouped layers of every boundary rule, stride and
    dilation."""
    from fastcorr.cpu import shifts

    monkeypatch.setattr(shifts, "SLAB_BYTES", 1)
    rng = np.random.default_rng(41)
    checked = 0
    for _ in range(40):
        x, weight, _, kwargs = random_layer(rng, depthwise=False)
        checked += _check_gradient("shifts", x, weight, kwargs, rng, dtype) is not None
    assert checked >= 10


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_phases_input_gradient_in_slabs_matches_the_reference(monkeypatch, dtype):
    """"phases" computes a slab of images at a time (here one image a slab) on random strided
    dense, grouped and depthwise layers; its phases' kernels of one to nine taps, and phases
    no tap reaches (1x1 kernels at stride 2), give zeros."""
    from fastcorr.cpu import phases

    monkeypatch.setattr(phases, "SLAB_BYTES", 1)
    rng = np.random.default_rng(43)
    checked = 0
    for trial in range(40):
        x, weight, _, kwargs = random_layer(rng, depthwise=trial % 3 == 0, strided=True,
                                            pointwise=trial % 5 == 0)
        checked += _check_gradient("phases", x, weight, kwargs, rng, dtype,
                                   operation="grad_input") is not None
    assert checked >= 20


@pytest.mark.parametrize("layer, expected", [
    (((2, 32, 12, 12), (32, 4, 3, 3), dict(groups=8, stride=2, padding=1)), "phases"),
    (((2, 16, 13, 11), (16, 8, 5, 5), dict(groups=2, stride=(2, 1), padding=2)), "phases"),
    (((2, 32, 12, 12), (32, 4, 3, 3), dict(groups=8, padding=1)), "flat"),  # unit strides
    (((2, 16, 12, 12), (32, 16, 3, 3), dict(stride=2, padding=1)), "gemm"),  # dense
    (((2, 8, 12, 12), (8, 1, 3, 3), dict(groups=8, stride=2, padding=1)), "flat"),  # depthwise
    (((2, 32, 12, 12), (32, 4, 3, 3), dict(groups=8, stride=2, padding=1,
                                           padding_mode="reflect")), "gemm"),
])
def test_strided_grouped_input_gradients_take_phases(layer, expected):
    """Strided grouped layers of a few channels a group take "phases" for their input
    gradient; unit strides, dense and depthwise layers and other boundary rules keep theirs,
    and so do weights that are not finite (the phases multiply the zeros around the output
    gradient by them)."""
    x_shape, w_shape, kwargs = layer
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape)
    with fastcorr.trace() as ran:
        got = fastcorr.conv2d_input(x_shape, w, g, **kwargs)
    assert [r.implementation for r in ran] == [expected]
    expected_grad = fastcorr.conv2d_input(x_shape, w, g, backend="reference", **kwargs)
    np.testing.assert_allclose(got, expected_grad, rtol=1e-12, atol=1e-12)
    if expected != "phases":
        return
    # an infinity in the output gradient reaches the sums that read it ("phases"); one in the
    # weights goes to im2col
    bad_g, bad_w = g.copy(), w.copy()
    bad_g[1, 3, 0, 2] = bad_w[0, 0, 1, 1] = np.inf
    for grad, weight, name in [(bad_g, w, "phases"), (g, bad_w, "gemm")]:
        with fastcorr.trace() as ran:
            got = fastcorr.conv2d_input(x_shape, weight, grad, **kwargs)
        assert [r.implementation for r in ran] == [name]
        expected_grad = fastcorr.conv2d_input(x_shape, weight, grad, backend="reference",
                                              **kwargs)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected_grad))
        np.testing.assert_allclose(got, expected_grad, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("layer, method, expected", [
    (((2, 32, 12, 12), (32, 4, 3, 3), dict(groups=8)), "auto", "shifts"),  # ResNeXt-like
    (((2, 32, 12, 12), (32, 4, 3, 3), dict(groups=8, stride=2)), "direct", "shifts"),
    (((2, 32, 12, 12), (32, 16, 3, 3), dict(groups=2)), "auto", "shifts"),  # not Winograd
    (((2, 64, 10, 10), (64, 32, 3, 3), dict(groups=2)), "direct", "gemm"),  # 32 a group
    (((2, 16, 10, 10), (16, 16, 3, 3), {}), "direct", "gemm"),  # dense
    (((2, 8, 12, 12), (8, 1, 3, 3), dict(groups=8)), "direct", "planes"),  # depthwise
    (((2, 32, 9, 9), (32, 4, 1, 1), dict(groups=8)), "direct", "rows"),  # 1x1 groups: thin
])
def test_grouped_weight_gradients_take_shifts(layer, method, expected):
    """Grouped layers of 2-16 input channels a group take "shifts" for their weight
    gradient (before im2col and Winograd); dense layers, wider groups and depthwise layers
    keep theirs."""
    x_shape, w_shape, kwargs = layer
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    g = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape)
    with fastcorr.trace() as ran:
        fastcorr.conv2d_weight(x, w_shape, g, method=method, **kwargs)
    assert [r.implementation for r in ran] == [expected]
