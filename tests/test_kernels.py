"""fastcorr.kernels: the named kernels' values, shapes and what they do to images."""

import math

import numpy as np
import pytest

import fastcorr
from fastcorr import kernels
from helpers import edge_image


def valid(x, k):
    return fastcorr.correlate2d(np.asarray(x, dtype=np.float64), k, mode="valid")


# --------------------------------------------------------------------------- values and shapes


@pytest.mark.parametrize("make, expected", [
    (kernels.edge_horizontal, [[1.0, -1.0]]),
    (kernels.edge_vertical, [[1.0], [-1.0]]),
    (kernels.edge_diagonal, [[1.0, 0.0], [0.0, -1.0]]),
    (lambda: kernels.edge_diagonal(anti=True), [[0.0, 1.0], [-1.0, 0.0]]),
    (kernels.sobel, [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]),
    (lambda: kernels.sobel(axis=1), [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]),
    (lambda: kernels.sobel(axis=0), [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]),
    (kernels.second_derivative, [[-1.0, 2.0, -1.0]]),
    (kernels.laplacian, [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]),
    (kernels.box, [[1.0, 1.0, 1.0]]),
    (lambda: kernels.derivative(1), [[-1.0, 1.0]]),
    (lambda: kernels.derivative(2), [[1.0, -2.0, 1.0]]),
    (lambda: kernels.derivative(3), [[-1.0, 3.0, -3.0, 1.0]]),
    (lambda: kernels.derivative(4), [[1.0, -4.0, 6.0, -4.0, 1.0]]),
])
def test_kernel_values(make, expected):
    k = make()
    assert isinstance(k, np.ndarray)
    assert k.ndim == 2 and k.dtype == np.float64
    assert k.shape == np.shape(expected)
    np.testing.assert_array_equal(k, expected)


def test_kernels_are_fresh_arrays():
    # changing a returned kernel must not change the next one
    for make in (kernels.edge_horizontal, kernels.edge_vertical, kernels.edge_diagonal,
                 kernels.sobel, kernels.second_derivative, kernels.laplacian, kernels.box):
        k = make()
        expected = k.copy()
        k[...] = 99.0
        np.testing.assert_array_equal(make(), expected)


def test_sobel_axis0_is_the_transpose():
    np.testing.assert_array_equal(kernels.sobel(0), kernels.sobel(1).T)
    np.testing.assert_array_equal(kernels.edge_vertical(), kernels.edge_horizontal().T)
    np.testing.assert_array_equal(kernels.edge_diagonal(anti=True),
                                  kernels.edge_diagonal()[:, ::-1])


@pytest.mark.parametrize("shape, expected_shape", [(3, (1, 3)), (5, (1, 5)), (1, (1, 1)),
                                                   ((2, 3), (2, 3)), ([4, 1], (4, 1))])
def test_box_shapes(shape, expected_shape):
    k = kernels.box(shape)
    assert k.shape == expected_shape
    np.testing.assert_array_equal(k, np.ones(expected_shape))
    avg = kernels.box(shape, normalize=True)
    assert avg.shape == expected_shape
    assert avg.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(avg, 1.0 / math.prod(expected_shape))


def test_box_sums_and_averages_neighbours():
    row = (np.arange(8.0) ** 2)[None]
    np.testing.assert_array_equal(valid(row, kernels.box(3)), [[5, 14, 29, 50, 77, 110]])
    np.testing.assert_allclose(valid(row, kernels.box(3, normalize=True)),
                               np.array([[5, 14, 29, 50, 77, 110]]) / 3)
    # a moving average leaves a constant image unchanged
    np.testing.assert_allclose(valid(np.full((5, 6), 2.5), kernels.box((2, 3), normalize=True)),
                               np.full((4, 4), 2.5))


# --------------------------------------------------------------------------- derivative(order)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 6])
def test_derivative_taps_and_action_on_polynomials(order):
    k = kernels.derivative(order)
    assert k.shape == (1, order + 1)
    assert k.sum() == 0.0  # kills constants
    x = np.arange(-4.0, 9.0)
    # polynomials of degree < order vanish
    for degree in range(order):
        row = (x ** degree + 0.5 * x ** max(degree - 1, 0))[None]
        np.testing.assert_allclose(valid(row, k), 0.0, atol=1e-7 * np.abs(row).max())
    # x**order gives order! everywhere (the step is 1)
    out = valid((x ** order)[None], k)
    assert out.shape == (1, x.size - order)
    np.testing.assert_allclose(out, math.factorial(order), rtol=1e-9)
    # and a general polynomial of that degree gives its leading coefficient times order!
    poly = (3.0 * x ** order - 2.0 * x ** (order - 1) + 7.0)[None]
    np.testing.assert_allclose(valid(poly, k), 3.0 * math.factorial(order), rtol=1e-9)


def test_derivative_accepts_numpy_ints():
    np.testing.assert_array_equal(kernels.derivative(np.int64(2)), [[1.0, -2.0, 1.0]])


def test_second_derivative_on_squares_gives_minus_two():
    row = (np.arange(8.0) ** 2)[None]
    out = valid(row, kernels.second_derivative())
    np.testing.assert_array_equal(out, np.full((1, 6), -2.0))
    # it is minus derivative(2)
    np.testing.assert_array_equal(kernels.second_derivative(), -kernels.derivative(2))
    # a peak gives a positive response
    peak = np.array([[0.0, 0.0, 1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(valid(peak, kernels.second_derivative()), [[-1.0, 2.0, -1.0]])


def test_laplacian_on_a_quadratic_bowl():
    yy, xx = np.mgrid[-4:5, -5:6].astype(np.float64)
    bowl = xx ** 2 + yy ** 2
    out = valid(bowl, kernels.laplacian())
    assert out.shape == (7, 9)
    np.testing.assert_allclose(out, 4.0)
    # a x^2 + b y^2 + c xy + linear terms: 2a + 2b (the mixed and linear terms cancel)
    general = 1.5 * xx ** 2 - 0.5 * yy ** 2 + 3.0 * xx * yy + 2.0 * xx - yy + 4.0
    np.testing.assert_allclose(valid(general, kernels.laplacian()), 2 * 1.5 - 2 * 0.5, atol=1e-12)
    # linear images are harmonic
    np.testing.assert_allclose(valid(2 * xx - 3 * yy, kernels.laplacian()), 0.0, atol=1e-12)


# --------------------------------------------------------------------------- edge kernels on the book's image


def test_edge_kernels_on_the_edge_image():
    X = edge_image()
    row = np.array([0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0])

    horizontal = fastcorr.corr2d(X, kernels.edge_horizontal())
    np.testing.assert_array_equal(horizontal, np.tile(row, (6, 1)))

    # no horizontal edges in the image; the transposed image has them
    np.testing.assert_array_equal(fastcorr.corr2d(X, kernels.edge_vertical()), np.zeros((5, 8)))
    np.testing.assert_array_equal(fastcorr.corr2d(X.T, kernels.edge_horizontal()),
                                  np.zeros((8, 5)))
    np.testing.assert_array_equal(fastcorr.corr2d(X.T, kernels.edge_vertical()),
                                  np.tile(row, (6, 1)).T)

    # the diagonal kernels see the vertical edges too (the columns are constant)
    np.testing.assert_array_equal(fastcorr.corr2d(X, kernels.edge_diagonal()),
                                  np.tile(row, (5, 1)))
    np.testing.assert_array_equal(fastcorr.corr2d(X, kernels.edge_diagonal(anti=True)),
                                  -np.tile(row, (5, 1)))
    # a diagonal line is constant along the main diagonal, so that kernel gives zeros there;
    # the anti-diagonal kernel, out[i, j] = x[i, j+1] - x[i+1, j], gives +1 below the line and
    # -1 above it
    eye = np.eye(6)
    np.testing.assert_array_equal(fastcorr.corr2d(eye, kernels.edge_diagonal()), np.zeros((5, 5)))
    np.testing.assert_array_equal(fastcorr.corr2d(eye, kernels.edge_diagonal(anti=True)),
                                  np.eye(5, k=-1) - np.eye(5, k=1))


def test_sobel_on_the_edge_image():
    X = edge_image()
    along_rows = fastcorr.corr2d(X, kernels.sobel(1))
    assert along_rows.shape == (4, 6)
    np.testing.assert_array_equal(along_rows, np.tile([4.0, 4.0, 0.0, 0.0, -4.0, -4.0], (4, 1)))
    np.testing.assert_array_equal(fastcorr.corr2d(X, kernels.sobel(0)), np.zeros((4, 6)))
    np.testing.assert_array_equal(fastcorr.corr2d(X.T, kernels.sobel(0)), along_rows.T)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("call, name", [
    (lambda: kernels.sobel(2), "axis"),
    (lambda: kernels.sobel(-1), "axis"),
    (lambda: kernels.box(0), "shape"),
    (lambda: kernels.box(-3), "shape"),
    (lambda: kernels.box((0, 3)), "shape"),
    (lambda: kernels.box((2, 3, 4)), "shape"),
    (lambda: kernels.box((3,)), "shape"),
    (lambda: kernels.derivative(0), "order"),
    (lambda: kernels.derivative(-2), "order"),
    (lambda: kernels.derivative(1.5), "order"),
    (lambda: kernels.derivative(2.0), "order"),
    (lambda: kernels.derivative(True), "order"),
    (lambda: kernels.derivative("2"), "order"),
])
def test_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()
