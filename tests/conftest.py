"""Shared fixtures: a tiny parallel corpus from Multi30k, and tiny models trained on it in seconds.

The session models memorise 20 short sentence pairs (the validation set is the training set),
so their outputs are real sentences of varied length that end in eos, not degenerate loops.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from any2seq.tasks import base as task_base
from any2seq.cli import main

# Tests check behaviour, not time: hypothesis' default 200 ms deadline per example is a time limit that fails
# at random on a shared 2-core machine; benchmarks/ measure speed. Derandomized: the same examples every run,
# so a finding fails the run that introduced it, not a later unrelated one (a flaky test is a failing test).
settings.register_profile("any2seq", deadline=None, derandomize=True)
settings.load_profile("any2seq")

# precision: auto picks fp32 or bf16 by timing this machine (precision.py): outputs that depend on
# the CPU make a test pass on one machine and fail on the next. The suite runs in float32; the tests
# of auto itself clear this. Child processes inherit it.
os.environ["ANY2SEQ_PRECISION"] = "fp32"

REPO = Path(__file__).resolve().parents[1]
MULTI30K = REPO / "data" / "multi30k"
TINY_CONFIG = REPO / "configs" / "tiny" / "translation.yaml"
N_PAIRS = 20  # the memorised training pairs
STEPS = 300


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # Two cores shared with other jobs: a second torch thread mostly waits on the first, and
    # makes small RNN steps 10-20x slower.
    torch.set_num_threads(1)


@lru_cache(maxsize=None)
def multi30k(split: str, lang: str) -> tuple[str, ...]:
    with gzip.open(MULTI30K / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
        return tuple(line.rstrip("\n") for line in f)


@lru_cache(maxsize=None)
def short_pairs() -> tuple[tuple[str, str], ...]:
    """Training pairs of at most 32 characters a side: a model learns them in a few hundred steps."""
    pairs = zip(multi30k("train", "de"), multi30k("train", "en"))
    return tuple((de, en) for de, en in pairs if len(de) <= 32 and len(en) <= 32)


def write_lines(path: Path, lines) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """``train`` = ``val`` = 20 short pairs; ``test`` = 20 other Multi30k pairs, of any length."""
    root = tmp_path_factory.mktemp("corpus")
    pairs = short_pairs()[:N_PAIRS]
    for split in ("train", "val"):
        write_lines(root / f"{split}.de", [de for de, _ in pairs])
        write_lines(root / f"{split}.en", [en for _, en in pairs])
    write_lines(root / "test.de", multi30k("val", "de")[:20])
    write_lines(root / "test.en", multi30k("val", "en")[:20])
    return root


def train_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    """``any2seq train`` on the repository's tiny config, made to memorise the corpus."""
    sets = [f"data.root={corpus}", "tokenizer.vocab_size=100", f"train.max_steps={STEPS}",
            "train.valid_every=100", "train.keep_last=3", "train.warmup=30", "train.label_smoothing=0",
            "train.threads=1", *extra]
    return ["train", str(TINY_CONFIG), "--out", str(out), "--no-progress", *[a for s in sets for a in ("--set", s)]]


@dataclass
class TrainedRun:
    dir: Path  # the model directory `any2seq train` wrote
    model: torch.nn.Module  # the model object it trained, still in memory
    pairs: tuple  # the (source, target) pairs it memorised


def train_in_process(args: list[str]) -> torch.nn.Module:
    """Run ``any2seq train`` in this process and return the model it trained."""
    built = []

    def spy(*a, **k):
        built.append(runner_build(*a, **k))
        return built[-1]

    runner_build = task_base.build_model  # what every text task builds its model with
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(task_base, "build_model", spy)
        assert main(args) == 0
    assert len(built) == 1
    return built[0]


@pytest.fixture(scope="session")
def trained(corpus, tmp_path_factory) -> TrainedRun:
    """Transformer encoder and decoder (the tiny config), trained by ``any2seq train``."""
    out = tmp_path_factory.mktemp("runs") / "transformer"
    model = train_in_process(train_args(corpus, out))
    return TrainedRun(out, model, short_pairs()[:N_PAIRS])


@pytest.fixture(scope="session")
def trained_rnn(corpus, tmp_path_factory) -> TrainedRun:
    """Bidirectional GRU encoder and GRU decoder with Bahdanau attention, trained the same way."""
    out = tmp_path_factory.mktemp("runs") / "rnn"
    model = train_in_process(train_args(
        corpus, out, "model.encoder={kind: gru, embed: 32, hidden: 16, dropout: 0.0}",
        "model.decoder={kind: gru, embed: 32, hidden: 32, attention: bahdanau, dropout: 0.0}"))
    return TrainedRun(out, model, short_pairs()[:N_PAIRS])


FSDD = REPO.parent / "shared" / "data" / "fsdd"  # what configs/tiny/speech.yaml names, from the repository
SPEECH_SETS = ["data.max_digits=1", "data.n_train=800", "data.n_valid=40", "data.n_test=40", "train.max_steps=600",
               "train.valid_every=600", "train.warmup=50", "train.lr=2e-3", "train.batch_tokens=800",
               "model.ctc_weight=0.3", "train.precision=fp32",  # the same model on every CPU
               "model.encoder={kind: audio, n_mels: 40, subsample: 4, d_model: 64, layers: 2, heads: 2, ff: 128, "
               "dropout: 0.0}",
               "model.decoder={kind: transformer, d_model: 64, layers: 1, heads: 2, ff: 128, dropout: 0.0}"]


@pytest.fixture(scope="session")
def speech_model(tmp_path_factory) -> Path:
    """A speech model from the tiny config that tells single spoken digits apart: the tiny config's
    4 steps hear nothing, so a test that a recording's transcript survives conversion needs more."""
    if not (FSDD / "recordings").is_dir():
        pytest.skip(f"the Free Spoken Digit Dataset is not at {FSDD}")
    out = tmp_path_factory.mktemp("runs") / "speech"
    sets = [f"data.root={FSDD}", *SPEECH_SETS]
    args = ["train", str(REPO / "configs" / "tiny" / "speech.yaml"), "--out", str(out), "--no-progress"]
    assert main([*args, *[a for s in sets for a in ("--set", s)]]) == 0
    return out
