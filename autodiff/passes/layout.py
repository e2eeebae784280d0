"""Transposes through elementwise operations, so that they meet, compose and cancel.

A convolution computed on channels-last patches returns its NCHW result through a transpose; a
ReLU follows, and the next convolution transposes the ReLU's result back to channels-last.
Reverse mode adds the same pair around the ReLU's derivative. An elementwise operation commutes
with a transpose of all its array operands (the same numbers, permuted)::

    e(T_P(x1), T_P(x2), scalars) = T_P(e(x1, x2, scalars))

so the ReLU can run on the channels-last values, and the transposes on either side meet and
cancel. ``fold_transposes`` applies this to the largest set of elementwise nodes for which it
adds no transpose: each array operand of a member is a transpose by the member's permutation P
or a member with P, and each reader of a member is a member or a transpose (which becomes one
composed transpose, or none). Reshapes that only merge or split axes pass too: the transpose
moves across them as a transpose of the finer axes. Values are unchanged bit for bit; run
``simplify`` (or ``optimize``) afterwards to compose the transposes that now meet, and ``dce``
to remove those left unread.

>>> import numpy as np, sciml  # sciml attaches the numpy handlers
>>> from autodiff.passes import dce
>>> def f(x):
...     y = np.transpose(x, (1, 0))
...     return np.transpose(np.maximum(y, 0.0) * 2.0, (1, 0))
>>> print(dce(fold_transposes(sciml.make_graph(f, np.zeros((2, 3))))))
graph f(a:f64[2,3]) {
  b:f64[2,3] = maximum a 0.0:f64[]
  c:f64[2,3] = mul b 2.0:f64[]
  return c
}
"""

from __future__ import annotations

from ..ir import Apply, Graph, Var
from ..primitives import get as get_primitive
from .rewrite import GraphMap, lookup, rebuild


def fold_transposes(graph: Graph) -> Graph:
    """A new graph with elementwise chains between transposes run in the transposes' layout."""

    def rewrite(g: Graph, sub: GraphMap):
        perms, defs = _members(g), _defs(g)
        env: dict[int, object] = {}
        moved: dict[int, tuple] = {}  # member output id -> (value before the transpose, P)
        body = []
        for node in g.body:
            if id(node) in perms:
                p = perms[id(node)]
                ins = [_operand(a, p, env, moved, defs, body) for a in node.inputs]
                body.append(_moved_node(node, p, ins))
                moved[node.outputs[0].id] = (body[-1].outputs[0], p)
            elif node.prim.name == "transpose" and _id(node.inputs[0]) in moved:
                _compose(node, moved[node.inputs[0].id], env, body)
            elif node.prim.name == "reshape" and _id(node.inputs[0]) in moved:
                _split(node, moved[node.inputs[0].id], env, body)
            else:
                body.append(rebuild(node, [lookup(a, env) for a in node.inputs],
                                    sub.params(node.params)))
        return g.params, body, [lookup(o, env) for o in g.outputs]

    return GraphMap(rewrite)(graph)


def _id(atom):
    return atom.id if isinstance(atom, Var) else None


def _defs(g: Graph) -> dict:
    return {o.id: n for n in g.body for o in n.outputs}


def _readers(g: Graph) -> dict:
    readers: dict[int, list] = {}
    for n in g.body:
        for a in n.inputs:
            if isinstance(a, Var):
                readers.setdefault(a.id, []).append(n)
    return readers


def _groups(fine, coarse):
    """For a reshape between ``fine`` and ``coarse`` that only merges consecutive axes (each
    coarse axis the product of a run of fine axes), the fine axes of each coarse axis."""
    groups, j = [], 0
    for n in coarse:
        group, size = [], 1
        while j < len(fine) and (size < n or not group):
            size *= fine[j]
            group.append(j)
            j += 1
        if size != n:
            return None
        groups.append(group)
    return groups if j == len(fine) else None


def _lift(perm, groups):
    """A transpose of coarse axes as a transpose of the fine axes (groups move whole)."""
    return tuple(j for i in perm for j in groups[i])


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def _candidate(node) -> bool:
    if "elementwise" not in node.prim.tags or len(node.outputs) != 1 or node.params:
        return False
    shape = node.outputs[0].aval.shape
    arrays = [a for a in node.inputs if a.aval.ndim]
    return bool(shape) and bool(arrays) and all(a.aval.shape == shape for a in arrays)


def _members(g: Graph) -> dict:
    """id(node) -> permutation, for the largest consistent set of movable nodes."""
    defs, readers = _defs(g), _readers(g)
    outs = {o.id for o in g.outputs if isinstance(o, Var)}
    perms = {id(n): None for n in g.body if _candidate(n)}
    changed = True
    while changed:
        changed = False
        for n in g.body:
            if id(n) not in perms:
                continue
            p = _operand_perm(n, defs, readers, perms)
            ok = p is not False and n.outputs[0].id not in outs and all(
                _reader_ok(r, readers, perms) for r in readers.get(n.outputs[0].id, []))
            if not ok:
                del perms[id(n)]
                changed = True
            elif p is not None and perms[id(n)] != p:
                perms[id(n)] = p
                changed = True
        if not changed:
            unknown = [k for k, p in perms.items() if p is None]
            for k in unknown:  # operands only from members whose layout never resolved
                del perms[k]
            changed = bool(unknown)
    return perms


def _reader_ok(r, readers, perms) -> bool:
    """A member's result may be read by members, transposes, and reshapes that split axes and
    are read by transposes only (the split moves ahead of the transpose, which composes)."""
    if r.prim.name == "transpose" or id(r) in perms:
        return True
    if r.prim.name != "reshape":
        return False
    x, out = r.inputs[0].aval.shape, r.outputs[0].aval.shape
    return _groups(out, x) is not None and all(
        q.prim.name == "transpose" for q in readers.get(r.outputs[0].id, [None]) if q)


def _merged_transpose(a, defs, readers, perms):
    """True when ``a`` is a reshape merging axes of a transpose, read only by members: it can
    be had in any layout for one transpose of the transpose's operand."""
    d = defs.get(_id(a))
    if d is None or d.prim.name != "reshape" or not isinstance(d.inputs[0], Var):
        return False
    t = defs.get(d.inputs[0].id)
    return (t is not None and t.prim.name == "transpose"
            and _groups(d.inputs[0].aval.shape, a.aval.shape) is not None
            and all(id(r) in perms for r in readers.get(a.id, []))
            and readers.get(d.inputs[0].id, []) == [d])


def _operand_perm(n, defs, readers, perms):
    """The permutation shared by the array operands (None: not known yet; False: none)."""
    found = set()
    for a in n.inputs:
        if not a.aval.ndim:
            continue
        d = defs.get(a.id) if isinstance(a, Var) else None
        if d is not None and d.prim.name == "transpose":
            found.add(tuple(d.params["permutation"]))
        elif d is not None and id(d) in perms:
            if perms[id(d)] is not None:
                found.add(perms[id(d)])
        elif not _merged_transpose(a, defs, readers, perms):
            return False
    return False if len(found) > 1 else (found.pop() if found else None)


def _operand(a, perm, env, moved, defs, body):
    """Operand ``a`` of a member, in the layout before the transpose by ``perm``."""
    if not a.aval.ndim:
        return lookup(a, env)
    if a.id in moved:
        return moved[a.id][0]
    d = defs[a.id]
    if d.prim.name == "transpose":
        return lookup(d.inputs[0], env)
    # reshape(transpose(y, r)) merging axes: transpose y once more, then merge.
    t = defs[d.inputs[0].id]
    inv = _inverse(perm)
    lifted = _lift(inv, _groups(d.inputs[0].aval.shape, a.aval.shape))
    r = tuple(t.params["permutation"])
    y = _transpose(lookup(t.inputs[0], env), tuple(r[i] for i in lifted), body, t.source)
    return _reshape(y, tuple(a.aval.shape[i] for i in inv), body, d.source)


def _moved_node(node, perm, ins):
    """``node`` on its operands before the transpose by ``perm``."""
    out = node.outputs[0]
    shape = tuple(out.aval.shape[i] for i in _inverse(perm))
    new = Var(out.aval.update(shape=shape), out.hint)
    return Apply(node.prim, tuple(ins), dict(node.params), (new,), node.source)


def _compose(node, moved, env, body):
    """A transpose of a moved value: one transpose by the composed permutation, or none."""
    value, p = moved
    c = tuple(p[i] for i in node.params["permutation"])
    env[node.outputs[0].id] = _transpose(value, c, body, node.source, node.outputs)


def _split(node, moved, env, body):
    """A reshape splitting axes of a moved value: split the value, then transpose (the
    reshape's readers are transposes, which ``simplify`` composes with this one)."""
    value, p = moved
    coarse, fine = node.inputs[0].aval.shape, node.outputs[0].aval.shape
    groups = _groups(fine, coarse)
    inv = _inverse(p)
    # The value's axis j is the coarse axis inv[j]: it splits like that axis.
    blocks, fine_u, k = [], [], 0
    for j in range(len(p)):
        sizes = [fine[i] for i in groups[inv[j]]]
        blocks.append(list(range(k, k + len(sizes))))
        fine_u += sizes
        k += len(sizes)
    split = _reshape(value, tuple(fine_u), body, node.source)
    env[node.outputs[0].id] = _transpose(split, _lift(p, blocks), body, node.source,
                                         node.outputs)


def _transpose(x, perm, body, source, outputs=None):
    if perm == tuple(range(len(perm))):
        return x
    shape = tuple(x.aval.shape[i] for i in perm)
    outs = outputs or (Var(x.aval.update(shape=shape)),)
    body.append(Apply(get_primitive("transpose"), (x,), {"permutation": perm}, tuple(outs),
                      source))
    return outs[0]


def _reshape(x, shape, body, source):
    if tuple(x.aval.shape) == shape:
        return x
    out = Var(x.aval.update(shape=shape))
    body.append(Apply(get_primitive("reshape"), (x,), {"new_shape": shape}, (out,), source))
    return out
