"""fastcorr's CUDA backend against torch (cuDNN) and CuPy on one GPU, in one process.

Every timing is bracketed by a device-wide synchronisation (``cuda.synchronize()``, which
covers torch's and CuPy's streams too: all three use the primary context); the median of
``--repeat`` runs after warm-up is reported. Cases:

- single-channel 4096x4096 float32 image, "same" correlation with a 3x3 and a 7x7 kernel:
  fastcorr.correlate2d, cupyx.scipy.signal.correlate2d, cupyx.scipy.ndimage.correlate,
  torch conv2d; achieved GB/s (one read of the image, one write of the result) against the
  HBM peak;
- depthwise (32, 256, 56, 56) 3x3, padding 1, forward and backward (input and weight
  gradients), against torch; GB/s for the forward;
- dense (32, 64, 56, 56) -> 64, 3x3, padding 1, forward and backward, against torch with TF32
  off and at torch's default (TF32 allowed for cuDNN convolutions); TFLOP/s;
- streaming: fastcorr.batch.correlate_stack on a host stack (pinned buffers, 2 streams)
  against the measured PCIe bandwidth (host-to-device plus device-to-host of the same bytes).

Usage (on a machine with a GPU)::

    PYTHONPATH=. python asv_benchmarks/gpu_compare.py [--repeat 20] [--hbm-peak 3350]
        [--json results.json] [--scale 1.0]

``--scale`` shrinks every shape (e.g. 0.1) for a quick run; ``--hbm-peak`` is in GB/s (by
default guessed from the device name: H100 SXM 3350, H100 PCIe 2000, H200 4800, A100 2039).
Without a GPU the script says so and exits with status 2.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np

HBM_PEAK_GBS = {"H200": 4800.0, "H100 PCIe": 2000.0, "H100": 3350.0, "A100": 2039.0}


def _guess_peak(name):
    for key, value in HBM_PEAK_GBS.items():
        if key in name:
            return value
    return float("nan")


def timed(fn, sync, repeat, warmup=3):
    """Median seconds of ``fn()``, synchronising before and after every run."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Report:
    def __init__(self):
        self.rows = []

    def add(self, case, impl, seconds, gbs=None, tflops=None, note=""):
        row = dict(case=case, impl=impl, ms=seconds * 1e3, gbs=gbs, tflops=tflops, note=note)
        self.rows.append(row)
        extra = "" if gbs is None else f"  {gbs:8.1f} GB/s"
        extra += "" if tflops is None else f"  {tflops:7.2f} TFLOP/s"
        print(f"{case:44s} {impl:34s} {seconds * 1e3:9.3f} ms{extra}  {note}", flush=True)

    def skip(self, case, impl, why):
        self.rows.append(dict(case=case, impl=impl, skipped=why))
        print(f"{case:44s} {impl:34s}   skipped: {why}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--hbm-peak", type=float, default=None, help="GB/s")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--cases", default="image,depthwise,dense,stream",
                        help="comma-separated subset of image, depthwise, dense, stream")
    parser.add_argument("--stream-images", type=int, default=64,
                        help="images of 2048x2048 float32 in the streaming case")
    args = parser.parse_args(argv)
    cases = set(args.cases.split(","))
    unknown = cases - {"image", "depthwise", "dense", "stream"}
    if unknown:
        parser.error(f"--cases: unknown {sorted(unknown)}")

    import fastcorr
    from fastcorr.dispatch import BackendUnavailableError, cuda_backend

    try:
        cuda_backend()
    except BackendUnavailableError as exc:
        print(f"gpu_compare: no GPU to measure ({exc})", file=sys.stderr)
        return 2
    from numba import cuda

    try:
        import torch

        has_torch = torch.cuda.is_available()
    except ImportError:
        torch, has_torch = None, False
    try:
        import cupy
        import cupyx.scipy.ndimage
        import cupyx.scipy.signal

        has_cupy = True
    except ImportError:
        cupy, has_cupy = None, False

    device = cuda.get_current_device()
    name = getattr(device, "name", "CUDA simulator")
    name = name.decode() if isinstance(name, bytes) else str(name)
    peak = args.hbm_peak or _guess_peak(name)
    print(f"device {name}; HBM peak {peak} GB/s; fastcorr {fastcorr.__version__}; "
          f"torch {getattr(torch, '__version__', None)}; cupy {getattr(cupy, '__version__', None)}")
    sync = cuda.synchronize
    report = Report()
    rng = np.random.default_rng(0)

    def s(n):
        return max(1, int(round(n * args.scale)))

    def dev(a):  # operands as Numba device arrays (fastcorr's own), then CuPy / torch views
        return cuda.to_device(np.ascontiguousarray(a))

    # ------------------------------------------------------------------ single-channel images
    size = s(4096)
    for k in ((3, 7) if "image" in cases else ()):
        case = f"image {size}x{size} k{k} same f32"
        image = rng.standard_normal((size, size)).astype(np.float32)
        kernel = rng.standard_normal((k, k)).astype(np.float32)
        d_image, d_kernel = dev(image), dev(kernel)
        d_out = cuda.device_array((size, size), np.float32)
        nbytes = 2 * image.nbytes
        t = timed(lambda: fastcorr.correlate2d(d_image, d_kernel, "same", out=d_out), sync,
                  args.repeat)
        report.add(case, "fastcorr cuda", t, gbs=nbytes / t / 1e9,
                   note=f"{100 * nbytes / t / 1e9 / peak:.0f}% of HBM peak")
        if has_cupy:
            c_image, c_kernel = cupy.asarray(d_image), cupy.asarray(d_kernel)
            t = timed(lambda: cupyx.scipy.signal.correlate2d(c_image, c_kernel, "same"), sync,
                      args.repeat)
            report.add(case, "cupyx.scipy.signal.correlate2d", t, gbs=nbytes / t / 1e9)
            # ndimage centres differently; the cost is what is compared
            t = timed(lambda: cupyx.scipy.ndimage.correlate(c_image, c_kernel, mode="constant"),
                      sync, args.repeat)
            report.add(case, "cupyx.scipy.ndimage.correlate", t, gbs=nbytes / t / 1e9)
        else:
            report.skip(case, "cupy", "CuPy not installed")
        if has_torch:
            t_image = torch.as_tensor(d_image, device="cuda")[None, None]
            t_kernel = torch.as_tensor(d_kernel, device="cuda")[None, None]
            with torch.no_grad():
                t = timed(lambda: torch.nn.functional.conv2d(t_image, t_kernel, padding="same"),
                          sync, args.repeat)
            report.add(case, "torch conv2d (cuDNN)", t, gbs=nbytes / t / 1e9)
        else:
            report.skip(case, "torch", "torch with CUDA not available")

    # ------------------------------------------------------------------ layers
    def layer(case, x_shape, w_shape, groups, memory_bound):
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        d_x, d_w = dev(x), dev(w)
        out_shape = (x_shape[0], w_shape[0]) + x_shape[2:]
        d_out = cuda.device_array(out_shape, np.float32)
        d_g = dev(rng.standard_normal(out_shape).astype(np.float32))
        flops = 2.0 * np.prod(out_shape) * np.prod(w_shape[1:])
        nbytes = x.nbytes + 4 * np.prod(out_shape) + w.nbytes

        def stats(t, what):
            scale = 2.0 if what == "backward" else 1.0  # grad input + grad weight
            return dict(gbs=scale * nbytes / t / 1e9 if memory_bound else None,
                        tflops=scale * flops / t / 1e12)

        t = timed(lambda: fastcorr.conv2d(d_x, d_w, padding=1, groups=groups, out=d_out), sync,
                  args.repeat)
        report.add(case + " forward", "fastcorr cuda (fp32)", t, **stats(t, "forward"))
        t = timed(lambda: fastcorr.conv2d_backward(d_g, d_x, d_w, padding=1, groups=groups,
                                                   output_mask=(True, True, False)),
                  sync, args.repeat)
        report.add(case + " backward", "fastcorr cuda (fp32)", t, **stats(t, "backward"))
        if not has_torch:
            report.skip(case, "torch", "torch with CUDA not available")
            return
        t_x = torch.as_tensor(d_x, device="cuda")
        t_w = torch.as_tensor(d_w, device="cuda")
        t_g = torch.as_tensor(d_g, device="cuda")
        settings = [("fp32, TF32 off", False)] + ([] if memory_bound else
                                                  [("torch default (TF32 on)", True)])
        saved = torch.backends.cudnn.allow_tf32
        try:
            for label, tf32 in settings:
                torch.backends.cudnn.allow_tf32 = tf32
                with torch.no_grad():
                    t = timed(lambda: torch.nn.functional.conv2d(t_x, t_w, padding=1,
                                                                 groups=groups),
                              sync, args.repeat)
                report.add(case + " forward", f"torch cuDNN {label}", t, **stats(t, "forward"))
                t = timed(lambda: torch.ops.aten.convolution_backward(
                    t_g, t_x, t_w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], groups,
                    [True, True, False]), sync, args.repeat)
                report.add(case + " backward", f"torch cuDNN {label}", t,
                           **stats(t, "backward"))
        finally:
            torch.backends.cudnn.allow_tf32 = saved

    n, hw = s(32), s(56)
    if "depthwise" in cases:
        layer(f"depthwise ({n},256,{hw},{hw}) k3", (n, 256, hw, hw), (256, 1, 3, 3), 256, True)
    if "dense" in cases:
        layer(f"dense ({n},64,{hw},{hw})->64 k3", (n, 64, hw, hw), (64, 64, 3, 3), 1, False)
    if "stream" in cases:
        stream_case(args, report, rng, s, sync)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=name, hbm_peak_gbs=peak, rows=report.rows), f, indent=1)
    return 0


def stream_case(args, report, rng, s, sync):
    """Streaming a host stack through the GPU against the pinned-copy bandwidth."""
    from numba import cuda

    from fastcorr import batch

    # ------------------------------------------------------------------ streaming
    count, side = max(2, s(args.stream_images)), s(2048)
    stack = rng.standard_normal((count, side, side)).astype(np.float32)
    kernel = rng.standard_normal((3, 3)).astype(np.float32)
    pinned = cuda.pinned_array(stack.shape, np.float32)
    pinned[...] = stack
    d_stack = cuda.device_array(stack.shape, np.float32)
    t_h2d = timed(lambda: d_stack.copy_to_device(pinned), sync, max(3, args.repeat // 4), 1)
    t_d2h = timed(lambda: d_stack.copy_to_host(pinned), sync, max(3, args.repeat // 4), 1)
    del d_stack
    case = f"stream {count}x{side}x{side} k3 same f32 (host)"
    report.add(case, "pinned copy H2D", t_h2d, gbs=stack.nbytes / t_h2d / 1e9)
    report.add(case, "pinned copy D2H", t_d2h, gbs=stack.nbytes / t_d2h / 1e9)
    out = np.empty_like(stack)
    t = timed(lambda: batch.correlate_stack(stack, kernel, "same", backend="cuda", out=out,
                                            streams=2), sync, max(3, args.repeat // 4), 1)
    bound = t_h2d + t_d2h
    report.add(case, "fastcorr.batch.correlate_stack", t, gbs=2 * stack.nbytes / t / 1e9,
               note=f"copies alone {bound * 1e3:.1f} ms serial; {100 * bound / t:.0f}% of that")


if __name__ == "__main__":
    sys.exit(main())
