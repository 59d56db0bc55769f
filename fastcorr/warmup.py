"""``fastcorr warmup``: compile the CPU kernels ahead of use, into the compile cache.

For images built once and shipped (containers, cluster workers): run ``fastcorr warmup`` when
the image is built (with ``FASTCORR_CACHE_DIR`` pointing into it, or into the installed
package's own folder by default) and every later process loads the kernels instead of
compiling them. Each step runs one tiny call with one implementation forced, for each float
type, so every kernel of the CPU tables is compiled: the width classes of the "taps" kernels
(every kernel width), the general kernels, the small-plane "flat" kernels (with kernels of
their own for zero padding at unit strides), im2col + BLAS, the stride phases' layout of
"shifts" and the stores of "phases", Winograd's transforms (F(2x2) and F(4x4)), the FFT
path and the gradients (the depthwise weight gradient's bands of large planes included).
"""

import numpy as np

from . import _select

DTYPES = ("float32", "float64")


def _steps(dtype):
    """``(label, function)`` for every kernel to compile in ``dtype``."""
    import fastcorr
    from .cpu._taps_source import NARROW

    rng = np.random.default_rng(0)

    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    def forced(label, operations, fn):
        def run():
            with _select.force("cpu", **operations):
                fn()
        return label, run

    image = arr(20, 24)
    steps = []
    for width in list(range(1, NARROW + 1)) + [NARROW + 3]:
        kernel = arr(3, width)
        steps.append(forced(f"taps, width {width if width <= NARROW else 'wide'}",
                            dict(forward="taps"),
                            lambda k=kernel: fastcorr.correlate2d(image, k, "same", "symm")))
    x, w, dw = arr(2, 4, 9, 9), arr(6, 4, 3, 3), arr(4, 1, 3, 3)
    g, gd = arr(2, 6, 9, 9), arr(2, 4, 9, 9)
    layer = dict(padding=1, padding_mode="reflect")
    steps += [
        forced("rows", dict(forward="rows"), lambda: fastcorr.conv2d(x, w, **layer)),
        forced("gemm", dict(forward="gemm", grad_input="gemm", grad_weight="gemm"),
               lambda: fastcorr.conv2d_backward(g, x, w, **layer)
               + (fastcorr.conv2d(x, w, **layer),)),
        forced("fft", dict(forward="fft", grad_input="fft", grad_weight="fft"),
               lambda: fastcorr.conv2d_backward(g, x, w, method="fft", **layer)
               + (fastcorr.conv2d(x, w, method="fft", **layer),)),
        forced("weight gradient: shifts", dict(grad_weight="shifts"),
               lambda: fastcorr.conv2d_backward(g, x, w, **layer)),
        forced("input gradient: phases", dict(grad_input="phases"),
               lambda: fastcorr.conv2d_input(x.shape, arr(4, 2, 3, 3), arr(2, 4, 5, 5),
                                             stride=2, padding=1, groups=2)),
        forced("gradients: scatter, rows", dict(grad_input="scatter", grad_weight="rows"),
               lambda: fastcorr.conv2d_backward(g, x, w, **layer)),
        forced("gradients: depthwise", dict(grad_input="taps", grad_weight="planes"),
               lambda: fastcorr.conv2d_backward(gd, x, dw, groups=4, **layer)),
        forced("flat", dict(forward="flat", grad_input="flat"),
               lambda: fastcorr.conv2d_backward(gd, x, dw, groups=4, **layer)
               + (fastcorr.conv2d(x, dw, groups=4, **layer),)),
        forced("flat and planes, zero padding", dict(forward="flat", grad_input="flat",
                                                     grad_weight="planes"),
               lambda: fastcorr.conv2d_backward(gd, x, dw, groups=4, padding=1)
               + (fastcorr.conv2d(x, dw, groups=4, padding=1),)),
        forced("strided depthwise gradients", dict(grad_input="flat", grad_weight="planes"),
               lambda: fastcorr.conv2d_backward(arr(2, 4, 5, 5), x, dw, groups=4, stride=2,
                                                padding=1)),
        ("planes in bands (large planes)", lambda: _planes_in_bands(gd, x)),
        forced("winograd", dict(forward="winograd", grad_input="winograd",
                                grad_weight="winograd"),
               lambda: fastcorr.conv2d_backward(g, x, w, **layer)
               + (fastcorr.conv2d(x, w, **layer),)),
        forced("winograd4", dict(forward="winograd4", grad_input="winograd4",
                                 grad_weight="winograd4"),
               lambda: fastcorr.conv2d_backward(g, x, w, **layer)
               + (fastcorr.conv2d(x, w, **layer),)),
        forced("image gradients", {},
               lambda: fastcorr.correlate2d_backward(np.ones((23, 26), dtype), image,
                                                     arr(4, 3))),
    ]
    return steps


def _planes_in_bands(grad_out, x):
    """The depthwise weight gradient's band layout (:func:`fastcorr.cpu.depthwise.
    lay_out_bands`), which plain calls reach on planes of more than BAND_MIN_PIXELS only:
    called directly on small ones."""
    from . import _validate
    from .cpu import depthwise

    c = x.shape[1]
    plan = _validate.plan_conv2d(x.shape, (c, 1, 3, 3), None, 1, 1, 1, c, "reflect", x.dtype)
    depthwise._grad_weight_in_bands(grad_out, x, np.empty((c, 1, 3, 3), x.dtype), plan)


def warmup(dtypes=DTYPES, progress=True):
    """Compile every CPU kernel for ``dtypes``; returns the labels of the steps run.

    Parameters
    ----------
    dtypes : sequence of {"float32", "float64"}
    progress : bool or callable
        A progress bar (tqdm if installed, else a line on stderr), or ``progress(done,
        total)`` after each step.
    """
    from .batch import _progress

    steps = [(f"{label} ({dtype})", fn) for dtype in dtypes for label, fn in _steps(dtype)]
    update, close = _progress(progress, len(steps))
    try:
        for done, (_, fn) in enumerate(steps, 1):
            fn()
            update(done)
    finally:
        close()
    return [label for label, _ in steps]
