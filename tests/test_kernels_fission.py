"""Loop fission by memory streams (kernels/cpu.py ``split_row``): a point body touching many
arrays runs as several loops over each row, each touching few arrays for the first time.

The split only reorders work within a row and passes values through row buffers of their own
dtype, so split and unsplit kernels agree bit for bit, and both agree with the interpreter."""

import numpy as np
import pytest

import sciml.numpy as snp
from autodiff.interpret import eval_graph_flat
from autodiff.trace import make_graph
from kernels import cpu
from kernels import jit as kjit
from kernels.loopir import Buffer, Idx, Kernel, Let, Load, Op, Store
from kernels.wavefront import WavefrontKernel


@pytest.fixture(autouse=True)
def _small_kernels_too(monkeypatch):
    """Splitting is for large kernels; the tests lower the size limits to split small ones."""
    monkeypatch.setattr(cpu, "FISSION_MIN_POINTS", 0)
    monkeypatch.setattr(cpu, "FISSION_MIN_ROW", 4)
    monkeypatch.setattr(cpu, "FISSION_STREAMS", 4)


def _many(*xs):
    """Reads of many arrays, with a comparison, a select and an integer carried across."""
    acc = xs[0] * xs[1]
    big = xs[2] > 0.5
    count = (xs[3] > 0.2).astype(np.int64)
    for i, x in enumerate(xs[4:]):
        acc = acc + (x if i % 3 else np.sqrt(np.abs(x))) * xs[i % 5]
    return np.where(big, acc, -acc) * count, acc - xs[7]


def _compare(monkeypatch, fn, args, rtol=1e-13):
    """Split == unsplit bit for bit, both near the interpreter; returns the split sources."""
    g = make_graph(fn, *args)
    want = eval_graph_flat(g, list(args))
    split = kjit.compile_graph(g)
    monkeypatch.setattr(cpu, "FISSION_STREAMS", 0)
    plain = kjit.compile_graph(make_graph(fn, *args))
    for a, b, w in zip(split.plan(list(args)), plain.plan(list(args)), want):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, w, rtol=rtol, atol=rtol)
    return split


@pytest.mark.parametrize("shape,dtype", [((3, 5, 70), "float64"), ((2, 3, 33), "float32")])
def test_split_kernel_is_exact(monkeypatch, shape, dtype):
    rng = np.random.default_rng(0)
    xs = [rng.random(shape).astype(dtype) for _ in range(14)]
    c = _compare(monkeypatch, _many, xs, rtol=1e-13 if dtype == "float64" else 1e-5)
    src = "\n".join(c.sources.values())
    last = f"i{len(shape) - 1}"
    assert src.count(f"for {last} in range") >= 3  # the row runs as several loops
    assert f"tw_{dtype}_0 = np.empty(" in src  # allocated per plane: per thread
    for d in ("bool", "int64", dtype):
        assert f"tw_{d}_0" in src, d  # values of each dtype carried in a buffer of that dtype


def test_split_with_stencil_borders(monkeypatch):
    """Rows peeled into border, interior and border: the interior is split, borders are not,
    and edge, zero and periodic reads stay right."""
    rng = np.random.default_rng(1)
    xs = [rng.random((4, 9, 40)) for _ in range(10)]

    def f(*xs):
        acc = snp.shift(xs[0], (0, 1, -1), boundary="edge") * xs[1]
        for x in xs[2:6]:
            acc = acc + snp.shift(x, (0, 0, 2), boundary="zero") * x
        for x in xs[6:]:
            acc = acc - snp.shift(x, (1, 0, -1), boundary="periodic")
        return acc

    c = _compare(monkeypatch, f, xs)
    assert "tw_float64_0" in "\n".join(c.sources.values())


def test_reductions_are_not_split(monkeypatch):
    """Loops accumulating a reduction keep one loop (the row buffers would carry the sum)."""
    xs = [np.random.default_rng(2).random((3, 5, 64)) for _ in range(9)]

    def f(*xs):
        return sum(x * (i + 1) for i, x in enumerate(xs)).sum(axis=2)

    c = _compare(monkeypatch, f, xs)
    assert "tw_" not in "\n".join(c.sources.values())


def test_off_switch_and_size_limits(monkeypatch):
    xs = [np.random.default_rng(3).random((2, 4, 64)) for _ in range(9)]

    def f(*xs):
        return sum(x * (i + 1) for i, x in enumerate(xs))

    def sources():
        return "\n".join(kjit.compile_graph(make_graph(f, *xs)).sources.values())

    assert "tw_" in sources()
    monkeypatch.setattr(cpu, "FISSION_MIN_ROW", 65)  # rows of 64 points are left whole
    assert "tw_" not in sources()
    monkeypatch.setattr(cpu, "FISSION_MIN_ROW", 4)
    monkeypatch.setattr(cpu, "FISSION_MIN_POINTS", 2 * 4 * 64 + 1)
    assert "tw_" not in sources()
    monkeypatch.setattr(cpu, "FISSION_MIN_POINTS", 0)
    monkeypatch.setattr(cpu, "FISSION_STREAMS", 0)
    assert "tw_" not in sources()


def test_groups_touch_few_new_arrays():
    """Each loop of a split row reads or writes at most FISSION_STREAMS arrays not touched by
    an earlier loop; loads are repeated where their values are used."""
    n = 12
    body = [Let(f"a{j}", Load(f"in{j}", (Idx(0), Idx(1)))) for j in range(n)]
    body.append(Let("s1", Op("add", ("a0", "a1"), {})))
    for j in range(2, n):
        body.append(Let(f"s{j}", Op("add", (f"s{j - 1}", f"a{j}"), {})))
    body.append(Let("t", Op("mul", (f"s{n - 1}", "a0"), {})))
    body += [Store("out0", (Idx(0), Idx(1)), f"s{n // 2}"), Store("out1", (Idx(0), Idx(1)), "t")]
    lets = {s.name: s for s in body if isinstance(s, Let)}
    groups = cpu._stream_groups(body, lets, set(), 4, 2)
    seen = set()
    for g in groups:
        touched = {s.buf for s in g if isinstance(s, Store)}
        touched |= {lets[a].expr.buf for s in g for a in cpu._reads(s)
                    if a in lets and isinstance(lets[a].expr, Load)}
        assert len(touched - seen) <= 4
        seen |= touched
    assert len(groups) >= 3
    assert seen == {f"in{j}" for j in range(n)} | {"out0", "out1"}
    idx = (Idx(0), Idx(1), Idx(2))
    body = [Let(s.name, Load(s.expr.buf, idx)) if isinstance(s, Let) and isinstance(s.expr, Load)
            else Store(s.buf, idx, s.value) if isinstance(s, Store) else s for s in body]
    shape = (2, 3, 70)
    k = Kernel("k", shape, [Buffer(f"in{j}", shape, "float64") for j in range(n)],
               [Buffer("out0", shape, "float64"), Buffer("out1", shape, "float64")], body)
    src = cpu.print_kernel(k, name="kernel")
    assert src.count("for i2 in range(0, 70):") == len(groups)
    assert src.count("= in0[i0, i1, i2]") == 2  # a0 loaded again where t uses it


def test_wavefront_levels_get_row_buffers(monkeypatch):
    """Levels of a sweep are split too; the sweep passes each band its own row buffers."""
    monkeypatch.setenv("SCIML_WAVEFRONT_MIN_BYTES", "0")
    monkeypatch.setenv("SCIML_RECOMPUTE_MAX", "0")
    rng = np.random.default_rng(4)
    xs = [rng.random((6, 8, 48)) for _ in range(8)]

    def f(u, *cs):
        for _ in range(2):
            lap = sum(snp.shift(u, o, boundary="zero")
                      for o in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0)))
            u = u + sum(c * lap * (j + 1) for j, c in enumerate(cs))
        return u

    monkeypatch.setenv("SCIML_WAVEFRONT", "auto")
    c = _compare(monkeypatch, f, xs, rtol=1e-12)
    wk = [k for k in c.kernels.values() if isinstance(k, WavefrontKernel)]
    assert wk, "the chain is one sweep"
    src = "\n".join(c.sources.values())
    assert "tw_float64_0" in src and "tmp_float64_0[" in src


# -- reductions in kernels that also store: each row's values reduced after the row ---------


def _row_reduced(fn, *args):
    """Compile ``fn`` on the CPU; return (outputs, sources of its kernels)."""
    f = kjit.jit(fn)
    return f(*args), [src for src in f.lower(*args).sources.values()]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reductions_beside_stores_reduce_rows_after_them(dtype, monkeypatch):
    """A kernel that stores arrays and reduces a value keeps each row's values in a row
    buffer and reduces them in order after the row (the row loop then vectorises): bit for
    bit what accumulating at each point gives, NaN and stencil borders included, and near
    the interpreter (numpy sums rows pairwise; float32 sums accumulate in float64)."""
    monkeypatch.setattr(cpu, "ROW_REDUCE_MIN_ROW", 8)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 96)).astype(dtype)
    x[3, 7] = np.nan
    y = rng.standard_normal((40, 96)).astype(dtype)
    progs = [
        lambda x, y: (x * 2.0 + y, np.max(np.abs(x * 2.0 + y))),  # full reduction
        lambda x, y: (x * y, (x * y + snp.shift(x, (0, 1))).sum(axis=1)),  # row sums, border
        lambda x, y: (snp.shift(x, (1, -1), boundary="edge") - y,
                      np.min(snp.shift(x, (1, -1), boundary="edge") - y, axis=1),
                      (x * y).sum()),
        # rank 3: reductions over the two trailing axes, and over the last one
        lambda x, y: (x.reshape(4, 10, 96) * 3.0,
                      (x.reshape(4, 10, 96) * 3.0 - 1.0).sum(axis=(1, 2)),
                      np.max(x.reshape(4, 10, 96) * y.reshape(4, 10, 96), axis=2)),
    ]
    for fn in progs:
        got, sources = _row_reduced(fn, x, y)
        assert any("rv0 = np.empty" in s for s in sources), sources
        with monkeypatch.context() as m:
            m.setattr(cpu._Printer, "row_reduce", lambda self: True)
            at_points, sources = _row_reduced(fn, x, y)
            assert not any("rv0" in s for s in sources)
        want = eval_graph_flat(make_graph(fn, x, y), [x, y])
        for g, p, w in zip(got, at_points, want):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(p))
            np.testing.assert_allclose(np.asarray(g, np.float64), w.astype(np.float64),
                                       rtol=1e-12 if dtype == np.float64 else 1e-5, atol=1e-5)
