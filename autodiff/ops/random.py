"""Counter-based random numbers from explicit keys (no hidden state).

A key is an int64 array of shape (2,) (128 bits; the table has no unsigned types). Two
primitives, both deterministic, platform independent and not differentiable:

- ``random_bits[shape]``: key -> int64 array of ``shape`` whose 64 bits are uniformly random.
- ``random_split[num]``: key -> ``num`` new keys, shape (num, 2).

Both are Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11),
written with numpy integer operations: element ``i`` is a pure function of (key, i), so a
kernel can compute every element independently. The Philox key is the first key word; the
second key word and the element counter form the 128-bit Philox counter, and a domain tag in the
counter's top bits keeps the streams of ``random_bits`` and ``random_split`` apart. Uniform and
normal variates are built from the bits by ``sciml.random`` with ordinary primitives.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from ..ir import AbstractValue
from ..primitives import def_primitive

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
ROUNDS = 10

# Top two bits of the 64-bit element counter: which stream the numbers belong to.
_DOMAIN_BITS, _DOMAIN_SPLIT = 0, 1


def philox4x32(counter, key, rounds: int = ROUNDS):
    """Philox4x32 on uint32 words held in uint64 arrays: ``counter`` is 4 arrays, ``key`` 2.

    Returns the 4 output words. Checked against the Random123 known-answer vectors.
    """
    words = [np.asarray(c, np.uint64) & _MASK32 for c in counter]
    shape = np.broadcast_shapes(*(w.shape for w in words))
    c0, c1, c2, c3 = (np.broadcast_to(w, shape).copy() for w in words)
    k0, k1 = (int(k) & 0xFFFFFFFF for k in key)
    p0, p1 = np.empty(shape, np.uint64), np.empty(shape, np.uint64)
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + int(_W0)) & 0xFFFFFFFF, (k1 + int(_W1)) & 0xFFFFFFFF
        # 32 x 32 -> 64-bit products are exact in uint64; hi = p >> 32, lo = p & mask.
        np.multiply(c0, _M0, out=p0)
        np.multiply(c2, _M1, out=p1)
        # (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0), in place: each word is
        # read before it is overwritten.
        np.right_shift(p1, _SHIFT32, out=c0)
        c0 ^= c1
        c0 ^= np.uint64(k0)
        np.right_shift(p0, _SHIFT32, out=c2)
        c2 ^= c3
        c2 ^= np.uint64(k1)
        np.bitwise_and(p1, _MASK32, out=c1)
        np.bitwise_and(p0, _MASK32, out=c3)
    return c0, c1, c2, c3


def _words(key):
    """The key as two uint64 words."""
    return np.asarray(key, np.int64).view(np.uint64)


def _blocks(key, count: int, domain: int):
    """``count`` Philox blocks of (key, counter i, domain) as two uint64 arrays each."""
    k = _words(key)
    i = np.arange(count, dtype=np.uint64)
    hi = (i >> _SHIFT32) | (np.uint64(domain) << np.uint64(30))
    ctr = (i & _MASK32, hi, k[1] & _MASK32, k[1] >> _SHIFT32)
    w0, w1, w2, w3 = philox4x32(ctr, (int(k[0] & _MASK32), int(k[0] >> _SHIFT32)))
    return (w0 << _SHIFT32) | w1, (w2 << _SHIFT32) | w3


def _check_key(name, key):
    if key.shape != (2,) or key.dtype != np.int64:
        raise DTypeError(f"{name}: a key is an int64 array of shape (2,), got {key} (make one "
                         "with sciml.random.key(seed))")


def _bits_rule(key, *, shape):
    _check_key("random_bits", key)
    if not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape):
        raise ShapeError(f"random_bits: shape must be non-negative ints, got {shape!r}")
    return AbstractValue(tuple(shape), np.dtype("int64"))


def _bits_impl(key, *, shape):
    n = int(np.prod(shape, dtype=np.int64))
    a, b = _blocks(key, (n + 1) // 2, _DOMAIN_BITS)
    out = np.empty(2 * a.size, np.uint64)
    out[0::2], out[1::2] = a, b
    return out[:n].view(np.int64).reshape(shape)


def _split_rule(key, *, num):
    _check_key("random_split", key)
    if not isinstance(num, (int, np.integer)) or num < 0:
        raise ShapeError(f"random_split: num must be a non-negative int, got {num!r}")
    return AbstractValue((int(num), 2), np.dtype("int64"))


def _split_impl(key, *, num):
    a, b = _blocks(key, int(num), _DOMAIN_SPLIT)
    return np.stack([a, b], axis=-1).view(np.int64).reshape(int(num), 2)


def_primitive("random_bits", _bits_rule, _bits_impl, differentiable=False, family="random",
              tags={"random"})
def_primitive("random_split", _split_rule, _split_impl, differentiable=False, family="random",
              tags={"random"})
