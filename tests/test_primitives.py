"""The primitive table drives these tests (STYLE rule 12).

Every primitive outside the control family has cases below. Each case runs the primitive three
ways and checks that they agree:

- eagerly on plain numpy arrays (``bind`` with no tracer runs the numpy implementation),
- traced into a graph (``make_graph``), verified, and evaluated by the interpreter,
- against an independent reference: numpy/scipy/math in double precision on the same inputs,
  or, for factorisations whose outputs are not unique, the defining identities.

The output shapes and dtypes must match the abstract rule, and the raw numpy implementation
must already produce them. Elementwise primitives also reject the dtypes outside their domain.
A primitive in the table without a case fails ``test_every_primitive_has_cases``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml  # noqa: F401  (registers the numpy handlers)
from autodiff import dtypes
from autodiff.errors import DTypeError
from autodiff.interpret import eval_graph
from autodiff.ir import aval_of
from autodiff.primitives import PRIMITIVES, _load_table
from autodiff.trace import make_graph
from autodiff.verify import verify

_load_table()
P = PRIMITIVES

B, I32, I64 = np.dtype(bool), np.dtype("int32"), np.dtype("int64")
F16, BF16, F32, F64 = np.dtype("float16"), dtypes.bfloat16, np.dtype("float32"), np.dtype(
    "float64")
C64, C128 = np.dtype("complex64"), np.dtype("complex128")
ALL = (B, I32, I64, F16, BF16, F32, F64, C64, C128)
INTS = (I32, I64)
FLOATS = (F16, BF16, F32, F64)
COMPLEX = (C64, C128)
INEXACT = FLOATS + COMPLEX
NUM = INTS + INEXACT
REAL = INTS + FLOATS
KINDS = {
    "any": ALL, "num": NUM, "inexact": INEXACT, "float": FLOATS, "real": REAL,
    "int_or_bool": (B,) + INTS, "realnum": (B,) + REAL,
}


@dataclass
class Case:
    """One way to call a primitive: ``make(rng, dtype) -> (args, params)``; ``ref`` maps the
    widened args (and params) to the expected output(s); ``check(args, params, outs)`` replaces
    or adds to it."""

    prim: str
    make: Callable
    dtypes: tuple
    ref: Callable | None = None
    check: Callable | None = None
    tol: float = 4.0
    label: str = ""
    extra: dict = field(default_factory=dict)


CASES: list[Case] = []


def case(prim, make, dts, ref=None, check=None, tol=4.0, label=""):
    CASES.append(Case(prim, make, tuple(dts), ref, check, tol, label))


# ---------------------------------------------------------------------------------------------
# Inputs and comparisons


def rand(rng, shape, d, lo=-2.0, hi=2.0):
    d = dtypes.dtype(d)
    if d == B:
        return rng.random(shape) < 0.5
    if dtypes.is_integer(d):
        return rng.integers(int(np.floor(lo)), int(np.ceil(hi)) + 1, size=shape).astype(d)
    re = rng.uniform(lo, hi, shape)
    if dtypes.is_complex(d):
        return (re + 1j * rng.uniform(lo, hi, shape)).astype(d)
    return re.astype(d)


def widen(x):
    x = np.asarray(x)
    if x.dtype == B:
        return x
    if dtypes.is_integer(x.dtype):
        return x.astype(np.int64)
    if dtypes.is_complex(x.dtype):
        return x.astype(np.complex128)
    return x.astype(np.float64)


def tol_of(d, k):
    return 0.0 if not dtypes.is_inexact(d) else k * dtypes.eps(dtypes.real_dtype(d))


def assert_close(out, ref, k, what=""):
    out = np.asarray(out)
    ref = np.asarray(ref)
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != reference {ref.shape}"
    if not dtypes.is_inexact(out.dtype):
        np.testing.assert_array_equal(out, ref, err_msg=what)
        return
    t = tol_of(out.dtype, k)
    finite = np.abs(ref[np.isfinite(ref)]) if ref.size else np.zeros(0)
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(widen(out), ref, rtol=t, atol=t * scale, equal_nan=True,
                               err_msg=what)


def as_tuple(prim, out):
    return tuple(out) if prim.multiple_results else (out,)


def run_case(c: Case, d, seed_extra=""):
    rng = np.random.default_rng(zlib.crc32(f"{c.prim}{c.label}{d}{seed_extra}".encode()))
    args, params = c.make(rng, d)
    prim = P[c.prim]
    avals = [aval_of(a) for a in args]
    want = as_tuple(prim, prim.abstract_eval(*avals, **params))

    raw = as_tuple(prim, prim.impl(*args, **params))
    eager = as_tuple(prim, prim.bind(*args, **params))
    g = make_graph(lambda *xs: prim.bind(*xs, **params), *args)
    verify(g)
    traced = as_tuple(prim, eval_graph(g, *args))
    assert len(raw) == len(eager) == len(traced) == len(want)
    for w, r, e, t in zip(want, raw, eager, traced):
        r = np.asarray(r)
        assert (r.shape, r.dtype) == (w.shape, w.dtype), f"impl gives {r.dtype}{r.shape}, rule {w}"
        assert (e.shape, e.dtype) == (w.shape, w.dtype)
        assert (t.shape, t.dtype) == (w.shape, w.dtype)
        # Eager and traced run the same numpy code: the results agree bit for bit.
        assert e.tobytes() == t.tobytes(), f"{c.prim}: eager and traced results differ"
    if c.ref is not None:
        ref = c.ref(*[widen(a) for a in args], **params)
        ref = ref if isinstance(ref, tuple) else (ref,)
        for i, (e, rv) in enumerate(zip(eager, ref)):
            assert_close(e, rv, c.tol, f"{c.prim} output {i} ({d})")
    if c.check is not None:
        c.check(args, params, eager)
    return args, params, eager


def _id(c, d):
    return f"{c.prim}-{c.label}-{d}" if c.label else f"{c.prim}-{d}"


# ---------------------------------------------------------------------------------------------
# Elementwise: unary


def _erf(x):
    return np.vectorize(math.erf, otypes=[float])(x)


def _np_round(x):
    return np.round(x)  # half to even, as IEEE roundTiesToEven


UNARY = {
    # name: (reference, allowed kind, input range)
    "neg": (np.negative, "num", (-3, 3)),
    "abs": (np.abs, "num", (-3, 3)),
    "sign": (np.sign, "num", (-3, 3)),
    "exp": (np.exp, "inexact", (-3, 3)),
    "expm1": (np.expm1, "inexact", (-3, 3)),
    "log": (np.log, "inexact", (0.1, 3)),
    "log1p": (np.log1p, "inexact", (-0.5, 3)),
    "sqrt": (np.sqrt, "inexact", (0.1, 3)),
    "rsqrt": (lambda x: 1.0 / np.sqrt(x), "inexact", (0.1, 3)),
    "sin": (np.sin, "inexact", (-3, 3)),
    "cos": (np.cos, "inexact", (-3, 3)),
    "tan": (np.tan, "inexact", (-1.3, 1.3)),
    "tanh": (np.tanh, "inexact", (-3, 3)),
    "sinh": (np.sinh, "inexact", (-3, 3)),
    "cosh": (np.cosh, "inexact", (-3, 3)),
    "arcsin": (np.arcsin, "inexact", (-0.9, 0.9)),
    "arccos": (np.arccos, "inexact", (-0.9, 0.9)),
    "arctan": (np.arctan, "inexact", (-3, 3)),
    "arcsinh": (np.arcsinh, "inexact", (-3, 3)),
    "arccosh": (np.arccosh, "inexact", (1.1, 3)),
    "arctanh": (np.arctanh, "inexact", (-0.9, 0.9)),
    "erf": (_erf, "float", (-3, 3)),
    "floor": (np.floor, "float", (-3, 3)),
    "ceil": (np.ceil, "float", (-3, 3)),
    "round": (_np_round, "float", (-3, 3)),
    "real": (np.real, "any", (-3, 3)),
    "imag": (np.imag, "any", (-3, 3)),
    "conj": (np.conj, "any", (-3, 3)),
    "not": (np.invert, "int_or_bool", (-3, 3)),
    "isnan": (np.isnan, "num", (-3, 3)),
    "isinf": (np.isinf, "num", (-3, 3)),
    "isfinite": (np.isfinite, "num", (-3, 3)),
}
# Complex transcendental functions in complex64 are a few ulp off in numpy itself.
_COMPLEX_LOOSE = {"tan", "tanh", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh",
                  "sinh", "cosh", "sin", "cos", "exp", "expm1", "log1p"}


def _unary_make(name, lo, hi, shape):
    def make(rng, d):
        x = rand(rng, shape, d, lo, hi)
        if name == "round" and x.size:
            x.flat[0] = 2.5  # a tie: rounds to even
        return [x], {}

    return make


for _n, (_ref, _kind, (_lo, _hi)) in UNARY.items():
    for _shape, _label, _dts in [
        ((3, 4), "", KINDS[_kind]),
        ((), "scalar", KINDS[_kind][-1:]),
        ((0, 3), "empty", KINDS[_kind][-1:]),
    ]:
        case(_n, _unary_make(_n, _lo, _hi, _shape), _dts,
             ref=(lambda f: lambda x: f(x))(_ref), label=_label,
             tol=16 if _n in _COMPLEX_LOOSE else 4)


# ---------------------------------------------------------------------------------------------
# Elementwise: binary


def _floor_divide(x, y):
    return np.floor_divide(x, y)


BINARY = {
    "add": (np.add, "any", (-3, 3), (-3, 3)),
    "sub": (np.subtract, "num", (-3, 3), (-3, 3)),
    "mul": (np.multiply, "any", (-3, 3), (-3, 3)),
    "div": (np.true_divide, "inexact", (-3, 3), (0.5, 3)),
    "floor_divide": (_floor_divide, "real", (-5, 5), (1, 3)),
    "pow": (np.power, "num", (0.5, 2), (0, 3)),
    "maximum": (np.maximum, "any", (-3, 3), (-3, 3)),
    "minimum": (np.minimum, "any", (-3, 3), (-3, 3)),
    "atan2": (np.arctan2, "float", (-3, 3), (-3, 3)),
    "mod": (np.mod, "real", (-5, 5), (1, 3)),
    "and": (np.bitwise_and, "int_or_bool", (-5, 5), (-5, 5)),
    "or": (np.bitwise_or, "int_or_bool", (-5, 5), (-5, 5)),
    "xor": (np.bitwise_xor, "int_or_bool", (-5, 5), (-5, 5)),
    "eq": (np.equal, "any", (-2, 2), (-2, 2)),
    "ne": (np.not_equal, "any", (-2, 2), (-2, 2)),
    "lt": (np.less, "realnum", (-2, 2), (-2, 2)),
    "le": (np.less_equal, "realnum", (-2, 2), (-2, 2)),
    "gt": (np.greater, "realnum", (-2, 2), (-2, 2)),
    "ge": (np.greater_equal, "realnum", (-2, 2), (-2, 2)),
}


def _binary_make(name, xr, yr, sx, sy):
    def make(rng, d):
        x, y = rand(rng, sx, d, *xr), rand(rng, sy, d, *yr)
        if name in ("eq", "ne", "lt", "le", "gt", "ge") and x.size and y.size:
            y.flat[0] = x.flat[0]  # ties decide le/ge
        if name in ("floor_divide", "mod") and dtypes.is_float(d) and x.size:
            x.flat[0] = -x.flat[0] if x.flat[0] > 0 else x.flat[0]  # a negative dividend
        return [x, y], {}

    return make


def _binary_ref(name, f):
    def ref(x, y):
        if name in ("mod", "floor_divide") and dtypes.is_float(x.dtype):
            # Python's float % and // are exact for these operands: an independent reference.
            fn = (lambda a, b: a % b) if name == "mod" else (lambda a, b: a // b)
            return np.vectorize(fn, otypes=[float])(*np.broadcast_arrays(x, y))
        return f(x, y)

    return ref


for _n, (_ref, _kind, _xr, _yr) in BINARY.items():
    for _sx, _sy, _label, _dts in [
        ((3, 4), (3, 4), "", KINDS[_kind]),
        ((3, 1), (4,), "broadcast", KINDS[_kind][-1:]),
        ((), (), "scalar", KINDS[_kind][-1:]),
        ((0, 4), (4,), "empty", KINDS[_kind][-1:]),
    ]:
        case(_n, _binary_make(_n, _xr, _yr, _sx, _sy), _dts, ref=_binary_ref(_n, _ref),
             label=_label, tol=16 if _n == "pow" else 4)


# integer_pow[y]: x ** y by repeated multiplication (at most a few roundings).
def _ipow_make(y):
    def make(rng, d):
        lo, hi = (0.5, 2.0) if y < 0 else (-2.0, 2.0)
        return [rand(rng, (3, 4), d, lo, hi)], {"y": y}

    return make


for _y in (0, 1, 2, 3, 5, -1, -2):
    case("integer_pow", _ipow_make(_y), INEXACT if _y < 0 else NUM,
         ref=lambda x, *, y: np.power(x, y) if y >= 0 or dtypes.is_inexact(x.dtype) else None,
         label=f"y{_y}", tol=8)


# select(pred, on_true, on_false), with broadcasting
def _select_make(rng, d):
    return [rng.random((3, 1)) < 0.5, rand(rng, (3, 4), d), rand(rng, (4,), d)], {}


case("select", _select_make, ALL, ref=lambda p, a, b: np.where(p, a, b))


# convert[new_dtype]: every pair of supported dtypes
def _convert_make(dst):
    def make(rng, d):
        x = rand(rng, (3, 4), d, -100, 100)
        if dtypes.is_inexact(d):
            x[0, :2] = 0  # exact zeros convert to False
        return [x], {"new_dtype": dst}

    return make


def _convert_ref(x, *, new_dtype):
    if dtypes.is_complex(x.dtype) and not dtypes.is_complex(new_dtype):
        x = np.real(x)
    return widen(x.astype(new_dtype))


for _dst in ALL:
    case("convert", _convert_make(_dst), ALL, ref=_convert_ref, label=f"to_{_dst}", tol=0)

case("stop_gradient", lambda rng, d: ([rand(rng, (3, 2), d)], {}), ALL, ref=lambda x: x)


# ---------------------------------------------------------------------------------------------
# Reductions, cumsum, sort


def _reduce_make(axes, keepdims, shape=(3, 4, 5)):
    def make(rng, d):
        lo, hi = (0.5, 1.5) if d in (F16, BF16) else (-2, 2)
        return [rand(rng, shape, d, lo, hi)], {"axes": axes, "keepdims": keepdims}

    return make


def _reduce_ref(f):
    def ref(x, *, axes, keepdims):
        return f(x, axis=None if axes is None else tuple(axes), keepdims=keepdims)

    return ref


ORDERED = (B,) + REAL
for _name, _f, _dts in [
    ("reduce_sum", np.sum, ALL), ("reduce_prod", np.prod, ALL),
    ("reduce_max", np.max, ORDERED), ("reduce_min", np.min, ORDERED),
]:
    for _axes, _kd in [((1,), False), ((0, 2), True), (None, False), ((), False)]:
        case(_name, _reduce_make(_axes, _kd), _dts, ref=_reduce_ref(_f),
             label=f"{_axes}-{_kd}".replace(" ", ""), tol=64)
case("reduce_sum", _reduce_make((0,), False, (0, 3)), (F64, I32), ref=_reduce_ref(np.sum),
     label="empty")
case("reduce_prod", _reduce_make((1,), True, (2, 0)), (F64,), ref=_reduce_ref(np.prod),
     label="empty")


def _arg_make(axis, keepdims):
    def make(rng, d):
        x = rand(rng, (4, 5), d, -3, 3)
        x[0, :] = x[0, 1]  # ties resolve to the first index
        return [x], {"axes": (axis,), "keepdims": keepdims}

    return make


for _name, _f in [("argmax", np.argmax), ("argmin", np.argmin)]:
    for _axis, _kd in [(0, False), (1, True)]:
        case(_name, _arg_make(_axis, _kd), ORDERED,
             ref=(lambda f: lambda x, *, axes, keepdims: f(x, axis=axes[0], keepdims=keepdims))(
                 _f), label=f"{_axis}-{_kd}")


def _cumsum_ref(x, *, axis, reverse):
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)
    return np.cumsum(x, axis=axis)


for _axis, _rev in [(0, False), (1, True)]:
    case("cumsum", lambda rng, d, a=_axis, r=_rev: (
        [rand(rng, (4, 6), d, 0.5, 1.5)], {"axis": a, "reverse": r}), ALL,
        ref=_cumsum_ref, label=f"{_axis}-{_rev}", tol=64)


def _sort_ref(x, *, axis, descending=False):
    out = np.sort(x, axis=axis)
    return np.flip(out, axis) if descending else out


def _argsort_check(args, params, outs):
    x, (idx,) = args[0], outs
    axis = params["axis"]
    got = np.take_along_axis(x, idx, axis)
    np.testing.assert_array_equal(got, _sort_ref(x, **params))
    # stable: among equal keys the original order is kept (descending: reversed order of ties
    # is not required, only a permutation of each row)
    assert (np.sort(idx, axis=axis) == np.arange(x.shape[axis]).reshape(
        [-1 if i == axis else 1 for i in range(x.ndim)])).all()


for _axis, _desc in [(0, False), (1, False), (1, True)]:
    case("sort", lambda rng, d, a=_axis, s=_desc: (
        [rand(rng, (4, 5), d, -3, 3)], {"axis": a, "descending": s}), ORDERED, ref=_sort_ref,
        label=f"{_axis}-{_desc}")
    case("argsort", lambda rng, d, a=_axis, s=_desc: (
        [rand(rng, (4, 5), d, -3, 3)], {"axis": a, "descending": s}), ORDERED,
        check=_argsort_check, label=f"{_axis}-{_desc}")


# ---------------------------------------------------------------------------------------------
# Structural primitives


def _bid_ref(x, *, shape, broadcast_dimensions):
    view = [1] * len(shape)
    for i, dim in enumerate(broadcast_dimensions):
        view[dim] = x.shape[i]
    return np.broadcast_to(x.reshape(view), shape)


for _sx, _shape, _dims in [((3, 1), (2, 3, 4), (1, 2)), ((), (2, 2), ()), ((4,), (4, 3), (0,))]:
    case("broadcast_in_dim", lambda rng, d, sx=_sx, sh=_shape, dm=_dims: (
        [rand(rng, sx, d)], {"shape": sh, "broadcast_dimensions": dm}), ALL, ref=_bid_ref,
        label=str(_shape).replace(" ", ""))

for _sx, _new in [((3, 4), (2, 6)), ((3, 4), (12,)), ((), (1, 1)), ((0, 3), (3, 0))]:
    case("reshape", lambda rng, d, sx=_sx, n=_new: ([rand(rng, sx, d)], {"new_shape": n}), ALL,
         ref=lambda x, *, new_shape: x.reshape(new_shape), label=str(_new).replace(" ", ""))

case("transpose", lambda rng, d: ([rand(rng, (2, 3, 4), d)], {"permutation": (1, 2, 0)}), ALL,
     ref=lambda x, *, permutation: np.transpose(x, permutation))
case("rev", lambda rng, d: ([rand(rng, (3, 4), d)], {"axes": (1,)}), ALL,
     ref=lambda x, *, axes: x[:, ::-1])
case("rev", lambda rng, d: ([rand(rng, (3, 4), d)], {"axes": (0, 1)}), ALL[-1:],
     ref=lambda x, *, axes: x[::-1, ::-1], label="both")


def _slice_ref(x, *, start, limit, strides):
    return x[tuple(slice(s, e, st) for s, e, st in zip(start, limit, strides))]


for _st, _lim, _str, _label in [((1, 0), (5, 7), (2, 3), "strided"), ((0, 2), (6, 2), (1, 1),
                                                                       "empty")]:
    case("slice", lambda rng, d, s=_st, e=_lim, k=_str: (
        [rand(rng, (6, 7), d)], {"start": s, "limit": e, "strides": k}), ALL, ref=_slice_ref,
        label=_label)


def _pad_ref(x, *, pad_width, mode, value=0):
    # An independent construction: place x inside a new array, then fill the margins.
    (a0, b0), (a1, b1) = pad_width
    n0, n1 = x.shape
    if mode == "constant":
        out = np.full((n0 + a0 + b0, n1 + a1 + b1), value, x.dtype)
        out[a0:a0 + n0, a1:a1 + n1] = x
        return out
    rows = [(i - a0) % n0 if mode == "periodic" else min(max(i - a0, 0), n0 - 1)
            for i in range(n0 + a0 + b0)]
    cols = [(j - a1) % n1 if mode == "periodic" else min(max(j - a1, 0), n1 - 1)
            for j in range(n1 + a1 + b1)]
    return x[np.ix_(rows, cols)]


for _mode in ("constant", "edge", "periodic"):
    case("pad", lambda rng, d, m=_mode: (
        [rand(rng, (3, 4), d)], {"pad_width": ((1, 2), (0, 3)), "mode": m,
                                 **({"value": 1} if m == "constant" else {})}), ALL,
        ref=_pad_ref, label=_mode)

case("concatenate", lambda rng, d: (
    [rand(rng, (2, 3), d), rand(rng, (2, 1), d), rand(rng, (2, 0), d)], {"axis": 1}), ALL,
    ref=lambda *xs, axis: np.concatenate(xs, axis))


def _shift_ref(x, *, offset, boundary):
    # out[i] = x[i + offset], built by padding with the boundary rule and slicing.
    mode = {"zero": "constant", "periodic": "wrap", "edge": "edge"}[boundary]
    pad = [(abs(o), abs(o)) for o in offset]
    big = np.pad(x, pad, mode=mode)
    sl = tuple(slice(p + o, p + o + n) for (p, _), o, n in zip(pad, offset, x.shape))
    return big[sl]


for _b in ("zero", "periodic", "edge"):
    case("shift", lambda rng, d, b=_b: ([rand(rng, (5, 6), d)], {"offset": (1, -2),
                                                                 "boundary": b}), ALL,
         ref=_shift_ref, label=_b)


def _window_taps(spatial, out, kernel, stride, padding, dilation):
    """(output position, tap, input position or None) for every patch entry, by brute force."""
    for o in np.ndindex(*out):
        for k in np.ndindex(*kernel):
            src = tuple(oi * s - lo + ki * d for oi, ki, s, (lo, _), d
                        in zip(o, k, stride, padding, dilation))
            inside = all(0 <= i < n for i, n in zip(src, spatial))
            yield o, k, (src if inside else None)


def _im2col_ref(x, *, kernel, stride, padding, dilation, value=0.0):
    nd = len(kernel)
    lead, spatial = x.shape[:x.ndim - nd - 1], x.shape[x.ndim - nd - 1:-1]
    out = tuple((n + lo + hi - d * (k - 1) - 1) // s + 1
                for n, k, s, (lo, hi), d in zip(spatial, kernel, stride, padding, dilation))
    res = np.full(lead + out + tuple(kernel) + x.shape[-1:], value, x.dtype)
    skip = (slice(None),) * len(lead)
    for o, k, src in _window_taps(spatial, out, kernel, stride, padding, dilation):
        if src is not None:
            res[skip + o + k] = x[skip + src]
    return res


def _col2im_ref(cols, *, shape, kernel, stride, padding, dilation):
    nd = len(kernel)
    lead = cols.shape[:cols.ndim - 2 * nd - 1]
    out = cols.shape[len(lead):len(lead) + nd]
    res = np.zeros(lead + tuple(shape) + cols.shape[-1:], cols.dtype)
    skip = (slice(None),) * len(lead)
    for o, k, src in _window_taps(shape, out, kernel, stride, padding, dilation):
        if src is not None:
            res[skip + src] += cols[skip + o + k]
    return res


_WINDOWS = [  # (label, input shape, params): strides, asymmetric padding, dilation, 1-D, 3-D
    ("2d", (2, 5, 6, 3), {"kernel": (3, 2), "stride": (2, 1), "padding": ((1, 1), (0, 2)),
                          "dilation": (1, 2)}),
    ("1d-no-batch", (7, 2), {"kernel": (3,), "stride": (2,), "padding": ((2, 0),),
                             "dilation": (1,)}),
    ("3d-two-batch", (2, 1, 3, 4, 3, 1), {"kernel": (2, 2, 2), "stride": (1, 2, 1),
                                          "padding": ((0, 1), (1, 0), (0, 0)),
                                          "dilation": (1, 1, 2)}),
]
for _label, _shape, _params in _WINDOWS:
    case("im2col", lambda rng, d, s=_shape, p=_params: (
        [rand(rng, s, d)], {**p, "value": 1 if d != B else True}), ALL, ref=_im2col_ref,
        label=_label)
    _cols_shape = P["im2col"].abstract_eval(aval_of(np.zeros(_shape)), **_params).shape
    _spatial = _shape[len(_shape) - len(_params["kernel"]) - 1:-1]
    case("col2im", lambda rng, d, s=_cols_shape, p=_params, sp=_spatial: (
        [rand(rng, s, d)], {**p, "shape": sp}), NUM, ref=_col2im_ref, tol=16, label=_label)


def _iota_ref(*, shape, dtype, dimension):
    view = [1] * len(shape)
    view[dimension] = shape[dimension]
    return widen(np.broadcast_to(np.arange(shape[dimension]).reshape(view), shape).astype(dtype))


for _shape, _dim in [((3, 4), 1), ((5,), 0), ((2, 0), 0)]:
    case("iota", lambda rng, d, s=_shape, k=_dim: ([], {"shape": s, "dtype": d,
                                                        "dimension": k}),
         ALL, ref=_iota_ref, label=str(_shape).replace(" ", ""))


# ---------------------------------------------------------------------------------------------
# Dynamic indexing: out-of-range indices clamp, negative ones wrap once


def _clamp_idx(idx, n):
    return np.clip(np.where(idx < 0, idx + n, idx), 0, n - 1)


def _take_make(axis):
    def make(rng, d):
        idx = np.array([[0, 3, -1], [9, -7, 2]], dtype=I32 if axis else I64)
        return [rand(rng, (4, 5), d), idx], {"axis": axis}

    return make


def _take_ref(x, idx, *, axis):
    n = x.shape[axis]
    out = np.empty(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)
    for pos in np.ndindex(*idx.shape):
        j = int(_clamp_idx(idx[pos], n))
        if axis == 0:
            out[pos] = x[j]
        else:
            out[(slice(None),) + pos] = x[:, j]
    return out


for _axis in (0, 1):
    case("take", _take_make(_axis), ALL, ref=_take_ref, label=f"axis{_axis}")


def _scatter_make(rng, d):
    idx = np.array([1, 3, 1, -1, 8], np.int64)
    lo, hi = (0, 1) if d in (F16, BF16) else (-2, 2)
    return [rand(rng, (5, 3), d, lo, hi), idx, rand(rng, (5, 3), d, lo, hi)], {"axis": 0}


def _scatter_ref(x, idx, upd, *, axis):
    out = x.copy()
    for k, i in enumerate(idx):
        j = int(_clamp_idx(i, x.shape[0]))
        out[j] = out[j] | upd[k] if out.dtype == B else out[j] + upd[k]
    return out


case("scatter_add", _scatter_make, ALL, ref=_scatter_ref, tol=8)


def _dyn_slice_make(starts):
    def make(rng, d):
        return [rand(rng, (5, 6), d)] + [np.asarray(s, np.int64) for s in starts], {
            "sizes": (2, 3)}

    return make


def _dyn_slice_ref(x, *starts, sizes):
    st = [min(max(int(s), 0), n - k) for s, k, n in zip(starts, sizes, x.shape)]
    return x[st[0]:st[0] + sizes[0], st[1]:st[1] + sizes[1]]


for _starts in [(1, 2), (4, -3), (-1, 9)]:
    case("dynamic_slice", _dyn_slice_make(_starts), ALL, ref=_dyn_slice_ref,
         label=str(_starts).replace(" ", ""))


def _dyn_update_make(starts):
    def make(rng, d):
        return [rand(rng, (5, 6), d), rand(rng, (2, 3), d)] + [
            np.asarray(s, np.int32) for s in starts], {}

    return make


def _dyn_update_ref(x, u, *starts):
    st = [min(max(int(s), 0), n - k) for s, k, n in zip(starts, u.shape, x.shape)]
    out = x.copy()
    out[st[0]:st[0] + u.shape[0], st[1]:st[1] + u.shape[1]] = u
    return out


for _starts in [(1, 2), (4, 9)]:
    case("dynamic_update_slice", _dyn_update_make(_starts), ALL, ref=_dyn_update_ref,
         label=str(_starts).replace(" ", ""))


# ---------------------------------------------------------------------------------------------
# Linear algebra


DOTS = [
    # (lhs shape, rhs shape, dimension_numbers, einsum reference)
    ((2, 3, 4), (2, 4, 5), (((2,), (1,)), ((0,), (0,))), "bij,bjk->bik"),
    ((3, 4, 2), (4, 3), (((0, 1), (1, 0)), ((), ())), "ijk,ji->k"),
    ((3,), (4,), (((), ()), ((), ())), "i,j->ij"),
    ((0, 3), (3, 2), (((1,), (0,)), ((), ())), "ij,jk->ik"),
]
for _sl, _sr, _dn, _sub in DOTS:
    case("dot_general", lambda rng, d, a=_sl, b=_sr, dn=_dn: (
        [rand(rng, a, d, -1, 1), rand(rng, b, d, -1, 1)], {"dimension_numbers": dn}), NUM,
        ref=lambda x, y, *, dimension_numbers, s=_sub: np.einsum(s, x, y), tol=32,
        label=_sub.replace(",", "_").replace("->", "_"))
case("dot_general", lambda rng, d: (
    [rand(rng, (3, 4), d), rand(rng, (4, 2), d)],
    {"dimension_numbers": (((1,), (0,)), ((), ())), "preferred_dtype": F32}), (F16, BF16),
    ref=lambda x, y, **p: x @ y, tol=8, label="preferred_f32")


def _spd(rng, d, shape):
    """Well-conditioned Hermitian positive definite matrices."""
    n = shape[-1]
    m = rand(rng, shape, d, -1, 1).astype(widen(np.zeros(0, d)).dtype)
    a = m @ np.conj(np.swapaxes(m, -1, -2)) + n * np.eye(n)
    return a.astype(d)


def _well(rng, d, shape):
    n = shape[-1]
    return (rand(rng, shape, d, -1, 1).astype(widen(np.zeros(0, d)).dtype)
            + 2 * n * np.eye(n)).astype(d)


# Half types round every output once more: a loose relative tolerance in units of their eps.
LIN_TOL = 64

case("solve", lambda rng, d: ([_well(rng, d, (2, 4, 4)), rand(rng, (2, 4, 3), d)], {}),
     INEXACT, ref=lambda a, b: np.linalg.solve(a, b), tol=LIN_TOL)
case("solve", lambda rng, d: ([_well(rng, d, (0, 0)), rand(rng, (0, 2), d)], {}), (F64,),
     ref=lambda a, b: np.zeros((0, 2)), label="empty")
case("solve", lambda rng, d: ([np.stack([np.eye(2), np.ones((2, 2))]).astype(d),
                               np.ones((2, 2, 1), d)], {}), (F64, C64),
     check=lambda args, params, outs: (np.testing.assert_array_equal(outs[0][0], 1),
                                       np.testing.assert_array_equal(np.isnan(outs[0][1]), True)),
     label="singular")
case("cholesky", lambda rng, d: ([_spd(rng, d, (3, 4, 4))], {}), INEXACT,
     ref=lambda a: np.linalg.cholesky(np.tril(a) + np.conj(np.swapaxes(np.tril(a, -1), -1, -2))),
     tol=LIN_TOL)


def _cholesky_nan_check(args, params, outs):
    assert np.isnan(outs[0][1]).all() and not np.isnan(outs[0][0]).any()


case("cholesky", lambda rng, d: ([np.stack([np.eye(3), -np.eye(3)]).astype(d)], {}), (F64, F32),
     check=_cholesky_nan_check, label="not_pd")


def _tri_dense(a, lower, transpose_a, conjugate_a, unit_diagonal):
    t = np.tril(a) if lower else np.triu(a)
    if unit_diagonal:
        t = t - np.diag(np.diag(t)) + np.eye(a.shape[-1])
    if conjugate_a:
        t = np.conj(t)
    return t.T if transpose_a else t


def _trsolve_ref(a, b, **p):
    out = np.empty(b.shape, np.result_type(a, b))
    for k in range(a.shape[0]):
        t = _tri_dense(a[k], p["lower"], p["transpose_a"], p["conjugate_a"], p["unit_diagonal"])
        out[k] = np.linalg.solve(t, b[k]) if p["left_side"] else np.linalg.solve(t.T, b[k].T).T
    return out


for _lower, _tr, _conj, _left, _unit in [
    (True, False, False, True, False), (False, True, False, True, False),
    (True, True, True, True, False), (False, False, True, False, True),
    (True, True, False, False, False),
]:
    def _tri_make(rng, d, left=_left):
        a = _well(rng, d, (2, 4, 4))
        b = rand(rng, (2, 4, 3) if left else (2, 3, 4), d)
        return [a, b], {}

    case("triangular_solve", (lambda mk, pr: lambda rng, d: (mk(rng, d)[0], pr))(
        _tri_make, dict(lower=_lower, transpose_a=_tr, conjugate_a=_conj, left_side=_left,
                        unit_diagonal=_unit)),
        INEXACT, ref=_trsolve_ref, tol=LIN_TOL,
        label=f"l{int(_lower)}t{int(_tr)}c{int(_conj)}s{int(_left)}u{int(_unit)}")


def _tridiag_make(rng, d, n=5, cols=(3,)):
    sub, sup = rand(rng, (n,) + cols, d, -1, 1), rand(rng, (n,) + cols, d, -1, 1)
    diag = (rand(rng, (n,) + cols, d, -1, 1) + 4).astype(d)
    return [sub, diag, sup, rand(rng, (n,) + cols, d)], {}


def _tridiag_ref(sub, diag, sup, rhs):
    out = np.empty(rhs.shape, np.result_type(sub, rhs))
    for j in np.ndindex(rhs.shape[1:]):
        col = (slice(None),) + j
        t = np.diag(diag[col]) + np.diag(sub[col][1:], -1) + np.diag(sup[col][:-1], 1)
        out[col] = np.linalg.solve(t, rhs[col])
    return out


case("tridiagonal_solve", _tridiag_make, INEXACT, ref=_tridiag_ref, tol=LIN_TOL)
case("tridiagonal_solve", lambda rng, d: _tridiag_make(rng, d, 1, (2, 2)), (F64, F32),
     ref=_tridiag_ref, tol=LIN_TOL, label="n=1")
case("tridiagonal_solve", lambda rng, d: _tridiag_make(rng, d, 7, ()), (F64,),
     ref=_tridiag_ref, tol=LIN_TOL, label="one system")


def _lin_tol(d):
    return LIN_TOL * dtypes.eps(dtypes.real_dtype(d))


def _qr_check(args, params, outs):
    (a,), (q, r) = args, outs
    aw, qw, rw = widen(a), widen(q), widen(r)
    m, n = a.shape[-2:]
    k = m if params["full_matrices"] else min(m, n)
    assert q.shape == a.shape[:-2] + (m, k) and r.shape == a.shape[:-2] + (k, n)
    t = _lin_tol(a.dtype)
    np.testing.assert_allclose(qw @ rw, aw, atol=t * 4)
    eye = np.broadcast_to(np.eye(k), qw.shape[:-2] + (k, k))
    np.testing.assert_allclose(np.conj(np.swapaxes(qw, -1, -2)) @ qw, eye, atol=t)
    assert np.all(np.tril(rw, -1) == 0), "r is not upper triangular"
    # |diag r| is unique: compare with numpy in double precision
    ref = np.abs(np.diagonal(np.linalg.qr(aw)[1], axis1=-2, axis2=-1))
    got = np.abs(np.diagonal(rw, axis1=-2, axis2=-1))[..., :ref.shape[-1]]
    np.testing.assert_allclose(got, ref, atol=t * 4)


for _shape, _full in [((4, 3), False), ((3, 4), False), ((2, 5, 3), True), ((2, 3, 3), False)]:
    case("qr", lambda rng, d, s=_shape, f=_full: ([rand(rng, s, d, -1, 1)],
                                                  {"full_matrices": f}),
         INEXACT, check=_qr_check, label=f"{_shape}-{_full}".replace(" ", ""))


def _eigh_make(lower):
    def make(rng, d):
        a = _spd(rng, d, (2, 4, 4))
        # Garbage in the triangle that must not be read.
        junk = rand(rng, (2, 4, 4), d, 50, 60)
        mask = np.triu(np.ones((4, 4), bool), 1) if lower else np.tril(np.ones((4, 4), bool), -1)
        return [np.where(mask, junk, a)], {"lower": lower}

    return make


def _eigh_check(args, params, outs):
    (a,), (w, v) = args, outs
    aw = widen(a)
    tri = np.tril(aw) if params["lower"] else np.triu(aw)
    k = -1 if params["lower"] else 1
    herm = tri + np.conj(np.swapaxes(np.tril(aw, k) if params["lower"] else np.triu(aw, k),
                                     -1, -2))
    ww, vw = widen(w), widen(v)
    t = _lin_tol(a.dtype)
    assert w.dtype == dtypes.real_dtype(a.dtype)
    np.testing.assert_allclose(ww, np.linalg.eigvalsh(herm), rtol=t, atol=t * 10)
    assert np.all(np.diff(ww, axis=-1) >= 0), "eigenvalues are not ascending"
    np.testing.assert_allclose(herm @ vw, vw * ww[..., None, :], atol=t * 40)
    eye = np.broadcast_to(np.eye(4), vw.shape)
    np.testing.assert_allclose(np.conj(np.swapaxes(vw, -1, -2)) @ vw, eye, atol=t * 2)


for _lower in (True, False):
    case("eigh", _eigh_make(_lower), INEXACT, check=_eigh_check, label=f"lower{_lower}")


def _lu_check(args, params, outs):
    (a,), (lu, piv, perm) = args, outs
    aw, luw = widen(a), widen(lu)
    n = a.shape[-1]
    lo = np.tril(luw, -1) + np.eye(n)
    up = np.triu(luw)
    t = _lin_tol(a.dtype)
    rows = np.take_along_axis(aw, perm[..., None], axis=-2)
    np.testing.assert_allclose(lo @ up, rows, atol=t * 8)
    # Partial pivoting keeps |l| <= 1; for complex LAPACK picks pivots by |re| + |im|, which
    # bounds |l| by sqrt(2).
    bound = np.sqrt(2) if dtypes.is_complex(a.dtype) else 1.0
    assert np.all(np.abs(lo) <= bound + t), "pivoting is not partial"
    for b in np.ndindex(*a.shape[:-2]):
        order = list(range(n))  # replay the swaps i <-> piv[i]
        for i, p in enumerate(piv[b]):
            order[i], order[p] = order[p], order[i]
        assert list(perm[b]) == order


case("lu", lambda rng, d: ([rand(rng, (3, 4, 4), d, -1, 1)], {}), INEXACT, check=_lu_check)
case("lu", lambda rng, d: ([np.array([[0.0, 1.0], [2.0, 3.0]], d)], {}), (F64,),
     check=_lu_check, label="needs_pivot")


# ---------------------------------------------------------------------------------------------
# FFT


for _name, _ref in [("fft", np.fft.fftn), ("ifft", np.fft.ifftn)]:
    for _axes in [(1,), (0, 2), (2, 0, 1)]:
        case(_name, lambda rng, d, ax=_axes: ([rand(rng, (4, 6, 5), d, -1, 1)], {"axes": ax}),
             COMPLEX, ref=(lambda f: lambda x, *, axes: f(x, axes=axes))(_ref), tol=64,
             label=str(_axes).replace(" ", ""))
    case(_name, lambda rng, d: ([rand(rng, (0, 3), d)], {"axes": (1,)}), (C128,),
         ref=lambda x, *, axes: np.zeros((0, 3), complex), label="empty")

for _axes in [(1,), (0, 1)]:
    case("rfft", lambda rng, d, ax=_axes: ([rand(rng, (4, 7), d, -1, 1)], {"axes": ax}), FLOATS,
         ref=lambda x, *, axes: np.fft.rfftn(x, axes=axes), tol=64,
         label=str(_axes).replace(" ", ""))
    for _n in (6, 7):
        case("irfft", lambda rng, d, ax=_axes, n=_n: (
            [rand(rng, (4, n // 2 + 1), d, -1, 1)], {"axes": ax, "n": n}), COMPLEX,
            ref=lambda x, *, axes, n: np.fft.irfftn(x, s=[x.shape[a] for a in axes[:-1]] + [n],
                                                    axes=axes),
            tol=64, label=f"{_axes}-{_n}".replace(" ", ""))


# ---------------------------------------------------------------------------------------------
# Random numbers (distribution tests are in test_random.py)


def _bits_check(args, params, outs):
    (key,), (bits,) = args, outs
    u = bits.view(np.uint64)
    if u.size >= 512:
        ones = np.unpackbits(u.view(np.uint8)).mean()
        assert abs(ones - 0.5) < 0.02, f"bit balance {ones}"
    other = P["random_bits"].bind(key + np.array([0, 1]), **params)
    assert u.size == 0 or not np.array_equal(bits, other)


for _shape in [(64, 9), (3,), (), (0, 4)]:
    case("random_bits", lambda rng, d, s=_shape: (
        [rng.integers(-2**62, 2**62, 2)], {"shape": s}), (I64,), check=_bits_check,
        label=str(_shape).replace(" ", ""))


def _split_check(args, params, outs):
    keys = outs[0]
    assert len({tuple(k) for k in keys}) == len(keys), "split keys repeat"
    assert not any(np.array_equal(k, args[0]) for k in keys)


case("random_split", lambda rng, d: ([rng.integers(-2**62, 2**62, 2)], {"num": 5}), (I64,),
     check=_split_check)


# ---------------------------------------------------------------------------------------------
# The tests


PARAMS = [pytest.param(c, d, id=_id(c, d)) for c in CASES for d in c.dtypes]


@pytest.mark.parametrize("c,d", PARAMS)
def test_primitive(c: Case, d):
    run_case(c, d)


def test_every_primitive_has_cases():
    tested = {c.prim for c in CASES}
    missing = sorted(n for n, p in PRIMITIVES.items() if p.family != "control" and n not in tested)
    assert not missing, f"primitives without a test case in tests/test_primitives.py: {missing}"


ELEMENTWISE_KIND = {**{n: k for n, (_, k, _) in UNARY.items()},
                    **{n: k for n, (_, k, _, _) in BINARY.items()}}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_KIND))
def test_elementwise_rejects_other_dtypes(name):
    """The dtype rule accepts exactly the dtypes of its kind and names the rest."""
    prim = P[name]
    arity = 1 if name in UNARY else 2
    allowed = KINDS[ELEMENTWISE_KIND[name]]
    for d in ALL:
        avals = [aval_of(np.zeros(2, d))] * arity
        if d in allowed:
            prim.abstract_eval(*avals)
        else:
            with pytest.raises(DTypeError, match=name):
                prim.abstract_eval(*avals)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5])


@pytest.mark.parametrize("name", sorted(n for n, v in UNARY.items()
                                        if v[1] in ("inexact", "float", "num", "any")))
@pytest.mark.parametrize("d", (F64, F32, F16, BF16), ids=str)
def test_unary_special_values(name, d):
    """NaN, infinities and signed zeros follow numpy in double precision, rounded to d."""
    x = SPECIAL.astype(d)
    ref, *_ = UNARY[name]
    with np.errstate(all="ignore"):
        expected = np.asarray(ref(widen(x)))
    g = make_graph(lambda v: P[name].bind(v), x)
    out = eval_graph(g, x)
    if expected.dtype != B:
        expected = widen(expected.astype(out.dtype))
    assert_close(out, expected, 4, name)
    np.testing.assert_array_equal(np.isnan(widen(out)), np.isnan(expected))


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                  "atan2", "mod", "lt", "eq"])
@pytest.mark.parametrize("d", (F64, F32, F16), ids=str)
def test_binary_special_values(name, d):
    x = np.repeat(SPECIAL, SPECIAL.size).astype(d)
    y = np.tile(SPECIAL, SPECIAL.size).astype(d)
    fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
          "pow": np.power, "maximum": np.maximum, "minimum": np.minimum, "atan2": np.arctan2,
          "mod": np.mod, "lt": np.less, "eq": np.equal}[name]
    with np.errstate(all="ignore"):
        expected = fn(widen(x), widen(y))
    out = eval_graph(make_graph(lambda a, b: P[name].bind(a, b), x, y), x, y)
    if expected.dtype != B:
        expected = widen(expected.astype(out.dtype))
    assert_close(out, expected, 4, name)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(n for n, v in BINARY.items() if F64 in KINDS[v[1]])),
       st.lists(st.integers(0, 3), min_size=0, max_size=3),
       st.lists(st.booleans(), min_size=3, max_size=3), st.integers(0, 2))
def test_binary_broadcasting_property(name, shape, ones, drop):
    """Any numpy-broadcastable pair of shapes gives numpy's result shape and values."""
    sy = tuple(1 if o else s for s, o in zip(shape, ones))[drop:]
    rng = np.random.default_rng(len(shape))
    _, _, xr, yr = BINARY[name]
    x, y = rand(rng, tuple(shape), F64, *xr), rand(rng, sy, F64, *yr)
    out = eval_graph(make_graph(lambda a, b: P[name].bind(a, b), x, y), x, y)
    with np.errstate(all="ignore"):
        assert_close(out, _binary_ref(name, BINARY[name][0])(x, y), 4, name)


def test_reductions_of_nan():
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])
    assert np.isnan(P["reduce_max"].bind(x, axes=(1,))[0])
    assert P["argmax"].bind(x, axes=(1,))[0] == 1  # numpy: the first NaN wins
    assert np.isnan(P["reduce_sum"].bind(x, axes=(0, 1)))
