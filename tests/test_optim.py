"""sciml.optim: updates against hand-written numpy references, L-BFGS against scipy, THOR's
preconditioner against the explicit Kronecker-factored solve."""

import doctest

import numpy as np
import pytest
import scipy.optimize

import sciml
import sciml.nn as nn
import sciml.optim as optim
from sciml.errors import SciMLError

RNG = np.random.default_rng(1)


def _run(opt, steps=4):
    p = {"a": RNG.normal(size=(3, 2)), "b": RNG.normal(size=4)}
    gs = [{k: RNG.normal(size=v.shape) for k, v in p.items()} for _ in range(steps)]
    s = opt.init(p)
    out = p
    for g in gs:
        out, s = opt.update(g, s, out)
    return p, gs, out


def test_sgd_with_weight_decay():
    p, gs, out = _run(optim.SGD(0.1, weight_decay=0.01))
    for k in p:
        ref = p[k]
        for g in gs:
            ref = ref - 0.1 * (g[k] + 0.01 * ref)
        np.testing.assert_allclose(out[k], ref, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum(nesterov):
    p, gs, out = _run(optim.Momentum(0.1, 0.8, nesterov=nesterov))
    for k in p:
        ref, v = p[k], 0
        for g in gs:
            v = 0.8 * v + g[k]
            ref = ref - 0.1 * (g[k] + 0.8 * v if nesterov else v)
        np.testing.assert_allclose(out[k], ref, rtol=1e-12)


@pytest.mark.parametrize("cls,wd", [(optim.Adam, 0.0), (optim.Adam, 0.1), (optim.AdamW, 0.1)])
def test_adam_family(cls, wd):
    p, gs, out = _run(cls(0.01, 0.9, 0.99, 1e-8, weight_decay=wd))
    for k in p:
        ref, m, v = p[k], 0, 0
        for t, g in enumerate(gs, 1):
            g = g[k] + (wd * ref if cls is optim.Adam else 0)
            m, v = 0.9 * m + 0.1 * g, 0.99 * v + 0.01 * g * g
            d = (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.99 ** t)) + 1e-8)
            ref = ref - 0.01 * (d + (wd * ref if cls is optim.AdamW else 0))
        np.testing.assert_allclose(out[k], ref, rtol=1e-6)


def test_updates_trace_and_lr_schedule():
    opt = optim.Adam(lambda step: 0.1 / (1 + step))
    p = {"w": np.ones(3, np.float32)}
    g = {"w": np.full(3, 0.5, np.float32)}
    s = opt.init(p)
    graph = sciml.make_graph(opt.update, g, s, p)
    traced = sciml.eval_graph(graph, g, s, p)
    eager = opt.update(g, s, p)
    np.testing.assert_allclose(traced[0]["w"], eager[0]["w"], rtol=1e-6)
    assert eager[0]["w"].dtype == np.float32


def test_update_errors():
    with pytest.raises(SciMLError, match="gradient shape"):
        optim.SGD(0.1).update({"w": np.zeros(2)}, {"step": np.int32(0)}, {"w": np.zeros(3)})
    with pytest.raises(SciMLError, match="does not match"):
        optim.SGD(0.1).update({"v": np.zeros(2)}, {"step": np.int32(0)}, {"w": np.zeros(2)})


def test_lbfgs_rosenbrock_matches_scipy():
    def fun(p):
        x = p["x"]
        f = scipy.optimize.rosen(x)
        return f, {"x": scipy.optimize.rosen_der(x)}

    x0 = np.array([-1.2, 1.0, -0.5, 0.8])
    p, info = optim.LBFGS(max_iter=200, tol=1e-9).minimize(fun, {"x": x0})
    ref = scipy.optimize.minimize(scipy.optimize.rosen, x0, jac=scipy.optimize.rosen_der,
                                  method="L-BFGS-B", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(p["x"], ref, atol=1e-5)
    np.testing.assert_allclose(p["x"], 1.0, atol=1e-5)
    assert info["loss"][-1] < 1e-10


def test_thor_preconditioner_is_the_kronecker_solve():
    # For one Dense layer [W b], update = G^-1 [dW db] A^-1: check against kron(A, G) solve.
    opt = optim.THOR(lr=1.0, momentum=0.0, damping=0.04, decay=0.0)
    a = RNG.normal(size=(5, 4))
    g = RNG.normal(size=(3, 3))
    A, G = a.T @ a, g.T @ g
    state = opt.refresh(opt.init({"weight": np.zeros((3, 3)), "bias": np.zeros(3)}),
                        {"": (A, G)})
    grads = {"weight": RNG.normal(size=(3, 3)), "bias": RNG.normal(size=3)}
    pre = optim.THOR._precondition(grads, "", *state["inv"][""])
    gw = np.concatenate([grads["weight"], grads["bias"][:, None]], axis=1)
    r = np.sqrt(0.04)
    fisher = np.kron(A + r * np.eye(4), G + r * np.eye(3))  # column-major vec(dW) convention
    ref = np.linalg.solve(fisher, gw.flatten(order="F")).reshape(gw.shape, order="F")
    np.testing.assert_allclose(pre["weight"], ref[:, :3], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pre["bias"], ref[:, 3], rtol=1e-4, atol=1e-6)


def test_thor_factors_of_a_dense_layer():
    # The tapped step measures A = [a 1]^T [a 1] / N and G = N ds^T ds for a mean loss.
    net = nn.Dense(3, 2, bias_init="normal")
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    y = RNG.normal(size=(6, 2)).astype(np.float32)
    step = optim.THOR(0.1).train_step(net, nn.MSELoss())
    state = step.init()
    probes = step._probes(state, x)
    grads, loss, factors, _ = step._tapped(state["params"], state["buffers"], probes, x, y)
    a1 = np.concatenate([x, np.ones((6, 1))], axis=1)
    np.testing.assert_allclose(factors[""][0], a1.T @ a1 / 6, rtol=1e-5)
    ds = 2 * (net(x) - y) / y.size
    np.testing.assert_allclose(factors[""][1], 6 * ds.T @ ds, rtol=1e-4)
    np.testing.assert_allclose(grads["weight"], ds.T @ x, rtol=1e-4, atol=1e-7)


def test_clip_by_global_norm():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}
    c = optim.clip_by_global_norm(g, 1.0)
    np.testing.assert_allclose(float(optim.global_norm(c)), 1.0, rtol=1e-9)


def test_docstrings_run():
    assert doctest.testmod(optim).failed == 0


def test_thor_step_updates_batchnorm_buffers_and_feeds_dropout_keys():
    net = nn.SequentialCell(nn.Dense(3, 4), nn.BatchNorm(4), nn.ReLU(), nn.Dropout(0.1),
                            nn.Dense(4, 2))
    step = optim.THOR(0.05, frequency=2).train_step(net, nn.SoftmaxCrossEntropyWithLogits())
    state = step.init()
    x = RNG.normal(size=(8, 3)).astype(np.float32)
    y = RNG.integers(0, 2, 8)
    losses = []
    for i in range(6):  # refresh steps 0, 2, 4 and ordinary steps between
        state, loss = step(state, x, y, key=nn.key(i))
        losses.append(float(loss))
    assert np.any(state["buffers"]["1.moving_mean"] != 0)
    assert set(state["opt"]["inv"]) == {"0.", "4."}
    assert losses[-1] < losses[0]
