"""The seamount case, generated analytically (pom2k ``depth``, ``seamount``, ``areas_masks``).

Everything here runs once, before the time loop, and returns plain arrays. Index ranges in
comments are pom2k's 1-based ones; arrays are 0-based ``[k, j, i]`` / ``[j, i]``.
"""

from __future__ import annotations

import numpy as np

from cases.gomd.config import Config


def sigma_levels(kb: int, kl1: int, kl2: int):
    """Sigma interfaces z and centres zz: logarithmic near surface and bottom (pom2k depth).

    Layer thicknesses double over the first kl1-2 layers, stay constant down to kl2, and
    (with pom2k's table) halve again towards the bottom.
    """
    kdz = [1, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    z = [0.0]
    for k in range(2, kl1 + 1):
        z.append(z[-1] + kdz[k - 2])
    delz = z[kl1 - 1] - z[kl1 - 2]
    for _ in range(kl1 + 1, kl2 + 1):
        z.append(z[-1] + delz)
    for k in range(kl2 + 1, kb + 1):
        z.append(z[-1] + kdz[kb - k] * delz / kdz[kb - kl2 - 1])
    z = -np.array(z) / z[-1]
    zz = 0.5 * (z[:-1] + z[1:])
    zz = np.concatenate([zz, [2.0 * zz[-1] - zz[-2]]])
    return z, zz


def horizontal_grid(cfg: Config):
    """Cell widths dx, dy [j, i] (8 km at the edges, 4 km in the middle) and cell corners."""
    i = np.arange(1, cfg.im + 1)
    j = np.arange(1, cfg.jm + 1)
    dx1 = cfg.delx - cfg.delx * np.sin(np.pi * i / cfg.im) / 2.0
    dy1 = cfg.delx - cfg.delx * np.sin(np.pi * j / cfg.jm) / 2.0
    dx = np.broadcast_to(dx1, (cfg.jm, cfg.im)).copy()
    dy = np.broadcast_to(dy1[:, None], (cfg.jm, cfg.im)).copy()
    east_c = np.concatenate([[0.0], np.cumsum(dx1[:-1])])
    north_c = np.concatenate([[0.0], np.cumsum(dy1[:-1])])
    return dx, dy, east_c, north_c


def bathymetry(cfg: Config, east_c, north_c):
    """Seamount depth 4500 (1 - 0.9 exp(-r^2 / 25 km^2)), land (h = 1) on the walls."""
    xc = east_c[(cfg.im + 1) // 2 - 1]
    yc = north_c[(cfg.jm + 1) // 2 - 1]
    r2 = (east_c[None, :] - xc) ** 2 + (north_c[:, None] - yc) ** 2
    h = cfg.depth * (1.0 - cfg.delh * np.exp(-r2 / cfg.radius**2))
    h = np.maximum(h, 1.0)
    jj = np.arange(cfg.jm)[:, None]
    ii = np.arange(cfg.im)[None, :]
    wall = (jj == 0) | (jj == cfg.jm - 1)
    if cfg.closed:
        wall = wall | (ii == 0) | (ii == cfg.im - 1)
    return np.where(wall, 1.0, h)


def areas_masks(dx, dy, h):
    """Cell areas at t, u, v points and the land/sea masks fsm, dum, dvm (pom2k areas_masks)."""
    art = dx * dy
    aru = 0.25 * (dx + np.roll(dx, 1, axis=1)) * (dy + np.roll(dy, 1, axis=1))
    arv = 0.25 * (dx + np.roll(dx, 1, axis=0)) * (dy + np.roll(dy, 1, axis=0))
    # pom2k copies the second row/column into the first (the rolled values there are junk)
    aru = np.concatenate([aru[:, 1:2], aru[:, 1:]], axis=1)
    aru = np.concatenate([aru[1:2], aru[1:]], axis=0)
    arv = np.concatenate([arv[:, 1:2], arv[:, 1:]], axis=1)
    arv = np.concatenate([arv[1:2], arv[1:]], axis=0)
    fsm = np.where(h > 1.0, 1.0, 0.0)
    dum = fsm * np.roll(fsm, 1, axis=1)
    dvm = fsm * np.roll(fsm, 1, axis=0)
    first_row_col = np.zeros_like(fsm, dtype=bool)
    first_row_col[0, :] = True
    first_row_col[:, 0] = True
    dum = np.where(first_row_col, 0.0, dum)
    dvm = np.where(first_row_col, 0.0, dvm)
    return art, aru, arv, fsm, dum, dvm


def geostrophic_boundary_elevation(cfg: Config, ua, dy, fsm, icol: int, ifsm: int):
    """Sea level along an open boundary in geostrophic balance with the inflow ua[:, icol]
    (f u = -g d(eta)/dy), shifted to zero at mid-channel (pom2k seamount)."""
    jm = cfg.jm
    incr = -cfg.f0 * ua[1:jm - 1, icol] / cfg.grav * dy[0:jm - 2, icol]
    el = np.concatenate([[0.0], np.cumsum(incr), [0.0]])  # j = 1 .. jm
    mid = el[(jm - 1) // 2 - 1]
    inner = (el[1:jm - 1] - mid) * fsm[1:jm - 1, ifsm]
    return np.concatenate([[0.0], inner, [0.0]])
