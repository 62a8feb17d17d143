"""The built-in components, one line each; ``registry.py`` reads this table, and every other list of
names (config kinds, CLI choices, metric directions, docs, tests) is derived from it.

Adding an encoder: a module declaring ``XConfig`` (with ``kind: Literal["x"]``), ``build(cfg, dims)``
and ``X = EncoderPart(XConfig, build)``, and a line here. A component outside the package registers
itself instead (``any2seq.registry.register_encoder`` or the ``any2seq.components`` entry point group).
"""
from __future__ import annotations

from .decoders import frames as frames_decoder
from .decoders import rnn as rnn_decoder
from .decoders import transformer as transformer_decoder
from .encoders import audio, image, text, video

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
]
