"""The GOMD step through sciml's ``jit``: one compiled plan per internal step.

``model.step`` is written for numpy arrays; the same code traces when its arrays are sciml
tracers (the C-grid operators record ``shift`` stencil reads, the external sub-steps become a
``fori_loop``, the cold-start skip a ``cond``). This module splits the parameters into what
the plan takes at run time (every floating-point field: forcing, metrics, boundary data) and
what it is specialised on (grid sizes, index masks, the settings in ``Config``), and wraps the
compiled step so that it takes and returns the same state dicts as ``model.step``.

>>> from cases.gomd import init_state, load_config, make_params
>>> params = make_params(load_config("classic", im=9, jm=7, kb=5))
>>> fast = CompiledStep(params)
>>> state = fast(init_state(params))  # doctest: +SKIP
"""

from __future__ import annotations

import time

import numpy as np

import sciml
from cases.gomd import external
from cases.gomd.model import Params, step, step_forcing, step_update


def runtime_fields(params: Params) -> dict:
    """The floating-point parameter arrays: plan arguments, so changing one recompiles nothing."""
    return {k: v for k, v in params.fields.items()
            if isinstance(v, np.ndarray) and v.dtype.kind == "f"}


def static_fields(params: Params) -> dict:
    """What the compiled plan is specialised on: sizes, boolean masks, the Grid object."""
    dyn = runtime_fields(params)
    return {k: v for k, v in params.fields.items() if k not in dyn}


def state_arrays(state: dict) -> dict:
    """The state as arrays only (the step number becomes an int64 scalar array); device
    arrays (a GPU step's outputs) stay on the device."""
    return {k: (np.asarray(v, np.int64) if k == "iint" else _keep(v))
            for k, v in state.items()}


def _keep(v):
    return v if hasattr(v, "__cuda_array_interface__") else np.asarray(v)


def host_state(state: dict) -> dict:
    """The state with every device array copied to the host (numpy arrays pass through)."""
    return {k: (v.get() if hasattr(v, "__cuda_array_interface__") else v)
            for k, v in state.items()}


def _phases(params: Params):
    """The three phases of ``model.step`` as functions of arrays only (what ``jit`` traces).

    The step number is not an argument: the compiled phases are those of a warm step
    (``iint >= 1``); a cold start's first step runs eagerly.
    """
    cfg, static = params.cfg, static_fields(params)

    def par(fields):
        return Params(cfg, {**static, **fields})

    def forcing(state, fields):
        return step_forcing({**state, "iint": 1}, par(fields))

    def external_loop(e, forcing_terms, fields):
        return external.run_external(e, forcing_terms, par(fields)[1], cfg, compiled=True)

    def update(state, e, inner, fields):
        new = step_update({**state, "iint": 1}, e, inner, par(fields))
        return {k: new[k] for k in state}

    return forcing, external_loop, update


def _whole_step(params: Params):
    """The three phases as one function of (state arrays, fields): one plan per step."""
    forcing, external_loop, update = _phases(params)

    def whole(state, fields):
        e, terms, inner = forcing(state, fields)
        e = external_loop(e, terms, fields)
        return update(state, e, inner, fields)

    return whole


class CompiledStep:
    """``model.step`` as one jitted plan: ``fast(state) -> new state``.

    The 3-D forcing terms, the external loop (isplit sub-steps) and the 3-D update are traced
    as one function; on the CPU its plan (kernels, compiled routines for the vertical sums and
    tridiagonal solves, the sub-step loop) is one numba function, so a step returns to Python
    once. The first call traces and compiles (kernels and the plan function come from the disk
    cache after the first run on a machine); ``compile_seconds`` records that latency.
    """

    def __init__(self, params: Params, backend: str = "cpu"):
        self.params, self.backend = params, backend
        self.fields = runtime_fields(params)
        self.fn = sciml.jit(_whole_step(params), backend=backend)
        if backend == "gpu":  # the forcing fields go to the device once
            from kernels.gpu import to_device

            self.fields = {k: to_device(v, str(np.asarray(v).dtype))
                           for k, v in self.fields.items()}
        self.compile_seconds = None

    def __call__(self, state: dict) -> dict:
        if int(state["iint"]) == 0:
            return step(state, self.params)  # pom2k's cold-start step differs; run it eagerly
        arrays = state_arrays(state)
        iint = int(arrays.pop("iint"))
        t0 = time.perf_counter()
        new = self.run(arrays)
        if self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - t0
        return {**new, "iint": iint + 1}

    def run(self, arrays: dict) -> dict:
        return dict(self.fn(arrays, self.fields))

    def lower(self, state: dict):
        """The compiled form (graph, kernels, routines, plan) of one step for this state."""
        arrays = state_arrays(state)
        arrays.pop("iint")
        return self.fn.lower(arrays, self.fields)
