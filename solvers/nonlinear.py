"""Newton's method with a backtracking line search for ``F(x) = 0``.

``F`` and its Jacobian are user callables ``fun(x, *args)`` and ``jac(x, *args)``; the
Jacobian may be a dense array or a ``scipy.sparse`` matrix, so sciml's AD can supply it
later. One iteration is the pure function :func:`newton_step`; :func:`newton` loops it.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .errors import ConvergenceError, NaNError, SolverError


@dataclass(frozen=True)
class NewtonResult:
    """Solution ``x``; iterations ``nit``; final ``residual`` (max-norm of F);
    function and Jacobian evaluation counts."""

    x: np.ndarray
    nit: int
    residual: float
    nfev: int
    njev: int


def solve_jacobian(jmat, rhs):
    """Solve ``J dx = rhs`` for a dense or sparse Jacobian."""
    if sp.issparse(jmat):
        return spla.spsolve(jmat.tocsc(), rhs)
    jmat = np.asarray(jmat)
    if jmat.shape != (rhs.size, rhs.size):
        raise SolverError(
            f"newton: jac returned shape {jmat.shape}, expected {(rhs.size, rhs.size)}"
        )
    return np.linalg.solve(jmat, rhs)


def _norm(r):
    return float(np.max(np.abs(r))) if r.size else 0.0


def line_search(fun, x, dx, f0, args, c=1e-4, max_backtracks=30):
    """Backtracking: halve ``alpha`` until ``|F(x + alpha dx)|_2 <= (1 - c alpha)|F(x)|_2``.

    Returns ``(x_new, f_new, alpha, nfev)``; ``alpha = 0`` signals failure.
    """
    n0 = np.linalg.norm(f0)
    alpha = 1.0
    for k in range(max_backtracks):
        x1 = x + alpha * dx
        f1 = np.asarray(fun(x1, *args), dtype=float)
        if np.all(np.isfinite(f1)) and np.linalg.norm(f1) <= (1 - c * alpha) * n0:
            return x1, f1, alpha, k + 1
        alpha *= 0.5
    return x, f0, 0.0, max_backtracks


def newton_step(fun, jac, x, f, args=(), max_backtracks=30):
    """One damped Newton iteration from ``x`` with residual ``f = F(x)``.

    Returns ``(x_new, f_new, step, alpha, nfev)``.
    """
    dx = -solve_jacobian(jac(x, *args), f)
    if not np.all(np.isfinite(dx)):
        raise NaNError(
            f"newton: the Newton step is not finite (singular Jacobian?) at |F|={_norm(f):.3e}"
        )
    if max_backtracks == 0:
        x1 = x + dx
        return x1, np.asarray(fun(x1, *args), dtype=float), dx, 1.0, 1
    x1, f1, alpha, nfev = line_search(fun, x, dx, f, args, max_backtracks=max_backtracks)
    return x1, f1, alpha * dx, alpha, nfev


def newton(fun, x0, jac, args=(), tol=1e-10, xtol=0.0, maxiter=50, max_backtracks=30):
    """Solve ``fun(x, *args) = 0`` from ``x0``; converged when ``max|F| <= tol`` (or the
    step's max-norm ``<= xtol``).

    ``max_backtracks=0`` disables the line search (full Newton steps).

    >>> r = newton(lambda x: x**2 - 2.0, np.array([1.0]), lambda x: np.diag(2 * x))
    >>> round(float(r.x[0]), 9)
    1.414213562
    """
    x = np.asarray(x0, dtype=float)
    if x.ndim != 1:
        raise SolverError(f"newton: x0 must be a 1-D array, got shape {x.shape}")
    f = np.asarray(fun(x, *args), dtype=float)
    if f.shape != x.shape:
        raise SolverError(f"newton: fun returned shape {f.shape}, expected {x.shape} like x0")
    nfev, step = 1, np.zeros_like(x)
    for it in range(maxiter + 1):
        if _norm(f) <= tol or (it > 0 and _norm(step) <= xtol):
            return NewtonResult(x, it, _norm(f), nfev, it)
        if it == maxiter:
            break
        try:
            x, f, step, alpha, nf = newton_step(fun, jac, x, f, args, max_backtracks)
        except (np.linalg.LinAlgError, NaNError) as e:
            raise ConvergenceError(
                f"newton: singular Jacobian at iteration {it + 1} (|F|_max = {_norm(f):.3e}, "
                f"last step |dx|_max = {_norm(step):.3e}): {e}"
            ) from e
        nfev += nf
        if alpha == 0.0:
            raise ConvergenceError(
                f"newton: line search failed at iteration {it + 1}: no decrease of |F| "
                f"after {max_backtracks} halvings (|F|_max = {_norm(f):.3e}); "
                "try a better initial guess or check the Jacobian"
            )
    raise ConvergenceError(
        f"newton: no convergence in {maxiter} iterations: |F|_max = {_norm(f):.3e} "
        f"(tol {tol:.1e}), last step |dx|_max = {_norm(step):.3e}"
    )
