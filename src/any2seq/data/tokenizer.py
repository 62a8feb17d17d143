"""Subword tokenizers: one SentencePiece model (Kudo & Richardson, 2018) with fixed special ids."""
from __future__ import annotations

import io
import re
from itertools import chain
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import sentencepiece as spm

from any2seq.data.text import count_lines, read_lines
from any2seq.errors import UserError, where
from any2seq.fileio import MiB, atomic_write, read_regular

KINDS = ("bpe", "unigram", "word", "char")
_TRAIN_THREADS = 4  # fixed, not os.cpu_count(): the trained model must not depend on the machine


MAX_MODEL_BYTES = 256 * MiB  # sentencepiece models are a few MB even for 250k pieces

class Tokenizer:
    """Text <-> subword ids. Ids 0-3 are always ``<pad> <s> </s> <unk>``, whatever the model."""

    PAD, BOS, EOS, UNK = 0, 1, 2, 3

    def __init__(self, model_bytes: bytes, name: str = "<bytes>"):
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(model_bytes)
        except RuntimeError:
            raise UserError(f"{where(name)}: not a sentencepiece model") from None
        ids = (self.sp.pad_id(), self.sp.bos_id(), self.sp.eos_id(), self.sp.unk_id())
        if ids != (self.PAD, self.BOS, self.EOS, self.UNK):
            raise UserError(
                f"{where(name)}: sentencepiece model has pad/bos/eos/unk ids {ids}, "
                "any2seq needs (0, 1, 2, 3); train it with any2seq"
            )
        self.model_bytes = model_bytes  # the serialized model, for hashing and checkpoints

    @classmethod
    def load(cls, path) -> "Tokenizer":
        """Load a ``.model`` file written by :func:`train_tokenizer`."""
        return cls(read_regular(path, MAX_MODEL_BYTES, where(path)), name=str(path))

    @property
    def vocab_size(self) -> int:
        return self.sp.vocab_size()

    def encode(self, lines: list[str]) -> list[list[int]]:
        """Subword ids of each line, without bos/eos."""
        return self.sp.encode(list(lines), out_type=int)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Text of each id sequence: stops at the first eos, skips pad and bos."""
        cleaned = []
        for seq in ids:
            seq = seq.tolist() if hasattr(seq, "tolist") else list(seq)
            if self.EOS in seq:
                seq = seq[: seq.index(self.EOS)]
            cleaned.append([int(i) for i in seq if i != self.PAD and i != self.BOS])
        return self.sp.decode(cleaned)

    def pieces(self, line: str) -> list[str]:
        """The subword pieces of one line, for inspection."""
        return self.sp.encode(line, out_type=str)

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))

    def decode_pieces(self, pieces: list[str]) -> str:
        return self.sp.decode(pieces)


def _sample(text_paths: list[Path], total: int, max_sentences: int, seed: int) -> Iterator[str]:
    """Stream the ``total`` lines of all files, or a uniform random ``max_sentences`` of them.

    Sampling here, not in sentencepiece, keeps training reproducible: sentencepiece seeds its
    own sampler from the clock in every new process.
    """
    lines = chain.from_iterable(read_lines(p) for p in text_paths)
    if total <= max_sentences:
        yield from lines
        return
    keep = np.zeros(total, dtype=bool)
    keep[np.random.default_rng(seed).choice(total, size=max_sentences, replace=False)] = True
    for line, kept in zip(lines, keep):
        if kept:
            yield line


class _Feed:
    """An iterator handed to sentencepiece that keeps the first error raised while reading.

    Sentencepiece turns an exception in its iterator into the text of a RuntimeError; keeping
    it lets the caller re-raise the original UserError (bad UTF-8 at a named line, ...).
    """

    def __init__(self, lines: Iterator[str]):
        self.lines, self.error = lines, None

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            return next(self.lines)
        except StopIteration:
            raise
        except Exception as e:
            self.error = e
            raise


def _training_error(error: RuntimeError, vocab_size: int, text_paths: list[Path]) -> UserError:
    """Turn sentencepiece's training errors into one-line advice."""
    message = str(error)
    files = ", ".join(str(p) for p in text_paths)
    if "too high" in message:
        limit = re.search(r"<= (\d+)", message)
        at_most = f" (at most {limit.group(1)} for this data)" if limit else ""
        return UserError(
            f"{files}: tokenizer.vocab_size={vocab_size} is too large; lower tokenizer.vocab_size{at_most}"
        )
    if "required_chars" in message:
        return UserError(
            f"{files}: tokenizer.vocab_size={vocab_size} is smaller than the number of characters; "
            "raise tokenizer.vocab_size or lower tokenizer.character_coverage"
        )
    return UserError(f"{files}: sentencepiece training failed ({message.splitlines()[0]})")


def train_tokenizer(
    text_paths: list[Path],
    model_path: Path,
    vocab_size: int,
    kind: str = "bpe",
    character_coverage: float = 1.0,
    max_sentences: int = 1_000_000,
    seed: int = 0,
) -> Tokenizer:
    """Train a sentencepiece model on the lines of ``text_paths`` and write it to ``model_path``.

    For a joint tokenizer pass both languages' files. Deterministic for fixed arguments.
    """
    if kind not in KINDS:
        raise UserError(f"tokenizer.kind: unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
    text_paths, model_path = [Path(p) for p in text_paths], Path(model_path)
    total = sum(count_lines(p) for p in text_paths)
    if total == 0:
        raise UserError(f"{', '.join(map(str, text_paths)) or 'tokenizer.text_paths'}: no data")
    feed, model = _Feed(_sample(text_paths, total, max_sentences, seed)), io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=feed,
            model_writer=model,
            vocab_size=vocab_size,
            model_type=kind,
            hard_vocab_limit=kind not in ("word", "char"),  # closed vocabularies: vocab_size is a ceiling
            character_coverage=character_coverage,
            pad_id=Tokenizer.PAD, bos_id=Tokenizer.BOS, eos_id=Tokenizer.EOS, unk_id=Tokenizer.UNK,
            input_sentence_size=0,  # _sample already chose the sentences
            shuffle_input_sentence=False,
            num_threads=_TRAIN_THREADS,
            minloglevel=2,
        )
    except RuntimeError as e:
        if feed.error is not None:
            raise feed.error from None
        raise _training_error(e, vocab_size, text_paths) from None
    if feed.error is not None:
        raise feed.error
    model_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(model_path, model.getvalue())
    return Tokenizer(model.getvalue(), name=str(model_path))
