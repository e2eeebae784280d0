"""Linear solvers on 2-D Poisson with a manufactured solution: second order in h for all."""

import doctest

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import solvers.linear as lin
from solvers.errors import ConvergenceError, SolverError
from solvers.fd import Dirichlet, Neumann, laplacian_matrix, upwind_matrix


def test_doctests():
    assert doctest.testmod(lin).failed == 0


def poisson_2d(n):
    """u = sin(pi x) sin(2 pi y) e^x on the unit square, laplacian(u) = f, u = 0 on the boundary."""
    h = 1.0 / (n + 1)
    x = h * np.arange(1, n + 1)
    X, Y = np.meshgrid(x, x, indexing="ij")
    s, c = np.sin(np.pi * X), np.cos(np.pi * X)
    u = s * np.sin(2 * np.pi * Y) * np.exp(X)
    f = np.exp(X) * np.sin(2 * np.pi * Y) * (2 * np.pi * c + s - np.pi**2 * s - 4 * np.pi**2 * s)
    return h, u, f


def _solve(name, n):
    h, u, f = poisson_2d(n)
    A, _ = laplacian_matrix((n, n), h, Dirichlet())
    b = f.ravel()
    if name == "cg":
        x = lin.cg(A, b, rtol=1e-10).x
    elif name == "cg+jacobi":
        x = lin.cg(A, b, rtol=1e-10, M=lin.jacobi_preconditioner(A)).x
    elif name == "cg+mg":
        x = lin.cg(A, b, rtol=1e-10, M=lin.multigrid_preconditioner((n, n), h)).x
    elif name == "gmres":
        x = lin.gmres(A, b, rtol=1e-10, restart=40, M=lin.multigrid_preconditioner((n, n), h)).x
    elif name == "multigrid":
        x = lin.multigrid(f, h, rtol=1e-10).x.ravel()
    else:
        x = lin.direct_solve(A, b)
    return np.max(np.abs(x - u.ravel()))


@pytest.mark.parametrize("name", ["cg", "cg+jacobi", "cg+mg", "gmres", "multigrid", "direct"])
def test_poisson_2d_second_order(name):
    errors = [_solve(name, n) for n in (15, 31, 63)]
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all(np.abs(orders - 2) < 0.2), orders


def test_multigrid_cycles_are_grid_independent():
    cycles = []
    for n in (31, 63, 127, 255):
        h, u, f = poisson_2d(n)
        cycles.append(lin.multigrid(f, h, rtol=1e-10).nit)
    assert max(cycles) - min(cycles) <= 1 and max(cycles) <= 12, cycles


@pytest.mark.parametrize("smoother", ["rbgs", "jacobi"])
def test_multigrid_3d_helmholtz_and_smoothers(smoother):
    """(laplacian - sigma) u = f in 3-D with u = sin(pi x) sin(pi y) sin(pi z)."""
    sigma, cycles, errors = 3.0, [], []
    for n in (15, 31):
        h = 1.0 / (n + 1)
        x = h * np.arange(1, n + 1)
        X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
        u = np.sin(np.pi * X) * np.sin(np.pi * Y) * np.sin(np.pi * Z)
        r = lin.multigrid((-3 * np.pi**2 - sigma) * u, h, sigma=sigma, smoother=smoother,
                          rtol=1e-9)
        cycles.append(r.nit)
        errors.append(np.max(np.abs(r.x - u)))
    assert abs(np.log2(errors[0] / errors[1]) - 2) < 0.2
    assert max(cycles) <= 20, cycles


def test_multigrid_inhomogeneous_dirichlet():
    """u = 1 + x + 2y is harmonic; the boundary values enter through the affine part."""
    n = 31
    h = 1.0 / (n + 1)
    x = h * np.arange(1, n + 1)
    X, Y = np.meshgrid(x, x, indexing="ij")
    bc = (Dirichlet(1 + 2 * x, 2 + 2 * x), Dirichlet(1 + x, 3 + x))  # per axis: x=0,1 and y=0,1
    r = lin.multigrid(np.zeros((n, n)), h, bc=bc, rtol=1e-12)
    np.testing.assert_allclose(r.x, 1 + X + 2 * Y, atol=1e-9)
    A, b = laplacian_matrix((n, n), h, bc)
    np.testing.assert_allclose(lin.direct_solve(A, -b).reshape(n, n), 1 + X + 2 * Y, atol=1e-10)


def test_operator_forms_and_gmres_nonsymmetric():
    """Advection-diffusion (nonsymmetric) through a matrix, a LinearOperator, a callable."""
    n = 40
    h = 1.0 / (n + 1)
    L, _ = laplacian_matrix((n,), h, Dirichlet())
    U, _ = upwind_matrix((n,), 1.0, h, order=1, bc=Dirichlet())
    A = (L - 20.0 * U).tocsr()
    b = np.random.default_rng(0).standard_normal(n)
    ref = spla.spsolve(A.tocsc(), b)
    for form in (A, A.toarray(), spla.aslinearoperator(A), lambda v: A @ v):
        r = lin.gmres(form, b, rtol=1e-12, restart=10, maxiter=2000)
        np.testing.assert_allclose(r.x, ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(lin.factorize(A)(b), ref, rtol=1e-12)


def test_cg_preconditioner_reduces_iterations():
    n = 63
    h, _, f = poisson_2d(n)
    A, _ = laplacian_matrix((n, n), h, Dirichlet())
    plain = lin.cg(A, f.ravel(), rtol=1e-10)
    mg = lin.cg(A, f.ravel(), rtol=1e-10, M=lin.multigrid_preconditioner((n, n), h))
    assert mg.nit * 5 < plain.nit, (mg.nit, plain.nit)


def test_non_convergence_errors():
    n = 31
    h, _, f = poisson_2d(n)
    A, _ = laplacian_matrix((n, n), h, Dirichlet())
    with pytest.raises(ConvergenceError, match=r"cg: no convergence after 3 iterations: residual"):
        lin.cg(A, f.ravel(), maxiter=3)
    with pytest.raises(ConvergenceError, match=r"gmres: no convergence after 5 iterations"):
        lin.gmres(A, f.ravel(), maxiter=5)
    with pytest.raises(ConvergenceError, match=r"multigrid: no convergence after 2 iterations"):
        lin.multigrid(f, h, maxiter=2)


def test_bad_input_errors():
    with pytest.raises(SolverError, match=r"A has shape \(3, 3\) but b has 4"):
        lin.cg(np.eye(3), np.ones(4))
    with pytest.raises(SolverError, match="square"):
        lin.cg(np.ones((3, 2)), np.ones(3))
    with pytest.raises(SolverError, match="odd number"):
        lin.multigrid(np.zeros((32, 32)), 0.1)
    with pytest.raises(NotImplementedError, match="Dirichlet boundaries only"):
        lin.multigrid(np.zeros((31, 31)), 0.1, bc=Neumann())
    with pytest.raises(SolverError, match="zeros on its diagonal"):
        lin.jacobi_preconditioner(sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]])))
