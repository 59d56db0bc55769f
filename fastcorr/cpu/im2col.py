"""im2col and its adjoint col2im for dense and grouped layers, a block of output rows at a time.

An im2col task fills the ``kW`` patch rows of one tap row of one input channel, so
:func:`fastcorr.cpu._pool.run` spreads a block's gather over the threads even for the 3
channels of an image; a col2im task scatters back every patch row of its channel, so the adds
into a plane are one task's, in a fixed order.

Rows are copied with unsigned indices into flat rows, not through row views and slice
assignments: a 3x3 layer's patch matrix is made of many short rows (one per tap, channel and
output row), and per-row overheads, not bytes, set the cost.
"""

import numpy as np

from ._indexing import in_range_span, source_index
from ._jit import helper, kernel


@kernel
def im2col_rows(x, n_first, n_count, c_first, kh, kw, row_first, out_w, stride_h, stride_w,
                dil_h, dil_w, pad_top, pad_left, pad_mode, fill, cols, task_lo, task_hi):
    """Gather the patches of output rows ``row_first ...`` of images ``n_first ... n_first +
    n_count - 1``: task ``c * kh + p`` fills the patch rows of tap row ``p`` of channel
    ``c_first + c`` (a layer of 3 input channels has 21 tasks for a 7x7 kernel, not 3 for 2
    threads to share).

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W), C-contiguous
    cols : ndarray, shape (c_count * kh * kw, n_count * n_rows * out_w), C-contiguous;
        overwritten
        Row ``(c * kh + p) * kw + q`` holds tap ``(p, q)`` of channel ``c_first + c`` for every
        output position of the block, image after image, so that
        ``weight.reshape(C_out, -1) @ cols`` is the block of the correlation.
    """
    h, w = x.shape[2], x.shape[3]
    n_rows = cols.shape[1] // (out_w * n_count)
    for task in range(task_lo, task_hi):
        c, p = task // kh, task % kh
        for image in range(n_count):
            plane = x[n_first + image, c_first + c]
            for q in range(kw):
                dst = cols[(c * kh + p) * kw + q, image * n_rows * out_w:]
                _gather_tap_rows(plane, dst, h, w, n_rows, row_first, out_w, stride_h,
                                 stride_w, q * dil_w - pad_left, p * dil_h - pad_top,
                                 pad_mode, fill)


@helper
def _gather_tap_rows(plane, dst, h, w, n_rows, row_first, out_w, stride_h, stride_w, offset,
                     row_offset, pad_mode, fill):
    """``dst[i * out_w + j]`` = the padded plane at row ``(row_first + i) * stride_h +
    row_offset``, column ``j * stride_w + offset``, for ``n_rows`` output rows.

    A column stride of 2 has a loop of its own, with the stride a constant LLVM vectorises
    (Intel Xeon, AVX-512, float32, batch 8, one process, the gathers of a call, run time
    before / after, ms: the 7x7/2 stem forward 6.6-8.4 / 5.6-7.3, 3x3/2 64 -> 128 on 56^2
    4.3-4.5 / 3.9-4.1, ResNeXt's grouped 3x3/2 weight gradient 9.5-14.2 / 11.9-12.9: the
    same samples, copied)."""
    lo, hi = in_range_span(out_w, stride_w, offset, w)
    for i in range(n_rows):
        base = i * out_w
        r = source_index((row_first + i) * stride_h + row_offset, h, pad_mode)
        if r < 0:
            for j in range(np.uintp(base), np.uintp(base + out_w)):
                dst[j] = fill
            continue
        src = plane[r]
        if stride_w == 1:
            first, start = np.uintp(base + lo), np.uintp(lo + offset)
            for t in range(np.uintp(hi - lo)):
                dst[first + t] = src[start + t]
        elif stride_w == 2:
            first, start = np.uintp(base + lo), np.uintp(lo * 2 + offset)
            for t in range(np.uintp(hi - lo)):
                dst[first + t] = src[start + np.uintp(2) * t]
        else:
            first, start = np.uintp(base + lo), np.uintp(lo * stride_w + offset)
            step = np.uintp(stride_w)
            for t in range(np.uintp(hi - lo)):
                dst[first + t] = src[start + t * step]
        for j in range(lo):
            k = source_index(j * stride_w + offset, w, pad_mode)
            dst[base + j] = src[k] if k >= 0 else fill
        for j in range(hi, out_w):
            k = source_index(j * stride_w + offset, w, pad_mode)
            dst[base + j] = src[k] if k >= 0 else fill


@kernel
def col2im_rows(cols, n_first, n_count, c_first, kh, kw, row_first, out_w, stride_h, stride_w,
                dil_h, dil_w, pad_top, pad_left, pad_mode, grad_x, task_lo, task_hi):
    """The adjoint of :func:`im2col_rows`: add each patch entry back where it was read from.
    Task ``image * c_count + c`` adds into plane ``c_first + c`` of image ``n_first + image``.

    Entries read from the padding are folded back onto the samples the boundary rule copied
    (and dropped for the fill). The adds run in one fixed order, so results are repeatable.

    Parameters
    ----------
    cols : ndarray, shape (c_count * kh * kw, n_count * n_rows * out_w), C-contiguous
    grad_x : ndarray, shape (N, C_in, H, W), C-contiguous; accumulated into
    """
    h, w = grad_x.shape[2], grad_x.shape[3]
    n_rows = cols.shape[1] // (out_w * n_count)
    c_count = cols.shape[0] // (kh * kw)
    for task in range(task_lo, task_hi):
        image, c = task // c_count, task % c_count
        plane = grad_x[n_first + image, c_first + c]
        for p in range(kh):
            for q in range(kw):
                src = cols[(c * kh + p) * kw + q, image * n_rows * out_w:]
                offset = q * dil_w - pad_left
                lo, hi = in_range_span(out_w, stride_w, offset, w)
                for i in range(n_rows):
                    base = i * out_w
                    r = source_index((row_first + i) * stride_h + p * dil_h - pad_top, h,
                                     pad_mode)
                    if r < 0:
                        continue
                    dst = plane[r]
                    if stride_w == 1:
                        first, start = np.uintp(base + lo), np.uintp(lo + offset)
                        for t in range(np.uintp(hi - lo)):
                            dst[start + t] += src[first + t]
                    else:
                        first, start = np.uintp(base + lo), np.uintp(lo * stride_w + offset)
                        step = np.uintp(stride_w)
                        for t in range(np.uintp(hi - lo)):
                            dst[start + t * step] += src[first + t]
                    for j in range(lo):
                        k = source_index(j * stride_w + offset, w, pad_mode)
                        if k >= 0:
                            dst[k] += src[base + j]
                    for j in range(hi, out_w):
                        k = source_index(j * stride_w + offset, w, pad_mode)
                        if k >= 0:
                            dst[k] += src[base + j]
