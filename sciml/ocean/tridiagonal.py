"""Batched tridiagonal solve (Thomas algorithm) along the leading axis.

One call is one ``tridiagonal_solve`` primitive: traced, it stays a single node that ``jit``
runs as one compiled sweep over all columns, and autodiff differentiates it with one more
solve (the transposed system in reverse mode) instead of through the recurrence.
"""

from __future__ import annotations

import numpy as np

import sciml.numpy as snp
from autodiff.primitives import get


def thomas(sub, diag, sup, rhs):
    """Solve ``sub[k] x[k-1] + diag[k] x[k] + sup[k] x[k+1] = rhs[k]`` for every column.

    The four arrays broadcast to one shape ``(n, ...)``; the system runs along axis 0 and
    every trailing index is an independent system. ``sub[0]`` and ``sup[n-1]`` are ignored.
    No pivoting: meant for the diagonally dominant systems of implicit vertical diffusion.

    >>> import numpy as np
    >>> thomas(np.array([0., 1.]), np.array([2., 2.]), np.array([1., 0.]), np.array([3., 3.]))
    array([1., 1.])
    """
    ops = (sub, diag, sup, rhs)
    shape = np.broadcast_shapes(*(np.shape(a) for a in ops))
    dtype = np.result_type(*(a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
                             for a in ops))
    ops = [snp.broadcast_to(snp.astype(a, dtype, copy=False), shape) for a in ops]
    return get("tridiagonal_solve").bind(*ops)
