"""Bad arguments, dtype rules, memory layout, ``out=``, backend choice and import hygiene."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import fastcorr
import fastcorr._reference_backend
import fastcorr.cpu
from helpers import torch_conv2d

BACKENDS = ("cpu", "reference")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ones(*shape, dtype=np.float64):
    return np.ones(shape, dtype=dtype)


# --------------------------------------------------------------------------- bad conv2d arguments

# Defaults: input (2, 4, 6, 7), weight (6, 4, 3, 3); each case overrides some arguments.
X, W = (2, 4, 6, 7), (6, 4, 3, 3)

CONV2D_BAD = [
    # (id, overrides, exception, pattern naming the argument)
    ("input_2d", dict(input=ones(6, 7)), ValueError, r"\binput\b"),
    ("input_5d", dict(input=ones(1, 2, 4, 6, 7)), ValueError, r"\binput\b"),
    ("input_scalar", dict(input=1.0), ValueError, r"\binput\b"),
    ("weight_3d", dict(weight=ones(6, 4, 3)), ValueError, r"\bweight\b"),
    ("weight_5d", dict(weight=ones(6, 4, 3, 3, 1)), ValueError, r"\bweight\b"),
    ("weight_2d_unbatched_input", dict(input=ones(4, 6, 7), weight=ones(3, 3)), ValueError,
     r"\bweight\b"),
    ("bias_wrong_length", dict(bias=ones(5)), ValueError, r"\bbias\b"),
    ("bias_too_long", dict(bias=ones(7)), ValueError, r"\bbias\b"),
    ("bias_2d", dict(bias=ones(6, 1)), ValueError, r"\bbias\b"),
    ("bias_scalar", dict(bias=1.0), ValueError, r"\bbias\b"),
    ("channel_mismatch", dict(weight=ones(6, 3, 3, 3)), ValueError, r"\b(weight|input)\b"),
    ("channel_mismatch_unbatched", dict(input=ones(5, 6, 7)), ValueError, r"\b(weight|input)\b"),
    ("channel_mismatch_groups", dict(groups=2), ValueError, r"\b(weight|input|groups)\b"),
    ("groups_not_dividing_c_in", dict(weight=ones(6, 1, 3, 3), groups=3), ValueError,
     r"\bgroups\b"),
    ("groups_not_dividing_c_out", dict(weight=ones(6, 1, 3, 3), groups=4), ValueError,
     r"\bgroups\b"),
    ("groups_zero", dict(groups=0), ValueError, r"\bgroups\b"),
    ("groups_negative", dict(groups=-2), ValueError, r"\bgroups\b"),
    ("groups_float", dict(groups=1.0), TypeError, r"\bgroups\b"),
    ("groups_str", dict(groups="1"), TypeError, r"\bgroups\b"),
    ("kernel_taller_than_input", dict(weight=ones(6, 4, 7, 3)), ValueError, r"\bweight\b"),
    ("kernel_wider_than_input", dict(weight=ones(6, 4, 3, 8)), ValueError, r"\bweight\b"),
    ("kernel_larger_than_padded_input", dict(weight=ones(6, 4, 9, 3), padding=1), ValueError,
     r"\bweight\b"),
    ("kernel_larger_with_dilation", dict(dilation=(3, 1)), ValueError, r"\b(weight|dilation)\b"),
    ("kernel_larger_with_dilation_w", dict(dilation=(1, 4)), ValueError,
     r"\b(weight|dilation)\b"),
    ("stride_zero", dict(stride=0), ValueError, r"\bstride\b"),
    ("stride_negative", dict(stride=-1), ValueError, r"\bstride\b"),
    ("stride_pair_zero", dict(stride=(1, 0)), ValueError, r"\bstride\b"),
    ("stride_triple", dict(stride=(1, 1, 1)), ValueError, r"\bstride\b"),
    ("stride_float", dict(stride=1.5), TypeError, r"\bstride\b"),
    ("stride_str", dict(stride="2"), TypeError, r"\bstride\b"),
    ("padding_negative", dict(padding=-1), ValueError, r"\bpadding\b"),
    ("padding_pair_negative", dict(padding=(0, -2)), ValueError, r"\bpadding\b"),
    ("padding_triple", dict(padding=(1, 1, 1)), ValueError, r"\bpadding\b"),
    ("padding_float", dict(padding=0.5), TypeError, r"\bpadding\b"),
    ("padding_unknown_string", dict(padding="full"), ValueError, r"\bpadding\b"),
    ("padding_wrong_case", dict(padding="SAME"), ValueError, r"\bpadding\b"),
    ("same_with_stride_2", dict(padding="same", stride=2), ValueError, r"\bpadding\b"),
    ("same_with_stride_pair", dict(padding="same", stride=(1, 2)), ValueError, r"\bpadding\b"),
    ("dilation_zero", dict(dilation=0), ValueError, r"\bdilation\b"),
    ("dilation_negative", dict(dilation=-1), ValueError, r"\bdilation\b"),
    ("dilation_pair_zero", dict(dilation=(1, 0)), ValueError, r"\bdilation\b"),
    ("dilation_float", dict(dilation=2.0), TypeError, r"\bdilation\b"),
    ("padding_mode_unknown", dict(padding_mode="mirror"), ValueError, r"\bpadding_mode\b"),
    ("padding_mode_scipy_name", dict(padding_mode="symmetric"), ValueError, r"\bpadding_mode\b"),
    ("padding_mode_none", dict(padding_mode=None), ValueError, r"\bpadding_mode\b"),
    ("empty_height", dict(input=ones(2, 4, 0, 7)), ValueError, r"\binput\b"),
    ("empty_width", dict(input=ones(2, 4, 6, 0)), ValueError, r"\binput\b"),
    ("empty_channels", dict(input=ones(2, 0, 6, 7)), ValueError, r"\binput\b"),
    ("empty_unbatched", dict(input=ones(4, 0, 7)), ValueError, r"\binput\b"),
    ("empty_kernel_height", dict(weight=ones(6, 4, 0, 3)), ValueError, r"\bweight\b"),
    ("empty_kernel_width", dict(weight=ones(6, 4, 3, 0)), ValueError, r"\bweight\b"),
    ("empty_kernel_out_channels", dict(weight=ones(0, 4, 3, 3), bias=None), ValueError,
     r"\bweight\b"),
    ("empty_kernel_in_channels", dict(weight=ones(6, 0, 3, 3)), ValueError, r"\bweight\b"),
    ("reflect_padding_equals_height", dict(padding=(6, 0), padding_mode="reflect"), ValueError,
     r"\bpadding\b"),
    ("reflect_padding_equals_width", dict(padding=(0, 7), padding_mode="reflect"), ValueError,
     r"\bpadding\b"),
    ("reflect_same_too_large", dict(input=ones(1, 4, 2, 2), weight=ones(6, 4, 5, 5),
                                    padding="same", padding_mode="reflect"), ValueError,
     r"\bpadding\b"),
    ("circular_padding_exceeds_height", dict(padding=(7, 0), padding_mode="circular"),
     ValueError, r"\bpadding\b"),
    ("circular_padding_exceeds_width", dict(padding=(0, 8), padding_mode="circular"),
     ValueError, r"\bpadding\b"),
    ("complex_input", dict(input=ones(*X, dtype=complex)), TypeError, r"\binput\b"),
    ("complex_weight", dict(weight=ones(*W, dtype=np.complex64)), TypeError, r"\bweight\b"),
    ("complex_bias", dict(bias=ones(6, dtype=complex)), TypeError, r"\bbias\b"),
    ("object_input", dict(input=ones(*X).astype(object)), TypeError, r"\binput\b"),
    ("string_input", dict(input=np.full(X, "a")), TypeError, r"\binput\b"),
    ("bytes_weight", dict(weight=np.full(W, b"a")), TypeError, r"\bweight\b"),
    ("string_bias", dict(bias=["a"] * 6), TypeError, r"\bbias\b"),
    ("none_input", dict(input=None), TypeError, r"\binput\b"),
    ("none_weight", dict(weight=None), TypeError, r"\bweight\b"),
    ("ragged_input", dict(input=[[[1.0, 2.0], [3.0]]]), TypeError, r"\binput\b"),
    ("datetime_input", dict(input=np.zeros(X, dtype="datetime64[s]")), TypeError, r"\binput\b"),
    ("backend_unknown", dict(backend="gpu"), ValueError, r"\bbackend\b"),
    ("backend_wrong_case", dict(backend="CPU"), ValueError, r"\bbackend\b"),
    ("backend_int", dict(backend=1), ValueError, r"\bbackend\b"),
    # an empty batch is still validated
    ("empty_batch_channel_mismatch", dict(input=ones(0, 3, 6, 7)), ValueError,
     r"\b(weight|input)\b"),
    ("empty_batch_stride_zero", dict(input=ones(0, 4, 6, 7), stride=0), ValueError,
     r"\bstride\b"),
    ("empty_batch_kernel_too_large", dict(input=ones(0, 4, 2, 7)), ValueError, r"\bweight\b"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("overrides, exc, pattern", [pytest.param(*c[1:], id=c[0]) for c in CONV2D_BAD])
def test_conv2d_rejects_bad_arguments(overrides, exc, pattern, backend):
    kwargs = dict(input=ones(*X), weight=ones(*W), bias=ones(6), backend=backend)
    kwargs.update(overrides)
    with pytest.raises(exc, match=pattern):
        fastcorr.conv2d(**kwargs)


def test_unknown_backend_message_lists_the_choices():
    with pytest.raises(ValueError, match="backend") as info:
        fastcorr.conv2d(ones(1, 1, 3, 3), ones(1, 1, 2, 2), backend="numba")
    for choice in ("'auto'", "'cpu'", "'cuda'", "'reference'"):
        assert choice in str(info.value)


def test_boundary_sizes_are_accepted():
    """The limits are exclusive/inclusive as in torch: reflect padding H - 1, circular H."""
    x = np.arange(20.0).reshape(1, 1, 4, 5)
    w = np.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    for mode, padding in (("reflect", (3, 4)), ("circular", (4, 5)), ("replicate", (9, 9))):
        got = fastcorr.conv2d(x, w, padding=padding, padding_mode=mode)
        np.testing.assert_allclose(got, torch_conv2d(x, w, padding=padding, padding_mode=mode),
                                   rtol=1e-13, atol=0)


# --------------------------------------------------------------------------- other functions

IMG, KER = ones(6, 7), ones(3, 2)

IMAGE_BAD = [
    # (id, function, args, kwargs, exception, pattern)
    ("correlate2d_mode", fastcorr.correlate2d, (IMG, KER), dict(mode="foo"), ValueError, r"\bmode\b"),
    ("correlate2d_mode_none", fastcorr.correlate2d, (IMG, KER), dict(mode=None), ValueError,
     r"\bmode\b"),
    ("correlate2d_boundary", fastcorr.correlate2d, (IMG, KER), dict(boundary="reflect"),
     ValueError, r"\bboundary\b"),
    ("correlate2d_backend", fastcorr.correlate2d, (IMG, KER), dict(backend="gpu"), ValueError,
     r"\bbackend\b"),
    ("correlate2d_fillvalue_array", fastcorr.correlate2d, (IMG, KER), dict(fillvalue=[1, 2]),
     (ValueError, TypeError), r"\bfillvalue\b"),
    ("correlate2d_fillvalue_complex", fastcorr.correlate2d, (IMG, KER), dict(fillvalue=1j),
     (ValueError, TypeError), r"\bfillvalue\b"),
    ("correlate2d_in1_3d", fastcorr.correlate2d, (ones(1, 6, 7), KER), {}, ValueError, r"\bin1\b"),
    ("correlate2d_in2_1d", fastcorr.correlate2d, (IMG, ones(3)), {}, ValueError, r"\bin2\b"),
    ("correlate2d_in1_empty", fastcorr.correlate2d, (ones(0, 7), KER), {}, ValueError, r"\bin1\b"),
    ("correlate2d_in2_empty", fastcorr.correlate2d, (IMG, ones(3, 0)), {}, ValueError, r"\bin2\b"),
    ("correlate2d_in1_complex", fastcorr.correlate2d, (IMG.astype(complex), KER), {}, TypeError,
     r"\bin1\b"),
    ("correlate2d_in2_complex", fastcorr.correlate2d, (IMG, KER + 1j), {}, TypeError, r"\bin2\b"),
    ("correlate2d_in1_strings", fastcorr.correlate2d, (np.full((6, 7), "x"), KER), {}, TypeError,
     r"\bin1\b"),
    ("correlate2d_valid_crossed_shapes", fastcorr.correlate2d, (ones(3, 5), ones(5, 3)),
     dict(mode="valid"), ValueError, r"\bin[12]\b"),
    ("convolve2d_mode", fastcorr.convolve2d, (IMG, KER), dict(mode="periodic"), ValueError,
     r"\bmode\b"),
    ("convolve2d_boundary", fastcorr.convolve2d, (IMG, KER), dict(boundary="periodic"),
     ValueError, r"\bboundary\b"),
    ("convolve2d_backend", fastcorr.convolve2d, (IMG, KER), dict(backend="opencl"), ValueError,
     r"\bbackend\b"),
    ("convolve2d_in1_3d", fastcorr.convolve2d, (ones(2, 6, 7), KER), {}, ValueError, r"\bin1\b"),
    ("convolve2d_in2_empty", fastcorr.convolve2d, (IMG, ones(0, 2)), {}, ValueError, r"\bin2\b"),
    ("convolve2d_in2_complex", fastcorr.convolve2d, (IMG, KER.astype(complex)), {}, TypeError,
     r"\bin2\b"),
    ("convolve2d_in1_object", fastcorr.convolve2d, (IMG.astype(object), KER), {}, TypeError,
     r"\bin1\b"),
    # corr2d's arguments are called X and K: its messages must use those names.
    ("corr2d_backend", fastcorr.corr2d, (IMG, KER), dict(backend="gpu"), ValueError,
     r"\bbackend\b"),
    ("corr2d_K_larger", fastcorr.corr2d, (ones(3, 3), ones(4, 2)), {}, ValueError, r"\bK\b"),
    ("corr2d_X_empty", fastcorr.corr2d, (ones(3, 0), ones(2, 2)), {}, ValueError, r"\bX\b"),
    ("corr2d_X_3d", fastcorr.corr2d, (ones(1, 6, 7), KER), {}, ValueError, r"\bX\b"),
    ("corr2d_K_1d", fastcorr.corr2d, (IMG, ones(3)), {}, ValueError, r"\bK\b"),
    ("corr2d_K_empty", fastcorr.corr2d, (IMG, ones(0, 2)), {}, ValueError, r"\bK\b"),
    ("corr2d_X_complex", fastcorr.corr2d, (IMG.astype(complex), KER), {}, TypeError, r"\bX\b"),
    ("corr2d_K_complex", fastcorr.corr2d, (IMG, KER + 1j), {}, TypeError, r"\bK\b"),
]


@pytest.mark.parametrize("func, args, kwargs, exc, pattern",
                         [pytest.param(*c[1:], id=c[0]) for c in IMAGE_BAD])
def test_image_functions_reject_bad_arguments(func, args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        func(*args, **kwargs)


# --------------------------------------------------------------------------- inputs untouched

rng = np.random.default_rng(2024)


def _calls():
    """(id, function, positional arrays, keyword args) covering every public function."""
    x = rng.standard_normal((2, 4, 6, 7))
    w = rng.standard_normal((6, 4, 3, 3))
    b = rng.standard_normal(6)
    img = rng.standard_normal((6, 7))
    ker = rng.standard_normal((3, 2))
    calls = [
        ("conv2d", fastcorr.conv2d, (x, w, b), dict(padding=1)),
        ("conv2d_float32", fastcorr.conv2d, (x.astype(np.float32), w.astype(np.float32),
                                              b.astype(np.float32)), dict(stride=2)),
        ("conv2d_mixed_int", fastcorr.conv2d, ((x * 10).astype(np.int32), w, None), {}),
        ("conv2d_reflect_same", fastcorr.conv2d, (x, w, b),
         dict(padding="same", padding_mode="reflect")),
        ("conv2d_circular", fastcorr.conv2d, (x, w, b), dict(padding=(2, 1),
                                                             padding_mode="circular")),
        ("conv2d_replicate_dilated", fastcorr.conv2d, (x, w, None),
         dict(padding=2, dilation=2, padding_mode="replicate")),
        ("conv2d_depthwise", fastcorr.conv2d, (x, rng.standard_normal((8, 1, 3, 3)), None),
         dict(groups=4, padding=1)),
        ("conv2d_unbatched", fastcorr.conv2d, (x[0], w, b), {}),
        ("conv2d_view", fastcorr.conv2d, (x[:, :, ::-1, ::2], w[..., ::-1], b[::-1]), {}),
    ]
    for mode in ("full", "same", "valid"):
        for boundary in ("fill", "wrap", "symm"):
            calls.append((f"correlate2d_{mode}_{boundary}", fastcorr.correlate2d, (img, ker),
                          dict(mode=mode, boundary=boundary, fillvalue=1.5)))
            calls.append((f"convolve2d_{mode}_{boundary}", fastcorr.convolve2d, (img, ker),
                          dict(mode=mode, boundary=boundary)))
    calls += [
        ("correlate2d_swapped_valid", fastcorr.correlate2d, (ker, img), dict(mode="valid")),
        ("convolve2d_swapped_valid", fastcorr.convolve2d, (ker, img), dict(mode="valid")),
        ("corr2d", fastcorr.corr2d, (img, ker), {}),
        ("corr2d_float32_view", fastcorr.corr2d, (img.astype(np.float32).T, ker[::-1]), {}),
    ]
    return calls


CALLS = _calls()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("func, arrays, kwargs", [pytest.param(*c[1:], id=c[0]) for c in CALLS])
def test_inputs_are_not_modified(func, arrays, kwargs, backend):
    before = [None if a is None else a.copy() for a in arrays]
    func(*arrays, backend=backend, **kwargs)
    for a, saved in zip(arrays, before):
        if a is not None:
            np.testing.assert_array_equal(a, saved)


# Read-only arrays are a distinct type to Numba: each kernel they reach compiles once more
# (several seconds each), so a few calls that reach different kernels (im2col, depthwise planes,
# the row kernel of the image functions) stand for the rest.
READ_ONLY_CALLS = ("conv2d", "conv2d_depthwise", "correlate2d_same_symm")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("func, arrays, kwargs",
                         [pytest.param(*c[1:], id=c[0]) for c in CALLS if c[0] in READ_ONLY_CALLS])
def test_read_only_inputs_work(func, arrays, kwargs, backend):
    frozen = []
    for a in arrays:
        if a is not None:
            a = a.copy()
            a.setflags(write=False)
        frozen.append(a)
    expected = func(*[None if a is None else a.copy() for a in arrays], backend=backend, **kwargs)
    np.testing.assert_array_equal(func(*frozen, backend=backend, **kwargs), expected)


# --------------------------------------------------------------------------- memory layout


def _layouts(a):
    """Views of the same values with other memory layouts."""
    yield "fortran", np.asfortranarray(a)
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    big[tuple(slice(None, None, 2) for _ in a.shape)] = a
    yield "strided", big[tuple(slice(None, None, 2) for _ in a.shape)]
    flipped = a[tuple(slice(None, None, -1) for _ in a.shape)].copy()
    yield "negative_strides", flipped[tuple(slice(None, None, -1) for _ in a.shape)]
    perm = tuple(reversed(range(a.ndim)))
    yield "transposed", np.ascontiguousarray(a.transpose(perm)).transpose(perm)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("layout", ["fortran", "strided", "negative_strides", "transposed"])
def test_conv2d_views_match_contiguous(layout, dtype, backend):
    r = np.random.default_rng(5)
    x = r.standard_normal((2, 4, 6, 7)).astype(dtype)
    w = r.standard_normal((6, 2, 3, 2)).astype(dtype)
    b = r.standard_normal(6).astype(dtype)
    views = [dict(_layouts(a))[layout] for a in (x, w, b)]
    for v, a in zip(views, (x, w, b)):
        np.testing.assert_array_equal(v, a)
        assert v.ndim < 2 or layout == "fortran" or not v.flags.c_contiguous
    for kwargs in (dict(padding=1, groups=2), dict(stride=(2, 1), padding_mode="reflect",
                                                   padding=(1, 2), groups=2)):
        expected = fastcorr.conv2d(x, w, b, backend=backend, **kwargs)
        got = fastcorr.conv2d(*views, backend=backend, **kwargs)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(
            fastcorr.conv2d(views[0][0], views[1], views[2], backend=backend, **kwargs),
            expected[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["fortran", "strided", "negative_strides", "transposed"])
@pytest.mark.parametrize("func, kwargs", [
    (fastcorr.correlate2d, dict(mode="full")), (fastcorr.correlate2d, dict(mode="same",
                                                                           boundary="symm")),
    (fastcorr.convolve2d, dict(mode="same", boundary="wrap")), (fastcorr.corr2d, {}),
], ids=["correlate2d_full", "correlate2d_same_symm", "convolve2d_same_wrap", "corr2d"])
def test_image_functions_views_match_contiguous(func, kwargs, layout, backend):
    r = np.random.default_rng(6)
    img = r.standard_normal((7, 9))
    ker = r.standard_normal((3, 4))
    img_v, ker_v = dict(_layouts(img))[layout], dict(_layouts(ker))[layout]
    np.testing.assert_array_equal(img_v, img)
    np.testing.assert_array_equal(ker_v, ker)
    np.testing.assert_array_equal(func(img_v, ker_v, backend=backend, **kwargs),
                                  func(img, ker, backend=backend, **kwargs))


def test_channels_last_view():
    """An NHWC array transposed to NCHW (a common non-contiguous view) gives torch's result."""
    r = np.random.default_rng(7)
    nhwc = r.standard_normal((2, 6, 7, 3))
    hwio = r.standard_normal((3, 3, 3, 5))
    x, w = nhwc.transpose(0, 3, 1, 2), hwio.transpose(3, 2, 0, 1)
    got = fastcorr.conv2d(x, w, padding=1)
    np.testing.assert_allclose(got, torch_conv2d(x, w, padding=1), rtol=1e-12, atol=1e-12)


def test_array_likes_are_accepted():
    x = [[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]
    w = [[[[1, 0], [0, -1]]]]
    got = fastcorr.conv2d(x, w, [0.5])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, torch_conv2d(x, w, [0.5]))


# --------------------------------------------------------------------------- out=


def _conv_args():
    r = np.random.default_rng(8)
    return r.standard_normal((2, 4, 6, 7)), r.standard_normal((6, 4, 3, 3)), r.standard_normal(6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_out_receives_the_result(dtype, backend):
    x, w, b = (a.astype(dtype) for a in _conv_args())
    expected = fastcorr.conv2d(x, w, b, padding=1, backend=backend)
    out = np.full(expected.shape, np.nan, dtype)
    fastcorr.conv2d(x, w, b, padding=1, backend=backend, out=out)
    np.testing.assert_array_equal(out, expected)

    expected3 = fastcorr.conv2d(x[1], w, b, padding=1, backend=backend)
    out3 = np.full(expected3.shape, np.nan, dtype)
    fastcorr.conv2d(x[1], w, b, padding=1, backend=backend, out=out3)
    np.testing.assert_array_equal(out3, expected3)

    img, ker = x[0, 0], w[0, 0]
    for func, kwargs in ((fastcorr.correlate2d, dict(mode="same")),
                         (fastcorr.convolve2d, dict(mode="full")), (fastcorr.corr2d, {})):
        expected2 = func(img, ker, backend=backend, **kwargs)
        out2 = np.full(expected2.shape, np.nan, dtype)
        func(img, ker, backend=backend, out=out2, **kwargs)
        np.testing.assert_array_equal(out2, expected2)


@pytest.mark.parametrize("call", ["conv2d", "conv2d_unbatched", "conv2d_empty_batch",
                                  "correlate2d", "convolve2d", "corr2d"])
def test_out_is_returned(call):
    """The contract: the result is written into ``out`` and ``out`` itself is returned."""
    x, w, b = _conv_args()
    img, ker = x[0, 0], w[0, 0]
    func, args, shape = {
        "conv2d": (fastcorr.conv2d, (x, w, b), (2, 6, 4, 5)),
        "conv2d_unbatched": (fastcorr.conv2d, (x[0], w, b), (6, 4, 5)),
        "conv2d_empty_batch": (fastcorr.conv2d, (x[:0], w, b), (0, 6, 4, 5)),
        "correlate2d": (fastcorr.correlate2d, (img, ker), (8, 9)),
        "convolve2d": (fastcorr.convolve2d, (img, ker), (8, 9)),
        "corr2d": (fastcorr.corr2d, (img, ker), (4, 5)),
    }[call]
    out = np.empty(shape)
    assert func(*args, out=out) is out


def _bad_outs():
    x, w, b = _conv_args()
    shape = (2, 6, 4, 5)
    strided = np.empty((2, 6, 4, 10))[..., ::2]
    readonly = np.empty(shape)
    readonly.setflags(write=False)
    overlap_input = np.ones((1, 1, 5, 5))
    overlap_weight = np.ones((1, 1, 1, 1))
    return [
        ("wrong_shape", (x, w, b), np.empty((2, 6, 5, 4)), ValueError),
        ("batched_shape_for_unbatched", (x[0], w, b), np.empty((1, 6, 4, 5)), ValueError),
        ("unbatched_shape_for_batched", (x[:1], w, b), np.empty((6, 4, 5)), ValueError),
        ("wrong_dtype_float32", (x, w, b), np.empty(shape, np.float32), (ValueError, TypeError)),
        ("wrong_dtype_float64", (x.astype(np.float32), w.astype(np.float32), None),
         np.empty(shape), (ValueError, TypeError)),
        ("wrong_dtype_int", (x, w, b), np.empty(shape, np.int64), (ValueError, TypeError)),
        ("strided", (x, w, b), strided, ValueError),
        ("fortran", (x, w, b), np.asfortranarray(np.empty(shape)), ValueError),
        ("read_only", (x, w, b), readonly, ValueError),
        ("list", (x, w, b), np.empty(shape).tolist(), TypeError),
        ("overlaps_input", (overlap_input, overlap_weight, None), overlap_input, ValueError),
        ("overlaps_input_view", (np.ones((1, 2, 5, 5)), overlap_weight[:, :1].repeat(2, 1), None),
         None, ValueError),
        ("overlaps_weight", (np.ones((1, 1, 1, 1)), overlap_weight, None), overlap_weight,
         ValueError),
        ("overlaps_bias", (np.ones((1, 1, 1, 1)), np.ones((4, 1, 1, 1)), np.ones(4)), None,
         ValueError),
    ]


@pytest.mark.parametrize("args, out, exc", [pytest.param(*c[1:], id=c[0]) for c in _bad_outs()])
def test_bad_out_is_rejected(args, out, exc, request):
    case = request.node.callspec.id
    if case == "overlaps_input_view":  # out is channel 1 of the input itself
        out = args[0][:, 1:, :, :].reshape(1, 1, 5, 5)
        assert np.shares_memory(out, args[0])
    if case == "overlaps_bias":  # out is the bias seen as (1, 4, 1, 1)
        out = args[2].reshape(1, 4, 1, 1)
    saved = [None if a is None else a.copy() for a in args]
    with pytest.raises(exc, match=r"\bout\b"):
        fastcorr.conv2d(*args, out=out)
    for a, s in zip(args, saved):
        if a is not None:
            np.testing.assert_array_equal(a, s)


def test_bad_out_image_functions():
    img, ker = np.ones((5, 6)), np.ones((2, 2))
    for func in (fastcorr.correlate2d, fastcorr.convolve2d):
        with pytest.raises(ValueError, match=r"\bout\b"):
            func(img, ker, out=np.empty((5, 6)))  # "full" is (6, 7)
        with pytest.raises((ValueError, TypeError), match=r"\bout\b"):
            func(img, ker, out=np.empty((6, 7), np.float32))
        with pytest.raises(ValueError, match=r"\bout\b"):
            func(img, ker, mode="same", out=img)
    with pytest.raises(ValueError, match=r"\bout\b"):
        fastcorr.corr2d(img, ker, out=np.empty((4, 5)).T)


# --------------------------------------------------------------------------- dtypes

DTYPE_TABLE = [
    # (input, weight, bias, result)
    (np.float32, np.float32, None, np.float32),
    (np.float32, np.float32, np.float32, np.float32),
    (np.float64, np.float64, None, np.float64),
    (np.float32, np.float64, None, np.float64),
    (np.float64, np.float32, None, np.float64),
    (np.float32, np.float32, np.float64, np.float64),
    (np.int64, np.int64, None, np.float64),
    (np.int32, np.int32, np.int32, np.float64),
    (np.int8, np.int16, None, np.float64),
    (np.uint8, np.uint8, None, np.float64),
    (np.bool_, np.bool_, None, np.float64),
    (np.int64, np.float64, None, np.float64),
    (np.float64, np.int64, np.int64, np.float64),
    # NumPy's promotion of a mixed pair: small integers fit in float32, wide ones do not
    (np.int8, np.float32, None, np.float32),
    (np.uint8, np.float32, np.float32, np.float32),
    (np.int16, np.float32, None, np.float32),
    (np.bool_, np.float32, None, np.float32),
    (np.float32, np.int32, None, np.float64),
    (np.int64, np.float32, None, np.float64),
    # float16 is documented to compute and return float32
    (np.float16, np.float16, None, np.float32),
    (np.float16, np.float32, None, np.float32),
    (np.float16, np.float64, None, np.float64),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("xt, wt, bt, expected", [
    pytest.param(*c, id="-".join(np.dtype(t).name if t is not None else "nobias" for t in c))
    for c in DTYPE_TABLE])
def test_dtype_promotion(xt, wt, bt, expected, backend):
    r = np.random.default_rng(9)
    # small non-negative integers: exact in every dtype and in the float32 sums
    x = r.integers(0, 2, (1, 2, 5, 6)).astype(xt)
    w = r.integers(0, 2, (3, 2, 2, 3)).astype(wt)
    b = None if bt is None else r.integers(0, 2, 3).astype(bt)
    got = fastcorr.conv2d(x, w, b, padding=1, backend=backend)
    assert got.dtype == np.dtype(expected)
    np.testing.assert_array_equal(got, torch_conv2d(x, w, b, padding=1))
    if bt is None:  # the image functions follow the same rule
        assert fastcorr.correlate2d(x[0, 0], w[0, 0], backend=backend).dtype == expected


def test_python_scalars_lists_promote_to_float64():
    got = fastcorr.corr2d([[1, 2, 3], [4, 5, 6]], [[1, 1]])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[3, 5], [9, 11]])


# --------------------------------------------------------------------------- backends


class FakeCudaArray:
    """Looks like a device array to the dispatcher (it is never dereferenced)."""

    def __init__(self, shape, typestr="<f8"):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (0, False),
                                         "version": 3, "strides": None}


@pytest.mark.no_cuda_device
@pytest.mark.parametrize("func, args", [
    (fastcorr.conv2d, (ones(1, 1, 4, 4), ones(1, 1, 2, 2))),
    (fastcorr.correlate2d, (ones(4, 4), ones(2, 2))),
    (fastcorr.convolve2d, (ones(4, 4), ones(2, 2))),
    (fastcorr.corr2d, (ones(4, 4), ones(2, 2))),
], ids=["conv2d", "correlate2d", "convolve2d", "corr2d"])
def test_cuda_backend_unavailable(func, args):
    assert issubclass(fastcorr.BackendUnavailableError, Exception)
    with pytest.raises(fastcorr.BackendUnavailableError, match="cuda"):
        func(*args, backend="cuda")


@pytest.mark.no_cuda_device
@pytest.mark.parametrize("backend", [None, "auto"])
@pytest.mark.parametrize("position", ["input", "weight", "bias", "out"])
def test_cuda_array_selects_cuda_backend(position, backend):
    args = dict(input=ones(1, 1, 4, 4), weight=ones(1, 1, 2, 2), bias=None, out=None)
    args[position] = FakeCudaArray({"input": (1, 1, 4, 4), "weight": (1, 1, 2, 2), "bias": (1,),
                                    "out": (1, 1, 3, 3)}[position])
    with pytest.raises(fastcorr.BackendUnavailableError):
        fastcorr.conv2d(args.pop("input"), args.pop("weight"), backend=backend, **args)


@pytest.mark.no_cuda_device
@pytest.mark.parametrize("func", [fastcorr.correlate2d, fastcorr.convolve2d, fastcorr.corr2d],
                         ids=["correlate2d", "convolve2d", "corr2d"])
def test_cuda_array_selects_cuda_backend_image_functions(func):
    with pytest.raises(fastcorr.BackendUnavailableError):
        func(FakeCudaArray((4, 4)), ones(2, 2))
    with pytest.raises(fastcorr.BackendUnavailableError):
        func(ones(4, 4), FakeCudaArray((2, 2)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["input", "weight", "bias"])
def test_torch_tensors_that_cannot_be_read_are_type_errors(backend, name):
    """A tensor that requires grad (torch refuses to hand out its data) and a bfloat16 one
    (NumPy has no such dtype) are TypeErrors naming the argument, never torch's own errors."""
    args = dict(input=torch.ones(1, 2, 4, 4), weight=torch.ones(3, 2, 3, 3), bias=torch.ones(3))
    for bad, pattern in [(args[name].clone().requires_grad_(), f"{name}: .*requires grad.*"
                          rf"{name}\.detach\(\)"),
                         (args[name].to(torch.bfloat16), f"{name}: torch dtype bfloat16")]:
        with pytest.raises(TypeError, match=pattern):
            fastcorr.conv2d(*(bad if k == name else a for k, a in args.items()), backend=backend)
    with pytest.raises(TypeError, match="grad_output: .*requires grad"):
        fastcorr.conv2d_backward(torch.ones(1, 3, 2, 2, requires_grad=True), args["input"],
                                 args["weight"], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cuda_array_with_host_backend_is_a_type_error(backend):
    with pytest.raises(TypeError):
        fastcorr.conv2d(FakeCudaArray((1, 1, 4, 4)), ones(1, 1, 2, 2), backend=backend)


@pytest.mark.parametrize("backend, module", [
    (None, "cpu"), ("auto", "cpu"), ("cpu", "cpu"), ("reference", "reference")])
def test_backend_choice_for_host_arrays(backend, module):
    x, w = np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 2, 2))
    with fastcorr.trace() as ran:
        got = fastcorr.conv2d(x, w, backend=backend)
    assert [r.backend for r in ran] == [module]
    np.testing.assert_array_equal(got, torch_conv2d(x, w))


def test_import_does_not_load_numba_cuda():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import fastcorr\n"
        "assert 'numba.cuda' not in sys.modules, 'after import'\n"
        "fastcorr.conv2d(np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), padding=1)\n"
        "fastcorr.correlate2d(np.ones((4, 4), np.float32), np.ones((2, 2), np.float32))\n"
        "assert 'numba' in sys.modules, 'the CPU call should have used numba'\n"
        "assert 'numba.cuda' not in sys.modules, 'after a CPU call'\n"
        "assert fastcorr.release_gpu_memory() == (0, 0)\n"
        "assert 'numba.cuda' not in sys.modules, 'after release_gpu_memory'\n"
        "print('clean')\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "clean"


# --------------------------------------------------------------------------- finiteness probe


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1 << 16, (1 << 16) + 1, 300 * 301])
def test_all_finite_finds_every_non_finite_element(dtype, size):
    """The dot-product probe of ``_host.all_finite`` (arrays from PROBE_MIN_SIZE on) misses no
    NaN or infinity, wherever it sits: the first and last elements, the odd leftover, each
    half, opposite a zero of the other half (``inf * 0``), two infinities of opposite signs."""
    from fastcorr._host import PROBE_MIN_SIZE, all_finite

    assert size >= PROBE_MIN_SIZE
    rng = np.random.default_rng(size)
    base = rng.standard_normal(size).astype(dtype)
    half = size // 2
    assert all_finite(base) and all_finite(base.reshape(-1, 1)) and all_finite(base[::2])
    for bad in (np.nan, np.inf, -np.inf):
        for at in (0, 1, half - 1, half, size - 2, size - 1, rng.integers(size)):
            x = base.copy()
            x[at] = bad
            assert not all_finite(x), (bad, at)
            assert not all_finite(np.asfortranarray(x.reshape(-1, 1)))
            if size % 301 == 0:  # a true Fortran-ordered matrix
                assert not all_finite(np.asfortranarray(x.reshape(-1, 301)))
        x = base.copy()
        x[3], x[3 + half] = bad, 0  # the probe multiplies it by zero
        assert not all_finite(x)
    x = base.copy()
    x[5], x[half + 9] = np.inf, -np.inf  # inf - inf in the probe's sum
    x[half + 5], x[9] = 1, 1
    assert not all_finite(x)


def test_all_finite_huge_finite_values_are_finite():
    """Finite elements whose products overflow the probe are settled by ``np.isfinite``."""
    from fastcorr._host import all_finite

    x = np.full(1 << 17, np.finfo(np.float32).max / 2, dtype=np.float32)
    assert all_finite(x) and all_finite(x.astype(np.float64) ** 4)
    assert all_finite(np.arange(1 << 17)) and all_finite(np.ones(10))
    assert not all_finite(np.array([1.0, np.nan]))
