"""sciml: differentiable scientific computing. Equations as code, one functional graph IR,
higher-order autodiff, fused kernels.

The front end: ``sciml.numpy`` (numpy's names, traced or eager), tracing (``make_graph``),
the reference interpreter (``eval_graph``), control flow (``cond``, ``while_loop``,
``fori_loop``, ``scan``, ``function`` for named/recursive graphs), save/load of graphs.

>>> import sciml, numpy as np
>>> g = sciml.make_graph(lambda x: np.sin(x) ** 2, np.zeros(3))
>>> float(sciml.eval_graph(g, np.full(3, np.pi / 2))[0])
1.0
"""

from autodiff.interpret import eval_graph
from autodiff.ir import AbstractValue, Graph
from autodiff.ops.control import cond, fori_loop, graph_function, scan, switch, while_loop
from autodiff.pytree import tree_flatten, tree_leaves, tree_map, tree_unflatten
from autodiff.serialize import dumps, load, loads, save
from autodiff.trace import make_graph
from autodiff.verify import verify

from . import errors, numpy  # noqa: F401  (numpy registers the numpy-protocol handlers)

function = graph_function
ShapeDtype = AbstractValue

__all__ = [
    "AbstractValue", "Graph", "ShapeDtype", "cond", "dumps", "errors", "eval_graph",
    "fori_loop", "function", "graph_function", "load", "loads", "make_graph", "numpy",
    "save", "scan", "switch", "tree_flatten", "tree_leaves", "tree_map", "tree_unflatten",
    "verify", "while_loop",
]
