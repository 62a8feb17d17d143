"""Spoken digits: utterances joined from recordings of the Free Spoken Digit Dataset (Jakobovski
et al., github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0). Reading audio files: audio_io.py."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from .audio_io import read_audio

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_NAME = re.compile(r"^(\d)_([^_/\\]+)_(\d+)\.wav$")  # {digit}_{speaker}_{index}.wav
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"
SPLITS = ("train", "valid", "test", "held_out")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


read_wav = read_audio  # the name of the days when only 16-bit mono WAV at the model's rate was read


@lru_cache(maxsize=4096)
def cached_wav(path: str, sample_rate: int = 8000) -> np.ndarray:
    """``read_audio`` memoised by path (FSDD has 2,500 small files); the array is read-only."""
    audio = read_audio(path, sample_rate)
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


@dataclass(frozen=True)
class Synthetic:
    """Recordings of other (synthetic) speakers, and the share of an utterance's digits they say."""
    recordings: tuple[Recording, ...] = ()
    share: float = 0.0

    def by_digit(self) -> dict[int, list[Recording]]:
        return {d: [r for r in self.recordings if r.digit == d] for d in {r.digit for r in self.recordings}}


def make_utterance(recordings: list[Recording], rng: np.random.Generator, min_digits: int = 1,
                   max_digits: int = 7, silence: tuple[float, float] = (0.05, 0.3), noise: float = 0.0,
                   sample_rate: int = 8000, speed: float = 0.0,
                   voices: Callable[[Recording], Recording] | None = None) -> tuple[np.ndarray, str]:
    """1-7 random recordings joined with random silences between and around them -> (N,) float32, words.

    ``noise``: the largest standard deviation of the white noise added; each utterance draws its own.
    ``voices`` may hand each pick to another speaker saying the same digit (``Synthetic``).
    """
    picks = [recordings[i] for i in rng.integers(0, len(recordings), rng.integers(min_digits, max_digits + 1))]
    if voices is not None:
        picks = [voices(rec) for rec in picks]
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
                    sample_rate: int = 8000, speed: float = 0.0,
                    synthetic: Synthetic = Synthetic()) -> list[tuple[np.ndarray, str]]:
    """``n`` utterances (waveform, transcript such as "three one four"), the same for the same seed."""
    if not recordings:
        raise ValueError("no recordings to join into utterances")
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits} and {max_digits}")
    rng = np.random.default_rng(seed)
    voices = None
    if synthetic.recordings and synthetic.share > 0:
        # a generator of its own: the words, silences and noise stay those of the same seed without voices
        voice_rng, by_digit = np.random.default_rng([seed, 1]), synthetic.by_digit()

        def voices(rec: Recording) -> Recording:
            same = by_digit.get(rec.digit)
            return same[voice_rng.integers(len(same))] if same and voice_rng.random() < synthetic.share else rec

    return [make_utterance(recordings, rng, min_digits, max_digits, silence, noise, sample_rate, speed, voices)
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
