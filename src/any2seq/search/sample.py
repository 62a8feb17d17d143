"""Ancestral sampling over a step function: each token is drawn from the filtered distribution.

Filters (temperature, top-k, top-p: ``filters.py``) shape what is drawn; the score stays the
model's own log-probability of the drawn sequence, so samples can be compared and reranked.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from any2seq.interfaces import State, Step, reorder_state
from any2seq.search.filters import Filter, compose
from any2seq.search.greedy import Hypothesis, MaxLen, decode_rows, max_len_tensor, state_device


def sample(step: Step, state: State, batch_size: int, bos: int, eos: int, max_len: MaxLen,
           filters: Union[Filter, Sequence[Filter]] = (),
           generator: Optional[torch.Generator] = None, n: int = 1) -> list[list[Hypothesis]]:
    """``n`` samples per sentence (in draw order), one list per sentence, in input order.

    ``filters`` (a filter or a sequence of them, applied left to right) act on the step's
    log-probs before each draw; ``generator`` (on the state's device) makes the draws repeatable.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    keep = compose(filters) if callable(filters) else compose(*filters)
    device = state_device(state)
    copies = torch.arange(batch_size, device=device).repeat_interleave(n)  # (B*n,) n rows each
    limits = max_len_tensor(max_len, batch_size, device)[copies]

    def draw(log_probs: Tensor) -> Tensor:
        probs = keep(log_probs.float()).softmax(-1)  # (B*n, V)
        # A row the model scores NaN (NaN weights) has nothing to draw from: it ends, its NaN score says why.
        broken = probs.isnan().any(-1, keepdim=True)  # (B*n, 1)
        eos_only = torch.zeros_like(probs[0])
        eos_only[eos] = 1.0
        probs = torch.where(broken, eos_only, probs)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    hyps = decode_rows(step, reorder_state(state, copies), bos, eos, limits, draw)
    return [hyps[i * n:(i + 1) * n] for i in range(batch_size)]

