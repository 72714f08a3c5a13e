"""The ``workbench`` command: run folders, evaluation, and one-line errors for bad input."""

import json
import os
import subprocess
import sys

import pytest

from workbench.cli import main

RUN_FILES = {
    "spec.json",
    "config.json",
    "history.csv",
    "metrics.json",
    "weights.safetensors",
    "recording.nc",
    "manifest.json",
}


def workbench(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    done = workbench(
        "train",
        "--dataset",
        "digits",
        "--epochs",
        "2",
        "--seed",
        "1",
        "--hidden",
        "40",
        "--out",
        str(out),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout.strip().splitlines()[-1])


def test_train_writes_a_complete_run_folder(digits_run):
    out, summary = digits_run
    assert {p.name for p in out.iterdir()} == RUN_FILES
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_accuracy", "val_accuracy", "train_seconds", "epochs"} <= set(metrics)
    assert metrics["epochs"] == 2 and summary["test_accuracy"] == metrics["test_accuracy"]
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 1 and config["hidden"] == [40]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["spec_hash"] and manifest["backend"] == "float"
    # no temporary folder, and no checkpoint once the run folder is complete
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_evaluate_gives_the_stored_metrics_to_the_last_digit(digits_run):
    out, _ = digits_run
    done = workbench("evaluate", str(out))
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout)
    stored = json.loads((out / "metrics.json").read_text())
    assert again.keys() == stored.keys()
    assert again["test_accuracy"] == stored["test_accuracy"]
    assert again["val_accuracy"] == stored["val_accuracy"]


def test_evaluate_on_another_dataset_names_the_mismatch(digits_run):
    out, _ = digits_run
    done = workbench("evaluate", str(out), "--dataset", "yinyang")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist'"),
        (
            ["--dataset", "digits", "--epochs", "0"],
            "argument --epochs: '0' must be an integer >= 1",
        ),
        (["--dataset", "digits", "--hidden", "10,-3"], "'-3' must be an integer >= 1"),
        (["--dataset", "digits", "--lr", "nan"], "'nan' must be a finite number > 0"),
        (["--dataset", "digits", "--backend", "gpu"], "argument --backend: invalid choice"),
        (
            ["--dataset", "yinyang", "--dt", "6"],
            "populations[0].params.tau_syn: 5.0 ms must be > dt (6 ms)",
        ),
        (["--dataset", "yinyang", "--n-steps", "5"], "t_late"),
        (["--dataset", "digits", "--dt", "2"], "max_rate_hz"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_code_2(tmp_path, args, message):
    out = tmp_path / "run"
    done = workbench("train", *args, "--out", str(out), "--quiet")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in done.stderr
    assert not out.exists() and os.listdir(tmp_path) == []


def test_an_existing_run_folder_is_not_overwritten(digits_run):
    out, _ = digits_run
    before = (out / "weights.safetensors").read_bytes()
    done = workbench("train", "--dataset", "digits", "--out", str(out), "--quiet")
    assert done.returncode == 2 and "exists and is not empty" in done.stderr
    assert (out / "weights.safetensors").read_bytes() == before


def test_algorithm_and_backend_choices_come_from_the_registries():
    done = workbench("train", "--help")
    assert "surrogate" in done.stdout and "float" in done.stdout


def test_switching_the_neuron_model_keeps_only_its_own_parameters(tmp_path):
    out = tmp_path / "if-run"
    done = workbench(
        "train",
        "--dataset",
        "digits",
        "--neuron",
        "if",
        "--epochs",
        "1",
        "--hidden",
        "20",
        "--out",
        str(out),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    spec = json.loads((out / "spec.json").read_text())
    assert spec["populations"][0]["model"] == "if"
    assert "tau_mem" not in spec["populations"][0]["params"]


def test_a_run_folder_whose_spec_was_edited_is_refused_in_one_line(digits_run, tmp_path):
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(digits_run[0], copy)
    spec = json.loads((copy / "spec.json").read_text())
    spec["populations"][0]["size"] += 1
    (copy / "spec.json").write_text(json.dumps(spec))
    done = workbench("evaluate", str(copy))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "spec.json differs" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_unwritable_out_folder_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = workbench("train", "--dataset", "digits", "--out", str(blocker / "run"), "--quiet")
    assert done.returncode == 2 and "is not a writable folder" in done.stderr


def test_run_folders_are_readable_by_others(digits_run):
    assert digits_run[0].stat().st_mode & 0o055 == 0o055 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


DEEP_JSON = "[" * 100 + "]" * 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--dataset", "digits", "--lr", "nan"], "argument --lr: 'nan' must be"),
        (["train", "--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist'"),
        (["train", "--dataset", "digits", "--hidden", "0"], "argument --hidden: '0' must be"),
        (["train", "--dataset", "digits", "--memory-limit", "12XB"], "--memory-limit: '12XB'"),
        (["train", "--dataset", "digits", "--spec", "{missing}"], "cannot be read"),
        (["train", "--dataset", "digits", "--spec", "{garbage}"], "spec: is not valid JSON"),
        (["train", "--dataset", "digits", "--spec", "{deep}"], "spec: nests 100 levels deep"),
        (["sweep", "--dataset", "digits", "--param", "lr"], "'lr' must be SETTING=VALUE1"),
        (["compare", "--dataset", "digits", "--algorithms", "x"], "'x' must be one of"),
    ],
)
def test_a_bad_option_is_refused_in_one_line_before_torch_is_imported(tmp_path, args, message):
    """Issue 18: refused by field within a second; torch is not imported on the way (the
    wall time is printed, not asserted: a loaded machine would make it flaky)."""
    import time
    from pathlib import Path

    files = {"missing": tmp_path / "missing.json", "garbage": tmp_path / "garbage.json"}
    files["deep"] = tmp_path / "deep.json"
    files["garbage"].write_text("not json{")
    files["deep"].write_text(DEEP_JSON)
    args = [a.format(**files) for a in args]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "run"), "--quiet"]
    script = Path(sys.executable).with_name("workbench")  # the installed command
    command = [str(script)] if script.exists() else [sys.executable, "-m", "workbench.cli"]
    start = time.perf_counter()
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=600)
    print(f"{time.perf_counter() - start:.2f} s: workbench {' '.join(args)}")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "run").exists()
    code = (
        "import sys\nfrom workbench.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
        "except SystemExit as exc:\n    rc = exc.code\nprint(rc, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["app", "--max-steps", "999999999999"], "must be an integer >= 1 and <= 100000 steps"),
        (["app", "--max-compare-runs", "1e400"], "must be an integer >= 1 and <= 1000"),
        (["app", "--max-workers", "100000"], "workers (0: automatic)"),
        (["train", "--dataset", "digits", "--out", "x", "--algorithm=--"], "'--' is not a value"),
        (["train", "--dataset", "digits", "--out", "x", "--dt=--"], "'--' is not a value"),
    ],
)
def test_app_limits_and_a_bare_double_dash_are_refused_before_anything_starts(
    argv, message, capsys
):
    """robustness.py found `workbench app --max-steps 999999999999` serving (and hanging the
    case) and `--dt=--` accepted: argparse stores [] for a value of "--" without its checks."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
