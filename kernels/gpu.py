"""The GPU target: prints a Kernel as CUDA C for ``cupy.RawModule`` and runs plans on the device.

Printing (needs nothing but Python; ``nvcc --ptx`` checks the result in the tests):

- no reduction: one thread per output point in a grid-stride loop over the flattened domain;
- reductions over trailing loops (``depth > 0``): one block per kept row (grid-stride over rows),
  threads stride over the reduced points, then a shared-memory tree reduction in the block;
- full reductions (``depth == 0``): two passes, deterministic (no atomics): ``kernel`` writes
  one partial per block, ``kernel_finish`` folds the partials in one block;
- stencil and layout reads print the loop IR's index expressions (clamp, wrap, guards), so the
  bounds handling is the CPU backend's;
- axis 0 in order (``Kernel.sequential``: sums over axis 0, forward cumsums, tridiagonal
  solves of columns): one thread per column runs all planes in order;
- float16/bfloat16 are stored as ``__half``/``__nv_bfloat16`` and computed in float; float32
  sums and products accumulate in double (the loop IR's accumulator dtype); max/min propagate
  NaN as numpy does.

Running needs cupy and a CUDA device (``available()`` says which is missing, naming the
backend). Arrays live on the device as cupy arrays: a jitted function takes numpy or cupy
arrays and returns cupy arrays (bfloat16, which cupy lacks, travels as its uint16 bits and comes
back as a host array). Control flow runs its subgraphs as gpu plans with the carries on the
device (a ``fori_loop`` of kernels becomes one CUDA graph); reshapes, and the sums, cumulative
sums and tridiagonal solves that do not fuse, run on the device (``DEVICE_LIBRARY``); other
library nodes (sorts, gathers, linear algebra) run their numpy reference on the host, with
copies each way. Runs of consecutive kernels are captured in CUDA graphs from the second call
of a plan (one per set of input addresses) and replayed afterwards. All plans share one stream;
nothing waits for the device until a result is read on the host.

>>> from kernels.loopir import Buffer, Idx, Kernel, Let, Load, Op, Store
>>> k = Kernel("k", (8,), [Buffer("in0", (8,), "float32")], [Buffer("out0", (8,), "float32")],
...            [Let("v0", Load("in0", (Idx(0),))), Let("v1", Op("exp", ("v0",), {}, "float32",
...             "float32")), Store("out0", (Idx(0),), "v1")])
>>> print(print_kernel(k).split("extern")[1])  # doctest: +NORMALIZE_WHITESPACE
"C" __global__ void k(const float* __restrict__ in0, float* __restrict__ out0) {
  for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < 8LL;
       p += (long long)blockDim.x * gridDim.x) {
    const long long i0 = p;
    const float v0 = in0[i0];
    const float v1 = expf(v0);
    out0[i0] = (float)(v1);
  }
}
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from autodiff import dtypes
from autodiff.errors import SciMLError, UnsupportedError
from autodiff.ir import Const as GConst

from . import templates
from .fuse import Cluster, classify
from .loopir import (
    Affine,
    Buffer,
    Clamp,
    Const,
    Idx,
    IndexValue,
    InRange,
    Kernel,
    Let,
    Lit,
    Load,
    Op,
    Store,
    Thomas,
    Wrap,
)

BLOCK = 256  # threads per block (the shared-memory reductions assume this power of two)
REDUCE_BLOCKS = 256  # partial results of a full reduction
MAX_GRID = 65535

CTYPE = {"float64": "double", "float32": "float", "float16": "__half", "bfloat16": "__nv_bfloat16",
         "int64": "long long", "int32": "int", "bool": "bool", "uint32": "unsigned int",
         "uint8": "unsigned char", "int8": "signed char", "int16": "short",
         "uint16": "unsigned short", "uint64": "unsigned long long"}
HALF = {"float16", "bfloat16"}

# -- scalar templates: BASE merged with CUDA's names ------------------------------------------

_MATH = {"exp": "exp", "expm1": "expm1", "log": "log", "log1p": "log1p", "sqrt": "sqrt",
         "sin": "sin", "cos": "cos", "tan": "tan", "tanh": "tanh", "sinh": "sinh", "cosh": "cosh",
         "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh",
         "arccosh": "acosh", "arctanh": "atanh", "erf": "erf", "floor": "floor", "ceil": "ceil",
         "round": "rint", "abs": "fabs"}


def _float_forms() -> dict:
    out = {}
    for prim, fn in _MATH.items():
        out[(prim, "float64")] = f"{fn}({{0}})"
        out[(prim, "float32")] = f"{fn}f({{0}})"
    for d, s in (("float64", ""), ("float32", "f")):
        one = "1.0" if d == "float64" else "1.0f"
        out.update({
            ("rsqrt", d): f"({one} / sqrt{s}({{0}}))", ("pow", d): f"pow{s}({{0}}, {{1}})",
            ("atan2", d): f"atan2{s}({{0}}, {{1}})", ("mod", d): "sc_fmod({0}, {1})",
            ("floor_divide", d): "sc_ffloordiv({0}, {1})", ("sign", d): "sc_fsign({0})",
            ("isnan", d): "isnan({0})", ("isinf", d): "isinf({0})",
            ("isfinite", d): "isfinite({0})", ("real", d): "{0}", ("conj", d): "{0}",
            ("imag", d): f"({one} * 0)",
        })
    return out


def _int_forms() -> dict:
    out = {}
    for d in ("int32", "int64"):
        out.update({
            ("abs", d): "(({0}) < 0 ? -({0}) : ({0}))", ("sign", d): "(({0} > 0) - ({0} < 0))",
            ("not", d): "(~{0})", ("mod", d): "sc_imod({0}, {1})",
            ("floor_divide", d): "sc_ifloordiv({0}, {1})", ("isnan", d): "false",
            ("isinf", d): "false", ("isfinite", d): "true", ("real", d): "{0}",
            ("conj", d): "{0}", ("imag", d): "0", ("pow", d): "sc_ipow({0}, {1})",
        })
    return out


_BOOL = {("not", "bool"): "(!{0})", ("neg", "bool"): "{0}", ("abs", "bool"): "{0}",
         ("sign", "bool"): "{0}", ("add", "bool"): "({0} || {1})",
         ("mul", "bool"): "({0} && {1})", ("and", "bool"): "({0} && {1})",
         ("or", "bool"): "({0} || {1})", ("xor", "bool"): "({0} != {1})",
         ("maximum", "bool"): "({0} || {1})", ("minimum", "bool"): "({0} && {1})",
         ("isnan", "bool"): "false", ("isinf", "bool"): "false", ("isfinite", "bool"): "true"}
CUDA_OVERRIDES = {
    "maximum": "sc_max({0}, {1})", "minimum": "sc_min({0}, {1})",
    "select": "({0} ? {1} : {2})", "integer_pow": templates.integer_pow,
    **_float_forms(), **_int_forms(), **_BOOL,
}
TABLE = templates.merged(templates.BASE, CUDA_OVERRIDES)
# BASE prints exp/log/... by their double names; float32 has its own (expf), others none.
for _p in ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh"):
    TABLE.pop(_p, None)

# Helpers the templates call: numpy's semantics where C's differ (NaN-propagating max/min,
# floor division and modulo with the divisor's sign, sign of NaN).
PRELUDE = r"""template <typename T> __device__ __forceinline__ T sc_max(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <typename T> __device__ __forceinline__ T sc_min(T a, T b) {
  return (a < b || a != a) ? a : b;
}
template <typename T> __device__ __forceinline__ T sc_fmod(T a, T b) {
  T r = fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
template <typename T> __device__ __forceinline__ T sc_ffloordiv(T a, T b) {
  return floor(a / b);
}
template <typename T> __device__ __forceinline__ T sc_fsign(T a) {
  return a != a ? a : (T)((a > 0) - (a < 0));
}
template <typename T> __device__ __forceinline__ T sc_imod(T a, T b) {
  if (b == 0) return 0;
  T r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
template <typename T> __device__ __forceinline__ T sc_ifloordiv(T a, T b) {
  if (b == 0) return 0;
  T q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
  return q;
}
template <typename T> __device__ __forceinline__ T sc_ipow(T a, T b) {
  T r = 1;
  while (b > 0) { if (b & 1) r *= a; a *= a; b >>= 1; }
  return r;
}
"""


# ---------------------------------------------------------------------------------------------
# Printing


def print_kernel(k: Kernel, table: dict | None = None, name: str | None = None) -> str:
    """CUDA C defining ``extern "C" __global__ void <name>`` (and ``<name>_finish`` for full
    reductions), to compile with ``cupy.RawModule`` or ``nvcc``."""
    p = _Printer(k, TABLE if table is None else table)
    name = name or k.name
    if k.sequential:
        body = p.in_order(name)
    elif not k.reductions:
        body = p.elementwise(name)
    elif k.depth == 0:
        body = p.full_reduction(name)
    else:
        body = p.row_reduction(name)
    heads = []
    if p.uses("float16"):
        heads.append("#include <cuda_fp16.h>")
    if p.uses("bfloat16"):
        heads.append("#include <cuda_bf16.h>")
    return "\n".join(heads + [PRELUDE, body])


class _Printer:
    def __init__(self, k: Kernel, table: dict):
        self.k, self.table = k, table
        self.scratch = scratch_buffers(k)
        self.dtypes = {b.name: b.dtype for b in k.inputs + k.outputs + self.scratch}
        self.shapes = {b.name: b.shape for b in k.inputs + k.outputs + self.scratch}
        self.types: dict[str, str] = {}  # scalar name -> compute dtype

    def uses(self, d: str) -> bool:
        return d in self.dtypes.values()

    # -- kernels ------------------------------------------------------------------------------

    def params(self, extra: list[str] = ()) -> str:
        ins = [f"const {CTYPE[b.dtype]}* __restrict__ {b.name}" for b in self.k.inputs]
        outs = [f"{CTYPE[b.dtype]}* __restrict__ {b.name}"
                for b in self.k.outputs + self.scratch]
        return ", ".join(ins + outs + list(extra))

    def in_order(self, name: str) -> str:
        """Axis 0 in order: one thread per column (a point of axes 1..), which runs every
        plane of its column, so sums over axis 0 read back the planes it wrote before. A
        tridiagonal solve's forward sweep runs at each plane (coefficients in ``tcp<j>``, the
        forward values in the solution's buffer), its backward sweep after the last plane:
        the ``tridiagonal_solve`` routine's arithmetic. Adjacent threads take adjacent
        columns, so every plane's loads and stores are coalesced."""
        k = self.k
        n0, cols = k.domain[0], math.prod(k.domain[1:])
        lines = [f'extern "C" __global__ void {name}({self.params()}) {{',
                 f"  for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
                 f"p < {cols}LL; p += (long long)blockDim.x * gridDim.x) {{"]
        lines += ["    " + s for s in self.decompose("p", k.domain[1:], 1)]
        lines.append(f"    for (long long i0 = 0; i0 < {n0}LL; ++i0) {{")
        lines += ["      " + s for s in self.statements()]
        lines.append("    }")
        for t in (s for s in k.body if isinstance(s, Thomas)):
            at = f"i0 * {cols}LL + p"
            lines += [f"    for (long long i0 = {n0 - 2}LL; i0 >= 0; --i0) {{",
                      f"      {t.buf}[{at}] = {t.buf}[{at}] - tcp{t.slot}[{at}] * "
                      f"{t.buf}[{at} + {cols}LL];",
                      "    }"]
        return "\n".join(lines + ["  }", "}", ""])

    def thomas(self, t: Thomas) -> list[str]:
        """One plane of a forward sweep: ``r = 1 / (b - a cp')``, ``cp = c r``,
        ``x = (d - a x') r``, with ``r = 1 / b`` and ``x = d r`` on plane 0."""
        cols = math.prod(self.k.domain[1:])
        ty = CTYPE[self.dtypes[t.buf]]
        at, prev = f"i0 * {cols}LL + p", f"(i0 - 1) * {cols}LL + p"
        return [f"const {ty} tr{t.slot} = ({ty})1 / (i0 == 0 ? {t.diag} : "
                f"({t.diag} - {t.sub} * tcp{t.slot}[{prev}]));",
                f"tcp{t.slot}[{at}] = {t.sup} * tr{t.slot};",
                f"{t.buf}[{at}] = (i0 == 0 ? {t.rhs} : ({t.rhs} - {t.sub} * {t.buf}[{prev}])) "
                f"* tr{t.slot};"]

    def elementwise(self, name: str) -> str:
        n = math.prod(self.k.domain)
        lines = [f'extern "C" __global__ void {name}({self.params()}) {{',
                 f"  for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
                 f"p < {n}LL; p += (long long)blockDim.x * gridDim.x) {{"]
        lines += ["    " + s for s in self.decompose("p", self.k.domain, 0)]
        lines += ["    " + s for s in self.statements()]
        return "\n".join(lines + ["  }", "}", ""])

    def row_reduction(self, name: str) -> str:
        k = self.k
        rows, cols = math.prod(k.domain[:k.depth]), math.prod(k.domain[k.depth:])
        lines = [f'extern "C" __global__ void {name}({self.params()}) {{']
        lines += [f"  __shared__ {CTYPE[r.acc_dtype]} sh{j}[{BLOCK}];"
                  for j, r in enumerate(k.reductions)]
        lines.append(f"  for (long long row = blockIdx.x; row < {rows}LL; row += gridDim.x) {{")
        lines += [f"    {CTYPE[r.acc_dtype]} acc{j} = {self.init(r)};"
                  for j, r in enumerate(k.reductions)]
        lines.append(f"    for (long long col = threadIdx.x; col < {cols}LL; col += blockDim.x)"
                     " {")
        lines += ["      " + s for s in self.decompose("row", k.domain[:k.depth], 0)]
        lines += ["      " + s for s in self.decompose("col", k.domain[k.depth:], k.depth)]
        lines += ["      " + s for s in self.statements()]
        lines += ["      " + self.accumulate(j, r) for j, r in enumerate(k.reductions)]
        lines.append("    }")
        lines += ["    " + s for s in self.block_reduce()]
        lines += [f"    if (threadIdx.x == 0) {r.buf}[row] = {self.store(f'sh{j}[0]', r.buf)};"
                  for j, r in enumerate(k.reductions)]
        lines += ["    __syncthreads();  // sh is reused by the next row", "  }", "}", ""]
        return "\n".join(lines)

    def full_reduction(self, name: str) -> str:
        """Pass 1: one partial per block (grid-stride); pass 2: one block folds the partials."""
        k = self.k
        n = math.prod(k.domain)
        reds = k.reductions
        parts = [f"{CTYPE[r.acc_dtype]}* __restrict__ part{j}" for j, r in enumerate(reds)]
        lines = [f'extern "C" __global__ void {name}({self.params(parts)}) {{']
        lines += [f"  __shared__ {CTYPE[r.acc_dtype]} sh{j}[{BLOCK}];" for j, r in enumerate(reds)]
        lines += [f"  {CTYPE[r.acc_dtype]} acc{j} = {self.init(r)};" for j, r in enumerate(reds)]
        lines.append(f"  for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
                     f"p < {n}LL; p += (long long)blockDim.x * gridDim.x) {{")
        lines += ["    " + s for s in self.decompose("p", k.domain, 0)]
        lines += ["    " + s for s in self.statements()]
        lines += ["    " + self.accumulate(j, r) for j, r in enumerate(reds)]
        lines.append("  }")
        lines += ["  " + s for s in self.block_reduce()]
        lines += [f"  if (threadIdx.x == 0) part{j}[blockIdx.x] = sh{j}[0];"
                  for j in range(len(reds))]
        lines += ["}", ""]
        cparts = [f"const {CTYPE[r.acc_dtype]}* __restrict__ part{j}" for j, r in enumerate(reds)]
        outs = [f"{CTYPE[b.dtype]}* __restrict__ {b.name}" for b in k.outputs]
        lines.append(f'extern "C" __global__ void {name}_finish({", ".join(cparts + outs)}) {{')
        lines += [f"  __shared__ {CTYPE[r.acc_dtype]} sh{j}[{BLOCK}];" for j, r in enumerate(reds)]
        lines += [f"  {CTYPE[r.acc_dtype]} acc{j} = {self.init(r)};" for j, r in enumerate(reds)]
        lines.append(f"  for (int b = threadIdx.x; b < {REDUCE_BLOCKS}; b += blockDim.x) {{")
        lines += ["    " + self.accumulate(j, r, f"part{j}[b]") for j, r in enumerate(reds)]
        lines.append("  }")
        lines += ["  " + s for s in self.block_reduce()]
        lines += [f"  if (threadIdx.x == 0) {r.buf}[0] = {self.store(f'sh{j}[0]', r.buf)};"
                  for j, r in enumerate(reds)]
        return "\n".join(lines + ["}", ""])

    def decompose(self, flat: str, dims, first: int) -> list[str]:
        """Loop indices i<first>.. from a flat row-major position over ``dims``."""
        out, stride = [], math.prod(dims)
        for d, n in enumerate(dims):
            stride //= n
            e = flat if stride == 1 else f"({flat} / {stride}LL)"
            if d > 0:
                e = f"({e} % {n}LL)"
            out.append(f"const long long i{first + d} = {e};")
        return out

    # -- reductions ---------------------------------------------------------------------------

    def init(self, r) -> str:
        d = r.acc_dtype
        if d == "bool":
            return {"sum": "false", "prod": "true", "max": "false", "min": "true"}[r.op]
        if r.op in ("sum", "prod"):
            return f"({CTYPE[d]})({0 if r.op == 'sum' else 1})"
        if d.startswith(("int", "uint")):
            info = np.iinfo(dtypes.dtype(d))
            v = info.min if r.op == "max" else info.max
            return f"({CTYPE[d]})({v}{'LL' if d == 'int64' else ''})" if v != -(2 ** 63) else \
                "(-9223372036854775807LL - 1)"
        return _literal(-math.inf if r.op == "max" else math.inf, d)

    def combine(self, r, a, b) -> str:
        if r.acc_dtype == "bool":
            return {"sum": f"({a} || {b})", "prod": f"({a} && {b})", "max": f"({a} || {b})",
                    "min": f"({a} && {b})"}[r.op]
        return {"sum": f"({a} + {b})", "prod": f"({a} * {b})", "max": f"sc_max({a}, {b})",
                "min": f"sc_min({a}, {b})"}[r.op]

    def accumulate(self, j, r, value=None) -> str:
        v = value or f"({CTYPE[r.acc_dtype]})({r.value})"
        return f"acc{j} = {self.combine(r, f'acc{j}', v)};"

    def block_reduce(self) -> list[str]:
        reds = self.k.reductions
        out = [f"sh{j}[threadIdx.x] = acc{j};" for j in range(len(reds))]
        out += ["__syncthreads();",
                f"for (int s = {BLOCK // 2}; s > 0; s >>= 1) {{",
                "  if (threadIdx.x < s) {"]
        out += [f"    sh{j}[threadIdx.x] = {self.combine(r, f'sh{j}[threadIdx.x]', f'sh{j}[threadIdx.x + s]')};"  # noqa: E501
                for j, r in enumerate(reds)]
        return out + ["  }", "  __syncthreads();", "}"]

    # -- statements ---------------------------------------------------------------------------

    def statements(self) -> list[str]:
        out = []
        for s in self.k.body:
            if isinstance(s, Let):
                dt = self.dtype_of(s.expr)
                self.types[s.name] = dt
                out.append(f"const {CTYPE[dt]} {s.name} = {self.expr(s.expr)};")
            elif isinstance(s, Store):
                out.append(f"{s.buf}[{self.flat(s.buf, s.index)}] = {self.store(s.value, s.buf)};")
            elif isinstance(s, Thomas):
                out += self.thomas(s)
        return out

    def dtype_of(self, e) -> str:
        if isinstance(e, Load):
            d = self.dtypes[e.buf]
            return "float32" if d in HALF else d
        if isinstance(e, (Const, IndexValue)):
            return e.dtype
        if isinstance(e, InRange):
            return "bool"
        return e.dtype

    def store(self, value: str, buf: str) -> str:
        d = self.dtypes[buf]
        if d == "float16":
            return f"__float2half_rn({value})"
        if d == "bfloat16":
            return f"__float2bfloat16_rn({value})"
        return f"({CTYPE[d]})({value})"

    def expr(self, e) -> str:
        if isinstance(e, Load):
            v = f"{e.buf}[{self.flat(e.buf, e.index)}]"
            d = self.dtypes[e.buf]
            return {"float16": f"__half2float({v})", "bfloat16": f"__bfloat162float({v})"}.get(
                d, v)
        if isinstance(e, Const):
            return _literal(e.value, e.dtype)
        if isinstance(e, IndexValue):
            return f"({CTYPE[e.dtype]})({self.ix(e.index)})"
        if isinstance(e, InRange):
            return " && ".join(f"({lo}LL <= {self.ix(x)} && {self.ix(x)} < {hi}LL)"
                               for x, lo, hi in e.checks)
        if isinstance(e, Op):
            return self.op(e)
        raise TypeError(f"gpu printer: unknown expression {e!r}")

    def op(self, e: Op) -> str:
        if e.prim == "convert":
            return _convert(e.args[0], e.in_dtype, str(e.params["new_dtype"]))
        text = templates.render(self.table, e.prim, list(e.args), e.params, e.in_dtype)
        return f"({CTYPE[e.dtype]})({text})" if e.dtype != e.in_dtype else text

    def flat(self, buf: str, index) -> str:
        """Row-major offset of ``index`` in ``buf``."""
        shape = self.shapes[buf]
        terms, stride = [], 1
        for x, n in reversed(list(zip(index, shape))):
            if not (isinstance(x, Lit) and x.value == 0):
                terms.append(self.ix(x) if stride == 1 else f"{self.ix(x)} * {stride}LL")
            stride *= n
        return " + ".join(reversed(terms)) or "0"

    def ix(self, x) -> str:
        if isinstance(x, Idx):
            return f"i{x.dim}"
        if isinstance(x, Lit):
            return f"{x.value}LL"
        if isinstance(x, Affine):
            s = self.ix(x.base) if x.scale == 1 else f"{x.scale}LL * {self.ix(x.base)}"
            return f"({s} + {x.offset}LL)" if x.offset else s
        if isinstance(x, Clamp):
            return f"min(max({self.ix(x.e)}, {x.lo}LL), {x.hi}LL)"
        if isinstance(x, Wrap):  # e in [-n, 2n): one period added keeps % non-negative
            return f"(({self.ix(x.e)} + {x.n}LL) % {x.n}LL)"
        raise TypeError(f"gpu printer: unknown index expression {x!r}")


def _convert(arg: str, src: str, dst: str) -> str:
    if dst == "bool":
        return f"({arg} != 0)"
    if dst == "float16":  # round through the storage type, compute in float
        return f"__half2float(__float2half_rn((float)({arg})))"
    if dst == "bfloat16":
        return f"__bfloat162float(__float2bfloat16_rn((float)({arg})))"
    return f"({CTYPE[dst]})({arg})"


def _literal(value, dtype: str) -> str:
    if dtype == "bool":
        return "true" if value else "false"
    if dtype in ("float32", "float64", "float16", "bfloat16"):
        x = float(value)
        f32 = dtype != "float64"
        if math.isnan(x):
            return "__int_as_float(0x7fc00000)" if f32 else "__longlong_as_double(0x7ff8000000000000LL)"  # noqa: E501
        if math.isinf(x):
            inf = "__int_as_float(0x7f800000)" if f32 else "__longlong_as_double(0x7ff0000000000000LL)"  # noqa: E501
            return inf if x > 0 else f"(-{inf})"
        text = repr(x) if "e" in repr(x) or "." in repr(x) else repr(x) + ".0"
        return f"{text}f" if f32 else text
    v = int(value)
    return f"({CTYPE[dtype]})({v}LL)"


# ---------------------------------------------------------------------------------------------
# What the GPU target fuses

_GPU_DTYPES = {"bool", "int32", "int64", "float16", "bfloat16", "float32", "float64"}
# Concatenations are rewritten into padded reads and selects that fuse (kernels/concat.py).
EXPAND_CONCATENATE = True
# A cond of kernel work runs both branches and selects (kernels/ifconvert.py): reading its
# predicate would wait for the device, and a loop body with a host branch is not one CUDA graph.
IF_CONVERT = True
# Sums over axis 0, forward cumulative sums along it and tridiagonal solves of 3-D columns fuse
# with the kernels computing their operands (kernels/fuse.py): a thread runs a column in order.
SEQUENTIAL_AXIS0 = True


IN_ORDER_MIN_COLUMNS = 1024


def _enough_columns(shape) -> bool:
    """Whether axis-0 work on an array of ``shape`` runs in order on the GPU: one thread per
    column must give the device enough threads for its planes. A tall, narrow array (a
    million rows, three columns) is left to cupy's parallel reductions and scans."""
    return math.prod(shape[1:]) >= min(IN_ORDER_MIN_COLUMNS, shape[0])


def scratch_buffers(k: Kernel) -> list:
    """The device buffers a kernel works in besides its outputs, passed after them: its
    accumulators (``k.scratch``) and each tridiagonal solve's coefficients ``tcp<j>``."""
    if not k.sequential:
        return list(k.scratch)
    cols = math.prod(k.domain[1:])
    dts = {b.name: b.dtype for b in k.outputs}
    return list(k.scratch) + [Buffer(f"tcp{s.slot}", (k.domain[0], cols), dts[s.buf])
                              for s in k.body if isinstance(s, Thomas)]


def can_fuse(node) -> bool:
    """Whether this printer can put ``node`` in a kernel (complex numbers run on the host)."""
    avals = [a.aval for a in node.inputs] + [o.aval for o in node.outputs]
    if not {str(a.dtype) for a in avals} <= _GPU_DTYPES:
        return False
    if classify(node, True) in ("lead", "scan", "solve"):
        return _enough_columns(node.inputs[-1].aval.shape)
    name = node.prim.name
    if "elementwise" not in node.prim.tags or name in ("convert", "select"):
        return True
    in_dt = str(node.inputs[-1].aval.dtype)
    in_dt = "float32" if in_dt in HALF else in_dt
    return templates.lookup(TABLE, name, in_dt) is not None


def cuda_source(fun, *args) -> object:
    """The compiled form of ``fun`` for the gpu without compiling or running anything
    (``Compiled`` with graph, groups, kernels and CUDA sources), so it works without a GPU."""
    from autodiff.trace import make_graph

    from .jit import compile_graph

    return compile_graph(make_graph(fun, *args), "gpu", build=False)


# ---------------------------------------------------------------------------------------------
# The runtime (cupy)


def _cupy():
    try:
        import cupy
    except ImportError as e:
        raise UnsupportedError(
            "jit: backend 'gpu' needs cupy (pip install 'sciml[gpu]', i.e. cupy-cuda12x) and a "
            f"CUDA device; cupy is not importable here ({e}). Use backend='cpu', or read the "
            "generated CUDA with kernels.gpu.cuda_source(f, *args)") from None
    return cupy


def available():
    """Raise UnsupportedError naming what is missing: cupy, or a CUDA device."""
    cp = _cupy()
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # cupy raises its own CUDARuntimeError without a driver
        raise UnsupportedError(f"jit: backend 'gpu' found no CUDA device ({e})") from None
    if n == 0:
        raise UnsupportedError("jit: backend 'gpu' found no CUDA device")


def as_array(x, aval):
    """Device arrays stay on the device (cast when the dtype differs); the rest via numpy."""
    if hasattr(x, "__cuda_array_interface__"):
        return x if x.dtype == aval.dtype else x.astype(aval.dtype)
    arr = np.asarray(x)
    return arr if arr.dtype == aval.dtype else arr.astype(aval.dtype)


def _device_dtype(d: str):
    return np.dtype(np.uint16) if d == "bfloat16" else np.dtype(dtypes.dtype(d))


def to_device(x, dtype: str):
    """A cupy array holding ``x`` in storage dtype ``dtype`` (bfloat16 as its uint16 bits)."""
    cp = _cupy()
    if hasattr(x, "__cuda_array_interface__"):
        return x.view(np.uint16) if dtype == "bfloat16" and x.dtype != np.uint16 else x
    arr = np.asarray(x)
    if dtype == "bfloat16":
        arr = arr.astype(dtypes.bfloat16).view(np.uint16)
    elif arr.dtype != dtypes.dtype(dtype):
        arr = arr.astype(dtypes.dtype(dtype))
    return cp.asarray(np.ascontiguousarray(arr).reshape(arr.shape))  # 0-d stays 0-d


def to_host(x, dtype: str | None = None) -> np.ndarray:
    """A numpy array of a device (or host) array; uint16 bits become bfloat16 for ``dtype``."""
    arr = x.get() if hasattr(x, "__cuda_array_interface__") else np.asarray(x)
    if dtype == "bfloat16" and arr.dtype == np.uint16:
        arr = arr.view(dtypes.bfloat16)
    return arr


class GPUKernel:
    """One compiled kernel: launches it (and the finishing pass of a full reduction)."""

    def __init__(self, source: str, kernel: Kernel):
        cp = _cupy()
        self.kernel = kernel
        try:
            module = cp.RawModule(code=source, options=("--std=c++17",))
            self.fn = module.get_function("kernel")
            self.finish = (module.get_function("kernel_finish")
                           if kernel.reductions and kernel.depth == 0 else None)
        except Exception as e:
            raise SciMLError(f"gpu: kernel {kernel.name} failed to compile: {e}") from None
        self.parts = [cp.empty(REDUCE_BLOCKS, dtypes.dtype(r.acc_dtype))
                      for r in kernel.reductions] if self.finish is not None else []
        self.scratch = tuple(cp.empty(b.shape, _device_dtype(b.dtype))
                             for b in scratch_buffers(kernel))

    def grid(self) -> int:
        k = self.kernel
        if self.finish is not None:
            return REDUCE_BLOCKS
        if k.sequential:  # one thread per column
            return max(1, min(-(-math.prod(k.domain[1:]) // BLOCK), MAX_GRID))
        if k.reductions:
            return min(math.prod(k.domain[:k.depth]), MAX_GRID)
        return max(1, min(-(-math.prod(k.domain) // BLOCK), MAX_GRID))

    def __call__(self, *arrays):
        n_in = len(self.kernel.inputs)
        if self.finish is None:
            self.fn((self.grid(),), (BLOCK,), tuple(arrays) + self.scratch)
            return
        self.fn((REDUCE_BLOCKS,), (BLOCK,), tuple(arrays) + tuple(self.parts))
        self.finish((1,), (BLOCK,), tuple(self.parts) + tuple(arrays[n_in:]))


def compile_kernel(source: str, kernel: Kernel):
    """The jit hook: compile with NVRTC through cupy (cupy keeps its own kernel cache)."""
    return GPUKernel(source, kernel)


_STREAMS: dict = {}  # (cupy, device id) -> the stream every plan runs on
_LOOP_CAPTURE = {"on": False}  # a whole loop is being captured: plans launch into it


def _stream():
    """A blocking stream of sciml's own per device, shared by all plans: kernels, copies and
    library calls are ordered on it (it also waits for work on the legacy default stream),
    a loop's plans can be captured together, and CUDA graphs cannot capture the legacy
    default stream."""
    cp = _cupy()
    key = (id(cp), cp.cuda.Device().id)
    stream = _STREAMS.get(key)
    if stream is None:
        stream = _STREAMS[key] = cp.cuda.Stream(non_blocking=False)
    return stream


class Plan:
    """Runs kernels on the device and library nodes on the host; captures runs of kernels in
    CUDA graphs from the second call on (same constructor as ``kernels.plan.Plan``)."""

    def __init__(self, graph, groups, kernels, fns, runner_for, reuse_outputs=False,
                 use_graphs=True):
        self.graph, self.reuse_outputs, self.use_graphs = graph, reuse_outputs, use_graphs
        self.segments: list = []  # lists of kernel steps, or one library step
        for g in groups:
            if isinstance(g, Cluster):
                step = (fns[g.index], kernels[g.index], g.inputs, g.outputs)
                if self.segments and isinstance(self.segments[-1], _Segment):
                    self.segments[-1].steps.append(step)
                else:
                    self.segments.append(_Segment([step]))
            else:
                self.segments.append((g.node, runner_for(g.node), _device_form(g.node)))
        self.dtypes = [str(p.aval.dtype) for p in graph.params]
        self.calls = 0

    def __call__(self, args) -> list:
        stream = _stream()
        env = {p.id: (a, d) for p, a, d in zip(self.graph.params, args, self.dtypes)}
        capture = self.use_graphs and self.calls >= 1 and not _LOOP_CAPTURE["on"]
        with stream:
            for seg in self.segments:
                if isinstance(seg, _Segment):
                    seg.run(env, stream, capture)
                else:
                    _run_library(seg, env)
            outs = [self._output(o, env) for o in self.graph.outputs]
        self.calls += 1
        return outs

    def kernels_only(self) -> bool:
        """Whether every step is a kernel (a loop over this plan can be one CUDA graph)."""
        outs = self.graph.outputs
        return (all(isinstance(s, _Segment) for s in self.segments)
                and not any(isinstance(o, GConst) for o in outs)
                and not any(d in HALF for d in self.dtypes + [str(o.aval.dtype) for o in outs]))

    def _output(self, o, env):
        if isinstance(o, GConst):
            return to_device(o.value, str(o.aval.dtype)) if o.aval.dtype != dtypes.bfloat16 \
                else o.value.copy()
        x, d = env[o.id]
        if d == "bfloat16":
            return to_host(x, d).reshape(o.aval.shape)
        x = to_device(x, d).reshape(o.aval.shape)
        return x if self.reuse_outputs else x.copy()

    def count_kernels(self) -> int:
        return sum(len(s.steps) for s in self.segments if isinstance(s, _Segment))


def _get(env, a):
    if isinstance(a, GConst):
        return a.value, str(a.aval.dtype)
    return env[a.id]


def _run_library(seg, env):
    """A library node: on the device where the node has a device form (``DEVICE_LIBRARY``) or
    is control flow (its subgraphs run as gpu plans), else its numpy reference on the host."""
    node, runner, device = seg
    if device is not None:
        args = [to_device(*_get(env, a)) for a in node.inputs]
        out = device(_cupy(), *args, **dict(node.params))
    elif getattr(runner, "on_device", False):
        out = runner(*[to_device(*_get(env, a)) for a in node.inputs])
    else:
        out = runner(*[to_host(*_get(env, a)) for a in node.inputs])
    outs = out if node.prim.multiple_results else (out,)
    for v, o in zip(node.outputs, outs):
        d = str(v.aval.dtype)
        if hasattr(o, "__cuda_array_interface__"):
            if d != "bfloat16" and o.dtype != v.aval.dtype:
                o = o.astype(v.aval.dtype)
        else:
            o = np.asarray(o)
            if o.dtype != v.aval.dtype:
                o = o.astype(v.aval.dtype)
        env[v.id] = (o, d)


# -- library nodes that run on the device (cupy, or a CUDA routine of our own) ---------------
# Their operands and results stay on the device: no copies to the host between kernels.

_DEVICE_NUMERIC = {"float32", "float64", "int32", "int64"}


def _device_form(node):
    """The device form of a library node, or None (then its numpy reference runs on the
    host). Half types are stored as their bits on the device, so only reshapes take them."""
    run = DEVICE_LIBRARY.get(node.prim.name)
    if run is None:
        return None
    if node.prim.name == "reshape":
        return run
    names = {str(a.aval.dtype) for a in node.inputs} | {str(o.aval.dtype) for o in node.outputs}
    return run if names <= _DEVICE_NUMERIC else None


def _reduction(name):
    def run(cp, x, *, axes, keepdims=False):
        return getattr(cp, name)(x, axis=tuple(axes), keepdims=keepdims)

    return run


def _cumsum(cp, x, *, axis, reverse=False):
    if reverse:
        return cp.flip(cp.cumsum(cp.flip(x, axis), axis=axis), axis)
    return cp.cumsum(x, axis=axis)


TRIDIAGONAL = r"""
extern "C" __global__ void tridiagonal(const {T}* __restrict__ a, const {T}* __restrict__ b,
                                       const {T}* __restrict__ c, const {T}* __restrict__ d,
                                       {T}* __restrict__ cp, {T}* __restrict__ x) {{
  // Thomas algorithm along axis 0, one thread per column (adjacent threads, adjacent columns)
  const long long m = {M}LL;
  const int n = {N};
  for (long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x; col < m;
       col += (long long)blockDim.x * gridDim.x) {{
    {T} r = ({T})1 / b[col];
    cp[col] = n > 1 ? c[col] * r : ({T})0;
    x[col] = d[col] * r;
    for (int k = 1; k < n; ++k) {{
      const long long i = k * m + col;
      r = ({T})1 / (b[i] - a[i] * cp[i - m]);
      cp[i] = k < n - 1 ? c[i] * r : ({T})0;
      x[i] = (d[i] - a[i] * x[i - m]) * r;
    }}
    for (int k = n - 2; k >= 0; --k) {{
      const long long i = k * m + col;
      x[i] = x[i] - cp[i] * x[i + m];
    }}
  }}
}}
"""
_ROUTINES: dict = {}


def _routine(source: str, name: str):
    fn = _ROUTINES.get(source)
    if fn is None:
        try:
            fn = _cupy().RawModule(code=source, options=("--std=c++17",)).get_function(name)
        except Exception as e:
            raise SciMLError(f"gpu: routine {name} failed to compile: {e}") from None
        _ROUTINES[source] = fn
    return fn


def _tridiagonal(cp, a, b, c, d):
    """Batched tridiagonal solves along axis 0, as the numpy reference computes them."""
    n, m = d.shape[0], d.size // max(d.shape[0], 1)
    x = cp.empty(d.shape, d.dtype)
    if d.size == 0:
        return x
    fn = _routine(TRIDIAGONAL.format(T=CTYPE[str(d.dtype)], M=m, N=n), "tridiagonal")
    scratch = cp.empty(d.shape, d.dtype)
    grid = max(1, min(-(-m // BLOCK), MAX_GRID))
    fn((grid,), (BLOCK,), tuple(cp.ascontiguousarray(v) for v in (a, b, c, d)) + (scratch, x))
    return x


DEVICE_LIBRARY = {
    "reshape": lambda cp, x, *, new_shape: x.reshape(new_shape),
    "transpose": lambda cp, x, *, permutation: cp.ascontiguousarray(x.transpose(permutation)),
    "reduce_sum": _reduction("sum"), "reduce_prod": _reduction("prod"),
    "reduce_max": _reduction("max"), "reduce_min": _reduction("min"),
    "cumsum": _cumsum,
    "tridiagonal_solve": lambda cp, a, b, c, d: _tridiagonal(cp, a, b, c, d),
}


class _Segment:
    """Consecutive kernel steps with plan-owned output buffers, replayed as CUDA graphs.

    A graph replays fixed addresses. Inputs from outside the segment that are contiguous
    device arrays of the kernel's dtype are read where they are; a graph is captured for each
    set of input addresses (a few are kept: a loop's ping-pong buffers give two) and replayed
    when the same addresses come again. Other inputs (host arrays, views, half types, arrays
    overlapping the segment's own outputs) are copied into buffers the segment owns."""

    GRAPHS = 4  # graphs kept per segment (least recently captured goes first)
    MISSES = 8  # captures beyond the replays after which the segment stops capturing

    def __init__(self, steps):
        self.steps = steps  # the plan appends to it while it groups kernels
        self.buffers: dict = {}  # ("out", var id) / ("in", key) -> device array it owns
        self.graphs: dict = {}  # input addresses -> captured graph
        self.misses = self.replays = 0
        self.inputs = None  # key -> (var or const, buffer spec): the inputs from outside

    def _outside_inputs(self) -> dict:
        made = {o.id for _, _, _, outs in self.steps for o in outs}
        inputs = {}
        for _, k, ins, _ in self.steps:
            for a, b in zip(ins, k.inputs):
                key = id(a) if isinstance(a, GConst) else a.id
                if key not in made:
                    inputs.setdefault(key, (a, b))
        return inputs

    def _buffer(self, key, shape, dtype):
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = _cupy().empty(shape, _device_dtype(dtype))
        return buf

    def _prepare(self):
        """Once: the outside inputs, the output buffers (they exist before any capture), the
        address ranges they cover, and the env entries they give."""
        self.inputs = self._outside_inputs()
        self.dtypes = {key: _device_dtype(b.dtype) for key, (_, b) in self.inputs.items()}
        self.outputs = []
        for _, k, _, outs in self.steps:
            for v, b in zip(outs, k.outputs):
                buf = self._buffer(("out", v.id), b.shape, b.dtype)
                self.outputs.append((v.id, (buf.reshape(v.aval.shape), b.dtype)))
        self.ranges = sorted((b.data.ptr, b.data.ptr + b.nbytes) for b in self.buffers.values())
        self.starts = [lo for lo, _ in self.ranges]

    def _owned_overlap(self, x) -> bool:
        """Whether ``x`` shares memory with an output buffer of this segment."""
        lo = x.data.ptr
        i = bisect.bisect_right(self.starts, lo + x.nbytes - 1) - 1
        return i >= 0 and self.ranges[i][1] > lo and x.nbytes > 0

    def _place(self, env) -> dict:
        """Each outside input as the array the kernels read: in place, or a copy we own
        (constants are copied once)."""
        placed = {}
        for key, (a, b) in self.inputs.items():
            if isinstance(a, GConst):
                buf = self.buffers.get(("in", key))
                if buf is None:
                    buf = self._buffer(("in", key), b.shape, b.dtype)
                    buf[...] = to_device(a.value, str(a.aval.dtype)).reshape(b.shape)
                placed[key] = buf
                continue
            x, d = env[a.id]
            if (d not in HALF and hasattr(x, "__cuda_array_interface__")
                    and x.dtype == self.dtypes[key] and x.flags.c_contiguous
                    and not self._owned_overlap(x)):
                placed[key] = x.reshape(b.shape) if x.shape != b.shape else x
            else:
                buf = self._buffer(("in", key), b.shape, b.dtype)
                buf[...] = to_device(x, d).reshape(b.shape)
                placed[key] = buf
        return placed

    def run(self, env, stream, capture: bool):
        if self.inputs is None:
            self._prepare()
        placed = self._place(env)
        addresses = tuple(x.data.ptr for x in placed.values()) if capture else None
        graph = self.graphs.get(addresses) if capture else None
        if graph is None and capture and self.misses < self.MISSES + self.replays:
            # New addresses: capture. Inputs whose addresses change every call (a scan's
            # slices) would capture every time, so once captures outnumber replays by
            # MISSES the segment launches its kernels directly.
            self.misses += 1
            if len(self.graphs) >= self.GRAPHS:
                self.graphs.pop(next(iter(self.graphs)))
            stream.begin_capture()
            self._launch(placed)
            graph = self.graphs[addresses] = stream.end_capture()
        elif graph is not None:
            self.replays += 1
        if graph is None:
            self._launch(placed)
        else:
            graph.launch(stream)
        env.update(self.outputs)

    def _launch(self, placed):
        for fn, k, ins, outs in self.steps:
            args = []
            for a, b in zip(ins, k.inputs):
                key = id(a) if isinstance(a, GConst) else a.id
                src = self.buffers.get(("out", key))
                args.append(src.reshape(b.shape) if src is not None else placed[key])
            args += [self.buffers[("out", v.id)] for v, b in zip(outs, k.outputs)]
            fn(*args)


def library_runner(node):
    """Control flow runs its subgraphs as gpu plans; carries stay on the device."""
    from .jit import CONTROL_RUNNERS, compile_graph

    make = CONTROL_RUNNERS.get(node.prim.name)
    if make is None:
        return None
    plans: dict = {}

    def sub(g, args, slot=None):
        """Run ``g``; ``slot`` 0/1 picks one of two plans that own their outputs (ping-pong,
        as on the CPU), so that loop steps allocate nothing."""
        plan = plans.get((id(g), slot))
        if plan is None:
            plan = compile_graph(g, "gpu", reuse_outputs=slot is not None).plan
            plans[(id(g), slot)] = plan
        return plan(list(args))

    run = make(node, sub)
    if node.prim.name == "fori_loop":
        run = _LoopGraphs(node, sub, plans, run)
    run.on_device = True
    return run


class _LoopGraphs:
    """A ``fori_loop`` whose body is kernels only, as one CUDA graph of all its iterations.

    The first run goes step by step (the body's two ping-pong plans compile and make their
    buffers). Later runs copy the loop's operands into buffers the loop owns, so that the
    addresses are the same every time, and replay one graph per (lower, upper): one launch
    instead of a Python call per iteration. The body reads its index from a device array of
    all indices, as a graph cannot copy from the host at replay."""

    def __init__(self, node, sub, plans, generic):
        self.body, self.n = node.params["body"], node.params["num_carry"]
        self.sub, self.plans, self.generic = sub, plans, generic
        self.loops: dict = {}  # (lower, upper) -> (graph, owned operands, final carry, index)
        self.runs = 0

    def _ready(self, lo: int, hi: int) -> bool:
        if hi - lo < 2:
            return False
        slots = [self.plans.get((id(self.body), s)) for s in (0, 1)]
        return all(p is not None and p.calls >= 1 and p.use_graphs and p.kernels_only()
                   for p in slots)

    def __call__(self, lower_, upper, *args):
        lo, hi = int(lower_), int(upper)
        self.runs += 1
        if self.runs == 1 or not self._ready(lo, hi):
            return self.generic(lower_, upper, *args)
        cp, stream = _cupy(), _stream()
        loop = self.loops.get((lo, hi))
        if loop is None:
            owned = [cp.empty(a.shape, a.dtype) for a in args]
            for buf, a in zip(owned, args):
                buf[...] = a
            index = cp.arange(lo, hi, dtype=self.body.params[0].aval.dtype)
            carry, caps = owned[:self.n], owned[self.n:]
            stream.begin_capture()
            _LOOP_CAPTURE["on"] = True
            try:
                for k, i in enumerate(range(lo, hi)):
                    i_k = index[k:k + 1].reshape(())  # a 0-d device array, read in place
                    carry = self.sub(self.body, [i_k] + list(carry) + caps, slot=i % 2)
            finally:
                _LOOP_CAPTURE["on"] = False
                graph = stream.end_capture()
            if len(self.loops) >= _Segment.GRAPHS:  # bounds that change every run
                self.loops.pop(next(iter(self.loops)))
            loop = self.loops[(lo, hi)] = (graph, owned, carry, index)
        else:
            for buf, a in zip(loop[1], args):
                buf[...] = a
        loop[0].launch(stream)
        return tuple(c.copy() for c in loop[2])
