"""Sums over axis 0 and cumulative sums along it, fused (``kernels.fuse``, ``sequential``).

The CPU target puts a reduction over axis 0 (a vertical integral) and a forward cumsum along
axis 0 in the kernel that computes their operand: the kernel runs axis 0 in order and each
thread takes a band of axis 1. Every point adds its value to the sum of the planes before it,
as numpy does along axis 0, so results are numpy's bit for bit (float32 sums accumulate in
float64, like the other fused reductions).
"""

import numpy as np
import pytest

import sciml
from autodiff.interpret import eval_graph_flat
from autodiff.trace import make_graph
from kernels.fuse import Cluster
from kernels.jit import compile_graph

RNG = np.random.default_rng(3)


def _compiled(f, *args, backend="cpu", build=True):
    return compile_graph(make_graph(f, *args), backend, build=build)


def _same_as_interpreter(f, *args):
    c = _compiled(f, *args)
    got = c.plan(list(args))
    ref = eval_graph_flat(make_graph(f, *args), list(args))
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype and g.shape == r.shape
        np.testing.assert_array_equal(g, r)
    return c


def _sequential(c) -> list:
    return [k for k in c.kernels.values() if getattr(k, "sequential", False)]


def _library(c) -> list:
    return [g.node.prim.name for g in c.groups if not isinstance(g, Cluster)]


@pytest.mark.parametrize("shape", [(5, 7), (6, 40, 300), (3, 4, 5, 6), (9, 1, 70)])
@pytest.mark.parametrize("name", ["sum", "prod", "max", "min"])
def test_axis0_reduction_fuses_with_producer_and_consumer(shape, name):
    fn = getattr(np, name)
    x, y = RNG.standard_normal(shape), RNG.standard_normal(shape)

    def f(x, y):
        a = (x + 0.5) * y
        return fn(a, axis=0) * 2.0, a - 1.0

    c = _same_as_interpreter(f, x, y)
    assert not _library(c), _library(c)
    (k,) = _sequential(c)
    assert k.domain == shape


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.complex128])
def test_axis0_sum_other_dtypes(dtype):
    x = (RNG.integers(-5, 5, (4, 6, 70)) + (1j if dtype is np.complex128 else 0)).astype(dtype)
    c = _same_as_interpreter(lambda v: np.sum(v * v, axis=0), x)
    # numpy sums int32 into int64: a result of another dtype stays a routine
    assert bool(_sequential(c)) == (dtype is not np.int32)


def test_float32_sum_over_axis0_accumulates_wide():
    x = (RNG.random((3000, 2, 50)) + 1.0).astype(np.float32)
    out = sciml.jit(lambda v: np.sum(v * 2.0, axis=0))(x)
    assert out.dtype == np.float32
    want = (x.astype(np.float64) * 2.0).sum(0)
    np.testing.assert_allclose(out, want, rtol=2e-7)
    # plain float32 accumulation, numpy's order along axis 0, is visibly worse here
    assert np.abs(np.sum(x * np.float32(2.0), axis=0) - want).max() > np.abs(out - want).max()


def test_cumsum_along_axis0_fuses_and_feeds_the_same_point():
    x, y = RNG.standard_normal((7, 33, 80)), RNG.standard_normal((7, 33, 80))

    def f(x, y):
        c = np.cumsum(x * y, axis=0)
        return c * y + 1.0

    c = _same_as_interpreter(f, x, y)
    assert not _library(c)
    assert len(c.kernels) == 1 and _sequential(c)


def test_cumsum_read_at_a_shifted_point_is_stored_not_recomputed(monkeypatch):
    """A cumulative sum exists only once the planes before it ran: a stencil read of it goes
    to another kernel, even where recomputation is allowed."""
    import sciml.numpy as snp

    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "1000")
    monkeypatch.setenv("SCIML_RECOMPUTE_MIN_BYTES", "0")
    x = RNG.standard_normal((6, 20, 70))

    def f(x):
        c = np.cumsum(x * 2.0, axis=0)
        return c + snp.shift(c, (1, 0, 0)) + snp.shift(c, (0, -1, 0))

    c = _same_as_interpreter(f, x)
    assert len(c.kernels) == 2


def test_signed_zero_and_nan_as_numpy():
    x = np.full((1, 3, 40), -0.0)
    out = sciml.jit(lambda v: np.sum(v * 1.0, axis=0))(x)
    assert np.all(np.signbit(out))  # numpy's sum of one plane keeps its sign
    y = RNG.standard_normal((5, 4, 40))
    y[2, 1, 3] = np.nan
    y[0, 2, 5] = np.nan
    for fn in (np.max, np.min, np.sum):
        got = sciml.jit(lambda v, fn=fn: fn(v + 0.0, axis=0))(y)
        np.testing.assert_array_equal(got, fn(y, axis=0))


def test_reverse_cumsum_and_other_axes_stay_routines():
    x = RNG.standard_normal((4, 5, 60))
    from autodiff.primitives import get

    prim = get("cumsum")
    c = _same_as_interpreter(lambda v: prim.bind(v * 2.0, axis=0, reverse=True), x)
    assert not _sequential(c)
    c = _same_as_interpreter(lambda v: np.sum(v * 2.0, axis=1), x)
    assert not _sequential(c)
    c = _same_as_interpreter(lambda v: np.cumsum(v * 2.0, axis=1), x)
    assert not _sequential(c)


def test_gpu_fuses_them_too_and_npu_keeps_them_as_library_nodes():
    """The GPU runs axis 0 in order with a thread per column (tests/test_kernels_gpu.py
    runs its CUDA); the NPU's tiles do not, so they stay library nodes there."""
    x = RNG.standard_normal((4, 8, 16)).astype(np.float32)

    def f(v):
        return np.sum(v * 2.0, axis=0), np.cumsum(v + 1.0, axis=0)

    c = _compiled(f, x, backend="gpu", build=False)
    assert not _library(c) and _sequential(c)
    c = _compiled(f, x, backend="npu", build=False)
    assert {"reduce_sum", "cumsum"} <= set(_library(c))


def test_in_a_loop_body_and_under_grad():
    from autodiff.api import grad

    x0 = RNG.standard_normal((6, 10, 70))

    def body(i, x):
        return x + 0.01 * np.cumsum(x, axis=0) - 0.001 * np.sum(x * x, axis=0)

    def run(x):
        return sciml.fori_loop(0, 4, body, x)

    np.testing.assert_array_equal(sciml.jit(run)(x0), run(x0))

    def loss(x):
        return np.sum(np.cumsum(x * x, axis=0) * np.sum(x, axis=0))

    g_eager = grad(loss)(x0)
    g_jit = sciml.jit(grad(loss))(x0)
    np.testing.assert_allclose(g_jit, g_eager, rtol=1e-12, atol=1e-12)
    eps = 1e-6
    d = RNG.standard_normal(x0.shape)
    fd = (loss(x0 + eps * d) - loss(x0 - eps * d)) / (2 * eps)
    np.testing.assert_allclose(np.sum(g_jit * d), fd, rtol=1e-6)


def test_threads_bands_cover_every_row():
    """Axis 1 shorter than the thread count, and not a multiple of it."""
    for shape in [(40, 1, 3000), (40, 3, 700), (12, 5, 1000)]:
        x = RNG.standard_normal(shape)
        c = _same_as_interpreter(lambda v: (np.sum(v * 3.0, axis=0), np.cumsum(v, axis=0) * 2.0), x)
        assert _sequential(c)


def _columns_problem(shape, dtype=np.float64):
    r = np.random.default_rng(7)
    k = r.uniform(0.1, 1.0, shape).astype(dtype)
    d = r.standard_normal(shape).astype(dtype)
    z = r.uniform(0.5, 1.0, (shape[0], 1, 1)).astype(dtype)
    return k, d, z


def _implicit_diffusion(k, d, z):
    """Two vertical solves sharing coefficients computed in the same kernel (a stencil read
    along axis 0 included), as implicit vertical diffusion builds them."""
    import sciml.numpy as snp
    from sciml.ocean.tridiagonal import thomas

    a = -k * z
    c = -snp.shift(k, (1, 0, 0)) * z
    b = 1.0 - a - c
    return thomas(a, b, c, d * 2.0), thomas(a, b + 0.5, c, d), a + 1.0


@pytest.mark.parametrize("shape", [(9, 13, 70), (31, 3, 200), (2, 5, 8), (40, 1, 300)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tridiagonal_solves_fuse_with_their_coefficients(shape, dtype):
    """The forward sweeps run in the kernel that computes the coefficients (never stored);
    solutions equal the routine's and the numpy reference's bit for bit."""
    args = _columns_problem(shape, dtype)
    c = _same_as_interpreter(_implicit_diffusion, *args)
    assert "tridiagonal_solve" not in _library(c)
    (k,) = _sequential(c)
    assert len(c.routines) == 0
    src = "\n".join(c.sources.values())
    assert "tcp0" in src and "tcp1" in src  # both forward sweeps in the fused kernel


def test_tridiagonal_block_size_does_not_change_results(monkeypatch):
    args = _columns_problem((12, 9, 64))
    ref = eval_graph_flat(make_graph(_implicit_diffusion, *args), list(args))
    for budget in ("1", "100000", str(1 << 30)):
        monkeypatch.setenv("SCIML_SOLVE_BLOCK_BYTES", budget)
        got = _compiled(_implicit_diffusion, *args).plan(list(args))
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(g, r)


def test_tridiagonal_solution_read_in_the_same_cluster_goes_to_the_next_kernel():
    """A solution exists only after the backward sweep: its readers are other kernels."""
    from sciml.ocean.tridiagonal import thomas

    k, d, z = _columns_problem((8, 6, 50))

    def f(k, d, z):
        x = thomas(-k * z, 2.0 + k, -k * z, d)
        return x * 3.0 + k

    c = _same_as_interpreter(f, k, d, z)
    assert len(c.kernels) == 2


def test_tridiagonal_solve_other_ranks_stay_routines():
    from sciml.ocean.tridiagonal import thomas

    r = np.random.default_rng(2)
    for shape in [(7,), (6, 40), (5, 4, 3, 20)]:
        a, c = (r.uniform(-1, 1, shape) for _ in range(2))
        b = r.uniform(3, 4, shape)
        d = r.standard_normal(shape)
        g = _same_as_interpreter(lambda a, b, c, d: thomas(a * 1.0, b, c, d), a, b, c, d)
        assert "tridiagonal_solve" in [x.prim for x in g.routines.values()], shape


def test_tridiagonal_fused_gradient_matches_eager():
    from autodiff.api import grad

    k, d, z = _columns_problem((6, 4, 40))

    def loss(k):
        x, y, _ = _implicit_diffusion(k, d, z)
        return np.sum(x * x) + np.sum(y)

    np.testing.assert_allclose(sciml.jit(grad(loss))(k), grad(loss)(k), rtol=1e-11, atol=1e-12)


def _heat_then_column_sum(u, w):
    import sciml.numpy as snp

    for _ in range(3):
        u = u + 0.1 * (snp.shift(u, (1, 0, 0)) + snp.shift(u, (-1, 0, 0)) - 2.0 * u)
    v = u * w
    return np.sum(v, axis=0), v + 1.0


@pytest.mark.parametrize("split", ["slabs", "rows"])
def test_column_sums_ride_in_a_wavefront_sweep(monkeypatch, split):
    """A kernel summing over axis 0 can be the level of a sweep: the sweep visits each plane
    once, in order, and each row of a plane on one thread."""
    monkeypatch.setenv("SCIML_WAVEFRONT_MIN_BYTES", "0")
    monkeypatch.setenv("SCIML_WAVEFRONT", split)
    u, w = RNG.standard_normal((12, 30, 64)), RNG.standard_normal((12, 30, 64))
    c = _same_as_interpreter(_heat_then_column_sum, u, w)
    (wk,) = [k for k in c.kernels.values() if hasattr(k, "levels")]
    assert [lv.sequential for lv in wk.levels][-1], str(wk)
    assert len(c.kernels) == 1, [str(g) for g in c.groups]


def test_cumsums_and_solves_stay_out_of_sweeps(monkeypatch):
    import sciml.numpy as snp

    monkeypatch.setenv("SCIML_WAVEFRONT_MIN_BYTES", "0")
    u = RNG.standard_normal((10, 20, 64))

    def f(u):
        for _ in range(2):
            u = u + 0.1 * (snp.shift(u, (1, 0, 0)) - u)
        return np.cumsum(u * 2.0, axis=0) + 1.0

    c = _same_as_interpreter(f, u)
    assert any(getattr(k, "sequential", False) for k in c.kernels.values())
    k, d, z = _columns_problem((10, 20, 64))

    def g(k, d, z):
        for _ in range(2):
            k = k + 0.1 * (snp.shift(k, (1, 0, 0)) - k)
        return _implicit_diffusion(k, d, z)

    c = _same_as_interpreter(g, k, d, z)
    assert any(getattr(k, "sequential", False) for k in c.kernels.values())


def test_a_sum_read_beside_its_rows_keeps_its_kernel_out_of_the_sweep(monkeypatch):
    """With slabs, halo rows are computed by two threads: a level that sums over axis 0
    must have no halo, so such a chain stops before it."""
    import sciml.numpy as snp

    monkeypatch.setenv("SCIML_WAVEFRONT_MIN_BYTES", "0")
    monkeypatch.setenv("SCIML_WAVEFRONT", "slabs")
    u = RNG.standard_normal((9, 24, 64))

    def f(u):
        v = u + 0.1 * snp.shift(u, (1, 0, 0))
        a = v * 2.0
        s = np.sum(a, axis=0)
        b = a + snp.shift(a, (0, 1, 0)) + snp.shift(a, (1, 0, 0))  # reads a's next row
        return s, b

    c = _same_as_interpreter(f, u)
    assert any(getattr(k, "sequential", False) for k in c.kernels.values())  # a kernel of its own
    assert not any(lv.sequential for k in c.kernels.values() for lv in getattr(k, "levels", []))
