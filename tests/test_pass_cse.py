"""Common-subexpression elimination: merges equal nodes, exactly, subgraphs included."""

import numpy as np
from graphgen import check_pass, param_shapes, programs
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.passes import cse, dce, graph_key


def names(g):
    return [n.prim.name for n in g.body]


def run(g, *xs):
    return sciml.eval_graph(g, *xs)


def test_repeated_expression_is_computed_once():
    g = sciml.make_graph(lambda x: snp.exp(x) * 3.0 + snp.exp(x) * 3.0, np.zeros(3))
    h = sciml.verify(cse(g))
    assert names(h) == ["exp", "mul", "add"]
    add = h.body[-1]
    assert add.inputs[0] is add.inputs[1]
    x = np.array([0.0, -np.inf, np.nan])
    np.testing.assert_array_equal(run(h, x), run(g, x))


def test_commutative_operands_are_sorted_where_exact():
    g = sciml.make_graph(lambda x, y: (x + y) - (y + x) + (x * y) / (y * x), np.zeros(2),
                         np.zeros(2))
    assert names(g).count("add") == 3 and names(g).count("mul") == 2
    assert names(cse(g)).count("add") == 2 and names(cse(g)).count("mul") == 1


def test_float_maximum_keeps_operand_order():
    # np.maximum(-0.0, 0.0) is 0.0 but np.maximum(0.0, -0.0) is -0.0: not exactly commutative.
    def f(x, y):
        return snp.maximum(x, y), snp.maximum(y, x)

    g = sciml.make_graph(f, np.zeros(1), np.zeros(1))
    h = cse(g)
    assert names(h).count("maximum") == 2
    a, b = run(h, np.array([-0.0]), np.array([0.0]))
    assert not np.signbit(a[0]) and np.signbit(b[0])
    gi = sciml.make_graph(f, np.zeros(1, np.int64), np.zeros(1, np.int64))
    assert names(cse(gi)).count("maximum") == 1


def test_constants_are_compared_by_value_bits():
    def f(x):
        return (x * np.float64(2.0), x * np.float64(2.0), x + np.float64(0.0),
                x + np.float64(-0.0), x * np.float64("nan"), x * np.float64("nan"))

    h = sciml.verify(cse(sciml.make_graph(f, np.zeros(2))))
    assert names(h) == ["mul", "add", "add", "mul"]  # 0.0 and -0.0 differ, NaN equals NaN


def test_different_params_do_not_merge():
    g = sciml.make_graph(lambda x: snp.sum(x, axis=0) + snp.sum(x, axis=1), np.zeros((2, 2)))
    assert names(cse(g)).count("reduce_sum") == 2


def test_structurally_equal_subgraphs_merge():
    def f(x):
        a = sciml.cond(x[0] > 0, lambda: x * 2.0, lambda: x - 1.0)
        b = sciml.cond(x[0] > 0, lambda: x * 2.0, lambda: x - 1.0)
        c = sciml.cond(x[0] > 0, lambda: x * 2.0, lambda: x - 2.0)
        return a + b + c

    g = sciml.make_graph(f, np.zeros(2))
    conds = [n for n in g.body if n.prim.name == "cond"]
    assert conds[0].params["branches"][0] is not conds[1].params["branches"][0]
    h = sciml.verify(dce(cse(g)))
    assert names(h).count("cond") == 2
    x = np.array([1.0, -2.0])
    np.testing.assert_array_equal(run(h, x), run(g, x))


def test_inside_subgraphs_and_recursion():
    @sciml.function
    def tri(n):
        """n + (n-1) + ... + 0, with a repeated subexpression in the body."""
        return sciml.cond(n <= 0, lambda: n * 0, lambda: (n - 1) * 0 + n + tri(n - 1) + 0 * (n - 1))

    g = sciml.make_graph(lambda n: tri(n) + tri(n), 4)
    h = sciml.verify(cse(g))
    assert names(h) == ["call", "add"]
    assert h.count_nodes() < g.count_nodes()
    assert int(run(h, 4)) == int(run(g, 4)) == 20
    assert graph_key(cse(h)) == graph_key(h)  # a second run changes nothing


@settings(max_examples=25, deadline=None)
@given(programs(loops=True), param_shapes(), st.data())
def test_cse_preserves_random_graphs(program, shapes, data):
    check_pass(cse, program, shapes, data)
