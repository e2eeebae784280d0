# kernel 0
import numba
import numpy as np
from kernels.cpu import NoAlias
from kernels.vmath import exp_f64, sin_f64, tanh_f64


@numba.njit(parallel=True, error_model="numpy", nogil=True, cache=True, pipeline_class=NoAlias)
def kernel(in0, out0):
    v4 = np.float64(3.0)
    v9 = np.float64(0.5)
    for i0 in numba.prange(1048576):
        v0 = in0[i0]
        v1 = (-v0)
        v2 = (v1 * v0)
        v3 = exp_f64(v2)
        v5 = (v4 * v0)
        v6 = sin_f64(v5)
        v7 = (v3 * v6)
        v8 = tanh_f64(v0)
        v10 = (v9 * v8)
        v11 = (v7 + v10)
        out0[i0] = v11
