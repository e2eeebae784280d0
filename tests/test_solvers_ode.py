"""Adaptive ODE solvers against closed forms, scipy, and on Robertson's stiff problem."""

import doctest

import numpy as np
import pytest
import scipy.integrate as si
import scipy.sparse as sp

import solvers.ode as ode
from solvers.errors import ConvergenceError, NaNError, SolverError
from solvers.ode import solve_ivp


def test_doctests():
    assert doctest.testmod(ode).failed == 0


def oscillator(t, y, p):
    return np.array([y[1], -y[0]])


def forced(t, y, p):
    """y' = -2 y + cos(t): non-autonomous, y = (2 cos t + sin t)/5 + (y0 - 2/5) e^{-2t}."""
    return -2 * y + np.cos(t)


def forced_exact(t, y0=1.0):
    return (2 * np.cos(t) + np.sin(t)) / 5 + (y0 - 0.4) * np.exp(-2 * t)


@pytest.mark.parametrize("method", ["DOPRI5", "Rodas4"])
def test_closed_forms(method):
    r = solve_ivp(oscillator, (0, 10), [1.0, 0.0], method, rtol=1e-9, atol=1e-12)
    assert np.abs(r.y[:, -1] - [np.cos(10), -np.sin(10)]).max() < 1e-7
    r = solve_ivp(forced, (0, 5), [1.0], method, rtol=1e-9, atol=1e-12)
    assert abs(r.y[0, -1] - forced_exact(5.0)) < 1e-8
    assert r.status == 0 and r.success and r.t[-1] == 5.0


def test_dopri5_matches_scipy_rk45():
    """Same tableau and controller as scipy's RK45: about the same work, same answer."""
    ours = solve_ivp(oscillator, (0, 10), [1.0, 0.0], rtol=1e-8, atol=1e-10)
    ref = si.solve_ivp(lambda t, y: oscillator(t, y, None), (0, 10), [1.0, 0.0],
                       rtol=1e-8, atol=1e-10)
    assert abs(ours.nsteps - (len(ref.t) - 1)) <= 3, (ours.nsteps, len(ref.t) - 1)
    np.testing.assert_allclose(ours.y[:, -1], ref.y[:, -1], atol=1e-9)


def test_backward_integration():
    r = solve_ivp(oscillator, (10, 0), [np.cos(10), -np.sin(10)], rtol=1e-10, atol=1e-12,
                  dense_output=True)
    assert np.abs(r.y[:, -1] - [1.0, 0.0]).max() < 1e-8
    assert abs(r.sol(3.3)[0] - np.cos(3.3)) < 1e-8


@pytest.mark.parametrize("method,tol", [("DOPRI5", 1e-6), ("Rodas4", 1e-5)])
def test_dense_output_and_t_eval(method, tol):
    r = solve_ivp(forced, (0, 3), [1.0], method, rtol=1e-6, atol=1e-9, dense_output=True)
    tt = np.linspace(0, 3, 301)
    assert np.abs(r.sol(tt)[0] - forced_exact(tt)).max() < tol
    assert r.sol(1.5).shape == (1,)
    r2 = solve_ivp(forced, (0, 3), [1.0], method, t_eval=tt, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(r2.t, tt)
    assert np.abs(r2.y[0] - forced_exact(tt)).max() < tol


def test_dense_output_order_dopri5():
    """The continuous extension is 4th order: halving h at fixed steps divides the
    midpoint error by about 2^5 (local error O(h^5))."""
    errs = []
    for h in (0.2, 0.1):
        y0 = np.array([1.0])
        y_new, _, _, K = ode.dopri5_step(forced, 0.0, y0, h, forced(0, y0, None))
        coeffs = ode.dopri5_dense(np.array([1.0]), h, K)
        mid = np.power(0.5, np.arange(5)) @ coeffs
        errs.append(abs(mid[0] - forced_exact(h / 2)))
    assert 4.6 < np.log2(errs[0] / errs[1]) < 5.4


def test_rodas4_fixed_step_order():
    """Global order 4 of the Rosenbrock tableau (non-autonomous term included)."""
    jac = lambda t, y, p: np.array([[-2.0]])
    errors = []
    for n in (20, 40, 80):
        h, y, t = 2.0 / n, np.array([1.0]), 0.0
        ft = lambda t: -np.sin(t) * np.ones(1)
        for _ in range(n):
            y, _, _ = ode.rodas4_step(forced, t, y, h, forced(t, y, None), jac(t, y, None), ft(t))
            t += h
        errors.append(abs(y[0] - forced_exact(2.0)))
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all(np.abs(orders - 4) < 0.2), orders


def robertson(t, y, p):
    return np.array([
        -0.04 * y[0] + 1e4 * y[1] * y[2],
        0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2,
        3e7 * y[1] ** 2,
    ])


def robertson_jac(t, y, p):
    return np.array([
        [-0.04, 1e4 * y[2], 1e4 * y[1]],
        [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
        [0.0, 6e7 * y[1], 0.0],
    ])


ROB_ATOL = np.array([1e-10, 1e-14, 1e-10])


def test_robertson_against_scipy_radau_and_bdf():
    r = solve_ivp(robertson, (0, 1e4), [1.0, 0, 0], "Rodas4", rtol=1e-7, atol=ROB_ATOL,
                  jac=robertson_jac)
    for ref_method in ("Radau", "BDF"):
        ref = si.solve_ivp(lambda t, y: robertson(t, y, None), (0, 1e4), [1.0, 0, 0],
                           method=ref_method, jac=lambda t, y: robertson_jac(t, y, None),
                           rtol=1e-10, atol=ROB_ATOL * 1e-3)
        rel = np.abs(r.y[:, -1] / ref.y[:, -1] - 1)
        assert rel.max() < 1e-4, (ref_method, rel)
    assert np.isclose(r.y[:, -1].sum(), 1.0, atol=1e-9)  # mass conservation
    assert r.nsteps < 500


def test_robertson_sparse_and_fd_jacobians():
    dense = solve_ivp(robertson, (0, 100), [1.0, 0, 0], "Rodas4", rtol=1e-6, atol=ROB_ATOL,
                      jac=robertson_jac)
    sparse = solve_ivp(robertson, (0, 100), [1.0, 0, 0], "stiff", rtol=1e-6, atol=ROB_ATOL,
                       jac=lambda t, y, p: sp.csr_matrix(robertson_jac(t, y, p)))
    fdj = solve_ivp(robertson, (0, 100), [1.0, 0, 0], "Rodas4", rtol=1e-6, atol=ROB_ATOL)
    np.testing.assert_allclose(sparse.y[:, -1], dense.y[:, -1], rtol=1e-10)
    np.testing.assert_allclose(fdj.y[:, -1], dense.y[:, -1], rtol=1e-4)


def test_stiff_method_needs_far_fewer_steps():
    kw = dict(rtol=1e-6, atol=ROB_ATOL)
    explicit = solve_ivp(robertson, (0, 10), [1.0, 0, 0], "DOPRI5", **kw)
    stiff = solve_ivp(robertson, (0, 10), [1.0, 0, 0], "Rodas4", jac=robertson_jac, **kw)
    assert stiff.nsteps * 20 < explicit.nsteps, (stiff.nsteps, explicit.nsteps)
    np.testing.assert_allclose(stiff.y[:, -1], explicit.y[:, -1], rtol=1e-5)


def test_errors_name_time_and_step():
    blowup = lambda t, y, p: y**2  # y = 1/(1 - t) blows up at t = 1
    with pytest.raises((ConvergenceError, NaNError), match=r"t=(0\.99|1\.0).*h="):
        solve_ivp(blowup, (0, 2), [1.0], rtol=1e-6, atol=1e-9)
    nan_after = lambda t, y, p: -y if t < 0.5 else y * np.nan
    with pytest.raises(NaNError, match=r"t=0\.(49|5).*h="):
        solve_ivp(nan_after, (0, 1), [1.0])
    with pytest.raises(NaNError, match="initial point"):
        solve_ivp(lambda t, y, p: y * np.nan, (0, 1), [1.0])
    with pytest.raises(SolverError, match="method='Euler'"):
        solve_ivp(forced, (0, 1), [1.0], method="Euler")
    with pytest.raises(SolverError, match="y0 must be 1-D"):
        solve_ivp(forced, (0, 1), [[1.0]])
    with pytest.raises(ConvergenceError, match="max_steps=5"):
        solve_ivp(oscillator, (0, 100), [1.0, 0.0], max_steps=5)
