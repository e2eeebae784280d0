"""Reverse mode = linearize + transpose.

``partial_eval(graph, unknown)`` splits a graph into a *known* part (computable from the known
inputs) and an *unknown* part; the known values the unknown part reads are its *residuals*.
Applied to a JVP graph with the tangents unknown, the known part is the primal computation and
the unknown part is linear in the tangents: that is ``linearize``. ``transpose_graph`` runs the
known part forward and walks the linear part backwards with ``TRANSPOSE_RULES``, accumulating
cotangents. ``vjp_graph`` composes the two.

Control flow: ``cond`` transposes each branch; ``scan`` is split into a primal scan that stacks
the residuals of every step and a linear scan, whose transpose is a scan in the other direction;
``fori_loop`` with constant bounds and ``while_loop`` with ``max_steps`` become scans first;
``while_loop`` without ``max_steps`` raises NotDifferentiableError. A ``checkpoint`` node keeps no
residuals but its inputs: its transpose recomputes the primal values.

>>> import numpy as np, sciml
>>> from autodiff.trace import make_graph
>>> from autodiff.interpret import eval_graph_flat
>>> g = make_graph(lambda x: (np.sin(x) * x).sum(), np.ones(3))
>>> vg = vjp_graph(g)  # (x, cotangent of the output) -> (output, gradient)
>>> out, gx = eval_graph_flat(vg, [np.zeros(3), np.float64(1.0)])
>>> gx
array([0., 0., 0.])
"""

from __future__ import annotations

import numpy as np

from . import dtypes
from . import lax as L
from .errors import NotDifferentiableError, UnsupportedError
from .ir import Apply, Const, Graph, Var
from .jvp import GraphMemo, _dce, has_tangent, jvp_graph, optimize
from .primitives import PRIMITIVES
from .trace import bind, trace_flat

P = PRIMITIVES
TRANSPOSE_RULES: dict = {}
# Partial-evaluation rules for nodes that hold subgraphs and mix known and unknown inputs.
PE_RULES: dict = {}


class LinearIn:
    """Stands for a linear input of a node being transposed (its value is never needed)."""

    __slots__ = ("aval",)

    def __init__(self, aval):
        self.aval = aval


def is_linear(x) -> bool:
    return isinstance(x, LinearIn)


def deftranspose(*names):
    def register(rule):
        for n in names:
            TRANSPOSE_RULES[n] = rule
        return rule

    return register


# ---------------------------------------------------------------------------------------------
# Partial evaluation


def partial_eval(graph: Graph, unknown, instantiate=False):
    """Split ``graph`` by which inputs are unknown.

    Returns ``(known, unk, out_unknown, num_res)``: ``known`` takes the known inputs and returns
    the known outputs followed by ``num_res`` residuals; ``unk`` takes ``(*residuals, *unknown
    inputs)`` and returns the unknown outputs. ``instantiate`` (bool or per output) forces
    outputs into ``unk`` even when they are known (passed through as residuals).
    """
    n_out = len(graph.outputs)
    inst = [bool(instantiate)] * n_out if isinstance(instantiate, bool) else list(instantiate)
    # Memoised: loop fixed points and nested checkpoints split the same subgraph repeatedly.
    key = (tuple(bool(u) for u in unknown), tuple(inst))
    hit = _PE_CACHE.get(graph, key)
    if hit is not None:
        return hit
    return _PE_CACHE.put(graph, key, _partial_eval(graph, unknown, inst))


_PE_CACHE = GraphMemo()


def _partial_eval(graph, unknown, inst):
    unk_ids = {p.id for p, u in zip(graph.params, unknown) if u}
    known_body, unk_body = [], []
    for node in _flatten_calls(graph.body):
        in_unk = [isinstance(a, Var) and a.id in unk_ids for a in node.inputs]
        if not any(in_unk):
            known_body.append(node)
            continue
        rule = PE_RULES.get(node.prim.name)
        if rule is None:
            unk_body.append(node)
            unk_ids.update(o.id for o in node.outputs)
            continue
        kn, un, out_unk = rule(node, in_unk)
        known_body += kn
        unk_body += un
        unk_ids.update(o.id for o, u in zip(node.outputs, out_unk) if u)
    out_unk = [(isinstance(o, Var) and o.id in unk_ids) or i for o, i in zip(graph.outputs, inst)]
    residuals = _residuals(unk_body, graph.outputs, out_unk, unk_ids)
    known = Graph([p for p, u in zip(graph.params, unknown) if not u], known_body,
                  [o for o, u in zip(graph.outputs, out_unk) if not u] + residuals,
                  f"{graph.name}_known")
    unk = Graph(residuals + [p for p, u in zip(graph.params, unknown) if u], unk_body,
                [o for o, u in zip(graph.outputs, out_unk) if u], f"{graph.name}_lin")
    return known, unk, out_unk, len(residuals)


def _residuals(unk_body, outputs, out_unk, unk_ids):
    seen, res = set(), []

    def add(a):
        if isinstance(a, Var) and a.id not in unk_ids and a.id not in seen:
            seen.add(a.id)
            res.append(a)

    for node in unk_body:
        for a in node.inputs:
            add(a)
    for o, u in zip(outputs, out_unk):
        if u:
            add(o)
    return res


def _flatten_calls(body):
    """Inline ``call`` nodes (with fresh variables) so their insides split like the rest."""
    for node in body:
        if node.prim.name == "call":
            yield from _flatten_calls(inline_copy(node.params["graph"], node.inputs,
                                                  node.outputs))
        else:
            yield node


def inline_copy(graph: Graph, in_atoms, out_vars):
    """The nodes of ``graph`` with fresh variables, reading ``in_atoms``, writing ``out_vars``."""
    env = {p.id: a for p, a in zip(graph.params, in_atoms)}
    final = {}
    for o, v in zip(graph.outputs, out_vars):
        if isinstance(o, Var) and o.id not in final and o.id not in env:
            final[o.id] = v
    nodes = []
    for node in graph.body:
        outs = tuple(final.get(o.id) or Var(o.aval) for o in node.outputs)
        env.update((o.id, n) for o, n in zip(node.outputs, outs))
        ins = tuple(env.get(a.id, a) if isinstance(a, Var) else a for a in node.inputs)
        nodes.append(Apply(node.prim, ins, dict(node.params), outs, node.source))
    # Outputs that are inputs, constants or repeated need an explicit copy.
    for o, v in zip(graph.outputs, out_vars):
        src = env.get(o.id, o) if isinstance(o, Var) else o
        if src is not v:
            nodes.append(_copy_node(src, v))
    return nodes


def _copy_node(src, dst: Var) -> Apply:
    # x + 0 is the identity for every dtype that reaches here; simplify removes it.
    zero = Const(np.zeros((), dst.aval.dtype), dst.aval.update(shape=(), weak=False))
    return Apply(P["add"], (src, zero), {}, (dst,), None)


# ---------------------------------------------------------------------------------------------
# Evaluating graphs inside a trace


def eval_in_trace(graph: Graph, args) -> list:
    """Replay ``graph``'s nodes with ``bind`` (records into the current trace)."""
    env = {p.id: a for p, a in zip(graph.params, args)}

    def read(a):
        return a.value if isinstance(a, Const) else env[a.id]

    for node in graph.body:
        out = bind(node.prim, *[read(a) for a in node.inputs], **node.params)
        outs = out if node.prim.multiple_results else (out,)
        env.update((v.id, o) for v, o in zip(node.outputs, outs))
    return [read(o) for o in graph.outputs]


# ---------------------------------------------------------------------------------------------
# Transposition


def backward_pass(lin: Graph, nonlin_args, cts_out, linear_mask):
    """Cotangents of the linear parameters of ``lin`` given output cotangents.

    ``nonlin_args`` are values of the non-linear parameters (in order); ``linear_mask`` marks
    the linear parameters. Runs in the current trace.
    """
    env: dict[int, object] = {}
    lin_ids = set()
    it = iter(nonlin_args)
    for p, m in zip(lin.params, linear_mask):
        if m:
            lin_ids.add(p.id)
        else:
            env[p.id] = next(it)
    # Non-linear nodes (reading only non-linear values) run forward first.
    lin_nodes = []
    for node in lin.body:
        if any(isinstance(a, Var) and a.id in lin_ids for a in node.inputs):
            lin_ids.update(o.id for o in node.outputs)
            lin_nodes.append(node)
        else:
            out = bind(node.prim, *[_val(env, a) for a in node.inputs], **node.params)
            outs = out if node.prim.multiple_results else (out,)
            env.update((v.id, o) for v, o in zip(node.outputs, outs))
    ct_env: dict[int, object] = {}
    for o, ct in zip(lin.outputs, cts_out):
        if isinstance(o, Var) and o.id in lin_ids and ct is not None:
            _accum(ct_env, o, ct)
    for node in reversed(lin_nodes):
        cts = [ct_env.pop(o.id, None) for o in node.outputs]
        if all(c is None for c in cts):
            continue
        _transpose_node(node, cts, env, lin_ids, ct_env)
    return [ct_env.get(p.id) for p, m in zip(lin.params, linear_mask) if m]


def _val(env, a):
    return a.value if isinstance(a, Const) else env[a.id]


def _accum(ct_env, v, ct):
    ct = _cast(ct, v.aval)
    ct_env[v.id] = ct if v.id not in ct_env else L.add(ct_env[v.id], ct)


def _cast(ct, aval):
    a = L.aval(ct)
    if a.dtype != aval.dtype:
        ct = L.convert_element_type(ct, aval.dtype)
    if a.shape != aval.shape:
        ct = L.broadcast_to(ct, aval.shape)
    return ct


def _transpose_node(node, cts, env, lin_ids, ct_env):
    rule = TRANSPOSE_RULES.get(node.prim.name)
    if rule is None:
        raise NotDifferentiableError(
            f"transpose: primitive {node.prim.name!r} is not linear in its tangent inputs and "
            f"has no transpose rule (at {node.source or 'unknown line'}); reverse mode through "
            "it is not supported"
        )
    args = [LinearIn(a.aval) if isinstance(a, Var) and a.id in lin_ids else _val(env, a)
            for a in node.inputs]
    ct_arg = cts if node.prim.multiple_results else cts[0]
    in_cts = rule(ct_arg, *args, **node.params)
    for a, ct in zip(node.inputs, in_cts):
        if ct is not None and isinstance(a, Var) and a.id in lin_ids:
            _accum(ct_env, a, ct)


_T_CACHE = GraphMemo()


def transpose_graph(graph: Graph, linear_mask, optimized: bool = False) -> Graph:
    """A graph ``(*non-linear inputs, *output cotangents) -> cotangents of the linear inputs``.

    ``graph`` must be linear in the inputs marked by ``linear_mask``; values computed from the
    other inputs only are recomputed forward first. Zero cotangents are materialised.
    ``optimized=True`` runs the passes on the result (the outermost transform does).
    """
    mask = tuple(bool(m) for m in linear_mask)
    key = (mask, optimized)
    hit = _T_CACHE.get(graph, key)
    if hit is not None:
        return hit
    known, lin, out_unk, nres = partial_eval(graph, mask)
    lin_avals = [a for a, m in zip(graph.in_avals, mask) if m]
    nonlin_avals = [a for a, m in zip(graph.in_avals, mask) if not m]
    ct_avals = [a.strong() for a in graph.out_avals]

    def fn(*args):
        nonlin, cts = args[:len(nonlin_avals)], args[len(nonlin_avals):]
        res = eval_in_trace(known, list(nonlin))[len(known.outputs) - nres:]
        lin_cts = [c for c, u in zip(cts, out_unk) if u]
        got = backward_pass(lin, res, lin_cts, [False] * nres + [True] * len(lin_avals))
        return [np.zeros(a.shape, a.dtype) if g is None else g for g, a in zip(got, lin_avals)]

    g, captured, _ = trace_flat(fn, nonlin_avals + ct_avals, f"transpose_{graph.name}")
    assert not captured
    g = optimize(g) if optimized else _dce(g)
    _T_CACHE.put(graph, key, g)
    return g


def linearize_graph(graph: Graph, wrt=None):
    """``(primal, linear, num_res)``: ``primal`` maps inputs to ``(*outputs, *residuals)``;
    ``linear`` maps ``(*residuals, *tangents of wrt inputs)`` to output tangents."""
    wrt = _wrt_mask(graph, wrt)
    jg, _ = jvp_graph(graph, wrt, instantiate=True, optimized=False)
    n_in, n_out = len(graph.params), len(graph.outputs)
    unknown = [False] * n_in + [True] * sum(wrt)
    inst = [False] * n_out + [True] * n_out
    known, lin, out_unk, nres = partial_eval(jg, unknown, instantiate=inst)
    if any(out_unk[:n_out]):
        raise UnsupportedError(f"linearize: outputs of {graph.name} depend on tangents")
    return _dce(known), lin, nres


def _wrt_mask(graph, wrt):
    if wrt is None:
        wrt = [True] * len(graph.params)
    mask = []
    for i, (w, a) in enumerate(zip(wrt, graph.in_avals)):
        if w and not has_tangent(a):
            raise NotDifferentiableError(
                f"differentiation with respect to input {i} of {graph.name}, which has dtype "
                f"{a.dtype}: only float and complex inputs have derivatives (convert it to a "
                "float dtype, or exclude it from argnums)"
            )
        mask.append(bool(w))
    return mask


def vjp_graph(graph: Graph, wrt=None) -> Graph:
    """A graph ``(*inputs, *output cotangents) -> (*outputs, *input cotangents for wrt)``."""
    wrt = _wrt_mask(graph, wrt)
    known, lin, nres = linearize_graph(graph, wrt)
    n_out = len(graph.outputs)
    ct_avals = [a.strong() for a in graph.out_avals]

    def fn(*args):
        xs, cts = args[:len(graph.params)], args[len(graph.params):]
        vals = eval_in_trace(known, list(xs))
        outs, res = vals[:n_out], vals[n_out:]
        got = backward_pass(lin, res, list(cts), [False] * nres + [True] * sum(wrt))
        grads = [np.zeros(a.shape, a.dtype) if g is None else g
                 for g, a in zip(got, [a for a, w in zip(graph.in_avals, wrt) if w])]
        return list(outs) + grads

    g, captured, _ = trace_flat(fn, list(graph.in_avals) + ct_avals, f"vjp_{graph.name}")
    assert not captured
    return optimize(g)


# ---------------------------------------------------------------------------------------------
# Transpose rules of the linear primitives


def unbroadcast(ct, aval):
    """Sum ``ct`` down to the operand shape ``aval.shape`` (the transpose of broadcasting)."""
    cs = L.aval(ct).shape
    if cs == aval.shape:
        return _dtype(ct, aval)
    lead = len(cs) - len(aval.shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(aval.shape) if s == 1 and cs[lead + i] != 1)
    if axes:
        ct = bind(P["reduce_sum"], ct, axes=axes, keepdims=False)
    return _dtype(L.reshape(ct, aval.shape), aval)


def _dtype(ct, aval):
    return ct if L.aval(ct).dtype == aval.dtype else L.convert_element_type(ct, aval.dtype)


@deftranspose("add")
def _t_add(ct, x, y):
    return [unbroadcast(ct, x.aval) if is_linear(x) else None,
            unbroadcast(ct, y.aval) if is_linear(y) else None]


@deftranspose("sub")
def _t_sub(ct, x, y):
    return [unbroadcast(ct, x.aval) if is_linear(x) else None,
            unbroadcast(L.neg(ct), y.aval) if is_linear(y) else None]


@deftranspose("neg")
def _t_neg(ct, x):
    return [L.neg(ct)]


@deftranspose("mul")
def _t_mul(ct, x, y):
    if is_linear(x) and is_linear(y):
        raise NotDifferentiableError("transpose: mul of two tangent values is not linear")
    if is_linear(x):
        return [unbroadcast(L.mul(ct, y), x.aval), None]
    return [None, unbroadcast(L.mul(x, ct), y.aval)]


@deftranspose("div")
def _t_div(ct, x, y):
    if is_linear(y):
        raise NotDifferentiableError("transpose: div by a tangent value is not linear")
    return [unbroadcast(L.div(ct, y), x.aval), None]


@deftranspose("convert")
def _t_convert(ct, x, *, new_dtype):
    if not has_tangent(x.aval):
        return [None]
    return [bind(P["convert"], ct, new_dtype=x.aval.dtype)]


@deftranspose("real")
def _t_real(ct, x):
    return [bind(P["convert"], ct, new_dtype=x.aval.dtype)]


@deftranspose("imag")
def _t_imag(ct, x):
    # imag(x) = Re(-i x): the transpose maps ct to -i ct (and to zero for real x).
    if not dtypes.is_complex(x.aval.dtype):
        return [np.zeros(x.aval.shape, x.aval.dtype)]
    c = bind(P["convert"], ct, new_dtype=x.aval.dtype)
    return [L.mul(c, np.asarray(-1j, x.aval.dtype))]


@deftranspose("conj")
def _t_conj(ct, x):
    return [L.unary("conj", ct)]


@deftranspose("reduce_sum")
def _t_reduce_sum(ct, x, *, axes, keepdims=False):
    from .jvp import _expand_reduced

    return [_dtype(_expand_reduced(ct, x.aval.shape, tuple(axes), keepdims), x.aval)]


@deftranspose("cumsum")
def _t_cumsum(ct, x, *, axis, reverse=False):
    return [bind(P["cumsum"], ct, axis=axis, reverse=not reverse)]


@deftranspose("broadcast_in_dim")
def _t_bid(ct, x, *, shape, broadcast_dimensions):
    dims = tuple(broadcast_dimensions)
    summed = tuple(d for d in range(len(shape)) if d not in dims) + tuple(
        d for i, d in enumerate(dims) if x.aval.shape[i] == 1 and shape[d] != 1)
    if summed:
        ct = bind(P["reduce_sum"], ct, axes=tuple(sorted(summed)), keepdims=False)
    return [L.reshape(ct, x.aval.shape)]


@deftranspose("reshape")
def _t_reshape(ct, x, *, new_shape):
    return [L.reshape(ct, x.aval.shape)]


@deftranspose("transpose")
def _t_transpose(ct, x, *, permutation):
    inv = tuple(int(i) for i in np.argsort(permutation))
    return [bind(P["transpose"], ct, permutation=inv)]


@deftranspose("rev")
def _t_rev(ct, x, *, axes):
    return [bind(P["rev"], ct, axes=axes)]


@deftranspose("slice")
def _t_slice(ct, x, *, start, limit, strides=None):
    shape = x.aval.shape
    strides = strides or (1,) * len(shape)
    # One axis at a time: unit strides pad, larger strides scatter into zeros.
    for ax, (s, e, st) in enumerate(zip(start, limit, strides)):
        cur = L.aval(ct).shape
        if st == 1:
            pw = tuple((s, shape[ax] - e) if i == ax else (0, 0) for i in range(len(shape)))
            if any(a or b for a, b in pw):
                ct = bind(P["pad"], ct, pad_width=pw, mode="constant", value=0.0)
        else:
            idx = np.arange(s, e, st, dtype=np.int64)[:cur[ax]]
            zshape = cur[:ax] + (shape[ax],) + cur[ax + 1:]
            ct = bind(P["scatter_add"], np.zeros(zshape, x.aval.dtype), idx, ct, axis=ax)
    return [ct]


@deftranspose("pad")
def _t_pad(ct, x, *, pad_width, mode="constant", value=0.0):
    shape = x.aval.shape
    for ax, (lo, hi) in enumerate(pad_width):
        if not (lo or hi):
            continue
        n = shape[ax]
        idx = np.arange(-lo, n + hi)
        if mode == "constant":
            ct = _slice_axis(ct, ax, lo, lo + n)
            continue
        src = np.clip(idx, 0, n - 1) if mode == "edge" else idx % n
        cur = L.aval(ct).shape
        zshape = cur[:ax] + (n,) + cur[ax + 1:]
        ct = bind(P["scatter_add"], np.zeros(zshape, x.aval.dtype), src.astype(np.int64), ct,
                  axis=ax)
    return [ct]


def _slice_axis(x, ax, lo, hi):
    shape = L.aval(x).shape
    start = tuple(lo if i == ax else 0 for i in range(len(shape)))
    limit = tuple(hi if i == ax else s for i, s in enumerate(shape))
    return bind(P["slice"], x, start=start, limit=limit, strides=None)


@deftranspose("im2col")
def _t_im2col(ct, x, *, kernel, value=0.0, **params):
    shape = x.aval.shape[x.aval.ndim - len(kernel) - 1:-1]
    return [bind(P["col2im"], ct, shape=shape, kernel=kernel, **params)]


@deftranspose("col2im")
def _t_col2im(ct, cols, *, shape, **params):
    return [bind(P["im2col"], ct, value=0.0, **params)]


@deftranspose("concatenate")
def _t_concatenate(ct, *xs, axis):
    out, off = [], 0
    for x in xs:
        n = L.aval(x).shape[axis] if not is_linear(x) else x.aval.shape[axis]
        out.append(_slice_axis(ct, axis, off, off + n) if is_linear(x) else None)
        off += n
    return out


@deftranspose("shift")
def _t_shift(ct, x, *, offset, boundary="zero"):
    if boundary == "zero":
        return [bind(P["shift"], ct, offset=tuple(-o for o in offset), boundary="zero")]
    # periodic / edge: out = take(x, idx) along each shifted axis; transpose = scatter_add.
    shape = x.aval.shape
    for ax, o in enumerate(offset):
        if not o:
            continue
        n = shape[ax]
        idx = np.arange(n) + o
        src = idx % n if boundary == "periodic" else np.clip(idx, 0, n - 1)
        ct = bind(P["scatter_add"], np.zeros(L.aval(ct).shape, x.aval.dtype),
                  src.astype(np.int64), ct, axis=ax)
    return [ct]


@deftranspose("select")
def _t_select(ct, p, a, b):
    if is_linear(p):
        raise NotDifferentiableError("transpose: select with a tangent predicate")
    zero = np.zeros((), L.aval(ct).dtype)
    return [None,
            unbroadcast(L.where(p, ct, zero), a.aval) if is_linear(a) else None,
            unbroadcast(L.where(p, zero, ct), b.aval) if is_linear(b) else None]


@deftranspose("take")
def _t_take(ct, x, idx, *, axis):
    return [bind(P["scatter_add"], np.zeros(x.aval.shape, x.aval.dtype), idx, ct, axis=axis),
            None]


@deftranspose("scatter_add")
def _t_scatter_add(ct, x, idx, u, *, axis):
    return [ct if is_linear(x) else None, None,
            bind(P["take"], ct, idx, axis=axis) if is_linear(u) else None]


@deftranspose("dynamic_slice")
def _t_dynamic_slice(ct, x, *starts, sizes):
    z = np.zeros(x.aval.shape, x.aval.dtype)
    return [bind(P["dynamic_update_slice"], z, ct, *starts)] + [None] * len(starts)


@deftranspose("dynamic_update_slice")
def _t_dus(ct, x, u, *starts):
    ux = None
    if is_linear(x):
        ux = bind(P["dynamic_update_slice"], ct, np.zeros(u.aval.shape, u.aval.dtype), *starts)
    uu = bind(P["dynamic_slice"], ct, *starts, sizes=tuple(u.aval.shape)) if is_linear(u) else None
    return [ux, uu] + [None] * len(starts)


@deftranspose("dot_general")
def _t_dot(ct, x, y, *, dimension_numbers, preferred_dtype=None):
    (lc, rc), (lb, rb) = dimension_numbers
    if is_linear(x) and is_linear(y):
        raise NotDifferentiableError("transpose: dot_general of two tangent values")
    xa = x.aval if is_linear(x) else L.aval(x)
    ya = y.aval if is_linear(y) else L.aval(y)
    lf = [i for i in range(xa.ndim) if i not in lc and i not in lb]
    rf = [i for i in range(ya.ndim) if i not in rc and i not in rb]
    nb = len(lb)
    ct_batch = tuple(range(nb))
    ct_x_free = tuple(range(nb, nb + len(lf)))
    ct_y_free = tuple(range(nb + len(lf), nb + len(lf) + len(rf)))
    if is_linear(x):
        ct = _dtype(ct, xa)
        r = bind(P["dot_general"], ct, y,
                 dimension_numbers=((ct_y_free, tuple(rf)), (ct_batch, tuple(rb))))
        layout = list(lb) + lf + [lc[list(rc).index(j)] for j in sorted(rc)]
        return [_untranspose(r, layout), None]
    ct = _dtype(ct, ya)
    r = bind(P["dot_general"], ct, x,
             dimension_numbers=((ct_x_free, tuple(lf)), (ct_batch, tuple(lb))))
    layout = list(rb) + rf + [rc[list(lc).index(i)] for i in sorted(lc)]
    return [None, _untranspose(r, layout)]


def _untranspose(r, layout):
    """``r``'s dimension k is operand dimension ``layout[k]``: put them back in order."""
    perm = tuple(layout.index(d) for d in range(len(layout)))
    if perm == tuple(range(len(layout))):
        return r
    return bind(P["transpose"], r, permutation=perm)


# ---------------------------------------------------------------------------------------------
# Control flow: partial evaluation splits a node into a known and an unknown node; the unknown
# (linear) node transposes into a node of the same kind.


def _inst_zeros(cts, avals):
    return [np.zeros(a.shape, a.dtype) if c is None else c for c, a in zip(cts, avals)]


def _fresh(avals):
    return [Var(a) for a in avals]


def _pe_cond(node, in_unk):
    branches = node.params["branches"]
    ops_unk = in_unk[1:]
    n_out = len(node.outputs)
    out_unk = [False] * n_out
    for b in branches:
        out_unk = [a or c for a, c in zip(out_unk, partial_eval(b, ops_unk)[2])]
    splits = [partial_eval(b, ops_unk, instantiate=out_unk) for b in branches]
    # Every branch returns every branch's residual slots (zeros in the others' slots).
    slots = [list(k.outputs[len(k.outputs) - nres:]) for k, _, _, nres in splits]
    slot_avals = [[r.aval.strong() for r in s] for s in slots]
    known_bs, unk_bs = [], []
    for i, (k, u, _, nres) in enumerate(splits):
        outs = list(k.outputs[:len(k.outputs) - nres])
        for j, avs in enumerate(slot_avals):
            outs += slots[i] if j == i else [Const(np.zeros(a.shape, a.dtype), a) for a in avs]
        known_bs.append(Graph(k.params, k.body, outs, k.name))
        params = []
        for j, avs in enumerate(slot_avals):
            params += list(u.params[:nres]) if j == i else _fresh(avs)
        unk_bs.append(Graph(params + list(u.params[nres:]), u.body, u.outputs, u.name))
    res_vars = _fresh([a for avs in slot_avals for a in avs])
    ops = node.inputs[1:]
    known_outs = [o for o, u in zip(node.outputs, out_unk) if not u]
    kn = Apply(P["cond"], (node.inputs[0], *[a for a, u in zip(ops, ops_unk) if not u]),
               {"branches": tuple(known_bs)}, tuple(known_outs) + tuple(res_vars), node.source)
    un = Apply(P["cond"], (node.inputs[0], *res_vars, *[a for a, u in zip(ops, ops_unk) if u]),
               {"branches": tuple(unk_bs)}, tuple(o for o, u in zip(node.outputs, out_unk) if u),
               node.source)
    return [kn], [un], out_unk


PE_RULES["cond"] = _pe_cond


def _scan_fixpoint(body, c_unk, rest_unk, n_ys):
    while True:
        split = partial_eval(body, c_unk + rest_unk, instantiate=c_unk + [False] * n_ys)
        new = [a or b for a, b in zip(c_unk, split[2][:len(c_unk)])]
        if new == c_unk:
            return c_unk, split
        c_unk = new


def _pe_scan(node, in_unk):
    p = node.params
    body, nc, nx = p["body"], p["num_carry"], p["num_xs"]
    ins, n_ys = list(node.inputs), len(body.outputs) - nc
    c_unk, (kb, ub, out_unk, nres) = _scan_fixpoint(body, list(in_unk[:nc]), list(in_unk[nc:]),
                                                    n_ys)
    unk = c_unk + list(in_unk[nc:])
    pos = {prm.id: i for i, prm in enumerate(body.params)}
    res = list(kb.outputs[len(kb.outputs) - nres:])
    # Residuals that are loop inputs are read from the loop's own inputs instead of stacked.
    kinds = []
    for r in res:
        i = pos.get(r.id, -1)
        kinds.append("stack" if i < nc else ("xs" if i < nc + nx else "cap"))
    stacked = [r for r, k in zip(res, kinds) if k == "stack"]
    k_outs = list(kb.outputs[:len(kb.outputs) - nres])
    kb2 = Graph(kb.params, kb.body, k_outs + stacked, kb.name)
    st_vars = _fresh([r.aval.strong().update(shape=(p["length"],) + r.aval.shape)
                      for r in stacked])
    known_outs = [o for o, u in zip(node.outputs, out_unk) if not u]
    kn = Apply(P["scan"], tuple(a for a, u in zip(ins, unk) if not u),
               dict(p, body=kb2, num_carry=nc - sum(c_unk),
                    num_xs=nx - sum(unk[nc:nc + nx])), tuple(known_outs) + tuple(st_vars),
               node.source)
    u_params = list(ub.params[nres:])
    nu_c, nu_x = sum(c_unk), sum(unk[nc:nc + nx])
    res_p = list(ub.params[:nres])
    sel = {k: [rp for rp, kk in zip(res_p, kinds) if kk == k] for k in ("stack", "xs", "cap")}
    outer = {k: [ins[pos[r.id]] for r, kk in zip(res, kinds) if kk == k] for k in ("xs", "cap")}
    ub2 = Graph(u_params[:nu_c] + u_params[nu_c:nu_c + nu_x] + sel["stack"] + sel["xs"]
                + u_params[nu_c + nu_x:] + sel["cap"], ub.body, ub.outputs, ub.name)
    u_ins = [a for a, u in zip(ins, unk) if u]
    un_inputs = (u_ins[:nu_c] + u_ins[nu_c:nu_c + nu_x] + st_vars + outer["xs"]
                 + u_ins[nu_c + nu_x:] + outer["cap"])
    un = Apply(P["scan"], tuple(un_inputs),
               dict(p, body=ub2, num_carry=nu_c, num_xs=nu_x + len(st_vars) + len(outer["xs"])),
               tuple(o for o, u in zip(node.outputs, out_unk) if u), node.source)
    return [kn], [un], out_unk


PE_RULES["scan"] = _pe_scan


def _pe_fori(node, in_unk):
    lo, hi = node.inputs[:2]
    if not (isinstance(lo, Const) and isinstance(hi, Const)):
        raise NotDifferentiableError(
            f"reverse mode through fori_loop needs constant bounds (at {node.source or '?'}); "
            "the bounds here are traced values. Use scan, or pass the bounds as Python ints"
        )
    body, nc = node.params["body"], node.params["num_carry"]
    i_aval = lo.aval.strong()
    n = max(int(hi.value) - int(lo.value), 0)

    def step(i, *rest):
        outs = eval_in_trace(body, [i, *rest])
        return [L.add(i, np.asarray(1, i_aval.dtype))] + outs

    g, _, _ = trace_flat(step, [i_aval] + [a.aval for a in node.inputs[2:]], body.name)
    i_out = Var(i_aval)
    scan_node = Apply(P["scan"], (Const(lo.value, i_aval), *node.inputs[2:]),
                      {"body": g, "length": n, "num_carry": 1 + nc, "num_xs": 0,
                       "reverse": False}, (i_out, *node.outputs), node.source)
    kn, un, out_unk = _pe_scan(scan_node, [False] + list(in_unk[2:]))
    return kn, un, out_unk[1:]


PE_RULES["fori_loop"] = _pe_fori


def _pe_while(node, in_unk):
    p = node.params
    if p.get("max_steps") is None:
        raise NotDifferentiableError(
            f"reverse mode through while_loop needs a maximum trip count (at "
            f"{node.source or '?'}): pass max_steps=N to while_loop, or use forward mode (jvp)"
        )
    nc, ncc = p["num_carry"], p["num_cond_captures"]
    cg, bg = p["cond_graph"], p["body_graph"]
    avals = [a.aval for a in node.inputs]
    c_avals, bcap_avals = avals[:nc], avals[nc + ncc:]
    ident_params = _fresh([a.strong() for a in c_avals + bcap_avals])
    ident = Graph(ident_params, [], ident_params[:nc], "skip")

    def step(*args):
        carry, ccaps, bcaps = args[:nc], args[nc:nc + ncc], args[nc + ncc:]
        (pred,) = eval_in_trace(cg, [*carry, *ccaps])
        # Once the predicate is false the carry stops changing, so it stays false.
        return list(bind(P["cond"], pred, *carry, *bcaps, branches=(ident, bg)))

    g, _, _ = trace_flat(step, [a.strong() for a in avals], bg.name)
    scan_node = Apply(P["scan"], node.inputs,
                      {"body": g, "length": int(p["max_steps"]), "num_carry": nc, "num_xs": 0,
                       "reverse": False}, node.outputs, node.source)
    return _pe_scan(scan_node, in_unk)


PE_RULES["while_loop"] = _pe_while


@deftranspose("cond")
def _t_cond(cts, index, *ops, branches):
    mask = [is_linear(o) for o in ops]
    tbs = tuple(transpose_graph(b, mask) for b in branches)
    nonlin = [o for o in ops if not is_linear(o)]
    cts = _inst_zeros(cts, [a.strong() for a in branches[0].out_avals])
    got = iter(bind(P["cond"], index, *nonlin, *cts, branches=tbs))
    return [None] + [next(got) if m else None for m in mask]


@deftranspose("scan")
def _t_scan(cts, *args, body, length, num_carry, num_xs, reverse=False):
    nc, nx = num_carry, num_xs
    xs, caps = args[nc:nc + nx], args[nc + nx:]
    x_lin, k_lin = [is_linear(x) for x in xs], [is_linear(k) for k in caps]
    # Carries of a linear scan are linear even when their initial value is a constant.
    tb = transpose_graph(body, [True] * nc + x_lin + k_lin)
    x_nl = [x for x in xs if not is_linear(x)]
    k_nl = [k for k in caps if not is_linear(k)]
    k_lin_avals = [k.aval for k in caps if is_linear(k)]
    out_avals = [a.strong() for a in body.out_avals]
    ct_c = _inst_zeros(cts[:nc], out_avals[:nc])
    ct_y = _inst_zeros(cts[nc:], [a.update(shape=(length,) + a.shape) for a in out_avals[nc:]])
    n_acc, n_xnl, n_xl = len(k_lin_avals), len(x_nl), sum(x_lin)

    def step(*a):
        c, acc = a[:nc], a[nc:nc + n_acc]
        xnl, cy = a[nc + n_acc:nc + n_acc + n_xnl], a[nc + n_acc + n_xnl:nc + n_acc + n_xnl
                                                      + len(ct_y)]
        knl = a[nc + n_acc + n_xnl + len(ct_y):]
        r = eval_in_trace(tb, [*xnl, *knl, *c, *cy])
        new_acc = [L.add(s, t) for s, t in zip(acc, r[nc + n_xl:])]
        return r[:nc] + new_acc + r[nc:nc + n_xl]

    slice_avals = [L.aval(x).update(shape=L.aval(x).shape[1:]) for x in x_nl]
    cy_avals = [a for a in out_avals[nc:]]
    in_avals = (out_avals[:nc] + [a.strong() for a in k_lin_avals] + slice_avals + cy_avals
                + [L.aval(k) for k in k_nl])
    g, _, _ = trace_flat(step, in_avals, f"transpose_{body.name}")
    acc0 = [np.zeros(a.shape, a.dtype) for a in k_lin_avals]
    res = bind(P["scan"], *ct_c, *acc0, *x_nl, *ct_y, *k_nl, body=_dce(g), length=length,
               num_carry=nc + n_acc, num_xs=n_xnl + len(ct_y), reverse=not reverse)
    ct_init, ct_k, ct_x = res[:nc], iter(res[nc:nc + n_acc]), iter(res[nc + n_acc:])
    return (list(ct_init) + [next(ct_x) if m else None for m in x_lin]
            + [next(ct_k) if m else None for m in k_lin])


# ---------------------------------------------------------------------------------------------
# FFT and linear solves (transpose = the bilinear transpose, no conjugation, as in JAX)


def _t_fft_like(name):
    def rule(ct, x, *, axes):
        return [bind(P[name], ct, axes=axes)]

    return rule


TRANSPOSE_RULES["fft"] = _t_fft_like("fft")  # the DFT matrix is symmetric
TRANSPOSE_RULES["ifft"] = _t_fft_like("ifft")


@deftranspose("rfft")
def _t_rfft(ct, x, *, axes):
    # <ct, rfft(x)> = Re sum_k ct_k sum_j x_j w^jk: pad ct to full length, fft, real part.
    n, last = x.aval.shape[axes[-1]], axes[-1]
    m = L.aval(ct).shape[last]
    pw = tuple((0, n - m) if i == last else (0, 0) for i in range(x.aval.ndim))
    full = bind(P["pad"], ct, pad_width=pw, mode="constant", value=0.0)
    return [L.convert_element_type(L.unary("real", bind(P["fft"], full, axes=axes)),
                                   x.aval.dtype)]


@deftranspose("irfft")
def _t_irfft(ct, x, *, axes, n):
    # irfft weighs interior frequencies twice (Hermitian symmetry): z_k = w_k conj(rfft(ct))/N.
    last = axes[-1]
    m = x.aval.shape[last]
    w = np.full(m, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    total = float(np.prod([x.aval.shape[a] for a in axes[:-1]]) * n)
    shape = [1] * x.aval.ndim
    shape[last] = m
    w = (w / total).reshape(shape).astype(dtypes.real_dtype(x.aval.dtype))
    z = L.unary("conj", bind(P["rfft"], ct, axes=axes))
    return [L.mul(z, w.astype(x.aval.dtype))]


@deftranspose("solve")
def _t_solve(ct, a, b):
    if is_linear(a):
        raise NotDifferentiableError("transpose: solve with a tangent coefficient matrix")
    from .jvp import mT

    return [None, bind(P["solve"], mT(a), ct)]


@deftranspose("tridiagonal_solve")
def _t_tridiagonal_solve(ct, a, b, c, d):
    if any(is_linear(x) for x in (a, b, c)):
        raise NotDifferentiableError("transpose: tridiagonal_solve with tangent coefficients")
    from .jvp import neighbours

    # T^T has sub-diagonal sup[k-1] and super-diagonal sub[k+1].
    c_down, _ = neighbours(c)
    _, a_up = neighbours(a)
    return [None, None, None, bind(P["tridiagonal_solve"], c_down, b, a_up, ct)]


@deftranspose("triangular_solve")
def _t_triangular_solve(ct, a, b, **params):
    if is_linear(a):
        raise NotDifferentiableError("transpose: triangular_solve with a tangent matrix")
    # op(a)^-1 transposed is op(a)^-T: flip transpose_a, keep the side and the conjugation.
    p = dict(params, transpose_a=not params.get("transpose_a", False))
    return [None, bind(P["triangular_solve"], a, ct, **p)]
