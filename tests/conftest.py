"""Fixtures the browser tests share, and the Hypothesis profiles of tests/test_fuzz.py."""

import os

import pytest
from hypothesis import settings

# `ci` (make test): the same cases every run; `fuzz` (make fuzz): random and twenty times as many.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module."""
    from playwright.sync_api import sync_playwright

    from workbench.widgets.browser import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
