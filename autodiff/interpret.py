"""The reference interpreter: evaluates a Graph with each primitive's numpy implementation."""

from __future__ import annotations

import numpy as np

from .errors import ArityError, SciMLError
from .ir import Const, Graph
from .pytree import tree_flatten, tree_unflatten
from .trace import abstractify


def eval_graph_flat(graph: Graph, args) -> list:
    """Evaluate ``graph`` on a flat list of arrays; returns the flat list of outputs."""
    if len(args) != len(graph.params):
        raise ArityError(
            f"graph {graph.name} takes {len(graph.params)} arguments, got {len(args)}"
        )
    env: dict[int, np.ndarray] = {}
    for p, a in zip(graph.params, args):
        env[p.id] = _as(a, p.aval)
    for node in graph.body:
        ins = [a.value if isinstance(a, Const) else env[a.id] for a in node.inputs]
        try:
            out = node.prim.impl(*ins, **node.params)
        except (SciMLError, RecursionError):
            raise  # a RecursionError passes through unwrapped: wrapping each level is quadratic
        except Exception as e:  # a bug or a runtime failure in the numpy reference
            where = f" (from {node.source})" if node.source else ""
            raise type(e)(f"while evaluating {node.prim.name}{where}: {e}") from e
        outs = out if node.prim.multiple_results else (out,)
        for v, o in zip(node.outputs, outs):
            env[v.id] = _as(o, v.aval)
    return [o.value if isinstance(o, Const) else env[o.id] for o in graph.outputs]


def _as(x, aval):
    arr = np.asarray(x)
    if arr.dtype != aval.dtype:
        arr = arr.astype(aval.dtype)
    if arr.shape != aval.shape:
        raise SciMLError(f"interpreter: value of shape {arr.shape} where {aval} was expected")
    return arr


def eval_graph(graph: Graph, *args):
    """Evaluate a graph made by ``make_graph`` on pytree arguments (or flat arrays).

    >>> import numpy as np
    >>> from autodiff.trace import make_graph
    >>> g = make_graph(lambda x, y: (x * y, x + y), 2.0, 3.0)
    >>> eval_graph(g, 2.0, 5.0)
    (array(10.), array(7.))
    """
    in_tree = graph.meta.get("in_tree")
    leaves, tree = tree_flatten(args)
    if in_tree is not None and tree != in_tree and len(leaves) == len(graph.params):
        pass  # flat arguments for a graph traced from pytrees: accept them as given
    elif in_tree is not None and tree != in_tree:
        raise ArityError(f"graph {graph.name} expects arguments structured as {in_tree}, "
                         f"got {tree}")
    extra = graph.meta.get("captured") or []
    if len(leaves) + len(extra) == len(graph.params) and extra:
        leaves = leaves + [np.asarray(c) for c in extra]
    for i, (x, p) in enumerate(zip(leaves, graph.params)):
        a = abstractify(x)
        if a.shape != p.aval.shape:
            raise ArityError(f"graph {graph.name}: argument {i} has shape {a.shape}, the graph "
                             f"was traced for {p.aval}")
    outs = eval_graph_flat(graph, leaves)
    out_tree = graph.meta.get("out_tree")
    if out_tree is None:
        return outs[0] if len(outs) == 1 else tuple(outs)
    return tree_unflatten(out_tree, outs)
