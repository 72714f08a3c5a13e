"""Recordings as labelled arrays: membranes, currents and spikes in an ``xarray.Dataset``.

One dataset holds every recorded population: the variables ``v`` (membrane), ``i`` (synaptic
current) and ``spikes`` share the dimensions ``time`` (ms, the end of each step), ``sample``
and ``neuron``; the coordinates ``population`` and ``unit`` along ``neuron`` say which
population each neuron belongs to and its index there.  A non-spiking readout has no spikes,
so its ``spikes`` entries are NaN.  The spec (JSON) and the backend are in the attributes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from workbench.spec import NetworkSpec


def to_dataset(
    recordings: dict[str, dict],
    spec: NetworkSpec,
    backend: str,
    sample_index=None,
    attrs: dict | None = None,
    speedup: float = 1.0,
) -> xr.Dataset:
    """Turn a backend's recordings (``{population: {"v", "i", "spikes": [T, B, n]}}``) into a
    Dataset; ``sample_index`` labels the batch entries (default ``0 .. B-1``).  An accelerated
    chip (``speedup`` times faster than biology) gets a ``hardware_time`` coordinate too."""
    if not recordings:
        raise ValueError("recordings: nothing was recorded; pass record=[...] to the forward pass")
    blocks = {"v": [], "i": [], "spikes": []}
    populations, units = [], []
    n_steps = batch = None
    for name, trace in recordings.items():
        v = _numpy(trace["v"])
        n_steps, batch, size = v.shape
        blocks["v"].append(v)
        blocks["i"].append(_numpy(trace["i"]) if "i" in trace else np.full_like(v, np.nan))
        spikes = trace.get("spikes")
        blocks["spikes"].append(_numpy(spikes) if spikes is not None else np.full_like(v, np.nan))
        populations += [name] * size
        units += list(range(size))
    time = spec.dt * np.arange(1, n_steps + 1)
    sample = np.arange(batch) if sample_index is None else np.asarray(sample_index)
    dims = ("time", "sample", "neuron")
    data = {k: (dims, np.concatenate(b, axis=2).astype(np.float32)) for k, b in blocks.items()}
    ds = xr.Dataset(
        data,
        coords={
            "time": ("time", time, {"units": "ms", "long_name": "time (end of step)"}),
            "sample": sample,
            "population": ("neuron", np.array(populations)),
            "unit": ("neuron", np.array(units)),
            "hardware_time": (
                "time",
                time / speedup,
                {"units": "ms", "long_name": f"time on the chip ({speedup:g}x)"},
            ),
        },
        attrs={
            "spec": spec.to_json(indent=None),
            "backend": backend,
            "dt_ms": spec.dt,
            **(attrs or {}),
        },
    )
    ds["v"].attrs.update(long_name="membrane potential")
    ds["i"].attrs.update(long_name="synaptic current")
    ds["spikes"].attrs.update(long_name="spikes per step (NaN: non-spiking population)")
    return ds


def population(ds: xr.Dataset, name: str) -> xr.Dataset:
    """The part of a recording that belongs to population ``name``."""
    return ds.isel(neuron=np.flatnonzero(ds["population"].values == name))


def save_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically (a temporary file in the same folder, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".nc.part", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_netcdf(path: str | os.PathLike) -> xr.Dataset:
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
