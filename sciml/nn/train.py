"""Training: ``value_and_grad`` over parameter pytrees and ``TrainOneStep``.

``TrainOneStep(net, loss, optimizer)`` traces forward, backward (reverse mode: linearize +
transpose) and the optimizer update into ONE graph per input signature, simplifies it, and runs
that graph on every later call (through ``kernels.jit`` when it is available, else the reference
interpreter whose matmuls are BLAS calls). Mixed precision and dynamic loss scaling are part of
the traced step.

>>> import numpy as np, sciml.nn as nn, sciml.optim as optim
>>> net = nn.Dense(3, 1, weight_init="zeros")
>>> step = TrainOneStep(net, nn.MSELoss(), optim.SGD(0.1))
>>> state = step.init()
>>> x, y = np.ones((4, 3), np.float32), np.ones((4, 1), np.float32)
>>> for _ in range(50):
...     state, loss = step(state, x, y)
>>> float(loss) < 1e-6
True
"""

from __future__ import annotations

import numpy as np

from autodiff import dtypes
from autodiff.errors import UnsupportedError
from autodiff.interpret import eval_graph_flat
from autodiff.pytree import tree_flatten, tree_map, tree_unflatten
from autodiff.schedule import Schedule
from autodiff.trace import Tracer, make_graph

from .. import precision


def _api():
    try:
        from autodiff import api
    except ImportError:
        return None
    return api


def value_and_grad(fn, has_aux=False):
    """``(params, *args) -> ((value, aux) or value, grads)``, gradients w.r.t. ``params``.

    Uses ``autodiff.api.value_and_grad`` when present, else composes ``vjp_graph`` directly.
    """
    api = _api()
    if api is not None and hasattr(api, "value_and_grad"):
        return api.value_and_grad(fn, has_aux=has_aux)
    return _vjp_value_and_grad(fn, has_aux)


def _vjp_value_and_grad(fn, has_aux):
    from autodiff.transpose import eval_in_trace, vjp_graph

    def wrapped(params, *args):
        g = make_graph(fn, params, *args, name=getattr(fn, "__name__", "loss"))
        leaves, _ = tree_flatten((params, args))
        n_p = len(tree_flatten(params)[0])
        wrt = [i < n_p and dtypes.is_inexact(a.dtype) for i, a in enumerate(g.in_avals)]
        wrt = wrt[:len(g.params)]
        vg = vjp_graph(g, wrt)
        cts = [np.ones((), a.dtype) if i == 0 else np.zeros(a.shape, a.dtype)
               for i, a in enumerate(g.out_avals)]
        full = list(leaves) + list(g.meta.get("captured", []))
        traced = any(isinstance(x, Tracer) for x in full)
        res = eval_in_trace(vg, full + cts) if traced else eval_graph_flat(vg, full + cts)
        n_out = len(g.out_avals)
        outs = tree_unflatten(g.meta["out_tree"], res[:n_out])
        grads, it = [], iter(res[n_out:])
        for w, x in zip(wrt, leaves[:n_p]):
            grads.append(next(it) if w else np.zeros_like(np.asarray(x)))
        return outs, tree_unflatten(tree_flatten(params)[1], grads)

    return wrapped


def grad(fn, has_aux=False):
    vg = value_and_grad(fn, has_aux)

    def wrapped(params, *args):
        out, g = vg(params, *args)
        return (g, out[1]) if has_aux else g

    return wrapped


class compiled:
    """Trace ``fn`` once per argument signature into a graph and run that graph.

    ``backend="interpret"`` (the default) replays the optimised graph with an
    ``autodiff.schedule.Schedule``: one numpy call per node, matmuls and convolutions as BLAS
    matmuls, elementwise results in buffers reused from call to call (in place where an operand
    dies), im2col/col2im through the compiled ``kernels.library`` loops. ``donate`` lists
    positional arguments whose arrays the call may overwrite with its results (the caller must
    not use them afterwards). ``backend="cpu"`` runs
    it through ``kernels.jit`` (fused numba kernels), which takes seconds to compile a training
    step and is not faster on the networks measured (bench/RESULTS.md).
    """

    def __init__(self, fn, name="step", backend="interpret", donate=()):
        self.fn, self.name, self.cache, self.backend = fn, name, {}, backend
        self.donate = tuple(donate)
        if backend != "interpret":
            from kernels.jit import jit

            self._jit = jit(fn, backend=backend)

    def __call__(self, *args):
        if self.backend != "interpret":
            return self._jit(*args)
        leaves, tree = tree_flatten(args)
        leaves = [np.asarray(x) for x in leaves]
        sig = (tree, tuple((x.shape, x.dtype) for x in leaves))
        if sig not in self.cache:
            self.cache[sig] = self._build(args)
        run = self.cache[sig]
        return tree_unflatten(run.graph.meta["out_tree"], run(leaves))

    def _build(self, args):
        from autodiff.passes import fold_transposes, optimize

        g = make_graph(self.fn, *args, name=self.name)
        if g.meta.get("captured"):
            raise UnsupportedError(f"compiled {self.name}: the step closes over traced values")
        meta = dict(g.meta)
        # Elementwise layers between convolutions run in the patches' channels-last layout
        # (optimize again: simplify composes the transposes that now meet).
        g = optimize(fold_transposes(optimize(g)))
        g.meta.update(meta)
        impls, fuser = _compiled_impls()
        return Schedule(g, impls=impls, into=impls, donate=self._donated_leaves(args),
                        fuser=fuser)

    def _donated_leaves(self, args):
        """Flat argument indices of the leaves of the donated positional arguments."""
        out, start = [], 0
        for i, a in enumerate(args):
            n = len(tree_flatten(a)[0])
            if i in self.donate:
                out += range(start, start + n)
            start += n
        return out


def _copy(x):
    return np.array(x, copy=True)


def _compiled_impls():
    """Compiled implementations of library primitives and the elementwise fuser (numba),
    when numba imports."""
    try:
        from kernels.library import FUSER, IMPLS
    except ImportError:
        return {}, None
    return IMPLS, FUSER


class TrainOneStep:
    """One training step of ``net`` with ``loss(net(x), y)`` and ``optimizer``, compiled.

    ``state = step.init()`` holds params, buffers, optimizer state and the loss-scale state;
    ``state, loss = step(state, x, y, key=None)``. ``policy`` is a precision policy name
    (parameters stay float32; compute in the low type); ``loss_scale`` a ``precision.LossScale``
    (on by default for fp16 policies). With ``jit=False`` the step runs eagerly op by op;
    ``backend`` is passed to ``compiled``.

    With ``donate=True`` (the default) a compiled step consumes the state it is given: the new
    state is written into the old state's arrays where they fit, as PyTorch's optimizers update
    parameters in place (no allocation per step). Rebind the result (``state, loss =
    step(state, ...)``) and copy a state you want to keep. ``init`` copies the network's arrays,
    so the network itself is never overwritten.
    """

    def __init__(self, net, loss, optimizer, policy=None, loss_scale=None, jit=True,
                 backend="interpret", donate=True):
        self.net, self.loss, self.optimizer = net, loss, optimizer
        self.policy = None if policy is None else precision.get_policy(policy)
        if loss_scale is None and self.policy is not None and self.policy.loss_scaling:
            loss_scale = precision.LossScale()
        self.loss_scale = loss_scale
        self._step = compiled(self._pure_step, "train_step", backend,
                              donate=(0,) if donate else ()) if jit else self._pure_step

    def init(self, params=None):
        params = self.net.parameters() if params is None else params
        params = tree_map(_copy, params)
        return {"params": params, "buffers": tree_map(_copy, self.net.buffers()),
                "opt": self.optimizer.init(params),
                "scale": self.loss_scale.init_state() if self.loss_scale else {}}

    def __call__(self, state, x, y, key=None):
        args = (state, x, y) if key is None else (state, x, y, key)
        new_state, loss = self._step(*args)
        return new_state, loss

    def loss_fn(self, params, buffers, x, y, key=None):
        with precision.policy(self.policy):
            out, new_buffers = self.net.apply(params, x, buffers=buffers, training=True, key=key)
            return self.loss(out, y), new_buffers

    def _pure_step(self, state, x, y, key=None):
        ls, sstate = self.loss_scale, state["scale"]

        def scaled(params, buffers, x, y, key):
            loss, nb = self.loss_fn(params, buffers, x, y, key)
            return (ls.scale(loss, sstate) if ls else loss), (loss, nb)

        (_, (loss, buffers)), grads = value_and_grad(scaled, has_aux=True)(
            state["params"], state["buffers"], x, y, key)
        if ls:
            grads = ls.unscale(grads, sstate)
        params, opt = self.optimizer.update(grads, state["opt"], state["params"])
        new = {"params": params, "buffers": buffers, "opt": opt, "scale": sstate}
        if ls:
            finite = precision.all_finite(grads)
            new = precision.select_tree(finite, new, state)   # skip the step on overflow
            new["scale"] = ls.adjust(sstate, finite)
        return new, loss

    def predict(self, state, x, batch=None):
        """Eval-mode forward pass with the state's parameters and running statistics."""
        def fwd(xb):
            with precision.policy(self.policy):
                return self.net.apply(state["params"], xb, buffers=state["buffers"],
                                      training=False)[0]

        if batch is None:
            return np.asarray(fwd(x))
        return np.concatenate([np.asarray(fwd(x[i:i + batch]))
                               for i in range(0, len(x), batch)])
