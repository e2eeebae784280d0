"""Window primitives: ``im2col`` (the patches a convolution or a pool reads) and its transpose
``col2im`` (the scatter-add of patches back onto the input).

Both work on channels-last arrays ``x (*B, *S, C)``: any leading batch axes, ``nd = len(kernel)``
spatial axes, one trailing channel axis. A window position is one contiguous run of C values,
so the gather and the scatter move runs rather than single numbers, and the patches reshape for
free into the (positions, taps * channels) matrix of a convolution's matmul::

    im2col(x)[b, o_1..o_nd, k_1..k_nd, c] = xpad[b, o_1 s_1 + k_1 d_1, ..., c]
    O_i = (S_i + lo_i + hi_i - d_i (K_i - 1) - 1) // s_i + 1

with ``xpad`` the input padded by ``padding = ((lo_i, hi_i), ...)`` with ``value``. ``col2im``
with the same parameters (and ``shape = S``) sums every patch entry back where it was read from
and drops the padding: it is the transpose of ``im2col`` (value 0), and ``im2col`` is its
transpose. Both are linear, so every transform has a one-line rule. The numpy implementations
below are the reference; ``kernels.library`` has compiled ones for the CPU.

>>> import numpy as np
>>> x = np.arange(4.0).reshape(1, 4, 1)            # one batch, 4 points, 1 channel
>>> im2col(x, kernel=(2,), stride=(2,), padding=((0, 0),), dilation=(1,))[0, :, :, 0]
array([[0., 1.],
       [2., 3.]])
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from ..ir import AbstractValue
from ..primitives import def_primitive


def _ints(name, what, seq, n, least):
    seq = tuple(seq)
    if len(seq) != n or not all(isinstance(s, (int, np.integer)) and s >= least for s in seq):
        raise ShapeError(f"{name}: {what} must be {n} integer(s) >= {least}, got {seq}")
    return tuple(int(s) for s in seq)


def window_params(name, kernel, stride, padding, dilation):
    """Checked (kernel, stride, padding, dilation) tuples; padding as ((lo, hi), ...)."""
    nd = len(tuple(kernel))
    if nd < 1:
        raise ShapeError(f"{name}: kernel must have at least one spatial axis, got {kernel}")
    kernel = _ints(name, "kernel", kernel, nd, 1)
    stride = _ints(name, "stride", stride, nd, 1)
    dilation = _ints(name, "dilation", dilation, nd, 1)
    pads = tuple(tuple(p) for p in padding)
    if len(pads) != nd or any(len(p) != 2 for p in pads):
        raise ShapeError(f"{name}: padding must be {nd} (lo, hi) pairs, got {padding}")
    pads = tuple(_ints(name, "padding", p, 2, 0) for p in pads)
    return kernel, stride, pads, dilation


def window_out_shape(name, spatial, kernel, stride, padding, dilation):
    """The number of window positions along each spatial axis (each at least 1)."""
    out = tuple((n + lo + hi - d * (k - 1) - 1) // s + 1
                for n, k, s, (lo, hi), d in zip(spatial, kernel, stride, padding, dilation))
    if any(o < 1 for o in out):
        raise ShapeError(f"{name}: spatial shape {tuple(spatial)} padded by {padding} is smaller "
                         f"than the kernel {kernel} with dilation {dilation}")
    return out


def _split(name, x, nd, what):
    if x.ndim < nd + 1:
        raise ShapeError(f"{name}: {what} {x.shape} needs {nd} spatial axes and a trailing "
                         "channel axis (channels-last layout)")


def _im2col_rule(x, *, kernel, stride, padding, dilation, value=0.0):
    kernel, stride, padding, dilation = window_params("im2col", kernel, stride, padding, dilation)
    nd = len(kernel)
    _split("im2col", x, nd, "input")
    lead, spatial = x.shape[:x.ndim - nd - 1], x.shape[x.ndim - nd - 1:-1]
    out = window_out_shape("im2col", spatial, kernel, stride, padding, dilation)
    return AbstractValue(lead + out + kernel + x.shape[-1:], x.dtype, x.weak)


def split_patches(shape, nd):
    """(lead, out, kernel) axes of a patches shape."""
    lead = shape[:len(shape) - 2 * nd - 1]
    return lead, shape[len(lead):len(lead) + nd], shape[len(lead) + nd:-1]


def _col2im_rule(cols, *, shape, kernel, stride, padding, dilation):
    kernel, stride, padding, dilation = window_params("col2im", kernel, stride, padding, dilation)
    nd = len(kernel)
    shape = _ints("col2im", "shape", shape, nd, 1)
    if cols.dtype == np.bool_:
        raise DTypeError("col2im: sums overlapping patches, which boolean arrays cannot; "
                         "convert them to a numeric dtype first")
    if cols.ndim < 2 * nd + 1:
        raise ShapeError(f"col2im: patches {cols.shape} need {nd} window-position axes, {nd} "
                         "kernel axes and a trailing channel axis")
    out = window_out_shape("col2im", shape, kernel, stride, padding, dilation)
    lead, got_out, got_kernel = split_patches(cols.shape, nd)
    if (got_out, got_kernel) != (out, kernel):
        raise ShapeError(f"col2im: patches {cols.shape} do not match an input of spatial shape "
                         f"{shape}: expected (..., {', '.join(map(str, out + kernel))}, C)")
    return AbstractValue(lead + shape + cols.shape[-1:], cols.dtype, cols.weak)


def _tap_slices(tap, out, stride, dilation):
    return tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                 for t, o, s, d in zip(tap, out, stride, dilation))


def _tap_index(tap, nlead, nd):
    """Index of one kernel tap's (*B, *O, C) block in the patches."""
    return (slice(None),) * (nlead + nd) + tap


def _im2col_impl(x, *, kernel, stride, padding, dilation, value=0.0):
    nd = len(kernel)
    lead = x.shape[:x.ndim - nd - 1]
    widths = [(0, 0)] * len(lead) + [tuple(p) for p in padding] + [(0, 0)]
    xp = np.pad(x, widths, constant_values=np.asarray(value, x.dtype)) if any(
        lo or hi for lo, hi in padding) else x
    out = window_out_shape("im2col", x.shape[len(lead):-1], kernel, stride, padding, dilation)
    cols = np.empty(lead + out + tuple(kernel) + x.shape[-1:], x.dtype)
    skip = (slice(None),) * len(lead)
    for tap in np.ndindex(*kernel):
        cols[_tap_index(tap, len(lead), nd)] = xp[
            skip + _tap_slices(tap, out, stride, dilation)]
    return cols


def _col2im_impl(cols, *, shape, kernel, stride, padding, dilation):
    nd = len(kernel)
    lead, out, _ = split_patches(cols.shape, nd)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(shape, padding))
    xp = np.zeros(lead + padded + cols.shape[-1:], cols.dtype)
    skip = (slice(None),) * len(lead)
    for tap in np.ndindex(*kernel):
        xp[skip + _tap_slices(tap, out, stride, dilation)] += cols[
            _tap_index(tap, len(lead), nd)]
    inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(shape, padding))
    return np.ascontiguousarray(xp[skip + inner])


im2col = def_primitive("im2col", _im2col_rule, _im2col_impl, family="window",
                       doc="patches of a channels-last array (the gather of a convolution)")
col2im = def_primitive("col2im", _col2im_rule, _col2im_impl, family="window",
                       doc="sum of patches back onto a channels-last array (im2col's transpose)")
