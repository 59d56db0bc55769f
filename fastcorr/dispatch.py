"""Backend choice: from the ``backend`` argument, or from where the data lives."""

from . import _validate


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here (not built, or no device)."""


def _on_device(array):
    return array is not None and hasattr(array, "__cuda_array_interface__")


def resolve(backend, *arrays):
    """Return the backend module that computes for ``arrays``.

    ``backend`` None or "auto" follows the data: NumPy (or anything array-like on the host)
    goes to "cpu", an object with ``__cuda_array_interface__`` to "cuda". Each backend module
    has ``forward(x, weight, bias, out, plan)``.
    """
    name = _validate.check_backend(backend)
    on_device = any(_on_device(a) for a in arrays)
    if name is None:
        name = "cuda" if on_device else "cpu"
    if name == "cuda":
        raise BackendUnavailableError(
            "backend 'cuda': the CUDA backend is not part of this version of fastcorr yet; "
            "use backend='cpu' with host (NumPy) arrays"
        )
    if on_device:
        raise TypeError(
            f"backend {name!r} computes on the host, but an input is a CUDA device array; "
            "copy it to the host first"
        )
    if name == "cpu":
        from . import cpu

        return cpu
    from . import _reference_backend

    return _reference_backend
