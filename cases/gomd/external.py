"""The external (2-D, depth-averaged) mode: pom2k's ``advave`` and the inner loop of the
main program, in GOMO's operator form.

Depth-mean continuity and momentum, leapfrog in time with step ``dte``:

    d(eta)/dt + div(D U) = 0
    d(D U)/dt + adv(U) - f D V + g D d(eta)/dx = -<baroclinic + 3-D advection terms> + tau
"""

from __future__ import annotations

import numpy as np

from autodiff.ops import control
from cases.gomd import boundary
from cases.gomd.regions import box
from sciml.ocean import AXB, AXF, AYB, AYF, dxb, dxf, dyb, dyf


def advave(d, ua, va, uab, vab, aam2d, p):
    """Depth-integrated horizontal advection and viscosity of (ua, va), times the cell area.

    Flux form: x-flux of u-momentum AXF(AXB(D) ua) AXF(ua) minus 2 D A_M d(uab)/dx, y-flux
    AXB(AYB(D) va) AYB(ua) minus the shear stress D A_M (du/dy + dv/dx) at cell corners.
    """
    dx, dy, s = p["dx"], p["dy"], p["shape2"]
    im, jm = p["im"], p["jm"]
    corner = box(s, 2, im, 2, jm)
    shear = (AXB(AYB(d)) * AXB(AYB(aam2d))
             * (dyb(uab) / AXB(AYB(dy)) + dxb(vab) / AXB(AYB(dx))))
    shear = np.where(corner, shear, 0.0)
    # u-momentum
    fx = AXF(AXB(d) * ua) * AXF(ua) - 2.0 * d * aam2d * dxf(uab) / dx
    fx = np.where(box(s, 2, im - 1, 2, jm), fx * dy, 0.0)
    fy = AXB(AYB(d) * va) * AYB(ua)
    fy = np.where(corner, (fy - shear) * AXB(AYB(dx)), 0.0)
    advua = np.where(p["interior"], dxb(fx) + dyf(fy), 0.0)
    # v-momentum
    fx = AYB(AXB(d) * ua) * AXB(va)
    fx = np.where(corner, (fx - shear) * AXB(AYB(dy)), 0.0)
    fy = AYF(AYB(d) * va) * AYF(va) - 2.0 * d * aam2d * dyf(vab) / dy
    fy = np.where(box(s, 2, im, 2, jm - 1), fy * dx, 0.0)
    advva = np.where(p["interior"], dxf(fx) + dyb(fy), 0.0)
    return advua, advva


def continuity(elb, d, ua, va, p, cfg):
    """Sea level after one leapfrog step of d(eta)/dt = -div(D U) - vflux."""
    fu = np.where(p["corner"], AXB(d) * AXB(p["dy"]) * ua, 0.0)
    fv = np.where(p["corner"], AYB(d) * AYB(p["dx"]) * va, 0.0)
    elf = elb + 2.0 * cfg.dte * (-(dxf(fu) + dyf(fv)) / p["art"] - p["vfluxf"])
    elf = np.where(p["interior"], elf, 0.0)
    return boundary.elevation(elf, p)


def momentum(e, f, forcing, p, cfg):
    """Depth-mean velocities after one leapfrog step (pom2k's uaf, vaf), before the open
    boundary condition. ``e`` holds the current external fields, ``f`` the new sea level
    elf; ``forcing`` the 3-D terms frozen over the external loop."""
    h, aru, arv, cor, g, a = p["h"], p["aru"], p["arv"], p["cor"], cfg.grav, cfg.alpha
    d, el, elb, elf, eat = e["d"], e["el"], e["elb"], f, p["e_atmos"]
    ua, va = e["ua"], e["va"]
    slope_x = (1.0 - 2.0 * a) * dxb(el) + a * (dxb(elb) + dxb(elf)) + dxb(eat)
    rhs_u = (forcing["adx2d"] + e["advua"] - aru * AXB(cor * d * AYF(va))
             + g * AXB(p["dy"]) * AXB(d) * slope_x
             + forcing["drx2d"] + aru * (p["wusurf"] - forcing["wubot"]))
    uaf = (2.0 * AXB(h + elb) * aru * e["uab"] - 4.0 * cfg.dte * rhs_u) / (
        2.0 * AXB(h + elf) * aru)
    uaf = np.where(box(p["shape2"], 2, p["im"], 2, p["jm"] - 1), uaf, 0.0)
    slope_y = (1.0 - 2.0 * a) * dyb(el) + a * (dyb(elb) + dyb(elf)) + dyb(eat)
    rhs_v = (forcing["ady2d"] + e["advva"] + arv * AYB(cor * d * AXF(ua))
             + g * AYB(p["dx"]) * AYB(d) * slope_y
             + forcing["dry2d"] + arv * (p["wvsurf"] - forcing["wvbot"]))
    vaf = (2.0 * AYB(h + elb) * arv * e["vab"] - 4.0 * cfg.dte * rhs_v) / (
        2.0 * AYB(h + elf) * arv)
    vaf = np.where(box(p["shape2"], 2, p["im"] - 1, 2, p["jm"]), vaf, 0.0)
    return boundary.depth_mean_velocity(uaf, vaf, el, p, cfg)


def substep(iext, e, forcing, p, cfg):
    """One external step iext (1-based) of the isplit steps inside an internal step.

    ``iext`` is a Python int on the eager path and a traced integer inside the compiled
    ``fori_loop``; for the latter, ``_branch`` makes the advection terms (every ``ispadv``
    steps) a ``cond`` and ``_when`` the time-averaged sea level near the end a select.
    The last step (no accumulation) is ``last_substep``.
    """
    isplit, smoth = cfg.isplit, cfg.smoth
    elf = continuity(e["elb"], e["d"], e["ua"], e["va"], p, cfg)
    advua, advva = _branch(iext % cfg.ispadv == 0,
                           lambda: advave(e["d"], e["ua"], e["va"], e["uab"], e["vab"],
                                          forcing["aam2d"], p),
                           lambda: (e["advua"], e["advva"]))
    e = {**e, "advua": advua, "advva": advva}
    uaf, vaf = momentum(e, elf, forcing, p, cfg)
    etf = _when(iext == isplit - 2, 0.25 * smoth * elf, e["etf"])
    etf = _when(iext == isplit - 1, etf + 0.5 * (1.0 - 0.5 * smoth) * elf, etf)
    return accumulate(_shift_levels(e, elf, uaf, vaf, etf, p, cfg), p, cfg)


def last_substep(e, forcing, p, cfg):
    """The isplit-th external step: finishes the averaged sea level, accumulates nothing."""
    elf = continuity(e["elb"], e["d"], e["ua"], e["va"], p, cfg)
    if cfg.isplit % cfg.ispadv == 0:
        advua, advva = advave(e["d"], e["ua"], e["va"], e["uab"], e["vab"], forcing["aam2d"], p)
        e = {**e, "advua": advua, "advva": advva}
    uaf, vaf = momentum(e, elf, forcing, p, cfg)
    etf = (e["etf"] + 0.5 * elf) * p["fsm"]
    return _shift_levels(e, elf, uaf, vaf, etf, p, cfg)


def _shift_levels(e, elf, uaf, vaf, etf, p, cfg):
    """Asselin filter on the leapfrog, then shift the time levels."""
    smoth = cfg.smoth
    ua = e["ua"] + 0.5 * smoth * (e["uab"] - 2.0 * e["ua"] + uaf)
    va = e["va"] + 0.5 * smoth * (e["vab"] - 2.0 * e["va"] + vaf)
    el = e["el"] + 0.5 * smoth * (e["elb"] - 2.0 * e["el"] + elf)
    d = p["h"] + elf
    return {**e, "elb": el, "el": elf, "d": d, "uab": ua, "ua": uaf, "vab": va, "va": vaf,
            "etf": etf, "vamax": np.max(np.abs(vaf))}


def _when(pred, new, old):
    """``new if pred else old`` for a Python bool, a select for a traced one."""
    if isinstance(pred, (bool, np.bool_)):
        return new if pred else old
    return np.where(pred, new, old)


def _branch(pred, then_fn, else_fn):
    """Run one of two functions: a Python ``if`` eagerly, a traced ``cond`` otherwise.

    The compiled loop body runs only the chosen branch, so the advection terms cost a sweep
    every ``ispadv``-th sub-step, as in pom2k, not on every one.
    """
    if isinstance(pred, (bool, np.bool_)):
        return then_fn() if pred else else_fn()
    return control.cond(pred, then_fn, else_fn)


def accumulate(e, p, cfg):
    """Time averages over the external steps: sea level for the 3-D pressure gradient and
    transports (utf, vtf) that the 3-D velocity is adjusted to."""
    isp2i = 1.0 / (2.0 * cfg.isplit)
    egf = e["egf"] + e["el"] * (1.0 / cfg.isplit)
    utf = e["utf"] + np.where(p["i_ge2"], e["ua"] * 2.0 * AXB(e["d"]) * isp2i, 0.0)
    vtf = e["vtf"] + np.where(p["j_ge2"], e["va"] * 2.0 * AYB(e["d"]) * isp2i, 0.0)
    return {**e, "egf": egf, "utf": utf, "vtf": vtf}


def start(e, p, cfg):
    """Initial time averages at the start of an external loop."""
    isp2i = 1.0 / (2.0 * cfg.isplit)
    egf = e["el"] * (1.0 / cfg.isplit)
    utf = np.where(p["i_ge2"], e["ua"] * 2.0 * AXB(e["d"]) * isp2i, 0.0)
    vtf = np.where(p["j_ge2"], e["va"] * 2.0 * AYB(e["d"]) * isp2i, 0.0)
    return {**e, "egf": egf, "utf": utf, "vtf": vtf}


def run_external(e, forcing, p, cfg, compiled=None):
    """The isplit external steps of one internal step.

    Eagerly (numpy arrays) a Python loop; when traced, the first isplit-1 steps are one
    ``fori_loop`` so that the compiled plan holds a single copy of the sub-step.
    """
    e = start(e, p, cfg)
    e = {**e, "vamax": np.max(np.abs(e["va"]))}
    traced = compiled if compiled is not None else not isinstance(e["ua"], np.ndarray)
    if traced:
        e = control.fori_loop(1, cfg.isplit, lambda i, c: substep(i, c, forcing, p, cfg), e)
    else:
        for iext in range(1, cfg.isplit):
            e = substep(iext, e, forcing, p, cfg)
    return last_substep(e, forcing, p, cfg)
