"""A pretrained text encoder's own tokenizer for the source side (BERT's WordPiece, ...): the ids the
encoder was trained on. It is saved into the model directory (``hf_tokenizer/``) beside the target's
sentencepiece model, which is trained on the target side alone."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from ..config import Config
from ..data import train_tokenizer
from ..errors import UserError

FOLDER = "hf_tokenizer"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                   "spiece.model")


class HFSourceTokenizer:
    """Text -> the HF tokenizer's ids (with its special tokens, e.g. [CLS] ... [SEP]); what any2seq's
    data, decoding and attention plots ask of a source tokenizer."""

    def __init__(self, folder: Path):
        from ..encoders.hf import transformers_module

        transformers = transformers_module()
        folder = Path(folder)
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            raise UserError(f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...): a text encoder "
                            "reads its own tokenizer's ids")
        self.tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        digest = hashlib.sha256()
        for path in sorted(folder.iterdir()):
            if path.is_file():
                digest.update(path.name.encode() + path.read_bytes())
        self.model_bytes = digest.digest()  # what data caches key on

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    def encode(self, lines: list[str]) -> list[list[int]]:
        return self.tok(list(lines), add_special_tokens=True)["input_ids"] if lines else []

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self.tok.batch_decode([list(map(int, seq)) for seq in ids], skip_special_tokens=True)

    def pieces(self, line: str) -> list[str]:
        return self.tok.convert_ids_to_tokens(self.encode([line])[0])

    def id_to_piece(self, i: int) -> str:
        return self.tok.convert_ids_to_tokens(int(i))


def prepare_hf_source(cfg: Config, run_dir: Path, reuse: bool):
    """The run's tokenizers: the encoder folder's tokenizer (copied into the run) for the source, a
    sentencepiece model trained on the target side; with ``reuse``, those already in the run."""
    from ..tasks.base import TGT, Tokenizers
    from ..tasks.translation import split_path

    run_dir = Path(run_dir)
    if reuse:
        return load_hf_source(run_dir)
    src = HFSourceTokenizer(Path(cfg.model.encoder.path))
    src.tok.save_pretrained(str(run_dir / FOLDER))
    data, tok = cfg.data, cfg.tokenizer
    target = split_path(data, data.train, data.tgt_lang, "train")
    tgt = train_tokenizer([target], run_dir / TGT, tok.vocab_size, tok.kind, tok.character_coverage,
                          seed=cfg.train.seed)
    return Tokenizers(HFSourceTokenizer(run_dir / FOLDER), tgt)


def load_hf_source(run_dir: Path):
    from ..data import Tokenizer
    from ..tasks.base import TGT, Tokenizers

    return Tokenizers(HFSourceTokenizer(Path(run_dir) / FOLDER), Tokenizer.load(Path(run_dir) / TGT))
