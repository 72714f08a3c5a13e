"""Robustness of a trained SNN on a non-ideal memristive crossbar (after Bhattacharjee et al.).

Bhattacharjee, Kim, Moitra and Panda (2022, "Examining the robustness of spiking neural
networks on non-ideal memristive crossbars", ISLPED) deploy trained SNNs on crossbars with
device and circuit non-idealities and find that the repeated analog reads over many time steps
accumulate error, so that SNNs with fewer time steps fare better on the crossbar.  This script
does the same study, small, for a float-trained Yin-Yang network (a run folder), deployed
without retraining on :class:`workbench.hardware.crossbar.Crossbar`, and prints tables of
test accuracy (mean and standard deviation over ``--chip-seeds`` emulated chips):

1. **vs number of time steps.**  The spec is rebuilt with ``n_steps = T`` and
   ``dt = (original duration) / T``, so the run keeps its duration in ms and the encoder keeps
   its spike times in ms (``t_early``, ``t_late``, the bias spike): the encoder's window spans
   proportionally fewer steps (T >= 11 keeps dt below tau_syn = 5 ms, which the spec
   requires).  The neuron propagators are exact for any ``dt``, so the float
   network changes only by the rounding of spike times to coarser steps (its column shows
   that); the chip columns add the crossbar's reads, one per step.  Unlike the paper, the
   network is not retrained for each T.  Two kinds of read noise behave differently here:
   device read noise (relative to the conductance, only where an input spike drives a row)
   adds noise per spike, and the latency code sends the same spikes at every T, so its cost
   hardly depends on T; additive output noise (every column at every step, a synchronous
   readout) accumulates with the number of reads, which is the paper's mechanism, and there
   fewer time steps do better even though the float network does worse.
2. **vs read noise** (relative sigma per device and read), every other non-ideality off;
3. **vs stuck-at fault rate** (half stuck on, half stuck off), every other non-ideality off;
4. **vs programming-noise scale** (1 = the PCM fit), every other non-ideality off;
5. **vs time since programming** (PCM drift with its device-to-device spread), with and without
   global drift compensation, every other non-ideality off;
6. **vs ADC resolution and range**, deterministic (one chip).

"Default chip" is :class:`~workbench.hardware.crossbar.CrossbarProfile` as it stands.

    .venv/bin/python benchmarks/crossbar_robustness.py --run /tmp/yy/seed0

Runs in about 2-3 minutes on one core (``--chip-seeds 3``, the full 1000-sample test split).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time

import torch

from workbench.data import make_loaders
from workbench.experiment import load_run, make_run_encoder
from workbench.hardware.crossbar import IDEAL, Crossbar
from workbench.training import EVAL_BATCH_SIZE, evaluate

READOUT = "max_membrane"


class Study:
    def __init__(self, run_dir: str, chip_seeds: int):
        self.run = load_run(run_dir)
        self.chip_seeds = list(range(chip_seeds))
        self.loader = make_loaders(self.run.data.dataset, EVAL_BATCH_SIZE, self.run.data.seed)[
            "test"
        ]
        self.state = self.run.network.state_dict()
        self.evaluations = 0

    def setting(self, n_steps: int | None = None):
        """The spec and encoder for ``n_steps`` (same duration in ms, coarser/finer steps)."""
        spec, config = self.run.spec, self.run.config
        if n_steps is None or n_steps == spec.n_steps:
            return spec, self.run.data.encoder
        dt = spec.dt * spec.n_steps / n_steps
        spec = dataclasses.replace(spec, n_steps=n_steps, dt=dt)
        config = copy.deepcopy(config)
        config.n_steps, config.dt = n_steps, dt
        return spec, make_run_encoder(config)

    def accuracy(self, net, encoder) -> float:
        self.evaluations += 1
        return evaluate(net, self.loader, encoder, READOUT)["accuracy"]

    def float_accuracy(self, n_steps: int | None = None) -> float:
        spec, encoder = self.setting(n_steps)
        net = type(self.run.network)(spec, seed=self.run.config.seed)
        net.load_state_dict(self.state)
        return self.accuracy(net, encoder)

    def chip_accuracy(self, profile: dict, n_steps=None, seeds=None, **options) -> list[float]:
        spec, encoder = self.setting(n_steps)
        out = []
        for chip_seed in self.chip_seeds if seeds is None else seeds:
            net = Crossbar(spec, profile=profile, chip_seed=chip_seed, **options)
            net.load_state_dict(self.state)
            out.append(self.accuracy(net, encoder))
        return out


def cell(values) -> str:
    if isinstance(values, float):
        return f"{100 * values:.1f}"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    sys.stdout.flush()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="run folder of a float-trained network")
    parser.add_argument("--chip-seeds", type=int, default=3, help="emulated chips per cell")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    study = Study(args.run, args.chip_seeds)
    spec = study.run.spec
    print(
        f"run {args.run}: {spec.name}, {spec.n_steps} steps of {spec.dt} ms, "
        f"float test accuracy {100 * study.float_accuracy():.1f} %; accuracy in % on the "
        f"{len(study.loader.dataset)}-sample test split, mean ± std over "
        f"{len(study.chip_seeds)} chip seeds"
    )

    duration = spec.n_steps * spec.dt
    rows = []
    for n_steps in (100, 50, 25, 15):
        rows.append(
            [
                str(n_steps),
                f"{duration / n_steps:g}",
                cell(study.float_accuracy(n_steps)),
                cell(study.chip_accuracy({}, n_steps)),
                cell(study.chip_accuracy({**IDEAL, "read_noise": 0.1}, n_steps)),
                cell(study.chip_accuracy({**IDEAL, "output_noise": 0.02}, n_steps)),
                cell(study.chip_accuracy({**IDEAL, "output_noise": 0.06}, n_steps)),
            ]
        )
    table(
        "Test accuracy vs number of time steps (same duration, dt = duration / T)",
        [
            "T",
            "dt (ms)",
            "float",
            "default chip",
            "read noise 0.1 only",
            "output noise 0.02 only",
            "output noise 0.06 only",
        ],
        rows,
    )

    rows = [
        [f"{sigma:g}", cell(study.chip_accuracy({**IDEAL, "read_noise": sigma}))]
        for sigma in (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)
    ]
    table("Test accuracy vs read noise (T = 100, all else ideal)", ["sigma", "accuracy"], rows)

    rows = []
    for rate in (0.0, 0.002, 0.01, 0.02, 0.05, 0.1):
        faults = {**IDEAL, "stuck_on_rate": rate / 2, "stuck_off_rate": rate / 2}
        rows.append([f"{100 * rate:g}", cell(study.chip_accuracy(faults))])
    table(
        "Test accuracy vs stuck-at fault rate (half on, half off; all else ideal)",
        ["faulty devices (%)", "accuracy"],
        rows,
    )

    rows = [
        [f"{scale:g}", cell(study.chip_accuracy({**IDEAL, "programming_noise_scale": scale}))]
        for scale in (0.25, 0.5, 1.0, 2.0)
    ]
    table(
        "Test accuracy vs programming noise (x the PCM fit; all else ideal)",
        ["scale", "accuracy"],
        rows,
    )

    rows = []
    for label, t in (("20 s", 20.0), ("1 hour", 3600.0), ("1 day", 86400.0), ("1 year", 3.15e7)):
        rows.append(
            [
                label,
                cell(study.chip_accuracy(IDEAL, t_inference=t, drift_compensation=False)),
                cell(study.chip_accuracy(IDEAL, t_inference=t, drift_compensation=True)),
            ]
        )
    table(
        "Test accuracy vs time since programming (PCM drift; all else ideal)",
        ["t", "uncompensated", "global drift compensation"],
        rows,
    )

    rows = []
    for bits in (4, 6, 8, 10):
        row = [str(bits)]
        for full_scale in (2.0, 4.0, 12.0):
            profile = {**IDEAL, "adc_bits": bits, "adc_range": full_scale}
            row.append(cell(study.chip_accuracy(profile, seeds=[0])))
        rows.append(row)
    table(
        "Test accuracy vs ADC bits and range (full-scale device reads; deterministic)",
        ["ADC bits", "range 2", "range 4 (default)", "range 12"],
        rows,
    )
    print(
        f"\n{study.evaluations} evaluations in {time.perf_counter() - start:.0f} s "
        f"({args.threads} thread(s))"
    )


if __name__ == "__main__":
    main()
