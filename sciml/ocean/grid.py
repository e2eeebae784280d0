"""C-grid positions and metrics.

A position says where on the Arakawa C grid the values of an array live, one flag per axis:
``x`` set means the value sits on the west face of cell i (a u-point), ``y`` set on the south
face of cell j (a v-point), ``z`` set on the top interface of layer k (a w-level). Elevation,
temperature and salinity are at ``T = Position(0, 0, 0)``.

Forward operators (``*F``) read index i and i+1, backward operators (``*B``) read i-1 and i.
Each flips its axis' flag: a face array averaged forward lands on the cell centre, a centre
array averaged backward lands on the face. (The two other combinations are allowed, as in
GOMO; their result for face i+1 is stored at index i.)

The metric a difference divides by is the distance between the two points it differences:

=========  =======================  ==========================================
operator   input at centres (flag 0)  input at faces/levels (flag 1)
=========  =======================  ==========================================
DXF        (dx[i] + dx[i+1]) / 2      dx[i]
DXB        (dx[i-1] + dx[i]) / 2      dx[i-1]
DZF        dzz[k]                     dz[k]
DZB        dzz[k-1]                   dz[k-1]
=========  =======================  ==========================================

and likewise in y. Where the partner index is outside the grid the edge value itself is used,
so no metric is ever zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class Position(NamedTuple):
    """Where an array's values sit: one 0/1 flag per axis (x, y, z)."""

    x: int = 0
    y: int = 0
    z: int = 0

    def flip(self, axis: str) -> Position:
        """The position after a forward/backward operator along ``axis`` ('x', 'y' or 'z')."""
        return self._replace(**{axis: 1 - getattr(self, axis)})


T = Position(0, 0, 0)  # cell centre: el, t, s, rho
U = Position(1, 0, 0)  # west face: u, ua
V = Position(0, 1, 0)  # south face: v, va
W = Position(0, 0, 1)  # layer interface: w, q2, km
UW = Position(1, 0, 1)
VW = Position(0, 1, 1)
CORNER = Position(1, 1, 0)


def _edge_pad_prev(a: np.ndarray, axis: int) -> np.ndarray:
    """a[i-1] along ``axis``, with the first entry repeated at the edge."""
    first = np.take(a, [0], axis=axis)
    body = np.take(a, np.arange(a.shape[axis] - 1), axis=axis)
    return np.concatenate([first, body], axis=axis)


def _edge_pad_next(a: np.ndarray, axis: int) -> np.ndarray:
    """a[i+1] along ``axis``, with the last entry repeated at the edge."""
    n = a.shape[axis]
    last = np.take(a, [n - 1], axis=axis)
    body = np.take(a, np.arange(1, n), axis=axis)
    return np.concatenate([body, last], axis=axis)


@dataclass(frozen=True)
class Grid:
    """Metrics of a sigma-coordinate C grid.

    dx, dy: cell widths (m) at cell centres, shape ``(jm, im)``.
    z, zz: sigma of the layer interfaces and of the layer centres, shape ``(kb,)``; z[0] = 0
    at the surface, decreasing to -1 at the bottom.
    dz[k] = z[k] - z[k+1] and dzz[k] = zz[k] - zz[k+1] (the last entries are 0, as in POM).
    """

    dx: np.ndarray
    dy: np.ndarray
    z: np.ndarray
    zz: np.ndarray

    @property
    def dz(self) -> np.ndarray:
        return np.concatenate([self.z[:-1] - self.z[1:], np.zeros(1, self.z.dtype)])

    @property
    def dzz(self) -> np.ndarray:
        return np.concatenate([self.zz[:-1] - self.zz[1:], np.zeros(1, self.zz.dtype)])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(kb, jm, im)."""
        return (self.z.shape[0],) + self.dx.shape

    def metric(self, axis: str, pos: Position, forward: bool) -> np.ndarray:
        """Distance between the two points a forward/backward difference along ``axis`` reads.

        The result broadcasts against ``[k, j, i]`` arrays (and ``[j, i]`` for x and y).
        """
        staggered = getattr(pos, axis)
        if axis in ("x", "y"):
            width = self.dx if axis == "x" else self.dy
            ax = -1 if axis == "x" else -2
            if staggered:
                return width if forward else _edge_pad_prev(width, ax)
            other = _edge_pad_next(width, ax) if forward else _edge_pad_prev(width, ax)
            return 0.5 * (width + other)
        if axis != "z":
            raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
        step = self.dz if staggered else self.dzz
        # The last dz/dzz entry is 0 by POM's convention; repeat the one above so that a
        # difference read off the bottom never divides by zero.
        step = np.concatenate([step[:-1], step[-2:-1]])
        if not forward:
            step = _edge_pad_prev(step, 0)
        return step[:, None, None]
