"""A minimal layer API on top of fastcorr's functions: ``Module``, ``Parameter``, ``Conv2d``
and ``Sequential``.

Layers compute with NumPy arrays; ``backward(grad_output)`` stores the parameters' gradients
(adding to what is there, as torch does) and returns the gradient with respect to the input,
so layers stack.
"""

import math

import numpy as np

from . import _validate as v
from .functional import conv2d
from .gradients import conv2d_backward

__all__ = ["Parameter", "Module", "Conv2d", "Sequential"]


class Parameter:
    """A trainable array and its gradient.

    Parameters
    ----------
    data : array_like, any shape
        The initial value, read with :func:`numpy.asarray` (an ndarray is held, not copied).

    Attributes
    ----------
    data : ndarray
        The value, updated in place by optimisers.
    grad : ndarray or None
        The gradient accumulated by ``backward`` since the last ``zero_grad``; None until
        then.

    See Also
    --------
    Module.parameters : the Parameters of a layer.
    fastcorr.train.SGD : updates ``data`` from ``grad``.
    torch.nn.Parameter : the torch counterpart (a tensor with ``.grad``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr import nn
    >>> p = nn.Parameter([[1.0, 2.0]])
    >>> p
    Parameter(shape=(1, 2), dtype=float64)
    >>> p.shape, p.grad is None
    ((1, 2), True)
    >>> np.asarray(p)
    array([[1., 2.]])
    """

    def __init__(self, data):
        self.data = np.asarray(data)
        self.grad = None

    @property
    def shape(self):
        """The shape of ``data``, a tuple of ints."""
        return self.data.shape

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of layers: subclasses define ``forward(x)`` and ``backward(grad_output)``.

    ``__call__`` runs ``forward``; parameters are found among the attributes: a
    :class:`Parameter`, a Module (its parameters), or a list or tuple of those.

    ``backward(grad_output)`` should add each parameter's gradient to its ``grad`` (as torch
    accumulates) and return the gradient with respect to the input, so that modules stack.

    See Also
    --------
    Conv2d, Sequential : the modules this package provides.
    fastcorr.train.fit : trains a module.
    torch.nn.Module : the torch counterpart (with autograd instead of ``backward``).

    Examples
    --------
    A module of its own: a learned scale.

    >>> import numpy as np
    >>> from fastcorr import nn
    >>> class Scale(nn.Module):
    ...     def __init__(self):
    ...         self.factor = nn.Parameter(np.array(2.0))
    ...     def forward(self, x):
    ...         self.x = np.asarray(x)
    ...         return self.factor.data * self.x
    ...     def backward(self, grad_output):
    ...         self.factor.grad = self.factor.grad + np.sum(grad_output * self.x)
    ...         return grad_output * self.factor.data
    >>> layer = Scale()
    >>> layer([1.0, 3.0])
    array([2., 6.])
    >>> layer.zero_grad()
    >>> layer.backward(np.ones(2))
    array([2., 2.])
    >>> float(layer.factor.grad)
    4.0
    """

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def parameters(self):
        """The Parameters of this module and of the modules it holds, each once, in order.

        Attributes are visited in the order they were set; a Parameter held twice (a shared
        weight) is listed once.

        Returns
        -------
        list of Parameter
            The objects themselves (not copies): updating their ``data`` updates the module.

        See Also
        --------
        zero_grad : resets the gradients of these parameters.
        torch.nn.Module.parameters : the torch counterpart (an iterator).

        Examples
        --------
        >>> from fastcorr import nn
        >>> model = nn.Sequential(nn.Conv2d(2, 4, 3, rng=0), nn.Conv2d(4, 1, 3, bias=False, rng=1))
        >>> [p.shape for p in model.parameters()]
        [(4, 2, 3, 3), (4,), (1, 4, 3, 3)]
        """
        found = []
        for value in vars(self).values():
            for item in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(item, Parameter):
                    candidates = [item]
                elif isinstance(item, Module):
                    candidates = item.parameters()
                else:
                    candidates = []
                found.extend(p for p in candidates if all(p is not q for q in found))
        return found

    def zero_grad(self):
        """Reset every parameter's gradient to zeros.

        Each ``grad`` becomes a new zero array of its parameter's shape and dtype (not None,
        unlike torch's default ``set_to_none=True``), so ``backward`` can add to it.

        Returns
        -------
        None

        See Also
        --------
        parameters : the parameters whose gradients are reset.
        torch.nn.Module.zero_grad : the torch counterpart.

        Examples
        --------
        >>> from fastcorr import nn
        >>> layer = nn.Conv2d(1, 1, 2, rng=0)
        >>> layer.weight.grad is None
        True
        >>> layer.zero_grad()
        >>> layer.weight.grad
        array([[[[0., 0.],
                 [0., 0.]]]], dtype=float32)
        """
        for p in self.parameters():
            p.grad = np.zeros_like(p.data)


class Conv2d(Module):
    """A 2-D correlation layer, as :class:`torch.nn.Conv2d`.

    Parameters
    ----------
    in_channels, out_channels : int
        Positive channel counts ``C_in`` and ``C_out``, both multiples of ``groups``.
    kernel_size : int or (int, int)
        Positive ``(kH, kW)``; an int is used for both.
    stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`. Only ``groups`` is checked here; the others are
        checked by the first :meth:`forward`.
    bias : bool, optional
        Whether the layer adds a learned bias per output channel (default True).
    rng : numpy.random.Generator or int, optional
        Source of the initial weights (an int seeds a new Generator): the same seed, the same
        layer. None: fresh entropy.
    dtype : float32 or float64, optional
        The parameters' dtype (default float32).
    backend : {None, "auto", "cpu", "cuda", "reference"}, optional
        Where :meth:`forward` and :meth:`backward` compute, as in :func:`fastcorr.conv2d`.

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels / groups, kH, kW)
    bias : Parameter, shape (out_channels,), or None
        Initialised as torch does: uniform in ``+-1 / sqrt(fan_in)`` (Kaiming uniform with
        ``a = sqrt(5)``), ``fan_in = in_channels / groups * kH * kW``.
    options : dict
        ``stride``, ``padding``, ``dilation``, ``groups`` and ``padding_mode``, passed to
        :func:`fastcorr.conv2d`.
    backend : str or None

    Raises
    ------
    TypeError
        If ``in_channels``, ``out_channels``, ``groups`` or an entry of ``kernel_size`` is not
        an int, or ``dtype`` is neither float32 nor float64.
    ValueError
        If one of them is not positive, ``kernel_size`` is not an int or a pair, or
        ``groups`` does not divide both channel counts.

    See Also
    --------
    fastcorr.conv2d : the function :meth:`forward` calls.
    fastcorr.conv2d_backward : the gradients :meth:`backward` computes.
    torch.nn.Conv2d : the torch layer, with the same arguments and initialisation.

    Notes
    -----
    Input is ``(N, C_in, H, W)``, unbatched ``(C_in, H, W)``, or, with one input channel, a
    2-D image ``(H, W)``; the output has the same form (for an image: ``(H', W')`` with one
    output channel, ``(C_out, H', W')`` with several, so no channel is dropped).

    Examples
    --------
    The book's edge detector as a layer:

    >>> import numpy as np
    >>> from fastcorr import nn
    >>> layer = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False, rng=0)
    >>> layer
    Conv2d(1, 1, kernel_size=(1, 2), stride=1, padding=0, dilation=1, groups=1, padding_mode='zeros', bias=False)
    >>> layer.weight.data[...] = [[[[1.0, -1.0]]]]
    >>> X = np.ones((3, 4), dtype=np.float32)
    >>> X[:, 1:3] = 0
    >>> layer(X)
    array([[ 1.,  0., -1.],
           [ 1.,  0., -1.],
           [ 1.,  0., -1.]], dtype=float32)
    >>> nn.Conv2d(3, 8, 3, padding=1, rng=0)(np.zeros((2, 3, 5, 5), np.float32)).shape
    (2, 8, 5, 5)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", *, rng=None, dtype=np.float32,
                 backend=None):
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("groups", groups)):
            v.int_pair(value, name, 1)  # a positive int (a pair is rejected below)
            if isinstance(value, (tuple, list)):
                raise TypeError(f"{name}: expected an int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups: {groups} must divide in_channels ({in_channels}) and "
                             f"out_channels ({out_channels})")
        kh, kw = v.int_pair(kernel_size, "kernel_size", 1)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        self.options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                            padding_mode=padding_mode)
        self.backend = backend
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        bound = 1.0 / math.sqrt(in_channels // groups * kh * kw)
        shape = (out_channels, in_channels // groups, kh, kw)
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        self.bias = (Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype))
                     if bias else None)
        self._input = None

    def forward(self, x):
        """Correlate ``x`` with the weight and add the bias; remembers ``x`` for backward.

        Parameters
        ----------
        x : array_like, shape (N, C_in, H, W), (C_in, H, W) or (H, W)
            A batch, one unbatched sample, or (with ``in_channels=1``) a 2-D image.

        Returns
        -------
        ndarray, shape (N, C_out, H_out, W_out), (C_out, H_out, W_out) or (H_out, W_out)
            The form of ``x``: an image gives ``(H_out, W_out)`` with one output channel and
            ``(C_out, H_out, W_out)`` with several. Its dtype is the promotion of ``x``'s and
            the parameters' (as :func:`fastcorr.conv2d`).

        Raises
        ------
        ValueError
            If ``x`` is a 2-D image and ``in_channels`` is not 1, or as :func:`fastcorr.conv2d`
            raises it (a wrong shape or channel count, bad stride, padding, dilation or
            padding_mode, a kernel larger than the padded input).
        TypeError
            If ``x`` is not a real numeric array, or as :func:`fastcorr.conv2d` raises it.
        fastcorr.BackendUnavailableError
            If ``backend="cuda"`` cannot run here.

        See Also
        --------
        backward : the gradients of this call.
        fastcorr.conv2d : the computation.
        torch.nn.Conv2d.forward : the torch counterpart.

        Examples
        --------
        >>> import numpy as np
        >>> from fastcorr import nn
        >>> layer = nn.Conv2d(2, 3, kernel_size=3, rng=0)
        >>> layer.forward(np.zeros((4, 2, 6, 5), np.float32)).shape
        (4, 3, 4, 3)
        >>> layer.forward(np.zeros((2, 6, 5), np.float32)).shape
        (3, 4, 3)
        >>> y = nn.Conv2d(1, 2, kernel_size=3, rng=0).forward(np.zeros((6, 5), np.float32))
        >>> y.shape  # an image, two output channels
        (2, 4, 3)
        """
        x = np.asarray(x)
        image = x.ndim == 2
        if image and self.in_channels != 1:
            raise ValueError(f"x: a 2-D image {x.shape} is one channel, but this layer expects "
                             f"in_channels={self.in_channels}; pass (C_in, H, W) or NCHW")
        x3 = x[None] if image else x  # an image is one channel, unbatched
        bias = None if self.bias is None else self.bias.data
        y = conv2d(x3, self.weight.data, bias, backend=self.backend, **self.options)
        squeeze = image and self.out_channels == 1
        self._input = (x3, image, squeeze)
        return y[0] if squeeze else y

    def backward(self, grad_output):
        """Add the parameters' gradients and return the gradient with respect to the input.

        The gradients are those of the last :meth:`forward` call; each is added to its
        parameter's ``grad`` (set if it is None), in the parameter's dtype.

        Parameters
        ----------
        grad_output : array_like, the shape :meth:`forward` returned
            The gradient of the loss with respect to the layer's output.

        Returns
        -------
        ndarray, the shape of the last input ``x``
            The gradient of the loss with respect to ``x``.

        Raises
        ------
        RuntimeError
            If :meth:`forward` has not been called.
        ValueError
            If ``grad_output`` does not have the shape of the last output (as
            :func:`fastcorr.conv2d_backward` raises it).
        TypeError
            If ``grad_output`` is not a real numeric array.

        See Also
        --------
        forward : the call whose gradients these are.
        fastcorr.conv2d_backward : the computation.
        torch.Tensor.backward : torch's autograd, which computes these gradients.

        Examples
        --------
        >>> import numpy as np
        >>> from fastcorr import nn
        >>> layer = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False, rng=0)
        >>> layer.weight.data[...] = [[[[1.0, -1.0]]]]
        >>> X = np.ones((3, 4), dtype=np.float32)
        >>> X[:, 1:3] = 0
        >>> Y = layer(X)
        >>> layer.backward(np.ones_like(Y))
        array([[ 1.,  0.,  0., -1.],
               [ 1.,  0.,  0., -1.],
               [ 1.,  0.,  0., -1.]], dtype=float32)
        >>> layer.weight.grad
        array([[[[3., 3.]]]], dtype=float32)
        """
        if self._input is None:
            raise RuntimeError("Conv2d.backward: call forward first")
        x3, image, squeeze = self._input
        grad_output = np.asarray(grad_output)
        g3 = grad_output[None] if squeeze else grad_output
        mask = (True, True, self.bias is not None)
        grad_x, grad_w, grad_b = conv2d_backward(g3, x3, self.weight.data, backend=self.backend,
                                                 output_mask=mask, **self.options)
        for param, grad in ((self.weight, grad_w), (self.bias, grad_b)):
            if param is not None:
                total = grad if param.grad is None else param.grad + grad
                param.grad = total.astype(param.data.dtype, copy=False)
        return grad_x[0] if image else grad_x

    @property
    def in_channels(self):
        """``C_in``, the number of input channels (an int)."""
        return self.weight.shape[1] * self.options["groups"]

    @property
    def out_channels(self):
        """``C_out``, the number of output channels (an int)."""
        return self.weight.shape[0]

    def __repr__(self):
        c_out, c_in_g, kh, kw = self.weight.shape
        opts = ", ".join(f"{k}={val!r}" for k, val in self.options.items())
        return (f"Conv2d({c_in_g * self.options['groups']}, {c_out}, kernel_size=({kh}, {kw}), "
                f"{opts}, bias={self.bias is not None})")


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse.

    Parameters
    ----------
    *layers : Module
        The layers, first to last: each one's output is the next one's input.

    Attributes
    ----------
    layers : list of Module

    See Also
    --------
    Module.parameters : lists the layers' parameters, in order.
    torch.nn.Sequential : the torch counterpart.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr import nn
    >>> model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, rng=0), nn.Conv2d(4, 1, 3, rng=1))
    >>> y = model(np.zeros((5, 2, 8, 8), np.float32))
    >>> y.shape
    (5, 1, 6, 6)
    >>> model.zero_grad()
    >>> model.backward(np.ones_like(y)).shape
    (5, 2, 8, 8)
    """

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        """Apply the layers in order.

        Parameters
        ----------
        x : array_like
            The first layer's input (for :class:`Conv2d`: ``(N, C_in, H, W)``,
            ``(C_in, H, W)`` or ``(H, W)``).

        Returns
        -------
        ndarray
            The last layer's output (``x`` itself when there are no layers).

        Raises
        ------
        ValueError, TypeError
            As the layers raise them.

        See Also
        --------
        backward : the gradients of this call.
        torch.nn.Sequential.forward : the torch counterpart.

        Examples
        --------
        >>> import numpy as np
        >>> from fastcorr import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.Conv2d(2, 1, 2, rng=1))
        >>> model.forward(np.zeros((1, 1, 6, 6), np.float32)).shape
        (1, 1, 3, 3)
        """
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_output):
        """Run the layers' ``backward`` from the last to the first.

        Parameters
        ----------
        grad_output : array_like, the shape :meth:`forward` returned
            The gradient of the loss with respect to the last layer's output.

        Returns
        -------
        ndarray, the shape of the last input ``x``
            The gradient with respect to the first layer's input. Each layer adds its
            parameters' gradients on the way.

        Raises
        ------
        RuntimeError
            If a :class:`Conv2d` among the layers has not run :meth:`forward`.
        ValueError, TypeError
            As the layers raise them (for instance a ``grad_output`` of the wrong shape).

        See Also
        --------
        forward : the call whose gradients these are.
        Conv2d.backward : one layer's step.

        Examples
        --------
        >>> import numpy as np
        >>> from fastcorr import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.Conv2d(2, 1, 2, rng=1))
        >>> y = model(np.zeros((1, 1, 6, 6), np.float32))
        >>> model.backward(np.ones_like(y)).shape
        (1, 1, 6, 6)
        >>> [p.grad.shape for p in model.parameters()]
        [(2, 1, 3, 3), (2,), (1, 2, 2, 2), (1,)]
        """
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output
