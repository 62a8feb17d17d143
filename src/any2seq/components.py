"""The built-in components, one line each: ``"module:NAME"`` (an entry point's syntax, relative to
``any2seq``) names the part a module declares. ``registry.py`` reads this table, and every other list of
names (config kinds, task names, metric directions, plots, docs) is derived from it.

Adding an encoder is one file and one line here: a module declaring ``XConfig`` (a frozen dataclass
with ``kind: Literal["x"]``), ``build(cfg, dims)`` and ``X = EncoderPart(XConfig, build)``, and the line
``"encoders.x:X"``. A component outside the package registers itself instead
(``any2seq.registry.register_encoder`` or the ``any2seq.components`` entry point group).
"""
from __future__ import annotations

COMPONENTS = [
    # encoders (the first is the default when a config gives no kind)
    "encoders.text:TRANSFORMER",
    "encoders.text:RNN",  # kind rnn, gru or lstm
    "encoders.image:IMAGE",
    "encoders.video:VIDEO",
    "encoders.audio:AUDIO",
    "encoders.hf:HF",  # a pretrained Hugging Face encoder
    # decoders (likewise)
    "decoders.transformer:TRANSFORMER",
    "decoders.rnn:RNN",
    "decoders.frames:FRAMES",
    "decoders.warp:WARP",  # frames moved by predicted kernels (CDNA)
    "decoders.layers:LAYERS",  # layers of the input's last frame, each moved by its summed motions
    # tasks (a config naming none is translation: config.DEFAULT_TASK)
    "tasks.translation:TASK",
    "tasks.text_generation:TASK",
    "tasks.captioning:TASK",
    "tasks.speech:TASK",
    "tasks.video:VIDEO_PREDICTION",
    "tasks.video:TEXT_TO_VIDEO",
    # metrics: their names and which way is better
    "metrics:LOSS",
    "metrics:BLEU_SCORE",
    "metrics:CHRF_SCORE",
    "metrics:EXACT",
    "metrics:COVERAGE",
    "metrics:WER",
    "metrics:CER",
    "metrics:MSE",
    "metrics:SSIM",
]
