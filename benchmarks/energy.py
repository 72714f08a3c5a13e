"""Energy per inference of the Yin-Yang and digits references on every backend.

Trains each dataset's surrogate-gradient reference on the float simulator, deploys the trained
weights onto every emulated backend without retraining (``deploy()``: calibrated where the chip
has a calibration step), and prints, per dataset and backend: test accuracy, spikes and synaptic
operations per test sample, energy per test sample and the term that dominates it, and the
latency per sample where the backend models its timing (Xylo: real time; BrainScaleS-2: 1000x
accelerated; the FPGA engine: its cycles at its clock).  A backend
that cannot hold the network says why (its refusal, naming the limit).  The float row prices
the simulator's dense arithmetic on a CPU/GPU (a lower bound; ``workbench.energy``).

    .venv/bin/python benchmarks/energy.py                  # the references' own epochs
    .venv/bin/python benchmarks/energy.py --epochs 5       # quicker

Writes benchmarks/results/energy.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from workbench import experiment
from workbench.backends import available_backends
from workbench.hardware.base import deploy
from workbench.spec import SpecError

RESULTS = Path(__file__).parent / "results" / "energy.json"
DATASETS = ("yinyang", "digits")
SKIPPED = ("float", "event")  # the float row is the trained network itself; event is float too


def sizes(spec) -> str:
    return "-".join(str(n) for n in [spec.input_size, *(p.size for p in spec.populations)])


def dominant(energy: pd.DataFrame) -> str:
    row = energy.loc[energy["energy_j"].idxmax()]
    return f"{row['term']} ({100 * row['energy_j'] / energy['energy_j'].sum():.0f} %)"


def rows_for(dataset: str, seed: int, epochs: int | None) -> list[dict]:
    config = experiment.reference_config(dataset, "surrogate", "float", seed=seed)
    if epochs is not None:
        config.training["epochs"] = epochs
    start = time.perf_counter()
    run = experiment.train(config)
    m = run.metrics
    base = {"dataset": dataset, "seed": seed, "network": sizes(run.spec)}
    rows = [
        {
            **base,
            "backend": "float",
            "test_accuracy": m["test_accuracy"],
            "spikes_per_sample": m["test_spikes_per_sample"],
            "synops_per_sample": m["test_synops_per_sample"],
            "energy_per_sample_uj": m["test_energy_per_sample_uj"],
            "dominant_term": dominant(pd.DataFrame(m["test_energy"])),
            "train_seconds": time.perf_counter() - start,
        }
    ]
    readout = experiment.run_readout(config, run.spec)
    for backend in available_backends():
        if backend in SKIPPED:
            continue
        try:
            d = deploy(run.network, backend, data=run.data, readout=readout)
        except SpecError as exc:
            rows.append({**base, "backend": backend, "refused": str(exc)})
            continue
        after = experiment.measure(d.network, run.data, readout)
        rows.append(
            {
                **base,
                "backend": backend,
                "test_accuracy": d.accuracy_after,
                "spikes_per_sample": after["test_spikes_per_sample"],
                "synops_per_sample": after["test_synops_per_sample"],
                "energy_per_sample_uj": d.energy_after_uj,
                "latency_per_sample_us": after.get("test_latency_per_sample_us"),
                "dominant_term": dominant(d.energy),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the references'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    rows = []
    for dataset in args.datasets.split(","):
        rows += rows_for(dataset, args.seed, args.epochs)
    table = pd.DataFrame(rows)
    shown = [
        "dataset",
        "backend",
        "test_accuracy",
        "spikes_per_sample",
        "synops_per_sample",
        "energy_per_sample_uj",
        "latency_per_sample_us",
        "dominant_term",
    ]
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print(table[[c for c in shown if c in table]].to_string(index=False))
        if "refused" in table:
            for row in table.dropna(subset=["refused"]).itertuples():
                print(f"{row.dataset} on {row.backend}: refused: {row.refused}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
