"""A self-attention KV cache that takes beam search's row selections lazily.

Beam search reorders the decoder state after every step (``reorder_state``), and the next step
appends one position to every layer's keys and values. Done eagerly that is two copies of each
cache per step: the selection, then ``torch.cat``. ``KVCache`` keeps the selection as an index
and the next ``append`` gathers the selected rows straight into the new, longer buffer: one copy
per step, and composing selections costs nothing (what that measured: benchmarks/README.md, "Figures
behind the code").

A cache is a value like the rest of the state: ``append`` and ``map`` return new caches and
never write into a buffer another cache can see.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from ..interfaces import Rows, SelectRows


class KVCache(Rows):
    """Keys and values of the positions so far, (B, H, length, D/H) each.

    ``rows`` (B,), when set, is a selection not yet applied: row i of this cache is row
    ``rows[i]`` of the stored tensors.
    """

    __slots__ = ("k", "v", "rows")

    def __init__(self, k: Tensor, v: Tensor, rows: Optional[Tensor] = None):
        self.k, self.v, self.rows = k, v, rows

    @classmethod
    def empty(cls, batch: int, heads: int, head_dim: int, like: Tensor, dtype: torch.dtype) -> KVCache:
        """No positions yet, in ``dtype`` on ``like``'s device."""
        empty = like.new_zeros(batch, heads, 0, head_dim, dtype=dtype)
        return cls(empty, empty)

    @property
    def length(self) -> int:
        return self.k.size(2)

    @property
    def dtype(self) -> torch.dtype:
        return self.k.dtype

    def tensors(self) -> tuple[Tensor, Tensor]:
        """Keys and values with the selection applied, (B, H, length, D/H) each."""
        if self.rows is None:
            return self.k, self.v
        return self.k.index_select(0, self.rows), self.v.index_select(0, self.rows)

    def append(self, k: Tensor, v: Tensor) -> KVCache:
        """A new cache continued by ``k`` and ``v`` (B, H, T, D/H), stored in this cache's dtype."""
        if self.length == 0:
            return KVCache(k.to(self.dtype), v.to(self.dtype))
        if self.rows is None or k.requires_grad or self.k.requires_grad:  # index_select(out=) has no gradient
            old_k, old_v = self.tensors()
            return KVCache(torch.cat([old_k, k.to(self.dtype)], 2), torch.cat([old_v, v.to(self.dtype)], 2))
        n = self.length
        out = []
        for old, new in ((self.k, k), (self.v, v)):
            buf = old.new_empty(new.size(0), old.size(1), n + new.size(2), old.size(3))
            torch.index_select(old, 0, self.rows, out=buf[:, :, :n])  # the gather writes into place
            buf[:, :, n:] = new  # converted to the cache's dtype
            out.append(buf)
        return KVCache(*out)

    def select(self, index: Tensor) -> KVCache:
        """Rows ``index`` (B',) of this cache, without copying."""
        return KVCache(self.k, self.v, index if self.rows is None else self.rows.index_select(0, index))

    def map(self, fn: Callable[[Tensor], Tensor]) -> KVCache:
        """``map_state``'s hook: row selections stay lazy, anything else applies to the tensors."""
        if isinstance(fn, SelectRows):
            return self.select(fn.index)
        return KVCache(*(fn(t) for t in self.tensors()))
