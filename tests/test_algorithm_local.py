"""Local learning (``stdp``, ``vdsp``): the rules against hand-computed updates, homeostasis and
inhibition, the folded network, both readouts, events, stopping, repeatability, settings."""

import dataclasses
import math

import pytest
import torch
import xarray as xr

from workbench.algorithms import get_algorithm
from workbench.algorithms.local import (
    VDSP,
    Learner,
    PairSTDP,
    STDPConfig,
    VDSPConfig,
    assign_labels,
    assignment_scores,
    fit_stdp,
    fit_vdsp,
    readout_features,
)
from workbench.backends import build
from workbench.data import RateEncoder, Split, load_dataset, make_loaders
from workbench.experiment import TrainingData, prepare, reference_config, train, training_config
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
READOUT = {"tau_mem": 5000.0, "tau_syn": 10.0}  # rises over the whole (short) run


def run_rule(rule, pre, post, w):
    """Sum a rule's updates over hand-made spike trains ``pre`` ``[T, n_in]``, ``post``
    ``[T, n]`` (one sample), with the weights held at ``w``; also the steps that changed."""
    rule.start(pre[0][None], post[0][None])
    total, changed = torch.zeros_like(w), []
    for t in range(pre.shape[0]):
        dw = rule(pre[t][None], post[t][None], w)
        if dw.abs().sum() > 0:
            changed.append(t)
        total += dw
    return total, changed


def test_stdp_update_equals_the_hand_computed_pair_sum():
    a_plus, a_minus, tau_plus, tau_minus, dt = 0.1, 0.05, 10.0, 20.0, 0.5
    pre, post = torch.zeros(12, 3, dtype=F64), torch.zeros(12, 2, dtype=F64)
    pre[2, 0] = pre[9, 0] = 1  # input 0: 3 steps before the post spike, and 4 steps after
    pre[5, 1] = 1  # input 1: in the step of the post spike (no pairing)
    pre[8, 2] = 1  # input 2: only after the post spike
    post[5, 0] = 1  # hidden 0 fires once; hidden 1 never
    dw, _ = run_rule(
        PairSTDP(a_plus, a_minus, tau_plus, tau_minus, dt), pre, post, torch.zeros(2, 3, dtype=F64)
    )
    potentiation = a_plus * math.exp(-3 * dt / tau_plus)  # pre before post
    expected = [
        [
            potentiation - a_minus * math.exp(-4 * dt / tau_minus),
            0.0,
            -a_minus * math.exp(-3 * dt / tau_minus),
        ],
        [0.0, 0.0, 0.0],
    ]
    assert torch.allclose(dw, torch.tensor(expected, dtype=F64), rtol=1e-12, atol=0)
    assert dw[0, 2] < 0 < potentiation  # post before pre depresses, pre before post potentiates


def test_stdp_pairs_all_spikes_with_additive_traces():
    rule = PairSTDP(1.0, 0.0, 4.0, 4.0, 1.0)
    pre, post = torch.zeros(6, 1, dtype=F64), torch.zeros(6, 1, dtype=F64)
    pre[0, 0] = pre[1, 0] = 1
    post[3, 0] = post[5, 0] = 1
    dw, _ = run_rule(rule, pre, post, torch.zeros(1, 1, dtype=F64))
    pairs = [3 - 0, 3 - 1, 5 - 0, 5 - 1]
    assert dw.item() == pytest.approx(sum(math.exp(-d / 4.0) for d in pairs), rel=1e-12)


def test_vdsp_changes_weights_only_at_post_spikes_with_the_sign_of_the_pre_potential():
    eta_pot, eta_dep, tau_pre, v_switch, dt = 0.1, 0.2, 5.0, 0.5, 1.0
    rule = VDSP(eta_pot, eta_dep, tau_pre, v_switch, dt, w_max=1.0)
    pre, post = torch.zeros(8, 4, dtype=F64), torch.zeros(8, 1, dtype=F64)
    pre[3, 0] = 1  # fired one step before the post spike: potential low
    pre[0, 2] = 1  # fired four steps before: recovered past v_switch
    pre[4, 3] = 1  # fires in the step of the post spike: not yet reset
    post[4, 0] = 1  # input 1 never fires: at rest
    w = torch.tensor([[0.3, 0.4, 0.5, 0.6]], dtype=F64)
    dw, changed = run_rule(rule, pre, post, w)
    assert changed == [4]  # no post spike, no change: pre spikes alone do nothing
    u0, u2 = 1 - math.exp(-dt / tau_pre), 1 - math.exp(-4 * dt / tau_pre)
    expected = [
        eta_pot * (1.0 - 0.3) * (v_switch - u0) / v_switch,
        -eta_dep * 0.4,  # at rest (1): the full depression
        -eta_dep * 0.5 * (u2 - v_switch) / (1 - v_switch),
        -eta_dep * 0.6,
    ]
    assert torch.allclose(dw, torch.tensor([expected], dtype=F64), rtol=1e-12, atol=0)
    assert dw[0, 0] > 0 and (dw[0, 1:] < 0).all()


def test_vdsp_weight_dependence_keeps_weights_between_zero_and_w_max():
    rule = VDSP(0.5, 0.5, 2.0, 0.5, 1.0, w_max=0.2)
    pre, post = torch.ones(50, 2, dtype=F64), torch.ones(50, 1, dtype=F64)
    pre[:, 1] = 0  # input 0 fires every step (potentiated), input 1 never (depressed)
    w = torch.tensor([[0.1, 0.1]], dtype=F64)
    rule.start(pre[0][None], post[0][None])
    for t in range(50):
        w = w + rule(pre[t][None], post[t][None], w)
    assert 0.19 < w[0, 0] <= 0.2 and 0 <= w[0, 1] < 0.01


# ------------------------------------------------------------------------------ network


def tiny_network(weights, inhibition=0.0, model="lif", config_class=STDPConfig, **config):
    """input (len(weights[0])) -> hidden (len(weights)) with inhibition -> li output (2)."""
    n_hidden, n_in = len(weights), len(weights[0])
    params = {"tau_mem": 20.0, "tau_syn": 5.0} if model == "lif" else {}
    spec = feedforward([n_in, n_hidden, 2], model, "li", params, READOUT, n_steps=30)
    spec.projections[0].weights = weights
    cfg = config_class(inhibition=inhibition, **{"normalise": 0.0, "w_max": 1.0, **config})
    spec = cfg.adapt_spec(spec)
    net = build(spec, dtype=F64)
    return net, cfg


def test_lateral_inhibition_silences_the_neurons_that_lose():
    x = torch.ones(30, 1, 2, dtype=F64)
    weights = [[0.6, 0.6], [0.45, 0.45]]  # both fire alone; hidden 0 reaches threshold first
    counts = {}
    for inhibition in (0.0, 5.0):
        net, cfg = tiny_network(weights, inhibition, a_plus=0.0, a_minus=0.0)
        counts[inhibition] = Learner(net, cfg, cfg.rule(1.0)).present(x, learn=False)[0]
    assert (counts[0.0] > 0).all()
    assert counts[5.0][0] == counts[0.0][0] and counts[5.0][1] == 0  # the winner takes all


def test_adaptive_threshold_grows_per_spike_decays_slowly_and_quiets_the_neuron():
    x = torch.ones(30, 1, 2, dtype=F64)
    net, cfg = tiny_network([[0.6, 0.6]], a_plus=0.0, a_minus=0.0, theta_plus=0.2, tau_theta=1e12)
    learner = Learner(net, cfg, cfg.rule(1.0))
    first = learner.present(x)[0, 0]
    assert first > 1 and learner.theta[0].item() == pytest.approx(0.2 * first.item(), rel=1e-9)
    assert learner.present(x, learn=False)[0, 0] < first  # a higher threshold: fewer spikes
    learner.config = dataclasses.replace(cfg, tau_theta=40.0)
    learner.theta_decay = math.exp(-1.0 / 40.0)
    before = learner.theta.clone()
    learner.present(torch.zeros(20, 1, 2, dtype=F64))  # no spikes: theta only decays
    assert torch.allclose(learner.theta, before * math.exp(-20 / 40.0), rtol=1e-12)


@pytest.mark.parametrize("model", ["lif", "if"])
def test_the_network_with_folded_thresholds_spikes_exactly_like_the_learner(model):
    g = torch.Generator().manual_seed(1)
    weights = (0.4 * torch.rand(6, 8, generator=g, dtype=F64)).tolist()
    net, cfg = tiny_network(weights, inhibition=0.5, model=model, a_plus=0.0, a_minus=0.0)
    learner = Learner(net, cfg, cfg.rule(1.0))
    learner.theta = torch.rand(6, generator=g, dtype=F64)
    learner.sync()
    x = (torch.rand(30, 5, 8, generator=g) < 0.6).to(F64)
    spikes = net(x, record=["hidden"]).recordings["hidden"]["spikes"]
    assert spikes.sum() > 10
    assert torch.equal(spikes.sum(dim=0), learner.present(x, learn=False))


def test_label_assignment_follows_the_class_each_neuron_prefers():
    counts = torch.tensor([[4.0, 0, 1, 0], [3, 1, 2, 0], [0, 5, 0, 0], [1, 3, 0, 0]])
    labels = torch.tensor([0, 0, 1, 1])
    assignments = assign_labels(counts, labels, n_classes=3)
    assert assignments.tolist() == [0, 1, 0, -1]  # hidden 3 never fired: unassigned
    scores = assignment_scores(torch.tensor([[2.0, 6, 4, 9]]), assignments, 3)
    assert scores.tolist() == [[3.0, 6.0, 0.0]]  # mean over assigned neurons; class 2 has none


# ------------------------------------------------------------------------------ fit


@pytest.fixture(scope="module")
def small_task():
    digits = load_dataset("digits")

    def head(split, n):
        return Split(split.features[:n], split.labels[:n])

    dataset = dataclasses.replace(
        digits,
        train=head(digits.train, 96),
        validation=head(digits.validation, 40),
        test=head(digits.test, 40),
    )
    return TrainingData(dataset, RateEncoder(n_steps=20, dt=1.0, max_rate_hz=500.0, seed=2), 3)


def small_network(config, hidden=12, seed=0):
    spec = feedforward([64, hidden, 10], "lif", "li", {}, READOUT, n_steps=20)
    spec.projections[0].weight_mean, spec.projections[0].weight_std = 0.05, 0.02
    return build(config.adapt_spec(spec), seed=seed)


SMALL = {"batch_size": 16, "normalise": 2.0, "theta_plus": 0.01, "sample_every": 0}


@pytest.mark.parametrize(
    "fit, config_class", [(fit_stdp, STDPConfig), (fit_vdsp, VDSPConfig)], ids=["stdp", "vdsp"]
)
def test_same_seed_gives_the_same_history_and_weights(small_task, fit, config_class):
    config = config_class(epochs=2, **SMALL)
    runs = []
    for _ in range(2):
        net = small_network(config)
        small_task.encoder.reset()
        history = fit(net, small_task, config)
        runs.append((history.table.drop(columns="seconds"), net.state_dict(), history.extra))
    assert runs[0][0].equals(runs[1][0]) and runs[0][2] == runs[1][2]
    for key in runs[0][1]:
        assert torch.equal(runs[0][1][key], runs[1][1][key])


def test_every_event_reaches_every_callback(small_task):
    seen_a, seen_b = [], []
    config = STDPConfig(epochs=2, **{**SMALL, "sample_every": 3})
    history = fit_stdp(small_network(config), small_task, config, [seen_a.append, seen_b.append])
    assert seen_a == seen_b
    kinds = [type(e) for e in seen_a]
    assert kinds[0] is RunStart and kinds[-1] is RunEnd
    assert seen_a[0].algorithm == "stdp" and seen_a[0].batches_per_epoch == 6
    assert kinds.count(BatchEnd) == 2 * 6 and kinds.count(EpochEnd) == 2
    batches = [e for e in seen_a if isinstance(e, BatchEnd)]
    assert all(math.isnan(e.loss) for e in batches)  # the plasticity minimises no loss
    assert math.isnan(batches[0].accuracy) and not math.isnan(batches[-1].accuracy)
    samples = [e for e in seen_a if isinstance(e, SampleRecorded)]
    assert len(samples) == 2 * 2  # batches 3 and 6 of each epoch
    rec = samples[0].recording
    assert isinstance(rec, xr.Dataset) and rec.sizes["sample"] == 1
    assert set(rec["population"].values) == {"hidden", "output"}
    row = [e for e in seen_a if isinstance(e, EpochEnd)][0].metrics
    wanted = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert wanted | {"val_spikes_per_sample", "val_assignment_accuracy"} <= set(row)
    assert set(history.extra) == {"val_assignment_accuracy", "test_assignment_accuracy"}


def test_stop_signal_ends_the_run_after_the_current_batch(small_task):
    stop = StopSignal()
    batches = []

    def stop_after_two(event):
        if isinstance(event, BatchEnd):
            batches.append(event.batch)
            if len(batches) == 2:
                stop.set()

    config = VDSPConfig(epochs=5, **SMALL)
    history = fit_vdsp(small_network(config), small_task, config, [stop_after_two], stop)
    assert batches == [1, 2]
    assert history.stopped and len(history) == 1


def test_the_network_scores_exactly_the_linear_readout(small_task):
    config = STDPConfig(epochs=1, **SMALL)
    net = small_network(config)
    fit_stdp(net, small_task, config)
    loader = make_loaders(small_task.dataset, 256, small_task.seed)["validation"]
    result = evaluate(net, loader, small_task.encoder, "max_membrane")
    encoder = dataclasses.replace(small_task.encoder)  # restarted from its seed, as evaluate does
    x, _ = next(iter(loader))
    run = net(encoder(x), record=["hidden"])
    last = readout_features(run.recordings["hidden"]["spikes"], net.neuron_params["output"])
    logits = last @ net.weights["hidden__output"].detach().T
    assert (net.weights["hidden__output"] >= 0).all()
    assert torch.allclose(run.output.max(dim=0).values, run.output[-1])  # never falls
    assert torch.allclose(run.output[-1], logits, rtol=1e-4, atol=1e-6)
    assert torch.equal(result["predictions"], logits.argmax(dim=1))


# ------------------------------------------------------------------------------ settings


def test_bad_settings_name_the_field_and_the_range():
    with pytest.raises(SpecError, match=r"epochs: 0 must be an integer >= 1"):
        fit_stdp(None, None, STDPConfig(epochs=0))
    problems = [str(p) for p in STDPConfig(tau_plus=-1, a_minus=-0.5).problems()]
    assert problems == [
        "tau_plus: -1 must be a finite number > 0",
        "a_minus: -0.5 must be a finite number >= 0",
    ]
    problems = [str(p) for p in VDSPConfig(v_switch=1.5, readout="spike_count").problems()]
    assert problems == [
        "readout: 'spike_count' must be one of ['max_membrane']",
        "v_switch: 1.5 must be a number in (0, 1)",
    ]
    config = reference_config("digits", "stdp")
    config.training["lr"] = 0.1
    with pytest.raises(SpecError, match=r"training.lr: is not a setting of 'stdp'"):
        training_config(config)


def test_a_network_without_inhibition_or_with_a_decaying_readout_is_refused(small_task):
    config = STDPConfig(epochs=1, **SMALL)
    spec = feedforward([64, 12, 10], "lif", "li", {}, READOUT, n_steps=20)
    with pytest.raises(SpecError, match=r"network: needs the lateral inhibition hidden->hidden"):
        fit_stdp(build(spec), small_task, config)
    spec = feedforward([64, 12, 10], "lif", "li", {}, {"tau_mem": 20.0, "tau_syn": 5.0}, n_steps=20)
    with pytest.raises(SpecError, match=r"readout_params: the output's response to a spike peaks"):
        fit_stdp(build(config.adapt_spec(spec)), small_task, config)


@pytest.mark.parametrize("algorithm", ["stdp", "vdsp"])
def test_the_reference_network_has_fixed_lateral_inhibition(algorithm):
    config = reference_config("digits", algorithm)
    assert set(config.training) <= {
        f.name for f in dataclasses.fields(get_algorithm(algorithm).config_class)
    }
    _, spec, net, hyper = prepare(config)
    inhibition = [p for p in spec.projections if p.source == p.target == "hidden"]
    assert len(inhibition) == 1 and inhibition[0].recurrent
    assert inhibition[0].weight_mean == -hyper.inhibition


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["stdp", "vdsp"])
def test_digits_reference_reaches_85_percent(algorithm):
    run = train(reference_config("digits", algorithm, seed=0))
    assert run.metrics["test_accuracy"] >= 0.85, run.metrics
    assert 0 < run.metrics["test_assignment_accuracy"] <= 1
