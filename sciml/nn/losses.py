"""Losses as Cells: ``loss(prediction, target)`` -> scalar (``reduction`` "mean", "sum" or
"none"). All of them compute in float32 or wider under mixed precision (black list).

>>> import numpy as np
>>> float(MSELoss()(np.array([1.0, 2.0]), np.array([1.0, 4.0])))
2.0
>>> round(float(SoftmaxCrossEntropyWithLogits()(np.array([[0.0, 0.0]]), np.array([1]))), 4)
0.6931
"""

from __future__ import annotations

import numpy as np

from autodiff import lax
from autodiff.errors import ShapeError
from autodiff.trace import abstractify

from .. import numpy as snp
from .. import precision
from . import functional as F
from .cell import Cell


def _reduce(op, v, reduction):
    if reduction == "mean":
        return snp.mean(v)
    if reduction == "sum":
        return snp.sum(v)
    if reduction == "none":
        return v
    raise ShapeError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(op, p, t):
    ap, at = abstractify(p), abstractify(t)
    if ap.shape != at.shape:
        raise ShapeError(f"{op}: prediction {ap.shape} {ap.dtype} and target {at.shape} "
                         f"{at.dtype} must have the same shape")


class _Loss(Cell):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction


class MSELoss(_Loss):
    """mean((prediction - target)^2)."""

    def construct(self, p, t):
        _same_shape("MSELoss", p, t)
        (p,) = precision.cast_for("mse", p)
        d = p - lax.convert_element_type(t, abstractify(p).dtype)
        return _reduce("MSELoss", d * d, self.reduction)


class SmoothL1Loss(_Loss):
    """Huber-like: 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere."""

    def __init__(self, beta=1.0, reduction="mean"):
        super().__init__(reduction)
        self.beta = float(beta)

    def construct(self, p, t):
        _same_shape("SmoothL1Loss", p, t)
        (p,) = precision.cast_for("smooth_l1", p)
        d = snp.abs(p - lax.convert_element_type(t, abstractify(p).dtype))
        v = snp.where(d < self.beta, 0.5 * d * d / self.beta, d - 0.5 * self.beta)
        return _reduce("SmoothL1Loss", v, self.reduction)


class SoftmaxCrossEntropyWithLogits(_Loss):
    """-sum(labels * log_softmax(logits)); ``sparse=True`` takes integer class labels."""

    def __init__(self, sparse=True, reduction="mean"):
        super().__init__(reduction)
        self.sparse = sparse

    def construct(self, logits, labels):
        a = abstractify(logits)
        if self.sparse:
            la = abstractify(labels)
            if la.shape != a.shape[:-1] or la.dtype.kind not in "iu":
                raise ShapeError(
                    f"SoftmaxCrossEntropyWithLogits: logits {a.shape} need integer labels of "
                    f"shape {a.shape[:-1]}, got {la.shape} {la.dtype}")
            labels = F.one_hot(labels, a.shape[-1], np.float32)
        else:
            _same_shape("SoftmaxCrossEntropyWithLogits", logits, labels)
        lsm = F.log_softmax(logits, -1)
        v = -snp.sum(lsm * lax.convert_element_type(labels, abstractify(lsm).dtype), axis=-1)
        return _reduce("SoftmaxCrossEntropyWithLogits", v, self.reduction)


class SigmoidCrossEntropy(_Loss):
    """Binary cross entropy on logits: max(x,0) - x t + log(1 + e^-|x|) (stable)."""

    def construct(self, x, t):
        _same_shape("SigmoidCrossEntropy", x, t)
        (x,) = precision.cast_for("sigmoid_cross_entropy", x)
        t = lax.convert_element_type(t, abstractify(x).dtype)
        v = snp.maximum(x, 0) - x * t + snp.log1p(snp.exp(-snp.abs(x)))
        return _reduce("SigmoidCrossEntropy", v, self.reduction)


SoftmaxCrossEntropy = SoftmaxCrossEntropyWithLogits
BCEWithLogitsLoss = SigmoidCrossEntropy
