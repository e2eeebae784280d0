"""Exceptions raised by the numerical solvers.

A small hierarchy so callers can catch every solver failure with ``SolverError``
and still tell the kinds apart. They are part of sciml's one hierarchy: ``SolverError`` is a
``SciMLError`` and ``sciml.errors`` re-exports them all.
"""

from autodiff.errors import SciMLError


class SolverError(SciMLError):
    """Base class of every error raised by ``solvers``.

    Causes: invalid arguments detected inside a solver (shapes, dtypes, options),
    and all of the more specific failures below.
    """


class ConvergenceError(SolverError):
    """An iterative method did not reach its tolerance.

    Causes: an iteration limit reached (CG, GMRES, multigrid, Newton), a line search
    that cannot decrease the residual, an adaptive step size that underflows.
    The message names the method, the iteration or time, and the residual or step size.
    """


class CFLError(SolverError):
    """An explicit time step violates its stability limit.

    Causes: ``dt`` too large for the grid spacing ``dx`` and the advection speed
    (Courant number) or the diffusivity (diffusion number) of the problem.
    """


class NaNError(SolverError):
    """A NaN or infinity appeared in a solver's state.

    Causes: an unstable step, a right-hand side that returns NaN, a singular
    Jacobian, overflow. The message says where (time, step or iteration).
    """
