"""Dead-code elimination: drop nodes whose outputs nothing uses.

A node is live when one of its outputs is read by a live node or by the graph's outputs, or when
its primitive is tagged "effect". Subgraphs (branches, loop bodies, callees) are cleaned too, but
their signatures are kept: a loop body keeps every parameter and output, because the node that
holds it passes values by position.

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

from ..ir import Graph, Var
from .rewrite import GraphMap, has_effect, rebuild


def dce(graph: Graph) -> Graph:
    """A new graph without dead nodes (the input graph is not changed)."""
    return GraphMap(_dce_body)(graph)


def _dce_body(g: Graph, sub: GraphMap):
    live = {o.id for o in g.outputs if isinstance(o, Var)}
    kept = []
    # Walk backwards so a node's users are decided before the node itself.
    for node in reversed(g.body):
        if has_effect(node) or any(o.id in live for o in node.outputs):
            live.update(a.id for a in node.inputs if isinstance(a, Var))
            kept.append(node)
    body = [rebuild(n, n.inputs, sub.params(n.params)) for n in reversed(kept)]
    return g.params, body, g.outputs
