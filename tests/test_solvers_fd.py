"""Finite-difference operators: exactness, convergence order, adjoints, matrices."""

import doctest

import numpy as np
import pytest

import solvers.fd as fd
from solvers.errors import SolverError
from solvers.fd import Dirichlet, Neumann, Periodic

# One row per operator: name, apply(u, dx, bc), transpose(v, dx, bc), matrix(shape, dx, bc),
# accuracy order p, degree of polynomials it differentiates exactly, derivative of x^k.
OPS = [
    ("d1 o2", lambda u, dx, bc, ax=0: fd.diff(u, dx, ax, 1, 2, bc),
     lambda v, dx, bc, ax=0: fd.diff_T(v, dx, ax, 1, 2, bc),
     lambda s, dx, bc, ax=0: fd.diff_matrix(s, dx, ax, 1, 2, bc), 2, 2, 1),
    ("d1 o4", lambda u, dx, bc, ax=0: fd.diff(u, dx, ax, 1, 4, bc),
     lambda v, dx, bc, ax=0: fd.diff_T(v, dx, ax, 1, 4, bc),
     lambda s, dx, bc, ax=0: fd.diff_matrix(s, dx, ax, 1, 4, bc), 4, 4, 1),
    ("d2 o2", lambda u, dx, bc, ax=0: fd.diff(u, dx, ax, 2, 2, bc),
     lambda v, dx, bc, ax=0: fd.diff_T(v, dx, ax, 2, 2, bc),
     lambda s, dx, bc, ax=0: fd.diff_matrix(s, dx, ax, 2, 2, bc), 2, 3, 2),
    ("d2 o4", lambda u, dx, bc, ax=0: fd.diff(u, dx, ax, 2, 4, bc),
     lambda v, dx, bc, ax=0: fd.diff_T(v, dx, ax, 2, 4, bc),
     lambda s, dx, bc, ax=0: fd.diff_matrix(s, dx, ax, 2, 4, bc), 4, 5, 2),
]
for _k in (1, 2, 3):
    for _sign in (1.0, -1.0):
        OPS.append((
            f"upwind o{_k} v{_sign:+}",
            lambda u, dx, bc, ax=0, k=_k, s=_sign: fd.upwind(u, s, dx, ax, k, bc),
            lambda v, dx, bc, ax=0, k=_k, s=_sign: fd.upwind_T(v, s, dx, ax, k, bc),
            lambda sh, dx, bc, ax=0, k=_k, s=_sign: fd.upwind_matrix(sh, s, dx, ax, k, bc),
            _k, _k, 1,
        ))
IDS = [op[0] for op in OPS]


def test_doctests():
    assert doctest.testmod(fd).failed == 0


def test_fornberg_known_weights():
    np.testing.assert_allclose(fd.stencil_weights(2, [-2, -1, 0, 1, 2]),
                               [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12], rtol=1e-15)
    np.testing.assert_allclose(fd.stencil_weights(1, [-2, -1, 0, 1, 2]),
                               [1 / 12, -2 / 3, 0, 2 / 3, -1 / 12], atol=1e-15)
    # One-sided second-order first derivative and a half-integer point.
    np.testing.assert_allclose(fd.stencil_weights(1, [0, 1, 2]), [-1.5, 2.0, -0.5])
    np.testing.assert_allclose(fd.fornberg_weights(0.5, [0, 1], 0)[0], [0.5, 0.5])


@pytest.mark.parametrize("m,n", [(1, 3), (2, 5), (3, 6), (4, 7)])
def test_fornberg_exact_on_polynomials(m, n):
    rng = np.random.default_rng(m)
    nodes = np.sort(rng.uniform(-2, 2, n))
    w = fd.fornberg_weights(0.3, nodes, m)
    for k in range(n):
        exact = np.prod(np.arange(k, k - m, -1)) * 0.3 ** (k - m) if k >= m else 0.0
        assert abs(w[m] @ nodes**k - exact) < 1e-8 * max(1, abs(exact))


def _grid(bc_type, n, length=1.0):
    """Node coordinates and spacing for the documented conventions on [0, length]."""
    if bc_type is Dirichlet:
        dx = length / (n + 1)
        return dx * np.arange(1, n + 1), dx
    dx = length / (n - 1)
    return dx * np.arange(n), dx


def _bc(bc_type, f, df, length=1.0):
    if bc_type is Dirichlet:
        return Dirichlet(f(0.0), f(length))
    return Neumann(df(0.0), df(length))


@pytest.mark.parametrize("op", OPS, ids=IDS)
@pytest.mark.parametrize("bc_type", [Dirichlet, Neumann])
def test_exact_on_polynomials_up_to_degree(op, bc_type):
    """Exact on x^k for k <= degree (boundaries included), not exact for degree + 1."""
    _, apply, _, _, _, degree, deriv = op
    x, dx = _grid(bc_type, 20)
    for k in range(degree + 2):
        f = lambda s, k=k: s**k
        df = lambda s, k=k: k * s ** (k - 1) if k >= 1 else 0.0 * s
        exact = (k * (k - 1) * x ** (k - 2) if k >= 2 else 0 * x) if deriv == 2 else df(x)
        err = np.max(np.abs(apply(f(x), dx, _bc(bc_type, f, df)) - exact))
        if k <= degree:
            assert err < 1e-9, (k, err)
        else:
            assert err > 1e-6, (k, err)


def _orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


@pytest.mark.parametrize("op", OPS, ids=IDS)
@pytest.mark.parametrize("bc_type", [Periodic, Dirichlet, Neumann])
def test_convergence_order(op, bc_type):
    _, apply, _, _, p, _, deriv = op
    errors = []
    for n in (32, 64, 128):
        if bc_type is Periodic:
            dx = 2 * np.pi / n
            x = dx * np.arange(n)
            u, exact, bc = np.sin(x), (np.cos(x) if deriv == 1 else -np.sin(x)), Periodic()
        else:
            x, dx = _grid(bc_type, n)
            u, exact = np.exp(x), np.exp(x)
            bc = _bc(bc_type, np.exp, np.exp)
        errors.append(np.max(np.abs(apply(u, dx, bc) - exact)))
    assert np.all(np.abs(_orders(errors) - p) < 0.2), _orders(errors)


BCS = [Periodic(), Dirichlet(0.7, -1.3), Neumann(0.4, 2.0)]


@pytest.mark.parametrize("op", OPS, ids=IDS)
@pytest.mark.parametrize("bc", BCS, ids=["periodic", "dirichlet", "neumann"])
@pytest.mark.parametrize("shape,axis", [((17,), 0), ((12, 9), 0), ((12, 9), 1), ((7, 8, 9), 2)])
def test_adjoint_dot_product(op, bc, shape, axis):
    """<A u, v> = <u, A^T v> for the linear part of each operator, matrix-free."""
    _, apply, transpose, _, _, _, _ = op
    rng = np.random.default_rng(0)
    u, v, dx = rng.standard_normal(shape), rng.standard_normal(shape), 0.37
    zero = apply(np.zeros(shape), dx, bc, axis)
    au = apply(u, dx, bc, axis) - zero
    lhs, rhs = np.vdot(au, v), np.vdot(u, transpose(v, dx, bc, axis))
    assert abs(lhs - rhs) <= 1e-12 * np.linalg.norm(au) * np.linalg.norm(v)


@pytest.mark.parametrize("op", OPS, ids=IDS)
@pytest.mark.parametrize("bc", BCS, ids=["periodic", "dirichlet", "neumann"])
@pytest.mark.parametrize("shape,axis", [((17,), 0), ((12, 9), 1), ((7, 8, 9), 0)])
def test_matrix_matches_matrix_free(op, bc, shape, axis):
    _, apply, transpose, matrix, _, _, _ = op
    rng = np.random.default_rng(1)
    u, v, dx = rng.standard_normal(shape), rng.standard_normal(shape), 0.21
    A, b = matrix(shape, dx, bc, axis)
    np.testing.assert_allclose(A @ u.ravel() + b, apply(u, dx, bc, axis).ravel(), atol=1e-10)
    np.testing.assert_allclose(A.T @ v.ravel(), transpose(v, dx, bc, axis).ravel(), atol=1e-10)


@pytest.mark.parametrize("bc", BCS, ids=["periodic", "dirichlet", "neumann"])
@pytest.mark.parametrize("order", [2, 4])
def test_laplacian_2d_matrix_adjoint_and_affine_part(bc, order):
    rng = np.random.default_rng(2)
    shape, dx = (10, 13), (0.1, 0.2)
    u, v = rng.standard_normal(shape), rng.standard_normal(shape)
    A, b = fd.laplacian_matrix(shape, dx, bc, order)
    np.testing.assert_allclose(A @ u.ravel() + b, fd.laplacian(u, dx, bc, order).ravel(), atol=1e-9)
    au = fd.laplacian(u, dx, bc, order) - fd.laplacian(np.zeros(shape), dx, bc, order)
    lhs, rhs = np.vdot(au, v), np.vdot(u, fd.laplacian_T(v, dx, bc, order))
    assert abs(lhs - rhs) <= 1e-12 * np.linalg.norm(au) * np.linalg.norm(v)
    if isinstance(bc, Periodic):
        assert np.all(b == 0)


def test_laplacian_eigenvalues_are_nonpositive():
    """Ghost extrapolation keeps the 1-D Laplacians stable for time stepping."""
    for bc in (Dirichlet(), Neumann()):
        for order in (2, 4):
            A, _ = fd.laplacian_matrix((40,), 1 / 41, bc, order)
            ev = np.linalg.eigvals(A.toarray())
            assert ev.real.max() < 1e-8 and np.abs(ev.imag).max() < 1e-8


def test_pad_bc_values_and_array_boundary_data():
    u = np.arange(12.0).reshape(3, 4)
    z = fd.pad_bc(u, Dirichlet(np.array([1.0, 2.0, 3.0]), 0.0), 1.0, axis=1, width=1)
    np.testing.assert_array_equal(z[:, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(z[:, -1], 0.0)
    # Neumann with a linear profile: ghosts continue the line exactly.
    x = np.arange(8.0)
    z = fd.pad_bc(2 * x, Neumann(2.0, 2.0), 1.0, width=2)
    np.testing.assert_allclose(z, 2 * np.arange(-2.0, 10.0), atol=1e-12)


def test_bad_input_errors():
    with pytest.raises(SolverError, match="bc must be"):
        fd.pad_bc(np.zeros(5), "periodic", 1.0)
    with pytest.raises(SolverError, match="axis=3"):
        fd.diff(np.zeros((4, 4)), 1.0, axis=3)
    with pytest.raises(SolverError, match="only n=3"):
        fd.diff(np.zeros(3), 1.0, order=4, bc=Dirichlet())
    with pytest.raises(SolverError, match="dtype"):
        fd.diff(np.array(["a", "b"]), 1.0)
    with pytest.raises(SolverError, match="even order"):
        fd.diff(np.zeros(8), 1.0, order=3)
    with pytest.raises(SolverError, match="dx must be positive"):
        fd.laplacian(np.zeros(8), 0.0)
