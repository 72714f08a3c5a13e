"""The Xylo emulator against SynSense's own simulator, bit for bit.

``tests/data/golden/xylo/*.npz`` hold XyloSim's traces (Rockpool 3.1.0, xylosim 0.1.3) of 59
integer networks, each aimed at one corner of the chip's integer rules (format and cases:
``tools/golden/README.md``, Xylo section).  Every file's configuration goes to the emulator
through :meth:`Xylo.from_integers` (as ``tools/golden/compare_xylo.py`` does), and every
recorded state (hidden spike counts, both synaptic currents, membranes; output currents,
membranes, spikes) must equal XyloSim's at every step: on the integer path with either loop,
and on the training path's forward (the straight-through forward, with gradients enabled).

A live test regenerates fresh random cases with XyloSim itself (``tools/golden/
xylo_traces.py``'s case builders) where XyloSim can run: see ``test_live_xylosim_agrees``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.hardware.xylo import Xylo, XyloProfile

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden" / "xylo"
TOOLS = ROOT / "tools" / "golden"
FILES = sorted(GOLDEN.glob("*.npz"))

CONFIG_KEYS = (
    "weights_in", "weights_rec", "weights_out", "weight_shift_in", "weight_shift_rec",
    "weight_shift_out", "dash_mem", "dash_syn", "dash_syn2", "threshold", "bias",
    "dash_mem_out", "dash_syn_out", "threshold_out", "bias_out", "alias_target", "has_bias",
)  # fmt: skip
# XyloSim's recording -> the emulator's state
PAIRS = (
    ("Spikes", "n"),
    ("Isyn", "i1"),
    ("Isyn2", "i2"),
    ("Vmem", "v"),
    ("Spikes_out", "n_out"),
    ("Isyn_out", "i_out"),
    ("Vmem_out", "v_out"),
)


def load(path: Path):
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    cfg = {k: data[k] for k in CONFIG_KEYS}
    golden = {k: data[k].astype(np.int64) for k, _ in PAIRS}
    return cfg, data["input"].astype(np.int64), golden


def emulator(cfg: dict, n_inputs: int) -> Xylo:
    """The file's integers on the emulator (Xylo Audio 2, widened to the file's inputs)."""
    return Xylo.from_integers(**cfg, profile=XyloProfile.audio2(n_inputs=max(16, n_inputs)))


def run(net: Xylo, raster: np.ndarray, kernel: str, training: bool) -> dict:
    """The states of one run of ``raster [T, inputs]`` (batch 1): the integer path, or the
    training path's forward (weights that require gradients, the surrogate spikes)."""
    chip = net._quantize()
    x = torch.as_tensor(raster, dtype=torch.float32)[:, None, :]
    if training:
        grad = lambda w: w.clone().requires_grad_()  # noqa: E731
        chip = dataclasses.replace(
            chip,
            w_in=[grad(w) for w in chip.w_in],
            w_rec=[grad(w) for w in chip.w_rec],
            w_out=grad(chip.w_out),
        )
        assert net._compilable(x, chip, True)  # the compiled loop's adjoint, not a fallback
    simulate = net._simulate_torch if kernel == "torch" else net._simulate_compiled
    with torch.set_grad_enabled(training):
        states = simulate(x, chip, surrogate=training)
    if training:
        assert states["v"].requires_grad
    return {k: v.detach()[:, 0] for k, v in states.items()}


def differences(golden: dict, states: dict) -> list[str]:
    out = []
    for key, state in PAIRS:
        got = states[state]
        want = torch.as_tensor(golden[key], dtype=torch.float64)
        assert got.shape == want.shape, (key, got.shape, want.shape)
        wrong = got != want
        if bool(wrong.any()):
            t, j = (int(i) for i in torch.nonzero(wrong)[0])
            out.append(
                f"{key}: {int(wrong.sum())} values differ, first at step {t} neuron {j}: "
                f"XyloSim {int(want[t, j])}, emulator {float(got[t, j])}"
            )
    return out


def compare_files(files, kernel: str, training: bool, label: str) -> str:
    """Every file on one path; returns the tally (and fails with the first differences)."""
    traces = steps = values = 0
    failures = []
    for path in files:
        cfg, raster, golden = load(path)
        states = run(emulator(cfg, raster.shape[1]), raster, kernel, training)
        bad = differences(golden, states)
        if bad:
            failures.append(f"{path.stem}: " + "; ".join(bad))
        traces += 1
        steps += raster.shape[0]
        values += sum(golden[key].size for key, _ in PAIRS)
    tally = (
        f"{label}, {kernel} loop: {traces} XyloSim traces, {steps} steps, {values} values "
        "compared bit for bit"
    )
    print(tally)
    assert not failures, f"{tally}; {len(failures)} differ:\n" + "\n".join(failures[:10])
    return tally


def test_the_golden_set_is_complete():
    assert len(FILES) == 59, [p.name for p in FILES]
    families = {p.stem.split("_", 1)[1].rsplit("_", 1)[0] for p in FILES}
    assert {"mixed_sign", "alias", "leak_wrap", "dash0_mem", "syn2", "mix"} <= families


@pytest.mark.parametrize("kernel", ["torch", "compiled"])
def test_integer_path_equals_xylosim(kernel):
    compare_files(FILES, kernel, training=False, label="integer path")


@pytest.mark.parametrize("kernel", ["torch", "compiled"])
def test_training_forward_equals_xylosim(kernel):
    """The straight-through forward computes the chip's integers too (aliases included)."""
    compare_files(FILES, kernel, training=True, label="training forward")


def test_integer_run_and_configuration_round_trip():
    """The public path: ``integer_run`` of a golden case, and the network rebuilt from its
    own ``configuration()`` runs the same integers."""
    cfg, raster, golden = load(GOLDEN / "48_alias_0.npz")
    net = emulator(cfg, raster.shape[1])
    x = torch.as_tensor(raster, dtype=torch.float32)[:, None, :]
    states = net.integer_run(x)
    assert torch.equal(states["hidden"]["spikes"][:, 0], torch.as_tensor(golden["Spikes"]))
    assert torch.equal(states["hidden"]["v"][:, 0], torch.as_tensor(golden["Vmem"]))
    assert torch.equal(states["output"]["v"][:, 0], torch.as_tensor(golden["Vmem_out"]))
    config = net.configuration()
    assert config.alias_target == [int(a) for a in cfg["alias_target"]]
    again = Xylo.from_configuration(config, profile=net.profile).integer_run(x)
    for name, pop in states.items():
        for key, value in pop.items():
            assert torch.equal(again[name][key], value), (name, key)


# --------------------------------------------------------------------------------------------
# Live: fresh random cases from XyloSim itself

XYLOSIM_ENV = "WORKBENCH_XYLOSIM_PYTHON"


def _xylosim_python() -> str | None:
    if os.environ.get(XYLOSIM_ENV):
        return os.environ[XYLOSIM_ENV]
    found = all(importlib.util.find_spec(m) is not None for m in ("xylosim", "rockpool"))
    return sys.executable if found else None


_DRIVER = """
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[1])
import xylo_traces as xt
out, seed, count = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
xylo_sim, _ = xt.import_xylosim()
pick = np.random.default_rng(seed)
for i in range(count):
    family, builder, _ = xt.FAMILIES[int(pick.integers(len(xt.FAMILIES)))]
    rng = np.random.default_rng([seed, i])
    case = xt.Case(rng, n_in=int(rng.choice([16, 20])), n=int(rng.choice([30, 32])),
                   m=int(rng.integers(5, 9)), steps=int(rng.integers(100, 301)))
    builder(case, int(pick.integers(0, 4)))
    cfg, raster = case.config(), case.raster.astype(np.uint8)
    rec = xt.run_xylosim(xylo_sim, cfg, raster)
    meta = json.dumps({"family": family, "seed": [seed, i], "versions": xt.versions()})
    np.savez_compressed(out / f"{i:02d}_{family}.npz", **cfg, input=raster, meta=np.array(meta),
                        **{k: v for k, v in rec.items()})
"""


@pytest.mark.skipif(
    _xylosim_python() is None,
    reason=(
        "XyloSim is not importable here: install rockpool==3.1.0 and xylosim==0.1.3 "
        "(tools/golden/README.md, Xylo section), or set WORKBENCH_XYLOSIM_PYTHON to a Python "
        "that has them, e.g. WORKBENCH_XYLOSIM_PYTHON=/work/vendor/xylo-venv/bin/python"
    ),
)
def test_live_xylosim_agrees(tmp_path):
    """A few fresh random cases (random families of ``xylo_traces.py``, random seed; set
    WORKBENCH_XYLOSIM_SEED to repeat one) run on XyloSim in a subprocess, then compared with
    both loops as the golden files are."""
    seed = int(os.environ.get("WORKBENCH_XYLOSIM_SEED", random.SystemRandom().getrandbits(32)))
    count = 4
    done = subprocess.run(
        [_xylosim_python(), "-c", _DRIVER, str(TOOLS), str(tmp_path), str(seed), str(count)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"seed {seed}: XyloSim run failed\n{done.stderr[-3000:]}"
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == count, files
    families = [json.loads(str(np.load(f)["meta"]))["family"] for f in files]
    for kernel in ("torch", "compiled"):
        compare_files(files, kernel, training=False, label=f"live XyloSim, seed {seed} {families}")
