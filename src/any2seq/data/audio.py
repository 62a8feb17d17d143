"""Spoken digits: WAV reading (stdlib ``wave``) and utterances joined from the Free Spoken Digit
Dataset (Jakobovski et al., github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0)."""
from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import urllib.request
import wave
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import GiB, read_regular

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_NAME = re.compile(r"^(\d)_([^_/\\]+)_(\d+)\.wav$")  # {digit}_{speaker}_{index}.wav
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"
SPLITS = ("train", "valid", "test", "held_out")
MAX_WAV_BYTES = GiB  # 18 hours of 16-bit audio at 8 kHz


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def read_wav(path_or_bytes, sample_rate: int = 8000, name: str | None = None) -> np.ndarray:
    """A 16-bit PCM mono WAV at ``sample_rate`` -> (N,) float32 in [-1, 1].

    Anything else (unreadable, not a WAV, truncated, another width, rate or channel count, no
    audio) raises a one-line UserError naming the file, or ``name`` for bytes (an upload).
    Nothing is converted silently: no resampling, no down-mixing.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        name, data = name or "<uploaded audio>", bytes(path_or_bytes)
    else:
        name = name or str(path_or_bytes)
        data = read_regular(path_or_bytes, MAX_WAV_BYTES, name, "no such WAV file", "audio file")
    expected = f"expected 16-bit PCM mono WAV at {sample_rate} Hz"
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if width != 2:
                raise UserError(f"{name}: {8 * width}-bit samples; {expected}")
            if channels != 1:
                kind = "stereo" if channels == 2 else f"{channels} channels"
                raise UserError(f"{name}: {kind} audio; {expected} (mix it down first; any2seq does not)")
            if rate != sample_rate:
                raise UserError(f"{name}: sample rate {rate} Hz; {expected} (resample it first; any2seq does not)")
            if frames == 0:
                raise UserError(f"{name}: empty audio (0 frames)")
            pcm = w.readframes(frames)
    except (wave.Error, EOFError, ValueError, OSError, OverflowError, MemoryError, RuntimeError) as e:
        # wave's own errors (no RIFF id, no fmt/data chunk, compressed formats), cut-off headers, and
        # RuntimeError from its chunk reader when a chunk size points past the data
        raise UserError(f"{name}: not a readable WAV file ({_one_line(e)}); {expected}") from None
    if len(pcm) < 2 * frames:  # the data chunk's size in the header promises more than the file holds
        raise UserError(f"{name}: truncated WAV (header says {frames} frames, file holds {len(pcm) // 2})")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


@lru_cache(maxsize=4096)
def cached_wav(path: str, sample_rate: int = 8000) -> np.ndarray:
    """``read_wav`` memoised by path (FSDD has 2,500 small files); the array is read-only."""
    audio = read_wav(path, sample_rate)
    audio.flags.writeable = False
    return audio


@dataclass(frozen=True)
class Recording:
    digit: int
    speaker: str
    index: int  # 0-49 per digit and speaker
    path: Path


def fsdd_recordings(root) -> list[Recording]:
    """Every ``{digit}_{speaker}_{index}.wav`` in ``root`` or ``root/recordings`` (the release's layout)."""
    root = Path(root)
    found = []
    for folder in (root, root / "recordings"):
        if folder.is_dir():
            for path in folder.iterdir():
                match = FSDD_NAME.match(path.name)
                if match:
                    found.append(Recording(int(match[1]), match[2], int(match[3]), path))
    if not found:
        why = "no such folder" if not root.exists() else "no {digit}_{speaker}_{index}.wav files in it"
        raise UserError(f"{root}: no Free Spoken Digit recordings (data.root; {why})")
    return sorted(found, key=lambda r: (r.speaker, r.digit, r.index))


def split_recordings(recordings: list[Recording], split: str, held_out_speaker: str = "") -> list[Recording]:
    """One split of the recordings; the splits never share a recording.

    test: indices 0-4 of every digit and speaker (the dataset's usual split), train: indices 10
    and up, valid: indices 5-9. With ``held_out_speaker`` that speaker is in none of these: all of
    its recordings form ``held_out``, a test on a voice never heard in training.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    speakers = sorted({r.speaker for r in recordings})
    if held_out_speaker and held_out_speaker not in speakers:
        raise UserError(f"data.held_out_speaker: {held_out_speaker!r} is not one of the speakers {speakers}")
    if split == "held_out":
        return [r for r in recordings if held_out_speaker and r.speaker == held_out_speaker]
    indices = {"test": range(5), "valid": range(5, 10)}.get(split)
    return [r for r in recordings if r.speaker != held_out_speaker
            and (r.index in indices if indices is not None else r.index >= 10)]


def make_utterance(recordings: list[Recording], rng: np.random.Generator, min_digits: int = 1,
                   max_digits: int = 7, silence: tuple[float, float] = (0.05, 0.3), noise: float = 0.0,
                   sample_rate: int = 8000, speed: float = 0.0) -> tuple[np.ndarray, str]:
    """1-7 random recordings joined with random silences between and around them -> (N,) float32, words.

    ``noise``: the largest standard deviation of the white noise added; each utterance draws its own.
    """
    picks = [recordings[i] for i in rng.integers(0, len(recordings), rng.integers(min_digits, max_digits + 1))]
    gaps = rng.uniform(silence[0], silence[1], len(picks) + 1)  # seconds
    parts = [np.zeros(int(gaps[0] * sample_rate + 0.5), np.float32)]
    for rec, gap in zip(picks, gaps[1:]):
        wave = cached_wav(str(rec.path), sample_rate)
        if speed > 0:  # speed perturbation (Ko et al., 2015): another voice's tempo and pitch
            wave = change_speed(wave, rng.uniform(1 - speed, 1 + speed))
        parts += [wave, np.zeros(int(gap * sample_rate + 0.5), np.float32)]
    audio = np.concatenate(parts)
    if noise > 0:  # a level drawn per utterance, up to ``noise``: clean and noisy audio are both seen
        level = rng.uniform(0.0, noise)
        audio = np.clip(audio + rng.normal(0.0, level, audio.shape).astype(np.float32), -1.0, 1.0)
    return audio, " ".join(DIGIT_WORDS[rec.digit] for rec in picks)


def change_speed(wave: np.ndarray, factor: float) -> np.ndarray:
    """``wave`` played ``factor`` times as fast (linear interpolation): shorter and higher for factor > 1."""
    n = max(1, int(round(len(wave) / factor)))
    return np.interp(np.arange(n) * factor, np.arange(len(wave)), wave).astype(np.float32)


def make_utterances(recordings: list[Recording], n: int, seed: int, min_digits: int = 1, max_digits: int = 7,
                    silence: tuple[float, float] = (0.05, 0.3), noise: float = 0.0,
                    sample_rate: int = 8000, speed: float = 0.0) -> list[tuple[np.ndarray, str]]:
    """``n`` utterances (waveform, transcript such as "three one four"), the same for the same seed."""
    if not recordings:
        raise ValueError("no recordings to join into utterances")
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits} and {max_digits}")
    rng = np.random.default_rng(seed)
    return [make_utterance(recordings, rng, min_digits, max_digits, silence, noise, sample_rate, speed)
            for _ in range(n)]


def extract_fsdd_zip(zip_path, dest) -> Path:
    """Unpack only ``recordings/*.wav`` of an FSDD release zip into ``dest/recordings``, atomically:
    into a temporary folder beside ``dest``, renamed into place once complete."""
    zip_path, dest = Path(zip_path), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (tmp / "recordings").mkdir()
        count = 0
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist():
                parts = info.filename.split("/")
                # the base name alone is written, so a member named "../x.wav" cannot escape tmp
                if len(parts) >= 2 and parts[-2] == "recordings" and FSDD_NAME.match(parts[-1]):
                    (tmp / "recordings" / parts[-1]).write_bytes(archive.read(info))
                    count += 1
        if count == 0:
            raise UserError(f"{zip_path}: no recordings/{{digit}}_{{speaker}}_{{index}}.wav in the archive")
        os.replace(tmp, dest)  # also replaces an empty dest; a non-empty one fails below
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as e:
        raise UserError(f"{zip_path}: not a readable zip archive ({_one_line(e)})") from None
    except OSError as e:
        raise UserError(f"{dest}: cannot place the recordings there ({e.strerror or _one_line(e)})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def download_fsdd(dest, url: str = FSDD_URL) -> Path:
    """Download the FSDD release (about 10 MB) and unpack its recordings into ``dest/recordings``.

    Does nothing when ``dest`` already holds the recordings; use ``dest`` as ``data.root``.
    """
    dest = Path(dest)
    if dest.is_dir() and any((dest / "recordings").glob("*.wav")):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".zip", dir=dest.parent) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except (OSError, ValueError) as e:  # URLError and HTTPError are OSErrors
            raise UserError(f"{url}: download failed ({_one_line(e)})") from None
        tmp.flush()
        return extract_fsdd_zip(tmp.name, dest)
