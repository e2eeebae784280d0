"""Dead-code elimination: drop nodes whose outputs nothing uses.

A node is live when one of its outputs is read by a live node or by the graph's outputs, or when
its primitive is tagged "effect". Subgraphs (branches, loop bodies, callees) are cleaned too.
Control-flow nodes are also trimmed where that is safe: a ``cond`` loses the outputs nobody
reads (in every branch) and the operands no branch reads; a ``scan`` loses unused stacked
outputs, unread ``xs`` and unread captures; ``fori_loop`` and ``while_loop`` lose unread
captures. Loop carries stay (each step reads the previous one), and so do the signatures of
``call`` targets and of recursive subgraphs, which other nodes may share.

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> from autodiff.trace import make_graph
>>> def f(x):
...     unused = np.exp(x)
...     return x * 2.0
>>> g = make_graph(f, np.zeros(3))
>>> len(g.body), len(dce(g).body)
(2, 1)
"""

from __future__ import annotations

from ..ir import Apply, Graph, Var, used_vars
from .rewrite import GraphMap, has_effect, is_recursive, rebuild


def dce(graph: Graph) -> Graph:
    """A new graph without dead nodes (the input graph is not changed)."""
    recursive: dict[int, bool] = {}

    def trimmable(node: Apply) -> bool:
        # A recursive subgraph may be an unfinished rewrite here, and callers share it.
        for s in node.subgraphs():
            if id(s) not in recursive:
                recursive[id(s)] = is_recursive(s)
            if recursive[id(s)]:
                return False
        return not has_effect(node)

    def rewrite(g: Graph, sub: GraphMap):
        live = {o.id for o in g.outputs if isinstance(o, Var)}
        kept = []
        # Walk backwards so a node's users are decided before the node itself.
        for node in reversed(g.body):
            if not (has_effect(node) or any(o.id in live for o in node.outputs)):
                continue
            new = rebuild(node, node.inputs, sub.params(node.params))
            trim = TRIMMERS.get(node.prim.name)
            if trim is not None and trimmable(node):
                new = trim(new, [o.id in live for o in node.outputs])
            live.update(a.id for a in new.inputs if isinstance(a, Var))
            kept.append(new)
        return g.params, list(reversed(kept)), g.outputs

    return GraphMap(rewrite)(graph)


# ---------------------------------------------------------------------------------------------
# Trimming subgraph signatures


def _sweep(g: Graph, keep_out) -> Graph:
    """``g`` with only the outputs marked in ``keep_out`` and the nodes they need."""
    outputs = [o for o, k in zip(g.outputs, keep_out) if k]
    live = {o.id for o in outputs if isinstance(o, Var)}
    body = []
    for node in reversed(g.body):
        if has_effect(node) or any(o.id in live for o in node.outputs):
            live.update(a.id for a in node.inputs if isinstance(a, Var))
            body.append(node)
    return Graph(list(g.params), list(reversed(body)), outputs, g.name, dict(g.meta))


def _read(g: Graph) -> list[bool]:
    """Which parameters of ``g`` its body or outputs read."""
    used = used_vars(g)
    return [p.id in used for p in g.params]


def _drop_params(g: Graph, keep) -> Graph:
    return Graph([p for p, k in zip(g.params, keep) if k], g.body, g.outputs, g.name,
                 dict(g.meta))


def _pick(seq, keep):
    return tuple(x for x, k in zip(seq, keep) if k)


def _trim_cond(node: Apply, live_out) -> Apply:
    branches = [_sweep(b, live_out) for b in node.params["branches"]]
    reads = [any(col) for col in zip(*[_read(b) for b in branches])]
    branches = tuple(_drop_params(b, reads) for b in branches)
    inputs = node.inputs[:1] + _pick(node.inputs[1:], reads)
    return Apply(node.prim, inputs, {**node.params, "branches": branches},
                 _pick(node.outputs, live_out), node.source)


def _trim_scan(node: Apply, live_out) -> Apply:
    nc, nx = node.params["num_carry"], node.params["num_xs"]
    keep_out = [True] * nc + list(live_out[nc:])
    body = _sweep(node.params["body"], keep_out)
    keep_in = [True] * nc + _read(body)[nc:]  # carries stay; unread xs and captures go
    body = _drop_params(body, keep_in)
    params = {**node.params, "body": body, "num_xs": sum(keep_in[nc:nc + nx])}
    return Apply(node.prim, _pick(node.inputs, keep_in), params, _pick(node.outputs, keep_out),
                 node.source)


def _trim_fori(node: Apply, live_out) -> Apply:
    nc = node.params["num_carry"]
    body = node.params["body"]
    keep = [True] * (1 + nc) + _read(body)[1 + nc:]  # (i, *carry) stay; unread captures go
    inputs = node.inputs[:2] + _pick(node.inputs[2:], keep[1:])
    return Apply(node.prim, inputs, {**node.params, "body": _drop_params(body, keep)},
                 node.outputs, node.source)


def _trim_while(node: Apply, live_out) -> Apply:
    nc, ncc = node.params["num_carry"], node.params["num_cond_captures"]
    cg, bg = node.params["cond_graph"], node.params["body_graph"]
    keep_c = [True] * nc + _read(cg)[nc:]
    keep_b = [True] * nc + _read(bg)[nc:]
    inputs = (node.inputs[:nc] + _pick(node.inputs[nc:nc + ncc], keep_c[nc:])
              + _pick(node.inputs[nc + ncc:], keep_b[nc:]))
    params = {**node.params, "cond_graph": _drop_params(cg, keep_c),
              "body_graph": _drop_params(bg, keep_b), "num_cond_captures": sum(keep_c[nc:])}
    return Apply(node.prim, inputs, params, node.outputs, node.source)


# One row per control-flow primitive whose signature dce may trim.
TRIMMERS = {
    "cond": _trim_cond,
    "scan": _trim_scan,
    "fori_loop": _trim_fori,
    "while_loop": _trim_while,
}
