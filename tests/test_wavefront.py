"""The wavefront pass (kernels/wavefront.py): chains of stencil kernels run as one sweep and give
what the unblocked chain gives, bit for bit, and what the reference interpreter gives."""

import numpy as np
import pytest

import sciml.numpy as snp
from autodiff.errors import VerifyError
from autodiff.interpret import eval_graph_flat
from autodiff.trace import make_graph
from kernels import jit as kjit
from kernels import wavefront
from kernels.loopir import Store
from kernels.wavefront import Wavefront, WavefrontKernel


def _stencil(u, radius, boundary, axes):
    """Sum of the neighbours at distance 1..radius along ``axes``, minus their count times u."""
    nd = u.ndim
    acc = -2.0 * radius * len(axes) * u
    for ax in axes:
        for r in range(1, radius + 1):
            for sign in (1, -1):
                off = [0] * nd
                off[ax] = sign * r
                acc = acc + snp.shift(u, tuple(off), boundary=boundary)
    return acc


def _chain(steps, radius=1, boundary="zero", axes=None, extra=False):
    def f(u, c, a=None):
        for _ in range(steps):
            lap = _stencil(u, radius, boundary, axes if axes is not None else range(u.ndim))
            u = u + c * lap
            if extra:  # pointwise work and a second read-only array
                u = u + 0.01 * np.sin(u) * a
        return u
    return f


@pytest.fixture(autouse=True)
def _small_arrays_too(monkeypatch):
    """The pass leaves arrays under 4 MiB alone (they stay in cache); tests use small ones.
    Opt-in recomputation (cheap levels read by few stencils: two steps of a 1-D chain in one
    kernel) stays off: these tests build sweeps from one kernel per step."""
    monkeypatch.setenv("SCIML_WAVEFRONT_MIN_BYTES", "0")
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "0")


def test_sweeps_of_recomputing_kernels_are_exact(monkeypatch):
    """With recomputation on, pairs of steps share a kernel and the sweep chains those."""
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "24")
    monkeypatch.setenv("SCIML_RECOMPUTE_MIN_BYTES", "0")
    u = _grid((16, 40), "float64")
    f = _chain(6, 1, "zero", axes=(0,))
    assert _compile(monkeypatch, f, (u, np.asarray(0.1)), "off").count_kernels() == 3
    c = _check(monkeypatch, f, (u, np.asarray(0.1)))
    assert any(isinstance(g, Wavefront) for g in c.groups)


def _compile(monkeypatch, fn, args, mode="auto"):
    monkeypatch.setenv("SCIML_WAVEFRONT", mode)
    return kjit.compile_graph(make_graph(fn, *args))


def _check(monkeypatch, fn, args, kernels=1, mode="auto", rtol=1e-12):
    """Blocked == unblocked bit for bit, both match the interpreter; returns the blocked plan."""
    g = make_graph(fn, *args)
    want = eval_graph_flat(g, list(args))
    flat = list(args)
    blocked = _compile(monkeypatch, fn, args, mode)
    plain = _compile(monkeypatch, fn, args, "off")
    assert blocked.count_kernels() == kernels
    assert plain.count_kernels() >= kernels
    for k in blocked.kernels.values():
        if isinstance(k, WavefrontKernel):
            wavefront.verify_wavefront(k)
    for got, ref, w in zip(blocked.plan(flat), plain.plan(flat), want):
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_allclose(got, w, rtol=rtol, atol=rtol)
    return blocked


def _grid(shape, dtype, seed=0):
    return np.random.default_rng(seed).random(shape).astype(dtype)


CASES = [  # (shape, dtype, steps, radius, boundary)
    ((37,), "float64", 3, 1, "zero"),
    ((29,), "float32", 4, 2, "periodic"),
    ((23,), "float64", 5, 2, "edge"),
    ((19, 11), "float64", 6, 1, "periodic"),
    ((17, 9), "float32", 2, 2, "zero"),
    ((13, 7, 6), "float64", 10, 1, "zero"),
    ((11, 6, 5), "float32", 3, 2, "edge"),
    ((9, 5, 4), "float64", 4, 1, "periodic"),
]


@pytest.mark.parametrize("shape,dtype,steps,radius,boundary", CASES)
def test_chain_is_one_kernel_and_exact(monkeypatch, shape, dtype, steps, radius, boundary):
    u = _grid(shape, dtype)
    c = np.asarray(0.05, dtype)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    _check(monkeypatch, _chain(steps, radius, boundary), (u, c), rtol=rtol)


@pytest.mark.parametrize("boundary", ["zero", "periodic"])
def test_pointwise_work_and_a_second_array(monkeypatch, boundary):
    u, a = _grid((15, 12), "float64"), _grid((15, 12), "float64", 1)
    fn = _chain(4, 1, boundary, extra=True)
    _check(monkeypatch, fn, (u, np.asarray(0.1), a))


def test_mixed_boundaries_along_axis_0(monkeypatch):
    """A periodic read of a level that reads with clamped edges cannot share its sweep (the
    clamped level would need virtual planes beyond the edges): the chain splits there, into
    edge-edge and periodic-periodic-zero, and results stay exact."""
    def f(u):
        for b in ("edge", "edge", "periodic", "periodic", "zero"):
            u = u + 0.1 * (snp.shift(u, (1, 0), b) + snp.shift(u, (-1, 0), b) - 2.0 * u)
        return u
    c = _check(monkeypatch, f, (_grid((14, 5), "float64"),), kernels=2)
    assert sum(isinstance(g, Wavefront) for g in c.groups) == 2


def test_two_level_recurrence(monkeypatch):
    """The wave equation reads the two previous levels: rings for both, one kernel."""
    def f(u0, u1):
        for _ in range(6):
            lap = snp.shift(u1, (1, 0)) + snp.shift(u1, (-1, 0)) + snp.shift(u1, (0, 1)) \
                + snp.shift(u1, (0, -1)) - 4.0 * u1
            u0, u1 = u1, 2.0 * u1 - u0 + 0.2 * lap
        return u1
    _check(monkeypatch, f, (_grid((12, 10), "float64"), _grid((12, 10), "float64", 1)))


def test_returned_intermediate_is_still_written(monkeypatch):
    def f(u):
        mid = None
        for i in range(4):
            u = u + 0.1 * (snp.shift(u, (1,)) + snp.shift(u, (-1,)) - 2.0 * u)
            if i == 1:
                mid = u
        return u, mid
    c = _check(monkeypatch, f, (_grid((21,), "float64"),))
    (wf,) = [g for g in c.groups if isinstance(g, Wavefront)]
    assert len(wf.outputs) == 2


def test_library_node_reading_an_intermediate_ends_the_chain(monkeypatch):
    def f(u):
        for i in range(5):
            u = u + 0.1 * (snp.shift(u, (1,)) + snp.shift(u, (-1,)) - 2.0 * u)
            if i == 2:
                u = u + np.sort(u)[::-1] * 0.0 + np.sort(u)
        return u
    c = _check(monkeypatch, f, (_grid((16,), "float64"),), kernels=2)
    assert [len(g.members) for g in c.groups if isinstance(g, Wavefront)] == [3, 3]


def test_reads_across_axis_0_are_not_blocked(monkeypatch):
    """A transpose reads whole columns of the previous level: no sweep along axis 0."""
    def f(u):
        for _ in range(3):
            u = u + 0.1 * snp.shift(u, (1, 0)) + 0.1 * u.T
        return u
    _check(monkeypatch, f, (_grid((8, 8), "float64"),), kernels=3)


def test_half_types_are_not_blocked(monkeypatch):
    import ml_dtypes

    u = _grid((16,), "float32").astype(ml_dtypes.bfloat16)
    c = _compile(monkeypatch, _chain(3), (u, np.asarray(0.1, ml_dtypes.bfloat16)))
    assert c.count_kernels() == 3


def test_arrays_that_fit_in_cache_are_left_alone(monkeypatch):
    monkeypatch.delenv("SCIML_WAVEFRONT_MIN_BYTES")
    args = (_grid((64, 64), "float64"), np.asarray(0.1))
    assert _compile(monkeypatch, _chain(3), args).count_kernels() == 3
    monkeypatch.setenv("SCIML_WAVEFRONT_MIN_BYTES", str(64 * 64 * 8))
    assert _compile(monkeypatch, _chain(3), args).count_kernels() == 1


def test_ring_budget_splits_a_long_chain(monkeypatch):
    """Rings that would outgrow SCIML_WAVEFRONT_BYTES end the chain; the pieces stay exact."""
    u = _grid((16, 64), "float64")
    monkeypatch.setenv("SCIML_WAVEFRONT_BYTES", str(6 * 4 * 64 * 8))  # ~6 rings of 4 planes
    c = _compile(monkeypatch, _chain(10), (u, np.asarray(0.1)))
    sizes = [len(g.members) for g in c.groups if isinstance(g, Wavefront)]
    assert len(sizes) > 1 and sum(sizes) == 10 and c.count_kernels() == len(sizes)
    for k in c.kernels.values():
        assert k.sched.ring_bytes <= 6 * 4 * 64 * 8
    plain = _compile(monkeypatch, _chain(10), (u, np.asarray(0.1)), "off")
    np.testing.assert_array_equal(c.plan([u, np.asarray(0.1)])[0],
                                  plain.plan([u, np.asarray(0.1)])[0])


def test_off_switch_keeps_one_kernel_per_step(monkeypatch):
    c = _compile(monkeypatch, _chain(4), (_grid((16,), "float64"), np.asarray(0.1)), "off")
    assert c.count_kernels() == 4
    assert not any(isinstance(g, Wavefront) for g in c.groups)


@pytest.mark.parametrize("shape,mode,boundary,split", [
    ((12, 48, 64), "slabs", "zero", "slabs"), ((12, 48, 64), "rows", "zero", "rows"),
    ((12, 48, 64), "auto", "periodic", "slabs"), ((12, 48, 64), "auto", "edge", "slabs"),
    ((12, 48, 64), "rows", "periodic", "rows"), ((6, 6000), "auto", "zero", "slabs"),
    ((6, 6000), "auto", "periodic", "slabs"), ((6, 6000), "rows", "edge", "rows")])
def test_threads_split_the_planes(monkeypatch, shape, mode, boundary, split):
    """Domains large enough for threads: bands of rows with halos, arcs modulo n1 where reads
    wrap around (slabs), or one parallel loop over the rows per step (rows)."""
    u = _grid(shape, "float32")
    c = _check(monkeypatch, _chain(4, 1, boundary), (u, np.asarray(0.1, np.float32)),
               mode=mode, rtol=1e-5)
    (k,) = c.kernels.values()
    assert k.split == split


@pytest.mark.parametrize("boundary,radius", [("zero", 1), ("periodic", 1), ("edge", 2)])
def test_sub_bands_of_a_thread_are_exact(monkeypatch, boundary, radius):
    """A tiny band budget cuts each thread's band of a rank-3 sweep into sub-bands swept one
    after another (halo rows recomputed by each, arcs where reads wrap), with a plane-shaped
    operand (a metric read at every level); a large budget keeps one band per thread."""
    monkeypatch.setenv("SCIML_WAVEFRONT_BAND_BYTES", "1")
    u, m = _grid((10, 70, 64), "float64"), _grid((70, 64), "float64", 1)

    def f(u, c, m):
        for _ in range(3):
            u = u + m * _stencil(u, radius, boundary, range(3)) * c
        return u
    c = _check(monkeypatch, f, (u, np.asarray(0.1), m), mode="slabs")
    (k,) = c.kernels.values()
    assert k.split == "slabs"
    rows = max(wavefront.SUB_BAND_MIN_ROWS, 4 * max(k.sched.halo))
    assert k.subbands == 70 // k.threads // rows > 1
    monkeypatch.setenv("SCIML_WAVEFRONT_BAND_BYTES", str(1 << 40))
    (k,) = _compile(monkeypatch, f, (u, np.asarray(0.1), m), "slabs").kernels.values()
    assert k.subbands == 1


def test_sweep_schedule_of_a_radius_2_chain(monkeypatch):
    """Delays grow by the radius (plus one when a step's rows run in parallel); a ring keeps
    the planes from the oldest read to the newest write; periodic levels add virtual planes."""
    u = _grid((20, 5), "float64")
    c = _compile(monkeypatch, _chain(3, 2, "periodic", axes=(0,)), (u, np.asarray(0.1)))
    (k,) = c.kernels.values()
    assert k.sched.delay == [0, 2, 4]
    assert k.sched.extent == [4, 2, 0]
    # u of levels 0 and 1 read at q - 2 .. q + 2 (the other rings hold the -4u each level
    # fuses for the next one, read at q)
    assert sorted(k.sched.ring.values()) == [3, 3, 5, 5]
    c = _compile(monkeypatch, _chain(3, 2, "zero", axes=(0,)), (u, np.asarray(0.1)))
    (k,) = c.kernels.values()
    assert k.sched.extent == [0, 0, 0]


def test_verifier_catches_a_ring_read_before_its_write(monkeypatch):
    c = _compile(monkeypatch, _chain(3), (_grid((16,), "float64"), np.asarray(0.1)))
    (k,) = c.kernels.values()
    wavefront.verify_wavefront(k)
    k.levels.reverse()
    with pytest.raises(VerifyError, match="reads ring"):
        wavefront.verify_wavefront(k)


def test_levels_store_rings_and_outputs_only(monkeypatch):
    c = _compile(monkeypatch, _chain(5), (_grid((16,), "float64"), np.asarray(0.1)))
    (k,) = c.kernels.values()
    stores = [s.buf for lv in k.levels for s in lv.body if isinstance(s, Store)]
    assert stores.count("out0") == 1
    assert all(s.startswith("ring") for s in stores if s != "out0")
    assert [b.name for b in k.outputs] == ["out0"]


def test_reads_across_axis_1_need_the_whole_plane(monkeypatch):
    """A read transposing axes 1 and 2 is no band's business: one parallel loop over the rows
    per step, after the previous level's plane is complete."""
    def f(u):
        for _ in range(3):
            u = u + 0.1 * snp.shift(u, (1, 0, 0)) + 0.1 * np.transpose(u, (0, 2, 1))
        return u
    c = _check(monkeypatch, f, (_grid((9, 64, 64), "float64"),))
    (k,) = c.kernels.values()
    assert k.split == "rows"
