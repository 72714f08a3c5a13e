"""Deploy a float-trained network to the emulated Loihi chip without retraining.

Prints the float and the Loihi test accuracy (default mapping, and with the LI readout's range
calibrated on 256 training samples), how each projection's weights changed, the integer
compartment settings (12-bit decays from dt, tau_mem, tau_syn; an alif population's AHP
compartment: its decay from tau_adapt and its jump's weight and exponent) and the resource
report.  ``--train-alif DATASET`` first trains the dataset's reference network with an alif
(AHP) hidden layer on the float simulator, then deploys that (``deploy()``: accuracy before and
after, resources).

    .venv/bin/python benchmarks/loihi_deploy.py --run /tmp/yy/seed0
    .venv/bin/python benchmarks/loihi_deploy.py --train-alif yinyang --epochs 40
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from workbench import experiment
from workbench.backends import FloatNetwork
from workbench.experiment import load_run, measure
from workbench.hardware.base import deploy
from workbench.hardware.loihi import Loihi


class FloatWithChipFormats(torch.nn.Module):
    """The float simulator run with the chip's quantised weights and 12-bit decays (but float
    arithmetic): separates the number formats' effect from the integer arithmetic's."""

    def __init__(self, chip: Loihi):
        super().__init__()
        self.chip = chip
        self.spec = chip.spec

    def forward(self, x, record=()):
        return FloatNetwork.forward(self.chip, x, record)

    def energy(self, activity):
        return FloatNetwork.energy(self.chip, activity)  # priced as the float arithmetic it is


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run folder of a float-trained network")
    source.add_argument(
        "--train-alif",
        metavar="DATASET",
        help="train DATASET's reference network with an alif hidden layer (float) first",
    )
    parser.add_argument("--epochs", type=int, help="--train-alif: epochs (default: reference)")
    parser.add_argument("--seed", type=int, default=0, help="--train-alif: seed")
    parser.add_argument("--tau-adapt", type=float, default=100.0, help="--train-alif: ms")
    parser.add_argument("--adapt-strength", type=float, default=0.2, help="--train-alif")
    parser.add_argument("--readout", default="max_membrane")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    if args.run:
        run = load_run(args.run)
    else:
        run = train_alif(args)
        deployed = deploy(run.network, "loihi", data=run.data, readout=args.readout)
        print(
            f"deploy(): test accuracy {deployed.accuracy_before:.4f} (float alif) -> "
            f"{deployed.accuracy_after:.4f} (Loihi, calibrated readout)"
        )
    spec = run.spec
    print(f"network {spec.name}: dt {spec.dt:g} ms, {spec.n_steps} steps")

    rows = []
    start = time.perf_counter()
    float_acc = measure(run.network, run.data, args.readout)["test_accuracy"]
    rows.append(("float simulator", float_acc, time.perf_counter() - start))

    chip = Loihi(spec)
    chip.load_state_dict(run.network.state_dict())
    start = time.perf_counter()
    acc = measure(chip, run.data, args.readout)["test_accuracy"]
    rows.append(("Loihi, default mapping", acc, time.perf_counter() - start))

    start = time.perf_counter()
    acc_formats = measure(FloatWithChipFormats(chip), run.data, args.readout)["test_accuracy"]
    rows.append(("float, chip weights + decays", acc_formats, time.perf_counter() - start))

    calibrated = Loihi(spec)
    calibrated.load_state_dict(run.network.state_dict())
    features = torch.as_tensor(run.data.dataset.train.features[:256], dtype=torch.float32)
    calibrated.calibrate(run.data.encoder(features))
    start = time.perf_counter()
    acc_cal = measure(calibrated, run.data, args.readout)["test_accuracy"]
    rows.append(("Loihi, calibrated readout", acc_cal, time.perf_counter() - start))

    table = pd.DataFrame(rows, columns=["backend", "test_accuracy", "eval_seconds"])
    table["change_points"] = 100 * (table["test_accuracy"] - float_acc)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print("\naccuracy (test split)")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

        config = chip.chip_config()
        comps = pd.DataFrame(
            [
                {
                    "population": name,
                    "decay_u": c.decay_u,
                    "decay_v": c.decay_v,
                    "threshold_mantissa": c.threshold_mantissa or "-",
                    "bias": c.bias,
                    "chip units per float unit": c.scale,
                    "ahp_decay": "-" if c.ahp_decay is None else c.ahp_decay,
                    "ahp_weight, exponent": "-"
                    if c.ahp_decay is None
                    else f"{c.ahp_weight}, {c.ahp_exponent}",
                }
                for name, c in config.compartments.items()
            ]
        )
        print("\ncompartments (default mapping)")
        print(comps.to_string(index=False))
        report = chip.deployment_report()
        report["weight_exponent"] = [
            config.synapses[k].weight_exponent
            for k in (p.source + "__" + p.target for p in spec.projections)
        ]
        print("\nweights on the chip")
        print(report.to_string(index=False, float_format=lambda v: f"{v:.5f}"))
        print("\nresources")
        print(Loihi.resources(spec, chip.profile).to_string(index=False))


def train_alif(args):
    """The dataset's reference configuration with an alif hidden layer, trained on the float
    simulator (prints its time)."""
    config = experiment.reference_config(args.train_alif, "surrogate", "float", seed=args.seed)
    config.neuron = "alif"
    config.neuron_params = {
        **config.neuron_params,
        "tau_adapt": args.tau_adapt,
        "adapt_strength": args.adapt_strength,
    }
    if args.epochs is not None:
        config.training["epochs"] = args.epochs
    start = time.perf_counter()
    run = experiment.train(config)
    print(
        f"trained {args.train_alif} with alif hidden neurons (tau_adapt {args.tau_adapt:g} ms, "
        f"adapt_strength {args.adapt_strength:g}), {config.training['epochs']} epochs, seed "
        f"{args.seed}: {time.perf_counter() - start:.0f} s"
    )
    return run


if __name__ == "__main__":
    main()
