"""Every token decoder, behind every text encoder: incremental decoding equals the full forward
pass, padding in the source never changes an output, and decoder state is a value."""
import dataclasses

import pytest
import torch

from any2seq import Decoder, registry
from any2seq.config import config_from_dict
from any2seq.errors import UserError
from any2seq.interfaces import map_state, reorder_state
from any2seq.seq2seq import build_model

V = 20
ATOL = RTOL = 1e-5
TRANSFORMER = {"kind": "transformer", "d_model": 16, "layers": 2, "heads": 2, "ff": 32, "dropout": 0.1}

ENCODERS = {  # all 16 wide, so that dot attention fits every one of them
    "transformer": TRANSFORMER,
    "gru-bidirectional": {"kind": "gru", "embed": 12, "hidden": 8, "layers": 2, "bidirectional": True, "dropout": 0.1},
    "lstm": {"kind": "lstm", "embed": 12, "hidden": 16, "layers": 2, "bidirectional": False, "dropout": 0.1},
}
DECODERS = {
    "transformer-sinusoidal": {**TRANSFORMER, "positions": "sinusoidal"},
    "transformer-learned": {**TRANSFORMER, "positions": "learned", "max_positions": 32},
    **{f"{cell}-{attention}": {"kind": cell, "embed": 12, "hidden": 16, "layers": 2, "dropout": 0.1,
                               "attention": attention}
       for cell in ("rnn", "gru", "lstm") for attention in ("none", "bahdanau", "dot", "general")},
}
# Every registered token decoder: one registered later than these is tested at the sizes below (where its
# config has the key) and its own defaults.
SMALL = {"d_model": 16, "layers": 2, "heads": 2, "ff": 32, "embed": 12, "hidden": 16, "dropout": 0.1}
for kind, part in registry.parts("decoder").items():
    if not part.frames and all(c["kind"] != kind for c in DECODERS.values()):
        keys = {f.name for f in dataclasses.fields(part.config)}
        DECODERS[kind] = {"kind": kind, **{k: v for k, v in SMALL.items() if k in keys}}

every_pair = pytest.mark.parametrize("encoder, decoder", [(e, d) for d in DECODERS for e in ENCODERS])

SRC_LENGTHS = [7, 3, 1, 5]  # padding in every row but the first


def make_model(encoder: str, decoder: str):
    cfg = config_from_dict({"model": {"encoder": ENCODERS[encoder], "decoder": DECODERS[decoder]}}).model
    torch.manual_seed(0)
    return build_model(cfg, V, V).eval()  # eval: dropout off, whatever the config says


def inputs(seed: int = 0, T: int = 6):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(SRC_LENGTHS)
    src = torch.randint(3, V, (len(SRC_LENGTHS), max(SRC_LENGTHS)), generator=g)
    src[torch.arange(src.size(1))[None, :] >= lengths[:, None]] = 0  # pad
    tgt_in = torch.randint(1, V, (len(SRC_LENGTHS), T), generator=g)  # (B, T) decoder input ids
    return src, lengths, tgt_in


def leaves(state) -> list[torch.Tensor]:
    found = []
    map_state(lambda t: found.append(t) or t, state)
    return found


def decode_in_chunks(model, src, lengths, tgt_in, sizes):
    """Feed ``tgt_in`` in pieces of ``sizes`` tokens, each from the state the last one returned."""
    state = model.decoder.init_state(model.encoder(src, lengths), lengths)
    outputs, start = [], 0
    for size in sizes:
        logits, state = model.decoder(tgt_in[:, start: start + size], state)
        outputs.append(logits)
        start += size
    assert start == tgt_in.size(1)
    return torch.cat(outputs, 1), state


@every_pair
@torch.no_grad()
def test_incremental_decoding_equals_the_full_pass(encoder, decoder):
    model = make_model(encoder, decoder)
    assert isinstance(model.decoder, Decoder)
    src, lengths, tgt_in = inputs()
    full, full_state = decode_in_chunks(model, src, lengths, tgt_in, [6])
    assert full.shape == (4, 6, V)
    for sizes in ([1] * 6, [2, 1, 3]):
        out, state = decode_in_chunks(model, src, lengths, tgt_in, sizes)
        torch.testing.assert_close(out, full, atol=ATOL, rtol=RTOL)
        for a, b in zip(leaves(state), leaves(full_state), strict=True):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)


@every_pair
@torch.no_grad()
def test_padding_in_the_source_never_changes_an_output(encoder, decoder):
    model = make_model(encoder, decoder)
    src, lengths, tgt_in = inputs(seed=1)
    batch, _ = decode_in_chunks(model, src, lengths, tgt_in, [6])
    wider = torch.cat([src, torch.zeros(4, 3, dtype=torch.long)], 1)  # three more pad columns
    wide, _ = decode_in_chunks(model, wider, lengths, tgt_in, [6])
    torch.testing.assert_close(wide, batch, atol=ATOL, rtol=RTOL)
    for i, n in enumerate(SRC_LENGTHS):
        alone, _ = decode_in_chunks(model, src[i: i + 1, :n], lengths[i: i + 1], tgt_in[i: i + 1], [6])
        torch.testing.assert_close(alone[0], batch[i], atol=ATOL, rtol=RTOL)


@every_pair
@torch.no_grad()
def test_state_is_a_value_that_reorders_generically(encoder, decoder):
    model = make_model(encoder, decoder)
    src, lengths, tgt_in = inputs(seed=2)
    _, state = decode_in_chunks(model, src, lengths, tgt_in[:, :3], [3])
    before = [t.clone() for t in leaves(state)]

    first, _ = model.decoder(tgt_in[:, 3:], state)
    again, _ = model.decoder(tgt_in[:, 3:], state)  # the same state, used twice
    assert torch.equal(first, again)
    for t, saved in zip(leaves(state), before, strict=True):
        assert torch.equal(t, saved)  # forward made a new state and left this one alone

    index = torch.tensor([3, 0, 0, 2])  # beam search's back-pointers: rows may repeat or vanish
    reordered, _ = model.decoder(tgt_in[index, 3:], reorder_state(state, index))
    torch.testing.assert_close(reordered, first[index], atol=ATOL, rtol=RTOL)


@every_pair
@torch.no_grad()
def test_beams_read_one_copy_of_their_source(encoder, decoder):
    """K rows per source over the memory kept once per source (``PerSource``, as beam search
    expands a state) decode exactly as K rows each with its own copy."""
    model = make_model(encoder, decoder)
    src, lengths, tgt_in = inputs(seed=3)
    state = model.decoder.init_state(model.encoder(src, lengths), lengths)
    sources, K = torch.tensor([2, 0, 3]), 3
    rows = sources.repeat_interleave(K)
    shared = reorder_state(state, rows, sources=sources)
    copied = reorder_state(state, rows)  # every row its own source
    assert sum(t.numel() for t in leaves(shared)) < sum(t.numel() for t in leaves(copied))
    tokens = tgt_in[rows]
    for t in range(3):  # continue a step at a time, with the beams reordered between steps
        a, shared = model.decoder(tokens[:, t: t + 1], shared)
        b, copied = model.decoder(tokens[:, t: t + 1], copied)
        torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)
        back = torch.tensor([1, 1, 0, 5, 3, 4, 8, 6, 6])  # back-pointers within each source's K rows
        shared, copied = reorder_state(shared, back, sources=slice(None)), reorder_state(copied, back)


@torch.no_grad()
def test_bf16_decoding_on_cpu_keeps_attention_keys_and_values_in_float32():
    """A bf16 product of one query with a short cache runs 2-3x slower than float32 on CPU, so
    a bf16 Transformer decoder keeps its cached keys and values (self and cross) in float32;
    its logits stay bf16 and agree with the float32 model's."""
    model = make_model("transformer", "transformer-sinusoidal")
    src, lengths, tgt_in = inputs(seed=4)
    want, _ = decode_in_chunks(model, src, lengths, tgt_in, [1] * 6)
    model.to(torch.bfloat16)
    got, state = decode_in_chunks(model, src, lengths, tgt_in, [1] * 6)
    assert got.dtype == torch.bfloat16
    assert {t.dtype for t in leaves(state) if t.is_floating_point()} == {torch.float32}
    torch.testing.assert_close(got.float(), want, atol=0.1, rtol=0.05)
    full, _ = decode_in_chunks(model, src, lengths, tgt_in, [6])
    torch.testing.assert_close(got, full, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("decoder", ["transformer-sinusoidal", "gru-bahdanau", "lstm-general"])
@torch.no_grad()
def test_a_memory_of_another_width_is_bridged(decoder):
    encoder = {"kind": "gru", "embed": 12, "hidden": 12, "bidirectional": True, "dropout": 0.0}  # 24 wide
    cfg = config_from_dict({"model": {"encoder": encoder, "decoder": DECODERS[decoder]}}).model
    model = build_model(cfg, V, V).eval()
    src, lengths, tgt_in = inputs()
    full, _ = decode_in_chunks(model, src, lengths, tgt_in, [6])
    step, _ = decode_in_chunks(model, src, lengths, tgt_in, [1] * 6)
    assert full.shape == (4, 6, V)
    torch.testing.assert_close(step, full, atol=ATOL, rtol=RTOL)


def test_dot_attention_needs_equal_widths():
    encoder = {"kind": "gru", "embed": 12, "hidden": 12, "bidirectional": True}  # 24 wide
    cfg = config_from_dict({"model": {"encoder": encoder, "decoder": DECODERS["gru-dot"]}}).model
    with pytest.raises(UserError, match="model.decoder.attention.*general"):
        build_model(cfg, V, V)
