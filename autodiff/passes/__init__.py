"""Graph -> Graph optimisation passes: inline, dce, cse, fold, simplify, and ``optimize``.

Each pass is one function in its own file; none mutates its input. ``optimize`` runs them to a
fixed point. With ``SCIML_DEBUG=verify`` (a comma-separated list may name other stages too)
every pass's result is checked by ``verify``, which names the first broken node.

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> from autodiff.trace import make_graph
>>> def f(x):
...     y = np.sin(x) * 1.0
...     unused = np.exp(x)
...     return y + np.sin(x)
>>> print(optimize(make_graph(f, np.zeros(3))))
graph f(a:f64[3]) {
  b:f64[3] = sin a
  c:f64[3] = add b b
  return c
}
"""

from __future__ import annotations

import os

from ..ir import Graph
from ..verify import verify
from .cse import cse, graph_key
from .dce import dce
from .fold import fold
from .inline import inline
from .layout import fold_transposes
from .simplify import simplify

__all__ = ["PIPELINE", "cse", "dce", "fold", "fold_transposes", "inline", "optimize", "simplify"]

# The order of one round. inline first so the other passes see across former call boundaries
# (simplify turns a cond on a constant into a call, so inline runs again each round); fold
# before simplify exposes constant operands (x * (2 - 1)); cse after them merges what they made
# equal; dce last removes what the others left unused.
PIPELINE = (inline, fold, simplify, cse, dce)


def debug_verify() -> bool:
    """True when ``SCIML_DEBUG`` names ``verify`` (or ``all``)."""
    flags = os.environ.get("SCIML_DEBUG", "").replace(" ", "").split(",")
    return "verify" in flags or "all" in flags


def optimize(graph: Graph, max_rounds: int = 8) -> Graph:
    """Run ``PIPELINE`` until a round changes nothing (at most ``max_rounds`` rounds)."""
    check = debug_verify()
    key = graph_key(graph)
    for _ in range(max_rounds):
        for run in PIPELINE:
            graph = run(graph)
            if check:
                verify(graph)
        new_key = graph_key(graph)
        if new_key == key:
            break
        key = new_key
    return graph
