"""The Build tab in a real browser (Playwright driving Debian's Chromium): the JSON card opens
after another tab was visited, a new population lands inside the visible diagram and moves to
its column when a projection connects it, and an unconnected population is a problem at its
node and in the list.  The last test writes docs/img/build.png (the README shows it)."""

import time
from pathlib import Path

import pytest

from workbench.spec import feedforward
from workbench.widgets.browser import chromium_path, open_session, running_app, tab, wait_for

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
pytest.importorskip("playwright.sync_api")

IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


@pytest.fixture(scope="module")
def app_url():
    with running_app() as url:
        yield url


@pytest.fixture
def page(app_url, browser):
    """A fresh session (its own Workbench) on the Build tab; no request leaves localhost and
    the page raises no error."""
    context, page, blocked, errors = open_session(browser, app_url)
    time.sleep(0.5)
    yield page
    assert blocked == [] and errors == [], (blocked + errors)[:5]
    context.close()


def texts(page, selector) -> str:
    """The text of the panes matching ``selector`` (Panel renders panes in shadow roots, which
    CSS locators pierce but the host's inner_text does not include)."""
    return "\n".join(page.locator(f"{selector} p, {selector} li").all_inner_texts())


def pane(page) -> dict:
    """The diagram's visible area on the page."""
    return page.locator(".wb-builder-flow .react-flow").first.bounding_box()


def boxes(page) -> dict[str, dict]:
    """Every node's box on the page, by node id."""
    return {
        n.get_attribute("data-id"): n.bounding_box()
        for n in page.locator(".react-flow__node").all()
    }


def inside(box, area) -> bool:
    return (
        box["x"] >= area["x"] - 1
        and box["y"] >= area["y"] - 1
        and box["x"] + box["width"] <= area["x"] + area["width"] + 1
        and box["y"] + box["height"] <= area["y"] + area["height"] + 1
    )


def overlapping(found: dict[str, dict]) -> list[tuple[str, str]]:
    ids = sorted(found)
    return [
        (a, b)
        for i, a in enumerate(ids)
        for b in ids[i + 1 :]
        if found[a]["x"] < found[b]["x"] + found[b]["width"]
        and found[b]["x"] < found[a]["x"] + found[a]["width"]
        and found[a]["y"] < found[b]["y"] + found[b]["height"]
        and found[b]["y"] < found[a]["y"] + found[a]["height"]
    ]


def all_in_view(page) -> bool:
    area = pane(page)
    return all(inside(box, area) for box in boxes(page).values())


def add_population(page, name):
    page.locator(".wb-add-name input").first.fill(name)
    page.locator(".wb-add-population button").first.click()
    page.locator(f".react-flow__node[data-id='{name}']").wait_for(timeout=20_000)
    time.sleep(1.0)  # a changed viewport moves the nodes over ~0.3 s


def add_projection(page, source, target):
    page.locator(".wb-proj-source select").first.select_option(label=source)
    page.locator(".wb-proj-target select").first.select_option(label=target)
    page.locator(".wb-add-projection button").first.click()
    edge = page.locator(f".react-flow__edge[data-id='{source}->{target}']")
    edge.wait_for(state="attached", timeout=20_000)  # a straight edge has no height: "hidden"
    time.sleep(1.0)


def test_json_card_opens_after_visiting_another_tab(page):
    """With dynamic tabs, a collapsed Card came back from another tab unable to open: its
    arrow flipped and it stayed 37 px tall until the page was reloaded."""
    tab(page, "Train")
    tab(page, "Build")
    page.get_by_text("Load / save JSON").first.click()
    text = page.locator(".wb-spec-json textarea").first
    wait_for(text.is_visible, 30, "the JSON text area to show")
    assert text.bounding_box()["height"] > 100
    # Loaded from the card: a deeper network, laid out and all of it in view.
    text.fill(feedforward([4, 8, 6, 5, 2], name="deep").to_json())
    page.locator(".wb-load-spec button").first.click()
    page.locator(".react-flow__node[data-id='hidden3']").wait_for(timeout=20_000)
    wait_for(lambda: all_in_view(page), 30, "the loaded network to be in view")
    assert overlapping(boxes(page)) == []
    # Still open after another visit; closes and opens again.
    tab(page, "Data")
    tab(page, "Build")
    wait_for(text.is_visible, 30, "the JSON text area to stay open")
    page.get_by_text("Load / save JSON").first.click()
    wait_for(lambda: not text.is_visible(), 30, "the JSON text area to close")
    page.get_by_text("Load / save JSON").first.click()
    wait_for(text.is_visible, 30, "the JSON text area to open again")


def test_new_population_lands_in_view_and_takes_its_column_when_connected(page):
    """A population added with the row was put below the hidden column, half outside the
    diagram, and stayed there when connected."""
    add_population(page, "extra")
    wait_for(lambda: all_in_view(page), 30, "the new population to be in view")
    assert overlapping(boxes(page)) == []
    # Connected from hidden, it is laid out in the column after hidden: the output's.
    add_projection(page, "hidden", "extra")
    wait_for(
        lambda: abs(boxes(page)["extra"]["x"] - boxes(page)["output"]["x"]) < 2,
        30,
        "extra to sit in the output's column",
    )
    assert overlapping(boxes(page)) == []
    assert all_in_view(page)
    # Feeding the output pushes it one column right; the view still shows everything.
    add_projection(page, "extra", "output")

    def in_columns():
        found = boxes(page)
        return found["hidden"]["x"] < found["extra"]["x"] < found["output"]["x"]

    wait_for(in_columns, 30, "hidden, extra and output in three columns")
    wait_for(lambda: all_in_view(page), 30, "the whole network to be in view")
    assert overlapping(boxes(page)) == []
    assert "The network is valid" in texts(page, ".wb-builder-problems")
    page.locator(".react-flow__node[data-id='extra']").first.click()
    page.locator(".wb-form-size input").first.wait_for(timeout=30_000)
    time.sleep(0.5)
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / "build.png"))


def test_unconnected_population_is_a_problem_at_its_node_and_in_the_list(page):
    """A population no projection reached was reported as a valid network."""
    add_population(page, "lonely")
    wait_for(
        lambda: "receives no projection" in texts(page, ".wb-builder-problems"),
        30,
        "the problem list to name the unconnected population",
    )
    listed = texts(page, ".wb-builder-problems")
    assert "populations[1]" in listed and "'lonely'" in listed, listed
    node = page.locator(".react-flow__node[data-id='lonely']").first
    assert "wb-node-problem" in node.get_attribute("class")
    assert "receives no projection" in node.inner_text()
    node.click()  # selected, its form lists the problem too
    clicked = [time.monotonic()]

    def form_lists_it() -> bool:
        if "receives no projection" in texts(page, ".wb-form-problems"):
            return True
        if time.monotonic() - clicked[0] > 3.0:  # a click while the diagram redraws is lost
            node.click()
            clicked[0] = time.monotonic()
        return False

    wait_for(form_lists_it, 30, "the form to list the selected population's problem")
    add_projection(page, "input", "lonely")
    wait_for(
        lambda: "The network is valid" in texts(page, ".wb-builder-problems"),
        30,
        "the network to be valid once connected",
    )
    assert "wb-node-problem" not in node.get_attribute("class")
