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


class Parameter:
    """A trainable array and its gradient.

    Attributes
    ----------
    data : ndarray
        The value, updated in place by optimisers.
    grad : ndarray or None
        The gradient accumulated by ``backward`` since the last ``zero_grad``.
    """

    def __init__(self, data):
        self.data = np.asarray(data)
        self.grad = None

    @property
    def shape(self):
        return self.data.shape

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of layers: subclasses define ``forward(x)`` and ``backward(grad_output)``.

    ``__call__`` runs ``forward``; parameters are found among the attributes.
    """

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def parameters(self):
        """The Parameters of this module and of the modules it holds, each once, in order."""
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
        """Reset every parameter's gradient to zeros."""
        for p in self.parameters():
            p.grad = np.zeros_like(p.data)


class Conv2d(Module):
    """A 2-D correlation layer, as :class:`torch.nn.Conv2d`.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, padding, dilation, groups, padding_mode
        As in :func:`fastcorr.conv2d`.
    bias : bool
        Whether the layer adds a learned bias per output channel.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights (an int seeds a new Generator): the same seed, the same
        layer.
    dtype : float32 or float64
    backend : {None, "cpu", "reference", "cuda"}

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels / groups, kH, kW)
    bias : Parameter, shape (out_channels,), or None
        Initialised as torch does: uniform in ``+-1 / sqrt(fan_in)`` (Kaiming uniform with
        ``a = sqrt(5)``), ``fan_in = in_channels / groups * kH * kW``.

    Input is ``(N, C_in, H, W)``, unbatched ``(C_in, H, W)``, or, with one input channel, a
    2-D image ``(H, W)``; the output has the same form (for an image: ``(H', W')`` with one
    output channel, ``(C_out, H', W')`` with several, so no channel is dropped).
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
        """Correlate ``x`` with the weight and add the bias; remembers ``x`` for backward."""
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
        """Add the parameters' gradients and return the gradient with respect to the input."""
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
        return self.weight.shape[1] * self.options["groups"]

    @property
    def out_channels(self):
        return self.weight.shape[0]

    def __repr__(self):
        c_out, c_in_g, kh, kw = self.weight.shape
        opts = ", ".join(f"{k}={val!r}" for k, val in self.options.items())
        return (f"Conv2d({c_in_g * self.options['groups']}, {c_out}, kernel_size=({kh}, {kw}), "
                f"{opts}, bias={self.bias is not None})")


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse."""

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_output):
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output
