# kernel 0
import numba
import numpy as np
from kernels.cpu import NoAlias
from kernels.vmath import sin_f32


@numba.njit(parallel=True, error_model="numpy", nogil=True, cache=True, pipeline_class=NoAlias)
def kernel(in0, out0):
    v2 = np.float32(1.0)
    part0 = np.empty(64, np.float64)
    for c in numba.prange(64):
        acc0 = np.float64(0)
        for i0 in range(c * 16384, min(c * 16384 + 16384, 1048576)):
            v0 = in0[i0]
            v1 = np.float32(sin_f32(v0))
            v3 = np.float32((v1 + v2))
            v4 = np.float32((v3 * v3))
            v5 = np.float64(v4)
            acc0 = acc0 + v5
        part0[c] = acc0
    acc0 = np.float64(0)
    for c in range(64):
        acc0 = acc0 + part0[c]
    out0[0] = np.float32(acc0)
