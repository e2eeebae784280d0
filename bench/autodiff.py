"""Higher-order AD benchmark: sciml and JAX (when installed) side by side.

1. The k-th derivative (k = 1..K) of f(x) = sin(x) exp(-x^2/2) + x^3 over N points by nested
   ``grad``, nested ``jvp`` and ``jet`` (``derivatives``): trace, compile and run time per k and
   the graph size (sciml: Apply nodes after the passes; JAX: jaxpr equations).
2. The Hessian and a Hessian-vector product of F(x) = sum(log(cosh(A x))), A n x n, against the
   analytic forms (A^T diag(sech^2(Ax)) A and A^T (sech^2(Ax) * (A v))) and two dense matrix
   products; the forward Laplacian of F against the trace of the Hessian.

Run: ``python -m bench.autodiff [--points 1000000] [--kmax 16] [--n 1000]``. sciml graphs run
in the reference interpreter or through ``kernels.jit`` — the one line ``BACKEND`` below.
Ratios (run/f, "= x [reference]") are medians of alternate timings, so load from other
processes hits both sides alike. On a loaded machine set ``OPENBLAS_NUM_THREADS=1``: spinning
BLAS threads otherwise make a 1000 x 1000 matrix-vector product 100 times slower.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import sciml.numpy as snp
from autodiff.api import grad, hessian, hvp, jvp
from autodiff.interpret import eval_graph_flat
from autodiff.laplacian import laplacian
from autodiff.passes import optimize
from autodiff.taylor import derivatives_graph
from autodiff.trace import make_graph

# The one line that switches sciml's execution: "jit" (kernels.jit: fused numba kernels) or
# "interpret" (the numpy reference interpreter, one numpy call per node).
BACKEND = os.environ.get("SCIML_BENCH_BACKEND", "jit")

# A method stops at the first k whose tracing takes longer than this (nested grad grows
# exponentially; the table says where it stopped).
TRACE_BUDGET_S = float(os.environ.get("SCIML_BENCH_TRACE_BUDGET", "20"))


def f_np(x):
    return np.sin(x) * np.exp(-x ** 2 / 2) + x ** 3


def prepare(graph):
    """A callable running ``graph`` on a list of arrays, and the seconds spent compiling it."""
    if BACKEND == "jit":
        from kernels.jit import compile_graph

        t0 = time.perf_counter()
        c = compile_graph(graph)
        return (lambda xs: c.plan(list(xs))), time.perf_counter() - t0
    return (lambda xs: eval_graph_flat(graph, list(xs))), 0.0


def paired_ratio(fn, base, args, reps=5):
    """Median run time of ``fn`` and median of its ratio to ``base``, timed alternately so that
    load from other processes hits both alike."""
    times, ratios = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        base(args)
        t1 = time.perf_counter()
        fn(args)
        t2 = time.perf_counter()
        times.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(times), statistics.median(ratios)


def timed_run(fn, args, reps=3):
    times = []
    out = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn(args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


# ---------------------------------------------------------------------------------------------
# Part 1: k-th derivatives


def sciml_nested_grad(k):
    g = f_np
    for _ in range(k):
        g = _elementwise_grad(g)
    return g


def _elementwise_grad(h):
    # f is applied elementwise, so the gradient of the sum is the elementwise derivative.
    return grad(lambda x: h(x).sum())


def sciml_nested_jvp(k):
    g = f_np
    for _ in range(k):
        g = _jvp_once(g)
    return g


def _jvp_once(h):
    return lambda x: jvp(h, (x,), (snp.ones_like(x),))[1]


def sciml_graph(method, k, x):
    """(graph, seconds to trace and optimise it)."""
    t0 = time.perf_counter()
    if method == "jet":
        g = derivatives_graph(f_np, x, k)
        out_index = k
    else:
        fn = sciml_nested_grad(k) if method == "grad" else sciml_nested_jvp(k)
        g = optimize(make_graph(fn, x))
        out_index = 0
    return g, out_index, time.perf_counter() - t0


def bench_sciml(method, kmax, x, ref, run_f):
    rows = []
    for k in range(1, kmax + 1):
        g, idx, t_trace = sciml_graph(method, k, x)
        run, t_compile = prepare(g)
        out = run([x])  # the first call may load kernels from the disk cache
        t_run, ratio = paired_ratio(run, run_f, [x])
        err = _rel_err(out[idx], ref[k]) if ref is not None else float("nan")
        rows.append((k, t_trace, t_compile, t_run, ratio, g.count_nodes(), err))
        if t_trace > TRACE_BUDGET_S:
            break
    return rows


def _rel_err(got, want):
    return float(np.max(np.abs(np.asarray(got) - want)) / max(1.0, np.max(np.abs(want))))


def jax_methods():
    try:
        import jax
        import jax.numpy as jnp
        from jax.experimental import jet as jjet
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)

    def f(x):
        return jnp.sin(x) * jnp.exp(-x ** 2 / 2) + x ** 3

    def nested_grad(k):
        g = f
        for _ in range(k):
            g = jax.grad(g)
        return jax.vmap(g)

    def nested_jvp(k):
        g = f
        for _ in range(k):
            g = (lambda h: lambda x: jax.jvp(h, (x,), (jnp.ones_like(x),))[1])(g)
        return g

    def jet_k(k):
        def fn(x):
            series = [jnp.ones_like(x)] + [jnp.zeros_like(x)] * (k - 1)
            _, ys = jjet.jet(f, (x,), (series,))
            return ys[k - 1]

        return fn

    return jax, {"grad": nested_grad, "jvp": nested_jvp, "jet": jet_k}


def bench_jax(jax, make, kmax, x, run_f):
    rows = []
    for k in range(1, kmax + 1):
        fn = make(k)
        t0 = time.perf_counter()
        traced = jax.jit(fn).trace(x)
        t_trace = time.perf_counter() - t0
        n_eqns = len(traced.jaxpr.eqns) if hasattr(traced, "jaxpr") else _count_jaxpr(jax, fn, x)
        t0 = time.perf_counter()
        compiled = traced.lower().compile()
        t_compile = time.perf_counter() - t0
        compiled(x).block_until_ready()

        def run(args, c=compiled):
            return c(args[0]).block_until_ready()

        t_run, ratio = paired_ratio(run, run_f, [x])
        rows.append((k, t_trace, t_compile, t_run, ratio, n_eqns, float("nan")))
        if t_trace + t_compile > TRACE_BUDGET_S:
            break
    return rows


def _count_jaxpr(jax, fn, x):
    def count(jaxpr):
        n = 0
        for e in jaxpr.eqns:
            n += 1
            for p in e.params.values():
                if hasattr(p, "jaxpr"):
                    n += count(p.jaxpr)
        return n

    return count(jax.make_jaxpr(fn)(x).jaxpr)


def reference_derivatives(x, kmax):
    """Exact derivatives by sympy (lambdified to numpy) for the error column."""
    import sympy as sp

    s = sp.Symbol("x")
    d = sp.sin(s) * sp.exp(-s ** 2 / 2) + s ** 3
    out = []
    for _ in range(kmax + 1):
        out.append(sp.lambdify(s, d, "numpy")(x) * np.ones_like(x))
        d = sp.diff(d, s)
    return out


def print_rows(title, rows):
    print(f"\n{title}")
    print(f"{'k':>3} {'trace s':>9} {'compile s':>10} {'run s':>9} {'run/f':>7} {'nodes':>7} "
          f"{'rel.err':>9}")
    for k, tt, tc, tr, ratio, n, err in rows:
        print(f"{k:>3} {tt:>9.3f} {tc:>10.3f} {tr:>9.4f} {ratio:>7.1f} {n:>7} {err:>9.1e}")


def part1(points, kmax, with_jax):
    x = np.linspace(-3.0, 3.0, points)
    np_time, _ = timed_run(lambda a: f_np(a[0]), [x], reps=5)
    run_f, _ = prepare(optimize(make_graph(f_np, x)))
    run_f([x])
    f_time, _ = timed_run(run_f, [x], reps=5)
    print(f"\n== k-th derivative of sin(x) exp(-x^2/2) + x^3 over {points} points ==\n"
          f"sciml backend: {BACKEND}; f itself: {f_time * 1e3:.1f} ms there, "
          f"{np_time * 1e3:.1f} ms in numpy; run/f: median ratio to the backend's f, timed "
          "alternately")
    ref = reference_derivatives(x, kmax)
    for method in ("jet", "jvp", "grad"):
        print_rows(f"sciml nested {method}" if method != "jet" else "sciml jet (derivatives)",
                   bench_sciml(method, kmax, x, ref, run_f))
    if with_jax is not None:
        jax, makers = with_jax
        xj = jax.numpy.asarray(x)
        fj = jax.jit(lambda v: jax.numpy.sin(v) * jax.numpy.exp(-v ** 2 / 2) + v ** 3)
        fj(xj).block_until_ready()
        jf_time, _ = timed_run(lambda a: fj(a[0]).block_until_ready(), [xj], reps=5)
        print(f"\n(JAX's jitted f: {jf_time * 1e3:.1f} ms; run/f below is relative to it)")
        run_jf = lambda a: fj(a[0]).block_until_ready()  # noqa: E731
        for method in ("jet", "jvp", "grad"):
            print_rows(f"JAX nested {method}" if method != "jet" else "JAX jet",
                       bench_jax(jax, makers[method], kmax, xj, run_jf))


# ---------------------------------------------------------------------------------------------
# Part 2: Hessian and Hessian-vector product


def part2(n, with_jax):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, n)) / np.sqrt(n)
    x, v = rng.normal(size=n), rng.normal(size=n)

    def F(z):
        return np.sum(np.log(np.cosh(a @ z)))

    print(f"\n== Hessian and HVP of sum(log(cosh(A x))), A {n}x{n} (sciml backend: {BACKEND}) ==")
    s = 1 / np.cosh(a @ x) ** 2
    h_ref = a.T @ (s[:, None] * a)

    def two_products(_):
        return a @ a, a @ a

    def hvp_analytic(_):
        return a.T @ ((1 / np.cosh(a @ x) ** 2) * (a @ v))

    t_mm, _ = timed_run(two_products, None)
    t_h, _ = timed_run(lambda _: a.T @ ((1 / np.cosh(a @ x) ** 2)[:, None] * a), None)
    t_hvp, _ = timed_run(hvp_analytic, None)
    print(f"two dense {n}x{n} matrix products (numpy): {t_mm * 1e3:8.2f} ms")
    print(f"analytic Hessian A^T diag(s) A (numpy):   {t_h * 1e3:8.2f} ms")
    print(f"analytic HVP (numpy):                     {t_hvp * 1e3:8.2f} ms")
    print("ratios: median of alternate timings against the reference named in brackets")
    cases = {
        "hessian": (lambda z: hessian(F)(z), [x], h_ref, two_products, "2 matmuls"),
        "hvp": (lambda z, w: hvp(F, (z,), (w,)), [x, v], h_ref @ v, hvp_analytic,
                "analytic HVP"),
        "laplacian": (lambda z: laplacian(F)(z), [x], np.trace(h_ref), two_products,
                      "2 matmuls"),
    }
    for name, (fn, args, want, ref, ref_name) in cases.items():
        t0 = time.perf_counter()
        g = optimize(make_graph(fn, *args))
        t_trace = time.perf_counter() - t0
        run, t_compile = prepare(g)
        out = run(args)
        t_run, ratio = paired_ratio(run, ref, args)
        err = _rel_err(out[0], want)
        print(f"sciml {name:<10} trace {t_trace:6.3f} s  compile {t_compile:6.3f} s  run "
              f"{t_run * 1e3:8.2f} ms  = {ratio:5.2f} x [{ref_name}]  nodes "
              f"{g.count_nodes():>3}  rel.err {err:.1e}")
    if with_jax is not None:
        jax = with_jax[0]
        jnp = jax.numpy

        def Fj(z):
            return jnp.sum(jnp.log(jnp.cosh(jnp.asarray(a) @ z)))

        jcases = {
            "hessian": (jax.hessian(Fj), [x], two_products, "2 matmuls"),
            "hvp": (lambda z, w: jax.jvp(jax.grad(Fj), (z,), (w,))[1], [x, v], hvp_analytic,
                    "analytic HVP"),
        }
        for name, (fn, args, ref, ref_name) in jcases.items():
            t0 = time.perf_counter()
            c = jax.jit(fn).lower(*args).compile()
            t_c = time.perf_counter() - t0
            c(*args).block_until_ready()
            t_run, ratio = paired_ratio(lambda xs, c=c: c(*xs).block_until_ready(), ref, args)
            print(f"JAX   {name:<10} trace+compile {t_c:6.3f} s             run "
                  f"{t_run * 1e3:8.2f} ms  = {ratio:5.2f} x [{ref_name}]")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10 ** 6)
    ap.add_argument("--kmax", type=int, default=16)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--part", choices=("1", "2", "all"), default="all")
    args = ap.parse_args(argv)
    with_jax = None if args.no_jax else jax_methods()
    if with_jax is None and not args.no_jax:
        print("(JAX is not installed: pip install jax for the baseline columns)")
    print(f"cores: {os.cpu_count()}, numpy {np.__version__}"
          + (f", jax {with_jax[0].__version__}" if with_jax else ""))
    if args.part in ("1", "all"):
        part1(args.points, args.kmax, with_jax)
    if args.part in ("2", "all"):
        part2(args.n, with_jax)


if __name__ == "__main__":
    main()
