"""One validation layer for every entry point (issue 18): bad input is refused by field with
its allowed range, before anything is allocated or written, and never escapes as another
exception.  The cases here are the ones that escaped before: each used to allocate hundreds of
GiB, overflow in torch, hang, or raise TypeError/RecursionError/OverflowError/MemoryError."""

from __future__ import annotations

import copy
import json
import os

import pytest

from workbench import limits
from workbench.algorithms import ALGORITHMS
from workbench.backends import available_backends
from workbench.cli import main
from workbench.compare import grid
from workbench.experiment import check_config, config_problems, reference_config
from workbench.spec import NetworkSpec, Population, Projection, SpecError, feedforward


@pytest.fixture
def memory(monkeypatch):
    """Set the memory limit for one test (``--memory-limit`` sets the same variable)."""

    def set_limit(text: str | None):
        if text is None:
            monkeypatch.delenv(limits.MEMORY_ENV, raising=False)
        else:
            monkeypatch.setenv(limits.MEMORY_ENV, text)

    set_limit("8GiB")
    return set_limit


def paths(exc: SpecError) -> set[str]:
    return {p.path for p in exc.problems}


# ------------------------------------------------------------------------------------ JSON
def test_json_nested_deeper_than_any_spec_is_refused_without_recursion():
    text = "[" * 200_000 + "]" * 200_000
    with pytest.raises(SpecError, match=r"spec: nests 200000 levels deep; at most 32"):
        limits.parse_json(text)
    with pytest.raises(SpecError, match="nests 200000 levels"):
        NetworkSpec.from_json(text)


def test_json_depth_counts_brackets_outside_strings_only():
    assert limits.json_depth('{"name": "[[[[[[", "a": [[1]]}') == 3
    assert limits.json_depth(r'["\"[[[", {"b": []}]') == 3
    assert limits.json_depth("3") == 0


def test_an_integer_past_pythons_digit_limit_is_a_problem_not_a_value_error():
    text = '{"input_size": ' + "9" * 5000 + "}"
    with pytest.raises(SpecError, match=r"spec: is not valid JSON \(Exceeds the limit"):
        NetworkSpec.from_json(text)


def test_json_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    with pytest.raises(SpecError, match="at most 1.0 KiB is read"):
        limits.parse_json("[" + "1," * 1000 + "1]", max_bytes=1024)
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:  # 64 GiB, sparse: never read
        handle.truncate(64 * 2**30)
    with pytest.raises(SpecError, match=r"big.json' is 64 GiB; at most 16 MiB is read"):
        NetworkSpec.from_file(big)


def test_text_that_is_not_utf8_or_not_an_object_names_the_spec(tmp_path):
    (tmp_path / "latin.json").write_bytes(b'{"name": "\xe9"}')
    with pytest.raises(SpecError, match="spec: is not UTF-8"):
        NetworkSpec.from_file(tmp_path / "latin.json")
    with pytest.raises(SpecError, match="spec: must be a JSON object"):
        NetworkSpec.from_json("[1]")
    with pytest.raises(SpecError, match="cannot be read"):
        NetworkSpec.from_file(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------ spec
def spec_data() -> dict:
    return feedforward([3, 5, 2]).to_dict()


NASTY = [None, [], {}, "x", [1], {"a": 1}, 10**400, -(10**400), 1e308, True, -1, 2.5, 10**12]


@pytest.mark.parametrize("value", NASTY, ids=limits.show)
@pytest.mark.parametrize(
    "where",
    [
        ("input_size",),
        ("dt",),
        ("n_steps",),
        ("name",),
        ("output",),
        ("populations",),
        ("populations", 0),
        ("populations", 0, "name"),
        ("populations", 0, "size"),
        ("populations", 0, "model"),
        ("populations", 0, "params"),
        ("populations", 0, "params", "tau_mem"),
        ("populations", 0, "params", "reset"),
        ("populations", 0, "params", "refractory_steps"),
        ("projections", 0),
        ("projections", 0, "source"),
        ("projections", 0, "target"),
        ("projections", 0, "recurrent"),
        ("projections", 0, "delay"),
        ("projections", 0, "weight_mean"),
        ("projections", 0, "weight_std"),
        ("projections", 0, "weights"),
    ],
    ids=lambda where: ".".join(map(str, where)),
)
def test_any_value_anywhere_in_a_spec_gives_a_spec_or_a_spec_error(where, value):
    """Types are checked before values are compared or hashed: never TypeError ('unhashable',
    "'<' not supported"), OverflowError or an allocation."""
    data = spec_data()
    target = data
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = copy.deepcopy(value)
    try:
        spec = NetworkSpec.from_dict(data)
    except SpecError as exc:
        assert exc.problems and all(p.path and p.message for p in exc.problems)
    else:
        assert spec.problems() == []


def test_numbers_beyond_float32_range_are_refused_by_field():
    data = spec_data()
    data["populations"][0]["params"]["threshold"] = 1e300
    data["projections"][0]["weight_mean"] = -1e31
    data["projections"][1]["weights"] = [[1e38] * 5, [0.0] * 5]
    with pytest.raises(SpecError) as caught:
        NetworkSpec.from_dict(data)
    assert {
        "populations[0].params.threshold",
        "projections[0].weight_mean",
        "projections[1].weights[0][0]",
    } <= paths(caught.value)


def test_a_chain_of_a_thousand_populations_is_checked_without_recursion():
    names = [f"p{k}" for k in range(limits.MAX_POPULATIONS)]
    spec = NetworkSpec(
        1,
        [Population(n, 1) for n in names],
        [Projection("input", names[0])]
        + [Projection(a, b) for a, b in zip(names[:-1], names[1:])]
        + [Projection(names[-1], names[0])],  # closes a cycle of 1000
    )
    message = {p.path: p.message for p in spec.problems()}["projections"]
    assert message.startswith("the cycle p0 -> p1 -> p2")
    spec.projections[-1].recurrent = True
    assert spec.problems() == []
    spec.populations.append(Population("one_too_many", 1))
    assert "at most 1000" in str(spec.problems())


def test_a_network_whose_weights_do_not_fit_in_memory_is_refused_before_it_is_built(memory):
    spec = NetworkSpec(
        64,
        [Population("hidden", 10**9), Population("output", 10, "li")],
        [Projection("input", "hidden"), Projection("hidden", "output")],
        n_steps=20,
    )
    with pytest.raises(SpecError) as caught:
        spec.validate()
    (problem,) = caught.value.problems
    assert problem.path == "populations[0].size"
    assert "'hidden' has 1000000000 neurons" in problem.message
    assert "~276 GiB" in problem.message and "this machine allows 8.0 GiB" in problem.message
    assert spec.problems() == []  # the machine-independent checks pass


# ------------------------------------------------------------------------------------ memory
@pytest.mark.parametrize(
    "text, expected",
    [
        ("8GiB", 8 * 2**30),
        ("512 MiB", 512 * 2**20),
        ("2G", 2 * 10**9),
        ("1.5gb", 1_500_000_000),
        ("1048576", 2**20),
    ],
)
def test_memory_sizes_parse(text, expected):
    assert limits.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "8 GiBs", "-1G", "1e9", "10", "2EiB", "1" * 50])
def test_bad_memory_sizes_name_the_option(text):
    with pytest.raises(SpecError, match="memory_limit: .* must be"):
        limits.parse_size(text)


def test_the_memory_limit_is_the_variable_or_what_the_machine_has(memory):
    assert limits.memory_limit() == 8 * 2**30
    memory(None)
    assert limits.FALLBACK_MEMORY > 0 and limits.memory_limit() == limits.available_memory() > 0
    memory("lots")
    with pytest.raises(SpecError, match=f"{limits.MEMORY_ENV}: 'lots' must be a size"):
        limits.memory_limit()


def test_the_estimate_keeps_every_step_for_bptt_and_spikes_for_eventprop():
    args = (5, [(120, True), (3, False)], 5 * 120 + 120 * 3, 1000, 32)
    bptt = limits.estimate_memory(*args, algorithm="surrogate")
    forward = limits.estimate_memory(*args, algorithm="proxy")
    events = limits.estimate_memory(*args, algorithm="eventprop")
    assert bptt.training_pass == 2 * forward.training_pass
    assert events.training_pass < forward.training_pass / 10
    assert bptt.total == bptt.weights + max(bptt.training_pass, bptt.evaluation_pass)


def test_a_run_too_large_for_the_machine_names_the_field_and_both_numbers(memory):
    config = reference_config("digits")
    config.hidden = [10**9]
    (problem,) = config_problems(config)
    assert problem.path == "hidden"
    assert problem.message.startswith("1000000000 neurons x 20 steps x evaluation batch 256")
    assert "needs ~76 TiB; this machine allows 8.0 GiB" in problem.message
    assert limits.MEMORY_ENV in problem.message
    config = reference_config("digits")
    config.n_steps, config.training["batch_size"] = 100_000, 65_536
    (problem,) = config_problems(config)
    assert problem.path == "training.batch_size"
    assert "x batch 65536 x 100000 steps needs ~" in problem.message
    memory("100TiB")
    assert config_problems(config) == []


# ------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    "field, value, path, message",
    [
        ("hidden", -1, "hidden", "-1 must be a non-empty list of sizes"),
        ("hidden", ["10"], "hidden", "'10' must be an integer >= 1"),
        ("hidden", [10] * 101, "hidden", "has 101 layers; at most 100"),
        ("dt", "1", "dt", "'1' must be a finite number > 0 (ms), from 0.001 to 1000 ms"),
        ("dt", 1e-320, "dt", "from 0.001 to 1000 ms"),
        ("n_steps", 10**9, "n_steps", "must be an integer >= 1 and <= 100000"),
        ("seed", 2**64, "seed", "must be an integer >= 0 and <= 4294967295"),
        ("neuron", ["lif"], "neuron", "must be one of"),
        ("neuron_params", [1], "neuron_params", "must be an object"),
        ("weight_init", {"input->hidden": {"mean": 1}}, "weight_init.input->hidden", "weight_std"),
        ("encoder", {"name": "rate", "max_rate_hz": "fast"}, "encoder.max_rate_hz", "type"),
        ("encoder", {"name": "rate", "speed": 1}, "encoder.speed", "is not a setting"),
        ("encoder", {"name": "rate", "max_rate_hz": 1e39}, "encoder.max_rate_hz", "+-1e+15"),
        ("encoder", {"name": "log_scale", "n_levels": 10**9}, "encoder.n_levels", "<= 64"),
        ("training", {"lr": 1e39}, "training.lr", "must be a finite number > 0 and <= 10"),
        ("training", {"epochs": 10**400}, "training.epochs", "about 401 digits"),
        ("training", {"surrogate_scale": 1e30}, "training.surrogate_scale", "<= 1000"),
        ("training", {"nope": 1}, "training.nope", "is not a setting of 'surrogate'"),
        ("backend_options", {"x": 1}, "backend_options.x", "is not an option of backend"),
        ("backend_options", {"seed": 3}, "backend_options.seed", "is not an option"),
    ],
)
def test_every_run_setting_is_checked_by_type_then_range(field, value, path, message):
    config = reference_config("digits")
    setattr(config, field, value)
    found = {p.path: p.message for p in config_problems(config)}
    assert path in found, found
    assert message in found[path]


def test_backend_options_are_checked_against_the_backends_own_signature():
    config = reference_config("yinyang", "surrogate", "loihi")
    config.backend_options = {
        "threshold_mantissa": "high",
        "readout_range": 64,
        "profile": {"weight_bits": 8.5, "colour": 1, "speedup": 1e40},
    }
    found = {p.path: p.message for p in config_problems(config)}
    assert found["backend_options.threshold_mantissa"] == "'high' must be of type int"
    assert "backend_options.readout_range" not in found  # an int where a float is wanted
    assert found["backend_options.profile.weight_bits"] == "8.5 must be an integer"
    assert "is not a figure of LoihiProfile" in found["backend_options.profile.colour"]
    assert "+-1e+15" in found["backend_options.profile.speedup"]
    config.backend_options = {"chip_seed": 2**40}
    config.backend = "brainscales2"
    assert "<= 4294967295" in str(config_problems(config))
    config.backend_options = {"chip_seed": 3, "profile": {"name": "mine"}}
    assert config_problems(config) == []


# ------------------------------------------------------------------------------------ pairs
REFUSED = {
    ("surrogate", "event"),
    *{("eventprop", b) for b in ("brainscales2", "xylo", "loihi", "crossbar", "fpga")},
    *{
        (rule, b)
        for rule in ("stdp", "vdsp", "ssnn_bp")
        for b in available_backends()
        if b != "float"
    },
}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("backend", available_backends())
def test_algorithm_backend_pairs_that_cannot_work_are_refused_naming_both(algorithm, backend):
    problems = limits.pair_problems(algorithm, backend)
    if (algorithm, backend) in REFUSED:
        (problem,) = problems
        assert problem.path == "backend"
        assert f"algorithm {algorithm!r} cannot train on backend {backend!r}" in problem.message
    else:
        assert problems == []


def test_backend_kinds_come_from_the_backend_classes():
    kinds = {b: limits.backend_kind(b) for b in available_backends()}
    assert kinds["float"] == "float" and kinds["event"] == "event"
    assert {kinds[b] for b in ("brainscales2", "xylo", "loihi", "crossbar")} == {"chip"}


def test_a_pair_is_refused_before_training_starts():
    with pytest.raises(SpecError, match="algorithm 'stdp' cannot train on backend 'event'"):
        check_config(reference_config("digits", "stdp", "event"))


def test_a_comparison_with_a_pair_that_cannot_work_is_refused_before_any_run(tmp_path):
    with pytest.raises(SpecError) as caught:
        grid("digits", ["surrogate", "eventprop"], ["float", "loihi"], seeds=1, epochs=1)
    assert str(caught.value).startswith("backend (eventprop on loihi): algorithm 'eventprop'")
    assert len(caught.value.problems) == 1


# ------------------------------------------------------------------------------------ CLI
ESCAPES = [
    (["train", "--hidden", "1000000000"], "hidden: 1000000000 neurons x 20 steps"),
    (["train", "--hidden", "10," * 100 + "10"], "101 hidden layers; at most 100"),
    (["train", "--n-steps", "1000000000"], "'1000000000' must be an integer >= 1 and <= 100000"),
    (["train", "--lr", "1e39"], "argument --lr: '1e39' must be a finite number > 0 and <= 10"),
    (["train", "--lr", "1e400"], "argument --lr: '1e400' must be a finite number > 0"),
    (["train", "--epochs", "1000000000"], "'1000000000' must be an integer >= 1 and <= 10000"),
    (["train", "--epochs", "9" * 5000], "argument --epochs: '99999999999999"),
    (["train", "--batch-size", "1000000000"], "must be an integer >= 1 and <= 65536"),
    (["train", "--checkpoint-every", "1000000000"], "must be an integer >= 1 and <= 10000"),
    (["train", "--checkpoint-every", "31"], "checkpoint_every: 31 must be an integer >= 1"),
    (["train", "--surrogate-scale", "1e30"], "must be a finite number > 0 and <= 1000"),
    (["train", "--dt", "1e-320"], "argument --dt: '1e-320' must be a finite number >= 0.001"),
    (["train", "--seed", "1" + "0" * 30], "must be an integer >= 0 and <= 4294967295"),
    (["train", "--memory-limit", "1MiB"], "hidden: 100 neurons x 20 steps x evaluation batch"),
    (["train", "--memory-limit", "lots"], "argument --memory-limit: 'lots' must be a size"),
    (
        ["train", "--algorithm", "eventprop", "--backend", "loihi"],
        "backend: algorithm 'eventprop' cannot train on backend 'loihi'",
    ),
    (
        ["train", "--algorithm", "stdp", "--backend", "event"],
        "backend: algorithm 'stdp' cannot train on backend 'event'",
    ),
    (["compare", "--algorithms", "surrogate", "--seeds", str(10**18)], "<= 1000"),
    (
        ["compare", "--algorithms", "surrogate", "--seeds", "5", "--max-runs", "4"],
        "seeds: 1 algorithms x 1 backends x 5 seeds is 5 runs; at most 4 (--max-runs)",
    ),
    (["compare", "--algorithms", "surrogate", "--workers", "1000000"], "this machine's cores"),
    (["sweep", "--param", "training.lr=0.01", "--seeds", str(10**18)], "<= 1000"),
    (["sweep", "--param", "hidden=-1"], "hidden (with {'hidden': -1}): -1 must be a non-empty"),
    (["sweep", "--param", "backend_options.x=1"], "is not an option of backend 'float'"),
    (["sweep", "--param", "hidden=" + "[" * 5000 + "]" * 5000], "nested at most 32 deep"),
    (["sweep", "--param", "training.lr=" + "9" * 5000], "Exceeds the limit (4300 digits)"),
    (
        ["sweep", "--param", "training.lr=" + ",".join(["0.01"] * 100)]
        + ["--param", "hidden=" + ",".join(["[10]"] * 100)],
        "is 10000 runs; at most 1000 (--max-runs)",
    ),
]


@pytest.mark.parametrize("args, message", ESCAPES, ids=lambda a: " ".join(a)[:60])
def test_cli_escapes_get_one_line_exit_2_and_leave_nothing(
    tmp_path, capsys, monkeypatch, args, message
):
    monkeypatch.delenv(limits.MEMORY_ENV, raising=False)
    out = tmp_path / "out"
    command, rest = args[0], args[1:]
    try:
        code = main([command, "--dataset", "digits", *rest, "--out", str(out)])
    except SystemExit as exit:  # argparse's refusals
        code = exit.code
    os.environ.pop(limits.MEMORY_ENV, None)  # --memory-limit sets it for the process
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert message in lines[0], lines[0]
    assert os.listdir(tmp_path) == []


def write_spec(tmp_path, text: str):
    path = tmp_path / "spec.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000 + "]" * 100_000, "spec: nests 100000 levels deep"),
        ('{"input_size": ' + "9" * 5000 + "}", "spec: is not valid JSON (Exceeds the limit"),
        (json.dumps({**spec_data(), "input_size": 10**9}), "input_size: 'input' has 1000000000"),
        ('{"populations": [{"name": ["x"]}]}', "populations[0].size: is required"),
    ],
)
def test_a_bad_spec_file_gets_one_line_and_exit_2(tmp_path, capsys, text, message, memory):
    spec = write_spec(tmp_path, text)
    out = tmp_path / "out"
    code = main(["train", "--dataset", "digits", "--spec", str(spec), "--out", str(out)])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line, line
    assert not out.exists()


def test_a_spec_file_and_a_layered_option_together_are_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, feedforward([64, 20, 10]).to_json())
    code = main(
        ["train", "--dataset", "digits", "--spec", str(spec), "--hidden", "20"]
        + ["--out", str(tmp_path / "out")]
    )
    assert code == 2
    assert "spec: gives the network; --hidden cannot be given too" in capsys.readouterr().err


def test_train_takes_the_network_from_a_spec_file(tmp_path, capsys):
    spec = feedforward([64, 20, 10], dt=1.0, n_steps=20, name="mine")
    path = write_spec(tmp_path, spec.to_json())
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--spec", str(path), "--epochs", "1", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    saved = NetworkSpec.from_json((out / "spec.json").read_text())
    assert saved.name == "mine" and [p.size for p in saved.populations] == [20, 10]
    assert json.loads(capsys.readouterr().out)["epochs"] == 1
