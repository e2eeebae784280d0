"""GOMD through sciml.jit: the compiled step against the eager numpy step, the external loop
as one compiled function, restart and conservation on the compiled path, CPU vs GPU."""

import numpy as np
import pytest

from cases.gomd import init_state, load_config, make_params, step
from cases.gomd import io as gio
from cases.gomd.compiled import CompiledStep
from cases.gomd.diagnostics import totals
from kernels.plancode import PlanCode

TINY = {"im": 9, "jm": 7, "kb": 5}


@pytest.fixture(scope="module")
def classic():
    cfg = load_config("classic", **TINY)
    params = make_params(cfg)
    return cfg, params, CompiledStep(params)


def advance(fn, state, n):
    for _ in range(n):
        state = fn(state)
    return state


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))


def test_compiled_step_matches_eager(classic):
    cfg, params, fast = classic
    eager = advance(lambda s: step(s, params), init_state(params), 4)
    jitted = advance(fast, init_state(params), 4)
    assert set(eager) == set(jitted)
    assert jitted["iint"] == eager["iint"] == 4
    for k in eager:
        assert rel_diff(eager[k], jitted[k]) < 1e-10, k
    assert np.max(np.abs(jitted["u"])) > 0.0


def test_a_step_is_one_compiled_function(classic):
    cfg, params, fast = classic
    state = advance(fast, init_state(params), 2)
    c = fast.lower(state)
    # One whole-plan function: the sub-step loop runs inside it (no Python between the
    # sub-steps). The vertical sums, cumulative sums and tridiagonal solves run in the
    # kernels that compute their operands (kernels run axis 0 in order there), so nothing
    # in a step returns to Python and no coefficient array is stored.
    assert isinstance(c.plan, PlanCode), str(c)
    assert "for it" in c.plan.source
    assert {r.prim for r in c.routines.values()} <= {"reshape"}  # scalar reshapes only
    fused = "\n".join(c.sources.values())
    assert fused.count("tcp0[i0, i1 - r, i2] =") >= 4  # the forward sweeps of the solves


def test_restart_bit_for_bit_on_compiled_path(classic, tmp_path):
    cfg, params, fast = classic
    straight = advance(fast, init_state(params), 6)
    half = advance(fast, init_state(params), 3)
    path = str(tmp_path / "ck.npz")
    gio.save_checkpoint(path, half, cfg)
    resumed = advance(fast, gio.load_checkpoint(path, cfg), 3)
    for k in straight:
        np.testing.assert_array_equal(np.asarray(straight[k]), np.asarray(resumed[k]),
                                      err_msg=k)


def compiled_conservation(cfg, n):
    params = make_params(cfg)
    fast = CompiledStep(params)
    state = advance(fast, init_state(params), 2)
    a = totals(state, params)
    state = advance(fast, state, n)
    b = totals(state, params)
    assert np.max(np.abs(state["u"])) > 0.0
    return ((b["vtot"] - a["vtot"]) / a["vtot"], (b["tsalt"] - a["tsalt"]) / a["tsalt"])


@pytest.mark.slow
def test_compiled_conservation_closed_basin_short():
    dvol, dsalt = compiled_conservation(load_config("closed", **TINY), 100)
    assert abs(dvol) < 1e-10 and abs(dsalt) < 1e-10


@pytest.mark.slow
def test_compiled_conservation_closed_basin_1000_steps():
    dvol, dsalt = compiled_conservation(load_config("closed"), 1000)
    assert abs(dvol) < 1e-10 and abs(dsalt) < 1e-10


@pytest.mark.gpu
def test_cpu_and_gpu_agree_after_100_steps():
    """The GPU run against the CPU run of the numpy step (which the CPU plans equal bit for
    bit: test_compiled_step_matches_eager), 65x49x21 float64, 100 internal steps."""
    from autodiff.errors import UnsupportedError
    from cases.gomd.compiled import host_state

    cfg = load_config("classic")
    params = make_params(cfg)
    try:
        gpu = CompiledStep(params, backend="gpu")
    except UnsupportedError as e:
        pytest.skip(f"no GPU backend here: {e}")
    a = advance(lambda s: step(s, params), init_state(params), 100)
    b = host_state(advance(gpu, init_state(params), 100))
    assert b["iint"] == a["iint"] == 100
    for k in ("u", "v", "ua", "va", "el", "t", "s", "q2", "q2l", "km"):
        assert rel_diff(a[k], b[k]) < 1e-10, k


def test_open_boundary_conditions_are_one_pass_over_the_fields():
    """The 3-D velocity and tracer boundary conditions (pom2k bcond 3, 4) set columns and rows
    with selects that read each field only where they write it: after the fields are made,
    one 3-D kernel applies each condition (before: 6 and 4 passes). Same values as the
    formulation that copies column 2 into column 1 (put_i of col)."""
    import sciml
    from cases.gomd import boundary
    from cases.gomd.compiled import runtime_fields, static_fields
    from cases.gomd.regions import col, put_i, put_j, row, set_i, set_j

    cfg = load_config("classic", im=17, jm=13, kb=5)
    params = make_params(cfg)
    fields, static = runtime_fields(params), static_fields(params)
    shape = (5, 13, 17)
    r = np.random.default_rng(0)
    a, b, c, d = (r.random(shape) for _ in range(4))

    def vel(uf, vf, u, v, f):
        return boundary.velocity(uf * 1.5, vf * 1.5, u, v, {**static, **f}, cfg)

    def tra(tf, sf, t, s, f):
        p = {**static, **f}
        return boundary.tracers(tf * 1.5, sf * 1.5, t, s, t, s, s, p["h"] + 1.0, p, cfg)

    for fn, passes in ((vel, 1), (tra, 1)):
        c3 = [g for g in sciml.jit(fn).lower(a, b, c, d, fields).groups
              if getattr(g, "domain", None) == shape and "select" in str(g)]
        assert len(c3) == passes, [str(g) for g in c3]
        # the masks stay factored (a column and a profile), not one of the field's shape
        assert not any(tuple(v.aval.shape) == shape and str(v.aval.dtype) == "bool"
                       for g in c3 for v in g.inputs)
        np.testing.assert_array_equal(sciml.jit(fn)(a, b, c, d, fields),
                                      fn(a, b, c, d, fields))
    inner = np.arange(13) % 3 > 0
    upper = (np.arange(5) < 4)[:, None]
    v2, v3 = r.random((5, 13)), r.random((5, 17))
    for w in (inner, upper & inner, True):
        np.testing.assert_array_equal(set_i(a, 2, v2, w), put_i(a, 2, np.where(w, v2, col(a, 2))))
    inner_i = np.arange(17) % 4 > 0
    for w in (inner_i, upper & inner_i, True):
        np.testing.assert_array_equal(set_j(a, 4, v3, w), put_j(a, 4, np.where(w, v3, row(a, 4))))
        np.testing.assert_array_equal(set_j(a, 1, 0.0, w), put_j(a, 1, np.where(w, 0.0, row(a, 1))))


@pytest.mark.parametrize("shape", [(3, 3), (5, 7), (4, 6, 9)])
def test_edge_copies_are_one_pass(shape):
    """pom2k's edge copies (sea level: bcond 1; km/kh: the turbulence closure's cosmetic
    edges) equal the sequence of column and row copies they replace, bit for bit, eagerly
    and compiled, and each compiles to one kernel after the field's own (before: four)."""
    import sciml
    from cases.gomd.regions import col, copy_edges, put_i, put_j, row

    def copies(k, fsm=None):
        jm, im = k.shape[-2:]
        s = (lambda x, j: x) if fsm is None else (lambda x, j: x * j)
        k = put_j(k, jm, s(row(k, jm - 1), None if fsm is None else row(fsm, jm)))
        k = put_j(k, 1, s(row(k, 2), None if fsm is None else row(fsm, 1)))
        k = put_i(k, im, s(col(k, im - 1), None if fsm is None else col(fsm, im)))
        return put_i(k, 1, s(col(k, 2), None if fsm is None else col(fsm, 1)))

    r = np.random.default_rng(1)
    a, fsm = r.standard_normal(shape), r.random(shape[-2:]) + 0.5
    f = sciml.jit(lambda a, fsm: (copy_edges(a * 2.0), copy_edges(a * 2.0, fsm)))
    for got, want in zip(f(a, fsm), (copies(a * 2.0), copies(a * 2.0, fsm))):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(copy_edges(a, fsm), copies(a, fsm))
    np.testing.assert_array_equal(copy_edges(a), copies(a))
    # the field's own kernel, then at most one per edge copy (shifts of the 2-D fsm that
    # 3-D kernels read are made once, apart)
    groups = [g for g in f.lower(a, fsm).groups if getattr(g, "domain", None) == shape]
    assert len(groups) <= 3, [str(g) for g in groups]
    with pytest.raises(ValueError, match="3 rows and 3 columns"):
        copy_edges(np.zeros((2, 5)))
