"""custom_jvp, custom_vjp and checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

import sciml  # noqa: F401  (attaches the numpy handlers)
from autodiff.api import grad, hessian, jacfwd, jacrev, jvp, value_and_grad
from autodiff.checkpoint import checkpoint
from autodiff.custom import custom_jvp, custom_vjp
from autodiff.errors import UnsupportedError
from autodiff.trace import make_graph


@custom_jvp
def logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


@logsumexp.defjvp
def _logsumexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = logsumexp(x)
    return y, np.sum(np.exp(x - y) * t)


def naive_logsumexp(x):
    return np.log(np.sum(np.exp(x)))


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def test_custom_jvp_logsumexp_is_stable_where_the_naive_form_overflows():
    x = np.array([1000.0, 1001.0, 999.0])
    g = grad(logsumexp)(x)
    np.testing.assert_allclose(g, softmax(x), rtol=1e-12)  # exp(x - y), y ~ 1001: ulp 1e-13
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.all(np.isfinite(grad(naive_logsumexp)(x)))


def test_custom_jvp_forward_reverse_and_second_order():
    x = np.array([0.2, -1.0, 0.7, 0.1])
    p = softmax(x)
    v = np.array([1.0, 2.0, -1.0, 0.5])
    out, t = jvp(logsumexp, (x,), (v,))
    assert float(out) == pytest.approx(float(naive_logsumexp(x)), rel=1e-14)
    assert float(t) == pytest.approx(float(p @ v), rel=1e-14)
    # The rule is differentiated in turn: the Hessian of logsumexp is diag(p) - p p^T.
    np.testing.assert_allclose(hessian(logsumexp)(x), np.diag(p) - np.outer(p, p), rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(jacrev(grad(logsumexp))(x), np.diag(p) - np.outer(p, p),
                               rtol=1e-12, atol=1e-15)


def test_custom_jvp_rule_is_what_gets_used():
    @custom_jvp
    def f(x):
        return np.sin(x)

    @f.defjvp
    def _(primals, tangents):
        return f(primals[0]), 3.0 * tangents[0]  # deliberately not cos(x)

    assert float(grad(f)(0.4)) == 3.0
    assert float(jvp(f, (0.4,), (2.0,))[1]) == 6.0
    assert float(f(0.4)) == pytest.approx(np.sin(0.4))
    assert "custom_jvp_call" in str(make_graph(f, 0.4))


def test_custom_jvp_under_vmap_keeps_values():
    from autodiff.batching import vmap

    xs = np.array([[0.1, 0.2], [3.0, -1.0]])
    np.testing.assert_allclose(vmap(logsumexp)(xs), [naive_logsumexp(x) for x in xs],
                               rtol=1e-14)
    np.testing.assert_allclose(jacfwd(lambda x: np.stack([logsumexp(x), x[0]]))(xs[0]),
                               [softmax(xs[0]), [1.0, 0.0]], rtol=1e-14)


@custom_vjp
def clip_gradient(x):
    return x


def _clip_fwd(x):
    return x, None


def _clip_bwd(_, g):
    return (np.clip(g, -1.0, 1.0),)


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def test_custom_vjp_uses_the_backward_rule():
    f = lambda x: np.sum(clip_gradient(x) * np.array([0.5, 3.0, -4.0]))  # noqa: E731
    np.testing.assert_allclose(grad(f)(np.ones(3)), [0.5, 1.0, -1.0])
    assert float(value_and_grad(f)(np.ones(3))[0]) == pytest.approx(-0.5)


def test_custom_vjp_with_residuals_and_multiple_arguments():
    @custom_vjp
    def f(x, y):
        return np.sin(x) * y

    def fwd(x, y):
        return np.sin(x) * y, (np.cos(x), np.sin(x), y)

    def bwd(res, g):
        c, s, y = res
        return (g * c * y, np.sum(g * s))

    f.defvjp(fwd, bwd)
    gx, gy = grad(lambda x, y: np.sum(f(x, y) ** 2), argnums=(0, 1))(np.array([0.3, 1.2]), 2.0)
    x, y = np.array([0.3, 1.2]), 2.0
    np.testing.assert_allclose(gx, 2 * np.sin(x) * y * np.cos(x) * y, rtol=1e-14)
    assert float(gy) == pytest.approx(float(np.sum(2 * np.sin(x) ** 2 * y)), rel=1e-14)
    # Reverse over reverse differentiates the bwd graph: d2/dx2 of sin(x) y is -sin(x) y.
    g2 = grad(lambda x: grad(lambda z: f(z, 2.0))(x))(0.3)
    assert float(g2) == pytest.approx(-np.sin(0.3) * 2.0, rel=1e-14)


def test_custom_vjp_forward_mode_raises_and_closures_are_rejected():
    with pytest.raises(UnsupportedError, match="custom_vjp"):
        jvp(clip_gradient, (np.ones(2),), (np.ones(2),))

    def g(w):
        @custom_vjp
        def h(x):
            return x * w  # closes over w, which is being differentiated

        h.defvjp(lambda x: (x * w, None), lambda r, c: (c * w,))
        return h(2.0)

    with pytest.raises(UnsupportedError, match="closes over"):
        grad(g)(3.0)


def test_checkpoint_gives_the_same_derivatives_at_every_order():
    def body(v):
        return np.tanh(np.sin(v) * v + 0.3)

    f_ck = lambda x: np.sum(checkpoint(body)(x) ** 2)  # noqa: E731
    f = lambda x: np.sum(body(x) ** 2)  # noqa: E731
    x = np.linspace(-1, 1, 7)
    np.testing.assert_allclose(grad(f_ck)(x), grad(f)(x), rtol=1e-14)
    np.testing.assert_allclose(hessian(f_ck)(x), hessian(f)(x), rtol=1e-12, atol=1e-14)
    v = np.ones(7)
    assert float(jvp(f_ck, (x,), (v,))[1]) == pytest.approx(float(jvp(f, (x,), (v,))[1]))
    text = str(make_graph(grad(f_ck), x))
    assert "checkpoint" in text or "call" in text
