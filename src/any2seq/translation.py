"""The translation task: parallel text files -> subword tokenizers -> cached ids -> batches,
and decoding plus sacreBLEU scoring for validation and evaluation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config, DataConfig, TokenizerConfig
from .data import (
    BatchStream,
    Tokenizer,
    check_parallel,
    collate,
    encode_cached,
    make_batches,
    read_lines,
    train_tokenizer,
)
from .decoding import SearchOptions, decode_ids
from .errors import UserError
from .metrics import bleu_chrf

JOINT, SRC, TGT = "spm.model", "spm.src.model", "spm.tgt.model"


def split_path(data: DataConfig, split: str, lang: str, key: str) -> Path:
    """``{root}/{split}.{lang}``, gzipped or not; a missing file names the config key."""
    base = Path(data.root) / f"{split}.{lang}"
    for candidate in (base.with_name(base.name + ".gz"), base):
        if candidate.is_file():
            return candidate
    raise UserError(f"data.{key}: {base}[.gz]: no such file (data.root is {data.root!r})")


@dataclass
class Tokenizers:
    src: Tokenizer
    tgt: Tokenizer

    @staticmethod
    def load(run_dir: Path, joint: bool) -> "Tokenizers":
        """The model(s) the config says a run has (files of an earlier, failed attempt are ignored)."""
        run_dir = Path(run_dir)
        if joint:
            shared = Tokenizer.load(run_dir / JOINT)
            return Tokenizers(shared, shared)
        return Tokenizers(Tokenizer.load(run_dir / SRC), Tokenizer.load(run_dir / TGT))


def check_data(cfg: Config) -> None:
    """Fail early, naming the file, if the training or validation split is missing or misaligned."""
    data = cfg.data
    for split, key in ((data.train, "train"), (data.valid, "valid")):
        check_parallel(split_path(data, split, data.src_lang, key), split_path(data, split, data.tgt_lang, key))


def prepare_tokenizers(cfg: Config, run_dir: Path, reuse: bool) -> Tokenizers:
    """Train the sentencepiece model(s) into ``run_dir``; with ``reuse``, load those already there."""
    run_dir, data, tok = Path(run_dir), cfg.data, cfg.tokenizer
    if reuse:
        return Tokenizers.load(run_dir, tok.joint)
    src = split_path(data, data.train, data.src_lang, "train")
    tgt = split_path(data, data.train, data.tgt_lang, "train")
    if tok.joint:
        joint = _train(tok, [src, tgt], run_dir / JOINT, cfg.train.seed)
        return Tokenizers(joint, joint)
    return Tokenizers(_train(tok, [src], run_dir / SRC, cfg.train.seed), _train(tok, [tgt], run_dir / TGT, cfg.train.seed))


def _train(tok: TokenizerConfig, paths: list[Path], out: Path, seed: int) -> Tokenizer:
    return train_tokenizer(paths, out, tok.vocab_size, tok.kind, tok.character_coverage, seed=seed)


def training_batches(cfg: Config, toks: Tokenizers, position=(0, 0)) -> BatchStream:
    data = cfg.data
    src = split_path(data, data.train, data.src_lang, "train")
    tgt = split_path(data, data.train, data.tgt_lang, "train")  # aligned: check_data ran before
    cache = Path(data.cache) if data.cache else Path(data.root) / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    src_ids, tgt_ids = encode_cached(src, toks.src, cache), encode_cached(tgt, toks.tgt, cache)
    return BatchStream(src_ids, tgt_ids, cfg.train.batch_tokens, cfg.train.seed, tuple(position), data.max_len)


def read_split(cfg: Config, split: str, key: str) -> tuple[list[str], list[str]]:
    """Source lines and reference lines of a split (e.g. the validation or test set)."""
    data = cfg.data
    src = split_path(data, split, data.src_lang, key)
    tgt = split_path(data, split, data.tgt_lang, key)
    check_parallel(src, tgt)
    return list(read_lines(src)), list(read_lines(tgt))


def translate_lines(model, toks: Tokenizers, lines: list[str], opts: SearchOptions, batch_tokens: int,
                    device="cpu", progress: bool = False) -> list[list[str]]:
    """n-best translations (lists of strings) for each line, in input order."""
    hyps = decode_ids(model, toks.src.encode(lines), opts, batch_tokens, device, progress)
    return [toks.tgt.decode([h.tokens for h in n_best]) for n_best in hyps]


def make_validate(model, toks: Tokenizers, cfg: Config, device, with_bleu: bool):
    """A validation callable for the training loop: dev loss per token and greedy BLEU/chrF."""
    src_lines, ref_lines = read_split(cfg, cfg.data.valid, "valid")
    src_ids, tgt_ids = toks.src.encode(src_lines), toks.tgt.encode(ref_lines)
    keep = [i for i, s in enumerate(src_ids) if s]  # an empty source has nothing to attend to
    src_ids, tgt_ids = [src_ids[i] for i in keep], [tgt_ids[i] for i in keep]
    lengths = [np.array([len(s) for s in ids]) for ids in (src_ids, tgt_ids)]
    batches = make_batches(*lengths, cfg.train.batch_tokens, seed=0, epoch=0, shuffle=False)

    def validate() -> dict:
        total, count = 0.0, 0
        for indices in batches:
            loss, n = model.loss(collate(src_ids, tgt_ids, indices).to(device))
            total, count = total + float(loss), count + n
        metrics = {"loss": total / max(count, 1)}
        if with_bleu:
            opts = SearchOptions(beam=1, max_len_a=cfg.decode.max_len_a, max_len_b=cfg.decode.max_len_b)
            hyps = [n[0] for n in translate_lines(model, toks, src_lines, opts, cfg.decode.batch_tokens, device)]
            scores = bleu_chrf(hyps, ref_lines)
            metrics.update(bleu=scores["bleu"], chrf=scores["chrf"])
        return metrics

    return validate
