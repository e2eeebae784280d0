"""If-conversion: a ``cond`` whose branches are kernel work only becomes a select of both.

A ``cond`` in a plan is a host decision: the target reads its predicate, then runs one
branch. On the GPU that read waits for the device, and a loop body holding one cannot be
captured into a single CUDA graph (``kernels/gpu.py``), so every iteration goes back to
Python. Where every node of every branch is something the target fuses into kernels, this
pass runs all branches and selects their results on the predicate instead: more arithmetic,
no synchronisation. The values are the selected branch's own, bit for bit. The CPU keeps
its ``cond``s, which the plan code runs as a real branch.

>>> import numpy as np, sciml
>>> from autodiff.ops import control
>>> from autodiff.trace import make_graph
>>> g = make_graph(lambda p, x: control.cond(p, lambda: x + 1.0, lambda: x * 2.0),
...                np.bool_(True), np.zeros(3))
>>> [n.prim.name for n in if_convert(g, lambda node: True).body]
['call']
"""

from __future__ import annotations

import functools

import numpy as np

from autodiff.ir import Apply, Graph
from autodiff.passes.rewrite import GraphMap, all_nodes, rebuild
from autodiff.primitives import get as get_primitive
from autodiff.trace import make_graph


def if_convert(graph: Graph, fusible) -> Graph:
    """``graph`` with each ``cond`` whose branches hold only nodes ``fusible(node)`` accepts
    (through nested ``call``s) replaced by a call of a graph that runs every branch and
    selects; ``optimize``'s inlining then puts it in place."""

    def kernel_work(g: Graph) -> bool:
        return all(kernel_work(n.params["graph"]) if n.prim.name == "call" else fusible(n)
                   for n in g.body)

    def rewrite(g: Graph, sub: GraphMap):
        body = []
        for node in g.body:
            branches = node.params.get("branches") if node.prim.name == "cond" else None
            if branches and all(kernel_work(b) for b in branches):
                callee = make_graph(functools.partial(_select_branches, branches=branches),
                                    *[a.aval for a in node.inputs], name="cond")
                body.append(Apply(get_primitive("call"), tuple(node.inputs),
                                  {"graph": callee}, node.outputs, node.source))
            else:
                body.append(rebuild(node, node.inputs, sub.params(node.params)))
        return g.params, body, g.outputs

    if not any(n.prim.name == "cond" for n in all_nodes(graph)):
        return graph
    return GraphMap(rewrite)(graph)


def _select_branches(index, *operands, branches):
    """Every branch on ``operands``, then per output the one ``index`` picks: clamped into
    range as ``cond`` does, a bool picking branch 1 when true."""
    call = get_primitive("call")
    outs = [call.bind(*operands, graph=b) for b in branches]
    result = []
    for k in range(len(outs[0])):
        if np.dtype(index.dtype) == np.bool_:
            result.append(np.where(index, outs[1][k], outs[0][k]))
            continue
        v = outs[-1][k]
        for i in reversed(range(len(branches) - 1)):
            v = np.where(index <= i, outs[i][k], v)  # the first i with index <= i
        result.append(v)
    return result
