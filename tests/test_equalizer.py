"""Channel equalisation: channels, Eb/N0, the MMSE baselines, the decision-feedback loop and
the paper's spike encodings (workbench.equalizer, workbench.data)."""

import math

import numpy as np
import pytest
import torch

from workbench import equalizer as eq
from workbench.data import LogScaleEncoder, TernaryEncoder


def test_every_channel_has_unit_energy_and_passes_unit_power():
    for channel in eq.CHANNELS.values():
        assert math.isclose(float(np.sum(channel.h**2)), 1.0, rel_tol=1e-12), channel.name
        assert channel.window >= channel.length and channel.feedback >= channel.length - 1
    # noiseless: the received power is the symbol energy (1); seeded, 2e5 samples, the sample
    # mean of y^2 has a standard deviation below 0.004 (y^2 <= (sum |h|)^2 < 6 for A)
    tx = eq.transmit("proakis_c", 10.0, 200, 1000, seed=3, noise=False)
    assert abs(np.mean(tx.received[:, tx.pilot :] ** 2) - 1.0) < 0.02


def test_noise_has_the_variance_eb_n0_asks_for():
    # Es = 1, BPSK: Eb = 1 and N0 / 2 = 1 / (2 * 10^(ebn0 / 10)); 4-PAM: Eb = 1/2
    assert math.isclose(eq.noise_std(3.0, eq.get_modulation("bpsk")) ** 2, 0.5 / 10**0.3)
    assert math.isclose(eq.noise_std(3.0, eq.get_modulation("pam4")) ** 2, 0.25 / 10**0.3)
    clean = eq.transmit("proakis_b", 6.0, 100, 2000, seed=1, noise=False)
    noisy = eq.transmit("proakis_b", 6.0, 100, 2000, seed=1)
    noise = noisy.received - clean.received  # 2e5 samples: the variance within 2 %  (~7 sigma)
    assert abs(noise.var() / eq.noise_std(6.0, eq.get_modulation("bpsk")) ** 2 - 1) < 0.02


def test_a_noiseless_identity_channel_makes_no_errors():
    for modulation in ("bpsk", "pam4"):
        tx = eq.transmit("awgn", 0.0, 20, 500, seed=0, modulation=modulation, noise=False)
        assert eq.linear_ber(tx, eq.mmse_linear("awgn", 30.0, 1, modulation=modulation))[0] == 0
        dfe = eq.mmse_dfe("awgn", 30.0, 1, 0, modulation=modulation)
        assert eq.dfe_ber(tx, dfe)[0] == 0
        mod = eq.get_modulation(modulation)
        ber, decisions = eq.snn_ber(tx, lambda f, m=mod: m.decide(f[:, 0]), window=1, feedback=0)
        assert ber == 0 and np.array_equal(decisions, tx.decided)


@pytest.mark.parametrize("modulation", ["bpsk", "pam4"])
def test_without_isi_the_ber_is_the_closed_form(modulation):
    ebn0 = 7.0
    if modulation == "bpsk":  # Q(sqrt(2 Eb/N0))
        expected = 0.5 * math.erfc(math.sqrt(2 * 10 ** (ebn0 / 10)) / math.sqrt(2))
        assert math.isclose(eq.theoretical_ber(ebn0, modulation), expected, rel_tol=1e-12)
    else:  # Gray 4-PAM: (3 Q(d) + 2 Q(3 d) - Q(5 d)) / 4 with d = sqrt(0.8 Eb/N0)
        d = math.sqrt(0.8 * 10 ** (ebn0 / 10))
        q = lambda x: 0.5 * math.erfc(x / math.sqrt(2))  # noqa: E731
        expected = (3 * q(d) + 2 * q(3 * d) - q(5 * d)) / 4
        assert math.isclose(eq.theoretical_ber(ebn0, modulation), expected, rel_tol=1e-9)
    tx = eq.transmit("awgn", ebn0, 500, 2000, seed=11, modulation=modulation)
    ber, _ = eq.linear_ber(tx, eq.mmse_linear("awgn", ebn0, 1, modulation=modulation))
    # errors are binomial: within 4 standard deviations of the expected count (seeded)
    errors, expected_errors = ber * tx.n_bits, expected * tx.n_bits
    assert abs(errors - expected_errors) < 4 * math.sqrt(expected_errors), (ber, expected)


def _least_squares(regressors, targets):
    return np.linalg.lstsq(regressors, targets, rcond=None)[0]


def test_the_mmse_solutions_equal_least_squares_fits_on_long_data():
    # 4e5 symbols: the least-squares weights scatter about the Wiener ones by
    # sqrt(mse / (N * eig_min(R))) < 0.005 for these channels; tolerance 0.03
    ebn0, window, feedback = 10.0, 5, 4
    tx = eq.transmit("proakis_c", ebn0, 200, 2000, seed=5)
    x = tx.modulation.amplitudes(tx.decided).reshape(-1)
    for offset in (0, -2, 3):
        linear = eq.mmse_linear("proakis_c", ebn0, window, offset=offset)
        samples = eq._windows(tx.received, tx.pilot, tx.n, offset, window).reshape(-1, window)
        assert np.max(np.abs(_least_squares(samples, x) - linear.weights)) < 0.03
    dfe = eq.mmse_dfe("proakis_c", ebn0, window, feedback)
    features = eq.feature_blocks(tx, window, feedback).reshape(-1, window + feedback)
    past = tx.modulation.amplitudes(features[:, window:].astype(np.int64))
    fit = _least_squares(np.concatenate([features[:, :window], past], axis=1), x)
    assert np.max(np.abs(fit[:window] - dfe.feedforward)) < 0.03
    assert np.max(np.abs(fit[window:] - dfe.feedback)) < 0.03
    # the MSE the solution promises is the one it gets (within 3 %)
    estimate = samples @ linear.weights
    assert abs(np.mean((estimate - x) ** 2) / linear.mse - 1) < 0.03


def test_the_unconstrained_linear_equaliser_picks_its_best_window_offset():
    best = eq.mmse_linear("proakis_a", 8.0, 11)
    for offset in range(-10, 11):
        assert best.mse <= eq.mmse_linear("proakis_a", 8.0, 11, offset=offset).mse + 1e-12


def test_the_dfe_beats_the_linear_equaliser_on_a_channel_with_a_deep_null():
    channel = eq.get_channel("proakis_c")
    ebn0 = 16.0
    tx = eq.transmit(channel, ebn0, 200, 1000, seed=2)
    linear, _ = eq.linear_ber(tx, eq.mmse_linear(channel, ebn0, channel.window))
    dfe = eq.mmse_dfe(channel, ebn0, channel.window, channel.feedback)
    correct, _ = eq.dfe_ber(tx, dfe, correct_feedback=True)
    own, _ = eq.dfe_ber(tx, dfe)
    # measured: linear ~8e-2, DFE ~7e-4 with its own decisions, ~1e-4 with correct ones
    assert correct < own < linear / 10


def test_snn_ber_feeds_back_its_own_decisions():
    # the DFE as a learned equaliser's decide(): snn_ber reproduces dfe_ber's sequential loop
    channel, ebn0 = "proakis_b", 8.0
    tx = eq.transmit(channel, ebn0, 50, 400, seed=4)
    dfe = eq.mmse_dfe(channel, ebn0, 3, 2)
    mod = tx.modulation

    def decide(features):
        past = mod.amplitudes(features[:, 3:].astype(np.int64))
        return mod.decide((features[:, :3] @ dfe.feedforward + past @ dfe.feedback) / dfe.bias)

    ber, decisions = eq.snn_ber(tx, decide, window=3, feedback=2)
    reference_ber, reference = eq.dfe_ber(tx, dfe)
    assert 0 < ber == reference_ber and np.array_equal(decisions, reference)
    # with the true symbols fed back (feature_blocks) the same rule is the correct-feedback DFE
    features = eq.feature_blocks(tx, 3, 2).reshape(-1, 5)
    correct = decide(features).reshape(tx.n_blocks, tx.n)
    assert np.array_equal(correct, eq.dfe_ber(tx, dfe, correct_feedback=True)[1])


def test_features_hold_the_window_and_the_true_past_symbols():
    tx = eq.transmit("proakis_c", 10.0, 3, 20, seed=0)
    features = eq.feature_blocks(tx, 5, 4)
    assert features.shape == (3, 20, 9) and features.dtype == np.float32
    b, k = 1, 7
    start = tx.pilot + k
    assert np.allclose(features[b, k, :5], tx.received[b, start : start + 5])
    assert features[b, k, 5:].tolist() == [tx.symbols[b, start - j] for j in range(1, 5)]


def test_transmissions_repeat_from_their_seed():
    a = eq.transmit("proakis_a", 5.0, 4, 100, seed=9)
    b = eq.transmit("proakis_a", 5.0, 4, 100, seed=9)
    assert np.array_equal(a.symbols, b.symbols) and np.array_equal(a.received, b.received)
    c = eq.transmit("proakis_a", 5.0, 4, 100, seed=10)
    assert not np.array_equal(a.symbols, c.symbols)
    # another Eb/N0: the same symbols and the same noise, scaled (common random numbers)
    d = eq.transmit("proakis_a", 9.0, 4, 100, seed=9)
    clean = eq.transmit("proakis_a", 9.0, 4, 100, seed=9, noise=False).received
    assert np.array_equal(a.symbols, d.symbols)
    assert np.allclose((a.received - clean) * 10 ** (-4 / 20), d.received - clean)


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match=r"channel must be one of \['awgn', 'proakis_a'"):
        eq.transmit("nope", 5.0, 1, 10, seed=0)
    for bad in (float("nan"), float("inf"), "5", None, True):
        with pytest.raises(ValueError, match="ebn0 must be a finite number"):
            eq.transmit("proakis_b", bad, 1, 10, seed=0)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        eq.transmit("proakis_b", 5.0, 1, 10, seed=0, window=0)
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        eq.mmse_linear("proakis_b", 5.0, 0)
    with pytest.raises(ValueError, match="feedback must be an integer >= 0"):
        eq.mmse_dfe("proakis_b", 5.0, 3, -1)
    with pytest.raises(ValueError, match="modulation must be one of"):
        eq.transmit("proakis_b", 5.0, 1, 10, seed=0, modulation="qam16")
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 4294967295\]"):
        eq.transmit("proakis_b", 5.0, 1, 10, seed=-1)
    tx = eq.transmit("proakis_b", 5.0, 1, 10, seed=0)  # margins for the default 3 / 2
    with pytest.raises(ValueError, match="need a pilot of >= 6"):
        eq.feature_blocks(tx, 3, 6)


def test_the_equalizer_encoder_adds_one_hot_feedback_at_the_first_step():
    signal = TernaryEncoder(n_steps=4, code="binary", n_bits=3, x_max=2.0, first_step_only=True)
    encoder = eq.EqualizerEncoder(signal, window=2, feedback=3, order=2)
    assert encoder.n_channels(5) == 2 * 3 + 3 * 2
    features = torch.tensor([[1.0, -0.5, 1, 0, 1], [0.0, 2.0, 0, 0, 1]])
    spikes = encoder(features)
    assert spikes.shape == (4, 2, 12) and spikes[1:].abs().sum() == 0
    # delta = 2 / 8: 1.0 -> level 4 = 100, -0.5 -> level 2 = 010 (negative)
    assert spikes[0, 0, :6].tolist() == [1, 0, 0, 0, -1, 0]
    assert spikes[0, 0, 6:].tolist() == [0, 1, 1, 0, 0, 1]
    with pytest.raises(ValueError, match="window \\+ feedback = 5"):
        encoder.n_channels(4)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        encoder(torch.tensor([[0.0, 0.0, 2, 0, 0]]))


def test_the_ternary_binary_code_is_the_signed_bits_of_the_quantised_magnitude():
    encoder = TernaryEncoder(n_steps=2, code="binary", n_bits=3, x_max=4.0)
    x = torch.tensor([[0.0, 1.0, -2.6, 5.0, -0.24, 0.26]])
    spikes = encoder(x)
    assert spikes.shape == (2, 1, 18) and torch.equal(spikes[0], spikes[1])  # every step
    # delta = 4 / 8 = 0.5: levels 0, 2, 5, 7 (saturated), 0, 1
    assert spikes[0, 0].reshape(6, 3).tolist() == [
        [0, 0, 0],
        [0, 1, 0],
        [-1, 0, -1],
        [1, 1, 1],
        [0, 0, 0],
        [0, 0, 1],
    ]
    once = TernaryEncoder(n_steps=3, code="binary", n_bits=3, x_max=4.0, first_step_only=True)
    assert torch.equal(once(x)[0], spikes[0]) and once(x)[1:].abs().sum() == 0
    # the thermometer code (the default) is unchanged
    assert TernaryEncoder(thresholds=(0.5, 1.0))(torch.tensor([[-0.7]])).tolist() == [[[-1, 0]]]
    for field, bad in (("code", "gray"), ("n_bits", 0), ("x_max", 0)):
        with pytest.raises(ValueError, match=field):
            TernaryEncoder(**{field: bad})


def test_the_log_scale_latency_code_fires_nearest_reference_first():
    encoder = LogScaleEncoder(n_steps=30, code="latency", n_levels=10, x_max=4.0)
    assert encoder.n_channels(3) == 30
    # references -4, -3.11, ..., 4; beta = 30 / ln(64 + 2); step = floor(beta ln(d^2 + 1))
    steps = encoder.spike_steps(torch.tensor([[0.0, 3.9]]))
    beta = 30 / math.log(66)
    refs = np.linspace(-4, 4, 10)
    for value, row in zip((0.0, 3.9), steps.reshape(2, 10).tolist()):
        expected = [min(29, math.floor(beta * math.log((value - r) ** 2 + 1))) for r in refs]
        assert row == expected
        assert int(np.argmin(row)) == int(np.argmin(np.abs(refs - value)))
    spikes = encoder(torch.tensor([[0.0, 3.9, -9.0]]))
    assert spikes.shape == (30, 1, 30) and spikes.sum(0).eq(1).all()  # one spike per neuron
    with pytest.raises(ValueError, match="n_levels must be >= 2"):
        LogScaleEncoder(code="latency", n_levels=1)
    with pytest.raises(ValueError, match="code must be one of"):
        LogScaleEncoder(code="linear")


SMALL = {
    "channel": "proakis_c",
    "ebn0": 12.0,
    "train_symbols": 1000,
    "validation_symbols": 300,
    "test_symbols": 700,
    "block_length": 200,
}


def test_the_equalizer_is_a_dataset_with_channel_and_ebn0_options():
    from workbench import catalog, experiment
    from workbench.data import DATASETS, dataset_options, load_dataset

    assert "equalizer" in DATASETS and "equalizer" in catalog.DATASET_NAMES
    assert catalog.EQUALIZER_CHANNELS == tuple(sorted(eq.CHANNELS))
    assert {"channel", "ebn0", "modulation", "window", "feedback", "seed"} <= set(
        dataset_options("equalizer")
    )
    assert catalog.encoders_for("equalizer") == ("ternary", "log_scale")
    data = load_dataset("equalizer", **SMALL)
    assert (len(data.train), len(data.validation), len(data.test)) == (1000, 300, 700)
    assert data.n_features == 5 + 4 and data.n_classes == 2 and data.class_names == ("-1", "+1")
    assert data.train.features.dtype == np.float32 and data.test.labels.dtype == np.int64
    # each split its own seeded transmission; the same seed gives the same data
    assert not np.array_equal(data.train.features[:700], data.test.features)
    again = eq.load_dataset(**SMALL)
    assert np.array_equal(again.test.features, data.test.features)
    other = eq.load_dataset(**SMALL, seed=1)
    assert not np.array_equal(other.test.features, data.test.features)
    # the reference run: the paper's ternary code, with one-hot feedback added for the run
    config = experiment.reference_config("equalizer")
    assert config.encoder["name"] == "ternary" and config.encoder["code"] == "binary"
    config.dataset_options = dict(SMALL)
    config.encoder = experiment.resolve_encoder(config)
    encoder = experiment.make_run_encoder(config)
    assert isinstance(encoder, eq.EqualizerEncoder) and encoder.n_channels(9) == 5 * 8 + 4 * 2
    # another encoder by name starts from the paper's code for it, not the static default
    config.encoder = {"name": "log_scale"}
    assert experiment.resolve_encoder(config)["code"] == "latency"
    with pytest.raises(ValueError, match="ebn0: ebn0 must be a finite number"):
        eq.load_dataset(ebn0=float("nan"))
    problems = experiment.config_problems(
        experiment.RunConfig(
            dataset="equalizer",
            dataset_options={"channel": "nope"},
            encoder={"name": "ternary", "code": "binary"},
        )
    )
    assert [p.path for p in problems] == ["dataset_options.channel"]


def test_an_equalizer_run_reports_its_ber_and_both_baselines_on_the_same_symbols(tmp_path):
    from workbench import experiment

    config = experiment.reference_config("equalizer", seed=0)
    config.dataset_options = dict(SMALL)
    config.training.update(epochs=1, batch_size=100)
    config.hidden = [16]
    run = experiment.train(config)
    metrics = run.metrics
    for key in ("test_ber", "linear_equalizer_ber", "dfe_ber"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["test_bits"] == 700
    # the baselines on the test split's own transmission, recomputed from scratch
    channel = eq.get_channel("proakis_c")
    tx = eq.transmit(channel, 12.0, 4, 175, eq._stream(0, 2))  # 700 in blocks of <= 200
    assert np.array_equal(tx.decided.reshape(-1), run.data.dataset.test.labels)
    linear, _ = eq.linear_ber(tx, eq.mmse_linear(channel, 12.0, 5))
    dfe, _ = eq.dfe_ber(tx, eq.mmse_dfe(channel, 12.0, 5, 4))
    assert metrics["linear_equalizer_ber"] == linear and metrics["dfe_ber"] == dfe
    decide = eq.network_decider(run.network, run.data.encoder, "max_membrane")
    assert metrics["test_ber"] == eq.snn_ber(tx, decide, 5, 4)[0]
    # the run folder evaluates to the same numbers
    experiment.save_run(run, tmp_path / "run")
    again = experiment.evaluate_run(tmp_path / "run")
    for key in ("test_ber", "linear_equalizer_ber", "dfe_ber", "test_accuracy"):
        assert again[key] == metrics[key], key


@pytest.mark.parametrize(
    "args, message",
    [
        (["--channel", "proakis_z"], "argument --channel: invalid choice: 'proakis_z'"),
        (["--ebn0", "nan"], "argument --ebn0: 'nan' must be a finite number >= -100"),
        (["--ebn0", "1e3"], "<= 100 dB"),
    ],
)
def test_the_command_line_refuses_a_bad_channel_or_ebn0_before_torch_loads(tmp_path, args, message):
    import subprocess
    import sys

    code = (
        "import sys\nfrom workbench.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
        "except SystemExit as exc:\n    rc = exc.code\nprint(rc, 'torch' in sys.modules)"
    )
    argv = ["train", "--dataset", "equalizer", *args, "--out", str(tmp_path / "run"), "--quiet"]
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert message in done.stderr and not (tmp_path / "run").exists()


def test_compare_trains_equalizer_runs_whose_folders_hold_the_bit_error_rates(tmp_path):
    from workbench.compare import compare
    from workbench.experiment import load_run

    overrides = {"dataset_options": SMALL, "hidden": [8], "training": {"batch_size": 100}}
    result = compare("equalizer", "surrogate", seeds=2, epochs=1, overrides=overrides, out=tmp_path)
    assert result.results["error"].isna().all() and len(result.results) == 2
    for seed in (0, 1):
        run = load_run(tmp_path / "runs" / f"surrogate-float-seed{seed}")
        assert {"test_ber", "linear_equalizer_ber", "dfe_ber"} <= set(run.metrics)


def test_the_app_data_picker_offers_the_papers_codes_for_the_equalizer():
    from workbench.widgets.data import DataPicker
    from workbench.widgets.state import Workbench

    wb = Workbench()
    picker = DataPicker(workbench=wb)
    picker.dataset_select.value = "equalizer"
    assert list(picker.encoder_select.options) == ["ternary", "log_scale"]
    assert wb.encoder["code"] == "binary" and wb.encoder["x_max"] == 3.0
    # proakis_b: 3 received samples x 8 bits, 2 fed-back symbols x 2 one-hot channels
    assert picker.channels == 3 * 8 + 2 * 2 and picker.error == ""
    picker.encoder_select.value = "log_scale"
    assert wb.encoder["code"] == "latency" and picker.channels == 3 * 10 + 2 * 2


def test_workbench_train_and_evaluate_print_the_bit_error_rates(tmp_path):
    import json
    import subprocess
    import sys

    sizes = {k: v for k, v in SMALL.items() if k not in ("channel", "ebn0")}
    options = [f"--dataset-option={k}={v}" for k, v in sizes.items()]
    run = tmp_path / "run"
    train = [sys.executable, "-m", "workbench.cli", "train", "--dataset", "equalizer"]
    train += ["--channel", "proakis_c", "--ebn0", "12", "--epochs", "1", "--hidden", "8"]
    done = subprocess.run([*train, *options, "--out", str(run), "--quiet"], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    evaluate = [sys.executable, "-m", "workbench.cli", "evaluate", str(run)]
    done = subprocess.run(evaluate, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("test_ber", "linear_equalizer_ber", "dfe_ber"):
        assert metrics[key] == summary[key], key
    config = json.loads((run / "config.json").read_text())
    assert config["dataset_options"]["channel"] == "proakis_c"
    assert config["dataset_options"]["ebn0"] == 12.0
