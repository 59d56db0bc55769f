"""The reference loops behind the same entry points as the compiled backends."""

import numpy as np

from . import reference


def forward(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out`` with :func:`fastcorr.reference.forward`."""
    out[...] = reference.forward(x, weight, bias, plan)
    return out


def grad_input(grad_out, weight, grad_x, plan):
    """:func:`fastcorr.reference.grad_input` into ``grad_x``."""
    grad_x[...] = reference.grad_input(grad_out, weight, plan)
    return grad_x


def grad_weight(grad_out, x, grad_w, plan):
    """:func:`fastcorr.reference.grad_weight` into ``grad_w``."""
    grad_w[...] = reference.grad_weight(grad_out, x, plan)
    return grad_w


def grad_bias(grad_out, grad_b, plan):
    """The sum of ``grad_out`` over batch and space, in float64, into ``grad_b``."""
    grad_b[...] = grad_out.sum(axis=(0, 2, 3), dtype=np.float64)
    return grad_b
