"""Gradients: conv2d_backward / conv2d_input / conv2d_weight against torch autograd through
``torch.nn.Conv2d`` and ``torch.nn.grad``, the adjoint identities, finite differences, the
correlate2d / convolve2d gradients, output_mask, determinism and non-mutation.

Tolerances are error bounds, not guesses. A gradient element is a sum of ``m`` products; in a
precision with machine epsilon ``eps`` any summation order is off by at most
``(m + 1) * eps * sum(|terms|)`` (to first order). ``m`` and ``sum(|terms|)`` come from torch
itself: the gradients of the all-ones problem count the products behind each element, and the
gradients of ``(|x|, |w|, |grad_out|)`` are the sums of their magnitudes. fastcorr and torch
(float64) each make such an error, so the bound is ``(eps(dtype) + eps(float64)) * (m + 1) *
magnitude`` element by element.

The hand-picked layers and image shapes are those of ``tests/cases.py``, checked by the test
bodies the CUDA tests share (``helpers.check_layer_gradients``, ``helpers.check_image_gradients``).
"""

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import fastcorr
from fastcorr import _select, config
from cases import BOUNDARIES, IMAGE_GRADIENT_FILLVALUE, IMAGE_GRADIENT_SHAPES, MODES
from cases import PADDING_MODES, layer_params, shape_id
from helpers import (EPS64, as_int_tuple, assert_within, check_image_gradients,
                     check_layer_gradients, grad_bounds, torch_forward_shape, torch_grads)

# CPU implementations forced by name (plans one cannot compute take the usual choice; the
# tests of tests/test_implementations.py prove each runs where it can): im2col/col2im + BLAS
# ("gemm", also with blocks of a few rows), the depthwise kernels ("direct": "taps" input
# gradient, "planes" weight gradient) and the general ones ("direct-rows"); the weight
# gradient's chunks are made small so that several chunks are summed.
PATHS = {
    "gemm": ({}, dict(grad_input="gemm", grad_weight="gemm")),
    "gemm-blocks": (dict(CPU_IM2COL_BLOCK_ELEMENTS=500),
                    dict(grad_input="gemm", grad_weight="gemm")),
    "direct": (dict(CPU_GRAD_WEIGHT_CHUNK_ROWS=3, CPU_GRAD_WEIGHT_CHUNK_PLANES=1),
               dict(grad_input="taps", grad_weight="planes")),
    "direct-rows": (dict(CPU_GRAD_WEIGHT_CHUNK_ROWS=3),
                    dict(grad_input="scatter", grad_weight="rows")),
    "flat": ({}, dict(grad_input="flat")),
    "auto": ({}, {}),  # the backend's own choice
}


def use_path(monkeypatch, name):
    """Force CPU path ``name`` (or "reference") for the test; returns the backend argument."""
    settings_, names = PATHS.get(name, ({}, {}))
    for key, value in settings_.items():
        monkeypatch.setattr(config, key, value)
    if names:
        forced_names = {("cpu", op): (impl, False) for op, impl in names.items()}
        monkeypatch.setattr(_select._local, "forced", forced_names, raising=False)
    return "reference" if name == "reference" else "cpu"


# --------------------------------------------------------------------------- torch helpers


def out_shape(x, w, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", **_):
    """conv2d's output shape, from torch (no fastcorr kernel compiled just for a shape)."""
    shape = torch_forward_shape(x, w, stride=stride, padding=padding, dilation=dilation,
                                groups=groups, padding_mode=padding_mode)
    assert shape is not None
    return shape


# --------------------------------------------------------------------------- random layers

KINDS = ("dense", "grouped", "depthwise", "multiplier")


def random_layer(rng, kind, *, tiny=False, padding_mode=None, padding_kinds=None):
    """Random operands and conv2d keyword arguments of a layer of ``kind``; possibly invalid
    (e.g. reflect padding as large as the input): callers ask torch."""
    hi_c = 2 if tiny else 4
    if kind == "dense":
        groups, c_in_g, c_out_g = 1, int(rng.integers(1, hi_c + 1)), int(rng.integers(1, hi_c + 1))
    elif kind == "grouped":
        groups = int(rng.integers(2, 4))
        c_in_g, c_out_g = int(rng.integers(1, hi_c)), int(rng.integers(1, hi_c))
        c_in_g = max(c_in_g, 2)  # one input channel a group is the depthwise kinds below
    elif kind == "depthwise":
        groups, c_in_g, c_out_g = int(rng.integers(1, hi_c + 1)), 1, 1
    else:  # depthwise with a channel multiplier
        groups, c_in_g, c_out_g = int(rng.integers(1, hi_c)), 1, int(rng.integers(2, 4))
    kh, kw = (int(k) for k in rng.integers(1, 4 if tiny else 5, 2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
    choice = str(rng.choice(padding_kinds or ("int", "pair", "pair", "same", "valid")))
    if choice == "int":
        padding = int(rng.integers(0, 3))
    elif choice == "pair":
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 4)))
    else:
        padding = choice
    stride = (1, 1) if padding == "same" else tuple(int(s) for s in rng.integers(1, 4, 2))
    if rng.random() < 0.3:
        stride = int(stride[0])
    h, w = (int(s) for s in rng.integers(3, 7 if tiny else 10, 2))
    n = 1 if tiny else int(rng.integers(1, 4))
    mode = padding_mode or str(rng.choice(PADDING_MODES))
    unbatched = rng.random() < 0.2
    shape = (groups * c_in_g, h, w) if unbatched else (n, groups * c_in_g, h, w)
    x = rng.standard_normal(shape)
    weight = rng.standard_normal((groups * c_out_g, c_in_g, kh, kw))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=mode)
    return x, weight, kwargs


def valid_layers(seed, count, *, tiny=False, **options):
    """``count`` valid random layers ``(x, w, g, kwargs)``; for each invalid draw, checks that
    fastcorr rejects it as torch does."""
    rng = np.random.default_rng(seed)
    layers = []
    fixed_mode = options.pop("padding_mode", None)
    while len(layers) < count:
        # every kind with every padding mode, in turn
        kind = KINDS[len(layers) % len(KINDS)]
        mode = fixed_mode or PADDING_MODES[len(layers) // 4 % 4]
        x, w, kwargs = random_layer(rng, kind, tiny=tiny, padding_mode=mode, **options)
        shape = torch_forward_shape(x, w, **kwargs)
        if shape is None:
            with pytest.raises(ValueError):
                fastcorr.conv2d(x, w, **kwargs)
            continue
        layers.append((x, w, rng.standard_normal(shape), kwargs))
    return layers


# --------------------------------------------------------------------------- 1. against torch


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("path", ["gemm", "gemm-blocks", "direct", "direct-rows", "flat", "auto",
                                  "reference"])
def test_conv2d_backward_matches_torch(monkeypatch, path, dtype):
    backend = use_path(monkeypatch, path)
    tiny = path == "reference"
    seed = 100 + sorted(PATHS).index(path) if path in PATHS else 99
    layers = valid_layers(seed, 16 if tiny else 40, tiny=tiny)
    seen_modes, seen_padding, seen_unbatched = set(), set(), False
    for x, w, g, kwargs in layers:
        x, w, g = (a.astype(dtype) for a in (x, w, g))
        got = fastcorr.conv2d_backward(g, x, w, backend=backend, **kwargs)
        expected = torch_grads(x, w, g, **kwargs)
        bounds = grad_bounds(x, w, g, dtype, **kwargs)
        for name, a, e, b in zip(("grad_input", "grad_weight", "grad_bias"), got, expected,
                                 bounds):
            assert isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype), (name, kwargs)
            assert_within(a, e, b, f"{path} {np.dtype(dtype).name} {name} x{x.shape} "
                                   f"w{w.shape} {kwargs}")
        seen_modes.add(kwargs["padding_mode"])
        padding = kwargs["padding"]
        seen_padding.add(padding if isinstance(padding, str) else type(padding).__name__)
        seen_unbatched |= x.ndim == 3
    assert seen_modes == set(PADDING_MODES)
    if not tiny:
        assert seen_padding == {"int", "tuple", "same", "valid"} and seen_unbatched


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows", "flat"])
@pytest.mark.parametrize("case", layer_params())
def test_layer_cases_backward(monkeypatch, case, path, dtype):
    """Every layer of tests/cases.py (the CUDA tests run a selection of them through the same
    body) on each CPU gradient path: see ``helpers.check_layer_gradients``."""
    check_layer_gradients(use_path(monkeypatch, path), case, dtype)


@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows", "reference"])
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv2d_backward_empty_batch(monkeypatch, path, padding_mode):
    backend = use_path(monkeypatch, path)
    x = np.zeros((0, 4, 6, 7))
    w = np.random.default_rng(0).standard_normal((6, 2, 3, 3))
    g = np.zeros((0, 6, 3, 4))
    gx, gw, gb = fastcorr.conv2d_backward(g, x, w, stride=(2, 2), padding=1, groups=2,
                                          padding_mode=padding_mode, backend=backend)
    assert gx.shape == (0, 4, 6, 7) and gx.dtype == np.float64
    assert gw.shape == w.shape and gw.dtype == np.float64 and not gw.any()
    assert gb.shape == (6,) and gb.dtype == np.float64 and not gb.any()
    gi = fastcorr.conv2d_input(x.shape, w, g, stride=2, padding=1, groups=2,
                               padding_mode=padding_mode, backend=backend)
    assert gi.shape == x.shape
    gw2 = fastcorr.conv2d_weight(x, w.shape, g, stride=2, padding=1, groups=2,
                                 padding_mode=padding_mode, backend=backend)
    assert gw2.shape == w.shape and not gw2.any()
    # float32 stays float32
    gx, gw, gb = fastcorr.conv2d_backward(g.astype(np.float32), x.astype(np.float32),
                                          w.astype(np.float32), stride=2, padding=1, groups=2,
                                          padding_mode=padding_mode, backend=backend)
    assert gx.dtype == gw.dtype == gb.dtype == np.float32
    assert gx.shape == x.shape and not gw.any() and not gb.any()


@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows"])
def test_conv2d_backward_layouts_and_integer_inputs(monkeypatch, path):
    """Non-contiguous views, Fortran order and integer arrays hold the same numbers: the
    gradients are the same, bit for bit (and float64 for integers)."""
    backend = use_path(monkeypatch, path)
    rng = np.random.default_rng(17)
    x = rng.integers(-4, 5, (2, 4, 7, 6))
    w = rng.integers(-3, 4, (6, 2, 3, 2))
    kwargs = dict(stride=(1, 2), padding=(2, 1), groups=2, padding_mode="circular",
                  backend=backend)
    g = rng.integers(-2, 3, out_shape(x, w, **kwargs))
    expected = fastcorr.conv2d_backward(g.astype(float), x.astype(float), w.astype(float),
                                        **kwargs)
    got = fastcorr.conv2d_backward(g, x, w, **kwargs)
    views = (np.asfortranarray(g.astype(float)),
             np.repeat(x.astype(float), 2, axis=3)[..., ::2],
             np.ascontiguousarray(w.astype(float).transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0))
    assert not views[1].flags.c_contiguous and not views[2].flags.c_contiguous
    got_views = fastcorr.conv2d_backward(*views, **kwargs)
    for e, a, b in zip(expected, got, got_views):
        assert a.dtype == b.dtype == np.float64
        assert np.array_equal(a, e) and np.array_equal(b, e)
    # integer products are exact in float64: compare with torch exactly
    for e, t in zip(expected, torch_grads(x, w, g, **{k: v for k, v in kwargs.items()
                                                      if k != "backend"})):
        assert np.array_equal(e, t)


# --------------------------------------------------------------------------- 2. output_mask, errors


@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows"])
def test_output_mask(monkeypatch, path):
    backend = use_path(monkeypatch, path)
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2))
    kwargs = dict(stride=(2, 1), padding=1, groups=2, padding_mode="reflect", backend=backend)
    g = rng.standard_normal(out_shape(x, w, **kwargs))
    full = fastcorr.conv2d_backward(g, x, w, **kwargs)
    for mask in itertools.product((False, True), repeat=3):
        got = fastcorr.conv2d_backward(g, x, w, output_mask=mask, **kwargs)
        assert isinstance(got, tuple) and len(got) == 3
        for want, a, f in zip(mask, got, full):
            if want:
                assert np.array_equal(a, f), mask
            else:
                assert a is None, mask
    # correlate2d_backward / convolve2d_backward
    a, b = rng.standard_normal((8, 7)), rng.standard_normal((3, 4))
    for fn, fwd in ((fastcorr.correlate2d_backward, fastcorr.correlate2d),
                    (fastcorr.convolve2d_backward, fastcorr.convolve2d)):
        for mode in ("full", "same", "valid"):
            for args in ((a, b), (b, a)) if mode == "valid" else ((a, b),):
                gi = rng.standard_normal(fwd(*args, mode, "symm").shape)
                full2 = fn(gi, *args, mode, "symm", backend=backend)
                for mask in itertools.product((False, True), repeat=2):
                    got = fn(gi, *args, mode, "symm", output_mask=mask, backend=backend)
                    assert len(got) == 2
                    for want, r, f in zip(mask, got, full2):
                        assert (r is None) if not want else np.array_equal(r, f), (mode, mask)


@pytest.mark.parametrize("mask", [(True, True), (True, True, True, True), (), None, True,
                                  "TTT", 7])
def test_bad_output_mask_conv2d(mask):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    with pytest.raises(ValueError, match="output_mask"):
        fastcorr.conv2d_backward(np.ones((1, 3, 3, 3)), x, w, output_mask=mask)


@pytest.mark.parametrize("mask", [(True,), (True, True, True), None, False, "TT"])
@pytest.mark.parametrize("fn", [fastcorr.correlate2d_backward, fastcorr.convolve2d_backward])
def test_bad_output_mask_image(fn, mask):
    a, b = np.ones((5, 5)), np.ones((2, 2))
    with pytest.raises(ValueError, match="output_mask"):
        fn(np.ones((6, 6)), a, b, output_mask=mask)


def test_grad_output_wrong_shape():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 3))
    kw = dict(stride=2, padding=1, groups=2)
    good = fastcorr.conv2d(x, w, **kw).shape  # (2, 6, 4, 3)
    bad_shapes = [(2, 6, 4, 4), (2, 6, 3, 3), (2, 5, 4, 3), (1, 6, 4, 3), (6, 4, 3),
                  (2, 6, 4, 3, 1), ()]
    for shape in bad_shapes:
        g = np.ones(shape)
        with pytest.raises(ValueError, match="grad_output"):
            fastcorr.conv2d_backward(g, x, w, **kw)
        with pytest.raises(ValueError, match="grad_output"):
            fastcorr.conv2d_input(x.shape, w, g, **kw)
        with pytest.raises(ValueError, match="grad_output"):
            fastcorr.conv2d_weight(x, w.shape, g, **kw)
    fastcorr.conv2d_backward(np.ones(good), x, w, **kw)  # the right one is accepted
    # unbatched input takes an unbatched gradient, not a batched one
    with pytest.raises(ValueError, match="grad_output"):
        fastcorr.conv2d_backward(np.ones((1,) + good[1:]), x[0], w, **kw)
    with pytest.raises(ValueError, match="grad_output"):
        fastcorr.conv2d_input(x.shape[1:], w, np.ones((1,) + good[1:]), **kw)
    # images: the gradient has the result's shape
    a, b = rng.standard_normal((8, 7)), rng.standard_normal((3, 4))
    for fn in (fastcorr.correlate2d_backward, fastcorr.convolve2d_backward):
        for mode, wrong in (("full", (8, 7)), ("same", (10, 10)), ("valid", (8, 7)),
                            ("same", (1, 8, 7))):
            with pytest.raises(ValueError, match="grad_output"):
                fn(np.ones(wrong), a, b, mode)


# --------------------------------------------------------------------------- 3. conv2d_input/weight


@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows", "reference"])
def test_conv2d_input_weight_match_torch_nn_grad(monkeypatch, path):
    backend = use_path(monkeypatch, path)
    tiny = path == "reference"
    layers = valid_layers(7, 8 if tiny else 24, tiny=tiny, padding_mode="zeros",
                          padding_kinds=("int", "pair", "pair"))
    for x, w, g, kwargs in layers:
        args = {k: kwargs[k] for k in ("stride", "padding", "dilation", "groups")}
        t_args = {k: as_int_tuple(v) for k, v in args.items()}
        # torch.nn.grad takes batched tensors only
        xb, gb = (x[None], g[None]) if x.ndim == 3 else (x, g)
        xt, wt, gt = (torch.from_numpy(a) for a in (xb, w, gb))
        exp_in = torch.nn.grad.conv2d_input(xb.shape, wt, gt, **t_args).numpy().reshape(x.shape)
        exp_w = torch.nn.grad.conv2d_weight(xt, w.shape, gt, **t_args).numpy()
        b_in, b_w, _ = grad_bounds(x, w, g, np.float64, **kwargs)
        got_in = fastcorr.conv2d_input(x.shape, w, g, backend=backend, **args)
        got_w = fastcorr.conv2d_weight(x, w.shape, g, backend=backend, **args)
        assert_within(got_in, exp_in, b_in, f"conv2d_input {path} x{x.shape} {kwargs}")
        assert_within(got_w, exp_w, b_w, f"conv2d_weight {path} x{x.shape} {kwargs}")
        # shapes given as lists and numpy ints are sequences of ints too
        got_in2 = fastcorr.conv2d_input([np.int64(s) for s in x.shape], w, g, backend=backend,
                                        **args)
        assert np.array_equal(got_in2, got_in)


@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows"])
def test_conv2d_input_weight_other_modes(monkeypatch, path):
    backend = use_path(monkeypatch, path)
    for x, w, g, kwargs in valid_layers(11, 24):
        b_in, b_w, _ = grad_bounds(x, w, g, np.float64, **kwargs)
        ref_in, ref_w, _ = torch_grads(x, w, g, **kwargs)
        got_in = fastcorr.conv2d_input(x.shape, w, g, backend=backend, **kwargs)
        got_w = fastcorr.conv2d_weight(x, w.shape, g, backend=backend, **kwargs)
        what = f"{path} x{x.shape} w{w.shape} {kwargs}"
        assert_within(got_in, ref_in, b_in, "conv2d_input " + what)
        assert_within(got_w, ref_w, b_w, "conv2d_weight " + what)
        # and the same numbers as conv2d_backward
        gx, gw, _ = fastcorr.conv2d_backward(g, x, w, backend=backend, **kwargs)
        assert_within(got_in, gx, 2 * b_in, "conv2d_input vs conv2d_backward " + what)
        assert_within(got_w, gw, 2 * b_w, "conv2d_weight vs conv2d_backward " + what)


# --------------------------------------------------------------------------- 4. adjoint identity


def _inner(a, b):
    return float(np.dot(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)))


@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows"])
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_adjoint_identity_conv2d(monkeypatch, path, padding_mode):
    """<conv2d(x, w), y> == <x, conv2d_input(x.shape, w, y)> == <w, conv2d_weight(x, w.shape, y)>.

    Each side is a sum of the same products in a different order; its rounding error is at
    most eps * (terms of one element + terms of the inner product) * sum(|products|).
    """
    backend = use_path(monkeypatch, path)
    for x, w, y, kwargs in valid_layers(23 + PADDING_MODES.index(padding_mode), 10,
                                        padding_mode=padding_mode):
        out = fastcorr.conv2d(x, w, backend=backend, **kwargs)
        lhs = _inner(out, y)
        magnitude = _inner(fastcorr.conv2d(np.abs(x), np.abs(w), backend=backend, **kwargs),
                           np.abs(y))
        counts = torch_grads(np.ones_like(x), np.ones_like(w), np.ones_like(y), **kwargs)
        per_element = w[0].size + counts[0].max() + counts[1].max()
        tol = 2 * EPS64 * (per_element + y.size + x.size + w.size) * magnitude
        gi = fastcorr.conv2d_input(x.shape, w, y, backend=backend, **kwargs)
        gw = fastcorr.conv2d_weight(x, w.shape, y, backend=backend, **kwargs)
        what = f"{path} x{x.shape} w{w.shape} {kwargs}: lhs {lhs!r}, tol {tol:.3g}"
        assert abs(lhs - _inner(x, gi)) <= tol, f"input adjoint {what}, rhs {_inner(x, gi)!r}"
        assert abs(lhs - _inner(w, gw)) <= tol, f"weight adjoint {what}, rhs {_inner(w, gw)!r}"
        assert magnitude > 0


# --------------------------------------------------------------------------- 5. finite differences

FD_CASES = [
    ((2, 3, 6, 7), (4, 3, 3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                      padding_mode="zeros")),
    ((1, 4, 7, 6), (4, 2, 2, 3), dict(padding="same", groups=2, padding_mode="reflect")),
    ((3, 6, 5), (6, 1, 3, 3), dict(padding=2, groups=3, padding_mode="replicate", stride=2)),
    ((2, 2, 5, 6), (3, 2, 3, 3), dict(padding=(2, 3), padding_mode="circular", dilation=2)),
]


@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows"])
@pytest.mark.parametrize("case", range(len(FD_CASES)))
def test_finite_differences_conv2d(monkeypatch, path, case):
    backend = use_path(monkeypatch, path)
    x_shape, w_shape, kwargs = FD_CASES[case]
    rng = np.random.default_rng(300 + case)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    y = rng.standard_normal(fastcorr.conv2d(x, w, **kwargs).shape)

    def loss(x_, w_, b_):
        return _inner(fastcorr.conv2d(x_, w_, b_, backend=backend, **kwargs), y)

    gx, gw, gb = fastcorr.conv2d_backward(y, x, w, backend=backend, **kwargs)
    h = 1e-3
    # rounding error of each loss evaluation, over 2h
    magnitude = _inner(fastcorr.conv2d(np.abs(x) + h, np.abs(w) + h, np.abs(b), **kwargs),
                       np.abs(y))
    tol = EPS64 * (w[0].size + 1 + y.size) * magnitude / h
    for arr, grad, name in ((x, gx, "input"), (w, gw, "weight"), (b, gb, "bias")):
        for flat in rng.choice(arr.size, size=min(6, arr.size), replace=False):
            idx = np.unravel_index(flat, arr.shape)
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += h
            minus[idx] -= h
            args_p = [plus if a is arr else a for a in (x, w, b)]
            args_m = [minus if a is arr else a for a in (x, w, b)]
            fd = (loss(*args_p) - loss(*args_m)) / (2 * h)
            assert abs(fd - grad[idx]) <= tol, (name, idx, fd, grad[idx], tol, kwargs)


# --------------------------------------------------------------------------- 6. correlate2d/convolve2d

@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows"])
@pytest.mark.parametrize("convolve", [False, True], ids=["correlate2d", "convolve2d"])
def test_image_backward_adjoint(monkeypatch, path, convolve):
    """<f(a, b), g> == <a, grad_in1> (f is affine in a: its fill part is dropped by using
    fillvalue 0 on the left) and <f(a, b, fillvalue), g> == <b, grad_in2> (linear in b)."""
    backend = use_path(monkeypatch, path)
    fwd = fastcorr.convolve2d if convolve else fastcorr.correlate2d
    bwd = fastcorr.convolve2d_backward if convolve else fastcorr.correlate2d_backward
    rng = np.random.default_rng(41 + convolve)
    checked = 0
    for (sa, sb), mode, boundary in itertools.product(IMAGE_GRADIENT_SHAPES, MODES,
                                                      BOUNDARIES):
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        fill = 1.75 if boundary == "fill" else 0.0
        out = fwd(a, b, mode, boundary, fill, backend=backend)
        g = rng.standard_normal(out.shape)
        ga, gb = bwd(g, a, b, mode, boundary, fill, backend=backend)
        assert ga.shape == a.shape and gb.shape == b.shape
        out0 = fwd(a, b, mode, boundary, 0.0, backend=backend)
        magnitude = _inner(fwd(np.abs(a), np.abs(b), mode, boundary, abs(fill), backend=backend),
                           np.abs(g))
        # every element of either side sums at most all out.size * kernel size products,
        # then the inner product sums at most max(out.size, a.size, b.size) terms
        products = out.size * min(a.size, b.size) if mode == "valid" else out.size * b.size
        tol = 2 * EPS64 * (products + out.size + a.size + b.size) * magnitude
        what = f"{path} {sa} {sb} {mode} {boundary}"
        assert abs(_inner(out0, g) - _inner(a, ga)) <= tol, "in1 adjoint " + what
        assert abs(_inner(out, g) - _inner(b, gb)) <= tol, "in2 adjoint " + what
        # the fill value has no gradient with respect to in1
        ga0, gb0 = bwd(g, a, b, mode, boundary, 0.0, backend=backend)
        assert np.allclose(ga0, ga, rtol=0, atol=tol)
        checked += 1
    assert checked == len(IMAGE_GRADIENT_SHAPES) * 9


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", IMAGE_GRADIENT_SHAPES, ids=shape_id)
@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
def test_image_backward_matches_reference(op, shapes, mode, boundary):
    """Every image gradient case of tests/cases.py (the CUDA tests run a selection of them
    through the same body): see ``helpers.check_image_gradients``."""
    check_image_gradients("cpu", op, shapes, mode, boundary, IMAGE_GRADIENT_FILLVALUE)


def test_image_backward_against_torch():
    """correlate2d 'fill' with fillvalue 0 is F.conv2d with zero padding (full: k-1 each side)."""
    rng = np.random.default_rng(61)
    a, b = rng.standard_normal((9, 8)), rng.standard_normal((4, 3))
    for mode, pad in (("full", (3, 2)), ("valid", (0, 0))):
        at = torch.tensor(a, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        out = torch.nn.functional.conv2d(at[None, None], bt[None, None], padding=pad)[0, 0]
        g = rng.standard_normal(tuple(out.shape))
        out.backward(torch.from_numpy(g))
        for convolve in (False, True):
            if convolve:  # convolve2d(a, b) == correlate2d(a, flipped b)
                ga, gb = fastcorr.convolve2d_backward(g, a, b[::-1, ::-1], mode)
                gb = gb[::-1, ::-1]
            else:
                ga, gb = fastcorr.correlate2d_backward(g, a, b, mode)
            np.testing.assert_allclose(ga, at.grad.numpy(), rtol=0, atol=1e-12)
            np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", [
    ("correlate", (6, 7), (4, 2), "same", "symm", 0.0),
    ("correlate", (4, 4), (5, 6), "valid", "fill", 0.0),  # swapped arguments
    ("convolve", (5, 6), (3, 4), "full", "fill", 2.5),
    ("convolve", (5, 6), (2, 3), "same", "wrap", 0.0),
])
@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows"])
def test_finite_differences_image(monkeypatch, path, case):
    backend = use_path(monkeypatch, path)
    kind, sa, sb, mode, boundary, fill = case
    fwd = fastcorr.convolve2d if kind == "convolve" else fastcorr.correlate2d
    bwd = fastcorr.convolve2d_backward if kind == "convolve" else fastcorr.correlate2d_backward
    rng = np.random.default_rng(71)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    g = rng.standard_normal(fwd(a, b, mode, boundary, fill).shape)
    ga, gb = bwd(g, a, b, mode, boundary, fill, backend=backend)
    h = 1e-3
    magnitude = _inner(fwd(np.abs(a) + h, np.abs(b) + h, mode, boundary, abs(fill)), np.abs(g))
    tol = EPS64 * (a.size + b.size + g.size) * magnitude / h

    def loss(a_, b_):
        return _inner(fwd(a_, b_, mode, boundary, fill, backend=backend), g)

    for which, arr, grad in ((0, a, ga), (1, b, gb)):
        for flat in rng.choice(arr.size, size=min(6, arr.size), replace=False):
            idx = np.unravel_index(flat, arr.shape)
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += h
            minus[idx] -= h
            fd = ((loss(plus, b) - loss(minus, b)) if which == 0
                  else (loss(a, plus) - loss(a, minus))) / (2 * h)
            assert abs(fd - grad[idx]) <= tol, (case, which, idx, fd, grad[idx], tol)


def test_wrap_symm_copies_receive_gradient():
    """A 1x1 image under wrap/symm is copied into every tap: its gradient is sum(g) * sum(b)."""
    b = np.arange(1.0, 7.0).reshape(2, 3)
    for fn in (fastcorr.correlate2d_backward, fastcorr.convolve2d_backward):
        for boundary in ("wrap", "symm"):
            for mode, shape in (("full", (2, 3)), ("same", (1, 1))):
                g = np.full(shape, 0.5)
                ga, gb = fn(g, np.array([[2.0]]), b, mode, boundary)
                assert ga[0, 0] == g.sum() * b.sum(), (fn.__name__, boundary, mode)
                np.testing.assert_array_equal(gb, np.full(b.shape, 2.0 * g.sum()))
        # fill: the fill value has no gradient, only the real sample does
        ga, gb = fn(np.ones((2, 3)), np.array([[2.0]]), b, "full", "fill", 3.0)
        assert ga[0, 0] == b.sum()
        np.testing.assert_array_equal(gb, np.full(b.shape, 2.0 + 5 * 3.0))


# --------------------------------------------------------------------------- 7. determinism

DETERMINISM_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import fastcorr
    from fastcorr import _select, config
    from fastcorr.cpu import _pool

    _pool.MIN_WORK_PER_THREAD = 1  # every kernel split between the threads, however small
    out_dir, threads = sys.argv[1], int(sys.argv[2])
    assert fastcorr.get_num_threads() == threads, fastcorr.get_num_threads()
    rng = np.random.default_rng(2024)
    dense = (rng.standard_normal((4, 16, 20, 20)), rng.standard_normal((16, 16, 3, 3)),
             rng.standard_normal((4, 16, 20, 20)))
    depthwise = (rng.standard_normal((4, 16, 24, 24)), rng.standard_normal((32, 1, 3, 3)),
                 rng.standard_normal((4, 32, 24, 24)))
    image = (rng.standard_normal((300, 300)), rng.standard_normal((5, 4)),
             rng.standard_normal((304, 303)))
    defaults = {k: getattr(config, k) for k in dir(config) if k.isupper()}
    paths = {  # (tunables, forced implementations)
        "gemm": (dict(CPU_IM2COL_BLOCK_ELEMENTS=4000),
                 dict(grad_input="gemm", grad_weight="gemm")),
        "direct": (dict(CPU_GRAD_WEIGHT_CHUNK_ROWS=7, CPU_GRAD_WEIGHT_CHUNK_PLANES=3),
                   dict(grad_input="taps", grad_weight="planes")),
        "direct-rows": (dict(CPU_GRAD_WEIGHT_CHUNK_ROWS=7),
                        dict(grad_input="scatter", grad_weight="rows")),
        "auto": ({}, {}),
    }
    for path, (settings, names) in paths.items():
        for k, v in defaults.items():
            setattr(config, k, v)
        for k, v in settings.items():
            setattr(config, k, v)
        _select._local.forced = {("cpu", op): (impl, False) for op, impl in names.items()}
        for dtype in (np.float64, np.float32):
            x, w, g = (a.astype(dtype) for a in dense)
            res = fastcorr.conv2d_backward(g, x, w, padding=1, padding_mode="reflect")
            for i, r in enumerate(res):
                np.save(f"{out_dir}/dense-{path}-{np.dtype(dtype).name}-{i}.npy", r)
            x, w, g = (a.astype(dtype) for a in depthwise)
            res = fastcorr.conv2d_backward(g, x, w, padding="same", groups=16,
                                           padding_mode="circular")
            for i, r in enumerate(res):
                np.save(f"{out_dir}/depthwise-{path}-{np.dtype(dtype).name}-{i}.npy", r)
        a, b, g = image
        for i, r in enumerate(fastcorr.correlate2d_backward(g, a, b, "full", "symm")):
            np.save(f"{out_dir}/image-{path}-{i}.npy", r)
""")


@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows"])
def test_deterministic_in_process(monkeypatch, path):
    backend = use_path(monkeypatch, path)
    rng = np.random.default_rng(81)
    x, w = rng.standard_normal((4, 16, 20, 20)), rng.standard_normal((16, 16, 3, 3))
    g = rng.standard_normal((4, 16, 20, 20))
    xd, wd = rng.standard_normal((4, 16, 24, 24)), rng.standard_normal((32, 1, 3, 3))
    gd = rng.standard_normal((4, 32, 22, 22))
    a, b = rng.standard_normal((300, 300)), rng.standard_normal((5, 4))
    gi = rng.standard_normal((300, 300))

    def run():
        return (fastcorr.conv2d_backward(g, x, w, padding=1, padding_mode="replicate",
                                         backend=backend)
                + fastcorr.conv2d_backward(gd, xd, wd, groups=16, backend=backend)
                + fastcorr.correlate2d_backward(gi, a, b, "same", "wrap", backend=backend))

    first, second = run(), run()
    for r1, r2 in zip(first, second):
        assert np.array_equal(r1, r2)


def test_deterministic_across_thread_counts(tmp_path):
    script = tmp_path / "determinism.py"
    script.write_text(DETERMINISM_SCRIPT)
    root = str(Path(fastcorr.__file__).resolve().parents[1])
    dirs = {}
    for threads in (1, 2):
        out = tmp_path / f"threads{threads}"
        out.mkdir()
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads),
                   PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run([sys.executable, str(script), str(out), str(threads)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        dirs[threads] = out
    names = sorted(p.name for p in dirs[1].iterdir())
    assert len(names) == 4 * (2 * 3 * 2 + 2)  # paths x (layers x gradients x dtypes + image)
    assert names == sorted(p.name for p in dirs[2].iterdir())
    differ = [n for n in names
              if not np.array_equal(np.load(dirs[1] / n), np.load(dirs[2] / n))]
    assert not differ, f"results differ between 1 and 2 threads: {differ}"


# --------------------------------------------------------------------------- 8. no mutation


@pytest.mark.parametrize("path", ["gemm", "direct", "direct-rows", "reference"])
def test_inputs_not_mutated(monkeypatch, path):
    backend = use_path(monkeypatch, path)
    rng = np.random.default_rng(91)
    cases = []
    for dtype in (np.float64, np.float32):
        cases.append(((rng.standard_normal((2, 4, 6, 5)).astype(dtype),
                       rng.standard_normal((4, 2, 3, 2)).astype(dtype)),
                      dict(padding=2, groups=2, padding_mode="reflect")))
        cases.append(((rng.standard_normal((3, 6, 6)).astype(dtype),
                       rng.standard_normal((6, 1, 3, 3)).astype(dtype)),
                      dict(padding=(1, 2), stride=2, groups=3, padding_mode="circular")))
        cases.append(((rng.standard_normal((1, 2, 5, 5)).astype(dtype),
                       rng.standard_normal((2, 2, 2, 2)).astype(dtype)),
                      dict(padding="same", padding_mode="replicate")))
    for (x, w), kwargs in cases:
        g = rng.standard_normal(out_shape(x, w, **kwargs)).astype(x.dtype)
        # a non-contiguous view as well: its base must not change either
        g_base = np.repeat(g, 2, axis=-1)
        g_view = g_base[..., ::2]
        saved = [a.copy() for a in (x, w, g, g_base)]
        fastcorr.conv2d_backward(g, x, w, backend=backend, **kwargs)
        fastcorr.conv2d_backward(g_view, x, w, backend=backend, **kwargs)
        fastcorr.conv2d_input(x.shape, w, g, backend=backend, **kwargs)
        fastcorr.conv2d_weight(x, w.shape, g, backend=backend, **kwargs)
        for a, s in zip((x, w, g, g_base), saved):
            assert np.array_equal(a, s), kwargs
    a, b = rng.standard_normal((6, 7)), rng.standard_normal((3, 2))
    for fn in (fastcorr.correlate2d_backward, fastcorr.convolve2d_backward):
        for mode, boundary in itertools.product(("full", "same", "valid"),
                                                ("fill", "wrap", "symm")):
            for args in ((a, b), (b, a)) if mode == "valid" else ((a, b),):
                shape = (fastcorr.correlate2d(*args, mode).shape)
                g = rng.standard_normal(shape)
                saved = [v.copy() for v in (a, b, g)]
                fn(g, *args, mode, boundary, 1.5, backend=backend)
                for v, s in zip((a, b, g), saved):
                    assert np.array_equal(v, s), (fn.__name__, mode, boundary)
