"""SSNN-BP (``ssnn_bp``): the spike streams and coincidence updates against hand-computed and
expected values, the WTA's soft-max statistics, the forward neuron against the network's own,
settings, a short digits fit, repeatability, events, stopping, resuming and the command line."""

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from workbench import experiment
from workbench.algorithms import ALGORITHMS, get_algorithm
from workbench.algorithms.ssnn_bp import (
    SSNNBPConfig,
    coincidences,
    encode_streams,
    error_streams,
    fit,
    network_layers,
    run_batch,
    shift_output,
    step_sizes,
    stochastic_if_step,
    wta_sample,
)
from workbench.backends import build
from workbench.data import RateEncoder, Split, load_dataset, make_loaders
from workbench.experiment import TrainingData, reference_config, training_config
from workbench.spec import SpecError, feedforward
from workbench.training import (
    BatchEnd,
    EpochEnd,
    RunEnd,
    RunStart,
    SampleRecorded,
    StopSignal,
    evaluate,
)

F64 = torch.float64
READOUT = {"tau_mem": 1e6, "tau_syn": 0.0}


def within(observed, expected, sd, n_sd=5.0):
    """``|observed - expected| <= n_sd * sd`` element-wise (a sampling tolerance)."""
    return bool(((observed - expected).abs() <= n_sd * sd + 1e-12).all())


# ------------------------------------------------------------------------------ the streams


def test_coincidences_count_same_step_pairs_signed_by_the_stream():
    # 4 steps; pre: 2 inputs; post: 2 neurons with a positive and a negative stream
    pre = torch.tensor([[1, 0], [1, 1], [0, 1], [1, 1]], dtype=F64)
    pos = torch.tensor([[1, 0], [0, 0], [1, 0], [1, 0]], dtype=F64)
    neg = torch.tensor([[0, 0], [0, 1], [0, 0], [0, 1]], dtype=F64)
    total = sum(coincidences(pos[t][None], neg[t][None], pre[t][None]) for t in range(4))
    # neuron 0 (+ at steps 0, 2, 3): input 0 fires at 0 and 3, input 1 at 2 and 3
    # neuron 1 (- at steps 1, 3): input 0 at 1 and 3, input 1 at 1 and 3
    assert total.tolist() == [[2.0, 2.0], [-2.0, -2.0]]


def test_streams_split_the_sign_and_fire_deterministically_at_rates_zero_and_one():
    g = torch.Generator().manual_seed(0)
    delta = torch.tensor([[0.5, -0.5, 0.0, 3.0, -2.0]], dtype=F64).repeat(1000, 1)
    pos, neg = encode_streams(delta, 2.0, g)  # rates 1, 1 (negative), 0, clipped 1, clipped 1
    assert (pos * neg).sum() == 0  # never both
    assert pos[:, [0, 3]].eq(1).all() and neg[:, [1, 4]].eq(1).all()
    assert pos[:, [1, 2, 4]].eq(0).all() and neg[:, [0, 2, 3]].eq(0).all()


def test_deterministic_streams_give_exactly_lr_delta_x():
    # pre spikes at k of T steps (rate x = k / T); delta = 1 / gain: the post stream fires
    # every step, so the update (dw_min = lr / gain per coincidence, over T) is lr delta x
    g = torch.Generator().manual_seed(0)
    n_steps, gain, lr = 10, 4.0, 0.3
    delta = torch.tensor([[1 / gain, -1 / gain]], dtype=F64)
    pre = torch.zeros(n_steps, 1, 3, dtype=F64)
    pre[:3, 0, 0] = 1  # x = 0.3
    pre[:7, 0, 1] = 1  # x = 0.7
    counts = torch.zeros(2, 3, dtype=F64)
    for t in range(n_steps):
        pos, neg = encode_streams(delta, gain, g)
        counts += coincidences(pos, neg, pre[t])
    x = pre.mean(dim=0)[0]
    dw = lr / (gain * n_steps) * counts
    assert torch.allclose(dw, lr * delta.T * x[None, :], rtol=1e-12, atol=0)


def test_stochastic_streams_estimate_delta_x_without_bias():
    g = torch.Generator().manual_seed(1)
    n_steps, gain = 20_000, 1.5
    delta = torch.tensor([[0.4, -0.3, 0.05, -0.6]], dtype=F64)
    x = torch.tensor([0.2, 0.9, 0.5], dtype=F64)
    counts = torch.zeros(4, 3, dtype=F64)
    for _ in range(n_steps // 1000):  # 1000 steps at a time: rows of a batch
        pre = (torch.rand(1000, 3, generator=g, dtype=F64) < x).to(F64)
        pos, neg = encode_streams(delta.repeat(1000, 1), gain, g)
        counts += coincidences(pos, neg, pre)
    estimate = counts / (gain * n_steps)
    expected = delta.T * x[None, :]
    # one step's term is in {-1, 0, 1} with mean gain delta x and mean square gain |delta| x
    variance = gain * delta.abs().T * x[None, :] - (gain * expected) ** 2
    assert within(estimate, expected, variance.sqrt() / (gain * math.sqrt(n_steps)))


def test_error_streams_are_positive_for_the_losing_label_and_negative_for_a_wrong_winner():
    target = F.one_hot(torch.tensor([2, 1]), 4).to(F64)
    winners = F.one_hot(torch.tensor([2, 3]), 4).to(F64)
    pos, neg = error_streams(winners, target)
    assert pos.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0]]  # sample 0: the label won, no error
    assert neg.tolist() == [[0, 0, 0, 0], [0, 0, 0, 1]]
    assert (pos - neg).sum(dim=1).tolist() == [0, 0]  # the streams balance over the classes


def test_wta_fires_one_neuron_per_step_at_softmax_frequencies():
    g = torch.Generator().manual_seed(2)
    n = 40_000
    logits = torch.tensor([1.0, -0.5, 2.0, 0.0], dtype=F64)
    spikes = wta_sample(logits.repeat(n, 1), g)
    assert spikes.sum(dim=1).eq(1).all()  # exactly one winner per step
    p = torch.softmax(logits, dim=0)
    assert within(spikes.mean(dim=0), p, (p * (1 - p) / n).sqrt())


def test_shifting_the_output_columns_keeps_the_softmax_and_makes_weights_nonnegative():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(5, 7, generator=g, dtype=F64)
    h = torch.rand(4, 7, generator=g, dtype=F64)
    shifted = w.clone()
    shift_output(shifted)
    assert (shifted >= 0).all() and (shifted.amin(dim=0) == 0).all()
    assert torch.allclose(torch.softmax(h @ shifted.T, 1), torch.softmax(h @ w.T, 1))
    e = F.one_hot(torch.tensor([0, 3, 1, 4]), 5).to(F64) - F.one_hot(torch.tensor([2, 3, 0, 1]), 5)
    assert torch.allclose(e @ shifted, e @ w)  # the backward streams see the same currents


# ------------------------------------------------------------------------------ the neuron


def tiny_spec(n_in=6, n_hidden=5, n_out=3, n_steps=30, hidden_params=None):
    return feedforward(
        [n_in, n_hidden, n_out], "if", "li", hidden_params or {}, READOUT, n_steps=n_steps
    )


def test_the_forward_neuron_without_noise_is_the_networks_if_neuron():
    g = torch.Generator().manual_seed(4)
    net = build(tiny_spec(), seed=1, dtype=F64)
    with torch.no_grad():
        net.weight(net.spec.projections[0]).mul_(2.0)
    x = (torch.rand(30, 8, 6, generator=g) < 0.5).to(F64)
    expected = net(x, record=["hidden"]).recordings["hidden"]["spikes"]
    w = net.weight(net.spec.projections[0]).detach()
    v, spikes = torch.zeros(8, 5, dtype=F64), []
    for t in range(30):
        v, s = stochastic_if_step(v, x[t] @ w.T, 1.0, 0.0, g)
        spikes.append(s)
    assert expected.sum() > 20 and torch.equal(torch.stack(spikes), expected)


@pytest.mark.parametrize("current", [-0.2, 0.0, 0.3, 0.75, 1.4])
def test_the_noisy_forward_neuron_fires_at_the_clipped_linear_rate(current):
    g = torch.Generator().manual_seed(5)
    n_steps, threshold = 2000, 0.5
    v = torch.zeros(100, 1, dtype=F64)
    count = torch.zeros_like(v)
    for _ in range(n_steps):
        v, s = stochastic_if_step(v, torch.full_like(v, current * threshold), threshold, 1.0, g)
        count += s
    rate = min(max(current, 0.0), 1.0)
    # reset by subtraction carries the remainder: a count within ~2 spikes of rate * T
    assert ((count / n_steps - rate).abs() <= 2.5 / n_steps).all()


def test_the_expected_update_is_the_gradient_of_the_wta_cross_entropy():
    """Inputs that spike at every step and no threshold noise make the forward pass
    deterministic; over many copies of one sample the mean coincidence counts approach the
    gradient of the step-averaged cross-entropy (times T), as the module docstring states."""
    g = torch.Generator().manual_seed(6)
    n_steps, copies, gain = 6, 20_000, 0.8
    w1 = torch.tensor([[0.3, 0.2], [0.5, -0.1], [-0.4, 0.1]], dtype=F64)
    w2 = torch.tensor([[0.6, -0.2, 0.3], [-0.1, 0.4, 0.2]], dtype=F64)
    x = torch.ones(n_steps, copies, 2, dtype=F64)
    x[::2, :, 1] = 0  # input 1 fires every other step
    labels = torch.zeros(copies, dtype=torch.long)
    config = SSNNBPConfig(gradient_gain=gain, threshold_noise=0.0)
    result = run_batch([w1, w2], [1.0], x, labels, config, g)
    # the same network by hand: deterministic hidden spikes, the WTA's expected errors
    v, z, drive = torch.zeros(3, dtype=F64), torch.zeros(2, dtype=F64), torch.zeros(3, dtype=F64)
    d2, d1 = torch.zeros_like(w2), torch.zeros_like(w1)
    y = torch.tensor([1.0, 0.0], dtype=F64)
    for t in range(n_steps):
        current = w1 @ x[t, 0]
        drive += current
        v = v + current
        h = (v >= 1).to(F64)
        v = v - h
        z = z + w2 @ h
        error = y - torch.softmax(z * n_steps / (t + 1), dim=0)
        gate = ((drive / (t + 1) > 0) & (drive / (t + 1) < 1)).to(F64)
        d2 += torch.outer(error, h)
        d1 += torch.outer(gate * (w2.T @ error), x[t, 0])
    assert d1.abs().sum() > 0.1 and d2.abs().sum() > 0.1
    mean2, mean1 = result.changes[1] / copies, result.changes[0] / (gain * copies)
    # each step adds a term in [-1, 1] (W2) or [-1, 1] / gain (W1): a sum of n_steps of them
    assert within(mean2, d2, math.sqrt(n_steps / copies))
    assert within(mean1, d1, math.sqrt(n_steps / copies) / gain)
    sizes = step_sizes(dataclasses.replace(config, lr=0.5, lr_decay=0.0), 2, copies, 1)
    assert sizes == [0.5 / (copies * gain), 0.5 / copies]  # dw_min per coincidence


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 0, "must be an integer >= 1"),
        ("batch_size", 2.5, "must be an integer >= 1"),
        ("lr", 0.0, "must be a finite number > 0"),
        ("gradient_gain", -1.0, "must be a finite number > 0"),
        ("lr_decay", -0.1, "must be a finite number >= 0"),
        ("threshold_noise", 2.0, "must be a number in [0, 2)"),
        ("patience", -1, "must be an integer >= 0"),
        ("readout", "spike_count", "must be one of ['max_membrane']"),
    ],
)
def test_bad_settings_are_refused_naming_the_field_and_range(field, value, message):
    problems = SSNNBPConfig(**{field: value}).problems()
    assert [p.path for p in problems] == [field]
    assert message in problems[0].message
    config = reference_config("digits", "ssnn_bp")
    config.training[field] = value
    with pytest.raises(SpecError, match=f"training.{field}"):
        training_config(config)


def test_networks_it_cannot_train_are_refused_by_field():
    lif = feedforward([4, 3, 2], "lif", "li", {}, READOUT, n_steps=10)
    with pytest.raises(SpecError, match=r"populations\[0\].model"):
        network_layers(lif)
    spiking_out = feedforward([4, 3, 2], "if", "if", {}, {}, n_steps=10)
    with pytest.raises(SpecError, match="readout"):
        network_layers(spiking_out)
    leaky = feedforward([4, 3, 2], "if", "li", {}, {"tau_mem": 20.0, "tau_syn": 5.0}, n_steps=10)
    with pytest.raises(SpecError) as caught:
        network_layers(leaky)
    assert {p.path for p in caught.value.problems} == {
        "readout_params.tau_mem",
        "readout_params.tau_syn",
    }
    zero_reset = tiny_spec(hidden_params={"reset": "zero"})
    with pytest.raises(SpecError, match=r"populations\[0\].params.reset"):
        network_layers(zero_reset)
    assert len(network_layers(tiny_spec())) == 2


def test_the_registry_and_reference_configuration():
    algorithm = get_algorithm("ssnn_bp")
    assert ALGORITHMS["ssnn_bp"].config_class is SSNNBPConfig and algorithm.fit is fit
    config = reference_config("digits", "ssnn_bp")
    assert experiment.config_problems(config) == []
    assert config.neuron == "if" and config.readout == "li"
    assert training_config(config) == SSNNBPConfig()  # the defaults are the reference's


# ------------------------------------------------------------------------------ fit


@pytest.fixture(scope="module")
def small_task():
    digits = load_dataset("digits")

    def head(split, n):
        return Split(split.features[:n], split.labels[:n])

    dataset = dataclasses.replace(
        digits,
        train=head(digits.train, 320),
        validation=head(digits.validation, 60),
        test=head(digits.test, 60),
    )
    return TrainingData(dataset, RateEncoder(n_steps=20, dt=1.0, max_rate_hz=1000.0, seed=2), 3)


def small_network(seed=0, hidden=40):
    spec = feedforward([64, hidden, 10], "if", "li", {}, READOUT, n_steps=20)
    spec.projections[0].weight_mean, spec.projections[0].weight_std = 0.01, 0.1
    spec.projections[1].weight_std = 0.1
    return build(spec, seed=seed)


SMALL = {"batch_size": 16, "sample_every": 0}


def test_a_short_digits_fit_learns_far_above_chance(small_task):
    net = small_network()
    history = fit(net, small_task, SSNNBPConfig(epochs=3, **SMALL))
    test = evaluate(
        net,
        make_loaders(small_task.dataset, 256, small_task.seed)["test"],
        small_task.encoder,
        "max_membrane",
    )
    assert test["accuracy"] > 0.6  # chance: 0.1
    assert history.extra["test_stochastic_accuracy"] > 0.5
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"]
    out = net.weight(net.spec.projections[1])
    assert (out >= 0).all()  # the shifted readout: the membranes never fall


def test_same_seed_gives_the_same_history_and_weights(small_task):
    runs = []
    for _ in range(2):
        net = small_network()
        small_task.encoder.reset()
        history = fit(net, small_task, SSNNBPConfig(epochs=2, **SMALL))
        runs.append((history.table.drop(columns="seconds"), net.state_dict(), history.extra))
    assert runs[0][0].equals(runs[1][0]) and runs[0][2] == runs[1][2]
    for key in runs[0][1]:
        assert torch.equal(runs[0][1][key], runs[1][1][key])


def test_every_event_reaches_the_callbacks_and_a_stop_ends_the_run(small_task):
    seen = []
    config = SSNNBPConfig(epochs=2, batch_size=32, sample_every=4)
    history = fit(small_network(), small_task, config, [seen.append])
    kinds = [type(e) for e in seen]
    assert kinds[0] is RunStart and kinds[-1] is RunEnd
    assert seen[0].algorithm == "ssnn_bp" and seen[0].batches_per_epoch == 10
    assert kinds.count(BatchEnd) == 20 and kinds.count(EpochEnd) == 2
    assert kinds.count(SampleRecorded) == 4  # batches 4 and 8 of each epoch
    row = [e for e in seen if isinstance(e, EpochEnd)][0].metrics
    wanted = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert wanted | {"val_stochastic_accuracy", "gradient_saturation"} <= set(row)
    assert set(history.extra) == {"val_stochastic_accuracy", "test_stochastic_accuracy"}

    stop = StopSignal()

    def stop_after_three(event):
        if isinstance(event, BatchEnd) and event.batch == 3:
            stop.set()

    net = small_network()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    history = fit(net, small_task, SSNNBPConfig(epochs=5, **SMALL), [stop_after_three], stop)
    assert history.stopped and len(history) == 1
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_weights(tmp_path):
    config = reference_config("digits", "ssnn_bp", seed=1)
    config.hidden, config.training["epochs"] = [20], 2

    class Killed(Exception):
        pass

    def kill(event):
        if isinstance(event, BatchEnd) and event.epoch == 2 and event.batch == 5:
            raise Killed

    folder = tmp_path / "checkpoint"
    with pytest.raises(Killed):
        experiment.train(dataclasses.replace(config), callbacks=[kill], checkpoint=folder)
    resumed = experiment.resume(folder)
    reference = experiment.train(dataclasses.replace(config))
    state, expected = resumed.network.state_dict(), reference.network.state_dict()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert resumed.metrics["test_accuracy"] == reference.metrics["test_accuracy"]
    assert (
        resumed.metrics["test_stochastic_accuracy"] == reference.metrics["test_stochastic_accuracy"]
    )


def test_the_command_line_trains_it_into_a_run_folder(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "train",
            "--algorithm",
            "ssnn_bp",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--hidden",
            "40",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert {"weights.safetensors", "metrics.json", "history.csv", "manifest.json"} <= {
        p.name for p in out.iterdir()
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["test_accuracy"] > 0.5
    assert 0 <= metrics["test_stochastic_accuracy"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["algorithm"] == "ssnn_bp" and config["training"]["lr_decay"] == 0.1
    assert experiment.evaluate_run(out)["test_accuracy"] == metrics["test_accuracy"]
