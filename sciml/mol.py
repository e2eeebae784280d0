"""The method of lines: a PDESystem on a grid becomes ``du/dt = F(t, u)`` over node arrays.

State layout: one array of shape ``(n_fields, *grid)`` holding every node, boundary nodes
included. Boundary nodes are algebraic: before every evaluation of ``F`` a Dirichlet node is
set to its value and a Neumann node to the value that makes the one-sided derivative of the
scheme's order equal the prescribed flux; ``F`` is zero there. ``F`` is written with
``sciml.numpy`` (shifts, slices, concatenation), so it runs eagerly, traces, differentiates
and fuses. Implicit and steady solves use the same stencils as sparse matrices
(``jacobian``), with the boundary rows of the constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sps
import sympy as sp

from . import numpy as snp
from .equations import from_sympy
from .errors import ProblemError
from .problem import PDESystem, lookup
from .stencils import (
    boundary_rows,
    derivative,
    derivative_matrix_1d,
    kron_axis,
    upwind_first,
    upwind_matrix_1d,
)

BC_KINDS = ("dirichlet", "neumann", "periodic")


@dataclass
class Grid:
    space: list
    bounds: list
    shape: tuple
    periodic: list

    @property
    def h(self) -> list[float]:
        return [(b - a) / (n if p else n - 1)
                for (a, b), n, p in zip(self.bounds, self.shape, self.periodic)]

    @property
    def coords(self) -> list[np.ndarray]:
        return [a + h * np.arange(n) for (a, _), n, h in zip(self.bounds, self.shape, self.h)]

    def mesh(self) -> list[np.ndarray]:
        """Coordinate arrays broadcastable to the grid (sparse meshgrid)."""
        out = []
        for k, c in enumerate(self.coords):
            view = [1] * len(self.shape)
            view[k] = c.size
            out.append(c.reshape(view))
        return out


@dataclass
class AxisBC:
    kind: str
    left: object = 0
    right: object = 0


def make_grid(system: PDESystem, domain: dict, grid, bc_spec) -> Grid:
    bounds = []
    for s in system.space:
        val = lookup(domain, s)
        if val is None:
            raise ProblemError(f"domain= gives no interval for the space coordinate {s}; "
                               f"got keys {list(map(str, domain))}")
        a, b = (float(v) for v in val)
        if not b > a:
            raise ProblemError(f"domain for {s} must be an interval (a, b) with b > a, got {val}")
        bounds.append((a, b))
    nd = len(system.space)
    shape = (grid,) * nd if isinstance(grid, (int, np.integer)) else tuple(grid)
    if len(shape) != nd or any(int(n) < 3 for n in shape):
        raise ProblemError(f"grid must be an int or a tuple of {nd} ints >= 3, got {grid}")
    periodic = [all(b.kind == "periodic" for b in _axis_bcs(bc_spec, system, k))
                for k in range(nd)]
    return Grid(list(system.space), bounds, tuple(int(n) for n in shape), periodic)


def parse_bcs(bc, system: PDESystem) -> list[list[AxisBC]]:
    """``bc`` as given by the user -> one AxisBC per field per space axis."""
    if bc is None:
        raise ProblemError(
            "bc= is required for a PDE: e.g. bc={x: ('dirichlet', 0, 0)}, "
            "bc={x: ('neumann', 0, 0)} or bc={x: 'periodic'}"
        )
    per_field = []
    for f in system.fields:
        spec = lookup(bc, f.func, f)
        spec = spec if isinstance(spec, dict) else bc
        axes = []
        for s in system.space:
            entry = lookup(spec, s)
            if entry is None:
                raise ProblemError(f"no boundary condition for field {f} along {s}; give "
                                   f"bc={{{s}: ('dirichlet', left, right)}} or 'periodic'")
            axes.append(_axis_bc(entry, s))
        per_field.append(axes)
    return per_field


def _axis_bc(entry, s) -> AxisBC:
    if isinstance(entry, str):
        entry = (entry,)
    kind = str(entry[0]).lower()
    if kind not in BC_KINDS:
        raise ProblemError(f"boundary condition kind {entry[0]!r} along {s} is not one of "
                           f"{BC_KINDS}")
    if kind == "periodic":
        return AxisBC("periodic")
    if len(entry) != 3:
        raise ProblemError(f"boundary condition along {s} must be ({kind!r}, left, right), "
                           f"got {entry}")
    return AxisBC(kind, sp.sympify(entry[1]), sp.sympify(entry[2]))


def _axis_bcs(bc_spec, system, k):
    return [axes[k] for axes in bc_spec]


# ---------------------------------------------------------------------------------------------


class Discretization:
    """``F(t, state, params)`` and its sparse Jacobian for a PDESystem on a Grid."""

    def __init__(self, system: PDESystem, grid: Grid, bcs, order: int = 2,
                 scheme: str = "central", upwind_order: int = 1):
        if order not in (2, 4, 6):
            raise ProblemError(f"order must be 2, 4 or 6, got {order}")
        if scheme not in ("central", "upwind"):
            raise ProblemError(f"scheme must be 'central' or 'upwind', got {scheme!r}")
        self.system, self.grid, self.bcs = system, grid, bcs
        self.order, self.scheme, self.upwind_order = order, scheme, upwind_order
        for k, axes in enumerate(bcs):
            for a, b in enumerate(axes):
                if (b.kind == "periodic") != grid.periodic[a]:
                    raise ProblemError(f"field {system.fields[k]}: axis {grid.space[a]} must "
                                       "be periodic for every field or for none")
        args = [self._t()] + list(system.space) + system.field_symbols + list(system.derivs) + \
            list(system.params)
        self.args = args
        self.rhs_fns = [from_sympy(fe.rhs, args, name=f"rhs_{fe.field.func}")
                        for fe in system.equations]
        self.velocity_fns = self._velocities() if scheme == "upwind" else {}
        self.bc_fns = [[self._bc_fns(b) for b in axes] for axes in bcs]
        # Everything the discretised right-hand side depends on except parameter values: two
        # Discretizations with the same key compute the same function.
        # str, not srepr: the placeholder symbols are Dummies, whose srepr differs between two
        # parses of the same problem.
        self.key = (
            tuple(str(fe.rhs) for fe in system.equations),
            tuple(map(str, system.field_symbols)), tuple(map(str, system.derivs)),
            tuple(map(str, system.space)), tuple(map(str, system.params)),
            tuple(sp.srepr(v) for v in system.derivs.values()),
            tuple((b.kind, sp.srepr(b.left), sp.srepr(b.right)) for axes in bcs for b in axes),
            tuple(grid.bounds), grid.shape, tuple(grid.periodic), order, scheme, upwind_order,
        )

    def _t(self):
        return self.system.time if self.system.time is not None else sp.Dummy("t")

    def _velocities(self):
        """Wind of each first derivative: -d(rhs)/d(u_x) (for u_t + a u_x = 0, a)."""
        out = {}
        for sym, (fi, orders) in self.system.derivs.items():
            if len(orders) == 1 and orders[0][1] == 1:
                eq = self.system.equations[fi]
                out[sym] = from_sympy(-sp.diff(eq.rhs, sym), self.args)
        return out

    def _bc_fns(self, b: AxisBC):
        if b.kind == "periodic":
            return None
        args = [self._t()] + list(self.system.space) + list(self.system.params)
        return (from_sympy(b.left, args), from_sympy(b.right, args))

    # -- pointwise evaluation ----------------------------------------------------------------

    def apply_bc(self, t, state, params):
        fields = [self._field_bc(t, state[k], k, params) for k in range(len(self.bcs))]
        return snp.stack(fields)

    def _field_bc(self, t, u, k, params):
        mesh = self.grid.mesh()
        for a, b in enumerate(self.bcs[k]):
            if b.kind == "periodic":
                continue
            left_fn, right_fn = self.bc_fns[k][a]
            face = mesh
            n = self.grid.shape[a]
            pv = _param_values(self.system, params)
            lo = _face_value(left_fn, t, face, a, 0, self.grid, pv)
            hi = _face_value(right_fn, t, face, a, n - 1, self.grid, pv)
            if b.kind == "dirichlet":
                u = _set_faces(u, a, lo, hi)
            else:
                u = _set_faces(u, a, *self._neumann_faces(u, a, lo, hi))
        return u

    def _neumann_faces(self, u, a, g_lo, g_hi):
        n, h = self.grid.shape[a], self.grid.h[a]
        (_, nodes, w), = boundary_rows(1, self.order, n)[:1]
        lo_sum = sum(w[j] * _slab(u, a, nodes[j]) for j in range(1, len(nodes)))
        hi_sum = sum(w[j] * _slab(u, a, n - 1 - nodes[j]) for j in range(1, len(nodes)))
        lo = (g_lo * h - lo_sum) / w[0]
        hi = (-g_hi * h - hi_sum) / w[0]
        return lo, hi

    def derivatives(self, fields, params, t):
        vals = {}
        for sym, (fi, orders) in self.system.derivs.items():
            u = fields[fi]
            if sym in self.velocity_fns:
                a, _ = orders[0]
                vel = self._call(self.velocity_fns[sym], t, fields, vals, params)
                vals[sym] = upwind_first(u, snp.broadcast_to(vel, self.grid.shape), a,
                                         self.grid.h[a], self.upwind_order,
                                         self.grid.periodic[a])
                continue
            for k, (a, n) in enumerate(orders):
                # Boundary nodes are algebraic (their rows are masked), so a plain derivative
                # skips their biased stencils; a mixed derivative differentiates the first
                # result again and needs its end values.
                last = k == len(orders) - 1
                u = derivative(u, a, n, self.grid.h[a], self.order, self.grid.periodic[a],
                               ends=not last)
            vals[sym] = u
        return vals

    def _call(self, fn, t, fields, derivs, params):
        dvals = [derivs.get(s, 0.0) for s in self.system.derivs]
        return fn(t, *self.grid.mesh(), *fields, *dvals, *_param_values(self.system, params))

    def pointwise(self, t, fields, params):
        """The right-hand side of every equation at every node for the given field arrays."""
        derivs = self.derivatives(fields, params, t)
        return [snp.broadcast_to(self._call(fn, t, fields, derivs, params), self.grid.shape)
                for fn in self.rhs_fns]

    def rhs(self, t, state, params):
        """F(t, state): the time derivative of every node (zero on algebraic boundary nodes)."""
        state = self.apply_bc(t, state, params)
        fields = [state[k] for k in range(len(self.bcs))]
        vals = self.pointwise(t, fields, params)
        return snp.stack([snp.where(self.interior_condition(k), v, 0.0)
                          for k, v in enumerate(vals)])

    def raw_rhs(self, t, state, params):
        """The right-hand side on the state as it is (boundary nodes not reset)."""
        return snp.stack(self.pointwise(t, [state[k] for k in range(len(self.bcs))], params))

    def constraints(self, t, state, params):
        """Boundary residuals: u - g (Dirichlet), one-sided du/dx - g scaled (Neumann); a node
        on several faces takes the condition of its last non-periodic axis."""
        out = []
        for k in range(len(self.bcs)):
            u = state[k]
            c = u * 0.0
            pv = _param_values(self.system, params)
            for a, b in enumerate(self.bcs[k]):
                if b.kind == "periodic":
                    continue
                left_fn, right_fn = self.bc_fns[k][a]
                n = self.grid.shape[a]
                lo = _face_value(left_fn, t, self.grid.mesh(), a, 0, self.grid, pv)
                hi = _face_value(right_fn, t, self.grid.mesh(), a, n - 1, self.grid, pv)
                if b.kind == "neumann":
                    lo, hi = self._neumann_faces(u, a, lo, hi)
                c = _set_faces(c, a, _slab(u, a, 0) - lo, _slab(u, a, n - 1) - hi)
            out.append(c)
        return snp.stack(out)

    def interior_mask(self, k) -> np.ndarray:
        """1.0 at interior nodes of field k, 0.0 at its (algebraic) boundary nodes."""
        return np.broadcast_to(self.interior_condition(k), self.grid.shape).astype(float)

    def interior_condition(self, k):
        """The interior as a product of small per-axis boolean arrays (broadcastable), so a
        kernel reads a few vectors instead of a full mask array."""
        from .stencils import axis_index

        cond = np.ones((1,) * len(self.grid.shape), bool)
        for a, b in enumerate(self.bcs[k]):
            if b.kind != "periodic":
                idx = axis_index(self.grid.shape, a)
                cond = cond & (idx > 0) & (idx < self.grid.shape[a] - 1)
        return cond

    def interior_masks(self) -> np.ndarray:
        return np.stack([self.interior_mask(k) for k in range(len(self.bcs))])

    # -- sparse Jacobians ----------------------------------------------------------------------

    def jacobian(self, t, state, params, raw=False):
        """Sparse d(rhs)/d(state). ``raw=False``: of :meth:`rhs` evaluated on the BC-reset
        state, rows of boundary nodes zero (used for stability estimates); ``raw=True``: of
        :meth:`raw_rhs`, every row."""
        nf = len(self.bcs)
        size = int(np.prod(self.grid.shape))
        fields = [np.asarray(state[k]) for k in range(nf)]
        if not raw:
            fields = [np.asarray(f) for f in self.apply_bc(t, np.stack(fields), params)]
        derivs = self.derivatives(fields, params, t)
        blocks = [[None] * nf for _ in range(nf)]
        for k in range(nf):
            mask = np.ones(size) if raw else self.interior_mask(k).ravel()
            for s, fn in self._coefficient_fns(k):
                c = np.broadcast_to(self._call(fn, t, fields, derivs, params),
                                    self.grid.shape).ravel()
                j, op = self._operator(s)
                if s in self.velocity_fns:
                    op = self._upwind_operator(s, fields, derivs, params, t)
                term = sps.diags(c * mask) @ op
                blocks[k][j] = term if blocks[k][j] is None else blocks[k][j] + term
        for k in range(nf):
            for j in range(nf):
                if blocks[k][j] is None:
                    blocks[k][j] = sps.csr_matrix((size, size))
        return sps.bmat(blocks, format="csr")

    def _upwind_operator(self, s, fields, derivs, params, t):
        (a, _), = self.system.derivs[s][1]
        vel = np.broadcast_to(self._call(self.velocity_fns[s], t, fields, derivs, params),
                              self.grid.shape).ravel()
        sides = [kron_axis(upwind_matrix_1d(self.grid.shape[a], self.grid.h[a],
                                            self.upwind_order, b, self.grid.periodic[a]),
                           self.grid.shape, a) for b in (True, False)]
        pos = (vel > 0).astype(float)
        return sps.diags(pos) @ sides[0] + sps.diags(1.0 - pos) @ sides[1]

    def is_linear(self) -> bool:
        """Whether every equation is linear in the fields and their derivatives."""
        syms = set(self.system.field_symbols) | set(self.system.derivs)
        return all(not (sp.diff(fe.rhs, s).free_symbols & syms)
                   for fe in self.system.equations for s in syms)

    def _coefficient_fns(self, k):
        """(symbol, d rhs_k / d symbol as a function) for every symbol rhs_k depends on."""
        cache = self.__dict__.setdefault("_coef_cache", {})
        if k not in cache:
            rhs = self.system.equations[k].rhs
            cache[k] = [(s, from_sympy(sp.diff(rhs, s), self.args))
                        for s in self.system.field_symbols + list(self.system.derivs)
                        if sp.diff(rhs, s) != 0]
        return cache[k]

    def _operator(self, s):
        ops = self.__dict__.setdefault("_op_cache", {})
        if s not in ops:
            ops[s] = self._build_operator(s)
        return ops[s]

    def _build_operator(self, s):
        if s in self.system.field_symbols:
            j = self.system.field_symbols.index(s)
            return j, sps.identity(int(np.prod(self.grid.shape)), format="csr")
        j, orders = self.system.derivs[s]
        op = None
        for a, n in orders:
            m1 = derivative_matrix_1d(self.grid.shape[a], n, self.grid.h[a], self.order,
                                      self.grid.periodic[a])
            m = kron_axis(m1, self.grid.shape, a)
            op = m if op is None else m @ op
        return j, op

    def constraint_jacobian(self):
        """Block-diagonal sparse d(constraints)/d(state)."""
        return sps.block_diag([self._constraint_rows(k) for k in range(len(self.bcs))],
                              format="csr")

    def _constraint_rows(self, k):
        shape = self.grid.shape
        size = int(np.prod(shape))
        rows = sps.csr_matrix((size, size))
        taken = np.zeros(shape, bool)
        for a in reversed(range(len(shape))):
            b = self.bcs[k][a]
            if b.kind == "periodic":
                continue
            face = np.zeros(shape, bool)
            idx = [slice(None)] * len(shape)
            for i in (0, -1):
                idx[a] = i
                face[tuple(idx)] = True
            mine = (face & ~taken).ravel().astype(float)
            taken |= face
            n = shape[a]
            m1 = sps.lil_matrix((n, n))
            m1[0, 0] = m1[n - 1, n - 1] = 1.0
            if b.kind == "neumann":
                (_, nodes, w), = boundary_rows(1, self.order, n)[:1]
                for j in range(1, len(nodes)):
                    m1[0, nodes[j]] = w[j] / w[0]
                    m1[n - 1, n - 1 - nodes[j]] = w[j] / w[0]
            rows = rows + sps.diags(mine) @ kron_axis(m1.tocsr(), shape, a)
        return rows.tocsr()


def _param_values(system, params):
    return [params[p] for p in system.params]


def _face_value(fn, t, mesh, axis, index, grid, pvals):
    face_mesh = []
    for k, m in enumerate(mesh):
        if k == axis:
            face_mesh.append(np.asarray(grid.coords[axis][index]))
        else:
            face_mesh.append(np.squeeze(m, axis=axis) if m.ndim > 1 else m)
    face_shape = tuple(n for k, n in enumerate(grid.shape) if k != axis)
    vals = fn(t, *face_mesh, *pvals)
    return snp.broadcast_to(vals, face_shape) if face_shape else vals


def _slab(u, axis, i):
    idx = [slice(None)] * snp.ndim(u)
    idx[axis] = i
    return u[tuple(idx)]


def _set_faces(u, axis, lo, hi):
    """``u`` with its first and last slabs along ``axis`` replaced by ``lo`` and ``hi`` (selects
    on index masks, so it fuses with the stencils around it)."""
    from .stencils import axis_index

    n = snp.shape(u)[axis]
    index = axis_index(snp.shape(u), axis)
    lo = snp.astype(snp.expand_dims(lo, axis), u.dtype)
    hi = snp.astype(snp.expand_dims(hi, axis), u.dtype)
    return snp.where(index == 0, lo, snp.where(index == n - 1, hi, u))
