"""sciml's exception hierarchy (re-exported as ``sciml.errors``).

Every error message names the primitive or operation, the shapes and dtypes involved and, when
known, the user's source line, and says how to fix the problem.
"""

from __future__ import annotations

import os
import sys


class SciMLError(Exception):
    """Base class of every error sciml raises on purpose.

    The user's source line (``file:line`` of the innermost frame outside sciml and numpy) is
    recorded when the error is created and appended to the message, wherever it was raised.
    """

    # Errors about a graph or a file rather than the user's code (VerifyError,
    # SerializationError) turn this off.
    names_source_line = True

    def __init__(self, *args):
        super().__init__(*args)
        self.source = _user_source() if self.names_source_line else None

    def __str__(self):
        msg = super().__str__()
        if self.source and f"at {self.source}" not in msg:
            msg += f"\n  at {self.source}"
        return msg


_HERE = os.path.abspath(__file__)
_FRONT_END = tuple(os.path.join(os.path.dirname(os.path.dirname(_HERE)), p) + os.sep
                   for p in ("autodiff", "sciml"))


def _user_source():
    """The user's line, for errors raised by the IR and the numpy front end (autodiff/,
    sciml/); errors raised elsewhere (solvers, user code) keep their message as it is."""
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename) == _HERE:
        f = f.f_back
    if f is None or not os.path.abspath(f.f_code.co_filename).startswith(_FRONT_END):
        return None
    # Imported late: trace.py imports this module.
    from .trace import user_source

    return user_source()


class ShapeError(SciMLError, ValueError):
    """Operand shapes do not fit an operation.

    Causes: non-broadcastable elementwise operands, a matmul whose contracting dimensions differ,
    a reshape to a different size, a slice or axis outside the array.
    """


class DTypeError(SciMLError, TypeError):
    """An operand has a dtype the operation does not accept.

    Causes: an unsupported dtype (e.g. uint64, object), a float where an integer is required
    (indices, loop bounds), a non-boolean predicate, mismatched carry dtypes in a loop body.
    """


class ArityError(SciMLError, TypeError):
    """A function or graph got the wrong number of arguments or returned the wrong structure."""


class UnsupportedError(SciMLError, NotImplementedError):
    """The operation is not (yet) supported by sciml.

    Causes: a numpy function sciml does not mirror, a primitive without a rule for the
    requested transform or backend. The message names the function and what to use instead.
    """


class TracerError(SciMLError, TypeError):
    """A traced (abstract) value was used where a concrete Python value is needed.

    Causes: Python ``if``/``while``/``bool()``/``int()`` on a traced array, converting a traced
    array to numpy, a tracer that escaped the function being traced. Use ``sciml.cond``,
    ``sciml.while_loop``, ``sciml.fori_loop`` or ``sciml.scan`` instead of Python control flow.
    """


class VerifyError(SciMLError):
    """A graph breaks an IR invariant (SSA, arity, shape/dtype consistency); names the node."""

    names_source_line = False


class NotDifferentiableError(SciMLError, TypeError):
    """Differentiation was asked for where it is not defined.

    Causes: the gradient with respect to an integer or boolean input, a primitive listed as
    non-differentiable, reverse mode through ``while_loop`` without ``max_steps``.
    """


class SerializationError(SciMLError, ValueError):
    """A saved graph cannot be loaded: malformed data, an unknown primitive or version."""

    names_source_line = False
