"""Token-budget batches with length bucketing (Ott et al., 2018, "Scaling NMT"), deterministic and resumable."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from any2seq.data.cache import TokenArray
from any2seq.data.tokenizer import Tokenizer
from any2seq.errors import UserError

POOL_BATCHES = 100  # sort by length within pools of this many batches' worth of tokens


@dataclass
class Batch:
    """Padded source and target ids; ``tgt`` ends in EOS (the model shifts it right itself)."""

    src: Tensor  # (B, S) source ids, padded with PAD
    src_lengths: Tensor  # (B,)
    tgt: Tensor  # (B, T) target ids followed by EOS, padded with PAD
    tgt_lengths: Tensor  # (B,) counting the EOS

    @property
    def n_tokens(self) -> int:
        """Target tokens in the batch, EOS included: the unit the loss is averaged over."""
        return int(self.tgt_lengths.sum())

    def shard(self, rank: int, world: int) -> "Batch":
        """Rows ``rank::world`` (this rank's share in data-parallel training), padding trimmed.

        A batch with fewer rows than ``world`` leaves some ranks an empty shard.
        """
        rows = slice(rank, None, world)
        src_lengths, tgt_lengths = self.src_lengths[rows], self.tgt_lengths[rows]
        return Batch(
            self.src[rows, : _width(src_lengths)], src_lengths,
            self.tgt[rows, : _width(tgt_lengths)], tgt_lengths,
        )

    def to(self, device) -> "Batch":
        return Batch(self.src.to(device), self.src_lengths.to(device), self.tgt.to(device), self.tgt_lengths.to(device))


def _width(lengths) -> int:
    """Padded width for these lengths; at least 1 so that no tensor has an empty time axis."""
    return max(1, int(lengths.max())) if len(lengths) else 1


def _batch_bounds(sizes: np.ndarray, pool_ends: Sequence[int], batch_tokens: int, max_sentences: int) -> list[int]:
    """Greedy cut points: rows ``bounds[k]:bounds[k+1]`` form batch k.

    Sizes ascend within each pool and batches never cross a pool's end, so a batch's widest row
    is its last and the padded cost of its first r rows, ``sizes[r-1] * r``, grows with r.
    """
    bounds, start = [0], 0
    for end in pool_ends:
        while start < end:
            rows = min(end - start, max_sentences, max(1, batch_tokens // int(sizes[start])))
            cost = sizes[start : start + rows] * np.arange(1, rows + 1)
            start += max(1, int(np.searchsorted(cost, batch_tokens, side="right")))
            bounds.append(start)
    return bounds


def _sort_pools(order: np.ndarray, sizes: np.ndarray, pool_tokens: int) -> list[int]:
    """Cut ``order`` into pools of about ``pool_tokens`` tokens and sort each pool by size, in place.

    Returns the pools' end positions. Pool by pool, so memory stays a few bytes per sentence.
    """
    cumulative = np.cumsum(sizes, dtype=np.int64)
    ends = np.searchsorted(cumulative, np.arange(pool_tokens, cumulative[-1], pool_tokens), side="right")
    del cumulative
    pool_ends = [*np.unique(ends[(ends > 0) & (ends < len(order))]).tolist(), len(order)]
    for start, end in zip([0, *pool_ends[:-1]], pool_ends):
        by_size = np.argsort(sizes[start:end], kind="stable")
        order[start:end], sizes[start:end] = order[start:end][by_size], sizes[start:end][by_size]
    return pool_ends


def make_batches(
    src_lengths,
    tgt_lengths,
    batch_tokens: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    max_sentences: Optional[int] = None,
) -> list[np.ndarray]:
    """Group sentence indices into batches whose padded size, rows x max(src, tgt + 1), fits
    ``batch_tokens`` (one over-long sentence still makes a batch of its own).

    With ``shuffle`` (training): a random permutation, sorted by length within pools of
    ~``POOL_BATCHES`` batches, cut into batches, batch order shuffled; a function of
    (seed, epoch) only. Without (evaluation): sorted by length; each batch's indices let the
    caller put outputs back in input order.
    """
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be positive, got {batch_tokens}")
    sizes = np.maximum(np.asarray(src_lengths), np.asarray(tgt_lengths) + 1)  # the target gains an EOS
    if len(sizes) == 0:
        return []
    if shuffle:
        rng = np.random.default_rng((seed, epoch))
        order = rng.permutation(len(sizes))
        sizes = sizes[order]
        pool_ends = _sort_pools(order, sizes, POOL_BATCHES * batch_tokens)
    else:
        order = np.argsort(sizes, kind="stable")
        sizes, pool_ends = sizes[order], [len(order)]
    bounds = _batch_bounds(sizes, pool_ends, batch_tokens, max_sentences or len(order))
    batches = np.split(order, bounds[1:-1])
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _pad(rows: list, lengths: np.ndarray, width: int) -> np.ndarray:
    """(B, width) int64 ids, row i holding ``rows[i]`` then PAD."""
    out = np.full((len(rows), width), Tokenizer.PAD, dtype=np.int64)
    if rows:
        out[np.arange(width) < lengths[:, None]] = np.concatenate(rows)
    return out


def collate(src: TokenArray | Sequence[Sequence[int]], tgt: TokenArray | Sequence[Sequence[int]], indices) -> Batch:
    """The batch of sentence pairs ``indices``: padded ids, EOS appended to each target.

    ``src`` and ``tgt`` are token arrays, or plain lists of id lists (a small dev set).
    """
    src_rows, tgt_rows = [src[i] for i in indices], [tgt[i] for i in indices]
    src_lengths = np.array([len(r) for r in src_rows], dtype=np.int64)
    tgt_lengths = np.array([len(r) for r in tgt_rows], dtype=np.int64)
    tgt_ids = _pad(tgt_rows, tgt_lengths, _width(tgt_lengths + 1))
    tgt_ids[np.arange(len(tgt_rows)), tgt_lengths] = Tokenizer.EOS
    return Batch(
        src=torch.from_numpy(_pad(src_rows, src_lengths, _width(src_lengths))),
        src_lengths=torch.from_numpy(src_lengths),
        tgt=torch.from_numpy(tgt_ids),
        tgt_lengths=torch.from_numpy(tgt_lengths + 1),
    )


class BatchStream:
    """Training batches forever, epoch after epoch; save ``position`` to resume exactly there.

    Pairs with an empty source (nothing to attend to) are left out, and with ``max_len`` those
    with more than ``max_len`` subword tokens on either side (so ``tgt`` is at most max_len + 1 wide).
    """

    def __init__(self, src: TokenArray, tgt: TokenArray, batch_tokens: int, seed: int,
                 position: tuple[int, int] = (0, 0), max_len: Optional[int] = None):
        if len(src) != len(tgt):
            raise ValueError(f"{len(src)} source but {len(tgt)} target sequences")
        src_lengths, tgt_lengths = src.lengths, tgt.lengths
        keep = src_lengths > 0
        if max_len is not None:
            keep &= (src_lengths <= max_len) & (tgt_lengths <= max_len)
        if not keep.any():
            raise UserError(f"data.max_len={max_len}: none of the {len(src)} training pairs is left "
                            "(each has an empty source or more tokens than max_len)")
        self.kept = np.flatnonzero(keep)  # corpus indices of the pairs we train on
        self.filtered = len(self.kept) < len(src)
        if self.filtered:
            src_lengths, tgt_lengths = src_lengths[self.kept], tgt_lengths[self.kept]
        self.src_lengths, self.tgt_lengths = src_lengths, tgt_lengths
        self.src, self.tgt, self.batch_tokens, self.seed = src, tgt, batch_tokens, seed
        self.epoch, self.index = position
        self.batches = self._epoch_batches(self.epoch)  # this epoch's batches, as corpus indices
        if not 0 <= self.index <= len(self.batches):
            raise ValueError(f"position {position}: epoch {self.epoch} has {len(self.batches)} batches")

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        batches = make_batches(self.src_lengths, self.tgt_lengths, self.batch_tokens, self.seed, epoch)
        return [self.kept[b] for b in batches] if self.filtered else batches

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, index) of the batch that ``next`` returns."""
        if self.index >= len(self.batches):
            return self.epoch + 1, 0
        return self.epoch, self.index

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> Batch:
        epoch, index = self.position
        if epoch != self.epoch:
            self.epoch, self.batches = epoch, self._epoch_batches(epoch)
        self.index = index + 1
        return collate(self.src, self.tgt, self.batches[index])
