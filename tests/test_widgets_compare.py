"""CompareView: the comparison grid in a worker thread (checked, polled, stopped) and one
neuron's membrane on two backends.  No browser: the tests drive the view's methods."""

import math
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import panel as pn
import pytest
import torch

from workbench.backends import build
from workbench.compare import COLUMNS
from workbench.data import load_dataset
from workbench.experiment import RunConfig, make_run_encoder, resolve_encoder
from workbench.spec import feedforward
from workbench.widgets.compare import PLOTTED, CompareView, emulator_backends
from workbench.widgets.state import Workbench
from workbench.widgets.templates import TEMPLATES
from workbench.widgets.worker import runs_root

# small runs, as tests/test_compare.py: 1 epoch of digits on a 64-20-10 network over 10 steps
SMALL = {"hidden": [20], "n_steps": 10}


def make_view(folder=None, **workbench):
    wb = Workbench(dataset="digits", **workbench)
    return CompareView(workbench=wb, folder=None if folder is None else str(folder), autopoll=False)


def choose(view, algorithms, backends, seeds=1, epochs=1):
    view.overrides = dict(SMALL)
    view.algorithms.value = list(algorithms)
    view.backends.value = list(backends)
    view.seeds.value = seeds
    view.epochs.value = epochs


def finish(view, timeout=120.0):
    """Poll until the comparison ends, as the app's periodic callback would."""
    deadline = time.monotonic() + timeout
    while view.running:
        assert time.monotonic() < deadline, "the comparison did not finish"
        view.poll()
        time.sleep(0.05)


def alerts(column) -> str:
    return "\n".join(str(alert.object) for alert in column)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    view = make_view(tmp_path_factory.mktemp("compare"))
    choose(view, ["surrogate", "proxy"], ["float"])
    assert view.start()
    assert view.running and view.run_button.disabled and not view.stop_button.disabled
    finish(view)
    return view


# ------------------------------------------------------------------------------------ the grid


def test_a_comparison_fills_the_table_plots_and_progress(finished):
    view = finished
    table = view.table.value
    assert list(table.columns) == list(COLUMNS)
    assert list(zip(table.algorithm, table.backend)) == [("surrogate", "float"), ("proxy", "float")]
    assert table.error.isna().all() and (table.test_accuracy > 0).all()
    assert view.comparison is not None and len(view.comparison.rows) == 2
    assert view.status.object.startswith("2 of 2 runs done") and "failed" not in view.status.object
    assert view.progress.value == view.progress.max == 2 and not view.progress.active
    assert not view.run_button.disabled and view.stop_button.disabled
    # one plot per measure: a bar per algorithm x backend, a point per seed, all measured
    layout = view.plots.object
    assert len(layout) == len(PLOTTED) == 5
    for overlay, column in zip(layout, PLOTTED):
        bars, points = overlay.Bars.I, overlay.Scatter.I
        assert list(bars.dimension_values(0)) == ["surrogate · float", "proxy · float"]
        assert np.allclose(bars.dimension_values(1), table[column], equal_nan=True)
        assert len(points) == 2
    # the comparison's folder holds its files, under the folder given
    assert view.out.parent == Path(view.folder)
    assert (view.out / "results.csv").exists() and (view.out / "runs").is_dir()


def test_results_download_in_the_browser_and_show_rounded(finished):
    """The run folder is on the server, where a student cannot open it: the results come as
    a download (every digit), the table shows 3 decimals, the status names no server path."""
    view, table = finished, finished.results
    assert not view.download.disabled
    downloaded = pd.read_csv(view._results_csv())
    assert list(downloaded.columns) == list(table.columns)
    assert np.allclose(downloaded["train_seconds"], table["train_seconds"])
    assert "train_seconds" in view.table.formatters
    assert "test_accuracy" in view.table.formatters
    assert str(view.out) not in view.status.object


def test_the_view_renders(finished):
    root = pn.panel(finished).get_root()
    assert root is not None
    tables = [m for m in root.select({"type": pn.models.tabulator.DataTabulator})]
    assert len(tables) == 1 and len(tables[0].source.data["algorithm"]) == 2


def test_a_failing_cell_shows_its_error_and_the_others_go_on(tmp_path):
    view = make_view(tmp_path)
    choose(view, ["surrogate"], ["xylo", "float"])  # Xylo refuses digits' 64 inputs
    assert view.start()
    finish(view)
    table = view.table.value.set_index("backend")
    assert "Xylo Audio 2 allows at most 16" in table.loc["xylo", "error"]
    assert math.isnan(table.loc["xylo", "test_accuracy"])
    assert pd_isna(table.loc["float", "error"]) and table.loc["float", "test_accuracy"] > 0
    assert view.status.object.startswith("2 of 2 runs done, 1 failed: input_size:")
    # the failed cell has no bar; the completed one has
    bars = view.plots.object[0].Bars.I
    assert list(bars.dimension_values(0)) == ["surrogate · float"]


def pd_isna(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_stop_cancels_the_runs_not_yet_started_and_a_second_start_is_refused():
    view = make_view()  # no folder: a temporary one of the session
    choose(view, ["surrogate"], ["float"], seeds=3)
    assert view.start()
    assert not view.start()  # one comparison at a time
    assert "comparison" in alerts(view.messages) and "running" in alerts(view.messages)
    view.cancel()
    assert view.stop_button.disabled
    finish(view)
    errors = list(view.table.value.error)
    assert len(errors) == 3 and errors[1:] == ["cancelled", "cancelled"]
    assert "cancelled" in view.status.object
    # the session's folder lies in the server's folder of the OS temp dir, goes with stop()
    session = view.out.parent
    assert session.parent == runs_root() and session.exists()
    assert runs_root().parent.parent == Path(tempfile.gettempdir())
    assert view.stop()
    assert not session.exists()


def test_stop_ends_a_running_comparison():
    view = make_view()
    choose(view, ["surrogate"], ["float"], seeds=2)
    assert view.start()
    assert view.stop(timeout=120)
    assert not view.running and len(view.results) == 2
    assert view.results.error.iloc[1] == "cancelled"


def test_limits_and_settings_are_checked_before_anything_starts(tmp_path):
    view = make_view(tmp_path)
    view.workbench.limits.max_compare_runs = 3
    view.workbench.limits.max_epochs = 5
    choose(view, ["surrogate", "proxy"], ["float", "xylo"], seeds=1, epochs=10)
    view.run_button.clicks += 1  # as the browser's click does
    assert not view.running
    text = alerts(view.messages)
    assert "4 runs" in text and "limit of 3" in text
    assert "epochs" in text and "10 exceeds this session's limit of 5" in text
    # the references' epochs count too (digits trains 30)
    view.backends.value = ["float"]
    view.epochs.value = 0
    assert not view.start()
    assert "trains 30 epochs" in alerts(view.messages)
    # grid()'s problems: no algorithm
    view.algorithms.value = []
    view.epochs.value = 1
    assert not view.start()
    assert "algorithms" in alerts(view.messages) and "at least one" in alerts(view.messages)
    assert not view.running and view._job is None and not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ traces


def yinyang_view(**workbench):
    return CompareView(workbench=Workbench(dataset="yinyang", **workbench), autopoll=False)


def test_traces_on_float_and_an_emulator_differ():
    view = yinyang_view()
    assert view.backend_a.value == "float"
    assert view.backend_b.value == emulator_backends()[0]
    view.backend_b.value = "brainscales2"
    view.population.value = "hidden"
    view.neuron.value = 3
    view.sample.value = 5
    assert view.show_traces()
    a, b = view.traces
    assert (a.backend, b.backend) == ("float", "brainscales2")
    assert a.v.shape == b.v.shape == (view.workbench.spec.n_steps,)
    assert not np.allclose(a.v, b.v)  # the chip's ADC and noise
    assert a.spikes.shape == b.spikes.shape == (view.workbench.spec.n_steps, 120)
    layout = view.trace_plots.object
    curves = layout[0].Curve
    assert len(curves) == 2 and len(curves.Float) == len(curves.Brainscales2) == 100
    assert len(layout) == 3  # the overlay and both rasters
    assert "initial weights" in alerts(view.trace_messages)
    assert pn.panel(view).get_root() is not None


def test_traces_use_the_last_runs_weights():
    view = yinyang_view()
    trained = build(view.workbench.spec, "float", seed=7)
    view.workbench.run = SimpleNamespace(network=trained)
    view.backend_b.value = "crossbar"
    view.population.value = "output"
    view.neuron.value = 1
    assert view.show_traces()
    traces, _, notes = view.compute_traces()
    assert notes == ["weights of the last run"]
    # the float trace is the run's own network on the same encoded sample
    spec = view.workbench.spec
    config = RunConfig(
        dataset="yinyang", dt=spec.dt, n_steps=spec.n_steps, encoder=view.workbench.encoder
    )
    config.encoder = resolve_encoder(config)
    features = torch.as_tensor(load_dataset("yinyang").test.features[:1])
    with torch.no_grad():
        v = trained(make_run_encoder(config)(features), record=True).recordings["output"]["v"]
    assert np.allclose(traces[0].v, v[:, 0, 1].double().numpy())
    assert traces[0].spikes is None  # the readout does not spike: no raster
    assert len(view.trace_plots.object) == 1
    # a run of another network: its weights do not fit, the initial ones are shown
    other = feedforward([5, 30, 3])
    view.workbench.run = SimpleNamespace(network=build(other, "float"))
    assert view.show_traces()
    assert "do not fit" in alerts(view.trace_messages)


def test_a_chip_that_refuses_the_network_is_shown_as_a_message():
    spec = feedforward([5, 600, 3], dt=0.5, n_steps=100)  # more neurons than BrainScaleS-2's 512
    view = yinyang_view(spec=spec)
    view.backend_b.value = "brainscales2"
    assert view.show_traces()  # the float trace still shows
    assert [t.backend for t in view.traces] == ["float"]
    assert "brainscales2:" in alerts(view.trace_messages)
    assert "BrainScaleS-2 allows" in alerts(view.trace_messages)


def test_bad_trace_settings_are_refused_with_their_field():
    view = yinyang_view()
    view.population.value = "hidden"
    view.neuron.value = 500
    view.sample.value = 10**6
    assert not view.show_traces()
    text = alerts(view.trace_messages)
    assert "**neuron**: 500 must be in [0, 119]" in text and "**sample**" in text
    assert view.trace_plots.object is None
    # a network that does not read the dataset's encoding
    view.workbench.spec = feedforward([7, 10, 3])
    view.neuron.value = 0
    view.sample.value = 0
    assert not view.show_traces()
    assert "input_size" in alerts(view.trace_messages)


def test_the_population_choice_follows_the_network():
    view = yinyang_view()
    assert view.population.options == ["hidden", "output"]
    view.workbench.spec = TEMPLATES["Recurrent 5-64-3"]()
    assert view.neuron.end == 63
    view.workbench.spec = feedforward([5, 8, 6, 3])
    assert view.population.options == ["hidden1", "hidden2", "output"]
    assert view.population.value == "hidden1"
    view.workbench.dataset = "digits"
    assert view.dataset.value == "digits"


def test_webgl_reaches_the_plots():
    view = yinyang_view(webgl=True)
    assert view.show_traces()
    root = pn.panel(view.trace_plots).get_root()
    from bokeh.models import Plot

    figures = list(root.select({"type": Plot}))
    assert figures and all(f.output_backend == "webgl" for f in figures)
