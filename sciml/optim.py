"""Optimizers as pure functions over parameter pytrees.

Every first-order optimizer has ``state = opt.init(params)`` and
``params, state = opt.update(grads, state, params)``; both are written with traced numpy, so an
update runs eagerly or inside a compiled training step. ``lr`` is a float or a function of the
step count (an int32 scalar, starting at 0).

- ``SGD(lr, weight_decay)``, ``Momentum(lr, momentum, nesterov)``,
- ``Adam(lr, beta1, beta2, eps, weight_decay)`` (L2 added to the gradient) and ``AdamW``
  (decoupled weight decay, Loshchilov and Hutter 2019),
- ``LBFGS``: full-batch quasi-Newton with a backtracking (Armijo) line search, for PINNs; it
  calls the objective itself: ``params, info = LBFGS().minimize(value_and_grad_fn, params)``,
- ``THOR``: a Kronecker-factored curvature method (K-FAC, Martens and Grosse 2015, with the
  convolution factors of Grosse and Martens 2016) in the spirit of MindSpore's THOR: for every
  Dense/Conv layer, F ~ A (x) G with A = E[a a^T] of the layer inputs and G = E[g g^T] of the
  gradients w.r.t. its outputs; the update G^-1 dW A^-1 with damping, the inverses refreshed
  every ``frequency`` steps, then momentum. It needs the layer taps and so runs through
  ``THOR.step`` (see ``sciml.nn.thor``).

>>> import numpy as np
>>> opt = Momentum(0.1, 0.9)
>>> p = {"w": np.ones(2, np.float32)}
>>> s = opt.init(p)
>>> p, s = opt.update({"w": np.ones(2, np.float32)}, s, p)
>>> p["w"]
array([0.9, 0.9], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from autodiff import lax
from autodiff.errors import SciMLError
from autodiff.pytree import tree_flatten, tree_leaves, tree_map, tree_unflatten
from autodiff.trace import abstractify

from . import numpy as snp


def _lr(lr, step, like):
    v = lr(step) if callable(lr) else lr
    # A Python float stays weak (keeps the parameter dtype); arrays are cast to it.
    return v if type(v) in (float, int) else lax.convert_element_type(v, abstractify(like).dtype)


def _check(op, grads, params):
    gl, gt = tree_flatten(grads)
    pl, pt = tree_flatten(params)
    if gt != pt:
        raise SciMLError(f"{op}.update: gradient tree {gt} does not match parameter tree {pt}")
    for g, p in zip(gl, pl):
        ga, pa = abstractify(g), abstractify(p)
        if ga.shape != pa.shape:
            raise SciMLError(f"{op}.update: gradient shape {ga.shape} != parameter {pa.shape}")


def _like(g, p):
    return lax.convert_element_type(g, abstractify(p).dtype)


class SGD:
    """p <- p - lr (g + weight_decay p)."""

    def __init__(self, lr=0.01, weight_decay=0.0):
        self.lr, self.weight_decay = lr, weight_decay

    def init(self, params):
        return {"step": np.int32(0)}

    def _grad(self, g, p):
        g = _like(g, p)
        return g + self.weight_decay * p if self.weight_decay else g

    def update(self, grads, state, params):
        _check(type(self).__name__, grads, params)
        step = state["step"]
        new = tree_map(lambda g, p: p - _lr(self.lr, step, p) * self._grad(g, p), grads, params)
        return new, {"step": step + 1}


class Momentum(SGD):
    """v <- momentum v + g; p <- p - lr v (Nesterov: p <- p - lr (g + momentum v))."""

    def __init__(self, lr=0.01, momentum=0.9, nesterov=False, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.momentum, self.nesterov = momentum, nesterov

    def init(self, params):
        return {"step": np.int32(0), "v": tree_map(lambda p: np.zeros_like(p), params)}

    def update(self, grads, state, params):
        _check(type(self).__name__, grads, params)
        step, m = state["step"], self.momentum
        gs = tree_map(self._grad, grads, params)
        v = tree_map(lambda v, g: m * v + g, state["v"], gs)
        d = tree_map(lambda v, g: g + m * v, v, gs) if self.nesterov else v
        new = tree_map(lambda p, d: p - _lr(self.lr, step, p) * d, params, d)
        return new, {"step": step + 1, "v": v}


class Adam(SGD):
    """Adam (Kingma and Ba 2015) with bias correction; ``weight_decay`` is L2 on the gradient."""

    decoupled = False

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def init(self, params):
        z = tree_map(lambda p: np.zeros_like(p), params)
        return {"step": np.int32(0), "m": z, "v": tree_map(np.copy, z)}

    def update(self, grads, state, params):
        _check(type(self).__name__, grads, params)
        b1, b2, step = self.beta1, self.beta2, state["step"]
        gs = grads if self.decoupled else tree_map(self._grad, grads, params)
        gs = tree_map(_like, gs, params)
        m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], gs)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], gs)
        new = tree_map(lambda p, m, v: self._apply(p, m, v, step), params, m, v)
        return new, {"step": step + 1, "m": m, "v": v}

    def _apply(self, p, m, v, step):
        lr = _lr(self.lr, step, p)
        dt = abstractify(p).dtype
        t = snp.astype(step + 1, dt)   # bias corrections in the parameter's dtype
        c1, c2 = 1 - snp.power(dt.type(self.beta1), t), 1 - snp.power(dt.type(self.beta2), t)
        # lr mhat / (sqrt(vhat) + eps) with the corrections folded into two scalars: the
        # same value with three fewer passes over each parameter array.
        r2 = snp.sqrt(c2)
        d = m / (snp.sqrt(v) + self.eps * r2)
        step_size = lr * r2 / c1
        if self.decoupled and self.weight_decay:
            return p - lr * self.weight_decay * p - step_size * d
        return p - step_size * d


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p - lr (mhat / (sqrt(vhat) + eps) + wd p)."""

    decoupled = True

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps, weight_decay)


# ---------------------------------------------------------------------------------------------
# L-BFGS


def _flat(tree):
    leaves, t = tree_flatten(tree)
    shapes = [np.shape(x) for x in leaves]
    vec = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in leaves])
    return vec, (t, shapes, [np.asarray(x).dtype for x in leaves])


def _unflat(vec, meta):
    t, shapes, dts = meta
    out, i = [], 0
    for s, d in zip(shapes, dts):
        n = int(np.prod(s))
        out.append(vec[i:i + n].reshape(s).astype(d))
        i += n
    return tree_unflatten(t, out)


class LBFGS:
    """Limited-memory BFGS (Nocedal and Wright, Alg. 7.4) over a parameter pytree.

    ``minimize(fun, params)`` where ``fun(params) -> (value, grads)`` (e.g. a compiled
    ``value_and_grad``). Arithmetic is float64 on the flattened parameters; the line search
    backtracks from step 1 until the Armijo condition holds. Returns ``(params, info)`` with the
    loss history.
    """

    def __init__(self, history=20, max_iter=500, tol=1e-10, c1=1e-4, max_backtrack=30):
        self.history, self.max_iter, self.tol = history, max_iter, tol
        self.c1, self.max_backtrack = c1, max_backtrack

    def minimize(self, fun, params):
        x, meta = _flat(params)

        def f(v):
            val, g = fun(_unflat(v, meta))
            return float(val), _flat(g)[0]

        fx, g = f(x)
        s_hist, y_hist, losses = [], [], [fx]
        for _ in range(self.max_iter):
            if np.linalg.norm(g, np.inf) < self.tol:
                break
            d = -self._two_loop(g, s_hist, y_hist)
            if g @ d >= 0:  # not a descent direction: restart from steepest descent
                d, s_hist, y_hist = -g, [], []
            x1, fx1, g1, ok = self._line_search(f, x, fx, g, d)
            if not ok:
                break
            s, y = x1 - x, g1 - g
            if s @ y > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):
                s_hist, y_hist = (s_hist + [s])[-self.history:], (y_hist + [y])[-self.history:]
            x, fx, g = x1, fx1, g1
            losses.append(fx)
        return _unflat(x, meta), {"loss": losses, "iterations": len(losses) - 1}

    @staticmethod
    def _two_loop(g, s_hist, y_hist):
        q, alphas = g.copy(), []
        for s, y in zip(reversed(s_hist), reversed(y_hist)):
            a = (s @ q) / (y @ s)
            q -= a * y
            alphas.append(a)
        if s_hist:
            q *= (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
        for (s, y), a in zip(zip(s_hist, y_hist), reversed(alphas)):
            q += (a - (y @ q) / (y @ s)) * s
        return q

    def _line_search(self, f, x, fx, g, d):
        t, slope = 1.0, g @ d
        for _ in range(self.max_backtrack):
            x1 = x + t * d
            fx1, g1 = f(x1)
            if np.isfinite(fx1) and fx1 <= fx + self.c1 * t * slope:
                return x1, fx1, g1, True
            t *= 0.5
        return x, fx, g, False


def global_norm(tree):
    """sqrt of the sum of squares of all leaves (for clipping and monitoring)."""
    return snp.sqrt(sum(snp.sum(snp.square(x)) for x in tree_leaves(tree)))


def clip_by_global_norm(grads, max_norm):
    n = global_norm(grads)
    scale = snp.minimum(1.0, max_norm / (n + 1e-12))
    return tree_map(lambda g: g * _like(scale, g), grads)


# ---------------------------------------------------------------------------------------------
# THOR: Kronecker-factored curvature


class _Taps:
    """What a tapped forward pass records: layer inputs (``acts``) and the zero ``probes``
    added to layer outputs, both keyed by ``id(cell)``."""

    def __init__(self, probes):
        self.probes, self.acts = probes, {}


def _curvature_layers(net):
    """(dotted prefix, cell) of every Dense and Conv layer of ``net``."""
    from .nn.layers import Dense, _Conv

    return [(p, c) for p, c in net.named_cells() if isinstance(c, (Dense, _Conv))]


class THOR(Momentum):
    """K-FAC-style second-order optimizer for networks of Dense/Conv layers (see module doc).

    ``update`` preconditions each layer's [W b] gradient with the stored inverses
    ``G^-1 dW A^-1`` and then applies momentum; other parameters get plain momentum. The
    inverses come from ``refresh(state, factors)``; ``THOR.train_step(net, loss)`` runs a
    tapped step every ``frequency`` steps to measure the factors and an ordinary one otherwise.
    ``damping`` (lambda) is split as sqrt(lambda) on each factor.
    """

    def __init__(self, lr=0.05, momentum=0.9, damping=0.03, frequency=10, decay=0.95,
                 weight_decay=0.0, nesterov=False):
        super().__init__(lr, momentum, nesterov, weight_decay)
        self.damping, self.frequency, self.decay = damping, int(frequency), decay

    def init(self, params):
        return {**super().init(params), "inv": {}, "factors": {}}

    def update(self, grads, state, params):
        grads = dict(grads)
        for prefix, (ainv, ginv) in state["inv"].items():
            grads.update(self._precondition(grads, prefix, ainv, ginv))
        new, mstate = super().update(grads, {"step": state["step"], "v": state["v"]}, params)
        return new, {**state, **mstate}

    @staticmethod
    def _precondition(grads, prefix, ainv, ginv):
        w = grads[prefix + "weight"]
        o = abstractify(w).shape[0]
        cols = [snp.reshape(w, (o, -1))]
        has_bias = prefix + "bias" in grads
        if has_bias:
            cols.append(snp.reshape(grads[prefix + "bias"], (o, 1)))
        gw = snp.concatenate(cols, axis=1) if has_bias else cols[0]
        d = snp.matmul(snp.matmul(_like(ginv, gw), gw), _like(ainv, gw))
        out = {prefix + "weight": snp.reshape(d[:, :d.shape[1] - has_bias], abstractify(w).shape)}
        if has_bias:
            out[prefix + "bias"] = d[:, -1]
        return out

    def refresh(self, state, factors):
        """New state with the factors averaged in (exponential decay) and inverted (float64)."""
        avg, inv = dict(state["factors"]), {}
        for prefix, (a, g) in factors.items():
            a, g = np.asarray(a, np.float64), np.asarray(g, np.float64)
            if prefix in avg:
                a = self.decay * avg[prefix][0] + (1 - self.decay) * a
                g = self.decay * avg[prefix][1] + (1 - self.decay) * g
            avg[prefix] = (a, g)
            inv[prefix] = (self._inverse(a), self._inverse(g))
        return {**state, "factors": avg, "inv": inv}

    def _inverse(self, m):
        eye = np.eye(len(m))
        reg = m + np.sqrt(self.damping) * eye
        import scipy.linalg

        c = scipy.linalg.cho_factor(reg)
        return scipy.linalg.cho_solve(c, eye).astype(np.float32)

    def train_step(self, net, loss, policy=None):
        """A training step object (``init``, ``__call__``, ``predict``) for ``net``."""
        from .nn.thor import THORStep

        return THORStep(net, loss, self, policy)
