"""Shared data and backend checks of the CPU benchmarks (no benchmarks here).

Every benchmark's ``setup`` builds its data and makes one warm-up call, so compilation (and
the first touch of new memory) is never timed. A backend that cannot run on this machine makes
``setup`` raise NotImplementedError, which asv reports as skipped.
"""

import numpy as np

import fastcorr

# "cpu": the Numba kernels; "cuda": the same NumPy arrays with backend="cuda" (copied to the GPU
# and back in every call; device-resident timings are bench_gpu.py's). Skipped without a GPU.
BACKENDS = ["cpu", "cuda"]

# layer name -> (input shape NCHW, output channels, groups); 3x3 kernels, padding 1
LAYERS = {
    "dense": ((8, 64, 56, 56), 64, 1),
    "grouped": ((8, 64, 56, 56), 64, 8),
    "depthwise": ((8, 256, 56, 56), 256, 256),
}


def require_backend(backend):
    """Return if ``backend`` runs here; raise NotImplementedError (asv: skipped) if not."""
    if backend == "cpu":
        return
    from fastcorr.dispatch import BackendUnavailableError

    try:
        fastcorr.correlate2d(np.ones((4, 4), np.float32), np.ones((2, 2), np.float32),
                             backend=backend)
    except (BackendUnavailableError, ValueError) as exc:
        raise NotImplementedError(f"backend {backend!r} cannot run here: {exc}") from None


def layer_data(layer, dtype, seed=0):
    """``(x, weight, grad_output, groups)`` of one of :data:`LAYERS` (3x3, padding 1)."""
    shape, c_out, groups = LAYERS[layer]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((c_out, shape[1] // groups, 3, 3)).astype(dtype)
    grad_output = rng.standard_normal((shape[0], c_out) + shape[2:]).astype(dtype)
    return x, weight, grad_output, groups


def image_data(size, kernel, dtype, seed=0):
    """A square image and a square kernel, standard normal."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((size, size)).astype(dtype),
            rng.standard_normal((kernel, kernel)).astype(dtype))
