"""The app's forms and uploads under bad input (issue 18): a 12 MB JSON, a network of 10^9
neurons, JSON nested 100,000 deep, bytes that are not text, numbers beyond float range in the
training settings and the chip profile.  Each is refused with the message at its field (the
component's alert), the session keeps its network, nothing raises into the server, and another
session is untouched.  (The browser side of an upload: tests/test_app_browser.py.)"""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest

pytest.importorskip("panel")

from workbench.spec import feedforward  # noqa: E402
from workbench.widgets.app import App  # noqa: E402

HUGE = json.dumps(feedforward([5, 8, 3], name="huge").to_dict()).replace(
    '"size": 8', '"size": 1000000000'
)
BIG = json.dumps({**feedforward([5, 8, 3]).to_dict(), "padding": "x" * 12_000_000})
DEEP = json.dumps(feedforward([5, 8, 3]).to_dict()).replace(
    '"network"', "[" * 100_000 + "]" * 100_000
)
NOT_TEXT = b"\xff\xfe\x00{garbage"
DIGITS = json.dumps(feedforward([5, 8, 3]).to_dict()).replace(
    '"n_steps": 100', '"n_steps": ' + "9" * 5000
)


@pytest.fixture
def apps():
    return App(), App()


def refused_quickly(action):
    """Run ``action`` (which must not raise); return its result, under 10 s (typically 0.1 s)
    and 200 MB."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = action()
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert seconds < 10, f"took {seconds:.1f} s"  # generous: a shared CI core; typical 0.1 s
    assert peak < 200 * 2**20, f"allocated {peak / 2**20:.0f} MB"
    return result


@pytest.mark.parametrize(
    "text, field",
    [
        (BIG, "padding"),
        (BIG + " " * 5_000_000, "spec"),
        (DEEP, "spec"),
        (NOT_TEXT, "spec"),
        (DIGITS, "spec"),
        ("[1, 2", "spec"),
        ("", "spec"),
    ],
    ids=[
        "12 MB",
        "17 MB",
        "nested 100000 deep",
        "not UTF-8",
        "5000-digit number",
        "truncated",
        "empty",
    ],
)
def test_a_bad_spec_file_is_refused_at_the_load_box_and_the_network_kept(apps, text, field):
    app, other = apps
    before = app.workbench.spec.to_json()
    builder = app.builder
    loaded = refused_quickly(
        lambda: builder._on_file(
            type("E", (), {"new": text.encode() if isinstance(text, str) else text})
        )
    )
    assert loaded is None
    assert builder.load_error.visible, "no message at the load box"
    assert f"`{field}`" in builder.load_error.object, builder.load_error.object
    assert app.workbench.spec.to_json() == before
    assert len(builder.json_input.value) <= 256 * 1024  # a big file is not sent back whole
    assert not other.builder.load_error.visible
    assert other.workbench.spec.to_json() == before


def test_a_network_of_a_billion_neurons_is_refused_before_anything_is_allocated(apps):
    app, other = apps
    loaded = refused_quickly(lambda: app.builder.load_json(HUGE))
    if loaded:  # a valid spec beyond this session's limits: every view says so, Start refuses
        problems = refused_quickly(app.workbench.problems)
        assert any("exceed this session's limit" in p.message for p in problems), problems
        started = refused_quickly(app.dashboard.start)
        assert not started
        assert any(p.path.startswith("populations") for p in app.dashboard.problems)
        refused_quickly(app.hardware.refresh)  # the chip's report, without building it
        refused_quickly(lambda: setattr(app.workbench, "backend", "xylo"))
    else:
        assert "populations" in app.builder.load_error.object
    assert other.workbench.spec.populations[0].size == 120


@pytest.mark.parametrize(
    "setting, value, field",
    [
        ("epochs", 10**12, "training.epochs"),
        ("lr", float("nan"), "training.lr"),
        ("lr", 1e300, "training.lr"),
        ("batch_size", 10**9, "training.batch_size"),
    ],
)
def test_bad_training_settings_are_refused_at_start_by_field(apps, setting, value, field):
    app, _ = apps
    app.dashboard.set_setting(setting, value)
    assert not refused_quickly(app.dashboard.start)
    assert field in [p.path for p in app.dashboard.problems], app.dashboard.problems
    assert not app.dashboard.session.active


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"n_hidden": ' + "9" * 5000 + "}",
        '{"n_hidden": 1e400}',
        "x" * 200_000,
        "[1, 2]",
        '{"nonsense": 1}',
    ],
    ids=["deep", "5000 digits", "1e400", "200 kB", "a list", "unknown key"],
)
def test_a_bad_chip_profile_is_refused_at_its_box(apps, text):
    app, other = apps
    app.workbench.backend = "xylo"
    other.workbench.backend = "xylo"
    refused_quickly(lambda: app.hardware._on_profile_input(text))
    assert app.hardware.options_error.visible, "no message at the profile box"
    assert "profile" not in app.workbench.backend_options
    assert not other.hardware.options_error.visible
