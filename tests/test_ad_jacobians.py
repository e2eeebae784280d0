"""Jacobians, Hessians and Hessian-vector products of functions of 100+ variables."""

from __future__ import annotations

import numpy as np
import pytest

import sciml  # noqa: F401  (attaches the numpy handlers)
from autodiff.api import grad, hessian, hvp, jacfwd, jacrev, value_and_grad, vjp

N, M = 120, 80
rng = np.random.default_rng(0)
A = rng.standard_normal((M, N)) / np.sqrt(N)
B = rng.standard_normal((N, N)) / N
X0 = rng.uniform(-1, 1, N)


def vec_fn(x):
    """R^120 -> R^80, mixing matmul, elementwise, slicing and reductions."""
    y = np.tanh(A @ x) * x[:M] + np.sin(x[1:M + 1] * x[:M])
    return y + np.sum(x ** 2) / N


def scalar_fn(x):
    return (np.sum(np.log(1 + x ** 2)) + 0.5 * x @ (B @ x)
            + np.sum(np.sin(x[:-1] * x[1:])))


def scalar_hessian_exact(x):
    h = np.diag(2 * (1 - x ** 2) / (1 + x ** 2) ** 2) + 0.5 * (B + B.T)
    p = x[:-1] * x[1:]
    c, s = np.cos(p), np.sin(p)
    i = np.arange(N - 1)
    h[i, i] += -s * x[1:] ** 2
    h[i + 1, i + 1] += -s * x[:-1] ** 2
    off = c - s * p
    h[i, i + 1] += off
    h[i + 1, i] += off
    return h


def fd_jacobian(f, x, h=1e-6):
    cols = [(np.asarray(f(x + h * e)) - np.asarray(f(x - h * e))) / (2 * h) for e in np.eye(
        len(x))]
    return np.stack(cols, axis=-1)


def test_jacfwd_and_jacrev_match_finite_differences():
    jf, jr = jacfwd(vec_fn)(X0), jacrev(vec_fn)(X0)
    assert jf.shape == jr.shape == (M, N)
    want = fd_jacobian(vec_fn, X0)
    np.testing.assert_allclose(jf, want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jr, jf, rtol=1e-12, atol=1e-13)


def test_hessian_matches_closed_form_and_finite_differences():
    h = hessian(scalar_fn)(X0)
    assert h.shape == (N, N)
    np.testing.assert_allclose(h, scalar_hessian_exact(X0), rtol=1e-11, atol=1e-12)
    fd = fd_jacobian(grad(scalar_fn), X0, h=1e-5)
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-7)


def test_hvp_is_hessian_times_vector():
    v = rng.standard_normal(N)
    np.testing.assert_allclose(hvp(scalar_fn, (X0,), (v,)), scalar_hessian_exact(X0) @ v,
                               rtol=1e-11, atol=1e-11)


def test_gradient_of_large_function_matches_finite_differences():
    value, g = value_and_grad(scalar_fn)(X0)
    assert float(value) == pytest.approx(float(scalar_fn(X0)), rel=1e-14)
    np.testing.assert_allclose(g, fd_jacobian(scalar_fn, X0), rtol=1e-7, atol=1e-8)


def test_jacobians_of_pytrees_and_argnums():
    def f(params, x):
        return {"out": np.tanh(params["w"] @ x + params["b"]), "norm": np.sum(x ** 2)}

    p = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(3)}
    x = rng.standard_normal(4)
    jr = jacrev(f, argnums=(0, 1))(p, x)
    jf = jacfwd(f, argnums=(0, 1))(p, x)
    assert jr["out"][0]["w"].shape == (3, 3, 4) and jr["out"][1].shape == (3, 4)
    assert jr["norm"][1].shape == (4,)
    for a, b in [(jr["out"][0]["w"], jf["out"][0]["w"]), (jr["out"][1], jf["out"][1]),
                 (jr["norm"][1], jf["norm"][1]), (jr["out"][0]["b"], jf["out"][0]["b"])]:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jr["norm"][1], 2 * x, rtol=1e-14)
    y = np.tanh(p["w"] @ x + p["b"])
    np.testing.assert_allclose(jr["out"][1], (1 - y ** 2)[:, None] * p["w"], rtol=1e-12)


def test_vjp_function_is_reusable_and_matches_jacobian_rows():
    out, pull = vjp(vec_fn, X0)
    j = jacrev(vec_fn)(X0)
    for i in (0, 17, M - 1):
        np.testing.assert_allclose(pull(np.eye(M)[i])[0], j[i], rtol=1e-12, atol=1e-14)


def test_grad_has_aux_and_multiple_argnums():
    def loss(w, b):
        r = np.tanh(A @ w + b)
        return np.sum(r ** 2), r

    (val, aux), (gw, gb) = value_and_grad(loss, argnums=(0, 1), has_aux=True)(X0, 0.1)
    assert aux.shape == (M,) and float(val) == pytest.approx(float(np.sum(aux ** 2)))
    fd_b = (loss(X0, 0.1 + 1e-6)[0] - loss(X0, 0.1 - 1e-6)[0]) / 2e-6
    assert float(gb) == pytest.approx(float(fd_b), rel=1e-7)
    np.testing.assert_allclose(gw, fd_jacobian(lambda w: loss(w, 0.1)[0], X0), rtol=1e-6,
                               atol=1e-8)


def test_eager_calls_trace_once_per_signature():
    calls = []

    def f(x):
        calls.append(1)
        return np.sum(np.sin(x) * x)

    df = grad(f)
    for x in (X0, X0 * 2, X0 + 1):
        df(x)
    assert len(calls) == 1
    grad(f)(X0[:5])  # a new shape traces again
    assert len(calls) == 2


def test_transforms_nest_inside_traces_and_print():
    from autodiff.trace import make_graph

    g = make_graph(grad(grad(lambda x: np.sin(x) * x)), 0.5)
    text = str(g)
    assert text.startswith("graph ") and "sin" in text and "cos" in text
    from autodiff.interpret import eval_graph

    assert float(eval_graph(g, 0.5)) == pytest.approx(2 * np.cos(0.5) - 0.5 * np.sin(0.5))


@pytest.mark.parametrize("module", ["jvp", "transpose", "api", "checkpoint", "custom"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"autodiff.{module}")
    assert doctest.testmod(mod).failed == 0


def test_linearize_reuses_the_primal_and_matches_jvp():
    from autodiff.api import jvp, linearize

    out, f_jvp = linearize(vec_fn, X0)
    np.testing.assert_allclose(out, vec_fn(X0), rtol=1e-15)
    for seed in range(2):
        v = np.random.default_rng(seed).standard_normal(N)
        np.testing.assert_allclose(f_jvp(v), jvp(vec_fn, (X0,), (v,))[1], rtol=1e-12,
                                   atol=1e-14)


def test_vjp_has_aux():
    out, pull, aux = vjp(lambda x: (np.sum(x ** 2), x.shape[0]), X0, has_aux=True)
    assert aux == N
    np.testing.assert_allclose(pull(np.float64(1.0))[0], 2 * X0, rtol=1e-15)
