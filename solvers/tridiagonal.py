"""Batched Thomas algorithm for many independent tridiagonal systems.

The solve is one ``tridiagonal_solve`` primitive: eager on numpy arrays, a single traced node
(compiled by ``jit``, differentiated by one more solve) on sciml tracers.
"""

import numpy as np

import sciml.numpy as snp
from autodiff.primitives import get
from autodiff.trace import Tracer

from .errors import NaNError, SolverError


def _array(x):
    # Traced values pass through: the sweeps use numpy functions sciml traces.
    return x if isinstance(x, Tracer) else np.asarray(x)


def _check(lower, diag, upper, rhs, axis):
    rhs = _array(rhs)
    if rhs.ndim == 0:
        raise SolverError("thomas: rhs must have at least one dimension, got a scalar")
    if not -rhs.ndim <= axis < rhs.ndim:
        raise SolverError(f"thomas: axis={axis} out of range for rhs with shape {rhs.shape}")
    arrays = []
    for name, a in (("lower", lower), ("diag", diag), ("upper", upper)):
        a = _array(a)
        try:
            arrays.append(np.broadcast_to(a, rhs.shape))
        except ValueError:
            raise SolverError(
                f"thomas: {name} with shape {a.shape} does not broadcast to rhs shape {rhs.shape}"
            ) from None
    return [np.moveaxis(a, axis, 0) for a in (*arrays, rhs)]


def thomas(lower, diag, upper, rhs, axis=-1):
    """Solve ``lower[i] x[i-1] + diag[i] x[i] + upper[i] x[i+1] = rhs[i]`` along ``axis``.

    All four arrays have the same length ``n`` along ``axis`` (``lower[0]`` and
    ``upper[n-1]`` are ignored) and broadcast against each other on the other axes, one
    independent system per position. No pivoting: intended for diagonally dominant
    systems (implicit diffusion, vertical mixing).

    >>> x = thomas([0, -1, -1], [2, 2, 2], [-1, -1, 0], [1.0, 0.0, 1.0])
    >>> np.round(x, 12).tolist()
    [1.0, 1.0, 1.0]
    """
    a, b, c, d = _check(lower, diag, upper, rhs, axis)
    dtype = np.result_type(*(x.dtype for x in (a, b, c, d)))
    if not np.issubdtype(dtype, np.inexact):
        dtype = np.result_type(dtype, np.float64)  # integer systems are solved in float64
    x = get("tridiagonal_solve").bind(*(snp.astype(v, dtype, copy=False) for v in (a, b, c, d)))
    if not isinstance(x, Tracer) and not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise NaNError(
            f"thomas: non-finite solution at index {tuple(bad)} (axis moved first); "
            "a zero pivot means the system is singular or not diagonally dominant"
        )
    return np.moveaxis(x, 0, axis)
