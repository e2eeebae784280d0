"""Whole-plan code: plans with loops run as one compiled function, matching the interpreter."""

from __future__ import annotations

import numpy as np

import sciml
import sciml.numpy as snp
from autodiff.interpret import eval_graph
from kernels.jit import jit
from kernels.plancode import PlanCode


def diffuse(u, c):
    def step(i, v):
        return v + c * (snp.shift(v, (1, 0), "periodic") + snp.shift(v, (-1, 0), "periodic")
                        - 2.0 * v)

    return sciml.fori_loop(0, 7, step, u)


def _ref(f, *args):
    return eval_graph(sciml.make_graph(f, *args), *args)


def test_loop_runs_in_one_compiled_function():
    u = np.random.default_rng(0).random((13, 9))
    c = jit(diffuse).lower(u, 0.1)
    assert isinstance(c.plan, PlanCode)
    assert "for it" in c.plan.source and "call_kernel(addresses[0]" in c.plan.source
    np.testing.assert_allclose(jit(diffuse)(u, 0.1), _ref(diffuse, u, 0.1), rtol=1e-13)


def test_runtime_bounds_scalar_carries_and_nesting():
    def f(u, n, a):
        def outer(i, carry):
            v, s = carry
            v = sciml.fori_loop(0, 3, lambda j, w: np.sin(w) * a + w, v)
            return v * 0.5, s + (v * v).sum()

        return sciml.fori_loop(1, n, outer, (u, 0.0))

    u = np.linspace(-1, 1, 11)
    g = jit(f)
    for n in (1, 2, 5):  # n = 1: no iteration at all
        got = g(u, np.int64(n), 0.3)
        want = _ref(f, u, np.int64(n), 0.3)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    assert isinstance(g.lower(u, np.int64(2), 0.3).plan, PlanCode)
    assert len(g.compiled) == 1  # the bound is an argument: no retrace, no recompile


def test_results_are_not_plan_buffers():
    u = np.ones((4, 4))
    g = jit(diffuse)
    a = g(u, 0.1)
    b = g(u * 2, 0.1)
    assert not np.shares_memory(a, b)
    np.testing.assert_allclose(a * 2, b, rtol=1e-14)


def test_plans_without_loops_run_step_by_step():
    c = jit(lambda x: np.sin(x) + 1.0).lower(np.zeros(3))
    assert not isinstance(c.plan, PlanCode)


def test_several_kernels_run_in_one_function(monkeypatch):
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "0")  # recomputing a would make one kernel

    def f(u, v):
        a = np.sin(u) * v
        b = snp.shift(a, (0, 1), "edge") - a  # a stencil of a computed value: a second kernel
        return b.sum(axis=1, keepdims=True), b * 2.0, u

    u, v = np.random.default_rng(3).random((2, 6, 5))
    c = jit(f).lower(u, v)
    assert isinstance(c.plan, PlanCode) and c.count_kernels() >= 2
    got = jit(f)(u, v)
    want = _ref(f, u, v)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-13)
    assert not np.shares_memory(got[2], u)


def _same(f, *args, rtol=1e-12):
    g = jit(f)
    got, want = g(*args), _ref(f, *args)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, (tuple, list)) else (want,)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=rtol)
    c = g.lower(*args)
    assert isinstance(c.plan, PlanCode), str(c)
    return c


def test_while_loop_runs_in_the_plan_function():
    def f(u, tol):
        def cond(c):
            v, k = c
            return (np.abs(v).max() > tol) & (k < 100)

        def body(c):
            v, k = c
            return 0.5 * (snp.shift(v, (1,), "periodic") + v) * 0.9, k + 1

        return sciml.while_loop(cond, body, (u, 0))

    u = np.random.default_rng(1).random(17)
    for tol in (2.0, 0.1, 1e-3):  # zero, a few and many iterations
        c = _same(f, u, tol)
    assert "while True" in c.plan.source


def test_cond_and_scan_run_in_the_plan_function():
    def f(u, flag):
        v = sciml.cond(flag, lambda w: np.sin(w) * 2.0, lambda w: np.cos(w) + w, u)

        def step(carry, x):
            s = carry + x * x
            return s, s.sum()

        total, sums = sciml.scan(step, np.zeros(u.shape[1]), v)
        return total, sums

    u = np.random.default_rng(2).random((6, 5))
    for flag in (True, False):
        c = _same(f, u, flag)
    assert "for ti" in c.plan.source and "if sel" in c.plan.source


def test_reverse_scan_with_scalar_slices():
    def f(xs, c0):
        return sciml.scan(lambda c, x: (c * 0.5 + x, c * x + 1.0), c0, xs, reverse=True)

    _same(f, np.linspace(0, 1, 9), 2.0)
