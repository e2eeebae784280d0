"""GOMD gradients: sciml.grad of the mean kinetic energy after N steps (checkpointed) against
finite differences, by the Taylor test (the first-order remainder shrinks at second order)."""

import numpy as np
import pytest

import sciml
from cases.gomd import load_config
from cases.gomd.adjoint import kinetic_energy_after, taylor_remainders

TINY = {"im": 9, "jm": 7, "kb": 5}
# (control, theta, direction): wind scale 1 -> 1.5, Smagorinsky 0.2 -> 0.3, warm anomaly 0 -> 1 K
CASES = {"wind": (1.0, 0.5), "horcon": (0.2, 0.1), "temperature": (0.0, 1.0)}


def check_taylor(cfg, nsteps, control):
    f = kinetic_energy_after(cfg, nsteps, control)
    theta, dtheta = CASES[control]
    g = float(sciml.grad(f)(theta))
    assert np.isfinite(g) and g != 0.0
    r = taylor_remainders(f, lambda t: g, theta, dtheta)
    rates = [r[i] / r[i + 1] for i in range(len(r) - 1)]
    # second order: each halving of the step divides the remainder by ~4 (first order: 2)
    assert all(3.5 < q < 4.5 for q in rates), (r, rates)
    eps = 1e-5 * dtheta
    fd = (float(f(theta + eps)) - float(f(theta - eps))) / (2 * eps)
    assert g == pytest.approx(fd, rel=1e-4)


def test_taylor_wind_amplitude():
    check_taylor(load_config("classic", **TINY), 1, "wind")


@pytest.mark.slow
@pytest.mark.parametrize("control", ["horcon", "temperature"])
def test_taylor_viscosity_and_initial_temperature(control):
    check_taylor(load_config("classic", **TINY), 2, control)


@pytest.mark.slow
def test_taylor_wind_20_steps_checkpointed():
    check_taylor(load_config("classic", im=17, jm=13, kb=7), 20, "wind")


def test_bad_control_is_refused():
    with pytest.raises(ValueError, match="control must be one of"):
        kinetic_energy_after(load_config("classic", **TINY), 1, "salinity")
