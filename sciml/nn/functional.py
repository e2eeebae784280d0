"""Stateless network functions written with traced numpy, so they differentiate for free.

Convolution is im2col: one strided slice of the padded input per kernel tap, stacked and
contracted with the kernel by one ``dot_general`` (a BLAS matmul). Pooling stacks the same slices
and reduces over them. Softmax and its relatives subtract the maximum first (stable log-sum-exp).

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
from autodiff.trace import abstractify

from .. import numpy as snp
from .. import precision


def _pair(v, n, what, op):
    v = (v,) * n if isinstance(v, (int, np.integer)) else tuple(int(e) for e in v)
    if len(v) != n or any(e < 0 for e in v):
        raise ShapeError(f"{op}: {what} must be a non-negative int or {n} ints, got {v}")
    return v


def _windows(x, kernel, stride, dilation, op):
    """Strided views of the trailing ``len(kernel)`` axes of x, one per kernel tap."""
    nd = len(kernel)
    spatial = x.shape[-nd:]
    out = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(spatial, kernel, stride, dilation)]
    if any(o <= 0 for o in out):
        raise ShapeError(f"{op}: input spatial shape {tuple(spatial)} is smaller than the kernel "
                         f"{tuple(kernel)} (dilation {tuple(dilation)})")
    lead = (slice(None),) * (x.ndim - nd)
    views = []
    for tap in np.ndindex(*kernel):
        idx = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                    for t, d, s, o in zip(tap, dilation, stride, out))
        views.append(x[lead + idx])
    return views, out


def _windows_shape(spatial, kernel, stride, padding, dilation, nd):
    """Output spatial shape of a convolution (the formula in ``conv``'s docstring)."""
    k, s, p, d = (_pair(v, nd, "arg", "conv") for v in (kernel, stride, padding, dilation))
    return tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                 for n, kk, ss, pp, dd in zip(spatial, k, s, p, d))


def _pad_spatial(x, padding, nd, value=0.0):
    if not any(padding):
        return x
    widths = [(0, 0)] * (x.ndim - nd) + [(p, p) for p in padding]
    return snp.pad(x, widths, constant_values=value)


def conv(x, w, stride=1, padding=0, dilation=1):
    """N-d convolution (cross-correlation, as in deep learning): x (N, C, *S), w (O, C, *K).

    Returns (N, O, *S_out) with ``S_out = (S + 2p - d (K - 1) - 1) // s + 1``.
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
    views, out = _windows(_pad_spatial(x, padding, nd), wa.shape[2:], stride, dilation, op)
    n, c, o = xa.shape[0], wa.shape[1], wa.shape[0]
    k = math.prod(wa.shape[2:])
    cols = snp.reshape(snp.stack(views, axis=2), (n, c * k, math.prod(out)))
    y = precision.dot_general(snp.reshape(w, (o, c * k)), cols, (((1,), (1,)), ((), ())))
    return snp.reshape(snp.transpose(y, (1, 0, 2)), (n, o, *out))


def conv_patches(x, kernel, stride=1, padding=0, dilation=1):
    """The im2col matrix of ``conv``: (N, C*K, P) (used by curvature optimizers)."""
    xa = abstractify(x)
    nd = len(kernel)
    views, out = _windows(_pad_spatial(x, padding, nd), kernel, _pair(stride, nd, "stride", "conv"),
                          _pair(dilation, nd, "dilation", "conv"), "conv")
    return snp.reshape(snp.stack(views, axis=2),
                       (xa.shape[0], xa.shape[1] * math.prod(kernel), math.prod(out)))


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
    views, _ = _windows(_pad_spatial(x, padding, nd, pad_value), kernel, stride, (1,) * nd, op)
    return reduce(snp.stack(views, axis=0), axis=0)


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
