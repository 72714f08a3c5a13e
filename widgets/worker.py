"""What runs in a worker process: training for the dashboard, a comparison for the compare
view.  This module imports the core only (no Panel, no Bokeh), so the fork server that starts
the workers preloads it and every worker starts with torch and the core already imported (a
fresh interpreter would spend ~5 s importing them, the UI libraries ~3 s more).

A worker never touches a plot: it puts the core's events on a multiprocessing queue.  On the
server's side a :class:`Job` is one worker as its session sees it: queued with the
:mod:`~workbench.widgets.scheduler` until a slot is free, then running, paused, stopping or
ended.  Pause and Stop act at once whatever a batch's length: Pause stops the process
(``SIGSTOP``: it computes nothing and gives its slot to the next run, ``SIGCONT`` goes on
exactly where it was), Stop sets the stop event and sends ``SIGUSR1``, whose handler aborts
the batch going on (:func:`workbench.training.interrupt`); the run then ends as stopped with
the weights of its last whole batch.  A thread per job reads the worker's queue, so a message
half written when the worker was paused never blocks the server.

Every run folder lives under :func:`runs_root`, one folder per server process; the next
server to start removes the folders (and any worker left paused) of servers that are gone.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from workbench.compare import Comparison, compare, describe_error
from workbench.experiment import RunConfig, save_run, train
from workbench.planner import check_plan
from workbench.spec import NetworkSpec
from workbench.training import RunEnd, SampleRecorded, interrupt

from .scheduler import about, ordinal, scheduler

ROOT = "workbench-app"  # under the temporary directory: one folder per server process


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


@dataclass(frozen=True)
class Planned:
    """The run came near the memory limit, so it was planned before it trained: the plan's
    one-line description (predicted peak memory against the limit, time per epoch)."""

    text: str


@dataclass(frozen=True)
class Ready:
    """A worker's first event: from now on ``SIGUSR1`` aborts its batch (before, the
    signal's default action would end the process, so the job does not send it)."""


def _become_worker(server: int, events) -> None:
    """What every worker does first: end with the server, one torch thread (a lab's runs
    share the cores fairly), a lower priority than the server (the page goes first on a busy
    machine), and Stop's ``SIGUSR1`` aborting the batch going on."""
    from workbench.kernels import use_one_thread

    signal.signal(signal.SIGUSR1, lambda *_: interrupt())
    events.put(Ready())
    follow(server)
    use_one_thread()
    os.nice(10)


def train_in_process(config: dict, spec_json: str, folder: str, events, stop, server: int) -> None:
    """The worker process: train, send the events, save the run folder."""
    _become_worker(server, events)

    def send(event) -> None:
        if isinstance(event, RunEnd):
            return  # its history is in the run folder
        if isinstance(event, SampleRecorded):  # what the plots need, not the currents
            event = SampleRecorded(event.epoch, event.batch, event.recording[["v", "spikes"]])
        events.put(event)

    try:
        config, spec = RunConfig.from_dict(config), NetworkSpec.from_json(spec_json)
        plan = check_plan(config, spec)  # a run near the memory limit: refused if it won't fit
        if plan is not None:
            events.put(Planned(plan.describe()))
        run = train(config, [send], stop, spec)
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
    """Run ``compare(**arguments)`` one run after another; its ``RunFinished`` events and a
    last :class:`ComparisonDone` go on ``events``."""
    _become_worker(server, events)
    try:
        result = compare(**arguments, stop=stop, callbacks=[events.put])
    except Exception as exc:
        events.put(ComparisonDone(None, describe_error(exc)))
    else:
        events.put(ComparisonDone(result))


# ---------------------------------------------------------------------------------- jobs


class Job:
    """One worker process as its session sees it (no Panel).

    ``target(*args, events, stop, server_pid)`` runs in the worker once the scheduler gives
    the job a slot.  What the worker sends arrives, in order, on :attr:`events` (a local
    queue, filled by a reader thread); the last event is the worker's own last word (an
    instance of one of ``last``) or, if it died without one, ``died(exit_code)``.
    ``state``: queued, running, paused, stopping, ended.
    """

    def __init__(
        self,
        target: Callable,
        args: tuple,
        *,
        name: str,
        session: str,
        last: tuple[type, ...],
        died: Callable[[int | None], object],
        epochs: int = 1,
        kind: str = "",
    ):
        ctx = worker_context()
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.state = "queued"
        self.started_at: float | None = None  # when the worker started (after the queue)
        self._ctx, self._target, self._args, self._name = ctx, target, args, name
        self._last, self._died = last, died
        self._queue, self._stop = ctx.Queue(), ctx.Event()
        self._process = None
        self._ready = False  # the worker has its SIGUSR1 handler (see Ready)
        self._lock = threading.Lock()
        self.ticket = scheduler().submit(session, self._go, epochs, kind)

    # ------------------------------------------------------------------ controls
    def pause(self) -> bool:
        """Stop the worker where it is (it keeps its memory, not its slot), or hold a queued
        job out of the queue; False if the job is neither running nor queued."""
        with self._lock:
            if self.state not in ("running", "queued"):
                return False
            if self.state == "running":
                try:
                    os.kill(self._process.pid, signal.SIGSTOP)
                except ProcessLookupError:  # it has just ended
                    return False
            self.state = "paused"
        scheduler().pause(self.ticket)
        return True

    def resume(self) -> bool:
        """Ask for a slot again; the worker goes on when it gets one (at once if one is
        free, else ahead of runs not yet started).  False if the job is not paused."""
        with self._lock:
            if self.state != "paused":
                return False
            self.state = "queued"
        scheduler().resume(self.ticket)
        return True

    def stop(self) -> None:
        """End the job now: a queued job never starts; a running or paused one aborts its
        batch and ends as stopped (its worker saves what it has)."""
        with self._lock:
            if self.state in ("stopping", "ended"):
                return
            if self._process is None:  # never started
                self.state = "ended"
                self.events.put(self._died(None))
            else:
                self.state = "stopping"
                # continued first: a worker paused inside the stop event's lock would hold
                # set() (and the server) until it runs again
                self._signal(signal.SIGCONT)
                self._stop.set()
                if self._ready:  # else the stop event ends it before its first batch
                    self._signal(signal.SIGUSR1)
        if self._process is None:
            scheduler().end(self.ticket)

    def terminate(self, timeout: float = 2.0) -> None:
        """End the worker at once (its session closed)."""
        self.stop()
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            self._signal(signal.SIGCONT)
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the worker has ended; whether it has."""
        if self._process is None:
            return self.state == "ended"
        self._process.join(timeout)
        return not self._process.is_alive()

    @property
    def active(self) -> bool:
        return self.state != "ended"

    @property
    def pid(self) -> int | None:
        """The worker's process id (None until the job has a slot)."""
        return self._process.pid if self._process is not None else None

    def place(self) -> str:
        """``3rd, about 1 min`` while queued, else ``""``."""
        place = scheduler().place(self.ticket)
        if place is None:
            return ""
        wait = scheduler().wait_s(self.ticket) or 0.0
        return f"{ordinal(place)}, {about(wait)}"

    def progress(self, fraction: float) -> None:
        """The session's view of how far the run is (for the queue's estimates)."""
        self.ticket.progress = min(max(fraction, 0.0), 1.0)

    # ------------------------------------------------------------------ inside
    def _signal(self, sig) -> None:
        if self._process is not None and self._process.pid is not None:
            try:
                os.kill(self._process.pid, sig)
            except ProcessLookupError:
                pass

    def _go(self) -> None:
        """The scheduler gave this job a slot: start the worker, or let it go on."""
        with self._lock:
            if self.state == "ended":
                return
            if self._process is not None:  # resumed after a pause
                if self.state == "queued":
                    self.state = "running"
                    self._signal(signal.SIGCONT)
                return
            self._process = self._ctx.Process(
                target=self._target,
                args=(*self._args, self._queue, self._stop, os.getpid()),
                name=self._name,
                daemon=True,
            )
            self._process.start()
            self.state, self.started_at = "running", time.perf_counter()
            _record_worker(self._process.pid)
        threading.Thread(target=self._read, name=f"{self._name}-reader", daemon=True).start()

    def _read(self) -> None:
        """Move the worker's events to :attr:`events` until its last one (or its death)."""
        process, last = self._process, None
        while last is None:
            try:
                event = self._queue.get(timeout=0.2)
            except queue.Empty:
                if not process.is_alive():
                    try:
                        event = self._queue.get(timeout=0.5)  # sent just before it ended
                    except queue.Empty:
                        process.join(1)
                        last = self._died(process.exitcode)
                        self.events.put(last)
                        break
                else:
                    continue
            if isinstance(event, Ready):
                with self._lock:
                    self._ready = True
                continue
            self.events.put(event)
            if isinstance(event, self._last):
                last = event
        process.join(10)
        _forget_worker(process.pid)
        with self._lock:
            self.state = "ended"
        scheduler().end(self.ticket)


# ---------------------------------------------------------------------------------- folders


def runs_root(pid: int | None = None) -> Path:
    """Where this server's sessions keep their run folders (made on first use)."""
    root = Path(tempfile.gettempdir()) / ROOT / str(pid or os.getpid())
    (root / "workers").mkdir(parents=True, exist_ok=True)
    return root


def session_folder(prefix: str = "session-") -> Path:
    """A fresh folder for one session's runs, under :func:`runs_root`."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=runs_root()))


def zip_folder(folder: Path, name: str) -> io.BytesIO:
    """``folder`` as a zip file (its files under ``name/``), for a download button: what a
    student keeps of a run lives on their own machine."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(Path(folder).rglob("*")):
            zf.write(path, Path(name) / path.relative_to(folder))
    buffer.seek(0)
    return buffer


def _record_worker(pid: int) -> None:
    """Note a worker, so that the next server can end it if this one dies meanwhile."""
    try:
        created = psutil.Process(pid).create_time()
        (runs_root() / "workers" / str(pid)).write_text(repr(created))
    except (psutil.Error, OSError):
        pass


def _forget_worker(pid: int) -> None:
    (runs_root() / "workers" / str(pid)).unlink(missing_ok=True)


def sweep() -> list[Path]:
    """Remove what servers that are gone left behind: their sessions' run folders (a student
    who wanted a run downloaded it) and their workers (a paused worker cannot see its server
    go).  Returns the folders removed.  ``workbench app`` calls it at start-up."""
    removed = []
    base = Path(tempfile.gettempdir()) / ROOT
    for folder in sorted(base.glob("*")) if base.is_dir() else []:
        if not folder.name.isdigit() or int(folder.name) == os.getpid():
            continue
        if psutil.pid_exists(int(folder.name)) and _is_server(int(folder.name)):
            continue
        for record in (folder / "workers").glob("*"):
            try:
                worker = psutil.Process(int(record.name))
                if repr(worker.create_time()) == record.read_text():
                    worker.kill()
            except (psutil.Error, OSError, ValueError):
                pass
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _is_server(pid: int) -> bool:
    """Whether process ``pid`` is (still) a workbench app or notebook kernel, not a new
    process that got a dead server's number."""
    try:
        return "python" in " ".join(psutil.Process(pid).cmdline()).lower()
    except psutil.Error:
        return False
