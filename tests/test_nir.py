"""NIR (workbench.nir_io): exact round trips, snnTorch and Norse networks, refusals, the CLI."""

import json

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir", reason="NIR support needs the nir extra (pip install '.[nir]')")

from workbench import NetworkSpec, Population, Projection, build  # noqa: E402
from workbench.nir_io import export_nir, import_nir, read_nir, write_nir  # noqa: E402
from workbench.spec import SpecError  # noqa: E402


def random_spikes(n_steps, batch, n, p=0.3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n_steps, batch, n, generator=generator) < p).float()


def run(network, x):
    with torch.no_grad():
        return network(x, record=True).recordings


def assert_same_dynamics(original, imported, x):
    """Every population's spikes, membranes and currents, bit for bit; returns the spike count
    (so a test can insist that the comparison was not trivially about silence)."""
    a, b = run(original, x), run(imported, x)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys()
        for quantity in a[name]:
            assert torch.equal(a[name][quantity], b[name][quantity]), (name, quantity)
    return sum(r["spikes"].sum().item() for r in a.values() if "spikes" in r)


# ------------------------------------------------------------------------- round trips


def _spec(populations, projections, dt=0.5, n_steps=60, input_size=6):
    return NetworkSpec(input_size, populations, projections, dt=dt, n_steps=n_steps)


LIF = {"tau_mem": 20.0, "tau_syn": 5.0}
ROUND_TRIPS = {
    # reset to a non-zero v_reset, a resting potential, an li readout with its own v_leak
    "lif-zero-reset": _spec(
        [
            Population(
                "hidden", 9, "lif", {**LIF, "threshold": 0.8, "v_leak": 0.2, "v_reset": -0.1}
            ),
            Population("output", 3, "li", {"tau_mem": 10.0, "tau_syn": 3.0, "v_leak": -0.05}),
        ],
        [Projection("input", "hidden", weight_std=2.0), Projection("hidden", "output")],
    ),
    "lif-subtract-reset": _spec(
        [
            Population("hidden", 9, "lif", {**LIF, "reset": "subtract"}),
            Population("out", 3, "lif", {"tau_mem": 10.0, "tau_syn": 2.0, "reset": "subtract"}),
        ],
        [
            Projection("input", "hidden", weight_std=2.0),
            Projection("hidden", "out", weight_std=2.0),
        ],
    ),
    "if": _spec(
        [
            Population("a", 8, "if", {"threshold": 1.5}),  # subtract (the if default)
            Population("b", 5, "if", {"reset": "zero", "v_reset": 0.1}),
            Population("output", 3, "li"),
        ],
        [
            Projection("input", "a", weight_std=1.5),
            Projection("a", "b", weight_std=1.0),
            Projection("b", "output"),
        ],
    ),
    # self-recurrence with and without a delay, and a cycle between two populations
    "recurrent": _spec(
        [
            Population("a", 8, "lif", LIF),
            Population("b", 6, "lif", {**LIF, "reset": "subtract"}),
            Population("output", 3, "li"),
        ],
        [
            Projection("input", "a", weight_std=2.0),
            Projection("a", "a", recurrent=True, weight_std=0.5),
            Projection("a", "b", weight_std=2.0),
            Projection("b", "b", recurrent=True, delay=2, weight_std=0.5),
            Projection("b", "a", recurrent=True, weight_std=0.5),
            Projection("b", "output"),
        ],
    ),
    # a projection-wide delay and per-synapse delays (feed-forward and recurrent)
    "delays": _spec(
        [Population("hidden", 4, "lif", LIF), Population("output", 3, "lif", LIF)],
        [
            Projection("input", "hidden", delay=3, weight_std=2.0),
            Projection(
                "hidden",
                "hidden",
                recurrent=True,
                delay=[[0, 1, 2, 0], [1, 1, 0, 0], [4, 0, 0, 0], [0, 0, 0, 5]],
                weight_std=0.5,
            ),
            Projection("hidden", "output", delay=[[0, 1, 2, 3]] * 3, weight_std=2.0),
        ],
    ),
    # no synaptic current (tau_syn = 0: NIR's LIF and LI), zero and subtractive resets
    "delta-synapse": _spec(
        [
            Population(
                "hidden",
                9,
                "lif",
                {"tau_mem": 20.0, "tau_syn": 0.0, "threshold": 0.8, "v_leak": 0.2, "v_reset": -0.1},
            ),
            Population("mid", 7, "lif", {"tau_mem": 7.0, "tau_syn": 0.0, "reset": "subtract"}),
            Population("output", 3, "li", {"tau_mem": 10.0, "tau_syn": 0.0, "v_leak": -0.05}),
        ],
        [
            Projection("input", "hidden", weight_std=2.0),
            Projection("hidden", "mid", weight_std=2.0),
            Projection("mid", "output"),
        ],
    ),
    # dt and time constants that are not short decimals in seconds
    "odd-units": _spec(
        [
            Population("hidden", 7, "lif", {"tau_mem": 15.748677159793338, "tau_syn": 0.37}),
            Population("output", 2, "li", {"tau_mem": 3.7444378447093087, "tau_syn": 0.3}),
        ],
        [Projection("input", "hidden", weight_std=6.0), Projection("hidden", "output")],
        dt=0.1,
        n_steps=80,
    ),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_round_trip_through_a_file_reproduces_every_trace_exactly(case, tmp_path):
    """ours -> NIR -> .nir file -> NIR -> ours: the same spec values and weights, and the same
    spikes, membranes and currents bit for bit (``torch.equal``; the graph's nodes hold the
    ODEs, its metadata dt, n_steps and the integration)."""
    spec = ROUND_TRIPS[case]
    original = build(spec, seed=3)
    graph = export_nir(original)
    assert graph.metadata["integration"] == "exact" and graph.metadata["dt"] == spec.dt / 1000
    path = write_nir(graph, tmp_path / f"{case}.nir")
    imported_spec = import_nir(path)
    assert imported_spec.dt == spec.dt and imported_spec.n_steps == spec.n_steps
    for mine, theirs in zip(imported_spec.populations, spec.populations, strict=True):
        assert (mine.name, mine.model, mine.params.keys()) == (
            theirs.name,
            theirs.model,
            theirs.params.keys(),
        )
        for key, value in theirs.params.items():
            # times pass through seconds (ms / 1000): decimals such as 20.0 or 0.37 come back
            # exactly, other doubles within an ulp (15.748677159793338 -> ...337)
            if isinstance(value, float):
                value = pytest.approx(value, rel=2e-16, abs=0)
            assert mine.params[key] == value, key
    imported = build(imported_spec)
    for key, value in original.state_dict().items():
        assert torch.equal(imported.state_dict()[key], value), key
    x = random_spikes(spec.n_steps, 4, spec.input_size)
    assert assert_same_dynamics(original, imported, x) > 50


def test_round_trip_keeps_delays_and_recurrence_as_specified():
    spec = ROUND_TRIPS["recurrent"]
    back = import_nir(export_nir(build(spec, seed=1)))
    wanted = {(p.source, p.target): (p.recurrent, p.delay) for p in spec.projections}
    assert {(p.source, p.target): (p.recurrent, p.delay) for p in back.projections} == wanted
    spec = ROUND_TRIPS["delays"]
    back = import_nir(export_nir(build(spec, seed=1)))
    wanted = {(p.source, p.target): (p.recurrent, p.delay) for p in spec.projections}
    assert {(p.source, p.target): (p.recurrent, p.delay) for p in back.projections} == wanted


def test_an_alif_without_adaptation_exports_as_the_lif_it_is():
    params = {**LIF, "tau_adapt": 100.0, "adapt_strength": 0.0}
    spec = _spec(
        [Population("hidden", 8, "alif", params), Population("output", 3, "li")],
        [Projection("input", "hidden", weight_std=2.0), Projection("hidden", "output")],
    )
    original = build(spec, seed=0)
    back = import_nir(export_nir(original))
    assert back.populations[0].model == "lif"
    x = random_spikes(spec.n_steps, 4, spec.input_size)
    assert assert_same_dynamics(original, build(back), x) > 50


def test_export_takes_a_spec_with_a_state_dict_or_its_own_weights():
    spec = ROUND_TRIPS["lif-zero-reset"]
    network = build(spec, seed=2)
    from_module = export_nir(network)
    from_state = export_nir(spec, network.state_dict())
    with_weights = NetworkSpec.from_dict(spec.to_dict())
    for proj in with_weights.projections:
        proj.weights = network.weights[f"{proj.source}__{proj.target}"].tolist()
    from_spec = export_nir(with_weights)
    for graph in (from_state, from_spec):
        for key, node in from_module.nodes.items():
            if isinstance(node, nir.Linear):
                assert np.array_equal(graph.nodes[key].weight, node.weight)
    with pytest.raises(SpecError, match="lack 'input__hidden'"):
        export_nir(spec)


# ------------------------------------------------------------------------- Scale, Threshold


def _cuba(n, dt_ms, tau_syn=5.0, tau_mem=20.0, spiking=True):
    common = {
        "tau_syn": np.full(n, tau_syn / 1000),
        "tau_mem": np.full(n, tau_mem / 1000),
        "r": np.ones(n),
        "v_leak": np.zeros(n),
        "w_in": np.full(n, tau_syn / dt_ms),
    }
    if not spiking:
        return nir.CubaLI(**common)
    return nir.CubaLIF(**common, v_threshold=np.ones(n), v_reset=np.zeros(n))


def test_scale_threshold_and_delay_fold_into_projections():
    """Input -> Threshold -> Scale -> Linear -> Delay -> CubaLIF -> Linear -> Scale -> CubaLI:
    the same network as a spec with the scales folded into the weights ([target, source]:
    a Scale before a Linear scales its columns, after it its rows) and the delay in steps."""
    dt, rng = 0.5, np.random.default_rng(0)
    s1, s2 = rng.uniform(0.5, 2.0, 4), rng.uniform(0.5, 2.0, 3)
    w1 = rng.normal(0.0, 1.5, (6, 4)).astype(np.float32)
    w2 = rng.normal(0.0, 1.0, (3, 6)).astype(np.float32)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([4])}),
        "thr": nir.Threshold(threshold=np.full(4, 0.5)),
        "scale1": nir.Scale(scale=s1),
        "w1": nir.Linear(weight=w1),
        "delay": nir.Delay(delay=np.full(6, 2 * dt / 1000)),
        "lif": _cuba(6, dt),
        "w2": nir.Linear(weight=w2),
        "scale2": nir.Scale(scale=s2),
        "li": _cuba(3, dt, spiking=False),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    order = list(nodes)
    graph = nir.NIRGraph(
        nodes=nodes,
        edges=list(zip(order[:-1], order[1:])),
        metadata={"dt": dt / 1000, "n_steps": 50, "integration": "exact"},
    )
    imported = import_nir(graph)
    expected = _spec(
        [
            Population("lif", 6, "lif", {"tau_mem": 20.0, "tau_syn": 5.0}),
            Population("li", 3, "li", {"tau_mem": 20.0, "tau_syn": 5.0}),
        ],
        [
            Projection("input", "lif", delay=2, weights=(w1 * s1[None, :]).tolist()),
            Projection("lif", "li", weights=(s2[:, None] * w2).tolist()),
        ],
        n_steps=50,
        input_size=4,
    )
    assert [(p.source, p.target, p.delay) for p in imported.projections] == [
        ("input", "lif", 2),
        ("lif", "li", 0),
    ]
    x = random_spikes(50, 4, 4, p=0.4)
    assert assert_same_dynamics(build(expected), build(imported), x) > 0


# ------------------------------------------------------------------------- snnTorch, Norse


def trained_snntorch(layer, n_in, n_hidden, n_out, n_steps, gains=(1.0, 1.0)):
    """snnTorch's Linear -> ``layer(n_hidden)`` -> Linear -> ``layer(n_out)`` (initial weights
    times ``gains``), trained for 5 Adam steps on random spikes, and ``simulate(x)``: its spikes
    and membranes per layer (``s1``, ``v1``, ``s2``, ``v2``, each ``[T, batch, n]``)."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = torch.nn.Linear(n_in, n_hidden, bias=False), layer(n_hidden)
            self.fc2, self.lif2 = torch.nn.Linear(n_hidden, n_out, bias=False), layer(n_out)

        def forward(self, x):
            spikes = self.lif1(self.fc1(x))[0]
            return self.lif2(self.fc2(spikes))

    net = Net()
    with torch.no_grad():
        net.fc1.weight.mul_(gains[0])
        net.fc2.weight.mul_(gains[1])

    def simulate(x):
        net.lif1.reset_mem()
        net.lif2.reset_mem()
        trace = {"s1": [], "v1": [], "s2": [], "v2": []}
        for t in range(x.shape[0]):
            first = net.lif1(net.fc1(x[t]))  # (spikes, [current,] membrane)
            second = net.lif2(net.fc2(first[0]))
            for key, value in zip(trace, (first[0], first[-1], second[0], second[-1])):
                trace[key].append(value)
        return {key: torch.stack(value) for key, value in trace.items()}

    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for step in range(5):
        trace = simulate(random_spikes(n_steps, 8, n_in, seed=step))
        loss = ((trace["v2"].mean(0) - 0.5) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net, simulate


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated")
def test_a_trained_snntorch_network_runs_the_same_here():
    """snnTorch: Linear -> Synaptic -> Linear -> Synaptic (reset to zero, ``reset_delay=False``:
    the reset NIR's CubaLIF has), trained for a few Adam steps, ``export_to_nir``, imported
    with forward-Euler matching at snnTorch's step (0.1 ms).

    Tolerance and why: snnTorch adds this step's current to the membrane in the same step, our
    exact step from the next one, so each CubaLIF layer here runs one step later: the hidden
    layer's traces equal snnTorch's shifted by one step, the output's by two.  Spikes are equal
    exactly; membranes to float32 rounding (``rtol = atol = 1e-5``; measured max abs error
    ~1e-5 on membranes up to ~26, i.e. ~4e-7 relative): our propagator multiplies the current
    by ``p`` and the weights by ``1 / p`` where snnTorch multiplies by 1, and snnTorch's
    float32 export rounds ``r`` and ``w_in`` (9.999997, 5.0000005) -- the dynamics are the
    same, the rounding is not.
    """
    snn = pytest.importorskip("snntorch", reason="snnTorch is not installed")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    n_in, n_hidden, n_out, n_steps = 5, 12, 3, 60

    def synaptic(n):  # per-neuron tensors: nirtorch's type inference needs the layer's size
        return snn.Synaptic(
            alpha=torch.full((n,), 0.8),
            beta=torch.full((n,), 0.9),
            threshold=torch.ones(n),
            reset_mechanism="zero",
            reset_delay=False,
            init_hidden=True,
            output=True,
        )

    net, simulate = trained_snntorch(synaptic, n_in, n_hidden, n_out, n_steps)

    spec = import_nir(export_to_nir(net, torch.zeros(n_in)), dt=0.1, n_steps=n_steps)
    assert [(p.name, p.model) for p in spec.populations] == [("lif1", "lif"), ("lif2", "lif")]
    ours = build(spec)
    x = random_spikes(n_steps, 16, n_in, seed=99)
    with torch.no_grad():
        theirs = simulate(x)
    mine = run(ours, x)
    assert theirs["s1"].sum() > 100 and theirs["s2"].sum() > 100
    assert torch.equal(mine["lif1"]["spikes"][1:], theirs["s1"][:-1])
    assert torch.equal(mine["lif2"]["spikes"][2:], theirs["s2"][:-2])
    torch.testing.assert_close(mine["lif1"]["v"][1:], theirs["v1"][:-1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine["lif2"]["v"][2:], theirs["v2"][:-2], rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated")
def test_a_trained_norse_network_runs_the_same_here():
    """Norse: SequentialState(Linear, LIFCell, Linear, IAFCell), trained for a few Adam steps,
    ``to_nir``, imported with forward-Euler matching at Norse's step (1 ms).

    Norse 1.1.0's exporter writes parameters that do not describe the cells it simulated, so
    the test corrects them in the graph first (this is what NIR's ODEs of those cells are):
    ``tau = dt / tau_inv`` instead of ``1 / tau_inv`` (norse/norse#411), no ``w_in`` for the
    LIFCell, whose current jumps by its input unscaled (``w_in = tau_syn / dt``), no ``v_reset``
    (so 0), and ``r = 1`` for the IAFCell, whose membrane jumps by its input (``r = 1 / dt``).
    The LIFCell has a resting potential, threshold and reset potential of its own, which carry
    over unchanged.

    Tolerance and why: Norse's LIFCell adds the input to its current and that current to the
    membrane in the same step, our exact step from the next one: the LIF layer (and the IF
    layer it feeds, which adds its input in the same step in both) runs one step later here.
    Spikes are equal exactly, membranes to float32 rounding (``rtol = atol = 1e-5``; measured
    max abs error ~5e-7 on membranes up to ~1.7): Norse computes ``v + dt/tau (v_leak - v + i)``,
    we ``beta v + p i`` with the weights scaled by ``dt / tau_mem / p``.
    """
    norse = pytest.importorskip("norse.torch", reason="Norse is not installed")
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(0)
    n_in, n_hidden, n_out, n_steps, dt = 5, 12, 3, 60, 1e-3
    leak, reset = torch.tensor(0.3), torch.tensor(-0.2)
    model = norse.SequentialState(
        torch.nn.Linear(n_in, n_hidden, bias=False),
        norse.LIFCell(norse.LIFParameters(v_leak=leak, v_th=torch.tensor(0.9), v_reset=reset)),
        torch.nn.Linear(n_hidden, n_out, bias=False),
        norse.IAFCell(),
    )

    def simulate(x):
        s1_state = s2_state = None
        trace = {"s1": [], "v1": [], "s2": [], "v2": []}
        for t in range(x.shape[0]):
            s1, s1_state = model[1](model[0](x[t]), s1_state)
            s2, s2_state = model[3](model[2](s1), s2_state)
            for key, value in zip(trace, (s1, s1_state.v, s2, s2_state.v)):
                trace[key].append(value)
        return {key: torch.stack(value) for key, value in trace.items()}

    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(5):
        trace = simulate(random_spikes(n_steps, 8, n_in, seed=step))
        loss = ((trace["v1"].mean(0) - 0.5) ** 2).mean() + ((trace["s2"].mean(0) - 0.2) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    graph = to_nir(model, torch.zeros(1, n_in))
    for node in graph.nodes.values():
        if isinstance(node, nir.CubaLIF):
            node.tau_syn = np.asarray(node.tau_syn) / dt
            node.tau_mem = np.asarray(node.tau_mem) / dt
            node.w_in = node.tau_syn / dt
            node.v_reset = np.full_like(node.w_in, reset.item())
        elif isinstance(node, nir.IF):
            node.r = np.asarray(node.r) / dt
    spec = import_nir(graph, dt=1.0, n_steps=n_steps)
    assert [p.model for p in spec.populations] == ["lif", "if"]
    hidden, out = spec.population_names
    ours = build(spec)
    x = random_spikes(n_steps, 16, n_in, seed=99)
    with torch.no_grad():
        theirs = simulate(x)
    mine = run(ours, x)
    assert theirs["s1"].sum() > 50 and theirs["s2"].sum() > 5
    assert torch.equal(mine[hidden]["spikes"][1:], theirs["s1"][:-1])
    assert torch.equal(mine[out]["spikes"][1:], theirs["s2"][:-1])
    torch.testing.assert_close(mine[hidden]["v"][1:], theirs["v1"][:-1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine[out]["v"][1:], theirs["v2"][:-1], rtol=1e-5, atol=1e-5)


def test_delta_synapse_populations_export_as_nir_lif_and_li():
    graph = export_nir(build(ROUND_TRIPS["delta-synapse"], seed=3))
    kinds = {key: type(node).__name__ for key, node in graph.nodes.items()}
    assert (kinds["hidden"], kinds["mid"], kinds["output"]) == ("LIF", "LIF", "LI")
    assert graph.nodes["mid"].metadata == {"reset": "subtract"}
    # a spike of weight w moves V by r dt / tau w = w
    hidden = graph.nodes["hidden"]
    assert np.allclose(hidden.r * 5e-4 / hidden.tau, 1.0, rtol=1e-15, atol=0)


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated")
def test_a_trained_snntorch_leaky_network_runs_the_same_here():
    """snnTorch: Linear -> Leaky -> Linear -> Leaky (reset to zero, ``reset_delay=False``: the
    reset NIR's LIF has), trained for a few Adam steps, ``export_to_nir`` (NIR ``LIF`` nodes:
    no synaptic current), imported with forward-Euler matching at snnTorch's step (0.1 ms) as
    ``lif`` populations with ``tau_syn = 0``.

    Tolerance and why: snnTorch's Leaky adds this step's input to the membrane in the same
    step (``mem = beta mem + x``), our delta synapse in the next, so each layer here runs one
    step later: the hidden layer's traces equal snnTorch's shifted by one step, the output's
    by two.  Spikes are equal exactly; membranes to float32 rounding (``rtol = atol = 1e-5``;
    measured max abs error 0, i.e. bit-equal, on membranes up to ~12.5): the decay ``beta``
    goes through ``tau = dt / (1 - beta)`` in float32 and back through ``exp(-dt / tau_ours)``
    in float64 and the weight gain ``r dt / tau`` is 1 only to within that rounding (it rounds
    back to beta's float32 and to exactly 1 here; the tolerance allows an ulp elsewhere).
    """
    snn = pytest.importorskip("snntorch", reason="snnTorch is not installed")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    n_in, n_hidden, n_out, n_steps = 5, 12, 3, 60

    def leaky(n):  # per-neuron tensors: nirtorch's type inference needs the layer's size
        return snn.Leaky(
            beta=torch.full((n,), 0.9),
            threshold=torch.ones(n),
            reset_mechanism="zero",
            reset_delay=False,
            init_hidden=True,
            output=True,
        )

    # strong enough weights that both layers spike often
    net, simulate = trained_snntorch(leaky, n_in, n_hidden, n_out, n_steps, gains=(2.0, 3.0))

    spec = import_nir(export_to_nir(net, torch.zeros(n_in)), dt=0.1, n_steps=n_steps)
    assert [(p.name, p.model, p.params["tau_syn"]) for p in spec.populations] == [
        ("lif1", "lif", 0.0),
        ("lif2", "lif", 0.0),
    ]
    ours = build(spec)
    x = random_spikes(n_steps, 16, n_in, seed=99)
    with torch.no_grad():
        theirs = simulate(x)
    mine = run(ours, x)
    assert theirs["s1"].sum() > 100 and theirs["s2"].sum() > 50
    assert torch.equal(mine["lif1"]["spikes"][1:], theirs["s1"][:-1])
    assert torch.equal(mine["lif2"]["spikes"][2:], theirs["s2"][:-2])
    torch.testing.assert_close(mine["lif1"]["v"][1:], theirs["v1"][:-1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine["lif2"]["v"][2:], theirs["v2"][:-2], rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated")
def test_a_trained_norse_box_network_runs_the_same_here():
    """Norse: SequentialState(Linear, LIFBoxCell, Linear, LIBoxCell) (no synaptic currents),
    trained for a few Adam steps, ``to_nir`` (NIR ``LIF`` and ``LI``), imported with
    forward-Euler matching at Norse's step (1 ms) as ``lif``/``li`` with ``tau_syn = 0``.

    Norse 1.1.0 writes ``tau = dt / tau_inv`` instead of ``1 / tau_inv`` (norse/norse#411); the
    test corrects it in the graph.  Its ``r = 1`` is right for these cells (``v += dt tau_inv
    (v_leak - v + x)``, NIR's LIF/LI under Euler), as is the omitted ``v_reset`` (0, Norse's
    default); the resting potential and threshold carry over unchanged.

    Tolerance and why: Norse adds a step's input to the membrane in that step, our delta
    synapse in the next, so each layer runs one step later here (hidden by one, readout by
    two).  Spikes are equal exactly, membranes to float32 rounding (``rtol = atol = 1e-5``;
    measured max abs error 7e-7 on hidden membranes up to ~2.8, 1.2e-7 on the readout's up
    to ~0.38): Norse computes
    ``v + dt/tau (v_leak - v + x)``, we ``v_leak + beta (v - v_leak) + x dt/tau``.
    """
    norse = pytest.importorskip("norse.torch", reason="Norse is not installed")
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(0)
    n_in, n_hidden, n_out, n_steps, dt = 5, 12, 3, 60, 1e-3
    model = norse.SequentialState(
        torch.nn.Linear(n_in, n_hidden, bias=False),
        norse.LIFBoxCell(
            norse.LIFBoxParameters(
                tau_mem_inv=torch.tensor(200.0),
                v_leak=torch.tensor(0.1),
                v_th=torch.tensor(0.5),
            )
        ),
        torch.nn.Linear(n_hidden, n_out, bias=False),
        norse.LIBoxCell(norse.LIBoxParameters(tau_mem_inv=torch.tensor(100.0))),
    )
    with torch.no_grad():  # strong enough input that the hidden layer spikes often
        model[0].weight.mul_(4.0)

    def simulate(x):
        s1_state = s2_state = None
        trace = {"s1": [], "v1": [], "v2": []}
        for t in range(x.shape[0]):
            s1, s1_state = model[1](model[0](x[t]), s1_state)
            v2, s2_state = model[3](model[2](s1), s2_state)
            for key, value in zip(trace, (s1, s1_state.v, v2)):
                trace[key].append(value)
        return {key: torch.stack(value) for key, value in trace.items()}

    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(5):
        trace = simulate(random_spikes(n_steps, 8, n_in, seed=step))
        loss = ((trace["v2"].mean(0) - 0.5) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    graph = to_nir(model, torch.zeros(1, n_in))
    for node in graph.nodes.values():
        if isinstance(node, (nir.LIF, nir.LI)):
            node.tau = np.asarray(node.tau) / dt
    spec = import_nir(graph, dt=1.0, n_steps=n_steps)
    assert [(p.model, p.params["tau_syn"]) for p in spec.populations] == [
        ("lif", 0.0),
        ("li", 0.0),
    ]
    hidden, out = spec.population_names
    ours = build(spec)
    x = random_spikes(n_steps, 16, n_in, seed=99)
    with torch.no_grad():
        theirs = simulate(x)
    mine = run(ours, x)
    assert theirs["s1"].sum() > 50
    assert torch.equal(mine[hidden]["spikes"][1:], theirs["s1"][:-1])
    torch.testing.assert_close(mine[hidden]["v"][1:], theirs["v1"][:-1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine[out]["v"][2:], theirs["v2"][:-2], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------- refusals


def _graph(nodes, edges, **metadata):
    return nir.NIRGraph(
        nodes=nodes,
        edges=edges,
        metadata={"dt": 5e-4, "n_steps": 20, "integration": "exact", **metadata},
        type_check=False,
    )


def test_unsupported_nodes_are_refused_by_key_and_type():
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "conv": nir.Conv2d(
            input_shape=(4, 4),
            weight=np.zeros((2, 1, 3, 3)),
            stride=1,
            padding=0,
            dilation=1,
            groups=1,
            bias=np.zeros(2),
        ),
        "leaky": nir.LIF(
            tau=np.full(8, 0.01), r=np.ones(8), v_leak=np.zeros(8), v_threshold=np.ones(8)
        ),
        "output": nir.Output(output_type={"output": np.array([8])}),
    }
    edges = [("input", "conv"), ("conv", "leaky"), ("leaky", "output")]
    with pytest.raises(SpecError) as caught:
        import_nir(_graph(nodes, edges))
    message = str(caught.value)
    assert "node 'conv' (Conv2d): is not supported here" in message
    assert "'leaky'" not in message  # a LIF (no synaptic current) is a lif with tau_syn = 0


def _small_graph(**replace):
    nodes = {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "w": nir.Linear(weight=np.ones((2, 3), dtype=np.float32)),
        "cell": _cuba(2, 0.5),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    nodes.update(replace)
    return _graph(nodes, [("input", "w"), ("w", "cell"), ("cell", "output")])


def test_what_a_population_cannot_hold_is_refused_by_node():
    biased = nir.Affine(weight=np.ones((2, 3), dtype=np.float32), bias=np.array([0.0, 0.1]))
    with pytest.raises(SpecError, match=r"node 'w' \(Affine\): a non-zero bias"):
        import_nir(_small_graph(w=biased))
    zero_bias = nir.Affine(weight=np.ones((2, 3), dtype=np.float32), bias=np.zeros(2))
    assert import_nir(_small_graph(w=zero_bias)).projections[0].weights == [[1.0] * 3] * 2
    mixed = _cuba(2, 0.5)
    mixed.tau_mem = np.array([0.02, 0.03])
    with pytest.raises(SpecError, match=r"node 'cell' \(CubaLIF\): tau_mem differs"):
        import_nir(_small_graph(cell=mixed))
    late = nir.Threshold(threshold=np.full(2, 0.5))
    graph = _small_graph(thr=late)
    graph.edges = [("input", "w"), ("w", "thr"), ("thr", "cell"), ("cell", "output")]
    with pytest.raises(SpecError, match=r"node 'thr' \(Threshold\): a stateless threshold"):
        import_nir(graph)
    with pytest.raises(SpecError, match="does not record its time step"):
        import_nir(nir.NIRGraph(nodes=_small_graph().nodes, edges=_small_graph().edges))


def test_a_zero_delay_cycle_becomes_recurrent_with_a_warning():
    graph = _small_graph(rec=nir.Linear(weight=np.eye(2, dtype=np.float32)))
    graph.edges += [("cell", "rec"), ("rec", "cell")]
    with pytest.warns(UserWarning, match="closes a cycle without a delay"):
        spec = import_nir(graph)
    assert [(p.source, p.target, p.recurrent) for p in spec.projections] == [
        ("input", "cell", False),
        ("cell", "cell", True),
    ]


def test_a_nested_recurrent_subgraph_is_flattened():
    """snnTorch's exporter writes RSynaptic as a nested graph (Input -> CubaLIF <-> Linear,
    CubaLIF -> Output); spliced into the outer graph it is a self-recurrent population."""
    w_rec = np.full((2, 2), 0.25, dtype=np.float32)
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "lif": _cuba(2, 0.5),
            "w_rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    graph = _small_graph(cell=inner)
    with pytest.warns(UserWarning, match="cell_lif->cell_lif closes a cycle"):
        spec = import_nir(graph)
    assert spec.population_names == ["cell_lif"]
    assert [(p.source, p.target, p.recurrent, p.weights) for p in spec.projections] == [
        ("input", "cell_lif", False, [[1.0] * 3] * 2),
        ("cell_lif", "cell_lif", True, w_rec.tolist()),
    ]


def test_export_refuses_what_nir_cannot_express():
    adaptive = _spec(
        [Population("hidden", 4, "alif", {"refractory_steps": 2}), Population("output", 2, "li")],
        [Projection("input", "hidden"), Projection("hidden", "output")],
    )
    with pytest.raises(SpecError) as caught:
        export_nir(build(adaptive))
    message = str(caught.value)
    assert "populations[0].model: 'hidden' is an alif: NIR 1.0 has no adaptation current" in message
    assert "populations[0].params.refractory_steps: 2" in message


# ------------------------------------------------------------------------- CLI


def test_cli_export_then_import_gives_the_runs_accuracy(tmp_path, capsys):
    """A trained Yin-Yang run folder -> export-nir -> import-nir -> evaluate: the same metrics
    (losses to the last digit), with the dataset named at import or at evaluation."""
    from workbench.cli import main

    def cli(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    trained = tmp_path / "yy"
    code, _, err = cli(
        "train", "--dataset", "yinyang", "--epochs", 1, "--hidden", 16, "--batch-size", 250,
        "--lr", 0.05, "--quiet", "--out", trained,
    )  # fmt: skip
    assert code == 0, err
    stored = json.loads((trained / "metrics.json").read_text())
    code, out, err = cli("export-nir", trained, tmp_path / "yy.nir")
    assert code == 0, err
    assert json.loads(out)["nodes"] == 6  # input, hidden, output, two Linear, Output
    assert read_nir(tmp_path / "yy.nir").metadata["n_steps"] == 100

    code, out, err = cli(
        "import-nir", tmp_path / "yy.nir", "--out", tmp_path / "a", "--dataset", "yinyang"
    )
    assert code == 0, err
    assert json.loads(out)["test_accuracy"] == stored["test_accuracy"]
    code, out, err = cli("evaluate", tmp_path / "a")
    assert code == 0, err
    again = json.loads(out)
    for key in ("test_accuracy", "val_accuracy", "test_loss", "val_loss", "test_confusion"):
        assert again[key] == stored[key], key

    code, out, err = cli("import-nir", tmp_path / "yy.nir", "--out", tmp_path / "b")
    assert code == 0, err
    assert {p.name for p in (tmp_path / "b").iterdir()} == {
        "spec.json", "config.json", "metrics.json", "weights.safetensors", "manifest.json"
    }  # fmt: skip
    code, _, err = cli("evaluate", tmp_path / "b")
    assert code == 2 and "was imported without a dataset" in err
    code, out, err = cli("evaluate", tmp_path / "b", "--dataset", "yinyang")
    assert code == 0, err
    assert json.loads(out)["test_accuracy"] == stored["test_accuracy"]


def test_cli_import_refusals_are_one_line(tmp_path, capsys):
    from workbench.cli import main

    graph = _small_graph(w=nir.Affine(weight=np.ones((2, 3)), bias=np.ones(2)))
    write_nir(graph, tmp_path / "biased.nir")
    assert main(["import-nir", str(tmp_path / "biased.nir"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: nodes['w']: node 'w' (Affine): a non-zero bias")
        and err.count("\n") == 1
    )
    assert not (tmp_path / "r").exists()
    (tmp_path / "junk.nir").write_text("not hdf5")
    assert main(["import-nir", str(tmp_path / "junk.nir"), "--out", str(tmp_path / "r")]) == 2
    assert "is not a readable NIR file" in capsys.readouterr().err
