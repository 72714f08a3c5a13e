"""Compare the project's Loihi emulator with Lava's bit-accurate golden traces.

Runs in the PROJECT venv (no Lava needed):

    .venv/bin/python tools/golden/compare_loihi.py [--dir tests/data/golden/loihi]
        [--kernel compiled|torch] [--only CASE ...] [--json out.json] [--strict] [--quiet]

For every golden file (made by loihi_traces.py from Lava 0.10.0's PyLifModelBitAcc,
PyDenseModelBitAcc and PyDelayDenseModelBitAcc) it builds a NetworkSpec and a ChipConfig with
the mapping below, runs ``workbench.hardware.loihi.simulate`` with ``LoihiProfile()`` (Lava's
rules) and with ``LoihiProfile(u_wraps_modulo=True)`` (u modulo 2**24), and prints per case
whether spikes, u and v agree and the first step (0-based) where each diverges.  Each profile
runs twice: with the weights as given to Lava ("given", stored by the emulator) and with the
weights Lava stored after clipping and truncating them ("stored").  A third column, "ref",
runs :func:`lava_reference` -- Lava's rules re-implemented here in numpy (int32 where Lava is
int32) -- and must agree everywhere: it checks the rules this file states.

Mapping (Lava -> project):
  LIF du, dv          -> CompartmentConfig.decay_u = du + 1 (Lava's ds_offset = 1),
                         decay_v = dv (dm_offset = 0)
  LIF vth             -> threshold_mantissa = vth (compared as v > vth << 6)
  LIF bias_mant/exp   -> bias_mantissa / bias_exponent;  LIF v init -> v_init;  u starts at 0
  Dense / DelayDense  -> SynapseConfig(weights, weight_exponent=weight_exp, delays)
  Dense               -> delays 0 (Lava's Dense delivers a spike of step t at step t + 1)
  DelayDense delay d  -> delays d (Lava delivers at t + 1 + d), the project's convention
                         exactly; so a spec's recurrent projection (programmed delay + 1)
                         corresponds to Lava delay = spec delay + 1
  refractory_steps    -> 0 (Lava's bit-accurate LIF has none)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / "tests" / "data" / "golden" / "loihi"


# ------------------------------------------------------------------------------ loading
def load_case(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        raw = {k: z[k] for k in z.files}
    case = {
        "name": str(raw["case"]),
        "category": str(raw["category"]),
        "description": str(raw["description"]),
        "input": raw["input"].astype(np.int64),
        "pops": [],
        "projs": [],
    }
    for name in raw["populations"].tolist():
        pop = {"name": name}
        for key in ("size", "du", "dv", "bias_mant", "bias_exp", "vth", "v_init"):
            pop[key] = int(raw[f"pop.{name}.{key}"])
        for key in ("u", "v", "spikes"):
            pop[key] = raw[f"pop.{name}.{key}"].astype(np.int64)
        case["pops"].append(pop)
    for k in range(int(raw["n_projections"])):
        pre = f"proj.{k}."
        proj = {
            "source": str(raw[pre + "source"]),
            "target": str(raw[pre + "target"]),
            "kind": str(raw[pre + "kind"]),
            "weights": raw[pre + "weights"].astype(np.int64),
            "weights_stored": raw[pre + "weights_stored"].astype(np.int64),
            "weight_exp": int(raw[pre + "weight_exp"]),
            "num_weight_bits": int(raw[pre + "num_weight_bits"]),
            "sign_mode": int(raw[pre + "sign_mode"]),
            "sign_mode_effective": int(raw[pre + "sign_mode_effective"]),
            "a_out": raw[pre + "a_out"].astype(np.int64),
        }
        proj["delays"] = raw[pre + "delays"].astype(np.int64) if pre + "delays" in raw else None
        case["projs"].append(proj)
    return case


# ------------------------------------------------------------------------------ Lava's rules
MIXED, EXCITATORY, INHIBITORY = 1, 2, 3
SIGN_MODES = {MIXED: "mixed", EXCITATORY: "excitatory", INHIBITORY: "inhibitory"}


def lava_stored_weights(w, sign_mode: int, num_weight_bits: int = 8) -> np.ndarray:
    """lava/utils/weightutils.py clip_weights(num_bits=8) then truncate_weights."""
    w = np.asarray(w).astype(np.int32)
    if sign_mode < 0:  # not given: determine_sign_mode
        sign_mode = EXCITATORY if w.min() >= 0 else INHIBITORY if w.max() <= 0 else MIXED
    mixed = int(sign_mode == MIXED)
    if sign_mode == INHIBITORY:
        w = -w
    w = np.clip(w, -256 * mixed, 255)
    drop = 8 - num_weight_bits + mixed
    w = (w >> drop) << drop
    return -w if sign_mode == INHIBITORY else w


def _shift(x, e):
    return np.left_shift(x, e) if e > 0 else np.right_shift(x, -e)


def lava_reference(case: dict) -> dict:
    """Lava 0.10.0's bit-accurate step, re-implemented with Lava's own numpy dtypes.

    Per step t (0-based): every projection first sends the activation it computed at t - 1
    (int32 on the channel), each LIF sums its inputs in int32 and updates, then every
    projection receives the spikes of step t and computes what it sends at t + 1.
    """
    steps = case["input"].shape[0]
    pops = {p["name"]: p for p in case["pops"]}
    u = {n: np.zeros(p["size"], np.int32) for n, p in pops.items()}
    v = {n: np.full(p["size"], p["v_init"], np.int32) for n, p in pops.items()}
    out = {
        n: {k: np.zeros((steps, p["size"]), np.int64) for k in ("u", "v", "spikes")}
        for n, p in pops.items()
    }
    conns = []
    for pr in case["projs"]:
        w = lava_stored_weights(pr["weights"], pr["sign_mode"], pr["num_weight_bits"])
        depth = 1 if pr["delays"] is None else int(pr["delays"].max()) + 1
        conns.append(
            {
                "pr": pr,
                "w": w,
                "buff": np.zeros((w.shape[0], depth), np.int32),
                "a_out": np.zeros((steps, w.shape[0]), np.int64),
            }
        )
    for t in range(steps):
        a_in = {n: np.zeros(p["size"], np.int16) for n, p in pops.items()}  # PyInPort d_type
        for c in conns:
            sent = c["buff"][:, 0].astype(np.int32)  # the channel is int32 (sender's type)
            c["a_out"][t] = sent
            a_in[c["pr"]["target"]] = a_in[c["pr"]["target"]] + sent  # int16 + int32 -> int32
        spikes = {"input": case["input"][t].astype(bool)}
        for n, p in pops.items():
            # lava/proc/lif/models.py AbstractPyLifModelFixed.subthr_dynamics
            decayed = np.int64(u[n]) * (4096 - (p["du"] + 1))
            decayed = np.int32(np.sign(decayed) * np.right_shift(np.abs(decayed), 12))
            decayed += np.left_shift(a_in[n].astype(np.int32), 6)  # int32, wraps at 2**32
            wrapped = np.where(decayed > 2**23, decayed - 2**24, decayed)
            wrapped = np.where(wrapped <= -(2**23), decayed + 2**24, wrapped)
            u[n][:] = wrapped
            dv = np.int64(v[n]) * (4096 - p["dv"])
            dv = np.int32(np.sign(dv) * np.right_shift(np.abs(dv), 12))
            bias = np.int32(p["bias_mant"])
            bias = bias << p["bias_exp"] if p["bias_exp"] >= 0 else bias >> -p["bias_exp"]
            v[n][:] = np.clip(dv + u[n] + np.int32(bias), -(2**23) + 1, 2**23 - 1)
            fired = v[n] > (p["vth"] << 6)
            v[n][fired] = 0
            spikes[n] = fired
            out[n]["u"][t], out[n]["v"][t], out[n]["spikes"][t] = u[n], v[n], fired
        for c in conns:
            pr, s = c["pr"], spikes[c["pr"]["source"]]
            if pr["delays"] is None:  # PyDenseModelBitAcc
                c["buff"][:, 0] = _shift(c["w"][:, s].sum(axis=1), pr["weight_exp"])
            else:  # PyDelayDenseModelBitAcc: one shift per delay slot
                depth = c["buff"].shape[1]
                acc = np.stack(
                    [
                        np.where(pr["delays"] == k, c["w"], 0)[:, s].sum(axis=1)
                        for k in range(depth)
                    ],
                    axis=1,
                )
                c["buff"][:, 0] = 0
                c["buff"] = np.roll(c["buff"], -1, axis=1)
                c["buff"] += _shift(acc, pr["weight_exp"])
    return {"pops": out, "a_out": [c["a_out"] for c in conns]}


# ------------------------------------------------------------------------------ the emulator
def build(case: dict, stored: bool):
    import torch

    from workbench.hardware.loihi import ChipConfig, CompartmentConfig, SynapseConfig
    from workbench.spec import NetworkSpec, Population, Projection

    steps = case["input"].shape[0]
    names = [p["name"] for p in case["pops"]]
    index = {n: i for i, n in enumerate(names)}
    projections = []
    for pr in case["projs"]:
        src, tgt = pr["source"], pr["target"]
        recurrent = src != "input" and index[src] >= index[tgt]  # self or feedback
        projections.append(Projection(src, tgt, recurrent=recurrent, delay=0))
    spec = NetworkSpec(
        input_size=case["input"].shape[1],
        populations=[Population(p["name"], p["size"], "lif") for p in case["pops"]],
        projections=projections,
        n_steps=steps,
        name=case["name"],
    )
    spec.validate()
    compartments = {
        p["name"]: CompartmentConfig(
            decay_u=p["du"] + 1,
            decay_v=p["dv"],
            threshold_mantissa=p["vth"],
            bias_mantissa=p["bias_mant"],
            bias_exponent=p["bias_exp"],
            refractory_steps=0,
            v_init=p["v_init"],
        )
        for p in case["pops"]
    }
    synapses = {}
    for proj, pr in zip(projections, case["projs"]):
        w = torch.as_tensor(pr["weights_stored" if stored else "weights"], dtype=torch.long)
        d = pr["delays"] if pr["delays"] is not None else np.zeros(w.shape, np.int64)
        synapses[f"{proj.source}__{proj.target}"] = SynapseConfig(
            w,
            pr["weight_exp"],
            torch.as_tensor(d, dtype=torch.long),
            SIGN_MODES.get(pr["sign_mode"]),  # not given (-1): inferred from the weights
            pr["num_weight_bits"],
        )
    x = torch.as_tensor(case["input"], dtype=torch.float32)[:, None, :]
    return spec, ChipConfig(compartments, synapses), x


def first_divergence(got, want) -> int | None:
    """First step (0-based) where two [T, n] arrays differ, or None."""
    bad = np.nonzero(np.any(np.asarray(got) != np.asarray(want), axis=1))[0]
    return int(bad[0]) if bad.size else None


def compare(case: dict, result: dict) -> dict:
    """``{quantity: first diverging step or None}`` over all populations."""
    out = {}
    for key in ("spikes", "u", "v"):
        steps = [first_divergence(result[p["name"]][key], p[key]) for p in case["pops"]]
        steps = [s for s in steps if s is not None]
        out[key] = min(steps) if steps else None
    return out


def run_emulator(case: dict, profile, stored: bool, kernel: str) -> dict:
    from workbench.hardware.loihi import simulate

    spec, config, x = build(case, stored)
    run = simulate(spec, config, x, None, profile, kernel)
    return {
        n: {
            "u": run.u[n][:, 0].numpy(),
            "v": run.v[n][:, 0].numpy(),
            "spikes": run.spikes[n][:, 0].numpy(),
        }
        for n in spec.population_names
    }


def fmt(res) -> str:
    if isinstance(res, str):
        return res
    if all(v is None for v in res.values()):
        return "ok"
    return " ".join(f"{k[0]}{'-' if v is None else v}" for k, v in res.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--kernel", choices=("compiled", "torch"), default="compiled")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 unless every case agrees with the default profile",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)

    from workbench.hardware.loihi import LoihiProfile

    profiles = {"default": LoihiProfile(), "modulo": LoihiProfile(u_wraps_modulo=True)}
    paths = sorted(args.dir.glob("*.npz"))
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    if not paths:
        print(f"no golden files in {args.dir}", file=sys.stderr)
        return 2
    columns = [f"{p}/{w}" for p in profiles for w in ("given", "stored")] + ["ref"]
    results = {}
    if not args.quiet:
        print("first diverging step per quantity (s spikes, u, v; '-' agrees; ok: all agree)")
        print(f"{'case':28s} {'category':12s} " + " ".join(f"{c:16s}" for c in columns))
    for path in paths:
        case = load_case(path)
        row = {}
        for pname, profile in profiles.items():
            for weights in ("given", "stored"):
                try:
                    got = run_emulator(case, profile, weights == "stored", args.kernel)
                    row[f"{pname}/{weights}"] = compare(case, got)
                except Exception as exc:  # noqa: BLE001 -- report, go on
                    row[f"{pname}/{weights}"] = f"error:{type(exc).__name__}"
        ref = lava_reference(case)
        res = compare(case, ref["pops"])
        a_out_ok = all(np.array_equal(a, pr["a_out"]) for a, pr in zip(ref["a_out"], case["projs"]))
        w_ok = all(
            np.array_equal(
                lava_stored_weights(pr["weights"], pr["sign_mode"], pr["num_weight_bits"]),
                pr["weights_stored"],
            )
            for pr in case["projs"]
        )
        row["ref"] = res if (a_out_ok and w_ok) else f"a_out:{a_out_ok} w:{w_ok} {fmt(res)}"
        results[case["name"]] = {"category": case["category"], **row}
        if not args.quiet:
            print(
                f"{case['name']:28s} {case['category']:12s} "
                + " ".join(f"{fmt(row[c]):16s}" for c in columns)
            )

    def agrees(r):
        return isinstance(r, dict) and all(v is None for v in r.values())

    print(f"\n{len(results)} cases; cases where spikes, u and v all agree:")
    for c in columns:
        n_ok = sum(agrees(r[c]) for r in results.values())
        print(f"  {c:16s} {n_ok:3d} / {len(results)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.strict and not all(agrees(r["default/given"]) for r in results.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
