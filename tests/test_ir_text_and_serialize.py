"""Text form, save/load round trips and verify on hand-broken graphs."""

import doctest
import json

import numpy as np
import pytest

import sciml
import sciml.numpy as snp
from autodiff import serialize
from autodiff.errors import SerializationError, VerifyError
from autodiff.interpret import eval_graph_flat
from autodiff.ir import AbstractValue, Apply, Const, Graph, Var
from autodiff.passes.rewrite import reachable_graphs
from autodiff.primitives import get
from autodiff.serialize import dumps, graphs_equal, load, loads, save
from autodiff.verify import verify

DTYPES = ["bool", "int32", "int64", "float16", "bfloat16", "float32", "float64", "complex64",
          "complex128"]


@sciml.function
def power(x, n):
    """x ** n by squaring: recursion through cond."""
    return sciml.cond(
        n == 0,
        lambda: snp.ones_like(x),
        lambda: sciml.cond(n % 2 == 0, lambda: power(x * x, n // 2), lambda: x * power(x, n - 1)),
    )


def nested(x, xs):
    """cond inside scan inside fori_loop, a while inside a cond, closures over outer values."""
    scale = snp.sum(x)

    def outer(i, c):
        def step(carry, t):
            y = sciml.cond(t > 0, lambda: carry * scale, lambda: carry - t)
            return y + t, y
        carry, ys = sciml.scan(step, c, xs)
        return carry + snp.sum(ys) * 0.0

    c = sciml.fori_loop(0, 2, outer, x)
    w = sciml.cond(scale > 0,
                   lambda: sciml.while_loop(lambda v: snp.sum(v) < 100.0, lambda v: v * 2.0 + 1.0,
                                            c, max_steps=50),
                   lambda: c)
    return w, power(scale, 5)


def round_trip(g):
    text = dumps(g)
    h = loads(text)
    assert graphs_equal(g, h) and str(g) == str(h)
    assert dumps(h) == text  # saving the loaded graph gives the same bytes
    verify(h)
    return h


def test_nested_control_flow_closures_and_recursion_round_trip(tmp_path):
    g = sciml.make_graph(nested, np.ones(2), np.array([1.0, -2.0, 0.5]))
    path = tmp_path / "g.json"
    save(g, path)
    h = load(path)
    round_trip(g)
    x, xs = np.array([0.5, 1.0]), np.array([1.0, -2.0, 0.5])
    for a, b in zip(sciml.eval_graph(h, x, xs), nested(x, xs)):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    assert "# recursive" in str(h)
    # Recursion is preserved as a cycle of graph objects, not unrolled.
    (callee,) = [n.params["graph"] for s in reachable_graphs(h) for n in s.body
                 if n.prim.name == "call" and s.name not in ("branch0", "branch1")]
    assert any(n.params.get("graph") is callee for s in reachable_graphs(callee) for n in s.body)


@pytest.mark.parametrize("dtype", DTYPES)
def test_constants_of_every_dtype_round_trip_bit_for_bit(dtype):
    values = {"bool": [True, False, True]}.get(dtype, [1, -2, 3])
    if dtype[0] in "fbc" and dtype != "bool":
        values = [np.nan, -0.0, np.inf]
    c = np.array(values, dtype)
    big = np.resize(c, 40)  # printed as <const ...>: only the bytes tell the difference

    def f(x):
        return x == c, snp.where(x == big[:3], x, c), big

    g = sciml.make_graph(f, np.zeros(3, dtype))
    h = round_trip(g)
    out = sciml.eval_graph(h, c)
    assert out[2].dtype == np.dtype(dtype) and out[2].tobytes() == big.tobytes()
    changed = Graph(g.params, g.body, g.outputs[:2] + [Const(np.roll(big, 1))], g.name)
    assert not graphs_equal(g, changed)


def test_nan_inf_params_and_weak_types_round_trip():
    def f(x, s):
        p = get("pad").bind(x, pad_width=((1, 2),), mode="constant", value=float("nan"))
        q = get("pad").bind(x, pad_width=((0, 1),), mode="constant", value=float("-inf"))
        return p, q, s * 2

    g = sciml.make_graph(f, np.zeros(3), 3)
    h = round_trip(g)
    assert "value=nan" in str(h) and "value=-inf" in str(h)
    assert h.params[1].aval.weak and h.params[1].aval == g.params[1].aval
    p, q, s = sciml.eval_graph(h, np.ones(3), 4)
    assert np.isnan(p[[0, 4, 5]]).all() and q[-1] == -np.inf and int(s) == 8


def test_text_form_names_and_nesting():
    g = sciml.make_graph(lambda x: sciml.cond(x > 0, lambda: x * 2.0, lambda: -x), 1.0)
    text = str(g)
    assert text.splitlines()[0] == "graph <lambda>(a:f64[]~) {"
    assert "  b:bool[] = gt a 0.0:f64[]" in text
    assert "branches[0] =" in text and "branches[1] =" in text
    assert text.rstrip().endswith("}")
    assert repr(g).startswith("<Graph <lambda>")


def test_interpreter_agrees_after_round_trip_on_pytrees():
    def f(tree):
        return {"s": tree["a"] + tree["b"][0], "p": tree["b"][1] * 2}

    args = {"a": np.ones(2), "b": (np.arange(2.0), np.int64(3))}
    g = sciml.make_graph(f, args)
    h = round_trip(g)
    out = sciml.eval_graph(h, args)
    np.testing.assert_array_equal(out["s"], np.array([1.0, 2.0]))
    assert int(out["p"]) == 6


def test_serialize_doctest():
    assert doctest.testmod(serialize).failed == 0


# ---------------------------------------------------------------------------------------------
# Corrupted and alien files


def _saved():
    return json.loads(dumps(sciml.make_graph(lambda x: snp.sin(x) * 2.0, np.zeros(3))))


def _corrupt(edit):
    data = _saved()
    edit(data)
    return json.dumps(data)


CORRUPTIONS = {
    "not json": "{'graphs': ",
    "truncated": dumps(sciml.make_graph(lambda x: x + 1.0, np.zeros(2)))[:-20],
    "alien json": json.dumps({"hello": "world"}),
    "a list": json.dumps([1, 2, 3]),
    "future version": _corrupt(lambda d: d.update(version=99)),
    "no graphs": _corrupt(lambda d: d.pop("graphs")),
    "graphs not a list": _corrupt(lambda d: d.update(graphs=5)),
    "unknown primitive": _corrupt(lambda d: d["graphs"][0]["body"][0].update(prim="frobnicate")),
    "unknown dtype": _corrupt(lambda d: d["graphs"][0]["params"][0][1].__setitem__(0, "q7")),
    "undefined variable": _corrupt(lambda d: d["graphs"][0]["body"][1]["inputs"].__setitem__(
        0, 42)),
    "bad constant bytes": _corrupt(lambda d: d["graphs"][0]["body"][1]["inputs"][1]["const"]
                                   .update(data="AAA")),
    "wrong output type": _corrupt(lambda d: d["graphs"][0]["body"][0]["outputs"][0][1]
                                  .__setitem__(1, [7])),
    "params not a dict": _corrupt(lambda d: d["graphs"][0]["body"][0].update(params=[1])),
    "missing subgraph": json.dumps({**json.loads(dumps(sciml.make_graph(
        lambda x: sciml.cond(x > 0, lambda: x, lambda: -x), 1.0))), "graphs": None}),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupted_files_raise_serialization_error(name):
    with pytest.raises(SerializationError):
        loads(CORRUPTIONS[name])


def test_alien_file_on_disk(tmp_path):
    path = tmp_path / "alien.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(SerializationError, match="not a saved sciml graph"):
        load(path)
    path.write_text("")
    with pytest.raises(SerializationError, match="not a saved sciml graph"):
        load(path)


# ---------------------------------------------------------------------------------------------
# verify on hand-broken graphs


def _parts():
    f64 = AbstractValue((3,), np.float64)
    x, y, z = Var(f64), Var(f64), Var(f64)
    return f64, x, y, z, get("sin"), get("add")


def test_verify_accepts_a_good_graph():
    f64, x, y, z, sin, add = _parts()
    g = Graph([x], [Apply(sin, (x,), {}, (y,)), Apply(add, (y, x), {}, (z,))], [z], "good")
    assert verify(g) is g
    np.testing.assert_allclose(eval_graph_flat(g, [np.ones(3)])[0], np.sin(1.0) + 1.0)


def test_verify_use_before_definition():
    f64, x, y, z, sin, add = _parts()
    g = Graph([x], [Apply(add, (y, x), {}, (z,)), Apply(sin, (x,), {}, (y,))], [z], "early")
    with pytest.raises(VerifyError, match=r"graph early, node 0 \(add.*used before"):
        verify(g)


def test_verify_duplicate_definition():
    f64, x, y, z, sin, add = _parts()
    g = Graph([x], [Apply(sin, (x,), {}, (y,)), Apply(sin, (y,), {}, (y,))], [y], "twice")
    with pytest.raises(VerifyError, match=r"node 1 \(sin\).*defined twice"):
        verify(g)
    g2 = Graph([x, x], [], [x], "param_twice")
    with pytest.raises(VerifyError, match="appears twice"):
        verify(g2)


def test_verify_wrong_output_aval():
    f64, x, y, z, sin, add = _parts()
    bad = Var(AbstractValue((4,), np.float32))
    g = Graph([x], [Apply(sin, (x,), {}, (bad,))], [bad], "badtype")
    with pytest.raises(VerifyError, match=r"node 0 \(sin\): output 0 is recorded as f32\[4\], "
                                          r"the rule gives f64\[3\]"):
        verify(g)


def test_verify_wrong_arity():
    f64, x, y, z, sin, add = _parts()
    g = Graph([x], [Apply(add, (x,), {}, (z,))], [z], "arity")
    with pytest.raises(VerifyError, match=r"node 0 \(add\): add takes 2 input\(s\), got 1"):
        verify(g)
    g2 = Graph([x], [Apply(sin, (x,), {}, (y, z))], [z], "two_outs")
    with pytest.raises(VerifyError, match=r"node 0 \(sin\): 2 outputs recorded"):
        verify(g2)


def test_verify_bad_subgraph_and_source_line():
    f64, x, y, z, sin, add = _parts()
    inner = Graph([y], [Apply(add, (y, x), {}, (z,))], [z], "leaky")  # x is free: not closed
    g = Graph([x], [Apply(get("call"), (x,), {"graph": inner}, (Var(f64),), "model.py:7")],
              [x], "outer")
    with pytest.raises(VerifyError, match=r"graph leaky, node 0 \(add\).*used before"):
        verify(g)
    wrong = Graph([y], [], [Var(AbstractValue((2,), np.float64))], "callee")
    g2 = Graph([x], [Apply(get("call"), (x,), {"graph": wrong}, (Var(f64),), "model.py:9")],
               [x], "outer")
    with pytest.raises(VerifyError, match=r"node 0 \(call, from model.py:9\)"):
        verify(g2)


def test_verify_undefined_output_and_const_mismatch():
    f64, x, y, z, sin, add = _parts()
    with pytest.raises(VerifyError, match="output .* is not defined"):
        verify(Graph([x], [], [y], "undef"))
    c = Const(np.zeros(3))
    c.aval = AbstractValue((3,), np.float32)
    with pytest.raises(VerifyError):
        verify(Graph([x], [Apply(add, (x, c), {}, (z,))], [z], "const"))
