"""NIR validation (workbench.nir_io): every malformed graph or file is refused by field, naming
the node, before anything big is allocated; valid graphs at the bounds still import.

``MALFORMED`` (module level) lists the malformation classes as :class:`Malformed` cases:
``name``, ``write(path)`` (writes the malformed ``.nir`` file at ``path``), ``expect`` (text
the ``SpecError`` must hold: the node's field, e.g. ``nodes['cell'].tau_syn``) and, where the
``nir`` package can hold the malformation in memory, ``graph()`` (the same as a ``NIRGraph``).
A robustness script can take them from here: ``from tests.test_nir_validation import
MALFORMED`` (or import this file by path), then ``case.write(path)`` and run
``workbench import-nir path --out DIR``: exit 2, one line on stderr.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="NIR support needs the nir extra (pip install '.[nir]')")
h5py = pytest.importorskip("h5py")

from workbench import build, nir_io  # noqa: E402
from workbench.nir_io import export_nir, import_nir, read_nir, write_nir  # noqa: E402
from workbench.spec import NetworkSpec, Population, Projection, SpecError  # noqa: E402

DT_S = 5e-4  # the graphs' step (0.5 ms)
N_STEPS = 20


# ----------------------------------------------------------------------------- builders


def _cuba(n, tau_syn=5e-3, tau_mem=2e-2, metadata=None, **replace):
    """A CubaLIF of ``n`` neurons; ``replace``d parameters are set after NIR's own checks."""
    params = {
        "tau_syn": np.full(n, tau_syn),
        "tau_mem": np.full(n, tau_mem),
        "r": np.ones(n),
        "v_leak": np.zeros(n),
        "w_in": np.full(n, tau_syn / DT_S),
        "v_threshold": np.ones(n),
        "v_reset": np.zeros(n),
    }
    params.update(replace)
    node = nir.CubaLIF(
        **{k: np.ones(n) if k in replace else v for k, v in params.items()},
        metadata=metadata or {},
    )
    for key, value in replace.items():
        setattr(node, key, value)
    return node


def base(**nodes) -> nir.NIRGraph:
    """A valid graph: input (3) -> w (Linear) -> cell (CubaLIF, 2) -> output; ``nodes``
    replace or add nodes (edges stay those of the base unless the caller sets them)."""
    members = {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "w": nir.Linear(weight=np.ones((2, 3), dtype=np.float32)),
        "cell": _cuba(2),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    members.update(nodes)
    return nir.NIRGraph(
        nodes=members,
        edges=[("input", "w"), ("w", "cell"), ("cell", "output")],
        metadata={"dt": DT_S, "n_steps": N_STEPS, "integration": "exact"},
        type_check=False,
    )


def with_delay(seconds) -> nir.NIRGraph:
    graph = base(d=nir.Delay(delay=np.full(2, 2 * DT_S)))
    graph.nodes["d"].delay = np.asarray(seconds, dtype=np.float64)
    graph.edges = [("input", "w"), ("w", "d"), ("d", "cell"), ("cell", "output")]
    return graph


def with_metadata(**metadata) -> nir.NIRGraph:
    graph = base()
    graph.metadata.update(metadata)
    return graph


def diamonds(levels: int) -> nir.NIRGraph:
    """input -> w -> (a0 | b0) -> j0 -> (a1 | b1) -> j1 ... -> cell: 2^levels weight paths
    through Scale nodes."""
    graph = base()
    edges, last = [("input", "w")], "w"
    for k in range(levels):
        for branch in (f"a{k}", f"b{k}"):
            graph.nodes[branch] = nir.Scale(scale=np.full(2, 0.5))
            edges += [(last, branch), (branch, f"j{k}")]
        graph.nodes[f"j{k}"] = nir.Scale(scale=np.ones(2))
        last = f"j{k}"
    graph.edges = [*edges, (last, "cell"), ("cell", "output")]
    return graph


def nested(depth: int) -> nir.NIRGraph:
    """The base graph with its population inside ``depth`` nested graphs (built without
    recursion; each level is Input -> inner -> Output)."""
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "cell": _cuba(2),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "cell"), ("cell", "output")],
        type_check=False,
    )
    for _ in range(depth - 1):
        inner = nir.NIRGraph(
            nodes={
                "input": nir.Input(input_type={"input": np.array([2])}),
                "g": inner,
                "output": nir.Output(output_type={"output": np.array([2])}),
            },
            edges=[("input", "g"), ("g", "output")],
            type_check=False,
        )
    return base(cell=inner)


def chain(n_nodes: int) -> nir.NIRGraph:
    graph = base()
    names = [f"s{k}" for k in range(n_nodes)]
    for name in names:
        graph.nodes[name] = nir.Scale(scale=np.ones(2))
    order = ["input", "w", *names, "cell", "output"]
    graph.edges = list(zip(order[:-1], order[1:]))
    return graph


def _edges(graph, edges):
    graph.edges = edges
    return graph


def _drop(graph, key):
    del graph.nodes[key]
    graph.edges = [e for e in graph.edges if key not in e]
    return graph


# HDF5 patches: what NIR itself refuses to build or write, applied to a written base graph.


def _dataset(name, **create):
    def patch(f):
        del f[name]
        f.create_dataset(name, **create)

    return patch


def _big_weight(shape):
    """A weight that declares ``shape`` and stores nothing (a chunked, compressed dataset of
    zeros: a few kB on disk, ``prod(shape) * 4`` bytes once read)."""
    chunks = tuple(min(s, 1000) for s in shape)
    return _dataset(
        "node/nodes/w/weight", shape=shape, dtype="f4", chunks=chunks, compression="gzip"
    )


def _soft_link(f):
    del f["node/nodes/w/weight"]
    f["node/nodes/w/weight"] = h5py.SoftLink("/node/nodes/cell/tau_mem")


def _self_link(f):
    f["node/nodes/loop"] = f["node"]  # a hard link: the graph holds itself


def _nest_file(depth):
    """``depth`` nested NIRGraph groups written level by level (nir.write recurses)."""

    def patch(f):
        group = f["node/nodes"]
        for k in range(depth):
            node = group.create_group(f"g{k}")
            node.create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())
            node.create_dataset("edges", data=np.zeros(0))
            group = node.create_group("nodes")

    return patch


def _many_weights(count, shape):
    def patch(f):
        for k in range(count):
            node = f["node/nodes"].create_group(f"w{k}")
            node.create_dataset("type", data="Linear", dtype=h5py.string_dtype())
            node.create_dataset("weight", shape=shape, dtype="f4", chunks=True, compression="gzip")

    return patch


# ----------------------------------------------------------------------------- the cases


class Malformed(NamedTuple):
    """One malformation: ``write(path)`` writes it as a ``.nir`` file; the ``SpecError`` holds
    ``expect``; ``graph()`` builds it in memory where NIR can hold it (else ``None``)."""

    name: str
    write: Callable[[Path], None]
    expect: str
    graph: Callable[[], nir.NIRGraph] | None = None


def _graph_case(name, make, expect, patch=None) -> Malformed:
    """A malformed graph; ``patch`` writes the file's variant where nir.write cannot."""

    def write(path):
        nir.write(path, base() if patch else make())
        if patch:
            with h5py.File(path, "r+") as f:
                patch(f)

    return Malformed(name, write, expect, make)


def _file_case(name, patch, expect, make=base) -> Malformed:
    def write(path):
        nir.write(path, make())
        with h5py.File(path, "r+") as f:
            patch(f)

    return Malformed(name, write, expect)


NAN, INF = float("nan"), float("inf")

MALFORMED: list[Malformed] = [
    # node types
    _file_case(
        "unknown type string",
        _dataset("node/nodes/cell/type", data="Bogus", dtype=h5py.string_dtype()),
        "node 'cell' (Bogus): is not a NIR node type",
    ),
    _graph_case(
        "unsupported NIR type",
        lambda: base(cell=nir.I(r=np.ones(2))),
        "node 'cell' (I): is not supported here (supported: Input, Output, CubaLIF",
    ),
    _file_case(
        "type not a string",
        _dataset("node/nodes/cell/type", data=np.arange(3)),
        "nodes['cell'].type",
    ),
    _file_case(
        "missing parameter",
        lambda f: f.__delitem__("node/nodes/cell/tau_mem"),
        "nodes['cell'].tau_mem: node 'cell' (CubaLIF): tau_mem is missing",
    ),  # fmt: skip
    # time constants
    _graph_case("tau_syn 0", lambda: base(cell=_cuba(2, tau_syn=0.0)), "nodes['cell'].tau_syn"),
    _graph_case(
        "tau_mem negative", lambda: base(cell=_cuba(2, tau_mem=-0.02)), "nodes['cell'].tau_mem"
    ),  # fmt: skip
    _graph_case("tau_mem NaN", lambda: base(cell=_cuba(2, tau_mem=NAN)), "nodes['cell'].tau_mem"),
    _graph_case("tau_mem 1e9 s", lambda: base(cell=_cuba(2, tau_mem=1e9)), "nodes['cell'].tau_mem"),
    _graph_case(
        "tau_mem below dt",
        lambda: base(cell=_cuba(2, tau_mem=1e-4)),
        "nodes['cell'].population.params.tau_mem",
    ),
    # other parameters
    _graph_case(
        "threshold inf",
        lambda: base(cell=_cuba(2, v_threshold=np.full(2, INF))),
        "nodes['cell'].v_threshold",
    ),  # fmt: skip
    _graph_case(
        "threshold negative",
        lambda: base(cell=_cuba(2, v_threshold=np.full(2, -1.0))),
        "nodes['cell'].v_threshold",
    ),  # fmt: skip
    _graph_case("r 1e38", lambda: base(cell=_cuba(2, r=np.full(2, 1e38))), "nodes['cell'].r"),
    _graph_case(
        "v_leak NaN", lambda: base(cell=_cuba(2, v_leak=np.full(2, NAN))), "nodes['cell'].v_leak"
    ),  # fmt: skip
    _graph_case(
        "parameter of strings",
        lambda: base(cell=_cuba(2, v_reset=np.array(["a", "b"]))),
        "nodes['cell'].v_reset: node 'cell' (CubaLIF): v_reset is ",
        _dataset("node/nodes/cell/v_reset", data=np.array([b"a", b"b"])),
    ),
    _file_case(
        "parameters of different sizes",
        _dataset("node/nodes/cell/tau_mem", data=np.full(3, 0.02)),
        "node 'cell' (CubaLIF): its parameters have different sizes",
    ),
    _graph_case(
        "gain overflows the weights",
        lambda: base(
            w=nir.Linear(weight=np.full((2, 3), 1e10, dtype=np.float32)),
            cell=_cuba(2, w_in=np.full(2, 1e9)),
        ),
        "nodes['cell']: node 'cell' (CubaLIF): the weights from 'input' reach",
    ),
    # weights
    _graph_case(
        "weight 1e38",
        lambda: base(w=nir.Linear(weight=np.full((2, 3), 1e38, "f4"))),
        "nodes['w'].weight",
    ),  # fmt: skip
    _graph_case(
        "weight NaN",
        lambda: base(w=nir.Linear(weight=np.full((2, 3), NAN, "f4"))),
        "nodes['w'].weight",
    ),  # fmt: skip
    _file_case(
        "weight 1-D", _dataset("node/nodes/w/weight", data=np.ones(6)), "nodes['w'].weight"
    ),  # fmt: skip
    _file_case(
        "weight of strings",
        _dataset("node/nodes/w/weight", data=np.array([[b"x"] * 3] * 2)),
        "nodes['w'].weight",
    ),
    _file_case(
        "weight 3-D", _dataset("node/nodes/w/weight", data=np.ones((1, 2, 3))), "nodes['w'].weight"
    ),
    _graph_case(
        "weight does not fit its input",
        lambda: base(w=nir.Linear(weight=np.ones((2, 5), "f4"))),
        "the edge ('input', 'w')",
    ),  # fmt: skip
    _graph_case(
        "weight does not fit its target",
        lambda: base(w=nir.Linear(weight=np.ones((4, 3), "f4"))),
        "the edge ('w', 'cell')",
    ),  # fmt: skip
    _file_case(
        "compressed 1e5 x 1e5 weight",
        _big_weight((10**5, 10**5)),
        "nodes['w'].weight, 10,000,000,000",
    ),  # fmt: skip
    _file_case(
        "many compressed weights", _many_weights(4, (1500, 1500)), "at most 8,388,608 are read"
    ),  # fmt: skip
    _graph_case(
        "non-zero bias",
        lambda: base(w=nir.Affine(weight=np.ones((2, 3), "f4"), bias=np.ones(2))),
        "nodes['w']: node 'w' (Affine): a non-zero bias",
    ),
    _graph_case(
        "bias of the wrong size",
        lambda: base(w=nir.Affine(weight=np.ones((2, 3), "f4"), bias=np.zeros(5))),
        "nodes['w'].bias",
    ),
    # delays
    _graph_case("delay 1e30 s", lambda: with_delay(np.full(2, 1e30)), "nodes['d'].delay"),
    _graph_case("delay negative", lambda: with_delay(np.full(2, -DT_S)), "nodes['d'].delay"),
    _graph_case(
        "delay beyond the run",
        lambda: with_delay(np.full(2, (N_STEPS + 1) * DT_S)),
        "nodes['d'].delay",
    ),  # fmt: skip
    _graph_case(
        "delay not a whole step",
        lambda: with_delay(np.full(2, 1.5 * DT_S)),
        "node 'd' (Delay): delays",
    ),  # fmt: skip
    # structure
    _graph_case("no Output", lambda: _drop(base(), "output"), "0 Output nodes"),
    _graph_case(
        "two Inputs",
        lambda: base(extra=nir.Input(input_type={"input": np.array([3])})),
        "2 Input and 1 Output nodes",
    ),
    _graph_case(
        "edge to a missing node",
        lambda: _edges(base(), [("input", "w"), ("w", "ghost"), ("cell", "output")]),
        "edges[1]: the edge ('w', 'ghost') names 'ghost', not a node",
    ),  # fmt: skip
    _graph_case(
        "duplicate edge",
        lambda: _edges(base(), [("input", "w"), ("w", "cell"), ("w", "cell"), ("cell", "output")]),
        "edges[2]: the edge ('w', 'cell') occurs twice",
    ),  # fmt: skip
    _graph_case(
        "edge into the Input",
        lambda: _edges(base(), [*base().edges, ("cell", "input")]),
        "nodes['input']: node 'input' (Input): receives an edge",
    ),  # fmt: skip
    _graph_case(
        "edge out of the Output",
        lambda: _edges(base(), [*base().edges, ("output", "w")]),
        "nodes['output']: node 'output' (Output): sends an edge",
    ),  # fmt: skip
    _graph_case(
        "loop of weight nodes",
        lambda: _loop(),
        "node 's' (Scale): lies on a cycle of weight nodes without a neuron",
    ),
    _graph_case("2^30 weight paths", lambda: diamonds(30), "node 'input' (Input): starts"),
    _graph_case(
        "graph nested 600 deep",
        lambda: nested(600),
        "nests graphs more than 16 deep",
        _nest_file(600),  # nir.write recurses
    ),
    _file_case("file nested 600 deep", _nest_file(600), "nests graphs more than 16 deep"),
    _file_case("graph that holds itself", _self_link, "nests graphs more than 16 deep"),
    _graph_case("more than MAX_NODES nodes", lambda: chain(nir_io.MAX_NODES), "nodes"),
    _graph_case(
        "input of 1e9 values",
        lambda: base(input=nir.Input(input_type={"input": np.array([10**9])})),
        "nodes['input']: node 'input' (Input): its shape",
    ),
    _graph_case(
        "Output of the wrong size",
        lambda: base(output=nir.Output(output_type={"output": np.array([7])})),
        "the edge ('cell', 'output')",
    ),
    _file_case("soft link", _soft_link, "is a link"),
    _graph_case(
        "reset metadata unknown",
        lambda: base(cell=_cuba(2, metadata={"reset": "explode"})),
        "nodes['cell'].metadata.reset",
    ),
    # metadata
    _graph_case("n_steps 2.7", lambda: with_metadata(n_steps=2.7), "metadata.n_steps"),
    _graph_case("n_steps 10^12", lambda: with_metadata(n_steps=10**12), "metadata.n_steps"),
    _graph_case("n_steps 0", lambda: with_metadata(n_steps=0), "metadata.n_steps"),
    _graph_case("n_steps a string", lambda: with_metadata(n_steps="many"), "metadata.n_steps"),
    _graph_case("dt 0", lambda: with_metadata(dt=0.0), "metadata.dt"),
    _graph_case("dt NaN", lambda: with_metadata(dt=NAN), "metadata.dt"),
    _graph_case("dt 1e30 s", lambda: with_metadata(dt=1e30), "metadata.dt"),
    _graph_case("dt a string", lambda: with_metadata(dt="fast"), "metadata.dt"),
    _graph_case(
        "integration unknown", lambda: with_metadata(integration="rk4"), "metadata.integration"
    ),  # fmt: skip
    # not a NIR file
    Malformed(
        "not HDF5", lambda path: Path(path).write_text("not hdf5"), "not a readable NIR file"
    ),
    _file_case("no node group", lambda f: f.__delitem__("node"), "has no 'node' group"),
]


def _loop() -> nir.NIRGraph:
    graph = base(s=nir.Scale(scale=np.ones(2)), w2=nir.Linear(weight=np.eye(2, dtype="f4")))
    graph.edges = [
        ("input", "w"),
        ("w", "s"),
        ("s", "w2"),
        ("w2", "s"),
        ("s", "cell"),
        ("cell", "output"),
    ]
    return graph


IDS = [case.name for case in MALFORMED]


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", MALFORMED, ids=IDS)
def test_a_malformed_file_is_refused_naming_the_node(case, tmp_path):
    path = tmp_path / "bad.nir"
    case.write(path)
    with pytest.raises(SpecError) as caught:
        import_nir(path)
    assert case.expect in str(caught.value)


@pytest.mark.parametrize("case", [c for c in MALFORMED if c.graph], ids=lambda c: c.name)
def test_a_malformed_graph_is_refused_naming_the_node(case):
    with pytest.raises(SpecError) as caught:
        import_nir(case.graph())
    assert case.expect in str(caught.value)


@pytest.mark.parametrize("case", MALFORMED, ids=IDS)
def test_cli_refuses_a_malformed_file_in_one_line_quickly_and_small(case, tmp_path, capsys):
    """``workbench import-nir``: exit 2, one line on stderr, well within a second, and no big
    allocation (numpy's and h5py's arrays are traced by tracemalloc)."""
    from workbench.cli import main

    path = tmp_path / "bad.nir"
    case.write(path)
    argv = ["import-nir", str(path), "--out", str(tmp_path / "run")]
    capsys.readouterr()
    start = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert out == ""
    assert elapsed < 1.0, elapsed
    assert not (tmp_path / "run").exists()
    tracemalloc.start()  # again, tracing what Python and numpy allocate (h5py reads into numpy)
    try:
        assert main(argv) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak


def test_import_arguments_are_checked_like_the_metadata():
    graph = base()
    for kwargs, field in (
        ({"n_steps": 2.5}, "n_steps: 2.5 must be an integer from 1 to 100000"),
        ({"n_steps": 10**6}, "n_steps: 1000000 must be an integer"),
        ({"dt": 0.0}, "dt: 0.0 must be a time step from 0.001 to 1000 ms"),
        ({"dt": float("inf")}, "dt: inf must be a time step"),
        ({"graph_dt": "x"}, "graph_dt: 'x' must be a time step"),
        ({"integration": "rk4"}, "integration: 'rk4' must be one of"),
    ):
        with pytest.raises(SpecError, match=field):
            import_nir(graph, **kwargs)


def test_messages_stay_one_short_line_whatever_the_keys():
    key = "x\n" * 150  # a key of 300 characters with newlines
    graph = base(**{key: nir.Scale(scale=np.ones(2))})
    graph.edges = [("input", "w"), ("w", key), (key, "cell"), ("cell", "output")]
    with pytest.raises(SpecError) as caught:
        import_nir(graph)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400
    graph = base(cell=_cuba(2, tau_syn=0.0, tau_mem=-1.0, r=np.full(2, NAN)))
    graph.metadata["n_steps"] = "\n" * 10_000
    with pytest.raises(SpecError) as caught:
        import_nir(graph)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 1000


# ----------------------------------------------------------------------------- still valid


def test_valid_graphs_at_the_bounds_still_import(tmp_path):
    # one value per parameter (the size comes from the weight), integer weights, n_steps 20.0
    cell = nir.CubaLIF(
        tau_syn=np.array([5e-3]),
        tau_mem=np.array([2e-2]),
        r=np.array([1.0]),
        v_leak=np.array([0.0]),
        w_in=np.array([10.0]),
        v_threshold=np.array([1.0]),
        v_reset=np.array([0.0]),
    )
    graph = base(cell=cell, w=nir.Linear(weight=np.ones((2, 3), dtype=np.int64)))
    graph.metadata["n_steps"] = 20.0
    write_nir(graph, tmp_path / "scalars.nir")
    spec = import_nir(tmp_path / "scalars.nir")
    assert (spec.n_steps, spec.population("cell").size) == (20, 2)
    # a delay of the whole run, weights at the bound
    spec = import_nir(with_delay(np.full(2, N_STEPS * DT_S)), n_steps=N_STEPS + 1)
    assert spec.projections[0].delay == N_STEPS
    big = nir_io.MAX_MAGNITUDE / 1e3  # the spike's charge multiplies it by w_in dt / tau_syn = 1
    spec = import_nir(base(w=nir.Linear(weight=np.full((2, 3), big, "f4"))))
    assert spec.projections[0].weights[0][0] == pytest.approx(big, rel=1e-6)
    # nested graphs up to MAX_DEPTH levels, a few paths through diamonds
    spec = import_nir(nested(nir_io.MAX_DEPTH))
    assert spec.population_names == ["cell_" + "g_" * (nir_io.MAX_DEPTH - 1) + "cell"]
    spec = import_nir(diamonds(3))
    assert spec.projections[0].weights == [[1.0] * 3] * 2  # 8 paths of 1/8 each


def test_a_weight_at_the_size_bound_is_read(tmp_path):
    """A compressed weight of declared shape within the bounds is read (the file's size, not
    its declared one, is what disk and memory see)."""
    n = 1024
    graph = base(
        input=nir.Input(input_type={"input": np.array([n])}),
        w=nir.Linear(weight=np.full((2, n), 0.01, dtype=np.float32)),
    )
    write_nir(graph, tmp_path / "wide.nir")
    spec = import_nir(tmp_path / "wide.nir")
    assert spec.input_size == n


def test_read_nir_builds_the_graph_nir_would():
    """read_nir gives nodes, edges and metadata as nir.read does, for our own export."""
    import tempfile

    spec = NetworkSpec(
        4,
        [Population("hidden", 3, "lif", {"reset": "subtract"}), Population("out", 2, "li")],
        [Projection("input", "hidden", delay=2), Projection("hidden", "out")],
        dt=0.5,
        n_steps=20,
    )
    graph = export_nir(build(spec))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "g.nir"
        write_nir(graph, path)
        ours, theirs = read_nir(path), nir.read(path)
    assert list(ours.nodes) == list(theirs.nodes)
    assert sorted(ours.edges) == sorted(theirs.edges)
    assert ours.metadata == theirs.metadata
    for key, node in theirs.nodes.items():
        assert type(ours.nodes[key]) is type(node)
        for name, value in vars(node).items():
            if name in ("input_type", "output_type"):
                continue
            mine = getattr(ours.nodes[key], name)
            if isinstance(value, np.ndarray):
                assert np.array_equal(mine, value), (key, name)
            else:
                assert mine == value, (key, name)


# ----------------------------------------------------------------------------- export


def test_export_refuses_non_finite_or_huge_weights_by_projection():
    spec = NetworkSpec(
        3,
        [Population("hidden", 2, "lif"), Population("out", 2, "li")],
        [
            Projection("input", "hidden", weights=[[1.0] * 3] * 2),
            Projection("hidden", "out", weights=[[1.0, 2.0], [3.0, 4.0]]),
        ],
    )
    state = {
        "input__hidden": np.full((2, 3), np.nan, dtype=np.float32),
        "hidden__out": np.full((2, 2), 1e30, dtype=np.float32),
    }
    with pytest.raises(SpecError) as caught:
        export_nir(spec, state)
    message = str(caught.value)
    assert "projections[0].weights: 'input__hidden' (input -> hidden) holds nan" in message
    assert "projections[1].weights: 'hidden__out' (hidden -> out) holds 1e+30" in message
