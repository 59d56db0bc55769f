"""The "pointwise" implementation: 1x1 layers as matrix products, with no patch gathering.

A 1x1 kernel without padding reads each output's input pixel directly, so for every image
``n`` and group ``g`` the layer is one matrix product of the group's weights
``W_g (C_out/g, C_in/g)`` with the image's channels ``x[n, g] (C_in/g, H_out * W_out)``; a
stride is a strided view of the input (copied once into a contiguous block). NumPy's
``matmul`` runs all of them in one call (its loop over images and groups is in C):

- forward: ``out[n, g] = W_g @ x[n, g]`` (+ bias);
- input gradient: ``grad_x[n, g] = W_g.T @ grad_out[n, g]`` at the strided positions, zero
  elsewhere;
- weight gradient: ``sum_n grad_out[n, g] @ x[n, g].T``, the per-image products added in image
  order.

BLAS runs at the thread count the program gave it; results do not depend on fastcorr's.
"""

import numpy as np


def why_not(plan):
    """None for a 1x1 kernel without padding (any stride, dilation, groups), else why not."""
    if plan.weight_shape[2:] != (1, 1):
        return f"it needs a 1x1 kernel (got {plan.weight_shape[2]}x{plan.weight_shape[3]})"
    if plan.pad_top or plan.pad_bottom or plan.pad_left or plan.pad_right:
        return "it needs a layer without padding"
    return None


def _strided(x, plan):
    """The input pixels the outputs read: (N, groups, C_in/g, H_out * W_out)."""
    n, c_in = x.shape[:2]
    out_h, out_w = plan.out_shape[2:]
    sh, sw = plan.stride
    picked = x[:, :, :(out_h - 1) * sh + 1:sh, :(out_w - 1) * sw + 1:sw]
    if (sh, sw) != (1, 1) or picked.shape[2:] != x.shape[2:]:
        picked = np.ascontiguousarray(picked)
    return picked.reshape(n, plan.groups, c_in // plan.groups, out_h * out_w)


def _weights(weight, plan):
    c_out, c_in_g = plan.weight_shape[:2]
    return weight.reshape(plan.groups, c_out // plan.groups, c_in_g)


def correlate(x, weight, bias, out, plan):
    """Compute ``plan`` into ``out``."""
    n, c_out = plan.out_shape[:2]
    target = out.reshape(n, plan.groups, c_out // plan.groups, -1)
    np.matmul(_weights(weight, plan), _strided(x, plan), out=target)
    if bias is not None:
        out += bias[:, None, None]
    return out


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    n, c_in, h, w = plan.input_shape
    out_h, out_w = plan.out_shape[2:]
    sh, sw = plan.stride
    g = grad_out.reshape(n, plan.groups, -1, out_h * out_w)
    w_t = _weights(weight, plan).transpose(0, 2, 1)
    if (sh, sw) == (1, 1) and (out_h, out_w) == (h, w):
        np.matmul(w_t, g, out=grad_x.reshape(n, plan.groups, c_in // plan.groups, h * w))
        return grad_x
    grad_x[...] = 0
    product = np.matmul(w_t, g).reshape(n, c_in, out_h, out_w)
    grad_x[:, :, :(out_h - 1) * sh + 1:sh, :(out_w - 1) * sw + 1:sw] = product
    return grad_x


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten)."""
    n = plan.input_shape[0]
    g = grad_out.reshape(n, plan.groups, -1, plan.out_shape[2] * plan.out_shape[3])
    xs_t = _strided(x, plan).transpose(0, 1, 3, 2)
    per_round = max(1, PRODUCTS_ELEMENTS // grad_w.size)  # images whose products are held
    total = None
    for lo in range(0, n, per_round):
        products = np.matmul(g[lo:lo + per_round], xs_t[lo:lo + per_round])
        for product in products:  # in image order
            if total is None:
                total = product.copy()
            else:
                total += product
    grad_w[...] = total.reshape(grad_w.shape)
    return grad_w


#: At most this many elements of per-image weight-gradient products are held at once.
PRODUCTS_ELEMENTS = 1 << 24
