"""Kill -9 during training, comparison and saving (issue 18), a reduced run of
benchmarks/kill_trials.py: two trials per scenario instead of ten.  Every run must be absent
or complete and verified, and every resume (or restart) end with the uninterrupted weights."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "kill_trials.py"


def _load():
    spec = importlib.util.spec_from_file_location("kill_trials", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kill_trials"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_kill_9_leaves_runs_absent_or_complete_and_resumes_exactly(tmp_path):
    kill_trials = _load()
    outcomes = kill_trials.run_trials(trials=2, seed=1, root=tmp_path, jobs=3)
    failures = [f"{o.scenario} {o.trial}: {f}" for o in outcomes for f in o.failures]
    assert not failures, failures
    frame = kill_trials.table(outcomes).set_index("scenario")
    assert list(frame.index) == ["training", "comparison", "saving"]
    assert (frame["killed"] >= 1).all(), frame  # each scenario was killed at least once
    assert (frame["absent"] + frame["complete+verified"] == frame["runs checked"]).all()
