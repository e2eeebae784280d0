"""Nonlinear solves differentiated implicitly: ``implicit_root``.

``x* = root(F, x0, p)`` solves ``F(x, p) = 0`` with Newton (line search, the given Jacobian)
on concrete values. Its derivative comes from the implicit function theorem, not from the
iterations: ``dx* = -J(x*, p)^{-1} (dF/dp · dp)`` — one linear solve per tangent, and in reverse
mode one adjoint solve (the transpose of that linear map), however many Newton steps ran.
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.errors import ShapeError
from autodiff.interpret import eval_graph_flat
from autodiff.ir import AbstractValue
from autodiff.jvp import defjvp
from autodiff.primitives import PRIMITIVES, def_primitive
from autodiff.trace import abstractify, bind, trace_flat

P = PRIMITIVES


def _rule(x0, *p, residual, jacobian, tol, maxiter):
    if x0.ndim != 1:
        raise ShapeError(f"implicit_root: x0 must be a vector, got {x0}")
    return AbstractValue(x0.shape, x0.dtype)


def _impl(x0, *p, residual, jacobian, tol, maxiter):
    from solvers.nonlinear import newton

    def fun(x):
        return np.asarray(eval_graph_flat(residual, [x, *p])[0])

    def jac(x):
        return np.asarray(eval_graph_flat(jacobian, [x, *p])[0])

    return newton(fun, np.asarray(x0, float), jac, tol=tol, maxiter=maxiter).x.astype(x0.dtype)


implicit_root_p = def_primitive(
    "implicit_root", _rule, _impl, family="solver",
    doc="Newton root of F(x, p) = 0 (params: residual, jacobian graphs); implicit derivative.")


@defjvp("implicit_root")
def _implicit_root_jvp(primals, tangents, *, residual, jacobian, tol, maxiter):
    from autodiff.api import jvp

    x0, *p = primals
    x = bind(implicit_root_p, x0, *p, residual=residual, jacobian=jacobian, tol=tol,
             maxiter=maxiter)
    tp = list(tangents[1:])
    if all(t is None for t in tp):
        return x, None
    active = [i for i, t in enumerate(tp) if t is not None]

    def f_of_active(*vals):
        args = list(p)
        for i, v in zip(active, vals):
            args[i] = v
        return bind(P["call"], x, *args, graph=residual)[0]

    _, dfdp = jvp(f_of_active, tuple(p[i] for i in active), tuple(tp[i] for i in active))
    jmat = bind(P["call"], x, *p, graph=jacobian)[0]
    n = abstractify(x).shape[0]
    dx = bind(P["solve"], jmat, L.reshape(-dfdp, (n, 1)))
    return x, L.reshape(dx, (n,))


def implicit_root(residual_fn, jacobian_fn, x0, params, tol=1e-10, maxiter=50):
    """Solve ``residual_fn(x, *params) = 0`` from ``x0``; differentiable in ``params``.

    ``jacobian_fn(x, *params)`` returns dF/dx (n×n). Works eagerly and under any transform.
    """
    x0 = np.asarray(x0, float)
    pav = [abstractify(v).strong() for v in params]
    xav = AbstractValue(x0.shape, x0.dtype)
    rg, rcaps, _ = trace_flat(residual_fn, [xav, *pav], "residual")
    jg, jcaps, _ = trace_flat(jacobian_fn, [xav, *pav], "jacobian")
    if rcaps or jcaps:
        raise ShapeError("implicit_root: the residual and Jacobian must take every traced "
                         "value as an argument (they close over traced values)")
    return bind(implicit_root_p, x0, *params, residual=rg, jacobian=jg, tol=float(tol),
                maxiter=int(maxiter))
