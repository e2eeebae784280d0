"""Algebraic simplification: local rewrites that never change a value, NaN/Inf/-0.0 included.

Each rule sees one node (with its inputs already rewritten) and returns the atom that replaces
its output, a replacement node, or None. A node is only replaced by an atom whose abstract value
(shape, dtype, weak flag) equals the node's output, so broadcasting ``x * ones((3, 3))`` with a
smaller ``x`` is left alone, and so is ``x * 1.0`` on a weakly typed ``x`` (a Python-scalar
argument), whose product is strongly typed: the graph's result types never change.
The rules, and why each is exact:

- ``x * 1``, ``1 * x``, ``x / 1`` -> ``x`` for real floats, integers and booleans (IEEE: exact,
  NaN stays NaN, -0.0 stays -0.0). Not for complex: ``(a + inf j) * 1`` gives ``nan``.
- ``x + (-0.0)``, ``(-0.0) + x``, ``x - 0.0`` -> ``x`` for real floats (``-0.0 + -0.0 = -0.0``);
  ``x + 0`` and ``x - 0`` -> ``x`` for integers and ``x + False`` for booleans. ``x + 0.0`` stays:
  it turns ``-0.0`` into ``+0.0``.
- ``x * 0`` -> zeros for integers and booleans only (for floats ``inf * 0`` is NaN).
- ``x & all-ones``, ``x | 0``, ``x ^ 0``, ``x & x``, ``x | x`` -> ``x`` and ``x ^ x``,
  ``x - x`` -> zeros for integers and booleans (for floats ``inf - inf`` is NaN).
- ``maximum(x, x)``, ``minimum(x, x)``, ``select(c, x, x)`` -> ``x``.
- ``convert(convert(x, wide), dtype(x))`` -> ``x`` when every value of ``x`` is exact in the
  wide type (float32 -> float64 -> float32, bfloat16 -> float32 -> bfloat16, int32 -> int64,
  bool -> anything, real -> complex); not float64 -> float32 -> float64, which rounds.
- ``neg(neg x)`` -> ``x``; ``rev(rev(x, a), a)`` -> ``x``.
- ``convert`` to the same dtype, ``reshape`` to the same shape, ``transpose`` by the identity,
  ``broadcast_in_dim`` to the same shape, ``slice`` of the whole array, ``pad`` by zero,
  ``shift`` by zero, ``rev`` of no axes, ``concatenate`` of one array, ``reduce_prod``/
  ``reduce_max``/``reduce_min`` over no axes, ``integer_pow[y=1]`` -> the operand. Not
  ``reduce_sum`` over no axes: numpy adds the element to +0.0, so -0.0 comes out as +0.0.
- ``reshape(reshape x)`` -> one ``reshape``; ``transpose(transpose x)`` -> one ``transpose``
  with the composed permutation (the inner node is left to ``dce``).
- ``select(c, a, b)`` with a constant all-true (all-false) predicate -> ``a`` (``b``).
- ``cond`` with a constant predicate/index -> ``call`` of the chosen branch (``inline`` then
  splices it in).

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> from autodiff.trace import make_graph
>>> g = make_graph(lambda x: -(-(x * 1.0)) - 0.0, np.zeros(3))
>>> from autodiff.passes.dce import dce
>>> print(dce(simplify(g)))  # simplify leaves the inner neg to dce
graph <lambda>(a:f64[3]) {
  return a
}
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..ir import Apply, Const, Graph, Var
from ..primitives import get as get_primitive
from .fold import FOLD_LIMIT
from .rewrite import GraphMap, lookup, rebuild


def simplify(graph: Graph) -> Graph:
    """A new graph with the algebraic identities above applied (one sweep per graph)."""

    def rewrite(g: Graph, sub: GraphMap):
        env: dict[int, object] = {}
        defs: dict[int, Apply] = {}  # Var id -> the node of the new body that defines it
        body = []
        for node in g.body:
            new = rebuild(node, [lookup(a, env) for a in node.inputs], sub.params(node.params))
            rule = RULES.get(node.prim.name)
            out = rule(new, defs) if rule else None
            if isinstance(out, (Var, Const)):
                env[node.outputs[0].id] = out
                continue
            if isinstance(out, Apply):  # built from ``new``: its subgraphs are rewritten already
                new = out
            body.append(new)
            defs.update((o.id, new) for o in new.outputs)
        return g.params, body, [lookup(o, env) for o in g.outputs]

    return GraphMap(rewrite)(graph)


# ---------------------------------------------------------------------------------------------
# Helpers


def _same(atom, node: Apply):
    """``atom`` when it can stand for the node's single output (equal abstract values)."""
    return atom if atom.aval == node.outputs[0].aval else None


def _const_is(a, value, signbit=None) -> bool:
    """True when ``a`` is a constant whose every element equals ``value`` (and, for zeros, has
    the given sign bit)."""
    if not isinstance(a, Const) or a.value.size == 0:
        return False
    v = a.value
    if v.dtype == dtypes.bfloat16:
        v = v.astype(np.float32)
    with np.errstate(all="ignore"):
        if not np.all(v == value):
            return False
    return signbit is None or bool(np.all(np.signbit(v) == signbit))


def _kind(node: Apply) -> str:
    d = node.outputs[0].aval.dtype
    if d == np.bool_:
        return "bool"
    if dtypes.is_integer(d):
        return "int"
    return "complex" if dtypes.is_complex(d) else "float"


def _either(node: Apply, test):
    """The operand that remains when the other operand of a binary node passes ``test``."""
    x, y = node.inputs
    if test(y):
        return _same(x, node)
    if test(x):
        return _same(y, node)
    return None


def _zeros(node: Apply):
    aval = node.outputs[0].aval
    if aval.size > FOLD_LIMIT:
        return None
    return Const(np.zeros(aval.shape, aval.dtype), aval)


# ---------------------------------------------------------------------------------------------
# Rules for arithmetic


def _mul(node, defs):
    kind = _kind(node)
    if kind == "complex":
        return None
    found = _either(node, lambda a: _const_is(a, 1))
    if found is None and kind in ("int", "bool") and any(_const_is(a, 0) for a in node.inputs):
        return _zeros(node)
    return found


def _div(node, defs):
    x, y = node.inputs
    return _same(x, node) if _kind(node) == "float" and _const_is(y, 1) else None


def _add(node, defs):
    kind = _kind(node)
    if kind == "float":
        return _either(node, lambda a: _const_is(a, 0, signbit=True))
    if kind in ("int", "bool"):
        return _either(node, lambda a: _const_is(a, 0))
    return None


def _sub(node, defs):
    x, y = node.inputs
    kind = _kind(node)
    if kind == "int" and _same_var(x, y):  # for floats inf - inf is NaN
        return _zeros(node)
    if kind == "float" and _const_is(y, 0, signbit=False):
        return _same(x, node)
    if kind == "int" and _const_is(y, 0):
        return _same(x, node)
    return None


def _bitwise_identity(identity):
    def rule(node, defs):
        if _kind(node) not in ("int", "bool"):
            return None
        x, y = node.inputs
        if _same_var(x, y):  # x & x = x | x = x, x ^ x = 0
            return _zeros(node) if node.prim.name == "xor" else _same(x, node)
        ident = True if identity == -1 and _kind(node) == "bool" else identity
        return _either(node, lambda a: _const_is(a, ident))

    return rule


def _idempotent(node, defs):
    """``maximum(x, x)`` and ``minimum(x, x)`` are ``x``, NaN and -0.0 included."""
    x, y = node.inputs
    return _same(x, node) if _same_var(x, y) else None


def _same_var(x, y) -> bool:
    return isinstance(x, Var) and x is y


def _neg(node, defs):
    inner = _defined_by(node.inputs[0], defs, "neg")
    return _same(inner.inputs[0], node) if inner else None


def _integer_pow(node, defs):
    return _same(node.inputs[0], node) if node.params["y"] == 1 else None


def _select(node, defs):
    pred, a, b = node.inputs
    if _same_var(a, b):
        return _same(a, node)
    if _const_is(pred, True):
        return _same(a, node)
    if _const_is(pred, False):
        return _same(b, node)
    return None


# ---------------------------------------------------------------------------------------------
# Rules for structure


def _identity_if(test):
    """A rule that returns the operand when ``test(node)`` holds (and the avals agree)."""

    def rule(node, defs):
        return _same(node.inputs[0], node) if test(node) else None

    return rule


def _defined_by(atom, defs, prim_name):
    node = defs.get(atom.id) if isinstance(atom, Var) else None
    return node if node is not None and node.prim.name == prim_name else None


def _reshape(node, defs):
    x = node.inputs[0]
    if x.aval.shape == tuple(node.params["new_shape"]):
        return _same(x, node)
    inner = _defined_by(x, defs, "reshape")
    if inner is None:
        return None
    return _same(inner.inputs[0], node) or rebuild(node, [inner.inputs[0]])


def _transpose(node, defs):
    perm = tuple(node.params["permutation"])
    x = node.inputs[0]
    inner = _defined_by(x, defs, "transpose")
    if inner is not None:
        x, first = inner.inputs[0], tuple(inner.params["permutation"])
        perm = tuple(first[p] for p in perm)
    if perm == tuple(range(len(perm))):
        return _same(x, node)
    if inner is None:
        return None
    return rebuild(node, [x], {"permutation": perm})


def _rev(node, defs):
    axes = tuple(node.params["axes"])
    if not axes:
        return _same(node.inputs[0], node)
    inner = _defined_by(node.inputs[0], defs, "rev")
    if inner is not None and sorted(inner.params["axes"]) == sorted(axes):
        return _same(inner.inputs[0], node)
    return None


def _whole_slice(node) -> bool:
    shape = node.inputs[0].aval.shape
    strides = node.params.get("strides") or (1,) * len(shape)
    return (all(s == 0 for s in node.params["start"])
            and tuple(node.params["limit"]) == shape and all(s == 1 for s in strides))


def _concatenate(node, defs):
    return _same(node.inputs[0], node) if len(node.inputs) == 1 else None


def _cond(node, defs):
    index = node.inputs[0]
    if not isinstance(index, Const):
        return None
    branches = node.params["branches"]
    i = min(max(int(index.value), 0), len(branches) - 1)
    return Apply(get_primitive("call"), tuple(node.inputs[1:]), {"graph": branches[i]},
                 node.outputs, node.source)


def _reduces_nothing(node) -> bool:
    axes = node.params["axes"]
    if isinstance(axes, (int, np.integer)):
        return False
    return node.inputs[0].aval.ndim == 0 if axes is None else len(tuple(axes)) == 0


_no_axes = _identity_if(_reduces_nothing)

# Conversions that every value survives exactly (so converting back gives the value again).
_EXACT_WIDENING = {
    "bool": {"int32", "int64", "float16", "bfloat16", "float32", "float64", "complex64",
             "complex128"},
    "int32": {"int64", "float64", "complex128"},
    "float16": {"float32", "float64", "complex64", "complex128"},
    "bfloat16": {"float32", "float64", "complex64", "complex128"},
    "float32": {"float64", "complex64", "complex128"},
    "float64": {"complex128"},
    "complex64": {"complex128"},
}


def _convert(node, defs):
    x, target = node.inputs[0], node.params["new_dtype"]
    if x.aval.dtype == target:
        return _same(x, node)
    inner = _defined_by(x, defs, "convert")
    if inner is None:
        return None
    source = inner.inputs[0]
    middle = str(dtypes.dtype(inner.params["new_dtype"]))
    if source.aval.dtype == target and middle in _EXACT_WIDENING.get(str(target), ()):
        return _same(source, node)  # a round trip through a wider type
    return None

# One row per primitive: the rule that simplifies it.
RULES = {
    "mul": _mul,
    "div": _div,
    "add": _add,
    "sub": _sub,
    "and": _bitwise_identity(-1),
    "or": _bitwise_identity(0),
    "xor": _bitwise_identity(0),
    "neg": _neg,
    "integer_pow": _integer_pow,
    "select": _select,
    "convert": _convert,
    "maximum": _idempotent,
    "minimum": _idempotent,
    "reshape": _reshape,
    "transpose": _transpose,
    "broadcast_in_dim": _identity_if(lambda n: n.inputs[0].aval.shape == tuple(n.params["shape"])),
    "slice": _identity_if(_whole_slice),
    "pad": _identity_if(lambda n: all(a == 0 and b == 0 for a, b in n.params["pad_width"])),
    "shift": _identity_if(lambda n: all(o == 0 for o in n.params["offset"])),
    "rev": _rev,
    "concatenate": _concatenate,
    "reduce_prod": _no_axes,
    "reduce_max": _no_axes,
    "reduce_min": _no_axes,
    "cond": _cond,
}
