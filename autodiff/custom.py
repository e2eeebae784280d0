"""User-defined derivative rules: ``custom_jvp`` and ``custom_vjp`` (JAX's API).

``custom_jvp(f)`` with ``@f.defjvp`` gives f a forward rule ``jvp_rule(primals, tangents) ->
(out, tangent_out)``; reverse mode transposes it, so the tangent output must be linear in the
tangents (as every natural rule is). ``custom_vjp(f)`` with ``f.defvjp(fwd, bwd)`` gives f a
reverse rule: ``fwd(*args) -> (out, residuals)``, ``bwd(residuals, cotangent) -> tuple of one
cotangent per argument`` (None for zero). Forward mode through a custom_vjp function raises
UnsupportedError, as in JAX.

Both trace f, the rule functions and their closures into graphs held by one node
(``custom_jvp_call`` / ``custom_vjp_call``); evaluating the node runs f. Differentiating with
respect to a traced value that f closes over (instead of taking it as an argument) raises
UnsupportedError.

>>> import numpy as np, sciml
>>> from autodiff.api import grad
>>> @custom_jvp
... def logsumexp(x):
...     m = np.max(x)
...     return m + np.log(np.sum(np.exp(x - m)))
>>> @logsumexp.defjvp
... def _(primals, tangents):
...     (x,), (t,) = primals, tangents
...     y = logsumexp(x)
...     return y, np.sum(np.exp(x - y) * t)
>>> grad(logsumexp)(np.array([1000.0, 1000.0]))
array([0.5, 0.5])
"""

from __future__ import annotations

import numpy as np

from .errors import ArityError, UnsupportedError
from .ir import AbstractValue
from .jvp import JVP_RULES, has_tangent
from .ops.control import _call_impl
from .primitives import PRIMITIVES, def_primitive
from .pytree import tree_flatten, tree_unflatten
from .trace import Tracer, abstractify, bind, is_tracing, trace_flat
from .transpose import TRANSPOSE_RULES, _inst_zeros, eval_in_trace, is_linear

P = PRIMITIVES


def _out_rule(*avals, graph, **_):
    return tuple(graph.out_avals)


def _impl(*args, graph, n_in, **_):
    return _call_impl(*args[:n_in], graph=graph)


custom_jvp_call_p = def_primitive(
    "custom_jvp_call", _out_rule, _impl, multiple_results=True, family="control",
    doc="A call of a function with a user JVP rule (params: graph, jvp_graph).")
custom_vjp_call_p = def_primitive(
    "custom_vjp_call", _out_rule, _impl, multiple_results=True, family="control",
    doc="A call of a function with user fwd/bwd rules (params: graph, fwd_graph, bwd_graph).")


def _lin_rule(*avals, bwd_graph, num_res, num_bcaps, out_avals):
    return tuple(out_avals)


def _lin_impl(*args, **params):
    raise UnsupportedError(
        "forward-mode differentiation (jvp, jacfwd, hessian) of a custom_vjp function is not "
        "supported; give the function a custom_jvp rule instead"
    )


custom_vjp_lin_p = def_primitive(
    "custom_vjp_lin", _lin_rule, _lin_impl, multiple_results=True, family="control",
    doc="The linear map of a custom_vjp function at a point; its transpose is the user's bwd.")


def _trace_fn(fn, avals, name):
    return trace_flat(fn, avals, name)


def _leaves(args):
    leaves, tree = tree_flatten(tuple(args))
    return leaves, tree, [abstractify(x) for x in leaves]


class custom_jvp:  # noqa: N801  (JAX's name)
    """A function with a user-defined JVP rule (see the module docstring)."""

    def __init__(self, fun):
        self.fun = fun
        self.jvp_rule = None
        self._in_rule = 0
        self.__name__ = getattr(fun, "__name__", "custom_jvp")
        self.__doc__ = getattr(fun, "__doc__", None)

    def defjvp(self, rule):
        self.jvp_rule = rule
        return rule

    def __call__(self, *args):
        if self.jvp_rule is None:
            raise UnsupportedError(f"custom_jvp {self.__name__}: no rule; use @f.defjvp")
        leaves, tree, avals = _leaves(args)
        # Inside its own rule (y = f(x) in the rule) f is the plain function.
        if self._in_rule or not is_tracing() and not any(isinstance(x, Tracer) for x in leaves):
            return self.fun(*args)
        g, caps, out_tree = _trace_fn(lambda *xs: self.fun(*tree_unflatten(tree, xs)), avals,
                                      self.__name__)
        t_avals = [a.strong() for a in avals]

        def rule(*xs):
            n = len(avals)
            primals = tree_unflatten(tree, xs[:n])
            tangents = tree_unflatten(tree, xs[n:])
            self._in_rule += 1
            try:
                out, tout = self.jvp_rule(primals, tangents)
            finally:
                self._in_rule -= 1
            return list(tree_flatten(out)[0]) + list(tree_flatten(tout)[0])

        jg, jcaps, _ = _trace_fn(rule, avals + t_avals, f"jvp_{self.__name__}")
        outs = bind(custom_jvp_call_p, *leaves, *caps, *jcaps, graph=g, jvp_graph=jg,
                    n_in=len(leaves) + len(caps), n_args=len(leaves))
        return tree_unflatten(out_tree, list(outs))


def _no_closure_tangents(name, tangents, n_args):
    if any(t is not None for t in tangents[n_args:]):
        raise UnsupportedError(
            f"{name}: the function closes over a traced value that is being differentiated; "
            "pass that value as an argument instead"
        )


def _jvp_custom_jvp(primals, tangents, *, graph, jvp_graph, n_in, n_args):
    _no_closure_tangents("custom_jvp", tangents[:n_in], n_args)
    args = list(primals[:n_args])
    ts = [np.zeros(abstractify(x).shape, abstractify(x).strong().dtype) if t is None else t
          for x, t in zip(args, tangents[:n_args])]
    res = eval_in_trace(jvp_graph, args + ts + list(primals[n_in:]))
    n_out = len(graph.outputs)
    return res[:n_out], [t if has_tangent(a) else None
                         for t, a in zip(res[n_out:], graph.out_avals)]


JVP_RULES["custom_jvp_call"] = _jvp_custom_jvp


class custom_vjp:  # noqa: N801  (JAX's name)
    """A function with user-defined forward and backward rules (see the module docstring)."""

    def __init__(self, fun):
        self.fun = fun
        self.fwd = self.bwd = None
        self.__name__ = getattr(fun, "__name__", "custom_vjp")
        self.__doc__ = getattr(fun, "__doc__", None)

    def defvjp(self, fwd, bwd):
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args):
        if self.fwd is None:
            raise UnsupportedError(f"custom_vjp {self.__name__}: no rule; use f.defvjp(fwd, bwd)")
        leaves, tree, avals = _leaves(args)
        if not is_tracing() and not any(isinstance(x, Tracer) for x in leaves):
            return self.fun(*args)
        name = self.__name__
        g, caps, out_tree = _trace_fn(lambda *xs: self.fun(*tree_unflatten(tree, xs)), avals,
                                      name)
        holder = {}

        def fwd(*xs):
            out, res = self.fwd(*tree_unflatten(tree, xs))
            r_leaves, holder["res_tree"] = tree_flatten(res)
            return list(tree_flatten(out)[0]) + list(r_leaves)

        fg, fcaps, _ = _trace_fn(fwd, avals, f"fwd_{name}")
        n_out = len(g.outputs)
        res_avals = fg.out_avals[n_out:]
        ct_avals = [a.strong() for a in g.out_avals]

        def bwd(*xs):
            res = tree_unflatten(holder["res_tree"], xs[:len(res_avals)])
            ct = tree_unflatten(out_tree, xs[len(res_avals):])
            got = self.bwd(res, ct)
            if not isinstance(got, tuple) or len(got) != len(args):
                raise ArityError(f"custom_vjp {name}: bwd must return a tuple with one "
                                 f"cotangent per argument ({len(args)})")
            return _flat_cts(got, args)

        bg, bcaps, _ = _trace_fn(bwd, list(res_avals) + ct_avals, f"bwd_{name}")
        outs = bind(custom_vjp_call_p, *leaves, *caps, *fcaps, *bcaps, graph=g, fwd_graph=fg,
                    bwd_graph=bg, n_in=len(leaves) + len(caps), n_args=len(leaves),
                    n_fcaps=len(fcaps))
        return tree_unflatten(out_tree, list(outs))


def _flat_cts(got, args):
    flat = []
    for g_arg, a in zip(got, args):
        a_leaves, _ = tree_flatten(a)
        if g_arg is None:
            flat += [np.zeros(abstractify(x).shape, abstractify(x).strong().dtype)
                     for x in a_leaves]
        else:
            flat += list(tree_flatten(g_arg)[0])
    return flat


def _jvp_custom_vjp(primals, tangents, *, graph, fwd_graph, bwd_graph, n_in, n_args, n_fcaps):
    _no_closure_tangents("custom_vjp", tangents[:n_in], n_args)
    args = list(primals[:n_args])
    fcaps = list(primals[n_in:n_in + n_fcaps])
    bcaps = list(primals[n_in + n_fcaps:])
    vals = eval_in_trace(fwd_graph, args + fcaps)
    n_out = len(graph.outputs)
    outs, res = vals[:n_out], vals[n_out:]
    ts = [np.zeros(abstractify(x).shape, abstractify(x).strong().dtype) if t is None else t
          for x, t in zip(args, tangents[:n_args])]
    out_avals = tuple(AbstractValue(a.shape, a.dtype) for a in graph.out_avals)
    touts = bind(custom_vjp_lin_p, *res, *bcaps, *ts, bwd_graph=bwd_graph,
                 num_res=len(res) + len(bcaps), num_bcaps=len(bcaps), out_avals=out_avals)
    return outs, [t if has_tangent(a) else None for t, a in zip(touts, graph.out_avals)]


JVP_RULES["custom_vjp_call"] = _jvp_custom_vjp


def _jvp_lin(primals, tangents, **params):
    return _lin_impl()


JVP_RULES["custom_vjp_lin"] = _jvp_lin


def _t_lin(cts, *args, bwd_graph, num_res, num_bcaps, out_avals):
    res = list(args[:num_res])
    if any(is_linear(r) for r in res):
        raise UnsupportedError("custom_vjp: residuals depend on tangents (nested forward mode)")
    cts = _inst_zeros(cts, out_avals)
    # bwd graph parameters: (*residuals, *cotangents, *captures); captures are the tail of res.
    r_main, r_caps = res[:num_res - num_bcaps], res[num_res - num_bcaps:]
    got = eval_in_trace(bwd_graph, r_main + list(cts) + r_caps)
    return [None] * num_res + [g if is_linear(a) else None
                               for g, a in zip(got, args[num_res:])]


TRANSPOSE_RULES["custom_vjp_lin"] = _t_lin


def _register_batching():
    try:
        from .batching import BATCH_RULES, batch_graph
    except ImportError:
        return

    def as_call(size, args, batched, *, graph, n_in, **_):
        new, flags = batch_graph(graph, list(batched[:n_in]), size)
        # The custom rule does not survive vmap: the batched node is a plain call.
        return list(bind(P["call"], *args[:n_in], graph=new)), flags

    BATCH_RULES["custom_jvp_call"] = as_call
    BATCH_RULES["custom_vjp_call"] = as_call


_register_batching()
