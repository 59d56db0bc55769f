"""The ``fastcorr`` command: ``demo`` walks through the source material, ``info`` describes the
installation, ``warmup`` compiles the kernels ahead of use, ``bench`` times fastcorr against its
peers."""

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
    from fastcorr import kernels, nn, train

    print("fastcorr demo: 2-D cross-correlation, after 'Convolutions for Images'\n")

    X = np.arange(9.0).reshape(3, 3)
    K = np.arange(4.0).reshape(2, 2)
    print("1. corr2d slides K over X and sums the products (no padding, stride 1).")
    _show("X", X)
    _show("K", K)
    _show("corr2d(X, K)  -- the book gives [[19, 25], [37, 43]]", fastcorr.corr2d(X, K))

    image = edge_image()
    edge = kernels.edge_horizontal()
    print("2. Edge detection: a white image with a black band, and the kernel [[1, -1]].")
    _show("image", image)
    edges = fastcorr.corr2d(image, edge)
    _show("corr2d(image, [[1, -1]])  -- 1 where white turns black, -1 where black turns white",
          edges)
    _show("corr2d(image.T, [[1, -1]])  -- the transposed image has no vertical edges",
          fastcorr.corr2d(image.T, edge))
    _show("corr2d(image.T, [[1], [-1]])  -- the transposed kernel finds them again",
          fastcorr.corr2d(image.T, kernels.edge_vertical()))

    print("3. Learning the kernel from (image, edges): Conv2d(1, 1, kernel_size=(1, 2), "
          "bias=False),\n   sum of squared errors, plain gradient steps, lr 3e-2, 10 epochs.")
    layer = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False, rng=args.seed)
    history = train.fit(layer, image[None, None], edges[None, None], epochs=10, lr=3e-2,
                        loss="sse")
    for epoch, value in enumerate(history, 1):
        print(f"   epoch {epoch:2d}, loss {value:9.4f}")
    print(f"   learned kernel {np.round(layer.weight.data.reshape(-1), 4)}  (the truth: [1, -1])\n")

    print("4. Convolution is correlation with the kernel flipped both ways.")
    _show("convolve2d(X, K, 'valid')", fastcorr.convolve2d(X, K, mode="valid"))
    _show("corr2d(X, K[::-1, ::-1])", fastcorr.corr2d(X, K[::-1, ::-1]))

    print("5. Exercises: a diagonal edge, and kernels designed by hand.")
    diagonal = np.eye(6)
    _show("corr2d(eye(6), [[1, -1]])  -- a diagonal line gives 1 and -1 along the diagonal",
          fastcorr.corr2d(diagonal, edge))
    ramp = (np.arange(8.0) ** 2)[None]
    _show("a row of squares x**2", ramp)
    _show("corr2d(x**2, second_derivative() = [[-1, 2, -1]])  -- minus the second difference, -2",
          fastcorr.corr2d(ramp, kernels.second_derivative()))
    for order in (1, 2, 3):
        _show(f"derivative({order}): the smallest kernel of a difference of order {order} has "
              f"{order + 1} taps", kernels.derivative(order))
    _show("laplacian()", kernels.laplacian())
    _show("corr2d(x**2, box(3))  -- the integral kernel sums 3 neighbours",
          fastcorr.corr2d(ramp, kernels.box(3)))

    fast = fastcorr.correlate2d(image, edge, mode="same", boundary="symm")
    slow = fastcorr.correlate2d(image, edge, mode="same", boundary="symm", backend="reference")
    print("6. Every compiled kernel is checked against the naive reference loops:")
    print(f"   correlate2d(image, [[1, -1]], 'same', 'symm'): cpu and reference agree: "
          f"{np.array_equal(fast, slow)}\n")

    if args.plot:
        return _plot(args.plot, image, edges, history)
    return 0


def _plot(path, image, edges, history):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib: pip install 'fastcorr[plot]' (or pip install matplotlib)",
              file=sys.stderr)
        return 2
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("image")
    shown = axes[1].imshow(edges, cmap="coolwarm", vmin=-1, vmax=1)
    axes[1].set_title("corr2d(image, [[1, -1]])")
    fig.colorbar(shown, ax=axes[1], fraction=0.046)
    axes[2].semilogy(range(1, len(history) + 1), history, marker="o")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("sum of squared errors")
    axes[2].set_title("learning the kernel")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")
    return 0


def info(args):
    """Print versions, the machine, threads, the compile cache, whether CUDA is usable."""
    import numba

    import fastcorr

    from . import _machine, threads
    from .cpu._jit import cache_location

    print(f"fastcorr        {fastcorr.__version__}")
    print(f"python          {sys.version.split()[0]}")
    print(f"numpy           {np.__version__}")
    print(f"numba           {numba.__version__}")
    print(f"cpu             {_machine.cpu_model()}")
    name, isa = _machine.numba_target()
    print(f"numba target    {name} ({isa})")
    print(f"threads         {threads.get_num_threads()} of {threads.max_threads()} "
          "(fastcorr's own pool; Numba's threading layer is not used)")
    blas = threads.blas_info()
    if blas is None:
        print("blas            (pip install threadpoolctl to see NumPy's BLAS and its threads)")
    for entry in blas or ():
        print(f"blas            {entry.get('internal_api')} {entry.get('version')}, "
              f"{entry.get('num_threads')} threads ({entry.get('architecture', '?')})")
    print(f"kernel cache    {cache_location()}")
    print(f"cuda            {_cuda_status()}")
    return 0


def warmup(args):
    """Compile every CPU kernel (both float types unless --dtype says otherwise)."""
    import time

    from . import warmup as warm
    from .cpu._jit import cache_location

    start = time.perf_counter()
    steps = warm.warmup(tuple(args.dtype or warm.DTYPES), progress=not args.quiet)
    print(f"compiled {len(steps)} kernel groups in {time.perf_counter() - start:.1f} s into "
          f"{cache_location()}")
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
    return "not usable: no CUDA driver or device found"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastcorr", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="walk through the source material's examples")
    demo_parser.add_argument("--plot", metavar="FILE", help="write a PNG of the image, its edges "
                             "and the loss curve (needs matplotlib)")
    demo_parser.add_argument("--seed", type=int, default=0, help="seed of the learned kernel's "
                             "initial weights (default 0)")
    demo_parser.set_defaults(run=demo)
    commands.add_parser("info", help="versions, machine, threads, cache, CUDA").set_defaults(
        run=info)
    warm = commands.add_parser("warmup", help="compile the CPU kernels into the cache ahead "
                               "of use")
    warm.add_argument("--dtype", choices=("float32", "float64"), action="append",
                      help="float type to compile for (repeatable; default both)")
    warm.add_argument("--quiet", action="store_true", help="no progress bar")
    warm.set_defaults(run=warmup)
    from . import bench

    bench_parser = commands.add_parser(
        "bench", help="time fastcorr against OpenCV, SciPy and torch, with the floors",
        description=bench.__doc__.split("\n")[0])
    bench.add_arguments(bench_parser).set_defaults(run=bench.run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
