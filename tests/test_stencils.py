"""sciml.stencils and the method-of-lines operators: exactness on polynomials, matrix and
matrix-free forms agree, and reverse-mode transposes pass the dot-product (adjoint) test."""

import numpy as np
import pytest
import scipy.sparse as sps
import sympy as sp

import sciml
from sciml.mol import Discretization, make_grid, parse_bcs
from sciml.problem import pde_system
from sciml.stencils import derivative, derivative_matrix_1d, kron_axis, upwind_first

CASES = [(1, 2), (1, 4), (1, 6), (2, 2), (2, 4), (2, 6), (3, 2), (4, 2)]


@pytest.mark.parametrize("deriv,order", CASES)
def test_exact_on_polynomials_below_the_order(deriv, order):
    n = 24
    x = np.linspace(-1.0, 2.0, n)
    h = x[1] - x[0]
    # Central rows are exact to degree deriv + order - 1, biased boundary rows likewise.
    for degree in range(deriv + order):
        c = np.random.default_rng(degree).normal(size=degree + 1)
        p = np.polynomial.Polynomial(c)
        got = derivative(p(x), 0, deriv, h, order)
        np.testing.assert_allclose(got, p.deriv(deriv)(x), rtol=1e-8, atol=1e-7 * np.abs(c).sum())


@pytest.mark.parametrize("deriv,order", CASES)
@pytest.mark.parametrize("periodic", [False, True])
def test_matrix_and_matrix_free_agree(deriv, order, periodic):
    n = 30
    u = np.random.default_rng(1).normal(size=n)
    m = derivative_matrix_1d(n, deriv, 0.1, order, periodic)
    np.testing.assert_allclose(m @ u, derivative(u, 0, deriv, 0.1, order, periodic), rtol=1e-12,
                               atol=1e-9)


@pytest.mark.parametrize("deriv,order", CASES)
@pytest.mark.parametrize("periodic", [False, True])
def test_reverse_mode_transpose_is_the_adjoint(deriv, order, periodic):
    rng = np.random.default_rng(2)
    shape = (12, 14)
    u, v = rng.normal(size=shape), rng.normal(size=shape)

    def op(w):
        return derivative(w, 1, deriv, 0.2, order, periodic)

    du, pullback = sciml.vjp(op, u)
    (adj,) = pullback(v)
    lhs, rhs = np.vdot(du, v), np.vdot(u, adj)
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)
    m = kron_axis(derivative_matrix_1d(14, deriv, 0.2, order, periodic), shape, 1)
    np.testing.assert_allclose(adj.ravel(), m.T @ v.ravel(), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_upwind_adjoint(order):
    rng = np.random.default_rng(3)
    u, v, vel = rng.normal(size=(3, 40))
    du, pullback = sciml.vjp(lambda w: upwind_first(w, vel, 0, 0.05, order, False), u)
    (adj,) = pullback(v)
    assert abs(np.vdot(du, v) - np.vdot(u, adj)) < 1e-12 * abs(np.vdot(du, v)) + 1e-12


@pytest.mark.parametrize("bc", [("dirichlet", 0, 0), ("neumann", 0, 0), "periodic"])
def test_boundary_treatment_jacobian_matches_reverse_mode(bc):
    """The sparse Jacobian used by implicit and steady solves is the exact derivative of the
    matrix-free right-hand side, boundary rows included (checked with the dot-product test)."""
    t, x, y = sp.symbols("t x y")
    u = sp.Function("u")
    eq = sp.Eq(u(t, x, y).diff(t), u(t, x, y).diff(x, 2) + 0.5 * u(t, x, y).diff(y, 2)
               + 0.3 * u(t, x, y).diff(x))
    system = pde_system([eq], [u], None, [], steady=False)
    bcs = parse_bcs({x: bc, y: bc}, system)
    grid = make_grid(system, {x: (0, 1), y: (0, 2)}, (9, 11), bcs)
    disc = Discretization(system, grid, bcs, order=2)
    rng = np.random.default_rng(4)
    s, w = rng.normal(size=(2, 1, 9, 11))
    # Rows of boundary nodes are replaced by the boundary constraints in every solve, so the
    # operator compared is the interior rows of the right-hand side.
    mask = disc.interior_masks()
    jac = sps.diags(mask.ravel()) @ disc.jacobian(0.0, s, {}, raw=True)
    out, pullback = sciml.vjp(lambda z: disc.raw_rhs(0.0, z, {}) * mask, s)
    np.testing.assert_allclose(jac @ s.ravel(), np.asarray(out).ravel(), rtol=1e-10, atol=1e-9)
    (adj,) = pullback(w)
    np.testing.assert_allclose(jac.T @ w.ravel(), np.asarray(adj).ravel(), rtol=1e-10,
                               atol=1e-9)
    lhs, rhs = np.vdot(out, w), np.vdot(s, adj)
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)
