"""Names earlier versions exported from ``any2seq.config`` (and ``task_metrics``) still import, resolved
from the registry: a user's ``from any2seq.config import RNNEncoderConfig`` survives the move of each
component's config beside its component."""
from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from any2seq import config, registry, task_metrics
from any2seq.decoders.frames import FramesDecoderConfig
from any2seq.decoders.rnn import RNNDecoderConfig
from any2seq.encoders.audio import AudioEncoderConfig
from any2seq.encoders.image import ImageEncoderConfig
from any2seq.encoders.text import RNNEncoderConfig, TransformerEncoderConfig
from any2seq.encoders.video import VideoEncoderConfig
from any2seq.nn.transformer import TransformerConfig

MOVED = {"TransformerConfig": TransformerConfig, "RNNEncoderConfig": RNNEncoderConfig,
         "RNNDecoderConfig": RNNDecoderConfig, "ImageEncoderConfig": ImageEncoderConfig,
         "VideoEncoderConfig": VideoEncoderConfig, "AudioEncoderConfig": AudioEncoderConfig,
         "FramesDecoderConfig": FramesDecoderConfig, "TransformerEncoderConfig": TransformerEncoderConfig}


@pytest.mark.parametrize("name", sorted(MOVED))
def test_a_moved_config_class_imports_from_config(name):
    assert getattr(config, name) is MOVED[name]


def test_the_old_tables_are_derived_from_the_registry():
    assert set(typing.get_args(config.EncoderConfig)) == {p.config for p in registry.parts("encoder").values()}
    assert set(typing.get_args(config.DecoderConfig)) == {p.config for p in registry.parts("decoder").values()}
    assert typing.get_args(config.TaskName) == tuple(registry.names("task"))
    assert config.DATA_CONFIGS["speech"] is config.SpeechDataConfig
    assert config.SpeechDataConfig in typing.get_args(config.AnyDataConfig)
    assert config.TASK_METRICS["speech"] == ("wer", ("wer", "cer", "loss"))
    assert task_metrics.TASK_METRICS == config.TASK_METRICS
    assert task_metrics.HIGHER_IS_BETTER["bleu"] and not task_metrics.HIGHER_IS_BETTER["wer"]
    assert config.MAX_LAYERS >= 1


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchConfig"):
        config.NoSuchConfig  # noqa: B018


def test_the_old_import_line_works_in_a_fresh_process():
    """No import cycle: the names resolve when ``any2seq.config`` is the first module imported."""
    line = ("from any2seq.config import RNNEncoderConfig, TransformerConfig, FramesDecoderConfig, EncoderConfig; "
            "print(RNNEncoderConfig().kind, TransformerConfig.__name__, FramesDecoderConfig().kind)")
    out = subprocess.run([sys.executable, "-c", line], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["gru", "TransformerConfig", "frames"]
