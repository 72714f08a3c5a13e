"""Compiled (Numba) loops of the event-driven simulator and its adjoint (:mod:`workbench.events`).

Each function here is the fast twin of a plain torch function in :mod:`workbench.events` (the
reference the suite holds it equal to in float64, spike times and gradients) and takes the same
arguments; the adjoints return ``mu_V`` at the input events where the reference returns the
time sensitivity computed from it (``events._time_sensitivity``).  The torch functions work on
whole tensors at once (all neurons, all events, all candidate spikes), which means many small
tensor operations per spike and, in Newton's method, iterating every neuron as long as the
slowest one; here every sample is one sequential walk through its events (one sample per
thread, ``prange`` over the batch) and each neuron that can reach the threshold in an interval
gets its own Newton iteration:

- :func:`feedforward_spikes` / :func:`feedforward_adjoint`: a population without recurrent
  synapses (``events.lif_forward`` / ``events.lif_adjoint``);
- :func:`recurrent_spikes` / :func:`recurrent_adjoint`: a population with recurrent synapses
  onto itself, event by event, with the event log replayed backward
  (``events.recurrent_forward`` / ``events.recurrent_adjoint``);
- :func:`leaky_grid` / :func:`leaky_adjoint`: a leaky integrator (or a spiking population's
  free membrane) on the time grid and its adjoint (``events.li_forward`` / ``events.li_adjoint``),
  as one sweep over events and grid times instead of a kernel sum over every pair;
- :func:`subtract_resets`: a spiking population's resets on the grid (``events.lif_grid``).

Internally everything is float64 (the state, the crossing times, the adjoints), whatever the
network's dtype, and the results are written in that dtype.  Where the reference evaluates a
sum of kernels (``V`` at an event, ``mu_I`` at an event), the loops here propagate the state
from event to event; the two agree to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# workbench.kernels sizes Numba's thread pool from torch's thread count: import it first.
from workbench.kernels import _array, _threads

# isort: split
from numba import njit, prange

NEWTON_STEPS = 60  # at most (as events.NEWTON_STEPS); stops when the crossing has converged
TOLERANCE = 8 * np.finfo(np.float64).eps  # relative, as the torch reference's in float64


# ------------------------------------------------------------------------------ one neuron
@njit(cache=True, error_model="numpy")
def _peak(v, i, h, tau_mem, tau_syn, c, threshold):
    """``Kernel.peak`` for one neuron: ``(crosses, u_peak, v_peak)``.  ``V`` can reach the
    threshold only while it rises (``i > v``): after a minimum it only climbs back to 0."""
    if not (h > 0.0 and i > v and v < threshold):
        return False, 0.0, 0.0
    a = v + c * i  # V(u) = a exp(-u / tau_mem) + b exp(-u / tau_syn)
    b = -c * i
    ratio = -b * tau_mem / (a * tau_syn)
    u_peak = h
    if ratio > 0.0:
        u_star = math.log(max(ratio, 1e-300)) / (1.0 / tau_syn - 1.0 / tau_mem)
        if 0.0 < u_star < h:
            u_peak = u_star
    v_peak = a * math.exp(-u_peak / tau_mem) + b * math.exp(-u_peak / tau_syn)
    return v_peak >= threshold, u_peak, v_peak


@njit(cache=True, error_model="numpy")
def _crossing(v, i, u_peak, v_peak, tau_mem, tau_syn, c, threshold):
    """``Kernel.crossing`` for one neuron: bracketed Newton iteration for the time in
    ``(0, u_peak]`` at which ``V`` rises through the threshold."""
    a = v + c * i
    b = -c * i
    lo = 0.0
    hi = u_peak
    r = (threshold - v) / (v_peak - v)
    if r < 0.0:
        r = 0.0
    elif r > 1.0:
        r = 1.0
    x = u_peak * r
    if not math.isfinite(x):
        x = hi
    for _ in range(NEWTON_STEPS):
        em = math.exp(-x / tau_mem)
        es = math.exp(-x / tau_syn)
        f = a * em + b * es - threshold
        df = -a * em / tau_mem - b * es / tau_syn
        if f < 0.0:
            lo = x
        if f > 0.0:
            hi = x
        step = x - f / df
        if f == 0.0:
            new = x
        elif step >= lo and step <= hi and math.isfinite(step):
            new = step
        else:
            new = 0.5 * (lo + hi)
        scale = TOLERANCE * (1.0 + abs(x))
        settled = abs(new - x) <= scale or hi - lo <= scale
        x = new
        if settled:
            break
    return x


@njit(cache=True, error_model="numpy")
def _advance(v, i, u, tau_mem, tau_syn, c):
    """The state ``(v, i)`` of every neuron ``u`` ms later (1-D arrays, in place)."""
    em = math.exp(-u / tau_mem)
    es = math.exp(-u / tau_syn)
    pp = c * (em - es)
    for j in range(v.shape[0]):
        v[j] = em * v[j] + pp * i[j]
        i[j] = es * i[j]


@njit(cache=True, error_model="numpy")
def _back(mu_v, mu_i, u, tau_mem, tau_syn, c):
    """The adjoint ``u`` ms earlier (the transposed propagator of :func:`_advance`)."""
    em = math.exp(-u / tau_mem)
    es = math.exp(-u / tau_syn)
    pp = c * (em - es)
    for j in range(mu_v.shape[0]):
        mu_i[j] = es * mu_i[j] + pp * mu_v[j]
        mu_v[j] = em * mu_v[j]


@njit(cache=True, error_model="numpy")
def _store(target, row):
    """``target[:] = row`` as a plain loop: Numba's slice assignment between arrays of
    different dtypes (a float32 output from the float64 state) is ~10x slower."""
    for j in range(target.shape[0]):
        target[j] = row[j]


@njit(cache=True, error_model="numpy")
def _add(target, row):
    for j in range(target.shape[0]):
        target[j] += row[j]


# ------------------------------------------------------------------------------ feed-forward
@njit(cache=True, error_model="numpy")
def _interval(v, i, count, t0, t1, tau_mem, tau_syn, c, threshold, adapt, times, currents):
    """Advance every neuron from ``t0`` to ``t1`` (no input in between), placing its spikes
    (possibly several) in ``times``/``currents`` ``[n, K]`` of this sample; at each spike
    ``V`` resets to 0 and ``I`` jumps by ``-adapt`` (an alif's AHP, 0 for a lif)."""
    max_spikes = times.shape[1]
    h = t1 - t0
    em = math.exp(-h / tau_mem)
    es = math.exp(-h / tau_syn)
    pp = c * (em - es)
    for j in range(v.shape[0]):
        vj = v[j]
        ij = i[j]
        if not (count[j] < max_spikes and h > 0.0 and ij > vj and vj < threshold):
            v[j] = em * vj + pp * ij  # cannot reach the threshold: the common case
            i[j] = es * ij
            continue
        t = t0
        while True:
            crosses = False
            if count[j] < max_spikes:
                crosses, u_peak, v_peak = _peak(vj, ij, t1 - t, tau_mem, tau_syn, c, threshold)
            if not crosses:
                if t == t0:
                    vj, ij = em * vj + pp * ij, es * ij
                else:
                    rest = t1 - t
                    e1 = math.exp(-rest / tau_mem)
                    e2 = math.exp(-rest / tau_syn)
                    vj, ij = e1 * vj + c * (e1 - e2) * ij, e2 * ij
                break
            u = _crossing(vj, ij, u_peak, v_peak, tau_mem, tau_syn, c, threshold)
            ij = ij * math.exp(-u / tau_syn)
            t = t + u
            k = count[j]
            times[j, k] = t
            currents[j, k] = ij
            count[j] = k + 1
            vj = 0.0  # the reset
            ij = ij - adapt  # the AHP
        v[j] = vj
        i[j] = ij


@njit(parallel=True, cache=True, error_model="numpy")
def _feedforward_spikes(event_time, jumps, t_end, tau_mem, tau_syn, threshold, adapt, times,
                        currents):  # fmt: skip
    batch, width, n = jumps.shape
    c = tau_syn / (tau_mem - tau_syn)
    for b in prange(batch):
        v = np.zeros(n)
        i = np.zeros(n)
        count = np.zeros(n, np.int64)
        now = 0.0
        for e in range(width + 1):
            end = event_time[b, e] if e < width else t_end
            _interval(v, i, count, now, end, tau_mem, tau_syn, c, threshold, adapt, times[b],
                      currents[b])  # fmt: skip
            now = end
            if e < width:
                _add(i, jumps[b, e])


def _constants(kernel):
    return float(kernel.tau_mem), float(kernel.tau_syn), float(kernel.threshold)


def with_ahp(w_rec, kernel):
    """The recurrent weights ``[n, n]`` with an alif's AHP on the diagonal: a fixed synapse
    of weight ``-kernel.adapt`` from each neuron onto itself (``w_rec`` itself for a lif)."""
    if not kernel.adapt:
        return w_rec
    return w_rec - kernel.adapt * torch.eye(len(w_rec), dtype=w_rec.dtype, device=w_rec.device)


def feedforward_spikes(events, jumps, kernel, t_end: float, max_spikes: int):
    """Spike times ``[B, n, K]`` (``inf``: none) and the current at each spike of a population
    without recurrent synapses: ``events.lif_forward``."""
    _threads()
    batch, width, n = jumps.shape
    times = jumps.new_full((batch, n, max_spikes), math.inf)
    currents = jumps.new_zeros(batch, n, max_spikes)
    _feedforward_spikes(_array(events.time), _array(jumps), float(t_end), *_constants(kernel),
                        float(kernel.adapt), times.numpy(), currents.numpy())  # fmt: skip
    return times, currents


@njit(parallel=True, cache=True, error_model="numpy")
def _feedforward_adjoint(times, currents, g, event_time, tau_mem, tau_syn, threshold, adapt, mu_i,
                         mu_v):  # fmt: skip
    batch, n, max_spikes = times.shape
    width = event_time.shape[1]
    c = tau_syn / (tau_mem - tau_syn)
    for b in prange(batch):
        # the jump of mu_V at each spike, backward through each neuron's spikes
        jump = np.zeros((n, max_spikes))
        count = np.zeros(n, np.int64)
        for j in range(n):
            spikes = 0
            while spikes < max_spikes and math.isfinite(times[b, j, spikes]):
                spikes += 1
            count[j] = spikes
            after = 0.0  # mu_V just after spike k
            after_i = 0.0  # mu_I just after spike k
            for k in range(spikes - 1, -1, -1):
                vdot = (currents[b, j, k] - threshold) / tau_mem
                # the AHP: a fixed self-synapse of weight -adapt, moved with the spike
                g_k = g[b, j, k] - adapt * (after_i / tau_syn - after / tau_mem)
                jk = (threshold / tau_mem) * after / vdot - g_k / vdot
                jump[j, k] = jk
                if k > 0:
                    gap = times[b, j, k] - times[b, j, k - 1]
                    em = math.exp(-gap / tau_mem)
                    es = math.exp(-gap / tau_syn)
                    after_i = es * after_i + c * (em - es) * (after + jk)
                    after = em * (after + jk)
        # mu_V and mu_I at each input event: the jumps of the spikes after it, propagated back
        for e in range(width):
            s = event_time[b, e]
            row_i = mu_i[b, e]
            row_v = mu_v[b, e]
            for j in range(n):
                acc_v = 0.0
                acc_i = 0.0
                for k in range(count[j]):
                    gap = times[b, j, k] - s
                    if gap > 0.0:
                        em = math.exp(-gap / tau_mem)
                        es = math.exp(-gap / tau_syn)
                        acc_v += jump[j, k] * em
                        acc_i += jump[j, k] * (c * (em - es))
                row_v[j] = acc_v
                row_i[j] = acc_i


def feedforward_adjoint(times, currents, g, events, jumps, kernel):
    """EventProp through a population without recurrent synapses: ``(mu_I, mu_V)`` at each
    input event ``[B, E, n]`` (``events.lif_adjoint`` before its time sensitivity)."""
    _threads()
    mu_i = torch.zeros_like(jumps)
    mu_v = torch.zeros_like(jumps)
    _feedforward_adjoint(_array(times), _array(currents), _array(g.to(times.dtype)),
                         _array(events.time), *_constants(kernel), float(kernel.adapt),
                         mu_i.numpy(), mu_v.numpy())  # fmt: skip
    return mu_i, mu_v


# ------------------------------------------------------------------------------ recurrent
@njit(parallel=True, cache=True, error_model="numpy")
def _recurrent_spikes(event_time, n_real, jumps, w_rec_t, t_end, tau_mem, tau_syn, threshold,
                      times, currents, log_time, log_who, log_index, log_len):  # fmt: skip
    batch, width, n = jumps.shape
    max_spikes = times.shape[2]
    c = tau_syn / (tau_mem - tau_syn)
    for b in prange(batch):
        v = np.zeros(n)
        i = np.zeros(n)
        count = np.zeros(n, np.int64)
        now = 0.0
        pointer = 0
        entries = 0
        while True:
            more = pointer < n_real[b]
            next_input = event_time[b, pointer] if more else t_end
            h = next_input - now
            first = math.inf
            who = -1
            for j in range(n):  # the earliest crossing of any neuron before the next input
                if count[j] < max_spikes:
                    crosses, u_peak, v_peak = _peak(v[j], i[j], h, tau_mem, tau_syn, c, threshold)
                    if crosses:
                        u = _crossing(v[j], i[j], u_peak, v_peak, tau_mem, tau_syn, c, threshold)
                        if u < first:
                            first = u
                            who = j
            if who >= 0:
                _advance(v, i, first, tau_mem, tau_syn, c)
                now = now + first
                k = count[who]
                times[b, who, k] = now
                currents[b, who, k] = i[who]
                count[who] = k + 1
                v[who] = 0.0
                _add(i, w_rec_t[who])
                log_who[b, entries] = who
                log_index[b, entries] = k
            elif more:
                _advance(v, i, h, tau_mem, tau_syn, c)
                now = next_input
                _add(i, jumps[b, pointer])
                log_who[b, entries] = -1
                log_index[b, entries] = pointer
                pointer += 1
            else:
                break
            log_time[b, entries] = now
            entries += 1
        log_len[b] = entries


class RecurrentLog:
    """What the adjoint of a recurrent population needs from its forward pass, per sample in
    time order: ``time`` of each step, ``who`` (the neuron that spiked, -1 for an input event),
    ``index`` (that neuron's spike number, or the input event's), ``length`` (steps taken)."""

    def __init__(self, time, who, index, length):
        self.time, self.who, self.index, self.length = time, who, index, length


def recurrent_spikes(events, jumps, w_rec, kernel, t_end: float, max_spikes: int):
    """Spike times, currents at the spikes and the event log of a population with recurrent
    synapses ``w_rec`` ``[n, n]`` (target, source): ``events.recurrent_forward``; an alif's
    AHP is one more fixed synapse of each neuron onto itself (:func:`with_ahp`)."""
    _threads()
    batch, width, n = jumps.shape
    w_rec = with_ahp(w_rec, kernel)
    n_real = events.n_real if events.n_real is not None else torch.full((batch,), width)
    times = jumps.new_full((batch, n, max_spikes), math.inf)
    currents = jumps.new_zeros(batch, n, max_spikes)
    capacity = width + n * max_spikes
    log = RecurrentLog(
        np.zeros((batch, capacity)),
        np.zeros((batch, capacity), np.int64),
        np.zeros((batch, capacity), np.int64),
        np.zeros(batch, np.int64),
    )
    _recurrent_spikes(_array(events.time), _array(n_real.long()), _array(jumps),
                      _array(w_rec.T.to(jumps.dtype)), float(t_end), *_constants(kernel),
                      times.numpy(), currents.numpy(), log.time, log.who, log.index,
                      log.length)  # fmt: skip
    return times, currents, log


@njit(parallel=True, cache=True, error_model="numpy")
def _recurrent_adjoint(log_time, log_who, log_index, log_len, currents, g, w_rec_t, t_end,
                       tau_mem, tau_syn, threshold, mu_i_events, mu_v_events,
                       grad_rec_t):  # fmt: skip
    batch = log_time.shape[0]
    n = currents.shape[1]
    c = tau_syn / (tau_mem - tau_syn)
    for b in prange(batch):
        mu_v = np.zeros(n)
        mu_i = np.zeros(n)
        now = t_end
        for entry in range(log_len[b] - 1, -1, -1):
            t = log_time[b, entry]
            _back(mu_v, mu_i, now - t, tau_mem, tau_syn, c)
            now = t
            who = log_who[b, entry]
            k = log_index[b, entry]
            if who < 0:  # an input event
                _store(mu_i_events[b, k], mu_i)
                _store(mu_v_events[b, k], mu_v)
                continue
            # a spike of neuron `who`: its recurrent weights' gradient, then the jump of mu_V
            grad_row = grad_rec_t[b, who]
            w = w_rec_t[who]
            pull = 0.0
            for m in range(n):
                grad_row[m] += mu_i[m]
                pull += w[m] * (mu_i[m] / tau_syn - mu_v[m] / tau_mem)
            g_k = g[b, who, k] + pull
            vdot = (currents[b, who, k] - threshold) / tau_mem
            after = mu_v[who]
            mu_v[who] = after + (threshold / tau_mem) * after / vdot - g_k / vdot


def recurrent_adjoint(log: RecurrentLog, currents, g, events, jumps, w_rec, kernel, t_end):
    """EventProp through a recurrent population (``events.recurrent_adjoint`` before its time
    sensitivity): ``(mu_I, mu_V)`` at each input event ``[B, E, n]`` and dL/dw_rec (an alif's
    AHP is a fixed diagonal, :func:`with_ahp`, not trained)."""
    _threads()
    batch, width, n = jumps.shape
    w_rec = with_ahp(w_rec, kernel)
    mu_i = torch.zeros_like(jumps)
    mu_v = torch.zeros_like(jumps)
    grad_rec_t = np.zeros((batch, n, n))  # per sample (samples run in parallel), summed below
    _recurrent_adjoint(log.time, log.who, log.index, log.length, _array(currents),
                       _array(g.to(currents.dtype)), _array(w_rec.T.to(jumps.dtype)),
                       float(t_end), *_constants(kernel), mu_i.numpy(), mu_v.numpy(),
                       grad_rec_t)  # fmt: skip
    grad_rec = torch.from_numpy(grad_rec_t.sum(0).T).to(w_rec.dtype)
    return mu_i, mu_v, grad_rec


# ------------------------------------------------------------------------------ the time grid
@njit(parallel=True, cache=True, error_model="numpy")
def _leaky_grid(event_time, jumps, grid, tau_mem, tau_syn, v_out, i_out):
    batch, width, n = jumps.shape
    c = tau_syn / (tau_mem - tau_syn)
    for b in prange(batch):
        v = np.zeros(n)
        i = np.zeros(n)
        now = 0.0
        e = 0
        for g in range(grid.shape[0]):
            t = grid[g]
            while e < width and event_time[b, e] <= t:  # an event at t counts at t
                s = event_time[b, e]
                _advance(v, i, s - now, tau_mem, tau_syn, c)
                now = s
                _add(i, jumps[b, e])
                e += 1
            _advance(v, i, t - now, tau_mem, tau_syn, c)
            now = t
            _store(v_out[g, b], v)
            _store(i_out[g, b], i)


def leaky_grid(events, jumps, kernel, grid):
    """``V`` and ``I`` (no resets) at the grid times ``[G, B, n]``: ``events.li_forward``, as
    one sweep through events and grid times per sample."""
    _threads()
    batch, width, n = jumps.shape
    v = jumps.new_empty(len(grid), batch, n)
    i = jumps.new_empty(len(grid), batch, n)
    tau_mem, tau_syn, _ = _constants(kernel)
    _leaky_grid(_array(events.time), _array(jumps), _array(grid.to(torch.float64)), tau_mem,
                tau_syn, v.numpy(), i.numpy())  # fmt: skip
    return v, i


@njit(parallel=True, cache=True, error_model="numpy")
def _leaky_adjoint(grad_v, event_time, grid, tau_mem, tau_syn, mu_i_events, mu_v_events):
    n_grid, batch, n = grad_v.shape
    width = event_time.shape[1]
    c = tau_syn / (tau_mem - tau_syn)
    for b in prange(batch):
        mu_v = np.zeros(n)
        mu_i = np.zeros(n)
        now = grid[n_grid - 1]
        if width > 0:
            now = max(now, event_time[b, width - 1])
        e = width - 1
        for g in range(n_grid - 1, -2, -1):  # g == -1: the events before the grid, if any
            t = grid[g] if g >= 0 else -math.inf
            # the events at or after t (the grid value at t depends only on earlier ones)
            while e >= 0 and event_time[b, e] >= t:
                s = event_time[b, e]
                _back(mu_v, mu_i, now - s, tau_mem, tau_syn, c)
                now = s
                _store(mu_i_events[b, e], mu_i)
                _store(mu_v_events[b, e], mu_v)
                e -= 1
            if g >= 0:
                _back(mu_v, mu_i, now - t, tau_mem, tau_syn, c)
                now = t
                _add(mu_v, grad_v[g, b])


def leaky_adjoint(grad_v, events, jumps, kernel, grid):
    """EventProp through a leaky integrator read at the grid times (``events.li_adjoint``
    before its time sensitivity): ``(mu_I, mu_V)`` at each event ``[B, E, n]``, as one
    backward sweep through grid times and events per sample."""
    _threads()
    mu_i = torch.zeros_like(jumps)
    mu_v = torch.zeros_like(jumps)
    tau_mem, tau_syn, _ = _constants(kernel)
    _leaky_adjoint(_array(grad_v.to(jumps.dtype)), _array(events.time),
                   _array(grid.to(torch.float64)), tau_mem, tau_syn, mu_i.numpy(),
                   mu_v.numpy())  # fmt: skip
    return mu_i, mu_v


@njit(parallel=True, cache=True, error_model="numpy")
def _subtract_resets(v, times, grid, tau_mem, tau_syn, threshold, adapt):
    n_grid, batch, n = v.shape
    max_spikes = times.shape[2]
    c = tau_syn / (tau_mem - tau_syn)
    for b in prange(batch):
        pull = np.zeros(n)  # sum of beta(t - t_k) over the spikes before t
        pull_s = np.zeros(n)  # sum of alpha(t - t_k) (the AHP's V is c adapt (beta - alpha))
        seen = np.zeros(n, np.int64)
        previous = grid[0]
        for g in range(n_grid):
            t = grid[g]
            decay = math.exp(-(t - previous) / tau_mem)
            decay_s = math.exp(-(t - previous) / tau_syn)
            previous = t
            row = v[g, b]
            for j in range(n):
                pull[j] *= decay
                pull_s[j] *= decay_s
                while seen[j] < max_spikes and times[b, j, seen[j]] < t:  # inf: never
                    pull[j] += math.exp(-(t - times[b, j, seen[j]]) / tau_mem)
                    pull_s[j] += math.exp(-(t - times[b, j, seen[j]]) / tau_syn)
                    seen[j] += 1
                row[j] -= threshold * pull[j] + adapt * c * (pull[j] - pull_s[j])


def subtract_resets(v, times, kernel, grid) -> None:
    """Turn the free membrane ``v`` ``[G, B, n]`` (contiguous, in place) of a spiking
    population into its membrane with resets: each spike pulls ``V`` down by the threshold,
    decaying with ``tau_mem``, and an alif's AHP by ``adapt p(t - t_k)`` (``events.lif_grid``)."""
    _threads()
    tau_mem, tau_syn, threshold = _constants(kernel)
    _subtract_resets(v.numpy(), _array(times), _array(grid.to(torch.float64)), tau_mem, tau_syn,
                     threshold, float(kernel.adapt))  # fmt: skip
