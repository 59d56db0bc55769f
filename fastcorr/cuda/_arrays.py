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
- A call runs on its operands' device and, unless ``stream=`` says otherwise, on the current
  stream of the caller's library (:mod:`fastcorr.cuda._caller`): :class:`Call` is a context
  manager that makes that device current for the call.
"""

import numpy as np
from numba import cuda

from .. import _validate as v
from ..dispatch import on_device
from . import _caller
from ._copy import copy_kernel, zero_kernel
from ._workspace import scratch

#: Threads per block of the element-wise kernels (copies, folds, sums).
ELEMENTWISE_THREADS = 256


def as_numba(a):
    """A Numba device array viewing ``a``'s memory (no copy, no host synchronisation: the
    producer's stream is waited for on the device, see :func:`_caller.enter`)."""
    if getattr(a, "__cuda_ndarray__", False):
        return a
    return cuda.as_cuda_array(a, sync=False)


def as_stream(stream):
    """A Numba stream for ``stream=``: None or 0 (the default stream), a Numba stream, a CuPy
    stream (``.ptr``), a torch stream (``.cuda_stream``) or a raw ``CUstream`` handle (int).
    The default stream is given as the legacy (or per-thread) one, whose handle a version-3
    ``__cuda_array_interface__`` can name."""
    if stream is None:
        return _caller.default_stream()
    if isinstance(stream, type(cuda.default_stream())):
        return stream if _caller.handle(stream) else _caller.default_stream()
    if isinstance(stream, (bool, np.bool_)):
        raise TypeError(f"stream: expected a CUDA stream, got {stream!r}")
    for attr in ("cuda_stream", "ptr"):  # torch, CuPy
        if hasattr(stream, attr):
            stream = getattr(stream, attr)
            break
    if isinstance(stream, (int, np.integer)):
        return _caller.from_handle(stream)
    raise TypeError(
        "stream: expected None, a Numba, CuPy or torch CUDA stream, or a stream handle (int); "
        f"got {type(stream).__name__}"
    )


def launch_1d(kernel, size, stream, *args):
    """Launch an element-wise ``kernel`` over ``size`` threads on ``stream``."""
    if size:
        blocks = (size + ELEMENTWISE_THREADS - 1) // ELEMENTWISE_THREADS
        kernel[blocks, ELEMENTWISE_THREADS, stream](*args)


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
    device : int or None
        The device holding ``base`` (None: not known, e.g. an empty array).
    producer : int or None
        The stream handle a version-3 ``__cuda_array_interface__`` of the operand named.
    name : str
        The argument's name, for errors.
    owner : object or None
        A result's memory as the caller's library's array (``base`` views it), if that
        library allocated it.
    """

    def __init__(self, base, stream, like, shape=None, flipped=False, *, device=None,
                 producer=None, name="result", owner=None):
        self.base = base
        self.stream = stream
        self.like = like
        self.shape = tuple(base.shape) if shape is None else tuple(shape)
        self.flipped = flipped
        self.device, self.producer, self.name = device, producer, name
        self.owner = owner

    @property
    def dtype(self):
        return np.dtype(self.base.dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def _with(self, shape=None, flipped=None, stream=None):
        return DeviceView(self.base, self.stream if stream is None else stream, self.like,
                          self.shape if shape is None else shape,
                          self.flipped if flipped is None else flipped, device=self.device,
                          producer=self.producer, name=self.name, owner=self.owner)

    def on(self, stream):
        """This view with its copies queued on ``stream``."""
        return self._with(stream=stream)

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

    def materialize(self, dtype, into=None, scratch_slot=None):
        """A C-contiguous Numba device array of this view's shape in ``dtype``: the base itself
        when it already is one (no copy), else one device-side copy: into ``into`` (a device
        array of the base's shape) if given, else into the workspace's ``scratch_slot`` if
        given (for an operand the call consumes), else into a new array."""
        base = self.base
        if (into is None and not self.flipped and np.dtype(base.dtype) == dtype
                and base.is_c_contiguous()):
            if tuple(base.shape) == self.shape:
                return base
            # a reshaped Numba array forgets its stream, which its interface should name
            reshaped = base.reshape(self.shape)
            return reshaped if self.stream is None else reshaped.bind(self.stream)
        stream = self.stream if self.stream is not None else _caller.default_stream()
        if into is not None:
            dst = into
        elif scratch_slot is not None:
            dst = scratch(scratch_slot, base.shape, dtype, stream)
        else:
            dst = cuda.device_array(base.shape, dtype=dtype, stream=stream)
        launch_1d(copy_kernel(base.ndim), dst.size, stream, base, dst, self.flipped)
        if tuple(dst.shape) == self.shape:
            return dst
        return dst.reshape(self.shape).bind(stream)

    def export(self):
        """The result as the caller expects it: its library's array for torch and CuPy
        callers (memory that library allocated; :class:`Call` made the library's current
        stream wait for the call's), a Numba device array (bound to the call's
        stream, which its interface names), or NumPy (one copy to the host) when every
        operand of the call was on the host."""
        with _caller.device_context(self.device):
            if self.like is None:
                host = self.materialize(self.dtype).copy_to_host(stream=self.stream)
                self.stream.synchronize()
                return host
            if self.owner is None:
                return self.materialize(self.dtype)
            theirs = self.owner
            if self.flipped:  # reversed into a new array of the caller's library
                theirs = _caller.allocate(self.like, self.base.shape, self.dtype, self.device)
                self.materialize(self.dtype, into=as_numba(theirs))
                _caller.hand_over(self.like, self.device, self.stream)
            return theirs.reshape(self.shape)

    # functional.py asks results for this (it never imports CUDA itself)
    _fastcorr_export = export


def _numba_view(a, name):
    """``a``'s Numba view and interface (TypeError naming ``name`` if it cannot be read)."""
    iface = _caller.interface(a, name)
    return as_numba(a), iface


def read(a, name):
    """Read one operand of a GPU call: a :class:`DeviceView` of a device array (no copy), or a
    NumPy array for host data. Raises TypeError naming ``name`` for non-real dtypes and for
    torch tensors that require grad."""
    if not on_device(a):
        return v.as_real_array(a, name)
    arr, iface = _numba_view(a, name)
    v.check_real_dtype(np.dtype(arr.dtype), name)
    return DeviceView(arr, None, a, device=_caller.device_of(a, arr),
                      producer=_caller.producer_stream(iface), name=name)


class Call:
    """The operands of one GPU call: its device and stream, the library of its result, uploads
    (the backend contract of :mod:`fastcorr._host`).

    Used as a context manager: inside, the operands' device is current, :attr:`stream` is the
    call's stream (``stream=``, else the caller library's current stream), and that stream
    already waits for the operands' producers; on the way out torch operands are protected
    from early reuse by torch's allocator, and the current stream of the caller's library is
    made to wait for the call's stream (its results are ready there).
    """

    def __init__(self, stream, operands):
        # a device out= (the caller's object) counts for the device and the stream as well
        self._views = [op if isinstance(op, DeviceView) else read(op, "out") for op in operands
                       if isinstance(op, DeviceView) or (op is not None and on_device(op))]
        self.like = self._views[0].like if self._views else None
        self.device = _caller.common_device(self._views)
        self._given = stream
        self._host_out = None
        self._theirs = {}  # id(Numba view) -> (the caller library's array, the view)
        self._device_context = None

    def __enter__(self):
        self._device_context = _caller.device_context(self.device)
        self._device_context.__enter__()
        try:
            if self._given is None:
                self.stream = _caller.caller_stream(self._views, self.device)
            else:
                self.stream = as_stream(self._given)
            _caller.enter(self._views, self.stream)
        except BaseException:
            self._device_context.__exit__(None, None, None)
            raise
        #: the implementations' last argument
        self.kernel_args = (self.stream,)
        return self

    def __exit__(self, *exc):
        # also after an error: kernels queued before it may still read the operands and write
        # memory their libraries allocated
        try:
            _caller.protect(self._views, self.stream)
            # every library involved (the operands', a device out='s) waits for the call
            owners = [view.like for view in self._views]
            owners += [theirs for theirs, _ in self._theirs.values()]
            by_library = {_caller.library(o): o for o in owners if o is not None}
            for owner in by_library.values():
                _caller.hand_over(owner, self.device, self.stream)
        except Exception:
            if exc[0] is None:
                raise  # otherwise the call's own error is the one to see
        finally:
            self._device_context.__exit__(*exc)

    def prepare(self, a, dtype):
        """``a`` as a C-contiguous device array of ``dtype``: device data copied only when its
        layout or dtype requires it, host data copied once."""
        if a is None:
            return None
        if isinstance(a, DeviceView):
            return a.on(self.stream).materialize(dtype, scratch_slot=f"operand {a.name}")
        return cuda.to_device(np.ascontiguousarray(a, dtype=dtype), stream=self.stream)

    def output(self, out, shape, dtype):
        """The device array the result is computed into: the caller's device ``out=``, or a
        new one (copied into a host ``out=`` by :meth:`finish`)."""
        if out is not None and on_device(out):
            return self._adopt(out, as_numba(out).reshape(tuple(shape)))
        if out is not None:
            self._host_out = out.reshape(tuple(shape))
        return self.new(shape, dtype)

    def _adopt(self, theirs, arr):
        self._theirs[id(arr)] = (theirs, arr)
        return arr

    def new(self, shape, dtype, *, zero=False):
        """A result array: from the caller's library's allocator for torch and CuPy operands
        (returned as that library's array), else a Numba device array."""
        theirs = None if self.like is None else _caller.allocate(self.like, shape, dtype,
                                                                 self.device)
        if theirs is None:
            arr = cuda.device_array(tuple(shape), dtype=dtype, stream=self.stream)
        else:
            arr = self._adopt(theirs, as_numba(theirs))
        if zero and arr.size:
            launch_1d(zero_kernel(), arr.size, self.stream, arr.reshape(arr.size))
        return arr

    def finish(self, arr):
        """A host ``out=`` receives the result (one copy); otherwise a :class:`DeviceView`,
        exported by :func:`fastcorr.functional.finish` as the caller's library's array (the
        one its allocator gave :meth:`new`, or the caller's ``out=``), a Numba device array or
        NumPy."""
        if self._host_out is not None:
            arr.copy_to_host(self._host_out, stream=self.stream)
            self.stream.synchronize()
            return self._host_out
        theirs, view = self._theirs.get(id(arr), (None, None))
        return DeviceView(arr, self.stream, self.like, device=self.device,
                          owner=theirs if view is arr else None)

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
    if not on_device(out):
        return v.check_out(out, shape, dtype, [a for a in inputs if isinstance(a, np.ndarray)])
    arr, _ = _numba_view(out, "out")
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"out: expected shape {tuple(shape)}, got {tuple(arr.shape)}")
    if np.dtype(arr.dtype) != dtype:
        raise ValueError(f"out: expected dtype {dtype}, got {np.dtype(arr.dtype)}")
    if not arr.is_c_contiguous():
        raise ValueError("out: expected a C-contiguous device array")
    views = [a for a in inputs if isinstance(a, DeviceView)]
    for a in views:
        if _shares_memory(arr, a.base):
            raise ValueError("out: must not share memory with an input")
    device, theirs = _caller.device_of(out, arr), _caller.common_device(views)
    if None not in (device, theirs) and device != theirs:
        raise ValueError(f"out: on cuda:{device}, but the operands are on cuda:{theirs}")
    return out
