"""Training benchmarks: one SGD step of a ``fastcorr.nn.Conv2d`` layer, and the book's example."""

import numpy as np

from fastcorr import nn, train

from ._common import BACKENDS, LAYERS, require_backend


class SGDStep:
    """One step on a batch: zero_grad, forward, MSE loss and its gradient, backward (input,
    weight and bias gradients), SGD update with momentum. Batch 8, 56x56, 3x3, padding 1."""

    params = (list(LAYERS), BACKENDS)
    param_names = ["layer", "backend"]

    def setup(self, layer, backend):
        require_backend(backend)
        shape, c_out, groups = LAYERS[layer]
        rng = np.random.default_rng(0)
        self.layer = nn.Conv2d(shape[1], c_out, 3, padding=1, groups=groups, rng=0,
                               backend=backend)
        self.x = rng.standard_normal(shape, dtype=np.float32)
        self.y = rng.standard_normal((shape[0], c_out) + shape[2:], dtype=np.float32)
        self.optimiser = train.SGD(self.layer.parameters(), lr=1e-3, momentum=0.9)
        self.time_sgd_step(layer, backend)  # compile, warm up

    def time_sgd_step(self, layer, backend):
        self.layer.zero_grad()
        _, grad = train.loss_and_grad(self.layer(self.x), self.y, "mse")
        self.layer.backward(grad)
        self.optimiser.step()

    def peakmem_sgd_step(self, layer, backend):
        self.time_sgd_step(layer, backend)


class BookExample:
    """``train.fit`` of the source material: learn the (1, 2) edge kernel from the 6x8 image,
    10 epochs. Tiny arrays: this tracks the per-call overhead of the Python layers."""

    def setup(self):
        self.X = np.ones((6, 8))
        self.X[:, 2:6] = 0.0
        self.Y = np.zeros((6, 7))
        self.Y[:, 1], self.Y[:, 5] = 1.0, -1.0
        self.time_fit()  # compile, warm up

    def time_fit(self):
        layer = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False, rng=0, dtype=np.float64)
        train.fit(layer, self.X[None, None], self.Y[None, None], epochs=10, lr=3e-2, loss="sse")
