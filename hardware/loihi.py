"""Intel Loihi (first generation) emulator: bit-accurate fixed-point CUBA LIF, synaptic delays,
a trace-based on-chip learning engine, capacity checks and a resource report.

The chip's arithmetic, step by step (Lava's bit-accurate LIF ``PyLifModelBitAcc`` in
``lava/proc/lif/models.py`` and Lava's ``PyDenseModelBitAcc`` in ``lava/proc/dense/models.py``;
the figures' sources are in :class:`LoihiProfile`).  Every state is an integer:

    a[t]  = sum over projections, over delay slots d of  shift(sum_{j: d_ij = d} w_ij s_j[t-1-d],
                                                              weight_exponent) << 6
    u[t]  = wrap( decay(u[t-1], decay_u) + a[t] )
    v[t]  = clip24( decay(v[t-1], decay_v) + u[t] + bias )
    spike = v[t] > threshold_mantissa << 6;   then v[t] = 0 (and refractory steps, if any)

- ``decay(x, d) = sign(p) * (|p| >> 12)`` with ``p = x (4096 - d)``: rounded toward zero;
  ``decay_u = du + 1`` (Lava's one-bit ``ds_offset``), ``decay_v = dv`` (``dm_offset`` 0).
- ``shift(x, e)`` is ``x << e`` for ``e >= 0`` and the arithmetic (flooring) ``x >> -e``
  otherwise, applied to each delay slot's sum on its own, as Lava's DelayDense model does
  (plain Dense has one slot); ``bias = bias_mantissa`` shifted by ``bias_exponent`` alike.
- Weights are stored as Lava stores them (:func:`stored_weights`): clipped and truncated by
  sign mode, so mixed-sign 8-bit weights are even integers in [-256, 254] and single-sign
  ones keep odd values; a synapse adds ``w * 2**(6 + weight_exponent)`` to ``u``.
- ``wrap`` is Lava's: a sum past ``2**23`` loses ``2**24``, one at ``-2**23`` or below gains it
  (so exactly ``2**23`` passes), once, on int32 sums (Lava's arithmetic; a sum beyond int32
  wraps there too).  ``LoihiProfile(u_wraps_modulo=True)`` wraps modulo ``2**24`` instead (a
  24-bit two's-complement register; no public source gives the silicon's rule).  ``v``
  saturates at ``+-(2**23 - 1)``.
- Checked bit for bit against Lava 0.10.0's ``PyLifModelBitAcc``, ``PyDenseModelBitAcc`` and
  ``PyDelayDenseModelBitAcc`` on the golden traces in ``tests/data/golden/loihi/``
  (``tools/golden/loihi_traces.py`` makes them).
- Spikes are delivered one step after they are emitted (Lava's Dense sends at step ``t`` what
  it accumulated at ``t - 1``), plus the synapse's delay ``d`` of 0..62 steps.  A recurrent
  projection adds one more step (the spec's meaning of ``recurrent``), so its programmed delay
  is ``delay + 1``.

An ``alif`` neuron (an after-hyperpolarising, AHP, current) takes two compartments, as Rao,
Plank, Wild & Maass (2022, Nature Machine Intelligence 4: 467-479) ran their AHP neurons on
Loihi ("AHP currents can easily be implemented in neuromorphic hardware that supports
multi-compartment neuron models, such as Intel's Loihi chip").  Intel's NxSDK code of that work
(``intel-nrc-ecosystem/models``: ``nxsdk_modules_ncl/lsnn/apps/relnet/RecurrentLsnn.py`` and
``nxsdk_modules_ncl/lsnn/src/lsnn.py``) builds it so: an auxiliary compartment with a full
current decay (``decayAuxU = 4096``) and the AHP's decay as its voltage decay, which never
spikes and pushes its ``v`` onto the dendritic stack; the soma pops it with the join operation
ADD; the soma's own spikes reach the auxiliary compartment through an inhibitory synapse
(weight ``-weightAux``, its own exponent, delay 0).  Each step the auxiliary compartment runs
first, then the soma (``s`` its spikes, ``h`` the auxiliary compartment's ``v``):

    h[t]  = clip24( decay(h[t-1], decay_h) + (shift(w_h s[t-1], e_h) << 6) )
    v[t]  = clip24( decay(v[t-1], decay_v) + u[t] + h[t] + bias )   (in place of v above)

- The auxiliary ``u`` holds only its step's input (the full decay), so it is not kept as a
  state; ``w_h`` is an 8-bit inhibitory weight (stored clipped to -255..0) with exponent
  ``e_h`` in 0..7 (a negative one would floor the single synapse's mantissa to a multiple of
  64); the sum in ``v`` is taken in int32 as above.
- The joined ``h`` enters the soma's input to ``v`` only, not ``u``'s stored state: NxSDK's
  LSNN sizes ``weightAux`` as a current into ``v`` (``beta (1/(tau_a tau_v) - 1/tau_a**2)``),
  but whether the chip also keeps the sum in ``u`` is not public (it would differ only for
  ``decay_u < 4096``); :attr:`LoihiProfile.ahp_compartments` marks this as an assumption.

Mapping a float network (:meth:`Loihi.chip_config`).  The float simulator integrates
``V <- beta V + p I``, ``I <- alpha I + W s`` with input of step ``t`` reaching ``V`` at
``t + 1`` -- the same timing as the chip above, with ``u = S p I`` and ``v = S (V - v_reset)``
for a per-population scale ``S`` (chip units per float unit):

- ``decay_u = round(4096 (1 - alpha))``, ``decay_v = round(4096 (1 - beta))``;
- LIF: ``threshold_mantissa`` (default 8192, so the threshold sits at ``2**19`` and ``v`` has
  16x headroom), ``S = threshold_mantissa * 64 / (threshold - v_reset)``;
  LI readout: ``S = 2**23 / readout_range`` (default 64 float units before saturation);
- each projection's weight exponent is the smallest that fits ``max |S p w|`` into the 8-bit
  mantissa; ``v_leak`` becomes a bias ``S (1 - beta)(v_leak - v_reset)`` and the initial ``v``.
- ALIF: the float AHP current ``A`` jumps by ``adapt_strength`` per spike, decays by
  ``gamma = exp(-dt/tau_adapt)`` and enters ``V`` one step after the spike through its own
  propagator ``q`` (``adapt_gain``), ``V <- ... - q A``: the timing of ``h = -S q A`` above.  So
  ``decay_h = round(4096 (1 - gamma))`` and ``w_h 2**(6 + e_h)`` is ``-S q adapt_strength``
  rounded to the 8-bit mantissa at the smallest exponent that holds it: exact up to rounding.

Outputs and recordings are float tensors in float units (``v / S + v_reset``, ``u / (S p)``);
:meth:`Loihi.run_chip` gives the raw integers.  In training mode with gradients enabled the
forward pass is hardware-in-the-loop style: each population's float dynamics are run on the
chip's observed input spikes with straight-through quantised weights, and every observation
(spikes, ``v``, ``u``) is the chip's value in the forward pass and the float model's in the
backward pass, so ``loss.backward()`` reaches the float weights (quantisation-aware training).

Variation, with the options of BrainScaleS-2 (``profile``, ``chip_seed``, ``noise_seed``), so a
sweep can vary it.  Temporal noise as the chip has it (NxSDK's ``enableNoise`` with
``randomizeCurrent``/``randomizeVoltage``, ``noiseMantAtCompartment``/``noiseExpAtCompartment``,
documented as ``(lfsr() - 2**7 + noiseMantOffset0 * 2**6) * 2**(noiseExp0 - 7)``): with
``LoihiProfile(noise_at="u" or "v")`` each compartment adds ``floor((r + 64 noise_mantissa) *
2**(noise_exponent - 7))`` to ``u``'s synaptic input or to ``v``'s input every step, ``r``
uniform in -128..127 from a generator seeded by ``noise_seed`` (:func:`noise_draws`; the LFSR's
own sequence is not public, so the figures are marked assumptions).  Fixed-pattern mismatch is
a stress test only (Loihi is digital and has no analog mismatch): ``mismatch_tau_mem``,
``mismatch_tau_syn`` and ``mismatch_threshold`` draw each compartment's ``decay_v``, ``decay_u``
and threshold mantissa once per ``chip_seed`` with :func:`workbench.variation.draw_neurons`,
rounded to the integer fields.  Every figure at its default is the plain chip, bit for bit.

On-chip learning (:class:`LearningRule`, :meth:`Loihi.learn`): integer pre/post traces and a
sum-of-products rule such as ``"2^-2*x1*y0 - 2^-2*y1*x0"`` (pair STDP) applied every
``learning_epoch`` steps with the chip's weight format.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

# workbench.kernels sizes Numba's thread pool from torch's thread count: import it first.
from workbench import kernels

# isort: split
from numba import njit, prange

from workbench.backends import RunResult, _shift, projection_key
from workbench.energy import energy_table, priced
from workbench.neurons import propagators
from workbench.spec import INPUT, NetworkSpec, Projection
from workbench.variation import RELATIVE, VariationProfile, draw_neurons, noise_generator

from .base import (
    EmulatedNetwork,
    HardwareProfile,
    Violation,
    figure,
    resource_table,
    straight_through,
    summed_sizes,
)

LAVA_LIF = "Lava lava/proc/lif/models.py, PyLifModelBitAcc / AbstractPyLifModelFixed"
LAVA_DENSE = "Lava lava/proc/dense/models.py PyDenseModelBitAcc; lava/utils/weightutils.py"
LAVA_LEARNING = "Lava lava/magma/core/learning/constants.py and model/py/connection.py"
DAVIES = (
    "Davies et al. 2018, 'Loihi: a neuromorphic manycore processor with on-chip learning', "
    "IEEE Micro 38(1)"
)
NENGO_LOIHI = (
    "NengoLoihi nengo_loihi/block.py "
    "(MAX_COMPARTMENTS, MAX_IN_AXONS, MAX_OUT_AXONS, MAX_SYNAPSE_BITS)"
)
BRIAN2LOIHI = "Michaelis et al. 2022, Brian2Loihi, Front. Neuroinform. 16:1015624"
DAVIES_ENERGY = f"{DAVIES}, Table 1 (energy per operation, 14 nm)"
RAO_AHP = (
    "Rao, Plank, Wild & Maass 2022, 'A long short-term memory for AI applications in "
    "spike-based neuromorphic hardware', Nature Machine Intelligence 4: AHP neurons on Loihi as "
    "multi-compartment neurons"
)
NXSDK_LSNN = (
    "Intel NxSDK models intel-nrc-ecosystem/models nxsdk_modules_ncl/lsnn "
    "(apps/relnet/RecurrentLsnn.py, src/lsnn.py: auxCxProto decayAuxU 4096, stackOut PUSH; "
    "mainCxProto joinOp ADD, stackIn POP_A; main -> aux inhibitory synapse)"
)
NXSDK_NOISE = (
    "Intel NxSDK tutorial (n2Core dendriteSharedCfg: noiseExp0, noiseMantOffset0, "
    "noiseAtDendOrVm; 'the noise term is (lfsr() - 2**7 + noiseMantOffset0 * 2**6) * "
    "2**(noiseExp0 - 7)'); NxSDK CompartmentPrototype enableNoise, randomizeCurrent, "
    "randomizeVoltage, noiseMantAtCompartment, noiseExpAtCompartment; NengoLoihi "
    "nengo_loihi/emulator/interface.py NoiseState (noise into u's input, or into v's)"
)
STRESS = (
    "a stress test, not a measured device: Loihi is digital and has no analog mismatch; 0 is "
    "the plain chip"
)
NOISE_AT = ("off", "u", "v")


@dataclass(frozen=True)
class LoihiProfile(HardwareProfile):
    """Loihi 1's figures, each with its source; ``assumption=True`` marks what is not published
    in a form this emulator could check."""

    name: str = "Loihi"
    cores: int = figure(128, "neuromorphic cores per chip", DAVIES)
    compartments_per_core: int = figure(1024, "compartments", f"{DAVIES}; {NENGO_LOIHI}")
    fan_in_axons_per_core: int = figure(4096, "input axons per core", NENGO_LOIHI)
    fan_out_axons_per_core: int = figure(4096, "output axons per core", NENGO_LOIHI)
    synapse_memory_bits_per_core: int = figure(
        1_048_576,
        "bits (128 KiB)",
        f"{NENGO_LOIHI}; {DAVIES}: 16 MB synaptic memory over 128 cores",
    )
    synapse_block: int = figure(
        64,
        "synapses per synapse-memory block (10 header bits, 64-bit words)",
        "NengoLoihi SynapseConfig.bits_per_axon, dense format",
        assumption=True,
    )
    state_bits: int = figure(24, "bits, signed (u and v)", f"{LAVA_LIF} (uv_bitwidth 24)")
    decay_bits: int = figure(
        12,
        "bits; decay_u = du + 1 (ds_offset), decay_v = dv (dm_offset 0), du/dv in 0..4095",
        f"{LAVA_LIF} (decay_shift 12, ds_offset/dm_offset); {BRIAN2LOIHI}",
    )
    weight_bits: int = figure(
        8,
        "bits of precision, mixed sign: stored even in [-256, 254]",
        f"{LAVA_DENSE} (clip_weights num_bits 8, truncate_weights num_weight_bits 8)",
    )
    weight_shift: int = figure(6, "bits (synaptic input << 6)", f"{LAVA_LIF} (act_shift 6)")
    weight_exponent_min: int = figure(
        -8, "", "NxSDK wgtExp as a 4-bit signed field (NengoLoihi uses -7..0)", assumption=True
    )
    weight_exponent_max: int = figure(
        7, "", "NxSDK wgtExp as a 4-bit signed field (NengoLoihi uses -7..0)", assumption=True
    )
    threshold_mantissa_bits: int = figure(
        17, "bits, unsigned", f"{LAVA_LIF} (vth precision 17); NengoLoihi VTH_MAN_MAX"
    )
    threshold_shift: int = figure(6, "bits (vth = mantissa << 6)", f"{LAVA_LIF} (vth_shift 6)")
    bias_mantissa_bits: int = figure(13, "bits, signed", f"{LAVA_LIF} (bias_mant precision 13)")
    bias_exponent_max: int = figure(7, "(3-bit exponent)", f"{LAVA_LIF} (bias_exp precision 3)")
    max_delay: int = figure(62, "steps per synapse", f"{DAVIES} (programmable synaptic delays)")
    pipeline_latency: int = figure(
        1, "step from a spike to its target's u", f"{LAVA_DENSE} (a_out buffered one step)"
    )
    max_refractory_steps: int = figure(
        63,
        "steps after a spike",
        f"{BRIAN2LOIHI} (refractory 1...64, counting the spike step); "
        "not in Lava's bit-accurate LIF",
        assumption=True,
    )
    u_wraps_modulo: bool = figure(
        False,
        "u wraps once, as Lava's bit-accurate model (an overflow past 2**23 subtracts 2**24, "
        "one to -2**23 or below adds it; 2**23 itself passes; sums in int32); True: modulo "
        "2**24, a 24-bit two's-complement register, which no public source confirms for the "
        "silicon",
        LAVA_LIF,
    )
    trace_bits: int = figure(7, "bits (x1, x2, y1, y2)", f"{LAVA_LEARNING} (W_TRACE 7)")
    learning_mantissa_bits: int = figure(
        4, "bits of a rule term's scale mantissa", f"{LAVA_LEARNING} (W_S_MANT 4)"
    )
    deterministic_rounding: bool = figure(
        True,
        "trace decay rounds down and weight updates round to nearest (the chip rounds "
        "stochastically)",
        f"{DAVIES}; {BRIAN2LOIHI} (traces differ slightly from the chip by stochastic rounding)",
        assumption=True,
    )
    ahp_compartments: int = figure(
        2,
        "compartments per alif neuron: the soma and an auxiliary compartment whose v holds the "
        "AHP current (full current decay, never spikes), joined into the soma's input to v by "
        "ADD (taken to leave u's stored state alone), fed the soma's spikes by one inhibitory "
        "synapse",
        f"{RAO_AHP}; {NXSDK_LSNN}",
        assumption=True,
    )
    noise_at: str = figure(
        "off",
        "where each compartment's temporal noise enters: 'off'; 'u' (randomizeCurrent, "
        "noiseAtDendOrVm 0: added to u's synaptic input) or 'v' (randomizeVoltage, "
        "noiseAtDendOrVm 1: added to v's input, with u and the bias); an alif's auxiliary "
        "compartment gets none",
        NXSDK_NOISE,
    )
    noise_mantissa: int = figure(
        0,
        "noiseMantOffset0: offset of the random integer, in units of 64 (the study's range; "
        "the field's width is not published)",
        NXSDK_NOISE,
        True,
        (-15, 15),
    )
    noise_exponent: int = figure(
        7,
        "noiseExp0: each step's noise is floor((r + 64 mantissa) 2**(exponent - 7)), r uniform "
        "in -128..127 (an 8-bit LFSR less 2**7); the LFSR's sequence, r's exact range and the "
        "flooring shift for exponents below 7 are assumed (a seeded generator stands in for "
        "the LFSR; NengoLoihi's emulator draws -127..127 and rounds toward zero)",
        NXSDK_NOISE,
        True,
        (0, 23),
    )
    mismatch_tau_mem: float = figure(
        0.0, "relative sigma per compartment of tau_mem (decay_v)", STRESS, True, RELATIVE
    )
    mismatch_tau_syn: float = figure(
        0.0, "relative sigma per compartment of tau_syn (decay_u)", STRESS, True, RELATIVE
    )
    mismatch_threshold: float = figure(
        0.0,
        "relative sigma per compartment of the threshold (its mantissa, for v_reset 0)",
        STRESS,
        True,
        RELATIVE,
    )
    energy_synaptic_op: float = figure(
        23.6e-12, "J per synaptic spike operation (the table's minimum)", DAVIES_ENERGY
    )
    energy_update: float = figure(52e-12, "J per compartment update (inactive)", DAVIES_ENERGY)
    energy_spiking_update: float = figure(
        29e-12,
        "J more for an update that spikes (active 81 pJ - inactive 52 pJ)",
        f"{DAVIES_ENERGY}; 'active' read as an update that fires (an interpretation)",
        assumption=True,
    )
    energy_spike_message: float = figure(
        1.7e-12,
        "J per spike message within a tile (no tile hops: 3-4 pJ each)",
        f"{DAVIES_ENERGY}; every spike, the input's included, taken to stay in its tile",
        assumption=True,
    )

    @property
    def state_max(self) -> int:
        return 2 ** (self.state_bits - 1)

    @property
    def weight_grid(self) -> int:
        """Step between representable stored weights (2 for 8-bit mixed-sign weights)."""
        return 2 ** (9 - self.weight_bits)


# ------------------------------------------------------------------------------ configuration
@dataclass
class CompartmentConfig:
    """One population's compartments on the chip (integers), plus how they map to float."""

    # Per compartment (long tensors [n]) where a mismatch stress test draws them.
    decay_u: int | torch.Tensor
    decay_v: int | torch.Tensor
    threshold_mantissa: int | torch.Tensor | None  # None: a non-spiking compartment (LI readout)
    bias_mantissa: int = 0
    bias_exponent: int = 0
    refractory_steps: int = 0
    v_init: int = 0
    scale: float = 1.0  # chip units of v per float unit
    origin: float = 0.0  # the float value of v = 0 on the chip (v_reset, or v_leak for LI)
    current_gain: float = 1.0  # the float propagator p from I to V (u = scale * p * I)
    # alif: the auxiliary (AHP) compartment; ahp_decay None: a one-compartment neuron.
    ahp_decay: int | None = None  # 12-bit voltage decay of the auxiliary compartment
    ahp_weight: int = 0  # the soma -> auxiliary synapse's weight (inhibitory, -255..0)
    ahp_exponent: int = 0  # its weight exponent (0..7)

    @property
    def bias(self) -> int:
        """``bias_mantissa * 2**bias_exponent``; a negative exponent shifts right (flooring),
        as Lava's ``scale_bias`` does."""
        e = self.bias_exponent
        return self.bias_mantissa << e if e >= 0 else self.bias_mantissa >> -e

    def ahp_increment(self, weight_shift: int = 6) -> int:
        """What one spike adds to the auxiliary compartment's ``v`` (``h``): the stored weight
        (clipped to -255..0, Lava's inhibitory 8-bit storage) shifted by its exponent and by
        ``weight_shift``."""
        w = max(-255, min(0, int(self.ahp_weight)))
        e = self.ahp_exponent
        return (w << e if e >= 0 else w >> -e) << weight_shift


@dataclass
class SynapseConfig:
    """One projection on the chip: weights, weight exponent, programmed delays.

    ``weights`` are the integers as written to the chip; the chip stores them as Lava does
    (:func:`stored_weights`: clipped and truncated by ``sign_mode``, which is inferred from the
    weights when None), and a run uses the stored values."""

    weights: torch.Tensor  # long [target, source]
    weight_exponent: int
    delays: torch.Tensor  # long [target, source], programmed delay (recurrent: spec delay + 1)
    sign_mode: str | None = None  # "mixed", "excitatory", "inhibitory"; None: from the weights
    weight_bits: int = 8  # Lava's num_weight_bits


SIGN_MODES = ("mixed", "excitatory", "inhibitory")


def stored_weights(
    weights: torch.Tensor, sign_mode: str | None = None, weight_bits: int = 8
) -> torch.Tensor:
    """The weights as Lava's Dense stores them (``clip_weights`` then ``truncate_weights`` in
    ``lava/utils/weightutils.py``).  ``sign_mode`` None: excitatory if no weight is negative,
    inhibitory if none is positive, else mixed.  Clipped to [-256, 255] (mixed), [0, 255]
    (excitatory) or [-255, 0] (inhibitory), then the low ``8 - weight_bits`` bits are dropped,
    one more in mixed mode (its sign takes a bit): ``(w >> k) << k``, applied to ``-w`` for
    inhibitory weights.  So mixed-sign 8-bit weights are even in [-256, 254], and single-sign
    ones keep odd values."""
    if sign_mode is None:
        if weights.numel() == 0 or int(weights.min()) >= 0:
            sign_mode = "excitatory"
        elif int(weights.max()) <= 0:
            sign_mode = "inhibitory"
        else:
            sign_mode = "mixed"
    if sign_mode not in SIGN_MODES:
        raise ValueError(f"sign_mode: {sign_mode!r} must be one of {list(SIGN_MODES)} or None")
    if not 1 <= weight_bits <= 8:
        raise ValueError(f"weight_bits: {weight_bits!r} must be an integer in 1..8")
    mixed = sign_mode == "mixed"
    w = -weights if sign_mode == "inhibitory" else weights
    w = w.clamp(-256 if mixed else 0, 255)
    drop = 8 - weight_bits + int(mixed)
    w = (w >> drop) << drop
    return -w if sign_mode == "inhibitory" else w


@dataclass
class ChipConfig:
    compartments: dict[str, CompartmentConfig]
    synapses: dict[str, SynapseConfig]  # keyed by projection_key (``source__target``)


@dataclass
class ChipRun:
    """The integer result of a run: ``[time, batch, neurons]`` long tensors per population."""

    spikes: dict[str, torch.Tensor]
    u: dict[str, torch.Tensor]
    v: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # after learning
    ahp: dict[str, torch.Tensor] = field(default_factory=dict)  # alif: the auxiliary v (h)


# ------------------------------------------------------------------------------ learning rule
TRACES = ("x1", "x2", "y1", "y2")
FACTORS = ("x0", "y0", "w", *TRACES)
_TERM = re.compile(r"[+-]?[^+-]+")


@dataclass(frozen=True)
class Term:
    """``mantissa * 2**exponent * product(factors)``; factors from x0, y0, x1, x2, y1, y2, w."""

    mantissa: int
    exponent: int
    factors: tuple[str, ...]


@dataclass(frozen=True)
class LearningRule:
    """A Loihi sum-of-products weight rule with its traces.

    ``dw`` is a string such as ``"2^-2*x1*y0 - 2^-2*y1*x0"`` (pair STDP) or a sequence of
    :class:`Term`.  ``x0``/``y0`` are 1 when the pre/post neuron spiked during the epoch;
    ``x1``, ``x2`` (pre) and ``y1``, ``y2`` (post) are 7-bit traces that decay every step by
    ``x * (4096 - decay) >> 12`` and then jump by their impulse on a spike (saturating at 127).
    Every ``learning_epoch`` steps ``w <- w + dw`` is rounded to the weight format (nearest
    representable value) and clipped to the chip's weight range.  Pre traces follow the
    source's emitted spikes (the synapse's delay does not enter the rule).
    """

    dw: str | tuple[Term, ...]
    x1_impulse: int = 0
    x1_decay: int = 0
    x2_impulse: int = 0
    x2_decay: int = 0
    y1_impulse: int = 0
    y1_decay: int = 0
    y2_impulse: int = 0
    y2_decay: int = 0
    learning_epoch: int = 1

    def __post_init__(self):
        terms = parse_rule(self.dw) if isinstance(self.dw, str) else tuple(self.dw)
        object.__setattr__(self, "terms", terms)
        problems = []
        for name in TRACES:
            impulse, decay = getattr(self, f"{name}_impulse"), getattr(self, f"{name}_decay")
            if not (isinstance(impulse, int) and 0 <= impulse <= 127):
                problems.append(f"{name}_impulse: {impulse!r} must be an integer from 0 to 127")
            if not (isinstance(decay, int) and 0 <= decay <= 4096):
                problems.append(f"{name}_decay: {decay!r} must be an integer from 0 to 4096")
        if not (isinstance(self.learning_epoch, int) and self.learning_epoch >= 1):
            problems.append(f"learning_epoch: {self.learning_epoch!r} must be an integer >= 1")
        for term in terms:
            if abs(term.mantissa) > 15:
                problems.append(
                    f"dw: mantissa {term.mantissa} of a term exceeds the 4-bit magnitude 15"
                )
            bad = [f for f in term.factors if f not in FACTORS]
            if bad:
                problems.append(f"dw: unknown factor(s) {bad}; allowed: {list(FACTORS)}")
        if problems:
            raise ValueError("; ".join(problems))

    @staticmethod
    def trace_decay(tau_steps: float) -> int:
        """The 12-bit decay of a trace with time constant ``tau_steps``."""
        return round(4096 * (1 - math.exp(-1 / tau_steps)))


def parse_rule(text: str) -> tuple[Term, ...]:
    """Parse ``"2^-2*x1*y0 - 3*2^-4*y1*x0"`` into :class:`Term` s (integers, ``2^k`` and the
    factors x0, y0, x1, x2, y1, y2, w, joined by ``*``)."""
    compact = text.replace(" ", "")
    # Keep the sign of an exponent ("2^-2") inside its term.
    protected = compact.replace("^-", "^~").replace("^+", "^")
    if not protected or not re.fullmatch(r"([+-]?[^+-]+)+", protected):
        raise ValueError(f"dw: {text!r} is not a sum of products")
    terms = []
    for raw in _TERM.findall(protected):
        sign = -1 if raw.startswith("-") else 1
        body = raw.lstrip("+-")
        mantissa, exponent, factors = sign, 0, []
        for part in body.split("*"):
            if re.fullmatch(r"2\^~?\d+", part):
                exponent += int(part[2:].replace("~", "-"))
            elif re.fullmatch(r"\d+", part):
                mantissa *= int(part)
            elif part in FACTORS:
                factors.append(part)
            else:
                raise ValueError(
                    f"dw: {part!r} in {text!r} is not an integer, a power 2^k or one of "
                    f"{list(FACTORS)}"
                )
        terms.append(Term(mantissa, exponent, tuple(factors)))
    return tuple(terms)


# ------------------------------------------------------------------------------ integer core
def _decay(x: torch.Tensor, decay: int) -> torch.Tensor:
    """``sign(p) * (|p| >> 12)`` with ``p = x * (4096 - decay)``: the chip's decay, rounded
    toward zero (also for Lava's decay of 4097, ``du = 4096`` plus the offset)."""
    product = x * (4096 - decay)
    return _int32(torch.sign(product) * (product.abs() >> 12))


def _wrap(x: torch.Tensor, bits: int) -> torch.Tensor:
    half = 2 ** (bits - 1)
    return torch.remainder(x + half, 2 * half) - half


def _int32(x: torch.Tensor) -> torch.Tensor:
    """``x`` wrapped to int32, as Lava's int32 arithmetic does (held in int64)."""
    return _wrap(x, 32)


def _exp_shift(x: torch.Tensor, exponent: int) -> torch.Tensor:
    return x << exponent if exponent >= 0 else x >> -exponent


def _accumulate(spikes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``spikes @ weights.T`` exactly (float64 products of small integers are exact)."""
    return (spikes.double() @ weights.double().T).long()


def _ahp_step(comp, ahp, fired, profile: LoihiProfile):
    """One step of an alif's auxiliary compartment: its ``v`` (``h``) decayed, plus the
    increment for each soma spike of the step before (``fired``, 0/1), saturated at 24 bits."""
    edge = profile.state_max - 1
    total = _int32(_decay(ahp, comp.ahp_decay) + fired * comp.ahp_increment(profile.weight_shift))
    return total.clamp(-edge, edge)


def _noise(draws: torch.Tensor, profile: LoihiProfile) -> torch.Tensor:
    """A step's compartment noise from its random integers ``draws`` (-128..127):
    ``(r + 64 mantissa) * 2**(exponent - 7)``, the right shift flooring."""
    return _exp_shift(draws + (profile.noise_mantissa << 6), profile.noise_exponent - 7)


def noise_draws(
    spec: NetworkSpec, profile: LoihiProfile, noise_seed: int, n_steps: int, batch: int
) -> dict[str, torch.Tensor]:
    """The random integers (-128..127, long ``[T, B, n]``) of every population's compartment
    noise for a run seeded ``noise_seed`` (empty when ``profile.noise_at`` is 'off'): the
    population ``k`` of ``spec.populations`` draws from stream ``k`` of
    :func:`workbench.variation.noise_generator`, so the same seed gives the same noise."""
    if profile.noise_at == "off":
        return {}
    out = {}
    for k, pop in enumerate(spec.populations):
        generator = noise_generator(None, noise_seed, False, stream=k)
        shape = (n_steps, batch, pop.size)
        out[pop.name] = torch.randint(-128, 128, shape, generator=generator, dtype=torch.long)
    return out


def _compartment_step(
    comp, u, v, refractory, activation, profile: LoihiProfile, ahp=None, draws=None
):
    """One step of the chip's CUBA compartments: ``(u, v, refractory, spikes or None)``;
    ``ahp``: an alif's auxiliary ``v`` of this step, joined (ADD) into the input to ``v``;
    ``draws``: this step's noise integers (``profile.noise_at`` says where they enter)."""
    state_max = profile.state_max
    noise_u = noise_v = 0
    if draws is not None and profile.noise_at != "off":
        if profile.noise_at == "u":
            noise_u = _noise(draws, profile)
        else:
            noise_v = _noise(draws, profile)
    total = _int32(_decay(u, comp.decay_u) + (activation << profile.weight_shift) + noise_u)
    if profile.u_wraps_modulo:
        new_u = _wrap(total, profile.state_bits)
    else:  # Lava: one wrap; 2**23 itself passes, -2**23 becomes 2**23
        new_u = torch.where(total > state_max, total - 2 * state_max, total)
        new_u = _int32(torch.where(new_u <= -state_max, total + 2 * state_max, new_u))
    joined = new_u if ahp is None else new_u + ahp
    new_v = _int32(_decay(v, comp.decay_v) + joined + comp.bias + noise_v)
    new_v = new_v.clamp(-(state_max - 1), state_max - 1)
    if comp.threshold_mantissa is None:
        return new_u, new_v, refractory, None
    held = refractory > 0
    new_v = torch.where(held, torch.zeros_like(new_v), new_v)
    fired = (new_v > comp.threshold_mantissa << profile.threshold_shift) & ~held
    new_v = torch.where(fired, torch.zeros_like(new_v), new_v)
    refractory = torch.where(
        fired, torch.full_like(new_v, comp.refractory_steps), (refractory - 1).clamp(min=0)
    )
    return new_u, new_v, refractory, fired.long()


@njit(cache=True, inline="always")
def _int32_int(x):
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@njit(cache=True, inline="always")
def _decay_int(x, decay):
    product = x * (4096 - decay)
    magnitude = abs(product) >> 12
    return _int32_int(magnitude if product > 0 else -magnitude)


@njit(cache=True, inline="always")
def _shift_int(x, exponent):
    return x << exponent if exponent >= 0 else x >> -exponent


@njit(cache=True, inline="always")
def _noise_int(r, offset, exponent):
    """:func:`_noise` for one compartment: ``(r + offset) * 2**(exponent - 7)``, flooring."""
    return _shift_int(r + offset, exponent - 7)


@njit(cache=True, inline="always")
def _add_slots(out, source, b, t, w_t, delays, exponent, slot):
    """``out += sum_g shift(source[t - 1 - delays[g], b] @ w_t[g], exponent)``: the input of
    step ``t`` through one projection, each delay slot's sum shifted on its own (Lava's
    DelayDense); ``slot`` is scratch of ``out``'s size."""
    for g in range(w_t.shape[0]):
        s = t - 1 - delays[g]
        if s >= 0:
            slot[:] = 0
            kernels.add_weighted_rows(slot, source[s, b], w_t[g])
            for j in range(out.shape[0]):
                out[j] += _shift_int(slot[j], exponent)


@njit(parallel=True, cache=True)
def _compartment_loop(external, rec_w_t, rec_delays, rec_exponent, decay_u, decay_v, bias,
                      threshold, spiking, refractory_steps, v_init, weight_shift, state_bits,
                      wraps_modulo, ahp_decay, ahp_increment, noise, noise_at, noise_offset,
                      noise_exponent, spikes, u_out, v_out, ahp_out):  # fmt: skip
    """:func:`_compartment_step` over time for one population, one sample per thread.
    ``external``: the accumulated, exponent-shifted input from other populations ``[T, B, n]``;
    ``rec_w_t``: the self-projection's weights per delay group ``[G, source, target]`` (G = 0:
    none) with their ``rec_delays`` and one ``rec_exponent``; ``ahp_decay`` (< 0: no auxiliary
    compartment) and ``ahp_increment``: an alif's AHP compartment (:func:`_ahp_step`);
    ``decay_u``, ``decay_v`` and ``threshold`` are per compartment ``[n]``; ``noise``: the
    noise integers ``[T, B, n]`` (:func:`noise_draws`) entering u (``noise_at`` 1) or v (2),
    with ``noise_offset`` (64 times the mantissa) and ``noise_exponent``; writes
    ``spikes``, ``u_out``, ``v_out`` and ``ahp_out`` ``[T, B, n]`` (int64; with no rows: not
    recorded).  Integer arithmetic throughout, as the torch loop."""
    n_steps, batch, n = external.shape
    state_max = 1 << (state_bits - 1)
    keep = u_out.shape[0] > 0
    adaptive = ahp_decay >= 0
    keep_ahp = adaptive and ahp_out.shape[0] > 0
    for b in prange(batch):
        u = np.zeros(n, np.int64)
        v = np.full(n, v_init, np.int64)
        refractory = np.zeros(n, np.int64)
        ahp = np.zeros(n, np.int64)
        acc = np.zeros(n, np.int64)
        slot = np.zeros(n, np.int64)
        for t in range(n_steps):
            acc[:] = 0
            _add_slots(acc, spikes, b, t, rec_w_t, rec_delays, rec_exponent, slot)
            for j in range(n):
                noise_u = noise_v = 0
                if noise_at == 1:
                    noise_u = _noise_int(noise[t, b, j], noise_offset, noise_exponent)
                elif noise_at == 2:
                    noise_v = _noise_int(noise[t, b, j], noise_offset, noise_exponent)
                total = _int32_int(
                    _decay_int(u[j], decay_u[j])
                    + ((external[t, b, j] + acc[j]) << weight_shift)
                    + noise_u
                )
                if wraps_modulo:  # modulo 2 * state_max, a power of two: a mask
                    new_u = ((total + state_max) & (2 * state_max - 1)) - state_max
                else:  # Lava: one wrap; 2**23 itself passes, -2**23 becomes 2**23
                    new_u = total - 2 * state_max if total > state_max else total
                    if new_u <= -state_max:
                        new_u = _int32_int(total + 2 * state_max)
                joined = new_u
                if adaptive:  # the auxiliary compartment first, then its ADD join
                    h = _decay_int(ahp[j], ahp_decay)
                    if t > 0 and spikes[t - 1, b, j]:
                        h = _int32_int(h + ahp_increment)
                    ahp[j] = min(max(h, -(state_max - 1)), state_max - 1)
                    joined = new_u + ahp[j]
                new_v = _int32_int(_decay_int(v[j], decay_v[j]) + joined + bias + noise_v)
                new_v = min(max(new_v, -(state_max - 1)), state_max - 1)
                if spiking:
                    held = refractory[j] > 0
                    if held:
                        new_v = 0
                    fired = new_v > threshold[j] and not held
                    if fired:
                        new_v = 0
                        refractory[j] = refractory_steps
                    else:
                        refractory[j] = max(refractory[j] - 1, 0)
                    spikes[t, b, j] = 1 if fired else 0
                u[j] = new_u
                v[j] = new_v
            if keep:
                u_out[t, b, :] = u
                v_out[t, b, :] = v
            if keep_ahp:
                ahp_out[t, b, :] = ahp


@njit(parallel=True, cache=True)
def _add_projection(source, w_t, delays, exponent, out):
    """``out[t] += sum_g shift(source[t - 1 - delays[g]] @ w_t[g])``: one projection's
    exponent-shifted input ``[T, B, n]`` from the source's spikes ``[T, B, m]`` (0/1), event by
    event (a spike adds one row of weights); each delay group ``g`` of ``w_t [G, m, n]`` is
    shifted on its own (Lava's delay slots)."""
    n_steps, batch, n = out.shape
    for b in prange(batch):
        slot = np.zeros(n, np.int64)
        for t in range(n_steps):
            _add_slots(out[t, b], source, b, t, w_t, delays, exponent, slot)


def _delay_groups(groups) -> tuple[np.ndarray, np.ndarray]:
    """``[(delay, weights [target, source])]`` as the compiled loops take them: delays
    ``[G]`` and transposed weights ``[G, source, target]`` (int64)."""
    delays = np.array([d for d, _ in groups], np.int64)
    w_t = np.stack([w.T.contiguous().numpy() for _, w in groups]).astype(np.int64)
    return delays, w_t


def _per_compartment(value, n: int) -> np.ndarray:
    """An integer setting (one for all, or a tensor per compartment) as an int64 array [n]."""
    value = value.tolist() if torch.is_tensor(value) else value
    return np.ascontiguousarray(np.broadcast_to(np.asarray(value, np.int64), (n,)))


def _run_compartments(
    comp, external, own, profile, spikes, rec_u, rec_v, rec_ahp, draws=None
) -> None:
    """The compiled loop for one population (``own``: its self-projection, or None;
    ``draws``: its noise integers, or None)."""
    kernels._threads()
    n = external.shape[2]
    if own is None:
        w_t, delays, exponent = np.zeros((0, n, n), np.int64), np.zeros(0, np.int64), 0
    else:
        groups, exponent = own
        delays, w_t = _delay_groups(groups)
    spiking = comp.threshold_mantissa is not None
    threshold = _per_compartment(comp.threshold_mantissa if spiking else 0, n)
    threshold = threshold << profile.threshold_shift
    ahp_decay = -1 if comp.ahp_decay is None else comp.ahp_decay
    increment = comp.ahp_increment(profile.weight_shift)
    noise_at = NOISE_AT.index(profile.noise_at) if draws is not None else 0
    noise = draws.numpy() if noise_at else np.zeros((0, 0, 0), np.int64)
    outputs = (spikes.numpy(), rec_u.numpy(), rec_v.numpy(), rec_ahp.numpy())
    _compartment_loop(external.contiguous().numpy(), w_t, delays, exponent,
                      _per_compartment(comp.decay_u, n), _per_compartment(comp.decay_v, n),
                      comp.bias, threshold, spiking, comp.refractory_steps, comp.v_init,
                      profile.weight_shift, profile.state_bits, profile.u_wraps_modulo,
                      ahp_decay, increment, noise, noise_at, profile.noise_mantissa << 6,
                      profile.noise_exponent, *outputs)  # fmt: skip


def simulate(
    spec: NetworkSpec,
    config: ChipConfig,
    x: torch.Tensor,
    learning: dict[str, LearningRule] | None = None,
    profile: LoihiProfile | None = None,
    kernel: str = "compiled",
    record=None,
    noise_seed: int = 0,
) -> ChipRun:
    """Run ``spec`` on the emulated chip with integer ``config``; ``x`` is ``[T, B, inputs]``
    of 0/1.  ``learning`` maps projection keys to rules (batch size 1).  ``record``: the
    populations whose ``u`` and ``v`` (and an alif's auxiliary ``v``, ``ChipRun.ahp``) the run
    returns (None: all); spikes are always returned.

    Every spike reaches its target at least one step later, so populations can be run one
    after another over the whole time axis (input from earlier populations precomputed with
    one matrix product) unless a projection comes from a population computed later or a rule
    changes the weights during the run; then all populations advance together, step by step.
    ``kernel``: ``"compiled"`` runs each population's time loop in :func:`_compartment_loop`
    (on the CPU, layer by layer, at most one self-projection); ``"torch"`` is the reference
    loop of :func:`_compartment_step`.  The two give the same integers (tested).
    ``noise_seed``: the seed of the compartments' noise (:func:`noise_draws`), where
    ``profile.noise_at`` turns it on.
    """
    profile = profile or LoihiProfile()
    if profile.noise_at not in NOISE_AT:
        raise ValueError(f"profile.noise_at: {profile.noise_at!r} must be one of {list(NOISE_AT)}")
    if ((x != 0) & (x != 1)).any():
        raise ValueError("input: Loihi spikes are binary; the input must hold only 0 and 1")
    learning = {k: r for k, r in (learning or {}).items() if r is not None}
    if learning and x.shape[1] != 1:
        raise ValueError(f"learning: runs one sample at a time; batch size is {x.shape[1]}")
    n_steps, batch = x.shape[:2]
    device = x.device
    order = spec.order()
    spikes = {INPUT: x.to(torch.long)}
    for name in order:
        shape = (n_steps, batch, spec.size_of(name))
        spikes[name] = torch.zeros(shape, dtype=torch.long, device=device)
    recorded = set(order) if record is None else set(record)
    rec_u = {n: torch.empty_like(spikes[n]) for n in order}  # every step is written
    rec_v = {n: torch.empty_like(spikes[n]) for n in order}
    adaptive = {n for n in order if config.compartments[n].ahp_decay is not None}
    rec_ahp = {n: torch.empty_like(spikes[n]) for n in adaptive}
    weights = {
        k: stored_weights(s.weights.long(), s.sign_mode, s.weight_bits).to(device)
        for k, s in config.synapses.items()
    }
    delays = {k: s.delays.to(device) for k, s in config.synapses.items()}
    position = {name: k for k, name in enumerate(order)}
    draws = noise_draws(spec, profile, noise_seed, n_steps, batch)
    draws = {k: d.to(device) for k, d in draws.items()}
    layerwise = not learning and all(
        p.source == INPUT or p.source == p.target or position[p.source] < position[p.target]
        for p in spec.projections
    )

    def masked(key: str):
        return [(d, weights[key] * (delays[key] == d)) for d in delays[key].unique().tolist()]

    def arriving(proj, key, t, groups) -> torch.Tensor:
        """The projection's input at step ``t``: each delay slot's sum exponent-shifted."""
        acc = torch.zeros(batch, spec.size_of(proj.target), dtype=torch.long, device=device)
        for d, w in groups:
            if t - 1 - d >= 0:
                acc += _exp_shift(
                    _accumulate(spikes[proj.source][t - 1 - d], w),
                    config.synapses[key].weight_exponent,
                )
        return acc

    def initial(name):
        """``(u, v, refractory, h)``: ``h`` the auxiliary (AHP) ``v`` of an alif, else None."""
        n = spec.size_of(name)
        u = torch.zeros(batch, n, dtype=torch.long, device=device)
        ahp = torch.zeros_like(u) if name in adaptive else None
        return u, torch.full_like(u, config.compartments[name].v_init), torch.zeros_like(u), ahp

    def step(name, t, state, activation):
        """One step of population ``name``: the new state; writes its spikes and records."""
        u, v, refractory, ahp = state
        comp = config.compartments[name]
        if ahp is not None:  # the auxiliary compartment first, fed the soma's last spikes
            last = spikes[name][t - 1] if t > 0 else torch.zeros_like(ahp)
            ahp = _ahp_step(comp, ahp, last, profile)
            rec_ahp[name][t] = ahp
        noise = draws[name][t] if name in draws else None
        u, v, refractory, fired = _compartment_step(
            comp, u, v, refractory, activation, profile, ahp, noise
        )
        if fired is not None:
            spikes[name][t] = fired
        rec_u[name][t], rec_v[name][t] = u, v
        return u, v, refractory, ahp

    if layerwise:
        for name in order:
            comp = config.compartments[name]
            external = torch.zeros_like(spikes[name])
            incoming = [(p, projection_key(p)) for p in spec.incoming(name)]
            own = [(p, key, masked(key)) for p, key in incoming if p.source == name]
            compiled = kernel == "compiled" and device.type == "cpu" and len(own) <= 1
            for proj, key in incoming:
                if proj.source == name:
                    continue
                source, exponent = spikes[proj.source], config.synapses[key].weight_exponent
                if compiled:  # event-driven, in integers
                    delays_g, w_t = _delay_groups(masked(key))
                    _add_projection(kernels._array(source), w_t, delays_g, exponent,
                                    external.numpy())  # fmt: skip
                    continue
                for d, w in masked(key):  # each delay slot shifted on its own, as Lava does
                    lag = 1 + d
                    if lag < n_steps:
                        external[lag:] += _exp_shift(
                            _accumulate(source[: n_steps - lag], w), exponent
                        )
            if compiled:
                mine = None
                if own:
                    proj, key, groups = own[0]
                    mine = (groups, config.synapses[key].weight_exponent)
                if name not in recorded:  # the loop writes no u, v and h
                    rec_u[name] = rec_v[name] = external.new_empty(0, 0, 0)
                    if name in adaptive:
                        rec_ahp[name] = external.new_empty(0, 0, 0)
                ahp_out = rec_ahp.get(name, external.new_empty(0, 0, 0))
                _run_compartments(
                    comp,
                    external,
                    mine,
                    profile,
                    spikes[name],
                    rec_u[name],
                    rec_v[name],
                    ahp_out,
                    draws.get(name),
                )
                continue
            state = initial(name)
            for t in range(n_steps):
                activation = external[t]
                for proj, key, groups in own:
                    activation = activation + arriving(proj, key, t, groups)
                state = step(name, t, state, activation)
    else:
        state = {name: initial(name) for name in order}
        engines = {k: _LearningEngine(rule, spec, k, profile) for k, rule in learning.items()}
        groups = {k: masked(k) for k in weights}
        for t in range(n_steps):
            for name in order:
                activation = 0
                for proj in spec.incoming(name):
                    key = projection_key(proj)
                    activation = activation + arriving(proj, key, t, groups[key])
                if not torch.is_tensor(activation):
                    activation = torch.zeros_like(state[name][0])
                state[name] = step(name, t, state[name], activation)
            for key, engine in engines.items():
                weights[key] = engine.step(t, spikes, weights[key])
                groups[key] = masked(key)
    spiking = {n: spikes[n] for n in order if config.compartments[n].threshold_mantissa is not None}
    rec_u = {n: u for n, u in rec_u.items() if n in recorded}
    rec_v = {n: v for n, v in rec_v.items() if n in recorded}
    rec_ahp = {n: h for n, h in rec_ahp.items() if n in recorded}
    return ChipRun(spiking, rec_u, rec_v, weights, rec_ahp)


class _LearningEngine:
    """Traces and the sum-of-products update of one plastic projection (batch size 1)."""

    def __init__(self, rule: LearningRule, spec: NetworkSpec, key: str, profile: LoihiProfile):
        self.rule, self.profile = rule, profile
        proj = next(p for p in spec.projections if projection_key(p) == key)
        self.source, self.target = proj.source, proj.target
        n_pre, n_post = spec.size_of(proj.source), spec.size_of(proj.target)
        self.traces = {
            name: torch.zeros(n_pre if name[0] == "x" else n_post, dtype=torch.long)
            for name in TRACES
        }
        self.x0 = torch.zeros(n_pre, dtype=torch.long)
        self.y0 = torch.zeros(n_post, dtype=torch.long)

    def step(self, t: int, spikes: dict, weights: torch.Tensor) -> torch.Tensor:
        rule, top = self.rule, 2**self.profile.trace_bits - 1
        pre, post = spikes[self.source][t, 0], spikes[self.target][t, 0]
        for name, trace in self.traces.items():
            s = pre if name[0] == "x" else post
            decayed = (trace * (4096 - getattr(rule, f"{name}_decay"))) >> 12
            self.traces[name] = (decayed + getattr(rule, f"{name}_impulse") * s).clamp(max=top)
        self.x0 = self.x0 | pre
        self.y0 = self.y0 | post
        if (t + 1) % rule.learning_epoch:
            return weights
        values = {
            "x0": self.x0[None, :],
            "y0": self.y0[:, None],
            "x1": self.traces["x1"][None, :],
            "x2": self.traces["x2"][None, :],
            "y1": self.traces["y1"][:, None],
            "y2": self.traces["y2"][:, None],
            "w": weights,
        }
        new = apply_rule(rule.terms, values, weights, self.profile)
        self.x0 = torch.zeros_like(self.x0)
        self.y0 = torch.zeros_like(self.y0)
        return new


def apply_rule(terms, values: dict, weights: torch.Tensor, profile: LoihiProfile) -> torch.Tensor:
    """``w + sum(terms)`` rounded to the nearest stored weight (ties up) and clipped."""
    low = min([0, *(term.exponent for term in terms)])
    total = weights << -low
    for term in terms:
        product = torch.full_like(weights, term.mantissa)
        for f in term.factors:
            product = product * values[f]
        total = total + (product << (term.exponent - low))
    grid = profile.weight_grid << -low
    rounded = torch.div(total + grid // 2, grid, rounding_mode="floor") * profile.weight_grid
    return rounded.clamp(-256, 256 - profile.weight_grid)


# ------------------------------------------------------------------------------ the backend
SUPPORTED_MODELS = ("lif", "alif", "li")


class Loihi(EmulatedNetwork):
    """A spec on an emulated Loihi chip.  Options: ``threshold_mantissa`` (LIF threshold, in
    units of 64; default 8192), ``readout_range`` (float units an LI readout spans before its
    24-bit membrane saturates; default 64), ``chip_seed`` (the chip the profile's
    ``mismatch_*`` stress test draws) and ``noise_seed`` (the compartments' noise in
    evaluation, where ``profile.noise_at`` turns it on; default ``seed + 1``)."""

    profile_class = LoihiProfile
    backend_name = "loihi"

    def __init__(
        self,
        spec: NetworkSpec,
        profile: LoihiProfile | None = None,
        seed: int = 0,
        threshold_mantissa: int = 8192,
        readout_range: float = 64.0,
        chip_seed: int = 0,
        noise_seed: int | None = None,
        **options,
    ):
        super().__init__(spec, profile, seed=seed, **options)
        if self.profile.noise_at not in NOISE_AT:
            raise ValueError(
                f"profile.noise_at: {self.profile.noise_at!r} must be one of {list(NOISE_AT)}"
            )
        self.chip_seed = chip_seed
        self.noise_seed = seed + 1 if noise_seed is None else noise_seed
        self._noise = torch.Generator().manual_seed(self.noise_seed)
        if not (isinstance(threshold_mantissa, int) and 1 <= threshold_mantissa < 2**17):
            raise ValueError(
                f"threshold_mantissa: {threshold_mantissa!r} must be an integer from 1 to "
                f"{2**17 - 1} (17 bits)"
            )
        if not (readout_range > 0 and math.isfinite(readout_range)):
            raise ValueError(f"readout_range: {readout_range!r} must be a finite number > 0")
        self.threshold_mantissa = threshold_mantissa
        self.readout_range = {
            p.name: float(readout_range) for p in spec.populations if not p.spiking
        }
        self._map_compartments()

    # ------------------------------------------------------------------ checks and resources
    @classmethod
    def check(cls, spec: NetworkSpec, profile: LoihiProfile | None = None) -> list[Violation]:
        """Every way ``spec`` exceeds the chip (ranges judged for the default mapping)."""
        profile = cls.make_profile(profile)
        chip = profile.name
        out: list[Violation] = []
        add = lambda *a: out.append(Violation(*a, chip))  # noqa: E731
        for k, pop in enumerate(spec.populations):
            path = f"populations[{k}]"
            if pop.model not in SUPPORTED_MODELS:
                add(
                    f"{path}.model",
                    "neuron model",
                    repr(pop.model),
                    "'lif', 'alif' or 'li' (CUBA LIF; alif with an AHP compartment)",
                )
                continue
            p = pop.params
            alpha, beta, gain = propagators(spec.dt, p["tau_mem"], p["tau_syn"])
            decays = [("tau_syn", alpha), ("tau_mem", beta)]
            if pop.model == "alif":
                decays.append(("tau_adapt", math.exp(-spec.dt / p["tau_adapt"])))
            for key, value in decays:
                decay = round(4096 * (1 - value))
                if decay < 1:
                    add(
                        f"{path}.params.{key}",
                        f"12-bit decay of {key}={p[key]:g} ms at dt={spec.dt:g} ms",
                        decay,
                        "1 to 4096 (tau up to about 8191 steps)",
                    )
            if not pop.spiking:
                continue
            if p["reset"] != "zero":
                add(f"{path}.params.reset", "reset mode", repr(p["reset"]), "'zero' (v -> 0)")
            if p["refractory_steps"] > profile.max_refractory_steps:
                add(
                    f"{path}.params.refractory_steps",
                    "refractory period",
                    p["refractory_steps"],
                    f"at most {profile.max_refractory_steps} steps",
                )
            span = p["threshold"] - p["v_reset"]
            if span <= 0:
                add(f"{path}.params.threshold", "threshold - v_reset", span, "a value > 0")
                continue
            scale = 8192 * 64 / span
            if pop.model == "alif":
                ahp = scale * _adapt_gain(spec.dt, p) * p["adapt_strength"]
                ahp_max = _ahp_max(profile)
                if ahp > ahp_max:
                    add(
                        f"{path}.params.adapt_strength",
                        "AHP jump per spike (8-bit inhibitory weight at the largest exponent)",
                        f"{p['adapt_strength']:g}",
                        f"at most {p['adapt_strength'] * ahp_max / ahp:.4g} (given its "
                        "threshold, tau_mem and tau_adapt)",
                    )
            bias = abs(scale * (1 - beta) * (p["v_leak"] - p["v_reset"]))
            bias_max = (2 ** (profile.bias_mantissa_bits - 1) - 1) << profile.bias_exponent_max
            if bias > bias_max:
                add(
                    f"{path}.params.v_leak",
                    "bias (v_leak - v_reset in chip units)",
                    round(bias),
                    f"at most {bias_max} (13-bit mantissa << 7)",
                )
        for k, proj in enumerate(spec.projections):
            target = spec.population(proj.target)
            if proj.weights is not None and target.model in SUPPORTED_MODELS:
                largest = max((abs(w) for row in proj.weights for w in row), default=0.0)
                limit = _weight_limit(spec, target, profile)
                if largest > limit:
                    add(
                        f"projections[{k}].weights",
                        "largest |weight| (8-bit mantissa at the largest weight exponent)",
                        f"{largest:g}",
                        f"at most {limit:.4g} onto {proj.target!r} (given its threshold and taus)",
                    )
            programmed = proj.max_delay + (1 if proj.recurrent else 0)
            if programmed > profile.max_delay:
                extra = " (delay + 1 for a recurrent projection)" if proj.recurrent else ""
                add(
                    f"projections[{k}].delay",
                    f"synaptic delay{extra}",
                    f"{programmed} steps",
                    f"at most {profile.max_delay} steps",
                )
        placement = _placement(spec, profile)
        for k, pop in enumerate(spec.populations):
            info = placement[pop.name]
            path = f"populations[{k}]"
            # Fan-in and one compartment's synapses grow with the sources' sizes, not with the
            # population's own: they name the (largest) source's size.
            _, source_field, sources = summed_sizes(
                spec, [p.source for p in spec.incoming(pop.name)]
            )
            if info["fan_in"] > profile.fan_in_axons_per_core:
                add(
                    source_field,
                    f"fan-in of {pop.name!r} (input axons per core, from {sources})",
                    info["fan_in"],
                    f"at most {profile.fan_in_axons_per_core}",
                )
            if info["cores"] is None:
                add(
                    source_field,
                    f"synapse memory for one compartment of {pop.name!r} (from {sources})",
                    f"{info['bits_one']} bits",
                    f"at most {profile.synapse_memory_bits_per_core} bits per core",
                )
            if info["fan_out"] > profile.fan_out_axons_per_core:
                add(
                    f"{path}.size",
                    f"fan-out of {pop.name!r} (output axons per core)",
                    info["fan_out"],
                    f"at most {profile.fan_out_axons_per_core}",
                )
        cores = sum(i["cores"] or 0 for i in placement.values())
        if cores > profile.cores:
            sizes = ", ".join(f"{n} {spec.size_of(n)}" for n in placement) + " neurons"
            if any(i["per_neuron"] > 1 for i in placement.values()):
                sizes += f", alif ones {profile.ahp_compartments} compartments each"
            add(
                "populations",
                f"cores needed ({sizes}; {profile.compartments_per_core} compartments per core)",
                cores,
                f"at most {profile.cores} cores",
            )
        return out

    @classmethod
    def resources(cls, spec: NetworkSpec, profile: LoihiProfile | None = None) -> pd.DataFrame:
        profile = cls.make_profile(profile)
        placement = _placement(spec, profile)
        compartments = sum(p.size * placement[p.name]["per_neuron"] for p in spec.populations)
        synapses = sum(spec.size_of(p.source) * spec.size_of(p.target) for p in spec.projections)
        synapses += sum(p.size for p in spec.populations if placement[p.name]["per_neuron"] > 1)
        cores = sum(i["cores"] or 0 for i in placement.values())
        bits = sum((i["cores"] or 0) * i["bits_per_core"] for i in placement.values())
        fan_in = max((i["fan_in"] for i in placement.values()), default=0)
        fan_out = max((i["fan_out"] for i in placement.values()), default=0)
        delay = max((p.max_delay + (1 if p.recurrent else 0) for p in spec.projections), default=0)
        return resource_table(
            [
                ("cores", cores, profile.cores),
                ("compartments", compartments, profile.cores * profile.compartments_per_core),
                (
                    "synapses",
                    synapses,
                    profile.cores * profile.synapse_memory_bits_per_core // profile.weight_bits,
                ),
                (
                    "synapse memory (bits)",
                    bits,
                    profile.cores * profile.synapse_memory_bits_per_core,
                ),
                ("max fan-in axons per core", fan_in, profile.fan_in_axons_per_core),
                ("max fan-out axons per core", fan_out, profile.fan_out_axons_per_core),
                ("max synaptic delay (steps)", delay, profile.max_delay),
            ]
        )

    def energy(self, activity) -> pd.DataFrame:
        """Energy per sample of ``activity``: Davies et al. 2018's energy per synaptic
        operation, compartment update, spiking update and spike message.  Dynamic energy only:
        that table gives no static power."""
        p = self.profile
        used = self.resources(self.spec, p).set_index("resource")["used"]
        spiking = sum(activity.active.values())
        return energy_table(
            [
                priced("synaptic operations", activity.synops, "ops", p, "energy_synaptic_op"),
                priced(
                    "compartment updates",
                    activity.time_steps * used["compartments"],
                    "compartment-steps",
                    p,
                    "energy_update",
                ),
                priced("spiking updates", spiking, "neuron-steps", p, "energy_spiking_update"),
                priced(
                    "spike messages",
                    activity.input_events + activity.total_spikes,
                    "spikes",
                    p,
                    "energy_spike_message",
                ),
            ]
        )

    # ------------------------------------------------------------------ float -> chip mapping
    def _map_compartments(self) -> None:
        """Integer compartment settings per population (they depend on the spec only)."""
        self.compartments: dict[str, CompartmentConfig] = {}
        edge = self.profile.state_max - 1
        for pop in self.spec.populations:
            p = pop.params
            alpha, beta, gain = propagators(self.spec.dt, p["tau_mem"], p["tau_syn"])
            # u's decay register has a one-bit offset of 1 (Lava's ds_offset): it decays at
            # least by 1/4096 per step; v's has none (dm_offset 0).
            decay_u = max(1, round(4096 * (1 - alpha)))
            decay_v = round(4096 * (1 - beta))
            if pop.spiking:
                origin = p["v_reset"]
                scale = self.threshold_mantissa * 64 / (p["threshold"] - origin)
                bias_mantissa, bias_exponent = _bias(
                    scale * (1 - beta) * (p["v_leak"] - origin), self.profile
                )
                comp = CompartmentConfig(
                    decay_u,
                    decay_v,
                    self.threshold_mantissa,
                    bias_mantissa,
                    bias_exponent,
                    int(p["refractory_steps"]),
                    max(-edge, min(edge, round(scale * (p["v_leak"] - origin)))),
                    scale,
                    origin,
                    gain,
                )
            else:
                scale = 2 ** (self.profile.state_bits - 1) / self.readout_range[pop.name]
                comp = CompartmentConfig(
                    decay_u, decay_v, None, scale=scale, origin=p["v_leak"], current_gain=gain
                )
            # The float shadow (gradients) uses the chip's quantised decays.
            shadow = {"alpha": 1 - decay_u / 4096, "beta": 1 - decay_v / 4096}
            if pop.model == "alif":
                # The AHP compartment: its 12-bit decay and the quantised jump per spike.
                q = _adapt_gain(self.spec.dt, p)
                comp.ahp_decay = round(4096 * (1 - math.exp(-self.spec.dt / p["tau_adapt"])))
                comp.ahp_weight, comp.ahp_exponent = _ahp_quantize(
                    scale * q * p["adapt_strength"], self.profile
                )
                jump = -comp.ahp_increment(self.profile.weight_shift)
                shadow.update(
                    adapt_decay=1 - comp.ahp_decay / 4096,
                    adapt_strength=jump / (scale * q) if q > 0 else 0.0,
                )
            self.compartments[pop.name] = comp
            self.neuron_params[pop.name] = self.neuron_params[pop.name]._replace(**shadow)
        self._draw_mismatch()

    def _draw_mismatch(self) -> None:
        """The ``mismatch_*`` stress test: each compartment's decays and threshold mantissa
        drawn once for the chip ``chip_seed`` by the float simulator's variation model
        (:func:`workbench.variation.draw_neurons`, so the same seed gives the float backend's
        relative deviations) and rounded to the chip's integer fields; the bias and the float
        shadow (gradients) keep the nominal values.  All sigmas 0: nothing is drawn."""
        prof = self.profile
        sigmas = {
            name: getattr(prof, name)
            for name in ("mismatch_tau_mem", "mismatch_tau_syn", "mismatch_threshold")
        }
        if not any(sigmas.values()):
            return
        drawn, _ = draw_neurons(
            self.spec, VariationProfile(**sigmas), self.chip_seed, torch.float64
        )
        top = 2**prof.threshold_mantissa_bits - 1
        for pop in self.spec.populations:
            comp, q, p = self.compartments[pop.name], drawn[pop.name], pop.params
            if prof.mismatch_tau_syn:
                comp.decay_u = torch.round(4096 * (1 - q.alpha)).clamp(1, 4096).long()
            if prof.mismatch_tau_mem:
                comp.decay_v = torch.round(4096 * (1 - q.beta)).clamp(0, 4096).long()
            if prof.mismatch_threshold and comp.threshold_mantissa is not None:
                ratio = (q.threshold - p["v_reset"]) / (p["threshold"] - p["v_reset"])
                mantissa = torch.round(comp.threshold_mantissa * ratio)
                comp.threshold_mantissa = mantissa.clamp(1, top).long()

    def _quantize(self, proj: Projection, w: torch.Tensor) -> tuple[torch.Tensor, int, float]:
        """``(stored weights, weight exponent, chip units per float weight unit)``."""
        comp = self.compartments[proj.target]
        factor = comp.scale * comp.current_gain  # chip u per float weight unit
        prof = self.profile
        top = 2 ** (prof.weight_bits - 1) - 1  # mantissa range -(top + 1)..top
        grid = prof.weight_grid
        largest = float(w.detach().abs().max()) * factor
        exponent = prof.weight_exponent_max
        for e in range(prof.weight_exponent_min, prof.weight_exponent_max + 1):
            if largest / (grid * 2 ** (prof.weight_shift + e)) <= top + 0.5:
                exponent = e
                break
        unit = grid * 2.0 ** (prof.weight_shift + exponent) / factor  # float weight per mantissa
        mantissa = torch.round(w.detach().double() / unit).clamp(-(top + 1), top)
        return (mantissa * grid).long(), exponent, factor

    def weight(self, proj: Projection) -> torch.Tensor:
        """The chip's weight in float units, with a straight-through gradient to the float."""
        w = self.float_weight(proj)
        stored, exponent, factor = self._quantize(proj, w)
        on_chip = stored.double() * 2.0 ** (self.profile.weight_shift + exponent) / factor
        return straight_through(w, on_chip.to(w.dtype))

    def clipped(self, proj: Projection) -> torch.Tensor:
        w = self.float_weight(proj).detach()
        stored, exponent, factor = self._quantize(proj, w)
        top = 2 ** (self.profile.weight_bits - 1) - 1
        unit = self.profile.weight_grid * 2.0 ** (self.profile.weight_shift + exponent) / factor
        return (w.double() / unit).abs() > top + 0.5

    def chip_config(self) -> ChipConfig:
        """The integer configuration the current float weights map to."""
        synapses = {}
        for proj in self.spec.projections:
            key = projection_key(proj)
            stored, exponent, _ = self._quantize(proj, self.float_weight(proj))
            delays = torch.as_tensor(proj.delay, dtype=torch.long).expand(stored.shape)
            delays = delays + (1 if proj.recurrent else 0)
            synapses[key] = SynapseConfig(stored, exponent, delays.clone())
        return ChipConfig(dict(self.compartments), synapses)

    def load_chip_weights(self, weights: dict[str, torch.Tensor], config: ChipConfig) -> None:
        """Write stored chip weights (e.g. after learning) back into the float parameters."""
        with torch.no_grad():
            for proj in self.spec.projections:
                key = projection_key(proj)
                if key not in weights:
                    continue
                comp = self.compartments[proj.target]
                exponent = config.synapses[key].weight_exponent
                unit = 2.0 ** (self.profile.weight_shift + exponent) / (
                    comp.scale * comp.current_gain
                )
                self.weights[key].copy_((weights[key].double() * unit).to(self.weights[key]))

    def calibrate(self, spikes: torch.Tensor) -> None:
        """Fit each LI readout's range to 4x the largest membrane the float model reaches on
        ``spikes`` (so the 24-bit membrane neither saturates nor wastes resolution)."""
        if not self.readout_range:
            return
        with torch.no_grad():
            result = super().forward(spikes.to(self.dtype), record=list(self.readout_range))
        for name in self.readout_range:
            origin = self.compartments[name].origin
            peak = float((result.recordings[name]["v"] - origin).abs().max())
            self.readout_range[name] = max(4.0 * peak, 1e-3)
        self._map_compartments()

    # ------------------------------------------------------------------ running
    def run_chip(
        self,
        x: torch.Tensor,
        config: ChipConfig | None = None,
        learning: dict[str, LearningRule] | None = None,
    ) -> ChipRun:
        """The chip's integer run of ``x`` (``[T, B, inputs]``); ``learning`` maps projection
        names (``"input->hidden"``) or keys to rules."""
        self._check_input(x)
        config = config or self.chip_config()
        rules = {}
        for name, rule in (learning or {}).items():
            proj = next(
                (p for p in self.spec.projections if name in (p.name, projection_key(p))), None
            )
            if proj is None:
                names = [p.name for p in self.spec.projections]
                raise ValueError(f"learning: {name!r} is not a projection; choose from {names}")
            rules[projection_key(proj)] = rule
        return simulate(
            self.spec,
            config,
            x.detach(),
            rules,
            self.profile,
            self.kernel,
            noise_seed=self._run_noise_seed(),
        )

    def _run_noise_seed(self) -> int:
        """The noise seed of a run: ``noise_seed`` in evaluation (repeatable); in training a
        fresh one from the network's running generator each run."""
        if not self.training:
            return self.noise_seed
        return int(torch.randint(2**31, (1,), generator=self._noise))

    def learn(
        self, x: torch.Tensor, learning: dict[str, LearningRule], write_back: bool = True
    ) -> ChipRun:
        """Run the samples of ``x`` one after another with on-chip learning (weights carry over
        from sample to sample, neuron states and traces restart); with ``write_back`` the
        learned weights become the float weights.  Returns the last sample's run."""
        config = self.chip_config()
        run = None
        for b in range(x.shape[1]):
            run = self.run_chip(x[:, b : b + 1], config, learning)
            config = ChipConfig(
                config.compartments,
                {k: replace(s, weights=run.weights[k].clone()) for k, s in config.synapses.items()},
            )
        if write_back and run is not None:
            self.load_chip_weights(run.weights, config)
        return run

    def forward(self, x: torch.Tensor, record=()) -> RunResult:
        self._check_input(x)
        wanted = self.wanted(record)
        config = self.chip_config()
        keep = wanted | {self.spec.output_name}  # others' membranes are neither read nor copied
        run = simulate(
            self.spec,
            config,
            x.detach(),
            None,
            self.profile,
            self.kernel,
            keep,
            noise_seed=self._run_noise_seed(),
        )
        traces = {}
        for name in self.order:
            comp = config.compartments[name]
            trace = {}
            if name in keep:
                trace["v"] = run.v[name].to(self.dtype) / comp.scale + comp.origin
                trace["i"] = run.u[name].to(self.dtype) / (comp.scale * comp.current_gain)
            if name in run.spikes:
                trace["spikes"] = run.spikes[name].to(self.dtype)
            traces[name] = trace
        needs_grad = (
            self.training
            and torch.is_grad_enabled()
            and any(w.requires_grad for w in self.weights.values())
        )
        if needs_grad:
            traces = self._attach_gradients(x.to(self.dtype), traces)
        out_pop = self.spec.population(self.spec.output_name)
        output = traces[out_pop.name]["spikes" if out_pop.spiking else "v"]
        recordings = {n: traces[n] for n in self.order if n in wanted}
        return RunResult(output, recordings)

    def _attach_gradients(self, x: torch.Tensor, chip: dict) -> dict:
        """Chip observations forward, the float model's gradients backward (per population,
        driven by the chip's observed spikes; recurrent inputs enter as observed spikes)."""
        observed = {INPUT: x}
        out = {}
        for name in self.order:
            external = 0
            for proj in self.spec.incoming(name):
                source = observed.get(proj.source)
                if source is None or proj.source == name:
                    source = chip[proj.source]["spikes"]
                current = self._feedforward_current(proj, source)
                external = external + _shift(current, 1 if proj.recurrent else 0)
            if not torch.is_tensor(external):
                external = x.new_zeros(x.shape[0], x.shape[1], self.spec.size_of(name))
            shadow = self._run_population(name, external, [], record="v" in chip[name])
            trace = {k: straight_through(shadow[k], chip[name][k]) for k in chip[name]}
            if "spikes" in trace:
                observed[name] = trace["spikes"]
            out[name] = trace
        return out


def _weight_limit(spec: NetworkSpec, target, profile: LoihiProfile) -> float:
    """The largest float weight onto ``target`` that the default mapping represents
    (threshold mantissa 8192, LI readout range 64)."""
    p = target.params
    gain = propagators(spec.dt, p["tau_mem"], p["tau_syn"])[2]
    if target.spiking:
        scale = 8192 * 64 / max(p["threshold"] - p["v_reset"], 1e-12)
    else:
        scale = profile.state_max / 64.0
    top = (2 ** (profile.weight_bits - 1) - 0.5) * profile.weight_grid
    return top * 2.0 ** (profile.weight_shift + profile.weight_exponent_max) / (scale * gain)


def _adapt_gain(dt: float, params: dict) -> float:
    """The float alif's propagator from its AHP current to ``V`` over one step."""
    return propagators(dt, params["tau_mem"], params["tau_adapt"])[2]


def _ahp_max(profile: LoihiProfile) -> float:
    """The largest AHP jump (chip units of ``v``) the 8-bit inhibitory mantissa holds at the
    largest weight exponent."""
    return (2**profile.weight_bits - 0.5) * 2.0 ** (
        profile.weight_shift + profile.weight_exponent_max
    )


def _ahp_quantize(jump: float, profile: LoihiProfile) -> tuple[int, int]:
    """``(weight, exponent)`` of the soma -> auxiliary synapse for an AHP jump of ``jump``
    chip units (>= 0): weight ``-round(jump / 2**(6 + e))`` in -255..0 at the smallest
    exponent ``e`` >= 0 that holds it (a negative exponent would floor the single synapse's
    mantissa to a multiple of 64, coarser than ``e = 0``)."""
    top = 2**profile.weight_bits - 1
    for e in range(max(0, profile.weight_exponent_min), profile.weight_exponent_max + 1):
        mantissa = round(jump / 2 ** (profile.weight_shift + e))
        if mantissa <= top:
            return -mantissa, e
    return -top, profile.weight_exponent_max


def _bias(value: float, profile: LoihiProfile) -> tuple[int, int]:
    """Mantissa and exponent (13-bit signed, 0..7) closest to ``value``."""
    top = 2 ** (profile.bias_mantissa_bits - 1) - 1
    for exponent in range(profile.bias_exponent_max + 1):
        mantissa = round(value / 2**exponent)
        if abs(mantissa) <= top:
            return mantissa, exponent
    sign = 1 if value > 0 else -1
    return sign * top, profile.bias_exponent_max


def _synapse_bits(n_targets: int, bits_per_synapse: int, profile: LoihiProfile) -> int:
    """Synapse memory of one input axon reaching ``n_targets`` compartments of a core: blocks
    of up to 64 synapses, each with 10 header bits, rounded up to 64-bit words."""
    total = 0
    for start in range(0, n_targets, profile.synapse_block):
        n = min(profile.synapse_block, n_targets - start)
        total += -(-(n * bits_per_synapse + 10) // 64) * 64
    return total


def _placement(spec: NetworkSpec, profile: LoihiProfile) -> dict[str, dict]:
    """Per population: cores, neurons per core, compartments per neuron, fan-in/out axons and
    synapse bits.  An alif neuron takes ``profile.ahp_compartments`` compartments, and its
    soma -> auxiliary synapse one output axon, one input axon and one synapse in its core."""
    placement = {}
    for pop in spec.populations:
        incoming = spec.incoming(pop.name)
        fan_in = sum(spec.size_of(p.source) for p in incoming)
        per_neuron = profile.ahp_compartments if pop.model == "alif" else 1
        ahp_bits = _synapse_bits(1, profile.weight_bits, profile) if per_neuron > 1 else 0

        def bits(m: int, incoming=incoming, ahp_bits=ahp_bits) -> int:
            """Synapse memory of a core holding ``m`` of the population's neurons."""
            total = m * ahp_bits
            for p in incoming:
                delay = p.max_delay + (1 if p.recurrent else 0)
                per_synapse = profile.weight_bits + (delay.bit_length() if delay else 0)
                total += spec.size_of(p.source) * _synapse_bits(m, per_synapse, profile)
            return total

        cores = None
        size = pop.size
        first = -(-size * per_neuron // profile.compartments_per_core)
        bits_one = bits(1)
        if bits_one <= profile.synapse_memory_bits_per_core:
            cores = first
            while bits(-(-size // cores)) > profile.synapse_memory_bits_per_core:
                cores += 1
        per_core = -(-size // cores) if cores else size
        placement[pop.name] = {
            "cores": cores,
            "per_core": per_core,
            "per_neuron": per_neuron,
            "fan_in": fan_in + (per_core if per_neuron > 1 else 0),
            "bits_per_core": bits(per_core) if cores else bits_one,
            "bits_one": bits_one,
        }
    for pop in spec.populations:
        info = placement[pop.name]
        targets = [p.target for p in spec.projections if p.source == pop.name]
        target_cores = sum(placement[t]["cores"] or 1 for t in targets)
        own = 1 if info["per_neuron"] > 1 else 0  # the axon to its own AHP compartment
        info["fan_out"] = info["per_core"] * (target_cores + own)
    return placement


__all__ = [
    "ChipConfig",
    "ChipRun",
    "CompartmentConfig",
    "LearningRule",
    "Loihi",
    "LoihiProfile",
    "SynapseConfig",
    "Term",
    "apply_rule",
    "noise_draws",
    "parse_rule",
    "simulate",
]
