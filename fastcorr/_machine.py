"""What machine fastcorr runs on: the CPU model and the instruction set Numba compiles for."""

import os
import platform


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo`` on Linux), with its family and model numbers."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


def numba_target():
    """The CPU Numba compiles for (``NUMBA_CPU_NAME`` if set, else the host's), and the widest
    vector instruction set it may use: "AVX-512", "AVX2", "SSE" or the features' absence."""
    import llvmlite.binding as llvm

    name = os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name()
    if os.environ.get("NUMBA_CPU_NAME") and name != "host":
        isa = _isa_of_named_cpu(name)
    else:
        features = os.environ.get("NUMBA_CPU_FEATURES") or llvm.get_host_cpu_features().flatten()
        isa = _isa(features)
    return name, isa


def _isa(features):
    enabled = {f[1:] for f in str(features).split(",") if f.startswith("+")}
    if "avx512f" in enabled:
        return "AVX-512"
    if "avx2" in enabled:
        return "AVX2"
    if "sse4.2" in enabled or "sse2" in enabled:
        return "SSE"
    return "scalar or unknown"


_AVX2_CPUS = ("haswell", "broadwell", "skylake", "znver1", "znver2", "znver3", "alderlake")
_AVX512_CPUS = ("skylake-avx512", "cascadelake", "icelake", "sapphirerapids", "znver4",
                "znver5", "tigerlake", "cooperlake")


def _isa_of_named_cpu(name):
    if name in _AVX512_CPUS or name.startswith(("icelake", "sapphire")):
        return "AVX-512"
    if name in _AVX2_CPUS:
        return "AVX2"
    return "as LLVM defines it"


def describe():
    """One line: the CPU and Numba's target."""
    name, isa = numba_target()
    return f"{cpu_model()}; Numba targets {name} ({isa})"
