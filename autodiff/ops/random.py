"""random primitives (to be filled)."""
