"""compare(): the algorithm x backend x seed grid, its executors, files, CLI, and the measures
it reports (synaptic operations, peak memory)."""

import math
import os
import subprocess
import sys
from concurrent.futures import Future

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.algorithms import ALGORITHMS, Algorithm, register_algorithm
from workbench.algorithms.surrogate import SurrogateConfig
from workbench.backends import build
from workbench.cli import main
from workbench.compare import (
    COLUMNS,
    InlineExecutor,
    RunFinished,
    compare,
    process_pool,
    write_csv_atomic,
)
from workbench.metrics import fan_out, peak_memory, synaptic_operations
from workbench.spec import NetworkSpec, Population, Projection, SpecError
from workbench.training import StopSignal, evaluate

# small runs: 1 epoch of digits on a 64-20-10 network over 10 steps
SMALL = {"hidden": [20], "n_steps": 10}
TIMING = ["train_seconds", "peak_memory_mb"]


def workbench(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a process pool's workers, so the numbers agree exactly
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "grid"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    events = []
    try:
        result = compare(
            "digits",
            ["surrogate"],
            ["float", "xylo"],  # Xylo refuses digits' 64 inputs and 10 outputs
            seeds=[0, 1],
            epochs=1,
            overrides=SMALL,
            out=out,
            callbacks=[events.append],
        )
    finally:
        torch.set_num_threads(threads)
    return result, out, events


# ------------------------------------------------------------------------------------ the grid


def test_the_grid_has_one_row_per_cell_with_every_column(small_grid):
    result, out, _ = small_grid
    table = pd.read_csv(out / "results.csv")
    assert list(table.columns) == list(COLUMNS)
    assert list(zip(table.backend, table.seed)) == [
        ("float", 0),
        ("float", 1),
        ("xylo", 0),
        ("xylo", 1),
    ]
    ok = table[table.backend == "float"]
    assert ok.error.isna().all() and (ok.epochs == 1).all()
    for column in ("test_accuracy", "val_accuracy", "spikes_per_sample", "synops_per_sample"):
        assert (ok[column] > 0).all(), column
    assert (ok.train_seconds > 0).all() and (ok.peak_memory_mb >= 0).all()
    # synops count the input spikes (fan-out 20) and the hidden spikes (fan-out 10)
    assert (ok.synops_per_sample > 10 * ok.spikes_per_sample).all()
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "surrogate-float-seed0",
        "surrogate-float-seed1",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "runs", "summary.csv"]
    # the run folder holds the same metrics as the row
    import json

    metrics = json.loads((out / "runs" / "surrogate-float-seed1" / "metrics.json").read_text())
    assert metrics["test_accuracy"] == ok.test_accuracy.iloc[1]
    assert metrics["test_synops_per_sample"] == pytest.approx(ok.synops_per_sample.iloc[1])


def test_a_failing_cell_reports_its_error_and_the_others_complete(small_grid):
    result, _, _ = small_grid
    failed = result.failed
    assert [(r["backend"], r["seed"]) for r in failed] == [("xylo", 0), ("xylo", 1)]
    assert all("Xylo Audio 2 allows at most 16" in r["error"] for r in failed)
    assert all(math.isnan(r["test_accuracy"]) for r in failed)


def test_the_summary_gives_mean_and_std_per_algorithm_and_backend(small_grid):
    result, out, events = small_grid
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.backend) == ["float", "xylo"]
    assert list(summary.n_runs) == [2, 0] and list(summary.n_failed) == [0, 2]
    accuracy = result.results.test_accuracy.iloc[:2]
    assert summary.test_accuracy_mean[0] == pytest.approx(accuracy.mean())
    assert summary.test_accuracy_std[0] == pytest.approx(accuracy.std())
    assert {"synops_per_sample_mean", "peak_memory_mb_std"} <= set(summary.columns)
    table = result.table()
    assert "±" in table and "2/2" in table and "0/2" in table and "2 failed" in table
    assert [type(e) for e in events] == [RunFinished] * 4
    assert [e.done for e in events] == [1, 2, 3, 4] and {e.total for e in events} == {4}


def test_a_process_pool_gives_the_same_results(small_grid, tmp_path):
    inline, _, _ = small_grid
    with process_pool(2) as pool:
        pooled = compare(
            "digits",
            ["surrogate"],
            ["float", "xylo"],
            seeds=[0, 1],
            epochs=1,
            overrides=SMALL,
            out=tmp_path / "pooled",
            executor=pool,
        )
    on_disk = pd.read_csv(tmp_path / "pooled" / "results.csv")
    a = inline.results.drop(columns=TIMING)
    b = pooled.results.drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(
        on_disk.drop(columns=TIMING),
        pd.read_csv(small_grid[1] / "results.csv").drop(columns=TIMING),
    )


def broken_fit(network, data, config, callbacks=(), stop=None):
    raise RuntimeError("boom")


@pytest.fixture
def broken_algorithm():
    register_algorithm(Algorithm("broken", "Always fails", broken_fit, SurrogateConfig))
    yield "broken"
    ALGORITHMS.pop("broken")


def test_a_run_that_raises_becomes_an_error_row(broken_algorithm, one_thread):
    result = compare("digits", [broken_algorithm, "surrogate"], seeds=1, epochs=1, overrides=SMALL)
    rows = {r["algorithm"]: r for r in result.rows}
    assert rows["broken"]["error"] == "RuntimeError: boom"
    assert rows["surrogate"]["error"] is None and rows["surrogate"]["test_accuracy"] > 0


def test_a_stop_signal_cancels_the_runs_not_yet_started(one_thread):
    stop = StopSignal()
    result = compare(
        "digits",
        ["surrogate"],
        seeds=3,
        epochs=1,
        overrides=SMALL,
        callbacks=[lambda event: stop.set()],
        stop=stop,
    )
    assert [r["error"] for r in result.rows] == [None, "cancelled", "cancelled"]


def test_every_setting_is_checked_before_any_run(tmp_path):
    with pytest.raises(SpecError) as error:
        compare(
            "mnist",
            ["surrogate", "nope", "surrogate"],
            ["gpu"],
            seeds=0,
            epochs=0,
            overrides={"seed": 3},
            out=tmp_path / "never",
        )
    message = str(error.value)
    for part in (
        "dataset: 'mnist' must be one of",
        "algorithms: 'nope' must be one of",
        "algorithms: 'surrogate' is listed more than once",
        "backends: 'gpu' must be one of",
        "seeds: 0 must be an integer >= 1",
        "epochs: 0 must be an integer >= 1",
        "overrides.seed: is an axis of the grid",
    ):
        assert part in message, part
    with pytest.raises(SpecError, match="hiden: is not a run setting"):
        compare("digits", ["surrogate"], overrides={"hiden": [3]})
    with pytest.raises(SpecError, match="training.lr"):
        compare("digits", ["surrogate"], overrides={"training": {"lr": -1.0}})
    with pytest.raises(SpecError, match="seeds: .* distinct integers"):
        compare("digits", ["surrogate"], seeds=[1, 1])
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------------------------ executor


def test_the_inline_executor_honours_the_executor_interface():
    calls = []
    with InlineExecutor() as executor:
        future = executor.submit(lambda x, y=0: calls.append(x) or x + y, 2, y=3)
        assert isinstance(future, Future) and future.done() and future.result() == 5
        failing = executor.submit(lambda: 1 / 0)
        assert isinstance(failing.exception(), ZeroDivisionError)
        assert list(executor.map(lambda x: x * x, [1, 2, 3])) == [1, 4, 9]
    assert calls == [2]
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(print)


# ------------------------------------------------------------------------------------ files


def test_csv_files_are_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    write_csv_atomic(pd.DataFrame({"a": [1, 2]}), path)
    before = path.read_text()

    def half_then_fail(self, handle, **kwargs):
        handle.write("a\n1\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(OSError):
        write_csv_atomic(pd.DataFrame({"a": [3, 4, 5]}), path)
    assert path.read_text() == before  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temporary left


# ------------------------------------------------------------------------------------ measures


def hand_made_network():
    """input(3) -> hidden(2, lif, recurrent) -> output(2, li); input->hidden is sparse."""
    spec = NetworkSpec(
        input_size=3,
        populations=[Population("hidden", 2, "lif"), Population("output", 2, "li")],
        projections=[
            Projection("input", "hidden", weights=[[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]),
            Projection("hidden", "hidden", recurrent=True, weights=[[0.0, 0.5], [0.5, 0.0]]),
            Projection("hidden", "output", weights=[[1.0, 1.0], [1.0, -1.0]]),
        ],
        n_steps=4,
    )
    return build(spec)


def test_synaptic_operations_count_each_spike_times_its_synapses():
    network = hand_made_network()
    assert fan_out(network, network.spec.projections[0]).tolist() == [1, 0, 2]
    assert fan_out(network, network.spec.projections[1]).tolist() == [1, 1]
    inputs = torch.zeros(4, 2, 3)  # [time, batch, inputs]
    inputs[0, 0] = torch.tensor([1.0, 1.0, 1.0])
    inputs[2, 0, 0] = 1.0
    inputs[1, 1, 2] = 1.0
    hidden = torch.zeros(4, 2, 2)
    hidden[1, 0, 0] = hidden[2, 0, 0] = hidden[3, 0, 0] = hidden[3, 1, 1] = 1.0
    recordings = {"hidden": {"spikes": hidden}, "output": {"v": torch.zeros(4, 2, 2)}}
    # input: source 0 spikes twice (1 synapse), source 1 once (none), source 2 twice (2)
    # hidden->hidden: 4 spikes x 1 synapse; hidden->output: 4 spikes x 2 synapses
    expected = (2 * 1 + 1 * 0 + 2 * 2) + 4 * 1 + 4 * 2
    assert synaptic_operations(network, inputs, recordings) == expected


def test_evaluate_reports_synaptic_operations_per_sample():
    network = hand_made_network()
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(4, 6, 3, generator=generator) < 0.5).float()  # [time, batch, inputs]
    loader = [(spikes.transpose(0, 1), torch.zeros(6, dtype=torch.long))]

    def encoder(features):
        return features.transpose(0, 1)

    result = evaluate(network, loader, encoder, "max_membrane")
    with torch.no_grad():
        hidden = network(spikes, record=True).recordings["hidden"]["spikes"]
    counted = 0.0
    for b in range(6):  # by hand: every spike, every non-zero weight of its column
        for t in range(4):
            for j in range(3):
                counted += spikes[t, b, j].item() * [1, 0, 2][j]
            for j in range(2):
                counted += hidden[t, b, j].item() * (1 + 2)
    assert result["synops_per_sample"] == pytest.approx(counted / 6)
    assert result["spikes_per_sample"] == pytest.approx(hidden.sum().item() / 6)


needs_proc = pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="no resettable peak RSS here"
)


@needs_proc
def test_peak_memory_sees_a_peak_that_is_gone_at_the_end():
    with peak_memory() as outer:
        with peak_memory() as inner:
            block = np.ones(40 * 2**20 // 8)  # 40 MiB, touched
            del block
        with peak_memory() as later:  # resets the high-water mark; outer keeps what it saw
            pass
    assert inner.megabytes > 35
    assert outer.megabytes > 35
    assert later.megabytes < 35


def test_peak_memory_is_nan_where_it_cannot_be_measured(monkeypatch, tmp_path):
    from workbench import metrics

    monkeypatch.setattr(metrics, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    with peak_memory() as peak:
        pass
    assert math.isnan(peak.megabytes)


# ------------------------------------------------------------------------------------ CLI


def test_cli_compare_prints_a_line_per_run_and_the_summary(tmp_path):
    out = tmp_path / "cmp"
    done = workbench(
        "compare",
        "--dataset",
        "digits",
        "--algorithms",
        "surrogate",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    progress = done.stderr.strip().splitlines()
    assert [line.split()[0] for line in progress] == ["[1/2]", "[2/2]"]
    assert "surrogate-float-seed0  test_accuracy" in progress[0]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "digits: 2 runs" and lines[1].split()[:3] == ["algorithm", "backend", "runs"]
    assert lines[2].startswith("surrogate  float") and "±" in lines[2]
    assert len(pd.read_csv(out / "results.csv")) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--algorithms", "surrogate,nope"],
            "error: argument --algorithms: 'nope' must be one of ",
        ),
        (["--algorithms", "surrogate", "--seeds", "0"], "'0' must be an integer >= 1"),
        (["--algorithms", "surrogate", "--backends", "gpu"], "'gpu' must be one of float"),
        (
            ["--algorithms", "surrogate,surrogate"],
            "error: algorithms: 'surrogate' is listed more than once",
        ),
        (["--algorithms", "surrogate", "--workers", "0"], "'0' must be an integer >= 1"),
    ],
)
def test_cli_compare_bad_input_gets_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    out = tmp_path / "cmp"
    try:
        code = main(["compare", "--dataset", "digits", *args, "--out", str(out)])
    except SystemExit as exit:  # argparse's refusals
        code = exit.code
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not out.exists()
