"""The NPU target: a tile program for a simulated Ascend-like device, run on the host.

The device has global memory (GM, the arrays), a fixed-size on-chip unified buffer (UB, 256 KiB
by default), a vector unit that applies one operation to a whole UB tile (256 bytes per cycle:
64 float32 lanes) and a cube unit that multiplies 16x16 float16 tiles with float32
accumulation. A kernel of the loop IR becomes a tile program: the iteration domain, seen as
``rows x cols`` (kept loops x reduced loops), is cut into tiles of ``tile_rows x tile_cols``
points; per tile, ``copy_in`` moves each load from GM to a UB tile (gathering stencil and
layout reads by their index expressions, half types widened to float32), vector instructions
compute, ``vreduce`` folds into an accumulator held in UB across column chunks, and
``copy_out`` writes back (rounded to the storage dtype). UB slots are reused once a value is
dead; the tile is the largest one whose slots fit in the UB.

``dot_general`` runs on the cube: operands move to (batch, M, K) x (batch, K, N), are padded to
16-multiples and rounded to float16 (float32 data loses precision here, as on the hardware;
bfloat16 stays bfloat16), each 16x16x16 tile product is exact in float32 and accumulates in
float32 over K tiles in order. The error against an exact product is bounded by
``2**-11 * |A| @ |B|`` (rounding of the inputs) plus float32 accumulation; tests check it.
Everything else a graph contains (sorts, gathers, linear algebra, control flow) runs on the host
CPU as numpy, as an AI CPU would.

What the device lacks: float64, int64 and complex arithmetic. A program that needs them on the
vector unit or the cube raises ``UnsupportedError`` naming the node and its source line when it
is compiled, before anything runs. Reductions accumulate in float32 (no float64 accumulator):
per tile a pairwise tree (as the vector unit's reduce instruction), across tiles in order.

The simulator refuses a program whose UB allocations exceed its buffer (``BufferOverflowError``)
and counts cycles with a simple cost model (``NPUConfig``): DMA bytes over bandwidth plus a
latency per copy, vector instructions by bytes per cycle times an operation cost, cube tiles at
one 16x16x16 product per cycle. ``estimate(program)`` gives the same count without running it.

>>> import numpy as np
>>> from kernels.jit import jit
>>> f = jit(lambda x: (x * x) * 2.0 + x, backend="npu")
>>> x = np.linspace(-1.0, 1.0, 5, dtype=np.float32)
>>> bool(np.array_equal(f(x), (x * x) * 2.0 + x))
True
>>> print(f.lower(x).sources[0])
npu program kernel: domain (5,) = 5 rows x 1 cols, tile 5 x 1, 1 tiles, ub 64/262144 bytes
  ub s0 @0 float32[5]
  ub s1 @32 float32[5]
  scalar v2 = 2.0:float32
  for tile:
    copy_in s0 <- in0[i0] (float32)
    vmul s1 <- s0, s0
    vmul s1 <- s1, v2
    vadd s0 <- s1, s0
    copy_out out0[i0] <- s0 (float32)
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np

from autodiff import dtypes
from autodiff.errors import UnsupportedError
from autodiff.passes import optimize
from autodiff.primitives import PRIMITIVES

from .fuse import Cluster, Library, classify, fuse
from .loopir import Affine, Clamp, Const, Idx, IndexValue, InRange, Kernel, Let, Lit, Load, Op, Wrap
from .loopir import Store as _Store  # noqa: F401  (statements other than Let are stores)

# ---------------------------------------------------------------------------------------------
# The device


@dataclass(frozen=True)
class NPUConfig:
    """Sizes and throughputs of the simulated device (cycles at one clock)."""

    ub_bytes: int = 256 * 1024  # unified buffer
    align: int = 32  # UB allocations start on 32-byte blocks
    gm_bytes_per_cycle: float = 64.0  # DMA bandwidth between GM and UB
    dma_latency: int = 64  # cycles to start one copy instruction
    vector_bytes_per_cycle: int = 256  # the vector unit processes 256 bytes per cycle
    vector_latency: int = 8  # cycles to issue one vector instruction
    cube_tile: int = 16  # the cube multiplies cube_tile x cube_tile x cube_tile per cycle
    launch: int = 200  # cycles to start a program


CONFIG = NPUConfig()


@contextlib.contextmanager
def use_config(config: NPUConfig):
    """Compile and run with ``config`` inside the block (a smaller UB, a faster DMA...)."""
    global CONFIG
    old, CONFIG = CONFIG, config
    try:
        yield config
    finally:
        CONFIG = old


class BufferOverflowError(UnsupportedError):
    """A tile program needs more unified buffer than the device has.

    Causes: too many values live at once in one kernel for even the smallest tile, or a
    program compiled for a larger buffer run on a simulator with a smaller one.
    """


# Storage dtypes the vector unit reads and writes; half types compute in float32.
VECTOR_DTYPES = {"bool", "int32", "float16", "bfloat16", "float32"}
CUBE_DTYPES = {"float16", "bfloat16", "float32"}
# Vector instruction costs, in passes over the tile (the rest cost 1).
_COST = {"div": 4, "sqrt": 4, "rsqrt": 4, "mod": 6, "floor_divide": 6, "pow": 16,
         "integer_pow": 2, "atan2": 16, "erf": 12}
_TRANSCENDENTAL = ("exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "sinh", "cosh",
                   "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh")
_COST.update({p: 8 for p in _TRANSCENDENTAL})


# ---------------------------------------------------------------------------------------------
# What the NPU runs: the jit hooks


def available():
    """The NPU is simulated on the host: always available."""


def can_fuse(node) -> bool:
    """Vector-unit work (pointwise, reads, reductions) of supported dtypes fuses into tiles."""
    return classify(node) is not None and _unsupported(node, VECTOR_DTYPES) is None


def check_groups(groups: list, seen: set | None = None):
    """Refuse, before anything runs, work the device cannot do (float64, int64, complex).

    Subgraphs (loop bodies, branches, calls) are compiled lazily when they first run, so they
    are checked here too, each once (a recursive graph reaches itself).
    """
    seen = set() if seen is None else seen
    for g in groups:
        nodes = g.nodes if isinstance(g, Cluster) else [g.node]
        for node in nodes:
            for sub in node.subgraphs():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    check_groups(fuse(optimize(sub), can_fuse), seen)
            if isinstance(g, Library) and node.prim.name == "dot_general":
                bad = _unsupported(node, CUBE_DTYPES)
                unit = "cube unit (float16/bfloat16/float32)"
            elif classify(node) is not None:
                bad = _unsupported(node, VECTOR_DTYPES)
                unit = "vector unit (bool/int32/float16/bfloat16/float32)"
            else:
                continue  # runs on the host CPU
            if bad:
                where = f" at {node.source}" if node.source else ""
                raise UnsupportedError(
                    f"npu: {node.prim.name}{where} needs {bad}, which the {unit} lacks; cast "
                    f"to float32 (or int32) first, or use backend='cpu'")


def _unsupported(node, allowed) -> str | None:
    avals = [a.aval for a in node.inputs] + [o.aval for o in node.outputs]
    bad = sorted({str(a.dtype) for a in avals} - allowed)
    return ", ".join(bad) or None


def print_kernel(k: Kernel, name: str | None = None) -> str:
    """The tile program of ``k`` as text (the NPU's "source")."""
    prog = lower_program(k, name=name)
    _PROGRAMS[str(prog)] = prog
    return str(prog)


_PROGRAMS: dict[str, TileProgram] = {}


def program(source: str) -> TileProgram:
    """The tile program printed as ``source`` (``jit(f, backend="npu").lower(x).sources[i]``)."""
    return _PROGRAMS[source]


def estimate_compiled(compiled) -> int:
    """Cycles of one call of a compiled function's kernels (cube and host work not included)."""
    return sum(estimate(program(s)) for s in compiled.sources.values())


def compile_kernel(source: str, kernel: Kernel):
    """A callable ``(*inputs, *outputs)`` running the program on the simulator."""
    prog = _PROGRAMS.get(source) or lower_program(kernel, name="kernel")
    return lambda *arrays: SIMULATOR.run(prog, *arrays)


def library_runner(node):
    """``dot_general`` runs on the cube; every other library node on the host (None)."""
    if node.prim.name != "dot_general":
        return None
    params = dict(node.params)
    return lambda a, b: cube_dot_general(a, b, **params)


# ---------------------------------------------------------------------------------------------
# The tile program


@dataclass(frozen=True)
class Slot:
    """A UB allocation of ``points`` elements of ``dtype`` at byte ``offset``."""

    name: str
    offset: int
    dtype: str
    points: int

    @property
    def nbytes(self) -> int:
        return self.points * np.dtype(dtypes.dtype(self.dtype)).itemsize

    def __str__(self):
        return f"ub {self.name} @{self.offset} {self.dtype}[{self.points}]"


@dataclass(frozen=True)
class Instr:
    """One instruction: ``op dst <- args``; ``info`` holds what the op needs (index, dtype...)."""

    op: str  # copy_in, copy_out, vdup, viota, vguard, v<prim>, vreduce_<op>
    dst: str
    args: tuple = ()
    info: dict = field(default_factory=dict, hash=False, compare=False)

    def __str__(self):
        if self.op == "copy_in":
            return f"copy_in {self.dst} <- {self.info['buf']}[{_ixs(self.info['index'])}] " \
                   f"({self.info['storage']})"
        if self.op == "copy_out":
            return f"copy_out {self.dst}[{_ixs(self.info['index'])}] <- {self.args[0]} " \
                   f"({self.info['storage']})"
        extra = "".join(f", {k}={v}" for k, v in sorted(self.info.get("params", {}).items()))
        if self.op == "viota":
            extra = f" {self.info['index']}"
        if self.op == "vguard":
            extra = " " + " and ".join(f"{lo} <= {e} < {hi}" for e, lo, hi in self.info["checks"])
        args = f" {', '.join(map(str, self.args))}" if self.args else ""
        return f"{self.op} {self.dst} <-{args}{extra}"


@dataclass
class TileProgram:
    """A kernel as tiles: ``body`` per tile, accumulators ``accs`` per row block."""

    name: str
    kernel: Kernel
    rows: int
    cols: int
    tile_rows: int
    tile_cols: int
    slots: list
    body: list
    accs: list  # (slot name, reduction op, value name, output buffer)
    scalars: dict  # name -> numpy scalar (scalar registers, no UB)
    ub_bytes: int  # UB the program uses
    ub_capacity: int  # UB it was tiled for

    @property
    def tiles(self) -> int:
        return -(-self.rows // self.tile_rows) * -(-self.cols // self.tile_cols)

    def __str__(self):
        k = self.kernel
        head = (f"npu program {self.name}: domain {k.domain} = {self.rows} rows x {self.cols} "
                f"cols, tile {self.tile_rows} x {self.tile_cols}, {self.tiles} tiles, "
                f"ub {self.ub_bytes}/{self.ub_capacity} bytes")
        lines = [head] + [f"  {s}" for s in self.slots]
        lines += [f"  scalar {n} = {v.item()!r}:{v.dtype}" for n, v in self.scalars.items()]
        ind = "  "
        if self.accs:
            lines.append("  for row block:")
            lines += [f"    vdup {a} <- {_init_name(op)}" for a, op, _, _ in self.accs]
            ind = "    "
        lines.append(f"{ind}for tile:")
        lines += [f"{ind}  {i}" for i in self.body]
        lines += [f"{ind}  vreduce_{op} {a} <- {v}" for a, op, v, _ in self.accs]
        lines += [f"    copy_out {b}[rows] <- {a}" for a, _, _, b in self.accs]
        return "\n".join(lines)


def _ixs(index) -> str:
    return ", ".join(map(str, index))


def _init_name(op) -> str:
    return {"sum": "0", "prod": "1", "max": "-inf", "min": "+inf"}[op]


# ---------------------------------------------------------------------------------------------
# Kernel -> TileProgram


def lower_program(k: Kernel, name: str | None = None,
                  config: NPUConfig | None = None) -> TileProgram:
    """Tile ``k`` for the UB of ``config``: BufferOverflowError when no tile fits."""
    config = config or CONFIG
    depth = k.depth if k.reductions else len(k.domain)
    rows, cols = math.prod(k.domain[:depth]), math.prod(k.domain[depth:])
    body, scalars, alias = _instructions(k)
    accs = _acc_specs(k, alias)
    n_slots, slot_of = _assign_slots(body, [v for _, _, v, _ in accs])
    tr, tc = _tile_shape(rows, cols, n_slots, len(accs), config, name or k.name)
    slots, off = [], 0
    for j in range(n_slots):
        slots.append(Slot(f"s{j}", off, "float32", tr * tc))  # 4-byte lanes hold any value
        off += _aligned(tr * tc * 4, config.align)
    for a, *_ in accs:
        slots.append(Slot(a, off, _acc_dtype(k, a), tr))
        off += _aligned(tr * 4, config.align)
    body = [_rename(i, slot_of) for i in body]
    accs = [(a, op, slot_of.get(v, v), b) for a, op, v, b in accs]
    return TileProgram(name or k.name, k, rows, cols, tr, tc, slots, body, accs, scalars, off,
                       config.ub_bytes)


def _acc_specs(k: Kernel, alias: dict) -> list:
    return [(f"acc{j}", r.op, alias.get(r.value, r.value), r.buf)
            for j, r in enumerate(k.reductions)]


def _acc_dtype(k: Kernel, acc: str) -> str:
    r = k.reductions[int(acc[3:])]
    return {"float64": "float32"}.get(r.acc_dtype, r.acc_dtype)


def _instructions(k: Kernel):
    """Per-point statements as tile instructions; scalars stay in scalar registers."""
    body, scalars, alias = [], {}, {}
    dts = {b.name: b.dtype for b in k.inputs + k.outputs}
    for s in k.body:
        if isinstance(s, Let):
            e = s.expr
            if isinstance(e, Const):
                scalars[s.name] = _scalar(e.value, e.dtype)
            elif isinstance(e, Load):
                body.append(Instr("copy_in", s.name, (), {
                    "buf": e.buf, "index": e.index, "storage": dts[e.buf]}))
            elif isinstance(e, IndexValue):
                body.append(Instr("viota", s.name, (), {"index": e.index, "dtype": e.dtype}))
            elif isinstance(e, InRange):
                body.append(Instr("vguard", s.name, (), {"checks": e.checks}))
            elif isinstance(e, Op) and e.prim == "convert" and e.dtype == "float64":
                alias[s.name] = alias.get(e.args[0], e.args[0])  # a float64 accumulator's cast
            elif isinstance(e, Op):
                args = tuple(alias.get(a, a) for a in e.args)
                body.append(Instr(f"v{e.prim}", s.name, args, {
                    "params": dict(e.params), "dtype": e.dtype, "in_dtype": e.in_dtype}))
            else:
                raise UnsupportedError(f"npu: cannot lower {s} in kernel {k.name}")
        else:
            body.append(Instr("copy_out", s.buf, (alias.get(s.value, s.value),), {
                "index": s.index, "storage": dts[s.buf]}))
    return body, scalars, alias


def _scalar(value, dtype: str):
    return np.asarray(value).astype(dtypes.dtype(dtype))[()]


def _assign_slots(body: list, reduced: list):
    """UB slots for tile values, a slot reused once its value is dead (linear scan)."""
    last: dict[str, int] = {}
    for t, ins in enumerate(body):
        for a in ins.args:
            last[a] = t
    for v in reduced:
        last[v] = len(body)  # read by the reductions after the body
    free, slot_of, n = [], {}, 0
    for t, ins in enumerate(body):
        if ins.op == "copy_out":
            continue
        for a in ins.args:  # operands dying here free their slots first: dst may reuse them
            if last.get(a) == t and a in slot_of and slot_of[a] not in free:
                free.append(slot_of[a])
        if free:
            slot_of[ins.dst] = free.pop()
        else:
            slot_of[ins.dst] = f"s{n}"
            n += 1
        if last.get(ins.dst, -1) < t:  # never read: free at once
            free.append(slot_of[ins.dst])
    return n, slot_of


def _rename(ins: Instr, slot_of: dict) -> Instr:
    dst = ins.dst if ins.op == "copy_out" else slot_of[ins.dst]
    return Instr(ins.op, dst, tuple(slot_of.get(a, a) for a in ins.args), ins.info)


def _aligned(n: int, align: int) -> int:
    return -(-n // align) * align


def _tile_shape(rows, cols, n_slots, n_accs, config, name) -> tuple[int, int]:
    """The largest tile (whole rows when they fit) whose slots and accumulators fit the UB."""
    def need(r, c):
        return n_slots * _aligned(r * c * 4, config.align) + n_accs * _aligned(r * 4, config.align)

    if need(1, cols) <= config.ub_bytes:
        r = max(1, min(rows, (config.ub_bytes - n_accs * config.align) //
                       max(1, n_slots * cols * 4 + n_accs * 4)))
        while r > 1 and need(r, cols) > config.ub_bytes:
            r -= 1
        return r, cols
    c = (config.ub_bytes - n_accs * config.align) // max(1, n_slots * 4)
    c = c // 8 * 8
    if c < 8:
        raise BufferOverflowError(
            f"npu: kernel {name} keeps {n_slots} tiles and {n_accs} accumulators live; even "
            f"an 8-point tile needs {need(1, 8)} bytes of unified buffer, more than the "
            f"{config.ub_bytes} available; split the computation or enlarge NPUConfig.ub_bytes")
    return 1, c


# ---------------------------------------------------------------------------------------------
# The simulator


class Simulator:
    """Runs tile programs with numpy on the host, counting cycles; refuses UB overflow."""

    def __init__(self, config: NPUConfig | None = None):
        self.config = config
        self.cycles = 0
        self.programs_run = 0

    def reset(self):
        self.cycles, self.programs_run = 0, 0

    def run(self, prog: TileProgram, *arrays):
        """Execute ``prog`` on GM arrays (its inputs, then its outputs, written in place)."""
        cfg = self.config or CONFIG
        if prog.ub_bytes > cfg.ub_bytes:
            raise BufferOverflowError(
                f"npu: program {prog.name} allocates {prog.ub_bytes} bytes of unified buffer; "
                f"this device has {cfg.ub_bytes}; recompile for it (npu.use_config)")
        k = prog.kernel
        gm = {b.name: _gm_view(a, b.dtype) for b, a in zip(k.inputs + k.outputs, arrays)}
        cycles = cfg.launch
        for r0 in range(0, prog.rows, prog.tile_rows):
            r1 = min(prog.rows, r0 + prog.tile_rows)
            accs = {a: _acc_init(op, _acc_dtype(k, a), r1 - r0) for a, op, _, _ in prog.accs}
            for c0 in range(0, prog.cols, prog.tile_cols):
                c1 = min(prog.cols, c0 + prog.tile_cols)
                cycles += _run_tile(prog, gm, accs, (r0, r1), (c0, c1), cfg)
            for a, _, _, buf in prog.accs:
                out = gm[buf].reshape(-1)
                out[r0:r1] = _to_storage(accs[a], _storage(k, buf), out.dtype)
                cycles += _dma_cost((r1 - r0) * _itemsize(_storage(k, buf)), cfg)
        self.cycles += cycles
        self.programs_run += 1
        return cycles


SIMULATOR = Simulator()


def _gm_view(a, dtype: str):
    """A GM array as its storage dtype: the plan may pass bfloat16 as its uint16 bits."""
    a = np.asarray(a)
    return a.view(dtypes.bfloat16) if dtype == "bfloat16" and a.dtype == np.uint16 else a


def _storage(k: Kernel, buf: str) -> str:
    return next(b.dtype for b in k.inputs + k.outputs if b.name == buf)


def _itemsize(d: str) -> int:
    return np.dtype(dtypes.dtype(d)).itemsize


def _acc_init(op, dtype, n):
    dt = dtypes.dtype(dtype)
    if op in ("sum", "prod"):
        return np.full(n, 0 if op == "sum" else 1, dt)
    if dt == np.bool_:
        return np.full(n, op == "min", dt)
    if dtypes.is_integer(dt):
        info = np.iinfo(dt)
        return np.full(n, info.min if op == "max" else info.max, dt)
    return np.full(n, -np.inf if op == "max" else np.inf, dt)


def _run_tile(prog, gm, accs, rows, cols, cfg) -> int:
    """One tile: the body over its points, then the reductions; returns its cycles."""
    (r0, r1), (c0, c1) = rows, cols
    nr, nc = r1 - r0, c1 - c0
    flat = (np.arange(r0, r1)[:, None] * prog.cols + np.arange(c0, c1)[None, :]).reshape(-1)
    domain = prog.kernel.domain
    idx = np.unravel_index(flat, domain) if domain else ()
    env = dict(prog.scalars)
    cycles = 0
    for ins in prog.body:
        cycles += _execute(ins, env, gm, idx, flat.size, cfg)
    for a, op, v, _ in prog.accs:
        val = np.broadcast_to(np.asarray(env[v]), (flat.size,)).reshape(nr, nc)
        accs[a] = _combine(op, accs[a], _tree_reduce(op, val.astype(accs[a].dtype)))
        cycles += _vector_cost(flat.size * 4, 1, cfg) + cfg.vector_latency * max(
            1, int(math.log2(max(nc, 1))))
    return cycles


def _execute(ins: Instr, env, gm, idx, n, cfg) -> int:
    if ins.op == "copy_in":
        arr = gm[ins.info["buf"]]
        storage = ins.info["storage"]
        where = tuple(_ix(e, idx) for e in ins.info["index"])
        env[ins.dst] = _widen(arr[where] if arr.ndim else np.full(n, arr[()]), storage)
        return _dma_cost(n * _itemsize(storage), cfg)
    if ins.op == "copy_out":
        out = gm[ins.dst]
        where = tuple(_ix(e, idx) for e in ins.info["index"])
        val = np.broadcast_to(np.asarray(env[ins.args[0]]), (n,))
        out[where] = _to_storage(val, ins.info["storage"], out.dtype)
        return _dma_cost(n * _itemsize(ins.info["storage"]), cfg)
    if ins.op == "viota":
        env[ins.dst] = np.asarray(_ix(ins.info["index"], idx)).astype(
            dtypes.dtype(ins.info["dtype"]))
        return _vector_cost(n * 4, 1, cfg)
    if ins.op == "vguard":
        ok = np.ones(n, bool)
        for e, lo, hi in ins.info["checks"]:
            v = _ix(e, idx)
            ok &= (lo <= v) & (v < hi)
        env[ins.dst] = ok
        return _vector_cost(n * 4, 2 * len(ins.info["checks"]), cfg)
    prim = ins.op[1:]
    env[ins.dst] = _vector_op(prim, [env[a] for a in ins.args], ins.info)
    return _vector_cost(n * 4, _COST.get(prim, 1), cfg)


def _vector_op(prim, args, info):
    """One vector instruction on whole tiles (numpy), in the compute dtype of the result."""
    params, dt = info["params"], dtypes.dtype(info["dtype"])
    if prim == "convert":
        new = dtypes.dtype(params["new_dtype"])
        x = np.asarray(args[0])
        if new == np.bool_:
            return x != 0
        return np.asarray(x.astype(new)).astype(dt)  # half results rounded, then widened
    if prim == "select":
        return np.where(args[0], args[1], args[2])
    with np.errstate(all="ignore"):
        out = PRIMITIVES[prim].impl(*[np.asarray(a) for a in args], **params)
    return np.asarray(out).astype(dt, copy=False)


def _ix(e, idx):
    """An index expression evaluated at every point of the tile."""
    if isinstance(e, Idx):
        return idx[e.dim]
    if isinstance(e, Lit):
        return e.value
    if isinstance(e, Affine):
        return e.scale * _ix(e.base, idx) + e.offset
    if isinstance(e, Clamp):
        return np.clip(_ix(e.e, idx), e.lo, e.hi)
    if isinstance(e, Wrap):
        return np.mod(_ix(e.e, idx), e.n)
    raise TypeError(f"npu: unknown index expression {e!r}")


def _widen(x, storage):
    """GM data in a UB tile: half types computed in float32."""
    x = np.asarray(x)
    return x.astype(np.float32) if storage in ("float16", "bfloat16") else x


def _to_storage(x, storage, array_dtype):
    """Round to the storage dtype (half types), then to the GM array's dtype."""
    x = np.asarray(x).astype(dtypes.dtype(storage))
    return x.astype(array_dtype, copy=False)


def _combine(op, acc, part):
    if acc.dtype == np.bool_ and op in ("sum", "prod"):
        return (acc | part) if op == "sum" else (acc & part)
    return {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}[op](
        acc, part).astype(acc.dtype, copy=False)


def _tree_reduce(op, x):
    """Row-wise pairwise reduction of a (rows, cols) tile, as the vector unit folds halves."""
    while x.shape[1] > 1:
        n = x.shape[1]
        h = n // 2
        folded = _combine(op, x[:, :h], x[:, h:2 * h])
        x = np.concatenate([folded, x[:, 2 * h:]], axis=1) if n % 2 else folded
    return x[:, 0] if x.shape[1] else _acc_init(op, x.dtype, x.shape[0])


def _dma_cost(nbytes, cfg) -> int:
    return cfg.dma_latency + math.ceil(nbytes / cfg.gm_bytes_per_cycle)


def _vector_cost(nbytes, cost, cfg) -> int:
    return cfg.vector_latency + math.ceil(nbytes / cfg.vector_bytes_per_cycle) * cost


def estimate(prog: TileProgram, config: NPUConfig | None = None) -> int:
    """The cycles ``Simulator.run`` counts for ``prog``, without running it (data-independent)."""
    cfg = config or CONFIG
    k = prog.kernel
    cycles = cfg.launch
    for r0 in range(0, prog.rows, prog.tile_rows):
        nr = min(prog.rows, r0 + prog.tile_rows) - r0
        for c0 in range(0, prog.cols, prog.tile_cols):
            nc = min(prog.cols, c0 + prog.tile_cols) - c0
            cycles += _tile_estimate(prog, nr * nc, nc, cfg)
        cycles += sum(_dma_cost(nr * _itemsize(_storage(k, b)), cfg) for *_, b in prog.accs)
    return cycles


def _tile_estimate(prog, n, nc, cfg) -> int:
    c = 0
    for ins in prog.body:
        if ins.op in ("copy_in", "copy_out"):
            c += _dma_cost(n * _itemsize(ins.info["storage"]), cfg)
        elif ins.op == "vguard":
            c += _vector_cost(n * 4, 2 * len(ins.info["checks"]), cfg)
        elif ins.op == "viota":
            c += _vector_cost(n * 4, 1, cfg)
        else:
            c += _vector_cost(n * 4, _COST.get(ins.op[1:], 1), cfg)
    for _ in prog.accs:
        c += _vector_cost(n * 4, 1, cfg) + cfg.vector_latency * max(1, int(math.log2(max(nc, 1))))
    return c


# ---------------------------------------------------------------------------------------------
# The cube unit: dot_general as 16x16 float16 tiles with float32 accumulation


def cube_operand(x) -> np.ndarray:
    """What the cube multiplies: float16 (bfloat16 stays bfloat16), widened exactly to float32."""
    x = np.asarray(x)
    if x.dtype != dtypes.bfloat16:
        x = x.astype(np.float16)
    return x.astype(np.float32)


def cube_matmul(a, b, sim: Simulator | None = None, config: NPUConfig | None = None):
    """``(B, M, K) @ (B, K, N)`` in 16x16x16 tiles: float16 inputs, float32 accumulation.

    Products of two float16 numbers are exact in float32, so a tile product differs from the
    exact one only by float32 rounding of its sums; tiles accumulate in order over K.

    >>> a = np.arange(6, dtype=np.float32).reshape(1, 2, 3); b = np.ones((1, 3, 2), np.float32)
    >>> cube_matmul(a, b)[0]
    array([[ 3.,  3.],
           [12., 12.]], dtype=float32)
    """
    cfg = config or CONFIG
    t = cfg.cube_tile
    nb, m, kk = a.shape
    n = b.shape[2]
    mp, kp, np_ = (-(-s // t) * t for s in (m, kk, n))
    ap = np.zeros((nb, mp, kp), np.float32)
    bp = np.zeros((nb, kp, np_), np.float32)
    ap[:, :m, :kk], bp[:, :kk, :n] = cube_operand(a), cube_operand(b)
    acc = np.zeros((nb, mp, np_), np.float32)
    for k0 in range(0, kp, t):  # one cube_mma per (batch, m tile, n tile) at each k tile
        acc += np.matmul(ap[:, :, k0:k0 + t], bp[:, k0:k0 + t, :])
    sim = sim or SIMULATOR
    sim.cycles += cube_cycles(nb, m, kk, n, cfg)
    sim.programs_run += 1
    return acc[:, :m, :n]


def cube_cycles(nb, m, k, n, config: NPUConfig | None = None) -> int:
    """Tile copies in (A once per N tile, B once per M tile), products, result copies out."""
    cfg = config or CONFIG
    t = cfg.cube_tile
    mt, kt, nt = (-(-s // t) for s in (m, k, n))
    tile_in = _dma_cost(t * t * 2, cfg)
    copies = nb * (mt * kt * nt * 2) * tile_in
    mma = nb * mt * nt * kt
    out = nb * mt * nt * _dma_cost(t * t * 4, cfg)
    return cfg.launch + copies + mma + out


def cube_dot_general(lhs, rhs, *, dimension_numbers, preferred_dtype=None):
    """``dot_general`` on the cube: layout moves on the host, the product in tiles."""
    (lc, rc), (lb, rb) = dimension_numbers
    lc, rc, lb, rb = map(tuple, (lc, rc, lb, rb))
    lf = [i for i in range(lhs.ndim) if i not in lc and i not in lb]
    rf = [i for i in range(rhs.ndim) if i not in rc and i not in rb]
    size = lambda x, dims: math.prod(x.shape[i] for i in dims)  # noqa: E731
    a = np.transpose(lhs, lb + tuple(lf) + lc).reshape(size(lhs, lb), size(lhs, lf),
                                                        size(lhs, lc))
    b = np.transpose(rhs, rb + rc + tuple(rf)).reshape(size(rhs, rb), size(rhs, rc),
                                                        size(rhs, rf))
    out = cube_matmul(a, b)
    shape = (tuple(lhs.shape[i] for i in lb) + tuple(lhs.shape[i] for i in lf)
             + tuple(rhs.shape[i] for i in rf))
    return out.reshape(shape).astype(preferred_dtype or lhs.dtype)
