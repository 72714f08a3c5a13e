"""Sweeps over hyperparameters, on any executor: in this process or on a Dask cluster."""

import subprocess
import sys

import pandas as pd
import pytest

from workbench.compare import dask_executor, sweep, sweep_grid
from workbench.spec import SpecError

# 3 learning rates x 2 hidden sizes x 2 seeds = 12 short runs on digits
PARAMS = {"training.lr": [0.005, 0.01, 0.02], "hidden": [[10], [20]]}
SMALL = {"training": {"batch_size": 128}}
TIMINGS = ["train_seconds", "peak_memory_mb"]


def comparable(path) -> pd.DataFrame:
    """results.csv without the timings, in a fixed row order."""
    table = pd.read_csv(path).drop(columns=TIMINGS)
    return table.sort_values(["training.lr", "hidden", "seed"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def inline(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "inline"
    return sweep("digits", "surrogate", PARAMS, seeds=2, epochs=1, overrides=SMALL, out=out)


def test_a_sweep_runs_every_combination_and_tabulates_it(inline):
    results = inline.results
    assert len(results) == 12 and not inline.failed
    assert list(results.columns[:4]) == ["algorithm", "backend", "training.lr", "hidden"]
    assert sorted(set(results["hidden"])) == ["[10]", "[20]"]
    summary = inline.summary()
    assert len(summary) == 6 and (summary["n_runs"] == 2).all()
    assert "training.lr" in inline.table() and "[20]" in inline.table()
    runs = sorted(p.name for p in (inline.out / "runs").iterdir())
    assert "surrogate-float-training.lr=0.005-hidden=_10_-seed0" in runs and len(runs) == 12
    # each run used its settings
    from workbench.experiment import load_run

    run = load_run(inline.out / "runs" / "surrogate-float-training.lr=0.02-hidden=_20_-seed1")
    assert run.config.training["lr"] == 0.02 and run.config.hidden == [20]
    assert run.config.training["batch_size"] == 128 and run.config.seed == 1


def test_a_dask_local_cluster_gives_the_same_results(inline, tmp_path):
    finished = []
    with dask_executor(workers=2) as executor:
        on_dask = sweep(
            "digits",
            "surrogate",
            PARAMS,
            seeds=2,
            epochs=1,
            overrides=SMALL,
            out=tmp_path / "dask",
            executor=executor,
            callbacks=[finished.append],
        )
    assert [event.done for event in finished] == list(range(1, 13))  # streamed, one by one
    assert not on_dask.failed
    pd.testing.assert_frame_equal(
        comparable(tmp_path / "dask" / "results.csv"), comparable(inline.out / "results.csv")
    )


def test_a_failed_run_is_reported_and_the_others_go_on(tmp_path):
    # 600 hidden neurons pass the sweep's settings check, but the emulated chip holds 509
    # and refuses the network when the run builds it
    with dask_executor(workers=2) as executor:
        result = sweep(
            "yinyang",
            "surrogate",
            {"hidden": [[10], [600]]},
            backend="brainscales2",
            epochs=1,
            overrides=SMALL,
            executor=executor,
        )
    errors = dict(zip(result.results["hidden"], result.results["error"]))
    assert pd.isna(errors["[10]"])
    assert "populations[0].size" in errors["[600]"] and "BrainScaleS-2" in errors["[600]"]


def test_sweep_settings_are_checked_before_any_run():
    with pytest.raises(SpecError) as caught:
        sweep_grid("digits", "surrogate", {"seed": [1, 2], "training.lr": []})
    text = str(caught.value)
    assert "params.seed" in text and "params.training.lr" in text
    with pytest.raises(SpecError, match="training.nope"):
        sweep_grid("digits", "surrogate", {"training.nope": [1]})
    with pytest.raises(SpecError, match="lr"):
        sweep_grid("digits", "surrogate", {"training.lr": [0.01, -1.0]})


@pytest.mark.parametrize(
    "params, message",
    [
        ({"hidden": [-1]}, "hidden (with {'hidden': -1}): -1 must be a non-empty list of sizes"),
        ({"hidden": [[-1]]}, "hidden (with {'hidden': [-1]}): -1 must be an integer >= 1"),
        (
            {"backend_options.x": [1]},
            "backend_options.x (with {'backend_options.x': 1}): is not an option of backend",
        ),
        ({"neuron_params.tau_mem": [20.0, -1.0]}, "populations[0].params.tau_mem (with"),
        ({"encoder.t_late": ["soon"]}, "encoder.t_late"),
        ({"training.epochs": [10**9]}, "must be an integer >= 1 and <= 10000"),
        ({"hidden": [[10**9]]}, "needs ~"),
    ],
)
def test_a_value_no_run_could_take_is_refused_before_any_run(params, message, tmp_path):
    """Values that used to reach a run (and fail there with a TypeError, or allocate) are
    refused with the swept value named, before a folder is made."""
    with pytest.raises(SpecError) as caught:
        sweep("digits", "surrogate", params, out=tmp_path / "never")
    assert message in str(caught.value)
    assert not (tmp_path / "never").exists()


def test_a_grid_too_large_is_refused_from_its_counts():
    params = {"training.lr": [0.01] * 100, "training.batch_size": [32] * 100}
    with pytest.raises(SpecError, match=r"is 10000 runs; at most 1000 \(--max-runs\)"):
        sweep_grid("digits", "surrogate", params)
    with pytest.raises(SpecError, match=r"seeds: 1000000000000 must be an integer >= 1"):
        sweep_grid("digits", "surrogate", {"training.lr": [0.01]}, seeds=10**12)


def test_workbench_sweep_from_the_command_line(tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "sweep",
            "--dataset",
            "digits",
            "--param",
            "training.lr=0.01,0.02",
            "--param",
            "hidden=[10]",
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "training.lr" in done.stdout and "hidden" in done.stdout
    assert "[2/2] surrogate-float-training.lr=0.02-hidden=_10_-seed0" in done.stderr
    table = pd.read_csv(out / "results.csv")
    assert list(table["training.lr"]) == [0.01, 0.02] and set(table["hidden"]) == {"[10]"}
    bad = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "sweep", "--dataset", "digits", "--param", "lr"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "SETTING=VALUE1,VALUE2" in bad.stderr
