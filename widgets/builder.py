"""The network builder: a node editor of the session's :class:`NetworkSpec`.

Populations are nodes, projections are edges, drawn with ``panel_reactflow.ReactFlow``.  The
diagram and ``workbench.spec`` stay in step both ways:

- ``workbench.spec`` -> diagram: a spec assigned anywhere (in code, a template, a loaded JSON
  file) is drawn, the input on the left and every population in the column of its depth (the
  longest feed-forward path from the input).  Positions stay where they are while the same
  populations are shown; only a spec with other population names is laid out afresh.
- diagram -> ``workbench.spec``: every edit of the diagram (a node or edge added, removed or
  connected in the browser, data edited in the form) builds the spec the diagram shows, the
  *draft*.  When the draft has no problem (``spec.problems()`` plus the session's
  ``workbench.limits``) it is assigned to ``workbench.spec``; otherwise the diagram keeps what
  the user made, each problem is shown at its node or edge (red, with the message in its
  label) and in the list under the diagram, and ``workbench.spec`` stays the last valid network.
  ``builder.problems`` lists the draft's problems, ``builder.problems_at`` the same by node or
  edge id, and ``builder.draft`` is the draft itself.

Node ids are population names (``input`` for the input); edge ids are ``"source->target"``.
Populations come in diagram order: the last one is the output unless the network form's
``output`` names another, and the builder inserts new populations before the output.

A self-recurrent projection (``hidden->hidden``) is an edge from a node to itself; React Flow
draws it behind its node, so the node also carries a marker (``↻`` in its label) and the node's
form edits it (the "recurrent self-projection" checkbox and its delay and weights).

Browser tests find the widgets by these css classes:

======================================  ===================================================
``wb-builder``                          the whole builder
``wb-builder-flow``                     the diagram; nodes are ``.react-flow__node`` with
                                        ``data-id`` = node id, edges ``.react-flow__edge``
                                        with ``data-id`` = edge id
``wb-builder-palette``                  the model palette; its items ``.wb-palette-item``
                                        (``data-model`` = model) drag onto the diagram
``wb-template``, ``wb-use-template``    template Select and its button
``wb-add-name``, ``wb-add-model``,      the "Add population" row: name (empty = automatic),
``wb-add-size``, ``wb-add-population``  model, size, button
``wb-proj-source``, ``wb-proj-target``, the "Add projection" row: source, target,
``wb-proj-recurrent``,                  recurrent, button
``wb-add-projection``
``wb-remove-selected``                  removes the selected nodes and edges
``wb-builder-form``                     the form of the selected node or edge; its widgets
                                        ``wb-form-FIELD`` (``wb-form-name``, ``wb-form-size``,
                                        ``wb-form-model``, ``wb-form-tau_mem``, ...,
                                        ``wb-form-recurrent``, ``wb-form-delay``,
                                        ``wb-form-weight_mean``, ``wb-form-weight_std``,
                                        ``wb-form-self-recurrent``); ``wb-form-problems``
                                        lists the selection's problems
``wb-net-name``, ``wb-net-dt``,         the network form
``wb-net-n_steps``, ``wb-net-output``
``wb-builder-problems``                 the problem list (an Alert: danger or success)
``wb-builder-summary``                  the summary table of ``workbench.spec``
``wb-spec-json``, ``wb-spec-file``,     JSON text area, file input, Load button,
``wb-load-spec``, ``wb-download-spec``  download of the current spec
``wb-load-error``                       why the last Load failed
======================================  ===================================================
"""

from __future__ import annotations

import copy
import io
import json
import re
from contextlib import contextmanager

import panel as pn
import param
from panel.custom import JSComponent
from panel_reactflow import NodeType, ReactFlow

from workbench.neurons import MODELS
from workbench.spec import INPUT, NetworkSpec, Population, Problem, Projection

from .state import Workbench
from .templates import TEMPLATES

DRAG_TYPE = "application/x-wb-population"  # MIME type of a palette item dragged onto the diagram
DEFAULT_SIZE = 16  # neurons of a population added without a size
COLUMN = 230  # px between the columns of the layout
ROW = 140  # px between the rows of a column
INPUT_TYPE = "wb_input"  # ReactFlow node type of the input
POPULATION_TYPE = "wb_population"  # ReactFlow node type of a population
_PROJECTION_KEYS = ("recurrent", "delay", "weight_mean", "weight_std", "weights")
_POPULATION_KEYS = ("name", "model", "size")
_PATH = re.compile(r"(populations|projections)\[(\d+)\]")
_PROBLEM_STYLE = {"border": "2px solid #d32f2f", "background": "#ffebee", "width": 230}


def _no_editor(data, schema, *, id, type, on_patch):
    """ReactFlow's editor factory: none (the builder's own form edits the selection)."""
    return None


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class ModelPalette(JSComponent):
    """Neuron models as draggable items; dropping one on the diagram adds a population."""

    items = param.List(default=[], doc="[{model, label, title}] to show")
    drag_type = param.String(default=DRAG_TYPE)

    _esm = """
export function render({ model, el }) {
  const draw = () => {
    el.replaceChildren();
    const head = document.createElement("div");
    head.className = "wb-palette-head";
    head.textContent = "Drag onto the diagram";
    el.appendChild(head);
    for (const item of model.items) {
      const div = document.createElement("div");
      div.className = "wb-palette-item";
      div.dataset.model = item.model;
      div.draggable = true;
      div.textContent = item.label;
      div.title = item.title;
      div.addEventListener("dragstart", (event) => {
        event.dataTransfer.setData(model.drag_type, JSON.stringify({ model: item.model }));
        event.dataTransfer.effectAllowed = "copy";
      });
      el.appendChild(div);
    }
  };
  draw();
  model.on("items", draw);
}
"""
    _stylesheets = [
        """
.wb-palette-head { font-size: 0.8em; color: #666; margin-bottom: 4px; }
.wb-palette-item {
  border: 1px solid #888; border-radius: 4px; padding: 4px 6px; margin: 4px 0;
  background: white; cursor: grab; font-size: 0.9em; user-select: none;
}
.wb-palette-item:hover { background: #eef3ff; }
"""
    ]


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


def layout(spec: NetworkSpec) -> dict[str, dict[str, float]]:
    """Positions of the input and every population: columns by :func:`depths`, each column's
    populations in spec order, centred on the input."""
    depth = depths(spec)
    columns: dict[int, list[str]] = {}
    for name in [INPUT, *(p.name for p in spec.populations)]:
        columns.setdefault(depth[name], []).append(name)
    out = {}
    for col, names in columns.items():
        for k, name in enumerate(names):
            out[name] = {"x": float(col * COLUMN), "y": float((k - (len(names) - 1) / 2) * ROW)}
    return out


def _field_of(problem: Problem, whole: str) -> str:
    """The field a problem names within its population or projection (``params.tau_mem``),
    or ``whole`` when it concerns all of it."""
    rest = _PATH.sub("", problem.path, count=1).lstrip(".")
    return whole if rest in ("", "input_size") else rest


def _param_help(key: str, p) -> str:
    unit = f" ({p.unit})" if p.unit else ""
    return f"{p.doc}{unit}: {p.describe_range()}; default {p.default!r}"


class NetworkBuilder(pn.viewable.Viewer):
    """Drag-and-drop editor of ``workbench.spec`` (see the module docstring)."""

    workbench = param.ClassSelector(class_=Workbench)
    problems = param.List(
        default=[], item_type=Problem, doc="problems of the diagram's network (the draft)"
    )
    problems_at = param.Dict(
        default={}, doc="the draft's problems by node id or edge id (those that concern one)"
    )
    draft = param.ClassSelector(
        class_=NetworkSpec, doc="the network the diagram shows, possibly invalid"
    )

    def __init__(self, **params):
        if params.get("workbench") is None:
            params["workbench"] = Workbench()
        super().__init__(**params)
        self._loading = False  # the builder itself is rewriting the diagram
        self._pushing = False  # the builder itself is assigning workbench.spec
        self._form_patching = False  # the form is patching the diagram
        self._meta: dict = {}  # the spec's fields that are not nodes or edges
        self._input_data = {"size": 1}
        self.flow = ReactFlow(
            node_types={
                INPUT_TYPE: NodeType(type=INPUT_TYPE, label="input", inputs=[]),
                POPULATION_TYPE: NodeType(type=POPULATION_TYPE, label="population"),
            },
            editor_mode="side",
            default_node_editor=_no_editor,
            default_edge_editor=_no_editor,
            validate_on_add=False,
            allow_edge_loops=True,
            display_side_bar=False,
            drop_types=[DRAG_TYPE],
            default_edge_options={"markerEnd": {"type": "arrowclosed"}},
            max_zoom=1.5,
            min_zoom=0.2,
            height=480,
            sizing_mode="stretch_width",
            css_classes=["wb-builder-flow"],
        )
        self.flow.param.watch(self._on_graph, ["nodes", "edges"])
        self.flow.param.watch(self._on_selection, "selection")
        self.flow.on("node_data_changed", self._on_data_changed)
        self.flow.on("edge_data_changed", self._on_data_changed)
        self.flow.on("drop", self._on_drop)
        self._build_widgets()
        self.workbench.param.watch(self._on_spec, "spec")
        self._show(self.workbench.spec)

    @contextmanager
    def _quiet(self):
        """The builder itself rewrites the diagram or its widgets: no reaction to that."""
        before = self._loading
        self._loading = True
        try:
            yield
        finally:
            self._loading = before

    # ------------------------------------------------------------------------- widgets
    def _build_widgets(self) -> None:
        models = sorted(MODELS)
        self.palette = ModelPalette(
            items=[
                {"model": m, "label": m, "title": MODELS[m].title + ": " + MODELS[m].doc}
                for m in models
            ],
            width=110,
            css_classes=["wb-builder-palette"],
        )
        self.template = pn.widgets.Select(
            label="Template", options=list(TEMPLATES), width=200, css_classes=["wb-template"]
        )
        self.template_button = pn.widgets.Button(
            label="Use template", color="primary", css_classes=["wb-use-template"]
        )
        self.template_button.on_click(lambda _: self.use_template(self.template.value))

        self.add_name = pn.widgets.TextInput(
            label="Name", placeholder="automatic", width=120, css_classes=["wb-add-name"]
        )
        self.add_model = pn.widgets.Select(
            label="Model", options=models, value="lif", width=90, css_classes=["wb-add-model"]
        )
        self.add_size = pn.widgets.IntInput(
            label="Size", value=DEFAULT_SIZE, start=1, width=90, css_classes=["wb-add-size"]
        )
        self.add_population_button = pn.widgets.Button(
            label="Add population", css_classes=["wb-add-population"], align="end"
        )
        self.add_population_button.on_click(lambda _: self._add_population_from_row())

        self.proj_source = pn.widgets.Select(
            label="Source", width=120, css_classes=["wb-proj-source"]
        )
        self.proj_target = pn.widgets.Select(
            label="Target", width=120, css_classes=["wb-proj-target"]
        )
        self.proj_recurrent = pn.widgets.Checkbox(
            label="recurrent", css_classes=["wb-proj-recurrent"], align="end"
        )
        self.add_projection_button = pn.widgets.Button(
            label="Add projection", css_classes=["wb-add-projection"], align="end"
        )
        self.add_projection_button.on_click(lambda _: self._add_projection_from_row())
        self.remove_button = pn.widgets.Button(
            label="Remove selected",
            color="danger",
            css_classes=["wb-remove-selected"],
            align="end",
        )
        self.remove_button.on_click(lambda _: self.remove_selected())

        self.net_name = pn.widgets.TextInput(label="Network name", css_classes=["wb-net-name"])
        self.net_dt = pn.widgets.FloatInput(label="dt (ms)", width=140, css_classes=["wb-net-dt"])
        self.net_steps = pn.widgets.IntInput(
            label="n_steps", width=140, css_classes=["wb-net-n_steps"]
        )
        self.net_output = pn.widgets.Select(
            label="Output population", css_classes=["wb-net-output"]
        )
        for widget, key in (
            (self.net_name, "name"),
            (self.net_dt, "dt"),
            (self.net_steps, "n_steps"),
            (self.net_output, "output"),
        ):
            widget.param.watch(lambda e, _k=key: self._on_meta(_k, e.new), "value")

        self.form = pn.Column(sizing_mode="stretch_width", css_classes=["wb-builder-form"])
        self.form_problems = pn.pane.Alert(
            "",
            alert_type="danger",
            visible=False,
            sizing_mode="stretch_width",
            css_classes=["wb-form-problems"],
        )
        self.alert = pn.pane.Alert(
            "",
            alert_type="success",
            sizing_mode="stretch_width",
            css_classes=["wb-builder-problems"],
        )
        self.summary = pn.pane.DataFrame(
            index=False, sizing_mode="stretch_width", css_classes=["wb-builder-summary"]
        )

        self.json_input = pn.widgets.TextAreaInput(
            label="Network JSON",
            placeholder="Paste a network's JSON here (or choose a file), then Load",
            height=160,
            sizing_mode="stretch_width",
            css_classes=["wb-spec-json"],
        )
        self.json_file = pn.widgets.FileInput(accept=".json", css_classes=["wb-spec-file"])
        self.json_file.param.watch(self._on_file, "value")
        self.load_button = pn.widgets.Button(label="Load", css_classes=["wb-load-spec"])
        self.load_button.on_click(lambda _: self.load_json(self.json_input.value))
        self.download = pn.widgets.FileDownload(
            callback=self._spec_file,
            filename="network.json",
            label="Download network JSON",
            css_classes=["wb-download-spec"],
        )
        self.load_error = pn.pane.Alert(
            "", alert_type="danger", visible=False, css_classes=["wb-load-error"]
        )

    def __panel__(self):
        side = pn.Column(
            pn.pane.Markdown("**Selection**"),
            self.form,
            pn.layout.Divider(),
            pn.pane.Markdown("**Network**"),
            self.net_name,
            pn.Row(self.net_dt, self.net_steps),
            self.net_output,
            width=320,
        )
        json_card = pn.Card(
            self.json_input,
            pn.Row(self.json_file, self.load_button, self.download),
            self.load_error,
            title="Load / save JSON",
            collapsed=True,
            sizing_mode="stretch_width",
        )
        return pn.Column(
            pn.Row(self.template, self.template_button),
            pn.Row(
                self.add_name,
                self.add_model,
                self.add_size,
                self.add_population_button,
                pn.Spacer(width=20),
                self.proj_source,
                self.proj_target,
                self.proj_recurrent,
                self.add_projection_button,
                pn.Spacer(width=20),
                self.remove_button,
            ),
            pn.Row(self.palette, self.flow, side, sizing_mode="stretch_width"),
            self.alert,
            pn.pane.Markdown("**Summary** (the workbench's network)"),
            self.summary,
            json_card,
            sizing_mode="stretch_width",
            css_classes=["wb-builder"],
        )

    # ------------------------------------------------------------------------- public actions
    def use_template(self, name: str) -> None:
        """Replace the network with a fresh copy of template ``name``."""
        self.workbench.spec = TEMPLATES[name]()

    def load_json(self, text: str) -> bool:
        """Load a spec from JSON text into the workbench; on failure show why and keep the
        network.  Returns whether it loaded."""
        try:
            spec = NetworkSpec.from_json(text or "")
        except (ValueError, TypeError) as exc:  # SpecError is a ValueError
            problems = getattr(exc, "problems", None) or [Problem("spec", str(exc))]
            self.load_error.object = "**Not loaded:**\n\n" + "\n".join(
                f"- `{p.path}`: {p.message}" for p in problems
            )
            self.load_error.visible = True
            return False
        self.load_error.visible = False
        self.workbench.spec = spec
        return True

    def spec_json(self) -> str:
        """The workbench's spec as JSON (what the download gives)."""
        return self.workbench.spec.to_json()

    def add_population(
        self,
        name: str | None = None,
        model: str = "lif",
        size: int = DEFAULT_SIZE,
        position: dict | None = None,
    ) -> str:
        """Add a population node with ``model``'s default parameters, before the output;
        returns its node id.  An empty ``name`` picks ``MODEL1``, ``MODEL2``, ..."""
        name = name or self._free_name(model)
        node_id = self._unused(name, {n["id"] for n in self.flow.nodes}, "_")
        model_params = MODELS[model].defaults() if model in MODELS else {}
        data = {"name": name, "model": model, "size": size, **model_params}
        node = self._node(node_id, POPULATION_TYPE, data, position or self._new_position())
        nodes = list(self.flow.nodes)
        nodes.insert(self._output_index(nodes), node)
        self.flow.nodes = nodes
        return node_id

    def add_projection(self, source: str, target: str, recurrent: bool = False, **data) -> str:
        """Add a projection edge from node ``source`` to node ``target``; returns its id."""
        edge_id = self._unused(f"{source}->{target}", {e["id"] for e in self.flow.edges}, ":")
        fields = {
            "recurrent": recurrent,
            "delay": 0,
            "weight_mean": 0.0,
            "weight_std": None,
            "weights": None,
        }
        fields.update(data)
        self.flow.add_edge({"id": edge_id, "source": source, "target": target, "data": fields})
        return edge_id

    def select(self, node_id: str | None = None, edge_id: str | None = None) -> None:
        """Select one node or edge (as a click in the browser does) and open its form."""
        nodes = [node_id] if node_id else []
        edges = [edge_id] if edge_id else []
        self._assign(
            [{**n, "selected": n["id"] in nodes} for n in self.flow.nodes],
            [{**e, "selected": e["id"] in edges} for e in self.flow.edges],
        )
        self.flow.selection = {"nodes": nodes, "edges": edges}

    def remove_selected(self) -> None:
        """Remove the selected nodes (not the input) and edges."""
        nodes = [n for n in self.flow.selection.get("nodes", []) if n != INPUT]
        edges = list(self.flow.selection.get("edges", []))
        with self._quiet():
            self.flow.remove_edge(edges)
            self.flow.remove_node(nodes)
        self._diagram_changed()
        self.select()

    # ------------------------------------------------------------------------- spec -> diagram
    def _on_spec(self, event) -> None:
        self._show_summary()
        if not self._pushing:
            self._show(event.new)

    def _show(self, spec: NetworkSpec) -> None:
        """Draw ``spec`` (assigned from outside the builder)."""
        old = {n["id"]: n["position"] for n in self.flow.nodes}
        fresh = layout(spec)
        keep = set(old) == set(fresh)
        positions = {name: old[name] if keep else pos for name, pos in fresh.items()}
        self._meta = {
            "name": spec.name,
            "dt": spec.dt,
            "n_steps": spec.n_steps,
            "output": spec.output,
        }
        self._render(spec, positions, self._selected_ids())
        self._set_meta_widgets()
        self._show_summary()
        self._check_diagram()
        self._decorate()
        self._refresh_form()

    def _render(self, spec: NetworkSpec, positions: dict, selected: set[str]) -> None:
        """Rewrite the whole diagram from ``spec`` (node ids = population names)."""
        self._input_data = {"size": spec.input_size}
        nodes = [self._node(INPUT, INPUT_TYPE, {"size": spec.input_size}, positions.get(INPUT))]
        for pop in spec.populations:
            data = {
                "name": pop.name,
                "model": pop.model,
                "size": pop.size,
                **copy.deepcopy(pop.params),
            }
            nodes.append(self._node(pop.name, POPULATION_TYPE, data, positions.get(pop.name)))
        edges = []
        ids: set[str] = set()
        for proj in spec.projections:
            edge_id = base = f"{proj.source}->{proj.target}"
            k = 1
            while edge_id in ids:
                edge_id, k = f"{base}:{k}", k + 1
            ids.add(edge_id)
            data = {key: copy.deepcopy(getattr(proj, key)) for key in _PROJECTION_KEYS}
            edges.append(
                {
                    "id": edge_id,
                    "source": proj.source,
                    "target": proj.target,
                    "data": data,
                    "selected": edge_id in selected,
                }
            )
        for node in nodes:
            node["selected"] = node["id"] in selected
        self._assign(nodes, edges, at={})

    @staticmethod
    def _node(node_id: str, node_type: str, data: dict, position: dict | None) -> dict:
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

    # ------------------------------------------------------------------------- diagram -> spec
    def _on_graph(self, *events) -> None:
        if not self._loading:
            self._diagram_changed()

    def _on_data_changed(self, payload) -> None:
        if self._loading:
            return
        self._diagram_changed()
        if not self._form_patching:
            self._refresh_form()

    def _draft(self) -> tuple[NetworkSpec, list[str], list[str]]:
        """The spec the diagram shows, with the node id of each population and the edge id of
        each projection (in spec order).  Nothing is validated here."""
        names = {INPUT: INPUT}
        input_size = self._input_data.get("size")
        pops, pop_ids = [], []
        for node in self.flow.nodes:
            data = node.get("data") or {}
            if node["id"] == INPUT or node.get("type") == INPUT_TYPE:
                input_size = data.get("size")
                self._input_data = dict(data)  # to put it back should it be removed
                names[node["id"]] = INPUT
                continue
            name = data.get("name", node["id"])
            names[node["id"]] = name
            params = {
                k: copy.deepcopy(v)
                for k, v in data.items()
                if k not in _POPULATION_KEYS and not k.startswith("_")
            }
            pops.append(Population(name, data.get("size"), data.get("model", "lif"), params))
            pop_ids.append(node["id"])
        projs, proj_ids = [], []
        for edge in self.flow.edges:
            data = edge.get("data") or {}
            fields = {k: copy.deepcopy(data[k]) for k in _PROJECTION_KEYS if k in data}
            source = names.get(edge["source"], edge["source"])
            target = names.get(edge["target"], edge["target"])
            if "recurrent" not in fields:  # connected in the browser: no data yet
                fields["recurrent"] = source == target or self._reaches(projs, target, source)
            projs.append(Projection(source, target, **fields))
            proj_ids.append(edge["id"])
        spec = NetworkSpec(
            input_size=input_size,
            populations=pops,
            projections=projs,
            dt=self._meta.get("dt", 1.0),
            n_steps=self._meta.get("n_steps", 100),
            name=self._meta.get("name", "network"),
            output=self._meta.get("output"),
        )
        return spec, pop_ids, proj_ids

    @staticmethod
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

    def _check(self, spec: NetworkSpec) -> list[Problem]:
        problems = spec.problems()
        try:
            problems += self.workbench.limits.problems(spec)
        except TypeError:  # sizes or n_steps that are not numbers: already a problem above
            pass
        return problems

    def _check_diagram(self) -> tuple[NetworkSpec, list[Problem]]:
        """Build the draft, find its problems and show them; returns both."""
        draft, pop_ids, proj_ids = self._draft()
        problems = self._check(draft)
        at: dict[str, list[Problem]] = {}
        for problem in problems:
            element = None
            match = _PATH.match(problem.path)
            if match:
                ids = pop_ids if match.group(1) == "populations" else proj_ids
                k = int(match.group(2))
                element = ids[k] if k < len(ids) else None
            elif problem.path == "input_size":
                element = INPUT
            if element is not None:
                at.setdefault(element, []).append(problem)
        self.param.update(draft=draft, problems=problems, problems_at=at)
        self._show_problems()
        self._show_form_problems()
        self._refresh_choices()
        return draft, problems

    def _diagram_changed(self) -> None:
        """The user changed the diagram: check it, and pass it on to the workbench if valid."""
        if self._loading:
            return
        self._ensure_input()
        draft, problems = self._check_diagram()
        if problems:
            self._decorate()
            return
        if draft.to_dict() != self.workbench.spec.to_dict():
            self._pushing = True
            try:
                self.workbench.spec = draft
            finally:
                self._pushing = False
        if self._needs_rewrite(draft):
            names = {n["id"]: (n.get("data") or {}).get("name", n["id"]) for n in self.flow.nodes}
            names[INPUT] = INPUT
            positions = {names[n["id"]]: n["position"] for n in self.flow.nodes}
            selected = {names.get(i, i) for i in self._selected_ids()}
            self._render(draft, positions, selected)
            self._refresh_form()
        else:
            self._decorate()

    def _needs_rewrite(self, spec: NetworkSpec) -> bool:
        """Whether the diagram differs from how :meth:`_render` draws ``spec`` (ids after a
        rename, defaults not yet in a node's or edge's data)."""
        nodes = [n for n in self.flow.nodes if n["id"] != INPUT]
        if [n["id"] for n in nodes] != spec.population_names:
            return True
        for node, pop in zip(nodes, spec.populations):
            want = {"name": pop.name, "model": pop.model, "size": pop.size, **pop.params}
            if node.get("data") != want or node.get("type") != POPULATION_TYPE:
                return True
        if len(self.flow.edges) != len(spec.projections):
            return True
        for edge, proj in zip(self.flow.edges, spec.projections):
            want = {key: getattr(proj, key) for key in _PROJECTION_KEYS}
            if edge["id"] != proj.name or edge.get("data") != want:
                return True
        return False

    def _ensure_input(self) -> None:
        """Put the input node back if it was removed (every network has one)."""
        if any(n["id"] == INPUT for n in self.flow.nodes):
            return
        node = self._node(INPUT, INPUT_TYPE, dict(self._input_data), {"x": 0.0, "y": 0.0})
        with self._quiet():
            self.flow.nodes = [node, *self.flow.nodes]

    # ------------------------------------------------------------------------- looks
    def _assign(self, nodes: list[dict], edges: list[dict], at: dict | None = None) -> None:
        """Give the diagram ``nodes`` and ``edges`` with their labels and styles (problems from
        ``at``, by default ``problems_at``), without reacting to it.

        Always whole lists, never ReactFlow's ``patch_*_props`` messages: while the browser's
        message is handled, list updates are held until the end but patch messages go out at
        once, so a patch could reach the browser before the node it patches, or be overwritten
        by the held list."""
        at = self.problems_at if at is None else at
        loops = {e["source"] for e in edges if e["source"] == e["target"]}
        nodes = [{**n, **self._node_look(n, n["id"] in loops, at.get(n["id"], []))} for n in nodes]
        edges = [{**e, **self._edge_look(e, at.get(e["id"], []))} for e in edges]
        updates = {}
        if nodes != self.flow.nodes:
            updates["nodes"] = nodes
        if edges != self.flow.edges:
            updates["edges"] = edges
        if updates:
            with self._quiet():
                self.flow.param.update(**updates)

    @staticmethod
    def _node_look(node: dict, loop: bool, problems: list[Problem]) -> dict:
        data = node.get("data") or {}
        if node["id"] == INPUT or node.get("type") == INPUT_TYPE:
            label = f"input\n{data.get('size')} channels"
        else:
            label = f"{data.get('name', node['id'])}\n{data.get('model')} · {data.get('size')}"
            if loop:
                label += " · ↻"
        style = {"whiteSpace": "pre-line"}
        if problems:
            label += "\n" + "\n".join(f"⚠ {_field_of(p, 'size')}: {p.message}" for p in problems)
            style.update(_PROBLEM_STYLE)
        return {
            "label": label,
            "style": style,
            "className": "wb-node wb-node-problem" if problems else "wb-node",
        }

    @staticmethod
    def _edge_look(edge: dict, problems: list[Problem]) -> dict:
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
            parts += [f"⚠ {_field_of(p, 'projection')}: {p.message}" for p in problems]
            style.update({"stroke": "#d32f2f", "strokeWidth": 2})
        return {"label": " · ".join(parts), "style": style}

    def _decorate(self) -> None:
        """Show the current problems at their nodes and edges."""
        self._assign(self.flow.nodes, self.flow.edges)

    def _show_problems(self) -> None:
        if not self.problems:
            neurons = sum(p.size for p in self.draft.populations)
            self.alert.alert_type = "success"
            self.alert.object = f"The network is valid: {neurons} neurons."
            return
        where = {id(p): element for element, ps in self.problems_at.items() for p in ps}
        lines = []
        for p in self.problems:
            at = f" (at `{where[id(p)]}`)" if id(p) in where else ""
            lines.append(f"- `{p.path}`{at}: {p.message}")
        self.alert.alert_type = "danger"
        self.alert.object = (
            "**The diagram has problems.** The workbench keeps its last valid network until "
            "they are fixed.\n\n" + "\n".join(lines)
        )

    def _show_summary(self) -> None:
        self.download.filename = f"{getattr(self.workbench.spec, 'name', '') or 'network'}.json"
        try:
            self.summary.object = self.workbench.spec.summary()
        except (KeyError, TypeError):  # an invalid spec assigned in code
            self.summary.object = None

    # ------------------------------------------------------------------------- add / drop
    def _add_population_from_row(self) -> None:
        node_id = self.add_population(
            self.add_name.value.strip() or None, self.add_model.value, self.add_size.value
        )
        self.add_name.value = ""
        self.select(node_id)

    def _add_projection_from_row(self) -> None:
        source, target = self.proj_source.value, self.proj_target.value
        if source is None or target is None:
            return
        self.add_projection(source, target, recurrent=self.proj_recurrent.value)

    def _on_drop(self, payload) -> None:
        data = payload.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError:
                data = {"model": data}
        model = data.get("model") if isinstance(data, dict) else None
        if model not in MODELS:
            return
        position = payload.get("position") or None
        node_id = self.add_population(None, model, DEFAULT_SIZE, position)
        self.select(node_id)

    def _free_name(self, model: str) -> str:
        used = set(self._names()) | {n["id"] for n in self.flow.nodes}
        k = 1
        while f"{model}{k}" in used:
            k += 1
        return f"{model}{k}"

    @staticmethod
    def _unused(base: str, taken: set[str], sep: str) -> str:
        """``base``, or ``base<sep>1``, ``base<sep>2``, ... : the first not in ``taken``."""
        out, k = base, 1
        while out in taken:
            out, k = f"{base}{sep}{k}", k + 1
        return out

    def _names(self) -> list[str]:
        return [
            (n.get("data") or {}).get("name", n["id"]) for n in self.flow.nodes if n["id"] != INPUT
        ]

    def _output_index(self, nodes: list[dict]) -> int:
        """Where a new population goes in ``nodes``: before the output (the last population
        unless the network names one), so adding one never changes the output."""
        output = self._meta.get("output")
        for k in range(len(nodes) - 1, -1, -1):
            if nodes[k]["id"] == INPUT:
                continue
            if output is None or (nodes[k].get("data") or {}).get("name") == output:
                return k
        return len(nodes)

    def _new_position(self) -> dict:
        """Below the populations of the column before the output."""
        xs = [n["position"]["x"] for n in self.flow.nodes if n["id"] != INPUT]
        x = max(COLUMN, max(xs, default=2 * COLUMN) - COLUMN)
        ys = [
            n["position"]["y"] for n in self.flow.nodes if abs(n["position"]["x"] - x) < COLUMN / 2
        ]
        return {"x": float(x), "y": float(max(ys, default=-ROW) + ROW)}

    def _selected_ids(self) -> set[str]:
        sel = self.flow.selection or {}
        return set(sel.get("nodes") or []) | set(sel.get("edges") or [])

    # ------------------------------------------------------------------------- forms
    def _on_selection(self, event) -> None:
        self._refresh_form()

    def _refresh_choices(self) -> None:
        """The choices of the Add-projection row (node ids by population name) and of the
        network's output."""
        pops = {}
        for node in self.flow.nodes:
            if node["id"] != INPUT:
                pops[str((node.get("data") or {}).get("name", node["id"]))] = node["id"]
        output = self._meta.get("output")
        outputs = {"(last population)": "", **{name: name for name in pops}}
        if output and output not in pops:
            outputs[f"{output} (missing)"] = output
        with self._quiet():
            self.proj_source.options = {INPUT: INPUT, **pops}
            if self.proj_source.value not in self.proj_source.options.values():
                self.proj_source.value = INPUT
            self.proj_target.options = pops
            if self.proj_target.value not in pops.values():
                self.proj_target.value = next(iter(pops.values()), None)
            self.net_output.options = outputs
            self.net_output.value = output or ""

    def _set_meta_widgets(self) -> None:
        dt, steps = self._meta["dt"], self._meta["n_steps"]
        with self._quiet():
            self.net_name.value = str(self._meta["name"])
            number = isinstance(dt, (int, float)) and not isinstance(dt, bool)
            self.net_dt.value = float(dt) if number else None
            self.net_steps.value = steps if _is_int(steps) else None
        self._refresh_choices()

    def _on_meta(self, key: str, value) -> None:
        if self._loading:
            return
        if key == "output":
            value = value or None  # "" is the last population
        self._meta[key] = value
        self._diagram_changed()

    def _refresh_form(self) -> None:
        sel = self.flow.selection or {}
        nodes = [n for n in self.flow.nodes if n["id"] in (sel.get("nodes") or [])]
        edges = [e for e in self.flow.edges if e["id"] in (sel.get("edges") or [])]
        if nodes:
            widgets = self._node_form(nodes[0])
        elif edges:
            widgets = self._edge_form(edges[0])
        else:
            widgets = [pn.pane.Markdown("Select a population or a projection to edit it.")]
        self.form[:] = [*widgets, self.form_problems]
        self._show_form_problems()

    def _show_form_problems(self) -> None:
        """The problems of the selected node (with its self-projection) or edge."""
        sel = self.flow.selection or {}
        ids = list(sel.get("nodes") or [])[:1] or list(sel.get("edges") or [])[:1]
        if ids and sel.get("nodes"):
            ids += [e["id"] for e in self.flow.edges if e["source"] == e["target"] == ids[0]]
        problems = [p for i in ids for p in self.problems_at.get(i, [])]
        self.form_problems.object = "\n".join(f"- `{p.path}`: {p.message}" for p in problems)
        self.form_problems.visible = bool(problems)

    def _patch(self, patch, item_id: str, key: str, value) -> None:
        """``patch`` (the flow's patch_node_data or patch_edge_data) one field from the form."""
        self._form_patching = True
        try:
            patch(item_id, {key: value})
        finally:
            self._form_patching = False

    def _patch_node(self, node_id: str, key: str, value) -> None:
        self._patch(self.flow.patch_node_data, node_id, key, value)

    def _patch_edge(self, edge_id: str, key: str, value) -> None:
        self._patch(self.flow.patch_edge_data, edge_id, key, value)

    @staticmethod
    def _field(label: str, value, kind: str, key: str, on_change, description: str = ""):
        """A widget for one field; a value of the wrong type gets a text input (so the form
        still opens) whose text is read as JSON when possible."""
        opts = dict(label=label, css_classes=[f"wb-form-{key}"], sizing_mode="stretch_width")
        if description:
            opts["description"] = description
        try:
            if kind == "int":
                widget = pn.widgets.IntInput(value=value, **opts)
            elif kind == "float":
                widget = pn.widgets.FloatInput(value=value, **opts)
            elif kind == "bool":
                widget = pn.widgets.Checkbox(value=value, **opts)
            elif kind == "text":
                widget = pn.widgets.TextInput(value=value, **opts)
            else:  # a tuple of choices
                widget = pn.widgets.Select(value=value, options=list(kind), **opts)
            widget.param.watch(lambda e: on_change(e.new), "value")
            return widget
        except (ValueError, TypeError):
            widget = pn.widgets.TextInput(value=json.dumps(value, default=str), **opts)

            def parse(event):
                try:
                    on_change(json.loads(event.new))
                except json.JSONDecodeError:
                    on_change(event.new)

            widget.param.watch(parse, "value")
            return widget

    def _node_form(self, node: dict) -> list:
        node_id = node["id"]
        data = node.get("data") or {}
        head = pn.pane.Markdown(f"### {'input' if node_id == INPUT else data.get('name')}")
        out = [head]
        patch = lambda key: lambda v: self._patch_node(node_id, key, v)  # noqa: E731
        if node_id == INPUT:
            out.append(
                self._field("input channels", data.get("size"), "int", "size", patch("size"))
            )
            return out
        out.append(self._field("name", data.get("name"), "text", "name", patch("name")))
        model = data.get("model")
        out.append(
            self._field(
                "model",
                model,
                tuple(sorted(MODELS)),
                "model",
                lambda v: self._set_model(node_id, v),
                MODELS[model].title if model in MODELS else "",
            )
        )
        out.append(self._field("size (neurons)", data.get("size"), "int", "size", patch("size")))
        spec_params = MODELS[model].params if model in MODELS else {}
        for key, p in spec_params.items():
            kind = p.choices or ("int" if p.integer else "float")
            label = f"{key} ({p.unit})" if p.unit else key
            out.append(
                self._field(label, data.get(key), kind, key, patch(key), _param_help(key, p))
            )
        for key in data:
            if key not in spec_params and key not in _POPULATION_KEYS:
                out.append(self._field(f"{key} (unknown)", data[key], "text", key, patch(key)))
        loop = next(
            (e for e in self.flow.edges if e["source"] == node_id and e["target"] == node_id),
            None,
        )
        out.append(
            self._field(
                f"recurrent self-projection ({data.get('name')} → itself)",
                loop is not None,
                "bool",
                "self-recurrent",
                lambda v: self._set_self_loop(node_id, v),
            )
        )
        if loop is not None:
            out += self._projection_fields(loop)
        return out

    def _edge_form(self, edge: dict) -> list:
        names = {n["id"]: (n.get("data") or {}).get("name", n["id"]) for n in self.flow.nodes}
        source = names.get(edge["source"], edge["source"])
        target = names.get(edge["target"], edge["target"])
        out = [pn.pane.Markdown(f"### {source} → {target}")]
        return out + self._projection_fields(edge)

    def _projection_fields(self, edge: dict) -> list:
        edge_id = edge["id"]
        data = edge.get("data") or {}
        patch = lambda key: lambda v: self._patch_edge(edge_id, key, v)  # noqa: E731
        out = []
        if edge["source"] != edge["target"]:  # a self-projection is always recurrent
            out.append(
                self._field(
                    "recurrent (carries the previous step's spikes)",
                    data.get("recurrent") is True,
                    "bool",
                    "recurrent",
                    patch("recurrent"),
                )
            )
        delay = data.get("delay", 0)
        if isinstance(delay, list):
            out.append(pn.pane.Markdown("delay: one per synapse (from JSON)"))
        else:
            out.append(self._field("delay (steps)", delay, "int", "delay", patch("delay")))
        out.append(
            self._field(
                "weight_mean",
                data.get("weight_mean", 0.0),
                "float",
                "weight_mean",
                patch("weight_mean"),
            )
        )
        out.append(
            self._field(
                "weight_std (empty: 1/sqrt(source size))",
                data.get("weight_std"),
                "float",
                "weight_std",
                patch("weight_std"),
            )
        )
        if data.get("weights") is not None:
            out.append(pn.pane.Markdown("initial weights: fixed (from JSON)"))
        return out

    def _set_model(self, node_id: str, model: str) -> None:
        """Change a population's model: the new model's parameters, keeping the values of
        those the two models share."""
        nodes = []
        for node in self.flow.nodes:
            if node["id"] == node_id and model in MODELS:
                old = node.get("data") or {}
                data = {"name": old.get("name", node_id), "model": model, "size": old.get("size")}
                for key, default in MODELS[model].defaults().items():
                    data[key] = old.get(key, default)
                node = {**node, "data": data}
            nodes.append(node)
        self.flow.nodes = nodes
        self._refresh_form()

    def _set_self_loop(self, node_id: str, on: bool) -> None:
        loops = [e["id"] for e in self.flow.edges if e["source"] == e["target"] == node_id]
        if on and not loops:
            self.add_projection(node_id, node_id, recurrent=True)
        elif not on and loops:
            self.flow.remove_edge(loops)
        self._refresh_form()

    # ------------------------------------------------------------------------- JSON files
    def _on_file(self, event) -> None:
        if event.new:
            raw = event.new
            try:
                text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError as exc:
                self.load_error.object = (
                    f"**Not loaded:** the file is not UTF-8 text ({exc.reason})"
                )
                self.load_error.visible = True
                return
            self.json_input.value = text
            self.load_json(text)

    def _spec_file(self):
        return io.StringIO(self.spec_json())


__all__ = ["NetworkBuilder", "DRAG_TYPE", "depths", "layout"]
