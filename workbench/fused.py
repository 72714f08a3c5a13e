"""A fused time loop for LIF and LI populations: the float simulator's fast path.

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
"""

from __future__ import annotations

import os

import torch

from workbench import kernels
from workbench.neurons import LIFParameters

KERNELS = ("compiled", "torch")
# Below this fraction of non-zeros, the input projection works from the non-zeros.  On the
# 2-core CPU, at 5 % density (3,200 x 700 spikes onto 256 targets) the sparse product took
# 2.4 ms and its weight gradient 2.9 ms against 9.2 ms each dense; their cost grows with the
# spikes, which puts the break-even near 20 %, so 15 % keeps a margin.
SPARSE_DENSITY = 0.15


def default_kernel() -> str:
    """The kernel a new network uses: ``WORKBENCH_KERNEL`` if set, else ``"compiled"``."""
    kernel = os.environ.get("WORKBENCH_KERNEL", "compiled")
    if kernel not in KERNELS:
        raise ValueError(f"WORKBENCH_KERNEL: {kernel!r} must be one of {list(KERNELS)}")
    return kernel


class _LIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, external, w_rec, p, spiking, surrogate, noise, compiled, record):
        ctx.p, ctx.spiking, ctx.has_rec = p, spiking, w_rec is not None
        ctx.surrogate, ctx.compiled = surrogate, compiled
        if compiled:
            zs, vs, is_, distance = kernels.lif_forward(external, w_rec, p, spiking, noise, record)
            ctx.save_for_backward(zs, distance, w_rec)
            return (zs, vs, is_) if spiking else (vs.clone(), vs, is_)
        n_steps, batch, n = external.shape
        v = torch.zeros((batch, n), dtype=external.dtype, device=external.device) + p.v_leak
        i = torch.zeros_like(v)
        z = torch.zeros_like(v)
        zs = torch.empty_like(external)
        vs = torch.empty_like(external)
        is_ = torch.empty_like(external)
        distance = torch.empty_like(external) if spiking else None  # V - threshold, pre-reset
        leak = (1.0 - p.beta) * p.v_leak
        for t in range(n_steps):
            v = p.beta * v + p.current_gain * i + leak
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
        ctx.save_for_backward(zs, distance if spiking else zs, w_rec)
        if not spiking:
            return vs.clone(), vs, is_
        return zs, vs, is_

    @staticmethod
    def backward(ctx, grad_z, grad_v, grad_i):
        zs, distance, w_rec = ctx.saved_tensors
        p, spiking, has_rec = ctx.p, ctx.spiking, ctx.has_rec
        if ctx.compiled:
            like = grad_z if grad_z is not None else grad_v
            grad_external = kernels.lif_backward(
                grad_z, grad_v, grad_i, zs, distance, ctx.surrogate, w_rec, p, spiking, like
            )
            grad_w = None
            if has_rec and not spiking:  # a leaky integrator sends no spikes to itself
                grad_w = torch.zeros_like(w_rec)
            elif has_rec:  # sum over steps and samples of d_i[t]^T z[t - 1], one product
                n = like.shape[2]
                grad_w = grad_external[1:].reshape(-1, n).T @ zs[:-1].reshape(-1, n)
            return grad_external, grad_w, None, None, None, None, None, None
        derivs = ctx.surrogate.derivative(distance) if spiking else None
        n_steps = grad_v.shape[0] if grad_v is not None else grad_z.shape[0]
        like = grad_z if grad_z is not None else grad_v
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
            adj_v = p.beta * d_pre
            adj_i = p.current_gain * d_pre + p.alpha * d_i
        return grad_external, grad_w, None, None, None, None, None, None


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
