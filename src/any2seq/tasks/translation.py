"""Translation: parallel text files -> subword tokenizers -> cached ids -> batches, and decoding
plus sacreBLEU scoring for validation and evaluation."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config, DataConfig, DecodeConfig, TokenizerConfig
from ..data import (BatchStream, check_parallel, collate, encode_cached, make_batches, plain_or_gz, read_lines,
                    train_tokenizer)
from ..decoding import SearchOptions, decode_ids
from ..errors import UserError
from ..metrics import bleu_chrf
from ..models import build_model
from ..registry import TaskPart
from .base import JOINT, SRC, TGT, Task, Tokenizers, check_split, text_outputs


def split_path(data: DataConfig, split: str, lang: str, key: str) -> Path:
    """``{root}/{split}.{lang}``, gzipped or not; a missing file names the config key."""
    return plain_or_gz(Path(data.root) / f"{split}.{lang}", f"data.{key}", data.root)


def check_data(cfg: Config) -> None:
    """Fail early, naming the file, if the training or validation split is missing or misaligned."""
    data = cfg.data
    for split, key in ((data.train, "train"), (data.valid, "valid")):
        check_parallel(split_path(data, split, data.src_lang, key), split_path(data, split, data.tgt_lang, key))


def prepare_tokenizers(cfg: Config, run_dir: Path, reuse: bool) -> Tokenizers:
    """Train the sentencepiece model(s) into ``run_dir``; with ``reuse``, load those already there."""
    run_dir, data, tok = Path(run_dir), cfg.data, cfg.tokenizer
    if cfg.model.encoder.kind == "hf":  # a pretrained text encoder reads its own tokenizer's ids
        from ..hf.source_tokenizer import prepare_hf_source

        return prepare_hf_source(cfg, run_dir, reuse)
    if reuse:
        return load_tokenizers(cfg, run_dir)
    if tok.kind == "marian":
        raise UserError("tokenizer.kind: marian tokenizers come from `any2seq import-hf`; fine-tune an imported "
                        "model with train.init: its directory")
    src = split_path(data, data.train, data.src_lang, "train")
    tgt = split_path(data, data.train, data.tgt_lang, "train")
    if tok.joint:
        joint = _train(tok, [src, tgt], run_dir / JOINT, cfg.train.seed)
        return Tokenizers(joint, joint)
    return Tokenizers(_train(tok, [src], run_dir / SRC, cfg.train.seed), _train(tok, [tgt], run_dir / TGT, cfg.train.seed))


def load_tokenizers(cfg: Config, run_dir: Path) -> Tokenizers:
    """The tokenizers saved in a run directory: sentencepiece model(s), or an imported Marian vocabulary."""
    if cfg.model.encoder.kind == "hf":
        from ..hf.source_tokenizer import load_hf_source

        return load_hf_source(Path(run_dir))
    if cfg.tokenizer.kind == "marian":
        from ..hf.tokenizer import load_marian_tokenizers

        return load_marian_tokenizers(Path(run_dir))
    return Tokenizers.load(run_dir, cfg.tokenizer.joint)


def _train(tok: TokenizerConfig, paths: list[Path], out: Path, seed: int):
    return train_tokenizer(paths, out, tok.vocab_size, tok.kind, tok.character_coverage, seed=seed)


def training_batches(cfg: Config, toks: Tokenizers, position=(0, 0)) -> BatchStream:
    data = cfg.data
    src = split_path(data, data.train, data.src_lang, "train")
    tgt = split_path(data, data.train, data.tgt_lang, "train")  # aligned: check_data ran before
    cache = Path(data.cache) if data.cache else Path(data.root) / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    src_ids, tgt_ids = encode_cached(src, toks.src, cache), encode_cached(tgt, toks.tgt, cache)
    return BatchStream(src_ids, tgt_ids, cfg.train.batch_tokens, cfg.train.seed, tuple(position), data.max_len,
                       pad_to=cfg.train.pad_to)


def read_split(cfg: Config, split: str, key: str) -> tuple[list[str], list[str]]:
    """Source lines and reference lines of a split (e.g. the validation or test set)."""
    data = cfg.data
    src = split_path(data, split, data.src_lang, key)
    tgt = split_path(data, split, data.tgt_lang, key)
    check_parallel(src, tgt)
    return list(read_lines(src)), list(read_lines(tgt))


def translate_lines(model, toks: Tokenizers, lines: list[str], opts: SearchOptions, decode: DecodeConfig,
                    device="cpu", progress: bool = False) -> list[list[str]]:
    """n-best translations (lists of strings) for each line, in input order, batched as ``decode`` says."""
    hyps = decode_ids(model, toks.src.encode(lines), opts, device=device, progress=progress, **decode.batching())
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
            hyps = [n[0] for n in translate_lines(model, toks, src_lines, opts, cfg.decode, device)]
            scores = bleu_chrf(hyps, ref_lines)
            metrics.update(bleu=scores["bleu"], chrf=scores["chrf"], signature=scores["signature"])
        return metrics

    return validate


class Translation(Task):
    name = "translation"

    def check_data(self, cfg):
        check_data(cfg)

    def prepare(self, cfg, run_dir, reuse):
        return prepare_tokenizers(cfg, run_dir, reuse)

    def load_tokenizers(self, cfg, run_dir):
        return load_tokenizers(cfg, run_dir)

    def build_model(self, cfg, toks, label_smoothing=0.0):
        return build_model(cfg.model, toks.src.vocab_size, toks.tgt.vocab_size, label_smoothing)

    def training_batches(self, cfg, toks, position=(0, 0)):
        return training_batches(cfg, toks, position)

    def make_validate(self, model, toks, cfg, device, decode):
        return make_validate(model, toks, cfg, device, decode)

    def evaluate(self, model, toks, cfg, split, opts, device="cpu", progress=False):
        name = {"train": cfg.data.train, "valid": cfg.data.valid, "test": cfg.data.test}[check_split(split)]
        src, refs = read_split(cfg, name, split)
        hyps = [n[0] for n in translate_lines(model, toks, src, opts, cfg.decode, device, progress)]
        scores = bleu_chrf(hyps, refs)
        return {k: scores[k] for k in ("bleu", "chrf", "signature")}, hyps

    def read_inputs(self, cfg, inputs):
        return read_text_inputs(inputs)

    def predict(self, model, toks, cfg, inputs, opts, device="cpu", progress=False):
        hyps = decode_ids(model, toks.src.encode(list(inputs)), opts, device=device, progress=progress,
                          **cfg.decode.batching())
        return [{"outputs": text_outputs(toks, n_best)} for n_best in hyps]

    def card(self, cfg, batches):
        return {"src_lang": cfg.data.src_lang, "tgt_lang": cfg.data.tgt_lang,
                "data": {"root": cfg.data.root, "train": cfg.data.train, "pairs": int(len(batches.kept))}}


def read_text_inputs(inputs: list) -> list[str]:
    """Text inputs are strings; anything else is a caller's mistake that names the input."""
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise UserError(f"input {i + 1}: this model reads text, got {type(item).__name__}")
    return list(inputs)


TASK = TaskPart("translation", DataConfig, ("bleu", "chrf", "loss"), Translation)
