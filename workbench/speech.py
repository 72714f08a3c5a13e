"""Spoken digits made on this machine: eSpeak NG voices through a cochlear model into spikes.

The English digits "zero" .. "nine" are spoken by the eSpeak NG synthesiser (the PyPI wheel
``espeakng-loader`` ships the library and its data, so nothing but pip is needed) in many
voices, rates and pitches, and passed through a cochlear front end into spike events, the way
the Spiking Heidelberg Digits (Cramer et al. 2020) were made from recordings:

1. **Synthesis** (:func:`synthesize`): libespeak-ng driven through ctypes in synchronous mode,
   16-bit samples at 22,050 Hz collected by a callback.  eSpeak keeps state from one utterance
   to the next in static variables (the pitch flutter's phase, the echo buffer) and draws noise
   from a generator seeded by the clock, so every utterance runs on a freshly loaded private
   copy of the library with its generator seeded: the same arguments give the same bytes,
   whatever was spoken before.  A lock keeps one synthesis at a time per process.
2. **Voices** (:class:`Voice`): an eSpeak voice variant (``m1`` .. ``m8``, ``f1`` .. ``f5`` and
   others that sound human; :data:`VARIANTS`) in an English accent (:data:`ACCENTS`).  Each
   utterance draws its speaking rate, pitch and pitch range from the seed.  The splits are made
   by *speaker*: a variant's voices, in every accent, fall in one split only, so the test set
   holds speakers never heard in training in any accent (and validation its own).
3. **Cochlear front end** (:class:`Cochlea`, :func:`encode`): silence trimmed, a gammatone
   filterbank (``scipy.signal.gammatone``, 4th order, centre frequencies equally spaced on
   Glasberg & Moore's ERB-rate scale, 700 channels from 100 Hz to 8 kHz by default), each
   channel's rectified output smoothed to frames of :data:`FRAME` samples (0.73 ms), log
   compression (a rate-level function: silent at ``dynamic_range_db`` under the utterance's
   loudest channel-frame, ``max_rate_hz`` at it) and one integrate-and-fire neuron per channel
   whose exact threshold crossings are the spike times (its starting phase drawn from the
   seed).  Two implementations: :func:`envelope_lfilter`, the reference (``lfilter`` per
   channel at the lowest of 22,050 / {1, 2, 4, 8, 16} Hz that holds its band, half-wave
   rectification, frame averages), and :func:`envelope_fft`, the default, ~10x faster: the
   same filters applied in the frequency domain and each channel's envelope read at the
   frame rate by one small inverse FFT (tested against the reference).
4. **Cache** (:func:`build_spoken_digits`): the data set is built once and stored under
   ``$WORKBENCH_CACHE`` (else ``~/.cache/snn-workbench/``) in a file named by a hash of every
   setting, the eSpeak version and :data:`FORMAT_VERSION`; written to a temporary file and
   renamed; each split's SHA-256 content hash is checked on load and a file that fails it is
   built again.

The module imports numpy and scipy only (no torch).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import importlib.metadata
import io
import json
import math
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.files import write_atomic

__all__ = [
    "ACCENTS",
    "DIGITS",
    "FORMAT_VERSION",
    "FRAME",
    "SAMPLE_RATE",
    "VARIANTS",
    "Cochlea",
    "SpokenDigitsSplit",
    "Voice",
    "build_spoken_digits",
    "cache_directory",
    "encode",
    "envelope_fft",
    "envelope_lfilter",
    "erb_rate",
    "erb_space",
    "espeak_version",
    "make_cochlea",
    "synthesize",
]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# English accents of eSpeak NG (its voice files under espeak-ng-data/lang/gmw).  Two more,
# "en-gb-x-gbclan" (Lancastrian) and "en-gb-x-gbcwmd" (West Midlands), may be passed; they are
# left out of the default to keep its build under ~3 minutes on two cores.  en-Shaw (the
# Shavian alphabet) is a spelling, not an accent.
ACCENTS = (
    "en",  # British English
    "en-us",
    "en-gb-scotland",
    "en-029",  # Caribbean
    "en-gb-x-rp",  # Received Pronunciation
    "en-us-nyc",
)

# Voice variants (espeak-ng-data/voices/!v) that sound like a person.  Left out: the robots
# and echoes (robosoft*, UniRobot, anikaRobot, RicishayMax*, announcer), whispers (whisper,
# whisperf, caleb), effects (Demonic, Tweaky, croak, fast, Mr serious) and variants whose
# files are mostly comments copied from the effects.
VARIANTS = (
    # male
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "Alex", "Andy", "Denis", "Diogo", "Gene", "Henrique", "Hugo", "Jacky", "Lee", "Mario",
    "Michael", "Mike", "adam", "antonio", "benjamin", "boris", "david", "ed", "edward",
    "grandpa", "gustave", "iven", "marcelo", "max", "michel", "miguel", "mike2", "paul",
    "pedro", "quincy", "rob", "robert", "sandro", "travis", "victor",
    # female
    "f1", "f2", "f3", "f4", "f5",
    "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda", "grandma", "linda", "shelby",
    "steph",
    # eSpeak's Klatt synthesisers on its default voice
    "klatt", "klatt2", "klatt3", "klatt4",
)  # fmt: skip

SAMPLE_RATE = 22050  # Hz, eSpeak NG's output rate

# Bump when anything that changes the samples changes: it is part of the cache file's key.
FORMAT_VERSION = 1

_SEED_MAX = 2**32 - 1
FRAME = 16  # audio samples per envelope frame at 22,050 Hz: 0.726 ms
_DECIMATIONS = (16, 8, 4, 2, 1)  # the sample-rate divisors a channel may run at
_BAND_ERBS = 3.0  # a channel's band reaches this many ERBs above its centre frequency
_MAX_CHANNELS = 4096
_MAX_HIGH_HZ = 0.45 * SAMPLE_RATE


# --------------------------------------------------------------------------------- checks


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
    return int(value)


def _check_float(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
    return float(value)


def _check_interval(name: str, value, low: float, high: float, integer: bool) -> tuple:
    """A ``(low, high)`` pair inside ``[low, high]`` with its first value <= its second."""
    kind = "integers" if integer else "numbers"
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair of {kind} in [{low}, {high}], got {value!r}")
    check = _check_int if integer else _check_float
    first, second = (check(f"{name}[{i}]", v, low, high) for i, v in enumerate(value))
    if first > second:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {tuple(value)}")
    return first, second


# ------------------------------------------------------------------------------ synthesis

# speak_lib.h (API revision 12)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error, not exit(), when the data is not found
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER
_EE_OK = 0

_LOCK = threading.Lock()
_CALLBACK_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
_chunks: list[np.ndarray] = []  # the samples of the utterance being synthesised (under _LOCK)
_private: dict = {}  # this process's copy of the library (under _LOCK)


def _collect(wav, n_samples, events):
    if wav and n_samples > 0:
        _chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
    return 0  # continue synthesis


_CALLBACK = _CALLBACK_TYPE(_collect)  # kept alive for the life of the module


def _loader():
    try:
        import espeakng_loader
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError(
            "spoken digits need eSpeak NG from the espeakng-loader wheel: "
            "pip install -c constraints.txt espeakng-loader==0.2.4"
        ) from error
    return espeakng_loader


def _private_library() -> str:
    """This process's own copy of libespeak-ng, so that unloading it really unloads it
    (nothing else in the process holds that file open) and the next load starts fresh."""
    if _private.get("pid") != os.getpid():  # none yet, or a forked child's inherited one
        folder = tempfile.mkdtemp(prefix="workbench-espeak-")
        atexit.register(_remove_private, folder, os.getpid())
        path = os.path.join(folder, "libespeak-ng-workbench.so")
        shutil.copyfile(_loader().get_library_path(), path)
        _private.update(path=path, pid=os.getpid())
    return _private["path"]


def _remove_private(folder: str, pid: int) -> None:
    if os.getpid() == pid:  # not from a forked child that inherited the exit handler
        shutil.rmtree(folder, ignore_errors=True)


def _open_library():
    lib = ctypes.CDLL(_private_library())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK_TYPE]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    return lib


def _close_library(lib) -> None:
    import _ctypes

    handle = lib._handle
    del lib
    _ctypes.dlclose(handle)


def espeak_version() -> str:
    """eSpeak NG's version and the espeakng-loader wheel's, e.g. ``"1.52.0 (loader 0.2.4)"``:
    part of the cache key, since another version speaks differently."""
    with _LOCK:
        lib = _open_library()
        try:
            version = lib.espeak_Info(None).decode()
        finally:
            _close_library(lib)
    return f"{version} (loader {importlib.metadata.version('espeakng-loader')})"


def synthesize(
    text: str,
    voice: str,
    *,
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    seed: int = 0,
) -> np.ndarray:
    """``text`` spoken by eSpeak NG as int16 samples at :data:`SAMPLE_RATE` Hz.

    Args:
        text: what to say (UTF-8).
        voice: an eSpeak voice name, ``"accent+variant"`` (e.g. ``"en-us+f3"``).
        rate: words per minute, 80-450 (eSpeak's default 175).
        pitch: base pitch, 0-100 (default 50).
        pitch_range: intonation range, 0-100 (default 50; 0 is a monotone).
        seed: seeds eSpeak's noise generator (aspiration, the Klatt voices' noise).

    Deterministic: the same arguments give the same samples, whatever ran before, because
    each call loads a private copy of the library afresh (~6 ms).  One call at a time per
    process (a lock); separate processes do not share the library's state.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    if not isinstance(voice, str) or not voice:
        raise ValueError(f"voice must be an eSpeak voice name such as 'en-us+m3', got {voice!r}")
    if "+" in voice:  # eSpeak ignores a variant it does not have: refuse it here
        variant = voice.split("+", 1)[1]
        if variant.lower() not in _espeak_names()["variants"]:
            raise ValueError(f"voice {voice!r}: {variant!r} is not an eSpeak NG voice variant")
    rate = _check_int("rate", rate, 80, 450)
    pitch = _check_int("pitch", pitch, 0, 100)
    pitch_range = _check_int("pitch_range", pitch_range, 0, 100)
    seed = _check_int("seed", seed, 0, 2**31 - 1)
    data = os.path.dirname(_loader().get_data_path()).encode()
    # espeak-ng keeps pointers to the voice name, so the buffers live until the library goes.
    name = ctypes.create_string_buffer(voice.encode())
    message = ctypes.create_string_buffer(text.encode())
    with _LOCK:
        _chunks.clear()
        lib = _open_library()
        try:
            if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT) < 0:
                raise RuntimeError(f"eSpeak NG could not start with its data in {data.decode()}")
            lib.espeak_ng_SetRandSeed(seed)
            lib.espeak_SetSynthCallback(_CALLBACK)
            if lib.espeak_SetVoiceByName(name) != _EE_OK:
                raise ValueError(
                    f"voice {voice!r}: {voice.split('+')[0]!r} is not an eSpeak NG voice"
                )
            for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
                lib.espeak_SetParameter(parameter, value, 0)
            status = lib.espeak_Synth(
                message, len(message), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if status != _EE_OK:
                raise RuntimeError(f"eSpeak NG failed to speak {text!r} (status {status})")
            lib.espeak_Synchronize()
            lib.espeak_Terminate()
            samples = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
        finally:
            _chunks.clear()
            _close_library(lib)
    return samples.astype(np.int16, copy=False)


# --------------------------------------------------------------------------------- voices


@dataclass(frozen=True)
class Voice:
    """An eSpeak voice: a variant (the speaker) in an accent; ``name`` is what eSpeak reads."""

    accent: str
    variant: str

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"


# ------------------------------------------------------------------------------- cochlea


def erb_rate(frequency_hz):
    """Glasberg & Moore's (1990) ERB-rate scale: the number of equivalent rectangular
    bandwidths below ``frequency_hz``, ``21.4 log10(1 + 0.00437 f)``."""
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(frequency_hz, dtype=np.float64))


def _erb_rate_to_hz(rate):
    return (10.0 ** (np.asarray(rate, dtype=np.float64) / 21.4) - 1.0) / 0.00437


def _erb_hz(frequency_hz):
    """The equivalent rectangular bandwidth at ``frequency_hz``: ``24.7 (0.00437 f + 1)``."""
    return 24.7 * (0.00437 * np.asarray(frequency_hz, dtype=np.float64) + 1.0)


def erb_space(low_hz: float, high_hz: float, n_channels: int) -> np.ndarray:
    """``n_channels`` centre frequencies from ``low_hz`` to ``high_hz`` (both included),
    equally spaced on the ERB-rate scale (one channel: ``low_hz``)."""
    n_channels = _check_int("n_channels", n_channels, 1, _MAX_CHANNELS)
    if n_channels == 1:
        return np.array([float(low_hz)])
    rates = np.linspace(erb_rate(low_hz), erb_rate(high_hz), n_channels)
    centres = _erb_rate_to_hz(rates)
    centres[0], centres[-1] = low_hz, high_hz
    return centres


@functools.cache
def _gammatone(centre_hz: float, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.gammatone``'s 4th-order IIR filter (``b`` of 5, ``a`` of 9 taps)."""
    from scipy.signal import gammatone

    return gammatone(centre_hz, "iir", fs=sample_rate)


@dataclass(frozen=True)
class Cochlea:
    """A bank of gammatone filters (``scipy.signal.gammatone``, 4th order, IIR).

    Attributes:
        centre_hz: ``[n_channels]`` centre frequencies, ascending, ERB-spaced.
        decimation: ``[n_channels]`` the divisor of :data:`SAMPLE_RATE` each channel runs at
            in the time-domain path: the largest of 16, 8, 4, 2, 1 whose anti-aliasing filter
            (``scipy.signal.decimate``: 0.8 of the new Nyquist frequency) passes the
            channel's band, its centre plus :data:`_BAND_ERBS` ERBs.
    """

    centre_hz: np.ndarray
    decimation: np.ndarray

    @property
    def n_channels(self) -> int:
        return int(self.centre_hz.shape[0])

    def filter(self, channel: int, sample_rate: float = SAMPLE_RATE):
        """Channel ``channel``'s ``(b, a)`` at ``sample_rate``."""
        return _gammatone(float(self.centre_hz[channel]), float(sample_rate))


def make_cochlea(n_channels: int = 700, low_hz: float = 100.0, high_hz: float = 8000.0) -> Cochlea:
    """The filterbank of :func:`encode`: ``n_channels`` gammatone filters, ERB-spaced from
    ``low_hz`` to ``high_hz``."""
    n_channels = _check_int("n_channels", n_channels, 1, _MAX_CHANNELS)
    high_hz = _check_float("high_hz", high_hz, 20.0, _MAX_HIGH_HZ)
    low_hz = _check_float("low_hz", low_hz, 20.0, high_hz)
    centres = erb_space(low_hz, high_hz, n_channels)
    top = centres + _BAND_ERBS * _erb_hz(centres)
    decimation = np.ones(n_channels, dtype=np.int64)
    for divisor in _DECIMATIONS[::-1]:
        decimation[top <= 0.8 * SAMPLE_RATE / divisor / 2] = divisor
    centres.flags.writeable = False
    decimation.flags.writeable = False
    return Cochlea(centres, decimation)


def trim_silence(audio: np.ndarray, threshold_db: float = 40.0, margin_ms: float = 10.0):
    """``audio`` without the leading and trailing stretches quieter than ``threshold_db``
    under its loudest 5 ms frame (``margin_ms`` kept either side)."""
    frame = int(round(0.005 * SAMPLE_RATE))
    n_frames = len(audio) // frame
    if n_frames == 0:
        return audio
    power = (audio[: n_frames * frame].astype(np.float64) ** 2).reshape(n_frames, frame)
    power = power.mean(axis=1)
    if power.max() == 0.0:
        return audio[:0]
    loud = np.nonzero(power >= power.max() * 10.0 ** (-threshold_db / 10.0))[0]
    margin = int(round(margin_ms * 1e-3 * SAMPLE_RATE))
    start = max(loud[0] * frame - margin, 0)
    stop = min((loud[-1] + 1) * frame + margin, len(audio))
    return audio[start:stop]


def _as_float(audio) -> np.ndarray:
    audio = np.asarray(audio)
    scale = 1.0 / 32768.0 if audio.dtype.kind in "iu" else 1.0  # int16 samples -> [-1, 1)
    return audio.astype(np.float64) * scale


def envelope_lfilter(audio: np.ndarray, cochlea: Cochlea) -> np.ndarray:
    """The reference front end, in the time domain: each channel's gammatone filter run with
    ``scipy.signal.lfilter`` at its own rate (the audio decimated by 2, 4, 8, 16 with
    ``scipy.signal.decimate``, zero phase), half-wave rectified and averaged over frames of
    :data:`FRAME` samples (~0.73 ms).  Returns ``[n_channels, ceil(len(audio) / FRAME)]``.
    """
    from scipy.signal import decimate, lfilter

    audio = _as_float(audio)
    n_frames = -(-len(audio) // FRAME)
    signal = np.zeros(n_frames * FRAME)
    signal[: len(audio)] = audio
    envelope = np.zeros((cochlea.n_channels, n_frames))
    if n_frames == 0:
        return envelope
    rates = {1: signal}
    for divisor in _DECIMATIONS[-2::-1]:  # 2, 4, 8, 16: halving steps, each anti-aliased
        previous = rates[divisor // 2]
        # decimate's zero-phase filter needs > 27 samples; a shorter signal runs at full rate
        rates[divisor] = decimate(previous, 2, zero_phase=True) if len(previous) > 27 else None
    for divisor in _DECIMATIONS:
        channels = np.nonzero(cochlea.decimation == divisor)[0]
        if len(channels) == 0:
            continue
        rate = divisor if rates[divisor] is not None else 1
        x = rates[rate]
        out = np.empty((len(channels), len(x)))
        for row, channel in enumerate(channels):
            out[row] = lfilter(*cochlea.filter(channel, SAMPLE_RATE / rate), x)
        np.maximum(out, 0.0, out=out)  # half-wave rectification
        envelope[channels] = out.reshape(len(channels), n_frames, FRAME // rate).mean(axis=2)
    return envelope


_weights: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _design_rate(highest_hz: float) -> float:
    """The lowest of SAMPLE_RATE / (16, 8, 4, 2, 1) whose Nyquist frequency is 10 % above
    ``highest_hz``."""
    for divisor in _DECIMATIONS:
        if SAMPLE_RATE / divisor >= 2.2 * highest_hz:
            return SAMPLE_RATE / divisor
    return float(SAMPLE_RATE)


def _fft_weights(cochlea: Cochlea, m: int) -> tuple[np.ndarray, np.ndarray]:
    """For a signal of ``FRAME * m`` samples: each channel's first spectral bin (in a
    spectrum padded by ``m // 2`` bins either side) and its ``m`` weights (complex64)."""
    key = (cochlea.centre_hz.tobytes(), m)
    if key not in _weights:
        from scipy.signal import freqz

        length = FRAME * m
        bin_hz = SAMPLE_RATE / length
        centre_bin = np.round(cochlea.centre_hz / bin_hz).astype(np.int64)
        offset = np.arange(m) - m // 2  # bins from the centre bin
        bins = centre_bin[:, None] + offset[None, :]
        quarter = m / 4  # the envelope's low-pass: flat to a quarter of the frame rate,
        taper = np.clip((np.abs(offset) - quarter) / quarter, 0.0, 1.0)  # zero at half
        taper = 0.5 * (1.0 + np.cos(np.pi * taper))
        # 2: the analytic signal; 1 / FRAME: ifft over m points of a spectrum of FRAME * m;
        # 1 / pi: a rectified-and-smoothed narrow-band signal is its envelope over pi;
        # exp(j pi offset / m): sample each frame's centre, as the reference's averages do.
        shift = np.exp(1j * np.pi * offset / m)
        weights = np.zeros((cochlea.n_channels, m), dtype=np.complex128)
        for channel, centre in enumerate(cochlea.centre_hz):
            inside = (bins[channel] > 0) & (bins[channel] <= length // 2)
            # scipy's design loses precision when the centre is under ~2 % of the sample
            # rate (1.4 % gain error at 150 Hz and 22 kHz): design at the lowest rate that
            # holds the band read here, where it is exact to ~1e-9.
            rate = _design_rate(centre + SAMPLE_RATE / FRAME / 2)
            b, a = cochlea.filter(channel, rate)
            _, response = freqz(b, a, worN=bins[channel, inside] * bin_hz, fs=rate)
            weights[channel, inside] = response
        weights *= (2.0 / FRAME / np.pi) * taper * shift
        if len(_weights) > 32:
            _weights.clear()
        _weights[key] = (centre_bin, weights.astype(np.complex64))
    return _weights[key]


def envelope_fft(audio: np.ndarray, cochlea: Cochlea) -> np.ndarray:
    """The fast front end, in the frequency domain, tested against :func:`envelope_lfilter`.

    A gammatone channel whose output is half-wave rectified and smoothed below its centre
    frequency gives its envelope over pi; this computes that envelope directly: the audio's
    spectrum (zero-padded by >= 100 ms, so the filters' ringing does not wrap around) times
    each channel's frequency response, cut to a band of one frame rate (~1.4 kHz, tapered)
    around the centre and transformed back at the frame rate: one FFT of the audio and one
    small inverse FFT per channel, vectorised over channels.  Below ~700 Hz the reference
    keeps a trace of the carrier that this does not.  Returns ``[n_channels, n_frames]``
    float32.
    """
    audio = _as_float(audio)
    n_frames = -(-len(audio) // FRAME)
    if n_frames == 0:
        return np.zeros((cochlea.n_channels, 0))
    block = 128  # lengths in steps of 128 frames (93 ms), so few weight tables are made
    m = block * -(-(n_frames + int(0.1 * SAMPLE_RATE / FRAME) + 1) // block)
    centre_bin, weights = _fft_weights(cochlea, m)
    spectrum = np.zeros(FRAME * m // 2 + 1 + m, dtype=np.complex64)
    spectrum[m // 2 : m // 2 + FRAME * m // 2 + 1] = np.fft.rfft(audio, FRAME * m)
    windows = np.lib.stride_tricks.sliding_window_view(spectrum, m)[centre_bin]
    baseband = np.fft.ifft(windows * weights, axis=1)[:, :n_frames]
    return np.abs(baseband)  # float32


_ENVELOPES = {"fft": envelope_fft, "lfilter": envelope_lfilter}


def spike_times(
    rate_hz: np.ndarray, frame_ms: float, phase: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact spikes of one integrate-and-fire neuron per channel driven by ``rate_hz``.

    Channel ``c`` integrates ``rate_hz[c, f] / 1000`` per ms through frame ``f`` (``frame_ms``
    long), starting from ``phase[c]`` in ``[0, 1)``, and spikes each time the integral
    crosses an integer (threshold 1, reset by subtraction).  The integral is piecewise linear,
    so the crossing times are exact.  Returns ``(times ms float32, channels int16)`` sorted by
    time, then channel.
    """
    increment = np.asarray(rate_hz, dtype=np.float64) * (frame_ms * 1e-3)
    n_channels, n_frames = increment.shape
    integral = np.empty((n_channels, n_frames + 1))
    integral[:, 0] = phase
    np.cumsum(increment, axis=1, out=integral[:, 1:])
    integral[:, 1:] += phase[:, None]
    counts = np.floor(integral[:, -1]).astype(np.int64)  # levels 1 .. counts[c] are crossed
    channel = np.repeat(np.arange(n_channels), counts)
    level = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + 1.0
    # One sorted array for all channels (channel c's integral lifted by c * lift), searched
    # once for every level: the first frame boundary at or above it ends the spike's frame.
    lift = float(np.ceil(integral[:, -1].max(initial=0.0)) + 2.0)
    lifted = (integral + lift * np.arange(n_channels)[:, None]).ravel()
    boundary = np.searchsorted(lifted, level + lift * channel) - channel * (n_frames + 1)
    boundary = np.clip(boundary, 1, n_frames)
    start = integral[channel, boundary - 1]
    within = np.clip((level - start) / increment[channel, boundary - 1], 0.0, 1.0)
    times = (boundary - 1 + within) * frame_ms
    order = np.lexsort((channel, times))
    return times[order].astype(np.float32), channel[order].astype(np.int16)


def encode(
    audio: np.ndarray,
    cochlea: Cochlea,
    rng: np.random.Generator,
    *,
    dynamic_range_db: float = 50.0,
    max_rate_hz: float = 80.0,
    max_duration_ms: float = 1000.0,
    method: str = "fft",
) -> tuple[np.ndarray, np.ndarray, float]:
    """One utterance (int16 at :data:`SAMPLE_RATE` Hz) as spike events.

    Silence is trimmed and the rest cut at ``max_duration_ms``; each channel's envelope
    (:func:`envelope_fft`, or the reference :func:`envelope_lfilter` with
    ``method="lfilter"``) is compressed to a level in dB under the utterance's loudest
    channel-frame and mapped linearly to a firing rate, 0 at ``-dynamic_range_db`` and below,
    ``max_rate_hz`` at 0 dB; :func:`spike_times` makes the spikes, each channel's starting
    phase drawn from ``rng``.  Returns ``(times ms float32, units int16, duration ms)``.
    """
    audio = trim_silence(np.asarray(audio))
    audio = audio[: int(max_duration_ms * 1e-3 * SAMPLE_RATE)]
    duration_ms = len(audio) / SAMPLE_RATE * 1e3
    if method not in _ENVELOPES:
        raise ValueError(f"method must be one of {sorted(_ENVELOPES)}, got {method!r}")
    envelope = _ENVELOPES[method](audio, cochlea)
    phase = rng.random(cochlea.n_channels)
    peak = envelope.max(initial=0.0)
    if peak <= 0.0:
        return np.zeros(0, np.float32), np.zeros(0, np.int16), duration_ms
    # log compression: the level in dB under the peak, mapped linearly onto [0, max_rate_hz]
    rate_hz = envelope * np.float32(1.0 / peak)
    np.maximum(rate_hz, np.float32(10.0 ** (-dynamic_range_db / 20.0)), out=rate_hz)
    np.log10(rate_hz, out=rate_hz)
    rate_hz *= np.float32(20.0 / dynamic_range_db)
    rate_hz += np.float32(1.0)
    rate_hz *= np.float32(max_rate_hz)
    times, units = spike_times(rate_hz, FRAME / SAMPLE_RATE * 1e3, phase)
    keep = times < duration_ms  # the last frame may run past the audio's end
    return times[keep], units[keep], duration_ms


# --------------------------------------------------------------------------- the data set


@dataclass(frozen=True)
class SpokenDigitsSplit:
    """One split as flat arrays: sample ``k``'s events are ``[offsets[k]:offsets[k + 1]]``.

    Attributes:
        times: float32 ``[E]``, ms from the sample's start, sorted within each sample.
        units: int16 ``[E]``, channel indices in ``[0, n_channels)``.
        offsets: int64 ``[N + 1]``, from 0 to ``E``.
        labels: int64 ``[N]``, the digit.
        voices: ``[N]`` str, the eSpeak voice of each sample (``"accent+variant"``).
        n_channels: the number of channels.
        duration_ms: the longest sample of the whole data set (every split holds the same).
        content_hash: SHA-256 (hex) of the arrays above and the two numbers.
    """

    times: np.ndarray
    units: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    voices: np.ndarray
    n_channels: int
    duration_ms: float
    content_hash: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _content_hash(times, units, offsets, labels, voices, n_channels, duration_ms) -> str:
    digest = hashlib.sha256()
    for array, dtype in (
        (times, "<f4"),
        (units, "<i2"),
        (offsets, "<i8"),
        (labels, "<i8"),
    ):
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    digest.update("\n".join(str(v) for v in voices).encode())
    digest.update(json.dumps([int(n_channels), float(duration_ms)]).encode())
    return digest.hexdigest()


def cache_directory() -> Path:
    """``$WORKBENCH_CACHE`` if set, else ``~/.cache/snn-workbench``."""
    folder = os.environ.get("WORKBENCH_CACHE")
    return Path(folder) if folder else Path.home() / ".cache" / "snn-workbench"


_DEFAULTS = dict(
    variants=VARIANTS,
    accents=ACCENTS,
    repeats=1,
    n_channels=700,
    low_hz=100.0,
    high_hz=8000.0,
    rate_wpm=(120, 240),
    pitch=(20, 80),
    pitch_range=(20, 80),
    dynamic_range_db=50.0,
    max_rate_hz=80.0,
    max_duration_ms=1000.0,
    validation_fraction=0.15,
    test_fraction=0.2,
)


def _settings(seed, **given) -> dict:
    """Every setting checked, by field, and normalised (the cache key is made from these)."""
    s = {**_DEFAULTS, **given}
    out = {"seed": _check_int("seed", seed, 0, _SEED_MAX)}
    for name in ("variants", "accents"):
        value = s[name]
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) == 0:
            raise ValueError(f"{name} must be a non-empty list of eSpeak names, got {value!r}")
        if not all(isinstance(v, str) and v and "+" not in v for v in value):
            raise ValueError(f"{name} must hold names such as {_DEFAULTS[name][:2]}, got {value}")
        if len(set(value)) != len(value):
            raise ValueError(f"{name} must not repeat a name, got {value}")
        out[name] = list(value)
    known = _espeak_names()
    for name in ("variants", "accents"):
        unknown = [v for v in out[name] if v.lower() not in known[name]]
        if unknown:
            raise ValueError(
                f"{name}: {unknown} not in eSpeak NG's data (choose from {sorted(known[name])})"
            )
    if len(out["variants"]) < 3:
        raise ValueError(
            f"variants must name at least 3 speakers (one per split), got {len(out['variants'])}"
        )
    out["repeats"] = _check_int("repeats", s["repeats"], 1, 100)
    out["n_channels"] = _check_int("n_channels", s["n_channels"], 1, _MAX_CHANNELS)
    out["high_hz"] = _check_float("high_hz", s["high_hz"], 20.0, _MAX_HIGH_HZ)
    out["low_hz"] = _check_float("low_hz", s["low_hz"], 20.0, out["high_hz"])
    out["rate_wpm"] = list(_check_interval("rate_wpm", s["rate_wpm"], 80, 450, True))
    out["pitch"] = list(_check_interval("pitch", s["pitch"], 0, 100, True))
    out["pitch_range"] = list(_check_interval("pitch_range", s["pitch_range"], 0, 100, True))
    out["dynamic_range_db"] = _check_float("dynamic_range_db", s["dynamic_range_db"], 1.0, 200.0)
    out["max_rate_hz"] = _check_float("max_rate_hz", s["max_rate_hz"], 1.0, 1000.0)
    out["max_duration_ms"] = _check_float("max_duration_ms", s["max_duration_ms"], 50.0, 10000.0)
    out["validation_fraction"] = _check_float(
        "validation_fraction", s["validation_fraction"], 0.0, 0.5
    )
    out["test_fraction"] = _check_float("test_fraction", s["test_fraction"], 0.0, 0.5)
    return out


@functools.cache
def _espeak_names() -> dict[str, frozenset[str]]:
    """The voice variants and English accents in eSpeak NG's data folder (lower case, as
    eSpeak matches them)."""
    data = Path(_loader().get_data_path())
    variants = frozenset(p.name.lower() for p in (data / "voices" / "!v").iterdir())
    accents = frozenset(
        p.name.lower() for p in (data / "lang").rglob("en*") if p.is_file() and p.name != "en-Shaw"
    )
    return {"variants": variants, "accents": accents}


def _speaker_splits(settings: dict) -> dict[str, list[str]]:
    """The variants of each split: shuffled by the seed, at least one per split."""
    variants = settings["variants"]
    rng = np.random.default_rng([settings["seed"], 1])
    shuffled = [variants[i] for i in rng.permutation(len(variants))]
    n_test = max(1, int(round(settings["test_fraction"] * len(variants))))
    n_validation = max(1, int(round(settings["validation_fraction"] * len(variants))))
    if n_test + n_validation >= len(variants):
        raise ValueError(
            f"test_fraction and validation_fraction leave no variant for training "
            f"({len(variants)} variants, {n_test} test, {n_validation} validation)"
        )
    return {
        "test": shuffled[:n_test],
        "validation": shuffled[n_test : n_test + n_validation],
        "train": shuffled[n_test + n_validation :],
    }


def _utterances(settings: dict) -> list[tuple]:
    """Every utterance as ``(variant index, accent index, repeat, digit)``, in build order."""
    return [
        (v, a, r, d)
        for v in range(len(settings["variants"]))
        for a in range(len(settings["accents"]))
        for r in range(settings["repeats"])
        for d in range(len(DIGITS))
    ]


_cochleas: dict[tuple, Cochlea] = {}


def _utterance_entropy(seed: int, voice: Voice, repeat: int, digit: int) -> list[int]:
    """The seed of one utterance's random stream, from the names, not the positions, so a
    voice speaks the same in any list of voices."""
    name = f"{voice.name}/{repeat}/{digit}".encode()
    return [seed, 2, int.from_bytes(hashlib.sha256(name).digest()[:16], "little")]


def _make_sample(settings: dict, utterance: tuple):
    """One utterance's spikes: a pure function of the settings and the utterance's indices
    (its random stream is seeded by both), so any order or worker count gives the same."""
    v, a, r, d = utterance
    key = (settings["n_channels"], settings["low_hz"], settings["high_hz"])
    if key not in _cochleas:
        _cochleas[key] = make_cochlea(*key)
    voice = Voice(settings["accents"][a], settings["variants"][v])
    rng = np.random.default_rng(_utterance_entropy(settings["seed"], voice, r, d))
    rate = int(rng.integers(settings["rate_wpm"][0], settings["rate_wpm"][1], endpoint=True))
    pitch = int(rng.integers(settings["pitch"][0], settings["pitch"][1], endpoint=True))
    spread = settings["pitch_range"]
    pitch_range = int(rng.integers(spread[0], spread[1], endpoint=True))
    audio = synthesize(
        DIGITS[d],
        voice.name,
        rate=rate,
        pitch=pitch,
        pitch_range=pitch_range,
        seed=int(rng.integers(2**31)),
    )
    times, units, duration = encode(
        audio,
        _cochleas[key],
        rng,
        dynamic_range_db=settings["dynamic_range_db"],
        max_rate_hz=settings["max_rate_hz"],
        max_duration_ms=settings["max_duration_ms"],
    )
    return times, units, duration


def _make_chunk(settings: dict, chunk: list[tuple]):
    return [_make_sample(settings, u) for u in chunk]


def _assemble(settings, utterances, samples, splits, duration_ms) -> dict:
    variant_split = {v: name for name, variants in splits.items() for v in variants}
    out = {}
    for name in ("train", "validation", "test"):
        index = [
            i
            for i, (v, _, _, _) in enumerate(utterances)
            if variant_split[settings["variants"][v]] == name
        ]
        counts = np.array([len(samples[i][0]) for i in index], dtype=np.int64)
        times = np.concatenate([samples[i][0] for i in index] or [np.zeros(0, np.float32)])
        units = np.concatenate([samples[i][1] for i in index] or [np.zeros(0, np.int16)])
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        labels = np.array([utterances[i][3] for i in index], dtype=np.int64)
        voices = np.array(
            [
                Voice(
                    settings["accents"][utterances[i][1]], settings["variants"][utterances[i][0]]
                ).name
                for i in index
            ],
            dtype=str,
        )
        arrays = (times.astype(np.float32), units.astype(np.int16), offsets, labels, voices)
        n_channels = settings["n_channels"]
        out[name] = SpokenDigitsSplit(
            *arrays, n_channels, duration_ms, _content_hash(*arrays, n_channels, duration_ms)
        )
    return out


def _cache_file(settings: dict, folder: Path) -> Path:
    key = json.dumps(
        {"settings": settings, "espeak": espeak_version(), "format": FORMAT_VERSION},
        sort_keys=True,
    )
    return folder / f"spoken_digits-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def _save(path: Path, data: dict) -> None:
    arrays = {}
    for name, split in data.items():
        for field in ("times", "units", "offsets", "labels", "voices"):
            arrays[f"{name}/{field}"] = getattr(split, field)
        arrays[f"{name}/meta"] = np.array(
            json.dumps(
                {
                    "n_channels": split.n_channels,
                    "duration_ms": split.duration_ms,
                    "content_hash": split.content_hash,
                }
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getbuffer())


def _load(path: Path) -> dict | None:
    """The cached splits, or None when the file is missing, unreadable or fails its hash."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            data = {}
            for name in ("train", "validation", "test"):
                meta = json.loads(str(stored[f"{name}/meta"]))
                arrays = [stored[f"{name}/{f}"] for f in ("times", "units", "offsets", "labels")]
                voices = stored[f"{name}/voices"]
                n_channels, duration_ms = int(meta["n_channels"]), float(meta["duration_ms"])
                digest = _content_hash(*arrays, voices, n_channels, duration_ms)
                if digest != meta["content_hash"]:
                    return None
                data[name] = SpokenDigitsSplit(*arrays, voices, n_channels, duration_ms, digest)
            return data
    except Exception:  # missing, truncated or corrupted (zip, JSON, array errors): rebuild
        return None


def build_spoken_digits(
    seed: int = 0,
    n_channels: int = 700,
    *,
    variants: Sequence[str] = VARIANTS,
    accents: Sequence[str] = ACCENTS,
    repeats: int = 1,
    low_hz: float = 100.0,
    high_hz: float = 8000.0,
    rate_wpm: tuple[int, int] = (120, 240),
    pitch: tuple[int, int] = (20, 80),
    pitch_range: tuple[int, int] = (20, 80),
    dynamic_range_db: float = 50.0,
    max_rate_hz: float = 80.0,
    max_duration_ms: float = 1000.0,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.2,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, SpokenDigitsSplit]:
    """The spoken-digits data set: ``{"train", "validation", "test"}`` -> each split's arrays.

    Every ``variant`` speaks every digit ``repeats`` times in every ``accent``, each utterance
    at a speaking rate (words per minute), pitch and pitch range drawn uniformly from the given
    intervals.  A variant (speaker) belongs to one split, in all its accents: ``test_fraction``
    and ``validation_fraction`` of the variants (at least one each), drawn by the seed.  The
    front end is :func:`encode` with ``n_channels`` channels from ``low_hz`` to ``high_hz``.

    The result is cached (``cache_dir``, else :func:`cache_directory`) and read back, its
    content hashes verified, on the next call with the same settings; ``workers`` > 1 builds
    in that many processes (the samples do not depend on it).  A tqdm bar shows the build
    unless ``progress`` is False.
    """
    settings = _settings(
        seed,
        variants=variants,
        accents=accents,
        repeats=repeats,
        n_channels=n_channels,
        low_hz=low_hz,
        high_hz=high_hz,
        rate_wpm=rate_wpm,
        pitch=pitch,
        pitch_range=pitch_range,
        dynamic_range_db=dynamic_range_db,
        max_rate_hz=max_rate_hz,
        max_duration_ms=max_duration_ms,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
    )
    workers = _check_int("workers", workers, 1, 256)
    splits = _speaker_splits(settings)
    path = _cache_file(settings, Path(cache_dir) if cache_dir is not None else cache_directory())
    cached = _load(path)
    if cached is not None:
        return cached
    from tqdm import tqdm  # not tqdm.auto: its notebook bar would import ipywidgets

    utterances = _utterances(settings)
    samples: list = [None] * len(utterances)
    with tqdm(
        total=len(utterances), desc="spoken digits", unit="sample", disable=not progress
    ) as bar:
        if workers == 1:
            for i, utterance in enumerate(utterances):
                samples[i] = _make_sample(settings, utterance)
                bar.update()
        else:
            size = 20
            chunks = [
                list(range(i, min(i + size, len(utterances))))
                for i in range(0, len(utterances), size)
            ]
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {
                    pool.submit(_make_chunk, settings, [utterances[i] for i in chunk]): chunk
                    for chunk in chunks
                }
                for future in as_completed(futures):
                    for i, sample in zip(futures[future], future.result()):
                        samples[i] = sample
                    bar.update(len(futures[future]))
    duration_ms = max((s[2] for s in samples), default=0.0)
    data = _assemble(settings, utterances, samples, splits, float(duration_ms))
    _save(path, data)
    return data
