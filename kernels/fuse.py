"""Graph -> clusters and library nodes: which nodes share one pass over memory.

A ``Cluster`` is a set of nodes computed together at every point of one iteration domain (the
shape of their elementwise outputs):

- pointwise nodes (the ``elementwise`` primitives, ``iota``) of that shape, with operands that
  broadcast to it;
- stencil and layout reads (``shift``, ``slice``, ``pad``, ``rev``, ``transpose``,
  ``broadcast_in_dim``) of an array computed *before* the cluster: the read becomes a load at
  an index expression, no shifted copy is made;
- stencil reads of a value computed *in* the cluster by cheap pointwise work: the value is
  recomputed at the shifted point from the cluster's inputs, so it is never stored for the
  read. ``RECOMPUTE_MAX`` bounds the work (weighted by ``OP_COST``) summed over all the reads
  of the value, so a value read at many points (a Laplacian's operand) is stored once. This
  is opt-in (``SCIML_RECOMPUTE_MAX``), see below;
- reductions (``reduce_sum/prod/max/min``) over all axes or over trailing axes of the domain,
  as epilogues: the reduced value is accumulated where it is computed, never stored;
- with ``sequential=True`` (a target that runs axis 0 in order, the CPU): reductions over
  axis 0 alone (``lead``: vertical sums) and forward cumulative sums along axis 0 (``scan``).
  The cluster then runs its planes in order and splits axis 1 among threads; each point adds
  its value to the sum of the planes before it, in numpy's order (plane by plane), so the
  sums are those of numpy's ``sum(axis=0)`` and ``cumsum(axis=0)`` bit for bit. A cumulative
  sum is available at its own point to the rest of the cluster, never at a shifted one.
  Tridiagonal solves along axis 0 of 3-d columns (``solve``) join the same way: the forward
  sweep runs where the coefficients are computed, which are then never stored; the solution
  exists after the kernel's backward sweep, for later kernels only.

Every other node (``dot_general``, ``sort``, control flow, gathers, ...) is a ``Library`` node
of its own, and the elementwise work around it is fused before and after it. Nodes are placed
greedily in program order: a node joins the most recent cluster of its domain that comes after
all of its operands' producers, so the list of groups stays a valid execution order.

>>> import numpy as np
>>> from autodiff.trace import make_graph
>>> g = make_graph(lambda x, y: (np.exp(x) * y + 1.0).sum(), np.zeros(4), np.zeros(4))
>>> [str(c) for c in fuse(g)]
['cluster 0 over (4,): exp mul add reduce_sum']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autodiff.ir import Const, Graph, Var
from autodiff.ops.reduce import normalize_axes

READS = {"shift", "slice", "pad", "rev", "transpose", "broadcast_in_dim"}
SOURCES = {"iota"}
REDUCTIONS = {"reduce_sum": "sum", "reduce_prod": "prod", "reduce_max": "max",
              "reduce_min": "min"}

# Recomputing a value at shifted points instead of storing and reloading it: the value's
# expression tree (operations counted with these weights, loads and plain operations as 1),
# times the number of stencil reads of the value, may cost at most RECOMPUTE_MAX. Memory-bound
# stencil chains trade this arithmetic for the write and the reread of an intermediate array.
# Values under RECOMPUTE_MIN_BYTES stay in cache between kernels, where storing and reloading
# them costs less than the arithmetic. Off by default (budget 0): it made a composition of
# averages on 33 MB fields 1.4x faster, but the GOMD step 11% slower at 513x259x31 (and 17% at
# 65x49x21 without the size limit) although its kernels moved 13% (23%) fewer bytes: the
# merged kernels read up to 27 large arrays at once. ``SCIML_RECOMPUTE_MAX=24`` turns it on,
# ``SCIML_RECOMPUTE_MIN_BYTES`` moves the size limit.
RECOMPUTE_MAX = 0
RECOMPUTE_MIN_BYTES = 4 << 20
OP_COST = {"div": 4, "sqrt": 4, "rsqrt": 4, "exp": 8, "log": 8, "log1p": 8, "expm1": 8,
           "pow": 16, "tanh": 8, "sin": 8, "cos": 8, "tan": 8, "erf": 8, "atan2": 12}


@dataclass(eq=False)
class Cluster:
    """Nodes fused into one kernel over ``domain``; ``depth`` = loops the reductions keep."""

    index: int
    domain: tuple
    nodes: list = field(default_factory=list)
    depth: int | None = None  # None until a reduction joins
    sequential: bool = False  # a lead, scan or solve node joined: axis 0 runs in order
    pointwise: set = field(default_factory=set)  # ids of values available at every point
    cost: dict = field(default_factory=dict)  # id -> work to recompute it at another point
    made: set = field(default_factory=set)  # ids of every value computed here
    inputs: list = field(default_factory=list)  # Vars and array Consts read from outside
    outputs: list = field(default_factory=list)  # Vars needed outside

    def __str__(self):
        names = " ".join(n.prim.name for n in self.nodes)
        return f"cluster {self.index} over {self.domain}: {names}"


@dataclass(eq=False)
class Library:
    """One node run by a library routine (or the numpy reference) on whole arrays."""

    index: int
    node: object

    def __str__(self):
        return f"library {self.index}: {self.node.prim.name}"


def fuse(graph: Graph, can_fuse: Callable = lambda node: True, sequential: bool = False) -> list:
    """Cluster the live nodes of ``graph``; ``can_fuse(node)`` says what a target can print,
    ``sequential`` whether it fuses axis-0 reductions and cumulative sums (see above)."""
    groups: list = []
    where: dict[int, int] = {}  # var id -> index of the group that computes it
    nodes = hoist_small(live_nodes(graph))
    share = _recompute_shares(nodes)
    for node in nodes:
        kind = classify(node, sequential)
        g = None
        if kind is not None and can_fuse(node):
            g = _place(groups, where, node, kind, share)
        if g is None:
            g = Library(len(groups), node)
            groups.append(g)
        for o in node.outputs:
            where[o.id] = g.index
    _connect(graph, groups, where)
    return groups


def _recompute_shares(nodes) -> dict:
    """Var id -> the work one stencil read may spend recomputing it: the budget divided among
    the value's reads, for values large enough that storing them goes to main memory."""
    budget = int(os.environ.get("SCIML_RECOMPUTE_MAX", RECOMPUTE_MAX))
    if budget <= 0:
        return {}
    least = int(os.environ.get("SCIML_RECOMPUTE_MIN_BYTES", RECOMPUTE_MIN_BYTES))
    reads: dict[int, list] = {}  # var id -> [var, stencil reads of it]
    for node in nodes:
        a = node.inputs[0] if node.inputs else None
        if classify(node) == "read" and isinstance(a, Var):
            reads.setdefault(a.id, [a, 0])[1] += 1
    return {k: budget // n for k, (a, n) in reads.items()
            if a.aval.size * a.aval.dtype.itemsize >= least}


def classify(node, sequential: bool = False) -> str | None:
    """'point', 'read', 'source' or 'reduce' for fusible primitives, None for library nodes;
    with ``sequential`` also 'lead' and 'scan' (axis-0 reductions and cumulative sums)."""
    name = node.prim.name
    if node.prim.multiple_results or node.subgraphs():
        return None
    if sequential and _along_axis0(node):
        return "lead" if name in REDUCTIONS else "scan"
    if sequential and name == "tridiagonal_solve" and _columns(node):
        return "solve"
    if "elementwise" in node.prim.tags:
        return "point"
    if name in READS or (name == "reshape" and unit_reshape(node)):
        return "read"
    if name in SOURCES:
        return "source"
    if name in REDUCTIONS and _reduce_depth(node) is not None:
        return "reduce"
    return None


def unit_reshape(node) -> bool:
    """A reshape that only inserts or removes size-1 axes reads like a broadcast."""
    src, dst = node.inputs[0].aval.shape, node.outputs[0].aval.shape
    return bool(src) and bool(dst) and [s for s in src if s != 1] == [s for s in dst if s != 1]


# Storage dtypes an axis-0 accumulation keeps (half types would round at every plane).
_SEQUENTIAL_DTYPES = {"float32", "float64", "int32", "int64", "complex64", "complex128"}


def _along_axis0(node) -> bool:
    """A reduction over axis 0 alone, or a forward cumsum along axis 0, of an array of rank
    >= 2 whose result keeps its dtype (numpy accumulates those in that dtype, plane by plane)."""
    name, x = node.prim.name, node.inputs[0].aval if node.inputs else None
    if x is None or x.ndim < 2 or str(x.dtype) not in _SEQUENTIAL_DTYPES:
        return False
    if str(node.outputs[0].aval.dtype) != str(x.dtype):
        return False
    if name in REDUCTIONS:
        if node.params.get("keepdims"):
            return False
        return normalize_axes(name, node.params["axes"], x.ndim) == (0,)
    if name == "cumsum":
        axis = normalize_axes("cumsum", node.params["axis"], x.ndim)
        return axis == (0,) and not node.params.get("reverse", False)
    return False


def _columns(node) -> bool:
    """A tridiagonal solve along axis 0 of 3-d float operands of one shape (vertical columns):
    its forward sweep runs in the kernel computing the operands (``solve``)."""
    out = node.outputs[0].aval
    return out.ndim == 3 and str(out.dtype) in ("float32", "float64") and all(
        a.aval.shape == out.shape and a.aval.dtype == out.dtype for a in node.inputs)


def _reduce_depth(node) -> int | None:
    """The number of leading loops a reduction keeps, or None when its axes are not a suffix."""
    x = node.inputs[0]
    axes = normalize_axes(node.prim.name, node.params["axes"], x.aval.ndim)
    nd = x.aval.ndim
    if not axes or axes != tuple(range(nd - len(axes), nd)):
        return None
    depth = nd - len(axes)
    # Keeping the parallel loop and reducing below it needs at least one kept loop; reducing
    # everything uses per-thread partial results instead.
    return depth


def _place(groups, where, node, kind, share) -> Cluster | None:
    domain = node.inputs[0].aval.shape if kind in ("reduce", "lead") else node.outputs[0].aval.shape
    depth = _reduce_depth(node) if kind == "reduce" else None
    lo = max([where.get(a.id, -1) for a in node.inputs if isinstance(a, Var)], default=-1)
    for g in reversed(groups):
        if g.index < lo:
            break
        if isinstance(g, Cluster) and _can_join(g, node, kind, domain, depth, share):
            _join(g, node, kind, depth)
            return g
    g = Cluster(len(groups), tuple(domain))
    _join(g, node, kind, depth)
    groups.append(g)
    return g


def _can_join(g: Cluster, node, kind, domain, depth, share) -> bool:
    if g.domain != tuple(domain):
        return False
    if depth is not None and g.depth is not None and g.depth != depth:
        return False
    # axis 0 in order (lead, scan) and reductions over trailing loops need other loop nests
    if (kind in ("lead", "scan", "solve") and g.depth is not None) or (
            depth is not None and g.sequential):
        return False
    for a in node.inputs:
        if not isinstance(a, Var) or not _made_in(g, a):
            continue
        # A reduced value exists only at the end of the loop; a stencil read of a value made
        # here recomputes it at the other point, when that is cheap enough.
        if a.id not in g.pointwise:
            return False
        if kind == "read" and g.cost.get(a.id, float("inf")) > share.get(a.id, 0):
            return False
    return True


def _made_in(g: Cluster, v: Var) -> bool:
    return v.id in g.made


def _join(g: Cluster, node, kind, depth):
    g.nodes.append(node)
    g.made.update(o.id for o in node.outputs)
    if kind == "reduce":
        g.depth = depth
        return
    if kind in ("lead", "scan", "solve"):
        g.sequential = True
        if kind == "scan":  # usable at its own point, never recomputed at another one
            g.pointwise.update(o.id for o in node.outputs)
            g.cost.update((o.id, float("inf")) for o in node.outputs)
        return
    g.pointwise.update(o.id for o in node.outputs)
    own = [g.cost.get(a.id) for a in node.inputs if isinstance(a, Var) and _made_in(g, a)]
    if None not in own:
        cost = OP_COST.get(node.prim.name, 1) + sum(own)
        g.cost.update((o.id, cost) for o in node.outputs)


def _connect(graph: Graph, groups: list, where: dict):
    """Fill each cluster's inputs (read from outside) and outputs (needed outside)."""
    readers: dict[int, set] = {}
    for g in groups:
        for node in _nodes(g):
            for a in node.inputs:
                if isinstance(a, Var):
                    readers.setdefault(a.id, set()).add(g.index)
    graph_outs = {o.id for o in graph.outputs if isinstance(o, Var)}
    for g in groups:
        if not isinstance(g, Cluster):
            continue
        made = {o.id for n in g.nodes for o in n.outputs}
        seen: set[int] = set()
        for node in g.nodes:
            for a in node.inputs:
                if isinstance(a, Var) and a.id not in made and a.id not in seen:
                    seen.add(a.id)
                    g.inputs.append(a)
                elif isinstance(a, Const) and a.value.ndim > 0 and id(a) not in seen:
                    seen.add(id(a))
                    g.inputs.append(a)
            for o in node.outputs:
                # a cumulative sum reads its previous plane back: it is always stored
                if (o.id in graph_outs or readers.get(o.id, set()) - {g.index}
                        or node.prim.name in ("cumsum", "tridiagonal_solve")):
                    g.outputs.append(o)


def _nodes(g):
    return g.nodes if isinstance(g, Cluster) else [g.node]


# A fusible node whose loop domain has at most 1/HOIST_RATIO of the largest domain's points
# is moved up to just after its inputs are made (``hoist_small``; 0 turns it off).
HOIST_RATIO = 8


def hoist_small(nodes: list) -> list:
    """``nodes`` with the small fusible ones (boundary columns, rows, vertical profiles) moved
    as early as their inputs allow, big ones kept in order.

    Clusters form in program order: a node joins a cluster made after its inputs. A boundary
    condition written as ``a = where(column == 1, value, a)`` computes ``value`` (a column)
    between two selects on the whole array, so each select started a kernel of its own, a pass
    over memory; computed first, the values let the selects fuse into one kernel. Small nodes
    are cheap and never share a kernel with big ones, so moving them up costs no fusion.
    """
    if HOIST_RATIO <= 0:
        return nodes

    def domain(node):
        kind = classify(node)
        if kind is None or not node.outputs:
            return None
        shape = node.inputs[0].aval.shape if kind == "reduce" else node.outputs[0].aval.shape
        return int(np.prod(shape, dtype=np.int64))

    sizes = [domain(n) for n in nodes]
    largest = max((z for z in sizes if z is not None), default=0)
    key: dict[int, tuple] = {}  # var id -> sort key of the node that makes it
    order = []
    for i, (node, z) in enumerate(zip(nodes, sizes)):
        if z is not None and z * HOIST_RATIO <= largest:
            after = max((key[a.id] for a in node.inputs if isinstance(a, Var) and a.id in key),
                        default=(-1, -1))
            k = (after[0], i)  # just after the latest input's node, in program order
        else:
            k = (i, -1)
        order.append((k, node))
        for o in node.outputs:
            key[o.id] = k
    return [n for _, n in sorted(order, key=lambda kn: kn[0])]


def live_nodes(graph: Graph) -> list:
    """The body of ``graph`` without nodes whose outputs nothing uses (dead code)."""
    needed = {o.id for o in graph.outputs if isinstance(o, Var)}
    keep = []
    for node in reversed(graph.body):
        if any(o.id in needed for o in node.outputs) or "effect" in node.prim.tags:
            keep.append(node)
            needed.update(a.id for a in node.inputs if isinstance(a, Var))
    return keep[::-1]


def count_kernels(groups: list) -> int:
    """How many kernels (clusters) a fused graph launches."""
    return sum(isinstance(g, Cluster) for g in groups)
