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

from autodiff.api import grad, hessian, hvp, jacfwd, jacrev, jvp, linearize, value_and_grad, vjp
from autodiff.batching import vmap
from autodiff.checkpoint import checkpoint, checkpointed_fori_loop, checkpointed_scan
from autodiff.custom import custom_jvp, custom_vjp
from autodiff.interpret import eval_graph
from autodiff.ir import AbstractValue, Graph
from autodiff.laplacian import laplacian
from autodiff.ops.control import cond, fori_loop, graph_function, scan, switch, while_loop
from autodiff.pytree import tree_flatten, tree_leaves, tree_map, tree_unflatten
from autodiff.serialize import dumps, load, loads, save
from autodiff.taylor import derivatives, jet
from autodiff.trace import make_graph
from autodiff.verify import verify
from kernels.jit import jit

# sciml.numpy registers the numpy-protocol handlers on import.
from . import errors, fft, linalg, nn, numpy, ocean, optim, precision, random  # noqa: F401
from .equations import from_sympy
from .solution import Solution
from .solve import solve

function = graph_function
ShapeDtype = AbstractValue

__all__ = [
    "AbstractValue", "Graph", "ShapeDtype", "Solution", "checkpoint", "checkpointed_fori_loop",
    "checkpointed_scan",
    "cond", "custom_jvp", "custom_vjp", "derivatives", "dumps", "errors", "eval_graph", "fft",
    "fori_loop", "from_sympy", "function", "grad", "graph_function", "hessian", "hvp", "jacfwd",
    "jacrev", "jet", "jit", "jvp", "laplacian", "linalg", "linearize", "load", "loads",
    "make_graph", "nn", "numpy", "ocean", "optim", "precision", "random", "save", "scan",
    "solve", "switch", "tree_flatten",
    "tree_leaves", "tree_map", "tree_unflatten", "value_and_grad", "verify", "vjp", "vmap",
    "while_loop",
]
