"""Deploy a float-trained network to the emulated Loihi chip without retraining.

Prints the float and the Loihi test accuracy (default mapping, and with the LI readout's range
calibrated on 256 training samples), how each projection's weights changed, the integer
compartment settings (12-bit decays from dt, tau_mem, tau_syn) and the resource report.

    .venv/bin/python benchmarks/loihi_deploy.py --run /tmp/yy/seed0
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from workbench.backends import FloatNetwork
from workbench.experiment import load_run, measure
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder of a float-trained network")
    parser.add_argument("--readout", default="max_membrane")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    run = load_run(args.run)
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


if __name__ == "__main__":
    main()
