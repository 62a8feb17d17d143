"""Greedy decoding over a step function, and what all searches share: ``Hypothesis`` and the loop.

The loop (``decode_rows``) moves every row forward one token per step in lock-step, taking
whatever token a ``pick`` function chooses (argmax here, a draw in ``sample.py``), and drops rows
from the batch with ``reorder_state`` as soon as they end, so later steps cost less.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import Tensor

from any2seq.interfaces import State, Step, map_state, reorder_state

MaxLen = Union[int, Tensor]  # one limit for all sentences, or a (B,) LongTensor of them
Pick = Callable[[Tensor], Tensor]  # (B, V) log-probs -> (B,) the chosen token ids


@dataclass(frozen=True)
class Hypothesis:
    """One output sequence."""

    tokens: list[int]  # output ids, without bos and without the final eos
    score: float  # sum of the real log-probs of tokens and eos (no eos term when cut at max_len)
    normalized: float  # what search ranked by: score / len**length_penalty in beam, else score


def state_device(state: State) -> torch.device:
    """The device of the state's tensors (CPU if it has none): where search keeps its bookkeeping.

    The device is the one thing search reads from a state; everything else goes through
    ``reorder_state``.
    """
    devices = []
    map_state(lambda t: devices.append(t.device) or t, state)
    return devices[0] if devices else torch.device("cpu")


def max_len_tensor(max_len: MaxLen, batch_size: int, device: torch.device) -> Tensor:
    """``max_len`` (an int or a (B,) tensor) as a (B,) LongTensor of per-sentence limits.

    A limit counts the step calls a sentence may take: a hypothesis either ends with eos before
    it, or is cut there holding ``max_len`` ids and no eos.
    """
    if isinstance(max_len, Tensor) and max_len.dim() == 0:
        max_len = int(max_len)
    if isinstance(max_len, Tensor):
        if tuple(max_len.shape) != (batch_size,):
            raise ValueError(f"max_len must be an int or have shape ({batch_size},), "
                             f"got shape {tuple(max_len.shape)}")
        limits = max_len.to(device=device, dtype=torch.long)
    else:
        limits = torch.full((batch_size,), int(max_len), dtype=torch.long, device=device)
    if (limits < 0).any():
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    return limits


def decode_rows(step: Step, state: State, bos: int, eos: int, limits: Tensor,
                pick: Pick) -> list[Hypothesis]:
    """One hypothesis per row of ``state``: each step appends the token ``pick`` chooses.

    A row ends at eos or at its limit (``limits`` (B,)) and is then dropped from the batch.
    Scores add the step's own log-probs of the chosen tokens, whatever ``pick`` looked at.
    """
    B, device = limits.numel(), limits.device
    width = int(limits.max()) if B else 0
    out = torch.zeros(B, width, dtype=torch.long, device=device)  # (B, L) chosen ids
    lengths = torch.zeros(B, dtype=torch.long, device=device)  # ids before eos
    scores = torch.zeros(B, device=device)
    rows = (limits > 0).nonzero().squeeze(1)  # (A,) the original row of each active row
    if rows.numel() < B:
        state = reorder_state(state, rows)
    tokens = torch.full((rows.numel(),), bos, dtype=torch.long, device=device)
    for t in range(width):
        if rows.numel() == 0:
            break
        log_probs, state = step(tokens, state)  # (A, V)
        tokens = pick(log_probs)  # (A,)
        scores[rows] += log_probs.float().gather(1, tokens[:, None]).squeeze(1)
        ended = tokens == eos
        out[rows, t] = tokens
        lengths[rows] += (~ended).long()
        keep = (~ended & (limits[rows] > t + 1)).nonzero().squeeze(1)
        if keep.numel() < rows.numel():
            rows, tokens = rows[keep], tokens[keep]
            state = reorder_state(state, keep)
    return [Hypothesis(ids[:n], score, score)
            for ids, n, score in zip(out.tolist(), lengths.tolist(), scores.tolist())]


def greedy(step: Step, state: State, batch_size: int, bos: int, eos: int,
           max_len: MaxLen) -> list[list[Hypothesis]]:
    """Take the most probable token at every step; one ``[Hypothesis]`` per sentence, in order."""
    limits = max_len_tensor(max_len, batch_size, state_device(state))
    hyps = decode_rows(step, state, bos, eos, limits, lambda log_probs: log_probs.argmax(-1))
    return [[hyp] for hyp in hyps]
