"""A reduced run of benchmarks/app_load.py: two browser sessions against one server with one
worker slot, so one run goes and one waits.  It checks that every step the benchmark times
was reached and reported (no latency is asserted: a timed assertion here would be flaky)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "app_load.py"
KEYS = (  # the keys, per session count
    "tab_switch_p95_s",
    "start_to_first_plot_s",
    "updates_per_s",
    "pause_latency_p95_s",
    "stop_latency_p95_s",
    "server_rss_mb",
    "worker_rss_mb",
    "page_errors",
)


@pytest.mark.slow
def test_two_sessions_one_slot_every_step_is_measured(tmp_path):
    out = tmp_path / "load.json"
    command = [sys.executable, str(SCRIPT), "--sessions", "2", "--epochs", "3"]
    command += ["--budget-s", "150", "--window-s", "2", "--rounds", "1", "--json", str(out)]
    command += ["--", "--max-workers", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    [row] = json.loads(out.read_text())
    assert row["sessions"] == 2 and all(row[k] is not None for k in KEYS), row
    assert row["page_errors"] == 0 and row["blocked_requests"] == [], row
    assert row["notes"] == [] and row["stopped_at_budget"] == 0, row["notes"]
    assert row["queued_sessions"] == 1  # the queue was full when the class's part began
    assert set(row["cpu_s"]) == {"server", "workers", "browsers", "wall"}
    assert row["worker_rss_mb"]["peak_count"] >= 1
    for s in row["per_session"]:
        assert s["open_s"] is not None and len(s["first_visits"]) == 2  # Data, Train
        assert len(s["tab_switches"]) == 3  # one round: Build, Data, Train
        assert s["pause_ack_s"] is not None and s["resume_ack_s"] is not None
        assert s["start_to_first_plot_s"] is not None and s["stop_ack_s"] is not None
    assert sorted(s["pause_while"] for s in row["per_session"]) == ["queued", "running"]
