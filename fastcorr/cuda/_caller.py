"""Where a GPU call runs when its caller does not say: the operands' device and the current
stream of the caller's library.

- **Device.** A call runs on the device that holds its device operands: torch's
  ``tensor.device``, CuPy's ``array.device``, else the driver's record of the pointer (Numba
  device arrays, other ``__cuda_array_interface__`` producers). Operands on different devices
  are a ValueError naming them; a call with host operands only runs on the current device.
- **Stream.** ``stream=`` when given; otherwise the current stream of the library of the first
  device operand (``torch.cuda.current_stream(device)``, ``cupy.cuda.get_current_stream()``),
  else the stream a version-3 interface names, else the default stream (the legacy one, or
  the per-thread one under ``NUMBA_CUDA_PER_THREAD_DEFAULT_STREAM=1``).
- **Producers.** An operand whose version-3 interface names another stream is waited for on
  the device (an event recorded there, waited on the call's stream), never by blocking the
  host. A torch operand read on a stream other than torch's current one is first waited for
  the same way, and marked with ``Tensor.record_stream`` so that torch's caching allocator
  does not hand its memory out again before the call's kernels are done with it.
- **Results.** Allocated by the caller's library (torch's caching allocator, CuPy's memory
  pool: a steady-state call makes no driver allocation) and handed over after that library's
  current stream has been made to wait for the call's stream (again an event), so a torch or
  CuPy result is ready for the caller's next operation without a host synchronisation.
"""

import contextlib

import numpy as np
from numba import cuda

from .. import _validate as v

#: ``__cuda_array_interface__`` stream values that name the default streams (version 3
#: forbids 0, which would be ambiguous).
LEGACY_STREAM, PER_THREAD_STREAM = 1, 2


def library(obj):
    """``"torch"``, ``"cupy"`` or ``"numba"`` (anything else with a device interface)."""
    root = type(obj).__module__.split(".")[0]
    return root if root in ("cupy", "torch") else "numba"


def interface(obj, name):
    """``obj.__cuda_array_interface__``, or None for a Numba (or simulator) device array that
    has none; any failure to produce it is a TypeError naming ``name``."""
    if library(obj) == "torch":
        v.check_torch_tensor(obj, name)
    try:
        return getattr(obj, "__cuda_array_interface__", None)
    except Exception as exc:  # a producer that cannot describe this array
        raise TypeError(f"{name}: its __cuda_array_interface__ could not be read "
                        f"({type(exc).__name__}: {exc})") from None


def producer_stream(iface):
    """The stream handle a version-3 interface says to synchronise on, or None."""
    if not iface or iface.get("version", 0) < 3:
        return None
    stream = iface.get("stream")
    return None if stream is None else int(stream)


def device_of(obj, arr):
    """The ordinal of the device holding ``obj`` (its Numba view ``arr``), or None when it
    cannot be told (an empty array, the simulator)."""
    lib = library(obj)
    if lib == "torch":
        return obj.device.index
    if lib == "cupy":
        return obj.device.id
    if getattr(arr, "_ary", None) is not None:  # the simulator: NumPy underneath, one device
        return 0
    pointer = arr.device_ctypes_pointer.value if arr.size else None
    return _pointer_device(pointer) if pointer else None


def _pointer_device(pointer):
    from numba.cuda.cudadrv.driver import binding, driver

    attribute = binding.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
    return int(driver.cuPointerGetAttribute(attribute, binding.CUdeviceptr(pointer)))


def common_device(views):
    """The one device of the device operands ``views`` (None if none tells), or ValueError
    naming the operands on different devices."""
    placed = [(view.name, view.device) for view in views if view.device is not None]
    devices = sorted({device for _, device in placed})
    if len(devices) > 1:
        where = ", ".join(f"{name} on cuda:{device}" for name, device in placed)
        raise ValueError(f"operands on different CUDA devices ({where}); move them to one "
                         "device")
    return devices[0] if devices else None


def device_context(device):
    """A context in which ``device`` is the current CUDA device (nothing changes for None)."""
    return contextlib.nullcontext() if device is None else cuda.gpus[device]


def _per_thread_default():
    from numba.cuda.core import config

    return bool(config.CUDA_PER_THREAD_DEFAULT_STREAM)


def default_stream():
    """The default stream as a stream whose handle is valid in a version-3 interface."""
    if _per_thread_default():
        return cuda.per_thread_default_stream()
    return cuda.legacy_default_stream()


def handle(stream):
    """The integer handle of a Numba stream (0 for the simulator's streams, which have none)."""
    raw = getattr(stream, "handle", None)
    if raw is not None:
        return int(getattr(raw, "value", raw) or 0)  # a binding's handle, or a ctypes one
    try:
        return int(stream)
    except TypeError:
        return 0


def from_handle(value):
    """A Numba stream for a raw handle from another library (0 there is the legacy default
    stream: torch's and CuPy's null stream)."""
    value = int(value)
    if value in (0, LEGACY_STREAM):
        return cuda.legacy_default_stream()
    if value == PER_THREAD_STREAM:
        return cuda.per_thread_default_stream()
    return cuda.external_stream(value)


def library_stream(like, device):
    """The current stream of ``like``'s library on ``device`` as a raw handle, or None for a
    library without one (Numba)."""
    lib = library(like)
    if lib == "torch":
        import torch

        return int(torch.cuda.current_stream(device).cuda_stream)
    if lib == "cupy":
        import cupy

        with cupy.cuda.Device(device):
            return int(cupy.cuda.get_current_stream().ptr)
    return None


def caller_stream(views, device):
    """The stream a call runs on when ``stream=`` is not given (see the module docstring)."""
    for view in views:
        current = library_stream(view.like, device)
        if current is not None:
            return from_handle(current)
    for view in views:
        if view.producer is not None:
            return from_handle(view.producer)
    return default_stream()


def wait(stream, on):
    """Make the work queued on ``stream`` wait (on the device) for the work queued so far on
    ``on`` (raw handles or Numba streams; nothing when they are the same stream)."""
    stream = stream if not isinstance(stream, (int, np.integer)) else from_handle(stream)
    on = on if not isinstance(on, (int, np.integer)) else from_handle(on)
    if _same(handle(stream), handle(on)):
        return
    event = cuda.event(timing=False)
    event.record(stream=on)
    event.wait(stream=stream)


def _same(a, b):
    # handle 0 is the default stream: the per-thread one where Numba uses it, else the legacy
    default = (0, PER_THREAD_STREAM if _per_thread_default() else LEGACY_STREAM)
    return a == b or (a in default and b in default)


def enter(views, stream):
    """Order the call's ``stream`` after the producers of ``views`` (device-side waits, one
    per stream)."""
    producers = []
    for view in views:
        current = library_stream(view.like, view.device)
        if current is not None:  # torch, CuPy (whose interface names the current stream of
            producers.append(current)  # the current device, not of the array's)
        elif view.producer is not None:
            producers.append(view.producer)
    for producer in dict.fromkeys(producers):
        wait(stream, producer)


def protect(views, stream):
    """Keep torch's caching allocator from reusing the memory of the torch operands in
    ``views`` before the work queued on ``stream`` is done (``Tensor.record_stream``)."""
    ours = handle(stream)
    torch_views = [view for view in views if library(view.like) == "torch"
                   and not _same(library_stream(view.like, view.device), ours)]
    if not torch_views:
        return
    import torch

    device = torch_views[0].like.device
    if ours in (0, LEGACY_STREAM):  # an odd handle is not a valid torch external stream id
        theirs = torch.cuda.default_stream(device)
    else:
        theirs = torch.cuda.ExternalStream(ours, device=device)
    for view in torch_views:
        view.like.record_stream(theirs)


def allocate(like, shape, dtype, device):
    """A new array of ``shape`` and ``dtype`` from ``like``'s library on ``device`` (torch:
    ``torch.empty``, CuPy: ``cupy.empty``), or None for a library without an allocator of its
    own (Numba)."""
    lib = library(like)
    if lib == "torch":
        import torch

        return torch.empty(tuple(shape), dtype=getattr(torch, np.dtype(dtype).name),
                           device=like.device)
    if lib == "cupy":
        import cupy

        with cupy.cuda.Device(device):
            return cupy.empty(tuple(shape), dtype=dtype)
    return None


def hand_over(like, device, stream):
    """Make the current stream of ``like``'s library wait for ``stream``, where the result of
    a call is exported to that library."""
    current = library_stream(like, device)
    if current is not None:
        wait(current, stream)
