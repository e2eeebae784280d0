# kernel 0
import numba
import numpy as np
from kernels.cpu import NoAlias
from kernels.vmath import exp_f32, sin_f32, tanh_f32
from kernels.halfconv import bf16_load, bf16_store


@numba.njit(parallel=False, error_model="numpy", nogil=True, cache=True, pipeline_class=NoAlias)
def kernel(in0, out0):
    v4 = np.float32(3.0)
    v9 = np.float32(0.5)
    for i0 in range(64):
        v0 = bf16_load(in0[i0])
        v1 = np.float32((-v0))
        v2 = np.float32((v1 * v0))
        v3 = np.float32(exp_f32(v2))
        v5 = np.float32((v4 * v0))
        v6 = np.float32(sin_f32(v5))
        v7 = np.float32((v3 * v6))
        v8 = np.float32(tanh_f32(v0))
        v10 = np.float32((v9 * v8))
        v11 = np.float32((v7 + v10))
        out0[i0] = bf16_store(v11)
