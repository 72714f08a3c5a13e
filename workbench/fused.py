"""A fused time loop for LIF and LI populations: the float simulator's fast path.

``lif_scan`` runs the same dynamics as :func:`workbench.neurons.lif_step` (and ``li_step``)
over the whole time axis, with an optional self-recurrent weight matrix, and writes its own
backward pass (the adjoint of the discrete recursion, with the surrogate derivative at the
spikes and the reset not differentiated, exactly what autograd computes through the step
functions).  It saves only what the backward pass needs, and skips autograd's per-operation
bookkeeping, which is most of the cost of a small network on a CPU.  The test suite holds it
equal to autograd through the step functions, forward and backward, in float64.
"""

from __future__ import annotations

import torch

from workbench.neurons import LIFParameters, surrogate_derivative


class _LIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, external, w_rec, p: LIFParameters, spiking, kind, scale, noise):
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
        ctx.p, ctx.spiking, ctx.has_rec = p, spiking, w_rec is not None
        ctx.kind, ctx.scale = kind, scale
        ctx.save_for_backward(zs, distance if spiking else zs, w_rec if w_rec is not None else zs)
        if not spiking:
            return vs.clone(), vs, is_
        return zs, vs, is_

    @staticmethod
    def backward(ctx, grad_z, grad_v, grad_i):
        zs, distance, w_rec = ctx.saved_tensors
        p, spiking, has_rec = ctx.p, ctx.spiking, ctx.has_rec
        derivs = surrogate_derivative(distance, ctx.kind, ctx.scale) if spiking else None
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
            if has_rec and t > 0:
                grad_w += d_i.T @ zs[t - 1]
            adj_input_next = d_i
            adj_v = p.beta * d_pre
            adj_i = p.current_gain * d_pre + p.alpha * d_i
        return grad_external, grad_w, None, None, None, None, None


def lif_scan(external, w_rec, p: LIFParameters, spiking: bool, surrogate, noise=None):
    """Run a LIF (``spiking``) or LI population over time.

    ``external``: input current ``[T, B, n]``; ``w_rec``: ``[n, n]`` weights of a recurrent
    projection onto itself (spikes of the previous step), or None; ``noise``: an optional
    ``[T, B, n]`` added to the membrane each step (temporal noise of an analog chip; it shifts
    the state but carries no gradient).  The parameters in ``p`` may be numbers or per-neuron
    tensors ``[n]`` (fixed-pattern mismatch).  Returns ``(output, v, i)``, each
    ``[T, B, n]``; ``output`` is the spikes (LIF) or ``v`` (LI).
    """
    kind, scale = (surrogate.kind, surrogate.scale) if spiking else ("superspike", 1.0)
    return _LIFScan.apply(external, w_rec, p, spiking, kind, scale, noise)
