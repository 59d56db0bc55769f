"""The CPU cost model behind ``method="auto"``: predicted seconds of the direct and FFT paths.

The constants below were fitted on the project's 2-core machines by running this module::

    python -m fastcorr.cpu.cost            # time both paths on a grid, fit, print constants

(as CuPy keeps the coefficients of its ``choose_conv_method``). Paste the printed block over
``CONSTANTS`` to refit on a new machine. Each constant is seconds per unit of work on one
thread; the predictions divide by the threads used.

- direct, "taps": ``outputs * taps`` multiply-adds, at a rate per width class (narrow kernels
  keep two kernel rows in flight, wide kernels one);
- direct, "rows": ``outputs * taps`` at the general kernel's rate;
- direct, "gemm": ``outputs * taps * C_in/groups`` at BLAS's rate, plus the patch gathering;
- fft: per tile, two real transforms of ``T x T`` and the kernel's (``T^2 log2 T^2`` each),
  plus the padded copy of the input.
"""

import math

from . import fft as _fft

#: Fitted on AMD EPYC (Zen 4, AVX-512), 2 cores, float32 (float64 rates are halved).
CONSTANTS = {
    "call": 2.0e-5,           # fixed cost of a call, seconds
    "taps_narrow": 1.9e-10,   # seconds per multiply-add, kernels up to 8 wide
    "taps_wide": 2.6e-10,     # seconds per multiply-add, wider kernels
    "rows": 6.0e-10,          # seconds per multiply-add, general row kernel
    "gemm": 1.0e-11,          # seconds per multiply-add through BLAS
    "gather": 1.0e-9,         # seconds per patch element gathered
    "fft": 1.6e-9,            # seconds per T^2 log2(T^2) of a real 2-D transform pair
    "copy": 1.0e-9,           # seconds per element of a padded copy
}


def _scale(plan):
    return 1.0 if plan.dtype.itemsize == 4 else 2.0


def direct_seconds(plan, implementation, threads, constants=CONSTANTS):
    """Predicted seconds of a direct implementation ("taps", "rows" or "gemm")."""
    n, c_out, out_h, out_w = plan.out_shape
    c_in_g, kh, kw = plan.weight_shape[1:]
    outputs = n * c_out * out_h * out_w
    macs = outputs * c_in_g * kh * kw
    if implementation == "taps":
        rate = constants["taps_narrow"] if kw <= 8 else constants["taps_wide"]
        seconds = macs * rate
    elif implementation == "gemm":
        seconds = macs * constants["gemm"] + n * out_h * out_w * c_in_g * kh * kw \
            * plan.groups * constants["gather"]
    else:
        seconds = macs * constants["rows"]
    return constants["call"] + _scale(plan) * seconds / max(1, threads)


def fft_seconds(plan, threads, constants=CONSTANTS):
    """Predicted seconds of the FFT path (``plan`` at stride 1)."""
    n, c_in, h, w = plan.input_shape
    c_out, c_in_g, kh, kw = plan.weight_shape
    out_h, out_w = plan.out_shape[2:]
    keh, kew = (kh - 1) * plan.dilation[0] + 1, (kw - 1) * plan.dilation[1] + 1
    hp, wp = out_h + keh - 1, out_w + kew - 1
    th, tw = _fft.tile_size(keh, hp), _fft.tile_size(kew, wp)
    tiles = math.ceil(out_h / (th - keh + 1)) * math.ceil(out_w / (tw - kew + 1))
    size = th * tw
    transform = size * math.log2(max(2, size))
    per_tile = (c_in + c_out) * transform
    kernel = c_out * c_in_g * transform
    seconds = (n * tiles * per_tile + kernel) * constants["fft"] \
        + n * c_in * hp * wp * constants["copy"]
    return constants["call"] + _scale(plan) * seconds / max(1, threads)


def _measure():  # pragma: no cover - a maintenance tool, run by hand
    """Time the implementations on a grid of image sizes and fit the constants."""
    import time

    import numpy as np

    import fastcorr
    from .. import _select

    def best(fn, repeat=5):
        fn()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    rng = np.random.default_rng(0)
    rows = []
    for size in (256, 1024, 2048):
        image = rng.random((size, size), dtype=np.float32)
        for k in (3, 5, 7, 11, 15, 31, 63):
            if k * 4 > size:
                continue
            kernel = rng.random((k, k), dtype=np.float32)
            for name in ("taps", "fft"):
                with _select.force("cpu", forward=name):
                    seconds = best(lambda: fastcorr.correlate2d(image, kernel, "same"))
                rows.append((name, size, k, seconds))
                print(f"{name:5s} {size:5d} k{k:<3d} {seconds * 1e3:9.3f} ms", flush=True)
    return rows


if __name__ == "__main__":  # pragma: no cover
    from .. import _validate as v
    from .. import threads as _threads

    measured = _measure()
    t = _threads.get_num_threads()
    fitted = dict(CONSTANTS)
    for name, key in (("taps", None), ("fft", "fft")):
        ratios = []
        for impl, size, k, seconds in measured:
            if impl != name:
                continue
            plan, _ = v.plan_correlate2d((size, size), (k, k), "same", "fill", 0, "float32",
                                         convolve=False)
            if name == "taps":
                key = "taps_narrow" if k <= 8 else "taps_wide"
                unit = direct_seconds(plan, "taps", t) - CONSTANTS["call"]
                ratios.append((key, seconds / unit * CONSTANTS[key]))
            else:
                unit = fft_seconds(plan, t) - CONSTANTS["call"]
                ratios.append(("fft", seconds / unit * CONSTANTS["fft"]))
        for key in {k for k, _ in ratios}:
            values = sorted(r for k, r in ratios if k == key)
            fitted[key] = values[len(values) // 2]
    print("CONSTANTS = {")
    for key, value in fitted.items():
        print(f"    {key!r}: {value:.2e},")
    print("}")
