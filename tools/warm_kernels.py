"""Compile the compiled (Numba) kernels once, into their on-disk cache.

Numba compiles a kernel the first time it runs with a given set of argument types (float32 or
float64 arrays, ...) and caches the machine code next to the source (``__pycache__``), so only
the first run on a machine pays for the compiler: about a minute for all kernels on a 2-core
machine.  ``make setup`` runs this script once after installing, so that the first training
run, the app's first Start and the test suite find every kernel compiled.

It runs a few training steps of small networks on every backend with a compiled loop (the
float simulator with recurrence and sparse and dense input, BrainScaleS-2, Loihi, Xylo and the
event backend), in float32 and float64, then prints what it took.  Safe to run again: cached
kernels load in milliseconds.

    .venv/bin/python tools/warm_kernels.py
"""

from __future__ import annotations

import sys
import time

import torch

from workbench.backends import build
from workbench.spec import NetworkSpec, Population, Projection

N_IN, N_STEPS, BATCH = 6, 30, 4


def spec(recurrent: bool, output: str = "li") -> NetworkSpec:
    params = {"tau_mem": 20.0, "tau_syn": 5.0}
    pops = [Population("hidden", 10, "lif", dict(params)), Population("output", 3, output, params)]
    projs = [Projection("input", "hidden"), Projection("hidden", "output")]
    if recurrent:
        projs.append(Projection("hidden", "hidden", recurrent=True))
    return NetworkSpec(N_IN, pops, projs, dt=0.5, n_steps=N_STEPS)


def exercise(net: torch.nn.Module, dtype: torch.dtype, counts: bool = False) -> None:
    """Train and evaluate on sparse (spike) and dense input: forward, backward, no-grad."""
    g = torch.Generator().manual_seed(0)
    for density in (0.05, 0.5):
        x = (torch.rand(N_STEPS, BATCH, N_IN, generator=g) < density).to(dtype)
        if counts:
            x = x * 2  # Xylo takes event counts
        net.train()
        out = net(x).output
        out.sum().backward()
        net.eval()
        with torch.no_grad():
            recordings = net(x, record=True).recordings
            for trace in recordings.values():  # traces computed when read (event backend)
                trace.get("v")


CASES = [
    ("float", {}, {"recurrent": True}),
    ("float", {}, {"recurrent": False}),
    ("brainscales2", {}, {"recurrent": False}),
    ("loihi", {}, {"recurrent": True}),
    ("loihi", {}, {"recurrent": False}),
    ("xylo", {}, {"recurrent": True, "output": "lif"}),
    ("event", {}, {"recurrent": False}),
    ("event", {}, {"recurrent": True}),
]


def main() -> int:
    total = time.perf_counter()
    failed = []
    for backend, options, shape in CASES:
        for dtype in (torch.float32, torch.float64):
            start = time.perf_counter()
            try:
                net = build(spec(**shape), backend, seed=0, dtype=dtype, **options)
                exercise(net, dtype, counts=backend == "xylo")
            except Exception as exc:  # noqa: BLE001 -- a warm-up never stops a set-up
                failed.append(f"{backend} {dtype}: {type(exc).__name__}: {exc}")
                continue
            print(f"  {backend:<13} {str(dtype):<14} {time.perf_counter() - start:6.1f} s")
    print(f"compiled kernels warm in {time.perf_counter() - total:.1f} s")
    for line in failed:
        print(f"warning: not warmed: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
