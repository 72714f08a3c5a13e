"""Event-driven simulation of current-based LIF networks with exact spike times, and EventProp.

The model is the ODE of :mod:`workbench.neurons` in continuous time (``v_leak = v_reset = 0``,
reset to zero, no refractory period)::

    tau_syn dI/dt = -I          I jumps by w when a presynaptic spike arrives
    tau_mem dV/dt = -V + I      V reaches the threshold: a spike, and V -> 0

Between events the solution is closed-form, ``V(t0 + u) = beta(u) V + p(u) I`` and
``I(t0 + u) = alpha(u) I`` with ``beta = exp(-u / tau_mem)``, ``alpha = exp(-u / tau_syn)``,
``p = tau_syn / (tau_mem - tau_syn) (beta - alpha)``.  ``V`` is a sum of two exponentials, so it
has at most one extremum between two events: whether it reaches the threshold is decided in
closed form, and the crossing time is found by bracketed Newton iteration to machine precision.
Spike times are therefore exact, not rounded to a time step; ``dt`` only places the input
spikes (the encoders' rasters) and the grid on which membranes are reported.

**The alif's AHP.**  An ``alif``'s after-hyperpolarising current ``a`` (jumps by
``adapt_strength`` at each spike, decays with ``tau_adapt``, enters ``V`` as ``-a``) is a third
exponential, and with it ``V`` can turn twice between events: the crossing test above no longer
holds, so :func:`event_problems` refuses ``tau_adapt != tau_syn``.  With ``tau_adapt ==
tau_syn`` (exactly equal, as the spec gives them) ``I - a`` obeys the synaptic current's own
equation, in ``neurons.lif_step``'s steps too (there ``adapt_decay = alpha`` and
``adapt_gain = current_gain``, and the AHP acts from the step after the spike): the AHP is a
fixed synapse of weight ``-adapt_strength`` from each neuron onto itself, without delay
(``Kernel.adapt``).  A feed-forward population takes it
with the reset (a spike steps ``I`` by ``-adapt`` as it steps ``V`` by ``-threshold``); a
recurrent one adds it to the diagonal of its recurrent weights (``event_kernels.with_ahp``),
where it moves the adjoint at spikes like any recurrent weight but is not trained.  A recorded
``i`` stays the synaptic current, as the float simulator records it; ``v`` includes the AHP.
An ``alif`` with ``adapt_strength = 0`` is a lif, whatever its ``tau_adapt``.

**Forward pass.**  A population without recurrent synapses is simulated spike by spike: for its
``k``-th spike, every neuron's state is known in closed form at every input event (one matrix
product per block of events), the first inter-event interval in which it crosses the threshold
is found for all neurons at once, and Newton's method places the crossing in it.  A reset is a
step of ``-threshold`` in ``V`` that decays with ``tau_mem``.  A population with a recurrent
projection onto itself is simulated event by event in time order (the next input spike or the
earliest crossing of any neuron, whichever comes first).  A leaky-integrator readout is a sum of
kernels ``p(t - s)`` over its input spikes, evaluated on the time grid.

**Backward pass (EventProp; Wunderlich & Pehle 2021).**  The adjoint of the ODE is integrated
backward in time in closed form (the transposed propagator) with jumps at spike times; only the
spike times and the currents at them are kept from the forward pass, so memory grows with the
number of spikes, not with the number of time steps.  Written with the sensitivities
``mu_V = dL/dV(t)`` and ``mu_I = dL/dI(t)`` (the adjoint variables of the paper up to the factors
``-tau_mem`` and ``-tau_syn``):

- between events: ``mu_V(t0) = beta(u) mu_V(t0 + u)``,
  ``mu_I(t0) = alpha(u) mu_I(t0 + u) + p(u) mu_V(t0 + u)``;
- at a spike of neuron ``n`` at ``t_k`` (``Vdot^- = (I - threshold) / tau_mem`` just before it):
  ``mu_V^- = mu_V^+ + (threshold / tau_mem) mu_V^+ / Vdot^- - g_k / Vdot^-``, where
  ``g_k = dL/dt_k + sum_m w_mn (mu_I,m / tau_syn - mu_V,m / tau_mem)`` collects the loss's own
  dependence on the spike time and the effect of moving the jumps it causes in its targets;
- the weight gradient: ``dL/dw_mn = sum over spikes of n of mu_I,m(t_spike)``.

For a leaky-integrator readout scored at grid times, the adjoint jumps by ``dL/dV(t_g)`` at
those times, which makes ``mu_I(s) = sum_g dL/dV(t_g) p(t_g - s)`` at an input spike ``s``.
A loss on an integral of the membrane, ``S = (1/T) int_0^T w(t) V(t) dt`` (the loss-shaping
losses of :mod:`workbench.losses`, with ``w = 1`` or ``exp(-t/T)``), is not a jump but a
continuous source: backward in time ``mu_V`` gains ``w(t) dL/dS / T`` per unit time besides its
decay, which integrates in closed form to ``mu_I(s) = dL/dS int_s^T w(t) p(t - s) dt / T`` and
``mu_V(s) = dL/dS int_s^T w(t) beta(t - s) dt / T`` at an input spike (:func:`averages_adjoint`);
the forward pass computes ``S`` exactly the same way (no time grid).  A loss on every spike time
of a spiking output (the van Rossum distance) enters through ``g_k = dL/dt_k`` at each spike.

**Two paths.**  The functions below are the plain torch reference: whole tensors at once, which
costs many small tensor operations per spike (and a Newton iteration over every neuron as long
as the slowest one needs).  :mod:`workbench.event_kernels` holds their compiled twins (Numba: one
sequential walk through the events per sample, parallel across the batch), which the network
uses when its ``kernel`` is ``"compiled"`` (the default on the CPU, as for the float simulator;
``"torch"`` or ``WORKBENCH_KERNEL=torch`` selects the reference).  The suite holds the two equal
in float64: spike times, membranes and gradients.

:class:`EventNetwork` is the ``event`` backend: the float simulator's parameters (a state dict
moves unchanged between the two) with this simulation as its forward pass, differentiable by
EventProp.  Its :class:`~workbench.backends.RunResult` carries exact first-spike times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial

import torch

from workbench import event_kernels, kernels
from workbench.backends import FloatNetwork, RunResult
from workbench.losses import average_kernels, exact_membrane_averages
from workbench.spec import INPUT, NetworkSpec, Problem, SpecError

NEWTON_STEPS = 60  # at most; stops when every crossing has converged
EVENT_BLOCK = 64  # input events per block of the closed-form state computation
GRID_BLOCK = 64  # grid times per block when reporting membranes on the time grid


# ------------------------------------------------------------------------------ one neuron type
@dataclass(frozen=True)
class Kernel:
    """Closed-form dynamics of one population (time constants in ms)."""

    tau_mem: float
    tau_syn: float
    threshold: float
    # An ``alif``'s AHP with ``tau_adapt == tau_syn``: each spike of a neuron makes its own
    # current jump by ``-adapt`` (a fixed self-inhibitory synapse, no delay); 0 for a lif.
    adapt: float = 0.0

    @property
    def c(self) -> float:
        return self.tau_syn / (self.tau_mem - self.tau_syn)

    def beta(self, u):
        return torch.exp(-u / self.tau_mem)

    def alpha(self, u):
        return torch.exp(-u / self.tau_syn)

    def p(self, u):
        """Membrane response ``u`` ms after a unit jump of the current."""
        return self.c * (torch.exp(-u / self.tau_mem) - torch.exp(-u / self.tau_syn))

    def dp(self, u):
        return self.c * (
            torch.exp(-u / self.tau_syn) / self.tau_syn
            - torch.exp(-u / self.tau_mem) / self.tau_mem
        )

    def advance(self, v, i, u):
        return self.beta(u) * v + self.p(u) * i, self.alpha(u) * i

    def _coefficients(self, v, i):
        # V(u) = a exp(-u / tau_mem) + b exp(-u / tau_syn)
        return v + self.c * i, -self.c * i

    def peak(self, v, i, h):
        """Whether ``V`` reaches the threshold within ``h`` ms of the state ``(v, i)``, and the
        end ``u_peak`` of the rising stretch in which it does (``V`` rises iff ``i > v``)."""
        a, b = self._coefficients(v, i)
        ratio = -b * self.tau_mem / (a * self.tau_syn)
        rate = 1.0 / self.tau_syn - 1.0 / self.tau_mem
        u_star = torch.log(ratio.clamp(min=1e-300)) / rate
        inside = (ratio > 0) & (u_star > 0) & (u_star < h)
        u_peak = torch.where(inside, u_star, h)
        v_peak = a * torch.exp(-u_peak / self.tau_mem) + b * torch.exp(-u_peak / self.tau_syn)
        crosses = (i > v) & (v < self.threshold) & (v_peak >= self.threshold) & (h > 0)
        return crosses, u_peak, v_peak

    def crossing(self, v, i, u_peak, v_peak, where=None):
        """The time ``u`` in ``(0, u_peak]`` where ``V`` rises through the threshold, for the
        entries marked by ``where`` (the others are left at 0)."""
        a, b = self._coefficients(v, i)
        theta = self.threshold
        if where is not None:
            u_peak = torch.where(where, u_peak, 0.0)
        lo = torch.zeros_like(v)
        hi = u_peak.clone()
        x = u_peak * ((theta - v) / (v_peak - v)).clamp(0.0, 1.0)
        x = torch.where(torch.isfinite(x), x, hi)
        tol = 8 * torch.finfo(v.dtype).eps
        for _ in range(NEWTON_STEPS):
            em, es = torch.exp(-x / self.tau_mem), torch.exp(-x / self.tau_syn)
            f = a * em + b * es - theta
            df = -a * em / self.tau_mem - b * es / self.tau_syn
            lo = torch.where(f < 0, x, lo)
            hi = torch.where(f > 0, x, hi)
            step = x - f / df
            ok = (step >= lo) & (step <= hi) & torch.isfinite(step)
            new = torch.where(ok, step, 0.5 * (lo + hi))
            new = torch.where(f == 0, x, new)
            scale = tol * (1.0 + x.abs())
            settled = ((new - x).abs() <= scale) | (hi - lo <= scale)
            x = new
            if settled.all():
                break
        return x


# ------------------------------------------------------------------------------ events
@dataclass
class Events:
    """Spikes arriving at a population, per sample in time order: ``time``, ``source`` (row
    of the stacked incoming weights; the last row is a zero row for padding) and ``amount``
    (spikes at that moment, 0 for padding), each ``[batch, events]``.  ``origin`` maps each
    event back to its place in the sources' flattened spike-time tensors (for gradients).

    Input spikes on a time grid come as one event per sample and step instead: ``counts``
    ``[batch, events, sources]`` holds the spikes of every source at that step (``source`` is
    then ``None``).  Spikes at one moment add their jumps at once whichever way they are
    applied, so this is the same dynamics with far fewer events: a step of 700 input channels
    is one event, not up to 700 (every event costs the simulation a pass over its targets)."""

    time: torch.Tensor
    source: torch.Tensor | None
    amount: torch.Tensor
    origin: torch.Tensor | None = None
    n_real: torch.Tensor | None = None  # real events per sample
    counts: torch.Tensor | None = None


def raster_to_events(x: torch.Tensor, dt: float, t_end: float) -> Events:
    """Input spikes from a raster ``[T, B, n]`` (values are spike counts): one event per sample
    and step that holds a spike, at time ``t * dt``, with the step's counts (``Events.counts``)."""
    n_steps, batch, n = x.shape
    counts = x.permute(1, 0, 2)  # [B, T, n]
    b, t = counts.any(2).nonzero(as_tuple=True)  # sorted by sample, then time
    per_sample = torch.bincount(b, minlength=batch)
    width = int(per_sample.max()) if len(b) else 0
    start = torch.cumsum(per_sample, 0) - per_sample
    rank = torch.arange(len(b)) - start[b]
    time = torch.full((batch, width), t_end, dtype=x.dtype)
    amount = torch.zeros((batch, width), dtype=x.dtype)
    step_counts = x.new_zeros(batch, width, n)
    time[b, rank] = t.to(x.dtype) * dt
    amount[b, rank] = 1.0
    step_counts[b, rank] = counts[b, t]
    return Events(time, None, amount, None, per_sample, step_counts)


def merge_spike_times(
    times: list[torch.Tensor], offsets: list[int], n_sources: int, t_end: float
) -> Events:
    """Events from the spike times ``[B, n_s, K]`` (``inf``: none) of several sources whose
    weights are stacked at ``offsets``, sorted by time per sample.  ``origin`` indexes the
    concatenation of the sources' flattened ``[n_s * K]`` spike times.

    Only the spike columns some neuron reaches are sorted (a neuron's spikes fill its first
    columns, and most of ``K`` is usually ``inf``); the order is the same as sorting them all."""
    flat_t, flat_src, flat_at = [], [], []
    start = 0
    for t, offset in zip(times, offsets):
        batch, n, k = t.shape
        used = int(torch.isfinite(t).sum(2).max()) if t.numel() else 0
        flat_t.append(t[:, :, :used].reshape(batch, n * used))
        flat_src.append((offset + torch.arange(n).repeat_interleave(used)).expand(batch, n * used))
        at = start + torch.arange(n)[:, None] * k + torch.arange(used)[None, :]
        flat_at.append(at.reshape(-1))
        start += n * k
    time = torch.cat(flat_t, 1)
    source = torch.cat(flat_src, 1)
    order = torch.argsort(time, dim=1, stable=True)
    time = time.gather(1, order)
    source = source.gather(1, order)
    order = torch.cat(flat_at)[order]  # the place in the untrimmed layout
    real = torch.isfinite(time)
    n_real = real.sum(1)
    width = int(n_real.max()) if time.numel() else 0
    time, source, order, real = (
        time[:, :width],
        source[:, :width],
        order[:, :width],
        real[:, :width],
    )
    time = torch.where(real, time, torch.full_like(time, t_end))
    source = torch.where(real, source, torch.full_like(source, n_sources))
    return Events(time, source, real.to(time.dtype), order, n_real)


def event_weights(events: Events, w_t: torch.Tensor) -> torch.Tensor:
    """``[B, E, n]``: the jump each event causes in each target neuron's current; ``w_t`` is the
    stacked ``[sources + 1, targets]`` weight matrix (last row zero)."""
    if events.counts is not None:
        return events.counts @ w_t[:-1]
    return w_t[events.source] * events.amount[..., None]


def weight_gradient(events: Events, mu_i: torch.Tensor, rows: int) -> torch.Tensor:
    """dL/d(stacked weights) ``[rows + 1, n]`` from ``mu_I`` at each event ``[B, E, n]``: the
    gradient of a weight is the sum of ``mu_I`` of its target over the events of its source."""
    n_target = mu_i.shape[2]
    if events.counts is not None:
        grad = torch.einsum("bes,ben->sn", events.counts, mu_i)
        return torch.cat([grad, grad.new_zeros(1, n_target)])
    grad = mu_i.new_zeros(rows + 1, n_target)
    grad.index_add_(
        0, events.source.reshape(-1), (mu_i * events.amount[..., None]).reshape(-1, n_target)
    )
    return grad


def states_after_events(events: Events, jumps: torch.Tensor, kernel: Kernel):
    """``(V, I)`` of every target neuron just after each event, ``[B, E, n]`` each (no resets)."""
    batch, width, n = jumps.shape
    v_all = jumps.new_empty(batch, width, n)
    i_all = jumps.new_empty(batch, width, n)
    v = jumps.new_zeros(batch, 1, n)
    i = jumps.new_zeros(batch, 1, n)
    t_carry = events.time[:, :1]
    for lo in range(0, width, EVENT_BLOCK):
        hi = min(lo + EVENT_BLOCK, width)
        s = events.time[:, lo:hi]
        gap = (s[:, :, None] - s[:, None, :]).clamp(min=0)
        causal = torch.ones(hi - lo, hi - lo, dtype=torch.bool).tril()
        zero = jumps.new_zeros(())
        decay_i = torch.where(causal, kernel.alpha(gap), zero)
        decay_v = torch.where(causal, kernel.p(gap), zero)
        since = (s - t_carry)[..., None]
        block_v, block_i = kernel.advance(v, i, since)
        i_all[:, lo:hi] = decay_i @ jumps[:, lo:hi] + block_i
        v_all[:, lo:hi] = decay_v @ jumps[:, lo:hi] + block_v
        v, i = v_all[:, hi - 1 : hi], i_all[:, hi - 1 : hi]
        t_carry = s[:, -1:]
    return v_all, i_all


# ------------------------------------------------------------------------------ populations
def lif_forward(events: Events, jumps, kernel: Kernel, t_end: float, max_spikes: int):
    """Spike times ``[B, n, K]`` (``inf``: none) and the current at each spike, of a population
    without recurrent synapses, spike by spike."""
    batch, width, n = jumps.shape
    times = jumps.new_full((batch, n, max_spikes), math.inf)
    currents = jumps.new_zeros(batch, n, max_spikes)
    if width == 0:
        return times, currents
    v_ev, i_ev = states_after_events(events, jumps, kernel)
    s = events.time[:, :, None]  # [B, E, 1]
    ends = torch.cat([events.time[:, 1:], events.time.new_full((batch, 1), t_end)], 1)[..., None]
    last = jumps.new_full((batch, 1, n), -math.inf)  # time of the previous spike
    # the pull of the resets (and of the AHP's jumps in I) on V and I at that time
    debt_v = jumps.new_zeros(batch, 1, n)
    debt_i = jumps.new_zeros(batch, 1, n)
    active = torch.ones(batch, n, dtype=torch.bool)
    for k in range(max_spikes):
        start = torch.maximum(s, last)
        v0, i0 = kernel.advance(v_ev, i_ev, start - s)
        pull_v, pull_i = kernel.advance(debt_v, debt_i, start - last)
        v0, i0 = v0 - pull_v, i0 - pull_i
        crosses, u_peak, v_peak = kernel.peak(v0, i0, ends - start)
        crosses &= active[:, None, :]
        fires = crosses.any(1)
        if not fires.any():
            break
        first = crosses.to(torch.int8).argmax(1, keepdim=True)  # [B, 1, n]

        v1, i1, up1, vp1, start1 = (
            x.expand(batch, width, n).gather(1, first) for x in (v0, i0, u_peak, v_peak, start)
        )
        u = kernel.crossing(v1, i1, up1, vp1, where=fires[:, None, :])
        t_k = start1 + u
        i_k = i1 * kernel.alpha(u)
        fired = fires[:, None, :]
        times[:, :, k] = torch.where(fires, t_k[:, 0], times[:, :, k])
        currents[:, :, k] = torch.where(fires, i_k[:, 0], currents[:, :, k])
        # V falls from the threshold to 0 (the reset) and I by the AHP's jump
        pull_v, pull_i = kernel.advance(debt_v, debt_i, t_k - last)
        debt_v = torch.where(fired, pull_v + kernel.threshold, debt_v)
        debt_i = torch.where(fired, pull_i + kernel.adapt, debt_i)
        last = torch.where(fired, t_k, last)
        active &= fires
    return times, currents


def lif_adjoint(times, currents, g, events: Events, jumps, kernel: Kernel):
    """EventProp through a population without recurrent synapses: ``g`` ``[B, n, K]`` is dL/dt
    of each of its spikes.  Returns ``mu_I`` at each input event ``[B, E, n]`` (the gradient of
    each event's jump) and dL/d(event time) ``[B, E]``."""
    batch, n, max_spikes = times.shape
    finite = torch.isfinite(times)
    t = torch.where(finite, times, torch.zeros_like(times))
    vdot = (currents - kernel.threshold) / kernel.tau_mem
    vdot = torch.where(finite, vdot, torch.ones_like(vdot))
    jump = torch.zeros_like(times)
    mu_after = torch.zeros_like(times[:, :, 0])  # mu_V just after spike k
    mu_i_after = torch.zeros_like(mu_after)  # mu_I just after spike k (needed for the AHP)
    for k in reversed(range(max_spikes)):
        if not finite[:, :, k].any():
            continue
        # the AHP is a fixed self-synapse of weight -adapt: moving the spike moves its jump
        g_k = g[:, :, k] - kernel.adapt * (mu_i_after / kernel.tau_syn - mu_after / kernel.tau_mem)
        j = (kernel.threshold / kernel.tau_mem) * mu_after / vdot[:, :, k] - g_k / vdot[:, :, k]
        j = torch.where(finite[:, :, k], j, torch.zeros_like(j))
        jump[:, :, k] = j
        if k > 0:
            gap = torch.where(finite[:, :, k], t[:, :, k] - t[:, :, k - 1], torch.zeros_like(j))
            before = mu_after + j
            mu_i_after = torch.where(
                finite[:, :, k],
                kernel.alpha(gap) * mu_i_after + kernel.p(gap) * before,
                mu_i_after,
            )
            mu_after = torch.where(finite[:, :, k], kernel.beta(gap) * before, mu_after)
    s = events.time[:, :, None]  # [B, E, 1]
    mu_v = jumps.new_zeros(jumps.shape)
    mu_i = jumps.new_zeros(jumps.shape)
    for k in range(max_spikes):
        if not finite[:, :, k].any():
            break
        gap = t[:, None, :, k] - s  # [B, E, n]
        later = (gap > 0) & finite[:, None, :, k]
        gap = gap.clamp(min=0)
        j = jump[:, None, :, k]
        mu_v = mu_v + torch.where(later, j * kernel.beta(gap), 0.0)
        mu_i = mu_i + torch.where(later, j * kernel.p(gap), 0.0)
    return mu_i, _time_sensitivity(jumps, mu_v, mu_i, kernel)


def _time_sensitivity(jumps, mu_v, mu_i, kernel: Kernel):
    """dL/d(arrival time) of each event: a jump ``w`` arriving ``dt`` later leaves
    ``dI = w dt / tau_syn`` and ``dV = -w dt / tau_mem`` behind."""
    return (jumps * (mu_i / kernel.tau_syn - mu_v / kernel.tau_mem)).sum(-1)


def recurrent_forward(events: Events, jumps, w_rec, kernel: Kernel, t_end: float, max_spikes):
    """Spike times of a population with recurrent synapses ``w_rec`` ``[n, n]`` (target,
    source), simulated event by event; also the log of events for the adjoint pass.  An
    alif's AHP (``kernel.adapt``) is one more fixed synapse of each neuron onto itself."""
    batch, width, n = jumps.shape
    w_rec = event_kernels.with_ahp(w_rec, kernel)
    rows = torch.arange(batch)
    v = jumps.new_zeros(batch, n)
    i = jumps.new_zeros(batch, n)
    now = jumps.new_zeros(batch)
    pointer = torch.zeros(batch, dtype=torch.long)
    n_real = events.n_real if events.n_real is not None else torch.full((batch,), width)
    count = torch.zeros(batch, n, dtype=torch.long)
    times = jumps.new_full((batch, n, max_spikes), math.inf)
    currents = jumps.new_zeros(batch, n, max_spikes)
    log = []
    while True:
        more = pointer < n_real
        safe = pointer.clamp(max=max(width - 1, 0))
        next_input = (
            torch.where(more, events.time[rows, safe], jumps.new_full((batch,), t_end))
            if width
            else jumps.new_full((batch,), t_end)
        )
        h = (next_input - now)[:, None].expand(batch, n)
        crosses, u_peak, v_peak = kernel.peak(v, i, h)
        crosses &= count < max_spikes
        u = torch.where(crosses, kernel.crossing(v, i, u_peak, v_peak, where=crosses), math.inf)
        u_min, who = u.min(1)
        spike = torch.isfinite(u_min)
        arrive = ~spike & more
        if not (spike | arrive).any():
            break
        step = torch.where(spike, u_min, torch.where(arrive, next_input - now, 0.0))
        v, i = kernel.advance(v, i, step[:, None])
        now = torch.where(arrive, next_input, now + step)
        k = count[rows, who]
        i_pre = i[rows, who]
        b = spike.nonzero(as_tuple=True)[0]
        times[b, who[b], k[b]] = now[b]
        currents[b, who[b], k[b]] = i_pre[b]
        count[b, who[b]] += 1
        v[b, who[b]] = 0.0
        i = i + torch.where(spike[:, None], w_rec[:, who].T, 0.0)
        if width:
            i = i + torch.where(arrive[:, None], jumps[rows, safe], 0.0)
        log.append((spike, arrive, now.clone(), who, k, safe))
        pointer = pointer + arrive.long()
    return times, currents, log


def recurrent_adjoint(log, currents, g, events: Events, jumps, w_rec, kernel: Kernel, t_end):
    """EventProp through a recurrent population: the event log of :func:`recurrent_forward`
    replayed backward.  Returns ``(mu_I at input events, dL/d event time, dL/dw_rec)``; the
    AHP's fixed diagonal (``kernel.adapt``) moves the adjoint at spikes but is not trained."""
    batch, width, n = jumps.shape
    w_rec = event_kernels.with_ahp(w_rec, kernel)
    mu_v = jumps.new_zeros(batch, n)
    mu_i = jumps.new_zeros(batch, n)
    now = jumps.new_full((batch,), t_end)
    event_mu_i = jumps.new_zeros(batch, width, n)
    event_mu_v = jumps.new_zeros(batch, width, n)
    grad_rec = torch.zeros_like(w_rec)
    for spike, arrive, time, who, k, safe in reversed(log):
        happened = spike | arrive
        u = torch.where(happened, now - time, 0.0)[:, None]
        mu_v, mu_i = kernel.beta(u) * mu_v, kernel.alpha(u) * mu_i + kernel.p(u) * mu_v
        now = torch.where(happened, time, now)
        if width:
            b = arrive.nonzero(as_tuple=True)[0]
            event_mu_i[b, safe[b]] = mu_i[b]
            event_mu_v[b, safe[b]] = mu_v[b]
        b = spike.nonzero(as_tuple=True)[0]
        if len(b):
            src = who[b]
            grad_rec.index_add_(1, src, mu_i[b].T)
            pull = mu_i[b] / kernel.tau_syn - mu_v[b] / kernel.tau_mem  # [b, n]
            g_k = g[b, src, k[b]] + (w_rec[:, src].T * pull).sum(1)
            vdot = (currents[b, src, k[b]] - kernel.threshold) / kernel.tau_mem
            after = mu_v[b, src]
            mu_v[b, src] = after + (kernel.threshold / kernel.tau_mem) * after / vdot - g_k / vdot
    return event_mu_i, _time_sensitivity(jumps, event_mu_v, event_mu_i, kernel), grad_rec


def li_forward(events: Events, jumps, kernel: Kernel, grid: torch.Tensor):
    """Membrane ``V`` and current ``I`` of a leaky integrator at the grid times, ``[G, B, n]``."""
    batch, width, n = jumps.shape
    v = jumps.new_zeros(len(grid), batch, n)
    i = jumps.new_zeros(len(grid), batch, n)
    for lo in range(0, len(grid), GRID_BLOCK):
        t = grid[lo : lo + GRID_BLOCK]
        gap = t[None, :, None] - events.time[:, None, :]  # [B, G, E]
        after = gap >= 0
        gap = gap.clamp(min=0)
        v[lo : lo + len(t)] = (torch.where(after, kernel.p(gap), 0.0) @ jumps).transpose(0, 1)
        i[lo : lo + len(t)] = (torch.where(after, kernel.alpha(gap), 0.0) @ jumps).transpose(0, 1)
    return v, i


def li_adjoint(grad_v, events: Events, jumps, kernel: Kernel, grid: torch.Tensor):
    """EventProp through a leaky integrator read at the grid times: the adjoint jumps by
    ``dL/dV(t_g)`` at each grid time ``t_g``."""
    mu_i = torch.zeros_like(jumps)
    mu_v = torch.zeros_like(jumps)
    for lo in range(0, len(grid), GRID_BLOCK):
        t = grid[lo : lo + GRID_BLOCK]
        gv = grad_v[lo : lo + len(t)].transpose(0, 1)  # [B, G, n]
        if not gv.any():
            continue
        gap = t[None, None, :] - events.time[:, :, None]  # [B, E, G]
        after = gap > 0
        gap = gap.clamp(min=0)
        mu_i = mu_i + torch.where(after, kernel.p(gap), 0.0) @ gv
        mu_v = mu_v + torch.where(after, kernel.beta(gap), 0.0) @ gv
    return mu_i, _time_sensitivity(jumps, mu_v, mu_i, kernel)


def averages_adjoint(grad, events: Events, kernel: Kernel, t_end: float):
    """EventProp through a leaky integrator's exact time averages
    (:func:`workbench.losses.exact_membrane_averages`): ``grad`` ``[2, B, n]`` is dL/dS of the
    plain and the ``exp(-t/T)``-weighted average.  The loss ``S = (1/T) int w(t) V(t) dt``
    enters the adjoint as the continuous source ``w(t) dL/dS / T`` on ``mu_V``; integrated in
    closed form backward from ``T`` to an event at ``s`` it leaves
    ``mu_V(s) = sum_w dL/dS_w R_w(s) / T`` and ``mu_I(s) = sum_w dL/dS_w Q_w(s) / T``
    (:func:`workbench.losses.average_kernels`).  Returns ``(mu_I, mu_V)`` at each event
    ``[B, E, n]``."""
    q, r = average_kernels(events.time, kernel.tau_mem, kernel.tau_syn, t_end)
    mu_i = torch.einsum("wbe,wbn->ben", q, grad) / t_end
    mu_v = torch.einsum("wbe,wbn->ben", r, grad) / t_end
    return mu_i, mu_v


def lif_grid(events: Events, jumps, times, kernel: Kernel, grid: torch.Tensor, free=None):
    """``V`` and ``I`` of a spiking population at the grid times (resets included); ``free``:
    its ``(V, I)`` without resets if already computed (:func:`li_forward`).  An ``alif``'s AHP
    (``kernel.adapt``) pulls ``V`` down too; ``I`` stays the synaptic current, as the float
    simulator records it (the AHP is its own state there)."""
    v, i = free if free is not None else li_forward(events, jumps, kernel, grid)
    for k in range(times.shape[2]):
        t = times[:, :, k]  # [B, n]
        if not torch.isfinite(t).any():
            break
        gap = grid[:, None, None] - torch.where(torch.isfinite(t), t, math.inf)
        after = gap.clamp(min=0)
        pull = kernel.threshold * kernel.beta(after) + kernel.adapt * kernel.p(after)
        v = v - torch.where(gap > 0, pull, 0.0)
    return v, i


def spike_raster(times: torch.Tensor, dt: float, n_steps: int) -> torch.Tensor:
    """``[T, B, n]`` spike counts: a spike in ``((t - 1) dt, t dt]`` counts in step ``t`` (the
    step at whose end the time-stepped simulator would see the crossing)."""
    batch, n, _ = times.shape
    out = times.new_zeros(n_steps, batch, n)
    finite = torch.isfinite(times) & (times < n_steps * dt)
    b, j, k = finite.nonzero(as_tuple=True)
    step = torch.ceil(times[b, j, k] / dt - 1e-9).long().clamp(0, n_steps - 1)
    out.index_put_((step, b, j), torch.ones_like(step, dtype=times.dtype), accumulate=True)
    return out


class SpikingTraces(Mapping):
    """The recording of a spiking population, ``{"spikes", "v", "i"}`` (``[T, B, n]`` each),
    read like a dict: ``spikes`` is computed at once, ``v`` and ``i`` on the grid when first
    read.  Those two are most of the cost and memory of a recorded forward pass (for the
    Yin-Yang network, 2 x 500 x 32 x 200 values per batch), and evaluation reads only the
    spikes."""

    def __init__(self, spikes: torch.Tensor, states):
        self._values = {"spikes": spikes}
        self._states = states  # () -> (v, i)

    def __getitem__(self, key):
        if key in ("v", "i") and "v" not in self._values:
            with torch.no_grad():
                self._values["v"], self._values["i"] = self._states()
            self._states = None
        return self._values[key]

    def __iter__(self):
        return iter(("spikes", "v", "i"))

    def __len__(self):
        return 3


# ------------------------------------------------------------------------------ the network
def event_problems(spec: NetworkSpec) -> list[Problem]:
    """Why ``spec`` cannot run on the event-driven simulator (empty when it can)."""
    out = []
    for k, pop in enumerate(spec.populations):
        path = f"populations[{k}]"
        if pop.model not in ("lif", "alif", "li"):
            out.append(
                Problem(
                    f"{path}.model", f"{pop.model!r} must be 'lif', 'alif' or 'li' (event backend)"
                )
            )
            continue
        params = pop.params  # the model's defaults filled in by Population
        if (
            pop.model == "alif"
            and params["adapt_strength"] != 0
            and params["tau_adapt"] != params["tau_syn"]
        ):
            out.append(
                Problem(
                    f"{path}.params.tau_adapt",
                    f"{params['tau_adapt']!r} must equal tau_syn ({params['tau_syn']!r}) on the "
                    "event backend: exact spike times need V to be a sum of two exponentials "
                    "between events, and a third time constant (the AHP's) breaks the "
                    "closed-form crossing test; with tau_adapt == tau_syn the AHP is a fixed "
                    "self-inhibitory synapse.  The float backend runs any tau_adapt",
                )
            )
        if params["tau_syn"] == 0:
            out.append(
                Problem(
                    f"{path}.params.tau_syn",
                    "0 (no synaptic current) must be > 0 (event backend: its spike times and "
                    "adjoints need a continuous membrane, a sum of two exponentials with "
                    "tau_syn > 0; a delta synapse makes V jump at the input spike)",
                )
            )
        elif params["tau_mem"] == params["tau_syn"]:
            out.append(
                Problem(f"{path}.params.tau_syn", "must differ from tau_mem (event backend)")
            )
        if params["v_leak"] != 0.0:
            out.append(
                Problem(f"{path}.params.v_leak", f"{params['v_leak']!r} must be 0 (event backend)")
            )
        if pop.spiking:
            for name, allowed in (("reset", "zero"), ("v_reset", 0.0), ("refractory_steps", 0)):
                if params[name] != allowed:
                    out.append(
                        Problem(
                            f"{path}.params.{name}",
                            f"{params[name]!r} must be {allowed!r} (event backend)",
                        )
                    )
    for k, proj in enumerate(spec.projections):
        if proj.max_delay != 0:
            out.append(Problem(f"projections[{k}].delay", "must be 0 (event backend)"))
        if proj.source == proj.target and not spec.population(proj.target).spiking:
            out.append(Problem(f"projections[{k}]", "a leaky integrator cannot be recurrent"))
        elif proj.recurrent and proj.source != proj.target:
            out.append(
                Problem(
                    f"projections[{k}].recurrent",
                    "only a population's projection onto itself may be recurrent (event backend)",
                )
            )
    return out


class _Simulation:
    """One forward pass through the whole network, kept for the adjoint pass."""

    def __init__(self, net: EventNetwork, x: torch.Tensor):
        spec = net.spec
        self.net = net
        self.dt = spec.dt
        self.n_steps = x.shape[0]
        self.t_end = self.n_steps * spec.dt
        self.grid = torch.arange(self.n_steps, dtype=net.dtype) * spec.dt
        self.input = raster_to_events(x, spec.dt, self.t_end)
        self.pops = {}  # name -> dict of what the forward pass produced
        # the compiled loops (event_kernels) or the torch reference, as the network's kernel
        self.compiled = net.kernel == "compiled" and kernels.available(x)

    # Each population's simulation and adjoint on the compiled loops or the torch reference.
    def leaky(self, events, jumps, kernel):
        if self.compiled:
            return event_kernels.leaky_grid(events, jumps, kernel, self.grid)
        return li_forward(events, jumps, kernel, self.grid)

    def leaky_adjoint(self, grad_v, events, jumps, kernel):
        if self.compiled:
            mu_i, mu_v = event_kernels.leaky_adjoint(grad_v, events, jumps, kernel, self.grid)
            return mu_i, _time_sensitivity(jumps, mu_v, mu_i, kernel)
        return li_adjoint(grad_v, events, jumps, kernel, self.grid)

    def spiking(self, events, jumps, kernel):
        run = event_kernels.feedforward_spikes if self.compiled else lif_forward
        return run(events, jumps, kernel, self.t_end, self.net.max_spikes)

    def spiking_adjoint(self, times, currents, grad_t, events, jumps, kernel):
        if self.compiled:
            mu_i, mu_v = event_kernels.feedforward_adjoint(
                times, currents, grad_t, events, jumps, kernel
            )
            return mu_i, _time_sensitivity(jumps, mu_v, mu_i, kernel)
        return lif_adjoint(times, currents, grad_t, events, jumps, kernel)

    def recurrent(self, events, jumps, w_rec, kernel):
        run = event_kernels.recurrent_spikes if self.compiled else recurrent_forward
        return run(events, jumps, w_rec, kernel, self.t_end, self.net.max_spikes)

    def recurrent_adjoint(self, log, currents, grad_t, events, jumps, w_rec, kernel):
        if self.compiled:
            mu_i, mu_v, grad_rec = event_kernels.recurrent_adjoint(
                log, currents, grad_t, events, jumps, w_rec, kernel, self.t_end
            )
            return mu_i, _time_sensitivity(jumps, mu_v, mu_i, kernel), grad_rec
        return recurrent_adjoint(log, currents, grad_t, events, jumps, w_rec, kernel, self.t_end)

    def grid_states(self, state, kernel):
        """``V`` and ``I`` of a spiking population on the grid, resets (and an alif's AHP)
        included, and the jumps of its recurrent synapses if it has any."""
        free = state.get("free")
        if free is None:
            free = self.leaky(state["events"], state["jumps"], kernel)
        if state["rec"] is not None:
            # the population's own spikes through its recurrent weights, on top of its input
            times, w_rec = state["times"], state["w_rec"]
            n = times.shape[1]
            own = merge_spike_times([times], [0], n, self.t_end)
            w_t = torch.cat([w_rec.T, w_rec.new_zeros(1, n)], 0)
            v_rec, i_rec = self.leaky(own, event_weights(own, w_t), kernel)
            free = (free[0] + v_rec, free[1] + i_rec)
        if not self.compiled:
            args = (state["events"], state["jumps"], state["times"], kernel, self.grid)
            return lif_grid(*args, free)
        v, i = free[0].clone(), free[1]  # the free membrane stays as the adjoint's
        event_kernels.subtract_resets(v, state["times"], kernel, self.grid)
        return v, i

    def incoming(self, name):
        spec = self.net.spec
        feed = [p for p in spec.incoming(name) if p.source != name]
        rec = [p for p in spec.incoming(name) if p.source == name]
        return feed, (rec[0] if rec else None)

    def stacked(self, feed, weights):
        w = [weights[self.net.index[p.name]].T for p in feed]
        return torch.cat([*w, w[0].new_zeros(1, w[0].shape[1])], 0)

    @torch.no_grad()
    def run(self, weights):
        net, spec = self.net, self.net.spec
        outputs = []
        for name in net.order:
            pop = spec.population(name)
            kernel = net.kernels[name]
            feed, rec = self.incoming(name)
            offsets, sources, total = [], [], 0
            for p in feed:
                offsets.append(total)
                sources.append(p.source)
                total += spec.size_of(p.source)
            if sources == [INPUT]:
                events = self.input
            else:
                if INPUT in sources:
                    raise SpecError(
                        [
                            Problem(
                                f"populations.{name}", "cannot mix input and spikes (event backend)"
                            )
                        ]
                    )
                events = merge_spike_times(
                    [self.pops[s]["times"] for s in sources], offsets, total, self.t_end
                )
            w_t = self.stacked(feed, weights)
            jumps = event_weights(events, w_t)
            state = {"events": events, "jumps": jumps, "feed": feed, "rec": rec, "offsets": offsets}
            if not pop.spiking:
                state["v"], state["i"] = self.leaky(events, jumps, kernel)
                outputs.append(state["v"])
            elif rec is None:
                state["times"], state["currents"] = self.spiking(events, jumps, kernel)
                outputs.append(state["times"])
            else:
                w_rec = weights[net.index[rec.name]]
                state["times"], state["currents"], state["log"] = self.recurrent(
                    events, jumps, w_rec, kernel
                )
                state["w_rec"] = w_rec
                outputs.append(state["times"])
            self.pops[name] = state
        # The spiking output's free membrane (no resets) at its highest grid point: for a neuron
        # that stays silent this is its membrane's peak, which a loss can push up (a missing
        # spike time has no gradient).
        out = self.pops[spec.output_name]
        if "times" in out:
            out["free"] = self.leaky(out["events"], out["jumps"], net.kernels[spec.output_name])
            peak, out["peak_at"] = out["free"][0].max(0)
            outputs.append(peak)
        else:  # a leaky-integrator output's exact time averages (the loss-shaping losses)
            kernel = net.kernels[spec.output_name]
            outputs.append(
                exact_membrane_averages(
                    out["events"].time, out["jumps"], kernel.tau_mem, kernel.tau_syn, self.t_end
                )
            )
        return outputs

    @torch.no_grad()
    def adjoint(self, grads, weights):
        net, spec = self.net, self.net.spec
        g = {}
        # the output's extra: the spiking output's peak, or the leaky integrator's averages
        extra = grads[len(net.order)] if len(grads) > len(net.order) else None
        if extra is not None and not extra.any():
            extra = None
        for name, grad in zip(net.order, grads):
            state = self.pops[name]
            shape = state["v"].shape if "v" in state else state["times"].shape
            g[name] = grad.clone() if grad is not None else weights[0].new_zeros(shape)
        dw = [torch.zeros_like(w) for w in weights]
        for name in reversed(net.order):
            state = self.pops[name]
            kernel = net.kernels[name]
            events, jumps = state["events"], state["jumps"]
            if "v" in state:
                if g[name].any():
                    mu_i, dtime = self.leaky_adjoint(g[name], events, jumps, kernel)
                else:  # no loss on the grid (e.g. only on the averages)
                    mu_i, dtime = torch.zeros_like(jumps), jumps.new_zeros(jumps.shape[:2])
                if name == spec.output_name and extra is not None:
                    # the averages' continuous source on the membrane adjoint, in closed form
                    mu_i2, mu_v2 = averages_adjoint(extra, events, kernel, self.t_end)
                    mu_i = mu_i + mu_i2
                    dtime = dtime + _time_sensitivity(jumps, mu_v2, mu_i2, kernel)
            else:
                times = state["times"]
                grad_t = torch.where(torch.isfinite(times), g[name], torch.zeros_like(times))
                if state["rec"] is None:
                    mu_i, dtime = self.spiking_adjoint(
                        times, state["currents"], grad_t, events, jumps, kernel
                    )
                else:
                    mu_i, dtime, grad_rec = self.recurrent_adjoint(
                        state["log"], state["currents"], grad_t, events, jumps, state["w_rec"],
                        kernel,
                    )  # fmt: skip
                    dw[net.index[state["rec"].name]] += grad_rec
                if name == spec.output_name and extra is not None:
                    # the adjoint of the free membrane (its input's jumps alone) jumps at each
                    # neuron's peak grid time (superposed: it equals the membrane where no
                    # spike came before the peak)
                    grad_v = jumps.new_zeros(len(self.grid), *extra.shape)
                    grad_v.scatter_(0, state["peak_at"][None], extra[None])
                    mu_i2, dtime2 = self.leaky_adjoint(grad_v, events, jumps, kernel)
                    mu_i, dtime = mu_i + mu_i2, dtime + dtime2
            # weights: dL/dw_mn = sum over the events from n of mu_I,m
            rows = sum(spec.size_of(p.source) for p in state["feed"])
            grad_stack = weight_gradient(events, mu_i, rows)
            for p, offset in zip(state["feed"], state["offsets"]):
                size = spec.size_of(p.source)
                dw[net.index[p.name]] += grad_stack[offset : offset + size].T
            # spike times of the sources: dL/dt of each of their spikes
            if events.origin is not None:
                flat = jumps.new_zeros(
                    jumps.shape[0],
                    sum(
                        spec.size_of(p.source) * self.pops[p.source]["times"].shape[2]
                        for p in state["feed"]
                    ),
                )
                flat.scatter_add_(1, events.origin, dtime * events.amount)
                start = 0
                for p in state["feed"]:
                    shape = self.pops[p.source]["times"].shape
                    size = shape[1] * shape[2]
                    g[p.source] += flat[:, start : start + size].reshape(shape)
                    start += size
        return dw


class _EventProp(torch.autograd.Function):
    """The simulation as an autograd function: forward is :meth:`_Simulation.run`, backward is
    the adjoint pass."""

    @staticmethod
    def forward(ctx, sim, *weights):
        ctx.sim = sim
        ctx.weights = [w.detach() for w in weights]
        # clones: the simulation keeps its own tensors, so that no output (which points to
        # this node, which points to the simulation) is kept by the simulation (a reference
        # cycle through autograd's graph leaked every batch's simulation)
        return tuple(out.clone() for out in sim.run(ctx.weights))

    @staticmethod
    def backward(ctx, *grads):
        return (None, *ctx.sim.adjoint(grads, ctx.weights))


class EventNetwork(FloatNetwork):
    """The ``event`` backend: exact spike times by event-driven simulation; gradients by
    EventProp.  Parameters and state dict are the float simulator's."""

    backend_name = "event"

    def __init__(self, spec: NetworkSpec, seed: int = 0, dtype=torch.float32, max_spikes: int = 16):
        super().__init__(spec, seed=seed, dtype=dtype)
        problems = event_problems(spec)
        if problems:
            raise SpecError(problems)
        if not (isinstance(max_spikes, int) and max_spikes >= 1):
            raise SpecError([Problem("max_spikes", f"{max_spikes!r} must be an integer >= 1")])
        self.max_spikes = max_spikes  # per neuron and sample; later crossings are not simulated
        self.index = {p.name: k for k, p in enumerate(spec.projections)}
        self.kernels = {}
        for pop in spec.populations:
            params = pop.params
            self.kernels[pop.name] = Kernel(
                float(params["tau_mem"]),
                float(params["tau_syn"]),
                float(params.get("threshold", 1.0)),
                float(params["adapt_strength"]) if pop.model == "alif" else 0.0,
            )

    def simulate(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each population's differentiable output: spike times ``[B, n, K]`` (``inf``: none)
        of a spiking population, the membrane on the grid ``[T, B, n]`` of a leaky integrator;
        for a spiking output also ``"peak"`` ``[B, n]``, the highest grid value of its membrane
        without resets (the membrane's peak for a neuron that stays silent); for a
        leaky-integrator output ``"averages"`` ``[2, B, n]``, its exact time averages, plain and
        weighted by ``exp(-t/T)`` (:func:`workbench.losses.exact_membrane_averages`)."""
        return self.run(x)[1]

    def forward(self, x: torch.Tensor, record: bool | Iterable[str] = ()) -> RunResult:
        return self.run(x, record)[0]

    def run(self, x: torch.Tensor, record: bool | Iterable[str] = ()):
        """``(RunResult, outputs)``: what :meth:`forward` and :meth:`simulate` return."""
        self._check_input(x)
        sim = _Simulation(self, x.to(self.dtype))
        weights = [self.weight(p) for p in self.spec.projections]
        outputs = _EventProp.apply(sim, *weights)
        out = dict(zip(self.order, outputs))
        output_pop = self.spec.population(self.spec.output_name)
        out["peak" if output_pop.spiking else "averages"] = outputs[-1]
        self._last = sim
        wanted = self.wanted(record)
        spec = self.spec
        n_steps = x.shape[0]
        first = times = averages = None
        if output_pop.spiking:
            times = out[spec.output_name]
            output = spike_raster(times.detach(), spec.dt, n_steps)
            first = times[:, :, 0]
            first = torch.where(torch.isfinite(first), first, torch.full_like(first, sim.t_end))
        else:
            output = out[spec.output_name]
            averages = out["averages"]
        recordings = {}
        with torch.no_grad():
            for name in self.order:
                if name not in wanted:
                    continue
                state = sim.pops[name]
                kernel = self.kernels[name]
                if "v" in state:
                    recordings[name] = {"v": state["v"], "i": state["i"]}
                else:
                    spikes = spike_raster(state["times"], spec.dt, n_steps)
                    recordings[name] = SpikingTraces(
                        spikes, partial(sim.grid_states, state, kernel)
                    )
        return RunResult(output, recordings, first, times, averages), out
