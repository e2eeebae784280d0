"""Linear algebra: dot_general (matmul, tensordot, batched products) and dense library
primitives (solve, cholesky, triangular_solve, qr, eigh)."""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..ir import AbstractValue
from ..primitives import def_primitive


# dot_general[dimension_numbers=((lhs_contract, rhs_contract), (lhs_batch, rhs_batch))]
# Output dimensions: batch dims, then lhs free dims, then rhs free dims (XLA's order).
def _dot_dims(lhs, rhs, dimension_numbers):
    (lc, rc), (lb, rb) = dimension_numbers
    lc, rc, lb, rb = map(tuple, (lc, rc, lb, rb))
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ShapeError(f"dot_general: contracting {lc}/{rc} or batch {lb}/{rb} lengths differ")
    for a, b, kind in [(lc, rc, "contracting"), (lb, rb, "batch")]:
        for i, j in zip(a, b):
            if not (0 <= i < lhs.ndim and 0 <= j < rhs.ndim):
                raise ShapeError(f"dot_general: {kind} dims {a}/{b} out of range for "
                                 f"{lhs.shape} and {rhs.shape}")
            if lhs.shape[i] != rhs.shape[j]:
                raise ShapeError(
                    f"dot_general: {kind} dimension {i} of lhs {lhs.shape} (size {lhs.shape[i]})"
                    f" does not match dimension {j} of rhs {rhs.shape} (size {rhs.shape[j]})"
                )
    lf = [i for i in range(lhs.ndim) if i not in lc and i not in lb]
    rf = [i for i in range(rhs.ndim) if i not in rc and i not in rb]
    return lc, rc, lb, rb, lf, rf


def _dot_rule(lhs, rhs, *, dimension_numbers, preferred_dtype=None):
    if lhs.dtype != rhs.dtype:
        raise DTypeError(f"dot_general: operand dtypes differ: {lhs.dtype} and {rhs.dtype}")
    if lhs.dtype == np.bool_:
        raise DTypeError("dot_general: boolean operands are not supported")
    lc, rc, lb, rb, lf, rf = _dot_dims(lhs, rhs, dimension_numbers)
    shape = (
        tuple(lhs.shape[i] for i in lb)
        + tuple(lhs.shape[i] for i in lf)
        + tuple(rhs.shape[i] for i in rf)
    )
    out = dtypes.check_supported(preferred_dtype, "preferred_dtype") if preferred_dtype else (
        lhs.dtype)
    return AbstractValue(shape, out, lhs.weak and rhs.weak)


def _dot_impl(lhs, rhs, *, dimension_numbers, preferred_dtype=None):
    lc, rc, lb, rb, lf, rf = _dot_dims(
        AbstractValue(lhs.shape, lhs.dtype), AbstractValue(rhs.shape, rhs.dtype),
        dimension_numbers)
    out_dtype = preferred_dtype or lhs.dtype
    compute = lhs.dtype
    if compute in (np.dtype("float16"), dtypes.bfloat16):
        compute = np.dtype("float32")  # accumulate half types in float32
    # Move to (batch, free, contract) / (batch, contract, free) and use matmul (BLAS).
    lt = np.transpose(lhs, lb + tuple(lf) + lc).astype(compute, copy=False)
    rt = np.transpose(rhs, rb + rc + tuple(rf)).astype(compute, copy=False)
    nb = int(np.prod([lhs.shape[i] for i in lb], dtype=np.int64))
    nc = int(np.prod([lhs.shape[i] for i in lc], dtype=np.int64))
    nl = int(np.prod([lhs.shape[i] for i in lf], dtype=np.int64))
    nr = int(np.prod([rhs.shape[i] for i in rf], dtype=np.int64))
    out = np.matmul(lt.reshape(nb, nl, nc), rt.reshape(nb, nc, nr))
    shape = (
        tuple(lhs.shape[i] for i in lb)
        + tuple(lhs.shape[i] for i in lf)
        + tuple(rhs.shape[i] for i in rf)
    )
    return out.reshape(shape).astype(out_dtype, copy=False)


def_primitive("dot_general", _dot_rule, _dot_impl, family="linalg", tags={"library"})
