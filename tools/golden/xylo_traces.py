"""Golden traces of SynSense's own Xylo simulator (Rockpool 3.1.0 ``XyloSim``, xylosim 0.1.3).

Runs in the vendor environment (see README.md beside this file), not in the project's venv::

    /work/vendor/xylo-venv/bin/python tools/golden/xylo_traces.py [--out DIR] [--check]

Builds a fixed, seeded set of random integer networks (16-20 inputs, 30-32 hidden neurons with
recurrence, 5-8 outputs, 100-300 steps), each aimed at one corner of the chip's integer rules,
runs each on ``rockpool.devices.xylo.syns61201.XyloSim`` (Xylo Audio 2; the same
``xylosim.v2`` core serves Audio 3 and IMU) and writes one ``np.savez_compressed`` file per
case to ``tests/data/golden/xylo/``.  The file format is in README.md.

Every case is also run on the NumPy model ``xylo_reference.py`` and must agree bit for bit
(the script stops otherwise): the model documents the rules the traces follow.

``--check`` regenerates in memory and compares with the files on disk instead of writing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import xylo_reference as ref  # noqa: E402

ROOT = HERE.parent.parent
DEFAULT_OUT = ROOT / "tests" / "data" / "golden" / "xylo"
BASE_SEED = 20240611
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------ vendor import
def import_xylosim():
    """Rockpool's XyloSim classes without ``rockpool.devices.xylo``'s ``__init__`` (which
    imports SynSense's ``samna``): the package modules are replaced by empty namespace modules
    pointing at the same folders, so only the simulator files are executed."""
    import rockpool.devices

    base = os.path.join(os.path.dirname(rockpool.devices.__file__), "xylo")
    for sub in ("", "syns61201", "syns61300", "syns63300"):
        name = "rockpool.devices.xylo" + (f".{sub}" if sub else "")
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = [os.path.join(base, sub) if sub else base]
            sys.modules[name] = mod
    a2 = importlib.import_module("rockpool.devices.xylo.syns61201.xylo_sim").XyloSim
    imu = importlib.import_module("rockpool.devices.xylo.syns63300.xylo_sim").XyloSim
    return a2, imu


def versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("rockpool", "xylosim", "numpy")}


def run_xylosim(xylo_sim_cls, cfg: dict, raster: np.ndarray) -> dict:
    """One run from reset; returns the recordings as int64 arrays ``[T, neurons]``."""
    aliases = [[int(a)] if a >= 0 else [] for a in cfg["alias_target"]]
    mod = xylo_sim_cls.from_specification(
        weights_in=cfg["weights_in"],
        weights_out=cfg["weights_out"],
        weights_rec=cfg["weights_rec"],
        dash_mem=cfg["dash_mem"].astype(int),
        dash_mem_out=cfg["dash_mem_out"].astype(int),
        dash_syn=cfg["dash_syn"].astype(int),
        dash_syn_2=cfg["dash_syn2"].astype(int),
        dash_syn_out=cfg["dash_syn_out"].astype(int),
        threshold=cfg["threshold"].astype(int),
        threshold_out=cfg["threshold_out"].astype(int),
        bias=cfg["bias"].astype(int),
        bias_out=cfg["bias_out"].astype(int),
        weight_shift_in=int(cfg["weight_shift_in"]),
        weight_shift_rec=int(cfg["weight_shift_rec"]),
        weight_shift_out=int(cfg["weight_shift_out"]),
        aliases=aliases,
        dt=1e-3,
        output_mode="Spike",
    )
    # Rockpool derives has_bias from the biases; the file stores what it used.
    assert bool(mod._xylo_sim_params.has_bias) == bool(cfg["has_bias"])
    mod.reset_state()
    out, _, rec = mod.evolve(raster.astype(int), record=True)
    layer = mod._xylo_layer
    result = {
        "Vmem": rec["Vmem"],
        "Isyn": rec["Isyn"],
        # Rockpool's Audio 3 / IMU class leaves Isyn2 out of its record; the layer has it.
        "Isyn2": np.array(layer.rec_i_syn2).T,
        "Spikes": rec["Spikes"],
        "Vmem_out": rec["Vmem_out"],
        "Isyn_out": rec["Isyn_out"],
        "Spikes_out": np.asarray(out),
    }
    # The same recordings straight from the C++ layer.
    if "Isyn2" in rec:
        assert np.array_equal(rec["Isyn2"], result["Isyn2"])
    assert np.array_equal(np.array(layer.rec_out_spikes), result["Spikes_out"])
    assert np.array_equal(np.array(layer.rec_recurrent_spikes), result["Spikes"])
    return {k: np.asarray(v, np.int64).reshape(raster.shape[0], -1) for k, v in result.items()}


# ------------------------------------------------------------------------------ case builders
class Case:
    """A network under construction: defaults for every register, set by the families."""

    def __init__(self, rng, n_in=16, n=32, m=8, steps=160):
        self.rng, self.n_in, self.n, self.m, self.steps = rng, n_in, n, m, steps
        r = rng
        self.w_in = np.zeros((n_in, n, 2), np.int64)
        self.w_rec = np.zeros((n, n, 2), np.int64)
        self.w_out = np.zeros((n, m), np.int64)
        self.shift = [int(r.integers(2, 5)), int(r.integers(2, 5)), int(r.integers(2, 5))]
        self.dash_mem = r.integers(1, 7, n)
        self.dash_syn = r.integers(1, 6, n)
        self.dash_syn2 = r.integers(1, 8, n)
        self.threshold = r.integers(300, 3000, n)
        self.bias = np.zeros(n, np.int64)
        self.dash_mem_out = r.integers(1, 7, m)
        self.dash_syn_out = r.integers(1, 6, m)
        self.threshold_out = r.integers(300, 3000, m)
        self.bias_out = np.zeros(m, np.int64)
        self.alias = np.full(n, -1)
        self.raster = np.zeros((steps, n_in), np.int64)

    # random sparse int8 weights
    def sparse(self, shape, density, low=-128, high=127):
        w = self.rng.integers(low, high + 1, shape)
        return np.where(self.rng.random(shape) < density, w, 0)

    def random_weights(self, d_in=0.4, d_rec=0.15, d_out=0.35, amp=60, syn2=False, rec2=None):
        self.w_in[..., 0] = self.sparse((self.n_in, self.n), d_in, -amp, amp)
        self.w_rec[..., 0] = self.sparse((self.n, self.n), d_rec, -amp, amp)
        self.w_out[:] = self.sparse((self.n, self.m), d_out, -amp, amp)
        if syn2:
            self.w_in[..., 1] = self.sparse((self.n_in, self.n), d_in, -amp, amp)
            rec2 = syn2 if rec2 is None else rec2
            if rec2:
                self.w_rec[..., 1] = self.sparse((self.n, self.n), d_rec, -amp, amp)

    def poisson(self, rate=0.3, burst=0.0, burst_max=20, channels=None):
        """Event counts: Poisson(rate) per channel and step, plus occasional bursts of up to
        ``burst_max`` events (above 15: the chip clips them)."""
        r, shape = self.rng, self.raster.shape
        x = r.poisson(rate, shape)
        if burst:
            x = np.where(r.random(shape) < burst, r.integers(2, burst_max + 1, shape), x)
        if channels is not None:
            keep = np.zeros(self.n_in, bool)
            keep[channels] = True
            x = x * keep
        return np.minimum(x, 31)

    def config(self) -> dict:
        has_bias = bool(np.any(self.bias != 0) or np.any(self.bias_out != 0))
        cfg = {
            "weights_in": self.w_in.astype(np.int8),
            "weights_rec": self.w_rec.astype(np.int8),
            "weights_out": self.w_out.astype(np.int8),
            "weight_shift_in": np.uint8(self.shift[0]),
            "weight_shift_rec": np.uint8(self.shift[1]),
            "weight_shift_out": np.uint8(self.shift[2]),
            "dash_mem": self.dash_mem.astype(np.uint8),
            "dash_syn": self.dash_syn.astype(np.uint8),
            "dash_syn2": self.dash_syn2.astype(np.uint8),
            "threshold": self.threshold.astype(np.int16),
            "bias": self.bias.astype(np.int16),
            "dash_mem_out": self.dash_mem_out.astype(np.uint8),
            "dash_syn_out": self.dash_syn_out.astype(np.uint8),
            "threshold_out": self.threshold_out.astype(np.int16),
            "bias_out": self.bias_out.astype(np.int16),
            "alias_target": self.alias.astype(np.int16),
            "has_bias": np.bool_(has_bias),
        }
        for key in ("weights_in", "weights_rec", "weights_out"):
            src = {"weights_in": self.w_in, "weights_rec": self.w_rec, "weights_out": self.w_out}
            assert np.array_equal(cfg[key], src[key]), key  # no int8 wrap
        assert (self.threshold >= 1).all() and (self.threshold <= 32767).all()
        assert (self.threshold_out >= 1).all() and (self.threshold_out <= 32767).all()
        for d in (self.dash_mem, self.dash_syn, self.dash_syn2, self.dash_mem_out,
                  self.dash_syn_out):  # fmt: skip
            assert (d >= 0).all() and (d <= 15).all()
        assert all(0 <= s <= 7 for s in self.shift)
        assert (self.raster >= 0).all() and (self.raster <= 31).all()
        return cfg


def fam_plain(c: Case, k: int):
    """Small weights, shifts 0-2, short time constants: no saturation anywhere (the baseline
    on which sum-then-saturate and the chip agree)."""
    c.random_weights(amp=12, d_rec=0.1, syn2=k % 2 == 1)
    c.shift = [int(s) for s in c.rng.integers(0, 3, 3)]
    c.dash_mem = c.rng.integers(1, 4, c.n)
    c.dash_syn = c.rng.integers(1, 3, c.n)
    c.dash_syn2 = c.rng.integers(1, 4, c.n)
    c.dash_mem_out = c.rng.integers(1, 4, c.m)
    c.dash_syn_out = c.rng.integers(1, 3, c.m)
    c.threshold = c.rng.integers(10, 200, c.n)
    c.threshold_out = c.rng.integers(10, 200, c.m)
    c.raster = c.poisson(0.2, burst=0.01, burst_max=6)


def fam_isyn_sat(c: Case, k: int, sign: int):
    """Same-sign strong weights, shift 6-7, multi-event inputs: synaptic currents hit the
    positive (sign=+1) or negative (-1) rail; thresholds large so the membrane saturates too."""
    c.random_weights(amp=40)
    strong = (
        c.sparse((c.n_in, c.n), 0.5, 60, 127)
        if sign > 0
        else -c.sparse((c.n_in, c.n), 0.5, 60, 128)
    )
    c.w_in[..., 0] = np.where(strong != 0, strong, c.w_in[..., 0])
    c.shift[0] = 6 + k % 2
    c.dash_syn = c.rng.integers(1, 10, c.n)
    c.threshold = c.rng.integers(8000, 32768, c.n)
    c.raster = c.poisson(0.5, burst=0.1, burst_max=12)


def fam_mixed_sign(c: Case, k: int):
    """Low-index channels carry large weights of one sign, high-index channels the other,
    firing in the same steps: the chip saturates the partial sum of the first group before the
    second arrives (sum-then-saturate would not)."""
    first = 1 if k % 2 == 0 else -1
    c.random_weights(amp=20)
    lo_ch, hi_ch = np.arange(0, 4), np.arange(c.n_in - 4, c.n_in)
    c.w_in[lo_ch, :, 0] = first * c.sparse((4, c.n), 0.8, 70, 127)
    c.w_in[hi_ch, :, 0] = -first * c.sparse((4, c.n), 0.8, 30, 127)
    c.shift[0] = 6 + (k // 2) % 2
    c.dash_syn = c.rng.integers(1, 5, c.n)
    c.threshold = c.rng.integers(2000, 30000, c.n)
    x = c.poisson(0.05)
    hits = c.rng.random(c.steps) < 0.25
    for t in np.flatnonzero(hits):
        x[t, lo_ch] = c.rng.integers(0, 16, 4)
        x[t, hi_ch] = c.rng.integers(0, 9, 4)
    c.raster = x


def fam_mixed_sign_rec(c: Case, k: int):
    """Recurrent version: low-index hidden neurons fire many spikes per step (low thresholds)
    and excite strongly, high-index ones inhibit strongly, onto the same targets and onto the
    outputs; also strong input, so input and recurrent contributions mix within one step."""
    c.random_weights(amp=30, d_rec=0.1)
    n = c.n
    exc, inh = np.arange(0, 8), np.arange(n - 8, n)
    c.threshold[exc] = c.rng.integers(20, 300, 8)
    c.threshold[inh] = c.rng.integers(20, 300, 8)
    c.w_in[:, exc, 0] = c.sparse((c.n_in, 8), 0.7, 20, 127)
    c.w_in[:, inh, 0] = c.sparse((c.n_in, 8), 0.7, 20, 127)
    sign = 1 if k % 2 == 0 else -1
    c.w_rec[exc, :, 0] = sign * c.sparse((8, n), 0.7, 40, 127)
    c.w_rec[inh, :, 0] = -sign * c.sparse((8, n), 0.7, 40, 127)
    c.w_out[exc, :] = sign * c.sparse((8, c.m), 0.7, 40, 127)
    c.w_out[inh, :] = -sign * c.sparse((8, c.m), 0.7, 40, 127)
    c.shift = [4, 5 + k % 3, 5 + k % 3]
    c.threshold_out = c.rng.integers(1000, 30000, c.m)
    c.raster = c.poisson(0.4, burst=0.03, burst_max=10)


def fam_mem_sat(c: Case, k: int):
    """Slow membranes (dash_mem 8-15), thresholds near 32767, strong drive of both signs:
    the membrane saturates at +32767 (then fires) and sits at -32768."""
    c.random_weights(amp=127, d_in=0.6)
    c.shift[0] = 5 + k % 3
    c.dash_mem = c.rng.integers(8, 16, c.n)
    c.dash_syn = c.rng.integers(2, 8, c.n)
    c.threshold = c.rng.integers(25000, 32768, c.n)
    c.dash_mem_out = c.rng.integers(8, 16, c.m)
    c.threshold_out = np.full(c.m, 32767)
    c.w_out[:] = c.sparse((c.n, c.m), 0.5, -127, 127)
    c.shift[2] = 7
    c.raster = c.poisson(0.6, burst=0.05, burst_max=15)


def fam_dash0_mem(c: Case, k: int):
    """dash_mem = 0 on half the hidden neurons and half the outputs, with phases of strong
    negative current followed by phases of positive current; slow synapses.  With dash_mem = 0
    the membrane is this step's current (plus bias), so it reaches -32768 only where the two
    synaptic currents (or current and bias) sum below it: both synapses get the negative
    inputs, and some outputs a negative bias.  On the chip the leak -(-32768) then wraps to
    -32768 in int16 and the membrane stays at -32768 while the current stays below 32768
    (even k: positive phase on one synapse, stuck; odd k: on both, it can come free)."""
    c.random_weights(amp=30)
    n, half = c.n, c.n // 2
    zero = c.rng.permutation(n)[:half]
    c.dash_mem[zero] = 0
    c.dash_syn = c.rng.integers(3, 9, n)
    c.dash_syn2 = c.rng.integers(3, 9, n)
    neg = np.arange(0, c.n_in // 2)
    pos = np.arange(c.n_in // 2, c.n_in)
    c.w_in[neg, :, 0] = -c.sparse((len(neg), n), 0.6, 60, 128)
    c.w_in[neg, :, 1] = -c.sparse((len(neg), n), 0.6, 60, 128)
    c.w_in[pos, :, 0] = c.sparse((len(pos), n), 0.6, 60, 127)
    if k % 2 == 1:  # two positive currents can sum past 32767 and free the membrane
        c.w_in[pos, :, 1] = c.sparse((len(pos), n), 0.6, 60, 127)
    c.shift[0] = 6 + (k // 2) % 2
    c.threshold = c.rng.integers(5000, 32768, n)
    # outputs: driven by hidden spikes of low-threshold neurons, weights of both signs
    drivers = np.setdiff1d(np.arange(n), zero)[:6]
    c.threshold[drivers] = c.rng.integers(50, 400, len(drivers))
    c.w_in[pos[:2], drivers[:, None], 0] = 100
    c.w_out[:] = 0
    c.w_out[drivers, :] = c.sparse((len(drivers), c.m), 0.8, -128, 127)
    c.shift[2] = 7
    c.dash_mem_out[: c.m // 2] = 0
    c.dash_syn_out = c.rng.integers(2, 7, c.m)
    c.bias_out[: c.m // 2] = -c.rng.integers(5000, 25000, c.m // 2)
    x = np.zeros_like(c.raster)
    period = int(c.rng.integers(30, 60))
    for t in range(c.steps):
        group = neg if (t // period) % 2 == 0 else pos
        x[t, group] = c.rng.poisson(1.5, len(group))
    x[:, pos[:2]] += c.rng.poisson(0.3, (c.steps, 2))  # the drivers keep some activity
    c.raster = np.minimum(x, 31)


def fam_dash0_syn(c: Case, k: int):
    """dash_syn = 0 (and dash_syn2 = 0) on subsets: the synaptic current is cleared before it
    reaches the membrane, so those neurons see no input at all."""
    c.random_weights(amp=80, syn2=True)
    c.dash_syn[c.rng.permutation(c.n)[: c.n // 3]] = 0
    c.dash_syn2[c.rng.permutation(c.n)[: c.n // 3]] = 0
    c.dash_syn_out[: c.m // 3] = 0
    c.dash_mem[c.rng.permutation(c.n)[:4]] = 0
    c.threshold = c.rng.integers(100, 2000, c.n)
    c.raster = c.poisson(0.3, burst=0.02)


def fam_syn2(c: Case, k: int):
    """Two synaptic currents per hidden neuron with their own time constants, inputs and
    recurrence on both; one in two cases strong enough to saturate either."""
    strong = k % 2 == 1
    c.random_weights(amp=127 if strong else 50, syn2=True, d_rec=0.2)
    c.dash_syn = c.rng.integers(0, 4, c.n)
    c.dash_syn2 = c.rng.integers(3, 12, c.n)
    c.shift = [6 if strong else 3, 5 if strong else 3, 4]
    c.threshold = c.rng.integers(500, 20000, c.n)
    c.raster = c.poisson(0.3, burst=0.04 if strong else 0.0)


def fam_recurrent(c: Case, k: int):
    """Strong, dense recurrence with low thresholds: hidden neurons fire several spikes per
    step (up to the cap of 31), each delivered as that many events next step."""
    c.random_weights(amp=90, d_rec=0.35, syn2=k % 2 == 1)
    c.w_rec[np.arange(c.n), np.arange(c.n), 0] = c.rng.integers(-60, 60, c.n)  # self loops
    c.threshold = c.rng.integers(5, 400, c.n)
    c.shift = [3, 3 + k % 4, 3 + k % 4]
    c.raster = c.poisson(0.2)


def fam_shift(c: Case, k: int, large: bool):
    """Weight shifts all 0-1 with thresholds of 1-60 (small), or all 7 with thresholds near
    the top (large)."""
    c.random_weights(amp=127, d_rec=0.2)
    if large:
        c.shift = [7, 7, 7]
        c.threshold = c.rng.integers(16000, 32768, c.n)
        c.threshold_out = c.rng.integers(16000, 32768, c.m)
    else:
        c.shift = [k % 2, (k + 1) % 2, 0]
        c.threshold = c.rng.integers(1, 60, c.n)
        c.threshold_out = c.rng.integers(1, 60, c.m)
    c.raster = c.poisson(0.25, burst=0.02)


def fam_multi_input(c: Case, k: int):
    """Dense multi-event input (1-31 events per channel and step; above 15 clipped)."""
    c.random_weights(amp=60)
    c.shift[0] = 3 + k % 3
    x = c.rng.integers(0, 32, c.raster.shape)
    c.raster = np.where(c.rng.random(c.raster.shape) < 0.35, x, 0)
    c.threshold = c.rng.integers(1000, 30000, c.n)


def fam_threshold(c: Case, k: int, small: bool):
    if small:  # many spikes per step, the 31 cap
        c.random_weights(amp=100, d_rec=0.2)
        c.threshold = c.rng.integers(1, 9, c.n)
        c.threshold_out = c.rng.integers(1, 9, c.m)
        c.shift = [4, 1, 1]
    else:
        c.random_weights(amp=127)
        c.threshold = c.rng.integers(10000, 32768, c.n)
        c.threshold_out = c.rng.integers(10000, 32768, c.m)
        c.shift = [6, 6, 7]
    c.raster = c.poisson(0.3, burst=0.03)


def fam_bias(c: Case, k: int):
    """Biases (enable bit on): random, including large values, some at the 16-bit limits,
    with dash_mem 0 on a few neurons (the bias then repeats every step)."""
    c.random_weights(amp=50, syn2=k % 2 == 0)
    c.bias = c.rng.integers(-400, 400, c.n)
    c.bias[c.rng.permutation(c.n)[:4]] = c.rng.choice([-32768, 32767, -20000, 20000], 4)
    c.bias_out = c.rng.integers(-300, 300, c.m)
    c.bias_out[0] = -32768 if k % 2 == 0 else 32767
    c.dash_mem[c.rng.permutation(c.n)[:5]] = 0
    c.dash_mem_out[1] = 0
    c.threshold = c.rng.integers(200, 20000, c.n)
    c.raster = c.poisson(0.2, burst=0.02)


def fam_alias(c: Case, k: int):
    """Aliases: each of some neurons copies its spikes into another neuron's spike count
    (targets below and above the source index; the emulator reproduces them (alias_target))."""
    c.random_weights(amp=70, d_rec=0.2)
    c.threshold = c.rng.integers(30, 2000, c.n)
    src = c.rng.permutation(c.n)[:10]
    c.alias[src] = c.rng.integers(0, c.n, 10)
    c.raster = c.poisson(0.3, burst=0.02)


def fam_mix(c: Case, k: int):
    """Everything random at once: shifts 0-7, dashes 0-15, thresholds 1-32767, biases, the
    second synapse, bursts."""
    r = c.rng
    c.random_weights(amp=int(r.integers(20, 128)), syn2=bool(r.random() < 0.6),
                     d_rec=float(r.uniform(0.05, 0.4)))  # fmt: skip
    c.shift = [int(s) for s in r.integers(0, 8, 3)]
    c.dash_mem = r.integers(0, 16, c.n)
    c.dash_syn = r.integers(0, 16, c.n)
    c.dash_syn2 = r.integers(0, 16, c.n)
    c.dash_mem_out = r.integers(0, 16, c.m)
    c.dash_syn_out = r.integers(0, 16, c.m)
    c.threshold = np.exp(r.uniform(0, np.log(32767), c.n)).astype(np.int64).clip(1, 32767)
    c.threshold_out = np.exp(r.uniform(0, np.log(32767), c.m)).astype(np.int64).clip(1, 32767)
    if r.random() < 0.5:
        c.bias = r.integers(-2000, 2000, c.n)
        c.bias_out = r.integers(-2000, 2000, c.m)
    c.raster = c.poisson(float(r.uniform(0.1, 0.8)), burst=0.05)


def fam_leak_wrap(c: Case, k: int):
    """The int16 leak wrap alone, with no current ever clipping: half the hidden neurons have
    dash_mem = 0 and receive, in alternating phases, one event per step on 8 channels, first
    negative on both synapses (each settles near -15000..-21000, their sum below -32768: the
    membrane hits -32768), then positive (on synapse 1 only for even k: the chip's membrane
    stays at -32768; on both for odd k: it comes free once the sum passes 32768).  Weak
    recurrence and readout keep every sum in range, so only the leak rule differs."""
    n, half = c.n, c.n // 2
    zero = c.rng.permutation(n)[:half]
    c.dash_mem = c.rng.integers(1, 5, n)
    c.dash_mem[zero] = 0
    c.dash_syn = np.full(n, 2)
    c.dash_syn2 = np.full(n, 2)
    neg, pos = np.arange(0, 8), np.arange(8, 16)
    c.w_in[neg, :, 0] = -c.rng.integers(40, 56, (8, n))
    c.w_in[neg, :, 1] = -c.rng.integers(40, 56, (8, n))
    c.w_in[pos, :, 0] = c.rng.integers(30, 60, (8, n))
    if k % 2 == 1:
        c.w_in[pos, :, 1] = c.rng.integers(30, 60, (8, n))
    c.w_rec[..., 0] = c.sparse((n, n), 0.2, -3, 3)
    c.w_out[:] = c.sparse((n, c.m), 0.4, -20, 20)
    c.shift = [4, 0, 2]
    c.threshold = c.rng.integers(3000, 9000, n)
    c.threshold[zero] = 32767
    c.threshold_out = c.rng.integers(200, 2000, c.m)
    x = np.zeros_like(c.raster)
    period = int(c.rng.integers(25, 45))
    for t in range(c.steps):
        x[t, neg if (t // period) % 2 == 0 else pos] = 1
    c.raster = x


FAMILIES = [
    # (name, builder, number of cases)
    ("plain", fam_plain, 4),
    ("isyn_sat_pos", lambda c, k: fam_isyn_sat(c, k, +1), 3),
    ("isyn_sat_neg", lambda c, k: fam_isyn_sat(c, k, -1), 3),
    ("mixed_sign", fam_mixed_sign, 4),
    ("mixed_sign_rec", fam_mixed_sign_rec, 3),
    ("mem_sat", fam_mem_sat, 3),
    ("dash0_mem", fam_dash0_mem, 4),
    ("dash0_syn", fam_dash0_syn, 2),
    ("syn2", fam_syn2, 4),
    ("recurrent", fam_recurrent, 4),
    ("shift_small", lambda c, k: fam_shift(c, k, False), 2),
    ("shift_large", lambda c, k: fam_shift(c, k, True), 2),
    ("multi_input", fam_multi_input, 3),
    ("threshold_small", lambda c, k: fam_threshold(c, k, True), 2),
    ("threshold_large", lambda c, k: fam_threshold(c, k, False), 2),
    ("bias", fam_bias, 3),
    ("alias", fam_alias, 3),
    ("mix", fam_mix, 6),
    ("leak_wrap", fam_leak_wrap, 2),
]


def build_cases():
    """Yield ``(name, family, seed, description, Case)`` for every case, deterministically."""
    index = 0
    for family, builder, count in FAMILIES:
        for k in range(count):
            seed = [BASE_SEED, index]
            rng = np.random.default_rng(seed)
            n_in = int(rng.choice([16, 16, 16, 20]))
            n = int(rng.choice([32, 32, 30]))
            m = int(rng.integers(5, 9))
            steps = int(rng.integers(100, 301))
            case = Case(rng, n_in=n_in, n=n, m=m, steps=steps)
            builder(case, k)
            doc = (builder.__doc__ or "").strip() or {
                "isyn_sat_pos": fam_isyn_sat.__doc__,
                "isyn_sat_neg": fam_isyn_sat.__doc__,
                "shift_small": fam_shift.__doc__,
                "shift_large": fam_shift.__doc__,
                "threshold_small": "Thresholds 1-8: many spikes per step, the cap of 31.",
                "threshold_large": "Thresholds 10000-32767 with shifts 6-7.",
            }.get(family, "")
            name = f"{index:02d}_{family}_{k}"
            yield name, family, seed, " ".join(doc.split()), case
            index += 1


def coverage(stats: dict, rec: dict, raster: np.ndarray) -> dict:
    cov = {k: int(v) for k, v in sorted(stats.items())}
    cov["max_hidden_spikes"] = int(rec["Spikes"].max())
    cov["output_spikes"] = int(rec["Spikes_out"].sum())
    cov["hidden_spikes"] = int(rec["Spikes"].sum())
    cov["vmem_at_min"] = int((rec["Vmem"] == ref.LOW).sum() + (rec["Vmem_out"] == ref.LOW).sum())
    cov["max_input_events"] = int(raster.max())
    return cov


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="compare with the files on disk")
    ap.add_argument("--only", default=None, help="substring of the case names to run")
    args = ap.parse_args(argv)
    xylo_a2, xylo_imu = import_xylosim()
    vers = versions()
    args.out.mkdir(parents=True, exist_ok=True)
    total_bytes, failures = 0, []
    for name, family, seed, doc, case in build_cases():
        if args.only and args.only not in name:
            continue
        cfg = case.config()
        raster = case.raster.astype(np.uint8)
        rec = run_xylosim(xylo_a2, cfg, raster)
        # The Audio 3 / IMU class wraps the same xylosim.v2 core: identical traces.
        rec_imu = run_xylosim(xylo_imu, cfg, raster)
        assert all(np.array_equal(rec[k], rec_imu[k]) for k in rec), name
        # The NumPy model of the C++ rules must agree bit for bit.
        stats = ref.Counters()
        model = ref.run(cfg, raster, stats)
        bad = [k for k in ref.RECORD_KEYS if not np.array_equal(model[k], rec[k])]
        if bad:
            failures.append((name, bad))
            print(f"{name}: MODEL DISAGREES with XyloSim in {bad}")
        cov = coverage(stats, rec, raster)
        meta = {
            "format_version": FORMAT_VERSION,
            "case": name,
            "family": family,
            "description": doc,
            "seed": seed,
            "simulator": "rockpool.devices.xylo.syns61201.xylo_sim.XyloSim (xylosim.v2)",
            "versions": vers,
            "n_inputs": case.n_in,
            "n_hidden": case.n,
            "n_outputs": case.m,
            "n_steps": case.steps,
            "uses_syn2": bool(np.any(cfg["weights_in"][..., 1]) or np.any(
                cfg["weights_rec"][..., 1])),
            "uses_bias": bool(cfg["has_bias"]),
            "uses_aliases": bool(np.any(cfg["alias_target"] >= 0)),
            "coverage": cov,
        }  # fmt: skip
        arrays = dict(cfg)
        arrays["input"] = raster
        for key in ("Vmem", "Isyn", "Isyn2", "Vmem_out", "Isyn_out"):
            assert rec[key].min() >= ref.LOW and rec[key].max() <= ref.HIGH
            arrays[key] = rec[key].astype(np.int16)
        for key in ("Spikes", "Spikes_out"):
            assert rec[key].min() >= 0 and rec[key].max() <= 255
            arrays[key] = rec[key].astype(np.uint8)
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        path = args.out / f"{name}.npz"
        if args.check:
            with np.load(path) as old:
                diff = [k for k in arrays if k != "meta" and not np.array_equal(old[k], arrays[k])]
            print(f"{name}: {'same' if not diff else 'DIFFERENT ' + str(diff)}")
            failures += [(name, diff)] if diff else []
            continue
        np.savez_compressed(path, **arrays)
        size = path.stat().st_size
        total_bytes += size
        short = {k: v for k, v in cov.items() if v and not k.endswith("clip_pos") or k in (
            "isyn_in_clip_pos",)}  # fmt: skip
        print(f"{name}: T={case.steps} in={case.n_in} hid={case.n} out={case.m} "
              f"{size / 1024:.1f} KiB {short}")  # fmt: skip
    if not args.check:
        print(f"total {total_bytes / 1024:.0f} KiB in {args.out}")
    if failures:
        print("FAILURES:", failures)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
