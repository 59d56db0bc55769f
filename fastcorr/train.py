"""Losses, plain SGD and a short training loop for :mod:`fastcorr.nn` modules."""

import sys

import numpy as np

LOSSES = ("sse", "mse")


def loss_and_grad(prediction, target, loss="sse"):
    """The loss and its gradient with respect to ``prediction``.

    ``"sse"``: the sum of squared errors (the source material's first example);
    ``"mse"``: their mean.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {', '.join(map(repr, LOSSES))}; got {loss!r}")
    prediction, target = np.asarray(prediction), np.asarray(target)
    if prediction.shape != target.shape:
        raise ValueError(f"Y: expected the model's output shape {prediction.shape}, got "
                         f"{target.shape}")
    diff = prediction - target
    value = float(np.sum(diff * diff, dtype=np.float64))
    grad = 2.0 * diff
    if loss == "mse":
        value /= diff.size
        grad /= diff.size
    return value, grad.astype(prediction.dtype)


class SGD:
    """Stochastic gradient descent with optional momentum and weight decay (as torch.optim.SGD).

    Parameters
    ----------
    parameters : list of Parameter
    lr : float
        Positive learning rate.
    momentum, weight_decay : float
        Non-negative.
    """

    def __init__(self, parameters, lr, momentum=0.0, weight_decay=0.0):
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not np.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"{name}: expected a {'positive' if name == 'lr' else 'non-negative'} "
                                 f"number, got {value!r}")
        self.parameters = list(parameters)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self._velocity = [None] * len(self.parameters)

    def step(self):
        """Move every parameter against its gradient (parameters without one are left)."""
        for k, p in enumerate(self.parameters):
            if p.grad is None:
                continue
            step = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                v = self._velocity[k]
                self._velocity[k] = step.copy() if v is None else self.momentum * v + step
                step = self._velocity[k]
            p.data -= (self.lr * step).astype(p.data.dtype)


def _batches(n, batch_size, shuffle, rng):
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def fit(model, X, Y, *, epochs, lr, loss="sse", batch_size=None, shuffle=False, rng=None,
        progress=False, callback=None, momentum=0.0, weight_decay=0.0):
    """Train ``model`` on ``(X, Y)`` with SGD; return the loss of each epoch.

    Parameters
    ----------
    model : fastcorr.nn.Module
    X, Y : ndarray
        Inputs and targets. A 4-D ``X`` (N, C, H, W) is a batch of samples that ``batch_size``
        splits along N; any other ``X`` (an image, one unbatched sample) is one sample.
    epochs : int
    lr : float
    loss : {"sse", "mse"}
    batch_size : int, optional
        Samples per step; None: the whole batch in one step.
    shuffle : bool
        Visit the samples in a new random order each epoch (from ``rng``).
    rng : numpy.random.Generator or int, optional
    progress : bool
        Show a progress bar with the current loss on standard error.
    callback : callable, optional
        ``callback(epoch, loss)`` after each epoch (epochs count from 1).
    momentum, weight_decay : float
        Passed to :class:`SGD`.

    Returns
    -------
    list of float
        Per epoch: the sum of the steps' losses ("sse"), or their mean weighted by the samples
        ("mse"), each taken before its step's update.
    """
    X, Y = np.asarray(X), np.asarray(Y)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs: expected a non-negative int, got {epochs!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {', '.join(map(repr, LOSSES))}; got {loss!r}")
    batched = X.ndim == 4
    n = X.shape[0] if batched else 1
    if batched and Y.shape[:1] != (n,):
        raise ValueError(f"Y: expected {n} targets along the first axis, got shape {Y.shape}")
    if batch_size is None:
        batch_size = n
    elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    optimiser = SGD(model.parameters(), lr, momentum, weight_decay)
    history = []
    for epoch in range(1, epochs + 1):
        total = 0.0
        for index in _batches(n, batch_size, shuffle, rng) if batched else [None]:
            xb, yb = (X, Y) if index is None else (X[index], Y[index])
            model.zero_grad()
            value, grad = loss_and_grad(model(xb), yb, loss)
            model.backward(grad)
            optimiser.step()
            total += value * (len(xb) / n if batched and loss == "mse" else 1.0)
        history.append(total)
        if progress:
            _show_progress(epoch, epochs, total)
        if callback is not None:
            callback(epoch, total)
    return history


def _show_progress(epoch, epochs, value, width=30):
    done = width * epoch // epochs
    bar = "#" * done + "." * (width - done)
    end = "\n" if epoch == epochs else ""
    sys.stderr.write(f"\r[{bar}] epoch {epoch}/{epochs}  loss {value:.6g}{end}")
    sys.stderr.flush()
