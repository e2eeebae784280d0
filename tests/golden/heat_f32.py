# kernel 0
import numba
import numpy as np
from kernels.cpu import NoAlias


@numba.njit(parallel=True, error_model="numpy", nogil=True, cache=True, pipeline_class=NoAlias)
def kernel(in0, in1, out0):
    v2 = np.float32(0.0)
    v25 = np.float32(6.0)
    v29 = in1[0]
    for i0 in numba.prange(64):
        for i1 in range(64):
            if 1 <= i0 < 63 and 1 <= i1 < 63:
                for i2 in range(0, 1):
                    v0 = in0[(i0 + 1), i1, i2]
                    v1 = True
                    v3 = np.float32((v0 if v1 else v2))
                    v4 = np.float32((v2 + v3))
                    v5 = in0[(i0 + -1), i1, i2]
                    v6 = True
                    v7 = np.float32((v5 if v6 else v2))
                    v8 = np.float32((v4 + v7))
                    v9 = in0[i0, (i1 + 1), i2]
                    v10 = True
                    v11 = np.float32((v9 if v10 else v2))
                    v12 = np.float32((v8 + v11))
                    v13 = in0[i0, (i1 + -1), i2]
                    v14 = True
                    v15 = np.float32((v13 if v14 else v2))
                    v16 = np.float32((v12 + v15))
                    v17 = in0[i0, i1, min(max((i2 + 1), 0), 63)]
                    v18 = (0 <= (i2 + 1)) & ((i2 + 1) < 64)
                    v19 = np.float32((v17 if v18 else v2))
                    v20 = np.float32((v16 + v19))
                    v21 = in0[i0, i1, min(max((i2 + -1), 0), 63)]
                    v22 = (0 <= (i2 + -1)) & ((i2 + -1) < 64)
                    v23 = np.float32((v21 if v22 else v2))
                    v24 = np.float32((v20 + v23))
                    v26 = in0[i0, i1, i2]
                    v27 = np.float32((v25 * v26))
                    v28 = np.float32((v24 - v27))
                    v30 = np.float32((v29 * v28))
                    v31 = np.float32((v26 + v30))
                    out0[i0, i1, i2] = np.float32(v31)
                for i2 in range(1, 63):
                    v0 = in0[(i0 + 1), i1, i2]
                    v1 = True
                    v3 = np.float32((v0 if v1 else v2))
                    v4 = np.float32((v2 + v3))
                    v5 = in0[(i0 + -1), i1, i2]
                    v6 = True
                    v7 = np.float32((v5 if v6 else v2))
                    v8 = np.float32((v4 + v7))
                    v9 = in0[i0, (i1 + 1), i2]
                    v10 = True
                    v11 = np.float32((v9 if v10 else v2))
                    v12 = np.float32((v8 + v11))
                    v13 = in0[i0, (i1 + -1), i2]
                    v14 = True
                    v15 = np.float32((v13 if v14 else v2))
                    v16 = np.float32((v12 + v15))
                    v17 = in0[i0, i1, (i2 + 1)]
                    v18 = True
                    v19 = np.float32((v17 if v18 else v2))
                    v20 = np.float32((v16 + v19))
                    v21 = in0[i0, i1, (i2 + -1)]
                    v22 = True
                    v23 = np.float32((v21 if v22 else v2))
                    v24 = np.float32((v20 + v23))
                    v26 = in0[i0, i1, i2]
                    v27 = np.float32((v25 * v26))
                    v28 = np.float32((v24 - v27))
                    v30 = np.float32((v29 * v28))
                    v31 = np.float32((v26 + v30))
                    out0[i0, i1, i2] = np.float32(v31)
                for i2 in range(63, 64):
                    v0 = in0[(i0 + 1), i1, i2]
                    v1 = True
                    v3 = np.float32((v0 if v1 else v2))
                    v4 = np.float32((v2 + v3))
                    v5 = in0[(i0 + -1), i1, i2]
                    v6 = True
                    v7 = np.float32((v5 if v6 else v2))
                    v8 = np.float32((v4 + v7))
                    v9 = in0[i0, (i1 + 1), i2]
                    v10 = True
                    v11 = np.float32((v9 if v10 else v2))
                    v12 = np.float32((v8 + v11))
                    v13 = in0[i0, (i1 + -1), i2]
                    v14 = True
                    v15 = np.float32((v13 if v14 else v2))
                    v16 = np.float32((v12 + v15))
                    v17 = in0[i0, i1, min(max((i2 + 1), 0), 63)]
                    v18 = (0 <= (i2 + 1)) & ((i2 + 1) < 64)
                    v19 = np.float32((v17 if v18 else v2))
                    v20 = np.float32((v16 + v19))
                    v21 = in0[i0, i1, min(max((i2 + -1), 0), 63)]
                    v22 = (0 <= (i2 + -1)) & ((i2 + -1) < 64)
                    v23 = np.float32((v21 if v22 else v2))
                    v24 = np.float32((v20 + v23))
                    v26 = in0[i0, i1, i2]
                    v27 = np.float32((v25 * v26))
                    v28 = np.float32((v24 - v27))
                    v30 = np.float32((v29 * v28))
                    v31 = np.float32((v26 + v30))
                    out0[i0, i1, i2] = np.float32(v31)
            else:
                for i2 in range(0, 1):
                    v0 = in0[min(max((i0 + 1), 0), 63), i1, i2]
                    v1 = (0 <= (i0 + 1)) & ((i0 + 1) < 64)
                    v3 = np.float32((v0 if v1 else v2))
                    v4 = np.float32((v2 + v3))
                    v5 = in0[min(max((i0 + -1), 0), 63), i1, i2]
                    v6 = (0 <= (i0 + -1)) & ((i0 + -1) < 64)
                    v7 = np.float32((v5 if v6 else v2))
                    v8 = np.float32((v4 + v7))
                    v9 = in0[i0, min(max((i1 + 1), 0), 63), i2]
                    v10 = (0 <= (i1 + 1)) & ((i1 + 1) < 64)
                    v11 = np.float32((v9 if v10 else v2))
                    v12 = np.float32((v8 + v11))
                    v13 = in0[i0, min(max((i1 + -1), 0), 63), i2]
                    v14 = (0 <= (i1 + -1)) & ((i1 + -1) < 64)
                    v15 = np.float32((v13 if v14 else v2))
                    v16 = np.float32((v12 + v15))
                    v17 = in0[i0, i1, min(max((i2 + 1), 0), 63)]
                    v18 = (0 <= (i2 + 1)) & ((i2 + 1) < 64)
                    v19 = np.float32((v17 if v18 else v2))
                    v20 = np.float32((v16 + v19))
                    v21 = in0[i0, i1, min(max((i2 + -1), 0), 63)]
                    v22 = (0 <= (i2 + -1)) & ((i2 + -1) < 64)
                    v23 = np.float32((v21 if v22 else v2))
                    v24 = np.float32((v20 + v23))
                    v26 = in0[i0, i1, i2]
                    v27 = np.float32((v25 * v26))
                    v28 = np.float32((v24 - v27))
                    v30 = np.float32((v29 * v28))
                    v31 = np.float32((v26 + v30))
                    out0[i0, i1, i2] = np.float32(v31)
                for i2 in range(1, 63):
                    v0 = in0[min(max((i0 + 1), 0), 63), i1, i2]
                    v1 = (0 <= (i0 + 1)) & ((i0 + 1) < 64)
                    v3 = np.float32((v0 if v1 else v2))
                    v4 = np.float32((v2 + v3))
                    v5 = in0[min(max((i0 + -1), 0), 63), i1, i2]
                    v6 = (0 <= (i0 + -1)) & ((i0 + -1) < 64)
                    v7 = np.float32((v5 if v6 else v2))
                    v8 = np.float32((v4 + v7))
                    v9 = in0[i0, min(max((i1 + 1), 0), 63), i2]
                    v10 = (0 <= (i1 + 1)) & ((i1 + 1) < 64)
                    v11 = np.float32((v9 if v10 else v2))
                    v12 = np.float32((v8 + v11))
                    v13 = in0[i0, min(max((i1 + -1), 0), 63), i2]
                    v14 = (0 <= (i1 + -1)) & ((i1 + -1) < 64)
                    v15 = np.float32((v13 if v14 else v2))
                    v16 = np.float32((v12 + v15))
                    v17 = in0[i0, i1, (i2 + 1)]
                    v18 = True
                    v19 = np.float32((v17 if v18 else v2))
                    v20 = np.float32((v16 + v19))
                    v21 = in0[i0, i1, (i2 + -1)]
                    v22 = True
                    v23 = np.float32((v21 if v22 else v2))
                    v24 = np.float32((v20 + v23))
                    v26 = in0[i0, i1, i2]
                    v27 = np.float32((v25 * v26))
                    v28 = np.float32((v24 - v27))
                    v30 = np.float32((v29 * v28))
                    v31 = np.float32((v26 + v30))
                    out0[i0, i1, i2] = np.float32(v31)
                for i2 in range(63, 64):
                    v0 = in0[min(max((i0 + 1), 0), 63), i1, i2]
                    v1 = (0 <= (i0 + 1)) & ((i0 + 1) < 64)
                    v3 = np.float32((v0 if v1 else v2))
                    v4 = np.float32((v2 + v3))
                    v5 = in0[min(max((i0 + -1), 0), 63), i1, i2]
                    v6 = (0 <= (i0 + -1)) & ((i0 + -1) < 64)
                    v7 = np.float32((v5 if v6 else v2))
                    v8 = np.float32((v4 + v7))
                    v9 = in0[i0, min(max((i1 + 1), 0), 63), i2]
                    v10 = (0 <= (i1 + 1)) & ((i1 + 1) < 64)
                    v11 = np.float32((v9 if v10 else v2))
                    v12 = np.float32((v8 + v11))
                    v13 = in0[i0, min(max((i1 + -1), 0), 63), i2]
                    v14 = (0 <= (i1 + -1)) & ((i1 + -1) < 64)
                    v15 = np.float32((v13 if v14 else v2))
                    v16 = np.float32((v12 + v15))
                    v17 = in0[i0, i1, min(max((i2 + 1), 0), 63)]
                    v18 = (0 <= (i2 + 1)) & ((i2 + 1) < 64)
                    v19 = np.float32((v17 if v18 else v2))
                    v20 = np.float32((v16 + v19))
                    v21 = in0[i0, i1, min(max((i2 + -1), 0), 63)]
                    v22 = (0 <= (i2 + -1)) & ((i2 + -1) < 64)
                    v23 = np.float32((v21 if v22 else v2))
                    v24 = np.float32((v20 + v23))
                    v26 = in0[i0, i1, i2]
                    v27 = np.float32((v25 * v26))
                    v28 = np.float32((v24 - v27))
                    v30 = np.float32((v29 * v28))
                    v31 = np.float32((v26 + v30))
                    out0[i0, i1, i2] = np.float32(v31)
