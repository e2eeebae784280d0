"""Constant folding: evaluate nodes whose inputs are all constants.

A foldable node runs its primitive's numpy implementation (the same one the interpreter uses, so
the folded value is the value the graph would compute, bit for bit) and its outputs become
constants. Loops with constant inputs are folded by interpretation when they are small: at most
``LOOP_BUDGET`` node evaluations (trip count times body size; a ``while_loop`` needs
``max_steps`` for a bound). Not folded: results larger than ``FOLD_LIMIT`` elements (no huge
constants baked into the graph; nullary ``iota`` of a big shape stays a node), ``call`` and
``cond`` (``inline`` splices non-recursive callees, ``simplify`` turns a ``cond`` on a constant
into a ``call``), primitives tagged "effect", and nodes whose implementation raises.

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> from autodiff.trace import make_graph
>>> import sciml.numpy as snp
>>> g = make_graph(lambda x: x * (snp.iota((3,), np.float64) + 1.0), np.zeros(3))
>>> print(fold(g))
graph <lambda>(a:f64[3]) {
  b:f64[3] = mul a [1.,2.,3.]:f64[3]
  return b
}
"""

from __future__ import annotations

import numpy as np

from ..ir import Const, Graph
from .rewrite import GraphMap, has_effect, lookup, rebuild

# Largest number of elements a folded constant may have.
FOLD_LIMIT = 1024


def fold(graph: Graph, limit: int = FOLD_LIMIT) -> Graph:
    """A new graph in which nodes computable from constants are replaced by their values."""

    def rewrite(g: Graph, sub: GraphMap):
        env: dict[int, object] = {}
        body = []
        for node in g.body:
            inputs = [lookup(a, env) for a in node.inputs]
            values = _try_fold(node, inputs, limit)
            if values is None:
                body.append(rebuild(node, inputs, sub.params(node.params)))
                continue
            env.update((o.id, Const(v, o.aval)) for o, v in zip(node.outputs, values))
        return g.params, body, [lookup(o, env) for o in g.outputs]

    return GraphMap(rewrite)(graph)


# Most node evaluations a folded loop may cost (trip count times body nodes).
LOOP_BUDGET = 10_000


def _foldable(node, inputs, limit) -> bool:
    if has_effect(node) or not all(isinstance(a, Const) for a in inputs):
        return False
    if any(o.aval.size > limit for o in node.outputs):
        return False
    if node.subgraphs():
        return _loop_cost(node, inputs) <= LOOP_BUDGET
    return True


def _loop_cost(node, inputs) -> float:
    """An upper bound on the node evaluations of a loop with constant inputs (inf: unknown).

    ``call`` and ``cond`` are left to ``inline`` and ``simplify``; a ``while_loop`` is bounded
    only by ``max_steps``."""
    p, name = node.params, node.prim.name
    if name == "fori_loop":
        trips = max(0, int(inputs[1].value) - int(inputs[0].value))
        return trips * (1 + p["body"].count_nodes())
    if name == "scan":
        return p["length"] * (1 + p["body"].count_nodes())
    if name == "while_loop" and p.get("max_steps") is not None:
        return (p["max_steps"] + 1) * (2 + p["cond_graph"].count_nodes()
                                       + p["body_graph"].count_nodes())
    return float("inf")


def _try_fold(node, inputs, limit):
    """The output arrays of ``node`` on constant ``inputs``, or None when it is not folded."""
    if not _foldable(node, inputs, limit):
        return None
    try:
        with np.errstate(all="ignore"):
            out = node.prim.impl(*[a.value for a in inputs], **node.params)
    except Exception:  # leave a failing node in place: the interpreter reports it with context
        return None
    outs = out if node.prim.multiple_results else (out,)
    values = []
    for o, v in zip(node.outputs, outs):
        arr = np.asarray(v)
        if arr.dtype != o.aval.dtype:  # the interpreter casts to the recorded dtype the same way
            arr = arr.astype(o.aval.dtype)
        if arr.shape != o.aval.shape:
            return None
        values.append(arr)
    return values
