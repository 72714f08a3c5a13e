"""Datasets, loaders and spike encoders: what a user of workbench.data relies on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.data import (
    DATASETS,
    ENCODERS,
    DeltaEncoder,
    LatencyEncoder,
    LogScaleEncoder,
    RateEncoder,
    TernaryEncoder,
    load_dataset,
    make_encoder,
    make_loaders,
    yinyang,
)

PUBLISHED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "yinyang"
PUBLISHED_SPLITS = [("train", 5000, 42), ("validation", 1000, 41), ("test", 1000, 40)]


def _published(split: str) -> tuple[np.ndarray, np.ndarray]:
    if not PUBLISHED.is_dir():
        pytest.skip(f"published Yin-Yang arrays not found at {PUBLISHED}")
    return np.load(PUBLISHED / f"{split}_samples.npy"), np.load(PUBLISHED / f"{split}_labels.npy")


def _yinyang_rule(samples: np.ndarray) -> np.ndarray:
    """Labels from the geometry, vectorised: 2 in a dot; 1 in the left small disc (outside
    its dot) or in the upper half outside the right small disc; else 0."""
    x, y = samples[:, 0], samples[:, 1]
    d_right = np.hypot(x - 0.75, y - 0.5)
    d_left = np.hypot(x - 0.25, y - 0.5)
    dot = (d_right < 0.1) | (d_left < 0.1)
    one = (d_left <= 0.25) | ((y > 0.5) & (d_right > 0.25))
    return np.where(dot, 2, one.astype(np.int64))


# ---------------------------------------------------------------------------- Yin-Yang


@pytest.mark.parametrize(("split", "size", "seed"), PUBLISHED_SPLITS)
def test_yinyang_reproduces_published_split_exactly(split, size, seed):
    samples, labels = yinyang(size, seed)
    published_samples, published_labels = _published(split)
    assert samples.dtype == np.float64 and samples.shape == (size, 4)
    assert labels.dtype == np.int64 and labels.shape == (size,)
    assert np.array_equal(samples, published_samples)
    assert np.array_equal(labels, published_labels)


def test_yinyang_dataset_defaults_are_the_published_splits():
    dataset = load_dataset("yinyang")
    assert (dataset.n_features, dataset.n_classes) == (4, 3)
    assert dataset.class_names == ("yin", "yang", "dot")
    for split, _, _ in PUBLISHED_SPLITS:
        samples, labels = _published(split)
        assert np.array_equal(getattr(dataset, split).features, samples)
        assert np.array_equal(getattr(dataset, split).labels, labels)


def test_yinyang_other_seed_gives_new_balanced_data_consistent_with_geometry():
    samples, labels = yinyang(3000, seed=7)
    test_samples, _ = yinyang(1000, 40)
    assert not np.array_equal(samples[:1000], test_samples)
    # each class about 1/3: tolerance 0.04 is ~4.6 binomial standard deviations at n = 3000
    fractions = np.bincount(labels, minlength=3) / len(labels)
    assert np.all(np.abs(fractions - 1 / 3) < 0.04), fractions
    # every point lies in the big circle, mirrors are exact, labels follow the geometry
    assert np.all(np.hypot(samples[:, 0] - 0.5, samples[:, 1] - 0.5) <= 0.5)
    assert np.array_equal(samples[:, 2:], 1.0 - samples[:, :2])
    assert np.array_equal(labels, _yinyang_rule(samples))
    assert np.all((samples >= 0) & (samples <= 1))


def test_yinyang_rule_matches_published_labels():
    samples, labels = _published("train")
    assert np.array_equal(_yinyang_rule(samples), labels)


def test_yinyang_returns_fresh_arrays_each_call():
    samples, labels = yinyang(50, 3)
    samples[:] = -1.0
    labels[:] = -1
    again, again_labels = yinyang(50, 3)
    assert again.min() >= 0 and again_labels.min() >= 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"size": 0, "seed": 1}, "size"),
        ({"size": 10, "seed": -1}, "seed"),
        ({"size": 10, "seed": 1, "r_small": 0.0}, "r_small"),
        ({"size": 10, "seed": 1, "r_small": 0.3}, "r_small"),
        ({"size": 10, "seed": 1, "r_big": -0.5}, "r_big"),
    ],
)
def test_yinyang_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        yinyang(**kwargs)


# ---------------------------------------------------------------------------- registry


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match="digits"):
        load_dataset("mnist")
    assert {"yinyang", "digits"} <= set(DATASETS)


def test_yinyang_sizes_and_seeds_are_configurable():
    dataset = load_dataset("yinyang", train_size=300, validation_size=60, test_size=90, test_seed=5)
    assert [len(s) for s in (dataset.train, dataset.validation, dataset.test)] == [300, 60, 90]
    assert np.array_equal(dataset.test.labels, yinyang(90, 5)[1])


def test_digits_split_is_stratified_seeded_and_scaled():
    dataset = load_dataset("digits", seed=0)
    sizes = [len(dataset.train), len(dataset.validation), len(dataset.test)]
    assert sizes == [1257, 180, 360] and sum(sizes) == 1797
    assert (dataset.n_features, dataset.n_classes) == (64, 10)
    all_labels = np.concatenate([dataset.train.labels, dataset.validation.labels])
    all_labels = np.concatenate([all_labels, dataset.test.labels])
    overall = np.bincount(all_labels, minlength=10) / len(all_labels)
    for split in (dataset.train, dataset.validation, dataset.test):
        assert split.features.shape[1] == 64 and split.labels.dtype == np.int64
        assert split.features.min() >= 0 and split.features.max() <= 1
        counts = np.bincount(split.labels, minlength=10)
        assert np.all(np.abs(counts - overall * len(split)) <= 1.5), counts
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    assert np.array_equal(again.test.features, dataset.test.features)
    assert not np.array_equal(other.test.features, dataset.test.features)


# ---------------------------------------------------------------------------- loaders


def _train_labels(loader) -> list[list[int]]:
    return [labels.tolist() for _, labels in loader]


def test_loaders_repeat_batch_order_for_the_same_seed():
    dataset = load_dataset("yinyang", train_size=200, validation_size=30, test_size=30)
    first = make_loaders(dataset, batch_size=32, seed=3)
    second = make_loaders(dataset, batch_size=32, seed=3)
    other = make_loaders(dataset, batch_size=32, seed=4)
    # epoch after epoch, the same seed gives the same batches; each epoch is reshuffled
    epochs = [_train_labels(first["train"]) for _ in range(2)]
    assert epochs == [_train_labels(second["train"]) for _ in range(2)]
    assert epochs[0] != epochs[1]
    assert epochs[0] != _train_labels(other["train"])
    features, labels = next(iter(other["test"]))
    assert features.dtype == torch.float32 and labels.dtype == torch.int64
    assert features.shape == (30, 4)
    # validation and test keep the data set's order
    validation = torch.cat([f for f, _ in first["validation"]])
    assert torch.equal(validation, torch.as_tensor(dataset.validation.features).float())
    assert set(first) == {"train", "validation", "test"}
    with pytest.raises(ValueError, match="batch_size"):
        make_loaders(dataset, batch_size=0, seed=1)


# ---------------------------------------------------------------------------- latency


def _latency(**overrides) -> LatencyEncoder:
    params = dict(n_steps=101, dt=0.1, t_early=0.5, t_late=9.5, bias_time=4.0)
    return LatencyEncoder(**(params | overrides))


def test_latency_one_spike_per_channel_at_the_right_step_with_bias():
    encoder = _latency()
    features = torch.tensor([[0.0, 0.5, 1.0, 0.25]])
    spikes = encoder(features)
    assert spikes.shape == (101, 1, 5) and encoder.n_channels(4) == 5
    assert spikes.dtype == torch.float32
    assert torch.equal(spikes.sum(0), torch.ones(1, 5))
    # t = 0.5 + x * 9 ms -> steps 5, 50, 95, 27.5 -> 28 (round half to even); bias 4 ms -> 40
    assert spikes.argmax(0).tolist() == [[5, 50, 95, 28, 40]]


def test_latency_spike_times_agree_with_raster():
    encoder = _latency()
    features = torch.rand(64, 4, generator=torch.Generator().manual_seed(0))
    times = encoder.spike_times(features)
    spikes = encoder(features)
    assert times.shape == (64, 5)
    assert torch.all(times[:, :4] >= 0.5) and torch.all(times[:, :4] <= 9.5)
    assert torch.all(times[:, 4] == 4.0)
    assert torch.equal(spikes.argmax(0), torch.round(times / encoder.dt).long())
    assert torch.equal(spikes.sum(0), torch.ones(64, 5))


def test_latency_invert_and_silent_below():
    encoder = _latency(bias_time=None, silent_below=0.05, invert=True)
    features = torch.tensor([[0.0, 0.04, 0.5, 1.0]])
    spikes = encoder(features)
    times = encoder.spike_times(features)
    assert spikes.shape == (101, 1, 4)
    assert spikes.sum(0).tolist() == [[0.0, 0.0, 1.0, 1.0]]
    assert torch.isnan(times[0, :2]).all()
    assert spikes[:, 0, 2:].argmax(0).tolist() == [50, 5]  # large values spike early


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"n_steps": 0}, "n_steps"),
        ({"dt": 0.0}, "dt"),
        ({"t_late": 20.0}, "t_late"),
        ({"t_early": 9.5}, "t_early"),
        ({"bias_time": 11.0}, "bias_time"),
        ({"silent_below": 1.5}, "silent_below"),
    ],
)
def test_latency_bad_parameters_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        _latency(**overrides)


def test_encoders_reject_features_outside_unit_range():
    with pytest.raises(ValueError, match="features"):
        _latency()(torch.tensor([[1.5, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="features"):
        RateEncoder(n_steps=5, dt=1.0, max_rate_hz=100.0)(torch.tensor([[-0.1]]))


# ---------------------------------------------------------------------------- rate


def test_rate_encoder_mean_rate_matches_request():
    encoder = RateEncoder(n_steps=1000, dt=1.0, max_rate_hz=200.0, seed=1)
    features = torch.tensor([[0.0, 0.5, 1.0]]).repeat(20, 1)
    spikes = encoder(features)
    assert spikes.shape == (1000, 20, 3)
    rate_hz = spikes.mean(dim=(0, 1)) * 1000.0 / encoder.dt
    # 20000 Bernoulli trials per feature: 5 % is >= 4 standard deviations at 100 Hz and 200 Hz
    assert rate_hz[0] == 0
    assert abs(rate_hz[1] - 100.0) < 5.0
    assert abs(rate_hz[2] - 200.0) < 10.0


def test_rate_encoder_is_repeatable_with_the_same_seed():
    features = torch.full((4, 3), 0.5)
    first = RateEncoder(n_steps=50, dt=1.0, max_rate_hz=300.0, seed=5)
    second = RateEncoder(n_steps=50, dt=1.0, max_rate_hz=300.0, seed=5)
    other = RateEncoder(n_steps=50, dt=1.0, max_rate_hz=300.0, seed=6)
    a, b = first(features), first(features)
    assert torch.equal(a, second(features)) and torch.equal(b, second(features))
    assert not torch.equal(a, b)  # fresh noise on each call
    assert not torch.equal(a, other(features))
    first.reset()
    assert torch.equal(first(features), a)
    generator = torch.Generator().manual_seed(9)
    c = first(features, generator=generator)
    assert torch.equal(c, first(features, generator=torch.Generator().manual_seed(9)))


def test_rate_encoder_rejects_probability_above_one():
    with pytest.raises(ValueError, match="max_rate_hz"):
        RateEncoder(n_steps=10, dt=1.0, max_rate_hz=1500.0)


# ---------------------------------------------------------------------------- delta


def test_delta_encoder_tracks_a_slow_sine_within_threshold():
    t = torch.arange(400, dtype=torch.float64)
    signal = torch.stack([0.5 * torch.sin(2 * math.pi * t / 200), 0.3 * torch.cos(t / 40)], -1)
    signal = signal.unsqueeze(1).repeat(1, 3, 1)  # [400, 3, 2]
    encoder = DeltaEncoder(threshold=0.05)
    spikes = encoder(signal)
    assert spikes.shape == (400, 3, 4) and encoder.n_channels(2) == 4
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert not torch.any((spikes[..., :2] > 0) & (spikes[..., 2:] > 0))
    reconstruction = encoder.decode(spikes, signal[0])
    assert (reconstruction - signal).abs().max() <= 0.05 + 1e-12
    # about one event per threshold of travelled distance
    travelled = signal[1:, 0, 0].sub(signal[:-1, 0, 0]).abs().sum()
    assert abs(spikes[:, 0, [0, 2]].sum() - travelled / 0.05) <= 4


def test_delta_encoder_bad_threshold_and_shape():
    with pytest.raises(ValueError, match="threshold"):
        DeltaEncoder(threshold=0.0)
    with pytest.raises(ValueError, match="signal"):
        DeltaEncoder(threshold=0.1)(torch.zeros(5, 2))


# ---------------------------------------------------------------------------- ternary / log


def test_ternary_encoder_values_and_shapes():
    encoder = TernaryEncoder(n_steps=3, thresholds=(0.5, 1.0))
    features = torch.tensor([[-1.2, -0.7, 0.2, 0.6, 1.5]])
    spikes = encoder(features)
    assert spikes.shape == (3, 1, 10) and encoder.n_channels(5) == 10
    expected = [-1, -1, -1, 0, 0, 0, 1, 0, 1, 1]
    assert spikes[0, 0].tolist() == expected
    assert torch.equal(spikes[0], spikes[2])  # static input repeats over n_steps
    # coded once and repeated: the same as coding the input repeated as a series, and a
    # tensor of its own (writing one step changes no other)
    repeated = features.unsqueeze(0).expand(3, *features.shape)
    assert torch.equal(spikes, encoder(repeated)) and spikes.is_contiguous()
    assert not torch.signbit(encoder(torch.tensor([[-0.0, -0.2]]))).any()  # no -0
    series = torch.randn(7, 2, 5, generator=torch.Generator().manual_seed(0))
    assert encoder(series).shape == (7, 2, 10)  # a series keeps its own length
    with pytest.raises(ValueError, match="thresholds"):
        TernaryEncoder(thresholds=(0.5, -1.0))


def test_log_scale_encoder_values_and_shapes():
    encoder = LogScaleEncoder(n_steps=2, n_levels=3, x_max=1.0, base=2.0)
    assert encoder.thresholds == (0.5, 0.25, 0.125)
    spikes = encoder(torch.tensor([[0.3, -0.6, 0.1]]))
    assert spikes.shape == (2, 1, 18) and encoder.n_channels(3) == 18
    per_feature = spikes[0, 0].reshape(3, 2, 3).tolist()  # [feature, sign, level]
    assert per_feature[0] == [[0, 1, 1], [0, 0, 0]]
    assert per_feature[1] == [[0, 0, 0], [1, 1, 1]]
    assert per_feature[2] == [[0, 0, 0], [0, 0, 0]]
    assert encoder(torch.zeros(5, 4, 3)).shape == (5, 4, 18)
    with pytest.raises(ValueError, match="base"):
        LogScaleEncoder(base=1.0)


# ---------------------------------------------------------------------------- encoder registry


def test_make_encoder_builds_by_name_and_checks_parameters():
    assert set(ENCODERS) == {"latency", "rate", "delta", "ternary", "log_scale", "spikes"}
    encoder = make_encoder("rate", n_steps=10, dt=1.0, max_rate_hz=100.0, seed=2)
    assert isinstance(encoder, RateEncoder)
    with pytest.raises(ValueError, match="latency"):
        make_encoder("poisson")
    with pytest.raises(ValueError, match="tau"):
        make_encoder("rate", n_steps=10, dt=1.0, max_rate_hz=100.0, tau=3)
    with pytest.raises(ValueError, match="threshold"):
        make_encoder("delta")
