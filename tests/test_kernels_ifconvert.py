"""If-conversion of conds for the GPU target (kernels/ifconvert.py): both branches and a
select give the chosen branch's values bit for bit; conds with work that is not kernel work
stay conds; a GPU loop body with a cond of kernel work keeps no host branch."""

import numpy as np
import pytest

import sciml  # noqa: F401  (attaches the numpy handlers)
from autodiff.interpret import eval_graph
from autodiff.ops import control
from autodiff.trace import make_graph
from kernels.fuse import Cluster, classify
from kernels.ifconvert import if_convert
from kernels.jit import compile_graph


def _conds(g):
    return [n for n in g.body if n.prim.name == "cond"]


def _kernel_work(node):
    return classify(node) is not None


@pytest.mark.parametrize("pred", [True, False])
def test_bool_cond_selects_the_branch(pred):
    x = np.random.default_rng(0).standard_normal((4, 5))

    def f(p, x):
        return control.cond(p, lambda: (np.sin(x) * 2.0, x + 1.0), lambda: (x * 3.0, -x))

    g = make_graph(f, np.bool_(pred), x)
    h = if_convert(g, _kernel_work)
    assert _conds(g) and not _conds(h)
    for got, want in zip(eval_graph(h, np.bool_(pred), x), eval_graph(g, np.bool_(pred), x)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("index", [-3, 0, 1, 2, 7])
def test_integer_switch_is_clamped_like_cond(index):
    x = np.arange(6.0)

    def f(i, x):
        return control.switch(i, [lambda: x + 1.0, lambda: x * 2.0, lambda: x - 5.0])

    g = make_graph(f, np.int64(0), x)
    h = if_convert(g, _kernel_work)
    assert not _conds(h)
    np.testing.assert_array_equal(eval_graph(h, np.int64(index), x),
                                  eval_graph(g, np.int64(index), x))


def test_branches_with_other_work_stay_a_cond():
    x = np.random.default_rng(1).standard_normal(8)

    def f(p, x):
        return control.cond(p, lambda: np.sort(x), lambda: x * 2.0)

    g = make_graph(f, np.bool_(True), x)
    assert _conds(if_convert(g, _kernel_work))


def test_gpu_loop_body_keeps_no_host_branch():
    """A fori_loop whose body picks a term every third step (GOMD's advection every ispadv
    sub-steps): the GPU body is kernels only, the CPU body keeps its cond."""
    x = np.random.default_rng(2).standard_normal((6, 7))

    def f(x):
        def body(i, u):
            adv = control.cond(i % 3 == 0, lambda: u * 0.5 + np.roll(u, 1, 0),
                               lambda: u * 0.0)
            return u + 0.1 * adv
        return control.fori_loop(0, 5, body, x)

    g = make_graph(f, x)
    loop = [n for n in g.body if n.prim.name == "fori_loop"][0]
    for backend, conds in (("cpu", 1), ("gpu", 0)):
        body = compile_graph(loop.params["body"], backend, build=False)
        hosted = [b for b in body.groups if not isinstance(b, Cluster)]
        assert sum(b.node.prim.name == "cond" for b in hosted) == conds, backend


def test_docstring_runs():
    import doctest

    from kernels import ifconvert

    assert doctest.testmod(ifconvert).failed == 0
