"""The input gradient of a strided layer by the stride phases of the input ("phases").

At strides ``(sh, sw)``, input row ``r = a + sh * u`` of row phase ``a`` receives the output
gradient's rows ``u + e`` through the kernel rows ``p`` with ``(a + pad_top - p) % sh == 0``
(``e = (a + pad_top - p) // sh``), and the same for the columns. So each of the ``sh * sw``
phases of the input gradient is a stride-1 correlation of the output gradient with those
taps of the kernel, rotated, and each group's kernels transposed (``C_out/g`` channels in,
``C_in/g`` out): an ordinary stride-1 forward, computed by "flat"
(:func:`fastcorr.cpu.flat.correlate`, the forward of grouped layers with few channels a
group). A kernel then stores each phase into its rows and columns of the input gradient.
im2col ("gemm") instead multiplies ``W^T`` by the output gradient into a patch matrix and
adds it back tap by tap (col2im), a scatter of short strided rows that had set its cost
(ResNeXt's grouped 3x3/2 on 56^2: most of 22 ms, Zen 3).

Zero padding and unit dilations only. The phases' forwards multiply each weight by the zeros
framing the output gradient, so a weight that is not finite goes to im2col.
"""

import functools
from dataclasses import replace

import numpy as np

from .. import _memory
from .._validate import ZEROS, Plan
from . import _pool
from ._indexing import phase_taps
from ._jit import kernel

#: Bytes of the phases' results made at a time: larger batches are computed a slab of images
#: at a time, each slab's phases stored before the next is computed. Smaller slabs, kept in
#: the cache, were slower: each is four more forwards on fewer tasks (Zen 3, float32, 256
#: channels on 56^2 in 32 groups at 3x3/2, 3.2 MB an image: 1 MiB slabs 12.3-14.9 ms, 8 MiB
#: 9.9-11.1, the whole batch of 8 7.6-8.1).
SLAB_BYTES = 32 << 20


def why_not(plan):
    """None when "phases" computes the input gradient of ``plan``, else why not."""
    if plan.stride == (1, 1):
        return "it is for strided layers (at unit strides the input gradient is one forward)"
    if plan.pad_mode != ZEROS or plan.dilation != (1, 1):
        return "it needs zero padding and unit dilations"
    kh, kw = plan.weight_shape[2:]
    h, w = plan.input_shape[2:]
    (sh, sw) = plan.stride
    if any(phase_taps(a, kh, plan.pad_top, sh, h)[1] > 0 for a in range(sh)) or any(
            phase_taps(b, kw, plan.pad_left, sw, w)[1] > 0 for b in range(sw)):
        return "its phases need padding no wider than the kernel reaches"
    return None


@functools.lru_cache(maxsize=256)
def _phases(plan):
    """Each phase ``(a, b)`` of the input, in order: ``(rows, cols, taps, sub_plan)``, its
    extent, the indices of its taps in a kernel's ``kH * kW`` (in the sub-kernel's order)
    and the plan of its stride-1 forward (None for a phase no tap reaches: zeros)."""
    n, c_in, h, w = plan.input_shape
    c_out, c_in_g, kh, kw = plan.weight_shape
    out_h, out_w = plan.out_shape[2:]
    (sh, sw) = plan.stride
    found = []
    for a in range(sh):
        row_reach, row_first, rows = phase_taps(a, kh, plan.pad_top, sh, h)
        for b in range(sw):
            col_reach, col_first, cols = phase_taps(b, kw, plan.pad_left, sw, w)
            if not row_reach or not col_reach or rows == 0 or cols == 0:
                found.append((rows, cols, None, None))
                continue
            taps = [p * kw + q for p in row_reach for q in col_reach]
            sub_kh, sub_kw = len(row_reach), len(col_reach)
            # output u of the phase reads rows u + row_first ... of the output gradient:
            # padding -row_first before (row_first <= 0, see why_not), and as much after as
            # the last of its rows reads
            sub = Plan(input_shape=(n, c_out, out_h, out_w),
                       weight_shape=(c_in, c_out // plan.groups, sub_kh, sub_kw),
                       out_shape=(n, c_in, rows, cols), stride=(1, 1), dilation=(1, 1),
                       pad_top=-row_first, pad_left=-col_first,
                       pad_bottom=rows + sub_kh - 1 - out_h + row_first,
                       pad_right=cols + sub_kw - 1 - out_w + col_first,
                       pad_mode=ZEROS, fill=0.0, groups=plan.groups, dtype=plan.dtype)
            found.append((rows, cols, np.array(taps, dtype=np.intp), sub))
    return tuple(found)


@kernel
def store_phases(phases, offsets, extents, grad_x, stride_h, stride_w, task_lo, task_hi):
    """Tasks ``plane`` (of ``N * C_in``): row ``r`` of the input gradient's plane takes, at
    columns ``b, b + sw, ...``, row ``r // sh`` of phase ``(r % sh, b)``'s plane.

    Parameters
    ----------
    phases : ndarray, shape (total,): the phases' results one after the other, phase ``k``
        from ``offsets[k]`` as (N * C_in, rows, cols) with ``extents[k] = (rows, cols)``
    grad_x : ndarray, shape (N * C_in, H, W); written
    """
    h = grad_x.shape[1]
    step = np.uintp(stride_w)
    for plane in range(task_lo, task_hi):
        dst_plane = grad_x[plane]
        for r in range(h):
            a, u = r % stride_h, r // stride_h
            dst = dst_plane[r]
            first = a * stride_w
            # stride 2: both column phases in one loop, consecutive stores (1.35x the general
            # loop on one thread, Zen 3, 256 channels of 56^2 at batch 8: 3.7-4.3 -> 5.6 ms)
            if stride_w == 2:
                even, odd = extents[first, 1], extents[first + 1, 1]
                src0 = phases[offsets[first] + (plane * extents[first, 0] + u) * even:]
                src1 = phases[offsets[first + 1] + (plane * extents[first + 1, 0] + u) * odd:]
                for v in range(np.uintp(odd)):
                    dst[np.uintp(2) * v] = src0[v]
                    dst[np.uintp(2) * v + np.uintp(1)] = src1[v]
                if even > odd:
                    dst[2 * odd] = src0[odd]
                continue
            for b in range(stride_w):
                k = first + b
                rows, cols = extents[k, 0], extents[k, 1]
                start = np.uintp(offsets[k] + (plane * rows + u) * cols)
                at = np.uintp(b)
                for v in range(np.uintp(cols)):
                    dst[at + v * step] = phases[start + v]


def grad_input(grad_out, weight, grad_x, plan):
    """Write the gradient with respect to the input into ``grad_x`` (overwritten)."""
    from . import gemm
    from .flat import correlate

    if not np.isfinite(weight).all():
        return gemm.grad_input(grad_out, weight, grad_x, plan)
    n, c_in, h, w = plan.input_shape
    c_out, c_in_g, kh, kw = plan.weight_shape
    groups = plan.groups
    found = _phases(plan)
    # a slab of images at a time: the phases' results stay in the cache until stored
    slab = max(1, min(n, SLAB_BYTES // (c_in * h * w * plan.dtype.itemsize)))
    sizes = [slab * c_in * rows * cols for rows, cols, _, _ in found]
    offsets = np.cumsum([0] + sizes).astype(np.intp)
    phases = _memory.empty(int(offsets[-1]), dtype=plan.dtype)
    extents = np.array([(rows, cols) for rows, cols, _, _ in found], dtype=np.intp)
    # each group's kernels transposed, (C_in, C_out/g, kH * kW), and each phase's taps of them
    transposed = (weight.reshape(groups, c_out // groups, c_in_g, kh * kw)
                  .transpose(0, 2, 1, 3).reshape(c_in, c_out // groups, kh * kw))
    kernels = [None if sub is None else
               np.ascontiguousarray(transposed[:, :, taps]).reshape(sub.weight_shape)
               for _, _, taps, sub in found]
    for first in range(0, n, slab):
        count = min(slab, n - first)
        starts = offsets // slab * count  # (the last slab may hold fewer images)
        for k, (rows, cols, _, sub) in enumerate(found):
            result = phases[starts[k]:starts[k + 1]]
            if sub is None:
                result[...] = 0
                continue
            if count != sub.input_shape[0]:
                sub = replace(sub, input_shape=(count,) + sub.input_shape[1:],
                              out_shape=(count,) + sub.out_shape[1:])
            correlate(grad_out[first:first + count], kernels[k], None,
                      result.reshape(sub.out_shape), sub)
        _pool.run(store_phases, count * c_in, phases, starts, extents,
                  grad_x[first:first + count].reshape(count * c_in, h, w), *plan.stride,
                  work=2 * count * c_in * h * w)
    return grad_x
