"""Sampling filters: small functions from (B, V) logits or log-probs to (B, V), dropped ones -inf.

Temperature scaling (Ackley et al. 1985), top-k sampling (Fan et al. 2018) and top-p / nucleus
sampling (Holtzman et al. 2020). ``compose`` chains them left to right; order matters
(temperature before top-p changes which tokens make up the nucleus).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Filter = Callable[[Tensor], Tensor]  # (B, V) -> (B, V)


def temperature(t: float) -> Filter:
    """Divide the logits by ``t``: below 1 sharpens the distribution, above 1 flattens it.

    The row maximum is subtracted first (softmax does not change) and ``t`` is taken no smaller
    than the dtype's tiniest normal number, so a tiny ``t`` gives greedy decoding, not NaNs."""
    if not t > 0:
        raise ValueError(f"temperature must be > 0, got {t}")
    return lambda logits: (logits - logits.amax(-1, keepdim=True)) / max(t, torch.finfo(logits.dtype).tiny)


def top_k(k: int) -> Filter:
    """Keep the ``k`` most probable tokens of each row (and any tied with the k-th)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k needs an integer k >= 1, got {k!r}")

    def keep_top_k(logits: Tensor) -> Tensor:
        kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[..., -1:]  # (B, 1)
        return logits.masked_fill(logits < kth, float("-inf"))

    return keep_top_k


def top_p(p: float) -> Filter:
    """Keep the smallest set of most probable tokens whose probability is >= ``p`` (the nucleus).

    The most probable token is always kept, so a tiny ``p`` gives greedy decoding.
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p needs 0 < p <= 1, got {p}")

    def keep_nucleus(logits: Tensor) -> Tensor:
        if p == 1:  # keep everything, even where rounding would push the cumulative sum past 1
            return logits
        ordered, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = ordered.softmax(-1)
        mass_before = probs.cumsum(-1) - probs  # probability of the tokens ranked above each one
        drop_ordered = mass_before >= p  # the set above already reaches p
        drop_ordered[..., 0] = False  # the top token stays even when p rounds to 0 in float32
        drop = torch.empty_like(drop_ordered).scatter_(-1, order, drop_ordered)
        return logits.masked_fill(drop, float("-inf"))

    return keep_nucleus


def compose(*filters: Filter) -> Filter:
    """Apply ``filters`` left to right: ``compose(f, g)(x) == g(f(x))``."""

    def composed(logits: Tensor) -> Tensor:
        for keep in filters:
            logits = keep(logits)
        return logits

    return composed
