"""The solvers library differentiates through sciml's transforms: finite-difference operators
with every boundary condition, explicit steps in a fori_loop, and the batched Thomas solver
agree with central finite differences."""

import numpy as np
import pytest

import sciml
import sciml.numpy as snp
from solvers import fd, time, tridiagonal
from solvers.fd import Dirichlet, Neumann, Periodic


def fd_check(f, x, eps=1e-6, rtol=1e-6, atol=1e-9):
    g = sciml.grad(f)(x)
    rng = np.random.default_rng(0)
    for _ in range(3):
        d = rng.normal(size=x.shape)
        want = (f(x + eps * d) - f(x - eps * d)) / (2 * eps)
        np.testing.assert_allclose(np.vdot(g, d), want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("bc", [Periodic(), Dirichlet(0.3, -1.0), Neumann(0.5, 0.2)],
                         ids=["periodic", "dirichlet", "neumann"])
@pytest.mark.parametrize("order", [2, 4])
def test_operators_differentiate(bc, order):
    x = np.linspace(0, 1, 24)
    u = np.sin(np.pi * x) + 0.1 * x
    fd_check(lambda v: snp.sum(fd.laplacian(v, 0.04, bc=bc, order=order) ** 2), u)
    fd_check(lambda v: snp.sum(fd.diff(v, 0.04, deriv=1, order=order, bc=bc) ** 3), u)


def test_explicit_time_loop_differentiates():
    x = np.linspace(0, 1, 32, endpoint=False)
    u0 = np.sin(2 * np.pi * x)

    def energy_after(u):
        def rhs(t, y, p):
            return 0.01 * fd.laplacian(y, 1 / 32, bc=Periodic()) - fd.upwind(
                y, np.ones(32), 1 / 32, order=2, bc=Periodic())

        y = sciml.fori_loop(0, 50, lambda i, y: time.rk4_step(rhs, 0.0, y, 0.005), u)
        return snp.sum(y**2)

    fd_check(energy_after, u0)


def test_thomas_differentiates():
    rng = np.random.default_rng(1)
    lower, upper = rng.uniform(-1, 0, (2, 8, 10))
    diag = 4.0 + rng.uniform(0, 1, (8, 10))
    rhs = rng.normal(size=(8, 10))
    fd_check(lambda d: snp.sum(tridiagonal.thomas(lower, d, upper, rhs) ** 2), diag)
    fd_check(lambda r: snp.sum(snp.sin(tridiagonal.thomas(lower, diag, upper, r))), rhs)


def _operator(x, d, c):
    # d * x - 0.5 (x_{i+1} + x_{i-1}) + c * (x_{i+1} - x_{i-1}) / 2: diagonally dominant,
    # symmetric when c = 0.
    return d * x - 0.5 * (snp.roll(x, 1) + snp.roll(x, -1)) + 0.5 * c * (
        snp.roll(x, -1) - snp.roll(x, 1))


@pytest.mark.parametrize("symmetric,c", [(True, 0.0), (False, 0.4)])
def test_linear_solve_gradients_use_adjoint_solves(symmetric, c):
    from solvers.implicit import linear_solve

    b = np.sin(np.linspace(0, 3, 16))
    x = linear_solve(_operator, b, (3.0, c), symmetric=symmetric)
    np.testing.assert_allclose(_operator(x, 3.0, c), b, atol=1e-10)

    def loss_b(bb):
        return snp.sum(linear_solve(_operator, bb, (3.0, c), symmetric=symmetric) ** 2)

    def loss_d(d):
        return snp.sum(linear_solve(_operator, b, (d, c), symmetric=symmetric) ** 3)

    fd_check(loss_b, b)
    g = sciml.grad(loss_d)(3.0)
    eps = 1e-6
    np.testing.assert_allclose(g, (loss_d(3.0 + eps) - loss_d(3.0 - eps)) / (2 * eps), rtol=1e-6)
    # The gradient graph holds while_loops (forward and adjoint Krylov solves), not an
    # unrolled, transposed iteration: reverse mode through a while_loop would raise.
    names = [n.prim.name for n in sciml.make_graph(sciml.grad(loss_d), 3.0).body]
    assert "while_loop" in names or "custom_vjp_call" in names
