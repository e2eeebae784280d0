"""Compiled CPU implementations of library primitives, for the interpreter's ``Schedule``.

numpy pays a fixed cost per innermost run of an operation. The window primitives (``im2col``,
``col2im``; numpy references in ``autodiff.ops.window``) loop over kernel taps, and each tap is a
strided copy or add whose innermost run is one channel vector; a sum over the leading axis of a
tall, narrow array (a bias gradient) adds one short row at a time; a transpose whose result rows
are short gathers (a pool's window axes) copies a few numbers per row. Here numba loop nests do the
same work in one call, several times faster on a convolution's shapes, with the same results bit
for bit (sums in the reference's order). Cases the loops do not cover (three or more spatial
axes, half-precision dtypes, other reductions) run the reference.

``IMPLS`` maps primitive names to these functions, in the calling convention of
``Primitive.impl`` plus an optional ``out=`` buffer; ``autodiff.schedule.Schedule(graph,
impls=IMPLS, into=IMPLS)`` runs them.

>>> import numpy as np
>>> x = np.arange(24.0).reshape(1, 3, 4, 2)
>>> p = dict(kernel=(2, 2), stride=(1, 2), padding=((1, 0), (0, 1)), dilation=(1, 1))
>>> bool(np.array_equal(im2col(x, **p), window.im2col.impl(x, **p)))
True
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numba
import numpy as np

from autodiff.ops import window
from autodiff.ops.reduce import normalize_axes
from autodiff.ops.window import window_out_shape
from autodiff.primitives import PRIMITIVES

DTYPES = {"bool", "int32", "int64", "float32", "float64", "complex64", "complex128"}


@numba.njit(nogil=True, cache=True)
def _im2col2d(x, out, sh, sw, ph, pw, dh, dw, value):
    # x (N, H, W, C) -> out (N, OH, OW, KH, KW, C); a tap outside x reads ``value``.
    n_, h_, w_, c_ = x.shape
    oh_, ow_, kh_, kw_ = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    for n in range(n_):
        for oh in range(oh_):
            for i in range(kh_):
                h = oh * sh - ph + i * dh
                row = 0 <= h < h_
                for ow in range(ow_):
                    for j in range(kw_):
                        w = ow * sw - pw + j * dw
                        if row and 0 <= w < w_:
                            for c in range(c_):
                                out[n, oh, ow, i, j, c] = x[n, h, w, c]
                        else:
                            for c in range(c_):
                                out[n, oh, ow, i, j, c] = value


@numba.njit(nogil=True, cache=True)
def _im2col2d_one(x, out, sh, sw, ph, pw, dh, dw, value):
    # One channel (a network's input image): no channel loop, whose one trip costs as much as
    # the copy.
    n_, h_, w_ = x.shape
    oh_, ow_, kh_, kw_ = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    for n in range(n_):
        for oh in range(oh_):
            for ow in range(ow_):
                for i in range(kh_):
                    h = oh * sh - ph + i * dh
                    for j in range(kw_):
                        w = ow * sw - pw + j * dw
                        if 0 <= h < h_ and 0 <= w < w_:
                            out[n, oh, ow, i, j] = x[n, h, w]
                        else:
                            out[n, oh, ow, i, j] = value


@numba.njit(nogil=True, cache=True)
def _col2im2d(cols, x, sh, sw, ph, pw, dh, dw):
    # cols (N, OH, OW, KH, KW, C) summed into x (N, H, W, C), which starts at zero. Taps
    # outermost: each point adds its contributions in tap order, as the reference does, so
    # the sums are the same bits.
    n_, h_, w_, c_ = x.shape
    oh_, ow_, kh_, kw_ = cols.shape[1], cols.shape[2], cols.shape[3], cols.shape[4]
    for n in range(n_):
        for i in range(kh_):
            for j in range(kw_):
                for oh in range(oh_):
                    h = oh * sh - ph + i * dh
                    if h < 0 or h >= h_:
                        continue
                    for ow in range(ow_):
                        w = ow * sw - pw + j * dw
                        if 0 <= w < w_:
                            for c in range(c_):
                                x[n, h, w, c] += cols[n, oh, ow, i, j, c]


def _as2d(nd, *pairs):
    """Per-axis parameters of a 1-D window as those of a 2-D one (a unit leading axis)."""
    return tuple(((e,) + tuple(p)) if nd == 1 else tuple(p) for e, p in pairs)


def _compiled(x, nd):
    return nd in (1, 2) and str(x.dtype) in DTYPES


@functools.lru_cache(maxsize=256)
def _geometry(shape, kernel, stride, padding, dilation, patches):
    """(2-D view of the array, 2-D view of the patches, scalar arguments) for one call shape:
    leading axes folded into one, a 1-D window seen as 2-D with a unit first axis."""
    nd = len(kernel)
    lead = shape[:len(shape) - 2 * nd - 1] if patches else shape[:len(shape) - nd - 1]
    n, unit = int(np.prod(lead, dtype=np.int64)), (1,) * (2 - nd)
    if patches:
        out, spatial = shape[len(lead):len(lead) + nd], None
    else:
        spatial = shape[len(lead):-1]
        out = window_out_shape("im2col", spatial, kernel, stride, padding, dilation)
    s, p, d = _as2d(nd, (1, stride), ((0, 0), padding), (1, dilation))
    cols = (n,) + unit + out + unit + tuple(kernel) + shape[-1:]
    full = lead + out + tuple(kernel) + shape[-1:]
    return cols, full, lead, (s[0], s[1], p[0][0], p[1][0], d[0], d[1])


def im2col(x, *, kernel, stride, padding, dilation, value=0.0, out=None):
    """``im2col``'s result (into ``out`` when given), by the numba loop nest where it applies."""
    nd = len(kernel)
    if not _compiled(x, nd):
        return _store(window.im2col.impl(x, kernel=kernel, stride=stride, padding=padding,
                                         dilation=dilation, value=value), out)
    cols, full, lead, args = _geometry(x.shape, kernel, stride, padding, dilation, False)
    xs = np.ascontiguousarray(x).reshape(cols[:1] + (1,) * (2 - nd) + x.shape[len(lead):])
    out = np.empty(full, x.dtype) if out is None else out
    if x.shape[-1] == 1:
        _im2col2d_one(xs[..., 0], out.reshape(cols[:-1]), *args, x.dtype.type(value))
    else:
        _im2col2d(xs, out.reshape(cols), *args, x.dtype.type(value))
    return out


def col2im(cols, *, shape, kernel, stride, padding, dilation, out=None):
    """``col2im``'s result (into ``out`` when given), by the numba loop nest where it applies."""
    nd = len(kernel)
    if not _compiled(cols, nd):
        return _store(window.col2im.impl(cols, shape=shape, kernel=kernel, stride=stride,
                                         padding=padding, dilation=dilation), out)
    view, _, lead, args = _geometry(cols.shape, kernel, stride, padding, dilation, True)
    out = np.empty(lead + tuple(shape) + cols.shape[-1:], cols.dtype) if out is None else out
    x = out.reshape(view[:1] + (1,) * (2 - nd) + tuple(shape) + cols.shape[-1:])
    x[...] = 0
    _col2im2d(np.ascontiguousarray(cols).reshape(view), x, *args)
    return out


def _store(value, out):
    if out is None:
        return value
    out[...] = value
    return out


@numba.njit(nogil=True, cache=True)
def _sum_rows(x, out):
    # out = x[0] + x[1] + ... row after row: numpy's order for a sum over a leading axis.
    for m in range(x.shape[1]):
        out[m] = x[0, m]
    for r in range(1, x.shape[0]):
        for m in range(x.shape[1]):
            out[m] += x[r, m]


_SUM_DTYPES = {"int64", "float32", "float64"}  # numpy sums int32 in int64


def reduce_sum(x, *, axes, keepdims=False, out=None):
    """``reduce_sum``; a sum over leading axes of a tall array runs row by row in numba."""
    axes = normalize_axes("reduce_sum", axes, x.ndim)
    lead = len(axes)
    rows = int(np.prod(x.shape[:lead], dtype=np.int64))
    # A sum over every axis reads one contiguous run, which numpy adds pairwise: not here.
    if (axes != tuple(range(lead)) or str(x.dtype) not in _SUM_DTYPES or rows < 2
            or x.size < 2 * rows or not x.flags.c_contiguous):
        return _store(PRIMITIVES["reduce_sum"].impl(x, axes=axes, keepdims=keepdims), out)
    shape = (1,) * lead + x.shape[lead:] if keepdims else x.shape[lead:]
    out = np.empty(shape, x.dtype) if out is None else out
    _sum_rows(x.reshape(rows, -1), out.reshape(-1))
    return out


@numba.njit(nogil=True, cache=True)
def _copy6(src, dst):
    # dst[...] = src for a strided 6-D view: the innermost loop runs along dst's last axis.
    a_, b_, c_, d_, e_, f_ = dst.shape
    for a in range(a_):
        for b in range(b_):
            for c in range(c_):
                for d in range(d_):
                    for e in range(e_):
                        for f in range(f_):
                            dst[a, b, c, d, e, f] = src[a, b, c, d, e, f]


_SHORT_RUN = 8  # numpy copies rows of at least this many elements well enough
_BIG = 1 << 15  # below this, numpy's call is as fast as the loop nest


def transpose(x, *, permutation, out=None):
    """``transpose``; when the result's rows are short gathers (the window axes of a pool),
    a numba loop nest copies instead of numpy's per-row machinery."""
    view = np.transpose(x, permutation)
    if (x.ndim > 6 or x.size < _BIG or str(x.dtype) not in DTYPES or view.flags.c_contiguous
            or view.shape[-1] >= _SHORT_RUN or permutation[-1] == x.ndim - 1):
        return _store(np.ascontiguousarray(view), out)
    out = np.empty(view.shape, x.dtype) if out is None else out
    pad = (1,) * (6 - view.ndim)
    src = np.lib.stride_tricks.as_strided(view, pad + view.shape, (0,) * len(pad) + view.strides)
    _copy6(src, out.reshape(pad + view.shape))
    return out


IMPLS = {"im2col": im2col, "col2im": col2im, "reduce_sum": reduce_sum, "transpose": transpose}


# ---------------------------------------------------------------------------------------------
# Elementwise clusters as one loop (``Schedule(..., fuser=FUSER)``)

# Operations whose numba form gives numpy's bits: IEEE + - * / and sqrt, comparisons, selects
# and casts. libm functions (exp, log, tanh, ...) round differently from numpy's own loops,
# and numba widens integer arithmetic, so neither is fused.
_FORMS = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "div": "({0} / {1})",
    "neg": "(-{0})", "sqrt": "np.sqrt({0})", "abs": "np.abs({0})", "stop_gradient": "{0}",
    "gt": "({0} > {1})", "ge": "({0} >= {1})", "lt": "({0} < {1})", "le": "({0} <= {1})",
    "eq": "({0} == {1})", "ne": "({0} != {1})", "select": "({1} if {0} else {2})",
}
_FLOATS = {"float32", "float64"}
_COMPARISONS = {"gt", "ge", "lt", "le", "eq", "ne"}


def fusable(node) -> bool:
    """Whether ``node`` can be part of a fused loop (see ``_FORMS``)."""
    name = node.prim.name
    if name not in _FORMS and name != "convert":
        return False
    out = node.outputs[0].aval
    if not out.ndim or any(a.aval.ndim and a.aval.shape != out.shape for a in node.inputs):
        return False
    ins = [str(a.aval.dtype) for a in node.inputs]
    if name == "select":
        ins = ins[1:]  # the predicate is boolean
    elif name == "convert":
        return ins[0] in _FLOATS | {"bool"} and str(out.dtype) in _FLOATS
    want = "bool" if name in _COMPARISONS else ins[0]
    return ins[0] in _FLOATS and set(ins) == {ins[0]} and str(out.dtype) == want


def fused_source(cluster) -> str:
    """numba source of a cluster: one loop over the flattened arrays, shape-independent."""
    names, lines = {}, []
    arrays = [f"a{k}" for k in range(len(cluster.arrays))]
    scalars = [f"s{k}" for k in range(len(cluster.scalars))]
    outs = [f"o{k}" for k in range(len(cluster.outputs))]
    for k, a in enumerate(cluster.arrays):
        names[_key(a)] = f"x{k}"
    for k, a in enumerate(cluster.scalars):
        names[_key(a)] = f"c{k}"
        lines.append(f"    c{k} = s{k}[0]")
    lines.append("    for i in range(n):")
    lines += [f"        x{k} = a{k}[i]" for k in range(len(arrays))]
    for j, node in enumerate(cluster.nodes):
        names[node.outputs[0].id] = f"v{j}"
        lines.append(f"        v{j} = {_expression_keyed(node, names)}")
    lines += [f"        o{k}[i] = {names[o.id]}" for k, o in enumerate(cluster.outputs)]
    head = ("import numba\nimport numpy as np\n\n\n"
            "@numba.njit(nogil=True, error_model=\"numpy\", cache=True)\n"
            f"def kernel({', '.join(['n'] + arrays + scalars + outs)}):\n")
    return head + "\n".join(lines) + "\n"


def _key(atom):
    return atom.id if hasattr(atom, "id") else ("const", id(atom))


def _expression_keyed(node, names) -> str:
    args = [names[_key(a)] for a in node.inputs]
    if node.prim.name == "convert":
        return f"np.{node.outputs[0].aval.dtype}({args[0]})"
    return _FORMS[node.prim.name].format(*args)


def compile_cluster(cluster):
    """A step function for ``cluster``: ``fn(*arrays, *scalars, out=[buffer or None, ...])``
    returns its results (fresh arrays where no buffer is given)."""
    from . import cache

    kernel = cache.load(fused_source(cluster), "kernel", "cpu")
    n_arrays = len(cluster.arrays)
    shape = cluster.nodes[0].outputs[0].aval.shape
    dtypes = [o.aval.dtype for o in cluster.outputs]
    size = int(np.prod(shape, dtype=np.int64))

    def run(*ins, out):
        arrays = [np.ascontiguousarray(a).reshape(-1) for a in ins[:n_arrays]]
        scalars = [np.asarray(s).reshape(1) for s in ins[n_arrays:]]
        res = [np.empty(shape, d) if b is None else b for b, d in zip(out, dtypes)]
        kernel(size, *arrays, *scalars, *[r.reshape(-1) for r in res])
        return res

    return run


FUSER = SimpleNamespace(fusable=fusable, compile=compile_cluster)
