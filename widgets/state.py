"""What one user's workbench holds: the network, the data, the backend, and the limits.

One :class:`Workbench` per browser session (the app builds a fresh one for every session) or per
notebook; every component reads and writes the same instance, so the builder's network is the
one the backend picker checks and the dashboard trains.  Nothing here is shared between
sessions.
"""

from __future__ import annotations

import itertools

import param

from workbench.backends import available_backends
from workbench.catalog import FILE_DATASETS
from workbench.data import DATASETS
from workbench.experiment import DATASET_REFERENCES, RunConfig, reference_config
from workbench.spec import NetworkSpec, Problem

from .templates import TEMPLATES

_SESSIONS = itertools.count(1)


# What a student can pick: every dataset but those read from files the server does not have.
APP_DATASETS = sorted(name for name in DATASETS if name not in FILE_DATASETS)


class Limits(param.Parameterized):
    """Per-session limits, with defaults for a teaching lab (a few dozen students on one
    server).  ``workbench app`` takes each as an option."""

    max_neurons = param.Integer(2000, bounds=(1, None), doc="neurons in a network, inputs excluded")
    max_steps = param.Integer(2000, bounds=(1, None), doc="time steps per sample")
    max_epochs = param.Integer(200, bounds=(1, None), doc="epochs of one training run")
    max_concurrent_runs = param.Integer(
        1, bounds=(1, None), doc="training or comparison runs a session may have going at once"
    )
    max_compare_runs = param.Integer(24, bounds=(1, None), doc="runs in one comparison grid")

    def problems(self, spec: NetworkSpec) -> list[Problem]:
        """What of ``spec`` exceeds these limits, by field."""
        out = []
        neurons = sum(p.size for p in spec.populations)
        if neurons > self.max_neurons:
            out.append(
                Problem(
                    "populations",
                    f"{neurons} neurons exceed this session's limit of {self.max_neurons}",
                )
            )
        if spec.n_steps > self.max_steps:
            out.append(
                Problem(
                    "n_steps", f"{spec.n_steps} exceeds this session's limit of {self.max_steps}"
                )
            )
        return out


class Workbench(param.Parameterized):
    """The state every component of one session shares."""

    spec = param.ClassSelector(class_=NetworkSpec, doc="the network being built and trained")
    dataset = param.Selector(objects=APP_DATASETS, default="yinyang")
    encoder = param.Dict(
        default={}, doc="the encoder's name and parameters (RunConfig.encoder); {} = the dataset's"
    )
    backend = param.Selector(objects=available_backends(), default="float")
    backend_options = param.Dict(default={}, doc="options of the backend (e.g. a chip's profile)")
    seed = param.Integer(0, bounds=(0, None))
    limits = param.ClassSelector(class_=Limits)
    webgl = param.Boolean(False, doc="Bokeh's WebGL output (6x slower than canvas headless)")
    run = param.Parameter(None, doc="the last finished training run (workbench.experiment.Run)")
    active_runs = param.Integer(
        0,
        bounds=(0, None),
        doc="training runs and comparisons going on (limits.max_concurrent_runs)",
    )

    def __init__(self, **params):
        params.setdefault("limits", Limits())
        super().__init__(**params)
        self.session_id = f"workbench-{next(_SESSIONS)}"  # its runs' share of the queue
        if self.spec is None:
            self.spec = TEMPLATES["Yin-Yang 5-120-3"]()
        if not self.encoder:
            self.encoder = dict(DATASET_REFERENCES.get(self.dataset, {}).get("encoder", {}))

    def run_config(self, algorithm: str, training: dict | None = None) -> RunConfig:
        """The run configuration of training this session's network with ``algorithm``: the
        algorithm's reference for the dataset, with this session's encoder, backend, seed,
        and ``training`` settings on top.  The network itself is ``self.spec``."""
        config = reference_config(self.dataset, algorithm, self.backend, self.seed)
        config.encoder = dict(self.encoder) if self.encoder else config.encoder
        config.backend_options = dict(self.backend_options)
        config.dt, config.n_steps = self.spec.dt, self.spec.n_steps
        config.training = {**config.training, **(training or {})}
        return config

    def problems(self) -> list[Problem]:
        """Problems of the network itself and of this session's limits."""
        return self.spec.problems() + self.limits.problems(self.spec)
