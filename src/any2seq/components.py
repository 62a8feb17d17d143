"""The built-in components, one line each; ``registry.py`` reads this table, and every other list of
names (config kinds, CLI choices, metric directions, docs, tests) is derived from it.

Adding an encoder: a module declaring ``XConfig`` (with ``kind: Literal["x"]``), ``build(cfg, dims)``
and ``X = EncoderPart(XConfig, build)``, and a line here. A component outside the package registers
itself instead (``any2seq.registry.register_encoder`` or the ``any2seq.components`` entry point group).
"""
from __future__ import annotations

from . import metrics
from .decoders import frames as frames_decoder
from .decoders import rnn as rnn_decoder
from .decoders import transformer as transformer_decoder
from .encoders import audio, image, text, video
from .tasks import captioning, speech, text_generation, translation
from .tasks import video as video_tasks

COMPONENTS = [
    # encoders (the first is the default when a config gives no kind)
    text.TRANSFORMER,
    text.RNN,
    image.IMAGE,
    video.VIDEO,
    audio.AUDIO,
    # decoders (likewise)
    transformer_decoder.TRANSFORMER,
    rnn_decoder.RNN,
    frames_decoder.FRAMES,
    # tasks (the first is the default)
    translation.TASK,
    text_generation.TASK,
    captioning.TASK,
    speech.TASK,
    video_tasks.VIDEO_PREDICTION,
    video_tasks.TEXT_TO_VIDEO,
    # metrics: their names and which way is better
    metrics.LOSS,
    metrics.BLEU_SCORE,
    metrics.CHRF_SCORE,
    metrics.EXACT,
    metrics.COVERAGE,
    metrics.WER,
    metrics.CER,
    metrics.MSE,
    metrics.SSIM,
]
