"""The contracts interfaces.py declares: an encoder's ``out_dim``, a decoder's ``input_embedding()`` /
``output_embedding()`` (tying) and ``features`` (the fused loss). A component lacking one gets one line
naming its class and the missing piece, never an AttributeError from deep inside the model."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from any2seq.config import config_from_dict
from any2seq.data.batching import collate
from any2seq.errors import UserError
from any2seq.interfaces import Decoder, Encoder, MissingContract, as_memory
from any2seq.seq2seq import Seq2Seq, build_model

V = 24
SMALL = {"d_model": 16, "layers": 1, "heads": 2, "ff": 32, "dropout": 0.0}


def model_config(**model):
    return config_from_dict({"model": model}).model


class PlainEncoder(Encoder):
    def __init__(self, width: int = 16):
        super().__init__()
        self.embed = nn.Embedding(V, width)
        self.out_dim = width

    def forward(self, src, *args):
        return self.embed(src)  # (B, S, D)


class LogitsOnlyDecoder(Decoder):
    """Declares an output layer but no ``features``: the fused loss cannot use it."""

    def __init__(self):
        super().__init__()
        self.embed, self.proj = nn.Embedding(V, 16), nn.Linear(16, V, bias=False)

    def init_state(self, enc_outputs, *args):
        return {"memory": as_memory(enc_outputs, *args).states}

    def forward(self, X, state):
        return self.proj(self.embed(X) + state["memory"].mean(1, keepdim=True)), state

    def output_embedding(self):
        return self.proj


def batch():
    return collate([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14]], range(2))


def test_an_encoder_without_out_dim_is_named_in_one_line():
    encoder = PlainEncoder()
    del encoder.out_dim
    with pytest.raises(UserError) as e:
        build_model(model_config(decoder={"kind": "transformer", **SMALL}), V, V, encoder=encoder)
    assert str(e.value).startswith("PlainEncoder does not declare out_dim") and "\n" not in str(e.value)


def test_share_embeddings_needs_the_encoders_input_embedding():
    cfg = model_config(encoder={"kind": "image", "width": 8, "stages": 2, **SMALL},
                       decoder={"kind": "transformer", **SMALL}, share_embeddings=True)
    with pytest.raises(UserError, match=r"^model.share_embeddings: ImageEncoder declares no input_embedding\(\)"):
        build_model(cfg, V, V)


@pytest.mark.parametrize("decoder", [{"kind": "transformer", **SMALL},
                                     {"kind": "gru", "embed": 16, "hidden": 16, "dropout": 0.0}])
def test_token_decoders_declare_their_embeddings_and_the_fused_loss_equals_plain_cross_entropy(decoder):
    torch.manual_seed(0)
    model = build_model(model_config(encoder={"kind": "transformer", **SMALL}, decoder=decoder), V, V).eval()
    assert model.decoder.output_embedding().weight is model.decoder.input_embedding().weight  # tied
    b = batch()
    fused, n = model.loss(b)
    logits, _ = model(b.src, torch.cat([torch.ones_like(b.tgt[:, :1]), b.tgt[:, :-1]], 1), b.src_lengths)
    plain = nn.functional.cross_entropy(logits.flatten(0, 1), b.tgt.flatten(), ignore_index=0, reduction="sum")
    assert n == int(b.n_tokens)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)


def test_a_decoder_with_an_output_layer_but_no_features_is_named_in_one_line():
    model = Seq2Seq(PlainEncoder(), LogitsOnlyDecoder(), vocab=V)
    with pytest.raises(MissingContract) as e:
        model.loss(batch())
    assert str(e.value) == "LogitsOnlyDecoder does not declare features(X, state), which its output_embedding() needs"


def test_tying_needs_both_embeddings():
    from any2seq.seq2seq import tie_output

    with pytest.raises(UserError) as e:
        tie_output(LogitsOnlyDecoder())
    assert str(e.value) == ("model.tie_output: LogitsOnlyDecoder declares no input_embedding(); "
                            "set tie_output: false")


def test_a_task_asks_the_encoders_config_and_one_without_the_answer_is_named_in_one_line():
    from any2seq.tasks import get_task

    cfg = config_from_dict({"task": "captioning", "model": {"encoder": {"kind": "transformer", **SMALL}}})
    with pytest.raises(MissingContract) as e:
        get_task("captioning").read_inputs(cfg, ["photo.png"])
    assert str(e.value) == ("TransformerEncoderConfig does not declare input_channels(), "
                            "the colour channels of the images it reads")


def test_an_outside_encoder_config_that_is_no_encoder_config_is_named_in_one_line_too():
    from dataclasses import dataclass

    from any2seq.errors import UserError
    from any2seq.interfaces import encoder_config

    @dataclass(frozen=True)
    class PlainConfig:
        kind: str = "plain"

    with pytest.raises(UserError, match=r"^PlainConfig does not declare EncoderConfig's methods"):
        encoder_config(PlainConfig())


@pytest.mark.parametrize("subsample", [1, 2, 4, 8])
def test_the_audio_encoders_declared_memory_length_is_the_length_of_the_memory_it_makes(subsample):
    from any2seq.encoders.audio import AudioEncoderConfig, build
    from any2seq.registry import Sizes

    cfg = AudioEncoderConfig(n_mels=16, subsample=subsample, d_model=16, layers=1, heads=2, ff=32)
    samples = torch.arange(0, 4000, 37)
    made = build(cfg, Sizes()).output_lengths(samples)  # the mask's row sums of the memory
    declared = torch.tensor([cfg.memory_length(int(n)) for n in samples])
    assert torch.equal(declared, made)
