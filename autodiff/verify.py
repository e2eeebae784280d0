"""``verify(graph)``: check the IR invariants and name the offending node.

Checked: every Var is defined once (SSA) before it is used; node outputs are fresh; the number of
inputs (by the rule, or by the "unary"/"binary"/"ternary" tag) and outputs fits the primitive;
re-running each primitive's shape/dtype rule on the input avals reproduces the recorded output
avals; subgraphs verify too (each once, so recursion ends).
"""

from __future__ import annotations

from .errors import SciMLError, VerifyError
from .ir import Const, Graph, Var, format_const


def verify(graph: Graph) -> Graph:
    """Raise VerifyError naming the first broken node; return the graph when it is well formed."""
    _verify(graph, set())
    return graph


def _verify(g: Graph, seen: set[int]):
    if id(g) in seen:
        return
    seen.add(id(g))
    defined: set[int] = set()
    for p in g.params:
        if not isinstance(p, Var):
            raise VerifyError(f"graph {g.name}: parameter {p!r} is not a Var")
        if p.id in defined:
            raise VerifyError(f"graph {g.name}: parameter {p!r} appears twice")
        defined.add(p.id)
    for k, node in enumerate(g.body):
        where = f"graph {g.name}, node {k} ({node.prim.name}" + (
            f", from {node.source})" if node.source else ")")
        for a in node.inputs:
            if isinstance(a, Var) and a.id not in defined:
                raise VerifyError(f"{where}: input {a!r} is used before it is defined")
            if not isinstance(a, (Var, Const)):
                raise VerifyError(f"{where}: input {a!r} is not a Var or Const")
        _check_types(node, where)
        for o in node.outputs:
            if o.id in defined:
                raise VerifyError(f"{where}: output {o!r} is defined twice (SSA violated)")
            defined.add(o.id)
        for sub in node.subgraphs():
            _verify(sub, seen)
    for o in g.outputs:
        if isinstance(o, Var) and o.id not in defined:
            raise VerifyError(f"graph {g.name}: output {o!r} is not defined in the graph")


# Elementwise rules accept any number of operands (they broadcast them all); the tags say how
# many the primitive really takes.
_ARITY_TAGS = {"unary": 1, "binary": 2, "ternary": 3}


def _check_arity(node, where: str):
    for tag, n in _ARITY_TAGS.items():
        if tag in node.prim.tags and len(node.inputs) != n:
            raise VerifyError(f"{where}: {node.prim.name} takes {n} input(s), got "
                              f"{len(node.inputs)}")


def _check_types(node, where: str):
    _check_arity(node, where)
    try:
        out = node.prim.abstract_eval(*[a.aval for a in node.inputs], **node.params)
    except SciMLError as e:
        raise VerifyError(f"{where}: {e}") from None
    except TypeError as e:
        raise VerifyError(f"{where}: wrong inputs or params: {e}") from None
    outs = out if node.prim.multiple_results else (out,)
    if len(outs) != len(node.outputs):
        raise VerifyError(f"{where}: {len(node.outputs)} outputs recorded, the rule gives "
                          f"{len(outs)}")
    for i, (want, got) in enumerate(zip(outs, node.outputs)):
        if want.shape != got.aval.shape or want.dtype != got.aval.dtype:
            raise VerifyError(f"{where}: output {i} is recorded as {got.aval}, the rule gives "
                              f"{want}")
    for a in node.inputs:
        if isinstance(a, Const) and (a.value.shape != a.aval.shape or
                                     a.value.dtype != a.aval.dtype):
            raise VerifyError(f"{where}: constant {format_const(a)} disagrees with its value")
