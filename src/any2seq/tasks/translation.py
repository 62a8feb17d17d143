"""Translation: parallel text files -> subword tokenizers -> cached ids -> batches; validation,
decoding and prediction are every text-output task's (base.py), scored with sacreBLEU."""
from __future__ import annotations

from pathlib import Path

from ..config import Config, DataConfig, DecodeConfig, TokenizerConfig
from ..data import BatchStream, check_parallel, encode_cached, plain_or_gz, read_lines, train_tokenizer
from ..errors import UserError
from ..inference import SearchOptions
from ..interfaces import EncoderConfig
from ..metrics import bleu_chrf
from ..registry import TaskPart
from .base import JOINT, SRC, TGT, TextOutputTask, Tokenizers, check_split, token_items


def split_path(data: DataConfig, split: str, lang: str, key: str) -> Path:
    """``{root}/{split}.{lang}``, gzipped or not; a missing file names the config key."""
    return plain_or_gz(Path(data.root) / f"{split}.{lang}", f"data.{key}", data.root)


def check_data(cfg: Config) -> None:
    """Fail early, naming the file, if the training or validation split is missing or misaligned."""
    data = cfg.data
    for split, key in ((data.train, "train"), (data.valid, "valid")):
        check_parallel(split_path(data, split, data.src_lang, key), split_path(data, split, data.tgt_lang, key))


def own_tokenizer(cfg: Config) -> bool:
    """Whether the encoder reads its pretrained tokenizer's ids (hf). A text encoder's config need
    not subclass ``EncoderConfig`` (nothing else is asked of it): such an encoder reads ours."""
    encoder = cfg.model.encoder
    return isinstance(encoder, EncoderConfig) and encoder.own_tokenizer()


def prepare_tokenizers(cfg: Config, run_dir: Path, reuse: bool) -> Tokenizers:
    """Train the sentencepiece model(s) into ``run_dir``; with ``reuse``, load those already there."""
    run_dir, data, tok = Path(run_dir), cfg.data, cfg.tokenizer
    if own_tokenizer(cfg):
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
    if own_tokenizer(cfg):
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
    cfg = Config(decode=decode)  # translation decodes as cfg.decode says; nothing else is read
    outputs = Translation().outputs(model, toks, cfg, lines, opts, device, progress)
    return [[o["text"] for o in n_best] for n_best in outputs]


class Translation(TextOutputTask):
    name = "translation"

    def check_data(self, cfg):
        check_data(cfg)

    def prepare(self, cfg, run_dir, reuse):
        return prepare_tokenizers(cfg, run_dir, reuse)

    def load_tokenizers(self, cfg, run_dir):
        return load_tokenizers(cfg, run_dir)

    def training_batches(self, cfg, toks, position=(0, 0)):
        return training_batches(cfg, toks, position)

    def examples(self, cfg, split):
        name = {"train": cfg.data.train, "valid": cfg.data.valid, "test": cfg.data.test}[check_split(split)]
        return read_split(cfg, name, split)

    def source_items(self, cfg, toks, sources):
        return token_items(toks.src, sources)

    def score(self, hyps, refs):
        scores = bleu_chrf(hyps, refs)
        return {k: scores[k] for k in ("bleu", "chrf", "signature")}

    def read_inputs(self, cfg, inputs):
        return read_text_inputs(inputs)

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
