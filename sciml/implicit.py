"""Nonlinear solves differentiated implicitly: ``implicit_root``.

``x* = implicit_root(F, J, x0, params)`` solves ``F(x, *params) = 0`` by Newton's method with a
backtracking line search, written with ``sciml.while_loop`` so it runs eagerly and traces. Its
derivative comes from the implicit function theorem through ``custom_jvp``, not from the
iterations: ``dx* = -J(x*)^{-1} (dF/dparams · dparams)`` — one linear solve per tangent, and in
reverse mode one adjoint solve (the transpose of that linear map), however many Newton steps
ran.
"""

from __future__ import annotations

import numpy as np

from autodiff.api import jvp
from autodiff.custom import custom_jvp
from autodiff.ops.control import while_loop
from autodiff.trace import Tracer

from . import numpy as snp
from .errors import ConvergenceError


def _norm(v):
    return snp.max(snp.abs(v))


def newton(residual_fn, jacobian_fn, x0, params, tol=1e-10, maxiter=50):
    """Newton with backtracking (Armijo on max|F|) as traceable loops; returns (x, it, |F|)."""

    def F(x):
        return residual_fn(x, *params)

    def solve_step(x, f):
        return -snp.linalg.solve(jacobian_fn(x, *params), f)

    def line_search(x, dx, fnorm):
        def too_big(t):
            return (_norm(F(x + t * dx)) > (1.0 - 1e-4 * t) * fnorm) & (t > 1e-8)

        return while_loop(too_big, lambda t: t * 0.5, snp.asarray(1.0))

    def keep_going(state):
        _, it, fnorm = state
        return (fnorm > tol) & (it < maxiter)

    def step(state):
        x, it, fnorm = state
        f = F(x)
        dx = solve_step(x, f)
        xn = x + line_search(x, dx, fnorm) * dx
        return xn, it + 1, _norm(F(xn))

    x0 = snp.asarray(x0, float)
    return while_loop(keep_going, step, (x0, np.int64(0), _norm(F(x0))))


def implicit_root(residual_fn, jacobian_fn, x0, params, tol=1e-10, maxiter=50):
    """Solve ``residual_fn(x, *params) = 0`` from ``x0``; differentiable in ``params``.

    ``jacobian_fn(x, *params)`` returns dF/dx (n×n). Eagerly, a solve that does not reach
    ``max|F| <= tol`` in ``maxiter`` iterations raises ConvergenceError.

    >>> import numpy as np
    >>> import sciml
    >>> f = lambda x, p: x**3 + p * x - 1.0
    >>> jac = lambda x, p: sciml.numpy.reshape(3 * x**2 + p, (1, 1))
    >>> root = lambda p: implicit_root(f, jac, np.array([1.0]), [p])[0]
    >>> x = float(root(2.0)); dxdp = float(sciml.grad(root)(2.0))
    >>> bool(abs(dxdp + x / (3 * x**2 + 2.0)) < 1e-12)
    True
    """
    x0 = np.asarray(x0, float)

    @custom_jvp
    def root(*p):
        return newton(residual_fn, jacobian_fn, x0, p, tol, maxiter)[0]

    @root.defjvp
    def _root_jvp(primals, tangents):
        x = root(*primals)
        _, dfdp = jvp(lambda *pp: residual_fn(x, *pp), tuple(primals), tuple(tangents))
        dx = -snp.linalg.solve(jacobian_fn(x, *primals), dfdp)
        return x, dx

    params = [snp.asarray(p, float) if not isinstance(p, Tracer) else p for p in params]
    x = root(*params)
    if not isinstance(x, Tracer):
        fnorm = float(np.max(np.abs(np.asarray(residual_fn(x, *params)))))
        if not fnorm <= tol * 10:
            raise ConvergenceError(
                f"Newton did not converge in {maxiter} iterations: max|F| = {fnorm:.3e} "
                f"> tol = {tol:.1e} (last x = {np.asarray(x)}); try another guess"
            )
    return x
