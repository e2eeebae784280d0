"""Inlining: replace ``call`` nodes by the body of their callee.

A callee that can reach itself (direct or mutual recursion) is kept as a ``call``: inlining it
would never end. Every inlined copy gets fresh Vars, so a callee inlined twice stays in SSA form.
Subgraphs of control-flow nodes are inlined too, and so are callees of callees.

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> from autodiff.ops.control import graph_function
>>> from autodiff.trace import make_graph
>>> @graph_function
... def double(x):
...     return x * 2.0
>>> g = make_graph(lambda x: double(x) + 1.0, np.zeros(3))
>>> [n.prim.name for n in g.body], [n.prim.name for n in inline(g).body]
(['call', 'add'], ['mul', 'add'])
"""

from __future__ import annotations

from ..ir import Apply, Graph, Var
from .rewrite import GraphMap, is_recursive, lookup, rebuild


def inline(graph: Graph) -> Graph:
    """A new graph in which every call of a non-recursive graph is replaced by its body."""
    recursive: dict[int, bool] = {}

    def inlinable(node: Apply) -> bool:
        if node.prim.name != "call":
            return False
        callee = node.params["graph"]
        if id(callee) not in recursive:
            recursive[id(callee)] = is_recursive(callee)
        return not recursive[id(callee)]

    def rewrite(g: Graph, sub: GraphMap):
        env: dict[int, object] = {}
        body: list[Apply] = []
        for node in g.body:
            inputs = [lookup(a, env) for a in node.inputs]
            if inlinable(node):
                outs = _splice(sub(node.params["graph"]), inputs, body)
                env.update((o.id, r) for o, r in zip(node.outputs, outs))
            else:
                body.append(rebuild(node, inputs, sub.params(node.params)))
        return g.params, body, [lookup(o, env) for o in g.outputs]

    return GraphMap(rewrite)(graph)


def _splice(callee: Graph, args, body: list) -> list:
    """Append a fresh copy of ``callee``'s body reading ``args``; return its outputs' atoms."""
    env = {p.id: a for p, a in zip(callee.params, args)}
    for node in callee.body:
        fresh = [Var(o.aval, o.hint) for o in node.outputs]
        env.update((o.id, f) for o, f in zip(node.outputs, fresh))
        body.append(rebuild(node, [lookup(a, env) for a in node.inputs], outputs=fresh))
    return [lookup(o, env) for o in callee.outputs]
