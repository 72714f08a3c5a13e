"""Compare training algorithms and backends on one dataset: a grid of algorithm x backend x seed.

    from workbench.compare import compare
    result = compare("digits", ["surrogate"], seeds=3, epochs=5, out="runs/cmp")
    print(result.table())           # mean ± std per (algorithm, backend)
    result.results                  # one row per run (a DataFrame)

Each cell of the grid is one run of :func:`workbench.experiment.train` on the reference
configuration of its algorithm and backend (:func:`~workbench.experiment.reference_config`),
with ``epochs`` and ``overrides`` applied.  The unit of work is :func:`run_cell`, a top-level
function from a plain dict (the cell) to a plain dict (its row), so it runs on any
``concurrent.futures.Executor``: in the caller's thread by default (:class:`InlineExecutor`, so a
notebook or UI sees each result as it comes), a :func:`process_pool`, or a Dask client's
executor.  Results are collected as they finish; a run that fails becomes a row with its error
and the others go on.

With ``out``, every run's folder is saved under ``out/runs/<algorithm>-<backend>-seed<S>`` and
``out/results.csv`` (one row per finished run) and ``out/summary.csv`` are rewritten atomically
after each run, so they always hold the runs finished so far and never a partial file.

Columns of ``results.csv`` (see :data:`COLUMNS`):

- ``test_accuracy``, ``val_accuracy``: of the restored best-validation weights.
- ``train_seconds``: wall time of the algorithm's ``fit`` (not data loading or measuring).
- ``peak_memory_mb``: peak resident memory of the whole run (data, network, training,
  measuring) above the process's memory at its start, in MiB
  (:func:`workbench.metrics.peak_memory`: process-wide, so runs that share a process at the
  same time share it; each worker of a process pool measures its own).  One-time costs of a
  process (imports, torch's first optimiser step) are paid before the measurement.  Memory
  that an earlier run in the same process freed but the allocator kept is reused without
  showing, so figures are comparable between runs, not exact to the byte.
- ``spikes_per_sample``: spikes of every spiking population (not the input) per test sample.
- ``synops_per_sample``: synaptic operations per test sample, every spike (input included)
  times its synapses (:func:`workbench.metrics.synaptic_operations`), an energy proxy.
- ``energy_per_sample_uj``: energy per test sample on the run's backend, in microjoules: its
  counted activity priced with the backend's published per-operation figures
  (``network.energy(activity)``; :mod:`workbench.energy`).
- ``epochs``: epochs trained (fewer than asked when early stopping ended the run).
- ``error``: empty for a run that completed; otherwise why it failed.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import multiprocessing
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench import experiment, limits
from workbench.algorithms import ALGORITHMS
from workbench.backends import available_backends
from workbench.metrics import peak_memory
from workbench.spec import Problem, SpecError
from workbench.training import emit

COLUMNS = (
    "algorithm",
    "backend",
    "seed",
    "test_accuracy",
    "val_accuracy",
    "train_seconds",
    "peak_memory_mb",
    "spikes_per_sample",
    "synops_per_sample",
    "energy_per_sample_uj",
    "epochs",
    "error",
)
# the columns summarised as mean and std per (algorithm, backend), with their table headings
# and formats
SUMMARISED = {
    "test_accuracy": ("test accuracy", "{:.4f}"),
    "train_seconds": ("train s", "{:.1f}"),
    "peak_memory_mb": ("peak MiB", "{:.0f}"),
    "spikes_per_sample": ("spikes/sample", "{:.1f}"),
    "synops_per_sample": ("synops/sample", "{:.0f}"),
    "energy_per_sample_uj": ("uJ/sample", "{:.3g}"),
}
GRID_AXES = ("dataset", "algorithm", "backend", "seed")  # not settable through ``overrides``


# ------------------------------------------------------------------------------------ one run


def run_name(algorithm: str, backend: str, seed: int, params: dict | None = None) -> str:
    """The name of a cell (and of its run folder): ``<algorithm>-<backend>-seed<S>``, with a
    sweep's settings before the seed (``surrogate-float-training.lr=0.01-seed0``)."""
    swept = "".join(f"{key}={label(value)}-" for key, value in (params or {}).items())
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", f"{algorithm}-{backend}-{swept}seed{seed}")


def label(value):
    """A swept value as it appears in a table: numbers and text as they are, anything else
    (a list of hidden sizes, say) as its JSON."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value
    return json.dumps(value)


def cell_config(cell: dict) -> experiment.RunConfig:
    """The run configuration of a cell: the reference configuration of its algorithm and
    backend on its dataset, merged with ``cell["overrides"]``, then ``cell["epochs"]``."""
    config = experiment.reference_config(
        cell["dataset"], cell["algorithm"], cell["backend"], cell["seed"]
    )
    if cell.get("overrides"):
        merged = experiment._merge(config.to_dict(), cell["overrides"])
        config = experiment.RunConfig.from_dict(merged)
    if cell.get("epochs") is not None and isinstance(config.training, dict):
        config.training["epochs"] = cell["epochs"]
    return config


def run_cell(cell: dict, stop=None) -> dict:
    """Train one cell and return its row (a plain dict with the :data:`COLUMNS`).

    ``cell``: ``dataset``, ``algorithm``, ``backend``, ``seed``, and optionally ``epochs``,
    ``overrides`` (a dict merged into the run configuration) and ``run_dir`` (where to save the
    run folder).  ``stop`` (anything with ``is_set()``) ends the training after its current
    batch.  Never raises for a failing run: the row's ``error`` says what went wrong.
    """
    row = _empty_row(cell)
    try:
        config = cell_config(cell)
        # One-time costs of a process (the data set, torch's first optimiser step, loading the
        # compiled kernels) stay outside the measurement, so the first run in a process
        # measures like the others.
        experiment.warm_up(config)
        with peak_memory() as peak:
            run = experiment.train(config, stop=stop)
    except Exception as exc:
        row["error"] = describe_error(exc)
        return row
    m = run.metrics
    row.update(
        test_accuracy=m["test_accuracy"],
        val_accuracy=m["val_accuracy"],
        train_seconds=m["train_seconds"],
        peak_memory_mb=peak.megabytes,
        spikes_per_sample=m.get("test_spikes_per_sample", math.nan),
        synops_per_sample=m.get("test_synops_per_sample", math.nan),
        energy_per_sample_uj=m.get("test_energy_per_sample_uj", math.nan),
        epochs=m["epochs"],
    )
    if cell.get("run_dir"):
        try:
            experiment.save_run(run, cell["run_dir"])
        except Exception as exc:
            row["error"] = f"saving the run folder failed: {describe_error(exc)}"
    return row


def _empty_row(cell: dict) -> dict:
    row = dict.fromkeys(COLUMNS, math.nan)
    row.update(
        algorithm=cell["algorithm"],
        backend=cell["backend"],
        seed=cell["seed"],
        epochs=None,
        error=None,
    )
    row.update({key: label(value) for key, value in cell.get("params", {}).items()})
    return row


def describe_error(exc: BaseException) -> str:
    """One line for a failed run: a setting's message as it is, others with their type."""
    text = str(exc)
    if not isinstance(exc, ValueError) or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return re.sub(r"\s+", " ", text).strip()


# ------------------------------------------------------------------------------------ executors


class InlineExecutor(Executor):
    """An executor that runs each call at once in the caller's thread: ``submit`` returns a
    finished future.  The default of :func:`compare`, so a notebook or UI thread sees every
    result (and every callback) in its own thread, one run after another."""

    def __init__(self):
        self._shutdown = False
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        future = Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            future.set_exception(exc)
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: stop here
                raise
        else:
            future.set_result(result)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True


def _one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh processes (spawned, so no forked torch state), each with one
    torch thread, so runs on a shared machine do not oversubscribe its cores."""
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread
    )


# ------------------------------------------------------------------------------------ the grid


def grid(
    dataset: str,
    algorithms: str | Sequence[str],
    backends: str | Sequence[str] | None = None,
    seeds: int | Iterable[int] = 3,
    *,
    epochs: int | None = None,
    overrides: dict | None = None,
    max_runs: int = limits.MAX_RUNS,
    _factors: dict[str, int] | None = None,
) -> list[dict]:
    """The cells of a comparison (see :func:`compare`), every setting checked first: a
    :class:`~workbench.spec.SpecError` lists every problem before any run starts.

    The checks: names, seeds and epochs by type and range, the number of runs against
    ``max_runs`` (from the counts, before any cell is made), then every distinct run
    configuration with :func:`workbench.experiment.config_problems` (settings, the
    algorithm x backend pair, the network and the memory it needs).  A chip that cannot hold
    the network is left to the run (an error row), as the chip is only asked when built."""
    problems = []
    if not isinstance(dataset, str) or dataset not in experiment.DATASET_REFERENCES:
        choices = sorted(experiment.DATASET_REFERENCES)
        problems.append(Problem("dataset", f"{limits.show(dataset)} must be one of {choices}"))
    algorithms = _names("algorithms", algorithms, sorted(ALGORITHMS), problems)
    if backends is not None:
        backends = _names("backends", backends, available_backends(), problems)
    seeds = _seeds(seeds, problems)
    if epochs is not None:
        if (
            problem := limits.number_problem("epochs", epochs, limits.BOUNDS["epochs"])
        ) is not None:
            problems.append(problem)
    if (
        problem := limits.number_problem("max_runs", max_runs, limits.BOUNDS["max_runs"])
    ) is not None:
        problems.append(problem)
        max_runs = limits.MAX_RUNS
    overrides = copy.deepcopy(overrides) if overrides is not None else {}
    if not isinstance(overrides, dict):
        problems.append(
            Problem("overrides", f"{limits.show(overrides)} must be a dict of run settings")
        )
        overrides = {}
    for key in sorted((k for k in overrides if k in GRID_AXES), key=str):
        problems.append(Problem(f"overrides.{key}", "is an axis of the grid, not an override"))
    if problems:
        raise SpecError(problems)
    factors = {"algorithms": len(algorithms), "backends": len(backends) if backends else 1}
    factors = {**factors, **(_factors or {}), "seeds": len(seeds)}
    problem = limits.grid_size_problem("seeds", factors, max_runs)
    if problem is not None:
        raise SpecError([problem])

    cells = []
    for algorithm in algorithms:
        for backend in backends or [ALGORITHMS[algorithm].default_backend]:
            for seed in seeds:
                cells.append(
                    {
                        "dataset": dataset,
                        "algorithm": algorithm,
                        "backend": backend,
                        "seed": seed,
                        "epochs": epochs,
                        "overrides": overrides,
                    }
                )
    # Settings that a run would refuse are refused now, per distinct configuration.
    if _factors is None:
        problems = cell_problems(cells)
        if problems:
            raise SpecError(problems)
    return cells


def cell_problems(cells: list[dict], context=lambda cell: None) -> list[Problem]:
    """The problems of the run configurations of ``cells`` (each distinct one checked once;
    seeds are checked by the grid), with the pair or the swept values that cause each in its
    path when the cells differ in them (``context(cell)``: extra text for the path)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    pairs = {(c["algorithm"], c["backend"]) for c in cells}
    for cell in cells:
        try:
            config = cell_config({**cell, "seed": 0})
        except SpecError as exc:
            found = exc.problems
        else:
            key = json.dumps(config.to_dict(), sort_keys=True, default=repr)
            if key in seen:
                continue
            seen.add(key)
            found = experiment.config_problems(config)
        where = [f"{cell['algorithm']} on {cell['backend']}"] if len(pairs) > 1 else []
        if context(cell):
            where.append(context(cell))
        suffix = f" ({', '.join(where)})" if where else ""
        for p in found:
            problem = Problem(f"{p.path}{suffix}", p.message)
            if problem not in problems:
                problems.append(problem)
    return problems


def _names(field_name: str, value, choices: list[str], problems: list[Problem]) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not names:
        problems.append(Problem(field_name, f"[] must name at least one of {choices}"))
    for name in names:
        if name not in choices:
            problems.append(Problem(field_name, f"{name!r} must be one of {choices}"))
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(field_name, f"{name!r} is listed more than once"))
    return names


def _seeds(seeds, problems: list[Problem]) -> list[int]:
    """Seeds ``0 .. N-1`` for a count ``N``, or the given list; never more than
    :data:`workbench.limits.MAX_RUNS` are made (a larger count is a problem, not a list)."""
    if limits.is_int(seeds) or isinstance(seeds, (float, bool, str)):
        problem = limits.number_problem("seeds", seeds, limits.BOUNDS["seeds"])
        if problem is not None:
            problems.append(problem)
            return []
        return list(range(seeds))
    try:
        seeds = list(itertools.islice(iter(seeds), limits.MAX_RUNS + 1))
    except TypeError:
        problems.append(
            Problem("seeds", f"{limits.show(seeds)} must be a count or a list of seeds")
        )
        return []
    if len(seeds) > limits.MAX_RUNS:
        problems.append(Problem("seeds", f"lists more than {limits.MAX_RUNS} seeds"))
        return []
    seed = limits.BOUNDS["seed"]
    if not seeds or not all(seed.contains(s) for s in seeds) or len(set(seeds)) < len(seeds):
        problems.append(
            Problem(
                "seeds",
                f"{limits.show(seeds)} must be a non-empty list of distinct integers >= 0 "
                f"and <= {limits.MAX_SEED}",
            )
        )
    return seeds


def sweep_grid(
    dataset: str,
    algorithm: str,
    params: dict[str, Sequence],
    backend: str | None = None,
    seeds: int | Iterable[int] = 1,
    *,
    epochs: int | None = None,
    overrides: dict | None = None,
    max_runs: int = limits.MAX_RUNS,
) -> list[dict]:
    """The cells of a sweep (see :func:`sweep`): every combination of ``params`` x seeds.

    Checked before any run starts: each setting's path (a dotted path into the run
    settings, at most 8 levels), each list of values, the number of runs (from the counts,
    before any combination is made) and then every combination's whole run configuration
    (:func:`workbench.experiment.config_problems`), each problem naming the values that
    cause it."""
    problems = []
    if not isinstance(params, dict) or not params:
        raise SpecError([Problem("params", f"{limits.show(params)} must be a non-empty dict")])
    fields = {f for f in experiment.RunConfig.__dataclass_fields__}
    for key, values in params.items():
        parts = key.split(".") if isinstance(key, str) else [None]
        if parts[0] not in fields or parts[0] in GRID_AXES or len(parts) > 8 or "" in parts:
            allowed = sorted(fields - set(GRID_AXES))
            problems.append(
                Problem(
                    f"params.{key if isinstance(key, str) else limits.show(key)}",
                    f"is not a run setting; a dotted path into {allowed}",
                )
            )
        elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            problems.append(
                Problem(f"params.{key}", f"{limits.show(values)} must be a non-empty list")
            )
    if problems:
        raise SpecError(problems)
    factors = {f"{key} values": len(values) for key, values in params.items()}
    base = grid(
        dataset,
        algorithm,
        backend,
        seeds,
        epochs=epochs,
        overrides=overrides,
        max_runs=max_runs,
        _factors=factors,
    )  # names, seeds, epochs, overrides and the number of runs
    cells = []
    for combination in itertools.product(*params.values()):
        chosen = dict(zip(params, combination))
        merged = copy.deepcopy(base[0]["overrides"])
        for key, value in chosen.items():
            merged = experiment._merge(merged, _nested(key, value))
        for cell in base:
            cells.append({**cell, "overrides": merged, "params": chosen})
    problems = cell_problems(cells, lambda cell: f"with {cell['params']}")
    if problems:
        raise SpecError(problems)
    return cells


def _nested(key: str, value) -> dict:
    """``"training.lr", 0.01`` -> ``{"training": {"lr": 0.01}}``."""
    out = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


# ------------------------------------------------------------------------------------ compare


@dataclass(frozen=True)
class RunFinished:
    """Sent to :func:`compare`'s callbacks (in the caller's thread) as each run finishes."""

    row: dict
    done: int  # runs finished so far, this one included
    total: int


@dataclass
class Comparison:
    """The outcome of :func:`compare`: one row per run (in grid order) and the summary."""

    dataset: str
    rows: list[dict] = field(default_factory=list)
    out: Path | None = None
    params: list[str] = field(default_factory=list)  # a sweep's settings, a column each

    @property
    def keys(self) -> list[str]:
        """The columns that say which configuration a row ran (all but the seed)."""
        return ["algorithm", "backend", *self.params]

    @property
    def results(self) -> pd.DataFrame:
        """One row per run: algorithm, backend, the swept settings, then the :data:`COLUMNS`."""
        columns = [*self.keys, *(c for c in COLUMNS if c not in self.keys)]
        table = pd.DataFrame(self.rows, columns=columns)
        return table.astype({"seed": "Int64", "epochs": "Int64"})

    @property
    def failed(self) -> list[dict]:
        return [row for row in self.rows if row["error"]]

    def summary(self) -> pd.DataFrame:
        """Per configuration (algorithm, backend, swept settings): ``n_runs`` that completed,
        ``n_failed``, and the mean and standard deviation (over seeds, ``ddof=1``; nan for one
        run) of each measured column over the completed runs."""
        results = self.results
        out = []
        for key, group in results.groupby(self.keys, sort=False):
            ok = group[group["error"].isna()]
            row = {**dict(zip(self.keys, key)), "n_runs": len(ok)}
            row["n_failed"] = len(group) - len(ok)
            for column in SUMMARISED:
                values = ok[column].astype(float)
                row[f"{column}_mean"] = values.mean() if len(ok) else math.nan
                row[f"{column}_std"] = values.std() if len(ok) else math.nan
            out.append(row)
        columns = [*self.keys, "n_runs", "n_failed"]
        columns += [f"{c}_{s}" for c in SUMMARISED for s in ("mean", "std")]
        return pd.DataFrame(out, columns=columns)

    def table(self) -> str:
        """The summary as aligned text, each measure as ``mean ± std``."""
        summary = self.summary()
        names = len(self.keys)
        header = [*self.keys, "runs", *(h for h, _ in SUMMARISED.values())]
        lines = [header]
        for _, s in summary.iterrows():
            cells = [str(s[k]) for k in self.keys]
            cells.append(f"{s['n_runs']}/{s['n_runs'] + s['n_failed']}")
            for column, (_, fmt) in SUMMARISED.items():
                mean, std = s[f"{column}_mean"], s[f"{column}_std"]
                if math.isnan(mean):
                    cells.append("-")
                elif math.isnan(std):
                    cells.append(fmt.format(mean))
                else:
                    cells.append(f"{fmt.format(mean)} ± {fmt.format(std)}")
            lines.append(cells)
        widths = [max(len(line[k]) for line in lines) for k in range(len(header))]

        def aligned(cells: list[str]) -> str:  # names to the left, numbers to the right
            padded = [
                c.ljust(w) if k < names else c.rjust(w)
                for k, (c, w) in enumerate(zip(cells, widths))
            ]
            return "  ".join(padded)

        text = [aligned(line) for line in lines]
        title = f"{self.dataset}: {len(self.rows)} runs"
        if self.failed:
            title += f", {len(self.failed)} failed"
        return "\n".join([title, *text])

    def save(self, out: str | os.PathLike | None = None) -> None:
        """Write ``results.csv`` and ``summary.csv`` to ``out`` (default: :attr:`out`)."""
        out = Path(out if out is not None else self.out)
        write_csv_atomic(self.results, out / "results.csv")
        write_csv_atomic(self.summary(), out / "summary.csv")


def write_csv_atomic(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` to ``path`` through a temporary file beside it, renamed into place: a
    reader sees the old file or the new one, never a partial one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            table.to_csv(handle, index=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; results are not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compare(
    dataset: str,
    algorithms: str | Sequence[str],
    backends: str | Sequence[str] | None = None,
    seeds: int | Iterable[int] = 3,
    *,
    epochs: int | None = None,
    overrides: dict | None = None,
    out: str | os.PathLike | None = None,
    executor: Executor | None = None,
    callbacks: Iterable[Callable] = (),
    stop=None,
    max_runs: int = limits.MAX_RUNS,
) -> Comparison:
    """Train every algorithm x backend x seed on ``dataset`` and collect one row per run.

    ``backends``: names, or None for each algorithm's own default backend.  ``seeds``: a count
    ``N`` (seeds ``0 .. N-1``) or a list of seeds.  ``epochs`` overrides each reference's
    ``training.epochs``; ``overrides`` (e.g. ``{"hidden": [40], "training": {"lr": 0.01}}``)
    is merged into every run configuration.  ``out``: a folder to create (must not exist or be
    empty) for the run folders, ``results.csv`` and ``summary.csv``.  ``executor``: where runs
    execute (default :class:`InlineExecutor`; the caller owns and shuts down any other).
    ``callbacks`` get a :class:`RunFinished` per run, in this thread.  ``stop``: a
    :class:`~workbench.training.StopSignal`; once set, runs that have not started are cancelled
    (reported with the error ``cancelled``); a run in this process (``InlineExecutor``) ends
    after its current batch, a pool's running ones finish.

    Every setting is checked before the first run (:class:`~workbench.spec.SpecError`), and
    a grid of more than ``max_runs`` runs is refused.
    """
    cells = grid(
        dataset, algorithms, backends, seeds, epochs=epochs, overrides=overrides, max_runs=max_runs
    )
    return run_grid(dataset, cells, out=out, executor=executor, callbacks=callbacks, stop=stop)


def run_grid(
    dataset: str,
    cells: list[dict],
    *,
    params: Sequence[str] = (),
    out: str | os.PathLike | None = None,
    executor: Executor | None = None,
    callbacks: Iterable[Callable] = (),
    stop=None,
) -> Comparison:
    """Run ``cells`` (from :func:`grid` or :func:`sweep_grid`) on ``executor`` and collect
    their rows as they finish (see :func:`compare` for ``out``, ``callbacks`` and ``stop``);
    ``params`` name the swept settings, a column each."""
    comparison = Comparison(dataset, params=list(params))
    if out is not None:
        out = experiment.check_out_dir(out).absolute()
        (out / "runs").mkdir(parents=True, exist_ok=True)
        comparison.out = out
        for cell in cells:
            name = run_name(cell["algorithm"], cell["backend"], cell["seed"], cell.get("params"))
            cell["run_dir"] = str(out / "runs" / name)
    executor = executor if executor is not None else InlineExecutor()
    callbacks = list(callbacks)
    rows: list[dict | None] = [None] * len(cells)
    pending: dict[Future, int] = {}

    def record(index: int, row: dict) -> None:
        rows[index] = row
        comparison.rows = [r for r in rows if r is not None]
        if out is not None:
            comparison.save()
        emit(callbacks, RunFinished(row, len(comparison.rows), len(cells)))

    def finish(future: Future) -> None:
        index = pending.pop(future)
        if future.cancelled():
            record(index, {**_empty_row(cells[index]), "error": "cancelled"})
        elif future.exception() is not None:  # the executor failed, not the run
            error = describe_error(future.exception())
            record(index, {**_empty_row(cells[index]), "error": error})
        else:
            record(index, future.result())

    def stopping() -> bool:
        if stop is not None and stop.is_set():
            for future in list(pending):
                future.cancel()
            return True
        return False

    try:
        for index, cell in enumerate(cells):
            if stopping():
                break
            # a run in this process also stops mid-run; a pool's runs are cancelled if waiting
            inline = isinstance(executor, InlineExecutor)
            future = (
                executor.submit(run_cell, cell, stop) if inline else executor.submit(run_cell, cell)
            )
            pending[future] = index
            for future in [f for f in pending if f.done()]:  # an inline run is done already
                finish(future)
        for future in as_completed(list(pending)):
            finish(future)
            stopping()
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    for index, cell in enumerate(cells):  # never submitted: stopped first
        if rows[index] is None:
            record(index, {**_empty_row(cell), "error": "cancelled"})
    return comparison


def sweep(
    dataset: str,
    algorithm: str,
    params: dict[str, Sequence],
    backend: str | None = None,
    seeds: int | Iterable[int] = 1,
    *,
    epochs: int | None = None,
    overrides: dict | None = None,
    out: str | os.PathLike | None = None,
    executor: Executor | None = None,
    callbacks: Iterable[Callable] = (),
    stop=None,
    max_runs: int = limits.MAX_RUNS,
) -> Comparison:
    """Train ``algorithm`` on ``dataset`` for every combination of ``params`` x ``seeds``.

    ``params`` maps dotted run settings to the values to try, e.g.
    ``{"training.lr": [0.005, 0.01], "hidden": [[40], [120]]}``; each becomes a column of
    ``results.csv`` (a list as its JSON) and of the summary.  ``backend`` defaults to the
    algorithm's own; everything else is as in :func:`compare` (runs stream back as they finish
    on any executor, a failed run is a row with its error).
    """
    cells = sweep_grid(
        dataset,
        algorithm,
        params,
        backend,
        seeds,
        epochs=epochs,
        overrides=overrides,
        max_runs=max_runs,
    )
    return run_grid(
        dataset,
        cells,
        params=list(params),
        out=out,
        executor=executor,
        callbacks=callbacks,
        stop=stop,
    )


@contextlib.contextmanager
def dask_executor(scheduler: str | None = None, workers: int | None = None):
    """A ``concurrent.futures`` executor on a Dask cluster, closed on exit: the scheduler at
    ``scheduler`` (``tcp://host:8786``), or a ``LocalCluster`` of ``workers`` processes with
    one thread each (Dask starts its workers with ``OMP_NUM_THREADS=1``).  Needs the
    ``cluster`` extra (``dask[distributed]``)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SpecError(
            [
                Problem(
                    "scheduler" if scheduler else "workers",
                    "needs Dask: pip install 'snn-workbench[cluster]'",
                )
            ]
        ) from None
    if scheduler is not None:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(
            n_workers=workers or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


__all__ = [
    "COLUMNS",
    "Comparison",
    "InlineExecutor",
    "RunFinished",
    "cell_problems",
    "compare",
    "dask_executor",
    "grid",
    "process_pool",
    "run_cell",
    "run_grid",
    "sweep",
    "sweep_grid",
    "write_csv_atomic",
]
