"""Rematerialisation: ``checkpoint(f)`` recomputes f's intermediate values on the reverse pass
instead of storing them, and ``checkpointed_scan`` stores O(log n) carries for an n-step loop.

``checkpoint(f)`` traces ``f`` into a ``checkpoint[graph]`` node. Forward, it is a call. Its JVP
is a checkpoint of the JVP graph. Partial evaluation (reverse mode) keeps only the node's inputs
as residuals, and its transpose re-runs the primal part of the callee before transposing the
linear part: memory for time.

``checkpointed_scan(f, init, xs, length)`` has ``scan``'s signature and result
(``checkpointed_fori_loop`` is the same for ``fori_loop`` with Python-int bounds); the steps are
nested as a scan of length 2 over checkpointed scans of half the length (recursively, the
binomial / recursive-halving scheme), so the reverse pass holds about 2 log2(n) carries at a
time and recomputes each step about log2(n) times.

>>> import numpy as np, sciml
>>> from autodiff.api import grad
>>> f = checkpoint(lambda x: np.sin(np.sin(x)))
>>> round(float(grad(f)(0.5)), 12) == round(float(np.cos(np.sin(0.5)) * np.cos(0.5)), 12)
True
"""

from __future__ import annotations

import numpy as np

from . import lax as L
from .ir import Apply, Const, Graph, Var
from .jvp import JVP_RULES, jvp_graph
from .ops.control import _call_impl, _call_rule, scan
from .primitives import PRIMITIVES, def_primitive
from .pytree import tree_flatten, tree_map, tree_unflatten
from .trace import abstractify, bind, is_tracing, trace_flat
from .transpose import (
    PE_RULES,
    TRANSPOSE_RULES,
    _inst_zeros,
    is_linear,
    partial_eval,
    transpose_graph,
)

P = PRIMITIVES

checkpoint_p = def_primitive(
    "checkpoint", _call_rule, _call_impl, multiple_results=True, family="control",
    doc="A call whose reverse pass recomputes the callee instead of storing its intermediates.")


def checkpoint(f, *, name: str | None = None):
    """``f`` with its intermediate values recomputed on the reverse pass (JAX's checkpoint)."""

    def wrapped(*args):
        if not is_tracing():
            return f(*args)
        leaves, tree = tree_flatten(args)
        avals = [abstractify(x) for x in leaves]

        def flat(*xs):
            return f(*tree_unflatten(tree, xs))

        g, caps, out_tree = trace_flat(flat, avals, name or getattr(f, "__name__", "ckpt"))
        outs = bind(checkpoint_p, *leaves, *caps, graph=g)
        return tree_unflatten(out_tree, list(outs))

    wrapped.__name__ = getattr(f, "__name__", "checkpointed")
    wrapped.__doc__ = getattr(f, "__doc__", None)
    return wrapped


def _jvp_checkpoint(primals, tangents, *, graph):
    from .jvp import _nz_list, _present, _split_outs

    nz = _nz_list(tangents, primals)
    jg, out_nz = jvp_graph(graph, nz, instantiate=False)
    res = bind(checkpoint_p, *primals, *_present(tangents, nz), graph=jg)
    return _split_outs(res, len(graph.outputs), out_nz)


JVP_RULES["checkpoint"] = _jvp_checkpoint


def _pe_checkpoint(node, in_unk):
    graph = node.params["graph"]
    known, _, out_unk, nres = partial_eval(graph, in_unk)
    # The known node returns no residuals: the unknown node gets the inputs and recomputes.
    k_outs = list(known.outputs[:len(known.outputs) - nres])
    kg = Graph(known.params, known.body, k_outs, known.name)
    kn = Apply(checkpoint_p, tuple(a for a, u in zip(node.inputs, in_unk) if not u),
               {"graph": kg}, tuple(o for o, u in zip(node.outputs, out_unk) if not u),
               node.source)
    outs = tuple(o if u else Var(o.aval) for o, u in zip(node.outputs, out_unk))
    un = Apply(checkpoint_p, node.inputs, {"graph": graph}, outs, node.source)
    return [kn], [un], out_unk


PE_RULES["checkpoint"] = _pe_checkpoint


def _t_checkpoint(cts, *args, graph):
    mask = [is_linear(a) for a in args]
    tg = transpose_graph(graph, mask)
    nonlin = [a for a in args if not is_linear(a)]
    cts = _inst_zeros(cts, [a.strong() for a in graph.out_avals])
    got = iter(bind(P["call"], *nonlin, *cts, graph=tg))
    return [next(got) if m else None for m in mask]


TRANSPOSE_RULES["checkpoint"] = _t_checkpoint


def _batch_checkpoint(size, args, batched, *, graph):
    from .batching import batch_graph

    new, flags = batch_graph(graph, batched, size)
    return list(bind(checkpoint_p, *args, graph=new)), flags


def _register_batching():
    try:
        from .batching import BATCH_RULES
    except ImportError:
        return
    BATCH_RULES["checkpoint"] = _batch_checkpoint


_register_batching()


# ---------------------------------------------------------------------------------------------
# Binomial (recursive-halving) checkpointing of scan


def checkpointed_scan(f, init, xs=None, length: int | None = None, base: int = 2):
    """``scan(f, init, xs, length)`` whose reverse pass stores O(log n) carries.

    The n steps run as a scan of length 2 over checkpointed scans of n // 2 steps (recursively,
    down to ``base`` steps, each step checkpointed), plus a tail for the odd step. Results equal
    ``scan``'s; gradients too.
    """
    x_leaves, _ = tree_flatten(xs)
    if length is None:
        length = abstractify(x_leaves[0]).shape[0]
    step = checkpoint(f, name="step")
    return _nested(step, init, xs, int(length), max(int(base), 1))


def checkpointed_fori_loop(lower: int, upper: int, body_fun, init_val, base: int = 2):
    """``fori_loop(lower, upper, body_fun, init_val)`` with binomial checkpointing (the bounds
    are Python ints: the trip count must be known to nest the steps)."""
    lower, upper = int(lower), int(upper)
    n = max(upper - lower, 0)
    idx = np.arange(lower, lower + n, dtype=np.int64)

    def step(c, i):
        return body_fun(i, c), None

    carry, _ = checkpointed_scan(step, init_val, idx, length=n, base=base)
    return carry


def _nested(step, carry, xs, n, base):
    if n <= base:
        return scan(step, carry, xs, length=n)
    m = n // 2
    head = tree_map(lambda x: L.reshape(_rows(x, 0, 2 * m), (2, m) + abstractify(x).shape[1:]),
                    xs)
    inner = checkpoint(lambda c, xc: _nested(step, c, xc, m, base), name=f"steps{m}")
    carry, ys = scan(inner, carry, head, length=2)
    ys = tree_map(lambda y: L.reshape(y, (2 * m,) + abstractify(y).shape[2:]), ys)
    if n == 2 * m:
        return carry, ys
    carry, yt = scan(step, carry, tree_map(lambda x: _rows(x, 2 * m, n), xs), length=n - 2 * m)
    return carry, tree_map(lambda a, b: L.concatenate([a, b], axis=0), ys, yt)


def _rows(x, lo, hi):
    shape = abstractify(x).shape
    x = x if not isinstance(x, (list, tuple)) else np.asarray(x)
    return bind(P["slice"], x, start=(lo,) + (0,) * (len(shape) - 1), limit=(hi,) + shape[1:],
                strides=None)


# ---------------------------------------------------------------------------------------------
# Measuring memory: the peak of live bytes when a graph runs with values freed after last use


def peak_live_bytes(graph: Graph, args) -> int:
    """Peak bytes held by intermediate values while the reference interpreter runs ``graph``
    (inputs not counted; each value freed after its last use; loop bodies counted per step).

    Used to check that checkpointing trades memory for recomputation.
    """
    _, peak = _run(graph, [np.asarray(a) for a in args])
    return peak


def _run(graph, args):
    env = {p.id: a for p, a in zip(graph.params, args)}
    owned: dict[int, int] = {}
    last = {}
    for k, node in enumerate(graph.body):
        for a in node.inputs:
            if isinstance(a, Var):
                last[a.id] = k
    for o in graph.outputs:
        if isinstance(o, Var):
            last[o.id] = len(graph.body)
    live = peak = 0
    for k, node in enumerate(graph.body):
        ins = [a.value if isinstance(a, Const) else env[a.id] for a in node.inputs]
        outs, inner = _run_node(node, ins)
        out_bytes = sum(int(np.asarray(o).nbytes) for o in outs)
        peak = max(peak, live + inner + out_bytes)
        for v, o in zip(node.outputs, outs):
            env[v.id] = np.asarray(o)
            owned[v.id] = int(np.asarray(o).nbytes)
            live += owned[v.id]
        for a in {a.id for a in node.inputs if isinstance(a, Var)} | {
                v.id for v in node.outputs}:
            if last.get(a, -1) <= k and a in owned:
                live -= owned.pop(a)
    return [o.value if isinstance(o, Const) else env[o.id] for o in graph.outputs], peak


def _run_node(node, ins):
    name, p = node.prim.name, node.params
    if name in ("call", "checkpoint"):
        return _run(p["graph"], ins)
    if name == "cond":
        i = min(max(int(ins[0]), 0), len(p["branches"]) - 1)
        return _run(p["branches"][i], ins[1:])
    if name == "scan":
        return _run_scan(ins, **p)
    out = node.prim.impl(*ins, **p)
    return (list(out) if node.prim.multiple_results else [out]), 0


def _run_scan(ins, *, body, length, num_carry, num_xs, reverse=False):
    nc, nx = num_carry, num_xs
    carry, xs, caps = list(ins[:nc]), ins[nc:nc + nx], list(ins[nc + nx:])
    ys, peak = [], 0
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        outs, inner = _run(body, carry + [x[t] for x in xs] + caps)
        carry = outs[:nc]
        ys.append(outs[nc:])
        peak = max(peak, inner)
    if reverse:
        ys.reverse()
    ny = len(body.outputs) - nc
    stacked = [np.stack([y[j] for y in ys]) if ys else np.zeros(
        (0,) + body.out_avals[nc + j].shape, body.out_avals[nc + j].dtype) for j in range(ny)]
    # The stacked outputs exist for the whole loop.
    return carry + stacked, peak + sum(s.nbytes for s in stacked)
