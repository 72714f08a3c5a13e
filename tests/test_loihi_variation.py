"""Loihi's temporal noise and its fixed-pattern mismatch stress test (``LoihiProfile``'s
``noise_*`` and ``mismatch_*`` figures, ``chip_seed`` and ``noise_seed``).

The noise reference below is written plainly from NxSDK's documented rule, ``(lfsr() - 2**7 +
noiseMantOffset0 * 2**6) * 2**(noiseExp0 - 7)``, with Python integers (the shift of an
exponent below 7 floors), added to ``u``'s synaptic input or to ``v``'s input."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_hardware_loihi import ref_decay, ref_int32, ref_wrap

from workbench import limits
from workbench.backends import build
from workbench.hardware.loihi import (
    ChipConfig,
    CompartmentConfig,
    Loihi,
    LoihiProfile,
    SynapseConfig,
    noise_draws,
    simulate,
)
from workbench.spec import NetworkSpec, Population, Projection, SpecError

HALF = 2**23
KERNELS = ("compiled", "torch")


def small_spec(n_steps: int = 40) -> NetworkSpec:
    pops = [Population("h", 12), Population("out", 3, "li")]
    projs = [Projection("input", "h"), Projection("h", "h", recurrent=True), Projection("h", "out")]
    return NetworkSpec(5, pops, projs, n_steps=n_steps)


def spikes(spec: NetworkSpec, batch: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(spec.n_steps, batch, spec.input_size, generator=g) < 0.3).float()


def chip_run(profile=None, kernel="compiled", **options):
    spec = small_spec()
    net = Loihi(spec, profile, seed=1, **options).eval()
    net.kernel = kernel
    return net.run_chip(spikes(spec))


def same(a, b) -> bool:
    return all(torch.equal(a.v[n], b.v[n]) and torch.equal(a.u[n], b.u[n]) for n in a.v) and all(
        torch.equal(a.spikes[n], b.spikes[n]) for n in a.spikes
    )


# ------------------------------------------------------------------------------ all zeros
@pytest.mark.parametrize("kernel", KERNELS)
def test_all_figures_off_is_the_plain_chip_bit_for_bit(kernel):
    plain = chip_run(kernel=kernel)
    off = {"noise_at": "off", "noise_mantissa": 3, "noise_exponent": 12}
    off.update(mismatch_tau_mem=0.0, mismatch_tau_syn=0.0, mismatch_threshold=0.0)
    assert same(plain, chip_run(off, kernel, chip_seed=5, noise_seed=9))
    net = Loihi(small_spec(), {"mismatch_threshold": 0.0}, chip_seed=3)
    assert isinstance(net.compartments["h"].threshold_mantissa, int)


# ------------------------------------------------------------------------------ noise
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("where", ["u", "v"])
def test_noise_differs_and_repeats_with_its_seed(kernel, where):
    noisy = {"noise_at": where, "noise_exponent": 14}
    plain = chip_run(kernel=kernel)
    a = chip_run(noisy, kernel, noise_seed=4)
    assert not same(plain, a)
    assert same(a, chip_run(noisy, kernel, noise_seed=4))
    assert not same(a, chip_run(noisy, kernel, noise_seed=5))


def test_the_two_loops_agree_with_noise_and_mismatch():
    profile = {"noise_at": "v", "noise_exponent": 13, "noise_mantissa": -1}
    profile.update(mismatch_tau_mem=0.2, mismatch_tau_syn=0.2, mismatch_threshold=0.1)
    compiled = chip_run(profile, "compiled", chip_seed=2, noise_seed=3)
    assert same(compiled, chip_run(profile, "torch", chip_seed=2, noise_seed=3))


def test_training_draws_fresh_noise_and_evaluation_repeats():
    spec = small_spec()
    net = Loihi(spec, {"noise_at": "u", "noise_exponent": 14}, seed=1)
    x = spikes(spec)
    net.train()
    with torch.no_grad():
        first, second = net(x).output, net(x).output
    assert not torch.equal(first, second)
    net.eval()
    assert torch.equal(net(x).output, net(x).output)


def ref_noise(r: int, mantissa: int, exponent: int) -> int:
    total = r + mantissa * 64  # r as drawn: lfsr() - 2**7, in -128..127
    return total * 2 ** (exponent - 7) if exponent >= 7 else total // 2 ** (7 - exponent)


def ref_noisy_run(n, comp, external, draws, where, mantissa, exponent):
    """One population with no recurrence (``external``: [T][B][n] activation) and noise."""
    out_u, out_v, out_s = [], [], []
    batch = len(external[0])
    u = [[0] * n for _ in range(batch)]
    v = [[comp["v_init"]] * n for _ in range(batch)]
    events = {"wraps": 0}
    for t, rows in enumerate(external):
        out_u.append([]), out_v.append([]), out_s.append([])
        for b, row in enumerate(rows):
            s = [0] * n
            for i in range(n):
                noise = ref_noise(draws[t][b][i], mantissa, exponent)
                nu = noise if where == "u" else 0
                nv = noise if where == "v" else 0
                u[b][i] = ref_wrap(ref_decay(u[b][i], comp["decay_u"]) + row[i] * 64 + nu, events)
                total = ref_int32(ref_decay(v[b][i], comp["decay_v"]) + u[b][i] + nv)
                v[b][i] = max(-(HALF - 1), min(HALF - 1, total))
                if comp["threshold"] is not None and v[b][i] > comp["threshold"] * 64:
                    s[i], v[b][i] = 1, 0
            out_u[t].append(list(u[b])), out_v[t].append(list(v[b])), out_s[t].append(s)
    return out_u, out_v, out_s


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("where", "mantissa", "exponent"), [("u", 0, 7), ("v", 1, 3), ("v", -1, 12), ("u", 2, 0)]
)
def test_noise_step_matches_a_plain_integer_reference(kernel, where, mantissa, exponent):
    spec = NetworkSpec(2, [Population("h", 3)], [Projection("input", "h")], n_steps=25)
    comp = CompartmentConfig(decay_u=700, decay_v=300, threshold_mantissa=40)
    w = torch.tensor([[100, -60], [20, 80], [-128, 126]])
    syn = SynapseConfig(w, 0, torch.zeros_like(w))
    config = ChipConfig({"h": comp}, {"input__h": syn})
    profile = LoihiProfile(noise_at=where, noise_mantissa=mantissa, noise_exponent=exponent)
    x = spikes(spec, batch=2, seed=3)
    run = simulate(spec, config, x, profile=profile, kernel=kernel, noise_seed=11)
    draws = noise_draws(spec, profile, 11, spec.n_steps, 2)["h"]
    assert int(draws.min()) >= -128 and int(draws.max()) <= 127
    external = [[[0, 0, 0] for _ in range(2)] for _ in range(spec.n_steps)]
    for t in range(1, spec.n_steps):
        for b in range(2):
            for i in range(3):
                external[t][b][i] = sum(
                    int(w[i, j]) for j in range(2) if x[t - 1, b, j] == 1
                )  # exponent 0, delay 0, mixed-sign weights already even
    comps = {"decay_u": 700, "decay_v": 300, "threshold": 40, "v_init": 0}
    ref_u, ref_v, ref_s = ref_noisy_run(
        3, comps, external, draws.tolist(), where, mantissa, exponent
    )
    assert run.u["h"].tolist() == ref_u
    assert run.v["h"].tolist() == ref_v
    assert run.spikes["h"].tolist() == ref_s


# ------------------------------------------------------------------------------ mismatch
def test_drawn_thresholds_have_the_profiles_spread_and_repeat_per_chip():
    spec = NetworkSpec(4, [Population("h", 4000)], [Projection("input", "h")])
    profile = {"mismatch_threshold": 0.05}
    net = Loihi(spec, profile, chip_seed=1)
    m = net.compartments["h"].threshold_mantissa.double()
    assert m.shape == (4000,)
    assert abs(float(m.mean()) / 8192 - 1) < 0.005
    assert abs(float(m.std()) / 8192 - 0.05) < 0.005
    assert torch.equal(m, Loihi(spec, profile, chip_seed=1).compartments["h"].threshold_mantissa)
    other = Loihi(spec, profile, chip_seed=2).compartments["h"].threshold_mantissa
    assert not torch.equal(m.long(), other)
    decays = Loihi(spec, {"mismatch_tau_mem": 0.1, "mismatch_tau_syn": 0.1}, chip_seed=1)
    comp = decays.compartments["h"]
    assert comp.decay_u.unique().numel() > 10 and comp.decay_v.unique().numel() > 10
    assert isinstance(comp.threshold_mantissa, int)  # only what is asked for varies


def test_mismatch_changes_the_run_and_depends_on_the_chip_seed():
    profile = {"mismatch_threshold": 0.1, "mismatch_tau_mem": 0.1}
    a = chip_run(profile, chip_seed=1)
    assert not same(chip_run(), a)
    assert same(a, chip_run(profile, chip_seed=1))
    assert not same(a, chip_run(profile, chip_seed=2))


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    ("figure", "value"),
    [
        ("mismatch_threshold", -0.1),
        ("mismatch_tau_mem", 2.0),
        ("noise_exponent", 30),
        ("noise_mantissa", 99),
    ],
)
def test_out_of_range_figures_are_refused_by_name(figure, value):
    with pytest.raises(SpecError, match=f"profile.{figure}"):
        Loihi(small_spec(), {figure: value})
    problems = limits.backend_option_problems("loihi", {"profile": {figure: value}})
    assert [p.path for p in problems] == [f"backend_options.profile.{figure}"]


def test_a_bad_noise_target_is_refused_by_name():
    with pytest.raises(ValueError, match="profile.noise_at"):
        Loihi(small_spec(), {"noise_at": "w"})
    problems = limits.backend_option_problems("loihi", {"profile": {"noise_at": 1}})
    assert [p.path for p in problems] == ["backend_options.profile.noise_at"]
    with pytest.raises(ValueError, match="profile.noise_at"):
        simulate(small_spec(), Loihi(small_spec()).chip_config(), spikes(small_spec()),
                 profile=dataclasses.replace(LoihiProfile(), noise_at="x"))  # fmt: skip


def test_the_sweep_options_are_accepted_for_loihi():
    options = {
        "chip_seed": 3,
        "noise_seed": 4,
        "profile": {
            "noise_at": "v",
            "noise_exponent": 9,
            "noise_mantissa": 1,
            "mismatch_threshold": 0.05,
            "mismatch_tau_mem": 0.02,
            "mismatch_tau_syn": 0.02,
        },
    }
    assert limits.backend_option_problems("loihi", options) == []
    problems = limits.backend_option_problems("loihi", {"chip_seed": "a"})
    assert [p.path for p in problems] == ["backend_options.chip_seed"]
    net = build(small_spec(), "loihi", **options)
    assert (net.chip_seed, net.noise_seed, net.profile.noise_at) == (3, 4, "v")
