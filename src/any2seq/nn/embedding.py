"""Token embeddings with sinusoidal (Vaswani et al., 2017) or learned positions."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .dropout import Dropout


def sinusoids(length: int, dim: int) -> Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[: dim // 2])
    return table  # (L, D)


class PositionalEmbedding(nn.Module):
    """ids (B, T) -> vectors (B, T, D): scaled token embedding + position, then dropout."""

    def __init__(self, vocab: int, dim: int, dropout: float, positions: str = "sinusoidal",
                 max_positions: int = 1024, pad: int = 0):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim, padding_idx=pad)
        nn.init.normal_(self.tokens.weight, std=dim ** -0.5)
        nn.init.zeros_(self.tokens.weight[pad])
        self.scale = math.sqrt(dim)
        self.learned = positions == "learned"
        if self.learned:
            self.positions = nn.Embedding(max_positions, dim)
            nn.init.normal_(self.positions.weight, std=dim ** -0.5)
        else:
            self.register_buffer("table", sinusoids(max_positions, dim), persistent=False)
        self.dropout = Dropout(dropout)

    def forward(self, ids: Tensor, offset: int = 0) -> Tensor:
        T = ids.size(1)
        if self.learned:
            pos = self.positions.weight[offset: offset + T]
        else:  # past the table, rows computed for this call: the module is read-only while decoding threads share it
            table = self.table if offset + T <= self.table.size(0) else sinusoids(offset + T, self.table.size(1))
            pos = table[offset: offset + T].to(self.table)  # (T, D), in the model's dtype
        return self.dropout(self.tokens(ids) * self.scale + pos)
