"""``kernels.library``: the compiled implementations the Schedule runs give the numpy
references' results bit for bit (sums in the same order), into a given buffer or a new one;
fused elementwise loops give the interpreter's bits."""

import numpy as np
import pytest
from graphgen import arrays, assert_same, param_shapes, programs, trace
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.interpret import eval_graph_flat
from autodiff.ops import window
from autodiff.primitives import PRIMITIVES
from autodiff.schedule import Schedule, _clusters
from kernels import library

WINDOWS = [  # (input shape, params): 2-D and 1-D, stride, asymmetric padding, dilation
    ((3, 6, 5, 4), {"kernel": (3, 3), "stride": (1, 1), "padding": ((1, 1), (1, 1)),
                    "dilation": (1, 1)}),
    ((2, 7, 9, 1), {"kernel": (3, 2), "stride": (2, 3), "padding": ((0, 2), (1, 0)),
                    "dilation": (2, 1)}),
    ((2, 3, 11, 2), {"kernel": (4,), "stride": (2,), "padding": ((3, 1),), "dilation": (2,)}),
    ((5, 2), {"kernel": (2,), "stride": (1,), "padding": ((0, 0),), "dilation": (1,)}),
    ((1, 3, 4, 3, 2), {"kernel": (2, 2, 2), "stride": (1, 1, 1),  # 3-D: the reference
                       "padding": ((0, 1), (1, 0), (0, 0)), "dilation": (1, 1, 1)}),
]
DTYPES = ["float32", "float64", "int64", "float16"]


def _same(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("shape,params", WINDOWS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_and_col2im_match_the_reference(shape, params, dtype):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=shape) * 4).astype(dtype)
    want = window.im2col.impl(x, value=1.5, **params)
    _same(library.im2col(x, value=1.5, **params), want)
    out = np.empty_like(want)
    assert library.im2col(x, value=1.5, out=out, **params) is out
    _same(out, want)
    cols = (rng.normal(size=want.shape) * 4).astype(dtype)
    spatial = shape[len(shape) - len(params["kernel"]) - 1:-1]
    want = window.col2im.impl(cols, shape=spatial, **params)
    _same(library.col2im(cols, shape=spatial, **params), want)
    out = np.full_like(want, 7)  # stale contents must not leak into the sum
    library.col2im(cols, shape=spatial, out=out, **params)
    _same(out, want)


@pytest.mark.parametrize("shape,axes,keepdims", [
    ((4096, 16), (0,), False), ((4, 6, 3, 2), (0,), True), ((9, 3, 5), (0, 1), False),
    ((300, 2), (0,), False), ((500,), (0,), False), ((40, 30), (0, 1), False),
    ((7, 5), (1,), False), ((6, 4, 3), (0, 2), True),
])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_reduce_sum_matches_the_reference(shape, axes, keepdims, dtype):
    x = (np.random.default_rng(1).normal(size=shape) * 100).astype(dtype)
    want = PRIMITIVES["reduce_sum"].impl(x, axes=axes, keepdims=keepdims)
    _same(library.reduce_sum(x, axes=axes, keepdims=keepdims), want)
    out = np.empty_like(want)
    library.reduce_sum(x, axes=axes, keepdims=keepdims, out=out)
    _same(out, want)


@pytest.mark.parametrize("shape,perm", [
    ((64, 32, 4, 2, 4, 2), (3, 5, 0, 1, 2, 4)), ((2, 2, 64, 32, 4, 4), (2, 3, 4, 0, 5, 1)),
    ((16, 8, 8, 32), (0, 3, 1, 2)), ((3, 4), (1, 0)), ((40, 30, 5), (1, 2, 0)),
])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bool", "float16"])
def test_transpose_matches_numpy(shape, perm, dtype):
    x = (np.random.default_rng(2).normal(size=shape) * 4).astype(dtype)
    want = np.ascontiguousarray(np.transpose(x, perm))
    _same(library.transpose(x, permutation=perm), want)
    out = np.empty_like(want)
    library.transpose(x, permutation=perm, out=out)
    _same(out, want)


# ---------------------------------------------------------------------------------------------
# Fused elementwise loops


def _adam_like(p, g, m, v, lr):
    m2 = m * 0.9 + g * 0.1
    v2 = v * 0.999 + (g * 0.001) * g
    return p - lr * (m2 / (snp.sqrt(v2) + 1e-8)), m2, v2, snp.where(g > 0, g, 0.0)


def _adam_args(shape, dtype):
    rng = np.random.default_rng(6)
    args = [rng.normal(size=shape).astype(dtype) for _ in range(4)]
    args[3] = np.abs(args[3])
    args[1].flat[:4] = [np.inf, -np.inf, np.nan, -0.0]
    return args + [np.asarray(1e-3, dtype)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_loops_give_the_reference_bits(dtype):
    args = _adam_args((37, 11), dtype)
    g = sciml.make_graph(_adam_like, *args)
    run = Schedule(g, fuser=library.FUSER)
    fused = [s for s in run.steps if s.name == "fused"]
    assert len(fused) == 1 and len(run.steps) < len(g.body)
    for _ in range(2):
        assert_same(run(args), eval_graph_flat(g, args))


def test_fused_source_depends_on_the_structure_not_the_shape():
    sources = set()
    for shape in [(5,), (3, 4), (2, 3, 4)]:
        g = sciml.make_graph(_adam_like, *_adam_args(shape, "float32"))
        (c,) = _clusters(g, library.fusable)
        sources.add(library.fused_source(c))
    assert len(sources) == 1


def test_what_is_not_fused():
    g = sciml.make_graph(lambda x, i: (snp.exp(x) * 2.0, snp.maximum(x, 1.0) + 1.0,
                                       i * 2 + 1), np.zeros(8, np.float32),
                         np.zeros(8, np.int32))
    assert not any(library.fusable(n) for n in g.body if n.prim.name in ("exp", "maximum"))
    assert not any(library.fusable(n) for n in g.body if n.outputs[0].aval.dtype == np.int32)


@settings(max_examples=12, deadline=None)
@given(programs(), param_shapes(), st.data())
def test_random_graphs_with_fused_loops_match_the_interpreter(program, shapes, data):
    g = trace(program, shapes)
    run = Schedule(g, fuser=library.FUSER)
    xs = [data.draw(arrays(s)) for s in shapes]
    assert_same(run(xs), eval_graph_flat(g, xs))
