"""Docstring parts that several public functions share, written once (as torch formats its
convolution notes into each docstring).

A docstring names a part on a line of its own, ``{{name}}``; :func:`fill_doc` replaces that
line with the part, indented as the placeholder was. Parts are NumPy-style entries (a
parameter and its description, or a paragraph of a Notes section).
"""

import textwrap

PARTS = {
    "method": '''
method : {"auto", "direct", "fft"}
    "direct" sums each output's terms in the taps' order: deterministic, exact up to the
    rounding of that order. "fft" goes through the Fourier domain (stride 1 only): its error
    is bounded relative to ``max|input| * sum|weight|`` (about 1e-7 in float32, 1e-15 in
    float64), and inputs with NaN or infinity are refused with ValueError. "auto" (the
    default) takes whichever :func:`fastcorr.choose_method` predicts faster, and always
    "direct" for non-finite inputs; for stride-1 3x3 layers with at least 8 channels per
    group (CPU) it takes Winograd's F(2x2, 3x3), 16 products per 2x2 tile of outputs
    instead of 36, whose error is comparable to the direct sums' (tested within 4x; a few
    1e-7 of the largest output in float32; see :mod:`fastcorr.cpu.winograd`), and for the
    forward and the input gradient of layers with many tiles for their channels F(4x4, 3x3),
    36 products per 4x4 tile instead of 144, whose error is 5-43x the direct sums' (about
    1e-5 of the largest output in float32; see :mod:`fastcorr.cpu.winograd4`); "direct"
    keeps the direct sums.
    :func:`fastcorr.trace` shows which implementation ran.
''',
    "backend": '''
backend : {None, "auto", "cpu", "cuda", "reference"}
    Where to compute. None and "auto" follow the data: device arrays (CuPy, torch CUDA
    tensors, Numba device arrays) go to "cuda", everything else to "cpu". "reference" runs
    the plain loops every fast kernel is tested against.
''',
    "out": '''
out : ndarray or device array, optional
    A C-contiguous array of the result's shape and dtype to write into (it is returned).
''',
    "thread_count_errors": '''
TypeError
    If ``n`` is not a Python int (bools and NumPy integers included).
ValueError
    If ``n`` is not from 1 to :func:`max_threads`, or (as in :func:`max_threads`)
    ``FASTCORR_NUM_THREADS`` or ``NUMBA_NUM_THREADS`` is set to something other than a
    positive integer.
''',
    "stream": '''
stream : CUDA stream, optional
    ``backend="cuda"`` only: the stream to run on (a Numba, CuPy or torch stream, or a raw
    handle); None is the default stream. The host backends raise ValueError if one is given.
''',
    "threads_per_block": '''
threads_per_block : int, optional
    Positive: the fastcorr threads each block's call uses (default 1; see "Threads" in
    :mod:`fastcorr.dask`).
''',
    "unavailable": '''
BackendUnavailableError
    If the call needs the "cuda" backend and it cannot run here.
''',
    "determinism": '''
Results are deterministic: the same inputs give bitwise the same result on every run and at
every thread count on one kind of CPU (each output is summed by one task in a fixed order;
CPUs with and without fused multiply-adds round differently).
''',
    "dtypes": '''
float32 and float64 are computed in their own precision; mixed inputs follow NumPy's
promotion, and integers and booleans are computed in float64.
''',
}


def part(name, indent=""):
    """The shared part ``name``, each line prefixed with ``indent``."""
    return textwrap.indent(PARTS[name].strip("\n"), indent)


def fill_doc(obj):
    """Replace every ``{{name}}`` line of ``obj.__doc__`` with the shared part ``name``;
    returns ``obj`` (a decorator)."""
    doc = obj.__doc__
    if doc:
        lines = []
        for line in doc.split("\n"):
            stripped = line.strip()
            if stripped.startswith("{{") and stripped.endswith("}}"):
                indent = line[: len(line) - len(line.lstrip())]
                lines.append(part(stripped[2:-2].strip(), indent))
            else:
                lines.append(line)
        obj.__doc__ = "\n".join(lines)
    return obj
