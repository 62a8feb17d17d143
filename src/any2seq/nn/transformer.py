"""Pre-LayerNorm Transformer layers (Vaswani et al., 2017; Xiong et al., 2020)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .attention import CrossAttention, SelfAttention
from .dropout import Dropout
from .kv_cache import KVCache


def feed_forward(d_model: int, ff: int) -> nn.Module:
    # No dropout inside the block or on attention weights (fairseq's defaults): on CPU, random
    # masks for the wide hidden layer cost more than its matrix products.
    return nn.Sequential(nn.Linear(d_model, ff), nn.ReLU(), nn.Linear(ff, d_model))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, heads)
        self.ff = feed_forward(d_model, ff)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # (B, S, D), (B, S)
        x = x + self.drop(self.attn(self.norm1(x), key_mask=mask)[0])
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int, dropout: float, memory_dim: int):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attn = SelfAttention(d_model, heads)
        self.cross_attn = CrossAttention(d_model, heads, memory_dim)
        self.ff = feed_forward(d_model, ff)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, cross_kv, memory_mask: Tensor, cache: Optional[KVCache] = None):
        """x (B, T, D) continuing the sequence in ``cache``; returns (B, T, D) and the new cache."""
        h, cache = self.self_attn(self.norm1(x), causal=True, cache=cache)
        x = x + self.drop(h)
        x = x + self.drop(self.cross_attn(self.norm2(x), cross_kv, memory_mask))
        return x + self.drop(self.ff(self.norm3(x))), cache
