"""One server's worker slots and the fair queue in front of them (no Panel).

A class shares one machine: every student's training or comparison is a worker process, and
the cores carry only so many at once.  :class:`Scheduler` holds ``workers`` slots; a run that
finds them taken waits in a queue, and the student sees their place and an estimate of the
wait.  The queue is fair between sessions: it is ordered by how many runs each session has
going (a session with none goes first), then by arrival.  A paused run gives its slot back (a
stopped process uses no CPU) and asks for one again on resume, ahead of runs not yet started.

The app makes one scheduler per server (:func:`configure`, from ``workbench app``'s
``--max-workers``); a notebook gets :func:`default_workers` slots.  Everything here is
thread-safe: sessions call it from their own threads, and a run's end is reported from the
thread that watches its worker.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

WORKER_MB = 400  # what one training worker adds (measured ~330 MiB for Yin-Yang), rounded up
SERVER_MB = 1024  # the server, the fork server and a margin
DEFAULT_EPOCH_S = 15.0  # a first guess of one epoch's time before any run has finished


def default_workers(cpus: int | None = None, available_mb: float | None = None) -> int:
    """Runs one machine carries at once and keeps the page responsive: a core is left to the
    server (which draws every student's plots), and each run needs :data:`WORKER_MB` of the
    memory available beyond the server's.  At least one."""
    cpus = cpus or os.cpu_count() or 1
    if available_mb is None:
        available_mb = psutil.virtual_memory().available / 2**20
    by_memory = int((available_mb - SERVER_MB) // WORKER_MB)
    return max(1, min(cpus - 1, by_memory))


@dataclass(eq=False)
class Ticket:
    """One run's place with the scheduler.  ``go`` is called (outside the scheduler's lock)
    when the run gets a slot: to start its worker, or to continue a paused one."""

    session: str
    go: Callable[[], None]
    epochs: int = 1
    kind: str = ""  # runs of one kind (dataset, algorithm, backend) share a time estimate
    state: str = "queued"  # queued, running, paused, ended
    resuming: bool = False  # queued again after a pause (goes before runs not yet started)
    order: int = 0
    started_at: float | None = None
    progress: float = 0.0  # fraction of the run done, as its session last saw it
    ran_s: float = 0.0  # seconds it held a slot before its current one
    error: str = field(default="", repr=False)


class Scheduler:
    """``workers`` slots and a fair queue (see the module's docstring)."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or default_workers()
        self._lock = threading.Lock()
        self._queue: list[Ticket] = []
        self._running: list[Ticket] = []
        self._count = itertools.count()
        self._epoch_s: dict[str, float] = {}  # measured seconds per epoch, by kind

    # ------------------------------------------------------------------ what sessions call
    def submit(
        self, session: str, go: Callable[[], None], epochs: int = 1, kind: str = ""
    ) -> Ticket:
        """Queue a run of ``session``; ``go`` starts it when a slot is free (maybe at once)."""
        ticket = Ticket(session, go, max(1, epochs), kind, order=next(self._count))
        with self._lock:
            self._queue.append(ticket)
        self._dispatch()
        return ticket

    def pause(self, ticket: Ticket) -> None:
        """``ticket`` is paused: a running one's slot goes to the next run, a queued one leaves
        the queue (until :meth:`resume`)."""
        with self._lock:
            if ticket.state == "queued":
                self._queue.remove(ticket)
                ticket.state = "paused"
                return
            if ticket.state != "running":
                return
            self._running.remove(ticket)
            ticket.ran_s += time.monotonic() - ticket.started_at
            ticket.state = "paused"
        self._dispatch()

    def resume(self, ticket: Ticket) -> None:
        """Ask a slot for a paused run again (ahead of runs not yet started, if it had one);
        its ``go`` is called when it gets one."""
        with self._lock:
            if ticket.state != "paused":
                return
            # a run that had a slot goes first; one paused in the queue takes its turn again
            ticket.state, ticket.resuming = "queued", ticket.started_at is not None
            if not ticket.resuming:
                ticket.order = next(self._count)  # behind those who waited meanwhile
            self._queue.append(ticket)
        self._dispatch()

    def end(self, ticket: Ticket) -> None:
        """``ticket``'s run ended (finished, failed, stopped, or cancelled while queued)."""
        with self._lock:
            if ticket in self._queue:
                self._queue.remove(ticket)
            if ticket in self._running:
                self._running.remove(ticket)
                ran = ticket.ran_s + time.monotonic() - ticket.started_at
                if ticket.progress > 0.05:  # long enough to say what an epoch takes
                    epoch_s = ran / (ticket.progress * ticket.epochs)
                    old = self._epoch_s.get(ticket.kind)
                    self._epoch_s[ticket.kind] = epoch_s if old is None else 0.5 * (old + epoch_s)
            ticket.state = "ended"
        self._dispatch()

    def place(self, ticket: Ticket) -> int | None:
        """``ticket``'s place in the queue (1 = next), or ``None`` when it is not queued."""
        with self._lock:
            order = self._ordered()
            return order.index(ticket) + 1 if ticket in order else None

    def wait_s(self, ticket: Ticket) -> float | None:
        """About how long until ``ticket`` gets a slot (``None`` when it is not queued): the
        runs ahead of it and the rest of the running ones, shared over the slots."""
        with self._lock:
            order = self._ordered()
            if ticket not in order:
                return None
            ahead = order[: order.index(ticket)]
            remaining = sorted(self._remaining_s(t) for t in self._running)
            work = sum(remaining) + sum(self._remaining_s(t) for t in ahead)
            if len(remaining) < self.workers:  # a slot is free (it is being given now)
                return 0.0
            return work / self.workers

    def status(self) -> dict:
        """The slots, and how many runs hold one and wait for one."""
        with self._lock:
            return {
                "workers": self.workers,
                "running": len(self._running),
                "queued": len(self._queue),
            }

    # ------------------------------------------------------------------ inside
    def _ordered(self) -> list[Ticket]:
        """The queue in the order it is served (call with the lock held): resumed runs first,
        then sessions with fewer runs going, then arrival."""
        going: dict[str, int] = {}
        for t in self._running:
            going[t.session] = going.get(t.session, 0) + 1
        return sorted(self._queue, key=lambda t: (not t.resuming, going.get(t.session, 0), t.order))

    def _remaining_s(self, ticket: Ticket) -> float:
        """A run's expected seconds to go: from its own pace once it has made progress, else
        from the measured time per epoch of its kind (or of any kind, or a first guess)."""
        ran = ticket.ran_s
        if ticket.state == "running" and ticket.started_at is not None:
            ran += time.monotonic() - ticket.started_at
        if ticket.progress > 0.05:
            return ran * (1 - ticket.progress) / ticket.progress
        epoch_s = self._epoch_s.get(ticket.kind)
        if epoch_s is None and self._epoch_s:
            epoch_s = sum(self._epoch_s.values()) / len(self._epoch_s)
        total = (epoch_s or DEFAULT_EPOCH_S) * ticket.epochs
        return max(total - ran, 0.0)

    def _dispatch(self) -> None:
        """Give free slots to the queue's first runs, and call their ``go`` outside the lock."""
        starting = []
        with self._lock:
            order = self._ordered()
            while order and len(self._running) < self.workers:
                ticket = order.pop(0)
                self._queue.remove(ticket)
                ticket.state, ticket.resuming = "running", False
                ticket.started_at = time.monotonic()
                self._running.append(ticket)
                starting.append(ticket)
        for ticket in starting:
            try:
                ticket.go()
            except Exception as exc:  # e.g. no process could be started: the run ends
                ticket.error = f"{type(exc).__name__}: {exc}"
                self.end(ticket)


_scheduler: Scheduler | None = None
_scheduler_lock = threading.Lock()


def configure(workers: int | None = None) -> Scheduler:
    """Make this process's scheduler (``workbench app`` calls it once, before serving)."""
    global _scheduler
    with _scheduler_lock:
        _scheduler = Scheduler(workers)
        return _scheduler


def scheduler() -> Scheduler:
    """This process's scheduler (made with :func:`default_workers` slots on first use)."""
    global _scheduler
    with _scheduler_lock:
        if _scheduler is None:
            _scheduler = Scheduler()
        return _scheduler


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def about(seconds: float) -> str:
    """``about 40 s``, ``about 3 min``: a wait as a student reads it."""
    if seconds < 60:
        return f"about {max(5, int(round(seconds / 5.0)) * 5)} s"
    return f"about {int(round(seconds / 60.0))} min"
