"""A plain NumPy model of SynSense's xylosim 0.1.3 ``xylosim.v2`` (the core behind Rockpool
3.1.0's ``XyloSim`` for Xylo Audio 2, Audio 3 and IMU), written from its C++ source.

It needs NumPy only, so it runs in the vendor environment (where ``xylo_traces.py`` checks it
against XyloSim itself, bit for bit, on every golden case) and in the project's environment
(``compare_xylo.py``).  It is a reading aid and an oracle, not part of the project.

One step (``XyloLayer::evolve``, src/v2/cpp/XyloLayer.cpp; ``XyloIAFNeuron::evolve``,
src/v2/cpp/XyloIAFNeuron.cpp), all states ``int16``:

1. deliver this step's input events: for each input channel in index order, its count
   clipped to 15, then for each synapse of that channel, the weight ``w << shift_in`` is added
   ``count`` times to the target's synaptic current, saturating to 16 bits after every single
   addition (``safe_add``);
2. deliver the previous step's hidden spike counts (clipped to 31) to hidden neurons (shift_rec),
   hidden neurons in index order, same rule;
3. deliver the same counts to the output neurons (shift_out);
4. hidden neurons in index order: each synaptic current decays ``I -= decay(I, dash_syn)``;
   ``dv = (int16)(-decay(V, dash_mem))`` (wraps: ``-(-32768)`` is ``-32768``), ``dv = sat(dv +
   I1 + I2)``, ``dv = sat(dv + bias)`` if biases are enabled, ``V = sat(V + dv)``; then, starting
   from the spikes already placed on this neuron by aliases of lower-index neurons, fire while
   ``V >= threshold`` and fewer than 31 spikes, subtracting the threshold each time; the
   neuron's spikes are added (capped at 31) to its alias target's count;
5. output neurons likewise (one synaptic current, at most 1 spike, no aliases).

``decay(x, dash) = x >> dash`` (arithmetic), or ``sign(x)`` where that is 0.
"""

from __future__ import annotations

import numpy as np

LOW, HIGH = -32768, 32767
MAX_INPUT_EVENTS = 15  # MAX_NUM_INP_SPIKES
MAX_HIDDEN_SPIKES = 31  # MAX_NUM_SPIKES
MAX_OUTPUT_SPIKES = 1  # MAX_NUM_OUT_SPIKES

CONFIG_KEYS = (
    "weights_in", "weights_rec", "weights_out", "weight_shift_in", "weight_shift_rec",
    "weight_shift_out", "dash_mem", "dash_syn", "dash_syn2", "threshold", "bias",
    "dash_mem_out", "dash_syn_out", "threshold_out", "bias_out", "alias_target", "has_bias",
)  # fmt: skip
RECORD_KEYS = ("Vmem", "Isyn", "Isyn2", "Spikes", "Vmem_out", "Isyn_out", "Spikes_out")


def decay(x: np.ndarray, dash: np.ndarray) -> np.ndarray:
    """``x >> dash``, or one step towards zero where that is 0 (C++ ``decay``)."""
    dv = np.right_shift(x, dash)
    return np.where(dv == 0, np.sign(x), dv)


def wrap16(x: np.ndarray) -> np.ndarray:
    """The conversion of an ``int`` to ``int16_t`` (two's complement wrap)."""
    return ((x + 32768) & 0xFFFF) - 32768


def sat(x):
    return np.clip(x, LOW, HIGH)


class Counters(dict):
    def add(self, key, n):
        self[key] = self.get(key, 0) + int(n)


def _deliver(cur, counts, weights, shift, limit, stats=None, tag=""):
    """``cur [targets, states]``, ``counts [sources]``, ``weights [sources, targets, states]``:
    the chip's order (sources in index order, saturating after each event)."""
    counts = np.minimum(counts, limit)
    start = cur.copy()
    total = np.zeros_like(cur)
    for s in np.flatnonzero(counts):
        w = weights[s].astype(np.int64) << shift
        step = counts[s] * w  # same-sign repeats: saturating each time == saturating once
        if stats is not None:
            stats.add(f"{tag}clip_pos", ((cur + step > HIGH) & (w != 0)).sum())
            stats.add(f"{tag}clip_neg", ((cur + step < LOW) & (w != 0)).sum())
        cur = sat(cur + step)
        total += step
    if stats is not None:
        stats.add(f"{tag}order_matters", (cur != sat(start + total)).sum())
    return cur, total


def run(
    cfg: dict,
    raster: np.ndarray,
    stats: Counters | None = None,
    order: str = "event",
    leak: str = "int16",
    aliases: bool = True,
) -> dict:
    """Run configuration ``cfg`` (the golden files' keys) on ``raster [T, inputs]``; returns the
    recordings (``RECORD_KEYS``) as int64 arrays ``[T, neurons]``.

    The defaults are the chip's rules.  Variants, to tell which rule a difference comes from:
    ``order="sum"`` adds each neuron's whole input of the step (input events and hidden
    spikes) and saturates once; ``leak="wide"`` computes ``-decay(V, dash_mem)`` without the
    int16 wrap; ``aliases=False`` ignores the alias targets."""
    assert order in ("event", "sum") and leak in ("int16", "wide")
    w_in = np.asarray(cfg["weights_in"], np.int64)  # [inputs, hidden, 2]
    w_rec = np.asarray(cfg["weights_rec"], np.int64)  # [hidden, hidden, 2]
    w_out = np.asarray(cfg["weights_out"], np.int64)[..., None]  # [hidden, outputs, 1]
    sh_in, sh_rec, sh_out = (int(cfg[k]) for k in ("weight_shift_in", "weight_shift_rec",
                                                     "weight_shift_out"))  # fmt: skip
    dash_syn = np.stack([cfg["dash_syn"], cfg["dash_syn2"]], 1).astype(np.int64)
    dash_mem = np.asarray(cfg["dash_mem"], np.int64)
    theta = np.asarray(cfg["threshold"], np.int64)
    has_bias = bool(cfg["has_bias"])
    bias = np.asarray(cfg["bias"], np.int64) if has_bias else 0
    dash_syn_o = np.asarray(cfg["dash_syn_out"], np.int64)[:, None]
    dash_mem_o = np.asarray(cfg["dash_mem_out"], np.int64)
    theta_o = np.asarray(cfg["threshold_out"], np.int64)
    bias_o = np.asarray(cfg["bias_out"], np.int64) if has_bias else 0
    alias = np.asarray(cfg["alias_target"], np.int64)
    if not aliases:
        alias = np.full_like(alias, -1)
    raster = np.asarray(raster, np.int64)
    n_steps, n, m = raster.shape[0], dash_mem.shape[0], dash_mem_o.shape[0]

    cur, v = np.zeros((n, 2), np.int64), np.zeros(n, np.int64)
    cur_o, v_o = np.zeros((m, 1), np.int64), np.zeros(m, np.int64)
    spikes = np.zeros(n, np.int64)
    rec = {k: np.zeros((n_steps, n if "out" not in k else m), np.int64) for k in RECORD_KEYS}

    wrap = leak == "int16"

    def membrane(cur, v, dmem, b, tag):
        cur = cur - decay(cur, dash_syn if tag == "" else dash_syn_o)
        drop = -decay(v, dmem)
        wrapped = wrap16(drop) if wrap else drop
        if stats is not None:
            stats.add(f"{tag}leak_wrap", (wrap16(drop) != drop).sum())
        dv = sat(wrapped + cur.sum(1))
        dv = sat(dv + b)
        if stats is not None:
            stats.add(f"{tag}v_clip_pos", (v + dv > HIGH).sum())
            stats.add(f"{tag}v_clip_neg", (v + dv < LOW).sum())
        return cur, sat(v + dv)

    for t in range(n_steps):
        if stats is not None:
            stats.add("input_clipped", (raster[t] > MAX_INPUT_EVENTS).sum())
        start = cur
        cur, add_in = _deliver(cur, raster[t], w_in, sh_in, MAX_INPUT_EVENTS, stats, "isyn_in_")
        cur, add_rec = _deliver(cur, spikes, w_rec, sh_rec, MAX_HIDDEN_SPIKES, stats, "isyn_rec_")
        if stats is not None:  # where one saturation of the step's sum would differ
            stats.add("isyn_hidden_order_matters", (cur != sat(start + add_in + add_rec)).sum())
        start_o = cur_o
        cur_o, add_out = _deliver(cur_o, spikes, w_out, sh_out, MAX_HIDDEN_SPIKES, stats,
                                  "isyn_out_")  # fmt: skip
        if order == "sum":
            cur, cur_o = sat(start + add_in + add_rec), sat(start_o + add_out)
        # hidden neurons
        cur, v = membrane(cur, v, dash_mem, bias, "")
        buf = np.zeros(n, np.int64)
        for j in range(n):  # in index order: aliases may fill later neurons' buffers
            room = MAX_HIDDEN_SPIKES - buf[j]
            k = min(room, v[j] // theta[j]) if v[j] >= theta[j] else 0
            k = max(k, 0)
            v[j] -= k * theta[j]
            buf[j] += k
            if alias[j] >= 0:
                buf[alias[j]] = min(buf[alias[j]] + buf[j], MAX_HIDDEN_SPIKES)
        spikes = buf
        # output neurons
        cur_o, v_o = membrane(cur_o, v_o, dash_mem_o, bias_o, "out_")
        k_o = np.where(v_o >= theta_o, np.minimum(v_o // theta_o, MAX_OUTPUT_SPIKES), 0)
        v_o = v_o - k_o * theta_o
        rec["Vmem"][t], rec["Isyn"][t], rec["Isyn2"][t] = v, cur[:, 0], cur[:, 1]
        rec["Spikes"][t] = spikes
        rec["Vmem_out"][t], rec["Isyn_out"][t], rec["Spikes_out"][t] = v_o, cur_o[:, 0], k_o
        if stats is not None:
            stats.add("hidden_capped_31", (spikes == MAX_HIDDEN_SPIKES).sum())
            stats.add("hidden_multi_spike", (spikes > 1).sum())
    return rec
