"""Losses for time (workbench.losses): the loss-shaping family on the output membrane (L_sum,
L_sum_exp) and the van Rossum multi-spike timing loss, for EventProp and surrogate training.

Values: each loss on a tiny case computed by hand (the numbers in the comments), and the exact
continuous-time integrals against numerical quadrature.  Gradients: EventProp's against central
differences in float64 (the helper of tests/test_events.py: a weight is checked only when its
perturbation adds or removes no spike), the surrogate losses against torch.autograd.gradcheck
in float64 and against autograd through the explicit pairwise formula.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.integrate import quad
from test_events import (
    assert_gradients_match_finite_differences,
    latency_input,
    network,
    spike_counts,
)

from workbench import losses
from workbench.algorithms.eventprop import EventPropConfig
from workbench.algorithms.eventprop import fit as eventprop_fit
from workbench.algorithms.surrogate import SurrogateConfig
from workbench.algorithms.surrogate import fit as surrogate_fit
from workbench.backends import build
from workbench.data import LatencyEncoder, load_dataset, make_loaders
from workbench.events import raster_to_events
from workbench.experiment import TrainingData, prepare, reference_config
from workbench.spec import SpecError, feedforward
from workbench.training import READOUTS, evaluate, readout_scores, result_loss, result_scores

F64 = torch.float64


# ----------------------------------------------------------------------------- values by hand
def test_membrane_averages_on_the_grid_by_hand():
    v = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=F64)[:, None, None]  # t = 0, 0.5, 1, 1.5 ms
    assert readout_scores(v, "sum_membrane", 0.5).item() == 1.5  # (0 + 1 + 2 + 3) / 4
    # (1/T) sum_k exp(-t_k / T) v_k dt, T = 2 ms: (e^-.25 + 2 e^-.5 + 3 e^-.75) / 4
    weighted = readout_scores(v, "sum_exp_membrane", 0.5).item()
    assert weighted == pytest.approx(0.85224044015, abs=1e-10)


def test_exact_average_of_one_input_spike_by_hand_and_by_quadrature():
    tau_mem, tau_syn, t_end, s, w = 20.0, 5.0, 10.0, 2.0, 1.5
    times = torch.tensor([[s]], dtype=F64)
    jumps = torch.tensor([[[w]]], dtype=F64)
    plain, weighted = losses.exact_membrane_averages(times, jumps, tau_mem, tau_syn, t_end)[:, 0, 0]
    # (w / T) c [tau_mem (1 - e^(-8/20)) - tau_syn (1 - e^(-8/5))], c = 5 / 15
    assert plain.item() == pytest.approx(1.5 * 0.0867693890, rel=1e-8)
    c = tau_syn / (tau_mem - tau_syn)

    def v(t):
        return w * c * (math.exp(-(t - s) / tau_mem) - math.exp(-(t - s) / tau_syn))

    assert plain.item() == pytest.approx(quad(v, s, t_end)[0] / t_end, rel=1e-10)
    by_quad = quad(lambda t: math.exp(-t / t_end) * v(t), s, t_end)[0] / t_end
    assert weighted.item() == pytest.approx(by_quad, rel=1e-10)


def test_event_backend_averages_are_the_limit_of_the_grid_averages():
    """The event backend's exact averages against the Riemann sums of its own membrane on a
    grid 64 times finer (same input spikes): the difference shrinks like dt."""
    net = network("li", recurrent=False)
    x = latency_input(80, 4, 3, seed=1)
    result, out = net.run(x)
    fine = 64
    x_fine = torch.zeros(80 * fine, 4, 3, dtype=F64)
    x_fine[::fine] = x
    fine_spec = feedforward([3, 6, 2], "lif", "li", dt=0.5 / fine, n_steps=80 * fine)
    fine_net = build(fine_spec, "event", dtype=F64)
    fine_net.load_state_dict(net.state_dict())
    v_fine = fine_net.simulate(x_fine)["output"]
    for k, readout in enumerate(("sum_membrane", "sum_exp_membrane")):
        exact = result.membrane_averages[k]
        assert torch.equal(result_scores(result, readout, 0.5), exact)
        coarse = readout_scores(out["output"], readout, 0.5)
        finer = readout_scores(v_fine, readout, 0.5 / fine)
        assert (finer - exact).abs().max() < (coarse - exact).abs().max() / 30
        assert (finer - exact).abs().max() < 1e-3 * exact.abs().max()


def test_van_rossum_distance_by_hand():
    out = torch.tensor([[1.0, 3.0, math.inf]], dtype=F64)
    target = torch.tensor([[2.0]], dtype=F64)
    # 1/2 (2 + 2 e^-1) + 1/2 - 2 e^-1/2 with tau = 2 ms
    assert losses.van_rossum_distance(out, target, 2.0).item() == pytest.approx(
        0.6548181218, abs=1e-10
    )
    assert losses.van_rossum_distance(target, target, 2.0).item() == 0.0
    none = torch.full((1, 2), math.inf, dtype=F64)
    assert losses.van_rossum_distance(none, target, 2.0).item() == 0.5  # a missing spike


def test_van_rossum_loss_and_scores_by_hand():
    # two classes; sample 0 (label 1): neuron 0 fires at 4 ms, neuron 1 at 5 and 9 ms
    times = torch.tensor([[[4.0, math.inf], [5.0, 9.0]]], dtype=F64)
    labels = torch.tensor([1])
    target, tau = [5.0], 5.0
    # neuron 0 to no spikes: 1/2; neuron 1 to [5]: 1/2 (2 + 2 e^-.8) + 1/2 - (1 + e^-.8)
    expected = 0.5 + 0.5
    assert losses.van_rossum_loss(times, labels, target, tau).item() == pytest.approx(expected)
    scores = losses.van_rossum_scores(times, target, tau)[0]
    assert scores.tolist() == pytest.approx([math.exp(-0.2), 1 + math.exp(-0.8)])


def test_raster_van_rossum_equals_the_spike_time_form_on_the_grid():
    """Spikes on the grid (step k at t = k dt): the raster loss (O(T) filters) and scores equal
    the closed form on those spike times."""
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(40, 3, 4, generator=g, dtype=F64) < 0.1).to(F64)
    dt, target, tau = 0.5, [3.0, 7.5, 12.0], 4.0
    labels = torch.tensor([0, 3, 1])
    grid = torch.arange(40, dtype=F64) * dt
    times = torch.where(spikes.bool(), grid[:, None, None], math.inf).permute(1, 2, 0)
    assert torch.isfinite(times).sum() > 20
    exact = losses.van_rossum_loss(times, labels, target, tau)
    raster = losses.van_rossum_raster_loss(spikes, labels, dt, target, tau)
    assert raster.item() == pytest.approx(exact.item(), rel=1e-12)
    scores = losses.van_rossum_raster_scores(spikes, dt, target, tau)
    assert torch.allclose(scores, losses.van_rossum_scores(times, target, tau), rtol=1e-12)


# ----------------------------------------------------------------------------- surrogate: autograd
def _explicit_self_term(z, dt, tau):
    k = torch.arange(z.shape[0], dtype=z.dtype)
    m = torch.exp(-(k[:, None] - k[None, :]).abs() * dt / tau)
    return 0.5 * torch.einsum("k...,kl,l...->...", z, m, z)


def test_raster_self_term_gradient_is_autograd_of_the_pairwise_form_and_passes_gradcheck():
    g = torch.Generator().manual_seed(1)
    z = torch.rand(25, 2, 3, generator=g, dtype=F64, requires_grad=True)
    fast = losses.raster_self_term(z, 1.0, 3.0)
    slow = _explicit_self_term(z, 1.0, 3.0)
    assert torch.allclose(fast, slow, rtol=1e-12)
    weights = torch.rand(2, 3, generator=g, dtype=F64)
    (grad_fast,) = torch.autograd.grad((fast * weights).sum(), z)
    (grad_slow,) = torch.autograd.grad((slow * weights).sum(), z)
    assert torch.allclose(grad_fast, grad_slow, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda x: losses.raster_self_term(x, 1.0, 3.0), (z,))


@pytest.mark.parametrize("readout", ["sum_membrane", "sum_exp_membrane", "van_rossum"])
def test_surrogate_losses_pass_gradcheck(readout):
    """The loss of each new readout as the surrogate step computes it (scores, then the
    readout's loss) on a float64 output trace (membranes, or surrogate spikes in [0, 1])."""
    g = torch.Generator().manual_seed(2)
    output = torch.rand(30, 4, 3, generator=g, dtype=F64, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 2])
    options = {"van_rossum_tau": 4.0, "target_times": [5.0, 11.0]}

    def loss(trace):
        result = _Result(trace)
        scores = result_scores(result, readout, 0.5, options)
        return result_loss(result, scores, labels, readout, 0.5, options)

    assert torch.autograd.gradcheck(loss, (output,))


class _Result:
    """A RunResult of a time-stepped backend (no exact times or averages)."""

    def __init__(self, output):
        self.output = output
        self.first_spikes = self.spike_times = self.membrane_averages = None


# ----------------------------------------------------------------------------- EventProp: FD
@pytest.mark.parametrize("readout", ["sum_membrane", "sum_exp_membrane"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_eventprop_gradient_of_the_membrane_averages_matches_finite_differences(readout, recurrent):
    net = network("li", recurrent)
    x = latency_input(80, 4, 3, seed=1)
    labels = torch.tensor([0, 1, 0, 1])

    def loss_of():
        result, out = net.run(x)
        scores = result_scores(result, readout, net.spec.dt)
        hidden = out["hidden"]  # a term on the hidden spike times too (their jumps exercised)
        return F.cross_entropy(scores, labels) + 0.01 * torch.where(
            torch.isfinite(hidden), hidden, 0.0
        ).sum(), out

    counts = assert_gradients_match_finite_differences(
        net, loss_of, lambda out: spike_counts(out, "li")
    )
    assert counts["hidden"] >= 20


@pytest.mark.parametrize("recurrent", [False, True])
def test_eventprop_gradient_of_the_van_rossum_loss_matches_finite_differences(recurrent):
    net = network("lif", recurrent)
    x = latency_input(80, 4, 3, seed=1)
    labels = torch.tensor([0, 1, 0, 1])
    options = {"van_rossum_tau": 5.0, "target_times": [8.0, 16.0, 24.0]}

    def loss_of():
        result, out = net.run(x)
        scores = result_scores(result, "van_rossum", net.spec.dt, options)
        loss = result_loss(result, scores, labels, "van_rossum", net.spec.dt, options)
        return loss + 0.1 * out["peak"].sum(), out

    counts = assert_gradients_match_finite_differences(
        net, loss_of, lambda out: spike_counts(out, "lif")
    )
    assert counts["output"] >= 8  # several spikes per output neuron: a multi-spike loss
    per_neuron = torch.isfinite(net.simulate(x)["output"]).sum(2)
    assert per_neuron.max() >= 2


# ----------------------------------------------------------------------------- settings
def test_every_readout_is_offered_by_name_and_others_are_refused():
    assert set(losses.MEMBRANE_READOUTS) | set(losses.SPIKE_READOUTS) == set(READOUTS)
    with pytest.raises(SpecError, match=r"readout: 'sum' must be one of \[.*'sum_membrane'"):
        surrogate_fit(None, None, SurrogateConfig(readout="sum"))
    with pytest.raises(SpecError, match=r"readout: 'spike_count' must be one of"):
        eventprop_fit(None, None, EventPropConfig(readout="spike_count"))


@pytest.mark.parametrize("config_class", [SurrogateConfig, EventPropConfig])
def test_van_rossum_settings_are_refused_by_field(config_class):
    def problems(**settings):
        return {p.path: p.message for p in config_class(**settings).problems()}

    assert problems(van_rossum_tau=0.0)["van_rossum_tau"] == "0.0 must be a finite number > 0 (ms)"
    assert "van_rossum_tau" in problems(van_rossum_tau=math.inf)
    assert "must be a list of times" in problems(target_times=5.0)["target_times"]
    assert "1 to 1000 times" in problems(target_times=[])["target_times"]
    assert "finite number" in problems(target_times=[1.0, math.nan])["target_times[1]"]
    assert "[0, the run's duration)" in problems(target_times=[-1.0])["target_times[0]"]
    assert problems(readout="van_rossum", target_times=[1.0, 2.5]) == {}


def test_target_times_outside_the_run_are_refused_by_field():
    config = reference_config("digits", algorithm="surrogate")
    config.readout = "lif"
    config.training.update(readout="van_rossum", target_times=[5.0, 20.0])  # run: 20 ms
    with pytest.raises(SpecError, match=r"training.target_times\[1\]: 20.0 must be in \[0, 20\)"):
        prepare(config)
    network = build(feedforward([4, 3], "lif", "lif", n_steps=20))
    with pytest.raises(SpecError, match=r"target_times\[1\]: 20.0 must be in \[0, 20\)"):
        surrogate_fit(network, None, SurrogateConfig(readout="van_rossum", target_times=[1, 20.0]))


@pytest.mark.parametrize("readout", ["sum_membrane", "sum_exp_membrane", "van_rossum"])
def test_a_new_readout_that_does_not_fit_the_output_population_is_refused(readout):
    config = reference_config("digits")  # an 'li' readout
    if readout != "van_rossum":
        config.readout = "lif"
    config.training["readout"] = readout
    wanted = "a spiking" if readout == "van_rossum" else "an 'li' readout"
    with pytest.raises(SpecError, match=rf"training.readout: '{readout}' needs {wanted}"):
        prepare(config)
    spec = feedforward([4, 3], "lif", "lif" if readout != "van_rossum" else "li", n_steps=20)
    with pytest.raises(SpecError, match=rf"readout: '{readout}' needs {wanted}"):
        eventprop_fit(build(spec, "event"), None, EventPropConfig(readout=readout))


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def small_task():
    dataset = load_dataset("yinyang", train_size=128, validation_size=64, test_size=64)
    encoder = LatencyEncoder(n_steps=60, dt=0.5, t_early=1.0, t_late=20.0, bias_time=0.0)
    return TrainingData(dataset, encoder, seed=3)


@pytest.mark.parametrize(
    "algorithm, readout",
    [
        ("surrogate", "sum_membrane"),
        ("surrogate", "sum_exp_membrane"),
        ("surrogate", "van_rossum"),
        ("eventprop", "sum_membrane"),
        ("eventprop", "sum_exp_membrane"),
        ("eventprop", "van_rossum"),
    ],
)
def test_each_new_loss_lowers_the_training_loss(small_task, algorithm, readout):
    """A few epochs on 128 Yin-Yang samples lower the loss the readout trains with."""
    output = "lif" if readout == "van_rossum" else "li"
    spec = feedforward([5, 30, 3], "lif", output, dt=0.5, n_steps=60)
    spec.projections[0].weight_mean, spec.projections[0].weight_std = 1.5, 1.5
    spec.projections[1].weight_mean, spec.projections[1].weight_std = 0.5, 0.5
    settings = dict(epochs=4, batch_size=32, lr=2e-2, sample_every=0, readout=readout)
    if algorithm == "surrogate":
        network = build(spec, "float", seed=0)
        history = surrogate_fit(network, small_task, SurrogateConfig(**settings))
    else:
        network = build(spec, "event", seed=0)
        history = eventprop_fit(network, small_task, EventPropConfig(**settings))
    rows = history.rows
    assert rows[-1]["train_loss"] < rows[0]["train_loss"], rows
    assert all(math.isfinite(r["val_loss"]) for r in rows)


@pytest.mark.parametrize("backend", ["event", "float"])
def test_evaluation_reports_the_van_rossum_loss_it_trains_with(small_task, backend):
    """``evaluate``'s loss of the van Rossum readout is its distance (exact spike times on the
    event backend, the raster elsewhere), not a cross-entropy of its scores."""
    spec = feedforward([5, 30, 3], "lif", "lif", dt=0.5, n_steps=60)
    spec.projections[0].weight_mean, spec.projections[0].weight_std = 1.5, 1.5
    spec.projections[1].weight_mean, spec.projections[1].weight_std = 0.5, 0.5
    network = build(spec, backend, seed=0, dtype=F64)
    options = {"van_rossum_tau": 4.0, "target_times": [6.0, 12.0]}
    loader = make_loaders(small_task.dataset, 32, 0)["validation"]
    got = evaluate(network, loader, small_task.encoder, "van_rossum", options)
    total, count = 0.0, 0
    with torch.no_grad():
        for features, labels in loader:
            result = network(small_task.encoder(features).to(F64))
            if backend == "event":
                loss = losses.van_rossum_loss(result.spike_times, labels, [6.0, 12.0], 4.0)
            else:
                loss = losses.van_rossum_raster_loss(result.output, labels, 0.5, [6.0, 12.0], 4.0)
            total, count = total + loss.item() * len(labels), count + len(labels)
    assert got["loss"] == pytest.approx(total / count, rel=1e-12)
    assert got["spikes_per_sample"] > 0


def test_raster_to_events_is_the_grid_the_losses_assume():
    """Step k of a raster is time k dt in the event backend (the grid of the raster losses)."""
    x = torch.zeros(5, 1, 1, dtype=F64)
    x[3, 0, 0] = 1
    assert raster_to_events(x, 0.5, 2.5).time.tolist() == [[1.5]]
