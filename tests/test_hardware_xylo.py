"""The Xylo emulator: bit-exact integer dynamics, the chip's limits, quantisation and power."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
import torch

from workbench.backends import FloatNetwork, build
from workbench.hardware import xylo_kernels
from workbench.hardware.base import deploy
from workbench.hardware.xylo import (
    Xylo,
    XyloProfile,
    bitshift,
    bitshift_tau,
    estimate_power,
)
from workbench.neurons import Surrogate
from workbench.spec import NetworkSpec, Population, Projection, SpecError, feedforward

# --------------------------------------------------------------------------------------------
# An independent integer reference of the chip, written plainly (Python ints and loops), from
# the documented behaviour (xylosim 0.1.3, src/v2/cpp/XyloLayer.cpp and XyloIAFNeuron.cpp):
# deliver this step's input events (at most 15 per channel), channel by channel, then the
# previous step's hidden spike counts, neuron by neuron, one event at a time, each weight
# shifted left by its matrix's shift, saturating to 16 bits after every event; decay each
# synaptic state by ``x >> dash`` (at least one towards zero); add the synaptic states to the
# membrane's leak (a 16-bit integer: -(-32768) wraps to -32768), then the bias, saturating each
# sum; fire while the membrane reaches the threshold (at most 31 times for hidden neurons, once
# for outputs), subtracting the threshold each time.

LOW, HIGH = -32768, 32767


def saturate(x):
    return LOW if x < LOW else HIGH if x > HIGH else x


def decay(x, dash):
    step = x >> dash
    if step == 0 and x > 0:
        step = 1
    return step


def wrap16(x):
    return (x + 32768) % 65536 - 32768


def neuron_step(i_states, v, dash_mem, bias, threshold, max_spikes):
    """The membrane update of one neuron after its synaptic states were updated."""
    dv = saturate(wrap16(-decay(v, dash_mem)) + sum(i_states))
    dv = saturate(dv + bias)
    v = saturate(v + dv)
    n = 0
    while v >= threshold and n < max_spikes:
        v -= threshold
        n += 1
    return v, n


def deliver(state, events, weights, shift):
    """``events[s]`` events of each source in index order, one at a time, saturating."""
    for s, count in enumerate(events):
        for _ in range(count):
            state = saturate(state + (weights[s] << shift))
    return state


def reference_run(cfg, counts):
    """``counts[t][b][c]`` input events -> per sample lists of per step states."""
    n_hidden = len(cfg.dash_mem)
    n_out = len(cfg.dash_mem_out)
    n_in = len(counts[0][0])
    samples = []
    for b in range(len(counts[0])):
        i1, i2, v = [0] * n_hidden, [0] * n_hidden, [0] * n_hidden
        io, vo = [0] * n_out, [0] * n_out
        previous = [0] * n_hidden
        steps = []
        for t in range(len(counts)):
            events = [min(counts[t][b][c], cfg.max_input_events) for c in range(n_in)]
            spikes = [0] * n_hidden
            for j in range(n_hidden):
                i1[j] = deliver(i1[j], events, cfg.weights_in[j], cfg.weight_shift_in)
                i1[j] = deliver(i1[j], previous, cfg.weights_rec[j], cfg.weight_shift_rec)
                i2[j] = deliver(i2[j], events, cfg.weights_in2[j], cfg.weight_shift_in)
                i2[j] = deliver(i2[j], previous, cfg.weights_rec2[j], cfg.weight_shift_rec)
                i1[j] -= decay(i1[j], cfg.dash_syn[j])
                i2[j] -= decay(i2[j], cfg.dash_syn2[j])
                v[j], spikes[j] = neuron_step(
                    [i1[j], i2[j]],
                    v[j],
                    cfg.dash_mem[j],
                    cfg.bias[j],
                    cfg.threshold[j],
                    cfg.max_hidden_spikes,
                )
            out_spikes = [0] * n_out
            for o in range(n_out):
                io[o] = deliver(io[o], previous, cfg.weights_out[o], cfg.weight_shift_out)
                io[o] -= decay(io[o], cfg.dash_syn_out[o])
                vo[o], out_spikes[o] = neuron_step(
                    [io[o]],
                    vo[o],
                    cfg.dash_mem_out[o],
                    cfg.bias_out[o],
                    cfg.threshold_out[o],
                    cfg.max_output_spikes,
                )
            previous = spikes
            steps.append(
                {
                    "spikes": list(spikes),
                    "v": list(v),
                    "i": list(i1),
                    "i2": list(i2),
                    "out_spikes": out_spikes,
                    "out_v": list(vo),
                    "out_i": list(io),
                }
            )
        samples.append(steps)
    return samples


# --------------------------------------------------------------------------------------------
# Random small networks that fit the chip


def random_tau(rng, dt, low, high):
    return dt * 2 ** rng.uniform(low, high)


def random_case(rng: random.Random):
    dt = rng.choice([0.5, 1.0])
    n_in = rng.randint(1, 16)
    n_hidden_pops = rng.choice([1, 1, 2])
    hidden = [f"h{k}" for k in range(n_hidden_pops)]
    pops = []
    for name in hidden:
        pops.append(
            Population(
                name,
                rng.randint(1, 10),
                "lif",
                {
                    "tau_mem": random_tau(rng, dt, 0.1, 7),
                    "tau_syn": random_tau(rng, dt, 0.6, 5),
                    "threshold": rng.uniform(0.1, 3.0),
                    "v_leak": rng.choice([0.0, 0.0, rng.uniform(-0.5, 0.5)]),
                    "reset": rng.choice(["zero", "subtract"]),
                },
            )
        )
    out_model = rng.choice(["lif", "li"])
    out_params = {"tau_mem": random_tau(rng, dt, 0.1, 7), "tau_syn": random_tau(rng, dt, 0.6, 5)}
    if out_model == "lif":
        out_params["threshold"] = rng.uniform(0.1, 3.0)
    pops.append(Population("out", rng.randint(1, 8), out_model, out_params))
    size = {p.name: p.size for p in pops}
    size["input"] = n_in

    def weights(source, target, std):
        return [[rng.gauss(0.0, std) for _ in range(size[source])] for _ in range(size[target])]

    links = [("input", "h0", False)]
    if n_hidden_pops == 2:
        links.append(("h0", "h1", False))
        if rng.random() < 0.5:
            links.append(("input", "h1", False))
        if rng.random() < 0.5:
            links.append(("h1", "h0", True))
    if rng.random() < 0.6:
        links.append(("h0", "h0", True))
    links.append((hidden[-1], "out", False))
    if n_hidden_pops == 2 and rng.random() < 0.4:
        links.append(("h0", "out", False))
    projections = [
        Projection(s, t, recurrent=r, weights=weights(s, t, rng.uniform(0.2, 6.0)))
        for s, t, r in links
    ]
    spec = NetworkSpec(n_in, pops, projections, dt=dt, n_steps=20, name="random")
    options = {
        "weight_scale": rng.choice(["global", "network", "per_neuron"]),
        "threshold_headroom": rng.choice([1.0, 2.0, 4.0, 32.0]),
        "readout_range": rng.choice([2.0, 64.0]),
        "gain_match": rng.choice(["peak", "area"]),
    }
    if rng.random() < 0.5:
        shift_in = rng.randint(0, 7)
        shift_rec = shift_in if options["weight_scale"] == "network" else rng.randint(0, 7)
        options["weight_shift"] = (shift_in, shift_rec, rng.randint(0, 7))
    if rng.random() < 0.35:
        target = rng.choice(hidden)
        n = size[target]
        options["tau_syn2"] = {
            target: [random_tau(rng, dt, 0.6, 6) for _ in range(n)]
            if rng.random() < 0.5
            else random_tau(rng, dt, 0.6, 6)
        }
        incoming = [f"{s}->{t}" for s, t, _ in links if t == target]
        name = rng.choice(incoming)
        source = name.split("->")[0]
        if rng.random() < 0.5:
            options["synapse2"] = [name]
        else:
            mask = [[rng.randint(0, 1) for _ in range(size[source])] for _ in range(n)]
            options["synapse2"] = {name: mask}
    n_steps, batch = rng.randint(5, 25), rng.randint(1, 3)
    density = rng.uniform(0.05, 0.6)
    counts = [
        [
            [rng.randint(1, 20) if rng.random() < density else 0 for _ in range(n_in)]
            for _ in range(batch)
        ]
        for _ in range(n_steps)
    ]
    return spec, options, counts


def compare(net, cfg, counts):
    """Return the emulator's integer states next to the reference's, flattened per key."""
    got = net.integer_run(torch.tensor(counts, dtype=torch.float32))
    want = reference_run(cfg, counts)
    mismatches = []
    for name, (a, b) in cfg.hidden_slices.items():
        for key in ("spikes", "v", "i", "i2"):
            emulated = got[name][key][:, :, :].tolist()
            for t, step in enumerate(emulated):
                for s, row in enumerate(step):
                    if row != want[s][t][key][a:b]:
                        mismatches.append((name, key, t, s, row, want[s][t][key][a:b]))
    out = net.layout.output
    for key, ref_key in (("spikes", "out_spikes"), ("v", "out_v"), ("i", "out_i")):
        emulated = got[out][key].tolist()
        for t, step in enumerate(emulated):
            for s, row in enumerate(step):
                if row != want[s][t][ref_key]:
                    mismatches.append((out, key, t, s, row, want[s][t][ref_key]))
    return mismatches, want


def test_integer_reference_agrees_on_100_random_networks():
    rng = random.Random(1234)
    seen = {"multi_spike": 0, "saturated": 0, "clipped_input": 0, "recurrent": 0, "syn2": 0}
    seen.update(output_spike=0, bias=0)
    for case in range(100):
        spec, options, counts = random_case(rng)
        net = Xylo(spec, seed=case, **options)
        cfg = net.configuration()
        mismatches, want = compare(net, cfg, counts)
        assert not mismatches, f"case {case} ({options}): first mismatch {mismatches[0]}"
        steps = [step for sample in want for step in sample]
        values = [x for step in steps for key in ("v", "i", "i2", "out_v") for x in step[key]]
        seen["multi_spike"] += any(n > 1 for step in steps for n in step["spikes"])
        seen["saturated"] += any(x in (LOW, HIGH) for x in values)
        seen["clipped_input"] += any(c > 15 for step in counts for row in step for c in row)
        seen["recurrent"] += any(
            p.source != "input" and p.target != "out" for p in spec.projections
        )
        seen["syn2"] += any(x != 0 for step in steps for x in step["i2"])
        seen["output_spike"] += any(n for step in steps for n in step["out_spikes"])
        seen["bias"] += any(b != 0 for b in cfg.bias)
    # The random cases reach every corner of the dynamics, several times each.
    assert min(seen.values()) >= 5, seen


def test_emulator_states_are_exact_integers_within_16_bits():
    rng = random.Random(7)
    spec, options, counts = random_case(rng)
    states = Xylo(spec, **options).integer_run(torch.tensor(counts, dtype=torch.float32))
    for pop in states.values():
        for key, value in pop.items():
            assert value.dtype == torch.int64
            assert int(value.min()) >= LOW and int(value.max()) <= HIGH, key


# --------------------------------------------------------------------------------------------
# Time constants and the bit-shift rule


def test_time_constants_map_to_rounded_bit_shifts():
    assert bitshift(20.0, 0.5) == 5  # log2(40) = 5.32
    assert bitshift(5.0, 0.5) == 3  # log2(10) = 3.32
    assert bitshift(16.0, 1.0) == 4
    assert bitshift(0.8, 1.0) == 0  # tau <= dt: no memory (Rockpool clips at 0)
    assert bitshift(1.0, 1.0) == 0
    assert bitshift(1.2, 1.0) == 0  # log2(1.2) = 0.26 rounds to 0
    assert bitshift(1.5, 1.0) == 1
    # The realised time constant of x <- x (1 - 2**-dash) per step.
    assert bitshift_tau(5, 0.5) == pytest.approx(-0.5 / math.log(1 - 1 / 32))
    assert bitshift_tau(0, 1.0) == 0.0


def test_a_small_state_still_decays_by_one_per_step():
    # One hidden neuron, one input event of weight 1 (times the shift): the current decays by
    # at least one each step until it reaches zero, even where x >> dash is zero.
    spec = NetworkSpec(
        1,
        [
            Population("h", 1, "lif", {"tau_mem": 1000.0, "tau_syn": 1000.0, "threshold": 0.01}),
            Population("out", 1, "li", {"tau_mem": 2.0, "tau_syn": 2.0}),
        ],
        [Projection("input", "h", weights=[[1.0]]), Projection("h", "out", weights=[[1.0]])],
        dt=1.0,
        n_steps=10,
    )
    net = Xylo(spec, weight_shift=(0, 0, 0))
    cfg = net.configuration()
    weight = cfg.weights_in[0][0]
    assert cfg.dash_syn == [10] and 12 < weight < 2**10
    x = torch.zeros(12, 1, 1)
    x[0, 0, 0] = 1
    current = net.integer_run(x)["h"]["i"][:, 0, 0].tolist()
    # weight >> 10 is 0, so the current decays by one each step: w - 1, w - 2, ...
    assert current == [weight - 1 - k for k in range(12)]


# --------------------------------------------------------------------------------------------
# Refusals


def yinyang_like(hidden=120, inputs=5, outputs=3, **params):
    return feedforward([inputs, hidden, outputs], params=params, dt=0.5, n_steps=20)


def messages(spec, profile=None):
    with pytest.raises(SpecError) as info:
        Xylo(spec, profile=profile)
    return [str(p) for p in info.value.problems]


def test_too_many_hidden_neurons_is_refused_naming_limit_value_and_chip():
    assert messages(yinyang_like(hidden=1200)) == [
        "populations[0].size: hidden neurons is 1200; Xylo Audio 2 allows at most 1000"
    ]


def test_every_violation_is_listed_with_its_field():
    spec = NetworkSpec(
        20,
        [
            Population("a", 100, "alif", {"refractory_steps": 2}),
            Population("b", 100, "lif", {"tau_syn": 0.55, "tau_mem": 1e6}),
            Population("out", 12, "lif"),
        ],
        [
            Projection("input", "a", delay=3),
            Projection("a", "b"),
            Projection("b", "out"),
            Projection("input", "out"),
        ],
        dt=0.5,
        n_steps=20,
    )
    found = "\n".join(messages(spec))
    for text in (
        "input_size: input channels is 20; Xylo Audio 2 allows at most 16",
        "populations[2].size: output neurons is 12; Xylo Audio 2 allows at most 8",
        "populations[0].model: hidden neuron model is 'alif'; Xylo Audio 2 allows 'lif' only",
        "populations[0].params.refractory_steps: refractory period is 2 steps",
        "populations[1].params.tau_syn: synaptic time constant",
        "0.55 ms (shift 0)",
        "populations[1].params.tau_mem: membrane time constant",
        "projections[0].delay: synaptic delay is 3 steps; Xylo Audio 2 allows 0",
        "populations[1].size: fan-out of each 'a' neuron (synapses onto hidden neurons: 'b' "
        "100) is 100; Xylo Audio 2 allows at most 64",
        "projections[3].target: projection from the inputs to the outputs is input->out",
    ):
        assert text in found, text


def test_fan_out_and_fan_in_name_the_size_that_sets_them():
    """A hidden neuron's fan-out grows with its targets (its fan-in with its sources): the
    violation names the size of the largest of them, with the population it concerns."""
    spec = NetworkSpec(
        4,
        [Population("a", 10), Population("b", 80), Population("out", 2, "lif")],
        [Projection("input", "a"), Projection("a", "b"), Projection("b", "out")],
    )
    (fan_out,) = Xylo.check(spec)
    assert (fan_out.path, fan_out.value) == ("populations[1].size", 80)
    assert fan_out.limit == "fan-out of each 'a' neuron (synapses onto hidden neurons: 'b' 80)"
    spec.population("b").size = 40
    assert Xylo.check(spec) == []
    (fan_in,) = Xylo.check(spec, dataclasses.replace(XyloProfile(), max_fan_in=20))
    assert (fan_in.path, fan_in.value, fan_in.allowed) == ("populations[1].size", 40, "at most 20")
    assert fan_in.limit == "fan-in of each 'out' neuron (from 'b' 40)"


def test_variants_have_their_own_limits():
    assert XyloProfile.audio3().n_hidden == 992 and XyloProfile.audio3().n_outputs == 32
    assert XyloProfile.imu().n_hidden == 496 and XyloProfile.imu().synaptic_states == 1
    assert messages(yinyang_like(hidden=600), XyloProfile.imu())[0] == (
        "populations[0].size: hidden neurons is 600; Xylo IMU allows at most 496"
    )
    assert messages(yinyang_like(hidden=100, outputs=33), XyloProfile.audio3()) == [
        "populations[1].size: output neurons is 33; Xylo Audio 3 allows at most 32"
    ]
    # Xylo Audio 3 feeds the inputs to at most 128 hidden neurons and reads at most 128.
    found = messages(yinyang_like(hidden=200), XyloProfile.audio3())
    assert (
        "projections: hidden neurons fed by the inputs is 200; Xylo Audio 3 allows at most 128"
        in found[0]
    )
    Xylo(yinyang_like(hidden=128), variant="audio3")  # fits
    # The variant can be named instead of a profile.
    assert Xylo(yinyang_like(hidden=20), variant="imu").profile.name == "Xylo IMU"


def test_the_second_synaptic_state_is_refused_where_the_chip_has_none():
    with pytest.raises(SpecError, match="Xylo IMU has 1 synaptic state"):
        Xylo(
            yinyang_like(hidden=20),
            variant="imu",
            tau_syn2={"hidden": 20.0},
            synapse2=["input->hidden"],
        )
    with pytest.raises(SpecError, match=r"options.synapse2.input->hidden: needs options.tau_syn2"):
        Xylo(yinyang_like(hidden=20), synapse2=["input->hidden"])


# --------------------------------------------------------------------------------------------
# Quantisation


def random_net(seed=0, **options):
    torch.manual_seed(seed)
    spec = NetworkSpec(
        6,
        [
            Population("hidden", 24, "lif", {"tau_mem": 16.0, "tau_syn": 4.0}),
            Population("output", 3, "li", {"tau_mem": 16.0, "tau_syn": 4.0}),
        ],
        [
            Projection("input", "hidden", weight_std=2.0),
            Projection("hidden", "hidden", recurrent=True, weight_std=0.3),
            Projection("hidden", "output", weight_std=1.0),
        ],
        dt=1.0,
        n_steps=30,
    )
    return Xylo(spec, seed=seed, **options)


@pytest.mark.parametrize("scale", ["global", "network", "per_neuron"])
def test_quantisation_round_trip_is_stable_and_within_half_a_step(scale):
    net = random_net(weight_scale=scale)
    first = net.configuration()
    int8 = {"input->hidden": first.weights_in, "hidden->hidden": first.weights_rec}
    with torch.no_grad():
        for proj in net.spec.projections:
            on_chip = net.weight(proj)
            ints = torch.tensor(int8.get(proj.name) or first.weights_out, dtype=on_chip.dtype)
            # One step of the int8 grid per target neuron, in float units.
            step = (on_chip.abs().sum(1) / ints.abs().sum(1)).unsqueeze(1)
            assert torch.allclose(on_chip, ints * step, rtol=1e-5, atol=1e-7)
            error = (on_chip - net.float_weight(proj)).abs()
            assert (error <= 0.5 * step + 1e-6).all(), proj.name  # rounding: half a step at most
            net.float_weight(proj).copy_(on_chip)
    second = net.configuration()
    assert second == first  # quantising the chip's own weights changes nothing
    assert max(abs(w) for row in first.weights_in for w in row) == 127
    assert all(
        0 <= s <= net.profile.weight_shift_max
        for s in (first.weight_shift_in, first.weight_shift_out)
    )


def test_per_neuron_scale_is_never_coarser_than_one_global_scale():
    one = random_net(weight_scale="global").configuration()
    per = random_net(weight_scale="per_neuron").configuration()
    assert per.weight_shift_in == one.weight_shift_in
    # Integer thresholds (the membrane's resolution) and weights are at least as fine.
    assert all(p >= g for p, g in zip(per.threshold, one.threshold))
    assert any(p > g for p, g in zip(per.threshold, one.threshold))
    for p_row, g_row in zip(per.weights_in, one.weights_in):
        assert max(map(abs, p_row)) >= max(map(abs, g_row))
    # Global: the largest weight onto the hidden neurons uses the full int8 range.
    assert max(abs(w) for row in one.weights_in + one.weights_rec for w in row) == 127


def test_deployment_report_shows_small_error_and_no_clipping():
    net = random_net()
    report = net.deployment_report()
    assert (report["clipped"] == 0).all()
    # Relative to each projection's largest weight; the recurrent weights are small and share
    # the scale of the input weights, so their relative error is the largest.
    assert (report["relative_rms_error"] < 0.02).all()


def test_float_weights_deploy_through_the_backend_registry():
    spec = yinyang_like(hidden=16, tau_mem=16.0, tau_syn=4.0)
    float_net = FloatNetwork(spec, seed=3)
    deployment = deploy(float_net, "xylo", weight_scale="per_neuron")
    assert isinstance(deployment.network, Xylo)
    assert deployment.network.weight_scale == "per_neuron"
    assert set(deployment.weights["projection"]) == {"input->hidden", "hidden->output"}
    assert isinstance(build(spec, "xylo"), Xylo)


# --------------------------------------------------------------------------------------------
# Training on the emulator


def test_straight_through_gradients_reach_the_float_weights():
    net = random_net()
    x = (torch.rand(30, 4, 6) < 0.3).float()
    result = net(x)
    loss = torch.nn.functional.cross_entropy(
        result.output.max(0).values, torch.tensor([0, 1, 2, 0])
    )
    loss.backward()
    for key, w in net.weights.items():
        assert w.grad is not None and torch.isfinite(w.grad).all(), key
        assert w.grad.abs().sum() > 0, key


def test_spiking_readout_gets_surrogate_gradients():
    spec = feedforward(
        [4, 12, 2],
        output_model="lif",
        params={"tau_mem": 8.0, "tau_syn": 2.0},
        output_params={"tau_mem": 8.0, "tau_syn": 2.0, "threshold": 0.5},
        dt=1.0,
        n_steps=20,
    )
    net = Xylo(spec, seed=1)
    out = net((torch.rand(20, 3, 4) < 0.5).float()).output
    assert set(out.unique().tolist()) <= {0.0, 1.0}  # at most one output spike per step
    out.sum().backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in net.weights.values())


def test_recordings_follow_the_float_simulators_contract():
    net = random_net()
    x = (torch.rand(30, 2, 6) < 0.3).float()
    result = net(x, record=True)
    assert result.output.shape == (30, 2, 3)
    assert set(result.recordings) == {"hidden", "output"}
    hidden = result.recordings["hidden"]
    assert set(hidden) == {"v", "i", "spikes"} and hidden["v"].shape == (30, 2, 24)
    assert "spikes" not in result.recordings["output"]
    # Membranes are in float units: after the reset, no hidden neuron sits at its threshold.
    assert float(hidden["v"].detach().max()) < 1.0
    assert torch.equal(result.output, result.recordings["output"]["v"])


# --------------------------------------------------------------------------------------------
# Power


def test_power_estimate_grows_with_spikes():
    net = random_net()
    quiet = (torch.rand(30, 8, 6) < 0.02).float()
    busy = (torch.rand(30, 8, 6) < 0.6).float() * 3
    with torch.no_grad():
        low = estimate_power(net, net(quiet, record=True), quiet).set_index("quantity")["value"]
        high = estimate_power(net, net(busy, record=True), busy).set_index("quantity")["value"]
    assert high["hidden activity"] > low["hidden activity"]
    assert high["cycles per step"] > low["cycles per step"]
    assert high["total power"] > low["total power"] > net.profile.static_power


def test_profile_figures_name_their_sources_and_assumptions():
    table = XyloProfile.audio2().figures().set_index("figure")
    assert (table["source"].str.len() > 0).all()
    assumed = set(table.index[table["assumption"]])
    assert {"energy_per_cycle", "static_power", "dash_max", "weight_shift_max"} <= assumed
    assert "n_hidden" not in assumed
    # The cycle model was measured on Xylo Audio 2 only.
    imu = XyloProfile.imu().figures().set_index("figure")
    assert imu.loc["cycles_hidden_neuron", "assumption"]
    resources = Xylo.resources(yinyang_like()).set_index("resource")
    assert resources.loc["hidden neurons", "used"] == 120
    assert resources.loc["hidden neurons", "capacity"] == 1000


def test_a_delta_synapse_is_refused_naming_the_field_and_why():
    spec = feedforward([3, 4, 2], "lif", "li", output_params={"tau_syn": 0.0}).validate()
    found = {v.path: v for v in Xylo.check(spec)}
    assert set(found) == {"populations[1].params.tau_syn"}
    assert "clears the current" in found["populations[1].params.tau_syn"].allowed
    with pytest.raises(SpecError, match=r"populations\[1\]\.params\.tau_syn"):
        Xylo(spec)


# --------------------------------------------------------------------------------------------
# The compiled integer loop (hardware/xylo_kernels.py) against the torch loop, its reference

STATE_KEYS = ("v", "n", "i1", "i2", "v_out", "n_out", "i_out")


def test_the_compiled_loop_equals_the_torch_loop_bit_for_bit():
    rng = random.Random(99)
    seen = {"recurrent": 0, "syn2": 0, "output_spike": 0, "saturated": 0, "multi_spike": 0}
    for case in range(40):
        spec, options, counts = random_case(rng)
        net = Xylo(spec, seed=case, **options)
        x = torch.tensor(counts, dtype=torch.float32)
        with torch.no_grad():
            chip = net._quantize()
            want = net._simulate_torch(x, chip, surrogate=False)
            got = net._simulate_compiled(x, chip, surrogate=False)
        for key in STATE_KEYS:
            assert got[key].dtype == torch.float64 and got[key].shape == want[key].shape, key
            assert torch.equal(got[key], want[key]), f"case {case} ({options}): {key}"
        net.kernel = "torch"
        reference = net.integer_run(x)
        net.kernel = "compiled"
        compiled = net.integer_run(x)
        for name, states in reference.items():
            for key, value in states.items():
                assert torch.equal(compiled[name][key], value), (case, name, key)
        seen["recurrent"] += chip.rec_used
        seen["syn2"] += bool(want["i2"].abs().sum())
        seen["output_spike"] += net.output_spiking and bool(want["n_out"].sum())
        states = torch.cat([want[k].flatten() for k in ("v", "i1", "i2", "v_out", "i_out")])
        seen["saturated"] += bool(((states == LOW) | (states == HIGH)).any())
        seen["multi_spike"] += bool((want["n"] > 1).any())
    assert min(seen.values()) >= 3, seen


def _recordings(net, x, record):
    with torch.no_grad():
        result = net(x, record=record)
    return result.output, result.recordings


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_recordings_equal_the_torch_loop(dtype):
    rng = random.Random(5)
    for case in range(12):
        spec, options, counts = random_case(rng)
        net = Xylo(spec, seed=case, dtype=dtype, **options)
        x = torch.tensor(counts, dtype=dtype)
        for record in (True, (), [spec.populations[0].name], ["out"]):
            net.kernel = "torch"
            want_out, want = _recordings(net, x, record)
            net.kernel = "compiled"
            got_out, got = _recordings(net, x, record)
            assert got_out.dtype == want_out.dtype and torch.equal(got_out, want_out)
            assert got.keys() == want.keys()
            for name in want:
                assert got[name].keys() == want[name].keys()
                for key, value in want[name].items():
                    assert got[name][key].dtype == value.dtype, (name, key)
                    assert torch.equal(got[name][key], value), (case, record, name, key)


def _weight_grads(net, x, record, seed):
    net.zero_grad()
    result = net(x, record=record)
    generator = torch.Generator().manual_seed(seed)
    terms = [result.output] + [
        value for trace in result.recordings.values() for value in trace.values()
    ]
    loss = sum(
        (t * torch.randn(t.shape, generator=generator, dtype=t.dtype)).sum()
        for t in terms
        if t.requires_grad
    )
    loss.backward()
    return {k: None if w.grad is None else w.grad.clone() for k, w in net.weights.items()}


@pytest.mark.parametrize(
    "surrogate",
    [
        Surrogate("superspike", 10.0),
        Surrogate("arctan", 2.0),
        Surrogate("triangle", 0.5),
        Surrogate("superspike", 5.0, cutoff=0.3),
    ],
    ids=lambda s: f"{s.kind}-{s.scale}-{s.cutoff}",
)
def test_compiled_gradients_equal_autograd_through_the_torch_loop(surrogate):
    """The adjoint of the compiled loop against autograd through the torch loop (straight-
    through decays, saturations, surrogate spikes), in float64, for a loss on the output alone
    and on every recording."""
    rng = random.Random(11)
    seen = {"recurrent": 0, "syn2": 0, "spiking_output": 0, "saturated": 0}
    for case in range(12):
        spec, options, counts = random_case(rng)
        net = Xylo(spec, seed=case, dtype=torch.float64, surrogate=surrogate, **options)
        x = torch.tensor(counts, dtype=torch.float64)
        for record in ((), True):
            grads = {}
            for kernel in ("torch", "compiled"):
                net.kernel = kernel
                grads[kernel] = _weight_grads(net, x, record, seed=case)
            for key, want in grads["torch"].items():
                got = grads["compiled"][key]
                assert (got is None) == (want is None), key
                scale = float(want.abs().max()) if want is not None else 0.0
                if want is not None:
                    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * scale)
        with torch.no_grad():
            chip = net._quantize()
            states = net._simulate_torch(x, chip, surrogate=False)
        seen["recurrent"] += chip.rec_used
        seen["syn2"] += chip.syn2_used
        seen["spiking_output"] += net.output_spiking
        values = torch.cat([states[k].flatten() for k in ("v", "i1", "i2", "v_out", "i_out")])
        seen["saturated"] += bool(((values == LOW) | (values == HIGH)).any())
    assert min(seen.values()) >= 1, seen


def test_a_network_trains_the_same_on_either_xylo_kernel():
    """Three Adam steps (float64): the weights after them agree between the kernels."""
    finals = []
    x = (torch.rand(30, 4, 6, generator=torch.Generator().manual_seed(2)) < 0.3).double() * 2
    for kernel in ("torch", "compiled"):
        net = random_net(seed=3, dtype=torch.float64)
        net.kernel = kernel
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(3):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                net(x).output.max(0).values, torch.tensor([0, 1, 2, 0])
            )
            loss.backward()
            optimiser.step()
        finals.append({k: v.detach().clone() for k, v in net.state_dict().items()})
    for key in finals[0]:
        torch.testing.assert_close(finals[1][key], finals[0][key], rtol=1e-10, atol=1e-12)


def test_the_kernel_switch_picks_the_loop(monkeypatch):
    net = random_net()
    assert net.kernel == "compiled"  # the float network's default (WORKBENCH_KERNEL unset)
    x = (torch.rand(30, 2, 6) < 0.3).float()

    def refuse(*args, **kwargs):
        raise AssertionError("the compiled loop ran")

    monkeypatch.setattr(xylo_kernels, "xylo_forward", refuse)
    net.kernel = "torch"
    net(x).output.sum().backward()  # the torch loop, forward and backward
    net.kernel = "compiled"
    with pytest.raises(AssertionError, match="the compiled loop ran"):
        net(x)


def test_compiled_gradients_agree_where_every_saturating_sum_clips():
    """A chip driven into its 16-bit limits at each saturating sum (synaptic states, the
    membrane's decay, its bias, the membrane), hidden and output neurons alike: the adjoint
    passes the gradient only where autograd's clamps do."""
    rng = random.Random(3)
    n_in, n_hid, n_out = 4, 10, 3

    def w(rows, cols, std):
        return [[rng.gauss(0.0, std) for _ in range(cols)] for _ in range(rows)]

    spec = NetworkSpec(
        n_in,
        [
            Population("h", n_hid, "lif", {"tau_mem": 8.0, "tau_syn": 4.0, "threshold": 0.5}),
            Population("out", n_out, "lif", {"tau_mem": 8.0, "tau_syn": 16.0, "threshold": 2.0}),
        ],
        [
            Projection("input", "h", weights=w(n_hid, n_in, 2.0)),
            Projection("h", "h", recurrent=True, weights=w(n_hid, n_hid, 1.0)),
            # Output 1 gets a strong positive current while its bias holds its membrane at the
            # lower limit: the membrane's decay then clips too.
            Projection(
                "h",
                "out",
                weights=[
                    row if k != 1 else [3.0] * n_hid for k, row in enumerate(w(n_out, n_hid, 1.0))
                ],
            ),
        ],
        dt=1.0,
        n_steps=40,
    )
    mask = [[rng.randint(0, 1) for _ in range(n_in)] for _ in range(n_hid)]
    net = Xylo(
        spec,
        dtype=torch.float64,
        weight_shift=(7, 4, 7),
        tau_syn2={"h": 2.0},
        synapse2={"input->h": mask},
        surrogate=Surrogate("arctan", 0.05),
    )
    x = torch.tensor(
        [[[rng.choice([0, 0, 3, 20]) for _ in range(n_in)] for _ in range(3)] for _ in range(40)],
        dtype=torch.float64,
    )
    bias = torch.tensor([30000.0, -30000.0, 0.0, 12000.0, -12000.0] * 2, dtype=torch.float64)
    bias_out = torch.tensor([30000.0, -30000.0, 5000.0], dtype=torch.float64)

    def chip():
        return dataclasses.replace(net._quantize(), bias=bias, bias_out=bias_out)

    def grads(simulate):
        states = simulate(x, chip(), True)
        generator = torch.Generator().manual_seed(0)
        loss = 0
        for key in STATE_KEYS:
            r = torch.randn(states[key].shape, generator=generator, dtype=torch.float64)
            if states[key].requires_grad:
                loss = loss + (states[key] * r).sum()
        return torch.autograd.grad(loss, list(net.weights.values()))

    want, got = grads(net._simulate_torch), grads(net._simulate_compiled)
    for a, b in zip(want, got):
        assert a.abs().sum() > 0
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12 * float(a.abs().max()))
    # Every saturating sum clipped somewhere (a flag bit cleared) and passed elsewhere.
    with torch.no_grad():
        c = chip()
        loop = net._loop(c, True)
        _, (flags, flags_out, cuts, cuts_out, _) = xylo_kernels.xylo_forward(
            net._counts(x), c.w_in, c.w_rec, c.w_out, loop.hidden, loop.output
        )
    for bits, stages in ((flags, range(5)), (flags_out, (0, 2, 3, 4))):
        for stage in stages:
            passed = (bits >> stage) & 1
            assert 0 < int(passed.sum()) < passed.numel(), stage
    # Events clipped in the input part of a delivery, in its hidden spikes' part (the recurrent
    # weights' masked gradient) and in the outputs' delivery.
    assert bool(((cuts >= 0) & (cuts < n_in)).any())
    assert bool((cuts >= n_in).any())
    assert bool((cuts_out >= 0).any())


# --------------------------------------------------------------------------------------------
# Integer configurations (Xylo.from_integers) and the rules the golden traces pin down


def one_neuron(weights_in, dash_mem=4, dash_syn=1, threshold=32767, **changes):
    """One hidden neuron fed by ``len(weights_in)`` channels (shift 7; a channel's entry is
    one weight or ``[[w1, w2]]``, both synaptic states), one silent output."""
    config = dict(
        weights_in=[[w] if isinstance(w, int) else w for w in weights_in],
        weights_out=[[0]],
        weight_shift_in=7,
        dash_mem=[dash_mem],
        dash_syn=[dash_syn],
        threshold=[threshold],
        dash_mem_out=[1],
        dash_syn_out=[1],
        threshold_out=[100],
    )
    config.update(changes)
    return Xylo.from_integers(**config)


def test_each_event_saturates_before_the_next_source():
    """Channel 0 adds 3 x 16256 (clipped at 32767), then channel 1 takes 3 x 16256 away: the
    chip ends at 32767 - 48768 = -16001, not at the sum's 0 (XyloLayer.cpp deliver_spikes)."""
    net = one_neuron([127, -127])
    i = net.integer_run(torch.tensor([[[3.0, 3.0]]]))["hidden"]["i"][0, 0, 0]
    assert int(i) == -16001 - decay(-16001, 1)
    # The other order: down to -32768 first, then up.
    net = one_neuron([-127, 127])
    i = net.integer_run(torch.tensor([[[3.0, 3.0]]]))["hidden"]["i"][0, 0, 0]
    assert int(i) == 16000 - decay(16000, 1)


def test_a_membrane_at_the_lower_limit_with_no_leak_stays_there():
    """dash_mem = 0: the leak -(-32768) wraps to -32768 in 16 bits, so a weak positive current
    cannot lift the membrane (XyloIAFNeuron.cpp: int16_t dv)."""
    # Channel 0 drives both synaptic states to -16384 after the decay (-32768 in all), then
    # channel 1 adds +128 per step to the first.
    net = one_neuron([[[-127, -127]], [[1, 0]]], dash_mem=0, dash_syn2=[1])
    x = torch.zeros(8, 1, 2)
    x[0, 0, 0] = 15
    x[2:, 0, 1] = 1
    states = net.integer_run(x)["hidden"]
    total = (states["i"] + states["i2"])[:, 0, 0].tolist()
    v = states["v"][:, 0, 0].tolist()
    assert total[0] == LOW and total[1] == -16384 and total[-1] > total[1], total
    # A wide leak (+32768) would give V = sum of the currents from step 1 on.
    assert v == [LOW] * len(v), v


def test_aliases_add_spikes_to_their_targets_count():
    """Neuron 0 fires 2 spikes and aliases onto neuron 1, which could fire 30: it fires 29 on
    top of the 2 (the cap of 31), and its membrane keeps the threshold of the one that did not
    fit; neuron 2 fires 1 and aliases onto neuron 0 (a lower index, already done): 0 sends
    2 + 1 (XyloLayer.cpp evolve_neurons)."""
    net = Xylo.from_integers(
        weights_in=[[4, 60, 2]],
        weights_out=[[0], [0], [0]],
        dash_mem=[4, 4, 4],
        dash_syn=[1, 1, 1],
        threshold=[1, 1, 1],
        dash_mem_out=[1],
        dash_syn_out=[1],
        threshold_out=[100],
        alias_target=[1, -1, 0],
    )
    out = net.integer_run(torch.tensor([[[1.0]]]))["hidden"]
    # The currents after the decay, 2, 30, 1, reach the membranes: 2, 30, 1 spikes alone.
    assert out["i"][0, 0].tolist() == [2, 30, 1]
    assert out["spikes"][0, 0].tolist() == [3, 31, 1]
    assert out["v"][0, 0].tolist() == [0, 1, 0]
    assert net.configuration().alias_target == [1, -1, 0]


def test_integer_configurations_out_of_range_are_refused_naming_the_field():
    with pytest.raises(SpecError, match="weights_in") as err:
        one_neuron([200, 0], threshold=0, alias_target=[3])
    text = str(err.value)
    assert "threshold" in text and "alias_target" in text
    with pytest.raises(SpecError, match="weight_shift_in"):
        one_neuron([1, 1], weight_shift_in=9)


@pytest.mark.parametrize("kernel_seed", [0, 1, 2])
def test_gradients_agree_with_per_event_clipping_and_aliases(kernel_seed):
    """A fixed integer chip, clipping inside deliveries (inputs, hidden spikes, outputs), with
    aliases: the compiled adjoint equals autograd through the torch loop."""
    gen = torch.Generator().manual_seed(kernel_seed)
    n_in, n, m = 4, 12, 3

    def ints(*shape, low=-128, high=128):
        return torch.randint(low, high, shape, generator=gen).numpy()

    w_rec = ints(n, n, 2)
    w_rec[..., 1] *= (torch.rand(n, n, generator=gen) < 0.3).numpy()
    net = Xylo.from_integers(
        weights_in=ints(n_in, n, 2),
        weights_rec=w_rec,
        weights_out=ints(n, m),
        weight_shift_in=6,
        weight_shift_rec=5,
        weight_shift_out=7,
        dash_mem=ints(n, low=0, high=6),
        dash_syn=ints(n, low=1, high=5),
        dash_syn2=ints(n, low=1, high=5),
        threshold=ints(n, low=2000, high=9000),
        bias=ints(n, low=-300, high=300),
        dash_mem_out=ints(m, low=0, high=6),
        dash_syn_out=ints(m, low=1, high=5),
        threshold_out=ints(m, low=2000, high=9000),
        bias_out=ints(m, low=-300, high=300),
        alias_target=[3, -1, -1, 0, 9, -1, -1, 7, -1, -1, 2, -1],
        dtype=torch.float64,
        surrogate=Surrogate("arctan", 0.002),
    )
    x = torch.randint(0, 6, (40, 3, n_in), generator=gen).double()
    x[torch.rand(x.shape, generator=gen) < 0.6] = 0
    base = net._quantize()

    def grads(simulate):
        grad = lambda w: w.clone().requires_grad_()  # noqa: E731
        chip = dataclasses.replace(
            base, w_in=[grad(w) for w in base.w_in], w_rec=[grad(w) for w in base.w_rec],
            w_out=grad(base.w_out),
        )  # fmt: skip
        states = simulate(x, chip, True)
        g = torch.Generator().manual_seed(7)
        loss = sum(
            (states[k] * torch.randn(states[k].shape, generator=g, dtype=torch.float64)).sum()
            for k in STATE_KEYS
            if states[k].requires_grad
        )
        weights = [*chip.w_in, *chip.w_rec, chip.w_out]
        return states, torch.autograd.grad(loss, weights)

    (s_torch, want), (s_comp, got) = grads(net._simulate_torch), grads(net._simulate_compiled)
    for key in STATE_KEYS:
        assert torch.equal(s_comp[key].detach(), s_torch[key].detach()), key
    for a, b in zip(want, got):
        assert a.abs().sum() > 0
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12 * float(a.abs().max()))
    # The corners were reached: clipping in each part of a delivery, and aliased spikes.
    with torch.no_grad():
        loop = net._loop(base, True)
        _, (_, _, cuts, cuts_out, owns) = xylo_kernels.xylo_forward(
            net._counts(x), base.w_in, base.w_rec, base.w_out, loop.hidden, loop.output,
            alias=loop.alias,
        )  # fmt: skip
    assert bool(((cuts >= 0) & (cuts < n_in)).any()) and bool((cuts >= n_in).any())
    assert bool((cuts_out >= 0).any())
    assert bool((s_torch["n"].detach() != owns).any())
