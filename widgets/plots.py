"""Plots every component shares: spike rasters and membrane traces, downsampled for the browser.

Data in, tidy ``pandas.DataFrame`` out (what ``hv.streams.Buffer``/``Pipe`` stream best), then
one HoloViews element per kind.  Dimension names carry the population (``"hidden neuron"``,
``"hidden v"``) so that HoloViews, which links axes sharing a dimension name, links only the
axes that mean the same thing: every plot's time axis is ``time`` in ms.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd

TIME = hv.Dimension("time", label="time", unit="ms")
MAX_RASTER_NEURONS = 200  # rows of a raster sent to the browser
MAX_TRACE_POINTS = 400  # points per membrane trace sent to the browser


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def neuron_dim(population: str) -> hv.Dimension:
    return hv.Dimension(f"{population} neuron", label=f"{population} neuron")


def voltage_dim(population: str) -> hv.Dimension:
    return hv.Dimension(f"{population} v", label=f"{population} membrane")


def pick_neurons(n: int, limit: int = MAX_RASTER_NEURONS) -> np.ndarray:
    """``limit`` neuron indices spread evenly over ``n`` (all of them when ``n <= limit``)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def raster_frame(spikes, dt: float, limit: int = MAX_RASTER_NEURONS) -> pd.DataFrame:
    """Spike events of ``spikes`` ``[time, neuron]`` (0/1 or counts) as a table ``time, neuron``,
    over at most ``limit`` neurons spread evenly across the population."""
    s = _numpy(spikes)
    keep = pick_neurons(s.shape[1], limit)
    steps, index = np.nonzero(s[:, keep] > 0)
    return pd.DataFrame({"time": steps * dt, "neuron": keep[index].astype(float)})


def raster(frame: pd.DataFrame, population: str, n: int, **opts) -> hv.Points:
    """A raster of ``frame`` (from :func:`raster_frame`) for a population of ``n`` neurons."""
    ydim = neuron_dim(population)
    points = hv.Points(frame.rename(columns={"neuron": ydim.name}), kdims=[TIME, ydim])
    return points.opts(
        size=2,
        marker="square",
        ylim=(-0.5, n - 0.5),
        title=f"{population} spikes",
        responsive=True,
        min_height=180,
        **opts,
    )


def downsample_trace(v, limit: int = MAX_TRACE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of a 1-d trace reduced to at most ``limit`` points by keeping each
    bucket's minimum and maximum, so spikes and resets stay visible."""
    v = _numpy(v).astype(float)
    n = len(v)
    if n <= limit:
        return np.arange(n), v
    buckets = np.array_split(np.arange(n), limit // 2)
    index = np.unique(np.concatenate([[b[v[b].argmin()], b[v[b].argmax()]] for b in buckets]))
    return index, v[index]


def trace_frame(v, dt: float, neurons, limit: int = MAX_TRACE_POINTS) -> pd.DataFrame:
    """Membrane traces of ``neurons`` from ``v`` ``[time, neuron]`` as a long table
    ``time, v, neuron``, each downsampled to ``limit`` points."""
    v = _numpy(v)
    parts = []
    for k in neurons:
        index, values = downsample_trace(v[:, k], limit)
        parts.append(pd.DataFrame({"time": index * dt, "v": values, "neuron": str(k)}))
    if not parts:
        return pd.DataFrame({"time": [], "v": [], "neuron": []})
    return pd.concat(parts, ignore_index=True)


def traces(frame: pd.DataFrame, population: str, threshold: float | None = None, **opts):
    """Membrane traces (one line per neuron) with the threshold as a dashed line; always an
    ``hv.Overlay``, so a ``DynamicMap`` of it keeps one type as neurons come and go."""
    vdim = voltage_dim(population)
    data = frame.rename(columns={"v": vdim.name})
    curves = [
        hv.Curve(part, TIME, vdim, label=f"neuron {k}")
        for k, part in data.groupby("neuron", sort=False)
    ] or [hv.Curve(data, TIME, vdim)]
    if threshold is not None:
        curves.append(hv.HLine(threshold).opts(color="black", line_dash="dashed"))
    return hv.Overlay(curves).opts(
        title=f"{population} membrane", responsive=True, min_height=180, **opts
    )
