"""vmap: batching as a Graph -> Graph transform, with one batching rule per primitive.

A batched value carries its batch dimension on axis 0 (rules move it there when a primitive
puts it elsewhere), so every rule only decides *whether* each operand is batched. A rule is

    rule(size, args, batched, **params) -> (outs, out_batched)

where ``args`` are the (possibly batched) operands in the graph being built, ``batched`` says
which of them carry the leading batch axis of length ``size``, and both results are lists (one
entry per output of the primitive). Unbatched operands are never broadcast unless a rule needs
it, so values that do not depend on the mapped inputs stay unbatched (and cheap).

>>> import numpy as np
>>> vmap(lambda x, y: x @ y, in_axes=(0, None))(np.ones((4, 3)), np.arange(3.0))
array([3., 3., 3., 3.])
"""

from __future__ import annotations

import numpy as np

from . import lax  # noqa: F401  (attaches the Tracer operators the examples use)
from .errors import ArityError, ShapeError, UnsupportedError
from .ir import Const, Graph
from .primitives import PRIMITIVES, _load_table
from .pytree import _children, tree_flatten, tree_unflatten
from .trace import Tracer, abstractify, bind, is_tracing, trace_flat

_load_table()
P = PRIMITIVES
BATCH_RULES: dict = {}


# ---------------------------------------------------------------------------------------------
# Small array helpers that work on Tracers and numpy arrays alike


def ndim(x) -> int:
    return abstractify(x).ndim


def shape(x) -> tuple:
    return abstractify(x).shape


def moveaxis(x, src: int, dst: int):
    nd = ndim(x)
    src, dst = src % nd, dst % nd
    if src == dst:
        return x
    perm = [i for i in range(nd) if i != src]
    perm.insert(dst, src)
    return bind(P["transpose"], x, permutation=tuple(perm))


def reshape(x, new_shape):
    new_shape = tuple(int(s) for s in new_shape)
    return x if shape(x) == new_shape else bind(P["reshape"], x, new_shape=new_shape)


def broadcast_batch(x, size: int):
    """Give an unbatched value a leading batch axis of length ``size``."""
    nd = ndim(x)
    return bind(P["broadcast_in_dim"], x, shape=(size,) + shape(x),
                broadcast_dimensions=tuple(range(1, nd + 1)))


def _bcast_all(size, args, batched):
    return [x if b else broadcast_batch(x, size) for x, b in zip(args, batched)]


def _atom_value(a, env):
    return a.value if isinstance(a, Const) else env[a.id]


def inline(graph: Graph, args) -> list:
    """Evaluate ``graph`` on ``args`` through ``bind``: records into the current trace when an
    argument is traced, else runs eagerly. Used to splice a transformed graph into a trace."""
    env = {p.id: a for p, a in zip(graph.params, args)}
    for node in graph.body:
        out = bind(node.prim, *[_atom_value(a, env) for a in node.inputs], **node.params)
        outs = out if node.prim.multiple_results else (out,)
        for v, o in zip(node.outputs, outs):
            env[v.id] = o
    return [_atom_value(o, env) for o in graph.outputs]


def optimize(graph: Graph) -> Graph:
    """Run the optimisation pipeline when the passes package provides one."""
    try:
        from .passes import optimize as _optimize
    except ImportError:  # the passes are not there yet: transforms still work, just larger
        return graph
    return _optimize(graph)


# ---------------------------------------------------------------------------------------------
# The transform


def batch_graph(graph: Graph, batched, size: int):
    """Batch ``graph`` over the inputs flagged in ``batched`` (batch axis 0, length ``size``).

    Returns ``(new_graph, out_batched)``; unbatched outputs keep their shape.
    """
    batched = [bool(b) for b in batched]
    if len(batched) != len(graph.params):
        raise ArityError(f"vmap: graph {graph.name} has {len(graph.params)} inputs, got "
                         f"{len(batched)} batching flags")
    avals = [p.aval.update(shape=(size,) + p.aval.shape) if b else p.aval
             for p, b in zip(graph.params, batched)]
    holder = {}

    def run(*xs):
        outs, holder["flags"] = batch_eval(graph, list(xs), batched, size)
        return outs

    new, _, _ = trace_flat(run, avals, graph.name)
    return new, holder["flags"]


def batch_eval(graph: Graph, args, batched, size: int):
    """Evaluate ``graph`` with batched values inside the current trace (the batching
    interpreter); returns the outputs and which of them are batched."""
    env = {p.id: (a, b) for p, a, b in zip(graph.params, args, batched)}

    def read(a):
        return (a.value, False) if isinstance(a, Const) else env[a.id]

    for node in graph.body:
        ins = [read(a) for a in node.inputs]
        xs, bs = [x for x, _ in ins], [b for _, b in ins]
        if any(bs):
            outs, obs = apply_rule(node.prim, size, xs, bs, node.params)
        else:
            out = bind(node.prim, *xs, **node.params)
            outs = list(out) if node.prim.multiple_results else [out]
            obs = [False] * len(outs)
        for v, o, b in zip(node.outputs, outs, obs):
            env[v.id] = (o, b)
    res = [read(o) for o in graph.outputs]
    return [x for x, _ in res], [b for _, b in res]


def apply_rule(prim, size, xs, bs, params):
    rule = BATCH_RULES.get(prim.name)
    if rule is None:
        raise UnsupportedError(f"vmap: primitive {prim.name!r} has no batching rule; add one to "
                               "autodiff.batching.BATCH_RULES")
    return rule(size, xs, bs, **params)


def vmap_graph(graph: Graph, in_axes, size: int) -> Graph:
    """The batched graph: parameter ``i`` gains a batch axis of length ``size`` at
    ``in_axes[i]`` (None: not batched); every output gets the batch axis at position 0.

    >>> from autodiff.trace import make_graph
    >>> g = vmap_graph(make_graph(lambda x: x * 2.0, np.zeros(3)), [1], 5)
    >>> g.in_avals[0].shape, g.out_avals[0].shape
    ((3, 5), (5, 3))
    """
    in_axes = list(in_axes)
    if len(in_axes) != len(graph.params):
        raise ArityError(f"vmap_graph: graph {graph.name} has {len(graph.params)} inputs, "
                         f"in_axes has {len(in_axes)} entries")
    inner, flags = batch_graph(graph, [ax is not None for ax in in_axes], size)
    avals = []
    for p, ax in zip(graph.params, in_axes):
        if ax is None:
            avals.append(p.aval)
            continue
        raise_if_bad_axis("vmap_graph", ax, p.aval.ndim + 1)
        s = list(p.aval.shape)
        s.insert(ax % (p.aval.ndim + 1), size)
        avals.append(p.aval.update(shape=tuple(s)))

    def run(*xs):
        moved = [x if ax is None else moveaxis(x, ax, 0) for x, ax in zip(xs, in_axes)]
        outs = inline(inner, moved)
        return [o if b else broadcast_batch(o, size) for o, b in zip(outs, flags)]

    new, _, _ = trace_flat(run, avals, graph.name)
    return optimize(new)


def raise_if_bad_axis(what, ax, nd):
    if not isinstance(ax, (int, np.integer)) or not -nd <= ax < nd:
        raise ShapeError(f"{what}: axis {ax!r} is out of range for an argument of rank {nd}")


# ---------------------------------------------------------------------------------------------
# The user-facing vmap


def _axes_for(name, axes, tree):
    """Broadcast an in_axes/out_axes prefix tree to one entry per leaf of ``tree``."""
    try:
        return _expand_prefix(axes, tree)
    except ValueError:
        raise ArityError(f"vmap: {name}={axes!r} does not match the structure {tree} of the "
                         "values; give an int, None, or a prefix of that structure") from None


def _expand_prefix(prefix, tree):
    if prefix is None or isinstance(prefix, (int, np.integer)):
        return [prefix] * tree.num_leaves
    kind, _, children = _children(prefix)
    same = kind is tree.kind or {kind, tree.kind} <= {tuple, list}
    if kind is None or not same or len(children) != len(tree.children):
        raise ValueError("structure mismatch")
    if kind is dict and tuple(sorted(prefix, key=repr)) != tree.aux:
        raise ValueError("keys mismatch")
    return [a for p, t in zip(children, tree.children) for a in _expand_prefix(p, t)]


def _batch_size(leaves, axes):
    sizes = {}
    for i, (x, ax) in enumerate(zip(leaves, axes)):
        if ax is None:
            continue
        a = abstractify(x)
        raise_if_bad_axis("vmap", ax, a.ndim)
        sizes[i] = a.shape[ax]
    if not sizes:
        raise ShapeError("vmap: no argument is mapped (all in_axes are None); nothing to batch")
    if len(set(sizes.values())) != 1:
        desc = ", ".join(f"argument leaf {i} has size {s}" for i, s in sizes.items())
        raise ShapeError(f"vmap: mapped axes have different sizes: {desc}")
    return next(iter(sizes.values()))


def vmap(f, in_axes=0, out_axes=0):
    """Vectorise ``f`` over an axis of its arguments (JAX's ``vmap``).

    ``in_axes``: an int, None (argument not mapped) or a pytree prefix of the arguments;
    ``out_axes`` likewise for the results. Works eagerly (the batched graph runs in the
    interpreter) and inside other traces (the batched graph is inlined), so it nests with every
    transform.

    >>> import numpy as np
    >>> vmap(lambda x: (x ** 2).sum())(np.arange(6.0).reshape(2, 3))
    array([ 5., 50.])
    """

    cache: dict = {}

    def batched(*args):
        leaves, tree = tree_flatten(args)
        axes = _axes_for("in_axes", in_axes, tree)
        size = _batch_size(leaves, axes)
        avals = [_unbatched_aval(x, ax) for x, ax in zip(leaves, axes)]
        moved = [x if ax is None else moveaxis(_arr(x), ax, 0) for x, ax in zip(leaves, axes)]
        eager = not is_tracing() and not any(isinstance(x, Tracer) for x in leaves)
        key = (tree, tuple(avals), tuple(axes), size)
        if eager and key in cache:
            # Eager calls reuse the batched graph of this signature (like grad): globals the
            # function reads are baked in, as in every cached transform.
            new, oflags, out_tree = cache[key]
            outs = _eval(new, moved)
        else:
            def flat_fn(*xs):
                return f(*tree_unflatten(tree, xs))

            graph, captured, out_tree = trace_flat(flat_fn, avals, getattr(f, "__name__", "f"))
            flags = [ax is not None for ax in axes] + [False] * len(captured)
            if eager and not captured:
                new, oflags = batch_graph(graph, flags, size)
                new = optimize(new)
                cache[key] = (new, oflags, out_tree)
                outs = _eval(new, moved)
            else:
                outs, oflags = _run_batched(graph, moved + list(captured), flags, size)
        o_axes = _axes_for("out_axes", out_axes, out_tree)
        return tree_unflatten(out_tree, [_place_out(o, b, ax, size, i)
                                         for i, (o, b, ax) in enumerate(zip(outs, oflags,
                                                                            o_axes))])

    batched.__name__ = f"vmap_{getattr(f, '__name__', 'f')}"
    batched.__doc__ = getattr(f, "__doc__", None)
    return batched


def _arr(x):
    return x if isinstance(x, Tracer) else np.asarray(x)


def _unbatched_aval(x, ax):
    a = abstractify(x)
    if ax is None:
        return a
    s = list(a.shape)
    del s[ax % a.ndim]
    return a.update(shape=tuple(s))


def _eval(graph, args):
    from .interpret import eval_graph_flat

    return eval_graph_flat(graph, [np.asarray(a) for a in args])


def _run_batched(graph, args, flags, size):
    if is_tracing() or any(isinstance(a, Tracer) for a in args):
        return batch_eval(graph, args, flags, size)
    from .interpret import eval_graph_flat

    new, oflags = batch_graph(graph, flags, size)
    new = optimize(new)
    return eval_graph_flat(new, [np.asarray(a) for a in args]), oflags


def _place_out(o, b, ax, size, i):
    if ax is None:
        if b:
            raise ShapeError(f"vmap: output {i} depends on the mapped inputs, so out_axes=None "
                             "is not possible for it; give an integer axis")
        return o
    if not b:
        o = broadcast_batch(o, size)
    return moveaxis(o, 0, ax)


# ---------------------------------------------------------------------------------------------
# Rules: elementwise


def _elementwise_rule(prim):
    def rule(size, args, batched, **params):
        out_nd = max(ndim(x) - b for x, b in zip(args, batched))
        # A batched operand of lower rank gets singleton axes after the batch axis, so numpy
        # broadcasting (which aligns from the right) lines its data axes up with the others.
        xs = [_lift(x, out_nd) if b else x for x, b in zip(args, batched)]
        return [bind(prim, *xs, **params)], [True]

    return rule


def _lift(x, out_nd):
    s = shape(x)
    missing = out_nd - (len(s) - 1)
    return reshape(x, (s[0],) + (1,) * missing + s[1:]) if missing else x


# ---------------------------------------------------------------------------------------------
# Rules: reductions and axis-parameterised primitives


def _unbatched_axes(axes, nd):
    from .ops.reduce import normalize_axes

    return normalize_axes("vmap", axes, nd)


def _reduce_rule(prim):
    def rule(size, args, batched, *, axes, keepdims=False):
        (x,) = args
        ax = _unbatched_axes(axes, ndim(x) - 1)
        return [bind(prim, x, axes=tuple(a + 1 for a in ax), keepdims=keepdims)], [True]

    return rule


def _axis_rule(prim, key="axis"):
    def rule(size, args, batched, **params):
        xs = _bcast_all(size, args, batched)
        nd = ndim(xs[0]) - 1
        ax = params[key]
        ax = ax[0] if isinstance(ax, (tuple, list)) else ax
        params = dict(params, **{key: int(ax) % max(nd, 1) + 1})
        return [bind(prim, *xs, **params)], [True]

    return rule


def _bid_rule(size, args, batched, *, shape, broadcast_dimensions):
    (x,) = args
    return [bind(P["broadcast_in_dim"], x, shape=(size,) + tuple(shape),
                 broadcast_dimensions=(0,) + tuple(d + 1 for d in broadcast_dimensions))], [True]


def _reshape_rule(size, args, batched, *, new_shape):
    return [reshape(args[0], (size,) + tuple(new_shape))], [True]


def _transpose_rule(size, args, batched, *, permutation):
    perm = (0,) + tuple(p + 1 for p in permutation)
    return [bind(P["transpose"], args[0], permutation=perm)], [True]


def _rev_rule(size, args, batched, *, axes):
    return [bind(P["rev"], args[0], axes=tuple(a + 1 for a in axes))], [True]


def _slice_rule(size, args, batched, *, start, limit, strides=None):
    strides = (1,) + tuple(strides or (1,) * len(start))
    return [bind(P["slice"], args[0], start=(0,) + tuple(start), limit=(size,) + tuple(limit),
                 strides=strides)], [True]


def _pad_rule(size, args, batched, *, pad_width, mode="constant", value=0.0):
    pw = ((0, 0),) + tuple(tuple(p) for p in pad_width)
    return [bind(P["pad"], args[0], pad_width=pw, mode=mode, value=value)], [True]


def _shift_rule(size, args, batched, *, offset, boundary="zero"):
    return [bind(P["shift"], args[0], offset=(0,) + tuple(offset), boundary=boundary)], [True]


def _window_rule(name):
    # im2col/col2im treat every leading axis as a batch axis: the mapped one is one more.
    def rule(size, args, batched, **params):
        return [bind(P[name], args[0], **params)], [True]

    return rule


def _concat_rule(size, args, batched, *, axis):
    xs = _bcast_all(size, args, batched)
    return [bind(P["concatenate"], *xs, axis=axis + 1)], [True]


# ---------------------------------------------------------------------------------------------
# Rules: linear algebra


def _tridiagonal_rule(size, args, batched):
    # The system runs along axis 0 and every trailing index is independent: put the mapped
    # axis second, solve, and put it first again.
    xs = _bcast_all(size, args, batched)
    nd = len(shape(xs[0]))
    perm = (1, 0) + tuple(range(2, nd))
    xs = [bind(P["transpose"], x, permutation=perm) for x in xs]
    out = bind(P["tridiagonal_solve"], *xs)
    return [bind(P["transpose"], out, permutation=perm)], [True]



def _dot_rule(size, args, batched, *, dimension_numbers, preferred_dtype=None):
    lhs, rhs = args
    lb_, rb_ = batched
    (lc, rc), (lb, rb) = dimension_numbers
    up = lambda t: tuple(i + 1 for i in t)  # noqa: E731
    if lb_ and rb_:
        dn = ((up(lc), up(rc)), ((0,) + up(lb), (0,) + up(rb)))
        return [bind(P["dot_general"], lhs, rhs, dimension_numbers=dn,
                     preferred_dtype=preferred_dtype)], [True]
    if lb_:
        dn = ((up(lc), tuple(rc)), (up(lb), tuple(rb)))
        out = bind(P["dot_general"], lhs, rhs, dimension_numbers=dn,
                   preferred_dtype=preferred_dtype)
        # lhs free dims follow the batch dims, and the mapped axis is lhs's first free dim.
        return [moveaxis(out, len(lb), 0)], [True]
    dn = ((tuple(lc), up(rc)), (tuple(lb), up(rb)))
    out = bind(P["dot_general"], lhs, rhs, dimension_numbers=dn, preferred_dtype=preferred_dtype)
    n_lfree = ndim(lhs) - len(lc) - len(lb)
    return [moveaxis(out, len(lb) + n_lfree, 0)], [True]


# ---------------------------------------------------------------------------------------------
# Rules: indexing


def _norm_index(idx, n):
    """Indices wrapped once and clamped into [0, n), the semantics of take/scatter_add."""
    zero = np.zeros((), abstractify(idx).dtype)
    wrapped = bind(P["select"], bind(P["lt"], idx, zero), bind(P["add"], idx, zero + n), idx)
    lo, hi = zero, zero + max(n - 1, 0)
    return bind(P["minimum"], bind(P["maximum"], wrapped, lo), hi)


def _flat_batch_index(idx, size, n):
    """Global row indices into an operand whose batch and indexed axes were merged."""
    idx = _norm_index(idx, n)
    d = abstractify(idx).dtype
    base = bind(P["iota"], shape=(size,) + shape(idx)[1:], dtype=d, dimension=0)
    return bind(P["add"], idx, bind(P["mul"], base, np.asarray(n, d)))


def _take_rule(size, args, batched, *, axis):
    x, idx = args
    bx, bi = batched
    nd = ndim(x) - bx
    axis = axis % nd
    if bx and not bi:
        return [bind(P["take"], x, idx, axis=axis + 1)], [True]
    if bi and not bx:
        out = bind(P["take"], x, idx, axis=axis)
        return [moveaxis(out, axis, 0)], [True]
    # Both batched: merge the batch axis with the indexed axis and offset the indices.
    n = shape(x)[axis + 1]
    xm = moveaxis(x, axis + 1, 1)
    rest = shape(xm)[2:]
    flat = reshape(xm, (size * n,) + rest)
    out = bind(P["take"], flat, _flat_batch_index(idx, size, n), axis=0)
    # out: (size, *idx_shape, *pre, *post) -> (size, *pre, *idx_shape, *post)
    ni = ndim(idx) - 1
    perm = [0] + list(range(1 + ni, 1 + ni + axis)) + list(range(1, 1 + ni)) + list(
        range(1 + ni + axis, ndim(out)))
    return [bind(P["transpose"], out, permutation=tuple(perm))], [True]


def _scatter_add_rule(size, args, batched, *, axis):
    x, idx, upd = args
    bx, bi, bu = batched
    nd = ndim(x) - bx
    axis = axis % nd
    if not bi:
        x = x if bx else broadcast_batch(x, size)
        upd = upd if bu else broadcast_batch(upd, size)
        return [bind(P["scatter_add"], x, idx, upd, axis=axis + 1)], [True]
    x = x if bx else broadcast_batch(x, size)
    upd = upd if bu else broadcast_batch(upd, size)
    n = shape(x)[axis + 1]
    xm = moveaxis(x, axis + 1, 1)
    rest = shape(xm)[2:]
    flat = reshape(xm, (size * n,) + rest)
    ni = ndim(idx) - 1
    # upd: (size, *pre, *idx_shape, *post) -> (size, *idx_shape, *pre, *post)
    perm = [0] + list(range(1 + axis, 1 + axis + ni)) + list(range(1, 1 + axis)) + list(
        range(1 + axis + ni, ndim(upd)))
    u = bind(P["transpose"], upd, permutation=tuple(perm))
    out = bind(P["scatter_add"], flat, _flat_batch_index(idx, size, n), u, axis=0)
    out = reshape(out, (size, n) + rest)
    return [moveaxis(out, 1, axis + 1)], [True]


def _dynamic_slice_rule(size, args, batched, *, sizes):
    x, starts = args[0], args[1:]
    if not any(batched[1:]):
        zero = np.zeros((), abstractify(starts[0]).dtype if starts else np.int64)
        return [bind(P["dynamic_slice"], x, zero, *starts, sizes=(size,) + tuple(sizes))], [True]
    # Batched starts: gather each dimension's window with take (clamped like dynamic_slice).
    x = x if batched[0] else broadcast_batch(x, size)
    for d, (s, bs, k) in enumerate(zip(starts, batched[1:], sizes)):
        n = shape(x)[d + 1]
        idx = _window_index(s, bs, k, n, size)
        (x,), _ = _take_rule(size, [x, idx], [True, True], axis=d)
    return [x], [True]


def _window_index(start, b, k, n, size):
    d = abstractify(start).dtype
    start = bind(P["minimum"], bind(P["maximum"], start, np.zeros((), d)), np.asarray(n - k, d))
    start = start if b else broadcast_batch(start, size)
    ar = bind(P["iota"], shape=(size, k), dtype=d, dimension=1)
    return bind(P["add"], ar, reshape(start, (size, 1)))


def _dynamic_update_slice_rule(size, args, batched):
    x, upd, starts = args[0], args[1], args[2:]
    if not any(batched[2:]):
        x = x if batched[0] else broadcast_batch(x, size)
        upd = upd if batched[1] else broadcast_batch(upd, size)
        zero = np.zeros((), abstractify(starts[0]).dtype if starts else np.int64)
        return [bind(P["dynamic_update_slice"], x, upd, zero, *starts)], [True]
    # Batched starts: one update per example (a batched scatter would need a "set" primitive).
    outs = []
    for i in range(size):
        pick = [_index0(v, i) if b else v for v, b in zip(args, batched)]
        outs.append(reshape(bind(P["dynamic_update_slice"], *pick), (1,) + shape(pick[0])))
    return [bind(P["concatenate"], *outs, axis=0) if size > 1 else outs[0]], [True]


def _index0(v, i):
    s = shape(v)
    sl = bind(P["slice"], v, start=(i,) + (0,) * (len(s) - 1), limit=(i + 1,) + s[1:],
              strides=(1,) * len(s))
    return reshape(sl, s[1:])


# ---------------------------------------------------------------------------------------------
# Rules: control flow


_ACTIVE_CALLS: set = set()


def _call_rule(size, args, batched, *, graph):
    if id(graph) in _ACTIVE_CALLS:
        raise UnsupportedError(f"vmap: graph function {graph.name!r} is recursive; batching "
                               "recursive graph functions is not supported (write it as a loop)")
    _ACTIVE_CALLS.add(id(graph))
    try:
        new, flags = batch_graph(graph, batched, size)
    finally:
        _ACTIVE_CALLS.discard(id(graph))
    outs = bind(P["call"], *args, graph=new)
    return list(outs), flags


def _cond_rule(size, args, batched, *, branches):
    index, ops = args[0], args[1:]
    flags = batched[1:]
    if not batched[0]:
        graphs, oflags = _batch_branches(branches, flags, size)
        return list(bind(P["cond"], index, *ops, branches=tuple(graphs))), oflags
    # A batched predicate: every branch runs on the whole batch, then select per example.
    results = [batch_eval(b, list(ops), flags, size) for b in branches]
    idx = index
    if abstractify(index).dtype == np.bool_:
        pick = [bind(P["not"], idx), idx]
    else:
        d = abstractify(index).dtype
        clamp = bind(P["minimum"], bind(P["maximum"], idx, np.zeros((), d)),
                     np.asarray(len(branches) - 1, d))
        pick = [bind(P["eq"], clamp, np.asarray(i, d)) for i in range(len(branches))]
    outs = []
    for j in range(len(results[0][0])):
        acc = _ensure(results[-1][0][j], results[-1][1][j], size)
        for (vals, fl), p in zip(reversed(results[:-1]), reversed(pick[:-1])):
            v = _ensure(vals[j], fl[j], size)
            acc = bind(P["select"], _lift(p, ndim(v) - 1), v, acc)
        outs.append(acc)
    return outs, [True] * len(outs)


def _ensure(x, b, size):
    return x if b else broadcast_batch(x, size)


def _batch_branches(branches, flags, size):
    """Batch every branch; where branches disagree on an output, all of them batch it."""
    graphs, fls = zip(*[batch_graph(b, flags, size) for b in branches])
    union = [any(col) for col in zip(*fls)]
    return [_force_plain(g, fl, union, size) for g, fl in zip(graphs, fls)], union


def _force_outputs(graph, have, want, size):
    def run(*xs):
        outs = inline(graph, list(xs))
        return [broadcast_batch(o, size) if w and not h else o
                for o, h, w in zip(outs, have, want)]

    g, _, _ = trace_flat(run, graph.in_avals, graph.name)
    return g


def _carry_fixpoint(body, carry_flags, other_flags, size, prefix=0):
    """Batch a loop body so that every carry batched on the way in is batched on the way out
    (iterate: a carry that becomes batched in the body must enter batched too)."""
    carry = list(carry_flags)
    for _ in range(len(carry) + 1):
        ins = [False] * prefix + carry + list(other_flags)
        g, outs = batch_graph(body, ins, size)
        new = [a or b for a, b in zip(carry, outs[:len(carry)])]
        if new == carry:
            want = carry + list(outs[len(carry):])
            return _force_plain(g, outs, want, size), carry, want[len(carry):]
        carry = new
    raise AssertionError("carry fixpoint did not converge")


def _force_plain(g, have, want, size):
    if list(have) == list(want):
        return g
    return _force_outputs(g, have, want, size)


def _while_rule(size, args, batched, *, cond_graph, body_graph, num_carry, num_cond_captures,
                max_steps=None):
    nc = num_cond_captures
    carry, cc, bc = args[:num_carry], args[num_carry:num_carry + nc], args[num_carry + nc:]
    fc, fcc, fbc = batched[:num_carry], batched[num_carry:num_carry + nc], batched[
        num_carry + nc:]
    body, cflags, _ = _carry_fixpoint(body_graph, fc, fbc, size)
    cgraph, (pred_b,) = batch_graph(cond_graph, cflags + list(fcc), size)
    if pred_b:
        # The predicate differs between examples: every carry is batched and masked.
        cflags = [True] * num_carry
        body, _, _ = _carry_fixpoint(body_graph, cflags, fbc, size)
        cgraph, _ = batch_graph(cond_graph, cflags + list(fcc), size)
    carry = [_ensure(c, b, size) if want else c for c, b, want in zip(carry, fc, cflags)]
    if not pred_b:
        outs = bind(P["while_loop"], *carry, *cc, *bc, cond_graph=cgraph, body_graph=body,
                    num_carry=num_carry, num_cond_captures=nc, max_steps=max_steps)
        return list(outs), cflags
    return _masked_while(carry, cc, bc, cgraph, body, max_steps), cflags


def _masked_while(carry, cc, bc, cgraph, body, max_steps):
    # The loop runs while any example's predicate holds; finished examples keep their carry
    # (select on the per-example predicate), so each example sees exactly its own trip count.
    n, nc = len(carry), len(cc)
    avals = [abstractify(c) for c in list(carry) + list(cc) + list(bc)]

    def any_cond(*xs):
        (p,) = inline(cgraph, list(xs))
        as_int = bind(P["convert"], p, new_dtype=np.dtype("int32"))
        return bind(P["gt"], bind(P["reduce_max"], as_int, axes=(0,), keepdims=False),
                    np.zeros((), np.int32))

    def masked_body(*xs):
        c, ccap, bcap = list(xs[:n]), list(xs[n:n + nc]), list(xs[n + nc:])
        (p,) = inline(cgraph, c + ccap)
        new = inline(body, c + bcap)
        return [bind(P["select"], _lift(p, ndim(v) - 1), v, o) for v, o in zip(new, c)]

    cg, _, _ = trace_flat(any_cond, avals[:n + nc], "cond")
    bg, _, _ = trace_flat(masked_body, avals, "body")
    outs = bind(P["while_loop"], *carry, *cc, *cc, *bc, cond_graph=cg, body_graph=bg,
                num_carry=n, num_cond_captures=nc, max_steps=max_steps)
    return list(outs)


def _fori_rule(size, args, batched, *, body, num_carry):
    lower, upper = args[:2]
    if batched[0] or batched[1]:
        return _fori_as_while(size, args, batched, body, num_carry)
    carry, caps = args[2:2 + num_carry], args[2 + num_carry:]
    fc, fcap = batched[2:2 + num_carry], batched[2 + num_carry:]
    g, cflags, _ = _carry_fixpoint(body, fc, fcap, size, prefix=1)
    carry = [_ensure(c, b, size) if want else c for c, b, want in zip(carry, fc, cflags)]
    outs = bind(P["fori_loop"], lower, upper, *carry, *caps, body=g, num_carry=num_carry)
    return list(outs), cflags


def _fori_as_while(size, args, batched, body, num_carry):
    """Batched trip counts: the loop becomes a while_loop on (i, *carry) with the bound as a
    captured value, which the while rule masks per example."""
    lower, upper = args[:2]
    carry, caps = list(args[2:2 + num_carry]), list(args[2 + num_carry:])
    i_aval = body.in_avals[0].strong()
    c_avals = [i_aval] + body.in_avals[1:1 + num_carry]
    cap_avals = body.in_avals[1 + num_carry:]
    u_aval = abstractify(upper).strong().update(shape=())

    def cond(i, *rest):
        return bind(P["lt"], i, bind(P["convert"], rest[-1], new_dtype=i_aval.dtype))

    def step(i, *rest):
        c, cp = list(rest[:num_carry]), list(rest[num_carry:])
        one = np.ones((), i_aval.dtype)
        return [bind(P["add"], i, one)] + inline(body, [i] + c + cp)

    cg, _, _ = trace_flat(cond, c_avals + [u_aval], "cond")
    bg, _, _ = trace_flat(step, c_avals + cap_avals, "body")
    lo = bind(P["convert"], lower, new_dtype=i_aval.dtype)
    outs, flags = _while_rule(size, [lo] + carry + [upper] + caps,
                              [batched[0]] + list(batched[2:2 + num_carry]) + [batched[1]] +
                              list(batched[2 + num_carry:]),
                              cond_graph=cg, body_graph=bg, num_carry=num_carry + 1,
                              num_cond_captures=1)
    return outs[1:], flags[1:]


def _scan_rule(size, args, batched, *, body, length, num_carry, num_xs, reverse=False):
    carry, xs = args[:num_carry], args[num_carry:num_carry + num_xs]
    caps = args[num_carry + num_xs:]
    fc, rest = batched[:num_carry], batched[num_carry:]
    fx = batched[num_carry:num_carry + num_xs]
    g, cflags, yflags = _carry_fixpoint(body, fc, rest, size)
    carry = [_ensure(c, b, size) if want else c for c, b, want in zip(carry, fc, cflags)]
    # The scan axis must lead: batched xs are (size, length, ...) -> (length, size, ...).
    xs = [moveaxis(x, 0, 1) if b else x for x, b in zip(xs, fx)]
    res = bind(P["scan"], *carry, *xs, *caps, body=g, length=length, num_carry=num_carry,
               num_xs=num_xs, reverse=reverse)
    ys = [moveaxis(y, 1, 0) if b else y for y, b in zip(res[num_carry:], yflags)]
    return list(res[:num_carry]) + ys, cflags + list(yflags)


# ---------------------------------------------------------------------------------------------
# Rules: FFT, dense linear algebra, random numbers


def _fft_rule(prim):
    def rule(size, args, batched, **params):
        (x,) = args
        nd = ndim(x) - 1
        params = dict(params, axes=tuple(int(a) % nd + 1 for a in params["axes"]))
        return [bind(prim, x, **params)], [True]

    return rule


def _stack_rule(prim):
    # Dense linear algebra works on stacks of matrices (leading batch dims, the same for every
    # operand), so the mapped axis is one more leading batch dimension.
    def rule(size, args, batched, **params):
        out = bind(prim, *_bcast_all(size, args, batched), **params)
        outs = list(out) if prim.multiple_results else [out]
        return outs, [True] * len(outs)

    return rule


def _unrolled_rule(prim):
    # No vectorised form (random keys drive whole streams): one node per example, stacked.
    def rule(size, args, batched, **params):
        per = []
        for i in range(size):
            out = bind(prim, *[_index0(v, i) if b else v for v, b in zip(args, batched)],
                       **params)
            per.append(list(out) if prim.multiple_results else [out])
        outs = [bind(P["concatenate"], *[reshape(o, (1,) + shape(o)) for o in col], axis=0)
                if size > 1 else reshape(col[0], (1,) + shape(col[0])) for col in zip(*per)]
        return outs, [True] * len(outs)

    return rule


def _lazy_unrolled(name):
    def rule(size, args, batched, **params):
        return _unrolled_rule(P[name])(size, args, batched, **params)

    return rule


# ---------------------------------------------------------------------------------------------
# The table


def _register():
    for name, prim in PRIMITIVES.items():
        if "elementwise" in prim.tags:
            BATCH_RULES[name] = _elementwise_rule(prim)
    for name in ("reduce_sum", "reduce_prod", "reduce_max", "reduce_min", "argmax", "argmin"):
        BATCH_RULES[name] = _reduce_rule(P[name])
    for name in ("cumsum", "sort", "argsort"):
        BATCH_RULES[name] = _axis_rule(P[name])
    BATCH_RULES.update({
        "broadcast_in_dim": _bid_rule, "reshape": _reshape_rule, "transpose": _transpose_rule,
        "rev": _rev_rule, "slice": _slice_rule, "pad": _pad_rule, "shift": _shift_rule,
        "concatenate": _concat_rule, "dot_general": _dot_rule, "take": _take_rule,
        "scatter_add": _scatter_add_rule, "dynamic_slice": _dynamic_slice_rule,
        "dynamic_update_slice": _dynamic_update_slice_rule, "call": _call_rule,
        "cond": _cond_rule, "while_loop": _while_rule, "fori_loop": _fori_rule,
        "scan": _scan_rule, "tridiagonal_solve": _tridiagonal_rule,
        "im2col": _window_rule("im2col"), "col2im": _window_rule("col2im"),
    })
    for name, prim in PRIMITIVES.items():
        if prim.family == "fft":
            BATCH_RULES[name] = _fft_rule(prim)
        elif prim.family == "linalg" and name != "dot_general":
            BATCH_RULES[name] = _stack_rule(prim)
        elif prim.family == "random":
            BATCH_RULES[name] = _unrolled_rule(prim)
    # The linear map of a custom_vjp function (declared by autodiff.custom) exists only to be
    # transposed; batched, it is applied per example.
    BATCH_RULES.setdefault("custom_vjp_lin", _lazy_unrolled("custom_vjp_lin"))


# iota has no operands, so it is never batched; listed so the table check sees it handled.
NEVER_BATCHED = {"iota"}

_register()
