"""Reproduce a dataset's reference result: train several seeds and print a table.

Each seed runs ``workbench train --dataset NAME --seed S --out OUT/seedS`` (the reference
configuration, nothing else on the command line) in its own process, ``--workers`` at a time,
each with one torch thread; the table lists every seed's test and validation accuracy,
epochs and training wall time, then the mean and standard deviation.

    .venv/bin/python benchmarks/reference_runs.py --dataset yinyang --seeds 0 1 2 --out runs/ref

Seeds whose run folder already exists are not re-trained; their ``metrics.json`` is read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_seed(dataset: str, seed: int, out: Path, extra: list[str]) -> dict:
    folder = out / f"{dataset}-seed{seed}"
    if not (folder / "metrics.json").exists():
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [
            sys.executable,
            "-m",
            "workbench.cli",
            "train",
            "--dataset",
            dataset,
            "--seed",
            str(seed),
            "--out",
            str(folder),
            "--quiet",
            *extra,
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"seed {seed} failed: {done.stderr.strip()}")
    return {"seed": seed, **json.loads((folder / "metrics.json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="yinyang")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/reference"))
    parser.add_argument("extra", nargs="*", help="more `workbench train` options, after --")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.workers) as pool:
        rows = list(pool.map(lambda s: run_seed(args.dataset, s, args.out, args.extra), args.seeds))
    print(
        f"{args.dataset}: reference configuration, {len(rows)} seeds "
        f"({args.workers} at a time, 1 torch thread each)"
    )
    print(
        f"{'seed':>4}  {'test acc':>8}  {'val acc':>8}  {'epochs':>6}  {'best':>4}  {'train s':>8}"
    )
    for r in rows:
        print(
            f"{r['seed']:>4}  {r['test_accuracy']:8.4f}  {r['val_accuracy']:8.4f}  "
            f"{r['epochs']:>6}  {r['best_epoch']:>4}  {r['train_seconds']:8.1f}"
        )
    acc = [r["test_accuracy"] for r in rows]
    spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
    print(
        f"mean test accuracy {statistics.mean(acc):.4f} +- {spread:.4f}; "
        f"mean train time {statistics.mean(r['train_seconds'] for r in rows):.1f} s"
    )


if __name__ == "__main__":
    main()
