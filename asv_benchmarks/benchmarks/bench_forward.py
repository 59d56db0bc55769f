"""Forward correlation benchmarks: single-channel images and NCHW layers (CPU backend)."""

import numpy as np

import fastcorr


class Image:
    """``correlate2d(image, kernel, "same")`` on a square single-channel image."""

    params = ([512, 2048], [3, 7], ["float32", "float64"])
    param_names = ["size", "kernel", "dtype"]

    def setup(self, size, kernel, dtype):
        rng = np.random.default_rng(0)
        self.image = rng.standard_normal((size, size)).astype(dtype)
        self.kernel = rng.standard_normal((kernel, kernel)).astype(dtype)
        self.out = np.empty_like(self.image)
        fastcorr.correlate2d(self.image, self.kernel, "same", out=self.out)  # compile, warm up

    def time_correlate2d(self, size, kernel, dtype):
        fastcorr.correlate2d(self.image, self.kernel, "same", out=self.out)

    def peakmem_correlate2d(self, size, kernel, dtype):
        fastcorr.correlate2d(self.image, self.kernel, "same")


class Layer:
    """``conv2d`` forward on layers of a small CNN, float32, padding 1, 3x3."""

    params = (["dense", "grouped", "depthwise"],)
    param_names = ["layer"]
    shapes = {  # input shape, output channels, groups
        "dense": ((8, 64, 56, 56), 64, 1),
        "grouped": ((8, 64, 56, 56), 64, 8),
        "depthwise": ((8, 256, 56, 56), 256, 256),
    }

    def setup(self, layer):
        shape, c_out, groups = self.shapes[layer]
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal(shape, dtype=np.float32)
        self.w = rng.standard_normal((c_out, shape[1] // groups, 3, 3), dtype=np.float32)
        self.groups = groups
        fastcorr.conv2d(self.x, self.w, padding=1, groups=groups)  # compile, warm up

    def time_conv2d(self, layer):
        fastcorr.conv2d(self.x, self.w, padding=1, groups=self.groups)

    def peakmem_conv2d(self, layer):
        fastcorr.conv2d(self.x, self.w, padding=1, groups=self.groups)
