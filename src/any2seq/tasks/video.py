"""Frame-output tasks: video prediction on moving digit scans (in the manner of Moving MNIST,
Srivastava et al., 2015) and video generation from text ("digit 3 moving down-left quickly")."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data import Items
from ..data.video import described_videos, moving_digits, read_frames
from ..errors import UserError
from ..metrics import copy_last_baseline, frame_metrics
from .base import SRC, FramesOutputTask, Tokenizers, check_split, train_text_tokenizer


def _n(cfg, split: str) -> int:
    data = cfg.data
    return {"train": data.n_train, "valid": data.n_valid, "test": data.n_test}[check_split(split)]


@lru_cache(maxsize=4)
def _clips(split: str, n: int, seed: int, frames: int, canvas: int, max_digits: int, size: int) -> np.ndarray:
    return moving_digits(split, n, seed, frames, canvas, tuple(range(1, max_digits + 1)), size)


def _mse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(((pred.astype(np.float64) - true) ** 2).mean())


class VideoPrediction(FramesOutputTask):
    """``frames_in`` frames of 1-2 bouncing digits in, the next ``frames_out`` out."""

    name = "video_prediction"
    input_kind = "video"

    def clips(self, cfg, split: str) -> np.ndarray:
        d = cfg.data
        return _clips(split, _n(cfg, split), d.seed, d.frames_in + d.frames_out, d.canvas, d.max_digits, d.digit_size)

    def examples(self, cfg, split):
        clips = self.clips(cfg, split)
        return list(clips[:, : cfg.data.frames_in]), clips[:, cfg.data.frames_in:]

    def prepare(self, cfg, run_dir, reuse):
        return Tokenizers()

    def load_tokenizers(self, cfg, run_dir):
        return Tokenizers()

    def source_items(self, cfg, toks, sources):
        return Items(sources, [len(s) for s in sources], "sequence")

    def score(self, pred, true, sources, cfg):
        metrics = frame_metrics(pred, true)
        copy_last = _mse(copy_last_baseline(np.stack(sources), cfg.data.frames_out), true)
        mean_frame = _mse(np.broadcast_to(self.mean_frame(cfg), true.shape), true)
        return {"mse": metrics["mse"], "ssim": metrics["ssim"], "mse_per_frame_sum": metrics["mse_per_frame_sum"],
                "copy_last_mse": copy_last, "mean_frame_mse": mean_frame, "mse_vs_copy_last": metrics["mse"] / copy_last}

    def mean_frame(self, cfg) -> np.ndarray:
        """The mean training frame (C, H, W): the mean-frame baseline's prediction."""
        return self.clips(cfg, "train")[:, cfg.data.frames_in:].mean(axis=(0, 1))

    def read_inputs(self, cfg, inputs):
        clips = []
        for i, item in enumerate(inputs):
            frames = read_frames(item, channels=1, size=cfg.data.canvas, name=f"upload {i + 1}")
            clips.append(frames[-cfg.data.frames_in:])  # the model saw frames_in frames in training
        return clips

    def card(self, cfg, batches):
        return {"data": {"source": "moving digits from scikit-learn's digit scans", "sequences": cfg.data.n_train,
                         "frames_in": cfg.data.frames_in, "frames_out": cfg.data.frames_out}}


class TextToVideo(FramesOutputTask):
    """A description of a digit's motion in, its ``frames_out`` frames out."""

    name = "text_to_video"
    input_kind = "text"

    @staticmethod
    @lru_cache(maxsize=4)
    def _pairs(split: str, n: int, seed: int, frames: int, canvas: int, size: int):
        pairs = described_videos(split, n, seed, frames, canvas, size)
        return [p[0] for p in pairs], np.stack([p[1] for p in pairs])

    def examples(self, cfg, split):
        d = cfg.data
        texts, clips = self._pairs(split, _n(cfg, split), d.seed, d.frames_out, d.canvas, d.digit_size)
        return list(texts), clips

    def prepare(self, cfg, run_dir, reuse):
        if reuse:
            return self.load_tokenizers(cfg, run_dir)
        texts, _ = self.examples(cfg, "train")
        return Tokenizers(train_text_tokenizer(cfg, texts, Path(run_dir) / SRC), None)

    def load_tokenizers(self, cfg, run_dir):
        return Tokenizers.load(run_dir, joint=False, src=True, tgt=False)

    def source_items(self, cfg, toks, sources):
        ids = toks.src.encode(list(sources))
        return Items(ids, [len(i) for i in ids], "tokens")

    def score(self, pred, true, sources, cfg):
        metrics = frame_metrics(pred, true)
        _, train = self.examples(cfg, "train")
        mean_video = _mse(np.broadcast_to(train.mean(axis=0), true.shape), true)
        return {"mse": metrics["mse"], "ssim": metrics["ssim"], "mean_video_mse": mean_video,
                "mse_vs_mean_video": metrics["mse"] / mean_video}

    def read_inputs(self, cfg, inputs):
        for i, item in enumerate(inputs):
            if not isinstance(item, str):
                raise UserError(f"input {i + 1}: this {self.name} model reads text, got {type(item).__name__}")
        return list(inputs)

    def card(self, cfg, batches):
        return {"data": {"source": "described motions of scikit-learn's digit scans", "clips": cfg.data.n_train,
                         "frames": cfg.data.frames_out}}
