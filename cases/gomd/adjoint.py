"""Gradients of a GOMD diagnostic with respect to model parameters, through ``sciml.grad``.

The quantity: the volume-weighted mean kinetic energy of the 3-D flow after ``nsteps``
internal steps. The parameter ``theta`` enters one of three ways (``CONTROLS``):

* ``"wind"``: the wind stress is ``theta`` times the configured one (theta = 1 is the run),
* ``"horcon"``: the Smagorinsky coefficient of the horizontal viscosity is ``theta``,
* ``"temperature"``: the initial temperature is T0 + ``theta`` * a Gaussian warm anomaly
  centred on the seamount (theta = 0 is the run), a field-valued initial condition.

The steps run as ``checkpointed_fori_loop``: the reverse pass keeps O(log nsteps) states and
recomputes the rest, so memory stays small for long windows. Each step is ``model.step``
itself (the external sub-steps a ``fori_loop`` inside it), differentiated by sciml.

>>> from cases.gomd import load_config
>>> cfg = load_config("classic", im=9, jm=7, kb=5)
>>> f = kinetic_energy_after(cfg, nsteps=2, control="wind")
>>> round(float(f(1.0)), 10) > 0.0
True
"""

from __future__ import annotations

import numpy as np

from autodiff.checkpoint import checkpointed_fori_loop
from cases.gomd.config import Config
from cases.gomd.model import Params, init_state, make_params, step

CONTROLS = ("wind", "horcon", "temperature")


def mean_kinetic_energy(state: dict, params: Params):
    """Volume-weighted mean of (u^2 + v^2) / 2 over the wet cells of layers 1..kb-1."""
    p = params.fields
    kb = p["kb"]
    weight = (p["dz"][: kb - 1, None, None] * p["art"] * p["fsm"]
              * (p["h"] + state["et"]))
    ke = 0.5 * (state["u"][: kb - 1] ** 2 + state["v"][: kb - 1] ** 2)
    return np.sum(ke * weight) / np.sum(weight)


def warm_anomaly(params: Params) -> np.ndarray:
    """A Gaussian temperature anomaly (1 degC peak) over the seamount, decaying with depth."""
    p = params.fields
    x = p["east_c"] - np.mean(p["east_c"])
    y = p["north_c"] - np.mean(p["north_c"])
    r2 = x[None, :] ** 2 + y[:, None] ** 2
    depth = -p["zz"][:, None, None] * p["h"]
    upper = (np.arange(p["kb"]) < p["kb"] - 1)[:, None, None]
    shape = np.exp(-r2 / (2.0 * (4.0 * params.cfg.delx) ** 2)) * np.exp(-depth / 500.0)
    return np.where(upper, shape * p["fsm"], 0.0).astype(p["h"].dtype)


def kinetic_energy_after(cfg: Config, nsteps: int, control: str = "wind", spinup: int = 1):
    """``f(theta)``: mean kinetic energy after ``nsteps`` steps as a function of one control.

    ``spinup`` eager steps (at least 1: pom2k's cold-start step) produce the initial state,
    which does not depend on ``theta`` except through the temperature control.
    """
    if control not in CONTROLS:
        raise ValueError(f"kinetic_energy_after: control must be one of {CONTROLS}, "
                         f"got {control!r}")
    if nsteps < 1 or spinup < 1:
        raise ValueError(f"kinetic_energy_after: nsteps and spinup must be >= 1, got "
                         f"{nsteps}, {spinup}")
    params = make_params(cfg)
    state0 = init_state(params)
    for _ in range(spinup):
        state0 = step(state0, params)
    iint0 = state0.pop("iint")
    anomaly = warm_anomaly(params)

    def f(theta):
        fields, state = dict(params.fields), dict(state0)
        if control == "wind":
            fields["wusurf"] = theta * fields["wusurf"]
        elif control == "horcon":
            fields["horcon"] = theta
        else:
            state["t"] = state["t"] + theta * anomaly
            state["tb"] = state["tb"] + theta * anomaly
        par = Params(cfg, fields)

        def body(i, st):
            new = step({**st, "iint": iint0}, par)
            return {k: new[k] for k in st}

        final = checkpointed_fori_loop(0, nsteps, body, state)
        return mean_kinetic_energy(final, par)

    return f


def taylor_remainders(f, grad_f, theta: float, dtheta: float, hs=(1.0, 0.5, 0.25, 0.125)):
    """|f(theta + h dtheta) - f(theta) - h dtheta f'(theta)| for each h (Taylor test).

    A correct gradient makes these shrink by 4 per halving of h (second order); a wrong one
    by 2 at best.
    """
    f0, g0 = float(f(theta)), float(grad_f(theta))
    return [abs(float(f(theta + h * dtheta)) - f0 - h * dtheta * g0) for h in hs]
