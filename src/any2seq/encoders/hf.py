"""A pretrained Hugging Face encoder as an any2seq ``Encoder``: ViT (Dosovitskiy et al., 2021), CLIP's
vision tower (Radford et al., 2021), wav2vec 2.0 (Baevski et al., 2020), Whisper's encoder (Radford
et al., 2022) or BERT (Devlin et al., 2019) in front of any decoder, as HF's VisionEncoderDecoder and
SpeechEncoderDecoder pair them, with the processor's work inside ``forward`` (``hf_features.py``).

The model is built from the config.json text kept in the any2seq config (``HFEncoderConfig``), so a
saved model reloads without the original folder; ``pretrained_state`` reads the folder's weights once,
when training starts. Poolers and other layers the hidden states never pass through are left out:
under DDP every trained parameter must receive a gradient. ``transformers`` is imported only here.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..interfaces import Encoder, Memory, lengths_to_mask
from ..registry import EncoderPart, Sizes
from .hf_config import FAMILIES, HFEncoderConfig
from .hf_features import ImageInput, TextInput, WaveformInput, WhisperInput

__all__ = ["HFEncoder", "HFEncoderConfig", "build_hf_encoder", "pretrained_state"]


def transformers_module():
    try:
        import transformers
    except ImportError:
        raise UserError("model.encoder.kind: hf needs the transformers package (pip install 'any2seq[hf]')") from None
    return transformers


@dataclass(frozen=True)
class Family:
    """How one model_type is built: the class for a fresh build and for ``from_pretrained`` (Whisper's
    checkpoints hold the whole model: its encoder is ``part``), and the layers to leave out."""
    build: str
    pretrained: str
    kwargs: dict = field(default_factory=dict)
    part: str = ""
    unused: tuple[str, ...] = ()  # modules replaced by nn.Identity: they never touch the hidden states
    width: str = "hidden_size"  # the config key of the hidden states' width


NO_POOLER = {"add_pooling_layer": False}
BUILDS = {
    "vit": Family("ViTModel", "ViTModel", NO_POOLER),
    "clip_vision_model": Family("CLIPVisionModel", "CLIPVisionModel", unused=("post_layernorm",)),  # pools only
    "wav2vec2": Family("Wav2Vec2Model", "Wav2Vec2Model"),
    "whisper": Family("transformers.models.whisper.modeling_whisper:WhisperEncoder", "WhisperModel", part="encoder",
                      width="d_model"),
    "bert": Family("BertModel", "BertModel", NO_POOLER),
}


def _class(name: str):
    """``"BertModel"`` from transformers, or ``"module:Class"``."""
    module, _, cls = name.rpartition(":")
    return getattr(importlib.import_module(module or "transformers"), cls)


def hf_config_object(cfg: HFEncoderConfig):
    """The ``transformers`` config object of ``cfg.hf_config``."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    raw = json.loads(cfg.hf_config)
    return CONFIG_MAPPING[raw["model_type"]].from_dict(raw)


def _finish(model: nn.Module, family: Family) -> nn.Module:
    for name, module in list(model.named_modules()):
        parent, _, child = name.rpartition(".")
        if child in family.unused:
            setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
    return model


def pretrained_state(cfg: HFEncoderConfig) -> dict[str, Tensor]:
    """The folder's weights, named as in the encoder ``build_hf_encoder`` makes (``transformers``
    reads them: safetensors, or ``pytorch_model.bin`` with ``weights_only=True``; nothing is fetched)."""
    transformers = transformers_module()
    family = BUILDS[cfg.model_type()]
    logging, verbosity = transformers.logging, transformers.logging.get_verbosity()
    logging.set_verbosity_error()  # its report lists the pooler's weights left out, as intended
    logging.disable_progress_bar()
    try:
        model = _class(family.pretrained).from_pretrained(cfg.path, config=hf_config_object(cfg), local_files_only=True,
                                                           dtype=torch.float32, weights_only=True, **family.kwargs)
    # no weights, a truncated file, a refused pickle: transformers raises OSError, ValueError or pickle's
    # UnpicklingError (not imported here: no source file imports pickle, tests/train/test_checkpoint.py)
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"model.encoder.path: {cfg.path}: cannot read its weights ({first[:160]})") from None
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()
    return _finish(model.get_submodule(family.part), family).state_dict()


class HFEncoder(Encoder):
    """Source (images, waveforms or ids) and lengths -> Memory over the HF model's last hidden states."""

    def __init__(self, model: nn.Module, inputs: nn.Module, out_dim: int):
        super().__init__()
        self.inputs, self.model, self.out_dim = inputs, model, out_dim

    def forward(self, src: Tensor, src_lengths: Tensor | None = None) -> Memory:
        kwargs, positions = self.inputs(src, src_lengths)
        states = self.model(**kwargs).last_hidden_state  # (B, S, D)
        if positions is None:  # images: every patch is real
            return Memory(states, torch.ones(states.shape[:2], dtype=torch.bool, device=states.device))
        # Whisper pads every input to 30 s: the decoder attends to the real positions only
        width = min(states.size(1), int(positions.max()))
        return Memory(states[:, :width], lengths_to_mask(positions.clamp(max=width), width))  # (B, S', D), (B, S')


def _inputs(cfg: HFEncoderConfig, config, pre: dict, vocab: int) -> nn.Module:
    family = cfg.family()
    if family == "image":
        # ViT's processor normalises with 0.5 by default, CLIP's with its own statistics
        clip = cfg.model_type() == "clip_vision_model"
        mean = pre.get("image_mean", [0.48145466, 0.4578275, 0.40821073] if clip else [0.5] * 3)
        std = pre.get("image_std", [0.26862954, 0.26130258, 0.27577711] if clip else [0.5] * 3)
        channels = config.num_channels
        return ImageInput(channels, config.image_size, mean[:channels], std[:channels])
    if family == "audio":
        rate = pre.get("sampling_rate", 16000)
        attention_mask = pre.get("return_attention_mask", config.feat_extract_norm == "layer")
        return WaveformInput(cfg.sample_rate, rate, normalize=pre.get("do_normalize", True),
                             attention_mask=attention_mask, kernels=config.conv_kernel, strides=config.conv_stride)
    if family == "whisper":
        return _whisper_input(cfg, config, pre)
    if vocab > config.vocab_size:
        raise UserError(f"model.encoder: the source tokenizer has {vocab} ids, the {cfg.model_type()} model "
                        f"{config.vocab_size}")
    return TextInput(config.max_position_embeddings)


def _whisper_input(cfg: HFEncoderConfig, config, pre: dict) -> WhisperInput:
    from transformers import WhisperFeatureExtractor

    rate, hop, n_fft = pre.get("sampling_rate", 16000), pre.get("hop_length", 160), pre.get("n_fft", 400)
    frames = 2 * config.max_source_positions  # what the encoder accepts: 3000 for Whisper
    bank = WhisperFeatureExtractor(feature_size=config.num_mel_bins, sampling_rate=rate, hop_length=hop,
                                   n_fft=n_fft, chunk_length=max(1, frames * hop // rate)).mel_filters
    return WhisperInput(cfg.sample_rate, rate, n_fft=n_fft, hop=hop, frames=frames, mel=bank)


def freeze(model: nn.Module, how: str) -> None:
    if how == "all":
        model.requires_grad_(False)
    elif how == "feature_encoder":  # wav2vec2's convolutions (the config check allows no other model)
        model.freeze_feature_encoder()


def build_hf_encoder(cfg: HFEncoderConfig, vocab: int = 0) -> HFEncoder:
    """The encoder ``cfg`` describes, with fresh weights (``pretrained_state`` has the folder's)."""
    transformers_module()
    if not cfg.hf_config:  # train fills it from the folder; a config built in Python may not have
        raise UserError(f"model.encoder.hf_config: empty; `any2seq train` reads it from {cfg.path}/config.json")
    if cfg.model_type() not in BUILDS:
        raise UserError(f"model.encoder.hf_config: model_type {cfg.model_type()!r} is not supported "
                        f"(supported: {', '.join(FAMILIES)})")
    family, config = BUILDS[cfg.model_type()], hf_config_object(cfg)
    model = _finish(_class(family.build)(config, **family.kwargs), family)
    freeze(model, cfg.freeze)
    inputs = _inputs(cfg, config, json.loads(cfg.hf_preprocessor or "{}"), vocab)
    return HFEncoder(model, inputs, getattr(config, family.width))


def build(cfg: HFEncoderConfig, dims: Sizes) -> HFEncoder:
    return build_hf_encoder(cfg, dims.src_vocab)


HF = EncoderPart(HFEncoderConfig, build)
