"""optimize: the passes in sequence to a fixed point; SCIML_DEBUG=verify; the pass doctests."""

import doctest
import importlib

import numpy as np
import pytest
from graphgen import check_pass, param_shapes, programs
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.errors import VerifyError
from autodiff.ir import Apply, Graph
from autodiff.passes import PIPELINE, graph_key, inline, optimize

MODULES = ["autodiff.passes", "autodiff.passes.inline", "autodiff.passes.dce",
           "autodiff.passes.cse", "autodiff.passes.fold", "autodiff.passes.simplify"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    # autodiff.passes.<name> is shadowed by the function of the same name: import the module.
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


def test_passes_cooperate():
    @sciml.function
    def scale(x, k):
        return x * k

    def f(x):
        two = snp.iota((), np.float64) + 2.0  # folds to 2.0
        y = scale(x, two - 1.0) + scale(x, two - 1.0)  # inline, fold, simplify x*1, cse
        unused = snp.exp(y)  # noqa: F841
        return sciml.cond(True, lambda: y, lambda: -y)  # constant predicate: call -> inline

    g = sciml.make_graph(f, np.zeros(3))
    h = optimize(g)
    assert [n.prim.name for n in h.body] == ["add"]
    assert h.body[0].inputs == (h.params[0], h.params[0])
    x = np.array([1.0, -0.0, np.nan])
    np.testing.assert_array_equal(sciml.eval_graph(h, x), sciml.eval_graph(g, x))


def test_fixed_point_is_reached():
    g = sciml.make_graph(lambda x: snp.sin(x) * 1.0 + snp.sin(x), np.zeros(2))
    h = optimize(g)
    assert graph_key(optimize(h)) == graph_key(h)
    assert all(graph_key(run(h)) == graph_key(h) for run in PIPELINE)


def test_recursive_graph_is_optimized_and_still_recurses():
    @sciml.function
    def fib(n):
        small = n < 2
        return sciml.cond(small, lambda: n * 1, lambda: fib(n - 1) + fib(n - 2) + (n - n) * 0)

    g = sciml.make_graph(lambda n: fib(n), 10)
    h = optimize(g)
    assert h.count_nodes() < g.count_nodes()
    assert [int(sciml.eval_graph(h, k)) for k in range(10)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]


def test_debug_flag_verifies_after_each_pass(monkeypatch):
    from autodiff.passes import debug_verify

    g = sciml.make_graph(lambda x: x * 1.0, np.zeros(2))
    # A graph that breaks SSA: the pipeline's first pass copies it, verify must catch it.
    node = g.body[0]
    bad = Graph(g.params, [node, Apply(node.prim, node.inputs, node.params, node.outputs)],
                g.outputs, "bad")
    monkeypatch.setenv("SCIML_DEBUG", "")
    assert not debug_verify()
    optimize(bad)  # no check without the flag (the duplicate is merged silently)
    monkeypatch.setenv("SCIML_DEBUG", "fuse,verify")
    assert debug_verify()
    with pytest.raises(VerifyError, match="defined twice"):
        optimize(bad)


@settings(max_examples=25, deadline=None)
@given(programs(loops=True), param_shapes(), st.data())
def test_optimize_preserves_random_graphs(program, shapes, data):
    # Inlining a callee used twice may add nodes; the other passes never do.
    g, h = check_pass(optimize, program, shapes, data, may_grow=True)
    assert h.count_nodes() <= inline(g).count_nodes()
    assert graph_key(optimize(h)) == graph_key(h)  # optimize is idempotent


@settings(max_examples=20, deadline=None)
@given(programs(loops=True), param_shapes(), st.data())
def test_passes_preserve_gradient_graphs_of_random_programs(program, shapes, data):
    # Derivative graphs bring other primitives (broadcast_in_dim, reductions from transposes,
    # selects from maximum's rule) and many zeros and ones for the passes to work on.
    from graphgen import arrays, assert_same, run

    from autodiff.api import grad
    from autodiff.interpret import eval_graph_flat
    from autodiff.passes import cse, dce, fold, simplify

    def f(*xs):
        return sum(snp.sum(o) for o in run(program, *xs))

    g = sciml.make_graph(grad(f, argnums=tuple(range(len(shapes)))),
                         *[np.zeros(s) for s in shapes])
    xs = [data.draw(arrays(s)) for s in shapes]
    want = eval_graph_flat(g, xs)
    for run_pass in (inline, dce, cse, fold, simplify, optimize):
        h = sciml.verify(run_pass(g))
        assert_same(eval_graph_flat(h, xs), want)
