"""Adaptive Dormand–Prince as traceable loops, for ODE solves that are differentiated.

The same DOPRI5 step and continuous extension as ``solvers.ode`` run inside one
``while_loop`` bounded by ``max_steps`` (so reverse mode can store the carries). Step-size
control sees values through ``stop_gradient``: the derivative is that of the computed
solution on its accepted step sequence, the usual discretise-then-differentiate convention.
"""

from __future__ import annotations

import numpy as np

from autodiff.ops.control import while_loop
from solvers.ode import dopri5_dense, dopri5_step

from . import numpy as snp


def dopri5_traced(rhs, t0, t1, y0, t_eval, rtol=1e-6, atol=1e-9, max_steps=2000):
    """Integrate ``dy/dt = rhs(t, y)`` and return ``y`` at ``t_eval`` (shape (len, n))."""
    te = np.asarray(t_eval, float)
    y0 = snp.asarray(y0, float)
    out0 = snp.where((te == t0)[:, None], y0[None, :], np.zeros((te.size, y0.shape[0])))
    powers = np.arange(5)

    def not_done(s):
        return s[0] < t1 - 1e-12 * max(1.0, abs(t1))

    def step(s):
        t, y, f, h, out = s
        h = snp.minimum(h, t1 - t)
        yn, fn, err, K = dopri5_step(lambda tt, yy, _p: rhs(tt, yy), t, y, h, f)
        scale = atol + rtol * snp.maximum(snp.abs(y), snp.abs(yn))
        e = snp.stop_gradient(snp.sqrt(snp.mean((err / scale) ** 2)))
        accept = e <= 1.0
        coeffs = dopri5_dense(y, h, K)                         # (5, n)
        frac = (te - t) / h                                     # (len,)
        vals = (frac[:, None] ** powers[None, :]) @ coeffs      # (len, n)
        hit = accept & (te > t) & (te <= t + h * (1 + 1e-12))
        out = snp.where(hit[:, None], vals, out)
        t = snp.where(accept, t + h, t)
        y = snp.where(accept, yn, y)
        f = snp.where(accept, fn, f)
        grow = snp.clip(0.9 * snp.maximum(e, 1e-10) ** -0.2, 0.2, 10.0)
        return t, y, f, snp.stop_gradient(h * grow), out

    f0 = rhs(t0, y0)
    h0 = 1e-3 * (t1 - t0)
    state = (snp.asarray(float(t0)), y0, f0, snp.asarray(h0), out0)
    return while_loop(not_done, step, state, max_steps=max_steps)[4]
