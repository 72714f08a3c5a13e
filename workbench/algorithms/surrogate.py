"""Surrogate-gradient training: backpropagation through time with a smooth spike derivative.

The forward pass is the backend's own (the float simulator, or an emulator whose observations
drive it); the backward pass differentiates the unrolled dynamics with the surrogate derivative
in place of the Heaviside step (Neftci, Mostafa & Zenke 2019).  Adam with a learning-rate
schedule, validation each epoch, optional early stopping, and the best weights (by validation
accuracy) restored at the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from workbench.algorithms import Algorithm, register_algorithm
from workbench.data import make_loaders
from workbench.neurons import SURROGATES, Surrogate
from workbench.recording import to_dataset
from workbench.spec import Problem, SpecError
from workbench.training import (
    EVAL_BATCH_SIZE,
    READOUTS,
    BatchEnd,
    EpochEnd,
    History,
    RunEnd,
    RunStart,
    SampleRecorded,
    emit,
    evaluate,
    readout_loss,
    readout_scores,
)

SCHEDULES = ("cosine", "constant")


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
    patience: int = 0  # stop after this many epochs without a better validation accuracy; 0: off
    sample_every: int = 50  # batches between recorded training samples (events); 0: never

    def problems(self) -> list[Problem]:
        out = []
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                out.append(Problem(name, f"{value!r} must be an integer >= 1"))
        for name in ("patience", "sample_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                out.append(Problem(name, f"{value!r} must be an integer >= 0"))
        for name, low in (("lr", 0.0), ("surrogate_scale", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > low):
                out.append(Problem(name, f"{value!r} must be a finite number > {low:g}"))
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            out.append(Problem("weight_decay", f"{self.weight_decay!r} must be >= 0"))
        for name, choices in (
            ("schedule", SCHEDULES),
            ("readout", READOUTS),
            ("surrogate", SURROGATES),
        ):
            if getattr(self, name) not in choices:
                out.append(Problem(name, f"{getattr(self, name)!r} must be one of {list(choices)}"))
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
    network.surrogate = Surrogate(config.surrogate, config.surrogate_scale)
    loaders = make_loaders(data.dataset, config.batch_size, data.seed)
    validation = make_loaders(data.dataset, EVAL_BATCH_SIZE, data.seed)["validation"]
    optimiser = torch.optim.Adam(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    n_batches = len(loaders["train"])
    if config.schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=config.epochs * n_batches, eta_min=config.lr * 0.01
        )
    else:
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda _: 1.0)
    emit(callbacks, RunStart("surrogate", config.epochs, n_batches, asdict(config)))
    history = History()
    best, best_state, stale = -1.0, None, 0
    dt = network.spec.dt
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        total_loss = total_correct = total = 0
        for batch, (features, labels) in enumerate(loaders["train"], start=1):
            spikes = data.encoder(features)
            record_now = bool(config.sample_every) and batch % config.sample_every == 0
            result = network(spikes, record=True if record_now else ())
            scores = readout_scores(result.output, config.readout, dt)
            loss = readout_loss(scores, labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            correct = (scores.argmax(1) == labels).sum().item()
            total_loss += loss.item() * len(labels)
            total_correct += correct
            total += len(labels)
            emit(callbacks, BatchEnd(epoch, batch, n_batches, loss.item(), correct / len(labels)))
            if record_now:
                one = {
                    k: {kk: vv[:, :1].detach() for kk, vv in v.items()}
                    for k, v in result.recordings.items()
                }
                emit(
                    callbacks,
                    SampleRecorded(
                        epoch,
                        batch,
                        to_dataset(
                            one,
                            network.spec,
                            network.backend_name,
                            attrs={"label": int(labels[0])},
                            speedup=network.speedup,
                        ),
                    ),
                )
            if stop is not None and stop.is_set():
                break
        val = evaluate(network, validation, data.encoder, config.readout)
        row = {
            "epoch": epoch,
            "train_loss": total_loss / max(total, 1),
            "train_accuracy": total_correct / max(total, 1),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_spikes_per_sample": val["spikes_per_sample"],
            "lr": optimiser.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        emit(callbacks, EpochEnd(epoch, row))
        if val["accuracy"] > best:
            best, stale, history.best_epoch = val["accuracy"], 0, epoch
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
        if stop is not None and stop.is_set():
            history.stopped = True
            break
        if config.patience and stale >= config.patience:
            break
    if best_state is not None:
        network.load_state_dict(best_state)
    emit(callbacks, RunEnd(history, history.stopped))
    return history


register_algorithm(
    Algorithm(
        name="surrogate",
        title="Surrogate-gradient BPTT",
        fit=fit,
        config_class=SurrogateConfig,
        references={},
    )
)
