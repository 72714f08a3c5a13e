"""What every chip emulator shares: a profile of sourced figures, checks, resources, deployment.

An emulator is a profile plus three operations (DESIGN.md, idea 4):

- ``check(spec, profile)`` returns every :class:`Violation` of the chip's limits (``build``
  refuses with all of them, so nothing runs);
- the forward pass applies the chip's number formats, mismatch and noise, with
  straight-through gradients so training on the emulator works;
- ``resources(spec, profile)`` reports what the network uses against the chip's capacity.

Emulated networks subclass :class:`EmulatedNetwork` (itself a
:class:`~workbench.backends.FloatNetwork`), so weights keep the float simulator's names and
shapes and move between backends with ``load_state_dict``; :func:`deploy` does that and reports
what changed.  Profiles are frozen dataclasses whose fields carry their unit, their source and
whether they are an assumption (``dataclasses.replace(profile, name=value)`` changes one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from workbench.backends import FloatNetwork, projection_key
from workbench.figures import Figures, figure
from workbench.neurons import Surrogate
from workbench.nonlinearity import with_mirror
from workbench.spec import INPUT, NetworkSpec, Problem, SpecError


@dataclass(frozen=True)
class HardwareProfile(Figures):
    """A chip's figures.  Subclasses add fields made with :func:`figure`."""

    name: str = "chip"
    speedup: float = figure(1.0, "x biological time", "emulated in biological time")


@dataclass(frozen=True)
class Violation:
    """One way a spec exceeds a chip: which field, which limit, the value and what is allowed."""

    path: str
    limit: str
    value: Any
    allowed: Any
    chip: str

    def __str__(self) -> str:
        return f"{self.path}: {self.limit} is {self.value}; {self.chip} allows {self.allowed}"


def size_field(spec: NetworkSpec, name: str) -> str:
    """The field holding the size of population ``name``: ``populations[k].size``, or
    ``input_size`` for the input."""
    return (
        "input_size" if name == INPUT else f"populations[{spec.population_names.index(name)}].size"
    )


def summed_sizes(spec: NetworkSpec, names: list[str]) -> tuple[int, str, str]:
    """Populations ``names`` (the input among them; a name twice counts twice) whose sizes add
    up to what a chip limits, e.g. the sources of a neuron's inputs: the sum, the size field of
    the largest (the first of equals), which is the field to shrink, and the populations with
    their sizes as text (``'hidden' 600, 'input' 5``).

    A limit on a neuron's fan-in concerns the target population but is set by its sources'
    sizes (and fan-out by the targets'), so a violation names the source's size field, not the
    target's size, which changes nothing."""
    sizes: dict[str, int] = {}
    for name in names:
        sizes[name] = sizes.get(name, 0) + spec.size_of(name)
    if not sizes:
        return 0, "projections", "none"
    largest = max(sizes, key=sizes.__getitem__)
    text = ", ".join(f"{name!r} {n}" for name, n in sizes.items())
    return sum(sizes.values()), size_field(spec, largest), text


def refuse(violations: list[Violation]) -> None:
    """Raise a :class:`SpecError` naming every violation (nothing is built or run)."""
    if violations:
        raise SpecError(
            [
                Problem(v.path, f"{v.limit} is {v.value}; {v.chip} allows {v.allowed}")
                for v in violations
            ]
        )


class EmulatedNetwork(FloatNetwork):
    """Base of every emulated chip: the float network's weights and forward contract, with the
    chip's checks at build time.  Subclasses set ``profile_class`` and ``backend_name``,
    implement ``check`` and ``resources``, and override ``weight`` (number formats, noise)
    and/or ``_run_population`` / ``forward`` (the chip's dynamics)."""

    profile_class = HardwareProfile
    backend_name = "chip"

    def __init__(
        self,
        spec: NetworkSpec,
        profile: HardwareProfile | None = None,
        seed: int = 0,
        surrogate: Surrogate | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        # The float simulator's own options (its variation profile, chip and noise seeds) are
        # not passed on: a chip has its own (``make_profile``, inherited, reads the chip's
        # profile class), and the options a run may give are this signature's and the chip's.
        spec.validate()
        profile = self.make_profile(profile)
        refuse(self.check(spec, profile))
        super().__init__(spec, surrogate=surrogate, seed=seed, dtype=dtype)
        self.profile = profile
        # an analog chip's neurons carry its profile's integration non-linearity, if any
        self.neuron_params = with_mirror(self.neuron_params, profile)

    @classmethod
    def check(cls, spec: NetworkSpec, profile: HardwareProfile | None = None) -> list[Violation]:
        return []

    @classmethod
    def resources(cls, spec: NetworkSpec, profile: HardwareProfile | None = None) -> pd.DataFrame:
        """Rows ``resource, used, capacity, fraction`` of ``spec`` on the chip."""
        return resource_table([])

    def float_weight(self, proj) -> torch.Tensor:
        """The stored (trainable, float) weight of ``proj``, before the chip's formats."""
        return self.weights[projection_key(proj)]

    def deployment_report(self) -> pd.DataFrame:
        """Per projection: how the chip's weights differ from the stored float weights."""
        rows = []
        with torch.no_grad():
            for proj in self.spec.projections:
                w = self.float_weight(proj)
                on_chip = self.weight(proj)
                scale = w.abs().max().clamp(min=1e-12)
                rows.append(
                    {
                        "projection": proj.name,
                        "synapses": w.numel(),
                        "rms_error": (on_chip - w).pow(2).mean().sqrt().item(),
                        "relative_rms_error": ((on_chip - w).pow(2).mean().sqrt() / scale).item(),
                        "clipped": int(self.clipped(proj).sum().item()),
                    }
                )
        return pd.DataFrame(rows)

    def clipped(self, proj) -> torch.Tensor:
        """Which synapses of ``proj`` lie outside the chip's weight range (bool, weight shape)."""
        return torch.zeros_like(self.float_weight(proj), dtype=torch.bool)


def resource_table(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    """``[(resource, used, capacity), ...]`` as a table with the fraction used."""
    table = pd.DataFrame(rows, columns=["resource", "used", "capacity"])
    table["fraction"] = table["used"] / table["capacity"]
    return table


def straight_through(value: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """``observed`` in the forward pass, the gradient of ``value`` in the backward pass."""
    return value + (observed - value).detach()


@dataclass
class Deployment:
    """A float network mapped onto a chip: the emulated network and what changed."""

    network: EmulatedNetwork
    weights: pd.DataFrame  # deployment_report(): quantisation error and clipping per projection
    resources: pd.DataFrame
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    energy_before_uj: float | None = None  # per test sample, float (CPU/GPU reference)
    energy_after_uj: float | None = None  # per test sample, on the chip
    energy: pd.DataFrame | None = None  # the chip's energy per test sample, term by term


def deploy(
    float_network: FloatNetwork, backend: str, data=None, readout: str = "max_membrane", **options
) -> Deployment:
    """Map ``float_network``'s trained weights onto ``backend`` without retraining.

    With ``data`` (a :class:`~workbench.experiment.TrainingData`), a chip that has a
    ``calibrate(spikes)`` step is calibrated on training samples first, and the test accuracy
    and energy per sample before (float) and after (on the chip) are measured, with the
    chip's energy term by term (:mod:`workbench.energy`).
    """
    from workbench.backends import build
    from workbench.experiment import measure

    chip = build(float_network.spec, backend, **options)
    chip.load_state_dict(float_network.state_dict())
    if data is not None and hasattr(chip, "calibrate"):
        features = torch.as_tensor(data.dataset.train.features[:256], dtype=torch.float32)
        chip.calibrate(data.encoder(features))
    out = Deployment(chip, chip.deployment_report(), chip.resources(chip.spec, chip.profile))
    if data is not None:
        before, after = measure(float_network, data, readout), measure(chip, data, readout)
        out.accuracy_before, out.accuracy_after = before["test_accuracy"], after["test_accuracy"]
        out.energy_before_uj = before["test_energy_per_sample_uj"]
        out.energy_after_uj = after["test_energy_per_sample_uj"]
        out.energy = pd.DataFrame(after["test_energy"])
    return out
