"""Output (CF netCDF through xarray) and checkpoints (npz, written atomically).

A checkpoint is written to a temporary file in the target folder, flushed to disk, then
renamed over the target: a run killed at any moment leaves either the previous complete
checkpoint or the new complete one, never a partial file. Each checkpoint carries the run's
fingerprint (grid, preset, physics settings, precision) and a SHA-256 of its arrays; a
checkpoint from another configuration, or a damaged one, is refused with ``CheckpointError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np

FORMAT = "gomd-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used. Causes: the file is missing, truncated or corrupt (bad
    zip, checksum mismatch), written by another format version, or written by a run with a
    different grid, preset or physics settings (its fingerprint differs)."""


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _state_arrays(state: dict) -> dict:
    return {k: np.asarray(v) for k, v in state.items()}


def save_checkpoint(path: str, state: dict, cfg) -> None:
    """Write ``state`` atomically (temporary file + fsync + rename)."""
    arrays = _state_arrays(state)
    meta = {"format": FORMAT, "fingerprint": cfg.fingerprint(), "sha256": _digest(arrays)}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str, cfg) -> dict:
    """Read a checkpoint written by ``save_checkpoint`` for the same configuration."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except CheckpointError:
        raise
    except Exception as exc:  # zipfile, ValueError, KeyError, JSON errors
        raise CheckpointError(f"checkpoint {path!r} is unreadable or corrupt ({exc}); "
                              "restart from an earlier checkpoint or from the start") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path!r} has format {meta.get('format')!r}, "
                              f"expected {FORMAT!r}")
    if _digest(arrays) != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {path!r} fails its checksum: the file is damaged")
    want, got = cfg.fingerprint(), meta.get("fingerprint", {})
    diff = {k: (got.get(k), want[k]) for k in want if got.get(k) != want[k]}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs run {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(f"checkpoint {path!r} belongs to another configuration ({detail})")
    state = {k: v for k, v in arrays.items()}
    state["iint"] = int(state["iint"])
    return state


# --- netCDF ---------------------------------------------------------------------------------

_VARS = {
    # name: (dims, standard_name, long_name, units)
    "el": (("y", "x"), "sea_surface_height_above_geoid", "surface elevation", "m"),
    "ua": (("y", "x"), "barotropic_eastward_sea_water_velocity", "depth-mean x-velocity",
           "m s-1"),
    "va": (("y", "x"), "barotropic_northward_sea_water_velocity", "depth-mean y-velocity",
           "m s-1"),
    "u": (("sigma", "y", "x"), "eastward_sea_water_velocity", "x-velocity (u-points)",
          "m s-1"),
    "v": (("sigma", "y", "x"), "northward_sea_water_velocity", "y-velocity (v-points)",
          "m s-1"),
    "w": (("sigma_w", "y", "x"), "upward_sea_water_velocity",
          "sigma-coordinate vertical velocity", "m s-1"),
    "t": (("sigma", "y", "x"), "sea_water_potential_temperature", "potential temperature",
          "degC"),
    "s": (("sigma", "y", "x"), "sea_water_salinity", "salinity", "1e-3"),
    "rho": (("sigma", "y", "x"), None, "(density - 1000) / rhoref", "1"),
    "km": (("sigma_w", "y", "x"), "ocean_vertical_momentum_diffusivity",
           "vertical kinematic viscosity", "m2 s-1"),
}


def to_dataset(frames: list[tuple[float, dict]], params):
    """An xarray Dataset (CF-1.8) of the given (time in days, state) frames."""
    import xarray as xr

    cfg, p = params
    east_c, north_c = p["east_c"], p["north_c"]
    x = east_c + 0.5 * p["dx"][0]
    y = north_c + 0.5 * p["dy"][:, 0]
    coords = {
        "time": ("time", np.array([t for t, _ in frames]),
                 {"standard_name": "time", "units": "days since 2000-01-01 00:00:00",
                  "calendar": "standard"}),
        "x": ("x", x, {"long_name": "easting of cell centres", "units": "m", "axis": "X"}),
        "y": ("y", y, {"long_name": "northing of cell centres", "units": "m", "axis": "Y"}),
        "sigma": ("sigma", p["zz"], {"standard_name": "ocean_sigma_coordinate",
                                     "long_name": "sigma at layer centres", "units": "1",
                                     "positive": "up", "axis": "Z",
                                     "formula_terms": "sigma: sigma eta: el depth: h"}),
        "sigma_w": ("sigma_w", p["z"], {"long_name": "sigma at layer interfaces",
                                        "units": "1", "positive": "up"}),
    }
    data = {"h": (("y", "x"), p["h"], {"standard_name": "sea_floor_depth_below_geoid",
                                       "units": "m"}),
            "fsm": (("y", "x"), p["fsm"], {"long_name": "sea (1) / land (0) mask",
                                           "units": "1"})}
    for name, (dims, std, long, units) in _VARS.items():
        attrs = {"long_name": long, "units": units}
        if std:
            attrs["standard_name"] = std
        stack = np.stack([np.asarray(st[name], dtype=float) for _, st in frames])
        data[name] = (("time",) + dims, stack, attrs)
    attrs = {"Conventions": "CF-1.8", "title": f"GOMD seamount ({cfg.preset})",
             "source": "sciml cases.gomd (pom2k / GOMO discretisation)",
             "grid": f"{cfg.im}x{cfg.jm}x{cfg.kb}"}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def netcdf_engine() -> str:
    """h5netcdf (netCDF-4) when h5py is importable, else scipy (netCDF-3 64-bit offset)."""
    try:
        import h5netcdf  # noqa: F401
        import h5py  # noqa: F401
    except ImportError:
        return "scipy"
    return "h5netcdf"


def write_netcdf(path: str, frames, params) -> None:
    """Write the frames to a netCDF file readable by xarray, atomically."""
    ds = to_dataset(frames, params)
    tmp = path + ".tmp"
    ds.to_netcdf(tmp, engine=netcdf_engine())
    os.replace(tmp, path)
