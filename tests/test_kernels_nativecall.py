"""Plans call kernels through their addresses; kernels missing from the disk cache compile in
worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from kernels import nativecall

ROOT = Path(__file__).resolve().parents[1]


@numba.njit
def _axpy(x, y, out):
    for i in range(x.shape[0]):
        if x[i] < 0:
            raise ValueError("negative input")
        out[i] = 2.0 * x[i] + y[i]


SIG = nativecall.signature([("float64", 1)] * 3)


@numba.njit
def _plan(addr, x, y):
    out = np.empty_like(x)
    nativecall.call_kernel(addr, "float64:1,float64:1,float64:1", x, y, out)
    return out


@numba.njit
def _wrong_rank(addr, x):
    nativecall.call_kernel(addr, "float64:2", x)


def test_call_by_address_matches_direct_call_and_raises_the_kernels_errors():
    x, y = np.arange(5.0), np.ones(5)
    addr = nativecall.address(_axpy, SIG)
    np.testing.assert_array_equal(_plan(addr, x, y), 2.0 * x + y)
    x.flags.writeable = False  # a readonly array has the same layout: accepted
    np.testing.assert_array_equal(_plan(addr, x, y), 2.0 * x + y)
    with pytest.raises(ValueError, match="negative input"):
        _plan(addr, -x, y)


def test_a_call_with_the_wrong_signature_does_not_compile():
    with pytest.raises(TypingError, match="kernel argument 0: expected a 2-d float64 array"):
        _wrong_rank(nativecall.address(_axpy, SIG), np.zeros(3))


WORKERS = textwrap.dedent("""
    import json, numpy as np, sciml
    from autodiff.interpret import eval_graph
    from kernels import cache, nativecall
    from kernels.jit import jit
    nativecall.MIN_PARALLEL = 2

    def f(u, v):
        def body(i, c):  # shifts of computed values: one kernel each, in a loop
            a = sciml.numpy.shift(np.sin(c) * v, (1, 0), "periodic")
            b = sciml.numpy.shift(a * a + c, (0, 1), "periodic")
            return sciml.numpy.shift(np.cos(b) - a, (-1, 0), "periodic") * 0.25
        return sciml.fori_loop(0, 3, body, u)

    u, v = np.random.default_rng(1).random((2, 9, 7))
    g = jit(f)
    got = g(u, v)
    plan = g.lower(u, v).plan
    err = float(np.max(np.abs(got - eval_graph(sciml.make_graph(f, u, v), u, v))))
    print(json.dumps({"calls": len(plan.calls), "err": err,
                      "stats": [cache.cache_stats(fn) for fn, _ in plan.calls]}))
""")


def _run(tmp_path, workers):
    env = dict(os.environ, SCIML_CACHE_DIR=str(tmp_path / "k"), NUMBA_CACHE_DIR=str(tmp_path / "n"),
               SCIML_COMPILE_WORKERS=str(workers), SCIML_RECOMPUTE_MAX="0",
               PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", WORKERS], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_workers_compile_what_the_disk_cache_lacks(tmp_path):
    r = _run(tmp_path / "two", 2)
    assert r["calls"] >= 3 and r["err"] < 1e-13
    # every kernel came from the disk cache the workers wrote, none was compiled here
    assert all(hits == 1 and misses == 0 for hits, misses in r["stats"]), r["stats"]
    r = _run(tmp_path / "one", 1)  # one worker: compiled in the process itself
    assert r["err"] < 1e-13 and all(misses == 1 for _, misses in r["stats"]), r["stats"]


def test_bad_worker_count_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SCIML_COMPILE_WORKERS", "two")
    with pytest.raises(ValueError, match="SCIML_COMPILE_WORKERS must be a positive integer"):
        nativecall._workers()
    monkeypatch.setenv("SCIML_COMPILE_WORKERS", "3")
    assert nativecall._workers() == 3


def test_a_worker_skips_a_kernel_it_cannot_compile(monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(
        [["no_such_module_here", "kernel", [["float64", 1]]]])))
    nativecall._worker_main()  # the calling process compiles it and reports the error
