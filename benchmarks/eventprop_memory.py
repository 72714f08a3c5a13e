"""Peak memory of one training step: EventProp against BPTT, as the number of time steps grows.

The same network (Yin-Yang's 5-200-3, LIF hidden and output, tau_mem 20 ms, tau_syn 5 ms), the
same 32 input samples (latency code over 30 ms, bias spike at 0 ms) and the same loss (softmax
of negative first-spike times) are simulated over 50 ms at T = 100, 400 and 1600 steps
(dt = 0.5, 0.125 and 0.03125 ms).  BPTT is surrogate-gradient training on the float backend (it
keeps every step's state for the backward pass); EventProp runs on the event backend (it keeps
the spikes).  One step is forward, loss, backward and an Adam update.

Each (algorithm, T) is measured in a fresh process: torch is warmed up, one step is taken
(optimiser state exists), the memory the allocator keeps from it is handed back
(``malloc_trim``, else the second step reuses it unseen), then the peak resident memory of a
second step above the memory before it is read with :func:`workbench.metrics.peak_memory`,
and the step's time.

    .venv/bin/python benchmarks/eventprop_memory.py
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import time

STEPS = (100, 400, 1600)
DURATION = 50.0  # ms


def measure(algorithm: str, n_steps: int, batch: int) -> dict:
    import torch

    from workbench.backends import build
    from workbench.data import LatencyEncoder, load_dataset
    from workbench.metrics import peak_memory, warm_up_torch
    from workbench.spec import feedforward
    from workbench.training import readout_loss, readout_scores

    torch.set_num_threads(1)
    warm_up_torch()
    dt = DURATION / n_steps
    spec = feedforward(
        [5, 200, 3],
        "lif",
        "lif",
        {"tau_mem": 20.0, "tau_syn": 5.0},
        {"tau_mem": 20.0, "tau_syn": 5.0},
        dt=dt,
        n_steps=n_steps,
        weight_init={
            "input->hidden": {"weight_mean": 1.5, "weight_std": 1.5},
            "hidden->output": {"weight_mean": 0.1, "weight_std": 0.3},
        },
    )
    backend = "event" if algorithm == "eventprop" else "float"
    net = build(spec, backend, seed=0)
    dataset = load_dataset("yinyang")
    encoder = LatencyEncoder(n_steps=n_steps, dt=dt, t_early=0.0, t_late=30.0, bias_time=0.0)
    features = torch.as_tensor(dataset.train.features[:batch], dtype=torch.float32)
    labels = torch.as_tensor(dataset.train.labels[:batch])
    x = encoder(features)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        result = net(x)
        scores = readout_scores(result.output, "first_spike", dt)
        if result.first_spikes is not None:
            scores = -result.first_spikes / 5.0  # exact times (event backend)
        loss = readout_loss(scores, labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return result

    step()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand the first step's freed memory back to the OS
    with peak_memory() as peak:
        started = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - started
    hidden_spikes = None
    if backend == "event":
        hidden_spikes = float(torch.isfinite(net._last.pops["hidden"]["times"]).sum()) / batch
    return {
        "algorithm": algorithm,
        "n_steps": n_steps,
        "dt_ms": dt,
        "peak_mib": peak.megabytes,
        "step_ms": 1000 * seconds,
        "hidden_spikes_per_sample": hidden_spikes,
        "output_shape": list(result.output.shape),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--one", nargs=2, metavar=("ALGORITHM", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.batch)))
        return
    rows = []
    for n_steps in STEPS:
        for algorithm in ("bptt", "eventprop"):
            command = [sys.executable, __file__, "--one", algorithm, str(n_steps)]
            command += ["--batch", str(args.batch)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"one training step, 5-200-3 LIF, batch {args.batch}, 50 ms simulated")
    print(
        f"{'T':>6} {'dt ms':>8} {'BPTT MiB':>10} {'EventProp MiB':>14} {'BPTT ms':>9} "
        f"{'EventProp ms':>13}"
    )
    for n_steps in STEPS:
        b, e = (
            next(r for r in rows if r["n_steps"] == n_steps and r["algorithm"] == a)
            for a in ("bptt", "eventprop")
        )
        print(
            f"{n_steps:>6} {b['dt_ms']:>8.4f} {b['peak_mib']:>10.1f} {e['peak_mib']:>14.1f} "
            f"{b['step_ms']:>9.0f} {e['step_ms']:>13.0f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
