"""Frame-output tasks: video prediction on moving digit scans (in the manner of Moving MNIST,
Srivastava et al., 2015) and video generation from text ("digit 3 moving down-left quickly")."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import VideoDataConfig
from ..data import Items
from ..data.video import DIRECTIONS, described_videos, moving_digits, moving_layout, read_frames, scaled_scans
from ..errors import UserError
from ..metrics import copy_last_baseline, frame_metrics, motion_classes
from ..registry import TaskPart
from .base import SRC, FramesOutputTask, Tokenizers, check_split, token_items, train_text_tokenizer


def _n(cfg, split: str) -> int:
    data = cfg.data
    return {"train": data.n_train, "valid": data.n_valid, "test": data.n_test}[check_split(split)]


@lru_cache(maxsize=4)
def _clips(split: str, n: int, seed: int, frames: int, canvas: int, max_digits: int, size: int) -> np.ndarray:
    return moving_digits(split, n, seed, frames, canvas, tuple(range(1, max_digits + 1)), size)


@lru_cache(maxsize=4)
def _layout(split: str, n: int, seed: int, frames: int, canvas: int, max_digits: int, size: int):
    return moving_layout(split, n, seed, frames, canvas, tuple(range(1, max_digits + 1)), size)


def _mse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(((pred.astype(np.float64) - true) ** 2).mean())


def _ratio(correct: int, true_correct: int) -> float:
    """Digits read in the predicted frames / in the true frames; 0 when the true frames read none."""
    return correct / true_correct if true_correct else 0.0


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

    def score(self, pred, true, sources, cfg, split):
        metrics = frame_metrics(pred, true)
        copy_last = copy_last_baseline(np.stack(sources), cfg.data.frames_out)
        copy_last_mse = _mse(copy_last, true)
        mean_frame = np.broadcast_to(self.mean_frame(cfg), true.shape)
        out = {"mse": metrics["mse"], "ssim": metrics["ssim"], "mse_per_frame_sum": metrics["mse_per_frame_sum"],
               "copy_last_mse": copy_last_mse, "mean_frame_mse": _mse(mean_frame, true),
               "mse_vs_copy_last": metrics["mse"] / copy_last_mse}
        return out | self.reading(cfg, split, true, {"": pred, "copy_last_": copy_last, "mean_frame_": mean_frame})

    def reading(self, cfg, split: str, true: np.ndarray, predictions: dict) -> dict:
        """The digit reader (reader.py) on the *last* predicted frame (``reader_frame``: its 1-based
        index among the predicted frames) against the last true frame.

        Each digit is read through its window at its true corner. In two-digit clips a digit counts
        only when the other digit's box covers less than half of its box: further under, the true
        frame does not show it either. ``reader_acc``: digits read correctly in the prediction /
        in the true frames; ``reader_true_acc``: the reader's own accuracy on the true frames;
        ``reader_digits``: the digits counted. Baselines per key prefix.
        """
        from ..reader import read_windows

        d = cfg.data
        rows = self.countable_digits(cfg, split)
        clip, corners, labels = (np.array(column) for column in zip(*rows)) if rows else (np.zeros(0, int),) * 3
        true_correct = int((read_windows(true[clip, -1], corners, d.digit_size) == labels).sum())
        out = {"reader_frame": d.frames_out, "reader_digits": len(rows),
               "reader_true_acc": true_correct / max(len(rows), 1)}
        for prefix, frames in predictions.items():
            correct = int((read_windows(np.asarray(frames)[clip, -1], corners, d.digit_size) == labels).sum())
            out[f"{prefix}reader_acc"] = _ratio(correct, true_correct)
        return out

    def countable_digits(self, cfg, split: str) -> list[tuple[int, np.ndarray, int]]:
        """(clip, top-left corner in the last frame, label) of each digit the reader is asked to read."""
        d = cfg.data
        layout = _layout(split, _n(cfg, split), d.seed, d.frames_in + d.frames_out, d.canvas, d.max_digits,
                         d.digit_size)
        labels = scaled_scans(split, d.digit_size)[1]
        rows = []
        for i, placed in enumerate(layout):
            for k, corners in placed:
                covered = max((np.prod(np.maximum(d.digit_size - np.abs(corners[-1] - other[-1]), 0))
                               for _, other in placed if other is not corners), default=0)
                if covered < d.digit_size ** 2 / 2:
                    rows.append((i, corners[-1], int(labels[k])))
        return rows

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
        return token_items(toks.src, sources)

    def score(self, pred, true, sources, cfg, split):
        """Frame metrics, and how a person would judge the clip against its text: ``reader_acc``, the
        named digit read in the generated clip (all frames' readings pooled, reader.read_clips) / in
        the true clip, ``reader_true_acc`` the reader's own accuracy on the true clips; and the ink's
        motion from the first to the last generated frame (metrics.motion_classes) against the
        text's direction (``direction_acc``, 8 directions) and speed class (``speed_acc``)."""
        from ..reader import read_clips

        metrics = frame_metrics(pred, true)
        _, train = self.examples(cfg, "train")
        mean_video = np.broadcast_to(train.mean(axis=0), true.shape)
        mean_video_mse = _mse(mean_video, true)
        words = [text.split() for text in sources]  # "digit 3 moving down-left quickly"
        digits = np.array([int(w[1]) for w in words])
        true_correct = int((read_clips(true, cfg.data.digit_size) == digits).sum())
        directions, speeds = motion_classes(pred, DIRECTIONS, cfg.data.canvas - cfg.data.digit_size)
        n = max(len(words), 1)
        return {"mse": metrics["mse"], "ssim": metrics["ssim"], "mean_video_mse": mean_video_mse,
                "mse_vs_mean_video": metrics["mse"] / mean_video_mse,
                "reader_acc": _ratio(int((read_clips(pred, cfg.data.digit_size) == digits).sum()), true_correct),
                "reader_true_acc": true_correct / n,
                "mean_video_reader_acc": _ratio(int((read_clips(mean_video, cfg.data.digit_size) == digits).sum()),
                                                true_correct),
                "direction_acc": sum(d == w[3] for d, w in zip(directions, words)) / n,
                "speed_acc": sum(s == w[4] for s, w in zip(speeds, words)) / n}

    def read_inputs(self, cfg, inputs):
        for i, item in enumerate(inputs):
            if not isinstance(item, str):
                raise UserError(f"input {i + 1}: this {self.name} model reads text, got {type(item).__name__}")
        return list(inputs)

    def card(self, cfg, batches):
        return {"data": {"source": "described motions of scikit-learn's digit scans", "clips": cfg.data.n_train,
                         "frames": cfg.data.frames_out}}


VIDEO_PREDICTION = TaskPart("video_prediction", VideoDataConfig, ("mse", "ssim", "loss"), VideoPrediction)
TEXT_TO_VIDEO = TaskPart("text_to_video", VideoDataConfig, ("mse", "ssim", "loss"), TextToVideo)
