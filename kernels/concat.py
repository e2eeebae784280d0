"""Concatenations as fusible reads: ``concatenate(xs, axis)`` becomes zero-padded reads of
the pieces and a select on the position along ``axis``.

A concatenation run as a library routine is a pass over memory of its own: it reads its
pieces and writes the result, and the kernels on either side cannot fuse through it. Padded
reads (``pad``) and selects are what kernels already read and compute, so after this rewrite
a concatenation fuses with its producers and its consumers::

    concatenate([a, b], 0)[k] = a[k]        if k < len(a)
                                b[k - len(a)] otherwise

The values are the selected elements themselves, bit for bit (no arithmetic on them). Used by
targets whose kernels read ``pad`` (``EXPAND_CONCATENATE`` in the target module).

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> from autodiff.trace import make_graph
>>> g = make_graph(lambda a, b: np.concatenate([a, b]) * 2.0, np.zeros(2), np.zeros(3))
>>> print(expand_concatenates(g))
graph <lambda>(a:f64[2], b:f64[3]) {
  c:f64[5] = call a b
    graph =
      graph concatenate(d:f64[2], e:f64[3]) {
        f:i64[5] = iota[shape=(5,), dtype=i64, dimension=0]
        g:f64[5] = pad[pad_width=((0,3),), mode=constant, value=0] d
        h:f64[5] = pad[pad_width=((2,0),), mode=constant, value=0] e
        i:bool[5] = lt f 2:i64[]
        j:f64[5] = select i g h
        return j
      }
  k:f64[5] = mul c 2.0:f64[]
  return k
}
"""

from __future__ import annotations

import functools

import numpy as np

from autodiff.ir import Apply, Graph, Var
from autodiff.passes.rewrite import GraphMap, all_nodes, lookup, rebuild
from autodiff.primitives import get as get_primitive
from autodiff.trace import make_graph

# More pieces than this stay one routine: each piece adds a guarded read and a select per point.
MAX_PIECES = 8


def expand_concatenates(graph: Graph) -> Graph:
    """``graph`` with each concatenation of 2..MAX_PIECES pieces replaced by a call of a small
    graph of pads and selects (the ``inline`` pass puts its body in place)."""

    def rewrite(g: Graph, sub: GraphMap):
        env: dict = {}
        slices: dict = {}  # Var id -> the slice node that computes it
        body = []
        for node in g.body:
            ins = [lookup(a, env) for a in node.inputs]
            if node.prim.name == "concatenate" and 2 <= len(ins) <= MAX_PIECES:
                axis = node.params["axis"] % max(len(ins[0].aval.shape), 1)
                total = sum(a.aval.shape[axis] for a in ins)
                pieces = [_window(a, slices, axis, total) for a in ins]
                callee = make_graph(
                    functools.partial(_as_selects, axis=axis,
                                      sizes=tuple(a.aval.shape[axis] for a in ins),
                                      offsets=tuple(o for _, o in pieces)),
                    *[a.aval for a, _ in pieces], name="concatenate")
                body.append(Apply(get_primitive("call"), tuple(a for a, _ in pieces),
                                  {"graph": callee}, node.outputs, node.source))
            else:
                body.append(rebuild(node, ins, sub.params(node.params)))
                if node.prim.name == "slice":
                    slices[node.outputs[0].id] = body[-1]
        return g.params, body, [lookup(o, env) for o in g.outputs]

    if not any(n.prim.name == "concatenate" for n in all_nodes(graph)):
        return graph
    return GraphMap(rewrite)(graph)


def _window(x, slices: dict, axis: int, total: int):
    """``(array, offset)`` to read a piece from: the source of ``x`` and where ``x`` starts in
    it when ``x`` is a unit-stride slice along ``axis`` only of an array as long as the whole
    concatenation (then the piece is a shifted read of the source and the slice, a copy,
    needs no pass of its own); otherwise ``(x, None)``."""
    node = slices.get(getattr(x, "id", None))
    if node is None or not isinstance(node.inputs[0], Var):
        return x, None
    src = node.inputs[0]
    start, limit, strides = (node.params[k] for k in ("start", "limit", "strides"))
    if src.aval.shape[axis] != total or any(s != 1 for s in strides):
        return x, None
    if any((start[d], limit[d]) != (0, n) for d, n in enumerate(src.aval.shape) if d != axis):
        return x, None
    return src, int(start[axis])


def _as_selects(*xs, axis, sizes, offsets):
    """The concatenation of pieces of ``sizes`` along ``axis``, from padded reads and selects.

    A piece with an offset is read from the source array it was sliced from (``_window``):
    a shifted read, which is in bounds wherever the select takes the piece."""
    P = get_primitive
    total = sum(sizes)
    nd = len(xs[0].shape)
    shape = tuple(total if d == axis else s for d, s in enumerate(xs[0].shape))
    pos = P("iota").bind(shape=shape, dtype=np.dtype("int64"), dimension=axis)
    out, start = None, 0
    for x, n, offset in zip(xs, sizes, offsets):
        if n == 0:
            continue
        if offset is None:
            widths = tuple((start, total - start - n) if d == axis else (0, 0) for d in range(nd))
            piece = P("pad").bind(x, pad_width=widths, mode="constant", value=0)
        elif offset == start:
            piece = x
        else:
            shift = tuple(offset - start if d == axis else 0 for d in range(nd))
            piece = P("shift").bind(x, offset=shift, boundary="zero")
        out = piece if out is None else P("select").bind(pos < start, out, piece)
        start += n
    return out
