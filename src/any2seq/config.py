"""Typed, strict configs: frozen dataclasses loaded from YAML, with ``--set a.b=value`` overrides.

Unknown keys and bad values fail at load time with the key's dotted path and the valid choices.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .errors import UserError

# --- components -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformerEncoderConfig:
    kind: Literal["transformer"] = "transformer"
    d_model: int = 256
    layers: int = 3
    heads: int = 4
    ff: int = 1024
    dropout: float = 0.1
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_positions: int = 1024  # only for learned positions

    def check(self):
        _require(self.d_model % self.heads == 0, "d_model", f"{self.d_model} is not a multiple of heads={self.heads}")


@dataclass(frozen=True)
class TransformerDecoderConfig(TransformerEncoderConfig):
    pass


@dataclass(frozen=True)
class RNNEncoderConfig:
    kind: Literal["rnn", "gru", "lstm"] = "gru"
    embed: int = 256
    hidden: int = 256
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.1


@dataclass(frozen=True)
class RNNDecoderConfig:
    kind: Literal["rnn", "gru", "lstm"] = "gru"
    embed: int = 256
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.1
    attention: Literal["none", "bahdanau", "dot", "general"] = "bahdanau"


EncoderConfig = Union[TransformerEncoderConfig, RNNEncoderConfig]
DecoderConfig = Union[TransformerDecoderConfig, RNNDecoderConfig]


@dataclass(frozen=True)
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=TransformerEncoderConfig)
    decoder: DecoderConfig = field(default_factory=TransformerDecoderConfig)
    tie_output: bool = True  # the target embedding doubles as the output projection
    share_embeddings: bool = False  # source and target share one embedding (needs tokenizer.joint)


@dataclass(frozen=True)
class TokenizerConfig:
    kind: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = 8000
    joint: bool = True  # one model for both languages
    character_coverage: float = 1.0


@dataclass(frozen=True)
class DataConfig:
    root: str = "data/multi30k"  # files are {root}/{split}.{lang}[.gz], relative to the working dir
    src_lang: str = "de"
    tgt_lang: str = "en"
    train: str = "train"
    valid: str = "val"
    test: str = "test_2016_flickr"
    max_len: int = 128  # training pairs with more subword tokens on either side are skipped
    cache: str = ""  # where encoded corpora are cached; "" = {root}/.cache


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1
    batch_tokens: int = 4096  # target tokens per optimizer step (before accumulation)
    accum: int = 1
    lr: float = 7e-4
    schedule: Literal["inverse_sqrt", "noam", "cosine", "constant"] = "inverse_sqrt"
    warmup: int = 4000
    min_lr: float = 0.0  # floor for cosine
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    clip: float = 1.0  # max gradient norm; 0 = off
    max_steps: int = 0  # 0 = no limit
    max_epochs: int = 0
    max_minutes: float = 0.0  # wall-clock budget for training; the best checkpoint is kept
    bf16: bool = False  # bfloat16 autocast
    threads: int = 0  # torch threads; 0 = one per core
    valid_every: int = 1000
    valid_bleu: bool = True
    metric: Literal["bleu", "loss"] = "bleu"
    patience: int = 0  # early stopping after this many validations without improvement; 0 = off
    keep_last: int = 3
    log_every: int = 50

    def check(self):
        _require(self.batch_tokens > 0, "batch_tokens", "must be positive")
        _require(self.accum >= 1, "accum", "must be at least 1")
        _require(self.lr > 0, "lr", "must be positive")
        _require(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
        _require(self.keep_last >= 1, "keep_last", "must be at least 1")
        _require(self.valid_every >= 1, "valid_every", "must be at least 1")
        _require(self.metric != "bleu" or self.valid_bleu, "metric", "bleu needs train.valid_bleu: true (or use loss)")
        _require(self.schedule != "cosine" or self.max_steps > 0, "schedule", "cosine needs train.max_steps > 0")
        _require(self.clip >= 0 and self.max_minutes >= 0, "clip" if self.clip < 0 else "max_minutes",
                 "must not be negative")
        for key in ("warmup", "max_steps", "max_epochs", "patience", "threads"):
            _require(getattr(self, key) >= 0, key, "must not be negative")


@dataclass(frozen=True)
class DecodeConfig:
    beam: int = 5
    length_penalty: float = 1.0
    max_len_a: float = 1.5  # output limit: a * source length + b tokens
    max_len_b: int = 10
    batch_tokens: int = 6000

    def check(self):
        _require(self.beam >= 1, "beam", "must be at least 1")


@dataclass(frozen=True)
class Config:
    task: Literal["translation"] = "translation"
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


# --- loading ----------------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


def _require(ok: bool, key: str, message: str):
    if not ok:
        raise _Invalid(key, message)


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply ``key.path=value`` overrides, and validate it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read config ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(_yaml_error(path, e)) from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the config must be a mapping of sections, not {type(raw).__name__}")
    for item in overrides:
        apply_override(raw, item)
    try:
        return _build(Config, raw, "")
    except _Invalid as e:  # blame --set for the keys it set, the file for the rest
        set_keys = [item.partition("=")[0].strip() + "." for item in overrides]
        source = "--set" if any(k.startswith(e.key + ".") for k in set_keys) else f"{path}:"
        raise UserError(f"{source} {e.key}: {e.message}") from None


def _yaml_error(path: Path, e: yaml.YAMLError) -> str:
    """``file:line: YAML syntax error: problem``, and where the construct it broke began."""
    mark, context_mark = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context = getattr(e, "context", None)
    if context and context_mark is not None and (mark is None or context_mark.line != mark.line):
        problem += f" ({context} at line {context_mark.line + 1})"
    return f"{path}{line}: YAML syntax error: {problem}"


def apply_override(raw: dict, item: str) -> None:
    """``train.lr=3e-4`` -> raw["train"]["lr"] = 3e-4 (the value is parsed as YAML)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise UserError(f"--set {item}: expected KEY.PATH=VALUE, e.g. --set train.lr=3e-4")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise UserError(f"--set {item}: cannot parse the value {value!r}") from None
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {item}: {part} is not a section")
    node[parts[-1]] = parsed


def config_from_dict(raw: dict, source: str = "config") -> Config:
    try:
        return _build(Config, raw, "")
    except _Invalid as e:
        raise UserError(f"{source}: {e.key}: {e.message}") from None


def _build(cls, raw: Any, prefix: str):
    if not isinstance(raw, dict):
        raise _Invalid(prefix or "(top)", f"expected a mapping, got {_show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            raise _Invalid(f"{prefix}{key}", f"unknown key (valid keys: {', '.join(fields)})")
    values = {k: _convert(hints[k], v, f"{prefix}{k}") for k, v in raw.items()}
    try:
        obj = cls(**values)
    except TypeError as e:
        raise _Invalid(prefix.rstrip(".") or "(top)", str(e)) from None
    if hasattr(obj, "check"):
        try:
            obj.check()
        except _Invalid as e:
            raise _Invalid(f"{prefix}{e.key}", e.message) from None
    return obj


def _convert(tp, value, key: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if origin in (Union, types.UnionType) and all(dataclasses.is_dataclass(a) for a in args):
        return _build(_pick_kind(args, value, key), value, key + ".")
    if origin is Literal:
        if value not in args:
            raise _Invalid(key, f"{_show(value)} is not one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise _Invalid(key, f"expected a list of {len(args)} values, got {_show(value)}")
        return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if not isinstance(value, bool):
            raise _Invalid(key, f"expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(key, f"expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(key, f"expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _Invalid(key, f"expected a string, got {_show(value)}")
        return value
    raise TypeError(f"config type {tp} for {key} is not supported")  # a bug in a config class


def _pick_kind(classes, value, key: str):
    kinds = {k: c for c in classes for k in typing.get_args(typing.get_type_hints(c)["kind"])}
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind is None and isinstance(value, dict):
        return classes[0]
    if kind not in kinds:
        raise _Invalid(f"{key}.kind", f"{_show(kind)} is not one of {', '.join(kinds)}")
    return kinds[kind]


def _show(value) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, dict) else "a mapping"


def config_to_dict(cfg) -> dict:
    """The resolved config as plain data (tuples become lists), ready for YAML."""
    def plain(x):
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x
    return plain(dataclasses.asdict(cfg))


def dump_config(cfg) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True)
