"""Time each step of a compiled plan on its own: which kernels a jitted function spends its time in.

``profile(compiled, args)`` runs the plan step by step from Python on the arrays of one call.
Each kernel runs ``reps`` times into output arrays allocated (and written) before it is
timed, so page faults and allocation are not counted, and the best of the repeats after the
first is kept; library steps run twice and the second is kept. The body of a ``fori_loop``
is profiled the same way, once (its kernels' times are per iteration). Times of kernels run
alone are close to, not equal to, their share of the whole call: a kernel that reads what
the previous one wrote finds some of it in cache only when they run together.

Each row: step index, name, seconds, arrays read and written, bytes read and written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from autodiff.pytree import tree_flatten
from kernels.jit import compile_graph
from kernels.plan import KernelStep, _empty, _from_kernel, _get, _kernel_arg


@dataclass
class Row:
    where: str  # step index in the plan ("body:7" inside a loop body)
    name: str
    seconds: float
    arrays_in: int
    arrays_out: int
    nbytes: int

    def __str__(self):
        rate = f"{self.nbytes / self.seconds / 1e9:6.1f} GB/s" if self.nbytes else ""
        return (f"{self.seconds * 1e3:9.3f} ms  {self.where:9s} {self.name[:28]:28s} "
                f"in {self.arrays_in:3d} out {self.arrays_out:3d} "
                f"{self.nbytes / 1e6:9.1f} MB {rate}")


def profile(compiled, *args, reps: int = 4) -> tuple[list, dict]:
    """Rows for the top-level steps and, per ``fori_loop`` step, rows for its body."""
    plan = getattr(compiled.plan, "inner", compiled.plan)
    leaves, _ = tree_flatten(args)
    env = {p.id: np.asarray(x, p.aval.dtype) for x, p in zip(leaves, plan.graph.params)}
    bodies: dict = {}
    return _steps(plan, env, "", reps, bodies), bodies


def _steps(plan, env, tag, reps, bodies) -> list:
    rows = []
    for i, st in enumerate(plan.steps):
        if isinstance(st, KernelStep):
            rows.append(_kernel(st, env, f"{tag}{i}", reps))
            continue
        if st.node.prim.name == "fori_loop":
            bodies[f"{tag}{i}"] = _body(st.node, env, reps)
        st.run(env)  # the first run may compile sub-plans
        t = time.perf_counter()
        st.run(env)
        rows.append(Row(f"{tag}{i}", st.node.prim.name, time.perf_counter() - t,
                        len(st.node.inputs), len(st.node.outputs), 0))
    return rows


def _kernel(st, env, where, reps) -> Row:
    args = [_kernel_arg(_get(env, a), b) for a, b in zip(st.inputs, st.kernel.inputs)]
    outs = [_empty(b) for b in st.kernel.outputs]
    times = []
    for _ in range(max(reps, 2)):
        t = time.perf_counter()
        st.fn(*args, *outs)
        times.append(time.perf_counter() - t)
    for v, o in zip(st.outputs, outs):
        env[v.id] = _from_kernel(o, v.aval)
    prim = getattr(st.kernel, "prim", None)
    name = str(prim) if prim is not None else st.kernel.name
    nbytes = sum(a.nbytes for a in args) + sum(o.nbytes for o in outs)
    return Row(where, name, min(times[1:]), len(args), len(outs), nbytes)


def _body(node, env, reps) -> list:
    """One iteration of the loop body, on the loop's first carries."""
    body = node.params["body"]
    ins = [np.asarray(_get(env, a)) for a in node.inputs]
    first = np.asarray(ins[0])
    plan = compile_graph(body, "cpu").plan
    plan = getattr(plan, "inner", plan)
    benv = {p.id: x for p, x in zip(body.params, [first] + ins[2:])}
    return _steps(plan, benv, "body:", reps, {})


def table(rows: list, top: int = 30) -> str:
    """The ``top`` slowest rows, slowest first, with the total."""
    total = sum(r.seconds for r in rows)
    lines = [f"{total * 1e3:9.3f} ms  total over {len(rows)} steps"]
    lines += [str(r) for r in sorted(rows, key=lambda r: -r.seconds)[:top]]
    return "\n".join(lines)
