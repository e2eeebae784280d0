"""Physics-informed losses: a PDE residual written in sympy, evaluated on a network.

``pinn_loss(residual, net, coords, u, points, conditions)`` returns ``loss(params)``:

    mean over collocation points of residual^2  +  weight * mean over each condition of
    (u(points) - values)^2

The residual is a sympy expression in the coordinates, the unknown function ``u(*coords)`` and
its derivatives (``sp.Derivative`` / ``u.diff(x, 2)``). Each derivative is replaced by a fresh
symbol, the result goes through ``sciml.equations.from_sympy``, and the derivative values of the
network come from Taylor mode (``autodiff.taylor.jet``): one jet per coordinate direction gives
every pure derivative d^k u / dx^k up to the highest order needed; a mixed second derivative
comes from one more jet along x_i + x_j (polarisation). The loss is an ordinary traced function,
so ``value_and_grad`` gives its parameter gradient (reverse mode over Taylor mode).

The network maps (B, d) points to (B, 1) (or (B,)) values, point by point (no BatchNorm in
training mode, which would couple the points).

>>> import numpy as np, sympy as sp, sciml.nn as nn
>>> x = sp.Symbol("x"); u = sp.Function("u")
>>> net = nn.Dense(1, 1, weight_init="ones", bias_init="zeros")     # u(x) = x
>>> loss = pinn_loss(u(x).diff(x) - 1, net, [x], u, np.linspace(0, 1, 5)[:, None])
>>> float(loss(net.parameters()))
0.0
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from autodiff import lax
from autodiff.errors import ShapeError, UnsupportedError
from autodiff.trace import abstractify

from .. import numpy as snp
from ..equations import from_sympy


def _derivative_symbols(residual, coords, u):
    """Replace u(...) and its derivatives by symbols; returns (expr, {symbol: orders})."""
    coords = list(coords)
    table = {}

    def sym_for(orders):
        name = "u" + "".join(f"_{c}{k}" for c, k in zip(coords, orders) if k)
        s = sp.Symbol(f"__{name}")
        table[s] = tuple(orders)
        return s

    call = u(*coords)
    subs = {}
    for d in residual.atoms(sp.Derivative):
        if d.expr != call:
            raise UnsupportedError(f"pinn_loss: derivative {d} is not of {call}")
        orders = [0] * len(coords)
        for var, k in d.variable_count:
            if var not in coords:
                raise UnsupportedError(f"pinn_loss: {d} differentiates by {var}, not a coordinate")
            orders[coords.index(var)] += int(k)
        subs[d] = sym_for(orders)
    expr = residual.subs(subs)
    expr = expr.subs(call, sym_for([0] * len(coords)))
    leftover = [a for a in expr.atoms(sp.Function) if a.func == u]
    if leftover:
        raise UnsupportedError(f"pinn_loss: {leftover[0]} must be called at the coordinates "
                               f"{tuple(coords)}")
    return expr, table


def _plan(table):
    """Directions to run jet along and how to read each derivative from their series."""
    needs = {}
    for orders in table.values():
        nz = [(i, k) for i, k in enumerate(orders) if k]
        if len(nz) <= 1:
            i, k = nz[0] if nz else (0, 0)
            needs[(i,)] = max(needs.get((i,), 0), k)
        elif len(nz) == 2 and all(k == 1 for _, k in nz):
            (i, _), (j, _) = nz
            for key in ((i,), (j,), (i, j)):
                needs[key] = max(needs.get(key, 0), 2)
        else:
            raise UnsupportedError(
                f"pinn_loss: mixed derivative of orders {orders} (only pure derivatives of any "
                "order and mixed second derivatives d2u/dxdy are supported)")
    return needs


def _series_along(net_fn, params, pts, direction, order):
    from autodiff.taylor import jet

    a = abstractify(pts)
    e = np.zeros(a.shape, a.dtype)
    e[:, list(direction)] = 1.0
    zeros = [np.zeros(a.shape, a.dtype)] * (order - 1)
    y, series = jet(lambda p: _flat(net_fn(params, p)), (pts,), ([e] + zeros,))
    return [y] + list(series)


def _flat(y):
    a = abstractify(y)
    if a.ndim == 2 and a.shape[1] == 1:
        return snp.reshape(y, (a.shape[0],))
    if a.ndim != 1:
        raise ShapeError(f"pinn_loss: the network must give (B, 1) or (B,) values, got {a.shape}")
    return y


def derivative_values(net_fn, params, pts, table):
    """{symbol: array of the derivative at each point} for the derivative table."""
    needs = _plan(table)
    series = {k: _series_along(net_fn, params, pts, k, max(n, 1)) for k, n in needs.items()}
    out = {}
    for s, orders in table.items():
        nz = [(i, k) for i, k in enumerate(orders) if k]
        if not nz:
            out[s] = series[next(iter(series))][0]
        elif len(nz) == 1:
            i, k = nz[0]
            out[s] = series[(i,)][k]
        else:
            (i, _), (j, _) = nz
            out[s] = (series[(i, j)][2] - series[(i,)][2] - series[(j,)][2]) * 0.5
    return out


def pinn_loss(residual, net, coords, u, points, conditions=(), condition_weight=1.0):
    """``loss(params)`` for a PDE ``residual = 0`` on ``points`` (B, d) plus data conditions.

    ``conditions``: (points (M, d), values (M,)) pairs, e.g. boundary and initial values.
    ``net`` is a Cell (called through ``apply``) or a function ``net(params, points)``.
    """
    coords = list(coords)
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != len(coords):
        raise ShapeError(f"pinn_loss: points must be (B, {len(coords)}) for coordinates "
                         f"{coords}, got {points.shape}")
    expr, table = _derivative_symbols(sp.sympify(residual), coords, u)
    syms = list(table)
    fn = from_sympy(expr, coords + syms, name="pde_residual")
    net_fn = (lambda p, x: net.apply(p, x)[0]) if hasattr(net, "apply") else net

    def loss(params):
        dv = derivative_values(net_fn, params, lax.asarray(points), table)
        cols = [points[:, i] for i in range(len(coords))]
        r = fn(*cols, *[dv[s] for s in syms])
        total = snp.mean(snp.square(r))
        for cp, cv in conditions:
            pred = _flat(net_fn(params, np.asarray(cp, points.dtype)))
            total = total + condition_weight * snp.mean(snp.square(
                pred - np.asarray(cv, points.dtype).reshape(-1)))
        return total

    return loss
