"""Synthetic speakers (espeak-ng): made once into the cache, each digit said and trimmed, mixed into
utterances at the share asked, and training goes on without them where espeak-ng is absent."""
from __future__ import annotations

import numpy as np
import pytest

from any2seq.data import synthetic_voices
from any2seq.data.audio import DIGIT_WORDS, Synthetic, fsdd_recordings, make_utterances
from any2seq.data.audio_io import read_audio
from any2seq.data.synthetic_voices import draw_voices, synthetic_recordings, trimmed

needs_espeak = pytest.mark.skipif(synthetic_voices.espeak() is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng; .ci/run does)")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "any2seq"


@needs_espeak
def test_every_digit_in_every_voice_made_once(cache):
    recordings = synthetic_recordings(3, seed=5)
    assert sorted((r.speaker, r.digit) for r in recordings) == [
        (f"espeak{v:04d}", d) for v in range(3) for d in range(10)]
    for rec in recordings:
        wave = read_audio(rec.path, 8000)  # at the model's rate: read without a conversion
        assert 0.1 < len(wave) / 8000 < 1.5  # a word, its silences trimmed
        assert 0.1 - 1e-3 <= np.abs(wave).max() <= 0.6 + 1e-3
        assert np.abs(wave[:240]).max() > 0.02 * np.abs(wave).max()  # sound within 30 ms of the start
    made = {r.path: r.path.stat().st_mtime_ns for r in recordings}
    again = synthetic_recordings(3, seed=5)
    assert {r.path: r.path.stat().st_mtime_ns for r in again} == made  # read back, not made again
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no half-made folder left
    assert {r.path.parent for r in synthetic_recordings(2, seed=6)}.isdisjoint({r.path.parent for r in recordings})


@needs_espeak
def test_voices_differ(cache):
    recordings = synthetic_recordings(4, seed=1)
    sevens = [read_audio(r.path, 8000) for r in recordings if r.digit == 7]
    assert len({len(w) for w in sevens}) == 4  # rates and accents differ, so do the durations


def test_voices_are_drawn_the_same_for_the_same_seed():
    variants = ["m1", "f2", "klatt"]
    assert draw_voices(20, 3, variants) == draw_voices(20, 3, variants)
    voices = draw_voices(200, 3, variants)
    assert {v.variant for v in voices} == set(variants) and len({v.accent for v in voices}) > 4
    assert voices[0].args()[:2] == ["-v", f"{voices[0].accent}+{voices[0].variant}"]


def test_trimmed_keeps_the_sound_and_a_margin():
    wave = np.zeros(8000, np.float32)
    wave[3000:5000] = 0.5
    out = trimmed(wave, 8000)
    assert len(out) == 2000 + 2 * 160 and out.max() == 0.5
    assert len(trimmed(np.zeros(100, np.float32), 8000)) == 100


def test_without_espeak_training_goes_on_with_the_recordings(monkeypatch, capsys, cache):
    monkeypatch.setattr(synthetic_voices, "espeak", lambda: None)
    assert synthetic_recordings(5) == []
    assert "espeak-ng is not installed" in capsys.readouterr().err
    assert not cache.exists()


def test_synthetic_share_of_the_digits(tmp_path):
    import soundfile

    real = [r for r in fsdd_recordings("../shared/data/fsdd") if r.speaker == "george" and r.index >= 10]
    for digit in range(10):  # a "voice" whose every word is 1,000 samples of one value, easy to count
        soundfile.write(tmp_path / f"{digit}_marker_0.wav", np.full(1000, 0.3), 8000, subtype="PCM_16")
    fake = tuple(fsdd_recordings(tmp_path))
    marker = read_audio(fake[0].path, 8000)[0]

    plain = make_utterances(real, 200, 7)
    for share in (0.0, 0.5, 1.0):
        mixed = make_utterances(real, 200, 7, synthetic=Synthetic(fake, share))
        assert [w for _, w in mixed] == [w for _, w in plain]  # the same words, said by other voices
        said = sum(len(w.split()) for _, w in mixed)
        by_marker = sum(int((a == marker).sum()) for a, _ in mixed) / 1000
        assert abs(by_marker / said - share) < 0.06
        if share == 0.0:  # no synthetic voice: the very utterances made before they existed
            assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(mixed, plain))


@needs_espeak
def test_effect_variants_are_not_drawn():
    variants = synthetic_voices._variants(synthetic_voices.espeak())
    assert {"m1", "f1", "klatt"} <= set(variants)  # people's voices stay
    assert not [v for v in variants if v.startswith(synthetic_voices.EFFECTS)]
    assert not {"whisper", "robosoft", "Demonic", "croak"} & set(variants)
