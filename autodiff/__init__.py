"""The functional graph IR, the primitive table, tracing, the reference interpreter and the
graph transforms (passes, jvp, vjp, Taylor mode, batching)."""
