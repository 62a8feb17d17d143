"""A toy step function for the search tests, and brute-force search over everything it can say.

Next-token log-probs are a fixed random function of a hash of the row's key and its whole
prefix, both carried in the state, so a search that mixes up rows or beams gets other scores.
"""
from itertools import product

import torch

from any2seq.interfaces import PerSource

TABLE = 4093  # hash buckets; each holds one random next-token distribution


class ToyStep:
    """``step(tokens, state)`` for a vocabulary of ``vocab`` ids; bos is never predicted."""

    def __init__(self, vocab=5, bos=4, eos=0, seed=0, eos_bias=0.0, ban_eos=False, per_source=False):
        generator = torch.Generator().manual_seed(seed)
        self.logits = torch.randn(TABLE, vocab, generator=generator) * 1.5  # (TABLE, V)
        self.logits[:, eos] += eos_bias
        self.logits[:, bos] = float("-inf")
        if ban_eos:
            self.logits[:, eos] = float("-inf")
        self.vocab, self.bos, self.eos, self.per_source = vocab, bos, eos, per_source
        self.calls = []  # the batch size of every call

    def init_state(self, keys):
        """A state for one row per key: a prefix hash and, nested, a per-row float (with
        ``per_source``, kept once per key in a ``PerSource`` node, as the Transformer's memory)."""
        keys = torch.as_tensor(keys, dtype=torch.long)
        key = keys.float()[:, None].repeat(1, 2)
        return {"prefix": keys % TABLE, "key": PerSource(key=key) if self.per_source else (key,)}

    def __call__(self, tokens, state):
        self.calls.append(tokens.numel())
        return self.next(tokens, state)

    def next(self, tokens, state):
        prefix = (state["prefix"] * 1000003 + tokens * 7919 + 1) % TABLE  # (B,)
        if self.per_source:  # rows // sources consecutive rows read each source's key
            key = state["key"]["key"].repeat_interleave(tokens.numel() // state["key"]["key"].size(0), 0)[:, :1]
        else:
            key = state["key"][0][:, :1]  # (B, 1)
        logits = self.logits[prefix] + torch.sin(key + torch.arange(self.vocab))  # (B, V)
        return logits.log_softmax(-1), {"prefix": prefix, "key": state["key"]}

    def replay(self, key, tokens, ended=True):
        """The real log-probability of ``tokens`` (then eos if ``ended``) for the row ``key``."""
        state, prev, total = self.init_state([key]), self.bos, 0.0
        for token in list(tokens) + ([self.eos] if ended else []):
            log_probs, state = self.next(torch.tensor([prev]), state)
            total += log_probs[0, token].item()
            prev = token
        return total


def brute_force(step, key, max_len, length_penalty):
    """Every sequence ``step`` can say in ``max_len``: (normalized, tokens, score), best first."""
    words = [token for token in range(step.vocab) if token not in (step.bos, step.eos)]
    hyps = []
    for n in range(max_len + 1):
        ended = n < max_len  # at max_len the sequence is cut, without eos
        for tokens in product(words, repeat=n):
            score = step.replay(key, tokens, ended)
            length = max(n + ended, 1)
            hyps.append((score / length ** length_penalty, list(tokens), score))
    return sorted(hyps, key=lambda hyp: -hyp[0])
