"""The float simulator: forward contract, the layer-wise / step-wise / fused paths, gradients,
delays, seeds and state dicts.

An independent reference loop (one step at a time over the whole spike history, written
here from the documented semantics) checks the paths the backend takes; finite differences in
float64 check its gradients.
"""

from __future__ import annotations

import pytest
import torch

import workbench.backends as backends
from workbench import build
from workbench.backends import FloatNetwork, projection_key
from workbench.neurons import STEPS, Surrogate, initial_state, lif_parameters
from workbench.spec import INPUT, NetworkSpec, Population, Projection, feedforward

F64 = torch.float64


def spikes_in(shape, rate=0.3, seed=0, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).to(dtype)


def reference_run(spec: NetworkSpec, weights: dict[str, torch.Tensor], x: torch.Tensor):
    """Simulate ``spec`` from the documented semantics, with no code shared with the backend
    beyond the (separately tested) step functions: a synapse with delay ``d`` delivers the
    source's spikes of ``d`` steps ago (``d + 1`` through a recurrent projection)."""
    n_steps, batch = x.shape[:2]
    order = spec.order()
    p = {pop.name: lif_parameters(pop.model, pop.params, spec.dt) for pop in spec.populations}
    states = {n: initial_state((batch, spec.size_of(n)), p[n], x.dtype) for n in order}
    past = {INPUT: []} | {n: [] for n in order}  # past[name][t]: spikes of step t
    out = {n: {"v": [], "i": [], "spikes": []} for n in order}
    for t in range(n_steps):
        past[INPUT].append(x[t])
        for name in order:
            current = torch.zeros(batch, spec.size_of(name), dtype=x.dtype)
            for proj in spec.incoming(name):
                w = weights[projection_key(proj)]
                delay = torch.as_tensor(proj.delay).expand(w.shape)
                lag = delay + (1 if proj.recurrent else 0)
                for d in lag.unique().tolist():
                    if t - d >= 0:
                        current = current + past[proj.source][t - d] @ (w * (lag == d)).T
            pop = spec.population(name)
            states[name], z = STEPS[pop.model](states[name], current, p[name])
            past[name].append(z if pop.spiking else None)
            out[name]["v"].append(states[name].v)
            out[name]["i"].append(states[name].i)
            if pop.spiking:
                out[name]["spikes"].append(z)
    return {n: {k: torch.stack(v) for k, v in rec.items() if v} for n, rec in out.items()}


def assert_traces_equal(a: dict, b: dict, atol: float = 0.0):
    """Same populations and variables; spikes identical, v and i within ``atol``."""
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for var in a[name]:
            if var == "spikes" or atol == 0.0:
                assert torch.equal(a[name][var], b[name][var]), (name, var)
            else:
                torch.testing.assert_close(
                    a[name][var], b[name][var], rtol=0, atol=atol, msg=f"{name}.{var}"
                )


def net64(spec, seed=0, **options) -> FloatNetwork:
    return build(spec, "float", seed=seed, dtype=F64, **options)


# --------------------------------------------------------------------------------- contract
def test_output_is_time_major_and_recordings_are_empty_by_default():
    spec = feedforward([3, 4, 2], n_steps=7)
    result = build(spec, seed=0)(spikes_in((7, 5, 3), dtype=torch.float32))
    assert result.output.shape == (7, 5, 2)
    assert result.output.dtype == torch.float32
    assert result.recordings == {}


def test_input_of_another_length_or_dtype_is_accepted():
    net = net64(feedforward([3, 4, 2], n_steps=7))
    result = net(spikes_in((11, 2, 3), dtype=torch.bool))
    assert result.output.shape == (11, 2, 2) and result.output.dtype == F64


@pytest.mark.parametrize("shape", [(7, 3), (7, 5, 4), (7, 5, 3, 1), (3,)])
def test_bad_input_shape_raises_naming_the_expected_shape(shape):
    net = build(feedforward([3, 4, 2], n_steps=7))
    with pytest.raises(ValueError, match=r"input: shape .* must be \[time, batch, 3\]"):
        net(torch.zeros(shape))


def test_recording_an_unknown_population_raises_naming_the_populations():
    net = build(feedforward([3, 4, 2], n_steps=7))
    with pytest.raises(ValueError, match=r"record: \['hiden'\].*'hidden', 'output'"):
        net(torch.zeros(7, 1, 3), record=["hiden"])


def test_record_accepts_a_single_population_name():
    net = build(feedforward([3, 4, 2], n_steps=7))
    assert set(net(torch.zeros(7, 1, 3), record="hidden").recordings) == {"hidden"}


def test_record_true_records_v_i_spikes_of_every_population_and_li_has_no_spikes():
    spec = feedforward([3, 4, 5, 2], n_steps=9)
    result = net64(spec)(spikes_in((9, 2, 3)), record=True)
    assert list(result.recordings) == ["hidden1", "hidden2", "output"]
    for name, size in [("hidden1", 4), ("hidden2", 5)]:
        rec = result.recordings[name]
        assert set(rec) == {"v", "i", "spikes"}
        assert all(t.shape == (9, 2, size) for t in rec.values())
        assert set(rec["spikes"].unique().tolist()) <= {0.0, 1.0}
    assert set(result.recordings["output"]) == {"v", "i"}
    assert result.recordings["output"]["v"].shape == (9, 2, 2)


def test_record_names_only_the_populations_asked_for():
    spec = feedforward([3, 4, 5, 2], n_steps=9)
    result = net64(spec)(spikes_in((9, 2, 3)), record=["hidden2"])
    assert list(result.recordings) == ["hidden2"]


@pytest.mark.parametrize("fused", [True, False])
def test_li_readout_output_is_its_membrane(fused):
    net = net64(feedforward([3, 4, 2], params={"threshold": 0.1}, n_steps=20))
    net.fused = fused
    result = net(spikes_in((20, 2, 3), rate=0.5), record=True)
    assert result.recordings["hidden"]["spikes"].any()
    assert torch.equal(result.output, result.recordings["output"]["v"])
    assert not set(result.output.unique().tolist()) <= {0.0, 1.0}


def test_spiking_output_population_outputs_its_spikes():
    spec = feedforward([3, 4, 2], output_model="lif", n_steps=9)
    result = net64(spec)(spikes_in((9, 2, 3)), record=True)
    assert torch.equal(result.output, result.recordings["output"]["spikes"])


def test_output_field_picks_the_output_population():
    spec = feedforward([3, 4, 2], n_steps=9)
    spec.output = "hidden"
    result = net64(spec)(spikes_in((9, 2, 3)), record=["hidden"])
    assert torch.equal(result.output, result.recordings["hidden"]["spikes"])


def test_a_spec_without_projections_is_refused_or_rests():
    spec = NetworkSpec(2, [Population("alone", 3)], [], n_steps=5)
    if spec.problems():
        return
    result = net64(spec)(torch.ones(5, 1, 2))
    assert torch.equal(result.output, torch.zeros(5, 1, 3))


# --------------------------------------------------------------------------------- paths agree
def mixed_spec(back_projection: bool) -> NetworkSpec:
    """Per-projection and per-synapse delays, a delayed self-recurrence, refractoriness, ALIF,
    IF and an LI readout; optionally a recurrent projection back from a later population."""
    projections = [
        Projection(
            INPUT, "a", delay=[[(i + j) % 4 for j in range(4)] for i in range(5)], weight_std=1.5
        ),
        Projection("a", "a", recurrent=True, delay=2),
        Projection("a", "b", delay=1),
        Projection(INPUT, "c"),
        Projection("b", "c", delay=[[k % 3 for k in range(4)] for _ in range(3)]),
        Projection("a", "c", recurrent=True, delay=1),  # recurrent, but from an earlier one
        Projection("c", "c", recurrent=True, delay=[[0, 1, 2]] * 3, weight_std=0.3),
        Projection("c", "out"),
        Projection("b", "out", delay=3),
    ]
    if back_projection:
        projections.append(Projection("c", "a", recurrent=True, delay=1, weight_std=0.5))
    return NetworkSpec(
        input_size=4,
        populations=[
            Population(
                "a",
                5,
                "lif",
                {"threshold": 0.5, "refractory_steps": 2, "reset": "subtract", "v_leak": 0.1},
            ),
            Population(
                "b", 4, "alif", {"threshold": 0.3, "adapt_strength": 0.5, "tau_adapt": 30.0}
            ),
            Population("c", 3, "if", {"threshold": 1.0}),
            Population("out", 2, "li"),
        ],
        projections=projections,
        n_steps=30,
    ).validate()


def _fire_in_every_population(traces):
    for name, rec in traces.items():
        if "spikes" in rec:
            assert rec["spikes"].any(), f"{name} never fired: the comparison would be weak"


@pytest.mark.parametrize("fused", [False, True])
def test_layerwise_and_stepwise_paths_agree_exactly(fused):
    spec = mixed_spec(back_projection=False)
    x = spikes_in((30, 3, 4), rate=0.4)
    runs = []
    for layerwise in (True, False):
        net = net64(spec, seed=2)
        assert net.layerwise
        net.layerwise, net.fused, net.kernel = layerwise, fused, "compiled"
        runs.append(net(x, record=True))
    _fire_in_every_population(runs[0].recordings)
    # Spikes identical; v and i within 1e-12: the layer-wise path projects all steps in one
    # product ([T * B, n] @ W.T), the step-wise one a step at a time, and BLAS may sum the two
    # shapes in another order (bit for bit on one CPU, 8e-16 apart on another).
    torch.testing.assert_close(runs[0].output, runs[1].output, rtol=0, atol=1e-12)
    assert_traces_equal(runs[0].recordings, runs[1].recordings, atol=1e-12)


def test_layerwise_and_stepwise_gradients_agree():
    spec = mixed_spec(back_projection=False)
    x = spikes_in((30, 3, 4), rate=0.4)
    grads = []
    for layerwise in (True, False):
        net = net64(spec, seed=2)
        net.layerwise = layerwise
        result = net(x, record=True)
        loss = sum((t**2).sum() for rec in result.recordings.values() for t in rec.values())
        grads.append(torch.autograd.grad(loss, list(net.weights.values())))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert all(g.abs().sum() > 0 for g in grads[0])


@pytest.mark.parametrize("back_projection", [False, True])
def test_simulator_matches_the_reference_loop(back_projection):
    spec = mixed_spec(back_projection)
    net = net64(spec, seed=2)
    assert net.layerwise is (not back_projection)
    x = spikes_in((30, 3, 4), rate=0.4, seed=1)
    result = net(x, record=True)
    expected = reference_run(spec, {k: w.detach() for k, w in net.weights.items()}, x)
    _fire_in_every_population(expected)
    assert_traces_equal(result.recordings, expected, atol=1e-12)


def test_a_recurrent_projection_back_from_a_later_population_forces_the_stepwise_path():
    net = net64(mixed_spec(back_projection=True))
    assert net.layerwise is False


# --------------------------------------------------------------------------------- fused loop
def fusable_spec(
    reset="zero", self_recurrent=False, v_leak=0.0, v_reset=0.0, tau_syn=5.0, model="lif"
) -> NetworkSpec:
    projections = [Projection(INPUT, "hidden", weight_std=2.0), Projection("hidden", "readout")]
    if self_recurrent:
        projections.append(Projection("hidden", "hidden", recurrent=True, weight_std=0.5))
    if model == "if":  # IF hidden and readout (the proxy algorithm's network)
        params = {"reset": reset, "threshold": 0.5, "v_reset": v_reset}
        return NetworkSpec(
            input_size=4,
            populations=[
                Population("hidden", 6, "if", params),
                Population("readout", 3, "if", {**params, "threshold": 0.8}),
            ],
            projections=projections,
            n_steps=30,
        ).validate()
    return NetworkSpec(
        input_size=4,
        populations=[
            Population(
                "hidden",
                6,
                "lif",
                {
                    "reset": reset,
                    "threshold": 0.5,
                    "v_leak": v_leak,
                    "v_reset": v_reset,
                    "tau_syn": tau_syn,
                },
            ),
            Population(
                "readout", 3, "li", {"v_leak": -v_leak, "tau_mem": 10.0, "tau_syn": tau_syn}
            ),
        ],
        projections=projections,
        n_steps=30,
    ).validate()


FUSABLE = {
    "reset zero": {},
    "reset subtract": {"reset": "subtract"},
    "zero, self-recurrent": {"self_recurrent": True},
    "subtract, self-recurrent": {"reset": "subtract", "self_recurrent": True},
    "v_leak": {"v_leak": 0.3},
    "v_leak, v_reset, self-recurrent": {"v_leak": -0.2, "v_reset": 0.1, "self_recurrent": True},
    # tau_syn = 0: no synaptic current (a delta synapse), alpha = 0 and current gain 1
    "delta synapse, self-recurrent": {"tau_syn": 0.0, "self_recurrent": True, "v_leak": 0.1},
    # IF runs through the LIF loop with its input one step ahead (fused.if_scan)
    "if, reset subtract": {"model": "if", "reset": "subtract"},
    "if, reset to v_reset": {"model": "if", "v_reset": 0.1},
}


def _run_with_loss(net, x):
    """Forward with a loss on spikes, v and i of every population, and its gradients."""
    result = net(x, record=True)
    loss = 0.0
    for rec in result.recordings.values():
        for tensor in rec.values():
            ramp = torch.linspace(0.1, 1.0, tensor.shape[-1], dtype=tensor.dtype)
            loss = loss + (tensor * ramp).sum() + (tensor**2).sum()
    grads = torch.autograd.grad(loss, [x, *net.weights.values()])
    return result, grads


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
@pytest.mark.parametrize("case", list(FUSABLE), ids=list(FUSABLE))
def test_fused_loop_agrees_with_the_step_function_loop(case, kernel, monkeypatch):
    spec = fusable_spec(**FUSABLE[case])
    calls = []
    for name in ("lif_scan", "if_scan"):
        original = getattr(backends, name)
        monkeypatch.setattr(
            backends,
            name,
            lambda *args, _run=original, **kw: calls.append(1) or _run(*args, **kw),
        )
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(30, 5, 4, generator=g, dtype=F64) < 0.3) * torch.rand(
        30, 5, 4, generator=g, dtype=F64
    )
    outcome = {}
    for fused in (True, False):
        net = net64(spec, seed=1)
        net.fused, net.kernel = fused, kernel
        before = len(calls)
        outcome[fused] = _run_with_loss(net, x.clone().requires_grad_())
        assert (len(calls) > before) is fused  # the fused loop really ran (or really did not)
    (fused_run, fused_grads), (step_run, step_grads) = outcome[True], outcome[False]
    _fire_in_every_population(step_run.recordings)
    # spikes are identical; v and i may differ in the last bits only, where the fused loop
    # associates the same sums differently ((1 - beta) * v_leak, recurrent input)
    assert_traces_equal(fused_run.recordings, step_run.recordings, atol=1e-12)
    torch.testing.assert_close(fused_run.output, step_run.output, rtol=0, atol=1e-12)
    for a, b in zip(fused_grads, step_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert b.abs().sum() > 0


def test_fused_loop_is_bit_identical_without_leak_or_recurrence():
    """On the compiled kernel; the torch kernel computes the linear parts for all steps at
    once, in another summation order (within 1e-12: the test above)."""
    spec = fusable_spec()
    x = spikes_in((30, 5, 4))
    results = []
    for fused in (True, False):
        net = net64(spec, seed=1)
        net.fused, net.kernel = fused, "compiled"
        results.append(net(x, record=True))
    assert_traces_equal(results[0].recordings, results[1].recordings)


# --------------------------------------------------------------------------------- gradients
def _finite_difference_check(net, loss_fn, eps=1e-6, rtol=1e-6):
    """Compare autograd with central differences for every weight of ``net``."""
    loss = loss_fn()
    grads = torch.autograd.grad(loss, list(net.weights.values()))
    for (key, w), grad in zip(net.weights.items(), grads, strict=True):
        numeric = torch.zeros_like(w)
        with torch.no_grad():
            for index in range(w.numel()):
                flat = w.view(-1)
                keep = flat[index].item()
                flat[index] = keep + eps
                up = loss_fn().item()
                flat[index] = keep - eps
                down = loss_fn().item()
                flat[index] = keep
                numeric.view(-1)[index] = (up - down) / (2 * eps)
        scale = numeric.abs().max().item()
        error = (grad - numeric).abs().max().item()
        if scale == 0.0:  # the loss does not depend on these weights at all
            assert error == 0.0, f"{key}: gradient {error:.3g} where the loss is flat"
        else:
            assert error <= rtol * scale, f"{key}: max error {error:.3g} vs scale {scale:.3g}"


@pytest.mark.parametrize("fused", [True, False])
def test_gradient_of_an_li_network_matches_finite_differences(fused):
    spec = NetworkSpec(
        3,
        [Population("readout", 2, "li", {"v_leak": 0.2, "tau_syn": 3.0})],
        [Projection(INPUT, "readout", delay=[[0, 2, 1], [1, 0, 3]])],
        n_steps=15,
    ).validate()
    net = net64(spec, seed=4)
    net.fused = fused
    x = torch.rand(15, 2, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    _finite_difference_check(net, lambda: (net(x).output ** 2).sum())


@pytest.mark.parametrize("path", ["fused", "step functions", "stepwise"])
def test_gradient_of_a_silent_network_matches_finite_differences(path):
    # Thresholds no membrane reaches, and a triangle surrogate that is exactly zero that far
    # from threshold: the network is smooth, so autograd must equal finite differences.
    spec = NetworkSpec(
        3,
        [
            Population("hidden", 4, "lif", {"threshold": 5.0, "v_leak": 0.1}),
            Population("readout", 2, "li"),
        ],
        [
            Projection(INPUT, "hidden"),
            Projection("hidden", "hidden", recurrent=True),
            Projection("hidden", "readout"),
            Projection(INPUT, "readout", delay=2),
        ],
        n_steps=12,
    ).validate()
    net = net64(spec, seed=6, surrogate=Surrogate("triangle", 1.0))
    net.fused = path == "fused"
    net.layerwise = path != "stepwise"
    x = torch.rand(12, 2, 3, generator=torch.Generator().manual_seed(7), dtype=F64)

    def loss():
        result = net(x, record=["hidden"])
        hidden = result.recordings["hidden"]
        assert not hidden["spikes"].any() and hidden["v"].max() < 4.0  # surrogate is 0 here
        return (result.output**2).sum() + (hidden["v"] ** 2).sum() + hidden["i"].sum()

    _finite_difference_check(net, loss)
    grads = torch.autograd.grad(loss(), list(net.weights.values()))
    assert grads[0].abs().max() > 1e-3  # the input weights shape v and i: a real check


# --------------------------------------------------------------------------------- delays
def one_layer(delay, n_steps=40) -> NetworkSpec:
    return NetworkSpec(
        3,
        [Population("neurons", 4, "lif", {"threshold": 0.3})],
        [Projection(INPUT, "neurons", delay=delay, weight_mean=0.5, weight_std=0.3)],
        n_steps=n_steps,
    ).validate()


@pytest.mark.parametrize("fused", [True, False])
def test_delay_shifts_the_output_spikes_by_exactly_that_many_steps(fused):
    x = spikes_in((40, 2, 3), rate=0.4)
    outputs = {}
    for delay in (0, 3):
        net = net64(one_layer(delay), seed=9)
        net.fused = fused
        outputs[delay] = net(x).output
    assert outputs[0].any()
    assert not outputs[3][:3].any()
    assert torch.equal(outputs[3][3:], outputs[0][:-3])


def test_per_synapse_delays_equal_shifting_each_input_channel():
    delays = [2, 0, 5]
    x = spikes_in((40, 2, 3), rate=0.4)
    delayed = net64(one_layer([delays] * 4), seed=9)(x).output
    shifted = torch.zeros_like(x)
    for channel, d in enumerate(delays):
        shifted[d:, :, channel] = x[: 40 - d, :, channel]
    plain = net64(one_layer(0), seed=9)(shifted).output
    assert plain.any()
    assert torch.equal(delayed, plain)


def test_uniform_per_synapse_delay_equals_the_projection_delay():
    x = spikes_in((40, 2, 3), rate=0.4)
    a = net64(one_layer([[3] * 3] * 4), seed=9)(x, record=True).recordings
    b = net64(one_layer(3), seed=9)(x, record=True).recordings
    assert_traces_equal(a, b)


def test_self_recurrent_spikes_arrive_one_plus_delay_steps_later():
    # one input spike at step 0 makes the neuron fire once; its self-recurrent spike must
    # reach the synaptic current exactly 1 + delay steps after that spike
    for delay in (0, 2):
        spec = NetworkSpec(
            1,
            [Population("n", 1, "if", {"threshold": 1.0, "reset": "zero"})],
            [
                Projection(INPUT, "n", weights=[[1.0]]),
                Projection("n", "n", recurrent=True, delay=delay, weights=[[0.25]]),
            ],
            n_steps=10,
        ).validate()
        x = torch.zeros(10, 1, 1, dtype=F64)
        x[0] = 1.0
        v = net64(spec)(x, record=True).recordings["n"]["v"][:, 0, 0]
        expected = torch.zeros(10, dtype=F64)
        expected[1 + delay :] = 0.25
        assert torch.equal(v, expected), (delay, v)


# --------------------------------------------------------------------------------- weights
def test_same_seed_gives_identical_weights_and_different_seeds_differ():
    spec = feedforward([5, 8, 3])
    a, b, c = (build(spec, seed=s).state_dict() for s in (7, 7, 8))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], c[k]) for k in a)


def test_default_weights_have_std_one_over_sqrt_fan_in():
    spec = NetworkSpec(400, [Population("n", 200, "li")], [Projection(INPUT, "n")])
    w = build(spec, seed=0).weights["input__n"].detach()
    assert w.mean().abs() < 0.01 * 0.05 * 20
    assert w.std().item() == pytest.approx(1 / 20, rel=0.01)


def test_weight_mean_and_std_are_used():
    spec = NetworkSpec(
        4, [Population("n", 3, "li")], [Projection(INPUT, "n", weight_mean=0.5, weight_std=0.0)]
    )
    assert torch.equal(build(spec).weights["input__n"].detach(), torch.full((3, 4), 0.5))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_weights_given_in_the_spec_are_used_exactly(dtype):
    given = [[0.1, 1 / 3, -2.0], [1e-8, 0.0, 7.5]]
    spec = NetworkSpec(
        3, [Population("n", 2, "li")], [Projection(INPUT, "n", weights=given)]
    ).validate()
    for seed in (0, 1):
        w = build(spec, seed=seed, dtype=dtype).weights["input__n"]
        assert w.dtype == dtype and w.requires_grad
        assert torch.equal(w.detach(), torch.tensor(given, dtype=dtype))


def test_state_dict_keys_name_source_and_target():
    spec = mixed_spec(back_projection=True)
    net = build(spec)
    expected = {f"{p.source}__{p.target}" for p in spec.projections}
    assert set(net.weights.keys()) == expected
    assert set(net.state_dict()) == {f"weights.{k}" for k in expected}
    assert all(projection_key(p) == f"{p.source}__{p.target}" for p in spec.projections)
    for proj in spec.projections:
        shape = (spec.size_of(proj.target), spec.size_of(proj.source))
        assert net.weight(proj).shape == shape


def test_state_dict_loads_into_another_network_built_from_the_same_spec():
    spec = mixed_spec(back_projection=True)
    x = spikes_in((30, 2, 4), rate=0.4)
    trained, fresh = net64(spec, seed=1), net64(spec, seed=2)
    assert not torch.equal(trained(x).output, fresh(x).output)
    fresh.load_state_dict(trained.state_dict())
    assert_traces_equal(trained(x, record=True).recordings, fresh(x, record=True).recordings)


def test_state_dict_of_another_spec_is_refused():
    with pytest.raises(RuntimeError):
        build(feedforward([3, 4, 2])).load_state_dict(build(feedforward([3, 5, 2])).state_dict())
