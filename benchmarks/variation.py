"""Analog effects on the float simulator: Yin-Yang accuracy vs mismatch and noise, or vs the
neurons' integration non-linearity.

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

``--effect loihi_mismatch`` deploys the float-trained network onto the Loihi emulator with its
stress mismatch (``LoihiProfile.mismatch_*``: each compartment's decays and threshold mantissa drawn
with a relative sigma of 5 % times ``s``; a digital chip has no analog mismatch, so this asks
how much margin the integer network has), over the same chips.

``--effect nonlinearity`` studies the current mirror of :mod:`workbench.nonlinearity`
instead: the profile at strength ``s`` is ``integration_nonlinearity = s`` (0: the linear,
time-domain neuron; 1: the modelled 28 nm mirror), with no mismatch or noise.  The effect is
the same on every chip, so the spread is over training seeds (``--seeds``) instead of chips.

Writes ``benchmarks/results/EFFECT.json`` and a plot ``EFFECT.png`` beside it.

    nice .venv/bin/python benchmarks/variation.py --aware 1 2
    nice .venv/bin/python benchmarks/variation.py --effect nonlinearity --seeds 0 1 2 --aware 1 2
    nice .venv/bin/python benchmarks/variation.py --effect loihi_mismatch
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
# effect: (backend it is evaluated on, x-axis label, what the plot's title calls it)
EFFECTS = {
    "variation": ("float", "variation strength s (x base profile)", "mismatch and noise"),
    "nonlinearity": (
        "float",
        "integration non-linearity s (1: the 28 nm current mirror)",
        "a current-mirror neuron",
    ),
    "loihi_mismatch": (
        "loihi",
        "mismatch strength s (x 5 % relative sigma)",
        "Loihi stress mismatch",
    ),
}
LOIHI_BASE = 0.05  # relative sigma of decay_v, decay_u and threshold mantissa at s = 1


def profile_at(effect: str, strength: float):
    """The profile of ``effect`` at ``strength`` for the effect's backend."""
    if effect == "nonlinearity":
        return VariationProfile(integration_nonlinearity=strength)
    if effect == "loihi_mismatch":
        from workbench.hardware.loihi import LoihiProfile

        sigma = LOIHI_BASE * strength
        return LoihiProfile(
            mismatch_tau_mem=sigma, mismatch_tau_syn=sigma, mismatch_threshold=sigma
        )
    return BASE.scaled(strength)


def figures(profile) -> dict:
    return {k: v for k, v in asdict(profile).items() if k != "name"}


def trained(seed: int, epochs: int | None, aware: float | None, effect: str = "variation"):
    """A run of the reference config: plain float (``aware`` None) or trained with the
    ``effect``'s profile at strength ``aware`` on chip :data:`TRAINING_CHIP`."""
    config = reference_config("yinyang", "surrogate", "float", seed)
    if epochs is not None:
        config.training["epochs"] = epochs
    if aware is not None:
        config.backend_options = {
            "profile": figures(profile_at(effect, aware)),
            "chip_seed": TRAINING_CHIP,
        }
    started = time.perf_counter()
    run = train(config)
    return run, time.perf_counter() - started


def accuracies(
    run, strength: float, chips: list[int], loader, effect: str = "variation"
) -> list[float]:
    """Test accuracy of ``run``'s weights on each chip with the ``effect`` at ``strength``,
    on the effect's backend (deployed as ``deploy`` does: a chip that calibrates its readout
    is calibrated on training samples)."""
    readout = run.config.training["readout"]
    out = []
    for chip in chips:
        net = build(
            run.spec,
            EFFECTS[effect][0],
            seed=run.config.seed,
            profile=profile_at(effect, strength),
            chip_seed=chip,
            noise_seed=chip,
        )
        net.load_state_dict(run.network.state_dict())
        if hasattr(net, "calibrate"):  # as deploy() does: the readout's range, on train data
            features = torch.as_tensor(run.data.dataset.train.features[:256], dtype=torch.float32)
            net.calibrate(run.data.encoder(features))
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


def plot(path: Path, strengths: list[float], networks: dict, effect: str = "variation") -> bool:
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
    backend, xlabel, what = EFFECTS[effect]
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Yin-Yang on the {backend} backend with {what}")
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
    parser.add_argument("--effect", choices=list(EFFECTS), default="variation")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--epochs", type=int, help="default: the reference config's")
    parser.add_argument(
        "--chips",
        type=int,
        help="chips (seeds 0..N-1) per strength (default 3; 1 for nonlinearity)",
    )
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument(
        "--aware", type=float, nargs="*", default=[], help="strengths to train at as well"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/EFFECT.json")
    args = parser.parse_args()
    effect = args.effect
    out = args.out or RESULTS / f"{effect}.json"
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    chips = list(range(args.chips or (1 if effect == "nonlinearity" else 3)))

    networks = {}
    for aware in [None, *args.aware]:
        label = "float-trained" if aware is None else f"trained at s={aware:g}"
        result = {"training_strength": aware, "runs": [], "by_strength": {}}
        values = {strength: [] for strength in args.strengths}
        for seed in args.seeds:
            run, seconds = trained(seed, args.epochs, aware, effect)
            loader = make_loaders(run.data.dataset, EVAL_BATCH_SIZE, run.data.seed)["test"]
            print(
                f"{label}, seed {seed}: {run.metrics['epochs']} epochs in {seconds:.0f} s, "
                f"test accuracy as trained {100 * run.metrics['test_accuracy']:.1f} %"
            )
            result["runs"].append(
                {
                    "seed": seed,
                    "epochs": run.metrics["epochs"],
                    "train_seconds": seconds,
                    "test_accuracy_as_trained": run.metrics["test_accuracy"],
                }
            )
            for strength in args.strengths:
                values[strength] += accuracies(run, strength, chips, loader, effect)
        for strength, accs in values.items():
            mean, sd = mean_sd(accs)
            result["by_strength"][str(strength)] = {"accuracies": accs, "mean": mean, "sd": sd}
        networks[label] = result

    spread = f"{len(chips)} chips" if len(chips) > 1 else "one chip"
    print(
        f"\nTest accuracy (%) on the {EFFECTS[effect][0]} backend, {effect} at strength s, "
        "mean +- sd over "
        f"{spread} x seeds {args.seeds}"
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
        out,
        {
            "dataset": "yinyang",
            "algorithm": "surrogate",
            "effect": effect,
            "backend": EFFECTS[effect][0],
            "seeds": args.seeds,
            "chips": chips,
            "strengths": args.strengths,
            "base_profile": figures(profile_at(effect, 1.0)),
            "training_chip": TRAINING_CHIP,
            "networks": networks,
            "seconds": seconds,
            "threads": args.threads,
        },
    )
    png = out.with_suffix(".png")
    drawn = plot(png, args.strengths, networks, effect)
    print(f"\n{seconds:.0f} s; wrote {out}" + (f" and {png}" if drawn else ""))


if __name__ == "__main__":
    main()
