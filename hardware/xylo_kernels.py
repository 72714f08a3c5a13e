"""Compiled (Numba) loops behind :class:`~workbench.hardware.xylo.Xylo`: the chip's integer
time loop and its adjoint.

:func:`xylo_forward` runs exactly the integer rules of ``Xylo._simulate_torch`` (the torch
loop, which stays the reference and the path on other devices), one sample per thread, hidden
and output neurons in one pass over time, on integers held in float64 (as the torch loop holds
them).
Events are delivered as the chip delivers them (xylosim 0.1.3, ``src/v2/cpp/XyloLayer.cpp``,
``deliver_spikes``): source by source in index order (input channels, then the previous step's
hidden spikes), each adding its count times its row of weights and saturating to 16 bits
before the next source; only sources with events cost anything, so the sparse input of a
latency code costs next to nothing.  (A source's ``n`` events have one sign per target, and
saturating after each of them gives what saturating their sum once gives.)
For training it also records, per neuron and step, which of the saturating sums stayed in
range (where a clamp passes the gradient) and the position of the last source whose event
clipped the neuron's synaptic current (``-1``: none).

:func:`xylo_backward` is the adjoint of that loop: the gradient autograd computes through the
torch loop, where every saturation passes the gradient where its argument lies in range
(bounds included), a decay ``x >> dash`` has the slope ``2**-dash`` (straight-through), and a
spike count has the surrogate's slope at ``(V - threshold) / unit`` before the reset (which is
not differentiated).  The delivery is a chain of saturating additions, each one the identity
where it stays in range: the gradient of the current reaches the sources after the last
clipping one (and the current of the previous step only where nothing clipped), and none
before it.  The gradients of the input and readout weights are summed in the same loop, event
by event (input events and hidden spikes are sparse); that of the recurrent weights is one
matrix product of the adjoint of each step's synaptic input with the spikes, corrected where a
hidden spike's event clipped.

The helpers ``_threads``, ``_array``, ``available``, ``_derivative`` and ``SURROGATE_CODES`` are
the float simulator's (:mod:`workbench.kernels`).
"""

from __future__ import annotations

import numpy as np
import torch

# workbench.kernels sizes Numba's thread pool from torch's thread count: import it first.
from workbench.kernels import (
    SURROGATE_CODES,
    _array,
    _derivative,
    _threads,
    available,
)

# isort: split
from numba import njit, prange

__all__ = ["available", "xylo_backward", "xylo_forward"]

LIMITS = (-32768.0, 32767.0)  # the states' signed 16-bit range (xylo.STATE_MIN, STATE_MAX)
# Flags per neuron and step: which saturating sum stayed in range (the gradient passes there).
_IN_SYN1 = 1  # I_1 + every arriving event
_IN_SYN2 = 2  # I_2 + every arriving event
_IN_DV1 = 4  # sum_k I_k - decay(V)
_IN_DV2 = 8  # ... + bias
_IN_V = 16  # V + dV


@njit(cache=True, inline="always")
def _decay(x, p):
    """``x >> dash`` for an integer ``x`` held in a float64 (``p = 2**-dash``: the product is
    exact, and its floor is the arithmetic shift), and at least one towards zero for a positive
    ``x`` (``x >= 1``, so ``min(x, 1)`` is 1; for ``x <= 0``, ``floor(x p) >= x``).  Branch-free,
    so the loops over neurons vectorise."""
    return max(np.floor(x * p), min(x, 1.0))


@njit(cache=True, inline="always")
def _leak(v, p, hi):
    """``-decay(V, dash_mem)`` in the chip's 16 bits (``XyloIAFNeuron.cpp``: ``int16_t dv =
    -decay(...)``): the one value out of range, ``+32768`` (``V = -32768``, ``dash_mem = 0``),
    wraps to ``-32768``."""
    d = -_decay(v, p)
    return d - 65536.0 if d > hi else d


@njit(cache=True, inline="always")
def _deliver(acc, cut, counts, rows, offset, lo, hi):
    """The chip's delivery of one group of sources: for each source with events, in index
    order, ``acc += counts[k] * rows[k]``, saturated to ``[lo, hi]`` before the next source;
    ``cut[j]`` becomes ``offset + k`` where that addition clipped target ``j`` (the last such
    source is what the gradient needs)."""
    for k in range(counts.shape[0]):
        e = counts[k]
        if e != 0:
            row = rows[k]
            pos = offset + k
            for j in range(acc.shape[0]):
                y = acc[j] + e * row[j]
                a = min(max(y, lo), hi)
                cut[j] = pos if a != y else cut[j]
                acc[j] = a


@njit(parallel=True, cache=True)
def _forward(counts, w_in_t, w_rec_t, w_out_t, p_syn, p_mem, bias, theta, max_spikes,
             p_syn_o, p_mem_o, bias_o, theta_o, max_spikes_o, lo, hi, unit, alias,
             vs, ns, i1s, i2s, v_rec, i_rec, n_rec, vo, no, io, flags, flags_o, cuts, cuts_o,
             owns):  # fmt: skip
    """``counts [T, B, inputs]`` (already clipped); weights transposed to ``[state, source,
    target]`` (``w_rec_t`` with no rows: no recurrence), ``w_out_t`` ``[hidden, outputs]``;
    ``p_* = 2**-dash_*`` per neuron; ``alias`` the alias target of each hidden neuron (-1:
    none; no rows: no aliases).  Every state is an integer held in a float64, as in the torch
    loop (sums of products of integers below 2**53 are exact), which AVX2 vectorises where
    64-bit integer shifts and conversions it cannot.  ``floor(pre / theta)`` is the integer
    floor division: for ``|pre| < 2**15`` the rounded quotient of a non-integer ratio stays on
    its side of the integer.

    The hidden neurons' outputs are written only where they have rows: ``vs``, ``ns``,
    ``i1s``, ``i2s`` (the integer states; ``i2s`` only with two synaptic states), and
    ``v_rec``, ``i_rec``, ``n_rec``: the recordings ``v / unit``, ``(i1 + i2) / unit`` and the
    spike counts in the recordings' dtype (what ``Xylo.forward`` computes from the states,
    rounded once from float64 in the same way); likewise, for the gradient, the flags, the
    clipping positions ``cuts [state, T, B, N]`` / ``cuts_o`` (source index, inputs first,
    then hidden neurons at ``inputs + index``; -1 none) and, with aliases, ``owns``: the
    spikes each hidden neuron fired itself (``ns`` holds them with the aliased ones added)."""
    n_steps, batch, n_in = counts.shape
    states, n = w_in_t.shape[0], w_in_t.shape[2]
    m = w_out_t.shape[1]
    recurrent = w_rec_t.shape[1] > 0
    aliased = alias.shape[0] > 0
    keep_v, keep_n, currents = vs.shape[0] > 0, ns.shape[0] > 0, i1s.shape[0] > 0
    second = i2s.shape[0] > 0
    traces = v_rec.shape[0] > 0
    keep = flags.shape[0] > 0
    keep_own = owns.shape[0] > 0
    offset = float(n_in)
    for b in prange(batch):
        cur = np.zeros((states, n))
        cut = np.empty((states, n))  # this step's clipping positions
        fl = np.zeros(n, np.uint8)  # this step's flags
        fl_o = np.zeros(m, np.uint8)
        v = np.zeros(n)
        z_prev = np.zeros(n)  # the previous step's spike counts
        placed = np.zeros(n)  # spike counts with the aliased spikes
        own = np.zeros(n)
        cur_o = np.zeros(m)
        cut_o = np.empty(m)
        v_o = np.zeros(m)
        spiked = False  # whether z_prev holds any spike
        for t in range(n_steps):
            # The outputs first: they receive the previous step's hidden spikes, as the
            # hidden neurons do, before this step's spikes replace them.
            for o in range(m):
                cut_o[o] = -1.0
            if spiked:
                _deliver(cur_o, cut_o, z_prev, w_out_t, 0.0, lo, hi)
            vo_row, no_row, io_row = vo[t, b], no[t, b], io[t, b]
            for o in range(m):
                a = cur_o[o]
                c = a - _decay(a, p_syn_o[o])
                cur_o[o] = c
                u1 = c + _leak(v_o[o], p_mem_o[o], hi)
                d1 = min(max(u1, lo), hi)
                u2 = d1 + bias_o[o]
                d2 = min(max(u2, lo), hi)
                u3 = v_o[o] + d2
                pre = min(max(u3, lo), hi)
                fl_o[o] = (
                    (cut_o[o] < 0.0) * _IN_SYN1
                    + ((u1 >= lo) & (u1 <= hi)) * _IN_DV1
                    + ((u2 >= lo) & (u2 <= hi)) * _IN_DV2
                    + ((u3 >= lo) & (u3 <= hi)) * _IN_V
                )
                count = min(max(np.floor(pre / theta_o[o]), 0.0), max_spikes_o)
                v_o[o] = pre - count * theta_o[o]
                vo_row[o] = v_o[o]
                no_row[o] = count
                io_row[o] = c
            if keep:
                flags_o[t, b, :] = fl_o
                co = cuts_o[t, b]
                for o in range(m):
                    co[o] = cut_o[o]
            # 1. deliver this step's input events, then the previous step's hidden spikes,
            # source by source, saturating after each; 2. decay each synaptic state
            x = counts[t, b]
            for k in range(states):
                c_k, cut_k = cur[k], cut[k]
                for j in range(n):
                    cut_k[j] = -1.0
                _deliver(c_k, cut_k, x, w_in_t[k], 0.0, lo, hi)
                if recurrent and spiked:
                    _deliver(c_k, cut_k, z_prev, w_rec_t[k], offset, lo, hi)
                p_k = p_syn[k]
                if k == 0:
                    for j in range(n):
                        a = c_k[j]
                        c_k[j] = a - _decay(a, p_k[j])
                        fl[j] = (cut_k[j] < 0.0) * _IN_SYN1
                else:
                    for j in range(n):
                        a = c_k[j]
                        c_k[j] = a - _decay(a, p_k[j])
                        fl[j] += (cut_k[j] < 0.0) * _IN_SYN2
            # 3. the membrane integrates, 4. spikes and subtractive reset
            for j in range(n):
                total = cur[0, j] + cur[1, j] if states == 2 else cur[0, j]
                vj = v[j]
                u1 = total + _leak(vj, p_mem[j], hi)
                d1 = min(max(u1, lo), hi)
                u2 = d1 + bias[j]
                d2 = min(max(u2, lo), hi)
                u3 = vj + d2
                pre = min(max(u3, lo), hi)
                fl[j] += (
                    ((u1 >= lo) & (u1 <= hi)) * _IN_DV1
                    + ((u2 >= lo) & (u2 <= hi)) * _IN_DV2
                    + ((u3 >= lo) & (u3 <= hi)) * _IN_V
                )
                count = min(max(np.floor(pre / theta[j]), 0.0), max_spikes)
                v[j] = pre - count * theta[j]
                z_prev[j] = count
            if aliased:
                # In index order (XyloLayer.cpp, evolve_neurons): a neuron fires on top of the
                # spikes its aliases already placed on it, up to the cap, and adds its count
                # to its own alias target's.
                for j in range(n):
                    placed[j] = 0.0
                for j in range(n):
                    fired = min(z_prev[j], max_spikes - placed[j])
                    v[j] += (z_prev[j] - fired) * theta[j]  # the spikes that did not fit
                    own[j] = fired
                    placed[j] += fired
                    a = alias[j]
                    if a >= 0:
                        placed[a] = min(placed[a] + placed[j], max_spikes)
                for j in range(n):
                    z_prev[j] = placed[j]
                if keep_own:
                    owns[t, b, :] = own
            if keep_v:
                vs[t, b, :] = v
            if keep_n:
                ns[t, b, :] = z_prev
            if keep:
                flags[t, b, :] = fl
                for k in range(states):
                    ck, cut_k = cuts[k, t, b], cut[k]
                    for j in range(n):
                        ck[j] = cut_k[j]
            if currents:
                i1s[t, b, :] = cur[0]
            if second:
                i2s[t, b, :] = cur[1]
            if traces:
                rv, ri, rn = v_rec[t, b], i_rec[t, b], n_rec[t, b]
                for j in range(n):
                    total = cur[0, j] + cur[1, j] if states == 2 else cur[0, j]
                    rv[j] = v[j] / unit[j]
                    ri[j] = total / unit[j]
                    rn[j] = z_prev[j]
            spiked = False
            for j in range(n):
                spiked |= z_prev[j] != 0.0


def _f64(t: torch.Tensor) -> np.ndarray:
    return _array(t.detach().to(torch.float64))


HIDDEN_STATES = ("v", "n", "i1", "i2")


def xylo_forward(counts, w_in, w_rec, w_out, hidden, output, keep=HIDDEN_STATES, traces=None,
                 flags=True, alias=None):  # fmt: skip
    """The chip's integer loop.

    ``counts``: ``[T, B, inputs]`` float64 event counts, already clipped; ``w_in``/``w_rec``:
    one ``[N, inputs]`` / ``[N, N]`` float64 matrix per synaptic state in use (integers, shift
    applied), ``w_rec`` None without hidden -> hidden weights; ``w_out``: ``[M, N]``;
    ``hidden``/``output``: ``(p_syn, p_mem, bias, theta, unit, max_spikes)`` with per-neuron
    tensors (``p = 2**-dash``; ``p_syn`` one per synaptic state for the hidden neurons, one
    tensor for the outputs); ``alias``: None, or each hidden neuron's alias target (int64
    ``[N]``, -1 none).

    Returns ``(states, saved)``: ``states`` a dict of float64 tensors holding integers,
    ``v_out``, ``n_out``, ``i_out`` and the hidden neurons' states named in ``keep`` (of
    ``v``, ``n``, ``i1``, ``i2``; ``i2`` is zeros with one synaptic state), plus, with a
    ``traces`` dtype, the recordings ``v_rec``, ``i_rec``, ``n_rec`` of the hidden neurons in
    float units (see :func:`_forward`); ``saved``, with ``flags`` (else None), what
    :func:`xylo_backward` needs: ``(flags, flags_out, cuts, cuts_out, owns)``, the in-range
    flags (uint8 ``[T, B, N]``, ``[T, B, M]``), the clipping positions (int16 ``[state, T, B,
    N]``, ``[T, B, M]``) and, with aliases, the spikes each hidden neuron fired itself
    (float64 ``[T, B, N]``; else no rows)."""
    _threads()
    n_steps, batch, _ = counts.shape
    n, m = w_out.shape[1], w_out.shape[0]
    p_syn, p_mem, bias, theta, unit, max_spikes = hidden
    p_syn_o, p_mem_o, bias_o, theta_o, _, max_spikes_o = output
    states = len(w_in)
    w_in_t = np.stack([_f64(w.T) for w in w_in])
    if w_rec is None:
        w_rec_t = np.zeros((states, 0, 0))
    else:
        w_rec_t = np.stack([_f64(w.T) for w in w_rec])
    aliased = alias is not None and bool((alias >= 0).any())
    alias_a = _array(alias.to(torch.int64)) if aliased else np.zeros(0, np.int64)
    f64 = torch.float64
    shape, shape_o = (n_steps, batch, n), (n_steps, batch, m)

    def hidden_array(wanted, dtype=f64):
        return torch.empty(shape if wanted else (0, 0, 0), dtype=dtype)

    out = {name: hidden_array(name in keep and name != "i2") for name in HIDDEN_STATES[:3]}
    out["i2"] = hidden_array("i2" in keep and states == 2)
    for name in ("v_rec", "i_rec", "n_rec"):
        out[name] = hidden_array(traces is not None, traces or f64)
    out.update({name: torch.empty(shape_o, dtype=f64) for name in ("v_out", "n_out", "i_out")})
    i16 = torch.int16
    if flags:
        saved = (
            torch.empty(shape, dtype=torch.uint8),
            torch.empty(shape_o, dtype=torch.uint8),
            torch.empty((states, *shape), dtype=i16),
            torch.empty(shape_o, dtype=i16),
            hidden_array(aliased),
        )
    else:
        saved = (
            torch.empty(0, 0, 0, dtype=torch.uint8),
            torch.empty(0, 0, 0, dtype=torch.uint8),
            torch.empty(0, 0, 0, 0, dtype=i16),
            torch.empty(0, 0, 0, dtype=i16),
            hidden_array(False),
        )
    arrays = [out[k].numpy() for k in (*HIDDEN_STATES, "v_rec", "i_rec", "n_rec")]
    arrays += [out[k].numpy() for k in ("v_out", "n_out", "i_out")]
    _forward(_f64(counts), w_in_t, w_rec_t, _f64(w_out.T), np.stack([_f64(p) for p in p_syn]),
             _f64(p_mem), _f64(bias), _f64(theta), float(max_spikes), _f64(p_syn_o),
             _f64(p_mem_o), _f64(bias_o), _f64(theta_o), float(max_spikes_o), *LIMITS,
             _f64(unit), alias_a, *arrays, *(x.numpy() for x in saved))  # fmt: skip
    if "i2" in keep and states == 1:
        out["i2"] = torch.zeros((), dtype=f64).expand(shape)
    wanted = {*keep, "v_out", "n_out", "i_out", *(("v_rec", "i_rec", "n_rec") if traces else ())}
    return {k: v for k, v in out.items() if k in wanted}, saved if flags else None


@njit(parallel=True, cache=True)
def _backward(g_v, g_n, g_i1, g_i2, g_vo, g_no, g_io, counts, vs, ns, owns, vo, no, flags,
              flags_o, cuts, cuts_o, w_rec, w_out, p_syn, p_mem, theta, unit, p_syn_o, p_mem_o,
              theta_o, unit_o, kind, scale, cutoff, spiking_o, g_syn, gw_in, gw_out):  # fmt: skip
    """The adjoint of :func:`_forward`, one sample per thread, backwards in time.

    ``g_*``: the gradients of the seven outputs (no rows: none); ``owns``: the spikes each
    hidden neuron fired itself (``ns`` without aliases); ``cuts``/``cuts_o``: the clipping
    positions of the deliveries; ``p_syn``/``p_mem``: the decays' slopes ``2**-dash``;
    ``w_rec [state, target, source]``, ``w_out [M, N]``.  Writes the per-sample sums ``gw_in
    [state, B, inputs, N]`` and ``gw_out [B, N, M]`` of the weight gradients and, with
    recurrence, ``g_syn [state, T, B, N]``: the adjoint of each step's arriving synaptic input
    (for the hidden spikes after the last clipping source; see :func:`_masked_recurrent`)."""
    states = gw_in.shape[0]
    n_steps, batch, n_in = counts.shape
    n = vs.shape[2]
    m = vo.shape[2]
    recurrent = w_rec.shape[1] > 0
    has_v, has_n, has_i1 = g_v.shape[0] > 0, g_n.shape[0] > 0, g_i1.shape[0] > 0
    has_i2 = g_i2.shape[0] > 0
    has_vo, has_no, has_io = g_vo.shape[0] > 0, g_no.shape[0] > 0, g_io.shape[0] > 0
    for b in prange(batch):
        zero_n, zero_m = np.zeros(n), np.zeros(m)
        adj_v = np.zeros(n)
        adj_cur = np.zeros((states, n))
        back = np.zeros(n)  # dL/dz[t] through the next step's recurrent and readout input
        d1s = np.zeros(n)
        sg = np.zeros(n)
        d_a = np.zeros((states, n))
        adj_vo = np.zeros(m)
        adj_cur_o = np.zeros(m)
        go = np.zeros(m)
        gw_o = gw_out[b]
        for t in range(n_steps - 1, -1, -1):
            # Outputs at step t.
            fo = flags_o[t, b]
            co = cuts_o[t, b]
            gvo = g_vo[t, b] if has_vo else zero_m
            gio = g_io[t, b] if has_io else zero_m
            for o in range(m):
                d_pre = adj_vo[o] + gvo[o]
                if spiking_o and has_no:
                    g = g_no[t, b, o]
                    if g != 0.0:
                        pre = vo[t, b, o] + no[t, b, o] * theta_o[o]
                        x = (pre - theta_o[o]) / unit_o[o]
                        d_pre = d_pre + g * _derivative(x, kind, scale, cutoff) / unit_o[o]
                f = fo[o]
                d3 = d_pre if f & _IN_V else 0.0
                d2 = d3 if f & _IN_DV2 else 0.0
                d1 = d2 if f & _IN_DV1 else 0.0
                adj_vo[o] = d3 - d1 * p_mem_o[o]
                d_cur = adj_cur_o[o] + gio[o] + d1
                d = d_cur - d_cur * p_syn_o[o]
                go[o] = d  # reaches the sources after the last clipping one
                adj_cur_o[o] = d if co[o] < 0 else 0.0
            if t > 0:  # the readout weights carried the previous step's hidden spikes
                z = ns[t - 1, b]
                for s in range(n):
                    e = z[s]
                    if e != 0.0:
                        row = gw_o[s]
                        for o in range(m):
                            row[o] += e * (go[o] if s > co[o] else 0.0)
            # Hidden neurons at step t: the membrane, then each synaptic state.
            fh = flags[t, b]
            gv = g_v[t, b] if has_v else zero_n
            gn = g_n[t, b] if has_n else zero_n
            v_row, own_row = vs[t, b], owns[t, b]
            for j in range(n):  # the spikes' surrogate (zero where no gradient reaches them)
                pre = v_row[j] + own_row[j] * theta[j]
                x = (pre - theta[j]) / unit[j]
                sg[j] = (back[j] + gn[j]) * _derivative(x, kind, scale, cutoff) / unit[j]
            for j in range(n):
                d_pre = adj_v[j] + gv[j] + sg[j]
                f = fh[j]
                d3 = d_pre if f & _IN_V else 0.0
                d2 = d3 if f & _IN_DV2 else 0.0
                d1 = d2 if f & _IN_DV1 else 0.0
                adj_v[j] = d3 - d1 * p_mem[j]
                d1s[j] = d1
            x = counts[t, b]
            for k in range(states):
                gi = (g_i1[t, b] if has_i1 else zero_n) if k == 0 else (
                    g_i2[t, b] if has_i2 else zero_n)  # fmt: skip
                p_k, adj_k, da_k = p_syn[k], adj_cur[k], d_a[k]
                ck = cuts[k, t, b]
                for j in range(n):
                    d_cur = adj_k[j] + gi[j] + d1s[j]
                    d = d_cur - d_cur * p_k[j]
                    adj_k[j] = d if ck[j] < 0 else 0.0
                    da_k[j] = d
                gw = gw_in[k, b]
                for c in range(n_in):
                    e = x[c]
                    if e != 0.0:
                        row = gw[c]
                        for j in range(n):
                            row[j] += e * (da_k[j] if c > ck[j] else 0.0)
                if recurrent:
                    g_syn[k, t, b, :] = da_k
            # What step t's input asks of the previous step's spikes.
            if t > 0:
                for j in range(n):
                    back[j] = 0.0
                for o in range(m):
                    g = go[o]
                    if g != 0.0:
                        row = w_out[o]
                        for j in range(co[o] + 1, n):
                            back[j] += g * row[j]
                if recurrent:
                    for k in range(states):
                        da_k = d_a[k]
                        ck = cuts[k, t, b]
                        for i in range(n):
                            g = da_k[i]
                            if g != 0.0:
                                row = w_rec[k, i]
                                for j in range(max(ck[i] - n_in + 1, 0), n):
                                    back[j] += g * row[j]


@njit(cache=True)
def _masked_recurrent(g_syn, cuts, ns, n_in, extra):
    """Where a hidden spike's event clipped target ``i`` (``cuts >= n_in``), the recurrent
    weights from that source and the ones before it get no gradient: such entries of
    ``g_syn`` move into ``extra [state, N, N]`` for the later sources only (and are zeroed),
    so that ``sum_t g_syn[t]^T n[t - 1] + extra`` is the gradient of the recurrent weights."""
    states, n_steps, batch, n = g_syn.shape
    for k in range(states):
        for t in range(1, n_steps):
            for b in range(batch):
                for i in range(n):
                    first = cuts[k, t, b, i] - n_in + 1
                    if first > 0:
                        g = g_syn[k, t, b, i]
                        g_syn[k, t, b, i] = 0.0
                        if g != 0.0:
                            z = ns[t - 1, b]
                            row = extra[k, i]
                            for s in range(first, n):
                                row[s] += g * z[s]


def xylo_backward(grads, saved, w_rec, w_out, hidden, output, surrogate, spiking_out: bool):
    """Adjoint of :func:`xylo_forward`: the gradients of ``w_in`` (one ``[N, inputs]`` per
    synaptic state), ``w_rec`` (one ``[N, N]`` per state, or None) and ``w_out`` ``[M, N]``.

    ``grads``: the gradients of ``(v, n, i1, i2, v_out, n_out, i_out)``, None where there is
    none; ``saved``: ``(counts, v, n, v_out, n_out, flags, flags_out, cuts, cuts_out, owns)``;
    the rest as for :func:`xylo_forward`; ``spiking_out``: whether the output spike counts
    carry the surrogate's gradient."""
    _threads()
    counts, vs, ns, vo, no, flags, flags_o, cuts, cuts_o, owns = saved
    p_syn, p_mem, _, theta, unit, _ = hidden
    p_syn_o, p_mem_o, _, theta_o, unit_o, _ = output
    states = len(p_syn)
    n_steps, batch, n_in = counts.shape
    n, m = vs.shape[2], vo.shape[2]
    none = np.zeros((0, 0, 0))
    g = [_f64(x) if x is not None else none for x in grads]
    kind, scale = SURROGATE_CODES[surrogate.kind], float(surrogate.scale)
    cutoff = np.inf if surrogate.cutoff is None else float(surrogate.cutoff)
    recurrent = w_rec is not None
    w_rec_a = np.stack([_f64(w) for w in w_rec]) if recurrent else np.zeros((states, 0, 0))
    f64 = torch.float64
    g_syn = torch.empty((states, n_steps, batch, n) if recurrent else (states, 0, 0, 0), dtype=f64)
    gw_in = torch.zeros(states, batch, n_in, n, dtype=f64)
    gw_out = torch.zeros(batch, n, m, dtype=f64)
    f = [_f64(x) for x in (p_mem, theta, unit, p_syn_o, p_mem_o, theta_o, unit_o)]
    ns_a = _f64(ns)
    owns_a = _f64(owns) if owns.shape[0] else ns_a
    cuts_a = _array(cuts)
    _backward(*g, _f64(counts), _f64(vs), ns_a, owns_a, _f64(vo), _f64(no), _array(flags),
              _array(flags_o), cuts_a, _array(cuts_o), w_rec_a, _f64(w_out),
              np.stack([_f64(p) for p in p_syn]), *f, kind, scale, cutoff, bool(spiking_out),
              g_syn.numpy(), gw_in.numpy(), gw_out.numpy())  # fmt: skip
    grad_in = [gw_in[k].sum(0).T for k in range(states)]
    grad_out = gw_out.sum(0).T
    grad_rec = None
    if recurrent:  # sum over steps and samples of g_syn[t]^T n[t - 1]
        extra = None
        if n_steps > 1 and bool((cuts[:, 1:] >= n_in).any()):
            extra = torch.zeros(states, n, n, dtype=f64)
            _masked_recurrent(g_syn.numpy(), cuts_a, ns_a, n_in, extra.numpy())
        earlier = ns[:-1].reshape(-1, n)
        grad_rec = [g_syn[k, 1:].reshape(-1, n).T @ earlier for k in range(states)]
        if extra is not None:
            grad_rec = [g + extra[k] for k, g in enumerate(grad_rec)]
    return grad_in, grad_rec, grad_out
