"""fastcorr.nn (Parameter, Module, Conv2d, Sequential) and fastcorr.train (losses, SGD, fit).

The layer and the training loop are compared with torch (float64, same weights); the source
material's experiment (learning the edge kernel [[1, -1]] from an image and its edges) is
reproduced for several seeds.
"""

import math

import numpy as np
import pytest
import torch

import fastcorr
from fastcorr import nn, train
from helpers import edge_image

SEEDS = range(5)


def to_torch_layer(layer, **options):
    """A torch.nn.Conv2d (float64) holding a copy of ``layer``'s weights."""
    c_out, c_in_g, kh, kw = layer.weight.shape
    groups = options.get("groups", 1)
    t = torch.nn.Conv2d(c_in_g * groups, c_out, (kh, kw), bias=layer.bias is not None,
                        dtype=torch.float64, **options)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(np.array(layer.weight.data, dtype=np.float64)))
        if layer.bias is not None:
            t.bias.copy_(torch.from_numpy(np.array(layer.bias.data, dtype=np.float64)))
    return t


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# --------------------------------------------------------------------------- the source material


@pytest.mark.parametrize("seed", SEEDS)
def test_learns_edge_kernel_sse_like_the_book(seed):
    X = edge_image()
    Y = fastcorr.corr2d(X, [[1.0, -1.0]])
    layer = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False, rng=seed)
    assert layer.bias is None and layer.weight.shape == (1, 1, 1, 2)
    history = train.fit(layer, X.reshape(1, 1, 6, 8), Y.reshape(1, 1, 6, 7), epochs=10,
                        lr=3e-2, loss="sse")
    assert len(history) == 10
    assert all(isinstance(h, float) for h in history)
    assert all(b < a for a, b in zip(history, history[1:])), history
    assert history[-1] < history[0] / 50, history
    np.testing.assert_allclose(layer.weight.data.reshape(-1), [1.0, -1.0], atol=0.15)


def test_first_epoch_loss_is_the_loss_of_the_initial_weights():
    X = edge_image()
    Y = fastcorr.corr2d(X, [[1.0, -1.0]])
    layer = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False, rng=3)
    w0 = layer.weight.data.reshape(-1).astype(np.float64)
    expected = float(np.sum((fastcorr.corr2d(X, w0[None]) - Y) ** 2))
    history = train.fit(layer, X[None, None], Y[None, None], epochs=1, lr=3e-2)
    assert history[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_learns_edge_kernel_with_bias_mse_on_a_2d_image(seed):
    X = edge_image()
    Y = fastcorr.corr2d(X, [[1.0, -1.0]])
    layer = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=True, rng=seed)
    history = train.fit(layer, X, Y, epochs=100, lr=0.1, loss="mse")
    assert len(history) == 100
    assert history[-1] < history[0] / 50
    np.testing.assert_allclose(layer.weight.data.reshape(-1), [1.0, -1.0], atol=0.15)
    assert abs(float(layer.bias.data[0])) < 0.05
    # the trained layer still maps the 2-D image to a 2-D result
    assert layer(X).shape == Y.shape


# --------------------------------------------------------------------------- Conv2d vs torch

CONFIGS = [
    # (C_in, C_out, kernel, options, bias)
    (2, 4, 3, dict(padding=1), True),
    (4, 6, (2, 3), dict(stride=2, padding=(1, 2), groups=2, padding_mode="reflect"), True),
    (3, 3, 3, dict(stride=(1, 2), padding=2, dilation=2, groups=3, padding_mode="circular"),
     False),
    (2, 3, (3, 2), dict(padding="same", padding_mode="replicate"), True),
    (1, 2, (1, 2), dict(padding="valid", stride=(2, 1)), True),
    (4, 2, 1, dict(groups=2), True),
]


@pytest.mark.parametrize("c_in, c_out, kernel, options, bias", CONFIGS)
def test_conv2d_forward_backward_match_torch(c_in, c_out, kernel, options, bias):
    rng = np.random.default_rng(42)
    layer = nn.Conv2d(c_in, c_out, kernel, bias=bias, rng=7, dtype=np.float64, **options)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    assert layer.weight.shape == (c_out, c_in // options.get("groups", 1), kh, kw)
    assert (layer.bias is None) == (not bias)
    tl = to_torch_layer(layer, **options)

    x = rng.standard_normal((2, c_in, 7, 8))
    y = layer(x)
    xt = t64(x, grad=True)
    yt = tl(xt)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)

    g = rng.standard_normal(y.shape)
    grad_x = layer.backward(g)
    yt.backward(t64(g))
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-11, atol=1e-11)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-11, atol=1e-11)


def test_conv2d_grads_accumulate_and_zero_grad_resets():
    rng = np.random.default_rng(0)
    options = dict(stride=2, padding=1, groups=2)
    layer = nn.Conv2d(2, 4, 3, rng=1, dtype=np.float64, **options)
    tl = to_torch_layer(layer, **options)
    x1, x2 = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 6, 6))

    g1 = rng.standard_normal(layer(x1).shape)
    layer.backward(g1)
    w_after_one = layer.weight.grad.copy()
    g2 = rng.standard_normal(layer(x2).shape)
    layer.backward(g2)

    tl(t64(x1)).backward(t64(g1))
    np.testing.assert_allclose(w_after_one, tl.weight.grad.numpy(), rtol=1e-11, atol=1e-12)
    tl(t64(x2)).backward(t64(g2))  # torch adds too
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-11, atol=1e-12)
    assert not np.allclose(layer.weight.grad, w_after_one)

    layer.zero_grad()
    for p in layer.parameters():
        assert p.grad.shape == p.data.shape
        assert not np.any(p.grad)
    # after zero_grad the next backward gives exactly one gradient again
    layer(x2)
    layer.backward(g2)
    tl.zero_grad()
    tl(t64(x2)).backward(t64(g2))
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-11, atol=1e-12)


def test_parameter_grad_keeps_its_dtype_when_accumulating():
    # A float32 layer fed float64 data: the first gradient is stored as float32; the sum of two
    # (or a gradient added to zero_grad's zeros) should be float32 as well, as in torch.
    layer = nn.Conv2d(1, 2, 3, rng=0)
    x = np.random.default_rng(0).standard_normal((1, 1, 5, 5))  # float64
    g = np.ones_like(layer(x))
    layer.backward(g)
    assert layer.weight.grad.dtype == np.float32
    layer.backward(g)
    assert layer.weight.grad.dtype == np.float32
    assert layer.bias.grad.dtype == np.float32
    layer.zero_grad()
    layer.backward(g)
    assert layer.weight.grad.dtype == np.float32


def test_backward_before_forward_raises():
    layer = nn.Conv2d(1, 1, 2, rng=0)
    with pytest.raises(RuntimeError):
        layer.backward(np.ones((1, 1, 2, 2)))


def test_conv2d_input_forms_keep_their_form():
    rng = np.random.default_rng(5)
    options = dict(padding=(0, 1), stride=(1, 2))
    one = nn.Conv2d(1, 1, (2, 3), rng=3, dtype=np.float64, **options)
    many = nn.Conv2d(3, 2, (2, 3), rng=3, dtype=np.float64, **options)
    t_one, t_many = to_torch_layer(one, **options), to_torch_layer(many, **options)

    image = rng.standard_normal((6, 7))
    sample = rng.standard_normal((3, 6, 7))
    batch = rng.standard_normal((2, 3, 6, 7))
    cases = [(one, t_one, image, image[None, None]),
             (many, t_many, sample, sample[None]),
             (many, t_many, batch, batch)]
    for layer, tl, x, x4 in cases:
        y = layer(x)
        assert y.ndim == x.ndim, (x.shape, y.shape)
        xt = t64(x4, grad=True)
        yt = tl(xt)
        np.testing.assert_allclose(y, yt.detach().numpy().reshape(y.shape), rtol=1e-12, atol=1e-12)
        assert y.shape == tuple(yt.shape)[4 - x.ndim:]
        g = rng.standard_normal(y.shape)
        layer.zero_grad()
        tl.zero_grad()
        gx = layer.backward(g)
        assert gx.shape == x.shape
        yt.backward(t64(g).reshape(yt.shape))
        np.testing.assert_allclose(gx, xt.grad.numpy().reshape(x.shape), rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-11,
                                   atol=1e-12)
        np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-11, atol=1e-12)


def test_conv2d_2d_image_with_several_output_channels_loses_no_channel():
    # A 2-D image is one input channel; with out_channels=2 the layer must either refuse or
    # return both output channels, (2, H', W') - never silently drop one.
    layer = nn.Conv2d(1, 2, 3, rng=0, dtype=np.float64)
    image = np.random.default_rng(0).standard_normal((5, 6))
    try:
        y = layer(image)
    except (ValueError, TypeError):
        return
    expected = layer(image[None])  # the same image as an unbatched one-channel sample
    assert y.shape == expected.shape == (2, 3, 4)
    np.testing.assert_allclose(y, expected)


def test_conv2d_float32_default_and_float64_option():
    layer = nn.Conv2d(2, 3, 3, rng=0)
    assert layer.weight.data.dtype == np.float32 and layer.bias.data.dtype == np.float32
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5)).astype(np.float32)
    assert layer(x).dtype == np.float32
    layer64 = nn.Conv2d(2, 3, 3, rng=0, dtype=np.float64)
    assert layer64.weight.data.dtype == np.float64
    with pytest.raises(TypeError):
        nn.Conv2d(2, 3, 3, dtype=np.int32)


def test_conv2d_bad_arguments():
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises((ValueError, TypeError)):
        nn.Conv2d(0, 1, 3)
    with pytest.raises((ValueError, TypeError)):
        nn.Conv2d(1, 1, 0)


# --------------------------------------------------------------------------- initialisation


def test_init_bounds_shapes_and_reproducibility():
    layer = nn.Conv2d(4, 6, (3, 5), groups=2, rng=11)
    fan_in = 2 * 3 * 5
    bound = 1 / math.sqrt(fan_in)
    assert layer.weight.shape == (6, 2, 3, 5) and layer.bias.shape == (6,)
    for p in (layer.weight, layer.bias):
        assert np.all(np.abs(p.data) <= bound * (1 + 1e-6))
        assert np.ptp(p.data) > 0
    assert np.max(np.abs(layer.weight.data)) > 0.8 * bound  # fills the interval

    again = nn.Conv2d(4, 6, (3, 5), groups=2, rng=11)
    np.testing.assert_array_equal(layer.weight.data, again.weight.data)
    np.testing.assert_array_equal(layer.bias.data, again.bias.data)
    other = nn.Conv2d(4, 6, (3, 5), groups=2, rng=12)
    assert not np.array_equal(layer.weight.data, other.weight.data)

    # a Generator is drawn from: two layers from one generator differ, two equal generators agree
    gen_a, gen_b = np.random.default_rng(99), np.random.default_rng(99)
    a1, a2 = nn.Conv2d(2, 2, 2, rng=gen_a), nn.Conv2d(2, 2, 2, rng=gen_a)
    b1 = nn.Conv2d(2, 2, 2, rng=gen_b)
    assert not np.array_equal(a1.weight.data, a2.weight.data)
    np.testing.assert_array_equal(a1.weight.data, b1.weight.data)
    np.testing.assert_array_equal(a1.bias.data, b1.bias.data)


def test_init_statistics_like_torch():
    ours = nn.Conv2d(32, 64, 3, rng=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = torch.nn.Conv2d(32, 64, 3)
    bound = 1 / math.sqrt(32 * 9)
    w_t = theirs.weight.detach().numpy()
    w = ours.weight.data
    assert w.shape == w_t.shape
    # uniform on [-b, b]: mean 0, std b / sqrt(3), extremes near +-b
    assert abs(w.mean()) < 0.02 * bound
    assert w.std() == pytest.approx(w_t.std(), rel=0.05)
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert w.max() == pytest.approx(bound, rel=0.01) and w.min() == pytest.approx(-bound, rel=0.01)
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    b, b_t = ours.bias.data, theirs.bias.detach().numpy()
    assert np.abs(b).max() <= bound * (1 + 1e-6) and np.abs(b_t).max() <= bound * (1 + 1e-6)
    assert np.abs(b).max() > 0.5 * bound


# --------------------------------------------------------------------------- Module, Sequential


def test_parameters_found_once_in_order():
    a = nn.Conv2d(2, 3, 3, rng=0)
    b = nn.Conv2d(3, 1, 1, bias=False, rng=1)
    assert [id(p) for p in a.parameters()] == [id(a.weight), id(a.bias)]
    assert [id(p) for p in b.parameters()] == [id(b.weight)]
    seq = nn.Sequential(a, b, a)  # a shared layer counts once
    assert [id(p) for p in seq.parameters()] == [id(a.weight), id(a.bias), id(b.weight)]
    p = nn.Parameter([1.0, 2.0])
    assert isinstance(p.data, np.ndarray) and p.grad is None and p.shape == (2,)


def test_sequential_matches_torch_autograd_through_two_layers():
    rng = np.random.default_rng(3)
    o1, o2 = dict(padding=1, padding_mode="reflect"), dict(stride=2, groups=1)
    l1 = nn.Conv2d(2, 3, 3, rng=1, dtype=np.float64, **o1)
    l2 = nn.Conv2d(3, 2, 2, rng=2, dtype=np.float64, **o2)
    model = nn.Sequential(l1, l2)
    t1, t2 = to_torch_layer(l1, **o1), to_torch_layer(l2, **o2)

    x = rng.standard_normal((2, 2, 6, 7))
    y = model(x)
    xt = t64(x, grad=True)
    yt = t2(t1(xt))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)

    g = rng.standard_normal(y.shape)
    model.zero_grad()
    gx = model.backward(g)
    yt.backward(t64(g))
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    for ours, theirs in ((l1.weight, t1.weight), (l1.bias, t1.bias), (l2.weight, t2.weight),
                         (l2.bias, t2.bias)):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-11, atol=1e-12)


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("loss", ["sse", "mse"])
def test_loss_and_grad_match_torch(loss):
    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    value, grad = train.loss_and_grad(pred, target, loss)
    pt = t64(pred, grad=True)
    if loss == "sse":
        ref = ((pt - t64(target)) ** 2).sum()
    else:
        ref = torch.nn.functional.mse_loss(pt, t64(target))
    ref.backward()
    assert isinstance(value, float)
    assert value == pytest.approx(ref.item(), rel=1e-12)
    assert grad.shape == pred.shape and grad.dtype == pred.dtype
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1e-12, atol=1e-15)
    # sse is the sum of squares, mse their mean
    assert value == pytest.approx(np.sum((pred - target) ** 2) / (1 if loss == "sse" else pred.size))


@pytest.mark.parametrize("loss", ["sse", "mse"])
def test_loss_grad_matches_finite_differences(loss):
    rng = np.random.default_rng(2)
    pred, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    _, grad = train.loss_and_grad(pred, target, loss)
    h = 1e-6
    numeric = np.zeros_like(pred)
    for idx in np.ndindex(pred.shape):
        up, down = pred.copy(), pred.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (train.loss_and_grad(up, target, loss)[0]
                        - train.loss_and_grad(down, target, loss)[0]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_loss_and_grad_bad_arguments():
    with pytest.raises(ValueError, match="loss"):
        train.loss_and_grad(np.zeros(3), np.zeros(3), "mae")
    with pytest.raises(ValueError, match="Y"):
        train.loss_and_grad(np.zeros(3), np.zeros(4), "sse")
    assert train.loss_and_grad(np.ones(3), np.ones(3), "sse")[0] == 0.0
    assert train.loss_and_grad(np.ones(4), np.zeros(4))[0] == 4.0  # default is sse


# --------------------------------------------------------------------------- SGD


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.0, 0.05),
                                                    (0.8, 0.01)])
def test_sgd_matches_torch(momentum, weight_decay):
    rng = np.random.default_rng(4)
    data = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    params = [nn.Parameter(d.copy()) for d in data]
    tparams = [torch.nn.Parameter(t64(d)) for d in data]
    opt = train.SGD(params, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    topt = torch.optim.SGD(tparams, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    for _ in range(5):
        for p, tp in zip(params, tparams):
            g = rng.standard_normal(p.shape)
            p.grad = g.copy()
            tp.grad = t64(g)
        opt.step()
        topt.step()
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert not np.allclose(params[0].data, data[0])


def test_sgd_updates_in_place_and_skips_params_without_grad():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    original = a.data
    a.grad = np.array([1.0, 2.0, 3.0])
    train.SGD([a, b], lr=0.5).step()
    assert a.data is original
    np.testing.assert_allclose(a.data, [0.5, 0.0, -0.5])
    np.testing.assert_array_equal(b.data, [1.0, 1.0])


@pytest.mark.parametrize("kwargs, name", [(dict(lr=0.0), "lr"), (dict(lr=-1.0), "lr"),
                                          (dict(lr=float("nan")), "lr"),
                                          (dict(lr=0.1, momentum=-0.5), "momentum"),
                                          (dict(lr=0.1, weight_decay=-1.0), "weight_decay")])
def test_sgd_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        train.SGD([nn.Parameter(np.ones(2))], **kwargs)


# --------------------------------------------------------------------------- fit


def torch_fit(layer, options, X, Y, *, epochs, lr, loss, batch_size, momentum, weight_decay):
    """The loop fit documents, written with torch: per step the loss before the update;
    per epoch the sum ("sse") or the sample-weighted mean ("mse")."""
    tl = to_torch_layer(layer, **options)
    opt = torch.optim.SGD(tl.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = len(X)
    history = []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, n, batch_size):
            xb, yb = t64(X[start:start + batch_size]), t64(Y[start:start + batch_size])
            opt.zero_grad()
            diff = tl(xb) - yb
            value = (diff ** 2).sum() if loss == "sse" else (diff ** 2).mean()
            value.backward()
            opt.step()
            total += value.item() * (len(xb) / n if loss == "mse" else 1.0)
        history.append(total)
    return history, tl


@pytest.mark.parametrize("loss, batch_size, momentum, weight_decay",
                         [("sse", 3, 0.0, 0.0), ("mse", 3, 0.5, 0.01), ("mse", None, 0.9, 0.0),
                          ("sse", 8, 0.0, 0.1)])
def test_fit_matches_a_torch_training_loop(loss, batch_size, momentum, weight_decay):
    rng = np.random.default_rng(6)
    options = dict(padding=1)
    X, Y = rng.standard_normal((8, 2, 5, 5)), rng.standard_normal((8, 3, 5, 5))
    layer = nn.Conv2d(2, 3, 3, rng=0, dtype=np.float64, **options)
    lr = 0.002 if loss == "sse" else 0.05
    expected, tl = torch_fit(layer, options, X, Y, epochs=3, lr=lr, loss=loss,
                             batch_size=batch_size or 8, momentum=momentum,
                             weight_decay=weight_decay)
    history = train.fit(layer, X, Y, epochs=3, lr=lr, loss=loss, batch_size=batch_size,
                        momentum=momentum, weight_decay=weight_decay)
    np.testing.assert_allclose(history, expected, rtol=1e-10)
    np.testing.assert_allclose(layer.weight.data, tl.weight.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(layer.bias.data, tl.bias.detach().numpy(), rtol=1e-10, atol=1e-12)


class Recorder(nn.Module):
    """Wraps a layer and records which samples (by their first pixel) each step sees."""

    def __init__(self, layer):
        self.layer = layer
        self.seen = []

    def forward(self, x):
        self.seen.append(np.asarray(x)[:, 0, 0, 0].astype(int).tolist())
        return self.layer(x)

    def backward(self, grad_output):
        return self.layer.backward(grad_output)


def recorded_fit(seed, shuffle, batch_size=3, epochs=3, **kwargs):
    X = np.zeros((8, 1, 3, 3))
    X[:, 0, 0, 0] = np.arange(8)  # sample k has first pixel k
    X[:, 0, 1:, 1:] = np.random.default_rng(0).standard_normal((8, 2, 2))
    Y = np.random.default_rng(1).standard_normal((8, 1, 2, 2))
    model = Recorder(nn.Conv2d(1, 1, 2, rng=0, dtype=np.float64))
    history = train.fit(model, X, Y, epochs=epochs, lr=0.01, batch_size=batch_size,
                        shuffle=shuffle, rng=seed, **kwargs)
    return history, model.seen, model.layer


def test_fit_batches_without_shuffle_are_in_order():
    _, seen, _ = recorded_fit(None, shuffle=False)
    assert seen == [[0, 1, 2], [3, 4, 5], [6, 7]] * 3


def test_fit_shuffle_visits_every_sample_once_per_epoch_and_is_reproducible():
    history, seen, layer = recorded_fit(5, shuffle=True, epochs=4)
    assert [len(b) for b in seen] == [3, 3, 2] * 4
    epochs = [sum(seen[3 * e:3 * e + 3], []) for e in range(4)]
    for order in epochs:
        assert sorted(order) == list(range(8))
    assert len({tuple(o) for o in epochs}) > 1, "a new order each epoch"
    assert any(o != list(range(8)) for o in epochs)

    history2, seen2, layer2 = recorded_fit(5, shuffle=True, epochs=4)
    assert history2 == history and seen2 == seen
    np.testing.assert_array_equal(layer.weight.data, layer2.weight.data)
    # a Generator works as well as a seed and gives the same run as the same seed
    history3, seen3, _ = recorded_fit(np.random.default_rng(5), shuffle=True, epochs=4)
    assert history3 == history and seen3 == seen
    _, seen4, _ = recorded_fit(6, shuffle=True, epochs=4)
    assert seen4 != seen


def test_fit_callback_and_epochs_zero():
    calls = []
    history, _, _ = recorded_fit(0, shuffle=False, epochs=4,
                                 callback=lambda epoch, loss: calls.append((epoch, loss)))
    assert calls == list(enumerate(history, 1))
    layer = nn.Conv2d(1, 1, 2, rng=0)
    before = layer.weight.data.copy()
    assert train.fit(layer, np.ones((3, 3)), np.ones((2, 2)), epochs=0, lr=0.1,
                     callback=lambda *a: calls.append(a)) == []
    np.testing.assert_array_equal(layer.weight.data, before)
    assert len(calls) == 4


def test_fit_progress_bar_on_stderr(capsys):
    X = edge_image()
    Y = fastcorr.corr2d(X, [[1.0, -1.0]])
    layer = nn.Conv2d(1, 1, (1, 2), bias=False, rng=0)
    history = train.fit(layer, X, Y, epochs=3, lr=3e-2, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3" in err
    assert "#" * 30 in err  # full at the end
    assert f"{history[-1]:.6g}" in err
    assert err.endswith("\n")

    train.fit(nn.Conv2d(1, 1, (1, 2), bias=False, rng=0), X, Y, epochs=3, lr=3e-2)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kwargs, name", [
    (dict(loss="mae"), "loss"),
    (dict(epochs=-1), "epochs"),
    (dict(epochs=2.5), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-2), "batch_size"),
    (dict(lr=0.0), "lr"),
    (dict(lr=-0.1), "lr"),
    (dict(Y=np.zeros((3, 1, 2, 2))), "Y"),  # 3 targets for 4 samples
    (dict(Y=np.zeros((4, 1, 3, 3))), "Y"),  # wrong output shape
])
def test_fit_bad_arguments(kwargs, name):
    layer = nn.Conv2d(1, 1, 2, rng=0)
    before = layer.weight.data.copy()
    args = dict(X=np.ones((4, 1, 3, 3)), Y=np.zeros((4, 1, 2, 2)), epochs=2, lr=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        train.fit(layer, args.pop("X"), args.pop("Y"), **args)
    np.testing.assert_array_equal(layer.weight.data, before)


def test_fit_mismatched_target_for_a_2d_image():
    layer = nn.Conv2d(1, 1, (1, 2), rng=0)
    with pytest.raises(ValueError, match="Y"):
        train.fit(layer, edge_image(), np.zeros((6, 8)), epochs=1, lr=0.1)
