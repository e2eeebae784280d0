"""Mellor-Yamada level 2.5 turbulence closure (pom2k ``advq`` and ``profq``).

Prognostic q2 (twice the turbulent kinetic energy) and q2l (q2 times the length scale) on the
w-levels, advected like tracers and diffused implicitly in the vertical; the stability
functions sm, sh give the vertical viscosity km, diffusivity kh and the q-diffusivity kq.
"""

from __future__ import annotations

import numpy as np

from cases.gomd.eos import sound_speed
from cases.gomd.internal import safe_sqrt
from cases.gomd.regions import copy_edges, levels
from sciml.ocean import AXB, AXF, AYB, AYF, AZB, dxb, dxf, dyb, dyf, shift, thomas

A1, B1, A2, B2, C1 = 0.92, 16.6, 0.74, 10.1, 0.08
E1, E2, SEF = 1.8, 1.33, 1.0
CBCNST, SURFL = 100.0, 2.0e5  # wave-breaking energy and surface length scale (Stacey 1999)


def _col(v):
    return v[:, None, None]


def advq(qb, q, u, v, w, aam, dt, etb, etf, p, cfg):
    """Advection and horizontal diffusion of q2 or q2l on levels 2..kb-1, leapfrog step."""
    kb, h, art = p["kb"], p["h"], p["art"]
    mid = levels(kb, 2, kb - 1)
    fx = (AXB(q) * AXB(dt) * AZB(u)
          - AXB(AZB(aam)) * AXB(h) * dxb(qb) * p["dum"] / AXB(p["dx"]))
    fy = (AYB(q) * AYB(dt) * AZB(v)
          - AYB(AZB(aam)) * AYB(h) * dyb(qb) * p["dvm"] / AYB(p["dy"]))
    fx = np.where(p["corner"] & mid, AXB(p["dy"]) * fx, 0.0)
    fy = np.where(p["corner"] & mid, AYB(p["dx"]) * fy, 0.0)
    wq = w * q
    dzsum = np.concatenate([np.ones(1, p["dz"].dtype), p["dz"][1:] + p["dz"][:-1]])
    vert = (shift(wq, "z", -1) - shift(wq, "z", 1)) * art / _col(dzsum)
    qf = vert + dxf(fx) + dyf(fy)
    qf = ((h + etb) * art * qb - 2.0 * cfg.dti * qf) / ((h + etf) * art)
    return np.where(p["interior"] & mid, qf, 0.0)


def _surface_stress(p):
    """|wind stress| at t-points, averaged from u- and v-points (zero on the last row/col)."""
    tau = safe_sqrt((AXF(p["wusurf"])) ** 2 + (AYF(p["wvsurf"])) ** 2)
    return np.where(p["below_last"], tau, 0.0)


def _bottom_stress(wubot, wvbot, p):
    return np.where(p["below_last"], safe_sqrt(AXF(wubot) ** 2 + AYF(wvbot) ** 2), 0.0)


def _q_rows(kq, dh, p, cfg):
    """Negated tridiagonal coefficients (a below, c above) of q diffusion on levels 2..kb-1."""
    kb, dz, dzz, dti2 = p["kb"], p["dz"], p["dzz"], 2.0 * cfg.dti
    kk_dn = kq[2:kb] + kq[1:kb - 1] + 2.0 * cfg.umol
    kk_up = kq[0:kb - 2] + kq[1:kb - 1] + 2.0 * cfg.umol
    a = -dti2 * kk_dn * 0.5 / (_col(dzz[0:kb - 2]) * _col(dz[1:kb - 1]) * dh * dh)
    c = -dti2 * kk_up * 0.5 / (_col(dzz[0:kb - 2]) * _col(dz[0:kb - 2]) * dh * dh)
    zero = np.zeros_like(a[:1])
    return np.concatenate([zero, a, zero]), np.concatenate([zero, c, zero])


def _solve_q(a, c, dissipation, source, f, top, bottom):
    """Columns with fixed values at the surface and the bottom level:
    (1 + dissipation - dti2 d/dz kq d/dz) x = f + source on levels 2..kb-1."""
    kb = f.shape[0]
    ends = levels(kb, 1, 1) | levels(kb, kb, kb)
    diag = np.where(ends, 1.0, 1.0 + dissipation - a - c)
    rhs = np.where(levels(kb, 1, 1), top, np.where(levels(kb, kb, kb), bottom, f + source))
    return thomas(c, diag, a, rhs)


def profq(q2f, q2lf, state, etf, wubot, wvbot, p, cfg):
    """Vertical diffusion, production and dissipation of q2 and q2l, then km, kh, kq.

    Returns (q2f, q2lf, km, kh, kq, l, q2b, q2lb); q2b and q2lb come back as absolute values,
    as pom2k leaves them.
    """
    kb, g, small, kappa, dti2 = p["kb"], cfg.grav, cfg.small, cfg.kappa, 2.0 * cfg.dti
    h, z, dzz = p["h"], p["z"], p["dzz"]
    st = state
    dh = h + etf
    mid = levels(kb, 2, kb - 1)
    utau2 = _surface_stress(p)
    l0 = SURFL * utau2 / g
    q2_top = (15.8 * CBCNST) ** (2.0 / 3.0) * utau2
    q2_bot = _bottom_stress(wubot, wvbot, p) * (B1 ** (2.0 / 3.0)) * SEF

    cc = sound_speed(st["s"], st["t"], h, p["zz"], cfg)
    q2b = np.where(mid, np.abs(st["q2b"]), st["q2b"])
    q2lb = np.where(mid, np.abs(st["q2lb"]), st["q2lb"])
    rho = st["rho"]
    dzzm = _col(np.concatenate([np.ones(1, dzz.dtype), dzz[:-1]]))  # dzz(k-1)
    boygr = (g * (shift(rho, "z", -1) - rho) / (dzzm * h)
             + g**2 * 2.0 / (shift(cc, "z", -1) ** 2 + cc**2))
    boygr = np.where(mid, boygr, 0.0)
    lq = np.abs(q2lb / np.where(mid, q2b, 1.0))
    lq = np.where(_col(z) > -0.5, np.maximum(lq, kappa * l0), lq)
    gh = np.minimum(lq**2 * boygr / np.where(mid, q2b, 1.0), 0.028)
    top, bottom = levels(kb, 1, 1), levels(kb, kb, kb)
    ell = np.where(mid, lq, np.where(top, kappa * l0, 0.0))
    gh = np.where(mid, gh, 0.0)

    u, v = st["u"], st["v"]
    du = dzb_pair(u, "x")
    dv = dzb_pair(v, "y")
    prod = st["km"] * 0.25 * SEF * (du**2 + dv**2) / (dzzm * dh) ** 2 + st["kh"] * boygr
    prod = np.where(p["interior"] & mid, prod, 0.0)
    dtef = safe_sqrt(np.abs(q2b)) / (B1 * ell + small)

    a, c = _q_rows(st["kq"], dh, p, cfg)
    q2f = _solve_q(a, c, 2.0 * dti2 * dtef, 2.0 * dti2 * prod, q2f, q2_top, q2_bot)
    zk = _col(z)
    wall = (1.0 / np.abs(np.where(top, 1.0, zk - z[0]))
            + 1.0 / np.abs(np.where(bottom, 1.0, zk - z[-1])))
    dtef_l = dtef * (1.0 + E2 * (wall * ell / (dh * kappa)) ** 2)
    # pom2k's q2l sweep starts from the q2 surface value (its ee(1)=0, gg(1) are reused),
    # and leaves the surface q2l untouched.
    q2lf_new = _solve_q(a, c, dti2 * dtef_l, dti2 * prod * ell * E1, q2lf, q2_top, 0.0)
    q2lf = np.where(mid, q2lf_new, np.where(top, q2lf, 0.0))
    weak = mid & ((q2f <= small) | (q2lf <= small))
    q2f = np.where(weak, small, q2f)
    q2lf = np.where(weak, 0.1 * st["dt"] * small, q2lf)

    km, kh, kq = stability(ell, gh, st["q2"], st["km"], st["kh"], st["kq"], p)
    return q2f, q2lf, km, kh, kq, ell, q2b, q2lb


def dzb_pair(a, axis):
    """Vertical shear of a velocity averaged to t-points: a(k)-a(k-1) summed over the two
    faces of the cell (u at i and i+1, or v at j and j+1)."""
    d = shift(a, "z", -1)
    diff = a - d
    return diff + shift(diff, axis, 1)


def stability(ell, gh, q2, km, kh, kq, p):
    """Stability functions sm, sh of the MY2.5 closure and the time-averaged km, kh, kq."""
    stf = 1.0
    coef1 = A2 * (1.0 - 6.0 * A1 / B1 * stf)
    coef2 = 3.0 * A2 * B2 / stf + 18.0 * A1 * A2
    coef3 = A1 * (1.0 - 3.0 * C1 - 6.0 * A1 / B1 * stf)
    coef4 = 18.0 * A1 * A1 + 9.0 * A1 * A2
    coef5 = 9.0 * A1 * A2
    sh = coef1 / (1.0 - coef2 * gh)
    sm = (coef3 + sh * coef4 * gh) / (1.0 - coef5 * gh)
    kn = ell * safe_sqrt(np.abs(q2))
    kq = (kn * 0.41 * sh + kq) * 0.5
    km = (kn * sm + km) * 0.5
    kh = (kn * sh + kh) * 0.5
    # pom2k's cosmetic boundary values: edges copy the next interior row/column, masked
    return copy_edges(km, p["fsm"]), copy_edges(kh, p["fsm"]), kq

