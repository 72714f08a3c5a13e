"""What runs in a worker process: training for the dashboard, a comparison for the compare
view.  This module imports the core only (no Panel, no Bokeh), so the fork server that starts
the workers preloads it and every worker starts with torch and the core already imported (a
fresh interpreter would spend ~5 s importing them, the UI libraries ~3 s more).

A worker never touches a plot: it puts the core's events on a multiprocessing queue and checks
process-shared events for stop (and pause) between batches.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from dataclasses import dataclass

from workbench.compare import Comparison, compare, describe_error
from workbench.experiment import RunConfig, save_run, train
from workbench.spec import NetworkSpec
from workbench.training import RunEnd, SampleRecorded


@dataclass(frozen=True)
class Finished:
    """The worker's last event: the saved run folder (or the error that ended the run)."""

    folder: str | None
    error: str | None


def worker_context():
    """Worker processes come from a fork server that has imported the core once (a fresh
    process per run, started in a fraction of a second; never a fork of the threaded server)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def warm_up() -> None:
    """Start the fork server now (it imports torch and the core once, ~5 s), so that a
    student's first Start does not wait for it; ``workbench app`` calls this at start-up."""
    from multiprocessing import forkserver

    worker_context()
    forkserver.ensure_running()


def follow(server: int, period: float = 1.0) -> None:
    """End this worker when process ``server`` is gone.  A worker's parent is the fork server,
    which outlives a killed app server; without this, a run went on training for an hour with
    nobody to see it."""

    def watch() -> None:
        while True:
            time.sleep(period)
            try:
                os.kill(server, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, name="follow-server", daemon=True).start()


def train_in_process(
    config: dict, spec_json: str, folder: str, events, stop, resume, server: int
) -> None:
    """The worker process: train, send the events, save the run folder.  One torch thread, so
    a lab's sessions share the machine's cores fairly.  Ends with process ``server``."""
    from workbench.kernels import use_one_thread

    follow(server)
    use_one_thread()
    os.nice(10)  # the server (plots, clicks of every session) goes first on a busy machine

    def gate(event) -> None:  # send the event; hold here while paused
        if isinstance(event, RunEnd):
            return  # its history is in the run folder
        if isinstance(event, SampleRecorded):  # what the plots need, not the currents
            event = SampleRecorded(event.epoch, event.batch, event.recording[["v", "spikes"]])
        events.put(event)
        while not resume.wait(0.05):
            if stop.is_set():
                break

    try:
        run = train(RunConfig.from_dict(config), [gate], stop, NetworkSpec.from_json(spec_json))
        save_run(run, folder)
    except Exception as exc:  # shown to the user; the session stays usable
        events.put(Finished(None, f"{type(exc).__name__}: {exc}"))
        return
    events.put(Finished(folder, None))


@dataclass(frozen=True)
class ComparisonDone:
    """The comparison worker's last event: the comparison, or why it could not run."""

    comparison: Comparison | None
    error: str | None = None


def compare_in_process(arguments: dict, events, stop, server: int) -> None:
    """Run ``compare(**arguments)`` one run after another, with one torch thread; its
    ``RunFinished`` events and a last :class:`ComparisonDone` go on ``events``.  Ends with
    process ``server``."""
    from workbench.kernels import use_one_thread

    follow(server)
    use_one_thread()
    os.nice(10)  # the server (plots, clicks of every session) goes first on a busy machine
    try:
        result = compare(**arguments, stop=stop, callbacks=[events.put])
    except Exception as exc:
        events.put(ComparisonDone(None, describe_error(exc)))
    else:
        events.put(ComparisonDone(result))
