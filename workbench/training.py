"""What every training algorithm shares: events, the history table, readout losses, evaluation.

Algorithms report through events (:class:`BatchEnd`, :class:`EpochEnd`, :class:`SampleRecorded`,
:class:`RunStart`, :class:`RunEnd`) sent to any number of callbacks; a progress bar, a live
plot and ``compare()`` are all just callbacks.  A :class:`StopSignal` stops a run between
batches, from any thread; :func:`interrupt` (for a signal handler) stops it inside a batch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from workbench import losses
from workbench.energy import ActivityCounter
from workbench.spec import Problem

# ------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class RunStart:
    algorithm: str
    epochs: int
    batches_per_epoch: int
    config: dict


@dataclass(frozen=True)
class BatchEnd:
    epoch: int  # 1-based
    batch: int  # 1-based within the epoch
    batches_per_epoch: int
    loss: float
    accuracy: float


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    metrics: dict  # the History row of this epoch


@dataclass(frozen=True)
class SampleRecorded:
    """A recording of one training sample (an ``xarray.Dataset``), sent every N batches."""

    epoch: int
    batch: int
    recording: Any


@dataclass(frozen=True)
class RunEnd:
    history: History
    stopped: bool  # True when a StopSignal ended the run early


Callback = Callable[[Any], None]


class StopSignal:
    """Ask a running ``fit`` to stop after the current batch (thread-safe)."""

    def __init__(self):
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class Interrupted(Exception):
    """A stop that arrived inside a batch (see :func:`interrupt`): the loop drops the batch."""


_armed = False  # inside an interruptible() region of this process's main thread


@contextlib.contextmanager
def interruptible():
    """The part of a batch that :func:`interrupt` may abort: computing the loss and its
    gradient, before any weight changes (so an aborted batch leaves the weights as the
    previous batch left them)."""
    global _armed
    _armed = True
    try:
        yield
    finally:
        _armed = False


def interrupt() -> None:
    """Abort the batch going on, at once: raise :class:`Interrupted` if the main thread is
    inside :func:`interruptible`, else do nothing (a stop signal set beside it is honoured
    after the batch).  Meant for a signal handler (the app's Stop, in the training worker):
    it fires between two Python operations, so a long batch stops within one compiled
    kernel call.  It raises at most once per region."""
    global _armed
    if _armed:
        _armed = False
        raise Interrupted


def emit(callbacks: Iterable[Callback], event) -> None:
    for callback in callbacks:
        callback(event)


# ------------------------------------------------------------------------------------ history


@dataclass
class History:
    """The record of a run: one row per epoch (a tidy table), plus final test metrics."""

    rows: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    stopped: bool = False
    # metrics an algorithm measures beyond the readout that ``measure`` scores (e.g. a second
    # readout's accuracy); ``experiment.train`` adds them to the run's metrics
    extra: dict = field(default_factory=dict)

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def to_csv(self, path) -> None:
        self.table.to_csv(path, index=False)

    def __len__(self) -> int:
        return len(self.rows)


# ------------------------------------------------------------------------------------ losses

# Every readout a gradient-trained algorithm may score and train with (:mod:`workbench.losses`
# holds the loss-shaping family and the van Rossum loss).  ``losses.MEMBRANE_READOUTS`` need a
# leaky-integrator output, ``losses.SPIKE_READOUTS`` a spiking one.
READOUTS = (
    "max_membrane",
    "spike_count",
    "first_spike",
    "sum_membrane",
    "sum_exp_membrane",
    "van_rossum",
)


def first_spike_times(spikes: torch.Tensor, dt: float) -> torch.Tensor:
    """Differentiable first-spike time per neuron (ms), ``spikes`` ``[T, B, n]``.

    ``t_first = dt * (1 + sum_t prod_{s <= t} (1 - z_s))`` is the end of the step of the first
    spike (``(T + 1) * dt`` when there is none); the surrogate gradient of each ``z`` flows
    through it.
    """
    not_yet = torch.cumprod(1.0 - spikes, dim=0)
    return dt * (1.0 + not_yet.sum(dim=0))


FIRST_SPIKE_TAU = 5.0  # ms; first-spike scores are -t / FIRST_SPIKE_TAU


def readout_scores(
    output: torch.Tensor,
    readout: str,
    dt: float,
    tau: float = FIRST_SPIKE_TAU,
    options: Mapping | None = None,
):
    """Class scores ``[B, classes]`` (higher is more likely) from an output trace ``[T, B, n]``
    on the time grid ``t_k = k dt``.  ``options``: the readout's settings besides its name
    (:func:`workbench.losses.readout_options`: the van Rossum readout's ``van_rossum_tau`` and
    ``target_times``)."""
    if readout == "max_membrane":
        return output.max(dim=0).values
    if readout == "spike_count":
        return output.sum(dim=0)
    if readout == "first_spike":
        return -first_spike_times(output, dt) / tau
    if readout in ("sum_membrane", "sum_exp_membrane"):
        return losses.membrane_average(output, dt, weighted=readout == "sum_exp_membrane")
    if readout == "van_rossum":
        tau_vr, target = losses.options_of(options, output.shape[0] * dt)
        return losses.van_rossum_raster_scores(output, dt, target, tau_vr)
    raise ValueError(f"readout: {readout!r} is not known; choose one of {list(READOUTS)}")


def result_scores(result, readout: str, dt: float, options: Mapping | None = None):
    """Class scores of a backend's :class:`~workbench.backends.RunResult`: exact values where
    the backend gives them (first-spike times, continuous-time membrane averages, every output
    spike time: the event backend), otherwise from the output trace."""
    if readout == "first_spike" and result.first_spikes is not None:
        return -result.first_spikes / FIRST_SPIKE_TAU
    averages = result.membrane_averages
    if readout in ("sum_membrane", "sum_exp_membrane") and averages is not None:
        return averages[int(readout == "sum_exp_membrane")]
    times = result.spike_times
    if readout == "van_rossum" and times is not None:
        tau_vr, target = losses.options_of(options, result.output.shape[0] * dt)
        return losses.van_rossum_scores(times, target, tau_vr)
    return readout_scores(result.output, readout, dt, options=options)


def readout_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the class scores (for first_spike: the softmax of negative times, as in
    Göltz et al. 2021, so the right neuron is pushed to fire first)."""
    return F.cross_entropy(scores, labels)


def result_loss(result, scores, labels, readout: str, dt: float, options=None) -> torch.Tensor:
    """The loss a readout trains with, of a :class:`~workbench.backends.RunResult` and its
    ``scores`` (:func:`result_scores`): the van Rossum readout's distance to the label's target
    pattern (on exact spike times where the backend gives them), else :func:`readout_loss`."""
    if readout != "van_rossum":
        return readout_loss(scores, labels)
    tau_vr, target = losses.options_of(options, result.output.shape[0] * dt)
    times = result.spike_times
    if times is not None:
        return losses.van_rossum_loss(times, labels, target, tau_vr)
    return losses.van_rossum_raster_loss(result.output, labels, dt, target, tau_vr)


def readout_setting_problems(config) -> list[Problem]:
    """What is wrong with an algorithm config's readout settings besides the readout's name
    (``van_rossum_tau``, ``target_times``), each naming its field and the allowed range."""
    out = []
    tau = getattr(config, "van_rossum_tau", losses.VAN_ROSSUM_TAU)
    if (
        isinstance(tau, bool)
        or not isinstance(tau, (int, float))
        or not (math.isfinite(tau) and tau > 0)
    ):
        out.append(Problem("van_rossum_tau", f"{tau!r} must be a finite number > 0 (ms)"))
    return out + losses.target_problems(getattr(config, "target_times", None))


def readout_fit_problems(config, spec) -> list[Problem]:
    """What keeps ``config``'s readout from training ``spec``: the van Rossum readout's target
    times must lie inside the run (``[0, n_steps dt)`` ms)."""
    if config.readout != "van_rossum":
        return []
    return losses.target_problems(config.target_times, spec.n_steps * spec.dt)


# ------------------------------------------------------------------------------------ evaluation


EVAL_BATCH_SIZE = 256  # one batch size for every evaluation: a random code then gives the same
# spikes to the same sample during training's validation and in the final metrics


@torch.no_grad()
def evaluate(network, loader, encoder, readout: str, options: Mapping | None = None) -> dict:
    """Loss, accuracy, predictions, spikes and synaptic operations per sample of ``network``
    over ``loader``.

    ``spikes_per_sample`` counts the spikes of every spiking population (hidden and a spiking
    output; not the input); ``synops_per_sample`` counts the synaptic events those spikes and
    the input spikes cause (:func:`workbench.metrics.synaptic_operations`); ``activity`` holds
    these and the other counts that price energy (:class:`workbench.energy.Activity`).

    A random encoder is evaluated through a copy restarted from its seed, so the result does
    not depend on what the encoder produced before (and training's stream is untouched).
    ``options``: the readout's settings (:func:`workbench.losses.readout_options`); the loss is
    the one the readout trains with (:func:`result_loss`).
    """
    encoder = copy.deepcopy(encoder)
    if hasattr(encoder, "reset"):
        encoder.reset()
    was_training = network.training
    network.eval()
    total_loss, correct, total = 0.0, 0, 0
    counter = ActivityCounter(network.spec.dt)
    predictions, labels_all = [], []
    for features, labels in loader:
        inputs = encoder(features)
        result = network(inputs, record=True)
        scores = result_scores(result, readout, network.spec.dt, options)
        loss = result_loss(result, scores, labels, readout, network.spec.dt, options)
        total_loss += loss.item() * len(labels)
        pred = scores.argmax(dim=1)
        correct += (pred == labels).sum().item()
        total += len(labels)
        counter.add(network, inputs, result.recordings)
        predictions.append(pred)
        labels_all.append(labels)
        # the next batch's recordings would otherwise be made while these are still held:
        # twice the memory of one batch at the peak
        del inputs, result, scores, loss
    network.train(was_training)
    activity = counter.activity()
    return {
        "loss": total_loss / total,
        "accuracy": correct / total,
        "spikes_per_sample": activity.total_spikes,
        "synops_per_sample": activity.synops,
        "activity": activity,
        "predictions": torch.cat(predictions),
        "labels": torch.cat(labels_all),
    }
