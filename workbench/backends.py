"""Backends turn a :class:`~workbench.spec.NetworkSpec` into a ``torch.nn.Module``.

The forward contract is the same for every backend: input spikes ``[time, batch, inputs]``
in, a :class:`RunResult` out, holding the output population's trace (spikes for a spiking
population, the membrane for a leaky-integrator readout) and the recordings asked for.  The
float simulator lives here; chip emulators register themselves under their own names through
the ``workbench.backends`` entry point group, so ``build(spec, backend="xylo")`` needs no
change to the core.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch
from torch import nn

from workbench.catalog import BUILTIN_BACKEND, backend_entry_points
from workbench.fused import default_kernel, if_scan, lif_scan, project
from workbench.neurons import STEPS, Surrogate, initial_state, lif_parameters
from workbench.nonlinearity import with_mirror
from workbench.spec import INPUT, NetworkSpec, Projection, SpecError
from workbench.variation import (
    VariationProfile,
    draw_neurons,
    membrane_noise,
    noise_generator,
    range_problems,
    spec_problems,
)

RECORDED = ("v", "i", "spikes")  # what a recording holds per spiking population


class RunResult(NamedTuple):
    """What a backend's forward pass returns.

    ``output``: ``[time, batch, neurons]`` of the output population.  ``recordings``:
    ``{population: {"v": ..., "i": ..., "spikes": ...}}`` for the populations asked for, each
    ``[time, batch, neurons]`` (a leaky integrator has no ``spikes``).  ``first_spikes``:
    ``[batch, neurons]`` exact first-spike times (ms) of a spiking output, from backends that
    know spike times between steps (the event-driven simulator); ``None`` elsewhere.
    ``spike_times``: ``[batch, neurons, K]`` every exact spike time (ms, ``inf`` pads) of a
    spiking output, and ``membrane_averages``: ``[2, batch, neurons]`` the exact time averages
    ``(1/T) int_0^T V dt`` and ``(1/T) int_0^T exp(-t/T) V dt`` of a leaky-integrator output
    (:mod:`workbench.losses`), from the same backends; ``None`` elsewhere.
    """

    output: torch.Tensor
    recordings: dict[str, dict[str, torch.Tensor]]
    first_spikes: torch.Tensor | None = None
    spike_times: torch.Tensor | None = None
    membrane_averages: torch.Tensor | None = None


# --------------------------------------------------------------------------------- registry
_BACKENDS: dict[str, Callable[..., nn.Module]] = {}


def register_backend(name: str, builder: Callable[..., nn.Module]) -> None:
    """Make ``build(spec, backend=name)`` call ``builder(spec, **options)``."""
    _BACKENDS[name] = builder


def _load_plugins() -> None:
    """Register the entry points of the ``workbench.backends`` group (imported on first use;
    the group is scanned once per process, by :func:`workbench.catalog.backend_entry_points`)."""
    for name, ep in backend_entry_points().items():
        if name not in _BACKENDS:
            register_backend(name, _lazy(ep))


def _lazy(ep) -> Callable[..., nn.Module]:
    def builder(spec, **options):
        return ep.load()(spec, **options)

    builder.entry_point = ep
    return builder


def available_backends() -> list[str]:
    """Names of every registered backend (the float simulator first)."""
    _load_plugins()
    return [BUILTIN_BACKEND, *sorted(n for n in _BACKENDS if n != BUILTIN_BACKEND)]


def backend_class(backend: str):
    """The class behind a registered backend (an emulator's has ``check``, ``resources`` and
    ``make_profile``); ``None`` for a builder that is a plain function."""
    _load_plugins()
    if backend not in _BACKENDS:
        raise ValueError(f"backend: {backend!r} is not known; choose one of {available_backends()}")
    builder = _BACKENDS[backend]
    ep = getattr(builder, "entry_point", None)
    if ep is not None:
        return ep.load()
    return builder if isinstance(builder, type) else None


def build(spec: NetworkSpec, backend: str = "float", **options) -> nn.Module:
    """Build ``spec`` on ``backend``; ``options`` go to that backend (e.g. ``seed``)."""
    _load_plugins()
    if backend not in _BACKENDS:
        raise ValueError(f"backend: {backend!r} is not known; choose one of {available_backends()}")
    return _BACKENDS[backend](spec, **options)


# --------------------------------------------------------------------------------- float
def projection_key(proj: Projection) -> str:
    """The parameter name of a projection's weights (``source__target``)."""
    return f"{proj.source}__{proj.target}"


class FloatNetwork(nn.Module):
    """The float simulator: exact-propagator dynamics in ``dtype`` with surrogate gradients.

    Weights are parameters named by :func:`projection_key`, each ``[target, source]``, so a
    state dict moves unchanged to any other backend built from the same spec.

    Device variation (:mod:`workbench.variation`): ``profile`` (a
    :class:`~workbench.variation.VariationProfile`, or a dict of its figures as a run's
    ``backend_options["profile"]`` stores it) gives the neurons fixed-pattern mismatch, drawn
    once from ``chip_seed``, and the membranes temporal noise from ``noise_seed`` (default
    ``seed + 1``), as BrainScaleS-2 has them.  With every figure 0 (the default) nothing is
    drawn and the network is the plain simulator, bit for bit; otherwise each population runs
    :func:`~workbench.fused.lif_scan` with per-neuron parameters and noise (LIF and LI
    populations; :func:`~workbench.variation.spec_problems` refuses the rest by field).
    """

    backend_name = "float"
    speedup = 1.0  # how much faster than biological time the backend runs (chips override)
    profile_class = VariationProfile

    def __init__(
        self,
        spec: NetworkSpec,
        surrogate: Surrogate | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        profile: VariationProfile | dict | None = None,
        chip_seed: int = 0,
        noise_seed: int | None = None,
    ):
        super().__init__()
        # An emulator (hardware.base.EmulatedNetwork) sets its chip's profile after this.
        self.profile = FloatNetwork.make_profile(profile)
        self.chip_seed = chip_seed
        self.noise_seed = seed + 1 if noise_seed is None else noise_seed
        self.spec = spec
        self.surrogate = surrogate or Surrogate()
        self.dtype = dtype
        self.order = spec.order()  # validates the spec
        generator = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterDict()
        for proj in spec.projections:
            shape = (spec.size_of(proj.target), spec.size_of(proj.source))
            if proj.weights is not None:
                w = torch.tensor(proj.weights, dtype=dtype)
            else:
                std = proj.weight_std if proj.weight_std is not None else 1 / math.sqrt(shape[1])
                w = proj.weight_mean + std * torch.randn(shape, generator=generator, dtype=dtype)
            self.weights[projection_key(proj)] = nn.Parameter(w)
        self._delays = {
            projection_key(p): torch.tensor(p.delay, dtype=torch.long)
            for p in spec.projections
            if isinstance(p.delay, list)
        }
        self.fused = True  # use the fused LIF/LI/IF time loop where it applies
        # "compiled" (Numba loops and sparse input on the CPU) or "torch" (the reference).
        self.kernel = default_kernel()
        self.neuron_params = {
            pop.name: lif_parameters(pop.model, pop.params, spec.dt) for pop in spec.populations
        }
        self.synaptic_gain: dict[str, torch.Tensor] = {}  # per target neuron, where varied
        self.varied = self.profile.varies
        if self.varied:
            problems = spec_problems(spec)
            if problems:
                raise SpecError(problems)
            self.neuron_params, gains = draw_neurons(spec, self.profile, chip_seed, dtype)
            if self.profile.mismatch_synaptic_gain:
                self.synaptic_gain = gains
            self._noise = torch.Generator().manual_seed(self.noise_seed)
        self.neuron_params = with_mirror(self.neuron_params, self.profile)
        position = {name: k for k, name in enumerate(self.order)}
        # Layer by layer (whole time axis per population, one matrix product per projection)
        # works unless a recurrent projection comes from a population computed later.
        self.layerwise = all(
            p.source == INPUT or p.source == p.target or position[p.source] < position[p.target]
            for p in spec.projections
        )

    @classmethod
    def make_profile(cls, profile):
        """A profile: the default (None), the default with some figures changed (a dict, as a
        run's ``backend_options`` stores it), or ``profile`` itself; a figure outside the range
        its field declares is refused naming it (:func:`workbench.variation.range_problems`)."""
        if profile is None:
            return cls.profile_class()
        if isinstance(profile, dict):
            profile = dataclasses.replace(cls.profile_class(), **profile)
        problems = range_problems(profile)
        if problems:
            raise SpecError(problems)
        return profile

    # ------------------------------------------------------------------------- helpers
    def weight(self, proj: Projection) -> torch.Tensor:
        """The weights of ``proj`` as the network uses them: the stored ones, times each
        target neuron's synaptic gain where the variation profile draws one."""
        w = self.weights[projection_key(proj)]
        gain = self.synaptic_gain.get(proj.target)
        return w if gain is None else w * gain.to(w.device)[:, None]

    def energy(self, activity):
        """Energy per sample of ``activity`` (:class:`workbench.energy.Activity`) on this
        backend, term by term with the source of each price; the float simulator is priced as
        a CPU or GPU doing its arithmetic (:func:`workbench.energy.dense_energy`)."""
        from workbench.energy import dense_energy

        return dense_energy(self.spec, activity)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[2] != self.spec.input_size:
            raise ValueError(
                f"input: shape {tuple(x.shape)} must be [time, batch, {self.spec.input_size}]"
            )

    def wanted(self, record: bool | str | Iterable[str]) -> set[str]:
        """The populations a ``record`` argument asks for (True: all; a name; names)."""
        if isinstance(record, str):
            record = [record]
        wanted = set(self.order) if record is True else set(record or ())
        unknown = wanted - set(self.order)
        if unknown:
            raise ValueError(f"record: {sorted(unknown)} are not populations of {self.order}")
        return wanted

    def forward(self, x: torch.Tensor, record: bool | Iterable[str] = ()) -> RunResult:
        """Simulate ``x`` (``[time, batch, inputs]``); ``record`` names populations (or True)."""
        self._check_input(x)
        x = x.to(self.dtype)
        wanted = self.wanted(record)
        run = self._layerwise if self.layerwise else self._stepwise
        traces = run(x, wanted | {self.spec.output_name})
        out_pop = self.spec.population(self.spec.output_name)
        output = traces[out_pop.name]["spikes" if out_pop.spiking else "v"]
        recordings = {name: traces[name] for name in self.order if name in wanted}
        return RunResult(output, recordings)

    def _delayed_input(self, proj: Projection, delayed) -> torch.Tensor:
        """``sum_d W_d s(d)``: the input through ``proj``, where ``delayed(d)`` gives the source
        spikes ``d`` steps late and ``W_d`` holds the synapses of delay ``d``."""
        w = self.weight(proj)
        delays = self._delays.get(projection_key(proj))
        if delays is None:
            return project(delayed(int(proj.delay)), w, self.kernel)
        delays = delays.to(w.device)  # follows the module to another device
        total = 0
        for d in delays.unique().tolist():
            total = total + project(delayed(d), w * (delays == d), self.kernel)
        return total

    def _feedforward_current(self, proj: Projection, source: torch.Tensor) -> torch.Tensor:
        """``W s[t - delay]`` for the whole time axis at once; ``source`` is ``[T, B, n]``."""
        return self._delayed_input(proj, lambda d: _shift(source, d))

    def _layerwise(self, x: torch.Tensor, keep: set[str]) -> dict[str, dict]:
        spikes = {INPUT: x}
        traces = {}
        for name in self.order:
            pop = self.spec.population(name)
            external, recurrent = 0, []
            for proj in self.spec.incoming(name):
                if proj.source == name:
                    recurrent.append(proj)
                else:
                    delay_extra = 1 if proj.recurrent else 0
                    current = self._feedforward_current(proj, spikes[proj.source])
                    external = external + _shift(current, delay_extra)
            if not torch.is_tensor(external):
                external = x.new_zeros(x.shape[0], x.shape[1], pop.size)
            trace = self._run_population(name, external, recurrent, record=name in keep)
            spikes[name] = trace.get("spikes")
            traces[name] = trace
        return traces

    def _run_population(self, name, external, recurrent, record) -> dict[str, torch.Tensor]:
        """Step population ``name`` through time; ``external`` is its input ``[T, B, n]``."""
        pop = self.spec.population(name)
        p = self.neuron_params[name]
        if self.varied:
            return self._run_varied(pop, p, external, recurrent, record)
        if self.fused and _fusable(pop, p, recurrent):
            if pop.model == "if":
                output, v, i = if_scan(external, p, self.surrogate, self.kernel, record)
            else:
                w_rec = self.weight(recurrent[0]) if recurrent else None
                output, v, i = lif_scan(
                    external,
                    w_rec,
                    p,
                    pop.spiking,
                    self.surrogate,
                    kernel=self.kernel,
                    record=record,
                )
            if not pop.spiking:
                return {"v": v, "i": i}
            return {"spikes": output, "v": v, "i": i} if record else {"spikes": output}
        step = STEPS[pop.model]
        spike_fn = self.surrogate if pop.spiking else None
        n_steps, batch = external.shape[:2]
        state = initial_state((batch, pop.size), p, external.dtype, external.device)
        history = (
            []
            if not recurrent
            else [external.new_zeros(batch, pop.size)]
            * (1 + max(proj.max_delay for proj in recurrent))
        )
        vs, cs, zs = [], [], []
        for t in range(n_steps):
            current = external[t]
            for proj in recurrent:
                current = current + self._delayed_recurrent(proj, history)
            state, out = step(state, current, p, spike_fn)
            if recurrent:
                history = [out, *history[:-1]]
            zs.append(out)
            if record:
                vs.append(state.v)
                cs.append(state.i)
        if not pop.spiking:
            return (
                {"v": torch.stack(zs), "i": torch.stack(cs)} if record else {"v": torch.stack(zs)}
            )
        trace = {"spikes": torch.stack(zs)}
        if record:
            trace.update(v=torch.stack(vs), i=torch.stack(cs))
        return trace

    def _run_varied(self, pop, p, external, recurrent, record) -> dict[str, torch.Tensor]:
        """A population under the variation profile: the fused loop with its per-neuron
        parameters and, where the profile has it, membrane noise (as on BrainScaleS-2)."""
        noise = None
        if self.profile.membrane_noise:
            stream = self.order.index(pop.name)  # each population its own evaluation noise
            generator = noise_generator(self._noise, self.noise_seed, self.training, stream)
            noise = membrane_noise(self.profile.membrane_noise, p.beta, external, generator)
        w_rec = self.weight(recurrent[0]) if recurrent else None
        output, v, i = lif_scan(
            external, w_rec, p, pop.spiking, self.surrogate, noise, self.kernel, record
        )
        if not pop.spiking:
            return {"v": v, "i": i}
        return {"spikes": output, "v": v, "i": i} if record else {"spikes": output}

    def _delayed_recurrent(self, proj: Projection, history: list[torch.Tensor]) -> torch.Tensor:
        """Input through a projection from a spike history (``history[k]``: k steps ago)."""
        return self._delayed_input(proj, history.__getitem__)

    def stream(
        self, x: torch.Tensor, state: StreamState | None = None, record=()
    ) -> tuple[RunResult, StreamState]:
        """Run ``x`` (``[time, batch, inputs]``) as the next chunk of a longer signal, from
        ``state`` (None: rest, the start of the signal); returns the chunk's result and the
        state to pass with the next chunk, as a keyword spotter runs on a chip.

        Chunks run on the step-by-step path, so the chunks of a signal give, bit for bit, what
        that path gives for the whole signal at once (``network.layerwise = False``); the
        default whole-signal path (layer by layer, fused loops) sums in another order and
        agrees to float rounding.  Under a variation profile the chunks have the mismatch
        but not the membrane noise (that runs on the whole-signal path only), so a profile with
        ``membrane_noise`` is refused here."""
        if self.varied and self.profile.membrane_noise:
            raise ValueError(
                "stream: membrane noise runs on forward() only; set the profile's "
                "membrane_noise to 0 to stream"
            )
        self._check_input(x)
        x = x.to(self.dtype)
        wanted = self.wanted(record)
        traces, carry = self._steps(x, wanted | {self.spec.output_name}, state)
        out_pop = self.spec.population(self.spec.output_name)
        output = traces[out_pop.name]["spikes" if out_pop.spiking else "v"]
        recordings = {name: traces[name] for name in self.order if name in wanted}
        return RunResult(output, recordings), carry

    def _stepwise(self, x: torch.Tensor, keep: set[str]) -> dict[str, dict]:
        """General path: all populations advance together, one time step at a time."""
        return self._steps(x, keep, None)[0]

    def _steps(self, x: torch.Tensor, keep: set[str], carry: StreamState | None):
        n_steps, batch = x.shape[:2]
        spec = self.spec
        depth = 2 + max((p.max_delay for p in spec.projections), default=0)
        # history[name][k]: spikes of population ``name`` k steps before the current step
        # (k = 0 is the current step, filled as the populations of this step are computed).
        if carry is not None:
            if carry.batch != batch:
                raise ValueError(
                    f"state: carried for a batch of {carry.batch}; this chunk has {batch}"
                )
            history = {name: list(past) for name, past in carry.history.items()}
            states = dict(carry.states)
        else:
            history = {
                n: [x.new_zeros(batch, spec.size_of(n))] * depth for n in [INPUT, *self.order]
            }
            states = {}
            for name in self.order:
                p = self.neuron_params[name]
                states[name] = initial_state((batch, spec.size_of(name)), p, x.dtype, x.device)
        records = {name: {"v": [], "i": [], "spikes": []} for name in self.order}
        for t in range(n_steps):
            for name in history:
                history[name] = [x.new_zeros(batch, spec.size_of(name)), *history[name][:-1]]
            history[INPUT][0] = x[t]
            for name in self.order:
                pop = spec.population(name)
                current = 0
                for proj in spec.incoming(name):
                    past = history[proj.source][1 if proj.recurrent else 0 :]
                    current = current + self._delayed_recurrent(proj, past)
                state, out = STEPS[pop.model](
                    states[name],
                    current,
                    self.neuron_params[name],
                    self.surrogate if pop.spiking else None,
                )
                states[name] = state
                if pop.spiking:
                    history[name][0] = out
                rec = records[name]
                rec["spikes"].append(out)
                if name in keep:
                    rec["v"].append(state.v)
                    rec["i"].append(state.i)
        traces = {}
        for name in self.order:
            pop = spec.population(name)
            rec = records[name]
            if not pop.spiking:
                trace = {"v": torch.stack(rec["spikes"])}
                if name in keep:
                    trace["i"] = torch.stack(rec["i"])
            else:
                trace = {"spikes": torch.stack(rec["spikes"])}
                if name in keep:
                    trace.update(v=torch.stack(rec["v"]), i=torch.stack(rec["i"]))
            traces[name] = trace
        return traces, StreamState(history, states, batch)


class StreamState(NamedTuple):
    """Where a streamed signal stands after a chunk (:meth:`FloatNetwork.stream`): each
    population's neuron state and the recent spikes its delayed projections still need."""

    history: dict[str, list[torch.Tensor]]
    states: dict[str, object]
    batch: int


def _fusable(pop, p, recurrent: list[Projection]) -> bool:
    """Whether :func:`~workbench.fused.lif_scan` (or ``if_scan``) runs this population (else:
    the step loop)."""
    if p.refractory_steps != 0:
        return False
    if pop.model == "if":  # its input runs a step ahead, which a recurrent input cannot
        return not recurrent
    return pop.model in ("lif", "li") and (
        not recurrent or (len(recurrent) == 1 and recurrent[0].delay == 0)
    )


def _shift(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Delay a time-major tensor by ``steps`` (zeros enter at the start)."""
    if steps == 0:
        return x
    if steps >= x.shape[0]:
        return torch.zeros_like(x)
    return torch.cat([x.new_zeros(steps, *x.shape[1:]), x[:-steps]])


register_backend(BUILTIN_BACKEND, FloatNetwork)
