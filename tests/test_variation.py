"""Device variation on the float simulator: fixed-pattern mismatch per chip seed and temporal
membrane noise, as BrainScaleS-2 has them (workbench.variation)."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch

from workbench.backends import build
from workbench.compare import sweep_grid
from workbench.experiment import config_problems, prepare, reference_config
from workbench.hardware.brainscales2 import BrainScaleS2, BrainScaleS2Profile
from workbench.limits import backend_option_problems
from workbench.spec import NetworkSpec, Population, Projection, SpecError, feedforward
from workbench.variation import VariationProfile

BASE = {
    "mismatch_tau_mem": 0.05,
    "mismatch_tau_syn": 0.05,
    "mismatch_leak": 0.02,
    "mismatch_threshold": 0.05,
    "mismatch_synaptic_gain": 0.05,
    "membrane_noise": 0.01,
}


def yinyang_spec(hidden=120):
    return feedforward([5, hidden, 3], dt=0.5, n_steps=60)


def spikes(batch=4, seed=0, steps=60, inputs=5, p=0.2):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, batch, inputs, generator=generator) < p).float()


def run(net, x):
    """Output, hidden recordings and weight gradients of one training-mode pass."""
    result = net(x, record=True)
    (result.output.sum() + result.recordings["hidden"]["v"].sum()).backward()
    grads = {k: w.grad.clone() for k, w in net.weights.items()}
    return result, grads


# ------------------------------------------------------------------------------------ zero
@pytest.mark.parametrize(
    "options",
    [
        {"profile": {}},
        {"profile": VariationProfile(), "chip_seed": 7, "noise_seed": 3},
        {"profile": VariationProfile(**BASE).scaled(0.0), "chip_seed": 2},
    ],
)
def test_a_zero_profile_is_the_plain_float_network_bit_for_bit(options, monkeypatch):
    spec, x = yinyang_spec(), spikes()
    plain, varied = build(spec, "float", seed=1), build(spec, "float", seed=1, **options)
    assert not varied.varied and varied.synaptic_gain == {}
    # the fast path: the same per-population constants (numbers, not per-neuron tensors)...
    assert varied.neuron_params == plain.neuron_params
    # ...and the plain loop, never the per-neuron one
    monkeypatch.setattr(type(varied), "_run_varied", lambda *a: pytest.fail("varied path"))
    a, grads_a = run(plain, x)
    b, grads_b = run(varied, x)
    assert torch.equal(a.output, b.output)
    for name in ("hidden", "output"):
        for key in a.recordings[name]:
            assert torch.equal(a.recordings[name][key], b.recordings[name][key])
    assert all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a)


def test_scaled_multiplies_every_figure_and_zero_is_ideal():
    profile = VariationProfile(**BASE)
    ideal = asdict(VariationProfile())
    # every variation figure doubled; the non-linearity's figures are not variation
    assert asdict(profile.scaled(2.0)) == {**ideal, **{k: 2 * v for k, v in BASE.items()}}
    assert profile.varies and not profile.scaled(0.0).varies
    figures = VariationProfile().figures().set_index("figure")["value"]
    assert figures[[*BASE, "integration_nonlinearity"]].eq(0).all()


# ------------------------------------------------------------------------------------ mismatch
def test_drawn_neurons_have_the_asked_spread():
    n = 4000
    spec = NetworkSpec(5, [Population("hidden", n, "lif")], [Projection("input", "hidden")])
    net = build(spec, "float", profile=BASE, chip_seed=11, dtype=torch.float64)
    p, nominal = net.neuron_params["hidden"], spec.populations[0].params
    # Standard error of a sample sigma is sigma / sqrt(2 n) (~0.0006 here): 5 of them.
    tolerance = 5 * 0.05 / math.sqrt(2 * n)
    threshold = p.threshold / nominal["threshold"]
    assert abs(threshold.mean().item() - 1) < tolerance
    assert abs(threshold.std().item() - 0.05) < tolerance
    gain = net.synaptic_gain["hidden"]
    assert abs(gain.std().item() - 0.05) < tolerance
    tau_mem = -spec.dt / torch.log(p.beta) / nominal["tau_mem"]
    assert abs(tau_mem.std().item() - 0.05) < tolerance
    leak = p.v_leak - nominal["v_leak"]
    assert abs(leak.std().item() - 0.02) < 5 * 0.02 / math.sqrt(2 * n)
    # the synaptic gain scales each target neuron's row of weights
    assert torch.equal(
        net.weight(spec.projections[0]), net.weights["input__hidden"] * gain[:, None]
    )


def test_the_same_chip_seed_is_the_same_chip_and_another_is_another():
    spec = yinyang_spec()
    a = build(spec, "float", seed=0, profile=BASE, chip_seed=3)
    b = build(spec, "float", seed=5, profile=BASE, chip_seed=3, noise_seed=9)
    c = build(spec, "float", seed=0, profile=BASE, chip_seed=4)
    for name, keys in (("hidden", ("beta", "alpha", "v_leak", "threshold")), ("output", ("beta",))):
        for key in keys:
            same = getattr(a.neuron_params[name], key)
            assert torch.equal(same, getattr(b.neuron_params[name], key))  # seed-independent
            assert not torch.equal(same, getattr(c.neuron_params[name], key))
        assert torch.equal(a.synaptic_gain[name], b.synaptic_gain[name])
        assert not torch.equal(a.synaptic_gain[name], c.synaptic_gain[name])
    c.load_state_dict(a.state_dict())  # the same weights on another chip: another output
    a.eval(), c.eval()
    x = spikes(8)
    assert not torch.equal(a(x).output, c(x).output)


def test_brainscales2_and_the_float_simulator_draw_a_chip_alike():
    """One drawing code: the float simulator with the chip's mismatch figures draws the same
    neurons for the same chip seed."""
    chip_profile = BrainScaleS2Profile()
    figures = {k: getattr(chip_profile, k) for k in BASE}
    spec = feedforward([5, 120, 3], dt=0.5, n_steps=60)
    chip = BrainScaleS2(spec, chip_seed=6)
    float_net = build(spec, "float", profile=figures, chip_seed=6)
    for name in ("hidden", "output"):
        for x, y in zip(chip.neuron_params[name], float_net.neuron_params[name]):
            if x is None or y is None:  # no current mirror on either
                assert x is y
            else:
                assert torch.equal(torch.as_tensor(x), torch.as_tensor(y))
        assert torch.equal(chip.synaptic_gain[name], float_net.synaptic_gain[name])


# ------------------------------------------------------------------------------------ noise
def test_noise_is_repeatable_in_evaluation_and_fresh_in_training():
    net = build(yinyang_spec(), "float", profile={"membrane_noise": 0.05}, chip_seed=1)
    plain = build(yinyang_spec(), "float")
    x = spikes(8)
    net.eval()
    first = net(x, record=True).recordings["hidden"]["v"]
    assert torch.equal(first, net(x, record=True).recordings["hidden"]["v"])
    assert not torch.equal(first, plain(x, record=True).recordings["hidden"]["v"])
    net.train()
    with torch.no_grad():
        assert not torch.equal(net(x).output, net(x).output)


def test_the_membrane_noise_has_its_stationary_spread():
    """An Ornstein-Uhlenbeck membrane without input: after a few tau_mem, V - v_leak spreads
    with sigma = membrane_noise (each population its own noise)."""
    spec = NetworkSpec(
        1,
        [Population("a", 50, "li"), Population("b", 50, "li")],
        [Projection("input", "a", weight_std=0.0), Projection("input", "b", weight_std=0.0)],
        dt=0.5,
        n_steps=2000,
        output="b",
    )
    net = build(spec, "float", profile={"membrane_noise": 0.1}, dtype=torch.float64).eval()
    result = net(torch.zeros(2000, 16, 1, dtype=torch.float64), record=True)
    a, b = (result.recordings[k]["v"][400:] for k in ("a", "b"))
    # tau_mem = 20 ms = 40 steps: ~16 * 50 * 1600 / 80 = 16,000 independent samples, 1 % SE
    assert abs(a.std().item() - 0.1) < 0.005 and abs(b.std().item() - 0.1) < 0.005
    assert abs(a.mean().item()) < 0.005
    assert abs(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()) < 0.02


# ------------------------------------------------------------------------------------ training
def test_gradients_are_finite_and_flow_with_variation_on():
    spec = yinyang_spec()
    spec.projections[0].weight_std = 2.0
    net = build(spec, "float", seed=0, profile=VariationProfile(**BASE).scaled(2.0))
    assert net.varied and net.training
    result, grads = run(net, spikes(16))
    assert result.recordings["hidden"]["spikes"].sum() > 0
    for g in grads.values():
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_a_run_takes_the_variation_through_its_backend_options():
    config = reference_config("yinyang", "surrogate", "float", 0)
    config.backend_options = {"profile": {"mismatch_threshold": 0.05}, "chip_seed": 4}
    assert config_problems(config) == []
    _, spec, network, _ = prepare(config)
    assert network.varied and network.chip_seed == 4
    threshold = network.neuron_params[spec.populations[0].name].threshold
    assert torch.is_tensor(threshold) and threshold.std() > 0
    cells = sweep_grid(
        "yinyang", "surrogate", {"backend_options.profile.membrane_noise": [0.0, 0.01]}, "float"
    )
    assert [c["params"] for c in cells] == [
        {"backend_options.profile.membrane_noise": 0.0},
        {"backend_options.profile.membrane_noise": 0.01},
    ]


def test_the_command_line_passes_backend_options_with_profile_figures():
    from workbench.cli import config_from_args, make_parser

    def config(*options):
        argv = ["train", "--dataset", "yinyang", "--out", "unused"]
        for option in options:
            argv += ["--backend-option", option]
        return config_from_args(make_parser().parse_args(argv))

    made = config("profile.mismatch_threshold=0.05", "chip_seed=3", "profile.membrane_noise=0.01")
    assert made.backend == "float" and made.backend_options == {
        "profile": {"mismatch_threshold": 0.05, "membrane_noise": 0.01},
        "chip_seed": 3,
    }
    assert config_problems(made) == []
    with pytest.raises(SpecError, match="more than once"):
        config("chip_seed=1", "chip_seed=2")
    refused = config("profile.mismatch_threshold=-0.05")
    assert [p.path for p in config_problems(refused)] == [
        "backend_options.profile.mismatch_threshold"
    ]


# ------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    "options, path, message",
    [
        ({"profile": {"mismatch_threshold": -0.05}}, "profile.mismatch_threshold", ">= 0"),
        ({"profile": {"membrane_noise": 50}}, "profile.membrane_noise", "<= 10"),
        ({"profile": {"mismatch_tau_mem": "x"}}, "profile.mismatch_tau_mem", "a number"),
        ({"profile": {"jitter": 0.1}}, "profile.jitter", "mismatch_threshold"),
        ({"chip_seed": 1.5}, "chip_seed", "an integer >= 0 and <= 4294967295"),
        ({"noise_seed": -1}, "noise_seed", "an integer >= 0"),
        ({"profile": 0.1}, "profile", "must be an object"),
    ],
)
def test_bad_options_are_refused_naming_the_field_and_range(options, path, message):
    found = {p.path: p.message for p in backend_option_problems("float", options)}
    assert f"backend_options.{path}" in found, found
    assert message in found[f"backend_options.{path}"]


def test_the_backend_refuses_a_negative_sigma_and_a_model_without_variation():
    with pytest.raises(SpecError) as error:
        build(yinyang_spec(), "float", profile={"mismatch_leak": -0.1})
    assert "profile.mismatch_leak" in str(error.value) and ">= 0" in str(error.value)
    spec = feedforward([5, 20, 3], model="alif")
    build(spec, "float")  # no variation: every model as before
    with pytest.raises(SpecError, match=r"populations\[0\]\.model"):
        build(spec, "float", profile={"mismatch_threshold": 0.02})
    # the chip's same figures keep the same ranges
    found = backend_option_problems("brainscales2", {"profile": {"mismatch_threshold": -1}})
    assert [p.path for p in found] == ["backend_options.profile.mismatch_threshold"]


def test_streaming_refuses_membrane_noise_and_keeps_the_mismatch():
    spec, x = yinyang_spec(), spikes(2)
    with pytest.raises(ValueError, match="membrane_noise"):
        build(spec, "float", profile=BASE).stream(x)
    net = build(spec, "float", profile={**BASE, "membrane_noise": 0.0}, dtype=torch.float64)
    whole = net(x.double()).output
    streamed = net.stream(x.double())[0].output
    assert torch.allclose(whole, streamed, atol=1e-9)


# ------------------------------------------------------------------------------------ the app
def test_the_hardware_panel_shows_the_float_variation_profile():
    from workbench.widgets.hardware import SIMULATOR_NOTE, BackendPicker
    from workbench.widgets.state import Workbench

    wb = Workbench()
    picker = BackendPicker(workbench=wb)
    assert wb.backend == "float" and SIMULATOR_NOTE in picker.info.object
    assert picker.options_box.visible and not picker.chip_box.visible
    assert picker.chip_seed.visible and picker.variation_card.card.visible
    assert "mismatch_threshold" in set(picker.figures["figure"])
    picker.profile_input.value = '{"mismatch_threshold": 0.05}'
    picker.chip_seed.value = 2
    assert wb.backend_options == {"profile": {"mismatch_threshold": 0.05}, "chip_seed": 2}
    shown = picker.variation_pane.object.set_index("figure")
    assert shown.loc["mismatch_threshold", "value"] == "0.05"
    picker.profile_input.value = '{"mismatch_threshold": -1}'
    assert picker.options_error.visible and "mismatch_threshold" in picker.options_error.object
    picker.backend_select.value = "event"  # no variation profile there
    assert not picker.options_box.visible and picker.figures is None
    picker.backend_select.value = "xylo"
    assert picker.options_box.visible and not picker.variation_card.card.visible
