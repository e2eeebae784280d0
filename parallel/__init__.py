"""Parallel execution: MPI domain decomposition, halo exchange, collectives and data parallelism."""
