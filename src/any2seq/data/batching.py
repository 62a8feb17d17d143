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
    """Padded sources and targets; token targets end in EOS (the model shifts them right itself).

    Sources are ids (B, S), waveforms (B, N), images (B, C, H, W) or videos (B, F, C, H, W);
    targets are ids (B, T) or frames (B, T, C, H, W). Dimension 1 is the padded time axis of
    anything that has lengths; an image has none (``src_lengths`` is None).
    """

    src: Tensor
    src_lengths: Optional[Tensor]  # (B,) or None for fixed-size inputs
    tgt: Tensor
    tgt_lengths: Tensor  # (B,) target tokens counting the EOS, or target frames

    @property
    def n_tokens(self) -> int:
        """Target tokens in the batch, EOS included: the unit the loss is averaged over."""
        return int(self.tgt_lengths.sum())

    def shard(self, rank: int, world: int, pad_to: int = 1) -> "Batch":
        """Rows ``rank::world`` (this rank's share in data-parallel training), padding trimmed to
        what they need; token widths (integer ids) stay rounded up to a multiple of ``pad_to``, as
        ``collate`` rounded them, so that ``train.pad_to`` still bounds the shapes the model sees.

        A batch with fewer rows than ``world`` leaves some ranks an empty shard.
        """
        rows = slice(rank, None, world)

        def trimmed(x: Tensor, lengths: Tensor) -> Tensor:
            return x[rows, : _width(lengths, 1 if x.is_floating_point() else pad_to)]  # samples, frames: exact

        tgt_lengths = self.tgt_lengths[rows]
        if self.src_lengths is None:
            src, src_lengths = self.src[rows], None
        else:
            src_lengths = self.src_lengths[rows]
            src = trimmed(self.src, src_lengths)
        return Batch(src, src_lengths, trimmed(self.tgt, tgt_lengths), tgt_lengths)

    def to(self, device) -> "Batch":
        src_lengths = None if self.src_lengths is None else self.src_lengths.to(device)
        return Batch(self.src.to(device), src_lengths, self.tgt.to(device), self.tgt_lengths.to(device))


def _width(lengths, pad_to: int = 1) -> int:
    """Padded width for these lengths, rounded up to a multiple of ``pad_to``; at least 1 so that
    no tensor has an empty time axis."""
    return round_up(max(1, int(lengths.max())) if len(lengths) else 1, pad_to)


def round_up(n, multiple: int):
    """``n`` (an int or an array) rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


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
    pad_to: int = 1,
) -> list[np.ndarray]:
    """Group sentence indices into batches whose padded size, rows x max(src, tgt + 1), fits
    ``batch_tokens`` (one over-long sentence still makes a batch of its own).

    With ``shuffle`` (training): a random permutation, sorted by length within pools of
    ~``POOL_BATCHES`` batches, cut into batches, batch order shuffled; a function of
    (seed, epoch) only. Without (evaluation): sorted by length; each batch's indices let the
    caller put outputs back in input order. ``pad_to``: sizes count as rounded up to a multiple
    of it, as ``collate(..., pad_to)`` pads them.
    """
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be positive, got {batch_tokens}")
    sizes = round_up(np.maximum(np.asarray(src_lengths), np.asarray(tgt_lengths) + 1), pad_to)  # tgt gains an EOS
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


def collate(src: TokenArray | Sequence[Sequence[int]], tgt: TokenArray | Sequence[Sequence[int]], indices,
            pad_to: int = 1) -> Batch:
    """The batch of sentence pairs ``indices``: padded ids (widths rounded up to a multiple of
    ``pad_to``), EOS appended to each target.

    ``src`` and ``tgt`` are token arrays, or plain lists of id lists (a small dev set).
    """
    src_rows, tgt_rows = [src[i] for i in indices], [tgt[i] for i in indices]
    src_lengths = np.array([len(r) for r in src_rows], dtype=np.int64)
    tgt_lengths = np.array([len(r) for r in tgt_rows], dtype=np.int64)
    tgt_ids = _pad(tgt_rows, tgt_lengths, _width(tgt_lengths + 1, pad_to))
    tgt_ids[np.arange(len(tgt_rows)), tgt_lengths] = Tokenizer.EOS
    return Batch(
        src=torch.from_numpy(_pad(src_rows, src_lengths, _width(src_lengths, pad_to))),
        src_lengths=torch.from_numpy(src_lengths),
        tgt=torch.from_numpy(tgt_ids),
        tgt_lengths=torch.from_numpy(tgt_lengths + 1),
    )


class Items:
    """An in-memory split for ``collate_items``: one item per example and its batching size.

    ``kind`` says how items are padded: "tokens" (id lists), "sequence" (arrays whose first axis
    is time, e.g. waveforms or frames) or "fixed" (arrays of one shape, e.g. images).
    """

    KINDS = ("tokens", "sequence", "fixed")

    def __init__(self, items: Sequence, lengths, kind: str):
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        if len(items) != len(lengths):
            raise ValueError(f"{len(items)} items but {len(lengths)} lengths")
        self.items, self.lengths, self.kind = items, np.asarray(lengths, dtype=np.int64), kind

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def pad_items(items: Items, indices, eos: bool, pad_to: int = 1) -> tuple[Tensor, Optional[Tensor]]:
    """Pad one side of a batch: (tensor, lengths) -- lengths None for fixed-size items. Token
    widths are rounded up to a multiple of ``pad_to`` (sequences of samples or frames are not)."""
    rows = [items[i] for i in indices]
    if items.kind == "tokens":
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        ids = _pad(rows, lengths, _width(lengths + eos, pad_to))
        if eos:
            ids[np.arange(len(rows)), lengths] = Tokenizer.EOS
            lengths = lengths + 1
        return torch.from_numpy(ids), torch.from_numpy(lengths)
    arrays = [np.asarray(r, dtype=np.float32) for r in rows]
    if items.kind == "fixed":
        return torch.from_numpy(np.stack(arrays)), None
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    out = np.zeros((len(arrays), _width(lengths), *arrays[0].shape[1:]), dtype=np.float32)
    for row, a in enumerate(arrays):
        out[row, : len(a)] = a
    return torch.from_numpy(out), torch.from_numpy(lengths)


def collate_items(src: Items, tgt: Items, indices, pad_to: int = 1) -> Batch:
    """The batch of examples ``indices`` from in-memory items; token targets gain an EOS."""
    src_tensor, src_lengths = pad_items(src, indices, eos=False, pad_to=pad_to)
    tgt_tensor, tgt_lengths = pad_items(tgt, indices, eos=True, pad_to=pad_to)
    if tgt_lengths is None:
        raise ValueError("targets need lengths: use kind 'tokens' or 'sequence'")
    return Batch(src_tensor, src_lengths, tgt_tensor, tgt_lengths)


class BatchStream:
    """Training batches forever, epoch after epoch; save ``position`` to resume exactly there.

    Pairs with an empty source (nothing to attend to) are left out, and with ``max_len`` those
    with more than ``max_len`` subword tokens on either side (so ``tgt`` is at most max_len + 1 wide,
    before rounding). ``pad_to`` rounds token widths up to a multiple of it: a batch's shape then
    comes from a small set, so the kernels built for each new shape (oneDNN builds one per shape
    and keeps it) are built in the first minute, not all through the run.
    """

    def __init__(self, src: TokenArray | Items, tgt: TokenArray | Items, batch_tokens: int, seed: int,
                 position: tuple[int, int] = (0, 0), max_len: Optional[int] = None, collate_fn=None,
                 pad_to: int = 1):
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
        self.src, self.tgt, self.batch_tokens, self.seed, self.pad_to = src, tgt, batch_tokens, seed, pad_to
        self.collate = collate_fn or (collate_items if isinstance(src, Items) else collate)
        self.epoch, self.index = position
        self.batches = self._epoch_batches(self.epoch)  # this epoch's batches, as corpus indices
        if not 0 <= self.index <= len(self.batches):
            raise ValueError(f"position {position}: epoch {self.epoch} has {len(self.batches)} batches")

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        batches = make_batches(self.src_lengths, self.tgt_lengths, self.batch_tokens, self.seed, epoch,
                               pad_to=self.pad_to)
        return [self.kept[b] for b in batches] if self.filtered else batches

    def token_lengths(self) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """The kept pairs' (source, target) lengths, each None where that side is not tokens."""
        def tokens(side) -> bool:
            return not isinstance(side, Items) or side.kind == "tokens"

        return (self.src_lengths if tokens(self.src) else None, self.tgt_lengths if tokens(self.tgt) else None)

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
        return self.collate(self.src, self.tgt, self.batches[index], pad_to=self.pad_to)
