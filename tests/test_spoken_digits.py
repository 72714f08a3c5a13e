"""Spoken digits as a dataset of the workbench: registered, sized by its options, trained end to
end through the command line (the generator itself: tests/test_speech.py)."""

import json
import subprocess
import sys

from workbench import experiment

WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def test_the_reference_is_a_recurrent_network_on_the_spikes_of_700_channels():
    config = experiment.reference_config("spoken_digits")
    assert config.recurrent and config.encoder["name"] == "spikes"
    config.encoder = experiment.resolve_encoder(config)
    assert experiment.make_run_encoder(config).channels == 700
    assert experiment.config_problems(config) == []


def test_a_front_end_of_16_channels_sizes_the_encoder():
    config = experiment.reference_config("spoken_digits")
    config.dataset_options = {"n_channels": 16}
    encoder = experiment.resolve_encoder(config)
    assert encoder["channels"] == 16 and encoder["channel_shift"] == 1  # 40 of 700 channels
    config.dataset_options = {"n_channels": 0}
    [problem] = experiment.config_problems(config)
    assert problem.path == "dataset_options.n_channels"


def test_workbench_trains_on_spoken_digits_of_unseen_speakers(tmp_path):
    """3 epochs: well above chance (10 %) on speakers never heard in training.  Builds the data
    set once (~2.5 min, then cached for the app's tests too)."""
    out = tmp_path / "run"
    command = [
        *WORKBENCH,
        "train",
        "--dataset",
        "spoken_digits",
        "--hidden",
        "64",
        "--epochs",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.3
    config = json.loads((out / "config.json").read_text())
    assert config["recurrent"] and config["dataset_options"] == {}
