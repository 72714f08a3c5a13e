"""Time one training epoch of the Yin-Yang reference on each backend, and its ratio to float.

Each backend trains the same network (the dataset's reference configuration on that backend,
surrogate gradients, batch 32) for ``--batches`` batches of the training set and evaluates the
validation set once, in this process, one torch thread; the backends take turns over
``--rounds`` rounds so that background load hits them alike, and the table gives the median
seconds per (whole) epoch, extrapolated from the batches timed, and the ratio to float.

    .venv/bin/python benchmarks/backend_epochs.py [--backends float,brainscales2,loihi,xylo]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from workbench.algorithms.loop import EVAL_BATCH_SIZE, evaluate, make_loaders
from workbench.experiment import prepare, reference_config
from workbench.training import readout_loss, readout_scores


def epoch_timer(backend: str, batches: int):
    """A function timing ``batches`` training batches plus one validation pass; it returns
    seconds per whole epoch (training batches scaled to the full training set)."""
    config = reference_config("yinyang", backend=backend)
    data, spec, network, hyper = prepare(config)
    loaders = make_loaders(data.dataset, hyper.batch_size, data.seed)
    validation = make_loaders(data.dataset, EVAL_BATCH_SIZE, data.seed)["validation"]
    optimiser = torch.optim.Adam(network.parameters(), lr=hyper.lr)
    n_batches = len(loaders["train"])

    def step(features, labels):
        spikes = data.encoder(features)
        scores = readout_scores(network(spikes).output, hyper.readout, spec.dt)
        loss = readout_loss(scores, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    def timed() -> float:
        network.train()
        start = time.perf_counter()
        for k, (features, labels) in enumerate(loaders["train"]):
            if k == batches:
                break
            step(features, labels)
        train = (time.perf_counter() - start) * n_batches / min(batches, n_batches)
        start = time.perf_counter()
        evaluate(network, validation, data.encoder, hyper.readout)
        return train + time.perf_counter() - start

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="float,brainscales2,loihi,xylo")
    parser.add_argument("--batches", type=int, default=40, help="training batches timed")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = [b.strip() for b in args.backends.split(",")]
    timers = {name: epoch_timer(name, args.batches) for name in names}
    for timer in timers.values():  # warm-up: compile and load the kernels
        timer()
    seconds = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            seconds[name].append(timers[name]())
    base = statistics.median(seconds["float"]) if "float" in seconds else None
    print(
        f"Yin-Yang reference, one epoch (train {args.batches} batches scaled to the epoch + "
        f"validation), 1 thread, median of {args.rounds} rounds"
    )
    print(f"{'backend':<14} {'s/epoch':>8} {'x float':>8}")
    for name in names:
        median = statistics.median(seconds[name])
        ratio = f"{median / base:8.2f}" if base else f"{'-':>8}"
        print(f"{name:<14} {median:8.2f} {ratio}")


if __name__ == "__main__":
    main()
