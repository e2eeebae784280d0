"""``autodiff.schedule.Schedule`` replays a graph with owned buffers: results equal the reference
interpreter's bit for bit, call after call, and no returned array is one of its buffers."""

import numpy as np
import pytest
from graphgen import arrays, assert_same, param_shapes, programs, trace
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.errors import ArityError
from autodiff.interpret import eval_graph_flat
from autodiff.ops.elementwise import select_impl
from autodiff.schedule import Schedule


def _no_buffer_returned(run, outs):
    for o in outs:
        assert not any(np.shares_memory(o, b) for b in run.buffers), "a buffer escaped"


@settings(max_examples=60, deadline=None)
@given(programs(), param_shapes(), st.data())
def test_random_graphs_match_the_interpreter(program, shapes, data):
    g = trace(program, shapes)
    run = Schedule(g)
    for _ in range(2):  # the second call reuses the buffers of the first
        xs = [data.draw(arrays(s)) for s in shapes]
        outs = run(xs)
        assert_same(outs, eval_graph_flat(g, xs))
        _no_buffer_returned(run, outs)


def _mlp_step(x, w1, w2):
    h = snp.where(x @ w1 > 0, x @ w1, 0.0)
    y = snp.tanh(h @ w2) * 2.0 + 1.0
    return y.sum(), y - 1.0, snp.sqrt(snp.abs(h)) + 1.0


def test_buffers_are_reused_in_place_and_across_calls():
    rng = np.random.default_rng(0)
    args = [rng.normal(size=(64, 32)), rng.normal(size=(32, 48)), rng.normal(size=(48, 16))]
    g = sciml.make_graph(_mlp_step, *args)
    run = Schedule(g)
    written = [s for s in run.steps if s.buf is not None]
    # Fewer buffers than writing steps: dead values lend their buffers to later results.
    assert 0 < len(run.pool) < len(written)
    for seed in range(3):
        args = [np.random.default_rng(seed).normal(size=a.shape) for a in args]
        outs = run(args)
        assert_same(outs, eval_graph_flat(g, args))
        _no_buffer_returned(run, outs)


def test_passed_through_and_constant_outputs():
    g = sciml.make_graph(lambda x: (x, x * 2.0, np.float64(3.0)), np.zeros(5))
    run = Schedule(g)
    x = np.arange(5.0)
    a, b, c = run([x])
    assert a is x or np.array_equal(a, x)
    np.testing.assert_array_equal(b, 2 * x)
    assert float(c) == 3.0


def test_arity_error():
    g = sciml.make_graph(lambda x, y: x + y, np.zeros(2), np.zeros(2))
    with pytest.raises(ArityError, match="takes 2 arguments"):
        Schedule(g)([np.zeros(2)])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool", "float16", "bfloat16",
                                   "complex64", "complex128"])
def test_select_matches_where_bit_for_bit(dtype):
    from autodiff import dtypes

    rng = np.random.default_rng(1)
    dt = dtypes.dtype(dtype)
    base = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 1.5, -2.0, 3.0] * 1024)
    with np.errstate(invalid="ignore"):  # NaN and inf cast to int32: any value will do
        a = base.astype(dt) if dt != np.bool_ else rng.random(base.size) < 0.5
        b = rng.permutation(base).astype(dt) if dt != np.bool_ else rng.random(base.size) < 0.5
    p = rng.random(base.size) < 0.5
    zero = np.zeros((), dt)
    for args in [(p, a, b), (p, a, zero), (p[:1], a, b), (p, a[:1], b), (p.reshape(64, 128),
                                                                        a.reshape(64, 128),
                                                                        b[:128])]:
        want = np.where(*args)
        got = select_impl(*args)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        out = np.empty_like(want)
        select_impl(*args, out=out)
        assert out.tobytes() == want.tobytes()
    want = np.where(p, a, b)
    for over_a in (True, False):  # the result written over either operand
        pa, pb = (a.copy(), b) if over_a else (a, b.copy())
        select_impl(p, pa, pb, out=pa if over_a else pb)
        assert (pa if over_a else pb).tobytes() == want.tobytes()


def _update(p, g, m):
    m2 = m * 0.9 + g * 0.1
    return p - m2 * 0.5, m2, (g * g).sum()


def test_donated_arguments_hold_the_results_they_match():
    rng = np.random.default_rng(4)
    args = [rng.normal(size=(300, 40)) for _ in range(3)]
    g = sciml.make_graph(_update, *args)
    run = Schedule(g, donate=(0, 2))
    for _ in range(3):
        want = eval_graph_flat(g, [a.copy() for a in args])
        p, m = args[0], args[2]
        outs = run(args)
        assert_same(outs, want)
        assert outs[0] is p and outs[1] is m  # written in place
        args = [outs[0], rng.normal(size=(300, 40)), outs[1]]


def test_shared_or_read_only_arguments_are_not_written():
    rng = np.random.default_rng(5)
    p, g_ = rng.normal(size=(300, 40)), rng.normal(size=(300, 40))
    graph = sciml.make_graph(_update, p, g_, p)
    run = Schedule(graph, donate=(0, 2))
    for args in ([p, g_, p], [p, p[:], p.copy()]):  # passed twice; viewed by another argument
        keep = [a.copy() for a in args]
        want = eval_graph_flat(graph, keep)
        outs = run(args)
        assert_same(outs, want)
        np.testing.assert_array_equal(p, keep[0])
    ro = p.copy()
    ro.flags.writeable = False
    outs = run([ro, g_, p.copy()])
    assert outs[0] is not ro


@pytest.mark.parametrize("ls,rs,dims", [
    ((4, 40, 6), (3, 6), ((2,), (1,))),        # per-example GEMMs on patches
    ((4, 5, 6), (6, 3), ((2,), (0,))),         # few rows each: one GEMM
    ((4, 40, 6), (4, 40, 3), ((0, 1), (0, 1))),  # weight gradient: stacked GEMM + sum
    ((4, 5, 6), (4, 5, 3), ((0, 1), (0, 1))),
    ((3, 6), (3, 4), ((0,), (0,))),
])
def test_dot_general_fast_paths_match_tensordot(ls, rs, dims):
    from autodiff.primitives import PRIMITIVES

    rng = np.random.default_rng(7)
    a, b = rng.normal(size=ls), rng.normal(size=rs)
    dn = (dims, ((), ()))
    want = np.tensordot(a, b, dims)
    np.testing.assert_allclose(PRIMITIVES["dot_general"].impl(a, b, dimension_numbers=dn), want,
                               rtol=1e-12, atol=1e-12)
    g = sciml.make_graph(lambda x, y: PRIMITIVES["dot_general"].bind(
        x, y, dimension_numbers=dn) * 2.0, a, b)
    run = Schedule(g)
    assert run.steps[0].buf is not None  # written into a buffer by BLAS
    for _ in range(2):
        assert_same(run([a, b]), eval_graph_flat(g, [a, b]))
