"""Any encoder pairs with any decoder by configuration alone: every pair trains two steps and decodes."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from any2seq import registry
from any2seq.config import config_from_dict
from any2seq.data import Batch, Items, collate_items
from any2seq.inference import SearchOptions, decode_items
from any2seq.interfaces import Encoder
from any2seq.seq2seq import FrameSeq2Seq, build_model

V, B, FRAME = 20, 3, (1, 16, 16)
# Small sizes for whichever of these keys a component's config has; the tables below list every
# registered encoder and decoder, so one registered later is paired with all the others at these
# sizes and its own defaults.
SMALL = {"d_model": 32, "layers": 1, "heads": 2, "ff": 64, "embed": 16, "hidden": 16, "width": 8, "stages": 2,
         "n_mels": 16, "patch": 4, "dropout": 0.0}
VARIANTS = {("encoder", "lstm"): {"bidirectional": False},  # beside the bidirectional GRU
            ("decoder", "rnn"): {"attention": "none"}, ("decoder", "lstm"): {"attention": "general"}}
NEEDS_A_FOLDER = {"hf"}  # a saved HF model: tests/hf/test_hf_encoder.py pairs it with the decoders


def small_config(slot: str, kind: str) -> dict:
    keys = {f.name for f in dataclasses.fields(registry.lookup(slot, kind).config)}
    return {"kind": kind, **{k: v for k, v in SMALL.items() if k in keys}, **VARIANTS.get((slot, kind), {})}


ENCODERS = {kind: small_config("encoder", kind) for kind in registry.names("encoder") if kind not in NEEDS_A_FOLDER}
DECODERS = {kind: small_config("decoder", kind) for kind in registry.names("decoder")}


class SeedStyleEncoder(Encoder):
    """A user's own encoder written against the seed's interface: returns (outputs, hidden)."""

    def __init__(self, vocab: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.RNN(hidden, hidden, batch_first=True)
        self.out_dim = hidden

    def forward(self, X, *args):
        output, hidden = self.rnn(self.embed(X))
        return output, hidden


def sources(kind: str) -> tuple[Items, str]:
    """A few random sources for an encoder, as the items a task would hand the batcher."""
    g = torch.Generator().manual_seed(0)
    if kind == "image":
        return Items([torch.rand(FRAME, generator=g).numpy() for _ in range(B)], [16] * B, "fixed"), "image"
    if kind == "audio":
        waves = [(0.1 * torch.randn(n, generator=g)).numpy() for n in (1600, 1200, 800)]
        return Items(waves, [len(w) // 320 for w in waves], "sequence"), "audio"
    if kind == "video":
        videos = [torch.rand(n, *FRAME, generator=g).numpy() for n in (3, 2, 3)]
        return Items(videos, [len(v) * 16 for v in videos], "sequence"), "video"
    items = [torch.randint(3, V, (n,), generator=g).tolist() for n in (5, 3, 4)]  # the others read text
    return Items(items, [len(i) for i in items], "tokens"), "tokens"


def targets(decoder: str) -> Items:
    g = torch.Generator().manual_seed(1)
    if registry.decoder(decoder).frames:
        frames = [torch.rand(n, *FRAME, generator=g).numpy() for n in (2, 3, 1)]
        return Items(frames, [len(f) for f in frames], "sequence")
    ids = [torch.randint(3, V, (n,), generator=g).tolist() for n in (4, 2, 3)]
    return Items(ids, [len(i) for i in ids], "tokens")


def make_model(encoder: str, decoder: str):
    custom = SeedStyleEncoder(V, 24) if encoder == "custom" else None
    enc_cfg = ENCODERS["gru"] if custom is not None else ENCODERS[encoder]
    cfg = config_from_dict({"model": {"encoder": enc_cfg, "decoder": DECODERS[decoder], "tie_output": False}})
    frame_shape = FRAME if registry.decoder(decoder).frames else None
    return build_model(cfg.model, V, V, encoder=custom, frame_shape=frame_shape)


def starts_from_the_input(decoder: str) -> bool:
    """A decoder whose config starts from the input's last frame (its own default) needs a video to read."""
    fields = {f.name: f.default for f in dataclasses.fields(registry.decoder(decoder).config)}
    return fields.get("start") == "last_input"


PAIRS = [(e, d) for d in DECODERS for e in [*ENCODERS, "custom"] if e == "video" or not starts_from_the_input(d)]


@pytest.mark.parametrize("encoder,decoder", PAIRS)
def test_every_encoder_pairs_with_every_decoder(encoder, decoder):
    torch.manual_seed(0)
    model = make_model(encoder, decoder)
    src, _ = sources(encoder)
    tgt = targets(decoder)
    batch: Batch = collate_items(src, tgt, range(B))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        loss, n = model.loss(batch)
        assert torch.isfinite(loss) and n == int(batch.tgt_lengths.sum())
        (loss / n).backward()
        optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

    model.eval()
    if isinstance(model, FrameSeq2Seq):
        frames = model.rollout(batch.src, batch.src_lengths, 2, FRAME)
        assert frames.shape == (B, 2, *FRAME) and 0 <= float(frames.min()) and float(frames.max()) <= 1
    else:
        hyps = decode_items(model, src, SearchOptions(beam=2, n_best=2, max_len=6))
        assert len(hyps) == B and all(len(h) == 2 and len(h[0].tokens) <= 6 for h in hyps)
