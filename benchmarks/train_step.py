"""Time one training step of a 700-256-20 CuBa LIF network here and in three peer libraries.

One step = forward over ``--steps`` time steps, MSE loss of the output spike counts against a
fixed target, backward, and an Adam update.  Every framework gets the same input (Bernoulli
spikes, 5 % density, fixed seed), the same target, the same initial weights (drawn once from
our float backend) and the same optimiser settings, and all of them are timed interleaved in
one process: each repeat runs one step of every framework, in a rotating order, so background
load hits all of them alike.  The table gives the median and the inter-quartile range of the
step times and the ratio ours / that (below 1: ours is faster).

Neuron model: tau_mem 20 ms, tau_syn 5 ms, dt 1 ms, threshold 1, reset to zero, no biases,
a fast-sigmoid (SuperSpike-like) surrogate where the library has one.  The libraries
discretise the same ODE differently (see ``NOTES``); so that every network sees the same
drive, each library's weights are the shared weights times the ratio of our PSP integral to
its own (the total membrane response to one unit input spike), and its Adam learning rate by
the same factor (Adam's step size does not follow the gradient's scale), which keeps the spike
counts and their drift over the repeats comparable.  The sanity line under the table prints
the mean output spike count per sample of each framework's first step.

Run: ``.venv/bin/python benchmarks/train_step.py`` (``--help`` for the options).  Peers are
installed from ``requirements-bench.txt``; a missing one is listed as "not installed".

``--device cuda`` puts every framework's network, input, target and optimiser on the GPU (the
input, target and weights are still drawn on the CPU, so they are the same numbers as there);
every timer is read after ``torch.cuda.synchronize()``, so a step's time includes its kernels,
not only their launch.  Ours then runs the fused loop's torch kernel (``workbench.fused``: the
Numba kernels and the sparse input projection are CPU-only) and a dense input projection.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

# SpikingJelly probes for Triton (CUDA kernels) at import; on a CPU torch that only warns.
logging.getLogger("torch._library.triton").setLevel(logging.ERROR)

FRAMEWORKS = ("ours", "snntorch", "norse", "spikingjelly")
N_IN, N_HIDDEN, N_OUT = 700, 256, 20
TAU_MEM, TAU_SYN, DT = 20.0, 5.0, 1.0  # ms
THRESHOLD = 1.0
DENSITY = 0.05  # input spike probability per input and step
LR = 1e-3
SEED = 0
SURROGATE_SCALE = 10.0  # our SuperSpike scale: 1 / (10 |v - threshold| + 1)^2
# Our float backend's default initialisation (std 1/sqrt(fan-in)) leaves both layers silent
# with 5 % input (no output spike at all up to 3x); this factor scales both weight matrices,
# the same for every framework, so that every network is active: at 5x ours fires about
# 1.5 spikes per hidden neuron and 10 output spikes per sample in 100 steps (sanity line).
WEIGHT_SCALE = 5.0

# How each framework's neuron model differs from ours (printed under the table).
NOTES = {
    "ours": "CuBa LIF, exact propagator; input reaches V one step later; reset not "
    "differentiated; fused time loop with hand-written backward",
    "snntorch": "snn.Synaptic (CuBa, alpha/beta = exp(-dt/tau)); current enters V with gain 1 "
    "in the same step; reset to zero applied on the step after a spike (reset_delay); "
    "fast_sigmoid(slope=10); one Linear per time step (documented loop)",
    "norse": "LIF module (multi-step) in SequentialState, Linear over the whole time axis; "
    "forward-Euler CuBa (alpha 0.80, beta 0.95), input reaches V the same step; gradient "
    "flows through the reset; superspike surrogate ignores alpha (width 1, Norse 1.1)",
    "spikingjelly": "SynapseFilter(tau=5) on the presynaptic spikes (it filters spikes, "
    "not currents) -> Linear -> LIFNode(tau=20, decay_input=True, detach_reset=True), "
    "multi-step mode; filter skips the decay on a spike step; SoftSign(alpha=10) surrogate "
    "(fast-sigmoid shape, 5x our peak)",
}
MODEL_TAGS = {
    "ours": "CuBa, exact",
    "snntorch": "CuBa, gain 1*",
    "norse": "CuBa, Euler*",
    "spikingjelly": "filter+LIF*",
}


# --------------------------------------------------------------------------------- helpers
def psp_integral(alpha: float, beta: float, gain: float) -> float:
    """Sum over time of V after one unit input: ``gain / ((1 - alpha) (1 - beta))``."""
    return gain / ((1.0 - alpha) * (1.0 - beta))


def our_propagators() -> tuple[float, float, float]:
    alpha = math.exp(-DT / TAU_SYN)
    beta = math.exp(-DT / TAU_MEM)
    gain = TAU_SYN / (TAU_SYN - TAU_MEM) * (alpha - beta)
    return alpha, beta, gain


OUR_PSP = psp_integral(*our_propagators())


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA runs them asynchronously); no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_label(device: torch.device) -> str:
    """What the header and the JSON say about a device other than the CPU."""
    if device.type == "cuda":
        return f"{device}: {torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return str(device)


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


@dataclass
class Problem:
    """The shared work: input, target and initial weights."""

    x: torch.Tensor  # [T, B, 700] float32 spikes
    target: torch.Tensor  # [B, 20] target spike counts
    w1: torch.Tensor  # [hidden, 700]
    w2: torch.Tensor  # [20, hidden]

    @property
    def hidden(self) -> int:
        return self.w1.shape[0]


def make_problem(
    n_steps: int,
    batch: int,
    hidden: int = N_HIDDEN,
    density: float = DENSITY,
    device: str | torch.device = "cpu",
) -> Problem:
    """The reference problem; another ``hidden`` or ``density`` scales the input weights by
    ``sqrt(DENSITY / density)`` so the hidden layer gets the same drive (same activity).
    Everything is drawn on the CPU (the same numbers on every device), then moved to
    ``device``."""
    from workbench.backends import build

    g = torch.Generator().manual_seed(SEED)
    x = (torch.rand(n_steps, batch, N_IN, generator=g) < density).float()
    labels = torch.randint(0, N_OUT, (batch,), generator=g)
    # Rate-coded target: 10 spikes from the labelled output neuron, 1 from each other one.
    target = torch.ones(batch, N_OUT)
    target[torch.arange(batch), labels] = 10.0
    ours = build(our_spec(n_steps, hidden), "float", seed=SEED)
    drive = math.sqrt(DENSITY / density)
    w1 = ours.weights["input__hidden"].detach().clone() * WEIGHT_SCALE * drive
    w2 = ours.weights["hidden__output"].detach().clone() * WEIGHT_SCALE
    return Problem(*(t.to(device) for t in (x, target, w1, w2)))


def our_spec(n_steps: int, hidden: int = N_HIDDEN):
    from workbench.spec import NetworkSpec, Population, Projection

    params = {"tau_mem": TAU_MEM, "tau_syn": TAU_SYN}
    return NetworkSpec(
        N_IN,
        [Population("hidden", hidden, "lif", params), Population("output", N_OUT, "lif", params)],
        [Projection("input", "hidden"), Projection("hidden", "output")],
        dt=DT,
        n_steps=n_steps,
    )


def train_step_fn(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    problem: Problem,
    weight_factor: float = 1.0,
) -> Callable[[], torch.Tensor]:
    """One training step: forward, MSE of the output spike counts, backward, Adam.  The
    model moves to the problem's device first, so the optimiser's state is made there."""
    model.to(problem.x.device)
    # Adam's steps do not scale with the gradient, so weights scaled by ``weight_factor``
    # (the PSP match) get the learning rate scaled alike: the same relative updates.
    opt = torch.optim.Adam(model.parameters(), lr=LR * weight_factor)
    x, target = problem.x, problem.target

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        counts = forward(x).sum(0)  # [B, 20] spikes per output neuron
        loss = nn.functional.mse_loss(counts, target)
        loss.backward()
        opt.step()
        return counts.detach()

    return step


def _linear(n_in: int, n_out: int, weight: torch.Tensor, cls=nn.Linear, **kw) -> nn.Module:
    lin = cls(n_in, n_out, bias=False, **kw)
    with torch.no_grad():
        lin.weight.copy_(weight)
    return lin


# --------------------------------------------------------------------------------- builders
def build_ours(problem: Problem) -> Callable[[], torch.Tensor]:
    from workbench.backends import build

    net = build(our_spec(problem.x.shape[0], problem.hidden), "float", seed=SEED)
    with torch.no_grad():
        net.weights["input__hidden"].copy_(problem.w1)
        net.weights["hidden__output"].copy_(problem.w2)

    def forward(x):
        out = net(x).output
        return out

    return train_step_fn(net, forward, problem)


def build_snntorch(problem: Problem) -> Callable[[], torch.Tensor]:
    import snntorch as snn
    from snntorch import surrogate

    alpha, beta = math.exp(-DT / TAU_SYN), math.exp(-DT / TAU_MEM)
    scale = OUR_PSP / psp_integral(alpha, beta, 1.0)  # Synaptic adds I to V with gain 1

    def neuron():
        return snn.Synaptic(
            alpha=alpha,
            beta=beta,
            threshold=THRESHOLD,
            spike_grad=surrogate.fast_sigmoid(slope=SURROGATE_SCALE),
            reset_mechanism="zero",
        )

    class Net(nn.Module):  # the snnTorch tutorials' idiom: explicit state, loop over time
        def __init__(self):
            super().__init__()
            self.fc1 = _linear(N_IN, problem.hidden, problem.w1 * scale)
            self.lif1 = neuron()
            self.fc2 = _linear(problem.hidden, N_OUT, problem.w2 * scale)
            self.lif2 = neuron()

        def forward(self, x):
            syn1, mem1 = self.lif1.reset_mem()
            syn2, mem2 = self.lif2.reset_mem()
            spk2_rec = []
            for t in range(x.shape[0]):
                cur1 = self.fc1(x[t])
                spk1, syn1, mem1 = self.lif1(cur1, syn1, mem1)
                cur2 = self.fc2(spk1)
                spk2, syn2, mem2 = self.lif2(cur2, syn2, mem2)
                spk2_rec.append(spk2)
            return torch.stack(spk2_rec)

    net = Net()
    return train_step_fn(net, net, problem, scale)


def build_norse(problem: Problem) -> Callable[[], torch.Tensor]:
    import norse.torch as norse

    dt_s = DT * 1e-3  # Norse works in seconds
    # The parameters stay 0-dim CPU tensors on every device (Norse's own defaults are made so,
    # and .to() does not move a NamedTuple): PyTorch passes such tensors to CUDA kernels as
    # scalars, while GPU ones would cost a device sync per layer and step (Norse fills the
    # initial state with torch.full(..., v_leak), which reads the value back).
    p = norse.LIFParameters(
        tau_syn_inv=torch.as_tensor(1.0 / (TAU_SYN * 1e-3)),
        tau_mem_inv=torch.as_tensor(1.0 / (TAU_MEM * 1e-3)),
        v_leak=torch.as_tensor(0.0),
        v_th=torch.as_tensor(THRESHOLD),
        v_reset=torch.as_tensor(0.0),
        method="super",
        alpha=torch.as_tensor(SURROGATE_SCALE),
    )
    # Forward Euler: I <- (1 - dt/tau_syn) I, V <- (1 - dt/tau_mem) V + dt/tau_mem I.
    scale = OUR_PSP / psp_integral(1 - DT / TAU_SYN, 1 - DT / TAU_MEM, DT / TAU_MEM)
    # The multi-step LIF module loops over time internally, so each Linear runs once over the
    # whole [T, B, n] tensor: the fastest of Norse's documented ways (LIFCell in a Python loop
    # runs the Linear layers once per step).
    net = norse.SequentialState(
        _linear(N_IN, problem.hidden, problem.w1 * scale),
        norse.LIF(p, dt=dt_s),
        _linear(problem.hidden, N_OUT, problem.w2 * scale),
        norse.LIF(p, dt=dt_s),
    )

    def forward(x):
        out, _state = net(x)
        return out

    return train_step_fn(net, forward, problem, scale)


def build_spikingjelly(problem: Problem) -> Callable[[], torch.Tensor]:
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    # LIFNode(decay_input=True): V <- V + (X - V) / tau, i.e. gain 1/tau into V, same step;
    # SynapseFilter: I <- I - (1 - s) I / tau + s, i.e. alpha = 1 - 1/tau between spikes.
    scale = OUR_PSP / psp_integral(1 - DT / TAU_SYN, 1 - DT / TAU_MEM, DT / TAU_MEM)

    def lif():
        return neuron.LIFNode(
            tau=TAU_MEM / DT,
            decay_input=True,
            v_threshold=THRESHOLD,
            v_reset=0.0,
            surrogate_function=surrogate.SoftSign(alpha=SURROGATE_SCALE),
            detach_reset=True,
        )

    net = nn.Sequential(
        layer.SynapseFilter(tau=TAU_SYN / DT, learnable=False),
        _linear(N_IN, problem.hidden, problem.w1 * scale, cls=layer.Linear),
        lif(),
        layer.SynapseFilter(tau=TAU_SYN / DT, learnable=False),
        _linear(problem.hidden, N_OUT, problem.w2 * scale, cls=layer.Linear),
        lif(),
    )
    functional.set_step_mode(net, "m")  # whole [T, B, n] tensors through every layer

    def forward(x):
        functional.reset_net(net)  # clear the neurons' and filters' state from the last step
        return net(x)

    return train_step_fn(net, forward, problem, scale)


BUILDERS = {
    "ours": (build_ours, "snn-workbench"),
    "snntorch": (build_snntorch, "snntorch"),
    "norse": (build_norse, "norse"),
    "spikingjelly": (build_spikingjelly, "spikingjelly"),
}
IMPORTS = {
    "ours": "workbench",
    "snntorch": "snntorch",
    "norse": "norse.torch",
    "spikingjelly": "spikingjelly.activation_based",
}


# --------------------------------------------------------------------------------- running
@dataclass
class Result:
    name: str
    version: str = "-"
    status: str = "ok"  # "ok", "not installed", or "error: ..."
    times_ms: list[float] = field(default_factory=list)
    first_output_spikes: float | None = None  # mean output spikes per sample, first step
    step: Callable[[], torch.Tensor] | None = None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None

    @property
    def iqr_ms(self) -> float | None:
        if len(self.times_ms) < 2:
            return 0.0 if self.times_ms else None
        q = statistics.quantiles(self.times_ms, n=4, method="inclusive")
        return q[2] - q[0]


def prepare(names: list[str], problem: Problem) -> list[Result]:
    results = []
    for name in names:
        builder, dist = BUILDERS[name]
        res = Result(name, version_of(dist))
        try:
            module = importlib.import_module(IMPORTS[name])
        except ImportError as exc:
            res.status = "not installed"
            print(f"{name}: not installed ({exc})", file=sys.stderr)
            results.append(res)
            continue
        except Exception as exc:  # installed but broken: report it, run the others
            res.status = f"error: import failed: {type(exc).__name__}: {exc}"
            print(f"{name}: {res.status}", file=sys.stderr)
            results.append(res)
            continue
        if res.version == "-":  # imported from a path, not installed (PYTHONPATH=.)
            top = sys.modules.get(module.__name__.split(".")[0], module)
            res.version = str(getattr(top, "__version__", "-"))
        try:
            torch.manual_seed(SEED)
            res.step = builder(problem)
        except Exception as exc:  # a peer whose API changed must not stop the others
            res.status = f"error: {type(exc).__name__}: {exc}"
            print(f"{name}: could not build: {res.status}", file=sys.stderr)
        results.append(res)
    return results


def run(
    results: list[Result],
    warmup: int,
    repeats: int,
    batch: int,
    max_step_s: float = math.inf,
    device: str | torch.device = "cpu",
) -> None:
    """Interleaved steps; a peer whose first step takes longer than ``max_step_s`` stops
    there (listed as too slow; ours, the subject, always runs), and one that takes over
    ``max_step_s / repeats`` per step gets fewer timed repeats (at least one), so that slow
    cells of the table stay bounded.  On a GPU the device is synchronised before each timer
    is read, so a step's time covers its kernels, and no earlier step's work leaks into it."""
    device = torch.device(device)
    active = [r for r in results if r.step is not None]
    quota = {r.name: repeats for r in active}
    for k in range(warmup + repeats):
        shift = k % len(active) if active else 0
        for res in active[shift:] + active[:shift]:  # rotate who goes first
            if res.step is None or len(res.times_ms) >= quota[res.name]:
                continue
            try:
                synchronize(device)
                start = time.perf_counter()
                counts = res.step()
                synchronize(device)
                elapsed = time.perf_counter() - start
            except Exception as exc:
                res.status = f"error: {type(exc).__name__}: {exc}"
                res.step, res.times_ms = None, []
                print(f"{res.name}: step failed: {res.status}", file=sys.stderr)
                continue
            if res.first_output_spikes is None:
                res.first_output_spikes = float(counts.sum()) / batch
                if elapsed > max_step_s and res.name != "ours":
                    res.status = f"too slow: {elapsed:.0f} s per step"
                    res.step = None
                    continue
                if max_step_s < math.inf:
                    quota[res.name] = max(1, min(repeats, int(max_step_s / elapsed)))
            if k >= warmup:
                res.times_ms.append(elapsed * 1e3)


def report(results: list[Result]) -> dict:
    ours = next((r for r in results if r.name == "ours" and r.times_ms), None)
    ok = [r for r in results if r.times_ms]
    fastest = min(ok, key=lambda r: r.median_ms) if ok else None
    peers = [r for r in ok if r.name != "ours"]
    fastest_peer = min(peers, key=lambda r: r.median_ms) if peers else None

    head = f"{'framework':<13} {'version':<9} {'model':<14} {'median ms':>10} {'IQR ms':>8} "
    head += f"{'ours/that':>9}  fastest"
    print(head)
    print("-" * len(head))
    rows = []
    for r in results:
        ratio = ours.median_ms / r.median_ms if ours and r.times_ms else None
        row = {
            "framework": r.name,
            "version": r.version,
            "status": r.status,
            "model": MODEL_TAGS[r.name],
            "notes": NOTES[r.name],
            "median_ms": r.median_ms,
            "iqr_ms": r.iqr_ms,
            "ratio_ours_over_that": ratio,
            "first_step_output_spikes_per_sample": r.first_output_spikes,
            "times_ms": r.times_ms,
        }
        rows.append(row)
        if not r.times_ms:
            print(f"{r.name:<13} {r.version:<9} {MODEL_TAGS[r.name]:<14} {r.status}")
            continue
        mark = "yes" if r is fastest else ""
        ratio_s = f"{ratio:>9.2f}" if ratio is not None else f"{'-':>9}"
        print(
            f"{r.name:<13} {r.version:<9} {MODEL_TAGS[r.name]:<14} {r.median_ms:>10.1f} "
            f"{r.iqr_ms:>8.1f} {ratio_s}  {mark}"
        )
    summary = None
    if ours and fastest_peer:
        summary = ours.median_ms / fastest_peer.median_ms
        print(f"ours vs fastest peer ({fastest_peer.name}): {summary:.2f}x (<1 is faster)")
    else:
        print("ours vs fastest peer: n/a (needs ours and at least one peer)")
    print("\nsanity: mean output spikes per sample in the first step (0 = silent network)")
    for r in results:
        if r.first_output_spikes is not None:
            print(f"  {r.name:<13} {r.first_output_spikes:8.1f}")
    print("\n* model differs from ours:")
    for r in results:
        if r.name != "ours" and r.status != "not installed":
            print(f"  {r.name}: {NOTES[r.name]}")
    return {
        "results": rows,
        "ours_vs_fastest_peer": summary,
        "fastest_peer": fastest_peer.name if fastest_peer else None,
    }


# --------------------------------------------------------------------------------- scaling table
TABLE_HIDDEN = (256, 1024, 4096)
TABLE_STEPS = (100, 500, 1600)
TABLE_DENSITY = (0.01, 0.05, 0.20)


def dense_floor_ms(problem: Problem, repeats: int) -> float:
    """Median time of the dense matrix products of one training step alone: the input and
    hidden projections forward, their weight gradients and the hidden layer's input gradient
    backward (what any method that multiplies dense matrices cannot go below)."""
    n_steps, batch, _ = problem.x.shape
    device = problem.x.device
    x2 = problem.x.reshape(-1, N_IN)
    h2 = (torch.rand(n_steps * batch, problem.hidden) < 0.02).float().to(device)
    g1 = torch.randn(n_steps * batch, problem.hidden).to(device)
    g2 = torch.randn(n_steps * batch, N_OUT).to(device)

    def products():
        x2 @ problem.w1.T
        h2 @ problem.w2.T
        g1.T @ x2
        g2.T @ h2
        g2 @ problem.w2

    products()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        products()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def run_cell(hidden: int, n_steps: int, density: float, args, names: list[str]) -> dict:
    """One cell of the table: every framework in ``names``, interleaved, and the dense floor."""
    problem = make_problem(n_steps, args.batch, hidden, density, args.device)
    results = prepare(names, problem)
    run(results, args.warmup, args.repeats, args.batch, args.max_step_s, args.device)
    floor = dense_floor_ms(problem, max(1, min(args.repeats, 3)))
    return {
        "hidden": hidden,
        "steps": n_steps,
        "density": density,
        "dense_floor_ms": floor,
        "frameworks": {
            r.name: {
                "median_ms": r.median_ms,
                "status": r.status,
                "output_spikes": r.first_output_spikes,
            }
            for r in results
        },
    }


def table(args, names: list[str]) -> list[dict]:
    """The scaling table: hidden x T x input density, each cell in its own process (so one
    that runs out of memory loses only itself).  A peer predicted (from its time at a shorter T
    of the same hidden size and density) to exceed ``--max-step-s`` is not run."""
    import subprocess
    import tempfile

    cells = []
    done_before = {}
    if args.resume:  # the cells an earlier, stopped table wrote to --json
        for cell in json.load(open(args.json))["cells"]:
            done_before[(cell["hidden"], cell["steps"], cell["density"])] = cell
    print(
        f"{'hidden':>6} {'T':>5} {'dens':>5} {'ours ms':>9} {'fastest peer':>18} "
        f"{'ours/peer':>9} {'dense ms':>9} {'ours/dense':>10}  skipped or slow"
    )
    for hidden, density in ((h, d) for h in TABLE_HIDDEN for d in TABLE_DENSITY):
        previous: dict | None = None
        for n_steps in TABLE_STEPS:
            if (hidden, n_steps, density) in done_before:
                previous = done_before[(hidden, n_steps, density)]
                cells.append(previous)
                print_cell(previous)
                continue
            run_names = list(names)
            skipped = []
            if previous is not None:
                for name, r in previous["frameworks"].items():
                    t = r["median_ms"]
                    grow = n_steps / previous["steps"]
                    if name != "ours" and (t is None or t * grow / 1e3 > args.max_step_s):
                        run_names.remove(name)
                        skipped.append(name)
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                command = [
                    sys.executable,
                    __file__,
                    "--cell",
                    f"{hidden},{n_steps},{density}",
                    "--only",
                    ",".join(run_names),
                    "--batch",
                    str(args.batch),
                    "--repeats",
                    str(args.repeats),
                    "--warmup",
                    str(args.warmup),
                    "--max-step-s",
                    str(args.max_step_s),
                    "--json",
                    out.name,
                ]
                if args.threads is not None:
                    command += ["--threads", str(args.threads)]
                if args.device != "cpu":
                    command += ["--device", args.device]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"{hidden:>6} {n_steps:>5} {density:>5.0%}  failed: {done.stderr[-300:]}")
                    continue
                cell = json.load(open(out.name))
            for name in skipped:
                cell["frameworks"][name] = {"median_ms": None, "status": "skipped (predicted)"}
            cells.append(cell)
            previous = cell
            print_cell(cell)
            if args.json:  # after every cell, so a long table stopped early keeps its cells
                with open(args.json, "w") as fh:
                    json.dump({"cells": cells}, fh, indent=2)
    return cells


def print_cell(cell: dict) -> None:
    fw = cell["frameworks"]
    ours = fw.get("ours", {}).get("median_ms")
    peers = {n: r["median_ms"] for n, r in fw.items() if n != "ours" and r["median_ms"]}
    best = min(peers, key=peers.get) if peers else None
    peer_s = f"{best} {peers[best]:.1f}" if best else "-"
    ratio = f"{ours / peers[best]:.2f}" if best and ours else "-"
    floor = cell["dense_floor_ms"]
    dense = f"{ours / floor:.2f}" if ours else "-"
    notes = ", ".join(f"{n}: {r['status']}" for n, r in fw.items() if r["status"] != "ok")
    ours_s = f"{ours:.1f}" if ours else "-"
    print(
        f"{cell['hidden']:>6} {cell['steps']:>5} {cell['density']:>5.0%} {ours_s:>9} "
        f"{peer_s:>18} {ratio:>9} {floor:>9.1f} {dense:>10}  {notes}",
        flush=True,
    )


def plot_table(cells: list[dict], path: str) -> None:
    """Ours / fastest peer and ours / dense floor per cell, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for density in TABLE_DENSITY:
        for ax, key in zip(axes, ("peer", "dense")):
            xs, ys = [], []
            for c in cells:
                if c["density"] != density:
                    continue
                ours = c["frameworks"].get("ours", {}).get("median_ms")
                peers = [
                    r["median_ms"]
                    for n, r in c["frameworks"].items()
                    if n != "ours" and r["median_ms"]
                ]
                ref = min(peers) if key == "peer" and peers else None
                ref = c["dense_floor_ms"] if key == "dense" else ref
                if ours and ref:
                    xs.append(f"{c['hidden']}/{c['steps']}")
                    ys.append(ours / ref)
            ax.plot(xs, ys, "o-", label=f"input density {density:.0%}")
    axes[0].set_title("ours / fastest peer (below 1: ours faster)")
    axes[1].set_title("ours / dense matrix products alone")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("hidden / time steps")
        ax.tick_params(axis="x", rotation=45)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed steps per framework")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per framework first")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"torch threads (default: torch's, {torch.get_num_threads()} here)",
    )
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=100, help="time steps T")
    ap.add_argument(
        "--only",
        default=",".join(FRAMEWORKS),
        help=f"comma-separated subset of {','.join(FRAMEWORKS)}",
    )
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument(
        "--table",
        action="store_true",
        help="the scaling table: hidden 256/1024/4096 x T 100/500/1600 x density 1/5/20 %%",
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="with --table: keep the cells already in --json and run only the others",
    )
    ap.add_argument("--plot", metavar="PNG", help="with --table: plot the ratios")
    ap.add_argument("--replot", metavar="JSON", help="plot a table's JSON again (with --plot)")
    ap.add_argument(
        "--max-step-s",
        type=float,
        default=math.inf,
        help="drop a framework whose step takes longer (default: no limit; --table: 30)",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        help="torch device of every framework's network, input, target and optimiser "
        "(cpu, cuda, cuda:1, ...; default: cpu)",
    )
    ap.add_argument("--cell", help=argparse.SUPPRESS)  # one table cell: hidden,steps,density
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        ap.error(f"--only: {unknown or 'nothing'} not in {', '.join(FRAMEWORKS)}")
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or args.steps < 2:
        ap.error("need --repeats >= 1, --warmup >= 0, --batch >= 1, --steps >= 2")
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError) as exc:
        ap.error(f"--device: {exc}")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    where = "" if device.type == "cpu" else f", device {device_label(device)}"
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.replot:
        plot_table(json.load(open(args.replot))["cells"], args.plot)
        return 0
    if args.cell:
        hidden, n_steps, density = args.cell.split(",")
        cell = run_cell(int(hidden), int(n_steps), float(density), args, names)
        with open(args.json, "w") as fh:
            json.dump(cell, fh)
        return 0
    if args.resume and not (args.table and args.json and os.path.exists(args.json)):
        ap.error("--resume needs --table and an existing --json file")
    if args.table:
        if args.max_step_s == math.inf:
            args.max_step_s = 30.0
        print(
            f"scaling table: {N_IN}-H-{N_OUT}, batch {args.batch}, torch "
            f"{torch.get_num_threads()} threads{where}, {args.warmup} warmup + up to "
            f"{args.repeats} timed steps, at most {args.max_step_s:g} s per step\n"
        )
        cells = table(args, names)
        if args.plot:
            plot_table(cells, args.plot)
            print(f"wrote {args.plot}")
        return 0

    problem = make_problem(args.steps, args.batch, device=device)
    results = prepare(names, problem)
    print(
        f"train step: {N_IN}-{N_HIDDEN}-{N_OUT} CuBa LIF, T={args.steps}, batch={args.batch}, "
        f"input density {DENSITY:.0%}, Adam lr {LR:g}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads{where}; {args.warmup} warmup + {args.repeats} timed "
        "steps each, interleaved\n"
    )
    run(results, args.warmup, args.repeats, args.batch, device=device)
    summary = report(results)
    if args.json:
        summary["config"] = {
            "repeats": args.repeats,
            "warmup": args.warmup,
            "threads": torch.get_num_threads(),
            "batch": args.batch,
            "steps": args.steps,
            "density": DENSITY,
            "lr": LR,
            "weight_scale": WEIGHT_SCALE,
            "tau_mem_ms": TAU_MEM,
            "tau_syn_ms": TAU_SYN,
            "dt_ms": DT,
            "threshold": THRESHOLD,
            "seed": SEED,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "device": str(device),
        }
        if device.type == "cuda":
            summary["config"]["device_name"] = torch.cuda.get_device_name(device)
            summary["config"]["cuda"] = torch.version.cuda
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
