"""Networks for time (workbench.architectures): sizes, chips, dilation, training, the CLI."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from workbench import architectures as arch
from workbench.algorithms.surrogate import SurrogateConfig, fit
from workbench.backends import backend_class, build, projection_key
from workbench.data import Dataset, RateEncoder, Split, load_dataset, make_loaders
from workbench.experiment import TrainingData
from workbench.spec import INPUT, NetworkSpec, SpecError
from workbench.training import evaluate

NETWORKS = {
    "recurrent_lif": lambda **kw: arch.recurrent_lif(16, [32, 24], 10, **kw),
    "synaptic_pyramid": lambda **kw: arch.synaptic_pyramid(16, 8, **kw),
    "wavesense": lambda **kw: arch.wavesense(16, 10, **kw),
}


def spikes(n_steps, batch, channels, rate=0.05, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n_steps, batch, channels, generator=generator) < rate).double()


# ------------------------------------------------------------------------------ specs
def test_recurrent_lif_has_the_stated_layers_each_recurrent():
    spec = arch.recurrent_lif(16, [32, 24], 10)
    assert isinstance(spec, NetworkSpec) and spec.problems() == []
    assert spec.input_size == 16 and spec.population_names == ["hidden1", "hidden2", "output"]
    assert [p.size for p in spec.populations] == [32, 24, 10]
    assert spec.population("output").model == "li"
    links = {(p.source, p.target): p for p in spec.projections}
    assert set(links) == {
        (INPUT, "hidden1"),
        ("hidden1", "hidden1"),
        ("hidden1", "hidden2"),
        ("hidden2", "hidden2"),
        ("hidden2", "output"),
    }
    assert links["hidden1", "hidden1"].recurrent and links["hidden2", "hidden2"].recurrent
    assert arch.recurrent_lif(700, 128, 20).name == "recurrent-lif-700-128-20"


def test_synaptic_pyramid_splits_each_layer_into_time_constant_groups():
    spec = arch.synaptic_pyramid(16, 8, hidden=[10, 24], time_constants=[3, 4])
    assert spec.problems() == [] and spec.input_size == 16
    groups = [p for p in spec.populations if p.name != "output"]
    # SynNet's neuron k takes group k mod n: the first (size mod n) groups hold one more
    assert [(p.name, p.size) for p in groups] == [
        ("hidden1_syn1", 4),
        ("hidden1_syn2", 3),
        ("hidden1_syn3", 3),
        ("hidden2_syn1", 6),
        ("hidden2_syn2", 6),
        ("hidden2_syn3", 6),
        ("hidden2_syn4", 6),
    ]
    assert spec.population("output").size == 8 and spec.population("output").model == "li"
    # every group of a layer reaches every group of the next; nothing skips a layer
    pairs = {(p.source, p.target) for p in spec.projections}
    layer1 = [p.name for p in groups[:3]]
    layer2 = [p.name for p in groups[3:]]
    assert pairs == {
        *((INPUT, t) for t in layer1),
        *((s, t) for s in layer1 for t in layer2),
        *((s, "output") for s in layer2),
    }
    assert all(not p.recurrent and p.max_delay == 0 for p in spec.projections)


def test_synaptic_pyramid_time_constants_are_powers_of_the_base_that_xylo_realises():
    from workbench.hardware.xylo import bitshift, bitshift_tau

    spec = arch.synaptic_pyramid(16, 8, hidden=[24], time_constants=[6], tau_syn_base=1.0, dt=0.5)
    for j in range(1, 7):
        tau = spec.population(f"hidden1_syn{j}").params["tau_syn"]
        assert bitshift(tau, 0.5) == j  # tau_syn_base = 2 dt: 2**j steps before rounding
        assert tau == pytest.approx(bitshift_tau(j, 0.5), rel=1e-12)
    plain = arch.synaptic_pyramid(
        16, 8, hidden=[24], time_constants=[6], tau_syn_base=1.0, dt=0.5, xylo_time_constants=False
    )
    assert [p.params["tau_syn"] for p in plain.populations[:6]] == [
        0.5 * 2.0**j for j in range(1, 7)
    ]
    # tau_mem (2 dt by default: shift 1) and the readout too: shifts of the chip
    assert bitshift(spec.populations[0].params["tau_mem"], 0.5) == 1
    assert spec.populations[0].params["tau_mem"] == pytest.approx(bitshift_tau(1, 0.5))
    at_4ms = arch.synaptic_pyramid(16, 8, dt=4.0)  # the same network in steps at any dt
    assert bitshift(at_4ms.population("hidden3_syn8").params["tau_syn"], 4.0) == 8
    assert all(p.params.get("reset", "subtract") == "subtract" for p in spec.populations)


@pytest.mark.parametrize("tau", [1.42, 1.5, 2.0, 2.9, 3.0, 7.0, 100.0, 5000.0])
def test_xylo_tau_is_the_chips_rounding(tau):
    from workbench.hardware.xylo import bitshift, bitshift_tau

    assert arch.xylo_tau(tau, 1.0) == bitshift_tau(bitshift(tau, 1.0), 1.0)


def test_xylo_tau_refuses_a_shift_of_zero():
    with pytest.raises(ValueError, match="bit shift 0"):
        arch.xylo_tau(1.4, 1.0)


@pytest.mark.parametrize("tau_mem, tau_syn", [(20.0, 5.0), (3.0, 30.0), (10.0, 10.0)])
def test_psp_peak_is_the_simulated_peak(tau_mem, tau_syn):
    """Against the float simulator's exact propagators at a fine step (tolerance: the peak
    moves by at most dt^2 curvature, < 1e-4 at dt = 0.01 ms)."""
    from workbench.hardware.xylo import psp_float

    dt = 0.01
    simulated = psp_float(dt, tau_mem, tau_syn, int(10 * max(tau_mem, tau_syn) / dt))
    assert arch.psp_peak(tau_mem, tau_syn) == pytest.approx(simulated.max(), abs=1e-4)
    assert arch.psp_peak(tau_mem, 0.0) == 1.0


def test_wavesense_blocks_taps_delays_and_time_constants():
    spec = arch.wavesense(16, 10, dilations=[1, 2, 8], kernel_size=3, tau_syn_base=2.0)
    assert spec.problems() == [] and spec.input_size == 16
    assert spec.population("output").size == 10 and spec.population("output").model == "li"
    assert spec.population("output").params["tau_syn"] == 0.0  # a pure low-pass
    delays = {(p.source, p.target): p.delay for p in spec.projections}
    taus = {p.name: p.params["tau_syn"] for p in spec.populations}
    inputs = {1: "input_map", 2: "block1_res", 3: "block2_res"}
    for b, d in zip((1, 2, 3), (1, 2, 8)):
        for k in range(3):
            tap = f"block{b}_tap{k}"
            assert delays[inputs[b], tap] == k * d
            assert taus[tap] == max(1, k * d) * 2.0
            assert (tap, f"block{b}_skip") in delays
        assert (f"block{b}_skip", "hidden") in delays
    assert "block3_res" not in taus  # the last block's residual output would feed nothing
    assert ("block1_res", "block2_tap0") in delays and ("input_map", "block1_res") in delays
    only_delay = arch.wavesense(16, 10, dilations=[4], dilation="delay")
    assert {p.params["tau_syn"] for p in only_delay.populations[:-1]} == {20.0}
    only_tau = arch.wavesense(16, 10, dilations=[4], dilation="tau_syn")
    assert all(p.delay == 0 for p in only_tau.projections)
    assert only_tau.population("block1_tap1").params["tau_syn"] == 80.0


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: arch.recurrent_lif(16, [64, 0], 10), "n_hidden[1]"),
        (lambda: arch.recurrent_lif(0, 64, 10), "n_inputs"),
        (lambda: arch.recurrent_lif(16, 64, 10, tau_mem=-1.0), "tau_mem"),
        (lambda: arch.synaptic_pyramid(16, 8, hidden=[24, 24]), "time_constants"),
        (lambda: arch.synaptic_pyramid(16, 8, hidden=[4], time_constants=[6]), "time_constants[0]"),
        (lambda: arch.synaptic_pyramid(16, 8, tau_syn_base=1.0), "tau_syn_base"),
        (lambda: arch.synaptic_pyramid(16, 8, tau_mem=1.2), "tau_mem"),
        (lambda: arch.wavesense(16, 10, dilation="conv"), "dilation"),
        (lambda: arch.wavesense(16, 10, dilations=[1, 0]), "dilations[1]"),
        (lambda: arch.wavesense(16, 10, dilations=[64], n_steps=50), "projections[2].delay"),
    ],
)
def test_bad_arguments_are_refused_by_field(make, field):
    with pytest.raises(SpecError) as info:
        make()
    assert field in [p.path for p in info.value.problems], info.value


# ------------------------------------------------------------------------------ float
@pytest.mark.parametrize("name", list(NETWORKS))
def test_each_network_runs_forward_on_float(name):
    spec = NETWORKS[name](n_steps=120)
    network = build(spec, seed=0, dtype=torch.float64)
    result = network(spikes(120, 3, 16), record=True)
    n_out = spec.population(spec.output_name).size
    assert result.output.shape == (120, 3, n_out) and torch.isfinite(result.output).all()
    assert set(result.recordings) == set(spec.population_names)
    assert result.output.abs().sum() > 0  # the input reaches the readout


# ------------------------------------------------------------------------------ chips
def test_the_pyramid_fits_xylo_and_runs_on_it():
    from workbench.hardware.xylo import XyloProfile

    xylo = backend_class("xylo")
    spec = arch.synaptic_pyramid(16, 8, n_steps=100)
    assert xylo.check(spec) == []
    # ten classes need Xylo Audio 3's 32 outputs; Audio 2 refuses by field
    ten = arch.synaptic_pyramid(16, 10, n_steps=100)
    assert xylo.check(ten, XyloProfile.audio3()) == []
    assert [v.path for v in xylo.check(ten)] == ["populations[14].size"]
    # nothing in the time constants or resets differs on the chip: only the input timing
    assert xylo.notes(spec) == [
        "inputs reach the membrane in their own step (the float simulator: one later)"
    ]
    chip = build(spec, "xylo", seed=0)
    x = spikes(100, 2, 16, rate=0.1).float()
    with torch.no_grad():
        on_chip = chip(x, record=True)
        on_float = build(spec, seed=0)(x, record=True)
    assert on_chip.output.shape == (100, 2, 8) and torch.isfinite(on_chip.output).all()
    first = "hidden1_syn1"
    assert on_chip.recordings[first]["spikes"].sum() > 0
    # same weights, same decays: the first layer's spike counts agree within quantisation
    counts = [r.recordings[first]["spikes"].sum().item() for r in (on_chip, on_float)]
    assert counts[0] == pytest.approx(counts[1], rel=0.5), counts


def test_wavesense_fits_loihi_and_runs_on_it():
    loihi = backend_class("loihi")
    spec = arch.wavesense(16, 10, n_steps=120)
    assert loihi.check(spec) == []
    assert max(p.max_delay for p in spec.projections) == 16
    chip = build(spec, "loihi", seed=0)
    with torch.no_grad():
        result = chip(spikes(120, 2, 16, rate=0.1).float(), record=["block5_tap1"])
    assert result.output.shape == (120, 2, 10) and torch.isfinite(result.output).all()
    assert result.recordings["block5_tap1"]["spikes"].shape == (120, 2, 16)
    # a dilation beyond the chip's 62-step delays is refused by field
    long = arch.wavesense(16, 10, dilations=[64], n_steps=200)
    assert [v.path for v in loihi.check(long)] == ["projections[2].delay"]


def _impulse(spec, backend, weights=None):
    """Every population's recordings after one spike on every input channel at step 0, with
    every weight 3.0 (each population fires as soon as its input arrives) unless ``weights``
    (projection name -> value) says otherwise."""
    if backend == "float":
        network = build(spec, seed=0, dtype=torch.float64)
    else:
        network = build(spec, backend, seed=0)
    with torch.no_grad():
        for proj in spec.projections:
            value = (weights or {}).get(proj.name, 3.0)
            network.weights[projection_key(proj)].fill_(value)
    x = torch.zeros(spec.n_steps, 1, spec.input_size, dtype=network.dtype)
    x[0] = 1.0
    with torch.no_grad():
        return network(x, record=True).recordings


def _first(trace) -> int:
    """The first step at which ``trace`` [T, 1, n] is non-zero."""
    steps = torch.nonzero(trace.abs().sum(dim=(1, 2)) > 0)
    return int(steps[0]) if len(steps) else -1


@pytest.mark.parametrize("backend", ["float", "loihi"])
def test_a_wavesense_block_delays_its_taps_by_the_dilation(backend):
    """The impulse reaches tap k of block b exactly k * d steps after tap 0 (d its
    dilation), and a block whose undelayed tap is silenced answers no earlier than that."""
    dilations = [1, 2, 4, 8]
    spec = arch.wavesense(4, 2, dilations=dilations, n_steps=80, dilation="delay")
    rec = _impulse(spec, backend)
    for b, d in enumerate(dilations, start=1):
        tap0, tap1 = (_first(rec[f"block{b}_tap{k}"]["i"]) for k in (0, 1))
        assert tap0 >= 0 and tap1 == tap0 + d, (b, tap0, tap1)
    # block 4 without its undelayed tap: the skip output starts d = 8 steps later than with it
    silenced = arch.wavesense(4, 2, dilations=dilations, n_steps=80, dilation="delay")
    silenced.projections = [p for p in silenced.projections if p.source != "block4_tap0"]
    quiet = _impulse(silenced, backend)
    with_tap0 = _first(rec["block4_skip"]["spikes"])
    without = _first(quiet["block4_skip"]["spikes"])
    assert with_tap0 >= 0 and without == with_tap0 + 8


def test_dilation_by_time_constant_alone_spreads_a_tap_later():
    """The paper's way, without delays: the impulse reaches both taps at once, and the tap
    with the longer synaptic time constant (8 x 20 ms) peaks later, by the difference of the
    two PSPs' peak times to within a step (taps kept below threshold)."""
    spec = arch.wavesense(4, 2, dilations=[8], n_steps=200, dilation="tau_syn", tau_mem=5.0)
    weak = {p.name: 1.0 if p.source == INPUT else 0.01 for p in spec.projections}
    rec = _impulse(spec, "float", weak)
    assert _first(rec["block1_tap0"]["i"]) == _first(rec["block1_tap1"]["i"]) >= 0
    v0, v1 = (rec[f"block1_tap{k}"]["v"][:, 0].mean(dim=1) for k in (0, 1))
    assert rec["block1_tap1"]["spikes"].sum() == 0

    def peak_time(tau_mem, tau_syn):  # of one PSP, in continuous time
        return math.log(tau_syn / tau_mem) * tau_mem * tau_syn / (tau_syn - tau_mem)

    later = peak_time(5.0, 160.0) - peak_time(5.0, 20.0)  # 8.7 ms
    assert abs(int(v1.argmax()) - int(v0.argmax()) - later) <= 1.0


# ------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def digits_in_time():
    """sklearn digits as rate-coded spike trains over 30 steps (a small, seeded task)."""
    full = load_dataset("digits")

    def first(split, n):
        return Split(split.features[:n], split.labels[:n])

    dataset = Dataset(
        "digits",
        first(full.train, 192),
        first(full.validation, 64),
        first(full.test, 64),
        64,
        10,
        full.class_names,
    )
    encoder = RateEncoder(n_steps=30, dt=1.0, max_rate_hz=300.0, seed=0)
    return TrainingData(dataset, encoder, seed=0)


SMALL = {
    "recurrent_lif": lambda: arch.recurrent_lif(64, 48, 10, dt=1.0, n_steps=30, input_scale=0.5),
    "synaptic_pyramid": lambda: arch.synaptic_pyramid(
        64, 10, hidden=[24, 24], time_constants=[2, 4], n_steps=30
    ),
    # short membranes and weights scaled up: the stack's deep blocks fire within 30 steps
    "wavesense": lambda: arch.wavesense(
        64,
        10,
        dilations=[1, 2, 4],
        n_channels_res=12,
        n_channels_skip=16,
        n_hidden=16,
        tau_mem=5.0,
        tau_syn_base=2.0,
        tau_lp=10.0,
        weight_scale=1.0,
        n_steps=30,
    ),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_a_short_training_lowers_the_loss(name, digits_in_time):
    """Four epochs of surrogate-gradient training (seeded) lower the training loss by at
    least 10 % of its value before training (measured: 12 % recurrent, 11 % pyramid, 47 %
    WaveSense)."""
    torch.manual_seed(0)
    network = build(SMALL[name](), seed=0)
    config = SurrogateConfig(epochs=4, batch_size=16, lr=0.01, sample_every=0)
    loader = make_loaders(digits_in_time.dataset, 64, seed=0)["train"]

    def loss():
        digits_in_time.encoder.reset()
        return evaluate(network, loader, digits_in_time.encoder, config.readout)["loss"]

    before = loss()
    fit(network, digits_in_time, config)
    after = loss()
    assert after < 0.9 * before, (before, after)


# ------------------------------------------------------------------------------ by name
def test_build_network_sizes_a_network_for_a_run_and_checks_its_options():
    spec = arch.build_network("wavesense", 700, 20, 2.0, 300, dilations=[1, 2])
    assert spec.input_size == 700 and spec.population("output").size == 20
    assert (spec.dt, spec.n_steps) == (2.0, 300)
    assert arch.build_network("recurrent_lif", 5, 3, 1.0, 50).population("hidden").size == 128
    problems = arch.network_option_problems("wavesense", {"dilatoins": [1], "n_inputs": 3})
    assert [p.path for p in problems] == ["network_option.dilatoins", "network_option.n_inputs"]
    assert [p.path for p in arch.network_option_problems("lstm", {})] == ["network"]
    with pytest.raises(SpecError, match=r"network_option\.dilations\[0\]"):
        arch.build_network("wavesense", 16, 10, 1.0, 100, dilations=[0])


def test_the_module_imports_no_torch():
    code = "import sys, workbench.architectures; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def _cli(*args):
    code = (
        "import sys\nfrom workbench.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
        "except SystemExit as exc:\n    rc = exc.code\nprint(rc, 'torch' in sys.modules)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--network", "lstm"], "argument --network: invalid choice: 'lstm'"),
        (["--network", "wavesense", "--hidden", "5"], "network: gives the network; --hidden"),
        (["--network", "wavesense", "--network-option", "dilatoins=[1]"], "dilatoins: is not"),
        (["--network-option", "n_hidden=5"], "network_option: needs --network"),
    ],
)
def test_a_bad_network_option_is_refused_before_torch_is_imported(tmp_path, extra, message):
    done = _cli("train", "--dataset", "digits", "--out", str(tmp_path / "run"), *extra)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()


def test_workbench_train_network_trains_that_network(tmp_path):
    out = tmp_path / "ws"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "train",
            "--dataset",
            "digits",
            "--network",
            "wavesense",
            "--network-option",
            "dilations=[1,2]",
            "--network-option",
            "n_channels_res=8",
            "--network-option",
            "n_channels_skip=8",
            "--network-option",
            "n_hidden=8",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    spec = NetworkSpec.from_file(out / "spec.json")
    expected = arch.wavesense(
        64, 10, dilations=[1, 2], n_channels_res=8, n_channels_skip=8, n_hidden=8, n_steps=20
    )
    assert spec.to_dict() == expected.to_dict()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and math.isfinite(metrics["test_loss"])


def test_the_templates_for_spoken_digits_are_these_networks():
    pytest.importorskip("panel")
    from workbench.widgets.templates import TEMPLATES

    sized = {
        name: TEMPLATES[name]()
        for name in TEMPLATES
        if name.startswith(("Recurrent LIF", "Synaptic pyramid", "WaveSense"))
    }
    assert len(sized) == 3
    for spec in sized.values():
        assert spec.input_size == 16 and spec.population(spec.output_name).size == 10
    names = {spec.name.split("-1")[0] for spec in sized.values()}
    assert names == {"recurrent-lif", "synaptic-pyramid", "wavesense"}
    assert np.all([spec.problems() == [] for spec in sized.values()])
