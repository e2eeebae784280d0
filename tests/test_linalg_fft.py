"""sciml.linalg, sciml.fft and einsum against numpy and scipy: eager, traced, and through numpy's
own functions (``np.linalg.solve(tracer, ...)``); shapes, dtypes, norms and errors."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff import dtypes
from autodiff.einsum import einsum
from autodiff.errors import DTypeError, ShapeError, UnsupportedError
from autodiff.primitives import PRIMITIVES
from autodiff.serialize import graphs_equal
from sciml import fft, linalg, random

RNG = np.random.default_rng(0)


def traced(f, *args):
    """f evaluated through a verified graph."""
    g = sciml.make_graph(f, *args)
    sciml.verify(g)
    return sciml.eval_graph(g, *args)


def both(f, *args):
    """f eagerly and traced; the two agree bit for bit."""
    e, t = f(*args), traced(f, *args)
    for a, b in zip(sciml.tree_leaves(e), sciml.tree_leaves(t)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    return e


def well(shape, dtype=np.float64):
    n = shape[-1]
    a = RNG.normal(size=shape) + 2 * n * np.eye(n)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * RNG.normal(size=shape)
    return a.astype(dtype)


# ---------------------------------------------------------------------------------------------
# linalg


@pytest.mark.parametrize("sa,sb", [((4, 4), (4,)), ((4, 4), (4, 2)), ((3, 4, 4), (4, 2)),
                                   ((3, 4, 4), (3, 4, 1)), ((1, 4, 4), (2, 4, 3)),
                                   ((2, 3, 3), (3,))])
def test_solve_numpy_semantics(sa, sb):
    a, b = well(sa), RNG.normal(size=sb)
    x = both(linalg.solve, a, b)
    ref = np.linalg.solve(a, b)
    assert x.shape == ref.shape
    np.testing.assert_allclose(x, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.complex64, 1e-5),
                                        (np.complex128, 1e-12), (np.int64, 1e-12),
                                        (np.float16, 3e-3), ("bfloat16", 3e-2)])
def test_solve_dtypes(dtype, rtol):
    d = dtypes.dtype(dtype)
    a = well((4, 4), np.complex128 if d.kind == "c" else np.float64)
    b = RNG.normal(size=(4, 2))
    if d.kind == "i":
        a, b = np.round(a).astype(d), np.round(b * 4).astype(d)
    else:
        a, b = a.astype(d), b.astype(d)
    x = both(linalg.solve, a, b)
    want_dtype = np.float64 if d.kind == "i" else d
    assert x.dtype == want_dtype
    ref = np.linalg.solve(a.astype(np.complex128 if d.kind == "c" else np.float64),
                          np.real(b).astype(np.float64))
    np.testing.assert_allclose(x.astype(ref.dtype), ref, rtol=rtol, atol=rtol)


def test_inv_det_slogdet():
    a = RNG.normal(size=(3, 5, 5))
    np.testing.assert_allclose(both(linalg.inv, a), np.linalg.inv(a), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(both(linalg.det, a), np.linalg.det(a), rtol=1e-12)
    s, ld = both(linalg.slogdet, a)
    rs, rld = np.linalg.slogdet(a)
    np.testing.assert_array_equal(s, rs)
    np.testing.assert_allclose(ld, rld, rtol=1e-12)
    c = a + 1j * RNG.normal(size=a.shape)
    np.testing.assert_allclose(both(linalg.det, c), np.linalg.det(c), rtol=1e-12)
    s, ld = both(linalg.slogdet, c)
    np.testing.assert_allclose(s, np.linalg.slogdet(c)[0], rtol=1e-12)
    # singular, permutation, empty
    assert both(linalg.det, np.ones((3, 3))) == 0
    assert tuple(map(float, linalg.slogdet(np.zeros((2, 2))))) == (0.0, -np.inf)
    assert both(linalg.det, np.eye(3)[[2, 0, 1]]) == 1 and linalg.det(np.eye(3)[[1, 0, 2]]) == -1
    assert both(linalg.det, np.zeros((0, 0))) == 1.0


def test_cholesky_qr_eigh():
    m = RNG.normal(size=(2, 4, 4))
    a = m @ m.transpose(0, 2, 1) + 4 * np.eye(4)
    np.testing.assert_allclose(both(linalg.cholesky, a), np.linalg.cholesky(a), rtol=1e-12)
    np.testing.assert_allclose(linalg.cholesky(a, upper=True),
                               np.linalg.cholesky(a, upper=True), rtol=1e-12)
    for mode in ("reduced", "complete"):
        q, r = both(lambda x, mode=mode: linalg.qr(x, mode), m[:, :, :3])
        rq, rr = np.linalg.qr(m[:, :, :3], mode)
        assert q.shape == rq.shape and r.shape == rr.shape
        np.testing.assert_allclose(np.abs(r), np.abs(rr), atol=1e-12)
        np.testing.assert_allclose(q @ r, m[:, :, :3], atol=1e-12)
    assert linalg.qr(m, "r").shape == (2, 4, 4)
    w, v = both(linalg.eigh, a)
    res = traced(lambda x: (linalg.eigh(x).eigenvalues, linalg.qr(x).R,
                            linalg.slogdet(x).logabsdet), a)
    ref = (np.linalg.eigh(a).eigenvalues, np.linalg.qr(a).R, np.linalg.slogdet(a).logabsdet)
    for x, y in zip(res, ref):
        np.testing.assert_allclose(np.abs(x), np.abs(y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(a), rtol=1e-12)
    np.testing.assert_allclose(a @ v, v * w[:, None, :], atol=1e-10)
    # UPLO="U" reads the other triangle
    junk = np.where(np.tril(np.ones((4, 4), bool), -1), 99.0, a)
    np.testing.assert_allclose(linalg.eigvalsh(junk, "U"), np.linalg.eigvalsh(a), rtol=1e-12)


@pytest.mark.parametrize("trans", [0, 1, 2, "N", "T", "C"])
@pytest.mark.parametrize("lower", [True, False])
def test_solve_triangular_matches_scipy(trans, lower):
    a = well((4, 4), np.complex128)
    b = RNG.normal(size=(4, 3)) + 1j * RNG.normal(size=(4, 3))
    for rhs in (b, b[:, 0]):
        x = both(lambda a, b: linalg.solve_triangular(a, b, trans=trans, lower=lower), a, rhs)
        ref = scipy.linalg.solve_triangular(a, rhs, trans=trans, lower=lower)
        np.testing.assert_allclose(x, ref, rtol=1e-12, atol=1e-14)


def test_triangular_solve_right_side_batched():
    a = well((2, 3, 3))
    b = RNG.normal(size=(2, 5, 3))
    x = both(lambda a, b: linalg.triangular_solve(a, b, lower=True, left_side=False), a, b)
    np.testing.assert_allclose(x @ np.tril(a), b, atol=1e-12)


@pytest.mark.parametrize("ord_", [None, "fro", 1, -1, 2, np.inf, -np.inf, "nuc"])
def test_matrix_norms(ord_):
    a = RNG.normal(size=(3, 4, 5))
    got = both(lambda x: linalg.norm(x, ord_, axis=(1, 2)), a)
    np.testing.assert_allclose(got, np.linalg.norm(a, ord_, axis=(1, 2)), rtol=1e-10)
    kd = linalg.norm(a, ord_, axis=(1, 2), keepdims=True)
    assert kd.shape == np.linalg.norm(a, ord_, axis=(1, 2), keepdims=True).shape


@pytest.mark.parametrize("ord_", [None, 1, 2, 3, 0, np.inf, -np.inf, 0.5])
def test_vector_norms(ord_):
    x = RNG.normal(size=(4, 6)) + 1j * RNG.normal(size=(4, 6))
    x[0, 0] = 0
    got = both(lambda v: linalg.norm(v, ord_, axis=1), x)
    np.testing.assert_allclose(got, np.linalg.norm(x, ord_, axis=1), rtol=1e-12)
    np.testing.assert_allclose(linalg.norm(x), np.linalg.norm(x), rtol=1e-12)
    np.testing.assert_allclose(linalg.vector_norm(x, ord=3), np.linalg.vector_norm(x, ord=3),
                               rtol=1e-12)
    np.testing.assert_allclose(linalg.matrix_norm(x, ord=1), np.linalg.matrix_norm(x, ord=1),
                               rtol=1e-12)


def test_numpy_linalg_functions_trace():
    a, b = well((4, 4)), RNG.normal(size=(4,))

    def f(a, b):
        x = np.linalg.solve(a, b)
        w, _ = np.linalg.eigh(a @ a.T)
        q, r = np.linalg.qr(a)
        return (x, np.linalg.det(a), np.linalg.inv(a), w, np.linalg.norm(a, 2), q @ r,
                np.linalg.cholesky(a @ a.T), np.linalg.multi_dot([a, a, b]))

    out = traced(f, a, b)
    ref = f(a, b)
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-10)
    assert snp.linalg is linalg and snp.fft is fft


def test_linalg_errors():
    with pytest.raises(ShapeError, match=r"solve.*\(3, 4\)"):
        linalg.solve(np.ones((3, 4)), np.ones(3))
    with pytest.raises(ShapeError, match="solve"):
        linalg.solve(np.eye(3), np.ones(4))
    with pytest.raises(ShapeError, match="cholesky"):
        traced(linalg.cholesky, np.ones((2, 3)))
    with pytest.raises(ShapeError, match="triangular_solve"):
        linalg.solve_triangular(np.eye(3), np.ones((2, 2)))
    with pytest.raises(ShapeError, match="eigh"):
        linalg.eigh(np.ones(3))
    with pytest.raises(DTypeError, match="solve.*float or complex"):
        PRIMITIVES["solve"].bind(np.eye(2, dtype=np.int64), np.ones((2, 1), np.int64))
    for fn in (linalg.svd, linalg.eig, linalg.lstsq, linalg.pinv):
        with pytest.raises(UnsupportedError):
            fn(np.eye(2), np.eye(2)) if fn is linalg.lstsq else fn(np.eye(2))


def test_cholesky_not_positive_definite_gives_nan():
    out = linalg.cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))
    assert np.isnan(out).all()


def test_singular_solve_gives_nan_only_where_singular():
    a = np.stack([np.eye(2), np.ones((2, 2))])
    x = both(linalg.solve, a, np.ones((2, 2, 1)))
    np.testing.assert_array_equal(x[0], np.ones((2, 1)))
    assert np.isnan(x[1]).all()


def test_graphs_with_library_primitives_save_and_load():
    def f(a, b, k):
        q, r = linalg.qr(a)
        w, v = linalg.eigh(a @ a.T)
        return (linalg.solve(a, b), linalg.solve_triangular(r, b), w, linalg.det(a),
                fft.irfft(fft.rfft(b)), fft.fftn(a), random.normal(k, (3,)),
                random.split(k, 3), einsum("ij,j->i", a, b))

    a, b, k = RNG.normal(size=(3, 3)), np.ones(3), random.key(0)
    g = sciml.make_graph(f, a, b, k)
    g2 = sciml.loads(sciml.dumps(g))
    assert graphs_equal(g, g2)
    for x, y in zip(sciml.tree_leaves(sciml.eval_graph(g, a, b, k)),
                    sciml.tree_leaves(sciml.eval_graph(g2, a, b, k))):
        assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("module", ["autodiff.einsum", "sciml.linalg", "sciml.fft",
                                    "sciml.random"])
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod)
    assert result.failed == 0 and result.attempted > 0


# ---------------------------------------------------------------------------------------------
# fft


X = RNG.normal(size=(4, 6, 5))
XC = X + 1j * RNG.normal(size=X.shape)


@pytest.mark.parametrize("norm", [None, "backward", "ortho", "forward"])
@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft"])
@pytest.mark.parametrize("n,axis", [(None, -1), (3, 0), (8, 1), (7, -1)])
def test_fft_1d(name, n, axis, norm):
    x = X if name == "rfft" else XC
    got = both(lambda v: getattr(fft, name)(v, n=n, axis=axis, norm=norm), x)
    ref = getattr(np.fft, name)(x, n=n, axis=axis, norm=norm)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["fftn", "ifftn", "rfftn", "irfftn", "fft2", "ifft2", "rfft2",
                                  "irfft2"])
@pytest.mark.parametrize("s,axes", [(None, None), ((3, 8), (0, 2)), ((5, 4), (2, 1)),
                                    (None, (0, 1))])
def test_fft_nd(name, s, axes):
    x = X if name.startswith("rfft") else XC
    kw = {"s": s} if axes is None and name.endswith("2") else {"s": s, "axes": axes}
    if axes is None and not name.endswith("2") and s is not None:
        return
    got = both(lambda v: getattr(fft, name)(v, **kw), x)
    ref = getattr(np.fft, name)(x, **kw)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,want", [(np.float32, np.complex64), (np.float64, np.complex128),
                                        (np.int32, np.complex128), (np.float16, np.complex64),
                                        ("bfloat16", np.complex64)])
def test_fft_dtypes(dtype, want):
    x = (RNG.normal(size=8) * 4).astype(dtypes.dtype(dtype))
    for f in (fft.fft, fft.rfft):
        out = both(f, x)
        assert out.dtype == want
        ref = getattr(np.fft, f.__name__)(x.astype(np.float64))
        tol = 1e-12 if want == np.complex128 else 1e-5
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * 10)
    back = fft.irfft(fft.rfft(x), n=8)
    assert back.dtype == dtypes.real_dtype(want)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9))
def test_rfft_roundtrip_any_length(m, n):
    x = RNG.normal(size=(m, n))
    np.testing.assert_allclose(fft.irfft2(fft.rfft2(x), s=(m, n)), x, atol=1e-12)
    np.testing.assert_allclose(fft.ifftn(fft.fftn(x)).real, x, atol=1e-12)


def test_fft_helpers_and_numpy_dispatch():
    np.testing.assert_array_equal(fft.fftfreq(7, 0.5), np.fft.fftfreq(7, 0.5))
    np.testing.assert_array_equal(fft.rfftfreq(8, 0.1), np.fft.rfftfreq(8, 0.1))
    for n in (6, 7):
        x = np.arange(float(n * 3)).reshape(3, n)
        np.testing.assert_array_equal(both(fft.fftshift, x), np.fft.fftshift(x))
        np.testing.assert_array_equal(both(lambda v: fft.ifftshift(v, axes=1), x),
                                      np.fft.ifftshift(x, axes=1))

    def spectral_derivative(u, d):
        k = 2j * np.pi * np.fft.rfftfreq(u.shape[-1])
        return np.fft.irfft(k * np.fft.rfft(u), n=u.shape[-1]) / d

    u = np.sin(2 * np.pi * np.arange(16) / 16)
    np.testing.assert_allclose(traced(spectral_derivative, u, 1.0), spectral_derivative(u, 1.0),
                               atol=1e-12)
    d = traced(lambda dx: fft.fftfreq(8, dx), np.float64(0.25))
    np.testing.assert_allclose(d, np.fft.fftfreq(8, 0.25))


def test_fft_errors():
    with pytest.raises(ShapeError, match="rfft"):
        fft.rfft(XC)
    with pytest.raises(ShapeError, match="axes"):
        fft.fftn(X, axes=(0, 5))
    with pytest.raises(ShapeError, match="norm"):
        fft.fft(X, norm="bad")
    with pytest.raises(DTypeError, match="fft: the primitive needs a complex operand"):
        PRIMITIVES["fft"].bind(X, axes=(0,))


# ---------------------------------------------------------------------------------------------
# einsum


EINSUMS = [
    ("ij,jk->ik", (2, 3), (3, 4)), ("ij,jk", (2, 3), (3, 4)), ("ii", (3, 3)),
    ("ii->i", (3, 3)), ("ij->ji", (2, 3)), ("ij->", (2, 3)), ("bij,bjk->bik", (5, 2, 3),
                                                                (5, 3, 4)),
    ("...ij,...jk", (5, 2, 3), (3, 4)), ("i,i", (3,), (3,)), ("i,j->ij", (3,), (4,)),
    ("iij->ji", (3, 3, 2)), ("ij,ij->ij", (2, 3), (2, 3)), ("ijk,jil->kl", (2, 3, 4), (3, 2, 5)),
    ("ij,jk->ik", (2, 1), (3, 4)), ("...i,...i->...", (2, 1, 3), (4, 3)), ("ij,kl", (2, 3),
                                                                             (4, 5)),
    ("i->", (0,)), ("ii,i->i", (3, 3), (3,)), ("a b , b c -> c a", (2, 3), (3, 4)),
]


@pytest.mark.parametrize("spec", EINSUMS, ids=lambda s: s[0])
def test_einsum_matches_numpy(spec):
    sub, *shapes = spec
    ops = [RNG.normal(size=s) for s in shapes]
    got = both(lambda *o: einsum(sub, *o), *ops)
    ref = np.einsum(sub, *ops)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traced(lambda *o: np.einsum(sub, *o), *ops), ref, rtol=1e-12,
                               atol=1e-12)


def test_einsum_dtypes_and_errors():
    a, b = np.arange(6, dtype=np.int32).reshape(2, 3), np.ones((3, 2), np.float32)
    out = einsum("ij,jk->ik", a, b)
    assert out.dtype == np.result_type(a, b)
    np.testing.assert_array_equal(out, np.einsum("ij,jk->ik", a, b))
    with pytest.raises(ShapeError, match="einsum"):
        einsum("ij,jk->ik", np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ShapeError, match="einsum"):
        einsum("ijk", np.ones((2, 3)))
    with pytest.raises(UnsupportedError, match="einsum"):
        einsum(np.ones(2), [0])


@pytest.mark.parametrize("sub,shapes", [
    ("i,i,i", [(4,), (4,), (4,)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ij,jk,ki", [(2, 3), (3, 4), (4, 2)]), ("bi,bj,bk->bijk", [(2, 3), (2, 4), (2, 5)]),
    ("ij,j,jk,k", [(2, 3), (3,), (3, 4), (4,)]), ("ab,bc,cd,de->ae", [(2, 3), (3, 2), (2, 3),
                                                                         (3, 2)]),
])
def test_einsum_many_operands(sub, shapes):
    ops = [RNG.normal(size=s) for s in shapes]
    ref = np.einsum(sub, *ops)
    got = both(lambda *o: einsum(sub, *o), *ops)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    traced_np = traced(lambda *o: np.einsum(sub, *o, optimize=True), *ops)
    np.testing.assert_allclose(traced_np, ref, rtol=1e-12, atol=1e-12)
