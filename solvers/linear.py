"""Linear solvers: CG, restarted GMRES, geometric multigrid, sparse direct.

Krylov solvers accept a dense array, a ``scipy.sparse`` matrix, a
``scipy.sparse.linalg.LinearOperator`` or a callable matvec; preconditioners ``M``
(approximate inverses) likewise. Convergence means ``|b - A x|_2 <= max(rtol |b|_2,
atol)``; failing that raises :class:`ConvergenceError` with the iteration count and the
residual. Iterations are pure ``*_step`` functions looped in Python.

Multigrid solves ``(laplacian - sigma) u = f`` (the operator of ``solvers.fd``) on a
uniform vertex-centred grid with Dirichlet boundaries, 1 to 3 dimensions.

Example:
    >>> import numpy as np
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> r = cg(A, np.array([1.0, 2.0]))
    >>> bool(np.allclose(A @ r.x, [1.0, 2.0]))
    True
"""

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .errors import ConvergenceError, SolverError
from .fd import Dirichlet, laplacian, laplacian_matrix


@dataclass(frozen=True)
class LinearResult:
    """Solution ``x``, iterations ``nit`` (V-cycles for multigrid), final residual
    2-norm, and the residual after each iteration."""

    x: np.ndarray
    nit: int
    residual: float
    history: list = field(default_factory=list)


def as_matvec(A, name="A"):
    """A callable ``x -> A x`` for arrays, sparse matrices, LinearOperators, callables."""
    if isinstance(A, spla.LinearOperator):
        return A.matvec
    if sp.issparse(A) or isinstance(A, np.ndarray):
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise SolverError(f"{name} must be a square matrix, got shape {A.shape}")
        return lambda x: A @ x
    if callable(A):
        return A
    raise SolverError(
        f"{name} must be an array, sparse matrix, LinearOperator or callable, got {type(A)}"
    )


def _check_rhs(A, b):
    b = np.asarray(b)
    if b.ndim != 1:
        raise SolverError(f"b must be a 1-D array, got shape {b.shape}")
    shape = getattr(A, "shape", None)
    if shape is not None and shape[1] != b.size:
        raise SolverError(f"A has shape {shape} but b has {b.size} entries")
    if b.dtype.kind not in "fc":
        b = b.astype(float)
    return b


def _target(b, rtol, atol):
    return max(rtol * float(np.linalg.norm(b)), atol)


def _not_converged(method, nit, res, target):
    return ConvergenceError(
        f"{method}: no convergence after {nit} iterations: residual |b - Ax| = {res:.3e} "
        f"> target {target:.3e}; raise maxiter, use a preconditioner or check that A is "
        "suitable for this method"
    )


# ----------------------------------------------------------------------------------
# Conjugate gradients
# ----------------------------------------------------------------------------------


def cg_step(matvec, precond, state):
    """One preconditioned CG iteration on state ``(x, r, p, rz)``."""
    x, r, p, rz = state
    ap = matvec(p)
    alpha = rz / np.vdot(p, ap)
    x, r = x + alpha * p, r - alpha * ap
    z = precond(r)
    rz_new = np.vdot(r, z)
    return x, r, z + (rz_new / rz) * p, rz_new


def cg(A, b, x0=None, rtol=1e-10, atol=0.0, maxiter=None, M=None):
    """Conjugate gradients for symmetric definite ``A`` (either sign), optional
    preconditioner ``M`` approximating ``A^-1`` (symmetric, same sign as ``A``)."""
    matvec = as_matvec(A)
    b = _check_rhs(A, b)
    precond = (lambda r: r) if M is None else as_matvec(M, "M")
    x = np.zeros_like(b) if x0 is None else np.asarray(x0, dtype=b.dtype)
    r = b - matvec(x)
    z = precond(r)
    state, target = (x, r, z, np.vdot(r, z)), _target(b, rtol, atol)
    maxiter = 10 * b.size if maxiter is None else maxiter
    history = [float(np.linalg.norm(r))]
    for it in range(maxiter + 1):
        if history[-1] <= target:
            return LinearResult(state[0], it, history[-1], history)
        if it == maxiter:
            break
        state = cg_step(matvec, precond, state)
        history.append(float(np.linalg.norm(state[1])))
    raise _not_converged("cg", maxiter, history[-1], target)


# ----------------------------------------------------------------------------------
# Restarted GMRES
# ----------------------------------------------------------------------------------


def arnoldi_step(op, basis, k):
    """Extend the orthonormal Krylov ``basis`` by one vector (modified Gram–Schmidt).

    Returns ``(new_basis, h)`` where ``h`` is the new Hessenberg column (length k+2).
    """
    w = op(basis[k])
    h = []
    for v in basis[: k + 1]:
        hj = np.vdot(v, w)
        w = w - hj * v
        h.append(hj)
    hnorm = float(np.linalg.norm(w))
    h.append(hnorm)
    # A zero norm means the Krylov space is invariant (happy breakdown): the exact
    # solution lies in it; keep a zero vector so shapes stay regular.
    v_new = w / hnorm if hnorm > 0 else np.zeros_like(w)
    return [*basis, v_new], np.array(h)


def gmres_cycle(op, r0, restart, target):
    """One GMRES cycle of at most ``restart`` Arnoldi steps on the (preconditioned)
    operator ``op`` from residual ``r0``; returns ``(dx, residual_estimate, steps)``."""
    beta = float(np.linalg.norm(r0))
    basis, cols = [r0 / beta], []
    res, y = beta, np.zeros(0)
    for k in range(restart):
        basis, h = arnoldi_step(op, basis, k)
        cols.append(np.pad(h, (0, restart + 1 - h.size)))
        hmat = np.stack(cols, axis=1)[: k + 2]
        rhs = np.pad(np.array([beta]), (0, k + 1))
        y = np.linalg.lstsq(hmat, rhs, rcond=None)[0]
        res = float(np.linalg.norm(rhs - hmat @ y))
        if res <= target or h[-1] == 0:
            break
    return np.stack(basis[: y.size], axis=1) @ y, res, y.size


def gmres(A, b, x0=None, rtol=1e-10, atol=0.0, restart=30, maxiter=None, M=None):
    """Restarted GMRES(``restart``) with right preconditioning by ``M``.

    ``maxiter`` counts Arnoldi steps over all cycles (default ``10 * n``).
    """
    matvec = as_matvec(A)
    b = _check_rhs(A, b)
    precond = (lambda r: r) if M is None else as_matvec(M, "M")
    x = np.zeros_like(b) if x0 is None else np.asarray(x0, dtype=b.dtype)
    target, maxiter = _target(b, rtol, atol), 10 * b.size if maxiter is None else maxiter
    restart = max(1, min(restart, b.size))
    r = b - matvec(x)
    history, nit = [float(np.linalg.norm(r))], 0
    while history[-1] > target and nit < maxiter:
        op = lambda v: matvec(precond(v))
        dz, _, steps = gmres_cycle(op, r, min(restart, maxiter - nit), target)
        x, nit = x + precond(dz), nit + steps
        r = b - matvec(x)  # true residual: the cycle's estimate drifts in finite precision
        history.append(float(np.linalg.norm(r)))
    if history[-1] > target:
        raise _not_converged("gmres", nit, history[-1], target)
    return LinearResult(x, nit, history[-1], history)


# ----------------------------------------------------------------------------------
# Sparse direct
# ----------------------------------------------------------------------------------


def direct_solve(A, b):
    """Sparse direct solve with ``scipy.sparse.linalg.spsolve`` (dense arrays: LAPACK)."""
    b = _check_rhs(A, b)
    if sp.issparse(A):
        return spla.spsolve(sp.csc_matrix(A), b)
    return np.linalg.solve(np.asarray(A), b)


def factorize(A):
    """Sparse LU (``splu``) of ``A`` once; returns ``solve(b)`` for repeated solves."""
    lu = spla.splu(sp.csc_matrix(A))
    return lu.solve


def jacobi_preconditioner(A):
    """``r -> r / diag(A)`` for a sparse or dense matrix."""
    d = np.asarray(A.diagonal() if sp.issparse(A) else np.diag(A))
    if np.any(d == 0):
        raise SolverError("jacobi_preconditioner: A has zeros on its diagonal")
    return lambda r: r / d


# ----------------------------------------------------------------------------------
# Geometric multigrid for (laplacian - sigma) u = f, homogeneous Dirichlet
# ----------------------------------------------------------------------------------


def _apply_op(u, dxs, sigma):
    return laplacian(u, dxs, Dirichlet(0.0, 0.0)) - sigma * u


def _diag(dxs, sigma):
    return -sum(2.0 / d**2 for d in dxs) - sigma


def _parity(shape):
    """Red/black colouring of a grid: True on points with even index sum."""
    idx = np.indices(shape).sum(axis=0)
    return idx % 2 == 0


def smooth(u, f, dxs, sigma, sweeps, method="rbgs", reverse=False):
    """``sweeps`` of red-black Gauss–Seidel or weighted Jacobi (pure; returns new u).

    ``reverse`` runs black before red so that pre- and post-smoothing are adjoint and
    the V-cycle is a symmetric preconditioner for CG.
    """
    diag = _diag(dxs, sigma)
    if method == "jacobi":
        omega = 2.0 * u.ndim / (2.0 * u.ndim + 1.0)  # 2/3, 4/5, 6/7: best damping in d dims
        for _ in range(sweeps):
            u = u + omega * (f - _apply_op(u, dxs, sigma)) / diag
        return u
    red = _parity(u.shape)
    colours = [~red, red] if reverse else [red, ~red]
    for _ in range(sweeps):
        for mask in colours:
            u = np.where(mask, u + (f - _apply_op(u, dxs, sigma)) / diag, u)
    return u


def restrict(r):
    """Full weighting onto the coarse grid (fine n = 2m + 1 -> coarse m), every axis."""
    for axis in range(r.ndim):
        v = np.moveaxis(r, axis, -1)
        v = 0.25 * v[..., 0:-2:2] + 0.5 * v[..., 1:-1:2] + 0.25 * v[..., 2::2]
        r = np.moveaxis(v, -1, axis)
    return r


def prolong(c):
    """(Bi/tri)linear interpolation to the fine grid (coarse m -> fine 2m + 1)."""
    for axis in range(c.ndim):
        v = np.moveaxis(c, axis, -1)
        m = v.shape[-1]
        vp = np.pad(v, [(0, 0)] * (v.ndim - 1) + [(1, 1)])  # zero Dirichlet neighbours
        even = 0.5 * (vp[..., :-1] + vp[..., 1:])  # fine points between coarse points
        pairs = np.stack([even[..., :m], v], axis=-1).reshape(*v.shape[:-1], 2 * m)
        c = np.moveaxis(np.concatenate([pairs, even[..., m:]], axis=-1), -1, axis)
    return c


@lru_cache(maxsize=32)
def _coarse_solver(shape, dxs, sigma):
    A, _ = laplacian_matrix(shape, dxs, Dirichlet(0.0, 0.0))
    return factorize(A - sigma * sp.identity(A.shape[0]))


def _can_coarsen(shape, min_size):
    return all(n % 2 == 1 and n >= 3 for n in shape) and min(shape) > min_size


def v_cycle(u, f, dxs, sigma, nu=(2, 2), smoother="rbgs", min_size=7):
    """One V-cycle for ``(laplacian - sigma) u = f``; returns the improved ``u``."""
    if not _can_coarsen(u.shape, min_size):
        return _coarse_solver(u.shape, dxs, sigma)(f.ravel()).reshape(u.shape)
    u = smooth(u, f, dxs, sigma, nu[0], smoother)
    rc = restrict(f - _apply_op(u, dxs, sigma))
    ec = v_cycle(np.zeros_like(rc), rc, tuple(2 * d for d in dxs), sigma, nu, smoother, min_size)
    return smooth(u + prolong(ec), f, dxs, sigma, nu[1], smoother, reverse=True)


def _check_mg_grid(f, dx, bc):
    f = np.asarray(f, dtype=float)
    if not 1 <= f.ndim <= 3:
        raise SolverError(f"multigrid: f must be 1-, 2- or 3-D, got shape {f.shape}")
    for b in bc if isinstance(bc, tuple | list) else (bc,):
        if not isinstance(b, Dirichlet):
            raise NotImplementedError(
                f"multigrid supports Dirichlet boundaries only, got {type(b).__name__}; "
                "use cg/gmres with fd.laplacian_matrix for other boundary conditions"
            )
    if any(n % 2 == 0 for n in f.shape):
        raise SolverError(
            f"multigrid: every axis needs an odd number of interior points (2^k - 1 is "
            f"best) so grids nest, got f.shape={f.shape}"
        )
    dxs = tuple(float(d) for d in np.broadcast_to(np.asarray(dx, dtype=float), (f.ndim,)))
    return f, dxs


_ZERO_DIRICHLET = Dirichlet(0.0, 0.0)


def multigrid(f, dx, sigma=0.0, bc=_ZERO_DIRICHLET, x0=None, rtol=1e-10, atol=0.0,
              maxiter=100, nu=(2, 2), smoother="rbgs"):
    """Solve ``(laplacian(u, dx, bc) - sigma u) = f`` by V-cycles (``sigma >= 0``).

    ``f`` has the grid's shape (interior nodes, odd sizes ``2^k - 1`` per axis best);
    Dirichlet values in ``bc`` (one ``Dirichlet`` or one per axis, values may be arrays
    over the boundary face) are moved to the right-hand side. ``nit`` counts V-cycles.

    >>> n = 31; x = np.arange(1, n + 1) / (n + 1)
    >>> r = multigrid(-np.pi**2 * np.sin(np.pi * x), 1.0 / (n + 1))
    >>> bool(np.max(np.abs(r.x - np.sin(np.pi * x))) < 1e-3)
    True
    """
    f, dxs = _check_mg_grid(f, dx, bc)
    rhs = f - laplacian(np.zeros(f.shape), dxs, bc)  # affine boundary part to the right
    u = np.zeros(f.shape) if x0 is None else np.asarray(x0, dtype=float)
    target = _target(rhs.ravel(), rtol, atol)
    history = [float(np.linalg.norm(rhs - _apply_op(u, dxs, sigma)))]
    for it in range(maxiter + 1):
        if not np.isfinite(history[-1]):
            raise ConvergenceError(f"multigrid: residual became {history[-1]} at V-cycle {it}")
        if history[-1] <= target:
            return LinearResult(u, it, history[-1], history)
        if it == maxiter:
            break
        u = v_cycle(u, rhs, dxs, sigma, nu, smoother)
        history.append(float(np.linalg.norm(rhs - _apply_op(u, dxs, sigma))))
    raise _not_converged("multigrid", maxiter, history[-1], target)


def multigrid_preconditioner(shape, dx, sigma=0.0, nu=(1, 1), smoother="rbgs"):
    """One V-cycle from zero as a symmetric preconditioner for :func:`cg` on flattened
    vectors of ``laplacian_matrix(shape, dx, Dirichlet()) - sigma I``."""
    shape = tuple(shape)
    dxs = tuple(float(d) for d in np.broadcast_to(np.asarray(dx, dtype=float), (len(shape),)))
    return lambda r: v_cycle(np.zeros(shape), r.reshape(shape), dxs, sigma, nu, smoother).ravel()
