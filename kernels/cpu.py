"""The CPU target: prints a Kernel as numba source (``prange`` over the outer loop, one scalar
per value, no temporaries) and compiles it with ``numba.njit(parallel=True)``.

The scalar templates are ``templates.BASE`` merged with ``CPU_OVERRIDES`` and, for float32 and
float64, the vectorisable functions of ``kernels.vmath`` (numba from PyPI has no SVML, so
``np.exp`` in a loop is a scalar libm call that stops vectorisation).

Half types have no numba type. bfloat16 arrays are passed as their uint16 bits: loads widen
them to float32 and stores round to nearest even in the kernel (``kernels/halfconv.py``), so
bfloat16 data is stored as bfloat16 and computed in float32. float16 arrays are converted to
float32 by the plan at the kernel boundary (``KERNEL_ARRAY_DTYPE``).

Kernels are compiled with their array arguments marked ``noalias`` (``NoAlias``): a plan never
passes a kernel an output buffer that overlaps one of its inputs. Without it LLVM must check
every pair of arrays at run time before it vectorises a loop, and gives up on kernels with
many arrays (a fused GOMD kernel ran 4x slower as scalar code).

>>> from kernels.loopir import Buffer, Idx, Kernel, Let, Load, Op, Store
>>> k = Kernel("k", (8,), [Buffer("in0", (8,), "float64")], [Buffer("out0", (8,), "float64")],
...            [Let("v0", Load("in0", (Idx(0),))), Let("v1", Op("neg", ("v0",), {})),
...             Store("out0", (Idx(0),), "v1")])
>>> print(print_kernel(k))  # doctest: +NORMALIZE_WHITESPACE
import numba
import numpy as np
from kernels.cpu import NoAlias
<BLANKLINE>
<BLANKLINE>
@numba.njit(parallel=False, error_model="numpy", nogil=True, cache=True, pipeline_class=NoAlias)
def k(in0, out0):
    for i0 in range(8):
        v0 = in0[i0]
        v1 = (-v0)
        out0[i0] = v1
"""

from __future__ import annotations

import dataclasses
import math
import os

import numba
import numpy as np
from numba.core.compiler import CompilerBase, DefaultPassBuilder

from . import templates
from .loopir import (
    Affine,
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
    Store,
    Thomas,
    Wrap,
)

# Below this many points a kernel runs on one thread: starting the thread pool costs more.
PARALLEL_MIN_POINTS = 1 << 15
# Points per parallel chunk of a one-dimensional full reduction.
REDUCE_CHUNK = 1 << 14

KERNEL_ARRAY_DTYPE = {"float16": "float32", "bfloat16": "uint16"}

# Concatenations are rewritten into padded reads and selects that fuse (kernels/concat.py).
EXPAND_CONCATENATE = True
# Sums over axis 0, cumulative sums along it and tridiagonal solves along it (3-d columns)
# fuse with the kernels computing their operands; such kernels run axis 0 in order and split
# axis 1 among threads (``kernels.fuse``, docs/kernels.md).
SEQUENTIAL_AXIS0 = True
# A kernel with fused tridiagonal solves runs its band of axis 1 in blocks of rows whose
# forward sweeps (two values per point and solve, all planes) take at most this many bytes
# (``SCIML_SOLVE_BLOCK_BYTES``, read when a kernel is printed): they stay in cache until the
# block's backward sweep.
SOLVE_BLOCK_BYTES = 1 << 20

# Loop fission by memory streams: an innermost loop whose point body reads and writes more
# than this many distinct arrays is split into several loops over the same row, each touching
# at most this many arrays for the first time (``SCIML_FISSION_STREAMS``, 0 turns it off).
# At 8 the GOMD step ran 7-11% slower (its kernels stream 9 to 16 arrays, partly from cache);
# above 16 a loop loses bandwidth fast (30 GB/s at 16 arrays, 20 GB/s at 48).
# Values passed between the loops go through per-thread row buffers that stay in L1; loads
# and index tests are repeated instead. Only rows of at least FISSION_MIN_ROW points in
# kernels of at least FISSION_MIN_POINTS points are split: smaller ones run from cache.
FISSION_STREAMS = int(os.environ.get("SCIML_FISSION_STREAMS", "16"))
FISSION_MIN_ROW = 64
FISSION_MIN_POINTS = 1 << 18
_TEMP_DTYPES = {"bool", "int32", "int64", "float32", "float64", "complex64", "complex128"}
# A reduction in a kernel that also stores arrays keeps each row's values in a row buffer and
# reduces them after the row, so the row loop vectorises (``_Printer.row_reduce``). Rows
# shorter than ROW_REDUCE_MIN_ROW run from cache anyway, and the buffer's allocation would
# cost more than it saves (GOMD at 65x49x21: 8.5 -> 8.9 ms with 65-point rows buffered).
ROW_REDUCE = True
ROW_REDUCE_MIN_ROW = 256


class NoAlias(CompilerBase):
    """numba's nopython pipeline with every array argument marked ``noalias`` for LLVM."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return [DefaultPassBuilder.define_nopython_pipeline(self.state)]


_NP = {
    "abs": "np.abs({0})", "sign": "np.sign({0})", "exp": "np.exp({0})", "expm1": "np.expm1({0})",
    "log": "np.log({0})", "log1p": "np.log1p({0})", "sqrt": "np.sqrt({0})",
    "rsqrt": "(1.0 / np.sqrt({0}))", "sin": "np.sin({0})", "cos": "np.cos({0})",
    "tan": "np.tan({0})", "tanh": "np.tanh({0})", "sinh": "np.sinh({0})",
    "cosh": "np.cosh({0})", "arcsin": "np.arcsin({0})", "arccos": "np.arccos({0})",
    "arctan": "np.arctan({0})", "arcsinh": "np.arcsinh({0})", "arccosh": "np.arccosh({0})",
    "arctanh": "np.arctanh({0})", "erf": "math.erf({0})", "floor": "np.floor({0})",
    "ceil": "np.ceil({0})", "round": "np.rint({0})", "real": "np.real({0})",
    "imag": "np.imag({0})", "conj": "np.conj({0})", "isnan": "np.isnan({0})",
    "isinf": "np.isinf({0})", "isfinite": "np.isfinite({0})",
    "floor_divide": "({0} // {1})", "pow": "({0} ** {1})", "maximum": "np.maximum({0}, {1})",
    "minimum": "np.minimum({0}, {1})", "atan2": "np.arctan2({0}, {1})", "mod": "({0} % {1})",
    "select": "({1} if {0} else {2})", "integer_pow": templates.integer_pow,
}
_BOOL = {("not", "bool"): "(not {0})", ("neg", "bool"): "{0}", ("sign", "bool"): "{0}",
         ("abs", "bool"): "{0}"}
_INT = {("not", d): "(~{0})" for d in ("int32", "int64")}
# Complex math: numba's cmath-backed numpy functions; abs returns the modulus.
_COMPLEX = {(p, d): f"np.{p}({{0}})" for p in ("exp", "log", "sqrt", "sin", "cos", "tan",
                                               "tanh", "sinh", "cosh") for d in
            ("complex64", "complex128")}
_VMATH_PRIMS = ("exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "sinh", "cosh",
                "erf", "arctan", "atan2", "pow")


def _vmath_overrides() -> dict:
    try:
        from .vmath import VMATH_SOURCE_NAMES
    except ImportError:  # vmath is optional: without it the numpy forms are used
        return {}
    out = {}
    for p in _VMATH_PRIMS:
        for d, fn in VMATH_SOURCE_NAMES.get(p, {}).items():
            args = ", ".join(f"{{{i}}}" for i in range(2 if p in ("atan2", "pow") else 1))
            out[(p, d)] = f"{fn}({args})"
    return out


CPU_OVERRIDES = {**_NP, **_BOOL, **_INT, **_COMPLEX}
TABLE = templates.merged(templates.BASE, CPU_OVERRIDES, _vmath_overrides())

_CASTS = {"float32", "int32", "complex64"}  # numba would widen these; cast results back


def print_kernel(k: Kernel, table: dict | None = None, name: str | None = None) -> str:
    """The numba source of ``k`` as a module defining one function named ``name``."""
    table = TABLE if table is None else table
    if hasattr(k, "print_numba"):  # a wavefront kernel (kernels/wavefront.py) prints its sweep
        return k.print_numba(table, name)
    p = _Printer(k, table)
    body = p.function(name or k.name)
    imports = ["import numba", "import numpy as np", "from kernels.cpu import NoAlias"]
    if p.uses_math:
        imports.insert(0, "import math")
    if p.vmath:
        imports.append(f"from kernels.vmath import {', '.join(sorted(p.vmath))}")
    if p.half:
        imports.append(f"from kernels.halfconv import {', '.join(sorted(p.half))}")
    return "\n".join(imports) + "\n\n\n" + body


class _Printer:
    def __init__(self, k: Kernel, table: dict):
        self.k, self.table = k, table
        self.vmath: set[str] = set()
        self.half: set[str] = set()
        self.uses_math = False
        self.dtypes = {b.name: b.dtype for b in k.inputs + k.outputs + k.scratch}
        self.invariant: set[str] = set()
        self.interior = frozenset()  # dims whose reads are known to be in range
        self.temps: dict[str, int] = {}  # row-buffer slots of split loops, per dtype
        # row buffers: allocated per outer iteration, or (False) arguments of the function
        self.thread_temps = True

    def function(self, name: str) -> str:
        k = self.k
        points = math.prod(k.domain)
        parallel = points >= PARALLEL_MIN_POINTS and len(k.domain) > (2 if k.sequential else 0)
        args = ", ".join(b.name for b in k.inputs + k.outputs)
        head = [f'@numba.njit(parallel={parallel}, error_model="numpy", nogil=True, cache=True, '
                f"pipeline_class=NoAlias)", f"def {name}({args}):"]
        self.invariant = _invariant_lets(k.body)
        # Values that do not depend on the loop indices (scalar arguments, literals) are read
        # before the loops: inside, LLVM could not hoist a load from an array that might alias
        # an output, and the reload would block vectorisation.
        hoisted = [_i(1) + s for s in self.statements(invariant=True)]
        hoisted += [_i(1) + f"{b.name} = np.empty({tuple(b.shape)!r}, np.{b.dtype})"
                    for b in k.scratch]
        loops = self.with_temps(self.loops(parallel))
        return "\n".join(head + hoisted + loops) + "\n"

    def with_temps(self, loops: list[str]) -> list[str]:
        """``loops`` with the row buffers of split loops allocated at the top of each outer
        iteration (a plane: split rows need a nest at least three deep), so that every
        thread has its own. Fresh arrays: LLVM knows they overlap nothing else."""
        if not (self.thread_temps and self.temps):
            return loops
        at = loops.index(next(ln for ln in loops if ln.startswith(_i(1) + "for "))) + 1
        n = self.k.domain[-1]
        alloc = [_i(2) + f"tw_{d}_{j} = np.empty({n}, np.{d})" for d, j in self.temp_slots()]
        return loops[:at] + alloc + loops[at:]

    def temp_slots(self) -> list[tuple]:
        """``(dtype, j)`` of each row buffer ``tw_<dtype>_<j>``, in argument order."""
        return [(d, j) for d, c in sorted(self.temps.items()) for j in range(c)]

    def temp_names(self) -> list[str]:
        """The row buffers' names, one per slot."""
        return [f"tw_{d}_{j}" for d, j in self.temp_slots()]

    # -- loop structure -----------------------------------------------------------------------

    def loops(self, parallel: bool) -> list[str]:
        k = self.k
        nd = len(k.domain)
        rng = "numba.prange" if parallel else "range"
        if k.sequential:
            return self.in_order(parallel)
        if not k.reductions:
            return self.nest(0, nd, rng, 1)
        if k.depth == 0:
            return self.full_reduction(rng)
        lines, ind = [], 1
        for d in range(k.depth):
            lines.append(_i(ind) + f"for i{d} in {rng if d == 0 else 'range'}({k.domain[d]}):")
            ind += 1
        lines += [_i(ind) + f"acc{j} = {self.init(r)}" for j, r in enumerate(k.reductions)]
        mode = self.row_reduce()
        if mode == "row":
            lines += self.row_buffers(ind)
        lines += self.nest(k.depth, nd, "range", ind, accumulate=mode)
        out_idx = ", ".join(f"i{d}" for d in range(k.depth))
        lines += [_i(ind) + f"{r.buf}[{out_idx}] = {self.store_cast(r.buf, f'acc{j}')}"
                  for j, r in enumerate(k.reductions)]
        return lines

    def in_order(self, parallel: bool) -> list[str]:
        """Axis 0 in order on every thread (sums along it read back earlier planes); with
        ``parallel`` each thread takes a band of axis 1 for all planes, as the wavefront
        sweeps do, so no two threads touch one point."""
        if any(isinstance(s, Thomas) for s in self.k.body):
            return self.solve_blocks(parallel)
        if not parallel:
            return self.nest(0, len(self.k.domain), "range", 1)
        return bands(1, self.k.domain[1], _threads(self.k.domain[1])) + self.nest(
            0, len(self.k.domain), "range", 2, heads={1: "for i1 in range(a, b):"})

    def solve_blocks(self, parallel: bool) -> list[str]:
        """Each thread's band of axis 1 in blocks of rows: all planes of a block in order
        (the forward sweeps into per-thread buffers ``tcp<j>``, ``tdp<j>``), then the
        block's backward sweeps, which write the solutions. The arithmetic is the
        ``tridiagonal_solve`` routine's (``kernels.routines``), so results are equal."""
        k = self.k
        n0, n1, n2 = k.domain
        solves = [s for s in k.body if isinstance(s, Thomas)]
        item = max(int(np.dtype(self.dtypes[s.buf]).itemsize) for s in solves)
        budget = int(os.environ.get("SCIML_SOLVE_BLOCK_BYTES", SOLVE_BLOCK_BYTES))
        rows = max(1, min(n1, budget // (2 * len(solves) * n0 * n2 * item)))
        lines = bands(1, n1, _threads(n1) if parallel else 1,
                      "numba.prange" if parallel else "range")
        for s in solves:
            d = self.dtypes[s.buf]
            lines += [_i(2) + f"tcp{s.slot} = np.empty(({n0}, {rows}, {n2}), np.{d})",
                      _i(2) + f"tdp{s.slot} = np.empty(({n0}, {rows}, {n2}), np.{d})"]
        lines += [_i(2) + f"for r in range(a, b, {rows}):",
                  _i(3) + f"e = min(r + {rows}, b)"]
        lines += self.nest(0, 3, "range", 3, heads={1: "for i1 in range(r, e):"})
        for s in solves:
            cp, dp, x = f"tcp{s.slot}", f"tdp{s.slot}", s.buf
            lines += [_i(3) + "for i1 in range(r, e):",
                      _i(4) + f"for i2 in range({n2}):",
                      _i(5) + f"{x}[{n0 - 1}, i1, i2] = {dp}[{n0 - 1}, i1 - r, i2]",
                      _i(3) + f"for i0 in range({n0 - 2}, -1, -1):",
                      _i(4) + "for i1 in range(r, e):",
                      _i(5) + f"for i2 in range({n2}):",
                      _i(6) + f"w = {dp}[i0, i1 - r, i2] - {cp}[i0, i1 - r, i2] * "
                              f"{dp}[i0 + 1, i1 - r, i2]",
                      _i(6) + f"{dp}[i0, i1 - r, i2] = w",
                      _i(6) + f"{x}[i0, i1, i2] = w"]
        return lines

    def thomas(self, s: Thomas) -> list[str]:
        """One point of a forward sweep: the routine's ``r = 1 / (b - a cp')``, ``cp = c r``,
        ``dp = (d - a dp') r``, with ``r = 1 / b`` and ``dp = d r`` on plane 0."""
        j, d = s.slot, self.dtypes[s.buf]
        prev = "max(i0 - 1, 0), i1 - r, i2"
        return [f"tr{j} = np.{d}(1.0) / ({s.diag} if i0 == 0 else "
                f"({s.diag} - {s.sub} * tcp{j}[{prev}]))",
                f"tcp{j}[i0, i1 - r, i2] = {s.sup} * tr{j}",
                f"tdp{j}[i0, i1 - r, i2] = ({s.rhs} if i0 == 0 else "
                f"({s.rhs} - {s.sub} * tdp{j}[{prev}])) * tr{j}"]

    def nest(self, start, stop, rng, ind, accumulate=False, heads=None) -> list[str]:
        """Loops ``start..stop-1`` around the point statements, with stencil borders peeled.

        Where every stencil read along a dimension is ``i + offset``, the points whose reads
        are all in range (the interior) run statements without clamps or guards, so they
        vectorise: the innermost loop is split into border, interior, border, and a test on
        the outer indices picks the guard-free body away from the outer borders.
        """
        if stop == start:
            return self.point(ind, accumulate, frozenset())
        ranges = _interiors(self.k)
        last = stop - 1
        lines = []
        for d in range(start, last):
            head = (heads or {}).get(d, f"for i{d} in {rng if d == 0 else 'range'}"
                                        f"({self.k.domain[d]}):")
            lines.append(_i(ind) + head)
            ind += 1
        outer = {d: ranges[d] for d in range(start, last) if d in ranges}
        if not outer:
            return lines + self.innermost(last, ranges.get(last), rng, ind, accumulate, set())
        cond = " and ".join(f"{a} <= i{d} < {b}" for d, (a, b) in outer.items())
        lines.append(_i(ind) + f"if {cond}:")
        lines += self.innermost(last, ranges.get(last), rng, ind + 1, accumulate, set(outer))
        lines.append(_i(ind) + "else:")
        return lines + self.innermost(last, ranges.get(last), rng, ind + 1, accumulate, set())

    def innermost(self, last, peel, rng, ind, accumulate, interior) -> list[str]:
        lines = self.row_loops(last, peel, rng, ind, accumulate, interior)
        if accumulate == "row":  # the row's values, reduced in order after its loops
            n = self.k.domain[last]
            lines.append(_i(ind) + f"for i{last} in range({n}):")
            lines += [_i(ind + 1) + self.combine(f"acc{j}", r, f"rv{j}[i{last}]")
                      for j, r in enumerate(self.k.reductions)]
        return lines

    def row_loops(self, last, peel, rng, ind, accumulate, interior) -> list[str]:
        n = self.k.domain[last]
        r0 = rng if last == 0 else "range"
        if peel is None:
            split = self.split_row(last, 0, n, ind, accumulate, frozenset(interior))
            return split or [_i(ind) + f"for i{last} in {r0}({n}):"] + self.point(
                ind + 1, accumulate, frozenset(interior))
        a, b = peel
        lines = []
        for lo, hi, inside in ((0, a, False), (a, b, True), (b, n, False)):
            if hi > lo:
                dims = frozenset(interior | ({last} if inside else set()))
                split = self.split_row(last, lo, hi, ind, accumulate, dims)
                if split:
                    lines += split
                    continue
                lines.append(_i(ind) + f"for i{last} in {r0 if inside else 'range'}({lo}, {hi}):")
                lines += self.point(ind + 1, accumulate, dims)
        return lines

    def split_row(self, last, lo, hi, ind, accumulate, dims) -> list[str] | None:
        """The row ``lo..hi`` of loop ``last`` as several loops, each touching few arrays
        (FISSION_STREAMS), or None where one loop is better.

        Hardware prefetchers follow a limited number of streams: a loop summing 48 arrays
        reads memory at 22 GB/s where six loops over 8 arrays each read it at 43 GB/s (2
        cores, Zen 4). Statements keep their order; a value computed in one loop and used in
        a later one is stored in a row buffer slot, loads and index tests are repeated where
        used.
        """
        k = self.k
        # Not with reductions: splitting GOMD's row-reduced 55-array kernel (below) made it
        # slower, 0.95 against 0.88 ms.
        if (FISSION_STREAMS <= 0 or accumulate or hi - lo < FISSION_MIN_ROW
                or any(isinstance(s, Thomas) for s in k.body)
                or last < (2 if self.thread_temps else 1)
                or math.prod(k.domain) < FISSION_MIN_POINTS):
            return None
        lets = {s.name: s for s in k.body if isinstance(s, Let)}
        groups = _stream_groups(k.body, lets, self.invariant, FISSION_STREAMS, len(k.domain))
        if len(groups) < 2:
            return None
        where = {s.name: g for g, grp in enumerate(groups) for s in grp if isinstance(s, Let)}
        slots: dict[str, tuple] = {}  # value carried between loops -> (dtype, slot)
        count: dict[str, int] = {}
        for g, grp in enumerate(groups):
            for s in grp:
                for a in _reads(s):
                    if where.get(a, g) < g and a not in slots:
                        d = lets[a].expr.dtype
                        if d not in _TEMP_DTYPES:
                            return None
                        slots[a] = (d, count.get(d, 0))
                        count[d] = count.get(d, 0) + 1
        for d, c in count.items():
            self.temps[d] = max(self.temps.get(d, 0), c)
        i = f"i{last}"
        lines = []
        self.interior = dims
        for g, grp in enumerate(groups):
            lines.append(_i(ind) + f"for {i} in range({lo}, {hi}):")
            lines += [_i(ind + 1) + b for b in self.group_body(grp, g, where, slots, lets, i)]
        self.interior = frozenset()
        return lines

    def group_body(self, grp, g, where, slots, lets, i) -> list[str]:
        """Statements of loop ``g`` of a split row: values of earlier loops read back from
        their row buffer, loads and index tests repeated, values later loops use stored."""
        body, have = [], set(self.invariant)

        def need(a):
            if a in have:
                return
            have.add(a)
            if a in slots and where[a] < g:
                d, slot = slots[a]
                body.append(f"{a} = tw_{d}_{slot}[{i}]")
                return
            for b in _reads(lets[a]):  # a repeated load or index test
                need(b)
            body.append(self.statement(lets[a]))

        for s in grp:
            for a in _reads(s):
                need(a)
            body.append(self.statement(s))
            if isinstance(s, Let):
                have.add(s.name)
                if s.name in slots:
                    d, slot = slots[s.name]
                    body.append(f"tw_{d}_{slot}[{i}] = {s.name}")
        return body

    def point(self, ind, accumulate, interior=frozenset()) -> list[str]:
        """The statements at one point (and the reductions' accumulation)."""
        self.interior = interior
        lines = [_i(ind) + s for s in self.statements()]
        self.interior = frozenset()
        if accumulate is True:  # ("row": the row buffers' stores are statements, row_reduce)
            lines += [_i(ind) + self.combine(f"acc{j}", r) for j, r in enumerate(self.k.reductions)]
        return lines

    def row_reduce(self) -> str | bool:
        """``"row"`` where a reduction kernel that also stores arrays keeps each row's values
        in a row buffer ``rv<j>`` and reduces them in a loop of its own after the row, else
        True (accumulate at each point). Accumulating at each point is a dependence from one
        point to the next, so LLVM leaves the whole row loop scalar; with the buffer the
        stores and arithmetic vectorise. The order of accumulation is the same, and so are
        the results, bit for bit. (GOMD's external step ends in such a kernel: 55 arrays
        read, 10 written and max|v| reduced, 1.06 -> 0.81 ms at 513x259.)"""
        k = self.k
        values = {s.name: getattr(s.expr, "dtype", None) for s in k.body if isinstance(s, Let)}
        if (not ROW_REDUCE or len(k.domain) - k.depth < 1 or k.domain[-1] < ROW_REDUCE_MIN_ROW
                or (k.depth == 0 and len(k.domain) < 2)
                or not any(isinstance(s, Store) for s in k.body)
                or any(values.get(r.value) not in _TEMP_DTYPES for r in k.reductions)):
            return True
        self.row_dtypes = [values[r.value] for r in k.reductions]
        last = Idx(len(k.domain) - 1)
        stores = [Store(f"rv{j}", (last,), r.value) for j, r in enumerate(k.reductions)]
        self.k = dataclasses.replace(k, body=list(k.body) + stores)
        self.dtypes.update({f"rv{j}": d for j, d in enumerate(self.row_dtypes)})
        return "row"

    def row_buffers(self, ind) -> list[str]:
        n = self.k.domain[-1]
        return [_i(ind) + f"rv{j} = np.empty({n}, np.{d})" for j, d in enumerate(self.row_dtypes)]

    def full_reduction(self, rng) -> list[str]:
        """Partial results per parallel chunk, combined in order after the loop."""
        k = self.k
        nd = len(k.domain)
        reds = k.reductions
        if nd == 0:
            lines = [_i(1) + f"acc{j} = {self.init(r)}" for j, r in enumerate(reds)]
            lines += [_i(1) + s for s in self.statements()]
            lines += [_i(1) + self.combine(f"acc{j}", r) for j, r in enumerate(reds)]
            return lines + [_i(1) + f"{r.buf}[0] = {self.store_cast(r.buf, f'acc{j}')}"
                            for j, r in enumerate(reds)]
        n0 = k.domain[0]
        chunks = -(-n0 // REDUCE_CHUNK) if nd == 1 else n0
        lines = [_i(1) + f"part{j} = np.empty({max(chunks, 1)}, np.{r.acc_dtype})"
                 for j, r in enumerate(reds)]
        lines.append(_i(1) + f"for c in {rng}({chunks}):")
        lines += [_i(2) + f"acc{j} = {self.init(r)}" for j, r in enumerate(reds)]
        if nd == 1:
            lines.append(_i(2) + f"for i0 in range(c * {REDUCE_CHUNK}, "
                                 f"min(c * {REDUCE_CHUNK} + {REDUCE_CHUNK}, {n0})):")
            inner = [_i(3) + s for s in self.statements()]
            inner += [_i(3) + self.combine(f"acc{j}", r) for j, r in enumerate(reds)]
        else:
            mode = self.row_reduce()
            lines += self.row_buffers(2) if mode == "row" else []
            lines.append(_i(2) + "i0 = c")
            inner = self.nest(1, nd, "range", 2, accumulate=mode)
        lines += inner
        lines += [_i(2) + f"part{j}[c] = acc{j}" for j in range(len(reds))]
        for j, r in enumerate(reds):
            lines.append(_i(1) + f"acc{j} = {self.init(r)}")
            lines.append(_i(1) + f"for c in range({chunks}):")
            lines.append(_i(2) + self.combine(f"acc{j}", r, f"part{j}[c]"))
            lines.append(_i(1) + f"{r.buf}[0] = {self.store_cast(r.buf, f'acc{j}')}")
        return lines

    # -- reductions ---------------------------------------------------------------------------

    def init(self, r) -> str:
        d = r.acc_dtype
        if r.op == "sum":
            return f"np.{d}(0)" if d != "bool" else "False"
        if r.op == "prod":
            return f"np.{d}(1)" if d != "bool" else "True"
        if d == "bool":
            return "False" if r.op == "max" else "True"
        if d.startswith("int"):
            return f"np.iinfo(np.{d}).{'min' if r.op == 'max' else 'max'}"
        return f"np.{d}({'-' if r.op == 'max' else ''}np.inf)"

    def combine(self, acc, r, value=None) -> str:
        v = value or r.value
        expr = {"sum": f"{acc} + {v}", "prod": f"{acc} * {v}",
                "max": f"np.maximum({acc}, {v})", "min": f"np.minimum({acc}, {v})"}[r.op]
        if r.op in ("max", "min") and r.acc_dtype in ("float32", "float64"):
            fn = "fmaximum" if r.op == "max" else "fminimum"  # vectorisable, NaN-propagating
            self.vmath.add(fn)
            expr = f"{fn}({acc}, {v})"
        if r.acc_dtype == "bool":
            expr = {"sum": f"{acc} | {v}", "prod": f"{acc} & {v}"}.get(r.op, expr)
        return f"{acc} = {_cast(r.acc_dtype, expr)}"

    # -- statements ---------------------------------------------------------------------------

    def statements(self, invariant: bool = False) -> list[str]:
        """The per-point statements, or with ``invariant`` those hoisted above the loops."""
        out = []
        for s in self.k.body:
            if isinstance(s, Let) and (s.name in self.invariant) != invariant:
                continue
            if invariant and not isinstance(s, Let):
                continue
            if isinstance(s, (Let, Store)):
                out.append(self.statement(s))
            elif isinstance(s, Thomas) and not invariant:
                out += self.thomas(s)
        return out

    def statement(self, s) -> str:
        if isinstance(s, Let):
            return f"{s.name} = {self.expr(s.expr)}"
        return f"{s.buf}[{self.index(s.index)}] = {self.store_cast(s.buf, s.value)}"

    def store_cast(self, buf, value) -> str:
        if self.dtypes[buf] == "bfloat16":
            self.half.add("bf16_store")
            return f"bf16_store({value})"
        d = KERNEL_ARRAY_DTYPE.get(self.dtypes[buf], self.dtypes[buf])
        return _cast(d, value) if d in _CASTS else value

    def expr(self, e) -> str:
        if isinstance(e, Load):
            if self.dtypes[e.buf] == "bfloat16":
                self.half.add("bf16_load")
                return f"bf16_load({e.buf}[{self.index(e.index)}])"
            return f"{e.buf}[{self.index(e.index)}]"
        if isinstance(e, Const):
            return _literal(e.value, e.dtype)
        if isinstance(e, IndexValue):
            return _cast(e.dtype, self.ix(e.index), always=True)
        if isinstance(e, InRange):
            checks = [c for c in e.checks if not self._inside(c[0])]
            return " & ".join(f"({lo} <= {self.ix(x)}) & ({self.ix(x)} < {hi})"
                              for x, lo, hi in checks) or "True"
        if isinstance(e, Op):
            return self.op(e)
        raise TypeError(f"cpu printer: unknown expression {e!r}")

    def op(self, e: Op) -> str:
        if e.prim == "convert":
            dst = str(e.params["new_dtype"])
            if dst == "bfloat16":  # round as the reference does, keep computing in float32
                self.half.add("bf16_round")
                return f"bf16_round(np.float32({e.args[0]}))"
            return _convert(e.args[0], e.in_dtype, dst)
        text = templates.render(self.table, e.prim, list(e.args), e.params, e.in_dtype)
        if text.startswith("math."):
            self.uses_math = True
        head = text.split("(", 1)[0]
        if head.endswith(("_f64", "_f32")):
            self.vmath.add(head)
        return _cast(e.dtype, text) if e.dtype in _CASTS else text

    def index(self, idx) -> str:
        return ", ".join(self.ix(x) for x in idx)

    def ix(self, x) -> str:
        if isinstance(x, Idx):
            return f"i{x.dim}"
        if isinstance(x, Lit):
            return str(x.value)
        if isinstance(x, Affine):
            s = self.ix(x.base) if x.scale == 1 else f"{x.scale} * {self.ix(x.base)}"
            return f"({s} + {x.offset})" if x.offset else s
        if isinstance(x, (Clamp, Wrap)) and self._inside(x.e):
            return self.ix(x.e)  # inside the interior range the index is already in bounds
        if isinstance(x, Clamp):
            e = self.ix(x.e)
            if isinstance(x.e, Idx):  # numba may type a bare prange index as unsigned, and
                e = f"np.int64({e})"  # max(uint64, int) is a float
            return f"min(max({e}, {x.lo}), {x.hi})"
        if isinstance(x, Wrap):
            return f"({self.ix(x.e)} % {x.n})"
        raise TypeError(f"cpu printer: unknown index expression {x!r}")

    def _inside(self, e) -> bool:
        """True when ``e`` is ``i_d + o`` along a dimension printed as interior."""
        return any(_last_offset(e, d) is not None for d in self.interior)


def _last_offset(e, last: int):
    """``o`` when ``e`` is ``i_last + o``, else None."""
    if isinstance(e, Idx) and e.dim == last:
        return 0
    if isinstance(e, Affine) and e.scale == 1 and isinstance(e.base, Idx) and e.base.dim == last:
        return e.offset
    return None


def _interiors(k: Kernel) -> dict:
    """``{dim: (a, b)}``: per dimension, the indices where every guarded read along it is in
    range. Only dimensions whose guarded reads are all ``i + offset`` qualify; the chunked
    one-dimensional reduction keeps its own loop."""
    if not k.domain or (k.reductions and k.depth == 0 and len(k.domain) == 1):
        return {}
    bounds: dict[int, list] = {}
    bad: set[int] = set()
    for lo, hi, e in _guards(k.body):
        dims = [d for d in range(len(k.domain)) if _mentions(e, d)]
        for d in dims:
            o = _last_offset(e, d)
            if o is None:
                bad.add(d)
            else:
                b = bounds.setdefault(d, [0, k.domain[d]])
                b[0], b[1] = max(b[0], lo - o), min(b[1], hi - o)
    out = {}
    for d, (a, b) in bounds.items():
        if d not in bad:
            n = k.domain[d]
            a = min(max(a, 0), n)
            out[d] = (a, max(min(b, n), a))
    return out


def _guards(body):
    """(lo, hi_exclusive, expr) of every clamp, wrap and range check in the kernel."""
    for s in body:
        e = getattr(s, "expr", None)
        if isinstance(e, InRange):
            yield from ((lo, hi, x) for x, lo, hi in e.checks)
        idx = e.index if isinstance(e, Load) else getattr(s, "index", ())
        for x in idx:
            if isinstance(x, Clamp):
                yield x.lo, x.hi + 1, x.e
            elif isinstance(x, Wrap):
                yield 0, x.n, x.e


def _mentions(e, dim: int) -> bool:
    if isinstance(e, Idx):
        return e.dim == dim
    return any(_mentions(getattr(e, f), dim) for f in ("base", "e") if hasattr(e, f))


def bands(ind: int, n1: int, nt: int, rng: str = "numba.prange") -> list[str]:
    """A loop over ``nt`` threads, each with its band ``a..b`` of an axis of ``n1`` rows."""
    return [_i(ind) + f"for t in {rng}({nt}):",
            _i(ind + 1) + "c = np.int64(t)",  # prange counts in uint64: one signature
            _i(ind + 1) + f"a = (c * {n1}) // {nt}",
            _i(ind + 1) + f"b = ((c + 1) * {n1}) // {nt}"]


def _threads(n1: int) -> int:
    """Threads sharing an axis of ``n1`` rows: at most one row each."""
    return max(1, min(numba.config.NUMBA_NUM_THREADS, n1))


def _invariant_lets(body) -> set:
    """Names of the Lets whose value is the same at every point of the domain."""
    inv: set[str] = set()
    for s in body:
        if not isinstance(s, Let):
            continue
        e = s.expr
        if isinstance(e, Const):
            inv.add(s.name)
        elif isinstance(e, Load) and all(isinstance(x, Lit) for x in e.index):
            inv.add(s.name)
        elif isinstance(e, Op) and all(a in inv for a in e.args):
            inv.add(s.name)
    return inv


_REPEATED = (Load, InRange, IndexValue, Const)  # cheaper to evaluate again than to carry


def _reads(s) -> list:
    """Scalar names a statement reads."""
    if isinstance(s, Store):
        return [s.value]
    if isinstance(s, Thomas):
        return [s.sub, s.diag, s.sup, s.rhs]
    return list(s.expr.args) if isinstance(s.expr, Op) else []


def _stream_groups(body, lets: dict, invariant: set, limit: int, nd: int) -> list[list]:
    """The point statements (without repeated loads and index tests) cut, in order, into
    groups that each stream at most ``limit`` arrays not streamed by an earlier group.

    A stream is an array indexed by every loop of the ``nd``-deep nest; broadcast operands
    (a plane read at every level) and a sweep's rings (an extra thread and slot axis) are
    reused from cache and do not count."""
    def streams_of(s):
        if isinstance(s, Store):
            return {s.buf} if _streamed(s.index, nd) else set()
        return {lets[a].expr.buf for a in _reads(s)
                if a in lets and isinstance(lets[a].expr, Load) and a not in invariant
                and _streamed(lets[a].expr.index, nd)}

    groups, cur, streams, seen = [], [], set(), set()
    for s in body:
        if isinstance(s, Let) and (s.name in invariant or isinstance(s.expr, _REPEATED)):
            continue
        new = streams_of(s) - seen
        if cur and len(streams | new) > limit:
            groups.append(cur)
            cur, streams = [], set()
        cur.append(s)
        streams |= new
        seen |= new
    return groups + [cur] if cur else groups


def _streamed(index, nd: int) -> bool:
    return len(index) == nd and not any(isinstance(x, Lit) for x in index)


def _i(n: int) -> str:
    return "    " * n


def _cast(dtype: str, text: str, always: bool = False) -> str:
    if dtype == "bool":
        return f"bool({text})" if always else text
    return f"np.{dtype}({text})" if (always or dtype in _CASTS) else text


def _convert(arg: str, src: str, dst: str) -> str:
    dst = "float32" if dst == "float16" else dst
    if dst == src:
        return arg
    if dst == "bool":
        return f"({arg} != 0)"
    if src.startswith("complex") and not dst.startswith("complex"):
        arg = f"{arg}.real"
    return f"np.{dst}({arg})"


def _literal(value, dtype: str) -> str:
    if dtype == "bool":
        return repr(bool(value))
    if dtype.startswith("complex"):
        c = complex(value)
        return f"np.{dtype}(complex({_float(c.real)}, {_float(c.imag)}))"
    if dtype.startswith("float"):
        return f"np.{dtype}({_float(float(value))})"
    return f"np.{dtype}({int(value)})"


def _float(x: float) -> str:
    if math.isnan(x):
        return "np.nan"
    if math.isinf(x):
        return "np.inf" if x > 0 else "-np.inf"
    return repr(x)


# ---------------------------------------------------------------------------------------------
# What the CPU target fuses

_NUMBA_DTYPES = {"bool", "int32", "int64", "float16", "bfloat16", "float32", "float64",
                 "complex64", "complex128"}
# numba's complex support covers arithmetic and the cmath functions, not orderings or rounding.
_COMPLEX_OK = {"neg", "add", "sub", "mul", "div", "eq", "ne", "real", "imag", "conj", "abs",
               "select", "convert", "stop_gradient", "integer_pow", "exp", "log", "sqrt", "sin",
               "cos", "tan", "tanh", "sinh", "cosh", "isnan", "isinf", "isfinite",
               "broadcast_in_dim", "shift", "slice", "pad", "rev", "transpose",
               "reduce_sum", "reduce_prod"}


def can_fuse(node) -> bool:
    """Whether this printer can put ``node`` in a kernel (else it runs as a library node)."""
    avals = [a.aval for a in node.inputs] + [o.aval for o in node.outputs]
    names = {str(a.dtype) for a in avals}
    if not names <= _NUMBA_DTYPES:
        return False
    if any(n.startswith("complex") for n in names) and node.prim.name not in _COMPLEX_OK:
        return False
    name = node.prim.name
    if "elementwise" not in node.prim.tags or name in ("convert", "select"):
        return True
    in_dt = str(node.inputs[-1].aval.dtype)
    in_dt = "float32" if in_dt in ("float16", "bfloat16") else in_dt
    return templates.lookup(TABLE, name, in_dt) is not None


def available():
    """The CPU backend needs only numba, which sciml depends on."""


def print_routine(node, name: str):
    """A library node as a compiled numba routine (``kernels.routines``), or None."""
    from .routines import routine

    return routine(node, name)


def finish_plan(plan):
    """Whole-plan code for plans with loops (``kernels.plancode``), else the step plan."""
    from . import plancode
    from .jit import compile_graph

    return plancode.build(plan, lambda g: compile_graph(g, "cpu").plan) or plan
