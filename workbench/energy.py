"""Energy per inference: a run's own activity priced with published per-operation figures.

What a network did on a sample is counted while it is evaluated (:class:`Activity`: time steps,
input events, spikes and spiking neuron-steps per population, synaptic operations; averaged per
sample, :class:`ActivityCounter`).  Each backend prices it with its own figures
(``network.energy(activity)``): a table of terms, each a count per sample times an energy per
operation from a figure with its unit and source (:mod:`workbench.figures`), so every joule can
be traced to where its price came from.  :func:`energy_per_sample_uj` sums a table.

The backends' models (the chips' figures live in their profiles, in ``workbench.hardware``):

- **float** (and the event-driven simulator): the network as a time-stepped simulator computes
  it on a CPU or GPU, priced with :class:`ReferenceEnergy` (FP32 arithmetic at 45 nm,
  Horowitz 2014).  Every weight is multiplied every step (a dense product does not skip
  silent inputs), and every neuron is updated every step.  Only the arithmetic is counted, no
  memory traffic or overhead, so it is a lower bound: a real processor spends one to two orders
  of magnitude more.
- **loihi**: synaptic operations, neuron updates, spikes that fire and spike messages, priced with
  Davies et al. 2018's per-operation energies; no static power (not in that table).
- **xylo**: SynSense's cycle model of Xylo Audio 2 for the activity the run showed, at the
  profile's energy per clock cycle, plus static power over the sample's real time.
- **brainscales2**: the chip's power over the accelerated duration of a sample (analog
  dynamics draw power whether or not they spike).
- **crossbar**: an energy per multiply-accumulate of a memristive system for each synaptic
  operation, plus a digital neuron update per neuron and step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from workbench.figures import Figures, figure
from workbench.spec import INPUT, NetworkSpec

HOROWITZ = (
    "Horowitz 2014, 'Computing's energy problem (and what we can do about it)', ISSCC, 45 nm "
    "at 0.9 V: FP32 multiply 3.7 pJ, FP32 add 0.9 pJ (as tabled by Han et al. 2016, ICLR)"
)
LIF_OPS = (
    "assumption: a current-based LIF step is about four multiply-adds (decay V, decay I, add "
    "the current, compare with the threshold)"
)

COLUMNS = ("term", "count", "unit", "energy_each_j", "energy_j", "source")


@dataclass
class Activity:
    """What a network did, per sample (means over the samples counted)."""

    samples: int
    time_steps: float  # steps per sample
    dt: float  # ms
    input_events: float  # input spikes (|value|: a multi-event count counts as what it is)
    input_active: float  # input channel-steps with at least one event
    spikes: dict[str, float] = field(default_factory=dict)  # per spiking population
    active: dict[str, float] = field(default_factory=dict)  # its neuron-steps with a spike
    synops: float = 0.0  # synaptic operations (workbench.metrics.synaptic_operations)

    @property
    def total_spikes(self) -> float:
        return sum(self.spikes.values())

    def neuron_steps(self, spec: NetworkSpec, populations=None) -> float:
        """Neuron updates per sample: every neuron of ``populations`` (default: all but the
        input) once per time step."""
        names = spec.population_names if populations is None else populations
        return self.time_steps * sum(spec.size_of(name) for name in names)


class ActivityCounter:
    """Sums what a network did over batches; :meth:`activity` gives the means per sample."""

    def __init__(self, dt: float):
        self.dt = dt
        self.samples = 0
        self.steps = 0.0
        self.input_events = 0.0
        self.input_active = 0.0
        self.spikes: dict[str, float] = {}
        self.active: dict[str, float] = {}
        self.synops = 0.0

    @torch.no_grad()
    def add(self, network, inputs: torch.Tensor, recordings: dict) -> None:
        """One forward pass over a batch: ``inputs`` ``[time, batch, inputs]`` and the
        recordings it made (spikes of every spiking population)."""
        from workbench.metrics import synaptic_operations

        batch = inputs.shape[1]
        self.samples += batch
        self.steps += inputs.shape[0] * batch
        events = inputs.detach()
        self.input_events += float(events.abs().sum())
        self.input_active += float((events != 0).sum())
        for name, rec in recordings.items():
            if name == INPUT or "spikes" not in rec:
                continue
            spikes = torch.as_tensor(rec["spikes"]).detach()
            self.spikes[name] = self.spikes.get(name, 0.0) + float(spikes.abs().sum())
            self.active[name] = self.active.get(name, 0.0) + float((spikes != 0).sum())
        self.synops += synaptic_operations(network, inputs, recordings)

    def activity(self) -> Activity:
        n = max(self.samples, 1)
        return Activity(
            samples=self.samples,
            time_steps=self.steps / n,
            dt=self.dt,
            input_events=self.input_events / n,
            input_active=self.input_active / n,
            spikes={k: v / n for k, v in self.spikes.items()},
            active={k: v / n for k, v in self.active.items()},
            synops=self.synops / n,
        )


def priced(name: str, count: float, unit: str, figures: Figures, figure_name: str, scale=1.0):
    """A row of an energy table: ``count`` operations priced at the figure ``figure_name`` of
    ``figures`` (times ``scale``), with that figure's source."""
    each = getattr(figures, figure_name) * scale
    return {
        "term": name,
        "count": float(count),
        "unit": unit,
        "energy_each_j": each,
        "energy_j": float(count) * each,
        "source": f"{figures.name}.{figure_name}: {figures.source(figure_name)}",
    }


def energy_table(rows: list[dict]) -> pd.DataFrame:
    """Rows made with :func:`priced` as a table with the :data:`COLUMNS`."""
    return pd.DataFrame(rows, columns=list(COLUMNS))


def energy_per_sample_uj(table: pd.DataFrame) -> float:
    """The total of an energy table, in microjoules."""
    return float(table["energy_j"].sum()) * 1e6


@dataclass(frozen=True)
class ReferenceEnergy(Figures):
    """A CPU or GPU computing the float simulator's arithmetic: FP32 at 45 nm, no memory."""

    name: str = "cpu"
    multiply_add: float = figure(4.6e-12, "J per FP32 multiply-add (3.7 + 0.9 pJ)", HOROWITZ)
    lif_update_ops: float = figure(4.0, "multiply-adds per neuron update", LIF_OPS, True)


def dense_energy(spec: NetworkSpec, activity: Activity, figures=None) -> pd.DataFrame:
    """The float reference: every synapse and every neuron computed every time step."""
    figures = figures or ReferenceEnergy()
    synapses = sum(spec.size_of(p.source) * spec.size_of(p.target) for p in spec.projections)
    rows = [
        priced(
            "dense synaptic multiply-adds",
            activity.time_steps * synapses,
            "multiply-adds",
            figures,
            "multiply_add",
        ),
        priced(
            "neuron updates",
            activity.neuron_steps(spec),
            "neuron-steps",
            figures,
            "multiply_add",
            scale=figures.lif_update_ops,
        ),
    ]
    return energy_table(rows)
