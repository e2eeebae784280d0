"""pom2k's printed diagnostics: totals, means and the maxima of its printed subsample."""

from __future__ import annotations

import numpy as np


def totals(state, params) -> dict:
    """Total volume and area, mean sea level, volume-mean T and S, total salt (pom2k's
    print section: volumes use dt = h + et and the backward tracers tb, sb)."""
    cfg, p = params
    darea = p["dx"] * p["dy"] * p["fsm"]
    dt = p["h"] + state["et"]
    dz = p["dz"][: p["kb"] - 1, None, None]
    dvol = darea * dt * dz
    vtot = float(np.sum(dvol))
    atot = float(np.sum(darea))
    taver = float(np.sum(state["tb"][:-1] * dvol)) / vtot
    saver = float(np.sum(state["sb"][:-1] * dvol)) / vtot
    eaver = float(np.sum(state["et"] * darea)) / atot
    return {"vtot": vtot, "atot": atot, "eaver": eaver, "taver": taver, "saver": saver,
            "tsalt": (saver + cfg.sbias) * vtot}


def printed_maxima(state, params, iskp: int = 4, jskp: int = 3) -> dict:
    """max |.| over pom2k's printed subsample: i = 1, 1+iskp, ...; j = 1, 1+jskp, ...;
    u, v at k = 1, kb/2, kb-1 (1-based), depth means and sea level at the surface.

    ``el_high`` and ``el_low`` are the highest and lowest sea level on the same points
    (signed; max|el| is the larger of their magnitudes)."""
    kb = params.cfg.kb
    ks = np.array([1, kb // 2, kb - 1]) - 1

    def sub2(a):
        return float(np.max(np.abs(a[::jskp, ::iskp])))

    el = state["el"][::jskp, ::iskp]

    def sub3(a):
        return float(np.max(np.abs(a[ks][:, ::jskp, ::iskp])))

    return {"max_u": sub3(state["u"]), "max_v": sub3(state["v"]),
            "max_ua": sub2(state["ua"]), "max_uab": sub2(state["uab"]),
            "max_el": sub2(state["el"]), "max_elb": sub2(state["elb"]),
            "el_high": float(np.max(el)), "el_low": float(np.min(el))}


def report(state, params) -> dict:
    """Everything above plus the model time (days)."""
    cfg = params.cfg
    out = {"iint": int(state["iint"]), "time_days": state["iint"] * cfg.dti / 86400.0}
    out.update(totals(state, params))
    out.update(printed_maxima(state, params))
    return out


def format_report(r: dict) -> str:
    """Two lines in pom2k's layout, plus the maxima."""
    return (f"time = {r['time_days']:9.4f} days, iint = {r['iint']}\n"
            f"vtot = {r['vtot']:16.7e}   atot = {r['atot']:16.7e}  eaver = {r['eaver']:16.7e}\n"
            f"taver = {r['taver']:16.7e}  saver = {r['saver']:16.7e}  tsalt = {r['tsalt']:16.7e}\n"
            f"max|u| = {r['max_u']:.4f}  max|v| = {r['max_v']:.4f}  max|ua| = {r['max_ua']:.4f}"
            f"  max|el| = {r['max_el']:.4f}"
            f" (el from {r['el_low']:.4f} to {r['el_high']:.4f})")
