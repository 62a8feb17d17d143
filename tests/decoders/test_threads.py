"""Decoders keep nothing on ``self`` while decoding: threads sharing one model (``decode.workers``)
give what one thread gives, even past the position tables built at construction."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from any2seq.config import config_from_dict
from any2seq.inference import SearchOptions, decode_ids
from any2seq.seq2seq import build_model

V = 16
SMALL = {"d_model": 16, "layers": 1, "heads": 2, "ff": 32, "dropout": 0.0}


def twice_at_once(fn):
    with ThreadPoolExecutor(2) as pool:
        return [f.result() for f in [pool.submit(fn), pool.submit(fn)]]


def test_token_decoding_past_the_position_table_in_two_threads():
    layer = {"kind": "transformer", **SMALL, "max_positions": 4}  # sinusoidal: 4 rows built, more computed
    # never </s>: every output runs to its 9 tokens
    cfg = config_from_dict({"model": {"encoder": layer, "decoder": {**layer, "never_output": [2]}}}).model
    torch.manual_seed(0)
    model = build_model(cfg, V, V).eval()
    sources = [[3, 4, 5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 3, 4]]
    opts = SearchOptions(beam=2, max_len_a=0.0, max_len_b=9, length_penalty=0.0)  # up to 9 tokens: past the table

    def decode():
        return [[(h.tokens, h.score) for h in hyps] for hyps in decode_ids(model, sources, opts)]

    alone = decode()
    assert twice_at_once(decode) == [alone, alone]
    assert model.encoder.embed.table.size(0) == model.decoder.embed.table.size(0) == 4  # nothing grown on self


def test_frame_rollout_past_the_time_table_in_two_threads():
    cfg = config_from_dict({"model": {"encoder": {"kind": "transformer", **SMALL},
                                      "decoder": {"kind": "frames", **SMALL, "patch": 4}}}).model
    torch.manual_seed(0)
    model = build_model(cfg, 10, 0, frame_shape=(1, 8, 8)).eval()
    model.decoder.time = model.decoder.time[:2]  # a 2-frame table: rolling out 5 frames goes past it
    src, lengths = torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2])

    def rollout():
        return model.rollout(src, lengths, 5, (1, 8, 8))

    alone = rollout()
    for frames in twice_at_once(rollout):
        assert torch.equal(frames, alone)
    assert model.decoder.time.size(0) == 2  # nothing grown on self
