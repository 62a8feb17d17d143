"""A self-attention KV cache that grows in place and takes beam search's row selections lazily.

Greedy decoding appends one position per step. With ``torch.cat`` that copies the whole cache
every step, O(T^2) bytes for T steps; ``KVCache`` instead writes the new position into spare room
of a buffer that doubles when full, so a step copies only what it adds.

Beam search reorders the decoder state after every step (``reorder_state``). ``KVCache`` keeps the
selection as an index, composing selections costs nothing, and the next ``append`` gathers the
selected rows straight into the new buffer: one copy per step, not a selection then a cat.

A cache is a value like the rest of the state: a cache never sees a write another cache makes.
Caches continued from one another share a buffer; the buffer records how far it is written
(``filled``), and only the cache that ends there may append in place. Continuing an older cache
a second time copies, as ``torch.cat`` would.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from ..interfaces import Rows, SelectRows


class _Buffer:
    """Keys and values (B, H, capacity, D/H) and how many positions some cache has written."""

    __slots__ = ("k", "v", "filled")

    def __init__(self, k: Tensor, v: Tensor, filled: int):
        self.k, self.v, self.filled = k, v, filled

    @property
    def capacity(self) -> int:
        return self.k.size(2)


def _room(length: int) -> int:
    """The capacity a buffer for ``length`` positions gets: doubling keeps appends O(1) amortised."""
    return max(16, 2 * length)


class KVCache(Rows):
    """Keys and values of the positions so far, (B, H, length, D/H) each.

    ``rows`` (B,), when set, is a selection not yet applied: row i of this cache is row
    ``rows[i]`` of the stored tensors.
    """

    __slots__ = ("buf", "length", "rows")

    def __init__(self, k: Tensor, v: Tensor, rows: Optional[Tensor] = None):
        self.buf, self.length, self.rows = _Buffer(k, v, k.size(2)), k.size(2), rows

    @classmethod
    def _view(cls, buf: _Buffer, length: int, rows: Optional[Tensor] = None) -> KVCache:
        cache = cls.__new__(cls)
        cache.buf, cache.length, cache.rows = buf, length, rows
        return cache

    @classmethod
    def empty(cls, batch: int, heads: int, head_dim: int, like: Tensor, dtype: torch.dtype) -> KVCache:
        """No positions yet, in ``dtype`` on ``like``'s device."""
        empty = like.new_zeros(batch, heads, 0, head_dim, dtype=dtype)
        return cls(empty, empty)

    @property
    def k(self) -> Tensor:
        """The stored keys (before any pending selection), (B, H, length, D/H)."""
        return self.buf.k[:, :, : self.length]

    @property
    def v(self) -> Tensor:
        return self.buf.v[:, :, : self.length]

    @property
    def dtype(self) -> torch.dtype:
        return self.buf.k.dtype

    def tensors(self) -> tuple[Tensor, Tensor]:
        """Keys and values with the selection applied, (B, H, length, D/H) each."""
        if self.rows is None:
            return self.k, self.v
        return self.k.index_select(0, self.rows), self.v.index_select(0, self.rows)

    def append(self, k: Tensor, v: Tensor) -> KVCache:
        """A new cache continued by ``k`` and ``v`` (B, H, T, D/H), stored in this cache's dtype."""
        n, T = self.length, k.size(2)
        if k.requires_grad or self.buf.k.requires_grad:  # training: plain ops, so gradients flow
            old_k, old_v = self.tensors()
            return KVCache(torch.cat([old_k, k.to(self.dtype)], 2), torch.cat([old_v, v.to(self.dtype)], 2))
        buf = self.buf
        if self.rows is None and buf.filled == n and n + T <= buf.capacity:  # the common greedy step
            buf.k[:, :, n: n + T] = k
            buf.v[:, :, n: n + T] = v
            buf.filled = n + T
            return KVCache._view(buf, n + T)
        # a new buffer: the selected (or all) rows of this cache, then the new positions
        size = n + T if self.rows is not None else _room(n + T)  # beam reselects every step: no spare room
        out = []
        for old, new in ((self.k, k), (self.v, v)):
            fresh = old.new_empty(new.size(0), old.size(1), size, old.size(3))
            if self.rows is None:
                fresh[:, :, :n] = old
            else:
                torch.index_select(old, 0, self.rows, out=fresh[:, :, :n])  # the gather writes into place
            fresh[:, :, n: n + T] = new  # converted to the cache's dtype
            out.append(fresh)
        return KVCache._view(_Buffer(out[0], out[1], n + T), n + T)

    def select(self, index: Tensor) -> KVCache:
        """Rows ``index`` (B',) of this cache, without copying."""
        return KVCache._view(self.buf, self.length, index if self.rows is None else self.rows.index_select(0, index))

    def map(self, fn: Callable[[Tensor], Tensor]) -> KVCache:
        """``map_state``'s hook: row selections stay lazy, anything else applies to the tensors."""
        if isinstance(fn, SelectRows):
            return self.select(fn.index)
        return KVCache(*(fn(t) for t in self.tensors()))
