"""``jit``: trace a function per input signature, fuse, lower, print, compile, plan, and run.

The whole pipeline is ``compile_graph``, one named call per stage::

    trace -> verify -> passes -> fuse -> lower -> wavefront -> print -> compile -> plan

Each stage is timed (``Compiled.timings``) and can be dumped by naming it in ``SCIML_DEBUG``
(comma separated, or ``all``): ``SCIML_DEBUG=fuse,source python prog.py``.

>>> import numpy as np
>>> f = jit(lambda x, y: np.exp(-x * x) * y + 1.0)
>>> x = np.linspace(-1.0, 1.0, 5)
>>> bool(np.allclose(f(x, 2.0), np.exp(-x * x) * 2.0 + 1.0))
True
>>> f.lower(x, 2.0).count_kernels()
1

``lower`` shows every stage: the optimised graph, the clusters, each kernel in the loop IR
and its generated source::

    >>> print(jit(lambda x: (np.sin(x) * 2.0).sum()).lower(np.zeros(8)))
    graph <lambda>(a:f64[8]) {
      b:f64[8] = sin a
      c:f64[8] = mul b 2.0:f64[]
      d:f64[] = reduce_sum[axes=(0,), keepdims=False] c
      return d
    }
    <BLANKLINE>
    cluster 0 over (8,): sin mul reduce_sum
    <BLANKLINE>
    kernel k0(in0:float64[8]) -> (out0:float64[1]) over (8,):
      v0 = load in0[i0]
      v1 = sin(v0):float64
      v2 = 2.0:float64
      v3 = mul(v1, v2):float64
      reduce over loops 0..0:
        out0 <- sum(v3):float64
    <BLANKLINE>
    import numba
    import numpy as np
    from kernels.cpu import NoAlias
    from kernels.vmath import sin_f64
    <BLANKLINE>
    <BLANKLINE>
    @numba.njit(parallel=False, error_model="numpy", nogil=True, cache=True, pipeline_class=NoAlias)
    def kernel(in0, out0):
        v2 = np.float64(2.0)
        part0 = np.empty(1, np.float64)
        for c in range(1):
            acc0 = np.float64(0)
            for i0 in range(c * 16384, min(c * 16384 + 16384, 8)):
                v0 = in0[i0]
                v1 = sin_f64(v0)
                v3 = (v1 * v2)
                acc0 = acc0 + v3
            part0[c] = acc0
        acc0 = np.float64(0)
        for c in range(1):
            acc0 = acc0 + part0[c]
        out0[0] = acc0
    <BLANKLINE>
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import autodiff.lax  # noqa: F401  (attaches the Tracer operators)
from autodiff.errors import ArityError, UnsupportedError
from autodiff.ir import Graph
from autodiff.passes import optimize
from autodiff.pytree import tree_flatten, tree_unflatten
from autodiff.trace import abstractify, make_graph
from autodiff.verify import verify

from . import cache, wavefront
from .concat import expand_concatenates
from .fuse import Cluster, Library, classify, fuse
from .ifconvert import if_convert
from .loopir import verify_kernel
from .lower import lower
from .plan import Plan

BACKENDS = ("cpu", "gpu", "npu")


def jit(fun=None, *, backend: str = "cpu", reuse_outputs: bool = False):
    """Compile ``fun`` into fused kernels for ``backend``; usable as ``@jit`` or ``@jit(...)``.

    Traces once per input signature (pytree structure, shapes, dtypes), keeps the compiled
    plan in memory and the kernels on disk. ``reuse_outputs=True`` returns plan-owned output
    arrays that the next call overwrites (no page faults for large outputs).
    """
    if fun is None:
        return functools.partial(jit, backend=backend, reuse_outputs=reuse_outputs)
    target(backend)  # fail now, before anything is traced, when the backend cannot run
    return JitFunction(fun, backend, reuse_outputs)


class JitFunction:
    """A jitted function: call it like ``fun``; ``lower(*args)`` shows what it compiles to."""

    def __init__(self, fun, backend: str, reuse_outputs: bool):
        self.fun, self.backend, self.reuse_outputs = fun, backend, reuse_outputs
        self.compiled: dict = {}
        # A target may take its own arrays (device arrays for the gpu): its ``as_array`` hook.
        self.as_array = getattr(target(backend), "as_array", _as_array)
        functools.update_wrapper(self, fun)

    def __call__(self, *args):
        leaves, tree = tree_flatten(args)
        c = self._compiled(leaves, tree, args)
        arrays = [self.as_array(x, p.aval) for x, p in zip(leaves, c.graph.params)]
        outs = c.plan(arrays)
        return tree_unflatten(c.graph.meta["out_tree"], outs)

    def lower(self, *args) -> Compiled:
        """The compiled form for these arguments: fused graph, kernels and their sources."""
        leaves, tree = tree_flatten(args)
        return self._compiled(leaves, tree, args)

    def _compiled(self, leaves, tree, args) -> Compiled:
        avals = tuple(abstractify(x) for x in leaves)
        key = (tree, tuple((a.shape, a.dtype, a.weak) for a in avals))
        c = self.compiled.get(key)
        if c is None:
            t0 = time.perf_counter()
            # trace: the Python function becomes a Graph for this signature
            graph = make_graph(self.fun, *args)
            if graph.meta.get("captured"):
                raise UnsupportedError("jit: the function closes over values of an outer trace"
                                       "; pass them as arguments")
            c = compile_graph(graph, self.backend, self.reuse_outputs)
            c.timings["trace"] = c.timings.get("trace", 0.0) + time.perf_counter() - t0 - sum(
                v for k, v in c.timings.items() if k != "trace")
            self.compiled[key] = c
        return c


def _as_array(x, aval):
    arr = np.asarray(x)
    return arr if arr.dtype == aval.dtype else arr.astype(aval.dtype)


# ---------------------------------------------------------------------------------------------
# The pipeline


@dataclass
class Compiled:
    """Everything ``jit`` made for one signature; ``print(compiled)`` shows it all."""

    graph: Graph
    groups: list
    kernels: dict
    sources: dict
    plan: object = None
    routines: dict = field(default_factory=dict)  # group index -> kernels.routines.Routine
    timings: dict = field(default_factory=dict)

    def count_kernels(self) -> int:
        """Fused kernels (library nodes compiled as routines are not counted)."""
        return len(self.kernels)

    def temporaries(self) -> int:
        """Arrays written by one kernel and read by another (each costs a pass over memory)."""
        outs = {o.id for o in self.graph.outputs if hasattr(o, "id")}
        return sum(1 for g in self.groups if isinstance(g, Cluster)
                   for v in g.outputs if v.id not in outs)

    def __str__(self):
        parts = [str(self.graph), ""]
        parts += [str(g) for g in self.groups]
        for i, k in self.kernels.items():
            parts += ["", str(k), "", self.sources[i]]
        for r in self.routines.values():
            parts += ["", str(r), "", r.source]
        return "\n".join(parts)


def compile_graph(graph: Graph, backend: str = "cpu", reuse_outputs: bool = False,
                  build: bool = True) -> Compiled:
    """trace -> verify -> passes -> fuse -> lower -> print -> compile -> plan, each stage timed.

    ``build=False`` stops after printing (no compile, no plan), so the source for a target
    can be read where it cannot run (CUDA C without a GPU).
    """
    tgt = target(backend, check=build)
    timer = _Timer()
    # verify: the traced graph is well formed before anything is built from it
    timer("verify", verify, graph)
    _dump("graph", graph)
    # passes: inline, fold, simplify, CSE, DCE to a fixed point (Graph -> Graph)
    if getattr(tgt, "EXPAND_CONCATENATE", False):  # concatenations as fusible padded reads
        graph = timer("concat", expand_concatenates, graph)
    seq = getattr(tgt, "SEQUENTIAL_AXIS0", False)
    if getattr(tgt, "IF_CONVERT", False):  # conds of kernel work as selects (no host branch)
        graph = timer("if-convert", if_convert, graph,
                      lambda n: classify(n, seq) is not None and tgt.can_fuse(n))
    graph = timer("passes", optimize, graph)
    _dump("passes", graph)
    # [Graph] -> [Cluster | Library]: which nodes share a pass over memory
    groups = timer("fuse", fuse, graph, tgt.can_fuse, seq)
    _dump("fuse", "\n".join(map(str, groups)))
    # a target refuses what it cannot run (a dtype it lacks) here, before any kernel runs
    if hasattr(tgt, "check_groups"):
        tgt.check_groups(groups)
    clusters = [g for g in groups if isinstance(g, Cluster)]
    # [Cluster] -> [Kernel]: loop nests with loads, scalar ops, stores, reductions
    kernels = timer("lower", lambda: {c.index: lower(c, f"k{c.index}") for c in clusters})
    if "verify" in os.environ.get("SCIML_DEBUG", "").split(","):
        for k in kernels.values():
            verify_kernel(k)
    _dump("lower", "\n\n".join(map(str, kernels.values())))
    # [Kernel] -> [Kernel]: chains of stencil kernels become one sweep (SCIML_WAVEFRONT=off)
    groups, kernels = timer("wavefront", wavefront.block, groups, kernels, graph, backend)
    _dump("wavefront", "\n\n".join(str(k) for k in kernels.values() if hasattr(k, "levels")))
    # [Kernel] -> [source]: the target's printer
    sources = timer("print", lambda: {i: tgt.print_kernel(k, name="kernel")
                                      for i, k in kernels.items()})
    # [Library] -> [routine]: library nodes the target prints as compiled routines
    print_routine = getattr(tgt, "print_routine", None)
    routines = timer("routines", _routines, groups, print_routine) if print_routine else {}
    _dump("source", "\n\n".join([*sources.values(), *(r.source for r in routines.values())]))
    if not build:
        return Compiled(graph, groups, kernels, sources, routines=routines, timings=timer.times)
    # [source] -> [callable]: memory cache, disk cache, or a fresh compile
    compile_kernel = getattr(tgt, "compile_kernel", None)
    fns = timer("compile", lambda: {
        i: compile_kernel(s, kernels[i]) if compile_kernel else cache.load(s, "kernel", backend)
        for i, s in sources.items()})
    fns.update({i: cache.load(r.source, "kernel", backend) for i, r in routines.items()})
    c = Compiled(graph, groups, kernels, sources, routines=routines)
    # [groups] -> Plan: buffers planned once, library nodes bound to routines or runners
    c.plan = timer("plan", getattr(tgt, "Plan", Plan), graph, groups, {**kernels, **routines},
                   fns, functools.partial(runner_for, backend=backend), reuse_outputs)
    # Plan -> code: a target may compile the whole plan, loops included, into one function
    finish = getattr(tgt, "finish_plan", None)
    if finish is not None:
        c.plan = timer("plan code", finish, c.plan)
    c.timings = timer.times
    _dump("time", " ".join(f"{k}={v * 1e3:.1f}ms" for k, v in timer.times.items()))
    return c


def _routines(groups, print_routine) -> dict:
    out = {}
    for g in groups:
        if isinstance(g, Library):
            r = print_routine(g.node, f"r{g.index}")
            if r is not None:
                out[g.index] = r
    return out


def target(backend: str, check: bool = True):
    """The module implementing ``backend`` (``can_fuse``, ``print_kernel``), or a clear error.

    Optional hooks of a target module: ``available()`` (raises when it cannot run here; skipped
    with ``check=False``), ``check_groups(groups)``, ``compile_kernel(source, kernel)``,
    ``Plan`` (the plan class), ``library_runner(node)`` and ``as_array(x, aval)``.
    """
    if backend not in BACKENDS:
        raise UnsupportedError(f"jit: unknown backend {backend!r}; choose one of {BACKENDS}")
    try:
        mod = importlib.import_module(f"kernels.{backend}")
    except ImportError as e:
        raise UnsupportedError(f"jit: backend {backend!r} is not available here ({e})") from None
    available = getattr(mod, "available", None)
    if check and available is not None:
        available()  # raises UnsupportedError naming what is missing (no GPU, no cupy, ...)
    if not hasattr(mod, "print_kernel") or not hasattr(mod, "can_fuse"):
        raise UnsupportedError(f"jit: backend {backend!r} has no kernel printer yet")
    return mod


class _Timer:
    def __init__(self):
        self.times: dict[str, float] = {}

    def __call__(self, stage, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.times[stage] = time.perf_counter() - t0
        return out


def _dump(stage: str, what):
    flags = os.environ.get("SCIML_DEBUG", "")
    if flags and (stage in flags.split(",") or flags == "all"):
        print(f"--- sciml jit: {stage} ---\n{what}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Library nodes: numpy references, and control flow driving compiled subgraphs


def runner_for(node, backend: str = "cpu"):
    """The callable a plan runs for a library node."""
    hook = getattr(target(backend, check=False), "library_runner", None)
    run = hook(node) if hook is not None else None
    if run is not None:
        return run  # the target runs it itself (the npu's cube unit, the gpu's host copies)
    make = CONTROL_RUNNERS.get(node.prim.name)
    if make is not None:
        return make(node, _SubPlans(backend))
    prim, params = node.prim, dict(node.params)
    return lambda *args: prim.impl(*args, **params)


class _SubPlans:
    """Subgraphs compiled on first use (a recursive graph compiles its callee when called)."""

    def __init__(self, backend):
        self.backend = backend
        self.plans: dict = {}

    def __call__(self, g: Graph, args, slot=None) -> list:
        """Run ``g``; ``slot`` 0/1 picks one of two plans that own their outputs (ping-pong)."""
        plan = self.plans.get((id(g), slot))
        if plan is None:
            plan = compile_graph(g, self.backend, reuse_outputs=slot is not None).plan
            self.plans[(id(g), slot)] = plan
        return plan([np.asarray(a) for a in args])


def _call_runner(node, sub):
    g = node.params["graph"]
    return lambda *args: tuple(sub(g, args))


def _custom_runner(node, sub):
    # custom_jvp_call / custom_vjp_call: the primal function is ``graph`` on the first n_in
    g, n_in = node.params["graph"], node.params["n_in"]
    return lambda *args: tuple(sub(g, args[:n_in]))


def _cond_runner(node, sub):
    branches = node.params["branches"]

    def run(index, *args):
        i = min(max(int(index), 0), len(branches) - 1)
        return tuple(sub(branches[i], args))

    return run


def _fori_runner(node, sub):
    body, n = node.params["body"], node.params["num_carry"]

    def run(lower_, upper, *args):
        # Two plans owning their outputs alternate, so that steps allocate nothing: step i
        # reads the buffers step i-1 wrote and writes the other plan's buffers.
        carry, caps = list(args[:n]), list(args[n:])
        steps = range(int(lower_), int(upper))
        for i in steps:
            carry = sub(body, [np.asarray(i, lower_.dtype)] + carry + caps, slot=i % 2)
        return tuple(c.copy() for c in carry) if len(steps) else tuple(carry)

    return run


def _while_runner(node, sub):
    p = node.params
    cg, bg, n, nc, max_steps = (p["cond_graph"], p["body_graph"], p["num_carry"],
                                p["num_cond_captures"], p.get("max_steps"))

    def run(*args):
        carry, ccap, bcap = list(args[:n]), list(args[n:n + nc]), list(args[n + nc:])
        steps = 0
        while bool(sub(cg, carry + ccap)[0]):
            if max_steps is not None and steps >= max_steps:
                break
            carry = sub(bg, carry + bcap)
            steps += 1
        return tuple(carry)

    return run


def _scan_runner(node, sub):
    p = node.params
    body, length, n, nx, rev = (p["body"], p["length"], p["num_carry"], p["num_xs"],
                                p.get("reverse", False))
    y_avals = body.out_avals[n:]

    def run(*args):
        carry, xs, caps = list(args[:n]), args[n:n + nx], list(args[n + nx:])
        ys = None
        for t in (range(length - 1, -1, -1) if rev else range(length)):
            out = sub(body, carry + [x[t] for x in xs] + caps)
            carry = list(out[:n])
            if ys is None:  # stacked where the body's outputs live (host, or the device)
                ys = [_module_of(o).empty((length,) + a.shape, a.dtype)
                      for o, a in zip(out[n:], y_avals)]
            for y, o in zip(ys, out[n:]):
                y[t] = o
        if ys is None:
            ys = [np.empty((length,) + a.shape, a.dtype) for a in y_avals]
        return tuple(carry) + tuple(ys)

    return run


def _module_of(x):
    """numpy, or cupy for a device array (a gpu plan's output)."""
    if hasattr(x, "__cuda_array_interface__"):
        import cupy

        return cupy
    return np


CONTROL_RUNNERS = {
    "call": _call_runner, "checkpoint": _call_runner, "custom_jvp_call": _custom_runner,
    "custom_vjp_call": _custom_runner, "cond": _cond_runner, "fori_loop": _fori_runner,
    "while_loop": _while_runner, "scan": _scan_runner,
}


def check_arity(c: Compiled, leaves):
    if len(leaves) != len(c.graph.params):
        raise ArityError(f"jit: {c.graph.name} takes {len(c.graph.params)} arrays, "
                         f"got {len(leaves)}")
