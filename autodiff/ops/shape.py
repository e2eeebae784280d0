"""Structural primitives: broadcast_in_dim, reshape, transpose, rev, slice, pad, concatenate,
shift (the stencil read) and iota."""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..ir import AbstractValue
from ..primitives import def_primitive


def _ints(name, what, seq, n=None):
    seq = tuple(seq)
    if not all(isinstance(s, (int, np.integer)) for s in seq):
        raise ShapeError(f"{name}: {what} must be integers, got {seq}")
    if n is not None and len(seq) != n:
        raise ShapeError(f"{name}: {what} has {len(seq)} entries, the operand has rank {n}")
    return tuple(int(s) for s in seq)


# broadcast_in_dim: operand dimension i becomes output dimension broadcast_dimensions[i].
def _bid_rule(x, *, shape, broadcast_dimensions):
    shape = _ints("broadcast_in_dim", "shape", shape)
    dims = _ints("broadcast_in_dim", "broadcast_dimensions", broadcast_dimensions, x.ndim)
    if any(not 0 <= d < len(shape) for d in dims) or list(dims) != sorted(set(dims)):
        raise ShapeError(f"broadcast_in_dim: bad broadcast_dimensions {dims} for shape {shape}")
    for i, d in enumerate(dims):
        if x.shape[i] not in (1, shape[d]):
            raise ShapeError(
                f"broadcast_in_dim: operand shape {x.shape} cannot broadcast to {shape} "
                f"(dimension {i} has size {x.shape[i]}, target {shape[d]})"
            )
    return AbstractValue(shape, x.dtype, x.weak)


def _bid_impl(x, *, shape, broadcast_dimensions):
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    return np.broadcast_to(x.reshape(expanded), shape).copy()


def_primitive("broadcast_in_dim", _bid_rule, _bid_impl, family="shape")


def _reshape_rule(x, *, new_shape):
    new_shape = _ints("reshape", "new_shape", new_shape)
    if int(np.prod(new_shape, dtype=np.int64)) != x.size or any(s < 0 for s in new_shape):
        raise ShapeError(f"reshape: cannot reshape array of shape {x.shape} into {new_shape}")
    return AbstractValue(new_shape, x.dtype, x.weak)


def_primitive("reshape", _reshape_rule, lambda x, *, new_shape: np.reshape(x, new_shape),
              family="shape")


def _transpose_rule(x, *, permutation):
    perm = _ints("transpose", "permutation", permutation, x.ndim)
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"transpose: {perm} is not a permutation of the axes of shape {x.shape}")
    return AbstractValue(tuple(x.shape[p] for p in perm), x.dtype, x.weak)


def_primitive("transpose", _transpose_rule,
              lambda x, *, permutation: np.ascontiguousarray(np.transpose(x, permutation)),
              family="shape")


def _rev_rule(x, *, axes):
    axes = _ints("rev", "axes", axes)
    if any(not 0 <= a < x.ndim for a in axes):
        raise ShapeError(f"rev: axes {axes} out of range for shape {x.shape}")
    return x


def_primitive("rev", _rev_rule, lambda x, *, axes: np.flip(x, axes).copy(), family="shape")


# slice with static start, limit and strides (all non-negative, numpy half-open semantics).
def _slice_rule(x, *, start, limit, strides=None):
    start = _ints("slice", "start", start, x.ndim)
    limit = _ints("slice", "limit", limit, x.ndim)
    strides = _ints("slice", "strides", strides or (1,) * x.ndim, x.ndim)
    shape = []
    for d, (s, e, st) in enumerate(zip(start, limit, strides)):
        if not (0 <= s <= e <= x.shape[d]) or st < 1:
            raise ShapeError(
                f"slice: start {start}, limit {limit}, strides {strides} do not fit shape {x.shape}"
                f" (dimension {d})"
            )
        shape.append(max(0, -(-(e - s) // st)))
    return AbstractValue(tuple(shape), x.dtype, x.weak)


def _slice_impl(x, *, start, limit, strides=None):
    strides = strides or (1,) * x.ndim
    return x[tuple(slice(s, e, st) for s, e, st in zip(start, limit, strides))].copy()


def_primitive("slice", _slice_rule, _slice_impl, family="shape", tags={"stencil"})


# pad: pad_width ((lo, hi), ...) non-negative; mode "constant" (with value), "edge", "periodic".
PAD_MODES = ("constant", "edge", "periodic")


def _pad_rule(x, *, pad_width, mode="constant", value=0.0):
    pw = tuple(tuple(_ints("pad", "pad_width", p, 2)) for p in pad_width)
    if len(pw) != x.ndim or any(a < 0 or b < 0 for a, b in pw):
        raise ShapeError(f"pad: pad_width {pad_width} does not fit shape {x.shape}")
    if mode not in PAD_MODES:
        raise ShapeError(f"pad: mode {mode!r} is not one of {PAD_MODES}")
    if mode == "periodic" and any(
        (a > s or b > s) and (a or b) for (a, b), s in zip(pw, x.shape)
    ):
        raise ShapeError(f"pad: periodic padding {pw} is wider than the array {x.shape}")
    if mode == "edge" and any((a or b) and s == 0 for (a, b), s in zip(pw, x.shape)):
        raise ShapeError(f"pad: edge padding of an empty dimension in shape {x.shape}")
    shape = tuple(s + a + b for s, (a, b) in zip(x.shape, pw))
    return AbstractValue(shape, x.dtype, x.weak)


def _pad_impl(x, *, pad_width, mode="constant", value=0.0):
    pw = tuple(tuple(p) for p in pad_width)
    if mode == "constant":
        # One fill and one block copy: several times faster than np.pad's general path, and
        # pads are frequent (every transposed slice in reverse mode).
        out = np.full(tuple(s + a + b for s, (a, b) in zip(x.shape, pw)),
                      np.asarray(value, x.dtype), dtype=x.dtype)
        out[tuple(slice(a, a + s) for s, (a, _) in zip(x.shape, pw))] = x
        return out
    return np.pad(x, pw, mode={"edge": "edge", "periodic": "wrap"}[mode])


def_primitive("pad", _pad_rule, _pad_impl, family="shape", tags={"stencil"})


def _concat_rule(*xs, axis):
    if not xs:
        raise ShapeError("concatenate: needs at least one array")
    d = {x.dtype for x in xs}
    if len(d) != 1:
        raise DTypeError(f"concatenate: operands have different dtypes {[str(x) for x in xs]}")
    nd = xs[0].ndim
    if nd == 0 or not 0 <= axis < nd:
        raise ShapeError(f"concatenate: axis {axis} out of range for rank {nd}")
    for x in xs:
        if x.ndim != nd or any(
            a != b for i, (a, b) in enumerate(zip(x.shape, xs[0].shape)) if i != axis
        ):
            raise ShapeError(
                f"concatenate: shapes {[x.shape for x in xs]} differ outside axis {axis}"
            )
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return AbstractValue(tuple(shape), xs[0].dtype, all(x.weak for x in xs))


def_primitive("concatenate", _concat_rule,
              lambda *xs, axis: np.concatenate(xs, axis=axis), family="shape")


# shift: out[i] = x[i + offset] (a stencil read), with a boundary rule where i + offset leaves
# the array: "zero" (reads 0, as GOMO's missing neighbours), "periodic", "edge" (clamp).
SHIFT_BOUNDARIES = ("zero", "periodic", "edge")


def _shift_rule(x, *, offset, boundary="zero"):
    off = _ints("shift", "offset", offset, x.ndim)
    if boundary not in SHIFT_BOUNDARIES:
        raise ShapeError(f"shift: boundary {boundary!r} is not one of {SHIFT_BOUNDARIES}")
    if boundary == "edge" and any(o and s == 0 for o, s in zip(off, x.shape)):
        raise ShapeError(f"shift: edge boundary on an empty dimension of shape {x.shape}")
    return x


def _shift_impl(x, *, offset, boundary="zero"):
    out = x
    for axis, o in enumerate(offset):
        if o:
            out = _shift_axis(out, axis, int(o), boundary)
    return np.array(out, copy=True)


def _shift_axis(x, axis, o, boundary):
    n = x.shape[axis]
    idx = np.arange(n) + o
    if boundary == "periodic":
        return np.take(x, idx % n if n else idx, axis=axis)
    if boundary == "edge":
        return np.take(x, np.clip(idx, 0, n - 1), axis=axis)
    valid = (idx >= 0) & (idx < n)
    taken = np.take(x, np.clip(idx, 0, max(n - 1, 0)), axis=axis) if n else x
    mask_shape = [1] * x.ndim
    mask_shape[axis] = n
    return np.where(valid.reshape(mask_shape), taken, np.zeros((), x.dtype))


def_primitive("shift", _shift_rule, _shift_impl, family="shape", tags={"stencil"})


# iota: integers (or floats) counting along one dimension of a new array.
def _iota_rule(*, shape, dtype, dimension=0):
    shape = _ints("iota", "shape", shape)
    if not 0 <= dimension < max(len(shape), 1):
        raise ShapeError(f"iota: dimension {dimension} out of range for shape {shape}")
    return AbstractValue(shape, dtypes.check_supported(dtype, "iota dtype"))


def _iota_impl(*, shape, dtype, dimension=0):
    n = shape[dimension] if shape else 1
    ar = np.arange(n).astype(dtype)
    view = [1] * len(shape)
    if shape:
        view[dimension] = n
    return np.broadcast_to(ar.reshape(view), shape).copy()


def_primitive("iota", _iota_rule, _iota_impl, family="shape", differentiable=False)
