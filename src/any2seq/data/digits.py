"""Real handwritten digit scans (scikit-learn's bundled ``load_digits``: 1,797 8x8 scans from
UCI's "Optical Recognition of Handwritten Digits"), split by scan so no test scan is seen in training."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SPLITS = ("train", "valid", "test")
HELD_OUT = 0.1  # share of scans in each of valid and test


@dataclass(frozen=True)
class Scans:
    images: np.ndarray  # (N, 8, 8) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64 digit 0-9


@lru_cache(maxsize=None)
def _all_scans() -> Scans:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    return Scans((digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64))


def digit_scans(split: str) -> Scans:
    """The scans of one split: a fixed permutation of all 1,797 scans cut 80/10/10."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    scans = _all_scans()
    order = np.random.default_rng(20161).permutation(len(scans.labels))
    n_held = int(round(HELD_OUT * len(order)))
    parts = {"test": order[:n_held], "valid": order[n_held: 2 * n_held], "train": order[2 * n_held:]}
    chosen = np.sort(parts[split])
    return Scans(scans.images[chosen], scans.labels[chosen])
