"""What ``any2seq train`` reads from the folder of an ``encoder: {kind: hf}``: its config.json and
preprocessor_config.json into the run's config (so the model directory rebuilds the encoder alone),
and, when a run starts afresh, its weights."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..config import Config, config_from_dict, config_to_dict
from ..encoders.hf_config import FAMILIES, HFEncoderConfig
from ..errors import UserError
from ..train.checkpoint import read_json

# What each input family needs the task to give (tasks' ``input_kind``).
INPUTS = {"image": "image", "audio": "audio", "whisper": "audio", "text": "text"}
# Layer drop skips whole layers at random in training: their parameters get no gradient in that
# step, which DDP refuses (and wav2vec2's configs default to 0.1). Turned off; the rest is kept.
NO_LAYERDROP = {"wav2vec2": {"layerdrop": 0.0}, "whisper": {"encoder_layerdrop": 0.0}}


def read_hf_config(folder: Path) -> dict:
    """config.json, a supported model_type (a full CLIP's vision tower taken out), layer drop off."""
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"model.encoder.path: {path}: missing; is {folder} a folder save_pretrained wrote?")
    hf = read_json(path)
    model_type = hf.get("model_type")
    if model_type not in FAMILIES:
        raise UserError(f"{path}: model_type {str(model_type)[:40]!r} is not supported by encoder kind hf "
                        f"(supported: {', '.join(FAMILIES)})")
    if model_type == "clip":
        hf = {**hf.get("vision_config", {}), "model_type": "clip_vision_model"}
    return {**hf, **NO_LAYERDROP.get(model_type, {})}


def with_hf_encoder(cfg: Config, saved: HFEncoderConfig | None = None) -> Config:
    """``cfg`` with ``model.encoder``'s hf_config, hf_preprocessor and sample_rate read from its folder
    and the task; unchanged for other encoders, or when the folder is gone and the config already
    holds them (a saved model's config). ``saved``: the encoder config of a run being resumed, which
    stands in for its folder once that is gone (the run needs nothing else from it)."""
    from ..tasks import get_task

    enc = cfg.model.encoder
    if enc.kind != "hf":
        return cfg
    folder = Path(enc.path)
    if not enc.path or not folder.is_dir():
        if enc.hf_config:
            return cfg
        if isinstance(saved, HFEncoderConfig) and saved.path == enc.path and saved.hf_config:
            enc = replace(enc, hf_config=saved.hf_config, hf_preprocessor=saved.hf_preprocessor,
                          sample_rate=saved.sample_rate)
            return replace(cfg, model=replace(cfg.model, encoder=enc))
        raise UserError(f"model.encoder.path: {enc.path!r}: no such directory (the folder save_pretrained wrote)")
    hf = read_hf_config(folder)
    family = FAMILIES[hf["model_type"]]
    task = get_task(cfg.task)
    if INPUTS[family] != task.input_kind:
        raise UserError(f"model.encoder.path: a {hf['model_type']} encoder reads {INPUTS[family]}; the {cfg.task} "
                        f"task gives {task.input_kind}")
    pre_path = folder / "preprocessor_config.json"
    pre = read_json(pre_path) if pre_path.is_file() else {}
    rate = cfg.data.sample_rate if INPUTS[family] == "audio" else 0  # the speech task's waveforms
    enc = replace(enc, hf_config=json.dumps(hf, sort_keys=True), hf_preprocessor=json.dumps(pre, sort_keys=True),
                  sample_rate=rate)
    # validated as a config file is (freeze: feature_encoder on a model without one, ...)
    return config_from_dict(config_to_dict(replace(cfg, model=replace(cfg.model, encoder=enc))),
                            source=f"model.encoder.path {folder}")


def load_pretrained_encoder(model, cfg: Config) -> None:
    """Start an hf encoder from its folder's weights (a run that neither resumes nor has train.init)."""
    if cfg.model.encoder.kind != "hf":
        return
    from ..encoders.hf import pretrained_state

    model.encoder.model.load_state_dict(pretrained_state(cfg.model.encoder))
