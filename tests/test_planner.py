"""The memory planner (workbench.planner): a run's peak memory and time predicted from a short
calibration, the refusal of a run that will not fit, and the command line's --plan.  The
prediction against measured runs over a grid: benchmarks/memory_planner.py."""

import json
import subprocess
import sys

import pytest

from workbench import experiment, limits, planner
from workbench.data import make_loaders
from workbench.metrics import peak_memory
from workbench.spec import SpecError
from workbench.training import evaluate

WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def small_config(**overrides) -> experiment.RunConfig:
    config = experiment.reference_config("yinyang")
    config.hidden = [32]
    config.dataset_options = {"train_size": 200, "validation_size": 100, "test_size": 100}
    config.training["epochs"] = 2
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def test_a_plan_predicts_memory_and_time_from_the_runs_own_pieces():
    config = small_config()
    plan = planner.plan_run(config)
    assert plan.fits and plan.peak_memory_mb > 0 and plan.seconds_per_epoch > 0
    assert plan.epochs == 2 and plan.seconds == pytest.approx(2 * plan.seconds_per_epoch)
    assert plan.batches_per_epoch == 200 // 32 + 1
    runs = [row for row in plan.calibration if row["pass"] == "run"]
    # the memory at the run's own batch sizes (32, and its 100 validation samples at once), the
    # only memory pass where those fit; then the time passes (one and three batches)
    sizes = [(r["batch"], r["batches"], r["validation"], r["evaluation_batch"]) for r in runs]
    assert sizes == [(32, 1, 100, 100), (32, 1, 1, 1), (32, 3, 1, 1)]
    assert plan.limit_mb == pytest.approx(limits.memory_limit() / 2**20, rel=0.1)  # available
    assert set(plan.to_dict()) >= {"peak_memory_mb", "seconds_per_epoch", "fits", "calibration"}
    assert "MiB" in plan.describe() and "per epoch" in plan.describe()
    assert config.n_steps == experiment.reference_config("yinyang").n_steps  # not changed


def test_the_line_through_two_points_never_falls():
    assert planner._line([(0.25, 10.0), (1.0, 40.0)], 1.0) == 40.0
    assert planner._line([(0.25, 10.0), (0.5, 20.0)], 1.0) == pytest.approx(40.0)
    assert planner._line([(0.25, 30.0), (0.5, 20.0)], 1.0) == 20.0  # noise: flat, not down
    assert planner._line([(1.0, 7.0)], 1.0) == 7.0


def test_the_calibration_shrinks_where_the_run_would_not_fit():
    # room for everything: the run's own sizes, where the plan is the measured peak
    assert planner._scales(288, 1e3, 0.0, 1e9) == (1.0,)
    # 288 samples of 1 MB with 40 MB of room: a fraction, and a quarter of it
    low, high = planner._scales(288, 2**20, 0.0, 160 * 2**20)
    assert high == pytest.approx(40 / 288) and low == pytest.approx(high / 4)
    # never below one sample
    assert planner._scales(288, 2**30, 0.0, 2**20) == (1 / 288,)


def test_a_run_predicted_beyond_the_limit_is_refused_naming_the_batch(monkeypatch):
    config = small_config(n_steps=400, hidden=[256])
    config.dataset_options.update(validation_size=300, test_size=300)
    spec = experiment.prepare(config)[1]
    total = limits.spec_estimate(spec, 32, "surrogate").total
    # a limit the arithmetic estimate passes (so the run gets as far as its plan) but which the
    # run itself, evaluating 256 samples of 400 steps at once, exceeds
    monkeypatch.setenv(limits.MEMORY_ENV, str(int(1.1 * total)))
    assert experiment.config_problems(config) == []
    assert planner.needs_plan(config)
    with pytest.raises(SpecError) as caught:
        planner.check_plan(config)
    [problem] = caught.value.problems
    assert problem.path == "training.batch_size"
    assert "predicted to need" in problem.message and "allows" in problem.message


def test_a_small_run_is_not_planned_unless_asked(monkeypatch):
    config = small_config()
    assert not planner.needs_plan(config)
    assert planner.check_plan(config) is None
    assert planner.check_plan(config, force=True).fits


def test_workbench_train_plan_prints_the_plan_and_trains_nothing(tmp_path):
    out = tmp_path / "run"
    command = [*WORKBENCH, "train", "--dataset", "digits", "--hidden", "16", "--epochs", "1"]
    done = subprocess.run(
        [*command, "--plan", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout.strip().splitlines()[-1])
    assert plan["fits"] and plan["peak_memory_mb"] > 0 and plan["epochs"] == 1
    assert "plan: peak ~" in done.stderr
    assert not out.exists()


def test_evaluation_holds_one_batch_at_a_time():
    """Two evaluation batches peak like one: the first batch's recordings are let go before
    the second's are made (they were held, doubling the peak)."""
    config = small_config(n_steps=400, hidden=[256])
    data, spec, network, hyper = experiment.prepare(config)
    peaks = {}
    for n in (64, 128):
        loader = make_loaders(data.dataset.head(1, n), 64, 0)["validation"]
        evaluate(network, loader, data.encoder, hyper.readout)  # warm
        with peak_memory() as peak:
            evaluate(network, loader, data.encoder, hyper.readout)
        peaks[n] = peak.megabytes
    assert peaks[64] > 20  # one batch's recordings: 64 x 400 steps x 259 neurons
    assert peaks[128] < 1.4 * peaks[64], peaks


@pytest.mark.slow
def test_the_plan_is_within_20_percent_of_a_measured_run():
    """One cell of benchmarks/memory_planner.py: surrogate BPTT, 512 hidden, T 200."""
    cell = {
        "dataset": "yinyang",
        "algorithm": "surrogate",
        "backend": "float",
        "seed": 0,
        "epochs": 1,
        "overrides": {
            "hidden": [512],
            "n_steps": 200,
            "dt": 0.25,
            "dataset_options": {"train_size": 500},
        },
    }
    script = (
        "import json, sys, torch; torch.set_num_threads(1)\n"
        "from workbench import compare, planner\n"
        "cell = json.loads(sys.argv[2])\n"
        "if sys.argv[1] == 'plan':\n"
        "    print(planner.plan_run(compare.cell_config(cell)).peak_memory_mb)\n"
        "else:\n"
        "    print(compare.run_cell(cell)['peak_memory_mb'])\n"
    )
    values = {}
    for mode in ("plan", "run"):  # each in a fresh process, as a worker of compare measures
        done = subprocess.run(
            [sys.executable, "-c", script, mode, json.dumps(cell)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        values[mode] = float(done.stdout.strip().splitlines()[-1])
    assert values["run"] > 200  # the comparison is not between two small numbers
    assert abs(values["plan"] / values["run"] - 1) < 0.2, values


def test_the_app_worker_reports_the_plan_of_a_run_near_the_limit(monkeypatch, tmp_path):
    """The app's training worker plans a run whose estimate comes near the limit and sends the
    plan (shown in the dashboard's status) before the first batch."""
    import multiprocessing
    import os

    from workbench.widgets.worker import Finished, Planned, train_in_process

    config = small_config(n_steps=200, hidden=[128])
    config.training["epochs"] = 1
    spec = experiment.prepare(config)[1]
    total = limits.spec_estimate(spec, 32, "surrogate").total
    # the estimate is over 1/8 of this limit (so the run is planned) and the run fits in it
    # (measured peaks were 0.55-2.2 times the estimate)
    monkeypatch.setenv(limits.MEMORY_ENV, str(int(6 * total)))
    assert planner.needs_plan(config)
    ctx = multiprocessing.get_context("spawn")  # a fresh process that reads the limit above
    events, stop = ctx.Queue(), ctx.Event()
    args = (config.to_dict(), spec.to_json(), str(tmp_path / "run"), events, stop, os.getpid())
    worker = ctx.Process(target=train_in_process, args=args)
    worker.start()
    seen = []
    while not seen or not isinstance(seen[-1], Finished):
        seen.append(events.get(timeout=300))
    worker.join(60)
    kinds = [type(e).__name__ for e in seen]
    assert seen[-1].error is None, seen[-1].error
    planned = [e for e in seen if isinstance(e, Planned)]
    assert len(planned) == 1 and "MiB" in planned[0].text and "per epoch" in planned[0].text
    assert kinds.index("Planned") < kinds.index("BatchEnd")
