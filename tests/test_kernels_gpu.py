"""The GPU backend: CUDA C for every primitive and for random fused programs, compiled with
``nvcc --ptx`` where nvcc is on PATH; golden copies of representative kernels; execution on a
device (``@pytest.mark.gpu``, skipped without cupy and a CUDA device).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels_npu import _program, ops
from test_kernels_primitives import PROGRAMS, _check, _elementwise_names, _inputs

import sciml  # noqa: F401  (numpy handlers for traced code)
import sciml.numpy as snp
from autodiff import dtypes
from autodiff.errors import UnsupportedError
from autodiff.interpret import eval_graph
from autodiff.ops.elementwise import BINARY
from autodiff.primitives import PRIMITIVES as P
from autodiff.trace import make_graph
from kernels import gpu
from kernels.fuse import Cluster
from kernels.jit import jit

GOLDEN = Path(__file__).parent / "golden"
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")


def _gpu_ready() -> bool:
    try:
        gpu.available()
    except UnsupportedError:
        return False
    return True


needs_gpu = pytest.mark.skipif(not _gpu_ready(), reason="needs cupy and a CUDA device")


def nvcc_ptx(sources: list[str], tmp_path: Path):
    """Compile CUDA sources to PTX in one nvcc call; fail with nvcc's messages."""
    if NVCC is None:
        return
    files = []
    for j, src in enumerate(sources):
        f = tmp_path / f"k{j}.cu"
        f.write_text(src)
        files.append(str(f))
    cmd = [NVCC, "--ptx", "-arch=sm_80", "-std=c++17", "-odir", str(tmp_path), *files]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]


def _one_unit(kernels) -> str:
    """Kernels renamed into one translation unit (one nvcc start instead of many)."""
    heads = "#include <cuda_fp16.h>\n#include <cuda_bf16.h>\n" + gpu.PRELUDE
    bodies = [gpu.print_kernel(k, name=f"k{j}").split(gpu.PRELUDE, 1)[1]
              for j, k in enumerate(kernels)]
    return heads + "\n".join(bodies)


# -- every primitive ------------------------------------------------------------------------

GPU_DTYPES = ["float64", "float32", "float16", "bfloat16", "int32", "int64", "bool"]


def _elementwise_program(dtype):
    names = _elementwise_names(dtype)
    rng = np.random.default_rng(0)
    args = [a for n in names for a in _inputs(n, dtype, rng)]

    def prog(*flat):
        outs, k = [], 0
        for n in names:
            arity = 2 if n in BINARY else 1
            outs.append(P[n].bind(*flat[k:k + arity]))
            k += arity
        return tuple(outs)

    return prog, args, names


def test_elementwise_primitives_print_and_compile(tmp_path):
    kernels = []
    for dtype in GPU_DTYPES:
        prog, args, names = _elementwise_program(dtype)
        c = gpu.cuda_source(prog, *args)
        assert c.count_kernels() == 1, dtype  # every primitive fused into one CUDA kernel
        src = c.sources[0]
        assert len(c.kernels[0].body) >= len(names)  # one statement per primitive at least
        assert 'extern "C" __global__ void kernel(' in src
        kernels.append(c.kernels[0])
    nvcc_ptx([_one_unit(kernels)], tmp_path)


def test_select_convert_integer_pow_compile(tmp_path):
    kernels = []
    for dtype in ["float64", "float32", "bfloat16", "int32", "bool"]:
        kernels += _select_convert_kernels(dtype)
    nvcc_ptx([_one_unit(kernels)], tmp_path)


def _select_convert_kernels(dtype):
    x = _inputs("add", dtype, np.random.default_rng(1))[0]
    pred = x != x

    def prog(p, x):
        outs = [P["select"].bind(p, x, P["stop_gradient"].bind(x))]
        outs += [P["convert"].bind(x, new_dtype=dtypes.dtype(t))
                 for t in ("float64", "float32", "int64", "bool", "float16", "bfloat16")]
        if dtype != "bool":
            outs += [P["integer_pow"].bind(x, y=k) for k in (0, 1, 2, 3, -2)
                     if k >= 0 or dtype.startswith(("float", "bf"))]
        return tuple(outs)

    return list(gpu.cuda_source(prog, pred, x).kernels.values())


def test_primitive_programs_print_and_compile(tmp_path):
    kernels = []
    for name in sorted(PROGRAMS):
        fn, args = PROGRAMS[name]
        try:
            c = gpu.cuda_source(fn, *args)
        except TypeError:
            continue  # the CPU table's program does not match the primitive (skipped there too)
        kernels += list(c.kernels.values())
    assert len(kernels) > 20
    nvcc_ptx([_one_unit(kernels)], tmp_path)


def test_random_fused_programs_compile(tmp_path):
    kernels = []

    @settings(max_examples=15, deadline=None)
    @given(st.lists(ops, min_size=1, max_size=8),
           st.sampled_from(["float64", "float32", "bfloat16"]))
    def gen(instrs, dtype):
        x = np.zeros((5, 7), dtypes.dtype(dtype))
        c = gpu.cuda_source(_program(instrs), x, x)
        kernels.extend(c.kernels.values())
        for src in c.sources.values():
            assert src.count("{") == src.count("}")

    gen()
    nvcc_ptx([_one_unit(kernels)], tmp_path)


# -- what the printer emits -----------------------------------------------------------------


def test_stencil_bounds_and_reduction_schemes():
    u = np.zeros((6, 9), np.float32)
    src = gpu.cuda_source(lambda u: snp.shift(u, (1, 0), boundary="zero")
                          + snp.shift(u, (0, -1), boundary="periodic")
                          + snp.shift(u, (-2, 0), boundary="edge"), u).sources[0]
    assert "min(max((i0 + 1LL), 0LL), 5LL)" in src  # clamped read of the zero border ...
    assert "(0LL <= (i0 + 1LL) && (i0 + 1LL) < 6LL)" in src  # ... guarded
    assert "(((i1 + -1LL) + 9LL) % 9LL)" in src  # periodic wrap
    assert "min(max((i0 + -2LL), 0LL), 5LL)" in src  # edge
    rows = gpu.cuda_source(lambda x: x.sum(axis=1), u).sources[0]
    assert "row += gridDim.x" in rows and "kernel_finish" not in rows
    full = gpu.cuda_source(lambda x: (x * x).sum(), u).sources[0]
    assert "kernel_finish" in full and "double acc0" in full  # float32 sums in double


def test_half_types_stored_as_half_computed_in_float():
    src = gpu.cuda_source(lambda x: x * 2.0 + 1.0, np.zeros(8, ml_dtypes.bfloat16)).sources[0]
    assert "#include <cuda_bf16.h>" in src
    assert "__bfloat162float(in0[i0])" in src and "__float2bfloat16_rn(" in src
    src = gpu.cuda_source(lambda x: x * 2.0, np.zeros(8, np.float16)).sources[0]
    assert "__half2float(in0[i0])" in src and "__float2half_rn(" in src


@pytest.mark.skipif(_gpu_ready(), reason="checks the error raised without a GPU")
def test_gpu_without_device_is_a_clear_error():
    with pytest.raises(UnsupportedError, match="backend 'gpu'"):
        jit(lambda x: x + 1.0, backend="gpu")


# -- golden CUDA sources --------------------------------------------------------------------


def _heat(u, c):
    lap = sum(snp.shift(u, off, boundary="zero") for off in
              ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)))
    return u + c * (lap - 6.0 * u)


def _elementwise(x):
    return np.exp(-x * x) * np.sin(3.0 * x) + 0.5 * np.tanh(x)


CASES = {
    "elementwise_f64": (_elementwise, [np.zeros(1 << 20)]),
    "elementwise_bf16": (_elementwise, [np.zeros(64, ml_dtypes.bfloat16)]),
    "heat_f32": (_heat, [np.zeros((64, 64, 64), np.float32), np.float32(0.1)]),
    "sum_of_squares_f32": (lambda x: ((np.sin(x) + 1.0) ** 2).sum(),
                           [np.zeros(1 << 20, np.float32)]),
    "row_max_padded": (lambda x: (snp.pad(x, ((1, 1), (0, 0)), mode="periodic") * 2.0).max(
        axis=1), [np.zeros((30, 40))]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_source_matches_golden(name, tmp_path):
    fn, args = CASES[name]
    c = gpu.cuda_source(fn, *args)
    text = "\n\n".join(f"// kernel {i}\n{c.sources[i]}" for i in sorted(c.sources))
    path = GOLDEN / f"gpu_{name}.cu"
    if os.environ.get("SCIML_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden copy {path.name}: run with SCIML_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"generated CUDA for {name} changed"
    nvcc_ptx(list(c.sources.values()), tmp_path)


# -- on a device ----------------------------------------------------------------------------


def _host(x):
    return [gpu.to_host(o) if not isinstance(o, np.ndarray) else o for o in
            (x if isinstance(x, tuple) else (x,))]


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", GPU_DTYPES)
def test_gpu_elementwise_primitives(dtype):
    prog, args, names = _elementwise_program(dtype)
    got = _host(jit(prog, backend="gpu")(*args))
    want = eval_graph(make_graph(prog, *args), *args)
    for n, g, w in zip(names, got, want):
        _check(np.asarray(g).astype(w.dtype), w, dtype, f"gpu: {n} at {dtype}")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_gpu_primitive_program(name):
    fn, args = PROGRAMS[name]
    try:
        want = eval_graph(make_graph(fn, *args), *args)
    except TypeError as e:
        pytest.skip(f"{name}: program does not match the primitive ({e})")
    got = _host(jit(fn, backend="gpu")(*args))
    for g, w in zip(got, want if isinstance(want, tuple) else (want,)):
        _check(np.asarray(g), np.asarray(w), "float64", f"gpu: {name}")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("name", sorted(CASES))
def test_gpu_cases_and_cuda_graph_replay(name):
    fn, args = CASES[name]
    rng = np.random.default_rng(0)
    args = [rng.uniform(0.1, 1, np.shape(a)).astype(np.asarray(a).dtype) for a in args]
    f = jit(fn, backend="gpu")
    want = eval_graph(make_graph(fn, *args), *args)
    for _ in range(3):  # eager, captured, replayed
        got = _host(f(*args))
        for g, w in zip(got, want if isinstance(want, tuple) else (want,)):
            w = np.asarray(w)
            if w.dtype == np.float32:
                # nvcc contracts a * b + c into one fused multiply-add (one rounding instead
                # of two), so float32 points with cancellation differ from numpy by an ulp of
                # the operands, not of the result: compare on the scale of the field.
                np.testing.assert_allclose(np.asarray(g, np.float64), w.astype(np.float64),
                                           rtol=1e-5, atol=1e-6 * float(np.abs(w).max()),
                                           err_msg=name)
            else:
                _check(np.asarray(g).astype(w.dtype), w, str(w.dtype), name)


# -- the generated CUDA run on the host -----------------------------------------------------
# Without a GPU, the CUDA C itself is still checked for meaning: it is compiled as C++ with a
# small shim (a block = BLOCK std::threads meeting at a std::barrier for __syncthreads, shared
# memory = function statics, blocks run one after another, __half as _Float16, bfloat16 as its
# bits with round-to-nearest-even) and run through the CPU plan against the interpreter.

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")

HOST_SHIM = r"""
#include <math.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <barrier>
#include <functional>
#include <thread>
#include <vector>
using std::min; using std::max; using std::isnan; using std::isinf; using std::isfinite;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
struct sc_dim3 { unsigned int x; };
thread_local sc_dim3 threadIdx, blockIdx;
static sc_dim3 blockDim{256}, gridDim{1};
static std::barrier<>* sc_bar;
inline void __syncthreads() { sc_bar->arrive_and_wait(); }
static void sc_run_seq(int grid, int block, const std::function<void()>& f) {
  // kernels without __syncthreads: a block's threads one after another on one host thread
  gridDim.x = grid; blockDim.x = block;
  for (int b = 0; b < grid; ++b)
    for (int t = 0; t < block; ++t) { threadIdx.x = t; blockIdx.x = b; f(); }
}
static void sc_run(int grid, int block, const std::function<void()>& f) {
  gridDim.x = grid; blockDim.x = block;
  for (int b = 0; b < grid; ++b) {
    std::barrier<> bar(block); sc_bar = &bar;
    std::vector<std::thread> ts;
    for (int t = 0; t < block; ++t)
      ts.emplace_back([&, t] { threadIdx.x = t; blockIdx.x = b; f(); });
    for (auto& th : ts) th.join();
  }
}
struct __half { _Float16 v; };
inline float __half2float(__half h) { return (float)h.v; }
inline __half __float2half_rn(float f) { return __half{(_Float16)f}; }
struct __nv_bfloat16 { uint16_t bits; };
inline float __bfloat162float(__nv_bfloat16 h) {
  uint32_t u = (uint32_t)h.bits << 16; float f; std::memcpy(&f, &u, 4); return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u; std::memcpy(&u, &f, 4);
  if (f != f) return __nv_bfloat16{0x7fc0};
  u += 0x7fff + ((u >> 16) & 1);
  return __nv_bfloat16{(uint16_t)(u >> 16)};
}
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
"""


def _ctypes_of(k):
    ins = [f"const {gpu.CTYPE[b.dtype]}*" for b in k.inputs]
    outs = [f"{gpu.CTYPE[b.dtype]}*" for b in k.outputs + gpu.scratch_buffers(k)]
    parts = [f"{gpu.CTYPE[r.acc_dtype]}*" for r in k.reductions]
    return ins, outs, parts


def _launchers(j, k) -> str:
    ins, outs, parts = _ctypes_of(k)
    full = bool(k.reductions) and k.depth == 0
    sig = ins + outs + (parts if full else [])
    args = ", ".join(f"({t})a[{i}]" for i, t in enumerate(sig))
    text = (f'extern "C" void launch_k{j}(void** a, int grid) {{\n'
            f"  sc_run(grid, {gpu.BLOCK}, [&] {{ k{j}({args}); }});\n}}\n")
    if full:
        sig = [f"const {p}" for p in parts] + outs
        n = len(ins) + len(outs)
        order = list(range(n, n + len(parts))) + list(range(len(ins), n))
        args = ", ".join(f"({t})a[{i}]" for t, i in zip(sig, order))
        text += (f'extern "C" void launch_k{j}_finish(void** a) {{\n'
                 f"  sc_run(1, {gpu.BLOCK}, [&] {{ k{j}_finish({args}); }});\n}}\n")
    return text


class HostCuda:
    """The CUDA of ``kernels`` compiled for the host; ``fn(j)`` runs kernel j like GPUKernel."""

    def __init__(self, kernels, tmp_path: Path):
        import ctypes

        self.kernels = kernels
        bodies = [gpu.print_kernel(k, name=f"k{j}").split(gpu.PRELUDE, 1)[1]
                  for j, k in enumerate(kernels)]
        src = HOST_SHIM + gpu.PRELUDE + "\n".join(bodies) + "\n".join(
            _launchers(j, k) for j, k in enumerate(kernels))
        cpp, lib = tmp_path / "host_cuda.cpp", tmp_path / "host_cuda.so"
        cpp.write_text(src)
        r = subprocess.run([GXX, "-O1", "-std=c++20", "-pthread", "-shared", "-fPIC",
                            "-w", "-o", str(lib), str(cpp)], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-4000:]
        self.lib = ctypes.CDLL(str(lib))

    def fn(self, j):
        import ctypes

        k = self.kernels[j]
        launch = getattr(self.lib, f"launch_k{j}")
        finish = getattr(self.lib, f"launch_k{j}_finish", None) if (
            k.reductions and k.depth == 0) else None

        def run(*arrays):
            n_in = len(k.inputs)
            bufs = [_device_like(a, b.dtype, j >= n_in)
                    for j, (a, b) in enumerate(zip(arrays, k.inputs + k.outputs))]
            bufs += [np.empty(b.shape, dtypes.dtype(b.dtype)) for b in gpu.scratch_buffers(k)]
            if finish is not None:
                bufs += [np.empty(gpu.REDUCE_BLOCKS, dtypes.dtype(r.acc_dtype))
                         for r in k.reductions]
            ptrs = (ctypes.c_void_p * len(bufs))(*[b.ctypes.data for b in bufs])
            launch(ptrs, _grid(k))
            if finish is not None:
                finish(ptrs)
            for a, b, buf in zip(arrays[len(k.inputs):], k.outputs, bufs[len(k.inputs):]):
                if buf is not a:
                    a[...] = buf.view(dtypes.bfloat16) if a.dtype != buf.dtype and \
                        b.dtype == "bfloat16" else buf

        return run


def _device_like(a, dtype, output=False):
    """What the device holds: half types in their storage format (the CPU plan widens them)."""
    if dtype == "bfloat16" and a.dtype == np.uint16:
        return a  # the CPU plan passes bfloat16 as its bits already
    if output and dtype in ("float16", "bfloat16"):
        return np.empty(a.shape, np.float16 if dtype == "float16" else np.uint16)
    a = np.ascontiguousarray(a)
    if dtype == "bfloat16":
        return np.ascontiguousarray(a.astype(dtypes.bfloat16).view(np.uint16))
    if dtype == "float16":
        return np.ascontiguousarray(a.astype(np.float16))
    return a


def _grid(k) -> int:
    """Small grids so that grid-stride loops wrap (fewer host threads, same code paths)."""
    import math

    if k.reductions and k.depth == 0:
        return gpu.REDUCE_BLOCKS
    if k.sequential:
        return max(1, min(-(-math.prod(k.domain[1:]) // gpu.BLOCK), 3))
    if k.reductions:
        return min(math.prod(k.domain[:k.depth]), 3)
    return max(1, min(-(-math.prod(k.domain) // gpu.BLOCK), 3))


def _run_on_host(programs, tmp_path):
    """Compile the CUDA of every ``(fn, args)`` in one host library and run each program
    through the CPU plan; returns the outputs per program."""
    import functools

    from kernels.jit import runner_for
    from kernels.plan import Plan

    compiled = [gpu.cuda_source(fn, *args) for fn, args in programs]
    kernels, where = [], []
    for c in compiled:
        where.append({i: len(kernels) + j for j, i in enumerate(sorted(c.kernels))})
        kernels += [c.kernels[i] for i in sorted(c.kernels)]
    host = HostCuda(kernels, tmp_path)
    results = []
    for c, w, (_, args) in zip(compiled, where, programs):
        fns = {i: host.fn(j) for i, j in w.items()}
        plan = Plan(c.graph, c.groups, c.kernels, fns,
                    functools.partial(runner_for, backend="cpu"))
        leaves = [np.asarray(a) for a in args]
        results.append(plan([a if a.dtype == p.aval.dtype else a.astype(p.aval.dtype)
                             for a, p in zip(leaves, c.graph.params)]))
    return results


@pytest.fixture
def small_reductions(monkeypatch):
    """Fewer host threads: 4 partial blocks of full reductions, 32 threads per block (the
    printed shared-memory trees and every launch follow ``gpu.BLOCK``)."""
    monkeypatch.setattr(gpu, "REDUCE_BLOCKS", 4)
    monkeypatch.setattr(gpu, "BLOCK", 32)


@needs_gxx
def test_host_cuda_every_primitive(tmp_path, small_reductions):
    programs, checks = [], []
    for dtype in GPU_DTYPES:
        prog, args, names = _elementwise_program(dtype)
        programs.append((prog, args))
        checks.append([(f"{n} at {dtype}", dtype) for n in names])
    for name in sorted(PROGRAMS):
        fn, args = PROGRAMS[name]
        try:
            want = eval_graph(make_graph(fn, *args), *args)
        except TypeError:
            continue
        programs.append((fn, args))
        checks.append([(name, "float64")] * len(_flat(want)))
    for (fn, args), outs, chk in zip(programs, _run_on_host(programs, tmp_path), checks):
        want = _flat(eval_graph(make_graph(fn, *args), *args))
        assert len(outs) == len(want)
        for g, w, (what, dtype) in zip(outs, want, chk):
            _check(g, w, dtype, f"host cuda: {what}")


def _flat(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


@needs_gxx
def test_host_cuda_random_fused_programs(tmp_path, small_reductions):
    programs = []

    @settings(max_examples=12, deadline=None)
    @given(st.lists(ops, min_size=1, max_size=8),
           st.sampled_from(["float64", "float32", "bfloat16"]))
    def gen(instrs, dtype):
        rng = np.random.default_rng(len(instrs))
        x, y = (rng.uniform(-1, 1, (5, 7)).astype(dtypes.dtype(dtype)) for _ in range(2))
        programs.append((_program(instrs), [x, y], dtype))

    gen()
    outs = _run_on_host([(f, a) for f, a, _ in programs], tmp_path)
    for (f, args, dtype), got in zip(programs, outs):
        want = eval_graph(make_graph(f, *args), *args)
        for g, w in zip(got, want):
            rtol = {"float64": 1e-12, "float32": 1e-5, "bfloat16": 0.13}[dtype]
            np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(w, np.float64),
                                       rtol=rtol, atol=rtol)


# -- the gpu runtime on a stand-in for cupy -------------------------------------------------
# The plan, device placement, two-pass reductions and CUDA-graph replay run against a minimal
# stand-in for cupy whose RawModule compiles the CUDA for the host (the shim above) and whose
# stream capture records launches and replays them with the same arrays, as a CUDA graph
# replays the same addresses: a plan that changed buffers after capture would compute wrong.


class _DevArray(np.ndarray):
    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "version": 2,
                "data": (self.ctypes.data, False)}

    @property
    def data(self):  # cupy's memory pointer
        import types

        return types.SimpleNamespace(ptr=self.ctypes.data)

    def get(self):
        return np.array(self, copy=True).view(np.ndarray)


class _FakeStream:
    current = None

    def __init__(self, non_blocking=False):
        self.recording = None

    def __enter__(self):
        self.prev, _FakeStream.current = _FakeStream.current, self
        return self

    def __exit__(self, *exc):
        _FakeStream.current = self.prev

    def begin_capture(self):
        self.recording = []

    def end_capture(self):
        graph, self.recording = _FakeGraph(self.recording), None
        return graph

    def synchronize(self):
        pass


class _FakeGraph:
    def __init__(self, calls):
        self.calls = calls
        self.replays = 0

    def launch(self, stream=None):
        self.replays += 1
        for fn, grid, args in self.calls:
            fn.run(grid, args)


class _FakeFunction:
    def __init__(self, lib, name):
        self.launch = getattr(lib, f"launch_{name}")

    def __call__(self, grid, block, args):
        assert block == (gpu.BLOCK,)
        s = _FakeStream.current
        if s is not None and s.recording is not None:
            s.recording.append((self, grid, args))
        else:
            self.run(grid, args)

    def run(self, grid, args):
        import ctypes

        for a in args:
            assert isinstance(a, _DevArray), "a host array was passed to a kernel"
        ptrs = (ctypes.c_void_p * len(args))(*[a.ctypes.data for a in args])
        self.launch(ptrs, grid[0])


_SIG = re.compile(r'extern "C" __global__ void (\w+)\((.*?)\) \{', re.S)


_HOST_LIBS: dict = {}  # CUDA source -> the host library built from it, for the whole session


class _FakeRawModule:
    libs: dict = _HOST_LIBS
    tmp: Path = None

    def __init__(self, code, options=()):
        import ctypes
        import hashlib

        lib = self.libs.get(code)
        if lib is None:
            launchers = []
            for name, params in _SIG.findall(code):
                types = [p.split("__restrict__")[0].strip() for p in params.split(",")]
                args = ", ".join(f"({t})a[{i}]" for i, t in enumerate(types))
                run = "sc_run" if "__syncthreads" in code else "sc_run_seq"
                launchers.append(f'extern "C" void launch_{name}(void** a, int grid) {{ '
                                 f"{run}(grid, {gpu.BLOCK}, [&] {{ {name}({args}); }}); }}")
            body = "\n".join(x for x in code.splitlines() if not x.startswith("#include"))
            cpp = self.tmp / f"m{hashlib.sha1(code.encode()).hexdigest()[:16]}.cpp"
            cpp.write_text(HOST_SHIM + body + "\n" + "\n".join(launchers))
            so = cpp.with_suffix(".so")
            r = subprocess.run([GXX, "-O0", "-std=c++20", "-pthread", "-shared", "-fPIC", "-w",
                                "-o", str(so), str(cpp)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr[-3000:]
            lib = self.libs[code] = ctypes.CDLL(str(so))
        self.lib = lib

    def get_function(self, name):
        return _FakeFunction(self.lib, name)


def _on_device(fn):
    """A numpy function as the stand-in's: device arrays in and out, host arrays refused."""
    def run(*args, **kw):
        assert all(isinstance(a, _DevArray) for a in args if isinstance(a, np.ndarray)), \
            f"a host array was passed to cupy.{fn.__name__}"
        return np.asarray(fn(*args, **kw)).view(_DevArray)

    return run


def _host_lib_dir() -> Path:
    """One folder for the stand-in's host libraries, kept for the session (a kernel shared by
    several tests is compiled once)."""
    import tempfile

    d = _HOST_LIBS.get(None)
    if d is None:
        d = _HOST_LIBS[None] = Path(tempfile.mkdtemp(prefix="sciml-host-cuda-"))
    return d


def _fake_cupy(tmp_path):
    import types

    cp = types.ModuleType("cupy")
    cp.asarray = lambda x: np.array(x, copy=True).view(_DevArray)
    cp.empty = lambda shape, dtype: np.empty(shape, dtype).view(_DevArray)
    for name in ("flip", "cumsum", "sum", "prod", "max", "min", "ascontiguousarray", "arange"):
        setattr(cp, name, _on_device(getattr(np, name)))
    cp.RawModule = type("RawModule", (_FakeRawModule,), {"tmp": _host_lib_dir()})
    cp.cuda = types.SimpleNamespace(
        Stream=_FakeStream, runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
        Device=lambda *a: types.SimpleNamespace(id=0, synchronize=lambda: None))
    return cp


@needs_gxx
def test_gpu_runtime_on_a_stand_in_for_cupy(tmp_path, monkeypatch, small_reductions):
    import sys

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(tmp_path))
    rng = np.random.default_rng(7)
    u = rng.standard_normal((12, 10)).astype(np.float32)
    b = rng.standard_normal(40).astype(ml_dtypes.bfloat16)

    def prog(u, b):
        lap = sum(snp.shift(u, o, boundary="zero") for o in ((1, 0), (-1, 0), (0, 1), (0, -1)))
        v = u + 0.1 * (lap - 4.0 * u)
        s = np.sort(v, axis=1)  # a library node on the host between kernels
        return v, (s * 2.0).max(axis=1), (v * v).sum(), b * 2.0 + 1.0

    f = jit(prog, backend="gpu")
    want = eval_graph(make_graph(prog, u, b), u, b)
    for call in range(3):  # first run, capture, replay
        got = f(u, b)
        assert isinstance(got[0], _DevArray) and got[3].dtype == ml_dtypes.bfloat16
        for g, w in zip(got, want):
            _check(gpu.to_host(g), w, str(w.dtype), f"gpu runtime, call {call}")
    plan = f.lower(u, b).plan
    segments = [s for s in plan.segments if isinstance(s, gpu._Segment)]
    assert segments and all(len(s.graphs) == 1 for s in segments)  # host inputs: copied
    assert all(g.replays == 2 for s in segments for g in s.graphs.values())
    u2 = u[::-1].copy()  # new inputs reach the captured kernels
    np.testing.assert_allclose(gpu.to_host(f(u2, b)[2]), eval_graph(
        make_graph(prog, u2, b), u2, b)[2], rtol=1e-6)
    cp = sys.modules["cupy"]
    for x in (u, u2, u * 3.0):  # device inputs are read in place: a graph per address
        d = cp.asarray(x)
        np.testing.assert_allclose(gpu.to_host(f(d, b)[2]), eval_graph(
            make_graph(prog, x, b), x, b)[2], rtol=1e-6)
    reads_u = [s for s in segments if plan.graph.params[0].id in s.inputs]
    assert reads_u and all(len(s.graphs) == 4 for s in reads_u)
    again = jit(prog, backend="gpu", reuse_outputs=True)  # outputs are the plan's buffers
    v = again(u, b)[0]
    for call in range(3):  # fed back, the input is the stencil's own output buffer: copied
        want_v = eval_graph(make_graph(prog, gpu.to_host(v), b), gpu.to_host(v), b)[0]
        v = again(v, b)[0]
        _check(gpu.to_host(v), want_v, "float32", f"output fed back, call {call}")
    loop = jit(lambda x: sciml.fori_loop(0, 3, lambda i, c: c * 0.5 + 1.0, x), backend="gpu")
    np.testing.assert_allclose(gpu.to_host(loop(u)), ((u * 0.5 + 1) * 0.5 + 1) * 0.5 + 1,
                               rtol=1e-6)


@needs_gxx
@pytest.mark.parametrize("in_order", [True, False])
def test_gpu_library_nodes_and_loops_stay_on_the_device(tmp_path, monkeypatch,
                                                        small_reductions, in_order):
    """Vertical sums, cumulative sums, tridiagonal solves and reshapes run on the device
    (fused into kernels that run axis 0 in order, or, with that turned off, as library nodes
    on cupy and a CUDA routine), and loop carries stay there: the stand-in's cupy functions
    refuse host arrays, and no node of the plan runs its numpy reference on the host."""
    import sys

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(tmp_path))
    monkeypatch.setattr(gpu, "SEQUENTIAL_AXIS0", in_order)
    rng = np.random.default_rng(3)
    for dt in (np.float64,) if in_order else (np.float32,):  # float32 in order: below
        a, c, d = (rng.uniform(-0.4, 0.4, (6, 5, 4)).astype(dt) for _ in range(3))
        b = (2.0 + rng.random((6, 5, 4))).astype(dt)

        def prog(a, b, c, d):
            x = P["tridiagonal_solve"].bind(a * 1.0, b + 0.5, c, d)
            col = (x * x).sum(axis=0)  # a vertical integral
            z = np.cumsum(x, axis=0) + P["cumsum"].bind(x, axis=0, reverse=True)
            flat = (z * 2.0).reshape(6, 20)

            def body(i, carry):
                return carry * 0.5 + col.sum() * 1e-3 + np.cumsum(carry, axis=0) * 1e-2

            return sciml.fori_loop(0, 4, body, flat), col, z

        f = jit(prog, backend="gpu")
        want = eval_graph(make_graph(prog, a, b, c, d), a, b, c, d)
        for call in range(3):
            got = f(a, b, c, d)
            assert all(isinstance(g, _DevArray) for g in got)
            for g, w in zip(got, want):
                _check(gpu.to_host(g), w, np.dtype(dt).name, f"{np.dtype(dt).name} call {call}")
        plan = f.lower(a, b, c, d).plan
        nodes = [s for s in plan.segments if not isinstance(s, gpu._Segment)]
        names = sorted(n.prim.name for n, _, _ in nodes)
        if in_order:  # the reverse cumsum and the reshape are left library nodes
            assert names == ["cumsum", "fori_loop", "reshape"], names
            assert any(k.sequential for k in f.lower(a, b, c, d).kernels.values())
        else:
            assert {"tridiagonal_solve", "cumsum", "reduce_sum", "fori_loop"} <= set(names)
        for node, runner, device in nodes:
            assert device is not None or runner.on_device, node.prim.name


@needs_gxx
def test_gpu_loop_of_kernels_is_one_graph(tmp_path, monkeypatch, small_reductions):
    """From its second run, a fori_loop whose body is kernels only replays one graph of all
    its iterations (index read from the device), with new operands each run."""
    import sys

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(tmp_path))
    rng = np.random.default_rng(5)

    def prog(u, f):
        def body(i, c):
            u, acc = c
            lap = sum(snp.shift(u, o, boundary="zero") for o in ((1, 0), (-1, 0), (0, 1), (0, -1)))
            u = u + 0.1 * (lap - 4.0 * u) + f * i.astype(u.dtype)
            return u, acc + (u * u).sum(axis=1)  # a row reduction: a kernel on the GPU

        return sciml.fori_loop(1, 6, body, (u, np.zeros(u.shape[0], u.dtype)))

    f = jit(prog, backend="gpu")
    for call in range(4):
        u, g = rng.standard_normal((9, 7)), rng.standard_normal((9, 7))
        want = eval_graph(make_graph(prog, u, g), u, g)
        got = f(u, g)
        for a, w in zip(got, want):
            _check(gpu.to_host(a), w, "float64", f"loop, call {call}")
    loops = [r for n, r, _ in f.lower(u, g).plan.segments if isinstance(r, gpu._LoopGraphs)]
    assert len(loops) == 1 and list(loops[0].loops) == [(1, 6)]


@needs_gxx
def test_gpu_scan_over_slices_stops_capturing(tmp_path, monkeypatch, small_reductions):
    """A scan's body reads a new slice every step: its segment captures MISSES graphs that
    are never replayed, then launches directly; the results stay right."""
    import sys

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(tmp_path))
    monkeypatch.setattr(gpu._Segment, "MISSES", 3)
    captures = []
    monkeypatch.setattr(_FakeStream, "begin_capture",
                        lambda self: (captures.append(1), setattr(self, "recording", [])))

    def prog(c0, xs):
        def body(c, x):
            c = c * 0.9 + snp.shift(x, 1, boundary="zero") * 0.1
            return c, c * 2.0

        return sciml.scan(body, c0, xs)

    rng = np.random.default_rng(2)
    c0, xs = rng.standard_normal(6), rng.standard_normal((30, 6))
    f = jit(prog, backend="gpu")
    want = eval_graph(make_graph(prog, c0, xs), c0, xs)
    for call in range(3):
        for g, w in zip(f(c0, xs), want):
            _check(gpu.to_host(g), w, "float64", f"scan, call {call}")
    assert len(captures) == 3, len(captures)  # 89 without the limit


# -- axis 0 in order: one thread per column -------------------------------------------------


def _axis0_programs():
    rng = np.random.default_rng(11)
    tri = P["tridiagonal_solve"]
    progs = []
    for dt in (np.float64, np.float32):
        x, y = (rng.uniform(0.5, 1.5, (5, 7, 9)).astype(dt) for _ in range(2))
        progs += [
            (lambda x, y: ((x * y).sum(axis=0) * 2.0, (x - y).max(axis=0),
                           (x + 1.0).min(axis=0), (x * 0.5 + 0.75).prod(axis=0)), [x, y]),
            (lambda x, y: (np.cumsum(x * y, axis=0) + 1.0,
                           snp.shift(np.cumsum(x, axis=0), (1, 0, -1), boundary="edge")), [x, y]),
            (lambda x, y: (tri(x * -0.2, y + 2.0, x * -0.3, y),
                           tri(x * -0.2, y + 2.0, x * -0.3, x) * 3.0 + y.sum(axis=0)), [x, y]),
            (lambda x, y: ((x[:, :, 0] * 2.0).sum(axis=0),
                           np.cumsum(x[:, :, 1] + y[:, :, 1], axis=0)), [x, y]),
        ]
    ints = rng.integers(-5, 5, (4, 6, 3)).astype(np.int64)
    progs.append((lambda a: ((a * 3).sum(axis=0), np.cumsum(a + 1, axis=0)), [ints]))
    return progs


def test_axis0_work_runs_in_order_in_gpu_kernels(tmp_path):
    """Sums, maxima, products over axis 0, forward cumsums along it and tridiagonal solves
    of 3-D columns fuse into GPU kernels (no library node left) whose CUDA compiles."""
    sources = []
    for fn, args in _axis0_programs():
        c = gpu.cuda_source(fn, *args)
        assert all(isinstance(g, Cluster) for g in c.groups), [
            g.node.prim.name for g in c.groups if not isinstance(g, Cluster)]
        assert any(k.sequential for k in c.kernels.values())
        sources += list(c.sources.values())
    nvcc_ptx(sources, tmp_path)


@needs_gxx
def test_host_cuda_axis0_in_order(tmp_path, small_reductions):
    programs = _axis0_programs()
    for (fn, args), got in zip(programs, _run_on_host(programs, tmp_path)):
        want = _flat(eval_graph(make_graph(fn, *args), *args))
        for g, w in zip(got, want):
            _check(np.asarray(g), w, str(w.dtype), "axis 0 in order on the host")


def test_tall_narrow_axis0_work_stays_a_library_node_on_the_gpu():
    """One thread per column would leave the device idle on a tall, narrow array: its
    axis-0 sum and cumsum stay cupy's (parallel) library nodes; wide arrays fuse."""
    tall, wide = np.zeros((5000, 3)), np.zeros((8, 2048))
    for x, fused in ((tall, False), (wide, True)):
        c = gpu.cuda_source(lambda v: ((v * 2.0).sum(axis=0), np.cumsum(v + 1.0, axis=0)), x)
        library = [g.node.prim.name for g in c.groups if not isinstance(g, Cluster)]
        assert (library == []) == fused, (x.shape, library)


@needs_gxx
def test_gpu_while_loop_and_cond_on_the_device(tmp_path, monkeypatch, small_reductions):
    """A while_loop's test and a cond's index are read from device arrays; the carries and
    branch results stay on the device."""
    import sys

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(tmp_path))

    def prog(u):
        def body(c):
            k, v = c
            return k + 1, v * 0.5 + snp.shift(v, (1, 0), boundary="periodic") * 0.25

        k, v = sciml.while_loop(lambda c: (c[1] * c[1]).sum() > 1.0, body, (0, u))
        w = sciml.cond(k > 3, lambda a: a * 10.0, lambda a: a - 1.0, v)
        return k, v, w

    rng = np.random.default_rng(8)
    f = jit(prog, backend="gpu")
    for call in range(3):
        u = rng.standard_normal((6, 5)) * (1 + call)
        want = eval_graph(make_graph(prog, u), u)
        got = f(u)
        assert all(isinstance(g, _DevArray) for g in got)
        for g, w in zip(got, want):
            _check(gpu.to_host(g), np.asarray(w), str(np.asarray(w).dtype), f"call {call}")
