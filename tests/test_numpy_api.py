"""``sciml.numpy`` and numpy-protocol dispatch agree with numpy.

Each function is written once against a namespace ``xp`` and run four ways: numpy itself (the
reference), ``sciml.numpy`` eagerly on plain arrays, and traced through ``make_graph`` both as
``sciml.numpy`` code and as plain numpy code (``np.sin(tracer)`` dispatches to sciml). Values,
dtypes and shapes must match. Indexing, ``.at[...]`` updates and dtype promotion (Python scalars
weak, bfloat16) have their own tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff import dtypes
from autodiff.indexing import IndexUpdate
from autodiff.lax import getitem

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4, 5))
Y = RNG.normal(size=(5, 2))
V = RNG.normal(size=5)
M = RNG.normal(size=(4, 4))
I32 = RNG.integers(-5, 6, size=(3, 4)).astype(np.int32)


def traced(f, *args):
    g = sciml.make_graph(f, *args)
    sciml.verify(g)
    return sciml.eval_graph(g, *args)


def leaves(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def assert_same(got, ref, what=""):
    for g, r in zip(leaves(got), leaves(ref), strict=True):
        g, r = np.asarray(g), np.asarray(r)
        assert g.dtype == r.dtype, f"{what}: dtype {g.dtype} != numpy's {r.dtype}"
        assert g.shape == r.shape, f"{what}: shape {g.shape} != numpy's {r.shape}"
        if dtypes.is_inexact(r.dtype):
            # A few roundings apart (e.g. exp2 is exp(x * ln 2), not libm's exp2).
            tol = max(1e-12, 8 * dtypes.eps(dtypes.real_dtype(r.dtype)))
            np.testing.assert_allclose(g.astype(np.complex128), r.astype(np.complex128),
                                       rtol=tol, atol=tol, equal_nan=True, err_msg=what)
        else:
            np.testing.assert_array_equal(g, r, err_msg=what)


# (id, function of (xp, *args), args)
FUNCS = [
    ("sin", lambda xp, a: xp.sin(a), (X,)),
    ("exp_log", lambda xp, a: xp.log(xp.exp(a) + 1.0), (X,)),
    ("arith", lambda xp, a, b: (a * 2.0 - 1) / (xp.abs(b) + 0.5) ** 2, (X, V)),
    ("power", lambda xp, a: xp.power(xp.abs(a), 1.5) + xp.square(a) + xp.sqrt(xp.abs(a)), (X,)),
    ("int_ops", lambda xp, a: (a // 3, a % 3, -a, xp.abs(a), a * 2, a & 6, a | 1, ~a), (I32,)),
    ("compare", lambda xp, a, b: (a < b, a >= b, xp.equal(a, b), xp.maximum(a, b)), (X, V)),
    ("where", lambda xp, a: xp.where(a > 0, a, 0.0), (X,)),
    ("clip", lambda xp, a: xp.clip(a, -0.5, 0.5), (X,)),
    ("logical", lambda xp, a: xp.logical_and(a > 0, xp.logical_not(a > 1)), (X,)),
    ("trig", lambda xp, a: (xp.arctan2(a, 1.0), xp.tanh(a), xp.arcsinh(a), xp.hypot(a, a)),
     (X,)),
    ("round", lambda xp, a: (xp.round(a, 2), xp.floor(a), xp.ceil(a), xp.trunc(a), xp.rint(a)),
     (X,)),
    ("exp2_log2", lambda xp, a: (xp.exp2(a), xp.log2(xp.abs(a)), xp.log10(xp.abs(a))),
     (X.astype(np.float32),)),
    ("sum", lambda xp, a: (xp.sum(a), xp.sum(a, axis=1), xp.sum(a, axis=(0, 2), keepdims=True)),
     (X,)),
    ("sum_int", lambda xp, a: (xp.sum(a), xp.sum(a > 0, axis=0), xp.prod(a, axis=1)), (I32,)),
    ("mean_var", lambda xp, a: (xp.mean(a, axis=-1), xp.var(a, axis=0, ddof=1), xp.std(a)),
     (X,)),
    ("mean_int", lambda xp, a: xp.mean(a, axis=0), (I32,)),
    ("max_min", lambda xp, a: (xp.max(a, axis=1), xp.min(a), xp.amax(a, axis=0, keepdims=True)),
     (X,)),
    ("argmax", lambda xp, a: (xp.argmax(a), xp.argmin(a, axis=-1), xp.argmax(a, axis=0)), (X,)),
    ("all_any", lambda xp, a: (xp.all(a > -3, axis=1), xp.any(a > 1)), (X,)),
    ("cumsum", lambda xp, a: (xp.cumsum(a), xp.cumsum(a, axis=-2)), (X,)),
    ("sort", lambda xp, a: (xp.sort(a, axis=0), xp.sort(a, axis=None), xp.argsort(a)), (X,)),
    ("reshape", lambda xp, a: (xp.reshape(a, (4, -1)), xp.ravel(a), xp.transpose(a, (2, 0, 1))),
     (X,)),
    ("dims", lambda xp, a: (xp.expand_dims(a, (0, -1)), xp.squeeze(a[:, :1]),
                            xp.swapaxes(a, 0, 2), xp.moveaxis(a, 0, -1)), (X,)),
    ("join", lambda xp, a: (xp.concatenate([a, a * 2], axis=-1), xp.stack([a, a], axis=1),
                            xp.hstack([a, a]), xp.vstack([a, a])), (X,)),
    ("broadcast_to", lambda xp, a: xp.broadcast_to(a, (2, 3, 4, 5)), (X,)),
    ("flip_roll", lambda xp, a: (xp.flip(a, 1), xp.flip(a), xp.roll(a, 2, axis=2),
                                 xp.roll(a, -3), xp.roll(a, (1, -2), axis=(0, 2))), (X,)),
    ("pad", lambda xp, a: (xp.pad(a, 1), xp.pad(a, ((1, 0), (0, 2), (1, 1)), mode="wrap"),
                           xp.pad(a, 2, mode="edge"),
                           xp.pad(a, ((0, 0), (1, 1), (2, 0)), constant_values=3.0)), (X,)),
    ("diff_take", lambda xp, a: (xp.diff(a, 2, axis=1), xp.take(a, [0, 2], axis=1),
                                 xp.take(a, [5, 7])), (X,)),
    ("take_along_axis", lambda xp, a: (xp.take_along_axis(a, xp.argsort(a, axis=1), axis=1),
                                       xp.take_along_axis(a, np.zeros((1, 1, 2), int), -1),
                                       xp.take_along_axis(a, np.array([3, 0]), None)), (X,)),
    ("products", lambda xp, a, b: (xp.dot(a, b), xp.tensordot(a, b, axes=([2], [0])),
                                   xp.matmul(a, b), xp.einsum("ijk,kl->ijl", a, b)), (X, Y)),
    ("vectors", lambda xp, v: (xp.inner(v, v), xp.outer(v, v), xp.vdot(v, v),
                               xp.cross(v[:3], v[1:4])), (V,)),
    ("matrix", lambda xp, m: (xp.trace(m), xp.diag(m), xp.diag(m[0]), m @ m[0], m[0] @ m),
     (M,)),
    ("meshgrid", lambda xp, v: (*xp.meshgrid(v, v[:3]), *xp.meshgrid(v, v[:3], indexing="ij")),
     (V,)),
    ("like", lambda xp, a: (xp.zeros_like(a) + a, xp.full_like(a, 2.0) * a, xp.ones_like(a)),
     (X,)),
    ("complex", lambda xp, a: (xp.real(a * 1j), xp.imag(a * 1j + 1), xp.conj(a + 2j),
                               xp.abs(a + 1j)), (X,)),
    ("special", lambda xp, a: (xp.sinc(a), xp.heaviside(a, 0.5), xp.fmax(a, xp.nan),
                               xp.deg2rad(a), xp.isfinite(a / 0.0)), (X,)),
    ("linalg", lambda xp, m, v: (xp.linalg.solve(m + 8 * np.eye(4), v[:4]), xp.linalg.det(m),
                                 xp.linalg.norm(m)), (M, V)),
    ("fft", lambda xp, a: (xp.fft.rfft(a), xp.fft.fftn(a, axes=(0, 1))), (X,)),
]


@pytest.mark.parametrize("name,f,args", FUNCS, ids=[f[0] for f in FUNCS])
def test_function_matches_numpy(name, f, args):
    with np.errstate(all="ignore"):
        ref = f(np, *args)
        eager = f(snp, *args)
        assert_same(eager, ref, what=f"{name} eager")
        assert_same(traced(lambda *a: f(snp, *a), *args), ref, what=f"{name} sciml.numpy traced")
        assert_same(traced(lambda *a: f(np, *a), *args), ref, what=f"{name} numpy traced")


def test_tracer_methods_and_operators():
    def f(a):
        return (a.T, a.mT, a.sum(axis=1), a.mean(), a.max(axis=0, keepdims=True), a.min(axis=2),
                a.prod(axis=1, keepdims=True), a.astype(np.float32), a.ravel(), a.flatten(),
                a.reshape(5, 12), a.transpose(1, 0, 2), a[:1].squeeze(0), a.dot(Y), a.real,
                a.conj(), abs(a), -a, +a, 1 - a, 1 / a, 2.0 ** a, a ** -2, a % -0.7, a // 0.3,
                a == a, a != 1.0, sum(r for r in a), len(a) * a)

    with np.errstate(all="ignore"):
        assert_same(traced(f, X), f(X))
    assert_same(traced(lambda v: v.T, V), V.T)


INDICES = [
    0, -1, (1, 2), (slice(None), 1), slice(1, None), slice(None, None, -1),
    (slice(None), slice(3, 0, -2)), (slice(None, None, 3), -2, slice(4, None, -3)),
    (None, 1), (Ellipsis, 2), (1, Ellipsis), (Ellipsis, None), (None, Ellipsis, None), (),
    (Ellipsis,), (slice(-100, 100),), np.int64(1), (1, 2, 3), (np.array(1), 2),
    np.array([2, 0, -1]), [0, 2], ([0, 2], [1, 1]), (slice(None), np.array([0, 3])),
    (np.array([0, 2]), np.array([1, 3])), (np.array([[0], [2]]), slice(None), np.array([1, 4])),
    (1, np.array([0, 2])), (np.array([0, 2]), 1, np.array([1, 4])),
    (slice(None), np.array([0, 1]), np.array([2, 3])), (Ellipsis, np.array([1, 0]), slice(None)),
    X[:, :, 0] > 0, (slice(None), np.array([True, False, True, True])),
]


def _id(idx):
    return repr(idx).replace(" ", "").replace("\n", "")[:40]


@pytest.mark.parametrize("idx", INDICES, ids=[_id(i) for i in INDICES])
def test_indexing_matches_numpy(idx):
    ref = X[idx]
    assert_same(getitem(X, idx), ref)
    assert_same(traced(lambda a: a[idx], X), ref)


@settings(max_examples=30, deadline=None)
@given(st.tuples(*[st.one_of(st.integers(-4, 3), st.builds(slice, st.none() | st.integers(-6, 6),
                                                           st.none() | st.integers(-6, 6),
                                                           st.sampled_from([None, 1, 2, -1,
                                                                            -3])))
                   for _ in range(2)]))
def test_basic_indexing_property(idx):
    x = np.arange(16.0).reshape(4, 4)
    assert_same(traced(lambda a: a[idx], x), x[idx])


def test_traced_integer_index():
    def f(a, i):
        return a[i], a[:, i], a[i, -1]

    for i in (np.int64(2), np.int64(-1)):
        assert_same(traced(f, X, i), f(X, int(i)))
    assert_same(traced(lambda a, i: a[i], X, np.array([2, 0])), X[np.array([2, 0])])


AT_INDICES = [1, (slice(None), 2), np.array([0, 0, 2]), (np.array([0, 2]), slice(1, 3)),
              (Ellipsis, -1), X > 0.5, (slice(None, None, -2), 1)]


@pytest.mark.parametrize("idx", AT_INDICES, ids=[_id(i) for i in AT_INDICES])
@pytest.mark.parametrize("op", ["add", "set"])
def test_at_updates_match_numpy(idx, op):
    shape = X[idx].shape
    v = np.arange(float(np.prod(shape))).reshape(shape) + 1.0
    ref = X.copy()
    if op == "add":
        np.add.at(ref, idx, v)
    else:
        ref[idx] = v  # repeated indices: numpy keeps the last write
    assert_same(getattr(IndexUpdate(X, idx), op)(v), ref)
    assert_same(traced(lambda a, w: getattr(a.at[idx], op)(w), X, v), ref)
    assert_same(traced(lambda a: getattr(a.at[idx], op)(2.0), X),
                getattr(IndexUpdate(X, idx), op)(2.0))


def test_at_get_and_dtype_of_update():
    assert_same(traced(lambda a: a.at[1:3].get(), X), X[1:3])
    out = traced(lambda a: a.at[0].add(1), I32)
    ref = I32.copy()
    ref[0] += 1
    assert_same(out, ref)


# ---------------------------------------------------------------------------------------------
# Promotion: Python scalars are weak (NEP 50), numpy scalars and arrays are strong.


F32 = np.ones(3, np.float32)
I32V = np.ones(3, np.int32)
BOOL = np.array([True, False, True])
F16 = np.ones(3, np.float16)
BF16 = np.ones(3, dtypes.bfloat16)

PROMOTIONS = [
    ("f32*2.0", lambda a: a * 2.0, F32),
    ("f32*2", lambda a: a * 2, F32),
    ("f32*2j", lambda a: a * 2j, F32),
    ("f32+f64 array", lambda a: a + np.ones(3), F32),
    ("f32*np.float64", lambda a: a * np.float64(2.0), F32),
    ("i32*2.0", lambda a: a * 2.0, I32V),
    ("i32*2", lambda a: a * 2, I32V),
    ("i32/2", lambda a: a / 2, I32V),
    ("i32+i64", lambda a: a + np.ones(3, np.int64), I32V),
    ("i32*np.float32", lambda a: a * np.float32(2), I32V),
    ("i32**2", lambda a: a ** 2, I32V),
    ("2**i32", lambda a: 2 ** a, I32V),
    ("i32//2", lambda a: a // 2, I32V),
    ("sin(i32)", np.sin, I32V),
    ("sum(i32)", np.sum, I32V),
    ("mean(i32)", np.mean, I32V),
    ("bool+bool", lambda a: a + a, BOOL),
    ("bool*2.5", lambda a: a * 2.5, BOOL),
    ("bool*2", lambda a: a * 2, BOOL),
    ("sqrt(bool)", np.sqrt, BOOL),
    ("sum(bool)", np.sum, BOOL),
    ("f16*2.0", lambda a: a * 2.0, F16),
    ("f16+f32", lambda a: a + F32, F16),
    ("mean(f16)", np.mean, F16),
    ("f32>1.5", lambda a: a > 1.5, F32),
    ("where f32 0.0", lambda a: np.where(a > 0, a, 0.0), F32),
    ("where i32 0.5", lambda a: np.where(a > 0, a, 0.5), I32V),
    ("bf16+f32", lambda a: a + F32, BF16),
    ("bf16+f64", lambda a: a + np.ones(3), BF16),
    ("bf16 astype f32", lambda a: a.astype(np.float32), BF16),
]


@pytest.mark.parametrize("name,f,x", PROMOTIONS, ids=[p[0] for p in PROMOTIONS])
def test_promotion_matches_numpy(name, f, x):
    with np.errstate(all="ignore"):
        assert_same(traced(f, x), f(x), what=name)


@pytest.mark.parametrize("f,want", [
    (lambda a: a * 2.0, dtypes.bfloat16),                  # numpy/ml_dtypes: float32
    (lambda a: a + np.ones(3, np.int32), dtypes.bfloat16),  # numpy/ml_dtypes: float64
    (lambda a: a + F16, np.float32),                       # neither half type holds the other
    (lambda a: np.sin(a), dtypes.bfloat16),
    (lambda a: np.sum(a), dtypes.bfloat16),
])
def test_bfloat16_promotion(f, want):
    """bfloat16 follows the weak-scalar lattice (as JAX does), not ml_dtypes' value-based
    promotion: a Python float or an integer array does not widen it."""
    out = traced(f, BF16)
    assert out.dtype == np.dtype(want)
    np.testing.assert_allclose(out.astype(np.float64), np.asarray(f(BF16)).astype(np.float64),
                               rtol=1e-2)


def test_bfloat16_arithmetic_rounds_to_bfloat16():
    x = np.array([1.0, 3.0, 1e-3], dtypes.bfloat16)
    out = traced(lambda a: a / 3.0 + 1.0, x)
    assert out.dtype == dtypes.bfloat16
    ref = (x.astype(np.float32) / 3.0 + 1.0)
    np.testing.assert_allclose(out.astype(np.float32), ref, rtol=2 ** -7)
    eager = snp.add(snp.divide(x, 3.0), 1.0)  # eager sciml.numpy follows the same lattice
    assert eager.dtype == dtypes.bfloat16 and eager.tobytes() == out.tobytes()


def test_eager_is_plain_numpy():
    out = snp.sum(snp.sin(X) * 2.0, axis=0)
    assert isinstance(out, np.ndarray)
    assert_same(out, np.sum(np.sin(X) * 2.0, axis=0))
    assert isinstance(snp.zeros(3), np.ndarray) and snp.iota((2, 3), np.int32, 1).dtype == np.int32
