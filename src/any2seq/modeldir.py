"""A model directory: what ``any2seq train`` writes and ``any2seq.load`` reads.

    config.yaml         the resolved config          model.safetensors   the best weights
    model.json          the model card (format, metrics, data)
    spm.model           the sentencepiece model(s) (spm.src.model and/or spm.tgt.model if not joint)
    checkpoints/        step_*/ with model, optimiser and trainer state, for --resume and averaging
    metrics.jsonl       training log;  curves.png  its plot
"""
from __future__ import annotations

from pathlib import Path

import yaml

from . import __version__
from .config import MAX_CONFIG_BYTES, Config, config_from_dict, config_to_dict, dump_config
from .errors import UserError, clip, preview
from .fileio import atomic_write, read_regular
from .tasks import get_task
from .yamlio import parse_yaml
from .train.checkpoint import FORMAT_VERSION, load_weights, read_json, write_json

LIMIT_KEYS = {"train.max_steps", "train.max_minutes", "train.max_epochs", "train.patience",
              "train.valid_every", "train.log_every", "train.keep_last", "train.threads"}


def write_config(run_dir: Path, cfg: Config) -> None:
    atomic_write(Path(run_dir) / "config.yaml", dump_config(cfg))


def read_config(run_dir: Path) -> Config:
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such model directory")
    path = Path(run_dir) / "config.yaml"
    data = read_regular(path, MAX_CONFIG_BYTES,
                        missing=f"missing; is {run_dir} a model directory written by `any2seq train`?")
    try:
        raw = parse_yaml(data.decode("utf-8"), str(path))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{path}: not a readable config ({e.__class__.__name__})") from None
    return config_from_dict(raw if isinstance(raw, dict) else {}, source=str(path))


def config_changes(old: Config, new: Config) -> list[str]:
    """Dotted keys whose values differ, apart from the limits a resumed run may change."""
    def flat(d, prefix=""):
        for k, v in d.items():
            yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]
    a, b = dict(flat(config_to_dict(old))), dict(flat(config_to_dict(new)))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in LIMIT_KEYS
                  and not k.startswith("decode."))


# What readers of a card (info, serve, average) use, and the types they expect.
CARD_FIELDS = {"task": (str,), "input": (str,), "output": (str,), "encoder": (str,), "decoder": (str,),
               "parameters": (int,), "step": (int,), "data": (dict,), "valid": (dict,), "averaged": (list,),
               "any2seq_version": (str,)}


def write_card(run_dir: Path, card: dict) -> None:
    write_json(Path(run_dir) / "model.json", {"format_version": FORMAT_VERSION, "any2seq_version": __version__, **card})


def read_card(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such model directory")
    path = run_dir / "model.json"
    card = read_json(path)
    version = card.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise UserError(f"{path}: written by any2seq {clip(card.get('any2seq_version', '?'))} in format "
                        f"{preview(version)}; this any2seq ({__version__}) reads format {FORMAT_VERSION}")
    for key, kinds in CARD_FIELDS.items():
        if key in card and (not isinstance(card[key], kinds) or isinstance(card[key], bool)):
            names = " or ".join(k.__name__ for k in kinds)
            raise UserError(f"{path}: {key!r} must be {names}, got {type(card[key]).__name__} {preview(card[key])}")
    return card


def load_model(run_dir: Path, device="cpu") -> tuple:
    """Model (best weights, eval mode), tokenizers, config and model card from a model directory."""
    run_dir = Path(run_dir)
    card = read_card(run_dir)
    cfg = read_config(run_dir)
    task = get_task(cfg.task)
    toks = task.load_tokenizers(cfg, run_dir)
    model = task.build_model(cfg, toks)
    load_weights(model, run_dir / "model.safetensors")
    return model.to(device).eval(), toks, cfg, card
