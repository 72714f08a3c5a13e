"""NetworkBuilder: the diagram and ``workbench.spec`` stay in step both ways.

No browser: the tests drive the ReactFlow component's params and methods, and send it the
messages the browser sends (``flow._handle_msg``), then read the workbench's spec, the
builder's ``problems`` and the diagram's nodes and edges.
"""

from __future__ import annotations

import copy

import panel as pn
import pytest

from workbench.spec import NetworkSpec, Population, Projection, feedforward
from workbench.widgets import diagram
from workbench.widgets.builder import DRAG_TYPE, NetworkBuilder, depths
from workbench.widgets.state import Workbench
from workbench.widgets.templates import TEMPLATES


@pytest.fixture
def wb():
    return Workbench()


@pytest.fixture
def builder(wb):
    return NetworkBuilder(workbench=wb)


def node(builder, node_id):
    return next(n for n in builder.flow.nodes if n["id"] == node_id)


def edge(builder, edge_id):
    return next(e for e in builder.flow.edges if e["id"] == edge_id)


def form_widget(builder, key):
    """The form's widget of field ``key`` (by its css class)."""
    found = [w for w in builder.form if f"wb-form-{key}" in (w.css_classes or [])]
    assert found, f"no form field {key}: {[w.css_classes for w in builder.form]}"
    return found[0]


def click(button):
    button.clicks += 1


def browser(builder, **msg):
    """Send the ReactFlow component a message as the browser does."""
    builder.flow._handle_msg(msg)


# ------------------------------------------------------------------------------ spec -> diagram
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_a_template_builds_the_network_its_name_says(name):
    """'Yin-Yang 5-120-3' used to build a network named yinyang-4-120-3 (features, not the
    encoder's 5 channels)."""
    spec = TEMPLATES[name]()
    sizes = "-".join(str(n) for n in [spec.input_size, *(p.size for p in spec.populations)])
    if len(spec.populations) > 4:  # a graph of many populations (the networks for time)
        # its name says inputs, hidden neurons per layer (or none), outputs
        numbers = [int(n) for n in name.rsplit(" ", 1)[-1].split("-")]
        hidden = sum(p.size for p in spec.populations) - spec.size_of(spec.output_name)
        output = spec.size_of(spec.output_name)
        assert numbers[0] == spec.input_size and numbers[-1] == output
        assert sum(numbers[1:-1]) in (0, hidden) and spec.name.endswith(name.rsplit(" ")[-1])
        return
    assert name.endswith(sizes) and spec.name.endswith(sizes)


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_template_is_drawn_node_per_population_edge_per_projection(builder, wb, name):
    builder.template.value = name
    click(builder.template_button)
    spec = TEMPLATES[name]()
    assert wb.spec.to_dict() == spec.to_dict()
    assert [n["id"] for n in builder.flow.nodes] == ["input", *spec.population_names]
    assert node(builder, "input")["data"] == {"size": spec.input_size}
    for pop in spec.populations:
        data = node(builder, pop.name)["data"]
        assert data == {"name": pop.name, "model": pop.model, "size": pop.size, **pop.params}
    assert [(e["source"], e["target"]) for e in builder.flow.edges] == [
        (p.source, p.target) for p in spec.projections
    ]
    for e, proj in zip(builder.flow.edges, spec.projections):
        assert e["id"] == proj.name
        assert e["data"]["recurrent"] == proj.recurrent
        assert e["data"]["weight_std"] == proj.weight_std
    assert builder.problems == []
    assert builder.alert.alert_type == "success"


def test_layout_in_columns_by_depth(builder, wb):
    wb.spec = feedforward([3, 10, 8, 2], name="deep")
    x = {n["id"]: n["position"]["x"] for n in builder.flow.nodes}
    assert x["input"] < x["hidden1"] < x["hidden2"] < x["output"]
    assert depths(wb.spec) == {"input": 0, "hidden1": 1, "hidden2": 2, "output": 3}
    # A recurrent projection does not push its target into a later column.
    spec = TEMPLATES["Recurrent 5-64-3"]()
    assert depths(spec) == {"input": 0, "hidden": 1, "output": 2}


def test_spec_assigned_in_code_is_drawn_and_positions_stay(builder, wb):
    browser(builder, type="node_moved", node_id="hidden", position={"x": 300.0, "y": 170.0})
    spec = copy.deepcopy(wb.spec)
    spec.populations[0].size = 77
    spec.populations[0].params["tau_mem"] = 33.0
    wb.spec = spec
    hidden = node(builder, "hidden")
    assert hidden["data"]["size"] == 77 and hidden["data"]["tau_mem"] == 33.0
    assert hidden["position"] == {"x": 300.0, "y": 170.0}  # same populations: kept
    assert "77" in hidden["label"]
    assert builder.problems == []


# ------------------------------------------------------------------------------ diagram -> spec
def test_editing_node_data_updates_the_spec_once(builder, wb):
    seen = []
    wb.param.watch(lambda e: seen.append(e.new), "spec")
    builder.flow.patch_node_data("hidden", {"size": 7, "tau_mem": 15.0})
    assert len(seen) == 1  # one assignment, no echo from the diagram
    hidden = wb.spec.population("hidden")
    assert hidden.size == 7 and hidden.params["tau_mem"] == 15.0
    assert wb.spec.population("output").size == 3
    # Moving a node does not touch the spec; the position survives later edits.
    browser(builder, type="node_moved", node_id="output", position={"x": 900.0, "y": 40.0})
    builder.flow.patch_node_data("output", {"tau_syn": 6.0})
    assert len(seen) == 2
    assert node(builder, "output")["position"] == {"x": 900.0, "y": 40.0}


def test_form_edits_the_selected_population(builder, wb):
    builder.select("hidden")
    assert builder.flow.selection == {"nodes": ["hidden"], "edges": []}
    form_widget(builder, "tau_mem").value = 12.5
    assert wb.spec.population("hidden").params["tau_mem"] == 12.5
    form_widget(builder, "size").value = 40
    assert wb.spec.population("hidden").size == 40
    # Changing the model swaps the parameters, keeping the shared ones.
    form_widget(builder, "model").value = "alif"
    hidden = wb.spec.population("hidden")
    assert hidden.model == "alif"
    assert hidden.params["tau_mem"] == 12.5
    assert "tau_adapt" in hidden.params
    assert form_widget(builder, "tau_adapt").value == hidden.params["tau_adapt"]
    # An invalid value stays in the form and the diagram, with its problem under the form.
    form_widget(builder, "tau_adapt").value = 0.0
    assert wb.spec.population("hidden").params["tau_adapt"] == 200.0
    assert builder.form_problems.visible
    assert "populations[0].params.tau_adapt" in builder.form_problems.object
    assert form_widget(builder, "tau_adapt").value == 0.0
    form_widget(builder, "tau_adapt").value = 150.0
    assert not builder.form_problems.visible
    assert wb.spec.population("hidden").params["tau_adapt"] == 150.0
    # The input's form sets the input size.
    builder.select("input")
    form_widget(builder, "size").value = 6
    assert wb.spec.input_size == 6


def test_rename_in_the_form_renames_node_and_projections(builder, wb):
    builder.select("hidden")
    form_widget(builder, "name").value = "middle"
    assert wb.spec.population_names == ["middle", "output"]
    assert [(p.source, p.target) for p in wb.spec.projections] == [
        ("input", "middle"),
        ("middle", "output"),
    ]
    assert [n["id"] for n in builder.flow.nodes] == ["input", "middle", "output"]
    assert [e["id"] for e in builder.flow.edges] == ["input->middle", "middle->output"]
    assert builder.flow.selection["nodes"] == ["middle"]


def test_edge_form_and_network_form(builder, wb):
    builder.select(edge_id="hidden->output")
    form_widget(builder, "delay").value = 3
    form_widget(builder, "weight_mean").value = 0.25
    proj = wb.spec.projections[1]
    assert (proj.delay, proj.weight_mean) == (3, 0.25)
    assert "delay 3" in edge(builder, "hidden->output")["label"]
    builder.net_steps.value = 50
    builder.net_name.value = "mine"
    assert (wb.spec.n_steps, wb.spec.name) == (50, "mine")


def test_add_and_remove_nodes_and_edges_as_the_browser_does(builder, wb):
    # A node dropped from the palette: a population with the model's defaults, before the output.
    browser(
        builder,
        type="drop",
        drop_type=DRAG_TYPE,
        data={"model": "alif"},
        position={"x": 250.0, "y": 200.0},
        target=None,
    )
    assert builder.draft.population_names == ["hidden", "alif1", "output"]
    assert builder.draft.output_name == "output"
    assert node(builder, "alif1")["position"] == {"x": 250.0, "y": 200.0}
    assert builder.draft.population("alif1").params["tau_adapt"] == 200.0
    assert builder.flow.selection["nodes"] == ["alif1"]
    # Nothing reaches it yet: a problem at its node, and the workbench keeps its network.
    assert [p.path for p in builder.problems] == ["populations[1]"]
    assert "receives no projection" in builder.problems[0].message
    assert list(builder.problems_at) == ["alif1"]
    assert wb.spec.population_names == ["hidden", "output"]
    # Connected in the browser: an edge without data takes the defaults.
    edge_msg = {"id": "input->alif1", "source": "input", "target": "alif1"}
    browser(builder, type="edge_added", edge={**edge_msg, "sourceHandle": None})
    assert builder.problems == []
    assert wb.spec.population_names == ["hidden", "alif1", "output"]
    # ... and laid out: in the input's next column, with hidden.
    assert node(builder, "alif1")["position"]["x"] == node(builder, "hidden")["position"]["x"]
    browser(
        builder,
        type="edge_added",
        edge={"id": "alif1->output", "source": "alif1", "target": "output"},
    )
    names = [p.name for p in wb.spec.projections]
    assert "input->alif1" in names and "alif1->output" in names
    assert edge(builder, "input->alif1")["data"]["recurrent"] is False
    # Deleted in the browser (the Delete key): the node and its projections go.
    browser(builder, type="node_deleted", node_id="alif1", node_ids=["alif1"])
    assert wb.spec.population_names == ["hidden", "output"]
    assert [p.name for p in wb.spec.projections] == ["input->hidden", "hidden->output"]
    # Without its only projection the output is cut off from the input: a problem.
    browser(builder, type="edge_deleted", edge_id="hidden->output", edge_ids=["hidden->output"])
    assert [p.name for p in builder.draft.projections] == ["input->hidden"]
    assert list(builder.problems_at) == ["output"]
    assert [p.name for p in wb.spec.projections] == ["input->hidden", "hidden->output"]


def test_add_rows_and_remove_selected(builder, wb):
    builder.add_name.value = "extra"
    builder.add_model.value = "lif"
    builder.add_size.value = 9
    click(builder.add_population_button)
    assert builder.draft.population("extra").size == 9
    assert builder.draft.population_names[-1] == "output"
    assert builder.proj_target.options["extra"] == "extra"
    assert "extra" not in wb.spec.population_names  # not connected yet: a problem
    builder.proj_source.value = "hidden"
    builder.proj_target.value = "extra"
    click(builder.add_projection_button)
    assert wb.spec.population("extra").size == 9
    builder.proj_source.value = "extra"
    builder.proj_target.value = "output"
    click(builder.add_projection_button)
    assert {"hidden->extra", "extra->output"} <= {p.name for p in wb.spec.projections}
    builder.select("extra")
    click(builder.remove_button)
    assert "extra" not in wb.spec.population_names
    assert all("extra" not in p.name for p in wb.spec.projections)
    # The input cannot be removed.
    builder.select("input")
    click(builder.remove_button)
    assert node(builder, "input")["data"]["size"] == 5


def test_flow_methods_add_and_remove(builder, wb):
    builder.flow.add_node(
        {
            "id": "side",
            "type": "wb_population",
            "position": {"x": 0, "y": 300},
            "data": {"model": "lif", "size": 4},
        }
    )
    # Appended last, it is the output now; connect it so the network stays valid.
    builder.flow.add_edge({"id": "hidden->side", "source": "hidden", "target": "side"})
    assert wb.spec.population("side").size == 4
    assert wb.spec.output_name == "side"
    builder.flow.remove_node("side")
    assert wb.spec.population_names == ["hidden", "output"]


# ------------------------------------------------------------------------------ positions
def visible(builder):
    return diagram.visible_area(builder.flow.viewport, builder.palette.pane)


def test_a_new_population_lands_in_view_clear_of_the_others(builder):
    # The view the browser reported for the template in a 970 x 480 pane, zoomed in a little.
    builder.palette.pane = {"width": 970, "height": 480}
    builder.flow.viewport = {"x": 44.0, "y": 40.0, "zoom": 1.0}
    view = builder.flow.viewport
    builder.add_population("extra")
    box = diagram.node_box(node(builder, "extra"))
    assert box.inside(visible(builder))
    others = [diagram.node_box(n) for n in builder.flow.nodes if n["id"] != "extra"]
    assert not any(box.overlaps(o) for o in others)
    assert builder.flow.viewport == view  # there was room: the view stays
    # No room left at a high zoom: the view zooms out to show the new node.
    builder.flow.viewport = {"x": 44.0, "y": 193.0, "zoom": 1.5}
    builder.add_population("more")
    assert builder.flow.viewport["zoom"] < 1.5
    area = diagram.Box.around(diagram.node_box(n) for n in builder.flow.nodes)
    assert area.inside(visible(builder))


def test_connecting_lays_out_again_and_a_dragged_node_keeps_its_place(builder, wb):
    browser(builder, type="node_moved", node_id="output", position={"x": 700.0, "y": 260.0})
    builder.add_population("extra")
    placed = node(builder, "extra")["position"]
    builder.add_projection("hidden", "extra")
    assert wb.spec.population_names == ["hidden", "extra", "output"]
    assert node(builder, "extra")["position"] != placed
    assert node(builder, "extra")["position"]["x"] == 2 * diagram.COLUMN  # after hidden
    assert node(builder, "output")["position"] == {"x": 700.0, "y": 260.0}  # the user's
    # A new network is laid out afresh, the user's places forgotten.
    builder.use_template("Recurrent 5-64-3")
    assert node(builder, "output")["position"] == diagram.layout(wb.spec)["output"]


def test_a_spec_from_outside_that_moves_a_column_is_laid_out_again(builder, wb):
    spec = TEMPLATES["Yin-Yang 5-120-3"]()
    spec.populations.insert(1, Population("second", 10))
    spec.projections = [
        Projection("input", "hidden"),
        Projection("hidden", "second"),
        Projection("second", "output"),
    ]
    wb.spec = spec.validate()
    x = {n["id"]: n["position"]["x"] for n in builder.flow.nodes}
    assert x["input"] < x["hidden"] < x["second"] < x["output"]
    spec = copy.deepcopy(spec)
    spec.projections.append(Projection("input", "output"))  # moves no column
    browser(builder, type="node_moved", node_id="second", position={"x": 500.0, "y": 300.0})
    wb.spec = spec
    assert node(builder, "second")["position"] == {"x": 500.0, "y": 300.0}


def test_a_network_loaded_beyond_the_view_is_brought_into_it(builder, wb):
    builder.palette.pane = {"width": 970, "height": 480}
    builder.flow.viewport = {"x": 44.0, "y": 193.0, "zoom": 1.4459}  # the template's fit
    assert builder.load_json(feedforward([4, 8, 6, 5, 2], name="deep").to_json())
    area = diagram.Box.around(diagram.node_box(n) for n in builder.flow.nodes)
    assert area.inside(visible(builder))
    assert builder.flow.viewport["zoom"] < 1.0


# ------------------------------------------------------------------------------ problems
def test_invalid_parameter_is_shown_at_its_node_and_the_spec_kept(builder, wb):
    before = wb.spec.to_dict()
    builder.flow.patch_node_data("hidden", {"tau_mem": -1.0})
    assert wb.spec.to_dict() == before  # the workbench keeps the last valid network
    assert [p.path for p in builder.problems] == ["populations[0].params.tau_mem"]
    assert list(builder.problems_at) == ["hidden"]
    hidden = node(builder, "hidden")
    assert hidden["data"]["tau_mem"] == -1.0  # the diagram keeps the user's edit
    assert "tau_mem" in hidden["label"] and "⚠" in hidden["label"]
    assert "wb-node-problem" in hidden["className"]
    assert builder.alert.alert_type == "danger"
    assert "populations[0].params.tau_mem" in builder.alert.object
    assert builder.draft.population("hidden").params["tau_mem"] == -1.0
    # A valid edit elsewhere still does not reach the workbench while a problem is left ...
    builder.flow.patch_node_data("output", {"size": 4})
    assert wb.spec.to_dict() == before
    # ... and fixing the problem passes everything on.
    builder.flow.patch_node_data("hidden", {"tau_mem": 25.0})
    assert builder.problems == [] and builder.problems_at == {}
    assert wb.spec.population("hidden").params["tau_mem"] == 25.0
    assert wb.spec.population("output").size == 4
    assert "⚠" not in node(builder, "hidden")["label"]


def test_projection_to_a_missing_target_is_shown_at_its_edge(builder, wb):
    before = wb.spec.to_dict()
    builder.flow.add_edge(
        {"id": "hidden->ghost", "source": "hidden", "target": "ghost", "data": {"recurrent": False}}
    )
    assert wb.spec.to_dict() == before
    assert [p.path for p in builder.problems] == ["projections[2].target"]
    assert list(builder.problems_at) == ["hidden->ghost"]
    e = edge(builder, "hidden->ghost")
    assert "⚠" in e["label"] and e["style"]["stroke"] == "#d32f2f"
    builder.flow.remove_edge("hidden->ghost")
    assert builder.problems == []


def test_limits_are_checked(builder, wb):
    wb.limits.max_neurons = 100
    builder.flow.patch_node_data("hidden", {"size": 150})
    assert [p.path for p in builder.problems] == ["populations"]
    assert wb.spec.population("hidden").size == 120
    assert "limit" in builder.alert.object


def test_feedforward_cycle_needs_a_recurrent_edge(builder, wb):
    builder.add_population("second", "lif", 8)
    builder.add_projection("hidden", "second")
    builder.add_projection("second", "hidden")  # closes a cycle, not marked recurrent
    assert any(p.path == "projections" for p in builder.problems)
    builder.flow.patch_edge_data("second->hidden", {"recurrent": True})
    assert builder.problems == []
    assert wb.spec.projections[-1].recurrent is True


# ------------------------------------------------------------------------------ recurrence
def test_self_recurrent_projection_round_trip(builder, wb):
    builder.use_template("Recurrent 5-64-3")
    loop = edge(builder, "hidden->hidden")
    assert loop["source"] == loop["target"] == "hidden"
    assert loop["data"]["recurrent"] is True
    assert "↻" in node(builder, "hidden")["label"]
    builder.flow.patch_edge_data("hidden->hidden", {"delay": 2})
    assert wb.spec.projections[1].delay == 2
    assert NetworkSpec.from_json(wb.spec.to_json()).to_dict() == wb.spec.to_dict()
    # Removed and drawn again in the browser (no data): recurrent is set for a self-loop.
    browser(builder, type="edge_deleted", edge_id="hidden->hidden")
    assert [p.name for p in wb.spec.projections] == ["input->hidden", "hidden->output"]
    assert "↻" not in node(builder, "hidden")["label"]
    browser(
        builder,
        type="edge_added",
        edge={"id": "hidden->hidden", "source": "hidden", "target": "hidden"},
    )
    assert builder.problems == []
    assert wb.spec.projections[-1].name == "hidden->hidden"
    assert wb.spec.projections[-1].recurrent is True


def test_self_loop_checkbox_in_the_node_form(builder, wb):
    builder.select("hidden")
    form_widget(builder, "self-recurrent").value = True
    assert [p.name for p in wb.spec.projections if p.recurrent] == ["hidden->hidden"]
    form_widget(builder, "delay").value = 1  # the loop's fields are in the node's form
    assert wb.spec.projections[-1].delay == 1
    form_widget(builder, "self-recurrent").value = False
    assert all(not p.recurrent for p in wb.spec.projections)


# ------------------------------------------------------------------------------ JSON
def test_json_round_trip_and_download(builder, wb):
    spec = NetworkSpec(
        4,
        [Population("a", 6, "if"), Population("b", 2, "li", {"tau_mem": 10.0})],
        [
            Projection("input", "a", delay=1),
            Projection("a", "a", recurrent=True),
            Projection("a", "b", weight_mean=0.1, weight_std=0.2),
        ],
        dt=0.5,
        n_steps=40,
        name="from-json",
    ).validate()
    builder.json_input.value = spec.to_json()
    click(builder.load_button)
    assert wb.spec.to_dict() == spec.to_dict()
    assert [n["id"] for n in builder.flow.nodes] == ["input", "a", "b"]
    assert builder.download.filename == "from-json.json"
    assert NetworkSpec.from_json(builder._spec_file().read()).to_dict() == spec.to_dict()
    assert builder.net_dt.value == 0.5 and builder.net_steps.value == 40
    # An untouched diagram gives back the very same spec.
    builder.flow.patch_node_data("a", {"size": 6})
    assert wb.spec.to_dict() == spec.to_dict()


def test_the_json_card_opens_and_closes_from_its_header(builder):
    assert "wb-json-card" in builder.json_card.card.css_classes
    assert "wb-json-toggle" in builder.json_toggle.css_classes
    assert not builder.json_body.visible
    builder.json_toggle.value = True
    assert builder.json_body.visible and builder.json_toggle.label.startswith("▾")
    builder.json_toggle.value = False
    assert not builder.json_body.visible and builder.json_toggle.label.startswith("▸")


def test_file_input_and_bad_json(builder, wb):
    before = wb.spec.to_dict()
    assert not builder.load_json("{not json")
    assert builder.load_error.visible and "JSON" in builder.load_error.object
    assert not builder.load_json('{"input_size": 2, "populations": [], "projections": []}')
    assert "populations" in builder.load_error.object
    assert wb.spec.to_dict() == before
    spec = feedforward([2, 3, 1], name="file")
    builder.json_file.value = spec.to_json().encode()
    assert wb.spec.to_dict() == spec.to_dict()
    assert not builder.load_error.visible


# ------------------------------------------------------------------------------ rendering
def test_renders(wb):
    builder = NetworkBuilder(workbench=wb)
    root = pn.panel(builder).get_root()
    assert root is not None
    assert builder.summary.object["population"].tolist() == ["hidden", "output", "total"]
    builder.flow.patch_node_data("hidden", {"size": 10})
    assert builder.summary.object["neurons"].tolist() == [10, 3, 13]
