"""The BrainScaleS-2 emulator: limits, 6-bit weights, mismatch per chip, ADC observations,
hardware-in-the-loop gradients, hardware time."""

from dataclasses import replace

import pytest
import torch

from workbench.backends import build
from workbench.hardware.base import deploy
from workbench.hardware.brainscales2 import BrainScaleS2, BrainScaleS2Profile
from workbench.recording import to_dataset
from workbench.spec import NetworkSpec, Population, Projection, SpecError, feedforward
from workbench.widgets.templates import TEMPLATES


def yinyang_spec(hidden=120, **params):
    return feedforward([5, hidden, 3], params=params, dt=0.5, n_steps=60)


def ideal_profile():
    """No mismatch, no noise and an ADC that neither clips nor rounds visibly."""
    return replace(
        BrainScaleS2Profile().scaled(0.0),
        membrane_noise=0.0,
        adc_range=(-1e3, 1e3),
        adc_bits=48,
        adc_period_us=0.5,
    )


def test_a_network_over_the_chip_is_refused_naming_limit_value_and_chip():
    spec = feedforward([5, 600, 3])
    with pytest.raises(SpecError) as info:
        BrainScaleS2(spec)
    message = str(info.value)
    assert (
        "populations[0].size: 'hidden' neurons is 600; BrainScaleS-2 allows at most 509 "
        "(512 neurons on the chip, 3 of them for the other populations)"
    ) in message
    # 600 signed inputs need 1200 synapse rows per output neuron
    assert (
        "populations[0].size: inputs per 'output' neuron (from 'hidden' 600; 2 synapse rows "
        "each) is 600; BrainScaleS-2 allows at most 128 (256 synapse rows)"
    ) in message


def test_a_hidden_population_too_big_is_named_in_every_violation():
    """The Yin-Yang template with 600 hidden neurons: both the chip's neurons and the output's
    synapse rows are exceeded because of the hidden population, so both name its size (the
    output's size, populations[1].size, changes neither)."""
    spec = TEMPLATES["Yin-Yang 5-120-3"]()
    assert spec.population_names == ["hidden", "output"]
    assert all(p.weights is None for p in spec.projections)  # sizes change freely
    spec.population("hidden").size = 600
    found = BrainScaleS2.check(spec)
    assert [v.path for v in found] == ["populations[0].size", "populations[0].size"]
    neurons, rows = found
    assert (neurons.limit, neurons.value) == ("'hidden' neurons", 600)
    assert neurons.allowed.startswith("at most 509 ")
    assert (rows.limit, rows.value) == (
        "inputs per 'output' neuron (from 'hidden' 600; 2 synapse rows each)",
        600,
    )
    assert rows.allowed == "at most 128 (256 synapse rows)"
    # within the limits again when the field named shrinks
    spec.population("hidden").size = 128
    assert BrainScaleS2.check(spec) == []


def test_populations_over_the_chip_only_together_are_named_together():
    spec = feedforward([5, 100, 300, 300], params={"tau_mem": 10.0})
    found = [v for v in BrainScaleS2.check(spec) if v.limit.startswith("neurons")]
    assert [(v.path, v.value, v.allowed) for v in found] == [("populations", 700, "at most 512")]
    assert (
        found[0].limit == "neurons of all populations ('hidden1' 100, 'hidden2' 300, 'output' 300)"
    )


def test_a_fan_in_over_the_synapse_rows_names_the_largest_source():
    # 'h' reads 100 inputs and itself (60): the input channels are the bigger share
    spec = NetworkSpec(
        100,
        [Population("h", 60), Population("out", 2, "li")],
        [Projection("input", "h"), Projection("h", "h", recurrent=True), Projection("h", "out")],
    )
    (rows,) = BrainScaleS2.check(spec)
    assert rows.path == "input_size" and rows.value == 160
    assert rows.limit == "inputs per 'h' neuron (from 'input' 100, 'h' 60; 2 synapse rows each)"
    # 10 inputs and 200 neurons of its own: now 'h' itself is to shrink, for itself and 'out'
    spec = replace(spec, input_size=10, populations=[Population("h", 200), spec.populations[1]])
    found = {v.limit: v.path for v in BrainScaleS2.check(spec)}
    assert found == {
        "inputs per 'h' neuron (from 'input' 10, 'h' 200; 2 synapse rows each)": (
            "populations[0].size"
        ),
        "inputs per 'out' neuron (from 'h' 200; 2 synapse rows each)": "populations[0].size",
    }


def test_time_constants_outside_the_calibratable_range_are_refused():
    with pytest.raises(
        SpecError,
        match=r"tau_mem on the chip is 80 us; BrainScaleS-2 allows "
        r"0.5-60 us",
    ):
        BrainScaleS2(yinyang_spec(tau_mem=80.0))


def test_delays_and_foreign_models_are_refused():
    spec = NetworkSpec(
        2, [Population("h", 4, "if")], [Projection("input", "h", delay=2)], n_steps=10
    )
    problems = str(pytest.raises(SpecError, BrainScaleS2, spec).value)
    assert "model: neuron model is 'if'" in problems and "synaptic delay is 2 steps" in problems


def test_weights_on_the_chip_are_6_bit_signed_per_projection():
    net = BrainScaleS2(yinyang_spec(), profile=BrainScaleS2Profile().scaled(0.0))
    proj = net.spec.projections[0]
    w = net.float_weight(proj).detach()
    scale = w.abs().max() / 63
    digital = net.weight(proj).detach() / scale
    assert torch.allclose(digital, digital.round(), atol=1e-4)
    assert digital.abs().max() <= 63 + 1e-4 and len(digital.round().unique()) <= 127


def test_mismatch_is_drawn_once_per_chip():
    spec = yinyang_spec()
    a, b, c = (BrainScaleS2(spec, chip_seed=s) for s in (0, 0, 1))
    assert torch.equal(a.neuron_params["hidden"].beta, b.neuron_params["hidden"].beta)
    assert not torch.equal(a.neuron_params["hidden"].beta, c.neuron_params["hidden"].beta)
    wide = NetworkSpec(5, [Population("hidden", 500, "lif")], [Projection("input", "hidden")])
    gains = BrainScaleS2(wide, chip_seed=4).synaptic_gain["hidden"]
    assert abs(gains.std().item() - 0.05) < 0.01  # the profile's sigma, within 20 %


def test_the_adc_reports_8_bit_samples_held_for_its_period():
    net = BrainScaleS2(yinyang_spec())
    v = torch.linspace(-1, 3, 60).reshape(60, 1, 1)
    observed = net.observe(v)
    low, high = net.profile.adc_range
    codes = (observed - low) / (high - low) * 255
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    period = 2  # 1 us between samples at dt 0.5 ms / 1000 = 0.5 us per step
    assert torch.equal(observed[0::period], observed[1::period])


def test_training_gradients_flow_to_the_float_weights_through_the_observations():
    net = BrainScaleS2(yinyang_spec())
    x = (torch.rand(60, 8, 5) < 0.1).float()
    net(x).output.max(0).values.sum().backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in net.weights.values())


def test_an_ideal_chip_with_weights_on_its_grid_matches_the_float_simulator():
    spec = yinyang_spec()
    spec.projections[0].weight_std = 2.0
    float_net = build(spec, seed=0, dtype=torch.float64)
    with torch.no_grad():  # put the weights on the 6-bit grid so quantisation is exact
        for w in float_net.weights.values():
            scale = w.abs().max() / 63
            w.copy_(torch.round(w / scale) * scale)
    chip = BrainScaleS2(spec, profile=ideal_profile(), dtype=torch.float64)
    chip.load_state_dict(float_net.state_dict())
    x = (torch.rand(60, 4, 5, generator=torch.Generator().manual_seed(0)) < 0.2).double()
    a, b = float_net(x, record=True), chip(x, record=True)
    assert torch.allclose(a.output, b.output, atol=1e-9)
    assert torch.equal(a.recordings["hidden"]["spikes"], b.recordings["hidden"]["spikes"])
    a.output.sum().backward()
    b.output.sum().backward()
    for key, w in float_net.weights.items():
        assert torch.allclose(w.grad, chip.weights[key].grad, atol=1e-9)


def test_recordings_carry_hardware_time_beside_biological_time():
    net = BrainScaleS2(yinyang_spec())
    result = net((torch.rand(60, 2, 5) < 0.1).float(), record=True)
    ds = to_dataset(result.recordings, net.spec, net.backend_name, speedup=net.speedup)
    assert ds.attrs["backend"] == "brainscales2"
    assert torch.allclose(
        torch.tensor(ds["hardware_time"].values), torch.tensor(ds["time"].values) / 1000
    )


def test_resources_and_deployment_report_what_changed():
    spec = yinyang_spec()
    table = BrainScaleS2.resources(spec).set_index("resource")
    assert table.loc["neurons", "used"] == 123 and table.loc["neurons", "capacity"] == 512
    assert table.loc["synapse rows per neuron (max)", "used"] == 240
    float_net = build(spec, seed=1)
    chip = deploy(float_net, "brainscales2", chip_seed=2)
    report = chip.weights.set_index("projection")
    assert set(report.index) == {"input->hidden", "hidden->output"}
    assert (report["rms_error"] > 0).all() and (report["clipped"] == 0).all()


def test_noise_is_repeatable_in_evaluation_and_fresh_in_training():
    net = BrainScaleS2(yinyang_spec())
    x = (torch.rand(60, 2, 5) < 0.1).float()
    net.eval()
    assert torch.equal(net(x).output, net(x).output)
    net.train()
    assert not torch.equal(net(x).output, net(x).output)


def test_saturation_limits_the_current_reaching_the_membrane():
    spec = NetworkSpec(
        1,
        [Population("o", 1, "li")],
        [Projection("input", "o", weights=[[50.0]])],
        dt=0.5,
        n_steps=20,
    )
    linear = BrainScaleS2(spec, profile=ideal_profile())
    saturated = BrainScaleS2(spec, profile=ideal_profile(), saturation=1.0)
    x = torch.zeros(20, 1, 1)
    x[0] = 1
    assert saturated(x).output.max() < 0.1 * linear(x).output.max()


def test_a_delta_synapse_is_refused_naming_the_field():
    spec = feedforward([3, 4, 2], "lif", "li", params={"tau_syn": 0.0}).validate()
    found = {v.path: v for v in BrainScaleS2.check(spec)}
    assert "populations[0].params.tau_syn" in found
    assert "analog synapse" in found["populations[0].params.tau_syn"].limit
    with pytest.raises(SpecError, match=r"populations\[0\]\.params\.tau_syn"):
        BrainScaleS2(spec)
