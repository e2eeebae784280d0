"""Control flow: closures, nesting, loops, switch, recursion, pytrees, eager vs traced, errors.

Every traced case is checked against the same Python function run eagerly (sciml's control flow
runs plain Python on concrete values) or against a closed form.
"""

import numpy as np
import pytest

import sciml
import sciml.numpy as snp
from autodiff.errors import ArityError, DTypeError, ShapeError, TracerError
from autodiff.passes import optimize


def traced(f, *args):
    """Trace ``f`` on ``args``, verify the graph and evaluate it on the same ``args``."""
    g = sciml.verify(sciml.make_graph(f, *args))
    return sciml.eval_graph(g, *args)


def assert_tree_close(a, b, rtol=1e-13):
    la, ta = sciml.tree_flatten(a)
    lb, tb = sciml.tree_flatten(b)
    assert ta == tb and len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol)


def agree(f, *args):
    """Traced and eager runs agree, and so does the optimized graph."""
    g = sciml.verify(sciml.make_graph(f, *args))
    eager = f(*args)
    assert_tree_close(sciml.eval_graph(g, *args), eager)
    assert_tree_close(sciml.eval_graph(sciml.verify(optimize(g)), *args), eager)
    return eager


# ---------------------------------------------------------------------------------------------
# Closures and nesting


def test_closures_capture_outer_traced_values():
    def f(x, y):
        scale = snp.sum(y)
        return sciml.cond(x[0] > 0, lambda: x * scale, lambda: x - y)

    g = sciml.make_graph(f, np.ones(2), np.ones(2))
    cond = g.body[-1]
    # The predicate, then the union of both branches' captures: x, scale (true), y (false).
    assert len(cond.inputs) == 4
    assert all(len(b.params) == 3 for b in cond.params["branches"])
    for x in (np.array([1.0, 2.0]), np.array([-1.0, 2.0])):
        agree(f, x, np.array([0.5, 4.0]))


def test_cond_inside_scan_inside_fori_loop():
    def f(x, xs):
        w = snp.max(xs)

        def outer(i, c):
            def step(carry, t):
                y = sciml.cond(t > i, lambda: carry * w + t, lambda: carry - t * i)
                return y, y * 2.0

            carry, ys = sciml.scan(step, c, xs)
            return carry + snp.sum(ys) * 1e-3

        return sciml.fori_loop(0, 3, outer, x)

    out = agree(f, np.float64(0.25), np.array([0.5, 1.5, 2.5, -1.0]))
    assert np.isfinite(out)


def test_while_inside_cond_and_cond_inside_while():
    def f(x):
        def grow(v):
            return sciml.while_loop(lambda u: u < 100.0, lambda u: sciml.cond(
                u > 10.0, lambda: u * 3.0, lambda: u + 7.0), v)

        return sciml.cond(x > 0, lambda: grow(x), lambda: x * 0.0)

    assert float(agree(f, 1.0)) == 135.0  # 1 -> 8 -> 15 -> 45 -> 135
    assert float(agree(f, -2.0)) == -0.0


# ---------------------------------------------------------------------------------------------
# Loops


def test_scan_reverse_with_several_carries_xs_and_ys():
    def f(a, b, xs, zs):
        def step(carry, x):
            s, p = carry
            t, z = x
            return (s + t, p * z), {"run": s + t, "both": t * z}

        return sciml.scan(step, (a, b), (xs, zs), reverse=True)

    xs, zs = np.array([1.0, 2.0, 3.0]), np.array([2.0, -1.0, 0.5])
    (s, p), ys = agree(f, 0.0, 1.0, xs, zs)
    assert float(s) == 6.0 and float(p) == -1.0
    np.testing.assert_array_equal(ys["run"], [6.0, 5.0, 3.0])  # accumulated from the end
    np.testing.assert_array_equal(ys["both"], xs * zs)


def test_scan_without_xs_uses_length():
    def f(x):
        return sciml.scan(lambda c, _: (c * 2.0, c), x, None, length=4)

    c, ys = agree(f, 1.0)
    assert float(c) == 16.0
    np.testing.assert_array_equal(ys, [1.0, 2.0, 4.0, 8.0])


def test_fori_loop_with_traced_bounds():
    def f(lo, hi, x):
        return sciml.fori_loop(lo, hi, lambda i, c: c + i * i, x)

    g = sciml.make_graph(f, 0, 3, 0.0)
    assert g.body[0].prim.name == "fori_loop"
    for lo, hi in ((0, 5), (2, 4), (3, 1)):
        want = float(sum(i * i for i in range(lo, hi)))
        assert float(sciml.eval_graph(g, lo, hi, 0.0)) == want
        assert float(f(lo, hi, 0.0)) == want


def test_while_loop_with_max_steps():
    def f(x):
        return sciml.while_loop(lambda v: v < 1e9, lambda v: v * 2.0, x, max_steps=5)

    assert float(agree(f, 1.0)) == 32.0  # stopped by max_steps, not by the predicate
    g = sciml.make_graph(f, 1.0)
    assert g.body[0].params["max_steps"] == 5
    assert float(sciml.eval_graph(g, 5e8)) == 1e9  # predicate stops first


def test_loops_with_pytree_carries():
    def f(state):
        def body(i, s):
            return {"pos": s["pos"] + s["vel"], "vel": s["vel"] * 0.5, "n": s["n"] + 1}

        out = sciml.fori_loop(0, 3, body, state)
        w = sciml.while_loop(lambda t: t[0] < 10.0, lambda t: (t[0] + t[1], t[1]),
                             (out["pos"][0], 2.0))
        return out, w

    state = {"pos": np.zeros(2), "vel": np.array([1.0, -2.0]), "n": np.int64(0)}
    out, w = agree(f, state)
    np.testing.assert_array_equal(out["pos"], [1.75, -3.5])
    assert int(out["n"]) == 3 and float(w[0]) == 11.75


# ---------------------------------------------------------------------------------------------
# switch


def test_switch_with_integer_index_clamps_like_jax():
    branches = [lambda a: a + 1.0, lambda a: a * 10.0, lambda a: -a]

    def f(i, x):
        return sciml.switch(i, branches, x)

    g = sciml.make_graph(f, 0, 2.0)
    for i, want in ((-3, 3.0), (0, 3.0), (1, 20.0), (2, -2.0), (9, -2.0)):
        assert float(sciml.eval_graph(g, i, 2.0)) == want
        assert float(f(i, 2.0)) == want


# ---------------------------------------------------------------------------------------------
# Recursion


@sciml.function
def power(x, n):
    """x ** n by squaring, recursing through cond."""
    return sciml.cond(
        n == 0,
        lambda: snp.ones_like(x),
        lambda: sciml.cond(n % 2 == 0, lambda: power(x * x, n // 2), lambda: x * power(x, n - 1)),
    )


def test_power_by_squaring_recursion():
    g = sciml.verify(sciml.make_graph(lambda x, n: power(x, n), 1.5, 3))
    callee = g.body[0].params["graph"]
    assert callee.name == "power" and "@power  # recursive" in str(g)
    for n in (0, 1, 2, 7, 10, 31):
        assert float(sciml.eval_graph(g, 1.5, n)) == pytest.approx(1.5 ** n, rel=1e-14)
        assert float(power(1.5, n)) == pytest.approx(1.5 ** n, rel=1e-14)  # eager: plain Python
    x = np.array([2.0, -0.5])
    gv = sciml.make_graph(lambda x, n: power(x, n), x, 3)
    np.testing.assert_allclose(sciml.eval_graph(gv, x, 9), x ** 9, rtol=1e-14)


def test_mutual_recursion():
    @sciml.function
    def is_even(n):
        return sciml.cond(n == 0, lambda: n == n, lambda: is_odd(n - 1))

    @sciml.function
    def is_odd(n):
        return sciml.cond(n == 0, lambda: n != n, lambda: is_even(n - 1))

    g = sciml.verify(sciml.make_graph(lambda n: (is_even(n), is_odd(n)), 3))
    for k in range(7):
        even, odd = sciml.eval_graph(g, k)
        assert bool(even) == (k % 2 == 0) and bool(odd) == (k % 2 == 1)


def test_recursion_without_base_case_is_a_clear_error():
    @sciml.function
    def forever(x):
        return forever(x - 1.0)

    with pytest.raises(TracerError, match="recurses on every path.*base case"):
        sciml.make_graph(lambda x: forever(x), 1.0)


def test_recursion_that_never_reaches_its_base_case_at_run_time():
    @sciml.function
    def down(n):
        return sciml.cond(n == 0, lambda: n, lambda: down(n - 1))

    g = sciml.make_graph(lambda n: down(n), 3)
    assert int(sciml.eval_graph(g, 20)) == 0
    with pytest.raises(RecursionError, match="call: graph 'down' recursed deeper.*base case"):
        sciml.eval_graph(g, -1)


def test_recursive_graph_function_may_not_close_over_outer_tracers():
    def f(x, y):
        @sciml.function
        def g(n):
            return sciml.cond(n <= 0, lambda: y, lambda: g(n - 1))

        return g(x)

    with pytest.raises(TracerError, match="closes over a traced value"):
        sciml.make_graph(f, 3, 1.0)


# ---------------------------------------------------------------------------------------------
# Errors


def test_carry_shape_change_is_an_error():
    with pytest.raises(ShapeError, match="fori_loop: carry 0 enters the body as f64.* leaves it "
                                         r"as f64\[2\]"):
        sciml.make_graph(lambda x: sciml.fori_loop(0, 3, lambda i, c: snp.ones(2) * c, x), 1.0)
    with pytest.raises(ShapeError, match="scan: carry 0"):
        sciml.make_graph(lambda x: sciml.scan(lambda c, t: (snp.stack([c, t]), t), x,
                                              np.zeros(3)), 1.0)


def test_carry_dtype_promotion_is_an_error():
    # A body that promotes the carry to a higher kind (int -> float, float -> complex) is
    # rejected; a weak Python scalar or a same-kind result is cast back to the carry dtype.
    with pytest.raises(ShapeError, match="while_loop: carry 0 enters the body as i64.* leaves it "
                                         "as f64.*convert it"):
        sciml.make_graph(lambda x: sciml.while_loop(lambda c: c < 3, lambda c: c + 0.5, x), 1)
    with pytest.raises(ShapeError, match="leaves it as c128"):
        sciml.make_graph(lambda x: sciml.fori_loop(0, 3, lambda i, c: c * 1j, x), 1.0)
    g = sciml.make_graph(lambda x: sciml.fori_loop(0, 3, lambda i, c: c * 2.0, x),
                         np.float32(1.0))
    assert g.outputs[0].aval.dtype == np.float32


def test_carry_structure_change_is_an_error():
    with pytest.raises(ArityError, match="scan: the body returns structure"):
        sciml.make_graph(lambda x: sciml.scan(lambda c, t: ((c, c), t), x, np.zeros(3)), 1.0)


def test_branch_output_mismatch_is_an_error():
    with pytest.raises(ShapeError, match="cond: output 0 has different shapes"):
        sciml.make_graph(lambda x: sciml.cond(x > 0, lambda: x, lambda: snp.ones(3)), 1.0)
    with pytest.raises(ArityError, match="cond: branches return different structures"):
        sciml.make_graph(lambda x: sciml.cond(x > 0, lambda: (x, x), lambda: x), 1.0)


def test_bad_predicates_are_errors():
    with pytest.raises(DTypeError, match="while_loop: cond_fun must return a bool scalar"):
        sciml.make_graph(lambda x: sciml.while_loop(lambda c: c, lambda c: c + 0.5, x), 1.0)
    with pytest.raises(ShapeError, match="cond: the predicate must be a scalar"):
        sciml.make_graph(lambda x: sciml.cond(x > 0, lambda: x, lambda: -x), np.ones(2))
    with pytest.raises(ArityError, match="exactly two branches"):
        sciml.make_graph(lambda x: sciml.switch(x > 0, [lambda: x] * 3), 1.0)


def test_python_if_on_a_tracer_points_to_sciml_cond():
    def f(x):
        if x > 0:
            return x
        return -x

    with pytest.raises(TracerError, match=r"Python bool\(\).*test_control_flow.py:\d+.*sciml.cond"):
        sciml.make_graph(f, 1.0)
