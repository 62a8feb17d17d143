"""The config of a pretrained Hugging Face encoder (``encoder: {kind: hf, path: DIR}``), kept apart from
``encoders/hf.py`` so that loading a config never imports torch or transformers (the command line
answers a config mistake at once)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ..config_checks import require as _require
from ..interfaces import EncoderConfig

# model_type in the folder's config.json -> what its input is; anything else is refused, naming these
FAMILIES = {"vit": "image", "clip_vision_model": "image", "clip": "image", "wav2vec2": "audio",
            "whisper": "whisper", "bert": "text"}
# a waveform's batching size (wav2vec2, Whisper): 40 ms of 8 kHz audio per position, like the audio encoder's
# hop 80 x subsample 4; it sizes batches, nothing more
SAMPLES_PER_POSITION = 320


@dataclass(frozen=True)
class HFEncoderConfig(EncoderConfig):
    """A local HF encoder (ViT, CLIP vision, wav2vec2, Whisper's encoder, BERT) in front of any decoder.

    ``any2seq train`` fills ``hf_config``, ``hf_preprocessor`` and ``sample_rate`` from the folder and
    the task, so the saved config.yaml rebuilds the encoder without the folder (the weights are in
    model.safetensors); a user leaves them out.
    """
    kind: Literal["hf"] = "hf"
    path: str = ""  # the folder save_pretrained wrote: config.json, weights, preprocessor/tokenizer files
    freeze: Literal["none", "all", "feature_encoder"] = "none"  # feature_encoder: wav2vec2's convolutions
    channels: int = 3  # images the task reads: 1 grey, 3 RGB (repeated or averaged to the model's channels)
    sample_rate: int = 0  # the rate of the waveforms the task gives (speech: data.sample_rate); 0 = unset
    hf_config: str = ""  # the folder's config.json (JSON text), filled in by train
    hf_preprocessor: str = ""  # its preprocessor_config.json (JSON text, "{}" if none), filled in by train

    def input_channels(self) -> int:
        return self.channels

    def memory_length(self, size: int) -> int:
        return 1 + size // SAMPLES_PER_POSITION

    def own_tokenizer(self) -> bool:
        return True  # the folder's tokenizer: the ids its embeddings were trained on

    def check(self):
        _require(bool(self.path or self.hf_config), "path", "an hf encoder needs the folder of a saved HF model")
        _require(self.channels in (1, 3), "channels", f"must be 1 (grey) or 3 (RGB), got {self.channels}")
        _require(0 <= self.sample_rate <= 384_000, "sample_rate", f"must be in 0..384000, got {self.sample_rate}")
        for key in ("hf_config", "hf_preprocessor"):
            text = getattr(self, key)
            try:
                ok = not text or isinstance(json.loads(text), dict)
            except ValueError:
                ok = False
            _require(ok, key, "must be a JSON object (the text of the folder's file)")
        model_type = json.loads(self.hf_config).get("model_type") if self.hf_config else None
        _require(model_type in (None, *FAMILIES), "hf_config",
                 f"model_type {model_type!r} is not supported (supported: {', '.join(FAMILIES)})")
        _require(self.freeze != "feature_encoder" or model_type in (None, "wav2vec2"), "freeze",
                 f"feature_encoder is wav2vec2's convolutional front end; {model_type} has none (use none or all)")

    def model_type(self) -> str:
        return json.loads(self.hf_config)["model_type"]

    def family(self) -> str:
        """image, audio, whisper or text: which preprocessing ``forward`` applies."""
        return FAMILIES[self.model_type()]
