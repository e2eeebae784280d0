"""Precision policies: which dtype stores, computes and accumulates, scoped to a region.

A ``Policy`` names four dtypes:

- ``param``: storage of parameters and solver state (float32 in every mixed policy);
- ``compute``: the dtype of white-listed ops (matmul, convolution) and of activations;
- ``safe``: the floor for black-listed ops (reductions in losses, softmax, normalisation), which
  never run below float32;
- ``accum``: the accumulator of long sums (``precision.sum``), e.g. float64 for float32 state.

Named policies: ``float64``, ``float32``, ``mixed-bf16``, ``mixed-fp16``, ``fp16`` (everything in
float16, black list included). MindSpore's amp levels are aliases: ``O0`` = float32, ``O1`` and
``O2`` = mixed-fp16 (parameters float32, matmul/conv and activations float16, normalisation and
losses float32, dynamic loss scaling), ``O3`` = fp16.

A policy applies inside ``with precision.policy("mixed-bf16"):`` (nesting restores the outer one)
or to a whole training step through ``TrainOneStep(..., policy=...)``. The default is float32
compute with no casts (``None``: dtypes are left as they come).

Dynamic loss scaling (``LossScale``) multiplies the loss by a scale before differentiation,
divides the gradients by it, and when any gradient is not finite skips the update and lowers the
scale; after ``window`` good steps it raises the scale again. All of it is traceable.

>>> import numpy as np
>>> with policy("mixed-bf16"):
...     cast_compute(np.ones(2, np.float32))[0].dtype.name
'bfloat16'
>>> cast_compute(np.ones(2, np.float32))[0].dtype.name  # outside the region: unchanged
'float32'
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading

import numpy as np

from autodiff import dtypes, lax
from autodiff.errors import DTypeError, SciMLError
from autodiff.primitives import PRIMITIVES as P
from autodiff.pytree import tree_leaves, tree_map
from autodiff.trace import abstractify

_F16, _BF16, _F32, _F64 = (np.dtype("float16"), dtypes.bfloat16, np.dtype("float32"),
                           np.dtype("float64"))


@dataclasses.dataclass(frozen=True)
class Policy:
    name: str
    param: np.dtype
    compute: np.dtype
    safe: np.dtype
    accum: np.dtype
    loss_scaling: bool = False

    def __repr__(self):
        return (f"Policy({self.name}: param={self.param}, compute={self.compute}, "
                f"safe={self.safe}, accum={self.accum}, loss_scaling={self.loss_scaling})")


POLICIES = {
    "float64": Policy("float64", _F64, _F64, _F64, _F64),
    "float32": Policy("float32", _F32, _F32, _F32, _F64),
    "mixed-bf16": Policy("mixed-bf16", _F32, _BF16, _F32, _F64),
    "mixed-fp16": Policy("mixed-fp16", _F32, _F16, _F32, _F64, loss_scaling=True),
    "fp16": Policy("fp16", _F32, _F16, _F16, _F32, loss_scaling=True),
}
ALIASES = {"O0": "float32", "O1": "mixed-fp16", "O2": "mixed-fp16", "O3": "fp16"}

_STATE = threading.local()


def get_policy(p) -> Policy:
    """A Policy from a name, an amp level (O0-O3) or a Policy."""
    if isinstance(p, Policy):
        return p
    name = ALIASES.get(p, p)
    if name not in POLICIES:
        raise SciMLError(f"precision: unknown policy {p!r}; choose one of "
                         f"{sorted(POLICIES)} or {sorted(ALIASES)}")
    return POLICIES[name]


def current() -> Policy | None:
    """The innermost active policy, or None (no casts)."""
    stack = getattr(_STATE, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def policy(p):
    """Apply policy ``p`` (a name, an amp level, a Policy or None) inside the block."""
    stack = getattr(_STATE, "stack", None)
    if stack is None:
        stack = _STATE.stack = []
    stack.append(None if p is None else get_policy(p))
    try:
        yield stack[-1]
    finally:
        stack.pop()


def _is_float(x):
    return dtypes.is_float(abstractify(x).dtype)


def _cast(x, d):
    return x if not _is_float(x) or abstractify(x).dtype == d else lax.convert_element_type(x, d)


# The lists, by op name. Ops on the white list run in the policy's compute dtype; ops on the
# black list never run below its safe dtype (float32 in the mixed policies). Edit them to move
# an op (e.g. WHITE_LIST.discard("conv") keeps convolutions in float32 under mixed-bf16).
WHITE_LIST = {"dense", "conv"}
BLACK_LIST = {"batch_norm", "layer_norm", "log_softmax", "softmax", "mse", "smooth_l1",
              "softmax_cross_entropy", "sigmoid_cross_entropy"}


def cast_for(op, *xs):
    """Cast ``xs`` as the lists say for ``op``: compute dtype (white), at least the safe dtype
    (black), unchanged otherwise. Returns a list."""
    if op in WHITE_LIST:
        return cast_compute(*xs)
    if op in BLACK_LIST:
        return [cast_safe(x) for x in xs]
    return list(xs)


def cast_compute(*xs):
    """Cast floating arrays to the compute dtype of the policy (white-listed ops)."""
    p = current()
    return list(xs) if p is None else [_cast(x, p.compute) for x in xs]


def cast_safe(x):
    """Raise a floating array to the policy's safe dtype (float32) for black-listed ops."""
    p = current()
    if p is None or not _is_float(x):
        return x
    d = abstractify(x).dtype
    return _cast(x, p.safe) if np.dtype(d).itemsize < np.dtype(p.safe).itemsize else x


def cast_params(tree, p=None):
    """Cast the floating leaves of a pytree to the policy's parameter dtype."""
    p = get_policy(p) if p is not None else current()
    return tree if p is None else tree_map(lambda x: _cast(lax.asarray(x), p.param), tree)


def dot_general(x, y, dimension_numbers):
    """``dot_general`` in the compute dtype; half types accumulate in float32 (BLAS)."""
    x, y = lax.promote("dot_general", x, y)
    return lax.dot_general(x, y, dimension_numbers)


def sum(x, axis=None):  # noqa: A001 - mirrors numpy's name on purpose
    """Sum accumulated in the policy's ``accum`` dtype, returned in the input's dtype."""
    p = current()
    d = abstractify(x).dtype
    if p is None or not _is_float(x):
        return lax.sum(x, axis)
    return _cast(lax.sum(_cast(x, p.accum), axis), d)


# ---------------------------------------------------------------------------------------------
# Dynamic loss scaling


@dataclasses.dataclass(frozen=True)
class LossScale:
    """Dynamic loss scaling: ``init`` scale, divided by ``factor`` on overflow (the step is
    skipped), multiplied by ``factor`` after ``window`` consecutive finite steps.

    >>> ls = LossScale(init=8.0, window=2)
    >>> s = ls.init_state()
    >>> s = ls.adjust(s, np.bool_(False)); float(s["scale"])
    4.0
    """

    init: float = 2.0 ** 15
    factor: float = 2.0
    window: int = 2000
    min_scale: float = 1.0

    def init_state(self):
        return {"scale": np.float32(self.init), "good": np.int32(0)}

    def scale(self, loss, state):
        return loss * lax.convert_element_type(state["scale"], abstractify(loss).dtype)

    def unscale(self, grads, state):
        return tree_map(lambda g: g / lax.convert_element_type(
            state["scale"], abstractify(g).dtype), grads)

    def adjust(self, state, finite):
        """The state after a step whose gradients were ``finite`` (a boolean scalar)."""
        s, good = state["scale"], state["good"]
        good1 = lax.where(finite, good + 1, 0)
        grow = lax.logical("and", finite, lax.compare("ge", good1, self.window))
        shrunk = lax.binary("maximum", s / self.factor, lax.asarray(np.float32(self.min_scale)))
        s1 = lax.where(finite, lax.where(grow, s * self.factor, s), shrunk)
        return {"scale": s1, "good": lax.where(grow, 0, good1)}


def all_finite(tree):
    """A boolean scalar: every floating leaf of ``tree`` is finite (overflow detection)."""
    ok = None
    for leaf in tree_leaves(tree):
        if not _is_float(leaf):
            continue
        f = lax.reduce("reduce_min", lax.convert_element_type(
            P["isfinite"].bind(lax.asarray(leaf)), np.int32))
        ok = f if ok is None else lax.binary("minimum", ok, f)
    if ok is None:
        return np.bool_(True)
    return lax.compare("ne", ok, 0)


def select_tree(pred, on_true, on_false):
    """Leafwise ``where(pred, a, b)``: keeps the old values when a step is skipped."""
    return tree_map(lambda a, b: lax.where(pred, a, b), on_true, on_false)


def error_vs_float64(fn, *args, policy_name="float32"):
    """Max relative error of ``fn`` run under a policy (state cast to its ``param`` dtype)
    against the same function in float64: every policy reports its error this way.

    >>> float(error_vs_float64(lambda x: sum(x * x), np.linspace(0, 1, 1001))) < 1e-6
    True
    """
    p = get_policy(policy_name)
    ref_args = tree_map(lambda a: np.asarray(a, np.float64), args)
    low_args = tree_map(lambda a: np.asarray(a, p.param), args)
    with policy("float64"):
        ref = np.asarray(fn(*ref_args), np.float64)
    with policy(p):
        low = np.asarray(fn(*low_args)).astype(np.float64)
    if ref.shape != low.shape:
        raise DTypeError(f"error_vs_float64: shapes differ {ref.shape} vs {low.shape}")
    scale = np.maximum(np.abs(ref).max(), np.finfo(np.float64).tiny)
    return np.abs(low - ref).max() / scale
