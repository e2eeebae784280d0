"""End-to-end smoke tests of the front end: trace, print, save/load, evaluate."""

import numpy as np

import sciml


def test_numpy_code_traces_and_evaluates():
    def f(x, y):
        return np.sin(x) + x @ y

    x, y = np.random.default_rng(0).normal(size=(2, 3, 3))
    g = sciml.make_graph(f, x, y)
    sciml.verify(g)
    np.testing.assert_allclose(sciml.eval_graph(g, x, y), f(x, y), rtol=1e-14)


def test_demo_runs(capsys):
    from sciml.__main__ import main

    main()
    assert "graph f(" in capsys.readouterr().out
