"""BrainScaleS-2 on Yin-Yang: hardware-in-the-loop training vs deploying a float network, and
accuracy vs mismatch magnitude.

Takes run folders that ``workbench train`` wrote (``--float-runs`` trained on the float
backend, ``--hil-runs`` trained on ``--backend brainscales2``) and prints three tables:

1. each run's test accuracy as trained (HIL runs: on their own emulated chip);
2. each float run deployed without retraining onto the default chip (chip seed 0..N-1), after
   the readout's gain is calibrated;
3. test accuracy vs mismatch magnitude (every mismatch sigma of the profile times a factor;
   temporal noise kept at its default) for the float runs deployed, and for the HIL runs moved
   to other chips of that magnitude (a HIL-trained network is tuned to its own chip).

    .venv/bin/python benchmarks/brainscales2_yinyang.py --float-runs runs/ref/yinyang-seed* \
        --hil-runs runs/ref-bss2/yinyang-seed*
"""

from __future__ import annotations

import argparse
import statistics

import torch

from workbench.experiment import load_run, measure
from workbench.hardware.base import deploy
from workbench.hardware.brainscales2 import BrainScaleS2Profile


def mean_std(values):
    values = list(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):5.1f} +- {100 * spread:3.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--float-runs", nargs="+", default=[])
    parser.add_argument("--hil-runs", nargs="+", default=[])
    parser.add_argument("--chips", type=int, default=3, help="emulated chips per entry")
    parser.add_argument("--factors", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    floats = [load_run(p) for p in args.float_runs]
    hils = [load_run(p) for p in args.hil_runs]

    print("1. As trained (test accuracy, %)")
    for label, runs in (("float", floats), ("brainscales2 (HIL)", hils)):
        for run in runs:
            print(
                f"   {label:20s} seed {run.config.seed}: "
                f"{100 * run.metrics['test_accuracy']:.1f}  "
                f"({run.metrics['epochs']} epochs, {run.metrics['train_seconds']:.0f} s)"
            )
        if runs:
            print(f"   {label:20s} mean: {mean_std(r.metrics['test_accuracy'] for r in runs)}")

    print(f"\n2. Float networks deployed without retraining (default chip, {args.chips} chips)")
    for run in floats:
        after = [
            deploy(run.network, "brainscales2", data=run.data, chip_seed=c).accuracy_after
            for c in range(args.chips)
        ]
        print(
            f"   seed {run.config.seed}: float {100 * run.metrics['test_accuracy']:.1f} -> "
            f"chip {mean_std(after)}"
        )

    print(
        "\n3. Test accuracy (%) vs mismatch magnitude (x the default sigmas), "
        f"mean +- std over runs x {args.chips} chips"
    )
    print(f"   {'factor':>6}  {'float deployed':>16}  {'HIL, other chips':>16}")
    base = BrainScaleS2Profile()
    for factor in args.factors:
        profile = base.scaled(factor)
        cells = []
        for runs, first_chip in ((floats, 0), (hils, 100)):
            acc = []
            for run in runs:
                for c in range(first_chip, first_chip + args.chips):
                    chip = deploy(
                        run.network,
                        "brainscales2",
                        profile=profile,
                        chip_seed=c,
                        data=run.data if runs is floats else None,
                    )
                    if runs is hils:  # keep the readout gain the HIL run learned with
                        chip.network.readout_gain = 1.0
                    acc.append(measure(chip.network, run.data, "max_membrane")["test_accuracy"])
            cells.append(mean_std(acc) if acc else "-")
        print(f"   {factor:6.1f}  {cells[0]:>16}  {cells[1]:>16}")


if __name__ == "__main__":
    main()
