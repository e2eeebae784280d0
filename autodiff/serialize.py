"""Save and load graphs as JSON (subgraphs and recursion included).

The format is a list of graphs; graph 0 is the entry point. Params that hold graphs refer to
them by index, so a graph that calls itself is stored once. Constants are stored as base64
bytes with their dtype and shape, so values round-trip bit for bit.

>>> import numpy as np
>>> from autodiff.trace import make_graph
>>> g = make_graph(lambda x: x * 2.0 + 1.0, np.zeros(3))
>>> str(loads(dumps(g))) == str(g)
True
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np

from . import dtypes
from .errors import SerializationError, UnsupportedError, VerifyError
from .ir import AbstractValue, Apply, Const, Graph, Var, long_dtype, short_dtype
from .primitives import get as get_primitive
from .pytree import LEAF, TreeDef
from .verify import verify

FORMAT = "sciml-graph"
VERSION = 1


def dumps(graph: Graph) -> str:
    table: list[dict] = []
    index: dict[int, int] = {}
    _encode_graph(graph, table, index)
    return json.dumps({"format": FORMAT, "version": VERSION, "graphs": table})


def save(graph: Graph, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps(graph))


def load(path) -> Graph:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise SerializationError(f"{path} is not a saved sciml graph (not UTF-8: {e})") from None
    return loads(text)


def _encode_graph(g: Graph, table, index) -> int:
    if id(g) in index:
        return index[id(g)]
    k = len(table)
    index[id(g)] = k
    table.append({})  # reserve the slot first: recursive graphs refer to themselves
    names: dict[int, int] = {}

    def var(v: Var) -> int:
        names.setdefault(v.id, len(names))
        return names[v.id]

    def atom(a):
        if isinstance(a, Var):
            return var(a)
        return {"const": _encode_const(a)}

    entry = {
        "name": g.name,
        "params": [[var(p), _aval(p.aval)] for p in g.params],
        "body": [
            {
                "prim": n.prim.name,
                "inputs": [atom(a) for a in n.inputs],
                "params": {key: _encode_param(v, table, index) for key, v in n.params.items()},
                "outputs": [[var(o), _aval(o.aval)] for o in n.outputs],
                **({"source": n.source} if n.source else {}),
            }
            for n in g.body
        ],
        "outputs": [atom(o) for o in g.outputs],
        "trees": {key: _encode_tree(g.meta[key]) for key in ("in_tree", "out_tree")
                  if key in g.meta},
    }
    table[k] = entry
    return k


def _aval(a: AbstractValue):
    return [short_dtype(a.dtype), list(a.shape), a.weak]


def _encode_const(c: Const):
    return {
        "aval": _aval(c.aval),
        "data": base64.b64encode(np.ascontiguousarray(c.value).tobytes()).decode("ascii"),
    }


def _encode_param(v, table, index):
    if isinstance(v, Graph):
        return {"$graph": _encode_graph(v, table, index)}
    if isinstance(v, np.dtype):
        return {"$dtype": short_dtype(v)}
    if isinstance(v, type) and issubclass(v, np.generic):
        return {"$dtype": short_dtype(np.dtype(v))}
    if isinstance(v, tuple):
        return {"$tuple": [_encode_param(x, table, index) for x in v]}
    if isinstance(v, list):
        return [_encode_param(x, table, index) for x in v]
    if isinstance(v, dict):
        return {"$dict": {k: _encode_param(x, table, index) for k, x in v.items()}}
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return {"$float": repr(v)}
    if isinstance(v, complex):
        return {"$complex": [v.real, v.imag]}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise SerializationError(f"cannot serialize parameter {v!r} of type {type(v).__name__}")


def _encode_tree(t: TreeDef):
    if t.kind is None:
        return "*"
    kinds = {tuple: "tuple", list: "list", dict: "dict", type(None): "none"}
    if t.kind not in kinds:
        return None  # custom containers are not saved; the loaded graph takes flat arguments
    children = [_encode_tree(c) for c in t.children]
    if any(c is None for c in children):
        return None
    return {"kind": kinds[t.kind], "aux": list(t.aux) if t.aux else None, "children": children}


# ---------------------------------------------------------------------------------------------


def loads(text: str) -> Graph:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SerializationError(f"not a saved sciml graph (invalid JSON: {e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SerializationError("not a saved sciml graph (missing format tag)")
    if data.get("version") != VERSION:
        raise SerializationError(f"saved graph has version {data.get('version')}, this sciml "
                                 f"reads version {VERSION}")
    try:
        entries = data["graphs"]
        graphs = [Graph([], [], [], e.get("name", "f")) for e in entries]
        for g, e in zip(graphs, entries):
            _decode_graph(g, e, graphs)
        root = graphs[0]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        raise SerializationError(f"malformed saved graph: {err!r}") from None
    except UnsupportedError as err:
        raise SerializationError(f"saved graph uses {err}") from None
    try:
        # Tampered data can be well-formed JSON yet break SSA, arity or types.
        verify(root)
    except VerifyError as err:
        raise SerializationError(f"saved graph is not a valid graph: {err}") from None
    return root


def _decode_graph(g: Graph, e: dict, graphs):
    vars_: dict[int, Var] = {}

    def define(pair):
        k, aval = pair
        v = Var(_decode_aval(aval))
        vars_[k] = v
        return v

    def atom(a):
        if isinstance(a, dict):
            c = a["const"]
            aval = _decode_aval(c["aval"])
            raw = np.frombuffer(base64.b64decode(c["data"]), dtype=aval.dtype)
            return Const(raw.reshape(aval.shape).copy(), aval)
        return vars_[a]

    g.params = [define(p) for p in e["params"]]
    body = []
    for n in e["body"]:
        prim = get_primitive(n["prim"])
        inputs = tuple(atom(a) for a in n["inputs"])
        params = {k: _decode_param(v, graphs) for k, v in n["params"].items()}
        outputs = tuple(define(o) for o in n["outputs"])
        body.append(Apply(prim, inputs, params, outputs, n.get("source")))
    g.body = body
    g.outputs = [atom(a) for a in e["outputs"]]
    for key, t in e.get("trees", {}).items():
        if t is not None:
            g.meta[key] = _decode_tree(t)


def _decode_aval(a) -> AbstractValue:
    d, shape, weak = a
    return AbstractValue(tuple(shape), long_dtype(d), bool(weak))


def _decode_param(v, graphs):
    if isinstance(v, dict):
        if "$graph" in v:
            return graphs[v["$graph"]]
        if "$dtype" in v:
            return dtypes.dtype(long_dtype(v["$dtype"]))
        if "$tuple" in v:
            return tuple(_decode_param(x, graphs) for x in v["$tuple"])
        if "$dict" in v:
            return {k: _decode_param(x, graphs) for k, x in v["$dict"].items()}
        if "$float" in v:
            return float(v["$float"])
        if "$complex" in v:
            return complex(*v["$complex"])
        raise SerializationError(f"unknown parameter encoding {v!r}")
    if isinstance(v, list):
        return [_decode_param(x, graphs) for x in v]
    return v


def _decode_tree(t) -> TreeDef:
    if t == "*":
        return LEAF
    kinds = {"tuple": tuple, "list": list, "dict": dict, "none": type(None)}
    aux = tuple(t["aux"]) if t["aux"] is not None else None
    return TreeDef(kinds[t["kind"]], aux, tuple(_decode_tree(c) for c in t["children"]))


def graphs_equal(a: Graph, b: Graph) -> bool:
    """Structural equality (names of variables aside), subgraphs included."""
    return str(a) == str(b) and _consts_equal(a, b, set())


def _consts_equal(a: Graph, b: Graph, seen) -> bool:
    if (id(a), id(b)) in seen:
        return True
    seen.add((id(a), id(b)))
    if len(a.body) != len(b.body) or not _atoms_equal(a.outputs, b.outputs):
        return False
    for na, nb in zip(a.body, b.body):
        if not _atoms_equal(na.inputs, nb.inputs):
            return False
        for sa, sb in zip(na.subgraphs(), nb.subgraphs()):
            if not _consts_equal(sa, sb, seen):
                return False
    return True


def _atoms_equal(xs, ys) -> bool:
    """Constants agree bit for bit (the text form abbreviates large ones)."""
    for x, y in zip(xs, ys):
        if isinstance(x, Const) != isinstance(y, Const):
            return False
        if isinstance(x, Const) and x.value.tobytes() != y.value.tobytes():
            return False
    return True
