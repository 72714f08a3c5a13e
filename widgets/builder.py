"""The network builder: a node editor of the session's :class:`NetworkSpec`.

Populations are nodes, projections are edges, drawn with ``panel_reactflow.ReactFlow``.  The
translation between a spec and the diagram is the model, pure functions in
:mod:`workbench.widgets.diagram` (no Panel there); :class:`NetworkBuilder` is the view: it
holds the widgets, turns each user action into new node and edge lists, and hands them to one
method (``_update``) that asks the model for the draft, its problems and the positions, and
shows the result.  The diagram and ``workbench.spec`` stay in step both ways:

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
  A population no projection reaches from the input is such a problem.  ``builder.problems``
  lists the draft's problems, ``builder.problems_at`` the same by node or edge id, and
  ``builder.draft`` is the draft itself.
- positions: a new population goes inside the visible part of the diagram, clear of the other
  nodes (the view zooms out when there is no room).  When an edit connects a population or
  moves one to another column, the diagram is laid out again by depth; nodes the user dragged,
  and populations not connected yet, stay where they are.  A layout that leaves the view is
  followed by a view that shows all of it.

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
``wb-json-card``, ``wb-json-toggle``    the "Load / save JSON" card and its header, a toggle
                                        that opens and closes it
``wb-spec-json``, ``wb-spec-file``,     JSON text area, file input, Load button,
``wb-load-spec``, ``wb-download-spec``  download of the current spec
``wb-load-error``                       why the last Load failed
======================================  ===================================================
"""

from __future__ import annotations

import io
import json

import panel as pn
import param
from panel.custom import JSComponent
from panel_reactflow import NodeType, ReactFlow

from workbench.limits import parse_json
from workbench.neurons import MODELS
from workbench.spec import INPUT, NetworkSpec, Problem, SpecError

from . import diagram
from .diagram import (
    DEFAULT_SIZE,
    INPUT_TYPE,
    POPULATION_KEYS,
    POPULATION_TYPE,
    Box,
    Draft,
    depths,
    layout,
)
from .parts import Disclosure
from .state import Workbench
from .templates import TEMPLATES

DRAG_TYPE = "application/x-wb-population"  # MIME type of a palette item dragged onto the diagram
JSON_TITLE = "Load / save JSON"
FIELD_BYTES = 64 * 1024  # JSON typed into one field of the form (a list of parameters, say)
# A loaded file goes into the text box only up to this size (larger ones would travel back to
# the browser whole).
SHOWN_BYTES = 256 * 1024


def _no_editor(data, schema, *, id, type, on_patch):
    """ReactFlow's editor factory: none (the builder's own form edits the selection)."""
    return None


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class ModelPalette(JSComponent):
    """Neuron models as draggable items; dropping one on the diagram adds a population.

    It also reports the size of the diagram beside it (``pane``, from a ResizeObserver on the
    ``wb-builder-flow`` element of the same row): the builder needs it to know what part of
    the diagram is in view."""

    items = param.List(default=[], doc="[{model, label, title}] to show")
    drag_type = param.String(default=DRAG_TYPE)
    pane = param.Dict(
        default=None, allow_None=True, doc="{width, height} of the diagram beside it (px)"
    )

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

  let observer = null;
  let tries = 0;
  const watch_pane = () => {
    const host = el.getRootNode().host;
    const row = host ? host.parentNode : null;
    const flow = row && row.querySelector ? row.querySelector(".wb-builder-flow") : null;
    if (flow === null) {
      if (tries++ < 50) setTimeout(watch_pane, 100);
      return;
    }
    const report = () => {
      const box = flow.getBoundingClientRect();
      const size = { width: Math.round(box.width), height: Math.round(box.height) };
      const old = model.pane;
      if (size.width > 0 && (!old || old.width !== size.width || old.height !== size.height)) {
        model.pane = size;
      }
    };
    observer = new ResizeObserver(report);
    observer.observe(flow);
    report();
  };
  watch_pane();
  model.on("remove", () => { if (observer !== null) observer.disconnect(); });
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
        self._meta: dict = {}  # the spec's fields that are not nodes or edges
        self._input_data = {"size": 1}  # the input node's data, to put it back if removed
        self._pinned: set[str] = set()  # node ids the user dragged: a layout leaves them
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
        # The user's edits arrive as the flow's events (from the browser, or its methods
        # called in code); the builder's own assignments of nodes and edges raise none.
        for event in ("node_added", "node_deleted", "edge_added", "edge_deleted", "sync"):
            self.flow.on(event, self._on_flow_edit)
        self.flow.on("node_data_changed", self._on_data_edit)
        self.flow.on("edge_data_changed", self._on_data_edit)
        self.flow.on("node_moved", self._on_moved)
        self.flow.on("drop", self._on_drop)
        self.flow.param.watch(self._on_selection, "selection")
        self._build_widgets()
        self.workbench.param.watch(self._on_spec, "spec")
        self._show(self.workbench.spec)

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
        # A Disclosure, not a collapsible Card, which cannot open again after another tab
        # was visited (see widgets/parts.py).
        self.json_card = Disclosure(
            JSON_TITLE,
            self.json_input,
            pn.Row(self.json_file, self.load_button, self.download),
            self.load_error,
            css_class="wb-json",
        )
        self.json_toggle, self.json_body = self.json_card.toggle, self.json_card.body

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
            self.json_card,
            sizing_mode="stretch_width",
            css_classes=["wb-builder"],
        )

    # ------------------------------------------------------------------------- public actions
    def use_template(self, name: str) -> None:
        """Replace the network with a fresh copy of template ``name``."""
        self.workbench.spec = TEMPLATES[name]()

    def load_json(self, text: str | bytes) -> bool:
        """Load a spec from JSON text (or a file's bytes) into the workbench; on failure show
        why, by field, and keep the network.  Returns whether it loaded."""
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
        *,
        select: bool = False,
    ) -> str:
        """Add a population node with ``model``'s default parameters, before the output, at
        ``position`` or else in view clear of the other nodes; returns its node id.  An empty
        ``name`` picks ``MODEL1``, ``MODEL2``, ...  Until a projection reaches it, it is a
        problem of the diagram.  ``select``: select it (its form opens), as the row and a drop
        do."""
        nodes = list(self.flow.nodes)
        name = name or diagram.free_name(model, nodes)
        node_id = diagram.unused(name, {n["id"] for n in nodes}, "_")
        if position is None:
            position = diagram.place_new_node(nodes, self._visible())
        data = diagram.new_population_data(name, model, size)
        node = diagram.make_node(node_id, POPULATION_TYPE, data, position)
        edges = self.flow.edges
        if select:  # selected when it first reaches the browser, which keeps its own
            node["selected"] = True  # selection of the nodes it has already
            nodes = [{**n, "selected": False} for n in nodes]
            edges = [{**e, "selected": False} for e in edges]
        nodes.insert(diagram.insert_index(nodes, self._meta.get("output")), node)
        self._update(nodes, edges)
        self._fit_view()
        return node_id

    def add_projection(self, source: str, target: str, recurrent: bool = False, **data) -> str:
        """Add a projection edge from node ``source`` to node ``target``; returns its id."""
        edge_id = diagram.unused(f"{source}->{target}", {e["id"] for e in self.flow.edges}, ":")
        fields = diagram.new_projection_data(recurrent, **data)
        edge = {"id": edge_id, "source": source, "target": target, "data": fields}
        self._update(self.flow.nodes, [*self.flow.edges, edge])
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
        """Remove the selected nodes (not the input), their projections and the selected
        edges."""
        gone = {n for n in self.flow.selection.get("nodes", []) if n != INPUT}
        gone_edges = set(self.flow.selection.get("edges", []))
        nodes = [n for n in self.flow.nodes if n["id"] not in gone]
        edges = [
            e
            for e in self.flow.edges
            if e["id"] not in gone_edges and e["source"] not in gone and e["target"] not in gone
        ]
        self._pinned -= gone
        self._update(nodes, edges)
        self.select()

    # ------------------------------------------------------------------------- spec -> diagram
    def _on_spec(self, event) -> None:
        self._show_summary()
        if event.new is not self.draft:  # the builder's own draft is drawn already
            self._show(event.new)

    def _show(self, spec: NetworkSpec) -> None:
        """Draw ``spec`` (assigned from outside the builder): the same populations where they
        are (laid out again if a projection moved one to another column), other ones laid
        out afresh."""
        old = {n["id"]: n["position"] for n in self.flow.nodes}
        if set(old) == {INPUT, *spec.population_names}:
            positions = old
            if self.draft is not None and diagram.needs_layout(self.draft, spec):
                positions = diagram.relayout(spec, old, self._pinned)
        else:
            positions = layout(spec)
            self._pinned = set()
        self._meta = diagram.meta_of(spec)
        self._input_data = {"size": spec.input_size}
        nodes, edges = diagram.nodes_and_edges(spec, positions, self._selected_ids())
        self._set_meta_widgets()
        self._update(nodes, edges, drawn=True)
        self._fit_view()
        self._show_summary()
        self._refresh_form()

    # ------------------------------------------------------------------------- diagram -> spec
    def _on_flow_edit(self, payload) -> None:
        self._update(self.flow.nodes, self.flow.edges)

    def _on_data_edit(self, payload) -> None:
        """Node or edge data changed by the flow's methods (the form edits through
        :meth:`_update` itself)."""
        self._update(self.flow.nodes, self.flow.edges)
        self._refresh_form()

    def _on_moved(self, payload) -> None:
        if payload.get("node_id") is not None:
            self._pinned.add(payload["node_id"])

    def _update(self, nodes: list[dict], edges: list[dict], drawn: bool = False) -> None:
        """The diagram is now ``nodes`` and ``edges``: build the draft and find its problems,
        pass a valid draft on to the workbench, draw it again where the diagram differs from
        how it is drawn (a rename, defaults), lay it out again after a connection, and show
        it all.  ``drawn``: the lists are a spec from outside, as drawn (nothing to pass on or
        lay out)."""
        nodes = diagram.with_input(list(nodes), self._input_data)
        edges = list(edges)
        before = self.draft
        draft, problems = diagram.spec_from_diagram(
            nodes,
            edges,
            self._meta,
            self._input_data,
            checks=[lambda spec: self.workbench.limits.problems(spec)],
        )
        self._input_data = draft.input
        spec = draft.spec
        redrawn = laid_out = False
        if not drawn and not problems and diagram.needs_redraw(nodes, edges, spec):
            name_of = {node_id: name for name, node_id in draft.node_of().items()}
            positions = {name_of[n["id"]]: n["position"] for n in nodes if n["id"] in name_of}
            selected = {name_of.get(i, i) for i in self._selected_ids()}
            self._pinned = {name_of.get(i, i) for i in self._pinned}
            nodes, edges = diagram.nodes_and_edges(spec, positions, selected)
            draft = Draft(spec, spec.population_names, [e["id"] for e in edges], draft.input)
            redrawn = True
        if not drawn and before is not None and diagram.needs_layout(before, spec):
            nodes = self._laid_out(nodes, draft)
            laid_out = True
        self.param.update(
            draft=spec, problems=problems, problems_at=diagram.problems_by_element(problems, draft)
        )
        self._assign(nodes, edges)
        if not drawn and not problems and spec.to_dict() != self.workbench.spec.to_dict():
            self.workbench.spec = spec  # _on_spec knows it as the draft: not drawn again
        if laid_out:
            self._fit_view()
        self._show_problems()
        self._show_form_problems()
        self._refresh_choices()
        if redrawn:
            self._refresh_form()

    def _laid_out(self, nodes: list[dict], draft: Draft) -> list[dict]:
        """``nodes`` at :func:`diagram.relayout`'s positions (pinned nodes stay)."""
        node_of = draft.node_of()
        at = {n["id"]: n["position"] for n in nodes}
        positions = {name: at[i] for name, i in node_of.items() if i in at}
        pinned = {name for name, i in node_of.items() if i in self._pinned}
        moved = {
            node_of[name]: pos
            for name, pos in diagram.relayout(draft.spec, positions, pinned).items()
            if name in node_of
        }
        return [{**n, "position": moved.get(n["id"], n["position"])} for n in nodes]

    # ------------------------------------------------------------------------- view
    def _pane(self) -> dict | None:
        return self.palette.pane or None

    def _visible(self) -> Box | None:
        """The part of the diagram in view, once the browser has told its viewport."""
        return diagram.visible_area(self.flow.viewport, self._pane())

    def _fit_view(self) -> None:
        """Show the whole diagram if part of it is out of view."""
        visible = self._visible()
        area = Box.around(diagram.node_box(n) for n in self.flow.nodes)
        if visible is None or area is None or area.inside(visible):
            return
        self.flow.viewport = diagram.fit_viewport(
            area, self._pane(), self.flow.min_zoom, self.flow.max_zoom
        )

    def _assign(self, nodes: list[dict], edges: list[dict]) -> None:
        """Give the diagram ``nodes`` and ``edges`` with their labels and styles (the problems
        of ``problems_at``).

        Always whole lists, never ReactFlow's ``patch_*`` messages: while the browser's
        message is handled, list updates are held until the end but patch messages go out at
        once, so a patch could reach the browser before the node it patches, or be overwritten
        by the held list."""
        nodes, edges = diagram.decorate(nodes, edges, self.problems_at)
        updates = {}
        if nodes != self.flow.nodes:
            updates["nodes"] = nodes
        if edges != self.flow.edges:
            updates["edges"] = edges
        if updates:
            self.flow.param.update(**updates)

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
        self.add_population(
            self.add_name.value.strip() or None,
            self.add_model.value,
            self.add_size.value,
            select=True,
        )
        self.add_name.value = ""

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
        self.add_population(None, model, DEFAULT_SIZE, position, select=True)

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
        self.proj_source.options = {INPUT: INPUT, **pops}
        if self.proj_source.value not in self.proj_source.options.values():
            self.proj_source.value = INPUT
        self.proj_target.options = pops
        if self.proj_target.value not in pops.values():
            self.proj_target.value = next(iter(pops.values()), None)
        # options and value at once: options alone could make the Select pick another value
        self.net_output.param.update(options=outputs, value=output or "")

    def _shown(self, key: str):
        """What the network form's widget of ``key`` shows for the current value."""
        value = self._meta.get(key)
        if key == "name":
            return str(value)
        if key == "dt":
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            return float(value) if number else None
        if key == "n_steps":
            return value if _is_int(value) else None
        return value or ""  # output: "" is the last population

    def _set_meta_widgets(self) -> None:
        """Show the network's fields in its form (the output: :meth:`_refresh_choices`)."""
        self.net_name.value = self._shown("name")
        self.net_dt.value = self._shown("dt")
        self.net_steps.value = self._shown("n_steps")

    def _on_meta(self, key: str, value) -> None:
        if value == self._shown(key):  # shown by the builder, or no change
            return
        if key == "output":
            value = value or None  # "" is the last population
        self._meta[key] = value
        self._update(self.flow.nodes, self.flow.edges)

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

    def _patch_node(self, node_id: str, key: str, value) -> None:
        """The form sets field ``key`` of a node's data."""
        nodes = [
            {**n, "data": {**(n.get("data") or {}), key: value}} if n["id"] == node_id else n
            for n in self.flow.nodes
        ]
        self._update(nodes, self.flow.edges)

    def _patch_edge(self, edge_id: str, key: str, value) -> None:
        """The form sets field ``key`` of an edge's data."""
        edges = [
            {**e, "data": {**(e.get("data") or {}), key: value}} if e["id"] == edge_id else e
            for e in self.flow.edges
        ]
        self._update(self.flow.nodes, edges)

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

            def parse(event):  # JSON when it is (bounded in size and depth), else the text
                try:
                    value = parse_json(event.new, key, max_bytes=FIELD_BYTES)
                except SpecError:
                    value = event.new
                on_change(value)

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
            if key not in spec_params and key not in POPULATION_KEYS:
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
        self._update(nodes, self.flow.edges)
        self._refresh_form()

    def _set_self_loop(self, node_id: str, on: bool) -> None:
        loops = {e["id"] for e in self.flow.edges if e["source"] == e["target"] == node_id}
        if on and not loops:
            self.add_projection(node_id, node_id, recurrent=True)
        elif not on and loops:
            self._update(self.flow.nodes, [e for e in self.flow.edges if e["id"] not in loops])
        self._refresh_form()

    # ------------------------------------------------------------------------- JSON files
    def _on_file(self, event) -> None:
        """A file chosen: loaded as a spec (refused by field, the network kept, when it is not
        one); shown in the text box when it is small enough to edit there."""
        raw = event.new
        if raw is None:
            return
        if isinstance(raw, bytes) and len(raw) <= SHOWN_BYTES:
            try:
                self.json_input.value = raw.decode("utf-8")
            except UnicodeDecodeError:
                pass  # load_json says so
        self.load_json(raw)

    def _spec_file(self):
        return io.StringIO(self.spec_json())


__all__ = ["NetworkBuilder", "ModelPalette", "DRAG_TYPE", "depths", "layout"]
