"""Layers: Dense, Conv1d/Conv2d, pooling, Flatten, BatchNorm, LayerNorm, Dropout, Embedding,
activations and SequentialCell. Weights are float32, laid out as (out, in, *kernel).

>>> import numpy as np
>>> net = SequentialCell(Dense(4, 8), ReLU(), Dense(8, 3))
>>> net(np.ones((2, 4), np.float32)).shape
(2, 3)
>>> sorted(net.parameters())
['0.bias', '0.weight', '2.bias', '2.weight']
"""

from __future__ import annotations

import math

import numpy as np

from autodiff import lax
from autodiff.errors import ShapeError
from autodiff.trace import abstractify

from .. import numpy as snp
from .. import precision
from . import functional as F
from .cell import Buffer, Cell, Parameter, _scope
from .init import initialize


def _tap(cell, a, s):
    """Let a curvature optimizer observe a layer: record its input ``a`` and add a zero probe
    to its pre-activation ``s`` (the gradient w.r.t. the probe is dL/ds)."""
    sc = _scope()
    if sc is None or sc.taps is None:
        return s
    sc.taps.acts[id(cell)] = a
    probe = sc.taps.probes.get(id(cell))
    return s if probe is None else s + lax.convert_element_type(probe, abstractify(s).dtype)


def _check_last(op, x, n):
    a = abstractify(x)
    if a.ndim < 1 or a.shape[-1] != n:
        raise ShapeError(f"{op}: expected input (..., {n}), got {a.shape} {a.dtype}")


class Dense(Cell):
    """y = x W^T + b with W of shape (out_channels, in_channels); optional activation."""

    def __init__(self, in_channels, out_channels, weight_init="he_uniform", bias_init="zeros",
                 has_bias=True, activation=None, rng=None):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.weight = Parameter(initialize(weight_init, (out_channels, in_channels), rng))
        self.has_bias = has_bias
        if has_bias:
            self.bias = Parameter(initialize(bias_init, (out_channels,), rng))
        self.activation = get_activation(activation)

    def construct(self, x):
        _check_last("Dense", x, self.in_channels)
        x, w = precision.cast_for("dense", x, self.weight)
        lead = abstractify(x).shape[:-1]
        x2 = snp.reshape(x, (-1, self.in_channels))
        y = precision.dot_general(x2, w, (((1,), (1,)), ((), ())))
        if self.has_bias:
            y = y + precision.cast_for("dense", self.bias)[0]
        y = snp.reshape(_tap(self, x2, y), (*lead, self.out_channels))
        return y if self.activation is None else self.activation(y)


class _Conv(Cell):
    nd = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 has_bias=True, weight_init="he_uniform", bias_init="zeros", rng=None):
        super().__init__()
        nd = self.nd
        self.kernel_size = F._pair(kernel_size, nd, "kernel_size", type(self).__name__)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.weight = Parameter(initialize(
            weight_init, (out_channels, in_channels, *self.kernel_size), rng))
        self.has_bias = has_bias
        if has_bias:
            self.bias = Parameter(initialize(bias_init, (out_channels,), rng))

    def construct(self, x):
        sc = _scope()
        if sc is not None and sc.taps is not None:
            return self._construct_tapped(x)
        return F.conv(x, self.weight, self.stride, self.padding, self.dilation,
                      self.bias if self.has_bias else None)

    def _construct_tapped(self, x):
        # The same convolution as an explicit Dense on the im2col patches, so the optimizer
        # sees the patches (the conv layer's "input") and dL/d(output) per position (KFC).
        x, w = precision.cast_for("conv", x, self.weight)
        cols = F.conv_patches(x, self.kernel_size, self.stride,
                              F._pair(self.padding, self.nd, "padding", "conv"), self.dilation)
        n, p, ck = abstractify(cols).shape
        rows = snp.reshape(cols, (n * p, ck))
        y = precision.dot_general(rows, snp.reshape(w, (self.out_channels, ck)),
                                  (((1,), (1,)), ((), ())))          # (N * P, O)
        if self.has_bias:
            y = y + precision.cast_for("conv", self.bias)[0]
        y = _tap(self, rows, y)
        out = F._windows_shape(abstractify(x).shape[2:], self.kernel_size, self.stride,
                               self.padding, self.dilation, self.nd)
        return snp.transpose(snp.reshape(y, (n, *out, self.out_channels)),
                             (0, self.nd + 1) + tuple(range(1, self.nd + 1)))


class Conv1d(_Conv):
    """1-D convolution: (N, C, L) -> (N, O, L_out); stride, padding, dilation."""
    nd = 1


class Conv2d(_Conv):
    """2-D convolution: (N, C, H, W) -> (N, O, H_out, W_out); stride, padding, dilation."""
    nd = 2


class MaxPool2d(Cell):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def construct(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(MaxPool2d):
    def construct(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class Flatten(Cell):
    """(N, ...) -> (N, prod(...))."""

    def construct(self, x):
        return snp.reshape(x, (abstractify(x).shape[0], -1))


class _Norm(Cell):
    def _affine(self, xhat, shape):
        g = snp.reshape(self.gamma, shape)
        b = snp.reshape(self.beta, shape)
        return xhat * lax.convert_element_type(g, abstractify(xhat).dtype) + \
            lax.convert_element_type(b, abstractify(xhat).dtype)


class BatchNorm(_Norm):
    """Batch normalisation over axis 1 of (N, C) or (N, C, ...) inputs.

    Training: normalise with the batch mean and (biased) variance and update the running
    statistics ``running = momentum * running + (1 - momentum) * batch`` (MindSpore's
    convention; the running variance is the unbiased batch variance). Eval: use the running
    statistics. Statistics are computed in float32 or wider under mixed precision.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.9, affine=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.gamma = Parameter(np.ones(num_features, np.float32), requires_grad=affine)
        self.beta = Parameter(np.zeros(num_features, np.float32), requires_grad=affine)
        self.moving_mean = Buffer(np.zeros(num_features, np.float32))
        self.moving_variance = Buffer(np.ones(num_features, np.float32))

    def construct(self, x):
        a = abstractify(x)
        if a.ndim < 2 or a.shape[1] != self.num_features:
            raise ShapeError(f"BatchNorm: expected (N, {self.num_features}, ...), got {a.shape}")
        in_dtype = a.dtype
        (x,) = precision.cast_for("batch_norm", x)
        axes = (0,) + tuple(range(2, a.ndim))
        shape = (1, -1) + (1,) * (a.ndim - 2)
        if self.is_training:
            mean = snp.mean(x, axis=axes)
            var = snp.mean(snp.square(x - snp.reshape(mean, shape)), axis=axes)
            n = math.prod(a.shape[i] for i in axes)
            self._update_running(mean, var * (n / max(n - 1, 1)))
        else:
            mean, var = self.moving_mean, self.moving_variance
        xd = abstractify(x).dtype
        mean, var = (lax.convert_element_type(v, xd) for v in (mean, var))
        xhat = (x - snp.reshape(mean, shape)) / snp.sqrt(snp.reshape(var, shape) + self.eps)
        return lax.convert_element_type(self._affine(xhat, shape), in_dtype)

    def _update_running(self, mean, var):
        m = self.momentum
        for name, batch in (("moving_mean", mean), ("moving_variance", var)):
            old = getattr(self, name)
            new = m * old + (1 - m) * lax.convert_element_type(
                snp.stop_gradient(batch), abstractify(old).dtype)
            self.update_buffer(name, new)


BatchNorm1d = BatchNorm2d = BatchNorm


class LayerNorm(_Norm):
    """Normalise over the trailing ``normalized_shape`` axes, then scale and shift."""

    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
            normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.gamma = Parameter(np.ones(shape, np.float32))
        self.beta = Parameter(np.zeros(shape, np.float32))

    def construct(self, x):
        a = abstractify(x)
        k = len(self.normalized_shape)
        if tuple(a.shape[-k:]) != self.normalized_shape:
            raise ShapeError(f"LayerNorm: expected (..., {self.normalized_shape}), got {a.shape}")
        (x,) = precision.cast_for("layer_norm", x)
        axes = tuple(range(a.ndim - k, a.ndim))
        mean = snp.mean(x, axis=axes, keepdims=True)
        var = snp.mean(snp.square(x - mean), axis=axes, keepdims=True)
        xhat = (x - mean) / snp.sqrt(var + self.eps)
        return lax.convert_element_type(self._affine(xhat, self.normalized_shape), a.dtype)


class Dropout(Cell):
    """Zero each element with probability ``p`` in training and scale the rest by 1/(1-p).

    Randomness comes from the explicit key given to ``apply(..., key=...)``; eval is identity.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ShapeError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)

    def construct(self, x):
        if not self.is_training or self.p == 0:
            return x
        a = abstractify(x)
        u = uniform(self.next_key(), a.shape)
        keep = snp.less(u, 1 - self.p)
        return snp.where(keep, x / (1 - self.p), snp.zeros_like(x))


def uniform(key, shape):
    """Uniform [0, 1) float32 numbers from a key (24 random bits each)."""
    from autodiff.primitives import PRIMITIVES as P

    bits = P["random_bits"].bind(lax.asarray(key), shape=tuple(shape))
    # numpy's mod of a negative int64 by a positive modulus is non-negative.
    return snp.astype(snp.mod(bits, 2 ** 24), np.float32) * np.float32(2.0 ** -24)


class Embedding(Cell):
    """Integer ids (...) -> vectors (..., embedding_size) by row lookup."""

    def __init__(self, vocab_size, embedding_size, embedding_init="normal", rng=None):
        super().__init__()
        self.vocab_size = int(vocab_size)
        self.embedding_table = Parameter(initialize(
            embedding_init, (vocab_size, embedding_size), rng))

    def construct(self, ids):
        return snp.take(self.embedding_table, ids, axis=0)


class _Activation(Cell):
    fn = None

    def construct(self, x):
        return type(self).fn(x)


class ReLU(_Activation):
    fn = staticmethod(F.relu)


class GELU(_Activation):
    fn = staticmethod(F.gelu)


class SiLU(_Activation):
    fn = staticmethod(F.silu)


class Tanh(_Activation):
    fn = staticmethod(snp.tanh)


class Sigmoid(_Activation):
    fn = staticmethod(F.sigmoid)


class Softplus(_Activation):
    fn = staticmethod(F.softplus)


ACTIVATIONS = {"relu": ReLU, "gelu": GELU, "silu": SiLU, "swish": SiLU, "tanh": Tanh,
               "sigmoid": Sigmoid, "softplus": Softplus}


def get_activation(a):
    """An activation Cell from a name ("relu", ...), a Cell, a function, or None."""
    if a is None or isinstance(a, Cell) or callable(a) and not isinstance(a, str):
        return a
    if a not in ACTIVATIONS:
        raise ShapeError(f"unknown activation {a!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[a]()


class SequentialCell(Cell):
    """Cells applied in order; sub-cells are named "0", "1", ..."""

    def __init__(self, *cells):
        super().__init__()
        if len(cells) == 1 and isinstance(cells[0], (list, tuple)):
            cells = tuple(cells[0])
        self.n = len(cells)
        for i, c in enumerate(cells):
            setattr(self, str(i), c)

    def __getitem__(self, i):
        return self._cells[str(range(self.n)[i])]

    def __len__(self):
        return self.n

    def construct(self, x):
        for i in range(self.n):
            x = self._cells[str(i)](x)
        return x
