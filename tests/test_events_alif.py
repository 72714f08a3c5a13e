"""The ``alif`` on the event backend: with ``tau_adapt == tau_syn`` its AHP is a fixed
self-inhibitory synapse (each spike steps the neuron's own current by ``-adapt_strength``), so
spike times stay exact and EventProp's adjoint takes the AHP like an untrained recurrent weight.

The gradient checks reuse :mod:`test_events`' finite differences (float64, +-1e-6, a weight
skipped when its perturbation adds or removes a spike)."""

import copy

import pytest
import torch
from test_events import (
    assert_gradients_match_finite_differences,
    latency_input,
    loss_of,
    run_with_kernel,
    spike_counts,
)

from workbench.backends import build
from workbench.events import EventNetwork
from workbench.spec import Projection, SpecError, feedforward

F64 = torch.float64
AHP = {"tau_syn": 5.0, "tau_adapt": 5.0, "adapt_strength": 1.5}


def layered(model, readout, params):
    """``3 -> 6 model -> 2 readout``, driven hard enough that most hidden neurons spike more
    than once (the AHP acts only from a neuron's second spike on)."""
    spiking_out = readout != "li"
    spec = feedforward([3, 6, 2], model, readout, params, params if spiking_out else {}, 0.5, 80)
    spec.projections[0].weight_mean, spec.projections[0].weight_std = 6.0, 6.0
    if spiking_out:
        spec.projections[1].weight_mean, spec.projections[1].weight_std = 4.0, 4.0
    return spec


def alif_network(readout, recurrent, seed=0, kernel="compiled"):
    """``3 -> 6 alif -> 2 readout`` (``li`` or ``alif``)."""
    spec = layered("alif", readout, AHP)
    if recurrent:
        spec.projections.append(Projection("hidden", "hidden", recurrent=True, weight_std=2.0))
    net = build(spec, "event", dtype=F64, seed=seed)
    net.kernel = kernel
    return net


def repeat_spikers(times):
    return int((torch.isfinite(times).sum(2) >= 2).sum())


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_the_ahp_is_a_fixed_self_inhibitory_synapse(kernel):
    """A feed-forward alif population equals a lif population with a recurrent projection
    onto itself of weight ``-adapt_strength`` on the diagonal (the recurrent path), in spike
    times, outputs and the gradients of the shared weights."""
    alif = alif_network("alif", recurrent=False, kernel=kernel)
    spec = layered("lif", "lif", {"tau_syn": AHP["tau_syn"]})
    for name, n in (("hidden", 6), ("output", 2)):  # each population's AHP as a self-synapse
        diagonal = (-AHP["adapt_strength"] * torch.eye(n, dtype=F64)).tolist()
        spec.projections.append(Projection(name, name, recurrent=True, weights=diagonal))
    lif = build(spec, "event", dtype=F64)
    lif.kernel = kernel
    lif.load_state_dict(alif.state_dict(), strict=False)
    x = latency_input(80, 5, 3, seed=2)
    labels = torch.tensor([0, 1, 0, 1, 1])
    a_out, a_rec, a_grads = run_with_kernel(alif, kernel, x, labels, "lif")
    l_out, l_rec, l_grads = run_with_kernel(lif, kernel, x, labels, "lif")
    assert repeat_spikers(a_out["hidden"]) >= 10  # the AHP acts
    for name in ("hidden", "output"):
        assert torch.equal(torch.isfinite(a_out[name]), torch.isfinite(l_out[name])), name
        torch.testing.assert_close(a_out[name], l_out[name], rtol=0, atol=1e-10)
        # V includes the AHP; the float simulator's recorded i is the synaptic current alone,
        # and so is the event backend's, so only V is compared with the self-synapse's
        torch.testing.assert_close(a_rec[name]["v"], l_rec[name]["v"], rtol=0, atol=1e-10)
    for name, value in a_grads.items():  # the self-synapses' own gradients aside
        assert value.abs().max() > 0, name
        torch.testing.assert_close(value, l_grads[name], rtol=1e-8, atol=1e-12)


def spike_time_errors(event_times, float_spikes, dt):
    """``|t_event - t_float|`` of every spike, pairing a neuron's spikes in order, and the
    share of (sample, neuron) whose spike counts differ.  A float spike in step ``t`` is
    placed at ``t dt``, the end of the step in which the crossing happened."""
    errors, differ, total = [], 0, 0
    batch, n, _ = event_times.shape
    for b in range(batch):
        for j in range(n):
            exact = event_times[b, j][torch.isfinite(event_times[b, j])]
            stepped = float_spikes[:, b, j].nonzero().flatten().to(F64) * dt
            total += 1
            if len(exact) != len(stepped):
                differ += 1
                continue
            errors.append((exact - stepped).abs())
    return torch.cat(errors), differ / total


@pytest.mark.parametrize("recurrent", [False, True])
def test_event_alif_converges_to_the_time_stepped_alif(recurrent):
    """With ``tau_adapt == tau_syn`` the float simulator's alif (``lif_step``: the AHP acts
    from the step after the spike) approaches the event backend's as ``dt`` shrinks: the same
    spike counts, spike times a few ``dt`` apart (most within one), membranes whose mean
    distance shrinks with ``dt``; and without the AHP the event network spikes far more."""
    errors, distances = {}, {}
    for dt in (0.04, 0.02):
        n_steps = int(30 / dt)
        spec = feedforward([4, 20, 3], "alif", "lif", dt=dt, n_steps=n_steps,
                           params={"tau_adapt": 5.0, "adapt_strength": 2.0})  # fmt: skip
        spec.projections[0].weight_mean, spec.projections[0].weight_std = 4.0, 4.0
        spec.projections[1].weight_mean = 1.0
        if recurrent:
            spec.projections.append(Projection("hidden", "hidden", recurrent=True, weight_std=0.5))
        event_net = build(spec, "event", dtype=F64, seed=1)
        float_net = build(spec, "float", dtype=F64, seed=1)
        float_net.load_state_dict(event_net.state_dict())
        x = torch.zeros(n_steps, 6, 4, dtype=F64)
        steps = (torch.rand(6, 4, generator=torch.Generator().manual_seed(2)) * 20 / dt).long()
        for b in range(6):
            for j in range(4):
                x[steps[b, j], b, j] = 1.0
        with torch.no_grad():
            fr, er = float_net(x, record=True), event_net(x, record=True)
            exact = event_net.simulate(x)["hidden"]
        f_spikes = fr.recordings["hidden"]["spikes"]
        assert f_spikes.sum() > 200
        err, differ = spike_time_errors(exact, f_spikes, dt)
        assert differ <= 0.02, differ
        assert err.median() <= 1.5 * dt and err.max() <= 40 * dt, (err.median(), err.max())
        errors[dt] = err.mean()
        distances[dt] = (er.recordings["hidden"]["v"] - fr.recordings["hidden"]["v"]).abs().mean()
        assert distances[dt] < 0.5 * dt, distances[dt]
        # the AHP matters: the same network without it spikes far more
        no_ahp = copy.deepcopy(spec)
        no_ahp.populations[0].params["adapt_strength"] = 0.0
        plain = build(no_ahp, "event", dtype=F64)
        plain.load_state_dict(event_net.state_dict())
        with torch.no_grad():
            plain_count = torch.isfinite(plain.simulate(x)["hidden"]).sum()
        assert plain_count > 1.2 * torch.isfinite(exact).sum()
    assert errors[0.02] < 0.7 * errors[0.04]
    assert distances[0.02] < 0.7 * distances[0.04]


@pytest.mark.parametrize("readout", ["li", "alif"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_alif_eventprop_gradient_matches_finite_differences(readout, recurrent):
    net = alif_network(readout, recurrent)
    x = latency_input(80, 4, 3, seed=1)
    labels = torch.tensor([0, 1, 0, 1])
    loss_readout = "li" if readout == "li" else "lif"
    counts = assert_gradients_match_finite_differences(
        net,
        lambda: loss_of(net, x, labels, loss_readout),
        lambda out: spike_counts(out, loss_readout),
    )
    assert counts["hidden"] >= 40
    assert repeat_spikers(net.simulate(x)["hidden"]) >= 10  # later spikes feel the AHP


def test_alif_eventprop_gradient_on_the_torch_reference_matches_finite_differences():
    net = alif_network("alif", recurrent=False, kernel="torch")
    x = latency_input(80, 4, 3, seed=1)
    labels = torch.tensor([0, 1, 0, 1])
    counts = assert_gradients_match_finite_differences(
        net, lambda: loss_of(net, x, labels, "lif"), lambda out: spike_counts(out, "lif")
    )
    assert counts["hidden"] >= 40


@pytest.mark.parametrize("readout", ["li", "alif"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_compiled_alif_equals_the_torch_reference(readout, recurrent):
    """Spike times, outputs, recorded membranes (AHP and recurrent jumps included) and
    gradients agree in float64 between the compiled loops and the torch reference."""
    net = alif_network(readout, recurrent)
    x = latency_input(80, 6, 3, seed=3)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    loss_readout = "li" if readout == "li" else "lif"
    ref_out, ref_rec, ref_grads = run_with_kernel(net, "torch", x, labels, loss_readout)
    out, rec, grads = run_with_kernel(net, "compiled", x, labels, loss_readout)
    assert repeat_spikers(ref_out["hidden"]) >= 10
    for name, value in ref_out.items():
        assert torch.equal(torch.isfinite(out[name]), torch.isfinite(value)), name
        torch.testing.assert_close(out[name], value, rtol=0, atol=1e-10)
    for pop, fields in ref_rec.items():
        for field, value in fields.items():
            torch.testing.assert_close(rec[pop][field], value, rtol=0, atol=1e-10)
    for name, value in ref_grads.items():
        assert value.abs().max() > 0, name
        torch.testing.assert_close(grads[name], value, rtol=1e-8, atol=1e-12)


def test_recorded_membranes_of_a_recurrent_population_include_its_recurrent_jumps():
    """A recurrent lif's recorded ``v`` and ``i`` on the event backend hold its own spikes'
    jumps through the recurrent weights: close to the float simulator's at small ``dt``."""
    dt, n_steps = 0.01, 4000
    spec = feedforward([3, 6, 2], "lif", "li", dt=dt, n_steps=n_steps)
    spec.projections[0].weight_mean, spec.projections[0].weight_std = 5.0, 6.0
    spec.projections.append(Projection("hidden", "hidden", recurrent=True, weight_std=2.0))
    event_net = build(spec, "event", dtype=F64, seed=0)
    float_net = build(spec, "float", dtype=F64, seed=0)
    float_net.load_state_dict(event_net.state_dict())
    steps = (torch.rand(2, 3, generator=torch.Generator().manual_seed(1)) * 2000).long()
    x = torch.zeros(n_steps, 2, 3, dtype=F64)
    x[steps, torch.arange(2)[:, None], torch.arange(3)[None, :]] = 1.0
    with torch.no_grad():
        er, fr = event_net(x, record=True), float_net(x, record=True)
    assert er.recordings["hidden"]["spikes"].sum() >= 10
    for field in ("v", "i"):
        distance = (er.recordings["hidden"][field] - fr.recordings["hidden"][field]).abs()
        assert distance.mean() < 0.05, field


def test_alif_with_another_tau_adapt_is_refused_by_field():
    spec = feedforward([3, 4, 2], "alif", "li", params={"tau_syn": 5.0, "tau_adapt": 200.0})
    message = r"populations\[0\]\.params\.tau_adapt: 200\.0 must equal tau_syn \(5\.0\)"
    with pytest.raises(SpecError, match=message) as caught:
        EventNetwork(spec)
    assert "float backend runs any tau_adapt" in str(caught.value)
    with pytest.raises(SpecError, match=r"populations\[0\]\.params\.tau_adapt"):
        build(spec, "event")
    spec = feedforward([3, 4, 2], "lif", "alif", output_params={"tau_adapt": 6.0})
    with pytest.raises(SpecError, match=r"populations\[1\]\.params\.tau_adapt"):
        EventNetwork(spec)
    # an alif without adaptation is a lif, whatever its tau_adapt; equal time constants run
    EventNetwork(feedforward([3, 4, 2], "alif", "li", params={"adapt_strength": 0.0}))
    EventNetwork(feedforward([3, 4, 2], "alif", "li", params={"tau_adapt": 5.0}))
