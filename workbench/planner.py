"""Plan a run before it starts: its peak memory and its time per epoch, predicted from a short
calibration on this machine (``workbench plan``, ``workbench train --plan``, the app's Start).

Two checks guard memory.  :func:`workbench.limits.estimate_memory` is arithmetic on the sizes,
instant: it refuses what cannot fit (a billion neurons) before anything is built, but it is a
rough count of what a pass holds, not a prediction.  This module *predicts* what the run will
use, as :func:`workbench.compare.run_cell` measures it (``peak_memory_mb``: the resident memory
the run adds at its peak, the data loaded and the process warmed up beforehand), by running
the run itself on a few samples: the network built, the algorithm's own ``fit`` over one
training batch and its validation, and the final measurement, as ``experiment.train`` goes
(the run validates and tests up to 256 samples at a time,
:data:`workbench.training.EVAL_BATCH_SIZE`), inside :func:`workbench.metrics.peak_memory`.  The
validation and test splits are :data:`EVALUATION_BATCHES` such batches, since a pass made
again on the heap that the last one freed can peak higher than the first.  The run repeats
that pattern over more batches, so at the run's own batch sizes the calibration's peak is the
run's.  Where the arithmetic estimate says those sizes would take more than a quarter
of the limit, the calibration runs at a fraction ``s`` of both batches and at ``s / 4``:
everything a pass holds per sample (the input spikes, every neuron's state over the time steps
for BPTT, the spikes for EventProp) grows in proportion to its batch, what does not (weights,
their gradients, Adam's moments) stays, so the peak is a straight line in ``s``, read at 1.
Time: an epoch of three batches against one of one batch gives a batch's seconds without the
epoch's own overhead, and a forward pass gives an evaluated sample's; an epoch is its training
samples and its validation samples at those rates, plus the one-batch epoch's overhead.

Every figure is measured at the run's own ``T``, network, encoder and backend, so what the
algorithm keeps (BPTT's states grow with ``T``, EventProp's with the spikes) is in it without a
model of it.  What it does not see: a run whose spikes grow a lot during training (EventProp
keeps up to ``max_spikes`` per neuron; an untrained network often spikes less), and memory the
allocator keeps from an earlier run in the same process.  ``benchmarks/memory_planner.py``
checks the prediction against measured runs over a grid of ``T``, hidden size and algorithm.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field

from workbench import limits
from workbench.algorithms import get_algorithm
from workbench.backends import build
from workbench.data import make_loaders
from workbench.experiment import (
    RunConfig,
    TrainingData,
    build_spec,
    make_run_encoder,
    measure,
    prepare,
    resolve_encoder,
    run_dataset,
    training_config,
    warm_up,
)
from workbench.losses import readout_options
from workbench.metrics import peak_memory
from workbench.spec import NetworkSpec, Problem, SpecError
from workbench.training import EVAL_BATCH_SIZE, evaluate

_MIB = 2**20
# The calibration's passes use at most this share of the memory limit by the arithmetic
# estimate, so planning a run that will not fit cannot exhaust the machine (measured peaks were
# 0.55-2.2 times the estimate over the grid of benchmarks/memory_planner.py).
CALIBRATION_SHARE = 0.25
# The calibration validates and tests on up to this many evaluation batches, as the run does on
# its splits: a pass's transient freed and made again leaves the heap higher than one pass did.
# EventProp, Yin-Yang, T 50, 64 hidden: one batch planned 15-16 MiB against runs of 19-20,
# four batches 19 (with a 1 MiB mmap threshold, where both were steady).
EVALUATION_BATCHES = 4


@dataclass
class Plan:
    """What a run is predicted to need.

    ``peak_memory_mb``: resident memory the run adds at its peak (MiB), as
    ``compare``'s ``peak_memory_mb`` measures it, of which ``weights_mb`` the network's
    weights.
    ``seconds_per_epoch``: training batches plus one validation pass; ``limit_mb``: the memory
    a run may use (:func:`workbench.limits.memory_limit`).  ``calibration``: one row per
    measured pass (``pass``, ``batch``, ``mb``, ``seconds``)."""

    peak_memory_mb: float
    weights_mb: float
    seconds_per_epoch: float
    batches_per_epoch: int
    epochs: int
    limit_mb: float
    calibration: list[dict] = field(default_factory=list)
    calibration_seconds: float = 0.0

    @property
    def fits(self) -> bool:
        return self.peak_memory_mb <= self.limit_mb

    @property
    def seconds(self) -> float:
        """The whole training, every epoch (evaluation of the test split not included)."""
        return self.seconds_per_epoch * self.epochs

    def describe(self) -> str:
        """``peak ~412 MiB of 23.1 GiB allowed; ~38 s per epoch, ~19 min for 30 epochs``."""
        return (
            f"peak ~{self.peak_memory_mb:.0f} MiB of {limits.format_bytes(self.limit_mb * _MIB)} "
            f"allowed; ~{_duration(self.seconds_per_epoch)} per epoch, "
            f"~{_duration(self.seconds)} for {self.epochs} epochs"
        )

    def problems(self) -> list[Problem]:
        """A problem naming the batch size when the predicted peak exceeds the limit."""
        if self.fits:
            return []
        return [
            Problem(
                "training.batch_size",
                f"the run is predicted to need ~{self.peak_memory_mb:.0f} MiB at its peak; this "
                f"machine allows {limits.format_bytes(self.limit_mb * _MIB)} "
                f"({limits.limit_source()}); a smaller batch, fewer steps or fewer neurons fit",
            )
        ]

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.update(fits=self.fits, seconds=self.seconds)
        return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _line(points: list[tuple[float, float]], at: float) -> float:
    """The straight line through ``(x, y)`` points (one point: flat), at ``at``; never falling
    with ``x`` (a measurement's noise must not predict less for more samples)."""
    (x1, y1), (x2, y2) = points[0], points[-1]
    if x2 == x1:
        return y2
    slope = max((y2 - y1) / (x2 - x1), 0.0)
    return max(y2 + slope * (at - x2), 0.0)


def _scales(samples: int, per_sample: float, fixed: float, limit: float) -> tuple[float, ...]:
    """The calibration's sizes, as fractions of the run's batch and evaluation batch: the run's
    own (1.0) where the arithmetic estimate of ``samples`` per-sample states stays within the
    calibration's share of the limit (the plan is then that pass's peak), else the largest
    fraction that does and a quarter of it, the line's two points."""
    room = CALIBRATION_SHARE * limit - fixed
    top = 1.0 if per_sample <= 0 else min(1.0, max(room, 0) / (per_sample * samples))
    top = max(top, 1.0 / samples)
    return (top / 4, top) if top < 1 and top * samples >= 4 else (top,)


def plan_run(config: RunConfig, spec: NetworkSpec | None = None) -> Plan:
    """Predict the peak memory and time per epoch of training ``config`` (see the module doc).
    The configuration is checked first (:class:`~workbench.spec.SpecError` names what is
    wrong); a few seconds of calibration follow, on at most ``batch_size`` samples."""
    started = time.perf_counter()
    config = copy.deepcopy(config)
    data, spec, network, hyper = prepare(config, spec)  # checks the configuration first
    dataset = data.dataset
    limit = limits.memory_limit()
    algorithm = get_algorithm(config.algorithm)
    estimate = _estimate(config, spec, hyper)
    per_sample = estimate.training_pass / max(estimate.batch_size, 1)
    per_sample = max(per_sample, estimate.evaluation_pass / EVAL_BATCH_SIZE)
    n_eval = min(EVAL_BATCH_SIZE, len(dataset.validation))
    scales = _scales(hyper.batch_size + n_eval, per_sample, estimate.weights, limit)
    options = readout_options(hyper)
    rows = []

    def fit_pass(
        batch: int, n_batches: int, n_evaluation: int, evaluation_batch: int
    ) -> tuple[float, float]:
        """The run on ``n_batches`` training batches and ``n_evaluation`` validation and test
        samples (evaluated ``evaluation_batch`` at a time), as ``experiment.train`` goes: build,
        fit, measure.  Returns (peak MiB, seconds of the fit)."""
        small = TrainingData(
            dataset.head(batch * n_batches, n_evaluation), data.encoder, config.seed
        )
        settings = dataclasses.replace(
            hyper, epochs=1, batch_size=batch, patience=0, sample_every=0
        )
        with peak_memory() as peak:
            net = build(spec, config.backend, seed=config.seed, **config.backend_options)
            begin = time.perf_counter()
            algorithm.fit(net, small, settings)
            seconds = time.perf_counter() - begin
            measure(net, small, hyper.readout, options, batch_size=evaluation_batch)
            del net
        rows.append(
            {
                "pass": "run",
                "batch": batch,
                "batches": n_batches,
                "validation": len(small.dataset.validation),
                "evaluation_batch": evaluation_batch,
                "mb": peak.megabytes,
                "seconds": seconds,
            }
        )
        return peak.megabytes, seconds

    def eval_seconds(n: int) -> float:
        small = dataset.head(1, n)
        loader = make_loaders(small, n, config.seed)["validation"]
        begin = time.perf_counter()
        evaluate(network, loader, data.encoder, hyper.readout, options)
        seconds = time.perf_counter() - begin
        rows.append({"pass": "evaluation", "batch": n, "seconds": seconds})
        return seconds

    warm_up(config, spec)  # one-time costs (the compiled kernels, the first optimiser step)
    points = []
    for scale in scales:
        batch = max(1, round(hyper.batch_size * scale))
        n_validation = max(1, round(n_eval * scale))
        n_evaluation = n_validation * EVALUATION_BATCHES
        points.append((scale, fit_pass(batch, 1, n_evaluation, n_validation)[0]))
    peak_mb = _line(points, 1.0)
    # Time: an epoch of three batches against one of one batch leaves two batches' seconds
    # (validation on one sample in both); a batch's time grows with its size, an evaluation's
    # with its samples.
    _, one = fit_pass(batch, 1, 1, 1)
    _, three = fit_pass(batch, 3, 1, 1)
    per_train_sample = max(three - one, 0.0) / (2 * batch)
    per_eval_sample = eval_seconds(n_validation) / n_validation
    n_train = len(dataset.train)
    # the one-batch epoch holds the epoch's own overhead (loaders, state copies) once
    seconds_per_epoch = (
        one + per_train_sample * max(n_train - batch, 0) + per_eval_sample * len(dataset.validation)
    )
    weights_mb = sum(p.numel() * p.element_size() for p in network.parameters()) / _MIB
    return Plan(
        peak_memory_mb=peak_mb,
        weights_mb=weights_mb,
        seconds_per_epoch=seconds_per_epoch,
        batches_per_epoch=math.ceil(n_train / hyper.batch_size),
        epochs=hyper.epochs,
        limit_mb=limit / _MIB,
        calibration=rows,
        calibration_seconds=time.perf_counter() - started,
    )


# Below this share of the memory limit by the arithmetic estimate a run is not planned before
# it trains (the calibration's seconds buy nothing there); above it, it is, and refused if the
# plan does not fit.  Measured peaks were 0.55-2.2 times the estimate over the grid of
# benchmarks/memory_planner.py, well inside the factor of 8.
PLAN_ABOVE = 1 / 8


def _estimate(config: RunConfig, spec: NetworkSpec, hyper) -> limits.Estimate:
    """The arithmetic estimate of training ``spec`` with ``config``'s algorithm and settings."""
    extra = {"max_spikes": hyper.max_spikes} if hasattr(hyper, "max_spikes") else {}
    return limits.spec_estimate(spec, hyper.batch_size, config.algorithm, **extra)


def needs_plan(config: RunConfig, spec: NetworkSpec | None = None) -> bool:
    """Whether the arithmetic estimate of ``config`` (already checked) comes near enough to the
    memory limit for a plan to be worth its calibration."""
    if spec is None:
        config = copy.deepcopy(config)
        dataset = run_dataset(config)
        config.encoder = resolve_encoder(config)
        spec = build_spec(config, dataset, make_run_encoder(config, dataset))
    estimate = _estimate(config, spec, training_config(config))
    return estimate.total > PLAN_ABOVE * limits.memory_limit()


def check_plan(config: RunConfig, spec: NetworkSpec | None = None, force: bool = False):
    """Plan ``config`` where :func:`needs_plan` (or ``force``) says so and raise
    :class:`~workbench.spec.SpecError` if the plan does not fit; the plan, or ``None`` where
    none was made.  ``workbench train`` and the app's training workers call this before they
    train."""
    if not (force or needs_plan(config, spec)):
        return None
    plan = plan_run(config, spec)
    if plan.problems():
        raise SpecError(plan.problems())
    return plan
