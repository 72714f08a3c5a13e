"""The memristive crossbar emulator: what a user of the chip would notice.

An ideal chip is the float simulator; the chip's product agrees with a plain-Python reference
written here from the documented model (levels, faults, drift, IR drop, DAC, ADC, tiles); the
statistics of programming noise, read noise, faults and drift are checked with seeded draws
and stated tolerances; seeds reproduce; refusals name the limit, the value and the chip; and
the gradient reaches the float weights.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from workbench.backends import FloatNetwork, projection_key
from workbench.hardware.crossbar import (
    IDEAL,
    Crossbar,
    CrossbarProfile,
    ladder_attenuation,
    quantize_symmetric,
)
from workbench.spec import INPUT, NetworkSpec, Population, Projection, SpecError, feedforward

F64 = torch.float64


def spikes_in(shape, rate=0.3, seed=0, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).to(dtype)


def small_spec(n_in=6, hidden=12, n_out=3, n_steps=25) -> NetworkSpec:
    return feedforward(
        [n_in, hidden, n_out],
        params={"threshold": 0.5},
        n_steps=n_steps,
        weight_init={"input->hidden": {"weight_std": 1.5}},
    )


def mixed_spec() -> NetworkSpec:
    """Recurrence (fused path off), per-synapse delays and a recurrent projection from a later
    population (step-by-step path)."""
    return NetworkSpec(
        input_size=4,
        populations=[
            Population("a", 5, "lif", {"threshold": 0.5, "reset": "subtract"}),
            Population("b", 4, "lif", {"threshold": 0.4}),
            Population("out", 2, "li"),
        ],
        projections=[
            Projection(INPUT, "a", delay=[[(i + j) % 3 for j in range(4)] for i in range(5)]),
            Projection("a", "a", recurrent=True, weight_std=0.4),
            Projection("a", "b", delay=1, weight_std=1.0),
            Projection("b", "a", recurrent=True, delay=1, weight_std=0.5),
            Projection("b", "out"),
        ],
        n_steps=30,
    ).validate()


def chip(spec, seed=0, **options) -> Crossbar:
    return Crossbar(spec, seed=seed, dtype=F64, **options)


# ------------------------------------------------------------------------ ideal chip = float
@pytest.mark.parametrize("which", ["feedforward", "mixed"])
def test_an_ideal_chip_runs_exactly_like_the_float_simulator(which):
    spec = small_spec() if which == "feedforward" else mixed_spec()
    reference = FloatNetwork(spec, seed=3, dtype=F64)
    for w in reference.weights.values():  # make the networks spike a fair amount
        w.data.mul_(2.0)
    # g_min > 0: the unused device of each pair sits at g_min and must cancel exactly
    ideal = chip(spec, profile=dict(IDEAL, g_min=0.5))
    ideal.load_state_dict(reference.state_dict())
    x = spikes_in((spec.n_steps, 4, spec.input_size), seed=1)
    want = reference(x, record=True)
    got = ideal(x, record=True)
    for name, rec in want.recordings.items():
        if "spikes" in rec:
            assert rec["spikes"].sum() > 0, name
            assert torch.equal(got.recordings[name]["spikes"], rec["spikes"]), name
        torch.testing.assert_close(got.recordings[name]["v"], rec["v"], rtol=0, atol=1e-12)
        torch.testing.assert_close(got.recordings[name]["i"], rec["i"], rtol=0, atol=1e-12)
    torch.testing.assert_close(got.output, want.output, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------ independent reference
def reference_attenuation(loads: list[float]) -> list[float]:
    """Word-line voltages (driver at 1 V) by backward recurrence from the far end: set the last
    node to 1, walk Kirchhoff's law back to the driver, then scale so the driver is at 1 V."""
    n = len(loads)
    v = [0.0] * (n + 1)  # v[0] is the driver, v[k] the node of device k - 1
    v[n] = 1.0
    v[n - 1] = (1.0 + loads[n - 1]) * v[n]
    for k in range(n - 1, 0, -1):
        v[k - 1] = (2.0 + loads[k - 1]) * v[k] - v[k + 1]
    return [v[k + 1] / v[0] for k in range(n)]


def quantize(value: float, bits, full_scale: float) -> float:
    if bits is None:
        return value
    n = 2 ** (bits - 1) - 1
    code = min(max(round(value * n / full_scale), -n), n)
    return code * full_scale / n


def reference_product(weights, x, stuck_plus, stuck_minus, p: CrossbarProfile, t, nu, ir_drop):
    """The chip's product ``x @ W.T`` for one input vector, from the documented model, in
    plain Python floats and loops: map, levels, drift, faults, IR drop, DAC, reads, ADC."""
    n_target, n_source = len(weights), len(weights[0])
    w_max = max(abs(w) for row in weights for w in row)
    span = p.g_max - p.g_min
    g = {}
    for j in range(n_target):
        for i in range(n_source):
            u = weights[j][i] / w_max
            for side, value, stuck in (
                ("+", max(u, 0.0), stuck_plus),
                ("-", max(-u, 0.0), stuck_minus),
            ):
                target = p.g_min + span * value
                if p.levels is not None:
                    step = span / (p.levels - 1)
                    target = p.g_min + round((target - p.g_min) / step) * step
                if t > p.drift_t0:
                    target = target * (t / p.drift_t0) ** (-nu)
                if stuck[j][i] == 1:
                    target = p.g_min
                elif stuck[j][i] == 2:
                    target = p.g_max
                g[side, j, i] = target
    if ir_drop:
        column_tiles = math.ceil(n_target / p.tile_columns)
        for i in range(n_source):
            for b in range(column_tiles):
                cells = []
                for c in range(p.tile_columns):
                    j = b * p.tile_columns + c
                    for side in "+-":
                        cells.append((side, j))
                loads = [
                    p.wire_resistance * 1e-6 * (g[side, j, i] if j < n_target else p.g_min)
                    for side, j in cells
                ]
                for (side, j), a in zip(cells, reference_attenuation(loads)):
                    if j < n_target:
                        g[side, j, i] *= a
    xq = [quantize(v, p.dac_bits, p.dac_range) for v in x]
    out = []
    for j in range(n_target):
        total = 0.0
        for start in range(0, n_source, p.tile_rows):
            partial = 0.0
            for i in range(start, min(start + p.tile_rows, n_source)):
                partial += xq[i] * (g["+", j, i] - g["-", j, i]) / span
            total += quantize(partial, p.adc_bits, p.adc_range)
        out.append(total * w_max)
    return out


@pytest.mark.parametrize("ir_drop", [False, True])
def test_chip_product_agrees_with_a_plain_python_reference(ir_drop):
    profile = dataclasses.replace(
        CrossbarProfile(),
        **{
            **IDEAL,
            "levels": 9,
            "stuck_on_rate": 0.08,
            "stuck_off_rate": 0.08,
            "dac_bits": 4,
            "adc_bits": 5,
        },
        tile_rows=3,
        tile_columns=2,
        g_min=0.3,
        drift_nu_mean=0.06,
        drift_nu_std=0.0,
        dac_range=1.5,
        adc_range=2.0,
        wire_resistance=2000.0,  # large, so that the attenuation matters on a tiny tile
    )
    spec = feedforward([7, 5, 2], n_steps=4)
    net = chip(
        spec,
        chip_seed=4,
        profile=profile,
        t_inference=3600.0,
        drift_compensation=False,
        ir_drop=ir_drop,
    )
    proj = spec.projections[0]
    weights = net.float_weight(proj).detach().tolist()
    state = net.device_state(proj)
    stuck_plus, stuck_minus = state.stuck_plus.tolist(), state.stuck_minus.tolist()
    assert any(s for row in stuck_plus + stuck_minus for s in row)  # faults are exercised
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 7, generator=g, dtype=F64) * 2.0 - 0.2  # graded inputs, some clipped
    got = net.mvm(proj, x)
    for row, got_row in zip(x.tolist(), got.tolist()):
        want = reference_product(
            weights, row, stuck_plus, stuck_minus, profile, 3600.0, 0.06, ir_drop
        )
        assert got_row == pytest.approx(want, abs=1e-9, rel=1e-9)


def test_ir_drop_attenuates_along_the_row_and_vanishes_without_wire_resistance():
    # a full 256-column row (512 devices) all at 25 uS with 0.15 ohm per cell: the far end
    # keeps about 65 % of the voltage (a worst case; real weights are mostly far below g_max)
    loads = torch.full((3, 512), 0.15 * 25e-6, dtype=F64)
    v = ladder_attenuation(loads)
    assert torch.all(v[:, 1:] <= v[:, :-1]) and torch.all(v < 1)
    assert v[0, -1].item() == pytest.approx(0.652, abs=0.001)
    assert v[0].tolist() == pytest.approx(reference_attenuation(loads[0].tolist()), rel=1e-9)
    no_wire = ladder_attenuation(torch.zeros(2, 8, dtype=F64))
    torch.testing.assert_close(no_wire, torch.ones(2, 8, dtype=F64), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------ levels and faults
def test_quantisation_to_n_levels_gives_at_most_n_distinct_conductances():
    spec = feedforward([40, 60, 3], n_steps=2)
    for levels in (2, 5, 16):
        net = chip(spec, profile=dict(IDEAL, levels=levels, g_min=1.0))
        state = net.device_state(spec.projections[0])
        values = torch.cat([state.g_plus.flatten(), state.g_minus.flatten()]).unique()
        assert 2 <= len(values) <= levels
        grid = (values - 1.0) / ((25.0 - 1.0) / (levels - 1))
        torch.testing.assert_close(grid, grid.round(), rtol=0, atol=1e-9)


def test_observed_stuck_at_fault_rates_match_the_requested_rates():
    # 2 x 200 x 300 = 120 000 devices: the binomial standard deviation of a 5 % rate is 0.06 %;
    # the tolerance is 4 standard deviations.
    spec = feedforward([300, 200, 2], n_steps=2)
    n = 2 * 200 * 300
    for p_on, p_off in ((0.05, 0.02), (0.0, 0.1)):
        net = chip(spec, chip_seed=7, profile=dict(IDEAL, stuck_on_rate=p_on, stuck_off_rate=p_off))
        state = net.device_state(spec.projections[0])
        stuck = torch.cat([state.stuck_plus.flatten(), state.stuck_minus.flatten()])
        for code, rate in ((2, p_on), (1, p_off)):
            observed = (stuck == code).sum().item() / n
            assert abs(observed - rate) <= 4 * math.sqrt(rate * (1 - rate) / n) + 1e-12
        g = torch.cat([state.g_plus.flatten(), state.g_minus.flatten()])
        assert torch.all(g[stuck == 2] == 25.0) and torch.all(g[stuck == 1] == 0.0)


# ------------------------------------------------------------------------ noise
def test_programming_noise_follows_the_pcm_polynomial_and_stays_fixed_for_the_chip():
    # every weight equal: every G+ is programmed to g_max / 2 (40 000 devices; the sample
    # standard deviation is within 2 % of the polynomial's, 5 standard errors)
    spec = feedforward([200, 200, 2], n_steps=2)
    net = chip(spec, profile=dict(IDEAL, programming_noise_scale=1.0))
    proj = spec.projections[0]
    net.float_weight(proj).data.fill_(0.5)
    net.float_weight(proj).data[0, 0] = 1.0  # w_max = 1, so the others map to 12.5 uS
    g = net.device_state(proj).g_plus.flatten()[1:]
    want = 0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25
    assert g.mean().item() == pytest.approx(12.5, abs=4 * want / math.sqrt(g.numel()))
    assert g.std().item() == pytest.approx(want, rel=0.02)
    first = net.weight(proj).detach().clone()
    net(spikes_in((2, 3, 200)))
    assert torch.equal(net.weight(proj).detach(), first)  # the chip keeps its draw


def test_read_noise_has_the_requested_sigma_and_changes_every_step():
    # One input row driven at every step: each output reads w (1 + sigma n) with a fresh n.
    # 20 000 reads per output: the sample sigma is within 3 % of the request (6 std errors).
    spec = feedforward([4, 5, 2], n_steps=2)
    sigma = 0.05
    net = chip(spec, profile=dict(IDEAL, read_noise=sigma))
    proj = spec.projections[0]
    x = torch.zeros(20000, 1, 4, dtype=F64)
    x[..., 2] = 1.0
    reads = net.mvm(proj, x)[:, 0, :]  # [time, target]
    w = net.weight(proj).detach()[:, 2]
    relative = (reads - w) / w.abs()
    for k in range(5):
        assert relative[:, k].mean().item() == pytest.approx(0.0, abs=5 * sigma / math.sqrt(20000))
        assert relative[:, k].std().item() == pytest.approx(sigma, rel=0.03)
    assert (reads[1:] != reads[:-1]).all()  # a new draw every step
    # without input nothing is read, so nothing is noisy
    assert torch.equal(
        net.mvm(proj, torch.zeros(3, 2, 4, dtype=F64)), torch.zeros(3, 2, 5, dtype=F64)
    )


def test_drift_follows_the_power_law_per_device():
    spec = feedforward([30, 40, 2], n_steps=2)
    proj = spec.projections[0]
    t0 = 20.0

    def conductances(t, **figures):
        net = chip(
            spec,
            chip_seed=2,
            t_inference=t,
            drift_compensation=False,
            profile=dict(IDEAL, **figures),
        )
        return net.device_state(proj).g_plus

    # one exponent for every device: exactly the power law
    g0 = conductances(0.0, drift_nu_mean=0.05, drift_nu_std=0.0)
    assert torch.equal(conductances(t0, drift_nu_mean=0.05, drift_nu_std=0.0), g0)
    for t in (100.0, 3600.0, 86400.0 * 365):
        g = conductances(t, drift_nu_mean=0.05, drift_nu_std=0.0)
        torch.testing.assert_close(g, g0 * (t / t0) ** -0.05, rtol=1e-12, atol=0)
    # with a spread: each device keeps its own exponent at every time (a straight line in
    # log-log), and the exponents have the requested mean and spread (1200 devices, of which
    # about half are programmed above 0 uS; 5 standard errors)
    figures = dict(drift_nu_mean=0.06, drift_nu_std=0.02)
    g0 = conductances(0.0, **figures)
    on = g0 > 0
    slopes = [
        -(conductances(t, **figures)[on] / g0[on]).log() / math.log(t / t0) for t in (1e3, 1e6)
    ]
    torch.testing.assert_close(slopes[0], slopes[1], rtol=1e-9, atol=1e-12)
    n = on.sum().item()
    assert slopes[0].mean().item() == pytest.approx(0.06, abs=5 * 0.02 / math.sqrt(n))
    assert slopes[0].std().item() == pytest.approx(0.02, rel=5 / math.sqrt(2 * n))


def test_global_drift_compensation_restores_the_weight_scale():
    spec = feedforward([30, 40, 2], n_steps=2)
    proj = spec.projections[0]
    fresh = chip(spec, profile=IDEAL).weight(proj).detach()
    drifted = chip(spec, profile=IDEAL, t_inference=86400.0, drift_compensation=False)
    compensated = chip(spec, profile=IDEAL, t_inference=86400.0)
    lost = drifted.weight(proj).detach().abs().sum() / fresh.abs().sum()
    kept = compensated.weight(proj).detach().abs().sum() / fresh.abs().sum()
    assert lost < 0.8 and kept == pytest.approx(1.0, abs=0.02)


# ------------------------------------------------------------------------ seeds
def test_same_seeds_give_identical_outputs_and_another_chip_gives_others():
    spec = small_spec()
    x = spikes_in((spec.n_steps, 8, spec.input_size), seed=5)
    noisy = dict(read_noise=0.05, stuck_on_rate=0.02, stuck_off_rate=0.02, levels=32)

    def run(chip_seed, **options):
        net = chip(spec, seed=1, chip_seed=chip_seed, profile=noisy, t_inference=3600, **options)
        return net, net(x, record=True)

    net_a, a = run(11)
    _, b = run(11)
    _, c = run(12)
    assert torch.equal(a.output, b.output)
    assert not torch.equal(a.output, c.output)
    # the same chip read again draws new read noise; restarting the stream repeats the first
    again = net_a(x).output
    assert not torch.equal(again, a.output)
    net_a.reset_read_noise()
    assert torch.equal(net_a(x).output, a.output)


def test_reprogramming_draws_new_programming_noise_but_keeps_the_faults():
    spec = small_spec()
    net = chip(spec, profile=dict(programming_noise_scale=1.0, stuck_on_rate=0.1))
    proj = spec.projections[0]
    before = net.device_state(proj)
    net.program()
    after = net.device_state(proj)
    assert torch.equal(before.stuck_plus, after.stuck_plus)
    healthy = before.stuck_plus == 0
    assert not torch.equal(before.g_plus[healthy], after.g_plus[healthy])
    # deterministic: the first re-programming of the same chip draws the same again
    twin = chip(spec, profile=dict(programming_noise_scale=1.0, stuck_on_rate=0.1))
    twin.program()
    assert torch.equal(twin.device_state(proj).g_plus, after.g_plus)


# ------------------------------------------------------------------------ limits and reports
def test_a_spec_over_the_chip_is_refused_naming_limit_value_and_chip():
    spec = feedforward([700, 300, 20], n_steps=2)
    profile = dataclasses.replace(CrossbarProfile(), n_tiles=4)
    with pytest.raises(SpecError) as info:
        Crossbar(spec, profile=profile)
    message = str(info.value)
    assert "projections[0]: crossbar tiles (256x256) needed by input->hidden is 6" in message
    assert "projections: crossbar tiles (256x256) needed by all projections is 8" in message
    assert "allows at most 4" in message and profile.name in message
    assert Crossbar.check(spec) == []  # the default chip (64 tiles) holds it


def test_resources_count_tiles_and_devices():
    spec = feedforward([700, 300, 20], n_steps=2)
    table = Crossbar.resources(spec).set_index("resource")
    assert table.loc["crossbar tiles", "used"] == 3 * 2 + 2 * 1
    assert table.loc["crossbar tiles", "capacity"] == 64
    assert table.loc["devices (2 per synapse)", "used"] == 2 * (700 * 300 + 300 * 20)
    assert table.loc["tiles: hidden->output", "used"] == 2


def test_adc_clips_and_rounds_to_its_grid_and_spikes_pass_the_dac_exactly():
    x = torch.tensor([-9.0, -0.04, 0.0, 0.05, 0.6, 3.99, 4.0, 100.0], dtype=F64)
    q = quantize_symmetric(x, 4, 4.0)  # 7 steps of 4/7 per sign
    assert q.tolist() == pytest.approx([-4.0, 0.0, 0.0, 0.0, 4 / 7, 4.0, 4.0, 4.0], abs=1e-12)
    spikes = spikes_in((10, 3, 4), dtype=torch.float32)
    assert torch.equal(quantize_symmetric(spikes, 8, 1.0), spikes)


def test_profile_rejects_bad_figures_by_name_and_every_figure_has_a_source():
    with pytest.raises(ValueError, match="levels is 1; it must be None"):
        CrossbarProfile(levels=1)
    with pytest.raises(ValueError, match="g_max is 0.5; it must be > g_min = 1.0"):
        CrossbarProfile(g_min=1.0, g_max=0.5)
    figures = CrossbarProfile().figures()
    assert (figures["source"].str.len() > 10).all()
    assert figures.set_index("figure").loc["read_noise", "assumption"]


def test_profile_figures_can_be_given_as_a_dict_as_from_the_command_line():
    net = Crossbar(small_spec(), profile={"read_noise": 0.1, "levels": 8})
    assert net.profile.read_noise == 0.1 and net.profile.levels == 8
    assert net.profile.g_max == CrossbarProfile().g_max


# ------------------------------------------------------------------------ gradients
def test_gradients_reach_the_float_weights_straight_through():
    spec = small_spec()
    x = spikes_in((spec.n_steps, 6, spec.input_size), seed=2)
    reference = FloatNetwork(spec, seed=0, dtype=F64)
    for w in reference.weights.values():
        w.data.mul_(2.0)
    ideal = chip(spec, profile=IDEAL)
    ideal.load_state_dict(reference.state_dict())
    for net in (reference, ideal):
        net(x).output.square().sum().backward()
    for key, w in reference.weights.items():
        torch.testing.assert_close(ideal.weights[key].grad, w.grad, rtol=1e-9, atol=1e-12)
    noisy = chip(spec, profile={}, t_inference=3600.0)  # the default chip, a day later
    noisy.load_state_dict(reference.state_dict())
    noisy(x).output.square().sum().backward()
    for proj in spec.projections:
        grad = noisy.weights[projection_key(proj)].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_training_on_the_chip_can_resample_programming_noise():
    spec = small_spec()
    net = chip(spec, profile={}, resample_in_training=True)
    proj = spec.projections[0]
    x = spikes_in((spec.n_steps, 2, spec.input_size))
    net.train()
    net(x)
    first = net.weight(proj).detach().clone()
    net(x)
    assert not torch.equal(net.weight(proj).detach(), first)
    net.eval()
    net(x)
    kept = net.weight(proj).detach().clone()
    net(x)
    assert torch.equal(net.weight(proj).detach(), kept)


def test_output_noise_is_added_to_every_column_read_even_without_input():
    spec = feedforward([300, 3, 2], n_steps=2)
    net = chip(spec, profile=dict(IDEAL, output_noise=0.06, tile_rows=128))
    proj = spec.projections[0]
    reads = net.mvm(proj, torch.zeros(4000, 2, 300, dtype=F64))  # 3 row tiles per column
    w_max = net.device_state(proj).w_max
    # each column sums 3 row tiles: sigma = 0.06 * sqrt(3) full-scale reads, times w_max;
    # 24 000 reads: within 3 % (about 5 standard errors)
    assert (reads / w_max).std().item() == pytest.approx(0.06 * math.sqrt(3), rel=0.03)


def test_deploy_maps_trained_weights_onto_the_crossbar_backend_and_reports_faults():
    from workbench.hardware.base import deploy

    spec = small_spec()
    trained = FloatNetwork(spec, seed=0)
    deployment = deploy(trained, "crossbar", profile={"stuck_on_rate": 0.05})
    assert isinstance(deployment.network, Crossbar)
    assert deployment.weights["stuck_devices"].sum() > 0
    assert (deployment.weights["relative_rms_error"] > 0).all()
    assert deployment.resources.set_index("resource").loc["crossbar tiles", "used"] == 2
