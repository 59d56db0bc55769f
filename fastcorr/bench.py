"""``fastcorr bench``: time fastcorr and its peers side by side in one process, against floors.

Every implementation runs the same workload on the same arrays in this process: one warm-up
call (compilation and first touches are never timed) whose result is checked against
fastcorr's, then the median of repeated timed calls. A ratio is peer time / fastcorr time
(above 1: fastcorr is faster). The floors are measured here too:

- memory floor: the bytes a pass must read and write, over the bandwidth of a large
  ``np.copyto`` (counting its bytes read plus bytes written);
- compute floor: the pass's FLOPs (a multiply-add is 2) over NumPy's best matrix-product rate
  (sgemm for float32) on a few shapes.

fastcorr's distance from the floor is its time over the larger of the two. Peers are optional
(OpenCV, SciPy, PyTorch) and imported only here: a missing one is skipped with a note.
"""

import argparse
import contextlib
import importlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

# name -> (input shape NCHW, output channels, groups); 3x3 kernels, padding 1
LAYERS = {
    "dense": ((32, 64, 56, 56), 64, 1),
    "depthwise": ((32, 256, 56, 56), 256, 256),
}
QUICK_LAYERS = {
    "dense": ((2, 16, 16, 16), 16, 1),
    "depthwise": ((2, 32, 16, 16), 32, 32),
}
PEERS = ("opencv", "ndimage", "signal", "torch")
GEMM_SHAPES = ((64, 576, 3136), (2048, 2048, 2048))  # (m, k, n): one image of the dense layer
QUICK_GEMM_SHAPES = ((64, 576, 3136), (512, 512, 512))
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


# ---------------------------------------------------------------------------------------------
# floors


def memory_floor(nbytes, bandwidth):
    """Seconds to move ``nbytes`` (read plus written) at ``bandwidth`` bytes per second."""
    return nbytes / bandwidth


def compute_floor(flops, peak):
    """Seconds to do ``flops`` floating-point operations at ``peak`` FLOP/s."""
    return flops / peak


def image_traffic(image_shape, kernel_shape, out_shape, itemsize):
    """Bytes a single-channel correlation reads (image, kernel) and writes (output)."""
    return (np.prod(image_shape) + np.prod(kernel_shape) + np.prod(out_shape)) * itemsize


def image_flops(kernel_shape, out_shape):
    """FLOPs of a single-channel correlation: one multiply and one add per tap and output."""
    return 2 * int(np.prod(kernel_shape)) * int(np.prod(out_shape))


def layer_flops(weight_shape, out_shape):
    """FLOPs of a conv2d forward pass: ``2 * outputs * (C_in / groups) * kH * kW``.

    The backward pass (input and weight gradients) is twice this.
    """
    return 2 * int(np.prod(out_shape)) * int(np.prod(weight_shape[1:]))


def layer_traffic(input_shape, weight_shape, out_shape, itemsize, backward=False):
    """Bytes a conv2d pass must move: forward reads input and weight and writes the output;
    backward reads grad_output, input and weight and writes their two gradients."""
    x, w, y = (int(np.prod(s)) for s in (input_shape, weight_shape, out_shape))
    return ((y + 2 * x + 2 * w) if backward else (x + w + y)) * itemsize


def floors(nbytes, flops, bandwidth, peak):
    """``(memory floor, compute floor)`` in seconds."""
    return memory_floor(nbytes, bandwidth), compute_floor(flops, peak)


def floor_distance(seconds, memory, compute):
    """How many times the larger floor ``seconds`` takes, and which floor that is."""
    bound = max(memory, compute)
    return seconds / bound, "memory" if memory >= compute else "compute"


# ---------------------------------------------------------------------------------------------
# timing and the machine's ceilings


def timed_call(fn):
    """``(result, seconds)`` of one call."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def median_time(fn, repeat, budget=float("inf")):
    """``(median seconds, runs)`` of timed calls of ``fn``: ``repeat`` of them, or fewer (at
    least one) once they have taken ``budget`` seconds together. Make a warm-up call first."""
    times = [timed_call(fn)[1]]
    while len(times) < repeat and sum(times) < budget:
        times.append(timed_call(fn)[1])
    return float(np.median(times)), len(times)


def measure_bandwidth(nbytes, repeat):
    """Bytes read plus bytes written per second by ``np.copyto`` of an ``nbytes`` array."""
    src = np.ones(max(nbytes // 8, 1), dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # the first touch of dst's pages
    seconds, _ = median_time(lambda: np.copyto(dst, src), repeat)
    return 2 * src.nbytes / seconds


def measure_gemm(shapes, dtype, repeat):
    """``{(m, k, n): FLOP/s}`` of NumPy's ``matmul`` of (m, k) by (k, n) matrices."""
    rng = np.random.default_rng(0)
    rates = {}
    for m, k, n in shapes:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        out = np.empty((m, n), dtype=dtype)
        np.matmul(a, b, out=out)  # warm-up
        seconds, _ = median_time(lambda: np.matmul(a, b, out=out), repeat)
        rates[(m, k, n)] = 2.0 * m * k * n / seconds
    return rates


# ---------------------------------------------------------------------------------------------
# checks


def max_error(ours, theirs):
    """Largest absolute difference over the largest magnitude of ``ours`` (arrays or tuples
    of arrays, compared pairwise)."""
    if not isinstance(ours, (tuple, list)):
        ours, theirs = (ours,), (theirs,)
    if len(ours) != len(theirs):
        return float("inf")
    worst = 0.0
    for a, b in zip(ours, theirs):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float("inf")
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        diff = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        worst = max(worst, diff / scale if scale else diff)
    return worst


# ---------------------------------------------------------------------------------------------
# workloads


@dataclass
class Workload:
    """One computation, fastcorr's way and the peers'.

    ``peers`` maps a peer's name to ``(key, factory)``: ``key`` is its ``--peers`` name and
    ``factory()`` imports the peer and returns the callable (raising ImportError when the peer
    is not installed).
    """

    label: str
    description: str
    nbytes: int
    flops: int
    dtype: np.dtype
    fastcorr: object
    peers: dict
    #: fastcorr writing into a preallocated output (``out=``), timed beside the fresh call:
    #: a fresh output of an image this size costs the OS's page faults and zeroing
    fastcorr_into: object = None


@dataclass
class Row:
    workload: str
    impl: str
    median_ms: float = None
    runs: int = 0
    ratio: float = None
    floor_ratio: float = None
    note: str = ""
    #: for fastcorr's rows: the implementations that ran (``fastcorr.trace``)
    implementation: str = ""


def _missing(package, exc):
    return f"skipped: not installed ({exc}; pip install {package})"


def image_workload(size, k, dtype, rng, fft_peers=False):
    """``correlate2d(image, kernel, "same")``, zero fill, against OpenCV, SciPy and torch (or,
    with ``fft_peers``, against OpenCV and SciPy's ``fftconvolve`` and ``oaconvolve``, labelled
    for the kernel-size table)."""
    import fastcorr

    image = rng.standard_normal((size, size)).astype(dtype)
    kernel = rng.standard_normal((k, k)).astype(dtype)

    def opencv():
        import cv2

        # filter2D computes the correlation; BORDER_CONSTANT pads with zeros as "fill" does
        return lambda: cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_CONSTANT)

    def ndimage():
        import scipy.ndimage

        return lambda: scipy.ndimage.correlate(image, kernel, mode="constant", cval=0.0)

    def signal():
        import scipy.signal

        return lambda: scipy.signal.correlate2d(image, kernel, "same")

    def torch_conv():
        import torch
        import torch.nn.functional as F

        x, w = torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None]

        def run():
            with torch.no_grad():
                return F.conv2d(x, w, padding="same").numpy()[0, 0]
        return run

    def scipy_fft(name):
        def factory():
            import scipy.signal

            fn, flipped = getattr(scipy.signal, name), np.ascontiguousarray(kernel[::-1, ::-1])
            return lambda: fn(image, flipped, "same")
        return factory

    peers = {"OpenCV filter2D": ("opencv", opencv)}
    if fft_peers:
        peers.update({"scipy.signal.fftconvolve": ("signal", scipy_fft("fftconvolve")),
                      "scipy.signal.oaconvolve": ("signal", scipy_fft("oaconvolve"))})
    else:
        peers.update({"scipy.ndimage.correlate": ("ndimage", ndimage),
                      "scipy.signal.correlate2d": ("signal", signal),
                      "torch F.conv2d": ("torch", torch_conv)})
    shape = (size, size)
    into = np.empty(shape, dtype=dtype)
    return Workload(
        label=f"{size} k{k}" if fft_peers else f"image k{k}",
        description=f'image {size}x{size} {np.dtype(dtype).name}, {k}x{k} kernel, "same", '
                    f"zero fill",
        nbytes=int(image_traffic(shape, (k, k), shape, image.itemsize)),
        flops=image_flops((k, k), shape), dtype=np.dtype(dtype),
        fastcorr=lambda: fastcorr.correlate2d(image, kernel, "same"),
        fastcorr_into=lambda: fastcorr.correlate2d(image, kernel, "same", out=into),
        peers=peers)


SIZES = (2048, 4096)
SIZE_KERNELS = (3, 5, 7, 11, 15, 31, 63)
QUICK_SIZES = (128,)
QUICK_SIZE_KERNELS = (3, 7, 15)


def size_workload(size, k, dtype, rng):
    """``correlate2d(image, kernel, "same")`` against OpenCV ``filter2D`` and SciPy's
    ``fftconvolve`` and ``oaconvolve`` (given the flipped kernel: they convolve)."""
    return image_workload(size, k, dtype, rng, fft_peers=True)


def size_table(rows):
    """Lines of the kernel-size table: fastcorr (and what ran) against the best peer."""
    by_workload = {}
    for row in rows:
        by_workload.setdefault(row.workload, []).append(row)
    lines = [f"{'image':>6} {'kernel':>6} {'fastcorr ms':>12} {'ran':>5} {'best peer':>26} "
             f"{'peer ms':>9} {'ratio':>6}"]
    for label, group in by_workload.items():
        ours = next(r for r in group if r.impl == "fastcorr")
        peers = [r for r in group if r.ratio is not None and r.impl != "fastcorr"]
        size, k = label.split()
        if not peers:
            lines.append(f"{size:>6} {k:>6} {ours.median_ms:12.2f} {ours.implementation:>5} "
                         f"{'(no peer timed)':>26}")
            continue
        best = min(peers, key=lambda r: r.median_ms)
        lines.append(f"{size:>6} {k:>6} {ours.median_ms:12.2f} {ours.implementation:>5} "
                     f"{best.impl:>26} {best.median_ms:9.2f} {best.ratio:6.2f}")
    return lines


def layer_workloads(name, shape, c_out, groups, dtype, rng, *, kernel=3, stride=1,
                    padding=None):
    """Forward and backward (input and weight gradients) of a ``kernel`` x ``kernel`` layer
    (padding ``kernel // 2`` unless given), against torch's ``F.conv2d`` and its autograd."""
    import fastcorr

    padding = kernel // 2 if padding is None else padding
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((c_out, shape[1] // groups, kernel, kernel)).astype(dtype)
    out_hw = tuple((n + 2 * padding - kernel) // stride + 1 for n in shape[2:])
    out_shape = (shape[0], c_out) + out_hw
    g = rng.standard_normal(out_shape).astype(dtype)
    args = dict(stride=stride, padding=padding, groups=groups)
    described = (f"{name} layer {tuple(shape)} -> {c_out}, groups {groups}, {kernel}x{kernel}, "
                 f"stride {stride}, padding {padding}, {np.dtype(dtype).name}")

    def torch_forward():
        import torch
        import torch.nn.functional as F

        xt, wt = torch.from_numpy(x), torch.from_numpy(w)

        def run():
            with torch.no_grad():
                return F.conv2d(xt, wt, **args).numpy()
        return run

    def torch_backward():
        import torch
        import torch.nn.functional as F

        xt = torch.from_numpy(x).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        gt = torch.from_numpy(g)
        y = F.conv2d(xt, wt, **args)  # the graph is built once, untimed

        def run():
            gx, gw = torch.autograd.grad(y, (xt, wt), gt, retain_graph=True)
            return gx.numpy(), gw.numpy()
        return run

    def ours_backward():
        gx, gw, _ = fastcorr.conv2d_backward(g, x, w, output_mask=(True, True, False), **args)
        return gx, gw

    flops = layer_flops(w.shape, out_shape)
    return [
        Workload(label=f"{name} fwd", description=f"{described}: forward",
                 nbytes=layer_traffic(shape, w.shape, out_shape, x.itemsize), flops=flops,
                 dtype=np.dtype(dtype),
                 fastcorr=lambda: fastcorr.conv2d(x, w, **args),
                 peers={"torch F.conv2d": ("torch", torch_forward)}),
        Workload(label=f"{name} bwd",
                 description=f"{described}: backward (input and weight gradients; torch: "
                             f"autograd.grad through a graph built once)",
                 nbytes=layer_traffic(shape, w.shape, out_shape, x.itemsize, backward=True),
                 flops=2 * flops, dtype=np.dtype(dtype), fastcorr=ours_backward,
                 peers={"torch autograd": ("torch", torch_backward)}),
    ]


#: The layer zoo of ``fastcorr bench --zoo``: (network, layer, input (C, H, W), C_out, groups,
#: kernel, stride); batch 8 unless ``--batch``. The conv layers of ResNet-18/50, ResNeXt-50,
#: MobileNetV2, EfficientNet-B0 and ConvNeXt-T, each shape once.
ZOO = [
    ("ResNet", "stem 7x7/2", (3, 224, 224), 64, 1, 7, 2),
    ("ResNet", "3x3 64", (64, 56, 56), 64, 1, 3, 1),
    ("ResNet", "3x3 128/2", (64, 56, 56), 128, 1, 3, 2),
    ("ResNet", "3x3 128", (128, 28, 28), 128, 1, 3, 1),
    ("ResNet", "3x3 256/2", (128, 28, 28), 256, 1, 3, 2),
    ("ResNet", "3x3 256", (256, 14, 14), 256, 1, 3, 1),
    ("ResNet", "3x3 512/2", (256, 14, 14), 512, 1, 3, 2),
    ("ResNet", "3x3 512", (512, 7, 7), 512, 1, 3, 1),
    ("ResNet-50", "1x1 256->64", (256, 56, 56), 64, 1, 1, 1),
    ("ResNet-50", "1x1 64->256", (64, 56, 56), 256, 1, 1, 1),
    ("ResNet-50", "1x1 512->256/2", (512, 28, 28), 256, 1, 1, 2),
    ("ResNeXt", "3x3 g32 128", (128, 56, 56), 128, 32, 3, 1),
    ("ResNeXt", "3x3 g32 256/2", (256, 56, 56), 256, 32, 3, 2),
    ("MobileNetV2", "dw 3x3 96/2", (96, 112, 112), 96, 96, 3, 2),
    ("MobileNetV2", "dw 3x3 144", (144, 56, 56), 144, 144, 3, 1),
    ("MobileNetV2", "dw 3x3 960", (960, 7, 7), 960, 960, 3, 1),
    ("MobileNetV2", "1x1 144->24", (144, 56, 56), 24, 1, 1, 1),
    ("EfficientNet", "dw 5x5 240", (240, 28, 28), 240, 240, 5, 1),
    ("EfficientNet", "dw 5x5 672/2", (672, 14, 14), 672, 672, 5, 2),
    ("ConvNeXt", "dw 7x7 96", (96, 56, 56), 96, 96, 7, 1),
    ("ConvNeXt", "dw 7x7 384", (384, 14, 14), 384, 384, 7, 1),
]


def zoo_workloads(dtype, rng, batch=8, quick=False):
    """The forward and backward workloads of every :data:`ZOO` layer (``quick``: batch 1 and
    planes an eighth of the size, to check that everything runs)."""
    workloads = []
    for net, label, (c, h, w), c_out, groups, kernel, stride in ZOO:
        if quick:
            batch, h, w = 1, max(2 * kernel, h // 8), max(2 * kernel, w // 8)
        workloads += layer_workloads(f"{net} {label}", (batch, c, h, w), c_out, groups, dtype,
                                     rng, kernel=kernel, stride=stride)
    return workloads


def zoo_table(rows):
    """Lines of the zoo table (torch time / fastcorr time per layer and pass), with the
    geometric mean and the worst ratio."""
    by_workload = {}
    for row in rows:
        by_workload.setdefault(row.workload, []).append(row)
    lines = [f"{'layer':<34} {'pass':<4} {'fastcorr ms':>11} {'ran':<16} {'torch ms':>9} "
             f"{'ratio':>6}"]
    ratios = []
    for label, group in by_workload.items():
        ours = next(r for r in group if r.impl == "fastcorr")
        peer = next((r for r in group if r.impl != "fastcorr" and r.ratio is not None), None)
        name, _, kind = label.rpartition(" ")
        if peer is None:
            lines.append(f"{name:<34} {kind:<4} {ours.median_ms:11.2f} "
                         f"{ours.implementation:<16} {'(not timed)':>9}")
            continue
        ratios.append((peer.ratio, label))
        lines.append(f"{name:<34} {kind:<4} {ours.median_ms:11.2f} {ours.implementation:<16} "
                     f"{peer.median_ms:9.2f} {peer.ratio:6.2f}")
    if ratios:
        geo = math.exp(sum(math.log(r) for r, _ in ratios) / len(ratios))
        worst, where = min(ratios)
        lines.append(f"geometric mean {geo:.2f}x over {len(ratios)}; worst {worst:.2f}x "
                     f"({where})")
    return lines


_PACKAGES = {"opencv": "opencv-python-headless", "ndimage": "scipy", "signal": "scipy",
             "torch": "torch"}


def run_workload(work, *, repeat, budget, bandwidth, peak, peers=PEERS):
    """Time fastcorr and each selected peer on ``work``; return the result rows."""
    import fastcorr

    memory, compute = floors(work.nbytes, work.flops, bandwidth, peak)
    with fastcorr.trace() as ran:
        ours_result = work.fastcorr()  # warm-up: compiles (or loads) the kernels
    implementation = "+".join(dict.fromkeys(r.implementation for r in ran))
    ours, runs = median_time(work.fastcorr, repeat, budget)
    distance, bound = floor_distance(ours, memory, compute)
    rows = [Row(work.label, "fastcorr", ours * 1e3, runs, 1.0, distance,
                f"{distance:.3g}x the {bound} floor; ran {implementation}",
                implementation=implementation)]
    if work.fastcorr_into is not None:
        work.fastcorr_into()
        into, runs = median_time(work.fastcorr_into, repeat, budget)
        distance, bound = floor_distance(into, memory, compute)
        rows.append(Row(work.label, "fastcorr out=", into * 1e3, runs, None, distance,
                        f"{distance:.3g}x the {bound} floor (into a preallocated output)"))
    tolerance = TOLERANCE.get(work.dtype, 1e-4)
    for name, (key, factory) in work.peers.items():
        row = Row(work.label, name)
        rows.append(row)
        if key not in peers:
            row.note = "skipped: not selected (--peers)"
            continue
        try:
            fn = factory()
        except ImportError as exc:
            row.note = _missing(_PACKAGES[key], exc)
            continue
        result = fn()  # warm-up, and the result to check
        error = max_error(ours_result, result)
        if not error <= tolerance:
            row.note = (f"DISAGREES with fastcorr (max error {error:.1e} of the largest value): "
                        f"not timed")
            continue
        seconds, row.runs = median_time(fn, repeat, budget)
        row.median_ms, row.ratio = seconds * 1e3, seconds / ours
        row.note = f"agrees with fastcorr (max error {error:.1e})"
    return rows


# ---------------------------------------------------------------------------------------------
# the command


def _int_list(text):
    try:
        values = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 3,7; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers; got {text!r}")
    return values


def _peer_list(text):
    names = [part for part in text.replace(",", " ").split()]
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {', '.join(unknown)}; choose from "
                                         f"{', '.join(PEERS)}")
    return names


def add_arguments(parser):
    """The options of ``fastcorr bench`` (shared by ``asv_benchmarks/compare_peers.py``)."""
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and 2 runs: checks that everything works, in seconds")
    parser.add_argument("--image-size", type=int, metavar="N",
                        help="side of the square image (default 4096; --quick: 256)")
    parser.add_argument("--kernels", type=_int_list, default=[3, 7], metavar="K,K",
                        help="square kernel sizes of the image workloads (default 3,7)")
    parser.add_argument("--sizes", action="store_true",
                        help="only the kernel-size table: float32 2048^2 and 4096^2 images, "
                             "\"same\", kernels 3, 5, 7, 11, 15, 31, 63, against OpenCV "
                             "filter2D and SciPy's fftconvolve and oaconvolve (--quick: 128^2, "
                             "kernels 3, 7, 15)")
    parser.add_argument("--zoo", action="store_true",
                        help="only the layer zoo: the conv layers of ResNet, ResNeXt, "
                             "MobileNetV2, EfficientNet and ConvNeXt at batch 8 (--batch), "
                             "forward and backward against torch, with the geometric mean "
                             "and the worst ratio")
    parser.add_argument("--image", action=argparse.BooleanOptionalAction, default=True,
                        help="time the single-channel image workloads (default: yes)")
    parser.add_argument("--layers", action=argparse.BooleanOptionalAction, default=True,
                        help="time the dense and depthwise layers, forward and backward "
                             "(default: yes)")
    parser.add_argument("--batch", type=int, metavar="N",
                        help="batch size of the layers (default 32; --quick: 2 and tiny planes)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="timed runs per implementation after the warm-up (default 10; "
                             "--quick: 2)")
    parser.add_argument("--budget", type=float, metavar="SECONDS",
                        help="fewer runs for an implementation whose runs would take longer "
                             "(at least one; default 3; --quick: 0.5)")
    parser.add_argument("--peers", type=_peer_list, default=list(PEERS), metavar="NAMES",
                        help=f"peers to time (default all: {','.join(PEERS)})")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for fastcorr (and BLAS), torch and OpenCV (default: "
                             "their defaults, every core)")
    parser.add_argument("--bandwidth-mb", type=int, metavar="MB",
                        help="size of the array copied to measure bandwidth (default 256; "
                             "--quick: 32)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser


def _settings(args):
    quick = args.quick
    return dict(
        image_size=args.image_size or (256 if quick else 4096),
        repeat=args.repeat or (2 if quick else 10),
        budget=args.budget if args.budget is not None else (0.5 if quick else 3.0),
        bandwidth_bytes=(args.bandwidth_mb or (32 if quick else 256)) << 20,
        gemm_shapes=QUICK_GEMM_SHAPES if quick else GEMM_SHAPES,
        layers=QUICK_LAYERS if quick else LAYERS,
    )


def _set_threads(n, peers, stack):
    """Use ``n`` threads in fastcorr (and NumPy's BLAS), torch and OpenCV until ``stack``
    (a :class:`contextlib.ExitStack`) closes, which restores the previous numbers."""
    import fastcorr

    stack.enter_context(fastcorr.num_threads(n))
    for key, module, get, set_ in (("torch", "torch", "get_num_threads", "set_num_threads"),
                                   ("opencv", "cv2", "getNumThreads", "setNumThreads")):
        if key in peers:
            try:
                lib = importlib.import_module(module)
            except ImportError:
                continue
            stack.callback(getattr(lib, set_), getattr(lib, get)())
            getattr(lib, set_)(n)


def _thread_line(peers):
    import fastcorr

    parts = [f"fastcorr {fastcorr.get_num_threads()} (its own pool)"]
    for key, module, count in (("torch", "torch", "get_num_threads"),
                               ("opencv", "cv2", "getNumThreads")):
        if key in peers and sys.modules.get(module) is not None:
            parts.append(f"{module} {getattr(sys.modules[module], count)()}")
    return "threads: " + ", ".join(parts)


def _format_row(row):
    median = f"{row.median_ms:10.2f}" if row.median_ms is not None else f"{'-':>10}"
    ratio = f"{row.ratio:7.3g}" if row.ratio is not None else f"{'-':>7}"
    runs = f"{row.runs:4d}" if row.runs else f"{'-':>4}"
    return f"{row.workload:15s} {row.impl:26s} {runs} {median} {ratio}  {row.note}"


def run(args, out=None):
    """Run ``fastcorr bench`` with parsed ``args``; print to ``out`` (default: standard output);
    return the exit status."""
    out = sys.stdout if out is None else out
    with contextlib.ExitStack() as stack:
        if args.threads is not None:
            try:
                _set_threads(args.threads, args.peers, stack)
            except (TypeError, ValueError) as exc:
                print(f"fastcorr bench: --threads: {exc}", file=sys.stderr)
                return 2
        return _run(args, out)


def _run(args, out):
    s = _settings(args)
    dtype = np.dtype(args.dtype)
    say = lambda text="": print(text, file=out, flush=True)  # noqa: E731
    # lazily imported peers should be loaded before the threads are reported
    for key, module in (("torch", "torch"), ("opencv", "cv2")):
        if key in args.peers:
            try:
                importlib.import_module(module)
            except ImportError:
                pass

    bandwidth = measure_bandwidth(s["bandwidth_bytes"], s["repeat"] + 3)
    rates = measure_gemm(s["gemm_shapes"], dtype, s["repeat"] + 1)
    peak = max(rates.values())
    gemm = "sgemm" if dtype == np.float32 else "dgemm"
    say(f"fastcorr bench: {dtype.name}; medians of up to {s['repeat']} timed runs after a "
        f"warm-up call, everything in this process")
    say("ratio = peer time / fastcorr time (above 1: fastcorr is faster); each peer's result is "
        "checked against fastcorr's before it is timed")
    say(f"memory bandwidth {bandwidth / 1e9:.1f} GB/s (np.copyto of {s['bandwidth_bytes'] >> 20}"
        f" MiB, bytes read + written)")
    say(f"{gemm} peak {peak / 1e9:.1f} GFLOP/s (numpy matmul: " + ", ".join(
        f"{m}x{k}x{n} {r / 1e9:.1f}" for (m, k, n), r in rates.items()) + ")")
    say("floor = max(bytes moved / bandwidth, FLOPs / " + gemm + " peak)")
    say(_thread_line(args.peers))
    from . import _machine

    say(f"machine: {_machine.describe()}")

    rng = np.random.default_rng(0)
    workloads = []
    if args.zoo:
        workloads = zoo_workloads(dtype, rng, batch=args.batch or 8, quick=args.quick)
    elif args.sizes:
        sizes = QUICK_SIZES if args.quick else SIZES
        kernels = QUICK_SIZE_KERNELS if args.quick else SIZE_KERNELS
        workloads = [size_workload(n, k, dtype, rng) for n in sizes for k in kernels]
    elif args.image:
        workloads += [image_workload(s["image_size"], k, dtype, rng) for k in args.kernels]
    if args.layers and not args.sizes and not args.zoo:
        for name, (shape, c_out, groups) in s["layers"].items():
            if args.batch:
                shape = (args.batch,) + tuple(shape[1:])
            workloads += layer_workloads(name, shape, c_out, groups, dtype, rng)

    rows = []
    for work in workloads:
        memory, compute = floors(work.nbytes, work.flops, bandwidth, peak)
        say()
        say(f"{work.label}: {work.description}")
        say(f"  {work.nbytes / 1e6:.1f} MB moved, {work.flops / 1e9:.3f} GFLOP; floors: "
            f"memory {memory * 1e3:.2f} ms, compute {compute * 1e3:.2f} ms")
        say(f"{'workload':15s} {'impl':26s} {'runs':>4} {'median ms':>10} {'ratio':>7}  "
            f"notes")
        for row in run_workload(work, repeat=s["repeat"], budget=s["budget"],
                                bandwidth=bandwidth, peak=peak, peers=args.peers):
            say(_format_row(row))
            rows.append(row)
    if args.zoo:
        say()
        say("layer zoo: torch time / fastcorr time (above 1: fastcorr is faster)")
        for line in zoo_table(rows):
            say(line)
    if args.sizes:
        say()
        say("kernel sizes: fastcorr (with the implementation that ran) against the fastest peer")
        for line in size_table(rows):
            say(line)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"dtype": dtype.name, "machine": _machine.describe(),
                       "bandwidth_bytes_per_s": bandwidth,
                       "gemm_peak_flops_per_s": peak,
                       "gemm_flops_per_s": {"x".join(map(str, k)): r for k, r in rates.items()},
                       "rows": [asdict(r) for r in rows]}, fh, indent=1)
        say(f"\nwrote {args.json}")
    return 0


def main(argv=None):
    """``python -m fastcorr.bench``: the same as ``fastcorr bench``."""
    parser = add_arguments(argparse.ArgumentParser(prog="fastcorr bench",
                                                   description=__doc__.split("\n")[0]))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
