"""A physics-informed network for the viscous Burgers equation, residual written in sympy:

    u_t + u u_x - nu u_xx = 0,  x in (-1, 1), t in (0, 1),  u(+-1, t) = 0,

with the Cole-Hopf solution u = 2 nu pi e^{-nu pi^2 t} sin(pi x) / (a + e^{-nu pi^2 t} cos(pi x))
(a > 1) giving the initial condition and the reference. The network's first and second input
derivatives come from Taylor mode; training is Adam then L-BFGS on the compiled graph.

    python -m examples.pinn_burgers
"""

from __future__ import annotations

import time

import numpy as np
import sympy as sp

import sciml.nn as nn
import sciml.optim as optim
from sciml.nn.pinn import pinn_loss

NU, A = 0.1, 2.0


def exact(x, t):
    e = np.exp(-NU * np.pi ** 2 * t)
    return 2 * NU * np.pi * e * np.sin(np.pi * x) / (A + e * np.cos(np.pi * x))


def make_net(width=20, seed=0):
    rng = np.random.default_rng(seed)
    return nn.SequentialCell(nn.Dense(2, width, weight_init="xavier_normal", rng=rng), nn.Tanh(),
                             nn.Dense(width, width, weight_init="xavier_normal", rng=rng),
                             nn.Tanh(), nn.Dense(width, 1, weight_init="xavier_normal", rng=rng))


def solve(n_side=12, adam_steps=300, lbfgs_iters=2000, seed=0):
    """Train; returns (max error against the exact solution on a 41x21 grid, info)."""
    x, t = sp.symbols("x t")
    u = sp.Function("u")
    residual = u(x, t).diff(t) + u(x, t) * u(x, t).diff(x) - NU * u(x, t).diff(x, 2)
    g = np.stack(np.meshgrid(np.linspace(-1, 1, n_side), np.linspace(0, 1, n_side)), -1)
    points = g.reshape(-1, 2)
    xs = np.linspace(-1, 1, 2 * n_side)
    ts = np.linspace(0, 1, n_side)
    initial = (np.stack([xs, 0 * xs], 1), exact(xs, 0.0))
    walls = (np.concatenate([np.stack([-1 + 0 * ts, ts], 1), np.stack([1 + 0 * ts, ts], 1)]),
             np.zeros(2 * n_side))
    net = make_net(seed=seed)
    loss = pinn_loss(residual, net, [x, t], u, points, conditions=[initial, walls],
                     condition_weight=10.0)
    fun = nn.compiled(nn.value_and_grad(loss), "burgers_value_and_grad")
    params = {k: v.astype(np.float64) for k, v in net.parameters().items()}
    adam = optim.Adam(5e-3)
    state = adam.init(params)
    for _ in range(adam_steps):
        _, gr = fun(params)
        params, state = adam.update(gr, state, params)
    params, info = optim.LBFGS(max_iter=lbfgs_iters).minimize(fun, params)
    gx, gt = np.meshgrid(np.linspace(-1, 1, 41), np.linspace(0, 1, 21))
    pred = net.apply(params, np.stack([gx.ravel(), gt.ravel()], 1))[0][:, 0]
    return float(np.abs(pred - exact(gx.ravel(), gt.ravel())).max()), info


def main():
    t0 = time.perf_counter()
    err, info = solve()
    print(f"max |u - u_exact| = {err:.2e}; final loss {info['loss'][-1]:.2e} after "
          f"{info['iterations']} L-BFGS iterations, {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
