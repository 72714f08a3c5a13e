"""The data picker: which dataset, which spike encoder with which settings, and a preview.

:class:`DataPicker` edits ``workbench.dataset`` and ``workbench.encoder`` (the
``RunConfig.encoder`` form, ``{"name": ..., **params}``).  The encoder's settings are widgets
generated from the encoder dataclass's fields; ``n_steps`` and ``dt`` come from the network
(``workbench.spec``) and the seed of a random encoder from ``workbench.seed``, so they are shown
read-only.  Settings the encoder refuses (its ``__post_init__`` raises ``ValueError``) show the
encoder's own message and leave ``workbench.encoder`` as it was.

The preview encodes one training sample and draws it as a raster (input channels as neurons,
time in ms).  When the encoder's channel count or the dataset's classes do not match the
network, the problem is shown as :func:`workbench.experiment.check_fits` words it, with a
button that resizes the network (a new spec is assigned to ``workbench.spec``).

Widgets for browser tests (``css_classes``):

- ``wb-dataset``: dataset Select; ``wb-dataset-info``: its description, features, classes and
  split sizes.
- ``wb-encoder``: encoder Select; ``wb-encoder-param``: every encoder setting widget (its
  ``name`` is the field name, e.g. ``t_early``); ``wb-encoder-timing``: the read-only
  ``n_steps`` / ``dt`` / ``seed`` widgets; ``wb-encoder-error``: the encoder's error message.
- ``wb-fit-problems``: the mismatch between encoder/dataset and network;
  ``wb-fit-input`` ("Fit the network's input") and ``wb-fit-outputs`` ("Fit outputs").
- ``wb-sample``: sample index slider; ``wb-preview``: the raster; ``wb-sample-info``: the
  sample's label and features.
"""

from __future__ import annotations

import copy
import dataclasses
import typing

import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh backend for the plot options)
import numpy as np
import panel as pn
import param
import torch

from workbench.data import ENCODERS, Dataset, load_dataset
from workbench.experiment import (
    DATASET_REFERENCES,
    RunConfig,
    check_fits,
    encoder_defaults,
    encoders_for,
    make_run_encoder,
)
from workbench.spec import INPUT, NetworkSpec, Problem, SpecError

from . import plots
from .state import APP_DATASETS, Workbench

# Encoder fields that come from the run, not from the encoder's settings.
FROM_RUN = ("n_steps", "dt", "seed")
MAX_FEATURES_SHOWN = 16  # features of a sample listed in the preview text


# ------------------------------------------------------------------------------------ helpers
def encoder_fields(name: str) -> list[tuple[str, str, object]]:
    """The settings of encoder ``name`` as ``(field, kind, dataclass default)``, without the
    fields that come from the run (:data:`FROM_RUN`).

    ``kind`` is one of ``"bool"``, ``"int"``, ``"float"``, ``"int?"``/``"float?"`` (may be
    None), ``"floats"`` (one number or a list, e.g. thresholds) or ``"text"``.
    """
    cls = ENCODERS[name]
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name in FROM_RUN:
            continue
        default = None if f.default is dataclasses.MISSING else f.default
        out.append((f.name, _kind(hints.get(f.name)), default))
    return out


def _kind(hint) -> str:
    if hint is bool:
        return "bool"
    if hint is int:
        return "int"
    if hint is float:
        return "float"
    args = typing.get_args(hint)
    if any(typing.get_origin(a) is tuple or a is tuple for a in args):
        return "floats"
    numbers = [a for a in args if a is not type(None)]
    if type(None) in args and numbers in ([int], [float]):
        return "int?" if numbers == [int] else "float?"
    return "text"


def encoder_values(name: str, dataset: str, n_steps: int, dt: float) -> dict:
    """The settings encoder ``name`` starts from for ``dataset``: the dataclass defaults, then
    :func:`~workbench.experiment.encoder_defaults`, then the dataset's reference encoder when it
    is the same encoder (the order :func:`~workbench.experiment.resolve_encoder` uses)."""
    values = {field: default for field, _, default in encoder_fields(name)}
    values.update(encoder_defaults(name, n_steps, dt, dataset))
    reference = DATASET_REFERENCES.get(dataset, {}).get("encoder", {})
    if reference.get("name") == name:
        values.update({k: v for k, v in reference.items() if k != "name"})
    return {k: v for k, v in values.items() if k not in FROM_RUN}


def is_static(dataset: Dataset) -> bool:
    """Whether the samples of ``dataset`` are static feature vectors (not time series)."""
    return np.ndim(dataset.train.features) == 2


def resized(spec: NetworkSpec, population: str, size: int) -> NetworkSpec:
    """A copy of ``spec`` with ``population`` (or the input, ``"input"``) resized to ``size``;
    fixed initial weights of the projections it touches are dropped (they no longer fit), so
    those projections start from random weights."""
    out = copy.deepcopy(spec)
    if population == INPUT:
        out.input_size = size
    else:
        out.population(population).size = size
    for proj in out.projections:
        if proj.weights is not None and population in (proj.source, proj.target):
            proj.weights = None
    return out


def _format_floats(values) -> str:
    if isinstance(values, (int, float)):
        values = [values]
    return ", ".join(f"{v:g}" for v in values)


def _parse_floats(field: str, text: str) -> list[float]:
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"{field} must be numbers separated by commas (e.g. 0.25, 0.5), got {text!r}"
        ) from None
    if not values:
        raise ValueError(f"{field} needs at least one number")
    return values


# ------------------------------------------------------------------------------------ picker
class DataPicker(pn.viewable.Viewer):
    """Pick the dataset and the spike encoder, set the encoder up, preview one encoded sample.

    The dataset Select is ``workbench.dataset`` itself (``Select.from_param``); the encoder's
    widgets write ``workbench.encoder`` when their settings are valid and differ from it; the
    fit buttons write ``workbench.spec``.  Changes of ``workbench.dataset``, ``encoder``,
    ``spec``, ``seed`` and ``webgl`` made anywhere are followed through ``param.depends``.
    """

    workbench = param.ClassSelector(class_=Workbench, doc="the session's shared state")
    error = param.String("", doc="why the encoder settings are refused ('' when they are valid)")
    problems = param.List([], doc="Problems of the network against encoder and dataset")
    channels = param.Integer(None, allow_None=True, doc="input channels the encoder makes")

    def __init__(self, **params):
        super().__init__(**params)
        wb = self.workbench
        self._datasets: dict[str, Dataset] = {}  # loaded datasets of this picker
        self._encoder = None  # the valid encoder of the current settings, or None
        self._shown_encoder = None  # the encoder whose settings the widgets show

        # The Select is workbench.dataset itself: no mirror in either direction.
        self.dataset_select = pn.widgets.Select.from_param(
            wb.param.dataset, name="Dataset", options=APP_DATASETS, css_classes=["wb-dataset"]
        )
        self.dataset_info = pn.pane.Markdown("", css_classes=["wb-dataset-info"])
        self.encoder_select = pn.widgets.Select(label="Encoder", css_classes=["wb-encoder"])
        self.params_box = pn.FlexBox(css_classes=["wb-encoder-params"])
        self.timing_box = pn.Row(css_classes=["wb-encoder-timing"])
        self.error_alert = pn.pane.Alert(
            "", alert_type="danger", visible=False, css_classes=["wb-encoder-error"]
        )
        self.fit_alert = pn.pane.Alert(
            "", alert_type="warning", visible=False, css_classes=["wb-fit-problems"]
        )
        self.fit_input_button = pn.widgets.Button(
            label="Fit the network's input",
            color="primary",
            visible=False,
            css_classes=["wb-fit-input"],
        )
        self.fit_outputs_button = pn.widgets.Button(
            label="Fit outputs",
            color="primary",
            visible=False,
            css_classes=["wb-fit-outputs"],
        )
        self.sample_slider = pn.widgets.IntSlider(
            label="Sample (train split)", start=0, end=1, value=0, css_classes=["wb-sample"]
        )
        self.preview = pn.pane.HoloViews(
            None, sizing_mode="stretch_width", min_height=220, css_classes=["wb-preview"]
        )
        self.sample_info = pn.pane.Markdown("", css_classes=["wb-sample-info"])
        self.param_widgets: dict[str, pn.widgets.Widget] = {}
        self._kinds: dict[str, str] = {}

        self._show_dataset()
        values = self._resolved(wb.encoder)
        name = values.pop("name")
        if name not in ENCODERS:  # not an encoder: start from the dataset's
            values = self._resolved({})
            name = values.pop("name")
        self._switch_encoder(name, values)
        self._update(write=False)

        # Reactions to the user (the workbench's own changes: the param.depends below)
        pn.bind(self._on_encoder_select, self.encoder_select, watch=True)
        pn.bind(lambda _: self._refresh_preview(), self.sample_slider, watch=True)
        self.fit_input_button.on_click(lambda _: self.fit_input())
        self.fit_outputs_button.on_click(lambda _: self.fit_outputs())

    # -------------------------------------------------------------------------- public
    @property
    def dataset(self) -> Dataset:
        """The loaded dataset of ``workbench.dataset``."""
        name = self.workbench.dataset
        if name not in self._datasets:
            self._datasets[name] = load_dataset(name)
        return self._datasets[name]

    def settings(self) -> dict:
        """The encoder as the widgets set it, in ``RunConfig.encoder`` form (not validated;
        raises ``ValueError`` for a list of thresholds that is not numbers)."""
        out = {"name": self.encoder_select.value}
        for field, widget in self.param_widgets.items():
            value = widget.value
            if self._kinds[field] == "floats":
                value = _parse_floats(field, value)
            out[field] = value
        return out

    def preview_data(self):
        """The encoded preview sample: spikes ``[n_steps, channels]`` (numpy) and its raster
        table (:func:`plots.raster_frame`); ``(None, None)`` when the encoder is invalid."""
        if self._encoder is None:
            return None, None
        split = self.dataset.train
        index = min(self.sample_slider.value, len(split) - 1)
        features = torch.as_tensor(split.features[index : index + 1], dtype=torch.float32)
        spikes = self._encoder(features)[:, 0, :].abs().numpy()
        return spikes, plots.raster_frame(spikes, self.workbench.spec.dt)

    def fit_input(self) -> None:
        """Resize the network's input to the encoder's channel count."""
        if self.channels is not None and self.channels != self.workbench.spec.input_size:
            self.workbench.spec = resized(self.workbench.spec, INPUT, self.channels)

    def fit_outputs(self) -> None:
        """Resize the network's output population to the dataset's number of classes."""
        spec = self.workbench.spec
        n = self.dataset.n_classes
        try:
            output = spec.population(spec.output_name)
        except KeyError:
            return
        if output.size != n:
            self.workbench.spec = resized(spec, output.name, n)

    # -------------------------------------------------------------------------- events
    @param.depends("workbench.dataset", watch=True)
    def _on_wb_dataset(self) -> None:
        """A new dataset starts from its reference encoder (or the first one it allows)."""
        wb = self.workbench
        self._show_dataset()
        name = self._reference_encoder()
        self._switch_encoder(name, encoder_values(name, wb.dataset, wb.spec.n_steps, wb.spec.dt))
        self._update(write=True)

    def _on_encoder_select(self, name: str) -> None:
        """The user picked encoder ``name``: its settings start from their defaults.  (The
        picker itself selects an encoder only after showing its settings: nothing to do.)"""
        if name == self._shown_encoder:
            return
        spec = self.workbench.spec
        self._switch_encoder(
            name, encoder_values(name, self.workbench.dataset, spec.n_steps, spec.dt)
        )
        self._update(write=True)

    def _on_param(self, _value) -> None:
        self._update(write=True)

    @param.depends("workbench.encoder", watch=True)
    def _on_wb_encoder(self) -> None:
        """``workbench.encoder`` set elsewhere (e.g. a loaded run): show its settings.  The
        settings this picker wrote itself are shown already: nothing changes then."""
        resolved = self._resolved(self.workbench.encoder or {})
        name = resolved.pop("name")
        if name not in ENCODERS:
            self.error = f"encoder must be one of {sorted(ENCODERS)}, got {name!r}"
            self.error_alert.param.update(object=f"**Encoder refused:** {self.error}", visible=True)
            return
        if name == self._shown_encoder and self._shown_settings() == {"name": name, **resolved}:
            return
        self._switch_encoder(name, resolved)
        self._update(write=False)

    @param.depends("workbench.spec", "workbench.seed", watch=True)
    def _on_wb_run_values(self) -> None:
        """``n_steps``/``dt`` (network) or the seed changed: the encoder changes with them."""
        self._show_timing(self.encoder_select.value)
        self._update(write=True)

    @param.depends("workbench.webgl", watch=True)
    def _on_wb_webgl(self) -> None:
        self._refresh_preview()

    # -------------------------------------------------------------------------- building
    def _reference_encoder(self) -> str:
        """The encoder of the dataset's reference (or the first one the dataset allows)."""
        allowed = self._allowed_encoders()
        reference = DATASET_REFERENCES.get(self.workbench.dataset, {}).get("encoder", {})
        name = reference.get("name", allowed[0])
        return name if name in allowed else allowed[0]

    def _allowed_encoders(self) -> list[str]:
        """The encoders the dataset's samples take (spike events: ``spikes``; the equaliser's
        signed samples: the paper's two codes)."""
        return [n for n in ENCODERS if n in encoders_for(self.workbench.dataset)]

    def _show_dataset(self) -> None:
        """Description and sample slider of the dataset (its encoder choices:
        :meth:`_switch_encoder`)."""
        data = self.dataset
        self.sample_slider.param.update(
            end=max(len(data.train) - 1, 1),
            value=min(self.sample_slider.value, len(data.train) - 1),
        )
        classes = ", ".join(data.class_names)
        self.dataset_info.object = (
            f"{data.description}\n\n"
            f"**{data.n_features}** {'channels' if data.events else 'features'} · "
            f"**{data.n_classes}** classes ({classes}) · "
            f"train **{len(data.train)}**, validation **{len(data.validation)}**, "
            f"test **{len(data.test)}** samples"
        )

    def _switch_encoder(self, name: str, values: dict) -> None:
        """Show encoder ``name`` with settings ``values``: its widgets first, then the Select
        (with the dataset's encoders, and ``name`` if the dataset does not allow it), in one
        update, so the Select never holds an encoder whose settings are not shown."""
        self._build_param_widgets(name, values)
        options = self._allowed_encoders()
        if name not in options:
            options.append(name)
        self.encoder_select.param.update(options=options, value=name)

    def _build_param_widgets(self, name: str, values: dict) -> None:
        """One widget per setting of encoder ``name``, holding ``values``."""
        widgets, kinds = {}, {}
        for field, kind, default in encoder_fields(name):
            value = values.get(field, default)
            common = dict(label=field, css_classes=["wb-encoder-param"], width=150)
            if kind == "bool":
                widget = pn.widgets.Checkbox(value=bool(value), **common)
            elif kind in ("int", "int?"):
                widget = pn.widgets.IntInput(value=value, **common)
                if kind == "int?":
                    widget.placeholder = "none"
            elif kind in ("float", "float?"):
                widget = pn.widgets.FloatInput(
                    value=None if value is None else float(value), step=0.1, **common
                )
                if kind == "float?":
                    widget.placeholder = "none"
            elif kind == "floats":
                widget = pn.widgets.TextInput(
                    value="" if value is None else _format_floats(value),
                    placeholder="e.g. 0.25, 0.5, 0.75",
                    **common,
                )
            else:
                widget = pn.widgets.TextInput(value="" if value is None else str(value), **common)
            pn.bind(self._on_param, widget, watch=True)
            widgets[field], kinds[field] = widget, kind
        self.param_widgets, self._kinds = widgets, kinds
        self._shown_encoder = name
        self.params_box.objects = list(widgets.values())
        self._show_timing(name)

    def _show_timing(self, name: str) -> None:
        """Read-only widgets for the fields of the encoder that come from the run."""
        wb = self.workbench
        run_values = {
            "n_steps": ("n_steps (network)", wb.spec.n_steps, pn.widgets.IntInput),
            "dt": ("dt, ms (network)", wb.spec.dt, pn.widgets.FloatInput),
            "seed": ("seed (session)", wb.seed, pn.widgets.IntInput),
        }
        fields = {f.name for f in dataclasses.fields(ENCODERS[name]) if f.init}
        self.timing_box.objects = [
            cls(label=label, value=value, disabled=True, width=150)
            for key, (label, value, cls) in run_values.items()
            if key in fields
        ]

    # -------------------------------------------------------------------------- state
    def _shown_settings(self) -> dict | None:
        """:meth:`settings`, or None where the widgets hold no valid list of numbers."""
        try:
            return self.settings()
        except ValueError:
            return None

    def _validated(self) -> tuple[dict | None, object, str]:
        """``(settings, encoder, "")`` for valid settings, ``(None, None, message)`` else."""
        try:
            settings = self.settings()
        except ValueError as exc:
            return None, None, str(exc)
        name = settings["name"]
        for field, kind, _ in encoder_fields(name):
            if settings.get(field) is None and not kind.endswith("?"):
                return None, None, f"{field} is required ({kind.rstrip('?')})"
        wb = self.workbench
        config = RunConfig(encoder=settings, n_steps=wb.spec.n_steps, dt=wb.spec.dt, seed=wb.seed)
        try:  # as the dataset adapts it (the equaliser's one-hot fed-back symbols)
            encoder = make_run_encoder(config, self.dataset)
        except (ValueError, TypeError) as exc:
            return None, None, str(exc)
        return settings, encoder, ""

    def _resolved(self, encoder: dict) -> dict:
        """``encoder`` (``RunConfig.encoder`` form) with the settings it leaves out filled in,
        as the widgets would show it."""
        wb = self.workbench
        name = encoder.get("name") or self._reference_encoder()
        if name not in ENCODERS:
            return dict(encoder)
        values = encoder_values(name, wb.dataset, wb.spec.n_steps, wb.spec.dt)
        return {"name": name, **values, **{k: v for k, v in encoder.items() if k != "name"}}

    def _update(self, write: bool) -> None:
        """Validate the settings; when valid (and ``write``) store them in
        ``workbench.encoder``; then refresh the fit check and the preview."""
        wb = self.workbench
        settings, self._encoder, self.error = self._validated()
        self.error_alert.object = f"**Encoder settings refused:** {self.error}"
        self.error_alert.visible = bool(self.error)
        if settings is not None and write and settings != self._resolved(wb.encoder):
            wb.encoder = settings  # shown already: _on_wb_encoder leaves the widgets
        self._refresh_fits()
        self._refresh_preview()

    def _refresh_fits(self) -> None:
        """The network's input and output against the encoder's channels and the classes."""
        wb = self.workbench
        data = self.dataset
        self.channels = None if self._encoder is None else self._encoder.n_channels(data.n_features)
        problems: list[Problem] = []
        if self._encoder is not None:
            try:
                check_fits(wb.spec, data, self._encoder)
            except SpecError as exc:
                problems = exc.problems
            except (KeyError, ValueError, TypeError) as exc:  # a spec being edited
                problems = [Problem("spec", str(exc))]
        self.problems = problems
        self.fit_alert.object = "\n".join(f"- `{p.path}`: {p.message}" for p in problems)
        self.fit_alert.visible = bool(problems)
        self.fit_input_button.visible = any(p.path == "input_size" for p in problems)
        self.fit_outputs_button.visible = any(p.path.startswith("populations") for p in problems)

    def _refresh_preview(self) -> None:
        wb = self.workbench
        try:
            spikes, frame = self.preview_data()
        except (ValueError, RuntimeError) as exc:
            spikes, frame = None, None
            self.sample_info.object = f"The sample could not be encoded: {exc}"
        if spikes is None:
            self.preview.object = None
            if self._encoder is None:
                self.sample_info.object = "No preview: the encoder settings are refused."
            return
        n_channels = spikes.shape[1]
        opts = {"xlim": (0, wb.spec.n_steps * wb.spec.dt)}
        if wb.webgl:
            opts["backend_opts"] = {"plot.output_backend": "webgl"}
        self.preview.object = plots.raster(frame, "input", n_channels, **opts)

        data = self.dataset
        index = min(self.sample_slider.value, len(data.train) - 1)
        label = int(data.train.labels[index])
        if data.events:  # spike events: how many, and how long the sample lasts
            times, _ = data.train.events(index)
            last = float(times.max()) if len(times) else 0.0
            shown = f"{len(times)} events over {last:.0f} ms (the raster bins them at dt)"
            if data.train.groups is not None:
                shown += f"; speaker {data.train.groups[index]}"
        else:
            features = np.asarray(data.train.features[index], dtype=float)
            shown = ", ".join(f"{x:.3g}" for x in features[:MAX_FEATURES_SHOWN])
            if len(features) > MAX_FEATURES_SHOWN:
                shown += f", … ({len(features)} in all)"
        self.sample_info.object = (
            f"Sample **{index}** of {len(data.train)} (train): label **{label}** "
            f"({data.class_names[label]}); {n_channels} channels, {int(spikes.sum())} spikes "
            f"in {wb.spec.n_steps} steps of {wb.spec.dt:g} ms.\n\n"
            f"{'Input' if data.events else 'Features'}: {shown}"
        )

    def __panel__(self):
        return pn.Column(
            pn.Row(self.dataset_select, self.encoder_select),
            self.dataset_info,
            pn.pane.Markdown("**Encoder settings**"),
            self.params_box,
            self.timing_box,
            self.error_alert,
            self.fit_alert,
            pn.Row(self.fit_input_button, self.fit_outputs_button),
            self.sample_slider,
            self.preview,
            self.sample_info,
            sizing_mode="stretch_width",
        )
