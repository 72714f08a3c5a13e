"""FPGA: an estimate backend that maps a spec onto an SNN engine on a named FPGA device.

The engine is modelled in the way of E3NE (Gerlinghoff, Wang, Gu, Goh & Luo 2022, "E3NE: an
end-to-end framework for accelerating spiking neural networks with emerging neural encoding on
FPGAs", IEEE TPDS 33(11), arXiv:2111.10027): a compiler sizes a fixed engine for a network --
parallel neuron units, the weights and neuron states in on-chip block RAM, the neurons of a
layer time-multiplexed over the units -- and its resources, cycles and power follow from the
network and its activity.  This module does not synthesise anything; it estimates:

- **Units**: ``neuron_units`` parallel LIF datapaths (a design choice; E3NE chooses the
  parallelism per layer).  One datapath's logic is a measured Vivado utilisation of a
  time-multiplexed LIF processor on a Zynq-7020 (206 LUTs, 241 registers, 1 DSP slice:
  :data:`FPE_LIF`); a controller (event queue, sequencing, I/O) adds ``control_luts`` and
  ``control_ffs``.
- **Memory**: every weight (``weight_bits``) and every neuron's state (``v`` and ``i``,
  ``state_bits`` each) in 36 Kb block RAMs; each unit reads its own weight and state every
  cycle, so each memory needs at least one BRAM port per unit (a BRAM36 has two).
- **Time**: per time step the populations are computed one after another.  Every event that
  reaches a population (an input event or a spike of a source population in the step before)
  costs ``ceil(N / units)`` cycles, each unit adding the event's weight to its share of the
  ``N`` neurons; the leak-and-threshold pass costs ``ceil(N / units)`` more and the pipeline
  ``pipeline_cycles``.  Latency per sample = cycles / ``clock_hz``: the engine runs as fast as
  it can, not in biological time.
- **Energy**: ``energy_per_unit_cycle`` for every neuron a unit touches (a weight read, an add,
  a state update) plus the device's static power over the latency.

The forward pass is the float simulator's with each projection's weights quantised to
``weight_bits`` (one symmetric scale per projection, straight-through gradients); neuron states
stay float, an approximation of the engine's ``state_bits`` fixed point.  The device figures
are the vendor's data sheets; the power figures are assumptions (marked so in
``profile.figures()``) to replace with a measurement of a real design.  ``check`` refuses a
spec whose engine does not fit the device, naming the field to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd
import torch

from workbench.energy import energy_table, priced
from workbench.spec import INPUT, NetworkSpec

from .base import (
    EmulatedNetwork,
    HardwareProfile,
    Violation,
    figure,
    resource_table,
    size_field,
    straight_through,
)

E3NE = "Gerlinghoff et al. 2022, E3NE, IEEE TPDS 33(11), arXiv:2111.10027 (engine structure)"
DATASHEETS = (
    "AMD/Xilinx data sheets: DS190 Zynq-7000 SoC overview (xc7z020), DS180 7 series overview "
    "(xc7a100t), DS891 Zynq UltraScale+ MPSoC overview (xczu9eg)"
)
FPE_LIF = (
    "vanishers-atlas/FPE on GitHub, 'LIF Ensemble Processor V2' raw data: Vivado utilisation of "
    "one time-multiplexed LIF datapath on an xc7z020 (2-neuron ensemble: 206 LUTs, 241 "
    "registers, 1 DSP48E1)"
)
ASSUMED = "assumption: not published for this engine; replace with a synthesis report"
POWER = (
    "assumption: the order of the static power AMD's Power Estimator gives for the device at "
    "25 C junction; replace with a measurement"
)
BRAM_BITS = 36 * 1024  # bits per BRAM36 (DS190/DS180/DS891)
BRAM_PORTS = 2  # true dual port

# The devices' capacities (DATASHEETS) and an assumed static power (POWER).
DEVICES = {
    "xc7z020": dict(luts=53_200, ffs=106_400, bram36=140, dsps=220, static_power=0.12),
    "xc7a100t": dict(luts=63_400, ffs=126_800, bram36=135, dsps=240, static_power=0.09),
    "xczu9eg": dict(luts=274_080, ffs=548_160, bram36=912, dsps=2_520, static_power=0.6),
}


@dataclass(frozen=True)
class FPGAProfile(HardwareProfile):
    """An SNN engine on one FPGA device; ``FPGAProfile.for_device("xczu9eg")`` for another."""

    name: str = "FPGA engine on xc7z020"
    device: str = figure("xc7z020", f"one of {sorted(DEVICES)}", DATASHEETS)
    luts: int = figure(53_200, "LUTs on the device", DATASHEETS)
    ffs: int = figure(106_400, "flip-flops on the device", DATASHEETS)
    bram36: int = figure(140, "36 Kb block RAMs on the device", DATASHEETS)
    dsps: int = figure(220, "DSP slices on the device", DATASHEETS)
    static_power: float = figure(0.12, "W", POWER, True)
    clock_hz: float = figure(100e6, "Hz, engine clock", ASSUMED, True)
    neuron_units: int = figure(16, "parallel LIF datapaths", f"a design choice; {E3NE}")
    luts_per_unit: int = figure(206, "LUTs per LIF datapath", FPE_LIF)
    ffs_per_unit: int = figure(241, "registers per LIF datapath", FPE_LIF)
    dsps_per_unit: int = figure(1, "DSP slices per LIF datapath (the leak multiply)", FPE_LIF)
    control_luts: int = figure(2_000, "LUTs: event queue, sequencer, I/O", ASSUMED, True)
    control_ffs: int = figure(2_000, "registers: event queue, sequencer, I/O", ASSUMED, True)
    weight_bits: int = figure(8, "bits per weight, signed", f"{E3NE}: low-precision weights")
    state_bits: int = figure(16, "bits per neuron state (v and i each)", ASSUMED, True)
    pipeline_cycles: int = figure(8, "cycles per population and step", ASSUMED, True)
    energy_per_unit_cycle: float = figure(
        20e-12,
        "J per neuron a unit updates in a cycle (weight read, add, state read/write)",
        "assumption: an 8-bit add, a DSP multiply and two BRAM accesses on a 28 nm FPGA, "
        "~10x the ASIC energy of the same operations (Kuon & Rose 2007, IEEE TCAD 26(2): "
        "FPGAs spend ~7-14x an ASIC's dynamic power)",
        True,
    )

    @classmethod
    def for_device(cls, device: str, **figures) -> FPGAProfile:
        """The engine on ``device`` (a key of :data:`DEVICES`), with other figures changed."""
        if device not in DEVICES:
            raise ValueError(f"device: {device!r} is not known; choose one of {sorted(DEVICES)}")
        return replace(
            cls(), name=f"FPGA engine on {device}", device=device, **DEVICES[device], **figures
        )

    def __post_init__(self) -> None:
        for name in ("neuron_units", "weight_bits", "state_bits", "clock_hz"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1):
                raise ValueError(f"{name}: {value!r} must be a number >= 1")
        if self.weight_bits < 2 or int(self.neuron_units) != self.neuron_units:
            raise ValueError(
                f"neuron_units: {self.neuron_units!r} must be an integer >= 1 and weight_bits: "
                f"{self.weight_bits!r} at least 2"
            )


@dataclass(frozen=True)
class Engine:
    """What a spec needs of the engine: resources and the cycles of one time step."""

    luts: int
    ffs: int
    dsps: int
    bram_weights: int
    bram_states: int

    @property
    def bram36(self) -> int:
        return self.bram_weights + self.bram_states


def engine(spec: NetworkSpec, p: FPGAProfile) -> Engine:
    units = int(p.neuron_units)
    weight_bits = sum(
        spec.size_of(q.source) * spec.size_of(q.target) for q in spec.projections
    ) * int(p.weight_bits)
    state_bits = sum(pop.size for pop in spec.populations) * 2 * int(p.state_bits)
    ports = math.ceil(units / BRAM_PORTS)  # one read port per unit
    return Engine(
        luts=units * p.luts_per_unit + p.control_luts,
        ffs=units * p.ffs_per_unit + p.control_ffs,
        dsps=units * p.dsps_per_unit,
        bram_weights=max(math.ceil(weight_bits / BRAM_BITS), ports),
        bram_states=max(math.ceil(state_bits / BRAM_BITS), ports),
    )


class FPGA(EmulatedNetwork):
    """A spec on the FPGA engine model (``build(spec, "fpga", profile={...})``)."""

    profile_class = FPGAProfile
    backend_name = "fpga"
    MODELS = ("lif", "li", "if")

    @classmethod
    def make_profile(cls, profile):
        """As every emulator's, and a dict naming another ``device`` takes that device's
        capacities (``{"device": "xczu9eg"}``)."""
        if isinstance(profile, dict) and "device" in profile:
            rest = {k: v for k, v in profile.items() if k != "device"}
            return FPGAProfile.for_device(profile["device"], **rest)
        return super().make_profile(profile)

    @classmethod
    def check(cls, spec: NetworkSpec, profile: FPGAProfile | None = None) -> list[Violation]:
        p = cls.make_profile(profile)
        out: list[Violation] = []
        for k, pop in enumerate(spec.populations):
            if pop.model not in cls.MODELS:
                out.append(
                    Violation(
                        f"populations[{k}].model",
                        "neuron model",
                        pop.model,
                        f"one of {list(cls.MODELS)} (one LIF datapath per unit)",
                        p.name,
                    )
                )
        for k, proj in enumerate(spec.projections):
            if proj.max_delay:
                out.append(
                    Violation(
                        f"projections[{k}].delay",
                        "synaptic delay",
                        f"{proj.max_delay} steps",
                        "0 (the engine has no delay lines)",
                        p.name,
                    )
                )
        e = engine(spec, p)
        for used, capacity, what in (
            (e.luts, p.luts, "LUTs"),
            (e.ffs, p.ffs, "flip-flops"),
            (e.dsps, p.dsps, "DSP slices"),
        ):
            if used > capacity:
                out.append(
                    Violation(
                        "backend_options.profile.neuron_units",
                        f"{what} of {p.neuron_units} units",
                        used,
                        f"at most {capacity} on the {p.device}",
                        p.name,
                    )
                )
        if e.bram36 > p.bram36:
            ports = math.ceil(int(p.neuron_units) / BRAM_PORTS)
            largest = max(spec.population_names, key=spec.size_of)
            if e.bram_weights == e.bram_states == ports:  # the units' ports, not the bits
                path = "backend_options.profile.neuron_units"
            else:
                path = size_field(spec, largest)
            out.append(
                Violation(
                    path,
                    "36 Kb block RAMs for weights and states",
                    e.bram36,
                    f"at most {p.bram36} on the {p.device}",
                    p.name,
                )
            )
        return out

    @classmethod
    def resources(cls, spec: NetworkSpec, profile: FPGAProfile | None = None) -> pd.DataFrame:
        p = cls.make_profile(profile)
        e = engine(spec, p)
        return resource_table(
            [
                ("LUTs", e.luts, p.luts),
                ("flip-flops", e.ffs, p.ffs),
                ("DSP slices", e.dsps, p.dsps),
                ("BRAM36 (weights)", e.bram_weights, p.bram36),
                ("BRAM36 (states)", e.bram_states, p.bram36),
                ("BRAM36", e.bram36, p.bram36),
            ]
        )

    def weight(self, proj) -> torch.Tensor:
        """``weight_bits`` signed weights, one scale per projection; straight-through."""
        w = self.float_weight(proj)
        top = 2 ** (int(self.profile.weight_bits) - 1) - 1
        scale = w.detach().abs().max().clamp(min=1e-12) / top
        return straight_through(w, torch.round(w / scale).clamp(-top, top) * scale)

    # ----------------------------------------------------------------------- estimates
    def events_into(self, activity) -> dict[str, float]:
        """Events reaching each population per sample (input events and source spikes)."""
        out = {name: 0.0 for name in self.spec.population_names}
        for proj in self.spec.projections:
            source = (
                activity.input_events
                if proj.source == INPUT
                else activity.spikes.get(proj.source, 0.0)
            )
            out[proj.target] += source
        return out

    def cycles(self, activity) -> float:
        """Engine clock cycles per sample for ``activity``."""
        units, steps = int(self.profile.neuron_units), activity.time_steps
        total = 0.0
        for name, events in self.events_into(activity).items():
            passes = math.ceil(self.spec.size_of(name) / units)
            total += (events + steps) * passes + steps * self.profile.pipeline_cycles
        return total

    def latency(self, activity) -> float:
        """Seconds per sample: the engine's cycles at its clock."""
        return self.cycles(activity) / self.profile.clock_hz

    def energy(self, activity) -> pd.DataFrame:
        """Energy per sample of ``activity``: every neuron a unit updates (per event and per
        leak pass) at ``energy_per_unit_cycle``, and static power over the latency."""
        p = self.profile
        touched = sum(
            (events + activity.time_steps) * self.spec.size_of(name)
            for name, events in self.events_into(activity).items()
        )
        return energy_table(
            [
                priced(
                    "neuron updates by the units",
                    touched,
                    "unit-cycles",
                    p,
                    "energy_per_unit_cycle",
                ),
                priced(
                    "static power over the latency", self.latency(activity), "s", p, "static_power"
                ),
            ]
        )
