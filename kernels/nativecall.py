"""Calls from a plan function to compiled kernels through their machine-code addresses.

A numba function that calls another jitted function must have it compiled first, links the
callee's LLVM module into its own and optimises the whole again; its disk cache holds a
second copy of every callee. A GOMD step's plan function calls about 150 kernels, so one
process compiled them all, one after another, before the plan. Here the plan calls each
kernel through the address of its compiled code (numba's native calling convention, the
same call numba emits itself), passed in at run time: the plan compiles without its kernels
(42.4 -> 38.0 s for the GOMD plan alone), while they compile elsewhere, and stays valid for
any kernels with the same signatures.

A kernel is compiled for its canonical signature, every argument a C-contiguous array of the
buffer's dtype and rank (``signature``); a plan only passes contiguous arrays (fresh buffers,
reshapes, leading-axis slices), and a readonly or 'A'-layout array of the same dtype and rank
has the same data layout.

Compiling the kernels of a plan is what takes the time on a cold start; ``compile_all``
compiles those missing from numba's disk cache in worker processes (one per core,
``SCIML_COMPILE_WORKERS``), then loads them.

>>> import numba, numpy as np
>>> @numba.njit
... def twice(a, b):
...     b[:] = 2.0 * a
>>> sig = signature([("float64", 1), ("float64", 1)])
>>> @numba.njit
... def run(addr, x):
...     y = np.empty_like(x)
...     call_kernel(addr, "float64:1,float64:1", x, y)
...     return y
>>> run(address(twice, sig), np.arange(3.0))
array([0., 2., 4.])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .plan import KERNEL_ARRAY_DTYPE

# Fewer missing kernels than this compile in the calling process (a worker costs ~1 s).
MIN_PARALLEL = 4


def buffer_args(kernel) -> list[tuple[str, int]]:
    """(numpy dtype name, rank) of each argument of a kernel: its inputs, then its outputs."""
    out = []
    for b in [*kernel.inputs, *kernel.outputs]:
        dt = KERNEL_ARRAY_DTYPE.get(str(b.dtype), np.dtype(str(b.dtype)))
        out.append((np.dtype(dt).name, len(b.shape)))
    return out


def spec(args) -> str:
    """The text form of a signature, ``"float64:3,bool:2"``: what a call site checks."""
    return ",".join(f"{d}:{n}" for d, n in args)


def signature(args) -> tuple:
    """The canonical numba signature: C-contiguous arrays of each (dtype, rank)."""
    return tuple(types.Array(numba.from_dtype(np.dtype(d)), n, "C") for d, n in args)


def address(fn, sig) -> int:
    """The address of ``fn``'s machine code for ``sig`` (compiled or loaded from disk first)."""
    fn.compile(sig)
    cres = fn.overloads[sig]
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)


@intrinsic
def call_kernel(typingctx, addr, sig_text, *args):
    """``call_kernel(addr, "float64:3,...", a, b, ...)``: call the kernel at ``addr``.

    The signature text is checked against the arrays passed, so a plan that would pass a
    kernel the wrong dtype or rank fails to compile with a message, never calls it wrongly.
    The arrays are separate arguments: a tuple built at each call site costs a reference
    count per array and made a GOMD plan compile five times longer."""
    if not isinstance(sig_text, types.StringLiteral) or not isinstance(addr, types.Integer):
        raise TypingError("call_kernel(address, signature literal, array, ...)")
    want = [(d, int(n)) for d, n in (p.split(":") for p in sig_text.literal_value.split(","))]
    got = list(args)
    if len(got) != len(want):
        raise TypingError(f"kernel takes {len(want)} arrays, the plan passes {len(got)}")
    for i, (t, (d, n)) in enumerate(zip(got, want)):
        if not isinstance(t, types.Array) or t.ndim != n or np.dtype(str(t.dtype)).name != d:
            raise TypingError(f"kernel argument {i}: expected a {n}-d {d} array, got {t}")
    canon = list(signature(want))

    def codegen(context, builder, sig, llargs):
        address_value, tup = llargs[0], llargs[2]  # the arrays arrive packed as a star tuple
        vals = [builder.extract_value(tup, i) for i in range(len(canon))]
        cc = context.call_conv
        fnty = cc.get_function_type(types.none, canon)
        callee = builder.inttoptr(address_value, fnty.as_pointer())
        status, _ = cc.call_function(builder, callee, types.none, canon, vals)
        with cgutils.if_unlikely(builder, status.is_error):
            cc.return_status_propagate(builder, status)
        return context.get_dummy_value()

    return types.none(addr, sig_text, types.StarArgTuple.from_types(args)), codegen


@intrinsic
def array_at(typingctx, addr, dtype_text, shape):
    """``array_at(addr, "float64", (n0, n1))``: a C-contiguous array over the memory at
    ``addr``, without a reference count. The plan's own buffers reach it this way, as one
    table of addresses instead of one argument each: each array argument cost the plan
    function ~20 ms of compile time. The caller keeps the memory alive."""
    if not isinstance(dtype_text, types.StringLiteral) or not isinstance(addr, types.Integer):
        raise TypingError("array_at(address, dtype literal, shape tuple)")
    dtype = np.dtype(dtype_text.literal_value)
    aty = types.Array(numba.from_dtype(dtype), len(shape), "C")

    def codegen(context, builder, sig, llargs):
        from numba.np.arrayobj import populate_array

        ary = context.make_array(aty)(context, builder)
        itemsize = context.get_constant(types.intp, dtype.itemsize)
        dims = cgutils.unpack_tuple(builder, llargs[2], len(shape))
        strides, step = [], itemsize
        for d in reversed(dims):
            strides.insert(0, step)
            step = builder.mul(step, d)
        populate_array(ary, data=builder.inttoptr(llargs[0], ary.data.type), shape=dims,
                       strides=strides, itemsize=itemsize, meminfo=None)
        return ary._getvalue()

    return aty(addr, dtype_text, shape), codegen


def compile_all(calls, meanwhile=None) -> list[int]:
    """Addresses of ``calls`` [(dispatcher, signature)], compiling what numba's disk cache
    lacks in worker processes first when there is enough of it. ``meanwhile()`` (the plan
    function's own compile, which needs no kernel) runs in this process while they work."""
    missing = [(fn, sig) for fn, sig in calls if sig not in fn.overloads and not _on_disk(fn, sig)]
    workers = min(_workers(), len(missing))
    procs = _start_workers(missing, workers) if workers > 1 and len(missing) >= MIN_PARALLEL else []
    try:
        if meanwhile is not None:
            meanwhile()
    finally:
        for p in procs:
            p.wait()
    return [address(fn, sig) for fn, sig in calls]


def _workers() -> int:
    env = os.environ.get("SCIML_COMPILE_WORKERS")
    if env:
        if not env.strip().isdigit() or int(env) < 1:
            raise ValueError(f"SCIML_COMPILE_WORKERS must be a positive integer (1 compiles "
                             f"in the calling process), got {env!r}")
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _on_disk(fn, sig) -> bool:
    """Whether numba's disk cache holds ``fn`` for ``sig`` (numba's index, read only)."""
    try:
        cache = fn._cache
        key = cache._index_key(sig, fn.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # another numba: treat as cached, compile in this process as before
        return True


def _start_workers(missing, workers: int) -> list:
    """Split the kernels over ``workers`` processes, largest source first; each compiles its
    share into numba's disk cache. A worker that fails leaves its kernels to this process,
    whose compile then raises the real error."""
    sizes = [(_source_size(fn), fn, sig) for fn, sig in missing]
    shares = [[] for _ in range(workers)]
    load = [0] * workers
    for size, fn, sig in sorted(sizes, key=lambda s: -s[0]):
        w = load.index(min(load))
        load[w] += size
        shares[w].append([fn.py_func.__module__, fn.py_func.__name__,
                          [[np.dtype(str(t.dtype)).name, t.ndim] for t in sig]])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = [subprocess.Popen([sys.executable, "-m", "kernels.nativecall"], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in shares]
    for p, share in zip(procs, shares):
        p.stdin.write(json.dumps(share).encode())
        p.stdin.close()
    return procs


def _source_size(fn) -> int:
    path = getattr(sys.modules.get(fn.py_func.__module__), "__file__", None)
    return os.path.getsize(path) if path else 0


def _worker_main():
    """Compile the kernels named on stdin into numba's disk cache; one that fails is left to
    the calling process (which reports the error), the others still compile."""
    import importlib

    for module, name, args in json.load(sys.stdin):
        try:
            getattr(importlib.import_module(module), name).compile(signature(args))
        except Exception:
            continue


if __name__ == "__main__":
    _worker_main()
