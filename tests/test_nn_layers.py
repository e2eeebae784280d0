"""sciml.nn layers: forward values against numpy/scipy, gradients against finite differences
(float64), BatchNorm train/eval semantics, Dropout keys, save/load, errors."""

import doctest

import numpy as np
import pytest
import scipy.signal
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.nn as nn
from sciml.errors import ArityError, SciMLError, ShapeError
from sciml.nn import functional as F
from sciml.nn.train import value_and_grad

RNG = np.random.default_rng(0)


def f64(tree):
    return {k: np.asarray(v, np.float64) for k, v in tree.items()}


# ---------------------------------------------------------------------------------------------
# Forward values


def conv2d_ref(x, w, stride, padding, dilation):
    """scipy.signal.correlate2d on the dilated kernel, then subsample by the stride."""
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    wd = np.zeros((o, c, dilation * (kh - 1) + 1, dilation * (kw - 1) + 1))
    wd[:, :, ::dilation, ::dilation] = w
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.array([[sum(scipy.signal.correlate2d(xp[i, ci], wd[oi, ci], mode="valid")
                         for ci in range(c)) for oi in range(o)] for i in range(n)])
    return out[:, :, ::stride, ::stride]


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (1, 1, 1), (2, 1, 1),
                                                      (1, 2, 2), (2, 0, 2), (3, 1, 1)])
def test_conv2d_matches_scipy(stride, padding, dilation):
    x = RNG.normal(size=(2, 3, 9, 10))
    w = RNG.normal(size=(4, 3, 3, 2))
    y = F.conv(x, w, stride, padding, dilation)
    np.testing.assert_allclose(y, conv2d_ref(x, w, stride, padding, dilation), atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2),
       st.integers(1, 3), st.integers(5, 9), st.integers(5, 9))
def test_conv2d_matches_scipy_property(kh, kw, padding, dilation, stride, h, w):
    x = RNG.normal(size=(1, 2, h, w))
    k = RNG.normal(size=(3, 2, kh, kw))
    if (h + 2 * padding - dilation * (kh - 1) - 1 < 0
            or w + 2 * padding - dilation * (kw - 1) - 1 < 0):
        with pytest.raises(ShapeError, match="smaller than the kernel"):
            F.conv(x, k, stride, padding, dilation)
        return
    ref = conv2d_ref(x, k, stride, padding, dilation)
    np.testing.assert_allclose(F.conv(x, k, stride, padding, dilation), ref, atol=1e-12)


def test_conv1d_matches_scipy():
    x = RNG.normal(size=(2, 3, 17))
    layer = nn.Conv1d(3, 5, 4, stride=2, padding=1, dilation=2)
    y = layer(x)
    w, b = layer.weight, layer.bias
    wd = np.zeros((5, 3, 7))
    wd[:, :, ::2] = w
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    ref = np.array([[sum(scipy.signal.correlate(xp[i, c], wd[o, c], mode="valid")
                         for c in range(3)) for o in range(5)] for i in range(2)])[:, :, ::2]
    np.testing.assert_allclose(y, ref + b[:, None], atol=1e-5)


def test_conv2d_layer_traced_and_tapped_forms_agree():
    layer = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    x = RNG.normal(size=(2, 2, 7, 6)).astype(np.float32)
    eager = layer(x)
    g = sciml.make_graph(lambda p, x: layer.apply(p, x)[0], layer.parameters(), x)
    np.testing.assert_allclose(sciml.eval_graph(g, layer.parameters(), x), eager, rtol=1e-6)
    from sciml.nn.cell import _push, _Scope
    from sciml.optim import _Taps

    sc = _Scope({}, None, None)
    sc.taps = _Taps({})
    with _push(sc):
        tapped = layer(x)
    np.testing.assert_allclose(tapped, eager, rtol=1e-5, atol=1e-6)


def pool_ref(x, k, s, p, op, pad_value):
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=pad_value)
    ho, wo = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    out = np.empty(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = op(xp[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return out


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 0), (2, 1, 0)])
def test_pools(k, s, p):
    x = RNG.normal(size=(2, 3, 8, 7))
    np.testing.assert_allclose(nn.MaxPool2d(k, s, p)(x), pool_ref(x, k, s, p, np.max, -np.inf))
    np.testing.assert_allclose(nn.AvgPool2d(k, s, p)(x), pool_ref(x, k, s, p, np.mean, 0.0))


@pytest.mark.parametrize("cell,ref", [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.Sigmoid(), scipy.special.expit),
    (nn.Tanh(), np.tanh),
    (nn.Softplus(), lambda x: np.logaddexp(0, x)),
    (nn.SiLU(), lambda x: x * scipy.special.expit(x)),
    (nn.GELU(), lambda x: x * scipy.special.ndtr(x)),
])
def test_activations(cell, ref):
    x = np.concatenate([RNG.normal(size=50) * 3, [-800.0, 800.0, 0.0]])
    # atol: GELU via 1 + erf(x) cancels in the far negative tail (absolute error ~1e-16).
    np.testing.assert_allclose(cell(x), ref(x), rtol=1e-12, atol=1e-15)


def test_dense_flatten_embedding_layernorm():
    d = nn.Dense(5, 3, bias_init="normal", activation="tanh")
    x = RNG.normal(size=(2, 4, 5))
    np.testing.assert_allclose(d(x), np.tanh(x @ d.weight.T + d.bias), rtol=1e-6)
    assert nn.Flatten()(np.zeros((3, 2, 4))).shape == (3, 8)
    e = nn.Embedding(7, 4)
    ids = np.array([[0, 6], [3, 3]])
    np.testing.assert_array_equal(e(ids), e.embedding_table[ids])
    ln = nn.LayerNorm((3, 4))
    x = RNG.normal(size=(2, 3, 4))
    mu = x.mean(axis=(1, 2), keepdims=True)
    ref = (x - mu) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln(x), ref, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# BatchNorm semantics


def test_batchnorm_train_and_eval():
    bn = nn.BatchNorm(3, momentum=0.8)
    x = RNG.normal(2.0, 3.0, size=(8, 3, 4, 5))
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    # Eval before training: running stats are (0, 1), so the output is x / sqrt(1 + eps).
    np.testing.assert_allclose(bn(x), x / np.sqrt(1 + 1e-5), rtol=1e-6)
    out, new = bn.apply(bn.parameters(), x, buffers=bn.buffers(), training=True)
    ref = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    n = 8 * 4 * 5
    np.testing.assert_allclose(new["moving_mean"], 0.2 * mean, rtol=1e-6)
    np.testing.assert_allclose(new["moving_variance"], 0.8 + 0.2 * var * n / (n - 1), rtol=1e-6)
    assert np.all(bn.buffers()["moving_mean"] == 0)  # apply is pure
    # Eager training mode updates the stored buffers; eval then uses them.
    bn.set_train(True)
    bn(x)
    bn.set_train(False)
    np.testing.assert_allclose(bn.moving_mean, new["moving_mean"], rtol=1e-6)
    rm, rv = new["moving_mean"], new["moving_variance"]
    np.testing.assert_allclose(bn(x), (x - rm[:, None, None]) / np.sqrt(
        rv[:, None, None] + 1e-5), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Gradients against finite differences


def _check_grads(cell, x, training=False, buffers=None, wrt_input=True):
    params = f64(cell.parameters())
    x = np.asarray(x, np.float64)
    w = RNG.normal(size=np.shape(cell.apply(params, x, training=training, buffers=buffers)[0]))

    def f(p, x):
        return np.sum(cell.apply(p, x, training=training, buffers=buffers)[0] * w)

    _, (gp, gx) = value_and_grad(lambda px: f(*px))((params, x))
    for _ in range(2):
        dp = {k: RNG.normal(size=v.shape) for k, v in params.items()}
        dx = RNG.normal(size=x.shape) if wrt_input else np.zeros_like(x)
        h = 1e-6
        plus = f({k: params[k] + h * dp[k] for k in params}, x + h * dx)
        minus = f({k: params[k] - h * dp[k] for k in params}, x - h * dx)
        fd = (plus - minus) / (2 * h)
        ad = sum(np.sum(gp[k] * dp[k]) for k in params) + np.sum(gx * dx)
        assert abs(fd - ad) <= 1e-6 * max(1.0, abs(fd)), (type(cell).__name__, fd, ad)


LAYERS = [
    (lambda: nn.Dense(4, 3, bias_init="normal"), (5, 4)),
    (lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), (2, 2, 9)),
    (lambda: nn.Conv2d(2, 3, 3, stride=1, padding=1, dilation=1), (2, 2, 5, 6)),
    (lambda: nn.Conv2d(2, 2, 2, stride=2, padding=0, dilation=2), (1, 2, 7, 7)),
    (lambda: nn.MaxPool2d(2), (2, 2, 4, 6)),
    (lambda: nn.MaxPool2d(3, 2, 1), (1, 2, 5, 5)),
    (lambda: nn.AvgPool2d(2, 1), (2, 2, 4, 4)),
    (lambda: nn.Flatten(), (2, 3, 4)),
    (lambda: nn.LayerNorm(4), (3, 4)),
    (lambda: nn.GELU(), (3, 4)),
    (lambda: nn.SiLU(), (3, 4)),
    (lambda: nn.Softplus(), (3, 4)),
    (lambda: nn.Sigmoid(), (3, 4)),
    (lambda: nn.Tanh(), (3, 4)),
    (lambda: nn.ReLU(), (3, 4)),
    (lambda: nn.SequentialCell(nn.Dense(3, 4), nn.Tanh(), nn.Dense(4, 2)), (5, 3)),
]


@pytest.mark.parametrize("make,shape", LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_layer_gradients(make, shape):
    _check_grads(make(), RNG.normal(size=shape))


def test_batchnorm_gradients_train_and_eval():
    bn = nn.BatchNorm(3)
    bn.gamma.__class__  # noqa: B018 - touch to show parameters exist
    x = RNG.normal(size=(6, 3, 2, 2))
    _check_grads(bn, x, training=True, buffers=f64(bn.buffers()))
    _check_grads(bn, x, training=False, buffers=f64(bn.buffers()))


def test_dropout_gradient_in_training():
    d = nn.Dropout(0.5)
    x = RNG.normal(size=(4, 6))
    w = RNG.normal(size=x.shape)

    def f(x):
        return np.sum(d.apply({}, x, training=True, key=nn.key(7))[0] * w)

    _, gx = value_and_grad(f)(x)
    mask = d.apply({}, np.ones_like(x), training=True, key=nn.key(7))[0]
    np.testing.assert_allclose(gx, w * mask, rtol=1e-12)   # the same mask, scaled by 1/(1-p)
    dx = RNG.normal(size=x.shape)
    fd = (f(x + 1e-6 * dx) - f(x - 1e-6 * dx)) / 2e-6
    assert abs(fd - np.sum(gx * dx)) < 1e-6


def test_embedding_gradient_is_a_scatter():
    e = nn.Embedding(5, 3)
    ids = np.array([1, 3, 1])
    params = f64(e.parameters())
    _, g = value_and_grad(lambda p: np.sum(e.apply(p, ids)[0]))(params)
    np.testing.assert_array_equal(g["embedding_table"][:, 0], [0, 2, 0, 1, 0])


# ---------------------------------------------------------------------------------------------
# Dropout, state, errors


def test_dropout_uses_explicit_keys():
    d = nn.Dropout(0.3)
    x = np.ones((200, 50), np.float32)
    assert d(x) is x  # eval: identity
    y1, _ = d.apply({}, x, training=True, key=nn.key(1))
    y2, _ = d.apply({}, x, training=True, key=nn.key(1))
    y3, _ = d.apply({}, x, training=True, key=nn.key(2))
    np.testing.assert_array_equal(y1, y2)
    assert np.any(y1 != y3)
    assert abs((y1 == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(y1[y1 != 0], 1 / 0.7, rtol=1e-6)
    with pytest.raises(SciMLError, match="explicit key"):
        d.apply({}, x, training=True)


def test_save_load_roundtrip(tmp_path):
    net = nn.SequentialCell(nn.Conv2d(1, 2, 3), nn.BatchNorm(2), nn.Flatten(), nn.Dense(8, 2))
    net.set_train(True)
    net(RNG.normal(size=(3, 1, 4, 4)).astype(np.float32))
    path = tmp_path / "net.npz"
    net.save(path)
    other = nn.SequentialCell(nn.Conv2d(1, 2, 3), nn.BatchNorm(2), nn.Flatten(),
                              nn.Dense(8, 2), )
    other.load(path)
    for a, b in ((net.parameters(), other.parameters()), (net.buffers(), other.buffers())):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(SciMLError, match="shape"):
        nn.Dense(3, 2).load_parameters({"weight": np.zeros((3, 3))})


def test_errors_name_the_layer_and_shapes():
    with pytest.raises(ShapeError, match=r"Dense: expected input \(\.\.\., 4\)"):
        nn.Dense(4, 2)(np.zeros((3, 5)))
    with pytest.raises(ShapeError, match="conv2d: input"):
        nn.Conv2d(3, 2, 3)(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ShapeError, match="smaller than the kernel"):
        nn.Conv2d(1, 1, 5)(np.zeros((1, 1, 3, 3)))
    with pytest.raises(ArityError, match="unknown params"):
        nn.Dense(2, 2).apply({"wieght": np.zeros((2, 2))}, np.zeros((1, 2)))
    with pytest.raises(ShapeError, match="BatchNorm"):
        nn.BatchNorm(3)(np.zeros((2, 4)))


def test_parameters_are_a_pytree_and_initializers():
    net = nn.SequentialCell(nn.Dense(30, 20, weight_init="xavier_normal"),
                            nn.Dense(20, 10, weight_init="he_uniform"))
    leaves, _ = sciml.tree_flatten(net.parameters())
    assert len(leaves) == 4 and all(v.dtype == np.float32 for v in leaves)
    w = nn.init.initialize("xavier_uniform", (300, 200), np.random.default_rng(0))
    assert abs(w.var() - 2 / 500) < 2e-4
    with pytest.raises(SciMLError, match="unknown initializer"):
        nn.init.initialize("glorot", (2, 2))


def test_docstrings_run():
    from sciml.nn import bprop, cell, functional, init, layers, losses, pinn, thor, train

    for m in (bprop, cell, functional, init, layers, losses, pinn, thor, train, nn):
        assert doctest.testmod(m).failed == 0, m.__name__


def test_second_order_through_conv_pool_dense():
    # Hessian-vector products (forward over reverse) of a small CNN's loss vs finite
    # differences of the gradient: the layers are compositions, so every order is available.
    from autodiff.api import grad, hvp

    net = nn.SequentialCell(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Dense(8, 1))
    x = RNG.normal(size=(2, 1, 4, 4))
    p = f64(net.parameters())

    def f(p):
        return np.sum(net.apply(p, x)[0] ** 2)

    v = {k: RNG.normal(size=a.shape) for k, a in p.items()}
    hv = hvp(f, (p,), (v,))
    g, h = grad(f), 1e-5
    plus = g({k: p[k] + h * v[k] for k in p})
    minus = g({k: p[k] - h * v[k] for k in p})
    for k in p:
        np.testing.assert_allclose(hv[k], (plus[k] - minus[k]) / (2 * h), rtol=1e-5, atol=1e-7)
