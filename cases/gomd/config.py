"""Settings of a GOMD run: presets, a TOML file, command-line overrides.

``classic`` is pom2k's seamount (``iproblem=1``) exactly as its public source runs it:
eastward inflow 0.2 m/s and pom2k's zonal wind stress 1e-4 cos(pi (j-1)/(jm-1)) m^2/s^2
(tapered by the v-masks). The 1-day reference numbers in docs/gomd.md need that wind.
``classic-nowind`` is the same without wind.
``gomo`` follows GOMO's seamount input: inflow 0.1 m/s and the zonal wind stress
1e-4 cos(pi (j-1)/(jm-1)) m^2/s^2. ``closed`` walls the basin in on all four sides with no
inflow and no forcing; it is the conservation check.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field

PRESETS: dict[str, dict] = {
    "classic": {"inflow": 0.2, "wind": 1.0e-4, "closed": False},
    "classic-nowind": {"inflow": 0.2, "wind": 0.0, "closed": False},
    "gomo": {"inflow": 0.1, "wind": 1.0e-4, "closed": False},
    "closed": {"inflow": 0.0, "wind": 0.0, "closed": True},
}


@dataclass(frozen=True)
class Config:
    """All settings; the defaults are pom2k's seamount values (SI units, time in seconds)."""

    preset: str = "classic"
    im: int = 65
    jm: int = 49
    kb: int = 21
    days: float = 1.0
    dte: float = 6.0  # external (2-D) time step
    isplit: int = 30  # dti = isplit * dte
    inflow: float = 0.2  # eastward current through the open boundaries (m/s)
    wind: float = 1.0e-4  # amplitude of the zonal wind stress (m^2/s^2)
    closed: bool = False  # walls on all four sides instead of open east/west
    # seamount geometry
    delx: float = 8000.0
    depth: float = 4500.0
    delh: float = 0.9
    radius: float = 25000.0
    f0: float = 1.0e-4
    kl1: int = 6
    kl2: int = 0  # 0 means kb - 2, pom2k's choice
    # physical constants (pom2k names)
    rhoref: float = 1025.0
    tbias: float = 0.0
    sbias: float = 0.0
    grav: float = 9.806
    kappa: float = 0.4
    z0b: float = 0.01
    cbcmin: float = 0.0025
    cbcmax: float = 1.0
    horcon: float = 0.2
    tprni: float = 0.2
    umol: float = 2.0e-5
    hmax: float = 4500.0
    vmaxl: float = 100.0
    ispadv: int = 5
    smoth: float = 0.10
    alpha: float = 0.225
    aam_init: float = 500.0
    small: float = 1.0e-9
    # numerics and run control
    pressure_gradient: str = "second"  # "second" (pom2k baropg) | "mccalpin" (fourth order)
    precision: str = "float64"
    velocity_limit: float = 10.0  # blow-up guard on |u|, |v| (m/s)
    output_every: float = 1.0 / 24.0  # diagnostics interval (days)
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def dti(self) -> float:
        return self.dte * self.isplit

    @property
    def iend(self) -> int:
        """Number of internal steps, rounded like pom2k (at least 2)."""
        return max(int(self.days * 86400.0 / self.dti + 0.5), 2)

    def fingerprint(self) -> dict:
        """The settings a checkpoint must share with the run that restarts from it."""
        keys = ("preset", "im", "jm", "kb", "dte", "isplit", "inflow", "wind", "closed",
                "delx", "depth", "delh", "radius", "f0", "precision", "pressure_gradient")
        return {k: getattr(self, k) for k in keys}


def parse_grid(text: str) -> tuple[int, int, int]:
    """'65x49x21' -> (65, 49, 21)."""
    parts = text.lower().split("x")
    if len(parts) != 3:
        raise ValueError(f"grid must look like IMxJMxKB (e.g. 65x49x21), got {text!r}")
    im, jm, kb = (int(p) for p in parts)
    if im < 5 or jm < 5 or kb < 5:
        raise ValueError(f"grid {text!r} too small: need at least 5 points on each axis")
    return im, jm, kb


def load_config(preset: str = "classic", path: str | None = None, **overrides) -> Config:
    """A Config from a preset, then a TOML file's keys, then explicit overrides (None skipped)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values: dict = {"preset": preset, **PRESETS[preset]}
    if path is not None:
        with open(path, "rb") as f:
            values.update(tomllib.load(f))
    values.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known: {sorted(names)}")
    cfg = Config(**values)
    if cfg.pressure_gradient not in ("second", "mccalpin"):
        raise ValueError(f"pressure_gradient must be 'second' or 'mccalpin', got "
                         f"{cfg.pressure_gradient!r}")
    if cfg.precision not in ("float64", "float32"):
        raise ValueError(f"precision must be float64 or float32, got {cfg.precision!r}")
    return cfg
