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
- runs named primitives with other implementations when given (``impls``, e.g. the compiled
  ``kernels.library.IMPLS``).

The first call checks every result against its abstract value, as ``eval_graph_flat`` does;
later calls convert only where the first needed it. Results equal ``eval_graph_flat``'s
bit for bit.

>>> import numpy as np
>>> from autodiff import lax
>>> from autodiff.trace import make_graph
>>> g = make_graph(lambda x: lax.unary("tanh", x * 2.0) + x, np.zeros(3))
>>> run = Schedule(g)
>>> run([np.array([0.0, 0.5, 1.0])])[0].round(3)
array([0.   , 1.262, 1.964])
>>> run.pool  # the buffer of x * 2.0, reused in place by tanh (the sum is returned: fresh)
[((3,), dtype('float64'))]
"""

from __future__ import annotations

import numpy as np

from .errors import ArityError, SciMLError
from .interpret import _as
from .ir import Const, Graph
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
LENDS = set(UFUNCS) | {"select"}
class _Step:
    __slots__ = ("fn", "params", "ins", "outs", "free", "buf", "node", "convert")

    def __init__(self, node, fn, ins, outs):
        self.node, self.fn, self.params = node, fn, dict(node.params)
        self.ins, self.outs = ins, outs
        self.free: list[int] = []  # slots whose value dies here
        self.buf = None  # a buffer spec (shape, dtype, pool index) when it writes in place
        self.convert = True  # whether results pass through _as (decided on the first call)


class Schedule:
    """``Schedule(graph, impls=None)(flat_args) -> flat outputs``; see the module docstring."""

    def __init__(self, graph: Graph, impls: dict | None = None, into: dict | None = None):
        self.graph = graph
        impls = impls or {}
        self.into = {**INTO, **{k: (_one_output, fn) for k, fn in (into or {}).items()}}
        slot: dict[int, int] = {p.id: i for i, p in enumerate(graph.params)}
        template: list = [None] * len(graph.params)

        def place(a):
            if isinstance(a, Const):
                template.append(a.value)
                return len(template) - 1
            return slot[a.id]

        self.steps: list[_Step] = []
        for node in graph.body:
            ins = [place(a) for a in node.inputs]
            outs = []
            for v in node.outputs:
                slot[v.id] = len(template)
                template.append(None)
                outs.append(slot[v.id])
            fn = impls.get(node.prim.name, node.prim.impl)
            self.steps.append(_Step(node, fn, ins, outs))
        self.out_slots = [place(o) for o in graph.outputs]
        self.template = template
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
        self.pool = _assign_buffers(self.steps, last, outs, self.into)

    def __call__(self, args) -> list:
        if len(args) != len(self.graph.params):
            raise ArityError(f"graph {self.graph.name} takes {len(self.graph.params)} "
                             f"arguments, got {len(args)}")
        env = list(self.template)
        for i, (p, a) in enumerate(zip(self.graph.params, args)):
            env[i] = _as(a, p.aval)
        with np.errstate(all="ignore"):
            if not self.checked:
                self._first(env)
            else:
                self._run(env)
        return [env[i] for i in self.out_slots]

    def _run(self, env):
        bufs = self.buffers
        for step in self.steps:
            ins = [env[i] for i in step.ins]
            if step.buf is not None:
                out = step.fn(*ins, out=bufs[step.buf], **step.params)
            else:
                out = step.fn(*ins, **step.params)
            if len(step.outs) == 1 and not step.node.prim.multiple_results:
                env[step.outs[0]] = _as(out, step.node.outputs[0].aval) if step.convert else out
            else:
                for i, v, o in zip(step.outs, step.node.outputs, out):
                    env[i] = _as(o, v.aval) if step.convert else o
            for i in step.free:
                env[i] = None

    def _first(self, env):
        """The first call: allocate the buffers and check every result (as eval_graph_flat)."""
        for j, (shape, dtype) in enumerate(self.pool):
            self.buffers[j] = np.empty(shape, dtype)
        for step in self.steps:
            node = step.node
            ins = [env[i] for i in step.ins]
            try:
                if step.buf is not None:
                    out = step.fn(*ins, out=self.buffers[step.buf], **step.params)
                else:
                    out = step.fn(*ins, **step.params)
            except (SciMLError, RecursionError):
                raise
            except Exception as e:  # a bug or a runtime failure in an implementation
                where = f" (from {node.source})" if node.source else ""
                raise type(e)(f"while evaluating {node.prim.name}{where}: {e}") from e
            outs = out if node.prim.multiple_results else (out,)
            step.convert = False
            for i, v, o in zip(step.outs, node.outputs, outs):
                env[i] = _as(o, v.aval)
                step.convert |= env[i] is not o
            for i in step.free:
                env[i] = None
        self.checked = True


# ---------------------------------------------------------------------------------------------
# Buffer planning


def _assign_buffers(steps, last, outs, into) -> list:
    """Give in-place-capable steps a pooled buffer; returns the pool's (shape, dtype) list.

    A result is pooled unless the caller gets it back, directly or through a value that may
    alias it (any other step's results may be views of its operands). A pooled buffer is free
    for reuse after the last use of every value that may alias it.
    """
    writes = [_writer(step, into) for step in steps]
    members = _members(_alias_roots(steps, writes))
    for s, step in enumerate(steps):
        view = VIEWS.get(step.node.prim.name)
        if view is not None and not members.get(step.outs[0], {step.outs[0]}) & outs:
            step.fn, writes[s] = view, None
    members = _members(_alias_roots(steps, writes))
    pool: list = []
    free_after: list = []
    for s, (step, fn) in enumerate(zip(steps, writes)):
        if fn is None:
            continue
        (o,) = step.outs
        group = members.get(o, {o})
        if group & outs:
            continue  # returned to the caller: a fresh array every call
        end = max(last.get(i, s) for i in group)
        aval = step.node.outputs[0].aval
        lend = step.node.prim.name in LENDS
        j = _take(pool, free_after, tuple(aval.shape), aval.dtype, s if lend else s - 1)
        if j is None:
            pool.append((tuple(aval.shape), aval.dtype))
            free_after.append(end)
            j = len(pool) - 1
        else:
            free_after[j] = end
        step.fn, step.buf = fn, j
    return pool


def _members(roots) -> dict:
    """Buffer-owning slot -> the slots that may alias its buffer."""
    members: dict[int, set] = {}
    for i, rs in roots.items():
        for r in rs:
            members.setdefault(r, set()).add(i)
    return members


def _writer(step, into):
    """The function that writes ``step``'s result into a buffer, or None."""
    entry = into.get(step.node.prim.name)
    return entry[1] if entry is not None and entry[0](step.node) else None


def _take(pool, free_after, shape, dtype, s):
    # A buffer whose values all died at step s or before. Elementwise steps pass their own
    # index: an operand dying there lends its buffer (numpy ufuncs handle an output that is
    # an operand).
    for j, (shp, dt) in enumerate(pool):
        if free_after[j] <= s and shp == shape and dt == dtype:
            return j
    return None


def _alias_roots(steps, writes) -> dict:
    """For each slot, the slots of buffer-writing results whose buffer it may share."""
    roots: dict[int, frozenset] = {}
    for step, fn in zip(steps, writes):
        if fn is not None:
            roots[step.outs[0]] = frozenset({step.outs[0]})
            continue
        shared = frozenset().union(*(roots.get(i, frozenset()) for i in step.ins))
        for o in step.outs:
            roots[o] = shared
    return roots
