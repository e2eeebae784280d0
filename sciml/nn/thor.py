"""The training step of ``sciml.optim.THOR``: every ``frequency`` steps a *tapped* step that
also returns the Kronecker factors of each Dense/Conv layer, otherwise an ordinary compiled step.

For a layer s = W a + b seen on R rows (samples x positions; P positions per sample, N samples)
with a mean loss, the factors are (Martens and Grosse 2015; Grosse and Martens 2016 for conv):
A = [a 1]^T [a 1] / N and G = (N / P) ds^T ds, ds = dL/ds (the gradient of the zero probe).
"""

from __future__ import annotations

import numpy as np

from autodiff.trace import abstractify, make_graph

from .. import numpy as snp
from .. import precision
from .train import TrainOneStep, compiled, value_and_grad


class THORStep(TrainOneStep):
    def __init__(self, net, loss, optimizer, policy=None):
        from ..optim import _curvature_layers

        super().__init__(net, loss, optimizer, policy=policy)
        self.layers = _curvature_layers(net)
        self._tapped = compiled(self._tapped_step, "thor_tapped_step")
        self._rows: dict = {}   # input shape -> {layer: (rows, out_channels)}
        self.count = 0

    def __call__(self, state, x, y, key=None):
        refresh = self.count % self.optimizer.frequency == 0
        self.count += 1
        if not refresh:
            return super().__call__(state, x, y, key)
        probes = self._probes(state, x)
        args = (state["params"], state["buffers"], probes, x, y) + (() if key is None else (key,))
        grads, loss, factors, buffers = self._tapped(*args)
        opt = self.optimizer.refresh(state["opt"], factors)
        params, opt = self.optimizer.update(grads, opt, state["params"])
        return {**state, "params": params, "buffers": buffers, "opt": opt}, loss

    def _probes(self, state, x):
        """Zero probes, one per layer, shaped like the layer's (rows, out_channels) output."""
        from ..optim import _Taps

        if np.shape(x) not in self._rows:
            rows = {}

            def record(params, x):  # traced once, only to read the shapes
                taps = _Taps({})
                with precision.policy(self.policy):
                    # Any key will do: only the shapes of this trace are read.
                    self.net.apply(params, x, buffers=state["buffers"], training=True, taps=taps,
                                   key=np.zeros(2, np.int64))
                for prefix, cell in self.layers:
                    rows[prefix] = (abstractify(taps.acts[id(cell)]).shape[0], cell.out_channels)
                return 0.0

            make_graph(record, state["params"], x)
            self._rows[np.shape(x)] = rows
        return {p: np.zeros(s, np.float32) for p, s in self._rows[np.shape(x)].items()}

    def _tapped_step(self, params, buffers, probes, x, y, key=None):
        from ..optim import _Taps

        n = abstractify(x).shape[0]

        def loss_fn(pp, buffers, x, y, key):
            params, probes = pp
            taps = _Taps({id(c): probes[p] for p, c in self.layers})
            with precision.policy(self.policy):
                out, nb = self.net.apply(params, x, buffers=buffers, training=True, key=key,
                                         taps=taps)
                return self.loss(out, y), ({p: taps.acts[id(c)] for p, c in self.layers}, nb)

        (loss, (acts, new_buffers)), (grads, ds) = value_and_grad(loss_fn, has_aux=True)(
            (params, probes), buffers, x, y, key)
        factors = {}
        for prefix, _ in self.layers:
            a = snp.astype(acts[prefix], np.float32)
            rows = abstractify(a).shape[0]
            if prefix + "bias" in params:
                a = snp.concatenate([a, snp.ones((rows, 1), np.float32)], axis=1)
            g = snp.astype(ds[prefix], np.float32)
            factors[prefix] = (snp.matmul(snp.transpose(a), a) / n,
                               snp.matmul(snp.transpose(g), g) * (n / (rows // n)))
        return grads, loss, factors, new_buffers
