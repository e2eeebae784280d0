"""sciml.ocean: C-grid operators, metrics and the batched Thomas solver."""

import numpy as np
import pytest
import scipy.linalg

from sciml.ocean import (
    AXB,
    AXF,
    AYB,
    AYF,
    AZB,
    AZF,
    DXB,
    DXF,
    DYB,
    DYF,
    DZB,
    DZF,
    Grid,
    T,
    U,
    V,
    W,
    csum_z,
    dxb,
    dxf,
    dyb,
    dyf,
    dzb,
    dzf,
    sum_z,
    thomas,
)

A3 = np.arange(24, dtype=float).reshape(2, 3, 4) ** 1.5  # [k, j, i]


def small_grid():
    dx = np.tile(np.array([1.0, 2.0, 4.0, 8.0]), (3, 1))
    dy = np.tile(np.array([[1.0], [3.0], [5.0]]), (1, 4))
    z = np.array([0.0, -0.4, -1.0])
    zz = np.array([-0.2, -0.7, -1.2])
    return Grid(dx=dx, dy=dy, z=z, zz=zz)


def test_averages_by_hand():
    a = np.array([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])  # [j, i]
    np.testing.assert_array_equal(AXF(a), [[1.5, 3.0, 2.0], [12.0, 24.0, 16.0]])
    np.testing.assert_array_equal(AXB(a), [[0.5, 1.5, 3.0], [4.0, 12.0, 24.0]])
    np.testing.assert_array_equal(AYF(a), [[4.5, 9.0, 18.0], [4.0, 8.0, 16.0]])
    np.testing.assert_array_equal(AYB(a), [[0.5, 1.0, 2.0], [4.5, 9.0, 18.0]])
    c = np.array([1.0, 3.0, 7.0])[:, None, None]  # [k, 1, 1]
    np.testing.assert_array_equal(AZF(c).ravel(), [2.0, 5.0, 3.5])
    np.testing.assert_array_equal(AZB(c).ravel(), [0.5, 2.0, 5.0])


def test_differences_by_hand():
    a = np.array([[1.0, 2.0, 4.0]])
    np.testing.assert_array_equal(dxf(a), [[1.0, 2.0, -4.0]])
    np.testing.assert_array_equal(dxb(a), [[1.0, 1.0, 2.0]])
    np.testing.assert_array_equal(dyf(a.T), [[1.0], [2.0], [-4.0]])
    np.testing.assert_array_equal(dyb(a.T), [[1.0], [1.0], [2.0]])
    c = np.array([1.0, 3.0, 7.0])[:, None, None]
    # sigma decreases downward: dzf = a[k] - a[k+1], dzb = a[k-1] - a[k]
    np.testing.assert_array_equal(dzf(c).ravel(), [-2.0, -4.0, 7.0])
    np.testing.assert_array_equal(dzb(c).ravel(), [-1.0, -2.0, -4.0])


def test_metrics_follow_position():
    g = small_grid()
    a = np.ones((3, 3, 4)) * np.array([0.0, 1.0, 3.0, 6.0])
    # u-point input: faces i and i+1 bound cell i, distance dx[i]
    np.testing.assert_allclose(DXF(a, g, U)[0, 0, :3], [1 / 1.0, 2 / 2.0, 3 / 4.0])
    # centre input: centres i-1 and i are (dx[i-1] + dx[i]) / 2 apart
    np.testing.assert_allclose(DXB(a, g, T)[0, 0, 1:], [1 / 1.5, 2 / 3.0, 3 / 6.0])
    np.testing.assert_allclose(DXB(a, g, U)[0, 0, 1:], [1 / 1.0, 2 / 2.0, 3 / 4.0])
    b = np.ones((3, 3, 4)) * np.array([0.0, 2.0, 6.0])[:, None]
    np.testing.assert_allclose(DYF(b, g, V)[0, :2, 0], [2 / 1.0, 4 / 3.0])
    np.testing.assert_allclose(DYB(b, g, T)[0, 1:, 0], [2 / 2.0, 4 / 4.0])
    c = np.ones((3, 3, 4)) * np.array([1.0, 3.0, 7.0])[:, None, None]
    np.testing.assert_allclose(DZF(c, g, W)[:2, 0, 0], [-2 / 0.4, -4 / 0.6])
    np.testing.assert_allclose(DZB(c, g, T)[1:, 0, 0], [-2 / 0.5, -4 / 0.5])
    assert np.all(np.isfinite(DZF(c, g, T))) and np.all(np.isfinite(DXB(a, g, U)))


def test_positions_flip():
    assert T.flip("x") == U and U.flip("x") == T and T.flip("z") == W and V.flip("y") == T


@pytest.mark.parametrize(
    "op, adjoint",
    [(AXF, AXB), (AYF, AYB), (AZF, AZB), (dxf, lambda b: -dxb(b)), (dyf, lambda b: -dyb(b))],
)
def test_adjointness(op, adjoint):
    """<op a, b> = <a, op^T b>: with zero edges the forward operators' transposes are the
    backward ones (averages) and minus the backward ones (differences)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 4, 5, 6))
    assert np.vdot(op(a), b) == pytest.approx(np.vdot(a, adjoint(b)), rel=1e-13)


def test_dzf_adjoint():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 5, 3, 2))
    assert np.vdot(dzf(a), b) == pytest.approx(np.vdot(a, -dzb(b)), rel=1e-13)


def test_vertical_sums():
    np.testing.assert_array_equal(csum_z(A3)[1], A3[0] + A3[1])
    np.testing.assert_array_equal(sum_z(A3), A3[0] + A3[1])


def test_thomas_matches_solve_banded():
    rng = np.random.default_rng(2)
    n, batch = 12, (3, 4)
    sub = rng.uniform(-1, 0, size=(n,) + batch)
    sup = rng.uniform(-1, 0, size=(n,) + batch)
    diag = 2.5 + rng.uniform(0, 1, size=(n,) + batch)
    rhs = rng.normal(size=(n,) + batch)
    x = thomas(sub, diag, sup, rhs)
    for j in range(batch[0]):
        for i in range(batch[1]):
            ab = np.zeros((3, n))
            ab[0, 1:] = sup[:-1, j, i]
            ab[1] = diag[:, j, i]
            ab[2, :-1] = sub[1:, j, i]
            ref = scipy.linalg.solve_banded((1, 1), ab, rhs[:, j, i])
            np.testing.assert_allclose(x[:, j, i], ref, rtol=1e-12, atol=1e-14)


def test_thomas_single_row():
    x = thomas(np.zeros(1), np.array([4.0]), np.zeros(1), np.array([2.0]))
    np.testing.assert_array_equal(x, [0.5])
