"""A fused time loop for LIF, LI and IF populations: the float simulator's fast path.

``lif_scan`` runs the same dynamics as :func:`workbench.neurons.lif_step` (and ``li_step``)
over the whole time axis, with an optional self-recurrent weight matrix, and writes its own
backward pass (the adjoint of the discrete recursion, with the surrogate derivative at the
spikes and the reset not differentiated, exactly what autograd computes through the step
functions).  It saves only what the backward pass needs, and skips autograd's per-operation
bookkeeping, which is most of the cost of a small network on a CPU.  The test suite holds it
equal to autograd through the step functions, forward and backward, in float64.

Two kernels run the loop: ``"compiled"`` (:mod:`workbench.kernels`, one Numba loop per sample,
the default on the CPU) and ``"torch"`` (the loop below in tensor operations: the reference,
and the path on other devices).  :func:`project` is the input projection ``x @ w.T``, computed
from the non-zeros when the input is sparse enough.  ``WORKBENCH_KERNEL=torch`` in the
environment makes the torch loop and the dense projection the default everywhere.

The torch kernel has two forms.  With a recurrent weight it is the loop over time steps
(``_loop_forward`` / ``_loop_backward``, the general form: about ten small operations a step
each way).  Without one, the synaptic current is a linear time-invariant filter of the input,
so it, and every other linear part of the recursion (an LI membrane, both adjoints), is
computed for all steps at once by :func:`linear_filter`; only the threshold and the reset of
a spiking population stay a loop over time: two operations a step (three with per-neuron
threshold or reset, or a reset by subtraction), written straight into preallocated outputs.
On a GPU each operation is a kernel launch, and there launches, not arithmetic, bound the
time of a network this size (``benchmarks/kernel_launches.py`` counts them).  The two forms
agree up to float summation order (``tests/test_kernels.py``).
"""

from __future__ import annotations

import os

import torch

from workbench import kernels
from workbench.neurons import LIFParameters
from workbench.nonlinearity import mirror_gain, mirror_gain_and_slope

KERNELS = ("compiled", "torch")
# Below this fraction of non-zeros, the input projection works from the non-zeros.  On the
# 2-core CPU, at 5 % density (3,200 x 700 spikes onto 256 targets) the sparse product took
# 2.4 ms and its weight gradient 2.9 ms against 9.2 ms each dense; their cost grows with the
# spikes, which puts the break-even near 20 %, so 15 % keeps a margin.
SPARSE_DENSITY = 0.15
# How linear_filter runs: "steps" (one operation per time step: a single pass over memory)
# or "doubling" (a log-depth scan: ~2 log2(T) operations, each a pass over the whole tensor).
# None: "doubling" on a GPU, where an operation costs a launch, "steps" on the CPU.
FILTER_METHODS = ("steps", "doubling")
FILTER_METHOD: str | None = None


def default_kernel() -> str:
    """The kernel a new network uses: ``WORKBENCH_KERNEL`` if set, else ``"compiled"``."""
    kernel = os.environ.get("WORKBENCH_KERNEL", "compiled")
    if kernel not in KERNELS:
        raise ValueError(f"WORKBENCH_KERNEL: {kernel!r} must be one of {list(KERNELS)}")
    return kernel


def _coefficient(value, like: torch.Tensor):
    """A parameter as a Python number, or as a tensor on ``like``'s device and dtype."""
    if torch.is_tensor(value):
        return value.to(device=like.device, dtype=like.dtype)
    return float(value)


def linear_filter(x: torch.Tensor, a, reverse: bool = False, method: str | None = None):
    """``y_t = a_t * y_{t-1} + x_t`` along the first (time) axis of ``x``, from ``y_{-1} = 0``
    (``reverse``: ``y_t = a_t * y_{t+1} + x_t`` from the end); a new tensor, ``x`` untouched.

    ``a`` is a number, a tensor that broadcasts against one step of ``x`` (per-neuron
    coefficients ``[n]``), or a tensor shaped like ``x`` (a coefficient per step).
    ``method``: one of :data:`FILTER_METHODS`; None takes :data:`FILTER_METHOD`, else
    ``"doubling"`` off the CPU and ``"steps"`` on it.  ``"doubling"`` is the Hillis-Steele scan
    of the affine maps ``y -> a_t y + x_t``: after the pass with offset ``d`` every entry holds
    the composition over the last ``2 d`` steps, so ``ceil(log2 T)`` passes give the whole sum
    (same result as the step loop up to float summation order).
    """
    method = method or FILTER_METHOD or ("steps" if x.device.type == "cpu" else "doubling")
    if method not in FILTER_METHODS:
        raise ValueError(f"method: {method!r} must be one of {list(FILTER_METHODS)}")
    varying = torch.is_tensor(a) and a.dim() == x.dim()
    if not torch.is_tensor(a) and a == 0:
        return x.clone()  # no memory: the step's own input (a delta synapse's current)
    n_steps = x.shape[0]

    def later(d):  # the entries that take a contribution from d steps before them
        return slice(0, n_steps - d) if reverse else slice(d, n_steps)

    def earlier(d):  # ... and where that contribution comes from
        return slice(d, n_steps) if reverse else slice(0, n_steps - d)

    def head(d):  # the entries with no step d before them: complete already
        return slice(n_steps - d, n_steps) if reverse else slice(0, d)

    if method == "steps":
        y = torch.empty_like(x)
        # views of every step made at once (cheaper than indexing one at a time)
        xs, ys = x.unbind(0), y.unbind(0)
        scales = a.unbind(0) if varying else [a] * n_steps
        order = range(n_steps - 1, -1, -1) if reverse else range(n_steps)
        previous = None
        for t in order:
            if previous is None:
                ys[t].copy_(xs[t])
            else:
                _add_scaled(xs[t], scales[t], ys[previous], ys[t])
            previous = t
        return y
    if n_steps < 2:
        return x.clone()
    # Two buffers each for the sums and the composed coefficients, written in turn; the
    # caller's x and a are read by the first pass and never written.
    y, spare = x, torch.empty_like(x)
    coefficient, spare_coefficient = a, (torch.empty_like(a) if varying else None)
    d = 1
    while d < n_steps:
        scale = coefficient[later(d)] if varying else coefficient
        _add_scaled(y[later(d)], scale, y[earlier(d)], spare[later(d)])
        spare[head(d)] = y[head(d)]
        y, spare = spare, (torch.empty_like(x) if y is x else y)
        if 2 * d < n_steps:  # the coefficient over the next span (the last pass needs none)
            if varying:
                out = spare_coefficient
                torch.mul(coefficient[later(d)], coefficient[earlier(d)], out=out[later(d)])
                out[head(d)] = coefficient[head(d)]
                spare_coefficient = torch.empty_like(a) if coefficient is a else coefficient
                coefficient = out
            else:
                coefficient = coefficient * coefficient
        d *= 2
    return y


def _add_scaled(base, scale, other, out):
    """``out = base + scale * other`` in one operation; ``scale`` a number or a tensor."""
    if torch.is_tensor(scale):
        torch.addcmul(base, scale, other, out=out)
    else:
        torch.add(base, other, alpha=scale, out=out)


def _states(p, vs, is_) -> tuple:
    """What the adjoint keeps of the forward's states: the membranes and currents where the
    mirror's gain depends on them, else nothing."""
    return (vs, is_) if p.mirror is not None else ()


def _first(*tensors):
    return next((t for t in tensors if t is not None), None)


class _LIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, external, w_rec, p, spiking, surrogate, noise, compiled, record):
        ctx.p, ctx.spiking, ctx.has_rec = p, spiking, w_rec is not None
        ctx.surrogate, ctx.compiled = surrogate, compiled
        # An output the loss does not use gets None, not a tensor of zeros, in backward.
        ctx.set_materialize_grads(False)
        # The mirror's adjoint needs the membrane and current of every step.
        record = record or p.mirror is not None
        if compiled:
            zs, vs, is_, distance = kernels.lif_forward(external, w_rec, p, spiking, noise, record)
            ctx.save_for_backward(zs, distance, w_rec, *_states(p, vs, is_))
            return (zs, vs, is_) if spiking else (vs.clone(), vs, is_)
        # The filters are linear; the mirror's gain depends on the membrane.
        ctx.filtered = w_rec is None and external.shape[0] > 0 and p.mirror is None
        if ctx.filtered:
            zs, vs, is_, distance = _filtered_forward(external, p, spiking, noise)
        else:
            zs, vs, is_, distance = _loop_forward(external, w_rec, p, spiking, noise)
        ctx.save_for_backward(zs, distance, w_rec, *_states(p, vs, is_))
        if not spiking:
            return vs.clone(), vs, is_
        return zs, vs, is_

    @staticmethod
    def backward(ctx, grad_z, grad_v, grad_i):
        zs, distance, w_rec, *states = ctx.saved_tensors
        p, spiking, has_rec = ctx.p, ctx.spiking, ctx.has_rec
        like = _first(grad_z, grad_v, grad_i)
        if like is None:  # no output has a gradient
            return None, None, None, None, None, None, None, None
        if ctx.compiled:
            grad_external = kernels.lif_backward(
                grad_z,
                grad_v,
                grad_i,
                zs,
                distance,
                ctx.surrogate,
                w_rec,
                p,
                spiking,
                like,
                *states,
            )
            grad_w = None
            if has_rec and not spiking:  # a leaky integrator sends no spikes to itself
                grad_w = torch.zeros_like(w_rec)
            elif has_rec:  # sum over steps and samples of d_i[t]^T z[t - 1], one product
                n = like.shape[2]
                grad_w = grad_external[1:].reshape(-1, n).T @ zs[:-1].reshape(-1, n)
            return grad_external, grad_w, None, None, None, None, None, None
        if ctx.filtered:
            grad_external = _filtered_backward(
                grad_z, grad_v, grad_i, zs, distance, p, spiking, ctx.surrogate
            )
            return grad_external, None, None, None, None, None, None, None
        grad_external, grad_w = _loop_backward(
            grad_z, grad_v, grad_i, zs, distance, w_rec, p, spiking, ctx.surrogate, *states
        )
        return grad_external, grad_w, None, None, None, None, None, None


def _loop_forward(external, w_rec, p, spiking, noise):
    """The general form, one step at a time: ``(zs, vs, is_, distance)``; ``distance`` is
    ``V - threshold`` before the reset (``zs`` and ``distance`` None for LI)."""
    n_steps, batch, n = external.shape
    v = torch.zeros((batch, n), dtype=external.dtype, device=external.device) + p.v_leak
    i = torch.zeros_like(v)
    z = torch.zeros_like(v)
    zs = torch.empty_like(external) if spiking else None
    vs = torch.empty_like(external)
    is_ = torch.empty_like(external)
    distance = torch.empty_like(external) if spiking else None
    leak = (1.0 - p.beta) * p.v_leak
    for t in range(n_steps):
        if p.mirror is None:
            v = p.beta * v + p.current_gain * i + leak
        else:
            charge = p.current_gain * i
            v = p.beta * v + mirror_gain(v, charge, p.mirror) * charge + leak
        if noise is not None:
            v = v + noise[t]
        i = p.alpha * i + external[t]
        if w_rec is not None:
            i = i + z @ w_rec.T
        if spiking:
            x = torch.sub(v, p.threshold, out=distance[t])
            z = (x >= 0).to(v.dtype)
            if p.reset_subtract:
                v = v - z * p.threshold
            else:
                v = v + z * (p.v_reset - v)
            zs[t] = z
        vs[t], is_[t] = v, i
    return zs, vs, is_, distance


def _loop_backward(
    grad_z, grad_v, grad_i, zs, distance, w_rec, p, spiking, surrogate, vs=None, is_=None
):
    """The adjoint of :func:`_loop_forward`, one step at a time: ``(grad_external, grad_w)``.
    With the mirror, ``vs`` and ``is_`` are the forward's membranes and currents: the step
    from ``(v, i)`` adds ``g(v) gain i``, so ``d/dv = beta + g'(v) gain i`` and
    ``d/di = g(v) gain``."""
    has_rec = w_rec is not None
    derivs = surrogate.derivative(distance) if spiking else None
    like = _first(grad_z, grad_v, grad_i)
    n_steps = like.shape[0]
    zero = torch.zeros_like(like[0])
    grad_external = torch.empty_like(like)
    adj_v = zero  # dL/dv_t carried from step t + 1
    adj_i = zero  # dL/di_t carried from step t + 1
    adj_input_next = zero  # dL/d(input current of step t + 1)
    grad_w = torch.zeros_like(w_rec) if has_rec else None
    for t in range(n_steps - 1, -1, -1):
        d_v = adj_v if grad_v is None else adj_v + grad_v[t]
        d_i = adj_i if grad_i is None else adj_i + grad_i[t]
        if spiking:
            d_z = zero if grad_z is None else grad_z[t]
            if has_rec:
                d_z = d_z + adj_input_next @ w_rec
            # v_t = V_t - threshold * z_t  or  V_t * (1 - z_t) + v_reset * z_t  (z detached)
            through_reset = d_v if p.reset_subtract else d_v * (1.0 - zs[t])
            d_pre = through_reset + d_z * derivs[t]
        else:
            d_z = grad_z[t] if grad_z is not None else zero  # output is v itself
            d_pre = d_v + d_z
        grad_external[t] = d_i
        if has_rec and spiking and t > 0:  # an LI population sends no spikes to itself
            grad_w += d_i.T @ zs[t - 1]
        adj_input_next = d_i
        if p.mirror is None or t == 0:  # (at t = 0 the carried adjoints are not used)
            adj_v = p.beta * d_pre
            adj_i = p.current_gain * d_pre + p.alpha * d_i
        else:
            charge = p.current_gain * is_[t - 1]
            g, slope = mirror_gain_and_slope(vs[t - 1], charge, p.mirror)
            adj_v = (p.beta + slope * charge) * d_pre
            adj_i = g * p.current_gain * d_pre + p.alpha * d_i
    return grad_external, grad_w


def _is_zero(value) -> bool:
    return not torch.is_tensor(value) and value == 0


def _sum(*tensors):
    """The sum of the tensors that are not None (None if all are)."""
    present = [t for t in tensors if t is not None]
    if not present:
        return None
    total = present[0]
    for t in present[1:]:
        total = total + t
    return total


def _filtered_forward(external, p, spiking, noise):
    """The forward pass without recurrence: ``(zs, vs, is_, distance)`` as
    :func:`_loop_forward`, with every linear part computed for all steps at once."""
    alpha, beta, gain, threshold, v_leak, v_reset = (
        _coefficient(value, external)
        for value in (p.alpha, p.beta, p.current_gain, p.threshold, p.v_leak, p.v_reset)
    )
    n_steps = external.shape[0]
    is_ = linear_filter(external, alpha)  # i_t = alpha i_{t-1} + external_t
    if not spiking:
        # v_t = beta v_{t-1} + gain i_{t-1} + (1 - beta) v_leak + noise_t, from v_{-1} = v_leak
        # (so v_0 = v_leak + noise_0): a filter of this drive
        drive = torch.empty_like(external)
        torch.mul(is_[: n_steps - 1], gain, out=drive[1:])
        leak = (1.0 - beta) * v_leak
        if not _is_zero(leak):
            drive[1:] += leak
        drive[0] = v_leak
        if noise is not None:
            drive += noise
        return None, linear_filter(drive, beta), is_, None
    # The distance below threshold q = threshold - v follows
    #     q_t = beta q_{t-1} + (1 - beta) (threshold - v_leak) - gain i_{t-1} - noise_t
    # from q_{-1} = threshold - v_leak; a neuron fires where q_t <= 0 (v_t >= threshold), and
    # the reset sets q_t to threshold - v_reset, or adds threshold to it.  Everything but the
    # step from q_{t-1} is added up front: ``pre`` holds it, then q_t before the reset.
    pre = torch.empty_like(external)
    torch.mul(is_[: n_steps - 1], -gain, out=pre[1:])
    rest = (1.0 - beta) * (threshold - v_leak)
    if not _is_zero(rest):
        pre[1:] += rest
    pre[0] = threshold - v_leak
    if noise is not None:
        pre -= noise
    after = torch.empty_like(external)  # q_t after the reset
    fired = None
    if p.reset_subtract:
        fired = torch.empty(external.shape, dtype=torch.bool, device=external.device)
    refill = threshold - v_reset
    pres, afters = pre.unbind(0), after.unbind(0)  # every step's view at once
    fireds = fired.unbind(0) if fired is not None else None
    for t in range(n_steps):
        q = pres[t]
        if t:
            _add_scaled(q, beta, afters[t - 1], q)
        if p.reset_subtract:
            torch.le(q, 0, out=fireds[t])
            _add_scaled(q, threshold, fireds[t], afters[t])
        elif torch.is_tensor(refill):
            torch.where(q <= 0, refill, q, out=afters[t])
        else:  # q if q > 0, else refill: one operation
            torch.threshold(q, 0.0, refill, out=afters[t])
    distance = pre.neg_()  # V - threshold before the reset
    zs = (fired if fired is not None else distance >= 0).to(external.dtype)
    vs = after.neg_().add_(threshold)
    return zs, vs, is_, distance


def _filtered_backward(grad_z, grad_v, grad_i, zs, distance, p, spiking, surrogate):
    """The adjoint of :func:`_filtered_forward`: the gradient of the external input.

    With ``d_t`` the adjoint of the membrane before its reset (``V_t``),
    ``d_t = (beta d_{t+1} + grad_v_t) m_t + grad_z_t surrogate'(V_t - threshold)``, where
    ``m_t = 1 - z_t`` for a reset to ``v_reset`` and 1 for one by subtraction (LI: ``m = 1``
    and ``grad_z`` is the gradient of ``v`` itself), and the current's adjoint, which is the
    input's gradient, is ``g_t = alpha g_{t+1} + gain d_{t+1} + grad_i_t``: two filters
    backwards in time.
    """
    like = _first(grad_z, grad_v, grad_i)
    alpha, beta, gain = (_coefficient(v, like) for v in (p.alpha, p.beta, p.current_gain))
    coefficient = beta
    if spiking:
        through_spike = None if grad_z is None else grad_z * surrogate.derivative(distance)
        through_membrane = grad_v
        if not p.reset_subtract:
            keep = 1.0 - zs
            coefficient = keep * beta
            if grad_v is not None:
                through_membrane = grad_v * keep
        drive = _sum(through_membrane, through_spike)
    else:
        drive = _sum(grad_v, grad_z)
    d_pre = None if drive is None else linear_filter(drive, coefficient, reverse=True)
    if d_pre is None:
        return torch.zeros_like(like) if grad_i is None else linear_filter(grad_i, alpha, True)
    n_steps = d_pre.shape[0]
    if grad_i is None:
        drive = torch.empty_like(d_pre)
        torch.mul(d_pre[1:], gain, out=drive[: n_steps - 1])
        drive[n_steps - 1] = 0
    else:
        drive = grad_i.clone()
        _add_scaled(drive[: n_steps - 1], gain, d_pre[1:], drive[: n_steps - 1])
    return linear_filter(drive, alpha, reverse=True)


def lif_scan(
    external,
    w_rec,
    p: LIFParameters,
    spiking: bool,
    surrogate,
    noise=None,
    kernel="compiled",
    record=True,
):
    """Run a LIF (``spiking``) or LI population over time.

    ``external``: input current ``[T, B, n]``; ``w_rec``: ``[n, n]`` weights of a recurrent
    projection onto itself (spikes of the previous step), or None; ``noise``: an optional
    ``[T, B, n]`` added to the membrane each step (temporal noise of an analog chip; it shifts
    the state but carries no gradient).  The parameters in ``p`` may be numbers or per-neuron
    tensors ``[n]`` (fixed-pattern mismatch).  Returns ``(output, v, i)``, each
    ``[T, B, n]``; ``output`` is the spikes (LIF) or ``v`` (LI).  ``kernel``: one of
    :data:`KERNELS`; ``"compiled"`` falls back to ``"torch"`` where it cannot run (a GPU
    tensor, a dtype other than float32/float64).  ``record=False``: the caller needs only the
    spikes of a spiking population, so the compiled kernel need not write ``v`` and ``i``
    (they come back empty).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel: {kernel!r} must be one of {list(KERNELS)}")
    tensors = [external] + [t for t in (w_rec, noise) if t is not None]
    compiled = kernel == "compiled" and kernels.available(*tensors)
    return _LIFScan.apply(external, w_rec, p, spiking, surrogate, noise, compiled, record)


def if_scan(external, p: LIFParameters, surrogate, kernel="compiled", record=True):
    """Run a non-leaky integrate-and-fire population (:func:`workbench.neurons.if_step`, no
    recurrence) over time through :func:`lif_scan`: ``(spikes, v, i)``, each ``[T, B, n]``
    (``v`` and ``i`` empty when not ``record`` on the compiled kernel).

    IF adds a step's input to the membrane in that same step; the LIF recursion with IF's
    constants (``alpha = 0``, ``beta = 1``, gain 1) adds it one step later.  So the LIF runs
    one step more, on the input followed by a zero step, and its steps ``1..T`` are IF's
    (its step 0 only holds the resting membrane, below a threshold > 0, so it never fires);
    its current at step ``t`` is IF's input of step ``t``.  Forward and gradient are IF's
    exactly: the shift is a copy, through which autograd carries the gradient."""
    ahead = torch.cat([external, external.new_zeros(1, *external.shape[1:])])
    spikes, v, i = lif_scan(ahead, None, p, True, surrogate, kernel=kernel, record=record)
    if v.shape[0] == ahead.shape[0]:  # recorded (else empty)
        v, i = v[1:], i[:-1]
    return spikes[1:], v, i


class _SparseProject(torch.autograd.Function):
    """``x @ w.T`` from the non-zeros of ``x`` (forward, and the gradient of ``w``)."""

    @staticmethod
    def forward(ctx, x, w, rows: kernels.SparseRows):
        ctx.save_for_backward(w)
        ctx.rows, ctx.x_shape = rows, x.shape
        return rows.project(w).reshape(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        (w,) = ctx.saved_tensors
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = (g2 @ w).reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            grad_w = ctx.rows.weight_grad(g2)
        return grad_x, grad_w, None


def project(x: torch.Tensor, w: torch.Tensor, kernel: str = "compiled") -> torch.Tensor:
    """``x @ w.T`` (``x``: ``[..., n_in]``, ``w``: ``[n_out, n_in]``); from the non-zeros of
    ``x`` when the compiled kernels can run and fewer than :data:`SPARSE_DENSITY` of its
    entries are non-zero (spike inputs), else dense.  Equal up to float summation order."""
    if kernel == "compiled" and x.dim() >= 2 and x.dtype == w.dtype and kernels.available(x, w):
        rows = kernels.SparseRows.of(x.reshape(-1, x.shape[-1]), SPARSE_DENSITY)
        if rows is not None:
            return _SparseProject.apply(x, w, rows)
    return x @ w.T
