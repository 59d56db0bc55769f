"""How fastcorr compiles its CPU kernels: ``numba.njit`` with fastcorr's own compile cache.

Every CPU kernel is declared with :func:`kernel` (a hot loop nest run on a range of tasks by
:mod:`fastcorr.cpu._pool`) or :func:`helper` (a small function inlined into the kernels).

**Arrays do not alias.** A kernel's array arguments never overlap (the public functions check
``out=`` against the inputs and allocate everything else), so kernels are compiled with
Numba's ``noalias`` flag: LLVM then vectorises loops that read several rows of one array and
write several rows of another without run-time overlap checks, which it otherwise gives up on
beyond a handful of pointers ("too many memory checks"). Numba computes the flag for the
bodies of ``prange`` loops itself; it has no public option for serial functions, so
:func:`enable_noalias_option` registers the flag's name with Numba's CPU options (one class
attribute, read only by functions that pass ``_noalias=True``). If a future Numba changes
this, kernels compile without it: slower, never wrong.

**Fused multiply-adds.** Every kernel is compiled with ``fastmath={"contract"}`` and no
other fast-math flag: LLVM may fuse ``acc + w * x`` into one multiply-add rounded once (the
order of the sums is kept; NaN inputs still give NaN, but a product that overflows by itself
can be absorbed by the sum it joins: ``2e38 * 2 - 3e38`` is ``1e38`` in float32, not
``inf``). The direct kernels sum every output's products in one order, each as ``acc = acc +
w * x``, so each of their additions fuses the same way and they still agree bitwise (on one
kind of CPU); a product of a loop-invariant value (the fill value of a whole padded row)
would be hoisted out of its loop and added unfused, so the row kernel reads padded rows from
a row of fill values in memory (a padded column's fill, chosen per sample inside the loop,
fuses like any sample). Measured (Intel Xeon, AVX-512, 2 cores,
float32 2048^2-4096^2 "same", one process): the width-class kernels 1.0-1.2x faster at 3x3 to
13x13, depthwise and grouped layers 0.90-1.37x (forward and backward, noisy).

**The compile cache** (see :func:`cache_location`) works where Numba's default cannot:

- the location: ``FASTCORR_CACHE_DIR``, else ``NUMBA_CACHE_DIR`` (a folder the user names is
  used if it holds the kernel or can be written), else the package's own ``__pycache__`` (so a
  cache filled at install time by ``fastcorr warmup`` ships with it), else the user's cache
  folder (``$XDG_CACHE_HOME/fastcorr`` or ``~/.cache/fastcorr``): of these two, the first that
  already holds a kernel's index, read-only if it cannot be written (a cache filled beforehand
  and made read-only is used), otherwise the first writable one;
- no writable location at all (read-only installs and home folders): kernels compile in
  memory, each process anew, with one warning;
- a corrupted or truncated entry (or one a newer Numba cannot read) is discarded with a
  warning and rebuilt, instead of failing every later call;
- an entry is valid for the package's sources it was compiled from (:func:`sources_digest`),
  not for the kernel's file alone: a kernel inlines helpers and constants of other modules.
"""

import hashlib
import os
import warnings
from pathlib import Path

import numba
from numba.core import caching

ENV_CACHE_DIR = "FASTCORR_CACHE_DIR"


class CacheWarning(UserWarning):
    """The compile cache could not be used as intended (read-only, corrupted entries)."""


_warned = set()


def _warn_once(key, message):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, CacheWarning, stacklevel=3)


def enable_noalias_option():
    """Let ``numba.njit`` accept ``_noalias=True`` (see the module docstring); returns whether
    the option is available."""
    from numba.core import cpu, options

    target = getattr(cpu, "CPUTargetOptions", None)
    mapping = getattr(getattr(options, "TargetOptions", None), "Mapping", None)
    if target is None or mapping is None:
        return False
    if not hasattr(target, "_noalias"):
        target._noalias = mapping("noalias")
    return True


NOALIAS = enable_noalias_option()


# --------------------------------------------------------------------------- the cache


def _user_cache_root():
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "fastcorr"


def candidate_roots():
    """The folders a kernel's cache may live in, in order of preference (see the module
    docstring); ``None`` stands for the package's own ``__pycache__`` folders."""
    roots = []
    for variable in (ENV_CACHE_DIR, "NUMBA_CACHE_DIR"):
        if os.environ.get(variable):
            roots.append(Path(os.environ[variable]))
    roots.append(None)
    try:
        roots.append(_user_cache_root())
    except RuntimeError:  # no home folder
        pass
    return roots


def _writable(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".fastcorr-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


_sources_digest = None


def sources_digest():
    """A digest of every module a CPU kernel may take code or constants from (the modules of
    ``fastcorr`` and ``fastcorr.cpu``), computed once a process. Numba's own stamp covers only
    the kernel's file: a kernel that inlines a changed helper of another module (its
    ``@helper`` functions, constants such as the boundary rules) would load its stale
    compiled code."""
    global _sources_digest
    if _sources_digest is None:
        package = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for path in sorted(package.glob("*.py")) + sorted((package / "cpu").glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        _sources_digest = digest.hexdigest()
    return _sources_digest


class _Locator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """A kernel's cache folder, chosen from :func:`candidate_roots`."""

    def __init__(self, py_func, py_file, folder, writable):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(folder)
        self.writable = writable

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        """The package's sources (:func:`sources_digest`), not the kernel's file alone."""
        return sources_digest()

    def ensure_cache_path(self):
        if not self.writable:
            raise OSError(f"the cache folder {self._cache_path} is read-only")

    @classmethod
    def from_function(cls, py_func, py_file):
        index = f"{Path(py_file).stem}.{py_func.__qualname__}-{py_func.__code__.co_firstlineno}."

        def holds_index(folder):
            try:
                return any(name.startswith(index) and name.endswith(".nbi")
                           for name in os.listdir(folder))
            except OSError:
                return False

        explicit, defaults = [], []
        for root in candidate_roots():
            if root is None:
                defaults.append(Path(py_file).parent / "__pycache__")
            elif root == _user_cache_root():
                defaults.append(root / cls.get_suitable_cache_subpath(py_file))
            else:
                explicit.append(root / cls.get_suitable_cache_subpath(py_file))
        # a folder the user named: used if it holds the kernel or can be written
        for folder in explicit:
            if holds_index(folder):
                return cls(py_func, py_file, folder, _writable(folder))
            if _writable(folder):
                return cls(py_func, py_file, folder, True)
        # else the first default that already holds it (maybe read-only), or can be written
        for folder in defaults:
            if holds_index(folder):
                return cls(py_func, py_file, folder, _writable(folder))
        for folder in defaults:
            if _writable(folder):
                return cls(py_func, py_file, folder, True)
        return None


class _CacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_Locator]


class KernelCache(caching.FunctionCache):
    """Numba's per-function cache with fastcorr's locations and tolerance of damage."""

    _impl_class = _CacheImpl

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as exc:  # truncated, corrupted or foreign files
            _warn_once(("corrupt", self._cache_path),
                       f"fastcorr: discarded an unreadable compile cache entry in "
                       f"{self._cache_path} ({type(exc).__name__}: {exc}); recompiling")
            self._discard()
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except OSError as exc:
            _warn_once(("save", self._cache_path),
                       f"fastcorr: compiled kernels cannot be saved in {self._cache_path} "
                       f"({exc}); they are compiled in memory, once per process")

    def _discard(self):
        """Remove this function's index, so that the rebuilt entry replaces the damaged one."""
        index = Path(self._cache_path) / self._cache_file._index_name
        try:
            index.unlink()
        except OSError:
            pass


def _attach_cache(dispatcher):
    try:
        dispatcher._cache = KernelCache(dispatcher.py_func)
    except RuntimeError:  # no usable location: compile in memory
        _warn_once("memory", "fastcorr: no writable compile cache folder (tried "
                   f"{', '.join(str(r) if r else 'the package folder' for r in candidate_roots())}"
                   f"; set {ENV_CACHE_DIR}); kernels are compiled in memory, once per process")
    return dispatcher


def cache_location():
    """Where compiled kernels are cached: a folder, or a sentence saying why none is used."""
    from . import rows

    path = getattr(rows.correlate_rows._cache, "cache_path", None)
    return path if path else "in memory (no writable cache folder)"


# --------------------------------------------------------------------------- decorators


#: The one fast-math flag of every kernel (see the module docstring): LLVM may fuse a multiply
#: and the add of its product into one multiply-add, rounded once.
FASTMATH = frozenset({"contract"})


def kernel(fn=None, *, noalias=True):
    """Compile ``fn`` as a fastcorr CPU kernel: nopython, cached (see the module docstring),
    releasing the GIL, non-aliasing array arguments (unless ``noalias`` is False: a kernel
    that takes two views of one buffer), NumPy's error model (no division checks; the
    arguments are validated before any kernel runs), multiply-adds fused (:data:`FASTMATH`)."""

    def wrap(fn):
        options = dict(nogil=True, error_model="numpy", fastmath=set(FASTMATH))
        if NOALIAS and noalias:
            options["_noalias"] = True
        return _attach_cache(numba.njit(**options)(fn))

    return wrap if fn is None else wrap(fn)


def helper(fn):
    """A small function the kernels call, inlined into them at Numba's level (so it is typed
    and optimised inside each caller, and inherits the caller's non-aliasing arrays and its
    fast-math flag)."""
    return numba.njit(inline="always", error_model="numpy")(fn)


__all__ = ["CacheWarning", "KernelCache", "cache_location", "candidate_roots", "helper",
           "kernel"]
