"""Reading a problem stated in sympy: unknowns, time and space symbols, derivatives.

``classify`` looks at the unknowns and equations and returns one of "algebraic", "ode",
"pde" (time-dependent) or "steady" (a PDE without a time derivative). ``PDESystem`` turns each
equation into ``u_t = rhs`` with the spatial derivatives of the fields replaced by plain
symbols, so the right-hand side becomes an ordinary pointwise function (``from_sympy``) of the
fields, their derivatives, the coordinates, time and the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy.core.function import AppliedUndef, UndefinedFunction

from autodiff.errors import UnsupportedError

from .errors import ProblemError


def lookup(d, *keys, default=None):
    """The value in ``d`` (a user's dict keyed by sympy objects or names) for the first of
    ``keys`` it holds, matched by equality or by name."""
    for k, v in (d or {}).items():
        if any(k == key or str(k) == str(key) for key in keys):
            return v
    return default


def as_list(x) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def as_expr(eq) -> sp.Expr:
    """``lhs - rhs`` of an Eq, or the expression itself (meaning ``expr = 0``)."""
    if isinstance(eq, sp.Equality):
        return eq.lhs - eq.rhs
    expr = sp.sympify(eq)
    if isinstance(expr, sp.logic.boolalg.BooleanAtom):
        raise ProblemError(f"equation {eq} is trivially {expr}; check the equation")
    return expr


def applied_unknowns(equations, unknowns) -> list[AppliedUndef]:
    """The applied form ``u(t, x)`` of each unknown (given as ``u`` or ``u(t, x)``)."""
    found: dict = {}
    for e in equations:
        for f in e.atoms(AppliedUndef):
            found.setdefault(f.func, f)
    out = []
    for u in unknowns:
        if isinstance(u, AppliedUndef):
            out.append(u)
        elif isinstance(u, UndefinedFunction):
            if u not in found:
                raise ProblemError(f"unknown {u} does not appear in the equations")
            out.append(found[u])
        else:
            raise ProblemError(f"unknown {u!r} is not a sympy Function or Symbol")
    return out


def classify(equations, unknowns, time_name: str | None, domain=None) -> str:
    if all(isinstance(u, sp.Symbol) for u in unknowns):
        return "algebraic"
    apps = applied_unknowns(equations, unknowns)
    args = {a.args for a in apps}
    if len(args) != 1:
        raise ProblemError(
            f"all unknown fields must share their arguments, got {sorted(map(str, apps))}"
        )
    (fargs,) = args
    in_domain = bool(domain) and any(str(k) == str(a) for k in domain for a in fargs)
    if len(fargs) == 1 and not in_domain:
        return "ode"
    t = time_symbol(fargs, time_name)
    has_dt = any(d.has(t) for e in equations for d in e.atoms(sp.Derivative)
                 if t in d.variables)
    return "pde" if t is not None and has_dt else "steady"


def time_symbol(fargs, time_name: str | None):
    for a in fargs:
        if str(a) == (time_name or "t"):
            return a
    return None


@dataclass
class FieldEquation:
    """``d field/dt = rhs`` with derivatives replaced by symbols ``deriv_symbols``."""

    field: AppliedUndef
    rhs: sp.Expr
    # placeholder symbol -> (field index, ((space axis, order), ...))
    derivs: dict = field(default_factory=dict)


@dataclass
class PDESystem:
    fields: list                 # applied unknowns u(t, x, ...)
    time: sp.Symbol | None
    space: list                  # space symbols in the order of the array axes
    field_symbols: list          # plain symbols standing for the field values
    equations: list              # FieldEquation per field (time-dependent) or residuals
    params: list                 # parameter symbols
    derivs: dict                 # placeholder -> (field index, ((axis, order), ...))


def pde_system(equations, unknowns, time_name, params, steady: bool) -> PDESystem:
    apps = applied_unknowns(equations, unknowns)
    fargs = apps[0].args
    t = None if steady else time_symbol(fargs, time_name)
    space = [a for a in fargs if a is not t]
    fsyms = [sp.Dummy(str(f.func)) for f in apps]
    derivs: dict = {}
    out = []
    for k, eq in enumerate(equations):
        expr = as_expr(eq).doit()
        if steady:
            out.append(FieldEquation(apps[k], _replace(expr, apps, fsyms, space, derivs, t), {}))
            continue
        rhs = _solve_for_time_derivative(expr, apps, t)
        field_index = rhs[0]
        out.append(FieldEquation(apps[field_index], _replace(rhs[1], apps, fsyms, space, derivs,
                                                              t), {}))
    if not steady:
        order = [apps.index(fe.field) for fe in out]
        if sorted(order) != list(range(len(apps))):
            raise ProblemError("each unknown field needs exactly one equation with its time "
                               f"derivative; got equations for {[str(fe.field) for fe in out]}")
        out = [out[order.index(i)] for i in range(len(apps))]
    _check_symbols(out, fsyms, derivs, space, t, params)
    return PDESystem(apps, t, space, fsyms, out, list(params), derivs)


def _solve_for_time_derivative(expr, apps, t):
    dts = [d for d in expr.atoms(sp.Derivative) if t in d.variables]
    firsts = [d for d in dts if d.variables == (t,) and d.expr in apps]
    if len(firsts) != 1 or len(dts) != 1:
        raise UnsupportedError(
            f"equation {sp.Eq(expr, 0)} must contain exactly one first time derivative "
            "(du/dt) of an unknown field; write higher time derivatives as a first-order system"
        )
    d = firsts[0]
    coeff = expr.coeff(d)
    rest = sp.expand(expr - coeff * d)
    if coeff == 0 or coeff.has(d) or rest.has(d):
        raise UnsupportedError(f"equation {sp.Eq(expr, 0)} is not linear in {d}")
    return apps.index(d.expr), sp.simplify(-rest / coeff) if coeff != 1 else -rest


def _replace(expr, apps, fsyms, space, derivs, t):
    """Replace Derivative(u, x, 2, ...) by placeholder symbols and u(t, x) by plain symbols."""
    reps = {}
    for d in sorted(expr.atoms(sp.Derivative), key=lambda d: -len(d.variables)):
        if d.expr not in apps:
            raise UnsupportedError(
                f"derivative {d} is of an expression, not of an unknown field; expand it "
                "(sympy's .doit()) or introduce a new field"
            )
        if t is not None and t in d.variables:
            raise UnsupportedError(f"term {d} mixes time and space derivatives")
        orders = tuple((space.index(v), int(n)) for v, n in d.variable_count)
        key = (apps.index(d.expr), tuple(sorted(orders)))
        sym = next((s for s, v in derivs.items() if v == key), None)
        if sym is None:
            name = str(d.expr.func) + "_" + "".join(f"{space[a]}{n}" for a, n in key[1])
            sym = sp.Dummy(name)
            derivs[sym] = key
        reps[d] = sym
    expr = expr.xreplace(reps)
    return expr.xreplace(dict(zip(apps, fsyms)))


def _check_symbols(eqs, fsyms, derivs, space, t, params):
    allowed = set(fsyms) | set(derivs) | set(space) | set(params)
    if t is not None:
        allowed.add(t)
    for fe in eqs:
        extra = fe.rhs.free_symbols - allowed
        if extra:
            raise ProblemError(
                f"equation for {fe.field} uses {sorted(map(str, extra))}, which are neither "
                "unknowns, coordinates, time nor parameters; give them in params={...}"
            )
        funcs = fe.rhs.atoms(AppliedUndef)
        if funcs:
            raise ProblemError(f"equation for {fe.field} uses unknown function(s) "
                               f"{sorted(map(str, funcs))} that are not among the unknowns")
