"""bfloat16 storage in numba kernels: arrays travel as their uint16 bits, arithmetic is float32.

numba has no bfloat16 type. A bfloat16 array is passed to a kernel as a ``uint16`` view (no
copy); ``bf16_load`` widens the bits to float32 exactly and ``bf16_store`` rounds a float32 to
the nearest bfloat16, ties to even, NaN kept quiet — the rounding ml_dtypes and numpy use.
The functions are ``inline="always"`` so loads and stores vectorise with the loop around them.

>>> import numpy as np, ml_dtypes
>>> x = np.array([1.0, -2.5, 3.14159, 1e-40], np.float32)
>>> bits = np.array([bf16_store(v) for v in x], np.uint16)
>>> bool(np.all(bits.view(ml_dtypes.bfloat16) == x.astype(ml_dtypes.bfloat16)))
True
>>> float(bf16_load(bits[2]))
3.140625
"""

from __future__ import annotations

import numba
import numpy as np

from .vmath import bits, f32_from_bits, sel

_JIT = dict(inline="always", nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def bf16_load(h):
    """The float32 value of bfloat16 bits ``h`` (exact)."""
    return f32_from_bits(np.int32(h) << 16)


@numba.njit(**_JIT)
def bf16_store(x):
    """The bfloat16 bits nearest to float32 ``x`` (round to nearest, ties to even)."""
    b = np.int64(bits(np.float32(x))) & 0xFFFFFFFF
    rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    quiet = (b >> 16) | 0x40  # NaN: keep the sign and payload top, force the quiet bit
    return np.uint16(sel(x != x, quiet, rounded) & 0xFFFF)


@numba.njit(**_JIT)
def bf16_round(x):
    """``x`` rounded to bfloat16 and widened back (what ``convert`` to bfloat16 computes)."""
    return bf16_load(bf16_store(x))
