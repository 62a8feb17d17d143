"""A tiny MarianMTModel with a MarianTokenizer, built and trained offline (no hub) in seconds.

The model memorises short Multi30k pairs for a few hundred steps, so its outputs (on these and
on other sentences) end in </s> at varied lengths, as a real opus-mt model's do. The builder is
shared with the import benchmark (``benchmarks/marian_model.py``).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from marian_model import SHAPES, build_marian, read_multi30k  # noqa: E402

DROPPED_PIECE_INDEX = 200  # one spm piece left out of vocab.json: MarianTokenizer reads it as <unk>


def short_pairs() -> list[tuple[str, str]]:
    """Multi30k training pairs of at most 32 characters a side."""
    return [(de, en) for de, en in zip(read_multi30k("train", "de"), read_multi30k("train", "en"))
            if len(de) <= 32 and len(en) <= 32]


def build_tiny_marian(folder: Path, pairs: list[tuple[str, str]], steps: int = 120, seed: int = 0,
                      activation: str = "swish", train_pairs: int = 24) -> Path:
    """Save a trained tiny MarianMTModel (safetensors) and its tokenizer in ``folder``."""
    return build_marian(folder, [t for pair in pairs for t in pair], SHAPES["tiny"], pairs[:train_pairs], steps,
                        seed=seed, activation=activation, dropped_piece=DROPPED_PIECE_INDEX)
