"""Graph and kernel fusion, loop-level kernel IR, code generation (cpu/numba, gpu/CUDA C, npu tile programs), the compile cache and jit."""
