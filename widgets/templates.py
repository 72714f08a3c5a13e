"""Networks to start from: each a function returning a fresh, valid :class:`NetworkSpec`.

The builder offers them by name.  The Yin-Yang ones are built the way ``workbench train``
builds the Yin-Yang reference (5 latency-coded input channels: x, y, 1-x, 1-y and a bias
spike; 3 outputs), so each trains as it is.  The networks for time
(:mod:`workbench.architectures`) are sized for spoken digits through a 16-channel cochlea
(Xylo's input count) and 10 classes.
"""

from __future__ import annotations

from workbench import architectures
from workbench.data import load_dataset
from workbench.experiment import build_spec, make_run_encoder, reference_config, resolve_encoder
from workbench.spec import NetworkSpec, Projection


def _reference(backend: str = "float", **changes) -> NetworkSpec:
    """The Yin-Yang reference network (on ``backend``) with ``changes`` to its RunConfig."""
    config = reference_config("yinyang", backend=backend)
    for key, value in changes.items():
        setattr(config, key, value)
    config.encoder = resolve_encoder(config)
    return build_spec(config, load_dataset("yinyang"), make_run_encoder(config))


def _with_recurrence(spec: NetworkSpec, name: str) -> NetworkSpec:
    """``spec`` with all-to-all recurrent synapses within its hidden population (1-step delay)."""
    spec.name = name
    spec.projections.insert(
        1, Projection("hidden", "hidden", recurrent=True, weight_mean=0.0, weight_std=0.05)
    )
    return spec.validate()


def yinyang() -> NetworkSpec:
    """The Yin-Yang reference network of surrogate-gradient training: 5-120-3, LIF -> LI."""
    return _reference()


def recurrent() -> NetworkSpec:
    """5-64-3 with a recurrent hidden population."""
    return _with_recurrence(_reference(hidden=[64]), "recurrent-5-64-3")


def xylo_sized() -> NetworkSpec:
    """A network that fits SynSense Xylo (16 inputs, 1000 hidden, 8 outputs, at most 64
    recurrent synapses per hidden neuron): 5-63-3, LIF throughout, recurrent hidden population,
    with time constants that Xylo's bit-shift decay realises (its Yin-Yang reference)."""
    return _with_recurrence(_reference("xylo", hidden=[63], readout="lif"), "xylo-5-63-3")


def recurrent_lif() -> NetworkSpec:
    """Spoken digits, 16 channels: one recurrent layer of 128 LIF neurons, LI readout."""
    return architectures.recurrent_lif(16, 128, 10)


def synaptic_pyramid() -> NetworkSpec:
    """Spoken digits, 16 channels: SynNet's pyramid of synaptic time constants, three layers
    of 24 in 2, 4 and 8 groups, with Xylo's time constants (10 outputs: Xylo Audio 3)."""
    return architectures.synaptic_pyramid(16, 10)


def wavesense() -> NetworkSpec:
    """Spoken digits, 16 channels: WaveSense, five blocks dilated 1 to 16 steps."""
    return architectures.wavesense(16, 10)


TEMPLATES = {
    "Yin-Yang 5-120-3": yinyang,
    "Recurrent 5-64-3": recurrent,
    "Xylo-sized 5-63-3": xylo_sized,
    "Recurrent LIF 16-128-10": recurrent_lif,
    "Synaptic pyramid 16-24-24-24-10": synaptic_pyramid,
    "WaveSense 16-10": wavesense,
}
