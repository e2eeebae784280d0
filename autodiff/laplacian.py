"""The forward Laplacian: ``laplacian(f)(x)`` is the trace of the Hessian of ``f`` at ``x`` in one
forward pass, without forming the Hessian.

Each value ``y`` of the graph carries a triple ``(y, G, L)``: its value, its gradient with respect
to the ``n`` input coordinates (``G`` has a leading axis of length ``n``: one directional
derivative per coordinate) and its Laplacian ``L = sum_i d^2 y / dx_i^2``. For a node
``y = p(a, b, ...)`` the second-order Taylor coefficient along direction ``e_i`` is

    y_2 = p'(a) . a_2  +  Q(a_1)      (Q quadratic in the first-order coefficients),

and summing over ``i`` gives ``L_y = p'(a) . L_a + 2 sum_i Q(G_a[i])``: the linear part sees the
Laplacians once (unbatched), only the quadratic part is batched over the ``n`` directions. Both
parts come from the primitive's Taylor rule (``autodiff.taylor``), the ``n`` directions from its
batching rule (``autodiff.batching``), so every primitive with those two rules — control flow
included — is handled by one generic rule. The cost is that of ``n`` JVPs plus one extra pass,
against ``n`` Hessian-vector products (or a dense Hessian) otherwise.

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> float(laplacian(lambda x: (x ** 3).sum())(np.array([1.0, 2.0])))  # 6 x summed
18.0
"""

from __future__ import annotations

import numpy as np

from . import dtypes
from .batching import batch_eval, optimize
from .errors import ShapeError
from .ir import Const, Graph
from .primitives import PRIMITIVES
from .pytree import tree_flatten, tree_unflatten
from .taylor import _fit, broadcast_lazily, jet_node
from .trace import Tracer, abstractify, bind, is_tracing, trace_flat

P = PRIMITIVES


def _zeros(aval):
    return broadcast_lazily(np.zeros((), aval.dtype), aval.shape)


def _differentiable(aval) -> bool:
    return dtypes.is_inexact(aval.dtype)


class Identity:
    """The gradient of the input itself: the identity, kept symbolic so that a first linear layer
    ``A @ x`` gets its gradient ``A^T`` by a transpose instead of a product with the identity."""

    def __init__(self, aval):
        self.aval = aval

    def materialize(self):
        return _eye_directions(self.aval)


def _first_layer(prim, vals, params):
    """Rules for a value whose G is still the identity: a reshape keeps it symbolic, and
    ``dot_general(A, x)`` (or ``(x, A)``) contracting x's one non-unit axis gets
    ``G = A`` with the contracted axis moved first (the directional derivative along e_i is A's
    slice i), a transpose instead of a product with the identity."""
    if prim.name == "reshape" and isinstance(vals[0][1], Identity) and vals[0][2] is None:
        y = bind(prim, vals[0][0], **params)
        return [(y, Identity(abstractify(y)), None)]
    if prim.name != "dot_general" or len(vals) != 2:
        return None
    (lc, rc), (lb, rb) = params["dimension_numbers"]
    for xi, (x_c, a_c) in ((1, (rc, lc)), (0, (lc, rc))):
        x, g, lap = vals[xi]
        other = vals[1 - xi]
        if not (isinstance(g, Identity) and lap is None and other[1] is None
                and other[2] is None and len(x_c) == 1 and not lb):
            continue
        xa = abstractify(x)
        if xa.shape[x_c[0]] != xa.size:
            continue  # x's other axes are not all of size 1
        y = bind(prim, vals[0][0], vals[1][0], **params)
        a = other[0]
        nd = abstractify(a).ndim
        perm = (a_c[0],) + tuple(i for i in range(nd) if i != a_c[0])
        moved = bind(P["transpose"], a, permutation=perm)
        ya = abstractify(y)
        return [(y, bind(P["reshape"], moved, new_shape=(xa.size,) + ya.shape), None)]
    return None


def laplacian_node(prim, vals, params, out_avals, n: int):
    """Propagate ``(value, G, L)`` triples through one primitive; returns the output triples."""
    fast = _first_layer(prim, vals, params)
    if fast is not None:
        return fast
    vals = [(v, g.materialize() if isinstance(g, Identity) else g, lap) for v, g, lap in vals]
    ps = [v for v, _, _ in vals]
    gi = [i for i, (_, g, _) in enumerate(vals) if g is not None]
    li = [i for i, (_, _, lap) in enumerate(vals) if lap is not None]
    if not gi and not li:
        out = bind(prim, *ps, **params)
        return [(o, None, None) for o in (list(out) if prim.multiple_results else [out])]
    holder = {}
    avals = [abstractify(p) for p in ps]
    g_avals = [abstractify(vals[i][1]).update(shape=avals[i].shape) for i in gi]
    l_avals = [abstractify(vals[i][2]) for i in li]

    def step(*xs):
        p = list(xs[:len(ps)])
        g = dict(zip(gi, xs[len(ps):len(ps) + len(gi)]))
        lap = dict(zip(li, xs[len(ps) + len(gi):]))
        s2 = jet_node(prim, [[p[i], g.get(i), None] for i in range(len(p))], 2, params)
        s2 = [_fit(s, a) for s, a in zip(s2, out_avals)]
        s1 = (jet_node(prim, [[p[i], lap.get(i)] for i in range(len(p))], 1, params)
              if lap else [[s[0], None] for s in s2])
        s1 = [_fit(s, a) for s, a in zip(s1, out_avals)]
        holder["none"] = [(s[1] is None, s[2] is None, r[1] is None) for s, r in zip(s2, s1)]
        flat = [s[0] for s in s2]
        for s, r, a in zip(s2, s1, out_avals):
            flat += [_or_zeros(s[1], a), _or_zeros(s[2], a), _or_zeros(r[1], a)]
        return flat

    graph, captured, _ = trace_flat(step, avals + g_avals + l_avals, prim.name)
    args = ps + [vals[i][1] for i in gi] + [vals[i][2] for i in li] + list(captured)
    flags = [False] * len(ps) + [True] * len(gi) + [False] * (len(li) + len(captured))
    outs, oflags = batch_eval(graph, args, flags, n)
    return _assemble(outs, oflags, holder["none"], out_avals)


def _or_zeros(c, aval):
    return _zeros(aval) if c is None else broadcast_lazily(c, aval.shape)


def _assemble(outs, oflags, none, out_avals):
    m = len(out_avals)
    res = []
    for j, (a, (g_none, q_none, l_none)) in enumerate(zip(out_avals, none)):
        y = outs[j]
        base = m + 3 * j
        g, q, lin = outs[base], outs[base + 1], outs[base + 2]
        g = None if g_none or not _differentiable(a) else g
        if g is not None and not oflags[base]:
            g = None  # independent of the directions: a zero gradient
        lap = None if l_none else lin
        if not q_none and oflags[base + 1]:
            qsum = bind(P["reduce_sum"], q, axes=(0,), keepdims=False)
            qsum = bind(P["mul"], qsum, np.asarray(2, a.dtype))
            lap = qsum if lap is None else bind(P["add"], lap, qsum)
        res.append((y, g, lap if _differentiable(a) else None))
    return res


def laplacian_eval(graph: Graph, triples, n: int):
    """Evaluate ``graph`` on ``(value, G, L)`` triples in the current trace."""
    env = {p.id: t for p, t in zip(graph.params, triples)}

    def read(a):
        return (a.value, None, None) if isinstance(a, Const) else env[a.id]

    for node in graph.body:
        outs = laplacian_node(node.prim, [read(a) for a in node.inputs], node.params,
                              [v.aval for v in node.outputs], n)
        for v, t in zip(node.outputs, outs):
            env[v.id] = t
    return [read(o) for o in graph.outputs]


def _eye_directions(aval):
    """G of the input: the identity, one unit direction per coordinate, shape (n, *x.shape)."""
    n = aval.size
    rows = bind(P["iota"], shape=(n, n), dtype=np.dtype("int64"), dimension=0)
    cols = bind(P["iota"], shape=(n, n), dtype=np.dtype("int64"), dimension=1)
    eye = bind(P["convert"], bind(P["eq"], rows, cols), new_dtype=aval.dtype)
    return bind(P["reshape"], eye, new_shape=(n,) + aval.shape)


def laplacian(f, argnum: int = 0, with_value_and_grad: bool = False):
    """``laplacian(f)(x, *rest)``: the trace of the Hessian of ``f`` with respect to argument
    ``argnum`` (an array of any shape; the Laplacian sums over all its entries), by the forward
    Laplacian scheme. For an array-valued ``f`` each output gets its own Laplacian.

    ``with_value_and_grad=True`` returns ``(f(x), gradient, laplacian)`` (gradient with the
    shape ``x.shape + f(x).shape``, all from the same pass).

    >>> import numpy as np, sciml
    >>> lap = laplacian(lambda x: np.sin(x[0]) * np.exp(x[1]))
    >>> float(lap(np.array([0.3, 0.0])))  # -sin + sin = 0
    0.0
    """

    def wrapped(*args):
        if not -len(args) <= argnum < len(args):
            raise ShapeError(f"laplacian: argnum {argnum} out of range for {len(args)} arguments")
        x = args[argnum]
        a = abstractify(x)
        if not dtypes.is_inexact(a.dtype):
            raise ShapeError(f"laplacian: argument {argnum} must be a float array, got {a}")
        leaves, tree = tree_flatten(args)
        pos = _leaf_index(args, argnum)
        avals = [abstractify(v) for v in leaves]

        def run(*xs):
            graph, captured, out_tree = trace_flat(lambda *ys: f(*tree_unflatten(tree, ys)),
                                                   avals, getattr(f, "__name__", "f"))
            n = avals[pos].size
            trip = [(v, Identity(avals[pos]) if i == pos else None, None)
                    for i, v in enumerate(xs)] + [(c, None, None) for c in captured]
            outs = laplacian_eval(graph, trip, n)
            run.out_tree = out_tree
            return [t for o, av in zip(outs, graph.out_avals) for t in _finish(o, av, a)]

        flat = _evaluate(run, avals, leaves)
        vals, grads, laps = flat[0::3], flat[1::3], flat[2::3]
        lap = tree_unflatten(run.out_tree, laps)
        if with_value_and_grad:
            return tree_unflatten(run.out_tree, vals), tree_unflatten(run.out_tree, grads), lap
        return lap

    wrapped.__name__ = f"laplacian_{getattr(f, '__name__', 'f')}"
    return wrapped


def _leaf_index(args, argnum):
    before = tree_flatten(tuple(args[:argnum % len(args)]))[0]
    if len(tree_flatten(args[argnum])[0]) != 1:
        raise ShapeError("laplacian: the differentiated argument must be a single array")
    return len(before)


def _finish(triple, out_aval, in_aval):
    y, g, lap = triple
    if isinstance(g, Identity):
        g = g.materialize()
    if g is None:
        g = np.zeros(in_aval.shape + out_aval.shape, out_aval.dtype)
    else:
        # G is (n, *out.shape): present it as x.shape + out.shape (numpy's jacobian layout).
        g = bind(P["reshape"], g, new_shape=in_aval.shape + out_aval.shape)
    if lap is None:
        lap = _zeros(out_aval.strong())
    return [y, g, lap]


def _evaluate(run, avals, args):
    if is_tracing() or any(isinstance(a, Tracer) for a in args):
        return run(*args)
    from .interpret import eval_graph_flat

    g, captured, _ = trace_flat(run, avals, "laplacian")
    g = optimize(g)
    return eval_graph_flat(g, [np.asarray(a, av.dtype) for a, av in zip(args, avals)] +
                           [np.asarray(c) for c in captured])
