"""``sciml.linalg`` (also ``sciml.numpy.linalg``): numpy.linalg's names on plain arrays (eager)
and traced values, built on the dense library primitives solve, cholesky, triangular_solve, qr,
eigh and lu.

Integer and boolean inputs are converted to float64, as numpy does; float16 and bfloat16 are
accepted (numpy rejects them) and computed in float32. Leading dimensions are batch dimensions
and broadcast.

>>> import numpy as np
>>> from sciml import linalg
>>> a = np.array([[4.0, 1.0], [1.0, 3.0]])
>>> bool(np.allclose(a @ linalg.solve(a, np.array([1.0, 2.0])), [1.0, 2.0]))
True
>>> round(float(linalg.det(a)), 12)
11.0
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from autodiff import dtypes as _dt
from autodiff import lax
from autodiff.errors import ShapeError, UnsupportedError
from autodiff.primitives import PRIMITIVES as _P
from autodiff.trace import Tracer, abstractify

__all__ = [
    "cholesky", "det", "eigh", "eigvalsh", "inv", "lu_factor", "matrix_norm", "multi_dot",
    "norm", "qr", "slogdet", "solve", "solve_triangular", "triangular_solve", "vector_norm",
]


class QRResult(NamedTuple):
    Q: object
    R: object


class EighResult(NamedTuple):
    eigenvalues: object
    eigenvectors: object


class SlogdetResult(NamedTuple):
    sign: object
    logabsdet: object


def _arr(x):
    return x if isinstance(x, Tracer) else lax.asarray(x)


def _inexact(name, *xs):
    """Promote to one inexact dtype (integers and bools become float64, like numpy.linalg)."""
    xs = [_arr(x) for x in lax.promote(name, *xs)]
    d = abstractify(xs[0]).dtype
    if not _dt.is_inexact(d):
        xs = [lax.convert_element_type(x, np.float64) for x in xs]
    return xs


def _square(name, a):
    s = abstractify(a).shape
    if len(s) < 2 or s[-1] != s[-2]:
        raise ShapeError(f"{name}: needs a (stack of) square matrices (..., n, n), got shape {s}")
    return s[-1]


def _diagonal(a):
    """The main diagonals of a stack of square matrices, shape (..., n)."""
    s = abstractify(a).shape
    n = s[-1]
    flat = lax.reshape(a, s[:-2] + (n * n,))
    return _P["take"].bind(flat, np.arange(n, dtype=np.int64) * (n + 1), axis=len(s) - 2)


def _mT(a):
    return lax.swapaxes(a, -1, -2)


def _broadcast_batch(a, b, core_a=2, core_b=2):
    sa, sb = abstractify(a).shape, abstractify(b).shape
    try:
        batch = tuple(np.broadcast_shapes(sa[:len(sa) - core_a], sb[:len(sb) - core_b]))
    except ValueError:
        raise ShapeError(f"batch dimensions of shapes {sa} and {sb} do not broadcast") from None
    return (lax.broadcast_to(a, batch + sa[len(sa) - core_a:]),
            lax.broadcast_to(b, batch + sb[len(sb) - core_b:]))


# ---------------------------------------------------------------------------------------------
# Solving


def solve(a, b):
    """``np.linalg.solve``: x with a @ x = b; b is (..., n) only when it is 1-D (numpy 2)."""
    a, b = _inexact("solve", a, b)
    n = _square("solve", a)
    sb = abstractify(b).shape
    vector = len(sb) == 1
    if vector:
        b = lax.reshape(b, (n, 1) if sb == (n,) else sb + (1,))
    if abstractify(b).ndim < 2 or abstractify(b).shape[-2] != n:
        raise ShapeError(f"solve: b of shape {sb} does not fit a of shape "
                         f"{abstractify(a).shape} (needs (n,) or (..., n, k) with n={n})")
    a, b = _broadcast_batch(a, b)
    x = _P["solve"].bind(a, b)
    return lax.squeeze(x, -1) if vector else x


def inv(a):
    """``np.linalg.inv`` as ``solve(a, I)``."""
    (a,) = _inexact("inv", a)
    n = _square("inv", a)
    eye = lax.broadcast_to(np.eye(n, dtype=abstractify(a).dtype), abstractify(a).shape)
    return _P["solve"].bind(a, eye)


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False):
    """``scipy.linalg.solve_triangular`` (batched): ``trans`` 0/'N', 1/'T' or 2/'C'."""
    modes = {0: (False, False), "N": (False, False), 1: (True, False), "T": (True, False),
             2: (True, True), "C": (True, True)}
    if trans not in modes:
        raise ShapeError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', got "
                         f"{trans!r}")
    transpose_a, conjugate_a = modes[trans]
    return triangular_solve(a, b, lower=lower, transpose_a=transpose_a,
                            conjugate_a=conjugate_a, unit_diagonal=unit_diagonal)


def triangular_solve(a, b, *, lower=True, transpose_a=False, conjugate_a=False,
                     left_side=True, unit_diagonal=False):
    """Solve op(a) @ x = b (``left_side``) or x @ op(a) = b with a triangular; b may be a
    vector (n,) on the left side."""
    a, b = _inexact("triangular_solve", a, b)
    n = _square("triangular_solve", a)
    vector = abstractify(b).ndim == 1
    if vector:
        b = lax.reshape(b, (n, 1) if left_side else (1, n))
    a, b = _broadcast_batch(a, b)
    x = _P["triangular_solve"].bind(a, b, lower=bool(lower), transpose_a=bool(transpose_a),
                                    conjugate_a=bool(conjugate_a), left_side=bool(left_side),
                                    unit_diagonal=bool(unit_diagonal))
    return lax.reshape(x, (n,)) if vector else x


# ---------------------------------------------------------------------------------------------
# Factorisations


def cholesky(a, upper=False):
    """``np.linalg.cholesky``: lower l with a = l @ l^H (upper=True gives l^H). Reads the lower
    triangle; a matrix that is not positive definite gives NaNs instead of raising."""
    (a,) = _inexact("cholesky", a)
    lo = _P["cholesky"].bind(a)
    return lax.unary("conj", _mT(lo)) if upper else lo


def qr(a, mode="reduced"):
    """``np.linalg.qr`` for modes "reduced", "complete" and "r"."""
    if mode not in ("reduced", "complete", "r"):
        raise UnsupportedError(f"qr: mode {mode!r} is not supported (use 'reduced', "
                               "'complete' or 'r')")
    (a,) = _inexact("qr", a)
    q, r = _P["qr"].bind(a, full_matrices=mode == "complete")
    return r if mode == "r" else QRResult(q, r)


def eigh(a, UPLO="L"):  # noqa: N803  (numpy's argument name)
    """``np.linalg.eigh``: ascending eigenvalues and eigenvectors (columns) of a Hermitian
    matrix, reading its lower (UPLO="L") or upper triangle."""
    if UPLO not in ("L", "U"):
        raise ShapeError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    (a,) = _inexact("eigh", a)
    return EighResult(*_P["eigh"].bind(a, lower=UPLO == "L"))


def eigvalsh(a, UPLO="L"):  # noqa: N803
    return eigh(a, UPLO)[0]


def lu_factor(a):
    """LU with partial pivoting: ``(lu, pivots, permutation)`` with
    ``a[..., permutation, :] == l @ u`` (l unit lower, u upper, both packed in ``lu``)."""
    (a,) = _inexact("lu_factor", a)
    _square("lu_factor", a)
    return _P["lu"].bind(a)


# ---------------------------------------------------------------------------------------------
# Determinants


def _lu_diagonal_and_sign(name, a):
    """LU of a: the diagonal of u and the sign (+1/-1) of the row permutation."""
    (a,) = _inexact(name, a)
    n = _square(name, a)
    lu, piv, _ = _P["lu"].bind(a)
    swaps = lax.sum(lax.convert_element_type(
        lax.compare("ne", piv, np.arange(n, dtype=np.int64)), np.int64), axis=-1)
    parity = lax.sub(1, lax.mul(2, lax.binary("mod", swaps, 2)))
    d = _diagonal(lu)
    return d, lax.convert_element_type(parity, abstractify(d).dtype)


def slogdet(a):
    """``np.linalg.slogdet``: (sign, log|det|) from the LU factorisation."""
    d, parity = _lu_diagonal_and_sign("slogdet", a)
    absd = lax.unary("abs", d)
    # The phase of a zero pivot is taken as 0, so a singular matrix gets sign 0 (as numpy).
    safe = lax.where(lax.compare("eq", absd, 0), 1, absd)
    phase = lax.div(d, lax.convert_element_type(safe, abstractify(d).dtype))
    sign = lax.mul(lax.reduce("reduce_prod", phase, -1), parity)
    return SlogdetResult(sign, lax.sum(lax.unary("log", absd), axis=-1))


def det(a):
    """``np.linalg.det`` = sign * prod(diag(u)) of the LU factorisation."""
    d, parity = _lu_diagonal_and_sign("det", a)
    return lax.mul(lax.reduce("reduce_prod", d, -1), parity)


# ---------------------------------------------------------------------------------------------
# Norms and products


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):  # noqa: A002
    """``np.linalg.vector_norm``: ord 2, 1, inf, -inf, 0 or any p."""
    x = _arr(x)
    absx = lax.unary("abs", x)
    if not _dt.is_inexact(abstractify(absx).dtype):
        absx = lax.convert_element_type(absx, np.float64)
    if ord == 2:
        return lax.unary("sqrt", lax.sum(lax.mul(absx, absx), axis, keepdims))
    if ord == np.inf:
        return lax.reduce("reduce_max", absx, axis, keepdims)
    if ord == -np.inf:
        return lax.reduce("reduce_min", absx, axis, keepdims)
    if ord == 0:
        nz = lax.convert_element_type(lax.compare("ne", absx, 0), abstractify(absx).dtype)
        return lax.sum(nz, axis, keepdims)
    if ord == 1:
        return lax.sum(absx, axis, keepdims)
    p = float(ord)
    return lax.power(lax.sum(lax.power(absx, p), axis, keepdims), 1.0 / p)


def matrix_norm(x, /, *, keepdims=False, ord="fro"):  # noqa: A002
    """``np.linalg.matrix_norm`` over the last two axes: 'fro', 1, -1, inf, -inf, 2, 'nuc'.

    ord=2 and 'nuc' use the eigenvalues of x^H x (accurate for the large singular values);
    ord=-2 (the smallest singular value) would lose half the digits and is not supported."""
    x = _arr(x)
    nd = abstractify(x).ndim
    if nd < 2:
        raise ShapeError(f"matrix_norm: needs at least 2 dimensions, got shape "
                         f"{abstractify(x).shape}")
    axes = (nd - 2, nd - 1)
    return norm(x, ord, axes, keepdims)


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002
    """``np.linalg.norm`` for vectors and matrices (see vector_norm and matrix_norm)."""
    x = _arr(x)
    nd = abstractify(x).ndim
    if axis is None and ord is None:
        out = vector_norm(lax.reshape(x, (-1,)), axis=0)
        return lax.reshape(out, (1,) * nd) if keepdims else out
    if axis is None:
        axis = tuple(range(nd))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if len(axes) == 1:
        return vector_norm(x, axis=axes[0], keepdims=keepdims, ord=2 if ord is None else ord)
    if len(axes) != 2:
        raise ShapeError(f"norm: axis must name one or two axes, got {axis}")
    return _matrix_norm(x, "fro" if ord is None else ord, tuple(a % nd for a in axes), keepdims)


def _matrix_norm(x, ord, axes, keepdims):  # noqa: A002
    r, c = axes
    absx = lax.unary("abs", x)
    if not _dt.is_inexact(abstractify(absx).dtype):
        absx = lax.convert_element_type(absx, np.float64)
    if ord == "fro":
        return lax.unary("sqrt", lax.sum(lax.mul(absx, absx), axes, keepdims))
    if ord in (1, -1, np.inf, -np.inf):
        inner, outer = (r, c) if ord in (1, -1) else (c, r)
        sums = lax.sum(absx, inner, keepdims=True)
        red = "reduce_max" if ord in (1, np.inf) else "reduce_min"
        out = lax.reduce(red, sums, outer, keepdims=True)
        return out if keepdims else lax.squeeze(out, axes)
    if ord in (2, "nuc"):
        return _singular_norm(x, ord, axes, keepdims)
    raise UnsupportedError(f"norm: matrix ord={ord!r} is not supported (use 'fro', 1, -1, "
                           "inf, -inf, 2 or 'nuc')")


def _singular_norm(x, ord, axes, keepdims):  # noqa: A002
    nd = abstractify(x).ndim
    rest = [i for i in range(nd) if i not in axes]
    xm = lax.transpose(x, rest + list(axes))
    if not _dt.is_inexact(abstractify(xm).dtype):
        xm = lax.convert_element_type(xm, np.float64)
    m, n = abstractify(xm).shape[-2:]
    # The smaller Gram matrix: the larger one has exact zero eigenvalues whose rounding
    # (~eps * |x|^2) would add sqrt(eps) * |x| to the nuclear norm.
    gram = (lax.matmul(xm, lax.unary("conj", _mT(xm))) if m < n
            else lax.matmul(lax.unary("conj", _mT(xm)), xm))
    w = lax.binary("maximum", eigvalsh(gram), 0.0)
    s = lax.unary("sqrt", w)
    out = lax.reduce("reduce_max", s, -1) if ord == 2 else lax.sum(s, axis=-1)
    if keepdims:
        for ax in sorted(axes):
            out = lax.expand_dims(out, ax)
    return out


def multi_dot(arrays):
    """``np.linalg.multi_dot`` (left to right; no reordering of the chain)."""
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ShapeError("multi_dot: needs at least two arrays")
    out = arrays[0]
    for b in arrays[1:]:
        out = lax.matmul(out, b)
    return out


def svd(a, full_matrices=True, compute_uv=True):
    raise UnsupportedError("svd is not a sciml primitive yet; eigh(a^H a) gives the singular "
                           "values of well-conditioned matrices")


def eig(a):
    raise UnsupportedError("eig (non-symmetric eigenproblems) is not supported; use eigh for "
                           "symmetric or Hermitian matrices")


def lstsq(a, b, rcond=None):
    raise UnsupportedError("lstsq is not supported yet; use qr: x = solve_triangular(r, "
                           "q^H b) for full-rank a")


def pinv(a, rcond=None, hermitian=False):
    raise UnsupportedError("pinv is not supported yet (needs svd)")
