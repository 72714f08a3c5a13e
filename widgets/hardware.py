"""The backend picker: where the network runs, and whether it fits the chip.

:class:`BackendPicker` writes ``workbench.backend`` (its Select is that param, through
``Select.from_param``) and ``workbench.backend_options``.  For a
chip emulator (a backend class with ``check`` and ``resources``) it shows the chip's profile
(every figure with unit, source and whether it is an assumption), the resources the network
uses against the chip's capacity (a table and a bar chart of the fraction used, red over
capacity) and every violation of the chip's limits.  All of it is recomputed whenever
``workbench.spec``, ``backend`` or ``backend_options`` changes; errors while checking (e.g. a
network still being edited) show as messages.  The software simulators show "no capacity
limits (software simulator)".

Backend options: a JSON object of profile overrides (``backend_options["profile"]``, e.g.
``{"n_hidden": 500}``; a ``variant`` option of the backend, such as Xylo's, picks the base
profile) and, for emulators whose constructor takes one, the chip seed
(``backend_options["chip_seed"]``: the fixed-pattern mismatch of one chip).  The float
simulator takes the same two for its variation profile (:mod:`workbench.variation`: mismatch
and membrane noise, all 0 by default); it shows them and the profile's figures, but no
capacity, resources or violations.  Switching the
backend clears the options (they belong to one backend), unless new options are set in the same
``workbench.param.update(backend=..., backend_options=...)``.

Widgets for browser tests (``css_classes``):

- ``wb-backend``: backend Select; ``wb-backend-info``: the simulator note or the chip summary.
- ``wb-profile-overrides``: profile overrides (JSON); ``wb-chip-seed``: chip seed;
  ``wb-backend-options-error``: why the options are refused.
- ``wb-variation-profile-card`` (toggle ``wb-variation-profile-toggle``): the float
  simulator's "Variation profile" section, its figures in ``wb-variation-figures``.
- ``wb-chip-profile-card``: the "Chip profile" section, opened and closed by its header
  ``wb-chip-profile-toggle`` (a :class:`~workbench.widgets.parts.Disclosure`).
- ``wb-profile-figures``: the profile table; ``wb-resources``: the resource table;
  ``wb-resource-bars``: the bar chart; ``wb-violations``: the list of violations (each an
  alert with ``wb-violation``); ``wb-chip-errors``: what could not be computed;
  ``wb-chip-notes``: how the chip runs the network differently (where the backend says).
"""

from __future__ import annotations

import dataclasses
import inspect
import json

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh backend for the plot options)
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.backends import available_backends, backend_class
from workbench.limits import backend_option_problems, parse_json
from workbench.spec import Problem, SpecError

from .parts import Disclosure
from .state import Workbench

RESOURCE = hv.Dimension("chip resource", label="resource")
FRACTION = hv.Dimension("fraction of capacity", label="fraction of capacity")
OVER, UNDER = "#d62728", "#4c78a8"  # bar colours over / within capacity
SIMULATOR_NOTE = "no capacity limits (software simulator)"

PROFILE_BYTES = 64 * 1024  # a chip profile's overrides: a few numbers, never megabytes


def is_emulator(cls) -> bool:
    """Whether a backend class is a chip emulator (it checks specs and reports resources)."""
    return cls is not None and hasattr(cls, "check") and hasattr(cls, "resources")


def has_variation(cls) -> bool:
    """Whether a backend class is a software simulator with a variation profile (the float
    simulator's ``profile``: mismatch and membrane noise), so its options show as a chip's."""
    return cls is not None and not is_emulator(cls) and takes_option(cls, "profile")


def takes_option(cls, option: str) -> bool:
    """Whether the constructor of backend class ``cls`` has a parameter ``option``."""
    try:
        return option in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def chip_problems(wb: Workbench) -> list[Problem]:
    """Where the session's network exceeds its backend's chip (none for the float backends),
    as problems naming the field, the limit, the value and what the chip allows."""
    cls = backend_class(wb.backend)
    if not is_emulator(cls):
        return []
    try:
        profile = chip_profile(cls, wb.backend_options)
    except ValueError as exc:
        return [Problem("backend_options.profile", str(exc))]
    return [
        Problem(v.path, f"{v.limit} is {v.value}; {v.chip} allows {v.allowed}")
        for v in cls.check(wb.spec, profile)
    ]


def chip_profile(cls, options: dict):
    """The profile of emulator ``cls`` (or the float simulator's variation profile) under
    ``options`` (``backend_options``): the variant's profile (where the backend has variants
    and ``options`` names one), then the overrides of ``options["profile"]``.  Raises
    ``ValueError`` naming what is wrong."""
    overrides = options.get("profile") or {}
    if not isinstance(overrides, dict):
        raise ValueError(
            f"profile: must be an object of figure names and values, got {overrides!r}"
        )
    profile_class = getattr(cls, "profile_class", None)
    base = cls.make_profile(None)
    if options.get("variant") is not None and hasattr(profile_class, "for_variant"):
        base = profile_class.for_variant(options["variant"])
    allowed = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(
            f"profile: {unknown} are not figures of {base.name}; allowed: {sorted(allowed)}"
        )
    for key, value in overrides.items():
        default = getattr(base, key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not number:
            raise ValueError(
                f"profile.{key}: must be a number (default {default!r}), got {value!r}"
            )
    # made as the backend makes it: a figure outside its declared range (a sigma < 0) is refused
    return cls.make_profile(dataclasses.replace(base, **overrides))


def _message(exc: Exception) -> str:
    if isinstance(exc, SpecError):
        return "; ".join(f"`{p.path}`: {p.message}" for p in exc.problems)
    return str(exc) or type(exc).__name__


def resource_bars(table: pd.DataFrame, webgl: bool = False):
    """Horizontal bars of the fraction of capacity each resource uses (red over 100 %), with a
    line at 100 %."""
    data = pd.DataFrame(
        {
            RESOURCE.name: table["resource"].astype(str),
            FRACTION.name: pd.to_numeric(table["fraction"], errors="coerce")
            .replace([np.inf, -np.inf], np.nan)
            .fillna(0.0),
        }
    )
    data["color"] = np.where(data[FRACTION.name] > 1.0, OVER, UNDER)
    top = max(1.1, float(data[FRACTION.name].max()) * 1.05 if len(data) else 0.0)
    opts = dict(
        color="color",
        invert_axes=True,
        ylim=(0, top),  # the value axis (horizontal once inverted)
        responsive=True,
        height=60 + 26 * len(data),
        title="resources used (fraction of capacity)",
        tools=["hover"],
    )
    if webgl:
        opts["backend_opts"] = {"plot.output_backend": "webgl"}
    bars = hv.Bars(data, kdims=[RESOURCE], vdims=[FRACTION, "color"]).opts(**opts)
    # In an overlay inverted by the bars, an HLine at the value 1 is drawn as a vertical line.
    return bars * hv.HLine(1.0).opts(color="black", line_dash="dashed", line_width=1)


class BackendPicker(pn.viewable.Viewer):
    """Pick the backend; for a chip emulator, see its profile, the resources the network uses
    and every violation of the chip's limits, live."""

    workbench = param.ClassSelector(class_=Workbench, doc="the session's shared state")
    violations = param.List([], doc="the chip's Violations of workbench.spec (emulators)")
    resource_table = param.DataFrame(
        None, allow_None=True, doc="resource, used, capacity, fraction (emulators)"
    )
    figures = param.DataFrame(None, allow_None=True, doc="the chip profile's figures")
    errors = param.List([], doc="messages of what could not be computed")

    def __init__(self, **params):
        super().__init__(**params)
        wb = self.workbench
        # The backend and the options the widgets show (see _on_wb_backend).
        self._shown_backend, self._shown_options = wb.backend, wb.backend_options
        # The Select is workbench.backend itself: no mirror in either direction.
        self.backend_select = pn.widgets.Select.from_param(
            wb.param.backend,
            name="Backend",
            options=available_backends(),
            css_classes=["wb-backend"],
        )
        self.info = pn.pane.Alert("", alert_type="info", css_classes=["wb-backend-info"])
        self.profile_input = pn.widgets.TextAreaInput(
            label="Profile overrides (JSON)",
            placeholder='{"n_hidden": 500}',
            height=70,
            css_classes=["wb-profile-overrides"],
        )
        self.chip_seed = pn.widgets.IntInput(
            label="Chip seed",
            value=None,
            start=0,
            placeholder="default",
            width=150,
            css_classes=["wb-chip-seed"],
        )
        self.options_error = pn.pane.Alert(
            "", alert_type="danger", visible=False, css_classes=["wb-backend-options-error"]
        )
        self.figures_pane = pn.pane.DataFrame(
            None, index=False, sizing_mode="stretch_width", css_classes=["wb-profile-figures"]
        )
        self.resources_pane = pn.pane.DataFrame(
            None, index=False, sizing_mode="stretch_width", css_classes=["wb-resources"]
        )
        self.bars_pane = pn.pane.HoloViews(
            None, sizing_mode="stretch_width", css_classes=["wb-resource-bars"]
        )
        self.violations_box = pn.Column(css_classes=["wb-violations"], sizing_mode="stretch_width")
        self.errors_box = pn.Column(css_classes=["wb-chip-errors"], sizing_mode="stretch_width")
        self.notes_box = pn.pane.Markdown("", css_classes=["wb-chip-notes"])
        self.profile_card = Disclosure(
            "Chip profile", self.figures_pane, css_class="wb-chip-profile"
        )
        self.variation_pane = pn.pane.DataFrame(
            None, index=False, sizing_mode="stretch_width", css_classes=["wb-variation-figures"]
        )
        self.variation_card = Disclosure(
            "Variation profile", self.variation_pane, css_class="wb-variation-profile"
        )
        # The options (an emulator's, or a simulator's variation profile), then the chip's
        # report (emulators only).
        self.options_box = pn.Column(
            pn.Row(self.profile_input, self.chip_seed),
            self.options_error,
            self.variation_card,
            sizing_mode="stretch_width",
        )
        self.chip_box = pn.Column(
            self.violations_box,
            pn.pane.Markdown("**Resources**"),
            self.resources_pane,
            self.bars_pane,
            self.notes_box,
            self.profile_card,
            sizing_mode="stretch_width",
        )
        self._show_options()
        self.refresh()

        # The options' widgets write workbench.backend_options (where it changes); the
        # workbench's own changes are followed by the param.depends below.
        pn.bind(self._on_profile_input, self.profile_input, watch=True)
        pn.bind(self._on_chip_seed, self.chip_seed, watch=True)

    # -------------------------------------------------------------------------- public
    @property
    def backend_cls(self):
        """The class of ``workbench.backend`` (None for a plain builder function)."""
        return backend_class(self.workbench.backend)

    @property
    def emulated(self) -> bool:
        """Whether ``workbench.backend`` is a chip emulator."""
        return is_emulator(self.backend_cls)

    def refresh(self) -> None:
        """Recompute profile, resources and violations of ``workbench.spec`` on the backend."""
        wb = self.workbench
        cls = self.backend_cls
        emulated, varied = is_emulator(cls), has_variation(cls)
        self.chip_box.visible = emulated
        self.options_box.visible = emulated or varied
        self.variation_card.card.visible = varied
        errors: list[str] = []
        violations, table, figures, notes = [], None, None, []
        if not emulated:
            self.info.param.update(object=f"**{wb.backend}**: {SIMULATOR_NOTE}", alert_type="info")
            if varied:
                try:
                    figures = chip_profile(cls, wb.backend_options).figures()
                except (ValueError, TypeError) as exc:
                    errors.append(f"The variation profile is refused: {_message(exc)}")
        else:
            try:
                profile = chip_profile(cls, wb.backend_options)
            except (ValueError, TypeError) as exc:
                errors.append(f"The chip profile is refused: {_message(exc)}")
                profile = cls.make_profile(None)
            try:
                figures = profile.figures()
            except Exception as exc:  # noqa: BLE001  (shown to the user)
                errors.append(f"The profile's figures could not be listed: {_message(exc)}")
            spec_problems = wb.spec.problems()
            if spec_problems:
                errors.append(
                    "The network has problems, so the chip's checks may be incomplete: "
                    + "; ".join(f"`{p.path}`: {p.message}" for p in spec_problems)
                )
            try:
                violations = list(cls.check(wb.spec, profile))
            except Exception as exc:  # noqa: BLE001
                errors.append(f"The {profile.name} check failed: {_message(exc)}")
            try:
                table = cls.resources(wb.spec, profile)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"The {profile.name} resources could not be counted: {_message(exc)}")
            if hasattr(cls, "notes"):
                try:
                    notes = list(cls.notes(wb.spec, profile))
                except Exception:  # noqa: BLE001  (notes are extras; the check reports errors)
                    notes = []
            self._show_summary(profile.name, violations, errors)
        self.param.update(
            violations=violations, resource_table=table, figures=figures, errors=errors
        )
        self._show_chip(violations, table, figures, notes, errors)

    # -------------------------------------------------------------------------- events
    @param.depends("workbench.backend", "workbench.backend_options", watch=True)
    def _on_wb_backend(self) -> None:
        """Show the backend and its options.  A new backend whose options are still the
        previous backend's (not set with it) starts from none: they belong to that one."""
        wb = self.workbench
        if (
            wb.backend != self._shown_backend
            and wb.backend_options
            and wb.backend_options is self._shown_options
        ):
            wb.backend_options = {}  # back here, with options of its own
            return
        self._shown_backend, self._shown_options = wb.backend, wb.backend_options
        self._show_options()
        self.refresh()

    @param.depends("workbench.spec", "workbench.webgl", watch=True)
    def _on_wb_spec(self) -> None:
        self.refresh()

    def _on_profile_input(self, text: str) -> None:
        """Profile overrides edited: valid ones go to ``backend_options["profile"]``."""
        options = dict(self.workbench.backend_options)
        text = text.strip()
        try:
            overrides = parse_json(text, "profile", max_bytes=PROFILE_BYTES) if text else {}
            if not isinstance(overrides, dict):
                raise ValueError('must be a JSON object, e.g. {"n_hidden": 500}')
            if overrides:  # names, types and finite numbers first, then the chip's own ranges
                problems = backend_option_problems(self.workbench.backend, {"profile": overrides})
                if problems:
                    raise SpecError(problems)
                chip_profile(self.backend_cls, {**options, "profile": overrides})
        except (ValueError, TypeError) as exc:
            self.options_error.object = f"**Profile overrides refused:** {_message(exc)}"
            self.options_error.visible = True
            return
        self.options_error.visible = False
        options.pop("profile", None)
        if overrides:
            options["profile"] = overrides
        self._write_options(options)

    def _on_chip_seed(self, seed: int | None) -> None:
        """Chip seed edited: ``backend_options["chip_seed"]`` (none: the backend's default)."""
        options = dict(self.workbench.backend_options)
        options.pop("chip_seed", None)
        if seed is not None:
            options["chip_seed"] = int(seed)
        self._write_options(options)

    def _write_options(self, options: dict) -> None:
        """Set ``workbench.backend_options`` where it differs (the widgets showing the
        workbench's options write nothing back)."""
        if options != self.workbench.backend_options:
            self.workbench.backend_options = options

    # -------------------------------------------------------------------------- display
    def _show_options(self) -> None:
        """Widgets from ``workbench.backend`` and ``backend_options``."""
        wb = self.workbench
        cls = self.backend_cls
        options = wb.backend_options
        overrides = options.get("profile")
        self.profile_input.value = json.dumps(overrides) if overrides else ""
        self.chip_seed.param.update(
            visible=(is_emulator(cls) or has_variation(cls)) and takes_option(cls, "chip_seed"),
            value=options.get("chip_seed"),
        )
        self.profile_input.placeholder = (
            '{"mismatch_threshold": 0.05}' if has_variation(cls) else '{"n_hidden": 500}'
        )
        self.options_error.visible = False

    def _show_summary(self, chip: str, violations: list, errors: list[str]) -> None:
        if violations:
            text = (
                f"**{chip}** refuses this network: {len(violations)} "
                f"violation{'s' if len(violations) != 1 else ''} of its limits."
            )
            self.info.param.update(object=text, alert_type="danger")
        elif errors:
            self.info.param.update(
                object=f"**{chip}**: the check is incomplete (see below).", alert_type="warning"
            )
        else:
            self.info.param.update(
                object=f"**{chip}**: the network fits the chip.", alert_type="success"
            )

    def _show_chip(self, violations, table, figures, notes, errors) -> None:
        webgl = self.workbench.webgl
        self.violations_box.objects = [
            pn.pane.Alert(
                f"`{v.path}`: {v.limit} is {v.value}; {v.chip} allows {v.allowed}",
                alert_type="danger",
                css_classes=["wb-violation"],
                sizing_mode="stretch_width",
            )
            for v in violations
        ]
        self.errors_box.objects = [
            pn.pane.Alert(m, alert_type="warning", sizing_mode="stretch_width") for m in errors
        ]
        if table is not None and len(table):
            shown = table.copy()
            shown["fraction"] = [
                f"{x:.0%}" if np.isfinite(x) else "-"
                for x in pd.to_numeric(shown["fraction"], errors="coerce")
            ]
            self.resources_pane.object = shown
            self.bars_pane.object = resource_bars(table, webgl)
        else:
            self.resources_pane.object = None
            self.bars_pane.object = None
        shown = None if figures is None else figures.assign(value=figures["value"].map(str))
        self.figures_pane.object = shown if self.emulated else None
        self.variation_pane.object = None if self.emulated else shown
        self.notes_box.object = (
            "**How the chip runs this network differently**\n\n"
            + "\n".join(f"- {n}" for n in notes)
            if notes
            else ""
        )

    def __panel__(self):
        return pn.Column(
            self.backend_select,
            self.info,
            self.errors_box,
            self.options_box,
            self.chip_box,
            sizing_mode="stretch_width",
        )
