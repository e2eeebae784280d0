"""Fusion: kernel and temporary counts for known programs, random fused programs vs the
interpreter, buffer reuse, errors."""

from __future__ import annotations

import doctest

import graphgen
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.errors import UnsupportedError
from autodiff.interpret import eval_graph, eval_graph_flat
from kernels import cache, cpu, fuse, halfconv, jit, loopir, lower, templates, wavefront
from kernels.jit import jit as kjit


def chain(x, y):
    return np.exp(-x * x) * np.sin(3.0 * x) + 0.5 * np.tanh(y)


def test_elementwise_chain_is_one_kernel_without_temporaries():
    x = np.linspace(-2, 2, 1000)
    c = kjit(chain).lower(x, x)
    assert c.count_kernels() == 1
    assert c.temporaries() == 0
    assert "np.empty" not in c.sources[0]  # no temporary arrays inside the kernel either
    np.testing.assert_allclose(kjit(chain)(x, x), chain(x, x), rtol=1e-13)


def test_reduction_is_an_epilogue():
    def f(x):
        y = np.sin(x) * 2.0 + 1.0
        return (y * y).sum(), y.max()

    x = np.linspace(0, 3, 50000)
    c = kjit(f).lower(x)
    assert c.count_kernels() == 1 and c.temporaries() == 0
    got = kjit(f)(x)
    np.testing.assert_allclose(got[0], f(x)[0], rtol=1e-12)
    assert got[1] == f(x)[1]


def heat(u, c):
    lap = sum(snp.shift(u, off, boundary="zero") for off in
              ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)))
    return u + c * (lap - 6.0 * u)


def test_stencil_fuses_with_the_elementwise_work():
    u = np.random.default_rng(0).random((6, 7, 8))
    c = kjit(heat).lower(u, 0.1)
    assert c.count_kernels() == 1 and c.temporaries() == 0
    np.testing.assert_allclose(kjit(heat)(u, 0.1), sciml.eval_graph(
        sciml.make_graph(heat, u, 0.1), u, 0.1), rtol=1e-13)


def test_stencil_of_a_cheap_computed_value_recomputes_it(monkeypatch):
    """sin(u) read by one stencil is computed again at the shifted point: one kernel, no
    temporary array; read by many stencils it is stored once and a second kernel reads it."""
    monkeypatch.setenv("SCIML_WAVEFRONT", "off")  # fuse's kernels, before any sweep joins them
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "24")  # opt-in
    monkeypatch.setenv("SCIML_RECOMPUTE_MIN_BYTES", "0")  # small arrays recompute too

    def once(u):
        v = np.sin(u)
        return snp.shift(v, (1,), boundary="periodic") - v

    def many(u):
        v = np.sin(u)
        return sum(snp.shift(v, (o,), boundary="zero") for o in (-2, -1, 1, 2)) - 4.0 * v

    u = np.linspace(0, 1, 9)
    c = kjit(once).lower(u)
    assert c.count_kernels() == 1 and c.temporaries() == 0
    np.testing.assert_allclose(kjit(once)(u), np.roll(np.sin(u), -1) - np.sin(u), rtol=1e-13)
    c = kjit(many).lower(u)
    assert c.count_kernels() == 2 and c.temporaries() == 1
    np.testing.assert_allclose(kjit(many)(u), sciml.eval_graph(sciml.make_graph(many, u), u),
                               rtol=1e-13)


def test_recompute_budget_and_off_switch(monkeypatch):
    """Recomputation is opt-in; on, values under 4 MiB (in cache between kernels) are still
    stored, and so is a value whose work exceeds the budget; a budget of 0 stores all."""
    monkeypatch.setenv("SCIML_WAVEFRONT", "off")
    g = lambda u: snp.shift(u * 2.0, (1,)) + u  # noqa: E731
    big = np.zeros(1 << 19)  # 4 MiB of float64
    assert kjit(g).lower(big).count_kernels() == 2
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "24")
    assert kjit(g).lower(np.zeros(9)).count_kernels() == 2
    assert kjit(g).lower(big).count_kernels() == 1
    monkeypatch.setenv("SCIML_RECOMPUTE_MIN_BYTES", "0")

    def f(u):
        v = np.exp(np.sin(u) * np.cos(u)) / (1.0 + u * u)  # work 8 + 8 + 8 + 4 + ... > 24
        return snp.shift(v, (1,)) - v

    u = np.linspace(0, 1, 9)
    assert kjit(f).lower(u).count_kernels() == 2
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "100")
    assert kjit(f).lower(u).count_kernels() == 1
    np.testing.assert_allclose(kjit(f)(u), sciml.eval_graph(sciml.make_graph(f, u), u),
                               rtol=1e-13)
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "0")
    assert kjit(g).lower(u).count_kernels() == 2


@pytest.mark.parametrize("boundary", ["zero", "periodic", "edge"])
def test_recomputed_stencil_of_stencils_matches_the_interpreter(monkeypatch, boundary):
    """Nested reads compose: an average of an average of a product, in 2-D, at every edge
    kind, with an iota and a broadcast operand inside the recomputed expression."""
    monkeypatch.setenv("SCIML_WAVEFRONT", "off")
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "24")
    monkeypatch.setenv("SCIML_RECOMPUTE_MIN_BYTES", "0")

    def f(a, b, row):
        def avg(x, axis):
            off = [0, 0]
            off[axis] = 1
            return 0.5 * (x + snp.shift(x, tuple(off), boundary=boundary))

        p = a * b + row + 0.1 * snp.iota(a.shape, np.float64, dimension=1)
        q = avg(avg(p, 0), 1) * b
        return snp.shift(q, (-1, 0), boundary=boundary) - q

    rng = np.random.default_rng(5)
    a, b = rng.random((2, 7, 6))
    row = rng.random(6)
    c = kjit(f).lower(a, b, row)
    assert c.count_kernels() == 1 and c.temporaries() == 0
    want = sciml.eval_graph(sciml.make_graph(f, a, b, row), a, b, row)
    np.testing.assert_allclose(kjit(f)(a, b, row), want, rtol=1e-13, atol=1e-15)


def test_library_node_splits_and_fuses_around_it():
    def f(a, b):
        return np.tanh((np.exp(a) * 2.0) @ b + 1.0)

    a, b = np.random.default_rng(1).random((2, 4, 4))
    c = kjit(f).lower(a, b)
    kinds = [type(g).__name__ for g in c.groups]
    assert kinds == ["Cluster", "Library", "Cluster"]
    np.testing.assert_allclose(kjit(f)(a, b), f(a, b), rtol=1e-13)


def test_buffers_are_reused_between_kernels(monkeypatch):
    monkeypatch.setenv("SCIML_WAVEFRONT", "off")  # fuse's kernels, before any sweep joins them
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "0")  # and no stencil recomputes its operand
    def f(u):
        for _ in range(4):
            u = snp.shift(np.sin(u), (1,), boundary="periodic")
        return u

    u = np.linspace(0, 1, 1000)
    c = kjit(f).lower(u)
    # sin | shift sin | shift sin | shift sin | shift: each stencil read starts a kernel
    assert c.count_kernels() == 5 and c.temporaries() == 4
    # four intermediates of 8000 bytes, but only two live at once
    assert c.plan.buffer_bytes == 2 * 8000
    np.testing.assert_allclose(kjit(f)(u), f(u), rtol=1e-13)


def test_reuse_outputs_returns_plan_owned_arrays():
    f = kjit(lambda x: x * 2.0, reuse_outputs=True)
    a = f(np.ones(3))
    b = f(np.full(3, 2.0))
    assert np.shares_memory(a, b) and a[0] == 4.0
    g = kjit(lambda x: x * 2.0)
    assert not np.shares_memory(g(np.ones(3)), g(np.ones(3)))


def test_control_flow_bodies_are_compiled():
    def f(u):
        return sciml.fori_loop(0, 5, lambda i, v: v + 0.1 * (snp.shift(v, (1,), "periodic") - v),
                               u)

    u = np.sin(np.linspace(0, 6, 32))
    np.testing.assert_allclose(kjit(f)(u), eval_graph(sciml.make_graph(f, u), u), rtol=1e-13)


def test_decorator_and_signature_cache():
    @kjit
    def f(x):
        return x + 1

    f(np.zeros(3))
    f(np.ones(3))
    f(np.zeros(4, np.float32))
    assert len(f.compiled) == 2
    assert f(np.zeros(2, np.int32)).dtype == np.int32


def test_unavailable_backends_raise_before_running():
    with pytest.raises(UnsupportedError, match="backend 'tpu'"):
        kjit(chain, backend="tpu")
    for b in ("gpu", "npu"):
        try:
            jit.target(b)
        except UnsupportedError as e:
            assert repr(b) in str(e)


def test_missing_template_is_a_clear_error():
    with pytest.raises(UnsupportedError, match="no template for frobnicate at dtype int8"):
        templates.render(cpu.TABLE, "frobnicate", ["x"], {}, "int8")


SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(graphgen.programs(), graphgen.param_shapes(), st.data())
def test_random_programs_match_the_interpreter(program, shapes, data):
    g = graphgen.trace(program, shapes)
    xs = [data.draw(graphgen.arrays(s)) for s in shapes]
    want = eval_graph_flat(g, xs)
    c = jit.compile_graph(g)
    for k in c.kernels.values():  # loop kernels, and the sweeps the wavefront pass made
        is_sweep = isinstance(k, wavefront.WavefrontKernel)
        (wavefront.verify_wavefront if is_sweep else loopir.verify_kernel)(k)
    got = c.plan(xs)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300)


def _largest_argument(ops, x) -> float:
    """The largest |argument| of an exp, sin or tanh in the chain, evaluated with numpy."""
    y, big = x.astype(np.float64), 0.0
    with np.errstate(all="ignore"):
        for op in ops:
            if op in ("sin", "exp", "tanh"):
                big = max(big, float(np.nanmax(np.abs(y * 0.5))))
                y = getattr(np, op)(y * 0.5)
            elif op == "mul":
                y = y * x
            elif op == "add":
                y = y + 1.5
            elif op == "sum":
                y = y + y.sum(axis=1, keepdims=True)
            elif op == "max":
                y = y + y.max()
            else:
                y = np.asarray(snp.shift(y, (1, -1), boundary="edge"))
    return big


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["float64", "float32"]), st.lists(st.sampled_from(
    ["sin", "exp", "tanh", "mul", "add", "shift", "sum", "max"]), min_size=1, max_size=6))
@example("float32", ["exp", "sum", "exp", "sin"])  # sin of arguments near 120
def test_random_chains_in_single_precision(dtype, ops):
    def f(x):
        y = x
        for op in ops:
            if op in ("sin", "exp", "tanh"):
                y = getattr(np, op)(y * 0.5)
            elif op == "mul":
                y = y * x
            elif op == "add":
                y = y + 1.5
            elif op == "shift":
                y = snp.shift(y, (1, -1), boundary="edge")
            else:
                y = y + (y.sum(axis=1, keepdims=True) if op == "sum" else y.max())
        return y

    x = np.random.default_rng(2).uniform(-1, 1, (7, 9)).astype(dtype)
    want = eval_graph(sciml.make_graph(f, x), x)
    got = kjit(f)(x)
    assert got.dtype == want.dtype
    if dtype == "float64":
        # Sums are added in another order than numpy's pairwise sum; a following exp or sin
        # turns that last-bit difference into an error proportional to its argument (sin of
        # exp(exp(..)) can see arguments of 1e10): scale the tolerance by the largest one.
        scale = max(1.0, _largest_argument(ops, x))
        np.testing.assert_allclose(got, want, rtol=1e-10 * scale, atol=1e-10 * scale)
        return
    # Chains like exp(sum(exp(..))) amplify float32 rounding: judge both float32 results by
    # their distance to the float64 answer (the kernel computes more in higher precision).
    # A sin of an argument a turns one rounding of a (or a sum added in another order) into
    # an error of about |a| float32 epsilons, whichever result is nearer by chance.
    truth = eval_graph(sciml.make_graph(f, x.astype(np.float64)), x.astype(np.float64))
    err_kernel = np.abs(got - truth)
    err_ref = np.abs(want - truth)
    amplified = 4 * np.finfo(np.float32).eps * _largest_argument(ops, x)
    assert np.all(err_kernel <= 2 * err_ref + 1e-5 * (1 + np.abs(truth)) + amplified)


@pytest.mark.parametrize("module", [fuse, loopir, lower, cpu, templates, jit, cache, halfconv])
def test_docstrings_run(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


def test_reuse_outputs_fed_back_as_input_stays_correct():
    step = kjit(lambda u: snp.shift(u, (1,), boundary="periodic") * 0.5 + u, reuse_outputs=True)
    u0 = np.arange(6.0)
    u, want = u0, u0
    for _ in range(3):
        u = step(u)
        want = np.roll(want, -1) * 0.5 + want
    np.testing.assert_allclose(u, want, rtol=1e-14)


def test_jit_of_grad_runs_fused():
    def f(x):
        return (np.sin(x) * np.exp(-x * x)).sum()

    x = np.linspace(-1, 1, 1000)
    g = kjit(sciml.grad(f))
    want = (np.cos(x) - 2 * x * np.sin(x)) * np.exp(-x * x)
    np.testing.assert_allclose(g(x), want, rtol=1e-12, atol=1e-15)
    assert g.lower(x).count_kernels() == 1


def test_jit_of_taylor_derivatives_runs_fused():
    from autodiff.taylor import derivatives

    def f(x):
        return np.sin(x) * np.exp(-x * x / 2) + x ** 3

    x = np.linspace(-2, 2, 1001)
    g = kjit(lambda x: derivatives(f, x, 8))
    got, want = g(x), derivatives(f, x, 8)
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=f"order {k}")
    assert g.lower(x).count_kernels() == 1


def test_kernel_verifier_names_the_broken_statement():
    from autodiff.errors import VerifyError
    from kernels.loopir import Buffer, Idx, Kernel, Let, Load, Op, Store

    ok = Kernel("k", (4,), [Buffer("in0", (4,), "float64")], [Buffer("out0", (4,), "float64")],
                [Let("a", Load("in0", (Idx(0),))), Store("out0", (Idx(0),), "a")])
    loopir.verify_kernel(ok)
    bad = Kernel("k", (4,), ok.inputs, ok.outputs,
                 [Let("a", Op("sin", ("b",), {})), Store("out0", (Idx(0),), "a")])
    with pytest.raises(VerifyError, match="unbound name"):
        loopir.verify_kernel(bad)
    with pytest.raises(VerifyError, match="index of rank 2"):
        loopir.verify_kernel(Kernel("k", (4,), ok.inputs, ok.outputs,
                                    [Let("a", Load("in0", (Idx(0), Idx(0))))]))


def test_pad_at_the_high_end_in_a_parallel_kernel():
    """A clamp of a bare loop index (padding only after the end) must stay an integer index
    in a prange loop, where numba may type the index as unsigned."""
    x = np.random.default_rng(3).standard_normal((40, 30, 30))
    f = lambda v: np.pad(v * 2.0, ((0, 3), (0, 0), (0, 0))) + 1.0  # noqa: E731
    np.testing.assert_allclose(kjit(f)(x), f(x), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_min_reductions_propagate_nan(dtype):
    """The reduction epilogues use llvm.maximum/minimum (vectorisable): NaN wins, as in numpy,
    over all axes and over the trailing axis, and -inf/+inf are ordinary values."""
    x = np.random.default_rng(7).standard_normal((40, 70)).astype(dtype)
    x[3, 5] = -np.inf
    f = kjit(lambda x: ((x * 2.0).max(), (x * 2.0).min(), (x + 1.0).max(axis=1)))
    got = f(x)
    want = ((x * 2.0).max(), (x * 2.0).min(), (x + 1.0).max(axis=1))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    x[11, 2] = np.nan
    big, small, rows = f(x)
    assert np.isnan(big) and np.isnan(small)
    assert np.isnan(rows[11]) and not np.isnan(np.delete(rows, 11)).any()


def _put_column(a, i, value):
    """``a`` with column ``i`` replaced by ``value`` (a boundary condition, as GOMD's)."""
    col = np.arange(a.shape[-1]) == i
    return np.where(col, value[..., None], a)


def test_small_values_are_made_first_so_boundary_selects_fuse(monkeypatch):
    """Selects writing boundary columns computed between them fuse into one pass once the
    columns (small domains) are computed first (``fuse.hoist_small``); results are the same."""
    r = np.random.default_rng(5)
    a, b = r.random((6, 7, 40)), r.random((6, 7, 40))

    def f(a, b):
        u = a * 2.0
        u = _put_column(u, 0, np.sqrt(b[:, :, 1]) + 1.0)
        u = _put_column(u, 39, b[:, :, 38] * 3.0)
        u = _put_column(u, 1, b[:, :, 2] * b[:, :, 2] - 0.5)
        return u + b

    want = eval_graph_flat(sciml.make_graph(f, a, b), [a, b])[0]

    def big_kernels():
        c = jit.compile_graph(sciml.make_graph(f, a, b))
        got = c.plan([a, b])[0]
        np.testing.assert_array_equal(got, want)
        return sum(1 for g in c.groups
                   if isinstance(g, fuse.Cluster) and g.domain == a.shape)

    assert big_kernels() == 1
    monkeypatch.setattr(fuse, "HOIST_RATIO", 0)  # off: a pass per select
    assert big_kernels() == 4


def test_hoisting_keeps_every_node_after_its_inputs():
    """A random program's nodes, reordered, still come after the nodes that make their
    inputs, and each node appears once."""
    g = sciml.make_graph(
        lambda a, b: np.where(np.arange(9) == 3, (a[:, :, 2] * b[:, :, 4])[..., None],
                              np.sin(a) * b).sum(axis=2) + a[:, 0, 0][:, None],
        np.zeros((5, 4, 9)), np.zeros((5, 4, 9)))
    nodes = fuse.live_nodes(g)
    order = fuse.hoist_small(nodes)
    assert sorted(map(id, order)) == sorted(map(id, nodes)) and order != nodes
    made = {p.id for p in g.params}
    for n in order:
        assert all(a.id in made for a in n.inputs if hasattr(a, "id")), n
        made.update(o.id for o in n.outputs)
