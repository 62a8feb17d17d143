"""The recordings people make: one utterance at 8/16/44.1/48 kHz, mono or stereo, 16/24-bit integer or
32-bit float, WAV or FLAC, reads back as the 8 kHz mono 16-bit original and gets its transcript."""
from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from any2seq.cli import main
from any2seq.data.audio_io import read_audio
from any2seq.errors import UserError

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"the Free Spoken Digit Dataset is not at {FSDD}")
ORIGINALS = ["2_george_20.wav", "5_jackson_20.wav", "7_nicolas_20.wav", "1_yweweler_20.wav"]  # 8 kHz mono int16
RATES = (8000, 16000, 44100, 48000)
KINDS = {"int16.wav": ("WAV", "PCM_16"), "int24.wav": ("WAV", "PCM_24"), "float32.wav": ("WAV", "FLOAT"),
         "int16.flac": ("FLAC", "PCM_16"), "int24.flac": ("FLAC", "PCM_24")}


def variant(original: np.ndarray, rate: int, channels: int, kind: str) -> bytes:
    """The 8 kHz original as another recorder would have written it."""
    audio = soxr.resample(original, 8000, rate, quality="VHQ") if rate != 8000 else original
    if channels == 2:  # unequal channels whose mean is the original: taking one channel would be wrong
        side = 0.25 * audio[::-1]
        audio = np.stack([audio + side, audio - side], axis=1)
    assert np.abs(audio).max() < 1.0  # no clipping on the way
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format=KINDS[kind][0], subtype=KINDS[kind][1])
    return buffer.getvalue()


def snr_db(clean: np.ndarray, other: np.ndarray) -> float:
    n = min(len(clean), len(other))
    noise = clean[:n] - other[:n]
    return float(10 * np.log10(np.sum(clean[:n] ** 2) / max(np.sum(noise ** 2), 1e-20)))


def variants(original: np.ndarray):
    for rate in RATES:
        for channels in (1, 2):
            for kind in KINDS:
                yield f"{rate}Hz-{channels}ch-{kind}", variant(original, rate, channels, kind)


@needs_fsdd
def test_every_variant_reads_back_as_the_original():
    originals = {name: read_audio(FSDD / name) for name in ORIGINALS}
    for name, original in originals.items():
        for label, data in variants(original):
            audio = read_audio(data, 8000, name=label)
            assert audio.dtype == np.float32 and abs(len(audio) - len(original)) <= 1, label
            assert snr_db(original, audio) > 25, label  # the resamplers' passband edges, 24-bit and float: ~30-90 dB
    # and the measure tells recordings apart: another digit is nowhere near
    first, second = list(originals.values())[:2]
    assert snr_db(first, second) < 3


@needs_fsdd
def test_each_conversion_is_reported_once(capsys):
    original = read_audio(FSDD / ORIGINALS[0])
    data = variant(original, 48000, 2, "int24.flac")
    capsys.readouterr()
    read_audio(data, 8000, name="a.flac")
    read_audio(data, 8000, name="b.flac")
    read_audio(FSDD / ORIGINALS[1])  # the model's own format: nothing to say
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) <= 1  # a test before may have made the same conversion already
    if lines:
        assert "this model hears 8000 Hz mono" in lines[0] and "48000 -> 8000 Hz" in lines[0]
        assert "2 channels averaged" in lines[0]


def test_ogg_vorbis_and_wav_extensible_read():
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    for fmt, subtype in (("OGG", "VORBIS"), ("OGG", "OPUS"), ("WAV", "PCM_24")):
        buffer = io.BytesIO()
        soundfile.write(buffer, np.stack([tone, tone], 1), 16000, format=fmt, subtype=subtype)
        audio = read_audio(buffer.getvalue(), 8000, name=f"tone.{fmt.lower()}")
        assert abs(len(audio) - 4000) < 200 and 0.3 < np.abs(audio).max() <= 1.0
    buffer = io.BytesIO()  # WAVE_FORMAT_EXTENSIBLE, as many recorders write for more than two channels
    soundfile.write(buffer, np.stack([tone] * 3, 1), 16000, format="WAVEX", subtype="PCM_16")
    assert buffer.getvalue()[20:22] == b"\xfe\xff"
    assert len(read_audio(buffer.getvalue(), 8000, name="three.wav")) == 4000


def test_lies_and_special_files_are_refused_before_allocating(tmp_path):
    header = io.BytesIO()
    with wave.open(header, "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(1000)
        w.writeframes(b"\0" * 400)
    data = bytearray(header.getvalue())
    data[40:44] = (0xFFFFFFF0).to_bytes(4, "little")  # a data chunk of 4 GB in a 444-byte file
    with pytest.raises(UserError, match="^lying.wav: truncated WAV"):
        read_audio(bytes(data), name="lying.wav")
    os.mkfifo(tmp_path / "fifo.wav")  # opening it for reading would wait for a writer forever
    with pytest.raises(UserError, match="fifo.wav: cannot read audio file: it is a named pipe"):
        read_audio(tmp_path / "fifo.wav")
    flac = io.BytesIO()  # the lowest rate read, upsampled 8x
    soundfile.write(flac, np.full(100, 0.5, np.float32), 1000, format="FLAC")
    assert len(read_audio(flac.getvalue(), 8000, name="low.flac")) == 800


@needs_fsdd
def test_every_variant_gets_the_originals_transcript(speech_model):
    import any2seq

    predictor = any2seq.load(speech_model)
    originals = [read_audio(FSDD / name) for name in ORIGINALS]
    expected = predictor.translate([str(FSDD / name) for name in ORIGINALS], beam=1)
    assert len(set(expected)) >= 3, expected  # the model hears which digit it is, so a bad conversion shows
    for original, transcript in zip(originals, expected):
        labels, data = zip(*variants(original))
        got = predictor.translate(list(data), beam=1)
        assert {label: text for label, text in zip(labels, got) if text != transcript} == {}, transcript


@needs_fsdd
def test_predict_prints_a_transcript_for_a_48k_stereo_flac(speech_model, tmp_path, capsys):
    original = read_audio(FSDD / ORIGINALS[1])
    (tmp_path / "some_48k_stereo.flac").write_bytes(variant(original, 48000, 2, "int24.flac"))
    capsys.readouterr()
    assert main(["predict", "--model", str(speech_model), str(FSDD / ORIGINALS[1]), "--beam", "1"]) == 0
    expected = capsys.readouterr().out
    assert main(["predict", "--model", str(speech_model), str(tmp_path / "some_48k_stereo.flac"), "--beam", "1"]) == 0
    out = capsys.readouterr().out
    assert out == expected and out.strip()
