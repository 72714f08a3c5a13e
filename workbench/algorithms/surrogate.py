"""Surrogate-gradient training: backpropagation through time with a smooth spike derivative.

The forward pass is the backend's own (the float simulator, or an emulator whose observations
drive it); the backward pass differentiates the unrolled dynamics with the surrogate derivative
in place of the Heaviside step (Neftci, Mostafa & Zenke 2019).  Adam with a learning-rate
schedule, validation each epoch, optional early stopping, and the best weights (by validation
accuracy) restored at the end (the loop of :mod:`workbench.algorithms.loop`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.algorithms import Algorithm, register_algorithm
from workbench.algorithms.loop import SCHEDULES, fit_epochs, loop_problems
from workbench.losses import VAN_ROSSUM_TAU, readout_options
from workbench.neurons import SURROGATES, Surrogate
from workbench.spec import Problem, SpecError
from workbench.training import (
    READOUTS,
    History,
    readout_fit_problems,
    readout_scores,
    readout_setting_problems,
    result_loss,
)

__all__ = ["SCHEDULES", "SurrogateConfig", "fit"]


@dataclass
class SurrogateConfig:
    """Hyperparameters of surrogate-gradient training (names as on the command line)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine annealing to lr * 0.01 over the epochs, or constant
    weight_decay: float = 0.0
    readout: str = "max_membrane"
    surrogate: str = "superspike"
    surrogate_scale: float = 10.0
    # Sparse backward (Perez-Nieves & Goodman 2021): the pseudo-derivative is zero where
    # |V - threshold| > surrogate_cutoff, so only neurons near threshold carry gradient through
    # their spikes; None: no cut-off.
    surrogate_cutoff: float | None = None
    patience: int = 0  # stop after this many epochs without a better validation accuracy; 0: off
    sample_every: int = 50  # batches between recorded training samples (events); 0: never
    # readout "van_rossum" (workbench.losses): the filter's time constant (ms) and the label
    # neuron's target train (ms; None: at 1/4, 1/2 and 3/4 of the run)
    van_rossum_tau: float = VAN_ROSSUM_TAU
    target_times: list | None = None

    def problems(self) -> list[Problem]:
        out = loop_problems(self, READOUTS) + readout_setting_problems(self)
        scale = self.surrogate_scale
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            out.append(Problem("surrogate_scale", f"{scale!r} must be a finite number > 0"))
        cutoff = self.surrogate_cutoff
        if cutoff is not None and not (
            isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0
        ):
            out.append(
                Problem("surrogate_cutoff", f"{cutoff!r} must be a finite number > 0 or null")
            )
        if self.surrogate not in SURROGATES:
            out.append(
                Problem("surrogate", f"{self.surrogate!r} must be one of {list(SURROGATES)}")
            )
        return out


def fit(network, data, config: SurrogateConfig | None = None, callbacks=(), stop=None) -> History:
    """Train ``network`` on ``data`` (a :class:`~workbench.experiment.TrainingData`).

    ``callbacks`` receive the events of :mod:`workbench.training`; ``stop`` (a
    :class:`~workbench.training.StopSignal`) ends the run after the current batch.
    Returns the :class:`History`; the network keeps the weights of the best validation epoch.
    """
    config = config or SurrogateConfig()
    problems = config.problems()
    if problems:
        raise SpecError(problems)
    problems = readout_fit_problems(config, network.spec)
    if problems:
        raise SpecError(problems)
    network.surrogate = Surrogate(config.surrogate, config.surrogate_scale, config.surrogate_cutoff)
    dt = network.spec.dt
    options = readout_options(config)

    def step(spikes, labels, record):
        result = network(spikes, record=True if record else ())
        scores = readout_scores(result.output, config.readout, dt, options=options)
        loss = result_loss(result, scores, labels, config.readout, dt, options)
        return loss, scores, result

    return fit_epochs(network, data, config, "surrogate", step, callbacks, stop)


register_algorithm(
    Algorithm(
        name="surrogate",
        title="Surrogate-gradient BPTT",
        fit=fit,
        config_class=SurrogateConfig,
        references={},
    )
)
