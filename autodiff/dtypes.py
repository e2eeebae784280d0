"""Dtypes of the IR and numpy's promotion rules, with Python scalars kept weak (NEP 50).

The supported dtypes are bool, int32, int64, float16, bfloat16, float32, float64, complex64 and
complex128. ``bfloat16`` comes from ml_dtypes; numpy does not know how to promote it, so the
promotion lattice is written out here rather than delegated to ``np.result_type``.

A *weak* type is the type of a Python scalar (``2.0``, ``3``, ``True``): it takes part in
promotion only by its kind, so ``float32_array * 2.0`` stays float32, while ``int32_array * 2.0``
becomes float64 as in numpy.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

bfloat16 = np.dtype(ml_dtypes.bfloat16)

SUPPORTED = tuple(
    np.dtype(d)
    for d in (
        "bool", "int32", "int64", "float16", bfloat16, "float32", "float64",
        "complex64", "complex128",
    )
)
FLOATS = tuple(d for d in SUPPORTED if d.kind == "f" or d == bfloat16)
COMPLEX = tuple(d for d in SUPPORTED if d.kind == "c")
INTS = tuple(d for d in SUPPORTED if d.kind in "iu")

# Kind rank: bool < int < float < complex.
_BOOL, _INT, _FLOAT, _COMPLEX = range(4)

# The default dtype a weak scalar of each kind takes when nothing strong is present.
_WEAK_DEFAULT = {
    _BOOL: np.dtype("bool"),
    _INT: np.dtype("int64"),
    _FLOAT: np.dtype("float64"),
    _COMPLEX: np.dtype("complex128"),
}


def dtype(d) -> np.dtype:
    """Normalise anything numpy accepts as a dtype (plus "bfloat16") to an ``np.dtype``."""
    if isinstance(d, str) and d == "bfloat16":
        return bfloat16
    return np.dtype(d)


def kind_rank(d) -> int:
    d = dtype(d)
    if d == np.bool_:
        return _BOOL
    if d.kind in "iu":
        return _INT
    if d.kind == "f" or d == bfloat16:
        return _FLOAT
    if d.kind == "c":
        return _COMPLEX
    raise TypeError(f"unsupported dtype {d}")


def is_float(d) -> bool:
    return kind_rank(d) == _FLOAT


def is_inexact(d) -> bool:
    return kind_rank(d) >= _FLOAT


def is_integer(d) -> bool:
    return kind_rank(d) == _INT


def is_complex(d) -> bool:
    return kind_rank(d) == _COMPLEX


def check_supported(d, what: str = "value") -> np.dtype:
    """Return ``d`` as a dtype, or raise a TypeError naming it and the supported list."""
    d = dtype(d)
    if d.kind == "u" and d.itemsize <= 4:
        # Unsigned types are not in the table; widen them to a signed type that holds them.
        return np.dtype("int64")
    if d not in SUPPORTED:
        names = ", ".join(str(x) for x in SUPPORTED)
        raise TypeError(f"{what} has dtype {d}, which sciml does not support (supported: {names})")
    return d


def _strong_pair(a: np.dtype, b: np.dtype) -> np.dtype:
    if a == b:
        return a
    if bfloat16 in (a, b):
        other = b if a == bfloat16 else a
        r = kind_rank(other)
        if r <= _INT:
            return bfloat16
        if other == np.float16:
            return np.dtype("float32")  # neither half type holds the other
        return other  # float32, float64 and complex hold bfloat16 exactly
    return np.result_type(a, b)


def result_type(*args: tuple[np.dtype, bool]) -> tuple[np.dtype, bool]:
    """Promote ``(dtype, weak)`` pairs; returns ``(dtype, weak)`` of the result."""
    strong = [dtype(d) for d, w in args if not w]
    weak = [dtype(d) for d, w in args if w]
    if not strong:
        top = max(kind_rank(d) for d in weak)
        return _WEAK_DEFAULT[top], True
    out = strong[0]
    for d in strong[1:]:
        out = _strong_pair(out, d)
    if weak:
        top = max(kind_rank(d) for d in weak)
        if top > kind_rank(out):
            out = _lift_kind(out, top)
    return out, False


def _lift_kind(d: np.dtype, rank: int) -> np.dtype:
    """The dtype numpy gives ``array(dtype=d) op python_scalar_of_kind(rank)``."""
    if rank == _FLOAT:
        return np.dtype("float64")
    if rank == _COMPLEX:
        if d in (np.dtype("float16"), bfloat16, np.dtype("float32")):
            return np.dtype("complex64")
        return np.dtype("complex128")
    return _WEAK_DEFAULT[rank]


def real_dtype(d) -> np.dtype:
    """float32 for complex64, float64 for complex128, the dtype itself otherwise."""
    d = dtype(d)
    if d == np.complex64:
        return np.dtype("float32")
    if d == np.complex128:
        return np.dtype("float64")
    return d


def complex_dtype(d) -> np.dtype:
    d = dtype(d)
    if d in (np.dtype("float64"), np.dtype("complex128")):
        return np.dtype("complex128")
    return np.dtype("complex64")


def float_dtype(d) -> np.dtype:
    """The inexact dtype an operation like ``sin`` returns for input dtype ``d``."""
    d = dtype(d)
    return d if is_inexact(d) else np.dtype("float64")


def eps(d) -> float:
    return float(ml_dtypes.finfo(dtype(d)).eps)
