"""The weight gradient by shifted views of the stride phases ("shifts"): no patch matrix.

The padded input is laid out by stride phases: one long row per (input channel, phase) that
holds every image's phase plane (``phase_rows x phase_cols`` samples each, image after
image), and the output gradient on the same grid (one long row per output channel, zeros in
the grid's extra rows and columns). Tap ``(p, q)`` reads phase ``(p * dh % sh, q * dw %
sw)`` shifted by ``(p * dh // sh) * phase_cols + q * dw // sw`` samples, so its operand is a
view of those rows, and its weight gradient is one product a group over the whole grid,
``G (C_out/g x L) @ X_tap.T (L x C_in/g)``, batched over the groups by BLAS. im2col
("gemm") gathers each tap's samples into a patch matrix first, row by output row: a 3x3
layer on 28^2 outputs copies rows of 28 samples, and the gather, not the products, had
set its cost (ResNeXt's grouped 3x3/2 on 56^2: 3.1 ms of products in 21 ms).

Each valid grid position reads samples of its own image's phase plane only; the extra
positions multiply zeros of the output gradient. A sample read there that is not finite
makes a NaN the true sums do not have, so a non-finite result is computed again by im2col.
"""

import numpy as np

from .. import _memory
from . import _pool, gemm
from ._indexing import boundary_maps, phase_extent
from ._jit import kernel
from .gemm import COPY_WORK  # a copied sample's weight, as im2col's

#: Bytes of the layout (input phases and output gradient grid) made at a time: larger
#: batches are summed a slab of images at a time, the slabs' sums added in order.
SLAB_BYTES = 4 << 20


def why_not(plan):
    """None: every plan (the phases take any stride, dilation and boundary rule)."""
    return None


def grid(plan):
    """``(phase_rows, phase_cols, max_shift)`` of the plan's phase grid: a phase plane's
    shape and the largest shift a tap reads at."""
    kh, kw = plan.weight_shape[2:]
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    _, _, phase_rows, phase_cols = phase_extent(plan)
    return phase_rows, phase_cols, (kh - 1) * dh // sh * phase_cols + (kw - 1) * dw // sw


@kernel
def lay_out_phases(x, grad_out, phases, gradients, row_map, col_map, lo, hi, pad_left, fill,
                   stride_h, stride_w, phase_rows, phase_cols, rows, cols, task_lo, task_hi):
    """Tasks ``(image, channel)``, the input's C_in channels then the output gradient's
    C_out: row ``(c * sh + a) * sw + b`` of ``phases`` gets phase ``(a, b)`` of image
    ``image``'s padded plane ``c`` at ``image * phase_rows * phase_cols`` (through the
    boundary maps of the ``rows x cols`` extent; zeros past it), row ``co`` of ``gradients``
    the output gradient's plane on the grid (zeros in the extra rows and columns)."""
    c_in = x.shape[1]
    c_out, out_h, out_w = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    plane = phase_rows * phase_cols
    for task in range(task_lo, task_hi):
        image = task // (c_in + c_out)
        c = task % (c_in + c_out)
        base = image * plane
        if c >= c_in:
            dst = gradients[c - c_in]
            src = grad_out[image, c - c_in]
            for i in range(phase_rows):
                start = np.uintp(base + i * phase_cols)
                if i < out_h:
                    for j in range(np.uintp(out_w)):
                        dst[start + j] = src[i, j]
                    for j in range(np.uintp(out_w), np.uintp(phase_cols)):
                        dst[start + j] = 0
                else:
                    for j in range(np.uintp(phase_cols)):
                        dst[start + j] = 0
            continue
        plane_in = x[image, c]
        for r in range(phase_rows * stride_h):
            a, u = r % stride_h, r // stride_h
            source = row_map[r] if r < rows else -2  # -2: past the extent (zeros)
            for b in range(stride_w):
                dst = phases[(c * stride_h + a) * stride_w + b]
                start = np.uintp(base + u * phase_cols)
                if source < 0:
                    value = fill if source == -1 else 0
                    for v in range(np.uintp(phase_cols)):
                        dst[start + v] = value
                    continue
                src = plane_in[source]
                # phase columns v whose padded column v * sw + b reads the plane directly
                v_lo = max(0, -(-(lo - b) // stride_w))
                v_hi = max(v_lo, min(phase_cols, -(-(hi - b) // stride_w)))
                first = np.uintp(v_lo * stride_w + b - pad_left)
                if stride_w == 1:
                    for t in range(np.uintp(v_hi - v_lo)):
                        dst[start + np.uintp(v_lo) + t] = src[first + t]
                elif stride_w == 2:
                    for t in range(np.uintp(v_hi - v_lo)):
                        dst[start + np.uintp(v_lo) + t] = src[first + np.uintp(2) * t]
                else:
                    step = np.uintp(stride_w)
                    for t in range(np.uintp(v_hi - v_lo)):
                        dst[start + np.uintp(v_lo) + t] = src[first + t * step]
                for e in range(phase_cols - (v_hi - v_lo)):  # the edges, both sides
                    v = e if e < v_lo else e + v_hi - v_lo
                    col = v * stride_w + b
                    k = col_map[col] if col < cols else -2
                    dst[start + v] = src[k] if k >= 0 else (fill if k == -1 else 0)


def grad_weight(grad_out, x, grad_w, plan):
    """Write the gradient with respect to the weights into ``grad_w`` (overwritten)."""
    n, c_in = plan.input_shape[:2]
    c_out, c_in_g, kh, kw = plan.weight_shape
    groups = plan.groups
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    rows, cols = phase_extent(plan)[:2]
    phase_rows, phase_cols, max_shift = grid(plan)
    plane = phase_rows * phase_cols
    per_image = (c_in * sh * sw + c_out) * plane * plan.dtype.itemsize
    slab = max(1, min(n, SLAB_BYTES // per_image))
    phases = _memory.empty((c_in * sh * sw, slab * plane + max_shift), dtype=plan.dtype)
    gradients = _memory.empty((c_out, slab * plane), dtype=plan.dtype)
    row_map, col_map, lo, hi = boundary_maps(plan, rows, cols)
    fill = plan.dtype.type(plan.fill)
    by_tap = grad_w.reshape(groups, c_out // groups, c_in_g, kh, kw)
    product = _memory.empty((groups, c_out // groups, c_in_g), dtype=plan.dtype)
    by_phase = phases.reshape(c_in, sh, sw, -1)
    for first in range(0, n, slab):
        count = min(slab, n - first)
        length = count * plane
        _pool.run(lay_out_phases, count * (c_in + c_out), x[first:first + count],
                  grad_out[first:first + count], phases, gradients, row_map, col_map, lo, hi,
                  plan.pad_left, fill, sh, sw, phase_rows, phase_cols, rows, cols,
                  work=COPY_WORK * count * (c_in * sh * sw + c_out) * plane)
        phases[:, length:length + max_shift] = 0  # read by the last image's extra positions
        g = gradients[:, :length].reshape(groups, c_out // groups, length)
        for p in range(kh):
            for q in range(kw):
                shift = p * dh // sh * phase_cols + q * dw // sw
                tap = by_phase[:, p * dh % sh, q * dw % sw, shift:shift + length]
                np.matmul(g, tap.reshape(groups, c_in_g, length).transpose(0, 2, 1),
                          out=product)
                if first:
                    by_tap[..., p, q] += product
                else:
                    by_tap[..., p, q] = product
    if np.isfinite(grad_w).all():
        return grad_w
    return gemm.grad_weight(grad_out, x, grad_w, plan)
