"""``einsum`` lowered to existing primitives: diagonals (a mask and a sum), sums over labels
that appear once, ``dot_general`` for each pairwise contraction, and a final ``transpose``.

>>> import numpy as np
>>> a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
>>> bool(np.allclose(einsum("ij,jk->ik", a, b), a @ b))
True
>>> float(einsum("ii", np.eye(3)))
3.0
"""

from __future__ import annotations

import string

import numpy as np

from . import lax
from .errors import ArityError, ShapeError, UnsupportedError
from .trace import abstractify

_LABELS = set(string.ascii_letters)


def einsum(subscripts: str, *operands, optimize=None):
    """numpy's ``einsum`` (explicit ``->`` or implicit output, ``...`` broadcasting). More than
    two operands are contracted pairwise from the left; ``optimize`` is accepted for numpy
    compatibility and ignored (the order is always left to right)."""
    if not isinstance(subscripts, str):
        raise UnsupportedError("einsum: only the string form einsum('ij,jk->ik', a, b) is "
                               "supported")
    if not operands:
        raise ArityError("einsum: needs at least one operand")
    ins, out = _parse(subscripts, [abstractify(x).ndim for x in operands])
    xs = lax.promote("einsum", *operands)
    sizes = _sizes(subscripts, ins, [abstractify(x).shape for x in xs])
    terms = []
    for i, (x, lab) in enumerate(zip(xs, ins)):
        # Labels that no other operand and not the output use are summed right away.
        needed = set("".join(ins[:i] + ins[i + 1:])) | set(out)
        x, lab = _diagonals(x, lab)
        x, lab = _sum_out(x, lab, needed)
        terms.append((_broadcast(x, lab, sizes), lab))
    while len(terms) > 1:
        (x, lx), (y, ly), rest = terms[0], terms[1], terms[2:]
        later = set("".join(lab for _, lab in rest)) | set(out)
        terms = [_contract((x, lx), (y, ly), later)] + rest
    x, lab = _sum_out(*terms[0], set(out))
    return lax.transpose(x, [lab.index(c) for c in out])


def _parse(subscripts: str, ndims):
    spec = subscripts.replace(" ", "")
    lhs, arrow, rhs = spec.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(ndims):
        raise ArityError(f"einsum: subscripts {subscripts!r} name {len(ins)} operands, got "
                         f"{len(ndims)}")
    n_ell = max([nd - len(s.replace("...", "")) for s, nd in zip(ins, ndims) if "..." in s],
                default=0)
    unused = [c for c in string.ascii_letters if c not in spec]
    ell = "".join(unused[:n_ell])
    ins = [_expand(s, nd, ell, subscripts) for s, nd in zip(ins, ndims)]
    if arrow:
        if "..." not in rhs and n_ell:
            raise ShapeError(f"einsum: {subscripts!r} broadcasts with '...' in the inputs but "
                             "its output has no '...'")
        out = rhs.replace("...", ell)
    else:
        counts = "".join(ins)
        out = ell + "".join(sorted(c for c in set(counts) if c not in ell and
                                   counts.count(c) == 1))
    for c in out:
        if c not in "".join(ins) or out.count(c) > 1:
            raise ShapeError(f"einsum: output label {c!r} of {subscripts!r} is repeated or "
                             "does not appear in the inputs")
    return ins, out


def _expand(s: str, nd: int, ell: str, subscripts: str) -> str:
    if "..." in s:
        k = nd - len(s.replace("...", ""))
        s = s.replace("...", ell[len(ell) - k:] if k else "")
    if any(c not in _LABELS for c in s) or len(s) != nd:
        raise ShapeError(f"einsum: subscripts {subscripts!r} do not fit an operand of rank {nd}")
    return s


def _sizes(subscripts, ins, shapes):
    sizes: dict[str, int] = {}
    for lab, shape in zip(ins, shapes):
        for c, n in zip(lab, shape):
            if sizes.get(c, 1) not in (1, n) and n != 1:
                raise ShapeError(f"einsum: label {c!r} of {subscripts!r} has sizes "
                                 f"{sizes[c]} and {n} (operand shapes {list(shapes)})")
            sizes[c] = max(sizes.get(c, 1), n)
    return sizes


def _diagonals(x, lab: str):
    """Reduce a label repeated within one operand to its diagonal."""
    while len(set(lab)) < len(lab):
        c = next(c for c in lab if lab.count(c) > 1)
        p = lab.index(c)
        q = lab.index(c, p + 1)
        n = abstractify(x).shape[p]
        view = [1] * len(lab)
        view[p] = view[q] = n
        mask = np.eye(n, dtype=abstractify(x).dtype).reshape(view)
        x = lax.sum(lax.mul(x, mask), axis=q)
        lab = lab[:q] + lab[q + 1:]
    return x, lab


def _sum_out(x, lab: str, keep: set):
    axes = tuple(i for i, c in enumerate(lab) if c not in keep)
    if not axes:
        return x, lab
    return lax.sum(x, axis=axes), "".join(c for c in lab if c in keep)


def _broadcast(x, lab, sizes):
    """Stretch size-1 (ellipsis-broadcast) dimensions to the common size of their label."""
    shape = tuple(sizes[c] for c in lab)
    return (lax.broadcast_to(x, shape) if abstractify(x).shape != shape else x)


def _contract(left, right, later: set):
    """Contract two terms; labels in ``later`` (used by later operands or the output) stay."""
    (x, lx), (y, ly) = left, right
    shared = [c for c in lx if c in ly]
    batch = [c for c in shared if c in later]
    contract = [c for c in shared if c not in later]
    dims = (([lx.index(c) for c in contract], [ly.index(c) for c in contract]),
            ([lx.index(c) for c in batch], [ly.index(c) for c in batch]))
    res = lax.dot_general(x, y, dims)
    free_x = [c for c in lx if c not in shared]
    free_y = [c for c in ly if c not in shared]
    return res, "".join(batch + free_x + free_y)
