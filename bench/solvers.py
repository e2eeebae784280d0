"""Solver benchmarks: sciml.solve against numpy/scipy written by hand, side by side.

1. 2-D heat equation on 1024² nodes, 100 explicit (forward Euler) steps, Dirichlet boundaries:
   a numpy slice stencil vs ``sciml.solve`` (end to end, first call and repeated call) vs the
   same step written with sciml.numpy and ``sciml.jit`` (the engine without solve's set-up).
   Devito runs too when it is installed.
2. 2-D Poisson on 1025² nodes: ``sciml.solve(method="multigrid")`` (MG-preconditioned CG on the
   assembled operator) vs scipy's sparse direct solve of the same 5-point system.

Run: ``NUMBA_NUM_THREADS=2 python -m bench.solvers`` (``--small`` for a quick check).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as spla
import sympy as sp

import sciml
import sciml.numpy as snp

t, x, y, nu = sp.symbols("t x y nu")
u = sp.Function("u")


def timed(fn, repeat=3):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


# ---------------------------------------------------------------------------------------------
# 1. Heat


def heat_numpy(u0, steps, r):
    v = u0.copy()
    for _ in range(steps):
        lap = v[2:, 1:-1] + v[:-2, 1:-1] + v[1:-1, 2:] + v[1:-1, :-2] - 4 * v[1:-1, 1:-1]
        v[1:-1, 1:-1] += r * lap
    return v


def heat_sciml_step(steps, r):
    def run(v):
        def step(i, w):
            inner = w[1:-1, 1:-1] + r * (w[2:, 1:-1] + w[:-2, 1:-1] + w[1:-1, 2:]
                                         + w[1:-1, :-2] - 4 * w[1:-1, 1:-1])
            return snp.pad(inner, 1)

        return sciml.fori_loop(0, steps, step, v)

    return sciml.jit(run)


def heat_solve(n, steps, dt):
    return sciml.solve(sp.Eq(u(t, x, y).diff(t), nu * (u(t, x, y).diff(x, 2)
                                                      + u(t, x, y).diff(y, 2))),
                       u, t=(0, steps * dt), domain={x: (0, 1), y: (0, 1)}, grid=n,
                       ic=sp.sin(sp.pi * x) * sp.sin(sp.pi * y),
                       bc={x: ("dirichlet", 0, 0), y: ("dirichlet", 0, 0)},
                       params={nu: 1.0}, method="euler", dt=dt, t_eval=[0, steps * dt],
                       progress=False)[u][-1]


def bench_heat(n, steps):
    h = 1.0 / (n - 1)
    dt = 0.2 * h * h
    xs = np.linspace(0, 1, n)
    u0 = np.sin(np.pi * xs)[:, None] * np.sin(np.pi * xs)[None, :]
    rows = []
    t_np, ref = timed(lambda: heat_numpy(u0, steps, dt / h**2))
    rows.append(("numpy slices", t_np, 1.0))
    jitted = heat_sciml_step(steps, dt / h**2)
    t0 = time.perf_counter()
    first = jitted(u0)
    cold = time.perf_counter() - t0
    t_jit, out = timed(lambda: jitted(u0))
    assert np.allclose(out, ref, rtol=1e-10, atol=1e-12), "jit step disagrees with numpy"
    rows.append((f"sciml.jit step (first call {cold:.2f} s)", t_jit, t_np / t_jit))
    del first
    t0 = time.perf_counter()
    sol = heat_solve(n, steps, dt)
    cold = time.perf_counter() - t0
    t_solve, sol = timed(lambda: heat_solve(n, steps, dt), repeat=2)
    assert np.allclose(sol, ref, rtol=1e-9, atol=1e-12), "solve disagrees with numpy"
    rows.append((f"sciml.solve end to end (first call {cold:.2f} s)", t_solve, t_np / t_solve))
    try:
        rows.append(devito_heat(n, steps, dt, u0, ref, t_np))
    except ImportError:
        rows.append(("devito (not installed)", float("nan"), float("nan")))
    return rows


def devito_heat(n, steps, dt, u0, ref, t_np):
    from devito import Eq, Grid, Operator, TimeFunction, solve

    grid = Grid(shape=(n, n), extent=(1.0, 1.0))
    f = TimeFunction(name="f", grid=grid, space_order=2)
    f.data[0] = u0
    eq = Eq(f.dt, f.laplace)
    op = Operator([Eq(f.forward, solve(eq, f.forward))])

    def run():
        f.data[0] = u0
        op.apply(time_M=steps - 1, dt=dt)
        return f.data[steps % 2]

    t_dv, _ = timed(run)
    return ("devito", t_dv, t_np / t_dv)


# ---------------------------------------------------------------------------------------------
# 2. Poisson


def poisson_scipy(n):
    m = n - 2
    h = 1.0 / (n - 1)
    d1 = sps.diags([1, -2, 1], [-1, 0, 1], shape=(m, m)) / h**2
    a = sps.kronsum(d1, d1, format="csc")
    xs = np.linspace(0, 1, n)[1:-1]
    f = (-2 * np.pi**2 * np.sin(np.pi * xs)[:, None] * np.sin(np.pi * xs)[None, :]).ravel()
    return spla.spsolve(a, f).reshape(m, m)


def poisson_solve(n, method):
    return sciml.solve(sp.Eq(u(x, y).diff(x, 2) + u(x, y).diff(y, 2),
                             -2 * sp.pi**2 * sp.sin(sp.pi * x) * sp.sin(sp.pi * y)), u,
                       domain={x: (0, 1), y: (0, 1)}, grid=n,
                       bc={x: ("dirichlet", 0, 0), y: ("dirichlet", 0, 0)}, method=method)[u]


def bench_poisson(n):
    t_sp, ref = timed(lambda: poisson_scipy(n), repeat=1)
    rows = [("scipy spsolve (5-point, direct)", t_sp, 1.0)]
    t_mg, sol = timed(lambda: poisson_solve(n, "multigrid"), repeat=1)
    err = np.abs(sol[1:-1, 1:-1] - ref).max()
    rows.append((f"sciml.solve multigrid-CG (|diff| {err:.1e})", t_mg, t_sp / t_mg))
    return rows


def table(title, rows):
    print(f"\n{title}")
    print(f"{'implementation':58s} {'time [s]':>10s} {'speed-up vs baseline':>22s}")
    for name, sec, ratio in rows:
        print(f"{name:58s} {sec:10.4f} {ratio:22.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="256² grids, for a quick check")
    args = ap.parse_args()
    n_heat, n_poisson = (256, 257) if args.small else (1024, 1025)
    table(f"2-D heat, {n_heat}² nodes, 100 forward-Euler steps", bench_heat(n_heat, 100))
    table(f"2-D Poisson, {n_poisson}² nodes", bench_poisson(n_poisson))


if __name__ == "__main__":
    main()
