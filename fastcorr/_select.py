"""Kernel selection: every backend's named implementations, and the one function that picks.

Each backend keeps, for each operation (``"forward"``, ``"grad_input"``, ``"grad_weight"``,
``"grad_bias"``), a :class:`Table` of :class:`Implementation` s by name and a ``choose``
function that reads the plan (and, where the numbers matter, the operands) and returns a
name, as :func:`scipy.signal.choose_conv_method` does for SciPy. Nothing else decides which
kernel runs: the public functions ask :meth:`Table.select`.

Two hooks make the choice visible and testable:

- :func:`trace` records, in the calling thread, every implementation that runs
  (``fastcorr.trace`` is public; ``fastcorr bench`` prints what it records);
- :func:`force` makes the calling thread's calls use named implementations. An unknown name
  is a ``ValueError``, and so is a forced implementation that cannot compute a plan: a test
  never silently runs the default path instead of the one it names.
"""

import contextlib
import threading
from dataclasses import dataclass
from typing import Callable

OPERATIONS = ("forward", "grad_input", "grad_weight", "grad_bias")
METHODS = ("auto", "direct", "fft")


def _always(plan):
    return None


@dataclass(frozen=True)
class Implementation:
    """One way a backend computes one operation.

    Attributes
    ----------
    name : str
        Its name in the backend's table (what :func:`trace` records and :func:`force` takes).
    run : callable
        ``run(*operands, result, plan)``, with the operation's operands (see the backend).
    method : {"direct", "fft", "winograd"}
        "direct" sums the taps in their order (deterministic, exact up to rounding in that
        order); "fft" goes through the Fourier domain (bounded error, see
        :func:`fastcorr.correlate2d`); "winograd" through Winograd's minimal filtering
        (bounded error, see :mod:`fastcorr.cpu.winograd`; only ``method="auto"`` takes it).
    why_not : callable
        ``why_not(plan)``: None when the implementation can compute ``plan``, else the
        reason (a sentence) it cannot.
    """

    name: str
    run: Callable
    method: str = "direct"
    why_not: Callable = _always


@dataclass(frozen=True)
class Ran:
    """What :func:`trace` records for one computation."""

    backend: str
    operation: str
    implementation: str
    method: str


_local = threading.local()


def _forced():
    return getattr(_local, "forced", {})


class Table:
    """The implementations of one operation on one backend, and its choice among them.

    ``choose(plan, method, operands)`` returns the name to run for ``method`` ("auto",
    "direct" or "fft"); it raises ``ValueError`` when ``method`` cannot compute the plan.
    """

    def __init__(self, backend, operation, implementations, choose):
        self.backend = backend
        self.operation = operation
        self.implementations = {impl.name: impl for impl in implementations}
        self._choose = choose

    def names(self):
        """The implementations' names, in the table's order."""
        return tuple(self.implementations)

    def __getitem__(self, name):
        try:
            return self.implementations[name]
        except KeyError:
            raise ValueError(f"{self.backend} {self.operation}: no implementation named "
                             f"{name!r}; the table has {', '.join(map(repr, self.names()))}"
                             ) from None

    def select(self, plan, method="auto", operands=None):
        """The implementation to run for ``plan`` (recorded by :func:`trace`)."""
        forced, strict = _forced().get((self.backend, self.operation), (None, True))
        impl = None
        if forced is not None:
            impl = self[forced]
            reason = impl.why_not(plan)
            if reason and strict:
                raise ValueError(f"{self.backend} {self.operation}: forced implementation "
                                 f"{forced!r} cannot compute this plan: {reason}")
            if reason:
                impl = None
        if impl is None:
            impl = self[self._choose(plan, method, operands)]
        records = getattr(_local, "trace", None)
        if records is not None:
            for record in records:
                record.append(Ran(self.backend, self.operation, impl.name, impl.method))
        return impl


@contextlib.contextmanager
def trace():
    """Record which implementations run in this block (in the calling thread).

    Every kernel choice a public function makes in the block (a forward pass, each gradient)
    is recorded as it is made, so a test or a benchmark can tell which path computed a call.

    Returns
    -------
    context manager
        Its ``with ... as records`` target is a list that fills with :class:`Ran` records
        ``(backend, operation, implementation, method)``, one per computation, in order:
        ``operation`` is "forward", "grad_input", "grad_weight" or "grad_bias", and
        ``method`` is "direct", "fft" or "winograd". The list stays readable after the
        block.

    See Also
    --------
    choose_method : The method ``method="auto"`` would take, without computing.
    correlate2d, conv2d, conv2d_backward : Calls whose choices are recorded.

    Notes
    -----
    Only the calling thread's calls are recorded (calls made from other Python threads
    meanwhile are not). Blocks may nest: a call is recorded by every enclosing block. The
    implementation names are the backend's own (those of ``fastcorr._select.Table.names``),
    and which one "auto" picks depends on the shapes and the machine.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> with fastcorr.trace() as ran:
    ...     _ = fastcorr.correlate2d(np.ones((64, 64)), np.ones((3, 3)), "same")
    >>> [(r.operation, r.implementation) for r in ran]
    [('forward', 'taps')]
    >>> with fastcorr.trace() as ran:
    ...     _ = fastcorr.correlate2d(np.ones((64, 64)), np.ones((3, 3)), method="fft")
    ...     _ = fastcorr.conv2d(np.ones((1, 3, 8, 8)), np.ones((2, 3, 3, 3)), backend="reference")
    ...     _ = fastcorr.conv2d_backward(np.ones((1, 2, 6, 6)), np.ones((1, 3, 8, 8)),
    ...                                  np.ones((2, 3, 3, 3)))
    >>> ran[0]
    Ran(backend='cpu', operation='forward', implementation='fft', method='fft')
    >>> ran[1]
    Ran(backend='reference', operation='forward', implementation='loops', method='direct')
    >>> [r.operation for r in ran[2:]]
    ['grad_input', 'grad_weight', 'grad_bias']
    """
    records = []
    stack = getattr(_local, "trace", None)
    _local.trace = (stack or []) + [records]
    try:
        yield records
    finally:
        _local.trace = stack


@contextlib.contextmanager
def force(backend, *, strict=True, **names):
    """Use the named implementations of ``backend`` in this block (calling thread only):
    ``force("cpu", forward="rows", grad_weight="gemm")``. Unknown operations or names raise
    ``ValueError``; so does a forced implementation that cannot compute a plan, unless
    ``strict=False``: then such plans take the usual choice, and whoever forces checks with
    :func:`trace` that the forced implementation did run."""
    from .dispatch import backend_tables

    tables = backend_tables(backend)
    for operation, name in names.items():
        if operation not in OPERATIONS:
            raise ValueError(f"force: unknown operation {operation!r}; expected one of "
                             f"{', '.join(OPERATIONS)}")
        tables[operation][name]  # raises for an unknown name
    previous = _forced()
    _local.forced = {**previous,
                     **{(backend, op): (name, strict) for op, name in names.items()}}
    try:
        yield
    finally:
        _local.forced = previous


def unsupported(method, backend, operation, reason):
    """The ``ValueError`` for a ``method`` that cannot compute a plan."""
    return ValueError(f"method={method!r}: {backend} cannot compute this {operation} that way: "
                      f"{reason}")


def first_supported(table, names, plan):
    """The first of ``names`` whose implementation can compute ``plan``, or None."""
    for name in names:
        if table[name].why_not(plan) is None:
            return name
    return None


__all__ = ["Implementation", "METHODS", "OPERATIONS", "Ran", "Table", "first_supported", "force",
           "trace", "unsupported"]
