"""The loop-level kernel IR: one loop nest over a domain, scalar statements per point.

A ``Kernel`` runs ``for i0, i1, ... in domain`` (the outer loop parallel) and, at each point,
a straight list of statements: ``Let(name, expr)`` binds a scalar, ``Store`` writes one into an
output buffer. Expressions are loads at index expressions, literals, loop indices and scalar
operations named by primitive. ``Reduction``s accumulate a bound scalar over the trailing
``len(domain) - depth`` loops (``depth == 0``: over everything) into an output buffer, so a
reduction is the epilogue of the elementwise work, never a temporary array.

The IR knows nothing of any target: printers (``kernels/cpu.py``, ``kernels/gpu.py``) walk it.
Every node has a one-line text form; ``str(kernel)`` prints the whole kernel::

    >>> k = Kernel("k", (8,), [Buffer("x", (8,), "float64")], [Buffer("y", (8,), "float64")],
    ...            [Let("a", Load("x", (Idx(0),))), Let("b", Op("sin", ("a",), {}, "float64")),
    ...             Store("y", (Idx(0),), "b")])
    >>> print(k)
    kernel k(x:float64[8]) -> (y:float64[8]) over (8,):
      a = load x[i0]
      b = sin(a):float64
      y[i0] = b
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# Index expressions (integers): built from loop indices; every form stays inside its buffer.


@dataclass(frozen=True)
class Idx:
    """The loop index of domain dimension ``dim``."""

    dim: int

    def __str__(self):
        return f"i{self.dim}"


@dataclass(frozen=True)
class Affine:
    """``scale * base + offset``."""

    base: object
    scale: int = 1
    offset: int = 0

    def __str__(self):
        s = str(self.base) if self.scale == 1 else f"{self.scale}*{self.base}"
        if not self.offset:
            return s
        return f"({s} {'+' if self.offset > 0 else '-'} {abs(self.offset)})"


@dataclass(frozen=True)
class Clamp:
    """``min(max(e, lo), hi)``: edge boundaries and guarded loads."""

    e: object
    lo: int
    hi: int

    def __str__(self):
        return f"clamp({self.e}, {self.lo}, {self.hi})"


@dataclass(frozen=True)
class Wrap:
    """``e mod n`` in ``[0, n)`` (periodic boundaries), for ``e`` in ``[-n, 2n)``."""

    e: object
    n: int

    def __str__(self):
        return f"wrap({self.e}, {self.n})"


@dataclass(frozen=True)
class Lit:
    """An integer index that does not depend on the loop (broadcast dimensions read 0)."""

    value: int

    def __str__(self):
        return str(self.value)


# ---------------------------------------------------------------------------------------------
# Scalar expressions


@dataclass(frozen=True)
class Load:
    """``buf[index]`` converted to the compute dtype of the buffer."""

    buf: str
    index: tuple

    def __str__(self):
        return f"load {self.buf}[{', '.join(map(str, self.index))}]"


@dataclass(frozen=True)
class Const:
    """A literal scalar of ``dtype``."""

    value: object
    dtype: str

    def __str__(self):
        return f"{self.value!r}:{self.dtype}"


@dataclass(frozen=True)
class InRange:
    """True when ``lo <= e < hi`` for each ``(e, lo, hi)`` (guards of zero/constant borders)."""

    checks: tuple

    def __str__(self):
        return " and ".join(f"{lo} <= {e} < {hi}" for e, lo, hi in self.checks)


@dataclass(frozen=True)
class IndexValue:
    """An index expression used as a scalar of ``dtype`` (``iota``)."""

    index: object
    dtype: str

    def __str__(self):
        return f"{self.index}:{self.dtype}"


@dataclass(frozen=True)
class Op:
    """A scalar primitive applied to bound names.

    ``dtype`` is the compute dtype of the result, ``in_dtype`` that of the operands (they differ
    for comparisons, ``convert``, ``abs`` of complex numbers); templates are chosen by
    ``in_dtype``.
    """

    prim: str
    args: tuple
    params: dict = field(hash=False, compare=True)
    dtype: str = "float64"
    in_dtype: str = "float64"

    def __str__(self):
        p = "".join(f", {k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.prim}({', '.join(self.args)}{p}):{self.dtype}"


# ---------------------------------------------------------------------------------------------
# Statements and the kernel


@dataclass(frozen=True)
class Let:
    name: str
    expr: object

    def __str__(self):
        return f"{self.name} = {self.expr}"


@dataclass(frozen=True)
class Store:
    """``buf[index] = value`` (converted to the storage dtype of ``buf``)."""

    buf: str
    index: tuple
    value: str

    def __str__(self):
        return f"{self.buf}[{', '.join(map(str, self.index))}] = {self.value}"


@dataclass(frozen=True)
class Thomas:
    """Row ``i0`` of the forward sweep of a tridiagonal solve along axis 0 (``sub``, ``diag``,
    ``sup``, ``rhs`` bound at this point); the printer keeps the sweep in a per-thread block
    buffer (``slot``) and writes the solution to ``buf`` by the backward sweep."""

    slot: int
    sub: str
    diag: str
    sup: str
    rhs: str
    buf: str

    def __str__(self):
        return (f"{self.buf} <- thomas#{self.slot}(sub={self.sub}, diag={self.diag}, "
                f"sup={self.sup}, rhs={self.rhs})")


@dataclass(frozen=True)
class Reduction:
    """``buf[i0..i(depth-1)] = op over the inner loops of value``, accumulated in ``acc_dtype``."""

    buf: str
    op: str  # "sum", "prod", "max", "min"
    value: str
    acc_dtype: str

    def __str__(self):
        return f"{self.buf} <- {self.op}({self.value}):{self.acc_dtype}"


@dataclass(frozen=True)
class Buffer:
    """An array argument of a kernel: ``shape`` as the kernel indexes it, storage ``dtype``."""

    name: str
    shape: tuple
    dtype: str

    def __str__(self):
        return f"{self.name}:{self.dtype}[{','.join(map(str, self.shape))}]"


@dataclass
class Kernel:
    """One loop nest: ``inputs`` read, ``outputs`` written, ``body`` run at every point."""

    name: str
    domain: tuple
    inputs: list
    outputs: list
    body: list
    reductions: list = field(default_factory=list)
    depth: int = 0  # loops kept by the reductions (the others are reduced)
    # axis 0 runs in order (axis-0 sums and cumsums read back what earlier planes stored)
    sequential: bool = False
    scratch: list = field(default_factory=list)  # Buffers the kernel allocates (accumulators)

    def __str__(self):
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        order = " in order along axis 0" if self.sequential else ""
        lines = [f"kernel {self.name}({ins}) -> ({outs}) over {self.domain}{order}:"]
        lines += [f"  {s}" for s in self.body]
        if self.reductions:
            lines.append(f"  reduce over loops {self.depth}..{len(self.domain) - 1}:")
            lines += [f"    {r}" for r in self.reductions]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Verifier


def verify_kernel(k: Kernel) -> Kernel:
    """Check that names are bound before use, loads and stores name buffers of the right rank,
    and loop indices stay inside the domain; raises VerifyError naming the statement."""
    from autodiff.errors import VerifyError

    bufs = {b.name: b for b in k.inputs + k.outputs + k.scratch}
    outs = {b.name for b in k.outputs + k.scratch}
    bound: set[str] = set()

    def fail(s, why):
        raise VerifyError(f"kernel {k.name}: {why} in `{s}`")

    for s in k.body:
        names, idx, buf = _uses(s)
        if any(n not in bound for n in names):
            fail(s, f"unbound name among {names}")
        if buf is not None:
            if buf not in bufs or (isinstance(s, Store) and buf not in outs):
                fail(s, f"unknown {'output ' if isinstance(s, Store) else ''}buffer {buf}")
            if len(idx) != len(bufs[buf].shape):
                fail(s, f"index of rank {len(idx)} for {bufs[buf]}")
        if any(d >= len(k.domain) for x in idx for d in _dims(x)):
            fail(s, "loop index outside the domain")
        if isinstance(s, Let):
            bound.add(s.name)
        if isinstance(s, Thomas) and (s.buf not in outs or len(bufs[s.buf].shape) != 3):
            fail(s, f"tridiagonal solution into {s.buf}, not a 3-d output")
    for r in k.reductions:
        if r.value not in bound or r.buf not in outs:
            fail(r, "reduction of an unbound value or into a non-output")
    return k


def _uses(s):
    """(scalar names read, index expressions, buffer) of one statement."""
    if isinstance(s, Store):
        return [s.value], s.index, s.buf
    if isinstance(s, Thomas):
        return [s.sub, s.diag, s.sup, s.rhs], (), None
    e = s.expr
    if isinstance(e, Load):
        return [], e.index, e.buf
    if isinstance(e, Op):
        return list(e.args), (), None
    if isinstance(e, InRange):
        return [], tuple(x for x, _, _ in e.checks), None
    if isinstance(e, IndexValue):
        return [], (e.index,), None
    return [], (), None


def _dims(x):
    if isinstance(x, Idx):
        yield x.dim
    for f in ("base", "e"):
        if hasattr(x, f):
            yield from _dims(getattr(x, f))
