"""A physics-informed network for the 1-D Poisson problem, residual written in sympy:

    u''(x) + pi^2 sin(pi x) = 0 on (0, 1),  u(0) = u(1) = 0,  exact solution u = sin(pi x).

The network's second derivative comes from Taylor mode; its parameters train with Adam and
then L-BFGS on the compiled value-and-gradient graph.

    python -m examples.pinn_poisson
"""

from __future__ import annotations

import time

import numpy as np
import sympy as sp

import sciml.nn as nn
import sciml.optim as optim
from sciml.nn.pinn import pinn_loss


def make_net(width=16, seed=0):
    rng = np.random.default_rng(seed)
    return nn.SequentialCell(nn.Dense(1, width, weight_init="xavier_normal", rng=rng), nn.Tanh(),
                             nn.Dense(width, width, weight_init="xavier_normal", rng=rng),
                             nn.Tanh(), nn.Dense(width, 1, weight_init="xavier_normal", rng=rng))


def solve(n_points=32, adam_steps=200, lbfgs_iters=300, seed=0):
    """Train the PINN; returns (max error against sin(pi x) on a fine grid, net, params, info)."""
    x = sp.Symbol("x")
    u = sp.Function("u")
    residual = u(x).diff(x, 2) + sp.pi ** 2 * sp.sin(sp.pi * x)
    net = make_net(seed=seed)
    points = np.linspace(0, 1, n_points)[:, None]
    bc = (np.array([[0.0], [1.0]]), np.array([0.0, 0.0]))
    loss = pinn_loss(residual, net, [x], u, points, conditions=[bc], condition_weight=10.0)
    fun = nn.compiled(nn.value_and_grad(loss), "pinn_value_and_grad")
    params = {k: v.astype(np.float64) for k, v in net.parameters().items()}
    adam = optim.Adam(1e-2)
    state = adam.init(params)
    for _ in range(adam_steps):
        _, g = fun(params)
        params, state = adam.update(g, state, params)
    params, info = optim.LBFGS(max_iter=lbfgs_iters).minimize(fun, params)
    xs = np.linspace(0, 1, 201)[:, None]
    pred = net.apply(params, xs)[0][:, 0]
    return float(np.abs(pred - np.sin(np.pi * xs[:, 0])).max()), net, params, info


def main():
    t0 = time.perf_counter()
    err, _, _, info = solve()
    print(f"max |u - sin(pi x)| = {err:.2e}; final loss {info['loss'][-1]:.2e} after "
          f"{info['iterations']} L-BFGS iterations, {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
