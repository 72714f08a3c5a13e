"""Property-based fuzzing of the entry points (Hypothesis): specs, run settings, command lines
and NIR graphs, generated and mutated.  Each must be either accepted and runnable (a tiny run
completes) or refused with ``SpecError`` / exit code 2 and one line naming a field; never
another exception, never a file left behind.

Profiles (tests/conftest.py): ``ci`` (the default in ``make test``) is derandomised, so CI
tries the same cases every time and the module takes about a minute; ``fuzz`` (``make fuzz``)
tries twenty times as many, randomly, for a deeper search.  A failure prints the smallest
input Hypothesis found; paste it into a unit test.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import cli
from workbench.backends import available_backends, build
from workbench.experiment import RunConfig, check_config
from workbench.limits import memory_limit, spec_estimate
from workbench.spec import NetworkSpec, SpecError, feedforward

SCALE = 20 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 1


def examples(n: int):
    return settings(
        max_examples=n * SCALE,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,  # capsys: read and emptied per example
        ],
    )


# ------------------------------------------------------------------------------- JSON values

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**9, 1e-320, 1e308, 0.5]),
    st.text(max_size=6),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)

BASE = json.loads(feedforward([5, 12, 3], name="fuzz", n_steps=20).to_json())


@st.composite
def mutated(draw, base: dict = BASE, at_most: int = 3):
    """``base`` with one to ``at_most`` values replaced, keys deleted or added, anywhere."""
    data = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, at_most))):
        node = data
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, (dict, list)) and child and draw(st.booleans()):
                node = child
                continue
            action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
            if action == "replace":
                node[key] = draw(json_values)
            elif action == "delete" and isinstance(node, dict):
                del node[key]
            elif isinstance(node, dict):
                node[draw(st.text(max_size=6))] = draw(json_values)
            else:
                node.append(draw(json_values))
            break
    return data


def runs_one_sample(spec: NetworkSpec) -> None:
    """An accepted spec runs: built on the float backend, one sample of zeros through it (or its
    memory estimate is over the machine's limit, which every run refuses before building)."""
    if spec_estimate(spec).total > memory_limit():
        return
    network = build(spec, "float")
    with torch.no_grad():
        network(torch.zeros(spec.n_steps, 1, spec.input_size))


# --------------------------------------------------------------------------------------- specs


@examples(150)
@given(mutated())
def test_a_mutated_spec_is_refused_by_field_or_runs(data):
    text = json.dumps(data, allow_nan=True)
    try:
        spec = NetworkSpec.from_json(text)
    except SpecError as exc:
        assert exc.problems and all(p.path for p in exc.problems), exc
        return
    runs_one_sample(spec)


@examples(60)
@given(json_values)
def test_any_json_is_refused_by_field_or_runs(data):
    try:
        spec = NetworkSpec.from_json(json.dumps(data, allow_nan=True))
    except SpecError as exc:
        assert exc.problems and all(p.path for p in exc.problems), exc
        return
    runs_one_sample(spec)


@examples(20)
@given(st.integers(1, 200_000), st.sampled_from("[{"))
def test_deep_nesting_is_refused_not_a_recursion_error(depth, opener):
    closer = {"[": "]", "{": "}"}[opener]
    inner = (
        opener * depth + closer * depth if opener == "[" else '{"a":' * depth + "1" + "}" * depth
    )
    with pytest.raises(SpecError):
        NetworkSpec.from_json(json.dumps(BASE).replace('"fuzz"', inner, 1))


# -------------------------------------------------------------------------------- run settings

CONFIG = RunConfig(dataset="digits", hidden=[8], n_steps=10, training={"epochs": 1}).to_dict()


@examples(100)
@given(mutated(CONFIG))
def test_mutated_run_settings_are_refused_by_field_or_accepted(data):
    try:
        config = check_config(RunConfig.from_dict(data))
    except SpecError as exc:
        assert exc.problems and all(p.path for p in exc.problems), exc
        return
    assert config.algorithm and config.backend in available_backends()


# ------------------------------------------------------------------------------- command lines

TINY = [
    "train",
    "--dataset",
    "digits",
    "--hidden",
    "8",
    "--epochs",
    "1",
    "--n-steps",
    "10",
    "--quiet",
    "--out",
    "out",
]
OPTIONS = [
    "--algorithm",
    "--backend",
    "--seed",
    "--hidden",
    "--neuron",
    "--encoder",
    "--epochs",
    "--batch-size",
    "--lr",
    "--surrogate",
    "--surrogate-scale",
    "--surrogate-cutoff",
    "--n-steps",
    "--dt",
    "--memory-limit",
    "--checkpoint-every",
    "--spec",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "-1",
            "0",
            "1e9",
            "1e400",
            "nan",
            "inf",
            "abc",
            "",
            "1,,2",
            "9" * 5000,
            "1e-320",
            "1" + "0" * 30,
            "2.5",
            "float",
            "eventprop",
            "loihi",
            "xylo",
        ]
    ),
    st.text(max_size=8),
    st.integers(-(10**12), 10**12).map(str),
    st.floats().map(repr),
)


def call(argv: list[str], capsys) -> tuple[int, list[str], list[str]]:
    """Run ``workbench ARGV`` in an empty folder: exit code, stderr lines, files left."""
    with tempfile.TemporaryDirectory() as folder:
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse's own refusals
                code = exc.code
            files = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))
        finally:
            os.chdir(cwd)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err, files


@examples(40)
@given(changes=st.lists(st.tuples(st.sampled_from(OPTIONS), VALUES), min_size=1, max_size=2))
def test_a_bad_command_line_exits_2_with_one_line_and_leaves_nothing(changes, capsys):
    argv = list(TINY)
    for option, value in changes:
        argv.append(f"{option}={value}")
    code, err, files = call(argv, capsys)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert len(err) == 1 and err[0].startswith("error:"), err
        assert files == [], files
    else:  # accepted: a complete run folder and nothing else
        assert files and all(f == "out" or f.startswith("out/") for f in files), files


# ---------------------------------------------------------------------------------- NIR graphs


@st.composite
def nir_graphs(draw):
    """A graph Input -> Affine -> CubaLIF -> Affine -> CubaLIF -> Output whose sizes and
    parameters are drawn freely (often inconsistent, sometimes extreme)."""
    import nir
    import numpy as np

    size = st.integers(0, 6)
    number = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=32),
        st.sampled_from([0.0, 1e-3, 0.02, 1.0, -1.0, 1e30, 1e38]),
    )
    n_in, n_hid, n_out = draw(size), draw(size), draw(size)

    def array(*shape):
        return np.array(
            draw(st.lists(number, min_size=math.prod(shape), max_size=math.prod(shape))),
            dtype=np.float32,
        ).reshape(shape)

    def lif(n):
        return nir.CubaLIF(
            tau_mem=array(n),
            tau_syn=array(n),
            r=array(n),
            v_leak=array(n),
            v_threshold=array(n),
            w_in=array(n),
        )

    rows = draw(st.sampled_from([n_hid, n_hid + 1]))
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "fc1": nir.Affine(weight=array(rows, n_in), bias=array(rows)),
        "lif1": lif(n_hid),
        "fc2": nir.Affine(weight=array(n_out, n_hid), bias=array(n_out)),
        "lif2": lif(n_out),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    names = list(nodes)
    edges = list(zip(names, names[1:]))
    if draw(st.booleans()):
        edges.append((draw(st.sampled_from(names)), draw(st.sampled_from(names))))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@examples(60)
@given(nir_graphs(), st.sampled_from([None, 1.0, 0.5]), st.sampled_from([None, 10, 2.7, 10**12]))
def test_a_nir_graph_is_refused_by_node_or_runs(graph, dt, n_steps):
    from workbench.nir_io import import_nir

    try:
        spec = import_nir(graph, dt=dt, n_steps=n_steps)
    except SpecError as exc:
        assert exc.problems and all(p.path for p in exc.problems), exc
        return
    runs_one_sample(spec)
