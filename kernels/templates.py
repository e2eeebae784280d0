"""Scalar expression templates: how each primitive prints inside a kernel, per target.

A template is a format string over the operand expressions ``{0}``, ``{1}``, ... and the node's
params by name (``{y}``), or a function ``(args, params, dtype) -> str`` where the string form
is not enough. ``BASE`` holds the forms that C-like and Python-like targets share (infix
arithmetic, calls by their libm names); a target is ``BASE`` merged with its overrides, and a
``(primitive, dtype)`` key overrides the plain ``primitive`` key for that compute dtype::

    >>> table = merged(BASE, {"exp": "np.exp({0})"})
    >>> render(table, "exp", ["x"], {}, "float64")
    'np.exp(x)'
    >>> render(table, "add", ["a", "b"], {}, "float64")
    '(a + b)'

``TEMPLATE_VERSION`` enters the structural hash of every kernel: bump it when a change in a
template is not visible in the kernel source itself.
"""

from __future__ import annotations

from autodiff.errors import UnsupportedError

TEMPLATE_VERSION = 1

BASE: dict = {
    "neg": "(-{0})",
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / {1})",
    "eq": "({0} == {1})",
    "ne": "({0} != {1})",
    "lt": "({0} < {1})",
    "le": "({0} <= {1})",
    "gt": "({0} > {1})",
    "ge": "({0} >= {1})",
    "and": "({0} & {1})",
    "or": "({0} | {1})",
    "xor": "({0} ^ {1})",
    "stop_gradient": "{0}",
    "exp": "exp({0})",
    "log": "log({0})",
    "sqrt": "sqrt({0})",
    "sin": "sin({0})",
    "cos": "cos({0})",
    "tan": "tan({0})",
    "tanh": "tanh({0})",
}


def merged(base: dict, *overrides: dict) -> dict:
    """A target's table: ``base`` updated by each override dict in turn (later ones win)."""
    out = dict(base)
    for o in overrides:
        out.update(o)
    return out


def lookup(table: dict, prim: str, dtype: str):
    """The template for ``prim`` at compute dtype ``dtype``, or None when the target has none."""
    return table.get((prim, dtype), table.get(prim))


def render(table: dict, prim: str, args: list[str], params: dict, dtype: str) -> str:
    """Print one scalar operation; UnsupportedError when the table has no template for it."""
    t = lookup(table, prim, dtype)
    if t is None:
        raise UnsupportedError(f"kernel templates: no template for {prim} at dtype {dtype}")
    if callable(t):
        return t(args, params, dtype)
    return t.format(*args, **params)


def integer_pow(args, params, dtype) -> str:
    """``x ** y`` by repeated squaring, the order the numpy reference multiplies in."""
    (x,), y = args, int(params["y"])
    if y == 0:
        return f"{_one(dtype)}"
    acc, base, n = None, x, abs(y)
    while n:
        if n & 1:
            acc = base if acc is None else f"({acc} * {base})"
        n >>= 1
        if n:
            base = f"({base} * {base})"
    return acc if y > 0 else f"({_one(dtype)} / {acc})"


def _one(dtype: str) -> str:
    return "1.0" if dtype.startswith(("float", "complex")) else "1"
