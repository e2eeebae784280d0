"""GOMD: time per internal step, sciml.jit against the plain-numpy step, in one run.

For each grid (65x49x21, 513x259x31) and precision (float64, float32): the same step code run
eagerly on numpy arrays (``model.step``) and as sciml.jit plans (``compiled.CompiledStep``),
interleaved (numpy, jit, numpy, jit, ...), median over ``--steps`` steps after a warm-up.
Also: first-call latency of the compiled step (compile, or load from the disk cache), the
bytes its kernels move per internal step (every kernel's inputs and outputs once, the
external loop body ``isplit - 1`` times) and that volume divided by the measured STREAM triad
bandwidth, i.e. the time a purely bandwidth-bound step would take. Run::

    NUMBA_NUM_THREADS=2 python -m bench.gomd [--steps 7] [--grids 65x49x21,513x259x31]
    python -m bench.gomd --backend gpu     # the same plans on a CUDA device (cupy)

With ``--backend gpu`` each step is timed up to the device's completion, the state stays on
the device between steps, and the bandwidth is the device's own triad (cupy); the numpy step
still runs on the host CPU.

Each configuration's result is appended as one JSON line to ``--out`` as soon as it is done.
``--profile N`` lists instead the N slowest kernels of one step, each run alone on the step's
arrays (``bench/profile.py``), and those of the external loop's body.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

THREADS = os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import numba  # noqa: E402
import numpy as np  # noqa: E402

from cases.gomd import init_state, load_config, make_params, step  # noqa: E402
from cases.gomd.compiled import CompiledStep, host_state, state_arrays  # noqa: E402
from kernels.fuse import Cluster  # noqa: E402
from kernels.jit import compile_graph  # noqa: E402

MINDSPORE_GPU_MS = 17.0  # MindSpore's GPU time per step at 65x49x21 (BENCH-ANCHORS.md)


@numba.njit(parallel=True, cache=True)
def _triad(b, c, s, a):
    for i in numba.prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


def triad_bandwidth(n: int = 1 << 25, reps: int = 7) -> float:
    """STREAM triad bytes/s (3 arrays of float64 per point), median of ``reps``."""
    b, c, a = np.random.rand(n), np.random.rand(n), np.empty(n)
    _triad(b, c, 3.0, a)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        _triad(b, c, 3.0, a)
        times.append(time.perf_counter() - t)
    return 3 * 8 * n / float(np.median(times))


def device_triad_bandwidth(n: int = 1 << 27, reps: int = 7) -> float:
    """The CUDA device's triad bytes/s (cupy), median of ``reps``."""
    import cupy as cp

    triad = cp.ElementwiseKernel("float64 b, float64 c, float64 s", "float64 a",
                                 "a = b + s * c", "sciml_triad")
    b, c = cp.random.rand(n), cp.random.rand(n)
    a = triad(b, c, 3.0)
    times = []
    for _ in range(reps):
        cp.cuda.Device().synchronize()
        t = time.perf_counter()
        triad(b, c, 3.0, a)
        cp.cuda.Device().synchronize()
        times.append(time.perf_counter() - t)
    return 3 * 8 * n / float(np.median(times))


def _synchronize(backend: str):
    if backend == "gpu":
        import cupy as cp

        cp.cuda.Device().synchronize()


def kernel_bytes(kernels) -> int:
    """Bytes one run of each kernel reads and writes (each buffer once)."""
    total = 0
    for k in kernels:
        for b in list(k.inputs) + list(k.outputs):
            total += int(np.prod(b.shape)) * np.dtype(str(b.dtype)).itemsize
    return total


def bytes_per_step(fast: CompiledStep, state, isplit: int) -> int:
    """Kernel traffic of one internal step: the step's own kernels and routines once, the
    external loop body's isplit - 1 times."""
    c = fast.lower(state)
    total = kernel_bytes([*c.kernels.values(), *c.routines.values()])
    for g in c.groups:
        if isinstance(g, Cluster) or g.node.prim.name != "fori_loop":
            continue
        body = compile_graph(g.node.params["body"], fast.backend, build=False)
        total += (isplit - 1) * kernel_bytes([*body.kernels.values(), *body.routines.values()])
    return total


def run_config(grid: str, precision: str, nsteps: int, bandwidth: float,
               backend: str = "cpu") -> dict:
    im, jm, kb = (int(x) for x in grid.split("x"))
    cfg = load_config("classic", im=im, jm=jm, kb=kb, precision=precision)
    params = make_params(cfg)
    fast = CompiledStep(params, backend=backend)
    s_np = step(init_state(params), params)
    s_jit = dict(s_np)
    t = time.perf_counter()
    s_jit = fast(s_jit)
    _synchronize(backend)
    first = time.perf_counter() - t
    s_np = step(s_np, params)
    t_np, t_jit = [], []
    for _ in range(nsteps):  # interleaved, so both see the same machine load
        t = time.perf_counter()
        s_np = step(s_np, params)
        t_np.append(time.perf_counter() - t)
        t = time.perf_counter()
        s_jit = fast(s_jit)
        _synchronize(backend)
        t_jit.append(time.perf_counter() - t)
    moved = bytes_per_step(fast, s_jit, cfg.isplit)
    h_jit = host_state(s_jit)
    rel = max(float(np.max(np.abs(np.asarray(s_np[k], np.float64) - h_jit[k])))
              / max(float(np.max(np.abs(s_np[k]))), 1e-300) for k in ("u", "v", "el", "t"))
    ms_np, ms_jit = 1e3 * float(np.median(t_np)), 1e3 * float(np.median(t_jit))
    return {"grid": grid, "precision": precision, "backend": backend, "steps": nsteps,
            "numpy_ms": ms_np, "jit_ms": ms_jit, "speedup": ms_np / ms_jit,
            "jit_points_per_s": im * jm * kb / (ms_jit * 1e-3),
            "first_call_s": first, "bytes_per_step": moved,
            "bandwidth_bound_ms": 1e3 * moved / bandwidth,
            "fraction_of_bandwidth_bound": (moved / bandwidth) / (ms_jit * 1e-3),
            "max_rel_diff_jit_vs_numpy": rel}


def profile_config(grid: str, precision: str, top: int) -> str:
    """The ``top`` slowest steps of one compiled step, and of its external loop's body."""
    from bench.profile import profile, table

    im, jm, kb = (int(x) for x in grid.split("x"))
    params = make_params(load_config("classic", im=im, jm=jm, kb=kb, precision=precision))
    fast = CompiledStep(params)
    state = fast(fast(step(init_state(params), params)))
    arrays = state_arrays(state)
    arrays.pop("iint")
    rows, bodies = profile(fast.lower(state), arrays, fast.fields)
    out = [f"--- {grid} {precision}: kernels run alone, best of 3 after a warm-up ---",
           table(rows, top)]
    for where, body in bodies.items():
        out += [f"--- loop body of step {where}, one iteration ---", table(body, top)]
    return "\n".join(out)


def _device_name(backend: str) -> str:
    if backend != "gpu":
        return "cpu"
    import cupy as cp

    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.gomd")
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--grids", default="65x49x21,513x259x31")
    ap.add_argument("--precisions", default="float64,float32")
    ap.add_argument("--out", default="gomd-bench.jsonl")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "gpu"],
                    help="where the compiled step runs (numpy always runs on the host)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="instead of timing steps, list the N slowest kernels of one step "
                         "(each run alone, bench/profile.py) per grid and precision")
    args = ap.parse_args(argv)
    if args.profile:
        for grid in args.grids.split(","):
            for prec in args.precisions.split(","):
                print(profile_config(grid, prec, args.profile), flush=True)
        return
    bw = device_triad_bandwidth() if args.backend == "gpu" else triad_bandwidth()
    head = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpus": os.cpu_count(), "numba_threads": THREADS, "backend": args.backend,
            "device": _device_name(args.backend), "triad_GBps": bw / 1e9,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(head), flush=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(head) + "\n")
    for grid in args.grids.split(","):
        for prec in args.precisions.split(","):
            r = run_config(grid, prec, args.steps, bw, args.backend)
            print(f"{grid} {prec}: numpy {r['numpy_ms']:.1f} ms, jit {r['jit_ms']:.2f} ms "
                  f"({r['speedup']:.1f}x), first call {r['first_call_s']:.1f} s, "
                  f"{r['bytes_per_step'] / 1e6:.1f} MB/step -> bandwidth bound "
                  f"{r['bandwidth_bound_ms']:.2f} ms ({100 * r['fraction_of_bandwidth_bound']:.0f}"
                  f"% of it reached); target at 65x49x21: < {MINDSPORE_GPU_MS} ms", flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
