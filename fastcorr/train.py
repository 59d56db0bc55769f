"""Losses, plain SGD and a short training loop for :mod:`fastcorr.nn` modules."""

import sys

import numpy as np

__all__ = ["loss_and_grad", "SGD", "fit"]

LOSSES = ("sse", "mse")


def loss_and_grad(prediction, target, loss="sse"):
    """The loss and its gradient with respect to ``prediction``.

    ``"sse"``: the sum of squared errors (the source material's first example);
    ``"mse"``: their mean.

    Parameters
    ----------
    prediction : array_like, any shape
        The model's output.
    target : array_like, the shape of ``prediction``
        What the output should be.
    loss : {"sse", "mse"}, optional
        ``sum((prediction - target) ** 2)`` (the default) or its mean over the elements.

    Returns
    -------
    value : float
        The loss, summed in float64.
    grad : ndarray, the shape of ``prediction``, in its dtype
        ``2 * (prediction - target)``, divided by the number of elements for "mse".

    Raises
    ------
    ValueError
        If ``loss`` is not "sse" or "mse", or ``target`` does not have ``prediction``'s shape.

    See Also
    --------
    fit : the training loop that calls it.
    torch.nn.MSELoss : the torch counterpart (``reduction="sum"`` for "sse", ``"mean"`` for
        "mse").

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr import train
    >>> train.loss_and_grad(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    (5.0, array([2., 4.]))
    >>> train.loss_and_grad(np.array([1.0, 2.0], np.float32), np.zeros(2), loss="mse")
    (2.5, array([1., 2.], dtype=float32))
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
    parameters : iterable of fastcorr.nn.Parameter
        What :meth:`step` updates, usually ``model.parameters()``.
    lr : float
        Positive learning rate.
    momentum, weight_decay : float, optional
        Non-negative (default 0): the momentum factor, and the L2 penalty added to each
        gradient as ``weight_decay * data``.

    Attributes
    ----------
    parameters : list of fastcorr.nn.Parameter
    lr, momentum, weight_decay : float

    Raises
    ------
    ValueError
        If ``lr`` is not a positive finite number, or ``momentum`` or ``weight_decay`` is
        negative or not finite.
    TypeError
        If one of them is not a number.

    See Also
    --------
    fit : trains a module with this optimiser.
    torch.optim.SGD : the torch counterpart (here with ``dampening=0``, ``nesterov=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr import nn, train
    >>> p = nn.Parameter(np.array([1.0, -2.0]))
    >>> p.grad = np.array([0.5, 0.5])
    >>> opt = train.SGD([p], lr=0.1)
    >>> opt.step()
    >>> p.data
    array([ 0.95, -2.05])
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
        """Move every parameter against its gradient (parameters without one are left).

        For each parameter with a ``grad``: ``g = grad + weight_decay * data``; with momentum,
        ``v = momentum * v + g`` (``v = g`` on its first step) and ``g = v``; then
        ``data -= lr * g``, in place and in ``data``'s dtype.

        Returns
        -------
        None

        See Also
        --------
        torch.optim.SGD.step : the torch counterpart.

        Examples
        --------
        >>> import numpy as np
        >>> from fastcorr import nn, train
        >>> p = nn.Parameter(np.array([1.0, -2.0]))
        >>> p.grad = np.array([0.5, 0.5])
        >>> opt = train.SGD([p], lr=0.1, momentum=0.9)
        >>> opt.step()
        >>> p.data
        array([ 0.95, -2.05])
        >>> opt.step()  # the velocity is now 0.9 * 0.5 + 0.5
        >>> p.data
        array([ 0.855, -2.145])
        """
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

    Each step zeroes the gradients, runs ``model(xb)``, takes :func:`loss_and_grad` against
    ``yb``, runs ``model.backward`` and :meth:`SGD.step`.

    Parameters
    ----------
    model : fastcorr.nn.Module
        Trained in place.
    X, Y : array_like
        Inputs and targets. A 4-D ``X`` (N, C, H, W) is a batch of samples that ``batch_size``
        splits along N (``Y`` then has N targets along its first axis, e.g. (N, C_out, H_out,
        W_out)); any other ``X`` (an image (H, W), one unbatched sample (C, H, W)) is one
        sample, and ``Y`` has the model's output shape.
    epochs : int
        Non-negative number of passes over the data.
    lr : float
        Positive learning rate.
    loss : {"sse", "mse"}, optional
        As in :func:`loss_and_grad`.
    batch_size : int, optional
        Samples per step; None: the whole batch in one step.
    shuffle : bool, optional
        Visit the samples in a new random order each epoch (from ``rng``).
    rng : numpy.random.Generator or int, optional
        The source of the shuffles (an int seeds a new Generator).
    progress : bool, optional
        Show a progress bar with the current loss on standard error.
    callback : callable, optional
        ``callback(epoch, loss)`` after each epoch (epochs count from 1).
    momentum, weight_decay : float, optional
        Passed to :class:`SGD`.

    Returns
    -------
    list of float
        Per epoch: the sum of the steps' losses ("sse"), or their mean weighted by the samples
        ("mse"), each taken before its step's update.

    Raises
    ------
    ValueError
        If ``epochs`` is not a non-negative int, ``loss`` is not "sse" or "mse",
        ``batch_size`` is not a positive int, ``Y`` has not N targets along its first axis
        (batched ``X``) or not the model's output shape, or ``lr``, ``momentum`` or
        ``weight_decay`` is out of range (as :class:`SGD` raises it); and as the model raises
        it.
    TypeError
        If ``lr``, ``momentum`` or ``weight_decay`` is not a number, and as the model raises
        it.

    See Also
    --------
    SGD, loss_and_grad : the optimiser and the loss of each step.
    fastcorr.nn.Conv2d : a model to train.
    torch.optim.SGD : the loop written with torch's optimiser.

    Examples
    --------
    The book's example: learn the edge kernel ``[[1, -1]]`` from an image and its edges.

    >>> import numpy as np, fastcorr
    >>> from fastcorr import nn, train
    >>> X = np.ones((6, 8), dtype=np.float32)
    >>> X[:, 2:6] = 0
    >>> Y = fastcorr.corr2d(X, np.array([[1.0, -1.0]], dtype=np.float32))
    >>> layer = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False, rng=0)
    >>> history = train.fit(layer, X, Y, epochs=20, lr=3e-2)
    >>> len(history), history[-1] < 1e-3 < history[0]
    (20, True)
    >>> np.round(layer.weight.data.reshape(1, 2), 2)
    array([[ 1., -1.]], dtype=float32)
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
