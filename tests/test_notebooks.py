"""Every notebook runs top to bottom (small sizes: WORKBENCH_QUICK=1) and is committed without
outputs; its executed outputs render in Chromium with no request leaving the machine."""

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from workbench.widgets.browser import chromium_path, launch, offline

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {index} has a count"


def blocked_requests(nb, out: Path) -> tuple[list[str], int]:
    """Render ``nb`` as HTML in Chromium with every non-local request refused; the refused
    URLs and how many Bokeh figures were drawn."""
    html, _ = HTMLExporter().from_notebook_node(nb)
    out.write_text(html)
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context()
        blocked = offline(context)
        page = context.new_page()
        page.goto(out.as_uri())
        time.sleep(8)  # the outputs' scripts render the components
        figures = page.locator(".bk-Figure").count()
        browser.close()
    return sorted(set(blocked)), figures


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_and_works_offline(path, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    if chromium_path() is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    # The HTML page's template loads require.js, MathJax and (for a notebook with widget
    # state) the widget manager from CDNs itself: what the same notebook without cells requests
    # is the baseline; the outputs must add nothing to it.
    empty = nbformat.v4.new_notebook(metadata=nb.metadata)
    baseline, _ = blocked_requests(empty, tmp_path / "empty.html")
    blocked, figures = blocked_requests(nb, tmp_path / f"{path.stem}.html")
    assert set(blocked) <= set(baseline), sorted(set(blocked) - set(baseline))
    if any("import panel" in c.source for c in nb.cells if c.cell_type == "code"):
        assert figures > 0, "no Bokeh figure was drawn offline"
