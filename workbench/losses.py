"""Losses for outputs that live in time: the loss-shaping family on the output membrane, and a
multi-spike timing loss on the output spike trains.

**Losses on the output membrane** (a leaky-integrator output, ``V_k(t)`` for class ``k`` over a
run of duration ``T``), after Nowotny, Turner & Knight, "Loss shaping enhances exact gradient
learning with Eventprop in spiking neural networks", Neuromorph. Comput. Eng. 5, 014001 (2025),
arXiv:2212.01232.  Each turns the trace into one score per class and takes the cross-entropy of
their softmax, ``-log(exp(S_l) / sum_k exp(S_k))`` for the label ``l``, averaged over the batch:

- ``L_max`` (readout ``max_membrane``): ``S_k = max_t V_k(t)``;
- ``L_sum`` (readout ``sum_membrane``): ``S_k = (1/T) int_0^T V_k(t) dt``;
- ``L_sum_exp`` (readout ``sum_exp_membrane``): ``S_k = (1/T) int_0^T exp(-t/T) V_k(t) dt``,
  the integral weighted from 1 at the start to 1/e at the end (their "loss shaping": early
  evidence counts more, which gives the hidden layer more gradient from early output changes);
- ``L_first`` (readout ``first_spike``, a spiking output) is Wunderlich & Pehle's
  time-to-first-spike loss, :func:`workbench.algorithms.eventprop.first_spike_loss`.

The paper found that learning SHD with exact gradients depended strongly on the loss (an exact
gradient does not see spikes being created or deleted, and descending it can delete the spikes
that matter), and that "loss shaping", a weighting function inside an integral loss that
increases the gradient flowing back to earlier layers, fixes it: ``L_sum_exp`` is the loss of
its best SHD results (the authors' code, ``tnowotny/genn_eventprop``, ``LOSS_TYPE =
"sum_weigh_exp"`` in its SHD configurations; mlGeNN's ``AvgVarExpWeight`` readout).  The
weighting's time constant is the run's duration ``T``, as there (1 s trials for SHD, 1 ms steps,
``tau_mem`` 20 ms, ``tau_syn`` 5 ms in those configurations).

A time-stepped backend has the membrane on the grid ``t_k = k dt`` (``k < n_steps``,
``T = n_steps dt``), and the integrals are its left Riemann sums (as the GeNN code accumulates
them step by step).  The event backend integrates exactly in continuous time
(:func:`exact_membrane_averages`), and its adjoint takes the integrand's derivative as a
continuous source on the membrane adjoint (:mod:`workbench.events`).

**A multi-spike timing loss**: the van Rossum distance (M. C. W. van Rossum, "A novel spike
distance", Neural Computation 13, 751-763, 2001) between each output neuron's spike train and a
target train, as the SuperSpike loss (Zenke & Ganguli, Neural Computation 30, 1514-1541, 2018).
Each train is filtered with ``exp(-t / tau)`` and
``D = (1/tau) int_0^inf (f_out(t) - f_target(t))^2 dt``, which in closed form is::

    D = 1/2 sum_ij K(t_i - t_j) + 1/2 sum_ij K(s_i - s_j) - sum_ij K(t_i - s_j),
    K(d) = exp(-|d| / tau)

over output times ``t`` and target times ``s``: a function of every output spike time, so
EventProp differentiates it exactly through all spikes of a neuron (the event backend's spike
times), and surrogate training through the spike raster (spikes at ``t_k = k dt``).  For
classification the label's neuron has the target train ``target_times`` and every other neuron
the empty train; the loss is the sum of the distances over the output neurons, averaged over
the batch.  The class scores (prediction) are ``sum_ij K(t_ci - s_j)``: the class whose target
pattern (its neuron on the target train, the others silent) is nearest in this distance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

MEMBRANE_READOUTS = ("max_membrane", "sum_membrane", "sum_exp_membrane")  # an 'li' output
SPIKE_READOUTS = ("spike_count", "first_spike", "van_rossum")  # a spiking output

VAN_ROSSUM_TAU = 5.0  # ms: the default time constant of the van Rossum filter
DEFAULT_TARGET_FRACTIONS = (0.25, 0.5, 0.75)  # default target train: at these fractions of T


# ------------------------------------------------------------------------- membrane averages
def membrane_average(v: torch.Tensor, dt: float, weighted: bool) -> torch.Tensor:
    """``(1/T) int_0^T w(t) V(t) dt`` of a trace on the grid ``v`` ``[T, B, n]`` as its left
    Riemann sum (``t_k = k dt``, ``T = n_steps dt``); ``w = exp(-t/T)`` if ``weighted``, else 1.
    Returns ``[B, n]``."""
    n_steps = v.shape[0]
    if not weighted:
        return v.mean(dim=0)
    k = torch.arange(n_steps, dtype=v.dtype, device=v.device)
    w = torch.exp(-k / n_steps)  # exp(-t_k / T) with t_k / T = k / n_steps
    return torch.einsum("t,t...->...", w, v) / n_steps


def _integral_of_decay(rate: float, span: torch.Tensor) -> torch.Tensor:
    """``int_0^span exp(-rate u) du = (1 - exp(-rate span)) / rate`` (accurate for small
    ``rate span``)."""
    return -torch.expm1(-rate * span) / rate


def average_kernels(times: torch.Tensor, tau_mem: float, tau_syn: float, t_end: float):
    """For input events at ``times`` (any shape, ``<= t_end``) into a leaky integrator, the
    integrals over ``[s, T]`` (``T = t_end``) of the responses to a unit current jump at ``s``:
    ``Q[w] = int_s^T w(t) p(t - s) dt`` (the membrane) and ``R[w] = int_s^T w(t) beta(t - s) dt``
    (a unit membrane jump, for the adjoint), for ``w = 1`` (index 0) and ``w = exp(-t/T)``
    (index 1).  ``p(u) = c (exp(-u/tau_mem) - exp(-u/tau_syn))``, ``c = tau_syn / (tau_mem -
    tau_syn)``, ``beta(u) = exp(-u/tau_mem)``.  Each: ``w(s) int_0^(T-s) exp(-(1/tau_w + 1/tau)
    u) du``.  Returns ``(Q, R)``, each ``[2, *times.shape]``."""
    c = tau_syn / (tau_mem - tau_syn)
    span = (t_end - times).clamp(min=0)
    q, r = [], []
    weights = (torch.ones_like(times), torch.exp(-times / t_end))  # w(s)
    for inverse_tau_w, weight in zip((0.0, 1.0 / t_end), weights):
        e_mem = _integral_of_decay(inverse_tau_w + 1.0 / tau_mem, span)
        e_syn = _integral_of_decay(inverse_tau_w + 1.0 / tau_syn, span)
        q.append(c * weight * (e_mem - e_syn))
        r.append(weight * e_mem)
    return torch.stack(q), torch.stack(r)


def exact_membrane_averages(times, jumps, tau_mem, tau_syn, t_end) -> torch.Tensor:
    """``(1/T) int_0^T w(t) V(t) dt`` in continuous time of a leaky integrator driven by current
    jumps ``jumps`` ``[B, E, n]`` at ``times`` ``[B, E]`` (from zero state), for ``w = 1`` and
    ``w = exp(-t/T)``: ``[2, B, n]``.  ``V(t) = sum_e J_e p(t - s_e)``, so the integral is
    ``sum_e J_e Q(s_e)`` (:func:`average_kernels`)."""
    q, _ = average_kernels(times, tau_mem, tau_syn, t_end)
    return torch.einsum("wbe,ben->wbn", q, jumps) / t_end


# ------------------------------------------------------------------------- van Rossum
def target_times_for(target_times: Sequence[float] | None, duration: float) -> list[float]:
    """The target train in ms: ``target_times`` as given, or (None) spikes at a quarter, half
    and three quarters of the run's ``duration``."""
    if target_times is None:
        return [f * duration for f in DEFAULT_TARGET_FRACTIONS]
    return [float(t) for t in target_times]


def target_problems(target_times, duration: float | None = None, field: str = "target_times"):
    """Why ``target_times`` is not a target train (empty when it is): None, or a non-empty list
    of finite numbers in ``[0, duration)`` ms (the run's duration, when known)."""
    from workbench.spec import Problem

    if target_times is None:
        return []
    if isinstance(target_times, (str, bytes)) or not isinstance(target_times, (list, tuple)):
        return [Problem(field, f"{target_times!r} must be a list of times in ms, or null")]
    if not target_times or len(target_times) > 1000:
        return [Problem(field, f"must hold 1 to 1000 times in ms (has {len(target_times)})")]
    for k, t in enumerate(target_times):
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            return [Problem(f"{field}[{k}]", f"{t!r} must be a finite number of ms")]
        if t < 0 or (duration is not None and t >= duration):
            upper = f"{duration:g}" if duration is not None else "the run's duration"
            return [Problem(f"{field}[{k}]", f"{t!r} must be in [0, {upper}) ms (the run)")]
    return []


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """``sum_ij exp(-|a_i - b_j| / tau)`` over the last axes of ``a`` ``[..., I]`` and ``b``
    ``[..., J]`` (``inf``: no spike, left out), ``[...]``."""
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    a0 = torch.where(fa, a, torch.zeros_like(a))
    b0 = torch.where(fb, b, torch.zeros_like(b))
    gap = (a0[..., :, None] - b0[..., None, :]).abs()
    both = fa[..., :, None] & fb[..., None, :]
    return torch.where(both, torch.exp(-gap / tau), torch.zeros_like(gap)).sum((-1, -2))


def van_rossum_distance(times: torch.Tensor, targets: torch.Tensor, tau: float) -> torch.Tensor:
    """The van Rossum distance ``D`` (module docstring) between spike trains ``times``
    ``[..., I]`` and ``targets`` ``[..., J]`` (ms; ``inf`` pads), per train: ``[...]``."""
    return (
        0.5 * _kernel_sum(times, times, tau)
        + 0.5 * _kernel_sum(targets, targets, tau)
        - _kernel_sum(times, targets, tau)
    )


def _label_targets(labels, n_classes, target, like):
    """``[B, n, J]`` target trains: ``target`` for each sample's label neuron, none elsewhere."""
    out = torch.full((len(labels), n_classes, len(target)), math.inf, dtype=like.dtype)
    out[torch.arange(len(labels)), labels] = torch.tensor(target, dtype=like.dtype)
    return out.to(like.device)


def van_rossum_loss(times, labels, target_times, tau: float) -> torch.Tensor:
    """Classification loss on exact spike times ``times`` ``[B, n, K]`` (``inf``: none): the
    sum over output neurons of the van Rossum distance to the label's target pattern, averaged
    over the batch.  ``target_times``: the label neuron's train (ms)."""
    targets = _label_targets(labels, times.shape[1], target_times, times)
    return van_rossum_distance(times, targets, tau).sum(1).mean()


def van_rossum_scores(times, target_times, tau: float) -> torch.Tensor:
    """Class scores ``[B, n]`` of exact spike times ``[B, n, K]``: ``sum_ij K(t_ci - s_j)``."""
    target = torch.tensor(list(target_times), dtype=times.dtype, device=times.device)
    return _kernel_sum(times, target.expand(*times.shape[:2], len(target)), tau)


class _RasterSelfTerm(torch.autograd.Function):
    """``1/2 sum_kl z_k z_l a^|k-l|`` per train of a raster ``z`` ``[T, ...]`` (the van Rossum
    self term at ``t_k = k dt``, ``a = exp(-dt / tau)``) in ``O(T)``: with the causal and
    anti-causal filters ``F``, ``G`` of ``z`` (each including step ``k`` itself), ``M z = F + G
    - z`` and the term is ``1/2 sum_k z_k (M z)_k``; its gradient is ``M z``."""

    @staticmethod
    def forward(ctx, z, a):
        from workbench.fused import linear_filter

        mz = linear_filter(z, a) + linear_filter(z, a, reverse=True) - z
        ctx.save_for_backward(mz)
        return 0.5 * (z * mz).sum(0)

    @staticmethod
    def backward(ctx, grad):
        (mz,) = ctx.saved_tensors
        return grad[None] * mz, None


def raster_self_term(z: torch.Tensor, dt: float, tau: float) -> torch.Tensor:
    """``1/2 sum_kl z_k z_l exp(-|k - l| dt / tau)`` per train of ``z`` ``[T, ...]``."""
    return _RasterSelfTerm.apply(z, math.exp(-dt / tau))


def _target_trace(n_steps, dt, target, tau, like) -> torch.Tensor:
    """``m_k = sum_j exp(-|k dt - s_j| / tau)`` ``[T]``: the cross term's weight of step k."""
    grid = torch.arange(n_steps, dtype=like.dtype, device=like.device) * dt
    s = torch.tensor(list(target), dtype=like.dtype, device=like.device)
    return torch.exp(-(grid[:, None] - s[None, :]).abs() / tau).sum(1)


def van_rossum_raster_scores(spikes, dt: float, target_times, tau: float) -> torch.Tensor:
    """Class scores ``[B, n]`` of a spike raster ``[T, B, n]`` (spikes at ``t_k = k dt``)."""
    m = _target_trace(spikes.shape[0], dt, target_times, tau, spikes)
    return torch.einsum("t,tbn->bn", m, spikes)


def van_rossum_raster_loss(spikes, labels, dt: float, target_times, tau: float) -> torch.Tensor:
    """:func:`van_rossum_loss` of a spike raster ``[T, B, n]`` (spikes, or surrogate-gradient
    spikes, at ``t_k = k dt``; counts weigh as multiple spikes)."""
    self_out = raster_self_term(spikes, dt, tau).sum(1)  # [B]
    target = torch.tensor(list(target_times), dtype=spikes.dtype, device=spikes.device)
    self_target = 0.5 * _kernel_sum(target, target, tau)
    cross = van_rossum_raster_scores(spikes, dt, target_times, tau)
    cross = cross.gather(1, labels[:, None].to(cross.device))[:, 0]
    return (self_out + self_target - cross).mean()


# ------------------------------------------------------------------------- options
def readout_options(config) -> dict:
    """The readout settings of an algorithm's config that scoring needs besides the readout's
    name (``van_rossum_tau``, ``target_times``), as keyword arguments."""
    out = {}
    for name in ("van_rossum_tau", "target_times"):
        if hasattr(config, name):
            out[name] = getattr(config, name)
    return out


def options_of(options: Mapping | None, duration: float) -> tuple[float, list[float]]:
    """``(tau, target times)`` of the van Rossum readout from ``options``."""
    options = options or {}
    tau = options.get("van_rossum_tau")
    tau = VAN_ROSSUM_TAU if tau is None else float(tau)
    return tau, target_times_for(options.get("target_times"), duration)
