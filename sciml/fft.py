"""``sciml.fft`` (also ``sciml.numpy.fft``): numpy.fft's names on plain arrays (eager) and traced
values, built on the fft, ifft, rfft and irfft primitives.

Lengths ``n``/``s`` crop or zero-pad the input as numpy does (``slice``/``pad`` nodes); ``norm``
is "backward" (default), "ortho" or "forward". Real input of ``fft`` becomes complex; integer
input computes in double precision; float32, float16 and bfloat16 in single precision.

>>> import numpy as np
>>> from sciml import fft
>>> x = np.arange(8.0)
>>> bool(np.allclose(fft.irfft(fft.rfft(x), n=8), x))
True
"""

from __future__ import annotations

import numpy as np

from autodiff import dtypes as _dt
from autodiff import lax
from autodiff.errors import ShapeError, UnsupportedError
from autodiff.primitives import PRIMITIVES as _P
from autodiff.trace import Tracer, abstractify

__all__ = [
    "fft", "fft2", "fftfreq", "fftn", "fftshift", "ifft", "ifft2", "ifftn", "ifftshift",
    "irfft", "irfft2", "irfftn", "rfft", "rfft2", "rfftfreq", "rfftn",
]

_NORMS = (None, "backward", "ortho", "forward")


def _arr(x):
    return x if isinstance(x, Tracer) else lax.asarray(x)


def _as_complex(x):
    d = abstractify(x).dtype
    if _dt.is_complex(d):
        return x
    return lax.convert_element_type(x, np.complex128 if d in (np.float64, np.int64, np.int32,
                                                               np.bool_) else np.complex64)


def _as_real(x):
    d = abstractify(x).dtype
    if _dt.is_float(d):
        return x
    if _dt.is_complex(d):
        raise ShapeError(f"rfft: input must be real, got {d} (use fft for complex input)")
    return lax.convert_element_type(x, np.float64)


def _resize(x, axis: int, n: int):
    """Crop or zero-pad ``x`` along ``axis`` to ``n`` points (numpy's ``n``/``s`` argument)."""
    shape = abstractify(x).shape
    m = shape[axis]
    if n == m:
        return x
    if n < m:
        limit = list(shape)
        limit[axis] = n
        return _P["slice"].bind(x, start=(0,) * len(shape), limit=tuple(limit),
                                strides=(1,) * len(shape))
    pw = [(0, 0)] * len(shape)
    pw[axis] = (0, n - m)
    return _P["pad"].bind(x, pad_width=tuple(pw), mode="constant", value=0)


def _plan(name, x, s, axes):
    """Normalised ``(axes, lengths)`` for an n-d transform, numpy's defaulting rules."""
    nd = abstractify(x).ndim
    if axes is None:
        axes = tuple(range(nd - len(s), nd)) if s is not None else tuple(range(nd))
    axes = tuple(int(a) for a in ((axes,) if isinstance(axes, (int, np.integer)) else axes))
    if any(not -nd <= a < nd for a in axes):
        raise ShapeError(f"{name}: axes {axes} out of range for an array of rank {nd}")
    axes = tuple(a % nd for a in axes)
    if len(set(axes)) != len(axes):
        raise UnsupportedError(f"{name}: repeated axes {axes} (numpy transforms twice) are not "
                               "supported")
    if s is not None:
        s = tuple(int(v) for v in s)
        if len(s) != len(axes):
            raise ShapeError(f"{name}: s={s} and axes={axes} have different lengths")
        if any(v < 1 for v in s):
            raise ShapeError(f"{name}: invalid number of points s={s}")
    return axes, s


def _scale(x, norm, n_points: int, inverse: bool):
    if norm not in _NORMS:
        raise ShapeError(f"fft: norm must be 'backward', 'ortho' or 'forward', got {norm!r}")
    if norm in (None, "backward") or n_points == 0:
        return x
    if norm == "ortho":
        f = np.sqrt(n_points) if inverse else 1.0 / np.sqrt(n_points)
    else:
        f = float(n_points) if inverse else 1.0 / n_points
    return lax.mul(x, float(f))


def _points(shape, axes):
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# n-d transforms (the 1-d and 2-d ones call these)


def fftn(a, s=None, axes=None, norm=None):
    """``np.fft.fftn``."""
    x = _as_complex(_arr(a))
    axes, s = _plan("fftn", x, s, axes)
    for ax, n in zip(axes, s or ()):
        x = _resize(x, ax, n)
    if not axes:
        return x
    out = _P["fft"].bind(x, axes=axes)
    return _scale(out, norm, _points(abstractify(x).shape, axes), inverse=False)


def ifftn(a, s=None, axes=None, norm=None):
    """``np.fft.ifftn``."""
    x = _as_complex(_arr(a))
    axes, s = _plan("ifftn", x, s, axes)
    for ax, n in zip(axes, s or ()):
        x = _resize(x, ax, n)
    if not axes:
        return x
    out = _P["ifft"].bind(x, axes=axes)
    return _scale(out, norm, _points(abstractify(x).shape, axes), inverse=True)


def rfftn(a, s=None, axes=None, norm=None):
    """``np.fft.rfftn``: the last of ``axes`` keeps ``n // 2 + 1`` frequencies."""
    x = _as_real(_arr(a))
    axes, s = _plan("rfftn", x, s, axes)
    if not axes:
        raise ShapeError("rfftn: needs at least one axis")
    for ax, n in zip(axes, s or ()):
        x = _resize(x, ax, n)
    out = _P["rfft"].bind(x, axes=axes)
    return _scale(out, norm, _points(abstractify(x).shape, axes), inverse=False)


def irfftn(a, s=None, axes=None, norm=None):
    """``np.fft.irfftn``: the output has ``s[-1]`` (default ``2 * (m - 1)``) points along the
    last of ``axes``."""
    x = _as_complex(_arr(a))
    axes, s = _plan("irfftn", x, s, axes)
    if not axes:
        raise ShapeError("irfftn: needs at least one axis")
    shape = abstractify(x).shape
    if s is None:
        s = tuple(shape[a] for a in axes[:-1]) + (2 * (shape[axes[-1]] - 1),)
    if s[-1] < 1:
        raise ShapeError(f"irfftn: invalid number of output points {s[-1]} (input axis "
                         f"{axes[-1]} of shape {shape})")
    for ax, n in zip(axes[:-1], s[:-1]):
        x = _resize(x, ax, n)
    x = _resize(x, axes[-1], s[-1] // 2 + 1)
    out = _P["irfft"].bind(x, axes=axes, n=int(s[-1]))
    return _scale(out, norm, int(np.prod(s, dtype=np.int64)), inverse=True)


def _one(fn, a, n, axis, norm):
    return fn(a, None if n is None else (n,), (axis,), norm)


def fft(a, n=None, axis=-1, norm=None):
    """``np.fft.fft``."""
    return _one(fftn, a, n, axis, norm)


def ifft(a, n=None, axis=-1, norm=None):
    """``np.fft.ifft``."""
    return _one(ifftn, a, n, axis, norm)


def rfft(a, n=None, axis=-1, norm=None):
    """``np.fft.rfft``."""
    return _one(rfftn, a, n, axis, norm)


def irfft(a, n=None, axis=-1, norm=None):
    """``np.fft.irfft``."""
    return _one(irfftn, a, n, axis, norm)


def fft2(a, s=None, axes=(-2, -1), norm=None):
    return fftn(a, s, axes, norm)


def ifft2(a, s=None, axes=(-2, -1), norm=None):
    return ifftn(a, s, axes, norm)


def rfft2(a, s=None, axes=(-2, -1), norm=None):
    return rfftn(a, s, axes, norm)


def irfft2(a, s=None, axes=(-2, -1), norm=None):
    return irfftn(a, s, axes, norm)


# ---------------------------------------------------------------------------------------------
# Frequencies and shifts


def fftfreq(n, d=1.0):
    """``np.fft.fftfreq``; ``n`` is static, the spacing ``d`` may be traced."""
    if not isinstance(d, Tracer):
        return np.fft.fftfreq(int(n), d)
    return lax.div(np.fft.fftfreq(int(n)), d)


def rfftfreq(n, d=1.0):
    """``np.fft.rfftfreq``; ``n`` is static, the spacing ``d`` may be traced."""
    if not isinstance(d, Tracer):
        return np.fft.rfftfreq(int(n), d)
    return lax.div(np.fft.rfftfreq(int(n)), d)


def _roll_half(x, axes, sign):
    x = _arr(x)
    shape = abstractify(x).shape
    nd = len(shape)
    axes = tuple(range(nd)) if axes is None else (
        (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes))
    offset = [0] * nd
    for a in axes:
        # roll by n // 2 (fftshift) or -(n // 2) (ifftshift); shift reads x[i + offset].
        offset[a % nd] = -sign * (shape[a % nd] // 2)
    return _P["shift"].bind(x, offset=tuple(offset), boundary="periodic")


def fftshift(x, axes=None):
    """``np.fft.fftshift``: zero frequency to the centre."""
    return _roll_half(x, axes, +1)


def ifftshift(x, axes=None):
    """``np.fft.ifftshift``: the inverse of fftshift."""
    return _roll_half(x, axes, -1)
