"""The reference loops as a backend: the same contract as the compiled ones (:mod:`fastcorr._host`).

One implementation per operation, named "loops"; it computes directly, so ``method="fft"``
is a ``ValueError``.
"""

import numpy as np

from . import _host, reference
from ._select import Implementation, Table, unsupported

NAME = "reference"
read = _host.read
check_out = _host.check_out
Call = _host.Call


def _forward(x, weight, bias, out, plan):
    out[...] = reference.forward(x, weight, bias, plan)
    return out


def _grad_input(grad_out, weight, grad_x, plan):
    grad_x[...] = reference.grad_input(grad_out, weight, plan)
    return grad_x


def _grad_weight(grad_out, x, grad_w, plan):
    grad_w[...] = reference.grad_weight(grad_out, x, plan)
    return grad_w


def _grad_bias(grad_out, grad_b, plan):
    """The sum of ``grad_out`` over batch and space, in float64, into ``grad_b``."""
    grad_b[...] = grad_out.sum(axis=(0, 2, 3), dtype=np.float64)
    return grad_b


def _table(operation, run):
    def choose(plan, method, operands):
        if method == "fft":
            raise unsupported(method, NAME, operation, "the reference computes every sum "
                              "directly, term by term")
        return "loops"

    return Table(NAME, operation, [Implementation("loops", run)], choose)


TABLES = {
    "forward": _table("forward", _forward),
    "grad_input": _table("grad_input", _grad_input),
    "grad_weight": _table("grad_weight", _grad_weight),
    "grad_bias": _table("grad_bias", _grad_bias),
}


def stream_forward(call, plan, x, weight, bias, out, per_chunk, streams, update, method):
    import sys

    return _host.stream_forward(sys.modules[__name__], call, plan, x, weight, bias, out,
                                per_chunk, streams, update, method)
