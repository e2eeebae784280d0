"""Losses against scipy/numpy formulas, stability at extreme logits, gradients vs finite
differences, errors."""

import numpy as np
import pytest
import scipy.special

import sciml.nn as nn
from sciml.errors import ShapeError
from sciml.nn.train import grad

RNG = np.random.default_rng(4)


def test_softmax_cross_entropy_sparse_and_dense():
    logits = RNG.normal(size=(6, 5)) * 3
    labels = RNG.integers(0, 5, 6)
    ref = -(logits[np.arange(6), labels] - scipy.special.logsumexp(logits, axis=1))
    loss = nn.SoftmaxCrossEntropyWithLogits(reduction="none")
    np.testing.assert_allclose(loss(logits, labels), ref, rtol=1e-12)
    soft = scipy.special.softmax(RNG.normal(size=(6, 5)), axis=1)
    dense = nn.SoftmaxCrossEntropyWithLogits(sparse=False)(logits, soft)
    ref_dense = -(soft * scipy.special.log_softmax(logits, axis=1)).sum(1).mean()
    np.testing.assert_allclose(dense, ref_dense, rtol=1e-12)


def test_softmax_cross_entropy_is_stable_at_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], np.float32)
    out = nn.SoftmaxCrossEntropyWithLogits(reduction="none")(logits, np.array([0, 1]))
    np.testing.assert_allclose(out, [0.0, np.log(2.0)], atol=1e-6)
    g = grad(lambda z: nn.SoftmaxCrossEntropyWithLogits()(z, np.array([0, 1])))(logits)
    assert np.all(np.isfinite(g))


def test_sigmoid_cross_entropy_and_smooth_l1_and_mse():
    x = np.array([-800.0, -3.0, 0.0, 2.0, 800.0])
    t = np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    ref = -(t * scipy.special.log_expit(x) + (1 - t) * scipy.special.log_expit(-x))
    np.testing.assert_allclose(nn.SigmoidCrossEntropy("none")(x, t), ref, rtol=1e-12, atol=1e-300)
    p, q = RNG.normal(size=10), RNG.normal(size=10)
    d = np.abs(p - q)
    ref = np.where(d < 0.5, 0.5 * d * d / 0.5, d - 0.25).mean()
    np.testing.assert_allclose(nn.SmoothL1Loss(beta=0.5)(p, q), ref, rtol=1e-12)
    np.testing.assert_allclose(nn.MSELoss("sum")(p, q), ((p - q) ** 2).sum(), rtol=1e-12)


@pytest.mark.parametrize("loss,target", [
    (nn.MSELoss(), lambda s: RNG.normal(size=s)),
    (nn.SmoothL1Loss(), lambda s: RNG.normal(size=s)),
    (nn.SigmoidCrossEntropy(), lambda s: RNG.uniform(size=s)),
    (nn.SoftmaxCrossEntropyWithLogits(), lambda s: RNG.integers(0, s[-1], s[:-1])),
])
def test_loss_gradients_vs_finite_differences(loss, target):
    x = RNG.normal(size=(4, 3))
    t = target(x.shape)
    g = grad(lambda z: loss(z, t))(x)
    h = 1e-6
    for _ in range(3):
        d = RNG.normal(size=x.shape)
        fd = (loss(x + h * d, t) - loss(x - h * d, t)) / (2 * h)
        assert abs(fd - np.sum(g * d)) < 1e-7 * max(1, abs(fd))


def test_loss_errors():
    with pytest.raises(ShapeError, match="integer labels of shape"):
        nn.SoftmaxCrossEntropyWithLogits()(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ShapeError, match="MSELoss: prediction"):
        nn.MSELoss()(np.zeros(3), np.zeros(4))
    with pytest.raises(ShapeError, match="reduction"):
        nn.MSELoss("avg")(np.zeros(3), np.zeros(3))
