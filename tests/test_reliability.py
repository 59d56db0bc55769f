"""Reliability under real use: bounded arguments, non-finite gradients, and the compile cache
(read-only installs, read-only and damaged caches, several processes compiling at once, a
warm cache that compiles nothing). Each case that a probe of earlier versions broke is named
in its test's docstring."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastcorr
from fastcorr import _select
from helpers import torch_conv2d

REPO_ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- arguments

HUGE_ARGUMENTS = [
    dict(stride=2**63),
    dict(stride=2**64),
    dict(stride=(1, 2**63 - 1), padding=(0, 2**62)),
    dict(dilation=(1, 2**62), padding_mode="replicate"),
    dict(padding=(0, 2**62), dilation=(1, 2**20), padding_mode="replicate"),
    dict(groups=2**63),
    dict(padding=2**40),
    dict(padding=2**31 - 1, padding_mode="replicate"),
]


@pytest.mark.parametrize("kwargs", HUGE_ARGUMENTS, ids=str)
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_huge_integer_arguments_are_a_clear_error(kwargs, backend):
    """Reported: stride=2**63 raised OverflowError, 2**64 a Numba TypingError; parameters near
    2**62 overflowed the kernels' index arithmetic into 3.76e+219 or a segfault."""
    x, w = np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 9))
    name = next(iter(kwargs)) if "padding_mode" not in kwargs or len(kwargs) == 2 else None
    with pytest.raises(ValueError) as raised:
        fastcorr.conv2d(x, w, backend=backend, **kwargs)
    message = str(raised.value)
    assert any(message.startswith(arg) for arg in ("stride", "padding", "dilation", "groups",
                                                   "weight")), message
    if name:
        assert name in message


def test_large_dilation_with_replicate_padding_is_right():
    """Within the bounds, large dilations and paddings compute what the reference does."""
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    w = np.arange(1.0, 10.0).reshape(1, 1, 1, 9)
    for kwargs in (dict(dilation=(1, 2**20), padding=(0, 2**22)),
                   dict(dilation=(1, 2**18), padding=(0, 2**20), stride=(1, 2**19))):
        for mode in ("replicate", "zeros"):
            got = fastcorr.conv2d(x, w, padding_mode=mode, **kwargs)
            expected = fastcorr.conv2d(x, w, padding_mode=mode, backend="reference", **kwargs)
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fillvalue", [10**400, "x", [1, 2], object()])
def test_bad_fill_values(fillvalue):
    with pytest.raises(ValueError, match="fillvalue"):
        fastcorr.correlate2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=fillvalue)


@pytest.mark.parametrize("shape", [(2**40, 2**40, 1, 1), (1, 1, -1, 3), "abc", 5])
def test_bad_shapes_for_the_gradient_functions(shape):
    with pytest.raises((ValueError, TypeError), match="input_shape"):
        fastcorr.conv2d_input(shape, np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)))


# --------------------------------------------------------------------------- non-finite weights


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("bad", [-np.inf, np.inf, np.nan], ids=["-inf", "inf", "nan"])
def test_non_finite_weights_give_the_references_input_gradient(bad, mode):
    """Reported: with a kernel holding -inf, correlate2d_backward put 22 NaNs in the input
    gradient where the reference and torch autograd give finite values (the zeros framing
    the output gradient multiplied the infinite weight)."""
    rng = np.random.default_rng(3)
    a, k = rng.standard_normal((7, 9)), rng.standard_normal((3, 4))
    k[1, 2] = bad
    g = rng.standard_normal(fastcorr.correlate2d(a, k, mode, backend="reference").shape)
    expected = fastcorr.correlate2d_backward(g, a, k, mode, backend="reference")
    with fastcorr.trace() as ran:
        got = fastcorr.correlate2d_backward(g, a, k, mode)
    assert "fft" not in {r.implementation for r in ran}
    for x, y in zip(got, expected):
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_non_finite_weights_in_depthwise_gradients_match_torch(padding_mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 9))
    w = rng.standard_normal((3, 1, 3, 3))
    w[1, 0, 0, 2] = -np.inf
    kwargs = dict(padding=1, groups=3, padding_mode=padding_mode)
    y = torch_conv2d(x, w, **kwargs)
    g = rng.standard_normal(y.shape)
    xt = torch.tensor(x, requires_grad=True)
    layer = torch.nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False, padding_mode=padding_mode,
                            dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
    layer(xt).backward(torch.from_numpy(g))
    got, _, _ = fastcorr.conv2d_backward(g, x, w, **kwargs)
    expected = xt.grad.numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("name", ["planes", "rows", "gemm", "shifts", "flat-forward"])
@pytest.mark.parametrize("bad", [np.inf, np.nan], ids=["inf", "nan"])
@pytest.mark.parametrize("stride", [1, 2])
def test_non_finite_inputs_give_the_references_weight_gradient(bad, name, stride):
    """Found while stacking planes: with an infinity in an input's first column, the depthwise
    weight gradient ("planes" at unit strides) gave NaN for the taps that never read it, where
    the reference and torch give finite sums (the zeros between the output gradient's rows
    multiplied it). Every weight-gradient implementation, samples at the edges and inside,
    at unit strides and at stride 2 (where "planes" stores the stride phases)."""
    rng = np.random.default_rng(6)
    for where in [(0, 3, 0), (1, 0, 7), (0, 7, 7), (1, 4, 4)]:
        x = rng.standard_normal((2, 4, 8, 8))
        x[where[0], 1, where[1], where[2]] = bad
        groups, c_in_g = (4, 1) if name in ("planes", "flat-forward") else (1, 4)
        w = rng.standard_normal((4, c_in_g, 3, 3))
        size = (8 - 3) // stride + 1
        g = rng.standard_normal((2, 4, size, size))
        expected = fastcorr.conv2d_backward(g, x, w, groups=groups, stride=stride,
                                            backend="reference")[1]
        operation = "forward" if name == "flat-forward" else "grad_weight"
        with _select.force("cpu", **{operation: name.replace("-forward", "")}):
            got = fastcorr.conv2d_backward(g, x, w, groups=groups, stride=stride)[1]
            y = fastcorr.conv2d(x, w, groups=groups, stride=stride)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
        ref_y = fastcorr.conv2d(x, w, groups=groups, stride=stride, backend="reference")
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref_y))
        np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_fft_refuses_non_finite_inputs_and_auto_computes_them_directly():
    a = np.ones((300, 300))
    a[5, 5] = np.nan
    k = np.ones((31, 31))
    with pytest.raises(ValueError, match="method='fft'.*NaN or infinity"):
        fastcorr.correlate2d(a, k, "same", method="fft")
    with fastcorr.trace() as ran:
        got = fastcorr.correlate2d(a, k, "same")
    assert [r.method for r in ran] == ["direct"]
    assert fastcorr.choose_method(a, k, "same") == "direct"
    assert np.isnan(got).sum() == 21 * 21  # exactly the outputs whose taps reach (5, 5)
    assert fastcorr.choose_method(np.ones((300, 300)), k, "same") == "fft"


# --------------------------------------------------------------------------- the compile cache


def _python(code, env=None, timeout=600, cwd=None, keep_cache=False):
    """Run ``code`` in a new process, by default without this process's cache settings."""
    drop = ("PYTHONPATH",) if keep_cache else ("FASTCORR_CACHE_DIR", "NUMBA_CACHE_DIR",
                                               "PYTHONPATH")
    environment = {k: v for k, v in os.environ.items() if k not in drop}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or "/")


CALL = ("import warnings, numpy as np, fastcorr\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    y = fastcorr.correlate2d(np.arange(30.0).reshape(5, 6), np.ones((2, 3)), 'same')\n"
        "    z = fastcorr.conv2d(np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), padding=1)\n"
        "assert float(y.sum()) == 2280.0 and float(z.sum()) == 1014.0, (y.sum(), z.sum())\n"
        "from fastcorr.cpu._jit import CacheWarning\n"
        "ours = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]\n"
        "print('warnings', len(ours), *ours, sep='\\n')\n"
        "from fastcorr.cpu import rows\n"
        "print('misses', sum(rows.correlate_rows.stats.cache_misses.values()))\n")


def _warnings(out):
    return int(out.split("warnings\n")[1].split()[0])


def _misses(out):
    return int(out.split("misses ")[1].split()[0])


def _copy_package(folder):
    target = folder / "site"
    shutil.copytree(REPO_ROOT / "fastcorr", target / "fastcorr",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    return target


def _read_only(path):
    """Make ``path`` (a folder, and the folders in it) unwritable, even for root."""
    folders = [path] + [p for p in path.rglob("*") if p.is_dir()]
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i"] + [str(p) for p in folders], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a folder read-only as root here: {done.stderr.decode()}")
    else:
        for p in folders:
            p.chmod(0o555)
    probe = path / "probe"
    try:
        probe.write_text("")
    except OSError:
        return
    probe.unlink()
    pytest.skip("this file system ignores read-only folders")


def _writable_again(path):
    folders = [path] + [p for p in path.rglob("*") if p.is_dir()]
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i"] + [str(p) for p in folders], capture_output=True)
    else:
        for p in folders:
            p.chmod(0o755)


@pytest.fixture
def sandbox(tmp_path):
    yield tmp_path
    _writable_again(tmp_path)


def test_a_read_only_install_computes_in_memory_with_one_warning(sandbox):
    """Reported: with the package folder and HOME read-only every call raised "cannot cache
    function ... no locator available"; with only the cache folder read-only each process
    recompiled and left a temporary folder per kernel size behind."""
    site = _copy_package(sandbox)
    archive = sandbox / "fastcorr.zip"  # a package in a zip: its folder cannot be written
    with zipfile.ZipFile(archive, "w") as z:
        for path in (site / "fastcorr").rglob("*.py"):
            z.write(path, path.relative_to(site))
    home, tmp = sandbox / "home", sandbox / "tmp"
    home.mkdir()
    tmp.mkdir()
    _read_only(home)
    env = dict(PYTHONPATH=str(archive), HOME=str(home), XDG_CACHE_HOME=str(home / "cache"),
               TMPDIR=str(tmp))
    done = _python(CALL, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _warnings(done.stdout) == 1, done.stdout + done.stderr
    assert "compiled in memory" in done.stdout
    assert list(tmp.iterdir()) == []  # no temporary folders left behind


def test_a_cache_filled_beforehand_and_made_read_only_is_used(sandbox):
    site = _copy_package(sandbox)
    cache = sandbox / "cache"
    env = dict(PYTHONPATH=str(site), FASTCORR_CACHE_DIR=str(cache))
    first = _python(CALL, env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert _misses(first.stdout) > 0
    _read_only(cache)
    second = _python(CALL, env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _misses(second.stdout) == 0 and _warnings(second.stdout) == 0, second.stdout


def test_a_changed_helper_module_recompiles_the_kernels_that_inline_it(sandbox):
    """Found while timing: a kernel whose own file was unchanged kept its compiled code after
    a helper it inlines (in cpu/_indexing.py) changed, so the old helper went on running.
    Every module of the package now stamps every kernel's cache entry."""
    site = _copy_package(sandbox)
    cache = sandbox / "cache"
    env = dict(PYTHONPATH=str(site), FASTCORR_CACHE_DIR=str(cache))
    assert _misses(_python(CALL, env).stdout) > 0
    assert _misses(_python(CALL, env).stdout) == 0
    helpers = site / "fastcorr" / "cpu" / "_indexing.py"
    helpers.write_text(helpers.read_text() + "\n# changed\n")
    changed = _python(CALL, env)
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert _misses(changed.stdout) > 0  # recompiled, not loaded
    assert _misses(_python(CALL, env).stdout) == 0


def test_damaged_cache_entries_are_rebuilt(sandbox):
    """Reported: a truncated .nbi/.nbc raised UnpicklingError in every later process (and a
    generated kernel file with invalid UTF-8 raised UnicodeDecodeError; no kernel file is
    generated at run time any more)."""
    site = _copy_package(sandbox)
    cache = sandbox / "cache"
    env = dict(PYTHONPATH=str(site), FASTCORR_CACHE_DIR=str(cache))
    assert _python(CALL, env).returncode == 0
    index = sorted(cache.rglob("rows.correlate_rows-*.nbi"))
    data = sorted(cache.rglob("taps_generated.correlate_w3-*.nbc")) or sorted(
        cache.rglob("*.nbc"))
    assert index and data
    index[0].write_bytes(index[0].read_bytes()[:20])  # truncated
    data[0].write_bytes(b"\xff\xfe not a pickle")  # garbage
    damaged = _python(CALL, env)
    assert damaged.returncode == 0, damaged.stderr[-3000:]
    assert "discarded an unreadable compile cache entry" in damaged.stdout, damaged.stdout
    healed = _python(CALL, env)
    assert healed.returncode == 0, healed.stderr[-3000:]
    assert _warnings(healed.stdout) == 0 and _misses(healed.stdout) == 0, healed.stdout


def test_processes_compiling_at_once_leave_a_usable_cache(sandbox):
    site = _copy_package(sandbox)
    cache = sandbox / "cache"
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR",)}
    env.update(PYTHONPATH=str(site), FASTCORR_CACHE_DIR=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", CALL], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd="/") for _ in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    after = _python(CALL, dict(PYTHONPATH=str(site), FASTCORR_CACHE_DIR=str(cache)))
    assert after.returncode == 0 and _misses(after.stdout) == 0, after.stdout + after.stderr


def test_a_warm_cache_compiles_nothing_on_first_calls():
    """After ``fastcorr warmup``, a new process's first calls of every kind load every kernel
    from the cache: no CPU kernel of fastcorr compiles. (The cache is the one the rest of the
    suite uses, so the kernels warmed here are not compiled again elsewhere.)"""
    env = dict(PYTHONPATH=str(REPO_ROOT))
    warm = _python("import fastcorr.cli as c; raise SystemExit(c.main(['warmup', '--quiet']))",
                   env, keep_cache=True)
    assert warm.returncode == 0, warm.stderr[-3000:]
    code = ("import numpy as np, fastcorr, sys\n"
            "sys.path.insert(0, %r)\n"
            "from test_threads import _workloads\n"
            "_workloads(np.random.default_rng(0))()\n"
            "fastcorr.correlate2d(np.ones((50, 60)), np.ones((3, 11)))\n"
            "fastcorr.conv2d(np.ones((2, 3, 9, 9)), np.ones((6, 1, 7, 2)), groups=3, "
            "padding=1, stride=(2, 1))\n"
            "fastcorr.conv2d_weight(np.ones((1, 1, 300, 300), np.float32), (1, 1, 3, 3), "
            "np.ones((1, 1, 300, 300), np.float32), padding=1, method='direct')\n"
            "fastcorr.conv2d_backward(np.ones((2, 8, 5, 5)), np.ones((2, 8, 9, 9)), "
            "np.ones((8, 4, 3, 3)), groups=2, stride=2, padding=1)\n"
            "from numba.core.registry import CPUDispatcher\n"
            "misses = {}\n"
            "for name, module in list(sys.modules.items()):\n"
            "    if not name.startswith('fastcorr.cpu'):\n"
            "        continue\n"
            "    for attr, value in vars(module).items():\n"
            "        if isinstance(value, CPUDispatcher) and value.stats.cache_misses:\n"
            "            misses[f'{name}.{attr}'] = dict(value.stats.cache_misses)\n"
            "print('compiled', misses)\n") % str(REPO_ROOT / "tests")
    done = _python(code, env, keep_cache=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "compiled {}", done.stdout


# --------------------------------------------------------------------------- buffer bounds

BOUNDS = """
import numpy as np, fastcorr
from fastcorr import _select, reference
rng = np.random.default_rng(3)
cases = [((3, 2, 5, 6), (2, 1, 2, 2), dict(padding=(3, 3))),    # padding past the kernel
         ((3, 2, 5, 6), (2, 1, 2, 2), dict(padding=(4, 1))),
         ((2, 2, 1, 4), (2, 1, 5, 3), dict(padding=(4, 1))),    # one row, five rows of pad
         ((2, 2, 6, 3), (2, 1, 1, 4), dict(padding=(0, 5))),
         ((3, 4, 8, 9), (4, 2, 3, 3), dict(padding=2, dilation=(2, 1))),  # 2 channels a group
         ((3, 2, 9, 11), (2, 1, 5, 5), dict(padding=2, stride=2)),  # phases by a map
         ((2, 2, 7, 20), (2, 1, 3, 3), dict(padding=1, stride=(2, 3))),  # phases row by row
         ((2, 2, 9, 9), (2, 1, 3, 3), dict(padding=(3, 0), stride=2))]
for shape, wshape, kw in cases:
    x, w = rng.standard_normal(shape), rng.standard_normal(wshape)
    groups = shape[1] // wshape[1]
    expected = reference.conv2d(x, w, groups=groups, **kw)
    g = rng.standard_normal(expected.shape)
    with _select.force("cpu", forward="flat"):
        got = fastcorr.conv2d(x, w, groups=groups, **kw)
    assert np.allclose(got, expected, rtol=1e-12, atol=1e-12), (shape, wshape, kw)
    if groups == shape[1] and (kw.get("stride", 1) == 1 or kw.get("dilation", 1) == 1):
        with _select.force("cpu", grad_input="flat"):
            gx, _, _ = fastcorr.conv2d_backward(g, x, w, groups=groups,
                                                output_mask=(True, False, False), **kw)
        with _select.force("cpu", grad_input="scatter"):
            gx_ref, _, _ = fastcorr.conv2d_backward(g, x, w, groups=groups,
                                                    output_mask=(True, False, False), **kw)
        assert np.allclose(gx, gx_ref, rtol=1e-12, atol=1e-12), (shape, wshape, kw)
for shape, wshape, kw in [((2, 4, 9, 10), (4, 2, 3, 3), dict(padding=1, stride=2)),
                          ((1, 4, 12, 7), (6, 2, 2, 5), dict(padding=(0, 2), stride=(3, 2))),
                          ((2, 4, 5, 6), (4, 2, 1, 1), dict(stride=2))]:  # "phases"
    x, w = rng.standard_normal(shape), rng.standard_normal(wshape)
    groups = shape[1] // wshape[1]
    g = rng.standard_normal(reference.conv2d(x, w, groups=groups, **kw).shape)
    grads = []
    for name in ("phases", "scatter"):
        with _select.force("cpu", grad_input=name):
            grads.append(fastcorr.conv2d_backward(g, x, w, groups=groups,
                                                  output_mask=(True, False, False), **kw)[0])
    assert np.allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12), (shape, wshape, kw)
for mode in ("full", "same", "valid"):  # a one-row image framed by the fill value
    a, k = rng.standard_normal((1, 6)), rng.standard_normal((3, 4) if mode != "valid" else (1, 4))
    with _select.force("cpu", forward="flat"):
        got = fastcorr.correlate2d(a, k, mode, "fill", 2.5)
    assert np.allclose(got, reference.correlate2d(a, k, mode, "fill", 2.5), atol=1e-12)
print("in bounds")
"""


def test_flat_kernels_stay_inside_their_buffers(sandbox):
    """The "flat" kernels index their buffers by hand (shared frames, stride phases, the
    vector loops' overrun; "phases" runs them on plans with asymmetric padding and stores
    their results by hand); an index past a buffer had corrupted the heap silently. Here
    they run with Numba's bounds checks on (``NUMBA_BOUNDSCHECK=1``, compiled into a cache
    of their own) on the plans at the edges of those buffers: an index out of bounds is an
    ``IndexError``."""
    site = _copy_package(sandbox)
    env = dict(PYTHONPATH=str(site), FASTCORR_CACHE_DIR=str(sandbox / "cache"),
               NUMBA_BOUNDSCHECK="1")
    done = _python(BOUNDS, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "in bounds", done.stdout


# --------------------------------------------------------------------------- huge arrays


@pytest.mark.huge
def test_index_arithmetic_beyond_two_to_the_31_elements():
    """A 2**31 + 2**20 element float32 image (8 GiB, 16 GiB with its result): every index
    the kernels compute beyond 32 bits. The last rows are checked against NumPy."""
    h, w = 2**16, 2**15 + 16
    image = np.empty((h, w), dtype=np.float32)
    image[:] = np.arange(w, dtype=np.float32) % 7
    image[-3:] = np.arange(3 * w, dtype=np.float32).reshape(3, w) % 5
    kernel = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float32)
    with _select.force("cpu", forward="taps"):
        out = fastcorr.correlate2d(image, kernel, "valid")
    tail = image[-3:].astype(np.float64)
    expected = sum(kernel[p, q] * tail[p, q:q + w - 2] for p in range(3) for q in range(3))
    np.testing.assert_array_equal(out[-1], expected.astype(np.float32))
    assert out.shape == (h - 2, w - 2)
    del out
    with _select.force("cpu", forward="rows"):
        row = fastcorr.correlate2d(image[-3:], kernel, "valid")
    np.testing.assert_array_equal(row[0], expected.astype(np.float32))
