"""The Build, Data and Hardware tabs in a real browser (Playwright driving Debian's Chromium):
a network over BrainScaleS-2's limits is refused with violations that name the population the
user made too big and the field to change; the dataset and backend Selects drive the session."""

import time

import pytest

from workbench.widgets.browser import chromium_path, launch, offline, running_app

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
playwright = pytest.importorskip("playwright.sync_api")

VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def page():
    with running_app() as url, playwright.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport=VIEWPORT)
        blocked = offline(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.locator(".react-flow__node").first.wait_for(timeout=120_000)  # the builder is drawn
        yield page
        assert blocked == [] and errors == [], (blocked + errors)[:5]
        context.close()
        browser.close()


def tab(page, name):
    page.locator(".bk-tab", has_text=name).first.click()
    time.sleep(0.5)


def texts(page, selector) -> list[str]:
    """The text of every pane matching ``selector`` (Panel renders panes in shadow roots, which
    CSS locators pierce but the host's inner_text does not include)."""
    return [t.strip() for t in page.locator(f"{selector} p").all_inner_texts()]


def hidden_size(page) -> str:
    """The size of 'hidden' in the Build tab's summary table (population, model, size, ...)."""
    cells = page.locator(".wb-builder-summary td").all_inner_texts()
    return cells[cells.index("hidden") + 2] if "hidden" in cells else ""


def wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_brainscales2_names_the_hidden_population_the_user_made_too_big(page):
    # Build: select the hidden population and give it 600 neurons through its form
    tab(page, "Build")
    page.locator(".react-flow__node[data-id='hidden']").first.click()
    size = page.locator(".wb-form-size input").first
    size.wait_for(timeout=20_000)
    size.fill("600")
    size.press("Enter")
    wait_for(lambda: hidden_size(page) == "600", 30, "the summary to show 600 hidden neurons")

    # Hardware: BrainScaleS-2 refuses it
    tab(page, "Hardware")
    page.locator(".wb-backend select").first.select_option("brainscales2")
    page.locator(".wb-violation").first.wait_for(timeout=30_000)
    wait_for(lambda: texts(page, ".wb-violation"), 30, "the violations' text")
    violations = texts(page, ".wb-violation")
    # Each violation names the field to change, hidden's size (populations[0] of the Yin-Yang
    # template: hidden, output), and the hidden population; none blames the output's size.
    assert violations, "no violation shown"
    for text in violations:
        assert text.startswith("populations[0].size:"), violations
        assert "'hidden'" in text, violations
        assert "populations[1].size" not in text, violations
    neurons, inputs = violations
    assert "'hidden' neurons is 600" in neurons and "at most 509" in neurons, neurons
    assert "inputs per 'output' neuron" in inputs and "at most 128" in inputs, inputs


def test_the_dataset_and_backend_selects_drive_the_session(page):
    """The Selects are the workbench's params (``from_param``): picking a dataset gives the
    Data tab its reference encoder, picking a simulator empties the chip report."""
    tab(page, "Data")
    dataset = page.locator(".wb-dataset select").first
    encoder = page.locator(".wb-encoder select").first
    dataset.select_option("digits")
    wait_for(lambda: encoder.input_value() == "rate", 30, "the digits' reference encoder")
    wait_for(lambda: any("8x8 digits" in t for t in texts(page, ".wb-dataset-info")), 30)
    dataset.select_option("yinyang")
    wait_for(lambda: encoder.input_value() == "latency", 30, "the Yin-Yang reference encoder")

    tab(page, "Hardware")
    backend = page.locator(".wb-backend select").first
    backend.select_option("float")
    wait_for(
        lambda: any("no capacity limits" in t for t in texts(page, ".wb-backend-info")),
        30,
        "the simulator note",
    )
    assert backend.input_value() == "float"
