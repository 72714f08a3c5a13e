"""Desire backpropagation (``desire``): the rule against hand-computed desires, errors and weight
changes, the ternary thresholds, the network it trains, events, stopping, repeatability,
settings, a short run on digits and the command line."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from workbench import experiment
from workbench.algorithms import get_algorithm
from workbench.algorithms.desire import (
    DesireConfig,
    desire_updates,
    fit,
    network_layers,
    output_desire,
    presynaptic_trace,
    propagate_desire,
    signed_error,
    spike_rates,
)
from workbench.backends import build
from workbench.data import Dataset, RateEncoder, Split, load_dataset
from workbench.experiment import TrainingData, prepare, reference_config, training_config
from workbench.spec import SpecError, feedforward
from workbench.store import Checkpoint
from workbench.training import BatchEnd, EpochEnd, RunEnd, RunStart, SampleRecorded, StopSignal

F64 = torch.float64
HALF = 1.0 / math.log(2.0)  # tau_trace (ms) whose trace decays by 1/2 per 1 ms step


def train(T, *steps_per_neuron):
    """Spike trains ``[T, 1, n]`` with neuron k spiking at the steps ``steps_per_neuron[k]``."""
    z = torch.zeros(T, 1, len(steps_per_neuron), dtype=F64)
    for k, steps in enumerate(steps_per_neuron):
        z[list(steps), 0, k] = 1.0
    return z


# ------------------------------------------------------------------------------ the rule


def test_one_step_of_the_rule_equals_the_hand_computed_desires_and_changes():
    # 2 inputs -> 2 hidden -> 2 outputs, T = 5 steps, error margin 1 (4 spikes are a rate of 1)
    z0 = train(5, range(5), [1])  # input 0 every step, input 1 at step 1
    z1 = train(5, [1, 3], [2])  # hidden 0 at steps 1 and 3, hidden 1 at step 2
    z2 = train(5, [2], [1, 2, 3, 4])  # output 0 once, output 1 four times
    w1 = torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=F64)  # not used by the desire
    w2 = torch.tensor([[0.5, -0.2], [0.3, 0.4]], dtype=F64)
    label = torch.tensor([0])
    config = DesireConfig(error_margin=1, output_threshold=0.3, hidden_threshold=0.1)

    # rates r = n / (T - m): output [1/4, 4/4]; errors: label 1 - 1/4 = 0.75, other 1 > 0.3
    assert spike_rates(z2, 1).tolist() == [[0.25, 1.0]]
    # output desire: [+1, -1]; signed errors delta = d |[d > 0] - r| = [0.75, -1]
    # sigma = delta @ W2 = [0.75 * 0.5 - 1 * 0.3, 0.75 * -0.2 - 1 * 0.4] = [0.075, -0.55]
    # hidden desire with theta 0.1: [0 (|0.075| < 0.1), -1]
    decay = math.exp(-1.0 / HALF)
    changes, desires = desire_updates([w1, w2], [z0, z1, z2], label, [0, 0], decay, config)
    assert desires[1].tolist() == [[1.0, -1.0]]
    assert desires[0].tolist() == [[0.0, -1.0]]
    # traces (decay 1/2, same step): input 0 [1, 1.5, 1.75, 1.875, 1.9375], input 1
    # [0, 1, .5, .25, .125]; hidden 0 [0, 1, .5, 1.25, .625], hidden 1 [0, 0, 1, .5, .25]
    # dW1: hidden 0 has no desire; hidden 1 (-1) spikes at step 2: -[1.75, 0.5]
    assert torch.allclose(changes[0], torch.tensor([[0.0, 0.0], [-1.75, -0.5]], dtype=F64))
    # dW2: output 0 (+1) at step 2: +[0.5, 1]; output 1 (-1) at steps 1-4:
    # -[1 + .5 + 1.25 + .625, 0 + 1 + .5 + .25] = -[3.375, 1.75]
    expected = torch.tensor([[0.5, 1.0], [-3.375, -1.75]], dtype=F64)
    assert torch.allclose(changes[1], expected, rtol=1e-12, atol=0)

    # a lower hidden threshold (0.05) gives hidden 0 its desire (+1): spikes at steps 1 and 3
    # take the input traces of those steps, +[1.5 + 1.875, 1 + 0.25]
    config = dataclasses.replace(config, hidden_threshold=0.05)
    changes, desires = desire_updates([w1, w2], [z0, z1, z2], label, [0, 0], decay, config)
    assert desires[0].tolist() == [[1.0, -1.0]]
    expected = torch.tensor([[3.375, 1.25], [-1.75, -0.5]], dtype=F64)
    assert torch.allclose(changes[0], expected, rtol=1e-12, atol=0)


def test_the_desire_reaches_the_first_hidden_layer_through_every_layer_above():
    g = torch.Generator().manual_seed(0)
    sizes, T = [3, 4, 5, 2], 6
    spikes = [(torch.rand(T, 2, n, generator=g) < 0.5).to(F64) for n in sizes]
    weights = [torch.randn(b, a, generator=g, dtype=F64) for a, b in zip(sizes, sizes[1:])]
    labels = torch.tensor([1, 0])
    config = DesireConfig(error_margin=2, output_threshold=0.2, hidden_threshold=0.3)
    _, desires = desire_updates(weights, spikes, labels, [1, 1, 1], 0.5, config)
    rates = [spikes[k].sum(0) / (T - 2) for k in (1, 2, 3)]
    d3 = output_desire(rates[2], labels, 0.2)
    d2 = propagate_desire(d3, rates[2], weights[2], 0.3)
    d1 = propagate_desire(d2, rates[1], weights[1], 0.3)
    for got, want in zip(desires, [d1, d2, d3]):
        assert torch.equal(got, want)
    # by hand for one neuron: sigma = sum_i W_ij d_i |[d_i > 0] - r_i|
    sigma = (weights[1][:, 0] * d2[0] * ((d2[0] > 0).to(F64) - rates[1][0]).abs()).sum()
    assert d1[0, 0] == (torch.sign(sigma) if sigma.abs() >= 0.3 else 0)


def test_desires_are_ternary_with_their_thresholds():
    rates = torch.tensor([[0.75, 0.25, 0.5, 0.0], [0.5, 0.0, 1.0, 0.25]], dtype=F64)
    labels = torch.tensor([0, 0])
    # the label's error is 1 - r, the others' is r; a desire needs an error > theta (strictly)
    assert output_desire(rates, labels, 0.25).tolist() == [[0, 0, -1, 0], [1, 0, -1, 0]]
    assert output_desire(rates, labels, 0.0).tolist() == [[1, -1, -1, 0], [1, 0, -1, -1]]
    # a hidden desire is the sign of sigma where |sigma| >= theta (equal counts), else 0
    desire = torch.tensor([[1.0, -1.0, 0.0]], dtype=F64)
    r = torch.tensor([[0.5, 0.25, 0.875]], dtype=F64)
    assert signed_error(desire, r).tolist() == [[0.5, -0.25, 0.0]]
    w = torch.tensor(
        [[0.5, 0.25, -0.375, 0.0], [1.0, 0.5, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]], dtype=F64
    )
    # sigma = 0.5 w0 - 0.25 w1 = [0, 0, -0.1875, 0]; the third neuron (no desire) adds nothing
    assert propagate_desire(desire, r, w, 0.1875).tolist() == [[0, 0, -1, 0]]
    assert propagate_desire(desire, r, w, 0.19).tolist() == [[0, 0, 0, 0]]
    w[0, 0] = 0.875  # sigma_0 = 0.4375 - 0.25 = 0.1875
    assert propagate_desire(desire, r, w, 0.1875).tolist() == [[1, 0, -1, 0]]


def test_the_trace_follows_the_spikes_as_they_reach_the_membrane():
    z = train(5, [0, 1], [3])
    assert presynaptic_trace(z, 0.5)[:, 0].tolist() == [
        [1.0, 0.0],
        [1.5, 0.0],
        [0.75, 0.0],
        [0.375, 1.0],
        [0.1875, 0.5],
    ]
    # lif: an input spike moves the membrane one step later, so its trace starts a step later
    late = presynaptic_trace(z, 0.5, latency=1)[:, 0, 0].tolist()
    assert late == [0.0, 1.0, 1.5, 0.75, 0.375]


# ------------------------------------------------------------------------------ the network


def tiny_task(features, labels, n_steps):
    """A two-class task whose few samples are also its validation and test splits, and an
    encoder that makes a feature of 1 spike every step (0: never)."""
    split = Split(np.asarray(features, np.float32), np.asarray(labels, np.int64))
    n_features = split.features.shape[1]
    dataset = Dataset("tiny", split, split, split, n_features, 2, ("a", "b"))
    return TrainingData(dataset, RateEncoder(n_steps=n_steps, dt=1.0, max_rate_hz=1000.0), 0)


def test_one_online_step_on_an_if_network_changes_the_weights_as_computed_by_hand():
    # 2 inputs (spiking every step) -> 2 IF hidden -> 2 IF outputs, T = 4, margin 0.
    spec = feedforward([2, 2, 2], "if", "if", {}, {}, n_steps=4)
    w1, w2 = [[0.5, 0.0], [0.2, 0.2]], [[1.0, -0.5], [0.6, 0.6]]
    spec.projections[0].weights, spec.projections[1].weights = w1, w2
    net = build(spec, dtype=F64)
    # hidden 0: V += 0.5 a step, spikes at steps 1 and 3; hidden 1: V += 0.4, spikes at step 2
    # output 0: +1 at step 1 (spike), -0.5 at 2, +1 at 3 (V = 0.5): one spike, at step 1
    # output 1: +0.6 at 1, +0.6 at 2 (spike, V = 0.2), +0.6 at 3 (0.8): one spike, at step 2
    run = net(torch.ones(4, 1, 2, dtype=F64), record=True).recordings
    assert run["hidden"]["spikes"][:, 0].tolist() == [[0, 0], [1, 0], [0, 1], [1, 0]]
    assert run["output"]["spikes"][:, 0].tolist() == [[0, 0], [1, 0], [0, 1], [0, 0]]
    # label 0; rates [1/4, 1/4]; errors [0.75, 0.25] > 0.2: desires [+1, -1]
    # delta = [0.75, -0.25]; sigma = [0.75 - 0.15, -0.375 - 0.15] = [0.6, -0.525]: [+1, -1]
    # input traces (decay 1/2): [1, 1.5, 1.75, 1.875] for both inputs
    # dW1 = [+(1.5 + 1.875), -(1.75)] per input
    # hidden traces: hidden 0 [0, 1, .5, 1.25], hidden 1 [0, 0, 1, .5]
    # dW2 = [+[1, 0] (output 0 at step 1), -[0.5, 1] (output 1 at step 2)]
    lr = 0.01
    config = DesireConfig(
        epochs=1,
        lr=lr,
        lr_decay=0.5,  # not in the first epoch
        error_margin=0,
        output_threshold=0.2,
        hidden_threshold=0.05,
        tau_trace=HALF,
        sample_every=0,
    )
    history = fit(net, tiny_task([[1.0, 1.0]], [0], 4), config)
    d1 = torch.tensor([[3.375, 3.375], [-1.75, -1.75]], dtype=F64)
    d2 = torch.tensor([[1.0, 0.0], [-0.5, -1.0]], dtype=F64)
    assert torch.allclose(
        net.weights["input__hidden"].detach(), torch.tensor(w1, dtype=F64) + lr * d1
    )
    assert torch.allclose(
        net.weights["hidden__output"].detach(), torch.tensor(w2, dtype=F64) + lr * d2
    )
    row = history.rows[0]
    assert row["lr"] == lr and row["output_desire_fraction"] == 1.0
    assert row["hidden_desire_fraction"] == 1.0
    assert row["train_accuracy"] == 1.0  # a tie (1 spike each) goes to the first, the label
    # layer_lr: one rate per projection (0 freezes the first)
    net = build(spec, dtype=F64)
    fit(net, tiny_task([[1.0, 1.0]], [0], 4), dataclasses.replace(config, layer_lr=[0.0, 0.1]))
    assert torch.equal(net.weights["input__hidden"].detach(), torch.tensor(w1, dtype=F64))
    assert torch.allclose(
        net.weights["hidden__output"].detach(), torch.tensor(w2, dtype=F64) + 0.1 * d2
    )


def test_only_a_chain_of_lif_or_if_populations_is_trained():
    config = DesireConfig(epochs=1, sample_every=0)
    task = tiny_task([[1.0, 1.0]], [0], 4)
    cases = [
        (
            feedforward([2, 3, 2], "lif", "li", n_steps=4),
            r"populations\[1\].model: 'li' \(output\)",
        ),
        (feedforward([2, 3, 2], "alif", "lif", n_steps=4), r"populations\[0\].model: 'alif'"),
        (
            feedforward([2, 3, 2], "lif", "lif", n_steps=4, recurrent=True),
            r"projections\[2\]: hidden->hidden is recurrent",
        ),
    ]
    for spec, message in cases:
        with pytest.raises(SpecError, match=message):
            fit(build(spec), task, config)
    spec = feedforward([2, 3, 2], "if", "if", n_steps=4)
    with pytest.raises(SpecError, match=r"error_margin: 4 must be < n_steps \(4\)"):
        fit(build(spec), task, dataclasses.replace(config, error_margin=4))
    with pytest.raises(SpecError, match=r"layer_lr: has 3 entries; the network has 2"):
        fit(build(spec), task, dataclasses.replace(config, layer_lr=[0.1, 0.1, 0.1]))
    layers = network_layers(feedforward([2, 3, 4, 2], "lif", "if", n_steps=4).validate())
    assert [(x.source, x.target, x.latency) for x in layers] == [
        ("input", "hidden1", 1),
        ("hidden1", "hidden2", 1),
        ("hidden2", "output", 0),
    ]


def test_bad_settings_name_the_field_and_the_range():
    with pytest.raises(SpecError, match=r"epochs: 0 must be an integer >= 1"):
        fit(None, None, DesireConfig(epochs=0))
    problems = [
        str(p)
        for p in DesireConfig(
            batch_size=0,
            error_margin=-1,
            lr=0.0,
            hidden_threshold=float("nan"),
            tau_trace=-2,
            lr_decay=-0.1,
            output_threshold=1.0,
            layer_lr=[0.1, -1],
            readout="max_membrane",
        ).problems()
    ]
    assert problems == [
        "batch_size: 0 must be an integer >= 1",
        "error_margin: -1 must be an integer >= 0",
        "lr: 0.0 must be a finite number > 0",
        "hidden_threshold: nan must be a finite number > 0",
        "tau_trace: -2 must be a finite number > 0",
        "lr_decay: -0.1 must be a finite number >= 0",
        "output_threshold: 1.0 must be a number in [0, 1)",
        "layer_lr[1]: -1 must be a finite number >= 0",
        "readout: 'max_membrane' must be one of ['spike_count']",
    ]
    assert [str(p) for p in DesireConfig(layer_lr=[]).problems()] == [
        "layer_lr: [] must be null or a non-empty list of numbers"
    ]
    config = reference_config("digits", "desire")
    config.training["surrogate_scale"] = 5.0
    with pytest.raises(SpecError, match=r"training.surrogate_scale: is not a setting of 'desire'"):
        training_config(config)
    config.training = {"output_threshold": -0.5}
    with pytest.raises(SpecError, match=r"training.output_threshold: -0.5 must be a number in"):
        training_config(config)


# ------------------------------------------------------------------------------ fit on digits


@pytest.fixture(scope="module")
def small_task():
    digits = load_dataset("digits")

    def head(split, n):
        return Split(split.features[:n], split.labels[:n])

    dataset = dataclasses.replace(
        digits,
        train=head(digits.train, 300),
        validation=head(digits.validation, 60),
        test=head(digits.test, 60),
    )
    return TrainingData(dataset, RateEncoder(n_steps=20, dt=1.0, max_rate_hz=1000.0, seed=2), 3)


def small_network(hidden=(100,), seed=0):
    """The digits reference's neurons and initialisation, smaller."""
    reference = reference_config("digits", "desire")
    sizes = [64, *hidden, 10]
    spec = feedforward(
        sizes, "lif", "lif", reference.neuron_params, reference.readout_params, n_steps=20
    )
    for proj, fan_in in zip(spec.projections, sizes):
        proj.weight_std = math.sqrt(2 / fan_in)
    return build(spec, seed=seed)


SMALL = {"batch_size": 10, "lr": 2e-4, "output_threshold": 0.1, "sample_every": 0}


def test_a_short_run_on_digits_learns_far_above_chance(small_task):
    net = small_network()
    history = fit(net, small_task, DesireConfig(epochs=3, **SMALL))
    assert history.best_epoch is not None
    last = history.rows[-1]
    assert last["train_accuracy"] > 0.5 and last["val_accuracy"] > 0.5  # chance: 0.1
    # two hidden layers: the desire reaches the first of them
    net = small_network(hidden=(40, 20))
    history = fit(net, small_task, DesireConfig(epochs=5, **{**SMALL, "lr": 3e-4}))
    assert history.rows[-1]["val_accuracy"] > 0.4
    assert 0 < history.rows[-1]["hidden_desire_fraction"] < 1


def test_on_an_emulated_chip_the_stored_float_weights_learn(small_task):
    # hardware in the loop: the chip's spikes and weights drive the rule, the stored float
    # weights (which the chip reads again) change
    reference = small_network()
    net = build(reference.spec, "crossbar", seed=0)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    history = fit(net, small_task, DesireConfig(epochs=3, **SMALL))
    after = net.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)
    assert history.rows[-1]["val_accuracy"] > 0.4  # chance: 0.1


def test_same_seed_gives_the_same_history_and_weights(small_task):
    config = DesireConfig(epochs=1, **SMALL)
    runs = []
    for _ in range(2):
        net = small_network()
        small_task.encoder.reset()
        history = fit(net, small_task, config)
        runs.append((history.table.drop(columns="seconds"), net.state_dict()))
    assert runs[0][0].equals(runs[1][0])
    for key in runs[0][1]:
        assert torch.equal(runs[0][1][key], runs[1][1][key])
    other = small_network(seed=1)  # another initialisation learns other weights
    small_task.encoder.reset()
    fit(other, small_task, config)
    assert not torch.equal(
        other.state_dict()["weights.input__hidden"], runs[0][1]["weights.input__hidden"]
    )


def test_every_event_reaches_every_callback_and_stop_ends_the_run(small_task):
    seen = []
    config = DesireConfig(epochs=2, **{**SMALL, "batch_size": 50, "sample_every": 3})
    history = fit(small_network(), small_task, config, [seen.append])
    kinds = [type(e) for e in seen]
    assert kinds[0] is RunStart and kinds[-1] is RunEnd
    assert seen[0].algorithm == "desire" and seen[0].batches_per_epoch == 6
    assert kinds.count(BatchEnd) == 12 and kinds.count(EpochEnd) == 2
    batches = [e for e in seen if isinstance(e, BatchEnd)]
    assert all(math.isfinite(e.loss) and 0 <= e.accuracy <= 1 for e in batches)
    samples = [e for e in seen if isinstance(e, SampleRecorded)]
    assert len(samples) == 4  # batches 3 and 6 of each epoch
    rec = samples[0].recording
    assert isinstance(rec, xr.Dataset) and rec.sizes["sample"] == 1
    assert set(rec["population"].values) == {"hidden", "output"}
    row = history.rows[0]
    wanted = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert wanted | {"val_spikes_per_sample", "output_desire_fraction"} <= set(row)

    stop, count = StopSignal(), []

    def stop_after_two(event):
        if isinstance(event, BatchEnd):
            count.append(event.batch)
            if len(count) == 2:
                stop.set()

    history = fit(small_network(), small_task, config, [stop_after_two], stop)
    assert count == [1, 2] and history.stopped and len(history) == 1


def test_the_reference_configuration_builds_its_network():
    config = reference_config("digits", "desire")
    fields = {f.name for f in dataclasses.fields(get_algorithm("desire").config_class)}
    assert set(config.training) <= fields
    _, spec, net, hyper = prepare(config)
    assert [p.model for p in spec.populations] == ["lif", "lif"]
    assert spec.populations[0].params["tau_syn"] == 0.0
    assert hyper.readout == "spike_count" and spec.n_steps == 20
    assert net.neuron_params["hidden"].beta == pytest.approx(0.75)  # the authors' decay
    assert len(network_layers(spec)) == 2


def test_the_command_line_trains_desire_into_a_run_folder(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "train",
            "--algorithm",
            "desire",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--hidden",
            "30",
            "--batch-size",
            "8",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert {"spec.json", "config.json", "history.csv", "metrics.json", "manifest.json"} <= {
        p.name for p in out.iterdir()
    }
    config = json.loads((out / "config.json").read_text())
    assert config["algorithm"] == "desire" and config["hidden"] == [30]
    assert config["training"]["readout"] == "spike_count"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["test_accuracy"] > 0.2  # chance: 0.1


KILL_IN_EPOCH_2 = """
import os, signal, sys
import torch
from workbench import experiment
from workbench.training import BatchEnd

torch.set_num_threads(int(sys.argv[3]))
config = experiment.RunConfig.from_dict(__import__("json").loads(sys.argv[1]))

def kill(event):
    if isinstance(event, BatchEnd) and event.epoch == 2 and event.batch == 5:
        os.kill(os.getpid(), signal.SIGKILL)

experiment.train(config, callbacks=[kill], checkpoint=sys.argv[2])
"""


def test_killed_in_the_middle_of_an_epoch_resumes_to_the_same_weights(tmp_path):
    config = reference_config("digits", "desire", seed=2)
    config.hidden, config.training["epochs"] = [20], 2
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
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert killed.returncode == -signal.SIGKILL
    assert Checkpoint(folder).load()["epoch"] == 1
    resumed = experiment.resume(folder)
    reference = experiment.train(config)
    a, b = resumed.network.state_dict(), reference.network.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["test_accuracy"] == reference.metrics["test_accuracy"]
    assert len(resumed.history) == 2
