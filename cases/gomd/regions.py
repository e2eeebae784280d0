"""Index regions, written as masks, and functional "set a column/row" helpers.

pom2k computes each term on a specific 1-based index range (for instance i = 2..im-1,
j = 2..jm). GOMD writes every term on the whole array with the ``sciml.ocean`` operators and
then keeps pom2k's range with a mask, which is how a traced program states it too.
"""

from __future__ import annotations

import numpy as np

import sciml.numpy as snp
from autodiff.primitives import PRIMITIVES


def box(shape2d, i0, i1, j0, j1):
    """Boolean ``[j, i]`` mask of the 1-based inclusive ranges i0..i1, j0..j1."""
    jm, im = shape2d
    i = np.arange(1, im + 1)[None, :]
    j = np.arange(1, jm + 1)[:, None]
    return (i >= i0) & (i <= i1) & (j >= j0) & (j <= j1)


def levels(kb, k0, k1):
    """Boolean ``[k, 1, 1]`` mask of the 1-based inclusive levels k0..k1."""
    k = np.arange(1, kb + 1)[:, None, None]
    return (k >= k0) & (k <= k1)


def keep(mask, new, old=0.0):
    """``new`` inside ``mask``, ``old`` elsewhere."""
    return np.where(mask, new, old)


def put_i(a, i, value):
    """``a`` with column i (1-based) replaced by ``value`` (shape of ``a`` without its i axis)."""
    col = np.arange(1, a.shape[-1] + 1) == i
    return np.where(col, _insert_axis(value, a, -1), a)


def put_j(a, j, value):
    """``a`` with row j (1-based) replaced by ``value`` (shape of ``a`` without its j axis)."""
    row = (np.arange(1, a.shape[-2] + 1) == j)[:, None]
    return np.where(row, _insert_axis(value, a, -2), a)


def set_i(a, i, value, where=True):
    """``a`` with column i (1-based) set to ``value`` where ``where`` holds (both of the shape
    of ``a`` without its i axis, or broadcastable to it), elsewhere ``a`` unchanged.

    Unlike ``put_i(a, i, np.where(where, value, col(a, i)))`` it reads ``a`` only at the
    point it writes, so traced it is a select that fuses with whatever computes ``a``.
    """
    col = np.arange(1, a.shape[-1] + 1) == i
    inner = np.where(np.expand_dims(where, -1), _spread(value, a, -1), a)
    return np.where(col, inner, a)  # two selects: no mask of a's full shape


def set_j(a, j, value, where=True):
    """``a`` with row j (1-based) set to ``value`` where ``where`` holds (``set_i`` for rows)."""
    where = np.asarray(where)
    row = (np.arange(1, a.shape[-2] + 1) == j)[:, None]
    inner = np.where(np.expand_dims(where, -2) if where.ndim else where,
                     _spread(value, a, -2), a)
    return np.where(row, inner, a)


def _spread(value, a, axis):
    """A scalar as it is, an array along a new ``axis`` of ``a``."""
    return value if np.isscalar(value) else _insert_axis(value, a, axis)


def _insert_axis(value, a, axis):
    """``value`` broadcast along a new ``axis`` of ``a``'s shape.

    Traced, this is one ``broadcast_in_dim`` (a read that fuses into the consumer) rather
    than a reshape, which the fuser treats as a library call.
    """
    if isinstance(value, np.ndarray) or np.isscalar(value):
        return np.expand_dims(value, axis)
    nd = np.ndim(a)
    ax = nd + axis
    shape = tuple(np.shape(a)[:ax]) + (1,) + tuple(np.shape(a)[ax + 1:])
    vnd = np.ndim(value)
    dims = tuple(d for d in range(nd) if d != ax)[nd - 1 - vnd:]
    return PRIMITIVES["broadcast_in_dim"].bind(value, shape=shape, broadcast_dimensions=dims)


def copy_edges(a, scale=None):
    """``a`` with its first and last rows, then its first and last columns, replaced by the
    adjacent interior row or column, each copied value times ``scale`` (a ``[j, i]`` field)
    where it lands: pom2k's ``el(1, j) = el(2, j)``-style boundary copies, corners included
    (a corner takes the diagonal interior value). Needs at least 3 rows and 3 columns.

    Eagerly it is slice assignment. Traced it is one select over shifted reads of ``a``, so
    the four copies are one pass over memory, not four.
    """
    jm, im = np.shape(a)[-2:]
    if jm < 3 or im < 3:
        raise ValueError(f"copy_edges: needs at least 3 rows and 3 columns, got {np.shape(a)}")
    if isinstance(a, np.ndarray) and (scale is None or isinstance(scale, np.ndarray)):
        out = a.copy()
        for dst, src in ((-1, -2), (0, 1)):
            out[..., dst, :] = a[..., src, :] if scale is None else a[..., src, :] * scale[dst, :]
        for dst, src in ((-1, -2), (0, 1)):
            out[..., :, dst] = (out[..., :, src] if scale is None
                                else out[..., :, src] * scale[:, dst])
        return out
    first_j, last_j = (np.arange(jm) == 0)[:, None], (np.arange(jm) == jm - 1)[:, None]
    first_i, last_i = np.arange(im) == 0, np.arange(im) == im - 1

    def read(x, dj, di):
        if dj == di == 0:
            return x
        return snp.shift(x, (0,) * (np.ndim(x) - 2) + (dj, di), "zero")

    def times(x, dj, di):
        return x if scale is None else x * read(scale, dj, di)

    def rows_done(di):  # a after the row copies, read at column i + di
        return np.where(last_j, times(read(a, -1, di), 0, di),
                        np.where(first_j, times(read(a, 1, di), 0, di), read(a, 0, di)))

    return np.where(last_i, times(rows_done(-1), 0, 0),
                    np.where(first_i, times(rows_done(1), 0, 0), rows_done(0)))


def col(a, i):
    """Column i (1-based) of ``a``."""
    return a[..., i - 1]


def row(a, j):
    """Row j (1-based) of ``a``."""
    return a[..., j - 1, :]
