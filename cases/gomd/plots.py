"""A few PNG plots of a GOMD state (matplotlib, Agg backend)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _xy(p):
    x = (p["east_c"] + 0.5 * p["dx"][0]) / 1000.0
    y = (p["north_c"] + 0.5 * p["dy"][:, 0]) / 1000.0
    return x, y


def sea_level(state, params, path):
    """Sea level (m) over the seamount's depth contours."""
    _, p = params
    x, y = _xy(p)
    fig, ax = plt.subplots(figsize=(7, 5))
    el = np.where(p["fsm"] > 0, state["el"], np.nan)
    m = ax.pcolormesh(x, y, el, cmap="RdBu_r", shading="auto")
    ax.contour(x, y, p["h"], levels=[1000, 2000, 3000, 4000], colors="k", linewidths=0.5)
    fig.colorbar(m, ax=ax, label="sea level (m)")
    ax.set(xlabel="x (km)", ylabel="y (km)", title="Sea level")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def surface_currents(state, params, path, step=2):
    """Surface velocity averaged to cell centres, as arrows."""
    _, p = params
    x, y = _xy(p)
    u, v = state["u"][0], state["v"][0]
    uc = 0.5 * (u + np.concatenate([u[:, 1:], u[:, -1:]], axis=1))
    vc = 0.5 * (v + np.concatenate([v[1:], v[-1:]], axis=0))
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.contour(x, y, p["h"], levels=[1000, 2000, 3000, 4000], colors="0.6", linewidths=0.5)
    ax.quiver(x[::step], y[::step], uc[::step, ::step], vc[::step, ::step])
    ax.set(xlabel="x (km)", ylabel="y (km)", title="Surface currents")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def temperature_section(state, params, path):
    """Temperature in the east-west section through the seamount's centre."""
    cfg, p = params
    x, _ = _xy(p)
    j = cfg.jm // 2
    depth = p["zz"][:-1, None] * (p["h"][j] + state["el"][j])[None, :]
    fig, ax = plt.subplots(figsize=(7, 4))
    m = ax.pcolormesh(np.broadcast_to(x, depth.shape), depth, state["t"][:-1, j],
                      cmap="viridis", shading="auto")
    fig.colorbar(m, ax=ax, label="T (degC)")
    ax.set(xlabel="x (km)", ylabel="z (m)", title=f"Temperature, section j = {j + 1}")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_all(state, params, folder):
    """The three plots into ``folder``; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    out = {}
    for name, fn in (("sea_level", sea_level), ("surface_currents", surface_currents),
                     ("temperature_section", temperature_section)):
        out[name] = os.path.join(folder, f"{name}.png")
        fn(state, params, out[name])
    return out
