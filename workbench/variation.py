"""Device variation: fixed-pattern mismatch of the neurons and temporal membrane noise.

An analog chip's neurons differ from one another after calibration (fixed-pattern mismatch,
drawn once per chip) and their membranes are noisy (temporal noise, new at every step).  This
module holds that model once, for every backend that has it:

- :class:`VariationProfile`: the float simulator's variation figures, all 0 by default (a
  plain float network); the BrainScaleS-2 profile has the same figures with the chip's values.
- :func:`draw_neurons`: each neuron's parameters and synaptic gain, drawn from a profile's
  ``mismatch_*`` figures and a ``chip_seed`` (the same seed, the same chip).
- :func:`membrane_noise` and :func:`noise_generator`: the per-step noise of the membranes as
  an Ornstein-Uhlenbeck process with the stationary spread ``membrane_noise``; fresh in
  training (one generator that runs on), repeatable in evaluation (the same noise for the
  same batch position).

Units, as on BrainScaleS-2: ``mismatch_tau_mem``, ``mismatch_tau_syn``,
``mismatch_threshold`` and ``mismatch_synaptic_gain`` are relative sigmas per neuron (the
drawn value is ``nominal * (1 + sigma * N(0, 1))``, time constants clamped at 0.1 of
nominal); ``mismatch_leak`` and ``membrane_noise`` are sigmas in model units (the threshold
is 1 above the leak in the reference networks).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from workbench.figures import Figures, figure
from workbench.neurons import LIFParameters, propagators
from workbench.nonlinearity import MirrorFigures
from workbench.spec import NetworkSpec, Problem

ASSUMED = "a setting of the study, not a measured device: 0 is the ideal float network"
# Allowed ranges of the sigmas.  A relative sigma of 1 already gives a sixth of the neurons a
# threshold or gain of the wrong sign; a sigma of 10 model units is ten thresholds of noise,
# where no computation is left.  Both are far beyond any chip (BrainScaleS-2: ~0.02).
RELATIVE = (0.0, 1.0)
ABSOLUTE = (0.0, 10.0)
MODELS = ("lif", "li")  # the models whose time loop takes per-neuron parameters and noise


@dataclass(frozen=True)
class VariationProfile(MirrorFigures, Figures):
    """Mismatch and membrane noise of the float simulator (``build(spec, "float",
    profile={...}, chip_seed=..., noise_seed=...)``), and the analog neuron's integration
    non-linearity (:mod:`workbench.nonlinearity`); every figure 0 is the ideal network."""

    name: str = "float variation"
    mismatch_tau_mem: float = figure(0.0, "relative sigma per neuron", ASSUMED, True, RELATIVE)
    mismatch_tau_syn: float = figure(0.0, "relative sigma per neuron", ASSUMED, True, RELATIVE)
    mismatch_leak: float = figure(0.0, "sigma, model units", ASSUMED, True, ABSOLUTE)
    mismatch_threshold: float = figure(0.0, "relative sigma per neuron", ASSUMED, True, RELATIVE)
    mismatch_synaptic_gain: float = figure(
        0.0, "relative sigma per neuron", ASSUMED, True, RELATIVE
    )
    membrane_noise: float = figure(
        0.0, "stationary sigma of the membrane, model units", ASSUMED, True, ABSOLUTE
    )

    @property
    def varies(self) -> bool:
        """Whether any figure is not 0 (else the network is the plain float simulator)."""
        return any(getattr(self, name) != 0 for name in variation_names(self))

    def scaled(self, factor: float) -> VariationProfile:
        """The same variation with every figure (mismatch and noise) times ``factor``: 0 is
        the ideal network.  (BrainScaleS-2's ``scaled`` keeps its noise: the chip has it.)"""
        return dataclasses.replace(
            self, **{n: getattr(self, n) * factor for n in variation_names(self)}
        )


def variation_names(profile) -> list[str]:
    """The variation figures of ``profile``: ``mismatch_*`` and ``membrane_noise``."""
    return [
        f.name
        for f in dataclasses.fields(profile)
        if f.name.startswith("mismatch_") or f.name == "membrane_noise"
    ]


def range_problems(profile, prefix: str = "profile") -> list[Problem]:
    """The figures of ``profile`` outside the range their field declares (``figure(...,
    bound=(low, high))``), each named ``prefix.NAME`` with the allowed range."""
    from workbench.limits import Bound, number_problem

    out = []
    for f in dataclasses.fields(profile):
        bound = f.metadata.get("range")
        if bound is not None:
            problem = number_problem(f"{prefix}.{f.name}", getattr(profile, f.name), Bound(*bound))
            if problem is not None:
                out.append(problem)
    return out


def spec_problems(spec: NetworkSpec, prefix: str = "") -> list[Problem]:
    """Where ``spec`` cannot run with variation on: the per-neuron, noisy time loop
    (:func:`~workbench.fused.lif_scan`) runs LIF and LI populations without refractoriness, with
    at most a self-recurrence without delay, layer by layer."""
    out = []
    order = spec.order()
    position = {name: k for k, name in enumerate(order)}
    for k, pop in enumerate(spec.populations):
        path = f"{prefix}populations[{k}]"
        if pop.model not in MODELS:
            out.append(
                Problem(
                    f"{path}.model",
                    f"{pop.model!r} has no variation model; with a variation profile, the "
                    f"models are {list(MODELS)} (or set every figure to 0)",
                )
            )
        elif pop.params.get("refractory_steps", 0):
            out.append(
                Problem(
                    f"{path}.params.refractory_steps",
                    f"{pop.params['refractory_steps']} must be 0 with a variation profile (or "
                    "set every figure to 0)",
                )
            )
    selves: set[str] = set()
    for k, proj in enumerate(spec.projections):
        path = f"{prefix}projections[{k}]"
        if proj.source == proj.target and proj.target in selves:
            out.append(
                Problem(
                    path,
                    f"a second projection of {proj.target!r} onto itself; with a variation "
                    "profile, one at most (or set every figure to 0)",
                )
            )
        elif proj.source == proj.target and proj.max_delay:
            out.append(
                Problem(
                    f"{path}.delay",
                    f"a self-recurrence delayed {proj.max_delay} steps; with a variation "
                    "profile it must be 0 (or set every figure to 0)",
                )
            )
        elif (
            proj.source != proj.target
            and proj.source in position
            and position[proj.source] >= position[proj.target]
        ):
            out.append(
                Problem(
                    f"{path}.recurrent",
                    f"{proj.name} feeds back to an earlier population; with a variation "
                    "profile, only a population's recurrence onto itself (or set every figure "
                    "to 0)",
                )
            )
        if proj.source == proj.target:
            selves.add(proj.target)
    return out


def draw_neurons(
    spec: NetworkSpec, profile, chip_seed: int, dtype: torch.dtype
) -> tuple[dict[str, LIFParameters], dict[str, torch.Tensor]]:
    """Every neuron's parameters and synaptic gain on the chip ``chip_seed``, from the
    ``mismatch_*`` figures of ``profile``: ``({population: LIFParameters},
    {population: gain [n]})``, per-neuron tensors in ``dtype``.  The draws come in a fixed
    order from one generator, so a seed gives the same chip whatever else is drawn elsewhere."""
    generator = torch.Generator().manual_seed(chip_seed)
    dt = spec.dt

    def spread(n, sigma):
        return 1.0 + sigma * torch.randn(n, generator=generator, dtype=torch.float64)

    neuron_params, synaptic_gain = {}, {}
    for pop in spec.populations:
        n, params = pop.size, pop.params
        tau_mem = params["tau_mem"] * spread(n, profile.mismatch_tau_mem).clamp(min=0.1)
        tau_syn = params["tau_syn"] * spread(n, profile.mismatch_tau_syn).clamp(min=0.1)
        consts = [propagators(dt, m, s) for m, s in zip(tau_mem.tolist(), tau_syn.tolist())]
        alpha, beta, gain = (torch.tensor(c, dtype=dtype) for c in zip(*consts))
        leak = params["v_leak"] + profile.mismatch_leak * torch.randn(n, generator=generator)
        p = LIFParameters(alpha=alpha, beta=beta, current_gain=gain, v_leak=leak.to(dtype))
        if pop.spiking:
            threshold = params["threshold"] * spread(n, profile.mismatch_threshold)
            p = p._replace(
                threshold=threshold.to(dtype),
                v_reset=params["v_reset"],
                reset_subtract=params["reset"] == "subtract",
            )
        neuron_params[pop.name] = p
        synaptic_gain[pop.name] = spread(n, profile.mismatch_synaptic_gain).to(dtype)
    return neuron_params, synaptic_gain


def noise_generator(
    running: torch.Generator, noise_seed: int, training: bool, stream: int = 0
) -> torch.Generator:
    """Where a population's membrane noise comes from: in training the network's ``running``
    generator (fresh noise every batch, part of a checkpoint's random state); in evaluation a
    new generator seeded with ``noise_seed`` (the same noise for the same batch position, so
    an evaluation is repeatable).  ``stream`` > 0 gives population ``stream`` of a network its
    own evaluation noise (0 is the generator of ``noise_seed`` itself)."""
    if training:
        return running
    if stream == 0:
        return torch.Generator().manual_seed(noise_seed)
    # torch seeds its CPU generator from the low 32 bits: streams step through them by an odd
    # constant (a bijection of the 32-bit seeds), so no two streams share a seed
    return torch.Generator().manual_seed((noise_seed + stream * 0x9E3779B9) % 2**32)


def membrane_noise(
    sigma: float, beta, like: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Temporal noise for membranes driven by ``like`` (``[T, B, n]``), added to ``V`` every
    step: an Ornstein-Uhlenbeck process of the leaky membrane, whose per-step kick
    ``sigma * sqrt(1 - beta^2)`` gives the stationary spread ``sigma`` (``beta``: the
    membrane's decay per step, a number or per neuron).  Drawn on the CPU from ``generator``
    (the same numbers on every device) and moved to ``like``'s device."""
    kick = sigma * torch.sqrt(1 - torch.as_tensor(beta) ** 2)
    noise = kick * torch.randn(like.shape, generator=generator, dtype=like.dtype)
    return noise.to(like.device)
