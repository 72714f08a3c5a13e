"""Device variation on the float simulator: Yin-Yang accuracy vs mismatch and membrane noise.

Trains the Yin-Yang reference network (``reference_config("yinyang", "surrogate", "float",
seed)``) on the plain float simulator, then evaluates it on the float backend with a variation
profile (:class:`workbench.variation.VariationProfile`, fixed-pattern mismatch drawn per
``chip_seed`` and temporal membrane noise) of ``scaled(s)`` a base profile, for each strength
``s`` and ``--chips`` chips (chip seed and noise seed ``c``), and prints the test accuracy
(mean +- sd over the chips) per strength.  The base profile: 5 % relative mismatch of tau_mem,
tau_syn, threshold and synaptic gain, 0.02 leak sigma and 0.01 membrane noise (model units;
the threshold is 1 above the leak), about BrainScaleS-2's assumed residual after calibration.

``--aware S ...`` also trains the same network with variation on (hardware-aware training:
``backend_options = {"profile": base.scaled(S), "chip_seed": 100}``, one chip, fresh noise
every batch) and evaluates it on the same chips (0..N-1, none of them the chip it trained on).

Writes ``benchmarks/results/variation.json`` and a plot ``variation.png`` beside it.

    nice .venv/bin/python benchmarks/variation.py --aware 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from workbench.backends import build
from workbench.data import make_loaders
from workbench.experiment import reference_config, train
from workbench.training import EVAL_BATCH_SIZE, evaluate
from workbench.variation import VariationProfile

BASE = VariationProfile(
    mismatch_tau_mem=0.05,
    mismatch_tau_syn=0.05,
    mismatch_leak=0.02,
    mismatch_threshold=0.05,
    mismatch_synaptic_gain=0.05,
    membrane_noise=0.01,
)
TRAINING_CHIP = 100  # the chip a hardware-aware network trains on (never one evaluated)
RESULTS = Path(__file__).parent / "results"


def figures(profile: VariationProfile) -> dict:
    return {k: v for k, v in asdict(profile).items() if k != "name"}


def trained(seed: int, epochs: int | None, aware: float | None):
    """A run of the reference config: plain float (``aware`` None) or trained with
    ``BASE.scaled(aware)`` on chip :data:`TRAINING_CHIP`."""
    config = reference_config("yinyang", "surrogate", "float", seed)
    if epochs is not None:
        config.training["epochs"] = epochs
    if aware is not None:
        config.backend_options = {
            "profile": figures(BASE.scaled(aware)),
            "chip_seed": TRAINING_CHIP,
        }
    started = time.perf_counter()
    run = train(config)
    return run, time.perf_counter() - started


def accuracies(run, strength: float, chips: list[int], loader) -> list[float]:
    """Test accuracy of ``run``'s weights on each chip at ``BASE.scaled(strength)``."""
    readout = run.config.training["readout"]
    out = []
    for chip in chips:
        net = build(
            run.spec,
            "float",
            seed=run.config.seed,
            profile=BASE.scaled(strength),
            chip_seed=chip,
            noise_seed=chip,
        )
        net.load_state_dict(run.network.state_dict())
        out.append(evaluate(net, loader, run.data.encoder, readout)["accuracy"])
    return out


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(handle, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(temporary, path)


def plot(path: Path, strengths: list[float], networks: dict) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot)")
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, result in networks.items():
        cells = [result["by_strength"][str(s)] for s in strengths]
        ax.errorbar(
            strengths,
            [100 * c["mean"] for c in cells],
            yerr=[100 * c["sd"] for c in cells],
            marker="o",
            capsize=3,
            label=label,
        )
    ax.set_xlabel("variation strength s (x base profile)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Yin-Yang on the float backend with mismatch and noise")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(handle)
    fig.savefig(temporary, dpi=120)
    os.replace(temporary, path)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the training run's seed")
    parser.add_argument("--epochs", type=int, help="default: the reference config's")
    parser.add_argument("--chips", type=int, default=3, help="chips (seeds 0..N-1) per strength")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument(
        "--aware", type=float, nargs="*", default=[], help="strengths to train at as well"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=RESULTS / "variation.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    chips = list(range(args.chips))

    networks = {}
    for aware in [None, *args.aware]:
        label = "float-trained" if aware is None else f"trained at s={aware:g}"
        run, seconds = trained(args.seed, args.epochs, aware)
        loader = make_loaders(run.data.dataset, EVAL_BATCH_SIZE, run.data.seed)["test"]
        print(
            f"{label}: {run.metrics['epochs']} epochs in {seconds:.0f} s, test accuracy as "
            f"trained {100 * run.metrics['test_accuracy']:.1f} %"
        )
        result = {
            "training_strength": aware,
            "epochs": run.metrics["epochs"],
            "train_seconds": seconds,
            "test_accuracy_as_trained": run.metrics["test_accuracy"],
            "by_strength": {},
        }
        for strength in args.strengths:
            values = accuracies(run, strength, chips, loader)
            mean, sd = mean_sd(values)
            result["by_strength"][str(strength)] = {"accuracies": values, "mean": mean, "sd": sd}
        networks[label] = result

    print(
        f"\nTest accuracy (%) on the float backend with BASE.scaled(s), mean +- sd over "
        f"{args.chips} chips (seed {args.seed})"
    )
    header = "| s | " + " | ".join(networks) + " |"
    print(header)
    print("|" + " --- |" * (len(networks) + 1))
    for strength in args.strengths:
        cells = []
        for result in networks.values():
            cell = result["by_strength"][str(strength)]
            cells.append(f"{100 * cell['mean']:.1f} +- {100 * cell['sd']:.1f}")
        print(f"| {strength:g} | " + " | ".join(cells) + " |")

    seconds = time.perf_counter() - started
    write_json(
        args.out,
        {
            "dataset": "yinyang",
            "algorithm": "surrogate",
            "seed": args.seed,
            "chips": chips,
            "strengths": args.strengths,
            "base_profile": figures(BASE),
            "training_chip": TRAINING_CHIP,
            "networks": networks,
            "seconds": seconds,
            "threads": args.threads,
        },
    )
    png = args.out.with_suffix(".png")
    drawn = plot(png, args.strengths, networks)
    print(f"\n{seconds:.0f} s; wrote {args.out}" + (f" and {png}" if drawn else ""))


if __name__ == "__main__":
    main()
