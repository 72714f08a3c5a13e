"""``NetworkSpec``: a spiking network as plain, validated, serialisable data.

A spec names an input population (its size), neuron populations (model, size, parameters) and
dense projections between them (optionally recurrent, optionally delayed, optionally with
given weights), plus the time step ``dt`` (ms) and the number of steps.  Backends build modules
from a spec; the visual builder edits one; run folders store one as ``spec.json``.

Nothing here raises while a spec is being edited: ``problems()`` lists every issue with the
path of the field it concerns, and ``validate()`` raises :class:`SpecError` with all of them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from workbench.neurons import MODELS

INPUT = "input"  # the reserved name of the input population
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # also a valid parameter name in torch


@dataclass(frozen=True)
class Problem:
    """One validation problem: the dotted path of the field and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(ValueError):
    """A spec (or a setting) is invalid; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


@dataclass
class Population:
    """A group of identical neurons.  ``params`` missing a key take the model's default."""

    name: str
    size: int
    model: str = "lif"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        model = MODELS.get(self.model) if isinstance(self.model, str) else None
        if model is not None and isinstance(self.params, dict):
            self.params = {**model.defaults(), **self.params}

    @property
    def spiking(self) -> bool:
        return MODELS[self.model].spiking


@dataclass
class Projection:
    """Dense all-to-all synapses from ``source`` to ``target`` (weights ``[target, source]``).

    ``recurrent`` marks a projection that closes a cycle (including a population onto itself):
    it carries the spikes of the previous step.  ``delay`` is in steps, either one number for
    the whole projection or one per synapse (nested lists ``[target][source]``).  ``weights``
    optionally fixes the initial weights; otherwise they are drawn from a normal distribution
    with ``weight_mean`` and ``weight_std`` (default ``1 / sqrt(source size)``).
    """

    source: str
    target: str
    recurrent: bool = False
    delay: int | list[list[int]] = 0
    weight_mean: float = 0.0
    weight_std: float | None = None
    weights: list[list[float]] | None = None

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def max_delay(self) -> int:
        if isinstance(self.delay, list):
            return max((max(row, default=0) for row in self.delay), default=0)
        return int(self.delay)


@dataclass
class NetworkSpec:
    """A whole network.  The last population is the output unless ``output`` names another."""

    input_size: int
    populations: list[Population]
    projections: list[Projection]
    dt: float = 1.0
    n_steps: int = 100
    name: str = "network"
    output: str | None = None

    # ----------------------------------------------------------------------------- lookups
    def population(self, name: str) -> Population:
        for pop in self.populations:
            if pop.name == name:
                return pop
        raise KeyError(f"no population named {name!r}; populations: {self.population_names}")

    @property
    def population_names(self) -> list[str]:
        return [p.name for p in self.populations]

    @property
    def output_name(self) -> str:
        return self.output if self.output is not None else self.populations[-1].name

    def size_of(self, name: str) -> int:
        return self.input_size if name == INPUT else self.population(name).size

    def incoming(self, name: str) -> list[Projection]:
        return [p for p in self.projections if p.target == name]

    def reached(self) -> set[str]:
        """The input and every population a chain of projections (recurrent ones included)
        leads to from the input.  A population outside it never receives anything that
        depends on the input: :meth:`problems` reports it."""
        return _reached(self)

    def order(self) -> list[str]:
        """Populations in an order where every non-recurrent source comes before its target."""
        self.validate()
        return _topological_order(self)

    # ----------------------------------------------------------------------------- checks
    def problems(self) -> list[Problem]:
        """Every problem with this spec, each with the path of the field it concerns."""
        return _problems(self)

    def validate(self) -> NetworkSpec:
        problems = self.problems()
        if problems:
            raise SpecError(problems)
        return self

    # ----------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetworkSpec:
        """Build and validate a spec from plain data (as written by :meth:`to_dict`)."""
        problems: list[Problem] = []
        _unknown_keys(data, cls, "", problems)
        lists = {}
        for key in ("populations", "projections"):
            lists[key] = data.get(key) or []
            if not isinstance(lists[key], list):
                problems.append(Problem(key, "must be a list"))
                lists[key] = []
        pops, projs = [], []
        for k, pop in enumerate(lists["populations"]):
            if _unknown_keys(pop, Population, f"populations[{k}].", problems):
                pops.append(Population(**pop))
        for k, proj in enumerate(lists["projections"]):
            if _unknown_keys(proj, Projection, f"projections[{k}].", problems):
                projs.append(Projection(**proj))
        if problems:
            raise SpecError(problems)
        rest = {k: v for k, v in data.items() if k not in ("populations", "projections")}
        return cls(populations=pops, projections=projs, **rest).validate()

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> NetworkSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError([Problem("spec", f"is not valid JSON ({exc})")]) from None
        if not isinstance(data, dict):
            raise SpecError([Problem("spec", "must be a JSON object")])
        return cls.from_dict(data)

    def digest(self) -> str:
        """A short content hash of the spec (stable across sessions)."""
        return hashlib.sha256(self.to_json(indent=None).encode()).hexdigest()[:16]

    # ----------------------------------------------------------------------------- summary
    def summary(self):
        """Neurons, synapses and trainable parameters per population, as a table.

        Synapses and parameters are counted at the target population; a total row closes it.
        """
        import pandas as pd

        rows = []
        for pop in self.populations:
            synapses = sum(self.size_of(p.source) * pop.size for p in self.incoming(pop.name))
            rows.append(
                {
                    "population": pop.name,
                    "model": pop.model,
                    "neurons": pop.size,
                    "synapses": synapses,
                    "parameters": synapses,
                }
            )
        table = pd.DataFrame(
            rows, columns=["population", "model", "neurons", "synapses", "parameters"]
        )
        total = {
            "population": "total",
            "model": "",
            **table[["neurons", "synapses", "parameters"]].sum().to_dict(),
        }
        return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


# --------------------------------------------------------------------------------- helpers
def _unknown_keys(data, cls, prefix: str, problems: list[Problem]) -> bool:
    """Report keys of ``data`` that are not fields of ``cls``, and required fields it lacks."""
    if not isinstance(data, dict):
        problems.append(Problem(prefix.rstrip(".") or "spec", "must be an object"))
        return False
    allowed = {f.name for f in fields(cls)}
    ok = True
    for f in fields(cls):
        if f.default is MISSING and f.default_factory is MISSING and f.name not in data:
            problems.append(Problem(f"{prefix}{f.name}", "is required"))
            ok = False
    for key in data:
        if key not in allowed:
            problems.append(
                Problem(f"{prefix}{key}", f"is not a field; allowed: {', '.join(sorted(allowed))}")
            )
            ok = False
    return ok


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _problems(spec: NetworkSpec) -> list[Problem]:
    out: list[Problem] = []
    add = lambda path, msg: out.append(Problem(path, msg))  # noqa: E731

    if not (_is_number(spec.dt) and math.isfinite(spec.dt) and spec.dt > 0):
        add("dt", f"{spec.dt!r} must be a finite number > 0 (ms)")
    if not (_is_int(spec.n_steps) and spec.n_steps >= 1):
        add("n_steps", f"{spec.n_steps!r} must be an integer >= 1")
    if not (_is_int(spec.input_size) and spec.input_size >= 1):
        add("input_size", f"{spec.input_size!r} must be an integer >= 1")
    if not isinstance(spec.name, str) or not spec.name:
        add("name", "must be a non-empty string")
    if not spec.populations:
        add("populations", "must hold at least one population")

    seen: set[str] = set()
    for k, pop in enumerate(spec.populations):
        path = f"populations[{k}]"
        if not isinstance(pop.name, str) or not _NAME.fullmatch(pop.name) or "__" in pop.name:
            add(
                f"{path}.name",
                f"{pop.name!r} must be letters, digits and single underscores, "
                "starting with a letter",
            )
        elif pop.name == INPUT:
            add(f"{path}.name", f"{INPUT!r} is reserved for the input population")
        elif pop.name in seen:
            add(f"{path}.name", f"{pop.name!r} is used by another population; names are unique")
        seen.add(pop.name)
        if not (_is_int(pop.size) and pop.size >= 1):
            add(f"{path}.size", f"{pop.size!r} must be an integer >= 1")
        model = MODELS.get(pop.model) if isinstance(pop.model, str) else None
        if model is None:
            add(f"{path}.model", f"{pop.model!r} is not known; choose one of {sorted(MODELS)}")
            continue
        if not isinstance(pop.params, dict):
            add(f"{path}.params", "must be an object of parameter names and values")
            continue
        for key in model.params:
            if key not in pop.params:
                add(
                    f"{path}.params.{key}",
                    f"is missing; {pop.model!r} needs it (default {model.params[key].default!r})",
                )
        for key, value in pop.params.items():
            p = model.params.get(key)
            ppath = f"{path}.params.{key}"
            if p is None:
                add(ppath, f"is not a parameter of {pop.model!r}; allowed: {sorted(model.params)}")
            elif p.choices:
                if value not in p.choices:
                    add(ppath, f"{value!r} must be {p.describe_range()}")
            elif not (_is_int(value) if p.integer else _is_number(value)) or not math.isfinite(
                value
            ):
                add(ppath, f"{value!r} must be {p.describe_range()}")
            elif (
                p.low is not None and (value < p.low or (value == p.low and not p.low_inclusive))
            ) or (p.high is not None and value > p.high):
                add(
                    ppath, f"{value!r} must be {p.describe_range()}{' ' + p.unit if p.unit else ''}"
                )
            elif (
                p.unit == "ms"
                and key.startswith("tau")
                and _is_number(spec.dt)
                and value <= spec.dt
                and not (key == "tau_syn" and value == 0)  # 0: no synaptic current
            ):
                add(
                    ppath,
                    f"{value!r} ms must be > dt ({spec.dt:g} ms) for the step to resolve it"
                    + (" (or 0: no synaptic current)" if key == "tau_syn" else ""),
                )

    names = {INPUT, *spec.population_names}
    pairs: set[tuple[str, str]] = set()
    for k, proj in enumerate(spec.projections):
        path = f"projections[{k}]"
        if proj.source not in names:
            add(
                f"{path}.source",
                f"{proj.source!r} is not a population; choose one of {sorted(names)}",
            )
        if proj.target not in names - {INPUT}:
            add(
                f"{path}.target",
                f"{proj.target!r} is not a neuron population; "
                f"choose one of {sorted(names - {INPUT})}",
            )
        if (proj.source, proj.target) in pairs:
            add(path, f"{proj.name} is declared twice; merge the two projections")
        pairs.add((proj.source, proj.target))
        if not isinstance(proj.recurrent, bool):
            add(f"{path}.recurrent", f"{proj.recurrent!r} must be true or false")
        if proj.source == proj.target and not proj.recurrent:
            add(
                f"{path}.recurrent",
                f"{proj.name} connects a population to itself; set recurrent=True",
            )
        source_model = next(
            (
                MODELS.get(p.model)
                for p in spec.populations
                if p.name == proj.source and isinstance(p.model, str)
            ),
            None,
        )
        if source_model is not None and not source_model.spiking:
            add(f"{path}.source", f"{proj.source!r} is a non-spiking readout; it cannot project")
        if proj.source == INPUT and proj.recurrent is True:
            add(f"{path}.recurrent", "a projection from the input cannot be recurrent")
        if not (_is_number(proj.weight_mean) and math.isfinite(proj.weight_mean)):
            add(f"{path}.weight_mean", f"{proj.weight_mean!r} must be a finite number")
        if proj.weight_std is not None and not (
            _is_number(proj.weight_std) and math.isfinite(proj.weight_std) and proj.weight_std >= 0
        ):
            add(f"{path}.weight_std", f"{proj.weight_std!r} must be a finite number >= 0, or null")
        if proj.source not in names or proj.target not in names - {INPUT}:
            continue
        shape = (spec.size_of(proj.target), spec.size_of(proj.source))
        max_delay = spec.n_steps - 1 if _is_int(spec.n_steps) else None
        if isinstance(proj.delay, list):
            _check_matrix(
                proj.delay, shape, f"{path}.delay", add, integer=True, low=0, high=max_delay
            )
        elif not (
            _is_int(proj.delay)
            and proj.delay >= 0
            and (max_delay is None or proj.delay <= max_delay)
        ):
            add(f"{path}.delay", f"{proj.delay!r} must be an integer from 0 to {max_delay} steps")
        if proj.weights is not None:
            _check_matrix(proj.weights, shape, f"{path}.weights", add)

    if spec.output is not None and spec.output not in spec.population_names:
        add("output", f"{spec.output!r} is not a population; choose one of {spec.population_names}")

    cycle = _find_cycle(spec)
    if cycle:
        edges = " -> ".join(cycle)
        add(
            "projections",
            f"the cycle {edges} has no projection marked recurrent; mark one recurrent=True",
        )

    reached = _reached(spec)
    for k, pop in enumerate(spec.populations):
        if pop.name not in reached:
            add(f"populations[{k}]", _unreached_message(spec, pop.name))
    return out


def _reached(spec: NetworkSpec) -> set[str]:
    """The input and every population a chain of projections leads to from it."""
    seen, todo = {INPUT}, [INPUT]
    while todo:
        source = todo.pop()
        for proj in spec.projections:
            if proj.source == source and proj.target not in seen:
                seen.add(proj.target)
                todo.append(proj.target)
    return seen


def _unreached_message(spec: NetworkSpec, name: str) -> str:
    """Why the input never reaches population ``name``."""
    sources = list(dict.fromkeys(p.source for p in spec.projections if p.target == name))
    if not sources:
        return f"{name!r} receives no projection: the input never reaches it; connect one to it"
    if sources == [name]:
        return (
            f"{name!r} receives only its own self-projection: the input never reaches "
            "it; connect one from the input or another population to it"
        )
    others = ", ".join(repr(s) for s in sources if s != name)
    return (
        f"{name!r} is not reached from the input: its projections come from {others}, which "
        "the input does not reach either"
    )


def _check_matrix(m, shape, path, add, integer=False, low=None, high=None) -> None:
    rows, cols = shape
    if (
        not isinstance(m, list)
        or len(m) != rows
        or any(not isinstance(r, list) or len(r) != cols for r in m)
    ):
        add(path, f"must be a [target][source] matrix of shape {rows} x {cols}")
        return
    for i, row in enumerate(m):
        for j, x in enumerate(row):
            good = (_is_int(x) if integer else _is_number(x)) and math.isfinite(x)
            good = good and (low is None or x >= low) and (high is None or x <= high)
            if not good:
                rng = "an integer" if integer else "a finite number"
                if low is not None:
                    rng += f" from {low} to {high}"
                add(f"{path}[{i}][{j}]", f"{x!r} must be {rng}")
                return


def _forward_edges(spec: NetworkSpec) -> dict[str, list[str]]:
    edges: dict[str, list[str]] = {name: [] for name in spec.population_names}
    for proj in spec.projections:
        if not proj.recurrent and proj.source != INPUT and proj.source in edges:
            edges[proj.source].append(proj.target)
    return edges


def _find_cycle(spec: NetworkSpec) -> list[str] | None:
    edges = _forward_edges(spec)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for name in edges:
        if name not in state and (found := visit(name)):
            return found
    return None


def _topological_order(spec: NetworkSpec) -> list[str]:
    edges = _forward_edges(spec)
    indegree = {name: 0 for name in edges}
    for targets in edges.values():
        for t in targets:
            indegree[t] += 1
    ready = [n for n in spec.population_names if indegree[n] == 0]
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for t in edges[node]:
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    return order


def feedforward(
    sizes: list[int],
    model: str = "lif",
    output_model: str = "li",
    params: dict | None = None,
    output_params: dict | None = None,
    dt: float = 1.0,
    n_steps: int = 100,
    name: str = "network",
    weight_init: dict[str, dict] | None = None,
) -> NetworkSpec:
    """A layered spec ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``: the common case in one call.

    Hidden populations are named ``hidden`` (or ``hidden1``, ``hidden2``, ...) and the last
    one ``output``.  ``weight_init`` maps projection names (``"input->hidden"``) to
    ``weight_mean``/``weight_std``.
    """
    hidden = sizes[1:-1]
    names = ["hidden"] if len(hidden) == 1 else [f"hidden{k + 1}" for k in range(len(hidden))]
    pops = [Population(n, s, model, dict(params or {})) for n, s in zip(names, hidden)]
    pops.append(Population("output", sizes[-1], output_model, dict(output_params or {})))
    chain = [INPUT, *names, "output"]
    links = [f"{a}->{b}" for a, b in zip(chain[:-1], chain[1:])]
    weight_init = weight_init or {}
    unknown = sorted(set(weight_init) - set(links))
    if unknown:
        raise SpecError(
            [
                Problem(f"weight_init.{k}", f"is not a projection; choose from {links}")
                for k in unknown
            ]
        )
    projs = [
        Projection(a, b, **weight_init.get(link, {}))
        for a, b, link in zip(chain[:-1], chain[1:], links)
    ]
    return NetworkSpec(sizes[0], pops, projs, dt=dt, n_steps=n_steps, name=name).validate()
