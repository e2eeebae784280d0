"""fold_transposes: elementwise chains move across transposes (and axis-splitting or -merging
reshapes) so that transposes meet and compose; values stay the same bit for bit, and the
number of transposes never grows."""

import numpy as np
from graphgen import assert_same, check_pass, param_shapes, programs
from hypothesis import given, settings
from hypothesis import strategies as st

import sciml
import sciml.numpy as snp
from autodiff.interpret import eval_graph_flat
from autodiff.passes import fold_transposes, optimize

SPECIAL = np.array([0.0, -0.0, 1.5, -2.0, np.nan, np.inf, -np.inf, 3.0])


def _transposes(g):
    return [n for n in g.body if n.prim.name == "transpose"]


def _check(f, *shapes):
    g = optimize(sciml.make_graph(f, *[np.zeros(s) for s in shapes]))
    h = optimize(fold_transposes(g))
    rng = np.random.default_rng(0)
    xs = [rng.choice(SPECIAL, size=s) for s in shapes]
    assert_same(eval_graph_flat(h, xs), eval_graph_flat(g, xs))
    assert len(_transposes(h)) <= len(_transposes(g))
    return g, h


def _relu(v):
    return snp.where(v > 0, v, 0.0)


def test_relu_between_inverse_transposes_loses_both():
    # conv -> ReLU -> conv in NCHW with channels-last matmuls, forward and reverse.
    def f(x, ct):
        y = _relu(snp.transpose(x, (0, 3, 1, 2)))
        back = snp.where(snp.transpose(x, (0, 3, 1, 2)) > 0, snp.transpose(ct, (0, 3, 1, 2)),
                         0.0)
        return snp.transpose(y, (0, 2, 3, 1)) * 2.0, snp.transpose(back, (0, 2, 3, 1))

    g, h = _check(f, (2, 3, 4, 5), (2, 3, 4, 5))
    assert len(_transposes(g)) >= 3 and not _transposes(h)


def test_pool_after_relu_composes_through_the_split():
    # ReLU on an NCHW view of channels-last data, then a 2x2 pool's reshape and transpose:
    # one transpose is left, and the pool's gradient path (a merge) composes as well.
    def f(x, c):
        y = _relu(snp.transpose(x, (0, 3, 1, 2)))
        w = snp.transpose(snp.reshape(y, (2, 3, 2, 2, 2, 2)), (3, 5, 0, 1, 2, 4))
        g = snp.reshape(snp.transpose(c, (2, 3, 4, 0, 5, 1)), (2, 3, 4, 4))
        back = snp.where(snp.transpose(x, (0, 3, 1, 2)) > 0, g, 0.0)
        return snp.max(w, axis=(0, 1)), snp.transpose(back, (0, 2, 3, 1))

    g, h = _check(f, (2, 4, 4, 3), (2, 2, 2, 3, 2, 2))
    assert len(_transposes(g)) == 4 and len(_transposes(h)) == 2


def test_nothing_moves_where_a_transpose_would_be_added():
    # The elementwise result is reduced, not transposed: moving would only add work.
    def f(x):
        y = snp.transpose(x, (1, 0)) * 2.0
        return snp.sum(y, axis=0), y + 1.0

    g, h = _check(f, (3, 4))
    assert len(_transposes(h)) == len(_transposes(g)) == 1


@settings(max_examples=50, deadline=None)
@given(programs(), param_shapes(), st.data())
def test_random_graphs_keep_their_values(program, shapes, data):
    check_pass(fold_transposes, program, shapes, data, may_grow=True)


def test_random_transpose_chains():
    rng = np.random.default_rng(3)
    for _ in range(20):
        perm = tuple(rng.permutation(3))
        inv = tuple(np.argsort(perm))

        def f(a, b, perm=perm, inv=inv):
            t = snp.transpose(a, perm)
            u = snp.maximum(t, snp.transpose(b, perm)) * 3.0 - t
            return snp.transpose(snp.sqrt(snp.abs(u)), inv)

        g, h = _check(f, (2, 3, 4), (2, 3, 4))
        assert not _transposes(h)
