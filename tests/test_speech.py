"""The spoken-digits generator (workbench.speech): eSpeak NG synthesis, the cochlear front end,
the splits by speaker and the cache.  Small settings throughout (3-4 variants, 32 channels)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import speech

SMALL = dict(n_channels=32, variants=("m1", "f2", "m3"), accents=("en",), progress=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return speech.build_spoken_digits(0, cache_dir=tmp_path_factory.mktemp("cache"), **SMALL)


def _tone(frequency_hz: float, seconds: float = 0.3, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * speech.SAMPLE_RATE)) / speech.SAMPLE_RATE
    return amplitude * np.sin(2 * np.pi * frequency_hz * t)


# ------------------------------------------------------------------------------ synthesis


def test_synthesis_gives_the_same_bytes_whatever_was_spoken_before():
    first = speech.synthesize("seven", "en-us+m3", rate=150, pitch=40, seed=3)
    speech.synthesize("three", "en-gb-scotland+f2", rate=300)  # eSpeak's state moves on
    again = speech.synthesize("seven", "en-us+m3", rate=150, pitch=40, seed=3)
    assert first.dtype == np.int16 and len(first) > 0.2 * speech.SAMPLE_RATE
    assert first.tobytes() == again.tobytes()
    # the settings reach eSpeak: a faster rate is shorter, another pitch other samples
    assert len(speech.synthesize("seven", "en-us+m3", rate=300, pitch=40, seed=3)) < len(first)
    assert not np.array_equal(speech.synthesize("seven", "en-us+m3", rate=150, seed=3), first)
    # the seed reaches eSpeak's noise generator (f2's voice is rough)
    rough = speech.synthesize("six", "en+f2", seed=1)
    assert not np.array_equal(speech.synthesize("six", "en+f2", seed=2), rough)


def test_synthesis_refuses_bad_arguments_by_name():
    with pytest.raises(ValueError, match="'xx' is not an eSpeak NG voice"):
        speech.synthesize("one", "xx+m1")
    with pytest.raises(ValueError, match="'nobody' is not an eSpeak NG voice variant"):
        speech.synthesize("one", "en+nobody")
    with pytest.raises(ValueError, match=r"rate must lie in \[80, 450\]"):
        speech.synthesize("one", "en+m1", rate=20)
    with pytest.raises(ValueError, match="pitch must lie"):
        speech.synthesize("one", "en+m1", pitch=101)
    with pytest.raises(ValueError, match="text"):
        speech.synthesize("  ", "en+m1")


def test_espeak_version_names_the_library_and_the_wheel():
    assert speech.espeak_version().startswith("1.52.0 (loader 0.2.4")


# ------------------------------------------------------------------------------- cochlea


def test_centre_frequencies_are_equally_spaced_on_the_erb_rate_scale():
    centres = speech.erb_space(100.0, 8000.0, 700)
    assert centres[0] == 100.0 and centres[-1] == 8000.0
    steps = np.diff(speech.erb_rate(centres))
    np.testing.assert_allclose(steps, steps.mean(), rtol=1e-9)
    # Glasberg & Moore (1990): 100 Hz - 8 kHz spans 29.92 ERBs (3.37 to 33.29), and one
    # ERB-rate step is one ERB, 24.7 (4.37 f / 1000 + 1) Hz, wide (to their rounding, 0.3 %)
    assert steps.sum() == pytest.approx(29.92, abs=0.01)
    spacing_in_erbs = np.diff(centres) / (24.7 * (4.37 * centres[:-1] / 1000 + 1))
    np.testing.assert_allclose(spacing_in_erbs, steps, rtol=0.005)
    assert list(speech.erb_space(300.0, 3000.0, 1)) == [300.0]


@pytest.mark.parametrize("method", ["fft", "lfilter"])
@pytest.mark.parametrize("frequency_hz", [130.0, 440.0, 1000.0, 2345.0, 6000.0])
def test_a_pure_tone_excites_the_channel_nearest_to_it_most(method, frequency_hz):
    cochlea = speech.make_cochlea(32, 100.0, 8000.0)
    envelope = speech._ENVELOPES[method](_tone(frequency_hz), cochlea)
    mean = envelope[:, 40:-40].mean(axis=1)  # away from the onset and the end
    nearest = np.argmin(np.abs(speech.erb_rate(cochlea.centre_hz) - speech.erb_rate(frequency_hz)))
    assert np.argmax(mean) == nearest
    # Rectified and smoothed, a channel passes amplitude x gain / pi, the gain of a 4th-order
    # gammatone (b = 1.019 ERB) (1 + ((f - centre) / b)^2)^-2: measured within 0.1 % (fft)
    # and 2 % (lfilter, its frame averages of a rectified sine).
    centre = cochlea.centre_hz[nearest]
    bandwidth = 1.019 * 24.7 * (4.37 * centre / 1000 + 1)
    gain = (1 + ((frequency_hz - centre) / bandwidth) ** 2) ** -2
    assert mean[nearest] == pytest.approx(0.5 * gain / np.pi, rel=0.03)


def test_the_fft_front_end_agrees_with_the_lfilter_reference_on_speech():
    cochlea = speech.make_cochlea(32, 100.0, 8000.0)
    audio = speech.trim_silence(speech.synthesize("seven", "en-us+f2"))
    fast = speech.envelope_fft(audio, cochlea)
    reference = speech.envelope_lfilter(audio, cochlea)
    assert fast.shape == reference.shape == (32, -(-len(audio) // speech.FRAME))
    # Both smooth the rectified output, differently (a tapered band vs frame averages; the
    # reference keeps a trace of carriers below ~700 Hz): compared over 8 frames (5.8 ms),
    # measured 13 % below 400 Hz and 3-8 % above 1 kHz on 700 channels.
    n = fast.shape[1] // 8 * 8
    fast, reference = (e[:, :n].reshape(32, -1, 8).mean(axis=2) for e in (fast, reference))
    for low, high, tolerance in [(0, 1000, 0.2), (1000, 9000, 0.1)]:
        band = (cochlea.centre_hz >= low) & (cochlea.centre_hz < high)
        error = np.linalg.norm(fast[band] - reference[band]) / np.linalg.norm(reference[band])
        assert error < tolerance, (low, high, error)


def test_integrate_and_fire_spikes_are_the_exact_threshold_crossings():
    rng = np.random.default_rng(1)
    rate = np.maximum(rng.normal(200.0, 300.0, (6, 200)), 0.0)
    rate[:, 80:120] = 0.0
    rate[2] = 0.0  # a silent channel
    rate[3] = 4000.0  # several spikes per frame
    phase, frame_ms = rng.random(6), 0.5
    times, units = speech.spike_times(rate, frame_ms, phase)
    expected = []  # walk each channel frame by frame
    for channel in range(6):
        v = phase[channel]
        for frame in range(200):
            step = rate[channel, frame] * frame_ms * 1e-3
            level = np.floor(v) + 1.0
            while level <= v + step:
                expected.append(((frame + (level - v) / step) * frame_ms, channel))
                level += 1.0
            v += step
    expected.sort()
    assert len(times) == len(expected)
    assert times.dtype == np.float32 and units.dtype == np.int16
    np.testing.assert_allclose(times, [t for t, _ in expected], atol=1e-4)
    np.testing.assert_array_equal(units, [c for _, c in expected])


def test_encode_rates_stay_within_max_rate_and_silence_gives_no_spikes():
    cochlea = speech.make_cochlea(32)
    rng = np.random.default_rng(0)
    times, units, duration = speech.encode(
        speech.synthesize("four", "en+m1"), cochlea, rng, max_rate_hz=50.0
    )
    assert 100.0 < duration < 1000.0 and len(times) > 0
    assert times.min() >= 0.0 and times.max() < duration
    per_channel = np.bincount(units, minlength=32)
    assert per_channel.max() <= 50.0 * duration / 1000.0 + 1  # integrate-and-fire: <= rate x T
    silent = speech.encode(np.zeros(5000, np.int16), cochlea, rng)
    assert len(silent[0]) == 0 and len(silent[1]) == 0
    with pytest.raises(ValueError, match="method must be one of"):
        speech.encode(np.zeros(100), cochlea, rng, method="fast")


# -------------------------------------------------------------------------------- data set


def test_splits_hold_disjoint_speakers_and_record_each_samples_voice(small):
    variants = {name: {v.split("+")[1] for v in split.voices} for name, split in small.items()}
    assert set().union(*variants.values()) == {"m1", "f2", "m3"}
    assert all(len(v) == 1 for v in variants.values())  # one speaker each, never shared
    for split in small.values():
        assert len(split) == 10 and sorted(split.labels) == list(range(10))
        assert all(v.startswith("en+") for v in split.voices)


def test_arrays_are_consistent_and_in_range(small):
    durations = set()
    for split in small.values():
        assert split.times.dtype == np.float32 and split.units.dtype == np.int16
        assert split.offsets.dtype == np.int64 and split.labels.dtype == np.int64
        assert split.offsets[0] == 0 and split.offsets[-1] == len(split.times) == len(split.units)
        assert np.all(np.diff(split.offsets) > 0)  # every sample has spikes
        assert split.units.min() >= 0 and split.units.max() < split.n_channels == 32
        assert split.times.min() >= 0.0 and split.times.max() < split.duration_ms <= 1000.0
        for k in range(len(split)):
            times = split.times[split.offsets[k] : split.offsets[k + 1]]
            assert np.all(np.diff(times) >= 0)
        durations.add(split.duration_ms)
    assert len(durations) == 1  # the longest sample of the whole set, in every split


def test_the_same_seed_builds_the_same_data_and_another_seed_other_data(small, tmp_path):
    again = speech.build_spoken_digits(0, cache_dir=tmp_path / "a", **SMALL)
    assert {k: s.content_hash for k, s in again.items()} == {
        k: s.content_hash for k, s in small.items()
    }
    other = speech.build_spoken_digits(1, cache_dir=tmp_path / "b", **SMALL)
    assert all(other[k].content_hash != small[k].content_hash for k in small)


def test_a_voice_speaks_the_same_in_any_list_of_voices(small, tmp_path):
    larger = speech.build_spoken_digits(
        0, cache_dir=tmp_path, **{**SMALL, "variants": ("m1", "f2", "m3", "f4")}
    )

    def by_voice(data):
        out = {}
        for split in data.values():
            for k, (voice, label) in enumerate(zip(split.voices, split.labels)):
                out[voice, label] = split.times[split.offsets[k] : split.offsets[k + 1]]
        return out

    small_samples, larger_samples = by_voice(small), by_voice(larger)
    for key, times in small_samples.items():
        np.testing.assert_array_equal(larger_samples[key], times)


def test_workers_do_not_change_the_data(small, tmp_path):
    parallel = speech.build_spoken_digits(0, cache_dir=tmp_path, workers=2, **SMALL)
    assert all(parallel[k].content_hash == small[k].content_hash for k in small)


def _cache_file(folder):
    (path,) = folder.glob("spoken_digits-*.npz")
    return path


def test_the_cache_is_read_back_and_a_corrupted_file_is_rebuilt(tmp_path, monkeypatch):
    built = speech.build_spoken_digits(0, cache_dir=tmp_path, **SMALL)
    path = _cache_file(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))  # written to a temporary file, then renamed

    def no_building(*args):
        raise AssertionError("rebuilt from a good cache file")

    with monkeypatch.context() as patch:
        patch.setattr(speech, "_make_sample", no_building)
        loaded = speech.build_spoken_digits(0, cache_dir=tmp_path, **SMALL)
    for name, split in built.items():
        assert loaded[name].content_hash == split.content_hash
        np.testing.assert_array_equal(loaded[name].times, split.times)
        np.testing.assert_array_equal(loaded[name].voices, split.voices)

    # one spike time changed inside the file: the hash fails, the set is built again
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays["test/times"] = arrays["test/times"].copy()
    arrays["test/times"][5] += 1.0
    np.savez(path, **arrays)
    rebuilt = speech.build_spoken_digits(0, cache_dir=tmp_path, **SMALL)
    assert rebuilt["test"].content_hash == built["test"].content_hash
    assert speech._load(path) is not None  # and stored again, whole

    path.write_bytes(path.read_bytes()[:1000])  # truncated
    assert speech._load(path) is None
    rebuilt = speech.build_spoken_digits(0, cache_dir=tmp_path, **SMALL)
    assert rebuilt["train"].content_hash == built["train"].content_hash


def test_the_cache_lives_in_workbench_cache_and_its_name_holds_every_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    assert speech.cache_directory() == tmp_path
    monkeypatch.delenv("WORKBENCH_CACHE")
    assert speech.cache_directory().parts[-2:] == (".cache", "snn-workbench")

    def name(seed=0, **change):
        return speech._cache_file(speech._settings(seed, **{**SMALL, **change}), tmp_path).name

    assert name() == name()
    assert len({name(), name(seed=1), name(max_rate_hz=60.0), name(accents=("en-us",))}) == 4


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (dict(n_channels=0), r"n_channels must lie in \[1, 4096\]"),
        (dict(n_channels=2.5), "n_channels must be an integer"),
        (dict(seed=-1), "seed must lie"),
        (dict(repeats=0), "repeats must lie"),
        (dict(variants=("m1", "f2")), "variants must name at least 3"),
        (dict(variants=("m1", "f2", "robot9")), r"variants: \['robot9'\] not in eSpeak"),
        (dict(variants="m1"), "variants must be a non-empty list"),
        (dict(accents=("en", "en")), "accents must not repeat"),
        (dict(accents=("fr",)), r"accents: \['fr'\] not in eSpeak"),
        (dict(high_hz=12000.0), r"high_hz must lie in \[20.0, 9922.5\]"),
        (dict(low_hz=9000.0), "low_hz must lie"),
        (dict(rate_wpm=(200, 100)), "rate_wpm must be"),
        (dict(rate_wpm=(50, 100)), r"rate_wpm\[0\] must lie in \[80, 450\]"),
        (dict(max_rate_hz=0.0), "max_rate_hz must lie"),
        (dict(dynamic_range_db=float("nan")), "dynamic_range_db must lie"),
        (dict(test_fraction=0.5, validation_fraction=0.5), "leave no variant for training"),
        (dict(workers=0), "workers must lie"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(change, field, tmp_path):
    settings = {**SMALL, **change}
    seed = settings.pop("seed", 0)
    with pytest.raises(ValueError, match=field):
        speech.build_spoken_digits(seed, cache_dir=tmp_path, **settings)
    assert not list(tmp_path.iterdir())  # refused before anything is written
