"""Neuron dynamics as pure step functions, and surrogate spike functions.

Every model is a step ``step(state, input_current, params) -> (state, output)`` over
NamedTuples, in the style of Norse's functional API.  Time is in milliseconds.  The
subthreshold dynamics are integrated exactly over one step ``dt`` (the propagator of the
linear ODE, Rotter & Diesmann 1999), not with forward Euler:

    tau_syn dI/dt = -I               (I jumps by the weighted input spikes)
    tau_mem dV/dt = -(V - v_leak) + I

so one step of length ``dt`` is

    V <- v_leak + beta * (V - v_leak) + p * I        beta  = exp(-dt / tau_mem)
    I <- alpha * I + input                           alpha = exp(-dt / tau_syn)

with ``p = tau_syn / (tau_syn - tau_mem) * (alpha - beta)`` (``p = dt / tau_mem * beta`` when
the two time constants are equal).  Input that arrives in step ``t`` therefore reaches the
membrane in step ``t + 1``, as in Norse and in the event-based (EventProp) view of the same
ODE.  A neuron spikes when ``V >= threshold``; the spike is produced by a surrogate function
whose forward pass is the Heaviside step and whose backward pass is a smooth pseudo-derivative.

``tau_syn = 0`` (lif, alif, li) means no synaptic current: a delta synapse, as NEST's
``iaf_psc_delta``, where each input spike moves ``V`` directly by its weight.  It keeps the
step ordering above (``alpha = 0``, ``p = 1``): ``I`` holds only this step's input, and the
input of step ``t`` moves ``V`` from step ``t + 1`` on, then decays with ``beta``.  Every other
time constant is > 0 (and longer than ``dt``, see :mod:`workbench.spec`).  The event backend,
Xylo and BrainScaleS-2 refuse ``tau_syn = 0``; Loihi holds it (a full current decay).

``MODELS`` describes each model's parameters (default, allowed range, unit) for validation and
for the UI; ``workbench.spec`` validates against it.  It and ``SURROGATES`` live in
:mod:`workbench.neuron_models` (no torch there, so a spec is checked without it) and are
re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from workbench.neuron_models import MODELS, SURROGATES, NeuronModel, Param  # noqa: F401 (re-exported)
from workbench.nonlinearity import Mirror, mirror_gain

# ---------------------------------------------------------------------------------------------
# Surrogate spike functions


class _Spike(torch.autograd.Function):
    """Heaviside forward, surrogate derivative backward; ``kind`` picks the surrogate."""

    @staticmethod
    def forward(ctx, x, surrogate: Surrogate):  # noqa: D401 - torch API
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.surrogate.derivative(x), None


def surrogate_derivative(x: torch.Tensor, kind: str, scale: float) -> torch.Tensor:
    """The pseudo-derivative d spike / d x of surrogate ``kind`` at ``x = v - threshold``.

    - ``superspike`` (fast sigmoid, Zenke & Ganguli 2018): ``1 / (scale |x| + 1)^2``
    - ``arctan`` (Fang et al. 2021): ``1 / (1 + (pi/2 * scale * x)^2)``
    - ``triangle`` (Esser et al. 2016; Bellec et al. 2018): ``max(0, 1 - scale |x|)``

    Each peaks at 1 for ``x = 0``; a larger ``scale`` makes the surrogate narrower.
    """
    if kind == "superspike":
        return 1.0 / (scale * x.abs() + 1.0) ** 2
    if kind == "arctan":
        return 1.0 / (1.0 + (0.5 * math.pi * scale * x) ** 2)
    if kind == "triangle":
        return torch.clamp(1.0 - scale * x.abs(), min=0.0)
    raise ValueError(f"surrogate: unknown kind {kind!r}; choose one of {sorted(SURROGATES)}")


@dataclass(frozen=True)
class Surrogate:
    """A surrogate spike function: Heaviside forward, ``kind``'s pseudo-derivative backward.

    ``cutoff`` (sparse backward, Perez-Nieves & Goodman 2021): the pseudo-derivative is zero
    where ``|v - threshold| > cutoff``, so only neurons near their threshold carry gradient
    through their spikes; ``None`` keeps it everywhere.
    """

    kind: str = "superspike"
    scale: float = 10.0
    cutoff: float | None = None

    def __post_init__(self):
        if self.cutoff is not None and not (self.cutoff > 0):
            raise ValueError(f"surrogate.cutoff: {self.cutoff} must be a number > 0 or None")
        if self.kind not in SURROGATES:
            raise ValueError(
                f"surrogate.kind: {self.kind!r} is not known; choose one of {list(SURROGATES)}"
            )
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"surrogate.scale: {self.scale} must be a finite number > 0")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(x, self)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """The pseudo-derivative at ``x = v - threshold``, cut to zero beyond the cut-off."""
        d = surrogate_derivative(x, self.kind, self.scale)
        if self.cutoff is None:
            return d
        return torch.where(x.abs() <= self.cutoff, d, torch.zeros_like(d))


# ---------------------------------------------------------------------------------------------
# States, parameters and steps


class LIFParameters(NamedTuple):
    """Per-step constants of a LIF/ALIF/LI population (decays precomputed from dt)."""

    alpha: float | torch.Tensor  # synaptic decay per step, exp(-dt/tau_syn) (0 if tau_syn = 0)
    beta: float | torch.Tensor  # membrane decay per step, exp(-dt/tau_mem)
    current_gain: float | torch.Tensor  # propagator from I to V over one step (1 if tau_syn = 0)
    threshold: float | torch.Tensor = 1.0
    v_leak: float | torch.Tensor = 0.0
    v_reset: float | torch.Tensor = 0.0
    reset_subtract: bool = False
    refractory_steps: int = 0
    adapt_decay: float | torch.Tensor = 0.0  # exp(-dt/tau_adapt), ALIF only
    adapt_gain: float | torch.Tensor = 0.0  # propagator from the AHP current to V, ALIF only
    adapt_strength: float | torch.Tensor = 0.0  # ALIF only
    mirror: Mirror | None = None  # the analog integration non-linearity, workbench.nonlinearity


class LIFState(NamedTuple):
    v: torch.Tensor  # membrane potential
    i: torch.Tensor  # synaptic current
    refractory: torch.Tensor  # steps of refractoriness left (integer-valued float)
    adaptation: torch.Tensor  # AHP current (ALIF; zero otherwise)


def propagators(dt: float, tau_mem: float, tau_syn: float) -> tuple[float, float, float]:
    """Exact one-step propagators ``(alpha, beta, current_gain)`` of the CuBa-LIF ODE.

    ``tau_syn = 0`` is the delta synapse (no synaptic current): ``alpha = 0`` and
    ``current_gain = 1``, so a step's input moves ``V`` by itself one step later.
    """
    beta = math.exp(-dt / tau_mem)
    if tau_syn == 0:
        return 0.0, beta, 1.0
    alpha = math.exp(-dt / tau_syn)
    if tau_mem == tau_syn:
        gain = dt / tau_mem * beta
    else:
        # tau_syn / (tau_syn - tau_mem) * (alpha - beta), without cancellation when the two
        # time constants nearly meet (the limit is dt / tau_mem * beta).
        rate = (tau_syn - tau_mem) / (tau_mem * tau_syn)
        gain = tau_syn / (tau_syn - tau_mem) * beta * math.expm1(dt * rate)
    return alpha, beta, gain


def lif_parameters(model: str, params: dict, dt: float) -> LIFParameters:
    """Turn a population's spec parameters (ms) into per-step constants for ``dt``."""
    if model == "if":
        # No leak and no synaptic filter: the input current is added to V in the same step.
        return LIFParameters(
            alpha=0.0,
            beta=1.0,
            current_gain=1.0,
            threshold=params["threshold"],
            v_leak=0.0,
            v_reset=params["v_reset"],
            reset_subtract=params["reset"] == "subtract",
            refractory_steps=int(params["refractory_steps"]),
        )
    alpha, beta, gain = propagators(dt, params["tau_mem"], params["tau_syn"])
    out = LIFParameters(alpha=alpha, beta=beta, current_gain=gain, v_leak=params["v_leak"])
    if model == "li":
        return out
    out = out._replace(
        threshold=params["threshold"],
        v_reset=params["v_reset"],
        reset_subtract=params["reset"] == "subtract",
        refractory_steps=int(params["refractory_steps"]),
    )
    if model == "alif":
        out = out._replace(
            adapt_decay=math.exp(-dt / params["tau_adapt"]),
            adapt_gain=propagators(dt, params["tau_mem"], params["tau_adapt"])[2],
            adapt_strength=params["adapt_strength"],
        )
    return out


def initial_state(shape, params: LIFParameters, dtype=torch.float32, device=None) -> LIFState:
    """The resting state: V at v_leak, no current, not refractory, no adaptation."""
    zeros = torch.zeros(shape, dtype=dtype, device=device)
    return LIFState(v=zeros + params.v_leak, i=zeros, refractory=zeros, adaptation=zeros)


def lif_step(
    state: LIFState, input_current: torch.Tensor, p: LIFParameters, spike_fn=None
) -> tuple[LIFState, torch.Tensor]:
    """One step of a current-based LIF (or ALIF) neuron; returns ``(state, spikes)``.

    ``spike_fn`` maps ``v - threshold`` to spikes (a :class:`Surrogate`); the default is the
    plain Heaviside step.  The ALIF's AHP current ``a`` enters the membrane like an inhibitory
    synaptic current with time constant ``tau_adapt`` (its own exact propagator).
    """
    v = p.v_leak + p.beta * (state.v - p.v_leak) + _charge(state.v, p.current_gain * state.i, p)
    if p.adapt_strength:
        v = v - p.adapt_gain * state.adaptation
    i = p.alpha * state.i + input_current
    v, z, refractory = _fire(v, state.refractory, p, spike_fn)
    adaptation = state.adaptation
    if p.adapt_strength:
        adaptation = p.adapt_decay * adaptation + p.adapt_strength * z
    return LIFState(v, i, refractory, adaptation), z


def if_step(
    state: LIFState, input_current: torch.Tensor, p: LIFParameters, spike_fn=None
) -> tuple[LIFState, torch.Tensor]:
    """One step of a non-leaky integrate-and-fire neuron: ``V <- V + input``.

    The state's ``i`` holds this step's input (IF has no synaptic filter).
    """
    v, z, refractory = _fire(
        state.v + _charge(state.v, input_current, p), state.refractory, p, spike_fn
    )
    return LIFState(v, input_current, refractory, state.adaptation), z


def _charge(v, charge, p: LIFParameters):
    """What a step's ``charge`` adds to the membrane ``v``: all of it, or through the analog
    neuron's current mirror where ``p.mirror`` is set (:mod:`workbench.nonlinearity`)."""
    if p.mirror is None:
        return charge
    return mirror_gain(v, charge, p.mirror) * charge


def _fire(v, refractory, p: LIFParameters, spike_fn):
    """Refractory clamp, threshold crossing and reset: ``(v, spikes, refractory)``."""
    if p.refractory_steps:
        clamped = refractory > 0
        v = torch.where(clamped, torch.as_tensor(p.v_reset, dtype=v.dtype), v)
    z = spike_fn(v - p.threshold) if spike_fn is not None else (v >= p.threshold).to(v.dtype)
    if p.refractory_steps:
        z = torch.where(clamped, torch.zeros_like(z), z)
        refractory = torch.where(
            z > 0, torch.full_like(refractory, p.refractory_steps), (refractory - 1).clamp(min=0)
        )
    return _reset(v, z, p), z, refractory


def li_step(
    state: LIFState, input_current: torch.Tensor, p: LIFParameters, spike_fn=None
) -> tuple[LIFState, torch.Tensor]:
    """One step of a leaky integrator (non-spiking); the output is the membrane ``V``."""
    v = p.v_leak + p.beta * (state.v - p.v_leak) + _charge(state.v, p.current_gain * state.i, p)
    i = p.alpha * state.i + input_current
    return LIFState(v, i, state.refractory, state.adaptation), v


def _reset(v: torch.Tensor, z: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    # The reset is not differentiated through (Zenke & Vogels 2021): gradients flow along the
    # membrane, not through the jump, which trains more stably with surrogate gradients.
    z = z.detach()
    if p.reset_subtract:
        return v - z * p.threshold
    return v - z * (v - p.v_reset)


STEPS = {"lif": lif_step, "alif": lif_step, "if": if_step, "li": li_step}
