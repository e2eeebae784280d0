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
from solvers.errors import CFLError, ConvergenceError, NaNError, SolverError  # noqa: F401, E402


class ProblemError(SciMLError, ValueError):
    """An equation or problem statement that ``sciml.solve`` cannot accept.

    Causes: an unknown that does not appear in the equations, a symbol that is neither an
    unknown, a coordinate, time nor a parameter, a missing initial or boundary condition,
    fields with different arguments, an unknown boundary-condition kind, a bad grid.
    """
