"""Networks to start from: each a function returning a fresh, valid :class:`NetworkSpec`.

The builder offers them by name; every one reads the Yin-Yang input (5 latency-coded channels:
x, y, 1-x, 1-y and a bias spike) and has 3 outputs, so each trains as it is.
"""

from __future__ import annotations

from workbench.experiment import reference_config
from workbench.spec import NetworkSpec, Projection, feedforward


def yinyang() -> NetworkSpec:
    """The Yin-Yang reference network of surrogate-gradient training: 5-120-3, LIF -> LI."""
    c = reference_config("yinyang")
    return feedforward(
        [5, *c.hidden, 3],
        c.neuron,
        c.readout,
        c.neuron_params,
        c.readout_params,
        dt=c.dt,
        n_steps=c.n_steps,
        weight_init=c.weight_init,
        name="yinyang-5-120-3",
    )


def recurrent() -> NetworkSpec:
    """5-64-3 with all-to-all recurrent synapses within the hidden population (1-step delay)."""
    spec = yinyang()
    spec.name = "recurrent-5-64-3"
    spec.populations[0].size = 64
    spec.projections.insert(
        1, Projection("hidden", "hidden", recurrent=True, weight_mean=0.0, weight_std=0.05)
    )
    return spec.validate()


def xylo_sized() -> NetworkSpec:
    """A network that fits SynSense Xylo (16 inputs, 1000 hidden, 8 outputs): 5-63-3, LIF
    throughout, recurrent hidden population, time constants that bit-shift decay realises."""
    c = reference_config("yinyang", backend="xylo")
    spec = feedforward(
        [5, 63, 3],
        "lif",
        "lif",
        c.neuron_params,
        c.readout_params,
        dt=c.dt,
        n_steps=c.n_steps,
        weight_init=c.weight_init,
        name="xylo-5-63-3",
    )
    spec.projections.insert(
        1, Projection("hidden", "hidden", recurrent=True, weight_mean=0.0, weight_std=0.05)
    )
    return spec.validate()


TEMPLATES = {
    "Yin-Yang 5-120-3": yinyang,
    "Recurrent 5-64-3": recurrent,
    "Xylo-sized 5-63-3": xylo_sized,
}
