"""The NPU backend (simulated Ascend-like tile programs) against the reference interpreter.

Every elementwise primitive per supported dtype, every other primitive's program in float32,
random fused programs (hypothesis), the cube's float16 rounding bound, float64 refused with the
node named, unified-buffer overflow refused, and the cycle model's consistency and monotonicity.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import test_docs
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels_primitives import PROGRAMS, RTOL, _check, _elementwise_names, _inputs

import sciml  # noqa: F401  (numpy handlers for traced code)
import sciml.numpy as snp
from autodiff import dtypes
from autodiff.errors import UnsupportedError
from autodiff.interpret import eval_graph
from autodiff.ops.elementwise import BINARY
from autodiff.primitives import PRIMITIVES as P
from autodiff.trace import make_graph
from kernels import npu
from kernels.jit import jit

GOLDEN = Path(__file__).parent / "golden"
NPU_DTYPES = ["float32", "float16", "bfloat16", "int32", "bool"]


def _reference(fn, args):
    return eval_graph(make_graph(fn, *args), *args)


def _flat(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


@pytest.mark.parametrize("dtype", NPU_DTYPES)
def test_elementwise_primitives(dtype):
    names = _elementwise_names(dtype)
    rng = np.random.default_rng(0)
    data = [_inputs(n, dtype, rng) for n in names]

    def prog(*flat):
        outs, k = [], 0
        for n in names:
            arity = 2 if n in BINARY else 1
            outs.append(P[n].bind(*flat[k:k + arity]))
            k += arity
        return tuple(outs)

    args = [a for d in data for a in d]
    f = jit(prog, backend="npu")
    got = f(*args)
    want = _reference(prog, args)
    assert f.lower(*args).count_kernels() == 1
    for n, g, w in zip(names, got, want):
        _check(g, w, dtype, f"npu: {n} at {dtype}")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int32", "bool"])
def test_select_convert_integer_pow(dtype):
    rng = np.random.default_rng(1)
    x = _inputs("add", dtype, rng)[0]
    pred = rng.random(x.shape) < 0.5
    targets = ["float32", "int32", "bool", "float16", "bfloat16"]

    def prog(p, x):
        outs = [P["select"].bind(p, x, P["stop_gradient"].bind(x))]
        outs += [P["convert"].bind(x, new_dtype=dtypes.dtype(t)) for t in targets]
        if dtype != "bool":
            outs += [P["integer_pow"].bind(x, y=k) for k in (0, 1, 2, 3, 5)]
        return tuple(outs)

    got = jit(prog, backend="npu")(pred, x)
    want = _reference(prog, [pred, x])
    for i, (g, w) in enumerate(zip(got, want)):
        _check(g, w, w.dtype if w.dtype.kind != "b" else dtype, f"output {i}")


def _f32(a):
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype == np.float64 else a


# Programs of the CPU table that cannot run on the npu as written: they need float64 or int64
# on the vector unit (an explicit float64 iota, an int64 loop counter); each must be refused.
REFUSED = {"iota", "while_loop", "scan"}
CUBE = {"dot_general"}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_primitive_program(name):
    fn, args = PROGRAMS[name]
    args = [_f32(a) for a in args]
    try:
        want = _reference(fn, args)
    except (TypeError, UnsupportedError) as e:
        pytest.skip(f"{name}: the program does not trace in float32 ({e})")
    f = jit(fn, backend="npu")
    if name in REFUSED:
        with pytest.raises(UnsupportedError, match="npu"):
            f(*args)
        return
    got = f(*args)
    assert len(_flat(got)) == len(_flat(want))
    for g, w in zip(_flat(got), _flat(want)):
        if name in CUBE:  # float16 inputs: see test_cube_rounding_bound
            np.testing.assert_allclose(g, w, rtol=5e-3, atol=5e-3)
        else:
            _check(g, w, str(np.asarray(w).dtype) if np.asarray(w).dtype.kind == "f"
                   else "float32", f"npu: {name}")


def test_float64_refused_naming_node_and_backend():
    f = jit(lambda x: np.sin(x) + 1.0, backend="npu")
    with pytest.raises(UnsupportedError, match=r"npu: sin at .*float64.*vector unit"):
        f(np.ones(4))
    npu.SIMULATOR.reset()
    with pytest.raises(UnsupportedError, match="npu: dot_general.*float64.*cube"):
        jit(lambda a: a @ a, backend="npu")(np.ones((2, 2)))
    assert npu.SIMULATOR.programs_run == 0  # refused before anything ran
    body = jit(lambda x: sciml.fori_loop(0, 2, lambda i, c: c + np.sin(c.astype(np.float64))
                                         .astype(np.float32), x), backend="npu")
    with pytest.raises(UnsupportedError, match="npu: convert at .*float64"):
        body.lower(np.ones(3, np.float32))  # inside a loop body, found before it runs


# -- precision: half storage, float32 compute; float32 reductions ---------------------------


def test_half_storage_float32_compute():
    x = np.linspace(-2, 2, 301).astype(ml_dtypes.bfloat16)

    def f(x):
        return np.tanh(x) * x + 1.0

    got = jit(f, backend="npu")(x)
    assert got.dtype == ml_dtypes.bfloat16
    exact = f(x.astype(np.float64))
    # computed in float32 and rounded once on store: within half a bfloat16 ulp
    np.testing.assert_allclose(got.astype(np.float64), exact, rtol=2 ** -8)


def test_reductions_with_tiles_smaller_than_a_row():
    x = np.random.default_rng(2).standard_normal((3, 5000)).astype(np.float32)

    def f(x):
        y = snp.shift(x, (0, 1), boundary="periodic") * 2.0 + x
        return y.sum(axis=1), y.max(axis=1), (y * y).sum()

    cfg = npu.NPUConfig(ub_bytes=4096)
    with npu.use_config(cfg):
        c = jit(f, backend="npu")
        got = c(x)
        progs = [npu.program(s) for s in c.lower(x).sources.values()]
    assert any(p.tile_cols < p.cols for p in progs)  # rows really were split
    assert all(p.ub_bytes <= cfg.ub_bytes for p in progs)
    want = _reference(f, [x])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5)


# -- the cube -------------------------------------------------------------------------------


def test_cube_rounding_bound():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 37, 50)).astype(np.float32)
    b = rng.standard_normal((2, 50, 21)).astype(np.float32)
    got = npu.cube_matmul(a, b).astype(np.float64)
    a16, b16 = (x.astype(np.float16).astype(np.float64) for x in (a, b))
    # against the exact product of the float16-rounded inputs: float32 accumulation only
    assert np.all(np.abs(got - a16 @ b16) <= 64 * 2 ** -24 * (np.abs(a16) @ np.abs(b16)))
    # against the exact product of the float32 inputs: the documented input-rounding bound
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = 2 * 2 ** -11 * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    assert np.all(np.abs(got - exact) <= bound + 1e-6)


def test_dot_general_batched_on_cube():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 4, 5)).astype(np.float16)
    b = rng.standard_normal((3, 5, 6)).astype(np.float16)

    def f(a, b):
        return P["dot_general"].bind(a, b, dimension_numbers=(((2,), (1,)), ((0,), (0,))),
                                     preferred_dtype=np.dtype("float32"))

    npu.SIMULATOR.reset()
    got = jit(f, backend="npu")(a, b)
    assert npu.SIMULATOR.cycles > 0
    want = _reference(f, [a, b])  # float16 inputs are exact on the cube
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# -- the unified buffer ---------------------------------------------------------------------


def _many_live(x):
    vals = [np.sin(x * float(k)) for k in range(1, 9)]  # eight tiles live at once
    out = vals[0]
    for v in vals[1:]:
        out = out * v
    return out + sum(vals)


def test_overflowing_program_refused():
    x = np.ones(4096, np.float32)
    c = jit(_many_live, backend="npu").lower(x)
    prog = npu.program(c.sources[0])
    small = npu.Simulator(npu.NPUConfig(ub_bytes=prog.ub_bytes - 32))
    arrays = [x, np.empty_like(x)]
    with pytest.raises(npu.BufferOverflowError, match="unified buffer"):
        small.run(prog, *arrays)
    with pytest.raises(npu.BufferOverflowError, match="kernel"):
        npu.lower_program(c.kernels[0], config=npu.NPUConfig(ub_bytes=256))


def test_fits_tight_buffer_and_matches():
    x = np.random.default_rng(5).uniform(-1, 1, 3000).astype(np.float32)
    with npu.use_config(npu.NPUConfig(ub_bytes=2048)):
        f = jit(_many_live, backend="npu")
        got = f(x)
        prog = npu.program(f.lower(x).sources[0])
    assert prog.tiles > 1 and prog.ub_bytes <= 2048
    np.testing.assert_allclose(got, _reference(_many_live, [x]), rtol=1e-5, atol=1e-6)


# -- the cycle model ------------------------------------------------------------------------


def _heat(u):
    lap = sum(snp.shift(u, off, boundary="zero") for off in ((1, 0), (-1, 0), (0, 1), (0, -1)))
    return u + 0.1 * (lap - 4.0 * u)


def test_cycle_estimate_matches_run_and_grows_with_size():
    cycles = []
    for n in (8, 32, 128, 512):
        u = np.random.default_rng(n).standard_normal((n, n)).astype(np.float32)
        f = jit(_heat, backend="npu")
        c = f.lower(u)
        prog = npu.program(c.sources[0])
        npu.SIMULATOR.reset()
        f(u)
        assert npu.SIMULATOR.cycles == npu.estimate(prog) == npu.estimate_compiled(c)
        cycles.append(npu.estimate(prog))
    assert all(a < b for a, b in zip(cycles, cycles[1:])), cycles
    mm = [npu.cube_cycles(1, n, n, n) for n in (16, 32, 64, 128)]
    assert all(a < b for a, b in zip(mm, mm[1:])), mm


# -- random fused programs ------------------------------------------------------------------

_UN = {"sin": np.sin, "tanh": np.tanh, "neg": np.negative, "abs": np.abs,
       "sq": lambda a: a * a}
_BIN = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "max": np.maximum,
        "min": np.minimum}
_READ = [("shift", (1, 0), "zero"), ("shift", (0, -1), "periodic"), ("shift", (-1, 1), "edge"),
         ("rev", None, None), ("pad", None, None)]

ops = st.one_of(
    st.tuples(st.just("un"), st.sampled_from(sorted(_UN)), st.integers(0, 9)),
    st.tuples(st.just("bin"), st.sampled_from(sorted(_BIN)), st.integers(0, 9),
              st.integers(0, 9)),
    st.tuples(st.just("read"), st.integers(0, len(_READ) - 1), st.integers(0, 9)),
    st.tuples(st.just("rowsum"), st.integers(0, 9)),
)


def _program(instrs):
    def f(x, y):
        pool = [x, y]
        for ins in instrs:
            a = pool[ins[-1] % len(pool)]
            if ins[0] == "un":
                pool.append(_UN[ins[1]](a))
            elif ins[0] == "bin":
                pool.append(_BIN[ins[1]](pool[ins[2] % len(pool)], a))
            elif ins[0] == "read":
                kind, off, bd = _READ[ins[1]]
                if kind == "shift":
                    pool.append(snp.shift(a, off, boundary=bd))
                elif kind == "rev":
                    pool.append(a[::-1, :] * 1.0)
                else:
                    pool.append(snp.pad(a, ((1, 1), (0, 0)), mode="edge")[1:-1, :] + 0.5)
            else:  # a row reduction broadcast back: a kernel boundary
                pool.append(a - a.sum(axis=1, keepdims=True) * 0.1)
        return tuple(pool[2:]) or (x + y,)

    return f


@settings(max_examples=15, deadline=None)
@given(st.lists(ops, min_size=1, max_size=8), st.sampled_from(["float32", "bfloat16"]))
def test_random_fused_programs(instrs, dtype):
    rng = np.random.default_rng(len(instrs))
    dt = dtypes.dtype(dtype)
    x, y = (rng.uniform(-1, 1, (5, 7)).astype(dt) for _ in range(2))
    f = _program(instrs)
    got = jit(f, backend="npu")(x, y)
    want = _reference(f, [x, y])
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        rtol = RTOL[dtype] * (8 if dtype == "bfloat16" else 1)  # per-op rounding in the ref
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                                   atol=rtol)


# -- golden tile programs -------------------------------------------------------------------

CASES = {
    "elementwise_f32": (lambda x: np.exp(-x * x) * np.sin(3.0 * x) + 0.5 * np.tanh(x),
                        [np.zeros(1 << 16, np.float32)]),
    "heat_f32": (_heat, [np.zeros((64, 64), np.float32)]),
    "row_sum_bf16": (lambda x: (x * 2.0 + 1.0).sum(axis=1),
                     [np.zeros((100, 3000), ml_dtypes.bfloat16)]),
    "matmul_f32": (lambda a, b: np.tanh(a @ b), [np.zeros((32, 48), np.float32),
                                                 np.zeros((48, 16), np.float32)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tile_program_matches_golden(name):
    fn, args = CASES[name]
    c = jit(fn, backend="npu").lower(*args)
    text = "\n".join(f"# {g}" for g in c.groups) + "\n\n"  # library nodes: host or cube
    text += "\n\n".join(f"# kernel {i}\n{c.sources[i]}" for i in sorted(c.sources)) + "\n"
    path = GOLDEN / f"npu_{name}.txt"
    if os.environ.get("SCIML_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden copy {path.name}: run with SCIML_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"tile program for {name} changed"


def test_docs_page_runs():
    """docs/kernels.md runs and prints what it shows (the runner of tests/test_docs.py)."""
    page = "docs/kernels.md"
    blocks = test_docs.blocks((test_docs.ROOT / page).read_text())
    env = dict(os.environ, PYTHONPATH=str(test_docs.ROOT))
    env.pop("SCIML_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", test_docs._RUNNER, page],
                          input=json.dumps([c for c, _ in blocks]), capture_output=True,
                          text=True, cwd=test_docs.ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = json.loads(proc.stdout.strip().splitlines()[-1])
    for i, ((_, expected), got) in enumerate(zip(blocks, outputs)):
        if expected is not None:
            assert got.rstrip() == expected.rstrip(), f"{page} block {i + 1}"
