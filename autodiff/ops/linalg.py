"""Linear algebra: dot_general (matmul, tensordot, batched products) and dense library
primitives (solve, cholesky, triangular_solve, qr, eigh)."""

from __future__ import annotations

import warnings

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
    fast = _dot_fast(lhs, rhs, dimension_numbers, preferred_dtype)
    if fast is not None:
        return fast
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


def _dot_fast(lhs, rhs, dimension_numbers, preferred_dtype):
    """Products with a BLAS form that needs no copy, by np.dot/np.matmul (the general path's
    transposes and reshapes cost more than a 1000×1000 matrix-vector product):

    - plain matrix products (no batch dims, one contraction, matrices or vectors);
    - a stack of rows times a matrix (x (..., k) against a (k, n) or (n, k) matrix): one small
      GEMM per leading index (np.matmul), faster than one tall GEMM for the patches of a
      convolution (OpenBLAS keeps the small blocks in cache);
    - a contraction over the same leading axes of two C-contiguous arrays (a weight gradient):
      both flatten to matrices, one GEMM with a transposed operand.
    """
    (lc, rc), (lb, rb) = dimension_numbers
    if lb or rb or lhs.dtype != rhs.dtype or lhs.dtype == np.bool_:
        return None
    if lhs.dtype in (np.dtype("float16"), dtypes.bfloat16):
        return None
    a, b, op = dot_operands(lhs, rhs, tuple(lc), tuple(rc))
    if op is None:
        return None
    shape = tuple(n for i, n in enumerate(lhs.shape) if i not in lc) + tuple(
        n for i, n in enumerate(rhs.shape) if i not in rc)
    return op(a, b).reshape(shape).astype(preferred_dtype or lhs.dtype, copy=False)


def dot_operands(lhs, rhs, lc, rc):
    """(a, b, op) with ``op(a, b, out=None)`` computing the product without copying an
    operand, or (.., .., None). ``out`` has the product's shape."""
    if len(lc) == 1 and lhs.ndim <= 2 and rhs.ndim <= 2:
        a = lhs if lc == (lhs.ndim - 1,) else (lhs.T if lhs.ndim == 2 else None)
        b = rhs if rc == (0,) else (rhs.T if rhs.ndim == 2 else None)
        return a, b, (None if a is None or b is None else _dot2)
    if len(lc) == 1 and lhs.ndim > 2 and rhs.ndim == 2 and lc == (lhs.ndim - 1,):
        if lhs.shape[-2] < _STACK_ROWS and lhs.flags.c_contiguous:
            return lhs.reshape(-1, lhs.shape[-1]), (rhs if rc == (0,) else rhs.T), _dot2
        # A transposed (Fortran-order) matrix makes each small GEMM slower than copying it.
        return lhs, (rhs if rc == (0,) else np.ascontiguousarray(rhs.T)), np.matmul
    k = len(lc)
    if (lc == rc == tuple(range(k)) and 0 < k < min(lhs.ndim, rhs.ndim)
            and lhs.flags.c_contiguous and rhs.flags.c_contiguous):
        rows = int(np.prod(lhs.shape[1:k], dtype=np.int64))
        if rows < _STACK_ROWS:  # tiny per-index products: one GEMM over all rows
            rows = int(np.prod(lhs.shape[:k], dtype=np.int64))
            return lhs.reshape(rows, -1).T, rhs.reshape(rows, -1), _dot2
        a, b = lhs.reshape(lhs.shape[0], rows, -1), rhs.reshape(rhs.shape[0], rows, -1)
        return a, b, _dot_stacked
    return lhs, rhs, None


_STACK_ROWS = 32  # below this many rows per leading index, one GEMM per index costs more


def _dot2(a, b, out=None):
    return np.dot(a, b, out=None if out is None else out.reshape(a.shape[:-1] + b.shape[1:]))


def _dot_stacked(a, b, out=None):
    # sum_n a[n]^T b[n]: one small GEMM per leading index, then a sum over it (faster than
    # one GEMM over all rows at once for a convolution's weight gradient).
    per = np.matmul(a.transpose(0, 2, 1), b)
    return np.add.reduce(per, axis=0, out=None if out is None else out.reshape(per.shape[1:]))


dot_general = def_primitive("dot_general", _dot_rule, _dot_impl, family="linalg",
                            tags={"library"})


# ---------------------------------------------------------------------------------------------
# Dense library primitives. Each works on stacks of matrices: leading dimensions are batch
# dimensions, and every operand of one node has the same batch shape (the front end,
# sciml.linalg, broadcasts and handles vector right-hand sides), so JVP, transpose and batching
# rules stay simple. Inputs are float or complex; float16/bfloat16 compute in float32 and round
# once at the end, because LAPACK has no half-precision routines.

_HALF = (np.dtype("float16"), dtypes.bfloat16)


def _inexact(name: str, *avals):
    ds = {a.dtype for a in avals}
    if len(ds) != 1:
        raise DTypeError(f"{name}: operand dtypes differ: "
                         f"{', '.join(str(a) for a in avals)}; convert them first")
    d = avals[0].dtype
    if not dtypes.is_inexact(d):
        raise DTypeError(f"{name}: needs a float or complex operand, got {avals[0]} (convert "
                         "integer or boolean arrays to a float dtype first)")
    return d


def _square(name: str, a, what: str = "operand"):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{name}: {what} must be a (stack of) square matrices (..., n, n), got "
                         f"shape {a.shape}")
    return a.shape[-1]


def _compute(x):
    """The array LAPACK sees: half types widened to float32."""
    return x.astype(np.float32) if x.dtype in _HALF else x


def _batched(fn, *xs, core_ndims):
    """Apply a 2-D-only routine ``fn`` to each matrix of a stack (batch dims lead)."""
    batch = xs[0].shape[:xs[0].ndim - core_ndims[0]]
    flat = [x.reshape((-1,) + x.shape[x.ndim - k:]) for x, k in zip(xs, core_ndims)]
    n = int(np.prod(batch, dtype=np.int64))
    results = [fn(*(f[i] for f in flat)) for i in range(n)]
    return results, batch


# solve(a, b): x with a @ x = b for a (..., n, n), b (..., n, k) (same batch shape). A singular
# matrix gives NaNs in its solution (as cholesky does) rather than an exception.
def _solve_rule(a, b):
    d = _inexact("solve", a, b)
    n = _square("solve", a, "coefficient matrix a")
    if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2] or b.shape[-2] != n:
        raise ShapeError(
            f"solve: right-hand side b of shape {b.shape} does not fit a of shape {a.shape} "
            f"(expected (..., {n}, k) with the batch shape {a.shape[:-2]}; sciml.linalg.solve "
            "broadcasts and accepts vectors)")
    return AbstractValue(b.shape, d)


def _solve_impl(a, b):
    if a.shape[-1] == 0 or b.size == 0:
        return np.zeros(b.shape, a.dtype)
    ac, bc = _compute(a), _compute(b)
    try:
        out = np.linalg.solve(ac, bc)
    except np.linalg.LinAlgError:
        out = _solve_each(ac, bc)
    return out.astype(a.dtype, copy=False)


def _solve_each(a, b):
    def one(m, rhs):
        try:
            return np.linalg.solve(m, rhs)
        except np.linalg.LinAlgError:
            return np.full(rhs.shape, np.nan, np.result_type(m, rhs))

    results, _ = _batched(one, a, b, core_ndims=(2, 2))
    return np.asarray(results).reshape(b.shape)


def_primitive("solve", _solve_rule, _solve_impl, family="linalg", tags={"library"})


# cholesky(a): lower-triangular l with a = l @ l^H, reading only the lower triangle of a.
# A matrix that is not positive definite gives NaNs (kernels cannot raise mid-computation).
def _cholesky_rule(a):
    _inexact("cholesky", a)
    _square("cholesky", a)
    return a.strong()


def _cholesky_impl(a):
    c = _compute(a)
    try:
        out = np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        out = _cholesky_each(c)
    return out.astype(a.dtype, copy=False)


def _cholesky_each(c):
    def one(m):
        try:
            return np.linalg.cholesky(m)
        except np.linalg.LinAlgError:
            return np.full(m.shape, np.nan, m.dtype)

    results, batch = _batched(one, c, core_ndims=(2,))
    return np.asarray(results, c.dtype).reshape(c.shape)


def_primitive("cholesky", _cholesky_rule, _cholesky_impl, family="linalg", tags={"library"})


# triangular_solve(a, b): x with op(a) @ x = b (left_side) or x @ op(a) = b (right side), where
# op(a) is a, a^T (transpose_a) or a^H (transpose_a and conjugate_a); only the lower (or upper)
# triangle of a is read; unit_diagonal assumes ones on the diagonal.
def _trsolve_rule(a, b, *, lower=True, transpose_a=False, conjugate_a=False, left_side=True,
                  unit_diagonal=False):
    d = _inexact("triangular_solve", a, b)
    n = _square("triangular_solve", a, "triangular matrix a")
    dim = -2 if left_side else -1
    if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2] or b.shape[dim] != n:
        want = f"(..., {n}, k)" if left_side else f"(..., k, {n})"
        raise ShapeError(
            f"triangular_solve: b of shape {b.shape} does not fit a of shape {a.shape} "
            f"(expected {want} with the batch shape {a.shape[:-2]}, left_side={left_side})")
    return AbstractValue(b.shape, d)


def _trsolve_impl(a, b, *, lower=True, transpose_a=False, conjugate_a=False, left_side=True,
                  unit_diagonal=False):
    import scipy.linalg

    ac, bc = _compute(a), _compute(b)
    if not left_side:
        # x @ op(a) = b  <=>  op(a)^T @ x^T = b^T: flip the transpose flag, keep the conjugation.
        bc, transpose_a = np.swapaxes(bc, -1, -2), not transpose_a
    trans = (2 if conjugate_a else 1) if transpose_a else 0
    conj_only = conjugate_a and not transpose_a

    def one(m, rhs):
        m = np.conj(m) if conj_only else m
        return scipy.linalg.solve_triangular(m, rhs, trans=trans, lower=lower,
                                             unit_diagonal=unit_diagonal, check_finite=False)

    if bc.size == 0:
        out = np.zeros(bc.shape, ac.dtype)
    else:
        results, batch = _batched(one, ac, bc, core_ndims=(2, 2))
        out = np.asarray(results, ac.dtype).reshape(bc.shape)
    if not left_side:
        out = np.swapaxes(out, -1, -2)
    return np.ascontiguousarray(out).astype(a.dtype, copy=False)


def_primitive("triangular_solve", _trsolve_rule, _trsolve_impl, family="linalg",
              tags={"library"})


# qr(a) -> (q, r): a = q @ r for a (..., m, n); reduced (q (..., m, k), r (..., k, n),
# k = min(m, n)) unless full_matrices (q (..., m, m), r (..., m, n)).
def _qr_rule(a, *, full_matrices=False):
    d = _inexact("qr", a)
    if a.ndim < 2:
        raise ShapeError(f"qr: operand must be a (stack of) matrices (..., m, n), got {a.shape}")
    m, n = a.shape[-2:]
    k = m if full_matrices else min(m, n)
    batch = a.shape[:-2]
    return AbstractValue(batch + (m, k), d), AbstractValue(batch + (k, n), d)


def _qr_impl(a, *, full_matrices=False):
    q, r = np.linalg.qr(_compute(a), mode="complete" if full_matrices else "reduced")
    return q.astype(a.dtype, copy=False), r.astype(a.dtype, copy=False)


def_primitive("qr", _qr_rule, _qr_impl, multiple_results=True, family="linalg",
              tags={"library"})


# eigh(a) -> (w, v): eigenvalues ascending (real dtype) and orthonormal eigenvectors (columns)
# of the Hermitian matrix whose lower (or upper) triangle is given.
def _eigh_rule(a, *, lower=True):
    d = _inexact("eigh", a)
    _square("eigh", a)
    return AbstractValue(a.shape[:-1], dtypes.real_dtype(d)), AbstractValue(a.shape, d)


def _eigh_impl(a, *, lower=True):
    w, v = np.linalg.eigh(_compute(a), UPLO="L" if lower else "U")
    return w.astype(dtypes.real_dtype(a.dtype), copy=False), v.astype(a.dtype, copy=False)


def_primitive("eigh", _eigh_rule, _eigh_impl, multiple_results=True, family="linalg",
              tags={"library"})


# lu(a) -> (lu, pivots, permutation): LAPACK getrf with partial pivoting on square matrices.
# lu holds l (unit lower, below the diagonal) and u; rows were swapped i <-> pivots[i] in order;
# a[..., permutation, :] == l @ u. Pivots and permutation are integers (not differentiable).
def _lu_rule(a):
    d = _inexact("lu", a)
    n = _square("lu", a)
    batch = a.shape[:-2]
    idx = AbstractValue(batch + (n,), np.dtype("int64"))
    return AbstractValue(a.shape, d), idx, idx


def _lu_impl(a):
    import scipy.linalg

    c = _compute(a)
    n = a.shape[-1]
    if a.size == 0:
        idx = np.zeros(a.shape[:-1], np.int64)
        return np.zeros(a.shape, a.dtype), idx, idx
    with warnings.catch_warnings():
        # A singular matrix is a valid input (det = 0); scipy warns about its zero pivot.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        results, batch = _batched(lambda m: scipy.linalg.lu_factor(m, check_finite=False), c,
                                  core_ndims=(2,))
    lu = np.asarray([r[0] for r in results], c.dtype).reshape(a.shape)
    piv = np.asarray([r[1] for r in results], np.int64).reshape(batch + (n,))
    return lu.astype(a.dtype, copy=False), piv, _permutation(piv)


def _permutation(piv):
    """The row order that the sequence of swaps i <-> piv[i] produces."""
    flat = piv.reshape(-1, piv.shape[-1])
    perm = np.tile(np.arange(piv.shape[-1], dtype=np.int64), (flat.shape[0], 1))
    for b in range(flat.shape[0]):
        for i, p in enumerate(flat[b]):
            perm[b, [i, p]] = perm[b, [p, i]]
    return perm.reshape(piv.shape)


def_primitive("lu", _lu_rule, _lu_impl, multiple_results=True, family="linalg",
              tags={"library"})


# tridiagonal_solve(sub, diag, sup, rhs): x with sub[k] x[k-1] + diag[k] x[k] + sup[k] x[k+1]
# = rhs[k] along axis 0, one independent system per trailing index (the vertical solves of
# implicit diffusion in ocean models). Thomas algorithm without pivoting; sub[0] and sup[n-1]
# are ignored. A zero pivot gives inf/NaN (kernels cannot raise mid-computation).
def _tridiag_rule(sub, diag, sup, rhs):
    d = _inexact("tridiagonal_solve", sub, diag, sup, rhs)
    for name, a in (("sub", sub), ("diag", diag), ("sup", sup)):
        if a.shape != rhs.shape:
            raise ShapeError(f"tridiagonal_solve: {name} has shape {a.shape}, rhs {rhs.shape}; "
                             "the four operands must have the same shape (broadcast them first)")
    if rhs.ndim == 0:
        raise ShapeError("tridiagonal_solve: operands are scalars; the system runs along axis 0")
    return AbstractValue(rhs.shape, d)


def _tridiag_impl(sub, diag, sup, rhs):
    a, b, c, d = (_compute(x) for x in (sub, diag, sup, rhs))
    n = d.shape[0]
    cp, x = np.empty_like(d), np.empty_like(d)
    with np.errstate(divide="ignore", invalid="ignore"):  # one division per point
        r = 1.0 / b[0]
        cp[0], x[0] = (c[0] * r if n > 1 else 0.0), d[0] * r
        for k in range(1, n):
            r = 1.0 / (b[k] - a[k] * cp[k - 1])
            cp[k] = c[k] * r if k < n - 1 else 0.0
            x[k] = (d[k] - a[k] * x[k - 1]) * r
        for k in range(n - 2, -1, -1):
            x[k] = x[k] - cp[k] * x[k + 1]
    return x.astype(rhs.dtype, copy=False)


def_primitive("tridiagonal_solve", _tridiag_rule, _tridiag_impl, family="solver",
              tags={"library"})
