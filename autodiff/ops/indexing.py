"""Dynamic indexing: gather (``take``), scatter-add, dynamic_slice and dynamic_update_slice.

Index semantics are numpy's for in-range indices; out-of-range indices are clamped (as XLA
does), because a kernel cannot raise in the middle of a loop. Negative indices wrap once, as in
numpy.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..ir import AbstractValue
from ..primitives import def_primitive


def _check_index(name, idx):
    if not dtypes.is_integer(idx.dtype):
        raise DTypeError(f"{name}: indices must be integers, got {idx.dtype}")


def _axis(name, axis, ndim):
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{name}: axis {axis} out of range for rank {ndim}")
    return axis % ndim


def _norm_idx(idx, n):
    idx = np.asarray(idx, np.int64)
    idx = np.where(idx < 0, idx + n, idx)
    return np.clip(idx, 0, max(n - 1, 0))


# take: out = x.take(idx, axis): shape x.shape[:axis] + idx.shape + x.shape[axis+1:].
def _take_rule(x, idx, *, axis):
    _check_index("take", idx)
    axis = _axis("take", axis, x.ndim)
    if x.shape[axis] == 0 and idx.size:
        raise ShapeError(f"take: cannot index into a zero-size axis of shape {x.shape}")
    return AbstractValue(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype, x.weak)


def _take_impl(x, idx, *, axis):
    return np.take(x, _norm_idx(idx, x.shape[axis]), axis=axis)


def_primitive("take", _take_rule, _take_impl, family="indexing")


# scatter_add: out = x; out.take(idx, axis) += updates (repeated indices accumulate).
def _scatter_add_rule(x, idx, upd, *, axis):
    _check_index("scatter_add", idx)
    axis = _axis("scatter_add", axis, x.ndim)
    want = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    if upd.shape != want:
        raise ShapeError(f"scatter_add: updates have shape {upd.shape}, expected {want} for "
                         f"operand {x.shape}, indices {idx.shape}, axis {axis}")
    if upd.dtype != x.dtype:
        raise DTypeError(f"scatter_add: updates dtype {upd.dtype} differs from operand {x.dtype}")
    return x


def _scatter_add_impl(x, idx, upd, *, axis):
    out = np.array(x, copy=True)
    n = x.shape[axis]
    moved = np.moveaxis(out, axis, 0)
    u = np.moveaxis(upd, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
    np.add.at(moved, _norm_idx(idx, n), u)
    return out


def_primitive("scatter_add", _scatter_add_rule, _scatter_add_impl, family="indexing")


# dynamic_slice: x[s0:s0+k0, s1:s1+k1, ...] with traced integer starts, clamped into range.
def _dyn_slice_rule(x, *starts, sizes):
    if len(starts) != x.ndim or len(sizes) != x.ndim:
        raise ShapeError(f"dynamic_slice: need {x.ndim} starts and sizes for shape {x.shape}")
    for s in starts:
        if s.shape != ():
            raise ShapeError(f"dynamic_slice: start indices must be scalars, got {s}")
        _check_index("dynamic_slice", s)
    if any(k < 0 or k > n for k, n in zip(sizes, x.shape)):
        raise ShapeError(f"dynamic_slice: sizes {sizes} do not fit shape {x.shape}")
    return AbstractValue(tuple(sizes), x.dtype, x.weak)


def _clamped_starts(starts, sizes, shape):
    return [int(np.clip(int(s), 0, n - k)) for s, k, n in zip(starts, sizes, shape)]


def _dyn_slice_impl(x, *starts, sizes):
    st = _clamped_starts(starts, sizes, x.shape)
    return x[tuple(slice(s, s + k) for s, k in zip(st, sizes))].copy()


def_primitive("dynamic_slice", _dyn_slice_rule, _dyn_slice_impl, family="indexing")


def _dyn_update_rule(x, upd, *starts):
    if len(starts) != x.ndim or upd.ndim != x.ndim:
        raise ShapeError(
            f"dynamic_update_slice: update {upd.shape} and {len(starts)} starts for {x.shape}"
        )
    if any(k > n for k, n in zip(upd.shape, x.shape)):
        raise ShapeError(f"dynamic_update_slice: update {upd.shape} larger than {x.shape}")
    if upd.dtype != x.dtype:
        raise DTypeError(f"dynamic_update_slice: update dtype {upd.dtype} differs from {x.dtype}")
    for s in starts:
        _check_index("dynamic_update_slice", s)
    return x


def _dyn_update_impl(x, upd, *starts):
    st = _clamped_starts(starts, upd.shape, x.shape)
    out = np.array(x, copy=True)
    out[tuple(slice(s, s + k) for s, k in zip(st, upd.shape))] = upd
    return out


def_primitive("dynamic_update_slice", _dyn_update_rule, _dyn_update_impl, family="indexing")
