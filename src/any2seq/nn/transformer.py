"""Transformer layers (Vaswani et al., 2017): pre-LayerNorm (Xiong et al., 2020), any2seq's default,
or post-LayerNorm as in the original paper and Marian/opus-mt models."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional

from torch import Tensor, nn

from ..config_checks import attention_sizes, sizes
from .attention import CrossAttention, SelfAttention
from .dropout import Dropout
from .kv_cache import KVCache

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU}


@dataclass(frozen=True)
class LayerStackConfig:
    """What every stack of these layers is sized by (the token and frame decoders, the text encoder);
    a component's config subclasses it with its own ``kind`` Literal and fields."""
    kind: str = ""  # named by each component's config; declared here so that it stays the first key
    d_model: int = 256
    layers: int = 3
    heads: int = 4
    ff: int = 1024
    dropout: float = 0.1

    def check(self):
        attention_sizes(self)


@dataclass(frozen=True)
class TransformerConfig(LayerStackConfig):
    """What a Transformer encoder and decoder of tokens share."""
    kind: Literal["transformer"] = "transformer"
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_positions: int = 1024  # only for learned positions
    norm: Literal["pre", "post"] = "pre"  # LayerNorm before each sublayer (and one at the end), or after the sum
    activation: Literal["relu", "gelu", "swish"] = "relu"  # the feed-forward's (swish = SiLU, Marian's)

    def check(self):
        super().check()
        sizes(self, "max_positions", high=1 << 20)


def feed_forward(d_model: int, ff: int, activation: str = "relu") -> nn.Module:
    # No dropout inside the block or on attention weights (fairseq's defaults): on CPU, random
    # masks for the wide hidden layer cost more than its matrix products.
    return nn.Sequential(nn.Linear(d_model, ff), ACTIVATIONS[activation](), nn.Linear(ff, d_model))


def residual(x: Tensor, f: Callable[[Tensor], Tensor], norm: nn.Module, drop: nn.Module, post: bool) -> Tensor:
    """x + dropout(f(x)) around a LayerNorm: pre-LN normalises f's input, post-LN the sum."""
    if post:
        return norm(x + drop(f(x)))
    return x + drop(f(norm(x)))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int, dropout: float, norm: str = "pre",
                 activation: str = "relu"):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, heads)
        self.ff = feed_forward(d_model, ff, activation)
        self.drop = Dropout(dropout)
        self.post = norm == "post"

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # (B, S, D), (B, S)
        x = residual(x, lambda h: self.attn(h, key_mask=mask)[0], self.norm1, self.drop, self.post)
        return residual(x, self.ff, self.norm2, self.drop, self.post)


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int, dropout: float, memory_dim: int, norm: str = "pre",
                 activation: str = "relu"):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attn = SelfAttention(d_model, heads)
        self.cross_attn = CrossAttention(d_model, heads, memory_dim)
        self.ff = feed_forward(d_model, ff, activation)
        self.drop = Dropout(dropout)
        self.post = norm == "post"

    def forward(self, x: Tensor, cross_kv, memory_mask: Tensor, cache: Optional[KVCache] = None,
                mask: Optional[Tensor] = None):
        """x (B, T, D) continuing the t positions in ``cache``; returns (B, T, D) and the new cache.
        Self-attention is token-causal unless ``mask`` (T, t + T) bool says which keys each query
        may see (the frames decoder: every tile of its own and earlier frames)."""
        caches = []

        def self_attend(h: Tensor) -> Tensor:
            h, new_cache = self.self_attn(h, causal=True, cache=cache, mask=mask)
            caches.append(new_cache)
            return h

        x = residual(x, self_attend, self.norm1, self.drop, self.post)
        x = residual(x, lambda h: self.cross_attn(h, cross_kv, memory_mask), self.norm2, self.drop, self.post)
        return residual(x, self.ff, self.norm3, self.drop, self.post), caches[0]
