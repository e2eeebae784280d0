"""Stateless network functions written with traced numpy, so they differentiate for free.

Convolution is im2col: the ``im2col`` primitive gathers the patches of the channels-last input
and one ``dot_general`` (a BLAS matmul) contracts them with the kernel; its derivative is two
matmuls and one ``col2im`` scatter-add. Pooling reduces the same patches over the taps (or, for
non-overlapping windows, a reshaped view). Softmax and its relatives subtract the maximum first
(stable log-sum-exp).

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> max_pool2d(x, 2)[0, 0]
array([[ 5.,  7.],
       [13., 15.]])
"""

from __future__ import annotations

import math

import numpy as np

from autodiff import lax
from autodiff.errors import ShapeError
from autodiff.ops import window
from autodiff.ops.window import window_out_shape
from autodiff.trace import abstractify

from .. import numpy as snp
from .. import precision


def _pair(v, n, what, op):
    v = (v,) * n if isinstance(v, (int, np.integer)) else tuple(int(e) for e in v)
    if len(v) != n or any(e < 0 for e in v):
        raise ShapeError(f"{op}: {what} must be a non-negative int or {n} ints, got {v}")
    return v


def _patches(x, kernel, stride, padding, dilation, op, value=0.0):
    """im2col of the trailing ``len(kernel)`` axes of a channels-last ``x (*B, *S, C)``:
    (*B, *O, *K, C), with the output shape checked here so errors name the layer's op."""
    xa = abstractify(x)
    nd = len(kernel)
    pads = tuple((p, p) for p in padding)
    window_out_shape(op, xa.shape[xa.ndim - nd - 1:-1], tuple(kernel), stride, pads, dilation)
    return window.im2col(x, kernel=tuple(kernel), stride=tuple(stride), padding=pads,
                         dilation=tuple(dilation), value=value)


def _channels_last(x, nd):
    """(N, C, *S) -> (N, *S, C): each window position becomes one contiguous run of C."""
    return snp.transpose(x, (0, *range(2, nd + 2), 1))


def _windows_shape(spatial, kernel, stride, padding, dilation, nd):
    """Output spatial shape of a convolution (the formula in ``conv``'s docstring)."""
    k, s, p, d = (_pair(v, nd, "arg", "conv") for v in (kernel, stride, padding, dilation))
    return tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                 for n, kk, ss, pp, dd in zip(spatial, k, s, p, d))


def conv(x, w, stride=1, padding=0, dilation=1, bias=None):
    """N-d convolution (cross-correlation, as in deep learning): x (N, C, *S), w (O, C, *K),
    plus ``bias`` (O,) when given.

    Returns (N, O, *S_out) with ``S_out = (S + 2p - d (K - 1) - 1) // s + 1``. Computed as one
    im2col gather of the channels-last input and one matrix product (N * S_out positions by
    K * C), whose transpose is one matrix product and one col2im scatter-add. The bias is added
    to the (positions, O) product, where its gradient is a sum over the leading axis.
    """
    xa, wa = abstractify(x), abstractify(w)
    nd = wa.ndim - 2
    op = f"conv{nd}d"
    if xa.ndim != nd + 2 or xa.shape[1] != wa.shape[1]:
        raise ShapeError(f"{op}: input {xa.shape} {xa.dtype} does not match kernel {wa.shape} "
                         f"{wa.dtype}: expected (N, {wa.shape[1]}, ...) with {nd} spatial axes")
    stride = _pair(stride, nd, "stride", op)
    padding = _pair(padding, nd, "padding", op)
    dilation = _pair(dilation, nd, "dilation", op)
    x, w = precision.cast_for("conv", x, w)
    cols = _patches(_channels_last(x, nd), wa.shape[2:], stride, padding, dilation, op)
    n, o, ck = xa.shape[0], wa.shape[0], wa.shape[1] * math.prod(wa.shape[2:])
    out = abstractify(cols).shape[1:nd + 1]
    # (O, *K, C) rows match the patches' (*K, C) columns.
    wl = snp.reshape(_channels_last(w, nd), (o, ck))
    # (N, P, K*C) patches: one small matmul per example (see linalg._dot_fast).
    y = precision.dot_general(snp.reshape(cols, (n, math.prod(out), ck)), wl,
                              (((2,), (1,)), ((), ())))
    if bias is not None:
        y = y + precision.cast_for("conv", bias)[0]
    return snp.transpose(snp.reshape(y, (n, *out, o)), (0, nd + 1, *range(1, nd + 1)))


def conv_patches(x, kernel, stride=1, padding=0, dilation=1):
    """The im2col matrix of ``conv``: (N, P, C*K), columns in the order of ``w.reshape(O, -1)``
    (used by curvature optimizers)."""
    xa = abstractify(x)
    nd = len(kernel)
    cols = _patches(_channels_last(x, nd), kernel, _pair(stride, nd, "stride", "conv"),
                    _pair(padding, nd, "padding", "conv"),
                    _pair(dilation, nd, "dilation", "conv"), "conv")
    out = abstractify(cols).shape[1:nd + 1]
    perm = (0, *range(1, nd + 1), 2 * nd + 1, *range(nd + 1, 2 * nd + 1))  # (N, *O, C, *K)
    return snp.reshape(snp.transpose(cols, perm),
                       (xa.shape[0], math.prod(out), xa.shape[1] * math.prod(kernel)))


def _pool(x, kernel, stride, padding, nd, reduce, pad_value, op):
    xa = abstractify(x)
    if xa.ndim < nd + 1:
        raise ShapeError(f"{op}: input {xa.shape} needs at least {nd + 1} axes")
    kernel = _pair(kernel, nd, "kernel_size", op)
    stride = _pair(kernel if stride is None else stride, nd, "stride", op)
    padding = _pair(padding, nd, "padding", op)
    spatial = xa.shape[-nd:]
    if kernel == stride and not any(padding) and all(n % k == 0 for n, k in zip(spatial, kernel)):
        # Non-overlapping windows are a reshape: cheaper forward, and a backward pass without
        # the scatter that transposing strided slices needs.
        # The window axes go first (one transposing copy): reducing over a leading axis is an
        # elementwise operation on contiguous blocks, fast for the reduction and its derivative.
        split = sum(((n // k, k) for n, k in zip(spatial, kernel)), ())
        lead = xa.ndim - nd
        xr = snp.reshape(x, (*xa.shape[:-nd], *split))
        perm = (tuple(lead + 2 * i + 1 for i in range(nd)) + tuple(range(lead))
                + tuple(lead + 2 * i for i in range(nd)))
        out = tuple(n // k for n, k in zip(spatial, kernel))
        xw = snp.reshape(snp.transpose(xr, perm), (math.prod(kernel), *xa.shape[:-nd], *out))
        return reduce(xw, axis=0)
    # Overlapping or padded windows: the patches of x seen as one channel, reduced over taps.
    cols = _patches(snp.expand_dims(x, -1), kernel, stride, padding, (1,) * nd, op, pad_value)
    return reduce(cols, axis=tuple(range(xa.ndim, xa.ndim + nd + 1)))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Maximum over windows of the last two axes (padding with -inf)."""
    return _pool(x, kernel_size, stride, padding, 2, snp.max, -np.inf, "max_pool2d")


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over windows of the last two axes (zero padding counts, as count_include_pad)."""
    return _pool(x, kernel_size, stride, padding, 2, snp.mean, 0.0, "avg_pool2d")


# ---------------------------------------------------------------------------------------------
# Activations


def relu(x):
    # where(x > 0, x, 0) rather than maximum(x, 0): its derivative is one select, where
    # maximum's splits ties and costs four passes over the activations.
    return snp.where(x > 0, x, 0)


def sigmoid(x):
    # 0.5 (1 + tanh(x / 2)) never overflows, unlike 1 / (1 + exp(-x)).
    return 0.5 * (snp.tanh(0.5 * x) + 1)


def softplus(x):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): stable for large |x|.
    return snp.maximum(x, 0) + snp.log1p(snp.exp(-snp.abs(x)))


def silu(x):
    return x * sigmoid(x)


def gelu(x, approximate=False):
    """GELU; exact (erf) by default, the tanh form with ``approximate=True``."""
    if approximate:
        return 0.5 * x * (1 + snp.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + snp.erf(x * 0.7071067811865476))


def logsumexp(x, axis=-1, keepdims=False):
    m = snp.stop_gradient(snp.max(x, axis=axis, keepdims=True))
    s = snp.log(snp.sum(snp.exp(x - m), axis=axis, keepdims=True)) + m
    return s if keepdims else snp.squeeze(s, axis)


def log_softmax(x, axis=-1):
    """log softmax computed in float32 or wider (a black-listed op under mixed precision)."""
    (x,) = precision.cast_for("log_softmax", x)
    # (x - m) - log(sum(exp(x - m))): subtracting the max first keeps the result exact where
    # x - logsumexp(x) would round m + log(sum) at the magnitude of m.
    shifted = x - snp.stop_gradient(snp.max(x, axis=axis, keepdims=True))
    return shifted - snp.log(snp.sum(snp.exp(shifted), axis=axis, keepdims=True))


def softmax(x, axis=-1):
    return snp.exp(log_softmax(x, axis))


def one_hot(labels, num_classes, dtype=np.float32):
    """(…,) integer labels -> (…, num_classes) one-hot array."""
    labels = lax.asarray(labels)
    return snp.astype(snp.equal(snp.expand_dims(labels, -1),
                                snp.arange(num_classes, dtype=labels.dtype)), dtype)
