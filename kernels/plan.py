"""The execution plan: runs fused kernels and library nodes in order, with buffers planned once.

Buffers of intermediate values are allocated when the plan is built and reused across calls
and, within a call, between values whose lifetimes do not overlap (a kernel never writes a
buffer it reads). Outputs of the jitted function are fresh arrays on every call unless
``reuse_outputs=True``, where they are plan-owned and overwritten by the next call (as an
``out=`` buffer): a fresh large array costs its page faults on every call.

Library nodes run their numpy reference implementation, except control flow, whose subgraphs
are compiled by the same pipeline (lazily, so recursive graphs work) and driven from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autodiff import dtypes
from autodiff.ir import Const, Graph, Var

from .fuse import Cluster

# numba has no half types: bfloat16 arrays pass as their uint16 bits (no copy; kernels widen
# and round them, see kernels/halfconv.py), float16 arrays are converted to float32 here.
KERNEL_ARRAY_DTYPE = {"float16": np.dtype("float32"), "bfloat16": np.dtype("uint16")}


@dataclass
class KernelStep:
    fn: object
    kernel: object
    inputs: list  # Vars or Consts
    outputs: list  # Vars
    buffers: list  # one array (plan-owned) or None (fresh per call) per output

    def run(self, env):
        args = [_kernel_arg(_get(env, a), b) for a, b in zip(self.inputs, self.kernel.inputs)]
        outs = [buf if buf is not None and not _overlaps(buf, args) else _empty(b)
                for buf, b in zip(self.buffers, self.kernel.outputs)]
        self.fn(*args, *outs)
        for v, o in zip(self.outputs, outs):
            env[v.id] = _from_kernel(o, v.aval)


@dataclass
class LibraryStep:
    node: object
    runner: object

    def run(self, env):
        args = [_get(env, a) for a in self.node.inputs]
        out = self.runner(*args)
        outs = out if self.node.prim.multiple_results else (out,)
        for v, o in zip(self.node.outputs, outs):
            arr = np.asarray(o)
            env[v.id] = arr if arr.dtype == v.aval.dtype else arr.astype(v.aval.dtype)


class Plan:
    """Steps in execution order; ``plan(flat_arrays) -> flat outputs``."""

    def __init__(self, graph: Graph, groups: list, kernels: dict, fns: dict, runner_for,
                 reuse_outputs: bool = False):
        self.graph = graph
        self.reuse_outputs = reuse_outputs
        self.steps = []
        for g in groups:
            if isinstance(g, Cluster):
                self.steps.append(KernelStep(fns[g.index], kernels[g.index], g.inputs,
                                             g.outputs, [None] * len(g.outputs)))
            elif g.index in fns:  # a library node compiled as a routine: run like a kernel
                outs = list(g.node.outputs)
                self.steps.append(KernelStep(fns[g.index], kernels[g.index],
                                             list(g.node.inputs), outs, [None] * len(outs)))
            else:
                self.steps.append(LibraryStep(g.node, runner_for(g.node)))
        self.buffer_bytes = _plan_buffers(graph, self.steps, reuse_outputs)

    def __call__(self, args) -> list:
        env = {p.id: a for p, a in zip(self.graph.params, args)}
        for step in self.steps:
            step.run(env)
        return [self._output(o, env) for o in self.graph.outputs]

    def _output(self, o, env):
        if isinstance(o, Const):
            return o.value.copy()
        if self.reuse_outputs and any(o is p for p in self.graph.params):
            return np.copy(env[o.id])  # an argument passed through must not alias plan buffers
        return env[o.id]

    def count_kernels(self) -> int:
        """Fused kernels run (library nodes compiled as routines are not counted)."""
        return sum(isinstance(s, KernelStep) and not hasattr(s.kernel, "prim")
                   for s in self.steps)


def _overlaps(buf, args) -> bool:
    # A plan-owned output passed back in as an argument (u = f(u) with reuse_outputs): a
    # stencil would read what it overwrites, so that call writes a fresh array instead.
    return any(np.may_share_memory(buf, a) for a in args)


def _get(env, a):
    return a.value if isinstance(a, Const) else env[a.id]


def _kernel_arg(x, buf):
    x = np.asarray(x)
    if str(buf.dtype) == "bfloat16":
        x = x if x.dtype == dtypes.bfloat16 else x.astype(dtypes.bfloat16)
        return np.ascontiguousarray(x).view(np.uint16).reshape(buf.shape)
    want = KERNEL_ARRAY_DTYPE.get(buf.dtype, np.dtype(dtypes.dtype(buf.dtype)))
    if x.dtype != want:
        x = x.astype(want)
    return np.ascontiguousarray(x).reshape(buf.shape)


def _empty(buf):
    return np.empty(buf.shape, KERNEL_ARRAY_DTYPE.get(buf.dtype, dtypes.dtype(buf.dtype)))


def _from_kernel(o, aval):
    if o.dtype == np.uint16 and aval.dtype == dtypes.bfloat16:
        o = o.view(dtypes.bfloat16)
    o = o.reshape(aval.shape)
    return o if o.dtype == aval.dtype else o.astype(aval.dtype)


# ---------------------------------------------------------------------------------------------
# Buffer planning


def _plan_buffers(graph: Graph, steps: list, reuse_outputs: bool) -> int:
    """Give kernel outputs plan-owned buffers, reusing a buffer once its last reader ran."""
    outs = {o.id for o in graph.outputs if isinstance(o, Var)}
    last = _last_uses(graph, steps)
    roots = _alias_roots(steps)
    pool: list = []  # [array, free_after_step]
    total = 0
    for s, step in enumerate(steps):
        if not isinstance(step, KernelStep):
            continue
        for j, (v, b) in enumerate(zip(step.outputs, step.kernel.outputs)):
            escapes = v.id in outs or bool(roots.get(v.id, set()) & outs)
            if escapes and not reuse_outputs:
                continue  # returned to the caller (maybe through a view): fresh per call
            end = max([last.get(u, s) for u in roots.get(v.id, {v.id})] + [s])
            if escapes:
                end = len(steps)  # returned: never recycled within a call
            buf = _take(pool, b, s) if not escapes else None
            if buf is None:
                buf = _empty(b)
                total += buf.nbytes
                pool.append([buf, end])
            else:
                _retire(pool, buf, end)
            step.buffers[j] = buf
    return total


def _take(pool, b, s):
    shape = b.shape
    dt = KERNEL_ARRAY_DTYPE.get(b.dtype, dtypes.dtype(b.dtype))
    for entry in pool:
        buf, free_after = entry
        if free_after < s and buf.shape == tuple(shape) and buf.dtype == dt:
            return buf
    return None


def _retire(pool, buf, end):
    for entry in pool:
        if entry[0] is buf:
            entry[1] = end


def _last_uses(graph: Graph, steps: list) -> dict:
    last: dict[int, int] = {}
    for s, step in enumerate(steps):
        ins = step.inputs if isinstance(step, KernelStep) else step.node.inputs
        for a in ins:
            if isinstance(a, Var):
                last[a.id] = s
    for o in graph.outputs:
        if isinstance(o, Var):
            last[o.id] = len(steps)
    return last


def _alias_roots(steps: list) -> dict:
    """For each value, the values whose buffer it may share (library results may be views)."""
    users: dict[int, set] = {}  # buffer-owning value id -> ids of values that may alias it
    for step in steps:
        if isinstance(step, KernelStep):
            for v in step.outputs:
                users.setdefault(v.id, {v.id})
        else:
            for a in step.node.inputs:
                if not isinstance(a, Var):
                    continue
                for group in users.values():
                    if a.id in group:
                        group.update(o.id for o in step.node.outputs)
    return users
