"""sciml's exception hierarchy; see each class for the causes it covers."""

from autodiff.errors import (  # noqa: F401
    ArityError,
    DTypeError,
    NotDifferentiableError,
    SciMLError,
    SerializationError,
    ShapeError,
    TracerError,
    UnsupportedError,
    VerifyError,
)
