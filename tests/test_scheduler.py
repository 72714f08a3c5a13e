"""The server's worker slots and fair queue (no processes, no Panel): who goes next, what a
paused run gives back, what a student is told, and the defaults derived from the machine."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from workbench.widgets.scheduler import Scheduler, about, default_workers, ordinal
from workbench.widgets.worker import ROOT, sweep


def submit(scheduler, session, started, epochs=1, kind="k"):
    name = f"{session}#{sum(1 for s in started if s.startswith(session))}"
    return scheduler.submit(session, lambda: started.append(name), epochs, kind)


def test_runs_beyond_the_slots_wait_and_start_in_turn():
    started = []
    s = Scheduler(workers=2)
    a, b, c = (submit(s, name, started) for name in ("a", "b", "c"))
    assert started == ["a#0", "b#0"] and c.state == "queued"
    assert (s.place(a), s.place(c)) == (None, 1)
    s.end(a)
    assert started == ["a#0", "b#0", "c#0"] and c.state == "running"
    assert s.status() == {"workers": 2, "running": 2, "queued": 0}


def test_the_queue_is_fair_between_sessions():
    # Session a has a run going and queues another; b and c arrive later with none going:
    # they go first.  Among equals, arrival decides.
    started = []
    s = Scheduler(workers=1)
    submit(s, "a", started)
    a2 = submit(s, "a", started)
    b = submit(s, "b", started)
    c = submit(s, "c", started)
    assert [s.place(t) for t in (b, c, a2)] == [1, 2, 3]


def test_a_paused_run_gives_its_slot_and_resumes_ahead_of_new_runs():
    started = []
    s = Scheduler(workers=1)
    a = submit(s, "a", started)
    b = submit(s, "b", started)
    c = submit(s, "c", started)
    s.pause(a)
    assert started == ["a#0", "b#0"] and a.state == "paused"
    s.resume(a)
    assert a.state == "queued" and s.place(a) == 1 and s.place(c) == 2
    s.end(b)
    assert started == ["a#0", "b#0", "a#0"] and a.state == "running"  # go() again: continue


def test_a_run_paused_in_the_queue_leaves_it_and_queues_again_behind_the_others():
    started = []
    s = Scheduler(workers=1)
    submit(s, "a", started)
    b = submit(s, "b", started)
    c = submit(s, "c", started)
    s.pause(b)
    assert b.state == "paused" and s.place(b) is None and s.place(c) == 1
    s.resume(b)  # no jumping the queue by pausing: it had no slot yet
    assert s.place(c) == 1 and s.place(b) == 2


def test_a_run_cancelled_in_the_queue_never_starts():
    started = []
    s = Scheduler(workers=1)
    a = submit(s, "a", started)
    b = submit(s, "b", started)
    s.end(b)
    s.end(a)
    assert started == ["a#0"] and b.state == "ended" and s.status()["running"] == 0


def test_the_wait_is_estimated_from_the_runs_ahead():
    s = Scheduler(workers=1)
    a = s.submit("a", lambda: None, epochs=4, kind="k")
    b = s.submit("b", lambda: None, epochs=2, kind="k")
    c = s.submit("c", lambda: None, epochs=2, kind="k")
    # Nothing measured yet: a first guess per epoch; a's 4 epochs and b's 2 are ahead of c.
    assert s.wait_s(c) == pytest.approx(s.wait_s(b) + 2 * s.wait_s(b) / 4, rel=0.05)
    # a reports its pace: half done after about 0 s -> nearly done; b's guess remains.
    a.progress = 0.5
    assert s.wait_s(b) < 1.0
    assert s.wait_s(a) is None  # running, not waiting


def test_a_failing_start_ends_the_run_and_frees_the_slot():
    s = Scheduler(workers=1)

    def broken():
        raise OSError("no processes left")

    a = s.submit("a", broken)
    started = []
    submit(s, "b", started)
    assert a.state == "ended" and "no processes left" in a.error and started == ["b#0"]


@pytest.mark.parametrize(
    ("cpus", "available_mb", "workers"),
    [(2, 20_000, 1), (16, 60_000, 15), (16, 3_000, 4), (1, 20_000, 1), (8, 500, 1)],
)
def test_default_workers_leave_a_core_to_the_server_and_fit_in_memory(cpus, available_mb, workers):
    assert default_workers(cpus, available_mb) == workers


def test_the_wait_reads_as_a_student_would_say_it():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
    ]  # fmt: skip
    assert about(3) == "about 5 s" and about(42) == "about 40 s" and about(150) == "about 2 min"


def test_a_new_server_removes_what_dead_servers_left(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    base = tmp_path / ROOT
    # A server that is gone, with a run folder and a worker record of a process that is
    # not (any more) that worker; and this process's own folder, kept.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    gone = base / dead.stdout.strip()
    (gone / "session-x" / "run-1").mkdir(parents=True)
    (gone / "workers").mkdir()
    (gone / "workers" / str(os.getpid())).write_text("1.0")  # not this process's start time
    mine = base / str(os.getpid())
    (mine / "session-y").mkdir(parents=True)
    assert sweep() == [gone]
    assert not gone.exists() and mine.exists()  # and this process was not killed


def test_the_scheduler_module_imports_no_ui_library():
    code = "import sys, workbench.widgets.scheduler; print('panel' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    assert Path(default_workers.__code__.co_filename).name == "scheduler.py"
