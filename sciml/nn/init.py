"""Weight initializers: ``name(shape, fan_in, fan_out, rng) -> float32 array``.

Xavier/Glorot (Glorot and Bengio 2010) keeps the variance of activations and gradients equal
across tanh-like layers: Var = 2 / (fan_in + fan_out). He/Kaiming (He et al. 2015) compensates
ReLU's halving: Var = 2 / fan_in.

>>> import numpy as np
>>> w = initialize("he_normal", (400, 300), np.random.default_rng(0))
>>> round(float(w.std() * np.sqrt(300 / 2)), 1)  # fan_in is the last axis
1.0
"""

from __future__ import annotations

import math

import numpy as np

from autodiff.errors import SciMLError

_DEFAULT_RNG = np.random.default_rng(0)


def fans(shape):
    """(fan_in, fan_out) of a weight: Dense (out, in); Conv (out, in, *kernel)."""
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def zeros(shape, rng):
    return np.zeros(shape)


def ones(shape, rng):
    return np.ones(shape)


def normal(shape, rng, sigma=0.01):
    return rng.normal(0.0, sigma, shape)


def uniform(shape, rng, scale=0.07):
    return rng.uniform(-scale, scale, shape)


def xavier_uniform(shape, rng):
    fi, fo = fans(shape)
    a = math.sqrt(6.0 / (fi + fo))
    return rng.uniform(-a, a, shape)


def xavier_normal(shape, rng):
    fi, fo = fans(shape)
    return rng.normal(0.0, math.sqrt(2.0 / (fi + fo)), shape)


def he_uniform(shape, rng):
    a = math.sqrt(6.0 / fans(shape)[0])
    return rng.uniform(-a, a, shape)


def he_normal(shape, rng):
    return rng.normal(0.0, math.sqrt(2.0 / fans(shape)[0]), shape)


INITIALIZERS = {f.__name__: f for f in (
    zeros, ones, normal, uniform, xavier_uniform, xavier_normal, he_uniform, he_normal)}
INITIALIZERS.update(XavierUniform=xavier_uniform, XavierNormal=xavier_normal,
                    HeUniform=he_uniform, HeNormal=he_normal, Normal=normal, Zero=zeros,
                    One=ones)


def initialize(init, shape, rng=None, dtype=np.float32):
    """An array of ``shape`` from an initializer name, a callable ``(shape, rng)`` or an array."""
    rng = _DEFAULT_RNG if rng is None else rng
    if isinstance(init, str):
        if init not in INITIALIZERS:
            raise SciMLError(f"initialize: unknown initializer {init!r}; choose from "
                             f"{sorted(INITIALIZERS)}")
        init = INITIALIZERS[init]
    value = init(tuple(shape), rng) if callable(init) else np.asarray(init)
    value = np.asarray(value)
    if value.shape != tuple(shape):
        raise SciMLError(f"initialize: initializer gave shape {value.shape}, expected {shape}")
    return value.astype(dtype)
