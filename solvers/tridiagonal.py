"""Batched Thomas algorithm for many independent tridiagonal systems.

Written functionally (the sweeps build lists of slices and stack them) so it can be
traced into the IR later, where the two Python loops become ``scan``s.
"""

import numpy as np

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
    n = d.shape[0]
    # Forward elimination: c'_i = c_i / m_i, d'_i = (d_i - a_i d'_{i-1}) / m_i.
    cp, dp = [c[0] / b[0]], [d[0] / b[0]]
    for i in range(1, n):
        m = b[i] - a[i] * cp[-1]
        cp.append(c[i] / m)
        dp.append((d[i] - a[i] * dp[-1]) / m)
    # Back substitution, collected in reverse order.
    xs = [dp[-1]]
    for i in range(n - 2, -1, -1):
        xs.append(dp[i] - cp[i] * xs[-1])
    x = np.stack(xs[::-1], axis=0)
    if not isinstance(x, Tracer) and not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise NaNError(
            f"thomas: non-finite solution at index {tuple(bad)} (axis moved first); "
            "a zero pivot means the system is singular or not diagonally dominant"
        )
    return np.moveaxis(x, 0, axis)
