"""Text encoders: a Transformer stack (Vaswani et al., 2017), pre-LN or post-LN, and RNN/GRU/LSTM stacks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..interfaces import EOS_ID, Encoder, EncoderConfig, Memory, lengths_to_mask
from ..nn.embedding import PositionalEmbedding
from ..nn.rnn import RNN_CELLS, RNNConfig
from ..nn.transformer import EncoderLayer, TransformerConfig
from ..registry import EncoderPart, Sizes


class TransformerEncoder(Encoder):
    def __init__(self, vocab: int, d_model: int, layers: int, heads: int, ff: int, dropout: float,
                 positions: str = "sinusoidal", max_positions: int = 1024, norm: str = "pre",
                 activation: str = "relu", eos: bool = False):
        super().__init__()
        self.embed = PositionalEmbedding(vocab, d_model, dropout, positions=positions, max_positions=max_positions)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ff, dropout, norm=norm, activation=activation)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()  # post-LN layers end normalised
        self.out_dim = d_model
        self.eos = eos

    def forward(self, src: Tensor, src_lengths: Tensor) -> Memory:  # (B, S), (B,)
        if self.eos:  # </s> after each source's last token: (B, S + 1)
            src = torch.cat([src, src.new_zeros(src.size(0), 1)], dim=1)
            src = src.scatter(1, src_lengths[:, None].long(), EOS_ID)
            src_lengths = src_lengths + 1
        mask = lengths_to_mask(src_lengths, src.size(1))
        x = self.embed(src)
        for layer in self.layers:
            x = layer(x, mask)
        return Memory(self.norm(x), mask)  # (B, S, D)

    def input_embedding(self) -> nn.Embedding:
        return self.embed.tokens


class RNNEncoder(Encoder):
    """Embedding + (bi)directional RNN stack; padding is packed away so it never changes a result."""

    def __init__(self, vocab: int, cell: str, embed: int, hidden: int, layers: int,
                 bidirectional: bool, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.rnn = RNN_CELLS[cell](embed, hidden, layers, batch_first=True, bidirectional=bidirectional,
                                   dropout=dropout if layers > 1 else 0.0)
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(self, src: Tensor, src_lengths: Tensor) -> Memory:
        x = self.drop(self.embed(src))  # (B, S, E)
        packed = pack_padded_sequence(x, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers * dirs, B, H)
        dirs = 2 if self.rnn.bidirectional else 1
        final = torch.cat(list(h[-dirs:]), dim=-1)  # (B, dirs * H): the top layer
        return Memory(self.drop(out), lengths_to_mask(src_lengths, src.size(1)), final)

    def input_embedding(self) -> nn.Embedding:
        return self.embed


@dataclass(frozen=True)
class TransformerEncoderConfig(TransformerConfig, EncoderConfig):
    eos: bool = False  # append </s> to every source before encoding it (Marian and other HF models)


@dataclass(frozen=True)
class RNNEncoderConfig(RNNConfig, EncoderConfig):
    bidirectional: bool = True


def build_transformer(cfg: TransformerEncoderConfig, dims: Sizes) -> TransformerEncoder:
    return TransformerEncoder(dims.src_vocab, cfg.d_model, cfg.layers, cfg.heads, ff=cfg.ff, dropout=cfg.dropout,
                              positions=cfg.positions, max_positions=cfg.max_positions, norm=cfg.norm,
                              activation=cfg.activation, eos=cfg.eos)


def build_rnn(cfg: RNNEncoderConfig, dims: Sizes) -> RNNEncoder:
    return RNNEncoder(dims.src_vocab, cfg.kind, cfg.embed, cfg.hidden, layers=cfg.layers,
                      bidirectional=cfg.bidirectional, dropout=cfg.dropout)


TRANSFORMER = EncoderPart(TransformerEncoderConfig, build_transformer)
RNN = EncoderPart(RNNEncoderConfig, build_rnn)  # kind: rnn, gru or lstm
