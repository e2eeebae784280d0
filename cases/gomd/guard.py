"""Blow-up guard: stop on NaN or runaway velocity, naming the step, field and grid index."""

from __future__ import annotations

import numpy as np

WATCHED = ("ua", "va", "el", "u", "v", "t", "s")
VELOCITIES = ("ua", "va", "u", "v")


class BlowUpError(RuntimeError):
    """The model state became non-finite or a velocity exceeded the limit. Causes: a time
    step beyond the CFL limit, an unstable setting, or a bug. The message names the step,
    the field and the 1-based grid index (k, j, i); the last good checkpoint is kept."""


def check(state, limit: float) -> None:
    """Raise BlowUpError if any watched field is non-finite or a velocity exceeds ``limit``."""
    for name in WATCHED:
        a = np.asarray(state[name])
        bad = ~np.isfinite(a)
        if name in VELOCITIES:
            bad = bad | (np.abs(np.where(np.isfinite(a), a, 0.0)) > limit)
        if np.any(bad):
            idx = np.unravel_index(int(np.argmax(bad)), a.shape)
            where = ", ".join(f"{ax}={n + 1}" for ax, n in zip("kji"[-a.ndim:], idx))
            value = a[idx]
            what = "non-finite" if not np.isfinite(value) else f"|{name}| > {limit}"
            raise BlowUpError(f"blow-up at internal step {state['iint']}: {name} = {value!r} "
                              f"({what}) at {where}")
