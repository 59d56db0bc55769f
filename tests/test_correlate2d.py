"""Tests of fastcorr's SciPy-style functions: corr2d, correlate2d and convolve2d.

Every numerical result is checked against an independent oracle: the source material's worked
examples, or :mod:`scipy.signal` computed in float64. The CPU (Numba) backend is also checked
against the reference (plain loops) backend.

Tolerances are derived, not guessed. For one output element the exact result is a sum of
``n`` products ``x_i * k_i`` (``n`` taps of the smaller operand, fill samples included). A
floating-point sum of ``n`` products in any order is off by at most about ``n * u * sum |x_i k_i|``
(``u`` = unit roundoff = eps / 2), so the allowed difference between two implementations is

    (n + 1) * eps(dtype) * B + n * tiny(dtype)

where ``B`` is the same correlation computed on ``|x|``, ``|k|`` and ``|fillvalue|`` (per
element), the extra ``eps * B`` covers the final rounding of a float64 result to float32, and
``n * tiny`` covers underflow of products. float32 results are compared with SciPy's float64
result on the very same (float32-representable) values. The image cases are those of
``tests/cases.py``, checked by the test body the CUDA tests share
(``helpers.check_image_forward``).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

signal = pytest.importorskip("scipy.signal")

import fastcorr  # noqa: E402
from cases import BOUNDARIES, BOUNDARY_CASES, IMAGE_SHAPES, MODES, shape_id  # noqa: E402
from helpers import (assert_within, check_image_forward, image_operands,  # noqa: E402
                     image_tolerance, scipy_image, seeded_rng)

BACKENDS = ("cpu", "reference")
FLOATS = (np.float32, np.float64)


def _call(op, x, k, mode="full", boundary="fill", fillvalue=0, **kw):
    return getattr(fastcorr, op)(x, k, mode, boundary, fillvalue, **kw)


# =========================================================================== source material


@pytest.mark.parametrize("backend", [None, "cpu", "reference"])
def test_corr2d_source_example(backend):
    X = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = np.array([[0.0, 1.0], [2.0, 3.0]])
    Y = fastcorr.corr2d(X, K, backend=backend)
    np.testing.assert_array_equal(Y, np.array([[19.0, 25.0], [37.0, 43.0]]))
    assert Y.dtype == np.float64


def test_reference_corr2d_source_example_from_lists():
    Y = fastcorr.reference.corr2d([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(Y, [[19.0, 25.0], [37.0, 43.0]])
    assert Y.dtype == np.float64


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_detection_example(backend, dtype):
    X = np.ones((6, 8), dtype=dtype)
    X[:, 2:6] = 0
    K = np.array([[1.0, -1.0]], dtype=dtype)
    expected = np.zeros((6, 7))
    expected[:, 1] = 1.0
    expected[:, 5] = -1.0

    Y = fastcorr.corr2d(X, K, backend=backend)
    assert Y.shape == (6, 7) and Y.dtype == dtype
    np.testing.assert_array_equal(Y, expected)
    np.testing.assert_array_equal(fastcorr.correlate2d(X, K, "valid", backend=backend), expected)

    # The kernel only detects vertical edges: the transposed image gives all zeros.
    Yt = fastcorr.corr2d(X.T, K, backend=backend)
    assert Yt.shape == (8, 5) and Yt.dtype == dtype
    np.testing.assert_array_equal(Yt, np.zeros((8, 5)))


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("kshape", [(3, 3), (2, 2), (4, 3), (3, 4), (1, 2), (2, 1), (5, 5)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_convolution_is_correlation_with_flipped_kernel(backend, kshape, boundary):
    rng = seeded_rng("flip", kshape, boundary)
    x = rng.standard_normal((6, 7))
    k = rng.standard_normal(kshape)
    kf = k[::-1, ::-1]
    h, w = x.shape
    kh, kw = kshape
    for mode in MODES:
        conv = fastcorr.convolve2d(x, k, mode, boundary, backend=backend)
        corr = fastcorr.correlate2d(x, kf, mode, boundary, backend=backend)
        s_conv = signal.convolve2d(x, k, mode, boundary)
        s_corr = signal.correlate2d(x, kf, mode, boundary)
        tol = image_tolerance("convolve2d", x, k, mode, boundary, 0.0, np.float64)
        # (the correlation's own bound: "same" centres even kernels differently)
        tol_corr = image_tolerance("correlate2d", x, kf, mode, boundary, 0.0, np.float64)
        assert_within(conv, s_conv, tol, f"convolve2d {mode}")
        assert_within(corr, s_corr, tol_corr, f"correlate2d {mode}")
        if mode != "same" or (kh % 2 and kw % 2):
            # full and valid always; same only for odd kernels (in SciPy as in fastcorr).
            assert np.allclose(s_conv, s_corr, rtol=1e-12, atol=1e-12)  # premise, in SciPy
            assert_within(conv, corr, tol, f"conv == corr(flipped) {mode}")
        else:
            # SciPy centres "same" differently for even kernels: correlation keeps the full
            # result from k // 2, convolution from (k - 1) // 2.
            full = signal.correlate2d(x, kf, "full", boundary)
            assert np.allclose(s_corr, full[kh // 2:kh // 2 + h, kw // 2:kw // 2 + w])
            assert np.allclose(s_conv, full[(kh - 1) // 2:(kh - 1) // 2 + h,
                                            (kw - 1) // 2:(kw - 1) // 2 + w])
            assert not np.allclose(s_conv, s_corr)  # premise: the identity fails in SciPy
            assert not np.allclose(conv, corr)  # and so it must in fastcorr


# =========================================================================== against SciPy


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("boundary,fillvalue", BOUNDARY_CASES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", IMAGE_SHAPES, ids=shape_id)
@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
def test_matches_scipy(op, shapes, mode, boundary, fillvalue, dtype):
    """Every image case of tests/cases.py (the CUDA tests run a selection of them through the
    same body, ``helpers.check_image_forward``) on both backends."""
    results = {backend: check_image_forward(backend, op, shapes, mode, boundary, fillvalue, dtype)
               for backend in BACKENDS}
    if results["cpu"] is None:  # refused, as SciPy refuses
        assert results["reference"] is None
        return
    # Each backend is within tol of the truth (to SciPy's float64 rounding), so within 2 tol of
    # each other.
    x, k = image_operands(op, shapes, mode, boundary, fillvalue, dtype)
    tol = image_tolerance(op, x, k, mode, boundary, fillvalue, dtype)
    assert_within(results["cpu"], results["reference"].astype(np.float64), 2 * tol,
                  "cpu vs reference")


@pytest.mark.parametrize("backend", BACKENDS)
def test_scipy_reference_module_functions(backend):
    rng = seeded_rng("refmod", backend)
    x = rng.standard_normal((5, 6))
    k = rng.standard_normal((3, 2))
    for op in ("correlate2d", "convolve2d"):
        for mode in MODES:
            got = getattr(fastcorr.reference, op)(x, k, mode, "symm")
            np.testing.assert_array_equal(
                got, getattr(fastcorr, op)(x, k, mode, "symm", backend="reference"))
            assert_within(got, scipy_image(op, x, k, mode, "symm"),
                          image_tolerance(op, x, k, mode, "symm", 0.0, np.float64), op)
    np.testing.assert_array_equal(fastcorr.reference.corr2d(x, k),
                                  fastcorr.corr2d(x, k, backend="reference"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape,k_shape", [((7, 5), (3, 2)), ((4, 4), (4, 4)), ((9, 3), (1, 3))])
def test_corr2d_is_valid_correlation(backend, x_shape, k_shape):
    rng = seeded_rng("corr2d", x_shape, k_shape)
    x = rng.standard_normal(x_shape)
    k = rng.standard_normal(k_shape)
    expected = signal.correlate2d(x, k, "valid")
    assert_within(fastcorr.corr2d(x, k, backend=backend), expected,
                  image_tolerance("correlate2d", x, k, "valid", "fill", 0.0, np.float64), "corr2d")


@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
def test_auto_backend_is_cpu(op):
    rng = seeded_rng("auto", op)
    x = rng.standard_normal((9, 8))
    k = rng.standard_normal((3, 4))
    cpu = _call(op, x, k, "same", "wrap", backend="cpu")
    np.testing.assert_array_equal(_call(op, x, k, "same", "wrap"), cpu)
    np.testing.assert_array_equal(_call(op, x, k, "same", "wrap", backend="auto"), cpu)


def test_larger_image_float32():
    # A bigger case for the CPU kernel's vectorised spans (the reference is too slow here).
    rng = seeded_rng("large")
    x = rng.standard_normal((61, 123)).astype(np.float32)
    k = rng.standard_normal((7, 6)).astype(np.float32)
    for op in ("correlate2d", "convolve2d"):
        for mode in MODES:
            for boundary, fv in BOUNDARY_CASES:
                got = _call(op, x, k, mode, boundary, fv, backend="cpu")
                assert_within(got, scipy_image(op, x, k, mode, boundary, fv),
                              image_tolerance(op, x, k, mode, boundary, fv, np.float32),
                              f"{op} {mode} {boundary}")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_single_thread_matches_scipy(dtype):
    # The CPU backend may pick its loop by the thread count (one image is too little work to
    # split across threads in some layouts); the answer must not depend on it.
    numba = pytest.importorskip("numba")
    threads = numba.get_num_threads()
    rng = seeded_rng("threads", np.dtype(dtype).name)
    numba.set_num_threads(1)
    try:
        for x_shape, k_shape in IMAGE_SHAPES + (((40, 33), (5, 4)),):
            x = rng.standard_normal(x_shape).astype(dtype)
            k = rng.standard_normal(k_shape).astype(dtype)
            for op in ("correlate2d", "convolve2d"):
                for mode in ("full", "same"):
                    for boundary, fv in BOUNDARY_CASES:
                        got = _call(op, x, k, mode, boundary, fv, backend="cpu")
                        assert_within(got, scipy_image(op, x, k, mode, boundary, fv),
                                      image_tolerance(op, x, k, mode, boundary, fv, dtype),
                                      f"{op} {x_shape} {k_shape} {mode} {boundary}")
    finally:
        numba.set_num_threads(threads)


# =========================================================================== hypothesis


def _arrays(max_h, max_w, dtype):
    elements = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)
    shapes = st.tuples(st.integers(1, max_h), st.integers(1, max_w))
    return hnp.arrays(dtype, shapes, elements=elements)


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    op=st.sampled_from(["correlate2d", "convolve2d"]),
    mode=st.sampled_from(MODES),
    boundary=st.sampled_from(BOUNDARIES),
    fillvalue=st.floats(-10, 10, allow_nan=False, width=32),
    dtype=st.sampled_from(FLOATS),
)
def test_property_backends_match_scipy(data, op, mode, boundary, fillvalue, dtype):
    x = data.draw(_arrays(12, 12, dtype), label="x")
    k = data.draw(_arrays(6, 6, dtype), label="k")
    try:
        expected = scipy_image(op, x, k, mode, boundary, fillvalue)
    except ValueError:
        assert mode == "valid"
        for backend in BACKENDS:
            with pytest.raises(ValueError):
                _call(op, x, k, mode, boundary, fillvalue, backend=backend)
        return
    tol = image_tolerance(op, x, k, mode, boundary, fillvalue, dtype)
    cpu = _call(op, x, k, mode, boundary, fillvalue, backend="cpu")
    ref = _call(op, x, k, mode, boundary, fillvalue, backend="reference")
    assert cpu.dtype == ref.dtype == dtype
    assert_within(cpu, expected, tol, "cpu vs scipy")
    assert_within(ref, expected, tol, "reference vs scipy")
    assert_within(cpu, ref.astype(np.float64), 2 * tol, "cpu vs reference")


@settings(max_examples=50, deadline=None)
@given(
    x_shape=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    k_shape=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    op=st.sampled_from(["correlate2d", "convolve2d"]),
    backend=st.sampled_from(BACKENDS),
)
def test_property_valid_mode_swap_and_errors(x_shape, k_shape, op, backend):
    rng = seeded_rng("valid", x_shape, k_shape, op)
    x = rng.standard_normal(x_shape)
    k = rng.standard_normal(k_shape)
    try:
        expected = scipy_image(op, x, k, "valid")
    except ValueError:
        with pytest.raises(ValueError):
            _call(op, x, k, "valid", backend=backend)
        return
    assert_within(_call(op, x, k, "valid", backend=backend), expected,
                  image_tolerance(op, x, k, "valid", "fill", 0.0, np.float64), "valid")


# =========================================================================== out=


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_out_is_written_and_returned(backend, op, mode, dtype):
    rng = seeded_rng("out", backend, op, mode)
    x = rng.standard_normal((5, 6)).astype(dtype)
    k = rng.standard_normal((2, 3)).astype(dtype)
    expected = _call(op, x, k, mode, "wrap", backend=backend)
    out = np.full(expected.shape, np.nan, dtype=dtype)  # garbage that must be overwritten
    res = _call(op, x, k, mode, "wrap", backend=backend, out=out)
    np.testing.assert_array_equal(out, expected)
    assert_within(out, scipy_image(op, x, k, mode, "wrap"),
                  image_tolerance(op, x, k, mode, "wrap", 0.0, dtype), "out")
    # What is returned is (at least) the caller's memory; identity: test_out_object_returned.
    assert np.shares_memory(res, out)
    np.testing.assert_array_equal(res, out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn,mode", [("correlate2d", "full"), ("convolve2d", "same"),
                                     ("correlate2d", "valid"), ("corr2d", None)])
def test_out_object_returned(backend, fn, mode):
    # The contract: the result is written into ``out`` and ``out`` itself is returned.
    x = np.arange(20.0).reshape(4, 5)
    k = np.array([[1.0, -2.0], [0.5, 3.0]])
    args = (x, k) if mode is None else (x, k, mode)
    shape = getattr(fastcorr, fn)(*args, backend=backend).shape
    out = np.empty(shape)
    res = getattr(fastcorr, fn)(*args, backend=backend, out=out)
    assert res is out


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_valid_swap_and_corr2d(backend):
    rng = seeded_rng("outswap", backend)
    x = rng.standard_normal((3, 4))
    k = rng.standard_normal((5, 7))
    out = np.zeros((3, 4))
    fastcorr.correlate2d(x, k, "valid", backend=backend, out=out)
    assert_within(out, signal.correlate2d(x, k, "valid"),
                  image_tolerance("correlate2d", x, k, "valid", "fill", 0.0, np.float64),
                  "swap out")
    out2 = np.zeros((3, 4))
    fastcorr.corr2d(k, x, backend=backend, out=out2)
    assert_within(out2, signal.correlate2d(k, x, "valid"),
                  image_tolerance("correlate2d", k, x, "valid", "fill", 0.0, np.float64),
                  "corr2d out")


def _bad_outs():
    shape = (6, 7)  # full correlation of (5, 6) with (2, 2)
    strided = np.zeros((6, 14))[:, ::2]
    assert strided.shape == shape and not strided.flags.c_contiguous
    fortran = np.asfortranarray(np.zeros(shape))
    readonly = np.zeros(shape)
    readonly.setflags(write=False)
    return {
        "wrong-shape": np.zeros((7, 6)),
        "wrong-shape-flat": np.zeros(42),
        "too-small": np.zeros((5, 6)),
        "wrong-dtype-f32": np.zeros(shape, dtype=np.float32),
        "wrong-dtype-int": np.zeros(shape, dtype=np.int64),
        "strided": strided,
        "fortran": fortran,
        "readonly": readonly,
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", list(_bad_outs()))
def test_bad_out_raises(backend, which):
    out = _bad_outs()[which]
    before = out.copy()
    x = np.ones((5, 6))
    k = np.ones((2, 2))
    with pytest.raises(ValueError, match="out"):
        fastcorr.correlate2d(x, k, backend=backend, out=out)
    np.testing.assert_array_equal(out, before)


def test_out_float64_rejected_for_float32_result():
    x = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="out"):
        fastcorr.correlate2d(x, x, "valid", out=np.zeros((1, 1)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_overlapping_input_raises(backend):
    buf = np.arange(100.0)
    x = buf[:25].reshape(5, 5)
    k = np.ones((2, 2))
    x_before = x.copy()
    with pytest.raises(ValueError, match="out"):
        fastcorr.correlate2d(x, k, "full", backend=backend, out=buf[10:46].reshape(6, 6))
    with pytest.raises(ValueError, match="out"):
        fastcorr.correlate2d(x, k, "same", backend=backend, out=x)
    kk = np.ones((2, 2))
    with pytest.raises(ValueError, match="out"):
        fastcorr.convolve2d(np.ones((2, 2)), kk, "valid", backend=backend, out=kk[:1, :1])
    np.testing.assert_array_equal(x, x_before)


# =========================================================================== inputs and dtypes


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_not_mutated(backend):
    rng = seeded_rng("mut", backend)
    x = rng.standard_normal((6, 5))
    k = rng.standard_normal((3, 2))
    big = rng.standard_normal((8, 7))
    x0, k0, big0 = x.copy(), k.copy(), big.copy()
    for op in ("correlate2d", "convolve2d"):
        for mode in MODES:
            for boundary in BOUNDARIES:
                _call(op, x, k, mode, boundary, 2.0, backend=backend)
                _call(op, x, big, mode, boundary, 2.0, backend=backend)
        out = np.empty((4, 4))  # valid: (6 - 3 + 1, 5 - 2 + 1)
        _call(op, x, k, "valid", backend=backend, out=out)
    fastcorr.corr2d(x, k, backend=backend)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(k, k0)
    np.testing.assert_array_equal(big, big0)


def _views(a):
    return {
        "step2-reversed": a[::2, ::-1],
        "transpose": a.T,
        "reversed-rows": a[::-1, :],
        "fortran": np.asfortranarray(a),
        "column-slice": a[1:, 1::3],
    }


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
def test_noncontiguous_views(op, backend, dtype):
    rng = seeded_rng("views", op, backend)
    base_x = rng.standard_normal((10, 9)).astype(dtype)
    base_k = rng.standard_normal((4, 5)).astype(dtype)
    for xname, xv in _views(base_x).items():
        for kname, kv in _views(base_k).items():
            xc, kc = np.ascontiguousarray(xv), np.ascontiguousarray(kv)
            for mode in ("full", "same"):
                got = _call(op, xv, kv, mode, "symm", backend=backend)
                want = _call(op, xc, kc, mode, "symm", backend=backend)
                np.testing.assert_array_equal(got, want, err_msg=f"{xname} {kname} {mode}")
                assert_within(got, scipy_image(op, xc, kc, mode, "symm"),
                              image_tolerance(op, xc, kc, mode, "symm", 0.0, dtype),
                              f"{xname} {kname} {mode}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_python_lists_accepted(backend):
    x = [[1.5, -2.0, 3.0], [0.25, 4.0, -1.0], [2.0, 2.0, 7.0], [1.0, 0.0, -3.0]]
    k = [[1, 2], [-3, 4]]
    for op in ("correlate2d", "convolve2d"):
        for mode in MODES:
            got = _call(op, x, k, mode, backend=backend)
            assert isinstance(got, np.ndarray) and got.dtype == np.float64
            # Small dyadic values: every partial sum is exact.
            np.testing.assert_array_equal(got, scipy_image(op, x, k, mode))
    got = fastcorr.correlate2d(((1, 2), (3, 4)), ((1,),), backend=backend)
    np.testing.assert_array_equal(got, [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize(
    "dx,dk,expected",
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float64, np.float64),
        (np.float32, np.float64, np.float64),
        (np.float64, np.float32, np.float64),
        (np.int64, np.int64, np.float64),
        (np.int32, np.int32, np.float64),
        (np.int8, np.int8, np.float64),
        (np.uint8, np.uint8, np.float64),
        (np.uint16, np.int16, np.float64),
        (np.bool_, np.bool_, np.float64),
        (np.int64, np.bool_, np.float64),
        (np.float16, np.float16, np.float32),
        (np.float16, np.float32, np.float32),
        (np.float16, np.float64, np.float64),
        (np.float32, np.int64, np.float64),  # NumPy promotion
        (np.int32, np.float64, np.float64),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_result_dtype(backend, dx, dk, expected):
    rng = seeded_rng("dtype", np.dtype(dx).name, np.dtype(dk).name)
    if np.dtype(dx) == np.bool_:
        x = rng.integers(0, 2, (5, 4)).astype(dx)
    else:
        x = (rng.integers(0, 8, (5, 4)) if np.dtype(dx).kind in "ub"
             else rng.integers(-8, 8, (5, 4))).astype(dx)
    if np.dtype(dk) == np.bool_:
        k = rng.integers(0, 2, (2, 3)).astype(dk)
    else:
        k = (rng.integers(0, 8, (2, 3)) if np.dtype(dk).kind in "ub"
             else rng.integers(-8, 8, (2, 3))).astype(dk)
    for op in ("correlate2d", "convolve2d"):
        for mode in ("full", "valid"):
            got = _call(op, x, k, mode, backend=backend)
            assert got.dtype == expected, (op, mode)
            # Small integers: every partial sum is exact in float32 and float64, so SciPy on
            # the float64 values (no uint8 wrap-around) is matched exactly.
            np.testing.assert_array_equal(got, scipy_image(op, x, k, mode))
    assert fastcorr.corr2d(x, k, backend=backend).dtype == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_integers_are_computed_in_float64(backend):
    x = np.array([[2**40, 3], [5, 7]], dtype=np.int64)
    k = np.array([[1, 1]], dtype=np.int64)
    got = fastcorr.correlate2d(x, k, "valid", backend=backend)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[2.0**40 + 3], [12.0]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_values(backend):
    rng = seeded_rng("f16")
    x = rng.standard_normal((6, 5)).astype(np.float16)
    k = rng.standard_normal((3, 3)).astype(np.float16)
    got = fastcorr.correlate2d(x, k, "same", "wrap", backend=backend)
    assert got.dtype == np.float32
    assert_within(got, scipy_image("correlate2d", x, k, "same", "wrap"),
                  image_tolerance("correlate2d", x, k, "same", "wrap", 0.0, np.float32), "f16")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["in1", "in2"])
@pytest.mark.parametrize(
    "bad",
    [
        np.ones((3, 3), dtype=np.complex128),
        np.ones((3, 3), dtype=np.complex64),
        np.array([[1, 2], [3, "a"]], dtype=object),
        np.array([["a", "b"], ["c", "d"]]),
    ],
    ids=["complex128", "complex64", "object", "str"],
)
def test_non_real_input_raises_typeerror(backend, which, bad):
    good = np.ones((3, 3))
    args = (bad, np.ones((1, 1))) if which == "in1" else (good, bad)
    for fn in (fastcorr.correlate2d, fastcorr.convolve2d, fastcorr.corr2d):
        with pytest.raises(TypeError):
            fn(*args, backend=backend)


def test_complex_python_values_raise_typeerror():
    with pytest.raises(TypeError):
        fastcorr.correlate2d([[1 + 2j, 0], [0, 1]], [[1.0]])


# =========================================================================== NaN and Inf


def _assert_same_nonfinite(got, expected, tol, what):
    for mask in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(mask(got), mask(expected), err_msg=f"{what} {mask.__name__}")
    finite = np.isfinite(expected)
    assert_within(got[finite], expected[finite], tol[finite], what)


def _special_cases():
    rng = seeded_rng("special")
    x = rng.standard_normal((6, 7))
    k = rng.standard_normal((3, 2))
    x_nan = x.copy()
    x_nan[2, 3] = np.nan
    x_inf = x.copy()
    x_inf[1, 1] = np.inf
    x_inf[4, 5] = -np.inf
    x_edge = x.copy()
    x_edge[0, 0] = np.inf
    x_edge[5, 6] = np.nan
    k_zero = k.copy()
    k_zero[0, 0] = 0.0  # inf * 0 = nan
    k_inf = k.copy()
    k_inf[1, 1] = np.inf
    return {
        "nan-in-x": (x_nan, k),
        "inf-in-x": (x_inf, k),
        "inf-in-x-zero-tap": (x_inf, k_zero),
        "edge-specials": (x_edge, k),
        "inf-in-k": (x, k_inf),
        "nan-in-k": (x, np.where(k > 0.5, np.nan, k)),
    }


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(_special_cases()))
def test_nan_inf_propagate_like_scipy(case, backend, dtype):
    x, k = _special_cases()[case]
    x, k = x.astype(dtype), k.astype(dtype)
    finite_x = np.where(np.isfinite(x), x, 0)
    finite_k = np.where(np.isfinite(k), k, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        for op in ("correlate2d", "convolve2d"):
            for mode in MODES:
                for boundary, fv in BOUNDARY_CASES:
                    expected = scipy_image(op, x, k, mode, boundary, fv)
                    got = _call(op, x, k, mode, boundary, fv, backend=backend)
                    tol = image_tolerance(op, finite_x, finite_k, mode, boundary, fv, dtype)
                    _assert_same_nonfinite(got, expected, tol, f"{op} {mode} {boundary}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_fillvalue_like_scipy(backend):
    rng = seeded_rng("nanfill")
    x = rng.standard_normal((4, 5))
    k = rng.standard_normal((2, 3))
    for op in ("correlate2d", "convolve2d"):
        for mode in MODES:
            expected = scipy_image(op, x, k, mode, "fill", np.nan)
            got = _call(op, x, k, mode, "fill", np.nan, backend=backend)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=mode)
            if mode != "valid":
                assert np.isnan(got).any()  # premise: the fill is reached


# =========================================================================== bad arguments


@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("mode", ["bogus", "Full", "", None, 1])
def test_unknown_mode(op, mode):
    with pytest.raises(ValueError, match="mode"):
        _call(op, np.ones((3, 3)), np.ones((2, 2)), mode)


@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("boundary", ["reflect", "periodic", "zeros", "Fill", None])
def test_unknown_boundary(op, boundary):
    with pytest.raises(ValueError, match="boundary"):
        _call(op, np.ones((3, 3)), np.ones((2, 2)), "full", boundary)


@pytest.mark.parametrize("op", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("alias,name", [("pad", "fill"), ("circular", "wrap"),
                                        ("symmetric", "symm")])
def test_scipy_boundary_aliases(op, alias, name):
    rng = np.random.default_rng(11)
    x, k = rng.standard_normal((9, 8)), rng.standard_normal((3, 4))
    for mode in ("full", "same", "valid"):
        got = _call(op, x, k, mode, alias, 0.5)
        assert np.array_equal(got, _call(op, x, k, mode, name, 0.5))
        expected = getattr(signal, op)(x, k, mode, alias, 0.5)
        assert np.allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["gpu", "CPU", "numba", "", 0, "ref"])
def test_unknown_backend(backend):
    x, k = np.ones((3, 3)), np.ones((2, 2))
    for fn in (fastcorr.correlate2d, fastcorr.convolve2d, fastcorr.corr2d):
        with pytest.raises(ValueError, match="backend"):
            fn(x, k, backend=backend)


@pytest.mark.no_cuda_device
def test_cuda_backend_unavailable():
    x, k = np.ones((3, 3)), np.ones((2, 2))
    for fn in (fastcorr.correlate2d, fastcorr.convolve2d, fastcorr.corr2d):
        with pytest.raises(fastcorr.BackendUnavailableError):
            fn(x, k, backend="cuda")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["in1", "in2"])
@pytest.mark.parametrize("shape", [(), (3,), (2, 3, 3), (1, 1, 2, 2)])
def test_wrong_ndim(backend, which, shape):
    bad = np.ones(shape)
    good = np.ones((4, 4))
    args = (bad, good) if which == "in1" else (good, bad)
    for op in ("correlate2d", "convolve2d"):
        with pytest.raises(ValueError, match=which):
            _call(op, *args, "full", backend=backend)
    with pytest.raises(ValueError):
        fastcorr.corr2d(*args, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["in1", "in2"])
@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
@pytest.mark.parametrize("mode", MODES)
def test_empty_arrays(backend, which, shape, mode):
    bad = np.ones(shape)
    good = np.ones((3, 3))
    args = (bad, good) if which == "in1" else (good, bad)
    for op in ("correlate2d", "convolve2d"):
        with pytest.raises(ValueError):
            _call(op, *args, mode, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape,k_shape", [((3, 5), (5, 3)), ((5, 3), (3, 5)), ((4, 4), (5, 2))])
def test_valid_mode_neither_dominates(backend, x_shape, k_shape):
    x, k = np.ones(x_shape), np.ones(k_shape)
    with pytest.raises(ValueError):
        signal.correlate2d(x, k, "valid")  # premise: SciPy refuses too
    for op in ("correlate2d", "convolve2d"):
        with pytest.raises(ValueError):
            _call(op, x, k, "valid", backend=backend)
        # full and same are fine with the same shapes
        for mode in ("full", "same"):
            assert _call(op, x, k, mode, backend=backend).shape == scipy_image(op, x, k, mode).shape


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k_shape", [(4, 2), (2, 4), (4, 4), (3, 5)])
def test_corr2d_kernel_larger_than_image(backend, k_shape):
    X = np.ones((3, 3))
    with pytest.raises(ValueError):
        fastcorr.corr2d(X, np.ones(k_shape), backend=backend)
