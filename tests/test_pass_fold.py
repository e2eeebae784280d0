"""Constant folding: exact values, a size limit, no control flow, subgraphs folded inside."""

import numpy as np
from graphgen import check_pass, param_shapes, programs
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.ir import AbstractValue, Apply, Const, Graph, Var
from autodiff.passes import fold
from autodiff.passes.fold import FOLD_LIMIT
from autodiff.primitives import Primitive


def names(g):
    return [n.prim.name for n in g.body]


def test_constant_chain_becomes_one_constant():
    def f(x):
        c = snp.exp(snp.iota((4,), np.float64) * 0.5) - 1.0
        return x * c

    g = sciml.make_graph(f, np.zeros(4))
    h = sciml.verify(fold(g))
    assert names(h) == ["mul"]
    (const,) = [a for a in h.body[0].inputs if isinstance(a, Const)]
    np.testing.assert_array_equal(const.value, np.exp(np.arange(4.0) * 0.5) - 1.0)
    x = np.array([1.0, -0.0, np.inf, np.nan])
    np.testing.assert_array_equal(sciml.eval_graph(h, x), sciml.eval_graph(g, x))


def test_special_values_fold_exactly():
    def f(x):
        i = snp.iota((3,), np.float64)
        return x + (i * np.float64("inf")), x * (i - i) / (i - i)  # NaN at 0*inf and 0/0

    g = sciml.make_graph(f, np.zeros(3))
    h = sciml.verify(fold(g))
    assert names(h) == ["add", "mul", "div"]
    x = np.array([1.0, 2.0, -3.0])
    for a, b in zip(sciml.eval_graph(h, x), sciml.eval_graph(g, x)):
        np.testing.assert_array_equal(a, b)


def test_half_precision_and_integer_constants():
    def f(x, k):
        c = (snp.iota((3,), np.float32) * np.float32(0.1)).astype("bfloat16")
        return x * c, k * (snp.iota((3,), np.int64) + 7) // 2

    g = sciml.make_graph(f, np.zeros(3, "bfloat16"), np.zeros(3, np.int64))
    h = sciml.verify(fold(g))
    assert names(h) == ["mul", "mul", "floor_divide"]
    args = np.array([1, 2, 3], "bfloat16"), np.array([1, -2, 3])
    for a, b in zip(sciml.eval_graph(h, *args), sciml.eval_graph(g, *args)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_large_results_are_not_folded():
    g = sciml.make_graph(lambda x: x + snp.iota((FOLD_LIMIT + 1,), np.float64), np.zeros(1))
    assert names(fold(g)) == ["iota", "add"]
    assert names(fold(g, limit=10**6)) == ["add"]


def test_control_flow_is_not_folded_but_its_subgraphs_are():
    def f(x):
        body = lambda i, c: c + snp.sum(snp.iota((3,), np.float64) * 2.0)  # noqa: E731
        return sciml.fori_loop(0, 3, body, x)

    g = sciml.make_graph(f, 0.0)
    h = sciml.verify(fold(g))
    assert names(h) == ["fori_loop"]
    assert names(h.body[0].params["body"]) == ["add"]
    assert float(sciml.eval_graph(h, 1.0)) == float(sciml.eval_graph(g, 1.0)) == 19.0


def test_small_constant_loops_are_folded_by_interpretation():
    def f(x):
        c0 = snp.iota((), np.float64) + 1.0  # a traced constant
        a = sciml.fori_loop(0, 5, lambda i, c: c * 2.0 + i, c0)
        b, ys = sciml.scan(lambda c, t: (c + t, c * t), c0, snp.iota((4,), np.float64))
        w = sciml.while_loop(lambda c: c < 50.0, lambda c: c * 3.0, c0, max_steps=10)
        big = sciml.fori_loop(0, 6000, lambda i, c: c + 1.0, c0)  # 12000 > LOOP_BUDGET
        return x + a + b + snp.sum(ys) + w, big

    g = sciml.make_graph(f, 0.0)
    h = sciml.verify(fold(g))
    assert names(h).count("fori_loop") == 1 and "scan" not in names(h)
    assert "while_loop" not in names(h)
    out, big = sciml.eval_graph(h, 1.0)
    # fori: 1 -> 2 -> 5 -> 12 -> 27 -> 58; scan: carry 7, ys 0 + 1 + 4 + 12; while: 81
    assert float(out) == float(sciml.eval_graph(g, 1.0)[0]) == 1.0 + 58.0 + 7.0 + 17.0 + 81.0
    assert float(big) == 6001.0
    assert names(fold(g, limit=0)).count("fori_loop") == 2  # outputs over the size limit


def test_failing_impl_is_left_in_place():
    # A primitive built by hand (not declared) whose numpy implementation fails.
    def fail(x):
        raise ValueError("no value")

    broken = Primitive("broken", lambda x: x, fail)
    x = Var(AbstractValue((2,), np.float64))
    out = Var(x.aval)
    c = Const(np.ones(2))
    g = Graph([x], [Apply(broken, (c,), {}, (out,))], [out], "g")
    assert names(fold(g)) == ["broken"]


@settings(max_examples=25, deadline=None)
@given(programs(loops=True), param_shapes(), st.data())
def test_fold_preserves_random_graphs(program, shapes, data):
    check_pass(fold, program, shapes, data)
