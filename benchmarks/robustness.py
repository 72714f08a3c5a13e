"""Bad input as students and other tools give it: is every case refused cleanly, or run?

Three families of cases, generated from ``--seed`` (the same seed, the same cases):

- **CLI** (``--cli``, default 300): invocations of every ``workbench`` command, each with one
  or two options set to a value a student might type (negative, zero, huge, beyond float
  range, not a number, a wrong choice, a missing or corrupt file, a bad ``--param``), every
  algorithm x backend pair, and valid invocations as controls;
- **spec** (``--spec``, default 1000): a valid ``NetworkSpec`` JSON mutated at a random place
  (a value replaced by another type, a huge or negative number, NaN, a 5,000-digit integer,
  a key deleted or added, nesting 100,000 deep, a 12 MB document, truncated text), loaded
  through the API (``NetworkSpec.from_json``); an accepted spec is built on the float backend
  and run for one sample, which must complete;
- **NIR** (``--nir``, default 100): a graph exported from a real run, then mutated (the
  parameter arrays and the graph: values, types, shapes, nodes, edges, metadata), imported
  with ``workbench import-nir``; an accepted graph makes a run folder that must verify.

Each case runs in its own process (forked from this one after the imports, in its own empty
folder, with ``--memory-mb`` more address space than this process and a ``--timeout``), and
lands in one column: **clean refusal** (exit code 2 and one line on stderr, or ``SpecError``
for the API), **accepted and ran** (the run completed: its run folder verifies, its sample
ran), **traceback** (any other exception, or a case that must be refused accepted), **wrong
exit** (a refusal on more than one line, or an exit code other than 0 and 2), **crash** (killed
by a signal: memory, a segfault), **hang** (past the timeout), **leftover** (a refusal that left
a file behind, or an accepted run with files beside its output).  Goal: every column but the
first two zero.

Run: ``.venv/bin/python benchmarks/robustness.py`` (``--help``: counts, seed, limits,
``--json FILE``, ``--show N`` failures to print per column).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from workbench import cli
from workbench.backends import available_backends, build
from workbench.spec import NetworkSpec, SpecError, feedforward
from workbench.store import MANIFEST, read_manifest

COLUMNS = (
    "clean refusal",
    "accepted and ran",
    "traceback",
    "wrong exit",
    "crash",
    "hang",
    "leftover",
)
REFUSE, RUN, EITHER = "refuse", "run", "either"
# A tiny training that runs in ~3 s: the controls and the accepted cases.
TINY = ["--dataset", "digits", "--hidden", "8", "--epochs", "1", "--n-steps", "10", "--quiet"]


@dataclass
class Case:
    family: str
    name: str
    body: Callable[[Path], int]  # runs in the child, in its folder; returns the exit code
    expect: str = EITHER
    inputs: tuple[str, ...] = ()  # files the case's folder starts with (from the fixtures)
    output: str | None = None  # what an accepted case creates (a run folder, a results folder)
    setup: Callable[[Path], None] | None = None  # writes the case's input files (in the parent)


@dataclass
class Outcome:
    case: Case
    column: str
    seconds: float
    detail: str = ""


@dataclass
class Fixtures:
    """Files the cases start from, made once: a run folder, its NIR graph, a spec."""

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)


# ------------------------------------------------------------------------------- running a case


def _limit_memory(extra_mb: int) -> None:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[0])
    total = pages * resource.getpagesize() + extra_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (total, total))


def run_case(case: Case, fixtures: Fixtures, timeout: float, memory_mb: int) -> Outcome:
    """Fork, run ``case.body`` in a fresh folder with the limits, and classify what happened."""
    folder = Path(tempfile.mkdtemp(prefix="robust-"))
    for name in case.inputs:
        source = fixtures.files[name]
        target = folder / source.name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    if case.setup is not None:
        case.setup(folder)
    before = set(_listing(folder))
    err_path = folder.parent / f"{folder.name}.stderr"
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.setpgid(0, 0)
            os.chdir(folder)
            err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(err, 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            _limit_memory(memory_mb)
            code = case.body(folder)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    status = None
    while time.monotonic() - start < timeout:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    seconds = time.monotonic() - start
    if status is None or not done:
        _kill_group(pid)
        os.waitpid(pid, 0)
        column, detail = "hang", f"still running after {timeout:.0f} s"
    else:
        column, detail = _classify(
            case, status, err_path.read_text(errors="replace"), folder, before
        )
    _kill_group(pid)  # what it started (a Dask cluster) goes too
    shutil.rmtree(folder, ignore_errors=True)
    err_path.unlink(missing_ok=True)
    return Outcome(case, column, seconds, detail)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _classify(case: Case, status: int, stderr: str, folder: Path, before: set[str]):
    lines = [line for line in stderr.splitlines() if line.strip()]
    new = sorted(set(_listing(folder)) - before)
    if os.WIFSIGNALED(status):
        return "crash", f"killed by signal {os.WTERMSIG(status)}; {_last(lines)}"
    code = os.WEXITSTATUS(status)
    if "Traceback (most recent call last)" in stderr:
        return "traceback", _last(lines)
    if code == 2:
        if len(lines) != 1:
            return "wrong exit", f"refusal on {len(lines)} lines: {' | '.join(lines[:3])}"
        if new:
            return "leftover", f"refused ({lines[0]}) but left {new[:3]}"
        return "clean refusal", lines[0]
    if code == 0:
        if case.expect == REFUSE:
            return "traceback", f"accepted what must be refused (exit 0); {_last(lines)}"
        extra = [p for p in new if case.output is None or not p.startswith(case.output)]
        if extra:
            return "leftover", f"ran but left {extra[:3]}"
        if case.output is not None and (folder / case.output / MANIFEST).is_file():
            try:
                read_manifest(folder / case.output)  # every file there, with its hash
            except SpecError as exc:
                return "traceback", f"accepted, but its run folder does not verify: {exc}"
        return "accepted and ran", ""
    return "wrong exit", f"exit code {code}: {_last(lines)}"


def _last(lines: list[str]) -> str:
    return lines[-1][:300] if lines else "(nothing on stderr)"


# ------------------------------------------------------------------------------------ fixtures


def _in_child(body: Callable[[], int]) -> int:
    """Run ``body`` in a forked child (this process stays free of torch threads and state)."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(body())
        except BaseException:
            traceback.print_exc()
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def make_fixtures(folder: Path) -> Fixtures:
    fixtures = Fixtures(folder)
    run = folder / "run"
    for argv in (
        ["train", *TINY, "--out", str(run), "--checkpoint-every", "1"],
        ["export-nir", str(run), str(folder / "net.nir")],
    ):
        code = _in_child(lambda argv=argv: cli.main(argv))
        if code != 0:
            raise SystemExit(f"making the fixtures failed: workbench {' '.join(argv)} -> {code}")
    spec = feedforward([64, 8, 10], name="robust", n_steps=10)
    (folder / "spec.json").write_text(spec.to_json())
    (folder / "garbage.json").write_bytes(b"\x00\xff{not json")
    (folder / "empty.json").write_text("")
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    fixtures.files.update(
        run=run,
        nir=folder / "net.nir",
        spec=folder / "spec.json",
        garbage=folder / "garbage.json",
        empty=folder / "empty.json",
        deep=folder / "deep.json",
    )
    return fixtures


# ------------------------------------------------------------------------------------ CLI cases

# What a student might type where a number, a name or a size goes.
BAD_VALUES = (
    "-1",
    "0",
    "-0.0",
    "1e9",
    "1000000000",
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "-inf",
    "1e-320",
    "abc",
    "",
    " ",
    "1,,2",
    "0x10",
    "1" + "0" * 30,
    "9" * 5000,
    "2.5",
    "1e",
    "--",
    "∞",
)
# Never a valid setting of any option: a case with one of these must be refused.
NEVER_VALID = {
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "-inf",
    "abc",
    "",
    " ",
    "1,,2",
    "9" * 5000,
    "1e",
    "--",
    "∞",
}


def _expect(*values: str) -> str:
    return REFUSE if NEVER_VALID.intersection(values) else EITHER


def _cli(argv: list[str]) -> Callable[[Path], int]:
    return lambda folder: cli.main(argv)


def cli_cases(rng: random.Random, n: int) -> list[Case]:
    cases: list[Case] = []
    parser = cli.make_parser()
    train_options = _options(parser, "train")
    # every algorithm x backend pair, on the tiny training
    algorithms = sorted(_choices(parser, "train", "--algorithm"))
    for algorithm in algorithms:
        for backend in available_backends():
            argv = ["train", *TINY, "--algorithm", algorithm, "--backend", backend, "--out", "out"]
            cases.append(
                Case("cli", f"pair {algorithm} x {backend}", _cli(argv), EITHER, output="out")
            )
    # one bad value in one option of `train`
    singles = [(opt, value) for opt in train_options for value in BAD_VALUES]
    for opt, value in rng.sample(singles, min(len(singles), n // 2)):
        argv = _with(["train", *TINY, "--out", "out"], opt, value)
        cases.append(
            Case("cli", f"train {opt} {value[:20]!r}", _cli(argv), _expect(value), output="out")
        )
    # two at once
    for _ in range(n // 10):
        (a, va), (b, vb) = rng.sample(singles, 2)
        argv = _with(_with(["train", *TINY, "--out", "out"], a, va), b, vb)
        cases.append(
            Case(
                "cli",
                f"train {a} {va[:12]!r} {b} {vb[:12]!r}",
                _cli(argv),
                _expect(va, vb),
                output="out",
            )
        )
    cases += _other_commands(rng)
    rng.shuffle(cases)
    return cases[:n]


def _options(parser, command: str) -> list[str]:
    sub = _subparser(parser, command)
    skip = {"--help", "--out", "--quiet", "--dataset"}
    return [
        a.option_strings[-1]
        for a in sub._actions
        if a.option_strings and a.option_strings[-1] not in skip and a.nargs != 0
    ]


def _choices(parser, command: str, option: str) -> list[str]:
    sub = _subparser(parser, command)
    return next(a.choices for a in sub._actions if option in a.option_strings)


def _subparser(parser, command: str):
    action = next(
        a for a in parser._actions if getattr(a, "choices", None) and command in a.choices
    )
    return action.choices[command]


def _with(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option`` set to ``value`` (replacing a value it had)."""
    argv = list(argv)
    if option in argv:
        del argv[argv.index(option) : argv.index(option) + 2]
    return [*argv, f"{option}={value}"]


def _other_commands(rng: random.Random) -> list[Case]:
    c: list[Case] = []

    def add(name, argv, expect=REFUSE, inputs=(), output=None):
        c.append(Case("cli", name, _cli(argv), expect, tuple(inputs), output))

    add("train (control)", ["train", *TINY, "--out", "out"], RUN, output="out")
    add("train: --out exists", ["train", *TINY, "--out", "run"], inputs=["run"])
    for name in ("garbage", "empty", "deep"):
        add(
            f"train --spec {name}",
            ["train", *TINY, "--out", "o", "--spec", f"{name}.json"],
            inputs=[name],
        )
    add("train --spec missing", ["train", *TINY, "--out", "o", "--spec", "nope.json"])
    add("train --spec a folder", ["train", *TINY, "--out", "o", "--spec", "run"], inputs=["run"])
    add(
        "train --spec (control)",
        [
            "train",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            "o",
            "--spec",
            "spec.json",
        ],
        RUN,
        ["spec"],
        "o",
    )
    add("evaluate (control)", ["evaluate", "run"], RUN, ["run"])
    add("evaluate missing", ["evaluate", "nope"])
    add("evaluate a file", ["evaluate", "spec.json"], inputs=["spec"])
    add("runs (control)", ["runs", "."], RUN, ["run"])
    add("runs missing", ["runs", "nope"])
    add("resume missing", ["resume", "nope"])
    add("resume a complete run", ["resume", "run"], inputs=["run"])
    add("export-nir (control)", ["export-nir", "run", "x.nir"], RUN, ["run"], "x.nir")
    add("export-nir missing", ["export-nir", "nope", "x.nir"])
    add(
        "import-nir (control)",
        ["import-nir", "net.nir", "--out", "imp", "--dataset", "digits"],
        RUN,
        ["nir"],
        "imp",
    )
    for name in ("garbage", "empty", "spec"):
        add(f"import-nir {name}", ["import-nir", f"{name}.json", "--out", "imp"], inputs=[name])
    for opt in ("--dt", "--n-steps"):
        for value in rng.sample(BAD_VALUES, 6):
            add(
                f"import-nir {opt} {value[:12]!r}",
                ["import-nir", "net.nir", "--out", "imp", f"{opt}={value}"],
                _expect(value),
                ["nir"],
                "imp",
            )
    base = ["--dataset", "digits", "--epochs", "1", "--out", "res"]
    for command, options in (
        (
            "compare",
            (
                "--algorithms",
                "--backends",
                "--seeds",
                "--epochs",
                "--workers",
                "--max-runs",
                "--memory-limit",
            ),
        ),
        ("sweep", ("--seeds", "--epochs", "--workers", "--max-runs", "--memory-limit", "--param")),
    ):
        for opt in options:
            for value in rng.sample(BAD_VALUES, 4):
                argv = [command, *base, f"{opt}={value}"]
                if command == "sweep" and opt != "--param":
                    argv += ["--param", "hidden=8"]
                add(f"{command} {opt} {value[:12]!r}", argv, _expect(value), output="res")
    for setting in (
        "hidden=-1",
        "hidden=1e9",
        "lr=abc",
        "lr=1e400",
        "epochs=0",
        "nonsense=1",
        "backend_options.x=1",
        "hidden=8,8,8",
        "hidden=",
        "=1",
        "hidden=8;lr=1",
    ):
        add(f"sweep --param {setting}", ["sweep", *base, "--param", setting], EITHER, output="res")
    for opt in (
        "--port",
        "--max-neurons",
        "--max-steps",
        "--max-epochs",
        "--max-workers",
        "--max-concurrent-runs",
        "--max-compare-runs",
    ):
        for value in ("-1", "abc", "1e400", "99999999999999999999"):
            add(f"app {opt} {value[:12]!r}", ["app", f"{opt}={value}"])
    add("unknown command", ["fly"])
    add("no command", [])
    return c


# ----------------------------------------------------------------------------------- spec cases

JSON_BAD = (
    None,
    True,
    False,
    "x",
    "",
    -1,
    0,
    1,
    -1.5,
    1e308,
    1e-320,
    10**30,
    10**9,
    2**63,
    [],
    {},
    [1, 2],
    {"a": 1},
    [[1]],
    "NaN",
)


def spec_cases(rng: random.Random, n: int) -> list[Case]:
    base = json.loads(feedforward([5, 12, 6, 3], name="mut", n_steps=20).to_json())
    cases = []
    for k in range(n):
        choice = rng.random()
        if choice < 0.80:
            data = json.loads(json.dumps(base))
            path = _mutate(rng, data)
            text = json.dumps(data, allow_nan=True)
            name = f"spec {k}: {path}"
        elif choice < 0.85:
            text = json.dumps(base)[: rng.randrange(1, len(json.dumps(base)))]
            name = f"spec {k}: truncated"
        elif choice < 0.90:
            text = json.dumps(base).replace("20", "9" * 5000, 1)
            name = f"spec {k}: 5000-digit number"
        elif choice < 0.93:
            depth = rng.choice((1000, 100_000))
            text = json.dumps({**base, "name": "DEEP"}).replace('"DEEP"', "[" * depth + "]" * depth)
            name = f"spec {k}: nested {depth} deep"
        elif choice < 0.95:
            text = json.dumps({**base, "padding": "x" * 12_000_000})
            name = f"spec {k}: 12 MB"
        else:
            data = json.loads(json.dumps(base))
            for _ in range(rng.randint(2, 5)):
                _mutate(rng, data)
            text = json.dumps(data, allow_nan=True)
            name = f"spec {k}: several mutations"
        cases.append(Case("spec", name, _spec_body(text)))
    return cases


def _mutate(rng: random.Random, data) -> str:
    """Change ``data`` in place at a random place; return where."""
    path, node = "", data
    while True:
        keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = rng.choice(keys)
        child = node[key]
        if isinstance(child, (dict, list)) and child and rng.random() < 0.7:
            path, node = f"{path}[{key!r}]", child
            continue
        action = rng.random()
        if action < 0.7:
            node[key] = rng.choice((*JSON_BAD, _scaled(rng, child)))
            return f"{path}[{key!r}] = {str(node[key])[:30]}"
        if action < 0.85 and isinstance(node, dict):
            del node[key]
            return f"del {path}[{key!r}]"
        if isinstance(node, dict):
            node[rng.choice(("extra", "size ", "Size", "__class__"))] = rng.choice(JSON_BAD)
            return f"{path} + unknown key"
        node.append(rng.choice(node))  # a duplicate (population, projection, row)
        return f"{path} + duplicate"
    return f"{path} (empty)"


def _scaled(rng: random.Random, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    factor = rng.choice((-1, 0, 1e-300, 1e3, 1e9, 1e300, math.inf, math.nan))
    out = value * factor
    return int(out) if isinstance(value, int) and math.isfinite(out) else out


def _spec_body(text: str) -> Callable[[Path], int]:
    def body(folder: Path) -> int:
        try:
            spec = NetworkSpec.from_json(text)
        except SpecError as exc:
            print(f"error: {exc}".splitlines()[0], file=sys.stderr)
            return 2
        network = build(spec, "float")
        with torch.no_grad():
            network(torch.zeros(spec.n_steps, 1, spec.input_size))
        return 0

    return body


# ------------------------------------------------------------------------------------ NIR cases


def nir_cases(rng: random.Random, n: int, fixtures: Fixtures) -> list[Case]:
    import h5py
    import numpy as np

    source = fixtures.files["nir"]
    with h5py.File(source, "r") as handle:
        datasets: list[str] = []
        handle.visititems(
            lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None
        )
    mutations = ("value", "scale", "nan", "type", "shape", "delete", "huge")
    cases = []
    for k in range(n):
        target, how = rng.choice(datasets), rng.choice(mutations)
        seed = rng.randrange(2**31)

        def body(folder: Path, target=target, how=how, seed=seed) -> int:
            path = folder / "net.nir"
            with h5py.File(path, "r+") as handle:
                _mutate_dataset(handle, target, how, np.random.default_rng(seed))
            return cli.main(["import-nir", str(path), "--out", "imp", "--dataset", "digits"])

        cases.append(Case("nir", f"nir {k}: {how} {target}", body, EITHER, ("nir",), "imp"))
    for k in range(n // 10):  # a whole node gone (its edges stay)
        seed = rng.randrange(2**31)

        def drop(folder: Path, seed=seed) -> int:
            path = folder / "net.nir"
            with h5py.File(path, "r+") as handle:
                nodes = handle["node/nodes"]
                del nodes[sorted(nodes)[random.Random(seed).randrange(len(nodes))]]
            return cli.main(["import-nir", str(path), "--out", "imp", "--dataset", "digits"])

        cases.append(Case("nir", f"nir drop {k}", drop, REFUSE, ("nir",), "imp"))
    return cases + _malformed_cases()


def _malformed_cases() -> list[Case]:
    """The suite's catalogue of malformed NIR files (tests/test_nir_validation.py), each of
    which must be refused."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tests" / "test_nir_validation.py"
    spec = importlib.util.spec_from_file_location("nir_catalogue", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def body(folder: Path) -> int:
        return cli.main(["import-nir", "bad.nir", "--out", "imp"])

    return [
        Case(
            "nir",
            f"malformed: {case.name}",
            body,
            REFUSE,
            setup=lambda folder, write=case.write: write(folder / "bad.nir"),
        )
        for case in module.MALFORMED
    ]


def _mutate_dataset(handle, name: str, how: str, rng) -> None:
    import numpy as np

    data = handle[name][()]
    del handle[name]
    if how == "delete":
        return
    if how == "type":
        handle[name] = np.bytes_("not a number")
    elif how == "huge":  # a compressed array whose declared size is 10^5 x 10^5 float32
        handle.create_dataset(
            name, shape=(100_000, 100_000), dtype="f4", compression="gzip", chunks=(1000, 1000)
        )
    elif isinstance(data, np.ndarray) and data.dtype.kind in "fiu":
        if how == "value":
            data = data.copy().astype(float)
            data.flat[rng.integers(data.size) if data.size else 0 :][:1] = (
                rng.choice((-1.0, 0.0, 1e38, -1e30, 1e-320)) if data.size else 0
            )
        elif how == "scale":
            data = data * rng.choice((-1.0, 0.0, 1e30, 1e300))
        elif how == "nan":
            data = np.full_like(data, np.nan, dtype=float)
        elif how == "shape":
            data = data.reshape(-1)[: max(0, data.size - 1)] if data.size else np.zeros((2, 3))
        handle[name] = data
    else:  # strings, scalars: swap for a number
        handle[name] = rng.choice((-1, 0, 10**12, 2.7))


# ----------------------------------------------------------------------------------- the table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", type=int, default=300, help="CLI cases")
    parser.add_argument("--spec", type=int, default=1000, help="spec mutations")
    parser.add_argument("--nir", type=int, default=100, help="NIR mutations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address space per case")
    parser.add_argument("--show", type=int, default=5, help="cases to print per bad column")
    parser.add_argument("--json", help="write every case's outcome here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="robust-fixtures-") as tmp:
        fixtures = make_fixtures(Path(tmp))
        families = (
            ("CLI", cli_cases(rng, args.cli)),
            ("spec JSON", spec_cases(rng, args.spec)),
            ("NIR", nir_cases(rng, args.nir, fixtures)),
        )
        for label, cases in families:
            start = time.monotonic()
            for case in tqdm(cases, desc=label, unit="case", mininterval=2.0):
                outcomes.append(run_case(case, fixtures, args.timeout, args.memory_mb))
            print(
                f"{label}: {len(cases)} cases in {time.monotonic() - start:.0f} s", file=sys.stderr
            )
    _print_table(outcomes, args.show)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {
                        "family": o.case.family,
                        "case": o.case.name,
                        "outcome": o.column,
                        "seconds": round(o.seconds, 3),
                        "detail": o.detail,
                    }
                    for o in outcomes
                ],
                indent=1,
            )
        )
    bad = sum(o.column not in COLUMNS[:2] for o in outcomes)
    return 1 if bad else 0


def _print_table(outcomes: list[Outcome], show: int) -> None:
    header = ["family", "tried", *COLUMNS, "slowest refusal s"]
    rows = []
    for family in ("cli", "spec", "nir"):
        mine = [o for o in outcomes if o.case.family == family]
        counts = Counter(o.column for o in mine)
        refusals = [o.seconds for o in mine if o.column == "clean refusal"]
        rows.append(
            [
                family,
                len(mine),
                *(counts[c] for c in COLUMNS),
                f"{max(refusals):.2f}" if refusals else "-",
            ]
        )
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    for column in COLUMNS[2:]:
        bad = [o for o in outcomes if o.column == column]
        for o in bad[:show]:
            print(f"{column}: [{o.case.family}] {o.case.name}: {o.detail}")
        if len(bad) > show:
            print(f"{column}: ... and {len(bad) - show} more")


if __name__ == "__main__":
    sys.exit(main())
