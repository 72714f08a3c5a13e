"""The Loihi emulator against Lava's own bit-accurate models, bit for bit.

``tests/data/golden/loihi/`` holds traces that ``tools/golden/loihi_traces.py`` recorded from
lava-nc 0.10.0 (``PyLifModelBitAcc``, ``PyDenseModelBitAcc``, ``PyDelayDenseModelBitAcc``):
random and hand-picked integer networks with their input, and every population's ``u``,
``v`` and spikes per step.  No Lava is needed here; with ``WORKBENCH_LAVA_PYTHON`` naming a
Python that has lava-nc, the live test re-runs fresh cases on Lava itself.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from workbench.hardware.loihi import LoihiProfile

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden" / "loihi"


def _compare_tool():
    """``tools/golden/compare_loihi.py``, the one reader of the trace format."""
    spec = importlib.util.spec_from_file_location(
        "compare_loihi", ROOT / "tools" / "golden" / "compare_loihi.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _diverging(folder: Path, kernel: str) -> tuple[list, int, int]:
    """``(cases that differ, traces compared, steps compared)`` over every trace in ``folder``,
    with the weights as they were given to Lava (the emulator stores them as Lava does)."""
    tool = _compare_tool()
    paths = sorted(folder.glob("*.npz"))
    failures, steps = [], 0
    for path in paths:
        case = tool.load_case(path)
        got = tool.run_emulator(case, LoihiProfile(), stored=False, kernel=kernel)
        first = tool.compare(case, got)  # quantity -> first diverging step, or None
        if any(step is not None for step in first.values()):
            failures.append((case["name"], first))
        steps += case["input"].shape[0]
    return failures, len(paths), steps


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_every_lava_trace_is_reproduced_bit_for_bit(kernel):
    failures, traces, steps = _diverging(GOLDEN, kernel)
    print(f"Loihi ({kernel}): {traces} Lava traces, {steps} steps, u/v/spikes compared")
    assert traces >= 70
    assert not failures, f"{len(failures)} of {traces} traces differ: {failures[:5]}"


def test_the_traces_cover_the_corners_they_claim():
    """Wrapping past both 24-bit edges, saturation, odd single-sign weights, delays with a
    negative exponent: the cases that tell Lava's rules from simpler readings."""
    tool = _compare_tool()
    categories, u_max, odd, delayed_negative = set(), 0, False, False
    for path in GOLDEN.glob("*.npz"):
        case = tool.load_case(path)
        categories.add(case["category"])
        u_max = max(u_max, *(int(abs(p["u"]).max()) for p in case["pops"]))
        for pr in case["projs"]:
            odd |= bool((pr["weights_stored"] % 2 != 0).any())
            delayed_negative |= pr["delays"] is not None and pr["weight_exp"] < 0
    assert {"decay", "delay", "u_overflow", "weights", "recurrence", "saturation"} <= categories
    assert u_max > 2**23 and odd and delayed_negative


LAVA_PYTHON = os.environ.get("WORKBENCH_LAVA_PYTHON")


@pytest.mark.skipif(
    not LAVA_PYTHON,
    reason="live check against Lava: set WORKBENCH_LAVA_PYTHON to a Python 3.10 with "
    "lava-nc 0.10.0 (tools/golden/README.md, 'Loihi (Lava)', says how to make one)",
)
def test_fresh_lava_runs_agree(tmp_path):
    """Regenerate the traces on the installed Lava and compare again (a new Lava release can
    be rechecked this way)."""
    subprocess.run(
        [LAVA_PYTHON, str(ROOT / "tools" / "golden" / "loihi_traces.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    failures, traces, steps = _diverging(tmp_path, "compiled")
    print(f"Loihi live: {traces} fresh Lava runs, {steps} steps compared")
    assert traces > 0 and not failures, failures[:5]
