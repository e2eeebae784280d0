"""Taylor mode: jet coefficients of every primitive with a Taylor rule against sympy (elementwise
math) or exact coefficient-wise references (linear and piecewise-linear primitives); k-th
derivatives of composites up to k = 8 against sympy's closed forms; jet through control flow;
graph growth of ``derivatives`` in the order."""

import math

import numpy as np
import pytest
import sympy as sp

import autodiff.checkpoint
import autodiff.custom
import sciml.numpy as snp  # noqa: F401  (registers numpy dispatch for traced arrays)
from autodiff.errors import ArityError, ShapeError, UnsupportedError
from autodiff.ops import control
from autodiff.primitives import PRIMITIVES
from autodiff.taylor import TAYLOR_RULES, UNSUPPORTED, derivatives, derivatives_graph, jet
from autodiff.trace import bind, make_graph
from autodiff.verify import verify

P = PRIMITIVES
K = 5
t = sp.Symbol("t", real=True)


def test_every_differentiable_primitive_has_a_taylor_rule():
    missing = [n for n, p in PRIMITIVES.items()
               if n not in TAYLOR_RULES and n not in UNSUPPORTED]
    assert not missing, f"primitives without a Taylor rule: {missing}"


def _sympy_jet(expr_fn, paths, k):
    """Derivatives of F(x(t)) at t = 0 for the paths x(t) = sum_j v_j t^j / j!: sympy's partial
    derivatives of F at the base point composed with the path polynomials (Faa di Bruno by
    polynomial arithmetic, exact up to rounding)."""
    syms = sp.symbols(f"a0:{len(paths)}", real=True)
    base = {s: sp.Float(p[0], 30) for s, p in zip(syms, paths)}
    F = expr_fn(*syms)
    polys = [np.array([0.0] + [v / math.factorial(j) for j, v in enumerate(p) if j]) for p in
             paths]
    poly = np.polynomial.polynomial
    total_ = np.zeros(k + 1)
    for orders in _multi_indices(len(paths), k):
        d = sp.diff(F, *[(s, o) for s, o in zip(syms, orders) if o]) if any(orders) else F
        c = float(d.subs(base).evalf(30)) / math.prod(math.factorial(o) for o in orders)
        term = np.array([1.0])
        for p, o in zip(polys, orders):
            for _ in range(o):
                term = poly.polymul(term, p)[:k + 1]
        total_[:len(term)] += c * term
    return [total_[j] * math.factorial(j) for j in range(k + 1)]


def _multi_indices(n, k):
    if n == 1:
        return [(o,) for o in range(k + 1)]
    return [(o,) + rest for o in range(k + 1) for rest in _multi_indices(n - 1, k - o)]


SYMPY_UNARY = {
    "exp": (sp.exp, 0.3), "expm1": (lambda x: sp.exp(x) - 1, 0.3), "log": (sp.log, 1.3),
    "log1p": (lambda x: sp.log(1 + x), 0.4), "sqrt": (sp.sqrt, 1.7),
    "rsqrt": (lambda x: 1 / sp.sqrt(x), 1.7), "sin": (sp.sin, 0.6), "cos": (sp.cos, 0.6),
    "tan": (sp.tan, 0.6), "tanh": (sp.tanh, 0.6), "sinh": (sp.sinh, 0.6),
    "cosh": (sp.cosh, 0.6), "arcsin": (sp.asin, 0.3), "arccos": (sp.acos, 0.3),
    "arctan": (sp.atan, 0.6), "arcsinh": (sp.asinh, 0.6), "arccosh": (sp.acosh, 1.6),
    "arctanh": (sp.atanh, 0.3), "erf": (sp.erf, 0.6), "neg": (lambda x: -x, 0.6),
    "abs": (sp.Abs, -0.6), "real": (lambda x: x, 0.6), "conj": (lambda x: x, 0.6),
    "integer_pow": (lambda x: x ** 3, 0.0), "convert": (lambda x: x, 0.5),
}
SYMPY_BINARY = {
    "add": (lambda a, b: a + b, 0.7, 0.4), "sub": (lambda a, b: a - b, 0.7, 0.4),
    "mul": (lambda a, b: a * b, 0.7, 0.4), "div": (lambda a, b: a / b, 0.7, 0.4),
    "pow": (lambda a, b: a ** b, 0.7, 0.4), "atan2": (sp.atan2, 0.7, 0.4),
    "maximum": (sp.Max, 0.7, 0.4), "minimum": (sp.Min, 0.7, 0.4),
    "mod": (lambda a, b: a - sp.floor(0.7 / 0.4) * b, 0.7, 0.4),
}
_PARAMS = {"integer_pow": {"y": 3}, "convert": {"new_dtype": np.dtype("float64")}}


def _close(got, want, rtol=1e-11):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol,
                               atol=rtol)


@pytest.mark.parametrize("name", sorted(SYMPY_UNARY))
def test_unary_jet_vs_sympy(name):
    fn, x0 = SYMPY_UNARY[name]
    path = [x0, 0.7, -0.4, 0.3, 0.2, -0.1]
    y, ys = jet(lambda x: bind(P[name], x, **_PARAMS.get(name, {})), (np.float64(x0),),
                ([np.float64(v) for v in path[1:]],))
    _close([y] + list(ys), _sympy_jet(fn, [path], K))


@pytest.mark.parametrize("name", sorted(SYMPY_BINARY))
def test_binary_jet_vs_sympy(name):
    fn, a0, b0 = SYMPY_BINARY[name]
    pa, pb = [a0, 0.5, 0.3, -0.2, 0.1, 0.05], [b0, -0.3, 0.2, 0.1, -0.4, 0.3]
    y, ys = jet(lambda a, b: bind(P[name], a, b), (np.float64(a0), np.float64(b0)),
                ([np.float64(v) for v in pa[1:]], [np.float64(v) for v in pb[1:]]))
    _close([y] + list(ys), _sympy_jet(fn, [pa, pb], K))


def test_pow_with_constant_exponent_and_zero_base_integer_pow():
    # x^2.5 uses the power recurrence; integer powers at 0 stay exact (no division by x0).
    y, ys = jet(lambda x: x ** 2.5, (1.3,), ([1.0, 0.0, 0.0],))
    _close([y] + list(ys), _sympy_jet(lambda x: x ** sp.Rational(5, 2), [[1.3, 1, 0, 0]], 3))
    y, ys = jet(lambda x: x ** 4, (0.0,), ([1.0, 0.0, 0.0, 0.0, 0.0],))
    _close([y] + list(ys), [0, 0, 0, 0, 24, 0])


# Linear and piecewise-linear primitives: the k-th coefficient is the (local) linear map of the
# k-th input coefficient, computed here with numpy on each coefficient.
LINEAR = {
    "reduce_sum": ({"axes": (1,)}, (3, 4)), "cumsum": ({"axis": 0, "reverse": True}, (3, 4)),
    "broadcast_in_dim": ({"shape": (2, 3, 4), "broadcast_dimensions": (1, 2)}, (3, 4)),
    "reshape": ({"new_shape": (4, 3)}, (3, 4)), "transpose": ({"permutation": (1, 0)}, (3, 4)),
    "rev": ({"axes": (0,)}, (3, 4)),
    "slice": ({"start": (1, 0), "limit": (3, 4), "strides": (1, 2)}, (3, 4)),
    "pad": ({"pad_width": ((1, 1), (0, 2)), "mode": "periodic"}, (3, 4)),
    "shift": ({"offset": (1, -1), "boundary": "zero"}, (3, 4)),
    "im2col": ({"kernel": (2,), "stride": (1,), "padding": ((1, 1),), "dilation": (1,)},
               (3, 4)),
    "col2im": ({"shape": (3,), "kernel": (2,), "stride": (1,), "padding": ((1, 1),),
                "dilation": (1,)}, (4, 2, 4)),
    "fft": ({"axes": (1,)}, (3, 4)), "rfft": ({"axes": (1,)}, (3, 4)),
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_primitive_maps_each_coefficient(name):
    params, shape = LINEAR[name]
    rng = np.random.default_rng(0)
    x, cs = rng.normal(size=shape), [rng.normal(size=shape) for _ in range(3)]
    if name == "fft":
        x, cs = x.astype(complex), [c.astype(complex) for c in cs]
    y, ys = jet(lambda v: bind(P[name], v, **params), (x,), (cs,))
    impl = P[name].impl
    _close(y, impl(x, **params))
    for got, c in zip(ys, cs):
        np.testing.assert_allclose(got, impl(c, **params), rtol=1e-12, atol=1e-12)


def test_piecewise_linear_select_the_primal_branch():
    rng = np.random.default_rng(1)
    x, cs = rng.normal(size=(3, 4)), [rng.normal(size=(3, 4)) for _ in range(3)]
    idx = np.array([2, 0, 1, 1])

    def f(v):
        return (bind(P["sort"], v, axis=1), bind(P["reduce_max"], v, axes=(0,)),
                bind(P["take"], v, idx, axis=0), bind(P["abs"], v),
                bind(P["select"], v > 0.1, v, v * 2.0))

    _, (s, m, tk, ab, sel) = jet(f, (x,), (cs,))
    perm = np.argsort(x, axis=1, kind="stable")
    am = np.argmax(x, axis=0)
    for k, c in enumerate(cs):
        np.testing.assert_allclose(s[k], np.take_along_axis(c, perm, 1), rtol=1e-14)
        np.testing.assert_allclose(m[k], c[am, np.arange(4)], rtol=1e-14)
        np.testing.assert_allclose(tk[k], c[idx], rtol=1e-14)
        np.testing.assert_allclose(ab[k], np.sign(x) * c, rtol=1e-14)
        np.testing.assert_allclose(sel[k], np.where(x > 0.1, c, 2 * c), rtol=1e-14)


def test_dot_general_and_reduce_prod_are_cauchy_products():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    da, db = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    # Straight-line paths a + t da, b + t db: (a + t da)(b + t db) has derivatives da b + a db
    # and 2 da db.
    y, (d1, d2, d3) = jet(lambda u, v: u @ v, (a, b), ([da, 0 * da, 0 * da],
                                                         [db, 0 * db, 0 * db]))
    _close(d1, da @ b + a @ db)
    _close(d2, 2 * da @ db)
    _close(d3, np.zeros_like(d3))
    x, dx = rng.normal(size=(4,)), rng.normal(size=(4,))
    _, ds = jet(lambda v: bind(P["reduce_prod"], v, axes=(0,)), (x,), ([dx] + [0 * dx] * 4,))
    poly = np.polynomial.polynomial
    coeffs = [1.0]
    for xi, di in zip(x, dx):
        coeffs = poly.polymul(coeffs, [xi, di])
    coeffs = list(coeffs) + [0.0] * 6
    want = [coeffs[k] * math.factorial(k) for k in range(1, 6)]
    _close(ds, want)


def test_solve_series_vs_inverse_path():
    rng = np.random.default_rng(3)
    a0, a1 = np.eye(3) * 3 + rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    b0, b1 = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    # y(t) = (a0 + t a1)^-1 (b0 + t b1): compare with the polynomial-in-t identities
    # a(t) y(t) = b(t) coefficient by coefficient.
    y, ys = jet(lambda a, b: bind(P["solve"], a, b), (a0, b0), ([a1, 0 * a1, 0 * a1],
                                                                 [b1, 0 * b1, 0 * b1]))
    c = [y] + [d / math.factorial(k + 1) for k, d in enumerate(ys)]
    _close(a0 @ c[0], b0)
    _close(a0 @ c[1] + a1 @ c[0], b1)
    for k in (2, 3):
        _close(a0 @ c[k] + a1 @ c[k - 1], np.zeros_like(b0))


def test_cholesky_and_triangular_solve_series_satisfy_their_equations():
    rng = np.random.default_rng(4)
    m = rng.normal(size=(3, 3))
    a0, a1 = m @ m.T + 3 * np.eye(3), rng.normal(size=(3, 3))
    a1 = a1 + a1.T
    zero = 0 * a1
    low, ls = jet(lambda a: bind(P["cholesky"], a), (a0,), ([a1, zero, zero],))
    c = [low] + [d / math.factorial(k + 1) for k, d in enumerate(ls)]
    # (L0 + t L1 + ...)(L0 + t L1 + ...)^T = a0 + t a1, coefficient by coefficient.
    prods = [sum(c[i] @ c[k - i].T for i in range(k + 1)) for k in range(4)]
    _close(prods[0], a0)
    _close(prods[1], a1)
    _close(prods[2], zero)
    _close(prods[3], zero)
    for k in range(4):
        np.testing.assert_allclose(np.triu(c[k], 1), 0, atol=1e-14)
    t0, t1 = np.tril(a0), np.tril(a1)
    b0, b1 = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    params = {"lower": True, "transpose_a": True, "left_side": False}
    y, ys = jet(lambda a, b: bind(P["triangular_solve"], a, b, **params), (a0, b0),
                ([a1, zero, zero], [b1, 0 * b1, 0 * b1]))
    c = [y] + [d / math.factorial(k + 1) for k, d in enumerate(ys)]
    # y op(A) = b with op(A) = tril(A)^T: check y(t) tril(A(t))^T = b(t) coefficient-wise.
    _close(c[0] @ t0.T, b0)
    _close(c[1] @ t0.T + c[0] @ t1.T, b1)
    _close(c[2] @ t0.T + c[1] @ t1.T, 0 * b0)


def test_tridiagonal_series_satisfies_its_equation():
    """x(t) = T(t)^-1 d(t) with every operand moving: sum_i T_i x_{k-i} = d_k for k <= 3."""
    rng = np.random.default_rng(5)
    n, m = 6, 2
    p0 = [rng.uniform(-.5, .5, (n, m)), rng.uniform(3, 4, (n, m)), rng.uniform(-.5, .5, (n, m)),
          rng.normal(size=(n, m))]
    p1 = [rng.normal(size=(n, m)) for _ in range(4)]
    x, xs = jet(lambda *a: bind(P["tridiagonal_solve"], *a), tuple(p0),
                tuple([t, 0 * t, 0 * t] for t in p1))
    c = [x] + [d / math.factorial(k + 1) for k, d in enumerate(xs)]

    def tmul(sub, diag, sup, v):
        t = np.diag(diag) + np.diag(sub[1:], -1) + np.diag(sup[:-1], 1)
        return t @ v

    for j in range(m):
        col = [[q[:, j] for q in p0[:3]], [q[:, j] for q in p1[:3]]]
        want = [p0[3][:, j], p1[3][:, j], 0 * p0[3][:, j], 0 * p0[3][:, j]]
        for k in range(4):
            got = sum(tmul(*col[i], c[k - i][:, j]) for i in range(min(k, 1) + 1))
            _close(got, want[k])


# Composite functions: k-th derivatives to order 8 against sympy's closed forms.
xs = sp.Symbol("x")
COMPOSITES = {
    "bench": (lambda x: np.sin(x) * np.exp(-x ** 2 / 2) + x ** 3,
              sp.sin(xs) * sp.exp(-xs ** 2 / 2) + xs ** 3),
    "rational_log": (lambda x: np.log(1 + x ** 2) / (2 + x),
                     sp.log(1 + xs ** 2) / (2 + xs)),
    "tanh_sqrt": (lambda x: np.tanh(x) * np.arctan(x) + np.sqrt(1 + x * x),
                  sp.tanh(xs) * sp.atan(xs) + sp.sqrt(1 + xs * xs)),
    "erf_pow": (lambda x: snp.erf(x) ** 2 + (1.5 + np.sin(x)) ** 1.5,
                sp.erf(xs) ** 2 + (sp.Rational(3, 2) + sp.sin(xs)) ** sp.Rational(3, 2)),
}


def _sympy_derivs(expr, pts, k):
    out, d = [], expr
    for _ in range(k + 1):
        f = sp.lambdify(xs, d, "mpmath")
        out.append(np.array([float(f(p)) for p in pts]))
        d = sp.diff(d, xs)
    return out


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_derivatives_to_order_8_vs_sympy(name):
    f, expr = COMPOSITES[name]
    pts = np.array([-1.3, -0.2, 0.4, 1.7])
    got = derivatives(f, pts, order=8)
    want = _sympy_derivs(expr, pts, 8)
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10 * max(1, np.abs(w).max()),
                                   err_msg=f"order {k}")


def test_scalar_series_terms_broadcast_to_the_primal():
    x = np.array([0.1, 0.9, 1.7])
    y, (d1, d2) = jet(np.sin, (x,), ([1.0, 0.0],))
    _close(d1, np.cos(x))
    _close(d2, -np.sin(x))
    g = make_graph(lambda v: jet(np.sin, (v,), ([1.0, 0.0],))[1][1], x)
    from autodiff.interpret import eval_graph

    _close(eval_graph(g, x), -np.sin(x))


def test_jet_matches_derivatives_for_unit_path():
    f, expr = COMPOSITES["bench"]
    pts = np.array([0.1, 0.9])
    y, ys = jet(f, (pts,), ([np.ones(2)] + [np.zeros(2)] * 5,))
    _close([y] + list(ys), derivatives(f, pts, order=6))


# Control flow


def _unrolled_vs_loop(f_loop, f_plain, x0):
    path = ([np.full_like(x0, 1.0), np.full_like(x0, 0.3), np.full_like(x0, -0.2)],)
    y, ys = jet(f_loop, (x0,), path)
    y2, ys2 = jet(f_plain, (x0,), path)
    _close(y, y2, 1e-13)
    for a, b in zip(ys, ys2):
        _close(a, b, 1e-12)


def test_jet_through_fori_loop_vs_sympy():
    def f(x):
        return control.fori_loop(0, 3, lambda i, c: np.sin(c) * 1.1 + 0.1 * i, x)

    expr = xs
    for i in range(3):
        expr = sp.sin(expr) * sp.Rational(11, 10) + sp.Rational(i, 10)
    got = derivatives(f, np.array([0.3, 1.2]), order=6)
    want = _sympy_derivs(expr, [0.3, 1.2], 6)
    for g, w in zip(got, want):
        _close(g, w, 1e-10)


def test_jet_through_cond_scan_while():
    def with_cond(x):
        return control.cond(x.sum() > 0, lambda v: np.exp(v) * v, lambda v: np.cos(v), x)

    _unrolled_vs_loop(with_cond, lambda v: np.exp(v) * v, np.array([0.5, 0.2]))
    _unrolled_vs_loop(with_cond, lambda v: np.cos(v), np.array([-0.5, 0.2]))

    def with_scan(x):
        c, ys = control.scan(lambda c, w: (np.tanh(c * w), c * c), x, np.array([0.5, 1.5, -0.7]))
        return c + ys.sum(0)

    def plain_scan(x):
        c, acc = x, 0.0
        for w in (0.5, 1.5, -0.7):
            acc = acc + c * c
            c = np.tanh(c * w)
        return c + acc

    _unrolled_vs_loop(with_scan, plain_scan, np.array([0.4, -0.9]))

    def with_while(x):
        return control.while_loop(lambda c: c[1] < 4, lambda c: (np.sin(c[0]) + c[0], c[1] + 1),
                                  (x, 0))[0]

    def plain_while(x):
        for _ in range(4):
            x = np.sin(x) + x
        return x

    _unrolled_vs_loop(with_while, plain_while, np.array([0.4, -0.9]))


def test_jet_graphs_of_control_flow_verify():
    from autodiff.taylor import jet_graph

    def f(x):
        y = control.fori_loop(0, 2, lambda i, c: np.sin(c) * c, x)
        return control.scan(lambda c, w: (c * w + y, c), y, np.ones((3, 2)))

    g = make_graph(f, np.zeros(2))
    for k in (1, 3):
        jg, has = jet_graph(g, k, [True])
        verify(jg)
        assert has == [True, True]


def test_jet_through_checkpoint_and_custom_rules_uses_the_primal_function():
    @autodiff.custom.custom_jvp
    def f(x):
        return np.sin(x) * x

    f.defjvp(lambda p, t: (f(p[0]), (np.cos(p[0]) * p[0] + np.sin(p[0])) * t[0]))
    ck = autodiff.checkpoint.checkpoint(lambda v: np.exp(v) * v)
    _unrolled_vs_loop(lambda v: f(v) + ck(v), lambda v: np.sin(v) * v + np.exp(v) * v,
                      np.array([0.2, 0.7]))


def test_jet_through_call():
    @control.graph_function
    def g(v):
        return np.exp(-v * v)

    _unrolled_vs_loop(lambda v: g(v) * v, lambda v: np.exp(-v * v) * v, np.array([0.3, 1.1]))


def test_derivatives_graph_grows_at_most_quadratically():
    f = COMPOSITES["bench"][0]
    x = np.zeros(5)
    graphs = {k: derivatives_graph(f, x, k) for k in (2, 4, 8, 16)}
    for g in graphs.values():
        verify(g)
    counts = {k: g.count_nodes() for k, g in graphs.items()}
    # Quadratic growth gives ratios of 4 per doubling; nested grad doubles the graph per order.
    assert counts[16] / counts[8] < 4.5, counts
    assert counts[8] / counts[4] < 4.5, counts
    assert counts[16] <= 3 * 16 ** 2, counts


def test_errors():
    with pytest.raises(ArityError, match="series"):
        jet(np.sin, (1.0,), ([1.0], [2.0]))
    with pytest.raises(ShapeError, match="same length"):
        jet(lambda a, b: a * b, (1.0, 2.0), ([1.0], [1.0, 0.0]))
    with pytest.raises(ShapeError, match="shape"):
        jet(np.sin, (np.ones(3),), ([np.ones(4)],))
    with pytest.raises(UnsupportedError, match="eigh"):
        jet(lambda a: bind(P["eigh"], a)[0], (np.eye(2),), ([np.eye(2)],))


def test_docstring_examples_run():
    import doctest

    import autodiff.taylor as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_taylor_mode_composes_with_vmap_and_grad():
    from autodiff.api import grad
    from autodiff.batching import vmap

    f = COMPOSITES["bench"][0]
    xs = np.linspace(-1.0, 1.0, 5)
    d = derivatives(f, xs, order=3)
    _close(vmap(lambda x: derivatives(f, x, order=3)[3])(xs), d[3])
    # d/dx of the second derivative is the third.
    _close(grad(lambda x: derivatives(f, x, order=2)[2].sum())(xs), d[3])
    _, ys = jet(vmap(lambda v: np.sin(v).sum()), (np.ones((3, 2)),),
                ([np.ones((3, 2)), np.zeros((3, 2))],))
    _close(ys[0], np.full(3, 2 * np.cos(1.0)))
    _close(ys[1], np.full(3, -2 * np.sin(1.0)))
