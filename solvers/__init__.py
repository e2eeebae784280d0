"""Numerical solvers built on the IR: finite-difference operators, time integrators,
ODE solvers, linear and nonlinear solvers with implicit derivatives.

The numerical core works on plain numpy arrays in functional style; see ``fd``,
``time``, ``ode``, ``linear``, ``nonlinear`` and ``tridiagonal``.
"""

from .errors import CFLError, ConvergenceError, NaNError, SolverError
from .fd import (
    Dirichlet,
    Neumann,
    Periodic,
    diff,
    diff_matrix,
    fornberg_weights,
    laplacian,
    laplacian_matrix,
    pad_bc,
    upwind,
    upwind_matrix,
)
from .implicit import linear_solve
from .linear import cg, direct_solve, gmres, multigrid
from .nonlinear import newton
from .ode import solve_ivp
from .time import check_cfl, integrate, integrate_implicit, integrate_linear
from .tridiagonal import thomas

__all__ = [
    "CFLError", "ConvergenceError", "NaNError", "SolverError",
    "Dirichlet", "Neumann", "Periodic", "diff", "diff_matrix", "fornberg_weights",
    "laplacian", "laplacian_matrix", "pad_bc", "upwind", "upwind_matrix",
    "cg", "direct_solve", "gmres", "linear_solve", "multigrid", "newton", "solve_ivp",
    "check_cfl", "integrate", "integrate_implicit", "integrate_linear", "thomas",
]
