"""Limits and resource estimates: the checks every entry point shares.

Bad input is refused by field, with the allowed range in the message, before anything is
allocated or written (DESIGN.md, habits).  The command line, spec files, run settings, a
sweep's ``--param`` values and the app's forms all call the plain functions here (or the
functions built on them: :meth:`workbench.spec.NetworkSpec.problems`,
:func:`workbench.experiment.config_problems`, :func:`workbench.compare.grid`), each of which
returns a list of :class:`~workbench.spec.Problem` or raises :class:`~workbench.spec.SpecError`.

Entry points:

- :data:`BOUNDS` / :func:`bound_problems`: the allowed range of every bounded setting (a
  count, a size, a time), by name; the CLI's option types read the same table.
- :func:`number_problem`: one number checked for type first, then range (never a comparison
  between a string and a number, never ``OverflowError`` for an integer beyond float range).
- :func:`parse_json` / :func:`read_json_file`: JSON with its size and nesting depth checked
  before it is parsed (an iterative scan, so nesting 10^6 deep is refused, not a
  ``RecursionError``), integers beyond Python's digit limit refused as a problem.
- :func:`memory_limit`, :func:`estimate_memory`, :func:`memory_problems`: what a run needs
  against what the machine allows (``--memory-limit`` or ``WORKBENCH_MEMORY_LIMIT``, else the
  memory available now).
- :func:`pair_problems`: algorithm x backend pairs that cannot work, naming both.
- :func:`backend_option_problems`: ``backend_options`` checked against the backend's own
  keyword arguments (names and types), before it is built.
- :func:`grid_size_problem`: the number of runs in a comparison or sweep, before any list of
  them is made.

Every limit is a module constant below with why it is what it is.
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench.spec import Problem, SpecError

# ------------------------------------------------------------------------------------ numbers

# Any number that becomes a tensor value (a weight, a parameter, a chip figure): |x| <= 1e15.
# A population's inputs are spikes (0 or 1) whatever the depth of the network, so a membrane
# sums at most fan-in x n_steps weighted spikes: 1e15 x 2^23 x 1e5 ~ 1e27 stays far inside
# float32's 3.4e38, and so does a product of two such numbers with a fan-in (a gradient through
# one layer: 1e30 x 2^23 ~ 1e37).  At 1e30 a membrane overflowed to inf after 10^9 inputs.
MAX_MAGNITUDE = 1e15
MAX_TENSOR_INT = 2**63 - 1  # a Python int becomes an int64 in torch


def is_int(value) -> bool:
    """An integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An int or a float (not a bool).  Says nothing about range: see :func:`is_finite`."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value) -> bool:
    """A number that is finite as a Python float (an int beyond float range is not)."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large to convert to float
        return False


def show(value, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 5000-digit integer or a long list stays
    readable in a one-line message, and is never converted to text whole)."""
    if is_int(value) and abs(value).bit_length() > 128:
        digits = int(abs(value).bit_length() * math.log10(2)) + 1
        return f"{'-' if value < 0 else ''}an integer of about {digits} digits"
    if isinstance(value, (list, tuple, dict)) and len(value) > limit:
        return f"a {type(value).__name__} of {len(value)} items"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def key_name(key) -> str:
    """A key of the user's input as it goes into a field's path: a plain name as it is, anything
    else (an empty or padded string, a number) quoted, so the path always names something."""
    if isinstance(key, str) and key.isidentifier():
        return key
    return show(key)


@dataclass(frozen=True)
class Bound:
    """An allowed range: ``low`` to ``high`` (``low`` excluded when ``low_open``), integers
    only when ``integer``; ``unit`` is said after the range."""

    low: float
    high: float
    integer: bool = False
    low_open: bool = False
    unit: str = ""

    def describe(self) -> str:
        """``an integer >= 1 and <= 10000`` / ``a finite number > 0 and <= 10``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.integer:
            return f"an integer >= {self.low} and <= {self.high}{unit}"
        low = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        return f"a finite number {low} and <= {self.high:g}{unit}"

    def contains(self, value) -> bool:
        if self.integer and not is_int(value):
            return False
        if not is_finite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high


def number_problem(path: str, value, bound: Bound) -> Problem | None:
    """The problem with ``value`` at ``path`` for ``bound`` (None when it is within)."""
    if bound.contains(value):
        return None
    return Problem(path, f"{show(value)} must be {bound.describe()}")


def magnitude_problem(path: str, value) -> Problem | None:
    """A number that becomes a tensor value: finite and within +-:data:`MAX_MAGNITUDE`."""
    if is_int(value) and abs(value) > MAX_TENSOR_INT:  # torch takes a Python int as int64
        return Problem(
            path,
            f"{show(value)} is an integer beyond +-2^63, which no tensor holds; write it as a "
            f"float (e.g. {float(min(abs(value), 10**300)):.0e}) within +-{MAX_MAGNITUDE:g}",
        )
    if is_finite(value) and abs(value) <= MAX_MAGNITUDE:
        return None
    return Problem(path, f"{show(value)} must be a finite number within +-{MAX_MAGNITUDE:g}")


# Sizes and counts.  A population's size and the input's are bounded here only so that the
# arithmetic stays exact and cheap; what a network of that size needs is judged against the
# machine by the memory estimate below (so 10^9 neurons is refused with its GiB, not here).
MAX_POPULATION_SIZE = 2**31 - 1  # neurons per population (and input channels): int32 indices
MAX_POPULATIONS = 1_000  # populations in one spec
MAX_PROJECTIONS = 10_000  # projections in one spec
MAX_LAYERS = 100  # hidden layers of a layered run (RunConfig.hidden)

# Times.  Each bound keeps one run finite: a run's cost grows with every one of them.
MAX_STEPS = 100_000  # time steps per sample: 100 s of simulated time at dt = 1 ms
MIN_DT, MAX_DT = 1e-3, 1e3  # ms: from 1 us (finer than any chip's or NIR graph's step) to 1 s
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_RUNS = 1_000  # runs in one comparison or sweep (a seed count above it is refused first)
MAX_SEED = 2**32 - 1  # numpy's and the data splits' seed range

BOUNDS: dict[str, Bound] = {
    "seed": Bound(0, MAX_SEED, integer=True),
    "seeds": Bound(1, MAX_RUNS, integer=True),
    "size": Bound(1, MAX_POPULATION_SIZE, integer=True, unit="neurons"),
    "input_size": Bound(1, MAX_POPULATION_SIZE, integer=True, unit="channels"),
    "n_steps": Bound(1, MAX_STEPS, integer=True, unit="steps"),
    "dt": Bound(MIN_DT, MAX_DT, unit="ms"),
    "epochs": Bound(1, MAX_EPOCHS, integer=True),
    "batch_size": Bound(1, MAX_BATCH_SIZE, integer=True),
    "checkpoint_every": Bound(1, MAX_EPOCHS, integer=True, unit="epochs"),
    "max_runs": Bound(1, 100_000, integer=True),
    "port": Bound(0, 65_535, integer=True),
    # the app's per-session limits (a network's neurons; runs a session may have going)
    "max_neurons": Bound(1, MAX_POPULATION_SIZE, integer=True, unit="neurons"),
    "max_concurrent_runs": Bound(1, 100, integer=True, unit="runs"),
    # the app's training processes at once: more than the cores only slows every one of them
    "max_workers": Bound(0, os.cpu_count() or 1, integer=True, unit="workers (0: automatic)"),
    # the equaliser's noise (workbench.equalizer checks the same range)
    "ebn0": Bound(-100, 100, unit="dB"),
}

# Training settings with a range of their own (the algorithms' ``problems()`` check signs and
# choices; these add the upper ends).  Any other number in ``training`` must be finite and
# within +-MAX_MAGNITUDE.
TRAINING_BOUNDS: dict[str, Bound] = {
    "epochs": BOUNDS["epochs"],
    "batch_size": BOUNDS["batch_size"],
    # Adam's step is about lr per weight per step; beyond 10 it is noise, and beyond float32's
    # range torch refuses it with an overflow error in the first step.
    "lr": Bound(0, 10, low_open=True),
    "weight_decay": Bound(0, 10),
    # surrogate width: 1 / scale is the voltage range that carries gradient; 1000 is 1/1000
    # of a threshold already (published values are 1 to 100)
    "surrogate_scale": Bound(0, 1000, low_open=True),
    "surrogate_cutoff": Bound(0, 1e6, low_open=True),
    "patience": Bound(0, MAX_EPOCHS, integer=True, unit="epochs"),
    "sample_every": Bound(0, 1_000_000, integer=True, unit="batches"),
    # EventProp follows up to this many spikes per neuron and sample (memory B x n x K)
    "max_spikes": Bound(1, 1_000, integer=True),
    "readout_iterations": Bound(1, 10_000, integer=True),  # L-BFGS iterations (local rules)
}


def bound_problems(values: dict, bounds: dict[str, Bound], prefix: str = "") -> list[Problem]:
    """Problems of the entries of ``values`` that have a bound in ``bounds`` (None values are
    skipped: they mean "not set")."""
    out = []
    for name, bound in bounds.items():
        if name in values and values[name] is not None:
            problem = number_problem(f"{prefix}{name}", values[name], bound)
            if problem is not None:
                out.append(problem)
    return out


def training_problems(settings: dict, prefix: str = "training.") -> list[Problem]:
    """Ranges of an algorithm's settings (``RunConfig.training`` or its dataclass as a dict):
    :data:`TRAINING_BOUNDS` by name, every other number finite and within
    +-:data:`MAX_MAGNITUDE`, lists of numbers likewise."""
    out = bound_problems(settings, TRAINING_BOUNDS, prefix)
    for name, value in settings.items():
        if name in TRAINING_BOUNDS or value is None or isinstance(value, (str, bool)):
            continue
        if is_number(value) or not isinstance(value, (list, tuple)):
            if is_number(value):
                problem = magnitude_problem(f"{prefix}{name}", value)
                if problem is not None:
                    out.append(problem)
            continue
        for k, item in enumerate(value[:10_000] if isinstance(value, list) else value):
            problem = magnitude_problem(f"{prefix}{name}[{k}]", item)
            if problem is not None:
                out.append(problem)
                break
    return out


# ------------------------------------------------------------------------------------ JSON

MAX_JSON_BYTES = 16 * 2**20  # a spec with inline weights of ~1.5 million synapses
MAX_JSON_DEPTH = 32  # a spec nests 5 deep (spec > projections > projection > weights > row)
# A JSON string (escapes included), written as an unrolled loop: the plain alternation
# ``"(?:[^"\\]|\\.)*"`` kept regex state per character, 1.7 GB for a 12 MB string.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text``, outside strings, by one pass over
    the bytes (no recursion, whatever the depth)."""
    import numpy as np

    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    data = _STRING.sub(b'""', data)
    codes = np.frombuffer(data, dtype=np.uint8)
    steps = np.zeros(len(codes), dtype=np.int32)  # depth <= length <= MAX_JSON_BYTES
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def parse_json(
    text: str | bytes,
    what: str = "spec",
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
):
    """Parse JSON ``text`` as the input ``what`` (the field named in every problem), after
    checking its size and nesting depth; any failure is a :class:`SpecError`, never a
    ``RecursionError``, ``UnicodeDecodeError`` or Python's integer-digit ``ValueError``."""
    import json

    if not isinstance(text, (str, bytes, bytearray)):
        raise SpecError([Problem(what, f"must be JSON text, not {type(text).__name__}")])
    size = len(text) if not isinstance(text, str) else len(text.encode("utf-8", "replace"))
    if size > max_bytes:
        raise SpecError(
            [Problem(what, f"is {format_bytes(size)}; at most {format_bytes(max_bytes)} is read")]
        )
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                [Problem(what, f"is not UTF-8 text ({exc.reason} at byte {exc.start})")]
            ) from None
    depth = json_depth(text)
    if depth > max_depth:
        raise SpecError([Problem(what, f"nests {depth} levels deep; at most {max_depth} are read")])
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError([Problem(what, f"is not valid JSON ({exc})")]) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer over the digit limit
        first = str(exc).split(";")[0].split("\n")[0]
        raise SpecError([Problem(what, f"is not valid JSON ({first})")]) from None


def read_json_file(
    path: str | os.PathLike,
    what: str = "spec",
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
):
    """Read and parse the JSON file ``path`` (see :func:`parse_json`); a file over
    ``max_bytes`` is refused from its size, before it is read."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpecError([Problem(what, f"{str(path)!r} cannot be read ({exc.strerror})")]) from None
    if not path.is_file():
        raise SpecError([Problem(what, f"{str(path)!r} is not a file")])
    if size > max_bytes:
        raise SpecError(
            [
                Problem(
                    what,
                    f"{str(path)!r} is {format_bytes(size)}; at most "
                    f"{format_bytes(max_bytes)} is read",
                )
            ]
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SpecError([Problem(what, f"{str(path)!r} cannot be read ({exc.strerror})")]) from None
    return parse_json(data, what, max_bytes, max_depth)


# ------------------------------------------------------------------------------------ memory

MEMORY_ENV = "WORKBENCH_MEMORY_LIMIT"  # e.g. "4GiB": a teaching lab's limit per run
FALLBACK_MEMORY = 4 * 2**30  # when the machine does not say what it has
BYTES_PER_VALUE = 4  # float32
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*")
MIN_MEMORY_LIMIT = 2**20  # 1 MiB: below it nothing runs
MAX_MEMORY_LIMIT = 2**60  # 1 EiB


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1 (``745 GiB``)."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{int(n)} bytes"


def parse_size(text: str, what: str = "memory_limit") -> int:
    """``"8GiB"``, ``"500M"``, ``"2.5 GB"`` or a plain number of bytes -> bytes, between 1 MiB
    and 1 EiB; anything else is a :class:`SpecError` naming ``what``."""
    allowed = "a size such as 8GiB, 512MiB or 2G (units B, K, M, G, T; KiB, MiB, GiB, TiB)"
    match = _SIZE.fullmatch(text) if isinstance(text, str) and len(text) <= 40 else None
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if unit is None:
        raise SpecError([Problem(what, f"{show(text)} must be {allowed}")])
    value = float(match.group(1)) * unit
    if not MIN_MEMORY_LIMIT <= value <= MAX_MEMORY_LIMIT:
        raise SpecError([Problem(what, f"{show(text)} must be from 1 MiB to 1 EiB ({allowed})")])
    return int(value)


def available_memory() -> int:
    """Memory this process can still use, in bytes: ``MemAvailable`` of ``/proc/meminfo``, less
    if a cgroup (a container, a lab's session) limits the process; ``os.sysconf`` where there is
    no ``/proc``; :data:`FALLBACK_MEMORY` when nothing says."""
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    for limit_file, used_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",  # cgroup v1
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            used = int(Path(used_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            room = max(int(limit) - used, 0)
            available = room if available is None else min(available, room)
        break
    return available if available is not None and available > 0 else FALLBACK_MEMORY


def memory_limit() -> int:
    """What one run may use, in bytes: ``WORKBENCH_MEMORY_LIMIT`` (which ``--memory-limit``
    sets for the command and its worker processes) or else :func:`available_memory`."""
    text = os.environ.get(MEMORY_ENV)
    if text:
        return parse_size(text, MEMORY_ENV)
    return available_memory()


def limit_source() -> str:
    """Where :func:`memory_limit` came from, for messages."""
    if os.environ.get(MEMORY_ENV):
        return f"{MEMORY_ENV} / --memory-limit"
    return "its available memory; raise it with --memory-limit or " + MEMORY_ENV


# Algorithms whose gradient runs back through the backend's time loop (backpropagation through
# time): autograd keeps every step's state for the backward pass.  Others keep one pass's.
BPTT_ALGORITHMS = ("surrogate",)
EVENT_ALGORITHMS = ("eventprop",)  # gradient from spike times; memory grows with spikes


@dataclass(frozen=True)
class Estimate:
    """What a run needs, in bytes, and what it was computed from.

    Assumptions (float32 throughout):

    - weights: every synapse 5 times (the weight, its gradient, Adam's two moments and the
      best epoch's copy), plus a per-synapse delay matrix (int64) where there is one;
    - one pass over a batch of ``B`` samples and ``T`` steps, layer by layer: the input
      spikes ``T x B x inputs`` and, per neuron, its input current, membrane, synaptic
      current and output over all ``T`` steps (4 values);
    - backpropagation through time (``surrogate``) keeps that state for the backward pass
      and as much again for its gradients (8 values per neuron and step);
    - EventProp keeps the input, the leaky integrators' membranes on the grid and per
      spiking neuron up to ``max_spikes`` spike times with their currents (4 values each);
    - evaluation runs forward only at ``eval_batch`` samples (256);

    the run needs the weights plus the larger of the training pass and the evaluation pass.
    Python, torch and the dataset come on top (a few hundred MiB, not counted).
    """

    total: int
    weights: int
    training_pass: int
    evaluation_pass: int
    neurons: int
    synapses: int
    inputs: int
    n_steps: int
    batch_size: int
    algorithm: str

    def field(self, size: str, steps: str, batch: str, widest: int) -> str:
        """Which of three fields to name for this estimate: ``size`` when the weights
        dominate; else the one furthest above its usual value (1000 neurons in the widest
        population ``widest``, 1000 steps, a batch of 256; the batch only when training,
        not evaluation, is the larger pass)."""
        if self.weights >= max(self.training_pass, self.evaluation_pass):
            return size
        ratios = {size: widest / 1000, steps: self.n_steps / 1000}
        if self.training_pass > self.evaluation_pass:
            ratios[batch] = self.batch_size / EVAL_BATCH
        return max(ratios, key=ratios.__getitem__)

    def describe(self, neurons_text: str | None = None) -> str:
        """``1000000064 neurons x batch 32 x 100 steps needs ~745 GiB``."""
        neurons = neurons_text or f"{self.neurons} neurons"
        if self.weights > max(self.training_pass, self.evaluation_pass):
            what = f"{neurons} with {self.synapses} synapses"
        elif self.evaluation_pass >= self.training_pass:
            what = f"{neurons} x {self.n_steps} steps x evaluation batch {EVAL_BATCH}"
        else:
            what = f"{neurons} x batch {self.batch_size} x {self.n_steps} steps"
        return f"{what} needs ~{format_bytes(self.total)}"


EVAL_BATCH = 256  # workbench.training.EVAL_BATCH_SIZE (not imported: no torch here)


def estimate_memory(
    input_size: int,
    sizes: Iterable[tuple[int, bool]],
    synapses: int,
    n_steps: int,
    batch_size: int,
    algorithm: str = "surrogate",
    *,
    delay_synapses: int = 0,
    eval_batch: int = EVAL_BATCH,
    max_spikes: int = 16,
) -> Estimate:
    """The memory of a run of ``algorithm`` (see :class:`Estimate` for what is assumed):
    ``sizes`` are ``(neurons, spiking)`` per population, ``synapses`` the weights of every
    projection, ``delay_synapses`` those with a per-synapse delay.  Exact integer
    arithmetic, so any size gives a number (never an overflow)."""
    sizes = list(sizes)
    neurons = sum(n for n, _ in sizes)
    spiking = sum(n for n, s in sizes if s)
    b = BYTES_PER_VALUE
    weights = synapses * b * 5 + delay_synapses * 8
    batch = min(batch_size, MAX_BATCH_SIZE)

    def forward(samples: int) -> int:
        return n_steps * samples * (input_size + 4 * neurons) * b

    if algorithm in BPTT_ALGORITHMS:
        training = 2 * forward(batch)
    elif algorithm in EVENT_ALGORITHMS:
        training = (
            n_steps * batch * (input_size + 2 * (neurons - spiking)) * b
            + 4 * batch * spiking * max_spikes * b
        )
    else:
        training = forward(batch)
    evaluation = forward(eval_batch)
    return Estimate(
        total=weights + max(training, evaluation),
        weights=weights,
        training_pass=training,
        evaluation_pass=evaluation,
        neurons=neurons,
        synapses=synapses,
        inputs=input_size,
        n_steps=n_steps,
        batch_size=batch,
        algorithm=algorithm,
    )


def spec_estimate(spec, batch_size: int = 1, algorithm: str = "", **kwargs) -> Estimate:
    """:func:`estimate_memory` of a valid :class:`~workbench.spec.NetworkSpec`."""
    sizes = {p.name: p.size for p in spec.populations}
    sizes["input"] = spec.input_size
    synapses = delays = 0
    for proj in spec.projections:
        n = sizes.get(proj.source, 0) * sizes.get(proj.target, 0)
        synapses += n
        delays += n if isinstance(proj.delay, list) else 0
    return estimate_memory(
        spec.input_size,
        [(p.size, p.model != "li") for p in spec.populations],
        synapses,
        spec.n_steps,
        batch_size,
        algorithm,
        delay_synapses=delays,
        **kwargs,
    )


def memory_problems(
    estimate: Estimate,
    path: str,
    neurons_text: str | None = None,
    limit: int | None = None,
    share: int = 1,
) -> list[Problem]:
    """A problem at ``path`` when ``estimate`` exceeds the memory limit (``limit``, default
    :func:`memory_limit`) divided among ``share`` runs at once, with both numbers in it."""
    limit = memory_limit() if limit is None else limit
    allowed = limit // max(share, 1)
    if estimate.total <= allowed:
        return []
    per = f" / {share} workers" if share > 1 else ""
    return [
        Problem(
            path,
            f"{estimate.describe(neurons_text)}; this machine allows {format_bytes(limit)}{per} "
            f"({limit_source()})",
        )
    ]


def weight_memory_problems(spec, limit: int | None = None) -> list[Problem]:
    """A valid spec whose weights alone (stored once, float32, with delays) exceed the memory
    limit: refused before a backend allocates them (``NetworkSpec.validate`` calls this)."""
    sizes = {p.name: p.size for p in spec.populations}
    sizes["input"] = spec.input_size
    total, largest, where = 0, -1, None
    for proj in spec.projections:
        n = sizes.get(proj.source, 0) * sizes.get(proj.target, 0)
        total += n * BYTES_PER_VALUE + (n * 8 if isinstance(proj.delay, list) else 0)
        if n > largest:
            largest, where = n, proj
    limit = memory_limit() if limit is None else limit
    if total <= limit or where is None:
        return []
    big = where.source if sizes[where.source] >= sizes[where.target] else where.target
    path = (
        "input_size"
        if big == "input"
        else f"populations[{[p.name for p in spec.populations].index(big)}].size"
    )
    return [
        Problem(
            path,
            f"{big!r} has {sizes[big]} neurons: the weights of {where.source}->{where.target} "
            f"and the rest need ~{format_bytes(total)}; this machine allows "
            f"{format_bytes(limit)} ({limit_source()})",
        )
    ]


# ------------------------------------------------------------------------------------ grids


def grid_size_problem(path: str, factors: dict[str, int], limit: int = MAX_RUNS) -> Problem | None:
    """The problem when the product of ``factors`` (name -> count, e.g. algorithms, backends,
    seeds, each swept setting's values) exceeds ``limit`` runs; computed from the counts, so
    nothing of the grid is made first."""
    total = math.prod(factors.values())
    if total <= limit:
        return None
    parts = " x ".join(f"{n} {name}" for name, n in factors.items())
    return Problem(path, f"{parts} is {total} runs; at most {limit} (--max-runs)")


# ------------------------------------------------------------------------------------ pairs

# What each algorithm trains on, read from its code.  A backend is one of three kinds
# (:func:`backend_kind`): "float" (the discrete-time float simulator, whose backward pass
# uses the network's surrogate), "event" (exact spike times; its backward pass is
# EventProp's adjoint) or "chip" (an emulator: the chip's number formats in the forward
# pass, the float model's surrogate gradient straight through it).
#
# - surrogate (algorithms/surrogate.py): backpropagates through the backend's own forward
#   pass with ``network.surrogate``.  The event backend never reads it: its backward is the
#   exact adjoint (events.py, _EventProp), so the surrogate and its settings would be unused.
# - eventprop (algorithms/eventprop.py): needs exact spike times; on a backend other than
#   event it trains an event-driven float copy and copies the weights back.  For float that
#   is the same ODE and state dict (a tested feature); a chip would take no part in
#   training (not in the gradient, not in the validation that picks the best epoch).
# - stdp, vdsp (algorithms/local.py): the plasticity steps the hidden population with the
#   float simulator's step functions itself (Learner.present), so what it learns is what
#   the float backend runs; elsewhere the readout is fitted to dynamics the rule never saw
#   (1 epoch of digits: stdp 90 % on float, 72 % on event, 10 % = chance on crossbar).
# - proxy: the backend's own forward gives the spike counts; every backend may run it (the
#   chips that have no IF neuron refuse the network by field when it is built).
_NEEDS: dict[str, tuple[set[str], str]] = {
    "surrogate": (
        {"float", "chip"},
        "the event backend's backward pass is EventProp's exact adjoint, so the surrogate "
        "(and its settings) would never be used; use --algorithm eventprop there",
    ),
    "eventprop": (
        {"float", "event"},
        "EventProp needs exact spike times; it would train an event-driven float copy and "
        "only copy the weights to the chip, which would take no part in training; train on "
        "the chip with --algorithm surrogate (hardware in the loop), or train on event and "
        "deploy the weights (workbench.hardware.base.deploy)",
    ),
    "stdp": (
        {"float"},
        "the plasticity steps the float simulator's equations itself, so the network would "
        "run dynamics the rule never learned on; use --backend float",
    ),
    "vdsp": (
        {"float"},
        "the plasticity steps the float simulator's equations itself, so the network would "
        "run dynamics the rule never learned on; use --backend float",
    ),
    "ssnn_bp": (
        {"float"},
        "it trains its own stochastic simulation of the network (noisy thresholds, a WTA "
        "output, error spike streams), so a chip would take no part in training; use "
        "--backend float and deploy the weights (workbench.hardware.base.deploy)",
    ),
}


_NAMES: list[str] = []
_CLASSES: dict[str, object] = {}


def backend_names(name: str | None = None) -> list[str]:
    """``available_backends()``, read once per process (again when ``name`` is not among
    them: a backend registered since); scanning the entry points takes ~40 ms a time."""
    global _NAMES
    if not _NAMES or (name is not None and name not in _NAMES):
        from workbench.backends import available_backends

        _NAMES = available_backends()
    return _NAMES


def _backend_class(backend: str):
    """``backend_class(backend)``, looked up once per name."""
    if backend not in _CLASSES:
        from workbench.backends import backend_class

        _CLASSES[backend] = backend_class(backend)
    return _CLASSES[backend]


def backend_kind(backend: str) -> str:
    """``"float"``, ``"event"`` or ``"chip"`` (see the comment above :data:`_NEEDS`), from the
    registered backend's class; ``"other"`` for a builder that is not a class."""
    from workbench.backends import FloatNetwork
    from workbench.events import EventNetwork

    cls = _backend_class(backend)
    if not isinstance(cls, type):
        return "other"
    if issubclass(cls, EventNetwork):
        return "event"
    if hasattr(cls, "profile_class") and hasattr(cls, "check"):
        return "chip"
    if issubclass(cls, FloatNetwork):
        return "float"
    return "other"


def pair_problems(algorithm: str, backend: str, path: str = "backend") -> list[Problem]:
    """A problem naming both when ``algorithm`` cannot train on ``backend`` (empty when it
    can, or when either is not a registered name: those are refused elsewhere)."""
    from workbench.algorithms import ALGORITHMS

    if algorithm not in ALGORITHMS or backend not in backend_names(backend):
        return []
    needs = _NEEDS.get(algorithm)
    if needs is None:
        return []
    kinds, why = needs
    kind = backend_kind(backend)
    if kind in kinds or kind == "other":
        return []
    able = [b for b in backend_names() if backend_kind(b) in kinds]
    return [
        Problem(
            path,
            f"algorithm {algorithm!r} cannot train on backend {backend!r}: {why} "
            f"(backends for {algorithm!r}: {', '.join(able)})",
        )
    ]


# ------------------------------------------------------------------------------------ backends

# Keyword arguments a run's settings never pass to a backend: the run gives the seed, the
# algorithm sets the surrogate, and a torch dtype is not JSON.
_NOT_OPTIONS = {"self", "spec", "seed", "surrogate", "dtype"}
_JSON_TYPES = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "dict": (dict,),
    "list": (list,),
    "None": (type(None),),
}


def backend_options(backend: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``build(spec, backend, **options)`` accepts, by name, from the
    signatures of the backend's class and the classes it passes ``**options`` on to."""
    cls = _backend_class(backend)
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__ if isinstance(cls, type) else ():
        init = vars(klass).get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        for name, param in params.items():
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            out.setdefault(name, param)
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return {k: v for k, v in out.items() if k not in _NOT_OPTIONS}


def _allowed_types(param: inspect.Parameter) -> tuple[type, ...] | None:
    """The JSON types a parameter's annotation (or default) allows; None when unknown."""
    annotation = param.annotation
    if isinstance(annotation, str):
        names = [part.strip() for part in annotation.split("|")]
        if all(n in _JSON_TYPES for n in names):
            return tuple(t for n in names for t in _JSON_TYPES[n])
        return None
    default = param.default
    if default is param.empty or default is None:
        return None
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, (int, float)):
        return (int, float) if isinstance(default, float) else (int,)
    if isinstance(default, str):
        return (str,)
    return None


def backend_option_problems(
    backend: str, options, prefix: str = "backend_options"
) -> list[Problem]:
    """Problems of a run's ``backend_options`` for ``backend``: each name must be one of the
    backend's keyword arguments, each value of the type its signature says (numbers finite
    and within +-:data:`MAX_MAGNITUDE`, ``*seed`` options in the seed range), and the
    ``profile`` (a chip's, or the float simulator's variation profile) a dict of the profile's
    figures, each within the range its field declares (``figure(..., bound=...)``: a sigma
    >= 0).  The backend checks its own ranges when it is built."""
    if not isinstance(options, dict):
        return [Problem(prefix, f"{show(options)} must be an object of option names and values")]
    try:
        accepted = backend_options(backend)
    except Exception:  # an unknown backend is refused by name elsewhere
        return []
    profile = {"profile": lambda value, path: _profile_problems(backend, value, path)}
    return option_problems(accepted, options, prefix, f"backend {backend!r}", profile)


def option_problems(
    accepted: dict[str, inspect.Parameter], options, prefix: str, owner: str, special=None
) -> list[Problem]:
    """Problems of ``options`` (name -> value) for a callee that ``accepted`` (its signature's
    parameters by name) describes: unknown names, values not of the annotated type, numbers
    beyond :data:`MAX_MAGNITUDE`, ``*seed`` values outside the seed range.  ``special`` maps a
    name to its own check ``(value, path) -> problems``.  ``owner`` names the callee."""
    if not isinstance(options, dict):
        return [Problem(prefix, f"{show(options)} must be an object of option names and values")]
    out = []
    for name, value in options.items():
        path = f"{prefix}.{key_name(name)}"
        param = accepted.get(name)
        if param is None:
            allowed = ", ".join(sorted(accepted)) or "none"
            out.append(Problem(path, f"is not an option of {owner}; allowed: {allowed}"))
            continue
        if special and name in special:
            out += special[name](value, path)
            continue
        types = _allowed_types(param)
        if name.endswith("seed") and value is not None and (types is None or int in types):
            # a seed: its range says what is allowed (an integer in the seed range)
            problem = number_problem(path, value, BOUNDS["seed"])
            if problem is not None:
                out.append(problem)
            continue
        if types is not None and (
            not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        ):
            wanted = (
                str(param.annotation) if isinstance(param.annotation, str) else types[0].__name__
            )
            out.append(Problem(path, f"{show(value)} must be of type {wanted}"))
            continue
        if is_number(value):
            problem = magnitude_problem(path, value)
        else:
            problem = _nested_number_problem(path, value)
        if problem is not None:
            out.append(problem)
    return out


def _nested_number_problem(path: str, value, depth: int = 0) -> Problem | None:
    """The first number in a dict/list value beyond float range (or too deep)."""
    if depth > MAX_JSON_DEPTH:
        return Problem(path, f"nests more than {MAX_JSON_DEPTH} levels deep")
    if is_number(value):
        return magnitude_problem(path, value)
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        problem = _nested_number_problem(f"{path}.{key}", item, depth + 1)
        if problem is not None:
            return problem
    return None


def _profile_problems(backend: str, profile, path: str) -> list[Problem]:
    from dataclasses import fields

    from workbench.nonlinearity import MirrorFigures

    mirror_figures = {f.name for f in fields(MirrorFigures)}

    if profile is None:
        return []
    if not isinstance(profile, dict):
        return [Problem(path, f"{show(profile)} must be an object of the chip's figures")]
    cls = _backend_class(backend)
    profile_class = getattr(cls, "profile_class", None)
    if profile_class is None:
        return [Problem(path, f"backend {backend!r} has no chip profile")]
    defaults = profile_class()
    figures = {f.name: getattr(defaults, f.name) for f in fields(profile_class)}
    ranges = {f.name: f.metadata["range"] for f in fields(profile_class) if "range" in f.metadata}
    out = []
    for name, value in profile.items():
        if name not in figures and name in mirror_figures:
            carriers = [
                other
                for other in backend_names()
                if "profile" in backend_options(other)
                and issubclass(
                    getattr(_backend_class(other), "profile_class", object), MirrorFigures
                )
            ]
            out.append(
                Problem(
                    f"{path}.{name}",
                    f"backend {backend!r} has no analog neuron to carry the integration "
                    "non-linearity (its neurons add their input exactly); the backends with "
                    f"it: {', '.join(carriers)}",
                )
            )
            continue
        if name not in figures:
            out.append(
                Problem(
                    f"{path}.{name}",
                    f"is not a figure of {profile_class.__name__}; allowed: "
                    f"{', '.join(sorted(figures))}",
                )
            )
            continue
        default = figures[name]
        if is_number(default):
            whole = is_int(value) or (is_finite(value) and value == int(value))
            ok = is_number(value) and (whole or not is_int(default))
            if not ok or isinstance(value, bool) != isinstance(default, bool):
                kind = "an integer" if is_int(default) else "a number"
                out.append(Problem(f"{path}.{name}", f"{show(value)} must be {kind}"))
            elif name in ranges:  # a figure with its own range (a sigma: >= 0)
                problem = number_problem(f"{path}.{name}", value, Bound(*ranges[name]))
                if problem is not None:
                    out.append(problem)
            elif (problem := magnitude_problem(f"{path}.{name}", value)) is not None:
                out.append(problem)
        elif isinstance(default, (bool, str)) and type(value) is not type(default):
            out.append(
                Problem(f"{path}.{name}", f"{show(value)} must be a {type(default).__name__}")
            )
        elif (problem := _nested_number_problem(f"{path}.{name}", value)) is not None:
            out.append(problem)
    return out
