"""BrainScaleS-2: an analog, accelerated neuromorphic chip, emulated for hardware-in-the-loop work.

The emulator runs the network the way the chip would: 6-bit signed weights (the sign chosen by
routing an input to an excitatory or an inhibitory synapse row), neuron parameters that differ
from neuron to neuron (fixed-pattern mismatch left after calibration, drawn once per emulated
chip from ``chip_seed``), temporal noise on every membrane, and membrane traces observed like
the chip's 8-bit column-parallel ADC (CADC) at its sampling period.  Time runs 1000 times
faster than biology; specs and recordings stay in biological milliseconds and recordings carry
the hardware time beside it.

Hardware-in-the-loop training, as hxtorch.snn does it (Spilger et al. 2023): the forward pass
returns what the chip produced (spikes, ADC-observed membranes); the backward pass uses the
surrogate gradient of the float model at the chip's membrane, and the observation is passed
forward by a straight-through function (observation forward, gradient to the simulated value).
So ``fit()`` trains on the emulated chip unchanged.

``saturation`` (option) models the transfer non-linearity of the analog neuron: the synaptic
input circuit saturates, so the current reaching the membrane is ``I_sat tanh(I / I_sat)``.
The profile's ``integration_nonlinearity`` (and ``mirror_*``) figures give the membrane's own
non-linearity, a current mirror's headroom (:mod:`workbench.nonlinearity`), as on every analog
backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from workbench.energy import energy_table, priced
from workbench.fused import lif_scan
from workbench.nonlinearity import MirrorFigures, with_mirror
from workbench.spec import INPUT, NetworkSpec
from workbench.variation import ABSOLUTE, RELATIVE, draw_neurons, membrane_noise, noise_generator

from .base import (
    EmulatedNetwork,
    HardwareProfile,
    Violation,
    figure,
    resource_table,
    straight_through,
    summed_sizes,
)

PEHLE = "Pehle et al. 2022, Front. Neurosci. 16:795876 (BrainScaleS-2 system)"
HXTORCH = "Spilger et al. 2023, NICE '23 (hxtorch.snn: signed synapses use an exc. and inh. row)"
CALIX = "calix calibration ranges of the LIF neuron (issue 4; Billaudelle et al. 2022)"
STRADMANN = "Stradmann et al. 2022, IEEE Open J. Circuits Syst. 3:252 (BrainScaleS-2 mobile)"
ASSUMED = "assumption: residual after calibration is not published; set it to study its effect"


@dataclass(frozen=True)
class BrainScaleS2Profile(HardwareProfile, MirrorFigures):
    name: str = "BrainScaleS-2"
    speedup: float = figure(1000.0, "x biological time", PEHLE)
    neurons: int = figure(512, "neurons", PEHLE)
    synapse_rows: int = figure(256, "rows per synapse array (fan-in per neuron)", PEHLE)
    rows_per_signed_input: int = figure(2, "rows", HXTORCH)
    weight_max: int = figure(63, "6-bit magnitude, signed by row type", PEHLE)
    tau_mem_range_us: tuple = figure((0.5, 60.0), "us (hardware time)", CALIX)
    tau_syn_range_us: tuple = figure((0.3, 30.0), "us (hardware time)", CALIX)
    adc_bits: int = figure(8, "bits (CADC)", PEHLE)
    adc_range: tuple = figure((-2.0, 4.0), "model units (threshold 1, leak 0)", ASSUMED, True)
    adc_period_us: float = figure(1.0, "us between CADC samples", ASSUMED, True)
    # The variation figures have the float simulator's meaning and ranges (workbench.variation).
    mismatch_tau_mem: float = figure(0.02, "relative sigma per neuron", ASSUMED, True, RELATIVE)
    mismatch_tau_syn: float = figure(0.02, "relative sigma per neuron", ASSUMED, True, RELATIVE)
    mismatch_leak: float = figure(0.02, "sigma, model units", ASSUMED, True, ABSOLUTE)
    mismatch_threshold: float = figure(0.02, "relative sigma per neuron", ASSUMED, True, RELATIVE)
    mismatch_synaptic_gain: float = figure(
        0.05, "relative sigma per neuron", ASSUMED, True, RELATIVE
    )
    membrane_noise: float = figure(
        0.01,
        "stationary sigma of the membrane, model units (~2 mV of ~200 mV)",
        ASSUMED,
        True,
        ABSOLUTE,
    )
    chip_power: float = figure(
        0.70,
        "W drawn by the ASIC while it runs a network",
        f"{STRADMANN}: 192 uJ per sample over a 276 us classification, ASIC only, in its "
        "vector-matrix (non-spiking) mode; taken to hold for spiking networks",
        assumption=True,
    )

    def scaled(self, factor: float) -> BrainScaleS2Profile:
        """The same chip with every mismatch magnitude multiplied by ``factor``."""
        from dataclasses import replace

        names = [n for n in self.__dataclass_fields__ if n.startswith("mismatch_")]
        return replace(self, **{n: getattr(self, n) * factor for n in names})


class BrainScaleS2(EmulatedNetwork):
    """The emulated chip (``build(spec, "brainscales2", chip_seed=..., ...)``)."""

    profile_class = BrainScaleS2Profile
    backend_name = "brainscales2"
    MODELS = ("lif", "li")

    def __init__(
        self,
        spec: NetworkSpec,
        profile: BrainScaleS2Profile | None = None,
        seed: int = 0,
        chip_seed: int = 0,
        noise_seed: int | None = None,
        saturation: float | None = None,
        **options,
    ):
        super().__init__(spec, profile, seed=seed, **options)
        if saturation is not None and not (math.isfinite(saturation) and saturation > 0):
            raise ValueError(f"saturation: {saturation!r} must be a finite number > 0, or None")
        self.chip_seed, self.saturation = chip_seed, saturation
        self.noise_seed = seed + 1 if noise_seed is None else noise_seed
        self._noise = torch.Generator().manual_seed(self.noise_seed)
        self.readout_gain = 1.0
        self._draw_chip()

    @property
    def speedup(self) -> float:
        return self.profile.speedup

    def latency(self, activity) -> float:
        """Seconds per sample: the sample's duration, accelerated ``speedup`` times."""
        return activity.time_steps * self.spec.dt * 1e-3 / self.speedup

    def energy(self, activity):
        """Energy per sample of ``activity``: the chip's power over the sample's accelerated
        duration (analog neurons and synapses draw power whether or not they spike)."""
        seconds = self.latency(activity)
        return energy_table(
            [
                priced(
                    "chip time per sample", seconds, "s (hardware time)", self.profile, "chip_power"
                )
            ]
        )

    # ------------------------------------------------------------------------ the chip
    def _draw_chip(self) -> None:
        """Draw every neuron's mismatch once for this chip (``chip_seed``; the drawing is the
        float simulator's variation model, :func:`workbench.variation.draw_neurons`)."""
        self.neuron_params, self.synaptic_gain = draw_neurons(
            self.spec, self.profile, self.chip_seed, self.dtype
        )
        self.neuron_params = with_mirror(self.neuron_params, self.profile)

    def weight(self, proj) -> torch.Tensor:
        """6-bit signed weights (one scale per projection: the calibrated synaptic gain) times
        each target neuron's synaptic-gain mismatch; straight-through to the float weight.
        Into a readout, the weights are scaled by ``readout_gain`` (see :meth:`calibrate`)."""
        w = self.float_weight(proj)
        scale = w.detach().abs().max().clamp(min=1e-12) / self.profile.weight_max
        digital = torch.round(w / scale).clamp(-self.profile.weight_max, self.profile.weight_max)
        quantised = straight_through(w, digital * scale)
        gain = self.synaptic_gain[proj.target][:, None]
        if not self.spec.population(proj.target).spiking:
            gain = gain * self.readout_gain
        return quantised * gain

    @torch.no_grad()
    def calibrate(self, spikes: torch.Tensor, fill: float = 0.8) -> float:
        """Set ``readout_gain`` so the readout membranes of ``spikes`` (``[T, B, inputs]``) span
        ``fill`` of the ADC range.  A leaky-integrator readout is linear in its input and the
        class is the largest membrane, so this changes no decision; it only keeps the
        observations out of the ADC's clipping, as one would tune the readout's synaptic gain
        on the chip."""
        self.readout_gain = 1.0
        was_training = self.training
        self.eval()
        v = self.forward(spikes, record=True).recordings
        self.train(was_training)
        low, high = self.profile.adc_range
        peak = max(
            (
                r["v"].abs().max().item()
                for name, r in v.items()
                if not self.spec.population(name).spiking
            ),
            default=0.0,
        )
        self.readout_gain = fill * min(-low, high) / peak if peak > 0 else 1.0
        return self.readout_gain

    def observe(self, v: torch.Tensor) -> torch.Tensor:
        """What the CADC reports of membrane traces ``v [T, B, n]``: samples every
        ``adc_period_us`` (held until the next one), digitised to ``adc_bits`` over
        ``adc_range``; straight-through to ``v`` inside that range (no gradient where the ADC
        clips)."""
        prof = self.profile
        low, high = prof.adc_range
        levels = 2**prof.adc_bits - 1
        period = max(1, round(prof.adc_period_us / (self.spec.dt * 1000.0 / prof.speedup)))
        held = v.detach()[::period].repeat_interleave(period, dim=0)[: v.shape[0]]
        codes = torch.round((held - low) / (high - low) * levels).clamp(0, levels)
        # The gradient passes where the ADC can see the membrane, not where it clips.
        return straight_through(v.clamp(low, high), low + codes * (high - low) / levels)

    def _run_population(self, name, external, recurrent, record):
        pop = self.spec.population(name)
        p = self.neuron_params[name]
        if self.saturation is not None:
            external = self.saturation * torch.tanh(external / self.saturation)
        # Fresh noise in training; in evaluation the same noise for the same batch position.
        generator = noise_generator(self._noise, self.noise_seed, self.training)
        # Temporal noise as an Ornstein-Uhlenbeck process of the leaky membrane: the per-step
        # kick sigma * sqrt(1 - beta^2) gives the stationary spread ``membrane_noise``.
        noise = membrane_noise(self.profile.membrane_noise, p.beta, external, generator)
        w_rec = self.weight(recurrent[0]) if recurrent else None
        output, v, i = lif_scan(
            external, w_rec, p, pop.spiking, self.surrogate, noise, self.kernel, record
        )
        if pop.spiking and not record:  # the spikes are all the next population needs
            return {"spikes": output}
        observed = self.observe(v)
        if pop.spiking:
            return {"spikes": output, "v": observed, "i": i}
        return {"v": observed, "i": i}

    # ------------------------------------------------------------------------ limits
    @classmethod
    def check(cls, spec: NetworkSpec, profile: BrainScaleS2Profile | None = None):
        prof = cls.make_profile(profile)
        out: list[Violation] = []
        # One chip holds every population.  The one population that alone exceeds it (the
        # others leaving room) is the one to shrink; otherwise all of them together are.
        total = sum(p.size for p in spec.populations)
        over = [k for k, p in enumerate(spec.populations) if p.size > prof.neurons]
        if total > prof.neurons:
            culprit = over[0] if len(over) == 1 else None
            others = total - spec.populations[culprit].size if culprit is not None else total
            if culprit is not None and others < prof.neurons:
                pop = spec.populations[culprit]
                out.append(
                    Violation(
                        f"populations[{culprit}].size",
                        f"{pop.name!r} neurons",
                        pop.size,
                        f"at most {prof.neurons - others} ({prof.neurons} neurons on the chip, "
                        f"{others} of them for the other populations)",
                        prof.name,
                    )
                )
            else:
                sizes = ", ".join(f"{p.name!r} {p.size}" for p in spec.populations)
                out.append(
                    Violation(
                        "populations",
                        f"neurons of all populations ({sizes})",
                        total,
                        f"at most {prof.neurons}",
                        prof.name,
                    )
                )
        to_hw = 1000.0 / prof.speedup  # biological ms -> hardware us
        for k, pop in enumerate(spec.populations):
            path = f"populations[{k}]"
            if pop.model not in cls.MODELS:
                out.append(
                    Violation(
                        f"{path}.model",
                        "neuron model",
                        repr(pop.model),
                        f"one of {list(cls.MODELS)}",
                        prof.name,
                    )
                )
                continue
            for key, (low, high) in (
                ("tau_mem", prof.tau_mem_range_us),
                ("tau_syn", prof.tau_syn_range_us),
            ):
                hw = pop.params[key] * to_hw
                if key == "tau_syn" and hw == 0:
                    out.append(
                        Violation(
                            f"{path}.params.tau_syn",
                            "synaptic current (the analog synapse always has one)",
                            "0 ms (no synaptic current, a delta synapse)",
                            f"{low:g}-{high:g} us",
                            prof.name,
                        )
                    )
                elif not low <= hw <= high:
                    out.append(
                        Violation(
                            f"{path}.params.{key}",
                            f"{key} on the chip",
                            f"{hw:g} us",
                            f"{low:g}-{high:g} us",
                            prof.name,
                        )
                    )
            if pop.params.get("refractory_steps", 0):
                out.append(
                    Violation(
                        f"{path}.params.refractory_steps",
                        "refractory period",
                        pop.params["refractory_steps"],
                        "0 in this emulator (not emulated yet)",
                        prof.name,
                    )
                )
            # Each input of a neuron takes synapse rows: a limit on the population's fan-in,
            # set by the sizes of its sources, so the field to change is a source's size.
            inputs, field, sources = summed_sizes(spec, [p.source for p in spec.incoming(pop.name)])
            per_input = prof.rows_per_signed_input
            if inputs * per_input > prof.synapse_rows:
                out.append(
                    Violation(
                        field,
                        f"inputs per {pop.name!r} neuron (from {sources}; {per_input} synapse "
                        "rows each)",
                        inputs,
                        f"at most {prof.synapse_rows // per_input} ({prof.synapse_rows} synapse "
                        "rows)",
                        prof.name,
                    )
                )
        for k, proj in enumerate(spec.projections):
            if proj.max_delay:
                out.append(
                    Violation(
                        f"projections[{k}].delay",
                        "synaptic delay",
                        f"{proj.max_delay} steps",
                        "0 (no delays)",
                        prof.name,
                    )
                )
            if proj.recurrent and proj.source != proj.target:
                out.append(
                    Violation(
                        f"projections[{k}].recurrent",
                        "recurrence between populations",
                        proj.name,
                        "recurrence within a population",
                        prof.name,
                    )
                )
        return out

    @classmethod
    def resources(cls, spec: NetworkSpec, profile: BrainScaleS2Profile | None = None):
        prof = cls.make_profile(profile)
        neurons = sum(p.size for p in spec.populations)
        rows = max(
            (
                sum(spec.size_of(p.source) for p in spec.incoming(pop.name))
                * prof.rows_per_signed_input
                for pop in spec.populations
            ),
            default=0,
        )
        synapses = sum(
            spec.size_of(p.source) * spec.size_of(p.target) * prof.rows_per_signed_input
            for p in spec.projections
        )
        inputs = spec.input_size if any(p.source == INPUT for p in spec.projections) else 0
        return resource_table(
            [
                ("neurons", neurons, prof.neurons),
                ("synapse rows per neuron (max)", rows, prof.synapse_rows),
                ("synapses (exc. + inh.)", synapses, prof.neurons * prof.synapse_rows),
                ("input channels", inputs, prof.synapse_rows // prof.rows_per_signed_input),
            ]
        )
