"""``Cell``: a network layer in MindSpore's shape, running on sciml's traced numpy.

Parameters (trainable arrays), buffers (running statistics) and sub-cells are declared in
``__init__`` by assigning ``Parameter``/``Buffer``/``Cell`` objects to attributes; the
computation is written in ``construct`` with ``sciml.numpy`` (or plain numpy) functions, so it
runs eagerly on arrays and records IR on Tracers.

Parameters are a pytree: ``cell.parameters()`` is a flat ``dict`` from dotted names
(``"0.weight"``) to arrays. ``cell.apply(params, *args, ...)`` is the pure-function form used by
``grad``, ``jit`` and the optimizers: it substitutes ``params`` (arrays or Tracers) for the stored
values for the duration of the call and returns the output together with the updated buffers.

>>> import numpy as np
>>> from sciml.nn import Dense
>>> net = Dense(3, 2, weight_init="zeros", bias_init="zeros")
>>> sorted(net.parameters())
['bias', 'weight']
>>> net(np.ones((4, 3), np.float32)).shape
(4, 2)
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from autodiff.errors import ArityError, SciMLError, UnsupportedError
from autodiff.trace import Tracer

_STATE = threading.local()


class Parameter:
    """A trainable array held by a Cell (float32 by default; see ``sciml.precision``)."""

    def __init__(self, value, requires_grad: bool = True):
        self.value = np.asarray(value)
        self.requires_grad = requires_grad


class Buffer:
    """A non-trainable array held by a Cell (e.g. BatchNorm running statistics)."""

    def __init__(self, value):
        self.value = np.asarray(value)


class _Scope:
    """The substitutions and side outputs of one ``Cell.apply`` call."""

    def __init__(self, values, training, key):
        self.values = values          # (id(cell), name) -> array or Tracer
        self.new_buffers = {}         # (id(cell), name) -> array or Tracer
        self.training = training
        self.key = key
        self.taps = None              # optional recorder used by curvature optimizers


def _scope():
    stack = getattr(_STATE, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def _push(scope):
    stack = getattr(_STATE, "stack", None)
    if stack is None:
        stack = _STATE.stack = []
    stack.append(scope)
    try:
        yield scope
    finally:
        stack.pop()


class Cell:
    """Base class of all layers; subclasses define ``__init__`` and ``construct``.

    A subclass may also define ``bprop(self, *inputs, out, dout)`` (all positional, as in
    MindSpore) returning the cotangents of the inputs as a tuple: it replaces the automatic
    backward pass of ``construct`` (see ``sciml.nn.bprop``). Cells with a ``bprop`` may not own
    parameters (their gradient would be undefined).
    """

    def __init__(self):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_cells", {})
        object.__setattr__(self, "training", False)

    # -- declaration ------------------------------------------------------------------------

    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise SciMLError(
                f"{type(self).__name__}: call super().__init__() before assigning {name!r}")
        for table in (self._params, self._buffers, self._cells):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Buffer):
            self._buffers[name] = value
        elif isinstance(value, Cell):
            self._cells[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        if "_params" in d:
            for table in (d["_params"], d["_buffers"]):
                if name in table:
                    return self._current(name, table[name].value)
            if name in d["_cells"]:
                return d["_cells"][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def _current(self, name, stored):
        sc = _scope()
        if sc is not None:
            key = (id(self), name)
            if key in sc.new_buffers:
                return sc.new_buffers[key]
            if key in sc.values:
                return sc.values[key]
        return stored

    # -- pytree views -----------------------------------------------------------------------

    def named_cells(self, prefix=""):
        """(dotted name, cell) for this cell and every sub-cell, depth first."""
        yield prefix, self
        for n, c in self._cells.items():
            yield from c.named_cells(f"{prefix}{n}.")

    def _named(self, kind):
        for prefix, cell in self.named_cells():
            for n, p in getattr(cell, kind).items():
                yield f"{prefix}{n}", cell, n, p

    def parameters(self, trainable_only=True) -> dict:
        """The parameters as a flat dict ``{dotted name: array}`` (a pytree)."""
        return {k: p.value for k, _, _, p in self._named("_params")
                if p.requires_grad or not trainable_only}

    def buffers(self) -> dict:
        """The buffers (non-trainable state) as a flat dict ``{dotted name: array}``."""
        return {k: b.value for k, _, _, b in self._named("_buffers")}

    def load_parameters(self, params: dict, buffers: dict | None = None):
        """Store ``params`` (and ``buffers``) into the cell, checking names and shapes."""
        for table, kind in ((params, "_params"), (buffers or {}, "_buffers")):
            slots = {k: p for k, _, _, p in self._named(kind)}
            unknown = set(table) - set(slots)
            if unknown:
                raise SciMLError(f"load_parameters: unknown names {sorted(unknown)}")
            for k, v in table.items():
                v = np.asarray(v)
                if v.shape != slots[k].value.shape:
                    raise SciMLError(
                        f"load_parameters: {k!r} has shape {v.shape}, the cell expects "
                        f"{slots[k].value.shape}")
                slots[k].value = v.astype(slots[k].value.dtype, copy=False)
        return self

    def save(self, path):
        """Save parameters and buffers to an ``.npz`` file (buffers prefixed ``buffer:``)."""
        arrays = {f"param:{k}": v for k, v in self.parameters(False).items()}
        arrays.update({f"buffer:{k}": v for k, v in self.buffers().items()})
        np.savez(path, **arrays)

    def load(self, path):
        """Load what ``save`` wrote; the cell must have the same structure."""
        with np.load(path) as f:
            params = {k[6:]: f[k] for k in f.files if k.startswith("param:")}
            buffers = {k[7:]: f[k] for k in f.files if k.startswith("buffer:")}
        return self.load_parameters(params, buffers)

    # -- modes --------------------------------------------------------------------------------

    def set_train(self, mode: bool = True):
        """Training mode for this cell and all sub-cells (BatchNorm, Dropout); returns self."""
        for _, c in self.named_cells():
            object.__setattr__(c, "training", mode)
        return self

    @property
    def is_training(self):
        sc = _scope()
        return sc.training if sc is not None and sc.training is not None else self.training

    def update_buffer(self, name, value):
        """Record a new buffer value: inside ``apply`` it is returned, eagerly it is stored."""
        sc = _scope()
        if sc is not None:
            sc.new_buffers[(id(self), name)] = value
        elif isinstance(value, Tracer):
            raise UnsupportedError(
                f"{type(self).__name__}.{name}: a traced buffer update needs the pure form "
                "cell.apply(params, x, buffers=..., training=True)")
        else:
            self._buffers[name].value = np.asarray(value)

    def next_key(self):
        """A fresh random key from the key passed to ``apply`` (split, so each use differs)."""
        from autodiff.primitives import PRIMITIVES as P

        sc = _scope()
        if sc is None or sc.key is None:
            raise SciMLError(
                f"{type(self).__name__}: random layers in training need an explicit key: "
                "cell.apply(params, x, training=True, key=sciml.nn.key(0))")
        keys = P["random_split"].bind(sc.key, num=2)
        sc.key = keys[0]
        return keys[1]

    # -- calling ------------------------------------------------------------------------------

    def construct(self, *args):
        raise UnsupportedError(f"{type(self).__name__} does not define construct()")

    def __call__(self, *args, **kwargs):
        if type(self).bprop is not Cell.bprop:
            from .bprop import call_with_bprop

            return call_with_bprop(self, args, kwargs)
        return self.construct(*args, **kwargs)

    def bprop(self, *args):  # pragma: no cover - the base class marks "no bprop"
        raise NotImplementedError

    def apply(self, params, *args, buffers=None, training=None, key=None, taps=None, **kwargs):
        """Pure call: ``(output, new_buffers)`` with ``params``/``buffers`` substituted.

        ``params`` and ``buffers`` are dicts as returned by ``parameters()``/``buffers()``
        (missing buffers keep their stored values); ``training`` overrides ``set_train``;
        ``key`` feeds random layers (Dropout); ``taps`` lets a curvature optimizer observe
        the Dense/Conv layers (see ``sciml.optim.THOR``).
        """
        values = self._bind(params, "_params", "params")
        bvals = self._bind(buffers or {}, "_buffers", "buffers")
        values.update(bvals)
        with _push(_Scope(values, training, key)) as sc:
            sc.taps = taps
            out = self(*args, **kwargs)
        new = {k: sc.new_buffers.get(slot, v) for k, (slot, v) in self._buffer_slots(
            buffers).items()}
        return out, new

    def _bind(self, table, kind, what):
        slots = {k: (id(c), n) for k, c, n, _ in self._named(kind)}
        unknown = set(table) - set(slots)
        if unknown:
            raise ArityError(f"{type(self).__name__}.apply: unknown {what} {sorted(unknown)}; "
                             f"expected names from {sorted(slots)}")
        return {slots[k]: v for k, v in table.items()}

    def _buffer_slots(self, given):
        given = given or {}
        return {k: ((id(c), n), given.get(k, b.value)) for k, c, n, b in self._named("_buffers")}

    def __repr__(self):
        subs = ", ".join(f"{n}={c!r}" for n, c in self._cells.items())
        return f"{type(self).__name__}({subs})"


def key(seed: int):
    """A random key (int64 array of shape (2,)) for Dropout and initializers."""
    return np.array([seed, 0], dtype=np.int64)
