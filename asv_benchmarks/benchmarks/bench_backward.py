"""Gradient benchmarks: ``conv2d_backward`` on NCHW layers, ``correlate2d_backward`` on images."""

import fastcorr

from ._common import BACKENDS, LAYERS, image_data, layer_data, require_backend

INPUT, WEIGHT, ALL = (True, False, False), (False, True, False), (True, True, True)


class LayerBackward:
    """Input, weight and bias gradients of a 3x3, padding 1 layer (batch 8, 56x56), together
    and one at a time."""

    params = (list(LAYERS), ["float32", "float64"], BACKENDS)
    param_names = ["layer", "dtype", "backend"]

    def setup(self, layer, dtype, backend):
        require_backend(backend)
        self.x, self.w, self.g, self.groups = layer_data(layer, dtype)
        self.backend = backend
        for mask in (ALL, INPUT, WEIGHT):  # compile, warm up
            self._backward(mask)

    def _backward(self, mask):
        fastcorr.conv2d_backward(self.g, self.x, self.w, padding=1, groups=self.groups,
                                 output_mask=mask, backend=self.backend)

    def time_conv2d_backward(self, layer, dtype, backend):
        self._backward(ALL)

    def time_grad_input(self, layer, dtype, backend):
        self._backward(INPUT)

    def time_grad_weight(self, layer, dtype, backend):
        self._backward(WEIGHT)

    def peakmem_conv2d_backward(self, layer, dtype, backend):
        self._backward(ALL)


class ImageBackward:
    """Both gradients of ``correlate2d(image, kernel, "same")``, float32."""

    params = ([512, 2048], [3, 7], BACKENDS)
    param_names = ["size", "kernel", "backend"]

    def setup(self, size, kernel, backend):
        require_backend(backend)
        self.image, self.kernel = image_data(size, kernel, "float32")
        self.g, _ = image_data(size, 1, "float32", seed=1)
        self.backend = backend
        self.time_correlate2d_backward(size, kernel, backend)  # compile, warm up

    def time_correlate2d_backward(self, size, kernel, backend):
        fastcorr.correlate2d_backward(self.g, self.image, self.kernel, "same",
                                      backend=self.backend)

    def peakmem_correlate2d_backward(self, size, kernel, backend):
        fastcorr.correlate2d_backward(self.g, self.image, self.kernel, "same",
                                      backend=self.backend)
