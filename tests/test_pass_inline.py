"""Inlining: non-recursive calls are spliced in with fresh Vars; recursive calls stay."""

import numpy as np
from graphgen import check_pass, param_shapes, programs
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.ir import Graph
from autodiff.passes import inline
from autodiff.passes.rewrite import is_recursive, reachable_graphs


def calls(g: Graph):
    """(caller name, callee) of every call node reachable from ``g``."""
    return [(s.name, n.params["graph"]) for s in reachable_graphs(g) for n in s.body
            if n.prim.name == "call"]


@sciml.function
def affine(x):
    return x * 2.0 + 1.0


@sciml.function
def twice(x):
    return affine(affine(x))


def test_call_is_replaced_by_the_callee_body():
    g = sciml.make_graph(lambda x: affine(x) - x, np.zeros(3))
    h = sciml.verify(inline(g))
    assert [n.prim.name for n in h.body] == ["mul", "add", "sub"]
    x = np.array([1.0, -0.0, np.inf])
    np.testing.assert_array_equal(sciml.eval_graph(h, x), sciml.eval_graph(g, x))


def test_nested_and_repeated_calls_get_fresh_vars():
    g = sciml.make_graph(lambda x: twice(x) + affine(x), np.zeros(2))
    h = sciml.verify(inline(g))  # verify rejects a Var defined twice
    assert not calls(h)
    ids = [o.id for n in h.body for o in n.outputs]
    assert len(ids) == len(set(ids)) == 7
    x = np.array([0.5, -3.0])
    np.testing.assert_array_equal(sciml.eval_graph(h, x), (4 * x + 3) + (2 * x + 1))


def test_calls_inside_control_flow_are_inlined():
    def f(x, xs):
        return sciml.scan(lambda c, t: (affine(c) + t, affine(t)), x, xs)

    g = sciml.make_graph(f, 0.0, np.zeros(3))
    h = sciml.verify(inline(g))
    assert not calls(h)
    xs = np.array([1.0, 2.0, 3.0])
    out_g, out_h = sciml.eval_graph(g, 0.5, xs), sciml.eval_graph(h, 0.5, xs)
    for a, b in zip(out_g, out_h):
        np.testing.assert_array_equal(a, b)


@sciml.function
def power(x, n):
    """x ** n by squaring, recursing through cond."""
    return sciml.cond(
        n == 0,
        lambda: snp.ones_like(x),
        lambda: sciml.cond(n % 2 == 0, lambda: power(affine(x) * 0.0 + x * x, n // 2),
                           lambda: x * power(x, n - 1)),
    )


def test_recursive_calls_stay_and_their_bodies_are_inlined():
    g = sciml.make_graph(lambda x, n: power(x, n), 1.5, 7)
    h = sciml.verify(inline(g))
    remaining = calls(h)
    assert remaining and all(is_recursive(c) for _, c in remaining)
    assert all(c.name == "power" for _, c in remaining)
    callee = h.body[0].params["graph"]
    assert callee is not g.body[0].params["graph"]  # a new graph that calls itself
    assert any(c is callee for _, c in calls(callee))
    for n in range(6):
        assert float(sciml.eval_graph(h, 1.5, n)) == float(sciml.eval_graph(g, 1.5, n))
    assert float(sciml.eval_graph(h, 2.0, 10)) == 1024.0


def test_mutual_recursion_is_kept():
    @sciml.function
    def is_even(n):
        return sciml.cond(n == 0, lambda: n == n, lambda: is_odd(n - 1))

    @sciml.function
    def is_odd(n):
        return sciml.cond(n == 0, lambda: n != n, lambda: is_even(n - 1))

    g = sciml.make_graph(lambda n: is_even(n), 3)
    h = sciml.verify(inline(g))
    assert {c.name for _, c in calls(h)} == {"is_even", "is_odd"}
    assert [bool(sciml.eval_graph(h, k)) for k in range(5)] == [True, False, True, False, True]


def test_input_graph_is_not_changed():
    g = sciml.make_graph(lambda x: twice(x), np.zeros(2))
    text = str(g)
    inline(g)
    assert str(g) == text


@settings(max_examples=25, deadline=None)
@given(programs(loops=True), param_shapes(), st.data())
def test_inline_preserves_random_graphs(program, shapes, data):
    # Inlining a callee used twice copies its body twice: the node count may grow.
    _, h = check_pass(inline, program, shapes, data, may_grow=True)
    assert not calls(h)
