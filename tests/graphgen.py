"""Random graphs for the pass tests: random Python programs traced into graphs.

A program is a list of instructions over a pool of values (the parameters first). Each
instruction appends one value: an elementwise unary or binary op, an op with a special constant
(0, -0.0, 1, NaN, Inf, ...), a traced constant expression, a reduction, a broadcast, a reshape
or transpose pair, a select, a call of a graph function, a cond, or a repeat of an earlier
instruction (a common subexpression); with ``loops=True`` also scan, fori_loop and while_loop.
Only some values are returned, so the rest is dead code.
``trace(program)`` gives the graph, ``arrays(shape)`` inputs with special values, and
``assert_same`` compares results bit for bit (NaN positions equal, the sign of zero included).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp

SHAPES = [(), (4,), (2, 2)]
UNARY = ["neg", "sin", "exp", "sqrt", "log", "abs", "tanh", "floor", "square"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "power"]
SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, float("nan"), float("inf"), -float("inf")]


@sciml.function
def helper(x):
    """A small non-recursive graph function, so random graphs contain ``call`` nodes."""
    return snp.sin(x) * 2.0 + x


def _fit(a, b):
    """Make ``b`` broadcast against ``a`` (sizes are 1 or 4): reshape (4,) <-> (2, 2)."""
    if a.ndim and b.ndim and a.shape != b.shape:
        return snp.reshape(b, a.shape)
    return b


def _const(value, strong):
    return np.float64(value) if strong else value  # Python floats are weak constants


def _apply(ins, pool):
    op = ins[0]
    a = pool[ins[1] % len(pool)]
    b = pool[ins[2] % len(pool)] if len(ins) > 2 and isinstance(ins[2], int) else None
    if op == "unary":
        return getattr(snp, {"neg": "negative"}.get(ins[2], ins[2]))(a)
    if op == "binary":
        fn = getattr(snp, {"div": "divide", "sub": "subtract", "mul": "multiply"}.get(
            ins[3], ins[3]))
        return fn(a, _fit(a, b))
    if op == "const":
        c = _const(ins[3], ins[4])
        fn = {"add": snp.add, "sub": snp.subtract, "mul": snp.multiply, "div": snp.divide}
        return fn[ins[2]](a, c) if ins[5] else fn[ins[2]](c, a)
    if op == "reduce":
        return snp.sum(a) if ins[2] else snp.max(a)
    if op == "iota":  # a traced constant expression: fold's food
        return a + snp.iota(a.shape, np.float64) * _const(ins[2], True)
    if op == "broadcast":
        return snp.broadcast_to(a, (2, 2)) if a.ndim == 0 else snp.broadcast_to(a, a.shape)
    if op == "reshape":
        if a.ndim:
            return snp.reshape(snp.reshape(a, (4,)), (2, 2))
        return snp.reshape(snp.reshape(a, (1,)), ())
    if op == "transpose":
        return snp.transpose(snp.transpose(a)) if a.ndim == 2 else snp.negative(snp.negative(a))
    if op == "select":
        return snp.where(a > _fit(a, b), a, _fit(a, b) * 1.0)
    if op == "call":
        return helper(a)
    if op == "cond":
        return sciml.cond(snp.sum(a) > 0.0, lambda: a * 2.0, lambda: a - 1.0)
    if op in LOOPS:
        return LOOPS[op](a, b, ins)
    raise AssertionError(op)


def _vec4(a):
    return snp.broadcast_to(a, (4,)) if a.ndim == 0 else snp.reshape(a, (4,))


def _scan(a, b, ins):
    """A scan over ``a`` (as 4 steps) carrying ``b``, with a capture, a cond inside and a dead
    value in the body."""
    scale = snp.sum(b) * 0.25  # captured by the body

    def step(c, t):
        dead = snp.exp(c) * t  # noqa: F841
        c = sciml.cond(t > 0.0, lambda: c * 0.5 + t * scale, lambda: c - t)
        return c, snp.sum(c) * 1.0 - t

    c, ys = sciml.scan(step, b, _vec4(a), reverse=bool(ins[3] % 2))
    return c + snp.sum(ys)


def _fori(a, b, ins):
    return sciml.fori_loop(0, ins[3] % 4, lambda k, c: snp.sin(c) + k * 1.0, a)


def _while(a, b, ins):
    return sciml.while_loop(lambda c: snp.sum(snp.abs(c)) < 10.0, lambda c: c * 2.0 + 1.0, a,
                            max_steps=5)


LOOPS = {"scan": _scan, "fori": _fori, "while": _while}


def run(program, *params):
    """Execute ``program`` on ``params`` (arrays or tracers); return the chosen outputs."""
    pool = list(params)
    instructions, returned = program
    for ins in instructions:
        if ins[0] == "repeat":
            ins = instructions[ins[1] % max(1, instructions.index(ins))] if ins[1] else ins
            if ins[0] == "repeat":
                continue
        pool.append(_apply(ins, pool))
    return tuple(pool[i % len(pool)] for i in returned)


def _instruction(loops: bool):
    idx = st.integers(0, 30)
    if loops:
        loop = st.tuples(st.sampled_from(sorted(LOOPS)), idx, idx, st.integers(0, 7))
        return st.one_of(loop, _instruction(False))
    return st.one_of(
        st.tuples(st.just("unary"), idx, st.sampled_from(UNARY)),
        st.tuples(st.just("binary"), idx, idx, st.sampled_from(BINARY)),
        st.tuples(st.just("const"), idx, st.sampled_from(["add", "sub", "mul", "div"]),
                  st.sampled_from(SPECIAL), st.booleans(), st.booleans()),
        st.tuples(st.just("reduce"), idx, st.booleans()),
        st.tuples(st.just("reshape"), idx),
        st.tuples(st.just("broadcast"), idx),
        st.tuples(st.just("iota"), idx, st.sampled_from(SPECIAL)),
        st.tuples(st.just("transpose"), idx),
        st.tuples(st.just("select"), idx, idx),
        st.tuples(st.just("call"), idx),
        st.tuples(st.just("cond"), idx),
        st.tuples(st.just("repeat"), st.integers(0, 30)),
    )


def programs(max_len: int = 12, loops: bool = False):
    """Strategy: (instructions, indices of the returned values). ``loops`` adds scan (with a
    cond, a capture and dead code in its body), fori_loop and while_loop instructions."""
    return st.tuples(st.lists(_instruction(loops), min_size=1, max_size=max_len),
                     st.lists(st.integers(-5, 40), min_size=1, max_size=3))


def param_shapes():
    return st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3)


def arrays(shape):
    """Strategy for float64 arrays mixing ordinary and special values."""
    n = int(np.prod(shape, dtype=int))
    elem = st.one_of(st.sampled_from(SPECIAL), st.floats(-3, 3))
    return st.lists(elem, min_size=n, max_size=n).map(lambda v: np.array(v).reshape(shape))


def trace(program, shapes):
    """Trace ``program`` on float64 parameters of the given shapes into a Graph."""
    return sciml.make_graph(lambda *xs: run(program, *xs), *[np.zeros(s) for s in shapes],
                            name="random")


def assert_same(got, want):
    """Equal dtype, shape and values bit for bit, except that NaNs only need equal positions."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (g, w)
        if np.iscomplexobj(w):
            assert_same([g.real, g.imag], [w.real, w.imag])
        elif w.dtype.kind in "fV":  # "V": bfloat16 and the other ml_dtypes floats
            nan = np.isnan(w)
            assert np.array_equal(np.isnan(g), nan), (g, w)
            assert np.array_equal(g[~nan], w[~nan]), (g, w)
            assert np.array_equal(np.signbit(g[~nan]), np.signbit(w[~nan])), (g, w)
        else:
            assert np.array_equal(g, w), (g, w)


def check_pass(run_pass, program, shapes, data, may_grow: bool = False):
    """Trace ``program``, run the pass and check: the result verifies, the input graph is not
    changed, the values agree bit for bit on inputs with special values, the node count does
    not grow (unless ``may_grow``). Returns (input graph, output graph)."""
    from autodiff.interpret import eval_graph_flat
    from autodiff.verify import verify

    g = trace(program, shapes)
    before = str(g)
    xs = [data.draw(arrays(s)) for s in shapes]
    want = eval_graph_flat(g, xs)
    h = run_pass(g)
    verify(h)
    assert str(g) == before, "the pass changed its input graph"
    assert_same(eval_graph_flat(h, xs), want)
    if not may_grow:
        assert h.count_nodes() <= g.count_nodes(), (str(g), str(h))
    return g, h
