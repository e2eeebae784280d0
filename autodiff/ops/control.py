"""Control flow: call, cond, while_loop, fori_loop and scan hold subgraphs in their params.

Conventions (every subgraph is closed; captured free variables come last):

- ``call[graph]``: inputs = graph parameters.
- ``cond[branches]``: inputs = (index_or_pred, *operands, *captures); every branch takes
  (*operands, *captures) and returns the same avals. A bool predicate picks ``branches[1]`` when
  true (``branches = (false_branch, true_branch)``); an integer index is clamped into range.
- ``while_loop[cond_graph, body_graph, num_carry, num_cond_captures, max_steps]``:
  inputs = (*init, *cond_captures, *body_captures).
- ``fori_loop[body]``: inputs = (lower, upper, *init, *captures); body takes (i, *carry, *captures).
- ``scan[body, length, num_carry, num_xs, reverse]``: inputs = (*init, *xs, *captures); body takes
  (*carry, *x_slices, *captures) and returns (*carry, *y_slices); ys are stacked on axis 0.

The user-facing functions (``cond``, ``while_loop``, ``fori_loop``, ``scan``, ``graph_function``)
trace Python callables into these nodes when a trace is active and run plain Python otherwise.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import ArityError, DTypeError, ShapeError, TracerError
from ..ir import AbstractValue, Graph
from ..primitives import def_primitive
from ..pytree import tree_flatten, tree_unflatten
from ..trace import Tracer, abstractify, bind, is_tracing, trace_flat


def _check_args(name: str, graph: Graph, avals, start: int = 0):
    want = graph.in_avals[start:start + len(avals)] if start or len(avals) != len(
        graph.params) else graph.in_avals
    if len(want) != len(avals):
        raise ArityError(f"{name}: graph {graph.name} takes {len(graph.params)} inputs, "
                         f"got {len(avals)}")
    for i, (w, a) in enumerate(zip(want, avals)):
        if w.shape != a.shape or w.dtype != a.dtype:
            raise ShapeError(f"{name}: input {i} of graph {graph.name} is {w}, got {a}")


def _interp():
    from ..interpret import eval_graph_flat

    return eval_graph_flat


# ---------------------------------------------------------------------------------------------
# call


def _call_rule(*avals, graph):
    _check_args("call", graph, avals)
    return tuple(graph.out_avals)


def _call_impl(*args, graph):
    try:
        return tuple(_interp()(graph, args))
    except RecursionError as e:
        if str(e).startswith("call:"):
            raise
        raise RecursionError(
            f"call: graph {graph.name!r} recursed deeper than the interpreter allows (Python's "
            "recursion limit): its base case is not reached for these arguments (check the cond "
            "that should stop it), or the depth needs an iterative sciml.while_loop"
        ) from None


call_p = def_primitive("call", _call_rule, _call_impl, multiple_results=True, family="control")


# ---------------------------------------------------------------------------------------------
# cond


def _cond_rule(index, *avals, branches):
    if index.shape != ():
        raise ShapeError(f"cond: the predicate/index must be a scalar, got {index}")
    if not (index.dtype == np.bool_ or dtypes.is_integer(index.dtype)):
        raise DTypeError(f"cond: the predicate must be bool or an integer index, got {index}")
    if index.dtype == np.bool_ and len(branches) != 2:
        raise ArityError(f"cond: a bool predicate needs 2 branches, got {len(branches)}")
    outs = branches[0].out_avals
    for b in branches:
        _check_args("cond", b, avals)
        if [(o.shape, o.dtype) for o in b.out_avals] != [(o.shape, o.dtype) for o in outs]:
            raise ShapeError(
                f"cond: branches return different types: {[str(o) for o in outs]} vs "
                f"{[str(o) for o in b.out_avals]}"
            )
    return tuple(o.strong() if not all(b.out_avals[i].weak for b in branches) else o
                 for i, o in enumerate(outs))


def _cond_impl(index, *args, branches):
    i = int(index)
    i = min(max(i, 0), len(branches) - 1)
    return tuple(_interp()(branches[i], args))


cond_p = def_primitive("cond", _cond_rule, _cond_impl, multiple_results=True, family="control")


# ---------------------------------------------------------------------------------------------
# while_loop


def _while_rule(*avals, cond_graph, body_graph, num_carry, num_cond_captures, max_steps=None):
    carry = avals[:num_carry]
    ccap = avals[num_carry:num_carry + num_cond_captures]
    bcap = avals[num_carry + num_cond_captures:]
    _check_args("while_loop (cond)", cond_graph, list(carry) + list(ccap))
    _check_args("while_loop (body)", body_graph, list(carry) + list(bcap))
    (p,) = cond_graph.out_avals
    if p.shape != () or p.dtype != np.bool_:
        raise DTypeError(f"while_loop: cond_fun must return a bool scalar, got {p}")
    _check_carry("while_loop", carry, body_graph.out_avals)
    return tuple(c.strong() for c in carry)


def _check_carry(name, carry, outs):
    if len(outs) != len(carry):
        raise ArityError(f"{name}: body returns {len(outs)} carry values, expected {len(carry)}")
    for i, (c, o) in enumerate(zip(carry, outs)):
        if c.shape != o.shape or c.dtype != o.dtype:
            raise ShapeError(
                f"{name}: carry {i} enters the body as {c} but leaves it as {o}; the body must "
                "keep each carry's shape and dtype"
            )


def _while_impl(*args, cond_graph, body_graph, num_carry, num_cond_captures, max_steps=None):
    ev = _interp()
    carry = list(args[:num_carry])
    ccap = list(args[num_carry:num_carry + num_cond_captures])
    bcap = list(args[num_carry + num_cond_captures:])
    steps = 0
    while bool(ev(cond_graph, carry + ccap)[0]):
        if max_steps is not None and steps >= max_steps:
            break
        carry = list(ev(body_graph, carry + bcap))
        steps += 1
    return tuple(carry)


while_p = def_primitive("while_loop", _while_rule, _while_impl, multiple_results=True,
                        family="control")


# ---------------------------------------------------------------------------------------------
# fori_loop


def _fori_rule(lower, upper, *avals, body, num_carry):
    for name, b in (("lower", lower), ("upper", upper)):
        if b.shape != () or not dtypes.is_integer(b.dtype):
            raise DTypeError(f"fori_loop: {name} bound must be an integer scalar, got {b}")
    carry = avals[:num_carry]
    caps = avals[num_carry:]
    _check_args("fori_loop (body)", body, [lower.strong()] + list(carry) + list(caps))
    _check_carry("fori_loop", carry, body.out_avals)
    return tuple(c.strong() for c in carry)


def _fori_impl(lower, upper, *args, body, num_carry):
    ev = _interp()
    carry = list(args[:num_carry])
    caps = list(args[num_carry:])
    for i in range(int(lower), int(upper)):
        carry = list(ev(body, [np.asarray(i, lower.dtype)] + carry + caps))
    return tuple(carry)


fori_p = def_primitive("fori_loop", _fori_rule, _fori_impl, multiple_results=True,
                       family="control")


# ---------------------------------------------------------------------------------------------
# scan


def _scan_rule(*avals, body, length, num_carry, num_xs, reverse=False):
    carry = avals[:num_carry]
    xs = avals[num_carry:num_carry + num_xs]
    caps = avals[num_carry + num_xs:]
    for i, x in enumerate(xs):
        if x.ndim == 0 or x.shape[0] != length:
            raise ShapeError(f"scan: xs[{i}] has shape {x.shape}, expected leading axis {length}")
    x_slices = [x.update(shape=x.shape[1:]) for x in xs]
    _check_args("scan (body)", body, list(carry) + x_slices + list(caps))
    outs = body.out_avals
    _check_carry("scan", carry, outs[:num_carry])
    ys = [y.update(shape=(length,) + y.shape) for y in outs[num_carry:]]
    return tuple(c.strong() for c in carry) + tuple(ys)


def _scan_impl(*args, body, length, num_carry, num_xs, reverse=False):
    ev = _interp()
    carry = list(args[:num_carry])
    xs = args[num_carry:num_carry + num_xs]
    caps = list(args[num_carry + num_xs:])
    ys = []
    order = range(length - 1, -1, -1) if reverse else range(length)
    for t in order:
        out = ev(body, carry + [x[t] for x in xs] + caps)
        carry = list(out[:num_carry])
        ys.append(out[num_carry:])
    if reverse:
        ys.reverse()
    y_avals = body.out_avals[num_carry:]
    stacked = [
        np.stack([y[j] for y in ys]) if ys else np.zeros((0,) + a.shape, a.dtype)
        for j, a in enumerate(y_avals)
    ]
    return tuple(carry) + tuple(stacked)


scan_p = def_primitive("scan", _scan_rule, _scan_impl, multiple_results=True, family="control")


# ---------------------------------------------------------------------------------------------
# Tracing helpers


class PendingRecursion(Exception):
    """Raised while probing a recursive graph function whose result type is not known yet."""


_PROBING = [0]


def _trace_branch(fn, avals, name):
    """Trace ``fn`` into a closed graph; returns (graph, captured values, out_tree)."""
    return trace_flat(fn, avals, name)


def _unify_captures(graphs_caps):
    """Give every graph the union of all captured values as trailing parameters."""
    from ..ir import Var

    union: list = []
    pos: dict[int, int] = {}
    for _, caps in graphs_caps:
        for c in caps:
            if id(c) not in pos:
                pos[id(c)] = len(union)
                union.append(c)
    out = []
    for g, caps in graphs_caps:
        n_explicit = len(g.params) - len(caps)
        mine = {id(c): v for c, v in zip(caps, g.params[n_explicit:])}
        extra = [mine.get(id(c)) or Var(c.aval) for c in union]
        out.append(Graph(g.params[:n_explicit] + extra, g.body, g.outputs, g.name))
    return [g for g in out], union


def _join_out_avals(name, avals_per_branch):
    """Common result avals of branches: weak scalars follow the strong type of the others."""
    n = {len(a) for a in avals_per_branch}
    if len(n) != 1:
        raise ArityError(f"{name}: branches return different numbers of values")
    joined = []
    for i, column in enumerate(zip(*avals_per_branch)):
        shapes = {a.shape for a in column}
        if len(shapes) != 1:
            raise ShapeError(
                f"{name}: output {i} has different shapes in different branches: "
                f"{[str(a) for a in column]}"
            )
        d, weak = dtypes.result_type(*[(a.dtype, a.weak) for a in column])
        joined.append(AbstractValue(column[0].shape, d, weak))
    return joined


def _cast_outputs(fn, target_avals):
    from ..lax import convert_element_type

    def wrapped(*args):
        out = fn(*args)
        leaves, tree = tree_flatten(out)
        cast = [
            convert_element_type(x, t.dtype) if abstractify(x).dtype != t.dtype else x
            for x, t in zip(leaves, target_avals)
        ]
        return tree_unflatten(tree, cast)

    return wrapped


def cond(pred, true_fun, false_fun, *operands):
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, traced as a ``cond``.

    >>> cond(True, lambda x: x + 1, lambda x: x - 1, 1.0)
    2.0
    """
    return switch(pred, [false_fun, true_fun], *operands)


def switch(index, branches, *operands):
    """Apply ``branches[index](*operands)``; the index is clamped into range."""
    if not is_tracing() and not isinstance(index, Tracer):
        i = int(np.asarray(index))
        return branches[min(max(i, 0), len(branches) - 1)](*operands)
    leaves, in_tree = tree_flatten(operands)
    avals = [abstractify(x) for x in leaves]
    idx_aval = abstractify(index)
    if idx_aval.dtype == np.bool_ and len(branches) != 2:
        raise ArityError("cond: a bool predicate selects between exactly two branches")
    if idx_aval.shape != ():
        raise ShapeError(f"cond: the predicate must be a scalar, got {idx_aval}")
    fns = [_flat(b, in_tree) for b in branches]
    traced, out_tree = _trace_branches(fns, avals)
    graphs, caps = _unify_captures([(g, c) for g, c in traced])
    outs = bind(cond_p, index, *leaves, *caps, branches=tuple(graphs))
    return tree_unflatten(out_tree, outs)


def _flat(fn, in_tree):
    def flat(*xs):
        return fn(*tree_unflatten(in_tree, xs))

    return flat


def _trace_branches(fns, avals):
    results, pending = [], []
    for i, fn in enumerate(fns):
        try:
            results.append(trace_flat(fn, avals, f"branch{i}"))
        except PendingRecursion:
            if not _PROBING[0]:
                raise
            pending.append(i)
            results.append(None)
    done = [r for r in results if r is not None]
    if not done:
        raise PendingRecursion()
    trees = {r[2] for r in done}
    if len(trees) != 1:
        raise ArityError(f"cond: branches return different structures: {sorted(map(str, trees))}")
    out_tree = done[0][2]
    target = _join_out_avals("cond", [r[0].out_avals for r in done])
    traced = []
    for i, r in enumerate(results):
        if r is None:  # probing: stand in with a traced branch; the probe graph is discarded
            r = done[0]
        elif [(a.dtype) for a in r[0].out_avals] != [t.dtype for t in target]:
            r = trace_flat(_cast_outputs(fns[i], target), avals, f"branch{i}")
        traced.append((r[0], r[1]))
    return traced, out_tree


def while_loop(cond_fun, body_fun, init_val, max_steps: int | None = None):
    """Repeat ``val = body_fun(val)`` while ``cond_fun(val)``; ``max_steps`` bounds the trip count
    (needed for reverse-mode differentiation)."""
    if not is_tracing():
        val, steps = init_val, 0
        while bool(np.asarray(cond_fun(val))):
            if max_steps is not None and steps >= max_steps:
                break
            val, steps = body_fun(val), steps + 1
        return val
    leaves, tree = tree_flatten(init_val)
    avals = [abstractify(x).strong() if not isinstance(x, Tracer) else x.aval for x in leaves]
    cg, ccaps, ctree = trace_flat(_flat1(cond_fun, tree), avals, "cond")
    bg, bcaps, btree = trace_flat(_flat1(body_fun, tree), avals, "body")
    _check_tree("while_loop", tree, btree)
    bg, bcaps = _fix_carry("while_loop", body_fun, tree, avals, bg, bcaps)
    outs = bind(while_p, *leaves, *ccaps, *bcaps, cond_graph=cg, body_graph=bg,
                num_carry=len(leaves), num_cond_captures=len(ccaps), max_steps=max_steps)
    return tree_unflatten(tree, outs)


def _flat1(fn, tree):
    def flat(*xs):
        return fn(tree_unflatten(tree, xs))

    return flat


def _check_tree(name, tree, out_tree):
    if tree != out_tree:
        raise ArityError(f"{name}: the body returns structure {out_tree}, the carry is {tree}")


def _fix_carry(name, body_fun, tree, avals, bg, bcaps, prefix=0, wrap=None):
    """Cast weak body outputs to the carry dtype (``x + 1.0`` keeps a float32 carry float32)."""
    outs = bg.out_avals[prefix:prefix + len(avals)] if prefix else bg.out_avals[:len(avals)]
    if all(o.dtype == a.dtype for o, a in zip(outs, avals)):
        return bg, bcaps
    for i, (o, a) in enumerate(zip(outs, avals)):
        if o.dtype != a.dtype and not (o.weak or dtypes.kind_rank(o.dtype) <= dtypes.kind_rank(
                a.dtype)):
            raise ShapeError(
                f"{name}: carry {i} enters the body as {a} but leaves it as {o}; convert it "
                f"(e.g. .astype({a.dtype})) or start the loop with a {o.dtype} value"
            )
    return None, None  # caller retraces with casts


def fori_loop(lower, upper, body_fun, init_val):
    """``for i in range(lower, upper): val = body_fun(i, val)``, traced as a ``fori_loop``."""
    if not is_tracing() and not isinstance(lower, Tracer) and not isinstance(upper, Tracer):
        val = init_val
        for i in range(int(lower), int(upper)):
            val = body_fun(np.int64(i) if isinstance(lower, int) else lower.dtype.type(i), val)
        return val
    from ..lax import as_index

    lower, upper = as_index(lower, "fori_loop lower bound"), as_index(upper, "fori_loop upper")
    leaves, tree = tree_flatten(init_val)
    avals = [abstractify(x).strong() if not isinstance(x, Tracer) else x.aval for x in leaves]
    i_aval = abstractify(lower).strong()

    def body(i, *xs):
        return body_fun(i, tree_unflatten(tree, xs))

    g, caps, otree = trace_flat(body, [i_aval] + avals, "body")
    _check_tree("fori_loop", tree, otree)
    if any(o.dtype != a.dtype for o, a in zip(g.out_avals, avals)):
        _fix_carry("fori_loop", body_fun, tree, avals, g, caps)
        g, caps, _ = trace_flat(_cast_outputs(body, avals), [i_aval] + avals, "body")
    outs = bind(fori_p, lower, upper, *leaves, *caps, body=g, num_carry=len(leaves))
    return tree_unflatten(tree, outs)


def scan(f, init, xs=None, length: int | None = None, reverse: bool = False):
    """JAX's scan: ``carry, y = f(carry, x)`` over the leading axis of ``xs``; returns
    ``(carry, stacked ys)``."""
    x_leaves, x_tree = tree_flatten(xs)
    lengths = {abstractify(x).shape[0] for x in x_leaves if abstractify(x).ndim}
    if length is None:
        if len(lengths) != 1:
            raise ShapeError(f"scan: xs have leading axes {sorted(lengths)}; give length=")
        length = lengths.pop()
    elif lengths and lengths != {length}:
        raise ShapeError(f"scan: length={length} but xs have leading axes {sorted(lengths)}")
    if not is_tracing():
        return _scan_eager(f, init, xs, x_leaves, x_tree, length, reverse)
    c_leaves, c_tree = tree_flatten(init)
    c_avals = [abstractify(x).strong() if not isinstance(x, Tracer) else x.aval for x in c_leaves]
    x_avals = [abstractify(x) for x in x_leaves]
    for i, a in enumerate(x_avals):
        if a.ndim == 0:
            raise ShapeError(f"scan: xs leaf {i} is a scalar; scan needs a leading axis")
    slice_avals = [a.update(shape=a.shape[1:]) for a in x_avals]
    holder = {}

    def body(*args):
        carry = tree_unflatten(c_tree, args[:len(c_avals)])
        x = tree_unflatten(x_tree, args[len(c_avals):])
        new_carry, y = f(carry, x)
        nc_leaves, nc_tree = tree_flatten(new_carry)
        _check_tree("scan", c_tree, nc_tree)
        y_leaves, holder["y_tree"] = tree_flatten(y)
        return tuple(nc_leaves) + tuple(y_leaves)

    g, caps, _ = trace_flat(body, c_avals + slice_avals, "body")
    if any(o.dtype != a.dtype for o, a in zip(g.out_avals, c_avals)):
        _fix_carry("scan", f, c_tree, c_avals, g, caps)
        nys = len(g.out_avals) - len(c_avals)
        target = c_avals + g.out_avals[len(c_avals):len(c_avals) + nys]
        g, caps, _ = trace_flat(_cast_outputs(body, target), c_avals + slice_avals, "body")
    outs = bind(scan_p, *c_leaves, *x_leaves, *caps, body=g, length=int(length),
                num_carry=len(c_leaves), num_xs=len(x_leaves), reverse=bool(reverse))
    carry = tree_unflatten(c_tree, outs[:len(c_leaves)])
    ys = tree_unflatten(holder["y_tree"], outs[len(c_leaves):])
    return carry, ys


def _scan_eager(f, init, xs, x_leaves, x_tree, length, reverse):
    from ..pytree import tree_map

    carry, ys = init, []
    order = range(length - 1, -1, -1) if reverse else range(length)
    for t in order:
        x = tree_unflatten(x_tree, [np.asarray(leaf)[t] for leaf in x_leaves])
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys:
        return carry, None
    stacked = tree_map(lambda *a: np.stack([np.asarray(v) for v in a]), *ys)
    return carry, stacked


# ---------------------------------------------------------------------------------------------
# Graph functions: named, cached per signature, possibly recursive


class GraphFunction:
    """A Python function traced once per input signature into a named graph and applied with
    ``call``. It may call itself (recursion) through ``cond`` branches.

    >>> @graph_function
    ... def fact(n):
    ...     return cond(n <= 1, lambda: n * 0 + 1, lambda: n * fact(n - 1))
    >>> fact(5)
    120
    """

    def __init__(self, fn, name=None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "fn")
        self.graphs: dict = {}
        self._active: dict = {}
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args):
        if not is_tracing():
            return self.fn(*args)
        leaves, tree = tree_flatten(args)
        avals = tuple(abstractify(x).strong() for x in leaves)
        key = (tree, avals)
        graph, out_tree = self._graph_for(key, tree, avals)
        outs = bind(call_p, *leaves, graph=graph)
        return tree_unflatten(out_tree, outs)

    def _graph_for(self, key, tree, avals):
        if key in self.graphs:
            return self.graphs[key]
        if key in self._active:
            placeholder, out_tree = self._active[key]
            if out_tree is None:
                raise PendingRecursion()
            return placeholder, out_tree
        from ..ir import Var

        out_tree, out_avals = self._probe(key, tree, avals)
        # The placeholder has the right signature so recursive calls type-check; its body is
        # filled in (same object) once the trace is done.
        placeholder = Graph([Var(a) for a in avals], [], [Var(a) for a in out_avals], self.name)
        self._active[key] = (placeholder, out_tree)
        try:
            g, caps, out_tree2 = trace_flat(_flat(self.fn, tree), list(avals), self.name,
                                            allow_capture=False)
        finally:
            del self._active[key]
        placeholder.params, placeholder.body, placeholder.outputs = g.params, g.body, g.outputs
        # A graph traced while another graph function is probing may hold stand-in branches
        # (mutual recursion): use it for the probe but do not keep it.
        if not _PROBING[0]:
            self.graphs[key] = (placeholder, out_tree2)
        return placeholder, out_tree2

    def _probe(self, key, tree, avals):
        """Trace once with recursive calls pending, to learn the result types."""
        self._active[key] = (None, None)
        _PROBING[0] += 1
        try:
            g, _, out_tree = trace_flat(_flat(self.fn, tree), list(avals), self.name,
                                        allow_capture=False)
        except PendingRecursion:
            raise TracerError(
                f"graph function {self.name!r} recurses on every path; it needs a base case "
                "reached through sciml.cond"
            ) from None
        finally:
            _PROBING[0] -= 1
            del self._active[key]
        return out_tree, [a.strong() for a in g.out_avals]


def graph_function(fn=None, *, name=None):
    """Decorator: trace ``fn`` as a named graph applied through ``call`` (see GraphFunction)."""
    if fn is None:
        return lambda f: GraphFunction(f, name)
    return GraphFunction(fn, name)
