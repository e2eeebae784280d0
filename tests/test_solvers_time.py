"""Time integrators on the heat and advection equations: measured orders in space and time."""

import doctest

import numpy as np
import pytest

import solvers.time as tm
from solvers.errors import CFLError, NaNError, SolverError
from solvers.fd import Dirichlet, Periodic, diff, laplacian_matrix, upwind


def _orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


def test_doctests():
    assert doctest.testmod(tm, optionflags=doctest.ELLIPSIS).failed == 0


def heat_rhs(t, u, p):
    dx, bc, order = p
    return diff(u, dx, 0, 2, order, bc)


@pytest.mark.parametrize("order", [2, 4])
@pytest.mark.parametrize("bc", ["dirichlet", "periodic"])
def test_heat_space_order(order, bc):
    """u_t = u_xx against the analytic solution; RK4 with dt ~ dx^2 keeps time error tiny."""
    errors = []
    for n in (32, 64, 128):
        if bc == "dirichlet":  # u = exp(-pi^2 t) sin(pi x) on [0, 1]
            dx = 1.0 / (n + 1)
            x, k, b = dx * np.arange(1, n + 1), np.pi, Dirichlet(0.0, 0.0)
            u0 = np.sin(k * x)
        else:  # u = exp(-t) sin(x + 0.3) on [0, 2 pi)
            dx = 2 * np.pi / n
            x, k, b = dx * np.arange(n), 1.0, Periodic()
            u0 = np.sin(x + 0.3)
        T = 0.05
        dt = tm.stable_dt(dx, diffusivity=1.0, method="rk4", order=order) / 4
        steps = int(np.ceil(T / dt))
        _, u = tm.integrate(heat_rhs, u0, 0.0, T / steps, steps, (dx, b, order), "rk4")
        errors.append(np.max(np.abs(u - np.exp(-(k**2) * T) * u0)))
    assert np.all(np.abs(_orders(errors) - order) < 0.2), _orders(errors)


@pytest.mark.parametrize("method,p", [("euler", 1), ("ssprk3", 3), ("rk4", 4)])
def test_heat_time_order_explicit(method, p):
    """Periodic heat equation; the exact solution of the semi-discrete system is
    exp(lambda_h t) sin(x) with lambda_h the stencil's eigenvalue, so only time error remains."""
    n, T = 16, 1.0
    dx = 2 * np.pi / n
    x = dx * np.arange(n)
    lam = -(2 - 2 * np.cos(dx)) / dx**2
    exact = np.exp(lam * T) * np.sin(x)
    errors = []
    for steps in (40, 80, 160):
        _, u = tm.integrate(heat_rhs, np.sin(x), 0.0, T / steps, steps, (dx, Periodic(), 2), method)
        errors.append(np.max(np.abs(u - exact)))
    assert np.all(np.abs(_orders(errors) - p) < 0.2), _orders(errors)


@pytest.mark.parametrize("method,p", [("be", 1), ("cn", 2)])
def test_heat_time_order_implicit(method, p):
    """Dirichlet heat equation with a time-dependent source through the affine BC vector:
    u = exp(-t) sin(pi x) + 1 + x (boundary values 1 and 2), source (pi^2 - 1) exp(-t) sin(pi x)."""
    n = 31
    dx = 1.0 / (n + 1)
    x = dx * np.arange(1, n + 1)
    A, bvec = laplacian_matrix((n,), dx, Dirichlet(1.0, 2.0))
    lam = -(2 - 2 * np.cos(np.pi * dx)) / dx**2  # discrete eigenvalue of sin(pi x)
    source = lambda t: bvec + (-lam - 1) * np.exp(-t) * np.sin(np.pi * x)
    exact = np.exp(-1.0) * np.sin(np.pi * x) + 1 + x  # exact for the semi-discrete system
    errors = []
    for steps in (10, 20, 40):
        _, u = tm.integrate_linear(A, np.sin(np.pi * x) + 1 + x, 0.0, 1.0 / steps, steps,
                                   source, method)
        errors.append(np.max(np.abs(u - exact)))
    assert np.all(np.abs(_orders(errors) - p) < 0.2), _orders(errors)


def test_crank_nicolson_against_analytic_pde_solution():
    """Combined space (2) and time (2) convergence when dt ~ dx."""
    errors = []
    for n in (15, 31, 63):
        dx = 1.0 / (n + 1)
        x = dx * np.arange(1, n + 1)
        A, _ = laplacian_matrix((n,), dx, Dirichlet())
        steps = n + 1
        _, u = tm.integrate_linear(A, np.sin(np.pi * x), 0.0, 0.1 / steps, steps, None, "cn")
        errors.append(np.max(np.abs(u - np.exp(-np.pi**2 * 0.1) * np.sin(np.pi * x))))
    assert np.all(np.abs(_orders(errors) - 2) < 0.2), _orders(errors)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_advection_upwind_order(order):
    """u_t + c u_x = 0, periodic, c = 1: upwind of order k converges at order k."""
    def rhs(t, u, p):
        return -1.0 * upwind(u, 1.0, p, 0, order, Periodic())

    errors = []
    for n in (64, 128, 256):
        dx = 2 * np.pi / n
        x = dx * np.arange(n)
        steps = int(np.ceil(1.0 / (0.2 * dx)))
        _, u = tm.integrate(rhs, np.sin(x), 0.0, 1.0 / steps, steps, dx, "rk4")
        errors.append(np.max(np.abs(u - np.sin(x - 1.0))))
    assert np.all(np.abs(_orders(errors) - order) < 0.2), _orders(errors)


@pytest.mark.parametrize("method,p", [("be", 1), ("cn", 2)])
def test_newton_implicit_order(method, p):
    """y' = -y^2, y(0) = 1: y = 1 / (1 + t)."""
    rhs = lambda t, y, _: -(y**2)
    jac = lambda t, y, _: np.diag(-2 * y)
    errors = []
    for steps in (10, 20, 40):
        _, y = tm.integrate_implicit(rhs, jac, np.array([1.0]), 0.0, 1.0 / steps, steps,
                                     method=method)
        errors.append(abs(y[0] - 0.5))
    assert np.all(np.abs(_orders(errors) - p) < 0.2), _orders(errors)


def test_newton_implicit_matches_linear_stepper_on_linear_problem():
    n = 20
    A, _ = laplacian_matrix((n,), 1 / (n + 1), Dirichlet())
    u0 = np.random.default_rng(0).standard_normal(n)
    _, u_lin = tm.integrate_linear(A, u0, 0.0, 0.01, 5, None, "cn")
    _, u_nl = tm.integrate_implicit(lambda t, u, p: A @ u, lambda t, u, p: A, u0, 0.0, 0.01, 5,
                                    method="cn")
    np.testing.assert_allclose(u_nl, u_lin, atol=1e-10)


def test_cfl_limit_is_the_stability_boundary():
    """Forward Euler heat: just below the limit stays bounded, just above blows up."""
    n = 32
    dx = 1.0 / (n + 1)
    u0 = np.random.default_rng(1).standard_normal(n)
    limit = tm.stable_dt(dx, diffusivity=1.0, method="euler")
    p = (dx, Dirichlet(), 2)
    _, ok = tm.integrate(heat_rhs, u0, 0.0, 0.99 * limit, 2000, p, "euler")
    _, bad = tm.integrate(heat_rhs, u0, 0.0, 1.05 * limit, 2000, p, "euler", check_every=0)
    assert np.max(np.abs(ok)) < np.max(np.abs(u0))
    assert np.max(np.abs(bad)) > 1e3


def test_cfl_error_message():
    with pytest.raises(CFLError, match=r"dt=0.01 .*dx=0.001.*speed=3.0"):
        tm.check_cfl(0.01, 0.001, speed=3.0)
    with pytest.raises(CFLError, match="diffusivity=1.0"):
        tm.check_cfl(1e-3, 0.01, diffusivity=1.0, method="rk4")
    assert tm.check_cfl(4e-5, 0.01, diffusivity=1.0) == pytest.approx(5e-5)


def test_nan_detection_and_bad_method():
    with pytest.raises(NaNError, match="t=.*step"):
        tm.integrate(lambda t, y, p: y * np.nan, np.ones(3), 0.0, 0.1, 20)
    with pytest.raises(SolverError, match="method='rk5'"):
        tm.integrate(lambda t, y, p: y, np.ones(3), 0.0, 0.1, 2, method="rk5")


def test_integrate_save_every_returns_trajectory():
    ts, ys = tm.integrate(lambda t, y, p: -y, np.ones(2), 0.0, 0.01, 100, method="rk4",
                          save_every=25)
    np.testing.assert_allclose(ts, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(ys[:, 0], np.exp(-ts), rtol=1e-9)
