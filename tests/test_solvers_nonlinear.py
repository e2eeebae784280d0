"""Newton on small systems and on the 1-D Bratu problem; batched Thomas vs scipy."""

import doctest

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.optimize as so
import scipy.sparse as sp

import solvers.nonlinear as nl
import solvers.tridiagonal as tri
from solvers.errors import ConvergenceError, SolverError
from solvers.fd import Dirichlet, laplacian, laplacian_matrix


def test_doctests():
    assert doctest.testmod(nl).failed == 0
    assert doctest.testmod(tri).failed == 0


def test_newton_small_system():
    """Circle and line against the closed form (sqrt 2, sqrt 2); circle and exponential
    against scipy's fsolve."""
    F = lambda z: np.array([z[0] ** 2 + z[1] ** 2 - 4, z[0] - z[1]])
    J = lambda z: np.array([[2 * z[0], 2 * z[1]], [1.0, -1.0]])
    r = nl.newton(F, np.array([1.0, 0.5]), J, tol=1e-13)
    np.testing.assert_allclose(r.x, [np.sqrt(2), np.sqrt(2)], rtol=1e-13)
    assert r.nit <= 8
    G = lambda z: np.array([z[0] ** 2 + z[1] ** 2 - 4, np.exp(z[0]) - 1 - z[1]])
    JG = lambda z: np.array([[2 * z[0], 2 * z[1]], [np.exp(z[0]), -1.0]])
    r = nl.newton(G, np.array([1.0, 1.0]), JG, tol=1e-13)
    np.testing.assert_allclose(r.x, so.fsolve(G, [1.0, 1.0], fprime=JG, xtol=1e-14), rtol=1e-12)


def test_line_search_globalises():
    """arctan(x) = 0 from x0 = 10: full Newton steps diverge, damped Newton converges."""
    F = lambda x: np.arctan(x)
    J = lambda x: np.diag(1 / (1 + x**2))
    assert abs(nl.newton(F, np.array([10.0]), J).x[0]) < 1e-10
    with pytest.raises(ConvergenceError), np.errstate(over="ignore", invalid="ignore"):
        nl.newton(F, np.array([10.0]), J, max_backtracks=0, maxiter=10)


def bratu_exact(x, lam):
    """u'' + lam e^u = 0, u(0) = u(1) = 0: u = -2 log(cosh((x - 1/2) th / 2) / cosh(th / 4))
    with th = sqrt(2 lam) cosh(th / 4) (lower branch)."""
    th = so.brentq(lambda t: t - np.sqrt(2 * lam) * np.cosh(t / 4), 0.0, 4.0)
    return -2 * np.log(np.cosh((x - 0.5) * th / 2) / np.cosh(th / 4))


@pytest.mark.parametrize("order", [2, 4])
def test_bratu_sparse_jacobian_order(order):
    lam, errors = 2.0, []
    for n in (15, 31, 63):
        h = 1.0 / (n + 1)
        x = h * np.arange(1, n + 1)
        A, _ = laplacian_matrix((n,), h, Dirichlet(), order)
        F = lambda u, h=h: laplacian(u, h, Dirichlet(), order) + lam * np.exp(u)
        J = lambda u, A=A: A + sp.diags(lam * np.exp(u))
        r = nl.newton(F, np.zeros(n), J, tol=1e-11)
        assert r.nit <= 6
        errors.append(np.max(np.abs(r.x - bratu_exact(x, lam))))
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all(np.abs(orders - order) < 0.2), orders


def test_non_convergent_case_reports_iterations_residual_step():
    F = lambda x: x**2 + 1.0  # no real root
    J = lambda x: np.diag(2 * x)
    with pytest.raises(ConvergenceError, match=r"iteration \d+.*\|F\|_max = 1\.\d+e\+00"):
        nl.newton(F, np.array([0.5]), J)
    with pytest.raises(ConvergenceError, match=r"20 iterations.*last step \|dx\|_max"):
        nl.newton(F, np.array([0.5]), J, max_backtracks=0, maxiter=20)


def test_newton_bad_input():
    with pytest.raises(SolverError, match=r"fun returned shape \(3,\)"):
        nl.newton(lambda x: np.ones(3), np.zeros(2), lambda x: np.eye(2))
    with pytest.raises(SolverError, match=r"jac returned shape \(3, 3\)"):
        nl.newton(lambda x: x + 1, np.zeros(2), lambda x: np.eye(3))


def _banded(a, b, c, d):
    ab = np.stack([np.concatenate([[0], c[:-1]]), b, np.concatenate([a[1:], [0]])])
    return sla.solve_banded((1, 1), ab, d)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_thomas_batched_vs_solve_banded(axis):
    rng = np.random.default_rng(axis + 5)
    shape = (6, 7, 8)
    a, c, d = (rng.standard_normal(shape) for _ in range(3))
    b = 3.0 + np.abs(a) + np.abs(c)
    x = tri.thomas(a, b, c, d, axis=axis)
    xm = [np.moveaxis(v, axis, -1) for v in (a, b, c, d, x)]
    for idx in np.ndindex(xm[0].shape[:-1]):
        ref = _banded(*(v[idx] for v in xm[:4]))
        np.testing.assert_allclose(xm[4][idx], ref, rtol=1e-12, atol=1e-13)


def test_thomas_broadcast_coefficients():
    """Shared constant-coefficient matrix (implicit diffusion) for many right-hand sides."""
    n = 50
    rhs = np.random.default_rng(3).standard_normal((n, 20))
    x = tri.thomas(-1.0, 2.5, -1.0, rhs, axis=0)
    ref = _banded(-np.ones(n), 2.5 * np.ones(n), -np.ones(n), rhs)
    np.testing.assert_allclose(x, ref, rtol=1e-12)


def test_thomas_errors():
    with pytest.raises(SolverError, match="does not broadcast"):
        tri.thomas(np.ones(3), np.ones(4), np.ones(4), np.ones(4))
    with pytest.raises(SolverError, match="axis=2"):
        tri.thomas(1.0, 1.0, 1.0, np.ones(4), axis=2)
    with pytest.raises(Exception, match="non-finite"):
        with np.errstate(divide="ignore", invalid="ignore"):
            tri.thomas(0.0, 0.0, 0.0, np.ones(4))
