"""Tracing: running Python code on abstract ``Tracer`` values records a Graph.

``make_graph(f, *example_args)`` traces ``f`` once. While a trace is active, every primitive
applied to a Tracer appends an ``Apply`` node to the innermost ``Builder``; with no Tracer among
the arguments a primitive runs eagerly on numpy arrays. Subgraphs (the bodies of control flow)
are traced by a nested Builder; a Tracer of an outer Builder used inside becomes an explicit
extra parameter of the subgraph (a captured free variable), so every graph is closed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np

from . import dtypes
from .errors import ArityError, DTypeError, SciMLError, TracerError
from .ir import AbstractValue, Apply, Const, Graph, Var, aval_of
from .pytree import tree_flatten, tree_unflatten

_STACK: list[Builder] = []


class Builder:
    """Collects the nodes of one graph under construction."""

    def __init__(self, name: str = "f"):
        self.name = name
        self.params: list[Var] = []
        self.body: list[Apply] = []
        self.capture_vars: list[Var] = []
        self.captured: list = []  # the outer values, parallel to capture_vars
        self._capture_of: dict[int, Var] = {}
        self.allow_capture = True

    def new_param(self, aval: AbstractValue) -> Tracer:
        v = Var(aval)
        self.params.append(v)
        return Tracer(self, v)

    def to_atom(self, x):
        """The atom for ``x`` in this graph: its Var, a captured Var, or a Const."""
        if isinstance(x, Tracer):
            if x.builder is self:
                return x.var
            return self._capture(x)
        if isinstance(x, (Var, Const)):
            return x
        return Const(x, _const_aval(x))

    def _capture(self, t: Tracer) -> Var:
        if t.builder not in _STACK:
            raise TracerError(
                f"a traced value {t.aval} escaped the function that was being traced "
                "(stored in a global or a closure and used later); pass it as an argument instead"
            )
        if id(t) in self._capture_of:
            return self._capture_of[id(t)]
        if not self.allow_capture:
            raise TracerError(
                f"graph function {self.name!r} closes over a traced value {t.aval} of an "
                "enclosing trace; recursive graph functions must take such values as arguments"
            )
        v = Var(t.aval)
        self._capture_of[id(t)] = v
        self.capture_vars.append(v)
        self.captured.append(t)
        return v

    def emit(self, prim, inputs: list, params: dict, out_avals, source: str | None) -> list:
        outs = [Var(a) for a in out_avals]
        self.body.append(Apply(prim, tuple(inputs), dict(params), tuple(outs), source))
        return [Tracer(self, v) for v in outs]

    def build(self, out_atoms: list) -> Graph:
        return Graph(self.params + self.capture_vars, self.body, out_atoms, self.name)


def _const_aval(x) -> AbstractValue:
    try:
        return aval_of(x)
    except TypeError as e:
        raise DTypeError(f"cannot use {type(x).__name__} value {x!r} as an array: {e}") from None


# ---------------------------------------------------------------------------------------------
# Tracer


class Tracer:
    """An abstract array recorded into a Builder; behaves like a numpy array in user code."""

    __slots__ = ("builder", "var")
    __array_priority__ = 1000

    def __init__(self, builder: Builder, var: Var):
        self.builder = builder
        self.var = var

    aval = property(lambda self: self.var.aval)
    shape = property(lambda self: self.var.aval.shape)
    dtype = property(lambda self: self.var.aval.dtype)
    ndim = property(lambda self: self.var.aval.ndim)
    size = property(lambda self: self.var.aval.size)

    def __repr__(self):
        return f"Tracer<{self.aval}>"

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d traced array")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d traced array")
        return (self[i] for i in range(self.shape[0]))

    def _concrete(self, what: str):
        raise TracerError(
            f"{what} of a traced array {self.aval} (at {user_source() or 'unknown line'}): its "
            "value is not known while tracing. Use sciml.cond / sciml.while_loop / "
            "sciml.fori_loop / sciml.scan for control flow on traced values, or mark the "
            "argument static."
        )

    def __bool__(self):
        self._concrete("Python bool() (an if/while/and/or test)")

    def __int__(self):
        self._concrete("int()")

    def __float__(self):
        self._concrete("float()")

    def __complex__(self):
        self._concrete("complex()")

    def __index__(self):
        self._concrete("use as a Python index")

    def __array__(self, *args, **kwargs):
        self._concrete("conversion to a numpy array (np.asarray)")

    def __hash__(self):
        return id(self)

    # numpy protocols: dispatch to the handlers sciml.numpy registers.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return dispatch_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return dispatch_function(func, args, kwargs)


# Operators are attached by autodiff.lax (which knows numpy's broadcasting and promotion).

UFUNC_HANDLERS: dict[str, Callable] = {}
FUNCTION_HANDLERS: dict[Callable, Callable] = {}


def dispatch_ufunc(ufunc, method, inputs, kwargs):
    from .errors import UnsupportedError

    if method != "__call__" or kwargs.get("out") is not None:
        raise UnsupportedError(
            f"numpy ufunc {ufunc.__name__}.{method}"
            + (" with out=" if kwargs.get("out") is not None else "")
            + " is not supported on traced arrays; use the sciml.numpy equivalent"
        )
    handler = UFUNC_HANDLERS.get(ufunc.__name__)
    if handler is None:
        raise UnsupportedError(f"numpy ufunc np.{ufunc.__name__} is not supported by sciml")
    kwargs = {k: v for k, v in kwargs.items() if k != "out"}
    return handler(*inputs, **kwargs)


def dispatch_function(func, args, kwargs):
    from .errors import UnsupportedError

    handler = FUNCTION_HANDLERS.get(func)
    if handler is None:
        raise UnsupportedError(
            f"numpy function np.{func.__name__} is not supported on traced arrays by sciml; "
            "see sciml.numpy for the supported functions"
        )
    return handler(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# bind: the one entry point every primitive goes through


def bind(prim, *args, **params):
    """Apply ``prim``: record a node if any argument is traced, else run its numpy impl."""
    # Nullary primitives (iota, random) record into an active trace so that large arrays are
    # not baked into the graph as constants.
    if not any(isinstance(a, Tracer) for a in args) and (args or not _STACK):
        return _eager(prim, args, params)
    builder = current_builder()
    inputs = [builder.to_atom(a) for a in args]
    source = user_source()
    out = _abstract_eval(prim, [a.aval for a in inputs], params)
    outs = builder.emit(prim, inputs, params, out if prim.multiple_results else [out], source)
    return tuple(outs) if prim.multiple_results else outs[0]


def _eager(prim, args, params):
    arrays = [np.asarray(a) if not isinstance(a, np.ndarray) else a for a in args]
    avals = [aval_of(a) for a in args]
    out = _abstract_eval(prim, avals, params)
    result = prim.impl(*arrays, **params)
    if prim.multiple_results:
        return tuple(_coerce(r, a) for r, a in zip(result, out))
    return _coerce(result, out)


def _abstract_eval(prim, avals, params):
    """The primitive's shape/dtype rule; a wrong operand count or parameter is an ArityError."""
    try:
        return prim.abstract_eval(*avals, **params)
    except SciMLError as e:
        raise type(e)(str(e)) from None  # the message already names the user's line
    except TypeError as e:
        if "argument" not in str(e):
            raise
        raise ArityError(
            f"{prim.name}: called with {len(avals)} operand(s) "
            f"({', '.join(str(a) for a in avals)}) and parameters {sorted(params)}: {e}"
        ) from None


def _coerce(value, aval: AbstractValue):
    arr = np.asarray(value)
    if arr.dtype != aval.dtype:
        arr = arr.astype(aval.dtype)
    return arr


def current_builder() -> Builder:
    if not _STACK:
        raise TracerError("a traced value was used outside of any trace (it escaped its function)")
    return _STACK[-1]


def is_tracing() -> bool:
    return bool(_STACK)


def is_traced(x) -> bool:
    return isinstance(x, Tracer)


# ---------------------------------------------------------------------------------------------
# Source lines for error messages

_INTERNAL = tuple(
    os.path.dirname(os.path.abspath(m)) + os.sep
    for m in (
        __file__,
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sciml", "x"),
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels", "x"),
        np.__file__,
    )
)


def user_source() -> str | None:
    """``file:line`` of the innermost frame outside sciml's own packages and numpy."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_INTERNAL) and not fn.startswith("<frozen"):
            return f"{os.path.basename(fn)}:{f.f_lineno}"
        f = f.f_back
    return None


# ---------------------------------------------------------------------------------------------
# Tracing functions into graphs


def trace_flat(fn: Callable, in_avals, name: str = "f", allow_capture: bool = True):
    """Trace ``fn(*tracers)`` into a Graph.

    Returns ``(graph, captured, out_tree)``: ``graph.params`` is the explicit parameters followed
    by one parameter per captured outer value; ``captured`` lists those outer values.
    """
    b = Builder(name)
    b.allow_capture = allow_capture
    _STACK.append(b)
    try:
        tracers = [b.new_param(a) for a in in_avals]
        out = fn(*tracers)
        leaves, out_tree = tree_flatten(out)
        atoms = [b.to_atom(x) for x in leaves]
    finally:
        _STACK.pop()
    return b.build(atoms), b.captured, out_tree


def abstractify(x) -> AbstractValue:
    """The AbstractValue of an example argument (array, scalar, Tracer or AbstractValue)."""
    if isinstance(x, AbstractValue):
        return x
    if isinstance(x, Tracer):
        return x.aval
    if hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, np.ndarray | np.generic):
        return AbstractValue(tuple(x.shape), dtypes.check_supported(x.dtype, "argument"))
    try:
        return aval_of(x)
    except (TypeError, ValueError) as e:
        raise DTypeError(
            f"argument {x!r} of type {type(x).__name__} is not an array: {e}"
        ) from None


def make_graph(f: Callable, *example_args, name: str | None = None) -> Graph:
    """Trace ``f`` on the shapes and dtypes of ``example_args`` (pytrees) into a Graph.

    >>> import numpy as np
    >>> g = make_graph(lambda x: np.sin(x) * 2.0, np.zeros(3))
    >>> print(g)
    graph <lambda>(a:f64[3]) {
      b:f64[3] = sin a
      c:f64[3] = mul b 2.0:f64[]
      return c
    }
    """
    leaves, in_tree = tree_flatten(example_args)
    avals = [abstractify(x) for x in leaves]
    name = name or getattr(f, "__name__", "f")

    def flat_fn(*xs):
        return f(*tree_unflatten(in_tree, xs))

    graph, captured, out_tree = trace_flat(flat_fn, avals, name)
    if captured:
        # Top-level graphs close over tracers only when traced inside another trace; keep the
        # captured values as trailing parameters and remember them for the caller.
        graph.meta["captured"] = captured
    graph.meta["in_tree"] = in_tree
    graph.meta["out_tree"] = out_tree
    return graph
