"""The primitive table, one module per family of primitives.

Importing this package declares every primitive (``autodiff.primitives.PRIMITIVES``).
"""

from . import (  # noqa: F401
    control,
    elementwise,
    fft,
    indexing,
    linalg,
    random,
    reduce,
    shape,
    window,
)
