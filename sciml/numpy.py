"""``sciml.numpy`` (import as ``snp``): numpy's names on plain arrays (eager: just numpy
semantics) and on traced values (recorded into the graph).

Ordinary numpy code is captured too: Tracers implement ``__array_ufunc__`` and
``__array_function__`` and dispatch here, so ``np.sin(x) + x @ y`` traces. A numpy function not
listed here raises ``UnsupportedError`` naming it.

>>> import sciml.numpy as snp
>>> float(snp.sum(snp.sin(snp.zeros(3)) + 1.0))
3.0
"""

from __future__ import annotations

import builtins

import numpy as np

from autodiff import dtypes as _dt
from autodiff import lax
from autodiff.errors import ShapeError, UnsupportedError
from autodiff.primitives import PRIMITIVES as _P
from autodiff.primitives import _load_table
from autodiff.trace import FUNCTION_HANDLERS, UFUNC_HANDLERS, Tracer, abstractify

_load_table()

# dtypes, as numpy names them
bool_ = np.bool_
int32, int64 = np.int32, np.int64
float16, float32, float64 = np.float16, np.float32, np.float64
bfloat16 = _dt.bfloat16.type
complex64, complex128 = np.complex64, np.complex128
pi, e, inf, nan, newaxis = np.pi, np.e, np.inf, np.nan, None
ndarray = np.ndarray

asarray = lax.asarray


def array(x, dtype=None, copy=True):
    return lax.asarray(x, dtype)


def _traced(*xs) -> bool:
    return builtins.any(isinstance(x, Tracer) for x in xs)


# ---------------------------------------------------------------------------------------------
# Elementwise


def _unary(name, prim):
    def f(x, /):
        return lax.unary(prim, x)

    f.__name__ = name
    f.__doc__ = f"Elementwise ``np.{name}`` (primitive ``{prim}``)."
    return f


def _binary(name, prim):
    def f(x, y, /):
        return lax.binary(prim, x, y)

    f.__name__ = name
    f.__doc__ = f"Elementwise ``np.{name}`` (primitive ``{prim}``)."
    return f


_UNARY_NAMES = {
    "negative": "neg", "abs": "abs", "absolute": "abs", "sign": "sign", "exp": "exp",
    "expm1": "expm1", "log": "log", "log1p": "log1p", "sqrt": "sqrt", "sin": "sin", "cos": "cos",
    "tan": "tan", "tanh": "tanh", "sinh": "sinh", "cosh": "cosh", "arcsin": "arcsin",
    "arccos": "arccos", "arctan": "arctan", "arcsinh": "arcsinh", "arccosh": "arccosh",
    "arctanh": "arctanh", "floor": "floor", "ceil": "ceil", "rint": "round", "real": "real",
    "imag": "imag", "conjugate": "conj", "conj": "conj", "isnan": "isnan", "isinf": "isinf",
    "isfinite": "isfinite", "invert": "not", "bitwise_not": "not",
}
_BINARY_NAMES = {
    "add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "div", "divide": "div",
    "floor_divide": "floor_divide", "maximum": "maximum", "minimum": "minimum",
    "arctan2": "atan2", "mod": "mod", "remainder": "mod", "bitwise_and": "and",
    "bitwise_or": "or", "bitwise_xor": "xor",
}
_COMPARE_NAMES = {
    "equal": "eq", "not_equal": "ne", "less": "lt", "less_equal": "le", "greater": "gt",
    "greater_equal": "ge",
}

for _n, _p in _UNARY_NAMES.items():
    globals()[_n] = _unary(_n, _p)
for _n, _p in _BINARY_NAMES.items():
    globals()[_n] = _binary(_n, _p)
for _n, _p in _COMPARE_NAMES.items():
    globals()[_n] = (lambda p: lambda x, y, /: lax.compare(p, x, y))(_p)

arctan2 = globals()["arctan2"]


def power(x, y, /):
    return lax.power(x, y)


pow = power  # noqa: A001


def square(x, /):
    return lax.power(x, 2)


def reciprocal(x, /):
    return lax.div(1.0, x) if not _dt.is_integer(abstractify(x).dtype) else lax.binary(
        "floor_divide", 1, x)


def erf(x, /):
    return lax.unary("erf", x)


def round(x, decimals=0):  # noqa: A001
    if decimals:
        scale = 10.0 ** decimals
        return lax.div(lax.unary("round", lax.mul(x, scale)), scale)
    return lax.unary("round", x)


around = round


def trunc(x, /):
    return where(lax.compare("lt", x, 0), lax.unary("ceil", x), lax.unary("floor", x))


fix = trunc


def logical_not(x, /):
    return lax.unary("not", astype(x, bool))


def logical_and(x, y, /):
    return lax.logical("and", astype(x, bool), astype(y, bool))


def logical_or(x, y, /):
    return lax.logical("or", astype(x, bool), astype(y, bool))


def logical_xor(x, y, /):
    return lax.logical("xor", astype(x, bool), astype(y, bool))


# The constants are Python floats: weak, so float32 input stays float32 (np.log(2.0) would be a
# strong float64 scalar and promote).
_LN2, _LN10 = float(np.log(2.0)), float(np.log(10.0))


def exp2(x, /):
    return lax.unary("exp", lax.mul(_math_input(x), _LN2))


def log2(x, /):
    return lax.div(lax.unary("log", x), _LN2)


def log10(x, /):
    return lax.div(lax.unary("log", x), _LN10)


def _math_input(x):
    """x converted as numpy's math ufuncs convert it (bool -> float16, int -> float64)."""
    d = abstractify(x).dtype
    return x if _dt.is_inexact(d) else lax.convert_element_type(x, lax._math_dtype(d))


def hypot(x, y, /):
    return sqrt(lax.add(square(x), square(y)))


def fmax(x, y, /):
    return where(isnan(y), x, where(isnan(x), y, maximum(x, y)))


def fmin(x, y, /):
    return where(isnan(y), x, where(isnan(x), y, minimum(x, y)))


def clip(a, a_min=None, a_max=None):
    if a_min is not None:
        a = maximum(a, a_min)
    if a_max is not None:
        a = minimum(a, a_max)
    return a


def where(condition, x=None, y=None, /):
    if x is None and y is None:
        if _traced(condition):
            raise ShapeError("where(condition) with one argument has a data-dependent shape")
        return np.where(condition)
    return lax.where(condition, x, y)


def astype(x, dtype, /, copy=True):
    return lax.convert_element_type(x, dtype)


def sinc(x, /):
    px = lax.mul(x, np.pi)
    return where(lax.compare("eq", x, 0), lax.add(lax.mul(x, 0), 1.0), lax.div(sin(px), px))


def deg2rad(x, /):
    return lax.mul(x, np.pi / 180)


def rad2deg(x, /):
    return lax.mul(x, 180 / np.pi)


radians, degrees = deg2rad, rad2deg


def heaviside(x, h0, /):
    return where(lax.compare("lt", x, 0), lax.mul(x, 0), where(lax.compare("gt", x, 0),
                 lax.add(lax.mul(x, 0), 1), lax.add(lax.mul(x, 0), h0)))


def stop_gradient(x):
    """Identity whose derivative is zero."""
    return _P["stop_gradient"].bind(x) if _traced(x) else np.asarray(x)


# ---------------------------------------------------------------------------------------------
# Reductions


def sum(a, axis=None, dtype=None, keepdims=False, **kw):  # noqa: A001
    _no_out(kw, "sum")
    return lax.sum(a, _axis(axis), keepdims, dtype)


def prod(a, axis=None, dtype=None, keepdims=False, **kw):
    _no_out(kw, "prod")
    if dtype is not None:
        a = astype(a, dtype)
    return lax.reduce("reduce_prod", a, _axis(axis), keepdims)


def max(a, axis=None, keepdims=False, **kw):  # noqa: A001
    _no_out(kw, "max")
    return lax.reduce("reduce_max", a, _axis(axis), keepdims)


def min(a, axis=None, keepdims=False, **kw):  # noqa: A001
    _no_out(kw, "min")
    return lax.reduce("reduce_min", a, _axis(axis), keepdims)


amax, amin = max, min


def mean(a, axis=None, dtype=None, keepdims=False, **kw):
    _no_out(kw, "mean")
    return lax.mean(a, _axis(axis), keepdims, dtype)


def var(a, axis=None, dtype=None, ddof=0, keepdims=False, **kw):
    _no_out(kw, "var")
    m = mean(a, axis, dtype, keepdims=True)
    d = lax.sub(a, m)
    sq = real(lax.mul(d, conj(d))) if _dt.is_complex(abstractify(d).dtype) else square(d)
    n = _count(a, axis)
    return lax.div(sum(sq, axis, keepdims=keepdims), float(builtins.max(n - ddof, 0)))


def std(a, axis=None, dtype=None, ddof=0, keepdims=False, **kw):
    return sqrt(var(a, axis, dtype, ddof, keepdims, **kw))


def _count(a, axis):
    shape = abstractify(a).shape
    if axis is None:
        return int(np.prod(shape, dtype=np.int64))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[i] for i in axes], dtype=np.int64))


def argmax(a, axis=None, keepdims=False):
    if axis is None:
        return lax.reduce("argmax", lax.reshape(a, (-1,)), 0, False)
    return _P["argmax"].bind(_arr(a), axes=(axis % abstractify(a).ndim,), keepdims=keepdims)


def argmin(a, axis=None, keepdims=False):
    if axis is None:
        return lax.reduce("argmin", lax.reshape(a, (-1,)), 0, False)
    return _P["argmin"].bind(_arr(a), axes=(axis % abstractify(a).ndim,), keepdims=keepdims)


def all(a, axis=None, keepdims=False):  # noqa: A001
    return lax.reduce("reduce_min", astype(a, bool), _axis(axis), keepdims) if abstractify(
        a).size else _full_like_bool(a, axis, keepdims, True)


def any(a, axis=None, keepdims=False):  # noqa: A001
    return lax.reduce("reduce_max", astype(a, bool), _axis(axis), keepdims) if abstractify(
        a).size else _full_like_bool(a, axis, keepdims, False)


def _full_like_bool(a, axis, keepdims, value):
    from autodiff.ops.reduce import normalize_axes, reduced_shape

    av = abstractify(a)
    shape = reduced_shape(av.shape, normalize_axes("all", _axis(axis), av.ndim), keepdims)
    return np.full(shape, value)


def cumsum(a, axis=None, dtype=None):
    if dtype is not None:
        a = astype(a, dtype)
    if axis is None:
        a, axis = lax.reshape(a, (-1,)), 0
    return _P["cumsum"].bind(_arr(a), axis=axis % abstractify(a).ndim, reverse=False)


def sort(a, axis=-1):
    if axis is None:
        a, axis = lax.reshape(a, (-1,)), 0
    return _P["sort"].bind(_arr(a), axis=axis % abstractify(a).ndim)


def argsort(a, axis=-1):
    if axis is None:
        a, axis = lax.reshape(a, (-1,)), 0
    return _P["argsort"].bind(_arr(a), axis=axis % abstractify(a).ndim)


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _no_out(kw, name):
    if kw.get("out") is not None:
        raise UnsupportedError(f"{name}(out=...) is not supported: sciml arrays are immutable")
    extra = set(kw) - {"out", "where", "initial"}
    if extra or kw.get("where") is not None or kw.get("initial") is not None:
        raise UnsupportedError(f"{name}: unsupported arguments {sorted(set(kw) - {'out'})}")


def _arr(x):
    return x if isinstance(x, Tracer) else lax.asarray(x)


# ---------------------------------------------------------------------------------------------
# Shapes


reshape = lax.reshape
transpose = lax.transpose
expand_dims = lax.expand_dims
squeeze = lax.squeeze
concatenate = lax.concatenate
stack = lax.stack
swapaxes = lax.swapaxes
broadcast_to = lax.broadcast_to
matmul = lax.matmul


def ravel(a):
    return lax.reshape(a, (-1,))


def shape(a):
    return abstractify(a).shape


def ndim(a):
    return abstractify(a).ndim


def size(a):
    return abstractify(a).size


def moveaxis(a, source, destination):
    nd = abstractify(a).ndim
    src = [s % nd for s in ((source,) if isinstance(source, int) else source)]
    dst = [d % nd for d in ((destination,) if isinstance(destination, int) else destination)]
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return lax.transpose(a, order)


def hstack(xs):
    xs = [atleast_1d(x) for x in xs]
    return concatenate(xs, axis=0 if abstractify(xs[0]).ndim == 1 else 1)


def vstack(xs):
    return concatenate([atleast_2d(x) for x in xs], axis=0)


def atleast_1d(x):
    return lax.reshape(x, (1,)) if abstractify(x).ndim == 0 else x


def atleast_2d(x):
    nd = abstractify(x).ndim
    return lax.reshape(x, (1,) * (2 - nd) + abstractify(x).shape) if nd < 2 else x


def flip(a, axis=None):
    nd = abstractify(a).ndim
    axes = tuple(range(nd)) if axis is None else tuple(
        ax % nd for ax in ((axis,) if isinstance(axis, int) else axis))
    return _P["rev"].bind(_arr(a), axes=axes)


def fliplr(a):
    return flip(a, 1)


def flipud(a):
    return flip(a, 0)


def roll(a, shift, axis=None):
    """Periodic shift, numpy's convention: ``roll(a, 1)[i] == a[i - 1]``."""
    if axis is None:
        return lax.reshape(roll(ravel(a), shift, 0), abstractify(a).shape)
    shifts = (shift,) if isinstance(shift, int) else tuple(shift)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = abstractify(a).ndim
    offset = [0] * nd
    for s, ax in zip(shifts, axes):
        offset[ax % nd] -= int(s)
    # The parameter ``shift`` hides the module's shift function here: bind the primitive.
    return _P["shift"].bind(_arr(a), offset=tuple(offset), boundary="periodic")


def shift(a, offset, boundary="zero"):
    """The stencil read: ``out[i] = a[i + offset]`` with ``boundary`` "zero", "periodic" or
    "edge" where ``i + offset`` leaves the array (see docs/ir.md). ``offset`` has one entry
    per axis; a plain integer is the offset of a 1-D array."""
    if np.ndim(offset) == 0:
        offset = (offset,)
    return _P["shift"].bind(_arr(a), offset=tuple(int(o) for o in offset), boundary=boundary)


def pad(array, pad_width, mode="constant", constant_values=0):
    a = abstractify(array)
    pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64).reshape(-1, 2)
                         if np.ndim(pad_width) else np.asarray([[pad_width] * 2]), (a.ndim, 2))
    modes = {"constant": "constant", "edge": "edge", "wrap": "periodic", "periodic": "periodic"}
    if mode not in modes:
        raise UnsupportedError(f"pad: mode {mode!r} is not supported (use one of {list(modes)})")
    if np.ndim(constant_values):
        raise UnsupportedError("pad: constant_values must be a single scalar")
    pw_t = tuple((int(lo), int(hi)) for lo, hi in pw)
    return _P["pad"].bind(_arr(array), pad_width=pw_t, mode=modes[mode],
                          value=constant_values.item() if hasattr(constant_values, "item")
                          else constant_values)


def diff(a, n=1, axis=-1):
    for _ in range(n):
        nd = abstractify(a).ndim
        ax = axis % nd
        hi = [builtins.slice(None)] * nd
        lo = [builtins.slice(None)] * nd
        hi[ax], lo[ax] = builtins.slice(1, None), builtins.slice(None, -1)
        a = lax.sub(lax.getitem(a, tuple(hi)), lax.getitem(a, tuple(lo)))
    return a


def take(a, indices, axis=None):
    if axis is None:
        a, axis = ravel(a), 0
    return _P["take"].bind(_arr(a), _arr(lax.asarray(indices) if not _traced(indices)
                                         else indices), axis=axis % abstractify(a).ndim)


def take_along_axis(arr, indices, axis):
    """``np.take_along_axis``: integer-array indexing with an index grid on the other axes."""
    if axis is None:
        arr, axis = ravel(arr), 0
    a, ia = abstractify(arr), abstractify(indices)
    if ia.ndim != a.ndim:
        raise ShapeError(f"take_along_axis: indices {ia} must have the rank of the array {a}")
    axis = axis % a.ndim
    grid = []
    for d in builtins.range(a.ndim):
        if d == axis:
            grid.append(indices if _traced(indices) else lax.asarray(indices))
        else:
            view = [1] * a.ndim
            view[d] = a.shape[d]
            grid.append(np.arange(a.shape[d]).reshape(view))
    return lax.getitem(arr, tuple(grid))


# ---------------------------------------------------------------------------------------------
# Creation


def zeros(shape, dtype=float):
    return np.zeros(shape, _dt.check_supported(dtype, "zeros dtype"))


def ones(shape, dtype=float):
    return np.ones(shape, _dt.check_supported(dtype, "ones dtype"))


def full(shape, fill_value, dtype=None):
    if _traced(fill_value):
        v = fill_value if dtype is None else astype(fill_value, dtype)
        return lax.broadcast_to(v, (shape,) if isinstance(shape, int) else shape)
    return np.full(shape, fill_value, dtype)


def empty(shape, dtype=float):
    return zeros(shape, dtype)


def zeros_like(a, dtype=None):
    av = abstractify(a)
    return np.zeros(av.shape, dtype or av.dtype)


def ones_like(a, dtype=None):
    av = abstractify(a)
    return np.ones(av.shape, dtype or av.dtype)


def full_like(a, fill_value, dtype=None):
    av = abstractify(a)
    return full(av.shape, fill_value, dtype or av.dtype)


def empty_like(a, dtype=None):
    return zeros_like(a, dtype)


def arange(*args, dtype=None):
    return np.arange(*args, dtype=dtype)


def linspace(start, stop, num=50, endpoint=True, dtype=None):
    return np.linspace(start, stop, num, endpoint=endpoint, dtype=dtype)


def eye(n, m=None, k=0, dtype=float):
    return np.eye(n, m, k, dtype=dtype)


def iota(shape, dtype=np.int64, dimension=0):
    """Integers counting along ``dimension`` (recorded as a node while tracing)."""
    return _P["iota"].bind(shape=tuple(shape), dtype=np.dtype(dtype), dimension=dimension)


def meshgrid(*xs, indexing="xy"):
    xs = [ravel(x) for x in xs]
    shapes = [abstractify(x).shape[0] for x in xs]
    if indexing == "xy" and len(xs) >= 2:
        shapes[0], shapes[1] = shapes[1], shapes[0]
    out = []
    for i, x in enumerate(xs):
        view = [1] * len(xs)
        j = i
        if indexing == "xy" and len(xs) >= 2 and i < 2:
            j = 1 - i
        view[j] = abstractify(x).shape[0]
        out.append(lax.broadcast_to(lax.reshape(x, view), tuple(shapes)))
    return out


# ---------------------------------------------------------------------------------------------
# Products


def dot(a, b):
    aa, ab = abstractify(a), abstractify(b)
    if aa.ndim == 0 or ab.ndim == 0:
        return lax.mul(a, b)
    if ab.ndim <= 2:
        return lax.matmul(a, b)
    return tensordot(a, b, axes=([aa.ndim - 1], [ab.ndim - 2]))


def vdot(a, b):
    return sum(lax.mul(conj(ravel(a)), ravel(b)))


def inner(a, b):
    aa, ab = abstractify(a), abstractify(b)
    if aa.ndim == 0 or ab.ndim == 0:
        return lax.mul(a, b)
    return tensordot(a, b, axes=([aa.ndim - 1], [ab.ndim - 1]))


def outer(a, b):
    return lax.mul(lax.reshape(a, (-1, 1)), lax.reshape(b, (1, -1)))


def tensordot(a, b, axes=2):
    aa, ab = abstractify(a), abstractify(b)
    if isinstance(axes, int):
        la, lb = list(range(aa.ndim - axes, aa.ndim)), list(range(axes))
    else:
        la, lb = axes
        la = [la] if isinstance(la, int) else list(la)
        lb = [lb] if isinstance(lb, int) else list(lb)
    la = tuple(i % aa.ndim for i in la)
    lb = tuple(i % ab.ndim for i in lb)
    return lax.dot_general(a, b, ((la, lb), ((), ())))


def einsum(subscripts, *operands, optimize=None):
    """``np.einsum`` (string subscripts): pairwise dot_general contractions, left to right."""
    from autodiff.einsum import einsum as _einsum

    return _einsum(subscripts, *operands, optimize=optimize)


def trace(a, offset=0, axis1=0, axis2=1):
    if offset or (axis1, axis2) != (0, 1) or abstractify(a).ndim != 2:
        raise UnsupportedError("trace: only the main diagonal of a 2-D array is supported")
    n = builtins.min(abstractify(a).shape)
    return sum(lax.getitem(a, (np.arange(n), np.arange(n))))


def diag(v, k=0):
    av = abstractify(v)
    if k:
        raise UnsupportedError("diag: only k=0 is supported")
    if av.ndim == 1:
        n = av.shape[0]
        return lax.mul(lax.reshape(v, (1, n)), np.eye(n, dtype=av.dtype))
    n = builtins.min(av.shape)
    return lax.getitem(v, (np.arange(n), np.arange(n)))


def cross(a, b):
    def c(i):
        return lax.getitem(a, (Ellipsis, i))

    def d(i):
        return lax.getitem(b, (Ellipsis, i))

    return stack([lax.sub(lax.mul(c(1), d(2)), lax.mul(c(2), d(1))),
                  lax.sub(lax.mul(c(2), d(0)), lax.mul(c(0), d(2))),
                  lax.sub(lax.mul(c(0), d(1)), lax.mul(c(1), d(0)))], axis=-1)


# ---------------------------------------------------------------------------------------------
# numpy protocol dispatch tables


def _register():
    ufuncs = {}
    for n in list(_UNARY_NAMES) + list(_BINARY_NAMES) + list(_COMPARE_NAMES) + [
        "power", "square", "reciprocal", "logical_not", "logical_and", "logical_or",
        "logical_xor", "exp2", "log2", "log10", "hypot", "fmax", "fmin", "deg2rad", "rad2deg",
        "heaviside", "trunc",
    ]:
        ufuncs[n] = globals()[n]
    ufuncs["positive"] = lambda x: x
    ufuncs["matmul"] = matmul
    ufuncs["rint"] = globals()["rint"]
    ufuncs["radians"], ufuncs["degrees"] = deg2rad, rad2deg
    UFUNC_HANDLERS.update(ufuncs)
    for n in [
        "sum", "prod", "max", "min", "amax", "amin", "mean", "var", "std", "argmax", "argmin",
        "all", "any", "cumsum", "sort", "argsort", "reshape", "transpose", "expand_dims",
        "squeeze", "concatenate", "stack", "swapaxes", "broadcast_to", "matmul", "ravel",
        "shape", "ndim", "size", "moveaxis", "hstack", "vstack", "atleast_1d", "atleast_2d",
        "flip", "fliplr", "flipud", "roll", "pad", "diff", "take", "zeros_like", "ones_like",
        "full_like", "empty_like", "dot", "vdot", "inner", "outer", "tensordot", "einsum",
        "take_along_axis",
        "trace", "diag", "cross", "where", "clip", "round", "around", "sinc", "meshgrid",
        "real", "imag", "conj", "conjugate", "abs", "isnan", "isfinite", "isinf", "sign",
        "sqrt", "exp", "log", "sin", "cos", "tan", "tanh", "fix", "astype",
    ]:
        if hasattr(np, n):
            FUNCTION_HANDLERS[getattr(np, n)] = globals()[n]
    FUNCTION_HANDLERS[np.asarray] = lambda x, dtype=None, **k: lax.asarray(x, dtype)
    FUNCTION_HANDLERS[np.array] = lambda x, dtype=None, **k: lax.asarray(x, dtype)
    FUNCTION_HANDLERS[np.result_type] = lambda *a: _dt.result_type(
        *[(abstractify(x).dtype, abstractify(x).weak) for x in a])[0]


rint = globals()["rint"]
_register()

# The linalg and fft namespaces (imported last: they use the functions above).
from . import fft, linalg  # noqa: E402


def _register_submodules():
    for mod, np_mod in ((linalg, np.linalg), (fft, np.fft)):
        for n in mod.__all__:
            if hasattr(np_mod, n):
                FUNCTION_HANDLERS[getattr(np_mod, n)] = getattr(mod, n)
    for n in ("svd", "eig", "lstsq", "pinv"):
        FUNCTION_HANDLERS[getattr(np.linalg, n)] = getattr(linalg, n)


_register_submodules()


def __getattr__(name):
    if hasattr(np, name):
        raise UnsupportedError(
            f"sciml.numpy.{name} is not supported yet (numpy has it); file an issue or write it "
            "with the supported functions"
        )
    raise AttributeError(f"module 'sciml.numpy' has no attribute {name!r}")


__all__ = [n for n in list(globals()) if not n.startswith("_") and n not in (
    "annotations", "builtins", "np", "lax", "DTypeError", "ShapeError", "UnsupportedError",
    "Tracer", "abstractify", "FUNCTION_HANDLERS", "UFUNC_HANDLERS")]
