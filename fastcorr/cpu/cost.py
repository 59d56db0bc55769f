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
  plus the padded copy of the input;
- gradients: the direct ones as a forward implementation times a factor (:data:`GRADIENT_AS`;
  the "planes" weight gradient's growing with the plane, :data:`PLANES_KNEE`), the FFT
  weight gradient in whole planes, the FFT input gradient as the forward times
  :data:`FFT_GRAD_INPUT_FACTOR`.
"""

import functools
import math

from . import fft as _fft

#: The taps' constants refitted after the kernels' fused multiply-adds (same machine, two
#: fits): this VM ran twice as fast that hour on both paths, so the fits' ratios to their own
#: "fft" constant (taps_narrow 0.37-0.38, taps_wide 0.25-0.30, taps_element 4.4-4.5) were
#: kept, scaled to the "fft" constant below, which the other constants were chosen against.
#: Before that (the "fft" constant, and the taps' before the fused multiply-adds), refitted
#: on an Intel Xeon (KVM, family 6 model 167, AVX-512, 2 cores, 2 MiB L2 a core), float32
#: "same" images of 512^2 to 4096^2 with kernels of 3 to 63 (float64 costs twice as
#: much), after the FFT tiles' vectorised products, five-extent tiles and pruned inverse: the
#: mean of two fits, each checked on both grids ("auto" within 1.00x and 1.06x of the faster
#: method). The earlier fit (Zen 4) had the taps 2.5x cheaper and the FFT 1.2x cheaper per
#: unit than this machine measures; "rows", "gemm", "gather", "fft_whole" and "copy" are
#: from that fit (the refit does not time them).
CONSTANTS = {
    "call": 3.0e-05,          # fixed cost of a call, seconds
    "taps_narrow": 1.17e-10,  # seconds per multiply-add, kernels up to 8 wide
    "taps_wide": 8.6e-11,     # seconds per multiply-add, wider kernels
    "taps_element": 1.40e-9,  # seconds per input plus output element (the memory floor)
    "rows": 6.0e-10,          # seconds per multiply-add, general row kernel
    "gemm": 1.0e-11,          # seconds per multiply-add through BLAS
    "gather": 1.0e-9,         # seconds per patch element gathered
    "fft": 3.14e-10,          # seconds per T^2 log2(T^2) of a real 2-D transform
    "fft_whole": 8.0e-10,     # the same for transforms of whole planes (weight gradients)
    "copy": 1.0e-9,           # seconds per element of a padded copy
}


def _scale(plan):
    return 1.0 if plan.dtype.itemsize == 4 else 2.0


def _sizes(plan):
    n, c_out, out_h, out_w = plan.out_shape
    c_in_g, kh, kw = plan.weight_shape[1:]
    outputs = n * c_out * out_h * out_w
    inputs = n * plan.input_shape[1] * plan.input_shape[2] * plan.input_shape[3]
    return outputs * c_in_g * kh * kw, inputs + outputs


#: Direct gradient implementations costed as a forward one, times a factor (measured on the
#: depthwise layers of the zoo: the gradients do 2-4x the memory traffic per multiply-add).
GRADIENT_AS = {"planes": ("taps", 3.0), "scatter": ("taps", 2.0)}

#: The "planes" weight gradient's factor grows with the input a task sums over past this
#: many pixels, as ``(pixels / PLANES_KNEE) ** PLANES_EXPONENT``: its sums of each tap run
#: over the whole flattened plane (or a band's rows, for planes cut into bands:
#: :func:`fastcorr.cpu.depthwise.weight_working_pixels`), and past a few thousand pixels they
#: leave the first-level cache. It is costed at the taps' narrow rate at every width (its
#: sums run tap by tap: the wide kernels' cheaper rate had it chosen at 11x11 where the FFT
#: was 1.4-1.8x faster, Zen 4).
#: Measured (Intel Xeon, 2 MiB L2 a core, float32, depthwise 5x5 to 21x21, 90 layer shapes of
#: 32^2 to 512^2, one process), measured / predicted with the factor 3 alone: 0.7-1.4 on
#: 32^2-64^2 planes, 1.4-1.9 on 128^2, 1.8-3.6 on 256^2, 5.4-6.7 on a 512^2 image (one task:
#: one thread). With the factor 3 alone, "auto" had kept "planes" where the FFT was 1.3-4.1x
#: faster (11x11 at 256^2: 29.4 ms against 7.2).
PLANES_KNEE = 4096
PLANES_EXPONENT = 0.3

#: The FFT input gradient's predicted seconds times this: measured / predicted had a median
#: of 1.7 on the layer shapes above (1.0-3.3; the forward's 1.4, the weight gradient's 0.9).
#: The forward keeps its constant, fitted on single images (the sizes grid), where "auto"
#: is checked.
FFT_GRAD_INPUT_FACTOR = 1.7


def direct_seconds(plan, implementation, threads, constants=CONSTANTS):
    """Predicted seconds of a direct implementation ("taps", "flat", "rows", "gemm",
    "pointwise", or a gradient's "planes", "scatter", "phases" and "shifts")."""
    if implementation in GRADIENT_AS:
        like, factor = GRADIENT_AS[implementation]
        if implementation == "planes":
            from .depthwise import weight_working_pixels  # imported on first use, as the tables do

            factor *= max(1.0, weight_working_pixels(plan) / PLANES_KNEE) ** PLANES_EXPONENT
            # its sums run tap by tap at any width: no wide kernels' rate
            constants = {**constants, "taps_wide": constants["taps_narrow"]}
        base = direct_seconds(plan, like, threads, constants) - constants["call"]
        return constants["call"] + factor * base
    macs, elements = _sizes(plan)
    n, _, out_h, out_w = plan.out_shape
    c_in_g, kh, kw = plan.weight_shape[1:]
    # "flat" is "taps" on small planes, no slower; "phases" is "flat" a stride phase
    if implementation in ("taps", "flat", "phases"):
        rate = constants["taps_narrow"] if kw <= 8 else constants["taps_wide"]
        seconds = max(macs * rate, elements * constants["taps_element"])
    elif implementation == "gemm":
        seconds = macs * constants["gemm"] + n * out_h * out_w * c_in_g * kh * kw \
            * plan.groups * constants["gather"]
    elif implementation == "pointwise":  # BLAS without the gathering
        seconds = macs * constants["gemm"]
    elif implementation == "shifts":  # BLAS over views, after a copy of both operands
        seconds = macs * constants["gemm"] + elements * constants["copy"]
    else:
        seconds = macs * constants["rows"]
    return constants["call"] + _scale(plan) * seconds / max(1, threads)


@functools.lru_cache(maxsize=1024)
def fft_predicted_faster(plan, direct, threads, operation):
    """Whether the FFT path is predicted faster than the direct implementation ``direct``
    for ``operation`` on ``threads`` threads (remembered per plan: a layer is called again
    and again, and the prediction cost a small call 10 us)."""
    return (fft_seconds(plan, threads, operation=operation)
            < direct_seconds(plan, direct, threads))


def _fft_work(plan):
    """``(transform work, copied elements)`` of the FFT path."""
    n, c_in, h, w = plan.input_shape
    c_out, c_in_g, kh, kw = plan.weight_shape
    out_h, out_w = plan.out_shape[2:]
    keh, kew = (kh - 1) * plan.dilation[0] + 1, (kw - 1) * plan.dilation[1] + 1
    hp, wp = out_h + keh - 1, out_w + kew - 1
    th, tw = _fft.tile_size(keh, hp), _fft.tile_size(kew, wp)
    tiles = math.ceil(out_h / (th - keh + 1)) * math.ceil(out_w / (tw - kew + 1))
    size = th * tw
    transform = size * math.log2(max(2, size))
    return n * tiles * (c_in + c_out) * transform + c_out * c_in_g * transform, n * c_in * hp * wp


def fft_seconds(plan, threads, constants=CONSTANTS, operation="forward"):
    """Predicted seconds of the FFT path (``plan`` at stride 1) for ``operation``: the
    forward pass and the input gradient tile by tile, the weight gradient in whole planes."""
    if operation == "grad_weight":
        n, c_in, h, w = plan.input_shape
        c_out, c_in_g = plan.weight_shape[:2]
        size = _fft.next_fast_len(h + plan.pad_top + plan.pad_bottom) * _fft.next_fast_len(
            w + plan.pad_left + plan.pad_right)
        transforms = (n * (c_in + c_out) + c_out * c_in_g) * size * math.log2(max(2, size))
        seconds = transforms * constants["fft_whole"] + n * c_out * c_in_g * size \
            * constants["copy"]
    else:
        work, copied = _fft_work(plan)
        seconds = work * constants["fft"] + copied * constants["copy"]
        if operation == "grad_input":
            seconds *= FFT_GRAD_INPUT_FACTOR
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
    for size in (512, 1024, 2048, 4096):
        image = rng.random((size, size), dtype=np.float32)
        out = np.empty_like(image)
        for k in (3, 5, 7, 11, 15, 21, 31, 63):
            if k * 4 > size:
                continue
            kernel = rng.random((k, k), dtype=np.float32)
            for name in ("taps", "fft"):
                with _select.force("cpu", forward=name):
                    seconds = best(lambda: fastcorr.correlate2d(image, kernel, "same", out=out),
                                   repeat=3 if size * k > 100000 else 5)
                rows.append((name, size, k, seconds))
                print(f"{name:5s} {size:5d} k{k:<3d} {seconds * 1e3:9.3f} ms", flush=True)
    return rows


def fit(measured, threads):
    """Constants from ``measured`` rows ``(implementation, size, k, seconds)`` (float32
    "same" images): each rate the median of its cases' seconds per unit of work."""
    from .. import _validate as v

    def plan_of(size, k):
        return v.plan_correlate2d((size, size), (k, k), "same", "fill", 0, "float32",
                                  convolve=False)[0]

    fitted = dict(CONSTANTS)
    groups = {"taps_narrow": [], "taps_wide": [], "taps_element": [], "fft": []}
    for impl, size, k, seconds in measured:
        plan = plan_of(size, k)
        busy = max(seconds - CONSTANTS["call"], 1e-9) * threads
        macs, elements = _sizes(plan)
        if impl == "taps" and size >= 1024:
            if k == 3:
                groups["taps_element"].append(busy / elements)
            elif k >= 7:
                groups["taps_narrow" if k <= 8 else "taps_wide"].append(busy / macs)
        elif impl == "fft" and size >= 1024:
            work, copied = _fft_work(plan)
            groups["fft"].append((busy - copied * CONSTANTS["copy"]) / work)
    for key, values in groups.items():
        if values:
            fitted[key] = sorted(values)[len(values) // 2]
    return fitted


def check(measured, threads, constants):
    """The worst ratio of the chosen method's measured time to the best one's."""
    from .. import _validate as v

    times = {(size, k): {} for _, size, k, _ in measured}
    for impl, size, k, seconds in measured:
        times[(size, k)][impl] = seconds
    worst = 1.0
    for (size, k), found in sorted(times.items()):
        plan = v.plan_correlate2d((size, size), (k, k), "same", "fill", 0, "float32",
                                  convolve=False)[0]
        fft = fft_seconds(plan, threads, constants) < direct_seconds(plan, "taps", threads,
                                                                     constants)
        chosen = found["fft" if fft else "taps"]
        ratio = chosen / min(found.values())
        worst = max(worst, ratio)
        print(f"{size:5d} k{k:<3d} chose {'fft ' if fft else 'taps'} {ratio:5.2f}x the best")
    return worst


if __name__ == "__main__":  # pragma: no cover
    from .. import threads as _threads

    count = _threads.get_num_threads()
    rows = _measure()
    constants = fit(rows, count)
    print(f"worst choice: {check(rows, count, constants):.2f}x the faster method")
    print("CONSTANTS = {")
    for key, value in constants.items():
        print(f"    {key!r}: {value:.2e},")
    print("}")
