"""Cluster -> Kernel: the one lowering from fused graph nodes to the loop-level kernel IR.

Each value of the cluster becomes a scalar bound at every point of the domain; values from
outside become loads at index expressions (broadcasting reads index 0, stencil reads an offset
index, guarded where they leave the array); reductions become accumulators. Storage and
compute dtypes differ for the half types (computed in float32) and for accumulations (float32
sums accumulate in float64).

>>> import numpy as np
>>> from autodiff.trace import make_graph
>>> from kernels.fuse import fuse
>>> g = make_graph(lambda x: x * 2.0 + x, np.zeros(4, np.float32))
>>> print(lower(fuse(g)[0], "k"))
kernel k(in0:float32[4]) -> (out0:float32[4]) over (4,):
  v0 = load in0[i0]
  v1 = 2.0:float32
  v2 = mul(v0, v1):float32
  v3 = add(v2, v0):float32
  out0[i0] = v3
"""

from __future__ import annotations

import numpy as np

from autodiff import dtypes
from autodiff.ir import Const as GConst
from autodiff.ir import Var

from .fuse import REDUCTIONS, Cluster
from .loopir import (
    Affine,
    Buffer,
    Clamp,
    Const,
    Idx,
    IndexValue,
    InRange,
    Kernel,
    Let,
    Lit,
    Load,
    Op,
    Reduction,
    Store,
    Thomas,
    Wrap,
)

HALF = ("float16", "bfloat16")


def compute_dtype(d) -> str:
    """The dtype arithmetic runs in for values stored as ``d``."""
    name = str(dtypes.dtype(d))
    return "float32" if name in HALF else name


def acc_dtype(op: str, d) -> str:
    """The accumulator dtype of a reduction producing dtype ``d``."""
    name = compute_dtype(d)
    if op in ("sum", "prod"):
        return {"float32": "float64", "complex64": "complex128"}.get(name, name)
    return name


def lower(cluster: Cluster, name: str) -> Kernel:
    """The kernel computing ``cluster``: buffers in the order of its inputs and outputs."""
    return _Lowering(cluster, name).run()


class _Lowering:
    def __init__(self, cluster: Cluster, name: str):
        self.c = cluster
        self.name = name
        self.body: list = []
        self.env: dict[int, str] = {}  # var id -> scalar name
        self.memo: dict = {}  # (buffer, index) or literal -> scalar name
        self.bufs: dict[int, str] = {}  # id of an outside value -> input buffer name
        self.inputs = [self._in_buffer(i, a) for i, a in enumerate(cluster.inputs)]
        self.here = {"i": tuple(Idx(d) for d in range(len(cluster.domain))) or (Lit(0),)}
        self.identity = tuple(Idx(d) for d in range(len(cluster.domain)))
        self.made = {o.id: n for n in cluster.nodes for o in n.outputs}
        self.at = None  # while recomputing a value: the (raw) point it is computed at
        self.own: set[int] = set()  # ids of outputs their own statements store (axis-0 work)
        self.scratch: list = []  # wide accumulators of axis-0 reductions (float32 sums)

    def run(self) -> Kernel:
        reductions, outputs = [], []
        red_outs = {}
        out_name = {v.id: f"out{j}" for j, v in enumerate(self.c.outputs)}
        for node in self.c.nodes:
            if self.c.sequential and node.prim.name in REDUCTIONS:
                self._lead(node, out_name[node.outputs[0].id])
            elif self.c.sequential and node.prim.name == "cumsum":
                self._scan(node, out_name[node.outputs[0].id])
            elif self.c.sequential and node.prim.name == "tridiagonal_solve":
                self._solve(node, out_name[node.outputs[0].id])
            elif node.prim.name in REDUCTIONS:
                red_outs[node.outputs[0].id] = self._reduce(node, reductions, len(outputs))
            else:
                self._node(node)
        for v in self.c.outputs:
            buf = f"out{len(outputs)}"
            if v.id in red_outs:
                outputs.append(Buffer(buf, self._reduced_shape(), str(v.aval.dtype)))
                reductions[red_outs[v.id]] = _rename(reductions[red_outs[v.id]], buf)
            elif v.id in self.own:
                outputs.append(Buffer(buf, _kshape(v.aval.shape), str(v.aval.dtype)))
            else:
                outputs.append(Buffer(buf, _kshape(self.c.domain), str(v.aval.dtype)))
                self.body.append(Store(buf, self.here["i"], self.env[v.id]))
        depth = self.c.depth if self.c.depth is not None else len(self.c.domain)
        return Kernel(self.name, self.c.domain, self.inputs, outputs, self.body,
                      [r for r in reductions if r.buf.startswith("out")], depth,
                      self.c.sequential, self.scratch)

    # -- buffers and scalars ------------------------------------------------------------------

    def _in_buffer(self, i, a) -> Buffer:
        self.bufs[id(a) if isinstance(a, GConst) else a.id] = f"in{i}"
        return Buffer(f"in{i}", _kshape(a.aval.shape), str(a.aval.dtype))

    def _let(self, expr) -> str:
        key = expr if not isinstance(expr, Op) else None
        if key is not None and key in self.memo:
            return self.memo[key]
        name = f"v{len(self.body)}"
        self.body.append(Let(name, expr))
        if key is not None:
            self.memo[key] = name
        return name

    def _value(self, a, index=None, raw=False) -> str:
        """The scalar of operand ``a`` at ``index`` (default: this point, broadcast).

        ``raw``: ``index`` may leave ``a``'s bounds where the caller discards the value (a
        guarded read); loads clamp it, recomputed values are computed there.
        """
        if isinstance(a, GConst) and a.value.ndim == 0:
            return self._let(Const(_py(a.value), compute_dtype(a.aval.dtype)))
        if index is None:
            index = _broadcast_index(a.aval.shape, len(self.c.domain))
        if self.at is not None:
            index, raw = tuple(_subst(x, self.at) for x in index), True
        if isinstance(a, Var) and a.id in self.made:
            if self._here(index):
                return self.env[a.id]
            return self._recompute(a, tuple(index))
        if raw:
            index = tuple(_clamp_leaf(x, n) for x, n in zip(index, _kshape(a.aval.shape)))
        key = id(a) if isinstance(a, GConst) else a.id
        return self._let(Load(self.bufs[key], index or (Lit(0),)))

    def _here(self, index) -> bool:
        """``index`` names this point (a size-1 axis read at 0 is read here too)."""
        if self.at is not None or len(index) != len(self.identity):
            return tuple(index) == self.identity
        return all(x == Idx(d) or (x == Lit(0) and n == 1)
                   for d, (x, n) in enumerate(zip(index, self.c.domain)))

    def _recompute(self, v, point) -> str:
        """Value ``v`` of this cluster computed again at ``point`` (a stencil read of it)."""
        key = ("at", v.id, point)
        if key not in self.memo:
            outer, self.at = self.at, point
            try:
                self.memo[key] = self._eval(self.made[v.id])
            finally:
                self.at = outer
        return self.memo[key]

    # -- nodes --------------------------------------------------------------------------------

    def _node(self, node):
        self.env[node.outputs[0].id] = self._eval(node)

    def _eval(self, node) -> str:
        """The scalar of ``node``'s result at this point (or at ``self.at``)."""
        name = node.prim.name
        out = node.outputs[0]
        if name == "iota":
            d = node.params.get("dimension", 0)
            idx = Idx(d) if out.aval.ndim else Lit(0)
            if self.at is not None:
                idx = _subst(idx, self.at)
            return self._let(IndexValue(idx, compute_dtype(out.aval.dtype)))
        if name in READS or name == "reshape":  # fuse admits unit-axis reshapes only
            return READS[name](self, node.inputs[0], out, **node.params)
        args = tuple(self._value(a) for a in node.inputs)
        in_dt = compute_dtype(node.inputs[-1].aval.dtype)
        return self._let(Op(name, args, dict(node.params), compute_dtype(out.aval.dtype), in_dt))

    def _reduce(self, node, reductions, _n) -> int:
        x, out = node.inputs[0], node.outputs[0]
        op = REDUCTIONS[node.prim.name]
        acc = acc_dtype(op, out.aval.dtype)
        v = self._value(x)
        if compute_dtype(x.aval.dtype) != acc:
            v = self._let(Op("convert", (v,), {"new_dtype": np.dtype(acc)}, acc,
                             compute_dtype(x.aval.dtype)))
        reductions.append(Reduction(f"red{len(reductions)}", op, v, acc))
        return len(reductions) - 1

    def _lead(self, node, buf: str):
        """An axis-0 reduction: at plane 0 the point's value, then the value combined with
        the sum so far (read back from the output at this point without axis 0). float32
        sums and products accumulate in a float64 array of the kernel's own, as the other
        reductions do, and store the rounded sum so far."""
        kind = REDUCTIONS[node.prim.name]
        op = {"sum": "add", "prod": "mul", "max": "maximum", "min": "minimum"}[kind]
        index = tuple(Idx(d) for d in range(1, len(self.c.domain)))
        dt = compute_dtype(node.outputs[0].aval.dtype)
        acc = acc_dtype(kind, dt)
        self.own.add(node.outputs[0].id)
        if acc == dt:
            prev = self._let(Load(buf, index))
            self._accumulate(node, op, prev, lambda r: Store(buf, index, r))
            return
        wide = Buffer(f"acc{len(self.scratch)}", _kshape(self.c.domain[1:]), acc)
        self.scratch.append(wide)
        prev = self._let(Load(wide.name, index))
        r = self._accumulate(node, op, prev, lambda r: Store(wide.name, index, r), acc)
        narrow = self._let(Op("convert", (r,), {"new_dtype": np.dtype(dt)}, dt, acc))
        self.body.append(Store(buf, index, narrow))

    def _solve(self, node, buf: str):
        """A tridiagonal solve along axis 0: its forward sweep at this point (the printer
        adds the backward sweep, which stores the solution)."""
        slot = sum(isinstance(s, Thomas) for s in self.body)
        self.body.append(Thomas(slot, *(self._value(a) for a in node.inputs), buf))
        self.own.add(node.outputs[0].id)

    def _scan(self, node, buf: str):
        """A forward cumsum along axis 0: the value plus the stored sum at the plane before
        (its store is the cluster output's, at this point)."""
        index = (Clamp(Affine(Idx(0), 1, -1), 0, self.c.domain[0] - 1),) + tuple(
            Idx(d) for d in range(1, len(self.c.domain)))
        prev = self._let(Load(buf, index))
        self._accumulate(node, "add", prev, None)

    def _accumulate(self, node, op: str, prev: str, store, dt=None) -> str:
        x, out = node.inputs[0], node.outputs[0]
        v = self._value(x)
        if dt is not None:  # a wide accumulator
            v = self._let(Op("convert", (v,), {"new_dtype": np.dtype(dt)}, dt,
                             compute_dtype(x.aval.dtype)))
        dt = dt or compute_dtype(out.aval.dtype)
        both = self._let(Op(op, (prev, v), {}, dt, dt))
        # i0 == 0 as arithmetic: an InRange check would read as true inside peeled interiors
        plane = self._let(IndexValue(Idx(0), "int64"))
        zero = self._let(Const(0, "int64"))
        first = self._let(Op("eq", (plane, zero), {}, "bool", "int64"))
        r = self._let(Op("select", (first, v, both), {}, dt, dt))
        self.env[out.id] = r
        if store is not None:
            self.body.append(store(r))
        return r

    def _reduced_shape(self):
        return _kshape(self.c.domain[: self.c.depth])

    def _guarded(self, a, index, checks, fill, dtype) -> str:
        """A load that reads ``fill`` where ``checks`` fail (index already clamped inside)."""
        if isinstance(a, Var) and a.id in self.made or self.at is not None:
            # recomputing: the point goes unclamped into the recomputation (the loads at its
            # leaves clamp), and the checks are stated at the raw point
            guarded = {(e, lo, hi - 1) for e, lo, hi in checks}
            index = tuple(x.e if isinstance(x, Clamp) and (x.e, x.lo, x.hi) in guarded else x
                          for x in index)
            if self.at is not None:
                checks = [(_subst(e, self.at), lo, hi) for e, lo, hi in checks]
            loaded = self._value(a, index, raw=True)
        else:
            loaded = self._value(a, index)
        if not checks:
            return loaded
        ok = self._let(InRange(tuple(checks)))
        f = self._let(Const(fill, compute_dtype(dtype)))
        return self._let(Op("select", (ok, loaded, f), {}, compute_dtype(dtype),
                            compute_dtype(dtype)))


def _rename(r: Reduction, buf: str) -> Reduction:
    return Reduction(buf, r.op, r.value, r.acc_dtype)


def _kshape(shape) -> tuple:
    """Kernels see 0-d arrays as one-element vectors."""
    return tuple(shape) or (1,)


def _broadcast_index(shape, ndim) -> tuple:
    """numpy broadcasting: trailing alignment, size-1 dimensions read index 0."""
    lead = ndim - len(shape)
    return tuple(Lit(0) if s == 1 else Idx(lead + j) for j, s in enumerate(shape))


def _subst(x, point):
    """Index expression ``x`` with each loop index ``i_d`` replaced by ``point[d]``."""
    if isinstance(x, Idx):
        return point[x.dim]
    if isinstance(x, Lit):
        return x
    if isinstance(x, Affine):
        b = _subst(x.base, point)
        if isinstance(b, Lit):
            return Lit(x.scale * b.value + x.offset)
        if isinstance(b, Affine):
            b, scale, offset = b.base, x.scale * b.scale, x.scale * b.offset + x.offset
        else:
            scale, offset = x.scale, x.offset
        return b if (scale, offset) == (1, 0) else Affine(b, scale, offset)
    if isinstance(x, Clamp):
        return Clamp(_subst(x.e, point), x.lo, x.hi)
    if isinstance(x, Wrap):
        return Wrap(_subst(x.e, point), x.n)
    raise TypeError(f"lower: unknown index expression {x!r}")


def _clamp_leaf(x, n: int):
    """A raw index component made safe to load with: loop indices and literals are in bounds,
    clamps and wraps stay inside theirs, anything else is clamped to ``[0, n)``."""
    if isinstance(x, (Idx, Lit, Clamp, Wrap)):
        return x
    return Clamp(x, 0, n - 1)


def _py(v):
    v = np.asarray(v)
    if v.dtype == dtypes.bfloat16 or v.dtype == np.float16:
        return float(v)
    return v.item()


# ---------------------------------------------------------------------------------------------
# Stencil and layout reads: out[i] = x[index(i)], one function per primitive.


def _shift(low: _Lowering, x, out, *, offset, boundary="zero"):
    index, checks = [], []
    for d, (o, n) in enumerate(zip(offset, x.aval.shape)):
        e = Affine(Idx(d), 1, int(o)) if o else Idx(d)
        if not o:
            index.append(e)
        elif boundary == "periodic":
            index.append(Wrap(e, n))
        else:
            index.append(Clamp(e, 0, n - 1))
            if boundary == "zero":
                checks.append((e, 0, n))
    return low._guarded(x, tuple(index), checks, 0, out.aval.dtype)


def _slice(low: _Lowering, x, out, *, start, limit, strides=None):
    strides = strides or (1,) * len(start)
    index = tuple(Affine(Idx(d), int(st), int(s)) if (st != 1 or s) else Idx(d)
                  for d, (s, st) in enumerate(zip(start, strides)))
    return low._value(x, index)


def _pad(low: _Lowering, x, out, *, pad_width, mode="constant", value=0.0):
    index, checks = [], []
    for d, ((lo, hi), n) in enumerate(zip(pad_width, x.aval.shape)):
        e = Affine(Idx(d), 1, -int(lo)) if lo else Idx(d)
        if not (lo or hi):
            index.append(e)
        elif mode == "constant" and n == 0:
            return low._let(Const(_py(np.asarray(value, out.aval.dtype)),
                                  compute_dtype(out.aval.dtype)))
        elif mode == "periodic":
            index.append(Wrap(e, n))
        else:
            index.append(Clamp(e, 0, n - 1))
            if mode == "constant":
                checks.append((e, 0, n))
    fill = _py(np.asarray(value, out.aval.dtype))
    return low._guarded(x, tuple(index), checks, fill, out.aval.dtype)


def _rev(low: _Lowering, x, out, *, axes):
    n = x.aval.shape
    index = tuple(Affine(Idx(d), -1, n[d] - 1) if d in axes else Idx(d) for d in range(len(n)))
    return low._value(x, index)


def _transpose(low: _Lowering, x, out, *, permutation):
    index = [None] * len(permutation)
    for k, p in enumerate(permutation):
        index[p] = Idx(k)
    return low._value(x, tuple(index))


def _broadcast_in_dim(low: _Lowering, x, out, *, shape, broadcast_dimensions):
    index = tuple(
        Lit(0) if x.aval.shape[i] == 1 and shape[d] != 1 else Idx(d)
        for i, d in enumerate(broadcast_dimensions)
    )
    return low._value(x, index)


def _reshape(low: _Lowering, x, out, *, new_shape):
    """Insert or remove size-1 axes: each non-unit input axis reads its output loop."""
    dims = iter(d for d, s in enumerate(out.aval.shape) if s != 1)
    index = tuple(Lit(0) if s == 1 else Idx(next(dims)) for s in x.aval.shape)
    return low._value(x, index)


READS = {
    "shift": _shift, "slice": _slice, "pad": _pad, "rev": _rev, "transpose": _transpose,
    "broadcast_in_dim": _broadcast_in_dim, "reshape": _reshape,
}
