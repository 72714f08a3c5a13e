"""BER against Eb/N0 of the spiking decision-feedback equaliser (ternary and log-scale codes),
the MMSE linear equaliser and the MMSE DFE, per channel (issue 16, item 3).

Each (channel, Eb/N0, code) trains one SNN from the equaliser's reference configuration
(``workbench.experiment.DATASET_REFERENCES["equalizer"]``, seed fixed) through
``experiment.train``, exactly as ``workbench train --dataset equalizer --channel C --ebn0 E``
does; the run's metrics hold the SNN's test BER (its own decisions fed back) and both
baselines' on the same test symbols.  Results go to a JSON (rows are kept as they finish, so
an interrupted sweep resumes), a printed table and a PNG plot.

    nice -n 10 .venv/bin/python benchmarks/equalizer_ber.py            # the full sweep
    .venv/bin/python benchmarks/equalizer_ber.py --channels proakis_b --ebn0 10 \\
        --codes ternary --epochs 2 --train-symbols 20000 --json /tmp/eq.json --plot ""
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Operating points (dB): where each channel's baselines have bit-error rates from ~1e-1 to
# ~1e-4, measurable with the test symbols below.
OPERATING_POINTS = {
    "proakis_a": [4.0, 6.0, 8.0, 10.0],
    "proakis_b": [6.0, 8.0, 10.0, 12.0],
    "proakis_c": [10.0, 12.0, 14.0, 16.0],
}
# The log-scale code is a latency code: the authors' code gives it 30 steps of 1 ms.
CODE_STEPS = {"ternary": 10, "log_scale": 30}


def config_for(channel, ebn0, code, args):
    from workbench import experiment

    config = experiment.reference_config("equalizer", seed=args.seed)
    config.dataset_options = {
        "channel": channel,
        "ebn0": ebn0,
        "train_symbols": args.train_symbols,
        "test_symbols": args.test_symbols,
        "seed": args.seed,
    }
    config.encoder = {"name": code, **experiment.EQUALIZER_ENCODERS[code]}
    config.n_steps = CODE_STEPS[code]
    if args.epochs is not None:
        config.training["epochs"] = args.epochs
    if args.lr is not None:
        config.training["lr"] = args.lr
    return config


def run_one(channel, ebn0, code, args) -> dict:
    from workbench import experiment

    config = config_for(channel, ebn0, code, args)
    started = time.perf_counter()
    run = experiment.train(config)
    m = run.metrics
    return {
        "channel": channel,
        "ebn0": ebn0,
        "code": code,
        "test_ber": m["test_ber"],
        "linear_equalizer_ber": m["linear_equalizer_ber"],
        "dfe_ber": m["dfe_ber"],
        "test_bits": m["test_bits"],
        "test_accuracy_correct_feedback": m["test_accuracy"],
        "val_accuracy": m["val_accuracy"],
        "epochs": m["epochs"],
        "best_epoch": m["best_epoch"],
        "train_seconds": round(m["train_seconds"], 1),
        "seconds": round(time.perf_counter() - started, 1),
        "config": config.to_dict(),
    }


def table(rows) -> str:
    from workbench.equalizer import theoretical_ber

    lines = [
        "| channel | Eb/N0 dB | SNN ternary | SNN log-scale | linear (MMSE) | DFE (MMSE) | "
        "no ISI | SNN < linear |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    points = sorted({(r["channel"], r["ebn0"]) for r in rows})
    for channel, ebn0 in points:
        here = {r["code"]: r for r in rows if (r["channel"], r["ebn0"]) == (channel, ebn0)}
        any_row = next(iter(here.values()))
        snn = [here[c]["test_ber"] if c in here else None for c in ("ternary", "log_scale")]
        linear = any_row["linear_equalizer_ber"]
        better = all(s is not None and s < linear for s in snn)
        cells = [f"{v:.2e}" if v is not None else "-" for v in snn]
        lines.append(
            f"| {channel} | {ebn0:g} | {cells[0]} | {cells[1]} | {linear:.2e} | "
            f"{any_row['dfe_ber']:.2e} | {theoretical_ber(ebn0):.1e} | "
            f"{'yes' if better else 'NO'} |"
        )
    return "\n".join(lines)


def plot(rows, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.equalizer import theoretical_ber

    channels = sorted({r["channel"] for r in rows})
    fig, axes = plt.subplots(1, len(channels), figsize=(4.2 * len(channels), 3.6), squeeze=False)
    for ax, channel in zip(axes[0], channels):
        mine = [r for r in rows if r["channel"] == channel]
        points = sorted({r["ebn0"] for r in mine})
        floor = 0.5 / max(r["test_bits"] for r in mine)  # zero errors are drawn at half a bit

        def curve(values, floor=floor):
            return [max(v, floor) for v in values]

        for code, style in (("ternary", "o-"), ("log_scale", "s-")):
            xs = [r["ebn0"] for r in sorted(mine, key=lambda r: r["ebn0"]) if r["code"] == code]
            ys = [r["test_ber"] for r in sorted(mine, key=lambda r: r["ebn0"]) if r["code"] == code]
            if xs:
                ax.semilogy(xs, curve(ys), style, label=f"SNN-DFE {code.replace('_', '-')}")
        first = {e: next(r for r in mine if r["ebn0"] == e) for e in points}
        ax.semilogy(points, curve([first[e]["linear_equalizer_ber"] for e in points]), "^--",
                    label="linear MMSE")  # fmt: skip
        ax.semilogy(points, curve([first[e]["dfe_ber"] for e in points]), "v--", label="MMSE-DFE")
        fine = [points[0] + k * (points[-1] - points[0]) / 40 for k in range(41)]
        ax.semilogy(fine, [theoretical_ber(e) for e in fine], "k:", label="BPSK, no ISI")
        ax.set_ylim(floor / 2, 0.5)
        ax.set_title(channel.replace("_", " "))
        ax.set_xlabel("Eb/N0 (dB)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("bit-error rate")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.part.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", nargs="+", default=list(OPERATING_POINTS))
    parser.add_argument("--ebn0", nargs="+", type=float, help="Eb/N0 points (dB) for every channel")
    parser.add_argument("--codes", nargs="+", default=list(CODE_STEPS), choices=list(CODE_STEPS))
    parser.add_argument("--epochs", type=int, help="training epochs (default: the reference's)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the reference's)")
    parser.add_argument("--train-symbols", type=int, default=100_000)
    parser.add_argument("--test-symbols", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/equalizer_ber.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs/img/equalizer_ber.png"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    path = Path(args.json)
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    done = {(r["channel"], r["ebn0"], r["code"]) for r in rows}
    for channel in args.channels:
        for ebn0 in args.ebn0 or OPERATING_POINTS[channel]:
            for code in args.codes:
                if (channel, ebn0, code) in done:
                    continue
                row = run_one(channel, ebn0, code, args)
                rows.append(row)
                print(
                    f"{channel} {ebn0:g} dB {code}: SNN {row['test_ber']:.2e} linear "
                    f"{row['linear_equalizer_ber']:.2e} DFE {row['dfe_ber']:.2e} "
                    f"(val acc {row['val_accuracy']:.4f}, {row['seconds']:.0f} s)",
                    flush=True,
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".part")
                tmp.write_text(json.dumps({"rows": rows}, indent=1))
                os.replace(tmp, path)
    print(table(rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")
    worse = [r for r in rows if not r["test_ber"] < r["linear_equalizer_ber"]]
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
