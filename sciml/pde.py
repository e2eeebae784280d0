"""Time-dependent and steady PDEs for ``sciml.solve`` (method of lines, see ``sciml.mol``)."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as spla
import sympy as sp

from autodiff.ops.control import fori_loop
from autodiff.trace import Tracer, is_tracing
from solvers.time import euler_step, rk4_step, ssprk3_step

from . import numpy as snp
from .equations import from_sympy
from .errors import CFLError, ConvergenceError, NaNError, ProblemError
from .mol import Discretization, make_grid, parse_bcs
from .problem import lookup, pde_system
from .solution import Solution

STEPS = {"rk4": rk4_step, "ssprk3": ssprk3_step, "euler": euler_step}
SAFETY = 0.9


def solve_pde(eqs, unknowns, t_span, domain, grid, ic, bc, params, method, t_eval, dt, order,
              scheme, upwind_order, progress, time_name):
    if t_span is None:
        raise ProblemError("a time-dependent PDE needs the time interval: t=(t0, t1)")
    system = pde_system(eqs, unknowns, time_name, list(params), steady=False)
    bcs = parse_bcs(bc, system)
    g = make_grid(system, domain or {}, grid if grid is not None else 64, bcs)
    disc = Discretization(system, g, bcs, order, scheme, upwind_order)
    t0, t1 = (float(v) for v in t_span)
    state = disc.apply_bc(t0, _initial_state(system, g, ic, params), params)
    times = np.linspace(t0, t1, 11) if t_eval is None else np.asarray(t_eval, float)
    if times[0] < t0 or times[-1] > t1 + 1e-12 * max(1.0, abs(t1)) or np.any(np.diff(times) < 0):
        raise ProblemError(f"t_eval must be increasing and inside t=({t0}, {t1})")
    method = (method or "rk4").lower()
    if method in STEPS:
        frames = _explicit(disc, state, t0, times, params, method, dt, progress)
    elif method in ("cn", "be"):
        frames = _implicit(disc, state, t0, times, params, method, dt, progress)
    else:
        raise ProblemError(f"PDE method {method!r} is not one of {sorted(STEPS) + ['cn', 'be']}")
    fields = {f.func: snp.stack([fr[k] for fr in frames]) for k, f in enumerate(system.fields)}
    coords = {str(s): c for s, c in zip(g.space, g.coords)}
    return Solution(kind="pde", t=times, coords=coords, fields=fields,
                    stats={"dt": disc_dt(disc), "method": method})


def disc_dt(disc):
    return getattr(disc, "dt_used", None)


def _initial_state(system, g, ic, params):
    if ic is None:
        raise ProblemError("a time-dependent PDE needs initial conditions: ic=expr or "
                           "ic={u: expr}")
    if not isinstance(ic, dict):
        if len(system.fields) != 1:
            raise ProblemError("several fields: give ic={u: ..., v: ...}")
        ic = {system.fields[0].func: ic}
    pvals = [params[p] for p in system.params]
    out = []
    for f in system.fields:
        expr = lookup(ic, f, f.func)
        if expr is None:
            raise ProblemError(f"no initial condition for field {f}; add it to ic=")
        fn = from_sympy(sp.sympify(expr), list(system.space) + list(system.params))
        val = fn(*g.mesh(), *pvals)
        out.append(snp.astype(snp.broadcast_to(val, g.shape), np.float64))
    return snp.stack(out)


# ---------------------------------------------------------------------------------------------
# Explicit integration


# Stability polynomials R(z) of the explicit methods: a step is stable where |R(dt*lambda)| <= 1.
STABILITY_POLY = {
    "euler": (1.0, 1.0),
    "ssprk3": (1.0, 1.0, 1 / 2, 1 / 6),
    "rk4": (1.0, 1.0, 1 / 2, 1 / 6, 1 / 24),
}


def stability_box(disc, state, params, t0):
    """A box in the complex plane holding every eigenvalue of dF/du: the numerical range of
    the Jacobian J lies in [min, max] of its symmetric part times +-i max|skew part|, and
    Gershgorin row sums bound both (cheap, and tight for the usual stencils)."""
    jac = disc.jacobian(t0, np.asarray(state), params)
    # Boundary nodes are algebraic (reset by the boundary conditions), so the dynamics are
    # those of the interior block.
    inner = np.flatnonzero(disc.interior_masks().ravel())
    jac = balance(jac[inner][:, inner])
    if not jac.nnz:
        return 0.0, 0.0, 0.0
    sym = ((jac + jac.T) * 0.5).tocsr()
    skew = ((jac - jac.T) * 0.5).tocsr()
    centre = sym.diagonal()
    radius = np.asarray(abs(sym).sum(axis=1)).ravel() - np.abs(centre)
    omega = float(np.max(np.asarray(abs(skew).sum(axis=1)))) if skew.nnz else 0.0
    return float(np.min(centre - radius)), float(np.max(centre + radius)), omega


def balance(jac, sweeps: int = 30):
    """A diagonal similarity F J F^-1 (same eigenvalues) with balanced row and column sums.

    Systems like the wave equation (u_t = v, v_t = c² u_xx) couple blocks of very different
    scale; balancing shrinks their numerical range (and so the Gershgorin box) to the scale of
    the eigenvalues."""
    jac = sps.csr_matrix(jac)
    off = jac - sps.diags(jac.diagonal())
    f = np.ones(jac.shape[0])
    for _ in range(sweeps):
        scaled = sps.diags(f) @ abs(off) @ sps.diags(1.0 / f)
        r = np.asarray(scaled.sum(axis=1)).ravel()
        c = np.asarray(scaled.sum(axis=0)).ravel()
        ok = (r > 0) & (c > 0)
        step = np.ones_like(f)
        # A quarter power: both ends of a coupling move at once, so the full square root
        # would overshoot and oscillate.
        step[ok] = (c[ok] / r[ok]) ** 0.25
        if np.max(np.abs(step - 1)) < 1e-3:
            break
        f *= step
    return (sps.diags(f) @ jac @ sps.diags(1.0 / f)).tocsr()


def stable_step(method, box) -> float:
    """Largest dt with |R(dt z)| <= 1 on the boundary of the eigenvalue box (growth, Re z > 0,
    cannot be damped by any step and is left to the NaN check)."""
    re_min, _, omega = box
    re_min = min(re_min, 0.0)
    if re_min == 0.0 and omega == 0.0:
        return np.inf
    s = np.linspace(0.0, 1.0, 65)
    edges = np.concatenate([re_min * s + 1j * omega, re_min * s - 1j * omega,
                            re_min + 1j * omega * (2 * s - 1), 1j * omega * (2 * s - 1)])
    coeffs = STABILITY_POLY[method]

    def stable(dt):
        z = dt * edges
        r = sum(c * z**k for k, c in enumerate(coeffs))
        return np.max(np.abs(r)) <= 1.0 + 1e-12

    lo, hi = 0.0, 4.0 / max(-re_min, omega)
    while stable(hi):
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    if lo == 0.0:
        raise ProblemError(f"{method} is unstable for this operator at any time step (its "
                           "eigenvalues reach the imaginary axis: advection or waves); use "
                           "method='rk4' or 'ssprk3', or scheme='upwind'")
    return lo


def _explicit(disc, state, t0, times, params, method, dt, progress):
    traced = any(isinstance(v, Tracer) for v in params.values()) or isinstance(state, Tracer)
    if dt is None:
        if traced:
            raise ProblemError(
                "pass dt= when parameters or initial values are traced (e.g. under sciml.grad):"
                " the stable time step cannot be estimated from abstract values"
            )
        dt = min(SAFETY * _stability(disc, state, params, t0, method)[1],
                 (times[-1] - times[0]) / 10 or 1.0)
    elif not traced:
        _check_cfl(disc, state, params, t0, method, dt)
    disc.dt_used = dt
    step = STEPS[method]

    def rhs(t, y, p):
        return disc.rhs(t, y, p)

    psyms = list(disc.system.params)

    def advance(y, t, h, n, *pvals):
        p = dict(zip(psyms, pvals))
        return fori_loop(0, n, lambda i, yy: step(rhs, t + i * h, yy, h, p), y)

    eager = not traced and not is_tracing()
    total_work = (times[-1] - t0) / dt * int(np.prod(disc.grid.shape)) * len(disc.bcs)
    if eager and (jit_enabled(total_work) or (disc.key, method) in _ADVANCE_CACHE):
        # One compiled plan advances any number of steps: t, h, n and the parameters are
        # runtime arguments, so every frame and every later solve of the same problem (other
        # parameter values, initial data or times) reuses it.
        advance = _jitted_advance(disc, method, advance)
    frames, t, y = [], t0, state
    bar = _progress(progress, len(times))
    for target in times:
        span = target - t
        n = int(math.ceil(span / dt - 1e-9)) if span > 0 else 0
        if n:
            h = span / n
            pv = [params[p] for p in psyms]
            if eager:
                y = advance(np.asarray(y, float), np.float64(t), np.float64(h), np.int64(n),
                            *[np.float64(v) for v in pv])
                _check_state(disc, y, t, target, n)
            else:
                y = advance(y, t, h, n, *pv)
        t = target
        frames.append(disc.apply_bc(t, y, params))
        bar.update(1)
    bar.close()
    return frames


JIT_MIN_WORK = 2e7  # node-steps; below this, compiling costs more than it saves


_ADVANCE_CACHE: dict = {}


def _jitted_advance(disc, method, advance):
    from kernels.jit import jit

    key = (disc.key, method)
    if key not in _ADVANCE_CACHE:
        if len(_ADVANCE_CACHE) > 32:
            _ADVANCE_CACHE.pop(next(iter(_ADVANCE_CACHE)))
        _ADVANCE_CACHE[key] = jit(advance)
    return _ADVANCE_CACHE[key]


def jit_enabled(work: float) -> bool:
    """Explicit steps run through ``sciml.jit`` when the work pays for the compile time
    (SCIML_SOLVE_JIT=1 forces it, 0 turns it off)."""
    import os

    flag = os.environ.get("SCIML_SOLVE_JIT", "auto")
    return flag == "1" or (flag == "auto" and work >= JIT_MIN_WORK)


_STABLE_CACHE: dict = {}


def _stability(disc, state, params, t0, method):
    """(box, largest stable dt). For a linear problem the Jacobian does not depend on the
    state, so the result is cached per problem, parameter values and start time."""
    key = None
    if disc.is_linear():
        key = (disc.key, method, t0, tuple(float(params[p]) for p in disc.system.params))
        if key in _STABLE_CACHE:
            return _STABLE_CACHE[key]
    box = stability_box(disc, state, params, t0)
    result = box, stable_step(method, box)
    if key is not None:
        if len(_STABLE_CACHE) > 256:
            _STABLE_CACHE.clear()
        _STABLE_CACHE[key] = result
    return result


def _check_cfl(disc, state, params, t0, method, dt):
    box, limit = _stability(disc, state, params, t0, method)
    if dt > limit * 1.0001:
        h = ", ".join(f"d{s}={v:.4g}" for s, v in zip(disc.grid.space, disc.grid.h))
        raise CFLError(
            f"explicit {method} step dt={dt:.4g} is unstable on this grid ({h}): the discrete "
            f"operator's eigenvalues reach Re = {box[0]:.4g} and Im = +-{box[2]:.4g}, so dt "
            f"must be below {limit:.4g}; lower dt, coarsen the grid or use an implicit method "
            "(method='cn' or 'be')"
        )


def _check_state(disc, y, t_start, t_end, n):
    arr = np.asarray(y)
    bad = ~np.isfinite(arr)
    if bad.any():
        k, *idx = np.argwhere(bad)[0]
        f = disc.system.fields[k]
        raise NaNError(
            f"the solution became NaN/inf between t={t_start:.6g} and t={t_end:.6g} "
            f"({n} steps): field {f} at grid index {tuple(int(i) for i in idx)}; the step may "
            "be unstable or the equation ill-posed"
        )


def _progress(progress, total):
    if progress is False or is_tracing():
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    import sys

    if progress is None and not sys.stderr.isatty():
        return _NoBar()
    return tqdm(total=total, desc="sciml.solve", leave=False)


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


# ---------------------------------------------------------------------------------------------
# Implicit integration (theta method; Newton with the sparse Jacobian)


def _implicit(disc, state, t0, times, params, method, dt, progress):
    theta = 1.0 if method == "be" else 0.5
    if any(isinstance(v, Tracer) for v in params.values()) or is_tracing():
        return _implicit_traced(disc, state, t0, times, params, theta, dt)
    if dt is None:
        dt = (times[-1] - times[0]) / 100 if times[-1] > times[0] else 1.0
    disc.dt_used = dt
    frames, t, y = [], t0, np.asarray(state, float)
    bar = _progress(progress, len(times))
    for target in times:
        span = target - t
        n = int(math.ceil(span / dt - 1e-9)) if span > 0 else 0
        for i in range(n):
            h = span / n
            y = theta_step(disc, y, t + i * h, h, theta, params)
        if n:
            _check_state(disc, y, t, target, n)
        t = target
        frames.append(np.asarray(disc.apply_bc(t, y, params)))
        bar.update(1)
    bar.close()
    return frames


def _implicit_traced(disc, state, t0, times, params, theta, dt):
    """The theta method as traceable loops: each step is a Newton–Krylov solve
    (solvers.nonlinear_solve), differentiated by one adjoint solve per step in reverse mode."""
    from solvers.implicit import nonlinear_solve

    if dt is None:
        raise ProblemError("pass dt= when differentiating an implicit solve (method='cn'/'be')")
    mask = disc.interior_masks()
    psyms = list(disc.system.params)

    def residual(y1, y0, tt, h, *pv):
        p = dict(zip(psyms, pv))
        f0 = disc.raw_rhs(tt, y0, p) if theta < 1 else 0.0
        f1 = disc.raw_rhs(tt + h, y1, p)
        inner = y1 - y0 - h * (theta * f1 + (1 - theta) * f0)
        return mask * inner + (1 - mask) * disc.constraints(tt + h, y1, p)

    def step(y, tt, h, pv):
        return nonlinear_solve(residual, y, (y, tt, h, *pv))

    disc.dt_used = dt
    frames, t, y = [], t0, state
    pv = [params[s] for s in psyms]
    for target in times:
        span = target - t
        n = int(math.ceil(span / dt - 1e-9)) if span > 0 else 0
        if n:
            h = span / n
            y = fori_loop(0, n, lambda i, yy, t=t, h=h: step(yy, t + i * h, h, pv), y)
        t = target
        frames.append(disc.apply_bc(t, y, params))
    return frames


def theta_step(disc, y0, t, h, theta, params, tol=1e-10, maxiter=20):
    """Solve y1 - y0 - h(theta F(y1) + (1-theta) F(y0)) = 0 at interior nodes, with the
    boundary constraints at boundary nodes."""
    shape = y0.shape
    f0 = np.asarray(disc.raw_rhs(t, y0, params)) if theta < 1 else 0.0
    mask = disc.interior_masks()
    y = y0.copy()
    for _ in range(maxiter):
        f1 = np.asarray(disc.raw_rhs(t + h, y, params))
        con = np.asarray(disc.constraints(t + h, y, params))
        r = mask * (y - y0 - h * (theta * f1 + (1 - theta) * f0)) + (1 - mask) * con
        if np.max(np.abs(r)) <= tol * max(1.0, np.max(np.abs(y))):
            return y
        jac = disc.jacobian(t + h, y, params, raw=True)
        m = sps.diags(mask.ravel())
        big = m @ (sps.identity(y.size) - h * theta * jac) + disc.constraint_jacobian()
        y = y - spla.spsolve(big.tocsc(), r.ravel()).reshape(shape)
    raise ConvergenceError(f"implicit step at t={t:.6g} (dt={h:.4g}) did not converge in "
                           f"{maxiter} Newton iterations")


# ---------------------------------------------------------------------------------------------
# Steady problems


def solve_steady(eqs, unknowns, domain, grid, bc, params, order, method, tol, maxiter, guess,
                 time_name):
    system = pde_system(eqs, unknowns, time_name, list(params), steady=True)
    bcs = parse_bcs(bc, system)
    g = make_grid(system, domain or {}, grid if grid is not None else 64, bcs)
    disc = Discretization(system, g, bcs, order)
    y = np.zeros((len(system.fields),) + g.shape)
    if guess:
        y = np.asarray(_initial_state(system, g, guess, params), float)
    method = (method or "direct").lower()
    mask = disc.interior_masks()
    coords = {str(s): c for s, c in zip(g.space, g.coords)}
    if any(isinstance(v, Tracer) for v in params.values()) or is_tracing():
        y = _steady_traced(disc, y, params, mask, tol, maxiter)
        fields = {f.func: y[k] for k, f in enumerate(system.fields)}
        return Solution(kind="steady", coords=coords, fields=fields,
                        stats={"method": "newton-krylov (traced)"})
    its = 0
    for _ in range(maxiter):
        its += 1
        r = mask * np.asarray(disc.raw_rhs(0.0, y, params)) + (1 - mask) * np.asarray(
            disc.constraints(0.0, y, params))
        jac = sps.diags(mask.ravel()) @ disc.jacobian(0.0, y, params, raw=True) + \
            disc.constraint_jacobian()
        dy = _linear_solve(jac.tocsr(), -r.ravel(), method, disc).reshape(y.shape)
        y = y + dy
        if np.max(np.abs(dy)) <= tol * max(1.0, np.max(np.abs(y))):
            break
    else:
        raise ConvergenceError(f"steady solve: Newton did not converge in {maxiter} iterations "
                               f"(last update {np.max(np.abs(dy)):.3e})")
    coords = {str(s): c for s, c in zip(g.space, g.coords)}
    fields = {f.func: y[k] for k, f in enumerate(system.fields)}
    return Solution(kind="steady", coords=coords, fields=fields,
                    stats={"newton_iterations": its, "method": method})


def _steady_traced(disc, y0, params, mask, tol, maxiter):
    """Newton–Krylov on the matrix-free residual: traceable, and differentiable in the
    parameters by one adjoint solve (solvers.implicit.nonlinear_solve)."""
    from solvers.implicit import nonlinear_solve

    psyms = list(disc.system.params)

    def residual(y, *pv):
        p = dict(zip(psyms, pv))
        return mask * disc.raw_rhs(0.0, y, p) + (1 - mask) * disc.constraints(0.0, y, p)

    return nonlinear_solve(residual, y0, [params[s] for s in psyms], tol=tol, maxiter=maxiter)


def _linear_solve(a, b, method, disc):
    from solvers.linear import cg, gmres

    if method == "direct":
        return spla.spsolve(a.tocsc(), b)
    if method == "gmres":
        return gmres(a, b, rtol=1e-12, restart=50).x
    if method in ("cg", "multigrid"):
        interior = np.concatenate([disc.interior_mask(k).ravel() for k in range(len(disc.bcs))])
        ii = np.flatnonzero(interior)
        bb = np.flatnonzero(1 - interior)
        if abs(a[bb][:, bb] - sps.identity(len(bb))).max() > 0 if len(bb) else False:
            raise ProblemError(f"method={method!r} needs Dirichlet boundaries (use 'direct' "
                               "or 'gmres')")
        a_ii, a_ib = a[ii][:, ii], a[ii][:, bb]
        if abs(a_ii - a_ii.T).max() > 1e-10 * abs(a_ii).max():
            raise ProblemError(f"method={method!r} needs a symmetric operator; this "
                               "discretisation is not symmetric (use 'direct' or 'gmres')")
        xb = b[bb]
        rhs = b[ii] - a_ib @ xb
        m = None
        if method == "multigrid":
            m = _mg_preconditioner(disc, a_ii)
        xi = cg(a_ii, rhs, rtol=1e-12, M=m).x
        x = np.zeros_like(b)
        x[ii], x[bb] = xi, xb
        return x
    raise ProblemError(f"steady method {method!r} is not one of direct, cg, gmres, multigrid")


def _mg_preconditioner(disc, a_ii):
    from solvers.linear import multigrid_preconditioner

    g = disc.grid
    if len(disc.bcs) != 1 or disc.order != 2 or any(g.periodic):
        raise ProblemError("method='multigrid' supports one field, order=2 and Dirichlet "
                           "boundaries")
    inner = tuple(n - 2 for n in g.shape)
    # Scale: the operator is c * Laplacian - sigma; estimate c from the diagonal.
    diag = a_ii.diagonal()
    lap_diag = -sum(2.0 / h**2 for h in g.h)
    c = float(np.median(diag)) / lap_diag
    pre = multigrid_preconditioner(inner, g.h, sigma=0.0)
    return lambda r: pre(r / c)
