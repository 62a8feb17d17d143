"""Synthetic speakers for the spoken digits: Debian's ``espeak-ng`` (a formant synthesiser) says each
digit word in voices the Free Spoken Digit Dataset lacks (accents x voice variants x pitch x rate).

The recordings are written once as ``{digit}_espeak{voice}_0.wav`` at the model's rate into the
user's cache, in the layout ``fsdd_recordings`` reads, so they join utterances as any speaker does.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..fileio import user_cache
from .audio import DIGIT_WORDS, Recording, fsdd_recordings
from .audio_io import parse_wav

# English accents espeak-ng ships with its core voices (its mbrola voices need extra packages)
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
# effect variants (robots, whispers, a croak, a demon) are no one's voice: left out of the draw
EFFECTS = ("robosoft", "RicishayMax", "whisper", "Demonic", "UniRobot", "anikaRobot", "croak", "Tweaky", "Storm")
PITCH = (20, 80)  # espeak-ng -p: 0-99, 50 is the voice's own
RATE = (110, 200)  # -s: words per minute; FSDD speakers say a digit in 0.35-0.6 s
PEAK = (0.1, 0.6)  # the recording's loudest sample, drawn per recording (FSDD's speakers span 0.07-0.5)
_SILENT = 0.02  # a sample under this share of the peak is silence, trimmed from both ends as FSDD's are


@dataclass(frozen=True)
class Voice:
    accent: str
    variant: str  # one of `espeak-ng --voices=variant`: m1-m7, f1-f5, klatt, whisper, ...
    pitch: int
    rate: int

    def args(self) -> list[str]:
        return ["-v", f"{self.accent}+{self.variant}", "-p", str(self.pitch), "-s", str(self.rate)]


def espeak() -> str | None:
    """The espeak-ng program, or None where it is not installed."""
    return shutil.which("espeak-ng")


def _variants(binary: str) -> list[str]:
    """Voice variants this espeak-ng has (the file names under its voices/!v folder), less ``EFFECTS``."""
    listing = subprocess.run([binary, "--voices=variant"], capture_output=True, text=True, check=True).stdout
    found = {line.split()[4].split("/")[-1] for line in listing.splitlines()[1:] if len(line.split()) >= 5}
    return sorted(v for v in found if not v.startswith(EFFECTS))


def draw_voices(n: int, seed: int, variants: list[str]) -> list[Voice]:
    """``n`` voices, the same for the same seed and variant list."""
    rng = np.random.default_rng(seed)
    return [Voice(ACCENTS[rng.integers(len(ACCENTS))], variants[rng.integers(len(variants))],
                  int(rng.integers(PITCH[0], PITCH[1] + 1)), int(rng.integers(RATE[0], RATE[1] + 1)))
            for _ in range(n)]


def trimmed(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """``wave`` without its leading and trailing silence, keeping 20 ms either side."""
    loud = np.flatnonzero(np.abs(wave) > _SILENT * max(float(np.abs(wave).max()), 1e-9))
    if len(loud) == 0:
        return wave
    margin = int(0.02 * sample_rate)
    return wave[max(0, loud[0] - margin): loud[-1] + margin + 1]


def say(binary: str, voice: Voice, word: str, sample_rate: int, peak: float) -> np.ndarray:
    """(N,) float32 at ``sample_rate``: ``word`` in ``voice``, trimmed, its peak at ``peak``."""
    import soxr

    with tempfile.TemporaryDirectory() as tmp:  # -w, not --stdout: a streamed WAV's header has no length
        out = Path(tmp) / "word.wav"
        subprocess.run([binary, *voice.args(), "-w", str(out), word], capture_output=True, check=True)
        data = out.read_bytes()
    samples, rate, _ = parse_wav(data, f"espeak-ng {' '.join(voice.args())} {word!r}")
    wave = samples[:, 0]
    if rate != sample_rate:
        wave = soxr.resample(wave, rate, sample_rate, quality="HQ")
    wave = trimmed(np.asarray(wave, np.float32), sample_rate)
    return (wave * (peak / max(float(np.abs(wave).max()), 1e-9))).astype(np.float32)


def _write_voice(binary: str, folder: Path, index: int, voice: Voice, sample_rate: int, seed: int) -> None:
    import soundfile

    rng = np.random.default_rng([seed, index])
    for digit, word in enumerate(DIGIT_WORDS):
        wave = say(binary, voice, word, sample_rate, float(rng.uniform(*PEAK)))
        soundfile.write(folder / f"{digit}_espeak{index:04d}_0.wav", wave, sample_rate, subtype="PCM_16")


def synthetic_recordings(n_voices: int, seed: int = 1, sample_rate: int = 8000) -> list[Recording]:
    """Every digit in ``n_voices`` espeak-ng voices, made once and then read from the cache; [] (and
    one line on stderr) where espeak-ng is not installed: training goes on with the recordings it has."""
    binary = espeak()
    if binary is None:
        print("any2seq: data.synthetic: espeak-ng is not installed (apt-get install espeak-ng); "
              "training on the recorded speakers alone", file=sys.stderr)
        return []
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    voices = draw_voices(n_voices, seed, _variants(binary))
    recipe = json.dumps([version, sample_rate, seed, PEAK, [asdict(v) for v in voices]])
    folder = user_cache() / f"espeak-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:  # written beside the cache and renamed: a killed run leaves no half-made voice set behind
            with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
                list(pool.map(lambda iv: _write_voice(binary, tmp, iv[0], iv[1], sample_rate, seed),
                              enumerate(voices)))
            (tmp / "voices.json").write_text(recipe + "\n", encoding="utf-8")
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():  # another process may have placed the same set meanwhile
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return fsdd_recordings(folder)
