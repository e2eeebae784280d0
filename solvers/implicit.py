"""Differentiable linear solves: ``linear_solve(matvec, b, params)``.

``x = A(params)^{-1} b`` is computed by a Krylov method written with ``sciml``'s traceable
loops (CG for symmetric definite operators, BiCGSTAB otherwise), so it runs eagerly, traces and
jits. Reverse mode does not unroll the iterations: the cotangent needs one adjoint solve,
``lambda = A^{-T} x_bar``, and then ``b_bar = lambda`` and
``params_bar = -(d(A x)/d params)^T lambda`` (one vector-Jacobian product of the matvec).
"""

from __future__ import annotations

import numpy as np

from autodiff.api import vjp
from autodiff.custom import custom_vjp
from autodiff.ops.control import while_loop


def _dot(a, b):
    return (a * b).sum()


def cg_loop(matvec, b, tol=1e-12, maxiter=1000):
    """Conjugate gradients as a traceable while_loop (A symmetric definite, either sign)."""
    bnorm2 = _dot(b, b)

    def keep_going(s):
        _, r, _, rr, k = s
        return (rr > tol * tol * bnorm2) & (k < maxiter)

    def step(s):
        x, r, p, rr, k = s
        ap = matvec(p)
        alpha = rr / _dot(p, ap)
        x, r = x + alpha * p, r - alpha * ap
        rr_new = _dot(r, r)
        return x, r, r + (rr_new / rr) * p, rr_new, k + 1

    x0 = b * 0.0
    return while_loop(keep_going, step, (x0, b, b, bnorm2, np.int64(0)))[0]


def bicgstab_loop(matvec, b, tol=1e-12, maxiter=1000):
    """BiCGSTAB as a traceable while_loop (general nonsingular A)."""
    bnorm2 = _dot(b, b)
    r_hat = b

    def keep_going(s):
        _, r, *_, k = s
        return (_dot(r, r) > tol * tol * bnorm2) & (k < maxiter)

    def step(s):
        x, r, p, v, rho, alpha, omega, k = s
        rho_new = _dot(r_hat, r)
        beta = (rho_new / rho) * (alpha / omega)
        p = r + beta * (p - omega * v)
        v = matvec(p)
        alpha = rho_new / _dot(r_hat, v)
        s_ = r - alpha * v
        t = matvec(s_)
        # s = 0 means alpha p already solved the system: take no second half-step (0/0).
        tt = _dot(t, t)
        omega = _dot(t, s_) / (tt + (tt == 0)) * (tt != 0)
        return x + alpha * p + omega * s_, s_ - omega * t, p, v, rho_new, alpha, omega, k + 1

    zero = b * 0.0
    one = bnorm2 * 0.0 + 1.0
    state = (zero, b, zero, zero, one, one, one, np.int64(0))
    return while_loop(keep_going, step, state)[0]


def linear_solve(matvec, b, params=(), symmetric=False, tol=1e-12, maxiter=1000):
    """Solve ``matvec(x, *params) = b``; differentiable (reverse mode) in ``b`` and ``params``.

    ``symmetric=True`` uses CG (A symmetric definite), else BiCGSTAB.

    >>> import numpy as np, sciml
    >>> a = lambda x, d: d * x - 0.5 * (np.roll(x, 1) + np.roll(x, -1))
    >>> b = np.linspace(0.0, 1.0, 8)
    >>> x = linear_solve(a, b, (3.0,), symmetric=True)
    >>> bool(np.allclose(a(x, 3.0), b))
    True
    """
    krylov = cg_loop if symmetric else bicgstab_loop

    def solve(rhs, *p):
        return krylov(lambda v: matvec(v, *p), rhs, tol, maxiter)

    @custom_vjp
    def f(rhs, *p):
        return solve(rhs, *p)

    def fwd(rhs, *p):
        x = solve(rhs, *p)
        return x, (x, p)

    def bwd(res, x_bar):
        x, p = res
        if symmetric:
            lam = solve(x_bar, *p)
        else:
            # A^T v through the transpose of the (linear) matvec.
            def matvec_t(v):
                return vjp(lambda u: matvec(u, *p), x)[1](v)[0]

            lam = bicgstab_loop(matvec_t, x_bar, tol, maxiter)
        if not p:
            return (lam,)
        _, pull = vjp(lambda *pp: matvec(x, *pp), *p)
        return (lam, *[-g for g in pull(lam)])

    f.defvjp(fwd, bwd)
    return f(b, *params)


def nonlinear_solve(residual, u0, params=(), tol=1e-10, maxiter=30, krylov_tol=1e-12,
                    krylov_maxiter=2000):
    """Solve ``residual(u, *params) = 0`` by Newton–Krylov (BiCGSTAB on Jacobian-vector
    products), as traceable loops; differentiable in ``params`` by the implicit function
    theorem: reverse mode takes one adjoint Krylov solve ``J^T lambda = u_bar`` and one VJP of
    the residual in ``params``, not the iterations.

    >>> import numpy as np, sciml
    >>> r = lambda u, p: u**3 + p * u - 1.0
    >>> g = sciml.grad(lambda p: nonlinear_solve(r, np.ones(1), (p,))[0])(2.0)
    >>> x = float(nonlinear_solve(r, np.ones(1), (2.0,))[0])
    >>> bool(abs(g + x / (3 * x**2 + 2.0)) < 1e-9)
    True
    """
    from autodiff.api import jvp

    def newton(start, *p):
        def jac_solve(u, f):
            return bicgstab_loop(lambda v: jvp(lambda w: residual(w, *p), (u,), (v,))[1],
                                 f, krylov_tol, krylov_maxiter)

        def keep_going(s):
            _, fnorm, k = s
            return (fnorm > tol) & (k < maxiter)

        def step(s):
            u, _, k = s
            u = u - jac_solve(u, residual(u, *p))
            return u, abs(residual(u, *p)).max(), k + 1

        start = start * 1.0
        return while_loop(keep_going, step, (start, abs(residual(start, *p)).max(),
                                             np.int64(0)))[0]

    # The initial guess is an argument (not a closure), with no derivative: the root does not
    # depend on where Newton starts.
    @custom_vjp
    def f(start, *p):
        return newton(start, *p)

    def fwd(start, *p):
        u = newton(start, *p)
        return u, (u, p)

    def bwd(res, u_bar):
        u, p = res

        def jac_t(v):
            return vjp(lambda w: residual(w, *p), u)[1](v)[0]

        lam = bicgstab_loop(jac_t, u_bar, krylov_tol, krylov_maxiter)
        _, pull = vjp(lambda *pp: residual(u, *pp), *p)
        return (None, *[-g for g in pull(lam)])

    f.defvjp(fwd, bwd)
    return f(u0, *params)
