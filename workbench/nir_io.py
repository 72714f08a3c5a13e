"""NIR: networks to and from the Neuromorphic Intermediate Representation (``.nir`` files).

NIR (Pedersen et al. 2024, https://neuroir.org, the ``nir`` package, an optional extra:
``pip install 'snn-workbench[nir]'``) describes a network as a graph of continuous-time
primitives: weight nodes (``Linear``, ``Affine``, ``Scale``), ``Delay`` and neurons (``CubaLIF``,
``CubaLI``, ``LIF``, ``LI``, ``IF``, ...), each defined by an ODE; snnTorch, Norse and other
simulators and chips' toolchains read or write it.

- :func:`export_nir` turns a float-backend network (a spec and its trained weights) into a
  ``nir.NIRGraph``; :func:`export_run` does it for a run folder.
- :func:`import_nir` turns a graph (or a ``.nir`` file) into a :class:`NetworkSpec` whose
  projections carry the weights (``Projection.weights``), ready for ``build(spec)``;
  :func:`imported_run` makes a run folder's :class:`~workbench.experiment.Run` of it.
- :func:`read_nir` / :func:`write_nir`: the HDF5 files (``nir.read`` / ``nir.write``; writes are
  atomic).

Conversion
----------

Units: NIR's times are seconds, ours milliseconds (``tau_ms = 1000 tau_s``, rounded back to
the shortest decimal that gives the same seconds, so ``20.0`` ms survives a round trip as
``20.0``).  Our ODEs are NIR's with ``R = 1`` (our current ``I`` is NIR's ``R I``)::

    tau_syn dI/dt = -I + w_in S                  (NIR CubaLIF/CubaLI; R = 1 here)
    tau_mem dV/dt = v_leak - V + R I
    tau dV/dt = v_leak - V + R S                 (NIR LIF/LI: our tau_syn = 0, no current)
    dV/dt = R I                                  (NIR IF)

**Spikes.** NIR does not say how much charge a spike carries. The simulators that write it
(snnTorch, Norse) and their NIR importers integrate ``S`` as the value 1 held for one step, i.e.
each spike adds ``dt w_in / tau_syn`` to ``I`` (``R dt`` to an IF's ``V``, ``R dt / tau`` to a
LIF's or LI's ``V``) per unit weight. We read and write graphs with that convention, ``dt``
being the step of the graph (``graph_dt``: the one in its metadata, else the ``dt`` given to
:func:`import_nir`). Our simulator delivers a spike's charge at once (an exact jump, see
:mod:`workbench.neurons`), so these factors go into the weights:

===============  ========================================  ====================================
ours             NIR (export)                              import (``integration="exact"``)
===============  ========================================  ====================================
``lif``          ``CubaLIF``: ``tau_mem``, ``tau_syn``     ``tau = 1000 tau_nir``; incoming
                 ``/ 1000``, ``r = 1``, ``w_in = tau_syn   weights ``x R w_in graph_dt /
                 / dt``, ``v_leak``, ``v_threshold =       tau_syn`` per target neuron;
                 threshold``, ``v_reset``                  thresholds and potentials as they are
``li``           ``CubaLI``: as ``lif``, no threshold      as ``lif``
``lif``,         ``LIF``: ``tau = tau_mem / 1000``,        ``LIF``: ``lif`` with ``tau_syn = 0``
``tau_syn = 0``  ``r = tau_mem / dt`` (a spike of weight   (``tau_mem = 1000 tau``); incoming
                 w moves V by ``r dt / tau w = w``),       weights ``x R graph_dt / tau`` per
                 ``v_leak``, ``v_threshold``, ``v_reset``  target neuron (the same jump in
                                                           both integrations)
``li``,          ``LI``: as above, no threshold            ``LI``: ``li`` with ``tau_syn = 0``,
``tau_syn = 0``                                            as ``LIF``
``if``           ``IF``: ``r = 1 / dt`` (1/s),             weights ``x R graph_dt`` (s);
                 ``v_threshold``, ``v_reset``              the same in both integrations
projection       ``Linear`` (weights ``[target, source]``  ``Linear``; ``Affine`` with a zero
                 unchanged)                                bias; ``Scale`` folded into the
                                                           weights
delay (steps)    ``Delay`` of ``steps dt`` seconds after   ``round(delay / dt)`` (must be a
                 the ``Linear``; a per-synapse matrix      whole number of steps); parallel
                 becomes one ``Linear -> Delay`` branch    branches between two populations
                 per distinct delay                        merge into one projection
``recurrent``    a cycle in the graph; its projection's    a cycle is broken at a projection
                 ``Delay`` holds the extra step it         with a delay >= 1 step, which
                 carries (``(delay + 1) dt``)              becomes recurrent with one step less
``reset``        ``"zero"``: ``v_reset``; ``"subtract"``:  node metadata ``reset`` if present,
                 node metadata ``{"reset": "subtract"}``   else reset to ``v_reset``
``dt``,          graph metadata ``dt`` (s), ``n_steps``,   the defaults of ``dt`` and
``n_steps``      ``name``, ``integration = "exact"``       ``n_steps``
===============  ========================================  ====================================

``refractory_steps > 0`` and ``alif`` (with ``adapt_strength > 0``) are refused: NIR 1.0 has
no refractory period and no adaptation current (an ``alif`` with ``adapt_strength = 0`` is a
``lif`` and is written as one).  NIR 1.0.x resets to ``v_reset`` only (the subtractive reset of
NIR's older docstrings was replaced by ``v_reset``); a subtractive reset is therefore written as
node metadata, which other tools ignore (they reset to ``v_reset``; snnTorch's own exporter
likewise writes ``v_reset = 0`` for its default subtractive reset).  NIR spikes when
``v > v_threshold``, we when ``V >= threshold``: the two differ only when ``V`` lands exactly on
the threshold.

**Discretisation.**  NIR gives ODEs; we integrate them exactly over each step (propagators,
Rotter & Diesmann 1999).  A graph we write says ``integration = "exact"``, and reading it back
gives the same network: same spikes, membranes and currents to the last bit
(``tests/test_nir.py``).  snnTorch and Norse integrate with forward Euler at their own step
(snnTorch writes graphs for ``dt = 1e-4`` s, Norse for ``1e-3`` s; neither records it), so for a
graph without our metadata ``integration`` defaults to ``"euler"``, which makes our discrete
dynamics theirs where that is possible:

- decays: ``tau_ours = -graph_dt / ln(1 - graph_dt / tau_nir)``, i.e.
  ``exp(-graph_dt / tau_ours) = 1 - graph_dt / tau_nir`` (needs ``tau_nir > graph_dt``, and
  ``tau_ours > dt`` for our step, i.e. ``tau_nir > 1.58 graph_dt`` at ``dt = graph_dt``);
- current gain: Euler moves ``V`` by ``R graph_dt / tau_mem`` times the current per step, our
  propagator by ``p = tau_syn / (tau_syn - tau_mem) (alpha - beta)``: incoming weights are
  scaled by their ratio (``R graph_dt / tau_mem / p``) on top of the spike's charge
  ``w_in graph_dt / tau_syn``;
- ``v_leak``, thresholds and reset potentials carry over unchanged; IF is exact either way;
- ``LIF``/``LI`` (no synaptic current): ``tau`` converts as a decay above; a spike's jump of
  ``V`` is ``R graph_dt / tau_nir`` per unit weight in both integrations (Euler:
  ``V += graph_dt / tau (v_leak - V + R x)`` with ``x = w`` for one step; exact: ``S`` as a
  delta of area ``graph_dt``, the charge convention above, which jumps ``V`` by the same).

What cannot be made equal: snnTorch's ``Synaptic`` and Norse's ``LIFCell`` update the current
first and add it to ``V`` in the same step, while our exact step lets a current that jumps at
step ``t`` move ``V`` from step ``t + 1`` (``V`` is continuous; a jump at ``t dt`` cannot move
``V(t dt)``).  The same holds without a current: snnTorch's ``Leaky`` and Norse's
``LIFBoxCell``/``LIBoxCell`` add a step's input to ``V`` in that step, our ``tau_syn = 0``
populations in the next.  So every ``CubaLIF``/``CubaLI``/``LIF``/``LI`` layer runs one step
later here than there: a
network whose output lies ``k`` such layers from the input reproduces theirs shifted by ``k``
steps (the last ``k`` steps of theirs fall outside our ``n_steps``), values equal up to float32
rounding (relative ~1e-6; a spike could differ only where a membrane lies that close to the
threshold).
An IF adds its input in the same step in all three (no shift).  A cycle without a ``Delay``
(snnTorch's ``RSynaptic``) becomes a recurrent projection, which here carries the previous
step's spikes, one step more than the NIR graph (or snnTorch) takes; a warning says so.

Known deviations of the exporters (not corrected here, see ``tests/test_nir.py``): Norse 1.1.0
writes ``tau = dt / tau_inv`` instead of ``1 / tau_inv`` (norse/norse#411), no ``w_in`` for a
``LIFCell`` (whose current jumps by the input unscaled: ``w_in = tau_syn / dt`` in NIR's terms)
and no ``v_reset`` (so 0), and ``r = 1`` for an ``IAFCell`` (``r = 1 / dt``); snnTorch's
``Synaptic`` with ``reset_mechanism="zero"`` and the default ``reset_delay=True`` also zeroes the
synaptic current a step after each spike, which NIR's ``CubaLIF`` does not
(``reset_delay=False`` matches).

Not representable here, refused by node key and type: an ``Affine`` with a non-zero bias (a
constant input current), a ``Threshold`` anywhere but directly on spikes (where a threshold in
``[0, 1)`` passes them through), parameters that differ between the neurons of one node (a
population has one value each; ``r`` and ``w_in`` may differ, they go into the weights), and
every other node type (convolutions, pooling, ``Flatten``, ``I``, ...).  Nested ``NIRGraph``
nodes are flattened.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from workbench.neurons import propagators
from workbench.spec import INPUT, NetworkSpec, Population, Problem, Projection, SpecError

INTEGRATIONS = ("exact", "euler")
PRODUCER = "snn-workbench"
_UNIT_TOLERANCE = 1e-12  # a gain this close to 1 is 1 (rounding of the unit conversions)


def _nir():
    try:
        import nir
    except ImportError:  # pragma: no cover - the extra is part of the test environment
        raise SpecError(
            [Problem("nir", "needs the nir package: pip install 'snn-workbench[nir]'")]
        ) from None
    return nir


# ------------------------------------------------------------------------------------- files


def read_nir(path: str | os.PathLike):
    """The ``nir.NIRGraph`` in the ``.nir`` (HDF5) file ``path``."""
    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise SpecError([Problem("file", f"{str(path)!r} is not a file")])
    try:
        return nir.read(path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise SpecError(
            [Problem("file", f"{str(path)!r} is not a readable NIR file ({exc})")]
        ) from None


def write_nir(graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to ``path`` (``nir.write``, HDF5) atomically: a temporary file beside it
    is renamed into place when complete."""
    nir = _nir()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    try:
        nir.write(tmp, graph)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a .nir file is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------------ export


def export_nir(source, weights=None):
    """The ``nir.NIRGraph`` of a float-backend network (see the module's conversion table).

    ``source`` is a built network (``FloatNetwork``, or any module with ``.spec`` whose state
    dict holds the float backend's weights) or a :class:`NetworkSpec`; ``weights`` is then a
    state dict (keys ``source__target`` or ``weights.source__target``, ``[target, source]``), a
    network, or ``None`` for the spec's own ``Projection.weights``.  Chip emulators' effects
    (quantisation, noise) are not part of the graph: it holds the float weights.
    """
    nir = _nir()
    spec, state = _spec_and_weights(source, weights)
    problems = _export_problems(spec)
    if problems:
        raise SpecError(problems)
    dt = spec.dt
    nodes = {INPUT: nir.Input(input_type=np.array([spec.input_size]))}
    for pop in spec.populations:
        nodes[pop.name] = _neuron_node(nir, pop, dt)
    edges = []
    for proj in spec.projections:
        key = f"{proj.source}__{proj.target}"
        w = state[key]
        steps = np.asarray(proj.delay, dtype=np.int64) + int(proj.recurrent)
        n_target = spec.size_of(proj.target)
        if steps.ndim == 0:
            branches = [(key, int(steps), w)]
        else:  # one Linear (-> Delay) branch per distinct delay; they sum at the target
            branches = [
                (f"{key}__d{k}", int(k), np.where(steps == k, w, np.zeros_like(w)))
                for k in np.unique(steps)
            ]
        for name, k, weight in branches:
            nodes[name] = nir.Linear(weight=weight)
            edges.append((proj.source, name))
            if k:
                delay = f"{name}__delay"
                nodes[delay] = nir.Delay(delay=np.full(n_target, k * dt / 1000.0))
                edges += [(name, delay), (delay, proj.target)]
            else:
                edges.append((name, proj.target))
    # The Output node's key: "output", unless a population has that name ("__" never occurs in
    # a population's name, nor at the end of a projection's key).
    out_key = "output" if "output" not in spec.population_names else "output__"
    nodes[out_key] = nir.Output(output_type=np.array([spec.size_of(spec.output_name)]))
    edges.append((spec.output_name, out_key))
    from workbench import __version__

    metadata = {
        "producer": PRODUCER,
        "workbench_version": __version__,
        "dt": dt / 1000.0,  # seconds, as every time in NIR
        "n_steps": int(spec.n_steps),
        "name": spec.name,
        "integration": "exact",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def export_run(run_dir: str | os.PathLike):
    """:func:`export_nir` of a run folder's network (its manifest is checked first; no dataset
    is loaded)."""
    from safetensors.torch import load_file

    from workbench.store import read_manifest

    path = Path(run_dir)
    manifest = read_manifest(path)
    spec = NetworkSpec.from_json((path / "spec.json").read_text())
    if manifest["spec_hash"] != spec.digest():
        raise SpecError(
            [Problem("run", f"{str(path)!r}: spec.json does not match the run's spec_hash")]
        )
    return export_nir(spec, load_file(path / "weights.safetensors"))


def _spec_and_weights(source, weights) -> tuple[NetworkSpec, dict[str, np.ndarray]]:
    if isinstance(source, NetworkSpec):
        spec = source
    elif isinstance(getattr(source, "spec", None), NetworkSpec):
        spec = source.spec
        weights = source if weights is None else weights
    else:
        raise TypeError(
            f"export_nir: {type(source).__name__} is neither a NetworkSpec nor a network"
        )
    spec.validate()
    if isinstance(weights, torch.nn.Module):
        weights = weights.state_dict()
    state = {}
    problems = []
    for k, proj in enumerate(spec.projections):
        key = f"{proj.source}__{proj.target}"
        if weights is None:
            value = proj.weights
        else:
            value = weights.get(key, weights.get(f"weights.{key}"))
        shape = (spec.size_of(proj.target), spec.size_of(proj.source))
        if value is None:
            where = "the spec's weights" if weights is None else "the weights"
            problems.append(Problem(f"projections[{k}].weights", f"{where} lack {key!r}"))
            continue
        if torch.is_tensor(value):
            value = value.detach().cpu().numpy()
        value = np.array(value, dtype=np.float32 if weights is None else None)
        if value.shape != shape:
            problems.append(
                Problem(
                    f"projections[{k}].weights",
                    f"{key!r} is {'x'.join(map(str, value.shape))}; the spec needs "
                    f"{shape[0]}x{shape[1]} ([target, source])",
                )
            )
        state[key] = value
    if problems:
        raise SpecError(problems)
    return spec, state


def _export_problems(spec: NetworkSpec) -> list[Problem]:
    problems = []
    for k, pop in enumerate(spec.populations):
        path = f"populations[{k}]"
        if pop.model == "alif" and pop.params["adapt_strength"] != 0:
            problems.append(
                Problem(
                    f"{path}.model",
                    f"{pop.name!r} is an alif: NIR 1.0 has no adaptation current (the AHP "
                    "current that each spike adds and tau_adapt decays is a second current "
                    "into the membrane, which CubaLIF's single synaptic current cannot hold); "
                    "an alif with adapt_strength 0 is a lif and exports as one",
                )
            )
        if pop.params.get("refractory_steps", 0):
            problems.append(
                Problem(
                    f"{path}.params.refractory_steps",
                    f"{pop.params['refractory_steps']} for {pop.name!r}: NIR 1.0 has no "
                    "refractory period; 0 exports",
                )
            )
    return problems


def _neuron_node(nir, pop: Population, dt: float):
    p, n = pop.params, pop.size

    def full(x):
        return np.full(n, float(x))

    meta = {"reset": "subtract"} if p.get("reset") == "subtract" else {}
    if pop.model == "if":
        return nir.IF(
            r=full(1000.0 / dt),  # 1/s: a spike of weight w moves V by r dt w = w
            v_threshold=full(p["threshold"]),
            v_reset=full(p["v_reset"]),
            metadata=meta,
        )
    cuba = {
        "tau_syn": full(p["tau_syn"] / 1000.0),
        "tau_mem": full(p["tau_mem"] / 1000.0),
        "r": full(1.0),
        "v_leak": full(p["v_leak"]),
        "w_in": full(p["tau_syn"] / dt),  # a spike of weight w makes I jump by w
    }
    if p["tau_syn"] == 0:  # no synaptic current: NIR's LIF / LI
        plain = {
            "tau": full(p["tau_mem"] / 1000.0),
            "r": full(p["tau_mem"] / dt),  # a spike of weight w moves V by r dt / tau w = w
            "v_leak": full(p["v_leak"]),
        }
        if pop.model == "li":
            return nir.LI(**plain)
        return nir.LIF(
            **plain, v_threshold=full(p["threshold"]), v_reset=full(p["v_reset"]), metadata=meta
        )
    if pop.model == "li":
        return nir.CubaLI(**cuba)
    return nir.CubaLIF(
        **cuba, v_threshold=full(p["threshold"]), v_reset=full(p["v_reset"]), metadata=meta
    )


# ------------------------------------------------------------------------------------ import

_NEURONS = ("CubaLIF", "CubaLI", "LIF", "LI", "IF")
_SYNAPTIC = ("Linear", "Affine", "Scale", "Delay", "Threshold")


_SUPPORTED = ", ".join(("Input", "Output", *_NEURONS, *_SYNAPTIC, "NIRGraph"))


class _Pass:
    """A flattened subgraph's Input or Output: passes its signal on unchanged."""


def import_nir(
    graph,
    dt: float | None = None,
    n_steps: int | None = None,
    *,
    integration: str | None = None,
    graph_dt: float | None = None,
    name: str | None = None,
) -> NetworkSpec:
    """A :class:`NetworkSpec` (weights in ``Projection.weights``) from a NIR graph or file.

    ``dt`` (ms) is the step to simulate at, by default the graph's metadata ``dt``;
    ``n_steps`` likewise.  ``graph_dt`` (ms) is the step the graph was written for (its
    metadata ``dt``, else ``dt``): the charge of a spike, and for ``integration="euler"`` the
    step whose forward-Euler dynamics are reproduced.  ``integration`` says how the graph's
    producer integrated its ODEs: ``"exact"`` (ours; the default for graphs we wrote) or
    ``"euler"`` (snnTorch, Norse; the default otherwise).  See the module's docstring for every
    conversion and what is refused.
    """
    nir = _nir()
    if isinstance(graph, (str, os.PathLike)):
        graph = read_nir(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise SpecError([Problem("graph", f"a {type(graph).__name__} is not a NIRGraph")])
    meta = dict(graph.metadata or {})
    meta_dt = _ms(float(meta["dt"])) if "dt" in meta else None
    dt = dt if dt is not None else meta_dt
    if dt is None:
        raise SpecError(
            [
                Problem(
                    "dt",
                    "the graph does not record its time step; give dt in ms (snnTorch writes "
                    "graphs for 0.1 ms, Norse for 1 ms)",
                )
            ]
        )
    graph_dt = graph_dt if graph_dt is not None else (meta_dt if meta_dt is not None else dt)
    if n_steps is None:
        if "n_steps" not in meta:
            raise SpecError(
                [Problem("n_steps", "the graph does not record a number of steps; give n_steps")]
            )
        n_steps = int(meta["n_steps"])
    if integration is None:
        integration = str(meta.get("integration", "euler"))
    if integration not in INTEGRATIONS:
        raise SpecError(
            [Problem("integration", f"{integration!r} must be one of {list(INTEGRATIONS)}")]
        )
    for label, value in (("dt", dt), ("graph_dt", graph_dt)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise SpecError([Problem(label, f"{value!r} must be a finite number > 0 (ms)")])
    nodes, edges = _flatten(nir, graph)
    return _Importer(nir, nodes, edges, float(dt), float(graph_dt), integration).spec(
        n_steps, name or str(meta.get("name", "imported"))
    )


def _flatten(nir, graph, prefix: str = ""):
    """Nodes and edges with every nested ``NIRGraph`` spliced in (its keys ``OUTER.INNER``; its
    Input and Output become pass-through nodes)."""
    nodes, edges, rename_in, rename_out = {}, [], {}, {}
    for key, node in graph.nodes.items():
        full = f"{prefix}{key}"
        if isinstance(node, nir.NIRGraph):
            inner, inner_edges = _flatten(nir, node, f"{full}.")
            ins = [k for k, n in node.nodes.items() if isinstance(n, nir.Input)]
            outs = [k for k, n in node.nodes.items() if isinstance(n, nir.Output)]
            if len(ins) != 1 or len(outs) != 1:
                raise SpecError(
                    [
                        Problem(
                            f"nodes.{full}",
                            f"node {full!r} (NIRGraph) has {len(ins)} Input and {len(outs)} "
                            "Output nodes; a nested graph needs one of each",
                        )
                    ]
                )
            for k in (ins[0], outs[0]):
                inner[f"{full}.{k}"] = _Pass()
            rename_in[full], rename_out[full] = f"{full}.{ins[0]}", f"{full}.{outs[0]}"
            nodes.update(inner)
            edges += inner_edges
        else:
            nodes[full] = node
    for a, b in graph.edges:
        a, b = f"{prefix}{a}", f"{prefix}{b}"
        edges.append((rename_out.get(a, a), rename_in.get(b, b)))
    return nodes, edges


def _array(x) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _ms(seconds: float) -> float:
    """``seconds`` in ms: the shortest decimal whose value / 1000 is ``seconds`` (so a time we
    wrote as ``ms / 1000`` comes back as the same ``ms``), else ``seconds * 1000``."""
    y = seconds * 1000.0
    candidates, low, high = [y], y, y
    for _ in range(4):
        low, high = math.nextafter(low, -math.inf), math.nextafter(high, math.inf)
        candidates += [low, high]
    exact = [c for c in candidates if c / 1000.0 == seconds]
    if not exact:
        return y
    return min(exact, key=lambda c: (len(repr(c)), abs(c - y)))


def _unit(g: np.ndarray) -> np.ndarray:
    """Gains within rounding of 1 become exactly 1."""
    return np.where(np.abs(g - 1.0) <= _UNIT_TOLERANCE, 1.0, g)


class _Importer:
    """The conversion of one flattened graph (see :func:`import_nir`)."""

    def __init__(self, nir, nodes, edges, dt, graph_dt, integration):
        self.nir, self.nodes, self.edges = nir, nodes, edges
        self.dt, self.graph_dt, self.integration = dt, graph_dt, integration
        self.succ = {key: [] for key in nodes}
        self.pred = {key: [] for key in nodes}
        for a, b in edges:
            for end in (a, b):
                if end not in nodes:
                    raise SpecError(
                        [Problem("edges", f"the edge ({a!r}, {b!r}) names {end!r}, not a node")]
                    )
            self.succ[a].append(b)
            self.pred[b].append(a)

    # ----------------------------------------------------------------------------- checks
    def _kind(self, key) -> str:
        node = self.nodes[key]
        if isinstance(node, _Pass):
            return "pass"
        return type(node).__name__

    def _problem(self, key, message) -> SpecError:
        return SpecError([Problem(f"nodes.{key}", f"node {key!r} ({self._kind(key)}): {message}")])

    def _check_kinds(self) -> None:
        problems = []
        for key in self.nodes:
            kind = self._kind(key)
            if kind in _NEURONS or kind in _SYNAPTIC or kind in ("Input", "Output", "pass"):
                continue
            why = f"is not supported here (supported: {_SUPPORTED})"
            problems.append(Problem(f"nodes.{key}", f"node {key!r} ({kind}): {why}"))
        if problems:
            raise SpecError(problems)

    # ----------------------------------------------------------------------------- paths
    def _step(self, key, M, D, spikes):
        """Apply synaptic node ``key`` to a path's weights ``M`` and delays ``D`` ([current,
        source]); ``spikes``: the path still carries the source's spikes unchanged."""
        node, kind = self.nodes[key], self._kind(key)
        if kind == "pass":
            return M, D, spikes
        if kind in ("Linear", "Affine"):
            W = _array(node.weight)
            if W.ndim != 2 or W.shape[1] != M.shape[0]:
                raise self._problem(
                    key,
                    f"weight of shape {tuple(W.shape)} does not take the {M.shape[0]} values "
                    "that reach it (a [out, in] matrix is needed)",
                )
            if kind == "Affine" and np.any(_array(node.bias) != 0):
                raise self._problem(
                    key,
                    "a non-zero bias is a constant input current, which populations here do "
                    "not have; zero it (or export the layer without a bias)",
                )
            delays = np.zeros(M.shape[1], dtype=np.int64)
            for j in range(M.shape[1]):
                used = np.unique(D[M[:, j] != 0, j])
                if len(used) > 1:
                    raise self._problem(
                        key,
                        "sums signals that reach it from one source neuron with different "
                        f"delays ({sorted(used.tolist())} steps); one synapse has one delay",
                    )
                delays[j] = used[0] if len(used) else 0
            M = W @ M
            return M, np.broadcast_to(delays, M.shape).copy(), False
        if kind == "Scale":
            s = np.broadcast_to(_array(node.scale).reshape(-1), (M.shape[0],))
            return s[:, None] * M, D, False
        if kind == "Delay":
            seconds = np.broadcast_to(_array(node.delay).reshape(-1), (M.shape[0],))
            steps = seconds * 1000.0 / self.dt
            whole = np.round(steps)
            if np.any(np.abs(steps - whole) > 1e-6 * np.maximum(1.0, whole)) or np.any(whole < 0):
                raise self._problem(
                    key,
                    f"delays {sorted(set(seconds.tolist()))} s are not whole multiples of "
                    f"dt = {self.dt:g} ms",
                )
            return M, D + whole.astype(np.int64)[:, None], spikes
        if kind == "Threshold":
            thresholds = _array(node.threshold)
            if spikes and len(self.pred[key]) == 1 and np.all((thresholds >= 0) & (thresholds < 1)):
                return M, D, spikes  # spikes (0 or 1) pass a threshold in [0, 1) unchanged
            raise self._problem(
                key,
                "a stateless threshold unit has no counterpart here; only a Threshold in "
                "[0, 1) applied directly to spikes (where it passes them through) is read",
            )
        raise self._problem(key, "is not a synaptic node")  # pragma: no cover

    def _paths(self, start: str, size: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Every path from ``start`` (the input or a population) through synaptic nodes to a
        population or the Output: ``(end, weights [end, start], delays in steps)``."""
        out = []
        M0 = np.eye(size)
        D0 = np.zeros((size, size), dtype=np.int64)
        stack = [(nxt, M0, D0, (start,), True) for nxt in self.succ[start]]
        while stack:
            key, M, D, via, spikes = stack.pop()
            kind = self._kind(key)
            if kind in _NEURONS or kind == "Output":
                out.append((key, M, D, via))
                continue
            if kind == "Input":
                raise self._problem(key, "an Input node cannot receive edges")
            if key in via:
                raise self._problem(key, "lies on a cycle without a neuron; it never settles")
            M, D, spikes = self._step(key, M, D, spikes)
            stack += [(nxt, M, D, (*via, key), spikes) for nxt in self.succ[key]]
        return out

    # ----------------------------------------------------------------------------- neurons
    def _uniform(self, key, node, field: str, n: int, scale=1.0) -> float:
        values = np.broadcast_to(_array(getattr(node, field)).reshape(-1), (n,)) * scale
        if np.any(values != values[0]):
            raise self._problem(
                key,
                f"{field} differs between its neurons ({values.min():g} .. {values.max():g}); "
                f"a population here has one {field}",
            )
        return float(values[0])

    def _tau(self, key, node, field, n) -> float:
        """A time constant (s) in ms for our exact propagators (see the module docstring)."""
        tau = _ms(self._uniform(key, node, field, n))
        if self.integration == "exact":
            return tau
        if not tau > self.graph_dt:
            raise self._problem(
                key,
                f"{field} = {tau:g} ms is not longer than the graph's step ({self.graph_dt:g} "
                "ms): forward Euler at that step does not decay, it oscillates or resets",
            )
        return -self.graph_dt / math.log1p(-self.graph_dt / tau)

    def _population(self, key, name, n):
        """``(Population, gain per neuron)``: the gain multiplies the incoming weights."""
        node, kind = self.nodes[key], self._kind(key)
        reset = str((node.metadata or {}).get("reset", "zero"))
        if reset not in ("zero", "subtract"):
            raise self._problem(key, f"metadata reset {reset!r} must be 'zero' or 'subtract'")
        r = np.broadcast_to(_array(node.r).reshape(-1), (n,))
        if kind == "IF":
            params = {
                "threshold": self._uniform(key, node, "v_threshold", n),
                "reset": reset,
                "v_reset": self._uniform(key, node, "v_reset", n),
                "refractory_steps": 0,
            }
            return Population(name, n, "if", params), _unit(r * self.graph_dt / 1000.0)
        if kind in ("LIF", "LI"):  # no synaptic current: tau_syn = 0 (a delta synapse)
            tau_mem, tau_syn = self._tau(key, node, "tau", n), 0.0
            # A spike (S = 1 for one graph step, or a delta of area graph_dt) moves V by
            # R graph_dt / tau per unit weight, in both integrations.
            gain = r * (self.graph_dt / _ms(self._uniform(key, node, "tau", n)))
        else:
            tau_mem = self._tau(key, node, "tau_mem", n)
            tau_syn = self._tau(key, node, "tau_syn", n)
            nir_tau_mem = _ms(self._uniform(key, node, "tau_mem", n))
            nir_tau_syn = _ms(self._uniform(key, node, "tau_syn", n))
            w_in = np.broadcast_to(_array(node.w_in).reshape(-1), (n,))
            charge = w_in * (self.graph_dt / nir_tau_syn)  # I's jump per unit weight (NIR's I)
            if self.integration == "exact":
                gain = r * charge
            else:  # Euler moves V by R graph_dt / tau_mem * I per step, our propagator by p * I
                p = propagators(self.graph_dt, tau_mem, tau_syn)[2]
                gain = r * (self.graph_dt / nir_tau_mem) / p * charge
        params = {
            "tau_mem": tau_mem,
            "tau_syn": tau_syn,
            "v_leak": self._uniform(key, node, "v_leak", n),
        }
        if kind in ("LI", "CubaLI"):
            return Population(name, n, "li", params), _unit(gain)
        params.update(
            threshold=self._uniform(key, node, "v_threshold", n),
            reset=reset,
            v_reset=self._uniform(key, node, "v_reset", n),
            refractory_steps=0,
        )
        return Population(name, n, "lif", params), _unit(gain)

    def _size(self, key) -> int | None:
        """A neuron node's size from its parameters (``None`` when they are scalars)."""
        node = self.nodes[key]
        fields = ("r", "v_threshold", "tau", "tau_mem", "tau_syn", "v_leak", "v_reset", "w_in")
        sizes = {
            _array(getattr(node, f)).size for f in fields if getattr(node, f, None) is not None
        }
        sizes.discard(1)
        if len(sizes) > 1:
            raise self._problem(key, f"its parameters have different sizes {sorted(sizes)}")
        return sizes.pop() if sizes else None

    # ----------------------------------------------------------------------------- spec
    def spec(self, n_steps: int, name: str) -> NetworkSpec:
        self._check_kinds()
        inputs = [k for k in self.nodes if self._kind(k) == "Input"]
        outputs = [k for k in self.nodes if self._kind(k) == "Output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise SpecError(
                [
                    Problem(
                        "nodes",
                        f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; "
                        "a network here has one input and one output population",
                    )
                ]
            )
        input_key, output_key = inputs[0], outputs[0]
        input_type = self.nodes[input_key].input_type
        input_size = int(np.prod(np.asarray(next(iter(input_type.values())))))
        neurons = [k for k in self.nodes if self._kind(k) in _NEURONS]
        names = _population_names(neurons)

        # Sizes, then every path from the input and from each population.
        sizes = {input_key: input_size, **{k: self._size(k) for k in neurons}}
        paths, done = {}, set()
        while True:
            ready = [k for k in (input_key, *neurons) if sizes[k] is not None and k not in done]
            if not ready:
                break
            for start in ready:
                done.add(start)
                paths[start] = self._paths(start, sizes[start])
                for end, M, _, _ in paths[start]:
                    if end in sizes and sizes[end] is None:
                        sizes[end] = M.shape[0]
        unknown = [k for k in neurons if sizes[k] is None]
        if unknown:
            raise self._problem(
                unknown[0], "its size is unknown: scalar parameters and no input reaching it"
            )

        # Merge the paths into one projection per (source, target).
        merged: dict[tuple[str, str], list] = {}
        fed_output = []
        for start, found in paths.items():
            for end, M, D, via in found:
                if end == output_key:
                    if start == input_key or any(self._kind(k) != "pass" for k in via[1:]):
                        raise self._problem(
                            output_key,
                            "the output must be a neuron node connected straight to it (here "
                            f"it is reached through {', '.join(map(repr, via))})",
                        )
                    fed_output.append(start)
                    continue
                if M.shape[0] != sizes[end]:
                    raise self._problem(
                        end, f"has {sizes[end]} neurons; a path from {start!r} brings {M.shape[0]}"
                    )
                merged.setdefault((start, end), []).append((M, D))
        if len(fed_output) != 1:
            raise self._problem(output_key, "must be fed by exactly one neuron node")

        populations, gains = {}, {}
        for key in neurons:
            populations[key], gains[key] = self._population(key, names[key], sizes[key])

        projections = []
        for (start, end), parts in merged.items():
            source = INPUT if start == input_key else names[start]
            W = sum(M for M, _ in parts)
            delays = _merge_delays(parts, source, names[end])
            W = gains[end][:, None] * W if np.any(gains[end] != 1.0) else W
            projections.append([source, names[end], W, delays])
        projections = _mark_recurrent(projections, self.graph_dt)
        spec = NetworkSpec(
            input_size=input_size,
            populations=[populations[k] for k in neurons],
            projections=[
                Projection(
                    source,
                    target,
                    recurrent=recurrent,
                    delay=_delay_value(delays),
                    weights=W.tolist(),
                )
                for source, target, W, delays, recurrent in projections
            ],
            dt=self.dt,
            n_steps=int(n_steps),
            name=name,
            output=names[fed_output[0]],
        )
        if not spec.problems():
            topo = spec.order()
            spec.populations.sort(key=lambda p: topo.index(p.name))
            if spec.populations[-1].name == spec.output:
                spec.output = None
        return spec.validate()


def _population_names(keys: list[str]) -> dict[str, str]:
    """Node keys as population names (letters, digits, single underscores, starting with a
    letter; unique; never ``input``)."""
    names, used = {}, {INPUT}
    for key in keys:
        base = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", key)).strip("_")
        if not base or not base[0].isalpha():
            base = f"p{base}" if base else "population"
        candidate, k = base, 2
        while candidate in used:
            candidate, k = f"{base}_{k}", k + 1
        used.add(candidate)
        names[key] = candidate
    return names


def _merge_delays(parts, source: str, target: str) -> np.ndarray:
    """One delay per synapse from the paths between two populations (a synapse that no path
    reaches with a non-zero weight takes the smallest delay)."""
    shape = parts[0][0].shape
    delay = np.full(shape, -1, dtype=np.int64)
    for M, D in parts:
        used = M != 0
        clash = used & (delay >= 0) & (delay != D)
        if np.any(clash):
            i, j = np.argwhere(clash)[0]
            raise SpecError(
                [
                    Problem(
                        "edges",
                        f"the synapse {source}[{j}] -> {target}[{i}] is reached with delays "
                        f"{delay[i, j]} and {D[i, j]} steps; one synapse has one delay",
                    )
                ]
            )
        delay = np.where(used, D, delay)
    known = delay[delay >= 0]
    return np.where(delay >= 0, delay, known.min() if known.size else 0)


def _delay_value(delays: np.ndarray):
    return int(delays.flat[0]) if np.all(delays == delays.flat[0]) else delays.tolist()


def _mark_recurrent(projections: list, graph_dt: float) -> list:
    """``[source, target, W, delays, recurrent]``: cycles are broken at projections whose every
    synapse is delayed by >= 1 step (recurrent with one step less: the same dynamics); a cycle
    without one is broken at a back edge, which then carries one step more than the graph
    (warned)."""
    zero = [p for p in projections if p[0] == INPUT or p[3].min() == 0]
    delayed = [p for p in projections if p not in zero]
    forward: dict[str, set[str]] = {}

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            node = todo.pop()
            if node == b:
                return True
            if node not in seen:
                seen.add(node)
                todo += list(forward.get(node, ()))
        return False

    out = []
    for p in zero:  # in graph order; a zero-delay projection that closes a cycle must break it
        source, target = p[0], p[1]
        if source != INPUT and (source == target or reaches(target, source)):
            warnings.warn(
                f"the projection {source}->{target} closes a cycle without a delay; it becomes "
                "recurrent and carries the previous step's spikes (one step, "
                f"{graph_dt:g} ms, more than the graph)",
                stacklevel=4,
            )
            out.append([*p, True])
            continue
        forward.setdefault(source, set()).add(target)
        out.append([*p, False])
    for p in delayed:
        source, target = p[0], p[1]
        if source == target or reaches(target, source):
            out.append([source, target, p[2], p[3] - 1, True])
        else:
            forward.setdefault(source, set()).add(target)
            out.append([*p, False])
    return out


# ------------------------------------------------------------------------------------ runs


def imported_run(spec: NetworkSpec, dataset: str | None = None):
    """A :class:`~workbench.experiment.Run` of an imported network, for ``save_run``.

    Its algorithm is ``"imported"`` (no training history); its readout follows its output
    population (see :func:`workbench.experiment.run_readout`).  With ``dataset``, the network is
    checked against the dataset's reference encoder (at the network's ``dt`` and ``n_steps``)
    and measured on its validation and test splits; without, the run folder holds no metrics
    and ``workbench evaluate RUN --dataset NAME`` names one later.
    """
    from workbench import experiment
    from workbench.backends import build
    from workbench.data import load_dataset
    from workbench.training import History

    spec.validate()
    network = build(spec, "float")
    # The weights live in weights.safetensors, as a trained run's do; spec.json stays small.
    spec = dataclasses.replace(
        spec, projections=[dataclasses.replace(p, weights=None) for p in spec.projections]
    )
    out = spec.population(spec.output_name)
    hidden = [p for p in spec.populations if p.name != out.name]
    config = experiment.RunConfig(
        dataset=dataset,
        algorithm=experiment.IMPORTED,
        backend="float",
        seed=0,
        hidden=[p.size for p in hidden],
        neuron=hidden[0].model if hidden else out.model,
        readout=out.model,
        weight_init={},
        dt=spec.dt,
        n_steps=spec.n_steps,
        encoder={},
        training={},
    )
    data, metrics = None, {}
    if dataset is not None:
        reference = experiment.reference_config(dataset).encoder
        config.encoder = experiment.resolve_encoder(dataclasses.replace(config, encoder=reference))
        data = experiment.TrainingData(
            load_dataset(dataset), experiment.make_run_encoder(config), config.seed
        )
        experiment.check_fits(spec, data.dataset, data.encoder)
        metrics = experiment.measure(network, data, experiment.run_readout(config, spec))
    return experiment.Run(config, spec, network, History(), metrics, data)


__all__ = [
    "INTEGRATIONS",
    "export_nir",
    "export_run",
    "import_nir",
    "imported_run",
    "read_nir",
    "write_nir",
]
