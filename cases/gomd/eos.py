"""Equation of state (pom2k ``dens``, after Mellor 1991) and the speed of sound (``profq``)."""

from __future__ import annotations

import numpy as np


def density(s, t, h, zz, fsm, cfg):
    """(rho - 1000) / rhoref from potential temperature and salinity, with the pressure
    correction of a UNESCO fit at p = rhoref g (-zz h) in bar. Computed on layers 1..kb-1;
    layer kb stays 0 as in pom2k."""
    tr = t + cfg.tbias
    sr = s + cfg.sbias
    tr2 = tr * tr
    tr3 = tr2 * tr
    tr4 = tr3 * tr
    p = cfg.grav * cfg.rhoref * (-zz[:, None, None] * h) * 1.0e-5
    rhor = (-0.157406 + 6.793952e-2 * tr - 9.095290e-3 * tr2 + 1.001685e-4 * tr3
            - 1.120083e-6 * tr4 + 6.536332e-9 * tr4 * tr)
    rhor = (rhor + (0.824493 - 4.0899e-3 * tr + 7.6438e-5 * tr2 - 8.2467e-7 * tr3
                    + 5.3875e-9 * tr4) * sr
            + (-5.72466e-3 + 1.0227e-4 * tr - 1.6546e-6 * tr2) * _pow_three_halves(np.abs(sr))
            + 4.8314e-4 * sr * sr)
    cr = 1449.1 + 0.0821 * p + 4.55 * tr - 0.045 * tr2 + 1.34 * (sr - 35.0)
    rhor = rhor + 1.0e5 * p / (cr * cr) * (1.0 - 2.0 * p / (cr * cr))
    rho = rhor / cfg.rhoref * fsm
    kb = t.shape[0]
    surface_layers = (np.arange(kb) < kb - 1)[:, None, None]
    return np.where(surface_layers, rho, 0.0)


def _pow_three_halves(a):
    """a**1.5 for a >= 0 as a * sqrt(a): within 2 ulp of pow, and a compiled loop vectorises
    it (a general pow does not), which made the density kernel 2.6x faster. At a = 0 (the
    bottom layer's zero salinity) the derivative is 0, as pow's: sqrt is never evaluated at 0,
    where its derivative is infinite and the product rule would give 0 * inf = NaN."""
    pos = a > 0.0
    safe = np.where(pos, a, 1.0)
    return np.where(pos, safe * np.sqrt(safe), 0.0)


def sound_speed(s, t, h, zz, cfg):
    """Speed of sound (m/s) used by the turbulence closure's buoyancy term; p in decibar."""
    tp = t + cfg.tbias
    sp = s + cfg.sbias
    p = cfg.grav * cfg.rhoref * (-zz[:, None, None] * h) * 1.0e-4
    cc = 1449.1 + 0.00821 * p + 4.55 * tp - 0.045 * tp**2 + 1.34 * (sp - 35.0)
    return cc / np.sqrt((1.0 - 0.01642 * p / cc) * (1.0 - 0.40 * p / cc**2))
