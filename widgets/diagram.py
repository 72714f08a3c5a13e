"""The network builder's model: a :class:`NetworkSpec` as a diagram and back, in pure functions.

A diagram is two lists of plain dicts, the ones ``panel_reactflow.ReactFlow`` takes: nodes
(``id``, ``type``, ``position``, ``data``, ...) and edges (``id``, ``source``, ``target``,
``data``, ...).  Node ids are population names (``input`` for the input), edge ids
``"source->target"`` (``"source->target:1"``, ... for a second one); a node's ``data`` holds its
population's fields (``name``, ``model``, ``size`` and the model's parameters), an edge's the
projection's (``recurrent``, ``delay``, ``weight_mean``, ``weight_std``, ``weights``).  The
spec's other fields (``name``, ``dt``, ``n_steps``, ``output``) travel beside the diagram as
``meta``.

- spec -> diagram: :func:`nodes_and_edges` (positions from :func:`layout` unless given),
  :func:`decorate` (labels and styles, each problem at its node or edge).
- diagram -> spec: :func:`spec_from_diagram` builds the *draft* (the network the diagram shows,
  possibly invalid) with its problems; :func:`problems_by_element` attributes them to nodes and
  edges; :func:`needs_redraw` says whether the diagram differs from how the draft is drawn.
- positions: :func:`layout` (columns by :func:`depths`, clear of the nodes kept where they are),
  :func:`needs_layout` (a connection moved a population to another column, or reached it),
  :func:`place_new_node` (inside the visible area, overlapping no node), :func:`visible_area`
  and :func:`fit_viewport` (React Flow's viewport ``{x, y, zoom}``).

Nothing here imports Panel or Bokeh: only the core and the standard library.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from workbench.neurons import MODELS
from workbench.spec import INPUT, NetworkSpec, Population, Problem, Projection

INPUT_TYPE = "wb_input"  # node type of the input
POPULATION_TYPE = "wb_population"  # node type of a population
PROJECTION_KEYS = ("recurrent", "delay", "weight_mean", "weight_std", "weights")
POPULATION_KEYS = ("name", "model", "size")
DEFAULT_SIZE = 16  # neurons of a population added without a size
COLUMN = 230  # px between the columns of the layout
ROW = 140  # px between the rows of a column
NODE_WIDTH = 150  # px: a node's width, inline in its style: React Flow measures it right away
PROBLEM_WIDTH = 230  # px: the width of a node that shows problems
LINE = 20  # px: the height of one line of a node's label
GAP = 20  # px kept free around a node when placing or laying out
PANE = {"width": 600, "height": 480}  # the diagram's size (px) when the browser has not told it
FIT_PADDING = 0.1  # margin of a fitted view, as React Flow's fitView
PROBLEM_STYLE = {"border": "2px solid #d32f2f", "background": "#ffebee", "width": PROBLEM_WIDTH}
_PATH = re.compile(r"(populations|projections)\[(\d+)\]")

Position = dict  # {"x": float, "y": float}


# ------------------------------------------------------------------------------ boxes
@dataclass(frozen=True)
class Box:
    """A rectangle in the diagram's coordinates (y down)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def at(cls, position: Mapping, size: tuple[float, float]) -> Box:
        x, y = float(position["x"]), float(position["y"])
        return cls(x, y, x + size[0], y + size[1])

    def overlaps(self, other: Box, gap: float = 0.0) -> bool:
        return (
            self.x0 < other.x1 + gap
            and other.x0 < self.x1 + gap
            and self.y0 < other.y1 + gap
            and other.y0 < self.y1 + gap
        )

    def inside(self, other: Box) -> bool:
        return (
            self.x0 >= other.x0
            and self.y0 >= other.y0
            and self.x1 <= other.x1
            and self.y1 <= other.y1
        )

    @staticmethod
    def around(boxes: Iterable[Box]) -> Box | None:
        boxes = list(boxes)
        if not boxes:
            return None
        return Box(
            min(b.x0 for b in boxes),
            min(b.y0 for b in boxes),
            max(b.x1 for b in boxes),
            max(b.y1 for b in boxes),
        )


def node_size(node: Mapping) -> tuple[float, float]:
    """About how large the browser draws ``node`` (px at zoom 1): its style's width, one line
    per label line (wrapped at the width), and a margin."""
    width = float((node.get("style") or {}).get("width") or NODE_WIDTH)
    per_line = max(1, int((width - 24) / 7))  # characters of ~7 px
    label = str(node.get("label") or node.get("id") or "")
    lines = sum(max(1, math.ceil(len(line) / per_line)) for line in label.split("\n"))
    return width, 24.0 + LINE * max(lines, 2)


def node_box(node: Mapping) -> Box:
    return Box.at(node.get("position") or {"x": 0.0, "y": 0.0}, node_size(node))


# ------------------------------------------------------------------------------ layout
def depths(spec: NetworkSpec) -> dict[str, int]:
    """Each population's column: the longest feed-forward path to it from the input (the
    input 0, a population without feed-forward inputs 1).  Recurrent projections do not count;
    a feed-forward cycle (invalid) stops after as many rounds as there are populations."""
    depth = {INPUT: 0, **{p.name: 1 for p in spec.populations}}
    for _ in range(len(spec.populations)):
        changed = False
        for proj in spec.projections:
            if proj.recurrent is True or proj.source == proj.target:
                continue
            if proj.source in depth and proj.target in depth and proj.target != INPUT:
                if depth[proj.source] + 1 > depth[proj.target]:
                    depth[proj.target] = depth[proj.source] + 1
                    changed = True
        if not changed:
            break
    return depth


def columns(spec: NetworkSpec) -> dict[str, int | None]:
    """:func:`depths` of the input and the populations it reaches; ``None`` for the others
    (they have no place in the layout until connected)."""
    reached = spec.reached()
    return {name: (d if name in reached else None) for name, d in depths(spec).items()}


def layout(
    spec: NetworkSpec,
    keep: Mapping[str, Position] | None = None,
    origin: Position | None = None,
) -> dict[str, Position]:
    """Positions of the input and every population: columns by :func:`depths` (``COLUMN``
    apart, from ``origin``, by default the kept input's position or 0, 0), each column's
    populations in spec order ``ROW`` apart, centred on the input's row.  Those in ``keep``
    stay where they are, and the others are moved down their column until they overlap none
    of them."""
    keep = {name: dict(pos) for name, pos in (keep or {}).items()}
    origin = origin or keep.get(INPUT) or {"x": 0.0, "y": 0.0}
    ox, oy = float(origin["x"]), float(origin["y"])
    size = (NODE_WIDTH, 24.0 + 2 * LINE)
    taken = [Box.at(pos, size) for pos in keep.values()]
    depth = depths(spec)
    by_column: dict[int, list[str]] = {}
    for name in [INPUT, *(p.name for p in spec.populations)]:
        if name not in keep:
            by_column.setdefault(depth[name], []).append(name)
    out = dict(keep)
    for col, names in sorted(by_column.items()):
        x, lowest = ox + col * COLUMN, -math.inf
        for k, name in enumerate(names):
            y = max(oy + (k - (len(names) - 1) / 2) * ROW, lowest)
            while hit := next(
                (b for b in taken if b.overlaps(Box.at({"x": x, "y": y}, size), GAP)), None
            ):
                y = hit.y1 + GAP
            out[name] = {"x": float(x), "y": float(y)}
            taken.append(Box.at(out[name], size))
            lowest = y + ROW
    return out


def needs_layout(before: NetworkSpec, after: NetworkSpec) -> bool:
    """Whether an edit moved a population the input reaches into another column, or made the
    input reach one it did not (a projection connected it): then the diagram is laid out
    again.  Added, removed and renamed populations, and those the input no longer reaches,
    do not count."""
    old, new = columns(before), columns(after)
    return any(col is not None and name in old and old[name] != col for name, col in new.items())


def relayout(
    spec: NetworkSpec, positions: Mapping[str, Position], pinned: Iterable[str] = ()
) -> dict[str, Position]:
    """:func:`layout` after a connection: the input, the populations the user placed
    (``pinned``) and those the input does not reach stay where they are; the others take
    their columns, clear of those."""
    reached = spec.reached()
    stay = {INPUT, *pinned, *(p.name for p in spec.populations if p.name not in reached)}
    return layout(spec, keep={n: positions[n] for n in stay if n in positions})


def place_new_node(
    nodes: Iterable[Mapping],
    visible: Box | None = None,
    size: tuple[float, float] = (PROBLEM_WIDTH, 24.0 + 5 * LINE),
    near: Position | None = None,
) -> Position:
    """Where a new node of ``size`` goes: overlapping none of ``nodes`` (with a gap), inside
    ``visible`` (the diagram's visible area) when it has room, as close as can be to ``near``
    (by default just below the populations of the column before the last)."""
    nodes = list(nodes)
    taken = [node_box(n) for n in nodes]
    if near is None:
        xs = [float(n["position"]["x"]) for n in nodes if n.get("id") != INPUT]
        x = max(float(COLUMN), max(xs, default=2.0 * COLUMN) - COLUMN)
        ys = [b.y1 for b in taken if abs(b.x0 - x) < COLUMN / 2]
        near = {"x": x, "y": max(ys, default=-GAP) + GAP}
    nx, ny = float(near["x"]), float(near["y"])

    def free(x: float, y: float) -> bool:
        box = Box.at({"x": x, "y": y}, size)
        return not any(box.overlaps(t, GAP) for t in taken)

    def cost(point: tuple[float, float]) -> float:  # stay in the column rather than the row
        return 2 * abs(point[0] - nx) + abs(point[1] - ny)

    def grid(low: float, room: float) -> set[float]:  # at most 60 places GAP / 2 apart or more
        step = max(GAP / 2, room / 60)
        return {low + GAP + k * step for k in range(max(0, int((room - 2 * GAP) / step)) + 1)}

    xs = {nx, *(b.x0 for b in taken)}
    if visible is not None:
        xs |= grid(visible.x0, visible.x1 - visible.x0 - size[0])
        ys = grid(visible.y0, visible.y1 - visible.y0 - size[1])
        inside = [
            (x, y)
            for x in xs
            for y in ys
            if Box.at({"x": x, "y": y}, size).inside(visible) and free(x, y)
        ]
        if inside:
            x, y = min(inside, key=cost)
            return {"x": float(x), "y": float(y)}
    # No room in view (or no view known): the nearest free place in ``near``'s column or row.
    ys = {ny, *(b.y1 + GAP for b in taken), *(b.y0 - GAP - size[1] for b in taken)}
    candidates = [(x, y) for x in xs for y in ys if free(x, y)]
    x, y = min(candidates, key=cost) if candidates else (nx, max(b.y1 for b in taken) + GAP)
    return {"x": float(x), "y": float(y)}


def visible_area(viewport: Mapping | None, pane: Mapping | None = None) -> Box | None:
    """The part of the diagram the browser shows: React Flow's ``viewport`` (``x``, ``y``: the
    translation in px, ``zoom``) over a pane of ``pane``'s ``width`` x ``height`` px (by
    default :data:`PANE`); ``None`` when the viewport is not known."""
    if not viewport or not viewport.get("zoom"):
        return None
    pane = pane or PANE
    zoom, x, y = float(viewport["zoom"]), float(viewport["x"]), float(viewport["y"])
    return Box(-x / zoom, -y / zoom, (pane["width"] - x) / zoom, (pane["height"] - y) / zoom)


def fit_viewport(
    area: Box,
    pane: Mapping | None = None,
    min_zoom: float = 0.2,
    max_zoom: float = 1.5,
    padding: float = FIT_PADDING,
) -> dict:
    """The viewport that shows ``area`` whole and centred in ``pane``, as React Flow's fitView
    computes it."""
    pane = pane or PANE
    width, height = max(area.x1 - area.x0, 1.0), max(area.y1 - area.y0, 1.0)
    zoom = min(pane["width"] / (width * (1 + padding)), pane["height"] / (height * (1 + padding)))
    zoom = min(max(zoom, min_zoom), max_zoom)
    cx, cy = (area.x0 + area.x1) / 2, (area.y0 + area.y1) / 2
    return {"x": pane["width"] / 2 - cx * zoom, "y": pane["height"] / 2 - cy * zoom, "zoom": zoom}


# ------------------------------------------------------------------------------ spec -> diagram
def make_node(node_id: str, node_type: str, data: dict, position: Position | None) -> dict:
    """A node as ReactFlow takes it (without its look: see :func:`decorate`)."""
    return {
        "id": node_id,
        "type": node_type,
        "position": dict(position or {"x": 0.0, "y": 0.0}),
        "data": data,
        "label": node_id,
        "selected": False,
        "draggable": True,
        "connectable": True,
        "deletable": node_type != INPUT_TYPE,
    }


def is_input(node: Mapping) -> bool:
    return node["id"] == INPUT or node.get("type") == INPUT_TYPE


def population_data(pop: Population) -> dict:
    return {"name": pop.name, "model": pop.model, "size": pop.size, **copy.deepcopy(pop.params)}


def projection_data(proj: Projection) -> dict:
    return {key: copy.deepcopy(getattr(proj, key)) for key in PROJECTION_KEYS}


def new_population_data(name: str, model: str, size: int) -> dict:
    """A new population's node data: ``model``'s default parameters."""
    params = MODELS[model].defaults() if model in MODELS else {}
    return {"name": name, "model": model, "size": size, **params}


def new_projection_data(recurrent: bool = False, **fields) -> dict:
    return {
        "recurrent": recurrent,
        "delay": 0,
        "weight_mean": 0.0,
        "weight_std": None,
        "weights": None,
        **fields,
    }


def unused(base: str, taken: Iterable[str], sep: str) -> str:
    """``base``, or ``base<sep>1``, ``base<sep>2``, ... : the first not in ``taken``."""
    taken = set(taken)
    out, k = base, 1
    while out in taken:
        out, k = f"{base}{sep}{k}", k + 1
    return out


def free_name(model: str, nodes: Iterable[Mapping]) -> str:
    """``MODEL1``, ``MODEL2``, ...: the first that is neither a node id nor a population name."""
    used = set()
    for node in nodes:
        used |= {node["id"], str((node.get("data") or {}).get("name", node["id"]))}
    k = 1
    while f"{model}{k}" in used:
        k += 1
    return f"{model}{k}"


def nodes_and_edges(
    spec: NetworkSpec,
    positions: Mapping[str, Position] | None = None,
    selected: Iterable[str] = (),
) -> tuple[list[dict], list[dict]]:
    """The diagram of ``spec``: the input node, a node per population and an edge per
    projection, at ``positions`` by node id (by default :func:`layout`'s; a node missing
    there goes where the layout puts it), ``selected`` ids selected."""
    fresh = layout(spec)
    positions = {**fresh, **(positions or {})}
    selected = set(selected)
    nodes = [make_node(INPUT, INPUT_TYPE, {"size": spec.input_size}, positions[INPUT])]
    for pop in spec.populations:
        position = positions.get(pop.name, fresh.get(pop.name))
        nodes.append(make_node(pop.name, POPULATION_TYPE, population_data(pop), position))
    edges, ids = [], set()
    for proj in spec.projections:
        edge_id = unused(f"{proj.source}->{proj.target}", ids, ":")
        ids.add(edge_id)
        edges.append(
            {
                "id": edge_id,
                "source": proj.source,
                "target": proj.target,
                "data": projection_data(proj),
                "selected": edge_id in selected,
            }
        )
    for node in nodes:
        node["selected"] = node["id"] in selected
    return nodes, edges


def meta_of(spec: NetworkSpec) -> dict:
    """The spec's fields that are neither nodes nor edges."""
    return {"name": spec.name, "dt": spec.dt, "n_steps": spec.n_steps, "output": spec.output}


def with_input(nodes: list[dict], input_data: Mapping) -> list[dict]:
    """``nodes``, with the input node (``input_data``, at 0, 0) put back first if it is gone:
    every network has one."""
    if any(is_input(n) for n in nodes):
        return nodes
    return [make_node(INPUT, INPUT_TYPE, dict(input_data), None), *nodes]


def insert_index(nodes: list[Mapping], output: str | None) -> int:
    """Where a new population goes in ``nodes``: before the output (the last population
    unless ``output`` names one), so adding one never changes the output."""
    for k in range(len(nodes) - 1, -1, -1):
        if is_input(nodes[k]):
            continue
        if output is None or (nodes[k].get("data") or {}).get("name") == output:
            return k
    return len(nodes)


# ------------------------------------------------------------------------------ diagram -> spec
@dataclass
class Draft:
    """The network a diagram shows (possibly invalid), with where each part of it is drawn."""

    spec: NetworkSpec
    node_ids: list[str]  # the node of each population, in spec order
    edge_ids: list[str]  # the edge of each projection, in spec order
    input: dict  # the input node's data

    def node_of(self) -> dict[str, str]:
        """Node id by population name (the first node of a name; the input's is ``input``)."""
        out = {INPUT: INPUT}
        for pop, node_id in zip(self.spec.populations, self.node_ids):
            out.setdefault(pop.name, node_id)
        return out


def _reaches(projs: list[Projection], start: str, goal: str) -> bool:
    """Whether feed-forward projections lead from ``start`` to ``goal``."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node in seen:
            continue
        seen.add(node)
        todo += [p.target for p in projs if p.source == node and p.recurrent is not True]
    return False


def spec_from_diagram(
    nodes: Iterable[Mapping],
    edges: Iterable[Mapping],
    meta: Mapping,
    input_data: Mapping | None = None,
    checks: Iterable[Callable[[NetworkSpec], list[Problem]]] = (),
) -> tuple[Draft, list[Problem]]:
    """The draft the diagram shows and its problems (``spec.problems()`` and each of
    ``checks``; a check that fails with a TypeError on a spec whose numbers are not numbers is
    skipped, the spec's own problems say why).  ``input_data`` stands for a missing input
    node.  An edge without data (connected in the browser) gets the defaults, recurrent when
    it closes a cycle.  Nothing in the diagram is changed."""
    names = {INPUT: INPUT}
    inp = dict(input_data or {"size": 1})
    pops, pop_ids = [], []
    for node in nodes:
        data = node.get("data") or {}
        if is_input(node):
            inp = dict(data)
            names[node["id"]] = INPUT
            continue
        name = data.get("name", node["id"])
        names[node["id"]] = name
        params = {
            k: copy.deepcopy(v)
            for k, v in data.items()
            if k not in POPULATION_KEYS and not k.startswith("_")
        }
        pops.append(Population(name, data.get("size"), data.get("model", "lif"), params))
        pop_ids.append(node["id"])
    projs, proj_ids = [], []
    for edge in edges:
        data = edge.get("data") or {}
        fields = {k: copy.deepcopy(data[k]) for k in PROJECTION_KEYS if k in data}
        source = names.get(edge["source"], edge["source"])
        target = names.get(edge["target"], edge["target"])
        if "recurrent" not in fields:  # connected in the browser: no data yet
            fields["recurrent"] = source == target or _reaches(projs, target, source)
        projs.append(Projection(source, target, **fields))
        proj_ids.append(edge["id"])
    spec = NetworkSpec(
        input_size=inp.get("size"),
        populations=pops,
        projections=projs,
        dt=meta.get("dt", 1.0),
        n_steps=meta.get("n_steps", 100),
        name=meta.get("name", "network"),
        output=meta.get("output"),
    )
    problems = spec.problems()
    for check in checks:
        try:
            problems += check(spec)
        except TypeError:  # sizes or n_steps that are not numbers: already a problem above
            pass
    return Draft(spec, pop_ids, proj_ids, inp), problems


def problems_by_element(problems: Iterable[Problem], draft: Draft) -> dict[str, list[Problem]]:
    """The problems that concern one node or edge, by its id: a population's or projection's
    field (``populations[k]...``, ``projections[k]...``) at its node or edge, ``input_size`` at
    the input.  The others (``dt``, the limits, a cycle) concern the whole network."""
    at: dict[str, list[Problem]] = {}
    for problem in problems:
        element = None
        match = _PATH.match(problem.path)
        if match:
            ids = draft.node_ids if match.group(1) == "populations" else draft.edge_ids
            k = int(match.group(2))
            element = ids[k] if k < len(ids) else None
        elif problem.path == "input_size":
            element = INPUT
        if element is not None:
            at.setdefault(element, []).append(problem)
    return at


def needs_redraw(nodes: list[Mapping], edges: list[Mapping], spec: NetworkSpec) -> bool:
    """Whether the diagram differs from how :func:`nodes_and_edges` draws ``spec`` (ids after a
    rename, defaults not yet in a node's or edge's data), positions and looks aside."""
    pops = [n for n in nodes if not is_input(n)]
    if [n["id"] for n in pops] != spec.population_names:
        return True
    for node, pop in zip(pops, spec.populations):
        if node.get("data") != population_data(pop) or node.get("type") != POPULATION_TYPE:
            return True
    if len(edges) != len(spec.projections):
        return True
    for edge, proj in zip(edges, spec.projections):
        if edge["id"] != proj.name or edge.get("data") != projection_data(proj):
            return True
    return False


# ------------------------------------------------------------------------------ looks
def field_of(problem: Problem) -> str | None:
    """The field a problem names within its population or projection (``params.tau_mem``),
    or ``None`` when it concerns all of it."""
    rest = _PATH.sub("", problem.path, count=1).lstrip(".")
    return None if rest in ("", "input_size") else rest


def _warning(problem: Problem) -> str:
    field = field_of(problem)
    return f"⚠ {field}: {problem.message}" if field else f"⚠ {problem.message}"


def node_look(node: Mapping, loop: bool, problems: list[Problem]) -> dict:
    """A node's label (name, model and size, ``↻`` for a self-projection, its problems), style
    and css class (``wb-node``, ``wb-node-problem``)."""
    data = node.get("data") or {}
    if is_input(node):
        label = f"input\n{data.get('size')} channels"
    else:
        label = f"{data.get('name', node['id'])}\n{data.get('model')} · {data.get('size')}"
        if loop:
            label += " · ↻"
    style = {"whiteSpace": "pre-line", "width": NODE_WIDTH}  # inline: known before any css
    if problems:
        label += "\n" + "\n".join(_warning(p) for p in problems)
        style.update(PROBLEM_STYLE)
    return {
        "label": label,
        "style": style,
        "className": "wb-node wb-node-problem" if problems else "wb-node",
    }


def edge_look(edge: Mapping, problems: list[Problem]) -> dict:
    """An edge's label (recurrent, delay, problems) and style (dashed when recurrent, red with
    problems)."""
    data = edge.get("data") or {}
    parts = []
    if data.get("recurrent") is True:
        parts.append("recurrent")
    delay = data.get("delay", 0)
    if isinstance(delay, list):
        parts.append("delays")
    elif delay:
        parts.append(f"delay {delay}")
    style = {"strokeDasharray": "6 4"} if data.get("recurrent") is True else {}
    if problems:
        parts += [_warning(p) for p in problems]
        style.update({"stroke": "#d32f2f", "strokeWidth": 2})
    return {"label": " · ".join(parts), "style": style}


def decorate(
    nodes: Iterable[Mapping], edges: Iterable[Mapping], at: Mapping[str, list[Problem]]
) -> tuple[list[dict], list[dict]]:
    """``nodes`` and ``edges`` with their looks, the problems ``at`` each id shown there."""
    edges = list(edges)
    loops = {e["source"] for e in edges if e["source"] == e["target"]}
    nodes = [{**n, **node_look(n, n["id"] in loops, at.get(n["id"], []))} for n in nodes]
    return nodes, [{**e, **edge_look(e, at.get(e["id"], []))} for e in edges]
