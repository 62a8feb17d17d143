"""The Transformer config keys an imported model uses, on any model: post-LN layers, activations,
source </s>, decoding from <pad>, a fixed output bias and ids never to output."""
from __future__ import annotations

import pytest
import torch

from any2seq.config import config_from_dict
from any2seq.errors import UserError
from any2seq.interfaces import EOS_ID
from any2seq.seq2seq import build_model

LAYER = {"kind": "transformer", "d_model": 16, "layers": 2, "heads": 2, "ff": 32, "dropout": 0.0}


def _model(encoder=None, decoder=None, seed=0):
    torch.manual_seed(seed)
    cfg = config_from_dict({"model": {"encoder": {**LAYER, **(encoder or {})}, "decoder": {**LAYER, **(decoder or {})}}})
    return build_model(cfg.model, 30, 30).eval()


@pytest.mark.parametrize("activation", ["relu", "gelu", "swish"])
def test_post_ln_incremental_decoding_equals_the_full_pass(activation):
    model = _model({"norm": "post", "activation": activation}, {"norm": "post", "activation": activation})
    src, lengths, tgt = torch.randint(4, 30, (3, 6)), torch.tensor([6, 4, 2]), torch.randint(4, 30, (3, 5))
    with torch.no_grad():
        full, _ = model(src, tgt, lengths)
        state, steps = model.encode(src, lengths), []
        for t in range(tgt.size(1)):
            logits, state = model.decoder(tgt[:, t: t + 1], state)
            steps.append(logits)
    assert torch.allclose(full, torch.cat(steps, dim=1), atol=1e-5)
    assert isinstance(model.encoder.norm, torch.nn.Identity)  # post-LN layers end normalised


def test_encoder_eos_appends_eos_after_each_source():
    with_eos, without = _model({"eos": True}), _model()
    without.load_state_dict(with_eos.state_dict())
    src, lengths = torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2])
    explicit = torch.tensor([[5, 6, 7, EOS_ID], [8, 9, EOS_ID, 0]])
    with torch.no_grad():
        a = with_eos.encoder(src, lengths)
        b = without.encoder(explicit, lengths + 1)
    assert torch.equal(a.mask, b.mask) and torch.allclose(a.states[a.mask], b.states[b.mask], atol=1e-6)


def test_start_bias_and_never_output():
    model = _model(decoder={"start": "pad", "output_bias": True, "never_output": [0, 7]})
    assert model.bos == 0 and not model.decoder.proj.bias.requires_grad
    with torch.no_grad():
        model.decoder.proj.bias[7] = 100.0  # the model would pick 7 at every step
        state = model.encode(torch.randint(4, 30, (2, 5)), torch.tensor([5, 3]))
        log_probs, _ = model.step(torch.zeros(2, dtype=torch.long), state)
    assert torch.isinf(log_probs[:, [0, 7]]).all() and log_probs.argmax(-1).ne(7).all()


def test_defaults_keep_the_old_layout():
    model = _model()
    assert model.bos == 1 and model.decoder.proj.bias is None and not model.never_output
    assert isinstance(model.encoder.norm, torch.nn.LayerNorm)


@pytest.mark.parametrize("decoder, message", [
    ({"never_output": [30]}, "never_output: ids must be in 0..29"),
    ({"never_output": "0"}, "never_output: expected a list"),
    ({"norm": "middle"}, "norm: str 'middle' is not one of pre, post"),
])
def test_bad_values_name_the_key(decoder, message):
    with pytest.raises(UserError, match=message):
        _model(decoder=decoder)
