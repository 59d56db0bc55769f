"""Helpers the test modules share: error-bound assertions, the float64 oracles (torch's
convolution and gradients, SciPy's correlate2d / convolve2d) and their error bounds, the
source material's image, forcing a backend's implementations by name, and the test bodies
that every backend's tests run over the cases of ``tests/cases.py``."""

import contextlib
import warnings
import zlib

import numpy as np

import fastcorr
from fastcorr import _select
from fastcorr.dispatch import backend_tables


def assert_within(got, expected, bound, what=""):
    """``|got - expected| <= bound`` element by element, with the same shape."""
    assert got is not None, f"{what}: got None"
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    err = np.abs(got.astype(np.float64) - expected)
    ok = err <= bound
    if not ok.all():
        bound = np.broadcast_to(bound, err.shape)
        idx = tuple(int(i) for i in np.argwhere(~ok)[0])
        ratio = np.max(err / np.maximum(bound, np.finfo(np.float64).tiny))
        raise AssertionError(
            f"{what}: {int((~ok).sum())} of {ok.size} elements outside the error bound; first at "
            f"{idx}: got {got[idx]!r}, expected {expected[idx]!r}, bound {bound[idx]:.3g}; "
            f"max err/bound {ratio:.3g}"
        )


def torch_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """``torch.nn.Conv2d(..., padding_mode=...)`` in float64 with ``w`` and ``b`` copied in."""
    import torch

    as_pair = (lambda v: tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else v)
    x = torch.from_numpy(np.array(x, dtype=np.float64))
    w = np.array(w, dtype=np.float64)
    conv = torch.nn.Conv2d(
        x.shape[-3], w.shape[0], kernel_size=tuple(w.shape[2:]), stride=as_pair(stride),
        padding=as_pair(padding), dilation=as_pair(dilation), groups=groups, bias=b is not None,
        padding_mode=padding_mode, dtype=torch.float64,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problems: waking torch's pool costs more than the work
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "same" with an even kernel
            conv.weight.copy_(torch.from_numpy(w))
            if b is not None:
                conv.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float64)))
            return conv(x).numpy()
    finally:
        torch.set_num_threads(threads)


def edge_image():
    """The source material's 6x8 image: white (1) with columns 2..5 black (0)."""
    image = np.ones((6, 8))
    image[:, 2:6] = 0.0
    return image


def implementation_params(backend="cpu", operations=("forward", "grad_input", "grad_weight")):
    """``(operation, name)`` for every implementation of ``backend``'s tables."""
    tables = backend_tables(backend)
    return [(op, name) for op in operations for name in tables[op].names()]


@contextlib.contextmanager
def forced(backend, operation, name, *, require_run=True):
    """Force ``backend``'s ``operation`` to ``name`` (plans it cannot compute take the usual
    choice); yields the trace, and fails at the end if the forced implementation never ran."""
    with _select.force(backend, strict=False, **{operation: name}), fastcorr.trace() as ran:
        yield ran
    if require_run:
        assert any(r.operation == operation and r.implementation == name for r in ran), (
            f"{backend} {operation} {name!r} never ran: {sorted({r.implementation for r in ran})}")


def ran_implementations(records, operation):
    """The implementations ``records`` (from :func:`fastcorr.trace`) show for ``operation``."""
    return [r.implementation for r in records if r.operation == operation]


def seeded_rng(*key):
    """A generator seeded from ``key`` (stable across runs, unlike ``hash``)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def assert_ran(records, backend, operations):
    """``records`` (from :func:`fastcorr.trace`) show each of ``operations`` computed, and
    computed by ``backend`` alone."""
    for operation in operations:
        ran = {r.backend for r in records if r.operation == operation}
        assert ran == {backend}, f"{operation} ran on {sorted(ran)}, not {backend!r}"


def cross_backend_tolerance(dtype):
    """Tolerances between two backends' results of ``dtype`` (summed in different orders)."""
    return dict(rtol=1e-5, atol=1e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-11,
                                                                                  atol=1e-11)


def comparison_backends(backend):
    """The backends a result of ``backend`` is also compared with: the CPU and reference
    backends for any other backend (the CUDA one), none for those two."""
    return () if backend in ("cpu", "reference") else ("cpu", "reference")


# --------------------------------------------------------------------------- float64 oracles

EPS64 = np.finfo(np.float64).eps


def as_int_tuple(v):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else v


def conv2d_error_bound(x, w, b, dtype, **kwargs):
    """Element-wise forward error bound of a correlation computed in ``dtype``: a sum of ``m``
    products in a precision with unit roundoff ``u = eps / 2`` is off by at most about
    ``m * u * sum(|w| * |x|)``, so ``(m + 2) * eps * (|w| (*) |x| + |b|)`` is allowed, where
    ``(*)`` is the same correlation of the absolute values (by torch, with the same padding).
    In float64 this also covers torch's own rounding."""
    magnitude = torch_conv2d(np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(w, np.float64)),
                             None if b is None else np.abs(np.asarray(b, np.float64)), **kwargs)
    terms = int(np.prod(np.shape(w)[1:])) + (b is not None)
    return (terms + 2) * np.finfo(dtype).eps * magnitude


def torch_grads(x, w, g, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """(grad_input, grad_weight, grad_bias) of torch.nn.Conv2d in float64, as numpy arrays."""
    import torch

    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    w = np.asarray(w, np.float64)
    layer = torch.nn.Conv2d(
        xt.shape[-3], w.shape[0], kernel_size=tuple(w.shape[2:]), stride=as_int_tuple(stride),
        padding=as_int_tuple(padding), dilation=as_int_tuple(dilation), groups=groups, bias=True,
        padding_mode=padding_mode, dtype=torch.float64,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problems: torch's pool waking beside Numba's costs more
    try:
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.zero_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "same" with an even kernel
            out = layer(xt)
        out.backward(torch.from_numpy(np.asarray(g, np.float64)))
    finally:
        torch.set_num_threads(threads)
    return xt.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()


def torch_forward_shape(x, w, **kwargs):
    """The output shape torch gives (every conv2d keyword argument given), or None where
    torch rejects the layer."""
    import torch

    xt = torch.zeros(np.shape(x), dtype=torch.float64)
    try:
        layer = torch.nn.Conv2d(
            xt.shape[-3], w.shape[0], kernel_size=tuple(w.shape[2:]),
            stride=as_int_tuple(kwargs["stride"]), padding=as_int_tuple(kwargs["padding"]),
            dilation=as_int_tuple(kwargs["dilation"]), groups=kwargs["groups"], bias=False,
            padding_mode=kwargs["padding_mode"], dtype=torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return tuple(layer(xt).shape)
    except (RuntimeError, ValueError):
        return None


def grad_bounds(x, w, g, dtype, **kwargs):
    """Element-wise bounds on |fastcorr - torch| for the three gradients: a gradient element
    sums ``m`` products, off by at most ``(m + 1) * eps * sum(|terms|)`` in any order; ``m``
    and ``sum(|terms|)`` come from torch (the gradients of the all-ones problem count the
    products, those of ``(|x|, |w|, |g|)`` sum their magnitudes), and fastcorr and torch
    (float64) each make such an error: ``(eps(dtype) + eps(float64)) * (m + 1) * magnitude``."""
    x, w, g = (np.asarray(a, np.float64) for a in (x, w, g))
    counts = torch_grads(np.ones_like(x), np.ones_like(w), np.ones_like(g), **kwargs)
    mags = torch_grads(np.abs(x), np.abs(w), np.abs(g), **kwargs)
    eps = np.finfo(dtype).eps + EPS64
    return [eps * (c + 1) * m for c, m in zip(counts, mags)]


def scipy_image(op, x, k, mode="full", boundary="fill", fillvalue=0.0):
    """SciPy's correlate2d / convolve2d (``op``) in float64 on the float64 values of the
    operands."""
    from scipy import signal

    fn = signal.correlate2d if op == "correlate2d" else signal.convolve2d
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    return fn(x, k, mode=mode, boundary=boundary, fillvalue=fillvalue)


def _image_terms(x_shape, k_shape, mode):
    """Number of products summed per output element (SciPy swaps in valid mode)."""
    xs, ks = int(np.prod(x_shape)), int(np.prod(k_shape))
    if mode == "valid" and all(k >= i for i, k in zip(x_shape, k_shape)):
        return xs
    return ks


def image_tolerance(op, x, k, mode, boundary, fillvalue, dtype):
    """Per-element bound on the difference between two correct image results: ``n`` products
    summed in any order are off by at most about ``n * u * sum |x_i k_i|``, so
    ``(n + 1) * eps(dtype) * B + n * tiny(dtype)`` is allowed, where ``B`` is the same result
    on ``|x|``, ``|k|`` and ``|fillvalue|`` (the extra ``eps * B`` covers rounding a float64
    result to float32, ``n * tiny`` underflowing products)."""
    bound = scipy_image(op, np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(k, np.float64)),
                        mode, boundary, abs(fillvalue))
    n = _image_terms(np.shape(x), np.shape(k), mode)
    info = np.finfo(dtype)
    return (n + 1) * float(info.eps) * bound + n * float(info.tiny)


# --------------------------------------------------------------------------- shared test bodies
# One body per kind of result, run by the CPU tests and the CUDA tests over the cases of
# tests/cases.py; each returns what it computed (None where every backend must refuse).


def layer_operands(case, dtype, bias=None):
    """``(x, w, b)`` of a layer case (see tests/cases.py) in ``dtype``, drawn in float64 from
    a generator seeded by the case; ``b`` is None without a bias (``bias`` overrides the
    case's)."""
    rng = seeded_rng("layer", case.id)
    x = rng.standard_normal(case.input_shape)
    w = rng.standard_normal(case.weight_shape)
    b = rng.standard_normal(case.weight_shape[0])
    with_bias = case.bias if bias is None else bias
    return x.astype(dtype), w.astype(dtype), b.astype(dtype) if with_bias else None


def _refused(case, x, w, backend):
    """True, after checking that ``backend`` refuses the layer, where torch rejects it (e.g.
    reflect padding as large as the input)."""
    if torch_forward_shape(x, w, **case.conv2d_kwargs) is not None:
        return False
    import pytest

    with pytest.raises(ValueError, match="padding"):
        fastcorr.conv2d(x, w, backend=backend, **case.kwargs)
    return True


def check_layer_forward(backend, case, dtype, *, bias=None):
    """conv2d of layer ``case`` on ``backend`` in ``dtype``: a NumPy array of ``dtype``, computed
    by ``backend``, within :func:`conv2d_error_bound` of torch in float64 on the same inputs,
    and (for a backend other than the CPU and reference ones) close to those two."""
    x, w, b = layer_operands(case, dtype, bias)
    if _refused(case, x, w, backend):
        return None
    with fastcorr.trace() as ran:
        got = fastcorr.conv2d(x, w, b, backend=backend, **case.kwargs)
    assert_ran(ran, backend, ("forward",))
    assert isinstance(got, np.ndarray) and got.dtype == np.dtype(dtype)
    what = f"{backend} {np.dtype(dtype).name} {case.id} bias={b is not None}"
    assert_within(got, torch_conv2d(x, w, b, **case.kwargs),
                  conv2d_error_bound(x, w, b, dtype, **case.kwargs), what)
    for other in comparison_backends(backend):
        np.testing.assert_allclose(got, fastcorr.conv2d(x, w, b, backend=other, **case.kwargs),
                                   **cross_backend_tolerance(dtype), err_msg=f"{what} vs {other}")
    return got


def check_layer_gradients(backend, case, dtype):
    """conv2d_backward of layer ``case`` on ``backend`` in ``dtype`` (grad_input, grad_weight
    and grad_bias): NumPy arrays of ``dtype``, computed by ``backend``, within
    :func:`grad_bounds` of torch autograd in float64, and (for a backend other than the CPU
    and reference ones) close to those two."""
    x, w, _ = layer_operands(case, dtype, bias=False)
    if _refused(case, x, w, backend):
        return None
    shape = torch_forward_shape(x, w, **case.conv2d_kwargs)
    g = seeded_rng("grad_output", case.id).standard_normal(shape).astype(dtype)
    with fastcorr.trace() as ran:
        got = fastcorr.conv2d_backward(g, x, w, backend=backend, **case.kwargs)
    assert_ran(ran, backend, ("grad_input", "grad_weight", "grad_bias"))
    expected = torch_grads(x, w, g, **case.kwargs)
    bounds = grad_bounds(x, w, g, dtype, **case.kwargs)
    names = ("grad_input", "grad_weight", "grad_bias")
    for name, a, e, bound in zip(names, got, expected, bounds):
        what = f"{backend} {np.dtype(dtype).name} {case.id} {name}"
        assert isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype), what
        assert_within(a, e, bound, what)
    for other in comparison_backends(backend):
        theirs = fastcorr.conv2d_backward(g, x, w, backend=other, **case.kwargs)
        for name, a, e in zip(names, got, theirs):
            np.testing.assert_allclose(a, e, **cross_backend_tolerance(dtype),
                                       err_msg=f"{backend} {case.id} {name} vs {other}")
    return got


def image_operands(op, shapes, mode, boundary, fillvalue, dtype):
    """``(x, k)`` of an image case in ``dtype``, from a generator seeded by the case."""
    rng = seeded_rng(op, shapes, mode, boundary, fillvalue, np.dtype(dtype).name)
    x_shape, k_shape = shapes
    return rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(k_shape).astype(dtype)


def check_image_forward(backend, op, shapes, mode, boundary, fillvalue, dtype):
    """``op`` ("correlate2d" or "convolve2d") of an image case on ``backend``: of ``dtype``,
    computed by ``backend``, within :func:`image_tolerance` of SciPy in float64 (or refused
    where SciPy refuses: "valid" when neither operand dominates), and (for a backend other
    than the CPU and reference ones) close to those two."""
    import pytest

    x, k = image_operands(op, shapes, mode, boundary, fillvalue, dtype)
    fn = getattr(fastcorr, op)
    try:
        expected = scipy_image(op, x, k, mode, boundary, fillvalue)
    except ValueError:
        assert mode == "valid"
        with pytest.raises(ValueError):
            fn(x, k, mode, boundary, fillvalue, backend=backend)
        return None
    with fastcorr.trace() as ran:
        got = fn(x, k, mode, boundary, fillvalue, backend=backend)
    assert_ran(ran, backend, ("forward",))
    what = f"{backend} {op} {shapes} {mode} {boundary} {np.dtype(dtype).name}"
    assert got.dtype == dtype, what
    assert_within(got, expected, image_tolerance(op, x, k, mode, boundary, fillvalue, dtype),
                  f"{what} vs scipy")
    for other in comparison_backends(backend):
        np.testing.assert_allclose(got, fn(x, k, mode, boundary, fillvalue, backend=other),
                                   **cross_backend_tolerance(dtype), err_msg=f"{what} vs {other}")
    return got


def check_image_gradients(backend, op, shapes, mode, boundary, fillvalue):
    """``op + "_backward"`` of an image case on ``backend`` in float64 (the gradients of both
    operands): computed by ``backend``, within a derived bound of the reference backend (the
    reference on all-ones and absolute values counts the products behind each element and
    sums their magnitudes; the fill value takes part in in2's gradient), and (for a backend
    other than the CPU and reference ones) close to the CPU and reference backends."""
    forward = getattr(fastcorr, op)
    backward = getattr(fastcorr, op + "_backward")
    rng = seeded_rng(op + "_backward", shapes, mode, boundary, fillvalue)
    a, b = (rng.standard_normal(s) for s in shapes)
    g = rng.standard_normal(forward(a, b, mode, boundary, fillvalue, backend="reference").shape)
    with fastcorr.trace() as ran:
        got = backward(g, a, b, mode, boundary, fillvalue, backend=backend)
    assert_ran(ran, backend, ("grad_input", "grad_weight"))
    ref = backward(g, a, b, mode, boundary, fillvalue, backend="reference")
    counts = backward(np.ones_like(g), np.ones_like(a), np.ones_like(b), mode, boundary, 1.0,
                      backend="reference")
    mags = backward(np.abs(g), np.abs(a), np.abs(b), mode, boundary, abs(fillvalue),
                    backend="reference")
    what = f"{backend} {op} {shapes} {mode} {boundary}"
    for name, r, e, c, m in zip(("in1", "in2"), got, ref, counts, mags):
        assert isinstance(r, np.ndarray) and r.dtype == np.float64, f"{what} {name}"
        assert_within(r, e, 2 * EPS64 * (c + 1) * m, f"{what} {name}")
    for other in comparison_backends(backend):
        theirs = backward(g, a, b, mode, boundary, fillvalue, backend=other)
        for name, r, e in zip(("in1", "in2"), got, theirs):
            np.testing.assert_allclose(r, e, **cross_backend_tolerance(np.float64),
                                       err_msg=f"{what} {name} vs {other}")
    return got
