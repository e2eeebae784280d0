"""GOMD state, parameters and the pure step function ``step(state, params) -> state``.

One internal step (pom2k's main loop body, mode 3):

1. 3-D momentum advection, baroclinic pressure gradient, Smagorinsky viscosity, and their
   vertical integrals that force the external mode (``internal.advct``, ``baropg``, ...).
2. ``isplit`` external (2-D) steps of sea level and depth-mean velocity (``external``).
3. (not on the very first step) adjust u, v to the external transports; vertical velocity;
   turbulence (q2, q2l); temperature and salinity; momentum with implicit vertical
   viscosity; Asselin filter and shift of the time levels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cases.gomd import boundary, external, internal, turbulence
from cases.gomd.config import Config
from cases.gomd.eos import density
from cases.gomd.grid import (
    areas_masks,
    bathymetry,
    geostrophic_boundary_elevation,
    horizontal_grid,
    sigma_levels,
)
from cases.gomd.regions import box, col, row
from sciml.ocean import Grid

STATE_2D = ("ua", "uab", "va", "vab", "el", "elb", "et", "etb", "egb", "utb", "vtb",
            "wubot", "wvbot")
STATE_3D = ("u", "ub", "v", "vb", "w", "t", "tb", "s", "sb", "rho", "q2", "q2b", "q2l",
            "q2lb", "km", "kh", "kq", "l", "aam")


class Params(NamedTuple):
    """What a step reads but never changes: the settings and the static fields."""

    cfg: Config
    fields: dict


def make_params(cfg: Config) -> Params:
    """Static fields of the seamount case: grid, metrics, masks, forcing, boundary data."""
    dtype = np.dtype(cfg.precision)
    kl2 = cfg.kl2 or cfg.kb - 2
    # small test grids: keep the logarithmic surface layers above kl2
    z, zz = sigma_levels(cfg.kb, max(min(cfg.kl1, kl2 - 1), 2), kl2)
    dx, dy, east_c, north_c = horizontal_grid(cfg)
    h = bathymetry(cfg, east_c, north_c)
    art, aru, arv, fsm, dum, dvm = areas_masks(dx, dy, h)
    im, jm, kb = cfg.im, cfg.jm, cfg.kb
    s2 = (jm, im)
    interior = box(s2, 2, im - 1, 2, jm - 1)
    f = {"im": im, "jm": jm, "kb": kb, "shape2": s2, "h": h, "dx": dx, "dy": dy,
         "art": art, "aru": aru, "arv": arv, "fsm": fsm, "dum": dum, "dvm": dvm,
         "z": z, "zz": zz, "east_c": east_c, "north_c": north_c,
         "cor": np.full(s2, cfg.f0), "interior": interior,
         "corner": box(s2, 2, im, 2, jm), "i_ge2": box(s2, 2, im, 1, jm),
         "j_ge2": box(s2, 1, im, 2, jm), "below_last": box(s2, 1, im - 1, 1, jm - 1)}
    f["dz"] = np.concatenate([z[:-1] - z[1:], [0.0]])
    f["dzz"] = np.concatenate([zz[:-1] - zz[1:], [0.0]])
    f["grid"] = Grid(dx=dx, dy=dy, z=z, zz=zz)
    f.update(_forcing(cfg, f))
    f.update(_initial_tracers(cfg, f))
    f.update(_open_boundary_data(cfg, f))
    bottom_z = (1.0 + zz[kb - 2]) * h / cfg.z0b
    f["cbc"] = np.clip((cfg.kappa / np.log(bottom_z)) ** 2, cfg.cbcmin, cfg.cbcmax)
    return Params(cfg, {k: _cast(v, dtype) for k, v in f.items()})


def _cast(v, dtype):
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v.astype(dtype)
    return v


def _forcing(cfg: Config, f):
    """Surface forcing: the zonal wind stress (tapered by the v-masks as in pom2k)."""
    jm, im, dvm = cfg.jm, cfg.im, f["dvm"]
    j = np.arange(1, jm + 1)[:, None]
    taper = 0.25 * (np.roll(dvm, -1, 0) + np.roll(np.roll(dvm, -1, 0), 1, 1)
                    + np.roll(dvm, 1, 1) + dvm)
    wusurf = cfg.wind * np.cos(np.pi * (j - 1) / (jm - 1)) * taper
    zero = np.zeros((jm, im))
    return {"wusurf": np.where(f["interior"], wusurf, 0.0), "wvsurf": zero,
            "e_atmos": zero, "vfluxf": zero, "vfluxb": zero, "wtsurf": zero, "wssurf": zero}


def _initial_tracers(cfg: Config, f):
    """T = 5 + 15 exp(z / 1000 m), S = 35 on layers 1..kb-1; their density is rmean."""
    kb, zz, h = cfg.kb, f["zz"], f["h"]
    upper = (np.arange(kb) < kb - 1)[:, None, None]
    t = np.where(upper, 5.0 + 15.0 * np.exp(zz[:, None, None] * h / 1000.0) - cfg.tbias, 0.0)
    s = np.where(upper, 35.0 - cfg.sbias + 0.0 * t, 0.0)
    rmean = density(s, t, h, zz, f["fsm"], cfg)
    return {"tclim": t, "sclim": s, "rmean": rmean}


def _open_boundary_data(cfg: Config, f):
    """Inflow, its geostrophic sea level, and T/S held at the open boundaries."""
    im, jm = cfg.im, cfg.jm
    ua = cfg.inflow * f["dum"]
    inner = (np.arange(1, jm + 1) >= 2) & (np.arange(1, jm + 1) <= jm - 1)
    t, s = f["tclim"], f["sclim"]
    return {
        "ua0": ua,
        "uabw": np.where(inner, col(ua, 2), 0.0),
        "uabe": np.where(inner, col(ua, im - 1), 0.0),
        "ele": geostrophic_boundary_elevation(cfg, ua, f["dy"], f["fsm"], im - 2, im - 1),
        "elw": geostrophic_boundary_elevation(cfg, ua, f["dy"], f["fsm"], 1, 1),
        "tbe": col(t, im), "tbw": col(t, 1), "sbe": col(s, im), "sbw": col(s, 1),
        "tbn": row(t, jm), "tbs": row(t, 1), "sbn": row(s, jm), "sbs": row(s, 1),
    }


def init_state(params: Params) -> dict:
    """The state at rest except for the uniform inflow (pom2k's initial conditions)."""
    cfg, f = params
    dtype = np.dtype(cfg.precision)
    kb, s2 = cfg.kb, f["shape2"]
    z2 = np.zeros(s2, dtype)
    z3 = np.zeros((kb,) + s2, dtype)
    upper = (np.arange(kb) < kb - 1)[:, None, None]
    h = f["h"]
    u0 = np.where(upper, f["ua0"], 0.0).astype(dtype)
    ell = np.broadcast_to(0.1 * h, z3.shape).astype(dtype)
    q2b = np.full(z3.shape, cfg.small, dtype)
    kh = ell * np.sqrt(q2b)
    st = {k: z2 for k in STATE_2D}
    st.update({k: z3 for k in STATE_3D})
    st.update(ua=f["ua0"], uab=f["ua0"], u=u0, ub=u0, t=f["tclim"], tb=f["tclim"],
              s=f["sclim"], sb=f["sclim"], l=ell, q2b=q2b, q2lb=ell * q2b, kh=kh, km=kh,
              kq=kh, aam=np.full(z3.shape, cfg.aam_init, dtype),
              q2=np.where(upper, q2b, 0.0).astype(dtype),
              q2l=np.where(upper, ell * q2b, 0.0).astype(dtype))
    st["rho"] = density(st["s"], st["t"], h, f["zz"], f["fsm"], cfg).astype(dtype)
    st["etf"] = z2
    st["iint"] = 0
    return st


def step(state: dict, params: Params) -> dict:
    """One internal step: a new state dict; the input is not modified.

    Three phases (``compiled.CompiledStep`` compiles them together as one plan): the 3-D
    terms that force the external mode, the isplit external steps, and the 3-D update.
    """
    cfg, p = params
    e, forcing, inner = step_forcing(state, params)
    e = external.run_external(e, forcing, p, cfg)
    return step_update(state, e, inner, params)


def step_forcing(state: dict, params: Params):
    """Phase 1: 3-D advection, pressure gradient, viscosity and their vertical means.

    Returns the external-mode fields ``e``, its frozen ``forcing`` and the 3-D terms
    ``inner`` that phase 3 needs again.
    """
    cfg, p = params
    st = state
    h = p["h"]
    d = h + st["el"]
    dt = h + st["et"]
    advx, advy = internal.advct(st["u"], st["v"], st["ub"], st["vb"], dt, st["aam"], p)
    drhox, drhoy, rho = internal.baropg(st["rho"], dt, p, cfg)
    aam = internal.smagorinsky(st["u"], st["v"], st["aam"], p, cfg)
    forcing = internal.vertical_means(advx, advy, drhox, drhoy, aam, p)
    advua, advva = external.advave(d, st["ua"], st["va"], st["uab"], st["vab"],
                                   forcing["aam2d"], p)
    forcing = {**forcing, "adx2d": forcing["adx2d"] - advua, "ady2d": forcing["ady2d"] - advva,
               "wubot": st["wubot"], "wvbot": st["wvbot"]}
    e = {"ua": st["ua"], "uab": st["uab"], "va": st["va"], "vab": st["vab"], "el": st["el"],
         "elb": st["elb"], "d": d, "advua": advua, "advva": advva, "etf": st["etf"]}
    inner = {"dt": dt, "advx": advx, "advy": advy, "drhox": drhox, "drhoy": drhoy,
             "aam": aam, "rho": rho}
    return e, forcing, inner


def step_update(state: dict, e: dict, inner: dict, params: Params) -> dict:
    """Phase 3: take the external mode's results into the state and update the 3-D fields."""
    cfg, p = params
    st = state
    new = {**st, "ua": e["ua"], "uab": e["uab"], "va": e["va"], "vab": e["vab"],
           "el": e["el"], "elb": e["elb"], "aam": inner["aam"], "rho": inner["rho"],
           "vamax": e["vamax"]}
    if st["iint"] >= 1:  # pom2k skips the 3-D update on the first step of a cold start
        new = internal_update(new, e, inner["dt"], inner["advx"], inner["advy"],
                              inner["drhox"], inner["drhoy"], p, cfg)
    return {**new, "egb": e["egf"], "etb": st["et"], "et": e["etf"], "etf": e["etf"],
            "utb": e["utf"], "vtb": e["vtf"], "iint": st["iint"] + 1}


def internal_update(st, e, dt, advx, advy, drhox, drhoy, p, cfg):
    """The 3-D part of a step (velocity adjustment, w, turbulence, T/S, u/v)."""
    etf, etb = e["etf"], st["etb"]
    u, v = internal.adjust_velocity(st["u"], st["v"], st["utb"], e["utf"], st["vtb"], e["vtf"],
                                    dt, p)
    st = {**st, "u": u, "v": v, "dt": dt}
    w = internal.vertvl(u, v, dt, etf, etb, p, cfg)
    st = {**st, "w": w}
    st = turbulence_update(st, etf, etb, p, cfg)
    st = tracer_update(st, etf, etb, p, cfg)
    st = momentum_update(st, e, etf, etb, advx, advy, drhox, drhoy, p, cfg)
    st.pop("dt")
    return st


def turbulence_update(st, etf, etb, p, cfg):
    dt = st["dt"]
    q2f = turbulence.advq(st["q2b"], st["q2"], st["u"], st["v"], st["w"], st["aam"], dt, etb,
                          etf, p, cfg)
    q2lf = turbulence.advq(st["q2lb"], st["q2l"], st["u"], st["v"], st["w"], st["aam"], dt,
                           etb, etf, p, cfg)
    q2f, q2lf, km, kh, kq, ell, q2b, q2lb = turbulence.profq(
        q2f, q2lf, st, etf, st["wubot"], st["wvbot"], p, cfg)
    q2f, q2lf = boundary.turbulence(q2f, q2lf, st["q2"], st["q2l"], st["u"], st["v"], p, cfg)
    q2, q2l = asselin(st["q2"], q2b, q2f, cfg), asselin(st["q2l"], q2lb, q2lf, cfg)
    return {**st, "q2b": q2, "q2": q2f, "q2lb": q2l, "q2l": q2lf, "km": km, "kh": kh,
            "kq": kq, "l": ell}


def tracer_update(st, etf, etb, p, cfg):
    dt = st["dt"]
    args = (st["u"], st["v"], st["w"], dt, st["aam"], etb, etf, p, cfg)
    tf = internal.advt1(_fill_bottom(st["tb"]), _fill_bottom(st["t"]), p["tclim"], *args)
    sf = internal.advt1(_fill_bottom(st["sb"]), _fill_bottom(st["s"]), p["sclim"], *args)
    tf = internal.proft(tf, st["kh"], p["wtsurf"], etf, p, cfg)
    sf = internal.proft(sf, st["kh"], p["wssurf"], etf, p, cfg)
    tf, sf = boundary.tracers(tf, sf, st["t"], st["s"], st["u"], st["v"], st["w"], dt, p, cfg)
    t = _fill_bottom(asselin(st["t"], st["tb"], tf, cfg))
    s = _fill_bottom(asselin(st["s"], st["sb"], sf, cfg))
    rho = density(sf, tf, p["h"], p["zz"], p["fsm"], cfg)
    return {**st, "tb": t, "t": _fill_bottom(tf), "sb": s, "s": _fill_bottom(sf), "rho": rho}


def momentum_update(st, e, etf, etb, advx, advy, drhox, drhoy, p, cfg):
    dt = st["dt"]
    uf = internal.advu(advx, st["u"], st["v"], st["w"], st["ub"], dt, e["egf"], st["egb"], etb,
                       etf, drhox, p, cfg)
    vf = internal.advv(advy, st["u"], st["v"], st["w"], st["vb"], dt, e["egf"], st["egb"], etb,
                       etf, drhoy, p, cfg)
    uf, wubot = internal.profu(uf, st["ub"], st["vb"], st["km"], etf, st["wubot"], p, cfg)
    vf, wvbot = internal.profv(vf, st["ub"], st["vb"], st["km"], etf, st["wvbot"], p, cfg)
    uf, vf = boundary.velocity(uf, vf, st["u"], st["v"], p, cfg)
    u = filter_velocity(st["u"], st["ub"], uf, p, cfg)
    v = filter_velocity(st["v"], st["vb"], vf, p, cfg)
    return {**st, "ub": u, "u": uf, "vb": v, "v": vf, "wubot": wubot, "wvbot": wvbot}


def asselin(now, before, after, cfg):
    """Asselin filter of the leapfrog: the filtered 'now' becomes the next 'before'."""
    return now + 0.5 * cfg.smoth * (after + before - 2.0 * now)


def filter_velocity(now, before, after, p, cfg):
    """Asselin filter that leaves the depth mean alone (pom2k removes its vertical mean)."""
    upper = (np.arange(p["kb"]) < p["kb"] - 1)[:, None, None]
    dz = p["dz"][:, None, None]
    mean = np.sum(np.where(upper, (after + before - 2.0 * now) * dz, 0.0), axis=0)
    return np.where(upper, now + 0.5 * cfg.smoth * (after + before - 2.0 * now - mean), now)


def _fill_bottom(a):
    """Copy layer kb-1 into the unused level kb (pom2k does this before tracer advection)."""
    return np.concatenate([a[:-1], a[-2:-1]], axis=0)


def run(state, params, nsteps, callback=None):
    """Advance ``nsteps`` internal steps; ``callback(state)`` after each (may raise)."""
    for _ in range(nsteps):
        state = step(state, params)
        if callback is not None:
            callback(state)
    return state
