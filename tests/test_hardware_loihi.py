"""The Loihi emulator: bit-exact integer dynamics, delays, on-chip learning, refusals, mapping.

The reference below is written plainly from the documented chip arithmetic (Python ints and
loops, no torch): 12-bit decays rounded toward zero, weights shifted by their exponent and by
6, a 24-bit two's-complement current, a saturating 24-bit voltage, threshold mantissa << 6,
reset to 0, refractory hold, spikes delivered 1 + delay steps after they are emitted, and
pre/post traces with a sum-of-products rule rounded to the stored weight grid.
"""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction

import pytest
import torch

from workbench.backends import FloatNetwork, projection_key
from workbench.hardware.loihi import (
    ChipConfig,
    CompartmentConfig,
    LearningRule,
    Loihi,
    LoihiProfile,
    SynapseConfig,
    Term,
    parse_rule,
    simulate,
)
from workbench.spec import NetworkSpec, Population, Projection, SpecError, feedforward

# ------------------------------------------------------------------------------ reference
HALF = 2**23


# Lava 0.10.0's bit-accurate rules (lava/proc/lif/models.py, lava/proc/dense/models.py,
# lava/utils/weightutils.py), written out plainly with Python integers.
def ref_int32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def ref_decay(x: int, decay: int) -> int:
    product = x * (4096 - decay)
    magnitude = abs(product) // 4096
    return ref_int32(magnitude if product >= 0 else -magnitude)


def ref_wrap(x: int, events: dict) -> int:
    """Lava's one wrap of u: past 2**23 loses 2**24; at -2**23 or below (after that) the
    original gains 2**24."""
    x = ref_int32(x)
    if x > HALF or x <= -HALF:
        events["wraps"] += 1
    wrapped = x - 2 * HALF if x > HALF else x
    return ref_int32(x + 2 * HALF) if wrapped <= -HALF else wrapped


def ref_stored(rows: list[list[int]]) -> list[list[int]]:
    """Lava's weight storage with the sign mode inferred and 8 weight bits: single-sign
    weights clipped to 0..255 (magnitudes), mixed ones to [-256, 255] and made even (floor)."""
    flat = [w for row in rows for w in row]
    if min(flat) >= 0:
        return [[min(w, 255) for w in row] for row in rows]
    if max(flat) <= 0:
        return [[max(w, -255) for w in row] for row in rows]
    return [[2 * (max(-256, min(255, w)) // 2) for w in row] for row in rows]


def ref_saturate(x: int, events: dict) -> int:
    if x > HALF - 1 or x < -(HALF - 1):
        events["saturations"] += 1
    return max(-(HALF - 1), min(HALF - 1, x))


def reference_run(pops, projs, comps, x, rule=None):
    """``pops``: [(name, size)] in order; ``projs``: [{source, target, key, w, e, d}] with
    nested-list weights/delays ``[target][source]``; ``comps``: name -> dict of ints
    (threshold None for a readout); ``x``: [T][B][inputs] of 0/1.  ``rule``: optional
    (key, dict) for on-chip learning with batch size 1."""
    n_steps, batch = len(x), len(x[0])
    events = {"wraps": 0, "saturations": 0, "spikes": 0, "held": 0}
    spikes = {"input": x}
    u, v, held, out_u, out_v = {}, {}, {}, {}, {}
    for name, n in pops:
        spikes[name] = [[[0] * n for _ in range(batch)] for _ in range(n_steps)]
        u[name] = [[0] * n for _ in range(batch)]
        v[name] = [[comps[name]["v_init"]] * n for _ in range(batch)]
        held[name] = [[0] * n for _ in range(batch)]
        out_u[name] = [[[0] * n for _ in range(batch)] for _ in range(n_steps)]
        out_v[name] = [[[0] * n for _ in range(batch)] for _ in range(n_steps)]
    weights = {p["key"]: ref_stored(p["w"]) for p in projs}
    if rule is not None:
        key, r = rule
        proj = next(p for p in projs if p["key"] == key)
        n_pre, n_post = len(proj["w"][0]), len(proj["w"])
        pre_trace, post_trace = [0] * n_pre, [0] * n_post
        pre_seen, post_seen = [0] * n_pre, [0] * n_post
    for t in range(n_steps):
        for name, n in pops:
            c = comps[name]
            for b in range(batch):
                for i in range(n):
                    a = 0
                    for p in projs:
                        if p["target"] != name:
                            continue
                        slots = {}  # delay -> sum of the weights whose spikes arrive now
                        for j, w in enumerate(weights[p["key"]][i]):
                            sent = t - 1 - p["d"][i][j]
                            if sent >= 0 and spikes[p["source"]][sent][b][j]:
                                slots[p["d"][i][j]] = slots.get(p["d"][i][j], 0) + w
                        for acc in slots.values():  # each delay slot shifted on its own
                            a += acc * 2 ** p["e"] if p["e"] >= 0 else acc // 2 ** -p["e"]
                    new_u = ref_wrap(ref_decay(u[name][b][i], c["decay_u"]) + a * 64, events)
                    bias = c["bias_mantissa"] * 2 ** c["bias_exponent"]
                    new_v = ref_saturate(
                        ref_int32(ref_decay(v[name][b][i], c["decay_v"]) + new_u + bias), events
                    )
                    if c["threshold"] is not None:
                        if held[name][b][i] > 0:
                            new_v = 0
                            held[name][b][i] -= 1
                            events["held"] += 1
                        elif new_v > c["threshold"] * 64:
                            spikes[name][t][b][i] = 1
                            events["spikes"] += 1
                            new_v = 0
                            held[name][b][i] = c["refractory"]
                    u[name][b][i], v[name][b][i] = new_u, new_v
                    out_u[name][t][b][i], out_v[name][t][b][i] = new_u, new_v
        if rule is not None:
            pre = spikes[proj["source"]][t][0]
            post = spikes[proj["target"]][t][0]
            for j in range(n_pre):
                pre_trace[j] = ref_decay(pre_trace[j], r["x1_decay"]) + r["x1_impulse"] * pre[j]
                pre_trace[j] = min(pre_trace[j], 127)
                pre_seen[j] = pre_seen[j] or pre[j]
            for i in range(n_post):
                post_trace[i] = ref_decay(post_trace[i], r["y1_decay"]) + r["y1_impulse"] * post[i]
                post_trace[i] = min(post_trace[i], 127)
                post_seen[i] = post_seen[i] or post[i]
            if (t + 1) % r["epoch"] == 0:
                w = weights[key]
                for i in range(n_post):
                    for j in range(n_pre):
                        dw = r["dw"](pre_seen[j], post_seen[i], pre_trace[j], post_trace[i])
                        target = Fraction(w[i][j]) + dw
                        # nearest multiple of 2 (ties up), within the 8-bit mixed-sign range
                        stored = 2 * ((target + 1) // 2)
                        w[i][j] = max(-256, min(254, int(stored)))
                pre_seen, post_seen = [0] * n_pre, [0] * n_post
    return spikes, out_u, out_v, weights, events


# ------------------------------------------------------------------------------ helpers
def to_lists(t: torch.Tensor):
    return t.tolist()


def plain_case(spec: NetworkSpec, config: ChipConfig):
    pops = [(name, spec.size_of(name)) for name in spec.order()]
    projs = []
    for proj in spec.projections:
        key = projection_key(proj)
        syn = config.synapses[key]
        projs.append(
            {
                "source": proj.source,
                "target": proj.target,
                "key": key,
                "w": to_lists(syn.weights),
                "e": syn.weight_exponent,
                "d": to_lists(syn.delays),
            }
        )
    comps = {
        name: {
            "decay_u": c.decay_u,
            "decay_v": c.decay_v,
            "threshold": c.threshold_mantissa,
            "bias_mantissa": c.bias_mantissa,
            "bias_exponent": c.bias_exponent,
            "refractory": c.refractory_steps,
            "v_init": c.v_init,
        }
        for name, c in config.compartments.items()
    }
    return pops, projs, comps


def random_network(seed: int):
    """A random small spec, a random integer chip configuration and random input spikes."""
    rng = random.Random(seed)
    n_steps = rng.randint(8, 30)
    hidden = [Population(f"h{k}", rng.randint(1, 5)) for k in range(rng.randint(1, 2))]
    out = Population("out", rng.randint(1, 3), rng.choice(["lif", "li"]))
    pops = [*hidden, out]
    chain = ["input", *(p.name for p in pops)]
    projs = [Projection(a, b) for a, b in zip(chain[:-1], chain[1:])]
    if rng.random() < 0.4:
        projs.append(Projection("input", "out"))
    if rng.random() < 0.5:
        projs.append(Projection("h0", "h0", recurrent=True))
    if out.spiking and rng.random() < 0.5:  # feedback: all populations step together
        projs.append(Projection("out", "h0", recurrent=True))
    spec = NetworkSpec(rng.randint(1, 4), pops, projs, n_steps=n_steps)

    def choice_decay():
        return rng.choice([0, 4096, rng.randint(0, 4096), rng.randint(1, 600)])

    comps = {}
    for pop in pops:
        comps[pop.name] = CompartmentConfig(
            decay_u=choice_decay(),
            decay_v=choice_decay(),
            threshold_mantissa=rng.randint(1, 4000) if pop.spiking else None,
            bias_mantissa=rng.randint(-4096, 4095) if rng.random() < 0.3 else 0,
            bias_exponent=rng.randint(0, 7),
            refractory_steps=rng.randint(0, 3),
            v_init=rng.randint(-(2**20), 2**20) if rng.random() < 0.3 else 0,
        )
    syns = {}
    for proj in projs:
        rows, cols = spec.size_of(proj.target), spec.size_of(proj.source)
        weights = [[2 * rng.randint(-128, 127) for _ in range(cols)] for _ in range(rows)]
        if rng.random() < 0.5:
            delays = [[rng.randint(0, 6)] * cols for _ in range(rows)]
        else:
            delays = [[rng.choice([0, 1, 2, 9, 62]) for _ in range(cols)] for _ in range(rows)]
        if proj.recurrent:
            delays = [[d + 1 for d in row] for row in delays]
        syns[projection_key(proj)] = SynapseConfig(
            torch.tensor(weights), rng.randint(-8, 7), torch.tensor(delays)
        )
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_steps, 2, spec.input_size, generator=g) < 0.35).float()
    return spec, ChipConfig(comps, syns), x


# ------------------------------------------------------------------------------ exactness
@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_integer_reference_agrees_on_120_random_networks(kernel):
    """Both of the emulator's loops (the compiled one and the torch reference) against the
    independent integer reference, bit for bit."""
    totals = {"wraps": 0, "saturations": 0, "spikes": 0, "held": 0}
    for seed in range(120):
        spec, config, x = random_network(seed)
        chip = Loihi(spec)
        chip.kernel = kernel
        run = chip.run_chip(x, config)
        pops, projs, comps = plain_case(spec, config)
        spikes, u, v, _, events = reference_run(pops, projs, comps, to_lists(x.long()))
        for name, _ in pops:
            assert run.u[name].tolist() == u[name], (seed, name, "u")
            assert run.v[name].tolist() == v[name], (seed, name, "v")
            if comps[name]["threshold"] is not None:
                assert run.spikes[name].tolist() == spikes[name], (seed, name, "spikes")
        for k in totals:
            totals[k] += events[k]
    # The random cases exercise wrapping, saturation, spiking and refractory holds.
    assert all(count > 0 for count in totals.values()), totals


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_a_run_keeps_u_and_v_only_of_the_populations_asked_for(kernel):
    """``record`` drops the other populations' membranes (the compiled loop does not write
    them); spikes and the kept populations' states are those of a full run."""
    for seed in range(20):
        spec, config, x = random_network(seed)
        full = simulate(spec, config, x, kernel=kernel)
        kept = {spec.output_name}
        part = simulate(spec, config, x, kernel=kernel, record=kept)
        assert set(part.u) == set(part.v) == kept
        assert part.u[spec.output_name].tolist() == full.u[spec.output_name].tolist()
        assert part.v[spec.output_name].tolist() == full.v[spec.output_name].tolist()
        for name, spikes in full.spikes.items():
            assert part.spikes[name].tolist() == spikes.tolist(), (seed, name)


@pytest.mark.parametrize("modulo", [False, True])
def test_current_wraps_at_the_24_bit_edges_as_lava_and_voltage_saturates(modulo):
    """u = +-2**23 exactly: Lava's one wrap lets +2**23 through and turns -2**23 into +2**23;
    the optional modulo rule turns both into -2**23.  v saturates at +-(2**23 - 1)."""
    spec = NetworkSpec(8, [Population("h", 2, "li")], [Projection("input", "h")], n_steps=3)
    # decay_u 4096: u is this step's input; +-8 x 128 << (7 + 6) = +-2**23 exactly.  Mixed
    # weights store 128 as is (even, within [-256, 254]).
    config = ChipConfig(
        {"h": CompartmentConfig(4096, 0, None)},
        {
            "input__h": SynapseConfig(
                torch.tensor([[128] * 8, [-128] * 8]), 7, torch.zeros(2, 8, dtype=torch.long)
            )
        },
    )
    x = torch.ones(3, 1, 8)
    net = Loihi(spec, profile=LoihiProfile(u_wraps_modulo=modulo))
    run = net.run_chip(x, config)
    u_edge = -(2**23) if modulo else 2**23
    assert run.u["h"][1:, 0].tolist() == [[u_edge, u_edge]] * 2
    v_edge = -(2**23) + 1 if modulo else 2**23 - 1
    assert run.v["h"][1:, 0].tolist() == [[v_edge, v_edge]] * 2
    if not modulo:
        pops, projs, comps = plain_case(spec, config)
        _, u, v, _, _ = reference_run(pops, projs, comps, to_lists(x.long()))
        assert run.u["h"].tolist() == u["h"] and run.v["h"].tolist() == v["h"]


@pytest.mark.parametrize("threshold, fires", [(2, False), (1, True)])
def test_spike_needs_the_voltage_strictly_above_the_threshold(threshold, fires):
    spec = NetworkSpec(1, [Population("h", 1)], [Projection("input", "h")], n_steps=4)
    # decay 4096 on both: v is this step's input, 2 << 6 = 128 = threshold 2 << 6.
    config = ChipConfig(
        {"h": CompartmentConfig(4096, 4096, threshold)},
        {"input__h": SynapseConfig(torch.tensor([[2]]), 0, torch.zeros(1, 1, dtype=torch.long))},
    )
    x = torch.ones(4, 1, 1)
    run = Loihi(spec).run_chip(x, config)
    assert run.spikes["h"][1:].bool().all() == fires
    pops, projs, comps = plain_case(spec, config)
    spikes, _, _, _, _ = reference_run(pops, projs, comps, to_lists(x.long()))
    assert run.spikes["h"].tolist() == spikes["h"]


def test_mapped_float_network_runs_exactly_as_the_reference():
    spec = feedforward([3, 6, 2], output_model="li", dt=0.5, n_steps=40)
    spec.populations[0].params.update(v_leak=0.2, refractory_steps=2)
    net = Loihi(spec, seed=3)
    x = (torch.rand(40, 2, 3, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    config = net.chip_config()
    assert config.compartments["hidden"].bias != 0
    pops, projs, comps = plain_case(spec, config)
    spikes, u, v, _, _ = reference_run(pops, projs, comps, to_lists(x.long()))
    result = net(x, record=True)
    hidden, output = config.compartments["hidden"], config.compartments["output"]
    assert result.recordings["hidden"]["spikes"].long().tolist() == spikes["hidden"]
    expected = torch.tensor(v["output"], dtype=torch.float64) / output.scale + output.origin
    assert torch.allclose(result.output.double(), expected, rtol=1e-5, atol=1e-7)
    v_hidden = torch.tensor(v["hidden"], dtype=torch.float64) / hidden.scale + hidden.origin
    assert torch.allclose(result.recordings["hidden"]["v"].double(), v_hidden, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ delays
def _delay_spec(delay, n_steps=80, recurrent=False):
    pops = [Population("hidden", 3)]
    projs = [Projection("input", "hidden", delay=delay, weights=[[100.0], [100.0], [100.0]])]
    if recurrent:
        projs.append(
            Projection("hidden", "hidden", recurrent=True, delay=3, weights=[[0.0] * 3] * 3)
        )
    return NetworkSpec(1, pops, projs, dt=0.5, n_steps=n_steps)


def _first_spikes(net, n_steps=80):
    x = torch.zeros(n_steps, 1, 1)
    x[4, 0, 0] = 1.0
    spikes = net(x, record=True).recordings["hidden"]["spikes"][:, 0]
    return [int(torch.nonzero(spikes[:, i])[0]) for i in range(spikes.shape[1])]


def test_delays_shift_spikes_by_exactly_the_configured_steps():
    base = _first_spikes(Loihi(_delay_spec(0)))
    assert base == [5, 5, 5]  # one step of pipeline latency
    for d in (1, 7, 30, 62):
        assert _first_spikes(Loihi(_delay_spec(d))) == [5 + d] * 3
    per_synapse = _first_spikes(Loihi(_delay_spec([[0], [11], [62]])))
    assert per_synapse == [5, 16, 67]


def test_recurrent_projection_is_programmed_one_step_later():
    net = Loihi(_delay_spec(0, recurrent=True))
    delays = net.chip_config().synapses["hidden__hidden"].delays
    assert delays.unique().tolist() == [4]  # spec delay 3, plus the recurrent step


# ------------------------------------------------------------------------------ learning
STDP = {
    "x1_impulse": 40,
    "x1_decay": 600,
    "y1_impulse": 40,
    "y1_decay": 600,
    "epoch": 1,
    "dw": lambda x0, y0, x1, y1: Fraction(1, 4) * x1 * y0 - Fraction(1, 4) * y1 * x0,
}


def _stdp_rule(epoch=1):
    return LearningRule(
        "2^-2*x1*y0 - 2^-2*y1*x0",
        x1_impulse=40,
        x1_decay=600,
        y1_impulse=40,
        y1_decay=600,
        learning_epoch=epoch,
    )


def _pair_network(n_steps=30):
    """Input 0 is a teacher (one spike makes the post neuron fire the next step), input 1 the
    plastic probe synapse with a small weight."""
    spec = NetworkSpec(2, [Population("post", 1)], [Projection("input", "post")], n_steps=n_steps)
    net = Loihi(spec)
    config = ChipConfig(
        {"post": CompartmentConfig(4096, 4096, 1000)},
        {
            "input__post": SynapseConfig(
                torch.tensor([[254, 20]]), 4, torch.zeros(1, 2, dtype=torch.long)
            )
        },
    )
    return spec, net, config


def _pair(pre_step, teacher_step, n_steps=30):
    x = torch.zeros(n_steps, 1, 2)
    x[teacher_step, 0, 0] = 1.0
    x[pre_step, 0, 1] = 1.0
    return x


@pytest.mark.parametrize("pre_step, teacher_step", [(5, 9), (12, 2), (3, 3), (11, 9), (20, 19)])
def test_learning_rule_potentiates_causal_and_depresses_anticausal_pairs(pre_step, teacher_step):
    spec, net, config = _pair_network()
    x = _pair(pre_step, teacher_step)
    run = net.run_chip(x, config, learning={"input->post": _stdp_rule()})
    post_step = int(torch.nonzero(run.spikes["post"][:, 0, 0])[0])
    assert post_step == teacher_step + 1
    change = int(run.weights["input__post"][0, 1]) - 20
    # causal (pre before post): up; anti-causal: down; simultaneous: the two terms cancel.
    expected_sign = (post_step > pre_step) - (post_step < pre_step)
    assert (change > 0) - (change < 0) == expected_sign, change
    pops, projs, comps = plain_case(spec, config)
    _, _, _, weights, _ = reference_run(
        pops, projs, comps, to_lists(x.long()), ("input__post", STDP)
    )
    assert run.weights["input__post"].tolist() == weights["input__post"]


def test_learning_matches_the_reference_on_random_spike_trains():
    for seed in range(15):
        rng = random.Random(seed)
        n_in, n_out, n_steps = rng.randint(2, 4), rng.randint(1, 3), 40
        spec = NetworkSpec(
            n_in, [Population("post", n_out)], [Projection("input", "post")], n_steps=n_steps
        )
        epoch = rng.choice([1, 1, 3])
        weights = [[2 * rng.randint(-128, 127) for _ in range(n_in)] for _ in range(n_out)]
        config = ChipConfig(
            {"post": CompartmentConfig(rng.randint(200, 4096), rng.randint(0, 900), 300)},
            {
                "input__post": SynapseConfig(
                    torch.tensor(weights), rng.randint(-1, 3), torch.zeros(n_out, n_in).long()
                )
            },
        )
        g = torch.Generator().manual_seed(seed)
        x = (torch.rand(n_steps, 1, n_in, generator=g) < 0.25).float()
        run = Loihi(spec).run_chip(x, config, learning={"input->post": _stdp_rule(epoch)})
        pops, projs, comps = plain_case(spec, config)
        spikes, _, _, ref_w, _ = reference_run(
            pops, projs, comps, to_lists(x.long()), ("input__post", {**STDP, "epoch": epoch})
        )
        assert run.spikes["post"].tolist() == spikes["post"], seed
        assert run.weights["input__post"].tolist() == ref_w["input__post"], seed


def test_learn_writes_learned_weights_back_to_the_float_network():
    spec = feedforward([3, 2], output_model="lif", dt=0.5, n_steps=30)
    net = Loihi(spec, seed=0)
    with torch.no_grad():
        net.weights["input__output"].fill_(60.0)
    x = (torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    before = net.chip_config().synapses["input__output"].weights.clone()
    run = net.learn(x, {"input->output": _stdp_rule()})
    after = net.chip_config().synapses["input__output"]
    assert not torch.equal(before, run.weights["input__output"])
    assert torch.equal(after.weights, run.weights["input__output"])


def test_rule_strings_parse_into_terms_and_bad_ones_are_refused():
    assert parse_rule("2^-2*x1*y0 - 2^-2*y1*x0") == (
        Term(1, -2, ("x1", "y0")),
        Term(-1, -2, ("y1", "x0")),
    )
    assert parse_rule("3*2^-4*x1*y0+y2*w") == (Term(3, -4, ("x1", "y0")), Term(1, 0, ("y2", "w")))
    with pytest.raises(ValueError, match="x3"):
        LearningRule("2^-2*x3*y0")
    with pytest.raises(ValueError, match="x1_impulse"):
        LearningRule("x1*y0", x1_impulse=200)
    with pytest.raises(ValueError, match="4-bit"):
        LearningRule("20*x1*y0")


# ------------------------------------------------------------------------------ refusals
def _refusal(spec) -> str:
    with pytest.raises(SpecError) as info:
        Loihi(spec)
    return str(info.value)


def test_refusals_name_the_limit_the_value_and_the_chip():
    spec = NetworkSpec(4, [Population("hidden", 140_000)], [Projection("input", "hidden")])
    message = _refusal(spec)
    assert "cores needed (hidden 140000 neurons; 1024 compartments per core) is 137" in message
    assert "Loihi allows at most 128 cores" in message

    spec = NetworkSpec(2, [Population("h", 3)], [Projection("input", "h", delay=63)], n_steps=100)
    message = _refusal(spec)
    assert "projections[0].delay: synaptic delay is 63 steps; Loihi allows at most 62" in message

    spec = NetworkSpec(
        2,
        [Population("h", 3)],
        [Projection("input", "h"), Projection("h", "h", recurrent=True, delay=62)],
        n_steps=100,
    )
    assert "is 63 steps; Loihi allows at most 62" in _refusal(spec)

    message = _refusal(feedforward([5000, 10, 2], n_steps=10))
    assert (
        "input_size: fan-in of 'hidden' (input axons per core, from 'input' 5000) is 5000; "
        "Loihi allows at most 4096"
    ) in message

    spec = NetworkSpec(2, [Population("h", 1)], [Projection("input", "h", weights=[[500.0, 1]])])
    message = _refusal(spec)
    assert "projections[0].weights: largest |weight|" in message and "is 500; Loihi" in message

    spec = feedforward([2, 4, 2], model="if", n_steps=10)
    assert "populations[0].model: neuron model is 'if'; Loihi allows 'lif', 'alif'" in _refusal(
        spec
    )

    spec = feedforward([2, 4, 2], params={"reset": "subtract", "refractory_steps": 70})
    message = _refusal(spec)
    assert "reset mode is 'subtract'; Loihi allows 'zero'" in message
    assert "refractory period is 70; Loihi allows at most 63 steps" in message


def test_check_lists_every_violation_without_building():
    spec = feedforward([5000, 140_000, 3], model="if", n_steps=10)
    paths = {v.path for v in Loihi.check(spec, LoihiProfile())}
    assert {"populations[0].model", "input_size", "populations[0].size", "populations"} <= paths
    spec = feedforward([5000, 140_000, 3], n_steps=10)
    paths = {v.path for v in Loihi.check(spec)}
    assert {"input_size", "populations[0].size", "populations"} <= paths


def test_fan_in_limits_name_the_source_to_shrink_not_the_target():
    """The output's fan-in and one output compartment's synapses grow with the hidden
    population, so they name its size; the output's own size (populations[1].size) changes
    neither."""
    spec = feedforward([5, 5000, 3], n_steps=10)
    found = {v.limit: v for v in Loihi.check(spec)}
    fan_in = found["fan-in of 'output' (input axons per core, from 'hidden' 5000)"]
    assert (fan_in.path, fan_in.value, fan_in.allowed) == (
        "populations[0].size",
        5000,
        "at most 4096",
    )
    assert all(v.path != "populations[1].size" for v in found.values())
    memory = Loihi.check(
        spec, dataclasses.replace(LoihiProfile(), synapse_memory_bits_per_core=1000)
    )
    memory = [v for v in memory if v.limit.startswith("synapse memory")]
    assert [(v.path, v.limit) for v in memory] == [
        (
            "populations[0].size",
            "synapse memory for one compartment of 'output' (from 'hidden' 5000)",
        )
    ]


def test_resource_report_counts_cores_compartments_and_synapses():
    table = Loihi.resources(feedforward([5, 120, 3])).set_index("resource")
    assert table.loc["cores", "used"] == 2
    assert table.loc["compartments", "used"] == 123
    assert table.loc["synapses", "used"] == 5 * 120 + 120 * 3
    assert table.loc["cores", "capacity"] == 128
    big = Loihi.resources(feedforward([100, 2048, 10])).set_index("resource")
    assert big.loc["cores", "used"] == 3
    assert (big["fraction"] <= 1).all()


def test_profile_figures_carry_sources_and_mark_assumptions():
    figures = LoihiProfile().figures().set_index("figure")
    assert (figures["source"] != "").all()
    assert figures.loc["cores", "value"] == 128
    assert figures.loc["max_delay", "value"] == 62
    assert figures.loc["deterministic_rounding", "assumption"]
    assert not figures.loc["state_bits", "assumption"]


# ------------------------------------------------------------------------------ mapping, QAT
def test_deployed_readout_follows_the_float_simulator():
    spec = feedforward([6, 3], output_model="li", dt=0.5, n_steps=60)
    float_net = FloatNetwork(spec, seed=2)
    chip = Loihi(spec)
    chip.load_state_dict(float_net.state_dict())
    x = (torch.rand(60, 4, 6, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        expected = float_net(x).output
        got = chip.eval()(x).output
    scale = expected.abs().max()
    assert (got - expected).abs().max() / scale < 0.03
    report = chip.deployment_report()
    assert (report["relative_rms_error"] < 0.01).all() and (report["clipped"] == 0).all()


def test_gradients_reach_the_float_weights_through_the_chip():
    spec = feedforward([4, 12, 3], dt=0.5, n_steps=40)
    net = Loihi(spec, seed=1)
    with torch.no_grad():
        net.weights["input__hidden"].mul_(4)
    x = (torch.rand(40, 8, 4, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    net.train()
    result = net(x, record=True)
    result.output.max(dim=0).values.sum().backward()
    for key, w in net.weights.items():
        assert w.grad is not None and w.grad.abs().sum() > 0, key
    # The forward values are the chip's, in training and in evaluation mode alike.
    with torch.no_grad():
        assert torch.equal(net.eval()(x).output, result.output.detach())


def test_input_must_be_binary_spikes():
    net = Loihi(feedforward([2, 3, 2], n_steps=5))
    with pytest.raises(ValueError, match="binary"):
        net(torch.full((5, 1, 2), 0.5))


def test_a_delta_synapse_maps_to_a_full_current_decay_and_follows_the_float_simulator():
    """tau_syn = 0 (no synaptic current): Loihi's CUBA compartment holds it with decay_u = 4096
    (the current keeps one step's input only) and current gain 1; the readout follows the float
    simulator as closely as with a synaptic current (measured 0.8 % of its range)."""
    spec = feedforward([6, 3], output_model="li", dt=0.5, n_steps=60)
    spec.populations[0].params["tau_syn"] = 0.0
    spec.validate()
    assert Loihi.check(spec) == []
    float_net = FloatNetwork(spec, seed=2)
    chip = Loihi(spec)
    chip.load_state_dict(float_net.state_dict())
    assert chip.chip_config().compartments["output"].decay_u == 4096
    x = (torch.rand(60, 4, 6, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        expected = float_net(x).output
        got = chip.eval()(x).output
    assert (got - expected).abs().max() / expected.abs().max() < 0.03
