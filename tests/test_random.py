"""sciml.random: Philox4x32-10 against the Random123 known answers and an independent pure-Python
Philox; determinism (eager == traced, same key -> same numbers); distributions (KS tests)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
from autodiff import dtypes
from autodiff.errors import DTypeError
from autodiff.ops.random import philox4x32
from sciml import random

# Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter[4], key[2] -> out[4].
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_philox_known_answers(ctr, key, want):
    assert tuple(int(w) for w in philox4x32(ctr, key)) == want


def _philox_py(ctr, key):
    """Philox4x32-10 with Python integers, written from the paper (a second implementation)."""
    m = 0xFFFFFFFF
    c, k = list(ctr), list(key)
    for r in range(10):
        if r:
            k = [(k[0] + 0x9E3779B9) & m, (k[1] + 0xBB67AE85) & m]
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & m, (p0 >> 32) ^ c[3] ^ k[1], p0 & m]
    return c


def _bits_py(key, i):
    """Element i of random_bits(key) from the documented counter layout."""
    k0, k1 = (int(v) & (2**64 - 1) for v in key)
    block, half = divmod(i, 2)
    ctr = (block & 0xFFFFFFFF, block >> 32, k1 & 0xFFFFFFFF, k1 >> 32)
    w = _philox_py(ctr, (k0 & 0xFFFFFFFF, k0 >> 32))
    u = (w[0] << 32 | w[1]) if half == 0 else (w[2] << 32 | w[3])
    return u - 2**64 if u >= 2**63 else u


@settings(max_examples=10, deadline=None)
@given(st.integers(-2**63, 2**63 - 1), st.integers(-2**63, 2**63 - 1))
def test_bits_match_pure_python_philox(k0, k1):
    key = np.array([k0, k1], np.int64)
    out = random.bits(key, (5,))
    assert [int(v) for v in out] == [_bits_py(key, i) for i in range(5)]


def test_same_key_same_numbers_eager_and_traced():
    k = random.key(1234)

    def draw(k):
        k1, k2 = random.split(k)
        return (random.uniform(k1, (50,), np.float32), random.normal(k2, (7, 3)),
                random.randint(k, (9,), -3, 4), random.bernoulli(k1, 0.25, (6,)),
                random.exponential(k2, (4,)), random.permutation(k, 10))

    eager = draw(k)
    g = sciml.make_graph(draw, k)
    sciml.verify(g)
    traced = sciml.eval_graph(g, k)
    for e, t in zip(eager, traced):
        assert e.dtype == t.dtype and e.shape == t.shape
        np.testing.assert_array_equal(e, t)
    again = draw(random.key(1234))
    for e, a in zip(eager, again):
        np.testing.assert_array_equal(e, a)


def test_keys_and_splits_differ():
    a, b = random.uniform(random.key(0), (8,)), random.uniform(random.key(1), (8,))
    assert not np.array_equal(a, b)
    k = random.key(7)
    ks = random.split(k, 4)
    assert ks.shape == (4, 2) and ks.dtype == np.int64
    draws = [random.uniform(kk, (8,)) for kk in ks] + [random.uniform(k, (8,))]
    assert len({d.tobytes() for d in draws}) == 5
    # A split child is not the parent's bit stream reused.
    assert not np.array_equal(random.bits(k, (2,)), ks[0])


def test_key_from_big_and_negative_seeds():
    assert not np.array_equal(random.key(2**64), random.key(0))
    np.testing.assert_array_equal(random.key(-1), [-1, -1])
    with pytest.raises(DTypeError, match="seed"):
        random.key(1.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, "bfloat16"])
def test_uniform_distribution(dtype):
    u = random.uniform(random.key(3), (20000,), dtype, minval=-2.0, maxval=3.0)
    assert u.dtype == dtypes.dtype(dtype)
    v = u.astype(np.float64)
    assert v.min() >= -2.0 and v.max() < 3.0
    # bfloat16 has only 256 levels per octave: the KS statistic is bounded by the grid.
    assert scipy.stats.kstest(v, scipy.stats.uniform(-2, 5).cdf).statistic < 0.02


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_normal_distribution(dtype):
    z = random.normal(random.key(5), (20000,), dtype).astype(np.float64)
    assert np.isfinite(z).all()
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_exponential_bernoulli_randint_permutation():
    k = random.key(11)
    e = random.exponential(k, (20000,))
    assert e.min() > 0 and scipy.stats.kstest(e, "expon").pvalue > 1e-3
    b = random.bernoulli(k, 0.3, (20000,))
    assert b.dtype == np.bool_ and abs(b.mean() - 0.3) < 0.02
    r = random.randint(k, (30000,), -2, 5, np.int32)
    assert r.dtype == np.int32 and r.min() == -2 and r.max() == 4
    counts = np.bincount(r + 2)
    assert scipy.stats.chisquare(counts).pvalue > 1e-3
    p = random.permutation(k, 50)
    assert sorted(p.tolist()) == list(range(50))


def test_uniform_traced_bounds_and_seed():
    def f(seed, lo, hi):
        return random.uniform(random.key(seed), (100,), minval=lo, maxval=hi)

    args = (np.int64(9), np.float64(1.0), np.float64(2.0))
    g = sciml.make_graph(f, *args)
    out = sciml.eval_graph(g, *args)
    np.testing.assert_array_equal(out, f(9, 1.0, 2.0))
    assert out.min() >= 1.0 and out.max() < 2.0


def test_bad_keys_and_dtypes_raise():
    with pytest.raises(DTypeError, match="key"):
        random.uniform(np.zeros(3, np.int64), (2,))
    with pytest.raises(DTypeError, match="float"):
        random.normal(random.key(0), (2,), np.int32)
    with pytest.raises(DTypeError, match="integer"):
        random.randint(random.key(0), (2,), 0, 3, np.float32)
