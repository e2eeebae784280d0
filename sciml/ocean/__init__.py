"""sciml.ocean: the C-grid operator set of GOMO, written as plain array functions.

GOMO (Huang et al., "OpenArray v1.0", GMD 12, 4729-4749, 2019) states the Princeton Ocean
Model with twelve stencil operators. This package provides them for sciml:

* ``AXF, AXB, AYF, AYB, AZF, AZB`` -- averages of two neighbours (forward / backward),
* ``DXF, DXB, DYF, DYB, DZF, DZB`` -- differences divided by the distance between the two
  points differenced (the metric is looked up from the array's C-grid position),
* ``dxf, dxb, dyf, dyb, dzf, dzb`` -- the same differences, undivided (flux form),
* ``csum_z`` / ``sum_z`` -- vertical cumulative and total sums,
* ``thomas`` -- a batched tridiagonal (Thomas) solver along the vertical axis,
* ``Grid`` and the positions ``T, U, V, W, ...`` -- metrics and C-grid bookkeeping.

Layout: 3-D arrays are indexed ``[k, j, i]`` (k vertical, top to bottom; j south to north;
i west to east), 2-D arrays ``[j, i]``. A neighbour missing at the domain edge reads as 0,
as in GOMO. Every function is a pure composition of slicing, concatenation and arithmetic,
so the code traces unchanged once sciml's tracer understands those numpy calls.

>>> import numpy as np
>>> from sciml.ocean import AXF
>>> AXF(np.array([1.0, 3.0, 5.0]))
array([2. , 4. , 2.5])
"""

from sciml.ocean.grid import (
    CORNER,
    UW,
    VW,
    Grid,
    Position,
    T,
    U,
    V,
    W,
)
from sciml.ocean.operators import (
    AXB,
    AXF,
    AYB,
    AYF,
    AZB,
    AZF,
    DXB,
    DXF,
    DYB,
    DYF,
    DZB,
    DZF,
    csum_z,
    dxb,
    dxf,
    dyb,
    dyf,
    dzb,
    dzf,
    shift,
    sum_z,
)
from sciml.ocean.tridiagonal import thomas

__all__ = [
    "AXB", "AXF", "AYB", "AYF", "AZB", "AZF",
    "DXB", "DXF", "DYB", "DYF", "DZB", "DZF",
    "dxb", "dxf", "dyb", "dyf", "dzb", "dzf",
    "csum_z", "sum_z", "shift", "thomas",
    "Grid", "Position", "T", "U", "V", "W", "UW", "VW", "CORNER",
]
