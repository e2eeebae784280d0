"""``Schedule``: a graph prepared for many evaluations by the interpreter.

``eval_graph_flat`` walks a graph once: a dict lookup per operand, a fresh array per result.
A training step replays the same graph thousands of times, and there the fresh arrays cost more
than the arithmetic: a new array of a few MB comes back from the allocator as new pages (page
faults), an elementwise pass over it runs from main memory, not from cache. A ``Schedule`` is
built once per graph and then

- walks a flat list of steps over slots (constants preloaded, values dropped after their last
  use, so the working set stays small);
- writes the results of elementwise steps (numpy ufuncs, ``select``) and of plain matrix
  products into buffers it owns, allocated on the first call and reused by every later call,
  and, within a call, by any later value of the same shape and dtype once the first is dead;
  an operand that dies at a step lends its buffer to the result (in place). Results returned to
  the caller (or aliased by one) are fresh arrays, as before;
- with ``donate`` (indices of arguments the caller gives up), writes results it returns into
  those arguments' arrays once nothing reads them any more: a training step then updates its
  state in place, as PyTorch's optimizers do, instead of allocating it anew every step;
- runs named primitives with other implementations when given (``impls``, e.g. the compiled
  ``kernels.library.IMPLS``), and with a ``fuser`` (``kernels.library.FUSER``) runs each
  cluster of elementwise nodes over one shape as one compiled loop, as soon as its operands
  exist (an optimizer's update of a parameter right after the matmul that made its gradient).

The first call checks every result against its abstract value, as ``eval_graph_flat`` does;
later calls convert only where the first needed it. Results equal ``eval_graph_flat``'s
bit for bit as long as the given implementations do (those of ``kernels.library`` do).

>>> import numpy as np
>>> from autodiff import lax
>>> from autodiff.trace import make_graph
>>> g = make_graph(lambda x: lax.unary("tanh", x * 2.0) + x, np.zeros(3))
>>> run = Schedule(g)
>>> run([np.array([0.0, 0.5, 1.0])])[0].round(3)
array([0.   , 1.262, 1.964])
>>> run.pool  # the buffer of x * 2.0, reused in place by tanh (the sum is returned: fresh)
[((3,), dtype('float64'), None)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ArityError, SciMLError
from .interpret import _as
from .ir import Const, Graph, Var
from .ops.elementwise import BINARY, UNARY, select_impl
from .ops.linalg import dot_general, dot_operands

# Elementwise primitives whose numpy implementation is a ufunc (so it takes ``out=``).
UFUNCS = {name: fn for name, (fn, _, _) in {**UNARY, **BINARY}.items()
          if isinstance(fn, np.ufunc)}
_NATIVE = "biufc"  # dtype kinds numpy's own loops cover (not bfloat16, kind "V")


def _ufunc_ok(node) -> bool:
    ins = [a.aval.dtype for a in node.inputs]
    out = node.outputs[0].aval.dtype
    return len(set(ins)) == 1 and ins[0].kind in _NATIVE and out in (ins[0], np.dtype(bool))


def _select_ok(node) -> bool:
    _, a, b = (x.aval.dtype for x in node.inputs)
    return a == b == node.outputs[0].aval.dtype


def _dot_ok(node) -> bool:
    # The products linalg._dot_fast runs by BLAS without copies (dense layers, the matmuls of a
    # convolution on its im2col patches), in float32/float64: np.dot/np.matmul with out=.
    lhs, rhs = (a.aval for a in node.inputs)
    (lc, rc), (lb, rb) = node.params["dimension_numbers"]
    lc, rc, k = tuple(lc), tuple(rc), len(lc)
    plain = k == 1 and lhs.ndim <= 2 and rhs.ndim <= 2
    rows = k == 1 and lhs.ndim > 2 and rhs.ndim == 2 and lc == (lhs.ndim - 1,)
    lead = lc == rc == tuple(range(k)) and 0 < k < min(lhs.ndim, rhs.ndim)
    return (not lb and not rb and (plain or rows or lead)
            and lhs.dtype == rhs.dtype == node.outputs[0].aval.dtype
            and lhs.dtype in (np.dtype("float32"), np.dtype("float64")))


def _dot_into(lhs, rhs, *, out, dimension_numbers, preferred_dtype=None):
    (lc, rc), _ = dimension_numbers
    a, b, op = dot_operands(lhs, rhs, tuple(lc), tuple(rc))
    if op is None:  # an operand is not contiguous: the reference, then a copy
        return _copy_into(out, dot_general.impl(lhs, rhs, dimension_numbers=dimension_numbers))
    op(a, b, out=out)
    return out


def _convert_ok(node) -> bool:
    return node.inputs[0].aval.dtype.kind in "biuf" and node.outputs[0].aval.dtype.kind in "biuf"


def _copy_into(out, value):
    np.copyto(out, value, casting="unsafe")
    return out


def _bid_into(x, *, out, shape, broadcast_dimensions):
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    return _copy_into(out, np.broadcast_to(x.reshape(expanded), shape))


def _always(node) -> bool:
    return True


def _one_output(node) -> bool:
    return len(node.outputs) == 1 and not node.prim.multiple_results


# name -> (can this node write into a buffer, fn(*inputs, out=buffer, **params)).
INTO = {
    **{name: (_ufunc_ok, lambda *xs, out, _f=fn: _f(*xs, out=out)) for name, fn in UFUNCS.items()},
    "select": (_select_ok, lambda p, a, b, *, out: select_impl(p, a, b, out=out)),
    "dot_general": (_dot_ok, _dot_into),
    "convert": (_convert_ok, lambda x, *, out, new_dtype: _copy_into(out, x)),
    "transpose": (_always, lambda x, *, out, permutation: _copy_into(
        out, np.transpose(x, permutation))),
    "broadcast_in_dim": (_always, _bid_into),
}
def _bid_view(x, *, shape, broadcast_dimensions):
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    return np.broadcast_to(x.reshape(expanded), shape)


# Steps whose result may be a read-only view of their operand when the caller never sees it:
# nothing writes into a value the schedule did not put in its own buffer, so a broadcast
# needs no copy (its readers are elementwise steps that broadcast anyway).
VIEWS = {"broadcast_in_dim": _bid_view}
# Steps that may write over an operand that dies there (numpy ufuncs handle an output that
# is an operand); the others get a buffer whose values all died before.
LENDS = set(UFUNCS) | {"select", "fused"}
class _Step:
    __slots__ = ("fn", "params", "ins", "outs", "free", "buf", "node", "name", "multi", "avals",
                 "source", "convert")

    def __init__(self, node, fn, ins, outs):
        self.node, self.fn, self.ins, self.outs = node, fn, ins, outs
        self.free: list[int] = []  # slots whose value dies here
        self.buf = None  # pool index of the buffer it writes (a list when it has several results)
        self.convert = True  # whether results pass through _as (decided on the first call)
        if node is not None:
            self.name, self.params, self.source = node.prim.name, dict(node.params), node.source
            self.multi = node.prim.multiple_results
            self.avals = [v.aval for v in node.outputs]


def _fused_step(cluster, fn, slot_of) -> _Step:
    """One step running a cluster of elementwise nodes as one compiled loop."""
    step = _Step(None, fn, [slot_of(a) for a in cluster.arrays + cluster.scalars],
                 [slot_of(v) for v in cluster.outputs])
    step.name, step.params, step.source = "fused", {}, cluster.nodes[-1].source
    step.multi, step.avals = True, [v.aval for v in cluster.outputs]
    step.buf = [None] * len(cluster.outputs)
    return step


class Schedule:
    """``Schedule(graph, impls=None)(flat_args) -> flat outputs``; see the module docstring."""

    def __init__(self, graph: Graph, impls: dict | None = None, into: dict | None = None,
                 donate=(), fuser=None):
        self.graph = graph
        self.donate = frozenset(int(i) for i in donate)
        impls = impls or {}
        self.into = {**INTO, **{k: (_one_output, fn) for k, fn in (into or {}).items()}}
        slot: dict[int, int] = {p.id: i for i, p in enumerate(graph.params)}
        template: list = [None] * len(graph.params)

        def place(a):
            if isinstance(a, Const):
                template.append(a.value)
                return len(template) - 1
            return slot[a.id]

        for node in graph.body:
            for v in node.outputs:
                slot[v.id] = len(template)
                template.append(None)
        clusters = _clusters(graph, fuser.fusable) if fuser is not None else []
        last = {id(c.nodes[-1]): c for c in clusters}
        fused = {id(n) for c in clusters for n in c.nodes}
        self.steps: list[_Step] = []
        for node in graph.body:
            if id(node) in last:
                c = last[id(node)]
                self.steps.append(_fused_step(c, fuser.compile(c), place))
            elif id(node) not in fused:
                fn = impls.get(node.prim.name, node.prim.impl)
                self.steps.append(_Step(node, fn, [place(a) for a in node.inputs],
                                        [slot[v.id] for v in node.outputs]))
        self.out_slots = [place(o) for o in graph.outputs]
        self.template = template
        if clusters:
            self.steps = _hoist(self.steps)
        self._plan(slot)
        self.buffers: list = [None] * len(self.pool)
        self.checked = False

    def _plan(self, slot):
        """Liveness, then buffers: which steps write in place, and into which buffer."""
        n = len(self.steps)
        last = {}
        for s, step in enumerate(self.steps):
            for i in step.ins:
                last[i] = s
        outs = set(self.out_slots)
        for i in outs:
            last[i] = n
        for i, s in last.items():
            if s < n and i >= len(self.graph.params):
                self.steps[s].free.append(i)
        donated = {i: self.graph.params[i].aval for i in sorted(self.donate)}
        self.pool = _assign_buffers(self.steps, last, outs, self.into, donated)

    def __call__(self, args) -> list:
        if len(args) != len(self.graph.params):
            raise ArityError(f"graph {self.graph.name} takes {len(self.graph.params)} "
                             f"arguments, got {len(args)}")
        env = list(self.template)
        for i, (p, a) in enumerate(zip(self.graph.params, args)):
            env[i] = _as(a, p.aval)
        if self.donate:
            self._lend(args, env)
        with np.errstate(all="ignore"):
            if not self.checked:
                self._first(env)
            else:
                self._run(env)
        if self.donate:  # do not keep the caller's arrays alive until the next call
            for j, (_, _, source) in enumerate(self.pool):
                if source is not None:
                    self.buffers[j] = None
        return [env[i] for i in self.out_slots]

    def _lend(self, args, env):
        """The donated arguments become this call's buffers for the results written into
        them; one that is shared (passed twice, or viewed by another argument) or read-only is
        not written: that result gets a fresh array."""
        roots = [_root(a) for a in args]
        count: dict[int, int] = {}
        for r in roots:
            count[id(r)] = count.get(id(r), 0) + 1
        for j, (shape, dtype, source) in enumerate(self.pool):
            if source is None:
                continue
            a = env[source]
            ok = (a is args[source] and isinstance(a, np.ndarray) and a.base is None
                  and a.flags.writeable and a.flags.c_contiguous and count[id(a)] == 1)
            self.buffers[j] = a if ok else np.empty(shape, dtype)

    def _run(self, env):
        bufs = self.buffers
        for step in self.steps:
            out = self._call(step, [env[i] for i in step.ins], bufs)
            if not step.multi:
                env[step.outs[0]] = _as(out, step.avals[0]) if step.convert else out
            else:
                for i, a, o in zip(step.outs, step.avals, out):
                    env[i] = _as(o, a) if step.convert else o
            for i in step.free:
                env[i] = None

    @staticmethod
    def _call(step, ins, bufs):
        if step.buf is None:
            return step.fn(*ins, **step.params)
        if step.multi:
            return step.fn(*ins, out=[None if j is None else bufs[j] for j in step.buf],
                           **step.params)
        return step.fn(*ins, out=bufs[step.buf], **step.params)

    def _first(self, env):
        """The first call: allocate the buffers and check every result (as eval_graph_flat)."""
        for j, (shape, dtype, source) in enumerate(self.pool):
            if source is None:
                self.buffers[j] = np.empty(shape, dtype)
        for step in self.steps:
            try:
                out = self._call(step, [env[i] for i in step.ins], self.buffers)
            except (SciMLError, RecursionError):
                raise
            except Exception as e:  # a bug or a runtime failure in an implementation
                where = f" (from {step.source})" if step.source else ""
                raise type(e)(f"while evaluating {step.name}{where}: {e}") from e
            step.convert = False
            for i, a, o in zip(step.outs, step.avals, out if step.multi else (out,)):
                env[i] = _as(o, a)
                step.convert |= env[i] is not o
            for i in step.free:
                env[i] = None
        self.checked = True


# ---------------------------------------------------------------------------------------------
# Buffer planning


def _assign_buffers(steps, last, outs, into, donated) -> list:
    """Give in-place-capable steps a buffer; returns the pool: (shape, dtype, source) with
    source None for a buffer the schedule owns, else the index of the donated argument.

    A result is written into an owned buffer unless the caller gets it back, directly or
    through a value that may alias it (any other step's results may be views of its
    operands); such a result goes into a donated argument of its shape once every value that
    may alias the argument is dead, else into a fresh array. A buffer is free for reuse after
    the last use of every value that may alias it.
    """
    writes = [_writer(step, into) for step in steps]
    members = _members(_alias_roots(steps, writes, donated))
    for s, step in enumerate(steps):
        view = VIEWS.get(step.name)
        if view is not None and not members.get(step.outs[0], {step.outs[0]}) & outs:
            step.fn, writes[s] = view, None
    members = _members(_alias_roots(steps, writes, donated))
    pool: list = []
    free_after: list = []
    for i, aval in donated.items():
        group = members.get(i, {i})
        pool.append((tuple(aval.shape), aval.dtype, i))
        free_after.append(len(steps) if group & outs else max(last.get(k, -1) for k in group))
    for s, (step, fn) in enumerate(zip(steps, writes)):
        if fn is None:
            continue
        for k, (o, aval) in enumerate(zip(step.outs, step.avals)):
            j = _buffer_for(o, aval, s, step.name in LENDS, members, last, outs, pool,
                            free_after, len(steps))
            if step.multi:
                step.buf[k] = j
            elif j is not None:
                step.fn, step.buf = fn, j
    return pool


def _buffer_for(o, aval, s, lends, members, last, outs, pool, free_after, n):
    """The pool index of the buffer result slot ``o`` of step ``s`` is written into (None: a
    fresh array per call)."""
    group = members.get(o, {o})
    escapes = bool(group & outs)
    end = n if escapes else max(last.get(i, s) for i in group)
    kind = (tuple(aval.shape), aval.dtype)
    j = _take(pool, free_after, kind, s if lends else s - 1, escapes)
    if j is None and escapes:
        return None  # returned to the caller: a fresh array every call
    if j is None:
        pool.append(kind + (None,))
        free_after.append(end)
        return len(pool) - 1
    free_after[j] = end
    return j


def _members(roots) -> dict:
    """Buffer-owning slot -> the slots that may alias its buffer."""
    members: dict[int, set] = {}
    for i, rs in roots.items():
        for r in rs:
            members.setdefault(r, set()).add(i)
    return members


def _writer(step, into):
    """The function that writes ``step``'s result into a buffer, or None."""
    if step.node is None:  # a fused step writes all its results
        return step.fn
    entry = into.get(step.name)
    return entry[1] if entry is not None and entry[0](step.node) else None


def _take(pool, free_after, kind, s, donated):
    # A buffer whose values all died at step s or before, owned or donated as asked.
    # Elementwise steps pass their own index: an operand dying there lends its buffer (numpy
    # ufuncs handle an output that is one of the operands).
    for j, (shape, dtype, source) in enumerate(pool):
        if free_after[j] <= s and (shape, dtype) == kind and (source is not None) == donated:
            return j
    return None


def _root(a):
    """The array that owns ``a``'s memory (``a`` itself when it owns it)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


def _alias_roots(steps, writes, donated=()) -> dict:
    """For each slot, the slots of buffer-writing results (and donated arguments) whose
    buffer it may share."""
    roots: dict[int, frozenset] = {i: frozenset({i}) for i in donated}
    for step, fn in zip(steps, writes):
        if fn is not None:
            roots.update((o, frozenset({o})) for o in step.outs)
            continue
        shared = frozenset().union(*(roots.get(i, frozenset()) for i in step.ins))
        for o in step.outs:
            roots[o] = shared
    return roots


def _hoist(steps) -> list:
    """Steps in a dependency order that runs each fused loop (and each step of 0-d results, a
    cheap scalar computation that may feed one) as soon as its operands exist: a loop over an
    optimizer's state then reads the gradient while the matmul that made it left it in cache."""
    made: dict[int, float] = {}
    keyed = []
    for k, step in enumerate(steps):
        early = step.name == "fused" or (
            step.node is not None and not step.node.subgraphs()
            and "effect" not in step.node.prim.tags and all(not a.shape for a in step.avals))
        key = max((made.get(i, -1.0) for i in step.ins), default=-1.0) + 1e-3 if early else k
        for o in step.outs:
            made[o] = key
        keyed.append((key, k, step))
    return [step for _, _, step in sorted(keyed, key=lambda e: (e[0], e[1]))]


# ---------------------------------------------------------------------------------------------
# Elementwise clusters


@dataclass(eq=False)
class Cluster:
    """Elementwise nodes over one shape, run as one loop at the place of the last:
    ``arrays`` (operands of that shape) and ``scalars`` (0-d operands) come from outside,
    ``outputs`` are the results read outside (or returned)."""

    nodes: list
    made: set = field(default_factory=set)
    sealed: bool = False  # a node outside has read a result: the loop must run before it
    arrays: list = field(default_factory=list)
    scalars: list = field(default_factory=list)
    outputs: list = field(default_factory=list)


def _clusters(graph: Graph, fusable) -> list:
    """Clusters of two or more nodes (or one select) that ``fusable`` accepts (each with array
    operands of its result's shape and 0-d ones only), grown greedily in program order. A
    cluster runs where its last node was, so a node may join the open cluster of its shape as
    long as no node outside has read one of the cluster's results yet."""
    open_: dict = {}
    found = []
    for n in graph.body:
        ids = {a.id for a in n.inputs if isinstance(a, Var)}
        if not fusable(n):
            for c in open_.values():
                c.sealed = c.sealed or bool(ids & c.made)
            continue
        shape = n.outputs[0].aval.shape
        for key, c in open_.items():  # a member of another cluster reads like any node
            if key != shape:
                c.sealed = c.sealed or bool(ids & c.made)
        c = open_.get(shape)
        if c is None or c.sealed:
            c = open_[shape] = Cluster([])
            found.append(c)
        c.nodes.append(n)
        c.made.update(o.id for o in n.outputs)
    # A lone select fuses too: one loop instead of numpy's bit-mask passes.
    found = [c for c in found if len(c.nodes) > 1 or c.nodes[0].prim.name == "select"]
    _connect(graph, found)
    return found


def _connect(graph: Graph, clusters):
    """Fill each cluster's operands from outside and its results read outside."""
    member = {id(n): c for c in clusters for n in c.nodes}
    read_outside: set = {o.id for o in graph.outputs if isinstance(o, Var)}
    for n in graph.body:
        for a in n.inputs:
            if isinstance(a, Var) and (id(n) not in member or a.id not in member[id(n)].made):
                read_outside.add(a.id)
    for c in clusters:
        seen = set()
        for n in c.nodes:
            for a in n.inputs:
                key = a.id if isinstance(a, Var) else id(a)
                if key in seen or (isinstance(a, Var) and a.id in c.made):
                    continue
                seen.add(key)
                (c.arrays if a.aval.ndim else c.scalars).append(a)
            c.outputs += [o for o in n.outputs if o.id in read_outside]
