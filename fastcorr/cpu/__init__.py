"""The CPU backend: tables of named implementations, and the choice among them.

=============  ==========================================================================
operation      implementations (in :data:`TABLES`)
=============  ==========================================================================
forward        ``rows`` (any plan), ``taps`` (one input channel per group: single-channel
               images, depthwise layers), ``flat`` (the same, for small planes; grouped
               layers with few channels per group), ``gemm``
               (im2col + BLAS: dense and grouped layers), ``pointwise`` (1x1, no padding),
               ``winograd`` and ``winograd4`` (3x3, unit strides and dilations: F(2x2, 3x3)
               and F(4x4, 3x3)), ``fft`` (stride 1)
grad_input     ``scatter`` (any plan), ``taps`` (depthwise, unit strides, finite weights),
               ``flat`` (any plan at unit strides, for grouped layers with few channels per
               group too; depthwise at strides with zero padding, by stride phases),
               ``gemm``, ``pointwise``, ``winograd``, ``winograd4``, ``fft``
grad_weight    ``rows`` (any plan), ``planes`` (one input channel per group), ``gemm``,
               ``shifts`` (any plan: products over views of the stride phases; grouped
               layers with few channels per group), ``pointwise``, ``winograd``,
               ``winograd4``, ``fft``
grad_bias      ``sums``
=============  ==========================================================================

``method="direct"`` picks the direct implementation that suits the layer's shape;
``method="fft"`` the FFT; ``"auto"`` compares the predictions of :mod:`fastcorr.cpu.cost`
(the FFT only for finite inputs), and takes Winograd's F(2x2, 3x3)
(:mod:`fastcorr.cpu.winograd`) or F(4x4, 3x3) (:mod:`fastcorr.cpu.winograd4`, where its tiles
are many for the channels) for stride-1 3x3 layers with enough channels per group (finite
inputs). Every direct implementation sums each output's terms in
one fixed order; "rows" and "taps" in the same order, so they agree bitwise.

Kernels compile on first use, never at import. All of them run on fastcorr's own thread pool
(:mod:`fastcorr.cpu._pool`).
"""

import importlib

import numpy as np

from .. import _host, _memory, config, threads
from .._select import Implementation, Table, first_supported, unsupported
from . import _pool

NAME = "cpu"
read = _host.read
check_out = _host.check_out
Call = _host.Call


def stream_forward(call, plan, x, weight, bias, out, per_chunk, streams, update, method):
    """The forward pass of a batch chunk by chunk (see :mod:`fastcorr._host`)."""
    import sys

    return _host.stream_forward(sys.modules[__name__], call, plan, x, weight, bias, out,
                                per_chunk, streams, update, method)


# --------------------------------------------------------------------------- the kernels


def _rows_forward(x, weight, bias, out, plan):
    from .rows import correlate_rows

    c_out, c_in_g, kh, kw = plan.weight_shape
    if bias is None:
        bias = np.zeros(c_out, dtype=plan.dtype)
    co_block = min(config.CPU_OUT_CHANNEL_BLOCK if c_in_g > 1 else 1, c_out // plan.groups)
    n_blocks = -(-(c_out // plan.groups) // co_block)
    tasks = plan.out_shape[0] * plan.groups * n_blocks * plan.out_shape[2]
    _pool.run(correlate_rows, tasks, x, weight, bias, out, *_geometry(plan),
              plan.dtype.type(plan.fill), plan.groups, co_block,
              np.full(plan.input_shape[3], plan.fill, dtype=plan.dtype),
              work=out.size * c_in_g * kh * kw)
    return out


def _geometry(plan):
    """The stride, dilation and padding arguments the general kernels take, in order."""
    return (plan.stride[0], plan.stride[1], plan.dilation[0], plan.dilation[1], plan.pad_top,
            plan.pad_left, plan.pad_mode)



def _lazy(module, name):
    """``module.name`` called through a wrapper that imports the module on first use (the
    kernels' modules are imported when a kernel is first needed, never at import)."""
    found = []

    def call(*args):
        if not found:  # (looking the module up each call cost a small call 4 us)
            found.append(getattr(importlib.import_module(f"{__name__}.{module}"), name))
        return found[0](*args)

    call.__name__ = f"{module}.{name}"
    return call


def _scatter_grad_input(grad_out, weight, grad_x, plan):
    from .backward import grad_input_planes

    c_in = plan.input_shape[1]
    kh, kw = plan.weight_shape[2:]
    _pool.run(grad_input_planes, plan.input_shape[0] * c_in, grad_out, weight, grad_x,
              *_geometry(plan), plan.groups,
              work=grad_out.size * plan.weight_shape[1] * kh * kw)
    return grad_x



def _rows_grad_weight(grad_out, x, grad_w, plan):
    from .backward import grad_weight_rows
    from .depthwise import _sum_chunks

    per_chunk = config.CPU_GRAD_WEIGHT_CHUNK_ROWS
    rows = plan.out_shape[0] * plan.out_shape[2]
    partial = _memory.empty((-(-rows // per_chunk),) + grad_w.shape, dtype=plan.dtype)
    kh, kw = plan.weight_shape[2:]
    _pool.run(grad_weight_rows, partial.shape[0] * grad_w.shape[0] * grad_w.shape[1], grad_out,
              x, partial, *_geometry(plan), plan.dtype.type(plan.fill), plan.groups, per_chunk,
              work=grad_out.size * plan.weight_shape[1] * kh * kw)
    return _sum_chunks(partial, grad_w)



def _sums_grad_bias(grad_out, grad_b, plan):
    from .backward import channel_sums

    # a row's worth of sums (the plane row by row), 16 on narrow planes, whose rows are too
    # short for a vector loop (a 7x7 plane fills three blocks of 16 and part of a fourth;
    # Zen 4, float32, batch 8: 960 channels on 7^2 1.9x faster, 256 on 28^2 2.2x)
    width = grad_out.shape[3]
    lanes = width if width >= 32 else 16
    n, c, h, w = grad_out.shape
    _pool.run(channel_sums, c, grad_out.reshape(n * c, h * w), grad_b, work=grad_out.size,
              scratch=lambda: np.empty(lanes, dtype=grad_out.dtype))
    return grad_b






# --------------------------------------------------------------------------- the choice


def uses_gemm(plan):
    """Whether a layer is dense enough for im2col + BLAS: a deep reduction per output
    (``C_in/groups * kH * kW``) and several output channels per group."""
    c_out, c_in_g, kh, kw = plan.weight_shape
    return (c_in_g * kh * kw >= config.CPU_GEMM_MIN_DEPTH
            and c_out // plan.groups >= config.CPU_GEMM_MIN_OUT_CHANNELS)


def _auto_fft(table, plan, operands, direct):
    """Whether "auto" takes the FFT: supported, finite inputs, predicted faster."""
    from . import cost

    if table["fft"].why_not(plan) is not None:
        return False
    if not cost.fft_predicted_faster(plan, direct, threads.get_num_threads(), table.operation):
        return False
    return operands is None or operands.finite()


def _auto_winograd(table, plan, operands):
    """Whether "auto" takes Winograd's F(2x2, 3x3): a dense or grouped stride-1 3x3 layer with
    enough channels per group (fewer are faster through im2col), finite operands. Measured
    on Zen 4, float32, against im2col + BLAS: 1.1-1.9x for 16-512 channels at batch 8
    (forward and input gradient), 1.0-1.4x for groups of 16 channels, 0.9-1.0x for groups of
    4; weight gradients 1.1-2.5x, 7x7 planes included (512 channels: 28 -> 17 ms)."""
    if (table["winograd"].why_not(plan) is not None or not uses_gemm(plan)
            or (table.operation == "forward" and _flat_groups(plan))
            or (table.operation == "grad_input" and _flat_groups_input(plan)
                and (operands is None or operands.weight_finite()))
            or (table.operation == "grad_weight" and _shifts_groups(plan))):
        return False
    c_out, c_in_g = plan.weight_shape[:2]
    if min(c_in_g, c_out // plan.groups) < config.CPU_WINOGRAD_MIN_CHANNELS:
        return False
    return operands is None or operands.finite()


def _winograd4_pays(table, plan):
    """Whether F(4x4, 3x3) beats F(2x2, 3x3): when its 4x4 tiles are at least as many as the
    channels (twice as many for the weight gradient). It halves the products' work, but its
    transforms cost more a tile (its input transform's loads do not vectorize), and its
    transformed weights (36 planes of C_out x C_in) are 2.25x F(2x2)'s, which dominates when
    the tiles are few. Measured, Zen 4, float32, batch 8, F(2x2) time / F(4x4) time, forward:
    64 channels on 56^2 0.89-1.26x, 128 on 28^2 1.08-1.35x, 256 on 28^2 1.28-1.53x, 128 on
    14^2 1.01-1.15x; 256 on 14^2 (tiles = channels / 2) 0.99-1.09x, 512 on 7^2 0.58-0.81x;
    weight gradient: 128 on 28^2 1.15-1.32x, 64 on 28^2 1.24x, 32 on 56^2 1.09-1.52x, 64 on
    56^2 0.83-1.03x; 128 on 14^2 (tiles = channels) 0.86-0.91x, 256 on 14^2 0.70-0.92x."""
    extent = plan.input_shape if table.operation == "grad_input" else plan.out_shape
    n, _, h, w = extent
    c_out, c_in_g = plan.weight_shape[:2]
    tiles = n * -(-h // 4) * -(-w // 4)
    per_channel = 2 if table.operation == "grad_weight" else 1
    return tiles >= per_channel * min(c_in_g, c_out // plan.groups)


def _choose(direct_order):
    """A choose function: ``direct_order(plan, operands)`` lists the direct candidates in
    order of preference (the first that can compute the plan runs)."""

    def choose(plan, method, operands, *, table):
        if method == "fft":
            reason = table["fft"].why_not(plan)
            if reason:
                raise unsupported(method, NAME, table.operation, reason)
            if operands is not None:
                operands.check_finite()
            return "fft"
        direct = first_supported(table, direct_order(plan, operands), plan)
        if method == "auto" and _auto_fft(table, plan, operands, direct):
            return "fft"
        if method == "auto" and _auto_winograd(table, plan, operands):
            return "winograd4" if _winograd4_pays(table, plan) else "winograd"
        return direct

    return choose


def _flat_pays(plan, shape):
    """Whether "flat" beats "taps" (one input channel per group): at unit strides on planes of
    at most CPU_FLAT_MAX_PLANE pixels, and at a column stride of 2 (with a row stride of 1
    or 2) on any plane. Measured, Zen 4, float32, batch 8, taps -> flat, ms: 3x3/2 on
    32 x 224^2 8.9-9.9 -> 5.0-5.2, 7x7/2 on 64 x 112^2 8.6-9.8 -> 4.6-5.1, 5x5/2 on
    672 x 14^2 2.6-2.8 -> 2.2; a row stride alone (taps computes only the rows it needs)
    0.34-0.42 -> 0.50, stride 3 1.4 -> 2.4-2.6."""
    if plan.stride == (1, 1):
        return shape[2] * shape[3] <= config.CPU_FLAT_MAX_PLANE
    return _flat_stride(plan)


def _flat_stride(plan):
    """A stride "flat" computes faster than the others: a column stride of 2, with a row
    stride of 1 or 2 (its phases; a row stride alone "taps" computes without waste)."""
    sh, sw = plan.stride
    return sw == 2 and sh <= 2


def _flat_groups(plan):
    """Grouped layers with few input channels per group (ResNeXt's 4 and 8): "flat" sums
    each group's planes tap by tap, where im2col multiplied many small matrices (Zen 4,
    float32, batch 8, gemm -> flat, ms: 128 channels on 56^2 in 32 groups 11.8-12.5 -> 4.3,
    256 on 56^2 in 32 groups at stride 2 11.7-12.7 -> 6.0, 64 in 8 groups 6.8 -> 5.9, 256 on
    14^2 in 16 groups 3.6 -> 1.8-1.9; a dense layer of 16 channels 3.3 -> 6.0)."""
    c_in_g, kh, kw = plan.weight_shape[1:]
    return (plan.groups > 1 and 1 < c_in_g <= config.CPU_FLAT_MAX_GROUP_CHANNELS
            and kh * kw > 1 and (plan.stride == (1, 1) or _flat_stride(plan)))


def _forward_order(plan, operands):
    if plan.weight_shape[1] == 1:
        return ("flat", "taps", "rows") if _flat_pays(plan, plan.out_shape) else ("taps", "rows")
    if _flat_groups(plan):
        return ("flat",)
    return ("pointwise", "gemm") if uses_gemm(plan) else ("rows",)


def _flat_groups_input(plan):
    """Grouped layers whose input gradient "flat" computes faster than im2col at unit strides:
    the forward with the transposed kernels, 2-16 channels per group both ways (Zen 4,
    float32, batch 8, 3x3, gemm -> flat, ms: 128 channels on 56^2 in 32 groups 11.9 -> 4.1,
    256 on 14^2 in 16 groups (Winograd) 6.4 -> 1.8)."""
    return plan.stride == (1, 1) and _transposed_forward_pays(plan)


def _transposed_forward_pays(plan):
    """Grouped layers whose input gradient pays as "flat" forwards of the output gradient
    with each group's kernels transposed: 2-16 channels per group both ways, a kernel larger
    than 1x1 (at unit strides one forward, :func:`_flat_groups_input`; at strides one a
    stride phase, :func:`_phases_groups`)."""
    c_out, c_in_g, kh, kw = plan.weight_shape
    return (plan.groups > 1 and kh * kw > 1
            and 1 < c_out // plan.groups <= config.CPU_FLAT_MAX_GROUP_CHANNELS
            and c_in_g <= config.CPU_FLAT_MAX_GROUP_CHANNELS)


def _phases_groups(plan):
    """Strided grouped layers with few channels per group (ResNeXt's 3x3/2), whose input
    gradient "phases" computes as a "flat" forward per stride phase of the input, where
    im2col's col2im added short strided rows back tap by tap (Zen 3, float32, batch 8, ms,
    gemm -> phases: 256 channels on 56^2 in 32 groups, 3x3/2 24.5 -> 8.2, 128 in 32 groups
    12.2 -> 7.0, 64 on 28^2 in 16 groups 5x5/2 9.6 -> 2.0; dense layers lose, 3x3/2 64 -> 128
    on 56^2 14.6 -> 26)."""
    return plan.stride != (1, 1) and _transposed_forward_pays(plan)


def _grad_input_order(plan, operands):
    # "taps" and "flat" multiply each weight by the zeros framing the output gradient: 0 * inf
    finite_weights = operands is None or operands.weight_finite()
    if finite_weights and _flat_groups_input(plan):
        return ("flat", "gemm")
    if finite_weights and _phases_groups(plan):
        return ("phases", "gemm")
    if uses_gemm(plan):
        return ("pointwise", "gemm")
    if not finite_weights:
        return ("scatter",)
    if plan.stride != (1, 1):
        # "flat" by stride phases (zero padding, unit dilations). Measured, Zen 4, float32,
        # batch 8, scatter -> flat, ms: 5x5/2 at 672 channels on 14^2 4.0 -> 1.2, at 240 on
        # 28^2 2.9 -> 0.8, 7x7/2 at 64 on 112^2 17.2 -> 4.4, 3x3/2 at 96 on 112^2 9.9 -> 7.9,
        # 5x5/3 at 672 on 14^2 3.3 -> 0.8; a row stride alone 1.06 -> 1.08 (3x3, 96 on 56^2)
        return ("flat", "scatter")
    if _flat_pays(plan, plan.input_shape):
        return ("flat", "taps", "scatter")
    return ("taps", "scatter")


def _shifts_groups(plan):
    """Grouped layers with few input channels per group (2 to CPU_FLAT_MAX_GROUP_CHANNELS),
    whose weight gradient "shifts" computes from views of the stride phases faster than
    im2col (which gathers short rows and multiplies a small matrix a group) and Winograd.
    Measured, Zen 4, float32, batch 8, 3x3, ms, gemm (or auto's Winograd) -> shifts: 128
    channels on 56^2 in 32 groups 9.4-11.4 -> 5.6-7.2, 256 on 56^2 in 32 groups at stride 2
    16.2-21.8 -> 12.5-13.4, 64 on 56^2 in 8 groups (Winograd F(4x4)) 17.6 -> 4.9-5.8, 64 on
    28^2 in 8 groups (F(4x4)) 3.8 -> 1.3, 256 on 14^2 in 16 groups (F(4x4)) 9.1 -> 2.6-3.6;
    24 channels a group, 96 on 14^2 in 4 groups 2.7 -> 3.1; dense layers lose (3x3/2 64 ->
    128 on 56^2 11.9-13.0 -> 11.6-13.6, 256 -> 512 on 14^2 8.0-8.3 -> 10-13)."""
    c_in_g, kh, kw = plan.weight_shape[1:]
    return (plan.groups > 1 and 1 < c_in_g <= config.CPU_FLAT_MAX_GROUP_CHANNELS
            and kh * kw > 1 and uses_gemm(plan))


def _grad_weight_order(plan, operands):
    if _shifts_groups(plan):
        return ("shifts", "gemm")
    return ("pointwise", "gemm") if uses_gemm(plan) else ("planes", "rows")


class _Table(Table):
    def __init__(self, operation, implementations, order):
        choose = _choose(order)
        super().__init__(NAME, operation, implementations,
                         lambda plan, method, operands: choose(plan, method, operands,
                                                               table=self))


FORWARD = _Table("forward", [
    Implementation("rows", _rows_forward),
    Implementation("taps", _lazy("taps", "correlate"), why_not=_lazy("taps", "why_not")),
    Implementation("flat", _lazy("flat", "correlate"), why_not=_lazy("flat", "why_not")),
    Implementation("gemm", _lazy("gemm", "correlate")),
    Implementation("pointwise", _lazy("pointwise", "correlate"),
                   why_not=_lazy("pointwise", "why_not")),
    Implementation("winograd", _lazy("winograd", "correlate"), method="winograd",
                   why_not=_lazy("winograd", "why_not")),
    Implementation("winograd4", _lazy("winograd4", "correlate"), method="winograd",
                   why_not=_lazy("winograd4", "why_not")),
    Implementation("fft", _lazy("fft", "correlate"), method="fft",
                   why_not=_lazy("fft", "why_not")),
], _forward_order)

GRAD_INPUT = _Table("grad_input", [
    Implementation("scatter", _scatter_grad_input),
    Implementation("taps", _lazy("depthwise", "grad_input"),
                   why_not=_lazy("depthwise", "input_why_not")),
    Implementation("flat", _lazy("flat", "grad_input"), why_not=_lazy("flat", "input_why_not")),
    Implementation("phases", _lazy("phases", "grad_input"), why_not=_lazy("phases", "why_not")),
    Implementation("gemm", _lazy("gemm", "grad_input")),
    Implementation("pointwise", _lazy("pointwise", "grad_input"),
                   why_not=_lazy("pointwise", "why_not")),
    Implementation("winograd", _lazy("winograd", "grad_input"), method="winograd",
                   why_not=_lazy("winograd", "input_why_not")),
    Implementation("winograd4", _lazy("winograd4", "grad_input"), method="winograd",
                   why_not=_lazy("winograd4", "input_why_not")),
    Implementation("fft", _lazy("fft", "grad_input"), method="fft",
                   why_not=_lazy("fft", "why_not")),
], _grad_input_order)

GRAD_WEIGHT = _Table("grad_weight", [
    Implementation("rows", _rows_grad_weight),
    Implementation("planes", _lazy("depthwise", "grad_weight"),
                   why_not=_lazy("depthwise", "weight_why_not")),
    Implementation("gemm", _lazy("gemm", "grad_weight")),
    Implementation("shifts", _lazy("shifts", "grad_weight"), why_not=_lazy("shifts", "why_not")),
    Implementation("pointwise", _lazy("pointwise", "grad_weight"),
                   why_not=_lazy("pointwise", "why_not")),
    Implementation("winograd", _lazy("winograd", "grad_weight"), method="winograd",
                   why_not=_lazy("winograd", "why_not")),
    Implementation("winograd4", _lazy("winograd4", "grad_weight"), method="winograd",
                   why_not=_lazy("winograd4", "why_not")),
    Implementation("fft", _lazy("fft", "grad_weight"), method="fft",
                   why_not=_lazy("fft", "why_not")),
], _grad_weight_order)

GRAD_BIAS = Table(NAME, "grad_bias", [Implementation("sums", _sums_grad_bias)],
                  lambda plan, method, operands: "sums")

#: The backend's tables, by operation.
TABLES = {"forward": FORWARD, "grad_input": GRAD_INPUT, "grad_weight": GRAD_WEIGHT,
          "grad_bias": GRAD_BIAS}

__all__ = ["Call", "FORWARD", "GRAD_BIAS", "GRAD_INPUT", "GRAD_WEIGHT", "NAME", "TABLES",
           "check_out", "read", "stream_forward", "uses_gemm"]
