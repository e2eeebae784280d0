"""Taylor mode: ``jet`` propagates truncated Taylor series through a Graph (Graph -> Graph).

Internally a value is a list ``[y0, y1, ..., yK]`` of *normalised* coefficients of the path
``y(t) = sum_k y_k t^k`` (``y0`` is the primal; ``None`` is a symbolic zero, so untouched
coefficients cost nothing). The user-facing ``jet`` follows JAX's convention: the series hold the
derivatives of the path, ``x(t) = x0 + sum_k x_k t^k / k!``, and the factorials are applied at
the boundary.

Each primitive has a row in ``TAYLOR_RULES``: ``rule(K, series, **params)`` gets one series per
operand and returns one series per output. The rows are the standard O(K^2) recurrences: Cauchy
products for ``mul``/``dot_general``, ``div``, ``exp``, ``log``, ``sin``/``cos``, ``sinh``/``cosh``,
``tanh``, ``tan``, ``sqrt``, ``pow``; functions whose derivative is an expression of the
argument (``erf``, ``arctan``, ``arcsin``, ...) integrate the series of ``F'(a) a'``. Piecewise
linear primitives (shapes, indexing, reductions, ``abs``, ``maximum``, ``select``, ...) map each
coefficient with their JVP rule. Control flow (``call``, ``cond``, ``while_loop``,
``fori_loop``, ``scan``) carries the coefficients through transformed subgraphs.

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> y, ys = jet(np.sin, (0.5,), ([1.0, 0.0, 0.0],))
>>> np.allclose(ys, [np.cos(0.5), -np.sin(0.5), -np.cos(0.5)])
True
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from . import dtypes
from . import lax as L
from .batching import inline, optimize
from .errors import ArityError, ShapeError, UnsupportedError
from .ir import AbstractValue, Const, Graph
from .primitives import PRIMITIVES, _load_table
from .pytree import tree_flatten, tree_unflatten
from .trace import Tracer, abstractify, bind, current_builder, is_tracing, trace_flat

_load_table()
P = PRIMITIVES
TAYLOR_RULES: dict = {}


# ---------------------------------------------------------------------------------------------
# Coefficient arithmetic with symbolic zeros (None) and folding of the constants 0 and 1


def _dtype(x):
    return abstractify(x).dtype


def _const(c, like):
    return np.asarray(c, _dtype(like))


def _is_const(x, value) -> bool:
    return isinstance(x, np.ndarray | np.generic) and x.ndim == 0 and x == value


def add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return bind(P["add"], a, b)


def sub(a, b):
    if b is None:
        return a
    if a is None:
        return bind(P["neg"], b)
    return bind(P["sub"], a, b)


def mul(a, b):
    if a is None or b is None:
        return None
    if _is_const(a, 1):
        return b
    if _is_const(b, 1):
        return a
    return bind(P["mul"], a, b)


def scale(a, c: float):
    """``a * c`` for a Python number ``c``."""
    if a is None or c == 0:
        return None
    return a if c == 1 else bind(P["mul"], a, _const(c, a))


def total(terms):
    acc = None
    for t in terms:
        acc = add(acc, t)
    return acc


def cauchy(a, b, k: int, op=mul, lo: int = 0):
    """Coefficient ``k`` of the product of series ``a`` and ``b``: sum_i op(a_i, b_{k-i})."""
    return total(op(a[i], b[k - i]) for i in range(lo, k + 1)
                 if a[i] is not None and b[k - i] is not None)


def _wsum(pairs):
    """sum of w * x * y over (w, x, y) triples with Python weights (zero terms dropped)."""
    return total(scale(mul(x, y), w) for w, x, y in pairs)


# Series operations on whole lists (length K + 1), used by the rules.


def s_mul(a, b):
    return [cauchy(a, b, k) for k in range(len(a))]


def s_add(a, b):
    return [add(x, y) for x, y in zip(a, b)]


def s_div(a, c):
    """a / c: y_k = (a_k - sum_{i>=1} c_i y_{k-i}) / c_0."""
    inv = bind(P["div"], _const(1, c[0]), c[0])
    y = [bind(P["div"], a[0], c[0])]
    for k in range(1, len(a)):
        y.append(mul(sub(a[k], cauchy(c, y, k, lo=1)), inv))
    return y


def s_exp(a, y0=None):
    """exp: y_k = (1/k) sum_{j=1..k} j a_j y_{k-j}."""
    y = [bind(P["exp"], a[0]) if y0 is None else y0]
    for k in range(1, len(a)):
        y.append(scale(_wsum((j, a[j], y[k - j]) for j in range(1, k + 1)), 1.0 / k))
    return y


def s_log(a, y0=None, a0=None):
    """log: y_k = (a_k - (1/k) sum_{i=1..k-1} (k-i) a_i y_{k-i}) / a_0."""
    a0 = a[0] if a0 is None else a0
    inv = bind(P["div"], _const(1, a0), a0)
    y = [bind(P["log"], a[0]) if y0 is None else y0]
    for k in range(1, len(a)):
        inner = _wsum(((k - i) / k, a[i], y[k - i]) for i in range(1, k))
        y.append(mul(sub(a[k], inner), inv))
    return y


def s_sincos(a, hyperbolic=False):
    """sin/cos (or sinh/cosh): s_k = (1/k) sum j a_j c_{k-j}, c_k = -+(1/k) sum j a_j s_{k-j}."""
    names = ("sinh", "cosh") if hyperbolic else ("sin", "cos")
    s, c = [bind(P[names[0]], a[0])], [bind(P[names[1]], a[0])]
    sign = 1.0 if hyperbolic else -1.0
    for k in range(1, len(a)):
        s.append(scale(_wsum((j, a[j], c[k - j]) for j in range(1, k + 1)), 1.0 / k))
        c.append(scale(_wsum((j, a[j], s[k - j]) for j in range(1, k + 1)), sign / k))
    return s, c


def s_tanlike(a, name, sign):
    """tanh (sign -1) or tan (sign +1): y' = (1 + sign y^2) a'."""
    y = [bind(P[name], a[0])]
    z = [add(_const(1, y[0]), scale(mul(y[0], y[0]), sign))]
    for k in range(1, len(a)):
        y.append(scale(_wsum((j, a[j], z[k - j]) for j in range(1, k + 1)), 1.0 / k))
        z.append(scale(cauchy(y, y, k), sign))
    return y


def s_sqrt(a):
    """sqrt: y_k = (a_k - sum_{i=1..k-1} y_i y_{k-i}) / (2 y_0)."""
    y = [bind(P["sqrt"], a[0])]
    half_inv = bind(P["div"], _const(0.5, y[0]), y[0])
    for k in range(1, len(a)):
        inner = total(mul(y[i], y[k - i]) for i in range(1, k))
        y.append(mul(sub(a[k], inner), half_inv))
    return y


def s_pow_const(a, p, y0=None):
    """a^p for an exponent without series: k a_0 y_k = sum_{j=1..k} ((p+1) j - k) a_j y_{k-j}.

    ``p`` is a Python number or a primal array."""
    y = [bind(P["pow"], a[0], _const(p, a[0]) if not _traced_or_array(p) else p)
         if y0 is None else y0]
    inv = bind(P["div"], _const(1, a[0]), a[0])
    for k in range(1, len(a)):
        terms = []
        for j in range(1, k + 1):
            if a[j] is None or y[k - j] is None:
                continue
            if _traced_or_array(p):
                w = bind(P["sub"], bind(P["mul"], bind(P["add"], p, _const(1, p)), _const(j, p)),
                         _const(k, p))
                terms.append(mul(w, mul(a[j], y[k - j])))
            else:
                terms.append(scale(mul(a[j], y[k - j]), (p + 1) * j - k))
        y.append(scale(mul(total(terms), inv), 1.0 / k))
    return y


def _traced_or_array(p) -> bool:
    return isinstance(p, Tracer) or (isinstance(p, np.ndarray) and p.ndim > 0)


def s_int_pow(a, n: int):
    """a^n for an integer n >= 1 by repeated squaring of series (exact, no division)."""
    acc, base = None, a
    while n:
        if n & 1:
            acc = base if acc is None else s_mul(acc, base)
        n >>= 1
        if n:
            base = s_mul(base, base)
    return acc


def s_deriv(a):
    """The series of a'(t), one order shorter: (a')_m = (m+1) a_{m+1}."""
    return [scale(a[m + 1], m + 1) for m in range(len(a) - 1)]


def s_integrate(y0, q):
    """y with y' = q: y_k = q_{k-1} / k."""
    return [y0] + [scale(q[k - 1], 1.0 / k) for k in range(1, len(q) + 1)]


def s_const(c, like, n):
    return [_const(c, like)] + [None] * (n - 1)


# ---------------------------------------------------------------------------------------------
# Rules: elementwise math


def _rule(*names):
    def register(fn):
        for n in names:
            TAYLOR_RULES[n] = fn
        return fn

    return register


def _one(fn):
    """Adapt ``fn(K, a) -> series`` of a unary function to the rule signature."""

    def rule(K, series, **params):
        return [fn(series[0], **params)]

    return rule


TAYLOR_RULES["exp"] = _one(lambda a: s_exp(a))
TAYLOR_RULES["log"] = _one(lambda a: s_log(a))
TAYLOR_RULES["sin"] = _one(lambda a: s_sincos(a)[0])
TAYLOR_RULES["cos"] = _one(lambda a: s_sincos(a)[1])
TAYLOR_RULES["sinh"] = _one(lambda a: s_sincos(a, True)[0])
TAYLOR_RULES["cosh"] = _one(lambda a: s_sincos(a, True)[1])
TAYLOR_RULES["tanh"] = _one(lambda a: s_tanlike(a, "tanh", -1.0))
TAYLOR_RULES["tan"] = _one(lambda a: s_tanlike(a, "tan", 1.0))
TAYLOR_RULES["sqrt"] = _one(s_sqrt)
TAYLOR_RULES["rsqrt"] = _one(lambda a: s_pow_const(a, -0.5, bind(P["rsqrt"], a[0])))


@_rule("expm1")
def _expm1(K, series):
    (a,) = series
    e = s_exp(a)
    return [[bind(P["expm1"], a[0])] + e[1:]]


@_rule("log1p")
def _log1p(K, series):
    (a,) = series
    return [s_log(a, bind(P["log1p"], a[0]), bind(P["add"], a[0], _const(1, a[0])))]


def _from_derivative(name, fprime):
    """y = F(a) where F'(a) = fprime(series of a, truncated one order lower)."""

    def rule(K, series):
        (a,) = series
        y0 = bind(P[name], a[0])
        if K == 0:
            return [[y0]]
        fp = fprime(a[:K])
        q = s_mul(fp, s_deriv(a))
        return [s_integrate(y0, q)]

    return rule


def _one_minus_sq(a, sign=-1.0, c=1.0):
    sq = s_mul(a, a)
    return [add(_const(c, a[0]), scale(sq[0], sign))] + [scale(v, sign) for v in sq[1:]]


_SQRT_PI = math.sqrt(math.pi)
TAYLOR_RULES["arctan"] = _from_derivative(
    "arctan", lambda a: s_div(s_const(1, a[0], len(a)), _one_minus_sq(a, 1.0)))
TAYLOR_RULES["arctanh"] = _from_derivative(
    "arctanh", lambda a: s_div(s_const(1, a[0], len(a)), _one_minus_sq(a, -1.0)))
TAYLOR_RULES["arcsin"] = _from_derivative(
    "arcsin", lambda a: s_pow_const(_one_minus_sq(a, -1.0), -0.5))
TAYLOR_RULES["arccos"] = _from_derivative(
    "arccos", lambda a: [scale(v, -1.0) for v in s_pow_const(_one_minus_sq(a, -1.0), -0.5)])
TAYLOR_RULES["arcsinh"] = _from_derivative(
    "arcsinh", lambda a: s_pow_const(_one_minus_sq(a, 1.0), -0.5))
TAYLOR_RULES["arccosh"] = _from_derivative(
    "arccosh", lambda a: s_pow_const(_one_minus_sq(a, 1.0, -1.0), -0.5))
TAYLOR_RULES["erf"] = _from_derivative(
    "erf", lambda a: [scale(v, 2.0 / _SQRT_PI) for v in s_exp(_one_minus_sq(a, -1.0, 0.0))])


@_rule("mul")
def _mul(K, series):
    return [s_mul(*series)]


@_rule("div")
def _div(K, series):
    return [s_div(*series)]


@_rule("integer_pow")
def _integer_pow(K, series, *, y):
    (a,) = series
    if y == 0:
        return [[bind(P["integer_pow"], a[0], y=0)] + [None] * K]
    if y > 0:
        out = s_int_pow(a, y)
        return [[bind(P["integer_pow"], a[0], y=y)] + out[1:]]
    return [s_pow_const(a, float(y), bind(P["integer_pow"], a[0], y=y))]


@_rule("pow")
def _pow(K, series):
    a, b = series
    y0 = bind(P["pow"], a[0], b[0])
    if all(c is None for c in b[1:]):
        return [s_pow_const(a, b[0], y0)]
    # a^b = exp(b log a): the general case needs a > 0.
    return [s_exp(s_mul(b, s_log(a)), y0)]


@_rule("atan2")
def _atan2(K, series):
    a, b = series
    y0 = bind(P["atan2"], a[0], b[0])
    if K == 0:
        return [[y0]]
    at, bt = a[:K], b[:K]
    num = [sub(x, y) for x, y in zip(s_mul(bt, s_deriv(a)), s_mul(at, s_deriv(b)))]
    den = s_add(s_mul(at, at), s_mul(bt, bt))
    return [s_integrate(y0, s_div(num, den))]


# ---------------------------------------------------------------------------------------------
# Rules: piecewise linear primitives map every coefficient with their JVP rule


def _by_jvp(prim):
    def rule(K, series, **params):
        from .jvp import jvp_node

        primals = [s[0] for s in series]
        outs, _ = jvp_node(prim, primals, [None] * len(series), params)
        res = [[o] for o in outs]
        for k in range(1, K + 1):
            ts = [s[k] for s in series]
            if all(t is None for t in ts):
                tk = [None] * len(outs)
            else:
                _, tk = jvp_node(prim, primals, ts, params)
            for r, t in zip(res, tk):
                r.append(t)
        return res

    return rule


def _linear(prim):
    """A primitive linear in its (only) operand: each coefficient maps through it."""

    def rule(K, series, **params):
        (a,) = series
        return [[bind(prim, c, **params) if c is not None else None for c in a]]

    return rule


def _bilinear(prim):
    def rule(K, series, **params):
        a, b = series
        op = lambda x, y: bind(prim, x, y, **params)  # noqa: E731
        return [[bind(prim, a[0], b[0], **params)] + [cauchy(a, b, k, op) for k in
                                                      range(1, K + 1)]]

    return rule


TAYLOR_RULES["dot_general"] = _bilinear(P["dot_general"])


def _nondiff(prim):
    def rule(K, series, **params):
        out = bind(prim, *[s[0] for s in series], **params)
        outs = list(out) if prim.multiple_results else [out]
        return [[o] + [None] * K for o in outs]

    return rule


@_rule("reduce_prod")
def _reduce_prod(K, series, *, axes, keepdims=False):
    (a,) = series
    x = a[0]
    nd = abstractify(x).ndim
    from .ops.reduce import normalize_axes

    axes = normalize_axes("reduce_prod", axes, nd)
    m = int(np.prod([abstractify(x).shape[i] for i in axes], dtype=np.int64))
    if m > 64:
        raise UnsupportedError(f"jet: reduce_prod over {m} elements (more than 64) is not "
                               "supported in Taylor mode; use exp(sum(log(x))) for positive x")
    # Move the reduced axes to the front, flatten them, and multiply the series one by one.
    keep = [i for i in range(nd) if i not in axes]
    flat = [None if c is None else L.reshape(L.transpose(c, list(axes) + keep),
                                             (m,) + tuple(abstractify(x).shape[i] for i in keep))
            for c in a]
    acc = None
    for i in range(m):
        item = [None if c is None else L.getitem(c, i) for c in flat]
        acc = item if acc is None else s_mul(acc, item)
    out_shape = abstractify(bind(P["reduce_prod"], x, axes=axes, keepdims=keepdims)).shape
    y0 = bind(P["reduce_prod"], x, axes=axes, keepdims=keepdims)
    return [[y0] + [None if c is None else L.reshape(c, out_shape) for c in acc[1:]]]


@_rule("solve")
def _solve(K, series):
    """A y = b coefficient by coefficient: A_0 y_k = b_k - sum_{i>=1} A_i y_{k-i}."""
    a, b = series
    nd = abstractify(a[0]).ndim
    batch = tuple(range(nd - 2))
    dn = (((nd - 1,), (nd - 2,)), (batch, batch))
    matmul = lambda m, v: bind(P["dot_general"], m, v, dimension_numbers=dn)  # noqa: E731
    y = [bind(P["solve"], a[0], b[0])]
    for k in range(1, K + 1):
        rhs = sub(b[k], cauchy(a, y, k, matmul, lo=1))
        y.append(None if rhs is None else bind(P["solve"], a[0], rhs))
    return [y]


@_rule("triangular_solve")
def _triangular_solve(K, series, **params):
    """op(A) y = b (or y op(A) = b): the same recurrence, with A's coefficients read through the
    triangle (and diagonal convention) the routine reads."""
    from .jvp import _op, tri_mask

    a, b = series
    av = abstractify(a[0])
    n = av.shape[-1]
    lower, left = params.get("lower", True), params.get("left_side", True)
    mask = tri_mask(n, 0, lower, av.dtype, diag=0.0 if params.get("unit_diagonal") else 1.0)

    def product(ai, yj):
        m = _op(L.mul(ai, mask), params.get("transpose_a", False),
                params.get("conjugate_a", False))
        return L.matmul(m, yj) if left else L.matmul(yj, m)

    y = [bind(P["triangular_solve"], a[0], b[0], **params)]
    for k in range(1, K + 1):
        rhs = sub(b[k], cauchy(a, y, k, product, lo=1))
        y.append(None if rhs is None else bind(P["triangular_solve"], a[0], rhs, **params))
    return [y]


@_rule("tridiagonal_solve")
def _tridiagonal_solve(K, series):
    """T(t) x(t) = d(t) coefficient by coefficient: T_0 x_k = d_k - sum_{i>=1} T_i x_{k-i}."""
    from .jvp import tridiagonal_product

    a, b, c, d = series

    def product(i, xj):
        if a[i] is None and b[i] is None and c[i] is None:
            return None
        return tridiagonal_product(a[i], b[i], c[i], xj)

    x = [bind(P["tridiagonal_solve"], a[0], b[0], c[0], d[0])]
    for k in range(1, K + 1):
        rhs = sub(d[k], total(product(i, x[k - i]) for i in range(1, k + 1)
                              if x[k - i] is not None))
        x.append(None if rhs is None else bind(P["tridiagonal_solve"], a[0], b[0], c[0], rhs))
    return [x]


@_rule("cholesky")
def _cholesky(K, series):
    """A = L L^H coefficient by coefficient: L_0 L_k^H + L_k L_0^H = S_k with
    S_k = A_k - sum_{i=1..k-1} L_i L_{k-i}^H, solved for L_k by the JVP rule (dA = S_k)."""
    from .jvp import _sym_from_triangle, jvp_node, mH

    (a,) = series
    y = [bind(P["cholesky"], a[0])]
    for k in range(1, K + 1):
        ak = None if a[k] is None else _sym_from_triangle(a[k], True)
        cross = total(L.matmul(y[i], mH(y[k - i])) for i in range(1, k)
                      if y[i] is not None and y[k - i] is not None)
        s_k = sub(ak, cross)
        y.append(None if s_k is None else jvp_node(P["cholesky"], [a[0]], [s_k], {})[1][0])
    return [y]


# ---------------------------------------------------------------------------------------------
# Rules: control flow (subgraphs become their Taylor-mode versions)


def has_series(aval) -> bool:
    return dtypes.is_inexact(aval.dtype)


def _expand(values, has, K):
    """Flat list [p, c1..cK (if has)] per value; None coefficients become zeros."""
    flat = []
    for s, h in zip(values, has):
        flat.append(s[0])
        if h:
            shape = abstractify(s[0]).shape
            flat.extend(broadcast_lazily(c, shape) if c is not None else _zeros(s[0])
                        for c in s[1:])
    return flat


def _collect(flat, has, K):
    it = iter(flat)
    out = []
    for h in has:
        p = next(it)
        out.append([p] + ([next(it) for _ in range(K)] if h else [None] * K))
    return out


def _zeros(x):
    a = abstractify(x)
    return broadcast_lazily(np.zeros((), a.dtype), a.shape)


def broadcast_lazily(c, shape):
    """Broadcast ``c`` to ``shape``; a constant is broadcast by a recorded node while tracing,
    so a 0-d coefficient (the 1 of the path x + t) does not become a large array folded eagerly
    at trace time and embedded in the graph."""
    a = abstractify(c)
    shape = tuple(shape)
    if a.shape == shape:
        return c
    if isinstance(c, Tracer) or not is_tracing():
        return L.broadcast_to(c, shape)
    b = current_builder()
    dims = tuple(range(len(shape) - a.ndim, len(shape)))
    (out,) = b.emit(P["broadcast_in_dim"], [b.to_atom(np.asarray(c))],
                    {"shape": shape, "broadcast_dimensions": dims},
                    [AbstractValue(shape, a.dtype)], None)
    return out


def _expanded_avals(avals, has, K):
    out = []
    for a, h in zip(avals, has):
        out.append(a)
        if h:
            out.extend([a.strong()] * K)
    return out


_ACTIVE: dict = {}


def jet_graph(graph: Graph, K: int, has, want=None):
    """The Taylor-mode graph of ``graph`` to order ``K``.

    Inputs and outputs are expanded in place: each value ``v`` with series becomes
    ``v, v_1, ..., v_K`` (normalised coefficients). ``has[i]`` says whether input ``i`` carries
    series; ``want`` (optional) forces series on outputs. Returns ``(graph, out_has)``.
    """
    has = [bool(h) and has_series(a) for h, a in zip(has, graph.in_avals)]
    key = (id(graph), K, tuple(has), None if want is None else tuple(want))
    if key in _ACTIVE:
        if _ACTIVE[key] is None:
            raise UnsupportedError(f"jet: graph {graph.name!r} is recursive; Taylor mode through "
                                   "recursive graph functions is not supported")
        return _ACTIVE[key]
    _ACTIVE[key] = None
    holder = {}

    def run(*xs):
        outs = jet_eval(graph, _collect(xs, has, K), K)
        got = [any(c is not None for c in s[1:]) for s in outs]
        out_has = [(g or (want is not None and w)) and has_series(a)
                   for g, w, a in zip(got, want or [False] * len(got), graph.out_avals)]
        holder["has"] = out_has
        return _expand(outs, out_has, K)

    try:
        g, captured, _ = trace_flat(run, _expanded_avals(graph.in_avals, has, K),
                                    f"jet_{graph.name}")
    finally:
        del _ACTIVE[key]
    assert not captured, "jet_graph: the input graph is not closed"
    return g, holder["has"]


def _uniform(graphs_has, K, avals):
    """Make several graphs (branches) agree on which outputs carry series."""
    union = [any(col) for col in zip(*[h for _, h in graphs_has])]
    out = []
    for g, h in graphs_has:
        out.append(g if list(h) == union else _force(g, h, union, K, avals))
    return out, union


def _force(g, have, want, K, avals):
    def run(*xs):
        flat = inline(g, list(xs))
        return _expand(_collect(flat, have, K), want, K)

    new, _, _ = trace_flat(run, g.in_avals, g.name)
    return new


@_rule("call")
def _call(K, series, *, graph):
    has = [any(c is not None for c in s[1:]) for s in series]
    g, out_has = jet_graph(graph, K, has)
    outs = bind(P["call"], *_expand(series, _fix_has(has, graph.in_avals), K), graph=g)
    return _collect(list(outs), out_has, K)


def _call_like(K, series, *, graph, n_in=None, **_):
    # checkpoint and custom_jvp/custom_vjp calls: Taylor mode differentiates the primal function
    # (the custom first-order rules do not define higher coefficients); the result is a call.
    n = len(series) if n_in is None else n_in
    return _call(K, series[:n], graph=graph)


# Registered by name: these primitives are declared by autodiff.checkpoint and autodiff.custom.
for _n in ("checkpoint", "custom_jvp_call", "custom_vjp_call"):
    TAYLOR_RULES[_n] = _call_like


def _fix_has(has, avals):
    return [bool(h) and has_series(a) for h, a in zip(has, avals)]


@_rule("cond")
def _cond(K, series, *, branches):
    ops = series[1:]
    has = _fix_has([any(c is not None for c in s[1:]) for s in ops], branches[0].in_avals)
    graphs, out_has = _uniform([jet_graph(b, K, has) for b in branches], K,
                               branches[0].out_avals)
    outs = bind(P["cond"], series[0][0], *_expand(ops, has, K), branches=tuple(graphs))
    return _collect(list(outs), out_has, K)


def _loop_fixpoint(body, K, carry_has, other_has, prefix=()):
    """Transform a loop body so each carry with series keeps them (iterate to a fixpoint)."""
    carry = list(carry_has)
    n = len(carry)
    for _ in range(n + 1):
        g, out = jet_graph(body, K, list(prefix) + carry + list(other_has))
        new = [a or b for a, b in zip(carry, out[:n])]
        if new == carry:
            want = carry + list(out[n:])
            if list(out) != want:
                g = _force(g, out, want, K, body.out_avals)
            return g, carry, want[n:]
        carry = new
    raise AssertionError("jet: loop carry fixpoint did not converge")


def _has_of(series, avals):
    return _fix_has([any(c is not None for c in s[1:]) for s in series], avals)


@_rule("fori_loop")
def _fori(K, series, *, body, num_carry):
    lo, hi = series[0][0], series[1][0]
    carry, caps = series[2:2 + num_carry], series[2 + num_carry:]
    ch = _has_of(carry, body.in_avals[1:1 + num_carry])
    caph = _has_of(caps, body.in_avals[1 + num_carry:])
    g, ch, _ = _loop_fixpoint(body, K, ch, caph, prefix=(False,))
    ins = _expand(carry, ch, K)
    outs = bind(P["fori_loop"], lo, hi, *ins, *_expand(caps, caph, K), body=g,
                num_carry=len(ins))
    return _collect(list(outs), ch, K)


@_rule("scan")
def _scan(K, series, *, body, length, num_carry, num_xs, reverse=False):
    carry = series[:num_carry]
    xs = series[num_carry:num_carry + num_xs]
    caps = series[num_carry + num_xs:]
    ch = _has_of(carry, body.in_avals[:num_carry])
    rest_avals = body.in_avals[num_carry:]
    xh = _fix_has([any(c is not None for c in s[1:]) for s in xs], rest_avals[:num_xs])
    caph = _fix_has([any(c is not None for c in s[1:]) for s in caps], rest_avals[num_xs:])
    g, ch, yh = _loop_fixpoint(body, K, ch, xh + caph)
    c_in, x_in = _expand(carry, ch, K), _expand(xs, xh, K)
    outs = bind(P["scan"], *c_in, *x_in, *_expand(caps, caph, K), body=g, length=length,
                num_carry=len(c_in), num_xs=len(x_in), reverse=reverse)
    n_c = len(c_in)
    return _collect(list(outs[:n_c]), ch, K) + _collect(list(outs[n_c:]), yh, K)


@_rule("while_loop")
def _while(K, series, *, cond_graph, body_graph, num_carry, num_cond_captures,
           max_steps=None):
    nc = num_cond_captures
    carry = series[:num_carry]
    ccaps = series[num_carry:num_carry + nc]
    bcaps = series[num_carry + nc:]
    ch = _has_of(carry, body_graph.in_avals[:num_carry])
    bh = _has_of(bcaps, body_graph.in_avals[num_carry:])
    g, ch, _ = _loop_fixpoint(body_graph, K, ch, bh)
    # The predicate reads only primals: wrap cond_graph to take the expanded carry.
    c_avals = _expanded_avals(body_graph.in_avals[:num_carry], ch, K)
    cc_avals = [abstractify(s[0]) for s in ccaps]

    def pred(*xs):
        prim = [s[0] for s in _collect(xs[:len(c_avals)], ch, K)]
        return inline(cond_graph, prim + list(xs[len(c_avals):]))

    cg, _, _ = trace_flat(pred, c_avals + cc_avals, "cond")
    ins = _expand(carry, ch, K)
    outs = bind(P["while_loop"], *ins, *[s[0] for s in ccaps], *_expand(bcaps, bh, K),
                cond_graph=cg, body_graph=g, num_carry=len(ins), num_cond_captures=nc,
                max_steps=max_steps)
    return _collect(list(outs), ch, K)


# ---------------------------------------------------------------------------------------------
# The table


PIECEWISE_LINEAR = (
    "neg", "add", "sub", "conj", "real", "imag", "convert", "abs", "maximum", "minimum", "select",
    "mod", "reduce_sum", "reduce_max", "reduce_min", "cumsum", "sort", "broadcast_in_dim",
    "reshape", "transpose", "rev", "slice", "pad", "concatenate", "shift", "take", "scatter_add",
    "dynamic_slice", "dynamic_update_slice", "im2col", "col2im",
)
# Library primitives that are not supported in Taylor mode yet (series through them raise).
UNSUPPORTED = {"qr", "eigh", "lu",
               # the linear map of a custom_vjp function: only its transpose is defined
               "custom_vjp_lin"}


def _register():
    for name in PIECEWISE_LINEAR:
        TAYLOR_RULES[name] = _by_jvp(P[name])
    for name, prim in PRIMITIVES.items():
        if prim.family == "fft":
            TAYLOR_RULES[name] = _linear(prim)
        elif not prim.differentiable and name not in TAYLOR_RULES:
            TAYLOR_RULES[name] = _nondiff(prim)


_register()


# ---------------------------------------------------------------------------------------------
# The walker


def jet_eval(graph: Graph, series, K: int):
    """Propagate normalised series through ``graph`` in the current trace (or eagerly)."""
    env = {p.id: s for p, s in zip(graph.params, series)}

    def read(a):
        return [a.value] + [None] * K if isinstance(a, Const) else env[a.id]

    for node in graph.body:
        ins = [read(a) for a in node.inputs]
        outs = jet_node(node.prim, ins, K, node.params)
        for v, s in zip(node.outputs, outs):
            env[v.id] = _fit(s, v.aval)
    return [read(o) for o in graph.outputs]


def jet_node(prim, ins, K, params):
    if all(c is None for s in ins for c in s[1:]):
        out = bind(prim, *[s[0] for s in ins], **params)
        outs = list(out) if prim.multiple_results else [out]
        return [[o] + [None] * K for o in outs]
    rule = TAYLOR_RULES.get(prim.name)
    if rule is None:
        raise UnsupportedError(f"jet: primitive {prim.name!r} has no Taylor rule; add one to "
                               "autodiff.taylor.TAYLOR_RULES")
    if not _elementwise(prim):
        ins = [[s[0]] + [None if c is None else _fit_shape(c, s[0]) for c in s[1:]]
               for s in ins]
    return rule(K, ins, **params)


def _elementwise(prim) -> bool:
    return "elementwise" in prim.tags


def _fit_shape(c, like):
    return broadcast_lazily(c, abstractify(like).shape)


def _fit(s, aval):
    """Coefficients take the output's shape and dtype; integer outputs have no series."""
    if not has_series(aval):
        return [s[0]] + [None] * (len(s) - 1)
    out = [s[0]]
    for c in s[1:]:
        if c is not None:
            a = abstractify(c)
            if a.dtype != aval.dtype:
                c = L.convert_element_type(c, aval.dtype)
            # Constants stay small (elementwise consumers broadcast them; the others call
            # _fit_shape); traced coefficients take the output's shape.
            if a.shape != aval.shape and isinstance(c, Tracer):
                c = L.broadcast_to(c, aval.shape)
        out.append(c)
    return out


# ---------------------------------------------------------------------------------------------
# The user-facing API


def jet(f, primals, series):
    """Taylor-mode forward propagation (JAX's ``jet``).

    ``primals``: a tuple of arguments; ``series``: the same structure with each array replaced by
    a list of K arrays, the derivatives ``x_1..x_K`` of the input path
    ``x(t) = x_0 + sum_k x_k t^k / k!``. Returns ``(f(primals), out_series)`` where
    ``out_series[k-1]`` is the k-th derivative of ``f(x(t))`` at t = 0.

    >>> import numpy as np, sciml
    >>> y, (d1, d2) = jet(lambda x: x ** 3, (2.0,), ([1.0, 0.0],))
    >>> float(y), float(d1), float(d2)
    (8.0, 12.0, 12.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(series, (tuple, list)):
        raise ArityError("jet: primals and series must be tuples (one entry per argument)")
    if len(primals) != len(series):
        raise ArityError(f"jet: {len(primals)} primals but {len(series)} series")
    p_leaves, p_tree = tree_flatten(tuple(primals))
    s_lists, s_tree = tree_flatten(tuple(series), is_leaf=lambda x: isinstance(x, list))
    if len(s_lists) != len(p_leaves) or not all(isinstance(s, list) for s in s_lists):
        raise ArityError(f"jet: series must match the structure {p_tree} of the primals with a "
                         "list of coefficients for each array")
    orders = {len(s) for s in s_lists}
    if len(orders) != 1:
        raise ShapeError(f"jet: all series must have the same length, got {sorted(orders)}")
    K = orders.pop()
    p_avals = [abstractify(x) for x in p_leaves]
    _check_series(p_avals, s_lists)
    holder = {}

    def run(*xs):
        ps, cs = xs[:len(p_avals)], xs[len(p_avals):]
        ser = [[p] + [scale(c, 1.0 / math.factorial(k + 1)) for k, c in
                      enumerate(cs[i * K:(i + 1) * K])] for i, p in enumerate(ps)]
        outs, holder["tree"] = _traced_call(f, p_tree, ser, K)
        return [s[0] for s in outs] + [_scaled(s, k) for s in outs for k in range(1, K + 1)]

    # Series terms take their primal's shape and dtype (a scalar term broadcasts).
    c_avals = [a.strong() for a in p_avals for _ in range(K)]
    inside = is_tracing() or any(isinstance(x, Tracer) for x in p_leaves)
    args = list(p_leaves) + [_as_term(c, a, inside) for s, a in zip(s_lists, p_avals)
                             for c in s]
    flat = _evaluate(run, p_avals + c_avals, args, "jet")
    n = len(flat) // (K + 1)
    out_tree = holder["tree"]
    prim_out = tree_unflatten(out_tree, flat[:n])
    ser_out = tree_unflatten(out_tree, [list(flat[n + i * K:n + (i + 1) * K]) for i in range(n)])
    return prim_out, ser_out


def _as_term(c, aval, inside):
    if isinstance(c, Tracer):
        return c if c.dtype == aval.dtype else L.convert_element_type(c, aval.dtype)
    c = np.asarray(c, aval.dtype)
    # Inside a trace a small term stays small (rules broadcast it); a graph parameter must
    # have the primal's shape.
    return c if inside else np.broadcast_to(c, aval.shape)


def _check_series(p_avals, s_lists):
    for i, (a, s) in enumerate(zip(p_avals, s_lists)):
        for k, c in enumerate(s):
            ca = abstractify(c)
            try:
                fits = np.broadcast_shapes(ca.shape, a.shape) == a.shape
            except ValueError:
                fits = False
            if not fits:
                raise ShapeError(f"jet: series term {k + 1} of argument {i} has shape {ca.shape},"
                                 f" the primal has shape {a.shape}")


def _traced_call(f, p_tree, ser, K):
    """Trace ``f`` on the primals and run the Taylor walker on its graph."""
    prim_avals = [abstractify(s[0]) for s in ser]

    def flat_f(*xs):
        return f(*tree_unflatten(p_tree, xs))

    graph, captured, out_tree = trace_flat(flat_f, prim_avals, getattr(f, "__name__", "f"))
    full = ser + [[c] + [None] * K for c in captured]
    return jet_eval(graph, full, K), out_tree


def _scaled(s, k):
    c = s[k]
    if c is None:
        return _zeros(s[0])
    return broadcast_lazily(scale(c, float(math.factorial(k))), abstractify(s[0]).shape)


def _evaluate(run, avals, args, name):
    """Trace ``run`` into a graph, optimise it, and evaluate it (or inline into a trace)."""
    if is_tracing() or any(isinstance(a, Tracer) for a in args):
        return run(*args)
    g, captured, _ = trace_flat(run, avals, name)
    g = optimize(g)
    from .interpret import eval_graph_flat

    return eval_graph_flat(g, [np.asarray(a, av.dtype) for a, av in zip(args, avals)] +
                           [np.asarray(c) for c in captured])


def derivatives_graph(f, x, order: int):
    """The optimised graph computing ``[f(x), f'(x), ..., f^(order)(x)]`` (see ``derivatives``)."""
    a = abstractify(x)
    if not dtypes.is_inexact(a.dtype):
        a = a.update(dtype=dtypes.float_dtype(a.dtype), weak=False)

    def run(xv):
        one = np.ones((), a.dtype)
        ser = [[xv, one] + [None] * (order - 1)] if order else [[xv]]
        (out,), _ = _traced_call(f, tree_flatten((xv,))[1], ser, order)
        return [out[0]] + [_scaled(out, k) for k in range(1, order + 1)]

    g, captured, _ = trace_flat(run, [a.strong()], f"derivatives_{getattr(f, '__name__', 'f')}")
    if captured:
        raise UnsupportedError("derivatives: f closes over traced values; pass them explicitly")
    return optimize(g)


def derivatives(f, x, order: int):
    """``[f(x), f'(x), ..., f^(order)(x)]`` for a scalar function ``f`` applied elementwise.

    One Taylor-mode pass with the input path ``x + t``; the graph grows about quadratically in
    ``order`` (the k-th coefficient of a product or an exp costs k terms).

    >>> import numpy as np, sciml
    >>> [float(d) for d in derivatives(np.exp, 0.0, order=3)]
    [1.0, 1.0, 1.0, 1.0]
    """
    if not isinstance(order, (int, np.integer)) or order < 0:
        raise ShapeError(f"derivatives: order must be a non-negative int, got {order!r}")
    if is_tracing() or isinstance(x, Tracer):
        ser = [[x, np.ones((), abstractify(x).dtype)] + [None] * (order - 1)] if order else [[x]]
        (out,), _ = _traced_call(f, tree_flatten((x,))[1], ser, order)
        return [out[0]] + [_scaled(out, k) for k in range(1, order + 1)]
    from .interpret import eval_graph_flat

    g = _cached_derivatives_graph(f, abstractify(x), int(order))
    return eval_graph_flat(g, [np.asarray(x, g.in_avals[0].dtype)])


# Eager calls trace once per function and signature (like ``grad``): constants the function
# reads from globals are baked into the cached graph.
_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_derivatives_graph(f, aval, order):
    key = (aval.shape, aval.dtype, order)
    try:
        per_f = _GRAPHS.setdefault(f, {})
    except TypeError:  # not weak-referenceable (a builtin): no cache
        return derivatives_graph(f, aval, order)
    if key not in per_f:
        per_f[key] = derivatives_graph(f, aval, order)
    return per_f[key]
