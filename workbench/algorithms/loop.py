"""The epoch loop that every gradient-trained algorithm shares.

An algorithm supplies one function, ``step(spikes, labels, record) -> (loss, scores, result)``:
the loss of a batch (with its autograd graph), the class scores it was computed from and the
network's :class:`~workbench.backends.RunResult` (holding the recordings when ``record`` is
true).  :func:`fit_epochs` does the rest, the same way for every algorithm: seeded loaders,
Adam with the configured learning-rate schedule, the events of :mod:`workbench.training`
(``RunStart``, ``BatchEnd``, ``SampleRecorded`` every ``sample_every`` batches, ``EpochEnd``,
``RunEnd``), a :class:`~workbench.training.StopSignal` honoured after the current batch (or
inside it through :func:`~workbench.training.interrupt`, which drops that batch),
validation with :func:`~workbench.training.evaluate` after every epoch, early stopping after
``patience`` epochs without a better validation accuracy, and the best validation epoch's
weights restored at the end.  When ``data.checkpoint`` is a
:class:`~workbench.store.Checkpoint`, the loop saves its whole state there after epochs and, if
the checkpoint already holds a state, resumes from it (same final weights as a run that was
never interrupted).

The configuration is any dataclass with the fields :func:`loop_problems` checks: ``epochs``,
``batch_size``, ``lr``, ``schedule``, ``weight_decay``, ``readout``, ``patience`` and
``sample_every``; an optional ``max_grad_norm`` (> 0) clips the gradient norm of each step.
A batch whose gradient is not finite makes no update (``skipped_steps`` in the history).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict

import torch

from workbench.data import make_loaders
from workbench.losses import readout_options
from workbench.recording import to_dataset
from workbench.spec import Problem
from workbench.store import (
    NUMBER,
    SCALAR,
    Between,
    Exactly,
    ListOf,
    MapOf,
    Maybe,
    SomeOf,
    TensorLike,
    like,
    load_random_state,
    random_schema,
    random_state,
)
from workbench.training import (
    EVAL_BATCH_SIZE,
    BatchEnd,
    EpochEnd,
    History,
    Interrupted,
    RunEnd,
    RunStart,
    SampleRecorded,
    emit,
    evaluate,
    interruptible,
)

SCHEDULES = ("cosine", "constant")


def loop_problems(config, readouts) -> list[Problem]:
    """What is wrong with the settings :func:`fit_epochs` reads (each naming its field and the
    allowed range); ``readouts`` are the readouts the algorithm supports."""
    out = []
    for name in ("epochs", "batch_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            out.append(Problem(name, f"{value!r} must be an integer >= 1"))
    for name in ("patience", "sample_every"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            out.append(Problem(name, f"{value!r} must be an integer >= 0"))
    if not is_positive(config.lr):
        out.append(Problem("lr", f"{config.lr!r} must be a finite number > 0"))
    decay = config.weight_decay
    if not is_nonnegative(decay):
        out.append(Problem("weight_decay", f"{decay!r} must be >= 0"))
    for name, choices in (("schedule", SCHEDULES), ("readout", readouts)):
        if getattr(config, name) not in choices:
            out.append(Problem(name, f"{getattr(config, name)!r} must be one of {list(choices)}"))
    return out


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_positive(value) -> bool:
    """A finite number (not a bool) > 0: the check behind "must be a finite number > 0"."""
    return _number(value) and math.isfinite(value) and value > 0


def is_nonnegative(value) -> bool:
    """A finite number (not a bool) >= 0."""
    return _number(value) and math.isfinite(value) and value >= 0


Step = Callable[[torch.Tensor, torch.Tensor, bool], tuple]


def epoch_loaders(data, batch_size: int) -> tuple:
    """``(train, validation)``: the seeded training batches (augmented where the encoder
    augments event data) and the validation set in evaluation batches, as every epoch loop
    reads them."""
    augment = getattr(data.encoder, "augment", None)  # event data: training batches only
    train = make_loaders(data.dataset, batch_size, data.seed, augment)["train"]
    return train, make_loaders(data.dataset, EVAL_BATCH_SIZE, data.seed)["validation"]


def fit_epochs(
    network, data, config, algorithm: str, step: Step, callbacks=(), stop=None
) -> History:
    """Train ``network`` on ``data`` (a :class:`~workbench.experiment.TrainingData`) with
    ``step`` (see the module docstring); ``algorithm`` names the run in :class:`RunStart`.

    Returns the :class:`History`; the network keeps the weights of the best validation epoch.
    """
    train, validation = epoch_loaders(data, config.batch_size)
    optimiser = torch.optim.Adam(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    n_batches = len(train)
    if config.schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=config.epochs * n_batches, eta_min=config.lr * 0.01
        )
    else:
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda _: 1.0)
    emit(callbacks, RunStart(algorithm, config.epochs, n_batches, asdict(config)))
    checkpoint = getattr(data, "checkpoint", None)

    def restore_own(saved):
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])

    saved, history, best, best_state, stale = resume(
        checkpoint,
        network,
        data,
        train,
        config.epochs,
        {"optimiser": adam_schema(optimiser), "schedule": like(schedule.state_dict())},
        restore_own,
    )
    for epoch in range(first_epoch(saved, config), config.epochs + 1):
        started = time.perf_counter()
        total_loss = total_correct = total = skipped = 0
        interrupted = False
        for batch, (features, labels) in enumerate(train, start=1):
            if stop is not None and stop.is_set():  # set during the last batch (or before)
                interrupted = True
                break
            spikes = data.encoder(features)
            record_now = bool(config.sample_every) and batch % config.sample_every == 0
            optimiser.zero_grad(set_to_none=True)
            try:
                with interruptible():
                    loss, scores, result = step(spikes, labels, record_now)
                    loss.backward()
            except Interrupted:  # a stop inside the batch: drop it, keep the weights
                optimiser.zero_grad(set_to_none=True)
                interrupted = True
                break
            grads = [p.grad for p in network.parameters() if p.grad is not None]
            if all(torch.isfinite(g).all() for g in grads):
                if getattr(config, "max_grad_norm", 0):
                    torch.nn.utils.clip_grad_norm_(network.parameters(), config.max_grad_norm)
                optimiser.step()
            else:  # one non-finite gradient would turn every weight into nan through Adam
                skipped += 1
            schedule.step()
            correct = (scores.argmax(1) == labels).sum().item()
            total_loss += loss.item() * len(labels)
            total_correct += correct
            total += len(labels)
            emit(callbacks, BatchEnd(epoch, batch, n_batches, loss.item(), correct / len(labels)))
            if record_now:
                emit(
                    callbacks, SampleRecorded(epoch, batch, _first_sample(network, result, labels))
                )
            # the batch's outputs would otherwise live on through the next batch's forward pass
            # (and the last one through the validation pass): twice a pass's memory at the peak
            del spikes, loss, scores, result
        val = evaluate(network, validation, data.encoder, config.readout, readout_options(config))
        row = {
            **epoch_row(epoch, total_loss, total_correct, total, val),
            "lr": optimiser.param_groups[0]["lr"],
            "skipped_steps": skipped,  # batches whose gradient was not finite (no update)
            "seconds": time.perf_counter() - started,
        }
        best, best_state, stale, done = close_epoch(
            epoch,
            row,
            network,
            history,
            callbacks,
            best,
            best_state,
            stale,
            interrupted,
            stop,
            checkpoint,
            config.patience,
            lambda: {
                "network": network.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
                "random": random_state(network, data.encoder, train),
            },
        )
        if done:
            break
    if best_state is not None:
        network.load_state_dict(best_state)
    emit(callbacks, RunEnd(history, history.stopped))
    return history


def close_epoch(
    epoch: int,
    row: dict,
    network,
    history: History,
    callbacks,
    best: float,
    best_state,
    stale: int,
    interrupted: bool,
    stop,
    checkpoint,
    patience: int,
    own_state: Callable[[], dict],
) -> tuple[float, object, int, bool]:
    """What every epoch loop does once an epoch's ``row`` is measured: record it (an
    :class:`EpochEnd`), keep the best validation epoch's weights, end a run that was
    interrupted or whose ``stop`` is set (a callback may set it on this epoch's end), write a
    checkpoint when due (:func:`progress` and ``own_state()``: the loop's own state) and
    stop after ``patience`` epochs without improvement.  Returns ``(best, best_state, stale,
    done)``; ``done`` ends the loop."""
    history.append(row)
    emit(callbacks, EpochEnd(epoch, row))
    if row["val_accuracy"] > best:
        best, stale, history.best_epoch = row["val_accuracy"], 0, epoch
        best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    else:
        stale += 1
    if interrupted or (stop is not None and stop.is_set()):
        history.stopped = True
        return best, best_state, stale, True
    if checkpoint is not None and checkpoint.due(epoch):
        checkpoint.save({**progress(epoch, history, best, best_state, stale), **own_state()})
    return best, best_state, stale, bool(patience and stale >= patience)


def progress(epoch: int, history: History, best: float, best_state, stale: int) -> dict:
    """What every epoch loop's checkpoint holds beyond its own state: the epoch, the history,
    the best validation accuracy and its weights, and the epochs since it improved."""
    return {
        "epoch": epoch,
        "history": history.rows,
        "best_epoch": history.best_epoch,
        "best": best,
        "best_state": best_state,
        "stale": stale,
    }


def progress_schema(epochs: int, best_state) -> dict:
    """The form of :func:`progress` in a run of ``epochs`` epochs whose best state has the form
    ``best_state`` (see :func:`workbench.store.conform`)."""
    return {
        "epoch": Between(1, epochs),
        "history": ListOf(MapOf(str, SCALAR)),
        "best_epoch": Maybe(Between(1, epochs)),
        "best": NUMBER,
        "best_state": Maybe(best_state),
        "stale": Between(0, epochs),
    }


def adam_schema(optimiser: torch.optim.Adam) -> dict:
    """The form of ``optimiser.state_dict()`` once it has stepped: the same groups, and per
    parameter (any of them, as a parameter that never had a gradient has none) the step count
    and the moment estimates, of the parameter's dtype and shape."""
    groups = optimiser.state_dict()["param_groups"]
    step = TensorLike(
        torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32, ()
    )
    state, index = {}, 0
    for group in optimiser.param_groups:
        moments = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
        for p in group["params"]:
            state[index] = {"step": step, **{m: TensorLike(p.dtype, p.shape) for m in moments}}
            index += 1
    return {
        "state": SomeOf(state),
        "param_groups": [{**like(g), "params": Exactly(g["params"])} for g in groups],
    }


def resume(
    checkpoint, network, data, train_loader, epochs: int, own_schema: dict, restore_own
) -> tuple[dict | None, History, float, object, int]:
    """Where every epoch loop starts: fresh, or from ``checkpoint`` (None: no checkpoint),
    which is refused unless it has the form of what the loop saves (:func:`progress`, the
    network, the loop's own state of form ``own_schema``, the random state).  A checkpoint is
    restored in that order, ``restore_own(saved)`` restoring the loop's own state.  Returns
    ``(saved, history, best, best_state, stale)``; ``saved`` is None for a fresh start."""
    fresh = None, History(), -1.0, None, 0
    if checkpoint is None:
        return fresh
    weights = like(network.state_dict())
    saved = checkpoint.load(
        expected={
            **progress_schema(epochs, weights),
            "network": weights,
            **own_schema,
            "random": random_schema(network, data.encoder, train_loader),
        }
    )
    if saved is None:
        return fresh
    with checkpoint.restoring():
        network.load_state_dict(saved["network"])
        restore_own(saved)
        history, best, best_state, stale = restored_progress(saved)
        load_random_state(saved["random"], network, data.encoder, train_loader)
    return saved, history, best, best_state, stale


def epoch_row(epoch: int, loss_sum: float, correct: int, total: int, val: dict) -> dict:
    """The fields every epoch loop's history row starts with: the epoch, the training loss
    and accuracy over its ``total`` samples, and the validation pass ``val``'s figures."""
    return {
        "epoch": epoch,
        "train_loss": loss_sum / max(total, 1),
        "train_accuracy": correct / max(total, 1),
        "val_loss": val["loss"],
        "val_accuracy": val["accuracy"],
        "val_spikes_per_sample": val["spikes_per_sample"],
    }


def restored_progress(saved: dict) -> tuple[History, float, object, int]:
    """``(history, best, best_state, stale)`` from a checkpoint written with :func:`progress`
    (ValueError when its parts contradict each other)."""
    epoch, best_epoch = saved["epoch"], saved["best_epoch"]
    if len(saved["history"]) != epoch:
        raise ValueError(f"history has {len(saved['history'])} epochs; epoch is {epoch}")
    if (best_epoch is None) != (saved["best_state"] is None) or (best_epoch or 0) > epoch:
        raise ValueError(f"best_epoch {best_epoch} and best_state do not fit epoch {epoch}")
    if saved["stale"] > epoch:
        raise ValueError(f"stale is {saved['stale']}, more than epoch {epoch}")
    history = History(rows=saved["history"], best_epoch=best_epoch)
    return history, saved["best"], saved["best_state"], saved["stale"]


def first_epoch(saved: dict | None, config) -> int:
    """The epoch a run starts with: 1, or the one after a checkpoint's (past the last when the
    checkpointed run had already stopped early)."""
    if saved is None:
        return 1
    if config.patience and saved["stale"] >= config.patience:
        return config.epochs + 1
    return saved["epoch"] + 1


def _first_sample(network, result, labels):
    """The recording of the batch's first sample, as an ``xarray.Dataset``."""
    one = {
        k: {kk: vv[:, :1].detach() for kk, vv in v.items()} for k, v in result.recordings.items()
    }
    return to_dataset(
        one,
        network.spec,
        network.backend_name,
        attrs={"label": int(labels[0])},
        speedup=network.speedup,
    )
