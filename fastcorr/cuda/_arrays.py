"""Where data lives on the GPU path: reading operands without copying, streams, results.

- A device operand (anything with ``__cuda_array_interface__``: CuPy arrays, torch CUDA
  tensors, Numba device arrays; or a simulator array) is wrapped in a :class:`DeviceView`
  without a copy. The view records the leading singleton axes and the reversal that the
  public functions apply (``a[None, None]``, ``a[::-1, ::-1]``, ``a[0]``), so nothing moves
  until a kernel needs the data; then one device-side copy happens only if the data is not
  already C-contiguous in the computation's dtype (or is reversed).
- A host operand (NumPy, lists) is read as the CPU path reads it and uploaded once.
- Results are Numba device arrays wrapped in a :class:`DeviceView`; :meth:`DeviceView.export`
  returns them as the caller's library (CuPy in: CuPy out; torch in: torch out, both zero
  copy), or as NumPy, copied back once, when every operand was on the host.
"""

import numpy as np
from numba import cuda

from .. import _validate as v
from ._copy import copy_kernel, zero_kernel

#: Threads per block of the element-wise kernels (copies, folds, sums).
ELEMENTWISE_THREADS = 256


def is_device_array(a):
    """True for objects whose data lives on a CUDA device (without touching the data)."""
    return bool(getattr(a, "__cuda_ndarray__", False)) or hasattr(a, "__cuda_array_interface__")


def as_numba(a):
    """A Numba device array viewing ``a``'s memory (no copy)."""
    if getattr(a, "__cuda_ndarray__", False):
        return a
    return cuda.as_cuda_array(a)


def as_stream(stream):
    """A Numba stream for ``stream``: None or 0 (the default stream), a Numba stream, a CuPy
    stream (``.ptr``), a torch stream (``.cuda_stream``) or a raw ``CUstream`` handle (int)."""
    if stream is None:
        return cuda.default_stream()
    if isinstance(stream, type(cuda.default_stream())):
        return stream
    if isinstance(stream, (bool, np.bool_)):
        raise TypeError(f"stream: expected a CUDA stream, got {stream!r}")
    for attr in ("cuda_stream", "ptr"):  # torch, CuPy
        if hasattr(stream, attr):
            stream = getattr(stream, attr)
            break
    if isinstance(stream, (int, np.integer)):
        return cuda.default_stream() if int(stream) == 0 else cuda.external_stream(int(stream))
    raise TypeError(
        "stream: expected None, a Numba, CuPy or torch CUDA stream, or a stream handle (int); "
        f"got {type(stream).__name__}"
    )


def launch_1d(kernel, size, stream, *args):
    """Launch an element-wise ``kernel`` over ``size`` threads on ``stream``."""
    if size:
        blocks = (size + ELEMENTWISE_THREADS - 1) // ELEMENTWISE_THREADS
        kernel[blocks, ELEMENTWISE_THREADS, stream](*args)


def _library(obj):
    root = type(obj).__module__.split(".")[0]
    return root if root in ("cupy", "torch") else "numba"


class DeviceView:
    """A device array with leading singleton axes added or removed and maybe reversed in its
    last two axes; no data moves until :meth:`materialize` or :meth:`export`.

    Parameters
    ----------
    base : numba device array
    stream : numba stream
        Where copies and kernels of this call run.
    like : object or None
        The caller's object the result should resemble (its library); None: a host result.
    """

    def __init__(self, base, stream, like, shape=None, flipped=False):
        self.base = base
        self.stream = stream
        self.like = like
        self.shape = tuple(base.shape) if shape is None else tuple(shape)
        self.flipped = flipped

    @property
    def dtype(self):
        return np.dtype(self.base.dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def _with(self, shape=None, flipped=None):
        return DeviceView(self.base, self.stream, self.like,
                          self.shape if shape is None else shape,
                          self.flipped if flipped is None else flipped)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if key and all(k is None for k in key):
            return self._with(shape=(1,) * len(key) + self.shape)
        if (key and all(isinstance(k, int) and not isinstance(k, bool) and k == 0 for k in key)
                and self.shape[:len(key)] == (1,) * len(key)):
            return self._with(shape=self.shape[len(key):])
        if key == (slice(None, None, -1),) * 2 and self.ndim == 2:
            return self._with(flipped=not self.flipped)
        raise TypeError(f"device arrays support only a[None], a[0] and a[::-1, ::-1] here, got {key!r}")

    def reshape(self, shape):
        shape = tuple(shape)
        if int(np.prod(shape, dtype=np.int64)) != self.size:
            raise ValueError(f"cannot reshape {self.shape} to {shape}")
        if self.flipped and shape[-2:] != self.shape[-2:]:
            raise ValueError("a reversed device view keeps its last two axes")
        return self._with(shape=shape)

    def materialize(self, dtype):
        """A C-contiguous Numba device array of this view's shape in ``dtype``: the base itself
        when it already is one (no copy), else one device-side copy."""
        base = self.base
        if (not self.flipped and np.dtype(base.dtype) == dtype and base.is_c_contiguous()):
            return base if tuple(base.shape) == self.shape else base.reshape(self.shape)
        stream = self.stream if self.stream is not None else cuda.default_stream()
        dst = cuda.device_array(base.shape, dtype=dtype, stream=stream)
        launch_1d(copy_kernel(base.ndim), dst.size, stream, base, dst, self.flipped)
        return dst.reshape(self.shape) if tuple(dst.shape) != self.shape else dst

    def export(self):
        """The result as the caller expects it: CuPy, torch, a Numba device array, or NumPy
        (one copy to the host) when every operand of the call was on the host."""
        arr = self.materialize(self.dtype)
        if self.like is None:
            host = arr.copy_to_host(stream=self.stream)
            self.stream.synchronize()
            return host
        library = _library(self.like)
        if library == "cupy":
            import cupy

            return cupy.asarray(arr)
        if library == "torch":
            import torch

            return torch.as_tensor(arr, device=self.like.device)
        return arr

    # functional.py asks results for this (it never imports CUDA itself)
    _fastcorr_export = export


def read(a, name):
    """Read one operand of a GPU call: a :class:`DeviceView` of a device array (no copy), or a
    NumPy array for host data. Raises TypeError naming ``name`` for non-real dtypes."""
    if not is_device_array(a):
        return v.as_real_array(a, name)
    arr = as_numba(a)
    v.check_real_dtype(np.dtype(arr.dtype), name)
    return DeviceView(arr, None, a)


class Call:
    """The operands of one GPU call: its stream, the library of its result, uploads (the
    backend contract of :mod:`fastcorr._host`)."""

    def __init__(self, stream, operands):
        self.stream = as_stream(stream)
        self.like = next((op.like for op in operands if isinstance(op, DeviceView)), None)
        #: the implementations' last argument
        self.kernel_args = (self.stream,)
        self._host_out = None

    def prepare(self, a, dtype):
        """``a`` as a C-contiguous device array of ``dtype``: device data copied only when its
        layout or dtype requires it, host data copied once."""
        if a is None:
            return None
        if isinstance(a, DeviceView):
            return DeviceView(a.base, self.stream, a.like, a.shape, a.flipped).materialize(dtype)
        return cuda.to_device(np.ascontiguousarray(a, dtype=dtype), stream=self.stream)

    def output(self, out, shape, dtype):
        """The device array the result is computed into: the caller's device ``out=``, or a
        new one (copied into a host ``out=`` by :meth:`finish`)."""
        if out is not None and is_device_array(out):
            return as_numba(out).reshape(tuple(shape))
        if out is not None:
            self._host_out = out.reshape(tuple(shape))
        return self.new(shape, dtype)

    def new(self, shape, dtype, *, zero=False):
        arr = cuda.device_array(tuple(shape), dtype=dtype, stream=self.stream)
        if zero and arr.size:
            launch_1d(zero_kernel(), arr.size, self.stream, arr.reshape(arr.size))
        return arr

    def finish(self, arr):
        """A host ``out=`` receives the result (one copy); otherwise a :class:`DeviceView`,
        exported as the caller's library by :func:`fastcorr.functional.finish`."""
        if self._host_out is not None:
            arr.copy_to_host(self._host_out, stream=self.stream)
            self.stream.synchronize()
            return self._host_out
        return DeviceView(arr, self.stream, self.like)

    def operands(self, data, weight):
        return None


def _pointer_range(a):
    iface = a.__cuda_array_interface__
    start = iface["data"][0]
    return start, start + max(1, int(np.prod(iface["shape"], dtype=np.int64))) * np.dtype(
        iface["typestr"]).itemsize


def _shares_memory(a, b):
    """Whether two device arrays may overlap (conservatively, by address ranges)."""
    ha, hb = getattr(a, "_ary", None), getattr(b, "_ary", None)
    if ha is not None and hb is not None:  # the simulator: NumPy underneath
        return np.shares_memory(ha, hb)
    if hasattr(a, "__cuda_array_interface__") and hasattr(b, "__cuda_array_interface__"):
        (a0, a1), (b0, b1) = _pointer_range(a), _pointer_range(b)
        return a0 < b1 and b0 < a1
    return False


def check_out(out, shape, dtype, inputs=()):
    """Check ``out=`` on the GPU path: a device array (written in place) or a NumPy array
    (the result is copied into it), of ``shape`` and ``dtype``, C-contiguous, not overlapping
    an input. Returns ``out`` (the caller's object)."""
    if out is None:
        return None
    if not is_device_array(out):
        return v.check_out(out, shape, dtype, [a for a in inputs if isinstance(a, np.ndarray)])
    arr = as_numba(out)
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"out: expected shape {tuple(shape)}, got {tuple(arr.shape)}")
    if np.dtype(arr.dtype) != dtype:
        raise ValueError(f"out: expected dtype {dtype}, got {np.dtype(arr.dtype)}")
    if not arr.is_c_contiguous():
        raise ValueError("out: expected a C-contiguous device array")
    for a in inputs:
        if isinstance(a, DeviceView) and _shares_memory(arr, a.base):
            raise ValueError("out: must not share memory with an input")
    return out
