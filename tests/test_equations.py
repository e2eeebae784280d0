"""from_sympy: sympy expressions become traced functions that agree with sympy's own numpy
printer (an independent reference)."""

import numpy as np
import pytest
import sympy as sp

import sciml
from sciml.equations import from_sympy, lambdify_numpy
from sciml.errors import UnsupportedError

x, y, z = sp.symbols("x y z")

EXPRESSIONS = [
    sp.sin(x) * sp.exp(-x**2 / 2) + x**3,
    sp.Rational(3, 7) * x - sp.pi * y + sp.E,
    sp.sqrt(y) + 1 / sp.sqrt(y) + y ** sp.Rational(3, 2) + x ** -2,
    sp.Piecewise((x**2, x < 0), (sp.sin(x) / y, x < 0.5), (sp.cos(y), True)),
    sp.Min(x, y, z) + sp.Max(x, 2 * y),
    sp.tanh(x) + sp.cosh(y) - sp.sinh(z) + sp.atan(x) + sp.atan2(y, x),
    sp.erf(x) + sp.Abs(x - y) + sp.log(y) + sp.sign(x),
    sp.asin(x / 2) + sp.acos(x / 3) + sp.asinh(y) + sp.floor(3 * x) + sp.ceiling(2 * y),
    sp.Piecewise((1, sp.And(x > 0, y > 1.5)), (-1, sp.Or(x < -0.5, sp.Not(z > 0))), (0, True)),
    (x + y) ** 4 - (x + y) ** 4 / (1 + z**2),
]


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=[str(i) for i in range(len(EXPRESSIONS))])
def test_matches_sympy_lambdify(expr):
    rng = np.random.default_rng(0)
    xv = rng.uniform(-1, 1, 50)
    yv = rng.uniform(1, 2, 50)
    zv = rng.uniform(-1, 1, 50)
    f = from_sympy(expr, [x, y, z])
    want = np.broadcast_to(lambdify_numpy(expr, [x, y, z])(xv, yv, zv), xv.shape)
    np.testing.assert_allclose(f(xv, yv, zv), want, rtol=1e-13, atol=1e-14)
    graph = f.graph(xv, yv, zv)
    sciml.verify(graph)
    np.testing.assert_allclose(sciml.eval_graph(graph, xv, yv, zv), want, rtol=1e-13,
                               atol=1e-14)


def test_repeated_subexpressions_are_translated_once():
    e = sp.sin(x + y) ** 2 + sp.sin(x + y) ** 3
    g = from_sympy(e, [x, y]).graph(1.0, 2.0)
    names = [n.prim.name for n in g.body]
    assert names.count("sin") == 1 and names.count("add") == 2


def test_float32_inputs_stay_float32():
    f = from_sympy(sp.Rational(1, 3) * x**2 + 0.5, [x])
    out = f(np.ones(4, np.float32))
    assert out.dtype == np.float32


def test_unsupported_node_is_named():
    with pytest.raises(UnsupportedError, match="gamma"):
        from_sympy(sp.gamma(x), [x])(1.0)


def test_missing_argument_is_named():
    with pytest.raises(UnsupportedError, match="y"):
        from_sympy(x + y, [x])


def test_wrong_argument_count():
    with pytest.raises(TypeError, match="takes 2 arguments"):
        from_sympy(x + y, [x, y])(1.0)


def test_applied_function_as_argument():
    t = sp.Symbol("t")
    u = sp.Function("u")(t)
    f = from_sympy(u**2 + sp.sin(u), [u])
    np.testing.assert_allclose(f(np.array([0.3])), 0.3**2 + np.sin(0.3))
