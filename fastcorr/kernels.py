"""Named kernels of the source material and its exercises, as float64 arrays for correlation.

Every kernel is 2-D (1-D ones are a single row), ready for :func:`fastcorr.correlate2d`.
"""

from math import comb

import numpy as np

__all__ = ["edge_horizontal", "edge_vertical", "edge_diagonal", "sobel", "second_derivative",
           "laplacian", "box", "derivative"]


def edge_horizontal():
    """``[[1, -1]]``: the book's edge kernel. Differences along a row: it marks vertical edges
    (1 where bright turns dark left to right, -1 where dark turns bright).

    Returns
    -------
    ndarray, shape (1, 2), float64
        ``[[1.0, -1.0]]``, a new array on every call.

    See Also
    --------
    edge_vertical : the transposed kernel, for horizontal edges.
    derivative : ``derivative(1)`` is its negation, the forward difference.
    fastcorr.correlate2d : applies the kernel (as :func:`scipy.signal.correlate2d`).

    Examples
    --------
    The book's example: a white image with a black band has an edge on either side.

    >>> import numpy as np, fastcorr
    >>> from fastcorr import kernels
    >>> kernels.edge_horizontal()
    array([[ 1., -1.]])
    >>> X = np.ones((2, 8))
    >>> X[:, 2:6] = 0
    >>> fastcorr.correlate2d(X, kernels.edge_horizontal(), "valid")
    array([[ 0.,  1.,  0.,  0.,  0., -1.,  0.],
           [ 0.,  1.,  0.,  0.,  0., -1.,  0.]])
    """
    return np.array([[1.0, -1.0]])


def edge_vertical():
    """``[[1], [-1]]``: differences along a column; marks horizontal edges (the transposed
    :func:`edge_horizontal`).

    Returns
    -------
    ndarray, shape (2, 1), float64
        ``[[1.0], [-1.0]]``, a new array on every call.

    See Also
    --------
    edge_horizontal : the same difference along a row.
    fastcorr.correlate2d : applies the kernel (as :func:`scipy.signal.correlate2d`).

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> from fastcorr import kernels
    >>> kernels.edge_vertical()
    array([[ 1.],
           [-1.]])
    >>> X = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    >>> fastcorr.correlate2d(X, kernels.edge_vertical(), "valid")
    array([[1., 1.],
           [0., 0.]])
    """
    return edge_horizontal().T.copy()


def edge_diagonal(anti=False):
    """``[[1, 0], [0, -1]]``: differences along the main diagonal (``anti=True``: along the
    anti-diagonal, ``[[0, 1], [-1, 0]]``).

    Parameters
    ----------
    anti : bool, optional
        Difference along the anti-diagonal instead (the kernel mirrored left to right).

    Returns
    -------
    ndarray, shape (2, 2), float64
        A new array on every call.

    See Also
    --------
    edge_horizontal, edge_vertical : differences along a row and a column.
    fastcorr.correlate2d : applies the kernel (as :func:`scipy.signal.correlate2d`).

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> from fastcorr import kernels
    >>> kernels.edge_diagonal()
    array([[ 1.,  0.],
           [ 0., -1.]])
    >>> kernels.edge_diagonal(anti=True)
    array([[ 0.,  1.],
           [-1.,  0.]])

    A diagonal line is constant along the main diagonal, not along the anti-diagonal:

    >>> fastcorr.correlate2d(np.eye(3), kernels.edge_diagonal(), "valid")
    array([[0., 0.],
           [0., 0.]])
    >>> fastcorr.correlate2d(np.eye(3), kernels.edge_diagonal(anti=True), "valid")
    array([[ 0., -1.],
           [ 1.,  0.]])
    """
    kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    return kernel[:, ::-1].copy() if anti else kernel


def sobel(axis=1):
    """The 3x3 Sobel kernel: a smoothed difference along ``axis`` (1: along rows, finding
    vertical edges; 0: along columns).

    Parameters
    ----------
    axis : {1, 0}, optional
        1 (the default): ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]``, the difference along each
        row smoothed over three rows; 0: its transpose.

    Returns
    -------
    ndarray, shape (3, 3), float64
        A new array on every call.

    Raises
    ------
    ValueError
        If ``axis`` is neither 0 nor 1.

    See Also
    --------
    edge_horizontal, edge_vertical : the unsmoothed differences.
    scipy.ndimage.sobel : the same filter; it equals :func:`fastcorr.convolve2d` with this
        kernel, and :func:`fastcorr.correlate2d` gives its negation.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> from fastcorr import kernels
    >>> kernels.sobel()
    array([[ 1.,  0., -1.],
           [ 2.,  0., -2.],
           [ 1.,  0., -1.]])
    >>> kernels.sobel(axis=0)
    array([[ 1.,  2.,  1.],
           [ 0.,  0.,  0.],
           [-1., -2., -1.]])
    >>> ramp = np.tile(np.arange(4.0), (3, 1))  # brighter to the right
    >>> fastcorr.correlate2d(ramp, kernels.sobel(), "valid")
    array([[-8., -8.]])
    """
    if axis not in (0, 1):
        raise ValueError(f"axis: expected 0 or 1, got {axis!r}")
    kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    return kernel if axis == 1 else kernel.T.copy()


def second_derivative():
    """``[[-1, 2, -1]]``: the book's 1-D second-derivative kernel (the negated second
    difference, so a peak gives a positive response).

    Returns
    -------
    ndarray, shape (1, 3), float64
        A new array on every call.

    See Also
    --------
    derivative : ``derivative(2)`` is its negation, ``[[1, -2, 1]]``.
    laplacian : the second derivative in both directions.
    numpy.diff : ``-numpy.diff(x, 2, axis=1)`` is the "valid" correlation with this kernel.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> from fastcorr import kernels
    >>> kernels.second_derivative()
    array([[-1.,  2., -1.]])
    >>> fastcorr.correlate2d(np.array([[0.0, 0.0, 1.0, 0.0, 0.0]]), kernels.second_derivative(),
    ...                      "valid")
    array([[-1.,  2., -1.]])
    """
    return np.array([[-1.0, 2.0, -1.0]])


def laplacian():
    """The book's 2-D second-derivative kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``.

    Returns
    -------
    ndarray, shape (3, 3), float64
        The five-point Laplacian, a new array on every call. It is symmetric, so correlation
        and convolution with it agree.

    See Also
    --------
    second_derivative : the 1-D second derivative.
    scipy.ndimage.laplace : the same stencil as a filter.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> from fastcorr import kernels
    >>> kernels.laplacian()
    array([[ 0.,  1.,  0.],
           [ 1., -4.,  1.],
           [ 0.,  1.,  0.]])
    >>> x = np.add.outer(np.arange(4.0) ** 2, np.arange(4.0) ** 2)  # i**2 + j**2
    >>> fastcorr.correlate2d(x, kernels.laplacian(), "valid")
    array([[4., 4.],
           [4., 4.]])
    """
    return np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def box(shape=(1, 3), normalize=False):
    """A kernel of ones: the book's integral kernel ``[[1, 1, ..., 1]]``.

    Parameters
    ----------
    shape : int or (int, int), optional
        ``(kH, kW)``, both positive; an int ``n`` means ``(1, n)``. Default ``(1, 3)``.
    normalize : bool, optional
        Divide by the number of taps (a moving average).

    Returns
    -------
    ndarray, shape (kH, kW), float64
        Ones, or ``1 / (kH * kW)`` with ``normalize=True``.

    Raises
    ------
    ValueError
        If ``shape`` does not have two entries, or one of them is less than 1.
    TypeError
        If ``shape`` is neither an int nor a sequence.

    See Also
    --------
    scipy.ndimage.uniform_filter : the moving average (``normalize=True``) as a filter.
    fastcorr.correlate2d : applies the kernel (as :func:`scipy.signal.correlate2d`).

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> from fastcorr import kernels
    >>> kernels.box()
    array([[1., 1., 1.]])
    >>> kernels.box((2, 2), normalize=True)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    >>> fastcorr.correlate2d(np.array([[1.0, 2.0, 3.0, 4.0]]), kernels.box(3), "valid")
    array([[6., 9.]])
    """
    shape = (1, shape) if isinstance(shape, int) else tuple(shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape: expected positive (kH, kW), got {shape!r}")
    kernel = np.ones(shape)
    return kernel / kernel.size if normalize else kernel


def derivative(order):
    """The smallest kernel of the ``order``-th forward difference: ``order + 1`` taps.

    ``correlate2d(x, derivative(d), "valid")`` is the d-th finite difference along rows:
    ``[[-1, 1]]`` for d = 1, ``[[1, -2, 1]]`` for d = 2, ``[[-1, 3, -3, 1]]`` for d = 3.

    Parameters
    ----------
    order : int
        The order of the difference, at least 1.

    Returns
    -------
    ndarray, shape (1, order + 1), float64
        The binomial coefficients ``(-1) ** (order - k) * comb(order, k)``.

    Raises
    ------
    ValueError
        If ``order`` is not a positive int (booleans are refused).

    See Also
    --------
    numpy.diff : ``numpy.diff(x, order, axis=1)`` equals the "valid" correlation with it.
    second_derivative, edge_horizontal : the negated ``derivative(2)`` and ``derivative(1)``.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> from fastcorr import kernels
    >>> kernels.derivative(3)
    array([[-1.,  3., -3.,  1.]])
    >>> squares = np.array([[0.0, 1.0, 4.0, 9.0, 16.0]])
    >>> fastcorr.correlate2d(squares, kernels.derivative(2), "valid")
    array([[2., 2., 2.]])
    >>> np.diff(squares, 2, axis=1)
    array([[2., 2., 2.]])
    """
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order: expected a positive int, got {order!r}")
    return np.array([[(-1.0) ** (order - k) * comb(order, k) for k in range(order + 1)]])
