"""Shared machinery of the passes: a memoised Graph -> Graph map that keeps sharing and recursion.

A pass rewrites one graph body at a time. Subgraphs held in node params (branches, loop bodies,
callees) are rewritten by the same pass through ``GraphMap``, once per graph object, so a subgraph
shared by two nodes stays shared and a graph that calls itself maps to a new graph that calls
itself. Passes never mutate their input: they build new ``Apply`` nodes and new ``Graph`` objects
(Vars, which are immutable, may be shared between the input and the output).
"""

from __future__ import annotations

from collections.abc import Callable

from ..ir import Apply, Graph, Var


class GraphMap:
    """Apply ``rewrite(graph, self) -> (params, body, outputs)`` to a graph and its subgraphs.

    The new graph object is registered before its body is rewritten, so a recursive reference
    met while rewriting the body resolves to the (not yet filled) new graph.
    """

    def __init__(self, rewrite: Callable):
        self.rewrite = rewrite
        self.memo: dict[int, tuple[Graph, Graph]] = {}

    def __call__(self, g: Graph) -> Graph:
        hit = self.memo.get(id(g))
        if hit is not None:
            return hit[1]
        new = Graph(list(g.params), [], list(g.outputs), g.name, dict(g.meta))
        self.memo[id(g)] = (g, new)  # keep g alive so its id is not reused during the pass
        params, body, outputs = self.rewrite(g, self)
        new.params, new.body, new.outputs = list(params), list(body), list(outputs)
        return new

    def params(self, params: dict) -> dict:
        """Node params with every graph inside replaced by its rewritten version."""
        return {k: map_graphs(v, self) for k, v in params.items()}


def map_graphs(obj, fn: Callable):
    """``obj`` with each Graph inside (nested in tuples, lists, dicts) replaced by ``fn(graph)``."""
    if isinstance(obj, Graph):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(map_graphs(v, fn) for v in obj)
    if isinstance(obj, list):
        return [map_graphs(v, fn) for v in obj]
    if isinstance(obj, dict):
        return {k: map_graphs(v, fn) for k, v in obj.items()}
    return obj


def rebuild(node: Apply, inputs, params=None, outputs=None) -> Apply:
    """A copy of ``node`` with new inputs (and optionally params and outputs)."""
    return Apply(node.prim, tuple(inputs), dict(node.params if params is None else params),
                 tuple(node.outputs if outputs is None else outputs), node.source)


def lookup(atom, env: dict):
    """``atom`` renamed through ``env`` (Var id -> atom); constants and unmapped Vars pass."""
    if isinstance(atom, Var):
        return env.get(atom.id, atom)
    return atom


def reachable_graphs(g: Graph) -> list[Graph]:
    """Every graph reachable from ``g`` through node params, ``g`` included, each once."""
    seen: dict[int, Graph] = {}
    stack = [g]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen[id(cur)] = cur
        for node in cur.body:
            stack.extend(node.subgraphs())
    return list(seen.values())


def all_nodes(g: Graph):
    """Every node of ``g`` and of the graphs reachable from it, each graph once."""
    for sub in reachable_graphs(g):
        yield from sub.body


def is_recursive(g: Graph) -> bool:
    """True when ``g`` can reach itself through the subgraphs of its nodes (direct or mutual)."""
    stack = [s for node in g.body for s in node.subgraphs()]
    seen: set[int] = set()
    while stack:
        cur = stack.pop()
        if cur is g:
            return True
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        stack.extend(s for node in cur.body for s in node.subgraphs())
    return False


def has_effect(node: Apply) -> bool:
    """Nodes tagged "effect" (I/O, printing, in-place updates) must not be dropped or merged."""
    return "effect" in node.prim.tags
