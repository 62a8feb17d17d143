"""A digit reader for judging generated frames: a small CNN (LeCun et al., 1998, in miniature) that
reads which digit a frame shows, or that it shows none.

It answers "would a person recognise the digit?", which MSE and SSIM do not: the mean of the
possible futures has a low MSE and no legible digit. The reader is part of the evaluation, not of
any model: it is trained only on the *training* split's scans, rendered as the clips render them
(``data/video.py``: the scan resized to ``size`` pixels, pasted with max() at any corner of a
``canvas`` frame), with a fixed seed on one thread, so every run of ``any2seq evaluate`` is judged by
the same reader. It trains in seconds on a CPU and is cached per process and on disk
(``~/.cache/any2seq/reader-<hash>.safetensors``, keyed by the recipe and the torch version).

Classes 0-9 are digits; class 10, ``NONE``, is "no single digit": a blank, flat grey or noisy
frame, or the superposition of several digits (the blur a prediction shows when it hedges). So a
blank or grey prediction reads as no digit rather than as whatever digit a 10-way classifier
would guess.

A frame with two digits is read one digit at a time through a *window*: the digit's box (at its
known true corner) widened by ``margin(size)`` pixels a side, everything outside it set to 0. The
other digit's ink inside the box stays, as it does in the reader's training windows.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data.video import scaled_scans
from .fileio import user_cache

NONE = 10  # the "no single digit" class
RECIPE = {"version": 1, "seed": 1998, "examples": 8000, "epochs": 4, "batch": 128, "lr": 1e-2,
          "none_share": 0.12, "window_share": 0.5, "second_digit_share": 0.5, "gain": (0.6, 1.0)}


def margin(size: int) -> int:
    """Pixels a window extends past the digit's box on each side: some slack for a prediction's position."""
    return max(1, size // 8)


def window(frames: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Copies of frames (N, 1, H, W) with everything outside each digit's widened box set to 0;
    corners (N, 2) are the digits' top-left (y, x)."""
    m, out = margin(size), np.zeros_like(frames)
    for frame, dst, (y, x) in zip(frames, out, corners):
        top, left = max(0, y - m), max(0, x - m)
        dst[:, top: y + size + m, left: x + size + m] = frame[:, top: y + size + m, left: x + size + m]
    return out


class DigitReader(nn.Module):
    """(N, 1, canvas, canvas) frames -> (N, 11) logits. The scans are 8x8 (``data/digits.py``), so the
    frame is first averaged down to about 8 pixels a digit; max-pooling at the end reads a digit
    wherever it is."""

    def __init__(self, size: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.AvgPool2d(max(1, size // 8)),
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
            nn.Linear(64, NONE + 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames)


def _paste(frame: np.ndarray, image: np.ndarray, corner) -> None:
    y, x = corner
    h, w = image.shape
    np.maximum(frame[y: y + h, x: x + w], image, out=frame[y: y + h, x: x + w])


def _no_digit(rng, images, canvas: int, room: int) -> np.ndarray:
    """A frame without a single legible digit: blank, flat grey, noise, or 3-8 digits averaged."""
    kind = rng.integers(4)
    if kind == 0:
        return np.zeros((canvas, canvas), np.float32)
    if kind == 1:
        return np.full((canvas, canvas), rng.uniform(0.05, 0.6), np.float32)
    if kind == 2:
        return (rng.random((canvas, canvas)) * rng.uniform(0.1, 0.8)).astype(np.float32)
    frame, centre, k = np.zeros((canvas, canvas), np.float32), rng.uniform(0, room, 2), rng.integers(3, 9)
    for _ in range(k):
        corner = np.clip(np.rint(centre + rng.normal(0, room / 6 + 1, 2)), 0, room).astype(int)
        layer = np.zeros_like(frame)
        _paste(layer, images[rng.integers(len(images))], corner)
        frame += layer / k
    return frame


def render_training_set(canvas: int, size: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n frames (n, 1, canvas, canvas) of the *training* scans and their labels (NONE for no digit):
    a scan at a random corner with a random gain, half of them seen through its window, where a
    second digit may overlap it as in a two-digit clip."""
    images, labels = scaled_scans("train", size)
    room, rng = canvas - size, np.random.default_rng(seed)
    x, y = np.zeros((n, 1, canvas, canvas), np.float32), np.empty(n, np.int64)
    for i in range(n):
        corner = rng.integers(0, room + 1, 2)
        windowed = rng.random() < RECIPE["window_share"]
        if rng.random() < RECIPE["none_share"]:
            x[i, 0], y[i] = _no_digit(rng, images, canvas, room), NONE
        else:
            k = rng.integers(len(images))
            _paste(x[i, 0], images[k] * rng.uniform(*RECIPE["gain"]), corner)
            y[i] = labels[k]
            if windowed and rng.random() < RECIPE["second_digit_share"]:
                _paste(x[i, 0], images[rng.integers(len(images))], rng.integers(0, room + 1, 2))
        if windowed:
            x[i] = window(x[i: i + 1], corner[None], size)[0]
    return x, y


def train_reader(canvas: int, size: int) -> DigitReader:
    """The reader for ``canvas``-pixel frames of ``size``-pixel digits, trained from scratch on one
    thread with a fixed seed (the same weights on every run of one torch build and CPU)."""
    x, y = render_training_set(canvas, size, RECIPE["examples"], RECIPE["seed"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # enable_grad: the first use is often inside validation's no_grad; fork_rng leaves the caller's
        # random stream as it was
        with torch.enable_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(RECIPE["seed"])
            reader = DigitReader(size)
            steps = RECIPE["epochs"] * (len(x) // RECIPE["batch"])
            optimizer = torch.optim.Adam(reader.parameters(), lr=RECIPE["lr"])
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, RECIPE["lr"], total_steps=steps)
            x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
            for epoch in range(RECIPE["epochs"]):
                order = torch.randperm(len(x))
                for start in range(0, len(x) - RECIPE["batch"] + 1, RECIPE["batch"]):
                    chunk = order[start: start + RECIPE["batch"]]
                    loss = nn.functional.cross_entropy(reader(x_t[chunk]), y_t[chunk])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    schedule.step()
    finally:
        torch.set_num_threads(threads)
    return reader.eval()


def cache_path(canvas: int, size: int) -> Path:
    recipe = json.dumps([RECIPE, canvas, size, torch.__version__], sort_keys=True)
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    return user_cache() / f"reader-{key}.safetensors"


@lru_cache(maxsize=4)
def load_reader(canvas: int, size: int) -> DigitReader:
    """The cached reader for this frame geometry, trained on first use (a few seconds)."""
    from safetensors import SafetensorError
    from safetensors.torch import load, save

    from .fileio import atomic_write

    path, reader = cache_path(canvas, size), DigitReader(size)
    try:
        reader.load_state_dict(load(path.read_bytes()))
        return reader.eval()
    except (OSError, SafetensorError, RuntimeError, KeyError):  # absent, truncated, or another layout
        pass
    reader = train_reader(canvas, size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, save({k: v.contiguous() for k, v in reader.state_dict().items()}))
    except OSError as e:  # a read-only home costs a retraining next time, nothing else
        import sys

        print(f"any2seq: could not cache the digit reader in {path} ({e.strerror or e})", file=sys.stderr)
    return reader


def read(frames: np.ndarray, size: int) -> np.ndarray:
    """Log-probabilities (..., 11) of digits 0-9 and NONE for frames (..., 1, canvas, canvas)."""
    frames = np.asarray(frames, np.float32)
    flat = torch.from_numpy(np.ascontiguousarray(frames.reshape(-1, *frames.shape[-3:])))
    reader = load_reader(frames.shape[-1], size)
    with torch.inference_mode():
        out = torch.cat([reader(flat[i: i + 1024]).log_softmax(-1) for i in range(0, len(flat), 1024)] or
                        [torch.zeros(0, NONE + 1)])
    return out.numpy().reshape(*frames.shape[:-3], NONE + 1)


def read_windows(frames: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """(N,) the class read in each frame (N, 1, H, W) through the window at its corner (N, 2)."""
    return read(window(frames, corners, size), size).argmax(-1)


def read_clips(clips: np.ndarray, size: int) -> np.ndarray:
    """(N,) the class read in each one-digit clip (N, T, 1, H, W): its frames' log-probabilities summed,
    so a clip reads as the digit its frames agree on."""
    return read(clips, size).sum(-2).argmax(-1)
