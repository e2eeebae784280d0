"""Graph and kernel fusion, the loop-level kernel IR, code generation (cpu/numba, gpu/CUDA C,
npu tile programs), the compile cache and ``jit``.

The pipeline, one file per stage: ``fuse`` (Graph -> clusters and library nodes), ``lower``
(cluster -> ``loopir.Kernel``), a printer per target (``cpu``, ``gpu``, ``npu``) over the
scalar ``templates``, ``cache`` (structural hash, disk cache), ``plan`` (buffers, execution)
and ``plancode`` (the whole plan as one compiled function); ``jit`` runs them top to bottom.
"""
