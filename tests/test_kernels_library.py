"""``kernels.library``: the compiled implementations the Schedule runs give the numpy
references' results bit for bit (sums in the same order), into a given buffer or a new one."""

import numpy as np
import pytest

from autodiff.ops import window
from autodiff.primitives import PRIMITIVES
from kernels import library

WINDOWS = [  # (input shape, params): 2-D and 1-D, stride, asymmetric padding, dilation
    ((3, 6, 5, 4), {"kernel": (3, 3), "stride": (1, 1), "padding": ((1, 1), (1, 1)),
                    "dilation": (1, 1)}),
    ((2, 7, 9, 1), {"kernel": (3, 2), "stride": (2, 3), "padding": ((0, 2), (1, 0)),
                    "dilation": (2, 1)}),
    ((2, 3, 11, 2), {"kernel": (4,), "stride": (2,), "padding": ((3, 1),), "dilation": (2,)}),
    ((5, 2), {"kernel": (2,), "stride": (1,), "padding": ((0, 0),), "dilation": (1,)}),
    ((1, 3, 4, 3, 2), {"kernel": (2, 2, 2), "stride": (1, 1, 1),  # 3-D: the reference
                       "padding": ((0, 1), (1, 0), (0, 0)), "dilation": (1, 1, 1)}),
]
DTYPES = ["float32", "float64", "int64", "float16"]


def _same(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("shape,params", WINDOWS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_and_col2im_match_the_reference(shape, params, dtype):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=shape) * 4).astype(dtype)
    want = window.im2col.impl(x, value=1.5, **params)
    _same(library.im2col(x, value=1.5, **params), want)
    out = np.empty_like(want)
    assert library.im2col(x, value=1.5, out=out, **params) is out
    _same(out, want)
    cols = (rng.normal(size=want.shape) * 4).astype(dtype)
    spatial = shape[len(shape) - len(params["kernel"]) - 1:-1]
    want = window.col2im.impl(cols, shape=spatial, **params)
    _same(library.col2im(cols, shape=spatial, **params), want)
    out = np.full_like(want, 7)  # stale contents must not leak into the sum
    library.col2im(cols, shape=spatial, out=out, **params)
    _same(out, want)


@pytest.mark.parametrize("shape,axes,keepdims", [
    ((4096, 16), (0,), False), ((4, 6, 3, 2), (0,), True), ((9, 3, 5), (0, 1), False),
    ((300, 2), (0,), False), ((500,), (0,), False), ((40, 30), (0, 1), False),
    ((7, 5), (1,), False), ((6, 4, 3), (0, 2), True),
])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_reduce_sum_matches_the_reference(shape, axes, keepdims, dtype):
    x = (np.random.default_rng(1).normal(size=shape) * 100).astype(dtype)
    want = PRIMITIVES["reduce_sum"].impl(x, axes=axes, keepdims=keepdims)
    _same(library.reduce_sum(x, axes=axes, keepdims=keepdims), want)
    out = np.empty_like(want)
    library.reduce_sum(x, axes=axes, keepdims=keepdims, out=out)
    _same(out, want)


@pytest.mark.parametrize("shape,perm", [
    ((64, 32, 4, 2, 4, 2), (3, 5, 0, 1, 2, 4)), ((2, 2, 64, 32, 4, 4), (2, 3, 4, 0, 5, 1)),
    ((16, 8, 8, 32), (0, 3, 1, 2)), ((3, 4), (1, 0)), ((40, 30, 5), (1, 2, 0)),
])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bool", "float16"])
def test_transpose_matches_numpy(shape, perm, dtype):
    x = (np.random.default_rng(2).normal(size=shape) * 4).astype(dtype)
    want = np.ascontiguousarray(np.transpose(x, perm))
    _same(library.transpose(x, permutation=perm), want)
    out = np.empty_like(want)
    library.transpose(x, permutation=perm, out=out)
    _same(out, want)
