"""``sciml.solve``: classify a problem stated in sympy and solve it.

- algebraic systems: ``solve([eq1, eq2], [a, b], guess={a: 1, b: 0})`` — Newton with the
  Jacobian of the residual, line search, an error when it does not converge;
- ODE systems: ``solve(Eq(y(t).diff(t), -k*y(t)), y, t=(0, 10), ic={y: 1}, params={k: 0.5})``
  — adaptive Dormand–Prince (``method="RK45"``) or Rodas4 for stiff systems
  (``method="stiff"``); higher-order equations are reduced to first order;
- time-dependent PDEs by the method of lines (``sciml.mol``): ``domain=``, ``grid=``, ``ic=``,
  ``bc=``, explicit ``method="rk4" | "ssprk3" | "euler"`` or implicit ``"cn" | "be"``;
- steady PDEs: sparse assembly and a direct, CG, GMRES or Newton solve.

Returns a :class:`Solution`.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from autodiff.trace import Tracer

from .equations import from_sympy
from .errors import ProblemError
from .problem import as_expr, as_list, classify, lookup
from .solution import Solution

EXPLICIT = {"rk4", "ssprk3", "euler"}
IMPLICIT = {"cn", "be"}
ODE_METHODS = {"rk45": "DOPRI5", "dopri5": "DOPRI5", "stiff": "Rodas4", "rodas4": "Rodas4",
               "rodas": "Rodas4", "bdf": "Rodas4", "radau": "Rodas4"}


def solve(equations, unknowns, *, t=None, domain=None, grid=None, ic=None, bc=None,
          params=None, guess=None, method=None, t_eval=None, dt=None, order=2,
          scheme="central", upwind_order=1, rtol=1e-6, atol=1e-9, tol=1e-10, maxiter=50,
          progress=None, time=None):
    """Solve equations written in sympy. See the module docstring for the problem kinds.

    >>> import sympy as sp
    >>> a, b = sp.symbols("a b")
    >>> sol = solve([a**2 + b**2 - 4, a - b], [a, b], guess={a: 1, b: 1})
    >>> round(float(sol[a]), 10)
    1.4142135624
    """
    eqs = [as_expr(e) for e in as_list(equations)]
    unknowns = as_list(unknowns)
    params = dict(params or {})
    kind = classify(eqs, unknowns, time, domain)
    if kind == "algebraic":
        return _solve_algebraic(eqs, unknowns, guess, params, tol, maxiter)
    if kind == "ode":
        return _solve_ode(eqs, unknowns, t, ic, params, method, t_eval, rtol, atol)
    from .pde import solve_pde, solve_steady

    if kind == "steady":
        return solve_steady(eqs, unknowns, domain, grid, bc, params, order, method, tol,
                            maxiter, guess, time)
    return solve_pde(eqs, unknowns, t, domain, grid, ic, bc, params, method, t_eval, dt, order,
                     scheme, upwind_order, progress, time)


# ---------------------------------------------------------------------------------------------
# Algebraic systems


def _solve_algebraic(eqs, unknowns, guess, params, tol, maxiter):
    if len(eqs) != len(unknowns):
        raise ProblemError(f"{len(eqs)} equations for {len(unknowns)} unknowns "
                           f"{list(map(str, unknowns))}; an algebraic system must be square")
    psyms = list(params)
    fns = [from_sympy(e, unknowns + psyms, name=f"residual{i}") for i, e in enumerate(eqs)]
    jac_exprs = [[sp.diff(e, u) for u in unknowns] for e in eqs]
    jfns = [[from_sympy(d, unknowns + psyms) for d in row] for row in jac_exprs]
    x0 = np.array([float(lookup(guess, u, default=1.0)) for u in unknowns])
    pvals = [params[p] for p in psyms]
    from . import numpy as snp
    from .implicit import implicit_root

    def residual(x, *pv):
        return snp.stack([snp.astype(f(*[x[i] for i in range(len(unknowns))], *pv), float)
                          for f in fns])

    def jacobian(x, *pv):
        xs = [x[i] for i in range(len(unknowns))]
        return snp.stack([snp.stack([snp.astype(snp.broadcast_to(j(*xs, *pv), ()), float)
                                     for j in row]) for row in jfns])

    # Newton runs on concrete values; derivatives with respect to params come from the
    # implicit function theorem (one linear solve), not from the iterations.
    x = implicit_root(residual, jacobian, x0, pvals, tol=tol, maxiter=maxiter)
    return Solution(kind="algebraic", values={u: x[i] for i, u in enumerate(unknowns)})


# ---------------------------------------------------------------------------------------------
# ODEs


def _solve_ode(eqs, unknowns, t_span, ic, params, method, t_eval, rtol, atol):
    from solvers.ode import solve_ivp

    from .problem import applied_unknowns

    apps = applied_unknowns(eqs, unknowns)
    tsym = apps[0].args[0]
    if t_span is None:
        raise ProblemError("an ODE needs the time interval: t=(t0, t1)")
    t0, t1 = (float(v) for v in t_span)
    states, rhs_exprs = _first_order_system(eqs, apps, tsym)
    psyms = list(params)
    ssyms = [sp.Dummy(f"s{i}") for i in range(len(states))]
    reps = dict(zip(states, ssyms))
    exprs = [e.xreplace(reps) for e in rhs_exprs]
    _check_free(exprs, set(ssyms) | {tsym} | set(psyms))
    args = [tsym] + ssyms + psyms
    fns = [from_sympy(e, args, name=f"rhs{i}") for i, e in enumerate(exprs)]
    jac = [[from_sympy(sp.diff(e, s), args) for s in ssyms] for e in exprs]
    pvals = [params[p] for p in psyms]
    y0 = np.array([float(_ic_value(ic, s, tsym, t0)) for s in states])
    if t_eval is None:
        t_eval = np.linspace(t0, t1, 101)
    if any(isinstance(v, Tracer) for v in pvals):
        from . import numpy as snp
        from .odeint import dopri5_traced

        if str(method or "rk45").lower() not in ("rk45", "dopri5"):
            raise ProblemError("differentiating an ODE solve supports method='rk45' only")

        def rhs_t(tt, y):
            return snp.stack([snp.astype(snp.broadcast_to(f(tt, *[y[i] for i in range(len(
                states))], *pvals), ()), float) for f in fns])

        ys = dopri5_traced(rhs_t, t0, t1, y0, np.asarray(t_eval, float), rtol, atol)
        fields = {s.func: ys[:, i] for i, s in enumerate(states) if s in apps}
        return Solution(kind="ode", t=np.asarray(t_eval, float), fields=fields,
                        state_names=[str(s) for s in states])

    def rhs(tt, y, _p):
        return np.array([float(f(tt, *y, *pvals)) for f in fns])

    def jacobian(tt, y, _p):
        return np.array([[float(j(tt, *y, *pvals)) for j in row] for row in jac])

    m = ODE_METHODS.get(str(method or "rk45").lower())
    if m is None:
        raise ProblemError(f"ODE method {method!r} is not one of {sorted(ODE_METHODS)}")
    res = solve_ivp(rhs, (t0, t1), y0, method=m, t_eval=np.asarray(t_eval, float),
                    dense_output=True, rtol=rtol, atol=atol,
                    jac=jacobian if m == "Rodas4" else None)
    fields = {}
    for i, s in enumerate(states):
        if s in apps:
            fields[s.func] = res.y[i]
    return Solution(kind="ode", t=res.t, fields=fields, dense=res.sol,
                    state_names=[str(s) for s in states], stats={"nfev": res.nfev,
                                                                  "nsteps": res.nsteps})


def _first_order_system(eqs, apps, tsym):
    """States [y, y', ..., y^(m-1)] per unknown and their time derivatives."""
    orders = {}
    for u in apps:
        m = 0
        for e in eqs:
            for d in e.atoms(sp.Derivative):
                if d.expr == u:
                    m = max(m, d.derivative_count)
        if m == 0:
            raise ProblemError(f"no time derivative of {u} in the equations")
        orders[u] = m
    highest = [sp.Derivative(u, (tsym, orders[u])) for u in apps]
    try:
        sol = sp.solve(eqs, highest, dict=True)
    except NotImplementedError:
        sol = []
    if len(sol) != 1:
        raise ProblemError(f"cannot solve the equations for {list(map(str, highest))} "
                           "uniquely; write them as explicit ODEs")
    sol = sol[0]
    states, rhs = [], []
    for u in apps:
        for k in range(orders[u]):
            states.append(u if k == 0 else sp.Derivative(u, (tsym, k)))
    for u in apps:
        for k in range(orders[u]):
            nxt = sp.Derivative(u, (tsym, k + 1))
            rhs.append(nxt if k + 1 < orders[u] else sol[nxt])
    return states, rhs


def _ic_value(ic, state, tsym, t0):
    if ic is None:
        raise ProblemError("an ODE needs initial conditions: ic={y: value}")
    for k, v in ic.items():
        if k == state or (isinstance(state, sp.Derivative) is False and hasattr(state, "func")
                          and k == state.func):
            return _num(v, tsym, t0)
        if isinstance(state, sp.Derivative) and isinstance(k, sp.Derivative) and k == state:
            return _num(v, tsym, t0)
    raise ProblemError(f"no initial condition for {state}; add it to ic=")


def _num(v, tsym, t0):
    v = sp.sympify(v).subs(tsym, t0)
    if v.free_symbols:
        raise ProblemError(f"initial value {v} depends on {sorted(map(str, v.free_symbols))}")
    return float(v)


def _check_free(exprs, allowed):
    for e in exprs:
        extra = e.free_symbols - allowed
        if extra:
            raise ProblemError(f"{e} uses {sorted(map(str, extra))}, which are neither unknowns, "
                               "time nor parameters; give them in params={...}")

