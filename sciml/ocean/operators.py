"""GOMO's twelve C-grid operators (plus undivided differences and vertical sums).

Arrays are ``[k, j, i]`` (or ``[j, i]`` for the x/y operators); a neighbour missing at the
edge reads as 0. ``pos`` is the C-grid position of the *input* (see ``sciml.ocean.grid``);
averages do not need it, differences use it to pick the metric. Written only with slicing,
concatenation and arithmetic so that sciml's tracer can record them.
"""

from __future__ import annotations

import numpy as np

import sciml.numpy as snp
from sciml.ocean.grid import Grid, Position, T

_AXES = {"x": -1, "y": -2, "z": -3}


def shift(a, axis: str, offset: int):
    """The neighbour ``a[idx + offset]`` along ``axis`` (offset +1 or -1), 0 past the edge.

    On numpy arrays this is slicing and concatenation (the fast eager form); on traced values
    it records sciml's ``shift`` primitive, a stencil read that ``jit`` fuses into the kernel
    that consumes it instead of materialising a shifted copy.

    >>> shift(np.array([1.0, 2.0, 3.0]), "x", 1)
    array([2., 3., 0.])
    """
    ax = np.ndim(a) + _AXES[axis]
    if ax < 0:
        raise ValueError(f"a {np.ndim(a)}-D array has no {axis!r} axis")
    if offset not in (1, -1):
        raise ValueError(f"offset must be +1 or -1, got {offset}")
    if not isinstance(a, np.ndarray):
        offsets = [0] * np.ndim(a)
        offsets[ax] = offset
        return snp.shift(a, tuple(offsets), "zero")
    lead = (slice(None),) * ax
    zero = np.zeros_like(a[lead + (slice(0, 1),)])
    if offset == 1:
        return np.concatenate([a[lead + (slice(1, None),)], zero], axis=ax)
    return np.concatenate([zero, a[lead + (slice(0, -1),)]], axis=ax)


# --- averages: (a[i] + a[i+1]) / 2 forward, (a[i-1] + a[i]) / 2 backward ---------------------

def AXF(a):
    """Forward average in x: (a[i] + a[i+1]) / 2."""
    return 0.5 * (a + shift(a, "x", 1))


def AXB(a):
    """Backward average in x: (a[i-1] + a[i]) / 2."""
    return 0.5 * (a + shift(a, "x", -1))


def AYF(a):
    """Forward average in y: (a[j] + a[j+1]) / 2."""
    return 0.5 * (a + shift(a, "y", 1))


def AYB(a):
    """Backward average in y: (a[j-1] + a[j]) / 2."""
    return 0.5 * (a + shift(a, "y", -1))


def AZF(a):
    """Forward (downward) average in the vertical: (a[k] + a[k+1]) / 2."""
    return 0.5 * (a + shift(a, "z", 1))


def AZB(a):
    """Backward (upward) average in the vertical: (a[k-1] + a[k]) / 2."""
    return 0.5 * (a + shift(a, "z", -1))


# --- undivided differences (flux form) ------------------------------------------------------

def dxf(a):
    """a[i+1] - a[i]."""
    return shift(a, "x", 1) - a


def dxb(a):
    """a[i] - a[i-1]."""
    return a - shift(a, "x", -1)


def dyf(a):
    """a[j+1] - a[j]."""
    return shift(a, "y", 1) - a


def dyb(a):
    """a[j] - a[j-1]."""
    return a - shift(a, "y", -1)


def dzf(a):
    """a[k] - a[k+1]: sigma increases upward, so this is the upward difference across k."""
    return a - shift(a, "z", 1)


def dzb(a):
    """a[k-1] - a[k]."""
    return shift(a, "z", -1) - a


# --- differences divided by the metric at the result's position -----------------------------

def DXF(a, grid: Grid, pos: Position = T):
    """(a[i+1] - a[i]) / distance; the input at ``pos``, the result at ``pos.flip('x')``."""
    return dxf(a) / grid.metric("x", pos, forward=True)


def DXB(a, grid: Grid, pos: Position = T):
    """(a[i] - a[i-1]) / distance."""
    return dxb(a) / grid.metric("x", pos, forward=False)


def DYF(a, grid: Grid, pos: Position = T):
    """(a[j+1] - a[j]) / distance."""
    return dyf(a) / grid.metric("y", pos, forward=True)


def DYB(a, grid: Grid, pos: Position = T):
    """(a[j] - a[j-1]) / distance."""
    return dyb(a) / grid.metric("y", pos, forward=False)


def DZF(a, grid: Grid, pos: Position = T):
    """(a[k] - a[k+1]) / sigma distance (dz at w-levels, dzz at centres)."""
    return dzf(a) / grid.metric("z", pos, forward=True)


def DZB(a, grid: Grid, pos: Position = T):
    """(a[k-1] - a[k]) / sigma distance."""
    return dzb(a) / grid.metric("z", pos, forward=False)


# --- vertical sums --------------------------------------------------------------------------

def csum_z(a):
    """Cumulative sum from the surface down: out[k] = sum(a[:k+1])."""
    return np.cumsum(a, axis=-3)


def sum_z(a):
    """Total over the vertical axis (3-D ``[k, j, i]`` -> 2-D ``[j, i]``)."""
    return np.sum(a, axis=-3)
