"""Compare the project's Xylo emulator with the golden XyloSim traces.

Runs in the project's environment (no vendor package needed)::

    .venv/bin/python tools/golden/compare_xylo.py [--dir tests/data/golden/xylo] [--kernel both]
        [--details] [--json FILE]

For every golden file it builds the file's integer configuration in the emulator's integer
path and runs the file's input raster, then prints, per case, how many steps and entries agree
(hidden spikes, Isyn, Isyn2, Vmem; output spikes, Isyn, Vmem) and the first step of
divergence.  Nothing in the emulator is changed.

The file's integer configuration goes to the emulator through ``Xylo.from_integers`` (the
arrays as XyloSim takes them, aliases included), with ``XyloProfile.audio2(n_inputs=...)``
widened to the file's 16 or 20 inputs.  It then calls ``Xylo._simulate_torch`` (the reference
loop) and ``Xylo._simulate_compiled`` (the Numba loop) with ``surrogate=False``, as
``integer_run`` does.

Each case is also run on ``xylo_reference.py`` (a NumPy model of xylosim's C++ rules) with the
chip's rules (must equal the golden file) and with rule variants, to say which rule the
emulator's divergence comes from: ``order=sum`` (saturate the step's summed input once),
``leak=wide`` (no int16 wrap of the leak), ``aliases=off``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import xylo_reference as ref  # noqa: E402

ROOT = HERE.parent.parent
DEFAULT_DIR = ROOT / "tests" / "data" / "golden" / "xylo"

# golden key -> (emulator state key, label)
PAIRS = [
    ("Spikes", "n", "spk"),
    ("Isyn", "i1", "isyn"),
    ("Isyn2", "i2", "isyn2"),
    ("Vmem", "v", "vmem"),
    ("Spikes_out", "n_out", "o_spk"),
    ("Isyn_out", "i_out", "o_isyn"),
    ("Vmem_out", "v_out", "o_vmem"),
]


def load(path: Path) -> tuple[dict, np.ndarray, dict, dict]:
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    meta = json.loads(str(data.pop("meta")))
    cfg = {k: data[k] for k in ref.CONFIG_KEYS}
    golden = {k: data[k].astype(np.int64) for k in ref.RECORD_KEYS}
    return cfg, data["input"], golden, meta


def build_emulator(cfg: dict, n_in: int):
    """A ``Xylo`` running the file's integers (``Xylo.from_integers``, the emulator's public
    way in, which the golden tests use too) and its ``_Chip``."""
    from workbench.hardware.xylo import Xylo, XyloProfile

    profile = XyloProfile.audio2(n_inputs=max(16, n_in))
    net = Xylo.from_integers(**cfg, profile=profile)
    return net, net._quantize()


def run_emulator(net, chip, raster: np.ndarray, kernel: str) -> dict:
    x = torch.as_tensor(raster.astype(np.float32))[:, None, :]  # [T, batch 1, inputs]
    with torch.no_grad():
        if kernel == "torch":
            states = net._simulate_torch(x, chip, surrogate=False)
        else:
            states = net._simulate_compiled(x, chip, surrogate=False)
    return {k: v[:, 0].round().to(torch.int64).numpy() for k, v in states.items()}


def first_divergence(golden: dict, emu: dict):
    """(step, label, neuron, golden value, emulator value) of the earliest difference."""
    best = None
    for gk, ek, label in PAIRS:
        diff = golden[gk] != emu[ek]
        if diff.any():
            t, j = np.argwhere(diff)[0]
            if best is None or t < best[0]:
                best = (int(t), label, int(j), int(golden[gk][t, j]), int(emu[ek][t, j]))
    return best


def summarise(golden: dict, emu: dict) -> dict:
    n_steps = golden["Vmem"].shape[0]
    step_ok = np.ones(n_steps, bool)
    per = {}
    for gk, ek, label in PAIRS:
        eq = golden[gk] == emu[ek]
        step_ok &= eq.all(1)
        per[label] = (float(eq.mean()), int(eq.all(0).sum()), eq.shape[1])
    return {
        "steps_equal": int(step_ok.sum()),
        "n_steps": n_steps,
        "equal": bool(step_ok.all()),
        "fraction_equal": {k: v[0] for k, v in per.items()},
        "neurons_equal_all_steps": {k: f"{v[1]}/{v[2]}" for k, v in per.items()},
        "first": first_divergence(golden, emu),
    }


def same(a: dict, b: dict, keys=ref.RECORD_KEYS) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in keys)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--kernel", choices=("torch", "compiled", "both"), default="both")
    ap.add_argument("--details", action="store_true", help="per-quantity agreement per case")
    ap.add_argument("--json", type=Path, default=None, help="write all results to this file")
    args = ap.parse_args(argv)
    files = sorted(args.dir.glob("*.npz"))
    if not files:
        print(f"no golden files in {args.dir}")
        return 1
    kernels = ("torch", "compiled") if args.kernel == "both" else (args.kernel,)
    results, n_equal, model_bad, kernel_split = [], 0, [], []
    cause_counts: dict[str, int] = {}
    header = (f"{'case':<24} {'T':>4} {'steps=':>7} {'spk%':>6} {'isyn%':>6} {'isyn2%':>6} "
              f"{'vmem%':>6} {'o_spk%':>6} {'o_isyn%':>7} {'o_vmem%':>7}  first divergence "
              "(step quantity[neuron] golden/emulator)  cause")  # fmt: skip
    print(header)
    for path in files:
        cfg, raster, golden, meta = load(path)
        n_in = raster.shape[1]
        # The NumPy model of the chip must reproduce the file (checks the loader too).
        model = ref.run(cfg, raster)
        if not same(model, golden):
            model_bad.append(path.stem)
        net, chip = build_emulator(cfg, n_in)
        emus = {k: run_emulator(net, chip, raster, k) for k in kernels}
        emu = emus[kernels[0]]
        if len(kernels) == 2 and not all(
            np.array_equal(emus["torch"][k], emus["compiled"][k]) for _, k, _ in PAIRS
        ):
            kernel_split.append(path.stem)
        s = summarise(golden, emu)
        # Which rules explain the emulator's result, and which the divergence.
        emu_as_ref = {gk: emu[ek] for gk, ek, _ in PAIRS}
        s["emulator_is_model"] = same(model, emu_as_ref)
        s["emulator_is_sum_wide_noalias"] = same(
            ref.run(cfg, raster, order="sum", leak="wide", aliases=False), emu_as_ref
        )
        if not s["equal"]:
            causes = []
            if not same(ref.run(cfg, raster, order="sum"), golden):
                causes.append("order")
            if not same(ref.run(cfg, raster, leak="wide"), golden):
                causes.append("leak")
            if meta["uses_aliases"] and not same(ref.run(cfg, raster, aliases=False), golden):
                causes.append("alias")
            s["causes"] = causes
        else:
            s["causes"] = []
        n_equal += s["equal"]
        for c in s["causes"]:
            cause_counts[c] = cause_counts.get(c, 0) + 1
        f = s["fraction_equal"]
        first = s["first"]
        first_txt = (
            "-" if first is None else f"t={first[0]} {first[1]}[{first[2]}] {first[3]}/{first[4]}"
        )
        print(f"{path.stem:<24} {s['n_steps']:>4} {s['steps_equal']:>7} "
              f"{100 * f['spk']:>6.1f} {100 * f['isyn']:>6.1f} {100 * f['isyn2']:>6.1f} "
              f"{100 * f['vmem']:>6.1f} {100 * f['o_spk']:>6.1f} {100 * f['o_isyn']:>7.1f} "
              f"{100 * f['o_vmem']:>7.1f}  {first_txt:<40} {'+'.join(s['causes']) or 'equal'}"
              )  # fmt: skip
        if args.details:
            print("    neurons equal at every step:", s["neurons_equal_all_steps"])
        results.append({"case": path.stem, "family": meta["family"], **s})
    print()
    print(f"{n_equal}/{len(files)} cases fully equal (every step, every neuron, every state).")
    print("cases whose divergence needs each rule (a case may need several):", cause_counts)
    explained = sum(r["emulator_is_model"] for r in results)
    print(f"emulator == NumPy chip model (xylo_reference.run) on {explained}/{len(files)} cases")
    old_rules = sum(r["emulator_is_sum_wide_noalias"] for r in results)
    print(f"emulator == model with the emulator's former rules (order=sum, leak=wide, "
          f"aliases=off) on {old_rules}/{len(files)} cases")  # fmt: skip
    if len(kernels) == 2:
        print("torch and compiled loops agree on every case" if not kernel_split
              else f"torch and compiled loops DIFFER on {kernel_split}")  # fmt: skip
    print("NumPy chip model reproduces every golden file" if not model_bad
          else f"NumPy chip model DIFFERS from golden files: {model_bad}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
