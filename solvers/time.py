"""Fixed-step time integrators for method-of-lines systems ``du/dt = rhs(t, u, params)``.

* explicit: forward Euler, classical RK4, SSP-RK3 (Shu–Osher) as pure ``*_step``
  functions and a fixed-step :func:`integrate`;
* implicit for linear(ised) systems ``du/dt = A u + b(t)``: backward Euler and
  Crank–Nicolson with one sparse LU factorisation reused over all steps;
* implicit for nonlinear ``rhs`` with a user Jacobian ``jac(t, u, params)``: the same
  two methods with a Newton solve per step;
* :func:`check_cfl` / :func:`stable_dt` for explicit stability limits.

The time loops are plain Python loops around pure step functions, so they can later be
replaced by ``fori_loop`` without touching the steps.

Example:
    >>> import numpy as np
    >>> t, y = integrate(lambda t, y, p: -y, np.array([1.0]), 0.0, 0.01, 100)
    >>> bool(abs(y[0] - np.exp(-1.0)) < 1e-10)
    True
"""

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .errors import CFLError, NaNError, SolverError
from .nonlinear import newton

# ----------------------------------------------------------------------------------
# Explicit steps
# ----------------------------------------------------------------------------------


def euler_step(rhs, t, y, dt, params=None):
    """Forward Euler: first order."""
    return y + dt * rhs(t, y, params)


def rk4_step(rhs, t, y, dt, params=None):
    """Classical fourth-order Runge–Kutta."""
    k1 = rhs(t, y, params)
    k2 = rhs(t + dt / 2, y + dt / 2 * k1, params)
    k3 = rhs(t + dt / 2, y + dt / 2 * k2, params)
    k4 = rhs(t + dt, y + dt * k3, params)
    return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def ssprk3_step(rhs, t, y, dt, params=None):
    """Three-stage third-order strong-stability-preserving RK (Shu & Osher 1988)."""
    y1 = y + dt * rhs(t, y, params)
    y2 = 0.75 * y + 0.25 * (y1 + dt * rhs(t + dt, y1, params))
    return y / 3 + 2 / 3 * (y2 + dt * rhs(t + dt / 2, y2, params))


EXPLICIT_STEPS = {"euler": euler_step, "rk4": rk4_step, "ssprk3": ssprk3_step}

# Extent of each method's stability region along the negative real axis: explicit
# diffusion is stable while dt * (spectral radius of the operator) stays inside it.
REAL_STABILITY_LIMIT = {"euler": 2.0, "ssprk3": 2.5127453266183286, "rk4": 2.785293563405282}


def _get_step(method):
    if callable(method):
        return method
    if method not in EXPLICIT_STEPS:
        raise SolverError(f"method={method!r} unknown; choose one of {sorted(EXPLICIT_STEPS)}")
    return EXPLICIT_STEPS[method]


def _check_finite(y, t, k, method):
    if not np.all(np.isfinite(y)):
        raise NaNError(
            f"{method}: non-finite state at t={t:.6g} (step {k}); the step is probably "
            "unstable (check the CFL limit) or rhs returned NaN"
        )


def integrate(rhs, y0, t0, dt, n_steps, params=None, method="rk4", save_every=0, check_every=10):
    """Take ``n_steps`` fixed steps of ``method`` ('euler', 'rk4', 'ssprk3' or a step
    function ``step(rhs, t, y, dt, params)``).

    Returns ``(t, y)`` at the end, or ``(ts, ys)`` arrays of the states every
    ``save_every`` steps (the initial state included) when ``save_every > 0``. The state
    is checked for NaN/inf every ``check_every`` steps (0 disables).
    """
    step = _get_step(method)
    name = method if isinstance(method, str) else getattr(method, "__name__", "step")
    y, t = np.asarray(y0), float(t0)
    ts, ys = [t], [y]
    for k in range(1, int(n_steps) + 1):
        y, t = step(rhs, t, y, dt, params), t0 + k * dt
        if (check_every and k % check_every == 0) or k == n_steps:
            _check_finite(y, t, k, name)
        if save_every and k % save_every == 0:
            ts.append(t)  # host-side output list, not array state
            ys.append(y)
    return (np.array(ts), np.stack(ys)) if save_every else (t, y)


# ----------------------------------------------------------------------------------
# Implicit methods for du/dt = A u + b(t)
# ----------------------------------------------------------------------------------

THETA = {"be": 1.0, "backward_euler": 1.0, "cn": 0.5, "crank_nicolson": 0.5}


def _theta(method):
    if method not in THETA:
        raise SolverError(f"method={method!r} unknown; choose one of {sorted(THETA)}")
    return THETA[method]


def _forcing(b, t, n):
    if b is None:
        return np.zeros(n)
    return np.asarray(b(t) if callable(b) else b, dtype=float)


def linear_stepper(A, dt, method="cn"):
    """Return ``step(t, u, b=None) -> u_new`` for ``du/dt = A u + b(t)``.

    The theta scheme ``(I - theta dt A) u1 = (I + (1-theta) dt A) u0 + dt ((1-theta) b0
    + theta b1)`` with theta 1 (backward Euler, 'be') or 1/2 (Crank–Nicolson, 'cn');
    ``I - theta dt A`` is factorised once. ``b`` is an array, a callable ``b(t)`` or None.
    """
    theta = _theta(method)
    A = sp.csc_matrix(A)
    n = A.shape[0]
    if A.shape != (n, n):
        raise SolverError(f"linear_stepper: A must be square, got shape {A.shape}")
    lu = spla.splu((sp.identity(n, format="csc") - theta * dt * A).tocsc())

    def step(t, u, b=None):
        explicit = u + (1 - theta) * dt * (A @ u) if theta < 1 else u
        forcing = dt * ((1 - theta) * _forcing(b, t, n) + theta * _forcing(b, t + dt, n))
        return lu.solve(explicit + forcing)

    return step


def integrate_linear(A, u0, t0, dt, n_steps, b=None, method="cn"):
    """Integrate ``du/dt = A u + b(t)`` over ``n_steps`` implicit steps; returns ``(t, u)``.

    >>> A = sp.diags([-1.0])
    >>> t, u = integrate_linear(A, np.array([1.0]), 0.0, 0.01, 100)
    >>> bool(abs(u[0] - np.exp(-1.0)) < 1e-5)
    True
    """
    step = linear_stepper(A, dt, method)
    u = np.asarray(u0, dtype=float)
    for k in range(int(n_steps)):
        u = step(t0 + k * dt, u, b)
    _check_finite(u, t0 + n_steps * dt, n_steps, method)
    return t0 + n_steps * dt, u


# ----------------------------------------------------------------------------------
# Implicit methods for nonlinear rhs (Newton per step)
# ----------------------------------------------------------------------------------


def _identity_like(jmat, n):
    return sp.identity(n, format="csr") if sp.issparse(jmat) else np.eye(n)


def theta_newton_step(rhs, jac, t, y, dt, params=None, theta=1.0, tol=1e-10, maxiter=20):
    """One theta-scheme step for a nonlinear ``rhs`` solved by Newton with ``jac``.

    Solves ``y1 - y - dt ((1-theta) f(t, y) + theta f(t+dt, y1)) = 0``.
    """
    t1 = t + dt
    f0 = rhs(t, y, params) if theta < 1 else 0.0
    base = y + (1 - theta) * dt * f0

    def residual(y1):
        return y1 - base - theta * dt * rhs(t1, y1, params)

    def jacobian(y1):
        jm = jac(t1, y1, params)
        return _identity_like(jm, y.size) - theta * dt * jm

    return newton(residual, y, jacobian, tol=tol, maxiter=maxiter).x


def integrate_implicit(rhs, jac, y0, t0, dt, n_steps, params=None, method="be", tol=1e-10):
    """Backward Euler ('be') or Crank–Nicolson ('cn') with Newton solves; ``(t, y)``."""
    theta = _theta(method)
    y = np.asarray(y0, dtype=float)
    for k in range(int(n_steps)):
        y = theta_newton_step(rhs, jac, t0 + k * dt, y, dt, params, theta, tol)
    return t0 + n_steps * dt, y


# ----------------------------------------------------------------------------------
# Stability limits
# ----------------------------------------------------------------------------------

# Spectral radius of the central second-difference operator times dx**2, by order.
_LAPLACIAN_RADIUS = {2: 4.0, 4: 16.0 / 3.0}


def stable_dt(dx, speed=None, diffusivity=None, method="euler", courant=1.0, order=2):
    """Largest stable explicit ``dt`` for advection at ``speed`` (Courant number
    ``<= courant`` on each axis summed) and/or diffusion with ``diffusivity`` (the
    method's real stability extent over the Laplacian's spectral radius)."""
    inv = np.atleast_1d(1.0 / np.asarray(dx, dtype=float))
    limits = []
    if speed is not None:
        limits.append(courant / np.sum(np.abs(speed) * inv))
    if diffusivity is not None:
        radius = diffusivity * _LAPLACIAN_RADIUS[order] * np.sum(inv**2)
        limits.append(REAL_STABILITY_LIMIT[method] / radius)
    if not limits:
        raise SolverError("stable_dt: give speed=, diffusivity= or both")
    return float(min(limits))


def check_cfl(dt, dx, speed=None, diffusivity=None, method="euler", courant=1.0, order=2):
    """Raise :class:`CFLError` if ``dt`` exceeds :func:`stable_dt`; return the limit.

    >>> check_cfl(0.1, 0.1, speed=2.0)
    Traceback (most recent call last):
    ...
    solvers.errors.CFLError: CFL violated: dt=0.1 > limit 0.05 for dx=0.1, speed=2.0, \
diffusivity=None, method='euler' (Courant number 2 > 1)
    """
    limit = stable_dt(dx, speed, diffusivity, method, courant, order)
    if dt > limit * (1 + 1e-12):
        detail = []
        inv = np.atleast_1d(1.0 / np.asarray(dx, dtype=float))
        if speed is not None:
            detail.append(f"Courant number {dt * np.sum(np.abs(speed) * inv):.3g} > {courant:g}")
        if diffusivity is not None:
            detail.append(f"diffusion number {diffusivity * dt * np.sum(inv**2):.3g}")
        raise CFLError(
            f"CFL violated: dt={dt:g} > limit {limit:.3g} for dx={dx}, speed={speed}, "
            f"diffusivity={diffusivity}, method={method!r} ({'; '.join(detail)})"
        )
    return limit
