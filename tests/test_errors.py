"""Errors are API: each mistake raises the right sciml error, and its message names the operation,
the shapes/dtypes involved and the user's source line (this file and the line of the mistake)."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import sciml
from autodiff.errors import (
    ArityError,
    DTypeError,
    SciMLError,
    ShapeError,
    TracerError,
    UnsupportedError,
)
from autodiff.primitives import PRIMITIVES
from sciml import fft, linalg, random


def line_of(fn, marker):
    """The line number of the source line of ``fn`` that contains ``marker``."""
    lines, start = inspect.getsourcelines(fn)
    for k, text in enumerate(lines):
        if marker in text:
            return start + k
    raise AssertionError(f"marker {marker!r} not in {fn}")


def check(exc_type, fn, args, *needles, marker="# <-"):
    """``fn(*args)`` traced raises ``exc_type`` whose message has every needle and names the
    line of ``fn`` marked with ``marker`` in this file."""
    with pytest.raises(exc_type) as info:
        g = sciml.make_graph(fn, *args)
        sciml.eval_graph(g, *args)
    msg = str(info.value)
    for n in needles:
        assert re.search(n, msg), f"{n!r} not in message:\n{msg}"
    assert f"test_errors.py:{line_of(fn, marker)}" in msg, msg
    return msg


# ---------------------------------------------------------------------------------------------
# Shapes


def test_broadcast_mismatch():
    def f(a, b):
        return a + b  # <-

    check(ShapeError, f, (np.ones(3), np.ones(4)), "add", r"\(3,\)", r"\(4,\)", "broadcast")


def test_matmul_mismatch():
    def f(a, b):
        return a @ b  # <-

    check(ShapeError, f, (np.ones((2, 3)), np.ones((4, 5))), "matmul", r"\(2, 3\)",
          r"\(4, 5\)")


def test_reshape_mismatch():
    def f(a):
        return a.reshape(7)  # <-

    check(ShapeError, f, (np.ones(6),), "reshape", r"\(6,\)", r"\(7,\)")


def test_concatenate_mismatch():
    def f(a):
        return np.concatenate([a, a.T])  # <-

    check(ShapeError, f, (np.ones((2, 3)),), "concatenate", r"\(2, 3\)", r"\(3, 2\)")


def test_index_out_of_bounds():
    def f(a):
        return a[5]  # <-

    check(ShapeError, f, (np.ones(3),), "index 5", "size 3")


def test_boolean_mask_on_traced_value():
    def f(a):
        return a[a > 0]  # <-

    check(ShapeError, f, (np.ones(3),), "boolean mask", "where")


def test_solve_not_square_and_mismatched():
    def f(a, b):
        return linalg.solve(a, b)  # <-

    check(ShapeError, f, (np.ones((3, 4)), np.ones(3)), "solve", r"\(3, 4\)", "square")
    check(ShapeError, f, (np.eye(3), np.ones(4)), "solve", r"\(4,\)", r"\(3, 3\)")


def test_linalg_primitive_shapes():
    def f(a):
        return PRIMITIVES["cholesky"].bind(a)  # <-

    check(ShapeError, f, (np.ones((2, 3)),), "cholesky", r"\(2, 3\)")

    def g(a, b):
        return PRIMITIVES["triangular_solve"].bind(a, b, left_side=False)  # <-

    check(ShapeError, g, (np.eye(3), np.ones((3, 2))), "triangular_solve", r"\(3, 2\)",
          r"\(3, 3\)")


def test_fft_bad_axes():
    def f(a):
        return fft.fftn(a, axes=(0, 4))  # <-

    check(ShapeError, f, (np.ones((2, 3)),), "fftn", r"\(0, 4\)", "rank 2")


def test_einsum_size_mismatch():
    def f(a, b):
        return np.einsum("ij,jk->ik", a, b)  # <-

    check(ShapeError, f, (np.ones((2, 3)), np.ones((4, 2))), "einsum", "label 'j'", "3", "4")


# ---------------------------------------------------------------------------------------------
# Dtypes


def test_mixed_dtypes_at_the_primitive():
    def f(a):
        return PRIMITIVES["add"].bind(a, np.ones(3, np.float32))  # <-

    check(DTypeError, f, (np.ones(3),), "add", "f64", "f32", "convert")


def test_bitwise_on_floats():
    def f(a):
        return a & 1.5  # <-

    check(DTypeError, f, (np.ones(3),), "and", "f64")


def test_sort_complex():
    def f(a):
        return np.sort(a + 1j)  # <-

    check(DTypeError, f, (np.ones(3),), "sort", "complex128")


def test_unsupported_dtype():
    def f(a):
        return a.astype(np.uint64)  # <-

    check(DTypeError, f, (np.ones(3),), "uint64", "supported")


def test_float_index():
    def f(a, i):
        return a[i]  # <-

    check(DTypeError, f, (np.ones(3), np.float64(1.0)), "index", "integer", "f64")


def test_fft_primitive_needs_complex():
    def f(a):
        return PRIMITIVES["fft"].bind(a, axes=(0,))  # <-

    check(DTypeError, f, (np.ones(4),), "fft", "complex", "f64")


def test_random_bad_key():
    def f(k):
        return random.uniform(k, (3,))  # <-

    check(DTypeError, f, (np.zeros(3, np.int64),), "uniform", "key", r"i64\[3\]")


def test_linalg_integer_primitive_operands():
    def f(a):
        return PRIMITIVES["eigh"].bind(a)  # <-

    check(DTypeError, f, (np.eye(2, dtype=np.int32),), "eigh", "float or complex", "i32")


# ---------------------------------------------------------------------------------------------
# Arity


def test_primitive_operand_count():
    def f(a):
        return PRIMITIVES["sin"].bind(a, a)  # <-

    check(ArityError, f, (np.ones(3),), "sin", "1 operand", "2")

    def g(a):
        return PRIMITIVES["solve"].bind(a)  # <-

    check(ArityError, g, (np.eye(2),), "solve", "1 operand", r"f64\[2,2\]")


def test_graph_argument_count_and_shape():
    g = sciml.make_graph(lambda a, b: a + b, np.ones(3), np.ones(3))
    with pytest.raises(ArityError) as info:
        sciml.eval_graph(g, np.ones(3))  # <- one argument short
    assert "graph <lambda>" in str(info.value)
    assert f"test_errors.py:{line_of(test_graph_argument_count_and_shape, '# <- one')}" in str(
        info.value)
    with pytest.raises(ArityError, match=r"shape \(4,\).*f64\[3\]"):
        sciml.eval_graph(g, np.ones(3), np.ones(4))


def test_cond_branches_disagree():
    def f(a):
        return sciml.cond(a[0] > 0, lambda x: x, lambda x: x[:1], a)  # <-

    check(ShapeError, f, (np.ones(3),), "cond", r"f64\[3\]", r"f64\[1\]")


# ---------------------------------------------------------------------------------------------
# Unsupported numpy functions, Python control flow on tracers


def test_unsupported_numpy_function():
    def f(a):
        return np.unique(a)  # <-

    check(UnsupportedError, f, (np.ones(3),), "np.unique", "sciml.numpy")


def test_unsupported_ufunc_method():
    def f(a):
        return np.add.reduce(a)  # <-

    check(UnsupportedError, f, (np.ones(3),), "add.reduce")


def test_unsupported_linalg_function():
    def f(a):
        return np.linalg.svd(a)  # <-

    check(UnsupportedError, f, (np.eye(3),), "svd")


def test_unsupported_snp_name():
    with pytest.raises(UnsupportedError, match="sciml.numpy.unique"):
        sciml.numpy.unique  # noqa: B018


def test_python_if_on_tracer():
    def f(a):
        if a > 0:  # <-
            return a
        return -a

    check(TracerError, f, (np.float64(1.0),), "bool", r"bool\[\]", "sciml.cond")


def test_float_and_asarray_of_tracer():
    def f(a):
        return float(a)  # <-

    check(TracerError, f, (np.float64(1.0),), "float", r"f64\[\]")

    def g(a):
        return np.asarray(a) + 1  # <-

    check(TracerError, g, (np.ones(2),), "np.asarray", r"f64\[2\]")


def test_escaped_tracer():
    leak = []
    sciml.make_graph(lambda a: leak.append(a) or a, np.ones(2))
    with pytest.raises(TracerError, match="escaped"):
        sciml.make_graph(lambda b: b + leak[0], np.ones(2))


def test_hierarchy():
    """Every error is a SciMLError and the matching builtin, so generic handlers still work."""
    assert issubclass(ShapeError, ValueError) and issubclass(DTypeError, TypeError)
    assert issubclass(UnsupportedError, NotImplementedError) and issubclass(TracerError,
                                                                            TypeError)
    for e in (ShapeError, DTypeError, ArityError, UnsupportedError, TracerError):
        assert issubclass(e, SciMLError)
