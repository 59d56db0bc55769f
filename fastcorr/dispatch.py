"""Backend choice: from the ``backend`` argument, or from where the data lives."""

import importlib.util
import sys

from . import _validate


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here (not installed, no driver, or no device).

    Raised by every public function asked to compute on ``backend="cuda"`` (or given CUDA
    device data with ``backend=None``/"auto") when the CUDA backend cannot run: numba-cuda is
    not installed or cannot be imported, or there is no usable driver or device. The message
    says which, and how to install the ``cuda`` extra where that is the reason.

    A subclass of ``RuntimeError``: the arguments may be right, the machine cannot run them.
    Argument errors are ``ValueError`` and ``TypeError`` instead (an unknown ``backend``
    name is a ``ValueError``).

    See Also
    --------
    correlate2d, conv2d : Their ``backend`` argument.
    torch.cuda.is_available : torch's way to ask before computing.

    Notes
    -----
    The reason is found once per process (on the first call that needs the CUDA backend)
    and every later such call raises with the same reason; importing fastcorr never imports
    CUDA.

    Examples
    --------
    Compute on the GPU where one is usable, else on the CPU:

    >>> import numpy as np, fastcorr
    >>> issubclass(fastcorr.BackendUnavailableError, RuntimeError)
    True
    >>> image, kernel = np.ones((4, 4)), np.ones((3, 3))
    >>> try:
    ...     y = fastcorr.correlate2d(image, kernel, "valid", backend="cuda")
    ... except fastcorr.BackendUnavailableError:
    ...     y = fastcorr.correlate2d(image, kernel, "valid", backend="cpu")
    >>> y
    array([[9., 9.],
           [9., 9.]])
    """


def on_device(array):
    """True for CUDA device data (``__cuda_array_interface__`` or a Numba device array),
    checked without importing CUDA and without touching the data.

    A torch tensor that requires grad raises from ``__cuda_array_interface__``; asking
    ``hasattr`` would turn that into a crash, so its type is asked instead.
    """
    if array is None:
        return False
    if type(array).__module__.split(".")[0] == "torch":
        return bool(getattr(array, "is_cuda", False))
    try:
        return (bool(getattr(array, "__cuda_ndarray__", False))
                or hasattr(array, "__cuda_array_interface__"))
    except Exception:  # an interface that raises: device data the CUDA backend refuses by name
        return True


_cuda_reason = None


def cuda_backend():
    """The CUDA backend module, or BackendUnavailableError saying why it cannot run."""
    global _cuda_reason
    if _cuda_reason is None:
        if importlib.util.find_spec("numba_cuda") is None:
            _cuda_reason = ("numba-cuda is not installed (pip install 'fastcorr[cuda]' for CUDA "
                            "12, 'fastcorr[cuda13]' for CUDA 13)")
        else:
            try:
                from . import cuda
            except Exception as exc:  # a broken numba-cuda installation
                _cuda_reason = f"numba-cuda could not be imported ({exc})"
            else:
                _cuda_reason = cuda.unavailable_reason() or ""
    if _cuda_reason:
        raise BackendUnavailableError(f"backend 'cuda' is not usable here: {_cuda_reason}")
    from . import cuda

    return cuda


def _module(name):
    if name == "cuda":
        return cuda_backend()
    if name == "cpu":
        from . import cpu

        return cpu
    from . import _reference_backend

    return _reference_backend


def resolve(backend, *arrays):
    """Return the backend module that computes for ``arrays``.

    ``backend`` None or "auto" follows the data: NumPy (or anything array-like on the host)
    goes to "cpu", an object with ``__cuda_array_interface__`` (CuPy, torch CUDA tensors,
    Numba device arrays) to "cuda". Every backend module has the same contract (see
    :mod:`fastcorr._host`).
    """
    name = _validate.check_backend(backend)
    device = any(on_device(a) for a in arrays)
    if name is None:
        name = "cuda" if device else "cpu"
    if name != "cuda" and device:
        raise TypeError(
            f"backend {name!r} computes on the host, but an input is a CUDA device array; "
            "copy it to the host first or use backend='cuda'"
        )
    return _module(name)


def backend_tables(name):
    """The implementation tables of backend ``name`` (see :mod:`fastcorr._select`)."""
    if name not in _validate.BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(map(repr, _validate.BACKENDS))}; "
                         f"got {name!r}")
    return _module(name).TABLES


def check_stream(backend, stream):
    """``stream=`` is for the CUDA backend only; a host backend given one raises ValueError."""
    if stream is not None and backend.NAME != "cuda":
        raise ValueError("stream: only backend='cuda' runs on a stream; pass stream=None on the "
                         "host backends")


def release_gpu_memory():
    """Free the GPU memory fastcorr keeps between calls.

    The CUDA backend keeps its scratch buffers (padded planes, split-K partial sums, operands
    converted on the device) and the streaming path's pinned host and device buffers for the
    next call, per device, stream and host thread, so that a repeated call allocates only its
    results. This frees them all; they are made again when next needed.

    Returns
    -------
    tuple of int
        ``(device bytes, pinned host bytes)`` freed: ``(0, 0)`` when the CUDA backend was
        never used in this process (nothing is imported then).

    See Also
    --------
    fastcorr.batch.conv2d_stream : The streaming path whose pinned buffers this frees.
    torch.cuda.empty_cache : torch's counterpart for its caching allocator.

    Examples
    --------
    >>> import fastcorr
    >>> fastcorr.release_gpu_memory()  # no GPU call was made yet
    (0, 0)
    """
    if "fastcorr.cuda" not in sys.modules:
        return 0, 0
    from .cuda import _workspace

    return _workspace.release()
