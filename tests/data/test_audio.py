"""Spoken digits: reading WAVs (real FSDD files and a catalogue of bad ones), splits, utterances."""
from __future__ import annotations

import io
import re
import struct
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from any2seq.data.audio import (
    DIGIT_WORDS,
    Recording,
    download_fsdd,
    extract_fsdd_zip,
    fsdd_recordings,
    make_utterances,
    read_wav,
    split_recordings,
)
from any2seq.errors import UserError
from any2seq.metrics import wer_cer

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd"
needs_fsdd = pytest.mark.skipif(not (FSDD / "recordings").is_dir(),
                                reason=f"the Free Spoken Digit Dataset is not at {FSDD}")


def wav_bytes(samples=None, channels: int = 1, width: int = 2, rate: int = 8000) -> bytes:
    """A WAV file in memory, written by the stdlib (16-bit mono 8 kHz unless told otherwise)."""
    samples = np.arange(100) * 50 if samples is None else np.asarray(samples)
    pcm = np.repeat(samples.astype(f"<i{width}") if width in (2, 4) else samples.astype(np.uint8), channels)
    if width == 3:  # 24-bit: no numpy dtype, write three little-endian bytes per sample
        pcm = np.stack([(samples >> s) & 0xFF for s in (0, 8, 16)], -1).astype(np.uint8)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels), w.setsampwidth(width), w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def test_reads_16_bit_mono():
    audio = read_wav(wav_bytes([0, 16384, -32768, 32767]), name="four.wav")
    assert audio.dtype == np.float32
    np.testing.assert_allclose(audio, [0, 0.5, -1, 32767 / 32768])


@needs_fsdd
def test_reads_real_fsdd_recordings():
    recordings = fsdd_recordings(FSDD)
    assert len(recordings) == 2500 and {r.digit for r in recordings} == set(range(10))
    for rec in recordings[::500]:
        audio = read_wav(rec.path)
        assert audio.dtype == np.float32 and audio.ndim == 1 and len(audio) > 1000
        assert -1 <= audio.min() < 0 < audio.max() <= 1


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """``data`` with one header field overwritten (a WAV's fmt chunk starts at byte 20)."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


BAD_WAVS = {  # file name -> (contents, what the message must say)
    "text.wav": (b"hello, I am not audio\n", "not a readable WAV"),
    "riff-not-wave.wav": (b"RIFF\x24\x00\x00\x00AVI LIST" + bytes(40), "not a readable WAV"),
    "header-only.wav": (wav_bytes()[:30], "not a readable WAV"),
    "truncated.wav": (wav_bytes()[:44 + 120], "truncated"),
    "12-bit.wav": (patched(wav_bytes(), 34, "<H", 12), "12-bit integer WAV samples; any2seq reads"),
    "a-law.wav": (patched(wav_bytes(), 20, "<H", 6), "format tag 6 WAV samples"),
    "no-channels.wav": (patched(wav_bytes(), 22, "<H", 0), "0 channels"),
    "rate.wav": (wav_bytes(rate=500), "sample rate 500 Hz; any2seq reads 1000"),
    "empty.wav": (wav_bytes([]), "empty audio (0 frames)"),
    "flac-cut-short.flac": (b"fLaC" + bytes(20), "not a readable WAV, FLAC or OGG file"),
}


@pytest.mark.parametrize("name", sorted(BAD_WAVS))
def test_bad_wav_files_name_the_file(tmp_path, name):
    data, says = BAD_WAVS[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UserError) as err:
        read_wav(path)
    message = str(err.value)
    assert message.startswith(str(path)) and says in message and "\n" not in message
    with pytest.raises(UserError, match=f"^upload-{re.escape(name)}: .*{re.escape(says)}"):  # bytes: `name`
        read_wav(data, name=f"upload-{name}")


@pytest.mark.parametrize("make, says", [(lambda p: p / "missing.wav", "no such WAV file"),
                                         (lambda p: p, "cannot read audio file"),  # a folder
                                         (lambda p: p / ("a" * 300), "cannot read audio file"),  # name too long
                                         (lambda p: "nul\0in name.wav", "cannot read audio file")])
def test_unreadable_paths_name_the_file(tmp_path, make, says):
    with pytest.raises(UserError, match=f"^{re.escape(str(make(tmp_path)))}: {says}"):
        read_wav(make(tmp_path))


def overwrite(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for i, value in edits:
        out[i] = value
    return bytes(out)


VALID = wav_bytes()  # 44 header bytes, then 200 bytes of samples
MUTATED_WAVS = st.one_of(
    st.binary(max_size=200),
    st.integers(0, len(VALID) - 1).map(lambda n: VALID[:n]),  # truncations
    st.lists(st.tuples(st.integers(0, 43), st.integers(0, 255)), min_size=1, max_size=4).map(
        lambda edits: overwrite(VALID, edits)),  # header bytes overwritten
    st.tuples(st.lists(st.tuples(st.integers(0, 43), st.integers(0, 255)), max_size=3),
              st.integers(0, len(VALID))).map(lambda t: overwrite(VALID, t[0])[: t[1]]),  # both
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATED_WAVS)
def test_only_user_errors_escape_read_wav(data):
    try:
        audio = read_wav(data, name="fuzz.wav")
    except UserError as e:
        assert str(e).startswith("fuzz.wav: ") and "\n" not in str(e)
    else:
        assert audio.dtype == np.float32 and len(audio) > 0 and np.abs(audio).max() <= 1


def fake_fsdd(root: Path, speakers=("alice", "bob", "carol"), indices=range(12)) -> Path:
    """Recordings whose samples say which digit they are: digit d is 40 + 10 d samples of (d + 1) / 16."""
    root.mkdir(parents=True, exist_ok=True)
    for speaker in speakers:
        for d in range(10):
            for i in indices:
                samples = np.full(40 + 10 * d, int((d + 1) / 16 * 32768))
                (root / f"{d}_{speaker}_{i}.wav").write_bytes(wav_bytes(samples))
    (root / "README.md").write_text("not a recording")
    return root


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> list[Recording]:
    return fsdd_recordings(fake_fsdd(tmp_path_factory.mktemp("fsdd")))


def test_split_keeps_test_indices_and_held_out_speaker_out_of_training(fake):
    assert len(fake) == 3 * 10 * 12
    train, valid, test = (split_recordings(fake, s) for s in ("train", "valid", "test"))
    assert {r.index for r in train} == {10, 11} and {r.index for r in valid} == set(range(5, 10))
    assert {r.index for r in test} == set(range(5)) and split_recordings(fake, "held_out") == []
    parts = {s: split_recordings(fake, s, held_out_speaker="bob") for s in ("train", "valid", "test", "held_out")}
    assert all("bob" not in {r.speaker for r in parts[s]} for s in ("train", "valid", "test"))
    assert {r.speaker for r in parts["held_out"]} == {"bob"} and len(parts["held_out"]) == 120
    paths = [r.path for part in parts.values() for r in part]
    assert len(paths) == len(set(paths)) == len(fake)  # the splits partition the recordings
    with pytest.raises(UserError, match="held_out_speaker: 'dave' is not one of"):
        split_recordings(fake, "train", held_out_speaker="dave")


@needs_fsdd
def test_real_split_sizes():
    recordings = fsdd_recordings(FSDD)
    train = split_recordings(recordings, "train", held_out_speaker="yweweler")
    assert len(train) == 1600 and min(r.index for r in train) == 10
    assert "yweweler" not in {r.speaker for r in train}
    assert len(split_recordings(recordings, "test")) == 250


def decode_digits(audio: np.ndarray) -> list[int]:
    """The digits in a fake utterance, from the level of each run of nonzero samples."""
    nonzero = np.concatenate([[False], audio != 0, [False]])
    starts = np.flatnonzero(~nonzero[:-1] & nonzero[1:])  # where each run begins
    return [int(audio[s] * 16 + 0.5) - 1 for s in starts]


def test_utterances_are_deterministic_and_transcribed(fake):
    train = split_recordings(fake, "train")
    utterances = make_utterances(train, 30, seed=7)
    again = make_utterances(train, 30, seed=7)
    assert all(np.array_equal(a, b) and s == t for (a, s), (b, t) in zip(utterances, again))
    assert [t for _, t in make_utterances(train, 30, seed=8)] != [t for _, t in utterances]
    for audio, transcript in utterances:
        words = transcript.split()
        assert 1 <= len(words) <= 7 and audio.dtype == np.float32
        assert [DIGIT_WORDS[d] for d in decode_digits(audio)] == words
        assert audio[:400].max() == 0 and audio[-400:].max() == 0  # at least 0.05 s of silence around
    assert {len(t.split()) for _, t in utterances} != {1}


def test_noise_and_digit_counts(fake):
    for audio, transcript in make_utterances(fake, 10, seed=1, min_digits=3, max_digits=3, noise=0.01):
        assert len(transcript.split()) == 3 and np.abs(audio).max() <= 1 and (audio[:400] != 0).all()


def test_missing_or_empty_root_names_data_root(tmp_path):
    with pytest.raises(UserError, match=f"^{tmp_path / 'nope'}: .*data.root"):
        fsdd_recordings(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=f"^{tmp_path}: .*data.root"):
        fsdd_recordings(tmp_path)


def release_zip(path: Path, wavs: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("free-spoken-digit-dataset-1.0.10/README.md", "readme")
        z.writestr("free-spoken-digit-dataset-1.0.10/utils/spectogramer.py", "code")
        for name, data in wavs.items():
            z.writestr(name, data)
    return path


def test_extract_takes_only_recordings_and_downloads_from_a_url(tmp_path):
    wavs = {f"free-spoken-digit-dataset-1.0.10/recordings/{d}_zoe_0.wav": wav_bytes() for d in range(3)}
    wavs["free-spoken-digit-dataset-1.0.10/recordings/../../../evil_x_1.wav"] = wav_bytes()  # skipped
    wavs["free-spoken-digit-dataset-1.0.10/recordings/notes.wav"] = b"not a recording name"
    archive = release_zip(tmp_path / "fsdd.zip", wavs)
    dest = download_fsdd(tmp_path / "data" / "fsdd", url=archive.as_uri())  # file:// needs no network
    assert sorted(p.name for p in dest.rglob("*")) == ["0_zoe_0.wav", "1_zoe_0.wav", "2_zoe_0.wav", "recordings"]
    assert len(fsdd_recordings(dest)) == 3 and not (tmp_path / "evil_x_1.wav").exists()
    assert download_fsdd(dest, url="https://invalid.invalid/none.zip") == dest  # already there: no download
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["fsdd"]  # no temporary left behind


def test_extract_is_atomic(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is no zip")
    with pytest.raises(UserError, match=f"^{bad}: not a readable zip"):
        extract_fsdd_zip(bad, tmp_path / "out")
    empty = release_zip(tmp_path / "empty.zip", {})
    with pytest.raises(UserError, match=f"^{empty}: no recordings"):
        extract_fsdd_zip(empty, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip", "empty.zip"]
    with pytest.raises(UserError, match="download failed"):
        download_fsdd(tmp_path / "out", url=(tmp_path / "missing.zip").as_uri())


# metrics.wer_cer (speech recognition's metric) lives in metrics.py; its tests sit with the speech data
def test_wer_cer():
    assert wer_cer(["three one four", "two"], ["three one four", "two"]) == {"wer": 0.0, "cer": 0.0}
    assert wer_cer(["three one", "two"], ["three one four", "five"]) == {"wer": 50.0, "cer": 50.0}
    assert wer_cer(["", ""], ["", ""]) == {"wer": 0.0, "cer": 0.0}
    assert wer_cer(["one", ""], ["", ""]) == {"wer": 100.0, "cer": 100.0}
    assert wer_cer(["one two", "six"], ["one two", ""]) == {"wer": 50.0, "cer": 42.86}  # 1 / 2; 3 / 7
    assert wer_cer([], []) == {"wer": 0.0, "cer": 0.0}
    with pytest.raises(ValueError):
        wer_cer(["one"], [])


def test_change_speed_scales_tempo_and_pitch_together():
    from any2seq.data.audio import change_speed

    rate, hz = 8000, 200.0
    tone = np.sin(2 * np.pi * hz * np.arange(rate) / rate).astype(np.float32)  # one second
    for factor in (0.85, 1.15):
        fast = change_speed(tone, factor)
        assert fast.dtype == np.float32 and abs(len(fast) - rate / factor) <= 1
        crossings = np.count_nonzero(np.diff(np.signbit(fast))) / (len(fast) / rate) / 2  # cycles a second
        assert crossings == pytest.approx(hz * factor, rel=0.02)
    assert np.array_equal(change_speed(tone, 1.0), tone)


def test_speed_perturbation_touches_only_training_utterances():
    from any2seq.config import config_from_dict
    from any2seq.tasks import get_task

    task = get_task("speech")
    cfg = config_from_dict({"task": "speech", "data": {"n_train": 6, "n_valid": 6, "max_digits": 2}})
    fast = config_from_dict({"task": "speech", "data": {"n_train": 6, "n_valid": 6, "max_digits": 2, "speed": 0.2}})
    if not Path(cfg.data.root).is_dir():
        pytest.skip(f"needs FSDD in {cfg.data.root}")
    same = [np.array_equal(a, b) for a, b in zip(task.examples(cfg, "valid")[0], task.examples(fast, "valid")[0])]
    assert all(same)
    changed = [len(a) != len(b) for a, b in zip(task.examples(cfg, "train")[0], task.examples(fast, "train")[0])]
    assert any(changed)
