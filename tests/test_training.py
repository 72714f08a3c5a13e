"""Training with surrogate gradients: events, repeatability, stopping, readouts, references."""

import pytest
import torch
import xarray as xr

from workbench.algorithms.surrogate import SurrogateConfig, fit
from workbench.backends import build
from workbench.data import LatencyEncoder, load_dataset
from workbench.experiment import TrainingData, reference_config, train
from workbench.spec import SpecError, feedforward
from workbench.training import (
    BatchEnd,
    EpochEnd,
    RunEnd,
    RunStart,
    SampleRecorded,
    StopSignal,
    first_spike_times,
    interrupt,
    readout_scores,
)


@pytest.fixture(scope="module")
def small_task():
    dataset = load_dataset("yinyang", train_size=128, validation_size=64, test_size=64)
    encoder = LatencyEncoder(n_steps=30, dt=1.0, t_early=1.0, t_late=20.0, bias_time=0.0)
    return TrainingData(dataset, encoder, seed=3)


def small_network(seed=0):
    spec = feedforward([5, 20, 3], n_steps=30)
    spec.projections[0].weight_std = 2.0
    return build(spec, seed=seed)


def test_same_seed_gives_the_same_history_and_weights(small_task):
    config = SurrogateConfig(epochs=2, batch_size=16, lr=0.01, sample_every=0)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = small_network()
        history = fit(net, small_task, config)
        runs.append((history.table.drop(columns="seconds"), net.state_dict()))
    assert runs[0][0].equals(runs[1][0])
    for key in runs[0][1]:
        assert torch.equal(runs[0][1][key], runs[1][1][key])


def test_every_event_reaches_every_callback(small_task):
    seen_a, seen_b = [], []
    config = SurrogateConfig(epochs=2, batch_size=32, sample_every=2)
    fit(small_network(), small_task, config, callbacks=[seen_a.append, seen_b.append])
    assert seen_a == seen_b
    kinds = [type(e) for e in seen_a]
    assert kinds[0] is RunStart and kinds[-1] is RunEnd
    assert kinds.count(BatchEnd) == 2 * 4 and kinds.count(EpochEnd) == 2
    samples = [e for e in seen_a if isinstance(e, SampleRecorded)]
    assert len(samples) == 2 * 2  # batches 2 and 4 of each epoch
    rec = samples[0].recording
    assert isinstance(rec, xr.Dataset) and rec.sizes["sample"] == 1
    assert set(rec["population"].values) == {"hidden", "output"}
    epoch = [e for e in seen_a if isinstance(e, EpochEnd)][0]
    assert {"train_loss", "val_accuracy", "lr", "seconds"} <= set(epoch.metrics)


def test_stop_signal_ends_the_run_after_the_current_batch(small_task):
    stop = StopSignal()
    batches = []

    def stop_after_two(event):
        if isinstance(event, BatchEnd):
            batches.append(event.batch)
            if len(batches) == 2:
                stop.set()

    history = fit(
        small_network(),
        small_task,
        SurrogateConfig(epochs=5, batch_size=16),
        callbacks=[stop_after_two],
        stop=stop,
    )
    assert batches == [1, 2]
    assert history.stopped and len(history) == 1


def test_an_interrupt_inside_a_batch_drops_that_batch_and_stops(small_task):
    # The app's Stop: a signal handler calls interrupt() while a batch's gradient is being
    # computed.  Here the gradient hook of batch 3 calls it: that batch makes no update, and
    # the run ends with the weights of a run stopped after batch 2.
    config = SurrogateConfig(epochs=5, batch_size=16, sample_every=0)
    stop = StopSignal()
    torch.manual_seed(0)
    reference = small_network()
    fit(reference, small_task, config, [lambda e: stop.set() if _batch(e) == 2 else None], stop)

    torch.manual_seed(0)
    net = small_network()
    hooks = {"calls": 0}

    def hook(grad):
        hooks["calls"] += 1
        if hooks["calls"] == 3:
            interrupt()  # raises Interrupted inside loss.backward()
        return grad

    next(net.parameters()).register_hook(hook)
    batches = []
    history = fit(net, small_task, config, [lambda e: batches.append(_batch(e))])
    assert history.stopped and len(history) == 1
    assert [b for b in batches if b is not None] == [1, 2]
    for key, value in reference.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    interrupt()  # outside a batch it does nothing (the stop signal is checked there)


def _batch(event):
    return event.batch if isinstance(event, BatchEnd) else None


def test_early_stopping_keeps_the_best_epoch(small_task):
    # A learning rate this small leaves validation accuracy flat: patience 1 stops at epoch 2.
    config = SurrogateConfig(epochs=10, batch_size=64, lr=1e-9, patience=1, sample_every=0)
    history = fit(small_network(), small_task, config)
    assert len(history) == 2 and history.best_epoch == 1


def test_bad_hyperparameters_name_the_field():
    with pytest.raises(SpecError, match=r"lr: -1 must be a finite number > 0"):
        fit(small_network(), None, SurrogateConfig(lr=-1))
    with pytest.raises(SpecError, match=r"readout: 'nope' must be one of"):
        fit(small_network(), None, SurrogateConfig(readout="nope"))


def test_first_spike_time_is_exact_and_differentiable():
    spikes = torch.zeros(10, 1, 3)
    spikes[3, 0, 0] = 1
    spikes[7, 0, 0] = 1  # a later spike does not move the first one
    spikes[0, 0, 1] = 1
    times = first_spike_times(spikes, dt=0.5)
    assert times.tolist() == [[2.0, 0.5, 5.5]]  # end of step 3, of step 0, none: (T + 1) dt
    probe = spikes.clone().requires_grad_()
    first_spike_times(probe, 1.0).sum().backward()
    assert probe.grad[:3, 0, 0].abs().sum() > 0 and probe.grad[4:, 0, 0].abs().sum() == 0


def test_readouts_rank_the_classes():
    membrane = torch.tensor([[[0.1, 0.5]], [[0.9, 0.2]]])
    assert readout_scores(membrane, "max_membrane", 1.0).argmax().item() == 0
    counts = torch.tensor([[[1.0, 1.0]], [[0.0, 1.0]]])
    assert readout_scores(counts, "spike_count", 1.0).argmax().item() == 1
    early = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]])
    assert readout_scores(early, "first_spike", 1.0).argmax().item() == 1


@pytest.mark.slow
def test_digits_reference_configuration_reaches_95_percent():
    run = train(reference_config("digits", seed=0))
    assert run.metrics["test_accuracy"] >= 0.95, run.metrics


@pytest.mark.slow
def test_yinyang_learns_in_a_few_epochs():
    config = reference_config("yinyang", seed=0)
    config.training.update(epochs=4, schedule="constant")  # the reference's first epochs
    run = train(config)
    assert run.metrics["test_accuracy"] >= 0.85, run.metrics


def test_a_readout_loss_that_does_not_fit_the_output_population_is_refused():
    from workbench.experiment import prepare

    config = reference_config("digits")
    config.training["readout"] = "spike_count"  # the reference readout is a leaky integrator
    with pytest.raises(SpecError, match=r"training.readout: 'spike_count' needs a spiking"):
        prepare(config)


def test_validation_accuracy_in_the_history_matches_the_final_metrics_for_a_random_code():
    config = reference_config("digits", seed=0)
    config.hidden = [20]
    config.training.update(epochs=2)
    run = train(config)
    best = run.history.rows[run.history.best_epoch - 1]
    assert best["val_accuracy"] == run.metrics["val_accuracy"]
