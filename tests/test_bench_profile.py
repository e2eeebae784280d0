"""bench/profile.py: per-kernel times of a compiled plan, loop bodies included."""

import numpy as np

import sciml
from bench.profile import profile, table


def test_profile_lists_every_step_and_the_loop_body():
    def f(x, y):
        z = np.exp(x) * y + np.sum(x, axis=0)
        z = sciml.fori_loop(0, 3, lambda i, u: u * 0.5 + np.roll(u, 1, axis=1), z)
        return z.sum()

    x, y = np.random.rand(8, 40), np.random.rand(8, 40)
    c = sciml.jit(f).lower(x, y)
    rows, bodies = profile(c, x, y)
    plan = getattr(c.plan, "inner", c.plan)
    assert len(rows) == len(plan.steps)
    assert all(r.seconds > 0 for r in rows)
    assert "fori_loop" in [r.name for r in rows]
    (body,) = bodies.values()
    assert body and all(r.where.startswith("body:") for r in body)
    text = table(rows, top=2)
    assert "total over" in text and len(text.splitlines()) == 3
