"""``sciml.random``: random numbers from explicit keys (JAX-style, no hidden state).

A key is an int64 array of shape (2,). The same key gives the same numbers, eagerly or traced,
on every platform; use ``split`` to derive independent keys rather than reusing one. The bits
come from the counter-based Philox4x32-10 primitive ``random_bits``; uniform, normal and the
others are ordinary primitives on top of it, so they trace, fuse and serialise like any code.

>>> from sciml import random
>>> k = random.key(0)
>>> k1, k2 = random.split(k)
>>> u = random.uniform(k1, (3,))
>>> bool(((0 <= u) & (u < 1)).all())
True
>>> bool((random.uniform(k1, (3,)) == u).all())
True
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from autodiff import dtypes as _dt
from autodiff import lax
from autodiff.errors import DTypeError, ShapeError
from autodiff.primitives import PRIMITIVES as _P
from autodiff.trace import Tracer, abstractify

__all__ = [
    "bernoulli", "bits", "exponential", "key", "normal", "permutation", "randint", "split",
    "uniform",
]

_U64 = (1 << 64) - 1


def key(seed):
    """A key from an integer seed (any Python int; a traced integer scalar is allowed).

    Seeds that differ modulo 2**128 give different keys."""
    if isinstance(seed, Tracer):
        a = abstractify(seed)
        if a.shape != () or not _dt.is_integer(a.dtype):
            raise DTypeError(f"random.key: a traced seed must be an integer scalar, got {a}")
        s = lax.convert_element_type(seed, np.int64)
        return lax.stack([s, lax.mul(s, 0)])
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise DTypeError(f"random.key: seed must be an integer, got {seed!r}")
    seed = int(seed)
    words = np.array([seed & _U64, (seed >> 64) & _U64], dtype=np.uint64)
    return words.view(np.int64)


def _check_key(k, name):
    k = k if isinstance(k, Tracer) else lax.asarray(k)
    a = abstractify(k)
    if a.shape != (2,) or a.dtype != np.int64:
        raise DTypeError(f"random.{name}: key must be an int64 array of shape (2,) from "
                         f"random.key(seed), got {a}")
    return k


def _shape(shape, name):
    if shape is None:
        return ()
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape):
        raise ShapeError(f"random.{name}: shape must be non-negative ints, got {shape!r}")
    return tuple(int(s) for s in shape)


def _float_dtype(dtype, name):
    d = _dt.dtype(dtype)
    if not _dt.is_float(d):
        raise DTypeError(f"random.{name}: dtype must be a float dtype, got {d}")
    return d


def split(k, num=2):
    """``num`` new keys, shape (num, 2) (unpack them: ``k1, k2 = split(k)``)."""
    return _P["random_split"].bind(_check_key(k, "split"), num=int(num))


def bits(k, shape=()):
    """int64 array whose 64 bits are uniformly random."""
    return _P["random_bits"].bind(_check_key(k, "bits"), shape=_shape(shape, "bits"))


def _unit(k, shape, d, open_low=False):
    """Uniform numbers in [0, 1) (or (0, 1]) exactly representable in ``d``: the low
    ``nmant + 1`` random bits scaled by 2**-(nmant + 1)."""
    p = int(ml_dtypes.finfo(d).nmant) + 1
    raw = bits(k, shape)
    m = lax.logical("and", raw, np.int64((1 << p) - 1))
    if open_low:
        m = lax.add(m, np.int64(1))
    return lax.mul(lax.convert_element_type(m, d), np.asarray(2.0 ** -p, d))


def uniform(k, shape=(), dtype=np.float64, minval=0.0, maxval=1.0):
    """Uniform numbers in [minval, maxval)."""
    d = _float_dtype(dtype, "uniform")
    shape = _shape(shape, "uniform")
    u = _unit(_check_key(k, "uniform"), shape, d)
    lo = lax.convert_element_type(minval, d)
    hi = lax.convert_element_type(maxval, d)
    out = lax.add(lax.mul(u, lax.sub(hi, lo)), lo)
    static = not isinstance(minval, Tracer) and not isinstance(maxval, Tracer)
    if static and (minval, maxval) != (0.0, 1.0):
        # Rounding of lo + u * (hi - lo) may reach hi; keep the interval half-open.
        top = np.nextafter(np.asarray(maxval, d), np.asarray(minval, d))
        out = lax.binary("minimum", out, np.asarray(top, d))
    return out


def normal(k, shape=(), dtype=np.float64):
    """Standard normal numbers (Box-Muller; half types computed in float32)."""
    d = _float_dtype(dtype, "normal")
    shape = _shape(shape, "normal")
    c = d if d.itemsize >= 4 else np.dtype(np.float32)
    k1, k2 = _split2(_check_key(k, "normal"))
    u1 = _unit(k1, shape, c, open_low=True)  # in (0, 1]: log(u1) is finite
    u2 = _unit(k2, shape, c)
    r = lax.unary("sqrt", lax.mul(lax.unary("log", u1), -2.0))
    z = lax.mul(r, lax.unary("cos", lax.mul(u2, 2 * np.pi)))
    return lax.convert_element_type(z, d)


def _split2(k):
    ks = split(k, 2)
    return lax.getitem(ks, 0), lax.getitem(ks, 1)


def exponential(k, shape=(), dtype=np.float64):
    """Exponential numbers with rate 1: -log(u), u in (0, 1]."""
    d = _float_dtype(dtype, "exponential")
    u = _unit(_check_key(k, "exponential"), _shape(shape, "exponential"), d, open_low=True)
    return lax.neg(lax.unary("log", u))


def bernoulli(k, p=0.5, shape=None):
    """Booleans that are True with probability ``p`` (shape defaults to p's shape)."""
    pa = abstractify(p)
    shape = pa.shape if shape is None else _shape(shape, "bernoulli")
    d = pa.dtype if _dt.is_float(pa.dtype) and not pa.weak else np.dtype(np.float64)
    return lax.compare("lt", uniform(k, shape, d), p)


def randint(k, shape, minval, maxval, dtype=np.int64):
    """Integers in [minval, maxval) (modulo reduction of 62 random bits: the bias is below
    (maxval - minval) / 2**62)."""
    d = _dt.dtype(dtype)
    if not _dt.is_integer(d):
        raise DTypeError(f"random.randint: dtype must be an integer dtype, got {d}")
    raw = lax.logical("and", bits(k, _shape(shape, "randint")), np.int64((1 << 62) - 1))
    lo = lax.convert_element_type(minval, np.int64)
    span = lax.binary("maximum", lax.sub(lax.convert_element_type(maxval, np.int64), lo), 1)
    return lax.convert_element_type(lax.add(lax.binary("mod", raw, span), lo), d)


def permutation(k, n):
    """A random permutation of ``range(n)`` (``n`` static): the argsort of random bits."""
    return _P["argsort"].bind(bits(k, (int(n),)), axis=0)
