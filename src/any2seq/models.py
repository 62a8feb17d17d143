"""``build_model(cfg)``: encoder and decoder tables -> a ``Seq2Seq`` model with a loss and a step."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig, RNNDecoderConfig, RNNEncoderConfig, TransformerDecoderConfig, TransformerEncoderConfig
from .decoders.rnn import RNNDecoder
from .decoders.transformer import TransformerDecoder
from .encoders.text import RNNEncoder, TransformerEncoder
from .errors import UserError
from .interfaces import BOS_ID, EOS_ID, PAD_ID, Decoder, Encoder, EncoderDecoder, shift_right


class Seq2Seq(EncoderDecoder):
    """An encoder-decoder over token targets: adds the training loss and the search step."""

    bos, eos, pad = BOS_ID, EOS_ID, PAD_ID

    def __init__(self, encoder: Encoder, decoder: Decoder, label_smoothing: float = 0.0):
        super().__init__(encoder, decoder)
        self.label_smoothing = label_smoothing

    def loss(self, batch) -> tuple[Tensor, int]:
        """Summed label-smoothed cross-entropy over the batch's target tokens, and their count."""
        logits, _ = self(batch.src, shift_right(batch.tgt, self.bos), batch.src_lengths)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch.tgt.flatten(), ignore_index=self.pad,
                               label_smoothing=self.label_smoothing if self.training else 0.0, reduction="sum")
        return loss, int(batch.n_tokens)

    def encode(self, src: Tensor, src_lengths: Tensor):
        """The decoder's initial state for a batch of sources."""
        return self.decoder.init_state(self.encoder(src, src_lengths), src_lengths)

    def step(self, tokens: Tensor, state):
        """The step function search drives: last tokens (B,) -> log-probs (B, V), new state."""
        logits, state = self.decoder(tokens[:, None], state)
        return logits[:, -1].float().log_softmax(-1), state


# --- the factory: read it top to bottom ---------------------------------------------------------

def transformer_encoder(cfg: TransformerEncoderConfig, vocab: int) -> Encoder:
    return TransformerEncoder(vocab, cfg.d_model, cfg.layers, cfg.heads, cfg.ff, cfg.dropout,
                              cfg.positions, cfg.max_positions)


def rnn_encoder(cfg: RNNEncoderConfig, vocab: int) -> Encoder:
    return RNNEncoder(vocab, cfg.kind, cfg.embed, cfg.hidden, cfg.layers, cfg.bidirectional, cfg.dropout)


def transformer_decoder(cfg: TransformerDecoderConfig, vocab: int, memory_dim: int) -> Decoder:
    return TransformerDecoder(vocab, cfg.d_model, cfg.layers, cfg.heads, cfg.ff, cfg.dropout, memory_dim,
                              cfg.positions, cfg.max_positions)


def rnn_decoder(cfg: RNNDecoderConfig, vocab: int, memory_dim: int) -> Decoder:
    try:
        return RNNDecoder(vocab, cfg.kind, cfg.embed, cfg.hidden, cfg.layers, cfg.dropout, memory_dim, cfg.attention)
    except ValueError as e:
        raise UserError(f"model.decoder.attention: {e}") from None


ENCODERS = {"transformer": transformer_encoder, "rnn": rnn_encoder, "gru": rnn_encoder, "lstm": rnn_encoder}
DECODERS = {"transformer": transformer_decoder, "rnn": rnn_decoder, "gru": rnn_decoder, "lstm": rnn_decoder}


def build_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int, label_smoothing: float = 0.0,
                encoder: Encoder | None = None) -> Seq2Seq:
    """Build the model a config describes; ``encoder`` replaces the configured one (a user's own)."""
    if encoder is None:
        encoder = ENCODERS[cfg.encoder.kind](cfg.encoder, src_vocab)
    memory_dim = getattr(encoder, "out_dim", None)
    if memory_dim is None:
        raise UserError("a custom encoder must say its output width in an `out_dim` attribute")
    decoder = DECODERS[cfg.decoder.kind](cfg.decoder, tgt_vocab, memory_dim)
    if cfg.tie_output:
        tie_output(decoder)
    if cfg.share_embeddings:
        share_embeddings(encoder, decoder, src_vocab, tgt_vocab)
    return Seq2Seq(encoder, decoder, label_smoothing)


def _token_table(module: nn.Module) -> nn.Embedding:
    embed = module.embed
    return embed.tokens if hasattr(embed, "tokens") else embed


def tie_output(decoder: nn.Module) -> None:
    proj, table = decoder.proj, _token_table(decoder)
    if proj.weight.shape != table.weight.shape:
        raise UserError(f"model.tie_output: the output layer {tuple(proj.weight.shape)} and the target "
                        f"embedding {tuple(table.weight.shape)} differ in size; set tie_output: false")
    proj.weight = table.weight


def share_embeddings(encoder: nn.Module, decoder: nn.Module, src_vocab: int, tgt_vocab: int) -> None:
    src_table, tgt_table = _token_table(encoder), _token_table(decoder)
    if src_vocab != tgt_vocab or src_table.weight.shape != tgt_table.weight.shape:
        raise UserError("model.share_embeddings: needs tokenizer.joint and equal embedding sizes "
                        f"(source {tuple(src_table.weight.shape)}, target {tuple(tgt_table.weight.shape)})")
    src_table.weight = tgt_table.weight


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
