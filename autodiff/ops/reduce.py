"""Reductions (sum, max, min, prod, argmax, argmin) over static axes, plus cumsum and sort."""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..ir import AbstractValue
from ..primitives import def_primitive


def normalize_axes(name: str, axes, ndim: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise ShapeError(f"{name}: axis {a} is out of bounds for an array of rank {ndim}")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ShapeError(f"{name}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))


def reduced_shape(shape, axes, keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _reduce_rule(name: str, out_kind: str):
    def rule(x, *, axes, keepdims=False):
        axes = normalize_axes(name, axes, x.ndim)
        if name in ("reduce_max", "reduce_min", "argmax", "argmin"):
            if dtypes.is_complex(x.dtype):
                raise DTypeError(f"{name}: complex dtype {x.dtype} has no ordering")
            empty = [x.shape[a] for a in axes if x.shape[a] == 0]
            if empty:
                raise ShapeError(f"{name}: zero-size axis in array of shape {x.shape} has no "
                                 f"{'maximum' if 'max' in name else 'minimum'}")
        shape = reduced_shape(x.shape, axes, keepdims)
        if out_kind == "index":
            return AbstractValue(shape, np.dtype("int64"))
        d = x.dtype
        if out_kind == "sum" and (d == np.bool_ or (dtypes.is_integer(d) and d.itemsize < 8)):
            d = np.dtype("int64")  # numpy sums small ints and bools in the default int
        return AbstractValue(shape, d, x.weak)

    return rule


def _impl(fn):
    def impl(x, *, axes, keepdims=False):
        # The rule accepts axes=None (all axes), so the reference must too.
        axes = tuple(range(x.ndim)) if axes is None else tuple(axes)
        with np.errstate(all="ignore"):
            return np.asarray(fn(x, axis=axes, keepdims=keepdims))

    return impl


def _sum(x, axis, keepdims):
    d = x.dtype
    if d in (np.dtype("float16"), dtypes.bfloat16):
        # Accumulate half types in float32, as kernels do; round once at the end.
        return np.sum(x.astype(np.float32), axis=axis, keepdims=keepdims).astype(d)
    return np.sum(x, axis=axis, keepdims=keepdims)


def _prod(x, axis, keepdims):
    d = x.dtype
    if d in (np.dtype("float16"), dtypes.bfloat16):
        return np.prod(x.astype(np.float32), axis=axis, keepdims=keepdims).astype(d)
    return np.prod(x, axis=axis, keepdims=keepdims)


def _arg(fn):
    def impl(x, *, axes, keepdims=False):
        (axis,) = axes
        return np.asarray(fn(x, axis=axis, keepdims=keepdims)).astype(np.int64)

    return impl


def _arg_rule(name):
    base = _reduce_rule(name, "index")

    def rule(x, *, axes, keepdims=False):
        if len(normalize_axes(name, axes, x.ndim)) != 1 and x.ndim > 0:
            raise ShapeError(f"{name}: exactly one axis is required, got {axes}")
        return base(x, axes=axes, keepdims=keepdims)

    return rule


def_primitive("reduce_sum", _reduce_rule("reduce_sum", "sum"), _impl(_sum), family="reduce",
              tags={"reduction"})
def_primitive("reduce_prod", _reduce_rule("reduce_prod", "sum"), _impl(_prod), family="reduce",
              tags={"reduction"})
def_primitive("reduce_max", _reduce_rule("reduce_max", "same"), _impl(np.max), family="reduce",
              tags={"reduction"})
def_primitive("reduce_min", _reduce_rule("reduce_min", "same"), _impl(np.min), family="reduce",
              tags={"reduction"})
def_primitive("argmax", _arg_rule("argmax"), _arg(np.argmax), family="reduce",
              differentiable=False, tags={"reduction"})
def_primitive("argmin", _arg_rule("argmin"), _arg(np.argmin), family="reduce",
              differentiable=False, tags={"reduction"})


# cumsum along one axis (reverse=True sums from the end), the scan of addition.
def _cumsum_rule(x, *, axis, reverse=False):
    (axis,) = normalize_axes("cumsum", axis, x.ndim)
    d = x.dtype
    if d == np.bool_ or (dtypes.is_integer(d) and d.itemsize < 8):
        d = np.dtype("int64")
    return AbstractValue(x.shape, d, x.weak)


def _cumsum_impl(x, *, axis, reverse=False):
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)
    return np.cumsum(x, axis=axis)


def_primitive("cumsum", _cumsum_rule, _cumsum_impl, family="reduce")


# sort along one axis; argsort gives the permutation (integers: not differentiable).
def _sort_rule(x, *, axis, descending=False):
    normalize_axes("sort", axis, x.ndim)
    if dtypes.is_complex(x.dtype):
        raise DTypeError(f"sort: complex dtype {x.dtype} has no ordering")
    return x


def _sort_impl(x, *, axis, descending=False):
    out = np.sort(x, axis=axis, kind="stable")
    return np.flip(out, axis) if descending else out


def _argsort_rule(x, *, axis, descending=False):
    _sort_rule(x, axis=axis)
    return AbstractValue(x.shape, np.dtype("int64"))


def _argsort_impl(x, *, axis, descending=False):
    if descending:
        n = x.shape[axis]
        idx = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
        return np.flip(n - 1 - idx, axis).astype(np.int64)
    return np.argsort(x, axis=axis, kind="stable").astype(np.int64)


def_primitive("sort", _sort_rule, _sort_impl, family="reduce")
def_primitive("argsort", _argsort_rule, _argsort_impl, family="reduce", differentiable=False)
