"""``build_model``: every encoder pairs with every decoder, a user's own encoder included; the
label-shift contract of ``Seq2Seq.loss``; saved weights reload to bit-identical logits."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from any2seq import Encoder
from any2seq.config import TrainConfig, config_from_dict
from any2seq.data import BatchStream, collate, write_token_array
from any2seq.errors import UserError
from any2seq.inference import SearchOptions, decode_ids
from any2seq.interfaces import BOS_ID, EOS_ID, PAD_ID
from any2seq.seq2seq import build_model
from any2seq.train.checkpoint import load_weights, save_tensors, unique_tensors
from any2seq.train.distributed import Dist
from any2seq.train.loop import TrainerState, fit

V = 24  # ids 0-2 are pad, bos, eos; 3.. are words

TRANSFORMER = {"kind": "transformer", "d_model": 16, "layers": 1, "heads": 2, "ff": 32, "dropout": 0.0}
GRU_ENCODER = {"kind": "gru", "embed": 16, "hidden": 12, "bidirectional": True, "dropout": 0.0}  # width 24
GRU_DECODER = {"kind": "gru", "embed": 16, "hidden": 16, "dropout": 0.0, "attention": "bahdanau"}


def model_config(encoder: dict, decoder: dict, **model):
    return config_from_dict({"model": {"encoder": encoder, "decoder": decoder, **model}}).model


def copy_task(n: int, seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    """Sources of 2-7 random words; the target is the source reversed."""
    g = torch.Generator().manual_seed(seed)
    src = [torch.randint(3, V, (int(torch.randint(2, 8, (1,), generator=g)),), generator=g).tolist() for _ in range(n)]
    return src, [s[::-1] for s in src]


def held_out_loss(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        loss, n = model.loss(batch)
    model.train()
    return float(loss) / n


def train_steps(model, batches, steps: int, lr: float = 3e-3) -> None:
    """The minimal training loop: ``model.loss(batch)`` and an optimiser."""
    optimizer = torch.optim.Adam(model.parameters(), lr)
    model.train()
    for step in range(steps):
        loss, n = model.loss(batches[step % len(batches)])
        optimizer.zero_grad()
        (loss / n).backward()
        optimizer.step()


# --- the label shift ----------------------------------------------------------------------------

def test_loss_is_cross_entropy_of_the_shifted_target_against_the_target():
    torch.manual_seed(0)
    model = build_model(model_config(TRANSFORMER, TRANSFORMER), V, V, label_smoothing=0.1).eval()
    src, tgt = [[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14, 15]]
    batch = collate(src, tgt, [0, 1])

    # By hand: the decoder reads <bos> y_1 .. y_n and must predict y_1 .. y_n <eos>.
    dec_in = torch.tensor([[BOS_ID, 10, 11, PAD_ID, PAD_ID], [BOS_ID, 12, 13, 14, 15]])
    labels = torch.tensor([[10, 11, EOS_ID, PAD_ID, PAD_ID], [12, 13, 14, 15, EOS_ID]])
    assert batch.tgt.tolist() == labels.tolist()
    logits, _ = model(batch.src, dec_in, batch.src_lengths)  # (B, T, V)
    real = labels != PAD_ID
    expected = -logits.log_softmax(-1).gather(2, labels[:, :, None]).squeeze(2)[real].sum()

    loss, n_tokens = model.loss(batch)
    assert n_tokens == 8  # target tokens with their eos, no padding
    torch.testing.assert_close(loss, expected)  # eval: no label smoothing

    model.train()  # dropout is 0, so only the label smoothing changes
    loss, _ = model.loss(batch)
    smoothed = F.cross_entropy(logits[real], labels[real], label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(loss, smoothed)


# --- encoders x decoders ------------------------------------------------------------------------

@pytest.mark.parametrize("encoder, decoder", [(GRU_ENCODER, TRANSFORMER), (TRANSFORMER, GRU_DECODER)],
                         ids=["gru-encoder+transformer-decoder", "transformer-encoder+gru-attention-decoder"])
def test_mixed_encoder_and_decoder_build_and_train(encoder, decoder):
    torch.manual_seed(0)
    model = build_model(model_config(encoder, decoder), V, V)
    src, tgt = copy_task(32)
    batches = [collate(src, tgt, range(i, i + 8)) for i in range(0, 32, 8)]
    before = held_out_loss(model, batches[0])
    train_steps(model, batches, 12)
    after = held_out_loss(model, batches[0])
    assert torch.isfinite(torch.tensor([before, after])).all()
    assert after < before - 0.3, (before, after)


# --- a user's own encoder -------------------------------------------------------------------------

class MyGRUEncoder(Encoder):
    """Written as the seed's example is, batch-first: returns (outputs (B, S, D), hidden)."""

    def __init__(self, vocab, embed_size, hidden_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed_size)
        self.rnn = nn.GRU(embed_size, hidden_size, batch_first=True)
        self.out_dim = hidden_size

    def forward(self, X, *args):
        output, hidden = self.rnn(self.embedding(X))
        return output, hidden


class MyConvEncoder(Encoder):
    """Returns a plain (B, S, D) tensor."""

    def __init__(self, vocab, width):
        super().__init__()
        self.embedding = nn.Embedding(vocab, width)
        self.conv = nn.Conv1d(width, width, kernel_size=3, padding=1)
        self.out_dim = width

    def forward(self, X, *args):
        return torch.relu(self.conv(self.embedding(X).transpose(1, 2))).transpose(1, 2)


def token_stream(tmp_path, src, tgt, batch_tokens=64) -> BatchStream:
    arrays = [write_token_array(tmp_path / name, [ids], V) for name, ids in (("src", src), ("tgt", tgt))]
    return BatchStream(*arrays, batch_tokens=batch_tokens, seed=1)


@pytest.mark.parametrize("decoder", [TRANSFORMER, GRU_DECODER], ids=["transformer", "gru-bahdanau"])
@pytest.mark.parametrize("make_encoder", [lambda: MyGRUEncoder(V, 16, 20), lambda: MyConvEncoder(V, 20)],
                         ids=["outputs-and-hidden", "plain-tensor"])
def test_a_users_encoder_trains_with_the_loop_and_decodes_with_search(tmp_path, make_encoder, decoder):
    torch.manual_seed(0)
    cfg = model_config(TRANSFORMER, decoder, tie_output=False)
    encoder = make_encoder()
    model = build_model(cfg, V, V, encoder=encoder)
    assert model.encoder is encoder
    src, tgt = copy_task(64)
    held_out = collate(*copy_task(16, seed=1), range(16))
    before = held_out_loss(model, held_out)

    train_cfg = TrainConfig(lr=3e-3, schedule="constant", warmup=1, label_smoothing=0.0, max_steps=25,
                            valid_every=25, log_every=25, valid_bleu=False, metric="loss")
    optimizer = torch.optim.Adam(model.parameters(), train_cfg.lr)
    state, reason = fit(model, optimizer, token_stream(tmp_path, src, tgt), lambda: {"loss": held_out_loss(model, held_out)},
                        lambda metrics: None, tmp_path, train_cfg, Dist(), TrainerState(), progress=False)
    assert (state.step, reason) == (25, "max_steps")
    assert held_out_loss(model, held_out) < before - 0.1

    sources = src[:6]
    greedy = decode_ids(model, sources, SearchOptions(beam=1, max_len_a=1.0, max_len_b=2))
    beam = decode_ids(model, sources, SearchOptions(beam=3, n_best=2, max_len_a=1.0, max_len_b=2))
    for s, g, b in zip(sources, greedy, beam):
        assert len(g) == 1 and len(b) == 2
        for hyp in g + b:
            assert len(hyp.tokens) <= len(s) + 2 and all(3 <= t < V for t in hyp.tokens)
        assert b[0].normalized >= b[1].normalized


def test_a_custom_encoder_must_say_its_width():
    class NoWidth(MyConvEncoder):
        def __init__(self):
            super().__init__(V, 8)
            del self.out_dim

    with pytest.raises(UserError, match="out_dim"):
        build_model(model_config(TRANSFORMER, TRANSFORMER), V, V, encoder=NoWidth())


# --- weights ------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoder, decoder", [(TRANSFORMER, TRANSFORMER), (GRU_ENCODER, GRU_DECODER)],
                         ids=["transformer", "gru"])
def test_saved_weights_reload_to_bit_identical_logits(tmp_path, encoder, decoder):
    cfg = model_config(encoder, decoder, tie_output=True)
    torch.manual_seed(0)
    model = build_model(cfg, V, V).eval()
    table = getattr(model.decoder.embed, "tokens", model.decoder.embed)
    assert model.decoder.proj.weight is table.weight  # tied: saved once, shared again after loading
    save_tensors(tmp_path / "model.safetensors", unique_tensors(model))

    torch.manual_seed(1)
    fresh = build_model(cfg, V, V).eval()
    load_weights(fresh, tmp_path / "model.safetensors")
    batch = collate(*copy_task(5), range(5))
    dec_in = torch.cat([torch.full((5, 1), BOS_ID), batch.tgt[:, :-1]], 1)
    with torch.no_grad():
        expected, _ = model(batch.src, dec_in, batch.src_lengths)
        got, _ = fresh(batch.src, dec_in, batch.src_lengths)
    assert torch.equal(got, expected)
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name
    fresh_table = getattr(fresh.decoder.embed, "tokens", fresh.decoder.embed)
    assert fresh.decoder.proj.weight is fresh_table.weight


def test_the_ctc_loss_scores_the_target_words_without_eos_or_padding():
    from any2seq.interfaces import Memory

    model = build_model(model_config(TRANSFORMER, TRANSFORMER, ctc_weight=0.3), V, V)
    model.ctc_head = nn.Linear(5, V)  # position t's state is one-hot on t: the head says frames[t]
    frames = [5, PAD_ID, 6, 6, PAD_ID]  # 5, blank, 6, 6, blank: CTC reads "5 6"
    with torch.no_grad():
        model.ctc_head.weight.zero_()
        model.ctc_head.bias.zero_()
        for t, token in enumerate(frames):
            model.ctc_head.weight[token, t] = 20.0
    memory = Memory(torch.eye(5).expand(2, 5, 5), torch.ones(2, 5, dtype=torch.bool))
    right = torch.tensor([[5, 6, EOS_ID, PAD_ID], [5, 6, EOS_ID, PAD_ID]])
    wrong = torch.tensor([[6, 5, EOS_ID, PAD_ID], [7, EOS_ID, PAD_ID, PAD_ID]])
    assert model.ctc_loss(memory, right) < 1e-3  # eos and pad are not words to emit
    assert model.ctc_loss(memory, wrong) > 10.0


def test_ctc_weight_trains_a_ctc_head_beside_the_decoder():
    torch.manual_seed(0)
    srcs, tgts = copy_task(8)
    model = build_model(model_config(TRANSFORMER, TRANSFORMER, ctc_weight=0.5), V, V)
    plain = build_model(model_config(TRANSFORMER, TRANSFORMER), V, V)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("ctc_head")})
    batch = collate(srcs, tgts, range(8))
    loss, n = model.loss(batch)
    assert torch.isfinite(loss) and n == plain.loss(batch)[1]
    assert not torch.isclose(loss, plain.loss(batch)[0])  # the CTC term is in
    loss.backward()
    assert model.ctc_head.weight.grad.abs().sum() > 0
    with pytest.raises(UserError, match="ctc_weight"):
        model_config(TRANSFORMER, TRANSFORMER, ctc_weight=1.0)


def test_decoding_stays_within_learned_position_tables():
    """The API and greedy validation cut sources and outputs where learned positions end, and leave
    models with sinusoids (no end) alone."""
    from any2seq.config import load_config
    from any2seq.seq2seq import output_limit, within_positions

    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    cfg = load_config(demo, ["model.encoder.positions=learned", "model.encoder.max_positions=64",
                             "model.decoder.positions=learned", "model.decoder.max_positions=48"])
    assert within_positions(cfg).decode.max_src_len == 64 and output_limit(cfg, 200) == 48
    assert output_limit(cfg, 20) == 20  # a lower limit stands
    plain = load_config(demo)
    assert within_positions(plain) is plain and output_limit(plain, 200) == 200
