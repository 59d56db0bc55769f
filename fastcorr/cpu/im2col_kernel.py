"""Numba im2col and its adjoint col2im for dense and grouped layers, a block of output rows
at a time.

It is deliberately single-threaded: the matrix product that follows runs on NumPy's BLAS
threads, and alternating Numba's OpenMP threads with BLAS threads starves the latter (the
OpenMP workers spin after each parallel region). Gathering a block of rows costs a small
fraction of the product it feeds.
"""

from numba import njit

from ._indexing import gather_row, scatter_row, source_index


@njit(cache=True)
def im2col_rows(x, c_first, c_count, kh, kw, row_first, out_w, stride_h, stride_w, dil_h,
                dil_w, pad_top, pad_left, pad_mode, fill, cols):
    """Gather the patches of output rows ``row_first ...`` of channels ``c_first ...``.

    Parameters
    ----------
    x : ndarray, shape (C_in, H, W), C-contiguous
        One image.
    cols : ndarray, shape (c_count * kh * kw, n_rows * out_w), C-contiguous; overwritten
        Row ``(c * kh + p) * kw + q`` holds tap ``(p, q)`` of channel ``c_first + c`` for every
        output position of the block, so that ``weight.reshape(C_out, -1) @ cols`` is the
        block of the correlation.
    """
    h = x.shape[1]
    n_rows = cols.shape[1] // out_w
    for c in range(c_count):
        plane = x[c_first + c]
        for p in range(kh):
            for q in range(kw):
                dst_row = cols[(c * kh + p) * kw + q]
                offset = q * dil_w - pad_left
                for i in range(n_rows):
                    dst = dst_row[i * out_w:(i + 1) * out_w]
                    r = source_index((row_first + i) * stride_h + p * dil_h - pad_top, h, pad_mode)
                    if r < 0:
                        dst[:] = fill
                        continue
                    gather_row(plane[r], dst, stride_w, offset, pad_mode, fill)


@njit(cache=True)
def col2im_rows(cols, c_first, c_count, kh, kw, row_first, out_w, stride_h, stride_w, dil_h,
                dil_w, pad_top, pad_left, pad_mode, grad_x):
    """The adjoint of :func:`im2col_rows`: add each patch entry back where it was read from.

    Entries read from the padding are folded back onto the samples the boundary rule copied
    (and dropped for the fill). The adds run in one fixed order, so results are repeatable.

    Parameters
    ----------
    cols : ndarray, shape (c_count * kh * kw, n_rows * out_w), C-contiguous
    grad_x : ndarray, shape (C_in, H, W), C-contiguous; accumulated into
    """
    h = grad_x.shape[1]
    n_rows = cols.shape[1] // out_w
    for c in range(c_count):
        plane = grad_x[c_first + c]
        for p in range(kh):
            for q in range(kw):
                src_row = cols[(c * kh + p) * kw + q]
                offset = q * dil_w - pad_left
                for i in range(n_rows):
                    r = source_index((row_first + i) * stride_h + p * dil_h - pad_top, h, pad_mode)
                    if r >= 0:
                        scatter_row(src_row[i * out_w:(i + 1) * out_w], plane[r], stride_w,
                                    offset, pad_mode)
