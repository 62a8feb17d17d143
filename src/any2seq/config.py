"""Typed, strict configs: frozen dataclasses loaded from YAML, with ``--set a.b=value`` overrides.

Unknown keys and bad values fail at load time with the key's dotted path and the valid choices.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from . import registry, task_metrics
from .config_checks import Invalid, require
from .config_checks import MAX_HEADS, MAX_LAYERS, MAX_WIDTH  # noqa: F401 (exported from here before)
from .decoders.transformer import TransformerDecoderConfig
from .encoders.text import TransformerEncoderConfig
from .errors import UserError, clip, preview
from .fileio import MiB, read_regular
from .yamlio import parse_yaml

# --- the model: its encoder and decoder sections take the config class their `kind` selects --------
#
# Each component's config lives in its own module (encoders/, decoders/), registered in components.py;
# `registry` maps a kind to it. A kind-less section takes the first registered (the Transformer).


def _slot(name: str, default: type):
    """A config field holding the ``name`` component (encoder, decoder) its ``kind`` selects."""
    return field(default_factory=default, metadata={"slot": name})


@dataclass(frozen=True)
class ModelConfig:
    encoder: Any = _slot("encoder", TransformerEncoderConfig)
    decoder: Any = _slot("decoder", TransformerDecoderConfig)
    tie_output: bool = True  # the target embedding doubles as the output projection
    share_embeddings: bool = False  # source and target share one embedding (needs tokenizer.joint)
    ctc_weight: float = 0.0  # token decoders: mix in a CTC loss on the encoder's states (speech); 0 = off

    def check(self):
        _require(0.0 <= self.ctc_weight < 1.0, "ctc_weight", f"must be in [0, 1), got {self.ctc_weight}")


@dataclass(frozen=True)
class TokenizerConfig:
    kind: Literal["bpe", "unigram", "word", "char", "marian"] = "bpe"  # marian: from `any2seq import-hf` only
    vocab_size: int = 8000
    joint: bool = True  # one model for both languages
    character_coverage: float = 1.0


@dataclass(frozen=True)
class DataConfig:
    """Translation: parallel text files ``{root}/{split}.{lang}[.gz]``."""
    root: str = "data/multi30k"  # files are {root}/{split}.{lang}[.gz], relative to the working dir
    src_lang: str = "de"
    tgt_lang: str = "en"
    train: str = "train"
    valid: str = "val"
    test: str = "test_2016_flickr"
    max_len: int = 128  # training pairs with more subword tokens on either side are skipped
    cache: str = ""  # where encoded corpora are cached; "" = {root}/.cache


@dataclass(frozen=True)
class ConceptDataConfig:
    """Text generation from concepts: a caption's content words (sorted) -> the caption (CommonGen-style)."""
    root: str = "data/multi30k"  # files are {root}/{split}.{lang}[.gz]
    lang: str = "en"
    train: str = "train"
    valid: str = "val"
    test: str = "test_2016_flickr"
    max_examples: int = 0  # use only the first N captions of each split (0 = all): quick trials and tests
    rerank: bool = True  # beam search: of the n-best, output the first that covers the most concepts


@dataclass(frozen=True)
class CaptionDataConfig:
    """Image captioning: scenes of real digit scans (``digits``) or a COCO-format caption file (``coco``)."""
    source: Literal["digits", "coco"] = "digits"
    size: int = 48  # images are resized (coco) or drawn (digits) to size x size
    seed: int = 1
    n_train: int = 20000  # digits: scenes generated per split
    n_valid: int = 500
    n_test: int = 1000
    max_digits: int = 4
    root: str = ""  # coco: folder holding the JSON files and images/
    train: str = "train.json"  # coco: caption files, relative to root
    valid: str = "valid.json"
    test: str = "test.json"
    images: str = "images"  # coco: image folder, relative to root

    def check(self):
        _require(self.size >= 12, "size", "must be at least 12 (a 3x3 grid of digits)")
        _require(1 <= self.max_digits <= 4, "max_digits", "must be 1 to 4")
        _require(self.source != "coco" or bool(self.root), "root", "a coco source needs data.root")


@dataclass(frozen=True)
class SpeechDataConfig:
    """Speech recognition: Free Spoken Digit Dataset recordings joined into 1-7 digit utterances."""
    root: str = "../shared/data/fsdd"  # a folder of {digit}_{speaker}_{index}.wav (see `any2seq download fsdd`)
    sample_rate: int = 8000
    seed: int = 1
    n_train: int = 8000
    n_valid: int = 300
    n_test: int = 1000
    min_digits: int = 1
    max_digits: int = 7
    noise: float = 0.0  # std of Gaussian noise added to training utterances
    speed: float = 0.0  # training: each recording played at a speed in [1 - speed, 1 + speed] (tempo and pitch)
    held_out_speaker: str = ""  # a speaker left out of training entirely (reported as its own test)
    synthetic: float = 0.0  # training: share of the digits said by espeak-ng voices instead (when it is installed)
    synthetic_voices: int = 200  # how many synthetic voices (accent, variant, pitch, rate) say them

    def check(self):
        _require(1 <= self.min_digits <= self.max_digits, "min_digits", "must be in [1, max_digits]")
        _require(0.0 <= self.speed < 0.5, "speed", f"must be in [0, 0.5), got {self.speed}")
        _require(0.0 <= self.synthetic <= 1.0, "synthetic", f"must be in [0, 1], got {self.synthetic}")
        _require(1 <= self.synthetic_voices <= 10_000, "synthetic_voices",
                 f"must be in [1, 10000], got {self.synthetic_voices}")


@dataclass(frozen=True)
class VideoDataConfig:
    """Video prediction (moving digit scans) and text-to-video (described motions)."""
    seed: int = 1
    n_train: int = 8000
    n_valid: int = 200
    n_test: int = 500
    frames_in: int = 10  # video prediction: frames the model sees
    frames_out: int = 10  # frames it predicts (text-to-video: frames generated)
    canvas: int = 32
    digit_size: int = 16
    max_digits: int = 2

    def check(self):
        _require(self.frames_in >= 1 and self.frames_out >= 1, "frames_out", "must be at least 1")
        _require(self.digit_size < self.canvas, "digit_size", f"must be smaller than canvas={self.canvas}")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1
    batch_tokens: int = 4096  # target tokens per optimizer step (before accumulation)
    accum: int = 1
    pad_to: int = 1  # round token batches' widths up to a multiple of this (fewer shapes; costs padding)
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
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: the faster on this machine, measured at start
    threads: int = 0  # torch threads; 0 = one per core
    valid_every: int = 1000
    valid_bleu: bool = True  # decode the validation set and score it with the task's metrics
    metric: str = ""  # picks the best checkpoint: one the task reports; "" = the task's own (task_metrics.py)
    patience: int = 0  # early stopping after this many validations without improvement; 0 = off
    keep_last: int = 3
    init: str = ""  # a model directory whose weights (and tokenizers) start this run: fine-tuning
    log_every: int = 50

    def check(self):
        # A NaN or infinite rate (or clip, decay, ...) trains nothing: every validation is NaN.
        for key in ("lr", "min_lr", "weight_decay", "label_smoothing", "clip", "max_minutes"):
            _require(math.isfinite(getattr(self, key)), key, f"must be a finite number, got {getattr(self, key)}")
        for i, beta in enumerate(self.betas):  # Adam's moment decays (a NaN fails the range too)
            _require(0.0 <= beta < 1.0, f"betas[{i}]", f"must be in [0, 1), got {beta}")
        _require(self.batch_tokens > 0, "batch_tokens", "must be positive")
        _require(self.accum >= 1, "accum", "must be at least 1")
        _require(1 <= self.pad_to <= 64, "pad_to", f"must be 1 to 64, got {self.pad_to}")
        _require(self.lr > 0, "lr", "must be positive")
        _require(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
        _require(self.keep_last >= 1, "keep_last", "must be at least 1")
        _require(self.valid_every >= 1, "valid_every", "must be at least 1")
        _require(self.metric in ("", "loss") or self.valid_bleu, "metric",
                 f"{self.metric} needs train.valid_bleu: true (decode the validation set) or use loss")
        _require(self.schedule != "cosine" or self.max_steps > 0, "schedule", "cosine needs train.max_steps > 0")
        _require(self.clip >= 0 and self.max_minutes >= 0, "clip" if self.clip < 0 else "max_minutes",
                 "must not be negative")
        for key in ("warmup", "max_steps", "max_epochs", "patience", "threads"):
            _require(getattr(self, key) >= 0, key, "must not be negative")


# Beam sizes beyond a few dozen only cost memory (the search holds beam x batch rows) and tend to find
# worse, shorter outputs (Koehn & Knowles, 2017); 256 leaves room for experiments, 10**6 would exhaust RAM.
MAX_BEAM = 256


@dataclass(frozen=True)
class DecodeConfig:
    beam: int = 5
    length_penalty: float = 1.0
    max_len_a: float = 1.5  # output limit: a * source length + b tokens
    max_len_b: int = 10
    batch_tokens: int = 6000  # source positions times beam per decoding batch
    batch_size: int = 0  # sources per decoding batch at most; 0 = no cap but batch_tokens
    workers: int = 1  # batches decoded at once, in threads splitting the intra-op threads
    max_src_len: int = 1024  # longer token sources are cut to this (with a warning); learned positions cap it too

    def check(self):
        _require(self.beam >= 1, "beam", "must be at least 1")
        _require(self.beam <= MAX_BEAM, "beam", f"must be at most {MAX_BEAM}, got {self.beam}")
        for key in ("length_penalty", "max_len_a"):  # a NaN length penalty ranks every hypothesis NaN: none is kept
            _require(math.isfinite(getattr(self, key)), key, f"must be a finite number, got {getattr(self, key)}")
        _require(self.max_src_len >= 1, "max_src_len", "must be at least 1")
        _require(self.batch_tokens >= 1, "batch_tokens", "must be positive")
        _require(self.batch_size >= 0, "batch_size", "must not be negative")
        _require(self.workers >= 1, "workers", "must be at least 1")

    def batching(self) -> dict:
        """The decoding functions' batching arguments (what bounds a batch, and how many run at once)."""
        return {"batch_tokens": self.batch_tokens, "batch_size": self.batch_size, "workers": self.workers,
                "max_src_len": self.max_src_len}




DEFAULT_TASK = "translation"  # a config without `task:` (every config before there were other tasks)


@dataclass(frozen=True)
class Config:
    task: str = DEFAULT_TASK  # a registered task (components.py)
    data: Any = field(default_factory=DataConfig)  # its class follows the task: its TaskPart's data_config
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def check(self):
        reported = registry.task(self.task).metrics
        _require(not self.train.metric or self.train.metric in reported, "train.metric",
                 f"{self.train.metric} is not reported by the {self.task} task (its metrics: {', '.join(reported)})")


# --- loading ----------------------------------------------------------------------------------

MAX_CONFIG_BYTES = MiB  # a config file or one --set value; the recipes are a few KB


_Invalid, _require = Invalid, require


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply ``key.path=value`` overrides, and validate it."""
    path = Path(path)
    data = read_regular(path, MAX_CONFIG_BYTES, missing="no such config file", what="config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x})") from None
    try:
        raw = parse_yaml(text, str(path))
    except yaml.YAMLError as e:
        raise UserError(_yaml_error(path, e)) from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the config must be a mapping of sections, not {type(raw).__name__}")
    for item in overrides:
        apply_override(raw, item)
    try:
        notes = migrate(raw)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    for note in notes:
        print(f"any2seq: {path}: {note}", file=sys.stderr)
    try:
        return _build(Config, raw, "")
    except _Invalid as e:  # blame --set for the keys it set, the file for the rest
        set_keys = [item.partition("=")[0].strip() + "." for item in overrides]
        key = e.key.split("[")[0] + "."  # train.betas[0] -> train.betas.
        # --set set this key, a section holding it (--set model.encoder={...}), or a key inside it
        source = "--set" if any(key.startswith(k) or k.startswith(key) for k in set_keys) else f"{path}:"
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
        raise UserError(f"--set {clip(item)}: expected KEY.PATH=VALUE, e.g. --set train.lr=3e-4")
    key = key.strip()
    if len(value) > MAX_CONFIG_BYTES:
        raise UserError(f"--set {clip(key)}: a value of {len(value):,} characters, "
                        f"at most {MAX_CONFIG_BYTES:,}")
    try:
        parsed = parse_yaml(value, f"--set {clip(key)}") if value.strip() else ""
    except yaml.YAMLError:
        raise UserError(f"--set {clip(key)}: cannot parse the value {preview(value)}") from None
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {clip(key)}: {clip(part)} is not a section")
    node[parts[-1]] = parsed


def migrate(raw: dict, saved: bool = False) -> list[str]:
    """Rewrite keys of older versions in place; what was changed, a line each.

    ``train.bf16: true/false`` became ``train.precision: bf16/fp32``. A saved model's config
    (``saved``) also drops a ``train.metric`` its task does not report: older versions wrote the
    default ``bleu`` for every task, and the model is no less usable for it.
    """
    train = raw.get("train")
    if not isinstance(train, dict):
        return []
    notes = []
    if "bf16" in train:
        bf16 = train.pop("bf16")
        if "precision" in train:
            raise UserError("train.bf16 (the older key) and train.precision both given: set only train.precision "
                            "(auto, fp32 or bf16)")
        if isinstance(bf16, bool):
            train["precision"] = "bf16" if bf16 else "fp32"
            notes.append(f"train.bf16: {str(bf16).lower()} is now train.precision: {train['precision']} "
                         "(or drop it: auto measures which is faster on this machine)")
        else:
            train["precision"] = bf16  # let validation name the bad value
    task = raw.get("task", DEFAULT_TASK)
    if saved and task in registry.names("task") and train.get("metric") not in (None, "",
                                                                             *registry.task(task).metrics):
        train["metric"] = ""
    return notes


def config_from_dict(raw: dict, source: str = "config") -> Config:
    migrate(raw, saved=True)
    try:
        return _build(Config, raw, "")
    except _Invalid as e:
        raise UserError(f"{source}: {e.key}: {e.message}") from None


def _build(cls, raw: Any, prefix: str):
    if not isinstance(raw, dict):
        raise _Invalid(prefix or "(top)", f"expected a mapping, got {_show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    if cls is Config:  # the data section's class follows the task
        task = raw.get("task", DEFAULT_TASK)
        try:
            hints["data"] = registry.task(task).data_config
        except registry.UnknownName as e:
            raise _Invalid("task", f"{_show(task)} is not one of {', '.join(e.valid)}") from None
        if "data" not in raw:
            raw = {**raw, "data": {}}
    for key in raw:
        if key not in fields:
            raise _Invalid(f"{prefix}{clip(key)}", f"unknown key (valid keys: {', '.join(fields)})")
    values = {k: _build(_pick_kind(fields[k].metadata["slot"], v, f"{prefix}{k}"), v, f"{prefix}{k}.")
              if "slot" in fields[k].metadata else _convert(hints[k], v, f"{prefix}{k}") for k, v in raw.items()}
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
    if origin is Literal:
        if value not in args:
            raise _Invalid(key, f"{_show(value)} is not one of {', '.join(map(str, args))}")
        return value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[int, ...]: a list of any length
        if not isinstance(value, (list, tuple)):
            raise _Invalid(key, f"expected a list, got {_show(value)}")
        return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
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
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string; a user means the number
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(key, f"expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _Invalid(key, f"expected a string, got {_show(value)}")
        return value
    raise TypeError(f"config type {tp} for {key} is not supported")  # a bug in a config class


def _pick_kind(slot: str, value, key: str) -> type:
    """The config class of the registered ``slot`` component that ``value``'s ``kind`` names (the
    first registered when it names none)."""
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind is None:  # (not a mapping: _build then says a mapping is expected)
        return next(iter(registry.parts(slot).values())).config
    try:
        return registry.lookup(slot, kind).config
    except registry.UnknownName as e:
        raise _Invalid(f"{key}.kind", f"{_show(kind)} is not one of {', '.join(e.valid)}") from None


def _show(value) -> str:
    return f"{type(value).__name__} {preview(value)}" if not isinstance(value, dict) else "a mapping"


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


# --- names earlier versions exported from here ---------------------------------------------------
#
# Component configs lived in this module before each moved beside its component (encoders/, decoders/),
# and the task and metric tables before the registry replaced them. `from any2seq.config import
# RNNEncoderConfig` keeps working: each name is resolved on first use from the registry (not imported
# at the top, which would import every component, and with them this module, in a cycle).

_MOVED_CLASSES = frozenset({"TransformerConfig", "RNNEncoderConfig", "RNNDecoderConfig", "ImageEncoderConfig",
                            "VideoEncoderConfig", "AudioEncoderConfig", "FramesDecoderConfig"})
_DERIVED = {
    "EncoderConfig": lambda: typing.Union[_configs("encoder")],
    "DecoderConfig": lambda: typing.Union[_configs("decoder")],
    "TaskName": lambda: Literal[tuple(registry.names("task"))],
    "DATA_CONFIGS": lambda: {name: part.data_config for name, part in registry.parts("task").items()},
    "AnyDataConfig": lambda: typing.Union[_data_configs()],
    "TASK_METRICS": lambda: task_metrics.TASK_METRICS,
}


def _data_configs() -> tuple[type, ...]:
    return tuple(dict.fromkeys(part.data_config for part in registry.parts("task").values()))


def _configs(slot: str) -> tuple[type, ...]:
    """The registered config classes of a slot, each once (one class may answer to several kinds)."""
    return tuple(dict.fromkeys(part.config for part in registry.parts(slot).values()))


def __getattr__(name: str):
    if name in _DERIVED:
        return _DERIVED[name]()
    if name in _MOVED_CLASSES:  # a registered config class, or a base of one (TransformerConfig)
        for cls in (c for slot in ("encoder", "decoder") for config in _configs(slot) for c in config.__mro__):
            if cls.__name__ == name:
                return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
