"""Time fastcorr and its peers side by side in one process; print medians and ratios.

usage: python asv_benchmarks/compare_peers.py [--size 2048] [--repeat 15] [--layers]

Single-channel float32 image, "same" output with zero fill, 3x3 and 7x7 kernels; with
``--layers`` also the dense (32, 64, 56, 56) -> 64 and depthwise (32, 256, 56, 56) 3x3 layers,
forward and backward (input and weight gradients), against torch. A ratio is peer time /
fastcorr time (above 1: fastcorr is faster). Peers that are not installed are skipped. The
memory floor is the bytes read and written over the bandwidth measured here by a large copy.
"""

import argparse
import time

import numpy as np

import fastcorr


def median_time(fn, repeat):
    fn()  # warm-up: compilation and first-touch never timed
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def copy_bandwidth(nbytes, repeat):
    """Bytes read plus bytes written per second by a large array copy."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    return 2 * nbytes / median_time(lambda: np.copyto(dst, src), repeat)


def peers(image, kernel):
    """name -> callable computing the same "same"-size correlation with zero fill."""
    found = {}
    try:
        import cv2

        found["OpenCV filter2D"] = lambda: cv2.filter2D(
            image, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    except ImportError:
        pass
    try:
        import scipy.ndimage
        import scipy.signal

        found["scipy.ndimage.correlate"] = lambda: scipy.ndimage.correlate(
            image, kernel, mode="constant")
        found["scipy.signal.correlate2d"] = lambda: scipy.signal.correlate2d(
            image, kernel, "same")
    except ImportError:
        pass
    try:
        import torch
        import torch.nn.functional as F

        x, w = torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None]
        found["torch conv2d"] = lambda: F.conv2d(x, w, padding="same")
    except ImportError:
        pass
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--layers", action="store_true", help="also time NCHW layers")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = rng.standard_normal((args.size, args.size), dtype=np.float32)
    bandwidth = copy_bandwidth(image.nbytes, args.repeat)
    floor = 2 * image.nbytes / bandwidth
    print(f"image {args.size}x{args.size} float32, 'same', zero fill; "
          f"copy bandwidth {bandwidth / 1e9:.1f} GB/s, memory floor {floor * 1e3:.2f} ms")
    for k in (3, 7):
        kernel = rng.standard_normal((k, k), dtype=np.float32)
        ours = median_time(lambda: fastcorr.correlate2d(image, kernel, "same"), args.repeat)
        print(f"\n{k}x{k}: fastcorr {ours * 1e3:8.2f} ms   ({ours / floor:.2f}x the memory floor)")
        for name, fn in peers(image, kernel).items():
            theirs = median_time(fn, max(3, args.repeat // 3))
            print(f"  {name:26s} {theirs * 1e3:8.2f} ms   ratio {theirs / ours:6.2f}")
    if args.layers:
        compare_layers(max(3, args.repeat // 3))


def compare_layers(repeat):
    """Dense and depthwise 3x3 layers, padding 1, float32: forward and backward vs torch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("\nlayers: torch is not installed, nothing to compare")
        return
    rng = np.random.default_rng(1)
    for name, shape, c_out, groups in (("dense", (32, 64, 56, 56), 64, 1),
                                       ("depthwise", (32, 256, 56, 56), 256, 256)):
        x = rng.standard_normal(shape, dtype=np.float32)
        w = rng.standard_normal((c_out, shape[1] // groups, 3, 3), dtype=np.float32)
        g = rng.standard_normal((shape[0], c_out) + shape[2:], dtype=np.float32)
        mask = (True, True, False)
        ours_f = median_time(lambda: fastcorr.conv2d(x, w, padding=1, groups=groups), repeat)
        ours_b = median_time(lambda: fastcorr.conv2d_backward(
            g, x, w, padding=1, groups=groups, output_mask=mask), repeat)
        xt = torch.from_numpy(x).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        gt = torch.from_numpy(g)

        def torch_backward():
            xt.grad = wt.grad = None
            F.conv2d(xt, wt, padding=1, groups=groups).backward(gt)

        with torch.no_grad():
            theirs_f = median_time(lambda: F.conv2d(xt, wt, padding=1, groups=groups), repeat)
        # torch's backward timing includes its forward: subtract the forward's median
        theirs_b = median_time(torch_backward, repeat) - theirs_f
        flops = 2 * g.size * w.shape[1] * 9
        print(f"\n{name} {shape} -> {c_out}, groups {groups}: {flops / 1e9:.2f} GFLOP a pass")
        print(f"  forward   fastcorr {ours_f * 1e3:8.1f} ms  torch {theirs_f * 1e3:8.1f} ms  "
              f"ratio {theirs_f / ours_f:5.2f}")
        print(f"  backward  fastcorr {ours_b * 1e3:8.1f} ms  torch {theirs_b * 1e3:8.1f} ms  "
              f"ratio {theirs_b / ours_b:5.2f}  (input + weight gradients)")


if __name__ == "__main__":
    main()
