"""The differentiation API (JAX's names and signatures), on pytrees, eager or nested in a trace.

Each function traces the user's function into a Graph, transforms the graph (``jvp_graph``,
``linearize_graph``, ``transpose_graph``, ``vjp_graph``; passes run after each transform) and
evaluates the result with ``bind``: on concrete arrays that is eager numpy, on Tracers it
records into the enclosing trace, so transforms nest to any order (``grad(grad(f))``,
``jacfwd(jacrev(f))``) and ``make_graph(grad(f), x)`` is an ordinary graph.

Eager calls cache the transformed graph per function and input signature (shapes, dtypes,
pytree structure), so a loop calling ``grad(f)(x)`` traces once. Constants the function reads
from globals are baked into the cached graph: rebind a new function if they change.

>>> import numpy as np, sciml
>>> float(grad(lambda x: x ** 3)(2.0))
12.0
>>> jvp(np.sin, (0.0,), (2.0,))
(array(0.), array(2.))
"""

from __future__ import annotations

import weakref

import numpy as np

from . import dtypes
from . import lax as L
from .errors import ArityError, DTypeError, NotDifferentiableError, ShapeError
from .jvp import has_tangent, jvp_graph
from .pytree import tree_flatten, tree_unflatten
from .trace import Tracer, abstractify, is_tracing, trace_flat
from .transpose import eval_in_trace, linearize_graph, transpose_graph, vjp_graph

__all__ = ["jvp", "vjp", "grad", "value_and_grad", "jacfwd", "jacrev", "hessian", "hvp",
           "linearize"]


# ---------------------------------------------------------------------------------------------
# Tracing user functions (cached per signature for eager calls)


class _Traced:
    """A traced function: graph, captured outer values, pytree structures."""

    def __init__(self, graph, captured, in_tree, out_tree):
        self.graph, self.captured = graph, list(captured)
        self.in_tree, self.out_tree = in_tree, out_tree
        self.derived: dict = {}  # transform key -> transformed graph


_TRACE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _trace(f, args, what: str) -> _Traced:
    leaves, in_tree = tree_flatten(tuple(args))
    avals = tuple(abstractify(x) for x in leaves)
    cacheable = not is_tracing() and not any(isinstance(x, Tracer) for x in leaves)
    key = (in_tree, avals, _closure_key(f))
    if cacheable:
        try:
            hit = _TRACE_CACHE.get(f, {}).get(key)
        except TypeError:
            hit = None
        if hit is not None:
            return hit

    def flat(*xs):
        return f(*tree_unflatten(in_tree, xs))

    graph, captured, out_tree = trace_flat(flat, list(avals), getattr(f, "__name__", what))
    traced = _Traced(graph, captured, in_tree, out_tree)
    if cacheable:
        try:
            _TRACE_CACHE.setdefault(f, {})[key] = traced
        except TypeError:
            pass
    return traced


def _closure_key(f):
    cells = getattr(f, "__closure__", None) or ()
    out = []
    for c in cells:
        try:
            out.append(id(c.cell_contents))
        except ValueError:
            out.append(None)
    return tuple(out)


def _run(graph, args) -> list:
    """Evaluate ``graph`` through ``bind``: eager on arrays, recorded inside a trace. Eager
    results are arrays of the graph's output dtypes (also where an input passes through)."""
    outs = eval_in_trace(graph, args)
    return [o if isinstance(o, Tracer) else np.asarray(o, a.dtype)
            for o, a in zip(outs, graph.out_avals)]


def _derived(t: _Traced, key, make):
    if key not in t.derived:
        t.derived[key] = make()
    return t.derived[key]


def _check_float_output(name, aval):
    if aval.shape != ():
        raise ShapeError(f"{name}: the function must return a scalar, got an array {aval}; "
                         "use jacrev/jacfwd or vjp for non-scalar outputs")
    if not has_tangent(aval) or dtypes.is_complex(aval.dtype):
        raise DTypeError(f"{name}: the function must return a real float scalar, got {aval}")


# ---------------------------------------------------------------------------------------------
# Forward mode


def jvp(f, primals, tangents):
    """``(f(*primals), J(primals) @ tangents)`` for pytrees of arrays (forward mode)."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise ArityError("jvp: primals and tangents must be tuples (one entry per argument)")
    p_leaves, p_tree = tree_flatten(tuple(primals))
    t_leaves, t_tree = tree_flatten(tuple(tangents))
    if p_tree != t_tree:
        raise ArityError(f"jvp: primals have structure {p_tree} but tangents {t_tree}")
    for i, (p, t) in enumerate(zip(p_leaves, t_leaves)):
        pa, ta = abstractify(p), abstractify(t)
        if pa.shape != ta.shape:
            raise ShapeError(f"jvp: tangent {i} has shape {ta.shape}, its primal {pa.shape}")
    tr = _trace(f, primals, "jvp")
    nc = len(tr.captured)
    nz = tuple(has_tangent(abstractify(p)) for p in p_leaves) + (False,) * nc
    jg = _derived(tr, ("jvp", nz), lambda: jvp_graph(tr.graph, nz, instantiate=True,
                                                         optimized=True)[0])
    ts = [L.convert_element_type(t, abstractify(p).strong().dtype)
          for p, t, z in zip(p_leaves, t_leaves, nz) if z]
    res = _run(jg, list(p_leaves) + tr.captured + ts)
    n_out = len(tr.graph.outputs)
    return tree_unflatten(tr.out_tree, res[:n_out]), tree_unflatten(tr.out_tree, res[n_out:])


def linearize(f, *primals):
    """``(f(*primals), f_jvp)`` where ``f_jvp(*tangents)`` applies the linearised function,
    reusing the primal computation (residuals) for every call."""
    tr = _trace(f, primals, "linearize")
    p_leaves, _ = tree_flatten(tuple(primals))
    wrt = tuple(has_tangent(abstractify(p)) for p in p_leaves) + (False,) * len(tr.captured)
    known, lin, nres = _derived(tr, ("lin", wrt), lambda: linearize_graph(tr.graph, wrt))
    n_out = len(tr.graph.outputs)
    vals = _run(known, list(p_leaves) + tr.captured)
    outs, res = vals[:n_out], vals[n_out:]

    def f_jvp(*tangents):
        t_leaves, _ = tree_flatten(tuple(tangents))
        ts = [t for t, w in zip(t_leaves, wrt) if w]
        return tree_unflatten(tr.out_tree, _run(lin, res + ts))

    return tree_unflatten(tr.out_tree, outs), f_jvp


# ---------------------------------------------------------------------------------------------
# Reverse mode


def vjp(f, *primals, has_aux: bool = False):
    """``(f(*primals), vjp_fn)``: ``vjp_fn(cotangent)`` returns one cotangent per primal.

    Residuals of the primal computation are computed once and reused by every ``vjp_fn`` call.
    Integer inputs get zero cotangents.
    """
    tr = _trace(f, primals, "vjp")
    p_leaves, p_tree = tree_flatten(tuple(primals))
    wrt = tuple(has_tangent(abstractify(p)) for p in p_leaves) + (False,) * len(tr.captured)
    known, lin, nres = _derived(tr, ("lin", wrt), lambda: linearize_graph(tr.graph, wrt))
    tg = _derived(tr, ("T", wrt), lambda: transpose_graph(lin, [False] * nres + [True] * sum(
        wrt), optimized=True))
    n_out = len(tr.graph.outputs)
    vals = _run(known, list(p_leaves) + tr.captured)
    outs, res = vals[:n_out], vals[n_out:]
    out = tree_unflatten(tr.out_tree, outs)
    out_avals = [a.strong() for a in tr.graph.out_avals]
    n_main = n_out
    if has_aux:
        out, aux = out
        n_main = len(tree_flatten(out)[0])

    def vjp_fn(ct):
        c_leaves, c_tree = tree_flatten(ct)
        if len(c_leaves) != n_main:
            raise ArityError(f"vjp_fn: the cotangent has {len(c_leaves)} leaves, the output "
                             f"{n_main}")
        cts = [_ct(c, a, i) for i, (c, a) in enumerate(zip(c_leaves, out_avals))]
        cts += [np.zeros(a.shape, a.dtype) for a in out_avals[n_main:]]
        got = iter(_run(tg, res + cts))
        grads = [next(got) if w else np.zeros(abstractify(p).shape, abstractify(p).dtype)
                 for p, w in zip(p_leaves, wrt)]
        return tree_unflatten(p_tree, grads)

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _ct(c, aval, i):
    a = abstractify(c)
    if a.shape != aval.shape:
        raise ShapeError(f"vjp_fn: cotangent {i} has shape {a.shape}, the output {aval}")
    return L.convert_element_type(c, aval.dtype) if a.dtype != aval.dtype else c


def value_and_grad(f, argnums=0, has_aux: bool = False):
    """``(f(*args), gradient of f with respect to args[argnums])`` for a real scalar f."""

    def vg(*args):
        nums = _argnums(argnums, len(args), "value_and_grad")
        tr = _trace(f, args, "grad")
        wrt = _wrt(args, nums, len(tr.captured))
        out_avals = tr.graph.out_avals
        _check_float_output("grad", out_avals[0])
        vg_graph = _derived(tr, ("vjp", wrt), lambda: vjp_graph(tr.graph, wrt))
        leaves, _ = tree_flatten(tuple(args))
        cts = [np.ones((), out_avals[0].dtype)] + [np.zeros(a.shape, a.dtype)
                                                  for a in out_avals[1:]]
        res = _run(vg_graph, list(leaves) + tr.captured + cts)
        n_out = len(out_avals)
        out = tree_unflatten(tr.out_tree, res[:n_out])
        grads = _regroup(args, nums, res[n_out:], argnums)
        if has_aux:
            value, aux = out
            return (value, aux), grads
        return out, grads

    vg.__name__ = f"value_and_grad_{getattr(f, '__name__', 'f')}"
    return vg


def grad(f, argnums=0, has_aux: bool = False):
    """The gradient of a real scalar function (reverse mode), with JAX's signature.

    >>> import numpy as np, sciml
    >>> grad(lambda x, y: (x * y).sum(), argnums=(0, 1))(np.ones(2), np.arange(2.0))
    (array([0., 1.]), array([1., 1.]))
    """
    vg = value_and_grad(f, argnums, has_aux)

    def g(*args):
        (value, aux), grads = vg(*args) if has_aux else ((None, None), vg(*args)[1])
        return (grads, aux) if has_aux else grads

    g.__name__ = f"grad_{getattr(f, '__name__', 'f')}"
    return g


def _argnums(argnums, n, name):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not -n <= a < n:
            raise ArityError(f"{name}: argnums {argnums} out of range for {n} arguments")
    return tuple(a % n for a in nums)


def _wrt(args, nums, n_captured):
    mask = []
    for i, a in enumerate(args):
        leaves, _ = tree_flatten(a)
        for leaf in leaves:
            av = abstractify(leaf)
            if i in nums and not has_tangent(av):
                raise NotDifferentiableError(
                    f"grad: argument {i} has dtype {av.dtype}; gradients are defined for float "
                    "(and complex) inputs only. Convert it (x.astype(float)) or leave it out of "
                    "argnums")
            mask.append(i in nums)
    return tuple(mask) + (False,) * n_captured


def _regroup(args, nums, flat_grads, argnums):
    it = iter(flat_grads)
    per_arg = []
    for i in nums:
        leaves, tree = tree_flatten(args[i])
        per_arg.append(tree_unflatten(tree, [next(it) for _ in leaves]))
    return per_arg[0] if isinstance(argnums, int) else tuple(per_arg)


# ---------------------------------------------------------------------------------------------
# Jacobians and Hessians (batched with vmap)


def _vmap(fn, in_axes=0):
    from .batching import vmap

    return vmap(fn, in_axes=in_axes)


def jacfwd(f, argnums=0, has_aux: bool = False):
    """The Jacobian by forward mode: one JVP per input direction, batched with ``vmap``.

    Result leaves have shape ``out.shape + in.shape`` (JAX's layout).
    """
    return _jacobian(f, argnums, has_aux, forward=True)


def jacrev(f, argnums=0, has_aux: bool = False):
    """The Jacobian by reverse mode: one VJP per output direction, batched with ``vmap``."""
    return _jacobian(f, argnums, has_aux, forward=False)


def _eager_cached(fn):
    """``fn`` traced once per input signature when called on concrete arrays (the trace, with
    its vmap and inner transforms, is the costly part); called as is inside a trace."""

    def wrapped(*args):
        leaves, _ = tree_flatten(tuple(args))
        if is_tracing() or any(isinstance(x, Tracer) for x in leaves):
            return fn(*args)
        tr = _trace(fn, args, getattr(fn, "__name__", "f"))
        return tree_unflatten(tr.out_tree, _run(tr.graph, list(leaves)))

    return wrapped


def _jacobian(f, argnums, has_aux, forward):
    def jac(*args):
        nums = _argnums(argnums, len(args), "jacfwd" if forward else "jacrev")
        sel = tuple(args[i] for i in nums)
        in_leaves, in_tree = tree_flatten(sel)
        for leaf in in_leaves:
            av = abstractify(leaf)
            if not has_tangent(av):
                raise NotDifferentiableError(
                    f"{'jacfwd' if forward else 'jacrev'}: input of dtype {av.dtype} has no "
                    "derivative; only float inputs can be differentiated")

        def g(*xs):
            full = list(args)
            for i, x in zip(nums, xs):
                full[i] = x
            return f(*full)

        build = _jac_fwd if forward else _jac_rev
        o_tree, per_out, aux = build(g, sel, in_leaves, in_tree, has_aux)
        if isinstance(argnums, int):
            per_out = [p[0] for p in per_out]
        res = tree_unflatten(o_tree, per_out)
        return (res, aux) if has_aux else res

    jac.__name__ = f"{'jacfwd' if forward else 'jacrev'}_{getattr(f, '__name__', 'f')}"
    return _eager_cached(jac)


def _sizes(leaves):
    return [int(np.prod(abstractify(x).shape, dtype=np.int64)) for x in leaves]


def _split_vec(v, leaves):
    """Split a flat vector into pieces shaped like ``leaves``."""
    out, off = [], 0
    for leaf, n in zip(leaves, _sizes(leaves)):
        a = abstractify(leaf)
        piece = L.getitem(v, slice(off, off + n))
        out.append(L.convert_element_type(L.reshape(piece, a.shape), a.dtype))
        off += n
    return out


def _flat_vec(leaves, dtype):
    parts = [L.reshape(L.convert_element_type(x, dtype), (-1,)) for x in leaves]
    return parts[0] if len(parts) == 1 else L.concatenate(parts, 0)


def _basis(n, dtype):
    return np.eye(n, dtype=dtype)


def _common_dtype(leaves):
    return np.result_type(*[abstractify(x).dtype for x in leaves])


def _jac_fwd(g, sel, in_leaves, in_tree, has_aux):
    n = sum(_sizes(in_leaves))
    dtype = _common_dtype(in_leaves)
    holder = {}

    def push(v):
        ts = tree_unflatten(in_tree, _split_vec(v, in_leaves))
        out, tout = jvp(lambda *xs: _main(g, xs, has_aux, holder), sel, ts)
        return tout

    touts = _vmap(push)(_basis(n, dtype))  # leaves (n, *out.shape)
    aux = holder.get("aux")
    o_leaves, o_tree = tree_flatten(touts)
    per_out = []
    for t in o_leaves:
        oshape = abstractify(t).shape[1:]
        moved = L.transpose(t, tuple(range(1, len(oshape) + 1)) + (0,))  # (*out, n)
        per_out.append(tuple(_unflat_in(moved, oshape, in_leaves, in_tree)))
    return o_tree, per_out, aux


def _unflat_in(moved, oshape, in_leaves, in_tree):
    """Split the trailing flat input axis into per-argument blocks shaped out + in."""
    off, blocks = 0, []
    for leaf, sz in zip(in_leaves, _sizes(in_leaves)):
        idx = (slice(None),) * len(oshape) + (slice(off, off + sz),)
        blk = L.getitem(moved, idx)
        blocks.append(L.reshape(blk, oshape + abstractify(leaf).shape))
        off += sz
    return tree_unflatten(in_tree, blocks)


def _main(g, xs, has_aux, holder):
    out = g(*xs)
    if has_aux:
        out, holder["aux"] = out
    return out


def _jac_rev(g, sel, in_leaves, in_tree, has_aux):
    holder = {}
    out, vjp_fn = vjp(lambda *xs: _main(g, xs, has_aux, holder), *sel)
    o_leaves, o_tree = tree_flatten(out)
    m_sizes = _sizes(o_leaves)
    m = sum(m_sizes)
    dtype = np.result_type(*[abstractify(o).dtype for o in o_leaves])

    def pull(c):
        cts = tree_unflatten(o_tree, _split_vec(c, o_leaves))
        grads = vjp_fn(cts)  # tuple over selected args
        g_leaves, _ = tree_flatten(grads)
        return _flat_vec(g_leaves, dtype)

    rows = _vmap(pull)(_basis(m, dtype))  # (m, n)
    per_out, off = [], 0
    for o, sz in zip(o_leaves, m_sizes):
        oshape = abstractify(o).shape
        blk = L.getitem(rows, slice(off, off + sz))
        off += sz
        per_out.append(tuple(_unflat_in(L.reshape(blk, oshape + (abstractify(blk).shape[1],)),
                                        oshape, in_leaves, in_tree)))
    return o_tree, per_out, holder.get("aux")


def hessian(f, argnums=0):
    """``jacfwd(jacrev(f))``: the Hessian of a real scalar function."""
    return jacfwd(jacrev(f, argnums), argnums)


def hvp(f, primals, tangents):
    """Hessian-vector product by forward-over-reverse: ``jvp(grad(f), primals, tangents)``.

    ``primals`` and ``tangents`` are tuples (one entry per argument of f), or a single array
    each for a function of one argument; returns the tangent of the gradient.

    >>> import numpy as np, sciml
    >>> hvp(lambda x: np.sum(x ** 3), np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    array([6., 0.])
    """
    if not isinstance(primals, tuple):
        primals, tangents = (primals,), (tangents,)
    nargs = len(primals)
    gf = grad(f, argnums=tuple(range(nargs)))
    _, t = jvp(gf, tuple(primals), tuple(tangents))
    return t[0] if nargs == 1 else t
