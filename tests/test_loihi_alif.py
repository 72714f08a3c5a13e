"""ALIF (after-hyperpolarising current) on the Loihi emulator: two compartments per neuron.

The reference below is written plainly from the arithmetic that ``hardware/loihi.py``'s module
docstring documents (Python ints and loops, none of the emulator's helpers): the soma's CUBA
compartment as Lava's bit-accurate LIF, and the auxiliary compartment of Rao, Plank, Wild &
Maass (2022) / Intel's NxSDK LSNN module, whose voltage ``h`` decays by its own 12-bit decay,
jumps by ``shift(w_h, e_h) << 6`` one step after each soma spike and is joined (ADD) into the
soma's input to ``v``.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from workbench.backends import FloatNetwork, projection_key
from workbench.hardware.base import deploy
from workbench.hardware.loihi import (
    ChipConfig,
    CompartmentConfig,
    Loihi,
    LoihiProfile,
    SynapseConfig,
    simulate,
)
from workbench.spec import NetworkSpec, Population, Projection, SpecError, feedforward

# ------------------------------------------------------------------------------ reference
EDGE = 2**23 - 1


def int32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def decay(x: int, d: int) -> int:
    """x (4096 - d) / 4096 rounded toward zero, in int32."""
    product = x * (4096 - d)
    return int32(abs(product) // 4096 * (1 if product >= 0 else -1))


def shift(x: int, e: int) -> int:
    return x * 2**e if e >= 0 else x // 2**-e  # flooring, as an arithmetic shift


def saturate(x: int, events: dict, key: str) -> int:
    if abs(x) > EDGE:
        events[key] += 1
    return max(-EDGE, min(EDGE, x))


def stored(rows: list[list[int]]) -> list[list[int]]:
    """Lava's 8-bit storage, sign mode from the weights: mixed -> even in [-256, 254]."""
    flat = [w for row in rows for w in row]
    if min(flat) >= 0:
        return [[min(w, 255) for w in row] for row in rows]
    if max(flat) <= 0:
        return [[max(w, -255) for w in row] for row in rows]
    return [[2 * (max(-256, min(255, w)) // 2) for w in row] for row in rows]


def reference(pops, projs, comps, x):
    """``pops`` [(name, size)] in order; ``projs`` [{source, target, w, e, d}] with weights and
    programmed delays ``[target][source]``; ``comps`` name -> dict (``ahp``: None or
    ``(decay_h, w_h, e_h)``); ``x`` [T][B][inputs].  Returns spikes, u, v, h per population
    ``[T][B][n]`` and event counts."""
    n_steps, batch = len(x), len(x[0])
    events = {"spikes": 0, "ahp_jumps": 0, "ahp_saturations": 0, "held": 0, "wraps": 0}
    spikes, out = {"input": x}, {}
    state = {}
    for name, n in pops:
        spikes[name] = [[[0] * n for _ in range(batch)] for _ in range(n_steps)]
        out[name] = {k: [[[0] * n for _ in range(batch)] for _ in range(n_steps)] for k in "uvh"}
        c = comps[name]
        state[name] = [{"u": 0, "v": c["v_init"], "h": 0, "held": 0} for _ in range(batch * n)]
    weights = [stored(p["w"]) for p in projs]
    for t in range(n_steps):
        for name, n in pops:
            c = comps[name]
            for b in range(batch):
                for i in range(n):
                    s = state[name][b * n + i]
                    a = 0
                    for p, w in zip(projs, weights):
                        if p["target"] != name:
                            continue
                        slots = {}
                        for j, wij in enumerate(w[i]):
                            sent = t - 1 - p["d"][i][j]
                            if sent >= 0 and spikes[p["source"]][sent][b][j]:
                                slots[p["d"][i][j]] = slots.get(p["d"][i][j], 0) + wij
                        a += sum(shift(acc, p["e"]) for acc in slots.values())
                    total = int32(decay(s["u"], c["decay_u"]) + a * 64)
                    u = total - 2**24 if total > 2**23 else total  # Lava's one wrap
                    if u <= -(2**23):
                        u = int32(total + 2**24)
                    if u != total:
                        events["wraps"] += 1
                    joined = u
                    if c["ahp"] is not None:  # the auxiliary compartment, then the ADD join
                        decay_h, w_h, e_h = c["ahp"]
                        h = decay(s["h"], decay_h)
                        if t > 0 and spikes[name][t - 1][b][i]:
                            h = int32(h + shift(max(-255, min(0, w_h)), e_h) * 64)
                            events["ahp_jumps"] += 1
                        s["h"] = saturate(h, events, "ahp_saturations")
                        joined = u + s["h"]
                    v = max(
                        -EDGE, min(EDGE, int32(decay(s["v"], c["decay_v"]) + joined + c["bias"]))
                    )
                    if c["threshold"] is not None:
                        if s["held"] > 0:
                            v, s["held"] = 0, s["held"] - 1
                            events["held"] += 1
                        elif v > c["threshold"] * 64:
                            spikes[name][t][b][i] = 1
                            events["spikes"] += 1
                            v, s["held"] = 0, c["refractory"]
                    s["u"], s["v"] = u, v
                    for k in "uvh":
                        out[name][k][t][b][i] = s[k]
    return spikes, out, events


def plain(spec: NetworkSpec, config: ChipConfig):
    pops = [(name, spec.size_of(name)) for name in spec.order()]
    projs = []
    for proj in spec.projections:
        syn = config.synapses[projection_key(proj)]
        projs.append(
            {
                "source": proj.source,
                "target": proj.target,
                "w": syn.weights.tolist(),
                "e": syn.weight_exponent,
                "d": syn.delays.tolist(),
            }
        )
    comps = {}
    for name, c in config.compartments.items():
        comps[name] = {
            "decay_u": c.decay_u,
            "decay_v": c.decay_v,
            "threshold": c.threshold_mantissa,
            "bias": shift(c.bias_mantissa, c.bias_exponent),
            "refractory": c.refractory_steps,
            "v_init": c.v_init,
            "ahp": None if c.ahp_decay is None else (c.ahp_decay, c.ahp_weight, c.ahp_exponent),
        }
    return pops, projs, comps


def random_alif_network(seed: int):
    """A random small spec with alif hidden populations (and sometimes a lif one), recurrence,
    feedback and delays, a random integer configuration and random input spikes."""
    rng = random.Random(seed)
    n_steps = rng.randint(10, 40)
    hidden = [
        Population(f"h{k}", rng.randint(1, 5), "alif" if k == 0 or rng.random() < 0.7 else "lif")
        for k in range(rng.randint(1, 2))
    ]
    out = Population("out", rng.randint(1, 3), rng.choice(["lif", "alif", "li"]))
    pops = [*hidden, out]
    chain = ["input", *(p.name for p in pops)]
    projs = [Projection(a, b) for a, b in zip(chain[:-1], chain[1:])]
    if rng.random() < 0.5:
        projs.append(Projection("h0", "h0", recurrent=True))
    if out.spiking and rng.random() < 0.4:  # feedback: all populations step together
        projs.append(Projection("out", "h0", recurrent=True))
    spec = NetworkSpec(rng.randint(1, 4), pops, projs, n_steps=n_steps)
    comps = {}
    for pop in pops:
        ahp = {}
        if pop.model == "alif":
            ahp = {
                "ahp_decay": rng.choice([0, 1, 4096, rng.randint(1, 700)]),
                "ahp_weight": rng.choice([rng.randint(-255, 0), rng.randint(-255, -200), -300, 7]),
                "ahp_exponent": rng.choice([rng.randint(0, 7), 7, -2]),
            }
        comps[pop.name] = CompartmentConfig(
            decay_u=rng.choice([0, 4096, rng.randint(1, 4096)]),
            decay_v=rng.choice([0, 4096, rng.randint(1, 600)]),
            threshold_mantissa=rng.randint(1, 4000) if pop.spiking else None,
            bias_mantissa=rng.randint(-4096, 4095) if rng.random() < 0.3 else 0,
            bias_exponent=rng.randint(0, 7),
            refractory_steps=rng.randint(0, 3),
            v_init=rng.randint(-(2**20), 2**20) if rng.random() < 0.3 else 0,
            **ahp,
        )
    syns = {}
    for proj in projs:
        rows, cols = spec.size_of(proj.target), spec.size_of(proj.source)
        weights = [[2 * rng.randint(-100, 127) for _ in range(cols)] for _ in range(rows)]
        delays = [[rng.choice([0, 0, 1, 3, 9]) for _ in range(cols)] for _ in range(rows)]
        if proj.recurrent:
            delays = [[d + 1 for d in row] for row in delays]
        syns[projection_key(proj)] = SynapseConfig(
            torch.tensor(weights), rng.randint(-2, 7), torch.tensor(delays)
        )
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_steps, 2, spec.input_size, generator=g) < 0.4).float()
    return spec, ChipConfig(comps, syns), x


# ------------------------------------------------------------------------------ exactness
@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_alif_runs_bit_exact_against_the_plain_integer_reference(kernel):
    """Spikes and every integer state (u, v and the auxiliary h) per step, on 60 random
    networks with alif populations, recurrence, feedback and delays."""
    totals = {"spikes": 0, "ahp_jumps": 0, "ahp_saturations": 0, "held": 0, "wraps": 0}
    for seed in range(60):
        spec, config, x = random_alif_network(seed)
        chip = Loihi(spec)
        chip.kernel = kernel
        run = chip.run_chip(x, config)
        pops, projs, comps = plain(spec, config)
        spikes, out, events = reference(pops, projs, comps, x.long().tolist())
        for name, _ in pops:
            assert run.u[name].tolist() == out[name]["u"], (seed, name, "u")
            assert run.v[name].tolist() == out[name]["v"], (seed, name, "v")
            if comps[name]["threshold"] is not None:
                assert run.spikes[name].tolist() == spikes[name], (seed, name, "spikes")
            if comps[name]["ahp"] is not None:
                assert run.ahp[name].tolist() == out[name]["h"], (seed, name, "h")
            else:
                assert name not in run.ahp
        for k in totals:
            totals[k] += events[k]
    # The cases exercise AHP jumps, refractory holds and wraps of u (the auxiliary register's
    # saturation: the next test).
    assert all(totals[k] > 0 for k in ("spikes", "ahp_jumps", "held", "wraps")), totals


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_the_ahp_register_saturates_at_24_bits(kernel):
    """A soma held above threshold by u = 2**23 and the largest bias keeps firing while its
    AHP (no decay, the largest jump) runs into -(2**23 - 1) after five spikes."""
    spec = NetworkSpec(8, [Population("h", 1, "alif")], [Projection("input", "h")], n_steps=12)
    comp = CompartmentConfig(4096, 4096, 1, 4095, 7, ahp_decay=0, ahp_weight=-255, ahp_exponent=7)
    syn = SynapseConfig(torch.full((1, 8), 128), 7, torch.zeros(1, 8, dtype=torch.long))
    config = ChipConfig({"h": comp}, {"input__h": syn})
    x = torch.ones(12, 1, 8)
    chip = Loihi(spec)
    chip.kernel = kernel
    run = chip.run_chip(x, config)
    pops, projs, comps = plain(spec, config)
    spikes, out, events = reference(pops, projs, comps, x.long().tolist())
    assert events["ahp_saturations"] > 0
    assert run.ahp["h"].tolist() == out["h"]["h"] and run.v["h"].tolist() == out["h"]["v"]
    assert run.spikes["h"].tolist() == spikes["h"]
    assert run.ahp["h"][-1, 0, 0] == -(2**23 - 1) and run.spikes["h"][1:].all()


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_a_run_keeps_the_ahp_register_only_of_the_populations_asked_for(kernel):
    for seed in range(10):
        spec, config, x = random_alif_network(seed)
        full = simulate(spec, config, x, kernel=kernel)
        part = simulate(spec, config, x, kernel=kernel, record={"h0"})
        assert set(part.ahp) == {"h0"} and set(part.u) == {"h0"}
        assert part.ahp["h0"].tolist() == full.ahp["h0"].tolist()
        for name, s in full.spikes.items():
            assert part.spikes[name].tolist() == s.tolist(), (seed, name)


# ------------------------------------------------------------------------------ mapping
def _alif_spec(n_steps=160, **params):
    params = {"tau_mem": 20.0, "tau_syn": 5.0, "tau_adapt": 80.0, "adapt_strength": 0.4, **params}
    return feedforward(
        [6, 16, 3], model="alif", output_model="li", params=params, dt=0.5, n_steps=n_steps
    )


def _driven(spec, seed=2):
    """A float network whose hidden neurons fire often enough for the AHP to matter, and
    Poisson input spikes."""
    net = FloatNetwork(spec, seed=seed)
    with torch.no_grad():
        net.weights["input__hidden"].mul_(6.0).add_(1.5)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(spec.n_steps, 8, spec.input_size, generator=g) < 0.25).float()
    return net, x


def test_the_mapping_sets_the_ahp_compartment_from_tau_adapt_and_adapt_strength():
    spec = _alif_spec()
    chip = Loihi(spec)
    comp = chip.chip_config().compartments["hidden"]
    assert comp.ahp_decay == round(4096 * (1 - math.exp(-0.5 / 80.0)))
    p = chip.neuron_params["hidden"]
    jump = -comp.ahp_increment()  # chip units of v per spike
    expected = comp.scale * float(p.adapt_gain) * 0.4
    assert abs(jump - expected) <= 2 ** (6 + comp.ahp_exponent) / 2
    assert -255 <= comp.ahp_weight < 0 and 0 <= comp.ahp_exponent <= 7
    assert chip.chip_config().compartments["output"].ahp_decay is None
    # The float shadow (gradients) uses the chip's quantised AHP decay and jump.
    assert float(p.adapt_decay) == 1 - comp.ahp_decay / 4096
    assert float(p.adapt_strength) == pytest.approx(jump / (comp.scale * float(p.adapt_gain)))


def test_the_ahp_register_holds_the_float_ahp_current_driven_by_the_same_spikes():
    """h[t] = -S q A[t-1], where A is the float AHP current of the chip's own spikes: exact up
    to the 12-bit decay and the 8-bit jump."""
    spec = _alif_spec()
    float_net, x = _driven(spec)
    chip = Loihi(spec)
    chip.load_state_dict(float_net.state_dict())
    run = chip.run_chip(x)
    comp = chip.chip_config().compartments["hidden"]
    q = float(FloatNetwork(spec).neuron_params["hidden"].adapt_gain)
    gamma, strength = math.exp(-0.5 / 80.0), 0.4
    z = run.spikes["hidden"].double()
    assert z.sum() > 100
    current, expected = torch.zeros_like(z[0]), []
    for t in range(z.shape[0]):
        expected.append(current.clone())  # h[t] holds A[t - 1]
        current = gamma * current + strength * z[t]
    expected = torch.stack(expected)
    got = -run.ahp["hidden"].double() / (comp.scale * q)
    assert (got - expected).abs().max() / expected.abs().max() < 0.02


def _float_and_chip(spec, float_net, x):
    chip = Loihi(spec)
    chip.load_state_dict(float_net.state_dict())
    with torch.no_grad():
        return float_net(x, record=True), chip.eval()(x, record=True)


def test_a_float_alif_network_and_its_loihi_mapping_agree():
    """The same random network (hidden neurons firing in ~27 % of the steps) on the float
    simulator and on the chip: hidden spike counts within 2 %, spike trains mostly equal (as
    closely as a LIF network of the same weights maps: the 8-bit weights and 12-bit decays
    shift a few spikes by a step; measured 4.9 % of the entries for alif, 5.3 % for LIF), the
    readout's membrane within 5 % of its range (measured 3.7 %).  The chip follows the float
    alif far more closely than a float LIF of the same weights: the AHP is mapped, not lost."""
    spec = _alif_spec()
    float_net, x = _driven(spec)
    ref, got = _float_and_chip(spec, float_net, x)
    z_float = ref.recordings["hidden"]["spikes"]
    z_chip = got.recordings["hidden"]["spikes"]
    assert z_float.sum() > 200
    counts = (z_float.sum(0) - z_chip.sum(0)).abs().sum() / z_float.sum()
    assert counts < 0.02, counts
    mismatch = (z_float != z_chip).double().mean().item()
    lif = _alif_spec(adapt_strength=0.0)
    lif_float, _ = _driven(lif)
    lif_ref, lif_got = _float_and_chip(lif, lif_float, x)
    lif_mismatch = (
        (lif_ref.recordings["hidden"]["spikes"] != lif_got.recordings["hidden"]["spikes"])
        .double()
        .mean()
        .item()
    )
    assert mismatch < 0.08 and mismatch < 1.5 * lif_mismatch + 0.01, (mismatch, lif_mismatch)
    error = ((got.output - ref.output).abs().max() / ref.output.abs().max()).item()
    assert error < 0.05, error
    # Without the AHP (a float LIF of the same weights) the spikes differ far more.
    z_lif = lif_ref.recordings["hidden"]["spikes"]
    assert (z_lif != z_chip).double().mean().item() > 3 * mismatch


def test_gradients_reach_the_float_weights_through_an_alif_chip():
    spec = _alif_spec(n_steps=60)
    net = Loihi(spec, seed=1)
    with torch.no_grad():
        net.weights["input__hidden"].mul_(6.0).add_(1.5)
    x = (torch.rand(60, 4, 6, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    net.train()
    result = net(x, record=True)
    assert result.recordings["hidden"]["spikes"].sum() > 0
    result.output.max(dim=0).values.sum().backward()
    for key, w in net.weights.items():
        assert w.grad is not None and w.grad.abs().sum() > 0, key
    with torch.no_grad():
        assert torch.equal(net.eval()(x).output, result.output.detach())


# ------------------------------------------------------------------------------ capacity, checks
def test_an_alif_neuron_takes_two_compartments_and_its_ahp_synapse():
    lif = Loihi.resources(feedforward([5, 600, 3])).set_index("resource")
    alif = Loihi.resources(feedforward([5, 600, 3], model="alif")).set_index("resource")
    assert lif.loc["compartments", "used"] == 603
    assert alif.loc["compartments", "used"] == 2 * 600 + 3
    assert lif.loc["cores", "used"] == 2 and alif.loc["cores", "used"] == 3
    assert alif.loc["synapses", "used"] == lif.loc["synapses", "used"] + 600
    # Each soma's synapse onto its own AHP compartment: one output and one input axon.
    small = Loihi.resources(feedforward([5, 100, 3], model="alif")).set_index("resource")
    assert small.loc["max fan-out axons per core", "used"] == 100 * 2  # output core + own AHP
    assert small.loc["max fan-in axons per core", "used"] == 5 + 100
    found = {v.path: v for v in Loihi.check(feedforward([4, 70_000, 3], model="alif"))}
    # 140 000 compartments: 137 cores of 1024, more than 128 (the output, whose synapses from
    # 70 000 sources fit no core, is refused on its own and counts none).
    assert found["populations"].value == 137
    assert "alif ones 2 compartments each" in found["populations"].limit
    assert "populations" not in {v.path for v in Loihi.check(feedforward([4, 70_000, 3]))}


def test_check_accepts_alif_and_names_what_loihi_cannot_do():
    assert Loihi.check(_alif_spec()) == []
    spec = _alif_spec(reset="subtract", tau_adapt=1e6, adapt_strength=500.0)
    found = {v.path: v for v in Loihi.check(spec)}
    assert found["populations[0].params.reset"].value == "'subtract'"
    decay = found["populations[0].params.tau_adapt"]
    assert decay.value == 0 and "tau_adapt=1e+06" in decay.limit
    strength = found["populations[0].params.adapt_strength"]
    assert strength.value == "500" and strength.allowed.startswith("at most ")
    limit = float(strength.allowed.split()[2])
    assert Loihi.check(_alif_spec(adapt_strength=0.99 * limit)) == []
    with pytest.raises(SpecError, match=r"populations\[0\].model: neuron model is 'if'"):
        Loihi(feedforward([2, 3, 2], model="if", n_steps=10))


def test_the_ahp_figure_carries_its_source_and_is_marked_an_assumption():
    figures = LoihiProfile().figures().set_index("figure")
    assert figures.loc["ahp_compartments", "value"] == 2
    assert "Rao" in figures.loc["ahp_compartments", "source"]
    assert figures.loc["ahp_compartments", "assumption"]


# ------------------------------------------------------------------------------ deployment
def test_a_float_trained_alif_network_deploys_to_loihi():
    """digits' reference network (64-100-10, 20 steps) with an alif hidden layer, trained
    briefly on the float simulator, then deployed: the accuracy before and after and the
    resources (measured 60.3 -> 60.6 % after 4 epochs; 210 compartments)."""
    from workbench import experiment

    config = experiment.reference_config("digits", "surrogate", "float", seed=0)
    config.neuron = "alif"
    config.neuron_params = {**config.neuron_params, "tau_adapt": 50.0, "adapt_strength": 0.2}
    config.training["epochs"] = 4
    run = experiment.train(config)
    assert run.spec.populations[0].model == "alif"
    deployment = deploy(run.network, "loihi", data=run.data)
    before, after = deployment.accuracy_before, deployment.accuracy_after
    assert before > 0.4, before  # trained well beyond chance (1/10)
    assert abs(after - before) <= 0.03, (before, after)
    table = deployment.resources.set_index("resource")
    assert table.loc["compartments", "used"] == 2 * 100 + 10
    assert (deployment.weights["clipped"] == 0).all()
