"""numpy semantics on top of the strict primitives: dtype promotion (NEP 50, Python scalars
weak), broadcasting, indexing. Works on numpy arrays (eagerly) and on Tracers (recording).

This is the layer Tracer operators use; ``sciml.numpy`` builds the full numpy namespace on it.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import dtypes
from .errors import DTypeError, ShapeError, UnsupportedError
from .ir import AbstractValue
from .primitives import PRIMITIVES
from .trace import Tracer, abstractify

P = PRIMITIVES


def _is_scalar(x) -> bool:
    return isinstance(x, (bool, int, float, complex, numbers.Number)) and not isinstance(
        x, (np.ndarray, np.generic)
    )


def aval(x) -> AbstractValue:
    return abstractify(x)


def asarray(x, dtype=None):
    """numpy array or Tracer for ``x``; Python scalars become 0-d arrays of their weak dtype."""
    if isinstance(x, Tracer):
        return x if dtype is None or x.dtype == dtypes.dtype(dtype) else convert_element_type(
            x, dtype)
    if isinstance(x, (list, tuple)) and any(isinstance(e, Tracer) for e in _flat(x)):
        return stack([asarray(e) for e in x]) if dtype is None else stack(
            [asarray(e, dtype) for e in x])
    if dtype is not None:
        return np.asarray(x, dtype=dtypes.dtype(dtype))
    if _is_scalar(x):
        return np.asarray(x, dtype=aval(x).dtype)
    arr = np.asarray(x)
    d = _supported(arr.dtype, "array")
    return arr if arr.dtype == d else arr.astype(d)


def _flat(x):
    for e in x:
        if isinstance(e, (list, tuple)):
            yield from _flat(e)
        else:
            yield e


def _supported(d, what):
    """``dtypes.check_supported`` raising sciml's DTypeError (a TypeError) with the name."""
    try:
        return dtypes.check_supported(d, what)
    except TypeError as e:
        raise DTypeError(str(e)) from None


def convert_element_type(x, dtype):
    d = _supported(dtype, "astype/convert target")
    if not isinstance(x, Tracer):
        if _is_scalar(x):
            return np.asarray(x, dtype=d) if not (dtypes.is_complex(aval(x).dtype) and not
                                                   dtypes.is_complex(d)) else np.asarray(
                np.real(x), dtype=d)
        x = asarray(x)
        if x.dtype == d:
            return x
    elif x.dtype == d:
        return x
    return P["convert"].bind(x, new_dtype=d)


def promote(name: str, *xs):
    """Convert ``xs`` to their common dtype (numpy's rules, Python scalars weak)."""
    avs = [aval(x) for x in xs]
    d, _ = dtypes.result_type(*[(a.dtype, a.weak) for a in avs])
    return [_to_dtype(x, a, d) for x, a in zip(xs, avs)]


def _to_dtype(x, a: AbstractValue, d):
    if _is_scalar(x):
        return np.asarray(x, dtype=d) if not (
            dtypes.is_complex(np.asarray(x).dtype) and not dtypes.is_complex(d)) else x
    if a.dtype == d:
        return x if isinstance(x, Tracer) else asarray(x)
    return convert_element_type(x, d)


# ---------------------------------------------------------------------------------------------
# Elementwise


_FLOAT_ONLY = {
    "exp", "expm1", "log", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh",
    "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "erf",
}


def _math_dtype(d):
    """The float dtype numpy's math ufuncs (sin, sqrt, arctan2, ...) use for a non-float input:
    float16 for booleans, float64 for integers."""
    return np.dtype("float16") if d == np.bool_ else dtypes.float_dtype(d)


def unary(name: str, x):
    x = x if isinstance(x, Tracer) else asarray(x)
    a = aval(x)
    if name in _FLOAT_ONLY and not dtypes.is_inexact(a.dtype):
        x = convert_element_type(x, _math_dtype(a.dtype))
    if name in ("floor", "ceil", "round") and not dtypes.is_inexact(a.dtype):
        return x  # integers are already whole
    return P[name].bind(x)


def binary(name: str, x, y):
    x, y = promote(name, x, y)
    if name in ("div", "atan2") and not dtypes.is_inexact(aval(x).dtype):
        # true_divide gives float64 even for booleans; arctan2 follows the math ufuncs.
        d = _math_dtype(aval(x).dtype) if name == "atan2" else dtypes.float_dtype(aval(x).dtype)
        x, y = convert_element_type(x, d), convert_element_type(y, d)
    return P[name].bind(x, y)


def add(x, y):
    return binary("add", x, y)


def sub(x, y):
    return binary("sub", x, y)


def mul(x, y):
    return binary("mul", x, y)


def div(x, y):
    return binary("div", x, y)


def neg(x):
    return unary("neg", x)


def power(x, y):
    # x ** n for a static integer n: exact repeated multiplication (and simple derivatives).
    if isinstance(y, (int, np.integer)) and not isinstance(y, bool) and abs(int(y)) <= 64:
        a = aval(x)
        if y >= 0 or dtypes.is_inexact(a.dtype):
            x = x if isinstance(x, Tracer) else asarray(x)
            return P["integer_pow"].bind(x, y=int(y))
    return binary("pow", x, y)


def where(c, x, y):
    c = c if isinstance(c, Tracer) else asarray(c)
    if aval(c).dtype != np.bool_:
        c = ne(c, 0)
    x, y = promote("where", x, y)
    return P["select"].bind(c, x, y)


def compare(name, x, y):
    x, y = promote(name, x, y)
    return P[name].bind(x, y)


def ne(x, y):
    return compare("ne", x, y)


def logical(name, x, y):
    x, y = promote(name, x, y)
    d = aval(x).dtype
    if not (d == np.bool_ or dtypes.is_integer(d)):
        raise DTypeError(f"{name}: needs boolean or integer operands, got {aval(x)} and "
                         f"{aval(y)}")
    return P[name].bind(x, y)


def as_index(x, what="index"):
    a = aval(x)
    if a.shape != () or not dtypes.is_integer(a.dtype):
        raise DTypeError(f"{what} must be an integer scalar, got {a}")
    return x if isinstance(x, Tracer) else np.asarray(int(x), np.int64)


# ---------------------------------------------------------------------------------------------
# Shapes


def broadcast_to(x, shape):
    shape = tuple(int(s) for s in shape)
    a = aval(x)
    if a.shape == shape:
        return x
    if a.ndim > len(shape):
        raise ShapeError(f"broadcast_to: cannot broadcast {a.shape} to {shape}")
    dims = tuple(range(len(shape) - a.ndim, len(shape)))
    x = x if isinstance(x, Tracer) else asarray(x)
    return P["broadcast_in_dim"].bind(x, shape=shape, broadcast_dimensions=dims)


def reshape(x, shape):
    a = aval(x)
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = list(shape)
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: more than one -1 in {tuple(shape)}")
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        if known == 0 or a.size % known:
            raise ShapeError(f"reshape: cannot reshape array of shape {a.shape} into {shape}")
        shape[shape.index(-1)] = a.size // known
    shape = tuple(shape)
    if shape == a.shape:
        return x
    x = x if isinstance(x, Tracer) else asarray(x)
    return P["reshape"].bind(x, new_shape=shape)


def transpose(x, axes=None):
    a = aval(x)
    perm = tuple(reversed(range(a.ndim))) if axes is None else tuple(
        int(p) % max(a.ndim, 1) for p in axes)
    if perm == tuple(range(a.ndim)):
        return x
    x = x if isinstance(x, Tracer) else asarray(x)
    return P["transpose"].bind(x, permutation=perm)


def expand_dims(x, axis):
    a = aval(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = a.ndim + len(axes)
    axes = sorted(ax % nd for ax in axes)
    shape = list(a.shape)
    for ax in axes:
        shape.insert(ax, 1)
    return reshape(x, shape)


def squeeze(x, axis=None):
    a = aval(x)
    if axis is None:
        axes = [i for i, s in enumerate(a.shape) if s == 1]
    else:
        axes = [ax % a.ndim for ax in ((axis,) if isinstance(axis, int) else axis)]
        for ax in axes:
            if a.shape[ax] != 1:
                raise ShapeError(f"squeeze: axis {ax} of shape {a.shape} has size {a.shape[ax]}")
    return reshape(x, [s for i, s in enumerate(a.shape) if i not in axes])


def concatenate(xs, axis=0):
    xs = promote("concatenate", *xs)
    a0 = aval(xs[0])
    if a0.ndim == 0:
        raise ShapeError("concatenate: zero-dimensional arrays cannot be concatenated")
    axis = axis % a0.ndim
    xs = [x for x in xs if aval(x).shape[axis] or len(xs) == 1] or xs[:1]
    if len(xs) == 1:
        return xs[0]
    xs = [x if isinstance(x, Tracer) else asarray(x) for x in xs]
    return P["concatenate"].bind(*xs, axis=axis)


def stack(xs, axis=0):
    xs = list(xs)
    if not xs:
        raise ShapeError("stack: needs at least one array")
    shapes = {aval(x).shape for x in xs}
    if len(shapes) != 1:
        raise ShapeError(f"stack: all input arrays must have the same shape, got {shapes}")
    nd = aval(xs[0]).ndim + 1
    return concatenate([expand_dims(x, axis % nd) for x in xs], axis=axis % nd)


# ---------------------------------------------------------------------------------------------
# Reductions


def reduce(name, x, axis=None, keepdims=False):
    a = aval(x)
    x = x if isinstance(x, Tracer) else asarray(x)
    axes = _axes(name, axis, a.ndim)
    if not axes and not keepdims and name != "reduce_sum":
        return x
    return P[name].bind(x, axes=axes, keepdims=bool(keepdims))


def _axes(name, axis, ndim):
    from .ops.reduce import normalize_axes

    return normalize_axes(name, axis, ndim)


def sum(x, axis=None, keepdims=False, dtype=None):  # noqa: A001
    if dtype is not None:
        x = convert_element_type(x, dtype)
    return reduce("reduce_sum", x, axis, keepdims)


def mean(x, axis=None, keepdims=False, dtype=None):
    a = aval(x)
    if dtype is None and not dtypes.is_inexact(a.dtype):
        dtype = np.float64
    if dtype is not None:
        x = convert_element_type(x, dtype)
    axes = _axes("mean", axis, a.ndim)
    n = int(np.prod([a.shape[i] for i in axes], dtype=np.int64))
    s = reduce("reduce_sum", x, axis, keepdims)
    return div(s, float(n)) if n else div(s, float("nan"))


# ---------------------------------------------------------------------------------------------
# Products


def dot_general(x, y, dimension_numbers, preferred_dtype=None):
    x, y = promote("dot_general", x, y)
    x = x if isinstance(x, Tracer) else asarray(x)
    y = y if isinstance(y, Tracer) else asarray(y)
    return P["dot_general"].bind(x, y, dimension_numbers=_canon_dims(dimension_numbers),
                                 preferred_dtype=preferred_dtype)


def _canon_dims(dn):
    (lc, rc), (lb, rb) = dn
    return ((tuple(lc), tuple(rc)), (tuple(lb), tuple(rb)))


def matmul(x, y):
    """numpy's matmul: 1-D operands are promoted and the added axis removed afterwards."""
    ax, ay = aval(x), aval(y)
    if ax.ndim == 0 or ay.ndim == 0:
        raise ShapeError(f"matmul: operands must not be scalars, got {ax.shape} and {ay.shape}")
    if ax.ndim == 1:
        return squeeze(matmul(expand_dims(x, 0), y), -2)
    if ay.ndim == 1:
        return squeeze(matmul(x, expand_dims(y, -1)), -1)
    if ax.shape[-1] != ay.shape[-2]:
        raise ShapeError(
            f"matmul: contracting dimensions differ: {ax.shape} @ {ay.shape} "
            f"({ax.shape[-1]} != {ay.shape[-2]})"
        )
    batch = tuple(np.broadcast_shapes(ax.shape[:-2], ay.shape[:-2]))
    x = broadcast_to(x, batch + ax.shape[-2:])
    y = broadcast_to(y, batch + ay.shape[-2:])
    nb = len(batch)
    b = tuple(range(nb))
    return dot_general(x, y, (((nb + 1,), (nb,)), (b, b)))


# ---------------------------------------------------------------------------------------------
# Indexing


def getitem(x, idx):
    """numpy basic and integer-array indexing (boolean masks only on concrete arrays)."""
    from .indexing import getitem as _getitem

    return _getitem(x, idx)


def _unsupported(what):
    raise UnsupportedError(what)


# ---------------------------------------------------------------------------------------------
# Tracer operators


def _r(fn):
    return lambda self, other: fn(other, self)


def _attach_operators():
    T = Tracer
    T.__add__ = add
    T.__radd__ = _r(add)
    T.__sub__ = sub
    T.__rsub__ = _r(sub)
    T.__mul__ = mul
    T.__rmul__ = _r(mul)
    T.__truediv__ = div
    T.__rtruediv__ = _r(div)
    T.__floordiv__ = lambda s, o: binary("floor_divide", s, o)
    T.__rfloordiv__ = lambda s, o: binary("floor_divide", o, s)
    T.__mod__ = lambda s, o: binary("mod", s, o)
    T.__rmod__ = lambda s, o: binary("mod", o, s)
    T.__pow__ = power
    T.__rpow__ = _r(power)
    T.__matmul__ = matmul
    T.__rmatmul__ = _r(matmul)
    T.__neg__ = neg
    T.__pos__ = lambda s: s
    T.__abs__ = lambda s: unary("abs", s)
    T.__invert__ = lambda s: unary("not", s)
    T.__and__ = lambda s, o: logical("and", s, o)
    T.__rand__ = lambda s, o: logical("and", o, s)
    T.__or__ = lambda s, o: logical("or", s, o)
    T.__ror__ = lambda s, o: logical("or", o, s)
    T.__xor__ = lambda s, o: logical("xor", s, o)
    T.__rxor__ = lambda s, o: logical("xor", o, s)
    T.__lt__ = lambda s, o: compare("lt", s, o)
    T.__le__ = lambda s, o: compare("le", s, o)
    T.__gt__ = lambda s, o: compare("gt", s, o)
    T.__ge__ = lambda s, o: compare("ge", s, o)
    T.__eq__ = lambda s, o: compare("eq", s, o)
    T.__ne__ = lambda s, o: compare("ne", s, o)
    T.__getitem__ = getitem
    T.T = property(lambda s: transpose(s))
    T.mT = property(lambda s: swapaxes(s, -1, -2))
    T.real = property(lambda s: unary("real", s))
    T.imag = property(lambda s: unary("imag", s))
    T.conj = lambda s: unary("conj", s)
    T.astype = lambda s, dtype: convert_element_type(s, dtype)
    T.reshape = lambda s, *shape: reshape(s, shape[0] if len(shape) == 1 else shape)
    T.transpose = lambda s, *axes: transpose(s, (axes[0] if len(axes) == 1 and not isinstance(
        axes[0], int) else axes) or None)
    T.sum = lambda s, axis=None, keepdims=False, dtype=None: sum(s, axis, keepdims, dtype)
    T.mean = lambda s, axis=None, keepdims=False, dtype=None: mean(s, axis, keepdims, dtype)
    T.max = lambda s, axis=None, keepdims=False: reduce("reduce_max", s, axis, keepdims)
    T.min = lambda s, axis=None, keepdims=False: reduce("reduce_min", s, axis, keepdims)
    T.prod = lambda s, axis=None, keepdims=False: reduce("reduce_prod", s, axis, keepdims)
    T.ravel = lambda s: reshape(s, (-1,))
    T.flatten = lambda s: reshape(s, (-1,))
    T.squeeze = lambda s, axis=None: squeeze(s, axis)
    T.dot = lambda s, o: matmul(s, o)
    T.at = property(lambda s: _AtIndexer(s))


def swapaxes(x, a, b):
    nd = aval(x).ndim
    perm = list(range(nd))
    perm[a % nd], perm[b % nd] = perm[b % nd], perm[a % nd]
    return transpose(x, perm)


class _AtIndexer:
    """``x.at[idx].add(v)`` / ``.set(v)``: functional updates (JAX's API)."""

    def __init__(self, x):
        self.x = x

    def __getitem__(self, idx):
        from .indexing import IndexUpdate

        return IndexUpdate(self.x, idx)


_attach_operators()
