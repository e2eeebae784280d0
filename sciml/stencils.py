"""Finite-difference derivatives on node grids, written with ``sciml.numpy`` so they run
eagerly and trace into the IR (and so differentiate and fuse).

Grid convention of ``sciml.solve``: a non-periodic axis holds ``n`` nodes including both
boundary nodes, ``x_i = a + i h`` with ``h = (b - a)/(n - 1)``; a periodic axis holds ``n``
nodes ``x_i = a + i h`` with ``h = (b - a)/n`` (the node at ``b`` is the node at ``a``).

A derivative of order ``p`` accuracy uses the central stencil in the interior and one-sided
(biased) stencils of the same accuracy in the ``m`` nodes next to each boundary, so every node
gets an order-``p`` value. The same stencils are available as ``scipy.sparse`` matrices
(``derivative_matrix``) for implicit and steady solves; both agree to rounding.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sps

from solvers.fd import fornberg_weights

from . import numpy as snp


@lru_cache(maxsize=256)
def central_weights(deriv: int, order: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Offsets and weights (for unit spacing) of the central stencil of accuracy ``order``."""
    half = (deriv + 1) // 2 - 1 + order // 2
    offsets = tuple(range(-half, half + 1))
    w = fornberg_weights(0, list(offsets), deriv)[deriv]
    return offsets, tuple(float(v) for v in w)


@lru_cache(maxsize=256)
def boundary_rows(deriv: int, order: int, n: int):
    """Biased stencils for the first ``m`` nodes: list of (node, offsets, weights), unit spacing.

    Each uses ``deriv + order`` consecutive nodes starting at node 0 (one more than the minimum
    for even ``deriv``, which keeps the rows from losing an order next to the boundary)."""
    offsets, _ = central_weights(deriv, order)
    m = -offsets[0]
    width = deriv + order
    if n < width:
        raise ValueError(f"a derivative of order {deriv} with accuracy {order} needs at least "
                         f"{width} nodes along the axis, got {n}")
    rows = []
    for i in range(m):
        nodes = list(range(0, width))
        w = fornberg_weights(i, nodes, deriv)[deriv]
        rows.append((i, tuple(nodes), tuple(float(v) for v in w)))
    return rows


def derivative(u, axis: int, deriv: int, h: float, order: int = 2, periodic: bool = False,
               ends: bool = True):
    """``d^deriv u / dx^deriv`` along ``axis`` with accuracy ``order`` (traceable).

    ``ends=False`` leaves the first and last node with meaningless values: callers whose
    boundary nodes are set by boundary conditions (``sciml.mol``) skip that work."""
    if deriv == 0:
        return u
    offsets, weights = central_weights(deriv, order)
    axis %= snp.ndim(u)
    out = _stencil(u, axis, offsets, weights, "periodic" if periodic else "zero")
    if not periodic:
        out = _fix_boundaries(u, out, axis, deriv, order, ends)
    return out * (1.0 / h**deriv)  # a multiply: kernels vectorise it better than a divide


def _fix_boundaries(u, out, axis, deriv, order, ends=True):
    """Replace the central values in the m nodes next to each end by biased stencils.

    Written with shifts and selects on index masks (not slices and concatenation), so the
    whole derivative stays one fusable stencil."""
    n = snp.shape(u)[axis]
    rows = boundary_rows(deriv, order, n)
    if not rows:
        return out
    sign = -1.0 if deriv % 2 else 1.0
    index = axis_index(snp.shape(u), axis)
    for i, nodes, w in rows:
        if i == 0 and not ends:
            continue
        left = _stencil(u, axis, [j - i for j in nodes], w, "zero")
        # The mirror image at node n-1-i: offsets negated, odd derivatives change sign.
        right = _stencil(u, axis, [i - j for j in nodes], [sign * c for c in w], "zero")
        out = snp.where(index == i, left, snp.where(index == n - 1 - i, right, out))
    return out


def _stencil(u, axis, offsets, weights, boundary):
    nd = snp.ndim(u)
    acc = None
    for o, w in zip(offsets, weights):
        if w == 0.0:
            continue
        off = [0] * nd
        off[axis] = o
        term = (snp.shift(u, tuple(off), boundary) if o else u) * w
        acc = term if acc is None else acc + term
    return acc


def axis_index(shape, axis):
    """Integer index along ``axis``, broadcastable to ``shape`` (for edge masks)."""
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return np.arange(shape[axis]).reshape(view)


def upwind_first(u, velocity, axis: int, h: float, order: int = 1, periodic: bool = False):
    """First derivative biased against the flow: backward where ``velocity > 0``."""
    fwd, bwd = _one_sided(u, axis, h, order, periodic)
    return snp.where(velocity > 0, bwd, fwd)


_UPWIND_OFFSETS = {
    # order: (forward offsets, backward offsets)
    1: ((0, 1), (-1, 0)),
    2: ((0, 1, 2), (-2, -1, 0)),
    3: ((-1, 0, 1, 2), (-2, -1, 0, 1)),
}


@lru_cache(maxsize=64)
def upwind_weights(order: int, backward: bool):
    if order not in _UPWIND_OFFSETS:
        raise ValueError(f"upwind order must be 1, 2 or 3, got {order}")
    offsets = _UPWIND_OFFSETS[order][1 if backward else 0]
    w = fornberg_weights(0, list(offsets), 1)[1]
    return offsets, tuple(float(v) for v in w)


def _one_sided(u, axis, h, order, periodic):
    nd = snp.ndim(u)
    res = []
    for backward in (False, True):
        offsets, weights = upwind_weights(order, backward)
        acc = None
        for o, w in zip(offsets, weights):
            off = [0] * nd
            off[axis % nd] = o
            term = snp.shift(u, tuple(off), "periodic" if periodic else "edge") * w
            acc = term if acc is None else acc + term
        res.append(acc / h)
    if not periodic:
        # Next to a boundary the one-sided stencils would read clamped values; use the
        # accurate biased central rows there instead.
        central = derivative(u, axis, 1, h, max(order, 2), periodic=False)
        m = order + 1
        res = [_blend_edges(r, central, axis % nd, m) for r in res]
    return res


def _blend_edges(r, central, axis, m):
    n = snp.shape(r)[axis]
    if n <= 2 * m:
        return central
    index = axis_index(snp.shape(r), axis)
    return snp.where((index < m) | (index >= n - m), central, r)


# ---------------------------------------------------------------------------------------------
# The same operators as sparse matrices (for implicit and steady solves)


def derivative_matrix_1d(n: int, deriv: int, h: float, order: int = 2, periodic: bool = False):
    """The n×n sparse matrix of :func:`derivative` along one axis."""
    if deriv == 0:
        return sps.identity(n, format="csr")
    offsets, weights = central_weights(deriv, order)
    rows, cols, vals = [], [], []
    for i in range(n):
        for o, w in zip(offsets, weights):
            j = i + o
            if periodic:
                j %= n
            elif not 0 <= j < n:
                continue
            rows.append(i), cols.append(j), vals.append(w)
    a = sps.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    if not periodic:
        a = a.tolil()
        brows = boundary_rows(deriv, order, n)
        sign = -1.0 if deriv % 2 else 1.0
        for i, nodes, w in brows:
            a[i, :] = 0
            a[n - 1 - i, :] = 0
            for j, wj in zip(nodes, w):
                a[i, j] = wj
                a[n - 1 - i, n - 1 - j] = sign * wj
        a = a.tocsr()
    return a / h**deriv


def kron_axis(mat1d, shape, axis):
    """Apply a 1-D operator along ``axis`` of an array of ``shape`` (row-major ravel)."""
    out = None
    for k, n in enumerate(shape):
        m = mat1d if k == axis else sps.identity(n, format="csr")
        out = m if out is None else sps.kron(out, m, format="csr")
    return out


def upwind_matrix_1d(n: int, h: float, order: int, backward: bool, periodic: bool):
    """The n×n sparse matrix of one side of :func:`upwind_first` (edges as it treats them)."""
    offsets, weights = upwind_weights(order, backward)
    rows, cols, vals = [], [], []
    for i in range(n):
        for o, w in zip(offsets, weights):
            j = i + o
            j = j % n if periodic else min(max(j, 0), n - 1)
            rows.append(i), cols.append(j), vals.append(w)
    a = sps.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr() / h
    if periodic:
        return a
    central = derivative_matrix_1d(n, 1, h, max(order, 2), False)
    m = order + 1
    if n <= 2 * m:
        return central
    keep = np.zeros(n)
    keep[m:n - m] = 1.0
    return (sps.diags(keep) @ a + sps.diags(1.0 - keep) @ central).tocsr()
