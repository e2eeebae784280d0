"""The functional graph IR: abstract values, variables, constants, Apply nodes and Graphs.

A ``Graph`` is a function: ordered parameters, a body of ``Apply`` nodes in SSA order (each node
defines fresh output variables exactly once), and outputs. Graphs are values: an ``Apply`` may
hold subgraphs in its params (the branches of ``cond``, the body of ``scan``, the callee of
``call``); free variables of a closure are passed explicitly as extra inputs, so every graph is
closed. A graph may call itself through ``call`` (recursion).

The text form reads like a small functional language::

    graph f(a:f64[3], b:f64[3]) {
      c:f64[3] = mul a b
      d:f64[3] = sin c
      return d
    }
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import dtypes

# ---------------------------------------------------------------------------------------------
# Abstract values


@dataclass(frozen=True)
class AbstractValue:
    """What tracing knows about a value: its shape, dtype and whether it is a weak scalar type."""

    shape: tuple[int, ...]
    dtype: np.dtype
    weak: bool = False

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "dtype", dtypes.dtype(self.dtype))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def update(self, shape=None, dtype=None, weak=None) -> AbstractValue:
        return AbstractValue(
            self.shape if shape is None else shape,
            self.dtype if dtype is None else dtype,
            self.weak if weak is None else weak,
        )

    def strong(self) -> AbstractValue:
        return self.update(weak=False) if self.weak else self

    def __str__(self):
        return f"{short_dtype(self.dtype)}[{','.join(map(str, self.shape))}]" + (
            "~" if self.weak else ""
        )


_SHORT = {
    "bool": "bool", "int32": "i32", "int64": "i64", "float16": "f16", "bfloat16": "bf16",
    "float32": "f32", "float64": "f64", "complex64": "c64", "complex128": "c128",
}
_LONG = {v: k for k, v in _SHORT.items()}


def short_dtype(d) -> str:
    return _SHORT.get(str(dtypes.dtype(d)), str(d))


def long_dtype(s: str) -> np.dtype:
    return dtypes.dtype(_LONG.get(s, s))


def aval_of(x) -> AbstractValue:
    """The abstract value of a concrete array or Python scalar (Python scalars are weak)."""
    if isinstance(x, (bool, int, float, complex)) and not isinstance(x, np.generic):
        arr = np.asarray(x)
        return AbstractValue((), dtypes.result_type((arr.dtype, True))[0], True)
    arr = np.asarray(x)
    return AbstractValue(arr.shape, dtypes.check_supported(arr.dtype, "argument"))


# ---------------------------------------------------------------------------------------------
# Atoms: variables and constants

_ids = itertools.count()


class Var:
    """An SSA variable. Identity is the object itself; names are given when printing."""

    __slots__ = ("aval", "id", "hint")

    def __init__(self, aval: AbstractValue, hint: str | None = None):
        self.aval = aval
        self.id = next(_ids)
        self.hint = hint

    def __repr__(self):
        return f"Var({self.id}:{self.aval})"


class Const:
    """A constant value embedded in a graph (a Python scalar or a numpy array)."""

    __slots__ = ("value", "aval")

    def __init__(self, value, aval: AbstractValue | None = None):
        arr = np.asarray(value)
        if aval is None:
            aval = aval_of(value)
        if arr.dtype != aval.dtype:
            arr = arr.astype(aval.dtype)
        self.value = arr
        self.aval = aval

    def __repr__(self):
        return f"Const({format_const(self)})"


Atom = Var | Const


def format_const(c: Const) -> str:
    v = c.value
    if v.ndim == 0:
        s = repr(v.item()) if v.dtype != dtypes.bfloat16 else repr(float(v))
        return f"{s}:{c.aval}"
    if v.size <= 6:
        shown = v.astype(np.float32) if v.dtype == dtypes.bfloat16 else v
        return f"{np.array2string(shown, separator=',')}:{c.aval}"
    return f"<const {c.aval}>"


# ---------------------------------------------------------------------------------------------
# Nodes and graphs


@dataclass(eq=False)
class Apply:
    """One node: ``outputs = prim(*inputs, **params)``. ``source`` is the user's source line."""

    prim: Any  # autodiff.primitives.Primitive
    inputs: tuple
    params: dict
    outputs: tuple
    source: str | None = None

    def __repr__(self):
        return f"Apply({self.prim.name}, {len(self.inputs)} in, {len(self.outputs)} out)"

    def subgraphs(self) -> list[Graph]:
        return list(_graphs_in(self.params))


def _graphs_in(obj):
    if isinstance(obj, Graph):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _graphs_in(v)
    elif isinstance(obj, (tuple, list)):
        for v in obj:
            yield from _graphs_in(v)


@dataclass(eq=False)
class Graph:
    """A function in SSA form. ``params`` are Vars, ``outputs`` are atoms (Var or Const)."""

    params: list
    body: list
    outputs: list
    name: str = "f"
    # Front-end metadata (pytree structure of inputs and outputs); not part of the IR proper.
    meta: dict = field(default_factory=dict)

    @property
    def in_avals(self) -> list[AbstractValue]:
        return [p.aval for p in self.params]

    @property
    def out_avals(self) -> list[AbstractValue]:
        return [o.aval for o in self.outputs]

    def __str__(self):
        return format_graph(self)

    def __repr__(self):
        return f"<Graph {self.name}: {len(self.params)} params, {len(self.body)} nodes>"

    def count_nodes(self, deep: bool = True) -> int:
        """Number of Apply nodes, including those of subgraphs (each subgraph counted once)."""
        seen: set[int] = set()

        def count(g: Graph) -> int:
            if id(g) in seen:
                return 0
            seen.add(id(g))
            n = len(g.body)
            if deep:
                for node in g.body:
                    n += sum(count(s) for s in node.subgraphs())
            return n

        return count(self)


def new_graph_like(g: Graph, params, body, outputs, name=None) -> Graph:
    return Graph(list(params), list(body), list(outputs), name or g.name, dict(g.meta))


# ---------------------------------------------------------------------------------------------
# Text form


class _Namer:
    def __init__(self):
        self.names: dict[int, str] = {}

    def __call__(self, v: Var) -> str:
        if v.id not in self.names:
            self.names[v.id] = _alpha(len(self.names))
        return self.names[v.id]


def _alpha(n: int) -> str:
    s = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(ord("a") + r) + s
    return s


def format_graph(g: Graph) -> str:
    """The readable text form of a graph and, nested, of its subgraphs."""
    return "\n".join(_format(g, _Namer(), indent="", stack=[]))


def _format(g: Graph, name: _Namer, indent: str, stack: list) -> list[str]:
    stack = stack + [id(g)]
    params = ", ".join(f"{name(p)}:{p.aval}" for p in g.params)
    lines = [f"{indent}graph {g.name}({params}) {{"]
    inner = indent + "  "
    for node in g.body:
        lines.extend(_format_node(node, name, inner, stack))
    outs = ", ".join(_atom(o, name) for o in g.outputs)
    lines.append(f"{inner}return {outs}")
    lines.append(f"{indent}}}")
    return lines


def _atom(a, name: _Namer) -> str:
    return name(a) if isinstance(a, Var) else format_const(a)


def _format_node(node: Apply, name: _Namer, indent: str, stack: list) -> list[str]:
    outs = ", ".join(f"{name(o)}:{o.aval}" for o in node.outputs)
    args = " ".join(_atom(a, name) for a in node.inputs)
    plain = {k: v for k, v in node.params.items() if not _has_graph(v) and v is not None}
    graphs = {k: v for k, v in node.params.items() if _has_graph(v)}
    pstr = ("[" + ", ".join(f"{k}={_param(v)}" for k, v in plain.items()) + "]") if plain else ""
    lines = [f"{indent}{outs} = {node.prim.name}{pstr} {args}".rstrip()]
    for key, val in graphs.items():
        for i, sub in enumerate(val if isinstance(val, (tuple, list)) else [val]):
            label = key if not isinstance(val, (tuple, list)) else f"{key}[{i}]"
            if id(sub) in stack:
                lines.append(f"{indent}  {label} = @{sub.name}  # recursive")
            else:
                lines.append(f"{indent}  {label} =")
                lines.extend(_format(sub, name, indent + "    ", stack))
    return lines


def _has_graph(v) -> bool:
    return any(True for _ in _graphs_in(v))


def _param(v) -> str:
    if isinstance(v, np.dtype):
        return short_dtype(v)
    if isinstance(v, tuple):
        return "(" + ",".join(_param(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, float):
        return repr(v)
    return str(v)


# ---------------------------------------------------------------------------------------------
# Traversal helpers used by the passes


def used_vars(g: Graph) -> set[int]:
    """Ids of the Vars read by the body and the outputs of ``g`` (not inside subgraphs)."""
    used = {o.id for o in g.outputs if isinstance(o, Var)}
    for node in g.body:
        used.update(a.id for a in node.inputs if isinstance(a, Var))
    return used


def substitute(atom, env: dict):
    """Map a Var through ``env`` (keyed by id); constants pass through."""
    if isinstance(atom, Var):
        return env.get(atom.id, atom)
    return atom
