# ruff: noqa: B023  (each timing lambda is used within its loop iteration)
"""Fused kernels against numpy, a hand-written numba loop, JAX, PyTorch, torch.compile, Devito.

Workloads (sizes halve with ``--small``):
  1. STREAM triad a = b + s*c, 2^25 float64 (the bandwidth limit B)
  2. y = exp(-x^2) sin(3x) + 0.5 tanh(x), 2^24 float64 and float32
  3. 3-D 7-point heat step, 256^3 float32 and float64, 10 steps (zero boundary)
  4. sum((2x + 1)^2): a reduction fused with an elementwise map, 2^24 float64

Every implementation present runs in the same process, interleaved (A B A B ...), median of
``--reps`` runs after a warm-up. Prints time, GB/s or points/s, the fraction of the measured
triad bandwidth, each baseline's time relative to sciml, and sciml's first-call latency in a
fresh process with an empty and with a warm disk cache. Run::

    NUMBA_NUM_THREADS=2 python -m bench.kernels [--small] [--reps 7] [--heat-only]

``--heat-only`` runs the triad (for B) and the heat chain only; ``SCIML_WAVEFRONT=off`` times
the heat chain one kernel per step instead of one wavefront sweep (kernels/wavefront.py).

Optional baselines: ``jax``, ``torch``, ``devito`` (each skipped when not importable).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

THREADS = os.environ.setdefault("NUMBA_NUM_THREADS", "2")
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, THREADS)
os.environ.setdefault("DEVITO_LANGUAGE", "openmp")
os.environ.setdefault("DEVITO_LOGGING", "ERROR")

import numba  # noqa: E402
import numpy as np  # noqa: E402

import sciml  # noqa: E402, F401
import sciml.numpy as snp  # noqa: E402
from kernels.jit import jit  # noqa: E402

# ---------------------------------------------------------------------------------------------
# The programs, written once for sciml (plain numpy code, traced)


def triad(b, c, s):
    return b + s * c


def elementwise(x):
    return np.exp(-x * x) * np.sin(3.0 * x) + 0.5 * np.tanh(x)


def heat10(u, c):
    for _ in range(10):
        lap = (snp.shift(u, (1, 0, 0)) + snp.shift(u, (-1, 0, 0)) + snp.shift(u, (0, 1, 0))
               + snp.shift(u, (0, -1, 0)) + snp.shift(u, (0, 0, 1)) + snp.shift(u, (0, 0, -1)))
        u = u + c * (lap - 6.0 * u)
    return u


def sumsq(x):
    y = 2.0 * x + 1.0
    return (y * y).sum()


# ---------------------------------------------------------------------------------------------
# Hand-written numba loops


@numba.njit(parallel=True, fastmath=False)
def nb_triad(b, c, s, a):
    for i in numba.prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


@numba.njit(parallel=True)
def nb_elementwise(x, y):
    for i in numba.prange(x.shape[0]):
        v = x[i]
        y[i] = np.exp(-v * v) * np.sin(3.0 * v) + 0.5 * np.tanh(v)


@numba.njit(parallel=True)
def nb_heat_step(u, c, out):
    n0, n1, n2 = u.shape
    z = u.dtype.type(0)
    for i in numba.prange(n0):
        for j in range(n1):
            for k in range(n2):
                s = (u[i - 1, j, k] if i > 0 else z) + (u[i + 1, j, k] if i < n0 - 1 else z)
                s += (u[i, j - 1, k] if j > 0 else z) + (u[i, j + 1, k] if j < n1 - 1 else z)
                s += (u[i, j, k - 1] if k > 0 else z) + (u[i, j, k + 1] if k < n2 - 1 else z)
                out[i, j, k] = u[i, j, k] + c * (s - 6 * u[i, j, k])


def nb_heat10(u, c, bufs):
    a, b = bufs
    nb_heat_step(u, c, a)
    for _ in range(9):
        nb_heat_step(a, c, b)
        a, b = b, a
    return a


@numba.njit(parallel=True)
def nb_sumsq(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        y = 2.0 * x[i] + 1.0
        s += y * y
    return s


# ---------------------------------------------------------------------------------------------
# Baselines from other frameworks (each optional)


def _jax():
    try:
        os.environ.setdefault("JAX_ENABLE_X64", "1")
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
    except ImportError:
        return None

    def heat(u, c):
        for _ in range(10):
            p = jnp.pad(u, 1)
            lap = (p[:-2, 1:-1, 1:-1] + p[2:, 1:-1, 1:-1] + p[1:-1, :-2, 1:-1]
                   + p[1:-1, 2:, 1:-1] + p[1:-1, 1:-1, :-2] + p[1:-1, 1:-1, 2:])
            u = u + c * (lap - 6.0 * u)
        return u

    fns = {"triad": jax.jit(lambda b, c, s: b + s * c),
           "elementwise": jax.jit(lambda x: jnp.exp(-x * x) * jnp.sin(3.0 * x)
                                  + 0.5 * jnp.tanh(x)),
           "heat": jax.jit(heat), "sumsq": jax.jit(lambda x: jnp.sum((2.0 * x + 1.0) ** 2))}
    wrap = {k: (lambda f: lambda *a: f(*a).block_until_ready())(f) for k, f in fns.items()}
    return wrap, jnp.asarray


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(int(THREADS))

    def elementwise_t(x):
        return torch.exp(-x * x) * torch.sin(3.0 * x) + 0.5 * torch.tanh(x)

    def heat_t(u, c):
        for _ in range(10):
            p = torch.nn.functional.pad(u, (1, 1, 1, 1, 1, 1))
            lap = (p[:-2, 1:-1, 1:-1] + p[2:, 1:-1, 1:-1] + p[1:-1, :-2, 1:-1]
                   + p[1:-1, 2:, 1:-1] + p[1:-1, 1:-1, :-2] + p[1:-1, 1:-1, 2:])
            u = u + c * (lap - 6.0 * u)
        return u

    def sumsq_t(x):
        return torch.sum((2.0 * x + 1.0) ** 2)

    eager = {"triad": lambda b, c, s, out=None: torch.add(b, c, alpha=s, out=out),
             "elementwise": elementwise_t, "heat": heat_t, "sumsq": sumsq_t}
    compiled = {k: torch.compile(v) for k, v in eager.items() if k != "triad"}
    compiled["triad"] = torch.compile(lambda b, c, s: b + s * c)
    return eager, compiled, torch.from_numpy


def _devito_heat(n, dtype):
    try:
        from devito import Eq, Grid, Operator, TimeFunction
    except ImportError:
        return None
    grid = Grid(shape=(n, n, n), extent=(n - 1.0,) * 3, dtype=dtype)
    u = TimeFunction(name="u", grid=grid, space_order=2)
    op = Operator(Eq(u.forward, u + 0.1 * u.laplace))
    u.data[0] = np.random.default_rng(0).random((n,) * 3)
    op.apply(time_M=9, autotune="aggressive")
    return lambda: op.apply(time_M=9)


# ---------------------------------------------------------------------------------------------
# Timing


def interleaved(fns: dict, reps: int) -> dict:
    """Median seconds per implementation, runs interleaved A B C A B C ..."""
    for f in fns.values():
        f()  # warm-up (and compile)
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def report(title, med, work, unit, triad_bw=None, bytes_moved=None):
    print(f"\n### {title}\n")
    print(f"| implementation | median ms | {unit} | fraction of triad B | sciml speed-up |")
    print("|---|---:|---:|---:|---:|")
    ref = med.get("sciml", None)
    for k, t in med.items():
        rate = work / t
        frac = f"{bytes_moved / t / triad_bw:.2f}" if triad_bw and bytes_moved else ""
        ratio = f"{t / ref:.2f}x" if ref else ""
        print(f"| {k} | {t * 1e3:.2f} | {rate:.3g} | {frac} | {ratio} |")


def run(args):
    n_triad = 1 << (23 if args.small else 25)
    n_elem = 1 << (22 if args.small else 24)
    n_heat = 128 if args.small else 256
    rng = np.random.default_rng(0)
    jx, tc = _jax(), _torch()
    print(f"threads={THREADS} numba={numba.__version__} numpy={np.__version__} "
          f"jax={'yes' if jx else 'no'} torch={'yes' if tc else 'no'}")

    # (1) triad
    b, c = rng.random(n_triad), rng.random(n_triad)
    a = np.empty_like(b)
    sj, sj_fresh = jit(triad, reuse_outputs=True), jit(triad)
    fns = {"sciml": lambda: sj(b, c, 3.0), "sciml (fresh output)": lambda: sj_fresh(b, c, 3.0),
           "numpy": lambda: np.add(b, 3.0 * c, out=a), "numba loop": lambda: nb_triad(b, c, 3.0, a)}
    if jx:
        jb, jc = jx[1](b), jx[1](c)
        fns["jax jit"] = lambda: jx[0]["triad"](jb, jc, 3.0)
    if tc:
        tb, tcc, ta = tc[2](b), tc[2](c), tc[2](a)
        fns["torch eager"] = lambda: tc[0]["triad"](tb, tcc, 3.0, out=ta)
        fns["torch.compile"] = lambda: tc[1]["triad"](tb, tcc, 3.0)
    med = interleaved(fns, args.reps)
    bw = 3 * 8 * n_triad / min(med["numba loop"], med["sciml"])
    report(f"STREAM triad, 2^{n_triad.bit_length() - 1} float64 (B = {bw / 1e9:.1f} GB/s)",
           med, 3 * 8 * n_triad / 1e9, "GB/s", bw, 3 * 8 * n_triad)

    # (2) transcendental elementwise
    for dt in () if args.heat_only else ("float64", "float32"):
        x = rng.uniform(-3, 3, n_elem).astype(dt)
        y = np.empty_like(x)
        sj = jit(elementwise, reuse_outputs=True)
        fns = {"sciml": lambda: sj(x), "numpy": lambda: elementwise(x),
               "numba loop": lambda: nb_elementwise(x, y)}
        if jx:
            jx_x = jx[1](x)
            fns["jax jit"] = lambda: jx[0]["elementwise"](jx_x)
        if tc:
            tx = tc[2](x)
            fns["torch eager"] = lambda: tc[0]["elementwise"](tx)
            fns["torch.compile"] = lambda: tc[1]["elementwise"](tx)
        med = interleaved(fns, args.reps)
        report(f"exp(-x^2) sin(3x) + 0.5 tanh(x), 2^{n_elem.bit_length() - 1} {dt}", med,
               n_elem / 1e9, "Gpoints/s", bw, 2 * x.itemsize * n_elem)

    # (3) heat, 10 steps
    for dt in ("float32", "float64"):
        u = rng.random((n_heat,) * 3).astype(dt)
        cc = np.asarray(0.1, dt)
        sj = jit(heat10, reuse_outputs=True)
        bufs = (np.empty_like(u), np.empty_like(u))
        fns = {"sciml": lambda: sj(u, cc), "numba loop": lambda: nb_heat10(u, cc, bufs)}
        if os.environ.get("SCIML_WAVEFRONT", "auto") != "off":
            per_step = _per_step(heat10, u, cc)
            fns["sciml, one kernel per step"] = lambda: per_step(u, cc)
        if n_heat <= 128 or args.numpy_heat:
            fns["numpy"] = lambda: _np_heat10(u, cc)
        if jx:
            ju = jx[1](u)
            fns["jax jit"] = lambda: jx[0]["heat"](ju, cc)
        if tc:
            tu = tc[2](u)
            fns["torch eager"] = lambda: tc[0]["heat"](tu, 0.1)
            fns["torch.compile"] = lambda: tc[1]["heat"](tu, 0.1)
        dv = _devito_heat(n_heat, np.dtype(dt).type)
        if dv:
            fns["devito (autotuned)"] = dv
        # B again, interleaved with the heat runs: on a shared machine the load moves
        fns["B"] = lambda: nb_triad(b, c, 3.0, a)
        med = interleaved(fns, args.reps)
        bw_here = 3 * 8 * n_triad / med.pop("B")
        pts = 10 * n_heat ** 3
        report(f"3-D 7-point heat, {n_heat}^3 {dt}, 10 steps (B here {bw_here / 1e9:.1f} GB/s)",
               med, pts / 1e9, "Gpoints/s", bw_here, 10 * 2 * u.itemsize * n_heat ** 3)

    if args.heat_only:
        return
    # (4) fused reduction
    x = rng.random(n_elem)
    sj = jit(sumsq)
    fns = {"sciml": lambda: sj(x), "numpy": lambda: sumsq(x), "numba loop": lambda: nb_sumsq(x)}
    if jx:
        jx_x = jx[1](x)
        fns["jax jit"] = lambda: jx[0]["sumsq"](jx_x)
    if tc:
        tx = tc[2](x)
        fns["torch eager"] = lambda: tc[0]["sumsq"](tx)
        fns["torch.compile"] = lambda: tc[1]["sumsq"](tx)
    med = interleaved(fns, args.reps)
    report(f"sum((2x+1)^2), 2^{n_elem.bit_length() - 1} float64", med, n_elem / 1e9,
           "Gpoints/s", bw, 8 * n_elem)

    latency(args)


def _per_step(fun, *args):
    """``jit(fun)`` compiled without the wavefront pass: one kernel per step, for comparison."""
    old = os.environ.get("SCIML_WAVEFRONT")
    os.environ["SCIML_WAVEFRONT"] = "off"
    try:
        f = jit(fun, reuse_outputs=True)
        f.lower(*args)  # the pass reads the switch when it compiles
    finally:
        if old is None:
            del os.environ["SCIML_WAVEFRONT"]
        else:
            os.environ["SCIML_WAVEFRONT"] = old
    return f


def _np_heat10(u, c):
    for _ in range(10):
        p = np.pad(u, 1)
        lap = (p[:-2, 1:-1, 1:-1] + p[2:, 1:-1, 1:-1] + p[1:-1, :-2, 1:-1]
               + p[1:-1, 2:, 1:-1] + p[1:-1, 1:-1, :-2] + p[1:-1, 1:-1, 2:])
        u = u + c * (lap - 6.0 * u)
    return u


# ---------------------------------------------------------------------------------------------
# First-call latency in a fresh process: empty disk cache, then warm disk cache

LATENCY_CASES = {
    "triad": "jit(triad)(np.ones(1 << 20), np.ones(1 << 20), 3.0)",
    "elementwise f32": "jit(elementwise)(np.ones(1 << 20, np.float32))",
    "heat f32": "jit(heat10)(np.ones((64, 64, 64), np.float32), np.float32(0.1))",
    "sumsq": "jit(sumsq)(np.ones(1 << 20))",
}


def latency(args):
    print("\n### sciml first-call latency (fresh process; import time excluded)\n")
    print("numba's one-time set-up of its CPU target (first compile or cache load in a process)"
          " is counted in the first two columns, excluded from the last\n")
    print("| program | kernels | cold (empty cache) s | warm disk cache s | warm cache, numba "
          "initialised s |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        for name, call in LATENCY_CASES.items():
            cold = _latency_once(call, d)
            warm = _latency_once(call, d)
            ready = _latency_once(call, d, numba_ready=True)
            print(f"| {name} | {cold[1]} | {cold[0]:.2f} | {warm[0]:.2f} | {ready[0]:.2f} |")


def _latency_once(call, cache_dir, numba_ready=False):
    init = "numba.njit(lambda v: v + 1)(1)\n" if numba_ready else ""
    code = ("import time, numpy as np\nfrom bench.kernels import *\n" + init +
            f"t0 = time.perf_counter()\nr = {call}\nt = time.perf_counter() - t0\n"
            f"print(t, {call.split(')(')[0]}).lower({call.split(')(', 1)[1]}.count_kernels())")
    env = dict(os.environ, SCIML_CACHE_DIR=cache_dir)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                         text=True, timeout=600)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    t, k = out.stdout.split()[-2:]
    return float(t), int(k)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="smaller sizes (quick check)")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--numpy-heat", action="store_true", help="also time numpy on 256^3")
    p.add_argument("--latency-only", action="store_true", help="only the first-call latency")
    p.add_argument("--heat-only", action="store_true", help="only the triad and the heat chain")
    a = p.parse_args()
    latency(a) if a.latency_only else run(a)
