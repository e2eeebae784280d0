"""Benchmark: kernels.vmath against libm inside numba loops and against numpy.

2**24 elements, float64 and float32, for exp, sin, tanh and y = exp(-x**2)*sin(3x) + 0.5*tanh(x).
Three variants per case: numpy, a numba prange loop calling np.* (scalar libm), and the same
loop calling kernels.vmath. Median of REPS runs after a warm-up, variants interleaved so that
machine noise hits all alike. Run: NUMBA_NUM_THREADS=2 python -m bench.vmath
"""

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from kernels.vmath import VMATH  # noqa: E402

N = 2**24
REPS = 7


def _loop(f):
    @numba.njit(parallel=True)
    def k(x, out):
        for i in numba.prange(x.size):
            out[i] = f(x[i])

    return k


def _combo(exp, sin, tanh, dt):
    three, half = dt(3), dt(0.5)

    @numba.njit(inline="always")
    def f(x):
        return exp(-x * x) * sin(three * x) + half * tanh(x)

    return f


def _libm(name):
    fn = {"exp": np.exp, "sin": np.sin, "tanh": np.tanh}[name]

    @numba.njit(inline="always")
    def f(x):
        return fn(x)

    return f


def _numpy(name, dt):
    three, half = dt(3), dt(0.5)
    if name == "combo":
        return lambda x, out: np.add(np.exp(-x * x) * np.sin(three * x), half * np.tanh(x), out=out)
    fn = getattr(np, name)
    return lambda x, out: fn(x, out=out)


def variants(name, dt):
    """name -> {'numpy', 'numba libm', 'numba vmath'} callables f(x, out)."""
    d = np.dtype(dt).name
    if name == "combo":
        lib = _combo(_libm("exp"), _libm("sin"), _libm("tanh"), dt)
        vm = _combo(VMATH["exp"][d], VMATH["sin"][d], VMATH["tanh"][d], dt)
    else:
        lib, vm = _libm(name), VMATH[name][d]
    return {"numpy": _numpy(name, dt), "numba libm": _loop(lib), "numba vmath": _loop(vm)}


def bench(name, dt):
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, N).astype(dt)
    out = np.empty_like(x)
    vs = variants(name, dt)
    times = {k: [] for k in vs}
    ref = None
    for k, f in vs.items():  # warm-up (compiles) and agreement check
        f(x, out)
        ref = out.copy() if ref is None else ref
        assert np.allclose(out, ref, rtol=1e-5, atol=1e-6), (name, k)
    for _ in range(REPS):
        for k, f in vs.items():
            t = time.perf_counter()
            f(x, out)
            times[k].append(time.perf_counter() - t)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def main():
    print(f"N = 2**24, NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, median of {REPS}")
    head = f"{'case':<8}{'dtype':<9}{'numpy ms':>10}{'libm ms':>10}{'vmath ms':>10}"
    print(head + f"{'libm/vmath':>12}{'numpy/vmath':>13}")
    for dt in (np.float64, np.float32):
        for name in ("exp", "sin", "tanh", "combo"):
            t = bench(name, dt)
            a, b, c = t["numpy"], t["numba libm"], t["numba vmath"]
            print(
                f"{name:<8}{np.dtype(dt).name:<9}{a:>10.1f}{b:>10.1f}{c:>10.1f}"
                f"{b / c:>12.2f}{a / c:>13.2f}"
            )


if __name__ == "__main__":
    main()
