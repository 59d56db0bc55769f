"""The layer and image cases every backend's tests share, and the CUDA tests' selections of them.

One list of conv2d layers (:data:`LAYERS`) and one of image shapes for correlate2d /
convolve2d (:data:`IMAGE_SHAPES`, :data:`IMAGE_GRADIENT_SHAPES`, with :data:`MODES` and
:data:`BOUNDARY_CASES`) are defined here and nowhere else. The test bodies that run them are
in ``tests/helpers.py`` (``check_layer_forward``, ``check_layer_gradients``,
``check_image_forward``, ``check_image_gradients``): each takes the backend's name and a case,
computes on that backend and checks the result against an independent float64 oracle (torch
for layers, SciPy for image results, the reference backend for image gradients) within a
derived error bound, and a backend other than the CPU and reference ones against both of them.

Who runs them:

* the CPU tests, every case: ``tests/test_conv2d.py`` (forward, each CPU implementation
  forced in turn and the reference backend), ``tests/test_gradients.py`` (the gradients, each
  CPU gradient path forced in turn; the image gradients) and ``tests/test_correlate2d.py``
  (correlate2d / convolve2d on the CPU and reference backends);
* the CUDA tests, the named selections below (``CUDA_*``): ``tests/cuda/test_forward.py`` and
  ``tests/cuda/test_backward.py``. The simulator interprets every GPU thread in Python, so it
  runs a subset; its shapes are tiny, and ``tests/cuda/conftest.py`` shrinks the kernels'
  tunables so that they still cover several tiles.

This module is imported by name (``from cases import ...``): pytest puts ``tests/`` on
``sys.path`` when it loads ``tests/conftest.py``, which it does for ``pytest tests/cuda`` as
well (the CUDA tests' own folder is added for ``cuda_helpers``).
"""

from dataclasses import dataclass, field

import numpy as np
import pytest

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
DTYPES = (np.float32, np.float64)
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symm")

#: conv2d's keyword arguments that a case leaves out take these values.
CONV2D_DEFAULTS = dict(stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros")


@dataclass(frozen=True)
class Layer:
    """A conv2d layer: input and weight shapes, keyword arguments, and whether it has a bias
    (the CPU forward tests run every layer with and without one)."""

    id: str
    input_shape: tuple
    weight_shape: tuple
    kwargs: dict = field(default_factory=dict)
    bias: bool = True

    @property
    def conv2d_kwargs(self):
        """Every keyword argument of conv2d, the defaults filled in."""
        return dict(CONV2D_DEFAULTS, **self.kwargs)


def _layers(rows):
    return [Layer(*row) for row in rows]


def _in_every_padding_mode(rows):
    return [Layer(f"{name}-{mode}", x, w, dict(kwargs, padding_mode=mode))
            for name, x, w, kwargs in rows for mode in PADDING_MODES]


# Hand-picked layers under zero padding (small enough for the reference loops).
_ZERO_PADDED = _layers([
    ("plain_3x3", (2, 3, 6, 7), (4, 3, 3, 3), {}),
    ("kernel_1x1", (2, 3, 5, 4), (5, 3, 1, 1), {}),
    ("kernel_1x1_stride2", (1, 3, 5, 4), (2, 3, 1, 1), dict(stride=2)),
    ("nonsquare_input_kernel", (1, 2, 5, 9), (3, 2, 2, 4), {}),
    ("kernel_equals_input", (1, 2, 4, 5), (2, 2, 4, 5), {}),
    ("stride_2", (1, 2, 7, 7), (3, 2, 3, 3), dict(stride=2)),
    ("stride_pair_uneven", (1, 2, 8, 9), (3, 2, 3, 2), dict(stride=(3, 2))),
    ("stride_not_dividing", (1, 2, 8, 10), (2, 2, 3, 3), dict(stride=(4, 3), padding=1)),
    ("stride_larger_than_kernel", (1, 1, 9, 9), (2, 1, 2, 2), dict(stride=5)),
    ("padding_int", (1, 2, 5, 6), (3, 2, 3, 3), dict(padding=1)),
    ("padding_pair", (1, 2, 5, 6), (3, 2, 3, 2), dict(padding=(2, 1))),
    ("padding_exceeds_kernel", (1, 2, 4, 4), (2, 2, 2, 2), dict(padding=3)),
    ("kernel_larger_than_input_padded", (1, 1, 4, 3), (2, 1, 6, 5), dict(padding=(1, 1))),
    ("padding_valid", (1, 2, 6, 5), (3, 2, 3, 2), dict(padding="valid")),
    ("same_odd", (1, 2, 5, 6), (3, 2, 3, 5), dict(padding="same")),
    ("same_even", (1, 2, 5, 6), (3, 2, 2, 4), dict(padding="same")),
    ("same_even_odd_mixed", (1, 2, 6, 5), (2, 2, 4, 3), dict(padding="same")),
    ("same_even_dilation2", (1, 2, 7, 7), (2, 2, 2, 4), dict(padding="same", dilation=2)),
    ("same_even_dilation3", (1, 2, 8, 9), (2, 2, 2, 2), dict(padding="same", dilation=(3, 1))),
    ("same_odd_dilation_pair", (1, 2, 7, 8), (2, 2, 3, 3), dict(padding="same", dilation=(2, 3))),
    ("dilation_2", (1, 2, 7, 7), (2, 2, 3, 3), dict(dilation=2)),
    ("dilation_pair_stride_padding", (1, 2, 9, 8), (3, 2, 3, 2),
     dict(dilation=(2, 3), stride=(2, 1), padding=(1, 2))),
    ("groups_2", (2, 4, 5, 5), (6, 2, 3, 3), dict(groups=2, padding=1)),
    ("groups_3_stride", (1, 6, 6, 7), (3, 2, 2, 3), dict(groups=3, stride=(2, 2))),
    ("depthwise", (2, 3, 6, 5), (3, 1, 3, 3), dict(groups=3, padding=1)),
    ("depthwise_multiplier_2", (1, 3, 6, 5), (6, 1, 3, 2), dict(groups=3, padding=(1, 0))),
    ("depthwise_stride_dilation", (1, 4, 9, 8), (4, 1, 3, 3),
     dict(groups=4, stride=2, dilation=2, padding=2)),
    ("single_pixel_input", (2, 3, 1, 1), (2, 3, 1, 1), {}),
    ("single_row_input", (1, 2, 1, 7), (2, 2, 1, 3), dict(padding=(0, 1))),
])

# Padding configurations, each under every padding mode.
_PADDINGS = _in_every_padding_mode([
    ("pad_1", (1, 2, 5, 6), (3, 2, 3, 3), dict(padding=1)),
    ("pad_pair_max", (1, 2, 4, 5), (2, 2, 3, 2), dict(padding=(3, 4))),  # reflect: H-1, W-1
    ("pad_pair_stride", (2, 2, 6, 7), (3, 2, 3, 3), dict(padding=(2, 1), stride=(2, 3))),
    ("pad_pair_stride_columns", (2, 2, 5, 6), (2, 2, 3, 2), dict(padding=(2, 1), stride=(1, 2))),
    ("pad_dilation", (1, 2, 6, 6), (2, 2, 2, 3), dict(padding=(2, 3), dilation=(2, 2))),
    ("same_odd", (1, 2, 5, 6), (2, 2, 3, 3), dict(padding="same")),
    ("same_even_dilation", (1, 2, 7, 6), (2, 2, 2, 4), dict(padding="same", dilation=(3, 1))),
    ("groups_2", (1, 4, 5, 5), (4, 2, 3, 3), dict(padding=2, groups=2)),
    ("depthwise", (1, 3, 5, 6), (6, 1, 3, 3), dict(padding=(1, 2), groups=3)),
])

# Awkward layers, each under every padding mode (the test bodies check that a backend refuses
# any layer torch rejects, such as reflect padding as large as the input).
_AWKWARD = _in_every_padding_mode([
    ("depthwise_same_even_dilated", (2, 3, 7, 8), (3, 1, 2, 4),
     dict(groups=3, padding="same", dilation=(3, 2))),
    ("multiplier_stride_not_dividing", (2, 2, 9, 10), (6, 1, 3, 2),
     dict(groups=2, stride=(4, 3), padding=(2, 1))),
    ("padding_larger_than_kernel", (1, 2, 5, 5), (3, 2, 2, 2), dict(padding=4)),
    ("stride_larger_than_kernel", (2, 3, 11, 9), (4, 3, 2, 2), dict(stride=5, padding=1)),
    ("kernel_is_padded_input", (1, 2, 3, 4), (2, 2, 5, 6), dict(padding=1)),
    ("one_by_one", (3, 4, 5, 6), (5, 4, 1, 1), dict(stride=2)),
    ("single_row_input", (2, 2, 1, 9), (3, 2, 1, 3), dict(padding=(0, 1))),
    ("unbatched_dense_same", (3, 7, 6), (4, 3, 3, 2), dict(padding="same")),
])

# One layer of each kind with its own options: the layers the CUDA tests run (below).
_KINDS = _layers([
    ("plain", (2, 3, 5, 6), (4, 3, 3, 2), {}, False),
    ("bias_padding", (2, 3, 5, 6), (4, 3, 3, 3), dict(padding=1)),
    ("stride_dilation", (2, 2, 6, 7), (3, 2, 2, 3),
     dict(stride=(2, 1), dilation=(1, 2), padding=(1, 2))),
    ("same", (1, 2, 5, 6), (3, 2, 4, 3), dict(padding="same", dilation=(1, 2)), False),
    ("valid", (1, 2, 5, 6), (2, 2, 3, 3), dict(padding="valid")),
    ("reflect", (2, 2, 5, 6), (3, 2, 3, 3), dict(padding=(2, 1), padding_mode="reflect")),
    ("replicate", (2, 2, 5, 6), (3, 2, 3, 2), dict(padding=2, stride=2,
                                                   padding_mode="replicate"), False),
    ("circular", (1, 2, 5, 6), (3, 2, 3, 3),
     dict(padding=(1, 3), dilation=2, padding_mode="circular")),
    ("grouped", (2, 4, 5, 6), (6, 2, 3, 3), dict(groups=2, padding=1)),
    ("depthwise_multiplier_strided", (1, 2, 6, 7), (4, 1, 3, 2),
     dict(groups=2, stride=2, padding=1, padding_mode="reflect"), False),
    ("pointwise", (2, 3, 5, 6), (5, 3, 1, 1), {}),
    ("unbatched_replicate", (3, 5, 6), (4, 3, 2, 3), dict(padding=1, padding_mode="replicate")),
    # every option at once, for the direct kernels (tests/cuda: tiles made not to fit)
    ("grouped_everything_reflect", (2, 4, 5, 6), (4, 2, 3, 2),
     dict(groups=2, stride=(1, 2), dilation=(2, 1), padding=2, padding_mode="reflect")),
    ("grouped_everything", (1, 4, 5, 6), (4, 2, 3, 2),
     dict(groups=2, stride=(2, 1), dilation=(1, 2), padding=2)),
])

#: Every layer case, by id.
LAYERS = {case.id: case for case in _ZERO_PADDED + _PADDINGS + _AWKWARD + _KINDS}
assert len(LAYERS) == len(_ZERO_PADDED + _PADDINGS + _AWKWARD + _KINDS), "duplicate layer ids"


def layers(*ids):
    """The layer cases named ``ids`` (a ``KeyError`` names an unknown one)."""
    return [LAYERS[i] for i in ids]


def layer_params(cases=None):
    """``pytest.param(case, id=case.id)`` for ``cases`` (every layer by default)."""
    return [pytest.param(c, id=c.id) for c in (LAYERS.values() if cases is None else cases)]


#: The layers the CUDA forward tests run, in both float dtypes.
CUDA_FORWARD_LAYERS = layers(
    "plain", "bias_padding", "stride_dilation", "same", "valid", "reflect", "replicate",
    "circular", "grouped", "depthwise", "depthwise_multiplier_strided", "pointwise",
    "unbatched_replicate")

#: The layers the CUDA gradient tests run in float64: the forward ones, and one layer under
#: every padding mode.
CUDA_GRADIENT_LAYERS = layers(
    "plain", "bias_padding", "stride_dilation", "same", "valid", "reflect", "replicate",
    "circular", "grouped", "depthwise", "depthwise_multiplier_strided", "pointwise",
    *(f"pad_pair_stride_columns-{mode}" for mode in PADDING_MODES))

#: The layers the CUDA gradient tests also run in float32 (the simulator is slow).
CUDA_FLOAT32_GRADIENT_LAYERS = layers("plain", "stride_dilation", "reflect", "depthwise")


# --------------------------------------------------------------------------- images

# (boundary, fillvalue): the fill value is exactly representable in float32, and for "wrap" and
# "symm" it is nonzero to check that it is ignored there.
BOUNDARY_CASES = (("fill", 0.0), ("fill", -1.5), ("wrap", 3.0), ("symm", 3.0))

#: (image shape, kernel shape) of the correlate2d / convolve2d results.
IMAGE_SHAPES = (
    ((7, 9), (3, 3)),  # odd kernel
    ((8, 6), (4, 2)),  # even kernel
    ((5, 4), (2, 3)),  # even x odd
    ((5, 6), (3, 2)),  # odd x even
    ((6, 7), (1, 5)),  # 1 x N kernel
    ((6, 7), (4, 1)),  # N x 1 kernel
    ((1, 6), (1, 3)),  # one-row image
    ((4, 5), (4, 5)),  # same size
    ((3, 4), (5, 6)),  # kernel larger than the image: valid mode swaps
    ((2, 3), (7, 8)),  # kernel more than twice the image: multi-fold wrap / symm
    ((1, 1), (3, 2)),  # 1 x 1 image
    ((5, 3), (2, 5)),  # neither dominates: valid mode is an error
)

#: (image shape, kernel shape) of the correlate2d / convolve2d gradients.
IMAGE_GRADIENT_SHAPES = (
    ((7, 9), (3, 4)),  # even kernel width
    ((6, 5), (2, 2)),  # even kernel
    ((5, 6), (5, 3)),  # kernel as tall as the image
    ((5, 6), (3, 4)),  # even x odd, more than one tile each way
    ((4, 5), (6, 9)),  # in2 larger: "valid" swaps; wrap/symm repeat the image several times
    ((1, 1), (3, 2)),  # a single sample copied everywhere
)

#: The fill value of the image gradient cases (it takes part in in2's gradient).
IMAGE_GRADIENT_FILLVALUE = 0.5


def shape_id(shapes):
    (h, w), (kh, kw) = shapes
    return f"{h}x{w}*{kh}x{kw}"


#: The image shapes, boundaries and dtype the CUDA image tests run (every mode, both functions).
CUDA_IMAGE_SHAPES = (((5, 6), (3, 2)),)
CUDA_IMAGE_GRADIENT_SHAPES = (((5, 6), (3, 4)),)
CUDA_BOUNDARY_CASES = (("fill", -1.5), ("wrap", 3.0), ("symm", 3.0))
assert set(CUDA_IMAGE_SHAPES) <= set(IMAGE_SHAPES)
assert set(CUDA_IMAGE_GRADIENT_SHAPES) <= set(IMAGE_GRADIENT_SHAPES)
assert set(CUDA_BOUNDARY_CASES) <= set(BOUNDARY_CASES)
