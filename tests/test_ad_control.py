"""Differentiation through cond, fori_loop, scan and while_loop in every mode, gradients of a
1000-step explicit time integration, and checkpointed (binomial) scans."""

from __future__ import annotations

import numpy as np
import pytest

import sciml  # noqa: F401  (attaches the numpy handlers)
from autodiff.api import grad, jacfwd, jacrev, jvp, vjp
from autodiff.checkpoint import (
    checkpoint,
    checkpointed_fori_loop,
    checkpointed_scan,
    peak_live_bytes,
)
from autodiff.errors import NotDifferentiableError
from autodiff.ops.control import cond, fori_loop, scan, switch, while_loop
from autodiff.trace import make_graph
from autodiff.transpose import vjp_graph


def fd_grad(f, x, h=1e-6):
    x = np.asarray(x, float)
    if x.ndim == 0:
        return (f(x + h) - f(x - h)) / (2 * h)
    e = np.eye(x.size).reshape((x.size,) + x.shape)
    return np.array([(f(x + h * d) - f(x - h * d)) / (2 * h) for d in e]).reshape(x.shape)


def check_all_modes(f, x, rtol=1e-7):
    """grad, jvp, jacfwd, jacrev and vjp of scalar f agree with finite differences."""
    want = fd_grad(f, x)
    np.testing.assert_allclose(grad(f)(x), want, rtol=rtol, atol=1e-9)
    v = np.random.default_rng(0).standard_normal(np.shape(x))
    _, t = jvp(f, (x,), (v,))
    assert float(t) == pytest.approx(float(np.sum(want * v)), rel=rtol, abs=1e-9)
    np.testing.assert_allclose(jacfwd(f)(x), want, rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(jacrev(f)(x), want, rtol=rtol, atol=1e-9)
    _, pull = vjp(f, x)
    np.testing.assert_allclose(pull(np.float64(2.0))[0], 2 * want, rtol=rtol, atol=1e-9)


X = np.array([0.3, -0.7, 1.1])


def test_cond_both_branches():
    def f(x):
        return cond(x[0] > 0, lambda v: np.sum(np.sin(v) * v), lambda v: np.sum(v ** 3), x)

    check_all_modes(f, X)
    check_all_modes(f, -X)


def test_switch_with_captured_values():
    def f(x):
        w = np.exp(x)
        branches = [lambda v: np.sum(v * w), lambda v: np.sum(np.cos(v) * w[0]),
                    lambda v: np.sum(v * v)]
        return switch(np.int64(1), branches, x)

    check_all_modes(f, X)


def test_fori_loop_with_captures():
    def f(x):
        return np.sum(fori_loop(0, 6, lambda i, c: np.sin(c) * x[0] + c * 0.5 + i * 0.1, x))

    check_all_modes(f, X)


def test_scan_with_xs_ys_and_reverse():
    def f(x):
        c, ys = scan(lambda c, xi: (c * np.cos(xi) + x[0] * xi, c * xi ** 2), 1.0, x)
        c2, ys2 = scan(lambda c, xi: (c + np.sin(xi * c), c), c, ys, reverse=True)
        return c2 + np.sum(ys2 * ys)

    check_all_modes(f, X)


def test_nested_loops_and_second_derivatives():
    def f(x):
        def outer(i, c):
            return fori_loop(0, 3, lambda j, d: d * np.tanh(d + x) + 0.1, c)

        return np.sum(fori_loop(0, 2, outer, x))

    check_all_modes(f, X)
    h = jacfwd(grad(f))(X)
    np.testing.assert_allclose(h, h.T, rtol=1e-9, atol=1e-12)
    rows = [fd_grad(lambda y, i=i: grad(f)(y)[i], X) for i in range(3)]
    np.testing.assert_allclose(h, np.stack(rows), rtol=1e-6, atol=1e-8)


def test_while_loop_forward_and_reverse_with_max_steps():
    def f(x):
        def body(c):
            return c[0] + 1, c[1] * 1.3 + np.sin(c[1]) * x

        # The trip count depends on the data; max_steps bounds it for reverse mode.
        return np.sum(while_loop(lambda c: np.sum(c[1]) < 8.0, body, (0, x), max_steps=40)[1])

    check_all_modes(f, X)


def test_while_loop_without_max_steps_forward_only():
    def f(x):
        return while_loop(lambda c: c[0] < 4, lambda c: (c[0] + 1, c[1] * x), (0, x))[1]

    _, t = jvp(f, (1.5,), (1.0,))
    assert float(t) == pytest.approx(5 * 1.5 ** 4)
    assert float(jacfwd(f)(1.5)) == pytest.approx(5 * 1.5 ** 4)
    with pytest.raises(NotDifferentiableError, match="max_steps"):
        grad(f)(1.5)


def test_fori_loop_with_traced_bounds_reverse_raises():
    def f(x, n):
        return fori_loop(0, n, lambda i, c: c * x, x)

    assert float(jvp(lambda x: f(x, np.int64(3)), (2.0,), (1.0,))[1]) == pytest.approx(32.0)
    with pytest.raises(NotDifferentiableError, match="constant bounds"):
        grad(f)(2.0, np.int64(3))


# ---------------------------------------------------------------------------------------------
# A 1000-step explicit time integration (viscous Burgers, periodic, forward Euler)

NX = 32
DX = 2 * np.pi / NX
DT = 2e-3
U0 = np.sin(np.arange(NX) * DX) + 0.5


def euler_step(u, nu):
    lap = (np.roll(u, 1) - 2 * u + np.roll(u, -1)) / DX ** 2
    adv = u * (np.roll(u, -1) - np.roll(u, 1)) / (2 * DX)
    return u + DT * (nu * lap - adv)


def simulate_fori(params, steps=1000):
    nu, amp = params[0], params[1]
    u = fori_loop(0, steps, lambda i, u: euler_step(u, nu), U0 * amp)
    return np.sum(u ** 2) * DX


def simulate_scan(params, steps=1000, scan_fn=scan):
    nu, amp = params[0], params[1]
    u, ys = scan_fn(lambda u, _: (euler_step(u, nu), u[0]), U0 * amp, None, length=steps)
    return np.sum(u ** 2) * DX + np.sum(ys) * DT


P0 = np.array([0.08, 1.0])


def test_gradient_through_1000_step_fori_integration_matches_fd():
    g = grad(simulate_fori)(P0)
    np.testing.assert_allclose(g, fd_grad(simulate_fori, P0), rtol=1e-6)


def test_gradient_through_1000_step_scan_integration_matches_fd():
    g = grad(simulate_scan)(P0)
    np.testing.assert_allclose(g, fd_grad(simulate_scan, P0), rtol=1e-6)


def test_checkpointed_scan_gives_the_same_values_and_gradients():
    ck = lambda p: simulate_scan(p, 101, checkpointed_scan)  # noqa: E731
    plain = lambda p: simulate_scan(p, 101)  # noqa: E731
    assert float(ck(P0)) == pytest.approx(float(plain(P0)), rel=1e-14)
    np.testing.assert_allclose(grad(ck)(P0), grad(plain)(P0), rtol=1e-12)
    np.testing.assert_allclose(jacfwd(ck)(P0), grad(plain)(P0), rtol=1e-12)


def test_checkpointed_fori_loop_matches_fori_loop():
    def f(p, loop):
        return np.sum(loop(0, 37, lambda i, u: euler_step(u, p[0]) * (1 + 0.001 * i),
                           U0 * p[1]) ** 2)

    ck = lambda p: f(p, checkpointed_fori_loop)  # noqa: E731
    plain = lambda p: f(p, fori_loop)  # noqa: E731
    assert float(ck(P0)) == pytest.approx(float(plain(P0)), rel=1e-14)
    np.testing.assert_allclose(grad(ck)(P0), grad(plain)(P0), rtol=1e-12)


@pytest.mark.slow
def test_checkpointed_1000_step_gradient_matches_fd():
    ck = lambda p: simulate_scan(p, 1000, checkpointed_scan)  # noqa: E731
    np.testing.assert_allclose(grad(ck)(P0), fd_grad(ck, P0), rtol=1e-6)


def simulate_carry_only(params, steps, scan_fn):
    u, _ = scan_fn(lambda u, _: (euler_step(u, params[0]), None), U0 * params[1], None,
                   length=steps)
    return np.sum(u ** 2) * DX


def _peak_carries(steps, scan_fn):
    # No per-step outputs: stacked ys are outputs (O(n) by definition), not stored carries.
    g = make_graph(lambda p: simulate_carry_only(p, steps, scan_fn), P0)
    vg = vjp_graph(g)
    return peak_live_bytes(vg, [P0, np.float64(1.0)]) / U0.nbytes


def test_binomial_checkpointing_stores_logarithmically_many_carries(capsys):
    sizes = [8, 32, 128]
    plain = [_peak_carries(n, scan) for n in sizes]
    binom = [_peak_carries(n, checkpointed_scan) for n in sizes]
    with capsys.disabled():
        print(f"\npeak live memory of the reverse pass, in carries, n = {sizes}: "
              f"stored {plain}, binomial {binom}")
    # Storing: grows like n. Binomial: a constant per doubling of n (O(log n)).
    assert plain[2] / plain[1] > 3.5 and plain[1] / plain[0] > 3.0
    per_doubling = [(b - a) / 2 for a, b in zip(binom, binom[1:])]
    assert max(per_doubling) <= 8, binom  # measured: 6 carries per doubling
    assert binom[2] < plain[2] / 10


def test_checkpoint_recomputes_instead_of_storing():
    def f(x):
        y = checkpoint(lambda v: np.sin(np.sin(np.sin(v))))(x)
        return np.sum(y * y)

    x = np.linspace(0.1, 1.0, 1000)
    g = make_graph(f, x)
    plain = make_graph(lambda v: np.sum(np.sin(np.sin(np.sin(v))) ** 2), x)
    mem_ck = peak_live_bytes(vjp_graph(g), [x, np.float64(1.0)])
    mem_plain = peak_live_bytes(vjp_graph(plain), [x, np.float64(1.0)])
    assert mem_ck < mem_plain
    np.testing.assert_allclose(grad(f)(x), grad(lambda v: np.sum(np.sin(np.sin(np.sin(v)))
                                                                 ** 2))(x), rtol=1e-14)


def test_higher_order_reverse_over_reverse_through_all_control_flow():
    def f(x):
        c, ys = scan(lambda c, xi: (c * np.cos(xi) + x[0] * xi, c * xi ** 2), 1.0, x)
        d = fori_loop(0, 3, lambda i, v: np.sin(v) * x[1] + v, x)
        e = cond(x[0] > 0, lambda v: np.sum(v ** 3), lambda v: np.sum(v), x)
        w = while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * np.tanh(c[1] + x)),
                       (0, x), max_steps=5)[1]
        k, _ = checkpointed_scan(lambda c, xi: (np.sin(c * xi), None), 0.5, x)
        return c + np.sum(ys) + np.sum(d) + e + np.sum(w) + k

    h = jacrev(grad(f))(X)
    fd_h = np.stack([fd_grad(lambda y, i=i: grad(f)(y)[i], X, 1e-5) for i in range(3)])
    np.testing.assert_allclose(h, fd_h, rtol=1e-7, atol=1e-8)
    # Third order: d/dx of the (0, 1) Hessian entry, by grad of grad of grad.
    g3 = grad(lambda x: grad(lambda y: grad(f)(y)[0])(x)[1])(X)
    e0, hstep = np.eye(3)[2], 1e-5
    fd3 = (jacrev(grad(f))(X + hstep * e0)[0, 1] - jacrev(grad(f))(X - hstep * e0)[0, 1]) / (
        2 * hstep)
    assert float(g3[2]) == pytest.approx(float(fd3), rel=1e-6)
