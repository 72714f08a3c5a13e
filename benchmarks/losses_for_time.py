"""Train with each loss for time (workbench.losses) beside the existing losses, both algorithms.

For each algorithm (surrogate BPTT on the float backend, EventProp on the event backend) and
each readout, the dataset's reference configuration of that algorithm with only the readout
changed (and, for a readout on spikes, the output population a spiking ``lif`` one instead of
the reference's leaky integrator), trained for ``--epochs`` epochs with one seed in this
process, one torch thread.  The table gives the test accuracy of the best validation epoch's
weights, the median seconds per epoch (training and validation, from the history) and the last
epoch's training loss (each readout's own loss: not comparable across readouts).

    nice -n 10 .venv/bin/python benchmarks/losses_for_time.py --dataset digits --epochs 3

``--only surrogate`` or ``--only eventprop`` runs one algorithm; ``--json FILE`` also writes
the rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from workbench.experiment import reference_config, train
from workbench.losses import SPIKE_READOUTS

# (readout, new?) per algorithm: the existing losses first, then the new ones
READOUTS = {
    "surrogate": [
        ("max_membrane", False),
        ("spike_count", False),
        ("first_spike", False),
        ("sum_membrane", True),
        ("sum_exp_membrane", True),
        ("van_rossum", True),
    ],
    "eventprop": [
        ("max_membrane", False),
        ("first_spike", False),
        ("sum_membrane", True),
        ("sum_exp_membrane", True),
        ("van_rossum", True),
    ],
}


def one_run(dataset: str, algorithm: str, readout: str, epochs: int, seed: int) -> dict:
    config = reference_config(dataset, algorithm, "event" if algorithm == "eventprop" else "float")
    config.seed = seed
    if readout in SPIKE_READOUTS:
        config.readout = "lif"
    config.training.update(readout=readout, epochs=epochs, sample_every=0)
    started = time.perf_counter()
    run = train(config)
    rows = run.history.rows
    return {
        "algorithm": algorithm,
        "readout": readout,
        "output": config.readout,
        "test_accuracy": run.metrics["test_accuracy"],
        "val_accuracy": run.metrics["val_accuracy"],
        "epoch_seconds": statistics.median(r["seconds"] for r in rows),
        "train_loss": rows[-1]["train_loss"],
        "wall_seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=sorted(READOUTS))
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print("| algorithm | readout (loss) | output | test acc. | s / epoch | last train loss |")
    print("| --- | --- | --- | --- | --- | --- |")
    for algorithm, readouts in READOUTS.items():
        if args.only and algorithm != args.only:
            continue
        for readout, new in readouts:
            row = one_run(args.dataset, algorithm, readout, args.epochs, args.seed)
            rows.append({**row, "new": new})
            name = f"**{readout}**" if new else readout
            print(
                f"| {algorithm} | {name} | {row['output']} | {row['test_accuracy']:.3f} | "
                f"{row['epoch_seconds']:.1f} | {row['train_loss']:.3f} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dataset": args.dataset, "epochs": args.epochs, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
