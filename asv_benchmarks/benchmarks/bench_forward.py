"""Forward correlation benchmarks: single-channel images and NCHW layers."""

import numpy as np

import fastcorr

from ._common import BACKENDS, LAYERS, image_data, layer_data, require_backend


class Image:
    """``correlate2d(image, kernel, "same")`` on a square single-channel image."""

    params = ([512, 2048], [3, 7], ["float32", "float64"], BACKENDS)
    param_names = ["size", "kernel", "dtype", "backend"]

    def setup(self, size, kernel, dtype, backend):
        require_backend(backend)
        self.image, self.kernel = image_data(size, kernel, dtype)
        self.out = np.empty_like(self.image)
        self.backend = backend
        self.time_correlate2d(size, kernel, dtype, backend)  # compile, warm up

    def time_correlate2d(self, size, kernel, dtype, backend):
        fastcorr.correlate2d(self.image, self.kernel, "same", out=self.out, backend=self.backend)

    def peakmem_correlate2d(self, size, kernel, dtype, backend):
        fastcorr.correlate2d(self.image, self.kernel, "same", backend=self.backend)


class Layer:
    """``conv2d`` forward on layers of a small CNN (batch 8, 56x56), 3x3, padding 1."""

    params = (list(LAYERS), ["float32", "float64"], BACKENDS)
    param_names = ["layer", "dtype", "backend"]

    def setup(self, layer, dtype, backend):
        require_backend(backend)
        self.x, self.w, _, self.groups = layer_data(layer, dtype)
        self.backend = backend
        self.time_conv2d(layer, dtype, backend)  # compile, warm up

    def time_conv2d(self, layer, dtype, backend):
        fastcorr.conv2d(self.x, self.w, padding=1, groups=self.groups, backend=self.backend)

    def peakmem_conv2d(self, layer, dtype, backend):
        fastcorr.conv2d(self.x, self.w, padding=1, groups=self.groups, backend=self.backend)


class KernelSizes:
    """``correlate2d(image, kernel, "same")``, float32, by kernel size and method, beside
    OpenCV ``filter2D`` and SciPy's ``fftconvolve`` / ``oaconvolve`` (skipped when not
    installed); ``fastcorr bench --sizes`` prints the same grid with ratios to the best peer."""

    params = ([2048, 4096], [3, 5, 7, 11, 15, 31, 63],
              ["auto", "direct", "fft", "opencv", "fftconvolve", "oaconvolve"])
    param_names = ["size", "kernel", "implementation"]
    timeout = 300

    def setup(self, size, kernel, implementation):
        self.image, self.kernel = image_data(size, kernel, "float32")
        self.out = np.empty_like(self.image)
        if implementation in ("auto", "direct", "fft"):
            self.run = lambda: fastcorr.correlate2d(self.image, self.kernel, "same",
                                                    method=implementation, out=self.out)
        elif implementation == "opencv":
            try:
                import cv2
            except ImportError:
                raise NotImplementedError("OpenCV is not installed") from None
            self.run = lambda: cv2.filter2D(self.image, -1, self.kernel, dst=self.out,
                                            borderType=cv2.BORDER_CONSTANT)
        else:
            try:
                import scipy.signal
            except ImportError:
                raise NotImplementedError("SciPy is not installed") from None
            fn = getattr(scipy.signal, implementation)
            flipped = np.ascontiguousarray(self.kernel[::-1, ::-1])
            self.run = lambda: fn(self.image, flipped, "same")
        self.run()  # compile, warm up

    def time_same(self, size, kernel, implementation):
        self.run()


class LayerZoo:
    """The conv layers of ResNet, ResNeXt, MobileNetV2, EfficientNet and ConvNeXt at batch 8
    (``fastcorr.bench.ZOO``; ``fastcorr bench --zoo`` times them against torch), forward and
    backward (input and weight gradients), float32."""

    params = ([f"{net} {label}" for net, label, *_ in __import__("fastcorr.bench").bench.ZOO],
              ["forward", "backward"])
    param_names = ["layer", "pass"]

    def setup(self, layer, pass_):
        from fastcorr import bench

        (net, label, (c, h, w), c_out, groups, kernel, stride), = [
            entry for entry in bench.ZOO if f"{entry[0]} {entry[1]}" == layer]
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((8, c, h, w)).astype(np.float32)
        self.w = rng.standard_normal((c_out, c // groups, kernel, kernel)).astype(np.float32)
        self.args = dict(stride=stride, padding=kernel // 2, groups=groups)
        self.g = rng.standard_normal(fastcorr.conv2d(self.x, self.w, **self.args).shape
                                     ).astype(np.float32)
        self.time_layer(layer, pass_)  # compile, warm up

    def time_layer(self, layer, pass_):
        if pass_ == "forward":
            fastcorr.conv2d(self.x, self.w, **self.args)
        else:
            fastcorr.conv2d_backward(self.g, self.x, self.w, output_mask=(True, True, False),
                                     **self.args)
