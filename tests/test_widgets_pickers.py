"""The data picker and the backend picker, driven through their widgets (no browser)."""

from __future__ import annotations

import holoviews as hv
import panel as pn
import pytest

from workbench.experiment import STATIC_ENCODERS, encoder_defaults
from workbench.spec import Population, feedforward
from workbench.widgets.data import DataPicker, encoder_fields
from workbench.widgets.hardware import OVER, SIMULATOR_NOTE, BackendPicker, resource_bars
from workbench.widgets.state import Workbench
from workbench.widgets.templates import TEMPLATES


@pytest.fixture
def wb():
    return Workbench()


# ------------------------------------------------------------------------------------ data
def test_starts_from_the_dataset_reference_encoder(wb):
    picker = DataPicker(workbench=wb)
    assert picker.encoder_select.value == "latency"
    assert picker.param_widgets["t_late"].value == 30.0
    assert picker.param_widgets["bias_time"].value == 0.0
    assert set(picker.encoder_select.options) == set(STATIC_ENCODERS)
    assert picker.channels == 5 and picker.problems == [] and picker.error == ""
    assert "yin" in picker.dataset_info.object and "5000" in picker.dataset_info.object
    # n_steps and dt come from the network, read-only
    timing = {w.label: w for w in picker.timing_box.objects}
    assert timing["n_steps (network)"].value == wb.spec.n_steps
    assert all(w.disabled for w in timing.values())


def test_encoder_and_dataset_switch_write_the_encoder(wb):
    picker = DataPicker(workbench=wb)
    picker.encoder_select.value = "rate"
    expected = encoder_defaults("rate", wb.spec.n_steps, wb.spec.dt)["max_rate_hz"]
    assert wb.encoder == {"name": "rate", "max_rate_hz": expected}
    assert set(picker.param_widgets) == {f for f, _, _ in encoder_fields("rate")}

    picker.param_widgets["max_rate_hz"].value = 150.0
    assert wb.encoder["max_rate_hz"] == 150.0

    picker.dataset_select.value = "digits"
    assert wb.dataset == "digits"
    assert wb.encoder == {"name": "rate", "max_rate_hz": 1000.0}  # digits' reference
    assert picker.param_widgets["max_rate_hz"].value == 1000.0
    assert picker.sample_slider.end == len(picker.dataset.train) - 1

    picker.encoder_select.value = "ternary"
    assert wb.encoder["thresholds"] == [0.25, 0.5, 0.75] and wb.encoder["name"] == "ternary"
    assert wb.encoder["code"] == "thermometer"  # the paper's binary code is code="binary"
    picker.param_widgets["thresholds"].value = "0.1, 0.9"
    assert wb.encoder["thresholds"] == [0.1, 0.9]


def test_preview_has_one_row_per_channel(wb):
    picker = DataPicker(workbench=wb)
    spikes, frame = picker.preview_data()
    assert spikes.shape == (wb.spec.n_steps, 5)
    assert len(frame) > 0 and frame["neuron"].max() < 5
    assert isinstance(picker.preview.object, hv.Points)
    assert "label" in picker.sample_info.object

    picker.encoder_select.value = "ternary"
    spikes, frame = picker.preview_data()
    assert spikes.shape[1] == picker.channels == 4 * 3
    assert len(frame) > 0 and set(frame["neuron"]) <= set(range(12))

    text = picker.sample_info.object
    picker.sample_slider.value = 7
    assert picker.sample_info.object != text and "Sample **7**" in picker.sample_info.object


def test_spoken_digits_show_as_a_raster_of_their_spike_events(wb):
    """A dataset of spike events: its one encoder, a time x channel raster of one sample, and
    the events it holds (built once, then cached: tests/test_spoken_digits.py builds it too)."""
    picker = DataPicker(workbench=wb)
    wb.dataset = "spoken_digits"
    assert list(picker.encoder_select.options) == ["spikes"]
    assert "**700** channels" in picker.dataset_info.object
    spikes, frame = picker.preview_data()
    assert spikes.shape == (wb.spec.n_steps, 700) and spikes.sum() > 0
    assert 0 < len(frame) <= spikes.sum() and frame["neuron"].max() < 700
    assert "events over" in picker.sample_info.object and "speaker" in picker.sample_info.object
    assert [p.path for p in picker.problems] == ["input_size", "populations[1].size"]
    picker.fit_input_button.clicks += 1
    picker.fit_outputs_button.clicks += 1
    assert wb.spec.input_size == 700 and wb.spec.population("output").size == 10


def test_channel_mismatch_shows_the_problem_and_fits_the_input(wb):
    picker = DataPicker(workbench=wb)
    assert not picker.fit_input_button.visible
    picker.encoder_select.value = "rate"  # 4 channels, the network reads 5
    assert [p.path for p in picker.problems] == ["input_size"]
    assert "RateEncoder makes 4 channels" in picker.problems[0].message
    assert picker.fit_alert.visible and "input_size" in picker.fit_alert.object
    assert picker.fit_input_button.visible

    old = wb.spec
    picker.fit_input_button.clicks += 1
    assert wb.spec is not old and wb.spec.input_size == 4 and not wb.spec.problems()
    assert picker.problems == [] and not picker.fit_input_button.visible


def test_fit_outputs_resizes_the_output_population(wb):
    picker = DataPicker(workbench=wb)
    wb.spec = feedforward([5, 10, 7], dt=wb.spec.dt, n_steps=wb.spec.n_steps)
    assert [p.path for p in picker.problems] == ["populations[1].size"]
    assert picker.fit_outputs_button.visible and not picker.fit_input_button.visible
    picker.fit_outputs_button.clicks += 1
    assert wb.spec.population("output").size == 3 and picker.problems == []


def test_invalid_settings_show_the_encoder_message_and_keep_the_encoder(wb):
    picker = DataPicker(workbench=wb)
    before = dict(wb.encoder)
    picker.param_widgets["t_late"].value = 1000.0
    assert "t_early and t_late must satisfy" in picker.error
    assert picker.error_alert.visible and picker.error in picker.error_alert.object
    assert wb.encoder == before
    assert picker.preview.object is None

    picker.param_widgets["t_late"].value = 20.0
    assert picker.error == "" and not picker.error_alert.visible
    assert wb.encoder["t_late"] == 20.0

    picker.param_widgets["t_early"].value = None
    assert "t_early is required" in picker.error and wb.encoder["t_early"] == 1.0

    picker.encoder_select.value = "ternary"
    encoder = dict(wb.encoder)
    picker.param_widgets["thresholds"].value = "0.5, x"
    assert "thresholds must be numbers" in picker.error and wb.encoder == encoder
    picker.param_widgets["thresholds"].value = "-1"
    assert "finite numbers > 0" in picker.error and wb.encoder == encoder


def test_follows_the_workbench(wb):
    picker = DataPicker(workbench=wb)
    reference = wb.encoder
    wb.spec = TEMPLATES["Recurrent 5-64-3"]()  # same input, n_steps and dt
    assert wb.encoder is reference  # an equivalent encoder is not rewritten

    wb.encoder = {"name": "no_such_encoder"}
    assert "no_such_encoder" in picker.error and picker.error_alert.visible
    wb.encoder = {"name": "latency", "t_early": 2.0, "t_late": 20.0, "bias_time": None}
    assert picker.param_widgets["t_early"].value == 2.0
    assert picker.param_widgets["bias_time"].value is None
    assert picker.channels == 4 and [p.path for p in picker.problems] == ["input_size"]

    spec = TEMPLATES["Yin-Yang 5-120-3"]()
    spec.n_steps = 30  # 14.5 ms at dt 0.5: t_late = 20 ms no longer fits
    wb.spec = spec
    assert "t_late" in picker.error
    timing = {w.label: w.value for w in picker.timing_box.objects}
    assert timing["n_steps (network)"] == 30


def test_the_dataset_select_is_the_workbench_param_and_writes_once(wb):
    picker = DataPicker(workbench=wb)
    other = DataPicker(workbench=wb)  # a second view of the same session stays in step
    events = []
    wb.param.watch(lambda *es: events.extend(e.name for e in es), ["dataset", "encoder"])
    wb.dataset = "digits"
    assert picker.dataset_select.value == other.dataset_select.value == "digits"
    assert picker.encoder_select.value == other.encoder_select.value == "rate"
    assert sorted(events) == ["dataset", "encoder"]  # the new dataset's encoder, written once
    events.clear()
    other.dataset_select.value = "yinyang"
    assert wb.dataset == picker.dataset_select.value == "yinyang"
    assert picker.encoder_select.value == "latency" and sorted(events) == ["dataset", "encoder"]
    assert not hasattr(picker, "_syncing")


# ------------------------------------------------------------------------------------ backend
def test_the_backend_select_is_the_workbench_param(wb):
    picker = BackendPicker(workbench=wb)
    wb.backend = "xylo"
    assert picker.backend_select.value == "xylo" and picker.chip_box.visible
    picker.backend_select.value = "brainscales2"
    assert wb.backend == "brainscales2" and picker.chip_seed.visible
    picker.chip_seed.value = 5
    assert wb.backend_options == {"chip_seed": 5}
    # options belong to one backend: set alone, a backend starts from none...
    wb.backend = "loihi"
    assert wb.backend_options == {} and picker.chip_seed.value is None
    # ...set together, they stay
    wb.param.update(backend="xylo", backend_options={"variant": "imu"})
    assert wb.backend_options == {"variant": "imu"} and "IMU" in picker.info.object
    assert not hasattr(picker, "_syncing")


def test_software_simulators_have_no_limits(wb):
    picker = BackendPicker(workbench=wb)
    assert SIMULATOR_NOTE in picker.info.object and not picker.chip_box.visible
    picker.backend_select.value = "event"
    assert wb.backend == "event" and SIMULATOR_NOTE in picker.info.object
    assert picker.violations == [] and picker.resource_table is None


def test_xylo_lists_the_violations_of_a_big_network(wb):
    wb.spec = feedforward([5, 2000, 3])
    picker = BackendPicker(workbench=wb)
    picker.backend_select.value = "xylo"
    assert wb.backend == "xylo" and picker.chip_box.visible
    assert any(
        v.path == "populations[0].size" and v.value == 2000 and "1000" in v.allowed
        for v in picker.violations
    )
    assert len(picker.violations_box.objects) == len(picker.violations)
    assert "hidden neurons is 2000" in picker.violations_box.objects[0].object
    assert picker.info.alert_type == "danger"
    hidden = picker.resource_table.set_index("resource").loc["hidden neurons"]
    assert hidden["used"] == 2000 and hidden["fraction"] == 2.0
    bars = picker.bars_pane.object.get(0)
    assert OVER in list(bars.dimension_values("color"))


def test_xylo_sized_template_fits_and_reports_resources(wb):
    wb.spec = TEMPLATES["Xylo-sized 5-63-3"]()
    wb.backend = "xylo"
    picker = BackendPicker(workbench=wb)
    assert picker.violations == [] and picker.errors == []
    assert picker.info.alert_type == "success"
    table = picker.resource_table
    assert list(table.columns) == ["resource", "used", "capacity", "fraction"]
    assert len(table) > 0 and (table["fraction"] <= 1).all()
    assert len(picker.resources_pane.object) == len(table)
    assert "n_hidden" in set(picker.figures["figure"])


def test_report_follows_spec_edits_live(wb):
    wb.spec = TEMPLATES["Xylo-sized 5-63-3"]()
    picker = BackendPicker(workbench=wb)
    picker.backend_select.value = "xylo"
    assert picker.violations == []
    spec = TEMPLATES["Xylo-sized 5-63-3"]()
    spec.input_size = 20
    wb.spec = spec
    assert [v.path for v in picker.violations] == ["input_size"]
    assert picker.resource_table.set_index("resource").loc["input channels", "used"] == 20
    wb.spec = TEMPLATES["Xylo-sized 5-63-3"]()
    assert picker.violations == [] and picker.violations_box.objects == []


def test_check_errors_show_as_messages(wb):
    picker = BackendPicker(workbench=wb)
    picker.backend_select.value = "xylo"
    spec = TEMPLATES["Xylo-sized 5-63-3"]()
    spec.output = "nowhere"  # a spec being edited: the chip's check cannot even start
    wb.spec = spec
    assert picker.errors and any("check failed" in m for m in picker.errors)
    assert len(picker.errors_box.objects) == len(picker.errors)
    pn.panel(picker).get_root()


def test_profile_overrides_write_backend_options(wb):
    wb.spec = TEMPLATES["Xylo-sized 5-63-3"]()
    picker = BackendPicker(workbench=wb)
    picker.backend_select.value = "xylo"
    picker.profile_input.value = '{"n_hidden": 50}'
    assert wb.backend_options == {"profile": {"n_hidden": 50}}
    assert [v.limit for v in picker.violations] == ["hidden neurons"]

    picker.profile_input.value = '{"no_such_figure": 1}'
    assert picker.options_error.visible and "no_such_figure" in picker.options_error.object
    assert wb.backend_options == {"profile": {"n_hidden": 50}}
    picker.profile_input.value = "not json"
    assert picker.options_error.visible

    picker.backend_select.value = "brainscales2"  # options belong to one backend
    assert wb.backend_options == {} and picker.chip_seed.visible
    picker.chip_seed.value = 3
    assert wb.backend_options == {"chip_seed": 3}


def test_the_chip_profile_opens_and_closes_from_its_header(wb):
    """A Disclosure (its body's visibility set in Python), not a collapsible Card: a Card
    drawn again by the dynamic tabs could not open again."""
    wb.backend = "xylo"
    picker = BackendPicker(workbench=wb)
    section = picker.profile_card
    assert section.card in picker.chip_box.objects and picker.figures_pane in section.body.objects
    assert "wb-chip-profile-card" in section.card.css_classes
    assert "wb-chip-profile-toggle" in section.toggle.css_classes
    assert not section.card.collapsible
    assert not section.body.visible and section.toggle.label == "▸ Chip profile"
    section.toggle.value = True
    assert section.opened and section.body.visible and section.toggle.label == "▾ Chip profile"
    section.opened = False
    assert not section.toggle.value and not section.body.visible
    assert section.toggle.label.startswith("▸")


def test_resource_bars_mark_full_capacity():
    import pandas as pd

    table = pd.DataFrame(
        {"resource": ["a", "b"], "used": [1, 3], "capacity": [2, 2], "fraction": [0.5, 1.5]}
    )
    plot = hv.render(resource_bars(table))
    spans = [r for r in plot.renderers + plot.center if type(r).__name__ == "Span"]
    assert [(s.dimension, s.location) for s in spans] == [("height", 1.0)]  # vertical at 100 %


# ------------------------------------------------------------------------------------ rendering
def test_components_render(wb):
    data = DataPicker(workbench=wb)
    data.encoder_select.value = "rate"  # with the fit problem showing
    pn.panel(data).get_root()
    data.param_widgets["max_rate_hz"].value = -1.0  # with the error showing
    pn.panel(data).get_root()

    backend = BackendPicker(workbench=wb)
    pn.panel(backend).get_root()
    wb.spec = feedforward([5, 2000, 3])
    backend.backend_select.value = "xylo"
    pn.panel(backend).get_root()
    wb.spec.populations.append(Population("extra", 2))
    backend.refresh()
    pn.panel(backend).get_root()
