"""Temporal blocking: a chain of stencil kernels becomes one wavefront kernel.

A time-stepping loop unrolled by the tracer (``for _ in range(10): u = step(u)``) fuses into
one kernel per step, each a full pass over memory: every step reads ``u`` and writes the next
``u``. When kernel ``t + 1`` reads kernel ``t``'s output only near the current plane along
axis 0 (loads at ``i0 + o`` such as ``shift``'s, guarded, clamped or wrapped at the edges),
the chain can sweep along axis 0 once: plane ``q`` of level ``t`` is computed as soon
as planes ``q - r .. q + r`` of level ``t - 1`` exist, and each intermediate level lives in a
ring of a few planes that stays in cache. Only the chain's inputs are read from memory and
only the values needed outside it are written.

The schedule is a skewed sweep ``for s``: level ``m`` computes its virtual plane
``q_m = s - D_m``, where the delay ``D_m`` is the largest ``D_p + r`` over the levels ``p`` it
reads (plus one when the rows of a plane run in parallel, so that a step never reads what the
same step writes). Periodic reads along axis 0 reach planes ``-e .. n + e`` that wrap around:
those levels compute the extra virtual planes (at the real index ``q mod n``) instead of
waiting for the end of the sweep. Every point runs the unchanged per-point statements of its
kernel (the loop IR printed by ``kernels.cpu``), so the results are those of the unblocked
chain, bit for bit.

Threads split each plane: ``slabs`` gives each thread a band of axis 1 for the whole sweep,
with the halo rows later levels read recomputed by both neighbours (no barrier; needs reads
along axis 1 at ``i1 + o``, clamped or wrapped); ``rows`` runs the planes of all levels of
one step in one parallel loop over axis 1 (a barrier per step, for any read within a plane).
On rank-3 domains a ``slabs`` thread sweeps its band as sub-bands one after another
(``SCIML_WAVEFRONT_BAND_BYTES``), so a sub-band's ring rows stay in the thread's cache.
``SCIML_WAVEFRONT=off`` disables the pass, ``rows`` or ``slabs`` picks the split. The pass
runs in ``kernels.jit`` as the ``wavefront`` stage, after ``lower``:

>>> import numpy as np
>>> import sciml.numpy as snp
>>> from autodiff.trace import make_graph
>>> from kernels.jit import compile_graph
>>> def steps(u):
...     for _ in range(4):
...         u = u + 0.1 * (snp.shift(u, (1, 0)) + snp.shift(u, (-1, 0)) - 2.0 * u)
...     return u
>>> c = compile_graph(make_graph(steps, np.zeros((512, 1024))), build=False)
>>> c.count_kernels(), [str(g).split(":")[0] for g in c.groups]
(1, ['wavefront 3 over (512, 1024)'])
>>> k = c.kernels[3]
>>> k.split, k.sched.delay, k.sched.halo
('slabs', [0, 1, 2, 3], [0, 0, 0, 0])

Arrays under ``SCIML_WAVEFRONT_MIN_BYTES`` (4 MiB) stay in cache between kernels: the pass
leaves those chains alone.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from autodiff import dtypes
from autodiff.ir import Const, Var

from .cpu import PARALLEL_MIN_POINTS, _i, _interiors, _invariant_lets, _Printer, bands
from .fuse import Cluster
from .loopir import Affine, Buffer, Clamp, Idx, Kernel, Let, Load, Store, Wrap, verify_kernel

# Longest read along axis 0 a link may have: beyond it the rings outgrow the cache quickly.
RADIUS_MAX = 4
# The planes of all rings of one chain must fit in the last-level cache with room to spare
# for the input and output planes; a longer chain is split where it would outgrow this
# (``SCIML_WAVEFRONT_BYTES``, read when a graph compiles).
RING_BYTES_DEFAULT = 24 << 20
# Below this many bytes per array the kernel-per-step chain works from cache and a sweep
# gains nothing (256^2-1024^2 float64 measured level); read when a graph compiles.
MIN_BYTES_DEFAULT = 4 << 20
# A thread of a ``slabs`` sweep over a rank-3 domain runs its band of axis 1 as sub-bands, one
# after another, each swept through every plane: the ring rows and the rows of the planes read
# at every level (metrics) of one sub-band take about this many bytes
# (``SCIML_WAVEFRONT_BAND_BYTES``, read when a graph compiles), so they stay in the thread's
# cache instead of competing for the shared one. Sub-bands recompute their halo rows, so a
# sub-band keeps at least SUB_BAND_MIN_ROWS rows and four times the deepest halo.
BAND_BYTES_DEFAULT = 4 << 20
SUB_BAND_MIN_ROWS = 8
# Half types round through the storage dtype between kernels; rings would keep float32.
_NO_RING = {"float16", "bfloat16"}
MODES = ("rows", "slabs")


def mode() -> str | None:
    """The parallel split the pass uses (``SCIML_WAVEFRONT``), or None when it is off."""
    m = os.environ.get("SCIML_WAVEFRONT", "auto").lower()
    if m in ("0", "off", "no", "false"):
        return None
    return m if m in MODES else "auto"


def block(groups: list, kernels: dict, graph, backend: str = "cpu") -> tuple[list, dict]:
    """``groups`` and ``kernels`` with each chain of stencil kernels replaced by one wavefront
    kernel (an ordinary kernel step to the plan); everything else is left as it is."""
    split = mode()
    if backend != "cpu" or split is None:
        return groups, kernels
    chains = [c for c in find_chains(graph, groups, kernels) if len(c.members) > 1]
    if not chains:
        return groups, kernels
    groups, kernels = list(groups), dict(kernels)
    for chain in chains:
        wf, wk = build(chain, kernels, split)
        last = chain.members[-1]
        gone = {id(g) for g in chain.members[:-1]}
        groups = [wf if g is last else g for g in groups if id(g) not in gone]
        for g in chain.members:
            kernels.pop(g.index)
        kernels[wf.index] = wk
        if "verify" in os.environ.get("SCIML_DEBUG", "").split(","):
            verify_wavefront(wk)
    return groups, kernels


# ---------------------------------------------------------------------------------------------
# Finding chains


@dataclass(eq=False)
class Chain:
    """Clusters over one domain, each reading values of earlier members near its own plane."""

    domain: tuple
    members: list = field(default_factory=list)
    made: dict = field(default_factory=dict)  # value id -> (member position, output number)
    external: set = field(default_factory=set)  # value ids needed outside the chain


def find_chains(graph, groups: list, kernels: dict) -> list:
    """Maximal chains, in program order. A cluster joins the chain whose values it reads when
    every such read is local along axis 0 (``axis0_read``); a group that reads a chain's
    values without joining it ends the chain, which then runs before that group."""
    opened: list = []
    done: list = []
    for g in groups:
        reads = {a.id for a in _inputs(g) if isinstance(a, Var)}
        touched = [c for c in opened if reads & c.made.keys()]
        k = kernels.get(g.index) if isinstance(g, Cluster) else None
        ok = k is not None and _eligible(k)
        joined = next((c for c in reversed(touched) if ok and _joinable(c, g, k, kernels)),
                      None)
        for c in touched:
            if c is not joined:
                opened.remove(c)
                done.append(c)
        if joined is not None:
            _add(joined, g)
        elif ok:
            opened.append(_add(Chain(tuple(g.domain)), g))
    chains = sorted(done + opened, key=lambda c: c.members[0].index)
    _mark_external(graph, groups, chains)
    return chains


def _mark_external(graph, groups: list, chains: list):
    """A chain value is external when the function returns it or a non-member reads it."""
    readers: dict = {}
    for g in groups:
        for a in _inputs(g):
            if isinstance(a, Var):
                readers.setdefault(a.id, set()).add(id(g))
    returned = {o.id for o in graph.outputs if isinstance(o, Var)}
    for c in chains:
        members = {id(g) for g in c.members}
        c.external = {v for v in c.made if v in returned or readers.get(v, set()) - members}


def _inputs(g) -> list:
    return g.inputs if isinstance(g, Cluster) else list(g.node.inputs)


def _add(chain: Chain, g) -> Chain:
    for j, v in enumerate(g.outputs):
        chain.made[v.id] = (len(chain.members), j)
    chain.members.append(g)
    return chain


def _eligible(k) -> bool:
    """A kernel that stores every output at the current point of a domain of rank >= 1,
    with arrays of at least ``SCIML_WAVEFRONT_MIN_BYTES`` (default 4 MiB)."""
    if not isinstance(k, Kernel) or k.reductions or not k.domain or k.domain[0] < 2:
        return False
    least = int(os.environ.get("SCIML_WAVEFRONT_MIN_BYTES", MIN_BYTES_DEFAULT))
    if math.prod(k.domain) * max(dtypes.dtype(b.dtype).itemsize for b in k.outputs) < least:
        return False
    here = tuple(Idx(d) for d in range(len(k.domain)))
    sums = _axis0_sums(k)
    if sums is None:
        return False
    return all(s.index == (here[1:] if s.buf in sums else here)
               for s in k.body if isinstance(s, Store))


def _axis0_sums(k) -> set | None:
    """The outputs a kernel running axis 0 in order accumulates over axis 0 (each point reads
    back its column's sum so far): a level may hold them when it visits every plane once, in
    order. None for other in-order work (cumulative sums, solves), which no sweep holds."""
    if not k.sequential:
        return set()
    if k.scratch or any(not isinstance(s, (Let, Store)) for s in k.body):
        return None
    outs = {b.name: b for b in k.outputs}
    column = tuple(Idx(d) for d in range(1, len(k.domain)))
    back = [s.expr for s in k.body
            if isinstance(s, Let) and isinstance(s.expr, Load) and s.expr.buf in outs]
    if any(e.index != column or tuple(outs[e.buf].shape) != tuple(k.domain[1:]) for e in back):
        return None
    return {e.buf for e in back}


def _joinable(chain: Chain, g, k, kernels: dict) -> bool:
    if tuple(g.domain) != chain.domain:
        return False
    for v, buf in zip(g.inputs, k.inputs):
        if isinstance(v, Var) and v.id in chain.made:
            if buf.dtype in _NO_RING or tuple(buf.shape) != chain.domain:
                return False
            if any(axis0_read(ix, chain.domain[0]) is None for ix in _load_indices(k, buf.name)):
                return False
    trial = _add(Chain(chain.domain, list(chain.members), dict(chain.made)), g)
    sched = schedule(trial, kernels, 1)
    budget = int(os.environ.get("SCIML_WAVEFRONT_BYTES", RING_BYTES_DEFAULT))
    return sched is not None and sched.ring_bytes <= budget


def _load_indices(k, buf: str) -> list:
    return [s.expr.index for s in k.body if isinstance(s, Let) and isinstance(s.expr, Load)
            and s.expr.buf == buf]


def axis0_read(index: tuple, n0: int):
    """``(kind, offset)`` when ``index`` reads plane ``i0 + offset`` of a domain-shaped buffer
    (kind ``plain``, or ``clamp``/``wrap`` at the edges) and no other component uses ``i0``;
    else None."""
    if any(_uses_dim(x, 0) for x in index[1:]):
        return None
    e = index[0]
    kind = "plain"
    if isinstance(e, Clamp) and (e.lo, e.hi) == (0, n0 - 1):
        kind, e = "clamp", e.e
    elif isinstance(e, Wrap) and e.n == n0:
        kind, e = "wrap", e.e
    o = _offset(e, 0)
    if o is None or abs(o) > RADIUS_MAX:
        return None
    return kind, o


def _offset(e, dim: int):
    """``o`` when ``e`` is ``i_dim + o``, else None."""
    if isinstance(e, Idx) and e.dim == dim:
        return 0
    if isinstance(e, Affine) and e.scale == 1 and isinstance(e.base, Idx) and e.base.dim == dim:
        return e.offset
    return None


def _uses_dim(x, dim: int) -> bool:
    if isinstance(x, Idx):
        return x.dim == dim
    return any(_uses_dim(getattr(x, f), dim) for f in ("base", "e") if hasattr(x, f))


# ---------------------------------------------------------------------------------------------
# The schedule


@dataclass
class Link:
    """Member ``consumer`` reads value ``value`` of member ``producer`` at these plane offsets."""

    producer: int
    consumer: int
    value: int
    kinds: set
    lo: int  # smallest offset along axis 0
    hi: int  # largest offset along axis 0
    wrap: tuple | None  # (lo, hi) of the unclamped reads (plain or wrapped), None if none
    rows: int | None  # largest |offset| along axis 1, None when not of the form i1 + o
    wraps: bool  # some read along axis 1 wraps around (periodic)


@dataclass
class Schedule:
    delay: list  # per member: plane q = s - delay
    extent: list  # per member: virtual planes -e .. n + e - 1
    halo: list | None  # per member: rows beyond a thread's band (slabs), None if impossible
    ring: dict  # value id -> planes kept
    steps: tuple  # range of s
    ring_bytes: int
    arcs: bool = False  # bands wrap around axis 1 (periodic reads along it)


def links(chain: Chain, kernels: dict) -> list:
    """Every read of a chain value by a later member, with its offsets."""
    out = []
    n0 = chain.domain[0]
    for c, g in enumerate(chain.members):
        k = kernels[g.index]
        for v, buf in zip(g.inputs, k.inputs):
            if not (isinstance(v, Var) and v.id in chain.made):
                continue
            idx = _load_indices(k, buf.name)
            if not idx:
                continue
            reads = [axis0_read(ix, n0) for ix in idx]
            rows = [_row_offset(ix) for ix in idx]
            free = [o for kind, o in reads if kind != "clamp"]
            out.append(Link(chain.made[v.id][0], c, v.id, {r[0] for r in reads},
                            min(r[1] for r in reads), max(r[1] for r in reads),
                            (min(free), max(free)) if free else None,
                            None if None in rows else max(r[0] for r in rows),
                            None not in rows and any(r[1] for r in rows)))
    return out


def _row_offset(index: tuple):
    """``(|o|, wraps)`` when axis 1 is read at ``i1 + o`` (clamped or wrapped at the edges)
    and no later component uses ``i1``; None otherwise (a thread's band of rows could not
    compute it)."""
    if len(index) < 2:
        return 0, False
    if any(_uses_dim(x, 1) for x in index[2:]):
        return None
    e = index[1]
    wraps = isinstance(e, Wrap)
    if isinstance(e, (Clamp, Wrap)):
        e = e.e
    o = _offset(e, 1)
    return None if o is None else (abs(o), wraps)


def schedule(chain: Chain, kernels: dict, skew: int):
    """Delays, extents, halos and ring sizes of a chain, or None when no sweep computes it:
    a level that reads with clamped edges must run on the real planes only."""
    ls = links(chain, kernels)
    nm, n0 = len(chain.members), chain.domain[0]
    ext = [0] * nm
    for c in range(nm - 1, -1, -1):
        for ln in (x for x in ls if x.consumer == c):
            if ln.wrap is not None:  # virtual planes q + o, beyond the edges near them
                ext[ln.producer] = max(ext[ln.producer], ext[c] - ln.wrap[0],
                                       ext[c] + ln.wrap[1])
    if any(ext[ln.consumer] and "clamp" in ln.kinds for ln in ls):
        return None
    halo = _halos(ls, nm)
    for m, g in enumerate(chain.members):  # column sums: every plane once, by one thread
        if kernels[g.index].sequential and (ext[m] or (halo is not None and halo[m])):
            return None
    delay = [0] * nm
    for ln in sorted(ls, key=lambda x: x.consumer):
        delay[ln.consumer] = max(delay[ln.consumer], delay[ln.producer] + max(ln.hi, 0) + skew)
    ring: dict = {}
    for ln in ls:
        back = delay[ln.consumer] - delay[ln.producer] + max(-ln.lo, 0) + 1
        ring[ln.value] = max(ring.get(ln.value, 0), back)
    plane = math.prod(chain.domain[1:])
    itemsize = {v: _itemsize(chain, v) for v in ring}
    steps = (min(d - e for d, e in zip(delay, ext)), max(d + n0 + e for d, e in zip(delay, ext)))
    return Schedule(delay, ext, halo, ring, steps,
                    sum(s * plane * itemsize[v] for v, s in ring.items()),
                    any(ln.wraps for ln in ls))


def _halos(ls: list, nm: int):
    if any(ln.rows is None for ln in ls):
        return None
    halo = [0] * nm
    for c in range(nm - 1, -1, -1):
        for ln in (x for x in ls if x.consumer == c):
            halo[ln.producer] = max(halo[ln.producer], halo[c] + ln.rows)
    return halo


def _itemsize(chain: Chain, vid: int) -> int:
    m, j = chain.made[vid]
    return chain.members[m].outputs[j].aval.dtype.itemsize


# ---------------------------------------------------------------------------------------------
# The wavefront kernel


@dataclass(frozen=True)
class Slot:
    """An index component printed as given: a ring slot or a thread's band (``kernels.cpu``
    knows only loop indices; these are scalars of the sweep)."""

    text: str

    def __str__(self):
        return self.text


@dataclass(eq=False)
class Wavefront(Cluster):
    """The cluster a chain becomes: its members' nodes, the chain's inputs and external outputs."""

    members: list = field(default_factory=list)

    def __str__(self):
        parts = " | ".join(" ".join(n.prim.name for n in g.nodes) for g in self.members)
        return f"wavefront {self.index} over {self.domain}: {len(self.members)} levels: {parts}"


@dataclass
class WavefrontKernel:
    """One sweep computing every level of a chain; ``inputs``/``outputs`` as a ``Kernel``'s."""

    name: str
    domain: tuple
    inputs: list
    outputs: list
    levels: list  # one Kernel per member, reading and writing rings and the buffers above
    sched: Schedule
    rings: list  # Buffers: (threads, planes, *domain[1:])
    split: str  # "rows", "slabs" or "serial"
    threads: int
    subbands: int = 1  # per thread, one after another (slabs only)

    def __str__(self):
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        sub = f" in {self.subbands} sub-bands" if self.subbands > 1 else ""
        lines = [f"wavefront {self.name}({ins}) -> ({outs}) over {self.domain}, "
                 f"{self.split} x{self.threads}{sub}, steps {self.sched.steps[0]}.."
                 f"{self.sched.steps[1] - 1}:"]
        lines += [f"  ring {r}" for r in self.rings]
        for m, lv in enumerate(self.levels):
            lines.append(f"  level {m}: q = s - {self.sched.delay[m]}, planes "
                         f"{-self.sched.extent[m]}..{self.domain[0] + self.sched.extent[m] - 1}")
            lines += [f"    {s}" for s in lv.body]
        return "\n".join(lines)

    def print_numba(self, table, name: str | None = None) -> str:
        """The numba source of the sweep (``kernels.cpu.print_kernel`` calls this)."""
        return _print(self, table, name or self.name)


def build(chain: Chain, kernels: dict, split: str) -> tuple:
    """The ``Wavefront`` cluster and ``WavefrontKernel`` computing ``chain``."""
    split, threads = _split(chain, kernels, split)
    sched = schedule(chain, kernels, 1 if split == "rows" else 0)
    ins: dict = {}  # id of an outside value -> (its input buffer, the value)
    outs: list = []  # (value, buffer) of external outputs
    rings = {vid: Buffer(f"ring{r}", (threads, s) + chain.domain[1:],
                         kernels[chain.members[chain.made[vid][0]].index]
                         .outputs[chain.made[vid][1]].dtype)
             for r, (vid, s) in enumerate(sched.ring.items())}
    levels = [_level(chain, m, kernels[g.index], sched, ins, outs, rings, split)
              for m, g in enumerate(chain.members)]
    last = chain.members[-1]
    # The rings are arguments the plan owns (constants to it): allocated in the kernel, their
    # pages would be faulted in again on every call.
    work = [Const(np.empty(b.shape, dtypes.dtype(b.dtype))) for b in rings.values()]
    wf = Wavefront(last.index, chain.domain, [n for g in chain.members for n in g.nodes],
                   inputs=[v for _, v in ins.values()] + work, outputs=[v for v, _ in outs],
                   members=list(chain.members))
    wk = WavefrontKernel(f"w{last.index}", chain.domain,
                         [b for b, _ in ins.values()] + list(rings.values()),
                         [b for _, b in outs], levels, sched, list(rings.values()), split,
                         threads)
    if split == "slabs":
        wk.subbands = _subbands(wk)
    return wf, wk


def _subbands(wk: WavefrontKernel) -> int:
    """Sub-bands per thread of a rank-3 ``slabs`` sweep (BAND_BYTES_DEFAULT)."""
    if len(wk.domain) < 3:
        return 1
    row = math.prod(wk.domain[2:])  # points in one row of axis 1
    # a ring is (threads, planes, *domain[1:]): a row of axis 1 takes `planes` rows of it
    per_row = sum(b.shape[1] * row * dtypes.dtype(b.dtype).itemsize for b in wk.rings)
    per_row += sum(row * dtypes.dtype(b.dtype).itemsize for b in wk.inputs
                   if tuple(b.shape) == tuple(wk.domain[1:]))
    budget = int(os.environ.get("SCIML_WAVEFRONT_BAND_BYTES", BAND_BYTES_DEFAULT))
    rows = max(budget // max(per_row, 1), SUB_BAND_MIN_ROWS, 4 * max(wk.sched.halo or [0]))
    return max(1, wk.domain[1] // wk.threads // rows)


def _split(chain: Chain, kernels: dict, want: str) -> tuple[str, int]:
    """How threads share a plane: ``rows`` or ``slabs``; ``serial`` for small or 1-D domains."""
    if math.prod(chain.domain) < PARALLEL_MIN_POINTS or len(chain.domain) < 2:
        return "serial", 1
    slabs_ok = schedule(chain, kernels, 0).halo is not None
    split = "slabs" if want in ("slabs", "auto") and slabs_ok else "rows"
    import numba

    return split, (numba.config.NUMBA_NUM_THREADS if split == "slabs" else 1)


def _level(chain: Chain, m: int, k: Kernel, sched: Schedule, ins, outs, rings, split) -> Kernel:
    """Member ``m``'s kernel reading chain values from rings and writing rings and outputs.

    The statements stay those of the member; only loads of chain values (now ring slots of
    the planes ``q + o``) and stores (into the level's ring and, for values needed outside,
    the output buffer at the real plane ``i0``) change."""
    g = chain.members[m]
    thread = Slot("p" if split == "slabs" else "0")
    loads = _load_targets(chain, g, k, ins)
    stores = _store_targets(chain, g, k, sched.ring, outs, rings, thread)
    body = []
    for s in k.body:
        if isinstance(s, Store):
            body += [Store(buf, s.index if pre is None else pre + s.index[1:], s.value)
                     for buf, pre in stores[s.buf]]
        elif isinstance(s.expr, Load) and s.expr.buf in stores:  # a column sum so far
            (buf,) = [b for b, pre in stores[s.expr.buf] if pre is None]
            body.append(Let(s.name, Load(buf, s.expr.index)))
        elif isinstance(s.expr, Load):
            body.append(Let(s.name, _ring_load(s.expr, loads[s.expr.buf], chain.domain[0],
                                               sched.ring, rings, thread)))
        else:
            body.append(s)
    used = {s.expr.buf for s in body if isinstance(s, Let) and isinstance(s.expr, Load)}
    written = {s.buf for s in body if isinstance(s, Store)}
    all_in = [b for b, _ in ins.values()] + list(rings.values())
    all_out = [b for _, b in outs] + list(rings.values())
    return Kernel(f"level{m}", chain.domain, [b for b in all_in if b.name in used],
                  [b for b in all_out if b.name in written], body, sequential=k.sequential)


def _load_targets(chain: Chain, g, k: Kernel, ins: dict) -> dict:
    """Member buffer name -> ("ring", value id), or ("in", the sweep's input buffer name);
    ``ins`` collects the sweep's inputs, one per outside value."""
    out = {}
    for v, b in zip(g.inputs, k.inputs):
        if isinstance(v, Var) and v.id in chain.made:
            out[b.name] = ("ring", v.id)
            continue
        key = v.id if isinstance(v, Var) else ("const", id(v))
        if key not in ins:
            ins[key] = (Buffer(f"in{len(ins)}", b.shape, b.dtype), v)
        out[b.name] = ("in", ins[key][0].name)
    return out


def _store_targets(chain: Chain, g, k: Kernel, ring: dict, outs: list, rings: dict,
                   thread) -> dict:
    """Member output name -> [(buffer, index prefix or None)]: its ring and, when needed
    outside, a new output of the sweep (``outs``)."""
    out = {}
    for v, b in zip(g.outputs, k.outputs):
        targets = []
        if v.id in chain.external:
            outs.append((v, Buffer(f"out{len(outs)}", b.shape, b.dtype)))
            targets.append((outs[-1][1].name, None))
        if v.id in ring:
            targets.append((rings[v.id].name, (thread, Slot(f"(q % {ring[v.id]})"))))
        out[b.name] = targets
    return out


def _ring_load(e: Load, target: tuple, n0: int, ring: dict, rings: dict, thread) -> Load:
    kind, what = target
    if kind == "in":
        return Load(what, e.index)
    rk, o = axis0_read(e.index, n0)
    # clamped reads name real planes (levels reading so run on real planes only, q == i0)
    plane = f"min(max(q + {o}, 0), {n0 - 1})" if rk == "clamp" else f"q + {o}"
    return Load(rings[what].name, (thread, Slot(f"(({plane}) % {ring[what]})")) + e.index[1:])


def verify_wavefront(wk: WavefrontKernel) -> WavefrontKernel:
    """Each level is a well-formed kernel; each ring is written by one level, before it is
    read by a later one."""
    from autodiff.errors import VerifyError

    writer: dict = {}
    for m, lv in enumerate(wk.levels):
        verify_kernel(lv)
        for b in lv.inputs:
            if b.name.startswith("ring") and writer.get(b.name, m) >= m:
                raise VerifyError(f"wavefront {wk.name}: level {m} reads {b.name} before a "
                                  "level writes it")
        for b in lv.outputs:
            if b.name.startswith("ring"):
                if b.name in writer:
                    raise VerifyError(f"wavefront {wk.name}: {b.name} written twice")
                writer[b.name] = m
    return wk


# ---------------------------------------------------------------------------------------------
# Printing (numba)


class _LevelPrinter(_Printer):
    """The cpu printer, with ``Slot`` index components."""

    def ix(self, x) -> str:
        if isinstance(x, Slot):
            return x.text
        return super().ix(x)


def _print(wk: WavefrontKernel, table, name: str) -> str:
    """A module: one function per distinct level (a band of rows of one plane) and the sweep
    ``name`` calling them. Separate functions keep numba's compile time near that of the
    unblocked kernels (one parallel loop around every level's body compiles for minutes), and
    levels that print alike (the steps of a time loop) share one function."""
    printers = [_LevelPrinter(_local(lv), table) for lv in wk.levels]
    sources = [_level_function(wk, m, p) for m, p in enumerate(printers)]
    texts: dict = {}  # function source -> its name
    for text in sources:
        texts.setdefault(text, f"level{len(texts)}")
    funcs = [t.replace("def level(", f"def {n}(", 1) for t, n in texts.items()]
    if wk.split == "slabs" and wk.sched.arcs:
        funcs.append(ARCS)
    parallel = wk.split != "serial"
    args = ", ".join(b.name for b in wk.inputs + wk.outputs)
    lines = [f'@numba.njit(parallel={parallel}, error_model="numpy", nogil=True, cache=True)',
             f"def {name}({args}):"]
    calls = [texts[text] for text in sources]
    # row buffers of split loops (cpu._Printer.split_row): one set per concurrent band,
    # shared by the levels of a band, which run one after another
    temps: dict = {}
    for p in printers:
        for d, c in p.temps.items():
            temps[d] = max(temps.get(d, 0), c)
    bands = 1 if wk.split == "serial" else (_threads() if wk.split == "rows" else wk.threads)
    lines += [_i(1) + f"tmp_{d}_{j} = np.empty(({bands}, {wk.domain[-1]}), np.{d})"
              for d, c in sorted(temps.items()) for j in range(c)]
    band = "0" if wk.split == "serial" else "c"
    calls = [(fn, [f"tmp_{d}_{j}[{band}]" for d, j in p.temp_slots()])
             for fn, p in zip(calls, printers)]
    lines += _SWEEPS[wk.split](wk, calls)
    imports = ["import numba", "import numpy as np", "from kernels.cpu import NoAlias"]
    if any(p.uses_math for p in printers):
        imports.insert(0, "import math")
    vm = set().union(*(p.vmath for p in printers))
    half = set().union(*(p.half for p in printers))
    if vm:
        imports.append(f"from kernels.vmath import {', '.join(sorted(vm))}")
    if half:
        imports.append(f"from kernels.halfconv import {', '.join(sorted(half))}")
    return "\n".join(imports) + "\n\n\n" + "\n\n\n".join(funcs + ["\n".join(lines) + "\n"])


def _local(lv: Kernel) -> Kernel:
    """``lv`` with its buffers named by position (``x0, x1, ...``): levels that differ only
    in which rings they use print alike."""
    names = {b.name: f"x{j}" for j, b in enumerate(lv.inputs + lv.outputs)}
    body = []
    for s in lv.body:
        if isinstance(s, Store):
            s = Store(names[s.buf], s.index, s.value)
        elif isinstance(s.expr, Load):
            s = Let(s.name, Load(names[s.expr.buf], s.expr.index))
        body.append(s)
    return Kernel(lv.name, lv.domain, [Buffer(names[b.name], b.shape, b.dtype) for b in lv.inputs],
                  [Buffer(names[b.name], b.shape, b.dtype) for b in lv.outputs], body)


def _call(wk: WavefrontKernel, m: int, call: tuple, rows: tuple, thread: str) -> str:
    """``call``: the level's function and its row-buffer arguments."""
    fn, temps = call
    lv = wk.levels[m]
    args = [f"s - {wk.sched.delay[m]}", *rows, thread] + [b.name for b in lv.inputs + lv.outputs]
    return f"{fn}({', '.join(args + temps)})"


def _active(wk: WavefrontKernel, m: int) -> str:
    e, d = wk.sched.extent[m], wk.sched.delay[m]
    return f"if {d - e} <= s < {d + wk.domain[0] + e}:"


def _sweep_serial(wk: WavefrontKernel, fns: list) -> list:
    lo, hi = wk.sched.steps
    n1 = str(wk.domain[1]) if len(wk.domain) > 1 else "1"
    lines = [_i(1) + f"for s in range({lo}, {hi}):"]
    for m in range(len(wk.levels)):
        lines += [_i(2) + _active(wk, m), _i(3) + _call(wk, m, fns[m], ("0", n1), "0")]
    return lines


def _sweep_rows(wk: WavefrontKernel, fns: list) -> list:
    """Every step, each thread runs its band of rows of every active level; the delays keep a
    step from reading a plane the same step writes."""
    lo, hi = wk.sched.steps
    n1, P = wk.domain[1], _threads()
    lines = [_i(1) + f"for s in range({lo}, {hi}):"] + bands(2, n1, P)
    for m in range(len(wk.levels)):
        lines += [_i(3) + _active(wk, m), _i(4) + _call(wk, m, fns[m], ("a", "b"), "0")]
    return lines


def _sweep_slabs(wk: WavefrontKernel, fns: list) -> list:
    """Each thread sweeps its own band of axis 1 with private rings; a level's halo rows are
    those later levels of the band read. With periodic reads along axis 1 a band with its
    halo is an arc modulo ``n1`` (``arcs``): every row it reads, wrapped or clamped, lies on
    the producer's arc, at its real index in the thread's full-size ring plane."""
    lo, hi = wk.sched.steps
    n1, P, S = wk.domain[1], wk.threads, wk.subbands
    lines = bands(1, n1, P)
    ind = 2
    if S > 1:  # the thread's sub-bands, one after another, with the thread's rings
        lines[-2:] = [_i(2) + f"for u in range({S}):",  # in place of the band's a, b
                      _i(3) + f"a = ((c * {S} + u) * {n1}) // {P * S}",
                      _i(3) + f"b = ((c * {S} + u + 1) * {n1}) // {P * S}"]
        ind = 3
    lines.append(_i(ind) + f"for s in range({lo}, {hi}):")
    for m in range(len(wk.levels)):
        h = wk.sched.halo[m]
        lines.append(_i(ind + 1) + _active(wk, m))
        if wk.sched.arcs and h:
            lines += [_i(ind + 2) + f"for r0, r1 in arcs(a - {h}, b + {h}, {n1}):",
                      _i(ind + 3) + _call(wk, m, fns[m], ("r0", "r1"), "c")]
            continue
        rows = (f"max(a - {h}, 0)", f"min(b + {h}, {n1})") if h else ("a", "b")
        lines.append(_i(ind + 2) + _call(wk, m, fns[m], rows, "c"))
    return lines


ARCS = '''@numba.njit(error_model="numpy", nogil=True, cache=True)
def arcs(lo, hi, n):
    if hi - lo >= n:
        return ((0, n), (0, 0), (0, 0))
    before = (lo + n, n) if lo < 0 else (0, 0)
    after = (0, hi - n) if hi > n else (0, 0)
    return ((max(lo, 0), min(hi, n)), before, after)
'''


_SWEEPS = {"rows": _sweep_rows, "serial": _sweep_serial, "slabs": _sweep_slabs}


def _threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def _level_function(wk: WavefrontKernel, m: int, p: _LevelPrinter) -> str:
    """Level ``m`` on its plane ``q``, rows ``r0..r1`` of axis 1, ring slots of thread ``p``;
    the guard-free body where the plane and the row are interior."""
    lv = p.k
    p.invariant = _invariant_lets(lv.body)
    p.thread_temps = False  # the sweep passes each level call its thread's row buffers
    args = ", ".join(["q", "r0", "r1", "p"] + [b.name for b in lv.inputs + lv.outputs])
    n0, e = wk.domain[0], wk.sched.extent[m]
    # noalias as for fused kernels (kernels.cpu.NoAlias): a level writes its own ring or an
    # output and reads only inputs and other levels' rings
    lines = ['@numba.njit(error_model="numpy", nogil=True, cache=True, pipeline_class=NoAlias)',
             f"def level({args}):"]
    lines += [_i(1) + s for s in p.statements(invariant=True)]
    lines.append(_i(1) + ("i0 = q" if not e else f"i0 = q % {n0}"))
    ind, nd = 1, len(wk.domain)
    if nd > 2:
        lines.append(_i(ind) + "for i1 in range(r0, r1):")
        ind += 1
    for d in range(2, nd - 1):
        lines.append(_i(ind) + f"for i{d} in range({wk.domain[d]}):")
        ind += 1
    ranges = _interiors(lv)
    last = nd - 1
    if last == 0:  # one point per plane
        def inner(i, dims):
            return p.point(i, False, frozenset(dims))
        outer = {0: ranges[0]} if 0 in ranges else {}
    elif last == 1:  # the band r0..r1 is the innermost loop
        def inner(i, dims):
            return _band(p, wk.domain[1], ranges.get(1), i, dims)
        outer = {0: ranges[0]} if 0 in ranges else {}
    else:
        def inner(i, dims):
            return p.innermost(last, ranges.get(last), "range", i, False, dims)
        outer = {d: ranges[d] for d in range(last) if d in ranges}
    if not outer:
        lines += inner(ind, set())
    else:
        cond = " and ".join(f"{a} <= i{d} < {b}" for d, (a, b) in outer.items())
        lines.append(_i(ind) + f"if {cond}:")
        lines += inner(ind + 1, set(outer))
        lines.append(_i(ind) + "else:")
        lines += inner(ind + 1, set())
    if p.temps:
        lines[1] = f"def level({', '.join([args] + p.temp_names())}):"
    return "\n".join(lines) + "\n"


def _band(p: _LevelPrinter, n: int, peel, ind: int, interior: set) -> list:
    """The innermost loop over axis 1 within the band ``r0..r1``, split like the cpu
    printer's into border, guard-free interior and border. The loop counts from 0: over
    ``range(max(r0, a), ...)`` LLVM keeps numba's negative-index checks and does not
    vectorise (4x slower)."""
    segments = ((0, n, False),) if peel is None else (
        (0, peel[0], False), (peel[0], peel[1], True), (peel[1], n, False))
    lines = []
    for lo, hi, inside in segments:
        if hi > lo:
            lines += [_i(ind) + f"b1 = max(r0, {lo})",
                      _i(ind) + f"for k1 in range(max(min(r1, {hi}) - b1, 0)):",
                      _i(ind + 1) + "i1 = b1 + k1"]
            lines += p.point(ind + 1, False, frozenset(interior | ({1} if inside else set())))
    return lines
