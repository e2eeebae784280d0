"""The primitive table: one ``Primitive`` per operation, declared once.

A declaration gives the name, the shape/dtype rule (``abstract_eval``) and the numpy reference
implementation (``impl``). Each transform keeps its own table of rules keyed by primitive name
(``autodiff.jvp.JVP_RULES``, ``autodiff.transpose.TRANSPOSE_RULES``, ``autodiff.batching``,
``autodiff.taylor``, ``kernels`` templates); tests iterate over ``PRIMITIVES`` so a primitive
without its rules is caught.

Extension API (documented in docs/ir.md)::

    from autodiff.primitives import def_primitive
    square = def_primitive("square", abstract_eval=lambda x: x, impl=lambda x: x * x)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

PRIMITIVES: dict[str, Primitive] = {}


@dataclass(eq=False)
class Primitive:
    """A named operation of the IR.

    ``abstract_eval(*avals, **params)`` returns the output AbstractValue (or a tuple of them when
    ``multiple_results``); it raises ShapeError/DTypeError naming the problem.
    ``impl(*arrays, **params)`` is the numpy reference implementation used by the interpreter.
    ``differentiable=False`` lists the primitive explicitly as having no derivative (its outputs
    are integers/booleans or it is piecewise constant).
    """

    name: str
    abstract_eval: Callable
    impl: Callable
    multiple_results: bool = False
    differentiable: bool = True
    family: str = "misc"
    doc: str = ""
    # Free-form properties a pass may use: "elementwise", "commutative", "effect", ...
    tags: frozenset = field(default_factory=frozenset)

    def bind(self, *args, **params):
        from .trace import bind

        return bind(self, *args, **params)

    def __call__(self, *args, **params):
        return self.bind(*args, **params)

    def __repr__(self):
        return f"<primitive {self.name}>"


def def_primitive(
    name: str,
    abstract_eval: Callable,
    impl: Callable,
    *,
    multiple_results: bool = False,
    differentiable: bool = True,
    family: str = "misc",
    tags=(),
    doc: str = "",
) -> Primitive:
    """Declare a primitive and add it to the table. Names are unique."""
    if name in PRIMITIVES:
        raise ValueError(f"primitive {name!r} is already declared")
    prim = Primitive(
        name, abstract_eval, impl, multiple_results, differentiable, family, doc, frozenset(tags)
    )
    PRIMITIVES[name] = prim
    return prim


def get(name: str) -> Primitive:
    from .errors import UnsupportedError

    _load_table()
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise UnsupportedError(f"unknown primitive {name!r}") from None


def _load_table():
    # Importing the ops package declares every primitive.
    from . import ops  # noqa: F401
