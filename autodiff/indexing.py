"""numpy indexing on arrays and Tracers, lowered to slice/rev/reshape/dynamic_slice/take, and
functional updates ``x.at[idx].add(v)`` / ``.set(v)`` lowered to ``scatter_add``."""

from __future__ import annotations

import numpy as np

from . import dtypes
from .errors import DTypeError, ShapeError, UnsupportedError
from .primitives import PRIMITIVES as P
from .trace import Tracer, abstractify


def _is_array_index(e) -> bool:
    if isinstance(e, Tracer):
        return e.ndim > 0 or e.dtype == np.bool_
    if isinstance(e, (list, np.ndarray)):
        return np.asarray(e).ndim > 0 or np.asarray(e).dtype == np.bool_
    return False


def _expand(idx, ndim):
    if not isinstance(idx, tuple):
        idx = (idx,)
    out = []
    for e in idx:
        if isinstance(e, np.ndarray) and e.ndim == 0 and dtypes.is_integer(e.dtype):
            e = int(e)  # a 0-d integer array indexes like a Python int
        if isinstance(e, (list, np.ndarray)) and np.asarray(e).dtype == np.bool_:
            out.extend(np.nonzero(np.asarray(e)))  # a concrete mask is a set of index arrays
        elif isinstance(e, Tracer) and e.dtype == np.bool_:
            raise ShapeError(
                "boolean mask indexing of a traced array has a data-dependent shape; use "
                "sciml.numpy.where(mask, x, 0) instead"
            )
        else:
            out.append(e)
    n_real = sum(1 for e in out if e is not None and e is not Ellipsis)
    if sum(1 for e in out if e is Ellipsis) > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')")
    if n_real > ndim:
        raise ShapeError(f"too many indices ({n_real}) for an array of rank {ndim}")
    if Ellipsis in [e for e in out if not isinstance(e, (np.ndarray, Tracer))]:
        i = next(k for k, e in enumerate(out) if e is Ellipsis)
        out[i:i + 1] = [slice(None)] * (ndim - n_real)
    else:
        out += [slice(None)] * (ndim - n_real)
    return out


def getitem(x, idx):
    from .lax import asarray, reshape

    x = x if isinstance(x, Tracer) else asarray(x)
    a = abstractify(x)
    entries = _expand(idx, a.ndim)
    has_adv = any(_is_array_index(e) for e in entries)
    if has_adv and any(e is None for e in entries):
        raise UnsupportedError("indexing that mixes None (np.newaxis) with index arrays")
    # Basic indexing first: every axis gets a static slice, a dynamic start, or stays whole.
    axis, starts, limits, steps, rev_axes, drop, dyn, adv = 0, [], [], [], [], [], {}, {}
    out_axis_of = []
    for e in entries:
        if e is None:
            continue
        n = a.shape[axis]
        if isinstance(e, slice):
            lo, hi, st, rev = _norm_slice(e, n)
            starts.append(lo), limits.append(hi), steps.append(st)
            if rev:
                rev_axes.append(axis)
        elif _is_array_index(e):
            starts.append(0), limits.append(n), steps.append(1)
            adv[axis] = e
        elif isinstance(e, Tracer):
            if not dtypes.is_integer(e.dtype):
                raise DTypeError(f"index must be an integer, got {e.aval}")
            starts.append(0), limits.append(n), steps.append(1)
            dyn[axis] = e
            drop.append(axis)
        elif isinstance(e, (int, np.integer)) and not isinstance(e, bool):
            i = int(e)
            if not -n <= i < n:
                raise ShapeError(f"index {i} is out of bounds for axis {axis} with size {n} "
                                 f"(indexing an array {a})")
            i %= n
            starts.append(i), limits.append(i + 1), steps.append(1)
            drop.append(axis)
        else:
            raise DTypeError(f"unsupported index {e!r} of type {type(e).__name__}")
        out_axis_of.append(axis)
        axis += 1
    y = x
    if tuple(starts) != (0,) * a.ndim or tuple(limits) != a.shape or any(s != 1 for s in steps):
        y = P["slice"].bind(y, start=tuple(starts), limit=tuple(limits), strides=tuple(steps))
    if rev_axes:
        y = P["rev"].bind(y, axes=tuple(rev_axes))
    if dyn:
        y = _dynamic_index(y, dyn)
    if adv:
        return _advanced(y, adv, drop)
    shape = []
    ya = abstractify(y)
    k = 0
    for e in entries:
        if e is None:
            shape.append(1)
            continue
        if k not in drop:
            shape.append(ya.shape[k])
        k += 1
    return reshape(y, tuple(shape))


def _norm_slice(s: slice, n: int):
    def static(v):
        if isinstance(v, Tracer):
            raise UnsupportedError(
                "slices with traced bounds have a data-dependent shape; use "
                "sciml.numpy.dynamic_slice(x, start, size) instead"
            )
        return v

    start, stop, step = static(s.start), static(s.stop), static(s.step)
    lo, hi, st = slice(start, stop, step).indices(n)
    if st > 0:
        return lo, max(lo, hi), st, False
    count = len(range(lo, hi, st))
    if count == 0:
        return 0, 0, 1, False
    first = lo + (count - 1) * st
    return first, lo + 1, -st, True


def _dynamic_index(y, dyn):
    from .lax import asarray, convert_element_type

    a = abstractify(y)
    starts, sizes = [], []
    for ax, n in enumerate(a.shape):
        if ax in dyn:
            i = convert_element_type(dyn[ax], np.int64)
            # numpy wraps negative indices once
            i = P["select"].bind(*_promote_sel(i < 0, i + n, i))
            starts.append(i)
            sizes.append(1)
        else:
            starts.append(asarray(0, np.int64))
            sizes.append(n)
    return P["dynamic_slice"].bind(y, *starts, sizes=tuple(sizes))


def _promote_sel(c, a, b):
    from .lax import promote

    a, b = promote("select", a, b)
    return c, a, b


def _advanced(y, adv: dict, drop: list):
    """Integer-array indices on the axes in ``adv``; ``drop`` axes have size 1 to remove."""
    from .lax import add, asarray, broadcast_to, mul, reshape, transpose

    a = abstractify(y)
    idx = {ax: (e if isinstance(e, Tracer) else asarray(np.asarray(e))) for ax, e in adv.items()}
    for e in idx.values():
        if not dtypes.is_integer(abstractify(e).dtype):
            raise DTypeError(f"index arrays must be integers, got {abstractify(e).dtype}")
    bshape = tuple(np.broadcast_shapes(*[abstractify(e).shape for e in idx.values()]))
    axes = sorted(idx)
    # Move the indexed axes to the front and merge them into one flat axis.
    rest = [ax for ax in range(a.ndim) if ax not in idx]
    yt = transpose(y, axes + rest)
    sizes = [a.shape[ax] for ax in axes]
    flat = None
    for ax, n in zip(axes, sizes):
        e = broadcast_to(_wrap(idx[ax], n), bshape)
        flat = e if flat is None else add(mul(flat, n), e)
    merged = reshape(yt, (int(np.prod(sizes, dtype=np.int64)),) + tuple(a.shape[r] for r in rest))
    out = P["take"].bind(merged, flat if isinstance(flat, Tracer) else asarray(flat), axis=0)
    rest_shape = [a.shape[r] for r in rest if r not in drop]
    out = reshape(out, bshape + tuple(rest_shape))
    adjacent = axes == list(range(axes[0], axes[0] + len(axes)))
    if adjacent and axes[0] > 0:
        # numpy keeps adjacent advanced indices in place of the indexed axes
        lead = len([r for r in rest if r < axes[0] and r not in drop])
        nb = len(bshape)
        perm = list(range(nb, nb + lead)) + list(range(nb)) + list(
            range(nb + lead, nb + len(rest_shape)))
        out = transpose(out, perm)
    return out


def _wrap(e, n):
    from .lax import add, asarray, where

    e = e if isinstance(e, Tracer) else asarray(e).astype(np.int64)
    if not isinstance(e, Tracer):
        return np.where(e < 0, e + n, e)
    return where(e < 0, add(e, n), e)


class IndexUpdate:
    """The result of ``x.at[idx]``: ``.add(v)``, ``.set(v)``, ``.get()``."""

    def __init__(self, x, idx):
        self.x, self.idx = x, idx

    def get(self):
        return getitem(self.x, self.idx)

    def _positions(self):
        from .lax import reshape

        a = abstractify(self.x)
        flat_ids = np.arange(a.size, dtype=np.int64).reshape(a.shape)
        pos = getitem(flat_ids, self.idx)
        return pos, reshape(pos, (-1,))

    def add(self, v):
        from .lax import asarray, broadcast_to, convert_element_type, reshape

        a = abstractify(self.x)
        pos, flat = self._positions()
        v = convert_element_type(v if isinstance(v, Tracer) else asarray(v), a.dtype)
        v = reshape(broadcast_to(v, abstractify(pos).shape), (-1,))
        x = self.x if isinstance(self.x, Tracer) else asarray(self.x)
        out = P["scatter_add"].bind(reshape(x, (-1,)), _arr(flat), v, axis=0)
        return reshape(out, a.shape)

    def set(self, v):
        """numpy's ``x[idx] = v`` as a new array. Where concrete indices repeat, the last write
        wins (as in numpy); with traced indices that repeat, the written values are averaged
        (exact when they are equal, which is the only case where numpy's order matters not)."""
        from .lax import asarray, broadcast_to, convert_element_type, reshape, where

        a = abstractify(self.x)
        pos, flat = self._positions()
        v = convert_element_type(v if isinstance(v, Tracer) else asarray(v), a.dtype)
        v = reshape(broadcast_to(v, abstractify(pos).shape), (-1,))
        if not isinstance(flat, Tracer):
            flat, v = _last_writes(flat, v)
        zeros = np.zeros(a.size, a.dtype)
        hits = P["scatter_add"].bind(np.zeros(a.size, np.int64), _arr(flat),
                                     np.ones(abstractify(flat).shape, np.int64), axis=0)
        placed = P["scatter_add"].bind(zeros, _arr(flat), v, axis=0)
        if isinstance(flat, Tracer):
            placed = _mean_of_writes(placed, hits, a.dtype)
        x = self.x if isinstance(self.x, Tracer) else asarray(self.x)
        return reshape(where(hits > 0, placed, reshape(x, (-1,))), a.shape)


def _last_writes(flat, v):
    """Keep only the last update of each position (concrete positions, numpy's order)."""
    flat = np.asarray(flat)
    if np.unique(flat).size == flat.size:
        return flat, v
    rev_first = np.unique(flat[::-1], return_index=True)[1]
    keep = np.sort(flat.size - 1 - rev_first)
    return flat[keep], P["take"].bind(_arr(v), keep.astype(np.int64), axis=0)


def _mean_of_writes(placed, hits, dtype):
    from .lax import binary, convert_element_type

    n = binary("maximum", hits, 1)
    if dtype == np.bool_:
        return placed  # scatter_add of booleans is an or: already the value written
    if dtypes.is_inexact(dtype):
        return binary("div", placed, convert_element_type(n, dtype))
    return binary("floor_divide", placed, convert_element_type(n, dtype))


def _arr(x):
    from .lax import asarray

    return x if isinstance(x, Tracer) else asarray(x)
