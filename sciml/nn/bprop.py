"""A Cell's user-written backward rule (MindSpore's ``bprop``) through ``custom_vjp``.

``bprop(self, *inputs, out, dout)`` receives the inputs, the output of ``construct`` and the
output cotangent, and returns one cotangent per input (a tuple). It replaces the derivative of
``construct`` in every reverse-mode transform (grad, TrainOneStep); forward mode through such a
cell raises UnsupportedError (as for ``custom_vjp``).

>>> import numpy as np
>>> from sciml.nn import Cell
>>> from sciml.nn.train import grad
>>> class ClipGrad(Cell):           # identity forward, gradient clipped to [-1, 1]
...     def construct(self, x):
...         return x * 1.0
...     def bprop(self, x, out, dout):
...         return (np.clip(dout, -1.0, 1.0),)
>>> c = ClipGrad()
>>> grad(lambda x: np.sum(c(x) * 5.0))(np.ones(2))
array([1., 1.])
"""

from __future__ import annotations

from autodiff.errors import UnsupportedError


def call_with_bprop(cell, args, kwargs):
    if kwargs:
        raise UnsupportedError(f"{type(cell).__name__}: a cell with bprop takes positional "
                               f"arguments only, got keywords {sorted(kwargs)}")
    owned = [k for _, c in cell.named_cells() for k in c._params]
    if owned:
        raise UnsupportedError(
            f"{type(cell).__name__} defines bprop but owns parameters {owned}: bprop gives "
            "input cotangents only, so parameter gradients would be undefined")
    fn = cell.__dict__.get("_bprop_fn")
    if fn is None:
        fn = _make(cell)
        object.__setattr__(cell, "_bprop_fn", fn)
    return fn(*args)


def _make(cell):
    from autodiff.custom import custom_vjp

    def forward(*args):
        return cell.construct(*args)

    def fwd(*args):
        out = cell.construct(*args)
        return out, (args, out)

    def bwd(res, dout):
        args, out = res
        got = cell.bprop(*args, out, dout)
        if not isinstance(got, tuple) or len(got) != len(args):
            raise UnsupportedError(
                f"{type(cell).__name__}.bprop must return a tuple of {len(args)} cotangents "
                f"(one per input), got {type(got).__name__}")
        return got

    f = custom_vjp(forward)
    f.defvjp(fwd, bwd)
    return f
