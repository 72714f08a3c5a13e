"""Proxy training: the gradient of the weight-sharing ReLU network with the spike counts in place
of its output; the shared loop's events, stopping and repeatability; settings; references."""

import numpy as np
import pytest
import torch
import xarray as xr

from workbench.algorithms import ALGORITHMS
from workbench.algorithms.proxy import ProxyConfig, fit, proxy_output, proxy_step
from workbench.backends import build
from workbench.data import TernaryEncoder, load_dataset
from workbench.experiment import TrainingData, prepare, reference_config, train
from workbench.spec import NetworkSpec, Population, Projection, SpecError, feedforward
from workbench.training import BatchEnd, EpochEnd, RunEnd, RunStart, SampleRecorded, StopSignal

HISTORY_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_spikes_per_sample",
    "lr",
    "skipped_steps",
    "seconds",
]


@pytest.fixture(scope="module")
def small_task():
    dataset = load_dataset("yinyang", train_size=128, validation_size=64, test_size=64)
    encoder = TernaryEncoder(n_steps=10, thresholds=(0.2, 0.4, 0.6, 0.8))
    return TrainingData(dataset, encoder, seed=3)


def if_network(sizes=(16, 20, 3), seed=0, thresholds=(1.0, 1.0), n_steps=10, std=None):
    params = [{"threshold": t} for t in thresholds]
    spec = feedforward(list(sizes), "if", "if", params[0], params[1], n_steps=n_steps)
    for proj in spec.projections:
        proj.weight_std = std
    return build(spec, seed=seed)


def if_counts(weights, thresholds, spikes):
    """Spike counts of the IF output, simulated by hand in float64 (subtractive reset)."""
    activity = spikes
    for w, theta in zip(weights, thresholds):
        v = np.zeros((spikes.shape[1], w.shape[0]))
        out = np.zeros((spikes.shape[0], spikes.shape[1], w.shape[0]))
        for t in range(spikes.shape[0]):
            v = v + activity[t] @ w.T
            out[t] = v >= theta
            v = v - theta * out[t]
        activity = out
    return activity.sum(axis=0)


def test_the_weight_gradient_is_the_anns_with_the_spike_counts_in_its_place():
    thresholds, n_steps = (0.8, 1.5), 12
    net = if_network((4, 6, 3), seed=1, thresholds=thresholds, n_steps=n_steps, std=0.9)
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(n_steps, 5, 4, generator=generator) < 0.6).float()
    labels = torch.tensor([0, 1, 2, 1, 0])
    loss, scores, _ = proxy_step(net, spikes, labels)
    loss.backward()

    w1, w2 = (net.weights[k].detach().double().numpy() for k in ("input__hidden", "hidden__output"))
    x = spikes.double().numpy()
    counts = if_counts([w1, w2], thresholds, x)
    assert np.allclose(scores.detach().numpy(), counts)  # the loss sees the spiking network
    # By hand: ANN input = input rate per step, hidden = relu(W1 r) / theta1, output
    # = T (W2 h) / theta2; cross-entropy evaluated at the spike counts.
    rate = x.mean(axis=0)
    current = rate @ w1.T
    hidden = np.maximum(current, 0) / thresholds[0]
    p = np.exp(counts - counts.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d_out = (p - np.eye(3)[labels.numpy()]) / len(labels)  # dL/d(output)
    assert loss.item() == pytest.approx(-np.log(p[np.arange(5), labels.numpy()]).mean())
    gain = n_steps / thresholds[1]
    d_w2 = gain * d_out.T @ hidden
    d_hidden = gain * d_out @ w2
    d_w1 = (d_hidden * (current > 0) / thresholds[0]).T @ rate
    assert 0 < (current > 0).mean() < 1  # both sides of the ReLU are exercised
    assert np.allclose(net.weights["hidden__output"].grad.double().numpy(), d_w2, atol=1e-6)
    assert np.allclose(net.weights["input__hidden"].grad.double().numpy(), d_w1, atol=1e-6)

    # The spike counts, not the ANN's own output, set dL/d(output).
    ann = proxy_output(net, spikes.mean(0), n_steps).detach().double().numpy()
    assert not np.allclose(ann, counts)


def test_the_proxy_output_is_in_spike_counts():
    # One IF layer on a constant input: the count is floor(T * current / threshold) while the
    # current stays in [0, threshold] (at most one spike per step beyond).
    n_steps, threshold = 40, 1.3
    spec = NetworkSpec(
        8,
        [Population("output", 5, "if", {"threshold": threshold})],
        [Projection("input", "output")],
    )
    spec.n_steps = n_steps
    net = build(spec, seed=2)
    features = torch.rand(7, 8, generator=torch.Generator().manual_seed(1))
    spikes = features.expand(n_steps, 7, 8).contiguous()  # analog current, constant in time
    counts = net(spikes).output.sum(0)
    ann = proxy_output(net, spikes.mean(0), n_steps).detach()
    inside = (ann >= 0) & (ann <= n_steps)
    assert inside.any() and (~inside).any()
    assert torch.all((ann[inside] - counts[inside]).abs() < 1 + 1e-4)
    assert torch.all(counts[inside] <= ann[inside] + 1e-4)
    assert torch.all(counts[ann < 0] == 0) and torch.all(counts[ann > n_steps] == n_steps)


def test_same_seed_gives_the_same_history_and_weights(small_task):
    config = ProxyConfig(epochs=2, batch_size=16, lr=0.01, sample_every=0)
    runs = []
    for _ in range(2):
        net = if_network()
        history = fit(net, small_task, config)
        runs.append((history.table.drop(columns="seconds"), net.state_dict()))
    assert runs[0][0].equals(runs[1][0])
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    assert not torch.equal(
        runs[0][1]["weights.input__hidden"], if_network().weights["input__hidden"]
    )


def test_every_event_reaches_every_callback(small_task):
    seen_a, seen_b = [], []
    config = ProxyConfig(epochs=2, batch_size=32, sample_every=2)
    history = fit(if_network(), small_task, config, callbacks=[seen_a.append, seen_b.append])
    assert seen_a == seen_b
    kinds = [type(e) for e in seen_a]
    assert kinds[0] is RunStart and kinds[-1] is RunEnd
    assert seen_a[0].algorithm == "proxy" and seen_a[0].config["readout"] == "spike_count"
    assert kinds.count(BatchEnd) == 2 * 4 and kinds.count(EpochEnd) == 2
    samples = [e for e in seen_a if isinstance(e, SampleRecorded)]
    assert [(s.epoch, s.batch) for s in samples] == [(1, 2), (1, 4), (2, 2), (2, 4)]
    rec = samples[0].recording
    assert isinstance(rec, xr.Dataset) and rec.sizes["sample"] == 1
    assert set(rec["population"].values) == {"hidden", "output"}
    assert list(history.table.columns) == HISTORY_COLUMNS  # as surrogate training's
    assert history.best_epoch in (1, 2)


def test_stop_signal_ends_the_run_after_the_current_batch(small_task):
    stop = StopSignal()
    batches = []

    def stop_after_two(event):
        if isinstance(event, BatchEnd):
            batches.append(event.batch)
            if len(batches) == 2:
                stop.set()

    history = fit(
        if_network(),
        small_task,
        ProxyConfig(epochs=5, batch_size=16),
        callbacks=[stop_after_two],
        stop=stop,
    )
    assert batches == [1, 2]
    assert history.stopped and len(history) == 1


def test_bad_settings_name_the_field_and_the_allowed_range():
    problems = {str(p) for p in ProxyConfig(epochs=0, lr=-1, readout="first_spike").problems()}
    assert problems == {
        "epochs: 0 must be an integer >= 1",
        "lr: -1 must be a finite number > 0",
        "readout: 'first_spike' must be one of ['spike_count']",
    }
    assert ProxyConfig().problems() == []
    with pytest.raises(
        SpecError, match=r"schedule: 'linear' must be one of \['cosine', 'constant'"
    ):
        fit(if_network(), None, ProxyConfig(schedule="linear"))
    with pytest.raises(SpecError, match=r"sample_every: -1 must be an integer >= 0"):
        fit(if_network(), None, ProxyConfig(sample_every=-1))


def test_a_network_the_proxy_cannot_mirror_is_refused():
    lif = build(feedforward([16, 20, 3], "lif", "if", n_steps=10))
    with pytest.raises(SpecError, match=r"populations\[0\].model: 'lif' \(hidden\): proxy "):
        fit(lif, None, ProxyConfig())
    spec = feedforward([16, 20, 3], "if", "if", n_steps=10)
    spec.projections.append(Projection("hidden", "hidden", recurrent=True))
    with pytest.raises(SpecError, match=r"projections\[2\]: hidden->hidden is recurrent"):
        fit(build(spec), None, ProxyConfig())


def test_the_reference_configurations_build_if_networks():
    assert ALGORITHMS["proxy"].config_class is ProxyConfig
    for dataset in ("yinyang", "digits"):
        config = reference_config(dataset, "proxy")
        assert set(ALGORITHMS["proxy"].references) == {"yinyang", "digits"}
        _, spec, _, hyper = prepare(config)
        assert {p.model for p in spec.populations} == {"if"} and hyper.readout == "spike_count"
    assert reference_config("yinyang", "proxy").encoder["name"] == "ternary"
    # The dataset's surrogate settings stay with the surrogate reference.
    assert reference_config("yinyang").neuron_params == {"tau_mem": 20.0, "tau_syn": 5.0}


def test_a_readout_that_does_not_fit_the_output_population_is_refused():
    config = reference_config("yinyang", "proxy")
    config.readout = "li"
    with pytest.raises(SpecError, match=r"training.readout: 'spike_count' needs a spiking"):
        prepare(config)
    config = reference_config("yinyang", "proxy")
    config.training["surrogate"] = "arctan"
    with pytest.raises(SpecError, match=r"training.surrogate: is not a setting of 'proxy'"):
        prepare(config)


@pytest.mark.slow
def test_yinyang_reference_learns_in_a_few_epochs():
    config = reference_config("yinyang", "proxy", seed=0)
    config.training.update(epochs=3)  # the reference trains 20
    run = train(config)
    assert run.metrics["test_accuracy"] >= 0.94, run.metrics
