"""sympy expressions as traced functions: ``from_sympy(expr, args)``.

The expression tree is translated node by node into ``sciml.numpy`` calls, so the result runs
eagerly on arrays, traces into the IR under ``make_graph``/``jit`` and differentiates with
sciml's transforms. Repeated subexpressions are translated once.

>>> import sympy as sp, numpy as np
>>> x, y = sp.symbols("x y")
>>> f = from_sympy(sp.sin(x) * y + sp.Rational(1, 2), [x, y])
>>> float(f(np.pi / 2, 3.0))
3.5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

from autodiff.errors import UnsupportedError

from . import numpy as snp

# sympy function class -> sciml.numpy function (unary).
_UNARY: dict[type, Callable] = {
    sp.sin: snp.sin, sp.cos: snp.cos, sp.tan: snp.tan, sp.exp: snp.exp, sp.log: snp.log,
    sp.tanh: snp.tanh, sp.sinh: snp.sinh, sp.cosh: snp.cosh, sp.asin: snp.arcsin,
    sp.acos: snp.arccos, sp.atan: snp.arctan, sp.asinh: snp.arcsinh, sp.acosh: snp.arccosh,
    sp.atanh: snp.arctanh, sp.erf: snp.erf, sp.Abs: snp.abs, sp.sign: snp.sign,
    sp.floor: snp.floor, sp.ceiling: snp.ceil, sp.re: snp.real, sp.im: snp.imag,
    sp.conjugate: snp.conj,
}

_RELATIONAL = {
    sp.StrictLessThan: snp.less, sp.LessThan: snp.less_equal,
    sp.StrictGreaterThan: snp.greater, sp.GreaterThan: snp.greater_equal,
    sp.Equality: snp.equal, sp.Unequality: snp.not_equal,
}


class SympyFunction:
    """A sympy expression as a callable over arrays; ``.graph(*examples)`` gives its IR."""

    def __init__(self, expr, args: Sequence, name: str = "sympy_fn"):
        self.expr = sp.sympify(expr)
        self.args = list(args)
        self.__name__ = name
        _check_free_symbols(self.expr, self.args)

    def __call__(self, *values):
        if len(values) != len(self.args):
            raise TypeError(
                f"{self.__name__} takes {len(self.args)} arguments "
                f"({', '.join(map(str, self.args))}), got {len(values)}"
            )
        env = {a: v for a, v in zip(self.args, values)}
        return _Translator(env).visit(self.expr)

    def graph(self, *examples):
        from autodiff.trace import make_graph

        return make_graph(self, *examples, name=self.__name__)

    def __repr__(self):
        return f"SympyFunction({self.expr}, args={self.args})"


def from_sympy(expr, args: Sequence, name: str = "sympy_fn") -> SympyFunction:
    """Turn ``expr`` into a function of ``args`` (sympy Symbols or applied Functions such as
    ``u(t, x)``) that works on arrays and traced values."""
    if isinstance(args, (sp.Basic, str)):
        args = [args]
    args = [sp.Symbol(a) if isinstance(a, str) else a for a in args]
    return SympyFunction(expr, args, name)


def _check_free_symbols(expr, args):
    known = set()
    for a in args:
        known.add(a)
    free = {s for s in expr.free_symbols if s not in known}
    # An applied function u(t, x) given as an argument covers its own symbols.
    applied = [a for a in args if isinstance(a, sp.core.function.AppliedUndef)]
    covered = set().union(*[a.free_symbols for a in applied]) if applied else set()
    undef = {f for f in expr.atoms(sp.core.function.AppliedUndef) if f not in known}
    missing = sorted(map(str, (free - covered) | undef))
    if missing:
        raise UnsupportedError(
            f"from_sympy: {', '.join(missing)} appear in {expr} but are not among the "
            f"arguments {list(map(str, args))}; pass them as arguments (or substitute values)"
        )


class _Translator:
    def __init__(self, env: dict):
        self.env = env
        self.memo: dict = {}

    def visit(self, e):
        if e in self.env:
            return self.env[e]
        if e in self.memo:
            return self.memo[e]
        out = self._visit(e)
        self.memo[e] = out
        return out

    def _visit(self, e):
        if e.is_Number or e in (sp.pi, sp.E) or isinstance(e, sp.NumberSymbol):
            return _number(e)
        if e is sp.true or e is sp.false:
            return bool(e)
        if isinstance(e, sp.Add):
            terms = [self.visit(a) for a in e.args]
            out = terms[0]
            for t in terms[1:]:
                out = out + t
            return out
        if isinstance(e, sp.Mul):
            return self._mul(e)
        if isinstance(e, sp.Pow):
            return self._pow(e)
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e)
        if isinstance(e, (sp.Min, sp.Max)):
            fn = snp.minimum if isinstance(e, sp.Min) else snp.maximum
            vals = [self.visit(a) for a in e.args]
            out = vals[0]
            for v in vals[1:]:
                out = fn(out, v)
            return out
        if isinstance(e, sp.atan2):
            return snp.arctan2(self.visit(e.args[0]), self.visit(e.args[1]))
        if isinstance(e, sp.Heaviside):
            h0 = self.visit(e.args[1]) if len(e.args) > 1 else 0.5
            return snp.heaviside(self.visit(e.args[0]), h0)
        if type(e) in _RELATIONAL:
            return _RELATIONAL[type(e)](self.visit(e.lhs), self.visit(e.rhs))
        if isinstance(e, (sp.And, sp.Or)):
            fn = snp.logical_and if isinstance(e, sp.And) else snp.logical_or
            vals = [self.visit(a) for a in e.args]
            out = vals[0]
            for v in vals[1:]:
                out = fn(out, v)
            return out
        if isinstance(e, sp.Not):
            return snp.logical_not(self.visit(e.args[0]))
        if e.func in _UNARY:
            return _UNARY[e.func](self.visit(e.args[0]))
        if isinstance(e, sp.Symbol):
            raise UnsupportedError(f"from_sympy: symbol {e} has no value (not an argument)")
        raise UnsupportedError(
            f"from_sympy: sympy node {type(e).__name__} ({e}) is not supported; supported are "
            "arithmetic, powers, Piecewise, Min/Max, relationals and the elementwise functions "
            "of the primitive table"
        )

    def _mul(self, e):
        num, den = [], []
        for a in e.args:
            if isinstance(a, sp.Pow) and a.exp.is_Number and a.exp < 0 and a.exp != -sp.S.Half:
                den.append(self.visit(sp.Pow(a.base, -a.exp)))
            else:
                num.append(self.visit(a))
        out = num[0] if num else 1.0
        for v in num[1:]:
            out = out * v
        for v in den:
            out = out / v
        return out

    def _pow(self, e):
        base, exp = e.args
        b = self.visit(base)
        if exp.is_Integer:
            n = int(exp)
            return snp.power(b, n) if n >= 0 else 1.0 / snp.power(b, -n)
        if exp == sp.S.Half:
            return snp.sqrt(b)
        if exp == -sp.S.Half:
            return 1.0 / snp.sqrt(b)
        if base == sp.E:
            return snp.exp(self.visit(exp))
        return snp.power(b, self.visit(exp))

    def _piecewise(self, e):
        out = None
        for expr, cond in reversed(e.args):
            val = self.visit(expr)
            if cond is sp.true:
                out = val
                continue
            if out is None:
                out = val * float("nan")  # no branch applies: NaN, as sympy leaves it undefined
            out = snp.where(self.visit(cond), val, out)
        return out


def _number(e):
    if e.is_Integer:
        return int(e)
    if e.is_real:
        return float(e)
    return complex(e)


def lambdify_numpy(expr, args):
    """Reference evaluation with sympy's own numpy printer (used by tests as an oracle)."""
    return sp.lambdify(args, expr, modules=["numpy", {"erf": _erf}])


def _erf(x):
    import scipy.special

    return scipy.special.erf(np.asarray(x, dtype=float))
