"""The internal (3-D) mode: momentum and tracer equations on sigma layers, step ``dti``.

pom2k's ``advct``, ``baropg``, ``vertvl``, ``advt1``, ``proft``, ``advu``/``advv`` and
``profu``/``profv``, in GOMO's operator form. Vertical diffusion is implicit: each column is a
tridiagonal system solved with ``sciml.ocean.thomas``.
"""

from __future__ import annotations

import numpy as np

from cases.gomd.regions import box, levels
from sciml.ocean import AXB, AXF, AYB, AYF, AZB, csum_z, dxb, dxf, dyb, dyf, dzf, shift, thomas


def safe_sqrt(x):
    """sqrt(x) for x >= 0 whose derivative stays finite at 0 (a magnitude at rest is 0 on land
    and at edges; the plain sqrt's infinite slope would turn masked-out zeros into NaN
    gradients). The values are exactly those of ``np.sqrt``."""
    pos = x > 0.0
    return np.where(pos, np.sqrt(np.where(pos, x, 1.0)), 0.0)


def _upper(p):
    """Layers 1..kb-1, the ones that carry u, v, T, S."""
    return levels(p["kb"], 1, p["kb"] - 1)


def _col(v):
    return v[:, None, None]


def _shear(ub, vb, dt, aam, p):
    """Horizontal shear stress (du/dy + dv/dx) times D A_M at cell corners (u-v points)."""
    return (AXB(AYB(dt)) * AXB(AYB(aam))
            * (dyb(ub) / AXB(AYB(p["dy"])) + dxb(vb) / AXB(AYB(p["dx"]))))


def _curvature(u, v, p):
    """Metric (curvature) term of the momentum advection on a curvilinear grid."""
    dx, dy = p["dx"], p["dy"]
    curv = 0.5 * (AYF(v) * (shift(dy, "x", 1) - shift(dy, "x", -1))
                  - AXF(u) * (shift(dx, "y", 1) - shift(dx, "y", -1))) / (dx * dy)
    return np.where(p["interior"] & _upper(p), curv, 0.0)


def advct(u, v, ub, vb, dt, aam, p):
    """Horizontal advection and viscosity of 3-D momentum (advx, advy), times the cell area."""
    im, jm, s, up = p["im"], p["jm"], p["shape2"], _upper(p)
    shear = _shear(ub, vb, dt, aam, p)
    curv = _curvature(u, v, p)
    # x-momentum
    reg = box(s, 2, im - 1, 2, jm) & up
    fx = AXF(AXB(dt) * u) * AXF(u) - dt * aam * 2.0 * dxf(ub) / p["dx"]
    fx = np.where(reg, p["dy"] * fx, 0.0)
    fy = np.where(reg, AXB(AYB(p["dx"])) * (AXB(AYB(dt) * v) * AYB(u) - shear), 0.0)
    advx = dxb(fx) + dyf(fy)
    curv_u = np.where(box(s, 3, im - 1, 2, jm - 1), p["aru"] * AXB(curv * dt * AYF(v)), 0.0)
    advx = np.where(p["interior"] & up, advx - curv_u, 0.0)
    # y-momentum
    reg = box(s, 2, im, 2, jm - 1) & up
    fx = np.where(reg, AXB(AYB(p["dy"])) * (AYB(AXB(dt) * u) * AXB(v) - shear), 0.0)
    fy = AYF(AYB(dt) * v) * AYF(v) - dt * aam * 2.0 * dyf(vb) / p["dy"]
    fy = np.where(reg, p["dx"] * fy, 0.0)
    advy = dxf(fx) + dyb(fy)
    curv_v = np.where(box(s, 2, im - 1, 3, jm - 1), p["arv"] * AYB(curv * dt * AXF(u)), 0.0)
    advy = np.where(p["interior"] & up, advy + curv_v, 0.0)
    return advx, advy


def _faces_second(a, axis, mask, inner):
    """``a`` at the west (south) faces and its undivided difference across them, from the two
    nearest centres (pom2k baropg)."""
    avg, diff = (AXB, dxb) if axis == "x" else (AYB, dyb)
    return avg(a), diff(a)


def _faces_mccalpin(a, axis, mask, inner):
    """Fourth-order face value and difference (McCalpin 1994) from the four nearest centres:
    (9 (a[i-1] + a[i]) - (a[i-2] + a[i+1])) / 16 and (27 (a[i] - a[i-1]) - (a[i+1] - a[i-2]))
    / 24, written as corrections of the two-point forms by the differences across the faces
    on either side. A neighbouring face on land (``mask`` 0) drops out of the correction;
    outside ``inner`` (the first two faces and the last one, whose wider stencil leaves the
    domain) the two-point forms stay."""
    avg, diff = (AXB, dxb) if axis == "x" else (AYB, dyb)
    d = diff(a) * mask
    ahead, behind = shift(d, axis, 1), shift(d, axis, -1)
    value = avg(a) * mask + (behind - ahead) / 16.0
    delta = d - (ahead - 2.0 * d + behind) / 24.0
    return np.where(inner, value, avg(a)), np.where(inner, delta, diff(a))


FACES = {"second": _faces_second, "mccalpin": _faces_mccalpin}


def baropg(rho, dt, p, cfg):
    """Baroclinic pressure gradient in sigma coordinates, integrated from the surface down:
    g D dz/dx of rho' minus the sigma-slope correction (pom2k ``baropg``; with
    ``pressure_gradient = "mccalpin"`` the horizontal differences and face values of rho' and
    D are fourth order, as in POM's ``baropg_mcc``; the vertical stays second order)."""
    if cfg.pressure_gradient not in FACES:
        raise ValueError(f"pressure_gradient must be one of {sorted(FACES)}, got "
                         f"{cfg.pressure_gradient!r}")
    faces = FACES[cfg.pressure_gradient]
    g, zz, kb, (jm, im) = cfg.grav, p["zz"], p["kb"], p["shape2"]
    rp = rho - p["rmean"]
    zzm = np.concatenate([np.zeros(1, zz.dtype), zz[:-1]])  # zz(k-1), unused at k = 1
    first = levels(kb, 1, 1)

    def integrate(axis, mask, inner):
        dface, ddif = faces(dt, axis, mask, inner)
        rface, rdif = faces(rp, axis, mask, inner)
        rs = rface * 2.0
        rsum = rs - shift(rs, "z", -1)  # 2 (rho'(k) - rho'(k-1)) at the face
        dd = 2.0 * dface
        top = 0.5 * g * (-zz[0]) * dd * rdif
        inc = (g * 0.25 * _col(zzm - zz) * dd * (rdif + shift(rdif, "z", -1))
               + g * 0.25 * _col(zzm + zz) * ddif * rsum)
        return csum_z(np.where(first, top, inc))

    # the fourth-order stencil reaches two centres back and one ahead of a face
    drhox = integrate("x", p["dum"], box((jm, im), 3, im - 1, 1, jm))
    drhoy = integrate("y", p["dvm"], box((jm, im), 1, im, 3, jm - 1))
    reg = p["interior"] & _upper(p)
    drhox = np.where(reg, AXB(dt) * drhox * p["dum"] * AXB(p["dy"]), 0.0)
    drhoy = np.where(reg, AYB(dt) * drhoy * p["dvm"] * AYB(p["dx"]), 0.0)
    # pom2k subtracts and adds rmean back in place; keep the same rounding
    return drhox, drhoy, rp + p["rmean"]


def smagorinsky(u, v, aam, p, cfg):
    """Horizontal viscosity A_M = horcon dx dy |deformation| (interior; edges keep aam)."""
    dx, dy = p["dx"], p["dy"]
    tension = (dxf(u) / dx) ** 2 + (dyf(v) / dy) ** 2
    shear = dyb(AYF(AXF(u))) / dy + dxb(AXF(AYF(v))) / dx
    horcon = p.get("horcon", cfg.horcon)  # a field when differentiated with respect to it
    new = horcon * dx * dy * safe_sqrt(tension + 0.5 * shear**2)
    return np.where(p["interior"] & _upper(p), new, aam)


def vertical_means(advx, advy, drhox, drhoy, aam, p):
    """Vertical integrals of the 3-D terms that force the external mode."""
    dz = _col(p["dz"])
    up = _upper(p)

    def vint(a):
        return np.sum(np.where(up, a * dz, 0.0), axis=0)

    return {"adx2d": vint(advx), "ady2d": vint(advy), "drx2d": vint(drhox),
            "dry2d": vint(drhoy), "aam2d": vint(aam)}


def adjust_velocity(u, v, utb, utf, vtb, vtf, dt, p):
    """Shift u(z), v(z) so that their depth means equal the external mode's transports."""
    dz, up = _col(p["dz"]), _upper(p)
    tu = np.sum(np.where(up, u * dz, 0.0), axis=0)
    u = np.where(up & p["i_ge2"], (u - tu) + (utb + utf) / (2.0 * AXB(dt)), u)
    tv = np.sum(np.where(up, v * dz, 0.0), axis=0)
    v = np.where(up & p["j_ge2"], (v - tv) + (vtb + vtf) / (2.0 * AYB(dt)), v)
    return u, v


def vertvl(u, v, dt, etf, etb, p, cfg):
    """Sigma-coordinate vertical velocity from continuity, integrated from the surface."""
    up = _upper(p)
    fx = np.where(p["corner"] & up, AXB(p["dy"]) * AXB(dt) * u, 0.0)
    fy = np.where(p["corner"] & up, AYB(p["dx"]) * AYB(dt) * v, 0.0)
    div = ((dxf(fx) + dyf(fy)) / (p["dx"] * p["dy"]) + (etf - etb) / (2.0 * cfg.dti))
    w_top = 0.5 * (p["vfluxb"] + p["vfluxf"])
    inc = np.where(up, _col(p["dz"]) * div, 0.0)
    w = csum_z(np.concatenate([w_top[None], inc[:-1]], axis=0))
    w = np.where(p["interior"], w, 0.0)
    return np.where(up, w * p["fsm"], w)


def advt1(fb, f, fclim, u, v, w, dt, aam, etb, etf, p, cfg):
    """Centred advection and horizontal diffusion of a tracer, one leapfrog step (advt1)."""
    up, dz, art, h = _upper(p), _col(p["dz"]), p["art"], p["h"]
    dti2 = 2.0 * cfg.dti
    anom = fb - fclim
    fx = AXB(dt) * AXB(f) * u - AXB(aam) * AXB(h) * cfg.tprni * dxb(anom) * p["dum"] / AXB(p["dx"])
    fy = AYB(dt) * AYB(f) * v - AYB(aam) * AYB(h) * cfg.tprni * dyb(anom) * p["dvm"] / AYB(p["dy"])
    fx = np.where(p["corner"] & up, AXB(p["dy"]) * fx, 0.0)
    fy = np.where(p["corner"] & up, AYB(p["dx"]) * fy, 0.0)
    top = levels(p["kb"], 1, 1)
    zflux = np.where(top, f * w, AZB(f) * w) * art
    zflux = np.where(up, zflux, 0.0)
    ff = dxf(fx) + dyf(fy) + dzf(zflux) / np.where(up, dz, 1.0)
    fb_used = anom + fclim  # pom2k restores fb after subtracting the climatology
    ff = (fb_used * (h + etb) * art - dti2 * ff) / ((h + etf) * art)
    return np.where(p["interior"] & up, ff, 0.0)


def _diffusion_rows(kcoef, dh, p, cfg):
    """Coefficients a, c of implicit vertical diffusion on layers 1..kb-1 (negated so the
    diagonal is positive): sub = c, diag = 1 - a - c, sup = a."""
    kb, dz, dzz, dti2 = p["kb"], p["dz"], p["dzz"], 2.0 * cfg.dti
    kk = kcoef[1:kb - 1] + cfg.umol
    a = -dti2 * kk / (_col(dz[0:kb - 2]) * _col(dzz[0:kb - 2]) * dh * dh)
    c = -dti2 * kk / (_col(dz[1:kb - 1]) * _col(dzz[0:kb - 2]) * dh * dh)
    zero = np.zeros_like(a[:1])
    return np.concatenate([a, zero]), np.concatenate([zero, c])


def vertical_diffusion(f, kcoef, dh, surface_flux, p, cfg, bottom_drag=None):
    """Solve (1 - dti2 d/dz K d/dz) f_new = f with a flux ``surface_flux`` at the top and,
    optionally, a quadratic drag ``bottom_drag`` (the drag coefficient times |u|) at the
    bottom (pom2k proft/profu/profv)."""
    kb, dz, dti2 = p["kb"], p["dz"], 2.0 * cfg.dti
    a, c = _diffusion_rows(kcoef, dh, p, cfg)
    diag = 1.0 - a - c
    if bottom_drag is not None:
        bottom = levels(kb - 1, kb - 1, kb - 1)
        diag = diag + np.where(bottom, bottom_drag * dti2 / (dz[kb - 2] * dh), 0.0)
    rhs = f[:kb - 1]
    rhs = rhs - np.where(levels(kb - 1, 1, 1), dti2 * surface_flux / (dz[0] * dh), 0.0)
    x = thomas(c, diag, a, rhs)
    return np.concatenate([x, f[kb - 1:]], axis=0)


def proft(f, kh, wfsurf, etf, p, cfg):
    """Implicit vertical diffusion of a tracer; surface flux wfsurf, insulated bottom."""
    return vertical_diffusion(f, kh, p["h"] + etf, wfsurf, p, cfg)


def advu(advx, u, v, w, ub, dt, egf, egb, etb, etf, drhox, p, cfg):
    """x-momentum: advection, Coriolis, surface-slope and baroclinic terms, leapfrog step."""
    up, aru, h = _upper(p), p["aru"], p["h"]
    vert = np.where(levels(p["kb"], 2, p["kb"] - 1) & p["i_ge2"], AXB(w) * AZB(u), 0.0)
    rhs = (advx + dzf(vert) * aru / np.where(up, _col(p["dz"]), 1.0)
           - aru * AXB(p["cor"] * dt * AYF(v))
           + cfg.grav * 0.5 * AXB(dt) * AXB(p["dy"])
           * (dxb(egf) + dxb(egb) + 2.0 * dxb(p["e_atmos"]))
           + drhox)
    uf = (2.0 * AXB(h + etb) * aru * ub - 2.0 * 2.0 * cfg.dti * rhs) / (2.0 * AXB(h + etf) * aru)
    return np.where(p["interior"] & up, uf, 0.0)


def advv(advy, u, v, w, vb, dt, egf, egb, etb, etf, drhoy, p, cfg):
    """y-momentum counterpart of ``advu``."""
    up, arv, h = _upper(p), p["arv"], p["h"]
    vert = np.where(levels(p["kb"], 2, p["kb"] - 1) & p["j_ge2"], AYB(w) * AZB(v), 0.0)
    rhs = (advy + dzf(vert) * arv / np.where(up, _col(p["dz"]), 1.0)
           + arv * AYB(p["cor"] * dt * AXF(u))
           + cfg.grav * 0.5 * AYB(dt) * AYB(p["dx"])
           * (dyb(egf) + dyb(egb) + 2.0 * dyb(p["e_atmos"]))
           + drhoy)
    vf = (2.0 * AYB(h + etb) * arv * vb - 2.0 * 2.0 * cfg.dti * rhs) / (2.0 * AYB(h + etf) * arv)
    return np.where(p["interior"] & up, vf, 0.0)


def profu(uf, ub, vb, km, etf, wubot, p, cfg):
    """Implicit vertical viscosity of u with wind stress on top and quadratic bottom drag;
    returns the new uf and the bottom stress wubot."""
    kb = p["kb"]
    dh = np.where(p["i_ge2"] & p["j_ge2"], AXB(p["h"] + etf), 1.0)
    drag = AXB(p["cbc"]) * safe_sqrt(ub[kb - 2] ** 2 + AXB(AYF(vb[kb - 2])) ** 2)
    x = vertical_diffusion(uf, AXB(km), dh, p["wusurf"], p, cfg, bottom_drag=drag)
    new = np.where(p["interior"], x * p["dum"], uf)
    wubot = np.where(p["interior"], -drag * new[kb - 2], wubot)
    return new, wubot


def profv(vf, ub, vb, km, etf, wvbot, p, cfg):
    """y counterpart of ``profu``."""
    kb = p["kb"]
    dh = np.where(p["i_ge2"] & p["j_ge2"], AYB(p["h"] + etf), 1.0)
    drag = AYB(p["cbc"]) * safe_sqrt(AYB(AXF(ub[kb - 2])) ** 2 + vb[kb - 2] ** 2)
    x = vertical_diffusion(vf, AYB(km), dh, p["wvsurf"], p, cfg, bottom_drag=drag)
    new = np.where(p["interior"], x * p["dvm"], vf)
    wvbot = np.where(p["interior"], -drag * new[kb - 2], wvbot)
    return new, wvbot
