"""The primitive table, one module per family of primitives."""
