"""Forward mode: ``jvp_graph(graph, nonzero)`` is a Graph computing outputs and output tangents.

Each differentiable primitive has a row in ``JVP_RULES``: ``rule(primals, tangents, **params)``
returns ``(primal_out, tangent_out)`` (lists for multiple-result primitives). A tangent is
``None`` when it is a symbolic zero, so untouched values cost nothing. Rules are written with
``autodiff.lax`` functions and ``bind``; they run on Tracers while the new graph is traced, so the
result is an ordinary graph. Tangent expressions are *linear* in the tangents (built from the
primitives ``autodiff.transpose`` can transpose); reverse mode relies on that.

Integer and boolean values have zero tangents. A differentiable primitive without a rule raises
UnsupportedError naming it; a primitive declared ``differentiable=False`` gives a zero tangent.

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> from autodiff.trace import make_graph
>>> from autodiff.interpret import eval_graph_flat
>>> g = make_graph(lambda x: np.sin(x) * x, 1.0)
>>> jg, _ = jvp_graph(g, [True])
>>> [float(v) for v in eval_graph_flat(jg, [np.float64(1.0), np.float64(1.0)])]  # f, f'
[0.8414709848078965, 1.3817732906760363]
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from . import dtypes
from . import lax as L
from .errors import UnsupportedError
from .ir import Const, Graph, Var
from .primitives import PRIMITIVES, get
from .trace import bind, trace_flat

P = PRIMITIVES
JVP_RULES: dict = {}


def defjvp(*names):
    """Register a JVP rule for the primitives ``names``."""

    def register(rule):
        for n in names:
            JVP_RULES[n] = rule
        return rule

    return register


def has_tangent(aval) -> bool:
    """Only inexact (float, complex) values carry tangents."""
    return dtypes.is_inexact(aval.dtype)


# ---------------------------------------------------------------------------------------------
# The transform


class GraphMemo:
    """Results of a transform per graph and options, forgotten when the graph is."""

    def __init__(self):
        self._by_graph = weakref.WeakKeyDictionary()

    def get(self, graph, key):
        return self._by_graph.get(graph, {}).get(key)

    def put(self, graph, key, value):
        self._by_graph.setdefault(graph, {})[key] = value
        return value


_CACHE = GraphMemo()
_ACTIVE: set = set()


def jvp_graph(graph: Graph, nonzero, instantiate=True, optimized: bool = False):
    """The JVP of ``graph`` as a graph.

    ``nonzero[i]`` says whether input i has a tangent. The result takes
    ``(*primals, *tangents of the nonzero inputs)`` and returns ``(*outputs, *tangents)``, with a
    tangent for each output that is nonzero or listed in ``instantiate`` (True: all outputs;
    zeros are materialised there). Returns ``(jvp_graph, out_nonzero)``. ``optimized=True``
    runs the passes on the result; rules for subgraphs leave that to the outermost transform,
    whose passes clean nested graphs too (optimising every level again costs depth^2).
    """
    nonzero = tuple(bool(n) and has_tangent(a) for n, a in zip(nonzero, graph.in_avals))
    n_out = len(graph.outputs)
    inst = tuple([bool(instantiate)] * n_out if isinstance(instantiate, bool) else instantiate)
    key = (nonzero, inst, optimized)
    hit = _CACHE.get(graph, key)
    if hit is not None:
        return hit
    if id(graph) in _ACTIVE:
        raise UnsupportedError(
            f"jvp: graph {graph.name!r} is recursive; differentiating recursive graph functions "
            "is not supported (write the recursion as a loop)"
        )
    _ACTIVE.add(id(graph))
    try:
        result = _build(graph, nonzero, inst, optimized)
    finally:
        _ACTIVE.discard(id(graph))
    return _CACHE.put(graph, key, result)


def _build(graph, nonzero, inst, optimized):
    t_avals = [a.strong() for a, n in zip(graph.in_avals, nonzero) if n]
    holder = {}

    def fn(*args):
        primals = list(args[:len(graph.params)])
        it = iter(args[len(graph.params):])
        tangents = [next(it) if n else None for n in nonzero]
        outs, touts = jvp_eval(graph, primals, tangents)
        nz = [t is not None or i for t, i in zip(touts, inst)]
        keep = [zeros_like(o) if t is None else t for o, t, k in zip(outs, touts, nz) if k]
        holder["nz"] = [bool(k) for k in nz]  # exactly the outputs given a tangent
        return list(outs) + keep

    g, captured, _ = trace_flat(fn, list(graph.in_avals) + t_avals, f"jvp_{graph.name}")
    assert not captured, "jvp_graph: the input graph is not closed"
    g = optimize(g) if optimized else _dce(g)
    return g, tuple(holder["nz"])


def jvp_eval(graph: Graph, primals, tangents):
    """Evaluate ``graph`` and its tangents in the current trace (or eagerly on arrays)."""
    env: dict[int, tuple] = {}
    for p, x, t in zip(graph.params, primals, tangents):
        env[p.id] = (x, t if has_tangent(p.aval) else None)
    for node in graph.body:
        xs = [_read(env, a) for a in node.inputs]
        outs, touts = jvp_node(node.prim, [x for x, _ in xs], [t for _, t in xs], node.params)
        for v, o, t in zip(node.outputs, outs, touts):
            env[v.id] = (o, t if has_tangent(v.aval) else None)
    res = [_read(env, o) for o in graph.outputs]
    return [x for x, _ in res], [t for _, t in res]


def _read(env, atom):
    if isinstance(atom, Const):
        return atom.value, None
    return env[atom.id]


def jvp_node(prim, primals, tangents, params):
    """Apply ``prim`` and its JVP rule; returns lists (outputs, tangents)."""
    if all(t is None for t in tangents) or not prim.differentiable:
        out = bind(prim, *primals, **params)
        outs = list(out) if prim.multiple_results else [out]
        return outs, [None] * len(outs)
    rule = JVP_RULES.get(prim.name)
    if rule is None:
        raise UnsupportedError(
            f"jvp: primitive {prim.name!r} has no JVP rule; add one to autodiff.jvp.JVP_RULES "
            "or declare the primitive differentiable=False"
        )
    out, tout = rule(primals, tangents, **params)
    if prim.multiple_results:
        return list(out), list(tout)
    return [out], [tout]


# ---------------------------------------------------------------------------------------------
# Helpers for rules


def aval_of(x):
    return L.aval(x)


def zeros_like(x):
    a = aval_of(x)
    return np.zeros(a.shape, a.dtype)


def zeros_aval(a):
    return np.zeros(a.shape, a.dtype)


def instantiate(t, x):
    """A concrete tangent for primal ``x``: ``t`` or zeros of x's shape and dtype."""
    return zeros_like(x) if t is None else t


def fit(t, out):
    """Broadcast a tangent to the (broadcast) shape of the output ``out``."""
    a = aval_of(out)
    return L.broadcast_to(t, a.shape) if aval_of(t).shape != a.shape else t


def add_tangents(*ts):
    ts = [t for t in ts if t is not None]
    if not ts:
        return None
    acc = ts[0]
    for t in ts[1:]:
        acc = L.add(acc, t)
    return acc


def scale(t, coef):
    """``t * coef`` where ``coef`` is a primal value (linear in t)."""
    return None if t is None else L.mul(t, coef)


def _unary(name, deriv):
    """A rule for y = f(x) with f'(x) = deriv(x, y), a primal expression."""
    prim = get(name)

    def rule(primals, tangents, **params):
        (x,), (t,) = primals, tangents
        y = bind(prim, x, **params)
        return y, L.mul(t, deriv(x, y))

    return rule


_SQRT_PI = math.sqrt(math.pi)

_UNARY_DERIVS = {
    "exp": lambda x, y: y,
    "expm1": lambda x, y: L.add(y, 1.0),
    "log": lambda x, y: L.div(1.0, x),
    "log1p": lambda x, y: L.div(1.0, L.add(x, 1.0)),
    "sqrt": lambda x, y: L.div(0.5, y),
    "rsqrt": lambda x, y: L.mul(L.div(y, x), -0.5),
    "sin": lambda x, y: L.unary("cos", x),
    "cos": lambda x, y: L.neg(L.unary("sin", x)),
    "tan": lambda x, y: L.add(L.mul(y, y), 1.0),
    "tanh": lambda x, y: L.sub(1.0, L.mul(y, y)),
    "sinh": lambda x, y: L.unary("cosh", x),
    "cosh": lambda x, y: L.unary("sinh", x),
    "arcsin": lambda x, y: L.unary("rsqrt", L.sub(1.0, L.mul(x, x))),
    "arccos": lambda x, y: L.neg(L.unary("rsqrt", L.sub(1.0, L.mul(x, x)))),
    "arctan": lambda x, y: L.div(1.0, L.add(L.mul(x, x), 1.0)),
    "arcsinh": lambda x, y: L.unary("rsqrt", L.add(L.mul(x, x), 1.0)),
    "arccosh": lambda x, y: L.unary("rsqrt", L.sub(L.mul(x, x), 1.0)),
    "arctanh": lambda x, y: L.div(1.0, L.sub(1.0, L.mul(x, x))),
    "erf": lambda x, y: L.mul(L.unary("exp", L.neg(L.mul(x, x))), 2.0 / _SQRT_PI),
}

for _n, _d in _UNARY_DERIVS.items():
    JVP_RULES[_n] = _unary(_n, _d)


def _linear_unary(name):
    prim = get(name)

    def rule(primals, tangents, **params):
        return bind(prim, *primals, **params), bind(prim, tangents[0], **params)

    return rule


for _n in ("neg", "real", "imag", "conj", "reduce_sum", "cumsum", "broadcast_in_dim", "reshape",
           "transpose", "rev", "slice", "shift", "col2im"):
    JVP_RULES[_n] = _linear_unary(_n)


@defjvp("abs")
def _abs(primals, tangents):
    (x,), (t,) = primals, tangents
    y = L.unary("abs", x)
    if dtypes.is_complex(aval_of(x).dtype):
        # d|x| = Re(conj(x) dx) / |x|
        return y, L.div(L.unary("real", L.mul(t, L.unary("conj", x))), y)
    return y, L.mul(t, L.unary("sign", x))


def _addsub(name):
    prim = get(name)

    def rule(primals, tangents):
        (x, y), (tx, ty) = primals, tangents
        out = bind(prim, x, y)
        if ty is not None and name == "sub":
            ty = L.neg(ty)
        return out, fit(add_tangents(tx, ty), out)

    return rule


JVP_RULES["add"] = _addsub("add")
JVP_RULES["sub"] = _addsub("sub")


@defjvp("mul")
def _mul(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = L.mul(x, y)
    return out, fit(add_tangents(scale(tx, y), scale(ty, x)), out)


@defjvp("div")
def _div(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = L.div(x, y)
    # d(x/y) = dx/y - dy * out/y
    t = add_tangents(None if tx is None else L.div(tx, y),
                     None if ty is None else L.mul(ty, L.neg(L.div(out, y))))
    return out, fit(t, out)


@defjvp("pow")
def _pow(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = bind(P["pow"], x, y)
    t = None
    if tx is not None:
        # y * x**(y-1), defined as 0 where y == 0 (also at x == 0).
        dx = L.where(L.compare("eq", y, 0.0), 0.0,
                     L.mul(y, bind(P["pow"], x, L.sub(y, 1.0))))
        t = L.mul(tx, dx)
    if ty is not None:
        safe = L.where(L.compare("eq", x, 0.0), 1.0, x)
        dy = L.where(L.compare("eq", x, 0.0), 0.0, L.mul(L.unary("log", safe), out))
        t = add_tangents(t, L.mul(ty, dy))
    return out, fit(t, out)


def _minmax(name, cmp):
    prim = get(name)

    def rule(primals, tangents):
        (x, y), (tx, ty) = primals, tangents
        out = bind(prim, x, y)
        # Ties share the derivative equally (as JAX does), so the rule is symmetric.
        wx = L.where(L.compare(cmp, x, y), 1.0, L.where(L.compare("eq", x, y), 0.5, 0.0))
        wx = L.convert_element_type(wx, aval_of(out).dtype)
        t = add_tangents(scale(tx, wx), scale(ty, L.sub(1.0, wx)))
        return out, fit(t, out)

    return rule


JVP_RULES["maximum"] = _minmax("maximum", "gt")
JVP_RULES["minimum"] = _minmax("minimum", "lt")


@defjvp("atan2")
def _atan2(primals, tangents):
    (a, b), (ta, tb) = primals, tangents
    out = bind(P["atan2"], a, b)
    den = L.add(L.mul(a, a), L.mul(b, b))
    t = add_tangents(scale(ta, L.div(b, den)), scale(tb, L.neg(L.div(a, den))))
    return out, fit(t, out)


@defjvp("mod")
def _mod(primals, tangents):
    (a, b), (ta, tb) = primals, tangents
    out = bind(P["mod"], a, b)
    t = add_tangents(ta, scale(tb, L.neg(L.unary("floor", L.div(a, b)))))
    return out, fit(t, out)


@defjvp("integer_pow")
def _integer_pow(primals, tangents, *, y):
    (x,), (t,) = primals, tangents
    out = bind(P["integer_pow"], x, y=y)
    if y == 0:
        return out, None
    coef = L.mul(bind(P["integer_pow"], x, y=y - 1), float(y)) if y != 1 else None
    return out, t if coef is None else L.mul(t, coef)


@defjvp("select")
def _select(primals, tangents):
    (p, a, b), (_, ta, tb) = primals, tangents
    out = bind(P["select"], p, a, b)
    if ta is None and tb is None:
        return out, None
    return out, bind(P["select"], p, instantiate(ta, a), instantiate(tb, b))


@defjvp("convert")
def _convert(primals, tangents, *, new_dtype):
    (x,), (t,) = primals, tangents
    out = bind(P["convert"], x, new_dtype=new_dtype)
    if not dtypes.is_inexact(new_dtype):
        return out, None
    return out, bind(P["convert"], t, new_dtype=new_dtype)


# ---------------------------------------------------------------------------------------------
# Reductions


@defjvp("reduce_prod")
def _reduce_prod(primals, tangents, *, axes, keepdims=False):
    (x,), (t,) = primals, tangents
    out = bind(P["reduce_prod"], x, axes=axes, keepdims=keepdims)
    # d prod = sum(dx * prod / x); exact away from zeros of x.
    full = _expand_reduced(out, aval_of(x).shape, axes, keepdims)
    return out, bind(P["reduce_sum"], L.mul(t, L.div(full, x)), axes=axes, keepdims=keepdims)


def _expand_reduced(r, shape, axes, keepdims):
    """Broadcast a reduction result back to the operand shape."""
    if not keepdims:
        kept = [s if i not in axes else 1 for i, s in enumerate(shape)]
        r = L.reshape(r, kept)
    return L.broadcast_to(r, shape)


def _reduce_extreme(name):
    prim = get(name)

    def rule(primals, tangents, *, axes, keepdims=False):
        (x,), (t,) = primals, tangents
        out = bind(prim, x, axes=axes, keepdims=keepdims)
        shape = aval_of(x).shape
        mask = L.convert_element_type(
            L.compare("eq", x, _expand_reduced(out, shape, axes, keepdims)), aval_of(x).dtype)
        # Ties share the derivative equally.
        count = bind(P["reduce_sum"], mask, axes=axes, keepdims=keepdims)
        num = bind(P["reduce_sum"], L.mul(t, mask), axes=axes, keepdims=keepdims)
        return out, L.div(num, count)

    return rule


JVP_RULES["reduce_max"] = _reduce_extreme("reduce_max")
JVP_RULES["reduce_min"] = _reduce_extreme("reduce_min")


@defjvp("sort")
def _sort(primals, tangents, *, axis, descending=False):
    (x,), (t,) = primals, tangents
    out = bind(P["sort"], x, axis=axis, descending=descending)
    perm = bind(P["argsort"], x, axis=axis, descending=descending)
    return out, take_along_axis(t, perm, axis)


def take_along_axis(t, idx, axis):
    """``np.take_along_axis`` through a flat ``take`` (linear in t)."""
    a = aval_of(t)
    axis = axis % max(a.ndim, 1)
    if a.ndim <= 1:
        return bind(P["take"], t, idx, axis=0)
    strides = np.cumprod((a.shape[1:] + (1,))[::-1])[::-1]
    flat_idx = L.mul(idx, int(strides[axis]))
    for d in range(a.ndim):
        if d != axis:
            io = bind(P["iota"], shape=a.shape, dtype=np.dtype("int64"), dimension=d)
            flat_idx = L.add(flat_idx, L.mul(io, int(strides[d])))
    flat = L.reshape(t, (a.size,))
    return bind(P["take"], flat, flat_idx, axis=0)


# ---------------------------------------------------------------------------------------------
# Shapes and indexing


@defjvp("pad")
def _pad(primals, tangents, *, pad_width, mode="constant", value=0.0):
    (x,), (t,) = primals, tangents
    out = bind(P["pad"], x, pad_width=pad_width, mode=mode, value=value)
    return out, bind(P["pad"], t, pad_width=pad_width, mode=mode, value=0.0)


@defjvp("im2col")
def _im2col(primals, tangents, *, value=0.0, **params):
    # Affine in x when the padding value is not 0: the tangent's padding is 0.
    (x,), (t,) = primals, tangents
    return bind(P["im2col"], x, value=value, **params), bind(P["im2col"], t, value=0.0, **params)


@defjvp("concatenate")
def _concatenate(primals, tangents, *, axis):
    out = bind(P["concatenate"], *primals, axis=axis)
    ts = [instantiate(t, x) for x, t in zip(primals, tangents)]
    return out, bind(P["concatenate"], *ts, axis=axis)


@defjvp("take")
def _take(primals, tangents, *, axis):
    (x, idx), (t, _) = primals, tangents
    return bind(P["take"], x, idx, axis=axis), bind(P["take"], t, idx, axis=axis)


@defjvp("scatter_add")
def _scatter_add(primals, tangents, *, axis):
    (x, idx, u), (tx, _, tu) = primals, tangents
    out = bind(P["scatter_add"], x, idx, u, axis=axis)
    if tu is None:
        return out, tx
    return out, bind(P["scatter_add"], instantiate(tx, x), idx, tu, axis=axis)


@defjvp("dynamic_slice")
def _dynamic_slice(primals, tangents, *, sizes):
    x, *starts = primals
    out = bind(P["dynamic_slice"], x, *starts, sizes=sizes)
    return out, bind(P["dynamic_slice"], tangents[0], *starts, sizes=sizes)


@defjvp("dynamic_update_slice")
def _dynamic_update_slice(primals, tangents):
    x, u, *starts = primals
    tx, tu = tangents[:2]
    out = bind(P["dynamic_update_slice"], x, u, *starts)
    return out, bind(P["dynamic_update_slice"], instantiate(tx, x), instantiate(tu, u), *starts)


@defjvp("dot_general")
def _dot_general(primals, tangents, **params):
    (x, y), (tx, ty) = primals, tangents
    prim = P["dot_general"]
    out = bind(prim, x, y, **params)
    t = add_tangents(None if tx is None else bind(prim, tx, y, **params),
                     None if ty is None else bind(prim, x, ty, **params))
    return out, t


# ---------------------------------------------------------------------------------------------
# FFT (linear) and dense linear algebra


for _n in ("fft", "ifft", "rfft", "irfft"):
    JVP_RULES[_n] = _linear_unary(_n)


def mT(x):
    """Swap the last two axes."""
    nd = aval_of(x).ndim
    return bind(P["transpose"], x, permutation=tuple(range(nd - 2)) + (nd - 1, nd - 2))


def mH(x):
    """Conjugate transpose (plain transpose for real dtypes)."""
    y = mT(x)
    return L.unary("conj", y) if dtypes.is_complex(aval_of(x).dtype) else y


def tri_mask(n, k=0, lower=True, dtype=np.float64, diag=1.0):
    """Mask of the lower (upper) triangle, offset k; ``diag`` scales the main diagonal."""
    m = np.tril(np.ones((n, n)), k) if lower else np.triu(np.ones((n, n)), k)
    if k == 0:
        m[np.diag_indices(n)] = diag
    return m.astype(dtype)


def _sym_from_triangle(t, lower):
    """The Hermitian matrix a routine sees when it reads only one triangle of ``t``."""
    a = aval_of(t)
    n = a.shape[-1]
    part = L.mul(t, tri_mask(n, 0, lower, a.dtype))
    strict = L.mul(t, tri_mask(n, -1 if lower else 1, lower, a.dtype))
    return L.add(part, mH(strict))


@defjvp("solve")
def _solve(primals, tangents):
    (a, b), (ta, tb) = primals, tangents
    x = bind(P["solve"], a, b)
    rhs = add_tangents(tb, None if ta is None else L.neg(L.matmul(ta, x)))
    return x, bind(P["solve"], a, rhs)


def _op(a, transpose_a, conjugate_a):
    if transpose_a:
        a = mT(a)
    if conjugate_a and dtypes.is_complex(aval_of(a).dtype):
        a = L.unary("conj", a)
    return a


@defjvp("triangular_solve")
def _triangular_solve(primals, tangents, **params):
    (a, b), (ta, tb) = primals, tangents
    x = bind(P["triangular_solve"], a, b, **params)
    rhs = tb
    if ta is not None:
        n = aval_of(a).shape[-1]
        k = (-1 if params.get("lower", True) else 1) if params.get("unit_diagonal") else 0
        da = L.mul(ta, tri_mask(n, k, params.get("lower", True), aval_of(a).dtype))
        opda = _op(da, params.get("transpose_a", False), params.get("conjugate_a", False))
        prod = L.matmul(opda, x) if params.get("left_side", True) else L.matmul(x, opda)
        rhs = add_tangents(rhs, L.neg(prod))
    return x, bind(P["triangular_solve"], a, rhs, **params)


def neighbours(x):
    """(x[k-1], x[k+1]) along axis 0, zero past the ends: the off-diagonal reads of a
    tridiagonal product."""
    nd = aval_of(x).ndim
    down = bind(P["shift"], x, offset=(-1,) + (0,) * (nd - 1), boundary="zero")
    up = bind(P["shift"], x, offset=(1,) + (0,) * (nd - 1), boundary="zero")
    return down, up


def tridiagonal_product(sub, diag, sup, x):
    """T x for the tridiagonal T = (sub, diag, sup) along axis 0; None coefficients are zero."""
    down, up = neighbours(x)
    terms = [L.mul(t, v) for t, v in ((sub, down), (diag, x), (sup, up)) if t is not None]
    out = terms[0]
    for t in terms[1:]:
        out = L.add(out, t)
    return out


@defjvp("tridiagonal_solve")
def _tridiagonal_solve(primals, tangents):
    # T x = d  =>  T dx = dd - dT x: one more solve with the same coefficients.
    (a, b, c, d), (ta, tb, tc, td) = primals, tangents
    x = bind(P["tridiagonal_solve"], a, b, c, d)
    rhs = td
    if any(t is not None for t in (ta, tb, tc)):
        rhs = add_tangents(rhs, L.neg(tridiagonal_product(ta, tb, tc, x)))
    if rhs is None:
        return x, None
    return x, bind(P["tridiagonal_solve"], a, b, c, rhs)


@defjvp("cholesky")
def _cholesky(primals, tangents):
    (a,), (t,) = primals, tangents
    low = bind(P["cholesky"], a)
    n, d = aval_of(a).shape[-1], aval_of(a).dtype
    da = _sym_from_triangle(t, True)
    tmp = bind(P["triangular_solve"], low, da, lower=True)
    x = bind(P["triangular_solve"], low, tmp, lower=True, left_side=False, transpose_a=True,
             conjugate_a=True)
    # dL = L Phi(L^-1 dA L^-H), Phi = strictly lower part plus half the diagonal.
    phi = L.mul(x, tri_mask(n, 0, True, d, diag=0.5))
    return low, L.matmul(low, phi)


@defjvp("eigh")
def _eigh(primals, tangents, *, lower=True):
    (a,), (t,) = primals, tangents
    w, v = bind(P["eigh"], a, lower=lower)
    n, d = aval_of(a).shape[-1], aval_of(a).dtype
    eye = np.eye(n, dtype=bool)
    vdv = L.matmul(L.matmul(mH(v), _sym_from_triangle(t, lower)), v)
    dw = bind(P["reduce_sum"], L.mul(vdv, np.eye(n, dtype=d)), axes=(aval_of(vdv).ndim - 1,),
              keepdims=False)
    if dtypes.is_complex(d):
        dw = L.unary("real", dw)
    # F_ij = 1 / (w_j - w_i) off the diagonal (infinite for repeated eigenvalues, as in JAX).
    gap = L.sub(L.expand_dims(w, -2), L.expand_dims(w, -1))
    f = L.where(eye, 0.0, L.div(1.0, L.where(eye, 1.0, gap)))
    dv = L.matmul(v, L.mul(vdv, L.convert_element_type(f, d)))
    return [w, v], [dw, dv]


@defjvp("qr")
def _qr(primals, tangents, *, full_matrices=False):
    (a,), (t,) = primals, tangents
    q, r = bind(P["qr"], a, full_matrices=full_matrices)
    m, n = aval_of(a).shape[-2:]
    if m < n or (full_matrices and m != n):
        raise UnsupportedError(f"jvp of qr: only m >= n with reduced matrices is supported, "
                               f"got a of shape {aval_of(a).shape} (full_matrices="
                               f"{full_matrices})")
    d = aval_of(a).dtype
    dx_rinv = bind(P["triangular_solve"], r, t, lower=False, left_side=False)
    qt = L.matmul(mH(q), dx_rinv)
    low = L.mul(qt, tri_mask(n, -1, True, d))
    do = L.sub(low, mH(low))
    if dtypes.is_complex(d):
        # Q is fixed up to a phase per column: take the imaginary diagonal into do.
        do = L.add(do, L.mul(L.sub(qt, L.convert_element_type(L.unary("real", qt), d)),
                             np.eye(n, dtype=d)))
    dq = L.add(L.matmul(q, L.sub(do, qt)), dx_rinv)
    dr = L.matmul(L.sub(qt, do), r)
    return [q, r], [dq, dr]


@defjvp("lu")
def _lu(primals, tangents):
    (a,), (t,) = primals, tangents
    lu, piv, perm = bind(P["lu"], a)
    shape, d = aval_of(a).shape, aval_of(a).dtype
    n = shape[-1]
    rows = L.broadcast_to(L.expand_dims(perm, -1), shape)
    tp = take_along_axis(t, rows, len(shape) - 2)  # rows of dA in pivot order
    low = L.add(L.mul(lu, tri_mask(n, -1, True, d)), np.eye(n, dtype=d))
    up = L.mul(lu, tri_mask(n, 0, False, d))
    tmp = bind(P["triangular_solve"], low, tp, lower=True, unit_diagonal=True)
    x = bind(P["triangular_solve"], up, tmp, lower=False, left_side=False)
    dl = L.matmul(low, L.mul(x, tri_mask(n, -1, True, d)))
    du = L.matmul(L.mul(x, tri_mask(n, 0, False, d)), up)
    return [lu, piv, perm], [L.add(dl, du), None, None]


# ---------------------------------------------------------------------------------------------
# Control flow: the JVP of a node holding subgraphs holds the JVP of the subgraphs.


def permute(graph: Graph, param_order, out_order, name=None) -> Graph:
    """The same graph with its parameters and outputs reordered (Vars shared)."""
    return Graph([graph.params[i] for i in param_order], list(graph.body),
                 [graph.outputs[i] for i in out_order], name or graph.name, {})


def _interleave_order(groups, nz_groups):
    """Parameter order turning (*primals, *tangents) into (g1, t1, g2, t2, ...) by groups."""
    n = sum(groups)
    order, start, tstart = [], 0, n
    for size, nz in zip(groups, nz_groups):
        order.extend(range(start, start + size))
        cnt = sum(nz)
        order.extend(range(tstart, tstart + cnt))
        start += size
        tstart += cnt
    return order


def _nz_list(tangents, primals):
    return [t is not None and has_tangent(aval_of(x)) for t, x in zip(tangents, primals)]


def _present(tangents, nz):
    return [t for t, n in zip(tangents, nz) if n]


@defjvp("call")
def _call(primals, tangents, *, graph):
    nz = _nz_list(tangents, primals)
    jg, out_nz = jvp_graph(graph, nz, instantiate=False)
    res = bind(P["call"], *primals, *_present(tangents, nz), graph=jg)
    return _split_outs(res, len(graph.outputs), out_nz)


def _split_outs(res, n, out_nz):
    outs = list(res[:n])
    it = iter(res[n:])
    return outs, [next(it) if k else None for k in out_nz]


@defjvp("cond")
def _cond(primals, tangents, *, branches):
    index, ops = primals[0], primals[1:]
    nz = _nz_list(tangents[1:], ops)
    out_nz = [False] * len(branches[0].outputs)
    for b in branches:
        _, bnz = jvp_graph(b, nz, instantiate=False)
        out_nz = [a or c for a, c in zip(out_nz, bnz)]
    jbs = tuple(jvp_graph(b, nz, instantiate=tuple(out_nz))[0] for b in branches)
    res = bind(P["cond"], index, *ops, *_present(tangents[1:], nz), branches=jbs)
    return _split_outs(res, len(branches[0].outputs), out_nz)


def _carry_fixpoint(body, prefix_nz, carry_nz, rest_nz, n_carry, offset=0):
    """Carries whose tangent is nonzero at some iteration (a fixed point over the body)."""
    carry_nz = list(carry_nz)
    while True:
        _, out_nz = jvp_graph(body, list(prefix_nz) + carry_nz + list(rest_nz), instantiate=False)
        new = [a or b for a, b in zip(carry_nz, out_nz[offset:offset + n_carry])]
        if new == carry_nz:
            return carry_nz
        carry_nz = new


@defjvp("scan")
def _scan(primals, tangents, *, body, length, num_carry, num_xs, reverse=False):
    nz = _nz_list(tangents, primals)
    nc, nx = num_carry, num_xs
    c_nz = _carry_fixpoint(body, [], nz[:nc], nz[nc:], nc)
    c_nz = [c and has_tangent(a) for c, a in zip(c_nz, body.in_avals[:nc])]
    x_nz, k_nz = nz[nc:nc + nx], nz[nc + nx:]
    all_nz = c_nz + x_nz + k_nz
    n_ys = len(body.outputs) - nc
    inst = tuple(c_nz) + (False,) * n_ys
    jb, out_nz = jvp_graph(body, all_nz, instantiate=inst)
    y_nz = list(out_nz[nc:])
    n_in = len(primals)
    sizes = [nc, nx, n_in - nc - nx]
    p_order = _interleave_order(sizes, [c_nz, x_nz, k_nz])
    o_order = _interleave_order([nc, n_ys], [c_nz, y_nz])
    jb = permute(jb, p_order, o_order, f"jvp_{body.name}")
    tans = [instantiate(t, x) if n else None for t, x, n in zip(tangents, primals, all_nz)]
    args = []
    for lo, hi, grp_nz in ((0, nc, c_nz), (nc, nc + nx, x_nz), (nc + nx, n_in, k_nz)):
        args += list(primals[lo:hi]) + [t for t, n in zip(tans[lo:hi], grp_nz) if n]
    res = bind(P["scan"], *args, body=jb, length=length, num_carry=nc + sum(c_nz),
               num_xs=nx + sum(x_nz), reverse=reverse)
    carry, ct = _unzip(res[:nc + sum(c_nz)], c_nz)
    ys, yt = _unzip(res[nc + sum(c_nz):], y_nz)
    return carry + ys, ct + yt


def _unzip(vals, nz):
    """Split (*primals, *present tangents) into primals and a tangent list with Nones."""
    n = len(nz)
    prim = list(vals[:n])
    it = iter(vals[n:])
    return prim, [next(it) if k else None for k in nz]


@defjvp("fori_loop")
def _fori(primals, tangents, *, body, num_carry):
    lo, hi, rest = primals[0], primals[1], primals[2:]
    nz = _nz_list(tangents[2:], rest)
    nc = num_carry
    c_nz = _carry_fixpoint(body, [False], nz[:nc], nz[nc:], nc)
    k_nz = nz[nc:]
    jb, _ = jvp_graph(body, [False] + c_nz + k_nz, instantiate=tuple(c_nz))
    n_in = 1 + len(rest)
    p_order = _interleave_order([1, nc, n_in - 1 - nc], [[], c_nz, k_nz])
    o_order = _interleave_order([nc], [c_nz])
    jb = permute(jb, p_order, o_order, f"jvp_{body.name}")
    tans = [instantiate(t, x) for t, x in zip(tangents[2:], rest)]
    args = list(rest[:nc]) + _present(tans[:nc], c_nz) + list(rest[nc:]) + _present(
        tans[nc:], k_nz)
    res = bind(P["fori_loop"], lo, hi, *args, body=jb, num_carry=nc + sum(c_nz))
    return _unzip(res, c_nz)


@defjvp("while_loop")
def _while(primals, tangents, *, cond_graph, body_graph, num_carry, num_cond_captures,
           max_steps=None):
    nz = _nz_list(tangents, primals)
    nc, ncc = num_carry, num_cond_captures
    bcap_nz = nz[nc + ncc:]
    c_nz = _carry_fixpoint(body_graph, [], nz[:nc], bcap_nz, nc)
    jb, _ = jvp_graph(body_graph, c_nz + bcap_nz, instantiate=tuple(c_nz))
    n_b = len(body_graph.params)
    jb = permute(jb, _interleave_order([nc, n_b - nc], [c_nz, bcap_nz]),
                 _interleave_order([nc], [c_nz]), f"jvp_{body_graph.name}")
    # The predicate sees the primal carry only; tangent carries are extra, unused parameters.
    extra = [Var(a.strong()) for a, n in zip(cond_graph.in_avals[:nc], c_nz) if n]
    cg = Graph(cond_graph.params[:nc] + extra + cond_graph.params[nc:], list(cond_graph.body),
               list(cond_graph.outputs), cond_graph.name, {})
    carry = list(primals[:nc])
    ct = [instantiate(t, x) for t, x, n in zip(tangents[:nc], carry, c_nz) if n]
    ccaps = list(primals[nc:nc + ncc])
    bcaps = list(primals[nc + ncc:])
    bct = _present(tangents[nc + ncc:], bcap_nz)
    res = bind(P["while_loop"], *carry, *ct, *ccaps, *bcaps, *bct, cond_graph=cg, body_graph=jb,
               num_carry=nc + len(ct), num_cond_captures=ncc, max_steps=max_steps)
    return _unzip(res, c_nz)


# ---------------------------------------------------------------------------------------------
# Optimisation after each transform (the passes package is optional while it is being written)


def optimize(graph: Graph) -> Graph:
    """Run ``autodiff.passes.optimize`` when available; otherwise drop dead nodes."""
    try:
        from .passes import optimize as _opt
    except ImportError:
        _opt = None
    if _opt is not None:
        return _opt(graph)
    return _dce(graph)


def _dce(graph: Graph) -> Graph:
    live = {o.id for o in graph.outputs if isinstance(o, Var)}
    kept = []
    for node in reversed(graph.body):
        if any(o.id in live for o in node.outputs):
            live.update(a.id for a in node.inputs if isinstance(a, Var))
            kept.append(node)
    return Graph(list(graph.params), kept[::-1], list(graph.outputs), graph.name,
                 dict(graph.meta))
