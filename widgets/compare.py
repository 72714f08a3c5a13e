"""Compare training algorithms and backends side by side, and one neuron on two backends.

:class:`CompareView` has two parts:

1. **A comparison grid** (:func:`workbench.compare.compare`): algorithms x backends x seeds on
   the session's dataset, each cell the reference run of its algorithm and backend (the
   reference networks, not the builder's; ``CompareView.overrides`` is merged into every run,
   e.g. ``{"hidden": [20]}``).  The grid
   and the session's limits are checked before anything starts; the runs go one after another
   in a worker thread that only puts :class:`~workbench.compare.RunFinished` events on a queue.
   :meth:`CompareView.poll` drains the queue and updates the results table, the bar plots
   (test accuracy, train seconds, spikes per sample, peak memory: the mean per algorithm x
   backend as a bar, each seed as a point) and the progress text.  A failed run shows its
   error in the table; the others go on.  Every comparison writes its run folders,
   ``results.csv`` and ``summary.csv`` to a fresh folder under ``folder`` (by default a
   temporary folder of this session, removed by :meth:`CompareView.stop`).
2. **Membrane traces on two backends**: the session's network built on backend A and B with
   the same weights (the last run's, else the float network's initial ones), one test sample
   encoded by the session's encoder, and the chosen neuron's membrane of both overlaid with
   the threshold, plus both spike rasters of its population.

Widgets browser tests can find (``css_classes``):

- ``wb-compare-algorithms``, ``wb-compare-backends`` (MultiChoice), ``wb-compare-seeds``,
  ``wb-compare-epochs`` (IntInput; 0 = each reference's epochs), ``wb-compare-dataset``
  (StaticText);
- ``wb-compare-run``, ``wb-compare-stop`` (Button), ``wb-compare-progress`` (Progress bar),
  ``wb-compare-status`` (progress text), ``wb-compare-messages`` (alerts of the grid),
  ``wb-compare-download`` (FileDownload of ``results.csv``),
  ``wb-compare-table`` (Tabulator), ``wb-compare-plots`` (HoloViews pane);
- ``wb-compare-backend-a``, ``wb-compare-backend-b``, ``wb-compare-population`` (Select),
  ``wb-compare-neuron``, ``wb-compare-sample`` (IntInput), ``wb-compare-traces`` (Button),
  ``wb-compare-trace-messages``, ``wb-compare-trace-plots``.
"""

from __future__ import annotations

import copy
import io
import queue
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh options the plots use)
import numpy as np
import pandas as pd
import panel as pn
import param
import torch
from bokeh.models.widgets.tables import NumberFormatter

from workbench.algorithms import ALGORITHMS
from workbench.backends import available_backends, backend_class, build
from workbench.compare import (
    SUMMARISED,
    Comparison,
    RunFinished,
    cell_config,
    describe_error,
    grid,
)
from workbench.data import load_dataset
from workbench.experiment import (
    RunConfig,
    check_fits,
    make_run_encoder,
    reference_config,
    resolve_encoder,
)
from workbench.spec import Problem, SpecError

from . import plots
from .hardware import is_emulator
from .parts import held, poll_every
from .state import Workbench
from .worker import ComparisonDone, Job, compare_in_process, session_folder, zip_folder

# the measures plotted per algorithm x backend (columns of Comparison.results)
PLOTTED = (
    "test_accuracy",
    "train_seconds",
    "spikes_per_sample",
    "energy_per_sample_uj",
    "peak_memory_mb",
)
CELL = hv.Dimension("cell", label="algorithm · backend")
CALIBRATION_SAMPLES = 256  # training samples a chip with calibrate() is calibrated on


@dataclass
class BackendTrace:
    """One backend's run of the sample: the chosen neuron's membrane and its population's
    spikes (``None`` for a non-spiking population)."""

    backend: str
    v: np.ndarray  # [time] membrane of the chosen neuron
    spikes: np.ndarray | None  # [time, neurons] of the chosen population
    dt: float


def _alert(problem: Problem | str, alert_type: str = "danger") -> pn.pane.Alert:
    text = f"**{problem.path}**: {problem.message}" if isinstance(problem, Problem) else problem
    return pn.pane.Alert(text, alert_type=alert_type, margin=(2, 5))


def _problems(exc: Exception) -> list[Problem]:
    if isinstance(exc, SpecError):
        return list(exc.problems)
    return [Problem("error", describe_error(exc))]


def emulator_backends() -> list[str]:
    """The registered backends that emulate a chip (their class has ``check``)."""
    out = []
    for name in available_backends():
        try:
            cls = backend_class(name)
        except Exception:  # a plugin that fails to load is not offered as an emulator
            continue
        if is_emulator(cls):
            out.append(name)
    return out


def _comparison_died(exit_code: int | None) -> ComparisonDone:
    """The last event of a comparison whose worker said nothing."""
    if exit_code is None:
        return ComparisonDone(None, "stopped before it started (it was waiting in the queue)")
    return ComparisonDone(None, f"the worker process ended ({exit_code})")


class CompareView(pn.viewable.Viewer):
    """Compare algorithms x backends x seeds on the session's dataset, and a neuron's membrane
    on two backends.  ``poll()`` brings the worker's results to the widgets; ``stop()`` ends
    the session's comparison (the app calls it when the session closes)."""

    workbench = param.ClassSelector(class_=Workbench, doc="this session's state")
    folder = param.String(
        None, allow_None=True, doc="where comparison folders go; None = a temporary folder"
    )
    overrides = param.Dict(
        default={}, doc="run settings merged into every run of a comparison (compare()'s)"
    )
    running = param.Boolean(False, doc="whether a comparison is going on")
    comparison = param.Parameter(None, doc="the last finished comparison (Comparison)")
    out = param.Parameter(None, doc="the folder of the last comparison started (Path)")

    def __init__(self, autopoll: bool = True, **params):
        super().__init__(**params)
        self._autopoll = autopoll  # a periodic callback polls while a comparison runs
        self._callback = None
        if self.workbench is None:
            raise ValueError("workbench: CompareView needs the session's Workbench")
        wb = self.workbench
        self._rows: list[dict] = []
        self._total = 0
        self._job: Job | None = None  # the comparison's worker, queued or going
        self._session_folder: Path | None = None  # the temporary folder this view made
        self.traces: list[BackendTrace] = []  # the last traces shown

        # ---------------------------------------------------------------- the grid
        backends = available_backends()
        self.algorithms = pn.widgets.MultiChoice(
            label="Algorithms",
            options=sorted(ALGORITHMS),
            css_classes=["wb-compare-algorithms"],
            sizing_mode="stretch_width",
        )
        self.backends = pn.widgets.MultiChoice(
            label="Backends",
            options=backends,
            value=[wb.backend] if wb.backend in backends else [],
            placeholder="none: each algorithm's own default backend",
            css_classes=["wb-compare-backends"],
            sizing_mode="stretch_width",
        )
        self.seeds = pn.widgets.IntInput(
            label="Seeds", value=1, start=1, css_classes=["wb-compare-seeds"], width=110
        )
        self.epochs = pn.widgets.IntInput(
            label="Epochs (0 = references)",
            value=0,
            start=0,
            css_classes=["wb-compare-epochs"],
            width=170,
        )
        self.dataset = pn.widgets.StaticText(
            label="Dataset", value=wb.dataset, css_classes=["wb-compare-dataset"]
        )
        self.run_button = pn.widgets.Button(
            label="Run comparison", color="primary", css_classes=["wb-compare-run"]
        )
        self.stop_button = pn.widgets.Button(
            label="Stop", color="warning", disabled=True, css_classes=["wb-compare-stop"]
        )
        self.progress = pn.indicators.Progress(
            value=0, max=1, active=False, css_classes=["wb-compare-progress"], width=200
        )
        self.status = pn.pane.Markdown(
            "No comparison yet.", css_classes=["wb-compare-status"], margin=(0, 10)
        )
        self.messages = pn.Column(css_classes=["wb-compare-messages"], sizing_mode="stretch_width")
        self.table = pn.widgets.Tabulator(
            Comparison(wb.dataset).results,
            disabled=True,
            show_index=False,
            css_classes=["wb-compare-table"],
            sizing_mode="stretch_width",
        )
        # The results as files the student's browser saves (the run folders are on the
        # server, and go when the session ends or the server restarts).
        self.download = pn.widgets.FileDownload(
            callback=self._results_csv,
            filename="results.csv",
            label="Download results.csv",
            disabled=True,
            css_classes=["wb-compare-download"],
            width=200,
        )
        self.download_folder = pn.widgets.FileDownload(
            callback=self._folder_zip,
            filename="comparison.zip",
            label="Download every run (zip)",
            disabled=True,
            css_classes=["wb-compare-download-folder"],
            width=220,
        )
        self.plots = pn.pane.HoloViews(
            self._metric_layout(self.table.value),
            css_classes=["wb-compare-plots"],
            sizing_mode="stretch_width",
        )
        self.run_button.on_click(lambda event: held(self.start))
        self.stop_button.on_click(lambda event: held(self.cancel))

        # ---------------------------------------------------------------- the traces
        emulators = emulator_backends()
        self.backend_a = pn.widgets.Select(
            label="Backend A", options=backends, value="float", css_classes=["wb-compare-backend-a"]
        )
        self.backend_b = pn.widgets.Select(
            label="Backend B",
            options=backends,
            value=emulators[0] if emulators else "float",
            css_classes=["wb-compare-backend-b"],
        )
        self.population = pn.widgets.Select(
            label="Population", options=[], css_classes=["wb-compare-population"]
        )
        self.neuron = pn.widgets.IntInput(
            label="Neuron", value=0, start=0, css_classes=["wb-compare-neuron"], width=100
        )
        self.sample = pn.widgets.IntInput(
            label="Test sample", value=0, start=0, css_classes=["wb-compare-sample"], width=110
        )
        self.traces_button = pn.widgets.Button(
            label="Show traces", color="primary", css_classes=["wb-compare-traces"]
        )
        self.trace_messages = pn.Column(
            css_classes=["wb-compare-trace-messages"], sizing_mode="stretch_width"
        )
        self.trace_plots = pn.pane.HoloViews(
            None, css_classes=["wb-compare-trace-plots"], sizing_mode="stretch_width"
        )
        self.traces_button.on_click(lambda event: self.show_traces())
        self.population.param.watch(self._population_changed, "value")
        wb.param.watch(self._spec_changed, "spec")
        wb.param.watch(self._dataset_changed, "dataset")
        self._spec_changed()

    # ------------------------------------------------------------------------------ layout
    def __panel__(self):
        return pn.Column(
            pn.pane.Markdown("### Compare algorithms and backends"),
            pn.Row(self.algorithms, self.backends, sizing_mode="stretch_width"),
            pn.Row(self.seeds, self.epochs, self.dataset),
            pn.Row(
                self.run_button,
                self.stop_button,
                self.progress,
                self.download,
                self.download_folder,
            ),
            self.status,
            self.messages,
            self.plots,
            self.table,
            pn.pane.Markdown("### One neuron on two backends"),
            pn.Row(self.backend_a, self.backend_b, self.population, self.neuron, self.sample),
            self.traces_button,
            self.trace_messages,
            self.trace_plots,
            sizing_mode="stretch_width",
        )

    # ------------------------------------------------------------------------------ watchers
    def _spec_changed(self, *events) -> None:
        names = self.workbench.spec.population_names
        current = self.population.value
        self.population.options = list(names)
        self.population.value = current if current in names else (names[0] if names else None)
        self._population_changed()

    def _population_changed(self, *events) -> None:
        spec = self.workbench.spec
        if self.population.value in spec.population_names:
            size = spec.size_of(self.population.value)
            self.neuron.value = min(self.neuron.value or 0, size - 1)
            self.neuron.end = size - 1

    def _dataset_changed(self, *events) -> None:
        self.dataset.value = self.workbench.dataset

    # ------------------------------------------------------------------------------ the grid
    def _arguments(self) -> dict:
        """compare()'s arguments from the widgets (without ``out``)."""
        return {
            "dataset": self.workbench.dataset,
            "algorithms": list(self.algorithms.value),
            "backends": list(self.backends.value) or None,
            "seeds": self.seeds.value,
            "epochs": self.epochs.value or None,
            "overrides": copy.deepcopy(self.overrides),
        }

    def check(self) -> list[Problem]:
        """What stops the chosen grid from starting: its settings (``grid``'s problems), the
        session's limits, and a comparison that is still going."""
        return self._plan()[1]

    def _plan(self) -> tuple[list[dict], list[Problem]]:
        """The cells of the chosen grid and what stops it from starting."""
        limits = self.workbench.limits
        problems = []
        if self.running:
            problems.append(
                Problem(
                    "comparison",
                    "one is running; stop it or let it finish before starting another",
                )
            )
        elif self.workbench.active_runs >= limits.max_concurrent_runs:
            problems.append(
                Problem(
                    "comparison",
                    f"this session may have {limits.max_concurrent_runs} run(s) going at once "
                    "(a training run is going); stop it or raise --max-concurrent-runs",
                )
            )
        arguments = self._arguments()
        try:
            cells = grid(**arguments)
        except Exception as exc:
            return [], problems + _problems(exc)
        if len(cells) > limits.max_compare_runs:
            problems.append(
                Problem(
                    "seeds",
                    f"the grid has {len(cells)} runs (algorithms x backends x seeds), more than "
                    f"this session's limit of {limits.max_compare_runs}",
                )
            )
        epochs = arguments["epochs"]
        if epochs is not None and epochs > limits.max_epochs:
            problems.append(
                Problem("epochs", f"{epochs} exceeds this session's limit of {limits.max_epochs}")
            )
        elif epochs is None:
            first = {}  # each algorithm's first cell: its reference's epochs
            for cell in cells:
                first.setdefault(cell["algorithm"], cell)
            for algorithm, cell in first.items():
                reference = cell_config(cell).training.get("epochs", 0)
                if reference > limits.max_epochs:
                    problems.append(
                        Problem(
                            "epochs",
                            f"the reference of {algorithm!r} trains {reference} epochs, more "
                            f"than this session's limit of {limits.max_epochs}; set the epochs "
                            f"to at most {limits.max_epochs}",
                        )
                    )
        return cells, problems

    def _new_folder(self) -> Path:
        root = self.folder
        if root is None:
            if self._session_folder is None:
                self._session_folder = session_folder()
            root = self._session_folder
        Path(root).mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="compare-", dir=root))

    def start(self) -> bool:
        """Check the grid and the limits, then queue the comparison for a worker process (it
        starts when the server has a free worker slot).  Returns whether it was queued; if
        not, the alerts say why."""
        cells, problems = self._plan()
        self.messages.objects = [_alert(p) for p in problems]
        if problems:
            return False
        arguments = self._arguments()
        try:
            arguments["out"] = self.out = self._new_folder()
        except OSError as exc:
            self.messages.objects = [_alert(Problem("folder", describe_error(exc)))]
            return False
        self._rows = []
        self._total = len(cells)
        self.comparison = None
        self.running = True
        self.workbench.active_runs += 1
        epochs = sum(arguments["epochs"] or cell_config(c).training.get("epochs", 1) for c in cells)
        self._job = Job(
            compare_in_process,
            (arguments,),
            name="workbench-compare",
            session=self.workbench.session_id,
            last=(ComparisonDone,),
            died=_comparison_died,
            epochs=epochs,
            kind="compare",
        )
        if self._autopoll and self._callback is None:
            self._callback = poll_every(self.poll, 500)
        self._refresh()
        return True

    def cancel(self) -> None:
        """Stop the comparison at once: a queued one never starts; runs not yet started are
        cancelled, the current one ends inside its batch (its row shows what it trained)."""
        if self._job is not None:
            self._job.stop()
            self.stop_button.disabled = True

    def poll(self) -> int:
        """Bring the worker's events to the widgets; returns how many there were."""
        job, n = self._job, 0
        if job is None:
            return 0
        while True:
            try:
                event = job.events.get_nowait()
            except queue.Empty:
                break
            n += 1
            if isinstance(event, RunFinished):
                self._rows.append(event.row)
                self._total = event.total
                job.progress(len(self._rows) / max(self._total, 1))
            elif isinstance(event, ComparisonDone):
                self._ended()
                self.comparison = event.comparison
                if event.comparison is not None:
                    self._rows = list(event.comparison.rows)  # in grid order
                if event.error:
                    self.messages.objects = [_alert(Problem("comparison", event.error))]
                job.join(1.0)
        if n:
            self._refresh()
        elif self.running:  # only the queue's place and estimate may have changed
            status = self._status_text()
            if status != self.status.object:
                self.status.object = status
        return n

    def _ended(self) -> None:
        """The comparison is over: free the session's run slot and stop polling."""
        if self.running:
            self.running = False
            self.workbench.active_runs -= 1
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    def stop(self, timeout: float = 10.0) -> bool:
        """End this session's comparison (the app calls it when the session closes, with a
        short ``timeout``: the server waits meanwhile): stop it, wait up to ``timeout`` seconds
        for the worker to end (then terminate it), and remove the session's temporary folder.
        Returns whether the worker has ended."""
        self.cancel()
        if self._job is not None and not self._job.join(timeout):
            self._job.terminate()
            if not self._job.join(2):
                return False
        deadline = time.monotonic() + 2
        while self.running and time.monotonic() < deadline:  # its last event, from the reader
            self.poll()
            time.sleep(0.05)
        if self._session_folder is not None:
            shutil.rmtree(self._session_folder, ignore_errors=True)
            self._session_folder = None
        return True

    @property
    def results(self) -> pd.DataFrame:
        """The finished runs so far, one row each (Comparison.results' columns)."""
        return Comparison(self.workbench.dataset, list(self._rows)).results

    def progress_text(self) -> str:
        """``3 of 6 runs done, 1 failed: <error>`` (and how many were cancelled)."""
        if not self._total:
            return "No comparison yet."
        errors = [row["error"] for row in self._rows if row["error"]]
        failed = [e for e in errors if e != "cancelled"]
        text = f"{len(self._rows)} of {self._total} runs done"
        if failed:
            text += f", {len(failed)} failed: " + "; ".join(dict.fromkeys(failed))
        if len(errors) > len(failed):
            text += f", {len(errors) - len(failed)} cancelled"
        return text

    def _folder_zip(self) -> io.BytesIO:
        """The last comparison's folder (results, summary, every run folder) as a zip."""
        return zip_folder(self.out, "comparison")

    def _results_csv(self) -> io.BytesIO:
        """The finished runs as ``results.csv`` (full precision), for the download button."""
        return io.BytesIO(self.results.to_csv(index=False).encode())

    def _refresh(self) -> None:
        results = self.results
        # shown to 3 decimals (the download keeps every digit)
        self.table.formatters = {
            column: NumberFormatter(format="0.[000]")
            for column in results.columns
            if pd.api.types.is_float_dtype(results[column])
        }
        self.table.value = results
        self.download.disabled = self.running or not len(results)
        self.download_folder.disabled = self.running or self.out is None
        self.plots.object = self._metric_layout(results)
        self.status.object = self._status_text()
        self.progress.max = max(self._total, 1)
        self.progress.value = len(self._rows)
        self.progress.active = self.running
        self.run_button.disabled = self.running
        self.stop_button.disabled = not self.running or self._job.state == "stopping"

    def _status_text(self) -> str:
        """The progress, or the comparison's place in the server's queue while it waits."""
        place = self._job.place() if self._job is not None and self.running else ""
        return f"**queued** · {place}" if place else self.progress_text()

    def _webgl(self, element):
        if self.workbench.webgl:
            return element.opts(backend_opts={"plot.output_backend": "webgl"})
        return element

    def _metric_layout(self, results: pd.DataFrame) -> hv.Layout:
        """One plot per measure: the mean of the completed runs per algorithm x backend as a
        bar, each seed as a point."""
        ok = results[results["error"].isna()]
        cells = ok["algorithm"].astype(str) + " · " + ok["backend"].astype(str)
        out = []
        for column in PLOTTED:
            label = SUMMARISED[column][0]
            vdim = hv.Dimension(column, label=label)
            runs = pd.DataFrame({CELL.name: cells, column: ok[column].astype(float)})
            runs = runs.dropna()
            means = runs.groupby(CELL.name, sort=False)[column].mean().reset_index()
            bars = hv.Bars(means, CELL, vdim).opts(alpha=0.6, tools=["hover"])
            points = hv.Scatter(runs, CELL, vdim).opts(
                color="black", size=6, jitter=0.2, tools=["hover"]
            )
            overlay = (bars * points).opts(
                title=label, xrotation=30, responsive=True, min_height=240, min_width=200
            )
            out.append(self._webgl(overlay))
        return hv.Layout(out).cols(len(PLOTTED))

    # ------------------------------------------------------------------------------ traces
    def _weights(self, spec) -> tuple[dict, str | None]:
        """The weights both backends get: the last run's if they fit ``spec``, else the float
        network's initial ones; and a note when the run's did not fit."""
        initial = build(spec, "float", seed=self.workbench.seed).state_dict()
        run = self.workbench.run
        if run is None:
            return initial, None
        trained = run.network.state_dict()
        misfits = [k for k, w in initial.items() if k not in trained or trained[k].shape != w.shape]
        if misfits:
            return initial, (
                f"the last run's weights do not fit this network ({', '.join(misfits)}); "
                "showing its initial weights"
            )
        return {k: trained[k].detach().clone() for k in initial}, None

    def compute_traces(self) -> tuple[list[BackendTrace], list[Problem], list[str]]:
        """Run one test sample on backend A and B; returns the traces of the backends that
        ran, the problems of those that did not, and notes (e.g. whose weights).  Raises
        :class:`SpecError` for settings that concern both (population, neuron, sample, a
        network that does not fit the dataset's encoding)."""
        wb = self.workbench
        spec = wb.spec
        name, neuron, index = self.population.value, self.neuron.value, self.sample.value
        if name not in spec.population_names:
            names = spec.population_names
            raise SpecError([Problem("population", f"{name!r} must be one of {names}")])
        problems = []
        size = spec.size_of(name)
        if neuron is None or not 0 <= neuron < size:
            problems.append(
                Problem("neuron", f"{neuron} must be in [0, {size - 1}] ({name} has {size})")
            )
        dataset = load_dataset(wb.dataset)
        n_test = len(dataset.test.labels)
        if index is None or not 0 <= index < n_test:
            problems.append(
                Problem("sample", f"{index} must be in [0, {n_test - 1}] (test samples)")
            )
        if problems:
            raise SpecError(problems)
        config = RunConfig(
            dataset=wb.dataset,
            seed=wb.seed,
            dt=spec.dt,
            n_steps=spec.n_steps,
            encoder=dict(wb.encoder) or reference_config(wb.dataset).encoder,
        )
        config.encoder = resolve_encoder(config)
        encoder = make_run_encoder(config)
        check_fits(spec, dataset, encoder)
        features = torch.as_tensor(dataset.test.features[index : index + 1], dtype=torch.float32)
        spikes_in = encoder(features)  # [time, 1, channels], the same for both backends
        weights, note = self._weights(spec)
        notes = [note] if note else []
        if wb.run is not None and not note:
            notes.append("weights of the last run")
        elif wb.run is None:
            notes.append("no run yet: both backends get the float network's initial weights")
        traces, failures = [], []
        for backend in dict.fromkeys([self.backend_a.value, self.backend_b.value]):
            options = dict(wb.backend_options) if backend == wb.backend else {}
            try:
                network = build(spec, backend, seed=wb.seed, **options)
                network.load_state_dict(weights)
                network.eval()
                if hasattr(network, "calibrate"):  # as deploy() does: on training samples
                    calibration = copy.deepcopy(encoder)
                    if hasattr(calibration, "reset"):
                        calibration.reset()
                    train = dataset.train.features[:CALIBRATION_SAMPLES]
                    network.calibrate(calibration(torch.as_tensor(train, dtype=torch.float32)))
                with torch.no_grad():
                    recorded = network(spikes_in, record=[name]).recordings[name]
            except Exception as exc:
                for p in _problems(exc):
                    failures.append(Problem(f"{backend}: {p.path}", p.message))
                continue
            spikes = recorded.get("spikes")
            traces.append(
                BackendTrace(
                    backend,
                    recorded["v"][:, 0, neuron].double().numpy(),
                    None if spikes is None else spikes[:, 0, :].double().numpy(),
                    spec.dt,
                )
            )
        return traces, failures, notes

    def show_traces(self) -> bool:
        """Compute and plot the traces (synchronously: one sample); problems become alerts.
        Returns whether anything was plotted."""
        try:
            traces, failures, notes = self.compute_traces()
        except Exception as exc:
            traces, failures, notes = [], _problems(exc), []
        self.traces = traces
        alerts = [_alert(p) for p in failures] + [_alert(n, "info") for n in notes]
        self.trace_messages.objects = alerts
        self.trace_plots.object = self._trace_layout(traces) if traces else None
        return bool(traces)

    def _trace_layout(self, traces: list[BackendTrace]) -> hv.Layout:
        pop = self.workbench.spec.population(self.population.value)
        neuron = self.neuron.value
        vdim = plots.voltage_dim(pop.name)
        curves = []
        for trace in traces:
            frame = plots.trace_frame(trace.v[:, None], trace.dt, [0])
            data = frame[["time", "v"]].rename(columns={"v": vdim.name})
            curves.append(hv.Curve(data, plots.TIME, vdim, label=trace.backend))
        overlay = hv.Overlay(curves)
        if pop.spiking and "threshold" in pop.params:
            overlay = overlay * hv.HLine(float(pop.params["threshold"])).opts(
                color="black", line_dash="dashed"
            )
        overlay = overlay.opts(
            title=f"{pop.name} neuron {neuron}: membrane",
            legend_position="top_right",
            responsive=True,
            min_height=240,
        )
        elements = [self._webgl(overlay)]
        for trace in traces:
            if trace.spikes is not None:
                frame = plots.raster_frame(trace.spikes, trace.dt)
                raster = plots.raster(frame, pop.name, pop.size)
                raster = raster.opts(title=f"{trace.backend}: {pop.name} spikes")
                elements.append(self._webgl(raster))
        return hv.Layout(elements).cols(1)


__all__ = ["BackendTrace", "CompareView", "emulator_backends"]
