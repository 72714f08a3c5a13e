"""Compiled loops (Numba) for the float simulator's hot paths, on CPU tensors.

Three kernels, each the fast twin of a plain torch reference that the suite holds it equal to:

- :func:`lif_forward` / :func:`lif_backward`: the LIF/LI time loop of
  :mod:`workbench.fused` (forward, and the adjoint of the discrete recursion), one fused loop
  over time per sample, parallel across the batch, with per-neuron parameters and
  event-driven self-recurrence (a spike adds one row of the recurrent weights).
- :func:`sparse_project` / :func:`sparse_weight_grad`: ``x @ w.T`` and its weight gradient for
  sparse input (spikes), costing in proportion to the non-zeros instead of the dense size.

Why Numba: it installs as a wheel (llvmlite bundles LLVM), so ``make setup`` needs no
compiler, and it compiles plain loops over NumPy arrays, which share memory with CPU tensors
(no copies).  TorchScript cannot fuse a sequential loop into one kernel, ``torch.compile``
needs a C++ compiler at run time, and a C++/CUDA extension needs a build step on every
machine.  The compiled machine code is cached on disk (``cache=True``), so a new process loads
it in milliseconds instead of compiling again.

Parallel loops use as many threads as torch does (``torch.get_num_threads()``), so a process
told to use one thread (the reference runs, a teaching server's workers) uses one.
"""

from __future__ import annotations

import os
import sys

import torch

# Numba's thread pool is as large as torch's thread count when Numba is first imported (unless
# NUMBA_NUM_THREADS says otherwise): a process told to use one thread (OMP_NUM_THREADS=1, the
# reference runs, the app's workers) then has no idle pool thread spinning beside it, which
# measurably slowed every step on a loaded 2-core machine.  Where Numba was imported first its
# configuration stands (changing it after its threads started is an error in Numba).
if "numba" not in sys.modules:
    os.environ.setdefault("NUMBA_NUM_THREADS", str(torch.get_num_threads()))

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

_COMPILED_DTYPES = (torch.float32, torch.float64)


def available(*tensors: torch.Tensor) -> bool:
    """Whether the compiled kernels can run on these tensors (CPU, float32/float64, no grad
    tracking needed on the arrays they read)."""
    return all(t.device.type == "cpu" and t.dtype in _COMPILED_DTYPES for t in tensors)


def use_one_thread() -> None:
    """Make this process compute on one thread, torch and the compiled kernels alike (a
    worker process beside others).  Numba's pool is sized when its threads start, so this
    resizes it to one if no kernel has run yet: no idle pool thread spins beside the worker."""
    torch.set_num_threads(1)
    if not numba.np.ufunc.parallel._is_initialized:
        os.environ["NUMBA_NUM_THREADS"] = "1"
        numba.config.reload_config()


def _threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def per_neuron(value, n: int, dtype: torch.dtype) -> np.ndarray:
    """A parameter (number or ``[n]`` tensor) as a contiguous ``[n]`` array of ``dtype``."""
    if not torch.is_tensor(value):
        return np.full(n, value, np.float32 if dtype == torch.float32 else np.float64)
    return _array(value.to(dtype).expand(n))


# --------------------------------------------------------------------------------- events
@njit(cache=True, inline="always")
def add_weighted_rows(acc, weights, rows):
    """``acc += sum_k weights[k] * rows[k]`` over the non-zero ``weights`` only (spikes or
    event counts), so the cost follows the events, not the number of rows."""
    for k in range(weights.shape[0]):
        e = weights[k]
        if e != 0:
            row = rows[k]
            for j in range(acc.shape[0]):
                acc[j] += e * row[j]


@njit(cache=True, inline="always")
def add_outer(rows, weights, vec):
    """``rows[k] += weights[k] * vec`` for the non-zero ``weights`` (a weight gradient's
    outer product, in proportion to the events)."""
    for k in range(weights.shape[0]):
        e = weights[k]
        if e != 0:
            row = rows[k]
            for j in range(vec.shape[0]):
                row[j] += e * vec[j]


# --------------------------------------------------------------------------------- LIF loop
@njit(cache=True, inline="always")
def mirror(v, c, m):
    """``(g_s, dg_s/dv)`` of the current mirror at membrane ``v`` for charge ``c``; ``m``
    holds the figures of ``workbench.nonlinearity.Mirror`` in the loop's dtype.  The same
    operations, in the same order, as ``nonlinearity.mirror_gain_and_slope``."""
    zero = m.dtype.type(0.0)
    one = m.dtype.type(1.0)
    two = m.dtype.type(2.0)
    strength, vdd, v_rest, per_unit, overdrive, lam, v_ref = (
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        m[6],
    )
    volts = v_rest + v * per_unit
    if c >= zero:
        v_ds = vdd - volts
        d_volts = -per_unit
    else:
        v_ds = volts
        d_volts = per_unit
    x = min(max(v_ds / overdrive, zero), one)
    on = v_ds > zero
    headroom = one + lam * max(v_ds, zero)
    scale = one + lam * v_ref
    shape = two * x - x * x
    g = shape * headroom / scale
    gain = one + strength * (g - one)
    if gain <= zero:
        return zero, zero
    d_shape = (two - two * x) / overdrive if on and v_ds < overdrive else zero
    d_headroom = lam if on else zero
    d_g = (d_shape * headroom + shape * d_headroom) / scale
    return gain, strength * d_g * d_volts


@njit(parallel=True, cache=True)
def _lif_forward(ext, w_rec_t, noise, alpha, beta, gain, leak, threshold, v_reset, v0,
                 spiking, subtract, m, zs, vs, is_, distance):  # fmt: skip
    """One sample per thread, sequential in time.  ``vs``/``is_`` with no rows are not
    written (a population nobody records); the order of every float operation is the one of
    the torch reference, so float64 results agree to the last bits.  The inner loops run over
    one step's row of neurons (1-D views), which LLVM vectorises."""
    n_steps, batch, n = ext.shape
    recurrent = w_rec_t.shape[0] > 0 and spiking
    noisy = noise.shape[0] > 0
    keep = vs.shape[0] > 0
    mirrored = m.shape[0] > 0
    one = ext.dtype.type(1.0)
    zero = ext.dtype.type(0.0)
    for b in prange(batch):
        v = v0.copy()
        i = np.zeros(n, ext.dtype)
        arriving = np.zeros(n, ext.dtype)  # recurrent input: the previous step's spikes
        for t in range(n_steps):
            if recurrent and t > 0:
                arriving[:] = zero
                add_weighted_rows(arriving, zs[t - 1, b], w_rec_t)
            e = ext[t, b]
            for j in range(n):
                if mirrored:
                    c = gain[j] * i[j]
                    vj = beta[j] * v[j] + mirror(v[j], c, m)[0] * c + leak[j]
                else:
                    vj = beta[j] * v[j] + gain[j] * i[j] + leak[j]
                if noisy:
                    vj = vj + noise[t, b, j]
                v[j] = vj
                i[j] = alpha[j] * i[j] + e[j] + arriving[j]
            if spiking:
                d = distance[t, b]
                z_row = zs[t, b]
                for j in range(n):
                    x = v[j] - threshold[j]
                    z = one if x >= zero else zero
                    d[j] = x
                    z_row[j] = z
                    if subtract:
                        v[j] = v[j] - z * threshold[j]
                    else:
                        v[j] = v[j] + z * (v_reset[j] - v[j])
            if keep:
                vs[t, b, :] = v
                is_[t, b, :] = i


SURROGATE_CODES = {"superspike": 0, "arctan": 1, "triangle": 2}


@njit(cache=True, inline="always")
def _derivative(x, kind, scale, cutoff):
    """``neurons.surrogate_derivative`` (and the cut-off of ``Surrogate.derivative``)."""
    if abs(x) > cutoff:
        return 0.0
    if kind == 0:
        return 1.0 / (scale * abs(x) + 1.0) ** 2
    if kind == 1:
        return 1.0 / (1.0 + (0.5 * np.pi * scale * x) ** 2)
    return max(0.0, 1.0 - scale * abs(x))


@njit(parallel=True, cache=True)
def _lif_backward(grad_z, grad_v, grad_i, zs, distance, kind, scale, cutoff, w_rec, alpha, beta,
                  gain, spiking, subtract, m, vs, is_, grad_ext):  # fmt: skip
    n_steps, batch, n = grad_ext.shape
    mirrored = m.shape[0] > 0
    recurrent = w_rec.shape[0] > 0 and spiking
    has_z, has_v, has_i = grad_z.shape[0] > 0, grad_v.shape[0] > 0, grad_i.shape[0] > 0
    zero = grad_ext.dtype.type(0.0)
    one = grad_ext.dtype.type(1.0)
    for b in prange(batch):
        adj_v = np.zeros(n, grad_ext.dtype)
        adj_i = np.zeros(n, grad_ext.dtype)
        d_v = np.zeros(n, grad_ext.dtype)
        d_z = np.zeros(n, grad_ext.dtype)
        back = np.zeros(n, grad_ext.dtype)  # (adjoint of the next step's input) @ w_rec
        for t in range(n_steps - 1, -1, -1):
            out = grad_ext[t, b]
            for j in range(n):
                d_v[j] = adj_v[j] + grad_v[t, b, j] if has_v else adj_v[j]
                out[j] = adj_i[j] + grad_i[t, b, j] if has_i else adj_i[j]
                d_z[j] = grad_z[t, b, j] if has_z else zero
            if spiking:
                x_row = distance[t, b]
                z_row = zs[t, b]
                for j in range(n):
                    dz = d_z[j] + back[j]
                    if dz != zero:
                        dz = dz * _derivative(x_row[j], kind, scale, cutoff)
                    if subtract:
                        d_v[j] = d_v[j] + dz
                    else:
                        d_v[j] = d_v[j] * (one - z_row[j]) + dz
            else:
                for j in range(n):
                    d_v[j] = d_v[j] + d_z[j]
            # d_v now holds the adjoint of the pre-reset membrane (d_pre)
            if mirrored and t > 0:  # the step from (v, i) of t - 1 added g(v) gain i
                for j in range(n):
                    c = gain[j] * is_[t - 1, b, j]
                    g, slope = mirror(vs[t - 1, b, j], c, m)
                    adj_v[j] = (beta[j] + slope * c) * d_v[j]
                    adj_i[j] = g * gain[j] * d_v[j] + alpha[j] * out[j]
            else:
                for j in range(n):
                    adj_v[j] = beta[j] * d_v[j]
                    adj_i[j] = gain[j] * d_v[j] + alpha[j] * out[j]
            if recurrent:
                back[:] = zero
                add_weighted_rows(back, out, w_rec)


def lif_forward(external, w_rec, p, spiking: bool, noise, record: bool = True):
    """Forward of the LIF/LI loop: ``(zs, vs, is_, distance)`` (``zs``/``distance`` empty for
    LI; ``vs``/``is_`` empty for a spiking population when not ``record``).  Same recursion,
    order of operations and outputs as ``fused._LIFScan.forward``."""
    _threads()
    n_steps, batch, n = external.shape
    dtype = external.dtype
    ext = _array(external)
    empty = np.zeros((0, 0), ext.dtype)
    w_rec_t = _array(w_rec.T) if w_rec is not None else empty
    noise_a = _array(noise.to(dtype)) if noise is not None else np.zeros((0, 0, 0), ext.dtype)
    alpha, beta, gain = (per_neuron(v, n, dtype) for v in (p.alpha, p.beta, p.current_gain))
    v_leak = per_neuron(p.v_leak, n, dtype)
    leak = (1.0 - beta) * v_leak
    threshold, v_reset = per_neuron(p.threshold, n, dtype), per_neuron(p.v_reset, n, dtype)
    none = external.new_empty(0, 0, 0)
    keep = record or not spiking
    vs = torch.empty(external.shape, dtype=dtype) if keep else none
    is_ = torch.empty(external.shape, dtype=dtype) if keep else none
    zs = torch.empty(external.shape, dtype=dtype) if spiking else none
    distance = torch.empty(external.shape, dtype=dtype) if spiking else none
    _lif_forward(ext, w_rec_t, noise_a, alpha, beta, gain, leak, threshold, v_reset,
                 v_leak.copy(), spiking, bool(p.reset_subtract), _mirror(p, ext.dtype), zs.numpy(),
                 vs.numpy(), is_.numpy(), distance.numpy())  # fmt: skip
    return zs, vs, is_, distance


def _mirror(p, dtype) -> np.ndarray:
    """The mirror's figures of ``p`` as an array of ``dtype`` (empty: no mirror)."""
    return np.array(p.mirror if p.mirror is not None else (), dtype)


def lif_backward(
    grad_z, grad_v, grad_i, zs, distance, surrogate, w_rec, p, spiking, like, vs=None, is_=None
):
    """The adjoint loop: the gradient of the loss w.r.t. the external input ``[T, B, n]``;
    ``distance`` is ``V - threshold`` before the reset, ``surrogate`` a ``Surrogate``;
    ``vs``/``is_``: the forward's membranes and currents, which the mirror needs."""
    _threads()
    n = like.shape[2]
    dtype = like.dtype
    none = np.zeros((0, 0, 0), np.float32 if dtype == torch.float32 else np.float64)

    def arr(t):
        return _array(t.to(dtype)) if t is not None else none

    alpha, beta, gain = (per_neuron(v, n, dtype) for v in (p.alpha, p.beta, p.current_gain))
    w = _array(w_rec.to(dtype)) if w_rec is not None else np.zeros((0, 0), none.dtype)
    grad_ext = torch.empty(like.shape, dtype=dtype)
    if spiking:
        kind, scale = SURROGATE_CODES[surrogate.kind], float(surrogate.scale)
        cutoff = np.inf if surrogate.cutoff is None else float(surrogate.cutoff)
    else:
        kind, scale, cutoff = 0, 1.0, np.inf
    _lif_backward(arr(grad_z), arr(grad_v), arr(grad_i), arr(zs), arr(distance), kind, scale,
                  cutoff, w, alpha, beta, gain, spiking, bool(p.reset_subtract),
                  _mirror(p, none.dtype), arr(vs), arr(is_), grad_ext.numpy())  # fmt: skip
    return grad_ext


# --------------------------------------------------------------------------------- sparse input
@njit(parallel=True, cache=True)
def _row_counts(x2):
    rows, n_in = x2.shape
    counts = np.zeros(rows + 1, np.int64)
    for r in prange(rows):
        c = 0
        for k in range(n_in):
            if x2[r, k] != 0:
                c += 1
        counts[r + 1] = c
    return counts


@njit(parallel=True, cache=True)
def _fill_rows(x2, starts, cols, vals):
    rows, n_in = x2.shape
    for r in prange(rows):
        at = starts[r]
        for k in range(n_in):
            if x2[r, k] != 0:
                cols[at] = k
                vals[at] = x2[r, k]
                at += 1


@njit(cache=True)
def _transpose(starts, cols, vals, n_in):
    """Row-compressed to column-compressed (a counting sort over columns, rows kept sorted)."""
    col_starts = np.zeros(n_in + 1, np.int64)
    for k in range(cols.shape[0]):
        col_starts[cols[k] + 1] += 1
    for c in range(n_in):
        col_starts[c + 1] += col_starts[c]
    at = col_starts[:-1].copy()
    rows = np.empty(cols.shape[0], np.int64)
    col_vals = np.empty_like(vals)
    for r in range(starts.shape[0] - 1):
        for k in range(starts[r], starts[r + 1]):
            c = cols[k]
            rows[at[c]] = r
            col_vals[at[c]] = vals[k]
            at[c] += 1
    return col_starts, rows, col_vals


@njit(parallel=True, cache=True)
def _sparse_project(starts, cols, vals, w_t, out):
    rows, m = out.shape
    for r in prange(rows):
        o = out[r]
        o[:] = 0.0
        for k in range(starts[r], starts[r + 1]):
            w = w_t[cols[k]]
            s = vals[k]
            for j in range(m):
                o[j] += s * w[j]


class SparseRows:
    """A 2-D array in row-compressed form (``starts [rows + 1]``, ``cols``, ``vals``)."""

    def __init__(self, starts, cols, vals, shape):
        self.starts, self.cols, self.vals, self.shape = starts, cols, vals, shape

    @classmethod
    def of(cls, x2: torch.Tensor, max_density: float):
        """``x2`` compressed, or None when more than ``max_density`` of it is non-zero."""
        _threads()
        a = _array(x2)
        counts = _row_counts(a)
        nnz = int(counts.sum())
        if nnz >= max_density * a.size:
            return None
        starts = np.cumsum(counts)
        cols = np.empty(nnz, np.int64)
        vals = np.empty(nnz, a.dtype)
        _fill_rows(a, starts, cols, vals)
        return cls(starts, cols, vals, a.shape)

    def project(self, w: torch.Tensor) -> torch.Tensor:
        """``x2 @ w.T``: work in proportion to the non-zeros."""
        _threads()
        out = torch.empty(self.shape[0], w.shape[0], dtype=w.dtype)
        _sparse_project(self.starts, self.cols, self.vals, _array(w.T), out.numpy())
        return out

    def weight_grad(self, grad_out2: torch.Tensor) -> torch.Tensor:
        """``grad_out2.T @ x2``, the gradient of ``w`` in ``x2 @ w.T``."""
        _threads()
        col_starts, rows, vals = _transpose(self.starts, self.cols, self.vals, self.shape[1])
        grad_w_t = torch.empty(self.shape[1], grad_out2.shape[1], dtype=grad_out2.dtype)
        _sparse_project(col_starts, rows, vals, _array(grad_out2), grad_w_t.numpy())
        return grad_w_t.T
