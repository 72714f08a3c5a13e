"""Networks for signals that live in time, as :class:`~workbench.spec.NetworkSpec` templates.

Each function returns a fresh, validated spec for ``n_inputs`` spike channels and
``n_outputs`` classes; the sources each one follows are cited in its docstring.

- :func:`recurrent_lif`: recurrent LIF hidden layers and a leaky-integrator readout, the
  standard network for the Spiking Heidelberg Digits and spoken words.
- :func:`synaptic_pyramid`: Rockpool's ``SynNet`` (the network SynSense deploys on Xylo):
  feed-forward hidden layers whose neurons are split into groups with synaptic time
  constants 2, 4, 8, ... times the step, one population per group; by default the time
  constants are the ones Xylo's bit-shift decay realises, and the network fits Xylo.
- :func:`wavesense`: WaveSense (Weidel & Sheik 2021): blocks of a dilated temporal
  convolution made of spiking neurons, the dilation realised through synaptic delays and
  synaptic time constants, residual paths between blocks and skip paths to a readout.

Initial weights follow one rule everywhere (:func:`initial_std`): He et al.'s
``sqrt(2 / fan_in)``, divided by the membrane step one input spike causes (:func:`psp_peak`),
so every population starts near its threshold whatever its time constants, and scaled by
``tau_ref / tau_syn`` where a network spreads its synaptic time constants over ``tau_ref``,
so each group's synapses start with the same charge (SynNet's and WaveSense's normalisation
of the weights by the synaptic time constant); the readout's by He's scale alone
(:func:`readout_std`).  ``weight_scale`` and ``input_scale`` (the projections from the
input) multiply them; each function's defaults keep spikes flowing through every layer on
spoken digits through a 16-channel cochlea (~18 events per channel per second; docs/
architecture.md, "Networks for time", has the measurements).

:data:`NETWORKS` names them for the command line (``workbench train --network NAME``) and
:func:`build_network` builds one by name with its options checked against the function's
signature.  Nothing here imports torch: a spec is plain data.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence

from workbench.limits import Bound, number_problem, show
from workbench.spec import INPUT, NetworkSpec, Population, Problem, Projection, SpecError

__all__ = [
    "DILATIONS",
    "NETWORKS",
    "build_network",
    "initial_std",
    "network_option_problems",
    "psp_peak",
    "readout_std",
    "recurrent_lif",
    "synaptic_pyramid",
    "wavesense",
    "xylo_tau",
]

DILATIONS = ("both", "delay", "tau_syn")  # how wavesense() realises a block's dilation
_CHANNELS = Bound(1, 1_000_000, integer=True, unit="channels")
_SIZE = Bound(1, 1_000_000, integer=True, unit="neurons")
_TAU = Bound(0, 1e6, low_open=True, unit="ms")
_TAU_OR_0 = Bound(0, 1e6, unit="ms (0: no synaptic current)")
_SCALE = Bound(0, 1e6, unit="(times the default initial weights)")
_THRESHOLD = Bound(0, 1e6, low_open=True)
_GROUPS = Bound(1, 64, integer=True, unit="time constants per layer")
_DILATION = Bound(1, 100_000, integer=True, unit="steps")
_KERNEL = Bound(1, 64, integer=True, unit="taps")


# ----------------------------------------------------------------------------- helpers
def xylo_tau(tau: float, dt: float) -> float:
    """The time constant Xylo realises for ``tau``: its decay shift ``dash = round(log2(tau /
    dt))`` (rounded half up, as :func:`workbench.hardware.xylo.bitshift`) decays a state by
    ``x <- x (1 - 2**-dash)`` a step, i.e. ``tau = -dt / ln(1 - 2**-dash)``.  A shift of 0
    (``tau < dt * sqrt(2)``) clears the state every step: refused with a ``ValueError``."""
    dash = _bitshift(tau, dt)
    if dash < 1:
        raise ValueError(
            f"{tau:g} ms rounds to Xylo's bit shift 0 at dt {dt:g} ms (a state cleared every "
            f"step); it must be >= {dt * math.sqrt(2):.4g} ms"
        )
    return -dt / math.log1p(-(2.0**-dash))


def _bitshift(tau: float, dt: float) -> int:
    """``round(log2(tau / dt))`` rounded half up, 0 for ``tau <= dt`` (Rockpool's rule)."""
    ratio = tau / dt
    if ratio <= 1:
        return 0
    return int(math.floor(math.log2(ratio) + 0.5))


def psp_peak(tau_mem: float, tau_syn: float) -> float:
    """The largest membrane excursion a unit weight causes in a current-based LIF neuron
    (``tau_mem dV/dt = -V + I``, ``I`` jumping by the weight and decaying with ``tau_syn``;
    with ``tau_syn = 0``, ``V`` jumps by the weight), in continuous time."""
    if tau_syn == 0:
        return 1.0
    if math.isclose(tau_mem, tau_syn):
        return math.exp(-1.0)
    t = math.log(tau_syn / tau_mem) * tau_mem * tau_syn / (tau_syn - tau_mem)
    return tau_syn / (tau_syn - tau_mem) * (math.exp(-t / tau_syn) - math.exp(-t / tau_mem))


def initial_std(
    fan_in: int,
    tau_mem: float,
    tau_syn: float,
    tau_ref: float | None = None,
    scale: float = 1.0,
) -> float:
    """The standard deviation of a population's initial input weights: ``scale * sqrt(2 /
    fan_in) / psp_peak(tau_mem, tau_ref) * tau_ref / tau_syn`` (``tau_ref`` defaults to
    ``tau_syn``; ``fan_in`` counts every synapse onto one neuron)."""
    tau_ref = tau_syn if tau_ref is None else tau_ref
    charge = 1.0 if tau_syn == 0 else tau_ref / tau_syn
    return scale * math.sqrt(2.0 / fan_in) / psp_peak(tau_mem, tau_ref) * charge


def readout_std(fan_in: int) -> float:
    """The standard deviation of a leaky-integrator readout's initial weights: ``sqrt(2 /
    fan_in)`` alone (its membrane sums spikes over the whole sample and has no threshold to
    reach, so it is not scaled by :func:`psp_peak`)."""
    return math.sqrt(2.0 / fan_in)


def _check(problems: list[Problem], path: str, value, bound: Bound) -> None:
    problem = number_problem(path, value, bound)
    if problem is not None:
        problems.append(problem)


def _check_list(problems: list[Problem], path: str, values, bound: Bound) -> list:
    """``values`` as a list (one number is a list of one), each within ``bound``."""
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Sequence) or not values:
        problems.append(Problem(path, f"{show(values)} must be a non-empty list"))
        return []
    if len(values) > 1000:
        problems.append(Problem(path, f"has {len(values)} entries; at most 1000"))
        return []
    for k, value in enumerate(values):
        _check(problems, f"{path}[{k}]", value, bound)
    return list(values)


def _check_name(problems: list[Problem], name) -> None:
    if name is not None and (not isinstance(name, str) or not name):
        problems.append(Problem("name", f"{show(name)} must be a non-empty string or None"))


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise SpecError(problems)


def _label(kind: str, sizes: Sequence[int], name: str | None) -> str:
    return name if name is not None else f"{kind}-" + "-".join(str(s) for s in sizes)


# ----------------------------------------------------------------------------- networks
def recurrent_lif(
    n_inputs: int,
    n_hidden: int | Sequence[int],
    n_outputs: int,
    *,
    tau_mem: float = 20.0,
    tau_syn: float = 5.0,
    readout_tau_mem: float = 20.0,
    readout_tau_syn: float = 5.0,
    weight_scale: float = 1.0,
    input_scale: float = 1.0,
    recurrent_scale: float = 0.5,
    dt: float = 2.0,
    n_steps: int = 500,
    name: str | None = None,
) -> NetworkSpec:
    """Recurrent LIF hidden layers and a leaky-integrator readout, the standard network for
    the Spiking Heidelberg Digits and spoken words.

    ``n_hidden``: one size, or one per hidden layer (``[256, 256]``: two layers, each
    recurrent onto itself, all to all, its spikes arriving one step later).  The readout
    (``li``, no spikes) is read by its largest membrane value over the sample.  The time
    constants and the 2 ms x 500 steps are this workbench's SHD reference
    (``experiment.DATASET_REFERENCES["shd"]``); initial weights by :func:`initial_std`,
    ``recurrent_scale`` times that for the recurrent synapses.  Hidden populations are named
    ``hidden`` (``hidden1``, ``hidden2``, ... for several), the readout ``output``.

    Sources: Cramer, Stradmann, Schemmel & Zenke (2022), "The Heidelberg spiking data sets
    for the systematic evaluation of spiking neural networks", IEEE TNNLS 33(7), arXiv
    1910.07407 (recurrent LIF networks trained with surrogate gradients as the SHD/SSC
    baselines); Zenke & Vogels (2021), "The remarkable robustness of surrogate gradient
    learning for instilling complex function in spiking neural networks", Neural Computation
    33(4) (the same networks, a fan-in-scaled initialisation, the readout by the maximum of a
    leaky-integrator membrane).
    """
    problems: list[Problem] = []
    _check(problems, "n_inputs", n_inputs, _CHANNELS)
    sizes = _check_list(problems, "n_hidden", n_hidden, _SIZE)
    _check(problems, "n_outputs", n_outputs, _SIZE)
    for key, value in (("tau_mem", tau_mem), ("readout_tau_mem", readout_tau_mem)):
        _check(problems, key, value, _TAU)
    for key, value in (("tau_syn", tau_syn), ("readout_tau_syn", readout_tau_syn)):
        _check(problems, key, value, _TAU_OR_0)
    _check(problems, "weight_scale", weight_scale, _SCALE)
    _check(problems, "input_scale", input_scale, _SCALE)
    _check(problems, "recurrent_scale", recurrent_scale, _SCALE)
    _check_name(problems, name)
    _raise(problems)
    names = ["hidden"] if len(sizes) == 1 else [f"hidden{k + 1}" for k in range(len(sizes))]
    params = {"tau_mem": float(tau_mem), "tau_syn": float(tau_syn)}
    populations = [Population(n, s, "lif", dict(params)) for n, s in zip(names, sizes)]
    populations.append(
        Population(
            "output",
            n_outputs,
            "li",
            {"tau_mem": float(readout_tau_mem), "tau_syn": float(readout_tau_syn)},
        )
    )
    projections = []
    sources = [(INPUT, n_inputs), *zip(names[:-1], sizes[:-1])]
    for (source, fan_in), target, size in zip(sources, names, sizes):
        scale = weight_scale * (input_scale if source == INPUT else 1.0)
        std = initial_std(fan_in, tau_mem, tau_syn, None, scale)
        projections.append(Projection(source, target, weight_std=std))
        std = initial_std(size, tau_mem, tau_syn, None, weight_scale * recurrent_scale)
        projections.append(Projection(target, target, recurrent=True, weight_std=std))
    std = readout_std(sizes[-1])
    projections.append(Projection(names[-1], "output", weight_std=std))
    spec = NetworkSpec(
        n_inputs,
        populations,
        projections,
        dt=dt,
        n_steps=n_steps,
        name=_label("recurrent-lif", [n_inputs, *sizes, n_outputs], name),
    )
    return spec.validate()


def synaptic_pyramid(
    n_inputs: int,
    n_outputs: int,
    *,
    hidden: Sequence[int] = (24, 24, 24),
    time_constants: Sequence[int] = (2, 4, 8),
    tau_syn_base: float | None = None,
    tau_mem: float | None = None,
    tau_syn_out: float | None = None,
    readout_tau_mem: float | None = None,
    xylo_time_constants: bool = True,
    threshold: float = 1.0,
    weight_scale: float = 2.0,
    input_scale: float = 1.0,
    dt: float = 1.0,
    n_steps: int = 1000,
    name: str | None = None,
) -> NetworkSpec:
    """Rockpool's ``SynNet``: feed-forward LIF layers whose neurons come in groups with spread
    synaptic time constants, and a leaky-integrator readout; the network SynSense deploys on
    Xylo for keyword spotting and other audio tasks.

    Hidden layer ``l`` holds ``hidden[l]`` neurons in ``time_constants[l]`` groups; group
    ``j`` (1, 2, ...) has ``tau_syn = dt * (tau_syn_base / dt) ** j``, so with the default
    ``tau_syn_base = 2 dt`` the groups' synapses decay 2, 4, 8, 16, ... times slower than a
    step: the deeper layers, with more groups, remember further back.  SynNet draws the time
    constants neuron by neuron (neuron ``k`` takes group ``k mod n``); here each group is one
    population ``hidden{l}_syn{j}`` (the spec holds one ``tau_syn`` per population), of the
    same sizes: the first ``hidden[l] mod n`` groups have one neuron more.  Every group of a
    layer projects onto every group of the next, the last layer's onto the readout
    (``output``: ``li``, ``tau_mem`` and ``tau_syn_out``, read as SynNet's ``output="vmem"``).
    The hidden neurons reset by subtracting the threshold, as Xylo's and Rockpool's do.
    ``tau_syn_base``, ``tau_mem`` and ``tau_syn_out`` default to ``2 dt`` (SynNet's 2 ms at
    its 1 ms step), so the network keeps its shape in steps at any ``dt``.

    ``xylo_time_constants`` (default): every time constant is replaced by the one Xylo's
    bit-shift decay realises (:func:`xylo_tau`; SynNet's ``quantize_time_constants``), so the
    float network and the chip decay alike.  Initial weights by :func:`initial_std` with
    ``tau_ref`` the first group's ``tau_syn`` (SynNet scales each synapse by ``dt /
    tau_syn``).

    The defaults (16 inputs, three layers of 24 with 2, 4 and 8 groups) fit Xylo Audio 2
    for up to 8 outputs (``backend_class("xylo").check(spec)``: every hidden neuron reaches
    24 others, at most 64; 72 hidden neurons of 1000) and Xylo Audio 3 for up to 32.
    SynNet's own default is one layer of 60 neurons in 10 groups (``hidden=[60],
    time_constants=[10]``).

    Sources: Rockpool ``rockpool.nn.networks.SynNet`` (``rockpool/nn/networks/synnet.py``:
    the time constants, their quantisation, the weight normalisation); Bos & Muir (2022),
    "Sub-mW neuromorphic SNN audio processing applications with Rockpool and Xylo",
    ESSCIRC 2022, arXiv 2208.12991; Bos & Muir (2024), "Micro-power spoken keyword spotting
    on Xylo Audio 2", arXiv 2406.15112.
    """
    problems: list[Problem] = []
    _check(problems, "dt", dt, Bound(1e-3, 1e3, unit="ms"))
    _raise(problems)
    tau_syn_base, tau_mem, tau_syn_out = (
        2.0 * dt if tau is None else tau for tau in (tau_syn_base, tau_mem, tau_syn_out)
    )
    _check(problems, "n_inputs", n_inputs, _CHANNELS)
    _check(problems, "n_outputs", n_outputs, _SIZE)
    sizes = _check_list(problems, "hidden", hidden, _SIZE)
    groups = _check_list(problems, "time_constants", time_constants, _GROUPS)
    if sizes and groups and len(sizes) != len(groups):
        problems.append(
            Problem(
                "time_constants",
                f"has {len(groups)} entries; one per hidden layer ({len(sizes)})",
            )
        )
    for key, value in (("tau_mem", tau_mem), ("tau_syn_out", tau_syn_out)):
        _check(problems, key, value, _TAU)
    if readout_tau_mem is not None:
        _check(problems, "readout_tau_mem", readout_tau_mem, _TAU)
    _check(problems, "tau_syn_base", tau_syn_base, _TAU)
    _check(problems, "threshold", threshold, _THRESHOLD)
    _check(problems, "weight_scale", weight_scale, _SCALE)
    _check(problems, "input_scale", input_scale, _SCALE)
    _check_name(problems, name)
    if not isinstance(xylo_time_constants, bool):
        problems.append(
            Problem("xylo_time_constants", f"{show(xylo_time_constants)} must be true or false")
        )
    _raise(problems)
    if not tau_syn_base > dt:
        problems.append(
            Problem("tau_syn_base", f"{tau_syn_base:g} ms must be > dt ({dt:g} ms), as in SynNet")
        )
    for k, (size, n) in enumerate(zip(sizes, groups)):
        if n > size:
            problems.append(
                Problem(f"time_constants[{k}]", f"{n} groups for {size} neurons; at most {size}")
            )
    _raise(problems)

    def realised(key: str, tau: float) -> float:
        if not xylo_time_constants:
            return float(tau)
        try:
            return xylo_tau(tau, dt)
        except ValueError as exc:
            raise SpecError([Problem(key, str(exc))]) from None

    tau_mem = realised("tau_mem", tau_mem)
    tau_out = realised("tau_syn_out", tau_syn_out)
    tau_read = tau_mem if readout_tau_mem is None else realised("readout_tau_mem", readout_tau_mem)
    taus = [
        realised("tau_syn_base", dt * (tau_syn_base / dt) ** j) for j in range(1, max(groups) + 1)
    ]
    hidden_params = {"tau_mem": tau_mem, "threshold": float(threshold), "reset": "subtract"}
    populations: list[Population] = []
    projections: list[Projection] = []
    previous, fan_in = [INPUT], n_inputs
    for layer, (size, n) in enumerate(zip(sizes, groups), start=1):
        layer_pops = []
        for j in range(1, n + 1):
            count = size // n + (1 if j <= size % n else 0)
            pop = Population(
                f"hidden{layer}_syn{j}", count, "lif", {**hidden_params, "tau_syn": taus[j - 1]}
            )
            populations.append(pop)
            layer_pops.append(pop.name)
            scale = weight_scale * (input_scale if layer == 1 else 1.0)
            std = initial_std(fan_in, tau_mem, taus[j - 1], taus[0], scale)
            projections.extend(Projection(source, pop.name, weight_std=std) for source in previous)
        previous, fan_in = layer_pops, size
    populations.append(
        Population("output", n_outputs, "li", {"tau_mem": tau_read, "tau_syn": tau_out})
    )
    std = readout_std(fan_in)
    projections.extend(Projection(source, "output", weight_std=std) for source in previous)
    spec = NetworkSpec(
        n_inputs,
        populations,
        projections,
        dt=dt,
        n_steps=n_steps,
        name=_label("synaptic-pyramid", [n_inputs, *sizes, n_outputs], name),
    )
    return spec.validate()


def wavesense(
    n_inputs: int,
    n_outputs: int,
    *,
    dilations: Sequence[int] = (1, 2, 4, 8, 16),
    kernel_size: int = 2,
    n_channels_res: int = 16,
    n_channels_skip: int = 32,
    n_hidden: int = 32,
    dilation: str = "both",
    tau_mem: float = 20.0,
    tau_syn_base: float = 20.0,
    tau_lp: float = 20.0,
    weight_scale: float = 0.5,
    input_scale: float = 3.0,
    dt: float = 1.0,
    n_steps: int = 1000,
    name: str | None = None,
) -> NetworkSpec:
    """WaveSense: WaveNet's stack of dilated temporal convolutions made of spiking neurons,
    for keyword spotting.

    The input spikes drive ``input_map`` (``n_channels_res`` LIF neurons).  Block ``b``
    (``dilations[b-1] = d``, powers of two by default) reads its input ``x`` (``input_map``
    or the previous block's ``block{b-1}_res``) through ``kernel_size`` taps: tap ``k`` is a
    population ``block{b}_tap{k}`` of ``n_channels_res`` LIF neurons that sees ``x`` ``k d``
    steps late (the convolution's dilated kernel).  How the lag is made (``dilation``):

    - ``"delay"``: a synaptic delay of ``k d`` steps (exact; the float simulator and Loihi);
    - ``"tau_syn"``: the paper's way, for chips without delays: tap ``k``'s synaptic time
      constant is ``max(1, k d) * tau_syn_base`` (Rockpool's ``WaveBlock``), so a longer
      tap integrates further back;
    - ``"both"`` (default): the delay and the longer time constant.

    The taps project onto ``block{b}_res`` (``n_channels_res``, the block's output to the
    next block) and ``block{b}_skip`` (``n_channels_skip``); every block's skip population
    projects onto ``hidden`` (``n_hidden`` LIF), which projects onto the readout ``output``
    (``li`` with no synaptic current: a low-pass filter of time constant ``tau_lp``, Rockpool's
    ``smooth_output``).  The last block's residual output would feed nothing and is left
    out.  Every projection is dense and feed-forward; initial weights by
    :func:`initial_std`, ``tau_ref = tau_syn_base``.  Defaults are Rockpool's
    ``WaveSenseNet`` (16 residual, 32 skip, 32 hidden channels, kernel 2, 20 ms time
    constants, 1 ms steps) with dilations 1 to 16; with these the longest delay is 16 steps
    (Loihi holds 62) and ``backend_class("loihi").check(spec)`` is empty.  ``weight_scale``
    0.5 and ``input_scale`` 3 are this workbench's, set on spoken digits at 16 channels (at
    1.0 and 1 the blocks' rates grew to ~300 Hz by block 5; at 0.5 and 1 block 3 fell silent).

    What the spec cannot express of the paper, and what stands in for it:

    - a neuron with one synaptic current per tap (Rockpool's ``LIFTorch`` with
      ``kernel_size`` synapses): a population has one ``tau_syn``, so each tap is a
      population of its own and the taps are summed by the next neurons (``res``, ``skip``)
      rather than inside one membrane before its threshold;
    - the residual sum ``res_out + x`` of spike trains: here a projection from the block's
      input onto ``block{b}_res`` (trained, not the identity), so the sum passes through the
      residual neurons;
    - the sum of every block's skip spikes before one shared dense layer: here each skip
      population has its own weights onto ``hidden`` (the same function class, more
      weights);
    - biases (``has_bias``): a population has a resting potential (``v_leak``), not a
      trained bias per neuron.

    Sources: Weidel & Sheik (2021), "WaveSense: efficient temporal convolutions with spiking
    neural networks for keyword spotting", arXiv 2111.01456; Rockpool
    ``rockpool.nn.networks.WaveSenseNet`` and ``WaveBlock``
    (``rockpool/nn/networks/wavesense.py``); van den Oord et al. (2016), "WaveNet: a
    generative model for raw audio", arXiv 1609.03499 (residual and skip connections over
    dilated causal convolutions).
    """
    problems: list[Problem] = []
    _check(problems, "n_inputs", n_inputs, _CHANNELS)
    _check(problems, "n_outputs", n_outputs, _SIZE)
    blocks = _check_list(problems, "dilations", dilations, _DILATION)
    _check(problems, "kernel_size", kernel_size, _KERNEL)
    for key, value in (
        ("n_channels_res", n_channels_res),
        ("n_channels_skip", n_channels_skip),
        ("n_hidden", n_hidden),
    ):
        _check(problems, key, value, _SIZE)
    if dilation not in DILATIONS:
        problems.append(
            Problem("dilation", f"{show(dilation)} must be one of {', '.join(DILATIONS)}")
        )
    for key, value in (("tau_mem", tau_mem), ("tau_syn_base", tau_syn_base), ("tau_lp", tau_lp)):
        _check(problems, key, value, _TAU)
    _check(problems, "weight_scale", weight_scale, _SCALE)
    _check(problems, "input_scale", input_scale, _SCALE)
    _check_name(problems, name)
    _raise(problems)
    delayed = dilation in ("both", "delay")
    stretched = dilation in ("both", "tau_syn")
    base = float(tau_syn_base)
    lif = {"tau_mem": float(tau_mem), "tau_syn": base}
    populations = [Population("input_map", n_channels_res, "lif", dict(lif))]
    projections = [
        Projection(
            INPUT,
            "input_map",
            weight_std=initial_std(n_inputs, tau_mem, base, None, weight_scale * input_scale),
        )
    ]
    block_input = "input_map"
    for b, d in enumerate(blocks, start=1):
        taps = []
        for k in range(kernel_size):
            tau = max(1, k * d) * base if stretched else base
            tap = Population(f"block{b}_tap{k}", n_channels_res, "lif", {**lif, "tau_syn": tau})
            populations.append(tap)
            taps.append(tap.name)
            std = initial_std(n_channels_res, tau_mem, tau, base, weight_scale)
            projections.append(
                Projection(block_input, tap.name, delay=k * d if delayed else 0, weight_std=std)
            )
        outputs = [(f"block{b}_skip", n_channels_skip)]
        if b < len(blocks):
            outputs.insert(0, (f"block{b}_res", n_channels_res))
        for out, size in outputs:
            populations.append(Population(out, size, "lif", dict(lif)))
            sources = taps + ([block_input] if out.endswith("_res") else [])
            std = initial_std(n_channels_res * len(sources), tau_mem, base, None, weight_scale)
            projections.extend(Projection(source, out, weight_std=std) for source in sources)
        block_input = f"block{b}_res"
    populations.append(Population("hidden", n_hidden, "lif", dict(lif)))
    std = initial_std(n_channels_skip * len(blocks), tau_mem, base, None, weight_scale)
    projections.extend(
        Projection(f"block{b}_skip", "hidden", weight_std=std) for b in range(1, len(blocks) + 1)
    )
    populations.append(
        Population("output", n_outputs, "li", {"tau_mem": float(tau_lp), "tau_syn": 0.0})
    )
    std = readout_std(n_hidden)
    projections.append(Projection("hidden", "output", weight_std=std))
    spec = NetworkSpec(
        n_inputs,
        populations,
        projections,
        dt=dt,
        n_steps=n_steps,
        name=_label("wavesense", [n_inputs, n_outputs], name),
    )
    return spec.validate()


# ----------------------------------------------------------------------------- by name
NETWORKS: dict[str, Callable[..., NetworkSpec]] = {
    "recurrent_lif": recurrent_lif,
    "synaptic_pyramid": synaptic_pyramid,
    "wavesense": wavesense,
}
# What build_network() fills in from the run (the data's channels and classes, its step).
_GIVEN = ("n_inputs", "n_outputs", "dt", "n_steps")
_REQUIRED = {"recurrent_lif": {"n_hidden": 128}}  # what a function requires beyond _GIVEN


def network_option_problems(network: str, options: dict) -> list[Problem]:
    """What is wrong with ``network``'s name and ``options`` (keyword arguments of its function
    other than the sizes and times a run gives), by field, before anything is built."""
    if network not in NETWORKS:
        return [
            Problem("network", f"{show(network)} is not known; choose one of {sorted(NETWORKS)}")
        ]
    params = inspect.signature(NETWORKS[network]).parameters
    allowed = sorted(k for k in params if k not in _GIVEN)
    problems = []
    for key in options:
        if key in _GIVEN:
            problems.append(
                Problem(
                    f"network_option.{key}",
                    "is given by the run (the data's channels and classes, --dt, --n-steps)",
                )
            )
        elif key not in params:
            problems.append(
                Problem(
                    f"network_option.{key}", f"is not an option of {network}; allowed: {allowed}"
                )
            )
    return problems


def build_network(
    network: str, n_inputs: int, n_outputs: int, dt: float, n_steps: int, **options
) -> NetworkSpec:
    """The spec of :data:`NETWORKS` ``[network]`` for a run: ``n_inputs`` channels,
    ``n_outputs`` classes, the run's ``dt`` and ``n_steps``, and ``options`` (checked by
    :func:`network_option_problems`; a required size without a default, as
    :func:`recurrent_lif`'s ``n_hidden``, defaults to 128)."""
    problems = network_option_problems(network, options)
    _raise(problems)
    options = {**_REQUIRED.get(network, {}), **options}
    given = {"dt": dt, "n_steps": n_steps}
    try:
        return NETWORKS[network](n_inputs=n_inputs, n_outputs=n_outputs, **given, **options)
    except SpecError as exc:  # an option's problem is named as the command line gives it
        raise SpecError([_as_option(p, options) for p in exc.problems]) from None


def _as_option(problem: Problem, options: dict) -> Problem:
    root = re.split(r"[.\[]", problem.path, maxsplit=1)[0]
    if root in options:
        return Problem(f"network_option.{problem.path}", problem.message)
    return problem
