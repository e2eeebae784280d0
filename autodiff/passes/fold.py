"""Constant folding: evaluate nodes whose inputs are all constants.

A foldable node runs its primitive's numpy implementation (the same one the interpreter uses, so
the folded value is the value the graph would compute, bit for bit) and its outputs become
constants. Not folded: results larger than ``FOLD_LIMIT`` elements (no huge constants baked into
the graph; nullary ``iota`` of a big shape stays a node), control flow (a constant ``while_loop``
might run long; a ``cond`` with a constant predicate is turned into a ``call`` by ``simplify``),
primitives tagged "effect", and nodes whose implementation raises.

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


def _foldable(node, inputs, limit) -> bool:
    return (
        node.prim.family != "control"
        and not node.subgraphs()
        and not has_effect(node)
        and all(isinstance(a, Const) for a in inputs)
        and all(o.aval.size <= limit for o in node.outputs)
    )


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
