"""The disk cache: a second process reuses compiled kernels; a template change invalidates
them. Numba's bounds checking catches an out-of-range read in generated code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = textwrap.dedent("""
    import json, sys
    import numpy as np
    import sciml
    from kernels import cache, cpu
    from kernels.jit import jit
    if sys.argv[1] == "patched":
        cpu.TABLE["mul"] = "({1} * {0})"  # a template change: same maths, new source
    f = jit(lambda x: np.sin(x) + x * 2.0)
    x = np.linspace(0.0, 1.0, 100)
    y = f(x)
    assert np.allclose(y, np.sin(x) + x * 2.0)
    (step,) = f.lower(x).plan.steps
    hits, misses = cache.cache_stats(step.fn)
    files = sorted(p.name for p in (cache.cache_root() / cache.PACKAGE).glob("k_*.py"))
    print(json.dumps({"hits": hits, "misses": misses, "files": files}))
""")


def _run(cache_dir, *args, env_extra=None, code=PROGRAM):
    env = dict(os.environ, SCIML_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT),
               NUMBA_NUM_THREADS="2", **(env_extra or {}))
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_second_process_reuses_and_template_change_invalidates(tmp_path):
    first = json.loads(_run(tmp_path, "plain").stdout)
    assert first["misses"] == 1 and first["hits"] == 0 and len(first["files"]) == 1
    second = json.loads(_run(tmp_path, "plain").stdout)
    assert second["hits"] == 1 and second["misses"] == 0  # machine code from disk
    assert second["files"] == first["files"]
    patched = json.loads(_run(tmp_path, "patched").stdout)
    assert patched["hits"] == 0 and patched["misses"] == 1  # a new key, compiled afresh
    assert len(patched["files"]) == 2


OUT_OF_BOUNDS = textwrap.dedent("""
    import numpy as np
    from kernels import cache, cpu
    from kernels.loopir import Affine, Buffer, Idx, Kernel, Let, Load, Store
    # a kernel reading x[i + 1] without a guard: past the end at the last point
    k = Kernel("k", (8,), [Buffer("in0", (8,), "float64")], [Buffer("out0", (8,), "float64")],
               [Let("v0", Load("in0", (Affine(Idx(0), 1, 1),))), Store("out0", (Idx(0),), "v0")])
    fn = cache.load(cpu.print_kernel(k, name="kernel"), "kernel")
    try:
        fn(np.zeros(8), np.zeros(8))
    except IndexError:
        print("caught")
""")


def test_boundscheck_catches_an_unguarded_read(tmp_path):
    out = _run(tmp_path, env_extra={"NUMBA_BOUNDSCHECK": "1"}, code=OUT_OF_BOUNDS)
    assert "caught" in out.stdout


@pytest.mark.slow
def test_kernel_suite_under_boundscheck(tmp_path):
    """The CPU backend's tests once more with every array access bounds-checked."""
    env = dict(os.environ, SCIML_CACHE_DIR=str(tmp_path), NUMBA_BOUNDSCHECK="1",
               PYTHONPATH=str(ROOT))
    tests = ["tests/test_kernels_primitives.py", "tests/test_kernels_fuse.py",
             "tests/test_kernels_plancode.py", "tests/test_kernels_golden.py",
             "tests/test_wavefront.py"]
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          *tests], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:]


def test_cache_dir_layout(tmp_path, monkeypatch):
    from kernels import cache

    monkeypatch.setenv("SCIML_CACHE_DIR", str(tmp_path))
    src = "import numba\n\n\n@numba.njit(cache=True)\ndef kernel(x):\n    return x + 1\n"
    fn = cache.load(src, "kernel")
    assert fn(np.int64(1)) == 2
    key = cache.kernel_key(src, "cpu")
    assert (tmp_path / cache.PACKAGE / f"k_{key}.py").read_text() == src
    assert cache.kernel_key(src, "gpu") != key


def test_key_follows_the_modules_kernels_import(monkeypatch):
    """numba's disk cache checks only the kernel's file: a changed vmath helper it inlines
    must give the kernel a new key, or stale machine code is loaded (it once was)."""
    from kernels import cache

    src = "from kernels.vmath import sin_f32\n"
    key = cache.kernel_key(src, "cpu")
    assert len(cache.runtime_digest()) == 16
    monkeypatch.setattr(cache, "runtime_digest", lambda: "another vmath")
    assert cache.kernel_key(src, "cpu") != key


PARALLEL_PLAN = textwrap.dedent("""
    import numpy as np
    import sciml.numpy as snp
    from kernels.jit import jit
    from kernels.plancode import PlanCode

    def f(u):  # parallel stencil kernels and a reduction (2^18 points) in one plan function
        v = u + 0.1 * (snp.shift(u, (1, 0, 0)) - u)
        w = v * np.sqrt(np.abs(snp.shift(v, (0, 1, 0))) + 1.0)
        return w, (w * snp.shift(w, (0, 0, 1))).sum()

    u = np.random.default_rng(0).random((64, 64, 64))
    g = jit(f)
    got = g(u)  # the first thing this process runs in parallel is the cached plan function
    assert isinstance(g.lower(u).plan, PlanCode)
    for a, b in zip(got, f(u)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    print("ok")
""")


def test_whole_plan_with_parallel_kernels_from_the_disk_cache(tmp_path):
    """Second process: the plan function and its parallel kernels come from numba's cache and
    no parallel dispatcher is called from Python first. (The GOMD step crashed this way before
    plancode started numba's thread pool; this smaller program has not reproduced the crash
    without that fix, so it guards the path, not that exact failure.)"""
    env = {"SCIML_WAVEFRONT": "off"}
    assert "ok" in _run(tmp_path, code=PARALLEL_PLAN, env_extra=env).stdout
    assert "ok" in _run(tmp_path, code=PARALLEL_PLAN, env_extra=env).stdout
