"""The training step of ``sciml.optim.THOR``: every ``frequency`` steps a *tapped* step that
also returns the Kronecker factors of each Dense/Conv layer, otherwise an ordinary compiled step.

For a layer s = W a + b seen on R rows (samples x positions; P positions per sample, N samples)
with a mean loss, the factors are (Martens and Grosse 2015; Grosse and Martens 2016 for conv):
A = [a 1]^T [a 1] / N and G = (N / P) ds^T ds, ds = dL/ds (the gradient of the zero probe).
"""

from __future__ import annotations

import numpy as np

from autodiff.trace import abstractify

from .. import numpy as snp
from .. import precision
from .train import TrainOneStep, compiled, value_and_grad


class THORStep(TrainOneStep):
    def __init__(self, net, loss, optimizer, policy=None):
        from ..optim import _curvature_layers

        super().__init__(net, loss, optimizer, policy=policy)
        self.layers = _curvature_layers(net)
        self._tapped = compiled(self._tapped_step, "thor_tapped_step")
        self.count = 0

    def __call__(self, state, x, y, key=None):
        if self.count % self.optimizer.frequency == 0:
            state, loss = self._refresh_and_step(state, x, y)
        else:
            state, loss = super().__call__(state, x, y, key)
        self.count += 1
        return state, loss

    def _refresh_and_step(self, state, x, y):
        probes = self._probe_shapes(state, x)
        grads, loss, factors = self._tapped(state["params"], state["buffers"], probes, x, y)
        opt = self.optimizer.refresh(state["opt"], factors)
        params, opt = self.optimizer.update(grads, opt, state["params"])
        return {**state, "params": params, "opt": opt}, loss

    def _probe_shapes(self, state, x):
        # One eager-free shape pass: trace the forward once to learn each layer's output rows.
        import sciml

        from ..optim import _Taps

        shapes = getattr(self, "_shapes", {}).get(np.shape(x))
        if shapes is None:
            holder = {}

            def record(params, x):
                taps = _Taps({})
                with precision.policy(self.policy):
                    self.net.apply(params, x, buffers=state["buffers"], training=True, taps=taps)
                for prefix, cell in self.layers:
                    a = abstractify(taps.acts[id(cell)])
                    holder[prefix] = (a.shape[0], cell.out_channels)
                return 0.0

            sciml.make_graph(record, state["params"], x)
            shapes = holder
            self._shapes = {**getattr(self, "_shapes", {}), np.shape(x): shapes}
        return {p: np.zeros(s, np.float32) for p, s in shapes.items()}

    def _tapped_step(self, params, buffers, probes, x, y):
        from ..optim import _Taps

        n = abstractify(x).shape[0]

        def loss_fn(pp, buffers, x, y):
            params, probes = pp
            taps = _Taps({id(c): probes[p] for p, c in self.layers})
            with precision.policy(self.policy):
                out, _ = self.net.apply(params, x, buffers=buffers, training=True, taps=taps)
                return self.loss(out, y), {p: taps.acts[id(c)] for p, c in self.layers}

        (loss, acts), (grads, ds) = value_and_grad(loss_fn, has_aux=True)(
            (params, probes), buffers, x, y)
        factors = {}
        for prefix, _ in self.layers:
            a = snp.astype(acts[prefix], np.float32)
            rows = abstractify(a).shape[0]
            if prefix + "bias" in params:
                a = snp.concatenate([a, snp.ones((rows, 1), np.float32)], axis=1)
            positions = rows // n
            g = ds[prefix]
            factors[prefix] = (snp.matmul(snp.transpose(a), a) / n,
                               snp.matmul(snp.transpose(g), g) * (n / positions))
        return grads, loss, factors
