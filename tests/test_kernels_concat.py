"""Concatenations as fusible padded reads and selects (kernels/concat.py): the compiled
results equal numpy's concatenation bit for bit, for every axis, dtype and piece layout, and
inside loop bodies too."""

import numpy as np
import pytest

import sciml
import sciml.numpy as snp
from autodiff.ops import control
from autodiff.trace import make_graph
from kernels import jit as kjit
from kernels.concat import expand_concatenates


def _routines(f, *args):
    return [r.prim for r in sciml.jit(f).lower(*args).routines.values()]


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "bool"])
def test_pieces_along_each_axis(axis, dtype):
    r = np.random.default_rng(0)
    a = (r.standard_normal((3, 4, 5)) * 10).astype(dtype)
    b = (r.standard_normal((3, 4, 5)) * 10).astype(dtype)
    c = np.take(a, [0], axis=axis)  # a piece one wide

    def f(a, b, c):
        return np.concatenate([a, c, b, a], axis=axis)

    got = sciml.jit(f)(a, b, c)
    np.testing.assert_array_equal(got, np.concatenate([a, c, b, a], axis=axis))
    assert got.dtype == a.dtype
    assert "concatenate" not in _routines(f, a, b, c)


def test_signed_zeros_nans_and_empty_pieces():
    """Values are selected, not added: -0.0 and NaN payloads pass; empty pieces vanish."""
    a = np.array([[-0.0, np.nan, 1.0]])
    b = np.array([[np.inf, -np.inf, -0.0]])
    e = np.zeros((0, 3))

    def f(a, b, e):
        return np.concatenate([e, a, e, b], axis=0) * 1.0

    got = sciml.jit(f)(a, b, e)
    want = np.concatenate([a, b], axis=0)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))


def test_constant_pieces_and_stencils_of_the_result():
    """A column of zeros above a field, then a vertical difference of the result (pom2k's
    layer fluxes): one value read at two offsets."""
    x = np.random.default_rng(1).random((6, 7, 8))

    def f(x):
        col = np.concatenate([np.zeros_like(x[:1]), x[:-1] * 2.0], axis=0)
        return col - snp.shift(col, (1, 0, 0), boundary="zero")

    got = sciml.jit(f)(x)
    col = np.concatenate([np.zeros_like(x[:1]), x[:-1] * 2.0], axis=0)
    want = col - np.concatenate([col[1:], np.zeros_like(col[:1])], axis=0)
    np.testing.assert_array_equal(got, want)
    assert _routines(f, x) == []


def test_concatenation_inside_a_loop_body():
    x = np.random.default_rng(2).random((5, 4))

    def f(x):
        def body(i, u):
            return np.concatenate([u[1:], u[:1]], axis=0) * 0.5 + u * 0.25
        return control.fori_loop(0, 3, body, x)

    want = x
    for _ in range(3):
        want = np.concatenate([want[1:], want[:1]], axis=0) * 0.5 + want * 0.25
    np.testing.assert_array_equal(sciml.jit(f)(x), want)
    g = expand_concatenates(make_graph(f, x))
    loop = [n for n in g.body if n.prim.name == "fori_loop"][0]
    assert not any(n.prim.name == "concatenate" for n in loop.params["body"].body)


def test_gradient_through_a_compiled_concatenation():
    x = np.random.default_rng(3).random(6)

    def loss(x):
        y = np.concatenate([x[3:], x[:3] * 2.0])
        return np.sum(y * y * np.arange(1.0, 7.0))

    g = sciml.jit(sciml.grad(loss))(x)
    w = np.arange(1.0, 7.0)
    want = np.concatenate([2 * 4.0 * x[:3] * w[3:], 2 * x[3:] * w[:3]])
    np.testing.assert_allclose(g, want, rtol=1e-14)


def test_graph_without_concatenations_is_returned_as_is():
    g = make_graph(lambda x: x * 2.0, np.zeros(3))
    assert expand_concatenates(g) is g
    assert kjit.compile_graph(g).count_kernels() == 1


def _slice_groups(f, *args):
    compiled = sciml.jit(f).lower(*args)
    return [g for g in compiled.groups if "slice" in str(g)]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_of_one_array_are_read_in_place(axis):
    """Pieces sliced along the concatenation axis from an array as long as the result
    (pom2k's copy of layer kb-1 into kb, a rotation) are shifted reads of that array: the
    same values, and no kernel copies the slices."""
    x = np.random.default_rng(4).random((5, 6, 7)) * 2.0 - 1.0
    n = x.shape[axis]

    def take(a, lo, hi):
        return np.take(a, np.arange(lo, hi), axis=axis)

    def fill_last(x):
        y = x * 3.0
        return np.concatenate([y[(slice(None),) * axis + (slice(0, n - 1),)],
                               y[(slice(None),) * axis + (slice(n - 2, n - 1),)]], axis=axis)

    def rotate(x):
        return np.concatenate([x[(slice(None),) * axis + (slice(2, None),)],
                               x[(slice(None),) * axis + (slice(0, 2),)]], axis=axis) + x

    y = x * 3.0
    np.testing.assert_array_equal(
        sciml.jit(fill_last)(x),
        np.concatenate([take(y, 0, n - 1), take(y, n - 2, n - 1)], axis=axis))
    np.testing.assert_array_equal(sciml.jit(rotate)(x), np.roll(x, -2, axis=axis) + x)
    assert _slice_groups(fill_last, x) == [] and _slice_groups(rotate, x) == []


def test_other_slices_stay_padded_reads():
    """Strided slices, slices across a second axis and sources of another length keep the
    padded read of the slice (the values are the same either way)."""
    r = np.random.default_rng(5)
    x, y = r.random((6, 5)), r.random((2, 4))

    def f(x, y):
        strided = np.concatenate([x[::2], x[1::2]], axis=0)
        two_axes = np.concatenate([x[:4, 1:], y], axis=0)
        shorter = np.concatenate([x[:3], x[4:]], axis=0)
        return strided, two_axes, shorter

    for got, want in zip(sciml.jit(f)(x, y), f(x, y)):
        np.testing.assert_array_equal(got, want)
