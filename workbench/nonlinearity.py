"""The integration non-linearity of an analog neuron: a current mirror charging the membrane.

An analog integrate-and-fire neuron of the voltage domain charges its membrane capacitor
through a current mirror: the synaptic current ``I`` is copied by an output transistor whose
drain sits on the membrane.  The copy is exact only while that transistor's drain-source voltage
equals the one of the mirror's input transistor.  As the membrane moves, it is not:

- channel-length modulation makes the copied current ``I (1 + lambda V_DS) / (1 + lambda
  V_ref)``, where ``V_DS`` is the output transistor's drain-source voltage and ``V_ref`` the
  input transistor's (Razavi, *Design of Analog CMOS Integrated Circuits*, 2nd ed., eqs. 2.28
  and 5.5);
- below the overdrive ``V_ov`` the transistor leaves saturation and the square law's triode
  region gives ``I_sat (2x - x^2)`` with ``x = V_DS / V_ov`` (Razavi eq. 2.9), so the current
  falls to 0 as ``V_DS`` does: the membrane cannot be charged above the supply nor discharged
  below ground.

Excitatory current charges the membrane through a PMOS mirror from the supply
(``V_DS = VDD - V``), inhibitory current discharges it through an NMOS mirror to ground
(``V_DS = V``).  So the integration gain ``g`` falls as the membrane rises under excitation,
rises under inhibition, and both clip at the rails.  This is the behaviour that Kim & Choi
(2022, arXiv:2201.01394, "Improving spiking neural network accuracy using time-based neurons")
model for current-mirror neurons in 28 nm CMOS, where the shrinking headroom makes it matter;
their time-domain neuron (and Song et al. 2022, arXiv:2202.02015) integrates linearly, within
0.1 % of the ideal neuron's MNIST error: that is ``strength`` 0 here.  The seed's own fitted
curve and device parameters were not reachable, so the figures below are the textbook model with
values typical of a 28 nm process, each marked as an assumption.

The membrane in model units maps onto volts as ``V = v_rest + v * volts_per_unit`` (the
reference networks rest at 0 and fire at 1, so ``volts_per_unit`` is the swing from rest to
threshold).  ``strength`` s scales the departure from the ideal gain: ``g_s = max(0, 1 +
s (g - 1))``; 0 is the linear neuron, 1 the modelled mirror, 2 twice its error.

One step of a neuron (:mod:`workbench.neurons`) becomes ``V <- beta V + g(V, c) c + leak``
with ``c`` the step's charge (``current_gain * I``): the gain is taken at the membrane where
the step starts, as a clocked circuit would.  Every backend whose neuron is analog carries it
as a profile figure (``integration_nonlinearity``; float, BrainScaleS-2, crossbar); the digital
chips (Loihi, Xylo, FPGA) add their input exactly, and the event backend integrates in closed
form, so they do not have the figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from workbench.figures import figure

RAZAVI = "Razavi, Design of Analog CMOS Integrated Circuits, 2nd ed. (2017)"
TYPICAL = "assumed: typical of a 28 nm CMOS process (the seed's parameters were not reachable)"
STRENGTH = "0 is the linear (time-domain) neuron, 1 the modelled current mirror (assumed)"


class Mirror(NamedTuple):
    """A population's current-mirror figures, in volts (see the module docstring)."""

    strength: float
    vdd: float
    v_rest: float
    volts_per_unit: float
    overdrive: float
    lam: float
    v_ref: float


@dataclass(frozen=True)
class MirrorFigures:
    """The figures of the current-mirror non-linearity, for a profile to inherit."""

    integration_nonlinearity: float = figure(0.0, "strength", STRENGTH, True, (0.0, 10.0))
    mirror_vdd: float = figure(0.9, "V, supply", TYPICAL, True, (0.1, 5.0))
    mirror_v_rest: float = figure(0.2, "V, membrane at rest (model 0)", TYPICAL, True, (0.0, 5.0))
    mirror_volts_per_unit: float = figure(
        0.4, "V per model unit (rest to threshold)", TYPICAL, True, (0.001, 5.0)
    )
    mirror_overdrive: float = figure(
        0.15, f"V, saturation edge (triode below; {RAZAVI})", TYPICAL, True, (0.001, 1.0)
    )
    mirror_lambda: float = figure(
        0.5, f"1/V, channel-length modulation ({RAZAVI})", TYPICAL, True, (0.0, 10.0)
    )
    mirror_v_ref: float = figure(
        0.45, "V, drain-source voltage of the mirror's input transistor", TYPICAL, True, (0.0, 5.0)
    )

    def mirror(self) -> Mirror | None:
        """The figures as a :class:`Mirror` for the neurons, or None at strength 0."""
        if not self.integration_nonlinearity:
            return None
        return Mirror(
            self.integration_nonlinearity,
            self.mirror_vdd,
            self.mirror_v_rest,
            self.mirror_volts_per_unit,
            self.mirror_overdrive,
            self.mirror_lambda,
            self.mirror_v_ref,
        )


def with_mirror(neuron_params: dict, profile) -> dict:
    """``neuron_params`` (``{population: LIFParameters}``) with the profile's mirror attached
    (unchanged where the profile has no non-linearity, or no such figures)."""
    mirror = profile.mirror() if isinstance(profile, MirrorFigures) else None
    if mirror is None:
        return neuron_params
    return {name: p._replace(mirror=mirror) for name, p in neuron_params.items()}


def mirror_gain(v: torch.Tensor, charge: torch.Tensor, m: Mirror) -> torch.Tensor:
    """The integration gain ``g_s`` at membrane ``v`` (model units) for a step's ``charge``
    (its sign picks the PMOS or the NMOS mirror), differentiable in ``v``."""
    return mirror_gain_and_slope(v, charge, m)[0]


def mirror_gain_and_slope(
    v: torch.Tensor, charge: torch.Tensor, m: Mirror
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g_s, dg_s/dv)`` at membrane ``v`` for a step's ``charge``; ``g_s`` carries autograd
    (the step loops), the slope is written out for the adjoint loops.  The compiled kernel
    (:func:`workbench.kernels.mirror`) computes the same, operation by operation."""
    volts = m.v_rest + v * m.volts_per_unit
    charging = charge >= 0
    v_ds = torch.where(charging, m.vdd - volts, volts)
    x = (v_ds / m.overdrive).clamp(0.0, 1.0)
    on = v_ds > 0
    headroom = 1 + m.lam * v_ds.clamp(min=0.0)
    scale = 1 + m.lam * m.v_ref
    shape = 2 * x - x * x  # 1 in saturation, the triode law below, 0 at the rail
    g = shape * headroom / scale
    gain = 1 + m.strength * (g - 1)
    triode = on & (v_ds < m.overdrive)
    d_shape = torch.where(triode, (2 - 2 * x) / m.overdrive, torch.zeros_like(x))
    d_headroom = torch.where(on, torch.full_like(x, m.lam), torch.zeros_like(x))
    d_g = (d_shape * headroom + shape * d_headroom) / scale
    d_volts = torch.where(
        charging, torch.full_like(x, -m.volts_per_unit), torch.full_like(x, m.volts_per_unit)
    )
    slope = torch.where(gain > 0, m.strength * d_g * d_volts, torch.zeros_like(x))
    return gain.clamp(min=0.0), slope.detach()
