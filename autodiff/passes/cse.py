"""Common-subexpression elimination: compute each distinct (primitive, inputs, params) once.

Nodes are hash-consed on a key made of the primitive name, the keys of the inputs (a Var by its
canonical representative, a constant by dtype, shape, weak flag and value bytes) and the params
(a subgraph by its structure, see ``graph_key``). Inputs of primitives tagged "commutative" are
sorted first, but only where swapping operands is exact to the bit: ``maximum``/``minimum`` of
floats pick the first of two signed zeros, so they are sorted for integers and booleans only.
Random primitives are keyed (pure), so equal draws may merge; "effect" nodes never merge.

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> from autodiff.trace import make_graph
>>> g = make_graph(lambda x: np.sin(x) * 2.0 + np.sin(x) * 2.0, np.zeros(3))
>>> len(g.body), len(cse(g).body)
(5, 3)
"""

from __future__ import annotations

import numpy as np

from ..ir import Const, Graph, Var
from .rewrite import GraphMap, has_effect, lookup, rebuild

# Commutative primitives whose operand order can change the bits of the result on floats.
_ORDER_SENSITIVE_ON_FLOATS = {"maximum", "minimum"}


def cse(graph: Graph) -> Graph:
    """A new graph in which repeated computations are replaced by their first occurrence."""
    keys = _Keys()

    def rewrite(g: Graph, sub: GraphMap):
        env: dict[int, object] = {}
        seen: dict = {}
        body = []
        for node in g.body:
            inputs = [lookup(a, env) for a in node.inputs]
            # Key on the original params: a rewritten recursive subgraph may still be unfilled.
            key = None if has_effect(node) else keys.node(node, inputs=inputs)
            new = rebuild(node, inputs, sub.params(node.params))
            if key is not None and key in seen:
                env.update((o.id, r) for o, r in zip(node.outputs, seen[key].outputs))
                continue
            if key is not None:
                seen[key] = new
            body.append(new)
        return g.params, body, [lookup(o, env) for o in g.outputs]

    return GraphMap(rewrite)(graph)


class _Keys:
    """Hashable keys of atoms, params and whole graphs (memoised per graph object)."""

    def __init__(self):
        self.graphs: dict[int, tuple] = {}
        self.active: list[int] = []

    def node(self, node, var_key=None, inputs=None):
        var_key = var_key or _var_id
        ins = [self.atom(a, var_key) for a in (node.inputs if inputs is None else inputs)]
        if len(ins) == 2 and "commutative" in node.prim.tags and _exact_commutative(node):
            # Any fixed order will do within one run; hashes are cheap to compare.
            if hash(ins[0]) > hash(ins[1]):
                ins.reverse()
        params = self.param(node.params) if node.params else ()
        return (node.prim.name, tuple(ins), params)

    def atom(self, a, var_key):
        if isinstance(a, Var):
            return var_key(a)
        return const_key(a)

    def param(self, v):
        if isinstance(v, Graph):
            return self.graph(v)
        if isinstance(v, dict):
            return ("dict", tuple(sorted((k, self.param(x)) for k, x in v.items())))
        if isinstance(v, (tuple, list)):
            return (type(v).__name__, tuple(self.param(x) for x in v))
        if isinstance(v, float) or isinstance(v, np.floating):
            return ("float", float(v).hex())  # NaN keys equal themselves this way
        if isinstance(v, np.ndarray):
            return ("array", str(v.dtype), v.shape, v.tobytes())
        if isinstance(v, np.dtype) or isinstance(v, type):
            return ("dtype", str(np.dtype(v)))
        try:
            hash(v)
        except TypeError:
            return ("object", id(v))
        return v

    def graph(self, g: Graph):
        """Structural key of a graph: equal keys mean the same function. Variables are numbered
        by definition order; a recursive reference is keyed by how many graphs up the chain of
        enclosing graphs it points (like a de Bruijn index), so keys do not depend on object
        identity and a rewritten copy of a graph has the same key as the original."""
        if id(g) in self.active:
            return ("rec", len(self.active) - 1 - self.active.index(id(g)))
        if id(g) in self.graphs:
            return self.graphs[id(g)]
        self.active.append(id(g))
        try:
            number: dict[int, int] = {}

            def var_key(v):
                return ("v", number.setdefault(v.id, len(number)))

            params = tuple((var_key(p), p.aval) for p in g.params)
            body = tuple((self.node(n, var_key), tuple((var_key(o), o.aval) for o in n.outputs))
                         for n in g.body)
            outs = tuple(self.atom(o, var_key) for o in g.outputs)
        finally:
            self.active.pop()
        key = ("graph", params, body, outs)
        if not self.active:  # a key computed inside another graph may hold relative references
            self.graphs[id(g)] = key
        return key


def const_key(c: Const):
    return ("c", c.value.dtype, c.value.shape, c.aval.weak, c.value.tobytes())


def _var_id(v: Var):
    return ("v", v.id)


def _exact_commutative(node) -> bool:
    if node.prim.name not in _ORDER_SENSITIVE_ON_FLOATS:
        return True
    d = node.outputs[0].aval.dtype
    return d == np.bool_ or np.issubdtype(d, np.integer)


def graph_key(graph: Graph):
    """The structural key CSE uses for a graph (useful to detect that a pass changed nothing)."""
    return _Keys().graph(graph)
