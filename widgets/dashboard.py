"""The training dashboard: pick an algorithm and its settings, Start / Pause / Stop, and watch
loss and accuracy curves, spike rasters and membrane traces while the run goes on.

Two parts:

- :class:`TrainingSession` (a ``param.Parameterized`` model, no Panel): one training run at a
  time in a worker process (``experiment.train`` on the session's network), whose events come
  back on a queue.  It waits in the server's fair queue while every worker slot is taken
  (the status line shows its place and an estimate); ``pause()`` and ``stop()`` act at once,
  inside a batch.  The worker never touches a plot.
- :class:`TrainingDashboard` (a ``pn.viewable.Viewer``): the controls and plots.  ``poll()``
  drains the queue on the session's own thread and sends what arrived to the plots, Bokeh
  figures whose data sources it updates (see :mod:`workbench.widgets.plots` for why not
  HoloViews here): batch rows are streamed (only the new rows travel), the latest recorded
  sample replaces the rasters and traces, downsampled so a 1,000 x 1,000 recording stays
  small.  In a served app or notebook a periodic callback calls ``poll`` every ``period_ms``.

CSS classes for browser tests: ``wb-algorithm`` (select), ``wb-start``, ``wb-pause``,
``wb-stop``, ``wb-save`` (buttons), ``wb-status`` (the status line: state, epoch, batch and
the measured plot updates per second), ``wb-loss-plot``, ``wb-raster-<population>``,
``wb-test-accuracy``.
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import shutil
import time
import typing
from pathlib import Path

import holoviews as hv
import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d

from workbench.algorithms import ALGORITHMS
from workbench.experiment import config_problems, load_run
from workbench.recording import population
from workbench.spec import NetworkSpec, Problem
from workbench.training import BatchEnd, EpochEnd, SampleRecorded

from . import plots
from .hardware import chip_problems
from .parts import held, poll_every
from .state import Workbench
from .worker import Finished, Job, Planned, session_folder, train_in_process, zip_folder

SAMPLE_EVERY = 5  # batches between recorded samples while the dashboard watches
# A queued run's place and estimate, when only other sessions moved in the queue, are sent at
# most this often (seconds): when a class's sessions act at once, every page's status line
# would otherwise be redrawn once per action of every other student.
QUEUE_REFRESH_S = 1.0


class TrainingSession(param.Parameterized):
    """One training run at a time, in its own process; its events arrive on ``events``.

    A process, not a thread: a training loop holds Python's GIL most of the time, and in a
    thread it starved the server that draws this session's plots (and every other student's)
    to ~2 updates per second.  The run is a :class:`~workbench.widgets.worker.Job`: it waits
    in the server's queue while the machine's worker slots are taken, and Pause and Stop act
    at once (see there).  The finished run is a run folder under ``folder``.
    """

    state = param.Selector(
        objects=["idle", "queued", "running", "paused", "stopping", "done", "failed", "cancelled"]
    )
    error = param.String("")

    def __init__(self, folder: str | Path | None = None, session: str = "", **params):
        super().__init__(**params)
        self.folder = Path(folder) if folder else None
        self.session_id = session or f"session-{id(self)}"
        self.events = queue.SimpleQueue()
        self.job: Job | None = None
        self._runs = 0

    @property
    def active(self) -> bool:
        return self.job is not None and self.job.active

    @property
    def started_at(self) -> float | None:
        """When the worker started (after any wait in the queue)."""
        return self.job.started_at if self.job is not None else None

    def start(self, config, spec: NetworkSpec) -> None:
        """Train ``config`` on ``spec`` in the background (refused while a run is active)."""
        if self.active:
            raise RuntimeError("a training run is already going; stop it first")
        if self.folder is None:
            self.folder = session_folder()
        self._runs += 1
        out = self.folder / f"run-{self._runs}"
        self.error = ""
        self.job = Job(
            train_in_process,
            (config.to_dict(), spec.to_json(), str(out)),
            name="workbench-training",
            session=self.session_id,
            last=(Finished,),
            died=_died,
            epochs=int(config.training.get("epochs", 1) or 1),
            kind=f"{config.dataset}/{config.algorithm}/{config.backend}",
        )
        self.events = self.job.events
        self.state = "queued"
        self.sync()

    def sync(self) -> str:
        """Take the job's state (queued -> running happens in the scheduler's time)."""
        if self.job is not None and self.state in ("queued", "running", "paused", "stopping"):
            state = self.job.state
            if state != "ended" and state != self.state:
                self.state = state
        return self.state

    def pause(self) -> None:
        if self.job is not None and self.job.pause():
            self.state = "paused"

    def resume(self) -> None:
        if self.job is not None and self.job.resume():
            self.state = self.job.state

    def stop(self) -> None:
        """End the run at once: a queued run never starts, a running one aborts its batch."""
        if self.active:
            self.job.stop()
            self.state = "stopping" if self.job.state == "stopping" else self.state

    def finished(self, event: Finished) -> None:
        """Called by the view when the job's last event (:class:`Finished`) arrives."""
        self.error = event.error or ""
        if event.folder is None and not event.error:
            self.state = "cancelled"
        else:
            self.state = "failed" if event.error else "done"
        if self.job is not None:
            self.job.join(10)

    def close(self) -> None:
        """End any run at once and remove this session's run folders (the session ended:
        the server waits meanwhile, and nobody will read the run)."""
        if self.job is not None:
            self.job.terminate()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _died(exit_code: int | None) -> Finished:
    """The last event of a run whose worker said nothing: cancelled in the queue, or died."""
    if exit_code is None:
        return Finished(None, None)
    return Finished(None, f"the training process died (exit code {exit_code})")


def _field_widget(field: dataclasses.Field, value, hint):
    """A widget for one hyperparameter of an algorithm's settings dataclass."""
    label = field.name
    if hint is bool or isinstance(value, bool):
        return pn.widgets.Checkbox(label=label, value=bool(value))
    if hint is int or (isinstance(value, int) and not isinstance(value, bool)):
        return pn.widgets.IntInput(label=label, value=int(value), width=140)
    if hint is float or isinstance(value, float):
        return pn.widgets.FloatInput(label=label, value=float(value), width=140)
    if set(typing.get_args(hint)) == {float, type(None)}:  # an optional number: empty is None
        return pn.widgets.FloatInput(label=label, value=value, width=140, placeholder="none")
    if set(typing.get_args(hint)) == {list, type(None)}:  # an optional list, e.g. [5, 10]
        kinds = (type(None), list)
        return pn.widgets.LiteralInput(label=label, value=value, type=kinds, width=140)
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
        self.session = TrainingSession(session=self.workbench.session_id)
        self.run_folder: Path | None = None
        self._autopoll = autopoll
        self._callback = None
        self._update_times: collections.deque[float] = collections.deque()  # the last 2 s
        self.first_update_s: float | None = None
        self._epochs = 0
        self._steps_per_epoch = 1
        self._last_batch: BatchEnd | None = None
        self._plan: str | None = None  # the plan the worker made before training, if any
        self._status_at = 0.0  # monotonic time the status line last changed

        self._algorithm = pn.widgets.Select.from_param(
            self.param.algorithm, label="Algorithm", css_classes=["wb-algorithm"]
        )
        self._settings = pn.Column()
        self._start = pn.widgets.Button(label="Start", color="primary", css_classes=["wb-start"])
        self._pause = pn.widgets.Button(label="Pause", disabled=True, css_classes=["wb-pause"])
        self._stop_button = pn.widgets.Button(
            label="Stop", color="danger", disabled=True, css_classes=["wb-stop"]
        )
        self._start.on_click(lambda _: held(self.start))
        self._pause.on_click(lambda _: held(self.toggle_pause))
        self._stop_button.on_click(lambda _: held(self.stop))
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

        self._last_recording = None
        self._plots = pn.Column(sizing_mode="stretch_width")
        self._build_plots()
        self.param.watch(self._on_algorithm, "algorithm")
        # the settings start from the reference of the algorithm on this dataset and backend
        self.workbench.param.watch(self._on_algorithm, ["dataset", "backend"])
        self.workbench.param.watch(self._on_spec, "spec")
        self._setting_widgets: dict = {}
        self._filled_with: dict = {}  # the reference value each setting widget was filled with
        self._on_algorithm()

    # ------------------------------------------------------------------ settings
    def _on_algorithm(self, *_):
        """Hyperparameter widgets of the chosen algorithm, filled from its reference on this
        dataset and backend.  A setting the user changed from the reference it was filled with
        keeps the user's value when the reference changes (another backend, dataset or
        algorithm that has the setting too); the others follow the new reference."""
        cls = ALGORITHMS[self.algorithm].config_class
        hints = typing.get_type_hints(cls)
        reference = self.workbench.run_config(self.algorithm).training
        defaults = dataclasses.asdict(cls())
        edited = {
            name: widget.value
            for name, widget in self._setting_widgets.items()
            if widget.value != self._filled_with.get(name)
        }
        self._setting_widgets, self._filled_with = {}, {}
        for field in dataclasses.fields(cls):
            value = reference.get(field.name, defaults[field.name])
            if field.name == "sample_every":
                value = SAMPLE_EVERY
            widget = _field_widget(field, value, hints.get(field.name))
            self._filled_with[field.name] = widget.value
            if field.name in edited:
                widget.value = edited[field.name]
            self._setting_widgets[field.name] = widget
        self._settings.objects = list(self._setting_widgets.values())

    def training_settings(self) -> dict:
        """The hyperparameters as the widgets hold them."""
        return {name: widget.value for name, widget in self._setting_widgets.items()}

    def set_setting(self, name: str, value) -> None:
        """Set one hyperparameter's widget (as a user would)."""
        if name not in self._setting_widgets:
            raise KeyError(f"{self.algorithm!r} has no setting {name!r}")
        self._setting_widgets[name].value = value

    # ------------------------------------------------------------------ controls
    def start(self) -> bool:
        """Check everything, then start training in the background; False if refused."""
        wb = self.workbench
        if self.session.active:
            self._show_problems([Problem("run", "a run is going; stop it before starting another")])
            return False
        if wb.active_runs >= wb.limits.max_concurrent_runs:
            limit = wb.limits.max_concurrent_runs
            self._show_problems(
                [
                    Problem(
                        "run",
                        f"this session may have {limit} run(s) going at once (a comparison is "
                        "going); stop it or raise --max-concurrent-runs",
                    )
                ]
            )
            return False
        training = self.training_settings()
        problems = wb.problems()
        if not problems:  # a chip's limits, before the run is started (not inside it)
            problems = chip_problems(wb)
        epochs = training.get("epochs", 0)
        if isinstance(epochs, int) and epochs > wb.limits.max_epochs:
            problems.append(
                Problem(
                    "training.epochs",
                    f"{epochs} exceeds this session's limit of {wb.limits.max_epochs}",
                )
            )
        config = wb.run_config(self.algorithm, training)
        if not problems:  # every setting, the algorithm x backend pair, the memory estimate
            problems += config_problems(config, wb.spec)
        self._show_problems(problems)
        if problems:
            return False
        self._reset_plots()
        self._epochs = int(epochs) if isinstance(epochs, int) else 0
        self.session.start(config, NetworkSpec.from_json(wb.spec.to_json()))
        wb.active_runs += 1
        self._set_buttons()
        self._update_status()  # "queued · 2nd, about 1 min" when the workers are busy
        if self._autopoll and self._callback is None:
            self._callback = poll_every(self.poll, self.period_ms)
        return True

    def toggle_pause(self) -> None:
        if self.session.state == "paused":
            self.session.resume()
        else:
            self.session.pause()
        self._set_buttons()
        self._update_status()

    def stop(self) -> None:
        """Stop the run at once (the Stop button): its batch is dropped, and the run ends
        with the weights of the last whole batch; a queued run never starts."""
        self.session.stop()
        self._set_buttons()
        self.poll()  # a run stopped in the queue has ended already

    def _set_buttons(self) -> None:
        state = self.session.state
        self._start.disabled = state in ("queued", "running", "paused", "stopping")
        self._pause.disabled = state not in ("queued", "running", "paused")
        self._pause.label = "Resume" if state == "paused" else "Pause"
        self._stop_button.disabled = state not in ("queued", "running", "paused")

    def _show_problems(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        self._alerts.objects = [
            pn.pane.Alert(str(p), alert_type="danger", margin=(2, 5)) for p in problems
        ]

    # ------------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        """The live figures of the session's network (rebuilt when the network changes)."""
        spec = self.workbench.spec
        webgl = self.workbench.webgl
        duration = (0, spec.n_steps * spec.dt)
        self._curves = ColumnDataSource({"batch": [], "loss": [], "accuracy": []})
        self._val = ColumnDataSource({"batch": [], "epoch": [], "val_accuracy": []})
        loss = plots.live_figure("training loss", "batch", "loss", webgl)
        loss.line("batch", "loss", source=self._curves)
        accuracy = plots.live_figure(
            "accuracy (batches; validation per epoch)", "batch", "accuracy", webgl
        )
        accuracy.y_range = Range1d(0, 1.02)
        accuracy.line("batch", "accuracy", source=self._curves, legend_label="batch")
        accuracy.scatter(
            "batch",
            "val_accuracy",
            source=self._val,
            size=7,
            color="#d62728",
            legend_label="validation",
        )
        accuracy.legend.location = "bottom_right"
        self._rasters = {}
        rasters = []
        for pop in spec.populations:
            if not pop.spiking:
                continue
            source = ColumnDataSource({"time": [], "neuron": []})
            self._rasters[pop.name] = source
            fig = plots.live_figure(f"{pop.name} spikes", "time (ms)", f"{pop.name} neuron", webgl)
            fig.x_range, fig.y_range = Range1d(*duration), Range1d(-0.5, pop.size - 0.5)
            fig.scatter("time", "neuron", source=source, marker="square", size=3)
            rasters.append(
                pn.Column(fig, sizing_mode="stretch_width", css_classes=[f"wb-raster-{pop.name}"])
            )
        self._traces = ColumnDataSource({"xs": [], "ys": [], "neuron": [], "color": []})
        self._trace_fig = plots.live_figure("membrane", "time (ms)", "membrane", webgl)
        self._trace_fig.x_range = Range1d(*duration)
        self._trace_fig.multi_line("xs", "ys", color="color", source=self._traces)
        # the threshold as a data line (a Span would not widen the autoranged y axis to it)
        self._threshold = ColumnDataSource({"time": [], "v": []})
        self._trace_fig.line("time", "v", source=self._threshold, line_dash="dashed", color="black")
        names = spec.population_names
        self._trace_pop.options = names
        if self.trace_population not in names:
            self.trace_population = names[0]
        self._trace_pop.value = self.trace_population
        self._set_trace_labels()
        self._plots.objects = [
            pn.Row(
                pn.Column(loss, sizing_mode="stretch_width", css_classes=["wb-loss-plot"]),
                pn.pane.Bokeh(accuracy, sizing_mode="stretch_width"),
            ),
            pn.Row(*rasters) if rasters else pn.pane.Markdown("No spiking population."),
            pn.Row(self._trace_pop, self._trace_neurons),
            pn.pane.Bokeh(self._trace_fig, sizing_mode="stretch_width"),
        ]

    def _set_trace_labels(self) -> None:
        """Title and threshold line of the trace plot for the chosen population."""
        name = self.trace_population
        spec = self.workbench.spec
        pop = spec.population(name) if name in spec.population_names else None
        threshold = pop.params.get("threshold") if pop is not None and pop.spiking else None
        self._trace_fig.title.text = f"{name} membrane (threshold dashed)"
        end = spec.n_steps * spec.dt
        self._threshold.data = (
            {"time": [0.0, end], "v": [threshold, threshold]}
            if threshold is not None
            else {"time": [], "v": []}
        )

    def _on_spec(self, *_):
        if not self.session.active:
            self._build_plots()

    def _on_trace_choice(self, *_):
        self.trace_population = self._trace_pop.value or ""
        self._set_trace_labels()
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
        self._last_recording = None
        self._update_times.clear()
        self.first_update_s = None
        self._last_batch = None
        self._plan = None
        self._result.object = ""
        self._confusion.objects = []
        self._save.disabled = True

    def _send_recording(self, ds) -> None:
        """Rasters of every spiking population and the chosen traces of one recorded sample."""
        dt = float(ds.attrs.get("dt_ms", self.workbench.spec.dt))
        for name, source in self._rasters.items():
            part = population(ds, name)
            if part.sizes["neuron"]:
                source.data = dict(plots.raster_frame(part["spikes"].isel(sample=0).values, dt))
        part = population(ds, self.trace_population)
        if part.sizes["neuron"]:
            n = part.sizes["neuron"]
            neurons = [k for k in self.trace_neurons if 0 <= k < n]
            frame = plots.trace_frame(part["v"].isel(sample=0).values, dt, neurons)
            self._traces.data = plots.multi_line_data(frame)

    # ------------------------------------------------------------------ the periodic update
    def poll(self) -> int:
        """Drain the worker's events into the plots; returns how many events arrived.

        The document is held while the plots change, so the browser gets one message.  It is
        not frozen: an update changes data and text, never which models the page holds, and
        a frozen document is walked whole when it thaws (~45 ms for an app whose five tabs
        are open, against ~5 ms for the whole update; with a class's sessions each polling
        ten times a second, those walks kept the server busy).  When nothing arrived and
        nothing changed (a run waiting in the queue, a paused one), nothing is held or sent."""
        before = self.session.state
        state = self.session.sync()  # the queue gave it a slot, or took a paused one's
        if state == before and self.session.events.empty():
            if self._status_text() == self._status.object:
                return 0
            if state == "queued" and time.monotonic() - self._status_at < QUEUE_REFRESH_S:
                return 0  # only others moved in the queue: their place is sent in a moment
        with pn.io.hold():
            if state != before:
                self._set_buttons()
            return self._drain()

    def _drain(self) -> int:
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
            elif isinstance(event, Planned):
                self._plan = event.text
        if batches:
            self._curves.stream(dict(zip(("batch", "loss", "accuracy"), zip(*batches))))
        if epochs:
            steps = self._steps_per_epoch
            self._val.stream(
                {
                    "batch": [e * steps for e, _ in epochs],
                    "epoch": [e for e, _ in epochs],
                    "val_accuracy": [a for _, a in epochs],
                }
            )
        if recording is not None:
            self._last_recording = recording
            self._send_recording(recording)
        if batches or epochs or recording is not None:
            now = time.perf_counter()
            self._update_times.append(now)
            if self.first_update_s is None and self.session.started_at is not None:
                self.first_update_s = now - self.session.started_at
        if self._last_batch is not None and self.session.job is not None:
            b = self._last_batch
            done = (b.epoch - 1) * b.batches_per_epoch + b.batch
            self.session.job.progress(done / (max(self._epochs, 1) * b.batches_per_epoch))
        if finished is not None:
            self._finish(finished)
        self._update_status()
        return n

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends, updating the plots meanwhile (for scripts and notebooks
        executed top to bottom); returns the final state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.session.state in ("queued", "running", "paused", "stopping"):
            if deadline is not None and time.monotonic() > deadline:
                break
            self.poll()
            time.sleep(self.period_ms / 1000)
        self.poll()
        return self.session.state

    def update_rate(self, window: float = 2.0) -> float:
        """Plot updates per second over the last ``window`` seconds (older times are dropped,
        so the status line costs the same at the end of a long run as at its start)."""
        now = time.perf_counter()
        while self._update_times and now - self._update_times[0] > window:
            self._update_times.popleft()
        return len(self._update_times) / window

    def _update_status(self) -> None:
        text = self._status_text()
        if text != self._status.object:  # an unchanged line is not sent again
            self._status.object = text
            self._status_at = time.monotonic()

    def _status_text(self) -> str:
        state = self.session.state
        text = f"**{state}**"
        if state == "queued" and self.session.job is not None:
            text += f" · {self.session.job.place()}"
            if self.session.job.started_at is not None:
                text += " (to resume)"
            else:
                text += " (every worker of this server is busy; it starts by itself)"
        if self._last_batch is not None:
            b = self._last_batch
            epochs = self._epochs or "?"
            text += f" · epoch {b.epoch}/{epochs} · batch {b.batch}/{b.batches_per_epoch}"
            text += f" · loss {b.loss:.3f}"
        if state == "running":
            text += f" · {self.update_rate():.1f} plot updates/s"
        if self.first_update_s is not None:
            text += f" · first update {self.first_update_s:.2f} s after Start"
        if self._plan:
            text += f"\n\nnear the memory limit, so planned before it started: {self._plan}"
        if self.session.error:
            text += f"\n\n{self.session.error}"
        return text

    def _finish(self, event: Finished) -> None:
        self.session.finished(event)
        self.workbench.active_runs -= 1
        self._set_buttons()
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        if event.error:
            self._show_problems([Problem("run", event.error)])
            return
        if event.folder is None:  # stopped while it waited in the queue
            return
        try:
            run = load_run(event.folder)
        except Exception as exc:  # shown, not raised inside the periodic callback
            self._show_problems([Problem("run", f"the run folder could not be read: {exc}")])
            return
        self.run_folder = Path(event.folder)
        self.workbench.run = run
        m = run.metrics
        stopped = " (stopped early)" if m.get("stopped") else ""
        self._result.object = (
            f"### Test accuracy {100 * m['test_accuracy']:.1f} %{stopped}\n"
            f"validation {100 * m['val_accuracy']:.1f} % · best epoch {m.get('best_epoch')} · "
            f"{m['train_seconds']:.1f} s · "
            f"{m.get('test_spikes_per_sample', float('nan')):.1f} spikes per sample · "
            f"{m.get('test_energy_per_sample_uj', float('nan')):.3g} µJ per sample on "
            f"{run.config.backend}"
        )
        confusion = m.get("test_confusion")
        if confusion is not None:
            names = list(run.data.dataset.class_names) if run.data is not None else None
            self._confusion.objects = [pn.pane.HoloViews(confusion_plot(confusion, names))]
        self._save.disabled = False

    def _zip_run(self):
        """The finished run's folder as a zip file to download."""
        return zip_folder(self.run_folder, "run")

    def teardown(self) -> None:
        """Stop the run and the periodic callback, remove the session's run folders (a
        session ended)."""
        self.session.close()
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
