"""The ``fastcorr`` command: ``demo`` walks through the source material, ``info`` describes the
installation."""

import argparse
import sys

import numpy as np


def _show(title, array):
    print(f"{title}  shape {array.shape}")
    text = np.array2string(np.asarray(array), precision=3, suppress_small=True, floatmode="maxprec")
    print("    " + text.replace("\n", "\n    "))
    print()


def edge_image():
    """The source material's 6x8 image: white (1) with columns 2..5 black (0)."""
    image = np.ones((6, 8))
    image[:, 2:6] = 0.0
    return image


def demo(args):
    """Reproduce the examples of the "Convolutions for Images" chapter on built-in data."""
    import fastcorr

    print("fastcorr demo: 2-D cross-correlation, after 'Convolutions for Images'\n")

    X = np.arange(9.0).reshape(3, 3)
    K = np.arange(4.0).reshape(2, 2)
    print("1. corr2d slides K over X and sums the products (no padding, stride 1).")
    _show("X", X)
    _show("K", K)
    _show("corr2d(X, K)  -- the book gives [[19, 25], [37, 43]]", fastcorr.corr2d(X, K))

    image = edge_image()
    edge = np.array([[1.0, -1.0]])
    print("2. Edge detection: a white image with a black band, and the kernel [[1, -1]].")
    _show("image", image)
    edges = fastcorr.corr2d(image, edge)
    _show("corr2d(image, [[1, -1]])  -- 1 where white turns black, -1 where black turns white",
          edges)
    _show("corr2d(image.T, [[1, -1]])  -- the transposed image has no vertical edges",
          fastcorr.corr2d(image.T, edge))

    print("3. Convolution is correlation with the kernel flipped both ways.")
    conv = fastcorr.convolve2d(X, K, mode="valid")
    _show("convolve2d(X, K, 'valid')", conv)
    _show("corr2d(X, K[::-1, ::-1])", fastcorr.corr2d(X, K[::-1, ::-1]))

    print("4. The same computation as a layer: conv2d on a batch, as torch.nn.functional.conv2d.")
    batch = np.stack([image, 1.0 - image])[:, None]  # (2, 1, 6, 8): the image and its negative
    out = fastcorr.conv2d(batch, edge[None, None], bias=np.array([0.5]))
    _show("conv2d(batch, weight [[[[1, -1]]]], bias 0.5)[1, 0]  -- the negative's edges, + 0.5",
          out[1, 0])

    fast = fastcorr.correlate2d(image, edge, mode="same", boundary="symm")
    slow = fastcorr.correlate2d(image, edge, mode="same", boundary="symm", backend="reference")
    print("5. Every compiled kernel is checked against the naive reference loops:")
    print(f"   correlate2d(image, [[1, -1]], 'same', 'symm'): cpu and reference agree: "
          f"{np.array_equal(fast, slow)}\n")
    return 0


def info(args):
    """Print versions, Numba's threading, whether CUDA is usable, and the kernel cache."""
    import numba

    import fastcorr

    from .cpu.forward_kernel import correlate_rows

    print(f"fastcorr        {fastcorr.__version__}")
    print(f"python          {sys.version.split()[0]}")
    print(f"numpy           {np.__version__}")
    print(f"numba           {numba.__version__}")
    # the threading layer is chosen when a parallel kernel first runs
    fastcorr.correlate2d(np.ones((4, 4)), np.ones((2, 2)))
    print(f"threading layer {numba.threading_layer()}")
    print(f"threads         {numba.get_num_threads()}")
    print(f"cuda            {_cuda_status()}")
    print(f"kernel cache    {correlate_rows._cache._cache_path}")
    return 0


def _cuda_status():
    try:
        from numba import cuda
    except ImportError as exc:
        return f"not usable: numba-cuda is not installed ({exc})"
    try:
        if cuda.is_available():
            return f"available: {cuda.get_current_device().name}"
    except Exception as exc:  # a broken driver must not break `info`
        return f"not usable: {exc}"
    return "not usable: no CUDA driver or device found (the CUDA backend is not built yet)"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastcorr", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="walk through the source material's examples").set_defaults(
        run=demo)
    commands.add_parser("info", help="versions, threading, CUDA, cache").set_defaults(run=info)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
