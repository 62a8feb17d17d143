"""Attention: multi-head scaled dot-product (Vaswani et al., 2017) with a KV cache, additive
(Bahdanau et al., 2015) and multiplicative (Luong et al., 2015)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kv_cache import KVCache


def split_heads(x: Tensor, heads: int) -> Tensor:
    B, T, D = x.shape  # (B, T, D) -> (B, H, T, D/H)
    return x.view(B, T, heads, D // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    B, H, T, Dh = x.shape  # (B, H, T, D/H) -> (B, T, D)
    return x.transpose(1, 2).reshape(B, T, H * Dh)


def grouped(query: Tensor, sources: int) -> Tensor:
    """query (A*K, T, D) -> (A, K*T, D): the K consecutive rows that read one source's memory as
    one block of queries (K = 1 when every row has its own)."""
    B, T, D = query.shape
    return query.reshape(sources, B // max(sources, 1) * T, D)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None, is_causal: bool = False) -> Tensor:
    """Scaled dot-product attention, (B, H, T, D/H) -> (B, H, T, D/H); ``mask`` is True where a
    query may look.

    The fused kernel, except on CPU in bfloat16 or without a gradient: there the explicit
    product-softmax-product (softmax in float32) is faster, in training and in beam search (a few
    queries over a short memory). For the lengths of text and frame sequences the (T, S) scores the
    explicit form keeps are small. The products run in the keys' dtype and the result comes back in
    the queries': decoders keep their cached keys and values in float32 when decoding on CPU, where
    a bf16 product of a few queries with a short cache is slower than the float32 one (the figures:
    benchmarks/README.md, "Figures behind the code").
    """
    if q.device.type == "cpu" and (q.dtype == torch.bfloat16 or not torch.is_grad_enabled()):
        dtype, q = q.dtype, q.to(k.dtype)
        scores = (q @ k.transpose(-1, -2)) * q.size(-1) ** -0.5
        if is_causal:
            mask = causal_mask(q.size(2), 0, q.device)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return (scores.softmax(-1, dtype=torch.float32).to(v.dtype) @ v).to(dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)


def causal_mask(T: int, offset: int, device) -> Tensor:
    """(T, offset + T) bool: query i (at position offset + i) may see keys 0..offset + i."""
    q = torch.arange(T, device=device)[:, None] + offset
    return torch.arange(offset + T, device=device)[None, :] <= q


class SelfAttention(nn.Module):
    """Multi-head self-attention; with a ``KVCache`` it continues a sequence incrementally."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, key_mask: Optional[Tensor] = None, causal: bool = False,
                cache: Optional[KVCache] = None, mask: Optional[Tensor] = None):
        """x (B, T, D) continuing the sequence in ``cache``. Which keys a query sees: ``mask``
        (T, t + T) bool, True where it may look, any pattern (the frames decoder's frame blocks);
        else token-causal if ``causal``; else every key ``key_mask`` (B, S) keeps. Returns (B, T, D)
        and the new cache (``None`` without one)."""
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        offset = 0 if cache is None else cache.length
        if cache is not None:  # keys and values in the cache's dtype: float32 when decoding bf16 on CPU
            cache = cache.append(k, v)
            k, v = cache.k, cache.v
        is_causal = False
        if mask is None:  # (else the caller's pattern, the same for every row and head)
            if causal and x.size(1) > 1:
                if offset == 0:
                    is_causal = True
                else:
                    mask = causal_mask(x.size(1), offset, x.device)
            elif key_mask is not None:
                mask = key_mask[:, None, None, :]  # (B, 1, 1, S)
        y = attend(q, k, v, mask, is_causal)
        return self.out(merge_heads(y)), cache


class CrossAttention(nn.Module):
    """Multi-head attention over the encoder memory; keys and values are projected once."""

    def __init__(self, d_model: int, heads: int, memory_dim: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(memory_dim, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def project(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S, Dm) -> keys and values, each (B, H, S, D/H); computed once per source."""
        k, v = self.kv(memory).chunk(2, dim=-1)
        return split_heads(k, self.heads), split_heads(v, self.heads)

    def grouped_queries(self, x: Tensor, sources: int) -> Tensor:
        """x (A*K, T, D) -> the queries of each source's K consecutive rows as one block (A, H, K*T, D/H)."""
        q = grouped(self.q(x), sources)  # (A, K*T, D)
        return q.view(*q.shape[:2], self.heads, q.size(2) // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], memory_mask: Tensor) -> Tensor:
        """x (A*K, T, D): K consecutive rows per source read its keys and values ``kv`` (A, H, S, D/H)
        and ``memory_mask`` (A, S); as one query block (A, H, K*T, D/H), so beams share them."""
        q = self.grouped_queries(x, memory_mask.size(0))
        y = attend(q, kv[0], kv[1], memory_mask[:, None, None, :])  # (A, H, K*T, D/H)
        return self.out(y.transpose(1, 2).reshape(x.shape))

    def weights(self, x: Tensor, kv: tuple[Tensor, Tensor], memory_mask: Tensor) -> Tensor:
        """The attention probabilities (B, H, T, S), for plots; the fused kernel does not expose them."""
        (B, T, _), A = x.shape, memory_mask.size(0)
        q = self.grouped_queries(x, A)
        scores = q @ kv[0].transpose(-1, -2) / q.size(-1) ** 0.5
        probs = scores.masked_fill(~memory_mask[:, None, None, :], float("-inf")).softmax(-1)
        return probs.view(A, self.heads, B // max(A, 1), T, -1).transpose(1, 2).reshape(B, self.heads, T, -1)


class AdditiveAttention(nn.Module):
    """Bahdanau attention: score(q, k) = v . tanh(W_q q + W_k k)."""

    def __init__(self, query_dim: int, key_dim: int, hidden: int):
        super().__init__()
        self.w_q = nn.Linear(query_dim, hidden, bias=False)
        self.w_k = nn.Linear(key_dim, hidden, bias=False)
        self.v = nn.Linear(hidden, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.w_k(memory)  # (A, S, hidden), computed once per source

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor):
        """query (A*K, T, Dq), K rows per source of ``keys``/``memory``/``mask`` (A, S, *) ->
        context (A*K, T, Dm) and weights (A*K, T, S)."""
        B, T, _ = query.shape
        q = grouped(self.w_q(query), keys.size(0))  # (A, K*T, hidden)
        scores = self.v(torch.tanh(q[:, :, None, :] + keys[:, None, :, :])).squeeze(-1)
        weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)  # (A, K*T, S)
        return (weights @ memory).view(B, T, -1), weights.view(B, T, -1)


class MultiplicativeAttention(nn.Module):
    """Luong attention, ``dot`` (score = q . k) or ``general`` (score = q . W k)."""

    def __init__(self, query_dim: int, key_dim: int, general: bool):
        super().__init__()
        if not general and query_dim != key_dim:
            raise ValueError(f"dot attention needs equal sizes (query {query_dim}, memory {key_dim}); use general")
        self.w_k = nn.Linear(key_dim, query_dim, bias=False) if general else nn.Identity()

    def keys(self, memory: Tensor) -> Tensor:
        return self.w_k(memory)  # (A, S, Dq)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor):
        """As ``AdditiveAttention.forward``: K rows of ``query`` per source."""
        B, T, _ = query.shape
        scores = grouped(query, keys.size(0)) @ keys.transpose(1, 2)  # (A, K*T, S)
        weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)
        return (weights @ memory).view(B, T, -1), weights.view(B, T, -1)
