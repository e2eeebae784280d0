"""Training end to end: TrainOneStep, the digits CNN (smoke by default, full accuracy, bf16 and
THOR-vs-momentum marked slow), bprop cells, PINN derivatives and the Poisson PINN."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import sciml.nn as nn
import sciml.optim as optim
from sciml.errors import ShapeError, UnsupportedError
from sciml.nn.pinn import derivative_values, pinn_loss

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    import contextlib

    def threadpool_limits(n):
        return contextlib.nullcontext()

RNG = np.random.default_rng(3)


def _example(name):
    """Import examples/<name>.py by path (examples/ is not an installed package)."""
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


digits, pinn_poisson, pinn_burgers = (_example(n) for n in ("digits", "pinn_poisson",
                                                            "pinn_burgers"))


def test_compiled_step_equals_eager_step():
    def make():
        net = nn.SequentialCell(nn.Conv2d(1, 2, 3, padding=1, rng=np.random.default_rng(0)),
                                nn.BatchNorm(2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                nn.Dropout(0.2), nn.Dense(8, 3, rng=np.random.default_rng(1)))
        return nn.TrainOneStep(net, nn.SoftmaxCrossEntropyWithLogits(), optim.Adam(1e-2))

    x = RNG.normal(size=(4, 1, 4, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 1])
    a, b = make(), make()
    b._step = b._pure_step  # eager, op by op
    sa, sb = a.init(), b.init()
    for i in range(3):
        sa, la = a(sa, x, y, key=nn.key(i))
        sb, lb = b(sb, x, y, key=nn.key(i))
        np.testing.assert_allclose(la, lb, rtol=1e-5)
    for k in sa["params"]:
        np.testing.assert_allclose(sa["params"][k], sb["params"][k], rtol=1e-4, atol=1e-6)
    for k in sa["buffers"]:
        np.testing.assert_allclose(sa["buffers"][k], sb["buffers"][k], rtol=1e-5)
    assert len(a._step.cache) == 1  # traced once


def test_step_reuses_the_state_it_is_given_and_leaves_the_net_alone():
    def make(donate):
        net = nn.SequentialCell(nn.Dense(6, 32, rng=np.random.default_rng(0)), nn.ReLU(),
                                nn.Dense(32, 3, rng=np.random.default_rng(1)))
        return net, nn.TrainOneStep(net, nn.SoftmaxCrossEntropyWithLogits(), optim.Adam(1e-2),
                                    donate=donate)

    x = RNG.normal(size=(16, 6)).astype(np.float32)
    y = RNG.integers(0, 3, 16)
    (net, a), (_, b) = make(True), make(False)
    before = {k: v.copy() for k, v in net.parameters().items()}
    sa, sb = a.init(), b.init()
    for _ in range(3):
        ids = {id(v) for v in sa["params"].values()}
        sa, la = a(sa, x, y)
        sb, lb = b(sb, x, y)
        assert float(la) == float(lb)
    assert ids & {id(v) for v in sa["params"].values()}  # updated in place
    for k in sa["params"]:
        np.testing.assert_array_equal(sa["params"][k], sb["params"][k])
        np.testing.assert_array_equal(net.parameters()[k], before[k])


def test_compiled_conv_gradients_match_finite_differences():
    # The compiled path (Schedule with the numba im2col/col2im and buffers) in float64: strided,
    # dilated and padded convolutions, an overlapping pool, against central differences.
    rng = np.random.default_rng(5)
    net = nn.SequentialCell(nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=rng), nn.Tanh(),
                            nn.Conv2d(3, 2, 2, dilation=2, padding=(1, 0), rng=rng),
                            nn.MaxPool2d(3, 1, 1), nn.Flatten(), nn.Dense(2 * 4 * 1, 1, rng=rng))
    params = {k: v.astype(np.float64) for k, v in net.parameters().items()}
    x = rng.normal(size=(2, 2, 7, 6))

    def loss(p, x):
        return np.sum(np.sin(net.apply(p, x)[0]))

    fun = nn.compiled(nn.value_and_grad(loss))
    for _ in range(2):  # the second call replays the schedule with its buffers
        value, grads = fun(params, x)
    assert np.isclose(value, loss(params, x), rtol=1e-12)
    dp = {k: rng.normal(size=v.shape) for k, v in params.items()}
    h = 1e-6
    fd = (loss({k: params[k] + h * dp[k] for k in params}, x)
          - loss({k: params[k] - h * dp[k] for k in params}, x)) / (2 * h)
    ad = sum(np.sum(grads[k] * dp[k]) for k in params)
    assert abs(fd - ad) <= 1e-7 * max(1.0, abs(fd))


def test_digits_smoke():
    with threadpool_limits(1):
        acc, accs, secs = digits.train(epochs=2, batch=64)
    assert acc > 0.85, accs


@pytest.mark.slow
def test_digits_cnn_above_97_percent_and_bf16_within_1_percent():
    with threadpool_limits(1):
        acc32, _, secs = digits.train(epochs=15)
        acc16, _, _ = digits.train(epochs=15, policy="mixed-bf16")
    assert acc32 > 0.97 and secs < 60
    assert abs(acc32 - acc16) <= 0.01


@pytest.mark.slow
def test_thor_reaches_97_percent_in_fewer_epochs_than_momentum():
    def epochs_to(optimizer, target=0.97, max_epochs=8):
        _, accs, _ = digits.train(epochs=max_epochs, optimizer=optimizer)
        hit = [i + 1 for i, a in enumerate(accs) if a >= target]
        return hit[0] if hit else max_epochs + 1

    with threadpool_limits(1):
        assert epochs_to("thor") < epochs_to("momentum")


def test_bprop_replaces_the_backward_pass_in_training():
    class ScaleGrad(nn.Cell):  # forward identity, backward times 0
        def construct(self, x):
            return x * 1.0

        def bprop(self, x, out, dout):
            return (dout * 0.0,)

    net = nn.SequentialCell(nn.Dense(2, 2), ScaleGrad(), nn.Dense(2, 1))
    step = nn.TrainOneStep(net, nn.MSELoss(), optim.SGD(0.1))
    state = step.init()
    before = dict(state["params"])
    state, _ = step(state, np.ones((3, 2), np.float32), np.zeros((3, 1), np.float32))
    np.testing.assert_array_equal(state["params"]["0.weight"], before["0.weight"])
    assert np.any(state["params"]["2.weight"] != before["2.weight"])

    class Owning(ScaleGrad):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(UnsupportedError, match="owns parameters"):
        Owning()(np.ones(2))


def test_pinn_derivatives_match_closed_forms():
    x, y = sp.symbols("x y")
    u = sp.Function("u")

    def fn(params, p):  # u = sin(a x) exp(y), a parameter
        return np.sin(params["a"] * p[:, 0]) * np.exp(p[:, 1])

    params = {"a": np.float64(1.3)}
    pts = RNG.uniform(-1, 1, size=(7, 2))
    from sciml.nn.pinn import _derivative_symbols

    expr = u(x, y).diff(x, 2) + u(x, y).diff(x, y) + u(x, y).diff(y, 3) + u(x, y)
    _, table = _derivative_symbols(expr, [x, y], u)
    got = derivative_values(fn, params, pts, table)
    a, X, Y = 1.3, pts[:, 0], pts[:, 1]
    want = {(2, 0): -a * a * np.sin(a * X) * np.exp(Y), (1, 1): a * np.cos(a * X) * np.exp(Y),
            (0, 3): np.sin(a * X) * np.exp(Y), (0, 0): np.sin(a * X) * np.exp(Y)}
    for s, orders in table.items():
        np.testing.assert_allclose(got[s], want[orders], rtol=1e-10, atol=1e-12)


def test_pinn_loss_errors():
    x, y = sp.symbols("x y")
    u = sp.Function("u")
    net = nn.Dense(2, 1)
    with pytest.raises(UnsupportedError, match="mixed derivative"):
        pinn_loss(u(x, y).diff(x, 2, y), net, [x, y], u, np.zeros((3, 2)))(net.parameters())
    with pytest.raises(ShapeError, match=r"points must be \(B, 2\)"):
        pinn_loss(u(x, y), net, [x, y], u, np.zeros((3, 3)))


def test_poisson_pinn_matches_the_analytic_solution():
    with threadpool_limits(1):
        err, _, _, info = pinn_poisson.solve(n_points=24, adam_steps=150, lbfgs_iters=200)
    assert err < 1e-2, err
    assert info["loss"][-1] < info["loss"][0]


def test_burgers_residual_vanishes_on_the_exact_solution():
    b = pinn_burgers
    x, t = sp.symbols("x t")
    u = sp.Function("u")
    residual = u(x, t).diff(t) + u(x, t) * u(x, t).diff(x) - b.NU * u(x, t).diff(x, 2)

    def exact(params, p):  # the Cole-Hopf solution written with traceable numpy
        e = np.exp(-b.NU * np.pi ** 2 * p[:, 1])
        return 2 * b.NU * np.pi * e * np.sin(np.pi * p[:, 0]) / (b.A + e * np.cos(np.pi * p[:, 0]))

    pts = RNG.uniform([-1, 0], [1, 1], size=(50, 2))
    assert float(pinn_loss(residual, exact, [x, t], u, pts)({})) < 1e-25
    wrong = pinn_loss(residual + u(x, t).diff(x), exact, [x, t], u, pts)({})
    assert float(wrong) > 1e-3


@pytest.mark.slow
def test_burgers_pinn_matches_the_cole_hopf_solution():
    with threadpool_limits(1):
        err, _ = pinn_burgers.solve()
    assert err < 1e-2, err


def test_mnist_from_a_local_file(tmp_path):
    # The MNIST path: a small stand-in file with MNIST's keys, shapes and dtypes.
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 64, dtype=np.uint8),
             x_test=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             y_test=rng.integers(0, 10, 64, dtype=np.uint8))
    data = digits.load_mnist(path)
    assert data[0].shape == (64, 1, 28, 28) and data[0].dtype == np.float32
    assert data[0].max() <= 1.0 and data[1].dtype == np.int64
    with threadpool_limits(1):
        acc, accs, _ = digits.train(epochs=1, data=data)
    assert 0.0 <= acc <= 1.0 and len(accs) == 1


def test_cell_runs_under_kernels_jit():
    from kernels.jit import jit

    net = nn.SequentialCell(nn.Dense(3, 8), nn.Tanh(), nn.Dense(8, 2))
    x = RNG.normal(size=(5, 3)).astype(np.float32)
    y = jit(lambda p, x: net.apply(p, x)[0])(net.parameters(), x)
    np.testing.assert_allclose(y, net(x), rtol=1e-5, atol=1e-6)


def test_learned_closure_inside_a_pde_step_trains_through_the_solver():
    # Truth: u_t = nu u_xx - 3 u (periodic, explicit Euler). Model: the same diffusion plus a
    # network closure N(u) applied pointwise, trained through 20 solver steps (reverse mode
    # through a scan over the steps) so that the final states match.
    import sciml

    nu, dt, n, steps = 0.5, 0.002, 32, 20
    dx = 1.0 / n
    xs = np.arange(n) * dx
    u0 = np.stack([np.sin(2 * np.pi * xs), np.cos(4 * np.pi * xs) + 0.5]).astype(np.float64)

    def run(closure, u):
        def step(u, _):
            lap = (np.roll(u, 1, axis=-1) - 2 * u + np.roll(u, -1, axis=-1)) / dx ** 2
            return u + dt * (nu * lap + closure(u)), None
        return sciml.scan(step, u, None, length=steps)[0]

    target = run(lambda u: -3.0 * u, u0)
    net = nn.Dense(1, 1, weight_init="zeros", bias_init="zeros")

    def loss(p):
        closure = lambda u: net.apply(p, u[..., None])[0][..., 0]  # noqa: E731
        return np.mean((run(closure, u0) - target) ** 2)

    fun = nn.compiled(nn.value_and_grad(loss))
    params = {k: v.astype(np.float64) for k, v in net.parameters().items()}
    l0 = float(fun(params)[0])
    params, info = optim.LBFGS(max_iter=50).minimize(fun, params)
    assert info["loss"][-1] < 1e-8 * l0
    np.testing.assert_allclose(params["weight"], [[-3.0]], rtol=1e-3)
    np.testing.assert_allclose(params["bias"], [0.0], atol=1e-3)
