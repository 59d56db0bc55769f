"""Argument checking, dtype promotion and shape arithmetic, written once for every backend.

Every public function turns its arguments into a :class:`Plan` here. A plan describes one
generic operation that all backends implement::

    out[n, co, i, j] = bias[co] + sum_{ci, p, q} weight[co, ci, p, q]
                       * xpad[n, g * C_in_g + ci, i * sh + p * dh, j * sw + q * dw]

where ``xpad`` is the input seen through a virtual padding of ``pad_top`` rows and ``pad_left``
columns (the bottom and right padding follow from the output shape), and out-of-range samples
come from the boundary rule ``pad_mode``. Nothing below this module checks arguments again.
"""

from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass

import numpy as np

# Boundary rules shared by all backends (the values are what the compiled kernels receive).
ZEROS = 0  # constant fill value (torch "zeros", scipy "fill")
CIRCULAR = 1  # periodic (torch "circular", scipy "wrap")
SYMMETRIC = 2  # mirrored with the edge repeated (scipy "symm", numpy "symmetric")
REFLECT = 3  # mirrored about the edge sample (torch "reflect")
REPLICATE = 4  # the edge sample repeated (torch "replicate", numpy "edge")

PAD_MODE_NAMES = {
    ZEROS: "zeros",
    CIRCULAR: "circular",
    SYMMETRIC: "symmetric",
    REFLECT: "reflect",
    REPLICATE: "replicate",
}

SCIPY_MODES = ("full", "same", "valid")
SCIPY_BOUNDARIES = {"fill": ZEROS, "wrap": CIRCULAR, "symm": SYMMETRIC}
#: The other names scipy.signal.correlate2d accepts for its boundaries.
SCIPY_BOUNDARY_ALIASES = {"pad": "fill", "circular": "wrap", "symmetric": "symm"}
TORCH_PADDING_MODES = {
    "zeros": ZEROS,
    "reflect": REFLECT,
    "replicate": REPLICATE,
    "circular": CIRCULAR,
}
BACKENDS = ("cpu", "cuda", "reference")
METHODS = ("auto", "direct", "fft")


@dataclass(frozen=True)
class Plan:
    """Everything a backend needs to compute one correlation; shapes are NCHW.

    Attributes
    ----------
    input_shape : tuple of int
        ``(N, C_in, H, W)``.
    weight_shape : tuple of int
        ``(C_out, C_in // groups, kH, kW)``.
    out_shape : tuple of int
        ``(N, C_out, H_out, W_out)``.
    stride, dilation : tuple of int
        ``(sh, sw)`` and ``(dh, dw)``, all >= 1.
    pad_top, pad_left : int
        Virtual padding before the first row and column (the rest follows from ``out_shape``).
    pad_bottom, pad_right : int
        Padding after the last row and column, as requested (it may exceed what the last
        output needs, when the stride does not divide evenly).
    pad_mode : int
        One of ZEROS, CIRCULAR, SYMMETRIC, REFLECT, REPLICATE.
    fill : float
        The value of out-of-range samples when ``pad_mode`` is ZEROS.
    groups : int
        Channel groups; ``C_in`` and ``C_out`` are both multiples of it.
    dtype : numpy.dtype
        float32 or float64: the dtype of the result and of the computation.
    """

    input_shape: tuple
    weight_shape: tuple
    out_shape: tuple
    stride: tuple
    dilation: tuple
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int
    pad_mode: int
    fill: float
    groups: int
    dtype: np.dtype


# --------------------------------------------------------------------------- arrays and dtypes


#: torch dtypes fastcorr reads (float32 and float64 computed as they are, the others in
#: float32 or float64 as NumPy's would be); bfloat16 and complex tensors are a TypeError.
TORCH_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                "uint16", "uint32", "uint64", "bool")


def check_torch_tensor(t, name):
    """Raise TypeError naming ``name`` for a torch tensor fastcorr cannot read: one that
    requires grad (reading it raises RuntimeError in torch) or of a dtype NumPy has no numbers
    for (bfloat16: torch refuses ``numpy()``, and its CUDA interface gives raw two-byte
    records)."""
    if getattr(t, "requires_grad", False):
        raise TypeError(f"{name}: the torch tensor requires grad; fastcorr records no autograd "
                        f"graph, so pass {name}.detach()")
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in TORCH_DTYPES:
        raise TypeError(f"{name}: torch dtype {dtype} is not supported; expected float32 or "
                        "float64 (integer, bool and float16 tensors are converted)")


def as_real_array(a, name):
    """Return ``a`` as a NumPy array of a real numeric dtype, or raise TypeError naming it."""
    if type(a).__module__.split(".")[0] == "torch" and hasattr(a, "requires_grad"):
        check_torch_tensor(a, name)
    try:
        on_device = hasattr(a, "__cuda_array_interface__")
    except Exception:  # an interface that raises: still a CUDA array
        on_device = True
    if on_device:
        raise TypeError(f"{name}: a CUDA array reached the CPU path; pass backend='cuda'")
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name}: could not be read as a numeric array ({exc})") from None
    check_real_dtype(arr.dtype, name)
    return arr


def check_real_dtype(dtype, name):
    """Raise TypeError naming ``name`` unless ``dtype`` is a real numeric dtype we compute in."""
    kind = dtype.kind
    if kind == "c":
        raise TypeError(f"{name}: complex input ({dtype}) is not supported; expected real numbers")
    if kind not in "biuf":
        raise TypeError(
            f"{name}: expected a real numeric array, got dtype {dtype} (kind {kind!r})"
        )
    if kind == "f" and dtype.itemsize > 8:
        raise TypeError(f"{name}: dtype {dtype} is not supported; expected float32 or float64")


def result_dtype(*dtypes):
    """The dtype of a result: NumPy's promotion, with integers and bool computed in float64.

    float16 is computed and returned as float32 (no compiled kernel works in half precision).
    """
    promoted = np.result_type(*dtypes)
    if promoted.kind in "biu":
        return np.dtype(np.float64)
    if promoted == np.float16:
        return np.dtype(np.float32)
    return promoted


def check_ndim(shape, name, ndims, expected):
    """Raise ValueError unless ``len(shape)`` is one of ``ndims``; ``expected`` describes it."""
    if len(shape) not in ndims:
        raise ValueError(f"{name}: expected {expected}, got shape {tuple(shape)}")


def shape_tuple(value, name):
    """Read a shape given as a sequence of non-negative ints (the gradient functions take one)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of ints, got {value!r}")
    try:
        shape = tuple(_int(d, name) for d in value)
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of ints, got {value!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"{name}: expected non-negative sizes, got {shape}")
    if int(np.prod([max(d, 1) for d in shape], dtype=object)) > MAX_ELEMENTS:
        raise ValueError(f"{name}: {shape} has more than {MAX_ELEMENTS} elements")
    return shape


def check_out(out, shape, dtype, inputs=()):
    """Check a caller's ``out=`` array: shape, dtype, layout, and no overlap with the inputs."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out: expected shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"out: expected dtype {dtype}, got {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out: expected a writeable C-contiguous array")
    for arr in inputs:
        if np.shares_memory(out, arr):
            raise ValueError("out: must not share memory with an input")
    return out


def check_backend(backend):
    """Normalise ``backend``: None and "auto" mean "follow the data"; returns a name or None."""
    if backend is None or backend == "auto":
        return None
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(
            f"backend: expected one of None, 'auto', {', '.join(map(repr, BACKENDS))}; got {backend!r}"
        )
    return backend


def check_method(method):
    """``method`` of the public functions: "auto", "direct" or "fft", else ValueError."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(map(repr, METHODS))}; got {method!r}")
    return method


# --------------------------------------------------------------------------- small arguments


def _int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {value!r}")
    return operator.index(value)


#: The largest stride, padding, dilation or group count accepted: every index a kernel
#: computes from them (``i * stride + p * dilation - padding``, at most a few times this plus
#: the input's extent) then fits in 64 bits with room to spare.
MAX_ARGUMENT = 2**31 - 1

#: The most elements a result may have (far beyond any machine's memory; a larger one means
#: an argument is wrong, not that memory ran out).
MAX_ELEMENTS = 2**47


def int_pair(value, name, minimum, maximum=MAX_ARGUMENT):
    """Parse an int or a pair of ints, each from ``minimum`` to ``maximum``; returns a tuple
    of two ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
        pair = (_int(value[0], name), _int(value[1], name))
    else:
        v = _int(value, name)
        pair = (v, v)
    if min(pair) < minimum:
        what = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name}: expected {what} values, got {value!r}")
    if max(pair) > maximum:
        raise ValueError(f"{name}: expected values of at most {maximum}, got {value!r}")
    return pair


def _choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def _fill_value(fillvalue):
    try:
        arr = np.asarray(fillvalue)
    except Exception:
        raise ValueError(f"fillvalue: expected a real scalar, got {fillvalue!r}") from None
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise ValueError(f"fillvalue: expected a real scalar, got {fillvalue!r}")
    try:
        return float(arr.reshape(()))
    except OverflowError:
        raise ValueError(f"fillvalue: {fillvalue!r} is beyond float64's range") from None


def _positive_extent(shape, name, what):
    if min(shape) <= 0:
        raise ValueError(f"{name}: expected non-empty {what}, got shape {tuple(shape)}")


# --------------------------------------------------------------------------- plans


def plan_correlate2d(image_shape, kernel_shape, mode, boundary, fillvalue, dtype, *, convolve):
    """Plan scipy.signal.correlate2d (or convolve2d with a flipped kernel) on 2-D arrays.

    Returns ``(plan, swapped)``: in "valid" mode SciPy swaps the arguments when the kernel is
    the larger one; ``swapped`` tells the caller to do the same.
    """
    mode = _choice(mode, "mode", SCIPY_MODES)
    boundary = _choice(boundary, "boundary",
                       tuple(SCIPY_BOUNDARIES) + tuple(SCIPY_BOUNDARY_ALIASES))
    boundary = SCIPY_BOUNDARY_ALIASES.get(boundary, boundary)
    fill = _fill_value(fillvalue)
    _positive_extent(image_shape, "in1", "2-D array")
    _positive_extent(kernel_shape, "in2", "2-D array")
    swapped = False
    if mode == "valid":
        if all(i >= k for i, k in zip(image_shape, kernel_shape)):
            pass
        elif all(k >= i for i, k in zip(image_shape, kernel_shape)):
            swapped = True
            image_shape, kernel_shape = kernel_shape, image_shape
        else:
            raise ValueError(
                "in1, in2: for mode 'valid' one must be at least as large as the other in every "
                f"dimension; got shapes {tuple(image_shape)} and {tuple(kernel_shape)}"
            )
    (h, w), (kh, kw) = image_shape, kernel_shape
    if mode == "full":
        pads, out_hw = (kh - 1, kw - 1), (h + kh - 1, w + kw - 1)
    elif mode == "valid":
        pads, out_hw = (0, 0), (h - kh + 1, w - kw + 1)
    else:  # "same": centred on the full result as SciPy centres it
        # correlation keeps full[k // 2 :], convolution full[(k - 1) // 2 :] of its own full
        # result, which is the correlation with the flipped kernel.
        pads = (kh // 2, kw // 2) if convolve else (kh - 1 - kh // 2, kw - 1 - kw // 2)
        out_hw = (h, w)
    plan = Plan(
        input_shape=(1, 1, h, w),
        weight_shape=(1, 1, kh, kw),
        out_shape=(1, 1) + out_hw,
        stride=(1, 1),
        dilation=(1, 1),
        pad_top=pads[0],
        pad_left=pads[1],
        pad_bottom=out_hw[0] + kh - 1 - h - pads[0],
        pad_right=out_hw[1] + kw - 1 - w - pads[1],
        pad_mode=SCIPY_BOUNDARIES[boundary],
        fill=fill,
        groups=1,
        dtype=np.dtype(dtype),
    )
    return plan, swapped


def _same_padding(kernel, dilation):
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2  # torch puts the odd sample at the end


def plan_conv2d(input_shape, weight_shape, bias_shape, stride, padding, dilation, groups,
                padding_mode, dtype):
    """Plan torch.nn.functional.conv2d (with nn.Conv2d's padding_mode) on an NCHW input."""
    n, c_in, h, w = input_shape
    c_out, c_in_g, kh, kw = weight_shape
    groups = _int(groups, "groups")
    if not 1 <= groups <= MAX_ARGUMENT:
        raise ValueError(f"groups: expected a positive int of at most {MAX_ARGUMENT}, got {groups}")
    stride = int_pair(stride, "stride", 1)
    dilation = int_pair(dilation, "dilation", 1)
    pad_mode = TORCH_PADDING_MODES[_choice(padding_mode, "padding_mode", tuple(TORCH_PADDING_MODES))]

    if min(weight_shape) <= 0:
        raise ValueError(
            f"weight: expected non-empty (C_out, C_in/groups, kH, kW), got shape {tuple(weight_shape)}"
        )
    if min(c_in, h, w) <= 0:
        raise ValueError(f"input: expected non-empty (C_in, H, W), got shape {tuple(input_shape)}")
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"groups: {groups} must divide both input channels ({c_in}) and output channels "
            f"({c_out})"
        )
    if c_in_g * groups != c_in:
        raise ValueError(
            f"weight: shape {tuple(weight_shape)} with groups={groups} expects "
            f"{c_in_g * groups} input channels, but input has {c_in} (shape {tuple(input_shape)})"
        )
    if bias_shape is not None and tuple(bias_shape) != (c_out,):
        raise ValueError(f"bias: expected shape ({c_out},), got {tuple(bias_shape)}")

    if isinstance(padding, str):
        padding = _choice(padding, "padding", ("valid", "same"))
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        else:
            if stride != (1, 1):
                raise ValueError(f"padding: 'same' needs stride 1, got stride {stride}")
            pads = (_same_padding(kh, dilation[0]), _same_padding(kw, dilation[1]))
    else:
        ph, pw = int_pair(padding, "padding", 0)
        pads = ((ph, ph), (pw, pw))

    if pad_mode == REFLECT and (max(pads[0]) >= h or max(pads[1]) >= w):
        raise ValueError(
            f"padding: reflect padding {pads} must be smaller than the input's height and width "
            f"({h}, {w})"
        )
    if pad_mode == CIRCULAR and (max(pads[0]) > h or max(pads[1]) > w):
        raise ValueError(
            f"padding: circular padding {pads} must not exceed the input's height and width "
            f"({h}, {w})"
        )

    padded = (h + sum(pads[0]), w + sum(pads[1]))
    extent = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if extent[0] > padded[0] or extent[1] > padded[1]:
        raise ValueError(
            f"weight: kernel extent {extent} (kernel {(kh, kw)}, dilation {dilation}) is larger "
            f"than the padded input {padded}"
        )
    out_hw = tuple((padded[a] - extent[a]) // stride[a] + 1 for a in range(2))
    if n * c_out * out_hw[0] * out_hw[1] > MAX_ELEMENTS:
        raise ValueError(f"padding: the result ({n}, {c_out}) + {out_hw} would have more than "
                         f"{MAX_ELEMENTS} elements (padding {pads}, stride {stride})")
    return Plan(
        input_shape=tuple(input_shape),
        weight_shape=tuple(weight_shape),
        out_shape=(n, c_out) + out_hw,
        stride=stride,
        dilation=dilation,
        pad_top=pads[0][0],
        pad_left=pads[1][0],
        pad_bottom=pads[0][1],
        pad_right=pads[1][1],
        pad_mode=pad_mode,
        fill=0.0,
        groups=groups,
        dtype=np.dtype(dtype),
    )
