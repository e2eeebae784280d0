"""``Solution``: what ``sciml.solve`` returns — fields, coordinates and times that plot and
convert to xarray."""

from __future__ import annotations

import numpy as np


class Solution:
    """The result of ``sciml.solve``.

    - ``sol.t``: output times (time-dependent problems);
    - ``sol.coords``: each space symbol's name to its 1-D node coordinates;
    - ``sol[u]``: the field (by sympy function, applied function or name), shaped
      ``(len(sol.t), *grid)`` for time-dependent problems, ``grid`` for steady ones, ``(len(t),)``
      for ODEs; for algebraic systems ``sol[a]`` is the value;
    - ``sol(t)``: dense output of an ODE solution (all states at time ``t``);
    - ``.plot()``, ``.to_xarray()``; ``.stats`` holds solver counters.
    """

    def __init__(self, kind, t=None, coords=None, fields=None, values=None, dense=None,
                 state_names=None, stats=None):
        self.kind = kind
        self.t = t
        self.coords = {str(k): v for k, v in (coords or {}).items()}
        self._fields = {_name(k): v for k, v in (fields or {}).items()}
        self._values = {_name(k): v for k, v in (values or {}).items()}
        self._dense = dense
        self.state_names = state_names
        self.stats = stats or {}

    def __getitem__(self, key):
        name = _name(key)
        if name in self._fields:
            return self._fields[name]
        if name in self._values:
            return self._values[name]
        raise KeyError(f"{key} is not an unknown of this solution; it has "
                       f"{sorted(self._fields) + sorted(self._values)}")

    def __contains__(self, key):
        return _name(key) in self._fields or _name(key) in self._values

    @property
    def fields(self) -> dict:
        return dict(self._fields)

    @property
    def values(self) -> dict:
        return dict(self._values)

    def __call__(self, t):
        if self._dense is None:
            raise TypeError("dense output is available for ODE solutions only")
        return self._dense(t)

    def __repr__(self):
        if self.kind == "algebraic":
            return "Solution(" + ", ".join(f"{k}={_fmt(v)}" for k, v in self._values.items()) + ")"
        shapes = ", ".join(f"{k}: {np.shape(v)}" for k, v in self._fields.items())
        tinfo = f", t=[{self.t[0]:.4g} .. {self.t[-1]:.4g}] ({len(self.t)} frames)" if (
            self.t is not None and len(self.t)) else ""
        return f"Solution({self.kind}{tinfo}, {shapes})"

    def to_xarray(self):
        """An xarray Dataset with one variable per field and coordinates t, x, y, ..."""
        import xarray as xr

        data = {}
        for name, arr in self._fields.items():
            arr = np.asarray(arr)
            dims = (["t"] if self.t is not None else []) + list(self.coords)
            data[name] = (dims[-arr.ndim:] if arr.ndim <= len(dims) else dims, arr)
        coords = {k: np.asarray(v) for k, v in self.coords.items()}
        if self.t is not None:
            coords["t"] = np.asarray(self.t)
        return xr.Dataset(data, coords=coords)

    def plot(self, field=None, ax=None, frames=5):
        """Plot a field: lines over time (ODE, 1-D), or the last frame as an image (2-D)."""
        import matplotlib.pyplot as plt

        if self.kind == "algebraic":
            raise TypeError("an algebraic solution has values, not fields, to plot")
        name = _name(field) if field is not None else next(iter(self._fields))
        arr = np.asarray(self[name])
        if ax is None:
            _, ax = plt.subplots()
        space = arr.ndim - (1 if self.t is not None else 0)
        names = list(self.coords)
        if self.kind == "ode":
            ax.plot(self.t, arr, label=name)
            ax.set_xlabel("t")
        elif space == 1:
            xs = self.coords[names[0]]
            if self.t is None:
                ax.plot(xs, arr, label=name)
            else:
                for i in np.linspace(0, len(self.t) - 1, min(frames, len(self.t))).astype(int):
                    ax.plot(xs, arr[i], label=f"t={self.t[i]:.3g}")
            ax.set_xlabel(names[0])
        elif space == 2:
            frame = arr[-1] if self.t is not None else arr
            ext = [self.coords[names[0]][0], self.coords[names[0]][-1],
                   self.coords[names[1]][0], self.coords[names[1]][-1]]
            im = ax.imshow(frame.T, origin="lower", extent=ext, aspect="auto")
            ax.figure.colorbar(im, ax=ax)
            ax.set_xlabel(names[0]), ax.set_ylabel(names[1])
        else:
            raise NotImplementedError("plotting 3-D fields is not supported; use to_xarray()")
        ax.set_title(name)
        if space <= 1:
            ax.legend()
        return ax


def _name(key) -> str:
    """The name of an unknown given as a string, a Symbol, ``u`` or ``u(t, x)``."""
    from sympy.core.function import AppliedUndef

    if isinstance(key, AppliedUndef):
        return str(key.func)
    return str(key)


def _fmt(v):
    try:
        return f"{float(v):.10g}"
    except TypeError:
        return repr(v)
