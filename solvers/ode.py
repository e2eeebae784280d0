"""Adaptive ODE solvers with the conventions of ``scipy.integrate.solve_ivp``.

* ``"DOPRI5"`` (alias ``"RK45"``): explicit Dormand–Prince 5(4), error control on
  ``rtol``/``atol``, FSAL, 4th-order continuous extension for dense output.
* ``"Rodas4"`` (alias ``"stiff"``): the L-stable, stiffly accurate Rosenbrock method of
  Hairer & Wanner (RODAS, order 4 with embedded order 3 and a 3rd-order dense output),
  using the user's (or AD's) Jacobian ``jac(t, y, params)`` — dense or sparse — or a
  finite-difference one when ``jac`` is None.

Right-hand sides are ``rhs(t, y, params)``. One step of each method is a pure function
(``dopri5_step``, ``rodas4_step``); :func:`solve_ivp` drives them with a plain Python
loop that a later engineer can swap for ``while_loop``.

Example:
    >>> import numpy as np
    >>> res = solve_ivp(lambda t, y, p: -y, (0.0, 1.0), [1.0], rtol=1e-8, atol=1e-10)
    >>> bool(abs(res.y[0, -1] - np.exp(-1.0)) < 1e-7)
    True
"""

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .errors import ConvergenceError, NaNError, SolverError

EPS = np.finfo(float).eps

# ----------------------------------------------------------------------------------
# Tableaux (rules are data)
# ----------------------------------------------------------------------------------

DOPRI5 = {
    "order": 5,
    "c": np.array([0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1]),
    "a": [
        [],
        [1 / 5],
        [3 / 40, 9 / 40],
        [44 / 45, -56 / 15, 32 / 9],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    ],
    "b": np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]),
    # b - b_hat over the 7 stages (the 7th is the FSAL evaluation at the new point).
    "e": np.array([-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40]),
    # Dense output (Dormand & Prince / Shampine): y(t0 + s h) = y0 + h K^T P [s, s^2, s^3, s^4].
    "p": np.array([
        [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
        [0, 0, 0, 0],
        [0, 131558114200 / 32700410799, -68118460800 / 10900136933,
         87487479700 / 32700410799],
        [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
        [0, 127303824393 / 49829197408, -318862633887 / 49829197408,
         701980252875 / 199316789632],
        [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
        [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
    ]),
}

# RODAS (Hairer & Wanner, Solving ODEs II, sec. IV.7), coefficient set 1, in the
# transformed variables of their code: stages solve (I/(h gamma) - J) k_i = f(t + c_i h,
# y + sum a_ij k_j) + sum (c_ij / h) k_j + h d_i f_t.
RODAS4 = {
    "order": 4,
    "gamma": 0.25,
    "c": np.array([0.0, 0.386, 0.21, 0.63, 1.0, 1.0]),
    "d": np.array([0.25, -0.1043, 0.1035, -0.03620000000000023, 0.0, 0.0]),
    "a": [
        [],
        [1.544],
        [0.9466785280815826, 0.2557011698983284],
        [3.314825187068521, 2.896124015972201, 0.9986419139977817],
        [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895],
        # Stage 6 is evaluated at the embedded solution y + sum(a5j k_j) + k5.
        [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895, 1.0],
    ],
    "gc": [
        [],
        [-5.6688],
        [-2.430093356833875, -0.2063599157091915],
        [-0.1073529058151375, -9.594562251023355, -20.47028614809616],
        [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.7089089320616],
        [8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
         -6.058818238834054],
    ],
    # Dense output: y(s) = (1-s) y0 + s (y1 + (1-s) (D2.k + s D3.k)).
    "dense": np.array([
        [10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823,
         1.025137723295662],
        [-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386,
         -6.594389125716872],
    ]),
}


# ----------------------------------------------------------------------------------
# Result objects
# ----------------------------------------------------------------------------------


class DenseSolution:
    """Piecewise-polynomial dense output: ``sol(t)`` returns shape ``(n,)`` for a scalar
    ``t`` and ``(n, len(t))`` for an array, like scipy's ``OdeSolution``."""

    def __init__(self, t_old, h, coeffs):
        self.t_old, self.h = np.asarray(t_old), np.asarray(h)
        self.coeffs = np.asarray(coeffs)  # (steps, degree + 1, n): y = sum_k c_k s^k
        self.t_min = float(np.min([self.t_old[0], self.t_old[-1] + self.h[-1]]))
        self.t_max = float(np.max([self.t_old[0], self.t_old[-1] + self.h[-1]]))

    def __call__(self, t):
        t = np.asarray(t, dtype=float)
        tt = np.atleast_1d(t)
        forward = self.h[0] > 0
        keys = self.t_old if forward else -self.t_old
        idx = np.clip(np.searchsorted(keys, tt if forward else -tt, side="right") - 1,
                      0, len(self.t_old) - 1)
        s = (tt - self.t_old[idx]) / self.h[idx]
        powers = s[:, None] ** np.arange(self.coeffs.shape[1])[None, :]
        y = np.einsum("pk,pkn->np", powers, self.coeffs[idx])
        return y[:, 0] if t.ndim == 0 else y


@dataclass
class OdeResult:
    """Like scipy's ``OdeResult``: ``t``, ``y`` (shape ``(n, len(t))``), ``sol`` (a
    :class:`DenseSolution` or None), counters, ``status`` (0: reached the end),
    ``message``, ``success``."""

    t: np.ndarray
    y: np.ndarray
    sol: DenseSolution | None
    nfev: int
    njev: int
    nlu: int
    nsteps: int
    nrejected: int
    status: int
    message: str
    success: bool


# ----------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------


def error_norm(err, y, y_new, rtol, atol):
    """RMS norm of ``err`` scaled by ``atol + rtol * max(|y|, |y_new|)``."""
    scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_new))
    return float(np.sqrt(np.mean((err / scale) ** 2)))


def initial_step(rhs, t0, y0, f0, direction, order, rtol, atol, params):
    """Hairer's starting step heuristic (as in scipy); returns ``(h, nfev)``."""
    scale = atol + np.abs(y0) * rtol
    d0, d1 = np.sqrt(np.mean((y0 / scale) ** 2)), np.sqrt(np.mean((f0 / scale) ** 2))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = rhs(t0 + direction * h0, y0 + direction * h0 * f0, params)
    d2 = np.sqrt(np.mean(((f1 - f0) / scale) ** 2)) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1 / (order + 1))
    return min(100 * h0, h1), 1


# ----------------------------------------------------------------------------------
# Dormand–Prince 5(4)
# ----------------------------------------------------------------------------------


def dopri5_step(rhs, t, y, h, f0, params=None, tab=DOPRI5):
    """One DOPRI5 step from ``(t, y)`` with ``f0 = rhs(t, y)``.

    Returns ``(y_new, f_new, err, K)``: the 5th-order solution, its rhs (FSAL), the
    embedded error estimate and the stage derivatives ``K`` (7, n) for dense output.
    """
    ks = [f0]
    for i in range(1, 6):
        yi = y + h * sum(a * k for a, k in zip(tab["a"][i], ks))
        ks.append(rhs(t + tab["c"][i] * h, yi, params))
    y_new = y + h * sum(b * k for b, k in zip(tab["b"], ks))
    f_new = rhs(t + h, y_new, params)
    K = np.stack([*ks, f_new])
    return y_new, f_new, h * (tab["e"] @ K), K


def dopri5_dense(y, h, K, tab=DOPRI5):
    """Polynomial coefficients in ``s`` (5, n) of DOPRI5's continuous extension."""
    q = K.T @ tab["p"]  # (n, 4)
    return np.concatenate([y[None, :], h * q.T], axis=0)


class _Dopri5:
    order, err_exponent = 5, 1 / 5

    def __init__(self, rhs, params, t0, y0):
        self.rhs, self.params = rhs, params
        self.f = rhs(t0, y0, params)
        self.nfev, self.njev, self.nlu = 1, 0, 0

    def step(self, t, y, h):
        y_new, f_new, err, K = dopri5_step(self.rhs, t, y, h, self.f, self.params)
        self.nfev += 6
        return y_new, err, (f_new, K)

    def accept(self, t, y, h, y_new, aux):
        self.f = aux[0]
        return dopri5_dense(y, h, aux[1])


# ----------------------------------------------------------------------------------
# Rodas4 (Rosenbrock, stiff)
# ----------------------------------------------------------------------------------


def fd_jacobian(rhs, t, y, f0, params=None):
    """Forward-difference dense Jacobian (fallback when no ``jac`` is given)."""
    steps = np.sqrt(EPS) * np.maximum(1.0, np.abs(y))
    cols = [(rhs(t, y + dy * e, params) - f0) / dy for dy, e in zip(steps, np.eye(y.size))]
    return np.stack(cols, axis=1)


def _factor(jmat, h, gamma):
    """Factorise ``I/(h gamma) - J``; returns a solve function."""
    n = jmat.shape[0]
    if sp.issparse(jmat):
        return spla.splu(sp.csc_matrix(sp.identity(n) / (h * gamma) - jmat)).solve
    lu = sla.lu_factor(np.eye(n) / (h * gamma) - np.asarray(jmat), check_finite=False)
    return lambda b: sla.lu_solve(lu, b, check_finite=False)


def rodas4_step(rhs, t, y, h, f0, jmat, ft, params=None, tab=RODAS4):
    """One Rodas4 step given ``f0 = rhs(t, y)``, Jacobian ``jmat`` and ``ft = df/dt``.

    Returns ``(y_new, err, ks)``: the 4th-order solution, the embedded error estimate
    (the last stage) and the stage vectors for dense output.
    """
    solve = _factor(jmat, h, tab["gamma"])
    ks = [solve(f0 + h * tab["d"][0] * ft)]
    for i in range(1, 6):
        yi = y + sum(a * k for a, k in zip(tab["a"][i], ks))
        fi = rhs(t + tab["c"][i] * h, yi, params)
        coupling = sum(c * k for c, k in zip(tab["gc"][i], ks)) / h
        ks.append(solve(fi + coupling + h * tab["d"][i] * ft))
    return y + sum(a * k for a, k in zip(tab["a"][5], ks)) + ks[5], ks[5], ks


def rodas4_dense(y, y_new, ks, tab=RODAS4):
    """Coefficients in ``s`` (4, n) of ``(1-s) y0 + s (y1 + (1-s)(c3 + s c4))``."""
    c3, c4 = tab["dense"] @ np.stack(ks[:5])
    return np.stack([y, y_new - y + c3, c4 - c3, -c4])


class _Rodas4:
    order, err_exponent = 4, 1 / 4

    def __init__(self, rhs, params, t0, y0, jac):
        self.rhs, self.params, self.jac = rhs, params, jac
        self.nfev, self.njev, self.nlu = 0, 0, 0
        self.f = rhs(t0, y0, params)
        self.nfev += 1
        self._cache = None  # (t, J, ft) reused after a rejected step

    def _jacobians(self, t, y):
        if self._cache is not None and self._cache[0] == t:
            return self._cache[1:]
        if self.jac is not None:
            jmat = self.jac(t, y, self.params)
        else:
            jmat = fd_jacobian(self.rhs, t, y, self.f, self.params)
        self.nfev += 0 if self.jac else y.size
        self.njev += 1
        # df/dt by a forward difference, as in Hairer's code for non-autonomous problems.
        dt = np.sqrt(EPS * max(1e-5, abs(t)))
        ft = (self.rhs(t + dt, y, self.params) - self.f) / dt
        self.nfev += 1
        self._cache = (t, jmat, ft)
        return jmat, ft

    def step(self, t, y, h):
        jmat, ft = self._jacobians(t, y)
        y_new, err, ks = rodas4_step(self.rhs, t, y, h, self.f, jmat, ft, self.params)
        self.nfev, self.nlu = self.nfev + 5, self.nlu + 1
        return y_new, err, ks

    def accept(self, t, y, h, y_new, ks):
        self.f = self.rhs(t + h, y_new, self.params)
        self.nfev += 1
        return rodas4_dense(y, y_new, ks)


METHODS = {"DOPRI5": "DOPRI5", "RK45": "DOPRI5", "Rodas4": "Rodas4", "stiff": "Rodas4"}


# ----------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------


def _make_method(method, rhs, params, t0, y0, jac):
    if method not in METHODS:
        raise SolverError(f"solve_ivp: method={method!r} unknown; choose one of {sorted(METHODS)}")
    if METHODS[method] == "DOPRI5":
        return _Dopri5(rhs, params, t0, y0)
    return _Rodas4(rhs, params, t0, y0, jac)


def _check_inputs(t_span, y0, rtol, atol, t_eval):
    if len(t_span) != 2:
        raise SolverError(f"solve_ivp: t_span must be (t0, tf), got {t_span!r}")
    t0, tf = float(t_span[0]), float(t_span[1])
    y0 = np.asarray(y0)
    if y0.ndim != 1:
        raise SolverError(f"solve_ivp: y0 must be 1-D, got shape {y0.shape}")
    if y0.dtype.kind not in "fc":
        y0 = y0.astype(float)
    if rtol <= 0 or np.any(np.asarray(atol) < 0):
        raise SolverError(f"solve_ivp: need rtol > 0 and atol >= 0, got rtol={rtol}, atol={atol}")
    if t_eval is not None:
        t_eval = np.asarray(t_eval, dtype=float)
        lo, hi = min(t0, tf), max(t0, tf)
        if t_eval.ndim != 1 or np.any((t_eval < lo) | (t_eval > hi)):
            raise SolverError(f"solve_ivp: t_eval must be 1-D and lie within t_span={t_span}")
        d = np.diff(t_eval) * np.sign(tf - t0)
        if np.any(d < 0):
            raise SolverError("solve_ivp: t_eval must be sorted in the direction of integration")
    return t0, tf, y0, t_eval


def _new_h(h, err, exponent, rejected, safety=0.9):
    """Step-size update: ``h (safety / err)^exponent`` within [0.2 h, 10 h], never growing
    right after a rejection."""
    factor = 10.0 if err == 0 else min(10.0, max(0.2, safety * err ** (-exponent)))
    return h * (min(1.0, factor) if rejected else factor)


def _underflow(t, h, saw_nan, method):
    if saw_nan:
        return NaNError(
            f"solve_ivp({method}): NaN/inf in the solution at t={t:.10g}, step size "
            f"h={h:.3e} shrank to underflow; the rhs returns NaN or the solution blows up"
        )
    return ConvergenceError(
        f"solve_ivp({method}): step size underflow at t={t:.10g} (h={h:.3e}); the problem "
        "may be stiff (use method='Rodas4'), singular, or the tolerances too tight"
    )


def _emit(t_eval, t_old, t_new, coeffs, direction, y_new):
    """Outputs of one accepted step: all t_eval points in (t_old, t_new], or the step end."""
    if t_eval is None:
        return [t_new], [y_new]
    sel = t_eval[((t_eval - t_old) * direction > 0) & ((t_eval - t_new) * direction <= 0)]
    s = (sel - t_old) / (t_new - t_old)
    return list(sel), [np.power(si, np.arange(len(coeffs))) @ coeffs for si in s]


def solve_ivp(rhs, t_span, y0, method="DOPRI5", t_eval=None, dense_output=False, rtol=1e-3,
              atol=1e-6, params=None, jac=None, first_step=None, max_step=np.inf,
              max_steps=1_000_000):
    """Integrate ``dy/dt = rhs(t, y, params)`` over ``t_span`` with error control.

    ``method``: 'DOPRI5' (= 'RK45') or 'Rodas4' (= 'stiff', uses ``jac(t, y, params)``,
    dense or sparse; finite differences if None). ``atol`` may be a vector. Raises
    :class:`NaNError`/:class:`ConvergenceError` (naming t and h) when the step size
    underflows, and ConvergenceError after ``max_steps`` steps.
    """
    t0, tf, y, t_eval = _check_inputs(t_span, y0, rtol, atol, t_eval)
    solver = _make_method(method, rhs, params, t0, y, jac)
    if not np.all(np.isfinite(solver.f)):
        raise NaNError(f"solve_ivp({method}): rhs returned NaN/inf at the initial point t={t0}")
    direction = 1.0 if tf >= t0 else -1.0
    if first_step is None:
        h, nf = initial_step(rhs, t0, y, solver.f, direction, solver.order, rtol, atol, params)
        solver.nfev += nf
    else:
        h = float(first_step)
    h = min(h, max_step, abs(tf - t0))
    t, ts, ys = t0, [t0], [y]
    if t_eval is not None:
        ts, ys = ([t0], [y]) if t_eval.size and t_eval[0] == t0 else ([], [])
    dense, nsteps, nrej, rejected, saw_nan = [], 0, 0, False, False
    while (tf - t) * direction > 0:
        if nsteps >= max_steps:
            raise ConvergenceError(
                f"solve_ivp({method}): max_steps={max_steps} reached at t={t:.10g}, h={h:.3e}"
            )
        h = min(h, abs(tf - t))
        if h < 10 * EPS * max(abs(t), 1e-300):
            raise _underflow(t, h, saw_nan, method)
        y_new, err_vec, aux = solver.step(t, y, direction * h)
        err = error_norm(err_vec, y, y_new, rtol, atol) if np.all(np.isfinite(y_new)) else np.inf
        if err > 1.0:
            # NaN in a trial step counts as a large error: shrink hard and retry.
            saw_nan = not np.isfinite(err)
            h = 0.25 * h if saw_nan else _new_h(h, err, solver.err_exponent, True)
            nrej, rejected = nrej + 1, True
            continue
        coeffs = solver.accept(t, y, direction * h, y_new, aux)
        t_new = tf if abs(tf - (t + direction * h)) <= 4 * EPS * abs(tf) else t + direction * h
        new_ts, new_ys = _emit(t_eval, t, t_new, coeffs, direction, y_new)
        # Output lists are host-side bookkeeping, not array state: appending keeps it O(n).
        ts.extend(new_ts)
        ys.extend(new_ys)
        if dense_output:
            dense.append((t, direction * h, coeffs))
        t, y, nsteps = t_new, y_new, nsteps + 1
        h, rejected = min(_new_h(h, err, solver.err_exponent, rejected), max_step), False
    sol = DenseSolution(*map(np.array, zip(*dense))) if dense_output and dense else None
    return OdeResult(
        t=np.array(ts), y=np.stack(ys, axis=1) if ys else np.zeros((y.size, 0)), sol=sol,
        nfev=solver.nfev, njev=solver.njev, nlu=solver.nlu, nsteps=nsteps, nrejected=nrej,
        status=0, message="The solver successfully reached the end of the integration interval.",
        success=True,
    )
