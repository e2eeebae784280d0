"""Derivative rules, table-driven over the primitive table.

Every differentiable primitive has a JVP rule and a case below; each case checks
- the JVP against central finite differences (float64, and float32 with looser tolerances),
- the VJP against the JVP by the dot-product test <vjp(u), v> = <u, jvp(v)> (pairing Re sum a*b),
so a primitive without a JVP or a transpose rule fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

import sciml  # noqa: F401  (attaches the numpy handlers)
from autodiff import checkpoint as ckpt
from autodiff import custom
from autodiff.api import grad, jvp, vjp
from autodiff.errors import NotDifferentiableError, UnsupportedError
from autodiff.jvp import JVP_RULES
from autodiff.ops import control
from autodiff.primitives import PRIMITIVES
from autodiff.trace import bind

P = PRIMITIVES
R = np.random.default_rng


def _u(rng, shape, lo=-1.5, hi=1.5):
    return rng.uniform(lo, hi, shape)


def _pos(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def _distinct(rng, shape):
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.37 + rng.uniform(0, 0.05, shape)) - n * 0.15


def _spd(rng, n):
    a = rng.standard_normal((n, n))
    return a @ a.T + n * np.eye(n)


def _cplx(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def prim_fn(name, **params):
    """f(*args) = prim(*args); multiple results become a tuple."""

    def f(*args):
        return bind(P[name], *args, **params)

    return f


def with_consts(fn, consts, positions):
    """A function of the differentiable arguments with the others fixed."""

    def f(*xs):
        args, it = [], iter(xs)
        for i in range(len(consts)):
            args.append(consts[i] if i in positions else next(it))
        return fn(*args)

    return f


# name -> (args maker(rng), params, indices of non-differentiable arguments)
UNARY_DOMAINS = {
    "neg": _u, "abs": lambda r, s: _pos(r, s) * r.choice([-1, 1], s), "exp": _u, "expm1": _u,
    "log": _pos, "log1p": _pos, "sqrt": _pos, "rsqrt": _pos, "sin": _u, "cos": _u,
    "tan": lambda r, s: _u(r, s, -1, 1), "tanh": _u, "sinh": _u, "cosh": _u,
    "arcsin": lambda r, s: _u(r, s, -0.8, 0.8), "arccos": lambda r, s: _u(r, s, -0.8, 0.8),
    "arctan": _u, "arcsinh": _u, "arccosh": lambda r, s: _u(r, s, 1.2, 3.0),
    "arctanh": lambda r, s: _u(r, s, -0.8, 0.8), "erf": _u, "real": _u, "imag": _u, "conj": _u,
}

CASES: dict = {}
for _name, _dom in UNARY_DOMAINS.items():
    CASES[_name] = (lambda r, d=_dom: [d(r, (3, 4))], {}, ())

CASES.update({
    "add": (lambda r: [_u(r, (3, 1)), _u(r, (4,))], {}, ()),
    "sub": (lambda r: [_u(r, (3, 4)), _u(r, (3, 4))], {}, ()),
    "mul": (lambda r: [_u(r, (3, 4)), _u(r, (1, 4))], {}, ()),
    "div": (lambda r: [_u(r, (3, 4)), _pos(r, (3, 4))], {}, ()),
    "pow": (lambda r: [_pos(r, (3, 4)), _u(r, (3, 4))], {}, ()),
    "maximum": (lambda r: list(_distinct(r, (2, 3, 4))), {}, ()),
    "minimum": (lambda r: list(_distinct(r, (2, 3, 4))), {}, ()),
    "atan2": (lambda r: [_u(r, (3, 4)), _pos(r, (3, 4))], {}, ()),
    "mod": (lambda r: [r.uniform(2.1, 2.9, (3, 4)), r.uniform(0.9, 1.0, (3, 4))], {}, ()),
    "integer_pow": (lambda r: [_pos(r, (3, 4))], {"y": -3}, ()),
    "select": (lambda r: [r.uniform(size=(3, 4)) > 0.5, _u(r, (3, 4)), _u(r, (4,))], {}, (0,)),
    "convert": (lambda r: [_u(r, (3, 4))], {"new_dtype": np.dtype("complex128")}, ()),
    "reduce_sum": (lambda r: [_u(r, (3, 4, 2))], {"axes": (0, 2), "keepdims": False}, ()),
    "reduce_prod": (lambda r: [_pos(r, (3, 4))], {"axes": (1,), "keepdims": True}, ()),
    "reduce_max": (lambda r: [_distinct(r, (3, 4))], {"axes": (1,), "keepdims": False}, ()),
    "reduce_min": (lambda r: [_distinct(r, (3, 4))], {"axes": (0,), "keepdims": True}, ()),
    "cumsum": (lambda r: [_u(r, (3, 4))], {"axis": 1, "reverse": True}, ()),
    "sort": (lambda r: [_distinct(r, (3, 4))], {"axis": 0, "descending": True}, ()),
    "broadcast_in_dim": (lambda r: [_u(r, (3, 1))],
                         {"shape": (2, 3, 4), "broadcast_dimensions": (1, 2)}, ()),
    "reshape": (lambda r: [_u(r, (3, 4))], {"new_shape": (2, 6)}, ()),
    "transpose": (lambda r: [_u(r, (2, 3, 4))], {"permutation": (2, 0, 1)}, ()),
    "rev": (lambda r: [_u(r, (3, 4))], {"axes": (0, 1)}, ()),
    "slice": (lambda r: [_u(r, (5, 7))], {"start": (1, 0), "limit": (5, 7), "strides": (2, 3)},
              ()),
    "pad": (lambda r: [_u(r, (3, 4))],
            {"pad_width": ((1, 2), (0, 3)), "mode": "constant", "value": 1.5}, ()),
    "concatenate": (lambda r: [_u(r, (2, 3)), _u(r, (4, 3))], {"axis": 0}, ()),
    "im2col": (lambda r: [_u(r, (2, 5, 4, 2))],
               {"kernel": (3, 2), "stride": (2, 1), "padding": ((1, 0), (1, 1)),
                "dilation": (1, 2), "value": 1.5}, ()),
    "col2im": (lambda r: [_u(r, (2, 2, 4, 3, 2, 2))],
               {"shape": (5, 4), "kernel": (3, 2), "stride": (2, 1),
                "padding": ((1, 0), (1, 1)), "dilation": (1, 2)}, ()),
    "shift": (lambda r: [_u(r, (4, 5))], {"offset": (1, -2), "boundary": "zero"}, ()),
    "take": (lambda r: [_u(r, (4, 5)), np.array([[0, 3], [3, -1]])], {"axis": 1}, (1,)),
    "scatter_add": (lambda r: [_u(r, (4, 5)), np.array([0, 2, 0]), _u(r, (4, 3))], {"axis": 1},
                    (1,)),
    "dynamic_slice": (lambda r: [_u(r, (4, 5)), np.int64(1), np.int64(4)], {"sizes": (2, 3)},
                      (1, 2)),
    "dynamic_update_slice": (lambda r: [_u(r, (4, 5)), _u(r, (2, 2)), np.int64(2),
                                        np.int64(1)], {}, (2, 3)),
    "dot_general": (lambda r: [_u(r, (2, 3, 4)), _u(r, (2, 4, 5))],
                    {"dimension_numbers": (((2,), (1,)), ((0,), (0,)))}, ()),
    "fft": (lambda r: [_cplx(r, (3, 4))], {"axes": (0, 1)}, ()),
    "ifft": (lambda r: [_cplx(r, (3, 4))], {"axes": (1,)}, ()),
    "rfft": (lambda r: [_u(r, (3, 6))], {"axes": (0, 1)}, ()),
    "irfft": (lambda r: [_cplx(r, (3, 4))], {"axes": (0, 1), "n": 7}, ()),
    "solve": (lambda r: [_spd(r, 3), _u(r, (3, 2))], {}, ()),
    "cholesky": (lambda r: [_spd(r, 3)], {}, ()),
    "triangular_solve": (lambda r: [_spd(r, 3), _u(r, (2, 3))],
                         {"lower": False, "left_side": False, "transpose_a": True}, ()),
    "tridiagonal_solve": (lambda r: [_u(r, (5, 3), -0.5, 0.5), _u(r, (5, 3)) + 4.0,
                                     _u(r, (5, 3), -0.5, 0.5), _u(r, (5, 3))], {}, ()),
    "qr": (lambda r: [_u(r, (4, 3))], {}, ()),
    "eigh": (lambda r: [_spd(r, 3)], {"lower": True}, ()),
    "lu": (lambda r: [_u(r, (2, 3, 3)) + 2 * np.eye(3)], {}, ()),
})


def _graph(fn, *avals):
    from autodiff.trace import make_graph

    return make_graph(fn, *avals)


def _control_cases():
    """Control-flow primitives, through small traced programs (subgraphs hold the math)."""

    def call_fn(x):
        g = _graph(lambda y: np.sin(y) * y, x)
        return bind(P["call"], x, graph=g)[0]

    def cond_fn(x):
        return control.cond(x[0] > 0, lambda v: np.sin(v) * v, lambda v: v ** 2, x)

    def scan_fn(x):
        c, ys = control.scan(lambda c, xi: (c * np.cos(xi) + xi, c * xi), x[0], x)
        return ys * c

    def fori_fn(x):
        return control.fori_loop(0, 4, lambda i, v: np.sin(v) * 1.1 + v * x[0], x)

    def while_fn(x):
        def body(c):
            return c[0] + 1, c[1] * 0.9 + np.sin(c[1]) * x[1]

        return control.while_loop(lambda c: c[0] < 5, body, (0, x), max_steps=8)[1]

    def ckpt_fn(x):
        return ckpt.checkpoint(lambda v: np.exp(np.sin(v)) * v)(x)

    lse = custom.custom_jvp(lambda v: np.log(np.sum(np.exp(v))))
    lse.defjvp(lambda p, t: (lse(p[0]), np.sum(np.exp(p[0] - lse(p[0])) * t[0])))

    def cjvp_fn(x):
        return lse(x) * x

    sq = custom.custom_vjp(lambda v: np.sin(v))
    sq.defvjp(lambda v: (np.sin(v), np.cos(v)), lambda c, g: (c * g,))

    def cvjp_fn(x):
        return sq(x) * x

    mk = lambda r: [_u(r, (4,))]  # noqa: E731
    return {
        "call": (call_fn, mk), "cond": (cond_fn, mk), "scan": (scan_fn, mk),
        "fori_loop": (fori_fn, mk), "while_loop": (while_fn, mk),
        "checkpoint": (ckpt_fn, mk), "custom_jvp_call": (cjvp_fn, mk),
        "custom_vjp_call": (cvjp_fn, mk), "custom_vjp_lin": (cvjp_fn, mk),
    }


CONTROL = _control_cases()
FORWARD_ONLY_UNSUPPORTED = {"custom_vjp_call", "custom_vjp_lin"}  # jvp raises, as in JAX


def case_function(name, dtype=np.float64, seed=0):
    rng = R(seed)
    if name in CONTROL:
        fn, mk = CONTROL[name]
        return fn, [a.astype(dtype) for a in mk(rng)]
    maker, params, fixed = CASES[name]
    args = maker(rng)
    args = [a.astype(_cast(a.dtype, dtype)) if i not in fixed else a
            for i, a in enumerate(args)]
    fn = prim_fn(name, **params)
    if fixed:
        fn = with_consts(fn, args, set(fixed))
        args = [a for i, a in enumerate(args) if i not in fixed]
    return fn, args


def _cast(d, target):
    if np.dtype(d).kind == "c":
        return np.complex64 if np.dtype(target) == np.float32 else np.complex128
    return target


# ---------------------------------------------------------------------------------------------
# The table is complete


def test_every_differentiable_primitive_has_a_jvp_rule_and_a_case():
    diff = {n for n, p in PRIMITIVES.items() if p.differentiable}
    assert sorted(diff - set(JVP_RULES)) == []
    assert sorted(diff - set(CASES) - set(CONTROL)) == []


def test_non_differentiable_primitives_are_listed_and_have_no_rules():
    nondiff = {n for n, p in PRIMITIVES.items() if not p.differentiable}
    assert {"floor", "sign", "argmax", "argsort", "stop_gradient", "iota", "eq"} <= nondiff
    assert not nondiff & set(JVP_RULES)


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "sign", "stop_gradient"])
def test_non_differentiable_primitives_have_zero_derivative(name):
    f = lambda x: (bind(P[name], x) * x).sum()  # noqa: E731
    x = np.array([0.3, 1.7, -2.2])
    np.testing.assert_allclose(grad(f)(x), bind(P[name], x))  # d(c(x) x) = c(x)


# ---------------------------------------------------------------------------------------------
# JVP vs central differences; VJP vs JVP


def _rand_like(rng, x):
    x = np.asarray(x)
    v = rng.standard_normal(x.shape)
    if x.dtype.kind == "c":
        v = v + 1j * rng.standard_normal(x.shape)
    return v.astype(x.dtype)


def _leaves(out):
    return list(out) if isinstance(out, tuple) else [out]


def _float_out(out):
    return [np.asarray(o) for o in _leaves(out) if np.asarray(o).dtype.kind in "fc"]


def _fd(fn, args, vs, h):
    plus = fn(*[a + h * v for a, v in zip(args, vs)])
    minus = fn(*[a - h * v for a, v in zip(args, vs)])
    return [(p.astype(np.complex128 if p.dtype.kind == "c" else np.float64)
             - m) / (2 * h) for p, m in zip(_float_out(plus), _float_out(minus))]


ALL = sorted(set(CASES) | set(CONTROL))
TOL = {np.float64: (1e-6, 1e-6, 1e-6), np.float32: (2e-2, 2e-2, 1e-3)}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_jvp_matches_finite_differences(name, dtype):
    if name in FORWARD_ONLY_UNSUPPORTED:
        pytest.skip("forward mode of custom_vjp is unsupported (checked below)")
    if dtype == np.float32 and name in ("lu", "eigh", "qr", "cholesky", "irfft", "rfft"):
        dtype = np.float64  # LAPACK/pocketfft in float32 is too coarse for differences
    fn, args = case_function(name, dtype)
    rng = R(1)
    vs = [_rand_like(rng, a) for a in args]
    _, t = jvp(fn, tuple(args), tuple(vs))
    h = 1e-6 if dtype == np.float64 else 1e-2
    # Differences in float64 of the same function; the JVP runs in the case's dtype.
    args64 = [a.astype(np.complex128 if a.dtype.kind == "c" else np.float64) for a in args]
    fd = _fd(fn, args64, [v.astype(a.dtype) for v, a in zip(vs, args64)], h)
    rtol, atol, _ = TOL[dtype]
    for got, want in zip(_float_out(t), fd):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1, np.abs(want).max()))


def _pair(a, b):
    return float(np.real(np.sum(np.asarray(a, np.complex128) * np.asarray(b, np.complex128))))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vjp_is_the_transpose_of_jvp(name, dtype):
    fn, args = case_function(name, dtype, seed=2)
    rng = R(3)
    vs = [_rand_like(rng, a) for a in args]
    out, pull = vjp(fn, *args)
    outs = _leaves(out)
    us = [_rand_like(rng, o) if np.asarray(o).dtype.kind in "fc" else np.zeros_like(o)
          for o in outs]
    cts = pull(tuple(us) if isinstance(out, tuple) else us[0])
    lhs = sum(_pair(c, v) for c, v in zip(cts, vs))
    if name in FORWARD_ONLY_UNSUPPORTED:
        # No JVP to compare with: check the user's bwd rule gives the derivative directly.
        args64 = [a.astype(np.float64) for a in args]
        fd = _fd(fn, args64, [v.astype(np.float64) for v in vs], 1e-6)
        rhs = sum(_pair(u, d) for u, d in zip(us, fd))
    else:
        _, t = jvp(fn, tuple(args), tuple(vs))
        rhs = sum(_pair(u, tt) for u, tt, o in zip(us, _leaves(t), outs)
                  if np.asarray(o).dtype.kind in "fc")
    tol = TOL[dtype][2]
    assert abs(lhs - rhs) <= tol * max(1.0, abs(lhs), abs(rhs)), (lhs, rhs)


def test_forward_mode_of_custom_vjp_raises():
    fn, args = case_function("custom_vjp_call")
    with pytest.raises(UnsupportedError, match="custom_vjp"):
        jvp(fn, tuple(args), tuple(np.ones_like(a) for a in args))


# ---------------------------------------------------------------------------------------------
# Variants of the structural rules


@pytest.mark.parametrize("params", [
    {"pad_width": ((2, 1), (1, 2)), "mode": "edge"},
    {"pad_width": ((2, 1), (3, 0)), "mode": "periodic"},
])
def test_pad_modes_transpose(params):
    _dot_test(prim_fn("pad", **params), [_u(R(0), (3, 4))])


@pytest.mark.parametrize("boundary", ["periodic", "edge"])
def test_shift_boundaries_transpose(boundary):
    _dot_test(prim_fn("shift", offset=(2, -1), boundary=boundary), [_u(R(0), (5, 4))])


@pytest.mark.parametrize("params", [
    {"lower": True}, {"lower": False, "transpose_a": True},
    {"lower": True, "left_side": False, "unit_diagonal": True},
])
def test_triangular_solve_variants(params):
    rng = R(4)
    a, b = _spd(rng, 3), _u(rng, (3, 3))
    _dot_test(prim_fn("triangular_solve", **params), [a, b])
    _fd_test(prim_fn("triangular_solve", **params), [a, b])


def _dot_test(fn, args):
    rng = R(5)
    vs = [_rand_like(rng, a) for a in args]
    out, pull = vjp(fn, *args)
    u = _rand_like(rng, out)
    cts = pull(u)
    _, t = jvp(fn, tuple(args), tuple(vs))
    lhs, rhs = sum(_pair(c, v) for c, v in zip(cts, vs)), _pair(u, t)
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs)), (lhs, rhs)


def _fd_test(fn, args):
    rng = R(6)
    vs = [_rand_like(rng, a) for a in args]
    _, t = jvp(fn, tuple(args), tuple(vs))
    np.testing.assert_allclose(t, _fd(fn, args, vs, 1e-6)[0], rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Errors


def test_gradient_with_respect_to_an_integer_input_raises():
    with pytest.raises(NotDifferentiableError, match="int64"):
        grad(lambda n: n * 2.0)(np.int64(3))


def test_integer_argument_outside_argnums_is_fine():
    g = grad(lambda x, n: x * n, argnums=0)(2.0, np.int64(3))
    assert float(g) == 3.0


def test_integer_outputs_have_zero_tangents():
    out, t = jvp(lambda x: bind(P["argmax"], x, axes=(0,)), (np.array([1.0, 3.0]),),
                 (np.ones(2),))
    assert int(out) == 1 and not np.any(t)


def test_missing_rule_names_the_primitive():
    from autodiff.primitives import def_primitive

    name = "test_only_square"
    if name not in PRIMITIVES:
        def_primitive(name, lambda x: x, lambda x: x * x)
    try:
        with pytest.raises(UnsupportedError, match=name):
            jvp(lambda x: bind(P[name], x), (1.0,), (1.0,))
    finally:
        del PRIMITIVES[name]


def test_grad_of_non_scalar_raises():
    from autodiff.errors import ShapeError

    with pytest.raises(ShapeError, match="scalar"):
        grad(lambda x: x * 2.0)(np.ones(3))


def test_reverse_mode_through_while_without_max_steps_raises():
    def f(x):
        return control.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * x),
                                  (0, x))[1]

    assert float(jvp(f, (2.0,), (1.0,))[1]) == pytest.approx(4 * 2.0 ** 3)  # d x^4
    with pytest.raises(NotDifferentiableError, match="max_steps"):
        grad(f)(2.0)


HALF_CASES = sorted(
    set(UNARY_DOMAINS) - {"real", "imag", "conj"} | {
        "add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2", "integer_pow",
        "select", "reduce_sum", "reduce_max", "cumsum", "sort", "broadcast_in_dim", "reshape",
        "transpose", "rev", "slice", "pad", "concatenate", "shift", "take", "scatter_add",
        "dynamic_slice", "dynamic_update_slice", "dot_general", "scan", "cond"})


@pytest.mark.parametrize("name", HALF_CASES)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_jvp_and_vjp_track_float64(name, dtype):
    from autodiff import dtypes

    dt = dtypes.dtype(dtype)
    fn, args = case_function(name, dt)
    rng = R(7)
    vs = [_rand_like(rng, a.astype(np.float64)).astype(dt) for a in args]
    _, t = jvp(fn, tuple(args), tuple(vs))
    _, t64 = jvp(fn, tuple(a.astype(np.float64) for a in args),
                 tuple(v.astype(np.float64) for v in vs))
    for got in _float_out(t):
        assert got.dtype == dt
    tol = 0.02 if dtype == "float16" else 0.1
    for got, want in zip(_float_out(t), _float_out(t64)):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol, atol=tol * scale)
    out, pull = vjp(fn, *args)
    cts = pull(_rand_like(rng, np.asarray(out, np.float64)).astype(dt))
    assert all(np.asarray(c).dtype == dt for c in cts)
