"""The neuron models' parameter schema and the surrogate names, without torch.

``MODELS`` describes each model's parameters (default, allowed range, unit) for validation and
for the UI; :mod:`workbench.spec` validates against it, and the ``workbench`` command offers
its spiking models and :data:`SURROGATES` as choices.  Nothing here imports torch, so a spec
can be read and checked (and a bad command line refused) without it; the dynamics themselves
are in :mod:`workbench.neurons`, which re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass

# The surrogate spike functions :class:`workbench.neurons.Surrogate` knows (see
# :func:`workbench.neurons.surrogate_derivative`).
SURROGATES = ("arctan", "superspike", "triangle")


@dataclass(frozen=True)
class Param:
    """One neuron parameter: default, allowed closed/open range, unit and meaning."""

    default: float | str
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    unit: str = ""
    doc: str = ""
    choices: tuple[str, ...] = ()
    integer: bool = False

    def describe_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo = (
            ""
            if self.low is None
            else (f">= {self.low:g}" if self.low_inclusive else f"> {self.low:g}")
        )
        hi = "" if self.high is None else f"<= {self.high:g}"
        kind = "an integer" if self.integer else "a finite number"
        return " and ".join(x for x in (f"{kind} {lo}".strip(), hi) if x)


@dataclass(frozen=True)
class NeuronModel:
    """A neuron model: its parameters, whether it spikes, and its docs."""

    name: str
    title: str
    params: dict[str, Param]
    spiking: bool
    doc: str

    def defaults(self) -> dict[str, float | str]:
        return {k: p.default for k, p in self.params.items()}


_TAU_MEM = Param(20.0, 0.0, None, False, "ms", "membrane time constant")
_TAU_SYN = Param(
    5.0,
    0.0,
    None,
    True,
    "ms",
    "synaptic time constant; 0: no synaptic current (delta synapse: an input spike moves V "
    "by its weight, one step later)",
)
_THRESHOLD = Param(1.0, 0.0, None, False, "", "firing threshold")
_V_LEAK = Param(0.0, None, None, True, "", "resting potential")
_RESET = Param("zero", choices=("zero", "subtract"), doc="reset to v_reset, or subtract threshold")
_V_RESET = Param(0.0, None, None, True, "", "potential after a reset to zero")
_REFRACTORY = Param(
    0, 0, 10_000, True, "steps", "steps the membrane is clamped after a spike", integer=True
)

MODELS: dict[str, NeuronModel] = {
    "lif": NeuronModel(
        "lif",
        "Current-based leaky integrate-and-fire",
        {
            "tau_mem": _TAU_MEM,
            "tau_syn": _TAU_SYN,
            "threshold": _THRESHOLD,
            "v_leak": _V_LEAK,
            "reset": _RESET,
            "v_reset": _V_RESET,
            "refractory_steps": _REFRACTORY,
        },
        spiking=True,
        doc="Exponential synaptic current into a leaky membrane; spikes at threshold. "
        "tau_syn = 0: no synaptic current, each input spike moves V by its weight (delta synapse).",
    ),
    "alif": NeuronModel(
        "alif",
        "Adaptive LIF with an after-hyperpolarising current",
        {
            "tau_mem": _TAU_MEM,
            "tau_syn": _TAU_SYN,
            "threshold": _THRESHOLD,
            "v_leak": _V_LEAK,
            "reset": _RESET,
            "v_reset": _V_RESET,
            "refractory_steps": _REFRACTORY,
            "tau_adapt": Param(200.0, 0.0, None, False, "ms", "decay of the AHP current"),
            "adapt_strength": Param(0.1, 0.0, None, True, "", "AHP current added per spike"),
        },
        spiking=True,
        doc="LIF whose spikes add an outward (after-hyperpolarising) current that decays with "
        "tau_adapt: a slow, spike-driven memory as used on Loihi for LSTM-like networks.",
    ),
    "if": NeuronModel(
        "if",
        "Integrate-and-fire (no leak)",
        {
            "threshold": _THRESHOLD,
            "reset": Param(
                "subtract",
                choices=("zero", "subtract"),
                doc="reset to v_reset, or subtract threshold",
            ),
            "v_reset": _V_RESET,
            "refractory_steps": _REFRACTORY,
        },
        spiking=True,
        doc="Sums its weighted input spikes each step without leak; spikes at threshold.",
    ),
    "li": NeuronModel(
        "li",
        "Leaky integrator (non-spiking readout)",
        {"tau_mem": _TAU_MEM, "tau_syn": _TAU_SYN, "v_leak": _V_LEAK},
        spiking=False,
        doc="The LIF's subthreshold dynamics without spikes; its membrane is the output "
        "(tau_syn = 0: delta synapse, no synaptic current).",
    ),
}
