"""Library nodes compiled as numba routines (kernels/routines.py) match the interpreter."""

import numpy as np
import pytest

import sciml
from autodiff.interpret import eval_graph_flat
from autodiff.primitives import get
from autodiff.trace import make_graph
from kernels.plancode import PlanCode
from kernels.routines import PRINTERS, routine

RNG = np.random.default_rng(0)
X3 = RNG.standard_normal((4, 5, 6))


def _check(f, *args, dtype_tol=1e-12, want_routines=1):
    jf = sciml.jit(f)
    got = jf(*args)
    ref = eval_graph_flat(make_graph(f, *args), list(args))
    got = got if isinstance(got, tuple) else (got,)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=dtype_tol, atol=dtype_tol)
    c = jf.lower(*args)
    assert len(c.routines) >= want_routines, str(c)
    return c


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum(axis, reverse):
    """A forward cumsum along axis 0 fuses (tests/test_kernels_sequential.py); the others run
    as routines."""
    prim = get("cumsum")
    fused = axis == 0 and not reverse
    _check(lambda x: prim.bind(x * 2.0, axis=axis, reverse=reverse), X3,
           want_routines=0 if fused else 1)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_concatenate(axis):
    """Up to MAX_PIECES pieces fuse as padded reads and selects (kernels/concat.py), bit for
    bit; more pieces run as a copy routine."""
    from kernels.concat import MAX_PIECES

    c = _check(lambda x, y: np.concatenate([x * 2.0, y, x, y, x], axis=axis) + 1.0, X3,
               X3 + 1.0, dtype_tol=0.0, want_routines=0)
    assert not c.routines and c.count_kernels() <= 2  # x * 2.0 read at an offset: 2 kernels
    many = [X3 + j for j in range(MAX_PIECES + 1)]
    c = _check(lambda *xs: np.concatenate([x * 2.0 for x in xs], axis=axis), *many,
               dtype_tol=0.0)
    assert [r.prim for r in c.routines.values()] == ["concatenate"]


@pytest.mark.parametrize("name", ["sum", "prod", "max", "min"])
@pytest.mark.parametrize("axes", [(0,), (0, 1), (1,), (0, 2)])
def test_leading_axis_reductions(name, axes):
    """Reductions over axis 0 alone fuse (tests/test_kernels_sequential.py); other axes that
    are not a suffix run as routines."""
    fn = getattr(np, name)
    _check(lambda x: fn(x * 0.5, axis=axes), X3, want_routines=0 if axes == (0,) else 1)


def test_max_propagates_nan_like_numpy():
    x = X3.copy()
    x[2, 1, 3] = np.nan
    out = sciml.jit(lambda v: np.max(v + 0.0, axis=0))(x)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(np.max(x, axis=0)))


def test_float32_sum_accumulates_wide():
    x = (RNG.random((4000, 3)) + 1.0).astype(np.float32)
    out = sciml.jit(lambda v: np.sum(v * 1.0, axis=0))(x)
    np.testing.assert_allclose(out, x.astype(np.float64).sum(0), rtol=1e-6)


def test_reshape_that_moves_data():
    _check(lambda x: np.reshape(np.transpose(x) * 2.0, (6, 20)) + 1.0, X3)


@pytest.mark.parametrize("shape", [(7,), (1, 3), (21, 9, 11), (3, 300)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tridiagonal_solve(shape, dtype, monkeypatch):
    """The routine; 3-d solves fuse into kernels on the CPU (tests/test_kernels_sequential.py)
    unless the target turns that off, as here."""
    monkeypatch.setattr("kernels.cpu.SEQUENTIAL_AXIS0", False)
    r = np.random.default_rng(1)
    a, c = (r.uniform(-1, 1, shape).astype(dtype) for _ in range(2))
    b = r.uniform(3, 4, shape).astype(dtype)
    d = r.standard_normal(shape).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    _check(lambda a, b, c, d: get("tridiagonal_solve").bind(a, b, c, d * 1.0), a, b, c, d,
           dtype_tol=tol)


def test_a_plan_of_kernels_and_routines_is_one_compiled_function():
    def f(x):
        up = np.concatenate([x[1:], np.zeros_like(x[:1])], axis=0)
        col = get("cumsum").bind(x * up, axis=0, reverse=True)
        return np.sum(col, axis=(0, 2)) + np.sqrt(np.abs(x[0, :, 0]))

    c = _check(f, X3, want_routines=2)
    assert isinstance(c.plan, PlanCode)


def test_nodes_without_a_routine_stay_library_nodes():
    g = make_graph(lambda x: np.cumsum(x, axis=0), np.zeros((3, 2), np.float16))
    assert routine(g.body[0], "r") is None  # half types are converted by the step plan
    assert "sort" not in PRINTERS and "dot_general" not in PRINTERS


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_take_and_scatter_add(axis):
    idx = np.array([[0, -1], [2, 2], [1, 0]])  # repeated and negative indices

    def f(x, u):
        g = get("take").bind(x * 2.0, idx, axis=axis)
        return g, get("scatter_add").bind(x + 0.0, idx, g * u, axis=axis)

    shape = list(X3.shape)
    shape[axis:axis + 1] = idx.shape
    _check(f, X3, RNG.standard_normal(shape), want_routines=2)


def test_dynamic_slices_clamp_their_starts():
    def f(x, i, j):
        w = get("dynamic_slice").bind(x * 1.0, i, j, np.int64(0), sizes=(2, 3, 6))
        return w, get("dynamic_update_slice").bind(x * 1.0, w * 2.0, j, i, np.int64(1))

    for i, j in [(0, 0), (3, 1), (-2, 9)]:
        _check(f, X3, np.int64(i), np.int64(j), want_routines=2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_routines_run_their_prange_in_parallel(dtype, monkeypatch):
    """A routine whose body has a prange is compiled parallel (else prange is a plain loop);
    the blocked tridiagonal solve (per-block coefficient buffers) and a cumsum along an inner
    axis stay bit for bit equal to their numpy implementations. (3-d solves fuse into kernels
    unless the target turns that off, as here.)"""
    monkeypatch.setattr("kernels.cpu.SEQUENTIAL_AXIS0", False)
    r = np.random.default_rng(2)
    shape = (9, 70, 60)  # 37800 points: at least PARALLEL_MIN_POINTS
    a, c = (r.uniform(-1, 1, shape).astype(dtype) for _ in range(2))
    b = r.uniform(3, 4, shape).astype(dtype)
    d = r.standard_normal(shape).astype(dtype)
    tri = get("tridiagonal_solve")
    f = sciml.jit(lambda a, b, c, d: (tri.bind(a, b, c, d * 1.0), np.cumsum(d * 1.0, axis=2)))
    got = f(a, b, c, d)
    want = (tri.impl(a, b, c, d), np.cumsum(d, axis=2))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    sources = [rt.source for rt in f.lower(a, b, c, d).routines.values()]
    assert len(sources) == 2 and all("parallel=True" in s for s in sources)
