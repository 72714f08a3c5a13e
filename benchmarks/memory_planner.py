"""The memory planner (workbench.planner) against measured runs, over a grid of T, hidden size
and algorithm (issue 17, item 8).

Each cell is planned in one fresh process (``plan_run``: a few seconds of calibration) and
trained in ``--repeats`` others (default 3), as ``workbench compare`` trains it
(``compare.run_cell``: the run's peak resident memory above its start, the data loaded
before), for one epoch of Yin-Yang with 1,000 training samples (memory does not grow with
epochs; the epoch's time is what the planner predicts).  The same run's peak differs from one
process to the next (by up to a third in the smallest cells, where a pass's tensors come from
glibc's heap and its fragmentation after training decides the peak), so the error is taken
against the median of the repeats, and their range is shown.  Prints a table; ``--json FILE``
writes every row.

    nice .venv/bin/python benchmarks/memory_planner.py --json benchmarks/results/memory_planner.json
    nice .venv/bin/python benchmarks/memory_planner.py --cells proxy:50:64 eventprop:50:512
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys

GRID = {
    "algorithm": ("surrogate", "eventprop", "proxy"),
    "n_steps": (50, 200, 800),
    "hidden": (64, 512),
}


def compare_cell(cell: dict) -> dict:
    """The grid cell as a ``workbench.compare`` cell: the algorithm's reference configuration
    on Yin-Yang (its own backend) with the cell's T (over the same 50 ms) and hidden size, one
    epoch."""
    from workbench.algorithms import get_algorithm

    return {
        "dataset": "yinyang",
        "algorithm": cell["algorithm"],
        "backend": get_algorithm(cell["algorithm"]).default_backend,
        "seed": 0,
        "epochs": 1,
        "overrides": {
            "hidden": [cell["hidden"]],
            "n_steps": cell["n_steps"],
            "dt": 50.0 / cell["n_steps"],  # 50 ms, the references' duration, at every T
            "dataset_options": {"train_size": 1000},
        },
    }


def worker(mode: str, cell: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from workbench import compare, planner

    if mode == "plan":
        plan = planner.plan_run(compare.cell_config(compare_cell(cell)))
        return {
            "predicted_mb": plan.peak_memory_mb,
            "predicted_epoch_s": plan.seconds_per_epoch,
            "calibration_s": plan.calibration_seconds,
        }
    row = compare.run_cell(compare_cell(cell))
    if row.get("error"):
        raise RuntimeError(row["error"])
    return {"measured_mb": row["peak_memory_mb"], "measured_epoch_s": row["train_seconds"]}


def run_in_process(mode: str, cell: dict) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", mode, json.dumps(cell)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument(
        "--cells",
        nargs="+",
        metavar="ALGORITHM:T:HIDDEN",
        help="only these cells of the grid (e.g. proxy:50:64), each planned and run as above",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each cell, each in a fresh process"
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, cell = args.worker
        print(json.dumps(worker(mode, json.loads(cell))))
        return
    rows = []
    print(
        "| algorithm | T | hidden | predicted MiB | measured MiB (median, range) | error "
        "| predicted s/epoch | measured s/epoch | calibration s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    grid = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    if args.cells:
        grid = []
        for text in args.cells:
            algorithm, n_steps, hidden = text.split(":")
            grid.append({"algorithm": algorithm, "n_steps": int(n_steps), "hidden": int(hidden)})
    for cell in grid:
        runs = [run_in_process("run", cell) for _ in range(max(args.repeats, 1))]
        peaks = [r["measured_mb"] for r in runs]
        row = {
            **cell,
            **run_in_process("plan", cell),
            "measured_mb": statistics.median(peaks),
            "measured_runs_mb": peaks,
            "measured_epoch_s": statistics.median(r["measured_epoch_s"] for r in runs),
        }
        row["error"] = row["predicted_mb"] / row["measured_mb"] - 1
        rows.append(row)
        print(
            f"| {row['algorithm']} | {row['n_steps']} | {row['hidden']} | "
            f"{row['predicted_mb']:.0f} | {row['measured_mb']:.0f} "
            f"({min(peaks):.0f}-{max(peaks):.0f}) | {100 * row['error']:+.0f} % | "
            f"{row['predicted_epoch_s']:.1f} | {row['measured_epoch_s']:.1f} | "
            f"{row['calibration_s']:.1f} |",
            flush=True,
        )
    worst = max(abs(r["error"]) for r in rows)
    print(f"\nworst memory error {100 * worst:.0f} % over {len(rows)} cells")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
