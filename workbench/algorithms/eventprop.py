"""EventProp: exact gradients by the adjoint method with jumps at spike times (Wunderlich &
Pehle, Sci. Rep. 2021).

The network runs on the event-driven simulator (:mod:`workbench.events`): spike times are exact
and the backward pass integrates the adjoint ODE backward with jumps at spike times, keeping
only the spikes (memory grows with spikes, not with time steps).  The losses (``readout``):

- ``first_spike`` (LIF outputs), as published:
  ``-log softmax(-t / tau0)[label] + alpha (exp(t_label / tau1) - 1)``, where ``t`` is each
  output neuron's first spike time (the simulation's end where it has none).  A missing spike
  has no gradient, so a network whose right output falls silent cannot recover; we add
  ``silent_weight * (threshold - peak)`` for a right output neuron that stays silent, where
  ``peak`` is its membrane's highest value on the time grid (an exact gradient too).  Without
  it, runs collapsed: every output neuron silent, loss constant;
- ``max_membrane`` (LI outputs): cross-entropy on the maximum over the time grid of each
  output membrane;
- ``sum_membrane`` and ``sum_exp_membrane`` (LI outputs): Nowotny, Turner & Knight's ``L_sum``
  and ``L_sum_exp`` (:mod:`workbench.losses`), cross-entropy on the exact time average of each
  output membrane, plain or weighted by ``exp(-t/T)``; the loss is a continuous source on the
  membrane adjoint, integrated in closed form (:mod:`workbench.events`).  ``sum_exp_membrane``
  is the one that paper found best for the Spiking Heidelberg Digits;
- ``van_rossum`` (LIF outputs): the van Rossum distance of every output neuron's spike train to
  the label's target pattern (``target_times`` for the label's neuron, no spikes for the
  others), exact in every spike time, with the same push towards threshold as ``first_spike``
  for a label neuron that stays silent.

A network built for another backend is trained on an event-driven copy of itself (same spec and
weights) and gets the trained weights back: trained exactly, then deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workbench.algorithms import Algorithm, register_algorithm
from workbench.algorithms.loop import fit_epochs, is_nonnegative, is_positive, loop_problems
from workbench.events import EventNetwork
from workbench.losses import SPIKE_READOUTS, VAN_ROSSUM_TAU, readout_options
from workbench.spec import Problem, SpecError
from workbench.training import (
    History,
    readout_fit_problems,
    readout_setting_problems,
    result_loss,
    result_scores,
)

READOUTS = ("first_spike", "max_membrane", "sum_membrane", "sum_exp_membrane", "van_rossum")


@dataclass
class EventPropConfig:
    """Hyperparameters of EventProp training (names as on the command line)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "cosine"
    weight_decay: float = 0.0
    readout: str = "first_spike"
    tau0: float = 0.5  # ms: softmax temperature of the first-spike loss
    tau1: float = 6.4  # ms: time scale of the regulariser that rewards an early right spike
    alpha: float = 3e-3  # weight of that regulariser
    max_spikes: int = 16  # spikes per neuron and sample the simulator follows
    silent_weight: float = 1.0  # pushes a silent right output neuron towards threshold
    max_grad_norm: float = 1.0  # clip each step's gradient norm (0: off); a spike that barely
    # reaches threshold has a near-zero slope and an exact but huge gradient, and one such step
    # through Adam silenced every output neuron (no spike, no gradient) in an unclipped run
    patience: int = 0
    sample_every: int = 50
    # readout "van_rossum" (workbench.losses): the filter's time constant (ms) and the label
    # neuron's target train (ms; None: at 1/4, 1/2 and 3/4 of the run)
    van_rossum_tau: float = VAN_ROSSUM_TAU
    target_times: list | None = None

    def problems(self) -> list[Problem]:
        out = loop_problems(self, READOUTS) + readout_setting_problems(self)
        for name in ("tau0", "tau1"):
            value = getattr(self, name)
            if not is_positive(value):
                out.append(Problem(name, f"{value!r} must be a finite number > 0"))
        for name in ("alpha", "silent_weight", "max_grad_norm"):
            value = getattr(self, name)
            if not is_nonnegative(value):
                out.append(Problem(name, f"{value!r} must be a finite number >= 0"))
        if isinstance(self.max_spikes, bool) or not isinstance(self.max_spikes, int):
            out.append(Problem("max_spikes", f"{self.max_spikes!r} must be an integer >= 1"))
        elif self.max_spikes < 1:
            out.append(Problem("max_spikes", f"{self.max_spikes!r} must be an integer >= 1"))
        return out


def first_spike_loss(first: torch.Tensor, labels, tau0: float, tau1: float, alpha: float):
    """The published time-to-first-spike loss on first spike times ``[B, classes]`` (ms)."""
    right = first.gather(1, labels[:, None])[:, 0]
    return F.cross_entropy(-first / tau0, labels) + alpha * (torch.exp(right / tau1) - 1).mean()


def fit(network, data, config: EventPropConfig | None = None, callbacks=(), stop=None) -> History:
    """Train ``network`` on ``data`` with EventProp (see the module docstring)."""
    config = config or EventPropConfig()
    problems = config.problems()
    if problems:
        raise SpecError(problems)
    if isinstance(network, EventNetwork):
        trainer = network
    else:
        trainer = EventNetwork(network.spec, dtype=network.dtype)
        trainer.load_state_dict(network.state_dict())
    trainer.max_spikes = config.max_spikes
    spiking = trainer.spec.population(trainer.spec.output_name).spiking
    if spiking != (config.readout in SPIKE_READOUTS):
        wanted = "a spiking output population" if not spiking else "an 'li' readout"
        raise SpecError([Problem("readout", f"{config.readout!r} needs {wanted}")])
    problems = readout_fit_problems(config, trainer.spec)
    if problems:
        raise SpecError(problems)
    dt = trainer.spec.dt
    options = readout_options(config)

    threshold = trainer.kernels[trainer.spec.output_name].threshold

    def silent_push(out, labels):
        """``silent_weight * (threshold - peak)`` for a label neuron without a spike."""
        times = out[trainer.spec.output_name][:, :, 0]
        silent = ~torch.isfinite(times.gather(1, labels[:, None]))
        shortfall = threshold - out["peak"].gather(1, labels[:, None])
        return config.silent_weight * torch.where(silent, shortfall, 0.0).mean()

    def step(spikes, labels, record):
        result, out = trainer.run(spikes, record=True if record else ())
        scores = result_scores(result, config.readout, dt, options)
        if config.readout == "first_spike":
            loss = first_spike_loss(
                result.first_spikes, labels, config.tau0, config.tau1, config.alpha
            )
            loss = loss + silent_push(out, labels)
        elif config.readout == "van_rossum":
            loss = result_loss(result, scores, labels, config.readout, dt, options)
            loss = loss + silent_push(out, labels)
        else:
            loss = F.cross_entropy(scores, labels)
        return loss, scores, result

    history = fit_epochs(trainer, data, config, "eventprop", step, callbacks, stop)
    if trainer is not network:
        network.load_state_dict(trainer.state_dict())
    return history


# Yin-Yang as published (Wunderlich & Pehle 2021): 5-200-3, tau_mem 20 ms, tau_syn 5 ms, LIF
# outputs and the first-spike loss; inputs (x, y, 1-x, 1-y) as spike latencies plus a bias spike
# at 0 ms.  dt only places the input spikes (0.1 ms) and the simulation ends at 50 ms.
_TAUS = {"tau_mem": 20.0, "tau_syn": 5.0}
REFERENCES = {
    "yinyang": {
        "hidden": [200],
        "neuron_params": _TAUS,
        "readout": "lif",
        "readout_params": _TAUS,
        "weight_init": {
            "input->hidden": {"weight_mean": 1.5, "weight_std": 1.5},
            "hidden->output": {"weight_mean": 0.1, "weight_std": 0.3},
        },
        "dt": 0.1,
        "n_steps": 500,
        "encoder": {"name": "latency", "t_early": 0.0, "t_late": 30.0, "bias_time": 0.0},
        "training": {"epochs": 30, "lr": 5e-3, "batch_size": 32, "readout": "first_spike"},
    },
    # digits: the dataset's own network (rate code, LI readout) with the max-membrane loss, so
    # the algorithm runs there; not tuned (validation 53 / 68 / 70 / 76 % after epochs 1-4 in
    # one trial; ~2 min per epoch: the rate code sends ~600 input events per sample).
    "digits": {"training": {"readout": "max_membrane", "lr": 5e-3}},
    # spoken digits: the dataset's recurrent 700-128-10 network with Nowotny, Turner & Knight's
    # L_sum_exp loss (their best for SHD) at twice the surrogate reference's lr, up to 32 spikes
    # per neuron (~20 on average): 99.31 / 96.11 / 96.67 % test on unseen speakers (seeds
    # 0-2), mean 97.36 %; benchmarks/README.md ("Spoken digits").
    "spoken_digits": {
        "training": {"readout": "sum_exp_membrane", "lr": 0.01, "max_spikes": 32, "epochs": 20}
    },
}

register_algorithm(
    Algorithm(
        name="eventprop",
        title="EventProp (exact gradients)",
        fit=fit,
        config_class=EventPropConfig,
        references=REFERENCES,
        default_backend="event",
    )
)
