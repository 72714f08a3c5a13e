"""The training dashboard driven through its param model (no browser): start, pause, stop,
refusals, and the events of a run reaching the plots."""

import time

import holoviews as hv
import numpy as np
import panel as pn
import psutil
import pytest
import xarray as xr

from workbench.experiment import config_problems
from workbench.spec import feedforward
from workbench.widgets import dashboard as dashboard_module
from workbench.widgets import plots
from workbench.widgets.dashboard import TrainingDashboard
from workbench.widgets.scheduler import configure
from workbench.widgets.state import Workbench

hv.extension("bokeh")


def small_workbench(**params) -> Workbench:
    """Digits (64 rate-coded channels, 10 classes) on a small network: ~1 s per epoch."""
    spec = feedforward([64, 24, 10], "lif", "li", dt=1.0, n_steps=10, name="small")
    return Workbench(dataset="digits", spec=spec, **params)


def until(dashboard, condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out; state {dashboard.session.state}"
        dashboard.poll()
        time.sleep(0.02)
    dashboard.poll()


def finished(dashboard):
    return lambda: dashboard.session.state in ("done", "failed")


def test_a_run_streams_batches_epochs_rasters_and_traces_then_shows_results():
    dash = TrainingDashboard(workbench=small_workbench(), autopoll=False)
    pn.panel(dash).get_root()  # renders
    dash.set_setting("epochs", 2)
    dash.set_setting("sample_every", 2)
    assert dash.start(), dash.problems
    assert dash.wait(timeout=120) == "done", dash.session.error
    batches = dash._curves.data
    assert len(batches["batch"]) > 10 and np.all(np.diff(batches["batch"]) > 0)
    assert np.isfinite(batches["loss"]).all()
    assert list(dash._val.data["epoch"]) == [1, 2]
    raster = dash._rasters["hidden"].data
    assert len(raster["time"]) > 0 and max(raster["neuron"]) < 24
    traces = dash._traces.data
    assert traces["neuron"] == ["0", "1", "2"] and len(traces["xs"][0]) == 10
    threshold = dash.workbench.spec.population("hidden").params["threshold"]
    assert list(dash._threshold.data["v"]) == [threshold, threshold]
    run = dash.workbench.run
    assert run is not None and run.spec.population("hidden").size == 24
    assert f"{100 * run.metrics['test_accuracy']:.1f} %" in dash._result.object
    assert dash._confusion.objects and not dash._save.disabled
    assert dash.first_update_s is not None and dash.first_update_s > 0
    assert not dash._start.disabled and dash._stop_button.disabled
    # the run folder downloads as a zip holding the run's files
    import zipfile

    names = zipfile.ZipFile(dash._zip_run()).namelist()
    assert "run/spec.json" in names and "run/weights.safetensors" in names


def test_stop_ends_the_run_after_the_current_batch():
    dash = TrainingDashboard(workbench=small_workbench(), autopoll=False)
    dash.set_setting("epochs", 50)
    assert dash.start()
    until(dash, lambda: len(dash._curves.data["batch"]) >= 3)
    dash.stop()
    assert dash.session.state == "stopping"
    until(dash, finished(dash), timeout=60)
    run = dash.workbench.run
    assert run.metrics["stopped"] and run.metrics["epochs"] == 1
    assert "stopped early" in dash._result.object


def test_stop_acts_inside_a_long_batch():
    # One batch of 1,024 samples x 600 steps x 600 neurons takes seconds: Stop, pressed
    # while the first batch is being computed (or before it starts), drops it: no batch is
    # reported, and the run ends as stopped without finishing that batch.  (test_training
    # holds the interrupt inside a batch exactly.)
    spec = feedforward([64, 600, 10], "lif", "li", dt=1.0, n_steps=600, name="long")
    dash = TrainingDashboard(workbench=Workbench(dataset="digits", spec=spec), autopoll=False)
    dash.set_setting("epochs", 1)
    dash.set_setting("batch_size", 1024)
    assert dash.start(), dash.problems
    until(dash, lambda: dash.session.job.pid is not None)
    time.sleep(1.0)
    dash.stop()
    assert dash.session.state == "stopping" and dash._stop_button.disabled
    until(dash, finished(dash), timeout=180)
    assert dash.session.state == "done", dash.session.error
    assert dash.workbench.run.metrics["stopped"]
    assert len(dash._curves.data["batch"]) == 0  # the batch going on was dropped


@pytest.fixture
def three_on_one_worker():
    """A server with one worker slot and three sessions' dashboards set to long runs; what
    still goes at the end is stopped."""
    configure(1)
    dashboards = [TrainingDashboard(workbench=small_workbench(), autopoll=False) for _ in "abc"]
    try:
        for dash in dashboards:
            dash.set_setting("epochs", 50)
        yield dashboards
    finally:
        going = ("queued", "running", "paused", "stopping")
        for dash in dashboards:
            dash.stop()
            until(dash, lambda d=dash: d.session.state not in going, 60)
        configure(None)


def test_runs_beyond_the_servers_workers_wait_in_the_queue(three_on_one_worker):
    first, second, third = three_on_one_worker
    assert first.start() and second.start()
    assert first.session.state == "running" and second.session.state == "queued"
    assert "queued" in second._status.object and "1st" in second._status.object
    second.toggle_pause()  # a queued run can be held too, out of the queue
    assert second.session.state == "paused" and second._pause.label == "Resume"
    second.toggle_pause()
    assert second.session.state == "queued" and not second._stop_button.disabled
    second.stop()  # leaves the queue at once; its worker never starts
    assert second.session.state == "cancelled" and second.session.job.pid is None
    assert not second._start.disabled
    assert third.start() and third.session.state == "queued"
    first.toggle_pause()  # a paused run gives its slot to the next
    until(third, lambda: third.session.state == "running")
    first.toggle_pause()  # and waits for one to resume
    assert first.session.state == "queued" and "to resume" in first._status.object
    third.stop()
    until(third, finished(third), timeout=60)
    until(first, lambda: first.session.state == "running")
    first.stop()
    until(first, finished(first), timeout=60)


def test_a_queued_place_moved_by_others_is_sent_at_most_once_a_second(
    three_on_one_worker, monkeypatch
):
    """Twenty students pressing Pause at once must not redraw every page twenty times: a
    queued run's line follows others' moves within QUEUE_REFRESH_S; its own action at once."""
    monkeypatch.setattr(dashboard_module, "QUEUE_REFRESH_S", 0.5)
    first, second, third = three_on_one_worker
    for dash in three_on_one_worker:
        assert dash.start()
    assert "2nd" in third._status.object
    second.toggle_pause()  # its own action: shown at once
    assert second._status.object.startswith("**paused**")
    assert third.poll() == 0 and "2nd" in third._status.object  # others' move: held
    time.sleep(0.6)
    third.poll()
    assert "1st" in third._status.object
    third.toggle_pause()  # its own action again within the second: at once
    assert third._status.object.startswith("**paused**")


def test_pause_holds_the_worker_and_resume_continues():
    dash = TrainingDashboard(workbench=small_workbench(), autopoll=False)
    dash.set_setting("epochs", 50)
    assert dash.start()
    until(dash, lambda: len(dash._curves.data["batch"]) >= 2)
    dash.toggle_pause()
    assert dash.session.state == "paused" and dash._pause.label == "Resume"
    # the worker is stopped where it was (SIGSTOP), not at the end of its batch
    worker = psutil.Process(dash.session.job.pid)
    until(dash, lambda: worker.status() == psutil.STATUS_STOPPED, timeout=5)
    time.sleep(0.3)
    dash.poll()
    held = len(dash._curves.data["batch"])
    time.sleep(1.0)
    dash.poll()
    assert len(dash._curves.data["batch"]) == held  # nothing trained while paused
    dash.toggle_pause()
    until(dash, lambda: len(dash._curves.data["batch"]) > held + 2)
    dash.stop()  # stop works from a pause too
    until(dash, finished(dash), timeout=60)
    assert dash.session.state == "done"


def test_start_is_refused_with_the_field_and_allowed_range():
    wb = small_workbench()
    wb.limits.max_epochs = 5
    dash = TrainingDashboard(workbench=wb, autopoll=False)
    dash.set_setting("epochs", 6)
    dash.set_setting("lr", -1.0)
    assert not dash.start()
    messages = [str(p) for p in dash.problems]
    assert any(m.startswith("training.epochs") and "limit of 5" in m for m in messages)
    assert dash.session.state == "idle" and not dash.session.active
    dash.set_setting("epochs", 1)
    assert not dash.start()
    assert [p.path for p in dash.problems] == ["training.lr"]
    wb.limits.max_neurons = 10
    dash.set_setting("lr", 0.01)
    assert not dash.start()
    assert any("neurons exceed" in str(p) for p in dash.problems)


def test_a_network_that_does_not_fit_the_data_fails_with_the_field():
    wb = small_workbench()
    wb.spec = feedforward([5, 8, 3], "lif", "li", dt=1.0, n_steps=10)
    dash = TrainingDashboard(workbench=wb, autopoll=False)
    dash.set_setting("epochs", 1)
    assert not dash.start()  # refused at Start, with the run settings' check, not in the run
    messages = {p.path: p.message for p in dash.problems}
    assert "64 channels" in messages["input_size"], messages
    assert dash.session.state != "failed" and not dash.session.active
    assert not dash._start.disabled  # the session stays usable


def test_a_large_recording_is_downsampled_before_it_reaches_the_browser():
    rng = np.random.default_rng(0)
    spikes = (rng.random((1000, 1000)) < 0.05).astype(np.float32)
    frame = plots.raster_frame(spikes, 1.0)
    assert frame["neuron"].nunique() <= plots.MAX_RASTER_NEURONS
    kept = plots.pick_neurons(1000)
    assert len(frame) == int(spikes[:, kept].sum())  # every spike of the neurons shown
    v = rng.normal(size=(1000, 1000))
    v[500, 3] = 50.0  # a spike-like peak survives min/max decimation
    traces = plots.trace_frame(v, 1.0, [3, 7])
    assert len(traces) <= 2 * plots.MAX_TRACE_POINTS and traces["v"].max() == 50.0


def test_each_dashboard_streams_only_its_own_run():
    first = TrainingDashboard(workbench=small_workbench(), autopoll=False)
    second = TrainingDashboard(workbench=small_workbench(), autopoll=False)
    first.set_setting("epochs", 1)
    assert first.start()
    until(first, finished(first))
    second.poll()
    assert len(second._curves.data["batch"]) == 0 and second.workbench.run is None


def test_recording_events_use_the_recording_format():
    # The dashboard reads SampleRecorded's xarray recording through recording.population.
    dash = TrainingDashboard(workbench=small_workbench(), autopoll=False)
    ds = xr.Dataset(
        {
            "v": (("time", "sample", "neuron"), np.zeros((10, 1, 34), np.float32)),
            "spikes": (("time", "sample", "neuron"), np.zeros((10, 1, 34), np.float32)),
        },
        coords={
            "population": ("neuron", ["hidden"] * 24 + ["output"] * 10),
            "unit": ("neuron", list(range(24)) + list(range(10))),
        },
        attrs={"dt_ms": 1.0},
    )
    ds["spikes"][3, 0, 5] = 1.0
    dash._send_recording(ds)
    assert {k: list(v) for k, v in dash._rasters["hidden"].data.items()} == {
        "time": [3.0],
        "neuron": [5.0],
    }


def test_a_session_runs_at_most_its_limit_of_runs_at_once():
    from workbench.widgets.compare import CompareView

    wb = small_workbench()
    dash = TrainingDashboard(workbench=wb, autopoll=False)
    view = CompareView(workbench=wb, autopoll=False)
    dash.set_setting("epochs", 50)
    assert dash.start() and wb.active_runs == 1
    assert not view.start()
    assert any("1 run(s) going at once" in str(p) for p in view.check())
    dash.stop()
    until(dash, finished(dash), timeout=60)
    assert wb.active_runs == 0
    assert not any("going at once" in str(p) for p in view.check())


def test_the_worker_module_imports_no_ui_library():
    # The fork server preloads it: a UI import there would cost every worker ~3 s.
    import subprocess
    import sys

    code = (
        "import sys, workbench.widgets.worker; "
        "print(sorted({'panel', 'holoviews', 'bokeh', 'param'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_settings_follow_the_reference_of_the_dataset():
    wb = Workbench()  # Yin-Yang
    dash = TrainingDashboard(workbench=wb, autopoll=False)
    yinyang = dash.training_settings()
    assert yinyang["epochs"] == 40 and yinyang["surrogate_scale"] == 10.0
    wb.dataset = "digits"
    settings = dash.training_settings()
    assert settings["epochs"] == 30 and settings["surrogate_scale"] == 5.0


def test_an_optional_list_setting_is_none_or_a_list_and_the_defaults_start():
    """``target_times`` (the van Rossum readout's, ``list | None``) reached the run as the text
    box's ``""`` and every Start was refused."""
    wb = Workbench()
    dash = TrainingDashboard(workbench=wb, autopoll=False)
    assert dash.training_settings()["target_times"] is None
    config = wb.run_config(dash.algorithm, dash.training_settings())
    assert config_problems(config, wb.spec) == []
    dash.set_setting("target_times", [5.0, 10.0])
    assert dash.training_settings()["target_times"] == [5.0, 10.0]
    with pytest.raises(ValueError):
        dash.set_setting("target_times", "5, 10")


def test_a_setting_the_user_changed_survives_another_backend_dataset_or_algorithm():
    """Picking a backend used to reset a typed-in epoch count to the reference's."""
    wb = Workbench()
    dash = TrainingDashboard(workbench=wb, autopoll=False)
    dash.set_setting("epochs", 2)
    wb.backend = "xylo"
    assert dash.training_settings()["epochs"] == 2
    wb.dataset = "digits"  # untouched settings follow the new reference, edited ones stay
    settings = dash.training_settings()
    assert settings["epochs"] == 2 and settings["surrogate_scale"] == 5.0
    dash.algorithm = "eventprop"  # it has epochs too
    assert dash.training_settings()["epochs"] == 2
    dash.set_setting("epochs", 40)  # back to a value equal to no reference: still the user's
    wb.backend = "float"
    assert dash.training_settings()["epochs"] == 40


def test_a_network_over_the_chips_limits_is_refused_at_start():
    """It used to start and fail inside the run (``run: SpecError: ...``)."""
    from workbench.spec import feedforward

    spec = feedforward([5, 1200, 3], "lif", "lif", dt=0.5, n_steps=20)  # Xylo: 1000 hidden
    wb = Workbench(spec=spec, backend="xylo")
    dash = TrainingDashboard(workbench=wb, autopoll=False)
    assert not dash.start() and not dash.session.active
    assert any("1200" in p.message and "Xylo" in p.message for p in dash.problems), dash.problems


def test_a_worker_ends_when_its_server_is_killed(tmp_path):
    # The worker's parent is the fork server, which outlives a killed server process: the
    # worker must notice by itself, or it trains on with nobody to see it.
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "server.py"
    script.write_text(
        "from workbench.spec import feedforward\n"
        "from workbench.widgets.dashboard import TrainingSession\n"
        "from workbench.widgets.state import Workbench\n"
        "import time\n"
        "if __name__ == '__main__':\n"
        "    spec = feedforward([64, 24, 10], 'lif', 'li', dt=1.0, n_steps=10)\n"
        "    wb = Workbench(dataset='digits', spec=spec)\n"
        "    session = TrainingSession()\n"
        "    session.start(wb.run_config('surrogate', {'epochs': 200}), spec)\n"
        "    print(session.job.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(server.stdout.readline())
    os.kill(worker, 0)  # running
    server.send_signal(signal.SIGKILL)
    server.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived its server by 20 s")
