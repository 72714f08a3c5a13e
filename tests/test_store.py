"""The run store: manifests, checkpoints that survive SIGKILL, atomic run folders, listing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from workbench import experiment
from workbench.cli import main
from workbench.spec import SpecError
from workbench.store import Checkpoint, checkpoint_dir, list_runs, read_manifest
from workbench.training import BatchEnd

WORKBENCH = [sys.executable, "-m", "workbench.cli"]
# A small Yin-Yang run: three epochs of a 5-20-3 network (about half a second each).
TRAIN = ["train", "--dataset", "yinyang", "--hidden", "20", "--epochs", "3", "--seed", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def small_config(algorithm="surrogate", dataset="yinyang", backend="float"):
    config = experiment.reference_config(dataset, algorithm, backend, seed=2)
    config.training["epochs"] = 3
    config.hidden = [20]
    return config


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same run never interrupted (through the CLI, as a user would)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run([*WORKBENCH, *TRAIN, "--out", str(out), "--quiet"], check=True, env=ENV)
    return out


def test_a_run_folder_carries_a_manifest_that_loading_checks(uninterrupted, tmp_path):
    manifest = read_manifest(uninterrupted)
    config = json.loads((uninterrupted / "config.json").read_text())
    assert manifest["seed"] == 2 and manifest["backend"] == "float"
    assert manifest["algorithm"] == "surrogate" and manifest["dataset"] == "yinyang"
    assert manifest["workbench_version"] and manifest["spec_hash"]
    assert set(manifest["files"]) == set(experiment.RUN_FILES) - {"manifest.json"}
    assert "spec_hash" not in config  # the configuration is only the configuration
    # a changed file is refused, naming it
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in uninterrupted.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert experiment.load_run(copy).metrics["epochs"] == 3
    history = copy / "history.csv"
    history.write_text(history.read_text() + "\n")
    with pytest.raises(SpecError, match="history.csv differs"):
        experiment.load_run(copy)


def test_training_killed_mid_epoch_resumes_to_the_same_weights(uninterrupted, tmp_path):
    """SIGKILL from outside, whenever the first checkpoint exists; `workbench resume`."""
    out = tmp_path / "run"
    proc = subprocess.Popen([*WORKBENCH, *TRAIN, "--out", str(out), "--quiet"], env=ENV)
    state = checkpoint_dir(out) / Checkpoint.STATE
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before its first checkpoint"
    proc.send_signal(signal.SIGKILL)  # at once: an epoch is only ~0.5 s, so this is in epoch 2
    proc.wait()
    assert not out.exists()  # nothing that looks like a run
    assert Checkpoint(state.parent).load()["epoch"] in (1, 2)
    listed = list_runs(tmp_path)
    assert listed["status"].str.startswith("resumable at epoch").tolist() == [True]
    # a second `train` to the same folder is refused, pointing at `resume`
    assert main([*TRAIN, "--out", str(out), "--quiet"]) == 2
    done = subprocess.run(
        [*WORKBENCH, "resume", str(out), "--quiet"], env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert same_weights(
        load_file(out / "weights.safetensors"), load_file(uninterrupted / "weights.safetensors")
    )
    assert not checkpoint_dir(out).exists()  # dropped once the run folder is complete
    assert list_runs(tmp_path)["status"].tolist() == ["complete"]


KILL_IN_EPOCH_2 = """
import os, signal, sys
import torch
from workbench import experiment
from workbench.training import BatchEnd

torch.set_num_threads(int(sys.argv[3]))  # the parent's: float sums depend on the thread count
config = experiment.RunConfig.from_dict(__import__("json").loads(sys.argv[1]))

def kill(event):
    if isinstance(event, BatchEnd) and event.epoch == 2 and event.batch == 5:
        os.kill(os.getpid(), signal.SIGKILL)

experiment.train(config, callbacks=[kill], checkpoint=sys.argv[2])
"""


@pytest.mark.parametrize(
    "algorithm, dataset, backend",
    [
        ("surrogate", "digits", "float"),  # the rate encoder draws random spikes
        ("stdp", "digits", "float"),  # a local rule (its own loop)
        ("surrogate", "yinyang", "brainscales2"),  # an emulator with trial-to-trial noise
    ],
)
def test_killed_in_the_middle_of_an_epoch_resumes_exactly(algorithm, dataset, backend, tmp_path):
    config = small_config(algorithm, dataset, backend)
    config.training["epochs"] = 2
    folder = tmp_path / "checkpoint"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILL_IN_EPOCH_2,
            json.dumps(config.to_dict()),
            str(folder),
            str(torch.get_num_threads()),
        ],
        env=ENV,
    )
    assert killed.returncode == -signal.SIGKILL
    assert Checkpoint(folder).load()["epoch"] == 1
    resumed = experiment.resume(folder)
    reference = experiment.train(config)
    assert same_weights(resumed.network.state_dict(), reference.network.state_dict())
    assert resumed.metrics["test_accuracy"] == reference.metrics["test_accuracy"]
    assert len(resumed.history) == 2


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    config = small_config()
    config.training["epochs"] = 1
    experiment.train(config, checkpoint=tmp_path / "c")
    other = small_config()
    other.training["epochs"] = 1
    other.seed = 5

    def never(event):
        assert not isinstance(event, BatchEnd), "trained on another run's checkpoint"

    with pytest.raises(SpecError, match="checkpoint of another run"):
        experiment.train(other, callbacks=[never], checkpoint=tmp_path / "c")


KILL_WHILE_SAVING = """
import os, signal, sys
from workbench import experiment

config = experiment.reference_config("yinyang", seed=0)
config.hidden, config.training["epochs"] = [10], 1
run = experiment.train(config)

def die(*args, **kwargs):  # the recording is the last large file written
    os.kill(os.getpid(), signal.SIGKILL)

experiment.save_netcdf = die
experiment.save_run(run, sys.argv[1])
"""


def test_a_write_killed_half_way_leaves_no_folder_that_looks_complete(tmp_path):
    out = tmp_path / "store" / "run"
    killed = subprocess.run([sys.executable, "-c", KILL_WHILE_SAVING, str(out)], env=ENV)
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()
    left = list((tmp_path / "store").iterdir())
    assert [p.name.startswith(".run.") and p.name.endswith(".part") for p in left] == [True]
    assert not (left[0] / "manifest.json").exists()
    assert list_runs(tmp_path / "store").empty
    with pytest.raises(SpecError, match="not a complete run folder"):
        experiment.load_run(left[0])


def test_workbench_runs_lists_a_store(uninterrupted, capsys):
    store = uninterrupted.parent
    assert main(["runs", str(store)]) == 0
    text = capsys.readouterr().out
    assert "run" in text and "complete" in text and "surrogate" in text and "yinyang" in text
    assert main(["runs", str(store), "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("run,status,dataset,algorithm,backend,seed,epochs,test_accuracy")
    assert lines[1].startswith("run,complete,yinyang,surrogate,float,2,3,")
    assert main(["runs", str(store / "nope")]) == 2
