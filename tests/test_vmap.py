"""vmap: every primitive of the table batched over each axis of each argument equals a Python
loop over the examples; nesting, control flow, pytrees of in_axes/out_axes, errors."""

import numpy as np
import pytest

import autodiff.checkpoint
import autodiff.custom
import sciml.numpy as snp  # noqa: F401  (registers numpy dispatch for traced arrays)
from autodiff.batching import BATCH_RULES, NEVER_BATCHED, vmap, vmap_graph
from autodiff.errors import ArityError, ShapeError, UnsupportedError
from autodiff.interpret import eval_graph
from autodiff.ops import control
from autodiff.ops.elementwise import BINARY, UNARY
from autodiff.primitives import PRIMITIVES
from autodiff.trace import bind, make_graph
from autodiff.verify import verify

P = PRIMITIVES
B = 3


def f64(rng, *shape, lo=0.2, hi=0.9):
    return rng.uniform(lo, hi, shape)


def _prim(name, **params):
    def fn(*args):
        return bind(P[name], *args, **params)

    fn.__name__ = name
    return fn


def _unary_case(name):
    if name == "not":
        return _prim(name), lambda r: [r.integers(0, 2, (3, 4)).astype(bool)]
    lo = 1.2 if name == "arccosh" else 0.2
    return _prim(name), lambda r: [f64(r, 3, 4, lo=lo, hi=lo + 0.7)]


def _binary_case(name):
    if name in ("and", "or", "xor"):
        return _prim(name), lambda r: [r.integers(0, 2, (3, 4)).astype(bool),
                                       r.integers(0, 2, (4,)).astype(bool)]
    return _prim(name), lambda r: [f64(r, 3, 4, lo=0.5, hi=1.5), f64(r, 4, lo=0.5, hi=1.5)]


def _graph_of(fn, *example):
    return make_graph(fn, *example)


_CALLEE = _graph_of(lambda a, b: (a * b + 1.0, a.sum()), np.zeros(4), np.zeros(4))


def _cond_case():
    def fn(p, x, y):
        return control.cond(p, lambda u, v: u * v, lambda u, v: u - v, x, y)

    return fn, lambda r: [np.asarray(r.uniform() > 0.5), f64(r, 4), f64(r, 4)]


def _switch_case():
    def fn(i, x):
        return control.switch(i, [lambda u: u + 1.0, lambda u: u * 2.0, lambda u: -u], x)

    return fn, lambda r: [np.asarray(r.integers(-1, 4)), f64(r, 3)]


def _while_case():
    def fn(x, s):
        return control.while_loop(lambda c: c[0].sum() < s, lambda c: (c[0] * 1.3, c[1] + 1),
                                  (x, 0))

    return fn, lambda r: [f64(r, 3), np.asarray(r.uniform(3.0, 9.0))]


def _fori_case():
    def fn(x, y):
        return control.fori_loop(0, 4, lambda i, c: c * y + i, x)

    return fn, lambda r: [f64(r, 3), f64(r, 3)]


def _scan_case():
    def fn(c0, xs, w):
        return control.scan(lambda c, x: (c * w + x, c.sum() * x), c0, xs)

    return fn, lambda r: [f64(r, 2), f64(r, 4, 2), f64(r, 2)]


def _sym(a):
    return a + a.T


def _checkpoint_case():
    return (autodiff.checkpoint.checkpoint(lambda x, y: np.sin(x) * y),
            lambda r: [f64(r, 3), f64(r, 3)])


def _custom_jvp_case():
    @autodiff.custom.custom_jvp
    def f(x, y):
        return np.exp(x) * y

    @f.defjvp
    def _(primals, tangents):
        (x, y), (tx, ty) = primals, tangents
        return f(x, y), np.exp(x) * (tx * y + ty)

    return f, lambda r: [f64(r, 3), f64(r, 3)]


def _custom_vjp_case():
    @autodiff.custom.custom_vjp
    def f(x):
        return np.tanh(x) * 2.0

    f.defvjp(lambda x: (np.tanh(x) * 2.0, x), lambda x, ct: (ct * 2.0 / np.cosh(x) ** 2,))
    return f, lambda r: [f64(r, 3)]


# Primitives that only appear inside transformed graphs (no user function binds them).
INTERNAL = {"custom_vjp_lin"}


def _ints(r, hi, *shape):
    return r.integers(-1, hi, shape).astype(np.int64)


CASES = {
    "integer_pow": (_prim("integer_pow", y=3), lambda r: [f64(r, 3, 4)]),
    "select": (_prim("select"), lambda r: [r.uniform(size=(3, 4)) > 0.5, f64(r, 3, 4),
                                           f64(r, 4)]),
    "convert": (_prim("convert", new_dtype=np.dtype("float32")), lambda r: [f64(r, 3, 4)]),
    "stop_gradient": (_prim("stop_gradient"), lambda r: [f64(r, 3, 4)]),
    "reduce_sum": (_prim("reduce_sum", axes=(1,), keepdims=False), lambda r: [f64(r, 3, 4)]),
    "reduce_prod": (_prim("reduce_prod", axes=(0, 1), keepdims=True), lambda r: [f64(r, 3, 4)]),
    "reduce_max": (_prim("reduce_max", axes=(0,)), lambda r: [f64(r, 3, 4)]),
    "reduce_min": (_prim("reduce_min", axes=(1,), keepdims=True), lambda r: [f64(r, 3, 4)]),
    "argmax": (_prim("argmax", axes=(1,)), lambda r: [f64(r, 3, 4)]),
    "argmin": (_prim("argmin", axes=(0,), keepdims=True), lambda r: [f64(r, 3, 4)]),
    "cumsum": (_prim("cumsum", axis=-1, reverse=True), lambda r: [f64(r, 3, 4)]),
    "sort": (_prim("sort", axis=0), lambda r: [f64(r, 3, 4)]),
    "argsort": (_prim("argsort", axis=1, descending=True), lambda r: [f64(r, 3, 4)]),
    "broadcast_in_dim": (_prim("broadcast_in_dim", shape=(2, 3, 4), broadcast_dimensions=(1, 2)),
                         lambda r: [f64(r, 1, 4)]),
    "reshape": (_prim("reshape", new_shape=(2, 6)), lambda r: [f64(r, 3, 4)]),
    "transpose": (_prim("transpose", permutation=(1, 0)), lambda r: [f64(r, 3, 4)]),
    "rev": (_prim("rev", axes=(1,)), lambda r: [f64(r, 3, 4)]),
    "slice": (_prim("slice", start=(0, 1), limit=(3, 4), strides=(2, 2)),
              lambda r: [f64(r, 3, 4)]),
    "pad": (_prim("pad", pad_width=((1, 0), (0, 2)), mode="edge"), lambda r: [f64(r, 3, 4)]),
    "concatenate": (_prim("concatenate", axis=1), lambda r: [f64(r, 3, 4), f64(r, 3, 2)]),
    "im2col": (_prim("im2col", kernel=(2,), stride=(1,), padding=((1, 0),), dilation=(2,)),
               lambda r: [f64(r, 3, 5, 2)]),
    "col2im": (_prim("col2im", shape=(5,), kernel=(2,), stride=(1,), padding=((1, 0),),
                     dilation=(2,)), lambda r: [f64(r, 3, 4, 2, 2)]),
    "shift": (_prim("shift", offset=(1, -1), boundary="periodic"), lambda r: [f64(r, 3, 4)]),
    "take": (_prim("take", axis=1), lambda r: [f64(r, 3, 4), _ints(r, 4, 2, 2)]),
    "scatter_add": (_prim("scatter_add", axis=0),
                    lambda r: [f64(r, 5, 3), _ints(r, 5, 4), f64(r, 4, 3)]),
    "dynamic_slice": (_prim("dynamic_slice", sizes=(2, 3)),
                      lambda r: [f64(r, 5, 4), np.asarray(r.integers(-1, 5)),
                                 np.asarray(r.integers(0, 3))]),
    "dynamic_update_slice": (_prim("dynamic_update_slice"),
                             lambda r: [f64(r, 5, 4), f64(r, 2, 3), np.asarray(r.integers(0, 5)),
                                        np.asarray(r.integers(0, 3))]),
    "dot_general": (_prim("dot_general", dimension_numbers=(((2,), (1,)), ((0,), (0,)))),
                    lambda r: [f64(r, 2, 3, 4), f64(r, 2, 4, 5)]),
    "call": (_prim("call", graph=_CALLEE), lambda r: [f64(r, 4), f64(r, 4)]),
    "cond": _cond_case(),
    "checkpoint": _checkpoint_case(),
    "custom_jvp_call": _custom_jvp_case(),
    "custom_vjp_call": _custom_vjp_case(),
    "while_loop": _while_case(),
    "fori_loop": _fori_case(),
    "scan": _scan_case(),
    "fft": (_prim("fft", axes=(1,)), lambda r: [f64(r, 3, 4).astype(complex)]),
    "ifft": (_prim("ifft", axes=(0, 1)), lambda r: [f64(r, 3, 4).astype(complex)]),
    "rfft": (_prim("rfft", axes=(1,)), lambda r: [f64(r, 3, 4)]),
    "irfft": (_prim("irfft", axes=(1,), n=6), lambda r: [f64(r, 3, 4).astype(complex)]),
    "solve": (_prim("solve"), lambda r: [np.eye(3) * 3 + f64(r, 3, 3), f64(r, 3, 2)]),
    "cholesky": (_prim("cholesky"), lambda r: [np.eye(3) * 3 + f64(r, 3, 3)]),
    "triangular_solve": (_prim("triangular_solve", lower=True),
                         lambda r: [np.eye(3) * 3 + f64(r, 3, 3), f64(r, 3, 2)]),
    "tridiagonal_solve": (_prim("tridiagonal_solve"),
                          lambda r: [f64(r, 4, 3), f64(r, 4, 3) + 4.0, f64(r, 4, 3),
                                     f64(r, 4, 3)]),
    "qr": (_prim("qr"), lambda r: [f64(r, 4, 3)]),
    "eigh": (_prim("eigh"), lambda r: [_sym(f64(r, 3, 3))]),
    "lu": (_prim("lu"), lambda r: [np.eye(3) + f64(r, 3, 3)]),
    "random_bits": (_prim("random_bits", shape=(2, 3)), lambda r: [_ints(r, 1 << 40, 2)]),
    "random_split": (_prim("random_split", num=3), lambda r: [_ints(r, 1 << 40, 2)]),
}
for _n in UNARY:
    CASES[_n] = _unary_case(_n)
for _n in BINARY:
    CASES[_n] = _binary_case(_n)


def test_every_primitive_has_a_batching_rule():
    missing = [n for n in PRIMITIVES if n not in BATCH_RULES and n not in NEVER_BATCHED]
    assert not missing, f"primitives without a batching rule: {missing}"


def test_every_batched_primitive_has_a_test_case():
    missing = [n for n in PRIMITIVES if n not in CASES and n not in NEVER_BATCHED | INTERNAL]
    assert not missing, f"primitives without a vmap test case: {missing}"


def _loop(fn, samples):
    outs = [fn(*s) for s in samples]
    from autodiff.pytree import tree_map

    return tree_map(lambda *a: np.stack([np.asarray(v) for v in a]), *outs)


def _stack_at(arrays, ax):
    return np.stack([np.asarray(a) for a in arrays], axis=ax)


def _check(got, want):
    from autodiff.pytree import tree_flatten

    g, w = tree_flatten(got)[0], tree_flatten(want)[0]
    assert len(g) == len(w)
    for a, b in zip(g, w):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, (a.shape, b.shape)
        assert a.dtype == b.dtype, (a.dtype, b.dtype)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_all_args_axis0(name):
    fn, make = CASES[name]
    rng = np.random.default_rng(0)
    samples = [make(rng) for _ in range(B)]
    batched = [_stack_at(col, 0) for col in zip(*samples)]
    _check(vmap(fn)(*batched), _loop(fn, samples))
    # The graph-level transform gives a well-formed graph (the verifier runs after each pass).
    verify(vmap_graph(make_graph(fn, *samples[0]), [0] * len(samples[0]), B))


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_each_arg_each_axis(name):
    fn, make = CASES[name]
    rng = np.random.default_rng(1)
    samples = [make(rng) for _ in range(B)]
    base = samples[0]
    for i in range(len(base)):
        for ax in range(np.ndim(base[i]) + 1):
            # Only argument i varies across the batch; the others are shared (in_axes None).
            mixed = [[s[i] if j == i else base[j] for j in range(len(base))] for s in samples]
            args = [(_stack_at([s[i] for s in samples], ax) if j == i else base[j])
                    for j in range(len(base))]
            in_axes = tuple(ax if j == i else None for j in range(len(base)))
            got = vmap(fn, in_axes=in_axes)(*args)
            _check(got, _loop(fn, mixed))


def test_vmap_of_vmap_matches_double_loop():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5))

    def f(v, m):
        return np.tanh(v @ m).sum() * v[0]

    got = vmap(vmap(f, in_axes=(0, None)), in_axes=(1, None), out_axes=1)(x, w)
    want = np.stack([np.stack([f(x[i, j], w) for j in range(3)]) for i in range(2)], axis=1)
    want = np.moveaxis(want, 0, 1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_vmap_pytrees_and_out_axes():
    rng = np.random.default_rng(3)
    a, b, c = rng.normal(size=(3, 2)), rng.normal(size=(2, 3)), rng.normal(size=(2,))

    def f(d, s):
        return {"sum": d["a"] + d["b"] * s, "dot": (d["a"] * s).sum()}

    got = vmap(f, in_axes=({"a": 0, "b": 1}, None), out_axes={"sum": 1, "dot": 0})(
        {"a": a, "b": b}, c)
    for k in range(3):
        want = f({"a": a[k], "b": b[:, k]}, c)
        np.testing.assert_allclose(got["sum"][:, k], want["sum"])
        np.testing.assert_allclose(got["dot"][k], want["dot"])


def test_unbatched_output_with_out_axes_none():
    got_x, got_c = vmap(lambda x, c: (x * 2.0, c + 1.0), in_axes=(0, None),
                        out_axes=(0, None))(np.ones((3, 2)), np.asarray(5.0))
    assert got_x.shape == (3, 2) and np.asarray(got_c).shape == ()
    with pytest.raises(ShapeError, match="out_axes=None"):
        vmap(lambda x: x * 2.0, out_axes=None)(np.ones(3))


def test_vmap_inside_a_trace_inlines():
    g = make_graph(lambda m: vmap(lambda r: np.sin(r).sum())(m), np.zeros((4, 3)))
    assert all(n.prim.name != "call" for n in g.body)
    x = np.random.default_rng(4).normal(size=(4, 3))
    np.testing.assert_allclose(eval_graph(g, x), np.sin(x).sum(1), rtol=1e-14)


def test_vmap_graph_places_axes():
    g = make_graph(lambda x, y: x * y + 1.0, np.zeros(3), np.zeros(3))
    vg = vmap_graph(g, [1, None], 4)
    assert vg.in_avals[0].shape == (3, 4) and vg.out_avals[0].shape == (4, 3)
    x, y = np.random.default_rng(5).normal(size=(3, 4)), np.arange(3.0)
    np.testing.assert_allclose(eval_graph(vg, x, y), (x * y[:, None] + 1).T)


def test_masked_while_counts_each_example():
    def steps(n):
        return control.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 2.0),
                                  (0, 1.0))[1]

    got = vmap(steps)(np.array([0, 3, 1, 5]))
    np.testing.assert_array_equal(got, [1.0, 8.0, 2.0, 32.0])


def test_errors_name_sizes_and_axes():
    with pytest.raises(ShapeError, match="size 3.*size 4|different sizes"):
        vmap(lambda a, b: a + b)(np.ones(3), np.ones(4))
    with pytest.raises(ShapeError, match="out of range"):
        vmap(lambda a: a, in_axes=2)(np.ones(3))
    with pytest.raises(ArityError, match="in_axes"):
        vmap(lambda a, b: a + b, in_axes=(0, 0, 0))(np.ones(3), np.ones(3))
    with pytest.raises(ShapeError, match="nothing to batch"):
        vmap(lambda a: a, in_axes=None)(np.ones(3))


def test_fori_with_batched_bounds_runs_each_trip_count():
    def f(lo, n, x):
        return control.fori_loop(lo, n, lambda i, c: c * x + i, 1.0)

    lo, n, x = np.array([0, 1, 2]), np.array([3, 0, 5]), np.array([0.5, 2.0, 1.5])
    want = [f(int(a), int(b), c) for a, b, c in zip(lo, n, x)]
    np.testing.assert_allclose(vmap(f)(lo, n, x), want, rtol=1e-14)
    np.testing.assert_allclose(vmap(f, in_axes=(None, 0, None))(1, n, 2.0),
                               [f(1, int(b), 2.0) for b in n], rtol=1e-14)


def test_per_example_gradients_and_jacobians_compose():
    from autodiff.api import grad, hessian, jacfwd

    rng = np.random.default_rng(6)
    w, xs = rng.normal(size=3), rng.normal(size=(5, 3))

    def loss(w, x):
        return np.tanh(x @ w) ** 2

    got = vmap(grad(loss), in_axes=(None, 0))(w, xs)
    want = np.stack([2 * np.tanh(x @ w) / np.cosh(x @ w) ** 2 * x for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # grad of a vmapped function, and Jacobians/Hessians built on vmap.
    total = grad(lambda w: vmap(loss, in_axes=(None, 0))(w, xs).sum())(w)
    np.testing.assert_allclose(total, want.sum(0), rtol=1e-12)
    np.testing.assert_allclose(jacfwd(lambda v: np.sin(v) * v[0])(w),
                               np.diag(np.cos(w) * w[0]) + np.outer(np.sin(w), [1, 0, 0]),
                               rtol=1e-12)
    h = vmap(hessian(lambda v: np.sum(v ** 3)))(xs)
    np.testing.assert_allclose(h, np.stack([np.diag(6 * x) for x in xs]), rtol=1e-12)


def test_docstring_examples_run():
    import doctest

    import autodiff.batching as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_switch_with_batched_and_unbatched_index():
    fn, make = _switch_case()
    rng = np.random.default_rng(7)
    samples = [make(rng) for _ in range(5)]
    idx = np.stack([s[0] for s in samples])
    xs = np.stack([s[1] for s in samples])
    _check(vmap(fn)(idx, xs), _loop(fn, samples))
    _check(vmap(fn, in_axes=(None, 0))(np.asarray(2), xs),
           _loop(fn, [[np.asarray(2), s[1]] for s in samples]))


def test_recursive_graph_function_is_unsupported():
    @control.graph_function
    def fact(n):
        return control.cond(n <= 1, lambda: n * 0 + 1, lambda: n * fact(n - 1))

    with pytest.raises(UnsupportedError, match="recursive"):
        vmap(fact)(np.array([3, 4]))
