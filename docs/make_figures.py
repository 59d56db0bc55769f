"""Draw the tutorial's pictures (docs/images/*.png) with fastcorr itself.

usage: python docs/make_figures.py [--out docs/images]

Needs matplotlib (``pip install ".[docs]"``). Every picture is computed by the calls the
tutorial shows (docs/tutorial.md), so the pictures and the page cannot drift apart; the
figures are deterministic (fixed seeds).
"""

import argparse
from pathlib import Path

import numpy as np

import fastcorr
from fastcorr import kernels, nn, train


def book_image():
    """The source material's 6x8 image: white (1) with columns 2..5 black (0)."""
    X = np.ones((6, 8))
    X[:, 2:6] = 0
    return X


def shapes_image(size=64):
    """A test picture: a bright disk and a dark-on-light diagonal band."""
    y, x = np.mgrid[:size, :size]
    image = np.full((size, size), 0.2)
    image[(y - 20) ** 2 + (x - 22) ** 2 < 12 ** 2] = 1.0
    image[np.abs((y - x) - 14) < 5] = 0.6
    return image


def _show(ax, array, title, cmap="gray", symmetric=False):
    if symmetric:
        limit = max(abs(array).max(), 1e-12)
        ax.imshow(array, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    else:
        ax.imshow(array, cmap=cmap, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def figure_edges(plt, out):
    X = book_image()
    K = kernels.edge_horizontal()
    Y = fastcorr.corr2d(X, K)
    fig, axes = plt.subplots(1, 3, figsize=(8, 2.4))
    _show(axes[0], X, "X (6x8)")
    _show(axes[1], Y, "corr2d(X, [[1, -1]])", symmetric=True)
    _show(axes[2], fastcorr.corr2d(X.T, K), "corr2d(X.T, [[1, -1]])", symmetric=True)
    fig.tight_layout()
    fig.savefig(out / "edges.png", dpi=110)


def figure_loss(plt, out):
    X = book_image()
    Y = fastcorr.corr2d(X, kernels.edge_horizontal())
    layer = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False, rng=0)
    losses = train.fit(layer, X[None, None], Y[None, None], epochs=10, lr=3e-2, loss="sse")
    fig, ax = plt.subplots(figsize=(4.5, 2.8))
    ax.plot(range(1, len(losses) + 1), losses, marker="o")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("squared-error sum")
    w = layer.weight.data.ravel()
    ax.set_title(f"learned kernel [{w[0]:.3f}, {w[1]:.3f}]", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)


def figure_correlation_convolution(plt, out):
    image = np.zeros((9, 9))
    image[4, 4] = 1.0  # one bright pixel: the response is the kernel itself, or it flipped
    K = np.array([[1.0, 2.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 4.0]])
    fig, axes = plt.subplots(1, 3, figsize=(8, 2.6))
    _show(axes[0], K, "kernel K", cmap="viridis")
    _show(axes[1], fastcorr.correlate2d(image, K, "same"), "correlate2d(impulse, K)",
          cmap="viridis")
    _show(axes[2], fastcorr.convolve2d(image, K, "same"), "convolve2d(impulse, K)",
          cmap="viridis")
    fig.tight_layout()
    fig.savefig(out / "correlation_convolution.png", dpi=110)


def figure_exercises(plt, out):
    image = shapes_image()
    panels = [
        (image, "image", False),
        (fastcorr.correlate2d(image, kernels.edge_diagonal(), "same", "symm"),
         "diagonal edges [[1, 0], [0, -1]]", True),
        (fastcorr.correlate2d(image, kernels.edge_diagonal(anti=True), "same", "symm"),
         "anti-diagonal [[0, 1], [-1, 0]]", True),
        (fastcorr.correlate2d(image, kernels.second_derivative(), "same", "symm"),
         "second derivative [[-1, 2, -1]]", True),
        (fastcorr.correlate2d(image, kernels.laplacian(), "same", "symm"), "Laplacian", True),
        (fastcorr.correlate2d(image, kernels.box((5, 5), normalize=True), "same", "symm"),
         "box 5x5 (average)", False),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(8, 5.4))
    for ax, (array, title, symmetric) in zip(axes.ravel(), panels):
        _show(ax, array, title, symmetric=symmetric)
    fig.tight_layout()
    fig.savefig(out / "exercises.png", dpi=110)

    t = np.linspace(0, 1, 64)
    signal = (t ** 3)[None]  # one row: x^3 on [0, 1]
    fig, ax = plt.subplots(figsize=(5, 2.8))
    h = t[1] - t[0]
    for d in (1, 2, 3):
        diff = fastcorr.correlate2d(signal, kernels.derivative(d), "valid")[0] / h ** d
        ax.plot(t[:diff.size], diff, label=f"derivative({d}): {d + 1} taps")
    ax.set_xlabel("x")
    ax.set_title("finite differences of x^3: 3x^2, 6x, 6", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "derivatives.png", dpi=110)


FIGURES = (figure_edges, figure_loss, figure_correlation_convolution, figure_exercises)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "images"))
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for figure in FIGURES:
        figure(plt, out)
        plt.close("all")
    print(f"wrote {sorted(p.name for p in out.glob('*.png'))} to {out}")


if __name__ == "__main__":
    main()
