"""Named kernels of the source material and its exercises, as float64 arrays for correlation.

Every kernel is 2-D (1-D ones are a single row), ready for :func:`fastcorr.correlate2d`.
"""

from math import comb

import numpy as np


def edge_horizontal():
    """``[[1, -1]]``: the book's edge kernel. Differences along a row: it marks vertical edges
    (1 where bright turns dark left to right, -1 where dark turns bright)."""
    return np.array([[1.0, -1.0]])


def edge_vertical():
    """``[[1], [-1]]``: differences along a column; marks horizontal edges (the transposed
    :func:`edge_horizontal`)."""
    return edge_horizontal().T.copy()


def edge_diagonal(anti=False):
    """``[[1, 0], [0, -1]]``: differences along the main diagonal (``anti=True``: along the
    anti-diagonal, ``[[0, 1], [-1, 0]]``)."""
    kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    return kernel[:, ::-1].copy() if anti else kernel


def sobel(axis=1):
    """The 3x3 Sobel kernel: a smoothed difference along ``axis`` (1: along rows, finding
    vertical edges; 0: along columns)."""
    if axis not in (0, 1):
        raise ValueError(f"axis: expected 0 or 1, got {axis!r}")
    kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    return kernel if axis == 1 else kernel.T.copy()


def second_derivative():
    """``[[-1, 2, -1]]``: the book's 1-D second-derivative kernel (the negated second
    difference, so a peak gives a positive response)."""
    return np.array([[-1.0, 2.0, -1.0]])


def laplacian():
    """The book's 2-D second-derivative kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``."""
    return np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def box(shape=(1, 3), normalize=False):
    """A kernel of ones: the book's integral kernel ``[[1, 1, ..., 1]]``.

    Parameters
    ----------
    shape : int or (int, int)
        ``(kH, kW)``; an int ``n`` means ``(1, n)``.
    normalize : bool
        Divide by the number of taps (a moving average).
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
    """
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order: expected a positive int, got {order!r}")
    return np.array([[(-1.0) ** (order - k) * comb(order, k) for k in range(order + 1)]])
