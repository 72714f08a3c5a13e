"""Plots every component shares: spike rasters and membrane traces, downsampled for the browser.

Data in, tidy ``pandas.DataFrame`` out (what ``hv.streams.Buffer``/``Pipe`` stream best), then
one HoloViews element per kind.  Dimension names carry the population (``"hidden neuron"``,
``"hidden v"``) so that HoloViews, which links axes sharing a dimension name, links only the
axes that mean the same thing: every plot's time axis is ``time`` in ms.
"""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (the plotting extension every .opts here needs)
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


# ---------------------------------------------------------------------------- live figures
# The training dashboard draws with Bokeh directly: its updates then change data sources only
# (a stream or a replaced column), which the browser receives as small patches.  HoloViews
# re-renders touch the plots' objects too, and each such change made Bokeh walk the whole
# page's model graph (~0.3 s per update for the app), which capped updates at ~2 per second.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def live_figure(title: str, x_label: str, y_label: str, webgl: bool = False):
    """An empty Bokeh figure for data that a periodic callback updates."""
    from bokeh.plotting import figure

    fig = figure(
        title=title,
        height=220,
        sizing_mode="stretch_width",
        output_backend="webgl" if webgl else "canvas",
        tools="pan,wheel_zoom,box_zoom,reset,save,hover",
    )
    fig.xaxis.axis_label, fig.yaxis.axis_label = x_label, y_label
    return fig


def multi_line_data(frame: pd.DataFrame) -> dict:
    """A :func:`trace_frame` as the columns of a Bokeh ``multi_line``: one line per neuron."""
    groups = list(frame.groupby("neuron", sort=False))
    return {
        "xs": [part["time"].to_numpy() for _, part in groups],
        "ys": [part["v"].to_numpy() for _, part in groups],
        "neuron": [name for name, _ in groups],
        "color": [PALETTE[k % len(PALETTE)] for k in range(len(groups))],
    }
