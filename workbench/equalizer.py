"""Channel equalisation: ISI channels, PAM symbols, AWGN at a given Eb/N0, the features of a
spiking decision-feedback equaliser (SNN-DFE) and the classical baselines it is measured against.

The task follows Bansbach, von Bank & Schmalen, "Spiking Neural Network Decision Feedback
Equalization" (arXiv 2211.04756, SCC 2023) and the code its authors published for the IM/DD
sequel (von Bank, Edelmann & Schmalen, arXiv 2304.14152, github.com/kit-cel/snn-dfe):

- symbols ``x[k]`` from a unit-energy PAM constellation (BPSK by default, 4-PAM on request),
  Gray-labelled; each block starts with ``pilot`` known symbols and ends with a ``tail`` of
  symbols that are sent but not decided;
- a discrete-time channel ``y[k] = sum_i h[i] x[k - i] + n[k]`` with taps normalised to unit
  energy (``sum h[i]**2 = 1``), so the received energy per bit is the sent one:
  ``Eb = Es / log2(M)`` with ``Es = 1``, and real white Gaussian noise of variance
  ``N0 / 2 = Eb / (2 Eb/N0)``;
- the equaliser decides ``x[k]`` from the window ``y[k], ..., y[k + W - 1]`` (the current and
  the next ``W - 1`` received samples) and the ``B`` symbols decided before it,
  ``x^[k - 1], ..., x^[k - B]`` (the decision feedback);
- the SNN is trained with the *true* past symbols fed back (teacher forcing, as a DFE's
  feedback filter is designed assuming correct decisions) and tested with its own decisions
  fed back, symbol after symbol (:func:`snn_ber`), many independent blocks in parallel;
- baselines on the same received samples: the MMSE linear equaliser (:func:`mmse_linear`,
  Wiener solution from the channel and the noise, ``W`` taps) and the MMSE decision-feedback
  equaliser (:func:`mmse_dfe`, ``W`` feed-forward taps on the SNN's window and ``B`` feedback
  taps on its own decisions).

Departures from the paper, as this module implements it:

- The paper's channel taps could not be checked against its full text here; the channels
  are the three classic ISI channels of Proakis (``proakis_a``, ``proakis_b``,
  ``proakis_c``; see :data:`CHANNELS` for the source), plus ``awgn`` (no ISI) for checks.
- The linear equaliser may place its window anywhere around the symbol (``offset``, chosen for
  the least mean-square error by default), which makes it the strongest ``W``-tap linear
  baseline rather than one restricted to the SNN's window.

All arrays here are numpy (float64); the network side (:func:`network_decider`) uses torch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CHANNELS",
    "MODULATIONS",
    "Channel",
    "DecisionFeedbackEqualizer",
    "EqualizerEncoder",
    "LinearEqualizer",
    "Modulation",
    "Transmission",
    "adapt_encoder",
    "ber_metrics",
    "dfe_ber",
    "feature_blocks",
    "get_channel",
    "get_modulation",
    "linear_ber",
    "load_dataset",
    "mmse_dfe",
    "mmse_linear",
    "network_decider",
    "noise_std",
    "snn_ber",
    "theoretical_ber",
    "transmit",
]

SEED_MAX = 2**32 - 1


# --------------------------------------------------------------------------------- checks


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {bound}, got {value}")
    return int(value)


def _check_ebn0(ebn0_db) -> float:
    if isinstance(ebn0_db, bool) or not isinstance(ebn0_db, (int, float, np.floating, np.integer)):
        raise ValueError(f"ebn0 must be a finite number (dB), got {ebn0_db!r}")
    if not math.isfinite(float(ebn0_db)) or abs(float(ebn0_db)) > 100:
        raise ValueError(f"ebn0 must be a finite number in [-100, 100] dB, got {ebn0_db!r}")
    return float(ebn0_db)


# ------------------------------------------------------------------------------- channels


@dataclass(frozen=True)
class Channel:
    """A discrete-time ISI channel: taps ``h[0], h[1], ...`` (unit energy) and its source.

    ``window`` and ``feedback`` are the equaliser's default window ``W`` (received samples
    from the current one on) and feedback length ``B`` (decided symbols) for this channel:
    ``W = B + 1 = len(taps)`` lets the feedback cancel every post-cursor tap and the window
    hold every sample the current symbol reaches.
    """

    name: str
    taps: tuple[float, ...]
    source: str
    window: int
    feedback: int

    @property
    def h(self) -> np.ndarray:
        return np.asarray(self.taps, dtype=np.float64)

    @property
    def length(self) -> int:
        return len(self.taps)


def _normalised(taps) -> tuple[float, ...]:
    h = np.asarray(taps, dtype=np.float64)
    return tuple(float(v) for v in h / np.linalg.norm(h))


_PROAKIS = (
    "Proakis & Salehi, Digital Communications, 5th ed. (2008), Sec. 9.4-4, Fig. 9.4-5 "
    "(4th ed. Fig. 10.2-5); the classic test channels of the neural-equaliser literature"
)

# Proakis A: a telephone-like channel with mild ISI (11 taps); B: spectral null at
# half the symbol rate ((1 + z^-1)^2); C: the hardest, a deep null in its passband.  Taps
# as printed, rescaled to unit energy (the printed ones are within 0.5 % of it).
CHANNELS: dict[str, Channel] = {
    "awgn": Channel("awgn", (1.0,), "no intersymbol interference (identity channel)", 1, 0),
    "proakis_a": Channel(
        "proakis_a",
        _normalised([0.04, -0.05, 0.07, -0.21, -0.5, 0.72, 0.36, 0.0, 0.21, 0.03, 0.07]),
        _PROAKIS + ", channel A",
        11,
        10,
    ),
    "proakis_b": Channel(
        "proakis_b", _normalised([0.407, 0.815, 0.407]), _PROAKIS + ", channel B", 3, 2
    ),
    "proakis_c": Channel(
        "proakis_c",
        _normalised([0.227, 0.460, 0.688, 0.460, 0.227]),
        _PROAKIS + ", channel C",
        5,
        4,
    ),
}


def get_channel(name: str) -> Channel:
    """The channel ``name`` (see :data:`CHANNELS`); a clear error names the allowed ones."""
    if not isinstance(name, str) or name not in CHANNELS:
        raise ValueError(f"channel must be one of {sorted(CHANNELS)}, got {name!r}")
    return CHANNELS[name]


# ----------------------------------------------------------------------------- modulation


@dataclass(frozen=True)
class Modulation:
    """Unit-energy ``order``-PAM, Gray-labelled: symbol index ``i`` (ascending amplitude) has
    amplitude ``(2 i - (M - 1)) / sqrt((M^2 - 1) / 3)`` and the bits of ``i ^ (i >> 1)``."""

    name: str
    order: int

    @property
    def bits_per_symbol(self) -> int:
        return int(math.log2(self.order))

    @property
    def constellation(self) -> np.ndarray:
        levels = 2.0 * np.arange(self.order) - (self.order - 1)
        return levels / math.sqrt((self.order**2 - 1) / 3.0)

    @property
    def bits(self) -> np.ndarray:
        """``[M, log2 M]`` 0/1: the Gray label of each symbol index, most significant first."""
        gray = np.arange(self.order) ^ (np.arange(self.order) >> 1)
        shifts = np.arange(self.bits_per_symbol - 1, -1, -1)
        return (gray[:, None] >> shifts) & 1

    def amplitudes(self, indices) -> np.ndarray:
        return self.constellation[np.asarray(indices)]

    def decide(self, values) -> np.ndarray:
        """Nearest-symbol decisions (int64 indices) for real ``values``."""
        c = self.constellation
        step = c[1] - c[0]
        index = np.rint((np.asarray(values, dtype=np.float64) - c[0]) / step)
        return np.clip(index, 0, self.order - 1).astype(np.int64)

    def bit_errors(self, sent, decided) -> int:
        """The number of bits that differ between the symbols ``sent`` and ``decided``."""
        table = self.bits
        return int(np.abs(table[np.asarray(sent)] - table[np.asarray(decided)]).sum())


MODULATIONS: dict[str, Modulation] = {"bpsk": Modulation("bpsk", 2), "pam4": Modulation("pam4", 4)}


def get_modulation(name: str) -> Modulation:
    if not isinstance(name, str) or name not in MODULATIONS:
        raise ValueError(f"modulation must be one of {sorted(MODULATIONS)}, got {name!r}")
    return MODULATIONS[name]


def noise_std(ebn0_db: float, modulation: Modulation, channel: Channel | None = None) -> float:
    """Standard deviation of the real noise at ``ebn0_db``: ``sqrt(N0 / 2)`` with
    ``Eb = Es * sum(h**2) / log2(M)`` and ``Es = 1`` (the energy per bit at the receiver)."""
    ebn0 = 10.0 ** (_check_ebn0(ebn0_db) / 10.0)
    gain = 1.0 if channel is None else float(np.sum(channel.h**2))
    eb = gain / modulation.bits_per_symbol
    return math.sqrt(eb / ebn0 / 2.0)


def _q(x):
    from scipy.special import erfc

    return 0.5 * erfc(np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


def theoretical_ber(ebn0_db: float, modulation: Modulation | str = "bpsk") -> float:
    """Exact bit-error rate of Gray-labelled PAM on an AWGN channel without ISI, from the
    probability of each decision region: ``Q(sqrt(2 Eb/N0))`` for BPSK."""
    mod = get_modulation(modulation) if isinstance(modulation, str) else modulation
    sigma = noise_std(ebn0_db, mod)
    c = mod.constellation
    edges = np.concatenate([[-np.inf], (c[1:] + c[:-1]) / 2, [np.inf]])
    bits = mod.bits
    total = 0.0
    for i, a in enumerate(c):
        # P(decide j | sent i) = Q((lower_j - a) / sigma) - Q((upper_j - a) / sigma)
        p = _q((edges[:-1] - a) / sigma) - _q((edges[1:] - a) / sigma)
        total += float(np.sum(p * np.abs(bits - bits[i]).sum(axis=1)))
    return total / (mod.order * mod.bits_per_symbol)


# ---------------------------------------------------------------------------- transmission


@dataclass(frozen=True)
class Transmission:
    """Blocks of sent symbols and the samples received for them.

    ``symbols`` (int64 indices) and ``received`` (float64) are ``[n_blocks, pilot + n + tail]``:
    in each block the first ``pilot`` symbols are known to the receiver (they seed the
    feedback), the next ``n`` are to be decided, the last ``tail`` are sent so that the window
    of the last decided symbol is full.  Before each block the channel is silent.
    """

    symbols: np.ndarray
    received: np.ndarray
    pilot: int
    tail: int
    channel: Channel
    modulation: Modulation
    ebn0_db: float

    @property
    def n_blocks(self) -> int:
        return int(self.symbols.shape[0])

    @property
    def n(self) -> int:
        """Decided symbols per block."""
        return int(self.symbols.shape[1]) - self.pilot - self.tail

    @property
    def decided(self) -> np.ndarray:
        """The symbols to be decided, ``[n_blocks, n]``."""
        return self.symbols[:, self.pilot : self.pilot + self.n]

    @property
    def n_bits(self) -> int:
        return self.n_blocks * self.n * self.modulation.bits_per_symbol

    def ber(self, decisions: np.ndarray) -> float:
        """Bit-error rate of ``decisions`` ``[n_blocks, n]`` (symbol indices)."""
        return self.modulation.bit_errors(self.decided, decisions) / self.n_bits


def margins(channel: Channel, window: int, feedback: int) -> tuple[int, int]:
    """``(pilot, tail)`` for a block whose decided symbols all have full windows, every linear
    window offset, and ``feedback`` known symbols before the first decision, with every sample
    used past the channel's start-up (``len(taps) - 1`` samples)."""
    memory = channel.length - 1
    pilot = max(feedback, window - 1 + memory)
    tail = window - 1 + memory
    return pilot, tail


def transmit(
    channel: Channel | str,
    ebn0_db: float,
    n_blocks: int,
    n: int,
    seed: int,
    *,
    modulation: Modulation | str = "bpsk",
    window: int | None = None,
    feedback: int | None = None,
    noise: bool = True,
) -> Transmission:
    """Send ``n_blocks`` independent blocks of ``n`` decided symbols (plus pilot and tail, see
    :func:`margins`) through ``channel`` with AWGN at ``ebn0_db``.

    Seeded: ``seed`` splits (numpy ``SeedSequence``) into a symbol stream and a noise stream,
    so the same seed gives the same symbols at every Eb/N0 and the noise differs only in scale
    (common random numbers for a BER curve).  ``noise=False`` sends without noise.
    """
    ch = get_channel(channel) if isinstance(channel, str) else channel
    mod = get_modulation(modulation) if isinstance(modulation, str) else modulation
    ebn0_db = _check_ebn0(ebn0_db)
    n_blocks = _check_int("n_blocks", n_blocks, 1)
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0, SEED_MAX)
    window = ch.window if window is None else _check_int("window", window, 1)
    feedback = ch.feedback if feedback is None else _check_int("feedback", feedback, 0)
    pilot, tail = margins(ch, window, feedback)
    total = pilot + n + tail
    if n_blocks * total > 2**31:
        raise ValueError(
            f"n_blocks * (n + {pilot + tail}) must be <= 2**31 symbols, got {n_blocks * total}"
        )
    symbol_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
    symbols = np.random.default_rng(symbol_seed).integers(0, mod.order, size=(n_blocks, total))
    x = mod.amplitudes(symbols)
    h = ch.h
    y = np.zeros_like(x)
    for i, tap in enumerate(h):  # y[k] = sum_i h[i] x[k - i], silent before the block
        y[:, i:] += tap * x[:, : total - i]
    if noise:
        sigma = noise_std(ebn0_db, mod, ch)
        y += sigma * np.random.default_rng(noise_seed).standard_normal(y.shape)
    return Transmission(symbols.astype(np.int64), y, pilot, tail, ch, mod, ebn0_db)


# ------------------------------------------------------------------------------- features


def _windows(received: np.ndarray, start: int, n: int, offset: int, window: int) -> np.ndarray:
    """``[n_blocks, n, window]``: ``received[:, k + offset + j]`` for ``k = start .. start + n
    - 1``, ``j = 0 .. window - 1``."""
    view = np.lib.stride_tricks.sliding_window_view(received, window, axis=1)
    return view[:, start + offset : start + offset + n, :]


def feature_blocks(tx: Transmission, window: int, feedback: int) -> np.ndarray:
    """The SNN equaliser's features of every decided symbol with the *true* past symbols fed
    back (for training, and for the accuracy with correct feedback), ``[n_blocks, n, W + B]``
    float32: the window ``y[k .. k + W - 1]`` then the indices of ``x[k - 1] .. x[k - B]``."""
    window = _check_int("window", window, 1)
    feedback = _check_int("feedback", feedback, 0)
    _check_margins(tx, window, feedback, 0)
    samples = _windows(tx.received, tx.pilot, tx.n, 0, window)
    past = _past(tx.symbols, tx.pilot, tx.n, feedback)
    return np.concatenate([samples, past.astype(np.float64)], axis=2).astype(np.float32)


def _past(symbols: np.ndarray, start: int, n: int, feedback: int) -> np.ndarray:
    """``[n_blocks, n, feedback]``: ``symbols[:, k - 1], ..., symbols[:, k - feedback]``."""
    out = np.empty((symbols.shape[0], n, feedback), dtype=symbols.dtype)
    for j in range(1, feedback + 1):
        out[:, :, j - 1] = symbols[:, start - j : start - j + n]
    return out


def _check_margins(tx: Transmission, window: int, feedback: int, offset: int) -> None:
    need_pilot = max(feedback, -offset)
    need_tail = window - 1 + offset
    if tx.pilot < need_pilot or tx.tail < need_tail:
        raise ValueError(
            f"window={window}, feedback={feedback} (offset {offset}) need a pilot of >= "
            f"{need_pilot} and a tail of >= {need_tail} symbols; the transmission has "
            f"{tx.pilot} and {tx.tail} (send it with these window and feedback lengths)"
        )


# ---------------------------------------------------------------------- MMSE equalisers


def _channel_matrix(h: np.ndarray, window: int, offset: int) -> tuple[np.ndarray, int]:
    """``H`` with ``[y[k + offset], ..., y[k + offset + W - 1]] = H s + noise`` for
    ``s = [x[k + offset - L + 1], ..., x[k + offset + W - 1]]``, and the position of ``x[k]``
    in ``s`` (``L - 1 - offset``)."""
    length = len(h)
    matrix = np.zeros((window, window + length - 1))
    for j in range(window):
        # y[k + offset + j] = sum_i h[i] x[k + offset + j - i]; x[k + offset + m - L + 1] is s[m]
        for i in range(length):
            matrix[j, j - i + length - 1] = h[i]
    return matrix, length - 1 - offset


@dataclass(frozen=True)
class LinearEqualizer:
    """``z[k] = weights . [y[k + offset], ..., y[k + offset + W - 1]]``, decided after dividing
    by ``bias`` (the MMSE estimate's gain on ``x[k]``, so PAM levels are unbiased)."""

    weights: np.ndarray
    offset: int
    mse: float
    bias: float

    @property
    def window(self) -> int:
        return len(self.weights)


def mmse_linear(
    channel: Channel | str,
    ebn0_db: float,
    window: int,
    *,
    offset: int | None = None,
    modulation: Modulation | str = "bpsk",
) -> LinearEqualizer:
    """The Wiener (MMSE) linear equaliser with ``window`` taps from the channel and the noise
    variance: ``w = R^-1 p`` with ``R = Es H H^T + sigma^2 I`` and ``p = Es H e_k``.

    ``offset`` places the window at ``y[k + offset] ..``; ``None`` picks the offset in
    ``[-(W - 1), L - 1]`` with the least mean-square error."""
    ch = get_channel(channel) if isinstance(channel, str) else channel
    mod = get_modulation(modulation) if isinstance(modulation, str) else modulation
    window = _check_int("window", window, 1)
    sigma2 = noise_std(ebn0_db, mod, ch) ** 2
    candidates = range(-(window - 1), ch.length) if offset is None else [offset]
    best = None
    for o in candidates:
        o = _check_int("offset", o, -(window - 1), ch.length - 1) if offset is not None else o
        matrix, position = _channel_matrix(ch.h, window, o)
        r = matrix @ matrix.T + sigma2 * np.eye(window)
        p = matrix[:, position]
        w = np.linalg.solve(r, p)
        mse = float(1.0 - p @ w)
        if best is None or mse < best.mse - 1e-12:
            best = LinearEqualizer(w, o, mse, float(p @ w))
    return best


@dataclass(frozen=True)
class DecisionFeedbackEqualizer:
    """``z[k] = feedforward . [y[k], ..., y[k + W - 1]] + feedback . [x^[k - 1], ..., x^[k - B]]``
    (``x^`` the decided amplitudes), decided after dividing by ``bias``."""

    feedforward: np.ndarray
    feedback: np.ndarray
    mse: float
    bias: float


def mmse_dfe(
    channel: Channel | str,
    ebn0_db: float,
    window: int,
    feedback: int,
    *,
    modulation: Modulation | str = "bpsk",
) -> DecisionFeedbackEqualizer:
    """The MMSE decision-feedback equaliser on the SNN's inputs: feed-forward taps on the
    window ``y[k .. k + W - 1]``, feedback taps on the ``B`` previous symbols, jointly the
    Wiener solution assuming correct past decisions (the classical design)."""
    ch = get_channel(channel) if isinstance(channel, str) else channel
    mod = get_modulation(modulation) if isinstance(modulation, str) else modulation
    window = _check_int("window", window, 1)
    feedback = _check_int("feedback", feedback, 0)
    sigma2 = noise_std(ebn0_db, mod, ch) ** 2
    matrix, position = _channel_matrix(ch.h, window, 0)
    # columns of H for x[k - 1] .. x[k - B] (zero where the past symbol reaches no sample)
    cross = np.zeros((window, feedback))
    for j in range(1, feedback + 1):
        if position - j >= 0:
            cross[:, j - 1] = matrix[:, position - j]
    r = np.block(
        [
            [matrix @ matrix.T + sigma2 * np.eye(window), cross],
            [cross.T, np.eye(feedback)],
        ]
    )
    p = np.concatenate([matrix[:, position], np.zeros(feedback)])
    w = np.linalg.solve(r, p)
    return DecisionFeedbackEqualizer(w[:window], w[window:], float(1.0 - p @ w), float(p @ w))


def linear_ber(tx: Transmission, equalizer: LinearEqualizer) -> tuple[float, np.ndarray]:
    """``(BER, decisions [n_blocks, n])`` of a linear equaliser on ``tx``."""
    _check_margins(tx, equalizer.window, 0, equalizer.offset)
    samples = _windows(tx.received, tx.pilot, tx.n, equalizer.offset, equalizer.window)
    decisions = tx.modulation.decide(samples @ equalizer.weights / equalizer.bias)
    return tx.ber(decisions), decisions


def dfe_ber(
    tx: Transmission, equalizer: DecisionFeedbackEqualizer, *, correct_feedback: bool = False
) -> tuple[float, np.ndarray]:
    """``(BER, decisions)`` of a DFE on ``tx`` with its own decisions fed back, symbol after
    symbol (all blocks at once); ``correct_feedback=True`` feeds back the sent symbols instead
    (the bound without error propagation)."""
    window, feedback = len(equalizer.feedforward), len(equalizer.feedback)
    _check_margins(tx, window, feedback, 0)
    mod = tx.modulation
    forward = _windows(tx.received, tx.pilot, tx.n, 0, window) @ equalizer.feedforward
    if correct_feedback or feedback == 0:
        past = mod.amplitudes(_past(tx.symbols, tx.pilot, tx.n, feedback))
        decisions = mod.decide((forward + past @ equalizer.feedback) / equalizer.bias)
        return tx.ber(decisions), decisions
    history = mod.amplitudes(tx.symbols[:, tx.pilot - feedback : tx.pilot][:, ::-1]).copy()
    decisions = np.empty((tx.n_blocks, tx.n), dtype=np.int64)
    for k in range(tx.n):
        decided = mod.decide((forward[:, k] + history @ equalizer.feedback) / equalizer.bias)
        decisions[:, k] = decided
        history = np.roll(history, 1, axis=1)
        history[:, 0] = mod.amplitudes(decided)
    return tx.ber(decisions), decisions


# ------------------------------------------------------------------------------ the SNN


def snn_ber(
    tx: Transmission,
    decide: Callable[[np.ndarray], np.ndarray],
    window: int,
    feedback: int,
) -> tuple[float, np.ndarray]:
    """``(BER, decisions)`` of a learned equaliser that decides with its own decisions fed
    back: for ``k = 0 .. n - 1`` in turn, ``decide`` gets the features (as
    :func:`feature_blocks` lays them out, with the *decided* past symbols) of symbol ``k`` of
    every block, ``[n_blocks, W + B]`` float32, and returns their symbol indices
    ``[n_blocks]``.  The first ``B`` fed-back symbols are the pilot's."""
    window = _check_int("window", window, 1)
    feedback = _check_int("feedback", feedback, 0)
    _check_margins(tx, window, feedback, 0)
    samples = _windows(tx.received, tx.pilot, tx.n, 0, window).astype(np.float32)
    history = tx.symbols[:, tx.pilot - feedback : tx.pilot][:, ::-1].astype(np.float32)
    decisions = np.empty((tx.n_blocks, tx.n), dtype=np.int64)
    for k in range(tx.n):
        features = np.concatenate([samples[:, k], history], axis=1)
        decided = np.asarray(decide(features), dtype=np.int64).reshape(-1)
        bad = decided.shape != (tx.n_blocks,)
        if bad or decided.min() < 0 or decided.max() >= tx.modulation.order:
            raise ValueError(
                f"decide must return {tx.n_blocks} symbol indices in [0, "
                f"{tx.modulation.order - 1}], got shape {decided.shape}"
            )
        decisions[:, k] = decided
        if feedback:
            history = np.roll(history, 1, axis=1)
            history[:, 0] = decided
    return tx.ber(decisions), decisions


def network_decider(network, encoder, readout: str) -> Callable[[np.ndarray], np.ndarray]:
    """A ``decide`` function for :func:`snn_ber`: the class with the highest readout score of
    ``network`` on ``encoder(features)`` (no gradients; a random encoder restarted first)."""
    import copy

    import torch

    from workbench.training import result_scores

    encoder = copy.deepcopy(encoder)
    if hasattr(encoder, "reset"):
        encoder.reset()

    def decide(features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            inputs = encoder(torch.as_tensor(features, dtype=torch.float32))
            scores = result_scores(network(inputs), readout, network.spec.dt)
        return scores.argmax(dim=1).cpu().numpy()

    return decide


# ------------------------------------------------------------------------------ encoder


@dataclass
class EqualizerEncoder:
    """Spikes for the SNN equaliser's features: the window of received samples through a
    signal encoder (ternary or log-scale), the fed-back symbol indices one-hot (``M`` channels
    per fed-back symbol, each spiking once at the first step), as in the authors' code.

    Channels: the signal encoder's ``signal.n_channels(window)`` first, then
    ``feedback * order`` one-hot channels (symbol ``x^[k - j]``'s index ``i`` on channel
    ``(j - 1) * order + i``).
    """

    signal: object
    window: int
    feedback: int
    order: int

    def __post_init__(self) -> None:
        _check_int("window", self.window, 1)
        _check_int("feedback", self.feedback, 0)
        _check_int("order", self.order, 2)

    @property
    def n_steps(self) -> int:
        return self.signal.n_steps

    @property
    def dt(self) -> float:
        return self.signal.dt

    def reset(self) -> None:
        if hasattr(self.signal, "reset"):
            self.signal.reset()

    def n_channels(self, n_features: int) -> int:
        if n_features != self.window + self.feedback:
            raise ValueError(
                f"features must be window + feedback = {self.window + self.feedback} wide, "
                f"got {n_features}"
            )
        return self.signal.n_channels(self.window) + self.feedback * self.order

    def __call__(self, features):
        import torch

        features = torch.as_tensor(features, dtype=torch.float32)
        if features.ndim != 2 or features.shape[1] != self.window + self.feedback:
            raise ValueError(
                f"features must be [batch, {self.window + self.feedback}] (window + feedback), "
                f"got {tuple(features.shape)}"
            )
        signal = self.signal(features[:, : self.window])
        indices = features[:, self.window :].round().long().to(signal.device)
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.order):
            raise ValueError(f"fed-back symbol indices must lie in [0, {self.order - 1}]")
        onehot = torch.nn.functional.one_hot(indices, self.order).flatten(1).to(signal.dtype)
        fed = torch.zeros(signal.shape[0], *onehot.shape, dtype=signal.dtype, device=signal.device)
        fed[0] = onehot
        return torch.cat([signal, fed], dim=2)


# ------------------------------------------------------------------------------ dataset


def _stream(seed: int, split: int) -> int:
    """An independent seed for ``split`` (0 train, 1 validation, 2 test) of a data set seed."""
    return int(np.random.SeedSequence([seed, split]).generate_state(1)[0])


def _blocks(total: int, block_length: int) -> tuple[int, int]:
    """``(n_blocks, n)``: the fewest blocks of at most ``block_length`` symbols, each of
    ``n = total // n_blocks`` (so ``n_blocks * n`` falls short of ``total`` by less than
    ``n_blocks``)."""
    n_blocks = -(-total // block_length)
    return n_blocks, total // n_blocks


def load_dataset(
    channel: str = "proakis_b",
    ebn0: float = 10.0,
    modulation: str = "bpsk",
    window: int | None = None,
    feedback: int | None = None,
    train_symbols: int = 100_000,
    validation_symbols: int = 10_000,
    test_symbols: int = 100_000,
    block_length: int = 500,
    seed: int = 0,
):
    """The equaliser task as a :class:`~workbench.data.Dataset` (``--dataset equalizer``).

    Each split is its own seeded transmission through ``channel`` at ``ebn0`` dB, in blocks of
    at most ``block_length`` decided symbols (all of equal length, so a split may hold a few
    symbols fewer than asked); a sample is one symbol: features as
    :func:`feature_blocks` lays them out (the window, then the *true* past symbols), label
    its symbol index.  The dataset's ``extra_metrics`` (:func:`ber_metrics`) keeps the test
    split's blocks, so a trained network's BER with its own decisions fed back, and the
    linear and DFE baselines' on the same symbols, are measured with the run's metrics;
    its ``adapt_encoder`` (:func:`adapt_encoder`) adds the feedback's one-hot spikes.
    ``window``/``feedback`` default to the channel's (:data:`CHANNELS`).
    """
    from workbench.data import Dataset, Split

    try:  # each refusal as "option: why", the form run checks report by option
        ch = get_channel(channel)
        mod = get_modulation(modulation)
        ebn0 = _check_ebn0(ebn0)
        window = ch.window if window is None else _check_int("window", window, 1, 64)
        feedback = ch.feedback if feedback is None else _check_int("feedback", feedback, 0, 64)
        limit = 10_000_000
        sizes = {}
        for name, value in (
            ("train_symbols", train_symbols),
            ("validation_symbols", validation_symbols),
            ("test_symbols", test_symbols),
        ):
            sizes[name] = _check_int(name, value, 1, limit)
        block_length = _check_int("block_length", block_length, 1, limit)
        seed = _check_int("seed", seed, 0, SEED_MAX)
    except ValueError as exc:
        raise ValueError(f"{str(exc).split(' ', 1)[0]}: {exc}") from None
    splits, transmissions = {}, {}
    for index, (split, total) in enumerate(zip(("train", "validation", "test"), sizes.values())):
        n_blocks, n = _blocks(total, block_length)
        tx = transmit(
            ch, ebn0, n_blocks, n, _stream(seed, index),
            modulation=mod, window=window, feedback=feedback,
        )  # fmt: skip
        features = feature_blocks(tx, window, feedback).reshape(-1, window + feedback)
        splits[split] = Split(features, tx.decided.reshape(-1))
        transmissions[split] = tx
    names = tuple(f"{a:+.3g}" for a in mod.constellation)
    test = transmissions["test"]
    return Dataset(
        name="equalizer",
        **splits,
        n_features=window + feedback,
        n_classes=mod.order,
        class_names=names,
        description=(
            f"Channel equalisation (Bansbach, von Bank & Schmalen 2022): {mod.name} over "
            f"{ch.name} {tuple(round(t, 4) for t in ch.taps)} at Eb/N0 {ebn0:g} dB; features: "
            f"{window} received samples y[k .. k+{window - 1}] and the {feedback} previous "
            f"symbols' indices (true ones here; the test BER feeds back the network's own); "
            f"seed {seed}."
        ),
        adapt_encoder=functools.partial(
            adapt_encoder, channel=ch.name, modulation=mod.name, window=window, feedback=feedback
        ),
        extra_metrics=functools.partial(ber_metrics, test, window, feedback),
    )


def ber_metrics(tx: Transmission, window: int, feedback: int, network, encoder, readout) -> dict:
    """What an equaliser run reports beyond accuracy, all on the test blocks ``tx``:
    ``test_ber`` (the network deciding with its own decisions fed back, :func:`snn_ber`),
    ``linear_equalizer_ber`` (:func:`mmse_linear`, ``window`` taps, best offset) and
    ``dfe_ber`` (:func:`mmse_dfe`, its own decisions fed back), and the number of test bits."""
    decide = network_decider(network, encoder, readout)
    ch, mod, ebn0 = tx.channel, tx.modulation, tx.ebn0_db
    snn, _ = snn_ber(tx, decide, window, feedback)
    linear, _ = linear_ber(tx, mmse_linear(ch, ebn0, window, modulation=mod))
    dfe, _ = dfe_ber(tx, mmse_dfe(ch, ebn0, window, feedback, modulation=mod))
    return {
        "test_ber": snn,
        "linear_equalizer_ber": linear,
        "dfe_ber": dfe,
        "test_bits": tx.n_bits,
    }


def adapt_encoder(
    encoder, *, channel: str, modulation: str, window: int, feedback: int
) -> EqualizerEncoder:
    """The run's encoder for this task: ``encoder`` for the received window, one-hot spikes
    for the fed-back symbols (:class:`EqualizerEncoder`)."""
    if isinstance(encoder, EqualizerEncoder):
        return encoder
    return EqualizerEncoder(encoder, window, feedback, get_modulation(modulation).order)
