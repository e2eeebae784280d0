"""sciml.precision: policies and scopes, casts in layers, dynamic loss scaling on forced
overflow, float64 accumulation, error reports against float64."""

import doctest

import numpy as np
import pytest

import sciml
import sciml.nn as nn
import sciml.optim as optim
from sciml import precision
from sciml.errors import SciMLError

RNG = np.random.default_rng(2)


def test_policies_aliases_and_scopes():
    assert precision.get_policy("O0").name == "float32"
    assert precision.get_policy("O2").name == "mixed-fp16"
    assert precision.get_policy("O3").compute == np.float16
    assert precision.get_policy("mixed-bf16").safe == np.float32
    with pytest.raises(SciMLError, match="unknown policy"):
        precision.get_policy("O4")
    x = np.ones(3, np.float32)
    assert precision.current() is None
    with precision.policy("mixed-fp16"):
        assert precision.cast_compute(x)[0].dtype == np.float16
        with precision.policy("mixed-bf16"):  # the innermost scope wins
            assert precision.cast_compute(x)[0].dtype.name == "bfloat16"
        assert precision.cast_safe(np.ones(2, np.float16)).dtype == np.float32
        assert precision.cast_compute(np.arange(3))[0].dtype == np.int64  # ints untouched
    assert precision.current() is None


def test_mixed_bf16_forward_casts_white_list_and_keeps_black_list_float32():
    net = nn.SequentialCell(nn.Dense(8, 16), nn.ReLU(), nn.LayerNorm(16), nn.Dense(16, 4))
    x = RNG.normal(size=(5, 8)).astype(np.float32)

    def f(p, x):
        with precision.policy("mixed-bf16"):
            out = net.apply(p, x)[0]
            return nn.functional.log_softmax(out)

    g = sciml.make_graph(f, net.parameters(), x)
    dots = [n for n in g.body if n.prim.name == "dot_general"]
    assert all(n.inputs[0].aval.dtype.name == "bfloat16" for n in dots)
    assert g.out_avals[0].dtype == np.float32  # softmax ran in float32
    ref = np.asarray(f(net.parameters(), x), np.float64)
    full = np.asarray(nn.functional.log_softmax(net(x)), np.float64)
    assert np.abs(ref - full).max() < 0.1  # bf16 has 8 bits of mantissa


def _fp16_step(init_scale, factor=2.0 ** 8):
    rng = np.random.default_rng(0)  # its own weights: the outcome must not depend on test order
    net = nn.SequentialCell(nn.Dense(4, 8, rng=rng), nn.Tanh(), nn.Dense(8, 1, rng=rng))
    ls = precision.LossScale(init=init_scale, factor=factor, window=3)
    step = nn.TrainOneStep(net, nn.MSELoss(), optim.SGD(0.05), policy="mixed-fp16",
                           loss_scale=ls)
    return net, step


@pytest.mark.filterwarnings("ignore:overflow", "ignore:invalid value")
def test_loss_scaling_skips_overflowing_steps_and_lowers_the_scale():
    x = RNG.normal(size=(16, 4)).astype(np.float32)
    y = RNG.normal(size=(16, 1)).astype(np.float32)
    _, step = _fp16_step(2.0 ** 40)
    state = step.init()
    before = {k: v.copy() for k, v in state["params"].items()}
    state, loss = step(state, x, y)
    # 2^40 times the loss overflows float16 in the backward pass: the step is skipped.
    assert float(state["scale"]["scale"]) == 2.0 ** 32
    for k in before:
        np.testing.assert_array_equal(state["params"][k], before[k])
        assert state["params"][k].dtype == np.float32
    scales = []
    for _ in range(8):
        state, loss = step(state, x, y)
        scales.append(float(state["scale"]["scale"]))
    assert min(scales) <= 2.0 ** 24   # lowered until the gradients are finite
    assert any(np.any(state["params"][k] != before[k]) for k in before)  # then it trains
    assert np.isfinite(float(loss))


def test_loss_scale_grows_after_a_window_of_good_steps():
    x = RNG.normal(size=(16, 4)).astype(np.float32)
    y = RNG.normal(size=(16, 1)).astype(np.float32)
    _, step = _fp16_step(64.0, factor=2.0)
    state = step.init()
    losses = []
    for _ in range(7):
        state, loss = step(state, x, y)
        losses.append(float(loss))
    assert float(state["scale"]["scale"]) == 64.0 * 4  # grew after steps 3 and 6
    assert losses[-1] < losses[0]


def test_all_finite_and_select():
    assert bool(precision.all_finite({"a": np.ones(2), "b": np.array([np.nan])})) is False
    assert bool(precision.all_finite([np.ones(2, np.float16), np.arange(3)])) is True
    out = precision.select_tree(np.bool_(False), {"a": np.ones(2)}, {"a": np.zeros(2)})
    np.testing.assert_array_equal(out["a"], 0)


def test_float64_accumulation_for_float32_state():
    x = np.full(10 ** 6, 0.1, np.float32)
    with precision.policy("float32"):
        g = sciml.make_graph(precision.sum, x)
    assert any(n.prim.name == "reduce_sum" and n.inputs[0].aval.dtype == np.float64
               for n in g.body)
    with precision.policy("float32"):
        s = precision.sum(x)
    assert s.dtype == np.float32
    assert abs(float(s) - 1e6 * float(np.float32(0.1))) <= 0.07


def test_error_reports_against_float64_for_a_solver_step():
    # A heat-equation step written with the policy's compute casts: each policy reports its
    # error against float64, and lower precision reports a larger error.
    def heat(u):
        (u,) = precision.cast_compute(u)
        for _ in range(20):
            u = u + 0.2 * (np.roll(u, 1) - 2 * u + np.roll(u, -1))
        return u

    u0 = np.sin(np.linspace(0, 2 * np.pi, 64, endpoint=False))
    e32 = precision.error_vs_float64(heat, u0, policy_name="float32")
    ebf = precision.error_vs_float64(heat, u0, policy_name="mixed-bf16")
    e16 = precision.error_vs_float64(heat, u0, policy_name="fp16")
    assert e32 < 1e-6
    assert 1e-5 < e16 < 5e-2 and 1e-5 < ebf < 5e-2


def test_docstrings_run():
    assert doctest.testmod(precision).failed == 0


def test_white_and_black_lists_are_data():
    x = np.ones((1, 1, 4, 4), np.float32)
    conv = nn.Conv2d(1, 2, 3)
    with precision.policy("mixed-bf16"):
        assert conv(x).dtype.name == "bfloat16"
        precision.WHITE_LIST.discard("conv")
        try:
            assert conv(x).dtype == np.float32
        finally:
            precision.WHITE_LIST.add("conv")
        assert precision.cast_for("batch_norm", np.ones(2, np.float16))[0].dtype == np.float32
        assert precision.cast_for("reshape", np.ones(2, np.float16))[0].dtype == np.float16
