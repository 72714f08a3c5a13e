"""Kill -9 during training, comparison and saving: is every run absent or complete, and does
every resume end where an uninterrupted run ends?  (Issue 18, "What it must show".)

Three scenarios, ``--trials`` times each, every kill at a random moment drawn from ``--seed``:

- **training**: ``workbench train`` (digits, 64-16-10, 10 steps, 8 epochs, a checkpoint after
  every epoch), killed at a moment drawn uniformly from the span an uninterrupted run takes
  from its first file (the checkpoint folder, written just before the first epoch) until its
  run folder is in place and its checkpoint deleted (plus a tenth of the final write's time):
  in an epoch, while saving a checkpoint, while writing the run folder, or while deleting the
  checkpoint after it;
- **comparison**: ``workbench compare`` (digits, surrogate, 3 seeds, 1 epoch each, ``--out``),
  killed at a moment drawn from the span from its output folder's creation to its exit;
- **saving**: ``workbench train`` as above, announcing on stdout when it starts writing the run
  folder (``experiment.save_run`` wrapped to print first), killed at a moment drawn from the
  span an uninterrupted run takes from that announcement until the run folder is in place and
  the checkpoint deleted (plus a tenth): in the final write (recording, files, manifest,
  rename, checkpoint deletion).

Each command runs as a subprocess with one torch thread (as the references do: floating-point
sums depend on how they are split), in a store of its own.  After the kill:

- every visible folder under the store is a container of run folders, or a run folder that is
  complete and verifies (``read_manifest(verify=True)``: every file present with its size and
  SHA-256); anything else, a half-written visible folder included, is a failure (hidden
  temporary folders, ``.NAME.*.part``, may be left);
- ``list_runs`` of the store does not raise;
- training and saving: a run that is absent is finished with ``workbench resume`` when its
  checkpoint exists (or trained again with the same ``workbench train`` when the kill came
  before the first checkpoint), and its weights must equal, bit for bit, those of the
  uninterrupted reference run; a complete run's weights must equal them too;
- comparison: every complete run folder's weights must equal the same run's in the
  uninterrupted comparison, and ``results.csv``, where it exists, must parse and list only runs
  whose folders are complete.

Prints a table: scenario / trials / killed (the kill came before the command ended) / runs
checked / absent / complete+verified / resumed identical / restarted identical / redrawn (kill
moments that fell after the command had ended, because it ran faster than the reference: the
trial is started again with a new moment, up to five times) / failures.  Exit code 1 when any
trial failed.

Run: ``.venv/bin/python benchmarks/kill_trials.py`` (``--trials N``, ``--seed S``, ``--keep``
to keep the stores, ``--verbose`` for one line per trial).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file

from workbench.spec import SpecError
from workbench.store import Checkpoint, checkpoint_dir, list_runs, read_manifest

WORKBENCH = [sys.executable, "-m", "workbench.cli"]
TRAIN = [
    "train",
    "--dataset",
    "digits",
    "--hidden",
    "16",
    "--n-steps",
    "10",
    "--epochs",
    "8",
    "--seed",
    "1",
    "--checkpoint-every",
    "1",
    "--quiet",
]
COMPARE = [
    "compare",
    "--dataset",
    "digits",
    "--algorithms",
    "surrogate",
    "--seeds",
    "3",
    "--epochs",
    "1",
]
COMPARE_RUNS = [f"surrogate-float-seed{seed}" for seed in range(3)]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TIMEOUT = 900.0  # seconds any one command may take before the trial counts as failed

# `workbench train`, saying on stdout when it starts writing the run folder
ANNOUNCED_TRAIN = """
import sys
from workbench import cli, experiment

save_run = experiment.save_run

def announced(*args, **kwargs):
    print("saving", flush=True)
    return save_run(*args, **kwargs)

experiment.save_run = announced
sys.exit(cli.main(sys.argv[1:]))
"""
TRAIN_COMMAND = [sys.executable, "-c", ANNOUNCED_TRAIN, *TRAIN]


# ------------------------------------------------------------------------------ running


@dataclass
class Timeline:
    """When things happened in one run of a command (seconds after it started)."""

    anchor: float | None = None  # the scenario's starting point (see the module docstring)
    written: float | None = None  # when the run folder was in place and the checkpoint gone
    end: float | None = None
    returncode: int | None = None
    killed: bool = False  # SIGKILL arrived while the command was still running
    lines: list = field(default_factory=list)  # (seconds, text) of each line on stdout


def _start(command: list[str]):
    """The process, its stdout lines so far (filled by a thread), the thread, and when it
    started."""
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=ENV,
        text=True,
    )
    lines: list[tuple[float, str]] = []

    def read():
        for line in proc.stdout:
            lines.append((time.monotonic() - started, line.strip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, lines, reader, started


def run_command(command, anchor, kill_after: float | None = None, written=None) -> Timeline:
    """Run ``command``; ``anchor(lines)`` says whether its starting point was reached (``lines``:
    its stdout so far), ``written(lines)`` whether its output is complete.  With
    ``kill_after``, SIGKILL it that many seconds after the anchor."""
    proc, lines, reader, started = _start(command)
    timeline = Timeline(lines=lines)
    deadline = started + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        now = time.monotonic() - started
        if timeline.anchor is None and anchor(lines):
            timeline.anchor = now
        if written is not None and timeline.written is None and written(lines):
            timeline.written = now
        if (
            kill_after is not None
            and timeline.anchor is not None
            and now >= timeline.anchor + kill_after
        ):
            proc.send_signal(signal.SIGKILL)  # nothing, if it has just ended
            break
        time.sleep(0.002)
    if proc.poll() is None and kill_after is None:  # past the timeout
        proc.kill()
    proc.wait()
    timeline.end = time.monotonic() - started
    reader.join(timeout=10)
    timeline.returncode = proc.returncode
    timeline.killed = kill_after is not None and proc.returncode == -signal.SIGKILL
    return timeline


def exists(path: Path):
    return lambda lines: path.exists()


def finished(run: Path):
    return lambda lines: run.exists() and not checkpoint_dir(run).exists()


def says(word: str):
    return lambda lines: any(text == word for _, text in lines)


# ------------------------------------------------------------------------------ checking


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "weights.safetensors")


def identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a
    )


def _visible_folders(store: Path) -> list[Path]:
    return sorted(
        p
        for p in store.rglob("*")
        if p.is_dir() and not any(part.startswith(".") for part in p.relative_to(store).parts)
    )


@dataclass
class Outcome:
    scenario: str
    trial: int
    delay: float
    killed: bool
    runs: int = 0
    absent: int = 0
    complete: int = 0
    resumed: int = 0  # resumed from a checkpoint, weights identical
    resumed_tried: int = 0
    restarted: int = 0  # trained again (killed before the first checkpoint), identical
    restarted_tried: int = 0
    redrawn: int = 0  # kill moments that came after the command had ended (drawn again)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _check_store(store: Path, containers: set[Path], outcome: Outcome) -> list[Path]:
    """The complete run folders of ``store``; failures for any other visible folder."""
    complete = []
    for folder in _visible_folders(store):
        if folder in containers:
            continue
        try:
            read_manifest(folder, verify=True)
            complete.append(folder)
        except SpecError as exc:
            outcome.failures.append(f"visible folder that does not verify: {exc}")
    try:
        list_runs(store)
    except Exception as exc:  # noqa: BLE001 - any exception here is what is being counted
        outcome.failures.append(f"list_runs raised {type(exc).__name__}: {exc}")
    return complete


def _finish_training(store: Path, reference: dict, outcome: Outcome) -> None:
    """After a kill of `workbench train`: the run absent or complete; an absent one resumed
    (or trained again) to the reference weights."""
    run = store / "run"
    complete = _check_store(store, set(), outcome)
    outcome.runs = 1
    if run in complete:
        outcome.complete += 1
        if not identical(_weights(run), reference):
            outcome.failures.append("complete run with weights other than the reference")
        if Checkpoint(checkpoint_dir(run)).exists():
            outcome.notes.append("checkpoint left beside the complete run")
        return
    if run.exists():
        return  # counted as a failure above
    outcome.absent += 1
    if Checkpoint(checkpoint_dir(run)).exists():
        outcome.resumed_tried += 1
        command = [*WORKBENCH, "resume", str(run), "--quiet"]
    else:
        outcome.restarted_tried += 1
        command = [*WORKBENCH, *TRAIN, "--out", str(run)]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        outcome.failures.append(f"{command[3]} exited {done.returncode}: {done.stderr.strip()}")
        return
    try:
        read_manifest(run, verify=True)
    except SpecError as exc:
        outcome.failures.append(f"the finished run does not verify: {exc}")
        return
    if not identical(_weights(run), reference):
        outcome.failures.append(f"{command[3]} ended with weights other than the reference")
    elif command[3] == "resume":
        outcome.resumed += 1
    else:
        outcome.restarted += 1
    if checkpoint_dir(run).exists():
        outcome.failures.append("the checkpoint was not deleted after the run was written")


def _finish_comparison(store: Path, reference: dict[str, dict], outcome: Outcome) -> None:
    out = store / "cmp"
    complete = _check_store(store, {out, out / "runs"}, outcome)
    outcome.runs = len(COMPARE_RUNS)
    names = set()
    for run in complete:
        if run.parent != out / "runs" or run.name not in reference:
            outcome.failures.append(f"unexpected run folder {run}")
            continue
        names.add(run.name)
        if not identical(_weights(run), reference[run.name]):
            outcome.failures.append(f"{run.name}: weights other than the uninterrupted run's")
    outcome.complete += len(names)
    outcome.absent += len(COMPARE_RUNS) - len(names)
    results = out / "results.csv"
    if results.exists():
        try:
            table = pd.read_csv(results)
            listed = {f"{r.algorithm}-{r.backend}-seed{r.seed}" for r in table.itertuples()}
        except Exception as exc:  # noqa: BLE001
            outcome.failures.append(f"results.csv does not parse: {exc}")
            return
        if not listed <= names:
            outcome.failures.append(f"results.csv lists runs without folders: {listed - names}")


# ------------------------------------------------------------------------------ scenarios


@dataclass
class References:
    weights: dict  # of the uninterrupted training
    comparison: dict  # run name -> weights of the uninterrupted comparison
    training_span: float  # from the checkpoint folder's creation to the run written (+10 %)
    comparison_span: float  # from the output folder's creation to the exit
    saving_span: float  # from "saving" to the run written (+10 %)


def references(root: Path, jobs: int = 1) -> References:
    """Uninterrupted runs of the commands (both at once when ``jobs`` > 1, as the trials
    then run): their weights, and the spans kills are drawn from."""
    run = root / "reference" / "run"
    cmp = root / "reference" / "cmp"
    with ThreadPoolExecutor(max_workers=2 if jobs > 1 else 1) as pool:
        training = pool.submit(
            run_command,
            [*TRAIN_COMMAND, "--out", str(run)],
            exists(checkpoint_dir(run)),
            written=finished(run),
        )
        comparison = pool.submit(
            run_command, [*WORKBENCH, *COMPARE, "--out", str(cmp)], exists(cmp)
        )
        trained, compared = training.result(), comparison.result()
    said = [t for t, text in trained.lines if text == "saving"]
    if trained.returncode != 0 or None in (trained.anchor, trained.written) or not said:
        raise RuntimeError(f"the reference training exited {trained.returncode}")
    # the spans end a little after the run folder is in place and the checkpoint deleted (what
    # follows, the summary line and the interpreter's exit, writes nothing)
    write = trained.written - said[0]
    if compared.returncode != 0 or compared.anchor is None:
        raise RuntimeError(f"the reference comparison exited {compared.returncode}")
    return References(
        weights=_weights(run),
        comparison={name: _weights(cmp / "runs" / name) for name in COMPARE_RUNS},
        training_span=trained.written - trained.anchor + 0.1 * write,
        comparison_span=compared.end - compared.anchor,
        saving_span=1.1 * write,
    )


ATTEMPTS = 5  # kill moments drawn per trial until one comes before the command ends


def trial(scenario: str, k: int, seed: int, refs: References, root: Path) -> Outcome:
    """One kill at a moment drawn from the scenario's span, and the checks after.  A command
    that ended before its kill (it ran faster than the reference did) is started again with a
    new moment, up to :data:`ATTEMPTS` times (``redrawn`` counts them)."""
    rng = random.Random(f"{seed}:{scenario}:{k}")  # the same moments whatever runs beside it
    store = root / f"{scenario}-{k}"
    redrawn = 0
    while True:
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        fraction = rng.random()
        if scenario == "training":
            delay = fraction * refs.training_span
            run = store / "run"
            command = [*TRAIN_COMMAND, "--out", str(run)]
            timeline = run_command(command, exists(checkpoint_dir(run)), delay)
        elif scenario == "comparison":
            delay = fraction * refs.comparison_span
            out = store / "cmp"
            command = [*WORKBENCH, *COMPARE, "--out", str(out)]
            timeline = run_command(command, exists(out), delay)
        else:
            delay = fraction * refs.saving_span
            command = [*TRAIN_COMMAND, "--out", str(store / "run")]
            timeline = run_command(command, says("saving"), delay)
        if timeline.killed or timeline.returncode != 0 or redrawn == ATTEMPTS - 1:
            break
        redrawn += 1
    outcome = Outcome(scenario, k, delay, timeline.killed, redrawn=redrawn)
    if not timeline.killed and timeline.returncode != 0:
        outcome.failures.append(f"exited {timeline.returncode} before the kill")
    if scenario == "comparison":
        _finish_comparison(store, refs.comparison, outcome)
    else:
        _finish_training(store, refs.weights, outcome)
    return outcome


SCENARIOS = ("training", "comparison", "saving")


def run_trials(
    trials: int,
    seed: int,
    root: Path,
    verbose: bool = False,
    scenarios=SCENARIOS,
    jobs: int = 1,
) -> list[Outcome]:
    """``trials`` kills per scenario; ``jobs`` trials at a time (each its own processes and
    store; the kill moments are fractions of the spans, drawn from ``seed``, the scenario and
    the trial's number, so the same seed kills at the same points whatever ``jobs`` is)."""
    refs = references(root, jobs)
    if verbose:
        print(
            f"spans (s): training {refs.training_span:.1f}, comparison "
            f"{refs.comparison_span:.1f}, saving {refs.saving_span:.2f}",
            flush=True,
        )
    planned = [(scenario, k, seed) for scenario in scenarios for k in range(trials)]

    def one(plan):
        outcome = trial(*plan, refs, root)
        if verbose:
            print(
                f"{outcome.scenario:10s} {outcome.trial:2d}  kill at +{outcome.delay:6.2f} s  "
                f"killed={outcome.killed!s:5s}  absent={outcome.absent} "
                f"complete={outcome.complete} resumed={outcome.resumed}/"
                f"{outcome.resumed_tried} restarted={outcome.restarted}/"
                f"{outcome.restarted_tried} redrawn={outcome.redrawn}  "
                f"{'; '.join(outcome.failures + outcome.notes)}",
                flush=True,
            )
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, planned))


def table(outcomes: list[Outcome]) -> pd.DataFrame:
    rows = []
    for scenario in dict.fromkeys(o.scenario for o in outcomes):
        mine = [o for o in outcomes if o.scenario == scenario]
        resumable = scenario != "comparison"

        def tally(done, tried, resumable=resumable):
            return f"{sum(done)}/{sum(tried)}" if resumable else "-"

        rows.append(
            {
                "scenario": scenario,
                "trials": len(mine),
                "killed": sum(o.killed for o in mine),
                "runs checked": sum(o.runs for o in mine),
                "absent": sum(o.absent for o in mine),
                "complete+verified": sum(o.complete for o in mine),
                "resumed identical": tally(
                    [o.resumed for o in mine], [o.resumed_tried for o in mine]
                ),
                "restarted identical": tally(
                    [o.restarted for o in mine], [o.restarted_tried for o in mine]
                ),
                "redrawn": sum(o.redrawn for o in mine),
                "failures": sum(bool(o.failures) for o in mine),
            }
        )
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="per scenario (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="of the kill moments (default 0)")
    parser.add_argument("--keep", action="store_true", help="keep the stores (printed)")
    parser.add_argument("--verbose", action="store_true", help="one line per trial")
    parser.add_argument("--jobs", type=int, default=1, help="trials at a time (default 1)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="kill-trials-"))
    started = time.monotonic()
    try:
        outcomes = run_trials(args.trials, args.seed, root, args.verbose, jobs=args.jobs)
    finally:
        if args.keep:
            print(f"stores kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    frame = table(outcomes)
    print(markdown(frame))
    print(f"\n{time.monotonic() - started:.0f} s; seed {args.seed}, {args.jobs} job(s)")
    for outcome in outcomes:
        for failure in outcome.failures:
            print(f"FAILED {outcome.scenario} {outcome.trial}: {failure}")
    return 1 if frame["failures"].sum() else 0


if __name__ == "__main__":
    sys.exit(main())
