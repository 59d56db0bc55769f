"""The caller's device and stream on the GPU path (:mod:`fastcorr.cuda._caller`): the device a
call runs on, the stream it picks, the device-side waits for the operands' producers, torch's
allocator protected, results handed over to the caller's stream; operands it cannot read; the
streaming path's kept buffers.

The simulator has one device and no real streams, so the libraries' current streams and other
devices are played by stand-ins here (objects with the attributes fastcorr reads from torch
tensors and CuPy arrays), and events by a recorder: these tests check fastcorr's choices.
``python -m fastcorr.gpucheck`` checks the same behaviour with torch on a GPU.
"""

import os
import types

import numpy as np
import pytest
from cuda_helpers import to_host, tolerance
from numba import cuda

import fastcorr
from fastcorr import batch
from fastcorr.cuda import _arrays, _caller, _workspace

SimArray = type(cuda.device_array(1))
TORCH_STREAM = 1234

#: The stand-ins are simulator arrays; on a GPU gpucheck's "semantics" step checks the same
#: behaviour with torch and CuPy themselves.
stand_ins = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                               reason="stand-ins for torch and CuPy need the simulator's arrays")


class Stream:
    """A stream with a handle (the simulator's streams have none)."""

    def __init__(self, value):
        self.value = int(value)

    def __int__(self):
        return self.value

    def synchronize(self):
        pass


class FakeTensor(SimArray):
    """A CUDA tensor as fastcorr sees torch's: ``is_cuda``, ``device.index``,
    ``requires_grad``, ``record_stream``; its data a simulator array."""

    __module__ = "torch.fake"

    def __init__(self, ary, device=0, requires_grad=False):
        super().__init__(np.ascontiguousarray(ary))
        self.is_cuda = True
        self.device = types.SimpleNamespace(index=device, type="cuda")
        self.requires_grad = requires_grad
        self.recorded = []

    def record_stream(self, stream):
        self.recorded.append(stream)


def produced(ary, stream):
    """A device array whose version-3 interface says it was produced on ``stream``."""

    class Produced(SimArray):
        @property
        def __cuda_array_interface__(self):
            return {"version": 3, "stream": stream, "shape": self.shape,
                    "typestr": self.dtype.str, "strides": None, "data": (0, False)}

    return Produced(np.ascontiguousarray(ary))


@pytest.fixture
def events(monkeypatch):
    """Streams with handles for raw handles, torch's current stream on every device
    :data:`TORCH_STREAM`, and the events of device-side waits recorded as
    ``("record", handle)`` / ``("wait", handle)``."""
    log = []

    class Event:
        def record(self, stream=0):
            log.append(("record", _caller.handle(stream)))

        def wait(self, stream=0):
            log.append(("wait", _caller.handle(stream)))

    import torch

    monkeypatch.setattr(cuda, "external_stream", Stream)
    monkeypatch.setattr(cuda, "event", lambda timing=True: Event())
    monkeypatch.setattr(torch.cuda, "current_stream",
                        lambda device=None: types.SimpleNamespace(cuda_stream=TORCH_STREAM))
    monkeypatch.setattr(torch.cuda, "ExternalStream",
                        lambda handle, device=None: ("torch stream", handle))
    monkeypatch.setattr(torch.cuda, "default_stream", lambda device=None: ("torch default",))
    return log


def _layer(rng, dtype=np.float32):
    return (rng.standard_normal((2, 3, 5, 6)).astype(dtype),
            rng.standard_normal((4, 3, 3, 3)).astype(dtype))


def _views(*pairs):
    return [_arrays.read(a, name) for name, a in pairs]


@stand_ins
def test_a_torch_call_runs_on_torchs_current_stream(rng, events):
    x, w = _layer(rng)
    views = _views(("input", FakeTensor(x)), ("weight", FakeTensor(w)))
    with _arrays.Call(None, views) as call:
        assert int(call.stream) == TORCH_STREAM
        assert call.device == 0
    assert events == []  # nothing to wait for: torch's own stream
    assert all(view.like.recorded == [] for view in views)


@stand_ins
def test_an_explicit_stream_waits_for_torch_and_protects_its_memory(rng, events):
    x, w = _layer(rng)
    views = _views(("input", FakeTensor(x)), ("weight", FakeTensor(w)))
    with _arrays.Call(77, views) as call:
        assert int(call.stream) == 77
    # torch's stream waited for on the call's (once), then the other way round on the way out
    assert events == [("record", TORCH_STREAM), ("wait", 77), ("record", 77),
                      ("wait", TORCH_STREAM)]
    assert all(view.like.recorded == [("torch stream", 77)] for view in views)


@stand_ins
def test_the_default_stream_is_recorded_as_torchs_own(rng, events):
    """torch takes an odd handle for one of its own streams' ids: the legacy default stream
    (handle 1) must reach record_stream as torch.cuda.default_stream()."""
    x, _ = _layer(rng)
    views = _views(("input", FakeTensor(x)))
    with _arrays.Call(0, views):
        pass
    assert views[0].like.recorded == [("torch default",)]


@stand_ins
def test_an_error_inside_the_call_still_orders_and_protects(rng, events):
    x, _ = _layer(rng)
    views = _views(("input", FakeTensor(x)))
    with pytest.raises(RuntimeError, match="inside"):
        with _arrays.Call(77, views):
            raise RuntimeError("inside")
    assert views[0].like.recorded == [("torch stream", 77)]
    assert events[-2:] == [("record", 77), ("wait", TORCH_STREAM)]


@stand_ins
def test_a_device_out_chooses_the_stream_of_host_operands(rng, events):
    x, w = _layer(rng)
    out = FakeTensor(np.zeros((2, 4, 3, 4), np.float32))
    operands = (_arrays.read(x, "input"), _arrays.read(w, "weight"), None, out)
    with _arrays.Call(None, operands) as call:
        assert call.device == 0 and int(call.stream) == TORCH_STREAM


@stand_ins
def test_numba_results_stay_bound_to_the_calls_stream(rng, events):
    x, w = _layer(rng)
    got = fastcorr.correlate2d(produced(x[0, 0], 31), produced(w[0, 0], 31), "same")
    assert got.shape == (5, 6) and _caller.handle(got.stream) == 31  # reshaped, still bound
    np.testing.assert_allclose(to_host(got), fastcorr.correlate2d(x[0, 0], w[0, 0], "same"),
                               **tolerance(np.float32))


@stand_ins
def test_the_streaming_path_waits_for_the_weights_producer(rng, events):
    x, w = _layer(rng)
    got = batch.conv2d_stream(x, produced(w, 31), padding=1, chunk=1, streams=2)
    first = _caller.handle(_workspace.lanes().stream(0))
    assert events == [("record", 31), ("wait", first)]
    np.testing.assert_allclose(got, fastcorr.conv2d(x, w, padding=1), **tolerance(np.float32))


@stand_ins
def test_a_cupy_call_runs_on_cupys_current_stream(rng, events, monkeypatch):
    import sys

    current = types.SimpleNamespace(ptr=555)
    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(
        get_current_stream=lambda: current,
        Device=lambda device: __import__("contextlib").nullcontext()))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)

    class FakeCupy(SimArray):
        __module__ = "cupy._core"
        device = types.SimpleNamespace(id=0)

        @property
        def __cuda_array_interface__(self):  # CuPy names the current device's stream
            return {"version": 3, "stream": 999, "shape": self.shape,
                    "typestr": self.dtype.str, "strides": None, "data": (0, False)}

    x, _ = _layer(rng)
    with _arrays.Call(None, _views(("input", FakeCupy(x)))) as call:
        assert int(call.stream) == 555
    assert events == []
    with _arrays.Call(9, _views(("input", FakeCupy(x)))):
        pass  # waits for CuPy's current stream on the array's device, not the interface's
    assert events == [("record", 555), ("wait", 9), ("record", 9), ("wait", 555)]
    events.clear()
    current.ptr = 0  # CuPy's null stream: the legacy default stream
    with _arrays.Call(None, _views(("input", FakeCupy(x)))) as call:
        assert _caller.handle(call.stream) == _caller.handle(cuda.legacy_default_stream())


@stand_ins
def test_the_producers_stream_is_waited_for_on_the_device(rng, events):
    x, w = _layer(rng)
    expected = fastcorr.conv2d(x, w, padding=1)
    # without stream=: the call runs on the stream the interface names, nothing to wait for
    got = fastcorr.conv2d(produced(x, 31), cuda.to_device(w), padding=1)
    assert int(got.stream) == 31 and events == []
    np.testing.assert_allclose(to_host(got), expected, **tolerance(np.float32))
    # with stream=: that stream waits for the producer's (an event), the host does not
    got = fastcorr.conv2d(produced(x, 31), cuda.to_device(w), padding=1, stream=9)
    assert events == [("record", 31), ("wait", 9)]
    np.testing.assert_allclose(to_host(got), expected, **tolerance(np.float32))


@stand_ins
def test_results_are_handed_over_to_the_callers_stream(events):
    _caller.hand_over(FakeTensor(np.zeros(2)), 0, Stream(9))
    assert events == [("record", 9), ("wait", TORCH_STREAM)]
    events.clear()
    _caller.hand_over(FakeTensor(np.zeros(2)), 0, Stream(TORCH_STREAM))
    assert events == []  # the same stream: already in order


@stand_ins
def test_a_torch_out_is_returned_itself_and_handed_over(rng, events):
    x, w = _layer(rng)
    out = FakeTensor(np.zeros((2, 4, 3, 4), np.float32))
    assert fastcorr.conv2d(cuda.to_device(x), cuda.to_device(w), out=out, stream=9) is out
    assert events[-2:] == [("record", 9), ("wait", TORCH_STREAM)]
    np.testing.assert_allclose(to_host(out), fastcorr.conv2d(x, w), **tolerance(np.float32))


@stand_ins
def test_torch_results_come_from_torchs_allocator(rng, events, monkeypatch):
    import torch

    made = []

    def empty(shape, dtype=None, device=None):
        made.append(FakeTensor(np.full(shape, np.nan, np.dtype(str(dtype).split(".")[1]))))
        return made[-1]

    monkeypatch.setattr(torch, "empty", empty)
    x, w = _layer(rng)
    g = rng.standard_normal((2, 4, 3, 4)).astype(np.float32)
    got = fastcorr.conv2d(FakeTensor(x), FakeTensor(w), stream=9)
    assert [got] == made and got.dtype == np.float32
    np.testing.assert_allclose(to_host(got), fastcorr.conv2d(x, w), **tolerance(np.float32))
    # the gradients too, handed over once after the call's last kernel
    events.clear()
    grads = fastcorr.conv2d_backward(FakeTensor(g), FakeTensor(x), FakeTensor(w), stream=9)
    assert list(grads) == made[1:]
    assert events[-2:] == [("record", 9), ("wait", TORCH_STREAM)]
    for got, expected in zip(grads, fastcorr.conv2d_backward(g, x, w)):
        np.testing.assert_allclose(to_host(got), expected, **tolerance(np.float32))
    # a reversed result (a convolution's kernel gradient) is copied into a new torch array
    gi = rng.standard_normal((5, 6)).astype(np.float32)
    image, kernel = x[0, 0], w[0, 0]
    got = fastcorr.convolve2d_backward(FakeTensor(gi), FakeTensor(image), FakeTensor(kernel),
                                       "same")
    assert all(any(np.shares_memory(r._ary, m._ary) for m in made) for r in got)
    for r, expected in zip(got, fastcorr.convolve2d_backward(gi, image, kernel, "same")):
        np.testing.assert_allclose(to_host(r), expected, **tolerance(np.float32))


@stand_ins
def test_the_default_stream_has_a_handle_version_3_allows(monkeypatch):
    legacy = Stream(_caller.LEGACY_STREAM)
    monkeypatch.setattr(cuda, "legacy_default_stream", lambda: legacy)
    assert _arrays.as_stream(None) is legacy
    assert _arrays.as_stream(0) is legacy
    assert _caller.from_handle(_caller.LEGACY_STREAM) is legacy


@stand_ins
def test_operands_on_different_devices_are_refused(rng):
    x, w = _layer(rng)
    with pytest.raises(ValueError, match=r"input on cuda:1, weight on cuda:0"):
        fastcorr.conv2d(FakeTensor(x, device=1), cuda.to_device(w))
    out = FakeTensor(np.empty((2, 4, 3, 4), np.float32), device=1)
    with pytest.raises(ValueError, match=r"out: on cuda:1, but the operands are on cuda:0"):
        fastcorr.conv2d(cuda.to_device(x), cuda.to_device(w), out=out)


@stand_ins
def test_host_operands_join_the_device_operands_device(rng, events):
    x, w = _layer(rng)
    views = [_arrays.read(x, "input"), _arrays.read(FakeTensor(w, device=0), "weight")]
    with _arrays.Call(None, views) as call:
        assert call.device == 0 and int(call.stream) == TORCH_STREAM


@stand_ins
@pytest.mark.parametrize("name", ["input", "weight"])
def test_a_torch_tensor_that_requires_grad_is_a_type_error(rng, name):
    x, w = _layer(rng)
    args = {"input": x, "weight": w}
    args[name] = FakeTensor(args[name], requires_grad=True)
    with pytest.raises(TypeError, match=rf"{name}: the torch tensor requires grad.*detach"):
        fastcorr.conv2d(args["input"], args["weight"], backend="cuda")


@stand_ins
def test_an_unsupported_torch_dtype_is_a_type_error(rng):
    x, w = _layer(rng)

    class BFloat16(FakeTensor):
        __module__ = "torch.fake"
        dtype = "torch.bfloat16"

    with pytest.raises(TypeError, match="input: torch dtype bfloat16 is not supported"):
        fastcorr.conv2d(BFloat16(x), w)


@stand_ins
def test_an_interface_that_raises_is_a_type_error(rng):
    x, w = _layer(rng)

    class Broken(SimArray):
        @property
        def __cuda_array_interface__(self):
            raise KeyError("no typestr")

    with pytest.raises(TypeError, match=r"weight: its __cuda_array_interface__ could not be "
                                        r"read \(KeyError"):
        fastcorr.conv2d(x, Broken(w))


@pytest.fixture
def host_allocations(monkeypatch):
    """Count pinned and device allocations made through Numba."""
    counts = {"pinned_array": 0, "device_array": 0}
    for name in counts:
        original = getattr(cuda, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(cuda, name, counted)
    return counts


def test_the_streaming_path_keeps_its_buffers(rng, host_allocations):
    x = rng.standard_normal((5, 2, 5, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    expected = fastcorr.conv2d(x, w, padding=1)
    _workspace.release()
    for _ in range(2):  # the first call makes the buffers
        for name in host_allocations:
            host_allocations[name] = 0
        got = batch.conv2d_stream(x, w, padding=1, backend="cuda", chunk=2, streams=2)
        np.testing.assert_allclose(got, expected, **tolerance(np.float32))
    assert host_allocations == {"pinned_array": 0, "device_array": 0}
    held = _workspace.held_bytes(), _workspace.held_pinned_bytes()
    assert min(held) > 0
    assert fastcorr.release_gpu_memory() == held
    assert _workspace.held_pinned_bytes() == 0 and _workspace.held_bytes() == 0


@pytest.mark.parametrize("shape", [(1, 3, 40), (7, 2, 3), (1, 1, 9)])
def test_host_copy_converts_and_copies_everything(rng, shape):
    from fastcorr.cuda.stream import host_copy

    src = rng.standard_normal(shape)[..., ::-1]  # not contiguous
    dst = np.zeros(shape, np.float32)
    with fastcorr.num_threads(2):
        host_copy(dst, src)
    np.testing.assert_array_equal(dst, src.astype(np.float32))
