"""Finite-difference operators on uniform grids, matrix-free and as sparse matrices.

Everything here is a pure function of numpy arrays (slicing, ``np.pad``,
``np.concatenate``, arithmetic; no assignment into arrays) so that the same code can
later be traced into sciml's graph IR.

Grid conventions along an axis with ``n`` entries and spacing ``dx``:

* ``Periodic()``: the array holds ``n`` points ``x_i = a + i*dx`` of a period ``n*dx``.
* ``Dirichlet(left, right)``: the array holds the interior nodes
  ``x_i = a + (i+1)*dx``; the boundary nodes ``a`` and ``a + (n+1)*dx`` carry the
  prescribed values.
* ``Neumann(left, right)``: the array holds all nodes ``x_i = a + i*dx`` including
  the two boundary nodes; ``left``/``right`` prescribe ``du/dx`` (along +x, not the
  outward normal) at the first and last entries.

Boundary conditions are imposed through ghost cells: each ghost value comes from the
polynomial through the first (last) interior values that satisfies the boundary
condition (weights from Fornberg's algorithm). An operator with a boundary condition is
therefore affine, ``L(u) = A u + b``; ``*_T`` functions apply the transpose of the
linear part ``A``, and ``*_matrix`` functions return ``(A, b)`` with ``A`` a
``scipy.sparse`` matrix acting on ``u.ravel()``.

Example:
    >>> import numpy as np
    >>> x = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    >>> du = diff(np.sin(x), x[1] - x[0], order=4, bc=Periodic())
    >>> bool(np.max(np.abs(du - np.cos(x))) < 1e-5)
    True
"""

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp

from autodiff.trace import Tracer

from .errors import SolverError

# ----------------------------------------------------------------------------------
# Stencil coefficients
# ----------------------------------------------------------------------------------


def fornberg_weights(x0, nodes, max_deriv):
    """Finite-difference weights for derivatives 0..max_deriv at ``x0`` (Fornberg 1988).

    Returns an array ``w`` of shape ``(max_deriv + 1, len(nodes))`` with
    ``f^(k)(x0) ~= sum_j w[k, j] f(nodes[j])``. Rational inputs (ints, Fractions) are
    processed exactly with ``fractions.Fraction`` so the weights are correctly rounded.

    >>> fornberg_weights(0, [-1, 0, 1], 2)[2].tolist()
    [1.0, -2.0, 1.0]
    """
    x = [Fraction(v) for v in nodes]
    z = Fraction(x0)
    n, m = len(x), int(max_deriv)
    if n < m + 1:
        raise SolverError(f"fornberg_weights: need at least max_deriv+1={m + 1} nodes, got {n}")
    if len(set(x)) != n:
        raise SolverError(f"fornberg_weights: nodes must be distinct, got {list(nodes)}")
    c = [[Fraction(0)] * n for _ in range(m + 1)]
    c[0][0] = Fraction(1)
    c1, c4 = Fraction(1), x[0] - z
    # The classic recurrence; it runs on Python scalars at trace time, never on arrays.
    for i in range(1, n):
        mn, c2, c5, c4 = min(i, m), Fraction(1), c4, x[i] - z
        for j in range(i):
            c3 = x[i] - x[j]
            c2 *= c3
            if j == i - 1:
                for k in range(mn, 0, -1):
                    c[k][i] = c1 * (k * c[k - 1][i - 1] - c5 * c[k][i - 1]) / c2
                c[0][i] = -c1 * c5 * c[0][i - 1] / c2
            for k in range(mn, 0, -1):
                c[k][j] = (c4 * c[k][j] - k * c[k - 1][j]) / c3
            c[0][j] = c4 * c[0][j] / c3
        c1 = c2
    return np.array([[float(v) for v in row] for row in c])


def stencil_weights(deriv, offsets):
    """Weights of the ``deriv``-th derivative at 0 on integer ``offsets`` (unit spacing).

    >>> stencil_weights(1, [-1, 0, 1]).tolist()
    [-0.5, 0.0, 0.5]
    """
    return _stencil_weights(int(deriv), tuple(offsets)).copy()


@lru_cache(maxsize=256)
def _stencil_weights(deriv, offsets):
    # Cached: exact rational arithmetic is slow and operators ask for the same stencils.
    return fornberg_weights(0, offsets, deriv)[deriv]


def central_offsets(deriv, order):
    """Offsets of the central stencil of accuracy ``order`` (even) for ``deriv``."""
    if order < 2 or order % 2:
        raise SolverError(f"central stencils need an even order >= 2, got order={order}")
    half = (deriv + 1) // 2 - 1 + order // 2
    return list(range(-half, half + 1))


def upwind_offsets(order, positive=True):
    """Offsets of the upwind-biased stencil of accuracy ``order`` for ``du/dx``.

    For a positive velocity the stencil leans left: order 1 uses ``[-1, 0]``, order 2
    ``[-2, -1, 0]``, order 3 ``[-2, -1, 0, 1]``; a negative velocity mirrors it.
    """
    if order < 1:
        raise SolverError(f"upwind: order must be >= 1, got order={order}")
    low = -((order + 2) // 2)
    offs = list(range(low, low + order + 1))
    return offs if positive else [-o for o in reversed(offs)]


# ----------------------------------------------------------------------------------
# Boundary conditions and ghost cells
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dirichlet:
    """Prescribed values at the boundary nodes just outside the array (scalars or
    arrays broadcastable to the boundary face)."""

    left: Any = 0.0
    right: Any = 0.0


@dataclass(frozen=True)
class Neumann:
    """Prescribed ``du/dx`` (along +x) at the first and last entries of the array."""

    left: Any = 0.0
    right: Any = 0.0


@dataclass(frozen=True)
class Periodic:
    """Periodic wrap-around: the last entry neighbours the first."""


_BC_TYPES = (Dirichlet, Neumann, Periodic)


def _ghost_rule(bc, n, dx, width, degree, side):
    """Linear ghost map of ``bc`` (see :func:`_ghost_rule_cached`)."""
    return _ghost_rule_cached(type(bc).__name__, n, float(dx), width, degree, side)


@lru_cache(maxsize=1024)
def _ghost_rule_cached(kind, n, dx, width, degree, side):
    """Linear ghost map ``ghosts = block @ M.T + g * c`` for one side.

    ``block`` is the first (left) or last (right) ``degree`` interior entries. Each ghost
    is the value at its position of the degree-``degree`` polynomial through ``block``
    that satisfies the boundary condition.
    """
    d = 0 if kind == "Dirichlet" else 1
    q = degree
    if side == "left":
        ghosts, interior = range(-width, 0), list(range(q))
        xb = -1 if d == 0 else 0
    else:
        ghosts, interior = range(n, n + width), list(range(n - q, n))
        xb = n if d == 0 else n - 1
    rows, consts = [], []
    for j in ghosts:
        w = fornberg_weights(xb, [j, *interior], d)[d]
        rows.append(-w[1:] / w[0])
        consts.append(dx**d / w[0])
    return np.array(rows), np.array(consts)


def _check_axis(u, axis, name="u"):
    if not -u.ndim <= axis < u.ndim:
        raise SolverError(f"axis={axis} is out of range for {name} with shape {u.shape}")
    return axis % u.ndim


def _check_bc(bc):
    if not isinstance(bc, _BC_TYPES):
        raise SolverError(
            f"bc must be Dirichlet(left, right), Neumann(left, right) or Periodic(), got {bc!r}"
        )
    return bc


def _array(x):
    return x if isinstance(x, Tracer) else np.asarray(x)


def _as_float_array(u, name="u"):
    # Traced values (under sciml.grad, jit, vmap) pass through: the operators below are
    # written with numpy functions that sciml traces, so they differentiate and fuse.
    if not isinstance(u, Tracer):
        u = np.asarray(u)
    if u.dtype.kind not in "fc":
        if u.dtype.kind in "iub":
            return u.astype(np.float64)
        raise SolverError(f"{name} must be a float array, got dtype {u.dtype}")
    return u


def _pad_axis(a, before, after, axis):
    """Zero padding along one axis only."""
    widths = [(0, 0)] * a.ndim
    return np.pad(a, widths[:axis] + [(before, after)] + widths[axis + 1 :])


def _sl(a, axis, start, stop):
    """``a[..., start:stop, ...]`` along ``axis`` (a view; no transposed copies)."""
    return a[(slice(None),) * axis + (slice(start, stop),)]


def _ghosts(block, m, c, g, axis):
    """``block @ m.T + g * c`` along ``axis``: the ghost values from a small block."""
    g = g if isinstance(g, Tracer) else np.asarray(g)
    out = np.moveaxis(block, axis, -1) @ m.T + g[..., None] * c
    return np.moveaxis(out, -1, axis)


def _fold(ghost, m, axis):
    """Transpose of :func:`_ghosts`' linear part: ``ghost @ m`` along ``axis``."""
    return np.moveaxis(np.moveaxis(ghost, axis, -1) @ m, -1, axis)


def _resolve_degree(bc, n, width, degree):
    q = 2 * width + 1 if degree is None else int(degree)
    if not isinstance(bc, Periodic) and n < q:
        raise SolverError(
            f"{type(bc).__name__} ghost cells of width {width} extrapolate through {q} "
            f"interior points, but the axis has only n={n}; use a finer grid or degree="
        )
    if isinstance(bc, Periodic) and n < width:
        raise SolverError(f"Periodic padding of width {width} needs n >= {width}, got n={n}")
    return q


def pad_bc(u, bc, dx, axis=0, width=1, degree=None):
    """Add ``width`` ghost cells on both ends of ``axis`` according to ``bc``.

    Ghosts come from a polynomial of degree ``degree`` (default ``2*width + 1``, which
    keeps second-derivative stencils of order ``2*width`` accurate to that order up to
    the boundary).

    >>> pad_bc(np.array([1.0, 2.0, 3.0]), Periodic(), 1.0).tolist()
    [3.0, 1.0, 2.0, 3.0, 1.0]
    >>> pad_bc(np.array([1.0, 2.0, 3.0, 4.0]), Dirichlet(0.0, 5.0), 1.0).tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """
    u = _as_float_array(u)
    axis, bc = _check_axis(u, axis), _check_bc(bc)
    n = u.shape[axis]
    q = _resolve_degree(bc, n, width, degree)
    if isinstance(bc, Periodic):
        left, right = _sl(u, axis, n - width, n), _sl(u, axis, 0, width)
    else:
        ml, cl = _ghost_rule(bc, n, dx, width, q, "left")
        mr, cr = _ghost_rule(bc, n, dx, width, q, "right")
        left = _ghosts(_sl(u, axis, 0, q), ml, cl, bc.left, axis)
        right = _ghosts(_sl(u, axis, n - q, n), mr, cr, bc.right, axis)
    return np.concatenate([left, u, right], axis=axis)


def pad_bc_T(z, bc, dx, axis=0, width=1, degree=None):
    """Transpose of the linear part of :func:`pad_bc`: ghost entries are folded back
    onto the interior entries they were computed from."""
    z = _as_float_array(z, "z")
    axis, bc = _check_axis(z, axis, "z"), _check_bc(bc)
    n = z.shape[axis] - 2 * width
    q = _resolve_degree(bc, n, width, degree)
    zl, zi = _sl(z, axis, 0, width), _sl(z, axis, width, width + n)
    zr = _sl(z, axis, width + n, n + 2 * width)
    if isinstance(bc, Periodic):
        return zi + _pad_axis(zl, n - width, 0, axis) + _pad_axis(zr, 0, n - width, axis)
    ml, _ = _ghost_rule(bc, n, dx, width, q, "left")
    mr, _ = _ghost_rule(bc, n, dx, width, q, "right")
    return zi + _pad_axis(_fold(zl, ml, axis), 0, n - q, axis) + _pad_axis(
        _fold(zr, mr, axis), n - q, 0, axis
    )


# ----------------------------------------------------------------------------------
# Stencil application on padded arrays
# ----------------------------------------------------------------------------------


def apply_stencil(z, weights, offsets, axis=0, width=None):
    """``sum_k weights[k] * z[i + offsets[k]]`` on the interior of a padded array."""
    width = max(abs(o) for o in offsets) if width is None else width
    n = z.shape[axis] - 2 * width
    terms = [(w, o) for w, o in zip(weights, offsets) if w != 0]
    return sum(w * _sl(z, axis, width + o, width + o + n) for w, o in terms)


def apply_stencil_T(y, weights, offsets, axis=0, width=None):
    """Transpose of :func:`apply_stencil`: scatters each output back to its inputs."""
    width = max(abs(o) for o in offsets) if width is None else width
    terms = [(w, o) for w, o in zip(weights, offsets) if w != 0]
    return sum(w * _pad_axis(y, width + o, width - o, axis) for w, o in terms)


# ----------------------------------------------------------------------------------
# Matrix-free operators
# ----------------------------------------------------------------------------------


def _central(deriv, order, dx):
    offs = central_offsets(deriv, order)
    return stencil_weights(deriv, offs) / dx**deriv, offs


def _check_dx(dx, name="dx"):
    if not np.all(np.asarray(dx) > 0):
        raise SolverError(f"{name} must be positive, got {dx}")


def diff(u, dx, axis=0, deriv=1, order=2, bc=Periodic()):
    """Central finite-difference ``deriv``-th derivative of accuracy ``order`` along ``axis``.

    Exact on polynomials of degree ``<= order + deriv - 1`` (with Dirichlet or Neumann
    ghost cells as well, as long as the ghost polynomial degree is at least that).

    >>> x = np.arange(6.0)
    >>> diff(x**2, 1.0, deriv=2, bc=Dirichlet(1.0, 36.0)).tolist()
    [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    """
    u = _as_float_array(u)
    axis = _check_axis(u, axis)
    _check_dx(dx)
    w, offs = _central(deriv, order, dx)
    width = max(offs)
    return apply_stencil(pad_bc(u, bc, dx, axis, width), w, offs, axis, width)


def diff_T(v, dx, axis=0, deriv=1, order=2, bc=Periodic()):
    """Transpose of the linear part of :func:`diff`."""
    v = _as_float_array(v, "v")
    axis = _check_axis(v, axis, "v")
    w, offs = _central(deriv, order, dx)
    width = max(offs)
    return pad_bc_T(apply_stencil_T(v, w, offs, axis, width), bc, dx, axis, width)


def _per_axis(value, ndim, name):
    """Broadcast a scalar (or single BC) to one entry per axis."""
    if isinstance(value, list | tuple):
        if len(value) != ndim:
            raise SolverError(f"{name} has {len(value)} entries for an array of ndim={ndim}")
        return tuple(value)
    return (value,) * ndim


def laplacian(u, dx, bc=Periodic(), order=2):
    """Sum of second derivatives over all axes; ``dx`` and ``bc`` per axis or shared.

    >>> x = np.linspace(0, 1, 9)[1:-1]
    >>> bool(np.allclose(laplacian(x**2, x[1] - x[0], Dirichlet(0.0, 1.0)), 2.0))
    True
    """
    u = _as_float_array(u)
    dxs, bcs = _per_axis(dx, u.ndim, "dx"), _per_axis(bc, u.ndim, "bc")
    return sum(diff(u, dxs[a], a, 2, order, bcs[a]) for a in range(u.ndim))


def laplacian_T(v, dx, bc=Periodic(), order=2):
    """Transpose of the linear part of :func:`laplacian`."""
    v = _as_float_array(v, "v")
    dxs, bcs = _per_axis(dx, v.ndim, "dx"), _per_axis(bc, v.ndim, "bc")
    return sum(diff_T(v, dxs[a], a, 2, order, bcs[a]) for a in range(v.ndim))


def _upwind_parts(order, dx):
    """(weights, offsets) for positive and negative velocity, and the ghost width."""
    op, om = upwind_offsets(order, True), upwind_offsets(order, False)
    width = (order + 2) // 2
    return (stencil_weights(1, op) / dx, op), (stencil_weights(1, om) / dx, om), width


def upwind(u, velocity, dx, axis=0, order=1, bc=Periodic()):
    """Upwind-biased approximation of ``du/dx`` along ``axis`` (order 1, 2 or 3).

    ``velocity`` (scalar or array broadcastable to ``u``) only selects the stencil
    side; multiply by it yourself to get the advection term ``velocity * du/dx``.
    Exact on polynomials of degree ``<= order``.

    >>> upwind(np.arange(5.0), 1.0, 1.0, bc=Dirichlet(-1.0, 5.0)).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    u = _as_float_array(u)
    axis = _check_axis(u, axis)
    _check_dx(dx)
    (wp, op), (wm, om), width = _upwind_parts(order, dx)
    z = pad_bc(u, bc, dx, axis, width)
    dp = apply_stencil(z, wp, op, axis, width)
    dm = apply_stencil(z, wm, om, axis, width)
    return np.where(_array(velocity) >= 0, dp, dm)


def upwind_T(v, velocity, dx, axis=0, order=1, bc=Periodic()):
    """Transpose of the linear part of :func:`upwind` (for the same ``velocity``)."""
    v = _as_float_array(v, "v")
    axis = _check_axis(v, axis, "v")
    (wp, op), (wm, om), width = _upwind_parts(order, dx)
    pos = np.asarray(velocity) >= 0
    vp, vm = np.where(pos, v, 0.0), np.where(pos, 0.0, v)
    z = apply_stencil_T(vp, wp, op, axis, width) + apply_stencil_T(vm, wm, om, axis, width)
    return pad_bc_T(z, bc, dx, axis, width)


# ----------------------------------------------------------------------------------
# Sparse matrices
# ----------------------------------------------------------------------------------


def _pad_matrix(n, bc, dx, width, degree=None):
    """Sparse ``(n + 2*width, n)`` matrix of the linear part of :func:`pad_bc` in 1-D."""
    q = _resolve_degree(_check_bc(bc), n, width, degree)
    eye = sp.identity(n, format="csr")
    if isinstance(bc, Periodic):
        left, right = eye[n - width :], eye[:width]
    else:
        ml, _ = _ghost_rule(bc, n, dx, width, q, "left")
        mr, _ = _ghost_rule(bc, n, dx, width, q, "right")
        left = sp.hstack([sp.csr_matrix(ml), sp.csr_matrix((width, n - q))])
        right = sp.hstack([sp.csr_matrix((width, n - q)), sp.csr_matrix(mr)])
    return sp.vstack([left, eye, right]).tocsr()


def _stencil_matrix(n, weights, offsets, width):
    """Sparse ``(n, n + 2*width)`` matrix of :func:`apply_stencil` in 1-D."""
    diags = [np.full(n, w) for w in weights]
    return sp.diags(diags, [width + o for o in offsets], shape=(n, n + 2 * width)).tocsr()


def _along_axis(mat1d, shape, axis):
    """Embed a 1-D operator acting along ``axis`` into C-ordered flattened arrays."""
    before = int(np.prod(shape[:axis], dtype=np.int64))
    after = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    out = sp.kron(sp.identity(before), sp.kron(mat1d, sp.identity(after)))
    return out.tocsr()


def _check_shape(shape):
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    if not shape or min(shape) < 1:
        raise SolverError(f"shape must be a non-empty tuple of positive ints, got {shape}")
    return shape


def diff_matrix(shape, dx, axis=0, deriv=1, order=2, bc=Periodic()):
    """``(A, b)`` with ``diff(u, ...).ravel() == A @ u.ravel() + b``; ``A`` is CSR."""
    shape = _check_shape(shape)
    axis = axis % len(shape)
    w, offs = _central(deriv, order, dx)
    width, n = max(offs), shape[axis]
    a1 = _stencil_matrix(n, w, offs, width) @ _pad_matrix(n, bc, dx, width)
    b = diff(np.zeros(shape), dx, axis, deriv, order, bc).ravel()
    return _along_axis(a1, shape, axis), b


def laplacian_matrix(shape, dx, bc=Periodic(), order=2):
    """``(A, b)`` with ``laplacian(u, dx, bc, order).ravel() == A @ u.ravel() + b``.

    ``b`` carries the inhomogeneous boundary data, so a steady problem
    ``laplacian(u) = f`` becomes ``A u = f - b``.

    >>> A, b = laplacian_matrix((4, 5), 0.1, Dirichlet(1.0, 0.0))
    >>> A.shape, b.shape
    ((20, 20), (20,))
    """
    shape = _check_shape(shape)
    dxs, bcs = _per_axis(dx, len(shape), "dx"), _per_axis(bc, len(shape), "bc")
    mats = [diff_matrix(shape, dxs[a], a, 2, order, bcs[a])[0] for a in range(len(shape))]
    b = laplacian(np.zeros(shape), dx, bc, order).ravel()
    return sum(mats[1:], mats[0]).tocsr(), b


def upwind_matrix(shape, velocity, dx, axis=0, order=1, bc=Periodic()):
    """``(A, b)`` with ``upwind(u, velocity, ...).ravel() == A @ u.ravel() + b``."""
    shape = _check_shape(shape)
    axis = axis % len(shape)
    (wp, op), (wm, om), width = _upwind_parts(order, dx)
    n = shape[axis]
    pad = _pad_matrix(n, bc, dx, width)
    ap = _along_axis(_stencil_matrix(n, wp, op, width) @ pad, shape, axis)
    am = _along_axis(_stencil_matrix(n, wm, om, width) @ pad, shape, axis)
    pos = np.broadcast_to(np.asarray(velocity) >= 0, shape).ravel().astype(float)
    a = sp.diags(pos) @ ap + sp.diags(1.0 - pos) @ am
    b = upwind(np.zeros(shape), velocity, dx, axis, order, bc).ravel()
    return a.tocsr(), b
