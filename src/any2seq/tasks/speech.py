"""Speech recognition (Listen, Attend and Spell, Chan et al., 2016; Speech-Transformer, Dong et al.,
2018) on utterances joined from Free Spoken Digit Dataset recordings; WER and CER via jiwer."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import SpeechDataConfig
from ..data import Items
from ..data.audio import SPLITS, Synthetic, fsdd_recordings, make_utterances, split_recordings
from ..data.synthetic_voices import synthetic_recordings
from ..data.audio_io import read_audio
from ..errors import UserError
from ..interfaces import encoder_config
from ..metrics import wer_cer
from ..registry import TaskPart
from .base import TextOutputTask


@lru_cache(maxsize=2)
def _recordings(root: str):
    return fsdd_recordings(root)


@lru_cache(maxsize=8)
def _utterances(root: str, split: str, n: int, seed: int, min_digits: int, max_digits: int, noise: float,
                held_out_speaker: str, sample_rate: int, speed: float = 0.0, synthetic: Synthetic = Synthetic()):
    recordings = split_recordings(_recordings(root), split, held_out_speaker)
    # every split draws from its own generator: the same seed never makes the same sequences twice
    utterances = make_utterances(recordings, n, seed * 1000 + SPLITS.index(split), min_digits, max_digits,
                                 noise=noise, sample_rate=sample_rate, speed=speed, synthetic=synthetic)
    return [u[0] for u in utterances], [u[1] for u in utterances]


@lru_cache(maxsize=4)
def _synthetic(d: SpeechDataConfig) -> Synthetic:
    """The training split's synthetic speakers: none unless data.synthetic asks (or without espeak-ng)."""
    if d.synthetic <= 0:
        return Synthetic()
    return Synthetic(tuple(synthetic_recordings(d.synthetic_voices, d.seed, d.sample_rate)), d.synthetic)


def check_speech_split(split: str) -> str:
    if split not in SPLITS:
        raise UserError(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
    return split


class Speech(TextOutputTask):
    name = "speech"
    input_kind = "audio"

    def check_data(self, cfg):
        split_recordings(_recordings(cfg.data.root), "train", cfg.data.held_out_speaker)  # names a bad speaker

    def examples(self, cfg, split):
        d = cfg.data
        if check_speech_split(split) == "held_out" and not d.held_out_speaker:
            raise UserError("--split held_out: this model's config has no data.held_out_speaker")
        n = {"train": d.n_train, "valid": d.n_valid}.get(split, d.n_test)
        train = split == "train"  # augmentation and synthetic voices are for training only
        waves, words = _utterances(d.root, split, n, d.seed, d.min_digits, d.max_digits, d.noise if train else 0.0,
                                   d.held_out_speaker, d.sample_rate, d.speed if train else 0.0,
                                   _synthetic(d) if train else Synthetic())
        return list(waves), list(words)

    def source_items(self, cfg, toks, sources):
        length = encoder_config(cfg.model.encoder).memory_length  # batches are sized in memory positions, what they cost
        return Items(list(sources), [length(len(s)) for s in sources], "sequence")

    def score(self, hyps, refs):
        return wer_cer(hyps, refs)

    def evaluate(self, model, toks, cfg, split, opts, device="cpu", progress=False):
        """On the test split, also the held-out speaker's WER and CER (a voice never heard in training)."""
        metrics, hyps = super().evaluate(model, toks, cfg, split, opts, device, progress)
        if split == "test" and cfg.data.held_out_speaker:
            held_out, _ = super().evaluate(model, toks, cfg, "held_out", opts, device, progress)
            metrics.update({f"held_out_{k}": v for k, v in held_out.items()})
        return metrics, hyps

    def read_inputs(self, cfg, inputs):
        """Audio files (WAV, FLAC, OGG: any width, channels and rate), their bytes (uploads), or
        waveforms (N,) already at the model's rate."""
        waves = []
        for i, item in enumerate(inputs):
            if isinstance(item, (bytes, bytearray)):
                waves.append(read_audio(item, cfg.data.sample_rate, name=f"upload {i + 1}"))
            elif isinstance(item, (str, Path)):
                waves.append(read_audio(item, cfg.data.sample_rate))  # names a missing or unreadable file
            elif isinstance(item, np.ndarray) and item.ndim == 1 and item.size and np.isfinite(item).all():
                waves.append(np.clip(item, -1, 1).astype(np.float32))
            else:
                raise UserError(f"input {i + 1}: this speech model reads audio files (WAV, FLAC, OGG) or "
                                f"waveforms at {cfg.data.sample_rate} Hz, got {type(item).__name__}")
        return waves

    def card(self, cfg, batches):
        d = cfg.data
        speakers = sorted({r.speaker for r in _recordings(d.root)} - {d.held_out_speaker})
        return {"data": {"source": "Free Spoken Digit Dataset", "root": d.root, "speakers": speakers,
                         "held_out_speaker": d.held_out_speaker or None, "utterances": int(len(batches.kept)),
                         "synthetic_share": d.synthetic, "synthetic_voices": len(_synthetic(d).recordings) // 10,
                         "digits_per_utterance": [d.min_digits, d.max_digits]}}


TASK = TaskPart("speech", SpeechDataConfig, ("wer", "cer", "loss"), Speech)
