# kernel 0
import numba
import numpy as np
from kernels.cpu import NoAlias
from kernels.vmath import fmaximum


@numba.njit(parallel=False, error_model="numpy", nogil=True, cache=True, pipeline_class=NoAlias)
def kernel(in0, out0):
    v1 = np.float64(2.0)
    for i0 in range(32):
        acc0 = np.float64(-np.inf)
        for i1 in range(40):
            v0 = in0[((i0 + -1) % 30), i1]
            v2 = (v0 * v1)
            acc0 = fmaximum(acc0, v2)
        out0[i0] = acc0
