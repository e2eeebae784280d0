"""Numerical solvers built on the IR: finite-difference operators, time integrators, ODE solvers, linear and nonlinear solvers with implicit derivatives."""
