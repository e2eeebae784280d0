"""Batched tridiagonal solve (Thomas algorithm) along the leading axis.

Functional style: the forward sweep and the back substitution build Python lists of slices
and stack them, so no array is written in place and the loops become ``scan`` when traced.
"""

from __future__ import annotations

import numpy as np


def thomas(sub, diag, sup, rhs):
    """Solve ``sub[k] x[k-1] + diag[k] x[k] + sup[k] x[k+1] = rhs[k]`` for every column.

    All four arrays have shape ``(n, ...)``; the system runs along axis 0 and every trailing
    index is an independent system. ``sub[0]`` and ``sup[n-1]`` are ignored. No pivoting:
    meant for the diagonally dominant systems of implicit vertical diffusion.

    >>> import numpy as np
    >>> thomas(np.array([0., 1.]), np.array([2., 2.]), np.array([1., 0.]), np.array([3., 3.]))
    array([1., 1.])
    """
    n = diag.shape[0]
    cp, dp = [], []
    for k in range(n):
        if k == 0:
            denom = diag[0]
            dp.append(rhs[0] / denom)
        else:
            denom = diag[k] - sub[k] * cp[k - 1]
            dp.append((rhs[k] - sub[k] * dp[k - 1]) / denom)
        cp.append(sup[k] / denom if k < n - 1 else np.zeros_like(denom))
    xs = [dp[n - 1]]
    for k in range(n - 2, -1, -1):
        xs.append(dp[k] - cp[k] * xs[-1])
    return np.stack(xs[::-1], axis=0)
