"""The event-driven simulator (exact spike times) and EventProp's gradients.

Gradient checks: every weight is perturbed by +-1e-6 in float64 and the central difference of
the loss is compared with EventProp's gradient.  A perturbation that adds or removes a spike
makes the loss jump (the exact gradient does not see it), so a weight is checked only when both
perturbed runs have the same number of spikes in every population as the unperturbed run; the
test asserts that nearly all weights pass that filter, that the network spikes, and that the
gradients are not all zero, so the check cannot pass vacuously.
"""

import copy
import gc
import math
import weakref

import pytest
import torch
import torch.nn.functional as F

from workbench import event_kernels
from workbench import events as events_module
from workbench.algorithms.eventprop import EventPropConfig, first_spike_loss, fit
from workbench.backends import build
from workbench.data import LatencyEncoder, load_dataset
from workbench.events import (
    EventNetwork,
    Events,
    Kernel,
    event_weights,
    li_adjoint,
    li_forward,
    raster_to_events,
)
from workbench.experiment import TrainingData
from workbench.spec import Projection, SpecError, feedforward
from workbench.training import BatchEnd, EpochEnd, RunEnd, RunStart, StopSignal

F64 = torch.float64


def latency_input(n_steps, batch, n, seed, latest=30):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n_steps, batch, n, dtype=F64)
    steps = torch.randint(0, latest, (batch, n), generator=g)
    for b in range(batch):
        for j in range(n):
            x[steps[b, j], b, j] = 1.0
    return x


def network(readout, recurrent, seed=0, n_steps=80):
    spec = feedforward([3, 6, 2], "lif", readout, dt=0.5, n_steps=n_steps)
    spec.projections[0].weight_mean, spec.projections[0].weight_std = 5.0, 6.0
    if readout == "lif":
        spec.projections[1].weight_mean, spec.projections[1].weight_std = 4.0, 4.0
    if recurrent:
        spec.projections.append(Projection("hidden", "hidden", recurrent=True, weight_std=2.0))
    return build(spec, "event", dtype=F64, seed=seed)


def loss_of(net, x, labels, readout):
    out = net.simulate(x)
    if readout == "li":
        loss = F.cross_entropy(out["output"].max(0).values, labels)
    else:
        first = out["output"][:, :, 0]
        first = torch.where(torch.isfinite(first), first, torch.full_like(first, 40.0))
        loss = first_spike_loss(first, labels, 2.0, 6.4, 0.01) + 0.1 * out["peak"].sum()
    # a term on every hidden spike time too, so the hidden layer's own jumps are exercised
    hidden = out["hidden"]
    return loss + 0.01 * torch.where(torch.isfinite(hidden), hidden, 0.0).sum(), out


def spike_counts(out, readout):
    return {
        k: int(torch.isfinite(v).sum()) for k, v in out.items() if k == "hidden" or readout == "lif"
    }


def assert_gradients_match_finite_differences(net, loss_and_outputs, counts_of, eps=1e-6):
    """EventProp's gradient of ``loss_and_outputs() -> (loss, outputs)`` against central
    differences of every weight of ``net`` (float64), skipping a weight whose perturbation
    changes ``counts_of(outputs)`` (a spike added or removed); at least 90 % must be checked,
    every weight matrix must get a gradient, and the worst relative error must be < 1e-5.
    Returns the spike counts of the unperturbed run."""
    loss, out = loss_and_outputs()
    loss.backward()
    counts = counts_of(out)
    checked, skipped, worst = 0, 0, 0.0
    for name, p in net.weights.items():
        assert p.grad is not None and p.grad.abs().max() > 0, name
        for k in range(p.numel()):
            values = []
            same = True
            for sign in (1, -1):
                with torch.no_grad():
                    p.view(-1)[k] += sign * eps
                    perturbed, out_p = loss_and_outputs()
                    p.view(-1)[k] -= sign * eps
                same &= counts_of(out_p) == counts
                values.append(perturbed.item())
            if not same:
                skipped += 1
                continue
            numeric = (values[0] - values[1]) / (2 * eps)
            exact = p.grad.view(-1)[k].item()
            scale = max(abs(numeric), abs(exact))
            if scale > 1e-8:
                worst = max(worst, abs(numeric - exact) / scale)
            checked += 1
    assert checked >= 0.9 * (checked + skipped)
    assert worst < 1e-5, worst
    return counts


@pytest.mark.parametrize("readout", ["li", "lif"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_eventprop_gradient_matches_finite_differences(readout, recurrent):
    net = network(readout, recurrent)
    x = latency_input(80, 4, 3, seed=1)
    labels = torch.tensor([0, 1, 0, 1])
    counts = assert_gradients_match_finite_differences(
        net, lambda: loss_of(net, x, labels, readout), lambda out: spike_counts(out, readout)
    )
    assert counts["hidden"] >= 20


def test_leaky_integrator_matches_the_time_stepped_simulator_exactly():
    spec = feedforward([4, 3], "lif", "li", dt=0.5, n_steps=40)
    float_net = build(spec, "float", dtype=F64)
    event_net = build(spec, "event", dtype=F64)
    event_net.load_state_dict(float_net.state_dict())
    x = (torch.rand(40, 5, 4, generator=torch.Generator().manual_seed(0)) < 0.1).to(F64)
    torch.testing.assert_close(event_net(x).output, float_net(x).output, rtol=0, atol=1e-12)


def test_spike_times_converge_to_the_time_stepped_simulator():
    """As dt shrinks, the float simulator's spikes (found at the end of a step) approach the
    exact times: nearly the same spike counts, and each hidden neuron's first spike within
    one step of the exact one."""
    for dt in (0.05, 0.01):
        n_steps = int(40 / dt)
        spec = feedforward([4, 30, 3], "lif", "lif", dt=dt, n_steps=n_steps)
        spec.projections[0].weight_mean, spec.projections[0].weight_std = 4.0, 4.0
        spec.projections[1].weight_mean = 1.0
        float_net = build(spec, "float", dtype=F64, seed=1)
        event_net = build(spec, "event", dtype=F64, seed=1)
        x = torch.zeros(n_steps, 6, 4, dtype=F64)
        steps = (torch.rand(6, 4, generator=torch.Generator().manual_seed(2)) * 20 / dt).long()
        for b in range(6):
            for j in range(4):
                x[steps[b, j], b, j] = 1.0
        fr, er = float_net(x, record=True), event_net(x, record=True)
        f_spikes, e_spikes = fr.recordings["hidden"]["spikes"], er.recordings["hidden"]["spikes"]
        assert f_spikes.sum() > 20
        assert (f_spikes.sum() - e_spikes.sum()).abs() <= 0.02 * e_spikes.sum()
        exact = event_net.simulate(x)["hidden"][:, :, 0].detach().T  # [neurons, batch]
        stepped = (f_spikes.cumsum(0) == 0).sum(0).to(F64).T * dt  # start of the spike step
        fired = f_spikes.sum(0).T > 0
        assert torch.equal(fired, torch.isfinite(exact))
        assert (stepped - exact)[fired].abs().max() <= dt + 1e-9


def test_crossing_is_exact_and_the_first():
    kernel = Kernel(20.0, 5.0, 1.0)
    v = torch.tensor([0.0, 0.3, -0.2], dtype=F64)
    i = torch.tensor([9.0, 8.0, 30.0], dtype=F64)
    crosses, u_peak, v_peak = kernel.peak(v, i, torch.full_like(v, 50.0))
    assert crosses.all()
    u = kernel.crossing(v, i, u_peak, v_peak)
    v_at, _ = kernel.advance(v, i, u)
    torch.testing.assert_close(v_at, torch.ones_like(v), rtol=0, atol=1e-12)
    fine = torch.linspace(0, 1, 10001, dtype=F64)[:, None] * u  # nothing crosses earlier
    assert (kernel.advance(v, i, fine)[0][:-1] < 1.0).all()
    too_weak = kernel.peak(v, torch.tensor([3.0, 2.0, 1.0], dtype=F64), torch.full_like(v, 50.0))
    assert not too_weak[0].any()


def test_recurrent_path_equals_feedforward_path_without_recurrent_weights():
    spec = feedforward([3, 8, 2], "lif", "lif", dt=0.5, n_steps=80)
    spec.projections[0].weight_mean, spec.projections[0].weight_std = 5.0, 5.0
    spec.projections[1].weight_mean = 3.0
    plain = build(spec, "event", dtype=F64, seed=4)
    spec = copy.deepcopy(spec)
    spec.projections.append(Projection("hidden", "hidden", recurrent=True, weights=[[0.0] * 8] * 8))
    looped = build(spec, "event", dtype=F64, seed=4)
    looped.load_state_dict(plain.state_dict(), strict=False)
    x = latency_input(80, 5, 3, seed=2)
    a, b = plain.simulate(x), looped.simulate(x)
    assert torch.isfinite(a["hidden"]).sum() > 10
    torch.testing.assert_close(a["hidden"], b["hidden"], rtol=0, atol=1e-10)
    torch.testing.assert_close(a["output"], b["output"], rtol=0, atol=1e-10)


def test_memory_of_the_adjoint_does_not_grow_with_time_steps():
    """The backward pass keeps spikes, not states per step: the saved simulation of the same
    input spikes is the same size at 100 and 1600 steps."""
    sizes = []
    for n_steps in (100, 1600):
        dt = 50.0 / n_steps
        spec = feedforward([3, 20, 2], "lif", "lif", dt=dt, n_steps=n_steps)
        spec.projections[0].weight_mean, spec.projections[0].weight_std = 5.0, 5.0
        spec.projections[1].weight_mean = 2.0
        net = build(spec, "event", dtype=F64, seed=0)
        x = torch.zeros(n_steps, 4, 3, dtype=F64)
        for j in range(3):
            x[int((5 + 5 * j) / dt), :, j] = 1.0
        sim_outputs = net.simulate(x)
        state = net._last.pops
        saved = sum(
            t.numel()
            for pop in state.values()
            for t in (pop["times"], pop["currents"], pop["jumps"], pop["events"].time)
        )
        sizes.append(saved)
        assert torch.isfinite(sim_outputs["hidden"]).any()
    assert sizes[0] == sizes[1]


def test_specs_the_event_backend_cannot_run_are_refused_by_field():
    spec = feedforward([3, 4, 2], "if", "li")
    with pytest.raises(SpecError, match=r"populations\[0\]\.model"):
        EventNetwork(spec)
    spec = feedforward([3, 4, 2], "lif", "li", params={"refractory_steps": 2})
    with pytest.raises(SpecError, match=r"refractory_steps"):
        EventNetwork(spec)
    spec = feedforward([3, 4, 2], "lif", "li", params={"tau_mem": 5.0, "tau_syn": 5.0})
    with pytest.raises(SpecError, match=r"tau_syn"):
        EventNetwork(spec)


def test_state_dict_moves_between_event_and_float_backends():
    spec = feedforward([3, 4, 2], "lif", "li")
    event_net = build(spec, "event", seed=3)
    float_net = build(spec, "float", seed=0)
    float_net.load_state_dict(event_net.state_dict())
    for key, value in event_net.state_dict().items():
        assert torch.equal(float_net.state_dict()[key], value)


@pytest.fixture(scope="module")
def small_task():
    dataset = load_dataset("yinyang", train_size=96, validation_size=64, test_size=64)
    encoder = LatencyEncoder(n_steps=100, dt=0.5, t_early=0.0, t_late=30.0, bias_time=0.0)
    return TrainingData(dataset, encoder, seed=1)


def small_yinyang(backend="event"):
    spec = feedforward([5, 30, 3], "lif", "lif", dt=0.5, n_steps=100)
    spec.projections[0].weight_mean, spec.projections[0].weight_std = 1.5, 1.5
    spec.projections[1].weight_mean, spec.projections[1].weight_std = 0.5, 0.5
    return build(spec, backend, seed=0)


def test_fit_reports_events_and_stops(small_task):
    seen = []
    stop = StopSignal()

    def callback(event):
        seen.append(event)
        if isinstance(event, EpochEnd):
            stop.set()

    config = EventPropConfig(epochs=3, batch_size=32, lr=5e-3, sample_every=2)
    history = fit(small_yinyang(), small_task, config, callbacks=[callback], stop=stop)
    kinds = [type(e) for e in seen]
    assert kinds[0] is RunStart and kinds[-1] is RunEnd
    assert kinds.count(EpochEnd) == 1 and kinds.count(BatchEnd) == 3
    assert history.stopped and len(history) == 1
    assert math.isfinite(history.rows[0]["train_loss"])


def test_fit_trains_a_float_network_through_an_event_copy(small_task):
    net = small_yinyang("float")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(0)
    fit(net, small_task, EventPropConfig(epochs=1, batch_size=32, sample_every=0))
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_config_problems_name_the_field():
    problems = EventPropConfig(tau0=0.0, alpha=-1.0, max_spikes=0, readout="spike_count")
    paths = {p.path for p in problems.problems()}
    assert {"tau0", "alpha", "max_spikes", "readout"} <= paths


def test_a_training_step_leaves_no_simulation_behind():
    """The simulation of a step is freed once its outputs are gone (a reference cycle through
    autograd's graph once kept every batch's simulation alive: gigabytes per epoch)."""
    net = network("lif", recurrent=False)
    x = latency_input(80, 4, 3, seed=1)
    labels = torch.tensor([0, 1, 0, 1])
    loss, out = loss_of(net, x, labels, "lif")
    loss.backward()
    first = weakref.ref(net._last)
    del loss, out
    net.simulate(x)  # replaces the network's reference to the last simulation
    gc.collect()
    assert first() is None


def test_a_delta_synapse_is_refused_by_field_not_divided_by():
    """tau_syn = 0 (no synaptic current) is a valid spec, but the event kernel needs tau_syn > 0:
    a Problem naming the field, never a ZeroDivisionError."""
    spec = feedforward([3, 4, 2], "lif", "li", params={"tau_syn": 0.0}).validate()
    with pytest.raises(SpecError, match=r"populations\[0\]\.params\.tau_syn: 0 \(no synaptic"):
        EventNetwork(spec)
    with pytest.raises(SpecError, match=r"populations\[0\]\.params\.tau_syn"):
        build(spec, "event")


# ------------------------------------------------------------------------------ compiled loops
def run_with_kernel(net, kernel, x, labels, readout):
    """Outputs, recordings and weight gradients of one forward and backward pass on ``kernel``
    (``"compiled"``: the Numba loops of ``workbench.event_kernels``; ``"torch"``: the
    reference)."""
    net.kernel = kernel
    for p in net.weights.values():
        p.grad = None
    loss, out = loss_of(net, x, labels, readout)
    loss.backward()
    recordings = net(x, record=True).recordings
    grads = {name: p.grad.clone() for name, p in net.weights.items()}
    return {k: v.detach() for k, v in out.items()}, recordings, grads


@pytest.mark.parametrize("readout", ["li", "lif"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_compiled_loops_equal_the_torch_reference(readout, recurrent):
    """Spike times, outputs, recorded membranes and EventProp's gradients agree in float64
    between the compiled loops and the torch reference, for feed-forward and recurrent
    populations."""
    net = network(readout, recurrent)
    x = latency_input(80, 6, 3, seed=3)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    ref_out, ref_rec, ref_grads = run_with_kernel(net, "torch", x, labels, readout)
    out, rec, grads = run_with_kernel(net, "compiled", x, labels, readout)
    assert torch.isfinite(ref_out["hidden"]).sum() >= 30  # the comparison is not vacuous
    for name, value in ref_out.items():
        assert torch.equal(torch.isfinite(out[name]), torch.isfinite(value)), name
        torch.testing.assert_close(out[name], value, rtol=0, atol=1e-10)
    for pop, fields in ref_rec.items():
        for field, value in fields.items():
            torch.testing.assert_close(rec[pop][field], value, rtol=0, atol=1e-10)
    for name, value in ref_grads.items():
        assert value.abs().max() > 0, name
        torch.testing.assert_close(grads[name], value, rtol=1e-8, atol=1e-12)


def test_compiled_leaky_integrator_on_input_events_at_grid_times_equals_the_reference():
    """A leaky integrator fed by the input directly: its events sit exactly on grid times,
    where the reference counts an event in the grid value at its own time but its adjoint
    (and so dL/d event time) only in the grid values strictly after it; a loss on every grid
    value makes the adjoint's jumps dense."""
    x = (torch.rand(40, 5, 4, generator=torch.Generator().manual_seed(1)) < 0.2).to(F64)
    x[3, :, 0] = 2.0  # two spikes at once
    grid = torch.arange(40, dtype=F64) * 0.5
    events = raster_to_events(x, 0.5, 20.0)
    w_t = torch.cat([torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=F64),
                     torch.zeros(1, 3, dtype=F64)])  # fmt: skip
    jumps = event_weights(events, w_t)
    kernel = Kernel(20.0, 5.0, 1.0)
    grad_v = torch.randn(40, 5, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    v, i = li_forward(events, jumps, kernel, grid)
    fast_v, fast_i = event_kernels.leaky_grid(events, jumps, kernel, grid)
    torch.testing.assert_close(fast_v, v, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast_i, i, rtol=0, atol=1e-12)
    mu_i, dtime = li_adjoint(grad_v, events, jumps, kernel, grid)
    fast_mu_i, fast_mu_v = event_kernels.leaky_adjoint(grad_v, events, jumps, kernel, grid)
    torch.testing.assert_close(fast_mu_i, mu_i, rtol=1e-9, atol=1e-12)
    fast_dtime = (jumps * (fast_mu_i / kernel.tau_syn - fast_mu_v / kernel.tau_mem)).sum(-1)
    torch.testing.assert_close(fast_dtime, dtime, rtol=1e-9, atol=1e-12)


def test_the_torch_kernel_is_the_reference_fallback():
    """``kernel = "torch"`` (or ``WORKBENCH_KERNEL=torch``) runs the plain torch path; the
    compiled loops are the default on the CPU."""
    net = network("lif", recurrent=False)
    x = latency_input(80, 2, 3, seed=1)
    net.kernel = "torch"
    net.simulate(x)
    assert not net._last.compiled
    net.kernel = "compiled"
    net.simulate(x)
    assert net._last.compiled


# ------------------------------------------------------------------------------ input events
def one_event_per_spike(x: torch.Tensor, dt: float, t_end: float) -> Events:
    """The input as one event per spike (``source``/``amount``), the form the simulation took
    before a step's spikes were merged into one event (``Events.counts``)."""
    counts = x.permute(1, 0, 2)
    b, t, j = counts.nonzero(as_tuple=True)
    per_sample = torch.bincount(b, minlength=x.shape[1])
    rank = torch.arange(len(b)) - (torch.cumsum(per_sample, 0) - per_sample)[b]
    width = int(per_sample.max())
    time = torch.full((x.shape[1], width), t_end, dtype=x.dtype)
    source = torch.full((x.shape[1], width), x.shape[2], dtype=torch.long)
    amount = torch.zeros((x.shape[1], width), dtype=x.dtype)
    time[b, rank], source[b, rank], amount[b, rank] = t.to(x.dtype) * dt, j, counts[b, t, j]
    return Events(time, source, amount, None, per_sample)


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
@pytest.mark.parametrize("readout", ["li", "lif"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_a_steps_input_spikes_as_one_event_equal_one_event_each(
    kernel, readout, recurrent, monkeypatch
):
    """Dense input (each of 3 channels spikes at half the steps, some twice): merging a step's
    spikes into one event leaves spike times, outputs and EventProp's gradients as they are
    with one event per spike, in float64 and on both kernels."""
    net = network(readout, recurrent)
    with torch.no_grad():  # outputs that rise, so that their maxima have a gradient
        net.weights["hidden__output"].abs_()
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(80, 6, 3, generator=g, dtype=F64) < 0.5).to(F64)
    x[::7] *= 2.0  # two spikes of one channel at once
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    merged = raster_to_events(x, 0.5, 40.0)
    assert merged.time.shape[1] < 0.7 * one_event_per_spike(x, 0.5, 40.0).time.shape[1]
    out, _, grads = run_with_kernel(net, kernel, x, labels, readout)
    monkeypatch.setattr(events_module, "raster_to_events", one_event_per_spike)
    ref_out, _, ref_grads = run_with_kernel(net, kernel, x, labels, readout)
    assert torch.isfinite(ref_out["hidden"]).sum() >= 30  # the comparison is not vacuous
    for name, value in ref_out.items():
        assert torch.equal(torch.isfinite(out[name]), torch.isfinite(value)), name
        torch.testing.assert_close(out[name], value, rtol=0, atol=1e-10)
    for name, value in ref_grads.items():
        assert value.abs().max() > 0, name
        torch.testing.assert_close(grads[name], value, rtol=1e-8, atol=1e-12)


def test_a_saved_eventprop_run_evaluates_with_the_spikes_it_trained_with(tmp_path):
    """``max_spikes`` is a training setting, not part of the spec: a reloaded run's event
    network follows as many spikes per neuron as training did (with the simulator's default
    instead, the same weights gave 78 % where the run had measured 99 %)."""
    from workbench import experiment

    config = experiment.reference_config("yinyang", "eventprop", "event")
    config.hidden = [40]
    config.dataset_options = {"train_size": 64, "validation_size": 64, "test_size": 64}
    config.training.update(epochs=1, max_spikes=2)
    run = experiment.train(config)
    folder = experiment.save_run(run, tmp_path / "run")
    reloaded = experiment.load_run(folder)
    assert reloaded.network.max_spikes == 2
    again = experiment.evaluate_run(folder)
    for key in ("test_accuracy", "val_accuracy", "test_spikes_per_sample"):
        assert again[key] == run.metrics[key], key
