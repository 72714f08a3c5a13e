"""Fixtures the browser tests share."""

import pytest


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module."""
    from playwright.sync_api import sync_playwright

    from workbench.widgets.browser import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
