"""MarianTokenizer's behaviour with any2seq's ids: sentencepiece pieces looked up by string in
``vocab.json`` (a piece that model does not know is ``<unk>``), a leading ``>>xx<<`` target-language
token kept whole. The model directory keeps Marian's own files (``source.spm``, ``target.spm``,
``vocab.json``), so the ids an imported model was trained on stay exactly what they were.

any2seq needs ``<pad> <s> </s> <unk>`` at ids 0-3; Marian has ``</s>`` 0, ``<unk>`` 1 and
``<pad>`` last, and starts decoding from ``<pad>``. ``any2seq_order`` lists the Marian ids in
any2seq's order: ``<pad>`` 0 (also the decoder start: ``model.decoder.start: pad``), an ordinary
piece at 1 (nothing reads id 1 as ``<s>`` when the decoder starts from ``<pad>``), ``</s>`` 2,
``<unk>`` 3, then the rest in Marian's order.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import sentencepiece as spm

from ..errors import UserError, where

FILES = ("source.spm", "target.spm", "vocab.json")
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def read_vocab(path: Path) -> dict[str, int]:
    """vocab.json: {piece: Marian id}, the ids 0..V-1 each once."""
    try:
        vocab = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{where(path)}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{where(path)}: not a readable vocabulary ({e.__class__.__name__})") from None
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise UserError(f"{where(path)}: expected a JSON object of piece -> integer id")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise UserError(f"{where(path)}: the ids are not 0..{len(vocab) - 1}, each once")
    for piece in (PAD, EOS, UNK):
        if piece not in vocab:
            raise UserError(f"{where(path)}: has no {piece} entry")
    return vocab


def any2seq_order(vocab: dict[str, int]) -> list[int]:
    """The Marian ids in any2seq id order: ``order[any2seq id] = Marian id``."""
    special = [vocab[PAD], None, vocab[EOS], vocab[UNK]]
    rest = [i for i in range(len(vocab)) if i not in special]
    return [special[0], rest[0], special[2], special[3], *rest[1:]]


def _load_spm(path: Path) -> spm.SentencePieceProcessor:
    sp = spm.SentencePieceProcessor()
    try:
        data = Path(path).read_bytes()
        sp.LoadFromSerializedProto(data)
    except FileNotFoundError:
        raise UserError(f"{where(path)}: no such file") from None
    except (OSError, RuntimeError):
        raise UserError(f"{where(path)}: not a sentencepiece model") from None
    return sp


class MarianTokenizer:
    """Text <-> any2seq ids as ``transformers.MarianTokenizer`` splits it (without its optional
    Moses punctuation normaliser). ``side`` picks the sentencepiece model: ``source`` or ``target``."""

    PAD, EOS, UNK = 0, 2, 3

    def __init__(self, folder: Path, side: str = "source"):
        folder = Path(folder)
        self.sp = _load_spm(folder / f"{side}.spm")
        vocab = read_vocab(folder / "vocab.json")
        order = any2seq_order(vocab)
        marian_to_any2seq = {m: a for a, m in enumerate(order)}
        self.ids = {piece: marian_to_any2seq[m] for piece, m in vocab.items()}  # piece -> any2seq id
        self.piece_of = {i: piece for piece, i in self.ids.items()}
        self.start = self.PAD  # decoding starts from <pad>: it is no output either
        digest = hashlib.sha256()
        for name in FILES:
            digest.update((folder / name).read_bytes())
        self.model_bytes = digest.digest()  # what data caches key on

    @property
    def vocab_size(self) -> int:
        return len(self.ids)

    def pieces(self, line: str) -> list[str]:
        """The pieces of one line: a leading ``>>xx<<`` code whole, then sentencepiece's pieces."""
        code = []
        if line.startswith(">>") and (end := line.find("<<")) != -1:
            code, line = [line[: end + 2]], line[end + 2:]
        return code + self.sp.encode(line, out_type=str)

    def encode(self, lines: list[str]) -> list[list[int]]:
        """any2seq ids of each line, without </s> (``model.encoder.eos`` appends it)."""
        return [[self.ids.get(p, self.UNK) for p in self.pieces(line)] for line in lines]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Text of each id sequence: stops at the first </s>, drops <pad> and <unk> (HF's
        ``skip_special_tokens``)."""
        out = []
        for seq in ids:
            seq = seq.tolist() if hasattr(seq, "tolist") else list(seq)
            if self.EOS in seq:
                seq = seq[: seq.index(self.EOS)]
            out.append(self.decode_pieces([self.piece_of[int(i)] for i in seq if int(i) not in (self.PAD, self.UNK)]))
        return out

    def decode_pieces(self, pieces: list[str]) -> str:
        return self.sp.decode_pieces([p for p in pieces if p not in (PAD, EOS, UNK)]).replace("\u2581", " ").strip()

    def id_to_piece(self, i: int) -> str:
        return self.piece_of[int(i)]


def load_marian_tokenizers(folder: Path):
    """The ``Tokenizers`` (source and target) of a model directory that ``import-hf`` wrote."""
    from ..tasks.base import Tokenizers

    return Tokenizers(MarianTokenizer(folder, "source"), MarianTokenizer(folder, "target"))
