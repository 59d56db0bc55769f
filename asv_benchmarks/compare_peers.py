"""Time fastcorr and its peers side by side in one process; print medians and ratios.

usage: python asv_benchmarks/compare_peers.py [--size 2048] [--repeat 15]

Single-channel float32 image, "same" output with zero fill, 3x3 and 7x7 kernels. A ratio is
peer time / fastcorr time (above 1: fastcorr is faster). Peers that are not installed are
skipped. The memory floor is the bytes read and written over the bandwidth measured here by
a large copy.
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


if __name__ == "__main__":
    main()
