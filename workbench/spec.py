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
import os
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from workbench.neuron_models import MODELS

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

    def validate(self, memory_limit: int | None = None) -> NetworkSpec:
        """Raise :class:`SpecError` with every problem; also when the network's weights alone
        would not fit in the memory limit (``memory_limit`` bytes, default
        :func:`workbench.limits.memory_limit`), so no backend allocates them."""
        problems = self.problems()
        if not problems:
            from workbench.limits import weight_memory_problems

            problems = weight_memory_problems(self, memory_limit)
        if problems:
            raise SpecError(problems)
        return self

    # ----------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetworkSpec:
        """Build and validate a spec from plain data (as written by :meth:`to_dict`).  Every
        type is checked before it is used, so any data gives a spec or a :class:`SpecError`."""
        from workbench.limits import MAX_POPULATIONS, MAX_PROJECTIONS

        problems: list[Problem] = []
        if not _unknown_keys(data, cls, "", problems) and not isinstance(data, dict):
            raise SpecError(problems)
        lists = {}
        for key, most in (("populations", MAX_POPULATIONS), ("projections", MAX_PROJECTIONS)):
            lists[key] = data.get(key)
            if lists[key] is None:
                lists[key] = []
            if not isinstance(lists[key], list):
                problems.append(Problem(key, "must be a list"))
                lists[key] = []
            elif len(lists[key]) > most:
                problems.append(Problem(key, f"has {len(lists[key])} entries; at most {most}"))
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
    def from_json(cls, text: str | bytes, max_bytes: int | None = None) -> NetworkSpec:
        """Parse and validate JSON ``text``; its size (at most ``max_bytes``, default
        :data:`workbench.limits.MAX_JSON_BYTES`) and nesting depth are checked before it is
        parsed.  Any text gives a spec or a :class:`SpecError` at ``spec``."""
        from workbench.limits import MAX_JSON_BYTES, parse_json

        data = parse_json(text, "spec", max_bytes or MAX_JSON_BYTES)
        if not isinstance(data, dict):
            raise SpecError([Problem("spec", "must be a JSON object")])
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike, max_bytes: int | None = None) -> NetworkSpec:
        """Read and validate a spec JSON file; a file over ``max_bytes`` (default
        :data:`workbench.limits.MAX_JSON_BYTES`) is refused from its size, unread."""
        from workbench.limits import MAX_JSON_BYTES, read_json_file

        data = read_json_file(path, "spec", max_bytes or MAX_JSON_BYTES)
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
    from workbench.limits import key_name

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
        if not isinstance(key, str) or key not in allowed:
            problems.append(
                Problem(
                    f"{prefix}{key_name(key)}",
                    f"is not a field; allowed: {', '.join(sorted(allowed))}",
                )
            )
            ok = False
    return ok


def _show(value) -> str:
    from workbench.limits import show

    return show(value)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _problems(spec: NetworkSpec) -> list[Problem]:
    """Every problem of ``spec``.  Types are checked before values are compared or hashed, and
    counts before anything is walked, so no input raises here (only problems come back)."""
    from workbench.limits import (
        BOUNDS,
        MAX_DT,
        MAX_MAGNITUDE,
        MAX_POPULATIONS,
        MAX_PROJECTIONS,
        MIN_DT,
        is_finite,
        show,
    )

    out: list[Problem] = []
    add = lambda path, msg: out.append(Problem(path, msg))  # noqa: E731

    if not (_is_number(spec.dt) and is_finite(spec.dt) and MIN_DT <= spec.dt <= MAX_DT):
        add(
            "dt",
            f"{show(spec.dt)} must be a finite number > 0 (ms), from {MIN_DT:g} to {MAX_DT:g} ms",
        )
    n_steps = BOUNDS["n_steps"]
    if not n_steps.contains(spec.n_steps):
        add("n_steps", f"{show(spec.n_steps)} must be {n_steps.describe()}")
    if not BOUNDS["input_size"].contains(spec.input_size):
        add("input_size", f"{show(spec.input_size)} must be {BOUNDS['input_size'].describe()}")
    if not isinstance(spec.name, str) or not spec.name:
        add("name", "must be a non-empty string")
    for key, most, cls in (
        ("populations", MAX_POPULATIONS, Population),
        ("projections", MAX_PROJECTIONS, Projection),
    ):
        items = getattr(spec, key)
        if not isinstance(items, list):
            add(key, f"must be a list of {cls.__name__} objects")
            return out
        if len(items) > most:
            add(key, f"has {len(items)} entries; at most {most}")
            return out
        for k, item in enumerate(items):
            if not isinstance(item, cls):
                add(f"{key}[{k}]", f"{show(item)} must be a {cls.__name__}")
        if len(out) and any(not isinstance(i, cls) for i in items):
            return out
    if not spec.populations:
        add("populations", "must hold at least one population")

    seen: set[str] = set()
    models: dict[str, object] = {}
    for k, pop in enumerate(spec.populations):
        path = f"populations[{k}]"
        if not isinstance(pop.name, str) or not _NAME.fullmatch(pop.name) or "__" in pop.name:
            add(
                f"{path}.name",
                f"{show(pop.name)} must be letters, digits and single underscores, "
                "starting with a letter",
            )
        elif pop.name == INPUT:
            add(f"{path}.name", f"{INPUT!r} is reserved for the input population")
        elif pop.name in seen:
            add(f"{path}.name", f"{pop.name!r} is used by another population; names are unique")
        if isinstance(pop.name, str):
            seen.add(pop.name)
        if not BOUNDS["size"].contains(pop.size):
            add(f"{path}.size", f"{show(pop.size)} must be {BOUNDS['size'].describe()}")
        model = MODELS.get(pop.model) if isinstance(pop.model, str) else None
        if isinstance(pop.name, str):
            models.setdefault(pop.name, model)
        if model is None:
            add(f"{path}.model", f"{show(pop.model)} is not known; choose one of {sorted(MODELS)}")
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
            p = model.params.get(key) if isinstance(key, str) else None
            ppath = f"{path}.params.{key if isinstance(key, str) else show(key)}"
            if p is None:
                add(ppath, f"is not a parameter of {pop.model!r}; allowed: {sorted(model.params)}")
            elif p.choices:
                if not isinstance(value, str) or value not in p.choices:
                    add(ppath, f"{show(value)} must be {p.describe_range()}")
            elif not (_is_int(value) if p.integer else _is_number(value)) or not is_finite(value):
                add(ppath, f"{show(value)} must be {p.describe_range()}")
            elif (
                p.low is not None and (value < p.low or (value == p.low and not p.low_inclusive))
            ) or (p.high is not None and value > p.high):
                add(
                    ppath,
                    f"{show(value)} must be {p.describe_range()}{' ' + p.unit if p.unit else ''}",
                )
            elif abs(value) > MAX_MAGNITUDE:
                add(ppath, f"{show(value)} must be within +-{MAX_MAGNITUDE:g} (float32 range)")
            elif (
                p.unit == "ms"
                and key.startswith("tau")
                and is_finite(spec.dt)
                and value <= spec.dt
                and not (key == "tau_syn" and value == 0)  # 0: no synaptic current
            ):
                add(
                    ppath,
                    f"{value!r} ms must be > dt ({spec.dt:g} ms) for the step to resolve it"
                    + (" (or 0: no synaptic current)" if key == "tau_syn" else ""),
                )

    names = {INPUT, *seen}
    sizes = {p.name: p.size for p in spec.populations if isinstance(p.name, str)}
    sizes[INPUT] = spec.input_size
    pairs: set[tuple[str, str]] = set()
    for k, proj in enumerate(spec.projections):
        path = f"projections[{k}]"
        source_ok = isinstance(proj.source, str) and proj.source in names
        target_ok = isinstance(proj.target, str) and proj.target in names - {INPUT}
        if not source_ok:
            add(
                f"{path}.source",
                f"{show(proj.source)} is not a population; choose one of {sorted(names)}",
            )
        if not target_ok:
            add(
                f"{path}.target",
                f"{show(proj.target)} is not a neuron population; "
                f"choose one of {sorted(names - {INPUT})}",
            )
        if not isinstance(proj.recurrent, bool):
            add(f"{path}.recurrent", f"{show(proj.recurrent)} must be true or false")
        if not (_is_number(proj.weight_mean) and is_finite(proj.weight_mean)) or (
            abs(proj.weight_mean) > MAX_MAGNITUDE
        ):
            add(
                f"{path}.weight_mean",
                f"{show(proj.weight_mean)} must be a finite number within +-{MAX_MAGNITUDE:g}",
            )
        if proj.weight_std is not None and not (
            _is_number(proj.weight_std)
            and is_finite(proj.weight_std)
            and 0 <= proj.weight_std <= MAX_MAGNITUDE
        ):
            add(
                f"{path}.weight_std",
                f"{show(proj.weight_std)} must be a finite number >= 0 and <= "
                f"{MAX_MAGNITUDE:g}, or null",
            )
        if not (isinstance(proj.source, str) and isinstance(proj.target, str)):
            continue
        if (proj.source, proj.target) in pairs:
            add(path, f"{proj.name} is declared twice; merge the two projections")
        pairs.add((proj.source, proj.target))
        if proj.source == proj.target and proj.recurrent is not True:
            add(
                f"{path}.recurrent",
                f"{proj.name} connects a population to itself; set recurrent=True",
            )
        source_model = models.get(proj.source)
        if source_model is not None and not source_model.spiking:
            add(f"{path}.source", f"{proj.source!r} is a non-spiking readout; it cannot project")
        if proj.source == INPUT and proj.recurrent is True:
            add(f"{path}.recurrent", "a projection from the input cannot be recurrent")
        if not (source_ok and target_ok):
            continue
        shape = (sizes[proj.target], sizes[proj.source])
        max_delay = spec.n_steps - 1 if n_steps.contains(spec.n_steps) else None
        if isinstance(proj.delay, list):
            if _is_int(shape[0]) and _is_int(shape[1]):
                _check_matrix(
                    proj.delay, shape, f"{path}.delay", add, integer=True, low=0, high=max_delay
                )
        elif not (
            _is_int(proj.delay)
            and proj.delay >= 0
            and (max_delay is None or proj.delay <= max_delay)
        ):
            add(
                f"{path}.delay",
                f"{show(proj.delay)} must be an integer from 0 to {max_delay} steps",
            )
        if proj.weights is not None and _is_int(shape[0]) and _is_int(shape[1]):
            _check_matrix(
                proj.weights, shape, f"{path}.weights", add, low=-MAX_MAGNITUDE, high=MAX_MAGNITUDE
            )

    if spec.output is not None and not (isinstance(spec.output, str) and spec.output in seen):
        add(
            "output",
            f"{show(spec.output)} is not a population; choose one of {spec.population_names}",
        )

    cycle = _find_cycle(spec)
    if cycle:
        edges = " -> ".join(cycle)
        add(
            "projections",
            f"the cycle {edges} has no projection marked recurrent; mark one recurrent=True",
        )

    reached = _reached(spec)
    for k, pop in enumerate(spec.populations):
        if isinstance(pop.name, str) and pop.name not in reached:
            add(f"populations[{k}]", _unreached_message(spec, pop.name))
    return out


def _named(spec: NetworkSpec) -> list[Projection]:
    """The projections whose source and target are names (others are reported elsewhere)."""
    return [p for p in spec.projections if isinstance(p.source, str) and isinstance(p.target, str)]


def _reached(spec: NetworkSpec) -> set[str]:
    """The input and every population a chain of projections leads to from it."""
    targets: dict[str, list[str]] = {}
    for proj in _named(spec):
        targets.setdefault(proj.source, []).append(proj.target)
    seen, todo = {INPUT}, [INPUT]
    while todo:
        for target in targets.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _unreached_message(spec: NetworkSpec, name: str) -> str:
    """Why the input never reaches population ``name``."""
    sources = list(dict.fromkeys(p.source for p in _named(spec) if p.target == name))
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
    from workbench.limits import is_finite

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
            good = (_is_int(x) if integer else _is_number(x)) and is_finite(x)
            good = good and (low is None or x >= low) and (high is None or x <= high)
            if not good:
                if integer:
                    rng = "an integer"
                    if low is not None:
                        rng += f" from {low} to {high}"
                else:
                    rng = "a finite number"
                    if high is not None:
                        rng += f" within +-{high:g}"
                add(f"{path}[{i}][{j}]", f"{_show(x)} must be {rng}")
                return


def _forward_edges(spec: NetworkSpec) -> dict[str, list[str]]:
    edges: dict[str, list[str]] = {
        name: [] for name in spec.population_names if isinstance(name, str)
    }
    for proj in _named(spec):
        if proj.recurrent is not True and proj.source != INPUT and proj.source in edges:
            edges[proj.source].append(proj.target)
    return edges


def _find_cycle(spec: NetworkSpec) -> list[str] | None:
    """A cycle of non-recurrent projections, as the names along it (None when there is none);
    an iterative depth-first search, so a chain of any length is walked without recursion."""
    edges = _forward_edges(spec)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        path: list[str] = [start]
        state[start] = 1
        stack = [iter(edges[start])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state and nxt in edges:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges[nxt]))
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
    recurrent: bool = False,
) -> NetworkSpec:
    """A layered spec ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``: the common case in one call.

    Hidden populations are named ``hidden`` (or ``hidden1``, ``hidden2``, ...) and the last
    one ``output``.  ``recurrent``: each hidden population also projects onto itself (its
    spikes of the previous step), as the recurrent networks trained on spoken words do.
    ``weight_init`` maps projection names (``"input->hidden"``, ``"hidden->hidden"``) to
    ``weight_mean``/``weight_std``.
    """
    hidden = sizes[1:-1]
    names = ["hidden"] if len(hidden) == 1 else [f"hidden{k + 1}" for k in range(len(hidden))]
    pops = [Population(n, s, model, dict(params or {})) for n, s in zip(names, hidden)]
    pops.append(Population("output", sizes[-1], output_model, dict(output_params or {})))
    chain = [INPUT, *names, "output"]
    pairs = list(zip(chain[:-1], chain[1:]))
    if recurrent:
        pairs += [(n, n) for n in names]
    links = [f"{a}->{b}" for a, b in pairs]
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
        Projection(a, b, recurrent=a == b, **weight_init.get(link, {}))
        for (a, b), link in zip(pairs, links)
    ]
    return NetworkSpec(sizes[0], pops, projs, dt=dt, n_steps=n_steps, name=name).validate()
