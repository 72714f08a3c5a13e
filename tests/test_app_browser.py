"""The served app in a real browser (Playwright driving Debian's Chromium): build a network, pick
a backend, train, watch the plots change, stop; a second session at the same time sees none of
it; and no request leaves localhost.  Screenshots go to docs/img/ (the README shows them)."""

import time
from pathlib import Path

import pytest

from workbench.widgets.browser import (
    chromium_path,
    log_tail,
    open_session,
    running_app,
    status,
    tab,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
pytest.importorskip("playwright.sync_api")

IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


@pytest.fixture(scope="module")
def app_url():
    with running_app("--max-epochs", "100") as url:
        yield url


def shot(page, name, locator=None):
    IMG.mkdir(parents=True, exist_ok=True)
    (locator or page).screenshot(path=str(IMG / name))


def test_build_choose_backend_train_stop_with_isolated_sessions(app_url, browser):
    ctx1, page, blocked1, errors1 = open_session(browser, app_url)

    # Build: add a population and a projection through the editor's controls
    tab(page, "Build")
    page.locator(".wb-add-name input").first.fill("extra")
    page.locator(".wb-add-population button").first.click()
    page.locator(".react-flow__node[data-id='extra']").wait_for(timeout=20_000)
    page.locator(".wb-proj-source select").first.select_option(label="hidden")
    page.locator(".wb-proj-target select").first.select_option(label="extra")
    page.locator(".wb-add-projection button").first.click()
    page.locator(".react-flow__edge[data-id='hidden->extra']").wait_for(timeout=20_000)
    shot(page, "build.png")

    # Hardware: Xylo's resource report
    tab(page, "Hardware")
    page.locator(".wb-backend select").first.select_option("xylo")
    page.locator(".wb-resources").first.wait_for(timeout=30_000)
    shot(page, "hardware.png")
    page.locator(".wb-backend select").first.select_option("float")

    # Train: Start, the loss curve and the raster change while it runs, Stop
    tab(page, "Train")
    page.locator(".wb-start button").first.click()
    wait_for(lambda: "batch" in status(page), 120, "the first batch")
    loss = page.locator(".wb-loss-plot").first
    first = loss.screenshot()
    raster = page.locator(".wb-raster-hidden").first
    raster_first = raster.screenshot()
    time.sleep(3.0)
    assert loss.screenshot() != first, "the loss curve did not change"
    assert raster.screenshot() != raster_first, "the raster did not change"
    shot(page, "train.png")

    # A second session at the same time: its own network, no run
    ctx2, page2, blocked2, errors2 = open_session(browser, app_url)
    tab(page2, "Build")
    assert page2.get_by_text("extra", exact=True).count() == 0
    tab(page2, "Train")
    assert "running" not in status(page2)

    page.locator(".wb-stop button").first.click()
    wait_for(
        lambda: "done" in status(page),
        120,
        "the run to stop",
        seen=lambda: f"status {status(page)!r}, the server's log:\n{log_tail(app_url)}",
    )
    page.locator(".wb-test-accuracy").get_by_text("Test accuracy").wait_for(timeout=60_000)
    shot(page, "train-done.png")
    assert "running" not in status(page2)

    assert blocked1 == [] and blocked2 == [], (blocked1 + blocked2)[:5]
    assert errors1 == [] and errors2 == [], (errors1 + errors2)[:3]
    ctx2.close()
    ctx1.close()


def test_compare_runs_a_grid_and_shows_its_results(app_url, browser):
    context, page, blocked, errors = open_session(browser, app_url)
    tab(page, "Compare")
    algorithms = page.locator(".wb-compare-algorithms input").first
    algorithms.click()
    page.locator(
        ".wb-compare-algorithms .choices__item--choice", has_text="surrogate"
    ).first.click()
    epochs = page.locator(".wb-compare-epochs input").first
    epochs.fill("1")
    epochs.press("Tab")
    time.sleep(0.5)
    page.locator(".wb-compare-run button").first.click()

    def progress() -> str:
        line = page.locator(".wb-compare-status p")
        return line.first.inner_text() if line.count() else ""

    wait_for(lambda: "1 of 1 runs done" in progress(), 300, "the comparison to finish")
    assert "failed" not in progress()
    row = page.locator(".wb-compare-table .tabulator-row").first
    row.wait_for(timeout=30_000)
    assert row.inner_text().split()[:2] == ["surrogate", "float"]
    shot(page, "compare.png")
    assert blocked == [] and errors == [], (blocked + errors)[:5]
    context.close()


@pytest.fixture(scope="module")
def class_url():
    """A server that runs two trainings at once; the rest wait in its queue."""
    with running_app("--max-workers", "2") as url:
        yield url


def test_six_students_at_once_each_page_answers_and_sees_only_its_own_run(class_url, browser):
    sessions = []
    for k in range(6):
        context, page, blocked, errors = open_session(browser, class_url)
        name = f"mine{k}"  # each student's own population, hidden -> mine<k>
        page.locator(".wb-add-name input").first.fill(name)
        page.locator(".wb-add-population button").first.click()
        page.locator(f".react-flow__node[data-id='{name}']").wait_for(timeout=60_000)
        page.locator(".wb-proj-source select").first.select_option(label="hidden")
        page.locator(".wb-proj-target select").first.select_option(label=name)
        page.locator(".wb-add-projection button").first.click()
        page.locator(f".react-flow__edge[data-id='hidden->{name}']").wait_for(timeout=60_000)
        tab(page, "Train")
        epochs = page.get_by_label("epochs", exact=True).first
        epochs.fill(str(1 + k % 2))  # 1 or 2 epochs: each status names its own run's
        epochs.press("Tab")
        sessions.append((k, name, context, page, blocked, errors))
    time.sleep(0.5)
    for *_, page, _, _ in sessions:  # six Starts within a second or two
        page.locator(".wb-start button").first.click()

    # Two run, four wait, each told its place; every page still answers a tab switch.
    wait_for(lambda: sum("queued" in status(s[3]) for s in sessions) >= 3, 120, "the queue")
    queued = [status(page) for *_, page, _, _ in sessions if "queued" in status(page)]
    assert all(("1st" in s or "2nd" in s or "3rd" in s or "4th" in s) for s in queued), queued
    for k, name, _, page, _, _ in sessions:
        tab(page, "Build")
        page.locator(f".react-flow__node[data-id='{name}']").wait_for(timeout=30_000)
        others = [f"mine{j}" for j in range(6) if j != k]
        assert all(page.locator(f".react-flow__node[data-id='{o}']").count() == 0 for o in others)
        tab(page, "Train")
        page.locator(f".wb-raster-{name}").first.wait_for(timeout=30_000)

    # Every run ends (the queue starts each in turn), each page showing its own.
    for k, _name, _, page, _, _ in sessions:
        wait_for(lambda p=page: "done" in status(p), 600, f"session {k}'s run")
        assert f"epoch {1 + k % 2}/{1 + k % 2}" in status(page), status(page)
        page.locator(".wb-test-accuracy").get_by_text("Test accuracy").wait_for(timeout=60_000)
        others = [f".wb-raster-mine{j}" for j in range(6) if j != k]
        assert all(page.locator(o).count() == 0 for o in others)
    for _, _, context, _, blocked, errors in sessions:
        assert blocked == [] and errors == [], (blocked + errors)[:5]
        context.close()
