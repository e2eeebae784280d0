"""GOMD: the GOMO / pom2k ocean model (seamount case) as a plain-array reference.

Hydrostatic Boussinesq primitive equations in sigma coordinates on an Arakawa C grid with a
free surface and mode splitting, following pom2k's discretisation (Blumberg and Mellor) and
GOMO's operator notation (Huang et al., GMD 12, 4729-4749, 2019). Arrays are ``[k, j, i]``.

Run ``python -m cases.gomd --help``. The model step is a pure function
``step(state, params) -> state`` built from ``sciml.ocean`` operators; see docs/gomd.md.
"""

from cases.gomd.config import Config, load_config
from cases.gomd.model import Params, init_state, make_params, run, step

__all__ = ["Config", "load_config", "Params", "make_params", "init_state", "step", "run"]
