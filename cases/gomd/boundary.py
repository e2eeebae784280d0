"""Lateral boundary conditions (pom2k ``bcond``), as functions returning new arrays.

East/west are open: a radiation condition on the depth-mean normal velocity around a
geostrophically balanced inflow, a smoothed radiation condition on the 3-D velocity, upwind
advection of T, S, q2, q2l with the inflow values held fixed. North/south use the same
formulas with zero boundary data; on the seamount they sit on land, so the masks fsm, dum, dvm
close them (a closed boundary is always just a mask).
"""

from __future__ import annotations

import numpy as np

from cases.gomd.regions import col, copy_edges, put_i, put_j, row, set_i, set_j


def elevation(elf, p):
    """Sea level: copy the first interior row/column outward, then mask land (bcond 1)."""
    return copy_edges(elf) * p["fsm"]


def depth_mean_velocity(uaf, vaf, el, p, cfg):
    """Radiation condition on the normal depth-mean velocity (bcond 2), ramp = 1.

    u_boundary = u_inflow +- sqrt(g / h) (eta - eta_boundary): long gravity waves leave the
    domain while the inflow and its geostrophic sea level are imposed.
    """
    im, jm, h, g = p["im"], p["jm"], p["h"], cfg.grav
    inner_j = (np.arange(1, jm + 1) >= 2) & (np.arange(1, jm + 1) <= jm - 1)
    east = p["uabe"] + np.sqrt(g / col(h, im - 1)) * (col(el, im - 1) - p["ele"])
    west = p["uabw"] - np.sqrt(g / col(h, 2)) * (col(el, 2) - p["elw"])
    # set_i/set_j read the field only where they write it (one fused pass); pom2k's copy of
    # column 2 into column 1 (row 2 into row 1) is written as the value column 2 just got
    uaf = set_i(uaf, im, east, inner_j)
    uaf = set_i(uaf, 2, west, inner_j)
    uaf = set_i(uaf, 1, west, inner_j)
    vaf = set_i(vaf, im, 0.0, inner_j)
    vaf = set_i(vaf, 1, 0.0, inner_j)
    inner_i = (np.arange(1, im + 1) >= 2) & (np.arange(1, im + 1) <= im - 1)
    north = np.sqrt(g / row(h, jm - 1)) * row(el, jm - 1)
    south = -np.sqrt(g / row(h, 2)) * row(el, 2)
    vaf = set_j(vaf, jm, north, inner_i)
    uaf = set_j(uaf, jm, 0.0, inner_i)
    vaf = set_j(vaf, 2, south, inner_i)
    vaf = set_j(vaf, 1, south, inner_i)
    uaf = set_j(uaf, 1, 0.0, inner_i)
    return uaf * p["dum"], vaf * p["dvm"]


def _smooth_along(a):
    """.25 a[n-1] + .5 a[n] + .25 a[n+1] along the boundary (only interior n are used)."""
    return 0.25 * np.roll(a, 1, axis=-1) + 0.5 * a + 0.25 * np.roll(a, -1, axis=-1)


def velocity(uf, vf, u, v, p, cfg):
    """3-D normal velocity at open boundaries (bcond 3): the interior value next to the
    boundary, smoothed along it, weighted by sqrt(h / hmax); tangential velocity zero."""
    im, jm, h, kb = p["im"], p["jm"], p["h"], p["kb"]
    upper = (np.arange(kb) < kb - 1)[:, None]
    inner_j = upper & ((np.arange(1, jm + 1) >= 2) & (np.arange(1, jm + 1) <= jm - 1))
    inner_i = upper & ((np.arange(1, im + 1) >= 2) & (np.arange(1, im + 1) <= im - 1))
    ga = np.sqrt(col(h, im) / cfg.hmax)
    east = ga * _smooth_along(col(u, im - 1)) + (1.0 - ga) * _smooth_along(col(u, im))
    ga = np.sqrt(col(h, 1) / cfg.hmax)
    west = ga * _smooth_along(col(u, 3)) + (1.0 - ga) * _smooth_along(col(u, 2))
    uf = set_i(uf, im, east, inner_j)
    vf = set_i(vf, im, 0.0, inner_j)
    uf = set_i(uf, 2, west, inner_j)
    uf = set_i(uf, 1, west, inner_j)  # pom2k: uf(1) = uf(2)
    vf = set_i(vf, 1, 0.0, inner_j)
    ga = np.sqrt(row(h, jm) / cfg.hmax)
    north = ga * _smooth_along(row(v, jm - 1)) + (1.0 - ga) * _smooth_along(row(v, jm))
    ga = np.sqrt(row(h, 1) / cfg.hmax)
    south = ga * _smooth_along(row(v, 3)) + (1.0 - ga) * _smooth_along(row(v, 2))
    vf = set_j(vf, jm, north, inner_i)
    uf = set_j(uf, jm, 0.0, inner_i)
    vf = set_j(vf, 2, south, inner_i)
    vf = set_j(vf, 1, south, inner_i)  # pom2k: vf(1) = vf(2)
    uf = set_j(uf, 1, 0.0, inner_i)
    upper3 = (np.arange(kb) < kb - 1)[:, None, None]
    return np.where(upper3, uf * p["dum"], uf), np.where(upper3, vf * p["dvm"], vf)


def _upwind_side(f_in, f_out, fb_held, un, dt_in, w_in, p, inflow_sign, cfg):
    """One open side of the tracer condition (bcond 4), as a column over [k, n].

    Outflow: upwind advection from the first interior point plus its vertical advection.
    Inflow: relaxation to the held value ``fb_held``. ``un`` is the normal Courant number.
    """
    kb, zz = p["kb"], p["zz"]
    inflow = un * inflow_sign >= 0.0
    out = f_out - un * (f_out - f_in) * -inflow_sign
    # vertical advection term on layers 2..kb-2 (1-based), pom2k's wm
    k = np.arange(1, kb + 1)[:, None]
    one = np.ones(1, zz.dtype)  # keep float32 runs in float32
    zden = np.concatenate([one, zz[:-2] - zz[2:], one])[:, None]
    w_mid = 0.5 * (w_in + np.roll(w_in, -1, axis=0))
    wm = w_mid * cfg.dti / (zden * dt_in)
    f_up, f_dn = np.roll(f_in, 1, axis=0), np.roll(f_in, -1, axis=0)
    out = np.where((k >= 2) & (k <= kb - 2), out - wm * (f_up - f_dn), out)
    held = f_out - un * (fb_held - f_out) * inflow_sign * -1.0
    return np.where(inflow, held, out)


def tracers(tf, sf, t, s, u, v, w, dt, p, cfg):
    """Temperature and salinity at open boundaries (bcond 4), then the land mask."""
    im, jm, dx, dy, kb = p["im"], p["jm"], p["dx"], p["dy"], p["kb"]
    dti = cfg.dti
    upper = (np.arange(kb) < kb - 1)[:, None]
    sides = []
    # east: outflow when u > 0
    un = 2.0 * col(u, im) * dti / (col(dx, im) + col(dx, im - 1))
    sides.append(("i", im, im - 1, un, -1.0, "tbe", "sbe"))
    un = 2.0 * col(u, 2) * dti / (col(dx, 1) + col(dx, 2))
    sides.append(("i", 1, 2, un, 1.0, "tbw", "sbw"))
    un_n = 2.0 * row(v, jm) * dti / (row(dy, jm) + row(dy, jm - 1))
    un_s = 2.0 * row(v, 2) * dti / (row(dy, 1) + row(dy, 2))
    sides.append(("j", jm, jm - 1, un_n, -1.0, "tbn", "sbn"))
    sides.append(("j", 1, 2, un_s, 1.0, "tbs", "sbs"))
    for axis, at, inner, un, sign, tkey, skey in sides:
        get, put = (col, set_i) if axis == "i" else (row, set_j)
        dt_in, w_in = get(dt, inner), get(w, inner)
        new_t = _upwind_side(get(t, inner), get(t, at), p[tkey], un, dt_in, w_in,
                             p, sign, cfg)
        new_s = _upwind_side(get(s, inner), get(s, at), p[skey], un, dt_in, w_in,
                             p, sign, cfg)
        tf = put(tf, at, new_t, upper)
        sf = put(sf, at, new_s, upper)
    upper3 = (np.arange(kb) < kb - 1)[:, None, None]
    return np.where(upper3, tf * p["fsm"], tf), np.where(upper3, sf * p["fsm"], sf)


def turbulence(q2f, q2lf, q2, q2l, u, v, p, cfg):
    """q2 and q2l at open boundaries (bcond 6): upwind outflow, inflow relaxes to ``small``;
    then the land mask and pom2k's floor of 1e-10."""
    im, jm, dx, dy, small = p["im"], p["jm"], p["dx"], p["dy"], cfg.small
    dti = cfg.dti

    def side(f_at, f_in, un, sign):
        inflow = un * sign >= 0.0
        held = f_at - un * (small - f_at) * (-sign)
        out = f_at - un * (f_at - f_in) * -sign
        return np.where(inflow, held, out)

    un_e = 2.0 * col(u, im) * dti / (col(dx, im) + col(dx, im - 1))
    un_w = 2.0 * col(u, 2) * dti / (col(dx, 1) + col(dx, 2))
    q2f = put_i(q2f, im, side(col(q2, im), col(q2, im - 1), un_e, -1.0))
    q2lf = put_i(q2lf, im, side(col(q2l, im), col(q2l, im - 1), un_e, -1.0))
    q2f = put_i(q2f, 1, side(col(q2, 1), col(q2, 2), un_w, 1.0))
    q2lf = put_i(q2lf, 1, side(col(q2l, 1), col(q2l, 2), un_w, 1.0))
    un_n = 2.0 * row(v, jm) * dti / (row(dy, jm) + row(dy, jm - 1))
    un_s = 2.0 * row(v, 2) * dti / (row(dy, 1) + row(dy, 2))
    q2f = put_j(q2f, jm, side(row(q2, jm), row(q2, jm - 1), un_n, -1.0))
    q2lf = put_j(q2lf, jm, side(row(q2l, jm), row(q2l, jm - 1), un_n, -1.0))
    q2f = put_j(q2f, 1, side(row(q2, 1), row(q2, 2), un_s, 1.0))
    q2lf = put_j(q2lf, 1, side(row(q2l, 1), row(q2l, 2), un_s, 1.0))
    return q2f * p["fsm"] + 1.0e-10, q2lf * p["fsm"] + 1.0e-10
