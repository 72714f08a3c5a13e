"""Measurements of a run beyond accuracy: peak memory and synaptic operations.

``peak_memory()`` measures how much memory a block of code needed at its peak::

    with peak_memory() as peak:
        run = experiment.train(config)
    peak.megabytes          # MiB above the resident memory at the start of the block

It uses Linux's resettable high-water mark: writing ``5`` to ``/proc/self/clear_refs`` resets
``VmHWM`` in ``/proc/self/status`` to the current resident set, so after the block ``VmHWM``
is the peak reached inside it.  The figure is (``VmHWM`` after) minus (``VmRSS`` before); the C
heap's free memory is handed back to the OS first (``malloc_trim``), or a block would silently
reuse what an earlier run freed and read near zero.  It is
**process-wide**: everything the process does meanwhile counts (other threads, concurrent
in-process runs), while each worker of a process pool measures only its own runs.  Nested
blocks are supported (an inner block's reset does not hide an outer block's peak).  Where
``/proc`` is missing or not writable (macOS, Windows, some sandboxes) the figures are ``nan``.
The first use of torch's training machinery in a process costs memory once (the first optimiser
step alone loads ~65 MiB); call :func:`warm_up_torch` before the first measurement so that it
does not land in it.  The first block (and :func:`workbench.experiment.warm_up`) also fixes
glibc's mmap threshold for the process (:func:`steady_heap`), so that the same run measures
the same peak.  GPU memory is not in the resident set: ``peak.gpu_megabytes`` gives the
CUDA caching allocator's peak above its start where CUDA was used (``nan`` otherwise).

``synaptic_operations()`` counts the synaptic events of one forward pass, an energy proxy: every
spike a projection's source emits (input spikes included) is delivered to every synapse it has.
"""

from __future__ import annotations

import ctypes
import math
import re
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from workbench.spec import INPUT

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_MIB = 1024 * 1024


def _status_bytes(field: str) -> float:
    """``field`` (e.g. ``VmRSS``) of /proc/self/status in bytes; nan where unavailable."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return math.nan
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024.0 if match else math.nan


def _trim_heap() -> None:
    """Hand the C heap's free memory back to the OS (glibc), so that what a block allocates
    shows as resident memory instead of silently reusing what an earlier run freed."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# Allocations of this size and more get their own mapping, returned to the OS when freed.
MMAP_THRESHOLD = 4 * 2**20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc malloc.h)
_steady = False


def steady_heap() -> None:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` for this process (once).

    By default glibc raises the threshold whenever a large mapped block is freed (up to 32
    MiB); from then on large tensors come from the heap, and how high the heap grows depends on
    the order of earlier frees.  The same one-epoch run then peaked at 99, 105 and 124 MiB in
    three fresh processes (Yin-Yang, surrogate, T 200, 64 hidden), its plan at 91 and 107; with
    the threshold fixed at 4 MiB, 88.5-89.6 MiB and 86 (``benchmarks/memory_planner.py``).
    Tensors of 4 MiB and more then cost a fresh mapping each (page faults); smaller ones, most
    of a small run's, still come from the heap."""
    global _steady
    if _steady:
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass
    _steady = True


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakMemory:
    """The result of a :func:`peak_memory` block (filled in when the block ends).

    ``baseline_bytes``: resident memory at the start; ``peak_bytes``: the highest resident
    memory during the block; ``megabytes``: their difference in MiB (``nan`` if unmeasurable).
    """

    def __init__(self):
        self.baseline_bytes = math.nan
        self.peak_bytes = math.nan
        self.gpu_megabytes = math.nan
        self._seen = math.nan  # highest VmHWM read before an inner block reset it
        self._gpu_baseline = None

    @property
    def megabytes(self) -> float:
        return (self.peak_bytes - self.baseline_bytes) / _MIB

    def _note(self, high_water: float) -> None:
        if not math.isnan(high_water) and not high_water <= self._seen:
            self._seen = high_water


_active: list[PeakMemory] = []
_lock = threading.Lock()


@contextmanager
def peak_memory():
    """Measure the peak resident memory of the process inside the block (see module doc)."""
    steady_heap()
    peak = PeakMemory()
    with _lock:
        high_water = _status_bytes("VmHWM")
        _trim_heap()
        for outer in _active:  # keep what the outer blocks have seen before the reset
            outer._note(high_water)
        peak.baseline_bytes = _status_bytes("VmRSS")
        if not _reset_high_water_mark():
            peak.baseline_bytes = math.nan
        _active.append(peak)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak._gpu_baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    try:
        yield peak
    finally:
        with _lock:
            _active.remove(peak)
            peak._note(_status_bytes("VmHWM"))
            peak.peak_bytes = peak._seen
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            start = peak._gpu_baseline or 0  # not initialised at the start: nothing allocated
            peak.gpu_megabytes = (torch.cuda.max_memory_allocated() - start) / _MIB


_warmed_up = False


def warm_up_torch() -> None:
    """Pay torch's one-time costs of training (autograd, the first Adam step) once in this
    process, outside any measurement: a forward and backward pass and an optimiser step on a
    tiny model."""
    global _warmed_up
    if _warmed_up:
        return
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(3, 4)).square().sum().backward()
    optimizer.step()
    _warmed_up = True


# ------------------------------------------------------------------------------ synaptic ops


def fan_out(network, projection) -> torch.Tensor:
    """Synapses per source neuron of ``projection`` (``[source size]``): the non-zero weights in
    each source's column, so a sparse projection (zero weights: no synapse) counts only the
    synapses it has; every target neuron for a network that exposes no weights."""
    weights = getattr(network, "weights", None)
    key = f"{projection.source}__{projection.target}"
    if weights is not None and key in weights:
        return (weights[key].detach() != 0).sum(dim=0)
    size = network.spec.size_of(projection.source)
    return torch.full((size,), network.spec.size_of(projection.target))


def synaptic_operations(network, inputs: torch.Tensor, recordings: dict) -> float:
    """Synaptic operations of one forward pass over a batch (all samples together).

    For every projection: the spikes each source neuron emitted (``inputs`` for the input
    population, ``recordings[source]["spikes"]`` otherwise; ``|value|``, so a ternary -1 or a
    multi-spike count counts as what it is) times that neuron's :func:`fan_out`, summed.  A
    source that was not recorded (or does not spike, like a leaky integrator) adds nothing.
    """
    total = 0.0
    for proj in network.spec.projections:
        if proj.source == INPUT:
            spikes = inputs
        else:
            spikes = recordings.get(proj.source, {}).get("spikes")
            if spikes is None:
                continue
        counts = torch.as_tensor(spikes).detach().abs().sum(dim=(0, 1))  # [source neurons]
        synapses = fan_out(network, proj).to(counts.device, torch.float64)
        total += float((counts.double() * synapses).sum())
    return total
