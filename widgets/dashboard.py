"""The training dashboard: pick an algorithm and its settings, Start / Pause / Stop, and watch
loss and accuracy curves, spike rasters and membrane traces while the run goes on.

Two parts:

- :class:`TrainingSession` (a ``param.Parameterized`` model, no Panel): one training run at a
  time in a worker thread (``experiment.train`` on the session's network), whose events go onto a
  queue.  ``pause()`` holds the worker between batches, ``stop()`` ends it after the current
  batch (the core's ``StopSignal``).  The worker never touches a plot.
- :class:`TrainingDashboard` (a ``pn.viewable.Viewer``): the controls and plots.  ``poll()``
  drains the queue on the session's own thread and sends what arrived to the plots: batch rows
  are streamed into ``hv.streams.Buffer`` s holding DataFrames (incremental), the latest
  recorded sample replaces the rasters and traces through ``hv.streams.Pipe`` s, downsampled
  (:mod:`workbench.widgets.plots`) so a 1,000 x 1,000 recording stays small.  In a served app
  or notebook a periodic callback calls ``poll`` every ``period_ms``.

CSS classes for browser tests: ``wb-algorithm`` (select), ``wb-start``, ``wb-pause``,
``wb-stop``, ``wb-save`` (buttons), ``wb-status`` (the status line: state, epoch, batch and
the measured plot updates per second), ``wb-loss-plot``, ``wb-raster-<population>``,
``wb-test-accuracy``.
"""

from __future__ import annotations

import dataclasses
import io
import queue
import shutil
import tempfile
import threading
import time
import typing
import zipfile
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.algorithms import ALGORITHMS
from workbench.experiment import save_run, train, training_config
from workbench.recording import population
from workbench.spec import NetworkSpec, Problem, SpecError
from workbench.training import BatchEnd, EpochEnd, RunEnd, SampleRecorded, StopSignal

from . import plots
from .state import Workbench

SAMPLE_EVERY = 5  # batches between recorded samples while the dashboard watches


@dataclasses.dataclass(frozen=True)
class Finished:
    """The worker's last event: the run (or the error that ended it)."""

    run: object | None
    error: str | None
    seconds: float


class TrainingSession(param.Parameterized):
    """One training run at a time, in a worker thread; events on ``events`` (a queue)."""

    state = param.Selector(objects=["idle", "running", "paused", "stopping", "done", "failed"])
    error = param.String("")

    def __init__(self, **params):
        super().__init__(**params)
        self.events: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = StopSignal()
        self._resume = threading.Event()
        self._resume.set()
        self.started_at: float | None = None

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, config, spec: NetworkSpec) -> None:
        """Train ``config`` on ``spec`` in the background (refused while a run is active)."""
        if self.active:
            raise RuntimeError("a training run is already going; stop it first")
        self._stop = StopSignal()
        self._resume.set()
        self.events = queue.Queue()
        self.error = ""
        self.started_at = time.perf_counter()
        self.state = "running"
        self._thread = threading.Thread(
            target=self._work, args=(config, spec), name="workbench-training", daemon=True
        )
        self._thread.start()

    def _gate(self, event) -> None:
        """A callback of the run: queue the event, and hold the worker here while paused."""
        self.events.put(event)
        while not self._resume.wait(0.05):
            if self._stop.is_set():
                break

    def _work(self, config, spec: NetworkSpec) -> None:
        started = time.perf_counter()
        try:
            run = train(config, callbacks=[self._gate], stop=self._stop, spec=spec)
        except Exception as exc:  # shown to the user; the session stays usable
            self.events.put(Finished(None, f"{type(exc).__name__}: {exc}", 0.0))
            return
        self.events.put(Finished(run, None, time.perf_counter() - started))

    def pause(self) -> None:
        if self.state == "running":
            self._resume.clear()
            self.state = "paused"

    def resume(self) -> None:
        if self.state == "paused":
            self._resume.set()
            self.state = "running"

    def stop(self, wait: float = 0.0) -> None:
        """End the run after the current batch (``wait``: seconds to wait for the worker)."""
        if self.active:
            self._stop.set()
            self._resume.set()
            self.state = "stopping"
            if wait:
                self._thread.join(wait)

    def finished(self, event: Finished) -> None:
        """Called by the view when the worker's :class:`Finished` event arrives."""
        self.error = event.error or ""
        self.state = "failed" if event.error else "done"


def _field_widget(field: dataclasses.Field, value, hint):
    """A widget for one hyperparameter of an algorithm's settings dataclass."""
    label = field.name
    if hint is bool or isinstance(value, bool):
        return pn.widgets.Checkbox(label=label, value=bool(value))
    if hint is int or (isinstance(value, int) and not isinstance(value, bool)):
        return pn.widgets.IntInput(label=label, value=int(value), width=140)
    if hint is float or isinstance(value, float):
        return pn.widgets.FloatInput(label=label, value=float(value), width=140)
    return pn.widgets.TextInput(label=label, value="" if value is None else str(value), width=140)


class TrainingDashboard(pn.viewable.Viewer):
    """Train the session's network with any registered algorithm and watch it learn."""

    workbench = param.ClassSelector(class_=Workbench)
    algorithm = param.Selector(objects=list(ALGORITHMS), default="surrogate")
    period_ms = param.Integer(100, bounds=(20, 5000), doc="how often the plots update")
    trace_population = param.String("", doc="population whose membranes are traced")
    trace_neurons = param.List([0, 1, 2], item_type=int, doc="neurons traced")
    problems = param.List([], doc="why the last Start was refused (Problems)")

    def __init__(self, autopoll: bool = True, **params):
        params.setdefault("workbench", Workbench())
        super().__init__(**params)
        self.session = TrainingSession()
        self._autopoll = autopoll
        self._callback = None
        self._update_times: list[float] = []
        self.first_update_s: float | None = None
        self._epochs = 0
        self._steps_per_epoch = 1
        self._last_batch: BatchEnd | None = None

        self._algorithm = pn.widgets.Select.from_param(
            self.param.algorithm, label="Algorithm", css_classes=["wb-algorithm"]
        )
        self._settings = pn.Column()
        self._start = pn.widgets.Button(label="Start", color="primary", css_classes=["wb-start"])
        self._pause = pn.widgets.Button(label="Pause", disabled=True, css_classes=["wb-pause"])
        self._stop_button = pn.widgets.Button(
            label="Stop", color="danger", disabled=True, css_classes=["wb-stop"]
        )
        self._start.on_click(lambda _: self.start())
        self._pause.on_click(lambda _: self.toggle_pause())
        self._stop_button.on_click(lambda _: self.stop())
        self._status = pn.pane.Markdown("Ready.", css_classes=["wb-status"])
        self._alerts = pn.Column()
        self._result = pn.pane.Markdown("", css_classes=["wb-test-accuracy"])
        self._confusion = pn.Column()
        self._save = pn.widgets.FileDownload(
            callback=self._zip_run,
            filename="run.zip",
            label="Save the run folder",
            disabled=True,
            css_classes=["wb-save"],
        )
        self._trace_pop = pn.widgets.Select(label="Trace population", width=160)
        self._trace_neurons = pn.widgets.TextInput(label="Neurons (e.g. 0, 1, 2)", value="0, 1, 2")
        self._trace_pop.param.watch(self._on_trace_choice, "value")
        self._trace_neurons.param.watch(self._on_trace_choice, "value")

        self._batches = hv.streams.Buffer(
            pd.DataFrame({"batch": [], "loss": [], "accuracy": []}), length=100_000, index=False
        )
        self._epoch_rows = hv.streams.Buffer(
            pd.DataFrame({"epoch": [], "val_accuracy": []}), length=10_000, index=False
        )
        self._rasters: dict[str, hv.streams.Pipe] = {}
        self._trace_pipe = hv.streams.Pipe(data=plots.trace_frame(np.zeros((0, 0)), 1.0, []))
        self._last_recording = None
        self._plots = pn.Column(sizing_mode="stretch_width")
        self._build_plots()
        self.param.watch(self._on_algorithm, "algorithm")
        self.workbench.param.watch(self._on_spec, "spec")
        self._on_algorithm()

    # ------------------------------------------------------------------ settings
    def _on_algorithm(self, *_):
        """Hyperparameter widgets of the chosen algorithm, filled from its reference."""
        cls = ALGORITHMS[self.algorithm].config_class
        hints = typing.get_type_hints(cls)
        reference = self.workbench.run_config(self.algorithm).training
        defaults = dataclasses.asdict(cls())
        self._setting_widgets = {}
        for field in dataclasses.fields(cls):
            value = reference.get(field.name, defaults[field.name])
            if field.name == "sample_every":
                value = SAMPLE_EVERY
            self._setting_widgets[field.name] = _field_widget(field, value, hints.get(field.name))
        self._settings.objects = list(self._setting_widgets.values())

    def training_settings(self) -> dict:
        """The hyperparameters as the widgets hold them (strings parsed as the field's type)."""
        cls = ALGORITHMS[self.algorithm].config_class
        defaults = dataclasses.asdict(cls())
        out = {}
        for name, widget in self._setting_widgets.items():
            value = widget.value
            default = defaults.get(name)
            if isinstance(default, tuple | list) and isinstance(value, str):
                value = type(default)(float(v) for v in value.replace(",", " ").split())
            out[name] = value
        return out

    def set_setting(self, name: str, value) -> None:
        """Set one hyperparameter's widget (as a user would)."""
        if name not in self._setting_widgets:
            raise KeyError(f"{self.algorithm!r} has no setting {name!r}")
        self._setting_widgets[name].value = value

    # ------------------------------------------------------------------ controls
    def start(self) -> bool:
        """Check everything, then start training in the background; False if refused."""
        if self.session.active:
            self._show_problems([Problem("run", "a run is going; stop it before starting another")])
            return False
        wb = self.workbench
        training = self.training_settings()
        problems = wb.problems()
        epochs = training.get("epochs", 0)
        if isinstance(epochs, int) and epochs > wb.limits.max_epochs:
            problems.append(
                Problem(
                    "training.epochs",
                    f"{epochs} exceeds this session's limit of {wb.limits.max_epochs}",
                )
            )
        config = wb.run_config(self.algorithm, training)
        if not problems:
            try:
                training_config(config)
            except SpecError as exc:
                problems += exc.problems
        self._show_problems(problems)
        if problems:
            return False
        self._reset_plots()
        self._epochs = int(epochs) if isinstance(epochs, int) else 0
        self.session.start(config, NetworkSpec.from_json(wb.spec.to_json()))
        self._set_buttons()
        if self._autopoll and self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.poll, period=self.period_ms)
        return True

    def toggle_pause(self) -> None:
        if self.session.state == "paused":
            self.session.resume()
        else:
            self.session.pause()
        self._set_buttons()
        self._update_status()

    def stop(self, wait: float = 0.0) -> None:
        """Stop the run after its current batch (the app calls this when a session ends)."""
        self.session.stop(wait)
        self._set_buttons()
        self._update_status()

    def _set_buttons(self) -> None:
        state = self.session.state
        going = state in ("running", "paused", "stopping")
        self._start.disabled = going
        self._pause.disabled = state not in ("running", "paused")
        self._pause.label = "Resume" if state == "paused" else "Pause"
        self._stop_button.disabled = state not in ("running", "paused")

    def _show_problems(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        self._alerts.objects = [
            pn.pane.Alert(str(p), alert_type="danger", margin=(2, 5)) for p in problems
        ]

    # ------------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        opts = {"backend_opts": {"plot.output_backend": "webgl"}} if self.workbench.webgl else {}
        loss = hv.DynamicMap(
            lambda data: hv.Curve(data, "batch", "loss").opts(
                title="training loss", responsive=True, min_height=200, **opts
            ),
            streams=[self._batches],
        )
        accuracy = hv.DynamicMap(
            lambda data: hv.Curve(data, "batch", ("accuracy", "batch accuracy")).opts(
                title="accuracy (batches; validation per epoch)",
                responsive=True,
                min_height=200,
                ylim=(0, 1.02),
                **opts,
            ),
            streams=[self._batches],
        )
        val = hv.DynamicMap(
            lambda data: hv.Curve(data, "epoch", ("val_accuracy", "validation accuracy")).opts(
                title="validation accuracy per epoch",
                responsive=True,
                min_height=200,
                ylim=(0, 1.02),
                **opts,
            ),
            streams=[self._epoch_rows],
        )
        spec = self.workbench.spec
        rasters = []
        self._rasters = {}
        for pop in spec.populations:
            if not pop.spiking:
                continue
            pipe = hv.streams.Pipe(data=pd.DataFrame({"time": [], "neuron": []}))
            self._rasters[pop.name] = pipe
            rasters.append(
                pn.pane.HoloViews(
                    hv.DynamicMap(
                        lambda data, name=pop.name, size=pop.size: plots.raster(
                            data, name, size, xlim=(0, spec.n_steps * spec.dt), **opts
                        ),
                        streams=[pipe],
                    ),
                    sizing_mode="stretch_width",
                    css_classes=[f"wb-raster-{pop.name}"],
                )
            )
        names = [p.name for p in spec.populations]
        self._trace_pop.options = names
        if self.trace_population not in names:
            self.trace_population = names[0]
        self._trace_pop.value = self.trace_population
        traces = hv.DynamicMap(self._trace_plot, streams=[self._trace_pipe])
        self._plots.objects = [
            pn.Row(
                pn.pane.HoloViews(loss, sizing_mode="stretch_width", css_classes=["wb-loss-plot"]),
                pn.pane.HoloViews(accuracy, sizing_mode="stretch_width"),
                pn.pane.HoloViews(val, sizing_mode="stretch_width"),
            ),
            pn.Row(*rasters) if rasters else pn.pane.Markdown("No spiking population."),
            pn.Row(self._trace_pop, self._trace_neurons),
            pn.pane.HoloViews(traces, sizing_mode="stretch_width"),
        ]

    def _trace_plot(self, data):
        name = self.trace_population
        spec = self.workbench.spec
        threshold = None
        if name in spec.population_names:
            pop = spec.population(name)
            threshold = pop.params.get("threshold") if pop.spiking else None
        opts = {"backend_opts": {"plot.output_backend": "webgl"}} if self.workbench.webgl else {}
        return plots.traces(data, name, threshold, xlim=(0, spec.n_steps * spec.dt), **opts)

    def _on_spec(self, *_):
        if not self.session.active:
            self._build_plots()

    def _on_trace_choice(self, *_):
        self.trace_population = self._trace_pop.value or ""
        try:
            neurons = [int(v) for v in self._trace_neurons.value.replace(",", " ").split()]
        except ValueError:
            self._show_problems(
                [Problem("trace_neurons", "give neuron indices as integers, e.g. 0, 1, 2")]
            )
            return
        self.trace_neurons = neurons
        if self._last_recording is not None:
            self._send_recording(self._last_recording)

    def _reset_plots(self) -> None:
        self._build_plots()
        self._batches.clear()
        self._epoch_rows.clear()
        self._last_recording = None
        self._update_times = []
        self.first_update_s = None
        self._last_batch = None
        self._result.object = ""
        self._confusion.objects = []
        self._save.disabled = True

    def _send_recording(self, ds) -> None:
        """Rasters of every spiking population and the chosen traces of one recorded sample."""
        dt = float(ds.attrs.get("dt_ms", self.workbench.spec.dt))
        for name, pipe in self._rasters.items():
            part = population(ds, name)
            if part.sizes["neuron"]:
                pipe.send(plots.raster_frame(part["spikes"].isel(sample=0).values, dt))
        part = population(ds, self.trace_population)
        if part.sizes["neuron"]:
            n = part.sizes["neuron"]
            neurons = [k for k in self.trace_neurons if 0 <= k < n]
            self._trace_pipe.send(plots.trace_frame(part["v"].isel(sample=0).values, dt, neurons))

    # ------------------------------------------------------------------ the periodic update
    def poll(self) -> int:
        """Drain the worker's events into the plots; returns how many events arrived."""
        batches, epochs, recording, finished = [], [], None, None
        n = 0
        while True:
            try:
                event = self.session.events.get_nowait()
            except queue.Empty:
                break
            n += 1
            if isinstance(event, BatchEnd):
                self._steps_per_epoch = event.batches_per_epoch
                step = (event.epoch - 1) * event.batches_per_epoch + event.batch
                batches.append((step, event.loss, event.accuracy))
                self._last_batch = event
            elif isinstance(event, EpochEnd):
                epochs.append((event.epoch, event.metrics.get("val_accuracy", np.nan)))
            elif isinstance(event, SampleRecorded):
                recording = event.recording
            elif isinstance(event, Finished):
                finished = event
            elif isinstance(event, RunEnd):
                pass
        if batches:
            self._batches.send(pd.DataFrame(batches, columns=["batch", "loss", "accuracy"]))
        if epochs:
            self._epoch_rows.send(pd.DataFrame(epochs, columns=["epoch", "val_accuracy"]))
        if recording is not None:
            self._last_recording = recording
            self._send_recording(recording)
        if batches or epochs or recording is not None:
            now = time.perf_counter()
            self._update_times.append(now)
            if self.first_update_s is None and self.session.started_at is not None:
                self.first_update_s = now - self.session.started_at
        if finished is not None:
            self._finish(finished)
        self._update_status()
        return n

    def update_rate(self, window: float = 2.0) -> float:
        """Plot updates per second over the last ``window`` seconds."""
        now = time.perf_counter()
        recent = [t for t in self._update_times if now - t <= window]
        return len(recent) / window

    def _update_status(self) -> None:
        state = self.session.state
        text = f"**{state}**"
        if self._last_batch is not None:
            b = self._last_batch
            epochs = self._epochs or "?"
            text += f" · epoch {b.epoch}/{epochs} · batch {b.batch}/{b.batches_per_epoch}"
            text += f" · loss {b.loss:.3f}"
        if state in ("running", "paused", "stopping"):
            text += f" · {self.update_rate():.1f} plot updates/s"
        if self.first_update_s is not None:
            text += f" · first update {self.first_update_s:.2f} s after Start"
        if self.session.error:
            text += f"\n\n{self.session.error}"
        self._status.object = text

    def _finish(self, event: Finished) -> None:
        self.session.finished(event)
        self._set_buttons()
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        if event.error:
            self._show_problems([Problem("run", event.error)])
            return
        run = event.run
        self.workbench.run = run
        m = run.metrics
        stopped = " (stopped early)" if m.get("stopped") else ""
        self._result.object = (
            f"### Test accuracy {100 * m['test_accuracy']:.1f} %{stopped}\n"
            f"validation {100 * m['val_accuracy']:.1f} % · best epoch {m.get('best_epoch')} · "
            f"{m.get('train_seconds', event.seconds):.1f} s · "
            f"{m.get('test_spikes_per_sample', float('nan')):.1f} spikes per sample"
        )
        confusion = m.get("test_confusion")
        if confusion is not None:
            names = list(run.data.dataset.class_names) if run.data is not None else None
            self._confusion.objects = [pn.pane.HoloViews(confusion_plot(confusion, names))]
        self._save.disabled = False

    def _zip_run(self):
        """The finished run's folder (``save_run``) as a zip file to download."""
        run = self.workbench.run
        tmp = Path(tempfile.mkdtemp(prefix="workbench-run-"))
        try:
            folder = save_run(run, tmp / "run")
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(folder.rglob("*")):
                    zf.write(path, path.relative_to(folder.parent))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        buffer.seek(0)
        return buffer

    def teardown(self) -> None:
        """Stop the run and the periodic callback (a session ended)."""
        self.stop(wait=5.0)
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    def __panel__(self):
        controls = pn.Column(
            "## Train",
            self._algorithm,
            pn.pane.Markdown("**Settings** (the algorithm's reference for this dataset)"),
            self._settings,
            pn.Row(self._start, self._pause, self._stop_button),
            self._alerts,
            width=340,
        )
        results = pn.Column(self._result, self._confusion, self._save)
        return pn.Row(
            controls,
            pn.Column(self._status, self._plots, results, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )


def confusion_plot(confusion, class_names=None):
    """A heat map of a confusion matrix (rows: true class, columns: predicted)."""
    matrix = np.asarray(confusion)
    n = matrix.shape[0]
    names = list(class_names) if class_names else [str(k) for k in range(n)]
    rows = [(names[j], names[i], int(matrix[i, j])) for i in range(n) for j in range(n)]
    heat = hv.HeatMap(rows, kdims=["predicted", "true class"], vdims=["count"])
    labels = hv.Labels(heat)
    return (heat * labels).opts(
        hv.opts.HeatMap(cmap="Blues", title="test confusion matrix", width=320, height=300),
        hv.opts.Labels(text_color="black"),
    )
