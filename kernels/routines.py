"""Library nodes as compiled routines: numba source printed per node for the CPU target.

Fusion leaves some nodes out of every cluster: a concatenation, a cumulative or leading-axis
sum, a tridiagonal solve along the vertical, a reshape that moves data. Run from Python each
is a numpy call plus an interpreter round trip, and a plan that holds one cannot become one
compiled function (``kernels.plancode``). Here each such node is printed as a small numba
function specialised on its shapes and parameters, with the same calling convention as a
fused kernel (inputs, then the outputs it writes), so the plan runs it as a kernel step.

One printer per primitive, in ``PRINTERS``; a node without a printer (or with a dtype the
routines do not handle) stays a library node.

>>> import numpy as np
>>> from autodiff.trace import make_graph
>>> g = make_graph(lambda x: np.cumsum(x, axis=0), np.zeros((3, 2)))
>>> print(routine(g.body[0], "r0").source)  # doctest: +NORMALIZE_WHITESPACE
import numba
import numpy as np
<BLANKLINE>
<BLANKLINE>
@numba.njit(error_model="numpy", nogil=True, cache=True, parallel=False)
def kernel(in0, out0):
    for i0 in range(3):
        for i1 in range(2):
            if i0 == 0:
                out0[i0, i1] = in0[i0, i1]
            else:
                out0[i0, i1] = out0[i0 - 1, i1] + in0[i0, i1]
<BLANKLINE>
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autodiff.ops.reduce import normalize_axes

from .cpu import PARALLEL_MIN_POINTS
from .library import DTYPES  # storage dtypes numba handles (half types stay library nodes)
from .loopir import Buffer


@dataclass
class Routine:
    """A compiled library node: what a plan needs of a kernel (buffers) plus its source."""

    name: str
    inputs: list
    outputs: list
    source: str
    prim: str

    def __str__(self):
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        return f"routine {self.name}({ins}) -> ({outs}): {self.prim}"


def routine(node, name: str) -> Routine | None:
    """The routine computing ``node``, or None when it stays a library node."""
    printer = PRINTERS.get(node.prim.name)
    avals = [a.aval for a in node.inputs] + [o.aval for o in node.outputs]
    if printer is None or any(str(a.dtype) not in DTYPES for a in avals):
        return None
    if any(0 in a.shape for a in avals):
        return None  # empty arrays: nothing to compile
    body = printer(node, **node.params)
    if body is None:
        return None
    ins = [Buffer(f"in{i}", _shape(a.aval), str(a.aval.dtype)) for i, a in enumerate(node.inputs)]
    outs = [Buffer(f"out{i}", _shape(o.aval), str(o.aval.dtype))
            for i, o in enumerate(node.outputs)]
    args = ", ".join(b.name for b in ins + outs)
    parallel = any("numba.prange" in line for line in body)  # else prange runs serially
    head = f'@numba.njit(error_model="numpy", nogil=True, cache=True, parallel={parallel})'
    source = "\n".join(["import numba", "import numpy as np", "", "", head,
                        f"def kernel({args}):"] + ["    " + line for line in body]) + "\n"
    return Routine(name, ins, outs, source, node.prim.name)


def _shape(aval) -> tuple:
    return tuple(aval.shape) or (1,)


def _idx(names) -> str:
    return ", ".join(names) if names else "0"


def _loops(shape, parallel=False) -> tuple[list, list]:
    """Nested ``for`` lines over ``shape`` (C order) and the index names; the outermost loop
    is a ``prange`` when ``parallel``."""
    names = [f"i{d}" for d in range(len(shape))]
    lines = []
    for d, n in enumerate(shape):
        rng = "numba.prange" if parallel and d == 0 else "range"
        lines.append("    " * d + f"for {names[d]} in {rng}({n}):")
    return lines, names


def _big(aval) -> bool:
    return int(np.prod(aval.shape)) >= PARALLEL_MIN_POINTS


# ---------------------------------------------------------------------------------------------
# Printers: node -> body lines (inputs in0.., outputs out0..)


def _concatenate(node, *, axis):
    out = node.outputs[0].aval
    lines, start = [], 0
    lead = ":, " * axis
    for i, a in enumerate(node.inputs):
        n = a.aval.shape[axis]
        lines.append(f"out0[{lead}{start}:{start + n}] = in{i}")
        start += n
    return lines if out.ndim else None


def _cumsum(node, *, axis, reverse=False):
    x, out = node.inputs[0].aval, node.outputs[0].aval
    (axis,) = normalize_axes("cumsum", axis, x.ndim)
    if str(out.dtype) != str(x.dtype):
        return None  # integer promotion: leave it to numpy
    n = x.shape[axis]
    loops, names = _loops(x.shape, parallel=_big(x) and axis != 0)
    if reverse:
        names_k = list(names)
        names_k[axis] = f"{n - 1} - {names[axis]}"
        prev = list(names_k)
        prev[axis] = f"{n} - {names[axis]}"
    else:
        names_k, prev = list(names), list(names)
        prev[axis] = f"{names[axis]} - 1"
    ind = "    " * len(names)
    here, before = _idx(names_k), _idx(prev)
    return loops + [
        f"{ind}if {names[axis]} == 0:",
        f"{ind}    out0[{here}] = in0[{here}]",
        f"{ind}else:",
        f"{ind}    out0[{here}] = out0[{before}] + in0[{here}]",
    ]


_IDENTITY = {"reduce_sum": "0", "reduce_prod": "1", "reduce_max": "-np.inf",
             "reduce_min": "np.inf"}
# max/min propagate NaN as numpy does: a NaN operand wins, and a NaN accumulator stays.
_COMBINE = {"reduce_sum": "{a} + {v}", "reduce_prod": "{a} * {v}",
            "reduce_max": "{v} if ({v} > {a} or {v} != {v}) else {a}",
            "reduce_min": "{v} if ({v} < {a} or {v} != {v}) else {a}"}


def _reduce(node, *, axes, keepdims=False):
    """Any axes (suffix reductions are already fused): accumulate into a float64 (or the
    output dtype's) array over the kept indices, in C order over the input."""
    x, out = node.inputs[0].aval, node.outputs[0].aval
    axes = normalize_axes(node.prim.name, axes, x.ndim)
    name = node.prim.name
    if x.ndim == 0 or str(out.dtype) != str(x.dtype) or str(x.dtype) == "bool":
        return None
    if name in ("reduce_max", "reduce_min") and not str(x.dtype).startswith("float"):
        return None
    acc = {"float32": "np.float64", "complex64": "np.complex128"}.get(str(x.dtype),
                                                                      f"np.{x.dtype}")
    kept = [d for d in range(x.ndim) if d not in axes]
    kshape = tuple(x.shape[d] for d in kept) or (1,)
    loops, names = _loops(x.shape)
    kidx = _idx([names[d] for d in kept])
    ind = "    " * x.ndim
    combine = _COMBINE[name].format(a=f"acc[{kidx}]", v=f"in0[{_idx(names)}]")
    body = [f"acc = np.full({kshape!r}, {_IDENTITY[name]}, {acc})"] + loops
    body.append(f"{ind}acc[{kidx}] = {combine}")
    return body + _copy("out0", "acc")


def _reshape(node, *, new_shape):
    return _copy("out0", "in0")


def _tridiagonal(node):
    """Thomas sweeps over all columns at once, a block of contiguous columns at a time (the
    inner loops run along memory over one row of the block), blocks spread over threads.
    One division per point (the pivot's reciprocal), as in the primitive's numpy
    implementation: 1.6x faster than two. The forward sweep's coefficients and solution stay
    in per-block buffers (in cache); the solution is written once, by the backward sweep:
    1.25x faster than writing it twice (31 x 259 x 513, two threads)."""
    x = node.inputs[3].aval
    one = f"np.{x.dtype}(1.0)"
    n = x.shape[0]
    m = int(np.prod(x.shape[1:], dtype=np.int64))
    block = 256
    blocks = -(-m // block)
    rng = "numba.prange" if _big(x) else "range"
    return [
        f"a = in0.reshape(({n}, {m}))", f"b = in1.reshape(({n}, {m}))",
        f"c = in2.reshape(({n}, {m}))", f"d = in3.reshape(({n}, {m}))",
        f"x = out0.reshape(({n}, {m}))",
        f"for blk in {rng}({blocks}):",
        f"    lo = blk * {block}",
        f"    hi = min(lo + {block}, {m})",
        "    w = hi - lo",
        f"    cp = np.empty(({n}, {block}), x.dtype)  # per block: stays in cache",
        f"    xp = np.empty(({n}, {block}), x.dtype)",
        "    b0, c0, d0, cp0, xp0 = b[0, lo:hi], c[0, lo:hi], d[0, lo:hi], cp[0], xp[0]",
        "    for j in range(w):",
        f"        r = {one} / b0[j]",
        "        cp0[j] = c0[j] * r",
        "        xp0[j] = d0[j] * r",
        f"    for k in range(1, {n}):",
        "        ak, bk, ck, dk = a[k, lo:hi], b[k, lo:hi], c[k, lo:hi], d[k, lo:hi]",
        "        cpm, cpk, xm, xk = cp[k - 1], cp[k], xp[k - 1], xp[k]",
        "        for j in range(w):",
        f"            r = {one} / (bk[j] - ak[j] * cpm[j])",
        "            cpk[j] = ck[j] * r",
        "            xk[j] = (dk[j] - ak[j] * xm[j]) * r",
        f"    xo, xl = x[{n - 1}, lo:hi], xp[{n - 1}]",
        "    for j in range(w):",
        "        xo[j] = xl[j]",
        f"    for k in range({n - 2}, -1, -1):",
        "        xo, xk, xn, cpk = x[k, lo:hi], xp[k], xp[k + 1], cp[k]",
        "        for j in range(w):",
        "            v = xk[j] - cpk[j] * xn[j]",
        "            xk[j] = v",
        "            xo[j] = v",
    ]


def _pre_post(shape, axis) -> tuple[int, int]:
    pre = int(np.prod(shape[:axis], dtype=np.int64))
    return pre, int(np.prod(shape[axis + 1:], dtype=np.int64))


def _take(node, *, axis):
    """Gather along ``axis``; indices wrap once from the end and clip, as the reference."""
    x, idx = node.inputs[0].aval, node.inputs[1].aval
    axis = axis % x.ndim
    n, m = x.shape[axis], int(np.prod(idx.shape, dtype=np.int64))
    pre, post = _pre_post(x.shape, axis)
    return [
        f"x = in0.reshape(({pre}, {n}, {post}))", f"ix = in1.reshape(({m},))",
        f"out = out0.reshape(({pre}, {m}, {post}))",
        f"for j in range({m}):",
        "    k = ix[j]",
        f"    k = k + {n} if k < 0 else k",
        f"    k = min(max(k, 0), {n - 1})",
        f"    for p in range({pre}):",
        f"        for q in range({post}):",
        "            out[p, j, q] = x[p, k, q]",
    ]


def _scatter_add(node, *, axis):
    x, idx = node.inputs[0].aval, node.inputs[1].aval
    axis = axis % x.ndim
    n, m = x.shape[axis], int(np.prod(idx.shape, dtype=np.int64))
    pre, post = _pre_post(x.shape, axis)
    return _copy("out0", "in0") + [
        f"out = out0.reshape(({pre}, {n}, {post}))", f"ix = in1.reshape(({m},))",
        f"u = in2.reshape(({pre}, {m}, {post}))",
        f"for j in range({m}):",  # serial: repeated indices accumulate
        "    k = ix[j]",
        f"    k = k + {n} if k < 0 else k",
        f"    k = min(max(k, 0), {n - 1})",
        f"    for p in range({pre}):",
        f"        for q in range({post}):",
        "            out[p, k, q] += u[p, j, q]",
    ]


def _copy(dst, src) -> list:
    return [f"d_ = {dst}.reshape(-1)", f"s_ = {src}.reshape(-1)",
            "for i_ in range(d_.shape[0]):", "    d_[i_] = s_[i_]"]


def _starts(sizes, shape, first: int) -> list:
    """Clamped start indices from the scalar inputs ``in{first}..`` (as the reference)."""
    return [f"s{d} = min(max(int(in{first + d}[0]), 0), {n - k})"
            for d, (k, n) in enumerate(zip(sizes, shape))]


def _window(sizes) -> str:
    return ", ".join(f"s{d}:s{d} + {k}" for d, k in enumerate(sizes))


def _dynamic_slice(node, *, sizes):
    x = node.inputs[0].aval
    if x.ndim == 0:
        return None
    return _starts(sizes, x.shape, 1) + [f"out0[...] = in0[{_window(sizes)}]"]


def _dynamic_update_slice(node):
    x, upd = node.inputs[0].aval, node.inputs[1].aval
    if x.ndim == 0:
        return None
    return _copy("out0", "in0") + _starts(upd.shape, x.shape, 2) + [
        f"out0[{_window(upd.shape)}] = in1"]


PRINTERS = {
    "concatenate": _concatenate, "cumsum": _cumsum, "reshape": _reshape,
    "reduce_sum": _reduce, "reduce_prod": _reduce, "reduce_max": _reduce,
    "reduce_min": _reduce, "tridiagonal_solve": _tridiagonal, "take": _take,
    "scatter_add": _scatter_add, "dynamic_slice": _dynamic_slice,
    "dynamic_update_slice": _dynamic_update_slice,
}
# dot_general stays a library node: numba's np.dot went through a BLAS ~20x slower than
# numpy's own on the MLP's matmuls (45 ms vs 2 ms).
