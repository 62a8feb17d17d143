"""Tiny runs for the training tests: a few Multi30k lines, a ~150-token vocabulary, d_model 16."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from any2seq.config import ModelConfig, TransformerDecoderConfig, TransformerEncoderConfig, load_config
from any2seq.data.batching import collate
from any2seq.runner import train
from any2seq.seq2seq import build_model

REPO = Path(__file__).resolve().parents[2]
MULTI30K = REPO / "data" / "multi30k"


def write_corpus(root: Path, n_train: int = 160, n_valid: int = 30) -> Path:
    """The first lines of Multi30k de-en train and val, as plain text under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_valid)):
        for lang in ("de", "en"):
            with gzip.open(MULTI30K / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
                lines = [next(f) for _ in range(n)]
            (root / f"{split}.{lang}").write_text("".join(lines), encoding="utf-8")
    return root


def write_config(path: Path, data_root: Path, dropout: float = 0.0, **train) -> Path:
    """A tiny transformer config; ``train`` overrides the train section."""
    layer = {"kind": "transformer", "d_model": 16, "layers": 1, "heads": 2, "ff": 32, "dropout": dropout}
    cfg = {
        "data": {"root": str(data_root), "max_len": 48},
        "tokenizer": {"vocab_size": 150},
        "model": {"encoder": layer, "decoder": layer},
        "train": {"batch_tokens": 200, "lr": 3e-3, "warmup": 4, "max_steps": 8, "valid_every": 4, "log_every": 4,
                  "valid_bleu": False, "metric": "loss", "threads": 1, **train},
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def train_here(config: Path, out: Path, resume: bool = False, overrides: tuple[str, ...] = ()) -> dict:
    """``any2seq train`` in this process (faster than a subprocess); restores the thread count it sets."""
    threads = torch.get_num_threads()
    try:
        return train(load_config(config, list(overrides)), out, resume=resume, progress=False)
    finally:
        torch.set_num_threads(threads)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "any2seq", *args]


def run_env() -> dict:
    """One thread per process; a Python stack on a crash (faulthandler) to diagnose a failing run."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``cmd`` and fail the test with the end of its output if it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=run_env())
    output = proc.stdout[-1000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{output}"
    return proc


def checkpoint(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}"


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(ckpt) / "model.safetensors"))


def records(run_dir: Path, key: str) -> list[dict]:
    """The lines of ``metrics.jsonl`` that hold ``key`` (training or validation records)."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if key in r]


# --- a model and batches for in-process tests ----------------------------------------------------

VOCAB = 40


def tiny_model(seed: int, dropout: float = 0.0):
    """A 2-head, d_model 16 transformer over VOCAB tokens, label smoothing 0.1, tied output."""
    torch.manual_seed(seed)
    enc = TransformerEncoderConfig(d_model=16, layers=1, heads=2, ff=32, dropout=dropout)
    dec = TransformerDecoderConfig(d_model=16, layers=1, heads=2, ff=32, dropout=dropout)
    return build_model(ModelConfig(encoder=enc, decoder=dec), VOCAB, VOCAB, label_smoothing=0.1)


def random_batch(seed: int, rows: int = 6):
    """``rows`` random pairs of 1-8 tokens each."""
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(4, VOCAB, (int(torch.randint(1, 9, (), generator=g)),), generator=g).tolist()
            for _ in range(2 * rows)]
    return collate(seqs[:rows], seqs[rows:], range(rows))


class Stream:
    """Batches for ``fit``, over and over, with the ``position`` the loop records."""

    def __init__(self, batches):
        self.batches, self.i, self.position = batches, 0, (0, 0)

    def __next__(self):
        self.i += 1
        return self.batches[(self.i - 1) % len(self.batches)]
