"""Datasets and spike encoders.

Datasets come as :class:`Dataset` objects with a train, validation and test :class:`Split`
whose features are scaled to ``[0, 1]``; :func:`make_loaders` wraps them in seeded PyTorch
data loaders. Encoders turn features into spike tensors for a network.

Conventions (see docs/architecture.md):

- Spike tensors are time-major, ``[n_steps, batch, channels]``, dtype float32, holding 0/1
  (or -1/0/+1 for :class:`TernaryEncoder`).
- Times are in milliseconds; ``dt`` is the simulation step in ms.
- All randomness is seeded explicitly, so the same seed gives the same data, batches and spikes.

This module has no UI imports: only numpy, scikit-learn and torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = [
    "DATASETS",
    "ENCODERS",
    "Dataset",
    "DeltaEncoder",
    "LatencyEncoder",
    "LogScaleEncoder",
    "RateEncoder",
    "Split",
    "TernaryEncoder",
    "load_dataset",
    "make_encoder",
    "make_loaders",
    "times_to_raster",
    "yinyang",
]

_SEED_MAX = 2**32 - 1


def _check_seed(name: str, seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [0, {_SEED_MAX}], got {seed!r}")
    if not 0 <= seed <= _SEED_MAX:
        raise ValueError(f"{name} must lie in [0, {_SEED_MAX}], got {seed}")


# --------------------------------------------------------------------------------------------
# Yin-Yang
# --------------------------------------------------------------------------------------------


def yinyang(
    size: int, seed: int, r_small: float = 0.1, r_big: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Generate the Yin-Yang data set (Kriener, Göltz & Petrovici 2021).

    Reproduces the published splits bit for bit: ``yinyang(5000, 42)`` is the training set,
    ``yinyang(1000, 41)`` the validation set and ``yinyang(1000, 40)`` the test set.

    Each sample draws a goal class uniformly, then rejection-samples points in the square
    ``[0, 2 r_big]^2`` until one lies in the big circle and has the goal class, so the classes
    stay balanced (each about 1/3).

    Args:
        size: number of samples, >= 1.
        seed: seed of the ``numpy.random.RandomState``, in ``[0, 2**32 - 1]``.
        r_small: radius of the two dots, ``0 < r_small < r_big / 2`` (so the dots do not
            touch each other or the rim and every class has area).
        r_big: radius of the big circle, > 0; with the default 0.5 all features lie in [0, 1].

    Returns:
        ``(samples, labels)``: samples float64 ``[size, 4]`` holding ``[x, y, 1 - x, 1 - y]``;
        labels int64 ``[size]`` with 0, 1, 2 (2 = dot; the names used by the published code
        are ``("yin", "yang", "dot")``).
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be an integer >= 1, got {size!r}")
    _check_seed("seed", seed)
    if not r_big > 0:
        raise ValueError(f"r_big must be > 0, got {r_big}")
    if not 0 < r_small < r_big / 2:
        raise ValueError(f"r_small must lie in (0, r_big / 2) = (0, {r_big / 2}), got {r_small}")
    samples, labels = _yinyang_cached(int(size), int(seed), float(r_small), float(r_big))
    return samples.copy(), labels.copy()


@functools.lru_cache(maxsize=16)
def _yinyang_cached(
    size: int, seed: int, r_small: float, r_big: float
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    samples = np.empty((size, 4), dtype=np.float64)
    labels = np.empty(size, dtype=np.int64)
    for i in range(size):
        goal = rng.randint(3)
        while True:
            # The exact expressions and their order matter for bit-exact reproduction.
            x, y = rng.rand(2) * 2.0 * r_big
            if np.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            label = _yinyang_class(x, y, r_small, r_big)
            if label == goal:
                break
        samples[i] = (x, y, 1.0 - x, 1.0 - y)
        labels[i] = label
    samples.flags.writeable = False
    labels.flags.writeable = False
    return samples, labels


def _yinyang_class(x: float, y: float, r_small: float, r_big: float) -> int:
    """Class of a point inside the big circle: 2 for the dots, else 1 if in the 'yin' region."""
    d_right = np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_left = np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    if d_right < r_small or d_left < r_small:
        return 2
    is_yin = (
        d_right <= r_small
        or r_small < d_left <= 0.5 * r_big
        or (y > r_big and d_right > 0.5 * r_big)
    )
    return int(is_yin)


# --------------------------------------------------------------------------------------------
# Dataset registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One split of a data set.

    Attributes:
        features: float32 or float64 ``[N, F]``, scaled to ``[0, 1]``.
        labels: int64 ``[N]``, class indices.
    """

    features: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.features.ndim != 2:
            raise ValueError(f"features must be 2-D [N, F], got shape {self.features.shape}")
        if self.labels.shape != (self.features.shape[0],):
            raise ValueError(
                f"labels must have shape ({self.features.shape[0]},) to match features, "
                f"got {self.labels.shape}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    """A named data set with train, validation and test splits (features in ``[0, 1]``)."""

    name: str
    train: Split
    validation: Split
    test: Split
    n_features: int
    n_classes: int
    class_names: tuple[str, ...]
    description: str = ""


def _load_yinyang(
    train_size: int = 5000,
    validation_size: int = 1000,
    test_size: int = 1000,
    train_seed: int = 42,
    validation_seed: int = 41,
    test_seed: int = 40,
) -> Dataset:
    """Yin-Yang with the published sizes and seeds by default; features ``[x, y, 1-x, 1-y]``."""
    splits = {
        split: Split(*yinyang(size, seed))
        for split, size, seed in (
            ("train", train_size, train_seed),
            ("validation", validation_size, validation_seed),
            ("test", test_size, test_seed),
        )
    }
    return Dataset(
        name="yinyang",
        **splits,
        n_features=4,
        n_classes=3,
        class_names=("yin", "yang", "dot"),
        description=(
            "Yin-Yang (Kriener, Göltz & Petrovici 2021): points [x, y, 1-x, 1-y] in [0, 1], "
            f"3 balanced classes; seeds train {train_seed}, validation {validation_seed}, "
            f"test {test_seed}."
        ),
    )


def _load_digits(
    seed: int = 0, validation_fraction: float = 0.1, test_fraction: float = 0.2
) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 samples, no download), pixels / 16.

    Split, stratified by class and seeded by ``seed``: first ``test_fraction`` of all samples
    goes to test, then ``validation_fraction`` of all samples (taken from the rest) to
    validation; the remainder is train. Defaults give 1257 / 180 / 360 samples.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _check_seed("seed", seed)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if not 0 < validation_fraction < 1 - test_fraction:
        raise ValueError(
            f"validation_fraction must lie in (0, 1 - test_fraction) = (0, {1 - test_fraction}), "
            f"got {validation_fraction}"
        )
    digits = load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rest_x, test_x, rest_y, test_y = train_test_split(
        features, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x,
        rest_y,
        test_size=validation_fraction / (1 - test_fraction),
        stratify=rest_y,
        random_state=seed,
    )
    return Dataset(
        name="digits",
        train=Split(train_x, train_y),
        validation=Split(val_x, val_y),
        test=Split(test_x, test_y),
        n_features=64,
        n_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        description=(
            "scikit-learn 8x8 digits, pixels / 16 in [0, 1]; stratified split with seed "
            f"{seed}: test {test_fraction:.0%}, validation {validation_fraction:.0%} of all."
        ),
    )


DATASETS: dict[str, Callable[..., Dataset]] = {
    "yinyang": _load_yinyang,
    "digits": _load_digits,
}


def load_dataset(name: str, **kwargs) -> Dataset:
    """Load a registered data set by name; ``kwargs`` go to its loader (sizes, seeds, ...)."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](**kwargs)


def make_loaders(dataset: Dataset, batch_size: int, seed: int) -> dict[str, DataLoader]:
    """Data loaders for the three splits, yielding ``(features float32 [B, F], labels int64 [B])``.

    The train loader shuffles with a ``torch.Generator`` seeded by ``seed``: the same seed
    gives the same batch order, epoch after epoch of a fresh loader. Validation and test keep
    their order. ``num_workers=0``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    _check_seed("seed", seed)
    loaders = {}
    for split_name in ("train", "validation", "test"):
        split: Split = getattr(dataset, split_name)
        tensors = TensorDataset(
            torch.as_tensor(np.asarray(split.features), dtype=torch.float32),
            torch.as_tensor(np.asarray(split.labels), dtype=torch.int64),
        )
        shuffle = split_name == "train"
        loaders[split_name] = DataLoader(
            tensors,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(seed) if shuffle else None,
            num_workers=0,
        )
    return loaders


# --------------------------------------------------------------------------------------------
# Spike encoders
# --------------------------------------------------------------------------------------------


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_dt(dt: float) -> None:
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0 (ms), got {dt!r}")


def _check_unit_features(features: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    if features.ndim != ndim:
        raise ValueError(f"features must be {ndim}-D, got shape {tuple(features.shape)}")
    if features.numel() and (features.min() < 0 or features.max() > 1):
        raise ValueError(
            f"features must lie in [0, 1], got range "
            f"[{features.min().item():g}, {features.max().item():g}]"
        )
    return features


def _static_or_series(features: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Static ``[batch, F]`` -> repeated ``[n_steps, batch, F]``; series ``[T, batch, F]`` kept."""
    if features.ndim == 2:
        return features.unsqueeze(0).expand(n_steps, *features.shape)
    if features.ndim == 3:
        return features
    raise ValueError(
        f"features must be [batch, F] or time-major [T, batch, F], got {tuple(features.shape)}"
    )


@dataclass
class LatencyEncoder:
    """Time-to-first-spike encoding: each feature spikes exactly once.

    Feature ``x`` in ``[0, 1]`` spikes at ``t = t_early + x * (t_late - t_early)`` ms (with
    ``invert=True`` at ``t_late - x * (t_late - t_early)``, so large values spike early, as
    suits digits). In the raster the spike lands on step ``round(t / dt)`` (round half to
    even). With ``bias_time`` set, one extra last channel spikes at ``bias_time`` for every
    sample (the bias spike used for Yin-Yang: 4 features -> 5 channels). Features below
    ``silent_below`` emit no spike (blank pixels stay silent).

    Example (Göltz et al. 2021 style Yin-Yang, tau_syn = 5 ms)::

        LatencyEncoder(n_steps=100, dt=0.1, t_early=0.75, t_late=10.0, bias_time=4.5)

    Attributes:
        n_steps: raster length, >= 1.
        dt: step in ms, > 0.
        t_early, t_late: spike times (ms) of x = 0 and x = 1; ``0 <= t_early < t_late <=
            (n_steps - 1) * dt`` so every spike fits in the raster.
        bias_time: time (ms) of the bias spike in ``[0, (n_steps - 1) * dt]``, or None.
        silent_below: features strictly below this value in ``[0, 1]`` stay silent, or None.
        invert: if True, large values spike early.
    """

    n_steps: int
    dt: float
    t_early: float
    t_late: float
    bias_time: float | None = None
    silent_below: float | None = None
    invert: bool = False

    def __post_init__(self) -> None:
        _check_positive_int("n_steps", self.n_steps)
        _check_dt(self.dt)
        t_max = (self.n_steps - 1) * self.dt
        if not 0 <= self.t_early < self.t_late <= t_max:
            raise ValueError(
                f"t_early and t_late must satisfy 0 <= t_early < t_late <= (n_steps - 1) * dt "
                f"= {t_max:g} ms, got t_early={self.t_early}, t_late={self.t_late}"
            )
        if self.bias_time is not None and not 0 <= self.bias_time <= t_max:
            raise ValueError(f"bias_time must lie in [0, {t_max:g}] ms, got {self.bias_time}")
        if self.silent_below is not None and not 0 <= self.silent_below <= 1:
            raise ValueError(f"silent_below must lie in [0, 1], got {self.silent_below}")

    def n_channels(self, n_features: int) -> int:
        return n_features + (self.bias_time is not None)

    def spike_times(self, features: torch.Tensor) -> torch.Tensor:
        """Exact spike times in ms, ``[batch, n_channels]`` float32; NaN where silent."""
        x = _check_unit_features(torch.as_tensor(features, dtype=torch.float32))
        fraction = 1 - x if self.invert else x
        times = self.t_early + fraction * (self.t_late - self.t_early)
        if self.silent_below is not None:
            times = torch.where(x < self.silent_below, torch.nan, times)
        if self.bias_time is not None:
            bias = torch.full((x.shape[0], 1), float(self.bias_time), dtype=times.dtype)
            times = torch.cat([times, bias.to(times.device)], dim=1)
        return times

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """``[batch, F]`` in ``[0, 1]`` -> spikes ``[n_steps, batch, n_channels(F)]``."""
        return times_to_raster(self.spike_times(features), self.n_steps, self.dt)


def times_to_raster(times: torch.Tensor, n_steps: int, dt: float) -> torch.Tensor:
    """Spike times ``[batch, channels]`` in ms (NaN = no spike) -> ``[n_steps, batch, channels]``.

    Each spike lands on step ``round(t / dt)``, clipped to ``[0, n_steps - 1]``.
    """
    batch, channels = times.shape
    raster = torch.zeros(n_steps, batch, channels, dtype=torch.float32, device=times.device)
    fires = ~torch.isnan(times)
    steps = torch.round(torch.nan_to_num(times) / dt).long().clamp(0, n_steps - 1)
    b, c = torch.nonzero(fires, as_tuple=True)
    raster[steps[b, c], b, c] = 1.0
    return raster


@dataclass
class RateEncoder:
    """Bernoulli (discrete Poisson) rate coding.

    At every step each feature ``x`` in ``[0, 1]`` spikes with probability
    ``x * max_rate_hz * dt / 1000``, which must be <= 1. Randomness comes from a
    ``torch.Generator`` seeded with ``seed`` at construction: two encoders with the same seed
    give the same spikes call after call; :meth:`reset` restarts the sequence; a ``generator``
    passed to a call is used instead.

    Attributes:
        n_steps: raster length, >= 1.
        dt: step in ms, > 0.
        max_rate_hz: rate (Hz) of a feature equal to 1, with ``max_rate_hz * dt / 1000 <= 1``.
        seed: seed of the internal generator, in ``[0, 2**32 - 1]``.
    """

    n_steps: int
    dt: float
    max_rate_hz: float
    seed: int = 0
    _generator: torch.Generator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_positive_int("n_steps", self.n_steps)
        _check_dt(self.dt)
        if not self.max_rate_hz >= 0:
            raise ValueError(f"max_rate_hz must be >= 0, got {self.max_rate_hz}")
        limit = 1000.0 / self.dt
        if self.max_rate_hz * self.dt / 1000.0 > 1:
            raise ValueError(
                f"max_rate_hz must lie in [0, 1000 / dt] = [0, {limit:g}] Hz so that the "
                f"spike probability per step is <= 1, got {self.max_rate_hz}"
            )
        _check_seed("seed", self.seed)
        self.reset()

    def reset(self) -> None:
        """Restart the random sequence from ``seed``."""
        self._generator = torch.Generator().manual_seed(self.seed)

    def n_channels(self, n_features: int) -> int:
        return n_features

    def __call__(
        self, features: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[batch, F]`` in ``[0, 1]`` -> spikes ``[n_steps, batch, F]`` (0/1 float32)."""
        x = _check_unit_features(torch.as_tensor(features, dtype=torch.float32))
        generator = self._generator if generator is None else generator
        probability = x * (self.max_rate_hz * self.dt / 1000.0)
        uniform = torch.rand(
            (self.n_steps, *x.shape), generator=generator, device=generator.device
        ).to(x.device)
        return (uniform < probability).float()


@dataclass
class DeltaEncoder:
    """Send-on-delta (threshold-crossing) encoding of time series, as in sigma-delta encoders.

    Input ``[n_steps, batch, F]`` (time-major); output ``[n_steps, batch, 2 F]`` with the UP
    channels first (``0 .. F-1``) and the DOWN channels after (``F .. 2F-1``). The reference
    level starts at the first sample; at each step, if the signal is at least ``threshold``
    above the reference the UP channel spikes and the reference rises by ``threshold``; if it
    is at least ``threshold`` below, DOWN spikes and the reference falls by ``threshold``. At
    most one event per channel and step, so while the signal changes by less than
    ``threshold`` per step, ``decode(spikes, first_sample)`` stays within ``threshold`` of it
    (up to float rounding).

    Attributes:
        threshold: event size in signal units, > 0.
        n_steps: expected input length, or None to accept any.
        dt: step in ms, > 0 (metadata for the network; the encoding is per step).
    """

    threshold: float
    n_steps: int | None = None
    dt: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"threshold must be a finite number > 0, got {self.threshold}")
        if self.n_steps is not None:
            _check_positive_int("n_steps", self.n_steps)
        _check_dt(self.dt)

    def n_channels(self, n_features: int) -> int:
        return 2 * n_features

    def __call__(self, signal: torch.Tensor) -> torch.Tensor:
        """``[n_steps, batch, F]`` -> spikes ``[n_steps, batch, 2 F]`` (UP then DOWN)."""
        signal = torch.as_tensor(signal)
        if signal.ndim != 3:
            raise ValueError(
                f"signal must be time-major [n_steps, batch, F], got {tuple(signal.shape)}"
            )
        if self.n_steps is not None and signal.shape[0] != self.n_steps:
            raise ValueError(
                f"signal must have n_steps={self.n_steps} steps, got {signal.shape[0]}"
            )
        signal = signal.to(torch.float64)
        reference = signal[0].clone()
        up = torch.zeros_like(signal)
        down = torch.zeros_like(signal)
        for t in range(1, signal.shape[0]):
            difference = signal[t] - reference
            up[t] = (difference >= self.threshold).double()
            down[t] = (difference <= -self.threshold).double()
            reference += self.threshold * (up[t] - down[t])
        return torch.cat([up, down], dim=-1).float()

    def decode(self, spikes: torch.Tensor, initial: torch.Tensor | float) -> torch.Tensor:
        """Reconstruct the signal ``[n_steps, batch, F]`` (float64) from spikes and the first
        sample ``initial`` (``[batch, F]`` or a scalar)."""
        n_features = spikes.shape[-1] // 2
        events = (spikes[..., :n_features] - spikes[..., n_features:]).double()
        initial = torch.as_tensor(initial, dtype=torch.float64, device=events.device)
        return initial + self.threshold * torch.cumsum(events, dim=0)


def _as_threshold_tuple(name: str, thresholds: float | tuple[float, ...]) -> tuple[float, ...]:
    values = (thresholds,) if isinstance(thresholds, (int, float)) else tuple(thresholds)
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must be one or more finite numbers > 0, got {thresholds!r}")
    return tuple(float(v) for v in values)


def _check_code(code: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(code, str) or code not in allowed:
        raise ValueError(f"code must be one of {list(allowed)}, got {code!r}")


def _first_step_only(spikes: torch.Tensor) -> torch.Tensor:
    """``spikes`` with every step after the first silenced (the input presented once)."""
    out = torch.zeros_like(spikes)
    out[0] = spikes[0]
    return out


@dataclass
class TernaryEncoder:
    """Ternary (signed) spikes in {-1, 0, +1}, as used for spiking channel equalisers.

    Two codes:

    - ``code="binary"``: the ternary encoding of Bansbach, von Bank & Schmalen (SNN decision
      feedback equalisation, arXiv 2211.04756), as the authors' published code for the IM/DD
      sequel implements it (github.com/kit-cel/snn-dfe, ``midtread_binary_unipolar``):
      ``|x|`` is clipped to ``[0, x_max]``, quantised to ``q = floor(|x| / delta + 1/2)`` with
      ``delta = x_max / 2**n_bits`` (at most ``2**n_bits - 1``), and ``q``'s ``n_bits`` bits
      (most significant first) become ``n_bits`` channels that carry ``sign(x)`` where the bit
      is 1.  The authors present these spikes at the first step only
      (``first_step_only=True``) and let the network run on for the remaining steps.
    - ``code="thermometer"`` (the default, kept for the runs that use it): channel ``k``
      carries ``sign(x)`` where ``|x| >= thresholds[k]``; this is *not* the paper's code.

    Input: static ``[batch, F]`` (repeated over ``n_steps``) or time-major ``[T, batch, F]``
    (keeps its ``T`` steps). Output ``[steps, batch, F * K]`` float32 in {-1, 0, +1}, channel
    ``f * K + k`` for feature ``f`` (K = number of thresholds, or ``n_bits``).

    Attributes:
        n_steps: steps for static input, >= 1.
        dt: step in ms, > 0.
        thresholds: thermometer code: one threshold or several (> 0), in signal units.
        code: ``"thermometer"`` or ``"binary"``.
        n_bits: binary code: bits per feature, 1 to 24.
        x_max: binary code: the largest magnitude resolved (> 0); larger ones saturate.
        first_step_only: spikes at the first step only (every step of a static input else).
    """

    n_steps: int = 1
    dt: float = 1.0
    thresholds: float | tuple[float, ...] = 0.5
    code: str = "thermometer"
    n_bits: int = 8
    x_max: float = 1.0
    first_step_only: bool = False

    CODES = ("thermometer", "binary")

    def __post_init__(self) -> None:
        _check_positive_int("n_steps", self.n_steps)
        _check_dt(self.dt)
        self.thresholds = _as_threshold_tuple("thresholds", self.thresholds)
        _check_code(self.code, self.CODES)
        _check_positive_int("n_bits", self.n_bits)
        if self.n_bits > 24:
            raise ValueError(f"n_bits must be an integer in [1, 24], got {self.n_bits}")
        if not (
            isinstance(self.x_max, (int, float)) and math.isfinite(self.x_max) and self.x_max > 0
        ):
            raise ValueError(f"x_max must be a finite number > 0, got {self.x_max!r}")
        if not isinstance(self.first_step_only, bool):
            raise ValueError(f"first_step_only must be true or false, got {self.first_step_only!r}")

    @property
    def width(self) -> int:
        """Channels per feature."""
        return self.n_bits if self.code == "binary" else len(self.thresholds)

    def n_channels(self, n_features: int) -> int:
        return n_features * self.width

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """``[batch, F]`` or ``[T, batch, F]`` -> ``[steps, batch, F * K]`` in {-1, 0, +1}."""
        x = _static_or_series(torch.as_tensor(features, dtype=torch.float32), self.n_steps)
        if self.code == "binary":
            delta = self.x_max / 2**self.n_bits
            magnitude = x.abs().to(torch.float64).clamp(max=self.x_max)
            level = torch.floor(magnitude / delta + 0.5).clamp(max=2**self.n_bits - 1).long()
            shifts = torch.arange(self.n_bits - 1, -1, -1, device=x.device)
            on = (level.unsqueeze(-1) >> shifts) & 1  # [T, batch, F, n_bits]
        else:
            thresholds = torch.tensor(self.thresholds, dtype=x.dtype, device=x.device)
            on = x.abs().unsqueeze(-1) >= thresholds  # [T, batch, F, K]
        spikes = (torch.sign(x).unsqueeze(-1) * on).flatten(start_dim=2).float() + 0.0  # no -0
        return _first_step_only(spikes) if self.first_step_only else spikes


@dataclass
class LogScaleEncoder:
    """Log-scale encodings of signed values.

    Two codes:

    - ``code="latency"``: the log-scale encoding of the SNN equalisers (Arnold et al.,
      "Spiking neural network equalization for IM/DD optical communication", arXiv
      2205.04263; the "traditional log-scale encoding" Bansbach, von Bank & Schmalen compare
      their ternary code with), as the authors' published code implements it
      (github.com/kit-cel/snn-dfe, ``encoding.py``): each feature has ``n_levels`` neurons
      with reference points ``r_i`` evenly spaced over ``[-x_max, x_max]``; neuron ``i``
      spikes once, at step ``floor(beta * ln(d_i + 1))`` (clipped to the last step), with
      ``d_i = |x - r_i| ** exponent`` and ``beta = n_steps / ln((2 x_max) ** exponent + 2)``:
      the neurons whose reference points lie nearest the value spike first.
    - ``code="thermometer"`` (the default, kept for the runs that use it): ``n_levels``
      channels per sign with thresholds ``theta_m = x_max * base ** -m``, ``m = 1 ..
      n_levels``; channel ``m`` of the positive group spikes when ``x >= theta_m``, of the
      negative group when ``-x >= theta_m``, at every step.  This is *not* the paper's code.

    Input: static ``[batch, F]``; the thermometer code also takes time-major ``[T, batch, F]``
    (keeping its ``T`` steps). Output 0/1 float32: latency ``[n_steps, batch, F * n_levels]``
    (channel ``f * n_levels + i``); thermometer ``[steps, batch, F * 2 * n_levels]`` (channel
    ``f * 2 M + s * M + (m - 1)`` for sign ``s``, 0 positive, 1 negative).

    Attributes:
        n_steps: steps, >= 1.
        dt: step in ms, > 0.
        n_levels: thresholds per sign (thermometer) or reference neurons per feature
            (latency), 1 to 64 (latency: at least 2).
        x_max: largest expected magnitude, > 0.
        base: thermometer: ratio between neighbouring thresholds, > 1.
        code: ``"thermometer"`` or ``"latency"``.
        exponent: latency: the power of the distance, > 0 (2 in the authors' code).
    """

    n_steps: int = 1
    dt: float = 1.0
    n_levels: int = 4
    x_max: float = 1.0
    base: float = 2.0
    code: str = "thermometer"
    exponent: float = 2.0

    CODES = ("thermometer", "latency")

    def __post_init__(self) -> None:
        _check_positive_int("n_steps", self.n_steps)
        _check_dt(self.dt)
        _check_positive_int("n_levels", self.n_levels)
        if not (math.isfinite(self.x_max) and self.x_max > 0):
            raise ValueError(f"x_max must be a finite number > 0, got {self.x_max}")
        if not (math.isfinite(self.base) and self.base > 1):
            raise ValueError(f"base must be a finite number > 1, got {self.base}")
        _check_code(self.code, self.CODES)
        if self.code == "latency" and self.n_levels < 2:
            raise ValueError(f"n_levels must be >= 2 for the latency code, got {self.n_levels}")
        if not (isinstance(self.exponent, (int, float)) and math.isfinite(self.exponent)):
            raise ValueError(f"exponent must be a finite number > 0, got {self.exponent!r}")
        if not 0 < self.exponent <= 8:
            raise ValueError(f"exponent must lie in (0, 8], got {self.exponent}")

    @property
    def thresholds(self) -> tuple[float, ...]:
        """Thermometer code: ``(theta_1, ..., theta_M)``, descending."""
        return tuple(self.x_max * self.base**-m for m in range(1, self.n_levels + 1))

    @property
    def references(self) -> torch.Tensor:
        """Latency code: the reference points ``r_1 .. r_M``, ascending."""
        return torch.linspace(-self.x_max, self.x_max, self.n_levels, dtype=torch.float64)

    def n_channels(self, n_features: int) -> int:
        per_feature = self.n_levels if self.code == "latency" else 2 * self.n_levels
        return n_features * per_feature

    def spike_steps(self, features: torch.Tensor) -> torch.Tensor:
        """Latency code: the step of each neuron's one spike, ``[batch, F * n_levels]``."""
        x = torch.as_tensor(features, dtype=torch.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be [batch, F], got {tuple(x.shape)}")
        distance = (x.unsqueeze(-1) - self.references.to(x.device)).abs() ** self.exponent
        beta = self.n_steps / math.log((2 * self.x_max) ** self.exponent + 2)
        steps = torch.floor(beta * torch.log1p(distance)).clamp(0, self.n_steps - 1)
        return steps.long().flatten(start_dim=1)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """Static ``[batch, F]`` (or, thermometer, ``[T, batch, F]``) -> spikes (0/1)."""
        if self.code == "latency":
            steps = self.spike_steps(features)
            spikes = torch.zeros(self.n_steps, *steps.shape, dtype=torch.float32)
            spikes.scatter_(0, steps.unsqueeze(0).cpu(), 1.0)
            return spikes.to(torch.as_tensor(features).device)
        x = _static_or_series(torch.as_tensor(features, dtype=torch.float32), self.n_steps)
        thresholds = torch.tensor(self.thresholds, dtype=x.dtype, device=x.device)
        signed = torch.stack([x, -x], dim=-1).unsqueeze(-1)  # [T, batch, F, 2, 1]
        return (signed >= thresholds).flatten(start_dim=2).float()


ENCODERS: dict[str, type] = {
    "latency": LatencyEncoder,
    "rate": RateEncoder,
    "delta": DeltaEncoder,
    "ternary": TernaryEncoder,
    "log_scale": LogScaleEncoder,
}


def make_encoder(name: str, **params):
    """Build a registered encoder by name, e.g. ``make_encoder("rate", n_steps=50, ...)``."""
    if name not in ENCODERS:
        raise ValueError(f"encoder must be one of {sorted(ENCODERS)}, got {name!r}")
    cls = ENCODERS[name]
    init_fields = [f for f in dataclasses.fields(cls) if f.init]
    allowed = sorted(f.name for f in init_fields)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"{name} encoder got unknown parameters {unknown}; allowed: {allowed}")
    missing = [
        f.name
        for f in init_fields
        if f.name not in params
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{name} encoder needs the parameters {missing}")
    return cls(**params)
