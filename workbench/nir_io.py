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

Validation
----------

A graph (or file) from elsewhere is checked before anything is converted, and a file before its
arrays are read; whatever fails raises :class:`SpecError` whose fields name the node
(``nodes['lif1'].tau_syn``, ``nodes['w'].weight``, ``edges[3]``, ``metadata.n_steps``) and
whose messages give the allowed range.  The bounds are the ``MAX_*`` constants below.

- **The file** (:func:`read_nir`): at most ``MAX_FILE_BYTES``; the HDF5 tree is walked without
  recursion and without following soft or external links; every node names a type this module
  converts (others are named and refused: not a NIR type, or not supported here), holds the
  datasets its type needs, each of numbers (not strings, objects, compound types) and of a
  declared shape that fits (a weight is 2-D; a compressed dataset's declared shape tells its
  size); the parameters of all nodes together hold at most ``MAX_PARAMETERS`` numbers (the
  message gives the count and the largest dataset); nesting at most ``MAX_DEPTH`` graphs and
  ``MAX_NODES`` nodes; metadata small.  Only then are the arrays read, and the nodes built
  without NIR's type inference.
- **Metadata and arguments**: ``dt`` a number of seconds in ``DT_RANGE_S`` (as an argument:
  ms, 1e-3 .. 1000); ``n_steps`` a whole number from 1 to ``MAX_N_STEPS`` (``2.7`` and
  ``10**12`` are refused; ``100.0`` is 100); ``integration`` one of :data:`INTEGRATIONS`;
  ``name`` a string.
- **Structure** (after flattening nested graphs, iteratively): node keys strings of at most
  ``MAX_KEY`` characters, unique once flattened; edges pairs of existing keys, none twice;
  exactly one Input (which only sends) and one Output (which only receives), one of each in
  a nested graph; at most ``MAX_POPULATIONS`` neuron nodes; the weight nodes between
  populations ordered topologically (a loop of them without a neuron is refused, naming a node
  on it); the weight paths counted by dynamic programming over that order, never enumerated
  (at most ``MAX_PATHS``: 30 diamonds in a row, 2^30 paths, are refused at once), and the
  elements of the dense path matrices the conversion builds estimated (at most
  ``MAX_PATH_ELEMENTS``).
- **Parameters**, per node type: numbers only (arrays, tensors or scalars; not strings,
  booleans, objects); within a node one value or one per neuron (the sizes must agree); along
  each edge the sizes of its ends (a weight's ``[out, in]`` against its neighbours, an Output's
  declared size against its population); finite, and ``tau``, ``tau_mem``, ``tau_syn`` in
  ``(0, MAX_TAU_S]`` s (a ``CubaLIF`` without a current is NIR's ``LIF``), ``v_threshold`` in
  ``(0, MAX_MAGNITUDE]``, weights, biases, scales, ``r``, ``w_in``, ``v_leak``, ``v_reset`` within
  ``+-MAX_MAGNITUDE`` (1e15: a population's inputs are spikes of 0 or 1 at any depth, so a
  membrane sums at most fan-in x n_steps weights, 1e15 x 2^23 x 1e5 ~ 1e27, far inside
  float32's 3.4e38; weights of 1e38 overflow in the first sum); delays from 0 to the run's
  length (``n_steps x dt``).  The weights after the spike's charge and the gains are multiplied
  in must stay within the same bound; what the converted spec still refuses (a time constant
  not longer than ``dt``, say) is reported of the node it comes from.

Export refuses what NIR cannot carry, naming the population or projection: ``alif`` with
``adapt_strength > 0``, ``refractory_steps > 0``, weights that are not finite or beyond
``+-MAX_MAGNITUDE`` (a file :func:`import_nir` would refuse).
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

from workbench.limits import MAX_MAGNITUDE
from workbench.neurons import propagators
from workbench.spec import (
    INPUT,
    NetworkSpec,
    Population,
    Problem,
    Projection,
    SpecError,
    _topological_order,
)

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
    """The ``nir.NIRGraph`` in the ``.nir`` (HDF5) file ``path``, read for import.

    The file is checked before its arrays are read (see "Validation" in the module's
    docstring): its size, the nesting, the number of nodes, each node's type (those
    :func:`import_nir` converts) and each dataset's declared type and shape, the total number
    of parameters; then the nodes are built without NIR's type inference.  A file that fails
    raises :class:`SpecError` naming the node.
    """
    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise SpecError([Problem("file", f"{str(path)!r} is not a file")])
    try:
        return _read_file(nir, path)
    except SpecError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise SpecError(
            [Problem("file", f"{str(path)!r} is not a readable NIR file ({reason})")]
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
        elif value.dtype.kind not in "iuf":
            problems.append(
                Problem(f"projections[{k}].weights", f"{key!r} holds {value.dtype}, not numbers")
            )
        else:
            with np.errstate(invalid="ignore"):
                peak = float(np.max(np.abs(value))) if value.size else 0.0
            if not peak <= MAX_MAGNITUDE:  # NaN too
                problems.append(
                    Problem(
                        f"projections[{k}].weights",
                        f"{key!r} ({proj.source} -> {proj.target}) holds {peak:g}; a NIR file "
                        f"written here holds finite weights within +-{MAX_MAGNITUDE:g}, as "
                        "import_nir reads them",
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


# -------------------------------------------------------------------------------- validation
#
# Every graph is checked before anything is converted (and a file before its arrays are read):
# the module docstring's "Validation" lists the rules; these are the bounds.

MAX_FILE_BYTES = 128 * 2**20  # a .nir file (2^23 float64 parameters are 64 MiB uncompressed)
MAX_DEPTH = 16  # nested NIRGraph levels (snnTorch nests one, for RSynaptic)
MAX_NODES = 4096  # nodes of the flattened graph
MAX_EDGES = 16384  # edges of the flattened graph
MAX_POPULATIONS = 512  # neuron nodes
MAX_NEURONS = 2**16  # neurons (values) of one node: an Input's or Output's shape, a population
MAX_PARAMETERS = 2**23  # numbers in all parameter arrays together (a 2896 x 2896 weight)
MAX_PATHS = 4096  # weight paths from the input and the populations to populations
MAX_PATH_ELEMENTS = 2**25  # elements of the dense path matrices the conversion builds
MAX_N_STEPS = 100_000  # steps per sample
DT_RANGE_S = (1e-6, 1.0)  # a graph's step (s): 1 us .. 1 s; dt given in ms: 1e-3 .. 1000
MAX_TAU_S = 1e4  # time constants (s)
# Weights, scales, gains and potentials: |x| <= limits.MAX_MAGNITUDE (1e15; why: there).
# 1e38, float32's edge, overflows after the first sum.
MAX_KEY = 200  # characters of a node key
MAX_METADATA = 4096  # numbers (or characters) of one metadata value
MAX_PROBLEMS = 10  # problems reported at once

# The datasets of each node type in a file: required, optional (others are not read).
_FILE_FIELDS = {
    "Input": (("shape",), ()),
    "Output": (("shape",), ()),
    "Linear": (("weight",), ()),
    "Affine": (("weight", "bias"), ()),
    "Scale": (("scale",), ()),
    "Delay": (("delay",), ()),
    "Threshold": (("threshold",), ()),
    "IF": (("r", "v_threshold"), ("v_reset",)),
    "LIF": (("tau", "r", "v_leak", "v_threshold"), ("v_reset",)),
    "LI": (("tau", "r", "v_leak"), ()),
    "CubaLI": (("tau_mem", "tau_syn", "r", "v_leak"), ("w_in",)),
    "CubaLIF": (("tau_mem", "tau_syn", "r", "v_leak", "v_threshold"), ("w_in", "v_reset")),
    "NIRGraph": (("nodes", "edges"), ()),
}
_PARAMS = {  # node type: {parameter: what it is}; see _RULES
    "Linear": {"weight": "weight"},
    "Affine": {"weight": "weight", "bias": "bias"},
    "Scale": {"scale": "gain"},
    "Delay": {"delay": "delay"},
    "Threshold": {"threshold": "level"},
    "IF": {"r": "gain", "v_threshold": "threshold", "v_reset": "potential"},
    "LIF": {
        "tau": "tau",
        "r": "gain",
        "v_leak": "potential",
        "v_threshold": "threshold",
        "v_reset": "potential",
    },
    "LI": {"tau": "tau", "r": "gain", "v_leak": "potential"},
    "CubaLI": {
        "tau_mem": "tau",
        "tau_syn": "tau",
        "r": "gain",
        "v_leak": "potential",
        "w_in": "gain",
    },
    "CubaLIF": {
        "tau_mem": "tau",
        "tau_syn": "tau",
        "r": "gain",
        "v_leak": "potential",
        "w_in": "gain",
        "v_threshold": "threshold",
        "v_reset": "potential",
    },
}
# what: (low, low included, high, unit, why); the delay's high is the run's length
_M = f"{MAX_MAGNITUDE:g}"
_RULES = {
    "tau": (0.0, False, MAX_TAU_S, " s", ""),
    "gain": (-MAX_MAGNITUDE, True, MAX_MAGNITUDE, "", ""),
    "potential": (-MAX_MAGNITUDE, True, MAX_MAGNITUDE, "", ""),
    "threshold": (
        0.0,
        False,
        MAX_MAGNITUDE,
        "",
        " (a population here fires at V >= threshold > 0)",
    ),
    "weight": (
        -MAX_MAGNITUDE,
        True,
        MAX_MAGNITUDE,
        "",
        f" (|w| <= {_M} keeps every membrane finite in float32)",
    ),
    "bias": (-MAX_MAGNITUDE, True, MAX_MAGNITUDE, "", ""),
    "level": (-MAX_MAGNITUDE, True, MAX_MAGNITUDE, "", ""),
    "delay": (0.0, True, None, " s", ""),
}


def _show(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a message stays one short line)."""
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.size <= 16):
        value = value.tolist()
    text = " ".join(repr(value).split())  # a tensor's or array's repr spans lines
    return text if len(text) <= limit else f"{text[: limit - 4]}...{text[-1]}"


def _node_field(key, attribute: str | None = None) -> str:
    label = f"nodes[{_show(key)}]"
    return f"{label}.{attribute}" if attribute else label


def _node_problem(key, kind: str, message: str, attribute: str | None = None) -> Problem:
    return Problem(_node_field(key, attribute), f"node {_show(key)} ({kind}): {message}")


class _Problems(list):
    """Problems collected for one :class:`SpecError`; raises once ``MAX_PROBLEMS`` are found."""

    def add(self, path: str, message: str) -> None:
        self.append(Problem(path, message))
        if len(self) >= MAX_PROBLEMS:
            raise SpecError(self)

    def node(self, key, kind, message, attribute=None) -> None:
        problem = _node_problem(key, kind, message, attribute)
        self.add(problem.path, problem.message)

    def check(self) -> None:
        if self:
            raise SpecError(self)


def _real(value) -> float | None:
    """``value`` as a float when it is one real number (not a bool, a string, an array of
    several); ``inf`` for an integer beyond float range."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        if value.ndim != 0 and tuple(value.shape) != (1,):
            return None
        value = value.reshape(()).item() if isinstance(value, np.ndarray) else value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _integer(value) -> int | None:
    """``value`` as an int when it is a whole number (``100`` or ``100.0``; not ``2.7``)."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        if value.ndim != 0 and tuple(value.shape) != (1,):
            return None
        value = value.reshape(()).item() if isinstance(value, np.ndarray) else value.item()
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if (
        isinstance(value, (float, np.floating))
        and math.isfinite(value)
        and float(value) == int(value)
    ):
        return int(value)
    return None


def _text(value) -> str | None:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _settings(meta, dt, n_steps, graph_dt, integration, name):
    """The run's ``(dt, graph_dt, n_steps, integration, name)`` from the arguments and the
    graph's metadata, every value checked (type, finiteness, range)."""
    problems = _Problems()
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        problems.add("metadata", f"is a {type(meta).__name__}; a graph's metadata is a dict")
        meta = {}
    low, high = DT_RANGE_S
    meta_dt = None
    if "dt" in meta:
        seconds = _real(meta["dt"])
        if seconds is None or not (low <= seconds <= high):
            problems.add(
                "metadata.dt",
                f"{_show(meta['dt'])} must be a time step in seconds from {low:g} to {high:g} s",
            )
        else:
            meta_dt = _ms(seconds)
    meta_steps = None
    if "n_steps" in meta:
        meta_steps = _integer(meta["n_steps"])
        if meta_steps is None or not (1 <= meta_steps <= MAX_N_STEPS):
            problems.add(
                "metadata.n_steps",
                f"{_show(meta['n_steps'])} must be an integer from 1 to {MAX_N_STEPS}",
            )
            meta_steps = None
    meta_integration = None
    if "integration" in meta:
        meta_integration = _text(meta["integration"])
        if meta_integration not in INTEGRATIONS:
            problems.add(
                "metadata.integration",
                f"{_show(meta['integration'])} must be one of {list(INTEGRATIONS)}",
            )
    meta_name = None
    if "name" in meta:
        meta_name = _text(meta["name"])
        if meta_name is None or len(meta_name) > MAX_KEY:
            problems.add(
                "metadata.name",
                f"{_show(meta['name'])} must be a string of <= {MAX_KEY} characters",
            )
            meta_name = None
    for label, value in (("dt", dt), ("graph_dt", graph_dt)):
        if value is not None:
            ms = _real(value)
            if ms is None or not (1000 * low <= ms <= 1000 * high):
                problems.add(
                    label,
                    f"{_show(value)} must be a time step from {1000 * low:g} to {1000 * high:g} ms",
                )
    if n_steps is not None:
        steps = _integer(n_steps)
        if steps is None or not (1 <= steps <= MAX_N_STEPS):
            problems.add("n_steps", f"{_show(n_steps)} must be an integer from 1 to {MAX_N_STEPS}")
    if integration is not None and integration not in INTEGRATIONS:
        problems.add("integration", f"{_show(integration)} must be one of {list(INTEGRATIONS)}")
    if name is not None and not (isinstance(name, str) and name):
        problems.add("name", f"{_show(name)} must be a non-empty string")
    problems.check()

    dt = float(dt) if dt is not None else meta_dt
    if dt is None:
        problems.add(
            "dt",
            "the graph does not record its time step; give dt in ms (snnTorch writes "
            "graphs for 0.1 ms, Norse for 1 ms)",
        )
    if n_steps is None and meta_steps is None and "n_steps" not in meta:
        problems.add("n_steps", "the graph does not record a number of steps; give n_steps")
    problems.check()
    graph_dt = float(graph_dt) if graph_dt is not None else (meta_dt if meta_dt is not None else dt)
    n_steps = _integer(n_steps) if n_steps is not None else meta_steps
    integration = integration or meta_integration or "euler"
    return dt, graph_dt, n_steps, integration, name or meta_name or "imported"


# ----------------------------------------------------------------------- the graph's structure


def _flatten(nir, graph):
    """Nodes and edges with every nested ``NIRGraph`` spliced in (its keys ``OUTER.INNER``; its
    Input and Output become pass-through nodes), iteratively: depth, node and edge counts are
    bounded, keys and edges checked."""
    problems = _Problems()
    nodes: dict[str, object] = {}
    edges: list[tuple[str, str]] = []
    todo = [(graph, "", None, 0)]  # (graph, prefix of its keys, its own key, depth)
    while todo:
        sub, prefix, owner, depth = todo.pop()
        where = "" if owner is None else f"{_node_field(owner)}."
        members, links = getattr(sub, "nodes", None), getattr(sub, "edges", None)
        if not isinstance(members, dict):
            problems.add(
                f"{where}nodes", f"is a {type(members).__name__}; a graph's nodes are a dict"
            )
            continue
        if isinstance(links, np.ndarray):
            links = list(links) if links.ndim >= 1 else None
        if not isinstance(links, (list, tuple)):
            problems.add(
                f"{where}edges", f"is a {type(links).__name__}; a graph's edges are a list"
            )
            continue
        if len(nodes) + len(members) > MAX_NODES or len(edges) + len(links) > MAX_EDGES:
            problems.add(
                f"{where}nodes",
                f"the graph has more than {MAX_NODES} nodes or {MAX_EDGES} edges (counting nested "
                f"graphs' own); at most {MAX_NODES} and {MAX_EDGES} are read",
            )
            problems.check()
        rename_in, rename_out = {}, {}
        for key, node in members.items():
            if not isinstance(key, str) or not key or len(key) > MAX_KEY:
                problems.add(
                    f"{where}nodes",
                    f"the key {_show(key)} must be a string of 1 to {MAX_KEY} characters",
                )
                continue
            full = f"{prefix}{key}"
            if owner is not None and isinstance(node, (nir.Input, nir.Output)):
                continue  # the parent made it a pass-through node
            if full in nodes:
                problems.node(
                    full,
                    type(node).__name__,
                    "its key occurs twice once nested graphs are flattened",
                )
                continue
            if isinstance(node, nir.NIRGraph):
                inner = getattr(node, "nodes", None)
                if depth + 1 > MAX_DEPTH:
                    problems.node(
                        full,
                        "NIRGraph",
                        f"nests graphs more than {MAX_DEPTH} deep; at most {MAX_DEPTH} levels are "
                        "read",
                    )
                    problems.check()
                if not isinstance(inner, dict):
                    problems.add(
                        f"{_node_field(full)}.nodes",
                        f"is a {type(inner).__name__}; a graph's nodes are a dict",
                    )
                    continue
                ins = [k for k, n in inner.items() if isinstance(n, nir.Input)]
                outs = [k for k, n in inner.items() if isinstance(n, nir.Output)]
                if len(ins) != 1 or len(outs) != 1:
                    problems.node(
                        full,
                        "NIRGraph",
                        f"has {len(ins)} Input and {len(outs)} Output nodes; a nested graph needs "
                        "one of each",
                    )
                    continue
                for k in (ins[0], outs[0]):
                    nodes[f"{full}.{k}"] = _Pass()
                rename_in[key], rename_out[key] = f"{full}.{ins[0]}", f"{full}.{outs[0]}"
                todo.append((node, f"{full}.", full, depth + 1))
            else:
                nodes[full] = node
        seen = set()
        for k, edge in enumerate(links):
            pair = tuple(edge) if isinstance(edge, (list, tuple, np.ndarray)) else None
            if pair is not None:
                pair = tuple(_text(x) for x in pair)
            if pair is None or len(pair) != 2 or None in pair:
                problems.add(f"{where}edges[{k}]", f"{_show(edge)} must be a pair of node keys")
                continue
            a, b = pair
            missing = [end for end in (a, b) if end not in members]
            if missing:
                problems.add(
                    f"{where}edges[{k}]",
                    f"the edge ({_show(a)}, {_show(b)}) names {_show(missing[0])}, not a node"
                    + ("" if owner is None else f" of the nested graph {_show(owner)}"),
                )
                continue
            if pair in seen:
                problems.add(
                    f"{where}edges[{k}]", f"the edge ({_show(a)}, {_show(b)}) occurs twice"
                )
                continue
            seen.add(pair)
            a, b = rename_out.get(a, f"{prefix}{a}"), rename_in.get(b, f"{prefix}{b}")
            edges.append((a, b))
    problems.check()
    return nodes, edges


def _kind_of(node) -> str:
    return "pass" if isinstance(node, _Pass) else type(node).__name__


def _values(value):
    """``(array, None)``: a parameter's numbers (not yet float64), or ``(None, why not)``."""
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    if value is None:
        return None, "is missing"
    if isinstance(value, (str, bytes)):
        return None, f"is a string ({_show(value, 30)}), not numbers"
    if isinstance(value, (bool, np.bool_)):
        return None, "is a boolean, not a number"
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = _real(value)
        return np.asarray(number), None
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_PARAMETERS:
            return None, f"holds {len(value)} values; at most {MAX_PARAMETERS} are read"
        try:
            value = np.asarray(value)
        except (ValueError, TypeError, OverflowError):
            return None, "is not a rectangular array of numbers"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            what = {"U": "strings", "S": "strings", "O": "objects", "b": "booleans"}.get(
                value.dtype.kind, str(value.dtype)
            )
            return None, f"is an array of {what}, not numbers"
        return value, None
    return None, f"is a {type(value).__name__}, not an array of numbers"


def _out_of_range(x: np.ndarray, name: str, what: str, high=None) -> str | None:
    """Why ``x`` (float64) breaks the rule for ``what``, naming the first bad value."""
    low, inclusive, rule_high, unit, why = _RULES[what]
    high = rule_high if high is None else high
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (x > high) | ((x < low) if inclusive else (x <= low))
    if not bad.any():
        return None
    i = int(np.argmax(bad.reshape(-1)))
    label = name if x.size == 1 else f"{name}[{', '.join(map(str, np.unravel_index(i, x.shape)))}]"
    if what in ("gain", "potential", "weight", "bias", "level"):
        allowed = f"finite and within +-{high:g}"
    elif inclusive:
        allowed = f"from {low:g} to {high:g}{unit}"
    else:
        allowed = f"> {low:g} and <= {high:g}{unit}"
    return f"{label} = {x.reshape(-1)[i]:g}{unit} must be {allowed}{why}"


def _shape_size(shape_value) -> tuple[int | None, str | None]:
    """``(number of values, None)`` of an Input's or Output's shape, ``(None, None)`` when it
    declares none, ``(None, why)`` when it is not a shape."""
    if isinstance(shape_value, dict):
        shape_value = next(iter(shape_value.values()), None)
    if shape_value is None:
        return None, None
    values, why = _values(shape_value)
    if why is None and values.size == 0:
        return None, None
    dims = [_integer(v) for v in values.reshape(-1)] if why is None else []
    if why or values.ndim > 1 or values.size > 8 or any(d is None or d < 1 for d in dims):
        return None, (
            f"its shape {_show(shape_value)} must be up to 8 whole numbers >= 1 whose product "
            f"(its number of values) is at most {MAX_NEURONS}"
        )
    size = math.prod(dims)
    if size > MAX_NEURONS:
        return None, f"its shape {_show(shape_value)} holds {size:,} values; at most {MAX_NEURONS}"
    return size, None


def _check_graph(nodes, edges, dt: float, n_steps: int) -> None:
    """Every node's type and parameters, the sizes along the edges, the structure, the number
    of weight paths and the memory their conversion takes: a :class:`SpecError` naming the node
    for whatever is wrong (see the module docstring's "Validation")."""
    problems = _Problems()
    kinds = {key: _kind_of(node) for key, node in nodes.items()}
    for key, kind in kinds.items():
        if (
            kind not in _NEURONS
            and kind not in _SYNAPTIC
            and kind not in ("Input", "Output", "pass")
        ):
            problems.node(key, kind, f"is not supported here (supported: {_SUPPORTED})")
    problems.check()
    populations = [k for k in nodes if kinds[k] in _NEURONS]
    if len(populations) > MAX_POPULATIONS:
        problems.add(
            "nodes",
            f"the graph has {len(populations)} neuron nodes; at most {MAX_POPULATIONS} are read",
        )
    inputs = [k for k in nodes if kinds[k] == "Input"]
    outputs = [k for k in nodes if kinds[k] == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        problems.add(
            "nodes",
            f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; a network here "
            "has one input and one output population",
        )
    problems.check()

    # Parameters: numbers, a bounded total, finite and in range, sizes that agree.
    arrays: dict[str, dict[str, np.ndarray]] = {}
    total, largest = 0, (0, "")
    for key, node in nodes.items():
        kind = kinds[key]
        if kind in ("Input", "Output"):
            declared = getattr(node, "input_type" if kind == "Input" else "output_type", None)
            size, why = _shape_size(declared)
            if why or (kind == "Input" and size is None):
                problems.node(key, kind, why or "declares no shape; the input's size is needed")
            continue
        if kind == "pass":
            continue
        metadata = getattr(node, "metadata", None)
        if metadata is not None and not isinstance(metadata, dict):
            problems.node(
                key, kind, f"its metadata is a {type(metadata).__name__}, not a dict", "metadata"
            )
        arrays[key] = {}
        for name in _PARAMS[kind]:
            values, why = _values(getattr(node, name, None))
            if why:
                problems.node(key, kind, f"{name} {why}", name)
                continue
            total += values.size
            largest = max(largest, (values.size, _node_field(key, name)))
            arrays[key][name] = values
    if total > MAX_PARAMETERS:
        problems.add(
            "nodes",
            f"the graph's parameters hold {total:,} numbers (the largest: {largest[1]}, "
            f"{largest[0]:,}); at most {MAX_PARAMETERS:,} are read",
        )
    problems.check()

    max_delay = n_steps * dt / 1000.0
    sizes_in: dict[str, int | None] = {}
    sizes_out: dict[str, int | None] = {}
    for key, node in nodes.items():
        kind = kinds[key]
        if kind in ("Input", "Output"):
            size = _shape_size(getattr(node, "input_type" if kind == "Input" else "output_type"))[0]
            sizes_in[key] = sizes_out[key] = size
            if kind == "Input":
                sizes_in[key] = None
            continue
        if kind == "pass":
            sizes_in[key] = sizes_out[key] = None
            continue
        params = arrays[key]
        for name, raw in list(params.items()):
            x = raw.astype(np.float64)
            params[name] = x
            why = _out_of_range(
                x, name, _PARAMS[kind][name], max_delay if name == "delay" else None
            )
            if why and name == "delay":
                why += (
                    f" (n_steps {n_steps} x dt {dt:g} ms: a longer delay never arrives within a "
                    "run)"
                )
            if why and name == "tau_syn" and np.any(x <= 0):
                why += f" (a {kind} has a synaptic current; NIR's {kind[4:]} has none)"
            if why:
                problems.node(key, kind, why, name)
        if kind in ("Linear", "Affine"):
            W = params.get("weight")
            if W is not None and (W.ndim != 2 or 0 in W.shape):
                problems.node(
                    key,
                    kind,
                    f"weight has shape {tuple(W.shape)}; a {kind}'s weight here is a matrix "
                    "[out, in] of at least one row and column",
                    "weight",
                )
                continue
            if W is None:
                continue
            sizes_in[key], sizes_out[key] = W.shape[1], W.shape[0]
            bias = params.get("bias")
            if bias is not None and bias.size not in (1, W.shape[0]):
                problems.node(
                    key,
                    kind,
                    f"bias has {bias.size} values; its weight has {W.shape[0]} rows",
                    "bias",
                )
            continue
        counts = {name: x.size for name, x in params.items()}
        if 0 in counts.values():
            empty = next(name for name, c in counts.items() if c == 0)
            problems.node(key, kind, f"{empty} holds no values", empty)
            continue
        many = {c for c in counts.values() if c != 1}
        if len(many) > 1:
            listed = ", ".join(f"{name} {c}" for name, c in counts.items())
            problems.node(
                key,
                kind,
                f"its parameters have different sizes ({listed}); each holds one value "
                "or one per neuron",
            )
            continue
        size = many.pop() if many else None
        if size is not None and size > MAX_NEURONS:
            problems.node(key, kind, f"has {size} neurons; at most {MAX_NEURONS} are read")
        sizes_in[key] = sizes_out[key] = size
    problems.check()

    # Structure: edges that fit the sizes of their ends; Input and Output at the ends.
    succ: dict[str, list[str]] = {key: [] for key in nodes}
    pred: dict[str, list[str]] = {key: [] for key in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
        if kinds[b] == "Input":
            problems.node(b, "Input", f"receives an edge from {_show(a)}; an Input only sends")
        if kinds[a] == "Output":
            problems.node(a, "Output", f"sends an edge to {_show(b)}; an Output only receives")
        out, into = sizes_out[a], sizes_in[b]
        if out is not None and into is not None and out != into:
            problems.add(
                "edges",
                f"the edge ({_show(a)}, {_show(b)}): {_show(a)} ({kinds[a]}) gives {out} values, "
                f"{_show(b)} ({kinds[b]}) takes {into}",
            )
    problems.check()

    # Weight paths: synaptic nodes in topological order (a loop of them never settles), then
    # the number of paths and the elements of their matrices by dynamic programming: no path
    # is enumerated here, so a graph of 2^30 paths is refused at once.
    synaptic = [k for k in nodes if kinds[k] in _SYNAPTIC or kinds[k] == "pass"]
    is_synaptic = set(synaptic)
    waiting = {k: sum(1 for p in pred[k] if p in is_synaptic) for k in synaptic}
    order = [k for k in synaptic if waiting[k] == 0]
    for k in order:  # grows while it is walked (Kahn's algorithm)
        for n in succ[k]:
            if n in is_synaptic:
                waiting[n] -= 1
                if waiting[n] == 0:
                    order.append(n)
    if len(order) < len(synaptic):
        key = _on_a_cycle(set(synaptic) - set(order), succ)
        problems.node(
            key,
            kinds[key],
            "lies on a cycle of weight nodes without a neuron; such a loop never settles",
        )
        problems.check()
    widest = max([1, *(s for s in sizes_out.values() if s), *(s for s in sizes_in.values() if s)])
    cap = 2**62
    paths: dict[str, int] = {}
    work: dict[str, int] = {}  # matrix rows made per source neuron from here on
    for k in reversed(order):
        count = rows = 0
        for n in succ[k]:
            if n in is_synaptic:
                count, rows = count + paths[n], rows + work[n]
            elif kinds[n] != "Input":
                count += 1
        made = 0 if kinds[k] == "pass" else (sizes_out[k] or widest)
        paths[k], work[k] = min(count, cap), min(made + rows, cap)
    total_paths, elements, most = 0, 0, (0, "")
    for start in inputs + populations:
        count = rows = 0
        for n in succ[start]:
            if n in is_synaptic:
                count, rows = count + paths[n], rows + work[n]
            elif kinds[n] != "Input":
                count += 1
        size = sizes_out[start] or widest
        total_paths += count
        elements += 2 * size * (size + rows)  # weights and delays, [rows, source] per path step
        most = max(most, (count, start))
    if total_paths > MAX_PATHS:
        count, start = most
        problems.node(
            start,
            kinds[start],
            f"starts {count:,} weight paths (the graph {total_paths:,}) through synaptic nodes to "
            f"neuron nodes; at most {MAX_PATHS} are converted (each is a dense matrix here)",
        )
    elif elements > MAX_PATH_ELEMENTS:
        problems.add(
            "nodes",
            f"converting the graph builds ~{elements:,} path-matrix elements (~"
            f"{elements * 8 / 2**20:,.0f} MiB: a dense [neurons, source] weight and delay matrix "
            f"per path and step); at most {MAX_PATH_ELEMENTS:,} are allowed",
        )
    problems.check()


def _on_a_cycle(left: set[str], succ) -> str:
    """A node that lies on a cycle among ``left`` (nodes Kahn's algorithm could not order)."""
    outgoing = {k: [n for n in succ[k] if n in left] for k in left}
    alive = set(left)
    todo = [k for k in left if not outgoing[k]]
    incoming: dict[str, list[str]] = {k: [] for k in left}
    for k in left:
        for n in outgoing[k]:
            incoming[n].append(k)
    count = {k: len(outgoing[k]) for k in left}
    while todo:  # peel the nodes that lead to no cycle
        k = todo.pop()
        alive.discard(k)
        for p in incoming[k]:
            count[p] -= 1
            if count[p] == 0:
                todo.append(p)
    key = min(alive)
    seen = set()
    while key not in seen:  # every live node has a live successor: walk until one repeats
        seen.add(key)
        key = next(n for n in outgoing[key] if n in alive)
    return key


# -------------------------------------------------------------------------------- the file


def _read_file(nir, path: Path):
    """The ``NIRGraph`` in the ``.nir`` file at ``path``: the HDF5 tree is walked without
    recursion, every dataset's declared type and shape checked (a compressed dataset's shape
    says its size) before any array is read."""
    import h5py

    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SpecError(
            [
                Problem(
                    "file",
                    f"{str(path)!r} is {size / 2**20:,.0f} MiB; a NIR file here is at most "
                    f"{MAX_FILE_BYTES // 2**20} MiB",
                )
            ]
        )
    problems = _Problems()
    with h5py.File(path, "r") as f:
        root = _member(f, "node")
        if not isinstance(root, h5py.Group):
            raise SpecError(
                [Problem("file", f"{str(path)!r} has no 'node' group: it is not a NIR file")]
            )
        # Pass 1: walk and check what each dataset declares; read only the 'type' strings.
        entries = []  # (group, key, kind, parent index, its key in the parent)
        todo = [(root, None, 0, None, None)]
        total, largest, count = 0, (0, ""), 0
        while todo:
            group, key, depth, parent, local = todo.pop()
            kind = _file_type(nir, problems, group, key)
            if kind is None:
                continue
            index = len(entries)
            entries.append((group, key, kind, parent, local))
            required, optional = _FILE_FIELDS[kind]
            for name in (*required, *optional):
                obj = _member(group, name)
                if obj is None:
                    if name in required:
                        why = f"{name} is missing; a {kind} needs {', '.join(required)}"
                        if key is None:
                            problems.add(name, why)
                        else:
                            problems.node(key, kind, why, name)
                    continue
                if kind == "NIRGraph":
                    continue
                n = _file_array(problems, obj, key, kind, name)
                total += n
                largest = max(largest, (n, _node_field(key, name)))
            meta = _member(group, "metadata")
            if meta is not None:
                _file_metadata(problems, meta, key)
            if kind != "NIRGraph":
                continue
            label = "" if key is None else f"{_node_field(key)}."
            members, links = _member(group, "nodes"), _member(group, "edges")
            if not isinstance(members, h5py.Group) or not isinstance(links, h5py.Dataset):
                problems.add(
                    f"{label}nodes", "a NIRGraph holds a group 'nodes' and a dataset 'edges'"
                )
                continue
            if depth > MAX_DEPTH:
                problems.node(
                    key,
                    kind,
                    f"nests graphs more than {MAX_DEPTH} deep; at most {MAX_DEPTH} levels are read",
                )
                problems.check()
            count += len(members)
            if count > MAX_NODES:
                problems.add(
                    f"{label}nodes",
                    f"the file holds more than {MAX_NODES} nodes (counting nested graphs' own); "
                    f"at most {MAX_NODES} are read",
                )
                problems.check()
            n_edges = links.shape[0] if links.ndim >= 1 else 0
            if links.size and (
                links.ndim != 2
                or links.shape[1] != 2
                or not _is_string(links.dtype)
                or n_edges > MAX_EDGES
            ):
                problems.add(
                    f"{label}edges",
                    f"declares {links.dtype} of shape {links.shape}; edges are up to {MAX_EDGES} "
                    "pairs of node keys (strings)",
                )
            children = []
            for child in members:
                obj = _member(members, child)
                if not isinstance(obj, h5py.Group) or len(child) > MAX_KEY:
                    problems.add(
                        f"{label}nodes",
                        f"{_show(child)} must be a group (a node) with a key of at most {MAX_KEY} "
                        "characters",
                    )
                    continue
                full = child if key is None else f"{key}.{child}"
                children.append((obj, full, depth + 1, index, child))
            todo += reversed(children)
        if total > MAX_PARAMETERS:
            problems.add(
                "file",
                f"{str(path)!r}: its parameters hold {total:,} numbers (the largest: {largest[1]}, "
                f"{largest[0]:,}); at most {MAX_PARAMETERS:,} are read",
            )
        problems.check()

        # Pass 2: read the arrays, build the nodes (children before the graphs that hold them).
        built: dict[int, dict] = {}
        graph = None
        for index in range(len(entries) - 1, -1, -1):
            group, key, kind, parent, local = entries[index]
            node = _file_node(nir, problems, group, key, kind, built.pop(index, {}), entries, index)
            if node is None:
                continue
            if parent is None:
                graph = node
            else:
                built.setdefault(parent, {})[(index, local)] = node
        problems.check()
    return graph


def _member(group, name):
    """``group[name]`` when it is a plain member (not a soft or external link), else ``None``."""
    import h5py

    try:
        link = group.get(name, getlink=True)
    except (KeyError, ValueError, TypeError):
        return None
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise SpecError(
            [
                Problem(
                    "file", f"{_show(name)} in {_show(group.name)} is a link; NIR files hold none"
                )
            ]
        )
    return group.get(name)


def _is_string(dtype) -> bool:
    import h5py

    return dtype.kind == "S" or h5py.check_string_dtype(dtype) is not None


def _file_type(nir, problems, group, key) -> str | None:
    """A node group's type (its small 'type' string), or ``None`` after a problem."""
    import h5py

    field = _node_field(key, "type") if key is not None else "type"
    prefix = "" if key is None else f"node {_show(key)}: "
    obj = _member(group, "type")
    if not isinstance(obj, h5py.Dataset) or obj.shape != () or not _is_string(obj.dtype):
        problems.add(field, f"{prefix}its type is missing or not one string")
        return None
    if obj.dtype.kind == "S" and obj.dtype.itemsize > MAX_KEY:
        problems.add(field, f"{prefix}its type is longer than {MAX_KEY} characters; none is")
        return None
    value = _text(obj[()])
    if value is None:
        problems.add(field, f"{prefix}its type is not UTF-8 text")
        return None
    if key is None:
        if value != "NIRGraph":
            problems.add("type", f"the file's top node is a {_show(value)}, not a NIRGraph")
            return None
        return value
    if value not in _FILE_FIELDS:
        cls = getattr(nir, value, None) if value.isidentifier() else None
        known = isinstance(cls, type) and issubclass(cls, nir.NIRNode)
        label = value if value.isidentifier() and len(value) <= 40 else _show(value, 40)
        problems.node(
            key,
            label,
            ("is not supported here" if known else "is not a NIR node type")
            + f" (supported: {_SUPPORTED})",
        )
        return None
    return value


def _file_array(problems, obj, key, kind, name) -> int:
    """Check a parameter dataset's declared type and shape; its number of elements."""
    import h5py

    if not isinstance(obj, h5py.Dataset):
        problems.node(key, kind, f"{name} is a group; a parameter is an array of numbers", name)
        return 0
    if obj.dtype.kind not in "iuf":
        problems.node(
            key, kind, f"{name} is stored as {obj.dtype}; a parameter is an array of numbers", name
        )
        return 0
    n = math.prod(obj.shape) if obj.shape is not None else 0
    if name == "shape" and (obj.ndim > 1 or n > 8):
        problems.node(key, kind, f"its shape is declared {obj.shape}; up to 8 numbers", name)
    elif name == "weight" and obj.ndim != 2:
        problems.node(
            key,
            kind,
            f"weight has shape {obj.shape}; a {kind}'s weight here is a matrix [out, in]",
            name,
        )
    elif name != "weight" and obj.ndim > 4:
        problems.node(key, kind, f"{name} has {obj.ndim} dimensions; at most 4 are read", name)
    return n


def _file_metadata(problems, meta, key) -> None:
    """Metadata: a group of small datasets (numbers or strings), nested at most 4 deep."""
    import h5py

    where = _node_field(key, "metadata") if key else "metadata"
    todo, count = [(meta, 0)], 0
    while todo:
        group, depth = todo.pop()
        if not isinstance(group, h5py.Group) or depth > 4 or len(group) > 256:
            problems.add(
                where, "must be a group of at most 256 small values, nested at most 4 deep"
            )
            return
        for name in group:
            obj = _member(group, name)
            count += 1
            if count > 1024:
                problems.add(where, "holds more than 1024 values")
                return
            if isinstance(obj, h5py.Group):
                todo.append((obj, depth + 1))
                continue
            ok = isinstance(obj, h5py.Dataset) and (
                obj.dtype.kind in "iufb" or _is_string(obj.dtype)
            )
            elements = math.prod(obj.shape) if ok and obj.shape is not None else 0
            if ok and obj.dtype.kind == "S":
                elements *= obj.dtype.itemsize
            if not ok or elements > MAX_METADATA:
                problems.add(
                    f"{where}.{name}",
                    f"must be a number, a string or up to {MAX_METADATA} numbers",
                )


def _file_values(group):
    """A metadata group as a dict (strings decoded), read without recursion."""
    import h5py

    out: dict = {}
    todo = [(group, out)]
    while todo:
        g, target = todo.pop()
        for name in g:
            obj = g[name]
            if isinstance(obj, h5py.Group):
                target[name] = {}
                todo.append((obj, target[name]))
            else:
                value = obj[()]
                target[name] = (
                    value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                )
    return out


def _file_node(nir, problems, group, key, kind, children, entries, index):
    """Build one node from its (checked) datasets; ``None`` after a problem."""
    metadata = _file_values(group["metadata"]) if "metadata" in group else {}
    if kind == "NIRGraph":
        links = group["edges"]
        edges = []
        if links.size:
            for a, b in links[()]:
                a, b = _text(a), _text(b)
                if a is None or b is None:
                    problems.add(
                        f"{_node_field(key)}.edges" if key else "edges",
                        "holds a key that is not UTF-8 text",
                    )
                    return None
                edges.append((a, b))
        nodes = {local: node for (_, local), node in sorted(children.items())}
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)
    required, optional = _FILE_FIELDS[kind]
    values = {name: group[name][()] for name in (*required, *optional) if name in group}
    if kind in ("Input", "Output"):
        field = "input_type" if kind == "Input" else "output_type"
        side = "input" if kind == "Input" else "output"
        return getattr(nir, kind)(**{field: {side: values["shape"]}}, metadata=metadata)
    if kind in _NEURONS:
        # NIR's classes want equal shapes; a single value stands for every neuron (as in
        # graphs built in memory), so give every parameter the shape of the largest.
        widest = max(values.values(), key=np.size)
        if any(np.shape(v) != np.shape(widest) for v in values.values()):
            if any(np.size(v) not in (1, np.size(widest)) for v in values.values()):
                sizes = ", ".join(f"{name} {np.size(v)}" for name, v in values.items())
                problems.node(
                    key,
                    kind,
                    f"its parameters have different sizes ({sizes}); each holds one "
                    "value or one per neuron",
                )
                return None
            n = np.size(widest)
            values = {
                name: np.broadcast_to(np.reshape(v, -1), (n,)).copy() for name, v in values.items()
            }
    try:
        return getattr(nir, kind)(**values, metadata=metadata)
    except (AssertionError, ValueError, TypeError, IndexError) as exc:
        problems.node(key, kind, f"cannot be built from its datasets ({_show(str(exc), 80)})")
        return None


# ---------------------------------------------------------------------------- conversion


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

    The graph (or file) is validated first, every problem a :class:`SpecError` naming the node
    (see "Validation" in the module's docstring).
    """
    nir = _nir()
    if isinstance(graph, (str, os.PathLike)):
        graph = read_nir(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise SpecError([Problem("graph", f"a {type(graph).__name__} is not a NIRGraph")])
    dt, graph_dt, n_steps, integration, name = _settings(
        graph.metadata, dt, n_steps, graph_dt, integration, name
    )
    nodes, edges = _flatten(nir, graph)
    _check_graph(nodes, edges, dt, n_steps)
    return _Importer(nir, nodes, edges, dt, graph_dt, integration).spec(n_steps, name)


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
        """``nodes`` and ``edges`` as :func:`_flatten` gives them and :func:`_check_graph`
        accepted them."""
        self.nir, self.nodes, self.edges = nir, nodes, edges
        self.dt, self.graph_dt, self.integration = dt, graph_dt, integration
        self.succ = {key: [] for key in nodes}
        self.pred = {key: [] for key in nodes}
        for a, b in edges:
            self.succ[a].append(b)
            self.pred[b].append(a)

    # ----------------------------------------------------------------------------- checks
    def _kind(self, key) -> str:
        return _kind_of(self.nodes[key])

    def _problem(self, key, message, attribute=None) -> SpecError:
        return SpecError([_node_problem(key, self._kind(key), message, attribute)])

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
            raise self._problem(
                key, f"metadata reset {_show(reset)} must be 'zero' or 'subtract'", "metadata.reset"
            )
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
        input_key = next(k for k in self.nodes if self._kind(k) == "Input")
        output_key = next(k for k in self.nodes if self._kind(k) == "Output")
        input_size = _shape_size(self.nodes[input_key].input_type)[0]
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
        declared = _shape_size(self.nodes[output_key].output_type)[0]
        if declared is not None and declared != sizes[fed_output[0]]:
            raise self._problem(
                output_key,
                f"declares {declared} values; {fed_output[0]!r}, which feeds it, has "
                f"{sizes[fed_output[0]]} neurons",
            )

        populations, gains = {}, {}
        for key in neurons:
            populations[key], gains[key] = self._population(key, names[key], sizes[key])

        projections = []
        for (start, end), parts in merged.items():
            source = INPUT if start == input_key else names[start]
            W = sum(M for M, _ in parts)
            delays = _merge_delays(parts, source, names[end])
            W = gains[end][:, None] * W if np.any(gains[end] != 1.0) else W
            with np.errstate(invalid="ignore", over="ignore"):
                peak = np.max(np.abs(W)) if W.size else 0.0
            if not peak <= MAX_MAGNITUDE:  # NaN too
                raise self._problem(
                    end,
                    f"the weights from {start!r} reach {peak:g} once the graph's weight nodes "
                    "and the spike's charge (r, w_in, dt / tau) are multiplied in; at most "
                    f"+-{MAX_MAGNITUDE:g} keeps the membranes finite in float32",
                )
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
        try:
            spec.validate()
        except SpecError as exc:  # said of the nodes the populations and projections come from
            keys = {names[k]: k for k in neurons}
            keys[INPUT] = input_key
            problems = [self._node_terms(p, spec, neurons, keys) for p in exc.problems]
            raise SpecError(problems) from None
        # spec.order() would validate again (a Python loop over every weight)
        position = {name: k for k, name in enumerate(_topological_order(spec))}
        spec.populations.sort(key=lambda p: position[p.name])
        if spec.populations[-1].name == spec.output:
            spec.output = None
        return spec

    def _node_terms(self, problem: Problem, spec: NetworkSpec, neurons, keys) -> Problem:
        """A problem of the converted spec (``populations[k]...``, ``projections[k]...``) said
        of the graph's node it comes from."""
        found = re.fullmatch(r"(populations|projections)\[(\d+)\](.*)", problem.path)
        if not found:
            return problem
        k, rest = int(found.group(2)), found.group(3)
        if found.group(1) == "populations":
            key = neurons[k]
            return _node_problem(key, self._kind(key), problem.message, f"population{rest}")
        proj = spec.projections[k]
        source, target = keys.get(proj.source, proj.source), keys.get(proj.target, proj.target)
        return _node_problem(
            target,
            self._kind(target),
            f"its input from {source!r}: {problem.message}",
            f"input[{source!r}]{rest}",
        )


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
