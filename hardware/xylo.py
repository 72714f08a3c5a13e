"""SynSense Xylo: a digital SNN inference core, emulated bit for bit in integer arithmetic.

The chip (Rockpool's "Overview of the Xylo family"; SynSense's bit-accurate simulator XyloSim)
holds one pool of hidden LIF neurons fed by up to 16 input channels, connected among themselves
by a recurrent weight matrix, and read out by a few output neurons.  Every projection of a spec
lands in one of three weight matrices: input -> hidden (``W_in``), hidden -> hidden (``W_rec``;
also feed-forward links between hidden layers) and hidden -> output (``W_out``).  Each matrix
holds signed 8-bit weights and has one left shift (``weight_shift``) applied to every weight.

One time step of the emulator, in integers (the rules of SynSense's XyloSim, read from the
source of xylosim 0.1.3: ``XyloLayer::evolve``, ``src/v2/cpp/XyloLayer.cpp`` 145-220, and
``XyloIAFNeuron::evolve``, ``src/v2/cpp/XyloIAFNeuron.cpp`` 97-153):

1. the events are delivered, source by source: first this step's input events (channels in
   index order, at most 15 events per channel; more are clipped), then the hidden spike
   counts of the previous step (hidden neurons in index order).  Each source adds its count
   times its weight (``w << shift``) to the synaptic state ``k`` it targets and the state
   saturates before the next source: ``I_k <- sat(I_k + n w)``.  (``deliver_spikes``,
   ``XyloLayer.cpp`` 236-282, adds one event at a time and saturates after each; the ``n``
   events of one source have one sign per target, so saturating their sum once is the same.)
   The order matters where a partial sum leaves the 16-bit range: mixed-sign input that
   saturates and then falls back is not the saturated total.  Hidden neurons have up to 2
   synaptic states, outputs 1 (fed by the previous step's hidden spikes, in the same way);
2. every synaptic state decays: ``I_k <- I_k - decay(I_k, dash_syn_k)``;
3. the membrane integrates: ``V <- sat(V + sat(sat(leak + sum_k I_k) + bias))``, where the
   leak ``-decay(V, dash_mem)`` is a 16-bit integer (``int16_t dv``, ``XyloIAFNeuron.cpp``
   123): for ``V = -32768`` and ``dash_mem = 0`` it wraps to ``-32768``, so such a membrane
   stays at the lower limit until its input lifts it;
4. spikes: ``n = clip(floor(V / threshold), 0, max_spikes)`` (31 for hidden neurons, 1 for
   outputs) and subtractive reset ``V <- V - n * threshold``.  Hidden spikes reach hidden and
   output neurons in the next step.

``decay(x, dash) = x >> dash`` (arithmetic shift), except that a non-zero state that the shift
would leave unchanged decays by one towards zero (XyloSim: "if the decay is zero, the value is
decayed by one instead"); ``sat`` saturates to the signed 16-bit range.  A time constant maps
to ``dash = round(log2(tau / dt))`` (rounded half up), clipped at 0 for ``tau <= dt`` as
Rockpool's ``LIFBitshiftTorch`` does; the realised time constant is
``-dt / ln(1 - 2**-dash)``.  ``dash = 0`` clears a state every step: a membrane with
``dash_mem = 0`` holds only this step's input, and a synaptic state with ``dash_syn = 0`` is
cleared before it reaches the membrane, so :meth:`Xylo.check` refuses a ``tau_syn`` that
rounds to it.

**Aliases.**  The chip can add a hidden neuron's spikes to another one's spike count
(Rockpool's ``aliases``; ``evolve_neurons``, ``XyloLayer.cpp`` 299-358): in index order, a
neuron fires on top of the spikes its aliases already placed on it (31 in all at most; its
membrane loses the thresholds of the spikes it fired itself only), then its count is added to
its alias target's (capped at 31).  The mapping of a spec never produces aliases; an integer
configuration can hold them (``alias_target`` of :meth:`Xylo.from_integers`).

The emulator agrees with XyloSim bit for bit: ``tests/data/golden/xylo/`` holds XyloSim's
traces of 59 integer networks (Rockpool 3.1.0, xylosim 0.1.3; ``tools/golden/``), which
``tests/test_golden_xylo.py`` compares with both loops, every state at every step.

**Mapping a float network.**  The float simulator integrates exactly (``V <- beta V + p I``);
the chip adds its current to the membrane each step.  Each target neuron's weights are first
multiplied by a gain ``g`` that makes the chip's post-synaptic potential match the float one
(its peak by default, or its area: option ``gain_match``), computed with the chip's rounded
time constants.  These float weights are then quantised to int8 with a scale derived from the
weights themselves (option ``weight_scale``):

- ``"global"`` (default): one scale for every weight onto hidden neurons and one for the readout
  weights (Rockpool's ``global_quantize``);
- ``"network"``: one scale for every weight of the network;
- ``"per_neuron"``: one scale per target neuron (Rockpool's ``channel_quantize``), as far as
  the state range allows: the shift of a matrix is shared, so a neuron whose weights are
  small reaches its threshold limit before its weights fill the int8 range.

The matrix shifts are chosen (``weight_shift="auto"``) as large as the 16-bit states allow:
thresholds stay below ``32767 / threshold_headroom``, and a leaky-integrator readout's membrane
can reach ``readout_range`` (float units) without saturating.  Thresholds, biases (from
``v_leak``) and time constants are quantised to the chip's formats.  Rounding uses
straight-through estimators and the spike count uses the float simulator's surrogate on the
membrane, so ``loss.backward()`` reaches the float weights: training on the emulator is
quantisation-aware training.  The forward pass computes the chip's integers exactly; the
backward pass differentiates their float relaxation: a decay has the slope ``2**-dash``, and
each saturating sum passes the gradient where it stays in range (bounds included) and none
where it clips.  The delivery is a chain of such sums, one per source: a target's gradient
reaches the sources delivered after its last clipping one, none before it, and the current of
the previous step only where no event clipped (without any clipping the delivery is a plain
sum, so this is its gradient then).  The 16-bit wrap of the leak and aliased spikes are not
differentiated (the leak keeps its slope; a copied spike sends no gradient to the neuron that
fired it).

**Integer configurations.**  :meth:`Xylo.from_integers` builds the emulator from the chip's
registers (the arrays Rockpool's ``XyloSim.from_specification`` takes, aliases included), and
:meth:`Xylo.from_configuration` from a :class:`XyloConfiguration`; such a network runs those
integers as they are (its float weights are placeholders, so it does not train).

**What the chip does differently from the float simulator** (see :meth:`Xylo.notes`): time
constants are rounded to powers of two; the reset always subtracts the threshold (a spec's
``reset="zero"`` runs as subtraction); a neuron can fire up to 31 times in a step; an input
event reaches the membrane in its own step (one step earlier than in the float simulator); a
hidden spike reaches its targets' membranes in the next step, as in the float simulator for
feed-forward projections and one step earlier for recurrent ones.

**Second synaptic state.**  Hidden neurons of Xylo Audio 2/3 have two synaptic currents with
their own time constants, so a network can use a pyramid of synaptic time constants.  The
option ``tau_syn2`` gives the second time constant per population, as one number (ms) or one
per neuron, and ``synapse2`` names the projections whose synapses use it (``["input->hidden"]``)
or gives a ``[target][source]`` mask of 0/1 per projection (``{"input->hidden": mask}``).  The
gain of a second-state synapse matches the float PSP with ``tau_syn2``.

**Units of the recordings.**  ``v`` is the chip's integer membrane divided by the neuron's
scale (integer units per float membrane unit), so the threshold sits at the spec's threshold;
``i`` is the total synaptic current in the same units (what the membrane gains per step);
``spikes`` holds the spike count of each step.  A leaky-integrator (``li``) readout is an
output neuron whose membrane is read (XyloSim's "Vmem" readout) and whose threshold is set to
the largest value, 32767.  :meth:`Xylo.integer_run` returns the raw integer states.

**Two loops.**  On the CPU the time loop runs compiled (:mod:`workbench.hardware.xylo_kernels`,
Numba), with a hand-written adjoint as its backward pass; ``kernel = "torch"`` (the float
network's switch, or ``WORKBENCH_KERNEL=torch``) runs the loop in torch operations, the
reference the suite holds the compiled one equal to: bit for bit in the integer states and the
recordings, to rounding in the gradients.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.backends import RunResult, projection_key
from workbench.energy import energy_table, priced
from workbench.kernels import SURROGATE_CODES
from workbench.neurons import propagators
from workbench.spec import INPUT, NetworkSpec, Population, Problem, Projection, SpecError

from . import xylo_kernels
from .base import (
    EmulatedNetwork,
    HardwareProfile,
    Violation,
    figure,
    resource_table,
    summed_sizes,
)
from .xylo_kernels import HIDDEN_STATES

# ------------------------------------------------------------------------------------ sources
FAMILY = (
    "Rockpool documentation, 'Overview of the Xylo family' (rockpool.ai/devices/"
    "xylo-overview.html), table of family members"
)
ARCHITECTURE = (
    "Rockpool documentation, 'Overview of the Xylo family', logical architecture: 8-bit "
    "weights, up to 15 input events per channel and step, subtractive reset with up to 31 "
    "events per step (hidden) and 1 (output)"
)
XYLOSIM = (
    "SynSense XyloSim, xylosim 0.1.3 (used by Rockpool 3.1.0's syns61201.XyloSim): "
    "src/v2/cpp/XyloIAFNeuron.cpp/.h and XyloLayer.cpp, 16-bit saturating states and bias, "
    "16-bit leak, bit-shift decay, delivery saturating after each event, update order"
)
MAPPER_128 = (
    "Rockpool syns63300/syns65302 xylo_mapper and config_from_specification: input expansion "
    "neurons are the first 128 hidden neurons, output expansion neurons the last 128"
)
BITSHIFT = (
    "Rockpool LIFBitshiftTorch (calc_bitshift_decay: dash = round(log2(tau/dt)), clipped at 0)"
)
CYCLES = (
    "Rockpool rockpool/devices/xylo/syns61201/power_cycles_model.py (cycles_model), measured "
    "for Xylo Audio 2"
)
CLOCK = "Rockpool tutorial 'Measuring power consumption on Xylo Audio HDK' (default core clock)"
STATIC = (
    "assumption: idle power of 219 uW reported for Xylo Audio (Bos & Muir 2022, arXiv:"
    "2208.12991, as summarised by open-neuromorphic.org); not a figure per variant"
)
ENERGY = (
    "assumption: SynSense publishes no energy per clock cycle; 10 pJ is an order of magnitude "
    "for a 28 nm digital core with SRAM access; set it to match a measurement"
)
FANOUT_COUNT = (
    FAMILY + "; the fan-out counts synapses onto hidden neurons (the recurrent weight memory), "
    "readout synapses are not counted (an interpretation)"
)
REGISTER_WIDTH = (
    "assumption: register widths are not in the public documentation (XyloSim stores them "
    "as 8-bit integers); 4-bit dashes (0..15) and shifts 0..7 (an int8 weight << 7 fits 16 bits)"
)

STATE_MIN, STATE_MAX = -(2**15), 2**15 - 1
WEIGHT_SCALES = ("global", "network", "per_neuron")
GAIN_MATCHES = ("peak", "area")


# ------------------------------------------------------------------------------------ profile
@dataclass(frozen=True)
class XyloProfile(HardwareProfile):
    """The figures of one Xylo device; ``XyloProfile.audio2()``, ``.audio3()``, ``.imu()``."""

    name: str = "Xylo Audio 2"
    variant: str = figure("audio2", "", "SYNS61201; others: audio3 (SYNS65302), imu (SYNS63300)")
    n_inputs: int = figure(16, "input channels", FAMILY)
    n_hidden: int = figure(1000, "hidden neurons", FAMILY)
    n_outputs: int = figure(8, "output neurons", FAMILY)
    synaptic_states: int = figure(2, "synaptic currents per hidden neuron", FAMILY)
    max_fan_out: int = figure(64, "synapses per hidden neuron onto hidden neurons", FANOUT_COUNT)
    recurrent_synapses: int = figure(
        64_000, "synapses hidden -> hidden", FAMILY + ": average fan-out 32+32 x 1000 neurons"
    )
    max_input_targets: int = figure(1000, "hidden neurons reached by the inputs", FAMILY)
    max_output_sources: int = figure(1000, "hidden neurons read by the outputs", FAMILY)
    max_fan_in: int | None = figure(
        None, "synapses per neuron (None: no limit)", FAMILY + ": no fan-in limit is listed"
    )
    weight_bits: int = figure(8, "bits, signed", ARCHITECTURE)
    weight_shift_max: int = figure(7, "bits of left shift per weight matrix", REGISTER_WIDTH, True)
    state_bits: int = figure(16, "bits, signed, saturating (currents, membranes, bias)", XYLOSIM)
    dash_max: int = figure(15, "largest bit-shift decay", REGISTER_WIDTH, True)
    max_hidden_spikes: int = figure(31, "spikes per step per hidden neuron", ARCHITECTURE)
    max_output_spikes: int = figure(1, "spikes per step per output neuron", ARCHITECTURE)
    max_input_events: int = figure(15, "events per step per input channel", ARCHITECTURE)
    dt: float = figure(1.0, "ms (the spec's dt is used; Rockpool's default)", XYLOSIM)
    clock_hz: float = figure(50e6, "Hz, SNN core clock", CLOCK)
    static_power: float = figure(219e-6, "W", STATIC, True)
    energy_per_cycle: float = figure(10e-12, "J per core clock cycle", ENERGY, True)
    cycles_input_event: float = figure(3.5, "cycles per input event and target neuron", CYCLES)
    cycles_input_channel: float = figure(1.0, "cycles per input channel", CYCLES)
    cycles_hidden_synapse: float = figure(7.0, "cycles per recurrent synaptic update", CYCLES)
    cycles_hidden_isyn: float = figure(3.0, "cycles per hidden neuron (synaptic stage)", CYCLES)
    cycles_output_source: float = figure(1.0, "cycles per spiking readout source", CYCLES)
    cycles_output_synapse: float = figure(8.0, "cycles per readout synaptic update", CYCLES)
    cycles_hidden_neuron: float = figure(19.0, "cycles per hidden neuron update", CYCLES)
    cycles_hidden_spike: float = figure(3.0, "extra cycles per spiking hidden neuron", CYCLES)
    cycles_output_neuron: float = figure(12.0, "cycles per output neuron update", CYCLES)

    # ------------------------------------------------------------------ variants
    @classmethod
    def audio2(cls, **changes) -> XyloProfile:
        """Xylo Audio 2 (SYNS61201): 16 inputs, 1000 hidden neurons, 8 outputs (the default)."""
        return dataclasses.replace(cls(), **changes)

    @classmethod
    def audio3(cls, **changes) -> XyloProfile:
        """Xylo Audio 3 (SYNS65302): 16 inputs, 992 hidden neurons, 32 outputs."""
        base = cls(
            name="Xylo Audio 3",
            variant="audio3",
            n_hidden=992,
            n_outputs=32,
            max_fan_out=1024,
            recurrent_synapses=64 * 992,
            max_input_targets=128,
            max_output_sources=128,
        )
        return dataclasses.replace(base, **changes)

    @classmethod
    def imu(cls, **changes) -> XyloProfile:
        """Xylo IMU (SYNS63300): 16 inputs, 496 hidden neurons, 16 outputs, one synaptic state."""
        base = cls(
            name="Xylo IMU",
            variant="imu",
            n_hidden=496,
            n_outputs=16,
            synaptic_states=1,
            max_fan_out=512,
            recurrent_synapses=64 * 496,
            max_input_targets=128,
            max_output_sources=128,
        )
        return dataclasses.replace(base, **changes)

    @classmethod
    def for_variant(cls, variant: str) -> XyloProfile:
        makers = {"audio2": cls.audio2, "audio3": cls.audio3, "imu": cls.imu}
        if variant not in makers:
            raise SpecError(
                [
                    Problem(
                        "variant", f"{variant!r} is not a Xylo device; choose one of {list(makers)}"
                    )
                ]
            )
        return makers[variant]()

    def figures(self) -> pd.DataFrame:
        table = super().figures()
        if self.variant != "audio2":
            # The cycle model was measured on Xylo Audio 2; for the others it is an assumption.
            cycles = table["figure"].str.startswith("cycles_")
            table.loc[cycles, "assumption"] = True
        return table

    @property
    def state_range(self) -> tuple[int, int]:
        return -(2 ** (self.state_bits - 1)), 2 ** (self.state_bits - 1) - 1

    @property
    def weight_range(self) -> tuple[int, int]:
        return -(2 ** (self.weight_bits - 1)), 2 ** (self.weight_bits - 1) - 1


# ------------------------------------------------------------------------------------ helpers
def bitshift(tau: float, dt: float) -> int:
    """The chip's decay shift for time constant ``tau``: ``round(log2(tau / dt))`` rounded half
    up, and 0 for ``tau <= dt`` (Rockpool clips negative shifts to 0)."""
    ratio = tau / dt
    if ratio <= 1.0:
        return 0
    return int(math.floor(math.log2(ratio) + 0.5))


def bitshift_tau(dash: int, dt: float) -> float:
    """The time constant a shift realises: ``x <- x (1 - 2**-dash)`` per step (0 for dash 0)."""
    if dash <= 0:
        return 0.0
    return -dt / math.log1p(-(2.0**-dash))


def psp_float(dt: float, tau_mem: float, tau_syn: float, n: int) -> np.ndarray:
    """Membrane response of the float simulator to one unit input (exact propagators)."""
    alpha, beta, gain = propagators(dt, tau_mem, tau_syn)
    v, i = 0.0, 1.0
    out = np.empty(n)
    for k in range(n):
        v = beta * v + gain * i
        i = alpha * i
        out[k] = v
    return out


def psp_chip(dash_mem: int, dash_syn: int, n: int) -> np.ndarray:
    """Membrane response of the chip (without integer rounding) to one unit input."""
    a = 1.0 - 2.0**-dash_syn
    b = 1.0 - 2.0**-dash_mem
    v = 0.0
    i = 1.0
    out = np.empty(n)
    for k in range(n):
        i = a * i
        v = b * v + i
        out[k] = v
    return out


def psp_gain(dt, tau_mem, tau_syn, dash_mem, dash_syn, match="peak") -> float:
    """Weight gain ``g`` that makes the chip's PSP (``match``: its peak or its area) equal the
    float simulator's for the same weight."""
    if dash_syn <= 0:
        return 1.0
    longest = max(tau_mem, tau_syn, bitshift_tau(dash_mem, dt), bitshift_tau(dash_syn, dt))
    n = int(min(20_000, math.ceil(12 * longest / dt) + 20))
    f, c = psp_float(dt, tau_mem, tau_syn, n), psp_chip(dash_mem, dash_syn, n)
    if match == "area":
        return float(f.sum() / c.sum())
    return float(f.max() / c.max())


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _decay(x: torch.Tensor, dash: torch.Tensor) -> torch.Tensor:
    """``x >> dash`` with the minimum decay of one towards zero, as a float64 tensor holding
    integers (``dash``: int64); gradient ``2**-dash`` (the decay's slope)."""
    exact = torch.bitwise_right_shift(x.detach().to(torch.int64), dash)
    exact = torch.where((exact == 0) & (x.detach() > 0), torch.ones_like(exact), exact)
    smooth = x * torch.pow(2.0, -dash.to(x.dtype))
    return smooth + (exact.to(x.dtype) - smooth).detach()


def _sat(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, STATE_MIN, STATE_MAX)


def _leak(v: torch.Tensor, dash: torch.Tensor) -> torch.Tensor:
    """``-decay(V, dash_mem)`` as the chip computes it, a 16-bit integer (``int16_t dv``,
    xylosim 0.1.3 ``src/v2/cpp/XyloIAFNeuron.cpp`` 123): ``+32768`` (``V = -32768`` with
    ``dash_mem = 0``) wraps to ``-32768``.  The wrap is not differentiated."""
    leak = -_decay(v, dash)
    return leak - 65536.0 * (leak.detach() > STATE_MAX)


def _deliver(cur: torch.Tensor, src: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One step's events delivered the chip's way (xylosim 0.1.3, ``src/v2/cpp/XyloLayer.cpp``,
    ``deliver_spikes``): source by source in index order, each adding its count times its
    column of ``w`` to every target and saturating to 16 bits before the next source (the
    same-sign events of one source saturate as their sum does).  ``cur [B, N]`` the synaptic
    state, ``src [B, S]`` the event counts (hidden spikes carry the surrogate's gradient),
    ``w [N, S]`` the effective weights.

    Forward: the exact integers.  Where ``|I| + sum_s |n_s w_s|`` stays in range, no partial
    sum can leave it and the chain is the plain sum (one matrix product); the other targets
    go through the sources one by one.  Backward: each saturating addition is the identity
    where it stays in range and passes nothing where it clips, so a target's gradient reaches
    the sources after its last clipping one and its previous state only where nothing
    clipped."""
    grad = torch.is_grad_enabled() and any(a.requires_grad for a in (cur, src, w))
    with torch.no_grad():
        start, events, weights = cur.detach(), src.detach(), w.detach()
        exact = start + events @ weights.T
        cut = torch.full_like(exact, -1.0)  # the last source that clipped each target
        risky = start.abs() + events.abs() @ weights.abs().T > STATE_MAX
        if bool(risky.any()):
            b, j = torch.nonzero(risky, as_tuple=True)
            x, last = start[b, j], cut[b, j]
            added = events[b] * weights[j]  # [targets at risk, sources]
            for s in torch.nonzero(events[b].any(dim=0)).flatten().tolist():
                y = x + added[:, s]
                x = _sat(y)
                if grad:
                    last = torch.where(x != y, float(s), last)
            exact[b, j], cut[b, j] = x, last
    if not grad:
        return exact
    smooth = cur + src @ w.T
    hit = cut >= 0
    if bool(hit.any()):
        b, j = torch.nonzero(hit, as_tuple=True)
        after = torch.arange(w.shape[1], device=w.device) > cut[b, j, None]
        smooth = smooth.index_put((b, j), (src[b] * w[j] * after).sum(dim=-1))
    return exact + (smooth - smooth.detach())


def _alias_plan(alias_target: torch.Tensor | None):
    """``None`` without aliases, else the neurons that send or receive aliased spikes, in index
    order, as ``(neuron, target or -1)`` pairs, and a mask of them."""
    if alias_target is None or not bool((alias_target >= 0).any()):
        return None
    targets = alias_target.detach().to("cpu", torch.int64).tolist()
    involved = sorted({j for j, a in enumerate(targets) if a >= 0} | {a for a in targets if a >= 0})
    mask = torch.zeros(len(targets), dtype=torch.bool, device=alias_target.device)
    mask[involved] = True
    return [(j, targets[j]) for j in involved], mask


def _aliased(fired: torch.Tensor, plan, max_spikes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The aliases' rule (xylosim 0.1.3, ``src/v2/cpp/XyloLayer.cpp``, ``evolve_neurons``):
    in index order, a neuron fires on top of the spikes already placed on it, up to the cap,
    then its count is added to its alias target's (capped).  ``fired [B, N]``: the counts each
    neuron would fire alone; returns ``(own, sent)``: the spikes each fires itself (its reset)
    and the counts sent on (with the aliased spikes)."""
    pairs, mask = plan
    own = fired.clone()
    placed = torch.zeros_like(fired)
    for j, a in pairs:
        own[:, j] = torch.minimum(fired[:, j], max_spikes - placed[:, j])
        placed[:, j] += own[:, j]
        if a >= 0:
            placed[:, a] = torch.clamp(placed[:, a] + placed[:, j], max=max_spikes)
    return own, torch.where(mask, placed, own)


# ------------------------------------------------------------------------------------ layout
@dataclass(frozen=True)
class _Layout:
    """Where each population sits on the chip: hidden populations in one pool, in order."""

    hidden: tuple[str, ...]
    slices: dict  # hidden population -> (start, stop) in the pool
    output: str
    n_hidden: int
    input_targets: tuple[str, ...]  # hidden populations fed by the inputs
    output_sources: tuple[str, ...]  # hidden populations read by the outputs


def _layout(spec: NetworkSpec) -> _Layout:
    """Input-fed populations first (the chip's input expansion neurons), read-out populations
    last (its output expansion neurons), as Rockpool's Xylo Audio 3 / IMU mapper allocates."""
    out = spec.output_name
    hidden = [p.name for p in spec.populations if p.name != out]
    fed = {p.target for p in spec.projections if p.source == INPUT and p.target in hidden}
    read = {p.source for p in spec.projections if p.target == out and p.source in hidden}
    order = (
        [h for h in hidden if h in fed and h not in read]
        + [h for h in hidden if h in fed and h in read]
        + [h for h in hidden if h not in fed and h not in read]
        + [h for h in hidden if h in read and h not in fed]
    )
    slices, start = {}, 0
    for name in order:
        size = spec.size_of(name)
        slices[name] = (start, start + size)
        start += size
    return _Layout(
        tuple(order),
        slices,
        out,
        start,
        tuple(h for h in order if h in fed),
        tuple(h for h in order if h in read),
    )


# ------------------------------------------------------------------------------------ config
@dataclass
class XyloConfiguration:
    """The chip's registers as plain integers (what would be written to the device).

    Weight matrices are ``[target][source]``; hidden neurons are indexed by their place in the
    pool (``hidden_slices``).  Effective weights are ``weight << weight_shift_*``.
    ``alias_target`` is None unless the network was built from integers with aliases
    (:meth:`Xylo.from_integers`; the mapping of a spec never produces them).
    """

    weights_in: list  # [hidden][input], synaptic state 1
    weights_in2: list  # [hidden][input], synaptic state 2
    weights_rec: list  # [hidden][hidden]
    weights_rec2: list
    weights_out: list  # [output][hidden]
    weight_shift_in: int
    weight_shift_rec: int
    weight_shift_out: int
    dash_mem: list
    dash_syn: list
    dash_syn2: list
    threshold: list
    bias: list
    dash_mem_out: list
    dash_syn_out: list
    threshold_out: list
    bias_out: list
    hidden_slices: dict
    max_input_events: int = 15
    max_hidden_spikes: int = 31
    max_output_spikes: int = 1
    alias_target: list | None = None  # [hidden]: whose spike count gets this neuron's, -1 none


@dataclass
class _Chip:
    """One quantisation of the network (tensors with straight-through gradients)."""

    w_in: list  # effective integer weights (already shifted), float64 [N, n_in] per state
    w_rec: list
    w_out: torch.Tensor
    int8: dict  # the int8 matrices before the shift (for the configuration)
    shifts: tuple[int, int, int]
    theta: torch.Tensor  # [N]
    theta_out: torch.Tensor  # [M]
    bias: torch.Tensor
    bias_out: torch.Tensor
    unit: torch.Tensor  # [N] integer units per float membrane unit
    unit_out: torch.Tensor  # [M]
    rec_used: bool
    syn2_used: bool
    alias_target: torch.Tensor | None = None  # int64 [N], -1: none (None: no aliases)

    def to(self, device) -> _Chip:
        def move(x):
            if isinstance(x, (list, tuple)):
                return [move(y) for y in x]
            if isinstance(x, dict):
                return {k: move(y) for k, y in x.items()}
            return x.to(device) if torch.is_tensor(x) else x

        fields = {f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)}
        fields["shifts"] = self.shifts
        return _Chip(**fields)


# ------------------------------------------------------------------------------------ network
class Xylo(EmulatedNetwork):
    """The emulated Xylo chip: ``Xylo(spec, profile=None, seed=0, **options)``.

    Options: ``variant`` ("audio2", "audio3", "imu"; or pass ``profile``), ``weight_scale``
    ("global", "network", "per_neuron"), ``weight_shift`` ("auto" or ``(in, rec, out)``),
    ``gain_match`` ("peak", "area"), ``tau_syn2`` and ``synapse2`` (the second synaptic
    state), ``threshold_headroom`` (default 2), ``readout_range`` (default 64, float units),
    plus the float simulator's ``surrogate`` and ``dtype``.
    """

    profile_class = XyloProfile
    backend_name = "xylo"

    def __init__(
        self,
        spec: NetworkSpec,
        profile: XyloProfile | None = None,
        seed: int = 0,
        *,
        variant: str | None = None,
        weight_scale: str = "global",
        weight_shift="auto",
        gain_match: str = "peak",
        tau_syn2: dict | None = None,
        synapse2=None,
        threshold_headroom: float = 2.0,
        readout_range: float = 64.0,
        **options,
    ):
        if variant is not None:
            chosen = XyloProfile.for_variant(variant)
            if profile is not None and profile.variant != chosen.variant:
                raise SpecError(
                    [Problem("variant", f"{variant!r} contradicts the profile ({profile.name})")]
                )
            profile = profile or chosen
        problems = _option_problems(
            weight_scale, weight_shift, gain_match, threshold_headroom, readout_range, profile
        )
        if problems:
            raise SpecError(problems)
        super().__init__(spec, profile, seed=seed, **options)
        self.weight_scale = weight_scale
        self.weight_shift = weight_shift
        self.gain_match = gain_match
        self.threshold_headroom = float(threshold_headroom)
        self.readout_range = float(readout_range)
        self.layout = _layout(spec)
        self.tau_syn2 = dict(tau_syn2 or {})
        self.synapse2 = synapse2
        self._syn2_masks = self._routing_masks(synapse2, self.tau_syn2)
        self._integers: _Chip | None = None  # a fixed chip (from_integers)
        self._setup_neurons()

    # ------------------------------------------------------------------ integer configurations
    @classmethod
    def from_integers(
        cls,
        weights_in,
        weights_out,
        weights_rec=None,
        *,
        weight_shift_in: int = 0,
        weight_shift_rec: int = 0,
        weight_shift_out: int = 0,
        dash_mem,
        dash_syn,
        dash_syn2=None,
        threshold,
        bias=None,
        dash_mem_out,
        dash_syn_out,
        threshold_out,
        bias_out=None,
        alias_target=None,
        has_bias: bool | None = None,
        profile: XyloProfile | None = None,
        dt: float = 1.0,
        **options,
    ) -> Xylo:
        """The emulator running a chip configuration given as integers, as XyloSim takes it.

        The arrays follow Rockpool's ``XyloSim.from_specification`` (layouts ``[source,
        target(, synapse)]``, the transposes of :class:`XyloConfiguration`'s): ``weights_in``
        ``[inputs, N]`` or ``[inputs, N, 2]`` (the last axis: synaptic state 1 / 2),
        ``weights_rec`` ``[N, N]`` or ``[N, N, 2]`` (None: no recurrence), ``weights_out``
        ``[N, M]``, all int8; the matrix shifts; per hidden neuron ``dash_mem``, ``dash_syn``,
        ``dash_syn2``, ``threshold``, ``bias``, and per output ``dash_mem_out``,
        ``dash_syn_out``, ``threshold_out``, ``bias_out``; ``alias_target``: per hidden
        neuron the neuron whose spike count also gets its spikes, -1 for none (Rockpool's
        ``aliases = [[a], [], ...]``); ``has_bias``: False ignores the biases, as the chip's
        bias enable does (None: use them).  ``profile`` (default Xylo Audio 2) limits sizes
        and ranges; every value out of them is refused with a :class:`SpecError`.

        The network has one hidden population ``"hidden"`` (N neurons, in the given order) and
        a spiking output population ``"output"``; :meth:`integer_run` gives the chip's states,
        ``forward`` records them in integer units (unit 1).  Its float weights are placeholders:
        the chip is fixed, and training does not change it.  This is the only way to give the
        emulator aliases: the mapping of a spec never produces them."""
        p = cls.make_profile(profile)
        problems: list[Problem] = []

        def ints(name, value, ndims):
            a = np.asarray(value)
            if a.ndim not in ndims:
                problems.append(Problem(name, f"must have {' or '.join(map(str, ndims))} axes"))
                return None
            if a.size and not np.array_equal(a, np.round(a.astype(np.float64))):
                problems.append(Problem(name, "must hold integers"))
                return None
            return a.astype(np.int64)

        def within(name, a, low, high):
            if a is not None and a.size and (a.min() < low or a.max() > high):
                problems.append(
                    Problem(name, f"values {int(a.min())}..{int(a.max())} outside {low}..{high}")
                )

        w_in = ints("weights_in", weights_in, (2, 3))
        w_out = ints("weights_out", weights_out, (2,))
        w_rec = None if weights_rec is None else ints("weights_rec", weights_rec, (2, 3))
        if problems:
            raise SpecError(problems)
        n_in, n = w_in.shape[:2]
        m = w_out.shape[1]
        w_in = w_in if w_in.ndim == 3 else np.stack([w_in, np.zeros_like(w_in)], axis=-1)
        if w_rec is None:
            w_rec = np.zeros((n, n, 2), np.int64)
        elif w_rec.ndim == 2:
            w_rec = np.stack([w_rec, np.zeros_like(w_rec)], axis=-1)
        for name, a, shape in (
            ("weights_in", w_in, (n_in, n, 2)),
            ("weights_rec", w_rec, (n, n, 2)),
            ("weights_out", w_out, (n, m)),
        ):
            if a.shape != shape:
                problems.append(Problem(name, f"has shape {a.shape}, expected {shape}"))
        for name, size, limit in (
            ("weights_in", n_in, p.n_inputs),
            ("weights_in", n, p.n_hidden),
            ("weights_out", m, p.n_outputs),
        ):
            if size > limit:
                problems.append(Problem(name, f"{size} exceeds the {p.name}'s {limit}"))
        if problems:
            raise SpecError(problems)
        low, high = p.weight_range
        for name, a in (("weights_in", w_in), ("weights_rec", w_rec), ("weights_out", w_out)):
            within(name, a, low, high)
        shifts = []
        for name, value in (
            ("weight_shift_in", weight_shift_in),
            ("weight_shift_rec", weight_shift_rec),
            ("weight_shift_out", weight_shift_out),
        ):
            a = ints(name, value, (0,))
            within(name, a, 0, p.weight_shift_max)
            shifts.append(0 if a is None else int(a))

        def vector(name, value, size, default, low, high):
            if value is None:
                return np.full(size, default, np.int64)
            a = ints(name, value, (0, 1))
            if a is None:
                return np.full(size, default, np.int64)
            a = np.broadcast_to(a, (size,)) if a.ndim == 0 else a
            if a.shape != (size,):
                problems.append(Problem(name, f"has {a.shape[0]} values, expected {size}"))
                return np.full(size, default, np.int64)
            within(name, a, low, high)
            return a

        dmax = p.dash_max
        s_lo, s_hi = p.state_range
        d_mem = vector("dash_mem", dash_mem, n, 0, 0, dmax)
        d_syn = vector("dash_syn", dash_syn, n, 0, 0, dmax)
        d_syn2 = vector("dash_syn2", dash_syn2, n, 0, 0, dmax)
        theta = vector("threshold", threshold, n, 1, 1, s_hi)
        b_hid = vector("bias", bias, n, 0, s_lo, s_hi)
        d_mem_o = vector("dash_mem_out", dash_mem_out, m, 0, 0, dmax)
        d_syn_o = vector("dash_syn_out", dash_syn_out, m, 0, 0, dmax)
        theta_o = vector("threshold_out", threshold_out, m, 1, 1, s_hi)
        b_out = vector("bias_out", bias_out, m, 0, s_lo, s_hi)
        alias = vector("alias_target", alias_target, n, -1, -1, n - 1)
        syn2 = bool(np.any(w_in[..., 1]) or np.any(w_rec[..., 1]))
        if syn2 and p.synaptic_states < 2:
            problems.append(
                Problem("weights_in", f"second synaptic state: {p.name} has one per neuron")
            )
        # The chip's connectivity limits, on the synapses that exist (non-zero weights).
        rec = (w_rec != 0).any(axis=-1)  # [source, target]
        fan_out = rec.sum(axis=1)
        if n and int(fan_out.max()) > p.max_fan_out:
            problems.append(
                Problem(
                    "weights_rec",
                    f"hidden neuron {int(fan_out.argmax())} reaches {int(fan_out.max())} hidden "
                    f"neurons, the {p.name} at most {p.max_fan_out}",
                )
            )
        if int(rec.sum()) > p.recurrent_synapses:
            problems.append(
                Problem(
                    "weights_rec",
                    f"{int(rec.sum())} synapses between hidden neurons, the {p.name} has "
                    f"{p.recurrent_synapses}",
                )
            )
        fed = np.flatnonzero((w_in != 0).any(axis=(0, 2)))
        read = np.flatnonzero((w_out != 0).any(axis=1))
        if fed.size and fed.max() >= p.max_input_targets:
            problems.append(
                Problem(
                    "weights_in",
                    f"inputs reach hidden neuron {int(fed.max())}; the {p.name}'s reach the "
                    f"first {p.max_input_targets}",
                )
            )
        if read.size and read.min() < n - p.max_output_sources:
            problems.append(
                Problem(
                    "weights_out",
                    f"outputs read hidden neuron {int(read.min())} of {n}; the {p.name}'s read "
                    f"the last {p.max_output_sources}",
                )
            )
        if problems:
            raise SpecError(problems)
        if has_bias is not None and not has_bias:
            b_hid, b_out = np.zeros(n, np.int64), np.zeros(m, np.int64)
        # A placeholder spec of the right sizes (its float weights play no part).  The chip's
        # limits were checked on the integers above: the spec, dense, is checked against a
        # profile with room for it, and the network then runs with ``p``.
        params = {"tau_mem": 2.0 * dt, "tau_syn": 2.0 * dt, "threshold": 1.0}
        rec_used = bool(rec.any())
        projections = [Projection(INPUT, "hidden"), Projection("hidden", "output")]
        if rec_used:
            projections.append(Projection("hidden", "hidden", recurrent=True))
        spec = NetworkSpec(
            n_in,
            [Population("hidden", n, "lif", dict(params)), Population("output", m, "lif", params)],
            projections,
            dt=dt,
            name="xylo integers",
        )
        roomy = dataclasses.replace(
            p,
            max_fan_out=max(p.max_fan_out, n),
            recurrent_synapses=max(p.recurrent_synapses, n * n),
            max_input_targets=max(p.max_input_targets, n),
            max_output_sources=max(p.max_output_sources, n),
        )
        net = cls(spec, profile=roomy, **options)
        net.profile = p
        f64 = torch.float64

        def t(a):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=f64)

        for key, value in (
            ("dash_mem", d_mem),
            ("dash_syn", d_syn),
            ("dash_syn2", d_syn2),
            ("dash_mem_out", d_mem_o),
            ("dash_syn_out", d_syn_o),
        ):
            setattr(net, key, t(value))  # registered buffers: replaced
        s_in, s_rec, s_out = shifts
        q_in = [t(w_in[..., k].T) for k in range(2)]  # [N, inputs]
        q_rec = [t(w_rec[..., k].T) for k in range(2)]  # [target, source]
        q_out = t(w_out.T)  # [M, N]
        net._integers = _Chip(
            w_in=[q * 2.0**s_in for q in q_in],
            w_rec=[q * 2.0**s_rec for q in q_rec],
            w_out=q_out * 2.0**s_out,
            int8={"in": q_in, "rec": q_rec, "out": q_out},
            shifts=(s_in, s_rec, s_out),
            theta=t(theta),
            theta_out=t(theta_o),
            bias=t(b_hid),
            bias_out=t(b_out),
            unit=torch.ones(n, dtype=f64),
            unit_out=torch.ones(m, dtype=f64),
            rec_used=rec_used,
            syn2_used=syn2,
            alias_target=torch.as_tensor(alias, dtype=torch.int64) if (alias >= 0).any() else None,
        )
        return net

    @classmethod
    def from_configuration(
        cls, config: XyloConfiguration, profile: XyloProfile | None = None, dt: float = 1.0,
        **options,
    ) -> Xylo:  # fmt: skip
        """The emulator running ``config`` (e.g. another network's :meth:`configuration`), its
        hidden neurons as one population ``"hidden"``; see :meth:`from_integers`."""
        c = config

        def t(rows):  # [target][source] -> [source, target]
            return np.asarray(rows, np.int64).T

        n = len(c.dash_mem)
        n_in = len(c.weights_in[0]) if n else 0
        w_in = np.stack(
            [t(c.weights_in).reshape(n_in, n), t(c.weights_in2).reshape(n_in, n)], axis=-1
        )
        w_rec = np.stack([t(c.weights_rec).reshape(n, n), t(c.weights_rec2).reshape(n, n)], -1)
        return cls.from_integers(
            w_in,
            t(c.weights_out).reshape(n, len(c.dash_mem_out)),
            w_rec,
            weight_shift_in=c.weight_shift_in,
            weight_shift_rec=c.weight_shift_rec,
            weight_shift_out=c.weight_shift_out,
            dash_mem=c.dash_mem,
            dash_syn=c.dash_syn,
            dash_syn2=c.dash_syn2,
            threshold=c.threshold,
            bias=c.bias,
            dash_mem_out=c.dash_mem_out,
            dash_syn_out=c.dash_syn_out,
            threshold_out=c.threshold_out,
            bias_out=c.bias_out,
            alias_target=c.alias_target,
            profile=profile,
            dt=dt,
            **options,
        )

    # ------------------------------------------------------------------ checks
    @classmethod
    def check(cls, spec: NetworkSpec, profile: XyloProfile | None = None) -> list[Violation]:
        """Every way ``spec`` exceeds the chip (an empty list when it fits)."""
        p = cls.make_profile(profile)
        chip = p.name
        out: list[Violation] = []

        def add(path, limit, value, allowed):
            out.append(Violation(path, limit, value, allowed, chip))

        names = spec.population_names
        index = {n: k for k, n in enumerate(names)}
        output = spec.output_name
        hidden = [n for n in names if n != output]
        if spec.input_size > p.n_inputs:
            add("input_size", "input channels", spec.input_size, f"at most {p.n_inputs}")
        if not hidden:
            add(
                "populations",
                "hidden populations",
                0,
                "at least 1 (inputs reach only hidden neurons)",
            )
        n_hidden = sum(spec.size_of(h) for h in hidden)
        if n_hidden > p.n_hidden:
            path = f"populations[{index[hidden[0]]}].size" if len(hidden) == 1 else "populations"
            limit = "hidden neurons" + ("" if len(hidden) == 1 else " (all hidden populations)")
            add(path, limit, n_hidden, f"at most {p.n_hidden}")
        out_pop = spec.population(output)
        k_out = index[output]
        if out_pop.size > p.n_outputs:
            add(
                f"populations[{k_out}].size",
                "output neurons",
                out_pop.size,
                f"at most {p.n_outputs}",
            )
        if out_pop.model not in ("lif", "li"):
            add(
                f"populations[{k_out}].model",
                "output neuron model",
                repr(out_pop.model),
                "'lif' or 'li' (bit-shift LIF; 'li' reads the membrane)",
            )
        for name in hidden:
            pop = spec.population(name)
            if pop.model != "lif":
                add(
                    f"populations[{index[name]}].model",
                    "hidden neuron model",
                    repr(pop.model),
                    "'lif' only (current-based LIF with bit-shift decay)",
                )
        for pop in spec.populations:
            k = index[pop.name]
            prm = pop.params
            if prm.get("refractory_steps", 0):
                add(
                    f"populations[{k}].params.refractory_steps",
                    "refractory period",
                    f"{prm['refractory_steps']} steps",
                    "0 steps (Xylo neurons have no refractory period)",
                )
            if prm.get("reset") == "zero" and prm.get("v_reset", 0.0) != 0.0:
                add(
                    f"populations[{k}].params.v_reset",
                    "reset potential",
                    prm["v_reset"],
                    "0 only (the chip resets by subtracting the threshold)",
                )
            for key, low in (("tau_mem", 0), ("tau_syn", 1)):
                if key not in prm:
                    continue
                tau = prm[key]
                if key == "tau_syn" and tau == 0:
                    add(
                        f"populations[{k}].params.tau_syn",
                        "synaptic current (Xylo neurons integrate every input through one)",
                        "0 ms (no synaptic current, a delta synapse)",
                        f"shift 1 or more ({spec.dt * 2**0.5:.3g} ms or longer at dt "
                        f"{spec.dt:g} ms): a shift of 0 clears the current before it reaches "
                        "the membrane",
                    )
                    continue
                dash = bitshift(tau, spec.dt)
                if not (low <= dash <= p.dash_max):
                    lo = spec.dt * 2 ** (low - 0.5) if low else spec.dt
                    hi = spec.dt * 2 ** (p.dash_max + 0.5)
                    what = "membrane" if key == "tau_mem" else "synaptic"
                    add(
                        f"populations[{k}].params.{key}",
                        f"{what} time constant (bit shift round(log2(tau/dt)))",
                        f"{tau:g} ms (shift {dash})",
                        f"{lo:.3g} to {hi:.4g} ms at dt {spec.dt:g} ms (shifts {low} to "
                        f"{p.dash_max})",
                    )
        fan_out = {h: 0 for h in hidden}
        targets: dict[str, list[str]] = {h: [] for h in hidden}  # hidden targets of each
        recurrent_synapses = 0
        for j, proj in enumerate(spec.projections):
            path = f"projections[{j}]"
            if proj.max_delay > 0:
                add(
                    f"{path}.delay",
                    "synaptic delay",
                    f"{proj.max_delay} steps",
                    "0 (the chip's only delay is the one-step delivery of hidden spikes)",
                )
            if proj.source == output:
                add(
                    f"{path}.source",
                    "projection from the output population",
                    proj.name,
                    "none (output neurons do not project; recurrence only within hidden neurons)",
                )
            elif proj.source == INPUT and proj.target == output:
                add(
                    f"{path}.target",
                    "projection from the inputs to the outputs",
                    proj.name,
                    "input projections onto hidden neurons only",
                )
            elif proj.source in fan_out and proj.target in fan_out:
                fan_out[proj.source] += spec.size_of(proj.target)
                targets[proj.source].append(proj.target)
                recurrent_synapses += spec.size_of(proj.source) * spec.size_of(proj.target)
        # A neuron's fan-out grows with its targets' sizes (its fan-in with its sources'), so
        # these name the size of the largest target (source), the field to shrink.
        for h, n in fan_out.items():
            if n > p.max_fan_out:
                _, field, onto = summed_sizes(spec, targets[h])
                add(
                    field,
                    f"fan-out of each {h!r} neuron (synapses onto hidden neurons: {onto})",
                    n,
                    f"at most {p.max_fan_out}",
                )
        if recurrent_synapses > p.recurrent_synapses:
            add(
                "projections",
                "synapses between hidden neurons",
                recurrent_synapses,
                f"at most {p.recurrent_synapses}",
            )
        if p.max_fan_in is not None:
            for pop in spec.populations:
                n, field, sources = summed_sizes(spec, [q.source for q in spec.incoming(pop.name)])
                if n > p.max_fan_in:
                    add(
                        field,
                        f"fan-in of each {pop.name!r} neuron (from {sources})",
                        n,
                        f"at most {p.max_fan_in}",
                    )
        if hidden and all(p_.name in index for p_ in spec.populations):
            lay = _layout(spec)
            fed = sum(spec.size_of(h) for h in lay.input_targets)
            read = sum(spec.size_of(h) for h in lay.output_sources)
            # (Where these limits equal the number of hidden neurons, that count covers them.)
            if fed > p.max_input_targets and p.max_input_targets < p.n_hidden:
                add(
                    "projections",
                    "hidden neurons fed by the inputs",
                    fed,
                    f"at most {p.max_input_targets} (input expansion neurons)",
                )
            if read > p.max_output_sources and p.max_output_sources < p.n_hidden:
                add(
                    "projections",
                    "hidden neurons read by the outputs",
                    read,
                    f"at most {p.max_output_sources} (output expansion neurons)",
                )
            if fed <= p.max_input_targets and read <= p.max_output_sources:
                last_fed = max((lay.slices[h][1] for h in lay.input_targets), default=0)
                first_read = min(
                    (lay.slices[h][0] for h in lay.output_sources), default=lay.n_hidden
                )
                if (
                    last_fed > p.max_input_targets
                    or lay.n_hidden - first_read > p.max_output_sources
                ):
                    add(
                        "populations",
                        "placement of input-fed and read-out hidden neurons",
                        f"inputs reach neurons up to {last_fed}, outputs read from {first_read} "
                        f"of {lay.n_hidden}",
                        f"inputs to the first {p.max_input_targets} and outputs from the last "
                        f"{p.max_output_sources} hidden neurons",
                    )
        return out

    def latency(self, activity) -> float:
        """Seconds per sample: Xylo runs in real time, one step per ``dt``."""
        return activity.time_steps * self.spec.dt * 1e-3

    def energy(self, activity) -> pd.DataFrame:
        """Energy per sample of ``activity``: SynSense's cycle model for the activity shown
        (:func:`cycles_per_step`) at the profile's energy per cycle, and the static power over
        the sample's real time (Xylo runs in biological time).  The model is linear in the
        activities, so the mean activity gives the mean cycles."""
        p, lay, steps = self.profile, self.layout, activity.time_steps
        input_activity = activity.input_active / (steps * self.spec.input_size)
        hidden = sum(activity.active.get(h, 0.0) for h in lay.hidden)
        hidden_activity = hidden / (steps * lay.n_hidden) if lay.n_hidden else 0.0
        cycles = cycles_per_step(self, input_activity, hidden_activity)
        seconds = self.latency(activity)
        return energy_table(
            [
                priced("core clock cycles", steps * cycles, "cycles", p, "energy_per_cycle"),
                priced("static power over the sample", seconds, "s", p, "static_power"),
            ]
        )

    @classmethod
    def resources(cls, spec: NetworkSpec, profile: XyloProfile | None = None) -> pd.DataFrame:
        """What ``spec`` uses of the chip: rows ``resource, used, capacity, fraction``."""
        p = cls.make_profile(profile)
        output = spec.output_name
        hidden = [n for n in spec.population_names if n != output]
        n_hidden = sum(spec.size_of(h) for h in hidden)
        fan_out = {h: 0 for h in hidden}
        recurrent = 0
        for proj in spec.projections:
            if proj.source in fan_out and proj.target in fan_out:
                fan_out[proj.source] += spec.size_of(proj.target)
                recurrent += spec.size_of(proj.source) * spec.size_of(proj.target)
        lay = _layout(spec) if hidden else None
        fed = sum(spec.size_of(h) for h in lay.input_targets) if lay else 0
        read = sum(spec.size_of(h) for h in lay.output_sources) if lay else 0
        n_out = spec.size_of(output)
        return resource_table(
            [
                ("input channels", spec.input_size, p.n_inputs),
                ("hidden neurons", n_hidden, p.n_hidden),
                ("output neurons", n_out, p.n_outputs),
                ("synapses between hidden neurons", recurrent, p.recurrent_synapses),
                (
                    "largest fan-out of a hidden neuron",
                    max(fan_out.values(), default=0),
                    p.max_fan_out,
                ),
                ("hidden neurons fed by the inputs", fed, p.max_input_targets),
                ("hidden neurons read by the outputs", read, p.max_output_sources),
                ("input synapses", spec.input_size * fed, p.n_inputs * p.max_input_targets),
                ("readout synapses", read * n_out, p.max_output_sources * p.n_outputs),
            ]
        )

    @classmethod
    def notes(cls, spec: NetworkSpec, profile: XyloProfile | None = None) -> list[str]:
        """How the chip will run ``spec`` differently from the float simulator (no refusals)."""
        out = []
        for pop in spec.populations:
            if pop.model not in ("lif", "li"):
                continue
            for key in ("tau_mem", "tau_syn"):
                tau = pop.params[key]
                dash = bitshift(tau, spec.dt)
                real = bitshift_tau(dash, spec.dt)
                if abs(real - tau) > 1e-9 * tau:
                    out.append(f"{pop.name}.{key}: {tau:g} ms runs as shift {dash} ({real:.3g} ms)")
            if pop.model == "lif" and pop.params.get("reset") == "zero":
                out.append(f"{pop.name}.reset: 'zero' runs as subtraction of the threshold")
            if pop.params.get("v_leak", 0.0):
                out.append(f"{pop.name}.v_leak: runs as a constant bias (the chip rests at 0)")
        for proj in spec.projections:
            if proj.recurrent:
                out.append(f"{proj.name}: reaches the membrane one step earlier than in float")
        out.append("inputs reach the membrane in their own step (the float simulator: one later)")
        return out

    # ------------------------------------------------------------------ set-up
    def _routing_masks(self, synapse2, tau_syn2) -> dict[str, torch.Tensor]:
        """0/1 masks ``[target, source]`` of the synapses onto the second synaptic state."""
        spec, problems, masks = self.spec, [], {}
        names = {p.name: p for p in spec.projections}
        if synapse2 is None:
            synapse2 = {}
        if isinstance(synapse2, (list, tuple)):
            synapse2 = {name: "all" for name in synapse2}
        if not isinstance(synapse2, dict):
            raise SpecError(
                [Problem("options.synapse2", "must be a list of projection names or a dict")]
            )
        hidden = set(self.layout.hidden)
        for pop_name, value in tau_syn2.items():
            path = f"options.tau_syn2.{pop_name}"
            if pop_name not in hidden:
                problems.append(
                    Problem(
                        path,
                        f"{pop_name!r} is not a hidden population; choose one of {sorted(hidden)}",
                    )
                )
                continue
            size = spec.size_of(pop_name)
            values = value if isinstance(value, (list, tuple)) else [value]
            if isinstance(value, (list, tuple)) and len(value) != size:
                problems.append(
                    Problem(path, f"needs one value or {size} (one per neuron), got {len(value)}")
                )
                continue
            for tau in values:
                if (
                    not isinstance(tau, (int, float))
                    or not math.isfinite(tau)
                    or not (1 <= bitshift(tau, spec.dt) <= self.profile.dash_max)
                ):
                    lo, hi = spec.dt * 2**0.5, spec.dt * 2 ** (self.profile.dash_max + 0.5)
                    problems.append(
                        Problem(
                            path,
                            f"{tau!r} ms must give a shift of 1 to {self.profile.dash_max} "
                            f"({lo:.3g} to {hi:.4g} ms at dt {spec.dt:g} ms)",
                        )
                    )
                    break
        if (synapse2 or tau_syn2) and self.profile.synaptic_states < 2:
            problems.append(
                Problem(
                    "options.synapse2" if synapse2 else "options.tau_syn2",
                    f"second synaptic state: {self.profile.name} has "
                    f"{self.profile.synaptic_states} synaptic state per neuron",
                )
            )
        for name, value in synapse2.items():
            path = f"options.synapse2.{name}"
            proj = names.get(name)
            if proj is None:
                problems.append(
                    Problem(path, f"is not a projection; choose one of {sorted(names)}")
                )
                continue
            if proj.target not in hidden:
                problems.append(Problem(path, "targets the outputs, which have one synaptic state"))
                continue
            if proj.target not in tau_syn2:
                problems.append(
                    Problem(
                        path, f"needs options.tau_syn2.{proj.target} (the second time constant)"
                    )
                )
                continue
            shape = (spec.size_of(proj.target), spec.size_of(proj.source))
            if value == "all" or value is True:
                mask = torch.ones(shape, dtype=torch.float64)
            else:
                mask = torch.as_tensor(value, dtype=torch.float64)
                if tuple(mask.shape) != shape or not bool(((mask == 0) | (mask == 1)).all()):
                    problems.append(
                        Problem(path, f"must be 'all' or a 0/1 matrix of shape {shape}")
                    )
                    continue
            masks[projection_key(proj)] = mask
        if problems:
            raise SpecError(problems)
        return masks

    def _setup_neurons(self) -> None:
        """Per-neuron shifts, gains and float parameters of the hidden pool and the outputs."""
        spec, lay, dt = self.spec, self.layout, self.spec.dt
        n, m = lay.n_hidden, spec.size_of(lay.output)
        dash_mem, dash_syn, dash_syn2 = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
        gain1, gain2 = np.ones(n), np.ones(n)
        theta, v_leak = np.ones(n), np.zeros(n)
        cache: dict = {}

        def gain(tau_mem, tau_syn, dm, ds):
            key = (tau_mem, tau_syn, dm, ds)
            if key not in cache:
                cache[key] = psp_gain(dt, tau_mem, tau_syn, dm, ds, self.gain_match)
            return cache[key]

        for name in lay.hidden:
            a, b = lay.slices[name]
            prm = spec.population(name).params
            dm, ds = bitshift(prm["tau_mem"], dt), bitshift(prm["tau_syn"], dt)
            dash_mem[a:b], dash_syn[a:b] = dm, ds
            gain1[a:b] = gain(prm["tau_mem"], prm["tau_syn"], dm, ds)
            theta[a:b], v_leak[a:b] = prm["threshold"], prm["v_leak"]
            taus2 = self.tau_syn2.get(name, prm["tau_syn"])
            taus2 = list(taus2) if isinstance(taus2, (list, tuple)) else [taus2] * (b - a)
            for k, tau2 in enumerate(taus2):
                d2 = bitshift(tau2, dt)
                dash_syn2[a + k] = d2
                gain2[a + k] = gain(prm["tau_mem"], tau2, dm, d2)
        out = spec.population(lay.output)
        prm = out.params
        dm_o, ds_o = bitshift(prm["tau_mem"], dt), bitshift(prm["tau_syn"], dt)
        self.output_spiking = out.spiking
        as_t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float64)  # noqa: E731
        buffers = {
            "dash_mem": as_t(dash_mem),
            "dash_syn": as_t(dash_syn),
            "dash_syn2": as_t(dash_syn2),
            "gain1": as_t(gain1),
            "gain2": as_t(gain2),
            "theta_float": as_t(theta),
            "v_leak": as_t(v_leak),
            "dash_mem_out": as_t(np.full(m, dm_o)),
            "dash_syn_out": as_t(np.full(m, ds_o)),
            "gain_out": as_t(np.full(m, gain(prm["tau_mem"], prm["tau_syn"], dm_o, ds_o))),
            "theta_out_float": as_t(np.full(m, prm.get("threshold", 1.0))),
            "v_leak_out": as_t(np.full(m, prm.get("v_leak", 0.0))),
        }
        for key, value in buffers.items():
            self.register_buffer(key, value, persistent=False)

    # ------------------------------------------------------------------ quantisation
    def _effective_weights(self):
        """Float weights in the chip's structure and units (gain applied), with gradients:
        ``w_in[k]`` ``[N, inputs]`` and ``w_rec[k]`` ``[N, N]`` per synaptic state ``k``,
        ``w_out`` ``[M, N]``, and whether any hidden -> hidden weights exist."""
        spec, lay = self.spec, self.layout
        n, m, n_in = lay.n_hidden, spec.size_of(lay.output), spec.input_size
        dev, f64 = self.gain1.device, torch.float64
        w_in = [torch.zeros(n, n_in, dtype=f64, device=dev) for _ in range(2)]
        w_rec = [torch.zeros(n, n, dtype=f64, device=dev) for _ in range(2)]
        w_out = torch.zeros(m, n, dtype=f64, device=dev)
        rec_used = False
        for proj in spec.projections:
            w = self.float_weight(proj).to(f64)
            if proj.target == lay.output:
                a, b = lay.slices[proj.source]
                w_out[:, a:b] = w * self.gain_out[:, None]
                continue
            ta, tb = lay.slices[proj.target]
            mask2 = self._syn2_masks.get(projection_key(proj))
            if mask2 is None:
                parts = [w * self.gain1[ta:tb, None], None]
            else:
                mask2 = mask2.to(dev)
                parts = [
                    w * (1 - mask2) * self.gain1[ta:tb, None],
                    w * mask2 * self.gain2[ta:tb, None],
                ]
            for state, part in enumerate(parts):
                if part is None:
                    continue
                if proj.source == INPUT:
                    w_in[state][ta:tb, :] = part
                else:
                    sa, sb = lay.slices[proj.source]
                    w_rec[state][ta:tb, sa:sb] = part
                    rec_used = True
        return w_in, w_rec, w_out, rec_used

    def _shifts_and_units(self, w_in, w_rec, w_out):
        """The three matrix shifts and each neuron's unit (integer units per float membrane
        unit): the largest unit at which every int8 weight onto the neuron fits, capped so
        that its reference level (threshold, or a readout's range) stays within the state
        limit; one unit per group unless the scale is per neuron."""
        p = self.profile
        qmax = float(2 ** (p.weight_bits - 1) - 1)
        auto = self.weight_shift == "auto"
        grouped = self.weight_scale != "per_neuron"
        with torch.no_grad():
            m_in = torch.stack([x.abs().amax(dim=1) for x in w_in]).amax(dim=0)
            m_rec = torch.stack([x.abs().amax(dim=1) for x in w_rec]).amax(dim=0)
            m_out = w_out.abs().amax(dim=1)
            # Reference level of each neuron and the largest integer it may reach.
            lim_h = STATE_MAX / self.threshold_headroom if auto else float(STATE_MAX)
            cap_h = lim_h / self.theta_float
            if self.output_spiking:
                cap_o = (
                    STATE_MAX / self.threshold_headroom if auto else STATE_MAX
                ) / self.theta_out_float
            else:
                cap_o = torch.full_like(m_out, STATE_MAX / self.readout_range)
            if grouped:
                cap_h, cap_o = _group_min(cap_h), _group_min(cap_o)
                m_in, m_rec, m_out = _group_max(m_in), _group_max(m_rec), _group_max(m_out)
            m_hid = torch.maximum(m_in, m_rec)
            if self.weight_scale == "network":
                top = max(float(m_hid.max()), float(m_out.max()))
                m_in = m_rec = m_hid = torch.full_like(m_hid, top)
                m_out = torch.full_like(m_out, top)
            fit_h = qmax / m_hid.clamp(min=_TINY)  # int8 scale at shift 0
            fit_o = qmax / m_out.clamp(min=_TINY)
            if auto:
                s_h = _largest_shift(fit_h, cap_h, p.weight_shift_max)
                s_o = _largest_shift(fit_o, cap_o, p.weight_shift_max)
                shifts = (s_h, s_h, s_o)
            else:
                shifts = tuple(int(s) for s in self.weight_shift)
            s_in, s_rec, s_out = shifts
            u_h = torch.minimum(
                qmax * 2.0**s_in / m_in.clamp(min=_TINY), qmax * 2.0**s_rec / m_rec.clamp(min=_TINY)
            )
            u_h = torch.minimum(u_h, cap_h)
            u_o = torch.minimum(qmax * 2.0**s_out / m_out.clamp(min=_TINY), cap_o)
            if self.weight_scale == "network":
                # One int8 scale for every matrix: the smallest over the two groups.
                k = min(float(u_h.min()) / 2.0**s_in, float(u_o.min()) / 2.0**s_out)
                u_h = torch.full_like(u_h, k * 2.0**s_in)
                u_o = torch.full_like(u_o, k * 2.0**s_out)
        return shifts, u_h, u_o

    def _quantize(self) -> _Chip:
        if self._integers is not None:
            return self._integers.to(self.gain1.device)
        w_in, w_rec, w_out, rec_used = self._effective_weights()
        shifts, u_h, u_o = self._shifts_and_units(w_in, w_rec, w_out)
        lo, hi = self.profile.weight_range
        s_in, s_rec, s_out = shifts

        def q(w, unit, shift):
            return _ste_round(torch.clamp(w * (unit / 2.0**shift)[:, None], lo, hi))

        q_in = [q(w, u_h, s_in) for w in w_in]
        q_rec = [q(w, u_h, s_rec) for w in w_rec]
        q_out = q(w_out, u_o, s_out)
        theta = torch.clamp(torch.round(self.theta_float * u_h), 1, STATE_MAX)
        if self.output_spiking:
            theta_out = torch.clamp(torch.round(self.theta_out_float * u_o), 1, STATE_MAX)
        else:
            theta_out = torch.full_like(u_o, float(STATE_MAX))
        bias = torch.clamp(
            torch.round(self.v_leak * u_h / 2.0**self.dash_mem), STATE_MIN, STATE_MAX
        )
        bias_out = torch.clamp(
            torch.round(self.v_leak_out * u_o / 2.0**self.dash_mem_out), STATE_MIN, STATE_MAX
        )
        syn2_used = bool(self._syn2_masks)
        return _Chip(
            w_in=[x * 2.0**s_in for x in q_in],
            w_rec=[x * 2.0**s_rec for x in q_rec],
            w_out=q_out * 2.0**s_out,
            int8={"in": q_in, "rec": q_rec, "out": q_out},
            shifts=shifts,
            theta=theta,
            theta_out=theta_out,
            bias=bias,
            bias_out=bias_out,
            unit=u_h,
            unit_out=u_o,
            rec_used=rec_used,
            syn2_used=syn2_used,
        )

    def configuration(self) -> XyloConfiguration:
        """The chip's registers for the current weights, as plain Python integers."""
        with torch.no_grad():
            c = self._quantize()
        ints = lambda t: [[int(v) for v in r] for r in t.round().to(torch.int64).tolist()]  # noqa: E731
        ivec = lambda t: [int(v) for v in t.round().to(torch.int64).tolist()]  # noqa: E731
        return XyloConfiguration(
            weights_in=ints(c.int8["in"][0]),
            weights_in2=ints(c.int8["in"][1]),
            weights_rec=ints(c.int8["rec"][0]),
            weights_rec2=ints(c.int8["rec"][1]),
            weights_out=ints(c.int8["out"]),
            weight_shift_in=c.shifts[0],
            weight_shift_rec=c.shifts[1],
            weight_shift_out=c.shifts[2],
            dash_mem=ivec(self.dash_mem),
            dash_syn=ivec(self.dash_syn),
            dash_syn2=ivec(self.dash_syn2),
            threshold=ivec(c.theta),
            bias=ivec(c.bias),
            dash_mem_out=ivec(self.dash_mem_out),
            dash_syn_out=ivec(self.dash_syn_out),
            threshold_out=ivec(c.theta_out),
            bias_out=ivec(c.bias_out),
            hidden_slices=dict(self.layout.slices),
            max_input_events=self.profile.max_input_events,
            max_hidden_spikes=self.profile.max_hidden_spikes,
            max_output_spikes=self.profile.max_output_spikes,
            alias_target=None if c.alias_target is None else ivec(c.alias_target),
        )

    # ------------------------------------------------------------------ number formats
    def weight(self, proj) -> torch.Tensor:
        """The chip's weight of ``proj`` in the float simulator's units (quantisation undone)."""
        c = self._quantize()
        lay = self.layout
        if proj.target == lay.output:
            a, b = lay.slices[proj.source]
            return (c.w_out[:, a:b] / (c.unit_out * self.gain_out)[:, None]).to(self.dtype)
        ta, tb = lay.slices[proj.target]
        unit = c.unit[ta:tb, None]
        mask2 = self._syn2_masks.get(projection_key(proj))
        if proj.source == INPUT:
            blocks = [x[ta:tb, :] for x in c.w_in]
        else:
            sa, sb = lay.slices[proj.source]
            blocks = [x[ta:tb, sa:sb] for x in c.w_rec]
        w = blocks[0] / (unit * self.gain1[ta:tb, None])
        if mask2 is not None:
            w = w * (1 - mask2) + mask2 * blocks[1] / (unit * self.gain2[ta:tb, None])
        return w.to(self.dtype)

    def clipped(self, proj) -> torch.Tensor:
        """Synapses whose scaled weight falls outside the int8 range (before rounding)."""
        with torch.no_grad():
            w_in, w_rec, w_out, _ = self._effective_weights()
            shifts, u_h, u_o = self._shifts_and_units(w_in, w_rec, w_out)
            lo, hi = self.profile.weight_range
            lay = self.layout
            w = self.float_weight(proj).to(torch.float64)
            if proj.target == lay.output:
                scaled = w * (self.gain_out * u_o / 2.0 ** shifts[2])[:, None]
            else:
                ta, tb = lay.slices[proj.target]
                shift = shifts[0] if proj.source == INPUT else shifts[1]
                mask2 = self._syn2_masks.get(projection_key(proj))
                g = self.gain1[ta:tb, None]
                if mask2 is not None:
                    g = g * (1 - mask2) + self.gain2[ta:tb, None] * mask2
                scaled = w * g * (u_h[ta:tb] / 2.0**shift)[:, None]
            return (scaled < lo - 0.5) | (scaled > hi + 0.5)

    # ------------------------------------------------------------------ dynamics
    def forward(self, x: torch.Tensor, record: bool | Iterable[str] = ()) -> RunResult:
        """Run ``x`` (``[time, batch, inputs]`` event counts) on the emulated chip."""
        self._check_input(x)
        wanted = self.wanted(record)
        chip = self._quantize()
        lay = self.layout
        hidden = any(name in wanted for name in lay.hidden)
        states = self._simulate(x, chip, surrogate=True, hidden=hidden, traces=self.dtype)
        recordings = {}
        for name in self.spec.population_names:
            if name not in wanted:
                continue
            if name != lay.output and "v_rec" in states:  # written by the compiled loop
                a, b = lay.slices[name]
                recordings[name] = {
                    "v": states["v_rec"][..., a:b],
                    "i": states["i_rec"][..., a:b],
                    "spikes": states["n_rec"][..., a:b],  # (hidden neurons spike)
                }
                continue
            if name == lay.output:
                unit = chip.unit_out
                v, i, z = states["v_out"], states["i_out"], states["n_out"]
            else:
                a, b = lay.slices[name]
                unit = chip.unit[a:b]
                v, z = states["v"][..., a:b], states["n"][..., a:b]
                i = states["i1"][..., a:b] + states["i2"][..., a:b]
            trace = {"v": (v / unit).to(self.dtype), "i": (i / unit).to(self.dtype)}
            if self.spec.population(name).spiking:
                trace["spikes"] = z.to(self.dtype)
            recordings[name] = trace
        if self.output_spiking:
            output = states["n_out"].to(self.dtype)
        else:
            output = (states["v_out"] / chip.unit_out).to(self.dtype)
        return RunResult(output, recordings)

    @torch.no_grad()
    def integer_run(self, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """The chip's integer states ``{population: {"spikes", "v", "i", "i2"}}`` as int64
        ``[time, batch, neurons]`` (``i2``: the second synaptic state; outputs have none)."""
        self._check_input(x)
        states = self._simulate(x, self._quantize(), surrogate=False)
        lay = self.layout
        out = {}
        for name in lay.hidden:
            a, b = lay.slices[name]
            out[name] = {
                "spikes": states["n"][..., a:b],
                "v": states["v"][..., a:b],
                "i": states["i1"][..., a:b],
                "i2": states["i2"][..., a:b],
            }
        out[lay.output] = {"spikes": states["n_out"], "v": states["v_out"], "i": states["i_out"]}
        return {k: {kk: vv.round().to(torch.int64) for kk, vv in v.items()} for k, v in out.items()}

    def _spikes(self, v, theta, max_spikes, unit, surrogate: bool, aliases=None):
        """``(sent, fired)``: the spike counts a neuron sends (with aliased spikes added; the
        surrogate's gradient on ``v`` where ``surrogate``) and those it fired itself (integers,
        for the reset)."""
        whole = torch.div(v.detach().to(torch.int64), theta.to(torch.int64), rounding_mode="floor")
        fired = torch.clamp(whole, 0, max_spikes).to(v.dtype)
        count = fired
        if aliases is not None:
            fired, count = _aliased(fired, aliases, max_spikes)
        if not surrogate:
            return count, fired
        smooth = self.surrogate((v - theta) / unit)
        return smooth + (count - smooth).detach(), fired

    def _counts(self, x: torch.Tensor) -> torch.Tensor:
        """Event counts: whole numbers of events, at most max_input_events per channel and
        step (float64)."""
        limit = self.profile.max_input_events
        return x.detach().clamp(min=0).to(torch.int64).clamp(max=limit).to(torch.float64)

    def _simulate(
        self, x: torch.Tensor, c: _Chip, surrogate: bool, hidden: bool = True, traces=None
    ) -> dict[str, torch.Tensor]:
        """The integer dynamics over time (float64 tensors holding integers): the compiled
        loop (:mod:`workbench.hardware.xylo_kernels`) where ``self.kernel`` is "compiled" and it
        can run, else the torch loop (:meth:`_simulate_torch`, the reference).

        What the compiled loop may leave out: without ``hidden``, the hidden neurons' currents
        (and, without gradient, all their states); with a ``traces`` dtype and no gradient,
        it returns the hidden neurons' recordings ``v_rec``, ``i_rec``, ``n_rec`` (see
        :meth:`forward`) in place of their states."""
        if self.kernel == "compiled" and self._compilable(x, c, surrogate):
            return self._simulate_compiled(x, c, surrogate, hidden, traces)
        return self._simulate_torch(x, c, surrogate)

    def _compilable(self, x: torch.Tensor, c: _Chip, surrogate: bool) -> bool:
        tensors = [c.w_out, c.theta, c.unit, c.theta_out, c.unit_out, c.bias, c.bias_out]
        if x.device.type != "cpu" or not xylo_kernels.available(*tensors, *c.w_in, *c.w_rec):
            return False
        if surrogate and torch.is_grad_enabled():
            # The adjoint knows the gradients of the weights only (thresholds, biases and
            # units are rounded or fixed: autograd gives them none either) and the surrogates
            # of workbench.neurons.
            if any(t.requires_grad for t in tensors[1:]):
                return False
            return getattr(self.surrogate, "kind", None) in SURROGATE_CODES
        return True

    def _loop(self, c: _Chip, surrogate: bool) -> _Loop:
        """What the compiled loop needs besides the weights, for chip ``c``."""
        p = self.profile
        states = 2 if c.syn2_used else 1
        return _Loop(
            states=states,
            hidden=(
                [torch.pow(2.0, -d) for d in (self.dash_syn, self.dash_syn2)[:states]],
                torch.pow(2.0, -self.dash_mem),
                c.bias,
                c.theta,
                c.unit,
                p.max_hidden_spikes,
            ),
            output=(
                torch.pow(2.0, -self.dash_syn_out),
                torch.pow(2.0, -self.dash_mem_out),
                c.bias_out,
                c.theta_out,
                c.unit_out,
                p.max_output_spikes,
            ),
            surrogate=self.surrogate,
            spiking_out=surrogate and self.output_spiking,
            alias=c.alias_target if _alias_plan(c.alias_target) is not None else None,
        )

    def _simulate_compiled(self, x, c: _Chip, surrogate: bool, hidden=True, traces=None):
        loop = self._loop(c, surrogate)
        states = loop.states
        w_rec = c.w_rec[:states] if c.rec_used else []
        counts = self._counts(x)
        weights = [c.w_out, *c.w_in[:states], *w_rec]
        if surrogate and torch.is_grad_enabled() and any(w.requires_grad for w in weights):
            loop.keep = HIDDEN_STATES if hidden else HIDDEN_STATES[:2]
            out = _XyloLoop.apply(loop, counts, *weights)
            return dict(zip(loop.names, out))
        if not hidden:
            keep, traces = (), None
        else:
            keep = () if traces is not None else HIDDEN_STATES
        out, _ = xylo_kernels.xylo_forward(
            counts, c.w_in[:states], w_rec or None, c.w_out, loop.hidden, loop.output, keep,
            traces, flags=False, alias=loop.alias,
        )  # fmt: skip
        return out

    def _simulate_torch(self, x: torch.Tensor, c: _Chip, surrogate: bool):
        """The integer dynamics in torch operations, one step at a time (the reference): the
        events of a step are delivered source by source (:func:`_deliver`), vectorised over
        the batch and the targets."""
        p = self.profile
        counts = self._counts(x)
        n_steps, batch = x.shape[:2]
        n, m = self.layout.n_hidden, c.w_out.shape[0]
        states = 2 if c.syn2_used else 1
        # Each synaptic state's sources in the chip's order: the input channels, then (with
        # hidden -> hidden weights) the previous step's hidden spikes.
        if c.rec_used:
            w_src = [torch.cat([c.w_in[k], c.w_rec[k]], dim=1) for k in range(states)]
        else:
            w_src = [c.w_in[k] for k in range(states)]
        step_mem = self.dash_mem.to(torch.int64)
        step_syn = [self.dash_syn.to(torch.int64), self.dash_syn2.to(torch.int64)]
        aliases = _alias_plan(c.alias_target)
        zeros = counts.new_zeros(batch, n)
        cur = [zeros] * states
        v, z = zeros, zeros
        vs, ns, i1s, i2s = [], [], [], []
        for t in range(n_steps):
            src = torch.cat([counts[t], z], dim=1) if c.rec_used else counts[t]
            for k in range(states):
                cur[k] = _deliver(cur[k], src, w_src[k])
                cur[k] = cur[k] - _decay(cur[k], step_syn[k])
            total = cur[0] if states == 1 else cur[0] + cur[1]
            dv = _sat(total + _leak(v, step_mem))
            dv = _sat(dv + c.bias)
            v = _sat(v + dv)
            z, fired = self._spikes(
                v, c.theta, p.max_hidden_spikes, c.unit, surrogate, aliases
            )  # fmt: skip
            v = v - fired * c.theta
            vs.append(v)
            ns.append(z)
            i1s.append(cur[0])
            i2s.append(cur[1] if states == 2 else zeros)
        hidden_spikes = torch.stack(ns) if n_steps else counts.new_zeros(0, batch, n)
        # Hidden spikes reach the outputs in the next step.
        previous = torch.cat([hidden_spikes.new_zeros(1, batch, n), hidden_spikes[:-1]])
        step_mem_o = self.dash_mem_out.to(torch.int64)
        step_syn_o = self.dash_syn_out.to(torch.int64)
        cur_o = v_o = counts.new_zeros(batch, m)
        vo, no, io = [], [], []
        for t in range(n_steps):
            cur_o = _deliver(cur_o, previous[t], c.w_out)
            cur_o = cur_o - _decay(cur_o, step_syn_o)
            dv = _sat(cur_o + _leak(v_o, step_mem_o))
            dv = _sat(dv + c.bias_out)
            v_o = _sat(v_o + dv)
            z_o, fired_o = self._spikes(
                v_o, c.theta_out, p.max_output_spikes, c.unit_out, surrogate and self.output_spiking
            )
            v_o = v_o - fired_o * c.theta_out
            vo.append(v_o)
            no.append(z_o)
            io.append(cur_o)
        return {
            "v": torch.stack(vs),
            "n": hidden_spikes,
            "i1": torch.stack(i1s),
            "i2": torch.stack(i2s),
            "v_out": torch.stack(vo),
            "n_out": torch.stack(no),
            "i_out": torch.stack(io),
        }

    # ------------------------------------------------------------------ reports
    def neuron_report(self) -> pd.DataFrame:
        """Per population: each time constant asked for, its shift and the one realised, and
        the integer threshold range."""
        dt = self.spec.dt
        rows = []
        with torch.no_grad():
            c = self._quantize()
        for pop in self.spec.populations:
            for key in ("tau_mem", "tau_syn"):
                tau = pop.params[key]
                dash = bitshift(tau, dt)
                rows.append(
                    {
                        "population": pop.name,
                        "parameter": key,
                        "requested": tau,
                        "shift": dash,
                        "on_chip": bitshift_tau(dash, dt),
                    }
                )
            if pop.name == self.layout.output:
                th = c.theta_out
            else:
                a, b = self.layout.slices[pop.name]
                th = c.theta[a:b]
            rows.append(
                {
                    "population": pop.name,
                    "parameter": "threshold (integer)",
                    "requested": pop.params.get("threshold", float("nan")),
                    "shift": float("nan"),
                    "on_chip": f"{int(th.min())}..{int(th.max())}",
                }
            )
        return pd.DataFrame(rows)


@dataclass
class _Loop:
    """What the compiled loop needs besides the weights (see ``Xylo._simulate_compiled``)."""

    states: int
    # (2**-dash_syn per state, 2**-dash_mem, bias, theta, unit, max_spikes); the outputs have
    # one 2**-dash_syn
    hidden: tuple
    output: tuple
    surrogate: object
    spiking_out: bool
    alias: torch.Tensor | None = None  # the hidden neurons' alias targets (None: no aliases)
    keep: tuple = HIDDEN_STATES  # the hidden neurons' states to return
    names: tuple = ()  # the outputs of _XyloLoop, in order


class _XyloLoop(torch.autograd.Function):
    """The compiled integer loop forward; backward, the adjoint of the torch loop's autograd
    graph (straight-through decays, in-range saturations, event by event in the delivery, the
    surrogate at the spikes).

    Inputs: ``loop``, ``counts``, then the weights ``w_out``, ``w_in`` per state and ``w_rec``
    per state (when hidden -> hidden weights exist).  Outputs ``(v, n, i1, i2, v_out, n_out,
    i_out)`` as ``Xylo._simulate_torch`` returns them, those of the hidden neurons only where
    ``loop.keep`` names them (``v`` and ``n`` always: the backward pass needs them)."""

    @staticmethod
    def forward(ctx, loop: _Loop, counts, w_out, *weights):
        k = loop.states
        w_in, w_rec = list(weights[:k]), list(weights[k:])
        states, saved = xylo_kernels.xylo_forward(
            counts, w_in, w_rec or None, w_out, loop.hidden, loop.output, loop.keep,
            alias=loop.alias,
        )  # fmt: skip
        ctx.loop = loop
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(
            counts, states["v"], states["n"], states["v_out"], states["n_out"], *saved, w_out,
            *w_rec,
        )  # fmt: skip
        if not loop.spiking_out:
            ctx.mark_non_differentiable(states["n_out"])
        if k == 1 and "i2" in states:
            ctx.mark_non_differentiable(states["i2"])
        loop.names = tuple(name for name in _OUTPUTS if name in states)
        return tuple(states[name] for name in loop.names)

    @staticmethod
    def backward(ctx, *grads):
        loop = ctx.loop
        counts, v, n, v_out, n_out, *saved = ctx.saved_tensors
        saved, w_out, w_rec = saved[:5], saved[5], saved[6:]
        given = dict(zip(loop.names, grads))
        grad_in, grad_rec, grad_out = xylo_kernels.xylo_backward(
            [given.get(name) for name in _OUTPUTS],
            (counts, v, n, v_out, n_out, *saved),
            w_rec or None,
            w_out,
            loop.hidden,
            loop.output,
            loop.surrogate,
            loop.spiking_out,
        )
        return None, None, grad_out, *grad_in, *(grad_rec or [])


_OUTPUTS = ("v", "n", "i1", "i2", "v_out", "n_out", "i_out")
_TINY = 1e-12


def _group_max(x: torch.Tensor) -> torch.Tensor:
    return torch.full_like(x, float(x.max())) if x.numel() else x


def _group_min(x: torch.Tensor) -> torch.Tensor:
    return torch.full_like(x, float(x.min())) if x.numel() else x


def _largest_shift(fit: torch.Tensor, cap: torch.Tensor, shift_max: int) -> int:
    """The matrix shift: the largest ``s <= shift_max`` at which the neuron with the largest
    weights (smallest ``fit``) still fits its cap, ``fit * 2**s <= cap``.  Every other neuron
    then gets a unit of at least half its cap (``min(fit * 2**s, cap)``): no neuron's states
    are coarser than with one scale for all."""
    if fit.numel() == 0:
        return 0
    room = float((cap / fit).max())
    if room < 2.0:
        return 0
    return int(min(math.floor(math.log2(room)), shift_max))


def _option_problems(weight_scale, weight_shift, gain_match, headroom, readout_range, profile):
    problems = []
    if weight_scale not in WEIGHT_SCALES:
        problems.append(
            Problem(
                "options.weight_scale", f"{weight_scale!r} must be one of {list(WEIGHT_SCALES)}"
            )
        )
    if gain_match not in GAIN_MATCHES:
        problems.append(
            Problem("options.gain_match", f"{gain_match!r} must be one of {list(GAIN_MATCHES)}")
        )
    smax = (profile or XyloProfile()).weight_shift_max
    if weight_shift != "auto":
        ok = (
            isinstance(weight_shift, (list, tuple))
            and len(weight_shift) == 3
            and all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= smax
                for s in weight_shift
            )
        )
        if not ok:
            problems.append(
                Problem(
                    "options.weight_shift",
                    f"{weight_shift!r} must be 'auto' or (in, rec, out) integers 0 to {smax}",
                )
            )
        elif weight_scale == "network" and weight_shift[0] != weight_shift[1]:
            problems.append(
                Problem(
                    "options.weight_shift",
                    f"{weight_shift!r}: one scale for the network needs equal input and "
                    "recurrent shifts",
                )
            )
    if not (isinstance(headroom, (int, float)) and math.isfinite(headroom) and headroom >= 1):
        problems.append(
            Problem("options.threshold_headroom", f"{headroom!r} must be a finite number >= 1")
        )
    if not (
        isinstance(readout_range, (int, float))
        and math.isfinite(readout_range)
        and readout_range > 0
    ):
        problems.append(
            Problem("options.readout_range", f"{readout_range!r} must be a finite number > 0")
        )
    return problems


# ------------------------------------------------------------------------------------ power
def cycles_per_step(
    network: Xylo,
    input_activity: float,
    hidden_activity: float,
    output_activity: float = 0.0,
) -> float:
    """Core clock cycles to compute one time step (the Xylo Audio 2 cycle model).

    The activities are the probabilities that an input channel, a hidden neuron or an output
    neuron has at least one event in a step (several events in one step cost as much as one).
    The counts come from the network: input channels, hidden neurons, the neurons the inputs
    reach, the neurons the outputs read, and the average number of non-zero recurrent weights
    per hidden neuron (either synaptic state).  Alias (copy) connections are not used here, so
    their terms vanish.
    """
    p = network.profile
    cfg = network.configuration()
    n_in = network.spec.input_size
    n_hid = network.layout.n_hidden
    n_out = network.spec.size_of(network.layout.output)
    fed = sum(network.spec.size_of(h) for h in network.layout.input_targets)
    read = sum(network.spec.size_of(h) for h in network.layout.output_sources)
    if n_hid:
        rec = np.array(cfg.weights_rec) != 0
        rec |= np.array(cfg.weights_rec2) != 0
        fan_out = float(rec.sum(axis=0).mean())  # per source neuron: its column of [target][source]
    else:
        fan_out = 0.0
    cycles_input = n_in * (input_activity * fed * p.cycles_input_event + p.cycles_input_channel)
    cycles_hidden_syn = n_hid * (
        fan_out * p.cycles_hidden_synapse * hidden_activity + p.cycles_hidden_isyn
    )
    cycles_output_syn = (
        read * hidden_activity * (p.cycles_output_source + n_out * p.cycles_output_synapse)
    )
    cycles_hidden = n_hid * (p.cycles_hidden_neuron + p.cycles_hidden_spike * hidden_activity)
    cycles_output = n_out * p.cycles_output_neuron
    del output_activity  # the model's output term does not depend on output activity
    return cycles_input + cycles_hidden_syn + cycles_output_syn + cycles_hidden + cycles_output


def _activity(x: torch.Tensor | None) -> float:
    if x is None:
        return 1.0
    x = torch.as_tensor(x)
    return float((x > 0).to(torch.float64).mean()) if x.numel() else 0.0


def estimate_power(network: Xylo, recordings, inputs: torch.Tensor | None = None) -> pd.DataFrame:
    """Cycles, power and energy per time step of ``network`` for the activity it showed.

    ``recordings``: the recordings of a forward pass (``result.recordings`` or the
    :class:`RunResult`) holding the spikes of every hidden population; ``inputs``: the input
    events ``[time, batch, inputs]`` (None: every channel active every step, the worst case).

    Model: ``cycles`` from :func:`cycles_per_step` (SynSense's cycle model of Xylo Audio 2);
    dynamic power ``energy_per_cycle * cycles / dt`` (the core idles once a step is done);
    total power adds the profile's static power.  The energy per cycle and the static power
    are assumptions of the profile (see ``network.profile.figures()``).
    """
    if isinstance(recordings, RunResult):
        recordings = recordings.recordings
    lay = network.layout
    missing = [h for h in lay.hidden if h not in recordings or "spikes" not in recordings[h]]
    if missing:
        raise ValueError(f"recordings: spikes of {missing} are missing; run with record=True")
    hidden = torch.cat([torch.as_tensor(recordings[h]["spikes"]) for h in lay.hidden], dim=-1)
    hidden_activity = _activity(hidden)
    out_rec = recordings.get(lay.output, {})
    output_activity = _activity(out_rec.get("spikes")) if "spikes" in out_rec else 0.0
    input_activity = _activity(inputs)
    p = network.profile
    cycles = cycles_per_step(network, input_activity, hidden_activity, output_activity)
    dt_s = network.spec.dt * 1e-3
    dynamic = p.energy_per_cycle * cycles / dt_s
    total = dynamic + p.static_power
    busy = cycles / (p.clock_hz * dt_s)
    rows = [
        (
            "input activity",
            input_activity,
            "events per channel-step (>=1)",
            "worst case" if inputs is None else "",
        ),
        ("hidden activity", hidden_activity, "spiking fraction per neuron-step", ""),
        ("output activity", output_activity, "spiking fraction per neuron-step", ""),
        ("cycles per step", cycles, "core clock cycles", "SynSense cycle model (Xylo Audio 2)"),
        ("core busy fraction", busy, "of each step at the core clock", "> 1: not real time"),
        ("dynamic power", dynamic, "W", "assumed energy per cycle"),
        ("static power", p.static_power, "W", "assumption"),
        ("total power", total, "W", ""),
        ("energy per step", total * dt_s, "J", ""),
    ]
    return pd.DataFrame(rows, columns=["quantity", "value", "unit", "note"])
