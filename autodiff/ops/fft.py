"""fft primitives (to be filled)."""
