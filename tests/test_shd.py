"""Spike-event data: the SHD/SSC file format, the spikes encoder and its augmentations, and a
run on an SHD-format file end to end (files the suite writes in the published schema)."""

import gzip
import json
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import write_shd_file

from workbench import experiment
from workbench.data import EventSplit, SpikeEncoder, load_dataset, make_loaders

WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def small_events() -> EventSplit:
    """Three samples: two of class 0, one of class 1 (times in ms)."""
    return EventSplit(
        times=np.array([0.0, 1.5, 2.0, 9.9, 3.0, 4.0, 5.0, 6.0], np.float32),
        units=np.array([0, 1, 1, 3, 2, 2, 0, 1], np.int16),
        offsets=np.array([0, 4, 6, 8]),
        labels=np.array([0, 0, 1]),
        n_channels=4,
    )


def test_the_spikes_encoder_bins_events_at_the_run_dt():
    split = small_events()
    events = torch.from_numpy(split.features[:])
    assert events.shape == (3, 4, 2)  # padded to the longest sample with channel -1
    assert events[1, 2:, 1].tolist() == [-1, -1] and events[2, 2:, 1].tolist() == [-1, -1]
    raster = SpikeEncoder(n_steps=5, dt=2.0, channels=4)(events)
    assert raster.shape == (5, 3, 4)
    expected = torch.zeros(5, 3, 4)
    expected[0, 0, 0] = expected[0, 0, 1] = expected[1, 0, 1] = 1  # 0, 1.5 (step 0), 2.0 (1)
    expected[4, 0, 3] = 1  # 9.9 ms: step 4, the last
    expected[1, 1, 2] = expected[2, 1, 2] = 1
    expected[2, 2, 0] = expected[3, 2, 1] = 1
    assert torch.equal(raster, expected)
    # events at or after n_steps * dt are dropped; two in one step of a channel make one spike
    short = SpikeEncoder(n_steps=2, dt=4.0, channels=4)(events)
    assert short[:, 0].tolist() == [[1, 1, 0, 0], [0, 0, 0, 0]]  # 1.5 and 2.0: one spike; 9.9 out


def test_the_spikes_encoder_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="channel_shift"):
        SpikeEncoder(n_steps=5, dt=1.0, channels=4, channel_shift=4)
    with pytest.raises(ValueError, match="blend"):
        SpikeEncoder(n_steps=5, dt=1.0, blend=1.5)
    with pytest.raises(ValueError, match="time_shift"):
        SpikeEncoder(n_steps=5, dt=1.0, time_shift=float("nan"))
    with pytest.raises(ValueError, match="channels: the spikes encoder reads 700"):
        SpikeEncoder(n_steps=5, dt=1.0).n_channels(64)
    with pytest.raises(ValueError, match=r"\[batch, E, 2\]"):
        SpikeEncoder(n_steps=5, dt=1.0)(torch.zeros(3, 4))


def test_shifts_move_every_event_of_a_sample_alike_and_repeat_with_the_seed():
    split = small_events()
    times, units = split.events(0)
    shifted = set()
    for seed in range(10):
        by_time = SpikeEncoder(n_steps=20, dt=1.0, channels=4, time_shift=3.0)
        events = by_time.augment(split, [0], torch.Generator().manual_seed(seed))[0]
        kept = events[events[:, 1] >= 0]
        offset = kept[-1, 0] - times[-1]  # the last event (9.9 ms) is never pushed below 0
        assert abs(offset) <= 3.0
        dropped = len(times) - len(kept)  # the events pushed before 0 ms
        assert np.allclose(kept[:, 0], times[dropped:] + offset, atol=1e-5)
        assert np.array_equal(kept[:, 1], units[dropped:])
        by_channel = SpikeEncoder(n_steps=20, dt=1.0, channels=4, channel_shift=2)
        events = by_channel.augment(split, [0], torch.Generator().manual_seed(seed))[0]
        kept = events[events[:, 1] >= 0]
        moves = {int(u) - int(u0) for (t, u) in kept for t0, u0 in zip(times, units) if t == t0}
        shift = next(m for m in moves if all(0 <= u0 + m < 4 or True for u0 in units))
        expected = [(t0, u0 + shift) for t0, u0 in zip(times, units) if 0 <= u0 + shift < 4]
        if all(tuple(row) == e for row, e in zip(kept.tolist(), expected)):
            shifted.add(shift)
    assert len(shifted) >= 3  # several shifts in [-2, 2] over ten seeds, each applied to all
    encoder = SpikeEncoder(n_steps=10, dt=1.0, channels=4, time_shift=1.0, channel_shift=1)
    one = encoder.augment(split, [0, 1], torch.Generator().manual_seed(3))
    assert np.array_equal(one, encoder.augment(split, [0, 1], torch.Generator().manual_seed(3)))
    assert not np.array_equal(one, encoder.augment(split, [0, 1], torch.Generator().manual_seed(4)))


def test_blending_mixes_two_samples_of_one_class_aligned_on_their_centres():
    split = small_events()
    encoder = SpikeEncoder(n_steps=20, dt=1.0, channels=4, blend=1.0)
    blended = [encoder.augment(split, [2], torch.Generator().manual_seed(s))[0] for s in range(20)]
    # sample 2 is the only one of class 1: blended with itself, every event is one of its own
    times, units = split.events(2)
    for events in blended:
        kept = events[events[:, 1] >= 0]
        assert all(any(t == t0 and u == u0 for t0, u0 in zip(times, units)) for t, u in kept)
    mixed = [encoder.augment(split, [0], torch.Generator().manual_seed(s))[0] for s in range(40)]
    sizes = [int((m[:, 1] >= 0).sum()) for m in mixed]
    assert min(sizes) < 4 or max(sizes) > 4  # events drawn with probability 1/2 from each
    for events in mixed:
        kept = events[events[:, 1] >= 0]
        assert np.all(np.diff(kept[:, 0]) >= 0)  # still in time order


def test_training_batches_are_augmented_and_evaluation_batches_never(shd_folder):
    dataset = load_dataset("shd", data_path=str(shd_folder))
    encoder = SpikeEncoder(n_steps=150, dt=2.0, channel_shift=40, blend=0.5)
    plain = make_loaders(dataset, 16, seed=0)
    augmented = make_loaders(dataset, 16, seed=0, augment=encoder.augment)
    for split in ("validation", "test"):
        a, b = next(iter(plain[split]))[0], next(iter(augmented[split]))[0]
        assert torch.equal(a, b)
    a, labels_a = next(iter(plain["train"]))
    b, labels_b = next(iter(augmented["train"]))
    assert torch.equal(labels_a, labels_b)  # the same samples, in the same order
    assert not torch.equal(a, b)
    again = next(iter(make_loaders(dataset, 16, seed=0, augment=encoder.augment)["train"]))[0]
    assert torch.equal(b, again)


def test_an_shd_folder_loads_in_milliseconds_with_a_seeded_validation_split(shd_folder):
    dataset = load_dataset("shd", data_path=str(shd_folder))
    assert dataset.events and dataset.n_features == 700 and dataset.n_classes == 20
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (360, 40, 100)
    assert dataset.class_names[:2] == ("word0", "word1")
    with h5py.File(shd_folder / "shd_test.h5") as f:
        first = np.sort(f["spikes/times"][0]) * 1000
        assert np.allclose(dataset.test.events(0)[0], first, atol=1e-3)
        assert dataset.test.labels[0] == f["labels"][0]
    assert 200 < dataset.duration_ms <= 350
    again = load_dataset("shd", data_path=str(shd_folder), seed=1)
    assert not np.array_equal(again.validation.labels, dataset.validation.labels)
    assert sorted(np.concatenate([again.train.labels, again.validation.labels])) == sorted(
        np.concatenate([dataset.train.labels, dataset.validation.labels])
    )
    # the train file alone names the folder's files too
    by_file = load_dataset("shd", data_path=str(shd_folder / "shd_train.h5"))
    assert len(by_file.test) == 100


def problems_for(options: dict) -> list:
    config = experiment.reference_config("shd")
    config.dataset_options = options
    return [(p.path, p.message) for p in experiment.config_problems(config)]


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda f: f.pop("spikes/times"), "has no 'spikes/times' dataset"),
        (lambda f: f.pop("labels"), "has no 'labels' dataset"),
        (
            lambda f: f["spikes/units"].__setitem__(3, f["spikes/units"][3] + 700),
            r"spikes/units\[3\] must be channels in \[0, 699\]",
        ),
        (
            lambda f: f["spikes/times"].__setitem__(5, f["spikes/times"][5] - 1),
            r"times\[5\] must be finite seconds",
        ),
        (
            lambda f: f["spikes/times"].__setitem__(2, f["spikes/times"][2] * np.nan),
            r"times\[2\] must be finite seconds",
        ),
        (lambda f: f["labels"].__setitem__(0, 25), r"labels must lie in \[0, 19\]"),
    ],
)
def test_a_file_that_breaks_the_schema_is_refused_naming_the_field(
    shd_folder, tmp_path, corrupt, message
):
    shutil.copy(shd_folder / "shd_train.h5", tmp_path / "shd_train.h5")
    shutil.copy(shd_folder / "shd_test.h5", tmp_path / "shd_test.h5")
    with h5py.File(tmp_path / "shd_test.h5", "r+") as f:
        corrupt(f)
    [(path, text)] = problems_for({"data_path": str(tmp_path)})
    assert path == "dataset_options.data_path"
    assert text.startswith("shd_test.h5: ")
    assert re.search(message, text), text


def test_missing_and_packed_files_are_refused_with_what_to_do(shd_folder, tmp_path):
    [(path, text)] = problems_for({})
    assert path == "dataset_options.data_path" and "--data-path" in text
    [(_, text)] = problems_for({"data_path": str(tmp_path / "nothing")})
    assert "is not a file or folder" in text
    with (
        open(shd_folder / "shd_train.h5", "rb") as src,
        gzip.open(tmp_path / "shd_train.h5.gz", "wb") as dst,
    ):
        dst.write(src.read())
    [(_, text)] = problems_for({"data_path": str(tmp_path)})
    assert "unpack shd_train.h5.gz first" in text
    (tmp_path / "notes.h5").write_text("not hdf5")
    [(_, text)] = problems_for({"data_path": str(tmp_path / "notes.h5")})
    assert "not an HDF5 file" in text
    [(path, text)] = problems_for({"data_path": str(shd_folder), "size": 3})
    assert path == "dataset_options.size" and "allowed: data_path, seed" in text


def test_a_single_file_is_split_and_files_without_extras_load(tmp_path):
    write_shd_file(tmp_path / "words.h5", 200, seed=5, extra=False)
    dataset = load_dataset("shd", data_path=str(tmp_path / "words.h5"))
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (140, 20, 40)
    assert dataset.class_names[:3] == ("0", "1", "2")
    assert dataset.train.groups is None


def test_workbench_trains_on_an_shd_file_end_to_end(shd_folder, tmp_path):
    out = tmp_path / "run"
    command = [
        *WORKBENCH,
        "train",
        "--dataset",
        "shd",
        "--data-path",
        str(shd_folder),
        "--hidden",
        "64",
        "--n-steps",
        "150",
        "--epochs",
        "10",
        "--lr",
        "0.01",
        "--out",
        str(out),
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.6  # chance: 0.05
    config = json.loads((out / "config.json").read_text())
    assert config["dataset_options"] == {"data_path": str(shd_folder)}
    assert config["recurrent"] is True and config["encoder"]["name"] == "spikes"
    spec = json.loads((out / "spec.json").read_text())
    assert any(p["source"] == p["target"] == "hidden" for p in spec["projections"])
    evaluated = subprocess.run(
        [*WORKBENCH, "evaluate", str(out)], capture_output=True, text=True, check=True
    )
    assert json.loads(evaluated.stdout)["test_accuracy"] == metrics["test_accuracy"]
    refused = subprocess.run(
        [*WORKBENCH, "train", "--dataset", "shd", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "dataset_options.data_path" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "x").exists()
