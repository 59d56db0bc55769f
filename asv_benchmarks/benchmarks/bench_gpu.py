"""GPU benchmarks of the CUDA backend (device-resident data, synchronised around every call).

Every ``setup`` raises NotImplementedError without a usable GPU, which asv reports as a
skipped benchmark. The comparison with torch and CuPy is ``asv_benchmarks/gpu_compare.py``.
"""

import numpy as np


def _gpu():
    """numba.cuda when the CUDA backend can run, else NotImplementedError (asv: skipped)."""
    from fastcorr.dispatch import BackendUnavailableError, cuda_backend

    try:
        cuda_backend()
    except BackendUnavailableError as exc:
        raise NotImplementedError(str(exc)) from None
    from numba import cuda

    return cuda


class GpuImage:
    """``correlate2d(image, kernel, "same")`` on a 4096x4096 float32 device image."""

    params = ([3, 7],)
    param_names = ["kernel"]

    def setup(self, kernel):
        self.cuda = cuda = _gpu()
        import fastcorr

        rng = np.random.default_rng(0)
        self.image = cuda.to_device(rng.standard_normal((4096, 4096)).astype(np.float32))
        self.kernel = cuda.to_device(rng.standard_normal((kernel, kernel)).astype(np.float32))
        self.out = cuda.device_array((4096, 4096), np.float32)
        self.run = lambda: fastcorr.correlate2d(self.image, self.kernel, "same", out=self.out)
        self.run()
        cuda.synchronize()

    def time_correlate2d(self, kernel):
        self.run()
        self.cuda.synchronize()


class GpuLayer:
    """``conv2d`` forward and backward on device arrays, float32, 3x3, padding 1."""

    params = (["depthwise", "dense"], ["forward", "backward"])
    param_names = ["layer", "pass"]
    shapes = {  # input shape, output channels, groups
        "depthwise": ((32, 256, 56, 56), 256, 256),
        "dense": ((32, 64, 56, 56), 64, 1),
    }

    def setup(self, layer, which):
        self.cuda = cuda = _gpu()
        import fastcorr

        shape, c_out, groups = self.shapes[layer]
        rng = np.random.default_rng(0)
        x = cuda.to_device(rng.standard_normal(shape).astype(np.float32))
        w = cuda.to_device(rng.standard_normal((c_out, shape[1] // groups, 3, 3))
                           .astype(np.float32))
        out_shape = (shape[0], c_out) + shape[2:]
        out = cuda.device_array(out_shape, np.float32)
        g = cuda.to_device(rng.standard_normal(out_shape).astype(np.float32))
        if which == "forward":
            self.run = lambda: fastcorr.conv2d(x, w, padding=1, groups=groups, out=out)
        else:
            self.run = lambda: fastcorr.conv2d_backward(g, x, w, padding=1, groups=groups,
                                                        output_mask=(True, True, False))
        self.run()
        cuda.synchronize()

    def time_conv2d(self, layer, which):
        self.run()
        self.cuda.synchronize()


class GpuStream:
    """``fastcorr.batch.correlate_stack`` on a host stack of 16 2048x2048 float32 images."""

    def setup(self):
        self.cuda = cuda = _gpu()
        from fastcorr import batch

        rng = np.random.default_rng(0)
        stack = rng.standard_normal((16, 2048, 2048)).astype(np.float32)
        kernel = rng.standard_normal((3, 3)).astype(np.float32)
        out = np.empty_like(stack)
        self.run = lambda: batch.correlate_stack(stack, kernel, "same", backend="cuda", out=out)
        self.run()

    def time_correlate_stack(self):
        self.run()
        self.cuda.synchronize()
