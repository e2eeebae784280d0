"""Golden copies of the generated source for representative programs.

Any change in generated code shows up as a diff of ``tests/golden/*.py`` in review. After an
intended change, regenerate with ``SCIML_UPDATE_GOLDEN=1 python -m pytest
tests/test_kernels_golden.py`` and commit the new copies with the change.
"""

from __future__ import annotations

import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import sciml.numpy as snp
from kernels.jit import jit

GOLDEN = Path(__file__).parent / "golden"


def elementwise(x):
    return np.exp(-x * x) * np.sin(3.0 * x) + 0.5 * np.tanh(x)


def heat(u, c):
    lap = sum(snp.shift(u, off, boundary="zero") for off in
              ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)))
    return u + c * (lap - 6.0 * u)


def sum_of_squares(x):
    y = np.sin(x) + 1.0
    return (y * y).sum()


def row_max_padded(x):
    p = snp.pad(x, ((1, 1), (0, 0)), mode="periodic")
    return (p * 2.0).max(axis=1)


CASES = {
    "elementwise_f64": (elementwise, [np.zeros(1 << 20)]),
    "elementwise_bf16": (elementwise, [np.zeros(64, ml_dtypes.bfloat16)]),
    "heat_f32": (heat, [np.zeros((64, 64, 64), np.float32), np.float32(0.1)]),
    "sum_of_squares_f32": (sum_of_squares, [np.zeros(1 << 20, np.float32)]),
    "row_max_padded": (row_max_padded, [np.zeros((30, 40))]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_source_matches_golden(name):
    fn, args = CASES[name]
    c = jit(fn).lower(*args)
    text = "\n\n".join(f"# kernel {i}\n{c.sources[i]}" for i in sorted(c.sources))
    path = GOLDEN / f"{name}.py"
    if os.environ.get("SCIML_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden copy {path.name}: run with SCIML_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"generated source for {name} changed; see module doc"
    got = jit(fn)(*args)
    assert np.all(np.isfinite(np.asarray(got, np.float64)))
