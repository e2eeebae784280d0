"""Algebraic simplification: each rule fires where it is exact and only there.

Every case is checked on inputs full of -0.0, NaN and Inf: the simplified graph must give the
same bits (NaN positions equal) as the original.
"""

import numpy as np
import pytest
from graphgen import assert_same, check_pass, param_shapes, programs
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.passes import dce, simplify
from autodiff.primitives import get

F = np.array([0.0, -0.0, 1.5, -2.0, np.nan, np.inf, -np.inf, 1e-310])
I = np.array([0, -1, 7, np.iinfo(np.int64).min, np.iinfo(np.int64).max])
B = np.array([True, False])
M = np.array([[0.0, -0.0], [np.nan, -np.inf]])
F32 = F.astype(np.float32)
BF16 = F.astype("bfloat16")
I32 = np.array([0, -1, 7, np.iinfo(np.int32).min, np.iinfo(np.int32).max], np.int32)
C = np.array([complex(1, np.inf), complex(-0.0, 2), complex(np.nan, 0)])


def p(name):
    return get(name).bind


# (id, function, example argument, simplified: True when the node must go)
CASES = [
    ("x*1", lambda x: x * 1.0, F, True),
    ("1*x", lambda x: np.float64(1.0) * x, F, True),
    ("x/1", lambda x: x / 1.0, F, True),
    ("x+(-0.0)", lambda x: x + -0.0, F, True),
    ("(-0.0)+x", lambda x: np.float64(-0.0) + x, F, True),
    ("x-0.0", lambda x: x - 0.0, F, True),
    ("x+0.0 stays (-0.0 + 0.0 = +0.0)", lambda x: x + 0.0, F, False),
    ("x-(-0.0) stays", lambda x: x - -0.0, F, False),
    ("x*0 stays for floats", lambda x: x * 0.0, F, False),
    ("x*1 stays for complex", lambda x: x * (1 + 0j), C, False),
    ("x*1 broadcast bigger stays", lambda x: x * np.ones((2, 8)), F, False),
    ("int x+0", lambda x: x + 0, I, True),
    ("int x-0", lambda x: x - 0, I, True),
    ("int x*1", lambda x: x * 1, I, True),
    ("int x*0", lambda x: x * 0, I, True),
    ("int x&-1", lambda x: x & -1, I, True),
    ("int x|0", lambda x: x | 0, I, True),
    ("int x^0", lambda x: x ^ 0, I, True),
    ("bool x&True", lambda x: x & True, B, True),
    ("bool x|False", lambda x: x | False, B, True),
    ("neg neg", lambda x: snp.negative(-x), F, True),
    ("int neg neg", lambda x: snp.negative(-x), I, True),
    ("single neg stays", lambda x: -x, F, False),
    ("integer_pow 1", lambda x: x ** 1, F, True),
    ("integer_pow 2 stays", lambda x: x ** 2, F, False),
    ("select True", lambda x: snp.where(True, x, x * 2.0), F, True),
    ("select False", lambda x: snp.where(np.zeros(8, bool), x * 2.0, x), F, True),
    ("select mixed stays", lambda x: snp.where(np.arange(8) > 3, x, x * 2.0), F, False),
    ("convert same", lambda x: p("convert")(x, new_dtype=np.dtype("float64")), F, True),
    ("convert other stays", lambda x: p("convert")(x, new_dtype=np.dtype("float32")), F, False),
    ("reshape same", lambda x: p("reshape")(x, new_shape=(2, 2)), M, True),
    ("reshape reshape", lambda x: snp.reshape(snp.reshape(x, (4,)), (2, 2)), M, True),
    ("transpose identity", lambda x: p("transpose")(x, permutation=(0, 1)), M, True),
    ("transpose transpose", lambda x: x.T.T, M, True),
    ("broadcast same", lambda x: p("broadcast_in_dim")(x, shape=(8,), broadcast_dimensions=(0,)),
     F, True),
    ("whole slice", lambda x: p("slice")(x, start=(0,), limit=(8,), strides=(1,)), F, True),
    ("part slice stays", lambda x: p("slice")(x, start=(1,), limit=(8,), strides=(1,)), F, False),
    ("pad zero", lambda x: p("pad")(x, pad_width=((0, 0),)), F, True),
    ("shift zero", lambda x: p("shift")(x, offset=(0,)), F, True),
    ("rev rev", lambda x: snp.flip(snp.flip(x, 0), 0), F, True),
    ("rev none", lambda x: p("rev")(x, axes=()), F, True),
    ("concatenate one", lambda x: p("concatenate")(x, axis=0), F, True),
    ("f32 -> f64 -> f32", lambda x: x.astype(np.float64).astype(np.float32), F32, True),
    ("bf16 -> f32 -> bf16", lambda x: x.astype(np.float32).astype("bfloat16"), BF16, True),
    ("int32 -> f64 -> int32", lambda x: x.astype(np.float64).astype(np.int32), I32, True),
    ("bool -> f32 -> bool", lambda x: x.astype(np.float32).astype(bool), B, True),
    ("f64 -> f32 -> f64 stays (rounds)", lambda x: x.astype(np.float32).astype(np.float64),
     F, False),
    ("int64 -> f64 -> int64 stays", lambda x: x.astype(np.float64).astype(np.int64), I, False),
    ("maximum(x, x)", lambda x: snp.maximum(x, x), F, True),
    ("minimum(x, x)", lambda x: snp.minimum(x, x), F, True),
    ("select(c, x, x)", lambda x: snp.where(x > 0, x, x), F, True),
    ("int x-x", lambda x: x - x, I, True),
    ("float x-x stays (inf - inf)", lambda x: x - x, F, False),
    ("int x^x", lambda x: x ^ x, I, True),
    ("bool x&x", lambda x: x & x, B, True),
    ("int x|x", lambda x: x | x, I, True),
    ("sum over no axes stays (-0.0 + 0.0)", lambda x: p("reduce_sum")(x, axes=()), F, False),
    ("prod over no axes", lambda x: p("reduce_prod")(x, axes=()), F, True),
    ("max over no axes", lambda x: p("reduce_max")(x, axes=()), F, True),
]


def _run(g, x):
    out = sciml.eval_graph(g, x)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_rule(case):
    _, fn, x, simplified = case
    g = sciml.make_graph(fn, x)
    h = sciml.verify(dce(simplify(g)))
    assert (h.count_nodes() < g.count_nodes()) == simplified, (str(g), str(h))
    assert_same(_run(h, x), _run(g, x))


def test_transpose_chain_composes_permutations():
    g = sciml.make_graph(lambda x: snp.transpose(snp.transpose(x, (1, 2, 0)), (2, 0, 1)) + 0.0,
                         np.zeros((2, 3, 4)))
    g2 = sciml.make_graph(lambda x: snp.transpose(snp.transpose(x, (1, 2, 0)), (0, 2, 1)),
                          np.zeros((2, 3, 4)))
    h, h2 = dce(simplify(g)), dce(simplify(g2))
    assert [n.prim.name for n in h.body] == ["add"]
    assert [n.prim.name for n in h2.body] == ["transpose"]
    assert h2.body[0].params["permutation"] == (1, 0, 2)
    x = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(sciml.eval_graph(h2, x), sciml.eval_graph(g2, x))


def test_cond_with_constant_predicate_becomes_a_call():
    def f(x):
        return sciml.cond(True, lambda: snp.sin(x), lambda: snp.cos(x))

    g = sciml.make_graph(f, np.zeros(3))
    h = sciml.verify(simplify(g))
    assert [n.prim.name for n in h.body] == ["call"]
    assert h.body[0].params["graph"] is not None
    x = np.array([0.5, -0.0, np.inf])
    assert_same(_run(h, x), _run(g, x))
    k = sciml.make_graph(lambda x, i: sciml.switch(i, [snp.sin, snp.cos, snp.exp], x) * 1.0,
                         np.zeros(3), 7)  # a traced index stays a cond
    assert [n.prim.name for n in dce(simplify(k)).body] == ["cond"]


def test_rules_apply_inside_subgraphs():
    def f(x, xs):
        return sciml.scan(lambda c, t: (snp.negative(-c) * 1.0 + t, t / 1.0), x, xs)

    g = sciml.make_graph(f, np.float64(0.0), np.zeros(3))
    h = sciml.verify(dce(simplify(g)))
    assert [n.prim.name for n in h.body[0].params["body"].body] == ["add"]
    xs = np.array([1.0, -0.0, np.nan])
    assert_same(sciml.eval_graph(h, -0.0, xs), sciml.eval_graph(g, -0.0, xs))


def test_weak_operand_is_not_substituted_for_a_strong_result():
    g = sciml.make_graph(lambda x: x * np.float64(1.0), 2.0)  # x is a weak Python float
    assert g.params[0].aval.weak and not g.outputs[0].aval.weak
    assert sciml.verify(simplify(g)).outputs[0].aval == g.outputs[0].aval


@settings(max_examples=25, deadline=None)
@given(programs(loops=True), param_shapes(), st.data())
def test_simplify_preserves_random_graphs(program, shapes, data):
    check_pass(simplify, program, shapes, data)
