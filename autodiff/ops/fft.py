"""Discrete Fourier transforms over static axes, numpy's norm="backward" convention (the
forward transforms are unscaled, the inverses divide by the number of points).

- ``fft[axes]``, ``ifft[axes]``: complex -> complex, same shape.
- ``rfft[axes]``: real -> complex; the last of ``axes`` shrinks to ``n // 2 + 1``.
- ``irfft[axes, n]``: complex -> real; the last of ``axes`` becomes ``n`` points, and the
  input must hold ``n // 2 + 1`` of them.

The primitives never pad or crop: the front end (``sciml.fft``) does that with ``pad`` and
``slice`` and converts real input of ``fft`` to complex, so linearity (JVP = the transform
itself) and the transpose rules stay one-liners. Dtypes: float32/float16/bfloat16 pair with
complex64, float64 with complex128 (half-precision input computes and returns single precision,
as numpy does).
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..ir import AbstractValue
from ..primitives import def_primitive


def _axes(name, axes, ndim):
    if isinstance(axes, (int, np.integer)) or not axes:
        raise ShapeError(f"{name}: axes must be a non-empty tuple of ints, got {axes!r}")
    out = tuple(int(a) for a in axes)
    if any(not 0 <= a < ndim for a in out) or len(set(out)) != len(out):
        raise ShapeError(f"{name}: axes {out} are not distinct axes of an array of rank {ndim}")
    return out


def _complex_rule(name):
    def rule(x, *, axes):
        _axes(name, axes, x.ndim)
        if not dtypes.is_complex(x.dtype):
            raise DTypeError(f"{name}: the primitive needs a complex operand, got {x} (the "
                             "sciml.fft functions convert real input)")
        return x.strong()

    return rule


def _rfft_rule(x, *, axes):
    axes = _axes("rfft", axes, x.ndim)
    if not dtypes.is_float(x.dtype):
        raise DTypeError(f"rfft: needs a real floating operand, got {x}")
    shape = list(x.shape)
    shape[axes[-1]] = shape[axes[-1]] // 2 + 1
    return AbstractValue(tuple(shape), dtypes.complex_dtype(x.dtype))


def _irfft_rule(x, *, axes, n):
    axes = _axes("irfft", axes, x.ndim)
    if not dtypes.is_complex(x.dtype):
        raise DTypeError(f"irfft: needs a complex operand, got {x}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ShapeError(f"irfft: output length n must be a positive int, got {n!r}")
    last = axes[-1]
    if x.shape[last] != n // 2 + 1:
        raise ShapeError(f"irfft: axis {last} of {x} has {x.shape[last]} points; an output of "
                         f"n={n} points needs n // 2 + 1 = {n // 2 + 1}")
    shape = list(x.shape)
    shape[last] = int(n)
    return AbstractValue(tuple(shape), dtypes.real_dtype(x.dtype))


def _empty(x, axes):
    return any(x.shape[a] == 0 for a in axes)


def _fft_impl(fn):
    def impl(x, *, axes):
        if _empty(x, axes):
            return np.zeros(x.shape, x.dtype)
        return fn(x, axes=axes).astype(x.dtype, copy=False)

    return impl


def _rfft_impl(x, *, axes):
    out_dtype = dtypes.complex_dtype(x.dtype)
    if x.dtype in (np.dtype("float16"), dtypes.bfloat16):
        x = x.astype(np.float32)
    if _empty(x, axes):
        return np.zeros(_rfft_rule(AbstractValue(x.shape, x.dtype), axes=axes).shape, out_dtype)
    return np.fft.rfftn(x, axes=axes).astype(out_dtype, copy=False)


def _irfft_impl(x, *, axes, n):
    s = [x.shape[a] for a in axes[:-1]] + [int(n)]
    if any(v == 0 for v in s):
        shape = list(x.shape)
        shape[axes[-1]] = int(n)
        return np.zeros(shape, dtypes.real_dtype(x.dtype))
    return np.fft.irfftn(x, s=s, axes=axes).astype(dtypes.real_dtype(x.dtype), copy=False)


def_primitive("fft", _complex_rule("fft"), _fft_impl(np.fft.fftn), family="fft",
              tags={"library", "linear"})
def_primitive("ifft", _complex_rule("ifft"), _fft_impl(np.fft.ifftn), family="fft",
              tags={"library", "linear"})
def_primitive("rfft", _rfft_rule, _rfft_impl, family="fft", tags={"library", "linear"})
def_primitive("irfft", _irfft_rule, _irfft_impl, family="fft", tags={"library", "linear"})
