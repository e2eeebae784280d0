"""Forward Laplacian: against the trace of sympy's Hessian, analytic Laplacians and finite
differences, on 2- to 50-dimensional functions, through control flow, with values and gradients."""

import numpy as np
import pytest
import sympy as sp

import sciml.numpy as snp  # noqa: F401  (registers numpy dispatch for traced arrays)
from autodiff.errors import ShapeError
from autodiff.laplacian import laplacian
from autodiff.ops import control
from autodiff.trace import make_graph
from autodiff.verify import verify

rng = np.random.default_rng(0)


def _sympy_laplacian(expr_fn, n, x):
    syms = sp.symbols(f"x0:{n}", real=True)
    e = expr_fn(syms)
    lap = sum(sp.diff(e, s, 2) for s in syms)
    return float(lap.subs(dict(zip(syms, x))).evalf(30))


SYMPY_CASES = {
    "gauss_sin": (lambda x: np.exp(-np.sum(x * x)) * np.sin(x[0]) + x[1] ** 3 * x[2],
                  lambda s: sp.exp(-sum(v * v for v in s)) * sp.sin(s[0]) + s[1] ** 3 * s[2], 3),
    "rational": (lambda x: x[0] / (1.0 + x[1] ** 2) + np.log(1.5 + np.tanh(x[0] * x[1])),
                 lambda s: (s[0] / (1 + s[1] ** 2)
                            + sp.log(sp.Rational(3, 2) + sp.tanh(s[0] * s[1]))), 2),
    "radial": (lambda x: np.sqrt(1.0 + np.sum(x ** 2)) * np.arctan(x[3]),
               lambda s: sp.sqrt(1 + sum(v ** 2 for v in s)) * sp.atan(s[3]), 5),
}


@pytest.mark.parametrize("name", sorted(SYMPY_CASES))
def test_laplacian_vs_sympy_hessian_trace(name):
    f, expr, n = SYMPY_CASES[name]
    x = rng.uniform(-0.8, 0.8, n)
    got = laplacian(f)(x)
    np.testing.assert_allclose(got, _sympy_laplacian(expr, n, x), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("n", [2, 10, 50])
def test_log_cosh_of_linear_map_vs_analytic(n):
    a = rng.normal(size=(n, n)) / np.sqrt(n)
    x = rng.normal(size=n)
    got = laplacian(lambda v: np.sum(np.log(np.cosh(a @ v))))(x)
    # Hessian = A^T diag(sech^2(Ax)) A, so its trace is sum_j sech^2((Ax)_j) |A_j|^2.
    want = np.sum((1 / np.cosh(a @ x) ** 2) * (a ** 2).sum(1))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _fd_laplacian(f, x, h=1e-4):
    total = 0.0
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        total += (f(x + e) - 2 * f(x) + f(x - e)) / h ** 2
    return total


def test_matrix_argument_and_reductions_vs_finite_differences():
    w = rng.normal(size=(4, 3))

    def f(m):
        return np.max(np.sum(np.sin(m) * w, axis=1)) + np.prod(np.cos(m[0])) + np.sum(m[1:] ** 4)

    x = rng.normal(size=(4, 3))
    np.testing.assert_allclose(laplacian(f)(x), _fd_laplacian(f, x), rtol=1e-5, atol=1e-5)


def test_vector_output_gives_one_laplacian_per_output():
    x = rng.normal(size=3)
    got = laplacian(lambda v: np.stack([np.sum(v ** 3), v[0] * np.exp(v[1])]))(x)
    np.testing.assert_allclose(got, [6 * x.sum(), x[0] * np.exp(x[1])], rtol=1e-13)


def test_value_and_gradient_come_along():
    x = rng.normal(size=4)
    v, g, lap = laplacian(lambda u: np.sum(np.sin(u) ** 2), with_value_and_grad=True)(x)
    np.testing.assert_allclose(v, np.sum(np.sin(x) ** 2), rtol=1e-14)
    np.testing.assert_allclose(g, np.sin(2 * x), rtol=1e-13)
    np.testing.assert_allclose(lap, np.sum(2 * np.cos(2 * x)), rtol=1e-13)


def test_through_fori_loop_cond_and_scan():
    def f(x):
        y = control.fori_loop(0, 3, lambda i, c: np.tanh(c) + 0.5 * c, x)
        z = control.cond(x[0] > 0, lambda u: np.sum(u ** 3), lambda u: np.sum(np.exp(u)), y)
        s, _ = control.scan(lambda c, w: (c * np.cos(w * c), None), z, np.array([0.3, -0.5]))
        return s

    for x in (rng.normal(size=4) + np.array([1.0, 0, 0, 0]),
              rng.normal(size=4) - np.array([2.0, 0, 0, 0])):
        np.testing.assert_allclose(laplacian(f)(x), _fd_laplacian(f, x), rtol=2e-5, atol=1e-5)


def test_extra_arguments_and_inside_a_trace():
    x, c = rng.normal(size=3), 1.7

    def f(v, k):
        return np.sum(np.sin(k * v))

    want = -c * c * np.sum(np.sin(c * x))
    np.testing.assert_allclose(laplacian(f)(x, c), want, rtol=1e-13)
    g = make_graph(lambda v: laplacian(f)(v, c) * 2.0, x)
    verify(g)
    from autodiff.interpret import eval_graph

    np.testing.assert_allclose(eval_graph(g, x), 2 * want, rtol=1e-13)


def test_errors():
    with pytest.raises(ShapeError, match="float"):
        laplacian(lambda v: v.sum())(np.arange(3))
    with pytest.raises(ShapeError, match="argnum"):
        laplacian(lambda v: v.sum(), argnum=3)(np.ones(3))


def test_docstring_examples_run():
    import doctest

    import autodiff.laplacian as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_batched_over_points_and_differentiable():
    from autodiff.api import grad
    from autodiff.batching import vmap

    def u(p):
        return np.sin(p[0]) * np.exp(p[1]) + p[0] ** 2 * p[1]

    pts = rng.normal(size=(7, 2))
    # A PDE residual over collocation points: Laplacian of u is 2 y here.
    np.testing.assert_allclose(vmap(laplacian(u))(pts), 2 * pts[:, 1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad(lambda p: laplacian(u)(p))(pts[0]), [0.0, 2.0], atol=1e-12)
