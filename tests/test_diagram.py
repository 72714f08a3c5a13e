"""The builder's model (workbench.widgets.diagram): a spec as ReactFlow's node and edge dicts and
back, problems by node and edge, the layout, new nodes' places and the view, all as pure
functions; no Panel anywhere."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from workbench.spec import INPUT, NetworkSpec, Population, Problem, Projection, feedforward
from workbench.widgets import diagram as d
from workbench.widgets.templates import TEMPLATES


def round_trip(spec: NetworkSpec, positions=None):
    nodes, edges = d.nodes_and_edges(spec, positions)
    return d.spec_from_diagram(nodes, edges, d.meta_of(spec))


def by_id(nodes):
    return {n["id"]: n for n in nodes}


def drawn(spec: NetworkSpec, positions=None, at=None):
    """``spec``'s nodes and edges with their looks, as the builder shows them."""
    nodes, edges = d.nodes_and_edges(spec, positions)
    return d.decorate(nodes, edges, at or {})


def unconnected(spec: NetworkSpec, name: str = "extra") -> NetworkSpec:
    """``spec`` with a population ``name`` no projection reaches, before its output."""
    spec = copy.deepcopy(spec)
    spec.populations.insert(len(spec.populations) - 1, Population(name, 7))
    return spec


def test_the_model_imports_no_ui_library():
    code = (
        "import sys, workbench.widgets.diagram; "
        "print(sorted(m for m in ('panel', 'bokeh', 'param', 'panel_reactflow', 'holoviews') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_template_round_trips_through_its_diagram(name):
    spec = TEMPLATES[name]()
    nodes, edges = d.nodes_and_edges(spec)
    assert [n["id"] for n in nodes] == [INPUT, *spec.population_names]
    assert [e["id"] for e in edges] == [p.name for p in spec.projections]
    draft, problems = d.spec_from_diagram(nodes, edges, d.meta_of(spec))
    assert problems == []
    assert draft.spec.to_dict() == spec.to_dict()
    assert draft.node_ids == spec.population_names
    assert draft.edge_ids == [p.name for p in spec.projections]
    assert not d.needs_redraw(nodes, edges, draft.spec)
    # The looks (labels, styles) change nothing of the spec.
    looked = d.decorate(nodes, edges, {})
    assert d.spec_from_diagram(*looked, d.meta_of(spec))[0].spec.to_dict() == spec.to_dict()


def test_a_spec_with_everything_round_trips():
    spec = NetworkSpec(
        4,
        [Population("a", 6, "if"), Population("b", 5, "alif"), Population("c", 2, "li")],
        [
            Projection(INPUT, "a", delay=[[1, 0, 2, 0]] * 6),
            Projection("a", "a", recurrent=True, delay=2),
            Projection("a", "b", weight_mean=0.1, weight_std=0.2),
            Projection("b", "a", recurrent=True),
            Projection("b", "c", weights=[[0.5] * 5] * 2),
        ],
        dt=0.5,
        n_steps=40,
        name="everything",
        output="c",
    ).validate()
    draft, problems = round_trip(spec)
    assert problems == [] and draft.spec.to_dict() == spec.to_dict()


def test_positions_are_kept_and_missing_ones_laid_out():
    spec = feedforward([3, 10, 8, 2])
    nodes, _ = d.nodes_and_edges(spec, {"hidden2": {"x": 900.0, "y": -40.0}})
    at = {n["id"]: n["position"] for n in nodes}
    assert at["hidden2"] == {"x": 900.0, "y": -40.0}
    assert at["hidden1"] == d.layout(spec)["hidden1"]
    # Positions are diagram data only: the spec does not see them.
    assert round_trip(spec, {"hidden2": {"x": 900.0, "y": -40.0}})[0].spec.to_dict() == (
        spec.to_dict()
    )


def test_a_renamed_node_keeps_its_id_until_redrawn():
    spec = TEMPLATES["Yin-Yang 5-120-3"]()
    nodes, edges = d.nodes_and_edges(spec)
    by_id(nodes)["hidden"]["data"]["name"] = "middle"
    draft, problems = d.spec_from_diagram(nodes, edges, d.meta_of(spec))
    assert problems == []
    assert draft.spec.population_names == ["middle", "output"]
    assert [(p.source, p.target) for p in draft.spec.projections] == [
        ("input", "middle"),
        ("middle", "output"),
    ]
    assert draft.node_ids == ["hidden", "output"]
    assert draft.node_of() == {INPUT: INPUT, "middle": "hidden", "output": "output"}
    assert d.needs_redraw(nodes, edges, draft.spec)
    assert [n["id"] for n in d.nodes_and_edges(draft.spec)[0]] == [INPUT, "middle", "output"]


def test_an_edge_drawn_in_the_browser_takes_the_defaults_and_closes_cycles_recurrent():
    spec = feedforward([3, 4, 4, 2])
    nodes, edges = d.nodes_and_edges(spec)
    edges += [
        {"id": "hidden2->hidden1", "source": "hidden2", "target": "hidden1"},
        {"id": "hidden1->hidden1", "source": "hidden1", "target": "hidden1"},
    ]
    draft, problems = d.spec_from_diagram(nodes, edges, d.meta_of(spec))
    assert problems == []
    back, loop = draft.spec.projections[-2:]
    assert back.recurrent is True and loop.recurrent is True
    assert back.delay == 0 and back.weight_std is None
    assert d.needs_redraw(nodes, edges, draft.spec)  # the edges get their data written


def test_the_input_is_put_back_with_its_data():
    spec = feedforward([6, 4, 2])
    nodes, edges = d.nodes_and_edges(spec)
    nodes = d.with_input([n for n in nodes if n["id"] != INPUT], {"size": 6})
    assert nodes[0]["id"] == INPUT and nodes[0]["data"] == {"size": 6}
    assert round_trip(spec)[0].input == {"size": 6}


# ------------------------------------------------------------------------------ problems
def test_problems_are_attributed_to_their_node_or_edge():
    spec = TEMPLATES["Recurrent 5-64-3"]()
    nodes, edges = d.nodes_and_edges(spec)
    by_id(nodes)["output"]["data"]["tau_mem"] = -1.0
    by_id(nodes)[INPUT]["data"]["size"] = 0
    loop = next(e for e in edges if e["id"] == "hidden->hidden")
    loop["data"]["delay"] = 500
    meta = {**d.meta_of(spec), "dt": 0.0}
    draft, problems = d.spec_from_diagram(nodes, edges, meta)
    at = d.problems_by_element(problems, draft)
    assert [p.path for p in at["output"]] == ["populations[1].params.tau_mem"]
    assert [p.path for p in at[INPUT]] == ["input_size"]
    assert [p.path for p in at["hidden->hidden"]] == ["projections[1].delay"]
    whole = [p.path for p in problems if not any(p in ps for ps in at.values())]
    assert "dt" in whole


def test_an_unconnected_population_is_a_problem_at_its_node():
    spec = unconnected(TEMPLATES["Yin-Yang 5-120-3"]())
    nodes, edges = d.nodes_and_edges(spec)
    draft, problems = d.spec_from_diagram(nodes, edges, d.meta_of(spec))
    assert [p.path for p in problems] == ["populations[1]"]
    assert problems[0].message.startswith("'extra' receives no projection")
    assert d.problems_by_element(problems, draft) == {"extra": problems}
    node = by_id(d.decorate(nodes, edges, {"extra": problems})[0])["extra"]
    assert "wb-node-problem" in node["className"]
    assert "⚠ 'extra' receives no projection" in node["label"]  # no field: the whole node
    # Fed only by its own loop: still unreached, still at its node.
    edges.append({"id": "extra->extra", "source": "extra", "target": "extra"})
    draft, problems = d.spec_from_diagram(nodes, edges, d.meta_of(spec))
    assert "receives only its own self-projection" in problems[0].message
    assert list(d.problems_by_element(problems, draft)) == ["extra"]
    # Connected from hidden: valid.
    edges.append({"id": "hidden->extra", "source": "hidden", "target": "extra"})
    assert d.spec_from_diagram(nodes, edges, d.meta_of(spec))[1] == []


def test_a_problem_follows_the_node_not_the_name():
    """After a rename that is not drawn yet, the node id differs from the population name."""
    spec = unconnected(TEMPLATES["Yin-Yang 5-120-3"]())
    nodes, edges = d.nodes_and_edges(spec)
    by_id(nodes)["extra"]["data"]["name"] = "renamed"
    draft, problems = d.spec_from_diagram(nodes, edges, d.meta_of(spec))
    assert "'renamed' receives no projection" in problems[0].message
    assert list(d.problems_by_element(problems, draft)) == ["extra"]


def test_checks_add_problems_and_a_type_error_in_one_is_skipped():
    spec = feedforward([3, 4, 2])
    nodes, edges = d.nodes_and_edges(spec)

    def too_big(s):
        return (
            [Problem("populations", "too many neurons")]
            if sum(p.size for p in s.populations) > 5
            else []
        )

    def broken(s):
        raise TypeError("sizes are not numbers")

    _, problems = d.spec_from_diagram(nodes, edges, d.meta_of(spec), checks=[too_big, broken])
    assert [p.path for p in problems] == ["populations"]


def test_edges_show_recurrence_delays_and_problems():
    edge = {"id": "a->b", "source": "a", "target": "b", "data": {"recurrent": True, "delay": 3}}
    look = d.edge_look(edge, [Problem("projections[0].delay", "too long")])
    assert look["label"] == "recurrent · delay 3 · ⚠ delay: too long"
    assert look["style"]["strokeDasharray"] == "6 4" and look["style"]["stroke"] == "#d32f2f"


# ------------------------------------------------------------------------------ names
def test_free_names_and_ids():
    nodes, _ = d.nodes_and_edges(feedforward([3, 4, 2]))
    assert d.free_name("lif", nodes) == "lif1"
    nodes.append(d.make_node("x", d.POPULATION_TYPE, {"name": "lif1"}, None))
    assert d.free_name("lif", nodes) == "lif2"
    assert d.unused("a->b", {"a->b", "a->b:1"}, ":") == "a->b:2"
    assert d.unused("hidden", set(), "_") == "hidden"


def test_a_new_population_goes_before_the_output():
    nodes, _ = d.nodes_and_edges(feedforward([3, 4, 4, 2]))
    assert d.insert_index(nodes, None) == 3  # before 'output', the last
    assert d.insert_index(nodes, "hidden1") == 1


# ------------------------------------------------------------------------------ layout
def test_layout_in_columns_by_depth_centred_on_the_input():
    spec = NetworkSpec(
        2,
        [Population("a", 2), Population("b", 2), Population("c", 2), Population("out", 2, "li")],
        [
            Projection(INPUT, "a"),
            Projection(INPUT, "b"),
            Projection("a", "c"),
            Projection("b", "c"),
            Projection("c", "out"),
            Projection("c", "a", recurrent=True),  # does not push 'a' right
        ],
    )
    assert d.depths(spec) == {INPUT: 0, "a": 1, "b": 1, "c": 2, "out": 3}
    at = d.layout(spec)
    assert at[INPUT] == {"x": 0.0, "y": 0.0}
    assert at["a"]["x"] == at["b"]["x"] == d.COLUMN
    assert at["a"]["y"] == -at["b"]["y"] == -d.ROW / 2
    assert at["out"] == {"x": 3.0 * d.COLUMN, "y": 0.0}


def test_layout_keeps_the_kept_nodes_and_moves_the_others_clear_of_them():
    spec = feedforward([3, 4, 4, 2])
    keep = {"hidden2": {"x": d.COLUMN, "y": 0.0}}  # where hidden1 would go
    at = d.layout(spec, keep=keep)
    assert at["hidden2"] == keep["hidden2"]
    hidden1 = d.Box.at(at["hidden1"], (d.NODE_WIDTH, 64))
    assert not hidden1.overlaps(d.Box.at(keep["hidden2"], (d.NODE_WIDTH, 64)))
    assert at["hidden1"]["x"] == d.COLUMN  # still in its column


def test_connecting_a_population_lays_the_diagram_out_again():
    before = unconnected(TEMPLATES["Yin-Yang 5-120-3"]())
    positions = {**d.layout(before), "extra": {"x": 250.0, "y": 300.0}}
    # Only an unconnected population added: no new layout, and a relayout leaves it.
    assert not d.needs_layout(TEMPLATES["Yin-Yang 5-120-3"](), before)
    assert d.relayout(before, positions)["extra"] == {"x": 250.0, "y": 300.0}
    after = copy.deepcopy(before)
    after.projections.append(Projection("hidden", "extra"))
    assert d.needs_layout(before, after)
    at = d.relayout(after, positions)
    assert at["extra"]["x"] == at["output"]["x"] == 2 * d.COLUMN  # depth 2, the output's
    assert at["extra"]["y"] < at["output"]["y"]  # spec order within the column
    # Feeding the output from it pushes the output one column right.
    last = copy.deepcopy(after)
    last.projections.append(Projection("extra", "output"))
    assert d.needs_layout(after, last)
    at = d.relayout(last, at)
    assert [at[n]["x"] for n in (INPUT, "hidden", "extra", "output")] == [
        0.0,
        d.COLUMN,
        2 * d.COLUMN,
        3 * d.COLUMN,
    ]
    # Edits that move nothing to another column do not lay out again.
    resized = copy.deepcopy(last)
    resized.populations[0].size = 7
    assert not d.needs_layout(last, resized)


def test_nodes_the_user_placed_keep_their_places_in_a_new_layout():
    before = unconnected(TEMPLATES["Yin-Yang 5-120-3"]())
    after = copy.deepcopy(before)
    after.projections.append(Projection("hidden", "extra"))
    positions = {**d.layout(before), "output": {"x": 700.0, "y": 250.0}}
    at = d.relayout(after, positions, pinned={"output"})
    assert at["output"] == {"x": 700.0, "y": 250.0}
    assert at["extra"]["x"] == 2 * d.COLUMN
    # The input stays where it is and the columns follow it.
    positions[INPUT] = {"x": -100.0, "y": 50.0}
    at = d.relayout(after, positions)
    assert at[INPUT] == {"x": -100.0, "y": 50.0}
    assert at["hidden"] == {"x": -100.0 + d.COLUMN, "y": 50.0}


# ------------------------------------------------------------------------------ new nodes, view
def test_a_new_node_is_placed_in_view_and_overlaps_no_node():
    nodes, _ = drawn(feedforward([5, 120, 3]))
    visible = d.Box(-50.0, -200.0, 700.0, 300.0)
    size = (d.PROBLEM_WIDTH, 130.0)
    at = d.place_new_node(nodes, visible, size)
    box = d.Box.at(at, size)
    assert box.inside(visible)
    assert not any(box.overlaps(d.node_box(n)) for n in nodes)
    # Near the column before the output (the hidden one), not far away.
    assert abs(at["x"] - d.COLUMN) <= d.COLUMN / 2


def test_a_new_node_goes_where_there_is_room_in_view():
    nodes, _ = drawn(feedforward([5, 120, 3]))
    # A view as wide as the diagram and only a little taller than its row: room on the left.
    visible = d.Box(-300.0, -40.0, 620.0, 120.0)
    size = (120.0, 64.0)
    at = d.place_new_node(nodes, visible, size)
    box = d.Box.at(at, size)
    assert box.inside(visible) and not any(box.overlaps(d.node_box(n)) for n in nodes)


def test_without_room_in_view_a_new_node_still_overlaps_no_node():
    nodes, _ = drawn(feedforward([5, 120, 3]))
    visible = d.Box(-20.0, -20.0, 620.0, 90.0)  # just the row of nodes
    at = d.place_new_node(nodes, visible)
    box = d.Box.at(at, (d.PROBLEM_WIDTH, 124.0))
    assert not any(box.overlaps(d.node_box(n)) for n in nodes)
    assert abs(at["x"] - d.COLUMN) <= d.COLUMN / 2
    # No view known (a notebook, a test): below the hidden column.
    at = d.place_new_node(nodes)
    assert at["x"] == d.COLUMN and at["y"] > d.node_box(by_id(nodes)["hidden"]).y1


def test_visible_area_and_fit_follow_react_flow():
    # The Yin-Yang diagram in a 970 x 480 pane: React Flow's fitView gave zoom 1.4459, x 44.
    nodes, _ = drawn(TEMPLATES["Yin-Yang 5-120-3"]())
    area = d.Box.around(d.node_box(n) for n in nodes)
    pane = {"width": 970, "height": 480}
    view = d.fit_viewport(area, pane)
    assert view["zoom"] == pytest.approx(1.4459, abs=1e-3)
    assert view["x"] == pytest.approx(44.0, abs=0.5)
    visible = d.visible_area(view, pane)
    assert area.inside(visible)
    assert d.visible_area(None, pane) is None
    # A wide network is zoomed out to fit, no further than min_zoom.
    wide = d.Box(0.0, 0.0, 3000.0, 100.0)
    assert d.fit_viewport(wide, pane)["zoom"] == pytest.approx(970 / (3000 * 1.1))
    assert d.fit_viewport(wide, pane, min_zoom=0.5)["zoom"] == 0.5
