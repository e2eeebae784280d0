"""Dead-code elimination: dead nodes go, live and effectful nodes stay, subgraphs too."""

import numpy as np
from graphgen import check_pass, param_shapes, programs
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.ir import AbstractValue, Apply, Graph, Var
from autodiff.passes import dce
from autodiff.primitives import Primitive


def prims(g):
    return [n.prim.name for n in g.body]


def test_dead_nodes_are_removed_and_input_kept():
    def f(x):
        dead = snp.exp(x) + 1.0  # noqa: F841
        return snp.sin(x) * 2.0

    g = sciml.make_graph(f, np.zeros(3))
    text = str(g)
    h = dce(g)
    assert prims(h) == ["sin", "mul"]
    assert str(g) == text and h is not g
    x = np.linspace(-1, 1, 3)
    np.testing.assert_array_equal(sciml.eval_graph(h, x), np.sin(x) * 2.0)


def test_dead_code_in_subgraphs_is_removed():
    def f(x, xs):
        def body(c, t):
            unused = snp.cos(t) * c  # noqa: F841
            return c + t, c * 2.0

        def branch(y):
            _ = snp.exp(y)
            return y - 1.0

        c, ys = sciml.scan(body, x, xs)
        return sciml.cond(c > 0.0, branch, lambda y: y, ys)

    g = sciml.make_graph(f, 0.0, np.zeros(4))
    h = sciml.verify(dce(g))
    body = h.body[0].params["body"]
    assert prims(body) == ["add", "mul"]
    assert len(body.params) == len(g.body[0].params["body"].params)
    assert prims(h.body[-1].params["branches"][1]) == ["sub"]  # (false, true)
    xs = np.array([1.0, -2.0, 3.0, 0.5])
    np.testing.assert_array_equal(sciml.eval_graph(h, 1.0, xs), sciml.eval_graph(g, 1.0, xs))


def test_cond_loses_unread_outputs_and_operands():
    def f(x, y):
        a, b = sciml.cond(x[0] > 0, lambda: (x * 2.0, snp.exp(y)), lambda: (x - 1.0, y))
        return a

    g = sciml.make_graph(f, np.zeros(2), np.zeros(2))
    h = sciml.verify(dce(g))
    (cond,) = [n for n in h.body if n.prim.name == "cond"]
    assert len(cond.outputs) == 1 and len(cond.inputs) == 2  # predicate and x; y is gone
    assert all(len(b.params) == 1 and len(b.outputs) == 1 for b in cond.params["branches"])
    for x in (np.array([1.0, -0.0]), np.array([-1.0, np.nan])):
        np.testing.assert_array_equal(sciml.eval_graph(h, x, x), sciml.eval_graph(g, x, x))


def test_scan_loses_unused_ys_xs_and_captures():
    def f(c0, xs, w):
        def step(c, t):
            return c + 1.0, t * w  # the ys read xs and the capture w

        c, ys = sciml.scan(step, c0, xs)
        return c

    g = sciml.make_graph(f, np.float64(0.0), np.zeros(3), np.float64(2.0))
    h = sciml.verify(dce(g))
    (scan,) = h.body
    assert scan.params["num_xs"] == 0 and len(scan.inputs) == 1 and len(scan.outputs) == 1
    assert prims(scan.params["body"]) == ["add"]
    assert float(sciml.eval_graph(h, 0.5, np.arange(3.0), 2.0)) == 3.5


def test_loops_lose_unread_captures_but_keep_carries():
    def f(x, w, v):
        def body(i, c):
            dead = c * w  # noqa: F841
            return c + 1.0

        a = sciml.fori_loop(0, 3, body, x)
        b = sciml.while_loop(lambda c: c < v + 0.0 * w, lambda c: c * 2.0 + 0.0 * v, a)
        return b

    g = sciml.make_graph(f, np.float64(1.0), np.float64(5.0), np.float64(100.0))
    h = sciml.verify(dce(g))
    fori, loop = h.body[0], h.body[-1]
    assert len(fori.inputs) == 3 and len(fori.params["body"].params) == 2  # (i, carry)
    assert loop.params["num_cond_captures"] == 2 and len(loop.inputs) == 4  # w and v both read
    args = (1.0, 5.0, 100.0)
    assert float(sciml.eval_graph(h, *args)) == float(sciml.eval_graph(g, *args)) == 128.0


def test_effect_nodes_are_kept():
    # A primitive tagged "effect" is built by hand (not declared) so the global table is untouched.
    log = []
    record = Primitive("record", lambda x: x, lambda x: log.append(x) or x,
                       tags=frozenset({"effect"}))
    x = Var(AbstractValue((), np.float64))
    out = Var(x.aval)
    g = Graph([x], [Apply(record, (x,), {}, (out,))], [x], "logs")
    assert prims(dce(g)) == ["record"]


def test_recursive_graph_terminates():
    @sciml.function
    def countdown(n):
        dead = n * 3  # noqa: F841
        return sciml.cond(n <= 0, lambda: n, lambda: countdown(n - 1))

    g = sciml.make_graph(lambda n: countdown(n), 5)
    h = sciml.verify(dce(g))
    callee = h.body[0].params["graph"]
    assert "mul" not in prims(callee)
    assert int(sciml.eval_graph(h, 4)) == 0
    # The cond that holds the recursive call keeps its signature (the subgraphs are shared).
    (cond,) = [n for n in callee.body if n.prim.name == "cond"]
    assert len(cond.inputs) == len([n for n in g.body[0].params["graph"].body
                                    if n.prim.name == "cond"][0].inputs)


@settings(max_examples=25, deadline=None)
@given(programs(loops=True), param_shapes(), st.data())
def test_dce_preserves_random_graphs(program, shapes, data):
    g, h = check_pass(dce, program, shapes, data)
    assert h.count_nodes(deep=False) <= g.count_nodes(deep=False)
