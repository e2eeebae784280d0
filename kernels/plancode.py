"""Whole-plan code for the CPU: a plan with loops becomes one compiled numba function.

On small grids a step is a few microseconds of work and calling a kernel from Python costs as
much again, so a ``fori_loop`` driven from Python would spend most of its time dispatching.
Here the plan is printed as a numba function that calls the fused kernels directly and runs
the loop itself; the host returns to Python once per jitted call. The loop's carries alternate
between two buffer sets allocated once (ping-pong), so iterations allocate nothing.

Used for plans made of kernels (fused kernels and compiled library routines) and control flow
(``fori_loop``, ``while_loop``, ``scan``, ``cond``; nested) whose values have numba dtypes; any
other plan runs step by step from Python (``kernels.plan.Plan``).
Loop bounds and every other value that changes between calls are arguments of the function,
never constants baked into its source. Kernels are called through their addresses and the
plan's own buffers reached through a table of addresses (``kernels.nativecall``), so the
function compiles without its kernels, and alongside them on the first call.
"""

from __future__ import annotations

import numba
import numpy as np

from autodiff.ir import Const, Var

from . import cache, nativecall
from .plan import KERNEL_ARRAY_DTYPE, KernelStep, LibraryStep, _kernel_arg


class NotEligible(Exception):
    """The plan holds a step whole-plan code does not cover; it runs from Python instead."""


class PlanCode:
    """A plan run by one compiled function; other attributes are those of the step plan."""

    def __init__(self, plan, fn, fixed, out_bufs, source, calls, owned):
        self.inner, self.fn, self.fixed, self.source = plan, fn, fixed, source
        self.out_bufs = out_bufs  # kernel buffers of the results: fresh arrays per call
        self.calls = calls  # (kernel, signature) per slot of the address table fixed[0]
        self.owned = owned  # the plan's buffers, which it reaches by address (fixed[1])
        self.linked = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def link(self, args):
        """Compile (or load) every kernel the plan calls and hand the plan their addresses,
        compiling the plan function for ``args`` meanwhile; done on the first call, so a plan
        used only as another plan's loop body costs nothing."""
        if not self.linked:
            sig = tuple(numba.typeof(a) for a in args)
            self.fixed[0][:] = nativecall.compile_all(self.calls, lambda: self.fn.compile(sig))
            self.linked = True

    def __call__(self, args) -> list:
        g = self.inner.graph
        arrays = [_kernel_arg(a, _Shape(p.aval)) for a, p in zip(args, g.params)]
        fresh = [_out_array(b, owned, arrays) for b, owned in self.out_bufs]
        self.link([*arrays, *fresh, *self.fixed])
        outs = self.fn(*arrays, *fresh, *self.fixed)
        return [np.asarray(o).reshape(v.aval.shape) for o, v in zip(outs, g.outputs)]


def _out_array(b, owned, args):
    """The plan-owned result buffer, or a fresh one (always without ``reuse_outputs``, and
    when the caller passed the previous result back in: a stencil would read what it
    overwrites)."""
    if owned is not None and not any(np.may_share_memory(owned, a) for a in args):
        return owned
    return np.empty(b.shape, KERNEL_ARRAY_DTYPE.get(str(b.dtype), np.dtype(b.dtype)))


class _Shape:
    """What ``_kernel_arg`` needs of a kernel buffer: its shape and dtype name."""

    def __init__(self, aval):
        self.shape = tuple(aval.shape) or (1,)
        self.dtype = str(aval.dtype)


def build(plan, compile_sub):
    """``PlanCode`` for ``plan`` when it has a loop or several kernels and every step is
    covered, else None (one kernel alone gains nothing from a plan function)."""
    kernels = sum(isinstance(s, KernelStep) for s in plan.steps)
    if not any(_is_control(s) for s in plan.steps) and kernels < 2:
        return None
    em = _Emitter(compile_sub)
    try:
        _check_dtypes(plan)
        params = [f"p{i}" for i in range(len(plan.graph.params))]
        env = {p.id: name for p, name in zip(plan.graph.params, params)}
        fresh = _fresh_outputs(plan)
        em.plan(plan, env, 1, {v.id: name for v, name, _, _ in fresh})
        names = {name for _, name, _, _ in fresh}
        outs = [em.result(o, env, copy=env.get(getattr(o, "id", None)) not in names)
                for o in plan.graph.outputs]
    except NotEligible:
        return None
    addresses = np.zeros(len(em.calls), np.int64)  # filled by PlanCode.link
    source = em.source(params + [name for _, name, _, _ in fresh], outs)
    fn = cache.load(source, "plan", "cpu-plan")
    # A plan loaded from numba's disk cache calls its parallel kernels without going through
    # their dispatchers, which is where numba starts its thread pool: start it here, or the
    # first parallel region of a fresh process runs on a pool that does not exist (segfault).
    numba.get_num_threads()
    pointers = np.array([a.ctypes.data for _, a in em.fixed], np.int64)
    return PlanCode(plan, fn, [addresses, pointers], [(b, a) for _, _, b, a in fresh], source,
                    list(em.calls), [a for _, a in em.fixed])


def _fresh_outputs(plan) -> list:
    """(value, argument name, kernel buffer, plan-owned array or None) of the results that
    kernels write straight into the arrays the caller gets back: fresh per call, or owned by
    the plan with ``reuse_outputs``."""
    returned = {o.id for o in plan.graph.outputs if isinstance(o, Var)}
    out = []
    for step in plan.steps:
        if isinstance(step, KernelStep):
            for v, buf, b in zip(step.outputs, step.buffers, step.kernel.outputs):
                if buf is None or v.id in returned:
                    out.append((v, f"o{len(out)}", b, buf))
    return out


CONTROL = ("fori_loop", "while_loop", "cond", "scan")


def _is_control(step) -> bool:
    return isinstance(step, LibraryStep) and step.node.prim.name in CONTROL


def _check_dtypes(plan):
    avals = [p.aval for p in plan.graph.params] + [o.aval for o in plan.graph.outputs]
    if any(str(a.dtype) in KERNEL_ARRAY_DTYPE for a in avals):
        raise NotEligible("half types are converted at the boundary by the step plan")


class _Emitter:
    def __init__(self, compile_sub):
        self.compile_sub = compile_sub
        self.subs: dict = {}  # id(graph) -> its compiled sub-plan (graphs live in the node params)
        self.lines: list[str] = []
        self.fixed: list = []  # (name, array): buffers owned by the plan, passed by address
        self.calls: dict = {}  # (kernel dispatcher, signature) -> its slot in the address table
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def own(self, arr) -> str:
        for name, a in self.fixed:
            if a is arr:  # a pool buffer reused by several steps is one argument
                return name
        name = f"t{len(self.fixed)}"
        if not arr.flags.c_contiguous:  # the plan reaches it by address: one block of memory
            raise NotEligible("a plan buffer that is not C-contiguous")
        self.fixed.append((name, arr))
        return name

    def emit(self, ind: int, line: str):
        self.lines.append("    " * ind + line)

    # -- steps --------------------------------------------------------------------------------

    def plan(self, plan, env, ind, out_names):
        for step in plan.steps:
            if isinstance(step, KernelStep):
                self.kernel(step, env, ind, out_names)
            elif _is_control(step):
                getattr(self, step.node.prim.name)(step.node, env, ind)
            else:
                raise NotEligible(step.node.prim.name)

    def kernel(self, step, env, ind, out_names):
        args = nativecall.buffer_args(step.kernel)
        sig = nativecall.signature(args)
        slot = self.calls.setdefault((step.fn, sig), len(self.calls))
        ins = [self.value(a, env, b) for a, b in zip(step.inputs, step.kernel.inputs)]
        outs = []
        for v, buf, b in zip(step.outputs, step.buffers, step.kernel.outputs):
            if str(b.dtype) in KERNEL_ARRAY_DTYPE:
                raise NotEligible("half-type buffer")
            outs.append(out_names[v.id] if (buf is None or v.id in out_names) else self.own(buf))
        self.emit(ind, f"call_kernel(addresses[{slot}], {nativecall.spec(args)!r}, "
                       f"{', '.join(ins + outs)})")
        for v, name, b in zip(step.outputs, outs, step.kernel.outputs):
            want = tuple(v.aval.shape) or (1,)
            if tuple(b.shape) != want:
                name2 = self.fresh("r")
                self.emit(ind, f"{name2} = {name}.reshape({want!r})")
                name = name2
            env[v.id] = name

    def value(self, a, env, buf) -> str:
        if isinstance(a, Const):
            return self.own(_kernel_arg(a.value, buf))
        return env[a.id]

    def scalar(self, a, env) -> str:
        if isinstance(a, Const):
            return str(int(a.value))
        return f"{env[a.id]}[0]"

    def fori_loop(self, node, env, ind):
        p = node.params
        body, n = p["body"], p["num_carry"]
        lo, hi = self.scalar(node.inputs[0], env), self.scalar(node.inputs[1], env)
        carry = self.carries(node.inputs[2:2 + n], env, ind)
        caps = [self.value(a, env, _Shape(a.aval)) for a in node.inputs[2 + n:]]
        ibuf = self.own(np.zeros(1, body.params[0].aval.dtype))
        it, lo_name = self.fresh("it"), self.fresh("lo")
        self.emit(ind, f"{lo_name} = {lo}")
        self.emit(ind, f"for {it} in range({lo_name}, {hi}):")
        self.emit(ind + 1, f"{ibuf}[0] = {it}")
        for parity in (0, 1):  # ping-pong: an iteration never overwrites what it reads
            self.emit(ind + 1, f"if ({it} - {lo_name}) % 2 == 0:" if parity == 0 else "else:")
            for c, o in zip(carry, self.subplan(body, [ibuf] + carry + caps, ind + 2)):
                self.emit(ind + 2, f"{c} = {o}")
        for v, c in zip(node.outputs, carry):
            env[v.id] = c

    def subplan(self, graph, args, ind) -> list:
        """Emit ``graph`` (compiled once as a sub-plan) on the argument names ``args``; returns
        the names of its results. Each emission gives the results buffers of its own, so two
        emissions of one graph (the parities of a loop) never overwrite each other's."""
        sub = self.subs.get(id(graph))
        if sub is None:
            sub = self.subs[id(graph)] = self.compile_sub(graph)
        sub_env = {q.id: a for q, a in zip(graph.params, args)}
        self.plan(sub, sub_env, ind, self.body_outputs(sub))
        return [self.result(o, sub_env, copy=False) for o in sub.graph.outputs]

    def carries(self, inputs, env, ind) -> list:
        names = [self.fresh("c") for _ in inputs]
        for c, a in zip(names, inputs):
            self.emit(ind, f"{c} = {self.value(a, env, _Shape(a.aval))}")
        return names

    def while_loop(self, node, env, ind):
        p = node.params
        n, nc = p["num_carry"], p["num_cond_captures"]
        carry = self.carries(node.inputs[:n], env, ind)
        ccap = [self.value(a, env, _Shape(a.aval)) for a in node.inputs[n:n + nc]]
        bcap = [self.value(a, env, _Shape(a.aval)) for a in node.inputs[n + nc:]]
        steps = self.fresh("nw")
        self.emit(ind, f"{steps} = 0")
        self.emit(ind, "while True:")
        (ok,) = self.subplan(p["cond_graph"], carry + ccap, ind + 1)
        self.emit(ind + 1, f"if not {ok}[0]:")
        self.emit(ind + 2, "break")
        if p.get("max_steps") is not None:
            self.emit(ind + 1, f"if {steps} >= {int(p['max_steps'])}:")
            self.emit(ind + 2, "break")
        for parity in (0, 1):  # ping-pong: an iteration never overwrites what it reads
            self.emit(ind + 1, f"if {steps} % 2 == 0:" if parity == 0 else "else:")
            outs = self.subplan(p["body_graph"], carry + bcap, ind + 2)
            for c, o in zip(carry, outs):
                self.emit(ind + 2, f"{c} = {o}")
        self.emit(ind + 1, f"{steps} += 1")
        for v, c in zip(node.outputs, carry):
            env[v.id] = c

    def cond(self, node, env, ind):
        branches = node.params["branches"]
        args = [self.value(a, env, _Shape(a.aval)) for a in node.inputs[1:]]
        which = self.fresh("sel")
        self.emit(ind, f"{which} = min(max(int({self.scalar(node.inputs[0], env)}), 0), "
                       f"{len(branches) - 1})")
        results = [self.fresh("cr") for _ in node.outputs]
        for i, g in enumerate(branches):
            self.emit(ind, f"{'if' if i == 0 else 'elif'} {which} == {i}:" if i < len(
                branches) - 1 else "else:")
            for r, o in zip(results, self.subplan(g, args, ind + 1)):
                self.emit(ind + 1, f"{r} = {o}")
        for v, r in zip(node.outputs, results):
            env[v.id] = r

    def scan(self, node, env, ind):
        p = node.params
        body, length, n, nx = p["body"], p["length"], p["num_carry"], p["num_xs"]
        carry = self.carries(node.inputs[:n], env, ind)
        xs = [self.value(a, env, _Shape(a.aval)) for a in node.inputs[n:n + nx]]
        caps = [self.value(a, env, _Shape(a.aval)) for a in node.inputs[n + nx:]]
        ys = []
        for v in node.outputs[n:]:
            dt = KERNEL_ARRAY_DTYPE.get(str(v.aval.dtype), np.dtype(v.aval.dtype))
            ys.append(self.own(np.empty(v.aval.shape, dt)))
        t, k = self.fresh("ti"), self.fresh("par")
        order = f"range({length} - 1, -1, -1)" if p.get("reverse") else f"range({length})"
        self.emit(ind, f"{k} = 0")
        self.emit(ind, f"for {t} in {order}:")
        # 0-d slices stay one-element arrays (the kernels' view of a scalar)
        x_t = [f"{x}[{t}:{t} + 1]" if a.aval.ndim == 1 else f"{x}[{t}]"
               for x, a in zip(xs, node.inputs[n:n + nx])]
        for parity in (0, 1):
            self.emit(ind + 1, f"if {k} % 2 == 0:" if parity == 0 else "else:")
            outs = self.subplan(body, carry + x_t + caps, ind + 2)
            for c, o in zip(carry, outs[:n]):
                self.emit(ind + 2, f"{c} = {o}")
            for y, o, v in zip(ys, outs[n:], node.outputs[n:]):
                dst = f"{y}[{t}:{t} + 1]" if v.aval.ndim == 1 else f"{y}[{t}]"
                self.emit(ind + 2, f"{dst}[...] = {o}.reshape({dst}.shape)")
        self.emit(ind + 1, f"{k} += 1")
        for v, c in zip(node.outputs, carry + ys):
            env[v.id] = c

    def body_outputs(self, sub) -> dict:
        """Buffers, owned by the plan, for the outputs of one parity of a loop body."""
        names = {}
        for step in sub.steps:
            if isinstance(step, KernelStep):
                for v, buf, b in zip(step.outputs, step.buffers, step.kernel.outputs):
                    if buf is None:
                        dt = KERNEL_ARRAY_DTYPE.get(str(b.dtype), np.dtype(b.dtype))
                        names[v.id] = self.own(np.empty(b.shape, dt))
        return names

    def result(self, o, env, copy=True) -> str:
        if isinstance(o, Const) or not isinstance(o, Var):
            raise NotEligible("constant output")
        name = env[o.id]
        return f"{name}.copy()" if copy else name

    # -- source -------------------------------------------------------------------------------

    def source(self, params, outs) -> str:
        imports = ["import numba", "import numpy as np",
                   "from kernels.nativecall import array_at, call_kernel"]
        args = ", ".join(params + ["addresses", "pointers"])  # params include the outputs
        views = [f"    {n} = array_at(pointers[{i}], {a.dtype.name!r}, {tuple(a.shape)!r})"
                 for i, (n, a) in enumerate(self.fixed)]
        ret = ", ".join(outs) + ("," if len(outs) == 1 else "")
        head = ["@numba.njit(error_model=\"numpy\", nogil=True, cache=True)",
                f"def plan({args}):"]
        return "\n".join(imports) + "\n\n\n" + "\n".join(
            head + views + self.lines + [f"    return ({ret})"]) + "\n"
