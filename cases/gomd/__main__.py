"""Command line: ``python -m cases.gomd [--days D] [--preset P] [--grid IMxJMxKB] ...``.

``--backend cpu`` (default) runs the step as sciml.jit plans (``compiled.CompiledStep``);
``--backend numpy`` runs the same code eagerly; ``--bench [STEPS]`` only times steps.

Runs the seamount case with a progress bar, prints pom2k's diagnostics every output
interval, writes netCDF and PNG plots to ``--out``, checkpoints every ``--checkpoint-every``
internal steps, and restarts from ``--restart``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from cases.gomd import diagnostics, guard, plots
from cases.gomd import io as gio
from cases.gomd.compiled import CompiledStep, host_state
from cases.gomd.config import PRESETS, load_config, parse_grid
from cases.gomd.model import init_state, make_params, step


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m cases.gomd",
                                 description="GOMD seamount ocean model (pom2k / GOMO).")
    ap.add_argument("--days", type=float, default=None, help="model days to run (default 1)")
    ap.add_argument("--preset", default="classic", choices=sorted(PRESETS))
    ap.add_argument("--grid", default=None, help="IMxJMxKB, default 65x49x21")
    ap.add_argument("--config", default=None, help="TOML file of settings (Config fields)")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "gpu", "numpy"],
                    help="cpu: sciml.jit fused kernels (default); gpu: sciml.jit's GPU "
                    "backend; numpy: the eager plain-array reference")
    ap.add_argument("--precision", default=None, choices=["float64", "float32"])
    ap.add_argument("--pressure-gradient", default=None, choices=["second", "mccalpin"],
                    help="baroclinic pressure gradient: second (pom2k baropg, default) or "
                    "mccalpin (fourth-order horizontal differences, McCalpin 1994)")
    ap.add_argument("--out", default="gomd-out", help="output folder")
    ap.add_argument("--checkpoint-every", type=int, default=0,
                    help="internal steps between checkpoints (0: only at the end)")
    ap.add_argument("--restart", default=None, help="checkpoint file to continue from")
    ap.add_argument("--output-every", type=float, default=None,
                    help="diagnostics/netCDF interval in days (default 1/24)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--bench", type=int, nargs="?", const=20, default=None, metavar="STEPS",
                    help="time STEPS internal steps (default 20) after a warm-up and print "
                    "ms per step and grid points per second; writes nothing")
    return ap.parse_args(argv)


def build_config(args):
    grid = parse_grid(args.grid) if args.grid else (None, None, None)
    return load_config(args.preset, args.config, days=args.days, precision=args.precision,
                       im=grid[0], jm=grid[1], kb=grid[2], output_every=args.output_every,
                       pressure_gradient=args.pressure_gradient)


def stepper(params, backend: str):
    """The step function of a backend: the jitted plans, or the eager numpy reference."""
    if backend == "numpy":
        return lambda state: step(state, params)
    return CompiledStep(params, backend=backend)


def bench(advance, state, params, nsteps: int) -> dict:
    """Median and mean time per internal step after warm-up (compile) steps."""
    t0 = time.perf_counter()
    for _ in range(2):  # cold-start step, then the first compiled one
        state = advance(state)
    first = time.perf_counter() - t0
    times = []
    for _ in range(nsteps):
        t = time.perf_counter()
        state = advance(state)
        times.append(time.perf_counter() - t)
    cfg = params.cfg
    med = float(np.median(times))
    return {"grid": f"{cfg.im}x{cfg.jm}x{cfg.kb}", "precision": cfg.precision, "steps": nsteps,
            "first_two_steps_s": first, "ms_per_step": 1e3 * med,
            "mean_ms_per_step": 1e3 * float(np.mean(times)),
            "points_per_s": cfg.im * cfg.jm * cfg.kb / med}


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = build_config(args)
    params = make_params(cfg)
    advance = stepper(params, args.backend)
    if args.bench is not None:
        r = bench(advance, init_state(params), params, args.bench)
        print(f"{args.backend} {r['grid']} {r['precision']}: {r['ms_per_step']:.2f} ms per "
              f"internal step (median of {r['steps']}), {r['points_per_s']:.3g} grid points/s;"
              f" first two steps (compile) {r['first_two_steps_s']:.1f} s")
        return 0
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "checkpoint.npz")
    state = gio.load_checkpoint(args.restart, cfg) if args.restart else init_state(params)
    every = max(int(round(cfg.output_every * 86400.0 / cfg.dti)), 1)
    frames = [(state["iint"] * cfg.dti / 86400.0, state)]
    log = []
    bar = tqdm(total=cfg.iend, initial=state["iint"], disable=args.quiet, unit="step",
               file=sys.stderr)
    while state["iint"] < cfg.iend:
        new = host_state(advance(state))  # a GPU step's fields come back to the host
        guard.check(new, min(cfg.velocity_limit, cfg.vmaxl))
        state = new
        bar.update(1)
        if args.checkpoint_every and state["iint"] % args.checkpoint_every == 0:
            gio.save_checkpoint(ckpt, state, cfg)
        if state["iint"] % every == 0 or state["iint"] == cfg.iend:
            report = diagnostics.report(state, params)
            log.append(report)
            frames.append((report["time_days"], state))
            bar.write(diagnostics.format_report(report))
    bar.close()
    gio.save_checkpoint(ckpt, state, cfg)
    gio.write_netcdf(os.path.join(args.out, "gomd.nc"), frames, params)
    with open(os.path.join(args.out, "diagnostics.json"), "w") as f:
        json.dump(log, f, indent=1)
    if not args.no_plots:
        plots.write_all(state, params, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
