"""Helpers the test modules share: error-bound assertions, torch's convolution in float64,
the source material's image, and forcing a backend's implementations by name."""

import contextlib
import warnings

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
